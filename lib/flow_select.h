/* Per-flow egress selection with consistent hashing.
 *
 * Each policy with several eligible egresses gets a bucket table: a flow's hash picks a
 * bucket and the bucket names the egress. Buckets are assigned by weighted rendezvous
 * (highest random weight) hashing of (bucket, egress key), so removing one egress moves
 * exactly the buckets it held, and adding one takes about 1/(N+1) of the buckets from the
 * others: flows that did not have to move stay. */
#ifndef EG_FLOW_SELECT_H
#define EG_FLOW_SELECT_H

#include <stdint.h>

#include "blob.h"
#include "net_addr.h"

enum {
	EG_SEL_BUCKETS = 4096,		/* power of two */
	EG_SEL_NONE = 0xffff,		/* no egress: drop */
};

struct eg_sel_member {
	uint64_t key;		/* stable identity of the egress, e.g. a hash of its name */
	double weight;		/* > 0 */
	uint16_t value;		/* what the bucket stores (the egress index in the table) */
};

/* A 64-bit hash of the flow's 5-tuple and family (not DSCP or ingress port, so a flow keeps
 * its egress if those change); the same in every process and build, so control's
 * flow.lookup and the workers agree on where a flow goes. */
uint64_t eg_flow_hash(const struct eg_flow_key *k);

/* A stable 64-bit key for an egress name. */
uint64_t eg_sel_key(const char *name);

/* Fills table[EG_SEL_BUCKETS]. n == 0 fills EG_SEL_NONE. */
void eg_sel_fill(uint16_t *table, const struct eg_sel_member *m, unsigned n);

/* Allocates and fills a table in b; returns its offset or EG_BLOB_NONE. */
uint32_t eg_sel_build(struct eg_blob *b, const struct eg_sel_member *m, unsigned n);

static inline uint16_t eg_sel_pick(const uint16_t *table, uint64_t flow_hash)
{
	return table[(flow_hash >> 20) & (EG_SEL_BUCKETS - 1)];
}

#endif
