#!/usr/bin/env bash
# WireGuard interop: our handshake and transport format (lib/wg_noise.c, driven by
# tests/integration/wg_noise_peer.c) against wireguard-go, in both directions, with and
# without a preshared key. ICMP echoes cross the tunnel to wireguard-go's TUN device and
# the kernel behind it answers, so each direction is proven by real decryption.
#
#   [ns us: 10.98.0.2 udp/51821, tunnel 10.99.0.2] --veth-- [ns wg: 10.98.0.1 udp/51820, egwgN 10.99.0.1]
set -euo pipefail
WORK=$(mktemp -d /tmp/egress-wg.XXXXXX)
. "${EGRESS_SOURCE:?}/tests/integration/harness.sh"
P=egw$$
IF=egwg$$		# wireguard-go's sockets in /var/run/wireguard are global: a unique name
topology_down() {
	for ns in us wg; do ip netns del "$P-$ns" 2>/dev/null || true; done
	rm -f "/var/run/wireguard/$IF.sock"
}
command -v wireguard-go >/dev/null && command -v wg >/dev/null || { echo "SKIP: wireguard-go and wg needed"; exit 77; }
PEER="${WG_NOISE_PEER:?}"

for ns in us wg; do ip netns add "$P-$ns"; ip -n "$P-$ns" link set lo up; done
ip link add wgv netns "$P-wg" type veth peer name usv netns "$P-us"
ip -n "$P-wg" addr add 10.98.0.1/24 dev wgv
ip -n "$P-us" addr add 10.98.0.2/24 dev usv
ip -n "$P-wg" link set wgv up
ip -n "$P-us" link set usv up

umask 077
wg genkey >"$WORK/go.key"
wg pubkey <"$WORK/go.key" >"$WORK/go.pub"
wg genkey >"$WORK/us.key"
wg pubkey <"$WORK/us.key" >"$WORK/us.pub"
wg genpsk >"$WORK/psk"
GO_PUB=$(cat "$WORK/go.pub") US_PUB=$(cat "$WORK/us.pub") US_KEY=$(cat "$WORK/us.key") PSK=$(cat "$WORK/psk")

ip netns exec "$P-wg" env WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 wireguard-go -f "$IF" >"$WORK/wireguard-go.log" 2>&1 &
pids+=($!)
check "wireguard-go creates its interface" wait_for 10 ip -n "$P-wg" link show "$IF"
ip netns exec "$P-wg" wg set "$IF" private-key "$WORK/go.key" listen-port 51820
ip -n "$P-wg" addr add 10.99.0.1/24 dev "$IF"
ip -n "$P-wg" link set "$IF" up
# A fresh peer entry on wireguard-go's side: no session carried over between cases.
go_peer() { # extra wg-set arguments for the peer
	ip netns exec "$P-wg" wg set "$IF" peer "$US_PUB" remove
	ip netns exec "$P-wg" wg set "$IF" peer "$US_PUB" allowed-ips 10.99.0.2/32 "$@"
}
handshakes() { ip netns exec "$P-wg" wg show "$IF" latest-handshakes | awk '{print $2}'; }

go_peer
ip netns exec "$P-us" "$PEER" initiate --bind 10.98.0.2:51821 --peer 10.98.0.1:51820 --key "$US_KEY" \
	--peer-key "$GO_PUB" --tun-src 10.99.0.2 --tun-dst 10.99.0.1 --count 3 --timeout 20 >"$WORK/init.json" || true
check "we initiate, wireguard-go responds, 3 echoes cross the tunnel ($(cat "$WORK/init.json"))" \
	jq -e '.handshake and .echoes == 3' "$WORK/init.json"
check "... wireguard-go records the handshake" [ "$(handshakes)" -gt 0 ]

go_peer preshared-key "$WORK/psk"
ip netns exec "$P-us" "$PEER" initiate --bind 10.98.0.2:51821 --peer 10.98.0.1:51820 --key "$US_KEY" \
	--peer-key "$GO_PUB" --psk "$PSK" --tun-src 10.99.0.2 --tun-dst 10.99.0.1 --count 3 --timeout 20 >"$WORK/psk.json" || true
check "with a preshared key on both sides ($(cat "$WORK/psk.json"))" jq -e '.handshake and .echoes == 3' "$WORK/psk.json"

go_peer preshared-key "$WORK/psk"
wg genpsk >"$WORK/other.psk"
ip netns exec "$P-us" "$PEER" initiate --bind 10.98.0.2:51821 --peer 10.98.0.1:51820 --key "$US_KEY" \
	--peer-key "$GO_PUB" --psk "$(cat "$WORK/other.psk")" --tun-src 10.99.0.2 --tun-dst 10.99.0.1 --count 1 \
	--timeout 6 >"$WORK/badpsk.json" || true
check "with different preshared keys no handshake completes" jq -e '.handshake | not' "$WORK/badpsk.json"

# wireguard-go initiates: a ping into its tunnel needs a session with us first.
go_peer endpoint 10.98.0.2:51821
ip netns exec "$P-us" "$PEER" respond --bind 10.98.0.2:51821 --key "$US_KEY" --peer-key "$GO_PUB" \
	--tun-src 10.99.0.2 --count 3 --timeout 20 >"$WORK/resp.json" &
responder=$!
pids+=($responder)
sleep 0.5
ip netns exec "$P-wg" ping -c 3 -i 0.3 -W 5 10.99.0.2 >"$WORK/ping.txt" 2>&1 || true
rc=0
wait $responder || rc=$?
check "wireguard-go initiates, we respond, and its pings are answered through the tunnel ($(cat "$WORK/resp.json"))" \
	bash -c "[ $rc -eq 0 ] && grep -q ' 0% packet loss' $WORK/ping.txt"

if [ $fails -ne 0 ]; then echo "--- wireguard-go log"; tail -20 "$WORK/wireguard-go.log"; fi
harness_finish
