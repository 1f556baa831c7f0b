#!/usr/bin/env bash
# ESP interop with independent implementations: what the appliance encrypts is decrypted
# by scapy's ESP and by tshark with the same SA; what scapy encrypts is accepted and
# delivered; tampered, replayed and unknown-SPI packets are dropped and counted by reason.
# AES-GCM-128 and -256, IPv4 and IPv6 outer, NAT-T, ESN, lifetimes.
set -euo pipefail
WORK=$(mktemp -d /tmp/egress-esp.XXXXXX)
. "${EGRESS_SOURCE:?}/tests/integration/harness.sh"
TOPO=ege$$
. "$SRC/tools/topology.sh"
topology_down() { topo_down; }
SOCK=$WORK/ctl.sock
PEER="$PY $SRC/tests/integration/esp_peer.py"
CTL="$BUILD/tools/egressctl -s $SOCK"
drops() { $CTL --json stats | jq ".drops.$1"; }
# One count, even while a line is half written (see path_selection.sh's arrivals).
arrivals() {
	[ -f "$WORK/site.log" ] || { echo 0; return; }
	{ jq -c "select(.port==$1)" "$WORK/site.log" 2>/dev/null || true; } | wc -l
}

K128=000102030405060708090a0b0c0d0e0f
K256=101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f
SALT=a0a1a2a3
# name, spi out, spi in, aead, key, local, remote, extra JSON
sa_pair() {
	local out=$1 in=$2 aead=$3 key=$4 l=$5 r=$6 extra=$7
	jq -n --argjson o "$out" --argjson i "$in" --arg a "$aead" --arg k "$key$SALT" --arg l "$l" --arg r "$r" \
		--argjson x "$extra" '[
		({spi: $o, direction: "out", local: $l, remote: $r, aead: $a, key: $k} + $x),
		({spi: $i, direction: "in", local: $l, remote: $r, aead: $a, key: $k, replay_window: 1024} + $x)]'
}

topo_up
topo_config "$WORK/base.json" "$SOCK" "$WORK/state.json" "$TOPO"
sas=$(jq -s 'add' <(sa_pair 4097 8193 aes-gcm-128 $K128 192.0.2.1 192.0.2.254 '{}') \
	<(sa_pair 4098 8194 aes-gcm-256 $K256 192.0.2.1 192.0.2.254 '{"esn": true}') \
	<(sa_pair 4099 8195 aes-gcm-128 $K128 192.0.2.1 192.0.2.254 '{"encap": "udp"}') \
	<(sa_pair 4100 8196 aes-gcm-256 $K256 fd00:20::1 fd00:20::fe '{}') \
	<(sa_pair 4101 8197 aes-gcm-128 $K128 192.0.2.1 192.0.2.254 '{"lifetime": {"packets": 20}, "soft_lifetime": {"packets": 10}}') \
	<(sa_pair 4102 8198 chacha20-poly1305 $K256 192.0.2.1 192.0.2.254 '{"esn": true}') \
	<(sa_pair 4103 8199 aes-gcm-128 $K128 192.0.2.1 192.0.2.254 '{"fragment": "outer"}') \
	<(sa_pair 4104 8200 aes-gcm-256 $K256 fd00:20::1 fd00:20::fe '{"fragment": "outer"}'))
jq --argjson sas "$sas" '.ipsec = {sas: $sas}
	| .egresses += [range(1;9) as $n | {name: "esp\($n)", type: "ipsec", sa_out: (4096 + $n), sa_in: (8192 + $n)}]
	| .policies = [range(1;9) as $n | {name: "to-esp\($n)", priority: $n,
		match: {proto: "udp", dport: "\(6000 + $n)"}, egresses: ["esp\($n)"], strategy: "pinned"}] + .policies' \
	"$WORK/base.json" >"$WORK/egress.json"

ip netns exec "$NS_DP" "$BUILD/dataplane/egress-dataplane" -c "$WORK/egress.json" >"$WORK/dataplane.log" 2>&1 &
pids+=($!)
"$BUILD/control/egress-control" -c "$WORK/egress.json" >"$WORK/control.log" 2>&1 &
pids+=($!)
ip netns exec "$NS_SITE" $TRAFFIC serve --addr 10.10.0.2 --addr fd00:10::2 --udp 7000 --log "$WORK/site.log" --seconds 240 &
pids+=($!)

up() { $CTL --json egress list | jq -e '[.egresses[] | select(.type=="ipsec") | .state] | all(. == "up")'; }
check "control attaches and every ESP egress is up" wait_for 30 up
# Subscribed only now that the socket answers: started earlier it could find none and quit.
"$BUILD/tools/egressctl" -s "$SOCK" --json events ipsec.sa.expiring egress.state >"$WORK/events.log" 2>&1 &
events_pid=$!
pids+=($events_pid)
check "the event subscriber is connected" wait_for 5 bash -c "kill -0 $events_pid && grep -q . <(ls -l /proc/$events_pid/fd 2>/dev/null | grep socket)"
check "the appliance answers ping (ARP for the ESP peer works)" wait_for 10 ip netns exec "$NS_UP0" ping -c1 -W1 192.0.2.1
sa_json() { # spi key src dst [natt] [esn] [alg]
	jq -nc --argjson s "$1" --arg k "$2$SALT" --arg a "$3" --arg b "$4" --argjson n "${5:-false}" --argjson e "${6:-false}" \
		--arg alg "${ALG:-AES-GCM}" '{spi: $s, key: $k, src: $a, dst: $b, natt: $n, esn: $e, alg: $alg}'
}
# Out: the appliance encrypts, scapy decrypts (in the uplink namespace).
out_case() { # label spi key dport natt esn inner-dst outer-src outer-dst
	local label=$1 spi=$2 key=$3 dport=$4 natt=$5 esn=$6 dst=$7 osrc=$8 odst=$9
	ip netns exec "$NS_UP0" $PEER decrypt --iface u0 --count 5 --timeout 15 --dport "$dport" --frags "${FRAGS:-1}" \
		--sa "$(sa_json "$spi" "$key" "$osrc" "$odst" "$natt" "$esn")" --pcap "$WORK/out-$spi.pcap" >"$WORK/out-$spi.json" &
	local peer=$!
	wait_for 20 grep -q '"ready"' "$WORK/out-$spi.json" || true
	ip netns exec "$NS_SITE" $TRAFFIC udp --fire --dst "$dst" --port "$dport" --count 5 --gap 0.05 \
		${SIZE:+--size $SIZE --no-df} >/dev/null
	local rc=0
	wait $peer || rc=$?
	check "$label: scapy decrypts the appliance's ESP ($(tail -n1 "$WORK/out-$spi.json" | jq -c '{seen, fragments, decrypted}'))" \
		[ $rc -eq 0 ]
}
out_case "AES-GCM-128, IPv4 outer" 4097 $K128 6001 false false 203.0.113.20 192.0.2.1 192.0.2.254
out_case "AES-GCM-256 with ESN" 4098 $K256 6002 false true 203.0.113.20 192.0.2.1 192.0.2.254
out_case "NAT-T (UDP 4500)" 4099 $K128 6003 true false 203.0.113.20 192.0.2.1 192.0.2.254
out_case "AES-GCM-256, IPv6 outer, IPv6 inner" 4100 $K256 6004 false false 2001:db8:99::20 fd00:20::1 fd00:20::fe
ALG=CHACHA20-POLY1305 out_case "ChaCha20-Poly1305 (RFC 7634) with ESN" 4102 $K256 6006 false true 203.0.113.20 192.0.2.1 192.0.2.254
# 1460 bytes of UDP without DF do not fit the tunnel (MTU 1440 with IPv4 outer, 1420 with
# IPv6): the SAs with "fragment": "outer" encrypt them whole and fragment the ESP packet.
SIZE=1460 FRAGS=2 out_case "outer fragmentation, IPv4 outer" 4103 $K128 6007 false false 203.0.113.20 192.0.2.1 192.0.2.254
check "... every ESP packet left in 2 fragments" [ "$(tail -n1 "$WORK/out-4103.json" | jq .fragments)" = 10 ]
SIZE=1460 FRAGS=2 out_case "outer fragmentation, IPv6 outer" 4104 $K256 6008 false false 203.0.113.20 fd00:20::1 fd00:20::fe
check "... every ESP packet left in 2 fragments" [ "$(tail -n1 "$WORK/out-4104.json" | jq .fragments)" = 10 ]
# IPv6 is never fragmented on the way: 1440 bytes of UDP (1488 with headers) over the IPv6
# outer SA (tunnel MTU 1420) get an ICMPv6 Packet Too Big, which the site's kernel records.
ptb_before=$(drops mtu_exceeded)
ip netns exec "$NS_SITE" $TRAFFIC udp --fire --dst 2001:db8:99::20 --port 6004 --count 2 --size 1440 >/dev/null
check "an IPv6 packet too big for the tunnel gets Packet Too Big with the tunnel MTU (1420)" wait_for 5 \
	bash -c "ip -n $NS_SITE -6 route get 2001:db8:99::20 | grep -q 'mtu 1420'"
check "... and is dropped as mtu_exceeded" [ "$(drops mtu_exceeded)" -ge $((ptb_before + 1)) ]
check "sequence numbers start at 1 and count up" \
	[ "$(tail -n1 "$WORK/out-4097.json" | jq -c '.seqs[:3]')" = "[1,2,3]" ]

# tshark, a second independent implementation, on the capture of SA 4097.
tshark_counts() {
	tshark -r "$WORK/out-4097.pcap" -o esp.enable_encryption_decode:TRUE -o esp.enable_authentication_check:TRUE \
		-o "uat:esp_sa:\"IPv4\",\"192.0.2.1\",\"192.0.2.254\",\"0x00001001\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"0x$K128$SALT\",\"NULL\",\"\"" \
		-T fields -e esp.icv_good -e esp.icv_bad -e udp.dstport 2>/dev/null
}
tshark_counts >"$WORK/tshark.txt" || true
good=$(awk '$1==1' "$WORK/tshark.txt" | wc -l)
check "tshark verifies every ICV of the appliance's ESP ($good of 5) and sees the inner UDP/6001" \
	bash -c "[ $good -eq 5 ] && ! awk '\$2==1' $WORK/tshark.txt | grep -q . && grep -q 6001 $WORK/tshark.txt"

# In: scapy encrypts, the appliance decrypts and delivers to the site.
in_case() { # label spi key src dst natt esn start-seq inner-src inner-dst
	local before
	before=$(arrivals 7000)
	ip netns exec "$NS_UP0" $PEER send --sa "$(sa_json "$2" "$3" "$4" "$5" "$6" "$7")" --src "$9" --dst "${10}" \
		--count 5 --seq "$8" ${FRAGMENT:+--size 1400 --fragment $FRAGMENT} >/dev/null
	check "$1: the appliance accepts scapy's ESP and delivers it" wait_for 10 \
		bash -c "[ \$(jq -c 'select(.port==7000)' $WORK/site.log | wc -l) -ge $((before + 5)) ]"
}
in_case "AES-GCM-128 in" 8193 $K128 192.0.2.254 192.0.2.1 false false 1 203.0.113.20 10.10.0.2
in_case "AES-GCM-256 in, ESN across 2^32" 8194 $K256 192.0.2.254 192.0.2.1 false true $(( (1 << 32) - 2 )) 203.0.113.20 10.10.0.2
in_case "NAT-T in" 8195 $K128 192.0.2.254 192.0.2.1 true false 1 203.0.113.20 10.10.0.2
ALG=CHACHA20-POLY1305 in_case "ChaCha20-Poly1305 in" 8198 $K256 192.0.2.254 192.0.2.1 false true 7 203.0.113.20 10.10.0.2
in_case "IPv6 outer in" 8196 $K256 fd00:20::fe fd00:20::1 false false 1 2001:db8:99::20 fd00:10::2
# egressctl capture of egress esp1 while it carries ESP both ways: tshark, given both SAs,
# authenticates every packet of the file and sees the inner UDP.
$CTL capture esp1 -w "$WORK/esp1.pcapng" -c 10 -d 30 2>"$WORK/capture.log" &
cap=$!
check "a capture of egress esp1 starts (status shows it)" wait_for 5 bash -c "$CTL --json status | jq -e '.capture.target == \"esp1\"'"
ip netns exec "$NS_SITE" $TRAFFIC udp --fire --dst 203.0.113.20 --port 6001 --count 5 --gap 0.05 >/dev/null
ip netns exec "$NS_UP0" $PEER send --sa "$(sa_json 8193 $K128 192.0.2.254 192.0.2.1)" --src 203.0.113.20 --dst 10.10.0.2 \
	--count 5 --seq 200 >/dev/null
rc=0
wait $cap || rc=$?
check "... and ends with 10 packets ($(tail -n1 "$WORK/capture.log"))" [ $rc -eq 0 ]
esp_sa_uat() { # spi src dst
	echo "uat:esp_sa:\"IPv4\",\"$2\",\"$3\",\"$1\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"0x$K128$SALT\",\"NULL\",\"\""
}
tshark -r "$WORK/esp1.pcapng" -o esp.enable_encryption_decode:TRUE -o esp.enable_authentication_check:TRUE \
	-o "$(esp_sa_uat 0x00001001 192.0.2.1 192.0.2.254)" -o "$(esp_sa_uat 0x00002001 192.0.2.254 192.0.2.1)" \
	-T fields -e frame.packet_flags_direction -e esp.spi -e esp.icv_good -e udp.dstport >"$WORK/esp1.txt" 2>/dev/null || true
check "tshark authenticates all 10: 5 out with SPI 0x1001, 5 in with SPI 0x2001 ($(cut -f1-3 "$WORK/esp1.txt" | sort | uniq -c | xargs))" \
	[ "$(cut -f1-3 "$WORK/esp1.txt" | sort | uniq -c | xargs)" = "5 0x00000001 0x00002001 1 5 0x00000002 0x00001001 1" ]
check "... with the inner UDP to 6001 and 7000 inside" \
	bash -c "grep -c '6001' '$WORK/esp1.txt' | grep -qx 5 && grep -c '7000' '$WORK/esp1.txt' | grep -qx 5"
# ESP that the peer fragmented (scapy cuts, sends the last fragment first): reassembled
# before it is authenticated and decrypted (RFC 4303 3.4.1).
reasm() { $CTL --json stats | jq '[.workers[].reassembled] | add'; }
reasm_before=$(reasm)
FRAGMENT=600 in_case "fragmented ESP in, IPv4 outer, out of order" 8199 $K128 192.0.2.254 192.0.2.1 false false 1 203.0.113.20 10.10.0.2
FRAGMENT=600 in_case "fragmented ESP in, IPv6 outer, out of order" 8200 $K256 fd00:20::fe fd00:20::1 false false 1 2001:db8:99::20 fd00:10::2
# AF_PACKET's fanout (DPDK sets PACKET_FANOUT_FLAG_DEFRAG) reassembles IPv4 in the kernel
# before the dataplane sees it; IPv6 fragments reach our reassembly (IPv4's is covered by
# tests/dataplane/test_esp_path.c).
check "... the appliance reassembled the IPv6 ones itself ($(( $(reasm) - reasm_before )) datagrams)" [ $(( $(reasm) - reasm_before )) -ge 5 ]

# Tampering and replay: dropped and counted by reason.
sa1=$(sa_json 8193 $K128 192.0.2.254 192.0.2.1)
tamper() { # what reason
	local before after delivered
	before=$(drops "$2")
	delivered=$(arrivals 7000)
	# (below the top of the window, 204, yet never seen)
	ip netns exec "$NS_UP0" $PEER send --sa "$sa1" --src 203.0.113.20 --dst 10.10.0.2 --count 1 --seq 100 --tamper "$1" >/dev/null
	wait_for 5 bash -c "[ \$($CTL --json stats | jq .drops.$2) -gt $before ]" || true
	after=$(drops "$2")
	check "a packet with a flipped $1 byte is dropped as $2" \
		bash -c "[ $after -eq $((before + 1)) ] && [ $(arrivals 7000) -eq $delivered ]"
}
tamper spi esp_no_sa
tamper iv esp_auth_failed
tamper payload esp_auth_failed
tamper icv esp_auth_failed
before=$(drops esp_replay)
ip netns exec "$NS_UP0" $PEER send --sa "$sa1" --src 203.0.113.20 --dst 10.10.0.2 --count 3 --seq 1 >/dev/null
check "replayed packets are dropped as esp_replay" wait_for 5 bash -c "[ \$($CTL --json stats | jq .drops.esp_replay) -ge $((before + 3)) ]"
check "ipsec.sa.list counts them per SA and shows no key" \
	bash -c "$CTL --json call ipsec.sa.list | jq -e '(.sas[] | select(.spi==8193 and .direction==\"in\") | .auth_failures == 3 and .replays >= 3 and .packets == 10) and ([.sas[] | has(\"key\")] | any | not)'"
check "no key appears in the control log" bash -c "! grep -qi '$K128\|$K256' $WORK/control.log"

# Lifetimes: SA 4101 soft at 10 packets, hard at 20.
ip netns exec "$NS_SITE" $TRAFFIC udp --fire --dst 203.0.113.20 --port 6005 --count 25 --gap 0.02 >/dev/null
check "the soft lifetime sends ipsec.sa.expiring (hard false)" wait_for 5 \
	bash -c "jq -se 'map(select(.method==\"ipsec.sa.expiring\" and .params.spi==4101 and .params.hard==false)) | length == 1' $WORK/events.log"
check "the hard lifetime stops the SA and says so" wait_for 5 \
	bash -c "jq -se 'map(select(.method==\"ipsec.sa.expiring\" and .params.spi==4101 and .params.hard==true)) | length == 1' $WORK/events.log"
check "... its egress goes down" wait_for 5 \
	bash -c "$CTL --json egress list | jq -e '.egresses[] | select(.name==\"esp5\") | .state == \"down\"'"
check "... and it sent exactly 20 packets" \
	bash -c "$CTL --json call ipsec.sa.list | jq -e '.sas[] | select(.spi==4101 and .direction==\"out\") | .packets == 20 and .state == \"stopped\"'"

if [ $fails -ne 0 ]; then
	echo "--- dataplane log"; tail -20 "$WORK/dataplane.log"
	echo "--- control log"; grep -v "rpc: client" "$WORK/control.log" | tail -20
	$CTL stats || true
fi
harness_finish
