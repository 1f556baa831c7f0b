#!/usr/bin/env bash
# Prometheus metrics (control.metrics): the exposition passes promtool's checks, carries
# the figures the control socket gives (ports, workers, drops by reason, paths and their
# probes, policies, WireGuard peers, ESP SAs, publish latency), answers only GET /metrics,
# is not held up by a client that never asks, and a real prometheus server scrapes it.
set -euo pipefail
WORK=$(mktemp -d /tmp/egress-metrics.XXXXXX)
. "${EGRESS_SOURCE:?}/tests/integration/harness.sh"
command -v prometheus >/dev/null && command -v promtool >/dev/null ||
	{ echo "SKIP: prometheus and promtool needed (tools/install-deps.sh)"; exit 77; }
TOPO=egm$$
. "$SRC/tools/topology.sh"
topology_down() { topo_down; }
SOCK=$WORK/ctl.sock
CTL="$BUILD/tools/egressctl -s $SOCK"
free_port() { $PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
PROM_PORT=$(free_port)
export PY PROM_PORT	# for the functions that bash -c checks run
# HTTP as a scraper sees it: prints the status line's code, then the body.
http() { # method path [raw request bytes instead]
	$PY - "$PORT" "$@" <<'PY'
import socket, sys
port, method, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(("%s %s HTTP/1.1\r\nHost: x\r\n\r\n" % (method, path)).encode() if method != "RAW" else path.encode())
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
head, _, body = data.partition(b"\r\n\r\n")
print(head.split(b" ")[1].decode())
sys.stdout.write(body.decode())
PY
}

topo_up
topo_config "$WORK/base.json" "$SOCK" "$WORK/state.json" "$TOPO"
wg genkey >"$WORK/us.key"
PEER=$(wg genkey | wg pubkey)
KEY=000102030405060708090a0b0c0d0e0fa0a1a2a3
jq --arg m "127.0.0.1:$PORT" --arg key "$(cat "$WORK/us.key")" --arg peer "$PEER" --arg k $KEY '
	.control.metrics = $m
	| .wireguard = {private_key: $key, listen_port: 51820,
		peers: [{name: "far", public_key: $peer, endpoint: "198.51.100.254:51820", allowed_ips: ["10.99.0.0/24"]}]}
	| .ipsec = {sas: [
		{spi: 4097, direction: "out", local: "198.51.100.1", remote: "198.51.100.254", aead: "aes-gcm-128", key: $k},
		{spi: 8193, direction: "in", local: "198.51.100.1", remote: "198.51.100.254", aead: "aes-gcm-128", key: $k}]}
	| .egresses[0].probe = {target: "203.0.113.10", interval_ms: 100}
	| .egresses += [{name: "wg-far", type: "wireguard", peer: "far"},
		       {name: "esp-far", type: "ipsec", sa_out: 4097, sa_in: 8193}]' \
	"$WORK/base.json" >"$WORK/egress.json"
ip netns exec "$NS_UP0" $TRAFFIC serve --addr 203.0.113.10 --udp 5000 --log "$WORK/up0.log" --seconds 120 &
pids+=($!)
ip netns exec "$NS_DP" "$BUILD/dataplane/egress-dataplane" -c "$WORK/egress.json" >"$WORK/dataplane.log" 2>&1 &
pids+=($!)
"$BUILD/control/egress-control" -c "$WORK/egress.json" >"$WORK/control.log" 2>&1 &
pids+=($!)
check "control attaches" wait_for 30 bash -c "$CTL --json status | jq -e '.dataplane.attached == true'"
check "the site's datagrams cross the appliance" \
	ip netns exec "$NS_SITE" $TRAFFIC udp --dst 203.0.113.10 --port 5000 --count 5 --timeout 10
ip netns exec "$NS_SITE" $TRAFFIC udp --fire --dst 203.0.113.10 --port 5009 --count 3 >/dev/null	# policy "blocked"
sleep 1.5	# a window of probes

http GET /metrics >"$WORK/scrape.txt"
sed 1d "$WORK/scrape.txt" >"$WORK/metrics.txt"
metric() { grep -E "^$1 " "$WORK/metrics.txt" | awk '{print $2}'; }
positive() { awk -v v="$(metric "$1")" 'BEGIN { exit !(v > 0) }'; }
check "GET /metrics answers 200" [ "$(head -1 "$WORK/scrape.txt")" = 200 ]
check "promtool accepts the exposition (format and naming conventions)" \
	bash -c "promtool check metrics <$WORK/metrics.txt"
check "port counters: lan0 received the site's datagrams" \
	positive 'egress_port_rx_packets_total\{port="lan0",role="site"\}'
check "worker counters, and probes sent by the worker" positive 'egress_worker_probes_sent_total\{worker="0"\}'
check "the worker's flow cache: the site's flows looked up, the first packet of each a miss, room for 16384, never grown, nothing moved" \
	bash -c "$(declare -f metric positive); WORK=$WORK; positive 'egress_worker_flow_cache_lookups_total\{worker=\"0\"\}' &&
		positive 'egress_worker_flow_cache_misses_total\{worker=\"0\"\}' &&
		[ \"\$(metric 'egress_worker_flow_cache_capacity_flows\{worker=\"0\"\}')\" = 16384 ] &&
		[ \"\$(metric 'egress_worker_flow_cache_grows_total\{worker=\"0\"\}')\" = 0 ] &&
		[ \"\$(metric 'egress_worker_flow_cache_relocations_total\{worker=\"0\"\}')\" = 0 ]"
check "drops by reason: the blocked policy's 3 datagrams" \
	[ "$(metric 'egress_drops_total\{reason="policy_drop"\}')" = 3 ]
check "a probed path's RTT in seconds, and its state" \
	bash -c "$(declare -f metric positive); WORK=$WORK; positive 'egress_path_rtt_avg_seconds\{egress=\"direct-wan0\"\}' &&
		[ \"\$(metric 'egress_path_state\{egress=\"direct-wan0\",state=\"up\"\}')\" = 1 ]"
check "policy hits" positive 'egress_policy_hits_total\{policy="default"\}'
check "a WireGuard peer's counters, labelled with its name and key" \
	grep -q "^egress_wireguard_peer_handshakes_total{peer=\"far\",public_key=\"$PEER\"} 0$" "$WORK/metrics.txt"
check "ESP SA counters by SPI and direction" \
	grep -q '^egress_ipsec_sa_packets_total{spi="4097",direction="out"} ' "$WORK/metrics.txt"
check "the table's generation and publish latency histogram" \
	bash -c "$(declare -f metric positive); WORK=$WORK; positive egress_table_generation &&
		positive egress_table_publish_duration_seconds_count"
check "no key material in the exposition" bash -c "! grep -qiE '$KEY|$(cat "$WORK/us.key")' $WORK/metrics.txt"

# DPDK telemetry: our /egress/ commands beside DPDK's own, through DPDK's own client.
telemetry() { printf '%s\n' "$@" | /usr/bin/python3 /usr/bin/dpdk-telemetry.py -f "egress-$TOPO" 2>&1; }
telemetry /ethdev/list /egress/stats /egress/drops /egress/port_stats,lan0 /egress/egresses \
	/egress/egress_stats,direct-wan0 /egress/worker_stats,0 /egress/info >"$WORK/telemetry.txt" || true
tel() { grep -F "\"$1\"" "$WORK/telemetry.txt" | jq -c ".[\"$1\"]"; }
check "dpdk-telemetry.py lists ethdev ports and our commands answer beside them" \
	bash -c "$(declare -f tel); WORK=$WORK; [ \"\$(tel /ethdev/list)\" = '[0,1,2]' ] && tel /egress/stats | jq -e '.rx_packets >= 5'"
check "... drops by reason (policy_drop 3)" [ "$(tel /egress/drops | jq '.policy_drop')" = 3 ]
check "... a port's counters by name" bash -c "$(declare -f tel); WORK=$WORK; tel /egress/port_stats | jq -e '.name == \"lan0\" and .rx_packets >= 8 and .link_up == 1'"
check "... the egresses of the current table, and one's state and counters" \
	bash -c "$(declare -f tel); WORK=$WORK; [ \"\$(tel /egress/egresses)\" = '[\"direct-wan0\",\"direct-wan1\",\"wg-far\",\"esp-far\"]' ] &&
		tel /egress/egress_stats | jq -e '.state == \"up\" and .type == \"direct\" and .tx_packets >= 5'"
check "... a worker's loops and the generation it passed" \
	bash -c "$(declare -f tel); WORK=$WORK; tel /egress/worker_stats | jq -e '.busy_loops > 0 and .quiescent_generation >= 1 and .flow_cache_capacity >= 16384 and .flow_cache_lookups >= .flow_cache_misses and .flow_cache_grows == 0 and .flow_cache_relocations == 0'"
check "... and the instance" bash -c "$(declare -f tel); WORK=$WORK; tel /egress/info | jq -e '.instance == \"$TOPO\" and .workers == 1'"

# Anything but GET or HEAD /metrics is refused.
check "another path gets 404" [ "$(http GET /other | head -1)" = 404 ]
check "POST gets 405" [ "$(http POST /metrics | head -1)" = 405 ]
check "a request that is not HTTP gets 400" [ "$(http RAW $'hello\r\n\r\n' | head -1)" = 400 ]
check "HEAD gets the status without a body" [ "$(http HEAD /metrics | wc -l)" -eq 1 ]

# A client that connects and never asks holds no one up.
$PY -c "import socket, time; s = socket.create_connection(('127.0.0.1', $PORT)); time.sleep(8)" &
idle=$!
pids+=($idle)
sleep 0.3
t0=$(date +%s%3N)
check "a scrape beside a silent client is answered" [ "$(http GET /metrics | head -1)" = 200 ]
check "... at once ($(($(date +%s%3N) - t0)) ms), and the socket too" bash -c "$CTL status >/dev/null"
kill "$idle" 2>/dev/null || true

# A real prometheus server scrapes it once a second.
cat >"$WORK/prometheus.yml" <<YML
global: {scrape_interval: 1s, scrape_timeout: 1s}
scrape_configs:
  - job_name: egress
    static_configs: [{targets: ["127.0.0.1:$PORT"]}]
YML
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
	--web.listen-address="127.0.0.1:$PROM_PORT" >"$WORK/prometheus.log" 2>&1 &
pids+=($!)
query() { $PY -c "
import json, sys, urllib.parse, urllib.request
q = urllib.parse.quote(sys.argv[1])
r = json.load(urllib.request.urlopen('http://127.0.0.1:$PROM_PORT/api/v1/query?query=' + q, timeout=3))
print(json.dumps(r['data']['result']))" "$1"; }
scraped() { query 'up{job="egress"}' | jq -e '.[0].value[1] == "1"'; }
check "prometheus scrapes the endpoint (up == 1)" wait_for 30 scraped
check "... without complaint about the exposition" bash -c \
	"$PY -c \"import json, urllib.request; t = json.load(urllib.request.urlopen('http://127.0.0.1:$PROM_PORT/api/v1/targets'))['data']['activeTargets'][0]; print(t); exit(t['lastError'] != '')\""
check "... and holds the path RTT and the drop counters" bash -c "$(declare -f query);
	query 'egress_path_rtt_avg_seconds' | jq -e '.[0].metric.egress == \"direct-wan0\" and (.[0].value[1] | tonumber) > 0' &&
	query 'egress_drops_total{reason=\"policy_drop\"}' | jq -e '.[0].value[1] == \"3\"'"
harness_finish
