#!/usr/bin/env bash
# The systemd units, sysusers.d and tmpfiles.d entries (config/systemd). This machine has
# no systemd running, so: systemd-analyze verifies the units and scores their exposure
# offline; systemd-sysusers and systemd-tmpfiles apply our entries to a scratch root; and
# both daemons run the way the units start them, as an unprivileged user of their own
# with only the capabilities the dataplane unit grants (setpriv, read from the unit
# file), and must still forward, serve the socket to their group only, and answer
# dpdk-telemetry.py. Not covered: the system call filters (seccomp needs systemd).
set -euo pipefail
WORK=$(mktemp -d /tmp/egress-units.XXXXXX)
. "${EGRESS_SOURCE:?}/tests/integration/harness.sh"
for t in systemd-analyze systemd-sysusers systemd-tmpfiles setpriv useradd; do
	command -v $t >/dev/null || { echo "SKIP: $t needed"; exit 77; }
done
TOPO=egu$$
USR=egu$$		# the appliance's user for this run, removed at the end
. "$SRC/tools/topology.sh"
topology_down() {
	topo_down
	userdel "$USR" 2>/dev/null || echo "service_units: could not remove user $USR" >&2
	groupdel "$USR" 2>/dev/null || true
}

# 1. The units as installed, with ExecStart pointing into this build.
mkdir "$WORK/units"
for d in dataplane control; do
	sed "s|^ExecStart=[^ ]*/egress-$d |ExecStart=$BUILD/$d/egress-$d |" "$BUILD/config/egress-$d@.service" \
		>"$WORK/units/egress-$d@.service"
	ln -s "egress-$d@.service" "$WORK/units/egress-$d@pop1.service"
done
unit() { echo "$WORK/units/egress-$1@pop1.service"; }
check "systemd-analyze verifies both units without a complaint" \
	bash -c "cd '$WORK/units' && systemd-analyze verify --man=no ./egress-dataplane@pop1.service ./egress-control@pop1.service \
		>'$WORK/verify.txt' 2>&1 && ! grep -q . '$WORK/verify.txt'"
exposure() { systemd-analyze security --offline=yes "$(unit "$1")" 2>/dev/null | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p'; }
dp_score=$(exposure dataplane) ctl_score=$(exposure control)
check "the dataplane unit's exposure is low ($dp_score of 10, at most 3.0)" awk -v s="$dp_score" 'BEGIN { exit !(s != "" && s <= 3.0) }'
check "the control unit's exposure is lower ($ctl_score of 10, at most 2.0)" awk -v s="$ctl_score" 'BEGIN { exit !(s != "" && s <= 2.0) }'
check "control starts after its dataplane, without being bound to it" \
	bash -c "grep -qx 'After=network.target egress-dataplane@%i.service' '$(unit control)' && ! grep -q '^BindsTo\|^Requires' '$(unit control)'"
check "both restart on failure, as the egress user, with no new privileges" \
	bash -c "for u in dataplane control; do f=$WORK/units/egress-\$u@.service; grep -qx Restart=on-failure \$f &&
		grep -qx User=egress \$f && grep -qx NoNewPrivileges=yes \$f && grep -qx ProtectSystem=strict \$f || exit 1; done"
check "control gets no capability at all" grep -qx 'CapabilityBoundingSet=' "$(unit control)"

# 2. sysusers.d and tmpfiles.d, applied to a scratch root.
root=$WORK/root
mkdir -p "$root/etc" "$root/run" "$root/var/lib"
systemd-sysusers --root="$root" "$SRC/config/systemd/egress.sysusers" >"$WORK/sysusers.log" 2>&1 || true
check "sysusers creates the egress group and a system user in it, without a login shell" \
	bash -c "grep -q '^egress:x:[0-9]*:' '$root/etc/group' &&
		awk -F: '\$1==\"egress\" && \$7==\"/usr/sbin/nologin\" && \$3 < 1000 {ok=1} END {exit !ok}' '$root/etc/passwd'"
systemd-tmpfiles --root="$root" --create "$SRC/config/systemd/egress.tmpfiles" >"$WORK/tmpfiles.log" 2>&1 || true
check "tmpfiles makes /run/egress 0750 and /var/lib/egress 0700, owned by egress" \
	bash -c "[ \"\$(stat -c '%a %U' '$root/run/egress')\" = '750 egress' ] || [ \"\$(stat -c '%a %u' '$root/run/egress')\" = \"750 \$(awk -F: '\$1==\"egress\" {print \$3}' '$root/etc/passwd')\" ] &&
		[ \"\$(stat -c '%a' '$root/var/lib/egress')\" = 700 ]"

# 3. The daemons as the units run them: our own user, the dataplane's capabilities only.
useradd --system --no-create-home --shell /usr/sbin/nologin --user-group "$USR"
caps=$(sed -n 's/^AmbientCapabilities=//p' "$(unit dataplane)" | tr 'A-Z' 'a-z' | sed 's/cap_//g; s/ /,/g')
check "the dataplane unit grants capabilities ($caps)" [ -n "$caps" ]
run=$WORK/run
install -d -m 0750 -o "$USR" -g "$USR" "$run"
chmod 0711 "$WORK"	# the user must reach $run, as /run/egress
topo_up
topo_config "$WORK/egress.json" "$run/pop.sock" "$run/state.json" "$TOPO"
chmod 0644 "$WORK/egress.json"
as_user() { setpriv --reuid "$USR" --regid "$USR" --init-groups --no-new-privs "$@"; }
ip netns exec "$NS_DP" setpriv --reuid "$USR" --regid "$USR" --init-groups \
	--inh-caps "-all,+${caps//,/,+}" --ambient-caps "-all,+${caps//,/,+}" --bounding-set "-all,+${caps//,/,+}" \
	env XDG_RUNTIME_DIR="$run" "$BUILD/dataplane/egress-dataplane" -c "$WORK/egress.json" >"$WORK/dataplane.log" 2>&1 &
pids+=($!)
# (setpriv itself in the background, not a function: $! must be the daemon's PID)
setpriv --reuid "$USR" --regid "$USR" --init-groups --no-new-privs --inh-caps -all --bounding-set -all \
	"$BUILD/control/egress-control" -c "$WORK/egress.json" >"$WORK/control.log" 2>&1 &
pids+=($!)
ip netns exec "$NS_UP0" $TRAFFIC serve --addr "$SERVER4" --udp 5000 --log "$WORK/up0.log" --seconds 60 &
pids+=($!)
CTL="$BUILD/tools/egressctl -s $run/pop.sock"
check "an unprivileged control attaches to an unprivileged dataplane" \
	wait_for 30 bash -c "$CTL --json status | jq -e '.dataplane.attached and .generation >= 1'"
check "the site's datagrams cross it" \
	ip netns exec "$NS_SITE" $TRAFFIC udp --dst "$SERVER4" --port 5000 --count 5 --timeout 10
# A capability mask from /proc as names (the ones the unit may grant), sorted, comma-joined.
cap_names() { $PY -c '
import sys
names = {12: "net_admin", 13: "net_raw", 14: "ipc_lock", 17: "sys_rawio"}
m = int(sys.argv[1], 16)
print(",".join(sorted(names.get(b, str(b)) for b in range(64) if m >> b & 1)))' "$1"; }
dp_status() { grep "^$1:" "/proc/$(pgrep -u "$USR" -f egress-dataplane | head -1)/status" | awk '{print $2}'; }
want=$(tr ',' '\n' <<<"$caps" | sort | paste -sd,)
check "the dataplane holds the unit's capabilities and no other ($(cap_names "$(dp_status CapEff)"))" \
	bash -c "[ '$(cap_names "$(dp_status CapEff)")' = '$want' ] && [ '$(cap_names "$(dp_status CapBnd)")' = '$want' ]"
check "the shared memory segment is the user's, mode 0600" \
	[ "$(stat -c '%U %a' "/dev/shm/egress-$TOPO")" = "$USR 600" ]
check "the socket is mode 0660, group $USR" [ "$(stat -c '%a %G' "$run/pop.sock")" = "660 $USR" ]
check "a member of the group runs egressctl" as_user --inh-caps -all $CTL status
check "anyone else is refused, with a hint about the group" \
	output_has 'mode 0660: run as its owner or a member of its group' \
	setpriv --reuid nobody --regid nogroup --clear-groups --no-new-privs $CTL status
check "dpdk-telemetry.py, run as the user with the unit's XDG_RUNTIME_DIR, reaches /egress/info" \
	bash -c "echo /egress/info | setpriv --reuid $USR --regid $USR --init-groups env XDG_RUNTIME_DIR=$run \
		/usr/bin/python3 /usr/bin/dpdk-telemetry.py -f egress-$TOPO 2>&1 | grep -q '\"instance\": \"$TOPO\"'"
harness_finish
