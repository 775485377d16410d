#!/usr/bin/env python3
"""An HTTP/3 client for limen's end-to-end tests, on aioquic.

    h3_client.py --connect HOST:PORT --sni NAME --ca CA [--path /x]
                 [--timeout 5] [--local-port P] [--rebind-after-ms N]
                 [--quic-version 1|2] [--alpn h3]

Connects to HOST:PORT (limen, or an upstream directly) with server_name NAME,
verifying the server against CA, sends GET https://NAME/path and prints the
response body on stdout (as is, no newline added): exit 0.

On failure it prints one line on stderr (last) and exits 1:
  closed: error_code=0x178 frame_type=0x6 by=peer reason=...
      a CONNECTION_CLOSE (by=peer: received; by=local: aioquic closed, e.g.
      the certificate did not verify). A TLS alert is 0x100 + alert.
  timeout: no handshake within 5s / timeout: no response within 5s
  status: 404 (body follows on stdout)
Any other exit status is the kit's own failure (3: aioquic missing, 2: bad
arguments, 4: a Python exception), never a refused connection.

--rebind-after-ms N: once the handshake is done, wait N ms, then move the
connection to a fresh UDP socket (a new local port; the old socket is closed)
and only then send the request: what a NAT rebinding looks like to the server
or to a router in between. The ports are logged on stderr.
"""

import argparse
import asyncio
import socket
import sys
import traceback

try:
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.h3.connection import H3_ALPN, H3Connection
    from aioquic.h3.events import DataReceived, HeadersReceived
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection, QuicConnectionState
    from aioquic.quic.events import ConnectionTerminated
    from aioquic.quic.packet import QuicProtocolVersion
except ImportError as error:
    # Exit status 3: the kit's fault, never mistaken for a refused connection.
    print(
        f"h3_client.py: {error}: aioquic is missing from {sys.executable} "
        "(`cargo xtask test` installs it from PyPI into target/toolchains/python)",
        file=sys.stderr,
    )
    sys.exit(3)


class Failed(Exception):
    pass


def closed(event, by):
    frame = "" if event.frame_type is None else f" frame_type={event.frame_type:#x}"
    return Failed(
        f"closed: error_code={event.error_code:#x}{frame} by={by} "
        f"reason={event.reason_phrase}"
    )


class Client(QuicConnectionProtocol):
    def __init__(self, quic):
        super().__init__(quic)
        self.http = H3Connection(quic)
        self.failure = None
        self.response = None  # future: (status, body)
        self.status = None
        self.body = bytearray()

    def fail(self, failure):
        if self.failure is None:
            self.failure = failure
        if self.response is not None and not self.response.done():
            self.response.set_exception(self.failure)

    def datagram_received(self, data, addr):
        super().datagram_received(data, addr)
        # aioquic only reports a close it received after its draining period
        # (3 PTO, about a second): the tests time how fast a refusal is, so
        # the close is read as soon as its frame arrives.
        event = getattr(self._quic, "_close_event", None)
        if event is not None and self.failure is None:
            draining = self._quic._state == QuicConnectionState.DRAINING
            self.fail(closed(event, "peer" if draining else "local"))
            waiter, self._connected_waiter = self._connected_waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_exception(self.failure)

    def quic_event_received(self, event):
        if isinstance(event, ConnectionTerminated):
            self.fail(closed(event, "local"))
        for h3_event in self.http.handle_event(event):
            if isinstance(h3_event, HeadersReceived):
                self.status = dict(h3_event.headers).get(b":status", b"?").decode()
            elif isinstance(h3_event, DataReceived):
                self.body += h3_event.data
            else:
                continue
            if h3_event.stream_ended and self.response and not self.response.done():
                self.response.set_result((self.status, bytes(self.body)))
        # Not the base class's handler: it would open asyncio streams for the
        # HTTP/3 streams, which H3Connection already reads.

    async def get(self, authority, path):
        self.response = self._loop.create_future()
        if self.failure is not None:
            raise self.failure
        stream_id = self._quic.get_next_available_stream_id()
        self.http.send_headers(
            stream_id,
            [
                (b":method", b"GET"),
                (b":scheme", b"https"),
                (b":authority", authority.encode()),
                (b":path", path.encode()),
                (b"user-agent", b"limen-e2e-h3-client"),
            ],
            end_stream=True,
        )
        self.transmit()
        return await self.response


class Socket(asyncio.DatagramProtocol):
    """One UDP socket feeding the connection; replaced on a rebind."""

    def __init__(self, client):
        self.client = client

    def datagram_received(self, data, addr):
        self.client.datagram_received(data, addr)

    def error_received(self, exc):
        # ICMP port unreachable (nothing at HOST:PORT): the timeout reports it.
        print(f"socket error: {exc}", file=sys.stderr, flush=True)


class Path:
    """What the connection sends through: the current socket, swappable, so
    the connection outlives the socket it started on."""

    def __init__(self, transport):
        self.transport = transport

    def sendto(self, data, addr):
        self.transport.sendto(data, addr)

    def local(self):
        return self.transport.get_extra_info("sockname")


def split(addr):
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"not HOST:PORT: {addr}")
    return host.strip("[]"), int(port)


async def bind(loop, client, family, port):
    local = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    transport, _ = await loop.create_datagram_endpoint(
        lambda: Socket(client), local_addr=(local, port), family=family
    )
    return transport


async def run(args):
    loop = asyncio.get_running_loop()
    host, port = args.connect
    family, _, _, _, peer = (
        await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    )[0]

    configuration = QuicConfiguration(
        is_client=True, alpn_protocols=args.alpn.split(","), server_name=args.sni
    )
    configuration.load_verify_locations(cafile=args.ca)
    # The one version offered: aioquic's server otherwise moves a v2 Initial
    # to its preferred v1 (compatible negotiation, RFC 9368) at once.
    version = (
        QuicProtocolVersion.VERSION_2
        if args.quic_version == 2
        else QuicProtocolVersion.VERSION_1
    )
    configuration.original_version = version
    configuration.supported_versions = [version]
    client = Client(QuicConnection(configuration=configuration))
    path = Path(await bind(loop, client, family, args.local_port))
    client.connection_made(path)

    stage = "handshake"
    try:
        async with asyncio.timeout(args.timeout):
            client.connect(peer)
            await client.wait_connected()
            if args.rebind_after_ms is not None:
                stage = "rebind"
                await asyncio.sleep(args.rebind_after_ms / 1000)
                old = path.local()
                fresh = await bind(loop, client, family, 0)
                path.transport.close()
                path.transport = fresh
                print(f"rebound from={old[1]} to={path.local()[1]}", file=sys.stderr)
            stage = "response"
            status, body = await client.get(args.sni, args.path)
    except TimeoutError:
        raise Failed(f"timeout: no {stage} within {args.timeout}s") from None
    except ConnectionError:
        # wait_connected's own abort, when aioquic closed before the check in
        # datagram_received saw it (a timer: e.g. idle timeout).
        raise client.failure or Failed("closed: connection error") from None
    finally:
        # A polite close: the server (or limen) need not wait for idle timeout.
        if client.failure is None:
            client.close()
        path.transport.close()
    sys.stdout.buffer.write(body)
    sys.stdout.flush()
    if status != "200":
        raise Failed(f"status: {status}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connect", type=split, required=True, help="HOST:PORT")
    parser.add_argument("--sni", required=True, help="server_name and :authority")
    parser.add_argument("--ca", required=True, help="CA certificates, PEM")
    parser.add_argument("--path", default="/")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds, in all")
    parser.add_argument("--local-port", type=int, default=0)
    parser.add_argument("--rebind-after-ms", type=int)
    parser.add_argument("--quic-version", type=int, choices=[1, 2], default=1)
    # Another ALPN only to be refused: a server without it closes with
    # 0x178 (no_application_protocol), a peer close to test reports on.
    parser.add_argument("--alpn", default=H3_ALPN[0], help="comma-separated")
    args = parser.parse_args()
    try:
        asyncio.run(run(args))
    except Failed as failure:
        print(failure, file=sys.stderr, flush=True)
        sys.exit(1)
    except Exception:
        # Status 1 means "the connection failed"; a crash must not pass for it.
        traceback.print_exc()
        sys.exit(4)


if __name__ == "__main__":
    main()
