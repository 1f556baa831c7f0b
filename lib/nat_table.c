#include "nat_table.h"

#include <errno.h>
#include <string.h>

static size_t align64(size_t v)
{
	return (v + 63) & ~(size_t)63;
}

static uint32_t pow2_at_least(uint32_t v)
{
	uint32_t p = 1;

	while (p < v && p < (1u << 31))
		p <<= 1;
	return p;
}

/* Layout: header, addresses, hosts, mappings, sessions, then the four bucket arrays and
 * the event ring. Buckets are one per record, rounded up to a power of two. */
static size_t layout(const struct eg_nat_params *p, struct eg_nat_hdr *n)
{
	size_t off = align64(sizeof(struct eg_nat_hdr));
	uint32_t buckets = pow2_at_least(p->sessions), host_buckets = pow2_at_least(p->hosts);

	n->addrs_off = off;
	off = align64(off + sizeof(struct eg_nat_addr) * EG_NAT_MAX_ADDRS);
	n->hosts_off = off;
	off = align64(off + sizeof(struct eg_nat_host) * p->hosts);
	n->maps_off = off;
	off = align64(off + sizeof(struct eg_nat_mapping) * p->sessions);
	n->sess_off = off;
	off = align64(off + sizeof(struct eg_nat_session) * p->sessions);
	n->host_bkt_off = off;
	off = align64(off + sizeof(uint32_t) * host_buckets);
	n->map_bkt_off = off;
	off = align64(off + sizeof(uint32_t) * buckets);
	n->out_bkt_off = off;
	off = align64(off + sizeof(uint32_t) * buckets);
	n->in_bkt_off = off;
	off = align64(off + sizeof(uint32_t) * buckets);
	n->events_off = off;
	off = align64(off + sizeof(struct eg_nat_event) * EG_NAT_EVENTS);
	n->bucket_mask = buckets - 1;
	n->host_bucket_mask = host_buckets - 1;
	return off;
}

size_t eg_nat_region_size(const struct eg_nat_params *p)
{
	struct eg_nat_hdr scratch;

	return layout(p, &scratch);
}

void eg_nat_region_init(struct eg_nat_hdr *n, const struct eg_nat_params *p, uint64_t seed)
{
	n->p = *p;
	layout(p, n);
	n->seed = seed;
	n->blocks_per_addr = (65536 - EG_NAT_PORT_FIRST) / p->ports_per_block;
	n->sess_free = n->map_free = n->host_free = EG_NAT_NONE;
	/* Empty chains are EG_NAT_NONE (all ones): the bucket arrays are filled, the records
	 * are not touched until used, so a large region costs memory only as it fills. */
	memset(EG_NAT_AT(n, n->host_bkt_off, uint32_t), 0xff, sizeof(uint32_t) * (n->host_bucket_mask + 1));
	memset(EG_NAT_AT(n, n->map_bkt_off, uint32_t), 0xff, sizeof(uint32_t) * (n->bucket_mask + 1));
	memset(EG_NAT_AT(n, n->out_bkt_off, uint32_t), 0xff, sizeof(uint32_t) * (n->bucket_mask + 1));
	memset(EG_NAT_AT(n, n->in_bkt_off, uint32_t), 0xff, sizeof(uint32_t) * (n->bucket_mask + 1));
}

static void lock(struct eg_nat_hdr *n)
{
	while (__atomic_exchange_n(&n->lock, 1, __ATOMIC_ACQUIRE))
		while (__atomic_load_n(&n->lock, __ATOMIC_RELAXED))
#if defined(__x86_64__) || defined(__i386__)
			__builtin_ia32_pause();
#else
			;
#endif
}

static void unlock(struct eg_nat_hdr *n)
{
	__atomic_store_n(&n->lock, 0, __ATOMIC_RELEASE);
}

/* A TCP session is established once both sides sent a SYN, until a RST or both FINs
 * (RFC 5382 section 5: the rest is the transitory time). */
static bool tcp_established(const struct eg_nat_session *s)
{
	uint8_t out = __atomic_load_n(&s->flags_out, __ATOMIC_RELAXED);
	uint8_t in = __atomic_load_n(&s->flags_in, __ATOMIC_RELAXED);

	return (out & in & EG_NAT_SYN) && !((out | in) & EG_NAT_RST) && !(out & in & EG_NAT_FIN);
}

uint32_t eg_nat_session_timeout(const struct eg_nat_hdr *n, const struct eg_nat_session *s)
{
	switch (s->proto) {
	case EG_NAT_TCP:
		return n->p.timeout_s[tcp_established(s) ? EG_NAT_T_TCP_ESTABLISHED : EG_NAT_T_TCP_TRANSITORY];
	case EG_NAT_UDP:
		return n->p.timeout_s[EG_NAT_T_UDP];
	default:
		return n->p.timeout_s[EG_NAT_T_ICMP];
	}
}

const char *eg_nat_session_state_name(const struct eg_nat_session *s)
{
	if (s->proto == EG_NAT_UDP)
		return "udp";
	if (s->proto == EG_NAT_ICMP)
		return "icmp";
	return tcp_established(s) ? "established" : "transitory";
}

/* ---- records ---- */

/* Free lists run through each record's first field (its chain link, unused while free):
 * records of stride bytes from recs. */
_Static_assert(offsetof(struct eg_nat_host, next) == 0, "free-list link first");
_Static_assert(offsetof(struct eg_nat_mapping, next) == 0, "free-list link first");
_Static_assert(offsetof(struct eg_nat_session, next_out) == 0, "free-list link first");

static uint32_t *link_of(void *recs, size_t stride, uint32_t i)
{
	return (uint32_t *)((uint8_t *)recs + stride * i);
}

/* A record from the free list, else a never-used one below cap, else EG_NAT_NONE. */
static uint32_t take(uint32_t *free_head, uint32_t *high, uint32_t cap, void *recs, size_t stride)
{
	uint32_t i = *free_head;

	if (i != EG_NAT_NONE) {
		*free_head = *link_of(recs, stride, i);
		return i;
	}
	return *high < cap ? (*high)++ : EG_NAT_NONE;
}

static void give_back(uint32_t *free_head, void *recs, size_t stride, uint32_t i)
{
	*link_of(recs, stride, i) = *free_head;
	*free_head = i;
}

static uint32_t host_hash(const struct eg_nat_hdr *n, uint32_t in_addr, uint16_t egress)
{
	return (uint32_t)eg_nat_mix(n->seed ^ 0x5bd1e995u, (uint64_t)in_addr << 16 | egress);
}

static uint32_t map_hash(const struct eg_nat_hdr *n, uint8_t proto, uint32_t in_addr, uint16_t in_port,
			 uint16_t egress)
{
	return (uint32_t)eg_nat_mix(n->seed + 0x27d4eb2fu,
				    (uint64_t)in_addr << 32 | (uint64_t)proto << 30 | (uint64_t)egress << 16 | in_port);
}

static uint32_t find_host(const struct eg_nat_hdr *n, uint32_t in_addr, uint16_t egress)
{
	const uint32_t *bkt = EG_NAT_AT(n, n->host_bkt_off, uint32_t);
	const struct eg_nat_host *h = eg_nat_hosts(n);

	for (uint32_t i = bkt[host_hash(n, in_addr, egress) & n->host_bucket_mask]; i != EG_NAT_NONE; i = h[i].next)
		if (h[i].in_addr == in_addr && h[i].egress == egress)
			return i;
	return EG_NAT_NONE;
}

static uint32_t find_mapping(const struct eg_nat_hdr *n, uint8_t proto, uint32_t in_addr, uint16_t in_port,
			     uint16_t egress)
{
	const uint32_t *bkt = EG_NAT_AT(n, n->map_bkt_off, uint32_t);
	const struct eg_nat_mapping *m = eg_nat_mappings(n);

	for (uint32_t i = bkt[map_hash(n, proto, in_addr, in_port, egress) & n->bucket_mask]; i != EG_NAT_NONE;
	     i = m[i].next)
		if (m[i].in_addr == in_addr && m[i].in_port == in_port && m[i].proto == proto && m[i].egress == egress)
			return i;
	return EG_NAT_NONE;
}

/* Walks a chain for the link that points at idx; next_at gives a record's link field. */
#define UNLINK(head, arr, field, idx)                                                          \
	do {                                                                                   \
		uint32_t *link_ = (head);                                                      \
		while (*link_ != EG_NAT_NONE && *link_ != (idx))                               \
			link_ = &(arr)[*link_].field;                                          \
		if (*link_ == (idx))                                                           \
			__atomic_store_n(link_, (arr)[idx].field, __ATOMIC_RELEASE);           \
	} while (0)

static void event(struct eg_nat_hdr *n, bool released, const struct eg_nat_host *h, uint16_t block)
{
	struct eg_nat_event *ev = EG_NAT_AT(n, n->events_off, struct eg_nat_event);
	struct eg_nat_event *e = &ev[n->events_head % EG_NAT_EVENTS];
	uint32_t lo = EG_NAT_PORT_FIRST + (uint32_t)block * n->p.ports_per_block;

	*e = (struct eg_nat_event){
		.released = released,
		.egress = h->egress,
		.in_addr = h->in_addr,
		.out_addr = eg_nat_addrs(n)[h->addr].addr,
		.port_lo = (uint16_t)lo,
		.port_hi = (uint16_t)(lo + n->p.ports_per_block - 1),
		.at_s = __atomic_load_n(&n->now_s, __ATOMIC_RELAXED),
	};
	__atomic_store_n(&n->events_head, n->events_head + 1, __ATOMIC_RELEASE);
}

/* The first clear bit of words[] in [from, to) scanning from start (wrapping), or -1. */
static int32_t first_clear(const uint64_t *words, uint32_t from, uint32_t to, uint32_t start)
{
	uint32_t span = to - from;

	for (uint32_t k = 0; k < span; k++) {
		uint32_t b = from + (start - from + k) % span;

		/* Whole words at once where the scan is aligned. */
		if ((b & 63) == 0 && b + 64 <= to && k + 64 <= span && words[b >> 6] == UINT64_MAX) {
			k += 63;
			continue;
		}
		if (!(words[b >> 6] & (1ull << (b & 63))))
			return (int32_t)b;
	}
	return -1;
}

static bool grant_block(struct eg_nat_hdr *n, struct eg_nat_host *h, uint64_t rnd)
{
	struct eg_nat_addr *a = &eg_nat_addrs(n)[h->addr];
	int32_t b;

	if (h->n_blocks >= n->p.blocks_per_host || a->blocks_used >= n->blocks_per_addr)
		return false;
	b = first_clear(a->block_used, 0, n->blocks_per_addr, (uint32_t)(rnd % n->blocks_per_addr));
	if (b < 0)
		return false;
	a->block_used[b >> 6] |= 1ull << (b & 63);
	a->blocks_used++;
	n->blocks++;
	h->blocks[h->n_blocks++] = (uint16_t)b;
	event(n, false, h, (uint16_t)b);
	return true;
}

/* A new host record on one of egress's active pool addresses with a free block, chosen
 * from a random starting point. */
static enum eg_nat_result new_host(struct eg_nat_hdr *n, uint32_t in_addr, uint16_t egress, uint64_t rnd,
				   uint32_t *out)
{
	struct eg_nat_addr *a = eg_nat_addrs(n);
	struct eg_nat_host *hs = eg_nat_hosts(n);
	uint32_t high = n->n_addrs, pick = EG_NAT_NONE, i;
	uint32_t *bkt = EG_NAT_AT(n, n->host_bkt_off, uint32_t);

	for (uint32_t k = 0; k < high && pick == EG_NAT_NONE; k++) {
		i = (uint32_t)((rnd >> 20) + k) % high;
		if (a[i].state == EG_NAT_ADDR_ACTIVE && a[i].egress == egress && a[i].blocks_used < n->blocks_per_addr)
			pick = i;
	}
	if (pick == EG_NAT_NONE)
		return EG_NAT_POOL;
	i = take(&n->host_free, &n->host_high, n->p.hosts, hs, sizeof(*hs));
	if (i == EG_NAT_NONE)
		return EG_NAT_FULL;
	struct eg_nat_host *h = &hs[i];
	uint32_t b = host_hash(n, in_addr, egress) & n->host_bucket_mask;

	*h = (struct eg_nat_host){.in_addr = in_addr, .egress = egress, .addr = (uint16_t)pick, .linked = 1};
	if (!grant_block(n, h, rnd)) {	/* cannot fail: pick has a free block */
		give_back(&n->host_free, hs, sizeof(*hs), i);
		return EG_NAT_POOL;
	}
	a[pick].hosts++;
	n->hosts++;
	h->next = bkt[b];
	__atomic_store_n(&bkt[b], i, __ATOMIC_RELEASE);
	*out = i;
	return EG_NAT_OK;
}

/* A free port for proto in the host's blocks (visited from a random one, each from a random
 * offset), granting the host another block when those are full. */
static enum eg_nat_result new_port(struct eg_nat_hdr *n, struct eg_nat_host *h, uint8_t proto, uint64_t rnd,
				   uint16_t *port)
{
	uint64_t *used = eg_nat_addrs(n)[h->addr].port_used[proto];
	uint32_t ppb = n->p.ports_per_block;

	for (int round = 0; round < 2; round++) {
		for (uint32_t k = 0; k < h->n_blocks; k++) {
			uint32_t blk = h->blocks[(uint32_t)(rnd + k) % h->n_blocks];
			uint32_t lo = EG_NAT_PORT_FIRST + blk * ppb;
			int32_t p = first_clear(used, lo, lo + ppb, lo + (uint32_t)(rnd >> 32) % ppb);

			if (p >= 0) {
				used[p >> 6] |= 1ull << (p & 63);
				*port = (uint16_t)p;
				return EG_NAT_OK;
			}
		}
		if (round == 0 && !grant_block(n, h, rnd >> 8)) {
			struct eg_nat_addr *a = &eg_nat_addrs(n)[h->addr];

			return h->n_blocks >= n->p.blocks_per_host || a->blocks_used < n->blocks_per_addr
				       ? EG_NAT_HOST_PORTS
				       : EG_NAT_POOL;
		}
	}
	return EG_NAT_HOST_PORTS;
}

static enum eg_nat_result new_mapping(struct eg_nat_hdr *n, const struct eg_nat_flow *f, uint64_t rnd,
				      uint32_t *out)
{
	struct eg_nat_mapping *ms = eg_nat_mappings(n);
	struct eg_nat_host *hs = eg_nat_hosts(n);
	uint32_t h = find_host(n, f->in_addr, f->egress), i;
	uint32_t *bkt = EG_NAT_AT(n, n->map_bkt_off, uint32_t);
	enum eg_nat_result r;
	uint16_t port;

	if (h == EG_NAT_NONE && (r = new_host(n, f->in_addr, f->egress, rnd, &h)) != EG_NAT_OK)
		return r;
	/* The record first: a full table must not cost the host a port. */
	i = take(&n->map_free, &n->map_high, n->p.sessions, ms, sizeof(*ms));
	if (i == EG_NAT_NONE)
		return EG_NAT_FULL;
	if ((r = new_port(n, &hs[h], f->proto, rnd, &port)) != EG_NAT_OK) {
		give_back(&n->map_free, ms, sizeof(*ms), i);
		return r;
	}
	uint32_t b = map_hash(n, f->proto, f->in_addr, f->in_port, f->egress) & n->bucket_mask;

	ms[i] = (struct eg_nat_mapping){
		.host = h, .in_addr = f->in_addr, .in_port = f->in_port, .out_port = port, .egress = f->egress,
		.addr = hs[h].addr, .proto = f->proto, .linked = 1, .next = bkt[b],
	};
	hs[h].mappings++;
	n->mappings++;
	__atomic_store_n(&bkt[b], i, __ATOMIC_RELEASE);
	*out = i;
	return EG_NAT_OK;
}

enum eg_nat_result eg_nat_create(struct eg_nat_hdr *n, const struct eg_nat_flow *f, uint8_t worker, uint64_t rnd,
				 uint32_t *session)
{
	struct eg_nat_session *ss = eg_nat_sessions(n);
	struct eg_nat_mapping *ms = eg_nat_mappings(n);
	enum eg_nat_result r = EG_NAT_OK;
	uint32_t s, m;

	lock(n);
	/* Another worker may have made it since the caller looked. */
	s = eg_nat_find_out(n, f->proto, f->in_addr, f->in_port, f->rem_addr, f->egress);
	if (s != EG_NAT_NONE)
		goto out;
	m = find_mapping(n, f->proto, f->in_addr, f->in_port, f->egress);
	/* The session record before a mapping, so that running out of records leaves no
	 * mapping behind without sessions. */
	s = take(&n->sess_free, &n->sess_high, n->p.sessions, ss, sizeof(*ss));
	if (s == EG_NAT_NONE) {
		r = EG_NAT_FULL;
		goto out;
	}
	if (m == EG_NAT_NONE && (r = new_mapping(n, f, rnd, &m)) != EG_NAT_OK) {
		give_back(&n->sess_free, ss, sizeof(*ss), s);
		s = EG_NAT_NONE;
		goto out;
	}

	const struct eg_nat_mapping *mp = &ms[m];
	uint32_t out_addr = eg_nat_addrs(n)[mp->addr].addr;
	uint32_t *obkt = EG_NAT_AT(n, n->out_bkt_off, uint32_t), *ibkt = EG_NAT_AT(n, n->in_bkt_off, uint32_t);
	uint32_t ob = eg_nat_hash_out(n, f->proto, f->in_addr, f->in_port, f->rem_addr, f->egress) & n->bucket_mask;
	uint32_t ib = eg_nat_hash_in(n, f->proto, out_addr, mp->out_port, f->rem_addr) & n->bucket_mask;
	uint32_t now = __atomic_load_n(&n->now_s, __ATOMIC_RELAXED);

	ss[s] = (struct eg_nat_session){
		.next_out = obkt[ob], .next_in = ibkt[ib], .map = m,
		.in_addr = f->in_addr, .out_addr = out_addr, .rem_addr = f->rem_addr,
		.in_port = f->in_port, .out_port = mp->out_port, .rem_port = f->rem_port,
		.egress = f->egress, .proto = f->proto, .linked = 1, .worker = worker,
		.created_s = now, .last_s = now,
	};
	ms[m].sessions++;
	n->sessions++;
	n->created++;
	/* Whole before visible: both links are release stores of a finished record. */
	__atomic_store_n(&obkt[ob], s, __ATOMIC_RELEASE);
	__atomic_store_n(&ibkt[ib], s, __ATOMIC_RELEASE);
out:
	unlock(n);
	*session = s;
	return r;
}

/* ---- ending ---- */

static bool limbo_room(const struct eg_nat_limbo *l)
{
	return l->n_sess < l->cap && l->n_maps < l->cap && l->n_hosts < l->cap;
}

static void unlink_host(struct eg_nat_hdr *n, uint32_t h)
{
	struct eg_nat_host *hs = eg_nat_hosts(n);
	uint32_t *bkt = EG_NAT_AT(n, n->host_bkt_off, uint32_t);

	if (!hs[h].linked)
		return;
	UNLINK(&bkt[host_hash(n, hs[h].in_addr, hs[h].egress) & n->host_bucket_mask], hs, next, h);
	hs[h].linked = 0;
}

/* Unlinks session s; its mapping and host follow when s was their last. Lock held. */
static void end_session(struct eg_nat_hdr *n, uint32_t s, struct eg_nat_limbo *l)
{
	struct eg_nat_session *ss = eg_nat_sessions(n);
	struct eg_nat_mapping *ms = eg_nat_mappings(n);
	struct eg_nat_host *hs = eg_nat_hosts(n);
	struct eg_nat_session *x = &ss[s];
	uint32_t *obkt = EG_NAT_AT(n, n->out_bkt_off, uint32_t), *ibkt = EG_NAT_AT(n, n->in_bkt_off, uint32_t);

	UNLINK(&obkt[eg_nat_hash_out(n, x->proto, x->in_addr, x->in_port, x->rem_addr, x->egress) & n->bucket_mask],
	       ss, next_out, s);
	UNLINK(&ibkt[eg_nat_hash_in(n, x->proto, x->out_addr, x->out_port, x->rem_addr) & n->bucket_mask], ss,
	       next_in, s);
	x->linked = 0;
	n->sessions--;
	l->sess[l->n_sess++] = s;

	struct eg_nat_mapping *m = &ms[x->map];

	if (--m->sessions)
		return;
	UNLINK(&EG_NAT_AT(n, n->map_bkt_off, uint32_t)[map_hash(n, m->proto, m->in_addr, m->in_port, m->egress) &
							n->bucket_mask],
	       ms, next, x->map);
	m->linked = 0;
	n->mappings--;
	l->maps[l->n_maps++] = x->map;

	struct eg_nat_host *h = &hs[m->host];

	if (--h->mappings)
		return;
	unlink_host(n, m->host);
	n->hosts--;
	l->hosts[l->n_hosts++] = m->host;
}

unsigned eg_nat_sweep(struct eg_nat_hdr *n, uint32_t *cursor, uint32_t budget, struct eg_nat_limbo *l)
{
	struct eg_nat_session *ss = eg_nat_sessions(n);
	const struct eg_nat_addr *a = eg_nat_addrs(n);
	uint32_t now = __atomic_load_n(&n->now_s, __ATOMIC_RELAXED);
	unsigned ended = 0;

	lock(n);
	uint32_t high = n->sess_high;

	for (uint32_t k = 0; k < budget && k < high && limbo_room(l); k++) {
		uint32_t s = *cursor >= high ? 0 : *cursor;
		struct eg_nat_session *x = &ss[s];

		*cursor = s + 1;
		if (!x->linked)
			continue;
		bool retired = a[eg_nat_mappings(n)[x->map].addr].state != EG_NAT_ADDR_ACTIVE;

		/* Signed: a worker may stamp a second newer than the clock read above. */
		if (!retired && (int32_t)(now - __atomic_load_n(&x->last_s, __ATOMIC_RELAXED)) <=
					(int32_t)eg_nat_session_timeout(n, x))
			continue;
		end_session(n, s, l);
		if (retired)
			n->ended++;
		else
			n->expired++;
		ended++;
	}
	unlock(n);
	return ended;
}

void eg_nat_limbo_free(struct eg_nat_hdr *n, struct eg_nat_limbo *l)
{
	struct eg_nat_session *ss = eg_nat_sessions(n);
	struct eg_nat_mapping *ms = eg_nat_mappings(n);
	struct eg_nat_host *hs = eg_nat_hosts(n);
	struct eg_nat_addr *as = eg_nat_addrs(n);

	lock(n);
	for (uint32_t k = 0; k < l->n_sess; k++)
		give_back(&n->sess_free, ss, sizeof(*ss), l->sess[k]);
	for (uint32_t k = 0; k < l->n_maps; k++) {
		struct eg_nat_mapping *m = &ms[l->maps[k]];
		uint16_t p = m->out_port;

		as[m->addr].port_used[m->proto][p >> 6] &= ~(1ull << (p & 63));
		give_back(&n->map_free, ms, sizeof(*ms), l->maps[k]);
	}
	/* A host's blocks go back once its mappings (freed above or earlier) are gone. */
	for (uint32_t k = 0; k < l->n_hosts; k++) {
		struct eg_nat_host *h = &hs[l->hosts[k]];
		struct eg_nat_addr *a = &as[h->addr];

		for (unsigned b = 0; b < h->n_blocks; b++) {
			event(n, true, h, h->blocks[b]);
			a->block_used[h->blocks[b] >> 6] &= ~(1ull << (h->blocks[b] & 63));
			a->blocks_used--;
			n->blocks--;
		}
		h->n_blocks = 0;
		if (--a->hosts == 0 && a->state == EG_NAT_ADDR_RETIRED)
			__atomic_store_n(&a->state, EG_NAT_ADDR_FREE, __ATOMIC_RELEASE);
		give_back(&n->host_free, hs, sizeof(*hs), l->hosts[k]);
	}
	l->n_sess = l->n_maps = l->n_hosts = 0;
	unlock(n);
}

/* ---- pool addresses ---- */

/* Hosts on address i leave their chain: their next flows find no host and start on
 * another address. Lock held. */
static void unlink_hosts_of(struct eg_nat_hdr *n, uint32_t i)
{
	struct eg_nat_host *hs = eg_nat_hosts(n);

	for (uint32_t h = 0; h < n->host_high; h++)
		if (hs[h].linked && hs[h].addr == i)
			unlink_host(n, h);
}

static void retire(struct eg_nat_hdr *n, uint32_t i)
{
	struct eg_nat_addr *a = &eg_nat_addrs(n)[i];

	__atomic_store_n(&a->state, a->hosts ? EG_NAT_ADDR_RETIRED : EG_NAT_ADDR_FREE, __ATOMIC_RELEASE);
	unlink_hosts_of(n, i);
}

int eg_nat_addr_set(struct eg_nat_hdr *n, uint32_t addr, uint16_t egress, uint16_t port, bool *started)
{
	struct eg_nat_addr *as = eg_nat_addrs(n);
	uint32_t i = eg_nat_addr_find(n, addr), fresh = EG_NAT_NONE;
	int rc = 0;

	if (started)
		*started = false;
	lock(n);
	if (i != EG_NAT_NONE && as[i].state == EG_NAT_ADDR_ACTIVE && as[i].egress == egress) {
		as[i].port = port;
		goto out;
	}
	/* Another egress's, or retired and still draining: that record drains on its own and
	 * the address starts over in a fresh one. */
	if (i != EG_NAT_NONE && as[i].state == EG_NAT_ADDR_ACTIVE)
		retire(n, i);
	for (uint32_t k = 0; k < EG_NAT_MAX_ADDRS && fresh == EG_NAT_NONE; k++)
		if (__atomic_load_n(&as[k].state, __ATOMIC_RELAXED) == EG_NAT_ADDR_FREE)
			fresh = k;
	if (fresh == EG_NAT_NONE) {
		rc = -ENOSPC;
		goto out;
	}
	struct eg_nat_addr *a = &as[fresh];

	/* Bitmaps of a freed record are clear already (every block and port went back). */
	a->addr = addr;
	a->egress = egress;
	a->port = port;
	a->blocks_used = 0;
	a->hosts = 0;
	__atomic_store_n(&a->state, EG_NAT_ADDR_ACTIVE, __ATOMIC_RELEASE);
	if (fresh >= n->n_addrs)
		__atomic_store_n(&n->n_addrs, fresh + 1, __ATOMIC_RELEASE);
	if (started)
		*started = true;
out:
	unlock(n);
	return rc;
}

unsigned eg_nat_addr_retire_others(struct eg_nat_hdr *n, const uint32_t *keep, unsigned n_keep)
{
	struct eg_nat_addr *as = eg_nat_addrs(n);
	unsigned retired = 0;

	lock(n);
	for (uint32_t i = 0; i < n->n_addrs; i++) {
		bool kept = false;

		if (as[i].state != EG_NAT_ADDR_ACTIVE)
			continue;
		for (unsigned k = 0; k < n_keep && !kept; k++)
			kept = keep[k] == as[i].addr;
		if (!kept) {
			retire(n, i);
			retired++;
		}
	}
	unlock(n);
	return retired;
}

unsigned eg_nat_events_read(const struct eg_nat_hdr *n, uint64_t *tail, struct eg_nat_event *out, unsigned max,
			    uint64_t *lost)
{
	const struct eg_nat_event *ev = EG_NAT_AT(n, n->events_off, const struct eg_nat_event);
	uint64_t head = __atomic_load_n(&n->events_head, __ATOMIC_ACQUIRE);
	unsigned got = 0;

	if (head - *tail > EG_NAT_EVENTS) {
		*lost += head - *tail - EG_NAT_EVENTS;
		*tail = head - EG_NAT_EVENTS;
	}
	while (*tail < head && got < max)
		out[got++] = ev[(*tail)++ % EG_NAT_EVENTS];
	return got;
}
