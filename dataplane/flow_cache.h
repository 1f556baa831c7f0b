/* A worker's cache of classification results: the policy index a flow key classified to,
 * under one classifier (the table's classifier_id, a digest of the rules). The classifier
 * stays fast at 100k rules, but a lookup still walks a trie per packet; a flow seen before
 * costs one hash slot and one compare instead. Only the classification is cached: the
 * policy's action and the flow's egress are read from the current table on every packet,
 * so a publish that changes paths (most publishes: probes flipping a path's state) keeps
 * every entry, and one that changes rules invalidates them all at once without touching
 * them. Private to its worker: no locks. Two ways per set, and room for 16 times the
 * flows of egress-bench's default run: direct-mapped with 4096 slots, 1024 flows left a
 * fifth of them sharing a slot with another and missing every time they alternated
 * (egress-bench counted 22% misses), two ways of the same size still 10%; now a set
 * overflows only when three flows meet in it. A new entry goes into the first way and
 * pushes the older one into the second (FIFO within the set). */
#ifndef DP_FLOW_CACHE_H
#define DP_FLOW_CACHE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "table.h"

enum {
	DP_FLOW_CACHE_SIZE = 16384,	/* entries; a power of two; 1 MiB per worker, touched as used */
	DP_FLOW_CACHE_WAYS = 2,
	DP_FLOW_CACHE_SETS = DP_FLOW_CACHE_SIZE / DP_FLOW_CACHE_WAYS,
};

struct dp_flow_cache_entry {
	uint64_t classifier_id;		/* 0: empty */
	struct eg_flow_key key;
	uint32_t policy;		/* index, or EG_CLS_NO_MATCH */
} __attribute__((aligned(64)));

struct dp_flow_cache {
	struct dp_flow_cache_entry e[DP_FLOW_CACHE_SIZE];
};

/* Whether two keys are equal, inline: libc's memcmp is a call per packet. Words are
 * loaded straight from both keys, the last one overlapping its neighbour rather than
 * running past the end: copying the keys into zeroed word arrays first made GCC store
 * them as 16-byte pieces at odd offsets and read them back as words, a store forwarding
 * stall that took three fifths of dispatch's samples. */
static inline uint64_t dp_flow_word(const struct eg_flow_key *k, size_t off)
{
	uint64_t w;

	memcpy(&w, (const uint8_t *)k + off, sizeof(w));
	return w;
}

static inline bool dp_flow_key_equal(const struct eg_flow_key *a, const struct eg_flow_key *b)
{
	_Static_assert(sizeof(*a) >= 8, "a key is at least one word");
	uint64_t d = dp_flow_word(a, sizeof(*a) - 8) ^ dp_flow_word(b, sizeof(*b) - 8);

	for (size_t off = 0; off + 8 <= sizeof(*a); off += 8)
		d |= dp_flow_word(a, off) ^ dp_flow_word(b, off);
	return d == 0;
}

static inline bool dp_flow_hit(const struct dp_flow_cache_entry *x, const struct eg_table_hdr *t,
			       const struct eg_flow_key *k)
{
	return x->classifier_id == t->classifier_id && t->classifier_id && dp_flow_key_equal(&x->key, k);
}

static inline struct dp_flow_cache_entry *dp_flow_set(struct dp_flow_cache *c, uint64_t flow_hash)
{
	return &c->e[((flow_hash >> 20) & (DP_FLOW_CACHE_SETS - 1)) * DP_FLOW_CACHE_WAYS];
}

/* Starts loading the set a flow will be looked up in, a few packets ahead. */
static inline void dp_flow_prefetch(struct dp_flow_cache *c, uint64_t flow_hash)
{
	const struct dp_flow_cache_entry *set = dp_flow_set(c, flow_hash);

	for (unsigned i = 0; i < DP_FLOW_CACHE_WAYS; i++)
		__builtin_prefetch(&set[i]);
}

/* eg_table_decide, with the classification remembered per flow. */
static inline enum eg_verdict dp_flow_decide(struct dp_flow_cache *c, const struct eg_table_hdr *t,
					     const struct eg_flow_key *k, uint64_t flow_hash,
					     const struct eg_table_policy **policy,
					     const struct eg_table_egress **egress)
{
	struct dp_flow_cache_entry *set = dp_flow_set(c, flow_hash);
	uint32_t pi;

	if (dp_flow_hit(&set[0], t, k)) {
		pi = set[0].policy;
	} else if (dp_flow_hit(&set[1], t, k)) {
		pi = set[1].policy;
	} else {
		pi = eg_classifier_lookup(t, t->classifier_off, k);
		set[1] = set[0];
		set[0].classifier_id = t->classifier_id;
		set[0].key = *k;
		set[0].policy = pi;
	}
	return eg_table_verdict(t, pi, flow_hash, policy, egress);
}

#endif
