#!/usr/bin/env bash
# The appliance against wireguard-go: a site's traffic leaves through a wireguard egress,
# wireguard-go decrypts it and the kernel behind it answers. Handshakes started by either
# side, TCP both ways, a rekey forced by short timers under a ping stream, wireguard-go
# moving to a new UDP port, probes through the tunnel (echo and STAMP), a wrong key, keepalives on an idle tunnel, allowed IPs, and
# peers added and removed live, and cookie replies under load.
#
#   site 10.1.0.2 -- [lan0 10.1.0.1 | egress | wan0 192.0.2.1 udp/51820] --veth-- [192.0.2.2 udp/51820 wireguard-go egwgN 10.20.0.1]
set -euo pipefail
WORK=$(mktemp -d /tmp/egress-wga.XXXXXX)
. "${EGRESS_SOURCE:?}/tests/integration/harness.sh"
P=egg$$
IF=egwa$$		# wireguard-go's sockets in /var/run/wireguard are global: a unique name
GO_ADDR="192.0.2.2/24"
. "$SRC/tests/integration/wg_topology.sh"

# Short timers, so that a rekey happens within the test: the appliance, which initiates,
# renews its session every 4 s of sending.
cat >"$WORK/egress.json" <<JSON
{
  "instance": "$P",
  "dataplane": {"eal": ["--no-huge", "-m", "256", "--no-pci", "-l", "0-1"], "workers": 1,
    "ports": [
      {"name": "lan0", "role": "site", "device": "net_af_packet0,iface=lan", "ipv4": "10.1.0.1/24"},
      {"name": "wan0", "role": "uplink", "device": "net_af_packet1,iface=wan", "ipv4": "192.0.2.1/24"}]},
  "control": {"socket": "$WORK/egress.sock", "state_file": "$WORK/state.json"},
  "wireguard": {"private_key": "$(cat "$WORK/us.key")", "listen_port": 51820,
    "test_timers": {"rekey_after_time": 4, "reject_after_time": 30, "rekey_timeout": 1, "keepalive_timeout": 2},
    "peers": [{"name": "go", "public_key": "$GO_PUB", "endpoint": "192.0.2.2:51820",
               "allowed_ips": ["10.20.0.0/24"]}]},
  "egresses": [{"name": "wg-go", "type": "wireguard", "peer": "go"}],
  "policies": [{"name": "to-go", "priority": 10, "match": {"dst": ["10.20.0.0/24"]}, "egresses": ["wg-go"], "strategy": "pinned"}]
}
JSON
ip netns exec "$P-dp" "$BUILD/dataplane/egress-dataplane" -c "$WORK/egress.json" >"$WORK/dp.log" 2>&1 &
pids+=($!)
start_ctl() {
	"$BUILD/control/egress-control" -c "$WORK/egress.json" >>"$WORK/ctl.log" 2>&1 &
	ctl=$!
	pids+=($!)
}
start_ctl
E="$BUILD/tools/egressctl -s $WORK/egress.sock"

start_wireguard_go
us() { $E --json call wg.show | jq -r "$1"; }
drops() { $E --json stats | jq ".drops.$1"; }

check "the appliance attaches with the wireguard egress up" \
	wait_for 30 bash -c "$E --json egress list | jq -e '.egresses[0].state == \"up\"'"
ip netns exec "$P-wg" $TRAFFIC serve --addr 10.20.0.1 --udp 5000 --tcp 5002 --log "$WORK/wg-serve.log" --seconds 200 &
pids+=($!)
ip netns exec "$P-site" $TRAFFIC serve --addr 10.1.0.2 --udp 5000 --tcp 5002 --log "$WORK/site-serve.log" --seconds 200 &
pids+=($!)
sleep 0.5

# 1. The appliance initiates: the site's first packets start the handshake.
check "the site's traffic starts a handshake from the appliance and echoes cross the tunnel" \
	ip netns exec "$P-site" $TRAFFIC udp --dst 10.20.0.1 --port 5000 --count 5 --timeout 20
check "... wireguard-go records the handshake" [ "$(go_handshake)" -gt 0 ]
check "... and pings are answered by wireguard-go's kernel" ip netns exec "$P-site" ping -c3 -i0.2 -W2 10.20.0.1
check "a 2 MiB TCP transfer from the site through the tunnel comes back intact" \
	ip netns exec "$P-site" $TRAFFIC tcp --dst 10.20.0.1 --port 5002 --bytes 2097152
check "a 2 MiB TCP transfer from wireguard-go's side to the site comes back intact" \
	ip netns exec "$P-wg" $TRAFFIC tcp --dst 10.1.0.2 --port 5002 --bytes 2097152
check "an oversized ping with DF gets fragmentation-needed with the tunnel MTU (1500 - 60)" \
	output_has 'mtu = 1440' ip netns exec "$P-site" ping -c1 -W2 -M do -s 1472 10.20.0.1
check "an oversized ping without DF is fragmented into the tunnel and answered" \
	ip netns exec "$P-site" ping -c2 -W3 -M dont -s 1460 10.20.0.1

# Capture (egressctl capture): the tunnel's encrypted side, its inner packets and a port,
# each while a ping stream runs, read back by tshark.
# A stream for each capture (tshark is slow to start here: one stream would run out).
ping_stream() { ip netns exec "$P-site" ping -q -c 100 -i 0.1 -W 2 10.20.0.1 >/dev/null 2>&1 & pinger=$!; }
ping_stop() { kill "$pinger" 2>/dev/null || true; wait "$pinger" 2>/dev/null || true; }
capture() { timeout 30 $E capture "$@" 2>>"$WORK/capture.log"; }
shark() { tshark -r "$@" 2>/dev/null; }
ping_stream
check "egressctl capture takes 10 packets of the wireguard egress" capture wg-go -w "$WORK/wg.pcapng" -c 10
ping_stop
check "... which tshark reads as 10 WireGuard transport messages" \
	[ "$(shark "$WORK/wg.pcapng" -Y 'wg.type == 4' | wc -l)" -eq 10 ]
check "... in both directions (flags of the packets: $(shark "$WORK/wg.pcapng" -T fields -e frame.packet_flags_direction | sort | uniq -c | xargs))" \
	bash -c "[ \$(tshark -r '$WORK/wg.pcapng' -T fields -e frame.packet_flags_direction 2>/dev/null | sort -u | wc -l) -eq 2 ]"
ping_stream
check "--decrypted takes the tunnel's inner packets: echo requests out, replies in" \
	capture wg-go --decrypted -w "$WORK/wg-inner.pcapng" -c 10
ping_stop
check "... tshark sees 10 ICMP packets between 10.1.0.2 and 10.20.0.1, on a raw IP interface" \
	[ "$(shark "$WORK/wg-inner.pcapng" -Y 'icmp && ip.addr == 10.1.0.2 && ip.addr == 10.20.0.1 && frame.encap_type == 7' | wc -l)" -eq 10 ]
check "... echo requests going out and replies coming in" \
	[ "$(shark "$WORK/wg-inner.pcapng" -T fields -e icmp.type -e frame.packet_flags_direction | sort -u | xargs)" = "0 0x00000001 8 0x00000002" ]
ping_stream
check "a port capture (wan0) takes 6 Ethernet frames, cut to a snap length of 96 bytes" \
	bash -c "timeout 30 $E capture wan0 -w '$WORK/wan0.pcapng' -c 6 -s 96 2>>'$WORK/capture.log' &&
		[ \$(tshark -r '$WORK/wan0.pcapng' -Y 'eth && frame.cap_len <= 96' 2>/dev/null | wc -l) -eq 6 ]"
check "... WireGuard over UDP 51820 among them" \
	[ "$(shark "$WORK/wan0.pcapng" -Y 'udp.port == 51820 && wg.type == 4' | wc -l)" -ge 2 ]
ping_stop
check "a capture with nothing to take ends at its duration, with an empty but readable file" \
	bash -c "$E capture wan0 -w '$WORK/quiet.pcapng' -d 1 2>&1 | grep -q 'ended: duration' && tshark -r '$WORK/quiet.pcapng' >/dev/null"
check "--decrypted on a port is refused, naming the field" \
	output_has 'decrypted' $E capture lan0 --decrypted -w "$WORK/x.pcapng"
check "an unknown name is refused (exit 1)" bash -c "rc=0; $E capture nosuch -w '$WORK/x.pcapng' 2>/dev/null || rc=\$?; [ \$rc -eq 1 ]"
check "a second capture while one runs is refused" bash -c "set +e +o pipefail
	$E capture wan0 -w '$WORK/a.pcapng' -d 3 2>/dev/null & a=\$!
	sleep 1
	$E capture lan0 -w '$WORK/b.pcapng' -d 1 2>&1 | grep -q 'one at a time'; rc=\$?
	wait \$a; exit \$rc"
check "^C ends a capture and keeps what it took" bash -c "
	$E capture lan0 -w '$WORK/int.pcapng' -d 30 2>'$WORK/int.log' & c=\$!
	sleep 1; ip netns exec $P-site ping -c 3 -i 0.2 -W 2 10.20.0.1 >/dev/null; kill -INT \$c; wait \$c &&
	grep -q 'ended: stopped' '$WORK/int.log' && [ \$(tshark -r '$WORK/int.pcapng' -Y icmp 2>/dev/null | wc -l) -ge 6 ]"

# 2. A forced rekey (every 4 s of sending) while pings flow: at most one is lost.
hs0=$(us '.peers[0].handshakes')
ip netns exec "$P-site" ping -c 120 -i 0.1 -W 1 10.20.0.1 >"$WORK/rekey-ping.txt" 2>&1 || true
hs1=$(us '.peers[0].handshakes')
lost=$(awk '/packets transmitted/ {print $1 - $4}' "$WORK/rekey-ping.txt")
check "rekeys happen while a 12 s ping stream runs (handshakes $hs0 -> $hs1)" [ "$hs1" -ge $((hs0 + 2)) ]
check "... and at most one ping of 120 is lost ($lost)" [ "${lost:-99}" -le 1 ]

# 3. wireguard-go initiates: a fresh peer entry on its side has no session; its ping
# needs one, and it knows where we are.
go_fresh_peer 192.0.2.1:51820
hs0=$(us '.peers[0].handshakes')
check "wireguard-go initiates, the appliance responds, and its pings are answered" \
	ip netns exec "$P-wg" ping -c3 -i0.3 -W3 10.1.0.2
check "... through a handshake the appliance answered" [ "$(us '.peers[0].handshakes')" -gt "$hs0" ]

# 4. wireguard-go moves to another UDP port: the appliance follows the source of its
# authenticated packets.
gowg set "$IF" listen-port 51999
check "after wireguard-go moves to port 51999 its pings still get answers" \
	ip netns exec "$P-wg" ping -c3 -i0.3 -W3 10.1.0.2
check "... the appliance's endpoint for it is now 192.0.2.2:51999 ($(us '.peers[0].endpoint'))" \
	[ "$(us '.peers[0].endpoint')" = "192.0.2.2:51999" ]
check "... and the site's traffic reaches it there" \
	ip netns exec "$P-site" $TRAFFIC udp --dst 10.20.0.1 --port 5000 --count 3 --timeout 10

# 5. Probes through the tunnel: ICMP echo answered by wireguard-go's kernel, and STAMP
# answered by an independent reflector behind it, on egresses added live for the peer.
ip netns exec "$P-wg" $PY "$SRC/tests/integration/stamp_peer.py" reflect --addr 10.20.0.1 --seconds 60 \
	>"$WORK/reflector.json" 2>&1 &
pids+=($!)
for m in icmp stamp; do
	$E egress add "{\"name\": \"probe-$m\", \"type\": \"wireguard\", \"peer\": \"go\",
		\"probe\": {\"target\": \"10.20.0.1\", \"method\": \"$m\", \"interval_ms\": 100, \"window\": 5}}" >/dev/null
done
answered() { $E --json call path.list | jq -e ".paths[] | select(.name==\"$1\") |
	.window.answered >= 5 and .window.lost == 0 and .rtt_ms.avg > 0 and .state == \"up\"" >/dev/null; }
check "echo probes through the WireGuard tunnel are answered by wireguard-go's side" wait_for 10 answered probe-icmp
check "STAMP probes through the tunnel are answered by the reflector behind wireguard-go" wait_for 10 answered probe-stamp
check "... which saw them arrive from the appliance's site address, decrypted by wireguard-go" \
	bash -c "jq -e 'select(.reflected >= 5 and .from == \"10.1.0.1\")' $WORK/reflector.json >/dev/null"
for m in icmp stamp; do $E egress remove "probe-$m" >/dev/null; done

# 6. Allowed IPs: a packet from wireguard-go with a source outside the peer's allowed
# IPs is dropped after decryption and counted.
ip -n "$P-wg" addr add 10.21.0.1/32 dev "$IF"
d0=$(drops wg_allowed_ips)
ip netns exec "$P-wg" ping -c2 -i0.2 -W1 -I 10.21.0.1 10.1.0.2 >/dev/null 2>&1 || true
check "a decrypted packet from outside the peer's allowed IPs is dropped and counted" \
	[ "$(drops wg_allowed_ips)" -ge $((d0 + 2)) ]

# 7. A peer with the wrong key gets no session: wireguard-go with another private key.
wg genkey >"$WORK/other.key"
gowg set "$IF" private-key "$WORK/other.key"
go_fresh_peer 192.0.2.1:51820
hs0=$(us '.peers[0].handshakes')
ip netns exec "$P-wg" ping -c2 -i0.5 -W2 10.1.0.2 >/dev/null 2>&1 || true
check "an unknown key's initiations get no session (no handshake on either side)" \
	[ "$(us '.peers[0].handshakes')" -eq "$hs0" -a "$(go_handshake)" -eq 0 ]
gowg set "$IF" private-key "$WORK/go.key"
go_fresh_peer 192.0.2.1:51820

# 8. Keepalives on an idle tunnel: a persistent keepalive of 1 s on a peer added live.
check "with its right key back, wireguard-go gets a session again (it initiates)" \
	ip netns exec "$P-wg" ping -c2 -i0.3 -W3 10.1.0.2
check "a second peer can be added live" \
	$E call wg.peer.add "{\"name\": \"spare\", \"public_key\": \"$(wg genkey | wg pubkey)\", \"allowed_ips\": [\"10.30.0.0/24\"]}"
check "... it is listed by wg show" bash -c "$E wg show | grep -c '^peer:' | grep -qx 2"
check "... and removed live" $E wg remove spare
check "removing a peer an egress uses is refused with the egress named" \
	output_has 'wg-go' $E call wg.peer.remove '{"name": "go"}'
sleep 3	# the tunnel goes idle
rx0=$(go_rx)
sleep 3
check "an idle tunnel stays quiet: no keepalive without data to answer (wireguard-go rx $rx0 -> $(go_rx))" \
	[ "$(go_rx)" -eq "$rx0" ]
# Data in, nothing to send back (the site address does not exist): after
# KEEPALIVE_TIMEOUT (2 s here) the appliance sends one keepalive, 32 bytes.
ip netns exec "$P-wg" ping -c1 -W1 10.1.0.99 >/dev/null 2>&1 || true
rx0=$(go_rx)
check "the appliance sends a passive keepalive after data it had nothing to answer" \
	wait_for 6 bash -c "[ \$(ip netns exec $P-wg wg show $IF transfer | awk '{print \$2}') -ge $((rx0 + 32)) ]"
sleep 3
check "... just one (wireguard-go rx $rx0 -> $(go_rx))" [ "$(go_rx)" -eq $((rx0 + 32)) ]

check "egressctl wg show prints what wg show would" \
	bash -c "$E wg show | tee $WORK/wgshow.txt | grep -q 'latest handshake: .* ago' && grep -q 'endpoint: 192.0.2.2:51999' $WORK/wgshow.txt && grep -q 'transfer: .* received, .* sent' $WORK/wgshow.txt"

# 9. A live-added peer survives a control restart (state file); the restarted control
# starts sessions afresh and traffic flows again.
gowg set "$IF" listen-port 51820	# where the config says it is: a new control starts there
SPARE=$(wg genkey | wg pubkey)
$E call wg.peer.add "{\"name\": \"kept\", \"public_key\": \"$SPARE\", \"allowed_ips\": [\"10.31.0.0/24\"]}" >/dev/null
kill -KILL "$ctl"
wait "$ctl" 2>/dev/null || true
start_ctl
check "after a control restart the live-added peer is still there" \
	wait_for 20 bash -c "$E --json call wg.show | jq -e '[.peers[].name] == [\"go\", \"kept\"]'"
check "... and the site reaches wireguard-go again through a fresh handshake" \
	ip netns exec "$P-site" $TRAFFIC udp --dst 10.20.0.1 --port 5000 --count 5 --timeout 20
check "... the state file has the peer's key, and is not world-readable" \
	bash -c "jq -e '.wireguard_peers | length == 2' $WORK/state.json && [ \$(stat -c %a $WORK/state.json) = 600 ]"

# 10. Under load: a handshake_load_threshold of 0 counts every handshake message as load,
# so an initiation without a valid mac2 gets a cookie reply instead of a Diffie-Hellman;
# wireguard-go opens the reply, retries with mac2 (after its REKEY_TIMEOUT) and gets a
# session.
jq '.wireguard.handshake_load_threshold = 0' "$WORK/egress.json" >"$WORK/egress-load.json"
mv "$WORK/egress-load.json" "$WORK/egress.json"
kill -KILL "$ctl"
wait "$ctl" 2>/dev/null || true
start_ctl
check "control restarts with cookies always demanded" \
	wait_for 20 bash -c "$E --json call wg.show | jq -e '.peers | length == 2'"
go_fresh_peer 192.0.2.1:51820
check "wireguard-go's pings get through once it retries with the cookie" \
	wait_for 30 ip netns exec "$P-wg" ping -c1 -W2 10.1.0.2
check "... after the appliance sent cookie replies ($(us '.cookie_replies_sent')) and was under load" \
	[ "$(us '.cookie_replies_sent')" -ge 1 -a "$(us '.under_load')" = true ]
check "... and completed the handshake that carried a valid mac2" [ "$(us '.peers[0].handshakes')" -ge 1 ]

if [ $fails -ne 0 ]; then
	echo "--- control"; tail -20 "$WORK/ctl.log"
	echo "--- dataplane"; tail -10 "$WORK/dp.log"
	echo "--- wireguard-go"; tail -10 "$WORK/wireguard-go.log"
	$E stats || true
	$E wg show || true
fi
harness_finish
