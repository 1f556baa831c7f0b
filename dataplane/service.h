/* The service loop on the main lcore: everything that is not per-packet forwarding.
 * ARP and neighbour discovery (answering for our addresses, resolving next hops, aging),
 * ICMP echo for our addresses, link state, and the heartbeat the control process watches.
 * Frames it sends go out through worker 0's inject ring, so that no tx queue is shared. */
#ifndef DP_SERVICE_H
#define DP_SERVICE_H

#include "context.h"

/* Installs static neighbours and starts resolving the uplinks' gateways. */
void dp_service_init(struct dp_ctx *ctx);
/* A finished frame out of port, through worker 0's inject ring. Consumes m; false when
 * the ring was full. */
bool dp_service_send(struct dp_ctx *ctx, struct rte_mbuf *m, uint16_t port);
/* Starts (or keeps) resolving a next hop. */
void dp_service_resolve(struct dp_ctx *ctx, uint16_t port, uint8_t family, const uint8_t *ip);
/* Runs until ctx->stop; sleeps when there is nothing to do. */
void dp_service_run(struct dp_ctx *ctx);

#endif
