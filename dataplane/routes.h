/* Routes toward the site side, for return traffic arriving on uplinks: the site ports'
 * connected subnets plus the config's static routes, in DPDK LPM tables. */
#ifndef DP_ROUTES_H
#define DP_ROUTES_H

#include <stdint.h>

#include "context.h"

struct dp_route {
	uint16_t port;		/* output port index */
	uint8_t via_family;	/* EG_AF_ANY: on-link, the destination itself is the next hop */
	uint8_t via[16];
};

/* 0 or -errno (message logged). */
int dp_routes_init(struct dp_ctx *ctx);
void dp_routes_free(struct dp_ctx *ctx);
/* The route for dst, or NULL. Lock-free, read-only after init. */
const struct dp_route *dp_routes_lookup(const struct dp_routes *r, uint8_t family, const uint8_t *dst);

#endif
