#include "control_link.h"

#include <string.h>

#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include "neigh.h"
#include "probe.h"
#include "service.h"
#include "tx.h"

enum { OUTER_TTL = 64 };

/* The IP and UDP headers of a frame the worker already parsed: addresses and ports. */
static bool udp_of(struct rte_mbuf *m, struct eg_msg *msg, const uint8_t **payload, uint32_t *len)
{
	const uint8_t *f = rte_pktmbuf_mtod(m, const uint8_t *);
	uint32_t flen = rte_pktmbuf_data_len(m), l3 = 14, l4;
	uint16_t type = (uint16_t)(f[12] << 8 | f[13]);

	if (type == RTE_ETHER_TYPE_VLAN) {
		type = (uint16_t)(f[16] << 8 | f[17]);
		l3 += 4;
	}
	if (flen < l3 + 20)
		return false;
	if (type == RTE_ETHER_TYPE_IPV4) {
		msg->family = EG_AF_INET;
		memcpy(msg->remote, f + l3 + 12, 4);
		memcpy(msg->local, f + l3 + 16, 4);
		l4 = l3 + (uint32_t)(f[l3] & 0xf) * 4;
	} else if (type == RTE_ETHER_TYPE_IPV6) {
		msg->family = EG_AF_INET6;
		if (flen < l3 + 40)
			return false;
		memcpy(msg->remote, f + l3 + 8, 16);
		memcpy(msg->local, f + l3 + 24, 16);
		l4 = l3 + 40;		/* the worker saw UDP right there, or no ports at all */
	} else {
		return false;
	}
	if (flen < l4 + 8)
		return false;
	msg->remote_port = (uint16_t)(f[l4] << 8 | f[l4 + 1]);
	msg->local_port = (uint16_t)(f[l4 + 2] << 8 | f[l4 + 3]);
	*payload = f + l4 + 8;
	*len = flen - l4 - 8;
	return true;
}

void dp_control_punt(struct dp_ctx *ctx, struct rte_mbuf *m)
{
	struct eg_msg_ring *ring = eg_shm_punt(ctx->shm.hdr);
	struct eg_msg msg;

	if ((m->hash.usr & 0xffff) == DP_PUNT_MSG) {
		/* A message a worker wrote (roaming notice, probe answer), data included. */
		uint32_t have = rte_pktmbuf_data_len(m);

		if (have >= offsetof(struct eg_msg, data)) {
			memcpy(&msg, rte_pktmbuf_mtod(m, const void *), offsetof(struct eg_msg, data));
			if (msg.len > EG_MSG_DATA_MAX || offsetof(struct eg_msg, data) + msg.len > have)
				msg.len = 0;
			memcpy(msg.data, rte_pktmbuf_mtod_offset(m, const uint8_t *, offsetof(struct eg_msg, data)),
			       msg.len);
			msg.time_ns = eg_now_ns();
			eg_msg_put(ring, &msg);
		}
	} else {
		const uint8_t *payload;
		uint32_t len;

		memset(&msg, 0, offsetof(struct eg_msg, data));
		if (udp_of(m, &msg, &payload, &len) && len <= EG_MSG_DATA_MAX) {
			msg.kind = EG_MSG_WG_HANDSHAKE;
			msg.port = m->port;
			msg.len = (uint16_t)len;
			msg.time_ns = eg_now_ns();
			memcpy(msg.data, payload, len);
			eg_msg_put(ring, &msg);
		}
	}
	rte_pktmbuf_free(m);
}

/* One datagram control asked for, as a frame out of msg->port. False when it cannot go
 * (no route, next hop not resolved yet: asked for, so a retry finds it). */
static bool send_udp(struct dp_ctx *ctx, const struct eg_msg *msg)
{
	const struct dp_port *out;
	struct rte_ether_addr dmac;
	struct rte_mbuf *m;
	uint8_t nh[16] = {0};
	uint16_t ip_len = msg->family == EG_AF_INET ? 20 : 40;
	uint8_t *hdr;
	struct rte_udp_hdr *u;

	if (msg->port >= ctx->n_ports || (msg->family != EG_AF_INET && msg->family != EG_AF_INET6))
		return false;
	out = &ctx->ports[msg->port];
	if (msg->family == EG_AF_INET ? !out->has_ipv4 : !out->has_ipv6)
		return false;
	if (!dp_port_next_hop(out, msg->family, msg->remote, nh))
		return false;
	if (!dp_neigh_lookup(ctx->neigh, out->index, msg->family, nh, &dmac)) {
		dp_service_resolve(ctx, out->index, msg->family, nh);
		return false;
	}
	m = rte_pktmbuf_alloc(ctx->pool);
	hdr = m ? (uint8_t *)rte_pktmbuf_append(m, (uint16_t)(ip_len + 8 + msg->len)) : NULL;
	if (!hdr) {
		rte_pktmbuf_free(m);
		return false;
	}
	u = (struct rte_udp_hdr *)(hdr + ip_len);
	u->src_port = rte_cpu_to_be_16(msg->local_port);
	u->dst_port = rte_cpu_to_be_16(msg->remote_port);
	u->dgram_len = rte_cpu_to_be_16((uint16_t)(8 + msg->len));
	u->dgram_cksum = 0;
	memcpy(u + 1, msg->data, msg->len);
	if (msg->family == EG_AF_INET) {
		struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)hdr;

		memset(ip, 0, sizeof(*ip));
		ip->version_ihl = 0x45;
		ip->total_length = rte_cpu_to_be_16((uint16_t)(ip_len + 8 + msg->len));
		ip->time_to_live = OUTER_TTL;
		ip->next_proto_id = IPPROTO_UDP;
		ip->src_addr = out->ipv4;
		memcpy(&ip->dst_addr, msg->remote, 4);
		ip->hdr_checksum = rte_ipv4_cksum(ip);
		u->dgram_cksum = rte_ipv4_udptcp_cksum(ip, u);
	} else {
		struct rte_ipv6_hdr *ip = (struct rte_ipv6_hdr *)hdr;

		memset(ip, 0, sizeof(*ip));
		ip->vtc_flow = rte_cpu_to_be_32(6u << 28);
		ip->payload_len = rte_cpu_to_be_16((uint16_t)(8 + msg->len));
		ip->proto = IPPROTO_UDP;
		ip->hop_limits = OUTER_TTL;
		memcpy(ip->src_addr, out->ipv6, 16);
		memcpy(ip->dst_addr, msg->remote, 16);
		u->dgram_cksum = rte_ipv6_udptcp_cksum(ip, u);
	}
	if (!dp_push_l2(m, out, &dmac,
			rte_cpu_to_be_16(msg->family == EG_AF_INET ? RTE_ETHER_TYPE_IPV4 : RTE_ETHER_TYPE_IPV6))) {
		rte_pktmbuf_free(m);
		return false;
	}
	return dp_service_send(ctx, m, out->index);
}

unsigned dp_control_inject(struct dp_ctx *ctx, unsigned max)
{
	struct eg_msg_ring *ring = eg_shm_inject(ctx->shm.hdr);
	struct eg_msg msg;
	unsigned n = 0;

	while (n < max && eg_msg_get(ring, &msg)) {
		n++;
		if (msg.kind == EG_MSG_UDP_SEND)
			send_udp(ctx, &msg);
		else if (msg.kind == EG_MSG_PROBE_SEND)
			dp_probe_inject(ctx, &msg);
	}
	return n;
}
