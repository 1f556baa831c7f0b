/* Inbound WireGuard: demultiplexing by message type, then transport data opened in
 * bursts, checked against the keypair's replay window and the peer's allowed IPs, and
 * handed to forwarding. Handshake messages go to the control process. */
#include <string.h>

#include <rte_byteorder.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include "tx.h"
#include "wg.h"
#include "wg_noise.h"
#include "worker.h"

/* A roaming peer is reported to control at most this often by any one worker's view. */
enum { ROAM_NOTICE_MS = 100 };

static void inb_run(struct dp_worker *w, const struct eg_table_hdr *t);

void dp_wg_receive(struct dp_worker *w, const struct eg_table_hdr *t, struct rte_mbuf *m, uint16_t in_port,
		   uint16_t l3_off, uint16_t msg_off)
{
	const uint8_t *msg = rte_pktmbuf_mtod_offset(m, const uint8_t *, msg_off);
	uint32_t len = rte_pktmbuf_pkt_len(m) - msg_off;
	struct dp_wg_batch *b = &w->wg_in;
	struct dp_wg_pkt *p;
	enum eg_drop_reason r = EG_DROP_WG_BAD_MESSAGE;

	if (unlikely(!rte_pktmbuf_is_contiguous(m) || len < 4 || msg[1] || msg[2] || msg[3]))
		goto drop;
	switch (msg[0]) {
	case WG_MSG_DATA:
		/* The payload is the inner packet padded to 16 bytes, or less where the padding
		 * would pass the sender's MTU: any length goes. */
		if (unlikely(len < WG_DATA_MIN_LEN))
			goto drop;
		if (unlikely(b->n == DP_BURST))
			inb_run(w, t);
		p = &b->p[b->n++];
		p->m = m;
		p->port = in_port;
		p->off = msg_off;
		p->l3_off = l3_off;
		return;
	case WG_MSG_INITIATION:
	case WG_MSG_RESPONSE:
	case WG_MSG_COOKIE_REPLY:
		if (len != (msg[0] == WG_MSG_INITIATION ? WG_INITIATION_LEN
			    : msg[0] == WG_MSG_RESPONSE ? WG_RESPONSE_LEN : WG_COOKIE_REPLY_LEN))
			goto drop;
		m->port = in_port;
		m->hash.usr = DP_PUNT_WG_HANDSHAKE;
		if (likely(rte_ring_enqueue(w->punt, m) == 0))
			return;
		r = EG_DROP_WG_HANDSHAKE_FULL;
		break;
	default:
		break;
	}
drop:
	dp_count_drop(w, in_port, r);
	rte_pktmbuf_free(m);
}

static void drop(struct dp_worker *w, struct dp_wg_pkt *p, enum eg_drop_reason r)
{
	dp_count_drop(w, p->port, r);
	rte_pktmbuf_free(p->m);
	p->m = NULL;
}

/* Where a data message's outer source lies in its frame: the address it returns (4 or 16
 * bytes by family) and the UDP port. */
static const uint8_t *outer_address(const struct dp_wg_pkt *p, uint8_t *family, uint16_t *udp_port)
{
	const uint8_t *udp = rte_pktmbuf_mtod_offset(p->m, const uint8_t *, p->off - 8);
	const uint8_t *ip = rte_pktmbuf_mtod_offset(p->m, const uint8_t *, p->l3_off);

	*udp_port = (uint16_t)(udp[0] << 8 | udp[1]);
	*family = (ip[0] >> 4) == 4 ? EG_AF_INET : EG_AF_INET6;
	return *family == EG_AF_INET ? ip + 12 : ip + 8;
}

/* The outer source of a data message, as an endpoint. */
static void outer_source(const struct dp_wg_pkt *p, struct eg_wg_endpoint *ep)
{
	const uint8_t *addr;

	memset(ep, 0, sizeof(*ep));
	ep->port = p->port;
	addr = outer_address(p, &ep->family, &ep->udp_port);
	memcpy(ep->addr, addr, eg_addr_len(ep->family));
}

/* Whether p came from endpoint cur, compared with the packet where it lies. Building the
 * endpoint first and comparing it whole made the compare read back, 8 bytes at a time,
 * address bytes just stored 4 at a time: a store forwarding stall on every packet, a sixth
 * of inb_run's samples (perf, WireGuard decapsulation at 1420 bytes). */
static bool from_endpoint(const struct dp_wg_pkt *p, const struct eg_wg_endpoint *cur)
{
	static const uint8_t zero[12];
	uint8_t family;
	uint16_t udp_port;
	const uint8_t *addr = outer_address(p, &family, &udp_port);

	if (cur->port != p->port || cur->udp_port != udp_port || cur->family != family)
		return false;
	/* fixed lengths, so that the compares stay inline */
	if (family == EG_AF_INET)
		return memcmp(cur->addr, addr, 4) == 0 && memcmp(cur->addr + 4, zero, sizeof(zero)) == 0;
	return memcmp(cur->addr, addr, 16) == 0;
}

/* The peer's endpoint follows the source of its latest authenticated packet (WireGuard
 * paper 2.1): control, the endpoint's one writer, is told. cur is the peer's endpoint as
 * the caller read it, NULL when it could not be read. */
static void notice_roaming(struct dp_worker *w, struct dp_wg_pkt *p, const struct eg_wg_endpoint *cur,
			   uint64_t now_ms)
{
	struct eg_wg_endpoint src;
	struct rte_mbuf *n;
	struct eg_msg *msg;

	if (cur && from_endpoint(p, cur))
		return;
	if (now_ms - __atomic_load_n(&p->peer->roam_noticed_ms, __ATOMIC_RELAXED) < ROAM_NOTICE_MS)
		return;
	__atomic_store_n(&p->peer->roam_noticed_ms, now_ms, __ATOMIC_RELAXED);
	outer_source(p, &src);
	msg = dp_worker_msg_new(w, 0, &n);
	if (!msg)
		return;
	msg->kind = EG_MSG_WG_ROAM;
	msg->port = src.port;
	msg->family = src.family;
	msg->remote_port = src.udp_port;
	msg->peer_slot = p->slot;
	memcpy(msg->remote, src.addr, 16);
	dp_worker_msg_punt(w, n, p->port);
}

/* A keypair a packet arrived under may now be sent with (the responder waits for this,
 * WireGuard paper 5.4.7), and becomes the sending keypair if it is newer. */
static void confirm(struct eg_wg_peer_slot *peer, struct eg_wg_keypair *kp, unsigned kpi)
{
	uint32_t cur;

	if (!__atomic_load_n(&kp->confirmed, __ATOMIC_RELAXED))
		__atomic_store_n(&kp->confirmed, 1, __ATOMIC_RELEASE);
	cur = __atomic_load_n(&peer->send_kp, __ATOMIC_ACQUIRE);
	while (cur != kpi && (cur >= EG_WG_KEYPAIRS || eg_wg_kp(peer, cur)->serial < kp->serial))
		if (__atomic_compare_exchange_n(&peer->send_kp, &cur, kpi, false, __ATOMIC_RELEASE,
						__ATOMIC_ACQUIRE))
			break;
}

static void inb_run(struct dp_worker *w, const struct eg_table_hdr *t)
{
	struct dp_ctx *ctx = w->ctx;
	const struct eg_shm_hdr *h = ctx->shm.hdr;
	struct dp_wg_batch *b = &w->wg_in;
	struct eg_aead_op ops[DP_BURST];
	struct dp_wg_pkt *live[DP_BURST];
	uint64_t reject = ctx->cfg.wg.timers.reject_after_messages;
	unsigned n = 0;

	for (uint16_t i = 0; i < b->n; i++) {
		struct dp_wg_pkt *p = &b->p[i];
		uint8_t *msg = rte_pktmbuf_mtod_offset(p->m, uint8_t *, p->off);
		uint32_t len = rte_pktmbuf_pkt_len(p->m) - p->off;
		uint32_t idx = wg_le32(msg + 4), slot = eg_wg_index_slot(idx);
		unsigned kpi = eg_wg_index_kp(idx);

		if (unlikely(slot >= h->n_wg_slots)) {
			drop(w, p, EG_DROP_WG_UNKNOWN_INDEX);
			continue;
		}
		p->slot = slot;
		p->peer = eg_shm_wg(h, slot);
		p->kp = eg_wg_kp(p->peer, kpi);
		if (unlikely(__atomic_load_n(&p->peer->state, __ATOMIC_ACQUIRE) != EG_WG_ACTIVE ||
			     __atomic_load_n(&p->kp->state, __ATOMIC_ACQUIRE) != EG_WG_ACTIVE ||
			     p->kp->local_index != idx)) {
			drop(w, p, EG_DROP_WG_UNKNOWN_INDEX);
			continue;
		}
		dp_capture_tunnel_in(w, EG_EGRESS_WIREGUARD, slot, p->m, false);
		p->counter = wg_data_counter(msg);
		/* The window counts from 1: counter 0 is a valid first message. */
		if (unlikely(p->counter >= reject)) {
			drop(w, p, EG_DROP_WG_KEY_EXHAUSTED);
			continue;
		}
		if (unlikely(eg_replay_check(eg_wg_kp_replay(p->kp), p->counter + 1) != 0)) {
			drop(w, p, EG_DROP_WG_REPLAY);
			continue;
		}
		memset(p->nonce, 0, 4);
		memcpy(p->nonce + 4, msg + 8, 8);
		ops[n] = (struct eg_aead_op){
			.chacha_key = p->kp->recv_key, .nonce = p->nonce,
			.src = msg + WG_DATA_HDR_LEN, .dst = msg + WG_DATA_HDR_LEN,
			.len = len - WG_DATA_MIN_LEN, .tag = msg + len - WG_TAG_LEN,
		};
		live[n++] = p;
	}
	b->n = 0;
	if (n == 0)
		return;
	eg_aead_decrypt_burst(&w->aead, ops, n);

	/* Only authenticated messages move the window; the burst's in one update per block. */
	struct eg_replay *win[DP_BURST];
	uint64_t counters[DP_BURST];
	int fresh[DP_BURST];

	for (unsigned i = 0; i < n; i++) {
		win[i] = ops[i].status == 0 ? eg_wg_kp_replay(live[i]->kp) : NULL;
		counters[i] = live[i]->counter + 1;
	}
	eg_replay_accept_each(win, counters, n, fresh);

	uint64_t now_ms = dp_wg_now_ms();
	struct dp_wg_endpoint_run run = {0};	/* what roaming is judged against */

	for (unsigned i = 0; i < n; i++) {
		struct dp_wg_pkt *p = live[i];
		uint8_t *inner = (uint8_t *)ops[i].dst;
		uint32_t plen = ops[i].len, inner_len;
		uint8_t family;

		if (unlikely(ops[i].status != 0)) {
			drop(w, p, EG_DROP_WG_AUTH_FAILED);
			continue;
		}
		if (unlikely(fresh[i] != 0)) {
			drop(w, p, EG_DROP_WG_REPLAY);
			continue;
		}
		/* Authenticated: the session is alive, and the peer is where this came from. */
		confirm(p->peer, p->kp, eg_wg_index_kp(p->kp->local_index));
		if (__atomic_load_n(&p->peer->last_rx_ms, __ATOMIC_RELAXED) != now_ms)
			__atomic_store_n(&p->peer->last_rx_ms, now_ms, __ATOMIC_RELAXED);
		notice_roaming(w, p, dp_wg_run_endpoint(&run, p->peer), now_ms);

		struct eg_wg_counters *wc = &eg_shm_wg_counters(ctx->shm.hdr, w->shm)[p->slot];

		wc->rx_packets++;
		wc->rx_bytes += plen + WG_DATA_MIN_LEN;
		if (plen == 0) {		/* a keepalive */
			rte_pktmbuf_free(p->m);
			continue;
		}
		if (__atomic_load_n(&p->peer->last_rx_data_ms, __ATOMIC_RELAXED) != now_ms)
			__atomic_store_n(&p->peer->last_rx_data_ms, now_ms, __ATOMIC_RELAXED);
		if ((inner[0] >> 4) == 4 && plen >= 20) {
			family = EG_AF_INET;
			inner_len = (uint32_t)inner[2] << 8 | inner[3];
		} else if ((inner[0] >> 4) == 6 && plen >= 40) {
			family = EG_AF_INET6;
			inner_len = 40 + ((uint32_t)inner[4] << 8 | inner[5]);
		} else {
			drop(w, p, EG_DROP_WG_BAD_INNER);
			continue;
		}
		if (unlikely(inner_len > plen || inner_len < 20)) {
			drop(w, p, EG_DROP_WG_BAD_INNER);
			continue;
		}
		/* Cryptokey routing: the peer may only send from its allowed IPs. */
		if (unlikely(!t || !eg_table_wg_allowed(t, p->slot, family,
							 inner + (family == EG_AF_INET ? 12 : 8)))) {
			drop(w, p, EG_DROP_WG_ALLOWED_IPS);
			continue;
		}
		rte_pktmbuf_adj(p->m, (uint16_t)(p->off + WG_DATA_HDR_LEN));
		rte_pktmbuf_trim(p->m, (uint16_t)(rte_pktmbuf_pkt_len(p->m) - inner_len));
		dp_worker_route_inner(w, t, p->port, p->m, family,
				      &(struct dp_origin){.kind = DP_FROM_WG, .slot = p->slot});
	}
}

void dp_wg_inb_run(struct dp_worker *w, const struct eg_table_hdr *t)
{
	if (w->wg_in.n)
		inb_run(w, t);
}
