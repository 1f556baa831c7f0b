# Shared by the integration scripts: numbered checks, bounded waits, and cleanup of
# exactly what a script started. Source it after setting WORK (a fresh temp dir); add
# PIDs to pids+=(...) and define topology_down for the namespaces the script made.

[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root for network namespaces"; exit 77; }
BUILD=${EGRESS_BUILD:?} SRC=${EGRESS_SOURCE:?}
PY=/usr/bin/python3
TRAFFIC="$PY $SRC/tools/traffic.py"
# The "bash -c" strings of checks inherit -euo pipefail, so that "egressctl ... | jq -e"
# fails when egressctl does (jq -e with no input at all exits 0).
export SHELLOPTS
pids=()
fails=0
passes=0

topology_down() { :; }

harness_cleanup() {
	local rc=$?
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	topology_down
	# Sanitizer reports in the daemons' logs (leaks show up only as they exit, after the
	# checks) fail the test.
	local reports
	reports=$(grep -l -E "ERROR: [A-Za-z]+Sanitizer|runtime error:" "$WORK"/*.log 2>/dev/null || true)
	if [ -n "$reports" ]; then
		for f in $reports; do echo "--- sanitizer report in $f"; grep -A25 -E "ERROR: [A-Za-z]+Sanitizer|runtime error:" "$f" | head -60; done
		rc=1
	fi
	if [ "${KEEP:-0}" = 1 ]; then echo "logs kept in $WORK"; else rm -rf "$WORK"; fi
	exit $rc
}
trap harness_cleanup EXIT

check() { # description, command...
	local what=$1
	shift
	if "$@"; then
		passes=$((passes + 1))
		echo "ok   - $what"
	else
		fails=$((fails + 1))
		echo "FAIL - $what"
	fi
}

# A veth pair between two namespaces, up, with offloads off (AF_PACKET on veth sees
# unsegmented, checksummed frames only then).
veth_link() { # ns-a if-a ns-b if-b
	ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"
	for x in "$1 $2" "$3 $4"; do
		set -- $x
		ip netns exec "$1" ethtool -K "$2" tx off rx off sg off tso off gso off gro off >/dev/null 2>&1 || true
		ip -n "$1" link set "$2" up
	done
}

# Whether a command's output (stdout and stderr) matches an extended regex, whatever the
# command's exit status: for errors we expect, such as a refused request or ping's
# fragmentation-needed.
output_has() { # regex command...
	local out
	out=$("${@:2}" 2>&1) || true
	grep -Eq -- "$1" <<<"$out"
}

# Runs a command until it succeeds, for at most $1 seconds.
wait_for() {
	local t=$1
	shift
	local end=$((SECONDS + t))
	while [ $SECONDS -lt $end ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	return 1
}

harness_finish() {
	echo "$passes passed, $fails failed"
	[ $fails -eq 0 ]
}
