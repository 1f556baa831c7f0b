#!/usr/bin/env bash
# Integration: keys stay secret. With both daemons on net_null devices, an ESP SA from the
# config and one added through the socket are installed; their key bytes are in the shared
# segment while they live (so the scan below can see them at all), and once the SAs are
# removed and a grace period passed, a scan of the whole segment finds none of them. Keys
# are never in the daemons' logs nor in any reply; the segment is 0600 and the socket 0660;
# the state file (which must hold live keys) is 0600 and keeps no removed key.
set -euo pipefail
WORK=$(mktemp -d /tmp/egress-secrets.XXXXXX)
. "${EGRESS_SOURCE:?}/tests/integration/harness.sh"
INST=egsec$$
SOCK=$WORK/ctl.sock
CTL="$BUILD/tools/egressctl -s $SOCK"
SHM=/dev/shm/egress-$INST
# Distinct, recognisable keys (hex: 16 key bytes, then 4 bytes of salt).
KEY_CFG=8a41c3e05f7b9d2611e4a7c0b3d95f6e2c7a1b9d
KEY_SOCK=d03e9b7712c4a86f5e21b0c9d47a3e8f9b61c2d4
KEY_KEEP=5b7e1c9a3d0f8e2b6c4a9d7e1f3b5c8a7d2e4f60

cat >"$WORK/egress.json" <<JSON
{
  "instance": "$INST",
  "dataplane": {
    "eal": ["--no-huge", "-m", "256", "--no-pci", "--lcores", "(0-1)@(0-$(($(nproc) - 1)))"],
    "workers": 1, "idle_backoff": true, "table_mb": 4,
    "nat": {"sessions": 1024, "hosts": 16},
    "ports": [
      {"name": "lan0", "role": "site", "device": "net_null0", "ipv4": "10.10.0.1/24"},
      {"name": "wan0", "role": "uplink", "device": "net_null1", "ipv4": "192.0.2.1/24", "gateway": "192.0.2.254"}
    ]
  },
  "control": {"socket": "$SOCK", "state_file": "$WORK/state.json"},
  "ipsec": {"sas": [
    {"spi": 4096, "direction": "out", "local": "192.0.2.1", "remote": "198.51.100.7", "aead": "aes-gcm-128", "key": "$KEY_CFG"},
    {"spi": 4097, "direction": "in", "local": "192.0.2.1", "remote": "198.51.100.7", "aead": "aes-gcm-128", "key": "$KEY_KEEP"}
  ]},
  "egresses": [{"name": "esp-nyc", "type": "ipsec", "sa_out": 4096, "sa_in": 4097}],
  "policies": [{"name": "default", "priority": 100, "egresses": ["esp-nyc"]}]
}
JSON

"$BUILD/dataplane/egress-dataplane" -c "$WORK/egress.json" >"$WORK/dataplane.log" 2>&1 &
pids+=($!)
"$BUILD/control/egress-control" -c "$WORK/egress.json" >"$WORK/control.log" 2>&1 &
pids+=($!)

attached() { $CTL --json status | jq -e '.dataplane.attached and .generation >= 1'; }
check "control attaches to the dataplane and publishes" wait_for 30 attached

# How many bytes of the key part (not the salt) of each hex key appear in the segment.
in_segment() { # hex-key -> exit 0 when its 16 key bytes are somewhere in the segment
	/usr/bin/python3 - "$SHM" "$1" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
key = bytes.fromhex(sys.argv[2])[:16]
sys.exit(0 if key in data else 1)
PY
}

check "the segment is mode 0600" [ "$(stat -c %a "$SHM")" = 600 ]
check "the socket is mode 0660" [ "$(stat -c %a "$SOCK")" = 660 ]
check "the config SA's key is in the segment while the SA lives (the scan can see keys)" \
	wait_for 10 in_segment "$KEY_CFG"

sa='{"spi": 5000, "direction": "out", "local": "192.0.2.1", "remote": "198.51.100.8",
     "aead": "aes-gcm-128", "key": "'$KEY_SOCK'"}'
check "an SA added through the socket is accepted" bash -c "$CTL --json call ipsec.sa.add '$sa' >'$WORK/add.json'"
check "... and its key is in the segment" wait_for 10 in_segment "$KEY_SOCK"
check "the state file holding live keys is mode 0600" [ "$(stat -c %a "$WORK/state.json")" = 600 ]

$CTL --json call ipsec.sa.list >"$WORK/list.json"
$CTL --json call ipsec.sa.remove '{"spi": 5000, "direction": "out"}' >"$WORK/remove1.json"
# The config's outbound SA is still named by esp-nyc: the egress goes first.
$CTL --json call policy.set '{"policies": []}' >/dev/null
$CTL --json call egress.remove '{"name": "esp-nyc"}' >/dev/null
$CTL --json call ipsec.sa.remove '{"spi": 4096, "direction": "out"}' >"$WORK/remove2.json"
check "both SAs are removed" \
	bash -c "$CTL --json call ipsec.sa.list | jq -e '[.sas[] | select(.spi == 5000 or .spi == 4096)] | length == 0' >/dev/null"

gone() { ! in_segment "$KEY_CFG" && ! in_segment "$KEY_SOCK"; }
check "after the grace period no byte run of either removed key is left in the segment" wait_for 10 gone
check "... while the SA that stays keeps its key there" in_segment "$KEY_KEEP"
check "the state file keeps no removed key" \
	bash -c "! grep -qi -e '$KEY_CFG' -e '$KEY_SOCK' '$WORK/state.json'"
check "no key in any reply (add, list, remove)" \
	bash -c "! cat '$WORK/add.json' '$WORK/list.json' '$WORK/remove1.json' '$WORK/remove2.json' | grep -qi -e '$KEY_CFG' -e '$KEY_SOCK' -e '$KEY_KEEP'"
# A bad key is refused without being quoted back.
bad='{"spi": 5001, "direction": "out", "local": "192.0.2.1", "remote": "198.51.100.8",
      "aead": "aes-gcm-128", "key": "'${KEY_SOCK}ff'"}'
reply=$($CTL --json call ipsec.sa.add "$bad" 2>&1 || true)
check "a malformed key is refused, naming the field but not the key" \
	bash -c "grep -q 'key' <<<'$reply' && ! grep -qi '$KEY_SOCK' <<<'$reply'"
check "no key in either daemon's log" \
	bash -c "! grep -qi -e '$KEY_CFG' -e '$KEY_SOCK' -e '$KEY_KEEP' '$WORK/control.log' '$WORK/dataplane.log'"

if [ $fails -ne 0 ]; then
	echo "--- control log"; tail -20 "$WORK/control.log"
	echo "--- dataplane log"; tail -20 "$WORK/dataplane.log"
fi
harness_finish
