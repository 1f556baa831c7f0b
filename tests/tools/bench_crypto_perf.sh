#!/usr/bin/env bash
# egress-bench --crypto-perf runs DPDK's own tool beside the ceiling: every tunnel case
# gets its rate in the JSON and a row in the side-by-side table, for AES-GCM and
# ChaCha20-Poly1305, both directions and IMIX; a missing tool or one whose output has no
# rate for a length is an error that names it, not a row of zeros. No speed is asserted.
set -uo pipefail
BENCH=${1:?usage: bench_crypto_perf.sh EGRESS_BENCH}
source "$(dirname "$0")/bench_test_lib.sh"

# The real tool, a few thousand operations per case.
timeout 240 "$BENCH" --crypto-perf --scenarios direct,esp-gcm128-decap,esp-gcm256-encap,wg-encap,wg-decap \
	--sizes 64,imix --packets 4096 --repeat 1 --json "$dir/out.json" >"$dir/table" 2>"$dir/err"
rc=$?
[[ $rc -eq 0 ]] || fail "egress-bench --crypto-perf exited $rc: $(tail -3 "$dir/err")"
python3 - "$dir/out.json" <<'PY' || fails=$((fails + 1))
import json, sys
rows = json.load(open(sys.argv[1]))["results"]
bad = []
for r in rows:
    tunnel = r["scenario"] != "direct"
    rate = r.get("crypto_perf_mpps")
    if tunnel and not (rate and rate > 0 and r.get("ceiling_over_crypto_perf", 0) > 0):
        bad.append(f'{r["scenario"]} {r["size"]}: no crypto-perf rate')
    if not tunnel and rate is not None:
        bad.append(f'{r["scenario"]} {r["size"]}: a crypto-perf rate for plain forwarding')
if len(rows) != 10:
    bad.append(f"{len(rows)} rows, wanted 10")
for b in bad:
    print("FAIL:", b)
sys.exit(1 if bad else 0)
PY
rows=$(sed -n '/The ceiling against dpdk-test-crypto-perf/,$p' "$dir/table" | grep -cE '^(esp|wg)-')
[[ $rows -eq 8 ]] || fail "the side-by-side table has $rows rows, wanted 8"

# No tool on PATH: refused, naming it.
out=$(timeout 120 env PATH="$dir/none" "$BENCH" --crypto-perf --scenarios wg-encap --sizes 64 --packets 1024 --repeat 1 2>&1)
rc=$?
[[ $rc -eq 2 && $out == *"dpdk-test-crypto-perf not found"* ]] || fail "without the tool: exit $rc, said: $out"

# A fake tool, which prints one row for the first length it is asked for, on the right
# lcore and with every operation done; FAKE_MODE changes one thing about the row:
#   good: nothing (the control: egress-bench takes its rate);
#   length: the length is one it was not asked for;
#   split: the row broken after its ninth field, the tenth on the next line.
mkdir -p "$dir/fake"
cat >"$dir/fake/dpdk-test-crypto-perf" <<'SH'
#!/bin/sh
# The worker lcore is the last of "-l MAIN,WORKER"; the operations follow --total-ops.
while [ $# -gt 0 ]; do
	case $1 in
	-l) lcore=${2#*,}; shift ;;
	--total-ops) ops=$2; shift ;;
	--buffer-sz) len=${2%%,*}; shift ;;
	esac
	shift
done
[ "$FAKE_MODE" = length ] && len=99
printf '    lcore id    Buf Size  Burst Size    Enqueued    Dequeued  Failed Enq  Failed Deq        MOps        Gbps  Cycles/Buf\n\n'
printf '%12s %11s %11s %11s %11s %11s %11s %11s %11s' "$lcore" "$len" 32 "$ops" "$ops" 0 0 5.0000 1.0000
[ "$FAKE_MODE" = split ] && printf '\n'
printf ' %11s\n' 400.00
SH
chmod +x "$dir/fake/dpdk-test-crypto-perf"
fake() {
	FAKE_MODE=$1 timeout 120 env PATH="$dir/fake:$PATH" "$BENCH" --crypto-perf --scenarios wg-encap --sizes 64 \
		--packets 1024 --repeat 1 --json "$dir/fake.json" 2>&1
}
out=$(fake good)
rc=$?
[[ $rc -eq 0 ]] && python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; sys.exit(r["crypto_perf_mpps"] != 5.0)' \
	"$dir/fake.json" || fail "the fake tool's good row was not taken (the two cases below prove nothing): exit $rc, said: $out"
out=$(fake length)
rc=$?
[[ $rc -eq 2 && $out == *"gave no rate for every length"* ]] || fail "with a tool missing a length: exit $rc, said: $out"
# The good run's JSON was opened again by this one, and a failed run leaves none.
[[ -e $dir/fake.json ]] && fail "a run that failed left its --json file"
out=$(fake split)
rc=$?
[[ $rc -eq 2 && $out == *"gave no rate for every length"* ]] || fail "with a row split over two lines: exit $rc, said: $out"

# Its runtime directories are gone (dataplane/runtime_dir.h).
left=$(find /var/run/dpdk "${XDG_RUNTIME_DIR:-/nonexistent}/dpdk" /tmp/dpdk -maxdepth 1 -name 'egress-bench-cp*' \
	2>/dev/null | wc -l)
[[ $left -eq 0 ]] || fail "$left dpdk-test-crypto-perf runtime directories left behind"

[[ $fails -eq 0 ]] && echo "ok: --crypto-perf rows, a missing tool, a tool without a length's rate or with a split row"
exit $((fails > 0))
