# The namespaces of the tests that put the appliance against wireguard-go (wg_appliance.sh,
# wg_many_peers.sh), their keys, and helpers for the wireguard-go side. Source it after
# harness.sh with P (namespace prefix), IF (wireguard-go's interface: its sockets in
# /var/run/wireguard are global, so a unique name) and GO_ADDR (the address of its
# uplink, as `ip addr add` takes it) set.
#
#   site 10.1.0.2 -- [lan | egress in $P-dp | wan] --veth-- [w0 $GO_ADDR | wireguard-go $IF 10.20.0.1]
topology_down() {
	for ns in site dp wg; do ip netns del "$P-$ns" 2>/dev/null || true; done
	rm -f "/var/run/wireguard/$IF.sock"
}
command -v wireguard-go >/dev/null && command -v wg >/dev/null || { echo "SKIP: wireguard-go and wg needed"; exit 77; }

for ns in site dp wg; do ip netns add "$P-$ns"; ip -n "$P-$ns" link set lo up; done
ip netns exec "$P-dp" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
veth_link "$P-site" s0 "$P-dp" lan
veth_link "$P-dp" wan "$P-wg" w0
ip -n "$P-site" addr add 10.1.0.2/24 dev s0
ip -n "$P-site" route add default via 10.1.0.1
ip -n "$P-wg" addr add $GO_ADDR dev w0

umask 077
for k in go us; do wg genkey >"$WORK/$k.key"; wg pubkey <"$WORK/$k.key" >"$WORK/$k.pub"; done
GO_PUB=$(cat "$WORK/go.pub") US_PUB=$(cat "$WORK/us.pub")

gowg() { ip netns exec "$P-wg" wg "$@"; }
go_handshake() { gowg show "$IF" latest-handshakes | awk '{print $2}'; }
go_rx() { gowg show "$IF" transfer | awk '{print $2}'; }

# wireguard-go on port 51820 with the appliance as its peer for the site's addresses (no
# endpoint: it learns ours when we initiate), and 10.20.0.1 on its TUN device.
start_wireguard_go() {
	ip netns exec "$P-wg" env WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 wireguard-go -f "$IF" \
		>"$WORK/wireguard-go.log" 2>&1 &
	pids+=($!)
	check "wireguard-go creates its interface" wait_for 10 ip -n "$P-wg" link show "$IF"
	gowg set "$IF" private-key "$WORK/go.key" listen-port 51820 peer "$US_PUB" allowed-ips 10.1.0.0/24
	ip -n "$P-wg" addr add 10.20.0.1/24 dev "$IF"
	ip -n "$P-wg" link set "$IF" up
	ip -n "$P-wg" route add 10.1.0.0/24 dev "$IF"
}

# A fresh peer entry for the appliance at endpoint $1: without a session, wireguard-go's
# next packet makes it initiate.
go_fresh_peer() {
	gowg set "$IF" peer "$US_PUB" remove
	gowg set "$IF" peer "$US_PUB" allowed-ips 10.1.0.0/24 endpoint "$1"
	ip -n "$P-wg" route replace 10.1.0.0/24 dev "$IF"
}
