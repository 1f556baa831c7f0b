#include "fragment.h"

#include <string.h>

#include <rte_byteorder.h>
#include <rte_ip.h>

enum { IPV6_HDR = 40, FRAG_HDR = 8 };

/* out[n]: a new mbuf with len bytes for the next piece, returned; on failure NULL, and the
 * pieces already made are freed, so the caller has nothing to undo. */
static uint8_t *new_piece(struct rte_mempool *pool, uint16_t len, struct rte_mbuf **out, unsigned n)
{
	struct rte_mbuf *f = rte_pktmbuf_alloc(pool);
	uint8_t *p = f ? (uint8_t *)rte_pktmbuf_append(f, len) : NULL;

	if (!p) {
		rte_pktmbuf_free(f);
		for (unsigned i = 0; i < n; i++)
			rte_pktmbuf_free(out[i]);
		return NULL;
	}
	out[n] = f;
	return p;
}

unsigned dp_fragment_ipv4(struct rte_mempool *pool, const uint8_t *ip, uint32_t len, uint16_t mtu,
			  struct rte_mbuf **out, unsigned max)
{
	const struct rte_ipv4_hdr *h = (const struct rte_ipv4_hdr *)ip;
	uint16_t ihl = (uint16_t)((h->version_ihl & 0xf) * 4);
	uint16_t base = rte_be_to_cpu_16(h->fragment_offset);
	uint32_t data_len = len - ihl;
	uint32_t chunk = mtu > ihl ? (uint32_t)(mtu - ihl) & ~7u : 0;
	unsigned n = 0;

	if (chunk < 8 || (data_len + chunk - 1) / chunk > max)
		return 0;
	for (uint32_t off = 0; off < data_len; off += chunk) {
		uint32_t piece = data_len - off < chunk ? data_len - off : chunk;
		struct rte_ipv4_hdr *fh = (struct rte_ipv4_hdr *)new_piece(pool, (uint16_t)(ihl + piece), out, n);
		uint16_t fo;

		if (!fh)
			return 0;
		memcpy(fh, ip, ihl);
		memcpy((uint8_t *)fh + ihl, ip + ihl + off, piece);
		/* Offsets count from the original's; MF on all but the last, and on the last
		 * too when the original was itself a fragment with more after it. */
		fo = (uint16_t)((base & RTE_IPV4_HDR_OFFSET_MASK) + off / 8);
		if (off + piece < data_len || (base & RTE_IPV4_HDR_MF_FLAG))
			fo |= RTE_IPV4_HDR_MF_FLAG;
		fh->fragment_offset = rte_cpu_to_be_16(fo);
		fh->total_length = rte_cpu_to_be_16((uint16_t)(ihl + piece));
		fh->hdr_checksum = 0;
		fh->hdr_checksum = rte_ipv4_cksum(fh);
		n++;
	}
	return n;
}

unsigned dp_fragment_ipv6(struct rte_mempool *pool, const uint8_t *ip, uint32_t len, uint16_t mtu,
			  uint32_t id, struct rte_mbuf **out, unsigned max)
{
	uint32_t data_len = len - IPV6_HDR;
	uint32_t chunk = mtu > IPV6_HDR + FRAG_HDR ? (uint32_t)(mtu - IPV6_HDR - FRAG_HDR) & ~7u : 0;
	uint32_t id_be = rte_cpu_to_be_32(id);
	unsigned n = 0;

	if (chunk < 8 || (data_len + chunk - 1) / chunk > max)
		return 0;
	for (uint32_t off = 0; off < data_len; off += chunk) {
		uint32_t piece = data_len - off < chunk ? data_len - off : chunk;
		uint8_t *p = new_piece(pool, (uint16_t)(IPV6_HDR + FRAG_HDR + piece), out, n);
		struct rte_ipv6_hdr *fh = (struct rte_ipv6_hdr *)p;
		uint16_t offlg = (uint16_t)(off | (off + piece < data_len));	/* offset in bytes is 8-aligned; M is bit 0 */

		if (!p)
			return 0;
		memcpy(p, ip, IPV6_HDR);
		fh->proto = IPPROTO_FRAGMENT;
		fh->payload_len = rte_cpu_to_be_16((uint16_t)(FRAG_HDR + piece));
		p[IPV6_HDR] = ((const struct rte_ipv6_hdr *)ip)->proto;
		p[IPV6_HDR + 1] = 0;
		p[IPV6_HDR + 2] = (uint8_t)(offlg >> 8);
		p[IPV6_HDR + 3] = (uint8_t)offlg;
		memcpy(p + IPV6_HDR + 4, &id_be, 4);
		memcpy(p + IPV6_HDR + FRAG_HDR, ip + IPV6_HDR + off, piece);
		n++;
	}
	return n;
}
