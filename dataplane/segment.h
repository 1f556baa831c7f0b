/* The dataplane's side of the shared-memory segment: created fresh at start (new epoch),
 * filled with what the control process needs to know about ports and workers, removed at
 * a clean stop so that control sees the dataplane go. */
#ifndef DP_SEGMENT_H
#define DP_SEGMENT_H

#include "context.h"

int dp_segment_create(struct dp_ctx *ctx);
/* The NAT region's parameters from dataplane.nat. */
void dp_segment_nat_params(const struct eg_nat_cfg *c, struct eg_nat_params *p);
/* After the ports are up: names, roles, MACs, queues. */
void dp_segment_describe_ports(struct dp_ctx *ctx);
void dp_segment_destroy(struct dp_ctx *ctx);

#endif
