/* Outbound ESP, tunnel mode (RFC 4303 3.1.2), AES-GCM (RFC 4106) or ChaCha20-Poly1305
 * (RFC 7634), optionally in UDP (RFC 3948). */
#include <string.h>

#include <rte_byteorder.h>
#include <rte_esp.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include "cksum.h"
#include "esp.h"
#include "fragment.h"
#include "tx.h"
#include "worker.h"

enum {
	IPV4_HDR = 20,
	IPV6_HDR = 40,
	UDP_HDR = 8,
	NEXT_IPV4 = 4,			/* IP-in-IP: the inner packet is IPv4 */
	NEXT_IPV6 = 41,
	OUTER_TTL = 64,
};

static void outb_run(struct dp_worker *w);

void dp_esp_stage_out(struct dp_worker *w, struct rte_mbuf *m, uint16_t l3_off, uint32_t sa_slot,
		      uint16_t egress_id)
{
	struct dp_esp_batch *b = &w->esp_out;
	struct dp_esp_pkt *p;

	/* Fragmenting before ESP stages several packets for one received: a full batch
	 * goes through the crypto library now. */
	if (unlikely(b->n == DP_BURST))
		outb_run(w);
	dp_capture_egress_inner(w, egress_id, m, l3_off);
	p = &b->p[b->n++];
	p->m = m;
	p->slot = sa_slot;
	p->sa = eg_shm_sa(w->ctx->shm.hdr, sa_slot);
	p->l3_off = l3_off;
	p->egress_id = egress_id;
	p->seq = 0;
}

/* One atomic add per SA per burst hands out a block of sequence numbers, so workers
 * sharing an SA touch its counter once per burst, not per packet. */
static void reserve_sequence_numbers(struct dp_esp_batch *b)
{
	for (uint16_t i = 0; i < b->n; i++) {
		struct eg_sa_slot *sa = b->p[i].sa;
		uint64_t n = 0, base;

		if (b->p[i].seq)
			continue;
		for (uint16_t j = i; j < b->n; j++)
			n += b->p[j].sa == sa;
		base = __atomic_fetch_add(&sa->seq, n, __ATOMIC_RELAXED);
		for (uint16_t j = i; j < b->n; j++)
			if (b->p[j].sa == sa)
				b->p[j].seq = ++base;
	}
}

static void sa_drop(struct dp_worker *w, struct dp_esp_pkt *p, uint16_t port, enum eg_drop_reason r)
{
	eg_shm_sa_counters(w->shm)[p->slot].other_drops++;
	dp_count_drop(w, port, r);
	rte_pktmbuf_free(p->m);
}

/* Outer headers in front of the ESP header; returns false when there is no room. */
static bool build_headers(struct dp_worker *w, struct dp_esp_pkt *p, uint32_t inner_len, uint8_t tos,
			  bool df, uint8_t **esp_out)
{
	const struct eg_sa_slot *sa = p->sa;
	uint16_t ip_len = sa->family == EG_AF_INET ? IPV4_HDR : IPV6_HDR;
	uint16_t udp_len = sa->udp_encap ? UDP_HDR : 0;
	uint16_t hdr_len = (uint16_t)(ip_len + udp_len + DP_ESP_HDR_LEN + DP_ESP_IV_LEN);
	uint32_t esp_len = DP_ESP_HDR_LEN + DP_ESP_IV_LEN + inner_len + dp_esp_pad_len(inner_len) + 2 + DP_ESP_ICV_LEN;
	uint8_t *hdr = (uint8_t *)rte_pktmbuf_prepend(p->m, hdr_len);
	uint8_t proto = sa->udp_encap ? IPPROTO_UDP : IPPROTO_ESP;

	if (unlikely(!hdr))
		return false;
	if (sa->family == EG_AF_INET) {
		uint32_t src, dst;

		memcpy(&src, sa->local, 4);
		memcpy(&dst, sa->remote, 4);
		/* DSCP and ECN copied (RFC 4301 5.1.2.1, RFC 6040) */
		dp_ipv4_write20(hdr, 0x45u << 24 | (uint32_t)tos << 16 | (ip_len + udp_len + esp_len),
				(uint32_t)(uint16_t)dp_next_frag_id(w) << 16 | (df ? RTE_IPV4_HDR_DF_FLAG : 0),
				(uint32_t)OUTER_TTL << 24 | (uint32_t)proto << 16, src, dst);
	} else {
		struct rte_ipv6_hdr *ip = (struct rte_ipv6_hdr *)hdr;

		ip->vtc_flow = rte_cpu_to_be_32(6u << 28 | (uint32_t)tos << 20);
		ip->payload_len = rte_cpu_to_be_16((uint16_t)(udp_len + esp_len));
		ip->proto = proto;
		ip->hop_limits = OUTER_TTL;
		memcpy(ip->src_addr, sa->local, 16);
		memcpy(ip->dst_addr, sa->remote, 16);
	}
	if (sa->udp_encap) {
		struct rte_udp_hdr *u = (struct rte_udp_hdr *)(hdr + ip_len);

		u->src_port = rte_cpu_to_be_16(sa->encap_sport);
		u->dst_port = rte_cpu_to_be_16(sa->encap_dport);
		u->dgram_len = rte_cpu_to_be_16((uint16_t)(UDP_HDR + esp_len));
		u->dgram_cksum = 0;	/* IPv4: RFC 3948 2.1; IPv6 is summed after encryption */
	}
	*esp_out = hdr + ip_len + udp_len;
	return true;
}

/* An outer packet (m starts at its IP header) onto out's transmit buffer. */
static bool send_outer(struct dp_worker *w, struct rte_mbuf *m, const struct dp_port *out,
		       const struct rte_ether_addr *dmac, uint8_t family, uint16_t egress_id)
{
	struct eg_egress_counters *ec = &eg_shm_egress_counters(w->shm)[egress_id];

	if (unlikely(!dp_push_l2(m, out, dmac,
				 rte_cpu_to_be_16(family == EG_AF_INET ? RTE_ETHER_TYPE_IPV4 : RTE_ETHER_TYPE_IPV6))))
		return false;
	ec->tx_packets++;
	ec->tx_bytes += rte_pktmbuf_pkt_len(m);
	dp_capture_egress_sent(w, egress_id, m);
	dp_queue_tx(w, out->index, m);
	return true;
}

/* The ESP packet cut to out's MTU ("fragment": "outer"; the peer reassembles before it
 * decrypts, RFC 4303 3.4.1). Consumes p->m when it returns true. */
static bool send_fragments(struct dp_worker *w, struct dp_esp_pkt *p, const struct dp_port *out,
			   const struct rte_ether_addr *dmac)
{
	struct rte_mbuf *frags[DP_MAX_FRAGMENTS];
	const uint8_t *ip = rte_pktmbuf_mtod(p->m, const uint8_t *);
	uint32_t len = rte_pktmbuf_pkt_len(p->m);
	unsigned n = p->sa->family == EG_AF_INET
			     ? dp_fragment_ipv4(w->ctx->pool, ip, len, out->mtu, frags, DP_MAX_FRAGMENTS)
			     : dp_fragment_ipv6(w->ctx->pool, ip, len, out->mtu, dp_next_frag_id(w), frags,
						DP_MAX_FRAGMENTS);

	if (n == 0)
		return false;
	rte_pktmbuf_free(p->m);
	for (unsigned i = 0; i < n; i++)
		if (unlikely(!send_outer(w, frags[i], out, dmac, p->sa->family, p->egress_id))) {
			dp_count_drop(w, out->index, EG_DROP_NO_ROOM);
			rte_pktmbuf_free(frags[i]);
		}
	return true;
}

static void outb_run(struct dp_worker *w)
{
	struct dp_esp_batch *b = &w->esp_out;
	struct eg_aead_op ops[DP_BURST];
	struct dp_esp_pkt *live[DP_BURST];
	unsigned n = 0;

	reserve_sequence_numbers(b);
	for (uint16_t i = 0; i < b->n; i++) {
		struct dp_esp_pkt *p = &b->p[i];
		struct eg_sa_slot *sa = p->sa;
		uint8_t *inner, *esp, *tail, tos;
		uint32_t next;			/* not a byte: see the trailer below */
		uint32_t inner_len;
		uint16_t pad;
		bool df;

		if (unlikely(__atomic_load_n(&sa->state, __ATOMIC_ACQUIRE) != EG_SA_ACTIVE ||
			     sa->key.arch != (uint32_t)w->aead.arch)) {
			sa_drop(w, p, sa->port, EG_DROP_ESP_SA_STOPPED);
			continue;
		}
		if (unlikely(p->seq > sa->seq_limit)) {
			/* RFC 4303 3.3.3: never wrap; the SA stops and control is told. The same
			 * for a packet lifetime's end. */
			uint32_t active = EG_SA_ACTIVE;

			__atomic_store_n(&sa->stop_reason,
					 sa->limit_is_lifetime ? EG_SA_STOP_LIFETIME : EG_SA_STOP_SEQ_OVERFLOW,
					 __ATOMIC_RELAXED);
			__atomic_compare_exchange_n(&sa->state, &active, EG_SA_STOPPED, false, __ATOMIC_RELEASE,
						    __ATOMIC_RELAXED);
			sa_drop(w, p, sa->port, sa->limit_is_lifetime ? EG_DROP_ESP_SA_STOPPED : EG_DROP_ESP_SEQ_OVERFLOW);
			continue;
		}
		rte_pktmbuf_adj(p->m, p->l3_off);
		inner = rte_pktmbuf_mtod(p->m, uint8_t *);
		inner_len = rte_pktmbuf_pkt_len(p->m);
		if ((inner[0] >> 4) == 4) {
			tos = inner[1];
			df = (inner[6] & 0x40) != 0;
			next = NEXT_IPV4;
		} else {
			tos = (uint8_t)(((inner[0] & 0x0f) << 4) | (inner[1] >> 4));
			df = true;
			next = NEXT_IPV6;
		}
		p->may_fragment = sa->fragment_outer && !df;
		pad = dp_esp_pad_len(inner_len);
		tail = (uint8_t *)rte_pktmbuf_append(p->m, (uint16_t)(pad + 2 + DP_ESP_ICV_LEN));
		if (unlikely(!tail || !build_headers(w, p, inner_len, tos, df, &esp))) {
			sa_drop(w, p, sa->port, EG_DROP_NO_ROOM);
			continue;
		}
		/* RFC 4303 2.4: padding bytes 1, 2, 3 (pad is at most 3, and the room appended
		 * is at least 18 bytes, so all four go in one store), then the pad length and
		 * the next header in one more. next is a word because GCC, holding it as a byte
		 * on the stack, read it back 16 bits wide, a store forwarding stall that perf
		 * put at a sixth of this function. */
		uint32_t pad_bytes = rte_cpu_to_be_32(0x01020304u);
		uint16_t trailer = rte_cpu_to_le_16((uint16_t)(pad | next << 8));

		memcpy(tail, &pad_bytes, 4);
		memcpy(tail + pad, &trailer, 2);

		uint32_t spi_be = rte_cpu_to_be_32(sa->spi);
		uint32_t lo_be = rte_cpu_to_be_32((uint32_t)p->seq);
		uint32_t hi_be = rte_cpu_to_be_32((uint32_t)(p->seq >> 32));
		uint64_t iv_be = rte_cpu_to_be_64(p->seq);

		memcpy(esp, &spi_be, 4);
		memcpy(esp + 4, &lo_be, 4);
		/* The IV is the 64-bit sequence number: unique per SA and key (RFC 4106 3.1). */
		memcpy(esp + 8, &iv_be, 8);
		memcpy(p->nonce, sa->salt, EG_SA_SALT_LEN);
		memcpy(p->nonce + 4, &iv_be, 8);
		/* AAD: SPI and sequence number, the 64-bit one with ESN (RFC 4106 5). */
		memcpy(p->aad, &spi_be, 4);
		if (sa->esn) {
			memcpy(p->aad + 4, &hi_be, 4);
			memcpy(p->aad + 8, &lo_be, 4);
		} else {
			memcpy(p->aad + 4, &lo_be, 4);
		}
		ops[n] = (struct eg_aead_op){
			.key = &sa->key, .nonce = p->nonce, .aad = p->aad, .aad_len = sa->esn ? 12 : 8,
			.src = esp + DP_ESP_HDR_LEN + DP_ESP_IV_LEN, .dst = esp + DP_ESP_HDR_LEN + DP_ESP_IV_LEN,
			.len = inner_len + pad + 2, .tag = tail + pad + 2,
		};
		p->l3_off = (uint16_t)inner_len;	/* reused: the inner length, for counters */
		live[n++] = p;
	}
	b->n = 0;
	if (n == 0)
		return;
	eg_aead_encrypt_burst(&w->aead, ops, n);

	for (unsigned i = 0; i < n; i++) {
		struct dp_esp_pkt *p = live[i];
		struct eg_sa_slot *sa = p->sa;
		const struct dp_port *out = &w->ctx->ports[sa->port];
		struct rte_ether_addr dmac;
		uint8_t nh[16] = {0};

		if (unlikely(ops[i].status != 0)) {
			sa_drop(w, p, sa->port, EG_DROP_ESP_MALFORMED);
			continue;
		}
		if (sa->family == EG_AF_INET6 && sa->udp_encap) {
			struct rte_ipv6_hdr *ip = rte_pktmbuf_mtod(p->m, struct rte_ipv6_hdr *);
			struct rte_udp_hdr *u = (struct rte_udp_hdr *)(ip + 1);

			u->dgram_cksum = rte_ipv6_udptcp_cksum(ip, u);
		}
		if (unlikely(rte_pktmbuf_pkt_len(p->m) > out->mtu && !p->may_fragment)) {
			sa_drop(w, p, sa->port, EG_DROP_MTU_EXCEEDED);
			continue;
		}
		if (unlikely(!dp_port_next_hop(out, sa->family, sa->remote, nh))) {
			sa_drop(w, p, sa->port, EG_DROP_NO_ROUTE);
			continue;
		}
		/* A burst is mostly one SA's: its next hop's MAC is looked up once. */
		if (unlikely(!dp_neigh_mac(w, out->index, sa->family, nh, &dmac))) {
			sa_drop(w, p, sa->port, EG_DROP_NEIGH_UNRESOLVED);
			continue;
		}
		struct eg_sa_counters *sc = &eg_shm_sa_counters(w->shm)[p->slot];

		if (unlikely(rte_pktmbuf_pkt_len(p->m) > out->mtu)) {
			if (!send_fragments(w, p, out, &dmac)) {
				sa_drop(w, p, sa->port, EG_DROP_NO_ROOM);
				continue;
			}
		} else if (unlikely(!send_outer(w, p->m, out, &dmac, sa->family, p->egress_id))) {
			sa_drop(w, p, sa->port, EG_DROP_NO_ROOM);
			continue;
		}
		sc->packets++;
		sc->bytes += p->l3_off;
	}
}

void dp_esp_outb_run(struct dp_worker *w)
{
	if (w->esp_out.n)
		outb_run(w);
}
