#!/usr/bin/env bash
# Runs a test that needs N CPUs (egress-bench --scaling or --churn: a second worker, or a
# publisher beside the worker), or reports SKIP (exit 77, meson's code) on a machine
# that lets this process use fewer: such a run would be refused, which is the machine's
# limit and not a failure of what the test checks.
set -euo pipefail
want=${1:?usage: needs_cpus.sh N COMMAND [ARGS...]}
shift
have=$(nproc)	# the CPUs this process may run on, as the bench counts them
if ((have < want)); then
	echo "SKIP: needs $want CPUs, this process may use $have"
	exit 77
fi
exec "$@"
