/* WireGuard transport data in the workers: packets are staged per burst, then sealed or
 * opened together in one ChaCha20-Poly1305 burst (intel-ipsec-mb). Handshake messages go
 * to egress-control (the service lcore copies them into the punt ring); it installs the
 * keypairs the workers use (lib/wg_slot.h).
 *
 * Any worker may send for any peer: counters come from one atomic add per keypair per
 * burst, and the replay window takes concurrent updates (lib/replay.h). */
#ifndef DP_WG_H
#define DP_WG_H

#include <stdint.h>

#include <rte_mbuf.h>

#include "context.h"
#include "table.h"

enum {
	DP_WG_OVERHEAD4 = 20 + 8 + 32,	/* outer IPv4, UDP, WireGuard header and tag */
	DP_WG_OVERHEAD6 = 40 + 8 + 32,
};

/* Outbound: m holds an inner IP packet starting at l3_off, TTL already decremented, that
 * fits the tunnel (dp_wg_tunnel_mtu). Consumes m. */
void dp_wg_stage_out(struct dp_worker *w, struct rte_mbuf *m, uint16_t l3_off, uint32_t slot, uint16_t egress_id);
/* Inbound: a message of any type whose first byte is at msg_off, in UDP to our port.
 * Data goes to the staged batch, handshake messages to the control process, the rest is
 * dropped. Consumes m. */
void dp_wg_receive(struct dp_worker *w, const struct eg_table_hdr *t, struct rte_mbuf *m, uint16_t in_port,
		   uint16_t l3_off, uint16_t msg_off);

void dp_wg_outb_run(struct dp_worker *w);
void dp_wg_inb_run(struct dp_worker *w, const struct eg_table_hdr *t);

static inline void dp_wg_run(struct dp_worker *w, const struct eg_table_hdr *t)
{
	if (w->wg_out.n)
		dp_wg_outb_run(w);
	if (w->wg_in.n)
		dp_wg_inb_run(w, t);
}

/* The largest inner packet a peer's tunnel carries out of port, for an endpoint of family:
 * the port MTU less the overhead, rounded down to the 16-byte padding. */
uint16_t dp_wg_tunnel_mtu(const struct dp_ctx *ctx, const struct eg_wg_peer_slot *peer);

/* A peer's endpoint read once for a run of packets to or from that peer in a burst, not
 * once per packet: each read takes the sequence lock and copies the endpoint. A roaming
 * peer's new endpoint applies from the next run. Start with {0}. */
struct dp_wg_endpoint_run {
	const struct eg_wg_peer_slot *peer;
	bool ok;
	struct eg_wg_endpoint ep;
};

/* peer's endpoint as read for the current run, NULL if it could not be read. */
static inline const struct eg_wg_endpoint *dp_wg_run_endpoint(struct dp_wg_endpoint_run *r,
							      const struct eg_wg_peer_slot *peer)
{
	if (peer != r->peer) {
		r->peer = peer;
		r->ok = eg_wg_endpoint_read(peer, &r->ep);
	}
	return r->ok ? &r->ep : NULL;
}

/* CLOCK_MONOTONIC in ms, cheaply (the coarse clock is a vDSO read). */
uint64_t dp_wg_now_ms(void);

#endif
