/* A worker's cache of classification results: the policy and egress decided for a flow
 * key under one table generation. The classifier stays fast at 100k rules, but a lookup
 * still walks a trie per packet; a flow seen before under the same table costs one hash
 * slot and one compare instead. Direct-mapped and private to its worker: no locks, no
 * eviction policy, a collision just overwrites. Entries are tied to the table's
 * generation (stamped by eg_shm_publish), so a publish invalidates them all at once
 * without touching them. */
#ifndef DP_FLOW_CACHE_H
#define DP_FLOW_CACHE_H

#include <stdint.h>
#include <string.h>

#include "table.h"

enum { DP_FLOW_CACHE_SIZE = 4096 };	/* power of two; 256 KiB per worker */

struct dp_flow_cache_entry {
	uint64_t generation;		/* 0: empty */
	struct eg_flow_key key;
	uint8_t verdict;		/* enum eg_verdict */
	uint32_t policy;		/* index, or UINT32_MAX for none */
	uint16_t egress;		/* index, when verdict is FORWARD */
} __attribute__((aligned(64)));

struct dp_flow_cache {
	struct dp_flow_cache_entry e[DP_FLOW_CACHE_SIZE];
};

/* eg_table_decide, remembered per flow for the table's generation. */
static inline enum eg_verdict dp_flow_decide(struct dp_flow_cache *c, const struct eg_table_hdr *t,
					     const struct eg_flow_key *k, uint64_t flow_hash,
					     const struct eg_table_policy **policy,
					     const struct eg_table_egress **egress)
{
	struct dp_flow_cache_entry *x = &c->e[(flow_hash >> 20) & (DP_FLOW_CACHE_SIZE - 1)];
	enum eg_verdict v;

	if (x->generation == t->generation && t->generation && memcmp(&x->key, k, sizeof(*k)) == 0) {
		*policy = x->policy == UINT32_MAX ? NULL : &eg_table_policies(t)[x->policy];
		if (x->verdict == EG_VERDICT_FORWARD)
			*egress = &eg_table_egresses(t)[x->egress];
		return (enum eg_verdict)x->verdict;
	}
	v = eg_table_decide(t, k, flow_hash, policy, egress);
	x->generation = t->generation;
	x->key = *k;
	x->verdict = (uint8_t)v;
	x->policy = *policy ? (uint32_t)(*policy - eg_table_policies(t)) : UINT32_MAX;
	if (v == EG_VERDICT_FORWARD)
		x->egress = (uint16_t)(*egress - eg_table_egresses(t));
	return v;
}

#endif
