/* State of one egress-dataplane process, shared by its main (service) lcore and workers.
 * Workers read everything here but write only their own struct dp_worker. */
#ifndef DP_CONTEXT_H
#define DP_CONTEXT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <rte_ether.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "aead.h"
#include "config.h"
#include "shm.h"

enum {
	DP_BURST = 32,
	DP_RX_DESC = 1024,
	DP_TX_DESC = 1024,
	DP_PUNT_RING = 1024,		/* per worker, to the service lcore */
	DP_INJECT_RING = 1024,		/* per worker, from the service lcore */
	DP_IDLE_SPIN = 256,		/* empty polls before the first sleep */
	/* Reassembly of fragments addressed to us, per worker: datagrams in progress, and how
	 * long one may take. Short next to RFC 8200's 60 s: a data plane holds few, and an
	 * ESP peer's fragments arrive back to back. */
	DP_REASM_SLOTS = 256,
	DP_REASM_TIMEOUT_MS = 2000,
};
_Static_assert((unsigned)DP_BURST <= (unsigned)EG_REPLAY_MAX_BURST, "a burst's replay updates go through eg_replay_accept_each");

struct dp_neigh_table;
struct eg_reasm;
struct dp_flow_cache;
struct dp_routes;

struct dp_port {
	const struct eg_port_cfg *cfg;
	uint16_t port_id;		/* DPDK ethdev id */
	uint16_t index;			/* position in the config */
	uint16_t rx_queues;
	uint16_t mtu;
	struct rte_ether_addr mac;
	bool has_ipv4, has_ipv6;
	uint32_t ipv4;			/* network order */
	uint8_t ipv6[16];
	struct eg_prefix net4, net6;	/* connected subnets (host bits cleared) */
	uint32_t net4_addr, net4_mask;	/* net4 as words, network order: the on-link test per packet */
};

/* A packet waiting for transmission on one port, per worker. */
struct dp_tx_buffer {
	uint16_t n;
	struct rte_mbuf *pkts[DP_BURST];
};

/* Why a worker punts a frame, in m->hash.usr: the service answers ARP/ND/echo for
 * ordinary punts, and sends an ICMP "too big" error for DP_PUNT_TOO_BIG | mtu << 16. */
enum {
	DP_PUNT_PLAIN = 0,
	DP_PUNT_TOO_BIG = 1,
	DP_PUNT_WG_HANDSHAKE = 2,	/* a WireGuard handshake message: for the control process */
	DP_PUNT_MSG = 3,		/* the frame is a struct eg_msg for the control process */
};

/* What the service hands a worker through its inject ring, in m->hash.usr. */
enum {
	DP_INJECT_FRAME = 0,		/* a whole frame for port m->port */
	DP_INJECT_PROBE = 1,		/* an IP packet to stamp and send (dataplane/probe.c) */
};

/* Where an inner packet came from: the tunnel it was decrypted out of. */
enum dp_origin_kind { DP_FROM_WG = 1, DP_FROM_ESP = 2 };

struct dp_origin {
	uint8_t kind;			/* enum dp_origin_kind */
	uint32_t slot;			/* the WireGuard peer's slot, or the inbound SA's */
};

/* A worker asking the service to resolve a next hop (element of dp_worker.resolve). */
struct dp_resolve_req {
	uint16_t port;
	uint8_t family;
	uint8_t pad;
	uint8_t ip[16];
};

/* A packet staged for ESP in this burst. */
struct dp_esp_pkt {
	struct rte_mbuf *m;
	struct eg_sa_slot *sa;
	uint32_t slot;
	uint16_t port;			/* inbound: where it came in */
	uint16_t l3_off;		/* outer (in) or inner (out) IP header */
	uint16_t esp_off;		/* inbound: the ESP header */
	uint16_t egress_id;		/* outbound: egress counter index */
	uint64_t seq;
	bool may_fragment;		/* outbound: the ESP packet may be fragmented */
	uint8_t aad[12];
	uint8_t nonce[12];
};

struct dp_esp_batch {
	uint16_t n;
	struct dp_esp_pkt p[DP_BURST];
};

/* A packet staged for WireGuard in this burst. */
struct dp_wg_pkt {
	struct rte_mbuf *m;
	struct eg_wg_peer_slot *peer;
	struct eg_wg_keypair *kp;
	uint32_t slot;
	uint16_t port;			/* inbound: where it came in */
	uint16_t off;			/* outbound: the inner packet; inbound: the message */
	uint16_t l3_off;		/* inbound: the outer IP header */
	uint16_t egress_id;		/* outbound */
	uint64_t counter;
	uint8_t nonce[12];
};

struct dp_wg_batch {
	uint16_t n;
	struct dp_wg_pkt p[DP_BURST];
};

struct dp_ctx;

struct dp_worker {
	unsigned id;
	unsigned lcore;
	struct dp_ctx *ctx;
	struct eg_worker_shm *shm;	/* this worker's counters and QSBR state */
	struct rte_ring *punt;		/* worker -> service */
	struct rte_ring *inject;	/* service -> worker: frames to send, m->port = port index */
	struct rte_ring *resolve;	/* worker -> service: struct dp_resolve_req */
	struct dp_tx_buffer tx[EG_MAX_PORTS];
	/* Next hops this worker asked the service to resolve recently, so that a burst of
	 * packets toward an unresolved gateway asks once, not per packet. */
	struct {
		uint8_t ip[16];
		uint16_t port;
		uint64_t tsc;
	} asked[64];
	uint64_t idle_polls;
	struct eg_capture_spec cap;		/* control's capture spec as of this loop */
	struct eg_aead_ctx aead;		/* this worker's crypto manager */
	struct dp_esp_batch esp_out, esp_in;
	struct dp_wg_batch wg_out, wg_in;
	/* Identification of the IPv4 and IPv6 fragments we send: workers count in steps of
	 * n_workers from their own id, so that no two of them use one value at once. */
	uint32_t frag_id;
	struct dp_flow_cache *flows;		/* classification results by flow */
	struct eg_reasm *reasm;			/* fragments addressed to us */
	/* Source NAT's random bits (dataplane/nat.c). */
	uint64_t nat_rnd[32];
	unsigned nat_rnd_left;
	bool nat_seeded;
	uint8_t nat_seed[32];
	uint16_t reasm_port;			/* where the last one came in, for expiry drops */
	/* The last next hop whose MAC forwarding looked up, kept for one burst only: a
	 * burst mostly goes to one gateway, and each table read (a seqlock, a hash, an
	 * address compare) had cost a seventh of direct forwarding. Outside a burst it is
	 * never used, so a MAC the service changes applies from the next burst on. */
	bool in_burst;
	struct {
		bool valid;
		uint8_t family;
		uint16_t port;
		uint64_t ip[2];			/* the next hop, zero padded */
		struct rte_ether_addr mac;
	} last_nh;
	/* Likewise the tunnel MTU of the last WireGuard peer packets went to: reading it
	 * takes the peer's endpoint under its sequence lock. */
	struct {
		bool valid;
		uint16_t mtu;
		uint32_t slot;
	} last_wg_mtu;
} __rte_cache_aligned;

struct dp_ctx {
	struct eg_config cfg;
	unsigned n_ports;
	struct dp_port ports[EG_MAX_PORTS];
	unsigned n_workers;
	struct dp_worker *workers;
	struct eg_shm_map shm;
	struct eg_nat_hdr *nat;		/* the segment's source NAT region, NULL if none */
	struct dp_neigh_table *neigh;
	struct dp_routes *routes;
	struct rte_mempool *pool;
	uint64_t tsc_hz;
	IMB_ARCH imb_arch;
	volatile bool stop;
};

/* An identification for a fragmented packet this worker sends (see dp_worker.frag_id). */
static inline uint32_t dp_next_frag_id(struct dp_worker *w)
{
	uint32_t id = w->frag_id;

	w->frag_id += w->ctx->n_workers;
	return id;
}

/* The port whose interface address ip is, or -1. A handful of ports: a short loop beats
 * a hash. */
static inline int dp_own_address_port(const struct dp_ctx *ctx, uint8_t family, const uint8_t *ip)
{
	for (unsigned i = 0; i < ctx->n_ports; i++) {
		const struct dp_port *p = &ctx->ports[i];

		if (family == EG_AF_INET ? p->has_ipv4 && eg_addr_equal(family, (const uint8_t *)&p->ipv4, ip)
					 : p->has_ipv6 && eg_addr_equal(family, p->ipv6, ip))
			return (int)i;
	}
	return -1;
}

#endif
