#!/usr/bin/env bash
# The control socket's contract without a dataplane: bad configs refused with their JSON
# path, malformed params answered with -32602 naming the field and changing nothing,
# oversized lines refused with bounded memory, egressctl's exit codes.
exec /usr/bin/python3 "${EGRESS_SOURCE:?}/tests/integration/control_api.py"
