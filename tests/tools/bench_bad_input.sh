#!/usr/bin/env bash
# egress-bench refuses what it cannot run as asked, before it starts anything (or, for a
# JSON file that fills up, fails at the end): each case must exit 2 with a message naming
# the option. A misspelt scenario used to be skipped, so
# that --check passed having checked nothing, and "--flows 1M" ran one flow.
set -uo pipefail
BENCH=${1:?usage: bench_bad_input.sh EGRESS_BENCH}
fails=0

refuse() {
	local want=$1 out rc
	shift
	out=$(timeout 60 "$BENCH" "$@" 2>&1 >/dev/null)
	rc=$?
	if [[ $rc -ne 2 || $out != *"$want"* ]]; then
		echo "FAIL: egress-bench $*: exit $rc, said: $out (wanted exit 2 and '$want')"
		fails=$((fails + 1))
	else
		echo "ok: egress-bench $* -> $out"
	fi
}

refuse "--scenarios: no scenario 'esp-gcm-128-encap'" --check --scenarios esp-gcm-128-encap
refuse "--scenarios: no scenario ''" --scenarios direct,
refuse "--sizes: no size '1500'" --sizes 64,1500
refuse "--flows: '1M'" --flows 1M
refuse "--flows: '2000000'" --flows 2000000
refuse "--packets: '1e6'" --packets 1e6
refuse "--packets: '-5'" --packets -5
refuse "--rules: 'abc'" --rules abc
refuse "--rules: '1000001'" --rules 1000001
refuse "--repeat: '0'" --repeat 0
refuse "--tunnels: '1025'" --tunnels 1025
refuse "--workers: '0'" --workers 0
refuse "--churn: '10x'" --churn 10x
refuse "one of --workers, --scaling and --churn" --scaling --churn 1000
refuse "unexpected argument 'direct'" direct
refuse "--crypto-perf compares one core's ceiling" --crypto-perf --workers 2
refuse "--crypto-perf compares one core's ceiling" --crypto-perf --no-ceiling
# A JSON file that cannot be written: refused before the run, or failed after it, not
# exit 0 with a file a plot would read as this run's.
refuse "--json: cannot write /nonexistent/out.json" --json /nonexistent/out.json --packets 512 --repeat 1 \
	--scenarios direct --sizes 64
refuse "--json: cannot write /dev/full" --json /dev/full --packets 512 --repeat 1 --scenarios direct --sizes 64
exit $((fails > 0))
