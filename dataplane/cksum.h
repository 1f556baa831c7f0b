/* The IPv4 header checksum on the hot paths. DPDK's rte_raw_cksum adds 16 bits at a time
 * in a loop (10 dependent steps for a plain header, a sixth of ESP encapsulation's own
 * cost at 64 bytes); the one's complement sum of a 20-byte header is the same when taken
 * as five 32-bit words in a 64-bit accumulator and folded (RFC 1071: the sum does not
 * depend on how the words are grouped, nor on byte order until it is stored). */
#ifndef DP_CKSUM_H
#define DP_CKSUM_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <rte_byteorder.h>
#include <rte_ip.h>

/* The one's complement sum of five 32-bit words, folded to 16 bits, in memory order. */
static inline uint16_t dp_ipv4_sum5(uint32_t a, uint32_t b, uint32_t c, uint32_t d, uint32_t e)
{
	uint64_t s = (uint64_t)a + b + c + d + e;

	s = (s & 0xffffffffu) + (s >> 32);
	s = (s & 0xffffffffu) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

static inline uint16_t dp_ipv4_sum20(const void *hdr)
{
	uint32_t w[5];

	memcpy(w, hdr, sizeof(w));
	return dp_ipv4_sum5(w[0], w[1], w[2], w[3], w[4]);
}

/* Whether an IPv4 header of ihl bytes sums to all ones (its checksum is right). */
static inline bool dp_ipv4_cksum_ok(const void *hdr, uint16_t ihl)
{
	return ihl == 20 ? dp_ipv4_sum20(hdr) == 0xffff : rte_raw_cksum(hdr, ihl) == 0xffff;
}

/* The checksum to store for a header (its checksum field zero) that sums to s, as RFC 791
 * defines it: 0, not 0xffff, for a sum of 0xffff (DPDK 22.11's rte_ipv4_cksum agrees;
 * some older releases did not). A receiver takes either, but a frame that differs from
 * what a full computation gives is not the same frame. */
static inline uint16_t dp_ipv4_cksum_of_sum(uint16_t s)
{
	return (uint16_t)~s;
}

/* The checksum to store in a 20-byte header whose checksum field is zero. */
static inline uint16_t dp_ipv4_cksum20(const void *hdr)
{
	return dp_ipv4_cksum_of_sum(dp_ipv4_sum20(hdr));
}

/* TTL one lower, the checksum updated by RFC 1624 equation 3, HC' = ~(~HC + ~m + m'): m,
 * the TTL's 16-bit word, drops by 0x0100, so ~m + m' is ~0x0100. Adding 0x0100 to HC
 * instead (RFC 1141) gives 0xffff where a full computation gives 0, one header in 65536;
 * egress-bench --check found it. */
static inline void dp_ipv4_ttl_decrement(struct rte_ipv4_hdr *ip)
{
	uint32_t sum = (uint32_t)(uint16_t)~ip->hdr_checksum + rte_cpu_to_be_16(0xfeff);

	ip->time_to_live--;
	ip->hdr_checksum = (uint16_t)~(sum + (sum >> 16));
}

/* Writes a plain 20-byte IPv4 header given as five 32-bit words in network order (the
 * checksum field zero), with its checksum summed from the words while they are still in
 * registers and stored with the third word. Writing the fields one by one and summing the
 * header back out of memory stalled on store forwarding (perf put a fifth of ESP
 * encapsulation's own cycles there: a load cannot take its bytes from several narrower
 * pending stores), and so did the words gathered in an array, which the compiler staged on
 * the stack and copied out with one 16-byte load. So: five plain 32-bit stores. */
static inline void dp_ipv4_write20(void *hdr, uint32_t ver_tos_len, uint32_t id_frag, uint32_t ttl_proto,
				   uint32_t src, uint32_t dst)
{
	uint8_t *h = hdr;
	uint32_t w0 = rte_cpu_to_be_32(ver_tos_len), w1 = rte_cpu_to_be_32(id_frag), w2 = rte_cpu_to_be_32(ttl_proto);
	uint16_t c = dp_ipv4_cksum_of_sum(dp_ipv4_sum5(w0, w1, w2, src, dst));
	uint8_t cb[2];

	/* The checksum's two bytes, in memory order, are bytes 2 and 3 of the third word. */
	memcpy(cb, &c, 2);
	w2 = rte_cpu_to_be_32(ttl_proto | (uint32_t)cb[0] << 8 | cb[1]);
	memcpy(h, &w0, 4);
	memcpy(h + 4, &w1, 4);
	memcpy(h + 8, &w2, 4);
	memcpy(h + 12, &src, 4);
	memcpy(h + 16, &dst, 4);
}

#endif
