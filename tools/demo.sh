#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, and shows the appliance
# forwarding real traffic on virtual devices in about a minute. A site namespace sends
# flows; policy sends bulk UDP out of uplink 1 and everything else out of uplink 0; a
# policy change moves them; the control process is killed and traffic keeps flowing.
# Needs root (network namespaces). Everything it creates is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
BUILD=${BUILD:-build}

[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (it creates network namespaces)" >&2; exit 1; }
bash tools/install-deps.sh
[ -d "$BUILD" ] || meson setup "$BUILD" >/dev/null
ninja -C "$BUILD" >/dev/null

TOPO=egdemo
. tools/topology.sh
WORK=$(mktemp -d /tmp/egress-demo.XXXXXX)
SOCK=$WORK/egress.sock
CTL="$BUILD/tools/egressctl -s $SOCK"
TRAFFIC="/usr/bin/python3 $SRC/tools/traffic.py"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	topo_down
	echo "demo: logs and config kept in $WORK"
}
trap cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
arrived() { jq -c "select(.proto==\"$2\" and .port==$3)" "$WORK/$1.log" 2>/dev/null | wc -l; }
declare -A seen
where() { # proto port: how many of this round's flows each uplink host received
	local a b
	a=$(arrived "$NS_UP0" "$1" "$2")
	b=$(arrived "$NS_UP1" "$1" "$2")
	echo "   received by uplink 0: $((a - ${seen[0$1$2]:-0}))   by uplink 1: $((b - ${seen[1$1$2]:-0}))"
	seen[0$1$2]=$a
	seen[1$1$2]=$b
}

topo_down
say "Topology: site 10.10.0.2 -> [appliance lan0 | wan0 wan1] -> uplink hosts, server $SERVER4 behind both"
topo_up
topo_config "$WORK/egress.json" "$SOCK" "$WORK/state.json" demo
ip netns exec "$NS_DP" "$BUILD/dataplane/egress-dataplane" -c "$WORK/egress.json" >"$WORK/dataplane.log" 2>&1 &
pids+=($!)
"$BUILD/control/egress-control" -c "$WORK/egress.json" >"$WORK/control.log" 2>&1 &
ctl=$!
pids+=($ctl)
for ns in "$NS_UP0" "$NS_UP1"; do
	ip netns exec "$ns" $TRAFFIC serve --addr "$SERVER4" --addr "$SERVER6" --udp 5000,5001 --tcp 5002 \
		--log "$WORK/$ns.log" --seconds 120 &
	pids+=($!)
done
for _ in $(seq 100); do
	$CTL --json status 2>/dev/null | jq -e '.dataplane.attached and .generation >= 1' >/dev/null && break
	sleep 0.2
done
$CTL status
say "Policies in force"
$CTL policy list

say "Site sends 20 UDP datagrams to port 5000 (policy default -> direct-wan0)"
ip netns exec "$NS_SITE" $TRAFFIC udp --dst "$SERVER4" --port 5000 --count 20
where udp 5000
say "Site sends 20 UDP datagrams to port 5001 (policy bulk -> direct-wan1)"
ip netns exec "$NS_SITE" $TRAFFIC udp --dst "$SERVER4" --port 5001 --count 20
where udp 5001
say "A 4 MiB TCP transfer and an IPv6 one, echoed back and compared"
ip netns exec "$NS_SITE" $TRAFFIC tcp --dst "$SERVER4" --port 5002 --bytes 4194304
ip netns exec "$NS_SITE" $TRAFFIC tcp --dst "$SERVER6" --port 5002 --bytes 1048576
say "flow.lookup: what would a UDP flow to port 5001 do?"
$CTL flow lookup 10.10.0.2 "$SERVER4" udp 40000 5001

say "policy.set: send everything out of uplink 1"
cat >"$WORK/policies.json" <<'JSON'
{"policies": [{"name": "default", "priority": 1000, "match": {}, "egresses": ["direct-wan1"]}]}
JSON
$CTL policy set "$WORK/policies.json"
ip netns exec "$NS_SITE" $TRAFFIC udp --dst "$SERVER4" --port 5000 --count 20
where udp 5000

say "SIGKILL egress-control: the dataplane keeps forwarding on the last table"
kill -KILL "$ctl"
wait "$ctl" 2>/dev/null || true
ip netns exec "$NS_SITE" $TRAFFIC udp --dst "$SERVER4" --port 5000 --count 20
where udp 5000
say "Restart egress-control: it re-attaches and re-publishes the saved state"
"$BUILD/control/egress-control" -c "$WORK/egress.json" >>"$WORK/control.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
	$CTL --json status 2>/dev/null | jq -e '.dataplane.attached and .generation >= 3' >/dev/null && break
	sleep 0.2
done
$CTL status
say "Counters"
$CTL stats
