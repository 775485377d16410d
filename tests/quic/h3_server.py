#!/usr/bin/env python3
"""An HTTP/3 upstream for limen's end-to-end tests, on aioquic.

    h3_server.py --bind 127.0.0.1:PORT --cert C --key K --name NAME [--retry]

Answers every GET with 200 and the body `NAME h3 /path`, so a test can tell
which upstream answered and that it spoke HTTP/3. Port 0 lets the kernel pick:
the bound address is printed on stdout as `listening HOST:PORT` once the socket
is bound (the test kit waits for that line). Each handshake and request is
logged to stderr with the SNI the client sent, the :authority and the client's
address, so a test can check what reached the upstream and from which port.

QUIC v1 and v2 are accepted (aioquic's defaults). Retry is off unless --retry
is given (then clients must echo a token first, as a real server under load may
ask them to).
"""

import argparse
import asyncio
import sys

try:
    import aioquic.tls as tls
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.asyncio.server import QuicServer
    from aioquic.h3.connection import H3_ALPN, H3Connection
    from aioquic.h3.events import HeadersReceived
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.events import (
        ConnectionTerminated,
        HandshakeCompleted,
        ProtocolNegotiated,
    )
except ImportError as error:
    # Exit status 3: the kit's fault, never mistaken for a refused connection.
    print(
        f"h3_server.py: {error}: aioquic is missing from {sys.executable} "
        "(`cargo xtask test` installs it from PyPI into target/toolchains/python)",
        file=sys.stderr,
    )
    sys.exit(3)


def log(line):
    print(line, file=sys.stderr, flush=True)


def show(addr):
    if addr is None:
        return "?"
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# aioquic's server keeps no record of the SNI a client sent, and the tests need
# it (to prove limen forwarded the very ClientHello it routed on). The
# ClientHello is parsed by this module-level function, always inside the
# receiving connection's datagram_received, so wrapping it and noting which
# connection is receiving attributes the name (asyncio: one thread).
_receiving = None
_pull_client_hello = tls.pull_client_hello


def _recording_pull_client_hello(buf):
    hello = _pull_client_hello(buf)
    if _receiving is not None:
        _receiving.sni = hello.server_name
    return hello


tls.pull_client_hello = _recording_pull_client_hello


class Upstream(QuicConnectionProtocol):
    def __init__(self, *args, name, **kwargs):
        super().__init__(*args, **kwargs)
        self.name = name
        self.http = None
        self.sni = None
        self.peer = None

    def datagram_received(self, data, addr):
        global _receiving
        if self.peer is not None and addr != self.peer:
            # NAT rebinding or migration: aioquic validates the new path.
            log(f"path from={show(self.peer)} to={show(addr)} sni={self.sni}")
        self.peer = addr
        _receiving = self
        try:
            super().datagram_received(data, addr)
        finally:
            _receiving = None

    def quic_event_received(self, event):
        if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
            self.http = H3Connection(self._quic)
        elif isinstance(event, HandshakeCompleted):
            # _version is aioquic's negotiated version: logged so a test can
            # prove v2 got through; nothing depends on it.
            version = getattr(self._quic, "_version", None)
            version = f"{version:#x}" if isinstance(version, int) else "?"
            log(
                f"handshake sni={self.sni} alpn={event.alpn_protocol} "
                f"version={version} from={show(self.peer)}"
            )
        elif isinstance(event, ConnectionTerminated):
            log(
                f"closed sni={self.sni} error_code={event.error_code:#x} "
                f"reason={event.reason_phrase}"
            )
        if self.http is not None:
            for h3_event in self.http.handle_event(event):
                if isinstance(h3_event, HeadersReceived):
                    self.answer(h3_event)

    def answer(self, event):
        headers = dict(event.headers)
        method = headers.get(b":method", b"").decode(errors="replace")
        path = headers.get(b":path", b"").decode(errors="replace")
        authority = headers.get(b":authority", b"").decode(errors="replace")
        log(
            f"request sni={self.sni} authority={authority} method={method} "
            f"path={path} from={show(self.peer)}"
        )
        if method == "GET":
            status, body = b"200", f"{self.name} h3 {path}".encode()
        else:
            status, body = b"405", f"{self.name} h3 {method} not allowed".encode()
        self.http.send_headers(
            event.stream_id,
            [
                (b":status", status),
                (b"content-type", b"text/plain"),
                (b"content-length", str(len(body)).encode()),
                (b"server", f"limen-e2e-h3/{self.name}".encode()),
            ],
        )
        self.http.send_data(event.stream_id, body, end_stream=True)
        self.transmit()


def split(addr):
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"not HOST:PORT: {addr}")
    return host.strip("[]"), int(port)


async def serve(args):
    configuration = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
    configuration.load_cert_chain(args.cert, args.key)
    host, port = args.bind

    def create_protocol(*a, **kw):
        return Upstream(*a, name=args.name, **kw)

    # aioquic's serve() does exactly this, but hides the transport: it is
    # needed to read back the port the kernel picked for --bind HOST:0.
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: QuicServer(
            configuration=configuration,
            create_protocol=create_protocol,
            retry=args.retry,
        ),
        local_addr=(host, port),
    )
    print(f"listening {show(transport.get_extra_info('sockname'))}", flush=True)
    # Serve until killed: the test kit owns this process's lifetime.
    await asyncio.Event().wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", type=split, required=True, help="HOST:PORT")
    parser.add_argument("--cert", required=True, help="certificate chain, PEM")
    parser.add_argument("--key", required=True, help="private key, PEM")
    parser.add_argument("--name", required=True, help="named in every body")
    parser.add_argument("--retry", action="store_true", help="send Retry first")
    args = parser.parse_args()
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
