#!/usr/bin/python3
"""An independent ESP peer for the interop tests: scapy's ESP implementation (not ours)
decrypts what the appliance sends and encrypts what it must accept. Runs inside the uplink
namespace. Every loop is bounded in count and time.

  decrypt --iface IF --sa JSON --count N --timeout T --dport P --pcap FILE
      sniffs ESP from the appliance, decrypts each packet with the SA and checks that the
      inner packet is UDP to dport P carrying an "egress-" payload; prints a JSON summary.
  send --sa JSON --src A --dst B --dport P --count N --seq S [--tamper WHAT] [--repeat K]
      builds inner UDP packets, encrypts them with the SA from sequence number S and sends
      them; WHAT is spi, iv, payload or icv (one byte flipped after encryption).

SA JSON: {"spi", "key" (hex, key then 4-byte salt), "src", "dst", "natt", "esn",
"alg" ("AES-GCM" by default, or "CHACHA20-POLY1305")}.
"""
import argparse
import json
import sys
import time

from scapy.all import AsyncSniffer, Raw, conf, send
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.ipsec import ESP, SecurityAssociation

conf.verb = 0


def outer(sa):
    return IPv6(src=sa["src"], dst=sa["dst"]) if ":" in sa["src"] else IP(src=sa["src"], dst=sa["dst"])


def make_sa(sa, esn_high=0, seq_lo=1):
    return SecurityAssociation(
        ESP, spi=sa["spi"], seq_num=seq_lo, crypt_algo=sa.get("alg", "AES-GCM"), crypt_key=bytes.fromhex(sa["key"]),
        tunnel_header=outer(sa), nat_t_header=UDP(sport=4500, dport=4500) if sa.get("natt") else None,
        esn_en=bool(sa.get("esn")), esn=esn_high)


def decrypt(args):
    sa = json.loads(args.sa)
    ours = make_sa(sa)
    def from_appliance(p):
        # Only the appliance's own packets: the peer kernel's ICMP errors quote them too.
        ip = p[IP] if IP in p else p[IPv6] if IPv6 in p else None
        if ip is None or ip.src != sa["src"]:
            return False
        nh = ip.proto if IP in p else ip.nh
        return nh == 50 or (nh == 17 and UDP in p and p[UDP].dport == 4500)

    sniffer = AsyncSniffer(iface=args.iface, store=True, count=args.count, timeout=args.timeout,
                           lfilter=from_appliance)
    sniffer.start()
    print(json.dumps({"ready": True}), flush=True)
    sniffer.join(timeout=args.timeout + 5)
    pkts = sniffer.results or []
    if args.pcap:
        from scapy.all import wrpcap
        wrpcap(args.pcap, pkts)  # before decrypting: scapy's decrypt edits packets in place
    ok, errors, seqs = 0, [], []
    for p in pkts:
        try:
            ip = p[IP] if IP in p else p[IPv6]
            if sa.get("natt"):
                # RFC 3948: the ESP header follows the UDP header directly.
                esp = ESP(bytes(p[UDP].payload))
                ip = ip.copy()
                ip.remove_payload()
                ip = ip / esp
            if ESP not in ip or ip[ESP].spi != sa["spi"]:
                continue
            seqs.append(ip[ESP].seq)
            inner = ours.decrypt(ip.copy())
            if UDP in inner and inner[UDP].dport == args.dport and bytes(inner[UDP].payload).startswith(b"egress-"):
                ok += 1
            else:
                errors.append("unexpected inner: " + inner.summary())
        except Exception as e:  # a packet that does not decrypt is the finding
            errors.append("%s: %s" % (type(e).__name__, e))
    print(json.dumps({"seen": len(pkts), "decrypted": ok, "errors": errors[:5], "seqs": seqs[:8]}))
    return 0 if pkts and ok == len([s for s in seqs]) and not errors else 1


def send_cmd(args):
    sa = json.loads(args.sa)
    for i in range(args.count):
        seq = args.seq + i
        # The number goes in through the SA: scapy's encrypt(seq_num=0) means "not given".
        ours = make_sa(sa, esn_high=seq >> 32, seq_lo=seq & 0xffffffff)
        inner_l3 = IPv6 if ":" in args.src else IP
        inner = inner_l3(src=args.src, dst=args.dst) / UDP(sport=6000, dport=args.dport) / Raw(
            b"egress-peer-%d" % seq)
        enc = ours.encrypt(inner)
        raw = bytearray(bytes(enc))
        hdr = 40 if ":" in sa["src"] else 20
        if sa.get("natt"):
            # scapy 2.5 writes 8 in the UDP length of NAT-T packets: put the real one.
            length = len(raw) - hdr
            raw[hdr + 4:hdr + 6] = length.to_bytes(2, "big")
            raw[hdr + 6:hdr + 8] = b"\0\0"
            hdr += 8
        if args.tamper == "spi":
            raw[hdr] ^= 0x01
        elif args.tamper == "iv":
            raw[hdr + 8] ^= 0x01
        elif args.tamper == "payload":
            raw[hdr + 16] ^= 0x01
        elif args.tamper == "icv":
            raw[-1] ^= 0x01
        pkt = IPv6(bytes(raw)) if ":" in sa["src"] else IP(bytes(raw))
        for _ in range(args.repeat):
            send(pkt)
            time.sleep(0.002)
    print(json.dumps({"sent": args.count * args.repeat}))
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("decrypt")
    p.add_argument("--iface", required=True)
    p.add_argument("--sa", required=True)
    p.add_argument("--count", type=int, default=5)
    p.add_argument("--timeout", type=float, default=20)
    p.add_argument("--dport", type=int, required=True)
    p.add_argument("--pcap", default="")
    p = sub.add_parser("send")
    p.add_argument("--sa", required=True)
    p.add_argument("--src", required=True)
    p.add_argument("--dst", required=True)
    p.add_argument("--dport", type=int, default=7000)
    p.add_argument("--count", type=int, default=5)
    p.add_argument("--seq", type=int, default=1)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--tamper", choices=["spi", "iv", "payload", "icv"])
    args = ap.parse_args()
    return decrypt(args) if args.mode == "decrypt" else send_cmd(args)


if __name__ == "__main__":
    sys.exit(main())
