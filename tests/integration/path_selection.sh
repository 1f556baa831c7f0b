#!/usr/bin/env bash
# Link-quality probing and SLA-driven path selection, with the path simulator
# (egress-pathsim) on both uplink wires: wan0 probed with ICMP echo, wan1 with STAMP
# toward an independent reflector (stamp_peer.py). 80 ms more on the used path moves a
# latency-bound policy's flows; a blackhole fails them over within (N + 1) intervals plus
# a publish; flows come back only after the hold-down; jitter on both paths moves them
# at most a couple of times; and an independent STAMP sender gets correct answers from
# the appliance's reflector.
set -euo pipefail
WORK=$(mktemp -d /tmp/egress-paths.XXXXXX)
. "${EGRESS_SOURCE:?}/tests/integration/harness.sh"
TOPO=egp$$
TOPO_WIRES=1
. "$SRC/tools/topology.sh"
topology_down() { topo_down; }
SOCK=$WORK/ctl.sock
CTL="$BUILD/tools/egressctl -s $SOCK"
SIM="$BUILD/tools/egress-pathsim"
STAMP="$PY $SRC/tests/integration/stamp_peer.py"
INTERVAL=100 DOWN_AFTER=3 WINDOW=5 HOLD=3000

wire() { local n=$1; shift; "$SIM" ctl "$WORK/wire$n.sock" "$@" >/dev/null; }
# A policy's egresses now, comma-separated; via: voice's.
via_of() { $CTL --json call policy.list | jq -r ".policies[] | select(.name==\"$1\") | .via | join(\",\")"; }
via() { via_of voice; }
via_is() { [ "$(via)" = "$1" ]; }
# A policy's egresses with their shares: "direct-wan0:1,direct-wan1:0.25".
shares() { $CTL --json call policy.list | jq -r ".policies[] | select(.name==\"$1\") | [.via, .shares] | transpose | map(\"\(.[0]):\(.[1])\") | join(\",\")"; }
export -f shares
export CTL
path() { $CTL --json call path.list | jq -c ".paths[] | select(.name==\"$1\")"; }
now_ms() { date +%s%3N; }
# Waits until voice's flows use $1 (at most $2 s); prints how long it took in ms.
moved_to() {
	local t0 end
	t0=$(now_ms)
	end=$((SECONDS + $2))
	while [ $SECONDS -lt $end ]; do
		via_is "$1" && { echo $(($(now_ms) - t0)); return 0; }
		sleep 0.02
	done
	echo never
	return 1
}
# One count, even while the server is half way through writing a line: jq stops at the
# partial line with an error, and under pipefail "|| echo 0" after the pipeline used to
# print a second number, which made voice_to's arithmetic abort the whole script.
arrivals() { [ -f "$1" ] || { echo 0; return; }; { jq -c 'select(.port==6000)' "$1" 2>/dev/null || true; } | wc -l; }
voice_to() { # uplink log: fire 3 datagrams and see them arrive there
	local before
	before=$(arrivals "$1")
	ip netns exec "$NS_SITE" $TRAFFIC udp --fire --dst 203.0.113.10 --port 6000 --count 3 --gap 0.02 >/dev/null
	wait_for 5 bash -c "[ \$(jq -c 'select(.port==6000)' $1 2>/dev/null | wc -l) -ge $((before + 3)) ]"
}
moves() { jq -s 'map(select(.method=="path.selected" and .params.policy=="voice")) | length' "$WORK/events.log"; }

topo_up
topo_wires_start "$WORK" "$SIM"
topo_config "$WORK/base.json" "$SOCK" "$WORK/state.json" "$TOPO"
jq --argjson i $INTERVAL --argjson d $DOWN_AFTER --argjson w $WINDOW --argjson h $HOLD '
	.control.selection = {hold_down_ms: $h, latency_margin_ms: 5, latency_margin_pct: 10}
	| .egresses = [
		{name: "direct-wan0", type: "direct", port: "wan0",
		 probe: {target: "203.0.113.10", interval_ms: $i, window: $w, down_after: $d}},
		{name: "direct-wan1", type: "direct", port: "wan1",
		 probe: {target: "198.51.100.254", method: "stamp", interval_ms: $i, window: $w, down_after: $d}},
		{name: "v6-wan0", type: "direct", port: "wan0",
		 probe: {target: "2001:db8:99::10", interval_ms: $i, window: $w, down_after: $d}},
		{name: "v6-wan1", type: "direct", port: "wan1",
		 probe: {target: "fd00:30::fe", method: "stamp", interval_ms: $i, window: $w, down_after: $d}}]
	| .policies = [
		{name: "voice", priority: 10, match: {proto: "udp", dport: "6000"},
		 egresses: ["direct-wan0", "direct-wan1"], strategy: "lowest-latency", sla: {max_rtt_ms: 50}},
		{name: "bulk", priority: 20, match: {proto: "udp", dport: "7000"},
		 egresses: ["direct-wan0", "direct-wan1"], strategy: "weighted"},
		{name: "default", priority: 1000, match: {}, egresses: ["direct-wan0", "direct-wan1"]}]' \
	"$WORK/base.json" >"$WORK/egress.json"

ip netns exec "$NS_UP1" $STAMP reflect --addr 198.51.100.254 --seconds 240 >"$WORK/reflector.json" 2>&1 &
pids+=($!)
ip netns exec "$NS_UP1" $STAMP reflect --addr fd00:30::fe --seconds 240 >"$WORK/reflector6.json" 2>&1 &
pids+=($!)
for n in 0 1; do
	ns=$NS_UP0; [ $n = 1 ] && ns=$NS_UP1
	ip netns exec "$ns" $TRAFFIC serve --addr 203.0.113.10 --udp 6000 --log "$WORK/up$n.log" --seconds 240 &
	pids+=($!)
done
ip netns exec "$NS_DP" "$BUILD/dataplane/egress-dataplane" -c "$WORK/egress.json" >"$WORK/dataplane.log" 2>&1 &
pids+=($!)
"$BUILD/control/egress-control" -c "$WORK/egress.json" >"$WORK/control.log" 2>&1 &
pids+=($!)

check "the path simulators answer" wait_for 10 "$SIM" ctl "$WORK/wire1.sock" show
wire 1 set a2b delay_ms=10		# wan1 starts 10 ms slower
check "control attaches" wait_for 30 bash -c "$CTL --json status | jq -e '.dataplane.attached == true'"
check "both paths are probed and answered (ICMP on wan0, STAMP on wan1)" wait_for 10 bash -c \
	"$CTL --json call path.list | jq -e '[.paths[] | .window.answered >= $WINDOW] | all' >/dev/null"
check "STAMP sees wan1's 10 ms and ICMP sees wan0 fast ($(path direct-wan1 | jq -c .rtt_ms))" \
	bash -c "$CTL --json call path.list | jq -e '(.paths[1].rtt_ms.min >= 10) and (.paths[0].rtt_ms.avg < 10)' >/dev/null"
check "the independent reflector answered our STAMP session-sender" \
	bash -c "$CTL --json call path.list | jq -e '.paths[1].totals.answered > 0 and .paths[1].method == \"stamp\"' >/dev/null"
check "IPv6 probes are answered too: ICMPv6 echo on wan0, STAMP over IPv6 on wan1 ($(path v6-wan1 | jq -c .rtt_ms))" \
	wait_for 5 bash -c "$CTL --json call path.list | jq -e '[.paths[] | select(.name | startswith(\"v6-\")) | .window.answered >= $WINDOW and .last_probe_age_ms <= 1000] | length == 2 and all' >/dev/null"
check "... STAMP over IPv6 measures wan1's 10 ms" \
	bash -c "$CTL --json call path.list | jq -e '.paths[] | select(.name == \"v6-wan1\") | .rtt_ms.min >= 10' >/dev/null"
check "egressctl path list prints a row per egress" \
	bash -c "$CTL path list | grep -E '^v6-wan1 +up +stamp +[0-9.]+/[0-9.]+/[0-9.]+' >/dev/null"
"$BUILD/tools/egressctl" -s "$SOCK" --json events path.selected egress.state >"$WORK/events.log" 2>&1 &
pids+=($!)
check "voice (lowest-latency, RTT <= 50 ms) uses the faster wan0" wait_for 10 via_is direct-wan0
check "... and its datagrams leave by wan0" voice_to "$WORK/up0.log"
# A quarter (more than twice wan0's RTT) when wan0's window is clean; a half when a
# scheduling outlier of this loaded machine sits in it. lib-path_select has the exact table.
reduced='^direct-wan0:1,direct-wan1:0\.(25|5)$'
check "bulk (weighted) gives wan1, 10 ms slower than wan0, a reduced share" \
	wait_for 10 bash -c "[[ \"\$(shares bulk)\" =~ $reduced ]]"
# What the shares came from, when they were not that: this check has failed once in CI
# with wan1 flapping between up and degraded, and the shares unrecorded.
[[ "$(shares bulk)" =~ $reduced ]] ||
	echo "# bulk's shares $(shares bulk); paths $($CTL --json call path.list | jq -c '[.paths[] | {name, state, rtt_ms}]')"

# 80 ms more on wan0 (40 ms each way): it breaks the SLA and voice leaves at once.
wire 0 set both delay_ms=40
took=$(moved_to direct-wan1 10) || true
bound=$(((WINDOW + 1) * INTERVAL + 80 + 1500))
check "80 ms on wan0: voice moves to wan1 in ${took} ms (window $WINDOW x ${INTERVAL} ms + publish, bound $bound)" \
	[ "$took" != never -a "${took:-99999}" -le $bound ]
check "... wan0 shows degraded (it breaks voice's SLA)" \
	wait_for 3 bash -c "$CTL --json call path.list | jq -e '.paths[0].state == \"degraded\"'"
check "... and voice datagrams leave by wan1" voice_to "$WORK/up1.log"

# wan0 recovers and is better by more than the margin: flows return after the hold-down.
wire 0 reset both
sleep 1.5
check "wan0 restored: voice stays on wan1 during the ${HOLD} ms hold-down" via_is direct-wan1
took=$(moved_to direct-wan0 12) || true
check "... and moves back after it ($((took + 1500)) ms after the restore)" \
	[ "$took" != never ] && [ $((took + 1500)) -ge $HOLD ]

# Blackhole wan0: no answers for DOWN_AFTER intervals, and voice fails over.
wire 0 set both blackhole=1
took=$(moved_to direct-wan1 10) || true
bound=$(((DOWN_AFTER + 1) * INTERVAL + 1500))
check "wan0 blackholed: voice fails over in ${took} ms ((N + 1) x ${INTERVAL} ms + publish, bound $bound)" \
	[ "$took" != never -a "${took:-99999}" -le $bound ]
check "... wan0 is down, and said so in an egress.state event" wait_for 3 bash -c \
	"$CTL --json call path.list | jq -e '.paths[0].state == \"down\"' >/dev/null &&
	 jq -se 'map(select(.method==\"egress.state\" and .params.name==\"direct-wan0\" and .params.state==\"down\")) | length >= 1' $WORK/events.log >/dev/null"
check "... the default policy's flows left wan0 too" [ "$(via_of default)" = direct-wan1 ]
check "... and bulk's, at once: wan1 alone ($(shares bulk))" [ "$(via_of bulk)" = direct-wan1 ]
wire 0 reset both
sleep 1.5
check "wan0 back: voice stays on wan1 during the hold-down" via_is direct-wan1
took=$(moved_to direct-wan0 12) || true
check "... and returns after it ($((took + 1500)) ms after the restore)" \
	[ "$took" != never ] && [ $((took + 1500)) -ge $HOLD ]
check "... bulk takes wan0 back after the hold-down as well ($(shares bulk))" \
	wait_for 5 bash -c "[[ \"\$(shares bulk)\" =~ $reduced ]]"

# Random jitter on both paths for 6 s: at most a couple of moves.
before=$(moves)
wire 0 set both jitter_ms=8
wire 1 set both jitter_ms=8
sleep 6
wire 0 reset both
wire 1 reset both
after=$(moves)
check "8 ms of random jitter on both paths for 6 s moves voice $((after - before)) time(s) (at most 2)" \
	[ $((after - before)) -le 2 ]

# The appliance's own reflector, against an independent session-sender.
check "an independent STAMP sender gets RFC 8762 answers from the appliance's reflector" \
	bash -c "ip netns exec $NS_UP0 $STAMP send --dst 192.0.2.1 --count 5 >$WORK/stamp_send.json"
check "no probe answer was lost for want of a path" bash -c \
	"$CTL --json stats | jq -e '.drops.probe_no_path == 0 and .drops.probe_malformed == 0' >/dev/null"

if [ $fails -ne 0 ]; then
	echo "--- control log"; grep -v "rpc: client" "$WORK/control.log" | tail -30
	echo "--- dataplane log"; tail -10 "$WORK/dataplane.log"
	$CTL --json call path.list || true
fi
harness_finish
