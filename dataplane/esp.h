/* ESP tunnel mode (RFC 4303) in the workers: packets are staged per burst, then
 * encapsulated or checked and decrypted together in one crypto burst (intel-ipsec-mb).
 *
 * Many workers may use one SA at once: outbound sequence numbers come from one atomic add
 * per SA per burst (a block of numbers), and the inbound replay window is lock-free
 * (lib/replay.h). We chose this over one SA per worker (RFC 9611) because that needs the
 * peer to negotiate per-resource SAs, which a plain peer, a config-only SA or an IKE daemon
 * without RFC 9611 cannot do; and RSS sends one SA's inbound packets (same outer 3-tuple)
 * to one queue anyway. */
#ifndef DP_ESP_H
#define DP_ESP_H

#include <stdint.h>

#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_udp.h>

#include "context.h"
#include "table.h"

enum {
	DP_ESP_HDR_LEN = 8,		/* SPI, sequence number */
	DP_ESP_IV_LEN = 8,		/* RFC 4106 3.1: explicit IV */
	DP_ESP_ICV_LEN = 16,
	DP_NATT_PORT = 4500,
};

/* Outbound: m holds an inner IP packet starting at l3_off (its L2 header is dropped), TTL
 * already decremented. egress_id is the egress counter index. Consumes m. */
void dp_esp_stage_out(struct dp_worker *w, struct rte_mbuf *m, uint16_t l3_off, uint32_t sa_slot,
		      uint16_t egress_id);
/* Inbound: m's ESP header is at esp_off from the frame start (after UDP for NAT-T);
 * l3_off is where the outer IP header starts. Consumes m. */
void dp_esp_stage_in(struct dp_worker *w, struct rte_mbuf *m, uint16_t in_port, uint16_t l3_off,
		     uint16_t esp_off);
/* Runs the staged packets: outbound ones are encrypted and queued for transmission
 * (esp_outb.c), inbound ones authenticated, decrypted and handed back to forwarding
 * (esp_inb.c, dp_worker_route_inner). */
void dp_esp_outb_run(struct dp_worker *w);
void dp_esp_inb_run(struct dp_worker *w, const struct eg_table_hdr *t);

static inline void dp_esp_run(struct dp_worker *w, const struct eg_table_hdr *t)
{
	dp_esp_outb_run(w);
	if (w->esp_in.n)
		dp_esp_inb_run(w, t);
}

/* Padding after an inner packet of inner_len bytes: the payload, padding and the two
 * trailer bytes end on a 4-byte boundary (RFC 4303 2.4); the AEADs here need no larger
 * block. */
static inline uint16_t dp_esp_pad_len(uint32_t inner_len)
{
	return (uint16_t)((4 - ((inner_len + 2) & 3)) & 3);
}

/* Bytes ESP adds around an inner packet of inner_len bytes for this SA. Inline: every
 * packet into a tunnel is checked against the MTU with it. */
static inline uint16_t dp_esp_overhead(const struct eg_sa_slot *sa, uint16_t inner_len)
{
	return (uint16_t)((sa->family == EG_AF_INET ? sizeof(struct rte_ipv4_hdr) : sizeof(struct rte_ipv6_hdr)) +
			  (sa->udp_encap ? sizeof(struct rte_udp_hdr) : 0) + DP_ESP_HDR_LEN + DP_ESP_IV_LEN +
			  dp_esp_pad_len(inner_len) + 2 + DP_ESP_ICV_LEN);
}

#endif
