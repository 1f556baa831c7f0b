/* IP fragmentation of packets we send (RFC 791 2.3 and 3.2; RFC 8200 4.5): the inner
 * packet before ESP, or the outer ESP packet when an SA says "fragment": "outer". The
 * exceptional path: every fragment is a new mbuf holding a copy. */
#ifndef DP_FRAGMENT_H
#define DP_FRAGMENT_H

#include <stdint.h>

#include <rte_mbuf.h>
#include <rte_mempool.h>

enum { DP_MAX_FRAGMENTS = 16 };

/* The IPv4 packet ip (len bytes, header checksum valid, DF clear) cut into fragments of at
 * most mtu bytes, each a new mbuf from pool that starts at its IP header. A packet that was
 * a fragment already keeps its offsets and MF. Returns how many are in out, or 0 when it
 * cannot be done (mtu below header plus 8 bytes, more than max pieces, no mbufs); on 0
 * nothing is allocated. */
unsigned dp_fragment_ipv4(struct rte_mempool *pool, const uint8_t *ip, uint32_t len, uint16_t mtu,
			  struct rte_mbuf **out, unsigned max);

/* The same for an IPv6 packet whose fixed header is followed directly by the payload to
 * cut (the packets we build): a Fragment header with identification id goes between. */
unsigned dp_fragment_ipv6(struct rte_mempool *pool, const uint8_t *ip, uint32_t len, uint16_t mtu,
			  uint32_t id, struct rte_mbuf **out, unsigned max);

#endif
