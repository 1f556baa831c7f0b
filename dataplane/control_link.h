/* The service lcore's side of the rings to egress-control (lib/msg_ring.h): what workers
 * punted for control goes into the punt ring, and what control wants sent comes out of the
 * inject ring as UDP datagrams built here. */
#ifndef DP_CONTROL_LINK_H
#define DP_CONTROL_LINK_H

#include <rte_mbuf.h>

#include "context.h"

/* A WireGuard handshake frame (DP_PUNT_WG_HANDSHAKE) or a worker's struct eg_msg
 * (DP_PUNT_MSG) into the punt ring. Consumes m. */
void dp_control_punt(struct dp_ctx *ctx, struct rte_mbuf *m);
/* Sends up to max datagrams control queued; returns how many messages it took. */
unsigned dp_control_inject(struct dp_ctx *ctx, unsigned max);

#endif
