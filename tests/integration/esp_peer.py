#!/usr/bin/python3
"""An independent ESP peer for the interop tests: scapy's ESP implementation (not ours)
decrypts what the appliance sends and encrypts what it must accept. Runs inside the uplink
namespace. Every loop is bounded in count and time.

  decrypt --iface IF --sa JSON --count N --timeout T --dport P --pcap FILE [--frags K]
      sniffs ESP from the appliance, decrypts each packet with the SA and checks that the
      inner packet is UDP to dport P carrying an "egress-" payload; prints a JSON summary.
      With --frags K every ESP packet is expected in K outer fragments: scapy reassembles
      them (IPv4 or IPv6) before it decrypts.
  send --sa JSON --src A --dst B --dport P --count N --seq S [--tamper WHAT] [--repeat K]
       [--size N] [--fragment BYTES]
      builds inner UDP packets (payload padded to N bytes), encrypts them with the SA from
      sequence number S and sends them; WHAT is spi, iv, payload or icv (one byte flipped
      after encryption). --fragment cuts each ESP packet into outer fragments of at most
      BYTES and sends them last first.

SA JSON: {"spi", "key" (hex, key then 4-byte salt), "src", "dst", "natt", "esn",
"alg" ("AES-GCM" by default, or "CHACHA20-POLY1305")}.
"""
import argparse
import json
import sys
import threading
import time

from scapy.all import AsyncSniffer, Raw, conf, send
from scapy.layers.inet import IP, UDP, defragment, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, defragment6, fragment6
from scapy.layers.ipsec import ESP, SecurityAssociation

conf.verb = 0


def outer(sa):
    return IPv6(src=sa["src"], dst=sa["dst"]) if ":" in sa["src"] else IP(src=sa["src"], dst=sa["dst"])


def make_sa(sa, esn_high=0, seq_lo=1):
    return SecurityAssociation(
        ESP, spi=sa["spi"], seq_num=seq_lo, crypt_algo=sa.get("alg", "AES-GCM"), crypt_key=bytes.fromhex(sa["key"]),
        tunnel_header=outer(sa), nat_t_header=UDP(sport=4500, dport=4500) if sa.get("natt") else None,
        esn_en=bool(sa.get("esn")), esn=esn_high)


def reassemble(pkts):
    """The sniffed frames as whole outer packets: scapy's own reassembly, not ours."""
    v4 = [p[IP] for p in pkts if IP in p]
    v6 = {}
    for p in pkts:
        if IPv6 in p and IPv6ExtHdrFragment in p:
            v6.setdefault(p[IPv6ExtHdrFragment].id, []).append(p[IPv6])
    whole = list(defragment(v4)) if v4 else []
    for frags in v6.values():
        whole.append(IPv6(bytes(defragment6(frags))))
    return whole


def decrypt(args):
    sa = json.loads(args.sa)
    ours = make_sa(sa)
    def from_appliance(p):
        # Only the appliance's own packets: the peer kernel's ICMP errors quote them too.
        ip = p[IP] if IP in p else p[IPv6] if IPv6 in p else None
        if ip is None or ip.src != sa["src"]:
            return False
        if IP in p and (ip.flags.MF or ip.frag):
            return True  # a piece of an outer packet the appliance fragmented
        nh = ip.proto if IP in p else ip.nh
        return nh in (50, 44) or (nh == 17 and UDP in p and p[UDP].dport == 4500)

    # "ready" only once the capture socket is open: the caller sends traffic on that line,
    # and a loaded machine can take seconds between start() and the first recv.
    listening = threading.Event()
    sniffer = AsyncSniffer(iface=args.iface, store=True, count=args.count * args.frags, timeout=args.timeout,
                           lfilter=from_appliance, started_callback=listening.set)
    sniffer.start()
    if not listening.wait(args.timeout):
        print(json.dumps({"seen": 0, "fragments": 0, "decrypted": 0, "errors": ["the sniffer never started"]}))
        return 1
    print(json.dumps({"ready": True}), flush=True)
    sniffer.join(timeout=args.timeout + 5)
    pkts = sniffer.results or []
    if args.pcap:
        from scapy.all import wrpcap
        wrpcap(args.pcap, pkts)  # before decrypting: scapy's decrypt edits packets in place
    fragments = 0
    if args.frags > 1:
        fragments = sum(1 for p in pkts if IPv6ExtHdrFragment in p or (IP in p and (p[IP].flags.MF or p[IP].frag)))
        pkts = reassemble(pkts)
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
    print(json.dumps({"seen": len(pkts), "fragments": fragments, "decrypted": ok, "errors": errors[:5],
                      "seqs": seqs[:8]}))
    return 0 if pkts and ok == len([s for s in seqs]) and not errors else 1


def send_cmd(args):
    sa = json.loads(args.sa)
    for i in range(args.count):
        seq = args.seq + i
        # The number goes in through the SA: scapy's encrypt(seq_num=0) means "not given".
        ours = make_sa(sa, esn_high=seq >> 32, seq_lo=seq & 0xffffffff)
        inner_l3 = IPv6 if ":" in args.src else IP
        payload = b"egress-peer-%d-" % seq
        inner = inner_l3(src=args.src, dst=args.dst) / UDP(sport=6000, dport=args.dport) / Raw(
            payload + b"." * max(0, args.size - len(payload)))
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
        pieces = [pkt]
        if args.fragment and IPv6 in pkt:
            body = pkt.payload.copy()
            hdr = pkt.copy()
            hdr.remove_payload()
            hdr.nh, hdr.plen = 44, None  # parsed from bytes, scapy would keep nh=ESP
            pieces = fragment6(hdr / IPv6ExtHdrFragment(id=0x5000 + i) / body, args.fragment)
        elif args.fragment:
            pkt.id = 0x5000 + i
            pkt.flags = 0
            pieces = fragment(pkt, fragsize=args.fragment - 20 - (args.fragment - 20) % 8)
        for _ in range(args.repeat):
            for piece in reversed(pieces):  # the last first: order must not matter
                send(piece)
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
    p.add_argument("--frags", type=int, default=1)
    p = sub.add_parser("send")
    p.add_argument("--sa", required=True)
    p.add_argument("--src", required=True)
    p.add_argument("--dst", required=True)
    p.add_argument("--dport", type=int, default=7000)
    p.add_argument("--count", type=int, default=5)
    p.add_argument("--seq", type=int, default=1)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--tamper", choices=["spi", "iv", "payload", "icv"])
    p.add_argument("--size", type=int, default=0)
    p.add_argument("--fragment", type=int, default=0)
    args = ap.parse_args()
    return decrypt(args) if args.mode == "decrypt" else send_cmd(args)


if __name__ == "__main__":
    sys.exit(main())
