#include "nat.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <sodium.h>

#include "nat_packet.h"
#include "nat_table.h"
#include "net_addr.h"

#define LOG(fmt, ...) fprintf(stderr, "egress-dataplane: nat: " fmt "\n", ##__VA_ARGS__)

/* ---- workers ---- */

/* Unpredictable bits for choosing pool address, block and port: a ChaCha20 stream per
 * worker (libsodium's deterministic generator), re-keyed from its own output at every
 * refill so that what was handed out cannot be recomputed from a later state. */
static uint64_t nat_random(struct dp_worker *w)
{
	if (w->nat_rnd_left == 0) {
		uint8_t buf[sizeof(w->nat_rnd) + randombytes_SEEDBYTES];

		if (!w->nat_seeded) {
			randombytes_buf(w->nat_seed, sizeof(w->nat_seed));
			w->nat_seeded = true;
		}
		randombytes_buf_deterministic(buf, sizeof(buf), w->nat_seed);
		memcpy(w->nat_rnd, buf, sizeof(w->nat_rnd));
		memcpy(w->nat_seed, buf + sizeof(w->nat_rnd), sizeof(w->nat_seed));
		sodium_memzero(buf, sizeof(buf));
		w->nat_rnd_left = RTE_DIM(w->nat_rnd);
	}
	return w->nat_rnd[--w->nat_rnd_left];
}

static const enum eg_drop_reason create_drop[] = {
	[EG_NAT_HOST_PORTS] = EG_DROP_NAT_HOST_PORTS,
	[EG_NAT_POOL] = EG_DROP_NAT_POOL_EXHAUSTED,
	[EG_NAT_FULL] = EG_DROP_NAT_TABLE_FULL,
};

static enum eg_drop_reason parse_drop(enum eg_nat_parse r)
{
	return r == EG_NAT_PARSE_FRAGMENT ? EG_DROP_NAT_FRAGMENT
	       : r == EG_NAT_PARSE_MALFORMED ? EG_DROP_L4_RUNT
					     : EG_DROP_NAT_UNSUPPORTED;
}

enum eg_drop_reason dp_nat_out(struct dp_worker *w, uint8_t *l3, uint16_t l3_len, const struct eg_table_egress *e)
{
	struct eg_nat_hdr *n = w->ctx->nat;
	struct eg_nat_pkt k;
	enum eg_nat_parse pr;
	uint32_t s;

	/* What we send ourselves (probes from the uplink's address) keeps its address; a
	 * site host claiming another of our addresses is translated like any other. */
	if (unlikely(!n) || (e->port < w->ctx->n_ports && memcmp(&w->ctx->ports[e->port].ipv4, l3 + 12, 4) == 0))
		return EG_DROP_MAX;
	if (unlikely((pr = eg_nat_packet_parse(l3, l3_len, true, &k)) != EG_NAT_PARSE_OK))
		return parse_drop(pr);
	s = eg_nat_find_out(n, k.proto, k.local_addr, k.local_port, k.remote_addr, e->id);
	if (unlikely(s == EG_NAT_NONE)) {
		/* An error about a flow the NAT never carried says nothing anyone outside needs. */
		if (k.error)
			return EG_DROP_NAT_NO_SESSION;
		const struct eg_nat_flow f = {
			.proto = k.proto, .in_addr = k.local_addr, .in_port = k.local_port,
			.rem_addr = k.remote_addr, .rem_port = k.remote_port, .egress = e->id,
		};
		enum eg_nat_result r = eg_nat_create(n, &f, (uint8_t)w->id, nat_random(w), &s);

		if (r != EG_NAT_OK)
			return create_drop[r];
		w->shm->nat_created++;
	}
	struct eg_nat_session *x = &eg_nat_sessions(n)[s];

	if (!k.error)
		eg_nat_touch(n, x, true, k.tcp_flags);
	eg_nat_packet_rewrite(l3, &k, true, x->out_addr, x->out_port);
	w->shm->nat_out++;
	return EG_DROP_MAX;
}

enum eg_drop_reason dp_nat_in(struct dp_worker *w, uint8_t *l3, uint16_t l3_len, uint8_t *dst, bool *ours)
{
	struct eg_nat_hdr *n = w->ctx->nat;
	struct eg_nat_pkt k;
	enum eg_nat_parse pr;
	uint32_t s, to;

	*ours = false;
	if (!n || __atomic_load_n(&n->n_addrs, __ATOMIC_RELAXED) == 0)
		return EG_DROP_MAX;
	memcpy(&to, l3 + 16, 4);
	pr = eg_nat_packet_parse(l3, l3_len, false, &k);
	s = pr == EG_NAT_PARSE_OK ? eg_nat_find_in(n, k.proto, k.local_addr, k.local_port, k.remote_addr)
				  : EG_NAT_NONE;
	if (s == EG_NAT_NONE) {
		/* Not a session's: ours to drop when it is for a pool address, else routed. */
		*ours = eg_nat_addr_find(n, to) != EG_NAT_NONE;
		return pr == EG_NAT_PARSE_OK ? EG_DROP_NAT_NO_SESSION : parse_drop(pr);
	}
	struct eg_nat_session *x = &eg_nat_sessions(n)[s];

	*ours = true;
	if (!k.error)
		eg_nat_touch(n, x, false, k.tcp_flags);
	eg_nat_packet_rewrite(l3, &k, false, x->in_addr, x->in_port);
	memcpy(dst, &x->in_addr, 4);
	w->shm->nat_in++;
	if (x->worker != w->id)
		w->shm->nat_in_other_worker++;
	return EG_DROP_MAX;
}

bool dp_nat_answers_arp(const struct dp_ctx *ctx, uint16_t port, uint32_t addr)
{
	const struct eg_nat_hdr *n = ctx->nat;
	uint32_t i;

	if (!n || (i = eg_nat_addr_find(n, addr)) == EG_NAT_NONE)
		return false;
	const struct eg_nat_addr *a = &eg_nat_addrs(n)[i];

	return __atomic_load_n(&a->state, __ATOMIC_ACQUIRE) == EG_NAT_ADDR_ACTIVE && a->port == port;
}

/* ---- service lcore ---- */

enum {
	LIMBO_CAP = 65536,		/* records waiting for a grace period, per kind */
	SWEEP_PERIOD_MS = 10,
	SWEEPS_PER_PASS = 100,		/* every record is looked at about once a second */
	SWEEP_MIN = 1024,
};

struct pool_addr {
	uint32_t addr;
	uint16_t egress, port;
};

static struct {
	bool ready;
	uint64_t start_tsc, next_sweep;
	uint64_t synced;		/* the `current` value whose pools are applied */
	uint32_t cursor;
	struct eg_nat_limbo collect, pending;
	bool pending_armed;
	uint64_t snap[EG_MAX_WORKERS];
	uint64_t events_tail, events_lost;
	struct pool_addr pools[EG_NAT_MAX_ADDRS];
} svc;

static bool limbo_init(struct eg_nat_limbo *l)
{
	*l = (struct eg_nat_limbo){.cap = LIMBO_CAP};
	l->sess = calloc(LIMBO_CAP, sizeof(uint32_t));
	l->maps = calloc(LIMBO_CAP, sizeof(uint32_t));
	l->hosts = calloc(LIMBO_CAP, sizeof(uint32_t));
	return l->sess && l->maps && l->hosts;
}

static void limbo_release(struct eg_nat_limbo *l)
{
	free(l->sess);
	free(l->maps);
	free(l->hosts);
	*l = (struct eg_nat_limbo){0};
}

void dp_nat_service_free(void)
{
	limbo_release(&svc.collect);
	limbo_release(&svc.pending);
	svc.ready = false;
}

/* The pools of the current table, copied the seqlock way (see telemetry.c): a slot is
 * rewritten only after `current` moved past it, and `current` never repeats. Returns how
 * many addresses, or -1 when no whole copy could be taken (or no table). */
static int pools_now(const struct eg_shm_hdr *h, uint64_t *cur_out)
{
	for (unsigned attempt = 0; attempt < 100; attempt++) {
		uint64_t cur = __atomic_load_n(&h->current, __ATOMIC_ACQUIRE), gen;
		const struct eg_table_hdr *t = eg_shm_table_acquire(h, &gen);
		unsigned n = 0;
		bool ok = true;

		if (!t)
			return -1;
		uint32_t ne = t->n_egresses;

		if (t->egresses_off + (uint64_t)ne * sizeof(struct eg_table_egress) > h->slot_size)
			ok = false;
		for (uint32_t i = 0; ok && i < ne; i++) {
			const struct eg_table_egress *e = &eg_table_egresses(t)[i];
			uint32_t off = e->snat_off, cnt = e->n_snat;

			if (e->type != EG_EGRESS_DIRECT || cnt == 0)
				continue;
			if (off + (uint64_t)cnt * 4 > h->slot_size || n + cnt > EG_NAT_MAX_ADDRS) {
				ok = false;
				break;
			}
			for (uint32_t k = 0; k < cnt; k++) {
				svc.pools[n].addr = EG_AT(t, off, uint32_t)[k];
				svc.pools[n].egress = e->id;
				svc.pools[n].port = e->port;
				n++;
			}
		}
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&h->current, __ATOMIC_RELAXED) == cur) {
			*cur_out = cur;
			return ok ? (int)n : -1;
		}
	}
	return -1;
}

static void log_addr(const char *what, uint32_t addr, uint16_t egress)
{
	char a[EG_ADDR_STR_LEN];

	LOG("pool address %s %s (egress id %u)", eg_addr_format(EG_AF_INET, (const uint8_t *)&addr, a, sizeof(a)),
	    what, egress);
}

/* Pools as the table now says: new addresses become active, moved ones start over, and
 * those no table egress lists any more are retired (their sessions end in the sweeps). */
static void follow_table(struct dp_ctx *ctx)
{
	struct eg_nat_hdr *n = ctx->nat;
	uint64_t cur = __atomic_load_n(&ctx->shm.hdr->current, __ATOMIC_ACQUIRE);
	uint32_t keep[EG_NAT_MAX_ADDRS];
	int count;

	if (cur == svc.synced || cur == 0 || (count = pools_now(ctx->shm.hdr, &cur)) < 0)
		return;
	for (int i = 0; i < count; i++) {
		bool started;

		if (eg_nat_addr_set(n, svc.pools[i].addr, svc.pools[i].egress, svc.pools[i].port, &started) != 0)
			log_addr("not used: every address record is taken", svc.pools[i].addr, svc.pools[i].egress);
		else if (started)
			log_addr("in use", svc.pools[i].addr, svc.pools[i].egress);
		keep[i] = svc.pools[i].addr;
	}
	/* Retiring logs nothing per address here: the sweeps end its sessions and the block
	 * log (when on) says which hosts lost which ports. */
	unsigned gone = eg_nat_addr_retire_others(n, keep, (unsigned)count);

	if (gone)
		LOG("%u pool address(es) removed: their mappings end now", gone);
	svc.synced = cur;
}

static void log_events(struct dp_ctx *ctx)
{
	struct eg_nat_event ev[64];
	unsigned got;
	uint64_t lost_before = svc.events_lost;

	while ((got = eg_nat_events_read(ctx->nat, &svc.events_tail, ev, RTE_DIM(ev), &svc.events_lost)) > 0) {
		if (!ctx->cfg.dataplane.nat.log_blocks)
			continue;
		for (unsigned i = 0; i < got; i++) {
			char in[EG_ADDR_STR_LEN], out[EG_ADDR_STR_LEN];

			/* One line per block (RFC 6888 REQ-12, RFC 7422's bulk port allocation
			 * logging): who held which outside ports from when to when. */
			LOG("block %s inside=%s outside=%s ports=%u-%u egress=%u t=%u",
			    ev[i].released ? "released" : "allocated",
			    eg_addr_format(EG_AF_INET, (const uint8_t *)&ev[i].in_addr, in, sizeof(in)),
			    eg_addr_format(EG_AF_INET, (const uint8_t *)&ev[i].out_addr, out, sizeof(out)), ev[i].port_lo,
			    ev[i].port_hi, ev[i].egress, ev[i].at_s);
		}
	}
	if (svc.events_lost != lost_before && ctx->cfg.dataplane.nat.log_blocks)
		LOG("%" PRIu64 " block event(s) lost: they came faster than the log", svc.events_lost - lost_before);
}

unsigned dp_nat_service(struct dp_ctx *ctx, uint64_t now)
{
	struct eg_nat_hdr *n = ctx->nat;
	unsigned work = 0;

	if (!n)
		return 0;
	if (!svc.ready) {
		if (!limbo_init(&svc.collect) || !limbo_init(&svc.pending)) {
			LOG("out of memory for the reclaim lists: sessions will not expire");
			ctx->nat = NULL;
			return 0;
		}
		svc.start_tsc = now;
		svc.ready = true;
	}
	/* Seconds since start, from 1: 0 never stamps a session. */
	uint32_t sec = (uint32_t)((now - svc.start_tsc) / ctx->tsc_hz) + 1;

	if (sec != __atomic_load_n(&n->now_s, __ATOMIC_RELAXED))
		__atomic_store_n(&n->now_s, sec, __ATOMIC_RELAXED);
	follow_table(ctx);
	/* Records unlinked before the snapshot go back once every worker has moved on. */
	if (svc.pending_armed && eg_shm_loops_passed(ctx->shm.hdr, svc.snap)) {
		eg_nat_limbo_free(n, &svc.pending);
		svc.pending_armed = false;
		work++;
	}
	if (!svc.pending_armed && svc.collect.n_sess) {
		struct eg_nat_limbo t = svc.pending;

		svc.pending = svc.collect;
		svc.collect = t;
		eg_shm_loops_snapshot(ctx->shm.hdr, svc.snap);
		svc.pending_armed = true;
	}
	if (now >= svc.next_sweep) {
		uint32_t high = __atomic_load_n(&n->sess_high, __ATOMIC_RELAXED);
		uint32_t budget = high / SWEEPS_PER_PASS > SWEEP_MIN ? high / SWEEPS_PER_PASS : SWEEP_MIN;

		if (high)
			work += eg_nat_sweep(n, &svc.cursor, budget, &svc.collect);
		svc.next_sweep = now + ctx->tsc_hz * SWEEP_PERIOD_MS / 1000;
	}
	log_events(ctx);
	return work;
}
