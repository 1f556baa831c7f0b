#!/usr/bin/env bash
# Integration: egress-bench --live on a dataplane driven over net_memif, as the README's
# "Driving a running dataplane over net_memif" does it: config/bench-memif.json with its
# sockets moved into WORK, dpdk-testpmd txonly generating into the site port and a second
# dpdk-testpmd in rxonly taking what leaves the uplink. No namespaces: memif is a unix
# socket and shared memory. The peers start after the dataplane (a memif client fails when
# the server's socket is not there yet); at the end they stop polling, the dataplane stops,
# and only then do they quit (see on_exit). egress-bench --live must also refuse an instance
# that does not run and notice a dataplane that goes away during its window.
# The checks compare counts, never rates: on two cores four pollers share the CPUs.
set -euo pipefail
WORK=$(mktemp -d /tmp/egress-bench-memif.XXXXXX)
. "${EGRESS_SOURCE:?}/tests/integration/harness.sh"
command -v dpdk-testpmd >/dev/null || { echo "SKIP: dpdk-testpmd needed (Debian dpdk-dev)"; exit 77; }
INSTANCE=bm$$
SOCK=$WORK/ctl.sock
CTL="$BUILD/tools/egressctl -s $SOCK"
BENCH=$BUILD/tools/egress-bench
CFG=$WORK/egress.json
# A burst: packets a worker has counted as received but not yet as sent when a sample is
# taken (one worker here), which a window can see sent without their receipt.
BURST=32
export CTL

jq --arg w "$WORK" --arg i "$INSTANCE" '.instance = $i | .control.socket = $w + "/ctl.sock" |
	.control.state_file = $w + "/state.json" |
	.dataplane.ports[].device |= sub("socket=/run/egress/"; "socket=" + $w + "/")' \
	"$SRC/config/bench-memif.json" >"$CFG"
port_mac() { jq -r --arg p "$1" '.dataplane.ports[] | select(.name == $p) | .device | capture("mac=(?<m>[0-9a-f:]+)").m' "$CFG"; }
LAN_MAC=$(port_mac lan0)
# The generator is the site host, the sink the gateway: the config's static neighbours.
GEN_MAC=$(jq -r '.dataplane.ports[] | select(.name == "lan0") | .neighbours[0].mac' "$CFG")
SINK_MAC=$(jq -r '.dataplane.ports[] | select(.name == "wan0") | .neighbours[] | select(.ip == "192.0.2.254") | .mac' "$CFG")
check "the config's memif sockets are moved into WORK" \
	[ "$(grep -c "socket=$WORK/memif-" "$CFG")" -eq 2 ]

# Waits at most $2 seconds for PID $1 to end; its exit status, or 124 if it did not.
wait_end() { # pid seconds
	local end=$((SECONDS + $2)) rc=0
	while kill -0 "$1" 2>/dev/null; do
		[ $SECONDS -lt $end ] || return 124
		sleep 0.1
	done
	wait "$1" || rc=$?
	return $rc
}
# Takes a PID that has ended off harness_cleanup's list, so that nothing signals the number
# again once another process may have it.
forget() { # pid
	local keep=() p
	for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	pids=("${keep[@]}")
}
# Ends PID $1 with SIGTERM (SIGKILL after $2 seconds) and forgets it; its exit status.
stop_pid() { # pid seconds
	local rc=0
	kill "$1" 2>/dev/null || true
	wait_end "$1" "$2" || rc=$?
	if [ $rc -eq 124 ]; then
		kill -KILL "$1" 2>/dev/null || true
		wait "$1" 2>/dev/null || true
	fi
	forget "$1"
	return $rc
}

# A dpdk-testpmd memif client on one CPU (its main and forwarding lcores both there), in
# interactive mode with its commands coming from a fifo we hold open: "start" and "stop"
# forwarding, "quit" closes its port and exits.
declare -A tp_pid tp_fd tp_stopped
testpmd_start() { # name socket mac cpu testpmd-args...
	local name=$1 sock=$2 mac=$3 cpu=$4 fd
	shift 4
	mkfifo "$WORK/$name.in"
	# Line-buffered, so that what "stop" prints is in the log before testpmd exits.
	stdbuf -oL timeout 90 dpdk-testpmd --no-huge -m 512 --no-pci --lcores="(0,1)@$cpu" --file-prefix="$INSTANCE-$name" \
		--vdev="net_memif0,role=client,id=0,socket=$sock,socket-abstract=no,mac=$mac" -- \
		-i --total-num-mbufs=16384 "$@" <"$WORK/$name.in" >"$WORK/$name.log" 2>&1 &
	tp_pid[$name]=$!
	exec {fd}>"$WORK/$name.in"
	tp_fd[$name]=$fd
}
testpmd_cmd() { # name command
	# In a subshell: should testpmd be gone, SIGPIPE ends that and not the script.
	[ -z "${tp_pid[$1]:-}" ] || (echo "$2" >&"${tp_fd[$1]}") 2>/dev/null
}
# Stops forwarding, so that it no longer polls its port, and waits (bounded) for the
# statistics it prints then.
testpmd_stop() { # name
	[ -n "${tp_pid[$1]:-}" ] && [ -z "${tp_stopped[$1]:-}" ] || return 0
	tp_stopped[$1]=1
	testpmd_cmd "$1" stop || return 1
	wait_for 15 grep -q 'Accumulated forward statistics' "$WORK/$1.log"
}
# Quits it, bounded (SIGTERM after 15 s, which closes the port too); its exit status.
testpmd_quit() { # name
	local name=$1 pid=${tp_pid[$1]:-} fd=${tp_fd[$1]:-} rc=0
	[ -n "$pid" ] || return 0
	testpmd_cmd "$name" quit || true
	wait_end "$pid" 15 || rc=$?
	[ $rc -ne 124 ] || stop_pid "$pid" 10 || true
	exec {fd}>&-
	unset "tp_pid[$name]"
	return $rc
}
# RX-packets or TX-packets from the statistics testpmd prints as it stops forwarding.
testpmd_count() { # name RX|TX
	awk -v k="$2-packets:" '$1 == k {print $2; exit}' "$WORK/$1.log"
}

# DPDK 22.11's memif driver can crash the side that is still polling when its peer
# disconnects (the peer's regions are unmapped under the receive loop), whether or not the
# peer closed its port cleanly. So nothing polls a memif while its peer goes: the testpmds
# stop forwarding, the dataplane stops (workers first, then its ports), then the testpmds
# quit. The same order on any way out.
on_exit() {
	local rc=$? n
	for n in gen sink; do testpmd_stop "$n" || true; done
	[ -z "${ctl_pid:-}" ] || stop_pid "$ctl_pid" 10 || true
	[ -z "${dp_pid:-}" ] || stop_pid "$dp_pid" 20 || true
	for n in gen sink; do testpmd_quit "$n" || true; done
	# What the three DPDK processes leave in /var/run/dpdk, and a crashed dataplane's segment.
	rm -rf "/var/run/dpdk/$INSTANCE-gen" "/var/run/dpdk/$INSTANCE-sink" "/var/run/dpdk/egress-$INSTANCE"
	rm -f "/dev/shm/egress-$INSTANCE"
	(exit $rc)
	harness_cleanup
}
trap on_exit EXIT

"$BUILD/dataplane/egress-dataplane" -c "$CFG" >"$WORK/dataplane.log" 2>&1 &
dp_pid=$!
pids+=($dp_pid)
check "the dataplane listens on both memif sockets" \
	wait_for 30 test -S "$WORK/memif-lan.sock" -a -S "$WORK/memif-wan.sock"
"$BUILD/control/egress-control" -c "$CFG" >"$WORK/control.log" 2>&1 &
ctl_pid=$!
pids+=($ctl_pid)
attached() { $CTL --json status | jq -e '.dataplane.attached and .generation >= 1'; }
check "control attaches to the dataplane and publishes" wait_for 30 attached
lookup() { # dst egress
	$CTL --json call flow.lookup "{\"src\":\"10.10.0.2\",\"dst\":\"$1\",\"proto\":\"udp\",\"sport\":9,\"dport\":9}" |
		jq -e --arg e "$2" '.egress == $e' >/dev/null
}
check "198.51.100.0/24 leaves direct and 10.21.0.0/16 through ESP, as the config says" \
	bash -c "$(declare -f lookup); lookup 198.51.100.1 direct-wan0 && lookup 10.21.0.1 esp-bench"

link_up() { $CTL --json stats | jq -e --arg p "$1" '.ports[] | select(.name == $p) | .link == "up"'; }
testpmd_start sink "$WORK/memif-wan.sock" "$SINK_MAC" 1 --forward-mode=rxonly
check "the sink (testpmd rxonly) connects to wan0" wait_for 30 link_up wan0
testpmd_cmd sink start
testpmd_start gen "$WORK/memif-lan.sock" "$GEN_MAC" 0 --forward-mode=txonly --txpkts=64 \
	--tx-ip=10.10.0.2,198.51.100.1 --eth-peer=0,"$LAN_MAC"
check "the generator (testpmd txonly) connects to lan0" wait_for 30 link_up lan0
testpmd_cmd gen start
forwarding() { $CTL --json stats | jq -e '[.ports[] | select(.name == "wan0") | .tx_packets > 0] == [true]'; }
check "frames from the generator leave wan0" wait_for 30 forwarding

rc=0
"$BENCH" --live "$INSTANCE" --seconds 3 --json "$WORK/live.json" >"$WORK/live.log" 2>&1 || rc=$?
cat "$WORK/live.log"
check "egress-bench --live runs its 3 s window (exit $rc)" [ $rc -eq 0 ]
port() { jq -r --arg p "$1" --arg k "$2" '.ports[] | select(.name == $p) | .[$k]' "$WORK/live.json"; }
lan_rx=$(port lan0 rx_packets)
wan_tx=$(port wan0 tx_packets)
check "lan0 received frames in the window ($lan_rx)" [ "$lan_rx" -gt 0 ]
check "wan0 sent frames in the window ($wan_tx)" [ "$wan_tx" -gt 0 ]
check "wan0 sent no more than lan0 received (and one burst in flight)" [ "$wan_tx" -le $((lan_rx + BURST)) ]
summary_ok() {
	jq -e '(.intervals | length) == 3 and .seconds > 2.5 and (.workers | length) == 1 and
		.workers[0].busy_fraction >= 0 and .workers[0].busy_fraction <= 1 and
		([.drops[]] | add // 0) == .drops_total and ([.drops[]] | all(. > 0))' "$WORK/live.json" >/dev/null
}
check "the summary has 3 intervals, one worker with its busy share, drops that add up" summary_ok
check "... and the same figures as a table, per interval and in the summary" \
	bash -c "[ \$(grep -cE '^ +[0-9.]+  (lan0|wan0) ' '$WORK/live.log') -eq 6 ] &&
		grep -qE '^lan0 +site +$lan_rx ' '$WORK/live.log' && grep -q '^WORKER' '$WORK/live.log'"

out=$("$BENCH" --live "nosuch$$" --seconds 1 2>&1) && rc=0 || rc=$?
named() { [ $rc -eq 2 ] && grep -q "/egress-nosuch$$" <<<"$out"; }
check "no such instance: exit 2 naming the segment" named

check "the generator stops forwarding" testpmd_stop gen
gen_tx=$(testpmd_count gen TX)
check "... having sent ${gen_tx:-nothing}" [ "${gen_tx:-0}" -gt 0 ]
check "the sink stops forwarding" testpmd_stop sink
sink_rx=$(testpmd_count sink RX)
check "the sink received ${sink_rx:-nothing}, at least what wan0 sent in the window" \
	[ "${sink_rx:-0}" -gt 0 -a "${sink_rx:-0}" -ge "$wan_tx" ]
check "... and no more than wan0 sent in all" \
	bash -c "$CTL --json stats | jq -e '.ports[] | select(.name == \"wan0\") | .tx_packets >= ${sink_rx:-0}' >/dev/null"

# A window the dataplane does not outlive: its numbers would mix two runs.
"$BENCH" --live "$INSTANCE" --seconds 30 >"$WORK/live-stop.log" 2>&1 &
bench_pid=$!
pids+=($bench_pid)
check "a second window starts" wait_for 10 grep -q '^ *TIME_S' "$WORK/live-stop.log"
stop_pid "$ctl_pid" 10 || true
ctl_pid=
rc=0
stop_pid "$dp_pid" 20 || rc=$?
dp_pid=
check "the dataplane stops cleanly, its peers idle (exit $rc)" [ $rc -eq 0 ]
rc=0
wait_end "$bench_pid" 10 || rc=$?
forget "$bench_pid"
check "egress-bench --live says the dataplane went away, and exits 1 (exit $rc)" \
	bash -c "[ $rc -eq 1 ] && grep -qE 'dataplane .*(stopped|gone).*no summary' '$WORK/live-stop.log'"
rc=0
testpmd_quit gen || rc=$?
check "the generator quits (exit $rc)" [ $rc -eq 0 ]
rc=0
testpmd_quit sink || rc=$?
check "the sink quits (exit $rc)" [ $rc -eq 0 ]

harness_finish
