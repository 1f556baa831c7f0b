#!/usr/bin/env bash
# egress-bench --check must catch a broken dataplane, not only pass a good one. Each
# sabotage below is a bug a worker could plausibly have: one line of the real source
# changed, in a copy of the tree built on its own. With it, the named scenario run under
# --check must fail for the expected reason alone: frames wrong, counters not adding up,
# or nonces used twice, the other two counts zero and the frame check not found blind.
# Without any, the same runs must pass. A sabotage whose line is no longer in the source
# fails the test, so the list cannot quietly stop testing.
#
# Usage: bench_sabotage.sh SOURCE_ROOT. Needs meson, ninja and the build's dependencies.
# About a minute on two cores: one build of egress-bench (20 seconds), then a rebuild of
# one file and a short run per sabotage. Build directories are left out of the copy by
# .gitignore's /build*/.
set -uo pipefail
SRC=${1:?usage: bench_sabotage.sh SOURCE_ROOT}
WORK=$(mktemp -d -t egress-sabotage.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM
BENCH=$WORK/build/tools/egress-bench
fails=0

# The case's summary line, as egress-bench prints it when a check fails.
FRAMES='[1-9][0-9]* of [0-9]+ checked frames wrong, 0 counters not adding up, 0 nonces used twice'
COUNTERS=' 0 of [0-9]+ checked frames wrong, [1-9][0-9]* counters not adding up, 0 nonces used twice'
NONCES=' 0 of [0-9]+ checked frames wrong, 0 counters not adding up, [1-9][0-9]* nonces used twice'

# The tree as it is, tracked files and new ones not ignored, without build directories.
mkdir "$WORK/src"
if git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# Tracked files deleted in the work tree are left out, not an error.
	(cd "$SRC" && git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do if [[ -e $f ]]; then printf '%s\0' "$f"; fi; done |
		tar --null -T - -cf -) | tar -xf - -C "$WORK/src"
else
	cp -a "$SRC"/. "$WORK/src" && rm -rf "$WORK"/src/build*
fi
if [[ $? -ne 0 || ! -f $WORK/src/meson.build ]]; then
	echo "FAIL: could not copy the tree from $SRC"
	exit 1
fi
if ! meson setup "$WORK/build" "$WORK/src" -Dtests=false >"$WORK/setup.log" 2>&1 ||
	! ninja -C "$WORK/build" tools/egress-bench >"$WORK/build.log" 2>&1; then
	cat "$WORK/setup.log" "$WORK/build.log"
	echo "FAIL: the copy of the tree does not build"
	exit 1
fi

run() { # scenarios sizes: egress-bench --check's output; its exit status
	# --foreground: egress-bench stays in the test's process group, where meson's own
	# timeout finds it.
	timeout --foreground 120 "$BENCH" --packets 2048 --repeat 1 --check --no-ceiling --scenarios "$1" --sizes "$2" 2>&1
}

# Replaces the one occurrence of old in file (relative to the tree) with new.
put_in() { # file old new
	python3 - "$WORK/src/$1" "$2" "$3" <<'PY'
import sys
path, old, new = sys.argv[1:]
text = open(path).read()
n = text.count(old)
if n != 1:
    sys.exit("%s has the line %d times, not once" % (path, n))
open(path, "w").write(text.replace(old, new))
PY
}

sabotage() { # name file old new scenarios sizes expect
	local name=$1 file=$2 old=$3 new=$4 scenarios=$5 sizes=$6 expect=$7 out rc why
	cp -p "$WORK/src/$file" "$WORK/saved"
	if ! why=$(put_in "$file" "$old" "$new" 2>&1); then
		echo "FAIL: $name: no longer applies: $why"
		fails=$((fails + 1))
		return
	fi
	if ! ninja -C "$WORK/build" tools/egress-bench >"$WORK/build.log" 2>&1; then
		tail -20 "$WORK/build.log"
		echo "FAIL: $name: does not compile"
		fails=$((fails + 1))
	else
		out=$(run "$scenarios" "$sizes")
		rc=$?
		if [[ $rc -eq 0 ]]; then
			echo "FAIL: $name: --check passed ($scenarios at $sizes)"
			fails=$((fails + 1))
		elif ! grep -Eq "$expect" <<<"$out" || grep -q "the frame check passed" <<<"$out"; then
			echo "FAIL: $name: --check failed (exit $rc), but not with /$expect/ alone:"
			grep -E "egress-bench: " <<<"$out" | head -5
			fails=$((fails + 1))
		else
			echo "ok: $name: $(grep -Eo "$expect" <<<"$out" | head -1 | sed 's/^ //') ($scenarios at $sizes)"
		fi
	fi
	# Back as it was, and newer than the sabotaged object, so the next build redoes it.
	cp "$WORK/saved" "$WORK/src/$file"
	touch "$WORK/src/$file"
}

ALL=direct,direct-snat,esp-gcm128-encap,esp-gcm128-decap,wg-encap,wg-decap
if ! out=$(run "$ALL" 64,imix); then
	echo "$out"
	echo "FAIL: --check fails on the dataplane as it is: nothing below would mean anything"
	exit 1
fi
echo "ok: --check passes on the dataplane as it is ($ALL at 64,imix)"

# Forwarding (dataplane/worker.c, cksum.h) and source NAT (lib/nat_packet.c)
sabotage "TTL lowered, header checksum left as it was" dataplane/cksum.h \
	'ip->hdr_checksum = (uint16_t)~(sum + (sum >> 16));' '(void)sum;' direct 64 "$FRAMES"
sabotage "TTL lowered twice" dataplane/worker.c \
	'dp_ipv4_ttl_decrement(p->l3);' 'dp_ipv4_ttl_decrement(p->l3), dp_ipv4_ttl_decrement(p->l3);' direct 64 "$FRAMES"
sabotage "a policy's hit counted twice" dataplane/worker.c \
	'eg_shm_policy_hits(w->shm)[pol->id]++;' 'eg_shm_policy_hits(w->shm)[pol->id] += 2;' direct 64 "$COUNTERS"
sabotage "an egress's bytes off by one" dataplane/worker.c \
	'ec->tx_bytes += rte_pktmbuf_pkt_len(m);' 'ec->tx_bytes += rte_pktmbuf_pkt_len(m) + 1;' direct 64 "$COUNTERS"
sabotage "NAT leaves the UDP checksum on the old address" lib/nat_packet.c \
	'	l4_adjust(csum, udp, a, na, 4);' '' direct-snat 64 "$FRAMES"
sabotage "NAT leaves the header checksum on the old address" lib/nat_packet.c \
	'	csum_adjust(ip_csum, a, na, 4);' '' direct-snat 64 "$FRAMES"

# ESP (dataplane/esp_outb.c, esp_inb.c)
sabotage "ESP sequence numbers handed out twice" dataplane/esp_outb.c \
	'b->p[j].seq = ++base;' 'b->p[j].seq = base + 1;' esp-gcm128-encap 64 "$NONCES"
sabotage "an SA's outbound bytes off by one" dataplane/esp_outb.c \
	'sc->bytes += p->l3_off;' 'sc->bytes += p->l3_off + 1u;' esp-gcm128-encap 64 "$COUNTERS"
sabotage "ESP drops the inner DSCP and ECN" dataplane/esp_outb.c \
	'0x45u << 24 | (uint32_t)tos << 16 |' '0x45u << 24 |' esp-gcm128-encap 64 "$FRAMES"
sabotage "ESP drops the inner DF" dataplane/esp_outb.c \
	'(df ? RTE_IPV4_HDR_DF_FLAG : 0)' '0' esp-gcm128-encap 64 "$FRAMES"
sabotage "ESP padding 1, 3 instead of 1, 2" dataplane/esp_outb.c \
	'rte_cpu_to_be_32(0x01020304u)' 'rte_cpu_to_be_32(0x01030304u)' esp-gcm128-encap imix "$FRAMES"
sabotage "an SA's inbound bytes counted with the padding" dataplane/esp_inb.c \
	'sc->bytes += inner_len;' 'sc->bytes += ct_len;' esp-gcm128-decap 64 "$COUNTERS"

# WireGuard (dataplane/wg_outb.c, wg_inb.c)
sabotage "WireGuard counters handed out twice" dataplane/wg_outb.c \
	'b->p[j].counter = base++;' 'b->p[j].counter = base;' wg-encap 64 "$NONCES"
sabotage "a peer's sent bytes off by 16" dataplane/wg_outb.c \
	'wc->tx_bytes += p->off;' 'wc->tx_bytes += p->off + 16u;' wg-encap 64 "$COUNTERS"
sabotage "WireGuard copies DSCP out" dataplane/wg_outb.c \
	'(uint32_t)(tos & 3) << 16 | (20 + udp_len)' '(uint32_t)tos << 16 | (20 + udp_len)' wg-encap 64 "$FRAMES"
sabotage "WireGuard outer TTL one too low" dataplane/wg_outb.c \
	'(uint32_t)OUTER_TTL << 24 | (uint32_t)IPPROTO_UDP << 16' '(uint32_t)(OUTER_TTL - 1) << 24 | (uint32_t)IPPROTO_UDP << 16' \
	wg-encap 64 "$FRAMES"
sabotage "WireGuard padding not zeros" dataplane/wg_outb.c \
	'memset(tail, 0, 16);' 'memset(tail, 1, 16);' wg-encap 64 "$FRAMES"
sabotage "a peer's received bytes without the header" dataplane/wg_inb.c \
	'wc->rx_bytes += plen + WG_DATA_MIN_LEN;' 'wc->rx_bytes += plen;' wg-decap 64 "$COUNTERS"

if [[ $fails -ne 0 ]]; then
	echo "$fails sabotage(s) not caught as they should be"
	exit 1
fi
echo "every sabotage caught"
