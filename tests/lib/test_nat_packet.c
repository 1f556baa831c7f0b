/* Source NAT's packet side (lib/nat_packet.c): what it reads from TCP, UDP, ICMP echo and
 * ICMP errors going out and coming in, what it refuses, and its rewrites, whose checksums
 * are checked by a plain from-scratch computation here (not the incremental one under
 * test), over fixed cases and random packets. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "nat_packet.h"
#include "nat_table.h"

enum { TCP = 6, UDP = 17, ICMP = 1 };

/* An address as it is on the wire (this is a little-endian build). */
#define A(a, b, c, d) __builtin_bswap32((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (d))
static const uint32_t INSIDE = A(10, 10, 0, 2), REMOTE = A(203, 0, 113, 10), POOL = A(192, 0, 2, 100);

/* ---- an independent checksum: a byte-wise sum with the pseudo-header laid out ---- */

static uint16_t sum16(const uint8_t *p, size_t len)
{
	uint64_t s = 0;

	for (size_t i = 0; i < len; i++)
		s += i % 2 ? p[i] : (uint32_t)p[i] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

static uint16_t checksum(const uint8_t *p, size_t len)
{
	return (uint16_t)~sum16(p, len);
}

/* The transport checksum over pseudo-header and segment, as it should be in the header. */
static uint16_t l4_checksum(const uint8_t *ip, const uint8_t *seg, size_t len, uint8_t proto)
{
	uint8_t *buf = calloc(1, 12 + len);
	uint16_t c;

	memcpy(buf, ip + 12, 8);
	buf[9] = proto;
	buf[10] = (uint8_t)(len >> 8);
	buf[11] = (uint8_t)len;
	memcpy(buf + 12, seg, len);
	c = checksum(buf, 12 + len);
	free(buf);
	return c;
}

/* Zero when the checksums of the IPv4 packet (and its transport, unless short) are right. */
static void assert_checksums(const uint8_t *ip, bool quoted_part)
{
	unsigned ihl = (ip[0] & 0xf) * 4u, tot = (unsigned)(ip[2] << 8 | ip[3]);
	const uint8_t *t = ip + ihl;

	cr_assert_eq(sum16(ip, ihl), 0xffff, "IPv4 header checksum");
	if (quoted_part)
		return;
	if (ip[9] == ICMP) {
		cr_assert_eq(sum16(t, tot - ihl), 0xffff, "ICMP checksum");
	} else if (ip[9] == UDP && t[6] == 0 && t[7] == 0) {
		/* no checksum */
	} else {
		uint8_t *copy = malloc(tot - ihl);
		unsigned at = ip[9] == TCP ? 16 : 6;
		uint16_t want;

		memcpy(copy, t, tot - ihl);
		copy[at] = copy[at + 1] = 0;
		want = l4_checksum(ip, copy, tot - ihl, ip[9]);
		if (ip[9] == UDP && want == 0)
			want = 0xffff;
		cr_assert_eq((uint16_t)(t[at] << 8 | t[at + 1]), want, "transport checksum");
		free(copy);
	}
}

/* ---- packet builders ---- */

static void set_ip_csum(uint8_t *ip)
{
	unsigned ihl = (ip[0] & 0xf) * 4u;

	ip[10] = ip[11] = 0;
	uint16_t c = checksum(ip, ihl);

	ip[10] = (uint8_t)(c >> 8);
	ip[11] = (uint8_t)c;
}

static size_t ip_hdr(uint8_t *ip, uint8_t proto, uint32_t src, uint32_t dst, size_t l4_len)
{
	size_t tot = 20 + l4_len;

	memset(ip, 0, 20);
	ip[0] = 0x45;
	ip[2] = (uint8_t)(tot >> 8);
	ip[3] = (uint8_t)tot;
	ip[6] = 0x40;			/* DF */
	ip[8] = 64;
	ip[9] = proto;
	memcpy(ip + 12, &src, 4);
	memcpy(ip + 16, &dst, 4);
	set_ip_csum(ip);
	return tot;
}

static size_t tcp_pkt(uint8_t *ip, uint32_t src, uint32_t dst, uint16_t sp, uint16_t dp, uint8_t flags,
		      size_t payload)
{
	uint8_t *t = ip + 20;
	size_t len = 20 + payload, tot = ip_hdr(ip, TCP, src, dst, len);

	memset(t, 0, len);
	t[0] = (uint8_t)(sp >> 8), t[1] = (uint8_t)sp, t[2] = (uint8_t)(dp >> 8), t[3] = (uint8_t)dp;
	t[4] = 0x12, t[7] = 0x34;	/* sequence number */
	t[12] = 5 << 4;
	t[13] = flags;
	t[14] = 0xff;			/* window */
	for (size_t i = 0; i < payload; i++)
		t[20 + i] = (uint8_t)(i * 7 + 3);
	uint16_t c = l4_checksum(ip, t, len, TCP);

	t[16] = (uint8_t)(c >> 8), t[17] = (uint8_t)c;
	return tot;
}

static size_t udp_pkt(uint8_t *ip, uint32_t src, uint32_t dst, uint16_t sp, uint16_t dp, size_t payload,
		      bool with_csum)
{
	uint8_t *t = ip + 20;
	size_t len = 8 + payload, tot = ip_hdr(ip, UDP, src, dst, len);

	memset(t, 0, len);
	t[0] = (uint8_t)(sp >> 8), t[1] = (uint8_t)sp, t[2] = (uint8_t)(dp >> 8), t[3] = (uint8_t)dp;
	t[4] = (uint8_t)(len >> 8), t[5] = (uint8_t)len;
	for (size_t i = 0; i < payload; i++)
		t[8 + i] = (uint8_t)(i * 13 + 1);
	if (with_csum) {
		uint16_t c = l4_checksum(ip, t, len, UDP);

		if (c == 0)
			c = 0xffff;
		t[6] = (uint8_t)(c >> 8), t[7] = (uint8_t)c;
	}
	return tot;
}

static size_t echo_pkt(uint8_t *ip, uint32_t src, uint32_t dst, uint8_t type, uint16_t id, size_t payload)
{
	uint8_t *t = ip + 20;
	size_t len = 8 + payload, tot = ip_hdr(ip, ICMP, src, dst, len);

	memset(t, 0, len);
	t[0] = type;
	t[4] = (uint8_t)(id >> 8), t[5] = (uint8_t)id;
	t[7] = 1;			/* sequence */
	for (size_t i = 0; i < payload; i++)
		t[8 + i] = (uint8_t)i;
	uint16_t c = checksum(t, len);

	t[2] = (uint8_t)(c >> 8), t[3] = (uint8_t)c;
	return tot;
}

/* An ICMP error from router about quoted (quote_len bytes of it). */
static size_t icmp_error(uint8_t *ip, uint32_t router, uint32_t dst, uint8_t type, uint8_t code, const uint8_t *quoted,
			 size_t quote_len)
{
	uint8_t *t = ip + 20;
	size_t len = 8 + quote_len, tot = ip_hdr(ip, ICMP, router, dst, len);

	memset(t, 0, 8);
	t[0] = type;
	t[1] = code;
	memcpy(t + 8, quoted, quote_len);
	uint16_t c = checksum(t, len);

	t[2] = (uint8_t)(c >> 8), t[3] = (uint8_t)c;
	return tot;
}

static uint32_t addr_at(const uint8_t *p)
{
	uint32_t a;

	memcpy(&a, p, 4);
	return a;
}

static uint16_t port_at(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* ---- the table: what is read, and what is written ---- */

Test(nat_packet, tcp_both_ways)
{
	uint8_t ip[256];
	struct eg_nat_pkt k;
	size_t n = tcp_pkt(ip, INSIDE, REMOTE, 40000, 443, 0x02, 0);

	cr_assert_eq(eg_nat_packet_parse(ip, (uint32_t)n, true, &k), EG_NAT_PARSE_OK);
	cr_assert_eq(k.proto, EG_NAT_TCP);
	cr_assert(!k.error);
	cr_assert_eq(k.local_addr, INSIDE);
	cr_assert_eq(k.local_port, 40000);
	cr_assert_eq(k.remote_addr, REMOTE);
	cr_assert_eq(k.remote_port, 443);
	cr_assert_eq(k.tcp_flags, EG_NAT_SYN);
	eg_nat_packet_rewrite(ip, &k, true, POOL, 2049);
	cr_assert_eq(addr_at(ip + 12), POOL);
	cr_assert_eq(addr_at(ip + 16), REMOTE);
	cr_assert_eq(port_at(ip + 20), 2049);
	cr_assert_eq(port_at(ip + 22), 443);
	assert_checksums(ip, false);

	/* The answer: SYN-ACK to the pool endpoint, back to the inside one. */
	n = tcp_pkt(ip, REMOTE, POOL, 443, 2049, 0x12, 100);
	cr_assert_eq(eg_nat_packet_parse(ip, (uint32_t)n, false, &k), EG_NAT_PARSE_OK);
	cr_assert_eq(k.local_addr, POOL);
	cr_assert_eq(k.local_port, 2049);
	cr_assert_eq(k.remote_addr, REMOTE);
	cr_assert_eq(k.tcp_flags, EG_NAT_SYN);
	eg_nat_packet_rewrite(ip, &k, false, INSIDE, 40000);
	cr_assert_eq(addr_at(ip + 12), REMOTE);
	cr_assert_eq(addr_at(ip + 16), INSIDE);
	cr_assert_eq(port_at(ip + 20), 443);
	cr_assert_eq(port_at(ip + 22), 40000);
	assert_checksums(ip, false);

	n = tcp_pkt(ip, INSIDE, REMOTE, 40000, 443, 0x11, 0);	/* FIN-ACK */
	cr_assert_eq(eg_nat_packet_parse(ip, (uint32_t)n, true, &k), EG_NAT_PARSE_OK);
	cr_assert_eq(k.tcp_flags, EG_NAT_FIN);
	n = tcp_pkt(ip, INSIDE, REMOTE, 40000, 443, 0x04, 0);	/* RST */
	cr_assert_eq(eg_nat_packet_parse(ip, (uint32_t)n, true, &k), EG_NAT_PARSE_OK);
	cr_assert_eq(k.tcp_flags, EG_NAT_RST);
}

Test(nat_packet, udp_with_and_without_checksum)
{
	uint8_t ip[256];
	struct eg_nat_pkt k;
	size_t n = udp_pkt(ip, INSIDE, REMOTE, 5353, 53, 33, true);

	cr_assert_eq(eg_nat_packet_parse(ip, (uint32_t)n, true, &k), EG_NAT_PARSE_OK);
	cr_assert_eq(k.proto, EG_NAT_UDP);
	cr_assert_eq(k.local_port, 5353);
	cr_assert_eq(k.remote_port, 53);
	eg_nat_packet_rewrite(ip, &k, true, POOL, 61000);
	cr_assert_eq(port_at(ip + 20), 61000);
	assert_checksums(ip, false);

	/* No checksum (allowed over IPv4, RFC 768) stays none. */
	n = udp_pkt(ip, REMOTE, POOL, 53, 61000, 33, false);
	cr_assert_eq(eg_nat_packet_parse(ip, (uint32_t)n, false, &k), EG_NAT_PARSE_OK);
	eg_nat_packet_rewrite(ip, &k, false, INSIDE, 5353);
	cr_assert_eq(port_at(ip + 26), 0, "a zero UDP checksum stays zero");
	cr_assert_eq(addr_at(ip + 16), INSIDE);
	cr_assert_eq(port_at(ip + 22), 5353);
	assert_checksums(ip, false);
}

/* A rewrite whose true checksum is 0x0000 must send 0xffff, as zero means "none". */
Test(nat_packet, udp_computed_zero_goes_out_as_ones)
{
	uint8_t ip[64];
	struct eg_nat_pkt k;
	bool found = false;

	for (uint32_t v = 0; v < 65536 && !found; v++) {
		udp_pkt(ip, INSIDE, REMOTE, 5000, 6000, 2, false);
		ip[28] = (uint8_t)(v >> 8), ip[29] = (uint8_t)v;
		uint16_t c = l4_checksum(ip, ip + 20, 10, UDP);

		if (c == 0)
			continue;	/* it would be sent as 0xffff already */
		ip[26] = (uint8_t)(c >> 8), ip[27] = (uint8_t)c;
		/* What the translated packet's checksum would be, computed whole. */
		uint8_t copy[64];

		memcpy(copy, ip, sizeof(copy));
		memcpy(copy + 12, &POOL, 4);
		copy[20] = 0x08, copy[21] = 0x01;
		copy[26] = copy[27] = 0;
		if (l4_checksum(copy, copy + 20, 10, UDP) != 0)
			continue;
		found = true;
		cr_assert_eq(eg_nat_packet_parse(ip, 30, true, &k), EG_NAT_PARSE_OK);
		eg_nat_packet_rewrite(ip, &k, true, POOL, 0x0801);
		cr_assert_eq(port_at(ip + 26), 0xffff);
	}
	cr_assert(found, "some payload word makes the translated checksum zero");
}

Test(nat_packet, icmp_echo_identifier_is_the_port)
{
	uint8_t ip[256];
	struct eg_nat_pkt k;
	size_t n = echo_pkt(ip, INSIDE, REMOTE, 8, 0x1234, 56);

	cr_assert_eq(eg_nat_packet_parse(ip, (uint32_t)n, true, &k), EG_NAT_PARSE_OK);
	cr_assert_eq(k.proto, EG_NAT_ICMP);
	cr_assert_eq(k.local_port, 0x1234);
	eg_nat_packet_rewrite(ip, &k, true, POOL, 3000);
	cr_assert_eq(port_at(ip + 24), 3000);
	cr_assert_eq(addr_at(ip + 12), POOL);
	assert_checksums(ip, false);

	n = echo_pkt(ip, REMOTE, POOL, 0, 3000, 56);
	cr_assert_eq(eg_nat_packet_parse(ip, (uint32_t)n, false, &k), EG_NAT_PARSE_OK);
	cr_assert_eq(k.local_port, 3000);
	eg_nat_packet_rewrite(ip, &k, false, INSIDE, 0x1234);
	cr_assert_eq(port_at(ip + 24), 0x1234);
	cr_assert_eq(addr_at(ip + 16), INSIDE);
	assert_checksums(ip, false);

	/* Requests do not come in and replies do not go out through NAT. */
	n = echo_pkt(ip, REMOTE, POOL, 8, 1, 0);
	cr_assert_eq(eg_nat_packet_parse(ip, (uint32_t)n, false, &k), EG_NAT_PARSE_UNSUPPORTED);
	n = echo_pkt(ip, INSIDE, REMOTE, 0, 1, 0);
	cr_assert_eq(eg_nat_packet_parse(ip, (uint32_t)n, true, &k), EG_NAT_PARSE_UNSUPPORTED);
	n = echo_pkt(ip, INSIDE, REMOTE, 13, 1, 12);	/* timestamp request */
	cr_assert_eq(eg_nat_packet_parse(ip, (uint32_t)n, true, &k), EG_NAT_PARSE_UNSUPPORTED);
}

/* A router's error about a UDP datagram we sent from the pool: back to the inside host,
 * with the quoted datagram as the host sent it. */
Test(nat_packet, icmp_error_inbound_quoting_udp)
{
	uint8_t sent[128], ip[256], want[128];
	struct eg_nat_pkt k;
	size_t qn = udp_pkt(sent, POOL, REMOTE, 2050, 53, 20, true);
	size_t n = icmp_error(ip, A(198, 51, 100, 77), POOL, 3, 3, sent, qn);

	cr_assert_eq(eg_nat_packet_parse(ip, (uint32_t)n, false, &k), EG_NAT_PARSE_OK);
	cr_assert(k.error);
	cr_assert_eq(k.proto, EG_NAT_UDP);
	cr_assert_eq(k.local_addr, POOL);
	cr_assert_eq(k.local_port, 2050);
	cr_assert_eq(k.remote_addr, REMOTE);
	cr_assert_eq(k.remote_port, 53);
	eg_nat_packet_rewrite(ip, &k, false, INSIDE, 5353);
	cr_assert_eq(addr_at(ip + 16), INSIDE);
	cr_assert_eq(addr_at(ip + 12), A(198, 51, 100, 77), "the router stays the source");
	/* The quoted datagram is now exactly what the host sent. */
	udp_pkt(want, INSIDE, REMOTE, 5353, 53, 20, true);
	cr_assert_eq(memcmp(ip + 28, want, qn), 0, "quoted packet as the inside host sent it");
	assert_checksums(ip, false);
	assert_checksums(ip + 28, false);
}

/* Only the first 8 bytes of the quoted TCP header: its checksum is not there to fix. */
Test(nat_packet, icmp_error_inbound_quoting_short_tcp)
{
	uint8_t sent[128], ip[256];
	struct eg_nat_pkt k;

	tcp_pkt(sent, POOL, REMOTE, 3333, 80, 0x02, 0);
	size_t n = icmp_error(ip, REMOTE, POOL, 11, 0, sent, 28);

	cr_assert_eq(eg_nat_packet_parse(ip, (uint32_t)n, false, &k), EG_NAT_PARSE_OK);
	cr_assert_eq(k.proto, EG_NAT_TCP);
	cr_assert_eq(k.local_port, 3333);
	eg_nat_packet_rewrite(ip, &k, false, INSIDE, 44444);
	cr_assert_eq(addr_at(ip + 28 + 12), INSIDE);
	cr_assert_eq(port_at(ip + 48), 44444);
	assert_checksums(ip, false);
	assert_checksums(ip + 28, true);
}

Test(nat_packet, icmp_error_inbound_quoting_echo)
{
	uint8_t sent[128], ip[256];
	struct eg_nat_pkt k;
	size_t qn = echo_pkt(sent, POOL, REMOTE, 8, 4000, 16);
	size_t n = icmp_error(ip, A(198, 51, 100, 1), POOL, 11, 0, sent, qn);

	cr_assert_eq(eg_nat_packet_parse(ip, (uint32_t)n, false, &k), EG_NAT_PARSE_OK);
	cr_assert_eq(k.proto, EG_NAT_ICMP);
	cr_assert_eq(k.local_port, 4000);
	eg_nat_packet_rewrite(ip, &k, false, INSIDE, 77);
	cr_assert_eq(port_at(ip + 28 + 24), 77);
	assert_checksums(ip, false);
	assert_checksums(ip + 28, false);
}

/* The inside host answers an inbound datagram with port unreachable: out it goes with the
 * pool address, quoting the datagram as it arrived at the pool. */
Test(nat_packet, icmp_error_outbound)
{
	uint8_t got[128], ip[256], want[128];
	struct eg_nat_pkt k;
	size_t qn = udp_pkt(got, REMOTE, INSIDE, 53, 5353, 12, true);
	size_t n = icmp_error(ip, INSIDE, REMOTE, 3, 3, got, qn);

	cr_assert_eq(eg_nat_packet_parse(ip, (uint32_t)n, true, &k), EG_NAT_PARSE_OK);
	cr_assert(k.error);
	cr_assert_eq(k.local_addr, INSIDE);
	cr_assert_eq(k.local_port, 5353);
	cr_assert_eq(k.remote_addr, REMOTE);
	eg_nat_packet_rewrite(ip, &k, true, POOL, 2222);
	cr_assert_eq(addr_at(ip + 12), POOL);
	udp_pkt(want, REMOTE, POOL, 53, 2222, 12, true);
	cr_assert_eq(memcmp(ip + 28, want, qn), 0);
	assert_checksums(ip, false);
}

Test(nat_packet, refusals)
{
	uint8_t ip[256], sent[64];
	struct eg_nat_pkt k;
	size_t n;

	n = udp_pkt(ip, INSIDE, REMOTE, 1, 2, 40, true);
	ip[6] = 0x20;			/* MF: a first fragment */
	cr_assert_eq(eg_nat_packet_parse(ip, (uint32_t)n, true, &k), EG_NAT_PARSE_FRAGMENT);
	ip[6] = 0x00, ip[7] = 0x10;	/* a later one */
	cr_assert_eq(eg_nat_packet_parse(ip, (uint32_t)n, true, &k), EG_NAT_PARSE_FRAGMENT);
	n = ip_hdr(ip, 47, INSIDE, REMOTE, 8);	/* GRE */
	cr_assert_eq(eg_nat_packet_parse(ip, (uint32_t)n, true, &k), EG_NAT_PARSE_UNSUPPORTED);
	n = tcp_pkt(ip, INSIDE, REMOTE, 1, 2, 0x10, 0);
	cr_assert_eq(eg_nat_packet_parse(ip, 39, true, &k), EG_NAT_PARSE_MALFORMED, "cut short");
	ip[2] = 0, ip[3] = 30;	/* total length says the TCP header is cut */
	cr_assert_eq(eg_nat_packet_parse(ip, (uint32_t)n, true, &k), EG_NAT_PARSE_MALFORMED);
	cr_assert_eq(eg_nat_packet_parse(ip, 10, true, &k), EG_NAT_PARSE_MALFORMED);
	/* An error whose quoted source is not the address it was sent to. */
	size_t qn = udp_pkt(sent, A(192, 0, 2, 200), REMOTE, 2050, 53, 0, true);

	n = icmp_error(ip, REMOTE, POOL, 3, 3, sent, qn);
	cr_assert_eq(eg_nat_packet_parse(ip, (uint32_t)n, false, &k), EG_NAT_PARSE_UNSUPPORTED);
	/* An error quoting an error. */
	uint8_t inner[128];
	size_t in_n = icmp_error(inner, POOL, REMOTE, 3, 1, sent, qn);

	n = icmp_error(ip, REMOTE, POOL, 3, 3, inner, in_n);
	cr_assert_eq(eg_nat_packet_parse(ip, (uint32_t)n, false, &k), EG_NAT_PARSE_UNSUPPORTED);
	/* An error too short to quote a header and 8 bytes. */
	n = icmp_error(ip, REMOTE, POOL, 3, 3, sent, 24);
	cr_assert_eq(eg_nat_packet_parse(ip, (uint32_t)n, false, &k), EG_NAT_PARSE_MALFORMED);
}

/* Random packets of every kind, both ways: the rewrite leaves every checksum right. */
Test(nat_packet, random_rewrites_keep_checksums)
{
	uint8_t ip[1600], q[1600];
	struct eg_nat_pkt k;

	srand(7);
	for (int i = 0; i < 3000; i++) {
		uint32_t a = (uint32_t)rand() | 1, b = (uint32_t)rand() | 2, na = (uint32_t)rand();
		uint16_t sp = (uint16_t)rand(), dp = (uint16_t)rand(), np = (uint16_t)rand();
		size_t pl = (size_t)rand() % 1400, n = 0;
		bool out = rand() & 1;
		int kind = rand() % 5;

		switch (kind) {
		case 0:
			n = tcp_pkt(ip, a, b, sp, dp, (uint8_t)rand(), pl);
			break;
		case 1:
			n = udp_pkt(ip, a, b, sp, dp, pl, rand() & 1);
			break;
		case 2:
			n = echo_pkt(ip, a, b, out ? 8 : 0, sp, pl);
			break;
		default: {
			/* An error about a packet of the flow, quoted whole or in part. */
			size_t qn = kind == 3 ? udp_pkt(q, out ? b : a, out ? a : b, sp, dp, pl % 200, true)
					      : tcp_pkt(q, out ? b : a, out ? a : b, sp, dp, 0x10, pl % 200);
			size_t quote = 28 + (size_t)rand() % (qn - 27);

			n = icmp_error(ip, out ? a : b, out ? b : a, 3, 3, q, quote);
			break;
		}
		}
		cr_assert_eq(eg_nat_packet_parse(ip, (uint32_t)n, out, &k), EG_NAT_PARSE_OK, "case %d kind %d", i, kind);
		eg_nat_packet_rewrite(ip, &k, out, na, np);
		assert_checksums(ip, false);
		if (k.error)
			cr_assert_eq(sum16(ip + 28, 20), 0xffff, "quoted header checksum, case %d", i);
	}
}
