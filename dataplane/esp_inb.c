/* Inbound ESP: demultiplex by SPI, pre-check the replay window, authenticate and decrypt
 * in one burst, then record the sequence number (only authenticated packets move the
 * window, RFC 4303 3.4.3), verify padding and hand the inner packet to forwarding. */
#include <string.h>

#include <rte_byteorder.h>
#include <rte_ip.h>

#include "esp.h"
#include "tx.h"
#include "worker.h"

enum {
	NEXT_IPV4 = 4,
	NEXT_IPV6 = 41,
	NEXT_NONE = 59,			/* dummy packet, RFC 4303 2.6 */
	MIN_CIPHERTEXT = 2,		/* at least the trailer */
};

void dp_esp_stage_in(struct dp_worker *w, struct rte_mbuf *m, uint16_t in_port, uint16_t l3_off,
		     uint16_t esp_off)
{
	struct dp_esp_batch *b = &w->esp_in;
	struct dp_esp_pkt *p;

	if (unlikely(b->n == DP_BURST)) {
		rte_pktmbuf_free(m);
		return;
	}
	p = &b->p[b->n++];
	p->m = m;
	p->port = in_port;
	p->l3_off = l3_off;
	p->esp_off = esp_off;
	p->sa = NULL;
}

static void drop(struct dp_worker *w, struct dp_esp_pkt *p, enum eg_drop_reason r, uint64_t *sa_counter)
{
	if (sa_counter)
		(*sa_counter)++;
	dp_count_drop(w, p->port, r);
	rte_pktmbuf_free(p->m);
}

/* The outer destination must be the SA's local address. */
static bool for_this_sa(const struct dp_esp_pkt *p, const struct eg_sa_slot *sa)
{
	const uint8_t *l3 = rte_pktmbuf_mtod_offset(p->m, const uint8_t *, p->l3_off);

	if ((l3[0] >> 4) == 4)
		return sa->family == EG_AF_INET && memcmp(l3 + 16, sa->local, 4) == 0;
	return sa->family == EG_AF_INET6 && memcmp(l3 + 24, sa->local, 16) == 0;
}

void dp_esp_inb_run(struct dp_worker *w, const struct eg_table_hdr *t)
{
	struct dp_esp_batch *b = &w->esp_in;
	const struct eg_shm_hdr *h = w->ctx->shm.hdr;
	struct eg_aead_op ops[DP_BURST];
	struct dp_esp_pkt *live[DP_BURST];
	unsigned n = 0;

	for (uint16_t i = 0; i < b->n; i++) {
		struct dp_esp_pkt *p = &b->p[i];
		uint8_t *esp = rte_pktmbuf_mtod_offset(p->m, uint8_t *, p->esp_off);
		uint32_t esp_len = rte_pktmbuf_pkt_len(p->m) - p->esp_off;
		uint32_t spi_be, lo_be, hi_be, ct_len, slot;
		struct eg_sa_counters *sc;
		struct eg_sa_slot *sa;
		uint64_t seq;

		if (unlikely(rte_pktmbuf_data_len(p->m) != rte_pktmbuf_pkt_len(p->m) ||
			     esp_len < DP_ESP_HDR_LEN + DP_ESP_IV_LEN + MIN_CIPHERTEXT + DP_ESP_ICV_LEN ||
			     (esp_len - DP_ESP_HDR_LEN - DP_ESP_IV_LEN - DP_ESP_ICV_LEN) % 4 != 0)) {
			drop(w, p, EG_DROP_ESP_MALFORMED, NULL);
			continue;
		}
		memcpy(&spi_be, esp, 4);
		memcpy(&lo_be, esp + 4, 4);
		slot = t ? eg_table_spi_lookup(t, rte_be_to_cpu_32(spi_be)) : EG_TABLE_NO_SA;
		if (unlikely(slot == EG_TABLE_NO_SA)) {
			drop(w, p, EG_DROP_ESP_NO_SA, NULL);
			continue;
		}
		sa = eg_shm_sa(h, slot);
		sc = &eg_shm_sa_counters(w->shm)[slot];
		if (unlikely(__atomic_load_n(&sa->state, __ATOMIC_ACQUIRE) != EG_SA_ACTIVE ||
			     sa->dir != EG_SA_DIR_IN || sa->key.arch != (uint32_t)w->aead.arch)) {
			drop(w, p, EG_DROP_ESP_SA_STOPPED, &sc->other_drops);
			continue;
		}
		if (unlikely(!for_this_sa(p, sa))) {
			drop(w, p, EG_DROP_ESP_NO_SA, &sc->other_drops);
			continue;
		}
		seq = sa->esn ? eg_replay_esn(eg_sa_replay(sa), rte_be_to_cpu_32(lo_be)) : rte_be_to_cpu_32(lo_be);
		/* Sequence number 0 is never sent (RFC 4303 3.3.3). Cheap check before the ICV. */
		if (unlikely(seq == 0 || eg_replay_check(eg_sa_replay(sa), seq) != 0)) {
			drop(w, p, EG_DROP_ESP_REPLAY, &sc->replays);
			continue;
		}
		ct_len = esp_len - DP_ESP_HDR_LEN - DP_ESP_IV_LEN - DP_ESP_ICV_LEN;
		hi_be = rte_cpu_to_be_32((uint32_t)(seq >> 32));
		memcpy(p->nonce, sa->salt, EG_SA_SALT_LEN);
		memcpy(p->nonce + 4, esp + DP_ESP_HDR_LEN, DP_ESP_IV_LEN);
		memcpy(p->aad, &spi_be, 4);
		if (sa->esn) {
			memcpy(p->aad + 4, &hi_be, 4);
			memcpy(p->aad + 8, &lo_be, 4);
		} else {
			memcpy(p->aad + 4, &lo_be, 4);
		}
		p->sa = sa;
		p->slot = slot;
		p->seq = seq;
		dp_capture_tunnel_in(w, EG_EGRESS_IPSEC, slot, p->m, false);
		ops[n] = (struct eg_aead_op){
			.key = &sa->key, .nonce = p->nonce, .aad = p->aad, .aad_len = sa->esn ? 12 : 8,
			.src = esp + DP_ESP_HDR_LEN + DP_ESP_IV_LEN, .dst = esp + DP_ESP_HDR_LEN + DP_ESP_IV_LEN,
			.len = ct_len, .tag = esp + DP_ESP_HDR_LEN + DP_ESP_IV_LEN + ct_len,
		};
		live[n++] = p;
	}
	b->n = 0;
	if (n == 0)
		return;
	eg_aead_decrypt_burst(&w->aead, ops, n);

	/* Only authenticated packets move the window; the burst's in one update per block. */
	struct eg_replay *win[DP_BURST];
	uint64_t seqs[DP_BURST];
	int fresh[DP_BURST];

	for (unsigned i = 0; i < n; i++) {
		win[i] = ops[i].status == 0 ? eg_sa_replay(live[i]->sa) : NULL;
		seqs[i] = live[i]->seq;
	}
	eg_replay_accept_each(win, seqs, n, fresh);

	for (unsigned i = 0; i < n; i++) {
		struct dp_esp_pkt *p = live[i];
		struct eg_sa_counters *sc = &eg_shm_sa_counters(w->shm)[p->slot];
		uint8_t *ct = ops[i].dst;
		uint32_t ct_len = ops[i].len, inner_len;
		uint8_t pad, next;
		bool pad_ok = true;

		if (unlikely(ops[i].status != 0)) {
			drop(w, p, EG_DROP_ESP_AUTH_FAILED, &sc->auth_failures);
			continue;
		}
		if (unlikely(fresh[i] != 0)) {
			drop(w, p, EG_DROP_ESP_REPLAY, &sc->replays);
			continue;
		}
		pad = ct[ct_len - 2];
		next = ct[ct_len - 1];
		if (unlikely((uint32_t)pad + 2 > ct_len)) {
			drop(w, p, EG_DROP_ESP_BAD_PADDING, &sc->padding_errors);
			continue;
		}
		inner_len = ct_len - 2 - pad;
		for (uint8_t k = 0; k < pad; k++)
			pad_ok &= ct[inner_len + k] == (uint8_t)(k + 1);
		if (unlikely(!pad_ok)) {
			drop(w, p, EG_DROP_ESP_BAD_PADDING, &sc->padding_errors);
			continue;
		}
		if (unlikely(next == NEXT_NONE)) {
			drop(w, p, EG_DROP_ESP_DUMMY, NULL);
			continue;
		}
		if (unlikely(next != NEXT_IPV4 && next != NEXT_IPV6)) {
			drop(w, p, EG_DROP_ESP_BAD_INNER, &sc->other_drops);
			continue;
		}
		sc->packets++;
		sc->bytes += inner_len;
		rte_pktmbuf_trim(p->m, (uint16_t)(pad + 2 + DP_ESP_ICV_LEN));
		rte_pktmbuf_adj(p->m, (uint16_t)(p->esp_off + DP_ESP_HDR_LEN + DP_ESP_IV_LEN));
		dp_worker_route_inner(w, t, p->port, p->m, next == NEXT_IPV4 ? EG_AF_INET : EG_AF_INET6,
				      &(struct dp_origin){.kind = DP_FROM_ESP, .slot = p->slot});
	}
}
