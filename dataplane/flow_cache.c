/* The flow cache's slow paths: making room for a new flow, new rules, memory (see
 * flow_cache.h). */
#include "flow_cache.h"

#include <stdlib.h>
#include <sys/mman.h>

#include "flow_select.h"

enum { HUGE_PAGE = 2 << 20 };

#define EPOCH_MAX ((1u << DP_FLOW_EPOCH_BITS) - 1)

struct dp_flow_cache *dp_flow_cache_create(uint32_t flows)
{
	struct dp_flow_cache *c;
	void *m;

	if (flows < DP_FLOW_MIN_FLOWS || flows > DP_FLOW_MAX_FLOWS || !(c = calloc(1, sizeof(*c))))
		return NULL;
	/* Half the IPv4 slots taken when every flow is in: see flow_cache.h. */
	c->n_buckets = (uint32_t)(((uint64_t)flows * 2 + DP_FLOW_V4_PER_BUCKET - 1) / DP_FLOW_V4_PER_BUCKET);
	c->map_len = ((size_t)c->n_buckets * sizeof(struct dp_flow_bucket) + HUGE_PAGE - 1) & ~(size_t)(HUGE_PAGE - 1);
	m = mmap(NULL, c->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		free(c);
		return NULL;
	}
	/* Best effort: without huge pages the cache works, with a TLB miss per lookup. */
	(void)madvise(m, c->map_len, MADV_HUGEPAGE);
	c->b = m;
	c->epoch = 1;
	return c;
}

void dp_flow_cache_free(struct dp_flow_cache *c)
{
	if (!c)
		return;
	munmap(c->b, c->map_len);
	free(c);
}

void dp_flow_new_rules(struct dp_flow_cache *c, uint64_t classifier_id)
{
	c->classifier_id = classifier_id;
	if (++c->epoch <= EPOCH_MAX)
		return;
	/* Half a billion rule changes on: tags from the first epochs could match again. */
	memset(c->b, 0, (size_t)c->n_buckets * sizeof(*c->b));
	c->epoch = 1;
}

/* Live IPv4 entries in b; DP_FLOW_V4_PER_BUCKET when it holds an IPv6 flow (full). */
static unsigned v4_entries(const struct dp_flow_cache *c, const struct dp_flow_bucket *b)
{
	if (!dp_flow_live(c, b))
		return 0;
	return b->tag & 4 ? DP_FLOW_V4_PER_BUCKET : b->tag & 3;
}

static void set_tag(const struct dp_flow_cache *c, struct dp_flow_bucket *b, bool v6, unsigned entries)
{
	b->tag = c->epoch << 3 | (uint32_t)v6 << 2 | entries;
}

static void append_v4(const struct dp_flow_cache *c, struct dp_flow_bucket *b, const struct dp_flow_v4 *e)
{
	unsigned n = v4_entries(c, b);

	b->v4[n] = *e;
	set_tag(c, b, false, n + 1);
}

/* The other bucket an IPv4 entry in bucket `in` may live in: its key hashed again. */
static uint32_t other_bucket(const struct dp_flow_cache *c, const struct dp_flow_v4 *e, uint32_t in)
{
	struct eg_flow_key k = {
		.family = EG_AF_INET,
		.sport = (uint16_t)e->key[2], .dport = (uint16_t)(e->key[2] >> 16),
		.proto = (uint8_t)e->key[3], .dscp = (uint8_t)(e->key[3] >> 8), .in_port = (uint16_t)(e->key[3] >> 16),
	};
	uint32_t b1, b2;

	memcpy(k.src, &e->key[0], 4);
	memcpy(k.dst, &e->key[1], 4);
	dp_flow_buckets(c, eg_flow_hash(&k), &b1, &b2);
	return b1 == in ? b2 : b1;
}

/* Frees a slot in the full IPv4 bucket `in` by moving one of its entries to its other
 * bucket, if that has room. Returns the freed slot's index, or -1. */
static int relocate_one(struct dp_flow_cache *c, uint32_t in)
{
	struct dp_flow_bucket *b = &c->b[in];

	for (unsigned i = 0; i < DP_FLOW_V4_PER_BUCKET; i++) {
		struct dp_flow_bucket *o = &c->b[other_bucket(c, &b->v4[i], in)];

		if (v4_entries(c, o) < DP_FLOW_V4_PER_BUCKET) {
			append_v4(c, o, &b->v4[i]);
			c->relocations++;
			return (int)i;
		}
	}
	return -1;
}

static void insert_v4(struct dp_flow_cache *c, const struct dp_flow_v4 *e, uint64_t h, uint32_t b1, uint32_t b2)
{
	struct dp_flow_bucket *x = &c->b[b1], *y = &c->b[b2];
	unsigned nx = v4_entries(c, x), ny = v4_entries(c, y);
	int slot;

	if (nx < DP_FLOW_V4_PER_BUCKET || ny < DP_FLOW_V4_PER_BUCKET) {
		append_v4(c, nx <= ny ? x : y, e);
		return;
	}
	/* Both full. A bucket holding an IPv6 flow is given up whole, three IPv4 slots for
	 * one flow; otherwise a resident moves over if it can, or one is evicted, picked by
	 * the hash so that flows cycling through a full pair do not all miss. */
	if (x->tag & 4 || y->tag & 4) {
		struct dp_flow_bucket *v6 = x->tag & 4 ? x : y;

		v6->v4[0] = *e;
		set_tag(c, v6, false, 1);
		c->evictions++;
		return;
	}
	if ((slot = relocate_one(c, b1)) >= 0) {
		x->v4[slot] = *e;
		return;
	}
	if ((slot = relocate_one(c, b2)) >= 0) {
		y->v4[slot] = *e;
		return;
	}
	(h >> 63 ? x : y)->v4[(h >> 40) % DP_FLOW_V4_PER_BUCKET] = *e;
	c->evictions++;
}

/* An IPv6 flow takes a bucket of its own: an empty one, one holding another IPv6 flow, or
 * failing those the one with fewer IPv4 flows, whose entries go. */
static void insert_v6(struct dp_flow_cache *c, const struct dp_flow_v6 *e, uint32_t b1, uint32_t b2)
{
	struct dp_flow_bucket *x = &c->b[b1], *y = &c->b[b2], *to;

	if (!dp_flow_live(c, x) || !dp_flow_live(c, y))
		to = !dp_flow_live(c, x) ? x : y;
	else if (x->tag & 4 || y->tag & 4)
		to = x->tag & 4 ? x : y;
	else
		to = (x->tag & 3) <= (y->tag & 3) ? x : y;
	if (dp_flow_live(c, to))
		c->evictions += to->tag & 4 ? 1 : to->tag & 3;
	to->v6 = *e;
	set_tag(c, to, true, 1);
}

void dp_flow_insert(struct dp_flow_cache *c, const struct eg_flow_key *k, uint64_t h, uint32_t policy)
{
	uint32_t b1, b2;

	c->misses++;
	dp_flow_buckets(c, h, &b1, &b2);
	if (k->family == EG_AF_INET6) {
		struct dp_flow_v6 e = {.policy = policy};

		dp_flow_compact(k, e.key);
		insert_v6(c, &e, b1, b2);
	} else {
		struct dp_flow_v4 e = {.policy = policy};

		dp_flow_compact(k, e.key);
		insert_v4(c, &e, h, b1, b2);
	}
}
