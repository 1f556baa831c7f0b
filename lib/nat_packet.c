#include "nat_packet.h"

#include <string.h>

#include "nat_table.h"

enum {
	PROTO_ICMP = 1, PROTO_TCP = 6, PROTO_UDP = 17,
	ICMP_ECHO_REPLY = 0, ICMP_UNREACH = 3, ICMP_ECHO = 8, ICMP_TIME_EXCEEDED = 11, ICMP_PARAM_PROBLEM = 12,
	TCP_FIN = 0x01, TCP_SYN = 0x02, TCP_RST = 0x04,
};

static inline uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), over the 16-bit words that changed. */
static void csum_adjust(uint8_t *csum, const uint8_t *old, const uint8_t *new, unsigned len)
{
	uint32_t sum = (uint16_t)~get16(csum);

	for (unsigned i = 0; i < len; i += 2)
		sum += (uint16_t)~get16(old + i) + get16(new + i);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	put16(csum, (uint16_t)~sum);
}

static uint16_t csum_full(const uint8_t *p, uint32_t len)
{
	uint32_t sum = 0;

	for (uint32_t i = 0; i + 1 < len; i += 2)
		sum += get16(p + i);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static bool is_error_type(uint8_t t)
{
	return t == ICMP_UNREACH || t == ICMP_TIME_EXCEEDED || t == ICMP_PARAM_PROBLEM;
}

/* The IPv4 header at ip: its length, or 0 when it is not a whole one within len. */
static uint16_t ip_header(const uint8_t *ip, uint32_t len)
{
	uint16_t ihl;

	if (len < 20 || (ip[0] >> 4) != 4)
		return 0;
	ihl = (uint16_t)((ip[0] & 0xf) * 4);
	return ihl >= 20 && ihl <= len ? ihl : 0;
}

/* The quoted packet of an ICMP error: the flow it belonged to, as it was sent. An echo
 * identifier is its port. Only the first 8 transport bytes are sure to be there (RFC 792). */
static enum eg_nat_parse parse_quoted(const uint8_t *ip, uint32_t len, struct eg_nat_pkt *k, uint32_t *src,
				      uint32_t *dst, uint16_t *sport, uint16_t *dport)
{
	const uint8_t *q = ip + k->inner_off, *t;
	uint32_t qlen = len - k->inner_off;
	uint16_t ihl = ip_header(q, qlen);
	int proto;

	if (!ihl || qlen < (uint32_t)ihl + 8)
		return EG_NAT_PARSE_MALFORMED;
	if (get16(q + 6) & 0x1fff)	/* a later fragment quotes no ports */
		return EG_NAT_PARSE_UNSUPPORTED;
	if ((proto = eg_nat_proto_of(q[9])) < 0)
		return EG_NAT_PARSE_UNSUPPORTED;
	t = q + ihl;
	k->proto = (uint8_t)proto;
	k->inner_l4_off = (uint16_t)(k->inner_off + ihl);
	*src = get32(q + 12);
	*dst = get32(q + 16);
	if (proto == EG_NAT_ICMP) {
		/* An error about an error is never answered (RFC 1122 3.2.2): only echoes. */
		if (t[0] != ICMP_ECHO && t[0] != ICMP_ECHO_REPLY)
			return EG_NAT_PARSE_UNSUPPORTED;
		*sport = *dport = get16(t + 4);
	} else {
		*sport = get16(t);
		*dport = get16(t + 2);
	}
	return EG_NAT_PARSE_OK;
}

enum eg_nat_parse eg_nat_packet_parse(const uint8_t *ip, uint32_t len, bool outbound, struct eg_nat_pkt *k)
{
	uint16_t ihl = ip_header(ip, len), tot;
	const uint8_t *t;
	int proto;

	memset(k, 0, sizeof(*k));
	if (!ihl)
		return EG_NAT_PARSE_MALFORMED;
	tot = get16(ip + 2);
	if (tot < ihl || tot > len)
		return EG_NAT_PARSE_MALFORMED;
	if ((proto = eg_nat_proto_of(ip[9])) < 0)
		return EG_NAT_PARSE_UNSUPPORTED;
	if (get16(ip + 6) & 0x3fff)	/* MF or an offset */
		return EG_NAT_PARSE_FRAGMENT;
	k->len = tot;
	k->l4_off = ihl;
	k->proto = (uint8_t)proto;
	t = ip + ihl;
	uint32_t src = get32(ip + 12), dst = get32(ip + 16);
	uint16_t sport, dport;

	switch (proto) {
	case EG_NAT_TCP:
		if (tot < ihl + 20u)
			return EG_NAT_PARSE_MALFORMED;
		sport = get16(t);
		dport = get16(t + 2);
		k->tcp_flags = (uint8_t)(((t[13] & TCP_SYN) ? EG_NAT_SYN : 0) | ((t[13] & TCP_FIN) ? EG_NAT_FIN : 0) |
					 ((t[13] & TCP_RST) ? EG_NAT_RST : 0));
		break;
	case EG_NAT_UDP:
		if (tot < ihl + 8u)
			return EG_NAT_PARSE_MALFORMED;
		sport = get16(t);
		dport = get16(t + 2);
		break;
	default:
		if (tot < ihl + 8u)
			return EG_NAT_PARSE_MALFORMED;
		if (is_error_type(t[0])) {
			uint32_t qsrc, qdst;
			uint16_t qsport, qdport;
			enum eg_nat_parse r;

			k->error = true;
			k->inner_off = (uint16_t)(ihl + 8);
			if ((r = parse_quoted(ip, tot, k, &qsrc, &qdst, &qsport, &qdport)) != EG_NAT_PARSE_OK)
				return r;
			/* Going out, the host quotes what it received (remote -> inside); coming
			 * in, a router quotes what we sent (pool -> remote). The quoted local end
			 * must be the outer one, or the error is not about this flow. */
			if (outbound ? qdst != src : qsrc != dst)
				return EG_NAT_PARSE_UNSUPPORTED;
			k->local_addr = outbound ? qdst : qsrc;
			k->local_port = outbound ? qdport : qsport;
			k->remote_addr = outbound ? qsrc : qdst;
			k->remote_port = outbound ? qsport : qdport;
			return EG_NAT_PARSE_OK;
		}
		/* Echo requests go out, replies come in; the identifier is the port. */
		if (t[0] != (outbound ? ICMP_ECHO : ICMP_ECHO_REPLY) || t[1] != 0)
			return EG_NAT_PARSE_UNSUPPORTED;
		sport = dport = get16(t + 4);
		break;
	}
	k->local_addr = outbound ? src : dst;
	k->local_port = outbound ? sport : dport;
	k->remote_addr = outbound ? dst : src;
	k->remote_port = outbound ? dport : sport;
	return EG_NAT_PARSE_OK;
}

/* A transport checksum (NULL: none there) adjusted for bytes old becoming new. UDP's
 * zero means no checksum and stays zero (RFC 768); a computed zero goes out as all ones. */
static void l4_adjust(uint8_t *csum, bool udp, const uint8_t *old, const uint8_t *new, unsigned len)
{
	if (!csum || (udp && get16(csum) == 0))
		return;
	csum_adjust(csum, old, new, len);
	if (udp && get16(csum) == 0)
		put16(csum, 0xffff);
}

/* Writes an address into an IP header at a: its header checksum, and the transport
 * checksum whose pseudo-header covers it (TCP, UDP), follow. */
static void set_addr(uint8_t *a, uint32_t addr, uint8_t *ip_csum, uint8_t *csum, bool udp)
{
	uint8_t na[4];

	memcpy(na, &addr, 4);
	csum_adjust(ip_csum, a, na, 4);
	l4_adjust(csum, udp, a, na, 4);
	memcpy(a, na, 4);
}

/* Writes a port (or echo identifier) at p, adjusting the checksum over it. */
static void set_port(uint8_t *p, uint16_t port, uint8_t *csum, bool udp)
{
	uint8_t np[2];

	put16(np, port);
	l4_adjust(csum, udp, p, np, 2);
	memcpy(p, np, 2);
}

/* The checksum field of a transport header at t with avail bytes, or NULL when it is not
 * within them (a quoted packet may be cut short). */
static uint8_t *l4_csum(uint8_t *t, uint32_t avail, uint8_t proto)
{
	unsigned at = proto == EG_NAT_TCP ? 16 : proto == EG_NAT_UDP ? 6 : 2;

	return avail >= at + 2 ? t + at : NULL;
}

void eg_nat_packet_rewrite(uint8_t *ip, const struct eg_nat_pkt *k, bool outbound, uint32_t addr, uint16_t port)
{
	uint8_t *outer_addr = ip + (outbound ? 12 : 16);
	uint8_t *t = ip + k->l4_off;
	bool udp = k->proto == EG_NAT_UDP;

	if (!k->error) {
		uint8_t *csum = l4_csum(t, k->len - k->l4_off, k->proto);

		if (k->proto == EG_NAT_ICMP) {
			/* ICMP's checksum has no pseudo-header: only the identifier is in it. */
			set_addr(outer_addr, addr, ip + 10, NULL, false);
			set_port(t + 4, port, csum, false);
			return;
		}
		set_addr(outer_addr, addr, ip + 10, csum, udp);
		set_port(t + (outbound ? 0 : 2), port, csum, udp);
		return;
	}
	/* An ICMP error: the outer address, then the quoted packet's local end (its source as
	 * we sent it, its destination as the host received it) with the quoted header's and
	 * transport checksums, and last the ICMP checksum over all of it. */
	uint8_t *q = ip + k->inner_off, *qt = ip + k->inner_l4_off;
	uint8_t *qcsum = l4_csum(qt, k->len - k->inner_l4_off, k->proto);

	set_addr(outer_addr, addr, ip + 10, NULL, false);
	if (k->proto == EG_NAT_ICMP) {
		set_addr(q + (outbound ? 16 : 12), addr, q + 10, NULL, false);
		set_port(qt + 4, port, qcsum, false);
	} else {
		set_addr(q + (outbound ? 16 : 12), addr, q + 10, qcsum, udp);
		set_port(qt + (outbound ? 2 : 0), port, qcsum, udp);
	}
	put16(t + 2, 0);
	put16(t + 2, csum_full(t, k->len - k->l4_off));
}
