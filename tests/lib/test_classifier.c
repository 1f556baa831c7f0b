/* Tests for lib/classifier.c: table cases for each field's edges and the tie-break, then
 * a differential test of the trie lookup against a linear scan with eg_rule_matches().
 * lib/blob.c, which has no test binary of its own, is covered at the end. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "blob.h"
#include "classifier.h"

/* Deterministic random numbers (SplitMix64), so a failure names a reproducible seed. */
struct rng {
	uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
	uint64_t x = (r->s += 0x9e3779b97f4a7c15ULL);
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static unsigned below(struct rng *r, unsigned n)
{
	return (unsigned)(rnd(r) % n);
}

static bool chance(struct rng *r, unsigned percent)
{
	return below(r, 100) < percent;
}

/* The reference: the first rule, by (priority, index), that eg_rule_matches(). */
static uint32_t naive_lookup(const struct eg_rule *rules, uint32_t n, const struct eg_flow_key *k)
{
	const struct eg_rule *best = NULL;

	for (uint32_t i = 0; i < n; i++)
		if (eg_rule_matches(&rules[i], k) && (!best || rules[i].priority < best->priority))
			best = &rules[i];
	return best ? best->result : EG_CLS_NO_MATCH;
}

/* A small text form for the tables, so that each case reads as what it tests.
 * Rule: "fam=any|4|6 src=P dst=P proto=N sport=LO[-HI] dport=LO[-HI] dscp=HEXMASK in=N
 * prio=N", every field optional, defaulting to "match anything".
 * Key: "src=A dst=A proto=N sport=N dport=N dscp=N in=N fam=N"; the family follows dst
 * unless given. */

static void parse_addr(const char *s, uint8_t *family, uint8_t *addr)
{
	memset(addr, 0, EG_ADDR_MAX_LEN);
	if (inet_pton(AF_INET, s, addr) == 1)
		*family = EG_AF_INET;
	else if (inet_pton(AF_INET6, s, addr) == 1)
		*family = EG_AF_INET6;
	else
		cr_assert_fail("bad address in test table: %s", s);
}

static void parse_prefix(const char *s, struct eg_prefix *p)
{
	char buf[64];
	const char *slash = strchr(s, '/');

	cr_assert(slash && (size_t)(slash - s) < sizeof(buf), "bad prefix in test table: %s", s);
	memcpy(buf, s, (size_t)(slash - s));
	buf[slash - s] = 0;
	parse_addr(buf, &p->family, p->addr);
	p->len = (uint8_t)atoi(slash + 1);
}

static void parse_range(const char *s, uint16_t *lo, uint16_t *hi)
{
	const char *dash = strchr(s, '-');

	*lo = (uint16_t)atoi(s);
	*hi = dash ? (uint16_t)atoi(dash + 1) : *lo;
}

static struct eg_rule rule_from(const char *spec, uint32_t result)
{
	struct eg_rule r = {
		.result = result, .family = EG_AF_ANY, .proto_any = 1,
		.sport_hi = 0xffff, .dport_hi = 0xffff,
		.dscp_mask = EG_DSCP_ANY, .in_port = EG_PORT_ANY,
	};
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", spec);
	for (char *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
		char *v = strchr(t, '=');
		cr_assert(v, "bad rule token: %s", t);
		*v++ = 0;
		if (!strcmp(t, "fam"))
			r.family = !strcmp(v, "any") ? EG_AF_ANY : (uint8_t)atoi(v);
		else if (!strcmp(t, "src"))
			parse_prefix(v, &r.src);
		else if (!strcmp(t, "dst"))
			parse_prefix(v, &r.dst);
		else if (!strcmp(t, "proto")) {
			r.proto_any = 0;
			r.proto = (uint8_t)atoi(v);
		} else if (!strcmp(t, "sport"))
			parse_range(v, &r.sport_lo, &r.sport_hi);
		else if (!strcmp(t, "dport"))
			parse_range(v, &r.dport_lo, &r.dport_hi);
		else if (!strcmp(t, "dscp"))
			r.dscp_mask = strtoull(v, NULL, 16);
		else if (!strcmp(t, "in"))
			r.in_port = (uint16_t)atoi(v);
		else if (!strcmp(t, "prio"))
			r.priority = (uint32_t)strtoul(v, NULL, 10);
		else
			cr_assert_fail("bad rule token: %s", t);
	}
	return r;
}

static struct eg_flow_key key_from(const char *spec)
{
	struct eg_flow_key k = { .proto = 6, .sport = 1234, .dport = 80, .in_port = 1 };
	char buf[256], *save = NULL;
	int family = -1;

	parse_addr("10.1.2.3", &k.family, k.src);
	parse_addr("192.168.1.1", &k.family, k.dst);
	snprintf(buf, sizeof(buf), "%s", spec);
	for (char *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
		char *v = strchr(t, '=');
		cr_assert(v, "bad key token: %s", t);
		*v++ = 0;
		if (!strcmp(t, "src"))
			parse_addr(v, &k.family, k.src);
		else if (!strcmp(t, "dst"))
			parse_addr(v, &k.family, k.dst);
		else if (!strcmp(t, "proto"))
			k.proto = (uint8_t)atoi(v);
		else if (!strcmp(t, "sport"))
			k.sport = (uint16_t)atoi(v);
		else if (!strcmp(t, "dport"))
			k.dport = (uint16_t)atoi(v);
		else if (!strcmp(t, "dscp"))
			k.dscp = (uint8_t)atoi(v);
		else if (!strcmp(t, "in"))
			k.in_port = (uint16_t)atoi(v);
		else if (!strcmp(t, "fam"))
			family = atoi(v);
		else
			cr_assert_fail("bad key token: %s", t);
	}
	if (family >= 0)
		k.family = (uint8_t)family;
	return k;
}

/* Builds rules into a fresh blob and looks k up; the blob is freed before returning. */
static uint32_t build_and_lookup(const struct eg_rule *rules, uint32_t n,
				 const struct eg_flow_key *k)
{
	struct eg_blob b;

	eg_blob_init(&b, 0);
	uint32_t off = eg_classifier_build(&b, rules, n);
	cr_assert_neq(off, EG_BLOB_NONE, "build failed: %s", strerror(errno));
	uint32_t got = eg_classifier_lookup(b.data, off, k);
	eg_blob_free(&b);
	return got;
}

struct match_case {
	const char *rule;
	const char *key;
	bool match;
};

/* v4 keys default to 10.1.2.3:1234 -> 192.168.1.1:80 tcp, dscp 0, ingress port 1. */
static const struct match_case match_cases[] = {
	/* family */
	/*  1 */ { "",                             "",                                  true },
	/*  2 */ { "",                             "src=2001:db8::1 dst=2001:db8::2",   true },
	/*  3 */ { "fam=4",                        "src=2001:db8::1 dst=2001:db8::2",   false },
	/*  4 */ { "fam=6",                        "src=2001:db8::1 dst=2001:db8::2",   true },
	/*  5 */ { "fam=6",                        "",                                  false },
	/*  6 */ { "",                             "fam=0",                             false },
	/*  7 */ { "",                             "fam=5",                             false },
	/* a length-0 prefix is a wildcard whatever its family */
	/*  8 */ { "fam=4 dst=::/0 src=::/0",      "",                                  true },
	/*  9 */ { "fam=6 dst=0.0.0.0/0",          "src=::1 dst=::2",                   true },
	/* 10 */ { "dst=0.0.0.0/0",                "src=::1 dst=::2",                   true },
	/* a family-ANY rule with a v4 prefix only matches v4 keys, and the other way round */
	/* 11 */ { "dst=10.0.0.0/8",               "dst=10.9.9.9",                      true },
	/* 12 */ { "dst=10.0.0.0/8",               "src=::1 dst=a00::",                 false },
	/* 13 */ { "src=2001:db8::/32",            "src=2001:db8::1 dst=::2",           true },
	/* 14 */ { "src=2001:db8::/32",            "",                                  false },
	/* 15 */ { "src=10.0.0.0/8 dst=2001:db8::/32", "src=10.0.0.1 dst=10.0.0.2",     false },
	/* 16 */ { "src=10.0.0.0/8 dst=2001:db8::/32", "src=2001:db8::1 dst=2001:db8::2", false },
	/* IPv4 prefix boundaries */
	/* 17 */ { "dst=10.0.0.0/8",               "dst=11.0.0.0",                      false },
	/* 18 */ { "dst=10.0.0.0/8",               "dst=9.255.255.255",                 false },
	/* 19 */ { "dst=0.0.0.0/1",                "dst=127.255.255.255",               true },
	/* 20 */ { "dst=0.0.0.0/1",                "dst=128.0.0.0",                     false },
	/* 21 */ { "dst=128.0.0.0/1",              "dst=255.255.255.255",               true },
	/* 22 */ { "dst=192.168.1.1/32",           "dst=192.168.1.1",                   true },
	/* 23 */ { "dst=192.168.1.0/32",           "dst=192.168.1.1",                   false },
	/* 24 */ { "dst=192.168.1.0/31",           "dst=192.168.1.1",                   true },
	/* 25 */ { "dst=192.168.1.2/31",           "dst=192.168.1.1",                   false },
	/* 26 */ { "dst=192.168.0.0/23",           "dst=192.168.1.1",                   true },
	/* 27 */ { "dst=192.168.0.0/24",           "dst=192.168.1.1",                   false },
	/* 28 */ { "src=10.1.2.0/28",              "src=10.1.2.15",                     true },
	/* 29 */ { "src=10.1.2.0/28",              "src=10.1.2.16",                     false },
	/* 30 */ { "src=10.1.2.3/32 dst=192.168.1.1/32", "",                            true },
	/* 31 */ { "src=10.1.2.4/32 dst=192.168.1.1/32", "",                            false },
	/* IPv6 prefix boundaries */
	/* 32 */ { "dst=2001:db8::/32",            "src=::1 dst=2001:db8:ffff::1",      true },
	/* 33 */ { "dst=2001:db8::/32",            "src=::1 dst=2001:db9::",            false },
	/* 34 */ { "dst=2001:db8::1/128",          "src=::1 dst=2001:db8::1",           true },
	/* 35 */ { "dst=2001:db8::1/128",          "src=::1 dst=2001:db8::3",           false },
	/* 36 */ { "dst=2001:db8::2/127",          "src=::1 dst=2001:db8::3",           true },
	/* 37 */ { "dst=2001:db8::2/127",          "src=::1 dst=2001:db8::4",           false },
	/* 38 */ { "dst=8000::/1",                 "src=::1 dst=ffff::",                true },
	/* 39 */ { "dst=8000::/1",                 "src=::1 dst=7fff::",                false },
	/* 40 */ { "fam=6 src=fe80::/10 dst=::/0", "src=febf::1 dst=::2",               true },
	/* 41 */ { "fam=6 src=fe80::/10 dst=::/0", "src=fec0::1 dst=::2",               false },
	/* protocol */
	/* 42 */ { "proto=6",                      "proto=6",                           true },
	/* 43 */ { "proto=6",                      "proto=17",                          false },
	/* 44 */ { "proto=0",                      "proto=0",                           true },
	/* 45 */ { "proto=255",                    "proto=254",                         false },
	/* port ranges are inclusive */
	/* 46 */ { "sport=1000-2000",              "sport=999",                         false },
	/* 47 */ { "sport=1000-2000",              "sport=1000",                        true },
	/* 48 */ { "sport=1000-2000",              "sport=2000",                        true },
	/* 49 */ { "sport=1000-2000",              "sport=2001",                        false },
	/* 50 */ { "dport=80",                     "dport=80",                          true },
	/* 51 */ { "dport=80",                     "dport=81",                          false },
	/* 52 */ { "dport=0",                      "dport=0",                           true },
	/* 53 */ { "dport=65535",                  "dport=65535",                       true },
	/* 54 */ { "dport=65535",                  "dport=65534",                       false },
	/* 55 */ { "dport=2000-1000",              "dport=1500",                        false },
	/* 56 */ { "sport=0-0 dport=0-65535",      "sport=0 dport=65535",               true },
	/* DSCP: bit d of the mask */
	/* 57 */ { "dscp=1",                       "dscp=0",                            true },
	/* 58 */ { "dscp=1",                       "dscp=1",                            false },
	/* 59 */ { "dscp=8000000000000000",        "dscp=63",                           true },
	/* 60 */ { "dscp=8000000000000000",        "dscp=62",                           false },
	/* 61 */ { "dscp=400000000000",            "dscp=46",                           true },
	/* 62 */ { "dscp=0",                       "dscp=0",                            false },
	/* 63 */ { "dscp=ffffffffffffffff",        "dscp=63",                           true },
	/* ingress port */
	/* 64 */ { "in=2",                         "in=2",                              true },
	/* 65 */ { "in=2",                         "in=3",                              false },
	/* 66 */ { "in=0",                         "in=0",                              true },
	/* 67 */ { "",                             "in=65534",                          true },
	/* all fields at once */
	/* 68 */ { "fam=4 src=10.0.0.0/8 dst=192.168.0.0/16 proto=17 sport=1234 dport=53 dscp=2 in=1",
		   "proto=17 dport=53 dscp=1", true },
	/* 69 */ { "fam=4 src=10.0.0.0/8 dst=192.168.0.0/16 proto=17 sport=1234 dport=53 dscp=2 in=1",
		   "proto=17 dport=53 dscp=1 in=0", false },
};

Test(classifier, match_table)
{
	for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
		const struct match_case *c = &match_cases[i];
		struct eg_rule r = rule_from(c->rule, 7);
		struct eg_flow_key k = key_from(c->key);

		cr_expect_eq(!!eg_rule_matches(&r, &k), c->match,
			     "case %zu: rule \"%s\" key \"%s\": eg_rule_matches", i + 1, c->rule, c->key);
		cr_expect_eq(build_and_lookup(&r, 1, &k), c->match ? 7 : EG_CLS_NO_MATCH,
			     "case %zu: rule \"%s\" key \"%s\": lookup", i + 1, c->rule, c->key);
	}
}

struct order_case {
	const char *rules[4];
	const char *key;
	uint32_t winner;	/* index, or EG_CLS_NO_MATCH */
};

/* Only (priority, index) decides: not prefix length, not specificity. */
static const struct order_case order_cases[] = {
	/*  1 */ { { "prio=5", "prio=5" },                              "", 0 },
	/*  2 */ { { "prio=5", "prio=3" },                              "", 1 },
	/*  3 */ { { "prio=3 dport=81", "prio=5", "prio=4" },           "", 2 },
	/*  4 */ { { "prio=1 dst=192.0.0.0/8", "prio=1 dst=192.168.1.0/24" }, "", 0 },
	/*  5 */ { { "prio=2 dst=192.168.1.1/32", "prio=1 dst=0.0.0.0/0" }, "", 1 },
	/*  6 */ { { "prio=2 dst=192.168.1.1/32", "prio=1 dst=0.0.0.0/0 proto=17" }, "", 0 },
	/*  7 */ { { "prio=0 fam=6", "prio=1 fam=4", "prio=0" },         "", 2 },
	/*  8 */ { { "prio=7 src=10.1.0.0/16", "prio=7 src=10.0.0.0/8", "prio=7" }, "", 0 },
	/*  9 */ { { "prio=9", "prio=7 src=10.0.0.0/8", "prio=8 src=10.1.2.3/32" }, "", 1 },
	/* 10 */ { { "prio=4294967295", "prio=4294967294 dport=80" },    "", 1 },
	/* 11 */ { { "prio=1 dst=2001:db8::/32", "prio=1 dst=2001:db8::/48", "prio=0 fam=4" },
		   "src=::1 dst=2001:db8::1", 0 },
	/* 12 */ { { "prio=1 dst=2001:db8::/32", "prio=0 dst=2001:db8::/48 in=3" },
		   "src=::1 dst=2001:db8::1", 0 },
	/* 13 */ { { "fam=6", "dst=10.0.0.0/8" },                       "", EG_CLS_NO_MATCH },
};

Test(classifier, order_table)
{
	for (size_t i = 0; i < sizeof(order_cases) / sizeof(order_cases[0]); i++) {
		const struct order_case *c = &order_cases[i];
		struct eg_rule rules[4];
		uint32_t n = 0;

		while (n < 4 && c->rules[n]) {
			rules[n] = rule_from(c->rules[n], n);
			n++;
		}
		struct eg_flow_key k = key_from(c->key);
		cr_expect_eq(naive_lookup(rules, n, &k), c->winner, "case %zu: reference", i + 1);
		cr_expect_eq(build_and_lookup(rules, n, &k), c->winner, "case %zu: lookup", i + 1);
	}
}

static const char *const refused[] = {
	/* 1 */ "fam=4 dst=2001:db8::/32",
	/* 2 */ "fam=6 src=10.0.0.0/8",
	/* 3 */ "fam=5",
	/* 4 */ "dst=10.0.0.0/33",
	/* 5 */ "dst=::/129",
};

Test(classifier, build_refuses_bad_rules)
{
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		struct eg_rule rules[2] = { rule_from("", 0), rule_from(refused[i], 1) };
		struct eg_blob b;

		eg_blob_init(&b, 0);
		errno = 0;
		cr_expect_eq(eg_classifier_build(&b, rules, 2), EG_BLOB_NONE, "case %zu", i + 1);
		cr_expect_eq(errno, EINVAL, "case %zu", i + 1);
		eg_blob_free(&b);
	}

	/* The result is returned as is, so the no-match marker cannot be one. */
	struct eg_rule r = rule_from("", EG_CLS_NO_MATCH);
	struct eg_blob b;
	eg_blob_init(&b, 0);
	cr_expect_eq(eg_classifier_build(&b, &r, 1), EG_BLOB_NONE);
	cr_expect_eq(errno, EINVAL);
	eg_blob_free(&b);
}

Test(classifier, empty_set_matches_nothing)
{
	struct eg_flow_key k4 = key_from(""), k6 = key_from("src=::1 dst=::2");

	cr_expect_eq(build_and_lookup(NULL, 0, &k4), EG_CLS_NO_MATCH);
	cr_expect_eq(build_and_lookup(NULL, 0, &k6), EG_CLS_NO_MATCH);
}

/* Random rule sets. Addresses come from a few bases per family so that prefixes overlap
 * and nest, and packets are mostly made from rules so that most of them hit something. */

enum { N_BASES = 6 };

struct gen {
	struct rng rng;
	bool acl;		/* few prefixes, many single-port rules: long leaves */
	uint8_t base4[N_BASES][EG_ADDR_MAX_LEN];
	uint8_t base6[N_BASES][EG_ADDR_MAX_LEN];
};

static void gen_init(struct gen *g, uint64_t seed, bool acl)
{
	memset(g, 0, sizeof(*g));
	g->rng.s = seed;
	g->acl = acl;
	for (int i = 0; i < N_BASES; i++) {
		for (int j = 0; j < 4; j++)
			g->base4[i][j] = (uint8_t)rnd(&g->rng);
		for (int j = 0; j < 16; j++)
			g->base6[i][j] = (uint8_t)rnd(&g->rng);
	}
	/* Two bases share their first half, so their prefixes nest past the root. */
	memcpy(g->base4[1], g->base4[0], 2);
	memcpy(g->base6[1], g->base6[0], 8);
}

/* Copies base and randomises the bits from len on; bytes past the family stay zero. */
static void fill_host_bits(struct rng *r, uint8_t *addr, const uint8_t *base, unsigned len,
			   uint8_t family)
{
	unsigned bytes = eg_addr_len(family);

	memset(addr, 0, EG_ADDR_MAX_LEN);
	memcpy(addr, base, bytes);
	for (unsigned bit = len; bit < 8 * bytes; bit++) {
		uint8_t m = (uint8_t)(0x80 >> (bit & 7));
		addr[bit / 8] = (uint8_t)((addr[bit / 8] & ~m) | (chance(r, 50) ? m : 0));
	}
}

static void mask_prefix(struct eg_prefix *p)
{
	unsigned full = p->len / 8, rest = p->len % 8;

	if (rest)
		p->addr[full++] &= (uint8_t)(0xff << (8 - rest));
	memset(p->addr + full, 0, EG_ADDR_MAX_LEN - full);
}

static void random_addr(struct gen *g, uint8_t family, uint8_t *addr)
{
	unsigned bits = eg_addr_bits(family);
	const uint8_t *base = family == EG_AF_INET ? g->base4[below(&g->rng, N_BASES)]
						   : g->base6[below(&g->rng, N_BASES)];

	/* Sometimes near a base, sometimes anywhere. */
	fill_host_bits(&g->rng, addr, base, chance(&g->rng, 70) ? below(&g->rng, bits + 1) : 0,
		       family);
}

static void random_prefix(struct gen *g, uint8_t family, struct eg_prefix *p)
{
	unsigned bits = eg_addr_bits(family);

	memset(p, 0, sizeof(*p));
	if (chance(&g->rng, 25)) {
		/* A wildcard, with whatever family: it must not matter. */
		static const uint8_t fams[] = { EG_AF_ANY, EG_AF_INET, EG_AF_INET6 };
		p->family = fams[below(&g->rng, 3)];
		return;
	}
	p->family = family;
	random_addr(g, family, p->addr);
	if (g->acl)
		p->len = (uint8_t)(family == EG_AF_INET ? 8 * (1 + below(&g->rng, 4))
							: 32 * (1 + below(&g->rng, 4)));
	else
		p->len = (uint8_t)(1 + below(&g->rng, bits));
	mask_prefix(p);
}

static void random_range(struct rng *r, uint16_t *lo, uint16_t *hi, unsigned any_pct)
{
	static const uint16_t common[] = { 0, 22, 53, 80, 443, 1024, 8080, 65535 };
	unsigned roll = below(r, 100);

	if (roll < any_pct) {
		*lo = 0;
		*hi = 0xffff;
	} else if (roll < any_pct + (100 - any_pct) / 2) {
		*lo = *hi = chance(r, 70) ? common[below(r, 8)] : (uint16_t)rnd(r);
	} else {
		*lo = (uint16_t)rnd(r);
		*hi = chance(r, 5) ? (uint16_t)(*lo - 1)	/* empty unless lo is 0 */
				   : (uint16_t)(*lo + below(r, 65536u - *lo));
	}
}

static struct eg_rule random_rule(struct gen *g, uint32_t n, uint32_t index)
{
	struct rng *r = &g->rng;
	static const uint8_t protos[] = { 6, 17, 1, 58, 47 };
	struct eg_rule rule = { .result = index };
	unsigned roll = below(r, 100);

	rule.family = roll < 40 ? EG_AF_INET : roll < 70 ? EG_AF_INET6 : EG_AF_ANY;
	if (rule.family != EG_AF_ANY) {
		random_prefix(g, rule.family, &rule.src);
		random_prefix(g, rule.family, &rule.dst);
	} else if (chance(r, 40)) {
		/* Family ANY with a real prefix restricts the rule to that prefix's family;
		 * once in a while the two prefixes disagree and the rule matches nothing. */
		uint8_t f = chance(r, 50) ? EG_AF_INET : EG_AF_INET6;
		random_prefix(g, f, &rule.src);
		if (chance(r, 5))
			f = f == EG_AF_INET ? EG_AF_INET6 : EG_AF_INET;
		random_prefix(g, f, &rule.dst);
	}

	rule.proto_any = chance(r, 35);
	rule.proto = protos[below(r, 5)];
	random_range(r, &rule.sport_lo, &rule.sport_hi, g->acl ? 90 : 60);
	random_range(r, &rule.dport_lo, &rule.dport_hi, g->acl ? 10 : 30);

	roll = below(r, 100);
	if (roll < 60)
		rule.dscp_mask = EG_DSCP_ANY;
	else if (roll < 80)
		rule.dscp_mask = 1ULL << below(r, 64);
	else
		rule.dscp_mask = rnd(r) & rnd(r);
	rule.in_port = chance(r, 70) ? EG_PORT_ANY : (uint16_t)below(r, 4);
	/* Few distinct priorities, so ties are common and the index decides. */
	rule.priority = below(r, n / 8 + 3);
	return rule;
}

static void addr_in(struct gen *g, const struct eg_prefix *p, uint8_t family, uint8_t *addr)
{
	if (p->len == 0)
		random_addr(g, family, addr);
	else
		fill_host_bits(&g->rng, addr, p->addr, p->len, family);
}

static uint16_t port_in(struct rng *r, uint16_t lo, uint16_t hi)
{
	if (lo > hi || chance(r, 5))
		return (uint16_t)rnd(r);
	/* Edges are where off-by-ones live. */
	unsigned roll = below(r, 10);
	return roll == 0 ? lo : roll == 1 ? hi : (uint16_t)(lo + below(r, hi - lo + 1u));
}

static struct eg_flow_key random_key(struct gen *g, const struct eg_rule *rules, uint32_t n)
{
	struct rng *r = &g->rng;
	struct eg_flow_key k = { .family = chance(r, 50) ? EG_AF_INET : EG_AF_INET6 };

	if (n && chance(r, 65)) {
		const struct eg_rule *rule = &rules[below(r, n)];
		if (rule->family != EG_AF_ANY)
			k.family = rule->family;
		else if (rule->src.len)
			k.family = rule->src.family;
		else if (rule->dst.len)
			k.family = rule->dst.family;
		addr_in(g, &rule->src, k.family, k.src);
		addr_in(g, &rule->dst, k.family, k.dst);
		k.proto = rule->proto;
		k.sport = port_in(r, rule->sport_lo, rule->sport_hi);
		k.dport = port_in(r, rule->dport_lo, rule->dport_hi);
		k.dscp = (uint8_t)below(r, 64);
		for (int tries = 0; tries < 8 && !((rule->dscp_mask >> k.dscp) & 1); tries++)
			k.dscp = (uint8_t)below(r, 64);
		k.in_port = rule->in_port != EG_PORT_ANY ? rule->in_port : (uint16_t)below(r, 4);
	} else {
		random_addr(g, k.family, k.src);
		random_addr(g, k.family, k.dst);
		k.proto = (uint8_t)(chance(r, 80) ? (below(r, 2) ? 6 : 17) : rnd(r));
		k.sport = (uint16_t)rnd(r);
		k.dport = chance(r, 50) ? (uint16_t)below(r, 1100) : (uint16_t)rnd(r);
		k.dscp = (uint8_t)below(r, 64);
		k.in_port = (uint16_t)below(r, 5);
	}
	/* Out-of-domain inputs must still agree with the reference. */
	if (chance(r, 1))
		k.family = (uint8_t)below(r, 8);
	if (chance(r, 1))
		k.dscp = (uint8_t)rnd(r);
	return k;
}

static struct eg_rule *random_rules(struct gen *g, uint32_t n)
{
	struct eg_rule *rules = calloc(n ? n : 1, sizeof(*rules));

	cr_assert(rules);
	for (uint32_t i = 0; i < n; i++)
		rules[i] = random_rule(g, n, i);
	return rules;
}

/* Looks up random keys in the structure at base + off and in the reference;
 * returns how many matched a rule, so callers can see the keys were not all misses. */
static unsigned compare(struct gen *g, const void *base, uint32_t off,
			const struct eg_rule *rules, uint32_t n, unsigned keys, const char *what)
{
	unsigned hits = 0;

	for (unsigned i = 0; i < keys; i++) {
		struct eg_flow_key k = random_key(g, rules, n);
		uint32_t want = naive_lookup(rules, n, &k);
		uint32_t got = eg_classifier_lookup(base, off, &k);
		cr_assert_eq(got, want, "%s: key %u: got %u, want %u", what, i, got, want);
		hits += want != EG_CLS_NO_MATCH;
	}
	return hits;
}

static void differential(uint64_t seed, uint32_t n, unsigned keys, bool acl)
{
	struct gen g;
	struct eg_blob b;
	char what[64];

	snprintf(what, sizeof(what), "seed %llu, %u rules%s", (unsigned long long)seed, n,
		 acl ? ", acl" : "");
	gen_init(&g, seed, acl);
	struct eg_rule *rules = random_rules(&g, n);

	eg_blob_init(&b, 0);
	uint32_t off = eg_classifier_build(&b, rules, n);
	cr_assert_neq(off, EG_BLOB_NONE, "%s: build: %s", what, strerror(errno));

	unsigned hits = compare(&g, b.data, off, rules, n, keys, what);
	if (n >= 10)
		cr_expect_gt(hits, keys / 3, "%s: only %u of %u keys hit a rule", what, hits, keys);

	eg_blob_free(&b);
	free(rules);
}

Test(classifier, differential)
{
	static const struct {
		uint32_t rules;
		unsigned keys;
	} sizes[] = {
		{ 0, 2000 }, { 1, 5000 }, { 10, 20000 }, { 1000, 20000 }, { 20000, 1500 },
	};

	for (uint64_t seed = 1; seed <= 3; seed++)
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
			differential(seed, sizes[i].rules, sizes[i].keys, false);
}

/* The pathological shape: dst and src prefixes of one address nested at every length, so
 * a key meets up to W + 1 dst prefixes, each with a deep src trie. With priorities that
 * favour short prefixes, long ones or neither, the pruning bounds are both useless and
 * decisive in turn. */
Test(classifier, differential_nested)
{
	for (int order = 0; order < 3; order++) {
		for (uint8_t family = EG_AF_INET; family <= EG_AF_INET6; family += 2) {
			struct gen g;
			struct eg_blob b;
			unsigned bits = eg_addr_bits(family);
			uint32_t n = 0;
			struct eg_rule *rules = calloc(4 * (bits + 1), sizeof(*rules));

			cr_assert(rules);
			gen_init(&g, 100 + (uint64_t)order * 7 + family, false);
			const uint8_t *dst = family == EG_AF_INET ? g.base4[0] : g.base6[0];
			const uint8_t *src = family == EG_AF_INET ? g.base4[1] : g.base6[1];
			for (unsigned len = 0; len <= bits; len++) {
				for (int copy = 0; copy < 4; copy++) {
					struct eg_rule *r = &rules[n];
					*r = random_rule(&g, 64, n);
					r->family = family;
					r->dst = (struct eg_prefix){ .family = family, .len = (uint8_t)len };
					memcpy(r->dst.addr, dst, EG_ADDR_MAX_LEN);
					mask_prefix(&r->dst);
					r->src = (struct eg_prefix){ .family = family,
								     .len = (uint8_t)below(&g.rng, bits + 1) };
					memcpy(r->src.addr, src, EG_ADDR_MAX_LEN);
					mask_prefix(&r->src);
					r->priority = order == 0 ? len : order == 1 ? bits - len
									: below(&g.rng, 8);
					n++;
				}
			}

			eg_blob_init(&b, 0);
			uint32_t off = eg_classifier_build(&b, rules, n);
			cr_assert_neq(off, EG_BLOB_NONE);
			for (int i = 0; i < 20000; i++) {
				struct eg_flow_key k = random_key(&g, rules, n);
				/* Mostly along the nested chain, leaving it at a random depth. */
				if (chance(&g.rng, 80) && k.family == family) {
					fill_host_bits(&g.rng, k.dst, dst, below(&g.rng, bits + 1), family);
					fill_host_bits(&g.rng, k.src, src, below(&g.rng, bits + 1), family);
				}
				uint32_t want = naive_lookup(rules, n, &k);
				cr_assert_eq(eg_classifier_lookup(b.data, off, &k), want,
					     "order %d, family %u, key %d", order, family, i);
			}
			eg_blob_free(&b);
			free(rules);
		}
	}
}

/* Few prefixes and many single-port rules: long leaves and their dport index. */
Test(classifier, differential_acl)
{
	for (uint64_t seed = 11; seed <= 13; seed++) {
		differential(seed, 50, 20000, true);
		differential(seed, 3000, 5000, true);
	}
}

/* Workers map the blob at another address: the built structure must hold no pointers. */
Test(classifier, position_independent)
{
	struct gen g;
	struct eg_blob b;

	gen_init(&g, 42, false);
	struct eg_rule *rules = random_rules(&g, 2000);
	eg_blob_init(&b, 0);
	cr_assert_neq(eg_blob_alloc(&b, 100, 8), EG_BLOB_NONE);	/* start past offset 0 */
	uint32_t off = eg_classifier_build(&b, rules, 2000);
	cr_assert_neq(off, EG_BLOB_NONE);

	/* At another address, and ending right where the allocation ends, so that a read
	 * past the structure shows under a sanitizer. */
	uint8_t *copy = malloc(b.len + 64);
	cr_assert(copy);
	memcpy(copy + 64, b.data, b.len);

	/* Keep the original alive, but scrambled, so a stray pointer into it would show. */
	struct gen keys = g;
	unsigned hits = compare(&keys, copy + 64, off, rules, 2000, 5000, "copy");
	memset(b.data, 0xa5, b.len);
	keys = g;
	cr_expect_eq(compare(&keys, copy + 64, off, rules, 2000, 5000, "copy, original scrambled"),
		     hits);

	free(copy);
	eg_blob_free(&b);
	free(rules);
}

/* A failed build leaves the blob as it was, so the caller can go on using it. */
Test(classifier, build_respects_blob_limit)
{
	struct gen g;
	struct eg_blob b;

	gen_init(&g, 7, false);
	struct eg_rule *rules = random_rules(&g, 500);
	eg_blob_init(&b, 4096);
	uint32_t first = eg_blob_alloc(&b, 16, 8);
	cr_assert_eq(first, 0);

	errno = 0;
	cr_expect_eq(eg_classifier_build(&b, rules, 500), EG_BLOB_NONE);
	cr_expect_eq(errno, ENOSPC);
	cr_expect_eq(b.len, 16);

	eg_blob_free(&b);
	free(rules);
}

/* Scale: 100k IPv4 rules with assorted /8../32 destinations, ports and protocols. Only
 * correctness is asserted; timing belongs in a benchmark, not in a unit test. */
Test(classifier, builds_100k_rules)
{
	enum { N = 100000 };
	struct rng r = { .s = 100 };
	struct eg_rule *rules = calloc(N, sizeof(*rules));
	struct eg_blob b;

	cr_assert(rules);
	for (uint32_t i = 0; i < N; i++) {
		struct eg_rule *x = &rules[i];
		x->priority = (uint32_t)below(&r, 1000);
		x->result = i;
		x->family = EG_AF_INET;
		x->dst.family = EG_AF_INET;
		x->dst.len = (uint8_t)(8 + below(&r, 25));
		uint32_t a = (uint32_t)rnd(&r) & (uint32_t)(0xffffffffULL << (32 - x->dst.len));
		a = htonl(a);
		memcpy(x->dst.addr, &a, 4);
		if (chance(&r, 10)) {
			x->src.family = EG_AF_INET;
			x->src.len = 16;
			x->src.addr[0] = 10;
			x->src.addr[1] = (uint8_t)below(&r, 4);
		}
		x->proto_any = chance(&r, 20);
		x->proto = chance(&r, 50) ? 6 : 17;
		x->sport_hi = 0xffff;
		random_range(&r, &x->dport_lo, &x->dport_hi, 20);
		x->dscp_mask = EG_DSCP_ANY;
		x->in_port = EG_PORT_ANY;
	}

	eg_blob_init(&b, 0);
	uint32_t off = eg_classifier_build(&b, rules, N);
	cr_assert_neq(off, EG_BLOB_NONE, "build: %s", strerror(errno));

	unsigned hits = 0;
	for (int i = 0; i < 300; i++) {
		const struct eg_rule *x = &rules[below(&r, N)];
		struct eg_flow_key k = { .family = EG_AF_INET, .proto = x->proto,
					 .sport = (uint16_t)rnd(&r), .in_port = 0 };
		fill_host_bits(&r, k.dst, x->dst.addr, x->dst.len, EG_AF_INET);
		k.src[0] = 10;
		k.src[1] = (uint8_t)below(&r, 5);
		k.dport = port_in(&r, x->dport_lo, x->dport_hi);
		uint32_t want = naive_lookup(rules, N, &k);
		cr_assert_eq(eg_classifier_lookup(b.data, off, &k), want, "key %d", i);
		hits += want != EG_CLS_NO_MATCH;
	}
	cr_expect_gt(hits, 150);

	eg_blob_free(&b);
	free(rules);
}

/* lib/blob.c */

Test(blob, alloc_is_aligned_zeroed_and_keeps_offsets)
{
	struct eg_blob b;

	eg_blob_init(&b, 0);
	uint32_t a = eg_blob_alloc(&b, 3, 1);
	memset(eg_blob_at(&b, a), 0xff, 3);
	uint32_t c = eg_blob_alloc(&b, 10, 64);
	cr_expect_eq(a, 0);
	cr_expect_eq(c, 64);
	for (int i = 3; i < 74; i++)
		cr_expect_eq(b.data[i], 0, "byte %d", i);

	/* Growing past the first capacity moves data, never offsets or contents. */
	uint32_t big = eg_blob_alloc(&b, 1 << 20, 8);
	cr_assert_neq(big, EG_BLOB_NONE);
	cr_expect_eq(big % 8, 0);
	cr_expect_eq(((uint8_t *)eg_blob_at(&b, a))[2], 0xff);
	cr_expect_eq(((uint8_t *)eg_blob_at(&b, big))[(1 << 20) - 1], 0);
	eg_blob_free(&b);
}

Test(blob, limit_and_bad_alignment)
{
	struct eg_blob b;

	eg_blob_init(&b, 100);
	cr_expect_eq(eg_blob_alloc(&b, 100, 1), 0);
	errno = 0;
	cr_expect_eq(eg_blob_alloc(&b, 1, 1), EG_BLOB_NONE);
	cr_expect_eq(errno, ENOSPC);
	cr_expect_eq(eg_blob_alloc(&b, 0, 1), 100);
	eg_blob_free(&b);

	eg_blob_init(&b, 0);
	cr_expect_eq(b.limit, (size_t)UINT32_MAX - 1);
	static const size_t bad[] = { 0, 3, 128 };
	for (size_t i = 0; i < 3; i++) {
		errno = 0;
		cr_expect_eq(eg_blob_alloc(&b, 8, bad[i]), EG_BLOB_NONE, "align %zu", bad[i]);
		cr_expect_eq(errno, EINVAL);
	}
	/* Offsets are 32-bit: a request that could not be addressed is refused. */
	cr_expect_eq(eg_blob_alloc(&b, (size_t)UINT32_MAX, 1), EG_BLOB_NONE);
	eg_blob_free(&b);
}
