#!/usr/bin/env bash
# egress-bench's --json holds figures that agree with each other, and plot.py draws them.
# No speed is asserted; the identities between the figures are, because a rate off by a
# thousand, Gbit/s from the wrong length or a ratio against the wrong reference would
# otherwise pass every other test: cycles a packet times Mpps is the TSC's MHz; Gbit/s is
# Mpps times the size's mean frame length; the ratio is Mpps over the reference, which for
# a tunnel is the better of the ceiling's two ways (for IMIX, length by length, so at
# least the better of the two combined); every packet came out and was checked. 1920
# packets are whole IMIX patterns (12 frames) and whole bursts (32).
set -uo pipefail
BENCH=${1:?usage: bench_json.sh EGRESS_BENCH PLOT_PY}
PLOT=${2:?usage: bench_json.sh EGRESS_BENCH PLOT_PY}
source "$(dirname "$0")/bench_test_lib.sh"

timeout 240 "$BENCH" --check --scenarios direct,esp-gcm128-encap,esp-gcm256-decap,wg-encap,wg-decap \
	--sizes 64,512,1420,imix --packets 1920 --repeat 1 --json "$dir/out.json" >"$dir/table" 2>"$dir/err"
rc=$?
[[ $rc -eq 0 ]] || fail "egress-bench --json exited $rc: $(tail -3 "$dir/err")"
python3 - "$dir/out.json" <<'PY' || fails=$((fails + 1))
import json, sys
doc = json.load(open(sys.argv[1]))
rows, mhz = doc["results"], doc["tsc_hz"] / 1e6
mean_len = {"64": 64, "512": 512, "1420": 1420, "imix": (7 * 64 + 4 * 570 + 1420) / 12}
bad = []

def near(a, b):
    return abs(a - b) <= 1e-6 * max(abs(a), abs(b), 1e-9)

if len(rows) != 20:
    bad.append(f"{len(rows)} rows, wanted 20")
for r in rows:
    at = f'{r["scenario"]} {r["size"]}'
    if not (r["mpps"] > 0 and near(r["cycles_per_packet"] * r["mpps"], mhz)):
        bad.append(f'{at}: {r["cycles_per_packet"]} cycles a packet at {r["mpps"]} Mpps is not {mhz} MHz')
    if not near(r["gbps"], r["mpps"] * mean_len[r["size"]] * 8 / 1000):
        bad.append(f'{at}: {r["gbps"]} Gbit/s at {r["mpps"]} Mpps of {mean_len[r["size"]]}-byte frames')
    if r["scenario"] == "direct":
        if r["reference_mpps"] != 0 or r["ratio"] != 0:
            bad.append(f"{at}: a reference for plain forwarding")
    else:
        best = max(r["ceiling_burst_mpps"], r["ceiling_direct_mpps"])
        ref_ok = r["reference_mpps"] >= best * (1 - 1e-9) if r["size"] == "imix" else r["reference_mpps"] == best
        if not (best > 0 and ref_ok):
            bad.append(f'{at}: reference {r["reference_mpps"]}, the ceiling\'s best {best}')
        if not near(r["ratio"], r["mpps"] / r["reference_mpps"]):
            bad.append(f'{at}: ratio {r["ratio"]} is not {r["mpps"]} / {r["reference_mpps"]}')
        if r["scenario"].startswith("esp") and r["ceiling_direct_mpps"] <= 0:
            bad.append(f"{at}: no AES-GCM direct API ceiling")
    if not (r["packets"] == r["out_packets"] == r["checked_frames"] == 1920 and r["drops"] == 0
            and r["check"] == "ok" and r["workers"] == 1):
        bad.append(f"{at}: packets, frames out, frames checked, drops, check, workers: "
                   f'{r["packets"]} {r["out_packets"]} {r["checked_frames"]} {r["drops"]} {r["check"]} {r["workers"]}')
for b in bad:
    print("FAIL:", b)
sys.exit(1 if bad else 0)
PY

# The plot: one bar per row, its height in proportion to its Mpps, each named.
if python3 "$PLOT" "$dir/out.json" "$dir/out.svg"; then
	python3 - "$dir/out.json" "$dir/out.svg" <<'PY' || fails=$((fails + 1))
import json, sys
import xml.etree.ElementTree as ET
rows = json.load(open(sys.argv[1]))["results"]
svg = ET.parse(sys.argv[2]).getroot()
ns = "{http://www.w3.org/2000/svg}"
bars = [(r, r.find(ns + "title").text) for r in svg.iter(ns + "rect") if r.find(ns + "title") is not None]
bad = []
if len(bars) != len(rows):
    bad.append(f"{len(bars)} bars for {len(rows)} rows")
heights = []
for rect, title in bars:
    name, rate = title.split(":")
    row = [r for r in rows if f'{r["scenario"]} {r["size"]}' == name]
    if len(row) != 1 or abs(float(rate.split()[0]) - row[0]["mpps"]) > 0.006:
        bad.append(f"bar {title!r} matches no row")
        continue
    heights.append((float(rect.get("height")), row[0]["mpps"]))
# Pixels a Mpps from the tallest bar; every other bar within the SVG's rounding of it.
if heights:
    h_top, mpps_top = max(heights)
    for h, mpps in heights:
        if abs(h - mpps * h_top / mpps_top) > 0.2:
            bad.append(f"a bar of {mpps:.2f} Mpps is {h} pixels high, the tallest {h_top} for {mpps_top:.2f}")
if "one worker" not in "".join(svg.itertext()):
    bad.append("the title does not say one worker")
for b in bad:
    print("FAIL:", b)
sys.exit(1 if bad else 0)
PY
else
	fail "plot.py failed"
fi
[[ $(python3 "$PLOT" "$dir/none.json" "$dir/x.svg" 2>&1) == *"none.json"* ]] || fail "plot.py on a missing file did not name it"

# A run ended by a signal leaves no --json file (it is made before the run, so a plot
# would otherwise read an empty one as this run's). The file appearing means the run is
# under way; both waits are bounded.
"$BENCH" --scenarios direct --sizes 64 --packets 100000000 --repeat 50 --no-ceiling \
	--json "$dir/killed.json" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do
	[[ -e $dir/killed.json ]] && break
	sleep 0.1
done
if [[ -e $dir/killed.json ]]; then
	sleep 0.5
	kill -TERM "$pid"
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null && fail "egress-bench did not end on SIGTERM within 10 s"
	wait "$pid"
	rc=$?
	[[ $rc -eq 143 ]] || fail "egress-bench on SIGTERM exited $rc, not by the signal (143)"
	[[ -e $dir/killed.json ]] && fail "a run ended by SIGTERM left its --json file"
else
	kill -KILL "$pid" 2>/dev/null
	wait "$pid"
	fail "egress-bench made no --json file within 10 s"
fi

[[ $fails -eq 0 ]] && echo "ok: the JSON's figures agree with each other, the plot has a bar for each, a killed run leaves no file"
exit $((fails > 0))
