/* Longest-prefix match from a set of prefixes to their owners, flattened into sorted,
 * disjoint address ranges, so that a lookup is one binary search however the prefixes
 * nest. WireGuard's cryptokey routing uses it: a decrypted packet's source address must
 * map to the peer it came from, even when another peer holds a longer prefix inside
 * that peer's (10.0.0.0/8 for one peer, 10.1.0.0/16 for another). */
#ifndef EG_PREFIX_MAP_H
#define EG_PREFIX_MAP_H

#include <stdint.h>
#include <string.h>

#include "net_addr.h"

#define EG_PREFIX_NO_OWNER UINT32_MAX

/* From start (inclusive) up to the next range's start, addresses belong to owner. */
struct eg_prefix_range {
	uint8_t start[EG_ADDR_MAX_LEN];	/* network order; IPv4 in the first 4 bytes */
	uint32_t owner;			/* EG_PREFIX_NO_OWNER: no prefix covers it */
};

struct eg_prefix_owned {
	struct eg_prefix prefix;
	uint32_t owner;
};

/* Flattens those of the n prefixes in `in` (which it sorts) that are of family into
 * out, which needs room for 2 * n ranges, and returns how many it wrote. Which of two
 * identical prefixes wins is unspecified: callers refuse those beforehand. */
unsigned eg_prefix_map_flatten(uint8_t family, struct eg_prefix_owned *in, unsigned n,
			       struct eg_prefix_range *out);

/* The owner of addr's longest matching prefix, or EG_PREFIX_NO_OWNER. */
static inline uint32_t eg_prefix_map_lookup(const struct eg_prefix_range *r, unsigned n,
					    uint8_t family, const uint8_t *addr)
{
	size_t len = family == EG_AF_INET ? 4 : 16;
	unsigned lo = 0, hi = n;	/* the answer is the last range starting at or before addr */

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (memcmp(r[mid].start, addr, len) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? r[lo - 1].owner : EG_PREFIX_NO_OWNER;
}

#endif
