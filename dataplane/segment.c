#include "segment.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

void dp_segment_nat_params(const struct eg_nat_cfg *c, struct eg_nat_params *p)
{
	*p = (struct eg_nat_params){
		.sessions = c->sessions, .hosts = c->hosts, .ports_per_block = c->ports_per_block,
		.blocks_per_host = c->blocks_per_host,
		.timeout_s = {c->tcp_established_s, c->tcp_transitory_s, c->udp_s, c->icmp_s},
	};
}

int dp_segment_create(struct dp_ctx *ctx)
{
	struct eg_shm_geometry g = {
		.n_workers = ctx->n_workers,
		.n_ports = ctx->cfg.dataplane.n_ports,
		.slot_size = (size_t)ctx->cfg.dataplane.table_mb << 20,
		.imb_arch = ctx->imb_arch,
		/* Room for every peer the appliance may have, added live or not: untouched
		 * slots cost address space, not memory. */
		.n_wg_slots = ctx->cfg.wg.present ? EG_WG_MAX_SLOTS : 0,
	};

	/* Always there, so that a pool added live finds room; untouched records cost
	 * address space only. */
	dp_segment_nat_params(&ctx->cfg.dataplane.nat, &g.nat);
	char name[EG_SHM_NAME_LEN];
	int rc;

	eg_shm_name(ctx->cfg.instance, name);
	rc = eg_shm_create(name, ctx->cfg.instance, &g, &ctx->shm);
	if (rc)
		fprintf(stderr, "egress-dataplane: cannot create shared memory %s: %s\n", name, strerror(-rc));
	return rc;
}

void dp_segment_describe_ports(struct dp_ctx *ctx)
{
	for (unsigned i = 0; i < ctx->n_ports; i++) {
		const struct dp_port *p = &ctx->ports[i];
		struct eg_shm_port *sp = &ctx->shm.hdr->ports[i];

		snprintf(sp->name, sizeof(sp->name), "%s", p->cfg->name);
		sp->role = (uint8_t)p->cfg->role;
		memcpy(sp->mac, p->mac.addr_bytes, 6);
		sp->dpdk_port_id = p->port_id;
		sp->rx_queues = p->rx_queues;
	}
}

void dp_segment_destroy(struct dp_ctx *ctx)
{
	char name[EG_SHM_NAME_LEN];

	if (!ctx->shm.hdr)
		return;
	snprintf(name, sizeof(name), "%s", ctx->shm.name);
	eg_shm_detach(&ctx->shm);
	shm_unlink(name);
}
