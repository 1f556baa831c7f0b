#!/usr/bin/env python3
"""An independent STAMP (RFC 8762, unauthenticated mode) peer, built from the RFC's packet
layouts with struct and a plain UDP socket: none of the appliance's code.

  reflect --addr A [--port 862] --seconds S
      a stateless session-reflector (RFC 8762 4.3.1): answers every 44-byte test packet
      with the reflected layout, for the appliance's session-sender to measure against;
      prints a JSON line for each sender's 1st and 5th packet ({"from", "reflected"})
      and one with the total at the end.
  send --dst A [--port 862] --count N [--timeout T]
      a session-sender toward the appliance's reflector: checks every answer's layout
      and fields, prints one JSON line, exits 0 when all N were answered correctly.
"""
import argparse
import json
import socket
import struct
import sys
import time

NTP_UNIX = 2208988800
IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)  # Linux's value; Python does not name it
SENDER = struct.Struct("!I Q H 30x")                    # seq, timestamp, error estimate
REFLECTED = struct.Struct("!I Q H 2x Q I Q H 2x B 3x")  # seq, T3, err, T2, s-seq, T1, s-err, s-ttl
assert SENDER.size == 44 and REFLECTED.size == 44


def ntp_now():
    t = time.time()
    return (int(t) + NTP_UNIX) << 32 | int((t % 1) * (1 << 32))


def reflect(args):
    family = socket.AF_INET6 if ":" in args.addr else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET:
        s.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
    s.bind((args.addr, args.port))
    s.settimeout(0.5)
    end = time.time() + args.seconds
    answered = 0
    per_sender = {}
    while time.time() < end:
        try:
            data, anc, _, peer = s.recvmsg(2048, socket.CMSG_SPACE(4))
        except socket.timeout:
            continue
        t2 = ntp_now()
        if len(data) < SENDER.size:
            continue
        seq, t1, err = SENDER.unpack_from(data)
        ttl = 0
        for level, kind, value in anc:
            if level == socket.IPPROTO_IP and kind == socket.IP_TTL:
                ttl = struct.unpack("i", value[:4])[0]
        reply = REFLECTED.pack(seq, ntp_now(), 0x8001, t2, seq, t1, err, ttl)
        s.sendto(reply + bytes(len(data) - 44), peer)
        answered += 1
        n = per_sender[peer[0]] = per_sender.get(peer[0], 0) + 1
        if n in (1, 5):
            print(json.dumps({"from": peer[0], "reflected": n}), flush=True)
    print(json.dumps({"answered": answered}))


def send(args):
    family = socket.AF_INET6 if ":" in args.dst else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(args.timeout)
    good, errors, rtts = 0, [], []
    for seq in range(1000, 1000 + args.count):
        t1 = ntp_now()
        s.sendto(SENDER.pack(seq, t1, 0x0001), (args.dst, args.port))
        try:
            data, peer = s.recvfrom(2048)
        except socket.timeout:
            errors.append("seq %d: no answer" % seq)
            continue
        t4 = ntp_now()
        if peer[1] != args.port or len(data) != 44:
            errors.append("seq %d: from port %d, %d bytes" % (seq, peer[1], len(data)))
            continue
        rseq, t3, err, t2, sseq, st1, serr, sttl = REFLECTED.unpack(data)
        if not (rseq == seq and sseq == seq and st1 == t1 and serr == 0x0001):
            errors.append("seq %d: copied fields wrong: %r" % (seq, (rseq, sseq, st1 == t1, serr)))
        elif not (t2 and t3 >= t2 and (err & 0xff) != 0):
            errors.append("seq %d: timestamps or error estimate wrong: %r" % (seq, (t2, t3, err)))
        elif not 1 <= sttl <= 64:
            errors.append("seq %d: sender TTL %d" % (seq, sttl))
        else:
            good += 1
            rtts.append(((t4 - t1) - (t3 - t2)) / (1 << 32) * 1000)
    print(json.dumps({"sent": args.count, "good": good, "errors": errors[:5],
                      "rtt_ms_max": max(rtts) if rtts else None}))
    return 0 if good == args.count else 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("reflect")
    r.add_argument("--addr", required=True)
    r.add_argument("--port", type=int, default=862)
    r.add_argument("--seconds", type=float, default=60)
    c = sub.add_parser("send")
    c.add_argument("--dst", required=True)
    c.add_argument("--port", type=int, default=862)
    c.add_argument("--count", type=int, default=5)
    c.add_argument("--timeout", type=float, default=3)
    a = ap.parse_args()
    return reflect(a) if a.cmd == "reflect" else send(a)


if __name__ == "__main__":
    sys.exit(main() or 0)
