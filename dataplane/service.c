#include "service.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <rte_arp.h>
#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_icmp.h>
#include <rte_ip.h>

#include "control_link.h"
#include "nat.h"
#include "neigh.h"
#include "ports.h"
#include "tx.h"

enum {
	ND_NS = 135,
	ND_NA = 136,
	ND_OPT_SRC_LL = 1,
	ND_OPT_TGT_LL = 2,
	ICMP6_ECHO_REQUEST = 128,
	ICMP6_ECHO_REPLY = 129,
	RESOLVE_RETRY_MS = 1000,
	ICMP_ERRORS_PER_S = 100,
	ICMP_ERROR_BURST = 50,
};

struct nd_msg {
	uint8_t type, code;
	uint16_t cksum;
	uint32_t flags;
	uint8_t target[16];
	uint8_t opt_type, opt_len;
	uint8_t opt_mac[RTE_ETHER_ADDR_LEN];
} __attribute__((packed));

bool dp_service_send(struct dp_ctx *ctx, struct rte_mbuf *m, uint16_t port)
{
	m->port = port;
	m->hash.usr = DP_INJECT_FRAME;
	if (rte_ring_enqueue(ctx->workers[0].inject, m) == 0)
		return true;
	rte_pktmbuf_free(m);
	return false;
}

static bool push_l2(struct rte_mbuf *m, const struct dp_port *p, const struct rte_ether_addr *dst,
		    uint16_t ethertype)
{
	return dp_push_l2(m, p, dst, rte_cpu_to_be_16(ethertype));
}

/* An ARP message from sip (our port's address, or a pool address we answer for). */
static bool send_arp_from(struct dp_ctx *ctx, const struct dp_port *p, uint16_t op,
			  const struct rte_ether_addr *dmac, const struct rte_ether_addr *tha, uint32_t tip,
			  uint32_t sip)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(ctx->pool);
	struct rte_arp_hdr *a;

	if (!m)
		return false;
	a = (struct rte_arp_hdr *)rte_pktmbuf_append(m, sizeof(*a));
	if (!a) {
		rte_pktmbuf_free(m);
		return false;
	}
	a->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
	a->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	a->arp_hlen = RTE_ETHER_ADDR_LEN;
	a->arp_plen = 4;
	a->arp_opcode = rte_cpu_to_be_16(op);
	a->arp_data.arp_sha = p->mac;
	a->arp_data.arp_sip = sip;
	a->arp_data.arp_tha = *tha;
	a->arp_data.arp_tip = tip;
	if (!push_l2(m, p, dmac, RTE_ETHER_TYPE_ARP)) {
		rte_pktmbuf_free(m);
		return false;
	}
	return dp_service_send(ctx, m, p->index);
}

static bool send_arp(struct dp_ctx *ctx, const struct dp_port *p, uint16_t op,
		     const struct rte_ether_addr *dmac, const struct rte_ether_addr *tha, uint32_t tip)
{
	return send_arp_from(ctx, p, op, dmac, tha, tip, p->ipv4);
}

static bool send_nd(struct dp_ctx *ctx, const struct dp_port *p, uint8_t type, const uint8_t *dst_ip,
		    const struct rte_ether_addr *dmac, const uint8_t *target, bool solicited)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(ctx->pool);
	struct rte_ipv6_hdr *ip;
	struct nd_msg *nd;

	if (!m)
		return false;
	ip = (struct rte_ipv6_hdr *)rte_pktmbuf_append(m, sizeof(*ip) + sizeof(*nd));
	if (!ip) {
		rte_pktmbuf_free(m);
		return false;
	}
	nd = (struct nd_msg *)(ip + 1);
	memset(ip, 0, sizeof(*ip) + sizeof(*nd));
	ip->vtc_flow = rte_cpu_to_be_32(6u << 28);
	ip->payload_len = rte_cpu_to_be_16(sizeof(*nd));
	ip->proto = IPPROTO_ICMPV6;
	ip->hop_limits = 255;		/* RFC 4861 7.1.1: receivers check it */
	memcpy(ip->src_addr, p->ipv6, 16);
	memcpy(ip->dst_addr, dst_ip, 16);
	nd->type = type;
	memcpy(nd->target, target, 16);
	/* RFC 4861 4.4: R (we route), S when answering a solicitation, O. */
	if (type == ND_NA)
		nd->flags = rte_cpu_to_be_32(0x80000000u | (solicited ? 0x40000000u : 0) | 0x20000000u);
	nd->opt_type = type == ND_NS ? ND_OPT_SRC_LL : ND_OPT_TGT_LL;
	nd->opt_len = 1;
	memcpy(nd->opt_mac, p->mac.addr_bytes, RTE_ETHER_ADDR_LEN);
	nd->cksum = rte_ipv6_udptcp_cksum(ip, nd);
	if (!push_l2(m, p, dmac, RTE_ETHER_TYPE_IPV6)) {
		rte_pktmbuf_free(m);
		return false;
	}
	return dp_service_send(ctx, m, p->index);
}

/* A request that could not be queued (the inject ring was full) does not count as a try. */
static void solicit(struct dp_ctx *ctx, struct dp_neigh_entry *e, uint64_t now)
{
	const struct dp_port *p = &ctx->ports[e->port];
	struct rte_ether_addr bcast = {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}, zero = {{0}};
	bool sent = false;

	if (e->family == EG_AF_INET && p->has_ipv4) {
		uint32_t tip;

		memcpy(&tip, e->ip, 4);
		sent = send_arp(ctx, p, RTE_ARP_OP_REQUEST, &bcast, &zero, tip);
	} else if (e->family == EG_AF_INET6 && p->has_ipv6) {
		/* To the target's solicited-node multicast group (RFC 4291 2.7.1). */
		uint8_t group[16] = {0xff, 0x02, [11] = 0x01, [12] = 0xff};
		struct rte_ether_addr mac = {{0x33, 0x33, 0xff, e->ip[13], e->ip[14], e->ip[15]}};

		memcpy(group + 13, e->ip + 13, 3);
		sent = send_nd(ctx, p, ND_NS, group, &mac, e->ip, false);
	}
	if (sent) {
		e->asked_tsc = now;
		e->tries++;
	}
}

static bool on_link(const struct dp_port *p, uint8_t family, const uint8_t *ip)
{
	if (family == EG_AF_INET)
		return p->has_ipv4 && eg_prefix_contains(&p->net4, EG_AF_INET, ip);
	/* Link-local neighbours are on every IPv6 link. */
	return p->has_ipv6 && (eg_prefix_contains(&p->net6, EG_AF_INET6, ip) ||
			       (ip[0] == 0xfe && (ip[1] & 0xc0) == 0x80));
}

/* Records what a neighbour said about itself. Only addresses of the port's own subnets are
 * created: a sender claiming any other address could otherwise fill the table. override
 * false (an NA without O) confirms an entry but does not change a known MAC (RFC 4861
 * 7.2.5). */
static void learn(struct dp_ctx *ctx, uint16_t port, uint8_t family, const uint8_t *ip,
		  const struct rte_ether_addr *mac, bool create, bool override)
{
	struct dp_neigh_entry *e;

	if (!on_link(&ctx->ports[port], family, ip))
		return;
	e = dp_neigh_get(ctx->neigh, port, family, ip, create);
	if (!e || e->state == DP_NEIGH_STATIC)
		return;
	if (!override && (e->state == DP_NEIGH_REACHABLE || e->state == DP_NEIGH_STALE) &&
	    !rte_is_same_ether_addr(&e->mac, mac))
		return;
	dp_neigh_set(e, mac, DP_NEIGH_REACHABLE, rte_rdtsc());
}

static void handle_arp(struct dp_ctx *ctx, const struct dp_port *p, struct rte_mbuf *m, uint16_t l2)
{
	const struct rte_arp_hdr *a = rte_pktmbuf_mtod_offset(m, const struct rte_arp_hdr *, l2);
	uint16_t op;

	if (rte_pktmbuf_data_len(m) < l2 + sizeof(*a) || !p->has_ipv4 ||
	    a->arp_hardware != rte_cpu_to_be_16(RTE_ARP_HRD_ETHER) ||
	    a->arp_protocol != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) || a->arp_hlen != 6 ||
	    a->arp_plen != 4)
		return;
	op = rte_be_to_cpu_16(a->arp_opcode);
	/* RFC 826: update an entry we have for the sender; add one when we are the target. */
	if (a->arp_data.arp_sip != 0)
		learn(ctx, p->index, EG_AF_INET, (const uint8_t *)&a->arp_data.arp_sip,
		      &a->arp_data.arp_sha, a->arp_data.arp_tip == p->ipv4, true);
	/* Pool addresses are answered for on their egress's port, so that a pool inside the
	 * uplink's subnet needs no route on the router. */
	if (op == RTE_ARP_OP_REQUEST &&
	    (a->arp_data.arp_tip == p->ipv4 || dp_nat_answers_arp(ctx, p->index, a->arp_data.arp_tip)))
		send_arp_from(ctx, p, RTE_ARP_OP_REPLY, &a->arp_data.arp_sha, &a->arp_data.arp_sha,
			      a->arp_data.arp_sip, a->arp_data.arp_tip);
}

static void handle_icmp4(struct dp_ctx *ctx, const struct dp_port *p, struct rte_mbuf *m, uint16_t l2)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_ipv4_hdr *ip = rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *, l2);
	uint16_t ihl = (uint16_t)((ip->version_ihl & 0xf) * 4);
	uint16_t tot = rte_be_to_cpu_16(ip->total_length);
	struct rte_icmp_hdr *icmp = (struct rte_icmp_hdr *)((uint8_t *)ip + ihl);
	struct rte_ether_addr dst = eth->src_addr;
	uint32_t a;

	if (ip->next_proto_id != IPPROTO_ICMP || tot < ihl + sizeof(*icmp) ||
	    icmp->icmp_type != RTE_IP_ICMP_ECHO_REQUEST || (ip->fragment_offset & rte_cpu_to_be_16(0x3fff)))
		goto drop;
	a = ip->src_addr;
	ip->src_addr = ip->dst_addr;
	ip->dst_addr = a;
	ip->time_to_live = 64;
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	icmp->icmp_type = RTE_IP_ICMP_ECHO_REPLY;
	icmp->icmp_cksum = 0;
	icmp->icmp_cksum = (uint16_t)~rte_raw_cksum(icmp, tot - ihl);
	rte_pktmbuf_adj(m, l2);
	if (!push_l2(m, p, &dst, RTE_ETHER_TYPE_IPV4))
		goto drop;
	dp_service_send(ctx, m, p->index);
	return;
drop:
	rte_pktmbuf_free(m);
}

/* The sum over pseudo-header and message, checksum field included, is all ones when the
 * checksum is right. */
static bool icmp6_checksum_ok(const struct rte_ipv6_hdr *ip, const uint8_t *icmp, uint16_t len)
{
	uint32_t sum = rte_ipv6_phdr_cksum(ip, 0);

	sum += rte_raw_cksum(icmp, len);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return sum == 0xffff;
}

static void handle_icmp6(struct dp_ctx *ctx, const struct dp_port *p, struct rte_mbuf *m, uint16_t l2)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_ipv6_hdr *ip = rte_pktmbuf_mtod_offset(m, struct rte_ipv6_hdr *, l2);
	uint16_t plen = rte_be_to_cpu_16(ip->payload_len);
	uint8_t *icmp = (uint8_t *)(ip + 1);
	struct rte_ether_addr src_mac = eth->src_addr;

	if (!p->has_ipv6 || ip->proto != IPPROTO_ICMPV6 || plen < 8 ||
	    rte_pktmbuf_data_len(m) < l2 + sizeof(*ip) + plen)
		goto drop;
	/* RFC 4861 7.1.1 / 7.1.2: hop limit 255, code 0, a valid checksum. */
	if ((icmp[0] == ND_NS || icmp[0] == ND_NA) && ip->hop_limits == 255 && plen >= 24 && icmp[1] == 0 &&
	    icmp6_checksum_ok(ip, icmp, plen)) {
		const uint8_t *target = icmp + 8;
		static const uint8_t unspecified[16];
		bool from_unspecified = memcmp(ip->src_addr, unspecified, 16) == 0;

		/* The link-layer option, if any, follows the target. */
		const struct rte_ether_addr *ll = NULL;

		for (uint16_t off = 24; off + 8 <= plen && icmp[off + 1]; off += icmp[off + 1] * 8)
			if (icmp[off] == (icmp[0] == ND_NS ? ND_OPT_SRC_LL : ND_OPT_TGT_LL))
				ll = (const struct rte_ether_addr *)(icmp + off + 2);
		if (icmp[0] == ND_NS && memcmp(target, p->ipv6, 16) == 0) {
			static const uint8_t all_nodes[16] = {0xff, 0x02, [15] = 1};
			struct rte_ether_addr all_nodes_mac = {{0x33, 0x33, 0, 0, 0, 1}};

			if (ll && !from_unspecified)
				learn(ctx, p->index, EG_AF_INET6, ip->src_addr, ll, true, true);
			if (from_unspecified)
				send_nd(ctx, p, ND_NA, all_nodes, &all_nodes_mac, p->ipv6, false);
			else
				send_nd(ctx, p, ND_NA, ip->src_addr, ll ? ll : &src_mac, p->ipv6, true);
		} else if (icmp[0] == ND_NA && ll) {
			bool override = (icmp[4] & 0x20) != 0;

			learn(ctx, p->index, EG_AF_INET6, target, ll, false, override);
		}
		goto drop;
	}
	if (icmp[0] == ICMP6_ECHO_REQUEST && memcmp(ip->dst_addr, p->ipv6, 16) == 0) {
		uint8_t a[16];

		memcpy(a, ip->src_addr, 16);
		memcpy(ip->src_addr, ip->dst_addr, 16);
		memcpy(ip->dst_addr, a, 16);
		ip->hop_limits = 64;
		icmp[0] = ICMP6_ECHO_REPLY;
		icmp[2] = icmp[3] = 0;
		uint16_t ck = rte_ipv6_udptcp_cksum(ip, icmp);

		memcpy(icmp + 2, &ck, 2);
		rte_pktmbuf_adj(m, l2);
		if (!push_l2(m, p, &src_mac, RTE_ETHER_TYPE_IPV6))
			goto drop;
		dp_service_send(ctx, m, p->index);
		return;
	}
drop:
	rte_pktmbuf_free(m);
}

/* ICMP errors are rate limited (RFC 1812 4.3.2.8, RFC 4443 2.4(f)): a token bucket. */
static bool icmp_error_allowed(uint64_t now, uint64_t hz)
{
	static uint64_t tokens = ICMP_ERROR_BURST, last;

	tokens += (now - last) * ICMP_ERRORS_PER_S / hz;
	if (tokens > ICMP_ERROR_BURST)
		tokens = ICMP_ERROR_BURST;
	last = now;
	if (tokens == 0)
		return false;
	tokens--;
	return true;
}

/* Tells the sender of a packet too big for a tunnel what fits: ICMP destination
 * unreachable / fragmentation needed with the next-hop MTU (RFC 792, RFC 1191), or ICMPv6
 * Packet Too Big (RFC 4443 3.2). Sent back out of the port it came in, to the frame's
 * sender, quoting as much of the packet as the rules allow. */
static void send_too_big(struct dp_ctx *ctx, const struct dp_port *p, struct rte_mbuf *orig, uint16_t l2,
			 uint16_t type, uint16_t mtu)
{
	const struct rte_ether_hdr *eth = rte_pktmbuf_mtod(orig, const struct rte_ether_hdr *);
	const uint8_t *inner = rte_pktmbuf_mtod_offset(orig, const uint8_t *, l2);
	uint32_t inner_len = rte_pktmbuf_data_len(orig) - l2;
	struct rte_mbuf *m;

	if (!icmp_error_allowed(rte_rdtsc(), ctx->tsc_hz) || !(m = rte_pktmbuf_alloc(ctx->pool)))
		return;
	if (type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) && p->has_ipv4) {
		uint32_t quote = inner_len < 28 ? inner_len : 28;	/* header + 8 bytes (RFC 792) */
		uint8_t *b = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)(20 + 8 + quote));
		struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)b;

		if (!b)
			goto fail;
		memset(b, 0, 28);
		ip->version_ihl = 0x45;
		ip->total_length = rte_cpu_to_be_16((uint16_t)(28 + quote));
		ip->time_to_live = 64;
		ip->next_proto_id = IPPROTO_ICMP;
		ip->src_addr = p->ipv4;
		memcpy(&ip->dst_addr, inner + 12, 4);
		ip->hdr_checksum = rte_ipv4_cksum(ip);
		b[20] = 3;	/* destination unreachable */
		b[21] = 4;	/* fragmentation needed and DF set */
		b[26] = (uint8_t)(mtu >> 8);
		b[27] = (uint8_t)mtu;
		memcpy(b + 28, inner, quote);
		uint16_t ck = (uint16_t)~rte_raw_cksum(b + 20, 8 + quote);

		memcpy(b + 22, &ck, 2);
	} else if (type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6) && p->has_ipv6) {
		/* The whole error stays within the IPv6 minimum MTU. */
		uint32_t quote = inner_len < 1280 - 48 ? inner_len : 1280 - 48;
		uint8_t *b = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)(40 + 8 + quote));
		struct rte_ipv6_hdr *ip = (struct rte_ipv6_hdr *)b;
		uint32_t mtu_be = rte_cpu_to_be_32(mtu);

		if (!b)
			goto fail;
		memset(b, 0, 48);
		ip->vtc_flow = rte_cpu_to_be_32(6u << 28);
		ip->payload_len = rte_cpu_to_be_16((uint16_t)(8 + quote));
		ip->proto = IPPROTO_ICMPV6;
		ip->hop_limits = 64;
		memcpy(ip->src_addr, p->ipv6, 16);
		memcpy(ip->dst_addr, inner + 8, 16);
		b[40] = 2;	/* packet too big */
		memcpy(b + 44, &mtu_be, 4);
		memcpy(b + 48, inner, quote);
		uint16_t ck = rte_ipv6_udptcp_cksum(ip, b + 40);

		memcpy(b + 42, &ck, 2);
	} else {
		goto fail;
	}
	if (!push_l2(m, p, &eth->src_addr, rte_be_to_cpu_16(type)))
		goto fail;
	dp_service_send(ctx, m, p->index);
	return;
fail:
	rte_pktmbuf_free(m);
}

static void handle_punt(struct dp_ctx *ctx, struct rte_mbuf *m)
{
	const struct dp_port *p = &ctx->ports[m->port];
	const struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, const struct rte_ether_hdr *);
	uint16_t type = eth->ether_type, l2 = sizeof(*eth);

	if (type == rte_cpu_to_be_16(RTE_ETHER_TYPE_VLAN)) {
		type = ((const struct rte_vlan_hdr *)(eth + 1))->eth_proto;
		l2 += sizeof(struct rte_vlan_hdr);
	}
	if ((m->hash.usr & 0xffff) == DP_PUNT_WG_HANDSHAKE || (m->hash.usr & 0xffff) == DP_PUNT_MSG) {
		dp_control_punt(ctx, m);
		return;
	}
	if ((m->hash.usr & 0xffff) == DP_PUNT_TOO_BIG) {
		send_too_big(ctx, p, m, l2, type, (uint16_t)(m->hash.usr >> 16));
		rte_pktmbuf_free(m);
		return;
	}
	if (type == rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP)) {
		handle_arp(ctx, p, m, l2);
		rte_pktmbuf_free(m);
	} else if (type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4)) {
		handle_icmp4(ctx, p, m, l2);
	} else if (type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6)) {
		handle_icmp6(ctx, p, m, l2);
	} else {
		rte_pktmbuf_free(m);
	}
}

static void handle_resolve(struct dp_ctx *ctx, const struct dp_resolve_req *r, uint64_t now)
{
	struct dp_neigh_entry *e;

	if (r->port >= ctx->n_ports)
		return;
	e = dp_neigh_get(ctx->neigh, r->port, r->family, r->ip, true);
	if (!e || e->state == DP_NEIGH_REACHABLE || e->state == DP_NEIGH_STATIC ||
	    e->state == DP_NEIGH_STALE)
		return;
	if (e->state == DP_NEIGH_FAILED) {
		dp_neigh_set_state(e, DP_NEIGH_INCOMPLETE);
		e->tries = 0;
	}
	if (e->tries == 0 || now - e->asked_tsc > ctx->tsc_hz * RESOLVE_RETRY_MS / 1000)
		solicit(ctx, e, now);
}

/* Once a second: retry incomplete entries, re-confirm old ones, give up on silent ones. */
void dp_service_resolve(struct dp_ctx *ctx, uint16_t port, uint8_t family, const uint8_t *ip)
{
	struct dp_resolve_req r = {.port = port, .family = family};

	memcpy(r.ip, ip, eg_addr_len(family));
	handle_resolve(ctx, &r, rte_rdtsc());
}

static void age_neighbours(struct dp_ctx *ctx, uint64_t now)
{
	uint64_t retry = ctx->tsc_hz * RESOLVE_RETRY_MS / 1000;
	uint64_t timeout = ctx->tsc_hz * ctx->cfg.dataplane.neigh_timeout_s;

	for (unsigned i = 0; i < DP_NEIGH_SLOTS; i++) {
		struct dp_neigh_entry *e = &ctx->neigh->e[i];

		switch (e->state) {
		case DP_NEIGH_INCOMPLETE:
		case DP_NEIGH_STALE:
			if (now - e->asked_tsc < retry)
				break;
			if (e->tries >= DP_NEIGH_RETRIES)
				dp_neigh_set_state(e, DP_NEIGH_FAILED);
			else
				solicit(ctx, e, now);
			break;
		case DP_NEIGH_REACHABLE:
			if (now - e->confirmed_tsc > timeout) {
				/* Still used while we ask again, so traffic does not stall. */
				dp_neigh_set_state(e, DP_NEIGH_STALE);
				e->tries = 0;
				solicit(ctx, e, now);
			}
			break;
		default:
			break;
		}
	}
}

static void resolve_gateways(struct dp_ctx *ctx, uint64_t now)
{
	for (unsigned i = 0; i < ctx->n_ports; i++) {
		const struct eg_port_cfg *c = ctx->ports[i].cfg;
		struct dp_resolve_req r = {.port = (uint16_t)i};

		if (c->has_gateway4) {
			r.family = EG_AF_INET;
			memcpy(r.ip, c->gateway4.addr, 16);
			handle_resolve(ctx, &r, now);
		}
		if (c->has_gateway6) {
			r.family = EG_AF_INET6;
			memcpy(r.ip, c->gateway6.addr, 16);
			handle_resolve(ctx, &r, now);
		}
	}
}

void dp_service_init(struct dp_ctx *ctx)
{
	for (unsigned i = 0; i < ctx->n_ports; i++) {
		const struct eg_port_cfg *c = ctx->ports[i].cfg;

		for (unsigned j = 0; j < c->n_neigh; j++) {
			struct dp_neigh_entry *e = dp_neigh_get(ctx->neigh, (uint16_t)i, c->neigh[j].ip.family,
								c->neigh[j].ip.addr, true);
			struct rte_ether_addr mac;

			memcpy(mac.addr_bytes, c->neigh[j].mac, 6);
			if (e)
				dp_neigh_set(e, &mac, DP_NEIGH_STATIC, rte_rdtsc());
		}
	}
	dp_ports_update_link(ctx);
}

void dp_service_run(struct dp_ctx *ctx)
{
	uint64_t next_second = 0, next_link = 0;
	struct eg_shm_hdr *h = ctx->shm.hdr;

	while (!__atomic_load_n(&ctx->stop, __ATOMIC_RELAXED)) {
		uint64_t now = rte_rdtsc();
		unsigned work = 0;

		for (unsigned w = 0; w < ctx->n_workers; w++) {
			struct rte_mbuf *pkts[DP_BURST];
			struct dp_resolve_req req[DP_BURST];
			unsigned n = rte_ring_dequeue_burst(ctx->workers[w].punt, (void **)pkts, DP_BURST, NULL);

			for (unsigned i = 0; i < n; i++)
				handle_punt(ctx, pkts[i]);
			work += n;
			n = rte_ring_dequeue_burst_elem(ctx->workers[w].resolve, req, sizeof(req[0]),
							DP_BURST, NULL);
			for (unsigned i = 0; i < n; i++)
				handle_resolve(ctx, &req[i], now);
			work += n;
		}
		work += dp_control_inject(ctx, DP_BURST);
		work += dp_nat_service(ctx, now);
		if (now >= next_link) {
			dp_ports_update_link(ctx);
			next_link = now + ctx->tsc_hz / 2;
		}
		if (now >= next_second) {
			resolve_gateways(ctx, now);
			age_neighbours(ctx, now);
			next_second = now + ctx->tsc_hz;
		}
		__atomic_store_n(&h->heartbeat_ns, eg_now_ns(), __ATOMIC_RELEASE);
		if (!work) {
			struct timespec ts = {0, 500000};

			nanosleep(&ts, NULL);
		}
	}
}
