#include "probe.h"

#include <string.h>

#include <rte_byteorder.h>
#include <rte_ether.h>
#include <rte_ip.h>

#include "probe_wire.h"
#include "tx.h"
#include "worker.h"

enum {
	ICMP4_ECHO_REPLY = 0,
	ICMP4_ECHO_REQUEST = 8,
	ICMP6_ECHO_REQUEST = 128,
	ICMP6_ECHO_REPLY = 129,
	REFLECT_TTL = 255,		/* RFC 5357 4.2.1, which STAMP follows */
	PROBE_TTL = 64,
};

static bool is_icmp(uint8_t family, uint8_t proto)
{
	return family == EG_AF_INET ? proto == IPPROTO_ICMP : proto == IPPROTO_ICMPV6;
}

/* The L4 checksum of the IP packet at l3 (IPv4 header checksum too), after an edit. */
static void fix_checksums(uint8_t *l3, uint8_t family, uint8_t proto, uint16_t l4_off, uint16_t l3_len)
{
	uint8_t *l4 = l3 + l4_off;

	if (family == EG_AF_INET) {
		struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)l3;

		ip->hdr_checksum = 0;
		ip->hdr_checksum = rte_ipv4_cksum(ip);
		if (proto == IPPROTO_UDP) {
			struct rte_udp_hdr *u = (struct rte_udp_hdr *)l4;

			u->dgram_cksum = 0;
			u->dgram_cksum = rte_ipv4_udptcp_cksum(ip, u);
		} else {
			struct rte_icmp_hdr *c = (struct rte_icmp_hdr *)l4;

			c->icmp_cksum = 0;
			c->icmp_cksum = (uint16_t)~rte_raw_cksum(c, (size_t)(l3_len - l4_off));
		}
	} else {
		/* The pseudo-header sum covers UDP and ICMPv6 alike (RFC 8200 8.1). */
		struct rte_ipv6_hdr *ip = (struct rte_ipv6_hdr *)l3;
		uint16_t *ck = (uint16_t *)(l4 + (proto == IPPROTO_UDP ? 6 : 2));

		*ck = 0;
		*ck = rte_ipv6_udptcp_cksum(ip, l4);
	}
}

/* Swaps the IP addresses in place and sets the hop limit. */
static void swap_ip(uint8_t *l3, uint8_t family, uint8_t ttl)
{
	uint8_t tmp[16];

	if (family == EG_AF_INET) {
		struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)l3;
		uint32_t a = ip->src_addr;

		ip->src_addr = ip->dst_addr;
		ip->dst_addr = a;
		ip->time_to_live = ttl;
		ip->fragment_offset = 0;
	} else {
		struct rte_ipv6_hdr *ip = (struct rte_ipv6_hdr *)l3;

		memcpy(tmp, ip->src_addr, 16);
		memcpy(ip->src_addr, ip->dst_addr, 16);
		memcpy(ip->dst_addr, tmp, 16);
		ip->hop_limits = ttl;
	}
}

/* The egress that sends back into the tunnel a packet came out of: the WireGuard peer's,
 * or the IPsec egress whose outbound SA has the inbound SA's peer as remote. */
static const struct eg_table_egress *egress_of_origin(const struct dp_ctx *ctx, const struct eg_table_hdr *t,
						      const struct dp_origin *from)
{
	const struct eg_table_egress *e = eg_table_egresses(t);
	const struct eg_sa_slot *in_sa = NULL;

	if (from->kind == DP_FROM_ESP) {
		if (from->slot >= ctx->shm.hdr->n_sa_slots)
			return NULL;
		in_sa = eg_shm_sa(ctx->shm.hdr, from->slot);
	}
	for (uint32_t i = 0; i < t->n_egresses; i++) {
		if (from->kind == DP_FROM_WG && e[i].type == EG_EGRESS_WIREGUARD && e[i].wg_slot == from->slot)
			return &e[i];
		if (in_sa && e[i].type == EG_EGRESS_IPSEC && e[i].sa_slot != EG_TABLE_NO_SA) {
			const struct eg_sa_slot *out = eg_shm_sa(ctx->shm.hdr, e[i].sa_slot);

			if (out->family == in_sa->family && memcmp(out->remote, in_sa->remote, 16) == 0)
				return &e[i];
		}
	}
	return NULL;
}

static const struct eg_table_egress *egress_by_id(const struct eg_table_hdr *t, uint16_t id)
{
	const struct eg_table_egress *e = eg_table_egresses(t);

	for (uint32_t i = 0; i < t->n_egresses; i++)
		if (e[i].id == id)
			return &e[i];
	return NULL;
}

/* Sends an answer back the way its question came: into the tunnel, or to the MAC on the
 * port it arrived on. */
static void send_back(struct dp_worker *w, const struct eg_table_hdr *t, const struct dp_port *in,
		      struct rte_mbuf *m, const struct dp_local_pkt *p, const struct dp_origin *from)
{
	if (from) {
		const struct eg_table_egress *e = t ? egress_of_origin(w->ctx, t, from) : NULL;

		if (!e) {
			dp_count_drop(w, in->index, EG_DROP_PROBE_NO_PATH);
			rte_pktmbuf_free(m);
			return;
		}
		dp_worker_send_via(w, e, in->index, m, p->family);
		return;
	}
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);

	eth->dst_addr = eth->src_addr;
	eth->src_addr = in->mac;
	dp_queue_tx(w, in->index, m);
}

/* RFC 8762 4.3.1, stateless: the reflected packet carries the sender's sequence number,
 * timestamps and TTL back, with our receive (T2) and transmit (T3) times. */
static void reflect_stamp(struct dp_worker *w, const struct eg_table_hdr *t, const struct dp_port *in,
			  struct rte_mbuf *m, const struct dp_local_pkt *p, const struct dp_origin *from,
			  uint64_t rx_ntp)
{
	struct rte_udp_hdr *u = (struct rte_udp_hdr *)(p->l3 + p->l4_off);
	uint8_t *d = (uint8_t *)(u + 1), sender[EG_STAMP_LEN];
	uint16_t len = (uint16_t)(p->l3_len - p->l4_off - sizeof(*u)), port;
	uint8_t ttl = p->family == EG_AF_INET ? ((struct rte_ipv4_hdr *)p->l3)->time_to_live
					      : ((struct rte_ipv6_hdr *)p->l3)->hop_limits;

	if (len < EG_STAMP_LEN || rte_be_to_cpu_16(u->dgram_len) != len + sizeof(*u)) {
		dp_count_drop(w, in->index, EG_DROP_PROBE_MALFORMED);
		rte_pktmbuf_free(m);
		return;
	}
	memcpy(sender, d, EG_STAMP_LEN);
	memset(d, 0, len);		/* a longer test packet is answered as long, zero-filled */
	memcpy(d + EG_STAMP_SEQ, sender + EG_STAMP_SEQ, 4);
	d[EG_STAMP_ERROR_ESTIMATE] = EG_STAMP_ERROR_ESTIMATE_VALUE >> 8;
	d[EG_STAMP_ERROR_ESTIMATE + 1] = EG_STAMP_ERROR_ESTIMATE_VALUE & 0xff;
	eg_put_be64(d + EG_STAMP_RX_TIMESTAMP, rx_ntp);
	memcpy(d + EG_STAMP_SENDER_SEQ, sender + EG_STAMP_SEQ, 4);
	memcpy(d + EG_STAMP_SENDER_TIMESTAMP, sender + EG_STAMP_TIMESTAMP, 8);
	memcpy(d + EG_STAMP_SENDER_ERROR_ESTIMATE, sender + EG_STAMP_ERROR_ESTIMATE, 2);
	d[EG_STAMP_SENDER_TTL] = ttl;
	port = u->src_port;
	u->src_port = u->dst_port;
	u->dst_port = port;
	swap_ip(p->l3, p->family, REFLECT_TTL);
	eg_put_be64(d + EG_STAMP_TIMESTAMP, eg_ntp_now());
	fix_checksums(p->l3, p->family, IPPROTO_UDP, p->l4_off, p->l3_len);
	w->shm->probes_reflected++;
	send_back(w, t, in, m, p, from);
}

/* An echo request that came out of a tunnel: the service answers those from the wire,
 * but only the worker knows the tunnel to answer into. */
static void reflect_echo(struct dp_worker *w, const struct eg_table_hdr *t, const struct dp_port *in,
			 struct rte_mbuf *m, const struct dp_local_pkt *p, const struct dp_origin *from)
{
	uint8_t *icmp = p->l3 + p->l4_off;

	icmp[0] = p->family == EG_AF_INET ? ICMP4_ECHO_REPLY : ICMP6_ECHO_REPLY;
	swap_ip(p->l3, p->family, PROBE_TTL);
	fix_checksums(p->l3, p->family, p->proto, p->l4_off, p->l3_len);
	send_back(w, t, in, m, p, from);
}

/* An answer to one of our probes, to the control process with its arrival time. */
static void punt_answer(struct dp_worker *w, const struct dp_port *in, struct rte_mbuf *m,
			const struct dp_local_pkt *p, uint16_t ours, uint16_t theirs, const uint8_t *data,
			uint32_t len, uint64_t rx_ntp)
{
	uint16_t src_off = p->family == EG_AF_INET ? 12 : 8, alen = p->family == EG_AF_INET ? 4 : 16;
	struct rte_mbuf *n;
	struct eg_msg *msg;

	if (len > EG_MSG_DATA_MAX)
		len = EG_MSG_DATA_MAX;
	msg = dp_worker_msg_new(w, (uint16_t)len, &n);
	if (!msg) {
		dp_count_drop(w, in->index, EG_DROP_PUNT_FULL);
		rte_pktmbuf_free(m);
		return;
	}
	msg->kind = EG_MSG_PROBE_REPLY;
	msg->port = in->index;
	msg->family = p->family;
	msg->proto = p->proto;
	msg->local_port = ours;
	msg->remote_port = theirs;
	msg->len = (uint16_t)len;
	msg->rx_ntp = rx_ntp;
	memcpy(msg->remote, p->l3 + src_off, alen);
	memcpy(msg->local, p->l3 + src_off + alen, alen);
	memcpy(msg->data, data, len);
	rte_pktmbuf_free(m);
	if (dp_worker_msg_punt(w, n, in->index))
		w->shm->probe_answers++;
	else
		dp_count_drop(w, in->index, EG_DROP_PUNT_FULL);
}

bool dp_probe_local(struct dp_worker *w, const struct eg_table_hdr *t, const struct dp_port *in,
		    struct rte_mbuf *m, const struct dp_local_pkt *p, const struct dp_origin *from)
{
	const uint8_t *l4 = p->l3 + p->l4_off;
	uint32_t l4_len = p->l3_len > p->l4_off ? (uint32_t)(p->l3_len - p->l4_off) : 0;

	if (!rte_pktmbuf_is_contiguous(m) || l4_len < 8)
		return false;
	if (p->proto == IPPROTO_UDP) {
		uint16_t sport = (uint16_t)(l4[0] << 8 | l4[1]), dport = (uint16_t)(l4[2] << 8 | l4[3]);

		if (dport == EG_STAMP_PORT && w->ctx->cfg.dataplane.stamp_reflector) {
			reflect_stamp(w, t, in, m, p, from, eg_ntp_now());
			return true;
		}
		if (dport >= EG_PROBE_PORT_BASE && dport < EG_PROBE_PORT_BASE + EG_MAX_EGRESSES) {
			punt_answer(w, in, m, p, dport, sport, l4 + 8, l4_len - 8, eg_ntp_now());
			return true;
		}
		return false;
	}
	if (!is_icmp(p->family, p->proto))
		return false;
	uint8_t type = l4[0];
	uint16_t id = (uint16_t)(l4[4] << 8 | l4[5]), seq = (uint16_t)(l4[6] << 8 | l4[7]);

	if ((type == ICMP4_ECHO_REPLY && p->family == EG_AF_INET) ||
	    (type == ICMP6_ECHO_REPLY && p->family == EG_AF_INET6)) {
		if (id < EG_PROBE_ICMP_ID_BASE || id >= EG_PROBE_ICMP_ID_BASE + EG_MAX_EGRESSES)
			return false;
		punt_answer(w, in, m, p, id, seq, l4 + 8, l4_len - 8, eg_ntp_now());
		return true;
	}
	if (from && ((type == ICMP4_ECHO_REQUEST && p->family == EG_AF_INET) ||
		     (type == ICMP6_ECHO_REQUEST && p->family == EG_AF_INET6))) {
		reflect_echo(w, t, in, m, p, from);
		return true;
	}
	return false;
}

void dp_probe_transmit(struct dp_worker *w, const struct eg_table_hdr *t, struct rte_mbuf *m)
{
	const struct eg_table_egress *e = t ? egress_by_id(t, m->port) : NULL;
	uint8_t *l3 = rte_pktmbuf_mtod(m, uint8_t *);
	uint8_t family = (l3[0] >> 4) == 4 ? EG_AF_INET : EG_AF_INET6;
	uint16_t l4_off = family == EG_AF_INET ? sizeof(struct rte_ipv4_hdr) : sizeof(struct rte_ipv6_hdr);
	uint8_t proto = family == EG_AF_INET ? ((struct rte_ipv4_hdr *)l3)->next_proto_id
					     : ((struct rte_ipv6_hdr *)l3)->proto;
	uint16_t in_port = e && e->port < w->ctx->n_ports ? e->port : 0;

	if (!e) {
		dp_count_drop(w, in_port, EG_DROP_PROBE_NO_PATH);
		rte_pktmbuf_free(m);
		return;
	}
	/* T1 as late as we can take it: after this only encryption and the NIC. */
	eg_put_be64(l3 + l4_off + 8 + (proto == IPPROTO_UDP ? EG_STAMP_TIMESTAMP : 0), eg_ntp_now());
	fix_checksums(l3, family, proto, l4_off, (uint16_t)rte_pktmbuf_data_len(m));
	w->shm->probes_sent++;
	dp_worker_send_via(w, e, in_port, m, family);
}

bool dp_probe_inject(struct dp_ctx *ctx, const struct eg_msg *msg)
{
	bool v4 = msg->family == EG_AF_INET;
	uint16_t ip_len = v4 ? sizeof(struct rte_ipv4_hdr) : sizeof(struct rte_ipv6_hdr);
	uint16_t need = msg->proto == IPPROTO_UDP ? EG_STAMP_LEN : 8;
	uint16_t total = (uint16_t)(ip_len + 8 + msg->len);
	struct rte_mbuf *m;
	uint8_t *l3, *l4;

	if ((msg->family != EG_AF_INET && msg->family != EG_AF_INET6) || msg->len < need ||
	    msg->len > EG_MSG_DATA_MAX || (msg->proto != IPPROTO_UDP && !is_icmp(msg->family, msg->proto)) ||
	    msg->peer_slot >= EG_MAX_EGRESSES)
		return false;
	m = rte_pktmbuf_alloc(ctx->pool);
	l3 = m ? (uint8_t *)rte_pktmbuf_append(m, total) : NULL;
	if (!l3) {
		rte_pktmbuf_free(m);
		return false;
	}
	memset(l3, 0, ip_len + 8);
	l4 = l3 + ip_len;
	if (v4) {
		struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)l3;

		ip->version_ihl = 0x45;
		ip->total_length = rte_cpu_to_be_16(total);
		ip->time_to_live = PROBE_TTL;
		ip->next_proto_id = msg->proto;
		memcpy(&ip->src_addr, msg->local, 4);
		memcpy(&ip->dst_addr, msg->remote, 4);
	} else {
		struct rte_ipv6_hdr *ip = (struct rte_ipv6_hdr *)l3;

		ip->vtc_flow = rte_cpu_to_be_32(6u << 28);
		ip->payload_len = rte_cpu_to_be_16((uint16_t)(8 + msg->len));
		ip->proto = msg->proto;
		ip->hop_limits = PROBE_TTL;
		memcpy(ip->src_addr, msg->local, 16);
		memcpy(ip->dst_addr, msg->remote, 16);
	}
	if (msg->proto == IPPROTO_UDP) {
		struct rte_udp_hdr *u = (struct rte_udp_hdr *)l4;

		u->src_port = rte_cpu_to_be_16(msg->local_port);
		u->dst_port = rte_cpu_to_be_16(msg->remote_port);
		u->dgram_len = rte_cpu_to_be_16((uint16_t)(8 + msg->len));
	} else {
		l4[0] = v4 ? ICMP4_ECHO_REQUEST : ICMP6_ECHO_REQUEST;
		l4[4] = (uint8_t)(msg->local_port >> 8);
		l4[5] = (uint8_t)msg->local_port;
		l4[6] = (uint8_t)(msg->remote_port >> 8);
		l4[7] = (uint8_t)msg->remote_port;
	}
	memcpy(l4 + 8, msg->data, msg->len);
	m->port = (uint16_t)msg->peer_slot;
	m->hash.usr = DP_INJECT_PROBE;
	if (rte_ring_enqueue(ctx->workers[0].inject, m) == 0)
		return true;
	rte_pktmbuf_free(m);
	return false;
}
