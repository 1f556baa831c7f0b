#!/usr/bin/env bash
# WireGuard at scale and over IPv6: the appliance holds 10,000 peers, the last of which is
# wireguard-go, reached over an IPv6 uplink with a 1 s persistent keepalive. Handshakes
# both ways, traffic both ways, the keepalive on an idle tunnel, and a peer added and
# removed live on top of the 10,000.
#
#   site 10.1.0.2 -- [lan0 10.1.0.1 | egress | wan0 2001:db8::1 udp/51820] --veth-- [2001:db8::2 udp/51820 wireguard-go 10.20.0.1]
set -euo pipefail
WORK=$(mktemp -d /tmp/egress-wgm.XXXXXX)
. "${EGRESS_SOURCE:?}/tests/integration/harness.sh"
P=egm$$
IF=egwm$$		# wireguard-go's sockets in /var/run/wireguard are global: a unique name
N=10000
GO_ADDR="2001:db8::2/64 nodad"
. "$SRC/tests/integration/wg_topology.sh"

# 9,999 peers with fresh keys and one /32 each, then wireguard-go as peer number 10,000.
$PY - "$WORK/egress.json" "$P" "$WORK" "$(cat "$WORK/us.key")" "$GO_PUB" "$N" <<'PY'
import base64, json, sys
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
out, inst, work, key, go_pub, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])
def pub():
    raw = X25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()
peers = [{"name": "p%d" % i, "public_key": pub(), "allowed_ips": ["10.64.%d.%d/32" % (i // 256, i % 256)]}
         for i in range(n - 1)]
peers.append({"name": "go", "public_key": go_pub, "endpoint": "[2001:db8::2]:51820",
              "allowed_ips": ["10.20.0.0/24"], "persistent_keepalive": 1})
cfg = {
    "instance": inst,
    "dataplane": {"eal": ["--no-huge", "-m", "256", "--no-pci", "-l", "0-1"], "workers": 1, "ports": [
        {"name": "lan0", "role": "site", "device": "net_af_packet0,iface=lan", "ipv4": "10.1.0.1/24"},
        {"name": "wan0", "role": "uplink", "device": "net_af_packet1,iface=wan", "ipv6": "2001:db8::1/64"}]},
    "control": {"socket": work + "/egress.sock", "state_file": work + "/state.json"},
    "wireguard": {"private_key": key, "listen_port": 51820, "peers": peers},
    "egresses": [{"name": "wg-go", "type": "wireguard", "peer": "go"}],
    "policies": [{"name": "to-go", "priority": 10, "match": {"dst": ["10.20.0.0/24"]}, "egresses": ["wg-go"],
                  "strategy": "pinned"}],
}
json.dump(cfg, open(out, "w"))
PY

ip netns exec "$P-dp" "$BUILD/dataplane/egress-dataplane" -c "$WORK/egress.json" >"$WORK/dp.log" 2>&1 &
pids+=($!)
t0=$SECONDS
"$BUILD/control/egress-control" -c "$WORK/egress.json" >"$WORK/ctl.log" 2>&1 &
ctl=$!
pids+=($ctl)
E="$BUILD/tools/egressctl -s $WORK/egress.sock"
us() { $E --json call wg.show | jq -r "$1"; }

check "the appliance attaches with $N peers and the wireguard egress up" \
	wait_for 120 bash -c "$E --json egress list | jq -se '.[0].egresses[0].state == \"up\"'"
echo "     (attached in $((SECONDS - t0)) s; control memory: $(awk '/RssAnon|RssShmem/ {printf "%s %s %s  ", $1, $2, $3}' /proc/$ctl/status))"
check "wg.show lists all $N peers" [ "$(us '.peers | length')" -eq $N ]

start_wireguard_go
ip netns exec "$P-wg" $TRAFFIC serve --addr 10.20.0.1 --udp 5000 --log "$WORK/wg-serve.log" --seconds 120 &
pids+=($!)
sleep 0.5

# The appliance initiates to the 10,000th peer over IPv6.
check "the site's traffic starts a handshake to peer $N over IPv6 and echoes come back" \
	ip netns exec "$P-site" $TRAFFIC udp --dst 10.20.0.1 --port 5000 --count 5 --timeout 20
check "... wireguard-go sees the appliance at [2001:db8::1]:51820" \
	bash -c "ip netns exec $P-wg wg show $IF endpoints | grep -q '\[2001:db8::1\]:51820'"
check "... and pings of 1408 bytes cross the IPv6 tunnel" ip netns exec "$P-site" ping -c3 -i0.2 -W2 -s 1380 10.20.0.1
check "an oversized ping with DF gets the IPv6 tunnel MTU (1500 - 80)" \
	output_has 'mtu ?= ?1420' ip netns exec "$P-site" ping -c1 -W2 -M do -s 1472 10.20.0.1

# Persistent keepalive: with no traffic, the appliance sends one 32-byte keepalive a second.
sleep 2
rx0=$(go_rx)
sleep 4
rx1=$(go_rx)
check "on an idle tunnel the persistent keepalive arrives about once a second (rx $rx0 -> $rx1)" \
	[ $((rx1 - rx0)) -ge $((3 * 32)) -a $((rx1 - rx0)) -le $((6 * 32)) ]

# wireguard-go initiates: its fresh peer entry knows our IPv6 endpoint.
go_fresh_peer '[2001:db8::1]:51820'
hs0=$(us '.peers[-1].handshakes')
check "wireguard-go initiates over IPv6 and its pings to the site are answered" \
	ip netns exec "$P-wg" ping -c3 -i0.3 -W3 10.1.0.2
check "... through a handshake the appliance answered for peer $N" [ "$(us '.peers[-1].handshakes')" -gt "$hs0" ]

# Live changes on top of the 10,000.
t1=$SECONDS
check "peer $((N + 1)) is added live" \
	$E call wg.peer.add "{\"name\": \"extra\", \"public_key\": \"$(wg genkey | wg pubkey)\", \"allowed_ips\": [\"10.65.0.0/24\"]}"
check "... listed, and removed live" bash -c "[ \$($E --json call wg.show | jq '.peers | length') -eq $((N + 1)) ] && $E wg remove extra"
echo "     (add, show and remove took $((SECONDS - t1)) s)"
check "traffic to peer $N still flows" \
	ip netns exec "$P-site" $TRAFFIC udp --dst 10.20.0.1 --port 5000 --count 3 --timeout 10

if [ $fails -ne 0 ]; then
	echo "--- control"; tail -20 "$WORK/ctl.log"
	echo "--- dataplane"; tail -10 "$WORK/dp.log"
	echo "--- wireguard-go"; tail -10 "$WORK/wireguard-go.log"
	$E stats || true
fi
harness_finish
