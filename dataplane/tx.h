/* What every worker stage shares at its end: counting a drop, and queueing a finished
 * frame on this worker's tx queue of a port (sent a burst at a time). */
#ifndef DP_TX_H
#define DP_TX_H

#include <rte_ethdev.h>

#include "capture.h"
#include "context.h"
#include "neigh.h"
#include "worker.h"

static inline void dp_count_drop(struct dp_worker *w, uint16_t port, enum eg_drop_reason r)
{
	w->shm->drop[r]++;
	w->shm->drops++;
	w->shm->port[port].drops++;
}

/* Sends what is buffered for port out; what the device does not take is dropped (tx_full). */
static inline void dp_tx_flush_port(struct dp_worker *w, uint16_t out)
{
	struct dp_tx_buffer *b = &w->tx[out];
	struct eg_port_counters *pc = &w->shm->port[out];
	uint16_t sent;

	if (b->n == 0)
		return;
	dp_capture_port(w, out, b->pkts, b->n, EG_CAPTURE_OUT);
	sent = rte_eth_tx_burst(w->ctx->ports[out].port_id, (uint16_t)w->id, b->pkts, b->n);
	for (uint16_t i = 0; i < sent; i++)
		pc->tx_bytes += rte_pktmbuf_pkt_len(b->pkts[i]);
	pc->tx_packets += sent;
	w->shm->tx_packets += sent;
	for (uint16_t i = sent; i < b->n; i++) {
		dp_count_drop(w, out, EG_DROP_TX_FULL);
		rte_pktmbuf_free(b->pkts[i]);
	}
	b->n = 0;
}

/* Puts a new Ethernet header (and the port's VLAN tag) in front of an L3 packet at the
 * start of m. ethertype in network order. */
static inline bool dp_push_l2(struct rte_mbuf *m, const struct dp_port *out,
			      const struct rte_ether_addr *dmac, uint16_t ethertype)
{
	uint16_t len = sizeof(struct rte_ether_hdr) + (out->cfg->vlan ? sizeof(struct rte_vlan_hdr) : 0);
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)rte_pktmbuf_prepend(m, len);

	if (unlikely(!eth))
		return false;
	eth->dst_addr = *dmac;
	eth->src_addr = out->mac;
	if (out->cfg->vlan) {
		struct rte_vlan_hdr *vh = (struct rte_vlan_hdr *)(eth + 1);

		eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_VLAN);
		vh->vlan_tci = rte_cpu_to_be_16(out->cfg->vlan);
		vh->eth_proto = ethertype;
	} else {
		eth->ether_type = ethertype;
	}
	return true;
}

/* The next hop toward dst out of port out: dst itself when on-link, else the gateway. */
static inline bool dp_port_next_hop(const struct dp_port *out, uint8_t family, const uint8_t *dst,
				    uint8_t nh[16])
{
	const struct eg_port_cfg *c = out->cfg;

	if (family == EG_AF_INET) {
		uint32_t d;

		/* A mask and a compare: eg_prefix_contains, a call into memcmp, had cost a
		 * twentieth of direct forwarding. */
		memcpy(&d, dst, 4);
		if (out->has_ipv4 && (d & out->net4_mask) == out->net4_addr) {
			memcpy(nh, dst, 4);
			return true;
		}
		if (c->has_gateway4) {
			memcpy(nh, c->gateway4.addr, 4);
			return true;
		}
		return false;
	}
	if (out->has_ipv6 && eg_prefix_contains(&out->net6, EG_AF_INET6, dst)) {
		memcpy(nh, dst, 16);
		return true;
	}
	if (c->has_gateway6) {
		memcpy(nh, c->gateway6.addr, 16);
		return true;
	}
	return false;
}

/* The MAC of next hop nh out of port, from the burst's last lookup when it was the same
 * next hop (see dp_worker.last_nh). False when it is not known yet: the service has then
 * been asked to resolve it. An IPv4 next hop is read as the one word it was
 * written as: read 16 bytes wide right after a 4-byte write into a zeroed array, it
 * stalled on store forwarding (a quarter of forwarding's to_port samples). */
static inline bool dp_neigh_mac(struct dp_worker *w, uint16_t port, uint8_t family, const uint8_t nh[16],
				struct rte_ether_addr *mac)
{
	uint64_t ip[2] = {0, 0};

	if (family == EG_AF_INET)
		memcpy(ip, nh, 4);
	else
		memcpy(ip, nh, 16);
	if (w->last_nh.valid && w->last_nh.port == port && w->last_nh.family == family &&
	    ((ip[0] ^ w->last_nh.ip[0]) | (ip[1] ^ w->last_nh.ip[1])) == 0) {
		*mac = w->last_nh.mac;
		return true;
	}
	if (!dp_neigh_lookup(w->ctx->neigh, port, family, nh, mac)) {
		dp_worker_ask_resolve(w, port, family, nh);
		return false;
	}
	if (w->in_burst) {
		w->last_nh.valid = true;
		w->last_nh.port = port;
		w->last_nh.family = family;
		w->last_nh.ip[0] = ip[0];
		w->last_nh.ip[1] = ip[1];
		w->last_nh.mac = *mac;
	}
	return true;
}

static inline void dp_queue_tx(struct dp_worker *w, uint16_t out, struct rte_mbuf *m)
{
	struct dp_tx_buffer *b = &w->tx[out];

	if (unlikely(b->n == DP_BURST))
		dp_tx_flush_port(w, out);
	b->pkts[b->n++] = m;
}

#endif
