/* nat.sessions: source NAT state as the shared segment holds it (lib/nat_table.h), read
 * without the dataplane's help: live counts, pool addresses with their blocks, and a
 * bounded listing of sessions filtered by address or egress. */
#ifndef CP_NAT_METHODS_H
#define CP_NAT_METHODS_H

#include <jansson.h>

#include "rpc.h"

enum {
	CP_NAT_LIST_DEFAULT = 100,
	CP_NAT_LIST_MAX = 10000,
};

int cp_m_nat_sessions(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err);

#endif
