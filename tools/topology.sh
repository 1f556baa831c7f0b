# Network namespaces for the demo and the integration tests: a site host, the appliance
# and two uplink hosts, joined by veth pairs. Source this file; every name carries $TOPO so
# runs never collide, and topo_down removes exactly what topo_up made.
#
#   site (10.10.0.2, fd00:10::2)  --veth--  [ appliance: lan0 | wan0 wan1 ]  --veth--  up0 (192.0.2.254, fd00:20::fe)
#                                                                           --veth--  up1 (198.51.100.254, fd00:30::fe)
# Both uplink hosts own the "internet" server addresses 203.0.113.10 and 2001:db8:99::10,
# so where a flow arrives shows which uplink the appliance chose.
#
# With TOPO_WIRES=1 each uplink link passes through a "wire" namespace instead, where
# egress-pathsim (tools/path_sim) bridges it and can add delay, jitter, loss or a
# blackhole per direction: dpwan0 -- w0d [pathsim] w0u -- u0, and the same for wan1.
# Nothing crosses a wire until topo_wires_start runs the simulators.

TOPO=${TOPO:-eg$$}
NS_SITE=$TOPO-site
NS_DP=$TOPO-dp
NS_UP0=$TOPO-up0
NS_UP1=$TOPO-up1
NS_WIRE=$TOPO-wire
SERVER4=203.0.113.10
SERVER6=2001:db8:99::10

# Frames leave the kernel through veth with checksums left to "hardware" unless offloads
# are off; the appliance reads them raw through AF_PACKET and would forward them broken.
_topo_no_offload() {
	ip netns exec "$1" ethtool -K "$2" tx off rx off sg off tso off gso off gro off >/dev/null 2>&1 || true
}

_topo_link() { # ns-a if-a ns-b if-b
	ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"
	_topo_no_offload "$1" "$2"
	_topo_no_offload "$3" "$4"
	ip -n "$1" link set "$2" up
	ip -n "$3" link set "$4" up
}

topo_up() {
	for ns in "$NS_SITE" "$NS_DP" "$NS_UP0" "$NS_UP1"; do
		ip netns add "$ns"
		ip -n "$ns" link set lo up
	done
	# Only DPDK speaks for the appliance: its kernel must not answer ARP/ND or route.
	ip netns exec "$NS_DP" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	_topo_link "$NS_SITE" s0 "$NS_DP" dplan
	if [ "${TOPO_WIRES:-0}" = 1 ]; then
		ip netns add "$NS_WIRE"
		ip -n "$NS_WIRE" link set lo up
		_topo_link "$NS_WIRE" w0d "$NS_DP" dpwan0
		_topo_link "$NS_WIRE" w0u "$NS_UP0" u0
		_topo_link "$NS_WIRE" w1d "$NS_DP" dpwan1
		_topo_link "$NS_WIRE" w1u "$NS_UP1" u1
	else
		_topo_link "$NS_UP0" u0 "$NS_DP" dpwan0
		_topo_link "$NS_UP1" u1 "$NS_DP" dpwan1
	fi
	ip netns exec "$NS_DP" sysctl -qw net.ipv6.conf.dplan.disable_ipv6=1 net.ipv6.conf.dpwan0.disable_ipv6=1 \
		net.ipv6.conf.dpwan1.disable_ipv6=1 2>/dev/null || true

	for ns in "$NS_SITE" "$NS_UP0" "$NS_UP1"; do
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
	done
	ip -n "$NS_SITE" addr add 10.10.0.2/24 dev s0
	ip -n "$NS_SITE" addr add fd00:10::2/64 dev s0 nodad
	ip -n "$NS_SITE" route add default via 10.10.0.1
	ip -n "$NS_SITE" -6 route add default via fd00:10::1

	ip -n "$NS_UP0" addr add 192.0.2.254/24 dev u0
	ip -n "$NS_UP0" addr add fd00:20::fe/64 dev u0 nodad
	ip -n "$NS_UP0" route add 10.10.0.0/24 via 192.0.2.1
	ip -n "$NS_UP0" -6 route add fd00:10::/64 via fd00:20::1

	ip -n "$NS_UP1" addr add 198.51.100.254/24 dev u1
	ip -n "$NS_UP1" addr add fd00:30::fe/64 dev u1 nodad
	ip -n "$NS_UP1" route add 10.10.0.0/24 via 198.51.100.1
	ip -n "$NS_UP1" -6 route add fd00:10::/64 via fd00:30::1

	for ns in "$NS_UP0" "$NS_UP1"; do
		ip -n "$ns" addr add "$SERVER4"/32 dev lo
		ip -n "$ns" addr add "$SERVER6"/128 dev lo nodad
	done
}

# Starts one path simulator per uplink wire, with control sockets $1/wire0.sock and
# $1/wire1.sock; $2 is the egress-pathsim binary. Appends their PIDs to the pids array.
# "a2b" is toward the uplink host, "b2a" toward the appliance.
topo_wires_start() {
	local n
	for n in 0 1; do
		ip netns exec "$NS_WIRE" "$2" run --a "w${n}d" --b "w${n}u" --control "$1/wire$n.sock" --seed $((n + 1)) \
			>"$1/wire$n.log" 2>&1 &
		pids+=($!)
	done
}

topo_down() {
	for ns in "$NS_SITE" "$NS_DP" "$NS_UP0" "$NS_UP1" "$NS_WIRE"; do
		ip netns del "$ns" 2>/dev/null || true
	done
}

# The appliance's config for this topology. $1: file, $2: socket, $3: state file,
# $4: instance name, $5: workers.
topo_config() {
	local workers=${5:-1} cpus lcores
	cpus=$(nproc)
	# More lcores than CPUs (two workers on a two-core machine): let them share the CPUs;
	# idle backoff keeps that workable.
	if [ $((workers + 1)) -le "$cpus" ]; then
		lcores='"-l", "0-'$workers'"'
	else
		lcores='"--lcores", "(0-'$workers')@(0-'$((cpus - 1))')"'
	fi
	cat >"$1" <<JSON
{
  "instance": "$4",
  "dataplane": {
    "eal": ["--no-huge", "-m", "512", "--no-pci", $lcores],
    "workers": $workers,
    "idle_backoff": true,
    "ports": [
      {"name": "lan0", "role": "site", "device": "net_af_packet0,iface=dplan",
       "ipv4": "10.10.0.1/24", "ipv6": "fd00:10::1/64"},
      {"name": "wan0", "role": "uplink", "device": "net_af_packet1,iface=dpwan0",
       "ipv4": "192.0.2.1/24", "gateway": "192.0.2.254", "ipv6": "fd00:20::1/64", "gateway6": "fd00:20::fe"},
      {"name": "wan1", "role": "uplink", "device": "net_af_packet2,iface=dpwan1",
       "ipv4": "198.51.100.1/24", "gateway": "198.51.100.254", "ipv6": "fd00:30::1/64", "gateway6": "fd00:30::fe"}
    ]
  },
  "control": {"socket": "$2", "state_file": "$3"},
  "egresses": [
    {"name": "direct-wan0", "type": "direct", "port": "wan0"},
    {"name": "direct-wan1", "type": "direct", "port": "wan1"}
  ],
  "policies": [
    {"name": "bulk", "priority": 10, "match": {"proto": "udp", "dport": "5001"},
     "egresses": ["direct-wan1", "direct-wan0"], "strategy": "priority"},
    {"name": "blocked", "priority": 20, "match": {"proto": "udp", "dport": "5009"}, "action": "drop"},
    {"name": "default", "priority": 1000, "match": {}, "egresses": ["direct-wan0", "direct-wan1"]}
  ]
}
JSON
}
