#include "offline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>
#include <rte_udp.h>

#include "blob.h"
#include "flow_cache.h"
#include "nat.h"
#include "neigh.h"
#include "ports.h"
#include "reassembly.h"
#include "routes.h"
#include "runtime_dir.h"
#include "segment.h"
#include "service.h"
#include "shm.h"
#include "worker.h"

#define DIE(fmt, ...) do { fprintf(stderr, "dp offline: " fmt "\n", ##__VA_ARGS__); abort(); } while (0)

/* Room for every SA and peer of the config, and a few more for tests that add their own. */
enum { MIN_SA_SLOTS = 16, MIN_WG_SLOTS = 8 };

static struct dp_offline *current;	/* for the exit handler */

/* At a normal exit everything goes back, so LeakSanitizer reports only what the dataplane
 * lost. */
static void cleanup(void)
{
	struct dp_offline *f = current;

	for (unsigned i = 0; f->ctx.workers && i < f->ctx.n_workers; i++) {
		struct dp_worker *w = &f->ctx.workers[i];

		eg_aead_ctx_free(&w->aead);
		rte_ring_free(w->punt);
		rte_ring_free(w->inject);
		rte_ring_free(w->resolve);
		eg_reasm_free(w->reasm);
		dp_flow_cache_free(w->flows);
	}
	rte_free(f->ctx.workers);
	dp_ports_close(&f->ctx);
	dp_routes_free(&f->ctx);
	dp_neigh_free(f->ctx.neigh);
	rte_mempool_free(f->ctx.pool);
	eg_shm_detach(&f->ctx.shm);
	eg_config_free(&f->ctx.cfg);
	rte_eal_cleanup();
}

static void start_eal(const char *name, unsigned n_ports)
{
	static char prefix[64], vdev[EG_MAX_PORTS][32];
	char *argv[8 + EG_MAX_PORTS] = {(char *)name, "--no-huge", "-m", "256", "--no-pci", "--no-telemetry",
					"--log-level=1", prefix};
	int argc = 8;

	snprintf(prefix, sizeof(prefix), "--file-prefix=%s%d", name, (int)getpid());
	for (unsigned i = 0; i < n_ports; i++) {
		snprintf(vdev[i], sizeof(vdev[i]), "--vdev=net_null%u", i);
		argv[argc++] = vdev[i];
	}
	if (rte_eal_init(argc, argv) < 0)
		DIE("EAL init failed: %s", rte_strerror(rte_errno));
	/* The runtime directory (config, fbarrays, mp socket) is for secondary processes, and
	 * there are none: removed now, a crash leaves no directory per pid behind. */
	dp_runtime_dir_remove(rte_eal_get_runtime_dir());
}

static void load_config(struct dp_offline *f, const char *name, const char *config_fmt)
{
	char instance[EG_NAME_LEN];
	size_t room = strlen(config_fmt) + EG_NAME_LEN;
	char *text = malloc(room);
	struct eg_error err;
	json_error_t jerr;
	json_t *doc;

	if (!text)
		DIE("out of memory");
	snprintf(instance, sizeof(instance), "%s%d", name, (int)getpid());
	snprintf(text, room, config_fmt, instance);
	doc = json_loads(text, 0, &jerr);
	if (!doc)
		DIE("config JSON: %s at line %d", jerr.text, jerr.line);
	if (eg_config_from_json(doc, &f->ctx.cfg, &err) != 0)
		DIE("config: %s: %s", err.path, err.msg);
	json_decref(doc);
	free(text);
	f->ctx.n_workers = f->ctx.cfg.dataplane.workers;
}

void dp_offline_start(struct dp_offline *f, const char *name, const char *config_fmt, uint16_t data_room,
		      unsigned n_mbufs)
{
	struct eg_shm_geometry g = {0};
	struct dp_ctx *ctx = &f->ctx;
	struct eg_aead_ctx probe;
	char shm_name[EG_SHM_NAME_LEN];

	memset(f, 0, sizeof(*f));
	current = f;
	load_config(f, name, config_fmt);
	start_eal(name, ctx->cfg.dataplane.n_ports);
	atexit(cleanup);
	ctx->tsc_hz = rte_get_tsc_hz();
	ctx->pool = rte_pktmbuf_pool_create("mbufs", n_mbufs, 256, 0, (uint16_t)(RTE_PKTMBUF_HEADROOM + data_room),
					    (int)rte_socket_id());
	ctx->neigh = dp_neigh_create((int)rte_socket_id());
	if (!ctx->pool || !ctx->neigh)
		DIE("out of memory for the mbufs and the neighbour table");
	if (eg_aead_ctx_init(&probe, IMB_ARCH_NONE) != 0)
		DIE("intel-ipsec-mb cannot start on this CPU");
	ctx->imb_arch = probe.arch;
	eg_aead_ctx_free(&probe);

	g.n_workers = ctx->n_workers;
	g.n_ports = ctx->cfg.dataplane.n_ports;
	g.n_sa_slots = RTE_MAX(ctx->cfg.n_sas, (unsigned)MIN_SA_SLOTS);
	g.n_wg_slots = ctx->cfg.wg.present ? RTE_MAX(ctx->cfg.wg.n_peers, (unsigned)MIN_WG_SLOTS) : 0;
	g.slot_size = (size_t)ctx->cfg.dataplane.table_mb << 20;
	g.imb_arch = ctx->imb_arch;
	dp_segment_nat_params(&ctx->cfg.dataplane.nat, &g.nat);
	eg_shm_name(ctx->cfg.instance, shm_name);
	if (eg_shm_create(shm_name, ctx->cfg.instance, &g, &ctx->shm) != 0)
		DIE("cannot create shared memory %s", shm_name);
	shm_unlink(shm_name);	/* nothing else attaches */
	ctx->nat = eg_shm_nat(ctx->shm.hdr);

	ctx->workers = rte_zmalloc("workers", ctx->n_workers * sizeof(*ctx->workers), RTE_CACHE_LINE_SIZE);
	if (!ctx->workers)
		DIE("no memory for the workers");
	f->w = &ctx->workers[0];
	for (unsigned i = 0; i < ctx->n_workers; i++) {
		struct dp_worker *w = &ctx->workers[i];

		if (dp_worker_init(ctx, w, i) != 0)
			DIE("cannot create worker %u's rings", i);
		w->lcore = rte_lcore_id();	/* until a thread of the caller's takes it over */
		if (eg_aead_ctx_init(&w->aead, ctx->imb_arch) != 0)
			DIE("no crypto manager");
		w->shm->lcore = w->lcore;
		eg_shm_quiescent(ctx->shm.hdr, w->shm);
	}
	if (dp_ports_init(ctx) != 0 || dp_routes_init(ctx) != 0)
		DIE("ports or routes failed");
	dp_service_init(ctx);		/* the static neighbours */
}

/* Every SA of the config installed and ACTIVE in its slot, every peer in its own. */
static void install_sas_and_peers(struct dp_offline *f)
{
	struct dp_ctx *ctx = &f->ctx;
	const struct eg_config *c = &ctx->cfg;

	for (unsigned i = 0; i < c->n_sas; i++) {
		struct eg_sa_slot *s = eg_shm_sa(ctx->shm.hdr, i);

		if (eg_sa_slot_fill(s, &c->sas[i], (uint16_t)eg_sa_cfg_port(&c->dataplane, &c->sas[i]), &f->w->aead))
			DIE("SA %u: cannot install", c->sas[i].spi);
		__atomic_store_n(&s->state, EG_SA_ACTIVE, __ATOMIC_RELEASE);
	}
	for (unsigned i = 0; i < c->wg.n_peers; i++) {
		const struct eg_wg_peer_cfg *pc = &c->wg.peers[i];
		struct eg_wg_peer_slot *ps = eg_shm_wg(ctx->shm.hdr, i);
		struct eg_wg_endpoint ep = {0};

		ps->listen_port = c->wg.listen_port;
		ps->send_kp = EG_WG_NO_KEYPAIR;
		if (pc->has_endpoint) {
			ep.family = pc->endpoint.family;
			ep.port = (uint16_t)dp_offline_port(f, "wan0");
			ep.udp_port = pc->endpoint_port;
			memcpy(ep.addr, pc->endpoint.addr, 16);
		}
		eg_wg_endpoint_write(ps, &ep);
		__atomic_store_n(&ps->state, EG_WG_ACTIVE, __ATOMIC_RELEASE);
	}
}

void dp_offline_build_table(struct dp_offline *f, const uint8_t *egress_state, struct eg_blob *b)
{
	const struct eg_config *c = &f->ctx.cfg;
	struct eg_table_spi *in = calloc(c->n_sas + 1, sizeof(*in));
	struct eg_table_wg_peer *wg_peers = calloc(c->wg.n_peers + 1, sizeof(*wg_peers));
	uint32_t *egress_slot = calloc(EG_MAX_EGRESSES, sizeof(uint32_t));
	uint32_t *egress_ids = calloc(EG_MAX_EGRESSES, sizeof(uint32_t));
	uint32_t *wg_slot = calloc(EG_MAX_EGRESSES, sizeof(uint32_t));
	uint32_t *policy_ids = calloc(EG_MAX_POLICIES, sizeof(uint32_t));
	unsigned n_in = 0;
	struct eg_error err;

	if (!in || !wg_peers || !egress_slot || !egress_ids || !wg_slot || !policy_ids)
		DIE("out of memory");
	for (unsigned i = 0; i < c->n_sas; i++)
		if (c->sas[i].dir == EG_SA_DIR_IN)
			in[n_in++] = (struct eg_table_spi){.spi = c->sas[i].spi, .slot = i};
	for (unsigned i = 0; i < c->wg.n_peers; i++)
		wg_peers[i] = (struct eg_table_wg_peer){.slot = i, .allowed = c->wg.peers[i].allowed,
							.n_allowed = c->wg.peers[i].n_allowed};
	for (unsigned e = 0; e < c->n_egresses; e++) {
		int pi = c->egresses[e].type == EG_EGRESS_WIREGUARD ? eg_wg_peer_find(&c->wg, c->egresses[e].peer) : -1;

		wg_slot[e] = pi >= 0 ? (uint32_t)pi : EG_TABLE_NO_SA;
		egress_ids[e] = e;
		egress_slot[e] = EG_TABLE_NO_SA;
		for (unsigned i = 0; i < c->n_sas; i++)
			if (c->egresses[e].type == EG_EGRESS_IPSEC && c->sas[i].dir == EG_SA_DIR_OUT &&
			    c->sas[i].spi == c->egresses[e].sa_out)
				egress_slot[e] = i;
	}
	for (unsigned p = 0; p < c->n_policies; p++)
		policy_ids[p] = p;

	struct eg_table_input ti = {
		.dp = &c->dataplane, .egresses = c->egresses, .n_egresses = c->n_egresses, .egress_ids = egress_ids,
		.egress_state = egress_state, .policies = c->policies, .n_policies = c->n_policies,
		.policy_ids = policy_ids, .egress_sa_slot = egress_slot, .inbound = in, .n_inbound = n_in,
		.egress_wg_slot = wg_slot, .wg_peers = wg_peers, .n_wg_peers = c->wg.n_peers,
	};

	eg_blob_init(b, (size_t)c->dataplane.table_mb << 20);
	if (eg_table_build(&ti, b, &err) != 0)
		DIE("table: %s: %s", err.path, err.msg);
	free(in);
	free(wg_peers);
	free(egress_slot);
	free(egress_ids);
	free(wg_slot);
	free(policy_ids);
}

void dp_offline_publish(struct dp_offline *f)
{
	struct dp_ctx *ctx = &f->ctx;
	struct eg_blob b;
	uint64_t gen;

	install_sas_and_peers(f);
	dp_offline_build_table(f, NULL, &b);
	/* The caller's thread is the workers, between bursts: they hold no table now. */
	for (unsigned i = 0; i < ctx->n_workers; i++)
		eg_shm_quiescent(ctx->shm.hdr, ctx->workers[i].shm);
	if (eg_shm_publish(ctx->shm.hdr, b.data, b.len, 0, &gen) != 0)
		DIE("cannot publish the table");
	eg_blob_free(&b);
	f->table = eg_shm_table_acquire(ctx->shm.hdr, &gen);
	dp_nat_service(ctx, rte_rdtsc());	/* the pools of the new table */
	if (!f->table)
		DIE("no table after publishing");
}

struct eg_sa_slot *dp_offline_sa(struct dp_offline *f, uint32_t spi, uint8_t dir, uint32_t *slot)
{
	for (unsigned i = 0; i < f->ctx.cfg.n_sas; i++)
		if (f->ctx.cfg.sas[i].spi == spi && f->ctx.cfg.sas[i].dir == dir) {
			if (slot)
				*slot = i;
			return eg_shm_sa(f->ctx.shm.hdr, i);
		}
	DIE("no SA %u", spi);
}

struct eg_wg_keypair *dp_offline_wg_keypair(struct dp_offline *f, uint32_t peer, unsigned k, const uint8_t send[32],
					     const uint8_t recv[32], uint32_t local_index, uint32_t remote_index,
					     bool initiator, uint64_t serial)
{
	struct eg_wg_peer_slot *ps = eg_shm_wg(f->ctx.shm.hdr, peer);
	struct eg_wg_keypair *kp = eg_wg_kp(ps, k);

	memset(kp, 0, eg_wg_kp_stride());
	kp->local_index = local_index;
	kp->remote_index = remote_index;
	kp->initiator = initiator;
	kp->confirmed = initiator;
	kp->serial = serial;
	memcpy(kp->send_key, send, 32);
	memcpy(kp->recv_key, recv, 32);
	if (eg_replay_init(eg_wg_kp_replay(kp), EG_WG_REPLAY_WINDOW) != 0)
		DIE("replay window");
	__atomic_store_n(&kp->state, EG_WG_ACTIVE, __ATOMIC_RELEASE);
	if (initiator)
		__atomic_store_n(&ps->send_kp, k, __ATOMIC_RELEASE);
	return kp;
}

size_t dp_offline_ipv4_udp(uint8_t *buf, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport,
			   const uint8_t *payload, uint16_t len, bool df, uint16_t id)
{
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)buf;
	struct rte_udp_hdr *u = (struct rte_udp_hdr *)(ip + 1);
	uint16_t tot = (uint16_t)(sizeof(*ip) + sizeof(*u) + len);

	memset(ip, 0, sizeof(*ip));
	ip->version_ihl = 0x45;
	ip->total_length = rte_cpu_to_be_16(tot);
	ip->packet_id = rte_cpu_to_be_16(id);
	ip->fragment_offset = df ? rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG) : 0;
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_UDP;
	ip->src_addr = rte_cpu_to_be_32(src);
	ip->dst_addr = rte_cpu_to_be_32(dst);
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	u->src_port = rte_cpu_to_be_16(sport);
	u->dst_port = rte_cpu_to_be_16(dport);
	u->dgram_len = rte_cpu_to_be_16((uint16_t)(sizeof(*u) + len));
	u->dgram_cksum = 0;
	memcpy(u + 1, payload, len);
	return tot;
}

struct rte_mbuf *dp_offline_udp_frame(struct dp_offline *f, uint16_t port, const uint8_t src_mac[6], uint32_t src,
				      uint32_t dst, uint16_t sport, uint16_t dport, const uint8_t *payload,
				      uint16_t len, bool df, uint16_t id)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(f->ctx.pool);
	size_t size = sizeof(struct rte_ether_hdr) + sizeof(struct rte_ipv4_hdr) + sizeof(struct rte_udp_hdr) + len;
	struct rte_ether_hdr *eth = m ? (struct rte_ether_hdr *)rte_pktmbuf_append(m, (uint16_t)size) : NULL;

	if (!eth)
		DIE("no room for a %zu-byte frame", size);
	eth->dst_addr = f->ctx.ports[port].mac;
	memcpy(eth->src_addr.addr_bytes, src_mac, 6);
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	dp_offline_ipv4_udp((uint8_t *)(eth + 1), src, dst, sport, dport, payload, len, df, id);
	return m;
}

unsigned dp_offline_take_tx(struct dp_offline *f, uint16_t port, struct rte_mbuf **out, unsigned max)
{
	return dp_offline_worker_take_tx(f->w, port, out, max);
}

unsigned dp_offline_worker_take_tx(struct dp_worker *w, uint16_t port, struct rte_mbuf **out, unsigned max)
{
	struct dp_tx_buffer *b = &w->tx[port];
	unsigned n = b->n;

	if (n > max)
		DIE("%u frames queued on port %u, room for %u", n, port, max);
	memcpy(out, b->pkts, n * sizeof(*out));
	b->n = 0;
	return n;
}

uint16_t dp_offline_port(const struct dp_offline *f, const char *name)
{
	int i = eg_config_port_index(&f->ctx.cfg.dataplane, name);

	if (i < 0)
		DIE("no port %s", name);
	return (uint16_t)i;
}

void dp_offline_drain(struct dp_offline *f)
{
	dp_offline_worker_drain(f->w);
}

void dp_offline_worker_drain(struct dp_worker *w)
{
	struct rte_mbuf *pkts[DP_BURST];
	struct dp_resolve_req req[DP_BURST];
	unsigned n;

	while ((n = rte_ring_dequeue_burst(w->punt, (void **)pkts, DP_BURST, NULL)) > 0)
		rte_pktmbuf_free_bulk(pkts, n);
	while ((n = rte_ring_dequeue_burst(w->inject, (void **)pkts, DP_BURST, NULL)) > 0)
		rte_pktmbuf_free_bulk(pkts, n);
	while (rte_ring_dequeue_burst_elem(w->resolve, req, sizeof(req[0]), DP_BURST, NULL) > 0)
		;
}

void dp_offline_nat_tick(struct dp_offline *f, uint64_t now)
{
	/* The caller's thread is the worker, between bursts: one loop of it ends here. */
	f->w->shm->idle_loops++;
	dp_nat_service(&f->ctx, now);
}
