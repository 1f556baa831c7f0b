#!/usr/bin/env bash
# Integration: egress-pathsim, the netem stand-in. It bridges two veth ends in a "wire"
# namespace; ping between the hosts on either side shows its delays, loss and blackholes,
# per direction, changed while it runs; its control socket refuses bad requests whole.
# Timing is asserted only from below: a loaded machine may add delay, never remove it.
#
#   [ns left: l0 10.99.0.1] --veth-- [wa  ns wire: egress-pathsim  wb] --veth-- [ns right: r0 10.99.0.2]
#                                      a2b: left -> right, b2a: right -> left
set -euo pipefail
WORK=$(mktemp -d /tmp/egress-pathsim.XXXXXX)
. "${EGRESS_SOURCE:?}/tests/integration/harness.sh"
P=egps$$
topology_down() {
	for ns in left wire right; do ip netns del "$P-$ns" 2>/dev/null || true; done
}
SIM=$BUILD/tools/egress-pathsim
SOCK=$WORK/pathsim.sock
QUEUE_MAX=16

ctl() { "$SIM" ctl "$SOCK" "$@"; }
# A request that must succeed; its reply goes to the log, not the test's output.
ctl_ok() { ctl "$@" >>"$WORK/ctl.log"; }
left() { ip netns exec "$P-left" "$@"; }
# One value from show, -1 when there is no answer (so a comparison fails, not the script).
shown() {
	local v
	v=$(ctl show 2>/dev/null | jq -r "$1" 2>/dev/null) || v=-1
	echo "${v:--1}"
}
show_has() { ctl show | jq -e "$1" >/dev/null; }
settings() { ctl show | jq -c '{a2b: .a2b.settings, b2a: .b2a.settings}'; }
# The smallest RTT of a few pings, in ms; empty when none was answered.
min_rtt() {
	{ left ping -c 3 -i 0.2 -W 2 10.99.0.2 2>/dev/null || true; } |
		sed -n 's|^rtt min/avg/max/mdev = \([0-9.]*\)/.*|\1|p'
}
at_least() { [ -n "$1" ] && awk -v v="$1" -v min="$2" 'BEGIN { exit !(v >= min) }'; }
pings_fail() { ! left ping -c 3 -i 0.2 -W 1 10.99.0.2 >/dev/null 2>&1; }
# A request refused with exit status 1 and an error reply matching the regex.
refused() { # regex request...
	local out rc=0
	out=$(ctl "${@:2}" 2>&1) || rc=$?
	echo "$out" >>"$WORK/ctl.log"
	[ $rc -eq 1 ] && grep -Eq -- "^\{\"error\": \".*$1" <<<"$out"
}
# CPU time (user + system) a process has used, in clock ticks; empty once it is gone.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || true; }
used_less_than() { [ -n "$1" ] && [ -n "$2" ] && [ $(($2 - $1)) -lt "$3" ]; } # ticks-before ticks-after limit

for ns in left wire right; do
	ip netns add "$P-$ns"
	ip -n "$P-$ns" link set lo up
	# No IPv6: router solicitations, MLD and DAD would cross the wire too and blur the
	# counters; and the wire's own kernel must stay silent.
	ip netns exec "$P-$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
veth_link "$P-left" l0 "$P-wire" wa
veth_link "$P-right" r0 "$P-wire" wb
ip -n "$P-left" addr add 10.99.0.1/24 dev l0
ip -n "$P-right" addr add 10.99.0.2/24 dev r0

ip netns exec "$P-wire" "$SIM" run --a wa --b wb --control "$SOCK" --seed 7 --queue-max $QUEUE_MAX \
	>"$WORK/pathsim.log" 2>&1 &
sim=$!
pids+=($sim)
check "egress-pathsim answers on its control socket" wait_for 10 ctl show
check "... a socket only its owner may use (mode 0600)" [ "$(stat -c %a "$SOCK")" = 600 ]
check "... and it reports the seed it was given" [ "$(shown .seed)" = 7 ]

check "ping crosses the wire with no impairment" wait_for 10 left ping -c 1 -W 1 10.99.0.2
check "... counted as forwarded both ways" \
	show_has '.a2b.counters.forwarded >= 1 and .b2a.counters.forwarded >= 1'

check "set a2b delay_ms=50 is accepted" ctl_ok set a2b delay_ms=50
rtt=$(min_rtt)
check "... and ping's RTT is at least 50 ms (min ${rtt:-none})" at_least "$rtt" 50
check "set both delay_ms=40 is accepted" ctl_ok set both delay_ms=40
rtt=$(min_rtt)
check "... and ping's RTT is at least 80 ms (min ${rtt:-none})" at_least "$rtt" 80
check "set both delay_ms=20 jitter_ms=10 is accepted" ctl_ok set both delay_ms=20 jitter_ms=10
rtt=$(min_rtt)
check "... and ping's RTT is at least 20 ms (min ${rtt:-none})" at_least "$rtt" 20

check "reset both is accepted" ctl_ok reset both
check "set both loss_pct=100 is accepted" ctl_ok set both loss_pct=100
lost=$(shown .a2b.counters.lost)
check "with 100% loss ping fails" pings_fail
check "... and a2b's lost counter grew by at least 3 (from $lost)" [ "$(shown .a2b.counters.lost)" -ge $((lost + 3)) ]

check "reset both is accepted" ctl_ok reset both
check "... and zeroes every setting" [ "$(settings)" = \
	'{"a2b":{"delay_ms":0,"jitter_ms":0,"loss_pct":0,"blackhole":false},"b2a":{"delay_ms":0,"jitter_ms":0,"loss_pct":0,"blackhole":false}}' ]
check "... and ping works again" wait_for 10 left ping -c 1 -W 1 10.99.0.2

check "set b2a blackhole=1 is accepted" ctl_ok set b2a blackhole=1
blackholed=$(shown .b2a.counters.blackholed) forwarded=$(shown .a2b.counters.forwarded)
check "with b2a blackholed ping fails" pings_fail
check "... b2a's blackholed counter grew by at least 3 (the replies)" \
	[ "$(shown .b2a.counters.blackholed)" -ge $((blackholed + 3)) ]
check "... while a2b still forwarded the requests" [ "$(shown .a2b.counters.forwarded)" -ge $((forwarded + 3)) ]
check "... and blackholed nothing" [ "$(shown .a2b.counters.blackholed)" -eq 0 ]
check "reset b2a is accepted" ctl_ok reset b2a
check "... and ping works again" wait_for 10 left ping -c 1 -W 1 10.99.0.2

check "set a2b delay_ms=5 jitter_ms=1 is accepted" ctl_ok set a2b delay_ms=5 jitter_ms=1
before=$(settings || true)
check "an unknown key is refused, naming it" refused 'bogus' set a2b bogus=1
check "an unknown direction is refused, naming it" refused 'sideways' set sideways delay_ms=1
check "loss_pct=150 is refused" refused 'loss_pct.*150' set both loss_pct=150
check "a good key beside a bad value is refused whole" refused 'loss_pct' set both delay_ms=30 loss_pct=150
check "a delay that is not a number is refused" refused 'delay_ms.*abc' set a2b delay_ms=abc
check "blackhole=2 is refused" refused 'blackhole' set b2a blackhole=2
check "set without a key=value is refused" refused 'key=value' set both
check "an unknown command is refused" refused 'frobnicate' frobnicate both
check "... and show proves nothing changed" [ "$(settings)" = "$before" ]
check "ctl to a socket nobody listens on exits 2" bash -c \
	"rc=0; $SIM ctl $WORK/missing.sock show 2>/dev/null || rc=\$?; [ \$rc -eq 2 ]"

# Frames beyond --queue-max are dropped and counted, never held.
check "set a2b delay_ms=500 jitter_ms=0 is accepted" ctl_ok set a2b delay_ms=500 jitter_ms=0
left ping -c 40 -i 0.01 -W 1 10.99.0.2 >/dev/null 2>&1 || true
check "40 pings in 0.4 s against a queue of $QUEUE_MAX overflow it, counted ($(shown .a2b.counters.queue_overflow))" \
	[ "$(shown .a2b.counters.queue_overflow)" -ge 1 ]

# While a frame is held the loop sleeps until its due time. This bounds CPU time, not
# timing: a busy loop would use a whole second of CPU here, a sleeping one about none.
check "set a2b delay_ms=5000 is accepted" ctl_ok set a2b delay_ms=5000
left ping -c 1 -W 1 10.99.0.2 >/dev/null 2>&1 || true
check "a ping's request is held" [ "$(shown .a2b.held)" -ge 1 ]
t0=$(cpu_ticks $sim)
sleep 1
t1=$(cpu_ticks $sim)
hz=$(getconf CLK_TCK)
check "... and holding it for 1 s costs under a fifth of a CPU second ($((${t1:-0} - ${t0:-0})) of $hz ticks)" \
	used_less_than "$t0" "$t1" $((hz / 5))
check "reset a2b is accepted" ctl_ok reset a2b
check "... and leaves the held frame its due time" show_has '.a2b.held >= 1'
# Every frame read is accounted for exactly once: sent, dropped for one reason, or held.
check "in = forwarded + lost + blackholed + queue_overflow + oversized + tx_errors + held, both ways" \
	show_has '[.a2b, .b2a] | all(.counters.in == .counters.forwarded + .counters.lost +
		.counters.blackholed + .counters.queue_overflow + .counters.oversized +
		.counters.tx_errors + .held)'

kill -TERM $sim 2>/dev/null || true
rc=0
wait $sim || rc=$?
pids=()
check "SIGTERM stops it cleanly (exit $rc)" [ $rc -eq 0 ]
check "... and removes its control socket" [ ! -e "$SOCK" ]

if [ $fails -ne 0 ]; then
	echo "--- egress-pathsim log"
	tail -20 "$WORK/pathsim.log"
	echo "--- control replies"
	tail -20 "$WORK/ctl.log"
fi
harness_finish
