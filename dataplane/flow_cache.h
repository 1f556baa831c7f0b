/* A worker's cache of classification results: the policy index a flow key classified to,
 * under one classifier (the table's classifier_id, a digest of the rules). The classifier
 * stays fast at 100k rules, but a lookup still walks a trie per packet; a flow seen before
 * costs one hash slot and one compare instead. Only the classification is cached: the
 * policy's action and the flow's egress are read from the current table on every packet,
 * so a publish that changes paths (most publishes: probes flipping a path's state) keeps
 * every entry, and one that changes rules invalidates them all at once without touching
 * them. Direct-mapped and private to its worker: no locks, no eviction policy, a
 * collision just overwrites. */
#ifndef DP_FLOW_CACHE_H
#define DP_FLOW_CACHE_H

#include <stdint.h>
#include <string.h>

#include "table.h"

enum { DP_FLOW_CACHE_SIZE = 4096 };	/* power of two; 256 KiB per worker */

struct dp_flow_cache_entry {
	uint64_t classifier_id;		/* 0: empty */
	struct eg_flow_key key;
	uint32_t policy;		/* index, or EG_CLS_NO_MATCH */
} __attribute__((aligned(64)));

struct dp_flow_cache {
	struct dp_flow_cache_entry e[DP_FLOW_CACHE_SIZE];
};

/* eg_table_decide, with the classification remembered per flow. */
static inline enum eg_verdict dp_flow_decide(struct dp_flow_cache *c, const struct eg_table_hdr *t,
					     const struct eg_flow_key *k, uint64_t flow_hash,
					     const struct eg_table_policy **policy,
					     const struct eg_table_egress **egress)
{
	struct dp_flow_cache_entry *x = &c->e[(flow_hash >> 20) & (DP_FLOW_CACHE_SIZE - 1)];

	if (x->classifier_id != t->classifier_id || !t->classifier_id || memcmp(&x->key, k, sizeof(*k)) != 0) {
		x->policy = eg_classifier_lookup(t, t->classifier_off, k);
		x->classifier_id = t->classifier_id;
		x->key = *k;
	}
	return eg_table_verdict(t, x->policy, flow_hash, policy, egress);
}

#endif
