/* Multi-field packet classifier: rules with priorities over src/dst prefixes (IPv4 and
 * IPv6), protocol, src/dst port ranges, DSCP and ingress port.
 *
 * Built by the control process into a position-independent structure inside a blob, read
 * by workers straight out of shared memory. Lookup must not scan all rules: it stays fast
 * at 100k rules. */
#ifndef EG_CLASSIFIER_H
#define EG_CLASSIFIER_H

#include <stdint.h>

#include "blob.h"
#include "net_addr.h"

#define EG_CLS_NO_MATCH UINT32_MAX
#define EG_DSCP_ANY UINT64_MAX

struct eg_rule {
	uint32_t priority;	/* lower number wins; equal priority: lower index in the array wins */
	uint32_t result;	/* returned by lookup; opaque to the classifier (not EG_CLS_NO_MATCH) */
	uint8_t family;		/* EG_AF_ANY, EG_AF_INET or EG_AF_INET6 */
	uint8_t proto_any;	/* 1: any protocol */
	uint8_t proto;
	uint8_t pad;
	struct eg_prefix src;	/* len 0: any source (family ignored then) */
	struct eg_prefix dst;	/* len 0: any destination */
	uint16_t sport_lo, sport_hi;	/* 0..65535 for any */
	uint16_t dport_lo, dport_hi;
	uint64_t dscp_mask;	/* bit d set: DSCP d matches; EG_DSCP_ANY for any */
	uint16_t in_port;	/* EG_PORT_ANY for any */
};

/* The naive reference: true when k matches r. Used by the builder's leaf checks and by the
 * differential tests. */
int eg_rule_matches(const struct eg_rule *r, const struct eg_flow_key *k);

/* Builds the lookup structure for n rules into b. Returns its offset, or EG_BLOB_NONE on
 * failure (out of memory / blob limit) with errno set. n may be 0. A rule whose src or dst
 * family disagrees with its family is refused with EINVAL. */
uint32_t eg_classifier_build(struct eg_blob *b, const struct eg_rule *rules, uint32_t n);

/* Looks k up in the structure at base + off. Returns the result of the best matching rule
 * (lowest priority, then lowest index) or EG_CLS_NO_MATCH. Lock-free, no allocation, safe
 * to call from any number of threads at once. */
uint32_t eg_classifier_lookup(const void *base, uint32_t off, const struct eg_flow_key *k);

#endif
