#!/usr/bin/env bash
# Integration: the state file survives a crash at any point of a write. Both daemons run
# on net_null devices; egress-control is SIGKILLed again and again while policy.set
# requests that alternate between two policy sets stream in, each time at another moment
# of the write (temp file, fsync, rename). After every kill the state file is whole JSON
# holding one of the two sets (or the first write has not happened yet), and a restarted
# control loads it (a leftover temp file from the killed write does not stop it).
set -euo pipefail
WORK=$(mktemp -d /tmp/egress-persist.XXXXXX)
. "${EGRESS_SOURCE:?}/tests/integration/harness.sh"
INST=egper$$
SOCK=$WORK/ctl.sock
CTL="$BUILD/tools/egressctl -s $SOCK"
ROUNDS=${ROUNDS:-25}

cat >"$WORK/egress.json" <<JSON
{
  "instance": "$INST",
  "dataplane": {
    "eal": ["--no-huge", "-m", "256", "--no-pci", "--lcores", "(0-1)@(0-$(($(nproc) - 1)))"],
    "workers": 1, "idle_backoff": true, "table_mb": 4, "nat": {"sessions": 1024, "hosts": 16},
    "ports": [
      {"name": "lan0", "role": "site", "device": "net_null0", "ipv4": "10.10.0.1/24"},
      {"name": "wan0", "role": "uplink", "device": "net_null1", "ipv4": "192.0.2.1/24", "gateway": "192.0.2.254"}
    ]
  },
  "control": {"socket": "$SOCK", "state_file": "$WORK/state.json"},
  "egresses": [{"name": "direct-wan0", "type": "direct", "port": "wan0"}],
  "policies": [{"name": "default", "priority": 100, "egresses": ["direct-wan0"]}]
}
JSON
# Two policy sets, large enough that a write takes a while: 300 policies each, told apart
# by their first policy's name.
/usr/bin/python3 - "$WORK" <<'PY'
import json, sys
for tag in ("a", "b"):
    pols = [{"name": "%s%03d" % (tag, i), "priority": i + 1,
             "match": {"dst": ["10.%d.%d.0/24" % (i // 200, i % 200)], "proto": "udp", "dport": str(1000 + i)},
             "egresses": ["direct-wan0"]} for i in range(300)]
    json.dump({"policies": pols}, open("%s/set_%s.json" % (sys.argv[1], tag), "w"))
PY

"$BUILD/dataplane/egress-dataplane" -c "$WORK/egress.json" >"$WORK/dataplane.log" 2>&1 &
pids+=($!)

start_control() {
	"$BUILD/control/egress-control" -c "$WORK/egress.json" >>"$WORK/control.log" 2>&1 &
	ctl=$!
	pids+=($ctl)
}
attached() { $CTL --json status | jq -e '.dataplane.attached and .generation >= 1' >/dev/null; }
# The state file is absent (never written), or whole JSON whose policies are set a or b.
state_whole() {
	[ ! -e "$WORK/state.json" ] && return 0
	jq -e '(.policies | length) == 300 and ((.policies[0].name == "a000") or (.policies[0].name == "b000"))' \
		"$WORK/state.json" >/dev/null
}

start_control
check "control attaches to the dataplane" wait_for 30 attached
bad=0 restarted=0 written=0 mid=0
for round in $(seq 1 "$ROUNDS"); do
	# A stream of writes, then a kill at a moment that moves from round to round.
	( for i in $(seq 1 20); do
		$CTL --json call policy.set "@$WORK/set_$([ $((i % 2)) -eq 0 ] && echo a || echo b).json" >/dev/null 2>&1 || true
	  done ) &
	writer=$!
	sleep "0.$(printf '%02d' $(( (round * 37) % 90 + 5 )))"
	kill -KILL "$ctl" 2>/dev/null || true
	wait "$ctl" 2>/dev/null || true
	kill "$writer" 2>/dev/null || true
	wait "$writer" 2>/dev/null || true
	state_whole || { bad=$((bad + 1)); cp "$WORK/state.json" "$WORK/state.bad.$round" 2>/dev/null || true; }
	[ -e "$WORK/state.json" ] && written=$((written + 1))
	[ -e "$WORK/state.json.tmp" ] && mid=$((mid + 1))	# killed between temp file and rename
	start_control
	wait_for 30 attached && restarted=$((restarted + 1))
done
check "after $ROUNDS kills during writes the state file was whole every time ($mid caught a write between temp file and rename)" \
	[ "$bad" -eq 0 ] && [ "$written" -gt 0 ]
check "a restarted control loaded it and re-attached every time" [ "$restarted" -eq "$ROUNDS" ]
check "... and serves the policies the file holds" \
	bash -c "[ \"\$($CTL --json policy list | jq -r '.policies[0].name')\" = \"\$(jq -r '.policies[0].name' '$WORK/state.json')\" ]"

if [ $fails -ne 0 ]; then
	echo "--- control log"; tail -20 "$WORK/control.log"
fi
harness_finish
