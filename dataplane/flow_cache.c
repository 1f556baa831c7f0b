/* The flow cache's slow paths: making room for a new flow, new rules, memory (see
 * flow_cache.h). */
#include "flow_cache.h"

#include <stdlib.h>
#include <sys/mman.h>
#include <sys/random.h>

#include "flow_select.h"

enum { HUGE_PAGE = 2 << 20 };

#define EPOCH_MAX ((1u << DP_FLOW_EPOCH_BITS) - 1)

/* Buckets for flows flows: half the IPv4 slots taken when every flow is in (see
 * flow_cache.h). */
static uint32_t buckets_for(uint32_t flows)
{
	return (uint32_t)(((uint64_t)flows * 2 + DP_FLOW_V4_PER_BUCKET - 1) / DP_FLOW_V4_PER_BUCKET);
}

struct dp_flow_cache *dp_flow_cache_create(uint32_t flows)
{
	struct dp_flow_cache *c;
	void *m;

	if (flows < DP_FLOW_MIN_FLOWS || flows > DP_FLOW_MAX_FLOWS || !(c = calloc(1, sizeof(*c))))
		return NULL;
	c->max_buckets = buckets_for(flows);
	c->n_buckets = buckets_for(flows < DP_FLOW_START_FLOWS ? flows : DP_FLOW_START_FLOWS);
	c->map_len = ((size_t)c->max_buckets * sizeof(struct dp_flow_bucket) + HUGE_PAGE - 1) & ~(size_t)(HUGE_PAGE - 1);
	m = mmap(NULL, c->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		free(c);
		return NULL;
	}
	/* Best effort: without huge pages the cache works, with a TLB miss per lookup. */
	(void)madvise(m, c->map_len, MADV_HUGEPAGE);
	c->b = m;
	c->epoch = 1;
	/* Secrets of this cache: where flows land, and which residents cuckoo walks move. */
	if (getrandom(c->mul, sizeof(c->mul), 0) != sizeof(c->mul) ||
	    getrandom(&c->rng, sizeof(c->rng), 0) != sizeof(c->rng)) {
		dp_flow_cache_free(c);
		return NULL;
	}
	c->mul[0] |= 1;
	c->mul[1] |= 1;
	c->rng |= 1;			/* xorshift never leaves 0 */
	return c;
}

void dp_flow_cache_free(struct dp_flow_cache *c)
{
	if (!c)
		return;
	munmap(c->b, c->map_len);
	free(c);
}

/* Every entry stale at once. */
static void next_epoch(struct dp_flow_cache *c)
{
	if (++c->epoch <= EPOCH_MAX)
		return;
	/* Half a billion epochs on: tags from the first ones could match again. Only the
	 * buckets in use were ever written. */
	memset(c->b, 0, (size_t)c->n_buckets * sizeof(*c->b));
	c->epoch = 1;
}

void dp_flow_new_rules(struct dp_flow_cache *c, uint64_t classifier_id)
{
	c->classifier_id = classifier_id;
	next_epoch(c);
}

/* Whether the flows outgrew the start size, judged over windows of lookups: when a
 * window's misses are more than an eighth of it and some of them evicted, the cache is
 * full and the flows are coming back to it, so it takes its full configured size, once,
 * and starts over there; the flows return as they are seen. Evictions alone would not
 * say it: with no expiry, entries of ended flows fill any size in time, and a few flows
 * that come and go would grow it too. (Doubling step by step flushed the cache at every
 * step, and a million flows took several passes to settle.) */
static void grow_if_outgrown(struct dp_flow_cache *c)
{
	uint64_t window = c->lookups - c->window.lookups;

	if (c->n_buckets == c->max_buckets || window < (uint64_t)DP_FLOW_WINDOW_PER_BUCKET * c->n_buckets)
		return;
	if ((c->misses - c->window.misses) * 8 > window && c->evictions > c->window.evictions) {
		c->n_buckets = c->max_buckets;
		c->grows++;
		next_epoch(c);
	}
	c->window.lookups = c->lookups;
	c->window.misses = c->misses;
	c->window.evictions = c->evictions;
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

/* The flow key a compact key stands for: dp_flow_compact undone. */
static void expand(const uint32_t *w, bool v6, struct eg_flow_key *k)
{
	unsigned a = v6 ? 4 : 1;

	*k = (struct eg_flow_key){
		.family = v6 ? EG_AF_INET6 : EG_AF_INET,
		.sport = (uint16_t)w[2 * a], .dport = (uint16_t)(w[2 * a] >> 16),
		.proto = (uint8_t)w[2 * a + 1], .dscp = (uint8_t)(w[2 * a + 1] >> 8),
		.in_port = (uint16_t)(w[2 * a + 1] >> 16),
	};
	memcpy(k->src, w, 4 * a);
	memcpy(k->dst, w + a, 4 * a);
}

/* The other bucket a resident of bucket `in` may live in: its key hashed again. */
static uint32_t other_bucket(const struct dp_flow_cache *c, const uint32_t *w, bool v6, uint32_t in)
{
	struct eg_flow_key k;
	uint32_t b1, b2;

	expand(w, v6, &k);
	dp_flow_buckets(c, eg_flow_hash(&k), &b1, &b2);
	return b1 == in ? b2 : b1;
}

static bool has_v4_room(const struct dp_flow_cache *c, const struct dp_flow_bucket *b)
{
	return v4_entries(c, b) < DP_FLOW_V4_PER_BUCKET;
}

/* Moves every IPv4 resident of bucket `in` that has room in its other bucket there, and
 * keeps the rest. Returns how many stay. */
static unsigned move_out_v4(struct dp_flow_cache *c, uint32_t in)
{
	struct dp_flow_bucket *b = &c->b[in];
	unsigned n = v4_entries(c, b), kept = 0;

	for (unsigned i = 0; i < n; i++) {
		struct dp_flow_bucket *o = &c->b[other_bucket(c, b->v4[i].key, false, in)];

		if (has_v4_room(c, o)) {
			append_v4(c, o, &b->v4[i]);
			c->relocations++;
		} else {
			b->v4[kept++] = b->v4[i];
		}
	}
	set_tag(c, b, false, kept);
	return kept;
}

/* Moves the IPv6 resident of bucket `in` to its other bucket: if that is free, or becomes
 * free when its IPv4 residents move to theirs (one step each: none can come back to `in`,
 * which has no IPv4 room). */
static bool move_out_v6(struct dp_flow_cache *c, uint32_t in)
{
	struct dp_flow_bucket *b = &c->b[in];
	uint32_t at = other_bucket(c, b->v6.key, true, in);
	struct dp_flow_bucket *o = &c->b[at];

	if (dp_flow_live(c, o) && (o->tag & 4 || move_out_v4(c, at) != 0))
		return false;
	o->v6 = b->v6;
	set_tag(c, o, true, 1);
	set_tag(c, b, false, 0);
	c->relocations++;
	return true;
}

/* Whether bucket `at` has room for one more IPv4 entry, made if need be by moving the
 * IPv6 flow that holds it (move_out_v6). Without that an IPv4 flow whose other bucket an
 * IPv6 flow holds could never move there: with a fifth of the buckets IPv6, walks stopped
 * there and evicted flows at a third of the cache's load. Never called while a bucket is
 * half emptied (move_out_v4): the IPv6 flow's move could fill it. */
static bool make_v4_room(struct dp_flow_cache *c, uint32_t at)
{
	const struct dp_flow_bucket *b = &c->b[at];

	if (has_v4_room(c, b))
		return true;
	return (b->tag & 4) && move_out_v6(c, at);
}

static uint32_t next_random(struct dp_flow_cache *c)
{
	c->rng ^= c->rng << 13;
	c->rng ^= c->rng >> 17;
	c->rng ^= c->rng << 5;
	return c->rng;
}

/* Both of a new IPv4 flow's buckets are full of IPv4 flows, and none of them can simply
 * move: a cuckoo walk. The newcomer takes a random resident's slot, the resident goes to
 * its other bucket, taking a random slot there if that is full too, and so on. A walk
 * that does not end in a free slot within MAX_KICKS evicts the resident in hand: rare
 * while the cache is no more than half full, which is what it is sized for. */
enum { MAX_KICKS = 4 };

static void cuckoo_v4(struct dp_flow_cache *c, struct dp_flow_v4 e, uint32_t at)
{
	uint32_t home = at;
	unsigned home_slot = 0;

	for (unsigned kick = 0; kick < MAX_KICKS; kick++) {
		struct dp_flow_bucket *b = &c->b[at], *o;
		unsigned slot = next_random(c) % DP_FLOW_V4_PER_BUCKET;
		struct dp_flow_v4 out;

		if (kick == 0)
			home_slot = slot;
		else if (at == home && slot == home_slot)	/* the newcomer stays */
			slot = (slot + 1) % DP_FLOW_V4_PER_BUCKET;
		out = b->v4[slot];

		b->v4[slot] = e;
		e = out;
		at = other_bucket(c, e.key, false, at);
		o = &c->b[at];
		c->relocations++;
		if (make_v4_room(c, at)) {
			append_v4(c, o, &e);
			return;
		}
		if (o->tag & 4)		/* an IPv6 flow's, stuck: the walk goes no further */
			break;
	}
	c->evictions++;
}

/* How many times one insert may push a flow out of its bucket when no one-step move
 * makes room: each push hands a whole bucket to a flow and moves its residents on (at
 * most three, each by a walk of at most MAX_KICKS), which may push again. A budget for the
 * whole insert rather than a depth, which would allow 3^depth pushes, so that an insert's
 * work stays bounded. Only on a miss, which pays a classifier lookup too. With 140,000
 * IPv4 and 20,000 IPv6 flows in a cache sized for 200,000, an insert averaged about 200
 * cycles, and budgets of 8 and 4 lost 3 and 7 times as many flows as 16 (with IPv6 flows
 * alone in two fifths of the buckets, 13 and 80 times). */
enum { PUSH_BUDGET = 16 };

static void take_bucket_v6(struct dp_flow_cache *c, const struct dp_flow_v6 *e, uint32_t at, unsigned *budget);
static void rehome_v6(struct dp_flow_cache *c, const struct dp_flow_v6 *e, uint32_t from, unsigned *budget);

static bool spend(unsigned *budget)
{
	if (*budget == 0)
		return false;
	--*budget;
	return true;
}

/* IPv4 flow e takes bucket `at` from the IPv6 flow there, which is pushed on. */
static void push_out_v6(struct dp_flow_cache *c, const struct dp_flow_v4 *e, uint32_t at, unsigned *budget)
{
	struct dp_flow_bucket *b = &c->b[at];
	struct dp_flow_v6 pushed = b->v6;

	set_tag(c, b, false, 0);
	append_v4(c, b, e);
	rehome_v6(c, &pushed, at, budget);
}

/* A resident IPv4 flow put out of bucket `from` goes to its other bucket: into a free slot
 * (make_v4_room), else by a cuckoo walk from there; when an IPv6 flow holds that bucket
 * and cannot simply move, the IPv4 flow takes the bucket and the IPv6 flow is pushed on,
 * while the budget lasts. Otherwise it is evicted. */
static void rehome_v4(struct dp_flow_cache *c, const struct dp_flow_v4 *e, uint32_t from, unsigned *budget)
{
	uint32_t at = other_bucket(c, e->key, false, from);
	struct dp_flow_bucket *o = &c->b[at];

	if (make_v4_room(c, at)) {
		append_v4(c, o, e);
		c->relocations++;
	} else if (!(o->tag & 4)) {
		cuckoo_v4(c, *e, at);
	} else if (!spend(budget)) {
		c->evictions++;
	} else {
		c->relocations++;
		push_out_v6(c, e, at, budget);
	}
}

/* A resident IPv6 flow put out of bucket `from` goes to its other bucket, if that is free
 * or the budget allows pushing its residents on; otherwise it is evicted. */
static void rehome_v6(struct dp_flow_cache *c, const struct dp_flow_v6 *e, uint32_t from, unsigned *budget)
{
	uint32_t at = other_bucket(c, e->key, true, from);

	if (dp_flow_live(c, &c->b[at]) && !spend(budget)) {
		c->evictions++;
		return;
	}
	c->relocations++;
	take_bucket_v6(c, e, at, budget);
}

/* e takes bucket `at`, and whoever lived there moves on: each IPv4 resident to its other
 * bucket, an IPv6 one likewise (rehome_v4, rehome_v6). The newcomer goes in first, so
 * that no move ends in the bucket being emptied: it has no IPv4 room, and an IPv6 flow
 * only enters a bucket another one is pushed out of. */
static void take_bucket_v6(struct dp_flow_cache *c, const struct dp_flow_v6 *e, uint32_t at, unsigned *budget)
{
	struct dp_flow_bucket *b = &c->b[at], was = *b;

	b->v6 = *e;
	set_tag(c, b, true, 1);
	if (!dp_flow_live(c, &was))
		return;
	if (was.tag & 4) {
		rehome_v6(c, &was.v6, at, budget);
		return;
	}
	for (unsigned i = 0; i < (was.tag & 3); i++)
		rehome_v4(c, &was.v4[i], at, budget);
}

/* How many flows live in b: IPv4 entries, or 1 for an IPv6 flow. */
static unsigned residents(const struct dp_flow_cache *c, const struct dp_flow_bucket *b)
{
	if (!dp_flow_live(c, b))
		return 0;
	return b->tag & 4 ? 1 : b->tag & 3;
}

static void insert_v4(struct dp_flow_cache *c, const struct dp_flow_v4 *e, uint64_t h, uint32_t b1, uint32_t b2)
{
	struct dp_flow_bucket *x = &c->b[b1], *y = &c->b[b2];

	if (has_v4_room(c, x) || has_v4_room(c, y)) {
		append_v4(c, v4_entries(c, x) <= v4_entries(c, y) ? x : y, e);
		return;
	}
	/* Both full. Residents that can simply move to their other buckets do: an IPv6
	 * flow leaving frees three slots. */
	if (x->tag & 4 ? move_out_v6(c, b1) : move_out_v4(c, b1) < DP_FLOW_V4_PER_BUCKET) {
		append_v4(c, x, e);
		return;
	}
	if (y->tag & 4 ? move_out_v6(c, b2) : move_out_v4(c, b2) < DP_FLOW_V4_PER_BUCKET) {
		append_v4(c, y, e);
		return;
	}
	/* None can: a walk through IPv4 buckets, from a random one of the two; when both
	 * hold an IPv6 flow, the newcomer takes one's bucket and pushes it on. */
	if (!(x->tag & 4) && (y->tag & 4 || h >> 63)) {
		cuckoo_v4(c, *e, b1);
	} else if (!(y->tag & 4)) {
		cuckoo_v4(c, *e, b2);
	} else {
		unsigned budget = PUSH_BUDGET;

		push_out_v6(c, e, b1, &budget);
	}
}

/* An IPv6 flow takes a bucket of its own: a free one; or one whose residents, an IPv6
 * flow or IPv4 flows, could all move to their other buckets in one step; or failing
 * those, the one with fewer residents, which are pushed on (take_bucket_v6). */
static void insert_v6(struct dp_flow_cache *c, const struct dp_flow_v6 *e, uint32_t b1, uint32_t b2)
{
	const uint32_t in[2] = {b1, b2};
	unsigned budget = PUSH_BUDGET;

	for (unsigned i = 0; i < 2; i++)
		if (!dp_flow_live(c, &c->b[in[i]])) {
			take_bucket_v6(c, e, in[i], &budget);
			return;
		}
	for (unsigned i = 0; i < 2; i++) {
		struct dp_flow_bucket *b = &c->b[in[i]];

		if (b->tag & 4 ? move_out_v6(c, in[i]) : move_out_v4(c, in[i]) == 0) {
			take_bucket_v6(c, e, in[i], &budget);
			return;
		}
	}
	take_bucket_v6(c, e, residents(c, &c->b[b1]) <= residents(c, &c->b[b2]) ? b1 : b2, &budget);
}

/* The flow just inserted must be in: its packet's flow is the likeliest to come again.
 * Pushes that went round in a circle may have evicted it; it then takes the first of its
 * buckets back, at the cost of whoever is there, and its own eviction is taken back. */
static void keep_newcomer_v4(struct dp_flow_cache *c, const struct dp_flow_v4 *e, uint32_t b1, uint32_t b2)
{
	const uint32_t *w = e->key;
	struct dp_flow_bucket *x = &c->b[b1];
	uint32_t pi;

	if (dp_flow_find_v4(c, x, w[0], w[1], w[2], w[3], &pi) ||
	    dp_flow_find_v4(c, &c->b[b2], w[0], w[1], w[2], w[3], &pi))
		return;
	c->evictions--;
	if (x->tag & 4 && dp_flow_live(c, x)) {
		set_tag(c, x, false, 0);
		c->evictions++;
	}
	if (has_v4_room(c, x)) {
		append_v4(c, x, e);
	} else {
		x->v4[next_random(c) % DP_FLOW_V4_PER_BUCKET] = *e;
		c->evictions++;
	}
}

static void keep_newcomer_v6(struct dp_flow_cache *c, const struct dp_flow_v6 *e, uint32_t b1, uint32_t b2)
{
	struct dp_flow_bucket *x = &c->b[b1];
	uint32_t pi;

	if (dp_flow_find_v6(c, x, e->key, &pi) || dp_flow_find_v6(c, &c->b[b2], e->key, &pi))
		return;
	c->evictions += residents(c, x);
	c->evictions--;
	x->v6 = *e;
	set_tag(c, x, true, 1);
}

void dp_flow_insert(struct dp_flow_cache *c, const struct eg_flow_key *k, uint64_t h, uint32_t policy)
{
	uint32_t b1, b2;

	c->misses++;
	grow_if_outgrown(c);
	dp_flow_buckets(c, h, &b1, &b2);
	if (k->family == EG_AF_INET6) {
		struct dp_flow_v6 e = {.policy = policy};

		dp_flow_compact(k, e.key);
		insert_v6(c, &e, b1, b2);
		keep_newcomer_v6(c, &e, b1, b2);
	} else {
		struct dp_flow_v4 e = {.policy = policy};

		dp_flow_compact(k, e.key);
		insert_v4(c, &e, h, b1, b2);
		keep_newcomer_v4(c, &e, b1, b2);
	}
}
