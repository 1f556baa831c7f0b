/* lib/net_addr.c: table-driven vectors for every parser, plus a differential test of
 * eg_prefix_contains against a bit-by-bit reference. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net_addr.h"

static const struct {
	const char *in;
	int ret;
	uint8_t family;
	const char *canon;	/* what eg_addr_format prints back */
} addr_cases[] = {
	/*  0 */ {"192.0.2.1", 0, EG_AF_INET, "192.0.2.1"},
	/*  1 */ {"0.0.0.0", 0, EG_AF_INET, "0.0.0.0"},
	/*  2 */ {"255.255.255.255", 0, EG_AF_INET, "255.255.255.255"},
	/*  3 */ {"2001:db8::1", 0, EG_AF_INET6, "2001:db8::1"},
	/*  4 */ {"2001:DB8:0:0:0:0:0:1", 0, EG_AF_INET6, "2001:db8::1"},
	/*  5 */ {"::", 0, EG_AF_INET6, "::"},
	/*  6 */ {"::ffff:192.0.2.1", 0, EG_AF_INET6, "::ffff:192.0.2.1"},
	/*  7 */ {"256.0.0.1", -EINVAL, 0, NULL},
	/*  8 */ {"1.2.3", -EINVAL, 0, NULL},
	/*  9 */ {"1.2.3.4.5", -EINVAL, 0, NULL},
	/* 10 */ {"", -EINVAL, 0, NULL},
	/* 11 */ {" 1.2.3.4", -EINVAL, 0, NULL},
	/* 12 */ {"1.2.3.4 ", -EINVAL, 0, NULL},
	/* 13 */ {"fe80::1%eth0", -EINVAL, 0, NULL},
	/* 14 */ {"2001:db8:::1", -EINVAL, 0, NULL},
	/* 15 */ {"example.com", -EINVAL, 0, NULL},
	/* 16 */ {"1.2.3.4/32", -EINVAL, 0, NULL},
	/* 17 */ {"01.2.3.4", -EINVAL, 0, NULL},
};

Test(net_addr, addr_parse_table)
{
	for (size_t i = 0; i < sizeof(addr_cases) / sizeof(addr_cases[0]); i++) {
		struct eg_addr a;
		char buf[EG_ADDR_STR_LEN];
		int ret = eg_addr_parse(addr_cases[i].in, &a);

		cr_assert_eq(ret, addr_cases[i].ret, "case %zu (%s): ret %d", i, addr_cases[i].in, ret);
		if (ret)
			continue;
		cr_assert_eq(a.family, addr_cases[i].family, "case %zu", i);
		cr_assert_str_eq(eg_addr_format(a.family, a.addr, buf, sizeof(buf)),
				 addr_cases[i].canon, "case %zu", i);
		if (a.family == EG_AF_INET)
			for (int b = 4; b < EG_ADDR_MAX_LEN; b++)
				cr_assert_eq(a.addr[b], 0, "case %zu: byte %d not zero", i, b);
	}
}

Test(net_addr, addr_parse_null)
{
	struct eg_addr a;

	cr_assert_eq(eg_addr_parse(NULL, &a), -EINVAL);
}

static const struct {
	const char *in;
	bool allow_host_bits;
	int ret;
	const char *canon;	/* eg_prefix_format output */
} prefix_cases[] = {
	/*  0 */ {"10.0.0.0/8", false, 0, "10.0.0.0/8"},
	/*  1 */ {"10.0.0.1/8", false, -EINVAL, NULL},
	/*  2 */ {"10.0.0.1/8", true, 0, "10.0.0.1/8"},
	/*  3 */ {"10.0.0.1", false, 0, "10.0.0.1/32"},
	/*  4 */ {"0.0.0.0/0", false, 0, "0.0.0.0/0"},
	/*  5 */ {"1.2.3.4/0", false, -EINVAL, NULL},
	/*  6 */ {"1.2.3.4/33", true, -EINVAL, NULL},
	/*  7 */ {"1.2.3.4/", true, -EINVAL, NULL},
	/*  8 */ {"/24", true, -EINVAL, NULL},
	/*  9 */ {"1.2.3.4/24x", true, -EINVAL, NULL},
	/* 10 */ {"1.2.3.4/-1", true, -EINVAL, NULL},
	/* 11 */ {"1.2.3.4/+24", true, -EINVAL, NULL},
	/* 12 */ {"1.2.3.4/ 24", true, -EINVAL, NULL},
	/* 13 */ {"1.2.3.4/24/1", true, -EINVAL, NULL},
	/* 14 */ {"garbage", true, -EINVAL, NULL},
	/* 15 */ {"", true, -EINVAL, NULL},
	/* 16 */ {"2001:db8::/32", false, 0, "2001:db8::/32"},
	/* 17 */ {"2001:db8::1/64", false, -EINVAL, NULL},
	/* 18 */ {"2001:db8::1/64", true, 0, "2001:db8::1/64"},
	/* 19 */ {"2001:db8::1", false, 0, "2001:db8::1/128"},
	/* 20 */ {"2001:db8::/129", true, -EINVAL, NULL},
	/* 21 */ {"::/0", false, 0, "::/0"},
	/* 22 */ {"10.1.0.0/15", false, -EINVAL, NULL},
	/* 23 */ {"10.2.0.0/15", false, 0, "10.2.0.0/15"},
	/* 24 */ {"192.0.2.128/25", false, 0, "192.0.2.128/25"},
	/* 25 */ {"192.0.2.129/25", false, -EINVAL, NULL},
	/* 26 */ {"1.2.3.4/1000", true, -EINVAL, NULL},
	/* 27 */ {"1.2.3.4/00000000032", true, -EINVAL, NULL},
	/* 28 */ {"2001:db8::/128", false, 0, "2001:db8::/128"},
	/* 29 */ {"2001:db8:0:0:0:0:0:0:0/64", true, -EINVAL, NULL},
};

Test(net_addr, prefix_parse_table)
{
	for (size_t i = 0; i < sizeof(prefix_cases) / sizeof(prefix_cases[0]); i++) {
		struct eg_prefix p;
		char buf[EG_PREFIX_STR_LEN];
		int ret = eg_prefix_parse(prefix_cases[i].in, prefix_cases[i].allow_host_bits, &p);

		cr_assert_eq(ret, prefix_cases[i].ret, "case %zu (%s): ret %d", i, prefix_cases[i].in, ret);
		if (ret)
			continue;
		cr_assert_str_eq(eg_prefix_format(&p, buf, sizeof(buf)), prefix_cases[i].canon,
				 "case %zu: got %s", i, buf);
	}
}

Test(net_addr, prefix_mask_and_contains)
{
	struct eg_prefix p;
	struct eg_addr a;
	char buf[EG_PREFIX_STR_LEN];

	cr_assert_eq(eg_prefix_parse("10.1.2.3/12", true, &p), 0);
	eg_prefix_mask(&p);
	cr_assert_str_eq(eg_prefix_format(&p, buf, sizeof(buf)), "10.0.0.0/12");

	cr_assert_eq(eg_prefix_parse("2001:db8:ffff::1/35", true, &p), 0);
	eg_prefix_mask(&p);
	cr_assert_str_eq(eg_prefix_format(&p, buf, sizeof(buf)), "2001:db8:e000::/35");

	cr_assert_eq(eg_prefix_parse("10.0.0.0/8", false, &p), 0);
	cr_assert_eq(eg_addr_parse("10.255.0.1", &a), 0);
	cr_assert(eg_prefix_contains(&p, a.family, a.addr));
	cr_assert_eq(eg_addr_parse("11.0.0.1", &a), 0);
	cr_assert_not(eg_prefix_contains(&p, a.family, a.addr));
	/* Family is part of the match: ::a00:1 has the same leading bytes as 10.0.0.1. */
	cr_assert_eq(eg_addr_parse("a00::1", &a), 0);
	cr_assert_not(eg_prefix_contains(&p, a.family, a.addr));

	cr_assert_eq(eg_prefix_parse("0.0.0.0/0", false, &p), 0);
	cr_assert_eq(eg_addr_parse("203.0.113.9", &a), 0);
	cr_assert(eg_prefix_contains(&p, a.family, a.addr));
}

/* The naive reference: compare bit by bit. */
static bool ref_contains(const struct eg_prefix *p, uint8_t family, const uint8_t *addr)
{
	if (p->family != family)
		return false;
	for (unsigned b = 0; b < p->len; b++)
		if (eg_addr_bit(p->addr, b) != eg_addr_bit(addr, b))
			return false;
	return true;
}

Test(net_addr, contains_differential)
{
	srand(12345);
	for (int i = 0; i < 200000; i++) {
		struct eg_prefix p = {0};
		uint8_t addr[EG_ADDR_MAX_LEN] = {0};
		uint8_t fam = (rand() & 1) ? EG_AF_INET : EG_AF_INET6;
		unsigned n = eg_addr_len(fam);

		p.family = fam;
		p.len = (uint8_t)(rand() % (eg_addr_bits(fam) + 1));
		for (unsigned b = 0; b < n; b++)
			p.addr[b] = (uint8_t)rand();
		eg_prefix_mask(&p);
		/* Mostly near misses: copy the prefix and flip one random bit. */
		memcpy(addr, p.addr, n);
		if (rand() % 4)
			addr[rand() % n] ^= (uint8_t)(1u << (rand() % 8));
		cr_assert_eq(eg_prefix_contains(&p, fam, addr), ref_contains(&p, fam, addr),
			     "iteration %d", i);
	}
}

static const struct {
	const char *in;
	int ret;
	uint16_t lo, hi;
} port_cases[] = {
	/*  0 */ {"80", 0, 80, 80},
	/*  1 */ {"1000-2000", 0, 1000, 2000},
	/*  2 */ {"0", 0, 0, 0},
	/*  3 */ {"65535", 0, 65535, 65535},
	/*  4 */ {"0-65535", 0, 0, 65535},
	/*  5 */ {"5-5", 0, 5, 5},
	/*  6 */ {"2000-1000", -EINVAL, 0, 0},
	/*  7 */ {"65536", -EINVAL, 0, 0},
	/*  8 */ {"1-65536", -EINVAL, 0, 0},
	/*  9 */ {"", -EINVAL, 0, 0},
	/* 10 */ {"-", -EINVAL, 0, 0},
	/* 11 */ {"80-", -EINVAL, 0, 0},
	/* 12 */ {"-80", -EINVAL, 0, 0},
	/* 13 */ {"http", -EINVAL, 0, 0},
	/* 14 */ {"80 ", -EINVAL, 0, 0},
	/* 15 */ {"1-2-3", -EINVAL, 0, 0},
	/* 16 */ {"+80", -EINVAL, 0, 0},
	/* 17 */ {"99999999999999999999", -EINVAL, 0, 0},
	/* 18 */ {"80,81", -EINVAL, 0, 0},
};

Test(net_addr, port_range_table)
{
	for (size_t i = 0; i < sizeof(port_cases) / sizeof(port_cases[0]); i++) {
		uint16_t lo = 7, hi = 7;
		int ret = eg_port_range_parse(port_cases[i].in, &lo, &hi);

		cr_assert_eq(ret, port_cases[i].ret, "case %zu (%s): ret %d", i, port_cases[i].in, ret);
		if (ret) {
			cr_assert(lo == 7 && hi == 7, "case %zu: output touched on error", i);
			continue;
		}
		cr_assert(lo == port_cases[i].lo && hi == port_cases[i].hi,
			  "case %zu: got %u-%u", i, lo, hi);
	}
}

static const struct {
	const char *in;
	int proto;
} proto_cases[] = {
	/*  0 */ {"tcp", 6},
	/*  1 */ {"udp", 17},
	/*  2 */ {"icmp", 1},
	/*  3 */ {"icmpv6", 58},
	/*  4 */ {"sctp", 132},
	/*  5 */ {"gre", 47},
	/*  6 */ {"esp", 50},
	/*  7 */ {"ah", 51},
	/*  8 */ {"TCP", 6},
	/*  9 */ {"0", 0},
	/* 10 */ {"255", 255},
	/* 11 */ {"89", 89},
	/* 12 */ {"256", -1},
	/* 13 */ {"-1", -1},
	/* 14 */ {"", -1},
	/* 15 */ {"tcpx", -1},
	/* 16 */ {"6 ", -1},
	/* 17 */ {"0x6", -1},
};

Test(net_addr, proto_parse_table)
{
	for (size_t i = 0; i < sizeof(proto_cases) / sizeof(proto_cases[0]); i++)
		cr_assert_eq(eg_proto_parse(proto_cases[i].in), proto_cases[i].proto,
			     "case %zu (%s)", i, proto_cases[i].in);
	cr_assert_eq(eg_proto_parse(NULL), -1);
}

/* Every protocol number survives name -> parse, which the config's to_json relies on. */
Test(net_addr, proto_name_round_trip)
{
	char buf[16];

	cr_assert_str_eq(eg_proto_name(6, buf, sizeof(buf)), "tcp");
	cr_assert_str_eq(eg_proto_name(58, buf, sizeof(buf)), "icmpv6");
	cr_assert_str_eq(eg_proto_name(89, buf, sizeof(buf)), "89");
	for (unsigned p = 0; p < 256; p++)
		cr_assert_eq(eg_proto_parse(eg_proto_name((uint8_t)p, buf, sizeof(buf))), (int)p,
			     "proto %u", p);
}

Test(net_addr, format_small_buffer)
{
	struct eg_prefix p;
	char buf[8];

	cr_assert_eq(eg_prefix_parse("2001:db8::/32", false, &p), 0);
	eg_prefix_format(&p, buf, sizeof(buf));
	cr_assert(strlen(buf) < sizeof(buf));
	eg_addr_format(99, p.addr, buf, sizeof(buf));
	cr_assert_str_eq(buf, "?");
}

Test(net_addr, hostport_split_forms)
{
	static const struct {
		const char *in, *host, *port;	/* host NULL: refused */
	} cases[] = {
		{"127.0.0.1:9469", "127.0.0.1", "9469"},
		{"[::1]:9469", "::1", "9469"},
		{"localhost:9469", "localhost", "9469"},
		{"9469", "127.0.0.1", "9469"},		/* a port alone: loopback */
		{":9469", "127.0.0.1", "9469"},
		{"", NULL, NULL},
		{":", NULL, NULL},
		{"[::1]9469", NULL, NULL},
		{"no-port", NULL, NULL},
	};
	char host[64];
	const char *port;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = eg_hostport_split(cases[i].in, host, sizeof(host), &port);

		if (!cases[i].host) {
			cr_expect_neq(rc, 0, "\"%s\" accepted", cases[i].in);
			continue;
		}
		cr_assert_eq(rc, 0, "\"%s\" refused", cases[i].in);
		cr_expect_str_eq(host, cases[i].host, "%s", cases[i].in);
		cr_expect_str_eq(port, cases[i].port, "%s", cases[i].in);
	}
}
