#include "worker.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_malloc.h>
#include <rte_pause.h>
#include <rte_prefetch.h>

#include "cksum.h"
#include "flow_cache.h"
#include "flow_select.h"
#include "nat.h"
#include "neigh.h"
#include "probe.h"
#include "routes.h"
#include "esp.h"
#include "fragment.h"
#include "reassembly.h"
#include "tx.h"
#include "wg.h"

/* Where a parsed packet goes next. */
enum outcome { FORWARD, PUNT, DROP, ESP_IN, WG_IN, REASSEMBLE };

struct parsed {
	bool l2_multicast;		/* sent to a group or broadcast MAC: never forwarded */
	uint16_t l2_len;
	uint16_t l3_len;		/* bytes of the IP packet */
	uint16_t ethertype;		/* network order, of the L3 header */
	uint16_t esp_off;		/* ESP_IN: where the ESP header starts in the frame;
					 * WG_IN: the WireGuard message */
	bool fragment;			/* an IPv4 fragment, or IPv6 with a Fragment header */
	uint16_t frag_hdr;		/* IPv6: the Fragment header's offset from l3 */
	uint16_t l4_off;		/* for us: the transport header's offset from l3 */
	void *l3;
	struct eg_flow_key key;
	bool hashed;			/* flow_hash is eg_flow_hash(&key), place its buckets */
	uint64_t flow_hash;
	struct dp_flow_place place;
};

static inline bool is_l4_with_ports(uint8_t proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP;
}

/* Traffic for one of our addresses: ESP (plain or in UDP 4500, RFC 3948) goes to the
 * ESP stage, the rest (ARP/ND answers, echo, IKE) to the service. l4 is the transport
 * header's offset from the L3 header, avail the bytes from there. */
static enum eg_drop_reason for_us(const struct dp_ctx *ctx, struct parsed *p, uint16_t l4, uint32_t avail,
				  enum outcome *o)
{
	const uint8_t *t = (const uint8_t *)p->l3 + l4;

	*o = PUNT;
	p->l4_off = l4;
	if (p->fragment) {
		*o = REASSEMBLE;
		return EG_DROP_MAX;
	}
	if (p->key.proto == IPPROTO_UDP && ctx->cfg.wg.present && p->key.dport == ctx->cfg.wg.listen_port &&
	    avail >= 8) {
		*o = WG_IN;
		p->esp_off = (uint16_t)(p->l2_len + l4 + 8);
	} else if (p->key.proto == IPPROTO_ESP) {
		*o = ESP_IN;
		p->esp_off = (uint16_t)(p->l2_len + l4);
	} else if (p->key.proto == IPPROTO_UDP && p->key.dport == DP_NATT_PORT && avail >= 8) {
		uint32_t marker;

		if (avail == 9 && t[8] == 0xff)
			return EG_DROP_NATT_KEEPALIVE;
		if (avail >= 12) {
			memcpy(&marker, t + 8, 4);
			/* A zero where the SPI would be marks IKE (non-ESP marker): control's. */
			if (marker != 0) {
				*o = ESP_IN;
				p->esp_off = (uint16_t)(p->l2_len + l4 + 8);
			}
		}
	}
	return EG_DROP_MAX;
}

static enum eg_drop_reason parse_ipv4(const struct dp_ctx *ctx, const struct dp_port *port,
				      struct rte_mbuf *m, struct parsed *p, enum outcome *o)
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
	if (unlikely(!dp_ipv4_cksum_ok(ip, ihl)))
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
	p->fragment = (rte_be_to_cpu_16(ip->fragment_offset) & (RTE_IPV4_HDR_OFFSET_MASK | RTE_IPV4_HDR_MF_FLAG)) != 0;
	/* Every fragment of a datagram must go the same way, and only the first carries the
	 * ports: fragments classify and hash without ports. */
	if (is_l4_with_ports(k->proto) && !p->fragment) {
		const uint16_t *ports = (const uint16_t *)((uint8_t *)ip + ihl);

		if (unlikely(avail < ihl + 4 || tot < ihl + 4))
			return EG_DROP_L4_RUNT;
		k->sport = rte_be_to_cpu_16(ports[0]);
		k->dport = rte_be_to_cpu_16(ports[1]);
	}
	if (dp_own_address_port(ctx, EG_AF_INET, k->dst) >= 0)
		return for_us(ctx, p, ihl, (uint32_t)tot - ihl, o);
	/* Multicast, limited broadcast, 0/8, frames sent to a group MAC and the ingress
	 * subnet's broadcast address are never routed (RFC 1812 4.2.2.11, 5.3.4). */
	if (unlikely(k->dst[0] >= 224 || k->dst[0] == 0 || p->l2_multicast))
		return EG_DROP_NOT_FORWARDABLE;
	if (port->has_ipv4 && port->net4.len < 31) {
		uint32_t net, dst;

		memcpy(&net, port->net4.addr, 4);
		memcpy(&dst, k->dst, 4);
		if (unlikely((rte_be_to_cpu_32(net) | (UINT32_MAX >> port->net4.len)) == rte_be_to_cpu_32(dst)))
			return EG_DROP_NOT_FORWARDABLE;
	}
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
	bool fragment = false;

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
			uint16_t offlg = rte_be_to_cpu_16(*(const uint16_t *)(ext + 2));

			/* Fragments go without ports (see IPv4). Behind a later fragment's
			 * header is payload, not more headers: stop there. */
			fragment = true;
			p->frag_hdr = off;
			nh = ext[0];
			off += 8;
			if (offlg & 0xfff8)
				break;
			continue;
		}
		off += (uint16_t)((ext[1] + 1) * 8);
		nh = ext[0];
	}
	if (unlikely(ipv6_is_ext(nh) && !fragment))
		return EG_DROP_IPV6_BAD_HEADER;
	/* The loop checked where each header starts, not where the last one ends: its length
	 * may point past the packet, and off is where ESP would be read from. */
	if (unlikely(avail < off || p->l3_len < off))
		return EG_DROP_IPV6_BAD_HEADER;
	k->proto = nh;
	p->fragment = fragment;
	if (is_l4_with_ports(nh) && !fragment) {
		const uint16_t *ports = (const uint16_t *)((uint8_t *)ip + off);

		if (unlikely(avail < off + 4 || p->l3_len < off + 4))
			return EG_DROP_L4_RUNT;
		k->sport = rte_be_to_cpu_16(ports[0]);
		k->dport = rte_be_to_cpu_16(ports[1]);
	}
	/* Neighbour discovery, link-local and multicast control traffic and anything for
	 * our own addresses is the service's. */
	if (dp_own_address_port(ctx, EG_AF_INET6, k->dst) >= 0)
		return for_us(ctx, p, off, (uint32_t)p->l3_len - off, o);
	if (nh == IPPROTO_ICMPV6 && (k->dst[0] == 0xff || (k->dst[0] == 0xfe && (k->dst[1] & 0xc0) == 0x80))) {
		*o = PUNT;
		return EG_DROP_MAX;
	}
	if (unlikely(k->dst[0] == 0xff || (k->dst[0] == 0xfe && (k->dst[1] & 0xc0) == 0x80) ||
		     (k->src[0] == 0xfe && (k->src[1] & 0xc0) == 0x80) || p->l2_multicast))
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
	p->l2_multicast = rte_is_multicast_ether_addr(&eth->dst_addr);
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
	/* What the IP parsers fill, set for what they never see (ARP is punted with these). */
	p->fragment = false;
	p->l3_len = 0;
	p->l4_off = 0;
	p->hashed = false;
	memset(&p->key, 0, sizeof(p->key));
	p->key.in_port = port->index;
	if (p->ethertype == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4))
		return parse_ipv4(ctx, port, m, p, o);
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
void dp_worker_ask_resolve(struct dp_worker *w, uint16_t port, uint8_t family, const uint8_t *ip)
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
	if (e && e->nh_family == k->family) {
		memcpy(nh, e->next_hop, 16);
		return true;
	}
	return dp_port_next_hop(out, k->family, k->dst, nh);
}

static inline void decrement_ttl(struct parsed *p)
{
	if (p->key.family == EG_AF_INET)
		dp_ipv4_ttl_decrement(p->l3);
	else
		((struct rte_ipv6_hdr *)p->l3)->hop_limits--;
}

/* New Ethernet header (and the out port's VLAN tag) in front of the unchanged L3 packet. */
static inline bool rewrite_l2(struct rte_mbuf *m, const struct parsed *p, const struct dp_port *out,
			      const struct rte_ether_addr *dmac)
{
	rte_pktmbuf_adj(m, p->l2_len);
	return dp_push_l2(m, out, dmac, p->ethertype);
}

void dp_worker_flush(struct dp_worker *w)
{
	for (unsigned out = 0; out < w->ctx->n_ports; out++)
		dp_tx_flush_port(w, (uint16_t)out);
}

/* The largest inner packet the tunnel carries without exceeding the uplink's MTU. */
static uint16_t tunnel_mtu(const struct dp_ctx *ctx, const struct eg_sa_slot *sa)
{
	uint16_t mtu = ctx->ports[sa->port].mtu;
	uint16_t over = dp_esp_overhead(sa, 0) + 3;	/* the most padding can add */

	return mtu > over ? (uint16_t)((mtu - over) & ~3u) : 0;
}

/* An IPv4 packet without DF: it may be fragmented. */
static inline bool may_fragment(const struct parsed *p)
{
	return p->key.family == EG_AF_INET &&
	       !(((const struct rte_ipv4_hdr *)p->l3)->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG));
}

/* An inner IPv4 packet without DF, cut into fragments that fit the tunnel (RFC 791), each
 * staged for the egress's encapsulation. */
static enum eg_drop_reason fragment_inner(struct dp_worker *w, struct rte_mbuf *m, struct parsed *p,
					  const struct eg_table_egress *e, uint16_t mtu)
{
	struct rte_mbuf *frags[DP_MAX_FRAGMENTS];
	unsigned n = dp_fragment_ipv4(w->ctx->pool, p->l3, p->l3_len, mtu, frags, DP_MAX_FRAGMENTS);

	if (n == 0)
		return EG_DROP_NO_ROOM;
	for (unsigned i = 0; i < n; i++) {
		if (e->type == EG_EGRESS_WIREGUARD)
			dp_wg_stage_out(w, frags[i], 0, e->wg_slot, e->id);
		else
			dp_esp_stage_out(w, frags[i], 0, e->sa_slot, e->id);
	}
	rte_pktmbuf_free(m);
	return EG_DROP_MAX;
}

/* The sender is told the tunnel's MTU (ICMP fragmentation needed, RFC 1191; ICMPv6 Packet
 * Too Big, RFC 8201) by the service, and the packet is dropped. */
static enum eg_drop_reason punt_too_big(struct dp_worker *w, const struct dp_port *in, struct rte_mbuf *m,
					uint16_t mtu)
{
	dp_count_drop(w, in->index, EG_DROP_MTU_EXCEEDED);
	m->port = in->index;
	m->hash.usr = DP_PUNT_TOO_BIG | (uint32_t)mtu << 16;
	if (unlikely(rte_ring_enqueue(w->punt, m) != 0))
		rte_pktmbuf_free(m);
	return EG_DROP_MAX;
}

/* A packet too big for an ESP tunnel. IPv4 without DF is fragmented: the inner packet
 * before ESP, or the ESP packet after it when the SA says so (esp_outb.c). Otherwise the
 * sender hears the tunnel MTU. */
static enum eg_drop_reason too_big(struct dp_worker *w, const struct dp_port *in, struct rte_mbuf *m,
				   struct parsed *p, const struct eg_sa_slot *sa, const struct eg_table_egress *e)
{
	uint16_t mtu = tunnel_mtu(w->ctx, sa);

	if (!may_fragment(p))
		return punt_too_big(w, in, m, mtu);
	if (!sa->fragment_outer)
		return fragment_inner(w, m, p, e, mtu);
	dp_esp_stage_out(w, m, p->l2_len, e->sa_slot, e->id);
	return EG_DROP_MAX;
}

/* dp_wg_tunnel_mtu of a slot, read once for a run of packets to one peer in a burst
 * (dp_worker.last_wg_mtu). */
static uint16_t wg_burst_mtu(struct dp_worker *w, uint32_t slot)
{
	if (w->last_wg_mtu.valid && w->last_wg_mtu.slot == slot)
		return w->last_wg_mtu.mtu;
	w->last_wg_mtu.mtu = dp_wg_tunnel_mtu(w->ctx, eg_shm_wg(w->ctx->shm.hdr, slot));
	w->last_wg_mtu.slot = slot;
	w->last_wg_mtu.valid = w->in_burst;
	return w->last_wg_mtu.mtu;
}

/* A packet too big for a WireGuard tunnel: IPv4 without DF is cut into fragments that
 * fit; otherwise the sender hears the tunnel MTU, as for ESP. An unknown endpoint (MTU 0)
 * is no session yet. */
static enum eg_drop_reason wg_too_big(struct dp_worker *w, const struct dp_port *in, struct rte_mbuf *m,
				      struct parsed *p, const struct eg_table_egress *e)
{
	uint16_t mtu = wg_burst_mtu(w, e->wg_slot);

	if (mtu < 68)
		return EG_DROP_WG_NO_ENDPOINT;
	if (!may_fragment(p))
		return punt_too_big(w, in, m, mtu);
	return fragment_inner(w, m, p, e, (uint16_t)(mtu & ~7u));
}

/* The last step of forwarding out of a port to next hop nh (counted for egress e). */
static enum eg_drop_reason to_port(struct dp_worker *w, const struct dp_port *out, struct rte_mbuf *m,
				   struct parsed *p, const uint8_t nh[16], const struct eg_table_egress *e)
{
	struct rte_ether_addr dmac;

	if (unlikely(p->l3_len > out->mtu))
		return EG_DROP_MTU_EXCEEDED;
	if (unlikely(!dp_neigh_mac(w, out->index, p->key.family, nh, &dmac)))
		return EG_DROP_NEIGH_UNRESOLVED;
	decrement_ttl(p);
	if (unlikely(!rewrite_l2(m, p, out, &dmac)))
		return EG_DROP_ETH_RUNT;
	if (e) {
		struct eg_egress_counters *ec = &eg_shm_egress_counters(w->shm)[e->id];

		ec->tx_packets++;
		ec->tx_bytes += rte_pktmbuf_pkt_len(m);
		dp_capture_egress_sent(w, e->id, m);
	}
	dp_queue_tx(w, out->index, m);
	return EG_DROP_MAX;
}

/* Sends a parsed packet through egress e: encrypted into its tunnel, or out of its port. */
static enum eg_drop_reason via_egress(struct dp_worker *w, const struct dp_port *in, struct rte_mbuf *m,
				      struct parsed *p, const struct eg_table_egress *e)
{
	struct dp_ctx *ctx = w->ctx;
	const struct dp_port *out;
	uint8_t nh[16] = {0};

	if (e->type == EG_EGRESS_IPSEC) {
		const struct eg_sa_slot *sa;

		if (unlikely(e->sa_slot == EG_TABLE_NO_SA))
			return EG_DROP_ESP_SA_STOPPED;
		sa = eg_shm_sa(ctx->shm.hdr, e->sa_slot);
		decrement_ttl(p);
		if (unlikely(p->l3_len + dp_esp_overhead(sa, p->l3_len) > ctx->ports[sa->port].mtu))
			return too_big(w, in, m, p, sa, e);
		dp_esp_stage_out(w, m, p->l2_len, e->sa_slot, e->id);
		return EG_DROP_MAX;
	}
	if (e->type == EG_EGRESS_WIREGUARD) {
		if (unlikely(e->wg_slot == EG_TABLE_NO_SA || e->wg_slot >= ctx->shm.hdr->n_wg_slots))
			return EG_DROP_WG_NO_SESSION;
		decrement_ttl(p);
		if (unlikely(p->l3_len > wg_burst_mtu(w, e->wg_slot)))
			return wg_too_big(w, in, m, p, e);
		dp_wg_stage_out(w, m, p->l2_len, e->wg_slot, e->id);
		return EG_DROP_MAX;
	}
	if (unlikely(e->type != EG_EGRESS_DIRECT || e->port >= ctx->n_ports))
		return EG_DROP_EGRESS_UNSUPPORTED;
	out = &ctx->ports[e->port];
	if (unlikely(!next_hop(out, e, &p->key, nh)))
		return EG_DROP_NO_ROUTE;
	if (e->n_snat && p->key.family == EG_AF_INET) {
		enum eg_drop_reason r = dp_nat_out(w, p->l3, p->l3_len, e);

		if (r != EG_DROP_MAX)
			return r;
	}
	return to_port(w, out, m, p, nh, e);
}

/* Decides where one parsed, forwardable packet goes; EG_DROP_MAX when it was queued.
 * inner: it came out of a tunnel (never for source NAT, which owns no tunnel). */
static enum eg_drop_reason forward(struct dp_worker *w, const struct eg_table_hdr *t,
				   const struct dp_port *in, struct rte_mbuf *m, struct parsed *p, bool inner)
{
	struct dp_ctx *ctx = w->ctx;
	const struct eg_table_egress *e = NULL;
	const struct dp_port *out;
	uint8_t nh[16] = {0};

	if (in->cfg->role == EG_ROLE_SITE) {
		const struct eg_table_policy *pol;
		enum eg_verdict v;

		if (unlikely(!t))
			return EG_DROP_NO_TABLE;
		if (!p->hashed) {
			p->flow_hash = eg_flow_hash(&p->key);
			p->place = dp_flow_place(w->flows, p->flow_hash);
		}
		v = dp_flow_decide(w->flows, t, &p->key, p->flow_hash, p->place, &pol, &e);
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
		return via_egress(w, in, m, p, e);
	}
	/* Return traffic from an uplink goes to the site side by route; to a pool address,
	 * after source NAT translated it back to the inside host. */
	if (p->key.family == EG_AF_INET && ctx->nat && !inner) {
		bool ours;
		enum eg_drop_reason nr = dp_nat_in(w, p->l3, p->l3_len, p->key.dst, &ours);

		if (ours && nr != EG_DROP_MAX)
			return nr;
	}
	const struct dp_route *r = dp_routes_lookup(ctx->routes, p->key.family, p->key.dst);

	if (unlikely(!r))
		return EG_DROP_NO_ROUTE;
	out = &ctx->ports[r->port];
	memcpy(nh, r->via_family ? r->via : p->key.dst, 16);
	dp_capture_direct_in(w, in->index, m);
	return to_port(w, out, m, p, nh, NULL);
}

static bool dispatch(struct dp_worker *w, const struct eg_table_hdr *t, const struct dp_port *in,
		     struct rte_mbuf *m, struct parsed *p, enum eg_drop_reason r, enum outcome o,
		     const struct dp_origin *from);

static const enum eg_drop_reason reasm_drop[] = {
	[EG_REASM_BAD] = EG_DROP_REASM_BAD,
	[EG_REASM_DUPLICATE] = EG_DROP_REASM_DUPLICATE,
	[EG_REASM_OVERLAP] = EG_DROP_REASM_OVERLAP,
	[EG_REASM_TOO_BIG] = EG_DROP_REASM_TOO_BIG,
	[EG_REASM_TOO_MANY] = EG_DROP_REASM_TOO_MANY,
};

/* A fragment addressed to us (ESP that a peer or a path fragmented): held until its
 * datagram is whole, which then goes through parsing again in a frame of its own, with
 * the last fragment's L2 header. Consumes m; EG_DROP_MAX unless m itself is dropped. */
static enum eg_drop_reason reassemble(struct dp_worker *w, const struct eg_table_hdr *t,
				      const struct dp_port *in, struct rte_mbuf *m, struct parsed *p)
{
	const uint8_t *l3 = p->l3;
	struct eg_frag f = {.family = p->key.family, .src = p->key.src, .dst = p->key.dst, .hdr = l3};
	const uint8_t *whole;
	uint32_t whole_len;
	unsigned lost;
	enum eg_reasm_result res;

	if (p->key.family == EG_AF_INET) {
		const struct rte_ipv4_hdr *ip = p->l3;
		uint16_t offlg = rte_be_to_cpu_16(ip->fragment_offset);

		f.hdr_len = (uint16_t)((ip->version_ihl & 0xf) * 4);
		f.proto = ip->next_proto_id;
		f.id = rte_be_to_cpu_16(ip->packet_id);
		f.offset = (uint32_t)(offlg & RTE_IPV4_HDR_OFFSET_MASK) * 8;
		f.more = (offlg & RTE_IPV4_HDR_MF_FLAG) != 0;
	} else {
		const uint8_t *fh = l3 + p->frag_hdr;
		uint16_t offlg = (uint16_t)(fh[2] << 8 | fh[3]);

		/* Only a Fragment header right after the fixed one: what ESP peers send. */
		if (p->frag_hdr != sizeof(struct rte_ipv6_hdr))
			return EG_DROP_REASM_BAD;
		f.hdr_len = sizeof(struct rte_ipv6_hdr);
		f.proto = fh[0];
		f.id = (uint32_t)fh[4] << 24 | (uint32_t)fh[5] << 16 | (uint32_t)fh[6] << 8 | fh[7];
		f.offset = offlg & 0xfff8u;
		f.more = offlg & 1;
	}
	f.data = l3 + f.hdr_len + (p->key.family == EG_AF_INET6 ? 8 : 0);
	f.len = p->l3_len - (uint32_t)(f.data - l3);
	if (unlikely(!rte_pktmbuf_is_contiguous(m)))
		return EG_DROP_REASM_BAD;
	w->reasm_port = in->index;
	res = eg_reasm_add(w->reasm, &f, rte_rdtsc(), &whole, &whole_len, &lost);
	for (unsigned i = 0; i < lost; i++)
		dp_count_drop(w, in->index, EG_DROP_REASM_EXPIRED);
	if (res != EG_REASM_HELD && res != EG_REASM_DONE)
		return reasm_drop[res];

	struct rte_mbuf *n = NULL;
	uint8_t *d;

	if (res == EG_REASM_DONE) {
		n = rte_pktmbuf_alloc(w->ctx->pool);
		d = n ? (uint8_t *)rte_pktmbuf_append(n, (uint16_t)(p->l2_len + whole_len)) : NULL;
		if (unlikely(!d)) {
			rte_pktmbuf_free(n);
			return EG_DROP_NO_ROOM;
		}
		memcpy(d, rte_pktmbuf_mtod(m, const uint8_t *), p->l2_len);
		memcpy(d + p->l2_len, whole, whole_len);
	}
	rte_pktmbuf_free(m);	/* its bytes are copied */
	if (n) {
		struct parsed q;
		enum outcome o = DROP;
		enum eg_drop_reason r = parse(w->ctx, in, n, &q, &o);

		w->shm->reassembled++;
		/* A Fragment header inside a fragmented datagram is not undone twice. */
		if (r == EG_DROP_MAX && o == REASSEMBLE)
			r = EG_DROP_REASM_BAD;
		dispatch(w, t, in, n, &q, r, o, NULL);
	}
	return EG_DROP_MAX;
}

static bool probe_local(struct dp_worker *w, const struct eg_table_hdr *t, const struct dp_port *in,
			struct rte_mbuf *m, const struct parsed *p, const struct dp_origin *from)
{
	const struct dp_local_pkt lp = {
		.l3 = p->l3, .l2_len = p->l2_len, .l3_len = p->l3_len, .l4_off = p->l4_off,
		.family = p->key.family, .proto = p->key.proto,
	};

	return dp_probe_local(w, t, in, m, &lp, from);
}

/* After parsing: to the ESP stage, to the service, forward, or drop. from is NULL for a
 * frame off the wire, else the tunnel an inner packet came out of. True when m was queued
 * for transmission. */
static bool dispatch(struct dp_worker *w, const struct eg_table_hdr *t, const struct dp_port *in,
		     struct rte_mbuf *m, struct parsed *p, enum eg_drop_reason r, enum outcome o,
		     const struct dp_origin *from)
{
	bool inner = from != NULL;

	if (r == EG_DROP_MAX) {
		switch (o) {
		case ESP_IN:
			if (inner) {		/* ESP in ESP is not something we terminate */
				r = EG_DROP_ESP_BAD_INNER;
				break;
			}
			dp_esp_stage_in(w, m, in->index, p->l2_len, p->esp_off);
			return false;
		case WG_IN:
			if (inner) {
				r = EG_DROP_SERVICE_DROP;
				break;
			}
			dp_wg_receive(w, t, m, in->index, p->l2_len, p->esp_off);
			return false;
		case PUNT:
			/* Probes and their answers are the worker's (timestamps are taken here);
			 * the rest is the service's. */
			if (!p->fragment && probe_local(w, t, in, m, p, from))
				return false;
			/* The service answers on the link; what came out of a tunnel for us has
			 * no link to answer on. */
			if (inner) {
				r = EG_DROP_SERVICE_DROP;
				break;
			}
			m->port = in->index;
			m->hash.usr = DP_PUNT_PLAIN;
			if (likely(rte_ring_enqueue(w->punt, m) == 0))
				return false;
			r = EG_DROP_PUNT_FULL;
			break;
		case FORWARD:
			r = forward(w, t, in, m, p, inner);
			if (r == EG_DROP_MAX)
				return true;
			break;
		case REASSEMBLE:
			if (inner) {		/* fragments for us from inside a tunnel */
				r = EG_DROP_SERVICE_DROP;
				break;
			}
			r = reassemble(w, t, in, m, p);
			if (r == EG_DROP_MAX)
				return false;
			break;
		case DROP:
			break;
		}
	}
	dp_count_drop(w, in->index, r);
	rte_pktmbuf_free(m);
	return false;
}

/* The flow cache's counters, where the control process reads them. */
static void publish_flow_stats(struct dp_worker *w)
{
	w->shm->flow_lookups = w->flows->lookups;
	w->shm->flow_misses = w->flows->misses;
	w->shm->flow_evictions = w->flows->evictions;
	w->shm->flow_capacity = dp_flow_capacity(w->flows);
	w->shm->flow_relocations = w->flows->relocations;
	w->shm->flow_grows = w->flows->grows;
}

/* A burst starts or ends: what was looked up once for the last one (dp_worker.last_nh,
 * last_wg_mtu) is forgotten, and is kept again only within a burst. */
static void burst_edge(struct dp_worker *w, bool starting)
{
	w->in_burst = starting;
	w->last_nh.valid = false;
	w->last_wg_mtu.valid = false;
}

uint16_t dp_worker_process(struct dp_worker *w, const struct eg_table_hdr *t, uint16_t in_port,
			   struct rte_mbuf **pkts, uint16_t n)
{
	const struct dp_port *in = &w->ctx->ports[in_port];
	bool site = in->cfg->role == EG_ROLE_SITE;
	uint16_t queued = 0;
	struct parsed p[DP_BURST];
	enum outcome o[DP_BURST];
	enum eg_drop_reason r[DP_BURST];

	burst_edge(w, true);
	/* Two passes over the burst. The first parses, and for a flow to classify it hashes
	 * the key and prefetches the flow's two flow cache buckets: with a million flows
	 * they are in DRAM, and the burst's misses overlap only if they start together;
	 * reading the key back as words right after writing it byte by byte would also stall
	 * on store forwarding. By the second pass both are settled. */
	for (uint16_t i = 0; i < n; i += DP_BURST) {
		uint16_t k = n - i < DP_BURST ? (uint16_t)(n - i) : DP_BURST;

		for (uint16_t j = 0; j < k; j++) {
			if (j + 1 < k)
				rte_prefetch0(rte_pktmbuf_mtod(pkts[i + j + 1], void *));
			o[j] = DROP;
			r[j] = parse(w->ctx, in, pkts[i + j], &p[j], &o[j]);
			if (site && r[j] == EG_DROP_MAX && o[j] == FORWARD) {
				p[j].flow_hash = eg_flow_hash(&p[j].key);
				p[j].place = dp_flow_place(w->flows, p[j].flow_hash);
				p[j].hashed = true;
				dp_flow_prefetch(w->flows, &p[j].place);
			}
		}
		for (uint16_t j = 0; j < k; j++)
			queued += dispatch(w, t, in, pkts[i + j], &p[j], r[j], o[j], NULL);
	}
	/* Staged ESP and WireGuard packets go through the crypto library together. */
	dp_esp_run(w, t);
	dp_wg_run(w, t);
	publish_flow_stats(w);
	/* What decrypted packets staged for sending (probe reflections) goes out now. */
	dp_worker_run_staged(w);
	burst_edge(w, false);
	return queued;
}

struct eg_msg *dp_worker_msg_new(struct dp_worker *w, uint16_t len, struct rte_mbuf **n)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(w->ctx->pool);
	struct eg_msg *msg = m ? (struct eg_msg *)rte_pktmbuf_append(m, (uint16_t)(offsetof(struct eg_msg, data) + len))
			       : NULL;

	if (!msg) {
		rte_pktmbuf_free(m);
		return NULL;
	}
	memset(msg, 0, offsetof(struct eg_msg, data));
	*n = m;
	return msg;
}

bool dp_worker_msg_punt(struct dp_worker *w, struct rte_mbuf *n, uint16_t port)
{
	n->port = port;
	n->hash.usr = DP_PUNT_MSG;
	if (rte_ring_enqueue(w->punt, n) == 0)
		return true;
	rte_pktmbuf_free(n);
	return false;
}

void dp_worker_run_staged(struct dp_worker *w)
{
	if (unlikely(w->esp_out.n))
		dp_esp_outb_run(w);
	if (unlikely(w->wg_out.n))
		dp_wg_outb_run(w);
}

/* An IP packet at the start of m, parsed as if it had arrived on in_port. */
static enum eg_drop_reason parse_l3(struct dp_worker *w, uint16_t in_port, struct rte_mbuf *m, uint8_t family,
				    struct parsed *p, enum outcome *o)
{
	const struct dp_port *in = &w->ctx->ports[in_port];

	*p = (struct parsed){
		.l2_len = 0,
		.ethertype = rte_cpu_to_be_16(family == EG_AF_INET ? RTE_ETHER_TYPE_IPV4 : RTE_ETHER_TYPE_IPV6),
		.l3 = rte_pktmbuf_mtod(m, void *),
		.key = {.in_port = in_port},
	};
	*o = DROP;
	return family == EG_AF_INET ? parse_ipv4(w->ctx, in, m, p, o) : parse_ipv6(w->ctx, m, p, o);
}

void dp_worker_send_via(struct dp_worker *w, const struct eg_table_egress *e, uint16_t in_port,
			struct rte_mbuf *m, uint8_t family)
{
	enum outcome o;
	struct parsed p;
	enum eg_drop_reason r = parse_l3(w, in_port, m, family, &p, &o);

	if (r == EG_DROP_MAX && o != FORWARD)
		r = EG_DROP_PROBE_NO_PATH;	/* addressed to us, or not IP we send */
	if (r == EG_DROP_MAX)
		r = via_egress(w, &w->ctx->ports[in_port], m, &p, e);
	if (r != EG_DROP_MAX) {
		dp_count_drop(w, in_port, r);
		rte_pktmbuf_free(m);
	}
}

void dp_worker_route_inner(struct dp_worker *w, const struct eg_table_hdr *t, uint16_t in_port,
			   struct rte_mbuf *m, uint8_t family, const struct dp_origin *from)
{
	enum outcome o;
	struct parsed p;
	enum eg_drop_reason r = parse_l3(w, in_port, m, family, &p, &o);

	dp_capture_tunnel_in(w, from->kind == DP_FROM_WG ? EG_EGRESS_WIREGUARD : EG_EGRESS_IPSEC, from->slot, m,
			     true);
	dispatch(w, t, &w->ctx->ports[in_port], m, &p, r, o, from);
}

int dp_worker_init(struct dp_ctx *ctx, struct dp_worker *w, unsigned id)
{
	char name[RTE_RING_NAMESIZE];
	/* The largest datagram reassembly may produce fits one mbuf with an L2 header. */
	uint32_t max_len = rte_pktmbuf_data_room_size(ctx->pool) - RTE_PKTMBUF_HEADROOM - RTE_ETHER_HDR_LEN -
			   RTE_VLAN_HLEN;

	w->id = id;
	w->ctx = ctx;
	w->shm = eg_shm_worker(ctx->shm.hdr, id);
	w->frag_id = id;
	snprintf(name, sizeof(name), "punt%u", id);
	w->punt = rte_ring_create(name, DP_PUNT_RING, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
	snprintf(name, sizeof(name), "inject%u", id);
	w->inject = rte_ring_create(name, DP_INJECT_RING, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
	snprintf(name, sizeof(name), "resolve%u", id);
	w->resolve = rte_ring_create_elem(name, sizeof(struct dp_resolve_req), DP_PUNT_RING, SOCKET_ID_ANY,
					  RING_F_SP_ENQ | RING_F_SC_DEQ);
	w->reasm = eg_reasm_create(DP_REASM_SLOTS, max_len, ctx->tsc_hz * DP_REASM_TIMEOUT_MS / 1000);
	w->flows = dp_flow_cache_create(ctx->cfg.dataplane.flow_cache_flows);
	if (w->flows)
		publish_flow_stats(w);
	return w->punt && w->inject && w->resolve && w->reasm && w->flows ? 0 : -ENOMEM;
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
	if (eg_aead_ctx_init(&w->aead, ctx->imb_arch) != 0) {
		fprintf(stderr, "egress-dataplane: worker %u: no crypto manager\n", w->id);
		__atomic_store_n(&ctx->stop, true, __ATOMIC_RELAXED);
		return -1;
	}
	w->shm->lcore = w->lcore;
	eg_shm_quiescent(h, w->shm);
	/* Coming online: our announcement must be visible before we load `current` for the
	 * first table (store-load ordering needs a full fence). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	while (!__atomic_load_n(&ctx->stop, __ATOMIC_RELAXED)) {
		uint64_t gen;
		const struct eg_table_hdr *t = eg_shm_table_acquire(h, &gen);
		unsigned total = 0;

		dp_capture_refresh(w);

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
			dp_capture_port(w, (uint16_t)pi, pkts, n, EG_CAPTURE_IN);
			pc->rx_packets += n;
			for (uint16_t i = 0; i < n; i++)
				pc->rx_bytes += rte_pktmbuf_pkt_len(pkts[i]);
			dp_worker_process(w, t, (uint16_t)pi, pkts, n);
		}
		w->shm->rx_packets += total;
		/* Frames the service built (ARP, ND, echo replies) leave on our queues. */
		unsigned ni = rte_ring_dequeue_burst(w->inject, (void **)pkts, DP_BURST, NULL);

		for (unsigned i = 0; i < ni; i++) {
			if (unlikely(pkts[i]->hash.usr == DP_INJECT_PROBE))
				dp_probe_transmit(w, t, pkts[i]);
			else
				dp_queue_tx(w, pkts[i]->port, pkts[i]);
		}
		if (unlikely(ni))
			dp_worker_run_staged(w);
		dp_worker_flush(w);
		/* Datagrams whose fragments stopped coming are counted and their slots freed. */
		if (unlikely(eg_reasm_pending(w->reasm))) {
			unsigned lost = eg_reasm_expire(w->reasm, rte_rdtsc(), 4);

			for (unsigned i = 0; i < lost; i++)
				dp_count_drop(w, w->reasm_port, EG_DROP_REASM_EXPIRED);
		}
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
	eg_aead_ctx_free(&w->aead);
	return 0;
}
