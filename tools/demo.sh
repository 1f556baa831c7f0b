#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, and shows the whole idea
# in about a minute, on virtual devices. A site sends a voice-like call and bulk TCP
# transfers; the appliance has three egress paths to the same server address:
#
#   direct    out of wan0, through path simulator wire0, to the internet host up0
#   WireGuard out of wan1 to wireguard-go on host up1 (a "POP" with the server behind it)
#   ESP       out of wan1, routed by up1 to a second egress instance (pop3), which
#             decrypts and hands the traffic to the server host behind it
#
# The tunnels run over a path 10 ms long. Each path is probed through itself. Voice takes
# the lowest-latency path within a 40 ms SLA; bulk is spread over both tunnels by weight
# and score. Then the path simulator adds 80 ms to the direct path, voice moves off it
# within about a second (egressctl capture records the call inside the tunnel it moved
# to), and comes back after the hold-down once the path recovers. A summary closes the
# run, with the Prometheus metrics and the capture file it produced.
#
# Two cores carry two dataplanes, wireguard-go, two path simulators and the traffic, so
# a probe now and then waits tens of milliseconds for a CPU: the probe window (20) and
# down_after (5) are sized so that such outliers move no flows.
#
# Needs root (network namespaces). Everything it creates is removed at the end. The test
# suite runs it too (tests/integration/meson.build, with EGRESS_BUILD set): then it skips
# installing and building, and its exit status says whether the story held.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (it creates network namespaces)" >&2; exit 1; }
if [ -n "${EGRESS_BUILD:-}" ]; then
	BUILD=$EGRESS_BUILD
else
	BUILD=${BUILD:-build}
	bash tools/install-deps.sh
	[ -d "$BUILD" ] || meson setup "$BUILD" >/dev/null
	ninja -C "$BUILD" >/dev/null
fi

TOPO=egd$$
TOPO_WIRES=1
. tools/topology.sh
NS_POP3=$TOPO-pop3		# the second egress instance
NS_SRV3=$TOPO-srv3		# the server host behind it
WGIF=egdw$$			# wireguard-go's interface (its socket directory is global)
WORK=$(mktemp -d /tmp/egress-demo.XXXXXX)
CTL="$BUILD/tools/egressctl -s $WORK/a.sock"
CTL3="$BUILD/tools/egressctl -s $WORK/pop3.sock"
SIM="$BUILD/tools/egress-pathsim"
TRAFFIC="/usr/bin/python3 $SRC/tools/traffic.py"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	topo_down
	for ns in "$NS_POP3" "$NS_SRV3"; do ip netns del "$ns" 2>/dev/null || true; done
	rm -f "/var/run/wireguard/$WGIF.sock"
	if [ -n "${EGRESS_BUILD:-}" ] && [ "${KEEP:-0}" != 1 ]; then
		rm -rf "$WORK"		# a test run
	else
		echo "demo: logs and configs kept in $WORK"
	fi
}
trap cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
failed=0
expect() { # description, command...: the story's claims, checked as it goes
	local what=$1
	shift
	if "$@"; then
		printf '   \033[32mok\033[0m  %s\n' "$what"
	else
		printf '   \033[31mNOT\033[0m %s\n' "$what"
		failed=$((failed + 1))
	fi
}
wait_until() { # seconds, command...
	local end=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.1
	done
}

# ---- namespaces: topology.sh's site, appliance, uplink hosts and wires, plus pop3 ----
topo_down
topo_up
for ns in "$NS_POP3" "$NS_SRV3"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
_topo_link "$NS_UP1" tob "$NS_POP3" p3wan
_topo_link "$NS_POP3" p3lan "$NS_SRV3" s0
ip netns exec "$NS_POP3" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip -n "$NS_UP1" addr add 198.18.0.1/24 dev tob
ip netns exec "$NS_UP1" sysctl -qw net.ipv4.ip_forward=1
ip -n "$NS_SRV3" addr add 10.30.0.2/24 dev s0
ip -n "$NS_SRV3" addr add "$SERVER4"/32 dev lo
ip -n "$NS_SRV3" route add 10.10.0.0/24 via 10.30.0.1
topo_wires_start "$WORK" "$SIM"

# ---- keys: WireGuard as wg genkey makes them, ESP keys fresh from the kernel ----
umask 077
for k in us pop2; do wg genkey >"$WORK/$k.key"; wg pubkey <"$WORK/$k.key" >"$WORK/$k.pub"; done
K_OUT=$(od -An -tx1 -N20 /dev/urandom | tr -d ' \n')
K_IN=$(od -An -tx1 -N20 /dev/urandom | tr -d ' \n')
umask 022

# ---- wireguard-go on up1: the appliance's peer, the server address behind it ----
ip netns exec "$NS_UP1" env WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 wireguard-go -f "$WGIF" \
	>"$WORK/wireguard-go.log" 2>&1 &
pids+=($!)
wait_until 10 ip -n "$NS_UP1" link show "$WGIF" || { echo "demo: wireguard-go did not start" >&2; exit 1; }
ip netns exec "$NS_UP1" wg set "$WGIF" private-key "$WORK/pop2.key" listen-port 51820 \
	peer "$(cat "$WORK/us.pub")" allowed-ips 10.10.0.0/24
ip -n "$NS_UP1" link set "$WGIF" up
ip -n "$NS_UP1" route replace 10.10.0.0/24 dev "$WGIF"	# answers to the site go back in the tunnel

# ---- the appliance (pop1): three paths, each probed through itself; three policies ----
topo_config "$WORK/base.json" "$WORK/a.sock" "$WORK/a.state.json" "$TOPO-pop1"
PROBE='{"target": "203.0.113.10", "interval_ms": 100, "window": 20, "down_after": 5}'
METRICS_PORT=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
jq --arg mport "$METRICS_PORT" --arg key "$(cat "$WORK/us.key")" --arg peer "$(cat "$WORK/pop2.pub")" --arg ko "$K_OUT" --arg ki "$K_IN" \
	--argjson probe "$PROBE" '
	.control.selection = {hold_down_ms: 5000}
	| .control.metrics = "127.0.0.1:\($mport)"
	| .wireguard = {private_key: $key, listen_port: 51820,
		peers: [{name: "pop2", public_key: $peer, endpoint: "198.51.100.254:51820",
			 allowed_ips: ["203.0.113.0/24"]}]}
	| .ipsec = {sas: [
		{spi: 4097, direction: "out", local: "198.51.100.1", remote: "198.18.0.2", aead: "aes-gcm-128", key: $ko, esn: true},
		{spi: 8193, direction: "in", local: "198.51.100.1", remote: "198.18.0.2", aead: "aes-gcm-128", key: $ki, esn: true}]}
	| .egresses = [
		{name: "direct", type: "direct", port: "wan0", probe: $probe},
		{name: "wg-pop2", type: "wireguard", peer: "pop2", probe: $probe},
		{name: "esp-pop3", type: "ipsec", sa_out: 4097, sa_in: 8193, probe: $probe}]
	| .policies = [
		{name: "voice", priority: 10, match: {proto: "udp", dport: "6000"},
		 egresses: ["direct", "wg-pop2", "esp-pop3"], strategy: "lowest-latency", sla: {max_rtt_ms: 40}},
		{name: "bulk", priority: 20, match: {proto: "tcp", dport: "5002"},
		 egresses: ["wg-pop2", "esp-pop3"], strategy: "weighted"},
		{name: "default", priority: 1000, match: {}, egresses: ["direct", "wg-pop2"]}]' \
	"$WORK/base.json" >"$WORK/pop1.json"

# ---- pop3: the far end of the ESP tunnel, routing the server's prefix to its site ----
jq -n --arg name "$TOPO-pop3" --arg sock "$WORK/pop3.sock" --arg state "$WORK/pop3.state.json" \
	--arg ko "$K_OUT" --arg ki "$K_IN" '{
	instance: $name,
	dataplane: {eal: ["--no-huge", "-m", "256", "--no-pci", "-l", "0-1"], workers: 1, idle_backoff: true,
		ports: [
			{name: "lan0", role: "site", device: "net_af_packet0,iface=p3lan", ipv4: "10.30.0.1/24"},
			{name: "wan0", role: "uplink", device: "net_af_packet1,iface=p3wan", ipv4: "198.18.0.2/24",
			 gateway: "198.18.0.1"}],
		routes: [{prefix: "203.0.113.0/24", via: "10.30.0.2", port: "lan0"}]},
	control: {socket: $sock, state_file: $state},
	ipsec: {sas: [
		{spi: 8193, direction: "out", local: "198.18.0.2", remote: "198.51.100.1", aead: "aes-gcm-128", key: $ki, esn: true},
		{spi: 4097, direction: "in", local: "198.18.0.2", remote: "198.51.100.1", aead: "aes-gcm-128", key: $ko, esn: true}]},
	egresses: [{name: "esp-pop1", type: "ipsec", sa_out: 8193, sa_in: 4097}],
	policies: [{name: "to-pop1", priority: 10, match: {dst: ["10.10.0.0/24"]}, egresses: ["esp-pop1"],
		    strategy: "pinned"}]}' >"$WORK/pop3.json"

# ---- servers: the same address on all three hosts; where a flow lands shows its path ----
for host in "$NS_UP0:direct" "$NS_UP1:wg" "$NS_SRV3:esp"; do
	ip netns exec "${host%%:*}" $TRAFFIC serve --addr "$SERVER4" --udp 6000 --tcp 5002 \
		--log "$WORK/server-${host##*:}.log" --seconds 240 &
	pids+=($!)
done
ip netns exec "$NS_POP3" "$BUILD/dataplane/egress-dataplane" -c "$WORK/pop3.json" >"$WORK/pop3-dataplane.log" 2>&1 &
pids+=($!)
"$BUILD/control/egress-control" -c "$WORK/pop3.json" >"$WORK/pop3-control.log" 2>&1 &
pids+=($!)
ip netns exec "$NS_DP" "$BUILD/dataplane/egress-dataplane" -c "$WORK/pop1.json" >"$WORK/pop1-dataplane.log" 2>&1 &
pids+=($!)
"$BUILD/control/egress-control" -c "$WORK/pop1.json" >"$WORK/pop1-control.log" 2>&1 &
pids+=($!)

say "Topology"
cat <<EOF
   site 10.10.0.2 -- [pop1: lan0 | wan0 -> wire0 -> up0 (server $SERVER4)              direct   ]
                     [          | wan1 -> wire1 (+10 ms) -> up1: wireguard-go (server) wg-pop2  ]
                     [          |                  up1 -> pop3 (ESP) -> server         esp-pop3 ]
EOF
# The tunnels' far ends are 10 ms away (5 ms each way on wire1); the direct path is near.
"$SIM" ctl "$WORK/wire1.sock" set both delay_ms=5 >/dev/null
wait_until 40 bash -c "$CTL --json status | jq -e '.dataplane.attached' && $CTL3 --json status | jq -e '.dataplane.attached'" ||
	{ echo "demo: the appliances did not attach (see $WORK/*.log)" >&2; exit 1; }
say "Probing every path through itself (ICMP echo to the server, 10 per second)"
answered() { $CTL --json call path.list | jq -e '[.paths[] | .window.answered >= 20] | all'; }
expect "all three paths answer their probes" wait_until 20 answered
$CTL path list
say "Policies: voice takes the lowest latency within 40 ms; bulk is spread over both tunnels"
$CTL policy list

# ---- traffic ----
arrivals() { # server, proto: how many flows or datagrams it has logged
	jq -c "select(.proto==\"$2\")" "$WORK/server-$1.log" 2>/dev/null | wc -l
}
declare -A seen last
where() { # proto: this round's arrivals at each server, printed and kept in last[]
	local out="" n s
	for s in direct wg esp; do
		n=$(arrivals $s "$1")
		last[$s]=$((n - ${seen[$s$1]:-0}))
		seen[$s$1]=$n
		out+=$(printf '%-8s %3d   ' "$s:" "${last[$s]}")
	done
	echo "   arrived by  $out"
}
got() { echo "${last[$1]}"; }
voice() { ip netns exec "$NS_SITE" $TRAFFIC udp --dst "$SERVER4" --port 6000 --sport 40000 --count 20 >/dev/null; }

say "A voice call: 20 datagrams of one UDP flow to port 6000"
voice
where udp
expect "voice takes the direct path, the fastest" [ "$(got direct)" -eq 20 ]
say "Bulk: 12 TCP transfers of 128 KiB to port 5002, each echoed back and compared"
ok=0
for i in $(seq 12); do
	ip netns exec "$NS_SITE" $TRAFFIC tcp --dst "$SERVER4" --port 5002 --bytes 131072 >/dev/null && ok=$((ok + 1))
done
where tcp
expect "all 12 came back intact" [ $ok -eq 12 ]
expect "bulk is spread over both tunnels, none direct" \
	bash -c "[ $(got wg) -gt 0 ] && [ $(got esp) -gt 0 ] && [ $(got direct) -eq 0 ]"

all_up() { $CTL --json call path.list | jq -e '[.paths[] | .state == "up"] | all'; }
expect "every path is up, its figures settled after the transfers" wait_until 15 all_up

# ---- the direct path degrades ----
"$BUILD/tools/egressctl" -s "$WORK/a.sock" --json events path.selected egress.state >"$WORK/events.log" 2>&1 &
pids+=($!)
sleep 0.3
voice_via() { $CTL --json call policy.list | jq -r '.policies[] | select(.name=="voice") | .via[0]'; }
voice_off_direct() { [ "$(voice_via)" != direct ]; }
voice_on_direct() { [ "$(voice_via)" = direct ]; }
say "The path simulator adds 80 ms to the direct path (40 ms each way)"
t0=$(date +%s%3N)
"$SIM" ctl "$WORK/wire0.sock" set both delay_ms=40 >/dev/null
wait_until 10 voice_off_direct || true
moved_ms=$(($(date +%s%3N) - t0))
new=$(voice_via)
expect "voice left the direct path in $moved_ms ms, for $new" [ "$new" != direct ]
$CTL path list
# The call again, with egressctl capture taking the inner packets of the tunnel it now uses.
$CTL capture "$new" --decrypted -d 3 -w "$WORK/voice-$new.pcapng" 2>"$WORK/capture.log" &
capture=$!
wait_until 5 bash -c "$CTL --json status | jq -e .capture >/dev/null" || true
voice
where udp
expect "the call's datagrams now arrive through $new" \
	bash -c "[ $(got direct) -eq 0 ] && [ $(( $(got wg) + $(got esp) )) -eq 20 ]"
wait $capture || true

say "The direct path recovers; voice waits out the 5 s hold-down before it returns"
"$SIM" ctl "$WORK/wire0.sock" reset both >/dev/null
t0=$(date +%s%3N)
wait_until 15 voice_on_direct || true
back_ms=$(($(date +%s%3N) - t0))
# Normally after the 5 s hold-down. Sooner only when the tunnel voice is on fails its SLA
# meanwhile (a probe held up for a CPU on this loaded machine counts as lost): leaving a
# failed path skips the hold-down. path_selection.sh checks the hold-down itself.
expect "voice came back to the direct path $back_ms ms after the recovery" [ "$(voice_via)" = direct ]
voice
where udp
expect "the call's datagrams arrive directly again" [ "$(got direct)" -eq 20 ]

# ---- summary ----
say "Summary"
printf '   %-10s %-9s %8s %13s %11s\n' PATH STATE RTT_MS VOICE_DGRAMS BULK_FLOWS
for s in direct:direct wg:wg-pop2 esp:esp-pop3; do
	read -r state rtt < <($CTL --json call path.list |
		jq -r --arg n "${s##*:}" '.paths[] | select(.name==$n) | "\(.state) \(.rtt_ms.avg * 10 | round / 10)"')
	printf '   %-10s %-9s %8s %13s %11s\n' "${s##*:}" "$state" "$rtt" "$(arrivals "${s%%:*}" udp)" \
		"$(arrivals "${s%%:*}" tcp)"
done
echo "   voice moves (path.selected events): $(jq -s 'map(select(.method=="path.selected" and .params.policy=="voice")) | length' "$WORK/events.log")"
echo "   WireGuard: $($CTL --json call wg.show | jq -r '.peers[0] | "handshakes \(.handshakes), rx \(.rx_bytes) B, tx \(.tx_bytes) B"')"
echo "   ESP (pop1's SAs): $($CTL --json call ipsec.sa.list | jq -r '[.sas[] | "\(.direction) spi \(.spi): \(.packets) packets"] | join(", ")')"
echo "   drops at pop1: $($CTL --json stats | jq -c '.drops | with_entries(select(.value > 0))')"
/usr/bin/python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$METRICS_PORT/metrics').read().decode())" \
	>"$WORK/metrics.txt" 2>/dev/null || true
echo "   Prometheus metrics (http://127.0.0.1:$METRICS_PORT/metrics, kept in metrics.txt), for example:"
grep -E '^egress_path_rtt_avg_seconds|^egress_wireguard_peer_handshakes_total|^egress_ipsec_sa_packets_total' \
	"$WORK/metrics.txt" | sed 's/^/     /'
expect "the metrics endpoint answered with every path's RTT" \
	[ "$(grep -c '^egress_path_rtt_avg_seconds' "$WORK/metrics.txt")" -eq 3 ]
# tshark only now: it takes a CPU for a second or two, which would delay the probes above.
call_pkts=$(tshark -r "$WORK/voice-$new.pcapng" -Y 'udp.port == 6000' 2>/dev/null | wc -l)
probe_pkts=$(tshark -r "$WORK/voice-$new.pcapng" -Y icmp 2>/dev/null | wc -l)
echo "   Packet capture inside $new while the call used it: $call_pkts packets of the call and $probe_pkts"
echo "   of probes, in $WORK/voice-$new.pcapng (tshark -r it, or Wireshark)"
expect "the capture of $new's inner packets holds the call both ways (tshark counts $call_pkts of 40)" \
	[ "$call_pkts" -eq 40 ]
if [ $failed -eq 0 ]; then
	printf '\n\033[1mdemo: every step did what it said\033[0m\n'
else
	printf '\n\033[1mdemo: %d step(s) did not do what they said\033[0m\n' $failed
fi
exit $((failed > 0))
