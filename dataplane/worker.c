#include "worker.h"

#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_pause.h>
#include <rte_prefetch.h>

#include "flow_select.h"
#include "neigh.h"
#include "routes.h"

/* Why a packet leaves the forwarding path before transmission. */
enum outcome { FORWARD, PUNT, DROP };

struct parsed {
	uint16_t l2_len;
	uint16_t l3_len;		/* bytes of the IP packet */
	uint16_t ethertype;		/* network order, of the L3 header */
	void *l3;
	struct eg_flow_key key;
};

static inline void count_drop(struct dp_worker *w, uint16_t in, enum eg_drop_reason r)
{
	w->shm->drop[r]++;
	w->shm->drops++;
	w->shm->port[in].drops++;
}

static inline bool is_l4_with_ports(uint8_t proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP;
}

static enum eg_drop_reason parse_ipv4(const struct dp_ctx *ctx, struct rte_mbuf *m,
				      struct parsed *p, enum outcome *o)
{
	struct rte_ipv4_hdr *ip = p->l3;
	uint16_t avail = rte_pktmbuf_data_len(m) - p->l2_len;
	uint16_t ihl, tot;

	if (unlikely(avail < sizeof(*ip)))
		return EG_DROP_IPV4_RUNT;
	ihl = (uint16_t)((ip->version_ihl & 0xf) * 4);
	if (unlikely((ip->version_ihl >> 4) != 4 || ihl < sizeof(*ip)))
		return EG_DROP_IPV4_BAD_HEADER;
	if (unlikely(avail < ihl))
		return EG_DROP_IPV4_RUNT;
	tot = rte_be_to_cpu_16(ip->total_length);
	if (unlikely(tot < ihl || p->l2_len + tot > rte_pktmbuf_pkt_len(m)))
		return EG_DROP_IPV4_BAD_LENGTH;
	if (unlikely(rte_raw_cksum(ip, ihl) != 0xffff))
		return EG_DROP_IPV4_BAD_CHECKSUM;
	/* Ethernet pads short frames; the padding must not travel on as payload. */
	if (rte_pktmbuf_pkt_len(m) > (uint32_t)p->l2_len + tot)
		rte_pktmbuf_trim(m, (uint16_t)(rte_pktmbuf_pkt_len(m) - p->l2_len - tot));
	p->l3_len = tot;

	struct eg_flow_key *k = &p->key;

	k->family = EG_AF_INET;
	k->proto = ip->next_proto_id;
	k->dscp = ip->type_of_service >> 2;
	memcpy(k->src, &ip->src_addr, 4);
	memcpy(k->dst, &ip->dst_addr, 4);
	/* Only a first fragment carries the ports; later ones classify without them. */
	if (is_l4_with_ports(k->proto) && (rte_be_to_cpu_16(ip->fragment_offset) & RTE_IPV4_HDR_OFFSET_MASK) == 0) {
		const uint16_t *ports = (const uint16_t *)((uint8_t *)ip + ihl);

		if (unlikely(avail < ihl + 4 || tot < ihl + 4))
			return EG_DROP_L4_RUNT;
		k->sport = rte_be_to_cpu_16(ports[0]);
		k->dport = rte_be_to_cpu_16(ports[1]);
	}
	if (dp_own_address_port(ctx, EG_AF_INET, k->dst) >= 0) {
		*o = PUNT;
		return EG_DROP_MAX;
	}
	/* Multicast, limited broadcast and 0/8 are never routed. */
	if (unlikely(k->dst[0] >= 224 || k->dst[0] == 0))
		return EG_DROP_NOT_FORWARDABLE;
	if (unlikely(ip->time_to_live <= 1))
		return EG_DROP_TTL_EXCEEDED;
	*o = FORWARD;
	return EG_DROP_MAX;
}

static inline bool ipv6_is_ext(uint8_t nh)
{
	return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS ||
	       nh == IPPROTO_FRAGMENT;
}

static enum eg_drop_reason parse_ipv6(const struct dp_ctx *ctx, struct rte_mbuf *m,
				      struct parsed *p, enum outcome *o)
{
	struct rte_ipv6_hdr *ip = p->l3;
	uint16_t avail = rte_pktmbuf_data_len(m) - p->l2_len;
	uint16_t plen, off = sizeof(*ip);
	uint8_t nh;
	bool later_fragment = false;

	if (unlikely(avail < sizeof(*ip)))
		return EG_DROP_IPV6_RUNT;
	if (unlikely((rte_be_to_cpu_32(ip->vtc_flow) >> 28) != 6))
		return EG_DROP_IPV6_BAD_HEADER;
	plen = rte_be_to_cpu_16(ip->payload_len);
	if (unlikely(p->l2_len + sizeof(*ip) + plen > rte_pktmbuf_pkt_len(m)))
		return EG_DROP_IPV6_BAD_LENGTH;
	if (rte_pktmbuf_pkt_len(m) > p->l2_len + sizeof(*ip) + plen)
		rte_pktmbuf_trim(m, (uint16_t)(rte_pktmbuf_pkt_len(m) - p->l2_len - sizeof(*ip) - plen));
	p->l3_len = (uint16_t)(sizeof(*ip) + plen);

	struct eg_flow_key *k = &p->key;

	k->family = EG_AF_INET6;
	k->dscp = (uint8_t)((rte_be_to_cpu_32(ip->vtc_flow) >> 22) & 0x3f);
	memcpy(k->src, ip->src_addr, 16);
	memcpy(k->dst, ip->dst_addr, 16);
	/* Walk a bounded number of extension headers to the transport protocol. */
	nh = ip->proto;
	for (unsigned i = 0; i < 4 && ipv6_is_ext(nh); i++) {
		const uint8_t *ext = (const uint8_t *)ip + off;

		if (unlikely(avail < off + 8 || p->l3_len < off + 8))
			return EG_DROP_IPV6_BAD_HEADER;
		if (nh == IPPROTO_FRAGMENT) {
			later_fragment = (rte_be_to_cpu_16(*(const uint16_t *)(ext + 2)) & 0xfff8) != 0;
			off += 8;
		} else {
			off += (uint16_t)((ext[1] + 1) * 8);
		}
		nh = ext[0];
	}
	if (unlikely(ipv6_is_ext(nh)))
		return EG_DROP_IPV6_BAD_HEADER;
	k->proto = nh;
	if (is_l4_with_ports(nh) && !later_fragment) {
		const uint16_t *ports = (const uint16_t *)((uint8_t *)ip + off);

		if (unlikely(avail < off + 4 || p->l3_len < off + 4))
			return EG_DROP_L4_RUNT;
		k->sport = rte_be_to_cpu_16(ports[0]);
		k->dport = rte_be_to_cpu_16(ports[1]);
	}
	/* Neighbour discovery, link-local and multicast control traffic and anything for
	 * our own addresses is the service's. */
	if (dp_own_address_port(ctx, EG_AF_INET6, k->dst) >= 0 ||
	    (nh == IPPROTO_ICMPV6 && (k->dst[0] == 0xff || (k->dst[0] == 0xfe && (k->dst[1] & 0xc0) == 0x80)))) {
		*o = PUNT;
		return EG_DROP_MAX;
	}
	if (unlikely(k->dst[0] == 0xff || (k->dst[0] == 0xfe && (k->dst[1] & 0xc0) == 0x80) ||
		     (k->src[0] == 0xfe && (k->src[1] & 0xc0) == 0x80)))
		return EG_DROP_NOT_FORWARDABLE;
	if (unlikely(ip->hop_limits <= 1))
		return EG_DROP_TTL_EXCEEDED;
	*o = FORWARD;
	return EG_DROP_MAX;
}

/* Layer 2: our MAC (or multicast), the port's VLAN, then the network protocol. */
static enum eg_drop_reason parse(const struct dp_ctx *ctx, const struct dp_port *port,
				 struct rte_mbuf *m, struct parsed *p, enum outcome *o)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	uint16_t len = rte_pktmbuf_data_len(m);
	uint16_t vid = 0;
	bool tagged = false;

	if (unlikely(len < sizeof(*eth)))
		return EG_DROP_ETH_RUNT;
	if (unlikely(!rte_is_multicast_ether_addr(&eth->dst_addr) &&
		     !rte_is_same_ether_addr(&eth->dst_addr, &port->mac)))
		return EG_DROP_L2_OTHER_HOST;
	p->ethertype = eth->ether_type;
	p->l2_len = sizeof(*eth);
	if (p->ethertype == rte_cpu_to_be_16(RTE_ETHER_TYPE_VLAN)) {
		const struct rte_vlan_hdr *vh = (const struct rte_vlan_hdr *)(eth + 1);

		if (unlikely(len < sizeof(*eth) + sizeof(*vh)))
			return EG_DROP_ETH_RUNT;
		tagged = true;
		vid = rte_be_to_cpu_16(vh->vlan_tci) & 0xfff;
		p->ethertype = vh->eth_proto;
		p->l2_len += sizeof(*vh);
	}
	if (unlikely(tagged ? vid != port->cfg->vlan : port->cfg->vlan != 0))
		return EG_DROP_VLAN_MISMATCH;
	p->l3 = (uint8_t *)eth + p->l2_len;
	memset(&p->key, 0, sizeof(p->key));
	p->key.in_port = port->index;
	if (p->ethertype == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4))
		return parse_ipv4(ctx, m, p, o);
	if (p->ethertype == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6))
		return parse_ipv6(ctx, m, p, o);
	if (p->ethertype == rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP)) {
		*o = PUNT;
		return EG_DROP_MAX;
	}
	return EG_DROP_UNKNOWN_ETHERTYPE;
}

/* Asks the service to resolve a next hop, at most every 100 ms per next hop per worker,
 * so that a burst toward an unresolved gateway asks once. */
static void ask_resolve(struct dp_worker *w, uint16_t port, uint8_t family, const uint8_t *ip)
{
	uint32_t slot = dp_neigh_hash(port, family, ip) & (RTE_DIM(w->asked) - 1);
	uint64_t now = rte_rdtsc();
	unsigned alen = eg_addr_len(family);
	struct dp_resolve_req req = {.port = port, .family = family};

	if (w->asked[slot].port == port && memcmp(w->asked[slot].ip, ip, alen) == 0 &&
	    now - w->asked[slot].tsc < w->ctx->tsc_hz / 10)
		return;
	w->asked[slot].port = port;
	memset(w->asked[slot].ip, 0, sizeof(w->asked[slot].ip));
	memcpy(w->asked[slot].ip, ip, alen);
	w->asked[slot].tsc = now;
	memcpy(req.ip, ip, alen);
	rte_ring_enqueue_elem(w->resolve, &req, sizeof(req));
}

/* The next hop for a packet leaving on out: the egress's, else on-link, else the gateway. */
static bool next_hop(const struct dp_port *out, const struct eg_table_egress *e,
		     const struct eg_flow_key *k, uint8_t nh[16])
{
	const struct eg_port_cfg *c = out->cfg;

	if (e && e->nh_family == k->family) {
		memcpy(nh, e->next_hop, 16);
		return true;
	}
	if (k->family == EG_AF_INET) {
		if (out->has_ipv4 && eg_prefix_contains(&out->net4, EG_AF_INET, k->dst)) {
			memcpy(nh, k->dst, 4);
			return true;
		}
		if (c->has_gateway4) {
			memcpy(nh, c->gateway4.addr, 4);
			return true;
		}
		return false;
	}
	if (out->has_ipv6 && eg_prefix_contains(&out->net6, EG_AF_INET6, k->dst)) {
		memcpy(nh, k->dst, 16);
		return true;
	}
	if (c->has_gateway6) {
		memcpy(nh, c->gateway6.addr, 16);
		return true;
	}
	return false;
}

static inline void decrement_ttl(struct parsed *p)
{
	if (p->key.family == EG_AF_INET) {
		struct rte_ipv4_hdr *ip = p->l3;
		/* RFC 1624 incremental update: TTL is the high byte of its 16-bit word. */
		uint32_t sum = (uint32_t)ip->hdr_checksum + rte_cpu_to_be_16(0x0100);

		ip->time_to_live--;
		ip->hdr_checksum = (uint16_t)(sum + (sum >> 16));
	} else {
		((struct rte_ipv6_hdr *)p->l3)->hop_limits--;
	}
}

/* New Ethernet header (and the out port's VLAN tag) in front of the unchanged L3 packet. */
static inline bool rewrite_l2(struct rte_mbuf *m, const struct parsed *p, const struct dp_port *out,
			      const struct rte_ether_addr *dmac)
{
	uint16_t want = out->cfg->vlan ? sizeof(struct rte_ether_hdr) + sizeof(struct rte_vlan_hdr)
				       : sizeof(struct rte_ether_hdr);
	struct rte_ether_hdr *eth;

	if (want > p->l2_len) {
		if (unlikely(!rte_pktmbuf_prepend(m, want - p->l2_len)))
			return false;
	} else if (want < p->l2_len) {
		rte_pktmbuf_adj(m, p->l2_len - want);
	}
	eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	eth->dst_addr = *dmac;
	eth->src_addr = out->mac;
	if (out->cfg->vlan) {
		struct rte_vlan_hdr *vh = (struct rte_vlan_hdr *)(eth + 1);

		eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_VLAN);
		vh->vlan_tci = rte_cpu_to_be_16(out->cfg->vlan);
		vh->eth_proto = p->ethertype;
	} else {
		eth->ether_type = p->ethertype;
	}
	return true;
}

static inline void queue_tx(struct dp_worker *w, uint16_t out, struct rte_mbuf *m)
{
	struct dp_tx_buffer *b = &w->tx[out];

	if (unlikely(b->n == DP_BURST)) {
		uint16_t sent = rte_eth_tx_burst(w->ctx->ports[out].port_id, (uint16_t)w->id, b->pkts, b->n);
		struct eg_port_counters *pc = &w->shm->port[out];

		for (uint16_t i = 0; i < sent; i++)
			pc->tx_bytes += rte_pktmbuf_pkt_len(b->pkts[i]);
		pc->tx_packets += sent;
		w->shm->tx_packets += sent;
		for (uint16_t i = sent; i < b->n; i++) {
			count_drop(w, out, EG_DROP_TX_FULL);
			rte_pktmbuf_free(b->pkts[i]);
		}
		b->n = 0;
	}
	b->pkts[b->n++] = m;
}

void dp_worker_flush(struct dp_worker *w)
{
	struct dp_ctx *ctx = w->ctx;

	for (unsigned out = 0; out < ctx->n_ports; out++) {
		struct dp_tx_buffer *b = &w->tx[out];
		struct eg_port_counters *pc = &w->shm->port[out];
		uint16_t sent;

		if (b->n == 0)
			continue;
		sent = rte_eth_tx_burst(ctx->ports[out].port_id, (uint16_t)w->id, b->pkts, b->n);
		for (uint16_t i = 0; i < sent; i++)
			pc->tx_bytes += rte_pktmbuf_pkt_len(b->pkts[i]);
		pc->tx_packets += sent;
		w->shm->tx_packets += sent;
		for (uint16_t i = sent; i < b->n; i++) {
			count_drop(w, (uint16_t)out, EG_DROP_TX_FULL);
			rte_pktmbuf_free(b->pkts[i]);
		}
		b->n = 0;
	}
}

/* Decides where one parsed, forwardable packet goes; EG_DROP_MAX when it was queued. */
static enum eg_drop_reason forward(struct dp_worker *w, const struct eg_table_hdr *t,
				   const struct dp_port *in, struct rte_mbuf *m, struct parsed *p)
{
	struct dp_ctx *ctx = w->ctx;
	const struct eg_table_egress *e = NULL;
	const struct dp_port *out;
	struct rte_ether_addr dmac;
	uint8_t nh[16] = {0};

	if (in->cfg->role == EG_ROLE_SITE) {
		const struct eg_table_policy *pol;
		enum eg_verdict v;

		if (unlikely(!t))
			return EG_DROP_NO_TABLE;
		v = eg_table_decide(t, &p->key, eg_flow_hash(&p->key), &pol, &e);
		if (pol)
			eg_shm_policy_hits(w->shm)[pol->id]++;
		switch (v) {
		case EG_VERDICT_FORWARD:
			break;
		case EG_VERDICT_NO_POLICY:
			return EG_DROP_NO_POLICY;
		case EG_VERDICT_POLICY_DROP:
			return EG_DROP_POLICY_DROP;
		case EG_VERDICT_NO_EGRESS:
			return EG_DROP_NO_EGRESS;
		}
		if (unlikely(e->type != EG_EGRESS_DIRECT || e->port >= ctx->n_ports))
			return EG_DROP_EGRESS_UNSUPPORTED;
		out = &ctx->ports[e->port];
		if (unlikely(!next_hop(out, e, &p->key, nh)))
			return EG_DROP_NO_ROUTE;
	} else {
		/* Return traffic from an uplink goes to the site side by route. */
		const struct dp_route *r = dp_routes_lookup(ctx->routes, p->key.family, p->key.dst);

		if (unlikely(!r))
			return EG_DROP_NO_ROUTE;
		out = &ctx->ports[r->port];
		memcpy(nh, r->via_family ? r->via : p->key.dst, 16);
	}
	if (unlikely(p->l3_len > out->mtu))
		return EG_DROP_MTU_EXCEEDED;
	if (unlikely(!dp_neigh_lookup(ctx->neigh, out->index, p->key.family, nh, &dmac))) {
		ask_resolve(w, out->index, p->key.family, nh);
		return EG_DROP_NEIGH_UNRESOLVED;
	}
	decrement_ttl(p);
	if (unlikely(!rewrite_l2(m, p, out, &dmac)))
		return EG_DROP_ETH_RUNT;
	if (e) {
		struct eg_egress_counters *ec = &eg_shm_egress_counters(w->shm)[e->id];

		ec->tx_packets++;
		ec->tx_bytes += rte_pktmbuf_pkt_len(m);
	}
	queue_tx(w, out->index, m);
	return EG_DROP_MAX;
}

uint16_t dp_worker_process(struct dp_worker *w, const struct eg_table_hdr *t, uint16_t in_port,
			   struct rte_mbuf **pkts, uint16_t n)
{
	const struct dp_port *in = &w->ctx->ports[in_port];
	uint16_t queued = 0;

	for (uint16_t i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];
		enum outcome o = DROP;
		struct parsed p;
		enum eg_drop_reason r;

		if (i + 1 < n)
			rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void *));
		r = parse(w->ctx, in, m, &p, &o);
		if (r == EG_DROP_MAX && o == PUNT) {
			m->port = in_port;
			if (unlikely(rte_ring_enqueue(w->punt, m) != 0))
				r = EG_DROP_PUNT_FULL;
			else
				continue;
		} else if (r == EG_DROP_MAX) {
			r = forward(w, t, in, m, &p);
			if (r == EG_DROP_MAX) {
				queued++;
				continue;
			}
		}
		count_drop(w, in_port, r);
		rte_pktmbuf_free(m);
	}
	return queued;
}

static void idle_backoff(struct dp_worker *w)
{
	const struct eg_dataplane_cfg *c = &w->ctx->cfg.dataplane;
	uint64_t over;
	unsigned us;

	w->idle_polls++;
	if (!c->idle_backoff || w->idle_polls < DP_IDLE_SPIN) {
		rte_pause();
		return;
	}
	/* Sleeps grow 1, 2, 4 ... up to idle_sleep_max_us; the first packet resets them. */
	over = (w->idle_polls - DP_IDLE_SPIN) / 8;
	us = over >= 20 ? c->idle_sleep_max_us : (unsigned)(1u << over);
	if (us > c->idle_sleep_max_us)
		us = c->idle_sleep_max_us;
	struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000};

	nanosleep(&ts, NULL);
}

int dp_worker_main(void *arg)
{
	struct dp_worker *w = arg;
	struct dp_ctx *ctx = w->ctx;
	const struct eg_shm_hdr *h = ctx->shm.hdr;
	struct rte_mbuf *pkts[DP_BURST];

	/* Idle sleeps of a few microseconds need a small timer slack to stay short. */
	prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
	w->shm->lcore = w->lcore;
	eg_shm_quiescent(h, w->shm);
	while (!__atomic_load_n(&ctx->stop, __ATOMIC_RELAXED)) {
		uint64_t gen;
		const struct eg_table_hdr *t = eg_shm_table_acquire(h, &gen);
		unsigned total = 0;

		for (unsigned pi = 0; pi < ctx->n_ports; pi++) {
			const struct dp_port *p = &ctx->ports[pi];
			struct eg_port_counters *pc = &w->shm->port[pi];
			uint16_t n;

			if (p->rx_queues <= w->id)
				continue;
			n = rte_eth_rx_burst(p->port_id, (uint16_t)w->id, pkts, DP_BURST);
			if (n == 0)
				continue;
			total += n;
			pc->rx_packets += n;
			for (uint16_t i = 0; i < n; i++)
				pc->rx_bytes += rte_pktmbuf_pkt_len(pkts[i]);
			dp_worker_process(w, t, (uint16_t)pi, pkts, n);
		}
		w->shm->rx_packets += total;
		/* Frames the service built (ARP, ND, echo replies) leave on our queues. */
		unsigned ni = rte_ring_dequeue_burst(w->inject, (void **)pkts, DP_BURST, NULL);

		for (unsigned i = 0; i < ni; i++)
			queue_tx(w, pkts[i]->port, pkts[i]);
		dp_worker_flush(w);
		eg_shm_quiescent(h, w->shm);
		if (total || ni) {
			w->shm->busy_loops++;
			w->idle_polls = 0;
		} else {
			w->shm->idle_loops++;
			idle_backoff(w);
		}
	}
	eg_shm_offline(w->shm);
	return 0;
}
