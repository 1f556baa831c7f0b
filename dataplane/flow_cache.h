/* A worker's cache of classification results: the policy index a flow key classified to,
 * under the rules the worker last saw (the table's classifier_id, a digest of the rules).
 * The classifier stays fast at 100k rules, but a lookup still walks a trie per packet; a
 * flow seen before costs two bucket reads and a few compares instead.
 *
 * Only the classification is cached: the policy's action and the flow's egress are read
 * from the current table on every packet, so a publish that changes paths (most
 * publishes: probes flipping a path's state) keeps every entry, and one that changes
 * rules invalidates them all at once, without touching them, by starting a new epoch.
 * Private to its worker: no locks.
 *
 * Sized for a flow count (dataplane.flow_cache_flows) and meant to hold them all: a POP
 * sees a million flows, and a cache that holds a fraction of them misses on every packet
 * of the rest. Each flow may live in one of two buckets picked by its hash and the
 * cache's secret (cuckoo hashing, dp_flow_buckets), a bucket is one cache line holding
 * three IPv4 entries or one IPv6 entry, and at full size there are twice as many IPv4
 * slots as flows: an insert finds a free slot in either bucket, or makes one by moving
 * residents to their other buckets, almost always. An IPv6 flow, which needs a whole
 * bucket, pushes residents on by walks when both of its buckets are taken (flow_cache.c),
 * so IPv6 flows hold too, each taking the room of about four IPv4 ones (a bucket of three
 * IPv4 slots, and one slot per bucket fills only to about two fifths). A set-associative
 * cache of one line per flow, tried first, missed on three fifths of a million flows
 * cycling through a million entries (sets overflow long before the cache is full). The
 * worker's first pass over a burst prefetches both lines of every packet, so that the
 * DRAM misses of a large cache overlap. */
#ifndef DP_FLOW_CACHE_H
#define DP_FLOW_CACHE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <rte_branch_prediction.h>
#include <rte_prefetch.h>

#include "table.h"

enum {
	DP_FLOW_V4_PER_BUCKET = 3,
	DP_FLOW_EPOCH_BITS = 29,	/* tag: epoch << 3 | IPv6 << 2 | entries */
	DP_FLOW_MIN_FLOWS = 1024,
	DP_FLOW_START_FLOWS = 16384,	/* the size a cache starts at, growing as flows need */
	DP_FLOW_WINDOW_PER_BUCKET = 4,	/* lookups judged at a time, per bucket in use */
	DP_FLOW_MAX_FLOWS = 1 << 24,
};

/* A flow key, compacted: the fields the classifier matches on, as 32-bit words. */
struct dp_flow_v4 {
	uint32_t key[4];	/* src, dst, sport | dport << 16, proto | dscp << 8 | in_port << 16 */
	uint32_t policy;
};

struct dp_flow_v6 {
	uint32_t key[10];	/* src (4 words), dst (4), then as IPv4's last two */
	uint32_t policy;
};

struct dp_flow_bucket {
	uint32_t tag;		/* entries belong to the cache's epoch only if tag >> 3 is it */
	union {
		struct dp_flow_v4 v4[DP_FLOW_V4_PER_BUCKET];
		struct dp_flow_v6 v6;
	};
} __attribute__((aligned(64)));

_Static_assert(sizeof(struct dp_flow_bucket) == 64, "a bucket is one cache line");

struct dp_flow_cache {
	struct dp_flow_bucket *b;
	uint32_t n_buckets;		/* in use: the first n_buckets of max_buckets */
	uint32_t max_buckets;
	uint32_t epoch;			/* 1 .. 2^29 - 1: tags of zeroed memory never match */
	uint32_t rng;			/* xorshift state for cuckoo walks */
	uint64_t mul[2];		/* secret odd multipliers placing flows (dp_flow_buckets) */
	uint64_t classifier_id;		/* the rules this epoch's entries were classified under */
	size_t map_len;
	uint64_t lookups, misses, relocations, evictions, grows;
	struct {
		uint64_t lookups, misses, evictions;	/* at the start of the current window */
	} window;
};

/* A cache with room for up to flows flows (DP_FLOW_MIN_FLOWS .. DP_FLOW_MAX_FLOWS), in
 * anonymous memory touched as used, on transparent huge pages where the kernel allows
 * them: a large cache on 4 KiB pages misses the TLB on every lookup. It starts with room
 * for DP_FLOW_START_FLOWS and takes its full size when flows no longer fit: spread over
 * the whole region, a thousand flows' buckets missed the TLB too (egress-bench measured
 * 5-15% slower forwarding of 1024 flows with a million flows' region in use). NULL on
 * failure. */
struct dp_flow_cache *dp_flow_cache_create(uint32_t flows);
void dp_flow_cache_free(struct dp_flow_cache *c);

/* Remembers that k (with hash h) classified to policy, in the current epoch. The slow
 * path of dp_flow_decide: called on a miss only. */
void dp_flow_insert(struct dp_flow_cache *c, const struct eg_flow_key *k, uint64_t h, uint32_t policy);

/* Flows the cache holds at its current size (half its IPv4 slots). */
static inline uint64_t dp_flow_capacity(const struct dp_flow_cache *c)
{
	return (uint64_t)c->n_buckets * DP_FLOW_V4_PER_BUCKET / 2;
}

/* Starts a new epoch for the rules with this classifier_id: every entry goes stale. */
void dp_flow_new_rules(struct dp_flow_cache *c, uint64_t classifier_id);

/* The two words of a compact key after the addresses. */
static inline uint32_t dp_flow_ports_word(const struct eg_flow_key *k)
{
	return (uint32_t)k->sport | (uint32_t)k->dport << 16;
}

static inline uint32_t dp_flow_rest_word(const struct eg_flow_key *k)
{
	return (uint32_t)k->proto | (uint32_t)k->dscp << 8 | (uint32_t)k->in_port << 16;
}

/* The compact form of k, in w[0..3] (IPv4) or w[0..9] (IPv6). */
static inline void dp_flow_compact(const struct eg_flow_key *k, uint32_t *w)
{
	unsigned a = k->family == EG_AF_INET6 ? 4 : 1;

	memcpy(w, k->src, 4 * a);
	memcpy(w + a, k->dst, 4 * a);
	w[2 * a] = dp_flow_ports_word(k);
	w[2 * a + 1] = dp_flow_rest_word(k);
}

/* The two buckets a flow may live in. The flow hash is public and fixed (control and the
 * workers must agree on it), so anyone could craft flows that all share two buckets and
 * make every one of their packets a miss and a cuckoo walk. Each bucket is therefore
 * taken from the high half of the hash times one of the cache's secret odd multipliers
 * (multiply-shift, a universal family: two different hashes share a bucket with about
 * the chance of random ones, whatever they are), scaled to the bucket count. Distinct
 * whenever there are two buckets. */
static inline void dp_flow_buckets(const struct dp_flow_cache *c, uint64_t h, uint32_t *b1, uint32_t *b2)
{
	*b1 = (uint32_t)(((h * c->mul[0]) >> 32) * c->n_buckets >> 32);
	*b2 = (uint32_t)(((h * c->mul[1]) >> 32) * c->n_buckets >> 32);
	if (*b2 == *b1)
		*b2 = *b1 + 1 < c->n_buckets ? *b1 + 1 : 0;
}

/* Where a flow may be: its two buckets while the cache has n_buckets. The worker finds
 * them once per packet, to prefetch, and keeps them for the lookup: computing them twice
 * cost about 3% of direct forwarding. */
struct dp_flow_place {
	uint32_t b1, b2, n_buckets;
};

static inline struct dp_flow_place dp_flow_place(const struct dp_flow_cache *c, uint64_t h)
{
	struct dp_flow_place pl = {.n_buckets = c->n_buckets};

	dp_flow_buckets(c, h, &pl.b1, &pl.b2);
	return pl;
}

/* Starts loading both buckets a flow may be in, a burst ahead of its lookup. DPDK's
 * prefetch is an asm statement: GCC 12's dead code elimination dropped both of
 * __builtin_prefetch's here, leaving every lookup to wait for DRAM. */
static inline void dp_flow_prefetch(const struct dp_flow_cache *c, const struct dp_flow_place *pl)
{
	rte_prefetch0(&c->b[pl->b1]);
	rte_prefetch0(&c->b[pl->b2]);
}

static inline bool dp_flow_live(const struct dp_flow_cache *c, const struct dp_flow_bucket *b)
{
	return b->tag >> 3 == c->epoch;
}

/* Whether n words at a and b are equal: words loaded straight from both (memcmp would be
 * a libc call per packet, and copying into arrays first stalled on store forwarding). */
static inline bool dp_flow_words_equal(const uint32_t *a, const uint32_t *b, unsigned n)
{
	uint32_t d = 0;

	for (unsigned i = 0; i < n; i++)
		d |= a[i] ^ b[i];
	return d == 0;
}

/* The policy bucket b holds for the IPv6 flow with compact key w, if any. */
static inline bool dp_flow_find_v6(const struct dp_flow_cache *c, const struct dp_flow_bucket *b,
				   const uint32_t *w, uint32_t *policy)
{
	if (!dp_flow_live(c, b) || !(b->tag & 4) || !dp_flow_words_equal(b->v6.key, w, 10))
		return false;
	*policy = b->v6.policy;
	return true;
}

/* The policy bucket b holds for the IPv4 flow whose compact key is s, d, ports, rest.
 * The key is held in registers, not built in an array: the compiler read such an array
 * back 16 bytes at once right after writing it a word at a time, a store forwarding
 * stall that perf put at a quarter of dispatch's samples in direct forwarding. */
static inline bool dp_flow_find_v4(const struct dp_flow_cache *c, const struct dp_flow_bucket *b, uint32_t s,
				   uint32_t d, uint32_t ports, uint32_t rest, uint32_t *policy)
{
	if (!dp_flow_live(c, b) || (b->tag & 4))
		return false;
	for (unsigned i = 0; i < (b->tag & 3); i++) {
		const uint32_t *e = b->v4[i].key;

		if (((e[0] ^ s) | (e[1] ^ d) | (e[2] ^ ports) | (e[3] ^ rest)) == 0) {
			*policy = b->v4[i].policy;
			return true;
		}
	}
	return false;
}

/* The policy cached for k (hash h), looked for where pl says; pl is found again if the
 * cache grew since (an insert earlier in the same burst). */
static inline bool dp_flow_find_at(struct dp_flow_cache *c, const struct eg_flow_key *k, uint64_t h,
				   struct dp_flow_place pl, uint32_t *policy)
{
	uint32_t b1, b2;

	if (unlikely(pl.n_buckets != c->n_buckets))
		pl = dp_flow_place(c, h);
	b1 = pl.b1;
	b2 = pl.b2;
	c->lookups++;
	if (k->family == EG_AF_INET) {
		/* the words dp_flow_compact would write */
		uint32_t s, d, ports = dp_flow_ports_word(k), rest = dp_flow_rest_word(k);

		memcpy(&s, k->src, 4);
		memcpy(&d, k->dst, 4);
		return dp_flow_find_v4(c, &c->b[b1], s, d, ports, rest, policy) ||
		       dp_flow_find_v4(c, &c->b[b2], s, d, ports, rest, policy);
	}

	uint32_t w[10];

	dp_flow_compact(k, w);
	return dp_flow_find_v6(c, &c->b[b1], w, policy) || dp_flow_find_v6(c, &c->b[b2], w, policy);
}

static inline bool dp_flow_find(struct dp_flow_cache *c, const struct eg_flow_key *k, uint64_t h,
				uint32_t *policy)
{
	return dp_flow_find_at(c, k, h, dp_flow_place(c, h), policy);
}

/* eg_table_decide, with the classification remembered per flow; pl is where the flow
 * may be (dp_flow_place), found when the flow's buckets were prefetched. */
static inline enum eg_verdict dp_flow_decide(struct dp_flow_cache *c, const struct eg_table_hdr *t,
					     const struct eg_flow_key *k, uint64_t flow_hash,
					     struct dp_flow_place pl, const struct eg_table_policy **policy,
					     const struct eg_table_egress **egress)
{
	uint32_t pi;
	bool cacheable = t->classifier_id && (k->family == EG_AF_INET || k->family == EG_AF_INET6);

	if (cacheable && t->classifier_id != c->classifier_id)
		dp_flow_new_rules(c, t->classifier_id);
	if (!cacheable || !dp_flow_find_at(c, k, flow_hash, pl, &pi)) {
		pi = eg_classifier_lookup(t, t->classifier_off, k);
		if (cacheable)
			dp_flow_insert(c, k, flow_hash, pi);
	}
	return eg_table_verdict(t, pi, flow_hash, policy, egress);
}

#endif
