#!/usr/bin/env python3
"""Loopback UDP load for bench/quic.sh: every loop bounded in count and time.

  sink   --bind ADDR --seconds S            count datagrams until S idle-free seconds pass
  relay  --to ADDR --count N --size B --initial FILE...
                                            one client: its captured Initial flight (so a
                                            router that reads hellos makes a flow), then N
                                            short-header datagrams of B bytes
  flows  --to ADDR --count M (--initial FILE... | --tcp HELLO) --hold S
                                            M clients, each sending the flight (or, over
                                            TCP, one TLS ClientHello) from its own port,
                                            held open S seconds (memory per idle flow)
  tcpsink  --bind ADDR --seconds S          accept TCP connections and hold them until S
                                            seconds pass without a new one
"""
import argparse
import selectors
import socket
import sys
import time


def addr(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def sink(args):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind(addr(args.bind))
    sock.settimeout(args.seconds)
    count = size = 0
    deadline = time.monotonic() + 120
    print("ready", flush=True)
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65535)
        except socket.timeout:
            break
        count += 1
        size += len(data)
    print(f"received {count} {size}", flush=True)


def flight(files):
    return [open(f, "rb").read() for f in files]


def relay(args):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    sock.connect(addr(args.to))
    for datagram in flight(args.initial):
        sock.send(datagram)
    time.sleep(0.5)  # the decision, before the bulk
    payload = bytes([0x40]) + bytes(args.size - 1)
    sent = 0
    started = time.monotonic()
    for _ in range(args.count):
        try:
            sock.send(payload)
            sent += 1
        except BlockingIOError:
            pass
        if time.monotonic() - started > 60:
            break
    took = time.monotonic() - started
    print(f"sent {sent} {sent * args.size} {took:.3f}", flush=True)


def flows(args):
    """UDP clients sending the Initial flight, or (--tcp) TCP clients
    sending one TLS hello: each from a port of its own, all held open."""
    datagrams = flight(args.initial) if args.initial else []
    hello = open(args.tcp, "rb").read() if args.tcp else b""
    socks = []
    started = time.monotonic()
    for _ in range(args.count):
        if args.tcp:
            sock = socket.create_connection(addr(args.to))
            sock.sendall(hello)
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.connect(addr(args.to))
            for datagram in datagrams:
                sock.send(datagram)
        socks.append(sock)
        if time.monotonic() - started > 60:
            break
        if args.pace:
            time.sleep(args.pace)
    print(f"opened {len(socks)} {time.monotonic() - started:.3f}", flush=True)
    time.sleep(args.hold)


def tcpsink(args):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(addr(args.bind))
    server.listen(4096)
    held = []
    deadline = time.monotonic() + 120
    with selectors.DefaultSelector() as sel:
        sel.register(server, selectors.EVENT_READ)
        print("ready", flush=True)
        while time.monotonic() < deadline and sel.select(args.seconds):
            conn, _ = server.accept()
            held.append(conn)
    print(f"accepted {len(held)}", flush=True)


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("sink")
    s.add_argument("--bind", required=True)
    s.add_argument("--seconds", type=float, default=2.0)
    r = sub.add_parser("relay")
    r.add_argument("--to", required=True)
    r.add_argument("--count", type=int, required=True)
    r.add_argument("--size", type=int, default=1200)
    r.add_argument("--initial", nargs="+", required=True)
    f = sub.add_parser("flows")
    f.add_argument("--to", required=True)
    f.add_argument("--count", type=int, required=True)
    f.add_argument("--initial", nargs="+")
    f.add_argument("--tcp", metavar="HELLO", help="TCP connections sending this TLS hello")
    f.add_argument("--hold", type=float, default=5.0)
    f.add_argument("--pace", type=float, default=0.0, help="seconds between clients")
    t = sub.add_parser("tcpsink")
    t.add_argument("--bind", required=True)
    t.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    if args.count if hasattr(args, "count") else 0:
        if args.count > 2_000_000:
            sys.exit("count <= 2,000,000")
    modes = {"sink": sink, "relay": relay, "flows": flows, "tcpsink": tcpsink}
    modes[args.mode](args)


if __name__ == "__main__":
    main()
