#!/usr/bin/env bash
# Appliance to appliance: two egress-dataplane instances carry traffic between two site
# namespaces through an ESP tunnel; a make-before-break rekey of both directions happens
# in the middle of a continuous echo stream, and no packet is lost.
#
#   siteA 10.1.0.2 -- [A lan0 10.1.0.1 | wan0 192.0.2.1] ==ESP== [wan0 192.0.2.2 | lan0 10.2.0.1 B] -- siteB 10.2.0.2
set -euo pipefail
WORK=$(mktemp -d /tmp/egress-a2a.XXXXXX)
. "${EGRESS_SOURCE:?}/tests/integration/harness.sh"
P=ega$$
topology_down() { for ns in sa dpa dpb sb; do ip netns del "$P-$ns" 2>/dev/null || true; done; }

for ns in sa dpa dpb sb; do ip netns add "$P-$ns"; ip -n "$P-$ns" link set lo up; done
for ns in dpa dpb; do ip netns exec "$P-$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1; done
veth_link "$P-sa" s0 "$P-dpa" alan
veth_link "$P-dpa" awan "$P-dpb" bwan
veth_link "$P-dpb" blan "$P-sb" s0
ip -n "$P-sa" addr add 10.1.0.2/24 dev s0
ip -n "$P-sa" route add default via 10.1.0.1
ip -n "$P-sb" addr add 10.2.0.2/24 dev s0
ip -n "$P-sb" route add default via 10.2.0.1

KA=000102030405060708090a0b0c0d0e0fa0a1a2a3
KB=f0f1f2f3f4f5f6f7f8f9fafbfcfdfeffb0b1b2b3
config() { # name lan-if lan-ip wan-if wan-ip peer-wan-ip remote-site out-spi in-spi out-key in-key
	cat <<JSON
{
  "instance": "$P$1",
  "dataplane": {"eal": ["--no-huge", "-m", "256", "--no-pci", "-l", "0-1"], "workers": 1,
    "ports": [
      {"name": "lan0", "role": "site", "device": "net_af_packet0,iface=$2", "ipv4": "$3/24"},
      {"name": "wan0", "role": "uplink", "device": "net_af_packet1,iface=$4", "ipv4": "$5/24"}]},
  "control": {"socket": "$WORK/$1.sock", "state_file": "$WORK/$1.state.json"},
  "ipsec": {"sas": [
    {"spi": $8, "direction": "out", "local": "$5", "remote": "$6", "aead": "aes-gcm-128", "key": "${10}", "esn": true},
    {"spi": $9, "direction": "in", "local": "$5", "remote": "$6", "aead": "aes-gcm-128", "key": "${11}", "esn": true}]},
  "egresses": [{"name": "tunnel", "type": "ipsec", "sa_out": $8, "sa_in": $9}],
  "policies": [{"name": "to-peer", "priority": 10, "match": {"dst": ["$7"]}, "egresses": ["tunnel"], "strategy": "pinned"}]
}
JSON
}
config a alan 10.1.0.1 awan 192.0.2.1 192.0.2.2 10.2.0.0/16 12289 16385 $KA $KB >"$WORK/a.json"
config b blan 10.2.0.1 bwan 192.0.2.2 192.0.2.1 10.1.0.0/16 16385 12289 $KB $KA >"$WORK/b.json"
declare -A dp ctl
start_dp() {
	ip netns exec "$P-dp$1" "$BUILD/dataplane/egress-dataplane" -c "$WORK/$1.json" >>"$WORK/dp-$1.log" 2>&1 &
	dp[$1]=$!
	pids+=($!)
}
start_ctl() {
	"$BUILD/control/egress-control" -c "$WORK/$1.json" >>"$WORK/ctl-$1.log" 2>&1 &
	ctl[$1]=$!
	pids+=($!)
}
for n in a b; do start_dp $n; start_ctl $n; done
A="$BUILD/tools/egressctl -s $WORK/a.sock"
B="$BUILD/tools/egressctl -s $WORK/b.sock"
ip netns exec "$P-sb" $TRAFFIC serve --addr 10.2.0.2 --udp 5000 --tcp 5002 --log "$WORK/sb.log" --seconds 120 &
pids+=($!)

up() { $1 --json egress list | jq -e '.egresses[0].state == "up"'; }
check "both appliances attach with their tunnel egress up" wait_for 30 bash -c "$(declare -f up); up '$A' && up '$B'"
check "site A reaches site B through the tunnel (UDP echo)" ip netns exec "$P-sa" $TRAFFIC udp --dst 10.2.0.2 --port 5000 --count 5 --timeout 20
ip netns exec "$P-sa" ping -c1 -W2 -M do -s 1472 10.2.0.2 >"$WORK/ping-df.txt" 2>&1 || true
check "an oversized packet with DF gets ICMP fragmentation needed with the tunnel MTU" \
	grep -q "mtu = 1440" "$WORK/ping-df.txt"
check "a 1 MiB TCP transfer through the tunnel comes back intact" \
	ip netns exec "$P-sa" $TRAFFIC tcp --dst 10.2.0.2 --port 5002 --bytes 1048576
check "an oversized packet without DF is fragmented into the tunnel and arrives whole" \
	ip netns exec "$P-sa" ping -c2 -W3 -M dont -s 1460 10.2.0.2
check "both directions are ESP: A's outbound and inbound SAs carried packets" \
	bash -c "$A --json call ipsec.sa.list | jq -e '[.sas[] | .packets > 0] | all'"

# Make-before-break rekey while 1500 datagrams flow (one every 2 ms): first the new
# inbound SAs on both sides, then both outbound SAs take over atomically.
ip netns exec "$P-sa" $TRAFFIC stream --dst 10.2.0.2 --port 5000 --count 1500 --gap 0.002 --linger 2 >"$WORK/stream.json" &
stream=$!
sleep 1
NA=0102030405060708090a0b0c0d0e0f10c0c1c2c3
NB=1112131415161718191a1b1c1d1e1f20d0d1d2d3
sa() { jq -nc --argjson s "$1" --arg d "$2" --arg l "$3" --arg r "$4" --arg k "$5" --argjson rep "$6" \
	'{spi: $s, direction: $d, local: $l, remote: $r, aead: "aes-gcm-128", key: $k, esn: true, replaces: $rep}'; }
rekey_ok=1
$A call ipsec.sa.add "$(sa 16386 in 192.0.2.1 192.0.2.2 $NB 16385)" >/dev/null || rekey_ok=0
$B call ipsec.sa.add "$(sa 12290 in 192.0.2.2 192.0.2.1 $NA 12289)" >/dev/null || rekey_ok=0
$A call ipsec.sa.add "$(sa 12290 out 192.0.2.1 192.0.2.2 $NA 12289)" >/dev/null || rekey_ok=0
$B call ipsec.sa.add "$(sa 16386 out 192.0.2.2 192.0.2.1 $NB 16385)" >/dev/null || rekey_ok=0
check "the rekey calls succeed on both appliances" [ $rekey_ok -eq 1 ]
rc=0
wait $stream || rc=$?
check "no datagram was lost across the rekey ($(jq -c '{sent, received, lost}' "$WORK/stream.json"))" [ $rc -eq 0 ]
check "the new outbound SA carries the traffic, the old one was retired" \
	bash -c "$A --json call ipsec.sa.list | jq -e '([.sas[] | select(.direction==\"out\") | .spi] == [12290]) and (.sas[] | select(.spi==12290 and .direction==\"out\") | .packets > 0)'"
check "the old inbound SA keeps decrypting until it is removed" \
	bash -c "$A --json call ipsec.sa.list | jq -e '[.sas[] | select(.direction==\"in\") | .spi] | sort == [16385, 16386]'"
check "the egress now names the new SAs" \
	bash -c "$A --json egress list | jq -e '.egresses[0].sa_out == 12290 and .egresses[0].sa_in == 16386'"
check "removing the old inbound SA once the peer moved on works" $A call ipsec.sa.remove '{"spi": 16385, "direction": "in"}'
check "traffic still flows after the old SAs are gone" ip netns exec "$P-sa" $TRAFFIC udp --dst 10.2.0.2 --port 5000 --count 5
check "the rekeyed state survives a control restart (state file)" \
	jq -e '.ipsec.sas | map(.spi) | sort == [12290, 16386]' "$WORK/a.state.json"

# SIGKILL A's control: the dataplane keeps the SAs, a new control adopts their slots (a
# re-installed SA would restart its sequence numbers and B would drop them as replays).
seq_before=$($A --json call ipsec.sa.list | jq '.sas[] | select(.direction=="out") | .seq')
kill -KILL "${ctl[a]}"
wait "${ctl[a]}" 2>/dev/null || true
start_ctl a
check "a restarted control re-attaches with the tunnel up" wait_for 30 up "$A"
check "... adopting the live outbound SA (sequence numbers go on from $seq_before)" \
	bash -c "$A --json call ipsec.sa.list | jq -e '.sas[] | select(.direction==\"out\") | .seq >= $seq_before'"
check "... and traffic flows both ways" ip netns exec "$P-sa" $TRAFFIC udp --dst 10.2.0.2 --port 5000 --count 5

# SIGKILL A's dataplane and start it again: control re-installs the SAs, outbound numbers
# resume past the last ones seen and the inbound window keeps rejecting old numbers.
kill -KILL "${dp[a]}"
wait "${dp[a]}" 2>/dev/null || true
start_dp a
check "after a dataplane restart the SAs are installed again" wait_for 30 up "$A"
check "... and the peer accepts the resumed sequence numbers (traffic flows)" \
	ip netns exec "$P-sa" $TRAFFIC udp --dst 10.2.0.2 --port 5000 --count 5 --timeout 20
check "... with outbound numbers past the old ones" \
	bash -c "$A --json call ipsec.sa.list | jq -e '.sas[] | select(.direction==\"out\") | .seq > $seq_before + 1000'"

# Rekey once more to SAs that fragment the ESP packet instead of the inner one: a 1488-byte
# echo without DF crosses in two outer fragments each way, which the other appliance
# reassembles before it decrypts.
FA=2122232425262728292a2b2c2d2e2f30e0e1e2e3
FB=3132333435363738393a3b3c3d3e3f40f0f1f2f3
fsa() { jq -c '. + {fragment: "outer"}' <<<"$(sa "$@")"; }
frag_ok=1
$A call ipsec.sa.add "$(fsa 16387 in 192.0.2.1 192.0.2.2 $FB 16386)" >/dev/null || frag_ok=0
$B call ipsec.sa.add "$(fsa 12291 in 192.0.2.2 192.0.2.1 $FA 12290)" >/dev/null || frag_ok=0
$A call ipsec.sa.add "$(fsa 12291 out 192.0.2.1 192.0.2.2 $FA 12290)" >/dev/null || frag_ok=0
$B call ipsec.sa.add "$(fsa 16387 out 192.0.2.2 192.0.2.1 $FB 16386)" >/dev/null || frag_ok=0
check "SAs with \"fragment\": \"outer\" replace the current ones" [ $frag_ok -eq 1 ]
sa_pkts() { $A --json call ipsec.sa.list | jq '.sas[] | select(.spi==12291 and .direction=="out") | .packets'; }
eg_pkts() { $A --json stats | jq '.egresses[] | select(.name=="tunnel") | .tx_packets'; }
sa0=$(sa_pkts) eg0=$(eg_pkts)
check "oversized echoes without DF cross both ways as outer fragments and arrive whole" \
	ip netns exec "$P-sa" ping -c3 -i0.3 -W3 -M dont -s 1460 10.2.0.2
check "... each of A's ESP packets left in two fragments (SA +$(( $(sa_pkts) - sa0 )), frames +$(( $(eg_pkts) - eg0 )))" \
	[ $(( $(eg_pkts) - eg0 )) -eq $(( 2 * ($(sa_pkts) - sa0) )) -a $(( $(sa_pkts) - sa0 )) -ge 3 ]

# Probes inside the tunnel, appliance to appliance: A's STAMP session-sender against B's
# dataplane reflector, and B's ICMP echo answered by A's dataplane, both ways in ESP.
$A call egress.add '{"name": "probe-b", "type": "ipsec", "sa_out": 12291, "sa_in": 16387,
	"probe": {"target": "10.2.0.1", "method": "stamp", "interval_ms": 100}}' >/dev/null || true
$B call egress.add '{"name": "probe-a", "type": "ipsec", "sa_out": 16387, "sa_in": 12291,
	"probe": {"target": "10.1.0.1", "interval_ms": 100}}' >/dev/null || true
answered() { $1 --json call path.list | jq -e ".paths[] | select(.name==\"$2\") | .window.answered >= 5 and .rtt_ms.avg > 0" >/dev/null; }
check "A's STAMP probes through ESP are answered by B's dataplane reflector" wait_for 10 answered "$A" probe-b
check "B's echo probes through ESP are answered by A's dataplane" wait_for 10 answered "$B" probe-a
check "... and the probes really crossed the tunnel (B's reflections counted)" \
	bash -c "$B --json stats | jq -e '[.workers[].probes_reflected] | add > 0' >/dev/null"

if [ $fails -ne 0 ]; then
	for n in a b; do echo "--- control $n"; grep -v "rpc: client" "$WORK/ctl-$n.log" | tail -10; done
	$A stats || true
fi
harness_finish
