/* Capture points of the workers (lib/capture_ring.h has the protocol with control).
 *
 * Each hook is one test of the worker's own copy of the session number while no capture
 * runs; the copy is refreshed once per loop. Frames are copied, never held: the packet
 * goes on as if nobody looked. */
#ifndef DP_CAPTURE_H
#define DP_CAPTURE_H

#include <rte_branch_prediction.h>
#include <rte_mbuf.h>

#include "context.h"

/* Rereads the spec when control changed its session. Once per worker loop. */
void dp_capture_reload(struct dp_worker *w, uint32_t session);
/* Copies m from byte off on (up to the snap length) into the worker's capture ring. */
void dp_capture_copy(struct dp_worker *w, const struct rte_mbuf *m, uint32_t off, uint8_t dir);

static inline void dp_capture_refresh(struct dp_worker *w)
{
	uint32_t s = __atomic_load_n(&w->ctx->shm.hdr->capture.session, __ATOMIC_ACQUIRE);

	if (unlikely(s != w->cap.session))
		dp_capture_reload(w, s);
}

/* A burst a port received (dir IN) or is about to send (OUT), whole frames. */
static inline void dp_capture_port(struct dp_worker *w, uint16_t port, struct rte_mbuf *const *pkts, uint16_t n,
				   uint8_t dir)
{
	if (likely(!w->cap.session) || w->cap.what != EG_CAPTURE_PORT || w->cap.port != port)
		return;
	for (uint16_t i = 0; i < n; i++)
		dp_capture_copy(w, pkts[i], 0, dir);
}

/* A frame an egress puts on the wire: a direct egress's forwarded packet, a tunnel's
 * encrypted one (m starts at its Ethernet header). */
static inline void dp_capture_egress_sent(struct dp_worker *w, uint16_t egress_id, const struct rte_mbuf *m)
{
	if (likely(!w->cap.session) || w->cap.what != EG_CAPTURE_EGRESS || w->cap.decrypted ||
	    w->cap.egress_id != egress_id)
		return;
	dp_capture_copy(w, m, 0, EG_CAPTURE_OUT);
}

/* An inner packet about to be encrypted into a tunnel egress: its IP header at l3_off. */
static inline void dp_capture_egress_inner(struct dp_worker *w, uint16_t egress_id, const struct rte_mbuf *m,
					   uint16_t l3_off)
{
	if (likely(!w->cap.session) || w->cap.what != EG_CAPTURE_EGRESS || !w->cap.decrypted ||
	    w->cap.egress_id != egress_id)
		return;
	dp_capture_copy(w, m, l3_off, EG_CAPTURE_OUT);
}

/* What a tunnel received for a WireGuard peer or inbound SA slot: the encrypted frame
 * (decrypted false, before decryption) or the inner packet that came out of it (true,
 * m starting at its IP header). type is the egress type the slot belongs to. */
static inline void dp_capture_tunnel_in(struct dp_worker *w, uint8_t type, uint32_t slot, const struct rte_mbuf *m,
					bool decrypted)
{
	if (likely(!w->cap.session) || w->cap.what != EG_CAPTURE_EGRESS || w->cap.egress_type != type ||
	    w->cap.in_slot != slot || w->cap.decrypted != decrypted)
		return;
	dp_capture_copy(w, m, 0, EG_CAPTURE_IN);
}

/* Return traffic a direct egress's port forwards to the site side. */
static inline void dp_capture_direct_in(struct dp_worker *w, uint16_t port, const struct rte_mbuf *m)
{
	if (likely(!w->cap.session) || w->cap.what != EG_CAPTURE_EGRESS || w->cap.egress_type != EG_EGRESS_DIRECT ||
	    w->cap.port != port)
		return;
	dp_capture_copy(w, m, 0, EG_CAPTURE_IN);
}

#endif
