#!/usr/bin/env bash
# The README's test command: installs what is missing (Debian 12), builds with warnings as
# errors, and runs every unit and integration test twice: in the normal build, then in one
# instrumented with AddressSanitizer and UndefinedBehaviorSanitizer (SANITIZE=0 skips that
# second run). Integration tests need root (network namespaces); without it they report
# SKIP.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-test}
SAN_BUILD=${SAN_BUILD:-build-san}

bash tools/install-deps.sh

setup() { # build-dir meson-options...
	local dir=$1
	shift
	if [ -d "$dir" ]; then
		meson setup --reconfigure "$dir" -Dwerror=true -Dtests=true "$@" >/dev/null
	else
		meson setup "$dir" -Dwerror=true -Dtests=true "$@" >/dev/null
	fi
	ninja -C "$dir"
}

# A line per run, counted from meson's own logs, and the last line for CI over all runs.
summary() { # label build-dir...
	/usr/bin/python3 - "$@" <<'PY'
import json, sys
passed = failed = skipped = 0
for d in sys.argv[2:]:
    for line in open(d + "/meson-logs/testlog.json"):
        r = json.loads(line)["result"]
        if r == "OK": passed += 1
        elif r == "SKIP": skipped += 1
        else: failed += 1
print("tests%s: %d passed, %d failed, %d skipped" % (sys.argv[1], passed, failed, skipped))
PY
}

rc=0
setup "$BUILD"
meson test -C "$BUILD" --print-errorlogs --num-processes 1 "$@" || rc=$?
summary " (normal build)" "$BUILD"
runs=("$BUILD")

if [ "${SANITIZE:-1}" != 0 ]; then
	# b_lundef=false: the sanitizer runtimes resolve some symbols only at run time.
	setup "$SAN_BUILD" -Db_sanitize=address,undefined -Db_lundef=false
	# UBSan stops at its first finding, so that it fails the test rather than scroll by;
	# ASan's quarantine is kept small, so memory bounds in the tests stay meaningful.
	san_rc=0
	EGRESS_SANITIZED=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		ASAN_OPTIONS=quarantine_size_mb=32:detect_leaks=1 \
		meson test -C "$SAN_BUILD" --print-errorlogs --num-processes 1 "$@" || san_rc=$?
	summary " (ASan+UBSan)" "$SAN_BUILD"
	runs+=("$SAN_BUILD")
	[ $san_rc -eq 0 ] || rc=$san_rc
fi
summary "" "${runs[@]}"
exit $rc
