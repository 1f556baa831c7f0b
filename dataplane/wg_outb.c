/* Outbound WireGuard transport data (WireGuard paper 5.4.6): the inner packet padded to a
 * multiple of 16, sealed with the current keypair's sending key under the next counter,
 * behind a type-4 header, in UDP to the peer's endpoint. */
#include <string.h>
#include <time.h>

#include <rte_byteorder.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include "cksum.h"
#include "tx.h"
#include "wg.h"
#include "wg_noise.h"
#include "worker.h"

enum { OUTER_TTL = 64 };

uint64_t dp_wg_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint16_t dp_wg_tunnel_mtu(const struct dp_ctx *ctx, const struct eg_wg_peer_slot *peer)
{
	struct eg_wg_endpoint ep;
	uint16_t mtu, over;

	if (!eg_wg_endpoint_read(peer, &ep) || ep.family == 0 || ep.port >= ctx->n_ports)
		return 0;
	mtu = ctx->ports[ep.port].mtu;
	over = ep.family == EG_AF_INET ? DP_WG_OVERHEAD4 : DP_WG_OVERHEAD6;
	return mtu > over ? (uint16_t)(mtu - over) : 0;
}

static void outb_run(struct dp_worker *w);

void dp_wg_stage_out(struct dp_worker *w, struct rte_mbuf *m, uint16_t l3_off, uint32_t slot, uint16_t egress_id)
{
	struct dp_wg_batch *b = &w->wg_out;
	struct dp_wg_pkt *p;

	if (unlikely(b->n == DP_BURST))
		outb_run(w);
	dp_capture_egress_inner(w, egress_id, m, l3_off);
	p = &b->p[b->n++];
	p->m = m;
	p->slot = slot;
	p->peer = eg_shm_wg(w->ctx->shm.hdr, slot);
	p->kp = NULL;
	p->off = l3_off;
	p->egress_id = egress_id;
}

static void drop(struct dp_worker *w, struct dp_wg_pkt *p, uint16_t port, enum eg_drop_reason r)
{
	dp_count_drop(w, port, r);
	rte_pktmbuf_free(p->m);
	p->m = NULL;
}

static inline void want_handshake(struct eg_wg_peer_slot *peer)
{
	if (!__atomic_load_n(&peer->want_handshake, __ATOMIC_RELAXED))
		__atomic_store_n(&peer->want_handshake, 1, __ATOMIC_RELAXED);
}

/* Picks each packet's keypair and hands out counters: one atomic add per keypair per
 * burst. Packets without a usable keypair are dropped here. */
static void reserve_counters(struct dp_worker *w, struct dp_wg_batch *b)
{
	const struct eg_wg_timers *tm = &w->ctx->cfg.wg.timers;

	for (uint16_t i = 0; i < b->n; i++) {
		struct dp_wg_pkt *p = &b->p[i];
		uint32_t kpi = __atomic_load_n(&p->peer->send_kp, __ATOMIC_ACQUIRE);
		struct eg_wg_keypair *kp;

		if (unlikely(kpi >= EG_WG_KEYPAIRS ||
			     __atomic_load_n(&p->peer->state, __ATOMIC_ACQUIRE) != EG_WG_ACTIVE)) {
			want_handshake(p->peer);
			drop(w, p, 0, EG_DROP_WG_NO_SESSION);
			continue;
		}
		kp = eg_wg_kp(p->peer, kpi);
		if (unlikely(__atomic_load_n(&kp->state, __ATOMIC_ACQUIRE) != EG_WG_ACTIVE)) {
			want_handshake(p->peer);
			drop(w, p, 0, EG_DROP_WG_NO_SESSION);
			continue;
		}
		p->kp = kp;
	}
	for (uint16_t i = 0; i < b->n; i++) {
		struct eg_wg_keypair *kp = b->p[i].kp;
		uint64_t n = 0, base;

		if (!b->p[i].m || b->p[i].counter != UINT64_MAX)
			continue;
		for (uint16_t j = i; j < b->n; j++)
			n += b->p[j].m && b->p[j].kp == kp;
		base = __atomic_fetch_add(&kp->send_counter, n, __ATOMIC_RELAXED);
		if (unlikely(base + n >= tm->rekey_after_messages))
			want_handshake(b->p[i].peer);
		for (uint16_t j = i; j < b->n; j++)
			if (b->p[j].m && b->p[j].kp == kp)
				b->p[j].counter = base++;
	}
}

static void outb_run(struct dp_worker *w)
{
	struct dp_ctx *ctx = w->ctx;
	struct dp_wg_batch *b = &w->wg_out;
	struct eg_aead_op ops[DP_BURST];
	struct dp_wg_pkt *live[DP_BURST];
	struct eg_wg_endpoint eps[DP_BURST];	/* live packet i's endpoint */
	struct dp_wg_endpoint_run run = {0};
	uint64_t reject = ctx->cfg.wg.timers.reject_after_messages;
	unsigned n = 0;

	for (uint16_t i = 0; i < b->n; i++)
		b->p[i].counter = UINT64_MAX;
	reserve_counters(w, b);
	for (uint16_t i = 0; i < b->n; i++) {
		struct dp_wg_pkt *p = &b->p[i];
		const struct eg_wg_endpoint *ep;
		uint32_t inner_len, padded, udp_len;
		uint16_t ip_len, mtu;
		uint8_t *hdr, *tail, tos;

		if (!p->m)
			continue;
		ep = dp_wg_run_endpoint(&run, p->peer);
		if (unlikely(!ep || ep->family == 0 || ep->port >= ctx->n_ports)) {
			drop(w, p, 0, EG_DROP_WG_NO_ENDPOINT);
			continue;
		}
		if (unlikely(p->counter >= reject)) {
			/* REJECT_AFTER_MESSAGES: this keypair sends no more; control rekeys. */
			drop(w, p, ep->port, EG_DROP_WG_KEY_EXHAUSTED);
			continue;
		}
		rte_pktmbuf_adj(p->m, p->off);
		hdr = rte_pktmbuf_mtod(p->m, uint8_t *);
		inner_len = rte_pktmbuf_pkt_len(p->m);
		tos = (hdr[0] >> 4) == 4 ? hdr[1] : (uint8_t)(((hdr[0] & 0x0f) << 4) | (hdr[1] >> 4));
		/* Padding to 16 bytes, but never past the tunnel MTU (as every implementation). */
		ip_len = ep->family == EG_AF_INET ? 20 : 40;
		mtu = (uint16_t)(ctx->ports[ep->port].mtu - ip_len - 8 - WG_DATA_MIN_LEN);
		padded = (inner_len + 15) & ~15u;
		if (padded > mtu)
			padded = inner_len > mtu ? inner_len : mtu;
		tail = (uint8_t *)rte_pktmbuf_append(p->m, (uint16_t)(padded - inner_len + WG_TAG_LEN));
		udp_len = 8 + WG_DATA_HDR_LEN + padded + WG_TAG_LEN;
		hdr = tail ? (uint8_t *)rte_pktmbuf_prepend(p->m, (uint16_t)(ip_len + 8 + WG_DATA_HDR_LEN)) : NULL;
		if (unlikely(!hdr)) {
			drop(w, p, ep->port, EG_DROP_NO_ROOM);
			continue;
		}
		/* The padding is at most 15 zero bytes, and the tag's 16 follow it: one
		 * 16-byte store of zeros covers it, where a memset of the exact length was a
		 * libc call per packet. The cipher writes the tag over the rest. */
		memset(tail, 0, 16);
		if (ep->family == EG_AF_INET) {
			uint32_t dst;

			memcpy(&dst, ep->addr, 4);
			/* ECN is copied out, DSCP is not: the outer header should not tell an
			 * observer the inner traffic class (as the kernel's ip_tunnel_ecn_encap) */
			dp_ipv4_write20(hdr, 0x45u << 24 | (uint32_t)(tos & 3) << 16 | (20 + udp_len),
					(uint32_t)(uint16_t)dp_next_frag_id(w) << 16,
					(uint32_t)OUTER_TTL << 24 | (uint32_t)IPPROTO_UDP << 16, ctx->ports[ep->port].ipv4,
					dst);
		} else {
			struct rte_ipv6_hdr *ip = (struct rte_ipv6_hdr *)hdr;

			ip->vtc_flow = rte_cpu_to_be_32(6u << 28 | (uint32_t)(tos & 3) << 20);
			ip->payload_len = rte_cpu_to_be_16((uint16_t)udp_len);
			ip->proto = IPPROTO_UDP;
			ip->hop_limits = OUTER_TTL;
			memcpy(ip->src_addr, ctx->ports[ep->port].ipv6, 16);
			memcpy(ip->dst_addr, ep->addr, 16);
		}
		struct rte_udp_hdr *u = (struct rte_udp_hdr *)(hdr + ip_len);
		uint8_t *msg = (uint8_t *)(u + 1);
		uint32_t idx = p->kp->remote_index;

		u->src_port = rte_cpu_to_be_16(p->peer->listen_port);
		u->dst_port = rte_cpu_to_be_16(ep->udp_port);
		u->dgram_len = rte_cpu_to_be_16((uint16_t)udp_len);
		u->dgram_cksum = 0;	/* IPv4: none (RFC 768); IPv6: summed after sealing */
		/* Type (one byte, three reserved), receiver index and counter, little-endian
		 * (WireGuard's wire order), each written as one word: GCC made the byte loop
		 * sixteen byte stores. */
		uint32_t type_le = rte_cpu_to_le_32(WG_MSG_DATA), idx_le = rte_cpu_to_le_32(idx), zero = 0;
		uint64_t counter_le = rte_cpu_to_le_64(p->counter);

		memcpy(msg, &type_le, 4);
		memcpy(msg + 4, &idx_le, 4);
		memcpy(msg + 8, &counter_le, 8);
		memcpy(p->nonce, &zero, 4);
		memcpy(p->nonce + 4, &counter_le, 8);
		ops[n] = (struct eg_aead_op){
			.chacha_key = p->kp->send_key, .nonce = p->nonce,
			.src = msg + WG_DATA_HDR_LEN, .dst = msg + WG_DATA_HDR_LEN, .len = padded,
			.tag = msg + WG_DATA_HDR_LEN + padded,
		};
		p->off = (uint16_t)(udp_len - 8);	/* reused: the message length, for counters */
		eps[n] = *ep;
		live[n++] = p;
	}
	b->n = 0;
	if (n == 0)
		return;
	eg_aead_encrypt_burst(&w->aead, ops, n);

	uint64_t now_ms = dp_wg_now_ms();

	for (unsigned i = 0; i < n; i++) {
		struct dp_wg_pkt *p = live[i];
		const struct eg_wg_endpoint *ep = &eps[i];
		const struct dp_port *out = &ctx->ports[ep->port];
		struct rte_ether_addr dmac;
		uint8_t nh[16] = {0};

		if (unlikely(ops[i].status != 0)) {
			drop(w, p, out->index, EG_DROP_NO_ROOM);
			continue;
		}
		if (ep->family == EG_AF_INET6) {
			struct rte_ipv6_hdr *ip = rte_pktmbuf_mtod(p->m, struct rte_ipv6_hdr *);
			struct rte_udp_hdr *u = (struct rte_udp_hdr *)(ip + 1);

			u->dgram_cksum = rte_ipv6_udptcp_cksum(ip, u);
		}
		if (unlikely(!dp_port_next_hop(out, ep->family, ep->addr, nh))) {
			drop(w, p, out->index, EG_DROP_NO_ROUTE);
			continue;
		}
		if (unlikely(!dp_neigh_mac(w, out->index, ep->family, nh, &dmac))) {
			drop(w, p, out->index, EG_DROP_NEIGH_UNRESOLVED);
			continue;
		}
		if (unlikely(!dp_push_l2(p->m, out, &dmac,
					 rte_cpu_to_be_16(ep->family == EG_AF_INET ? RTE_ETHER_TYPE_IPV4
										    : RTE_ETHER_TYPE_IPV6)))) {
			drop(w, p, out->index, EG_DROP_NO_ROOM);
			continue;
		}
		struct eg_wg_counters *wc = &eg_shm_wg_counters(ctx->shm.hdr, w->shm)[p->slot];
		struct eg_egress_counters *ec = &eg_shm_egress_counters(w->shm)[p->egress_id];

		wc->tx_packets++;
		wc->tx_bytes += p->off;
		ec->tx_packets++;
		ec->tx_bytes += rte_pktmbuf_pkt_len(p->m);
		dp_capture_egress_sent(w, p->egress_id, p->m);
		if (__atomic_load_n(&p->peer->last_tx_ms, __ATOMIC_RELAXED) != now_ms)
			__atomic_store_n(&p->peer->last_tx_ms, now_ms, __ATOMIC_RELAXED);
		dp_queue_tx(w, out->index, p->m);
	}
}

void dp_wg_outb_run(struct dp_worker *w)
{
	if (w->wg_out.n)
		outb_run(w);
}
