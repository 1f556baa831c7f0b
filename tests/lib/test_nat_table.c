/* Source NAT state (lib/nat_table.c): endpoint-independent mapping, address-dependent
 * filtering, paired pooling, ports inside the host's blocks, exhaustion of a host, a pool and
 * the records, idle timeouts per protocol and TCP state, reclaim, pool changes, the block
 * log, and readers walking the chains while a writer creates and ends sessions. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "nat_table.h"

/* An address as it is on the wire (this is a little-endian build). */
#define A(a, b, c, d) __builtin_bswap32((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (d))
static const uint32_t POOL1 = A(192, 0, 2, 100), POOL2 = A(192, 0, 2, 101);
static const uint32_t REMOTE1 = A(203, 0, 113, 10), REMOTE2 = A(203, 0, 113, 11);

static struct eg_nat_hdr *region(uint32_t sessions, uint32_t hosts, uint32_t ppb, uint32_t bph)
{
	struct eg_nat_params p = {
		.sessions = sessions, .hosts = hosts, .ports_per_block = ppb, .blocks_per_host = bph,
		.timeout_s = {[EG_NAT_T_TCP_ESTABLISHED] = 100, [EG_NAT_T_TCP_TRANSITORY] = 10,
			      [EG_NAT_T_UDP] = 20, [EG_NAT_T_ICMP] = 5},
	};
	size_t size = eg_nat_region_size(&p);
	struct eg_nat_hdr *n = aligned_alloc(64, (size + 63) & ~(size_t)63);

	cr_assert_not_null(n);
	memset(n, 0, size);
	eg_nat_region_init(n, &p, 0x1234567890abcdefull);
	n->now_s = 1;
	return n;
}

static uint64_t rng = 88172645463325252ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static uint32_t flow(struct eg_nat_hdr *n, uint8_t proto, uint32_t in, uint16_t port, uint32_t rem,
		     enum eg_nat_result want)
{
	struct eg_nat_flow f = {.proto = proto, .in_addr = in, .in_port = port, .rem_addr = rem, .rem_port = 443};
	uint32_t s = 12345;
	enum eg_nat_result r = eg_nat_create(n, &f, 0, rnd(), &s);

	cr_assert_eq(r, want, "flow %08x:%u -> %08x: result %d, wanted %d", in, port, rem, r, want);
	if (want != EG_NAT_OK) {
		cr_assert_eq(s, EG_NAT_NONE);
		return s;
	}
	cr_assert_eq(eg_nat_find_out(n, proto, in, port, rem, 0), s);
	return s;
}

static struct eg_nat_session *sess(struct eg_nat_hdr *n, uint32_t s)
{
	return &eg_nat_sessions(n)[s];
}

struct limbo_buf {
	struct eg_nat_limbo l;
	uint32_t a[3][1 << 16];
};

static struct limbo_buf *limbo(void)
{
	struct limbo_buf *b = calloc(1, sizeof(*b));

	b->l = (struct eg_nat_limbo){.cap = 1 << 16, .sess = b->a[0], .maps = b->a[1], .hosts = b->a[2]};
	return b;
}

/* Sweeps everything once and frees at once (no readers here). */
static unsigned sweep_all(struct eg_nat_hdr *n, struct eg_nat_limbo *l)
{
	uint32_t cursor = 0;
	unsigned ended = eg_nat_sweep(n, &cursor, n->sess_high, l);

	eg_nat_limbo_free(n, l);
	return ended;
}

Test(nat_table, endpoint_independent_mapping_address_dependent_filtering)
{
	struct eg_nat_hdr *n = region(4096, 64, 64, 4);
	uint32_t inside = A(10, 10, 0, 2);

	cr_assert_eq(eg_nat_addr_set(n, POOL1, 0, 1, NULL), 0);
	uint32_t s1 = flow(n, EG_NAT_UDP, inside, 5000, REMOTE1, EG_NAT_OK);
	uint32_t s2 = flow(n, EG_NAT_UDP, inside, 5000, REMOTE2, EG_NAT_OK);

	cr_assert_neq(s1, s2, "one session per remote address");
	cr_assert_eq(sess(n, s1)->out_addr, POOL1);
	cr_assert_eq(sess(n, s1)->out_addr, sess(n, s2)->out_addr, "one mapping whatever the remote");
	cr_assert_eq(sess(n, s1)->out_port, sess(n, s2)->out_port);
	cr_assert_geq(sess(n, s1)->out_port, EG_NAT_PORT_FIRST);
	cr_assert_eq(n->mappings, 1);
	cr_assert_eq(n->sessions, 2);
	/* Coming back: each remote finds its own session; a third remote finds none. */
	cr_assert_eq(eg_nat_find_in(n, EG_NAT_UDP, POOL1, sess(n, s1)->out_port, REMOTE1), s1);
	cr_assert_eq(eg_nat_find_in(n, EG_NAT_UDP, POOL1, sess(n, s1)->out_port, REMOTE2), s2);
	cr_assert_eq(eg_nat_find_in(n, EG_NAT_UDP, POOL1, sess(n, s1)->out_port, A(203, 0, 113, 99)), EG_NAT_NONE);
	cr_assert_eq(eg_nat_find_in(n, EG_NAT_TCP, POOL1, sess(n, s1)->out_port, REMOTE1), EG_NAT_NONE,
		     "protocols have separate ports");
	/* The same flow again is the same session. */
	cr_assert_eq(flow(n, EG_NAT_UDP, inside, 5000, REMOTE1, EG_NAT_OK), s1);
	free(n);
}

Test(nat_table, paired_pooling_and_ports_in_the_hosts_blocks)
{
	struct eg_nat_hdr *n = region(8192, 256, 64, 4);
	uint32_t used[2] = {0};

	cr_assert_eq(eg_nat_addr_set(n, POOL1, 0, 1, NULL), 0);
	cr_assert_eq(eg_nat_addr_set(n, POOL2, 0, 1, NULL), 0);
	for (unsigned h = 0; h < 40; h++) {
		uint32_t inside = A(10, 10, 1, h + 1), addr = 0;

		for (unsigned f = 0; f < 20; f++) {
			uint32_t s = flow(n, f % 2 ? EG_NAT_TCP : EG_NAT_UDP, inside, (uint16_t)(30000 + f), REMOTE1, EG_NAT_OK);
			const struct eg_nat_session *x = sess(n, s);
			const struct eg_nat_mapping *m = &eg_nat_mappings(n)[x->map];
			const struct eg_nat_host *ho = &eg_nat_hosts(n)[m->host];
			bool in_block = false;

			if (!addr)
				addr = x->out_addr;
			cr_assert_eq(x->out_addr, addr, "host %u keeps one pool address", h);
			for (unsigned b = 0; b < ho->n_blocks; b++)
				in_block |= x->out_port >= EG_NAT_PORT_FIRST + ho->blocks[b] * 64u &&
					    x->out_port < EG_NAT_PORT_FIRST + (ho->blocks[b] + 1) * 64u;
			cr_assert(in_block, "port %u outside the host's blocks", x->out_port);
		}
		used[addr == POOL2]++;
	}
	cr_assert_gt(used[0], 0, "both pool addresses get hosts");
	cr_assert_gt(used[1], 0, "both pool addresses get hosts");
	cr_assert_eq(n->hosts, 40);
	/* No outside endpoint is handed out twice. */
	for (uint32_t i = 0; i < n->sess_high; i++)
		for (uint32_t j = i + 1; j < n->sess_high; j++) {
			const struct eg_nat_session *a = sess(n, i), *b = sess(n, j);

			cr_assert(!(a->out_addr == b->out_addr && a->out_port == b->out_port && a->proto == b->proto),
				  "sessions %u and %u share %08x:%u", i, j, a->out_addr, a->out_port);
		}
	free(n);
}

Test(nat_table, ports_are_not_sequential)
{
	struct eg_nat_hdr *n = region(4096, 64, 256, 1);
	unsigned ascending = 0;
	uint16_t prev = 0;

	cr_assert_eq(eg_nat_addr_set(n, POOL1, 0, 1, NULL), 0);
	for (unsigned f = 0; f < 50; f++) {
		uint16_t p = sess(n, flow(n, EG_NAT_UDP, A(10, 0, 0, 1), (uint16_t)(20000 + f), REMOTE1, EG_NAT_OK))->out_port;

		ascending += p == prev + 1;
		prev = p;
	}
	cr_assert_lt(ascending, 5, "%u of 50 ports were the previous one plus one", ascending);
	free(n);
}

Test(nat_table, exhaustion_of_a_host_a_pool_and_the_records)
{
	struct eg_nat_hdr *n = region(1024, 16, 64, 2);
	uint32_t inside = A(10, 10, 0, 2), first;

	cr_assert_eq(eg_nat_addr_set(n, POOL1, 0, 1, NULL), 0);
	first = flow(n, EG_NAT_UDP, inside, 1, REMOTE1, EG_NAT_OK);
	for (unsigned p = 2; p <= 128; p++)
		flow(n, EG_NAT_UDP, inside, (uint16_t)p, REMOTE1, EG_NAT_OK);
	flow(n, EG_NAT_UDP, inside, 129, REMOTE1, EG_NAT_HOST_PORTS);
	cr_assert_eq(eg_nat_find_out(n, EG_NAT_UDP, inside, 1, REMOTE1, 0), first, "existing flows keep working");
	cr_assert_eq(eg_nat_find_in(n, EG_NAT_UDP, POOL1, sess(n, first)->out_port, REMOTE1), first);
	flow(n, EG_NAT_TCP, inside, 129, REMOTE1, EG_NAT_OK);	/* TCP has ports of its own */
	cr_assert_eq(n->blocks, 2);
	free(n);

	/* 4096-port blocks: 15 per address; hosts of one block each use them up. */
	n = region(1024, 64, 4096, 1);
	cr_assert_eq(eg_nat_addr_set(n, POOL1, 0, 1, NULL), 0);
	cr_assert_eq(n->blocks_per_addr, 15);
	for (unsigned h = 0; h < 15; h++)
		flow(n, EG_NAT_UDP, A(10, 0, 0, h + 1), 1, REMOTE1, EG_NAT_OK);
	flow(n, EG_NAT_UDP, A(10, 0, 1, 1), 1, REMOTE1, EG_NAT_POOL);
	/* A pool of another egress does not serve this one. */
	cr_assert_eq(eg_nat_addr_set(n, POOL2, 7, 1, NULL), 0);
	flow(n, EG_NAT_UDP, A(10, 0, 1, 1), 1, REMOTE1, EG_NAT_POOL);
	free(n);

	/* Session records: 1024 of them. */
	n = region(1024, 1024, 64, 32);
	cr_assert_eq(eg_nat_addr_set(n, POOL1, 0, 1, NULL), 0);
	for (unsigned f = 0; f < 1024; f++)
		flow(n, EG_NAT_UDP, A(10, 0, 0, 1 + f / 512), (uint16_t)(f % 512), REMOTE1, EG_NAT_OK);
	flow(n, EG_NAT_UDP, A(10, 0, 0, 1), 9999, REMOTE1, EG_NAT_FULL);
	cr_assert_eq(n->mappings, 1024, "a full table leaves no mapping without a session");
	free(n);
}

Test(nat_table, timeouts_per_protocol_and_tcp_state)
{
	struct eg_nat_hdr *n = region(4096, 64, 64, 4);
	struct limbo_buf *lb = limbo();
	uint32_t inside = A(10, 10, 0, 2);

	cr_assert_eq(eg_nat_addr_set(n, POOL1, 0, 1, NULL), 0);
	uint32_t udp = flow(n, EG_NAT_UDP, inside, 1000, REMOTE1, EG_NAT_OK);
	uint32_t icmp = flow(n, EG_NAT_ICMP, inside, 77, REMOTE1, EG_NAT_OK);
	uint32_t est = flow(n, EG_NAT_TCP, inside, 2000, REMOTE1, EG_NAT_OK);
	uint32_t half = flow(n, EG_NAT_TCP, inside, 2001, REMOTE1, EG_NAT_OK);
	uint32_t closed = flow(n, EG_NAT_TCP, inside, 2002, REMOTE1, EG_NAT_OK);

	eg_nat_touch(n, sess(n, est), true, EG_NAT_SYN);
	eg_nat_touch(n, sess(n, est), false, EG_NAT_SYN);
	eg_nat_touch(n, sess(n, half), true, EG_NAT_SYN);	/* never answered */
	eg_nat_touch(n, sess(n, closed), true, EG_NAT_SYN);
	eg_nat_touch(n, sess(n, closed), false, EG_NAT_SYN);
	eg_nat_touch(n, sess(n, closed), true, EG_NAT_FIN);
	eg_nat_touch(n, sess(n, closed), false, EG_NAT_FIN);
	cr_assert_str_eq(eg_nat_session_state_name(sess(n, est)), "established");
	cr_assert_str_eq(eg_nat_session_state_name(sess(n, half)), "transitory");
	cr_assert_str_eq(eg_nat_session_state_name(sess(n, closed)), "transitory");

	n->now_s = 1 + 5;			/* ICMP's 5 s: not yet (idle == timeout) */
	cr_assert_eq(sweep_all(n, &lb->l), 0);
	n->now_s = 1 + 6;
	cr_assert_eq(sweep_all(n, &lb->l), 1);
	cr_assert_eq(eg_nat_find_out(n, EG_NAT_ICMP, inside, 77, REMOTE1, 0), EG_NAT_NONE);
	cr_assert_eq(sess(n, icmp)->linked, 0);
	n->now_s = 1 + 11;			/* transitory TCP: both */
	cr_assert_eq(sweep_all(n, &lb->l), 2);
	cr_assert_eq(eg_nat_find_out(n, EG_NAT_TCP, inside, 2001, REMOTE1, 0), EG_NAT_NONE);
	cr_assert_eq(eg_nat_find_out(n, EG_NAT_TCP, inside, 2000, REMOTE1, 0), est);
	eg_nat_touch(n, sess(n, udp), false, 0);	/* a reply keeps UDP alive too */
	n->now_s = 12 + 20;		/* touched at 12: idle 20 of 20 */
	cr_assert_eq(sweep_all(n, &lb->l), 0);
	n->now_s = 12 + 21;
	cr_assert_eq(sweep_all(n, &lb->l), 1);
	n->now_s = 1 + 101;
	cr_assert_eq(sweep_all(n, &lb->l), 1);
	cr_assert_eq(n->sessions, 0);
	cr_assert_eq(n->mappings, 0);
	cr_assert_eq(n->hosts, 0);
	cr_assert_eq(n->blocks, 0);
	cr_assert_eq(n->expired, 5);
	cr_assert_eq(eg_nat_addrs(n)[0].blocks_used, 0);
	for (unsigned w = 0; w < EG_NAT_PORT_WORDS; w++)
		cr_assert_eq(eg_nat_addrs(n)[0].port_used[EG_NAT_UDP][w] | eg_nat_addrs(n)[0].port_used[EG_NAT_TCP][w], 0,
			     "every port went back");
	/* Records come back for new flows. */
	uint32_t again = flow(n, EG_NAT_UDP, inside, 1000, REMOTE1, EG_NAT_OK);

	cr_assert_lt(again, 5, "a freed record is reused");
	free(lb);
	free(n);
}

/* A new SYN on endpoints whose connection closed starts over as a new connection. */
Test(nat_table, syn_after_close_is_a_new_connection)
{
	struct eg_nat_hdr *n = region(1024, 16, 64, 1);
	uint32_t s;

	cr_assert_eq(eg_nat_addr_set(n, POOL1, 0, 1, NULL), 0);
	s = flow(n, EG_NAT_TCP, A(10, 0, 0, 1), 1, REMOTE1, EG_NAT_OK);
	eg_nat_touch(n, sess(n, s), true, EG_NAT_SYN);
	eg_nat_touch(n, sess(n, s), false, EG_NAT_SYN | EG_NAT_RST);
	cr_assert_str_eq(eg_nat_session_state_name(sess(n, s)), "transitory");
	eg_nat_touch(n, sess(n, s), true, EG_NAT_SYN);
	eg_nat_touch(n, sess(n, s), false, EG_NAT_SYN);
	cr_assert_str_eq(eg_nat_session_state_name(sess(n, s)), "established");
	free(n);
}

Test(nat_table, pool_change_ends_the_removed_addresses_mappings)
{
	struct eg_nat_hdr *n = region(4096, 64, 64, 4);
	struct limbo_buf *lb = limbo();
	uint32_t inside = A(10, 10, 0, 2), keep[] = {POOL2};
	uint64_t tail = 0, lost = 0;
	struct eg_nat_event ev[16];

	cr_assert_eq(eg_nat_addr_set(n, POOL1, 0, 1, NULL), 0);
	uint32_t s = flow(n, EG_NAT_UDP, inside, 1000, REMOTE1, EG_NAT_OK);

	cr_assert_eq(sess(n, s)->out_addr, POOL1);
	cr_assert_eq(eg_nat_events_read(n, &tail, ev, 16, &lost), 1);
	cr_assert(!ev[0].released);
	cr_assert_eq(ev[0].in_addr, inside);
	cr_assert_eq(ev[0].out_addr, POOL1);
	cr_assert_eq(ev[0].port_hi - ev[0].port_lo, 63);
	cr_assert(sess(n, s)->out_port >= ev[0].port_lo && sess(n, s)->out_port <= ev[0].port_hi);

	/* The pool becomes {POOL2}: POOL1 retires, its host is unlinked at once. */
	cr_assert_eq(eg_nat_addr_set(n, POOL2, 0, 1, NULL), 0);
	cr_assert_eq(eg_nat_addr_retire_others(n, keep, 1), 1);
	cr_assert_eq(eg_nat_addrs(n)[0].state, EG_NAT_ADDR_RETIRED);
	/* The host's next new flow starts on the new address. */
	uint32_t s2 = flow(n, EG_NAT_UDP, inside, 1001, REMOTE1, EG_NAT_OK);

	cr_assert_eq(sess(n, s2)->out_addr, POOL2);
	/* The old session ends at the next sweep, though it is not idle. */
	cr_assert_eq(sweep_all(n, &lb->l), 1);
	cr_assert_eq(n->ended, 1);
	cr_assert_eq(eg_nat_find_out(n, EG_NAT_UDP, inside, 1000, REMOTE1, 0), EG_NAT_NONE);
	cr_assert_eq(eg_nat_find_out(n, EG_NAT_UDP, inside, 1001, REMOTE1, 0), s2);
	cr_assert_eq(eg_nat_addrs(n)[0].state, EG_NAT_ADDR_FREE, "drained and free");
	cr_assert_eq(eg_nat_addr_find(n, POOL1), EG_NAT_NONE);
	unsigned got = eg_nat_events_read(n, &tail, ev, 16, &lost);

	cr_assert_eq(got, 2, "POOL2's block given, POOL1's taken back");
	cr_assert(!ev[0].released);
	cr_assert_eq(ev[0].out_addr, POOL2);
	cr_assert(ev[1].released);
	cr_assert_eq(ev[1].out_addr, POOL1);
	/* An address moved to another egress starts over there. */
	cr_assert_eq(eg_nat_addr_set(n, POOL2, 3, 2, NULL), 0);
	cr_assert_eq(eg_nat_addrs(n)[eg_nat_addr_find(n, POOL2)].egress, 3);
	free(lb);
	free(n);
}

Test(nat_table, event_ring_reports_losses)
{
	struct eg_nat_hdr *n = region(8192, 4096, 64, 1);
	struct eg_nat_event ev[8];
	uint64_t tail = 0, lost = 0;

	cr_assert_eq(eg_nat_addr_set(n, POOL1, 0, 1, NULL), 0);
	cr_assert_eq(eg_nat_addr_set(n, POOL2, 0, 1, NULL), 0);
	for (unsigned h = 0; h < EG_NAT_EVENTS + 10; h++)
		flow(n, EG_NAT_UDP, A(10, 1, h >> 8, h & 0xff), 1, REMOTE1, EG_NAT_OK);
	cr_assert_eq(eg_nat_events_read(n, &tail, ev, 8, &lost), 8);
	cr_assert_eq(lost, 10);
	free(n);
}

/* ---- readers against a writer ---- */

struct race {
	struct eg_nat_hdr *n;
	volatile bool stop;
	uint64_t loops[2];		/* each reader's loop count: its quiescent states */
	uint64_t found[2], bad[2];
};

static void *reader(void *arg)
{
	struct race *r = arg;
	static int next;
	int me = __atomic_fetch_add(&next, 1, __ATOMIC_RELAXED) % 2;
	uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(me + 1);

	while (!r->stop) {
		for (int i = 0; i < 64; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			uint16_t port = (uint16_t)(x % 256);
			uint32_t in = A(10, 0, 0, 1 + (x >> 8) % 4);
			uint32_t s = eg_nat_find_out(r->n, EG_NAT_UDP, in, port, REMOTE1, 0);

			if (s == EG_NAT_NONE)
				continue;
			const struct eg_nat_session *y = &eg_nat_sessions(r->n)[s];
			uint32_t back = eg_nat_find_in(r->n, EG_NAT_UDP, y->out_addr, y->out_port, REMOTE1);

			/* Found: the record is this flow's, and while linked it is found back. */
			if (y->in_addr != in || y->in_port != port)
				r->bad[me]++;
			if (back != EG_NAT_NONE && back != s)
				r->bad[me]++;
			r->found[me]++;
		}
		__atomic_store_n(&r->loops[me], r->loops[me] + 1, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&r->loops[me], UINT64_MAX, __ATOMIC_RELEASE);
	return NULL;
}

static bool passed(struct race *r, const uint64_t *snap)
{
	for (int i = 0; i < 2; i++) {
		uint64_t now = __atomic_load_n(&r->loops[i], __ATOMIC_ACQUIRE);

		if (now != UINT64_MAX && now <= snap[i] + 1)
			return false;
	}
	return true;
}

Test(nat_table, lock_free_readers_while_sessions_come_and_go, .timeout = 30)
{
	struct race r = {.n = region(1024, 64, 256, 8)};
	struct limbo_buf *lb = limbo();
	pthread_t t[2];
	uint32_t cursor = 0;

	cr_assert_eq(eg_nat_addr_set(r.n, POOL1, 0, 1, NULL), 0);
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, reader, &r);
	/* Rounds of: make flows, let them all expire, unlink them, wait for both readers to
	 * finish a loop, free. Records are reused round after round. */
	for (unsigned round = 0; round < 300; round++) {
		uint64_t snap[2];

		for (unsigned f = 0; f < 600; f++) {
			struct eg_nat_flow fl = {
				.proto = EG_NAT_UDP, .in_addr = A(10, 0, 0, 1 + (uint32_t)(rnd() % 4)),
				.in_port = (uint16_t)(rnd() % 256), .rem_addr = REMOTE1,
			};
			uint32_t s;

			eg_nat_create(r.n, &fl, 0, rnd(), &s);
		}
		r.n->now_s += 1000;
		while (eg_nat_sweep(r.n, &cursor, 256, &lb->l) > 0 || r.n->sessions > 0)
			;
		for (int i = 0; i < 2; i++)
			snap[i] = __atomic_load_n(&r.loops[i], __ATOMIC_ACQUIRE);
		while (!passed(&r, snap))
			sched_yield();
		eg_nat_limbo_free(r.n, &lb->l);
	}
	r.stop = true;
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(r.bad[0] + r.bad[1], 0, "readers saw a record of another flow");
	cr_assert_gt(r.found[0] + r.found[1], 0, "readers found sessions");
	cr_assert_eq(r.n->sessions, 0);
	cr_assert_eq(r.n->blocks, 0);
	free(lb);
	free(r.n);
}
