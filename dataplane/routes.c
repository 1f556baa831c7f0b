#include "routes.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_byteorder.h>
#include <rte_lpm.h>
#include <rte_lpm6.h>
#include <rte_malloc.h>

#define LOG(fmt, ...) fprintf(stderr, "egress-dataplane: " fmt "\n", ##__VA_ARGS__)

enum { MAX_ROUTES = EG_MAX_ROUTES + EG_MAX_PORTS * 2 };

struct dp_routes {
	struct rte_lpm *lpm4;
	struct rte_lpm6 *lpm6;
	unsigned n;
	struct dp_route r[MAX_ROUTES];
};

static int add(struct dp_routes *rt, const struct eg_prefix *pfx, uint16_t port,
	       const struct eg_addr *via)
{
	struct dp_route *r;
	int rc;

	if (rt->n == MAX_ROUTES)
		return -ENOSPC;
	r = &rt->r[rt->n];
	r->port = port;
	r->via_family = via ? via->family : EG_AF_ANY;
	if (via)
		memcpy(r->via, via->addr, 16);
	if (pfx->family == EG_AF_INET) {
		uint32_t ip;

		memcpy(&ip, pfx->addr, 4);
		rc = rte_lpm_add(rt->lpm4, rte_be_to_cpu_32(ip), pfx->len, rt->n);
	} else {
		rc = rte_lpm6_add(rt->lpm6, pfx->addr, pfx->len, rt->n);
	}
	if (rc == 0)
		rt->n++;
	return rc;
}

int dp_routes_init(struct dp_ctx *ctx)
{
	struct rte_lpm_config c4 = {.max_rules = MAX_ROUTES, .number_tbl8s = 256};
	struct rte_lpm6_config c6 = {.max_rules = MAX_ROUTES, .number_tbl8s = 1 << 12};
	const struct eg_dataplane_cfg *dp = &ctx->cfg.dataplane;
	struct dp_routes *rt;
	int rc;

	rt = rte_zmalloc("routes", sizeof(*rt), 64);
	if (!rt)
		return -ENOMEM;
	ctx->routes = rt;
	rt->lpm4 = rte_lpm_create("routes4", SOCKET_ID_ANY, &c4);
	rt->lpm6 = rte_lpm6_create("routes6", SOCKET_ID_ANY, &c6);
	if (!rt->lpm4 || !rt->lpm6)
		return -ENOMEM;
	for (unsigned i = 0; i < ctx->n_ports; i++) {
		const struct dp_port *p = &ctx->ports[i];

		if (p->cfg->role != EG_ROLE_SITE)
			continue;
		if ((p->has_ipv4 && (rc = add(rt, &p->net4, (uint16_t)i, NULL)) != 0) ||
		    (p->has_ipv6 && (rc = add(rt, &p->net6, (uint16_t)i, NULL)) != 0)) {
			LOG("port %s: cannot add its connected route: %s", p->cfg->name, strerror(-rc));
			return rc;
		}
	}
	for (unsigned i = 0; i < dp->n_routes; i++) {
		const struct eg_route_cfg *r = &dp->routes[i];
		int port = eg_config_port_index(dp, r->port);

		rc = port < 0 ? -EINVAL : add(rt, &r->prefix, (uint16_t)port, &r->via);
		if (rc) {
			LOG("dataplane.routes[%u]: cannot add: %s", i, strerror(-rc));
			return rc;
		}
	}
	return 0;
}

void dp_routes_free(struct dp_ctx *ctx)
{
	if (!ctx->routes)
		return;
	rte_lpm_free(ctx->routes->lpm4);
	rte_lpm6_free(ctx->routes->lpm6);
	rte_free(ctx->routes);
	ctx->routes = NULL;
}

const struct dp_route *dp_routes_lookup(const struct dp_routes *rt, uint8_t family, const uint8_t *dst)
{
	uint32_t hop;

	if (family == EG_AF_INET) {
		uint32_t ip;

		memcpy(&ip, dst, 4);
		if (rte_lpm_lookup(rt->lpm4, rte_be_to_cpu_32(ip), &hop) != 0)
			return NULL;
	} else if (rte_lpm6_lookup(rt->lpm6, dst, &hop) != 0) {
		return NULL;
	}
	return &rt->r[hop];
}
