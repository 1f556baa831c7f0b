#!/usr/bin/env bash
# The README's test command: installs what is missing (Debian 12), builds with warnings as
# errors, and runs every unit and integration test. Integration tests need root (network
# namespaces); without it they report SKIP.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-test}

bash tools/install-deps.sh
if [ -d "$BUILD" ]; then
	meson setup --reconfigure "$BUILD" -Dwerror=true -Dtests=true >/dev/null
else
	meson setup "$BUILD" -Dwerror=true -Dtests=true >/dev/null
fi
ninja -C "$BUILD"

rc=0
meson test -C "$BUILD" --print-errorlogs --num-processes 1 "$@" || rc=$?

# One closing line for CI, counted from meson's own log.
/usr/bin/python3 - "$BUILD/meson-logs/testlog.json" <<'PY'
import json, sys
passed = failed = skipped = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r == "OK": passed += 1
    elif r == "SKIP": skipped += 1
    else: failed += 1
print("tests: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
PY
exit $rc
