#!/usr/bin/env bash
# Integration: the appliance (WORKERS workers, default 1) between a site namespace and two uplink namespaces, on
# net_af_packet over veth. Policy steers UDP and TCP flows (IPv4 and IPv6) to the uplink
# it names; policy.set moves them; SIGKILL of egress-control does not stop forwarding; a
# restarted control re-attaches with the persisted state.
set -euo pipefail
WORK=$(mktemp -d /tmp/egress-fwd.XXXXXX)
. "${EGRESS_SOURCE:?}/tests/integration/harness.sh"
TOPO=egf$$
. "$SRC/tools/topology.sh"
topology_down() { topo_down; }
SOCK=$WORK/ctl.sock
CTL="$BUILD/tools/egressctl -s $SOCK"

arrivals() { # ns-log proto port -> count of arrivals
	[ -f "$1" ] || { echo 0; return; }
	jq -c "select(.proto==\"$2\" and .port==$3)" "$1" | wc -l
}
site() { ip netns exec "$NS_SITE" "$@"; }

topo_up
topo_config "$WORK/egress.json" "$SOCK" "$WORK/state.json" "$TOPO" "${WORKERS:-1}"

start_dataplane() {
	ip netns exec "$NS_DP" "$BUILD/dataplane/egress-dataplane" -c "$WORK/egress.json" >>"$WORK/dataplane.log" 2>&1 &
	dp_pid=$!
	pids+=($dp_pid)
}
start_dataplane
"$BUILD/control/egress-control" -c "$WORK/egress.json" >"$WORK/control.log" 2>&1 &
ctl_pid=$!
pids+=($ctl_pid)

for ns in "$NS_UP0" "$NS_UP1"; do
	ip netns exec "$ns" $TRAFFIC serve --addr "$SERVER4" --addr "$SERVER6" --udp 5000,5001,5009 --tcp 5002 \
		--log "$WORK/$ns.log" --seconds 300 &
	pids+=($!)
done

attached() { $CTL --json status | jq -e '.dataplane.attached and .generation >= 1'; }
check "control attaches to the dataplane and publishes" wait_for 30 attached
check "the appliance answers ping on its site address" wait_for 10 site ping -c1 -W1 10.10.0.1

check "UDP/5000 (default policy) is echoed through the appliance" site $TRAFFIC udp --dst "$SERVER4" --port 5000 --count 5
check "... and arrived on uplink 0" [ "$(arrivals "$WORK/$NS_UP0.log" udp 5000)" -ge 5 ]
check "... and not on uplink 1" [ "$(arrivals "$WORK/$NS_UP1.log" udp 5000)" -eq 0 ]
check "UDP/5001 (bulk policy) is echoed" site $TRAFFIC udp --dst "$SERVER4" --port 5001 --count 5
check "... and arrived on uplink 1" [ "$(arrivals "$WORK/$NS_UP1.log" udp 5001)" -ge 5 ]
check "... and not on uplink 0" [ "$(arrivals "$WORK/$NS_UP0.log" udp 5001)" -eq 0 ]
check "the server saw the site's own source address" \
	[ "$(jq -r 'select(.port==5001) | .src' "$WORK/$NS_UP1.log" | sort -u)" = 10.10.0.2 ]
check "a 2 MiB TCP transfer over the default policy comes back intact" \
	site $TRAFFIC tcp --dst "$SERVER4" --port 5002 --bytes 2097152
check "... through uplink 0" [ "$(arrivals "$WORK/$NS_UP0.log" tcp 5002)" -ge 1 ]
check "IPv6 UDP/5001 follows the bulk policy too" site $TRAFFIC udp --dst "$SERVER6" --port 5001 --count 3
check "... arriving on uplink 1 from the site's address" \
	[ "$(jq -r 'select(.port==5001 and (.src|contains(":"))) | .src' "$WORK/$NS_UP1.log" | sort -u)" = fd00:10::2 ]
check "IPv6 TCP transfer comes back intact" site $TRAFFIC tcp --dst "$SERVER6" --port 5002 --bytes 524288
check "UDP/5009 is denied by the drop policy" bash -c "! ip netns exec $NS_SITE $TRAFFIC udp --dst $SERVER4 --port 5009 --timeout 1"
check "... and counted as policy_drop" bash -c "$CTL --json stats | jq -e '.drops.policy_drop >= 1'"

lookup=$($CTL --json call flow.lookup '{"src":"10.10.0.2","dst":"203.0.113.10","proto":"udp","sport":40000,"dport":5001}')
check "flow.lookup explains the bulk flow" \
	[ "$(jq -r '.policy + " " + .egress' <<<"$lookup")" = "bulk direct-wan1" ]

# While bulk UDP flows (6 s of it): egressctl top into a pipe, then a capture of the
# direct egress that carries it.
site $TRAFFIC udp --fire --dst "$SERVER4" --port 5001 --count 120 --gap 0.05 >/dev/null &
flow=$!
$CTL top -n 2 >"$WORK/top.txt" 2>&1 || true
check "egressctl top prints 2 frames of ports, egresses and workers" \
	bash -c "[ \$(grep -c '^--\$' '$WORK/top.txt') -eq 2 ] && grep -q '^PORT' '$WORK/top.txt' &&
		grep -q '^EGRESS' '$WORK/top.txt' && grep -q '^WORKER' '$WORK/top.txt'"
check "... with a packet rate on direct-wan1 while bulk flows ($(awk '$1=="direct-wan1" {print $4 " pps"; exit}' "$WORK/top.txt"))" \
	bash -c "awk '\$1==\"direct-wan1\" && \$4+0 > 0 {ok=1} END {exit !ok}' '$WORK/top.txt'"
check "a capture of direct egress direct-wan1 takes its frames out and the answers in" \
	bash -c "$CTL capture direct-wan1 -w '$WORK/wan1.pcapng' -c 8 -d 20 2>/dev/null &&
		tshark -r '$WORK/wan1.pcapng' -Y 'udp.dstport == 5001 && frame.packet_flags_direction == 2' 2>/dev/null | grep -q . &&
		tshark -r '$WORK/wan1.pcapng' -Y 'udp.srcport == 5001 && frame.packet_flags_direction == 1' 2>/dev/null | grep -q ."
wait $flow || true

# Move the default policy to uplink 1 and the bulk one to uplink 0.
cat >"$WORK/policies.json" <<'JSON'
{"policies": [
  {"name": "bulk", "priority": 10, "match": {"proto": "udp", "dport": "5001"}, "egresses": ["direct-wan0"]},
  {"name": "default", "priority": 1000, "match": {}, "egresses": ["direct-wan1"]}
]}
JSON
gen_before=$($CTL --json status | jq .generation)
set_reply=$($CTL --json policy set "$WORK/policies.json")
check "policy.set answers with a newer generation" [ "$(jq .generation <<<"$set_reply")" -gt "$gen_before" ]
up1_before=$(arrivals "$WORK/$NS_UP1.log" udp 5000)
check "after policy.set UDP/5000 is echoed" site $TRAFFIC udp --dst "$SERVER4" --port 5000 --count 5
check "... and now arrives on uplink 1" [ "$(arrivals "$WORK/$NS_UP1.log" udp 5000)" -ge $((up1_before + 5)) ]
check "state file holds the new policies" jq -e '.policies | length == 2' "$WORK/state.json"

# SIGKILL the control process: the dataplane keeps forwarding on the last table.
wan0_sent=$($CTL --json stats | jq '.egresses[] | select(.name=="direct-wan0") | .tx_packets')
kill -KILL "$ctl_pid"
wait "$ctl_pid" 2>/dev/null || true
up0_before=$(arrivals "$WORK/$NS_UP0.log" udp 5001)
check "with egress-control killed, UDP/5001 is still echoed" site $TRAFFIC udp --dst "$SERVER4" --port 5001 --count 5
check "... still following the last published table (uplink 0)" \
	[ "$(arrivals "$WORK/$NS_UP0.log" udp 5001)" -ge $((up0_before + 5)) ]
check "... and TCP still flows" site $TRAFFIC tcp --dst "$SERVER4" --port 5002 --bytes 262144

"$BUILD/control/egress-control" -c "$WORK/egress.json" >>"$WORK/control.log" 2>&1 &
ctl_pid=$!
pids+=($ctl_pid)
regen() { $CTL --json status | jq -e ".dataplane.attached and .generation > $(jq .generation <<<"$set_reply")"; }
check "a restarted control re-attaches and re-publishes" wait_for 30 regen
check "... with the policies operators set before the crash" \
	bash -c "$CTL --json policy list | jq -e '[.policies[].name] == [\"bulk\",\"default\"] and .policies[1].egresses == [\"direct-wan1\"]'"
check "counters go on across the control restart (direct-wan0 kept its ${wan0_sent} packets)" \
	bash -c "$CTL --json stats | jq -e '(.egresses[] | select(.name==\"direct-wan0\") | .tx_packets) >= ${wan0_sent} and ${wan0_sent} > 1000'"
check "traffic follows the re-published table" site $TRAFFIC udp --dst "$SERVER4" --port 5000 --count 3
if [ "${WORKERS:-1}" -gt 1 ]; then
	# Many flows spread over the queues: every worker must have forwarded some, and each
	# flow's return traffic finds its way whichever worker RSS hands it to.
	for sp in $(seq 41000 41015); do
		site $TRAFFIC udp --dst "$SERVER4" --port 5000 --sport "$sp" --count 2 >/dev/null || true
	done
	check "every worker forwarded traffic" \
		bash -c "$CTL --json stats | jq -e '[.workers[] | .tx_packets > 0] | all and length == ${WORKERS}'"
fi
check "counters: the default policy has hits and egress direct-wan1 sent packets" \
	bash -c "$CTL --json stats | jq -e '(.policies[] | select(.name==\"default\") | .hits) >= 3 and (.egresses[] | select(.name==\"direct-wan1\") | .tx_packets) >= 3'"

# A stalled dataplane: workers stop passing quiescent states. policy.set must come back
# with an error within its timeout, the old table must stay live, the daemon must answer.
policies_before=$($CTL --json policy list | jq -c '[.policies[] | {name, egresses}]')
kill -STOP "$dp_pid"
t0=$SECONDS
rc=0
reply=$($CTL --json call policy.set "$(cat "$WORK/policies.json")" 2>&1) || rc=$?
check "policy.set against stopped workers fails (exit $rc) instead of hanging" [ "$rc" -eq 1 ] && [ $((SECONDS - t0)) -le 5 ]
check "... and changes nothing" [ "$($CTL --json policy list | jq -c '[.policies[] | {name, egresses}]')" = "$policies_before" ]
check "... while status keeps answering" bash -c "$CTL --json status | jq -e '.generation >= 1'"
sleep 2.5
rc=0
$CTL --json call policy.set "$(cat "$WORK/policies.json")" >/dev/null 2>&1 || rc=$?
check "once the heartbeat is stale, status says detached and policy.set is refused" \
	bash -c "[ $rc -eq 1 ] && $CTL --json status | jq -e '.dataplane.attached == false'"
kill -CONT "$dp_pid"
up1_before=$(arrivals "$WORK/$NS_UP1.log" udp 5000)
check "after SIGCONT the old table still forwards (UDP/5000 to uplink 1)" \
	bash -c "ip netns exec $NS_SITE $TRAFFIC udp --dst $SERVER4 --port 5000 --count 3 >/dev/null && [ \$(jq -c 'select(.port==5000 and .proto==\"udp\")' $WORK/$NS_UP1.log | wc -l) -ge $((up1_before + 3)) ]"

# SIGKILL the dataplane and start it again: control notices the new epoch and re-publishes.
epoch=$($CTL --json status | jq -r '.dataplane.epoch')
kill -KILL "$dp_pid"
wait "$dp_pid" 2>/dev/null || true
t_start=$EPOCHREALTIME
start_dataplane
new_epoch() { $CTL --json status | jq -e ".dataplane.attached and .dataplane.epoch != \"$epoch\" and .dataplane.generation >= 1"; }
check "control re-attaches to a restarted dataplane and re-publishes" wait_for 30 new_epoch
# Reported, not bounded: most of it is the dataplane's own start (EAL, ports).
echo "#    re-published $(awk -v a="$t_start" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.2f", b - a}') s after the dataplane was started"
check "traffic flows through the restarted dataplane" site $TRAFFIC udp --dst "$SERVER4" --port 5001 --count 3
check "the control log reports the gap ($(grep -o 'after a gap of [0-9.]* s' "$WORK/control.log" | tail -1))" \
	bash -c "grep -q 'dataplane detached' '$WORK/control.log' && grep -q 'after a gap of [0-9.]* s: re-publishing' '$WORK/control.log'"

$CTL stats >"$WORK/stats.txt" 2>&1 || true
echo "--- egressctl stats"; cat "$WORK/stats.txt"
if [ $fails -ne 0 ]; then
	echo "--- dataplane log"; tail -30 "$WORK/dataplane.log"
	echo "--- control log"; tail -30 "$WORK/control.log"
fi
harness_finish
