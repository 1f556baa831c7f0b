/* DPDK telemetry commands under /egress/ (dpdk-telemetry.py shows them beside /ethdev/):
 * counters from the shared segment, egresses from the current table. */
#ifndef DP_TELEMETRY_H
#define DP_TELEMETRY_H

#include "context.h"

void dp_telemetry_register(const struct dp_ctx *ctx);

#endif
