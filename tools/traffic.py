#!/usr/bin/python3
"""Small traffic endpoints for the demo and the integration tests (plain sockets, no
dependencies). Every mode stops by itself: loops are bounded in count and in time.

  serve --addr A [--addr B] --udp 5000,5001 --tcp 5002 --log FILE --seconds N
      UDP and TCP echo servers; each UDP datagram and TCP connection is appended to FILE
      as one JSON line {"proto","port","src"} so a test can tell where a flow arrived.
  udp --dst A --port P [--sport S] [--count N] [--timeout T] [--fire]
      sends N datagrams (retrying each until echoed or timeout) and prints
      {"sent","echoed"}; exit 0 when all were echoed. --fire: send once each, no echo.
  stream --dst A --port P --count N --gap S
      sends N numbered datagrams S seconds apart, counts their echoes, prints
      {"sent","received","lost"}; exit 0 when none was lost.
  tcp --dst A --port P --bytes N [--timeout T]
      sends N random bytes, reads the echo, exit 0 when identical.
"""
import argparse
import json
import os
import select
import socket
import sys
import time


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def serve(args):
    udp_ports = [int(p) for p in args.udp.split(",") if p]
    tcp_ports = [int(p) for p in args.tcp.split(",") if p]
    socks = {}
    for addr in args.addr:
        for port in udp_ports:
            s = socket.socket(family(addr), socket.SOCK_DGRAM)
            s.bind((addr, port))
            socks[s] = ("udp", port)
        for port in tcp_ports:
            s = socket.socket(family(addr), socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((addr, port))
            s.listen(16)
            socks[s] = ("tcp-listen", port)
    log = open(args.log, "a", buffering=1)
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select(list(socks), [], [], 0.2)
        for s in ready:
            kind, port = socks[s]
            if kind == "udp":
                data, peer = s.recvfrom(65535)
                log.write(json.dumps({"proto": "udp", "port": port, "src": peer[0]}) + "\n")
                s.sendto(data, peer)
            elif kind == "tcp-listen":
                conn, peer = s.accept()
                conn.setblocking(False)
                log.write(json.dumps({"proto": "tcp", "port": port, "src": peer[0]}) + "\n")
                socks[conn] = ("tcp", port)
            else:
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    continue
                except ConnectionError:
                    data = b""
                if not data:
                    del socks[s]
                    s.close()
                    continue
                s.setblocking(True)
                s.settimeout(5)
                s.sendall(data)
                s.setblocking(False)
    return 0


def udp_payload(args, i):
    p = ("egress-%d-%d-" % (os.getpid(), i)).encode()
    return p + b"." * max(0, args.size - len(p))


def udp(args):
    s = socket.socket(family(args.dst), socket.SOCK_DGRAM)
    if args.no_df:
        # Let routers (and tunnels) fragment: IP_MTU_DISCOVER = IP_PMTUDISC_DONT.
        s.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_MTU_DISCOVER", 10), 0)
    if args.sport:
        s.bind(("::" if family(args.dst) == socket.AF_INET6 else "0.0.0.0", args.sport))
    if args.fire:
        # One way (into a tunnel whose far end checks them): no echo to wait for.
        for i in range(args.count):
            s.sendto(udp_payload(args, i), (args.dst, args.port))
            time.sleep(args.gap)
        print(json.dumps({"sent": args.count}))
        return 0
    s.settimeout(0.2)
    deadline = time.monotonic() + args.timeout
    echoed = 0
    sent = 0
    for i in range(args.count):
        payload = udp_payload(args, i)
        got = False
        while not got and time.monotonic() < deadline:
            s.sendto(payload, (args.dst, args.port))
            sent += 1
            try:
                while True:
                    data, _ = s.recvfrom(65535)
                    if data == payload:
                        got = True
                        break
            except socket.timeout:
                pass
        echoed += got
    print(json.dumps({"sent": sent, "echoed": echoed}))
    return 0 if echoed == args.count else 1


def stream(args):
    """Sends count numbered datagrams gap seconds apart while collecting their echoes, then
    waits linger seconds for stragglers: a loss measurement, unlike udp's retries."""
    s = socket.socket(family(args.dst), socket.SOCK_DGRAM)
    s.setblocking(False)
    got = set()
    tag = os.getpid()
    next_send = time.monotonic()
    i = 0
    end = None
    while True:
        now = time.monotonic()
        if i < args.count and now >= next_send:
            s.sendto(b"egress-%d-%d" % (tag, i), (args.dst, args.port))
            i += 1
            next_send += args.gap
            if i == args.count:
                end = now + args.linger
        if end is not None and now >= end:
            break
        r, _, _ = select.select([s], [], [], max(0.0, min(next_send - now, 0.05)) if i < args.count else 0.05)
        if r:
            try:
                while True:
                    data, _ = s.recvfrom(65535)
                    parts = data.split(b"-")
                    if len(parts) == 3 and parts[1] == str(tag).encode():
                        got.add(int(parts[2]))
            except BlockingIOError:
                pass
    lost = sorted(set(range(args.count)) - got)
    print(json.dumps({"sent": args.count, "received": len(got), "lost": len(lost), "first_lost": lost[:10]}))
    return 0 if not lost else 1


def tcp(args):
    data = os.urandom(args.bytes)
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            s = socket.create_connection((args.dst, args.port), timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline:
                print(json.dumps({"error": "connect timed out"}))
                return 1
            time.sleep(0.2)
    s.settimeout(max(1.0, deadline - time.monotonic()))
    got = bytearray()
    view = memoryview(data)
    sent = 0
    try:
        while len(got) < len(data):
            if sent < len(data):
                n = s.send(view[sent:sent + 65536])
                sent += n
            r, _, _ = select.select([s], [], [], 0 if sent < len(data) else 1)
            if r:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            if time.monotonic() > deadline:
                break
    except OSError as e:
        print(json.dumps({"error": str(e), "received": len(got)}))
        return 1
    ok = bytes(got) == data
    print(json.dumps({"bytes": len(data), "received": len(got), "identical": ok}))
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("serve")
    p.add_argument("--addr", action="append", required=True)
    p.add_argument("--udp", default="")
    p.add_argument("--tcp", default="")
    p.add_argument("--log", required=True)
    p.add_argument("--seconds", type=float, default=120)
    p = sub.add_parser("udp")
    p.add_argument("--dst", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--sport", type=int, default=0)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--timeout", type=float, default=10)
    p.add_argument("--fire", action="store_true", help="send without waiting for echoes")
    p.add_argument("--gap", type=float, default=0.01, help="seconds between --fire datagrams")
    p.add_argument("--size", type=int, default=0, help="pad each payload to this many bytes")
    p.add_argument("--no-df", action="store_true", help="IPv4: send without Don't Fragment")
    p = sub.add_parser("stream")
    p.add_argument("--dst", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--gap", type=float, default=0.002)
    p.add_argument("--linger", type=float, default=1.0)
    p = sub.add_parser("tcp")
    p.add_argument("--dst", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--bytes", type=int, default=1 << 20)
    p.add_argument("--timeout", type=float, default=20)
    args = ap.parse_args()
    return {"serve": serve, "udp": udp, "tcp": tcp, "stream": stream}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
