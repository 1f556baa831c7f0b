/* Tests for lib/flow_select.c: the bucket table's consistency properties (weights, what
 * moves on removal and addition), and the flow hash's stability and spread. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "blob.h"
#include "flow_select.h"

static void members(struct eg_sel_member *m, unsigned n, bool equal_weights)
{
	for (unsigned i = 0; i < n; i++) {
		char name[32];
		snprintf(name, sizeof(name), "egress-%u", i);
		m[i] = (struct eg_sel_member){
			.key = eg_sel_key(name),
			.weight = equal_weights ? 1.0 : 1.0 + i % 3,
			.value = (uint16_t)(100 + i),
		};
	}
}

static unsigned count(const uint16_t *table, uint16_t value)
{
	unsigned c = 0;

	for (unsigned b = 0; b < EG_SEL_BUCKETS; b++)
		c += table[b] == value;
	return c;
}

Test(flow_select, no_members_means_none)
{
	static uint16_t table[EG_SEL_BUCKETS];
	struct eg_sel_member unusable[3] = {
		{ .key = 1, .weight = 0, .value = 1 },
		{ .key = 2, .weight = -1, .value = 2 },
		{ .key = 3, .weight = NAN, .value = 3 },
	};

	memset(table, 0, sizeof(table));
	eg_sel_fill(table, NULL, 0);
	cr_expect_eq(count(table, EG_SEL_NONE), EG_SEL_BUCKETS);

	memset(table, 0, sizeof(table));
	eg_sel_fill(table, unusable, 3);
	cr_expect_eq(count(table, EG_SEL_NONE), EG_SEL_BUCKETS);
}

Test(flow_select, one_member_takes_all)
{
	static uint16_t table[EG_SEL_BUCKETS];
	struct eg_sel_member m = { .key = eg_sel_key("only"), .weight = 0.01, .value = 7 };

	eg_sel_fill(table, &m, 1);
	cr_expect_eq(count(table, 7), EG_SEL_BUCKETS);
}

struct share_case {
	double weights[6];
};

/* Shares within 20% of weight / sum: about 4 standard deviations for the smallest share
 * here, and the result is deterministic anyway. */
static const struct share_case share_cases[] = {
	/* 1 */ { { 1, 1 } },
	/* 2 */ { { 1, 3 } },
	/* 3 */ { { 1, 2, 3, 4 } },
	/* 4 */ { { 5, 5, 5, 5, 5, 5 } },
	/* 5 */ { { 0.5, 0.25, 0.25 } },
	/* 6 */ { { 100, 100, 200 } },
};

Test(flow_select, shares_follow_weights)
{
	static uint16_t table[EG_SEL_BUCKETS];

	for (size_t c = 0; c < sizeof(share_cases) / sizeof(share_cases[0]); c++) {
		struct eg_sel_member m[6];
		unsigned n = 0;
		double sum = 0;

		while (n < 6 && share_cases[c].weights[n] > 0) {
			char name[32];
			snprintf(name, sizeof(name), "case%zu-%u", c, n);
			m[n] = (struct eg_sel_member){ .key = eg_sel_key(name),
						       .weight = share_cases[c].weights[n],
						       .value = (uint16_t)n };
			sum += m[n].weight;
			n++;
		}
		eg_sel_fill(table, m, n);
		cr_expect_eq(count(table, EG_SEL_NONE), 0, "case %zu", c + 1);
		for (unsigned i = 0; i < n; i++) {
			double want = EG_SEL_BUCKETS * m[i].weight / sum;
			unsigned got = count(table, (uint16_t)i);
			cr_expect(got > 0.8 * want && got < 1.2 * want,
				  "case %zu member %u: %u buckets, want about %.0f", c + 1, i, got, want);
		}
	}
}

Test(flow_select, removing_moves_only_its_buckets)
{
	static uint16_t full[EG_SEL_BUCKETS], less[EG_SEL_BUCKETS];

	for (unsigned n = 2; n <= 8; n++) {
		struct eg_sel_member m[8], rest[8];
		members(m, n, false);
		eg_sel_fill(full, m, n);

		for (unsigned gone = 0; gone < n; gone++) {
			unsigned k = 0;
			for (unsigned i = 0; i < n; i++)
				if (i != gone)
					rest[k++] = m[i];
			eg_sel_fill(less, rest, k);

			for (unsigned b = 0; b < EG_SEL_BUCKETS; b++) {
				if (full[b] == m[gone].value)
					cr_assert(less[b] != m[gone].value && less[b] != EG_SEL_NONE,
						  "n %u, removed %u: bucket %u not reassigned", n, gone, b);
				else
					cr_assert_eq(less[b], full[b],
						     "n %u, removed %u: bucket %u moved", n, gone, b);
			}
		}
	}
}

Test(flow_select, adding_moves_about_one_share_to_the_newcomer)
{
	static uint16_t before[EG_SEL_BUCKETS], after[EG_SEL_BUCKETS];

	for (unsigned n = 1; n <= 8; n++) {
		struct eg_sel_member m[9];
		members(m, n + 1, true);
		eg_sel_fill(before, m, n);
		eg_sel_fill(after, m, n + 1);

		unsigned moved = 0;
		for (unsigned b = 0; b < EG_SEL_BUCKETS; b++) {
			if (after[b] == before[b])
				continue;
			cr_assert_eq(after[b], m[n].value, "n %u: bucket %u moved elsewhere", n, b);
			moved++;
		}
		double share = (double)EG_SEL_BUCKETS / (n + 1);
		cr_expect(moved > 0.5 * share && moved < 1.5 * share,
			  "n %u: %u buckets moved, want about %.0f", n, moved, share);
	}
}

/* Control and workers may list the same egresses in another order. */
Test(flow_select, member_order_does_not_matter)
{
	static uint16_t fwd[EG_SEL_BUCKETS], rev[EG_SEL_BUCKETS];
	struct eg_sel_member m[7], r[7];

	members(m, 7, false);
	for (unsigned i = 0; i < 7; i++)
		r[i] = m[6 - i];
	eg_sel_fill(fwd, m, 7);
	eg_sel_fill(rev, r, 7);
	cr_expect_arr_eq(fwd, rev, sizeof(fwd));
}

Test(flow_select, build_places_an_aligned_table)
{
	static uint16_t want[EG_SEL_BUCKETS];
	struct eg_sel_member m[3];
	struct eg_blob b;

	members(m, 3, false);
	eg_sel_fill(want, m, 3);
	eg_blob_init(&b, 0);
	cr_assert_neq(eg_blob_alloc(&b, 5, 1), EG_BLOB_NONE);
	uint32_t off = eg_sel_build(&b, m, 3);
	cr_assert_neq(off, EG_BLOB_NONE);
	cr_expect_eq(off % 64, 0);
	cr_expect_arr_eq(eg_blob_at(&b, off), want, sizeof(want));
	eg_blob_free(&b);

	eg_blob_init(&b, 1000);	/* too small for the table */
	cr_expect_eq(eg_sel_build(&b, m, 3), EG_BLOB_NONE);
	eg_blob_free(&b);
}

static struct eg_flow_key v4_key(void)
{
	struct eg_flow_key k = { .family = EG_AF_INET, .proto = 6, .sport = 40000, .dport = 443,
				 .src = { 10, 0, 0, 1 }, .dst = { 192, 0, 2, 7 } };
	return k;
}

static struct eg_flow_key v6_key(void)
{
	struct eg_flow_key k = { .family = EG_AF_INET6, .proto = 17, .sport = 5353, .dport = 53,
				 .src = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 },
				 .dst = { 0x20, 0x01, 0x0d, 0xb8, [14] = 0x12, [15] = 0x34 } };
	return k;
}

/* Pinned values: control and the workers must agree whatever the build, so a change to
 * the hash is a change of wire behaviour and should be deliberate. */
Test(flow_select, hashes_are_pinned)
{
	struct eg_flow_key k4 = v4_key(), k6 = v6_key();
	uint64_t h4 = eg_flow_hash(&k4), h6 = eg_flow_hash(&k6), key = eg_sel_key("wg-fra1");

	cr_expect_eq(h4, 0xaf2501739f420787ULL, "v4: %#llx", (unsigned long long)h4);
	cr_expect_eq(h6, 0xbcf08595bb153d18ULL, "v6: %#llx", (unsigned long long)h6);
	cr_expect_eq(key, 0xedc95dc882fc16daULL, "key: %#llx", (unsigned long long)key);
}

/* A flow keeps its egress when its DSCP or ingress port changes, and the bytes of an IPv4
 * key past the address are not looked at. */
Test(flow_select, hash_ignores_what_it_should)
{
	struct eg_flow_key a = v4_key(), b = v4_key();

	b.dscp = 46;
	b.in_port = 3;
	b.pad = 0xff;
	memset(b.src + 4, 0xaa, EG_ADDR_MAX_LEN - 4);
	memset(b.dst + 4, 0x55, EG_ADDR_MAX_LEN - 4);
	cr_expect_eq(eg_flow_hash(&a), eg_flow_hash(&b));

	struct eg_flow_key c = v6_key(), d = v6_key();
	d.dscp = 10;
	d.in_port = 1;
	cr_expect_eq(eg_flow_hash(&c), eg_flow_hash(&d));
}

/* Each 5-tuple field and the family change the hash. */
Test(flow_select, hash_sees_every_field)
{
	const struct eg_flow_key base4 = v4_key(), base6 = v6_key();
	struct eg_flow_key k[12];
	unsigned n = 0;

	/*  1 */ k[n] = base4; k[n].proto = 17; n++;
	/*  2 */ k[n] = base4; k[n].sport++; n++;
	/*  3 */ k[n] = base4; k[n].dport++; n++;
	/*  4 */ k[n] = base4; k[n].src[3] ^= 1; n++;
	/*  5 */ k[n] = base4; k[n].dst[0] ^= 0x80; n++;
	/*  6 */ k[n] = base4; k[n].sport = base4.dport; k[n].dport = base4.sport; n++;
	/*  7 */ k[n] = base4; memcpy(k[n].src, base4.dst, 4); memcpy(k[n].dst, base4.src, 4); n++;
	/*  8 */ k[n] = base4; k[n].family = EG_AF_INET6; n++;
	/*  9 */ k[n] = base6; k[n].src[15] ^= 1; n++;
	/* 10 */ k[n] = base6; k[n].dst[8] ^= 1; n++;
	/* 11 */ k[n] = base6; k[n].src[0] ^= 0x80; n++;
	/* 12 */ k[n] = base6; k[n].proto = 6; n++;

	uint64_t h4 = eg_flow_hash(&base4), h6 = eg_flow_hash(&base6);
	cr_expect_neq(h4, h6);
	for (unsigned i = 0; i < n; i++) {
		uint64_t h = eg_flow_hash(&k[i]);
		cr_expect(h != h4 && h != h6, "case %u", i + 1);
		for (unsigned j = 0; j < i; j++)
			cr_expect_neq(h, eg_flow_hash(&k[j]), "cases %u and %u", j + 1, i + 1);
	}
}

/* Chi-square of the bucket occupancy over flows that differ little: consecutive source
 * ports, and consecutive source addresses. For uniform buckets the statistic is about
 * EG_SEL_BUCKETS - 1 with a standard deviation near 90; the bound is loose. */
static double chi_square(const unsigned *occ, unsigned flows)
{
	double expect = (double)flows / EG_SEL_BUCKETS, chi = 0;

	for (unsigned b = 0; b < EG_SEL_BUCKETS; b++)
		chi += (occ[b] - expect) * (occ[b] - expect) / expect;
	return chi;
}

Test(flow_select, hash_spreads_similar_flows)
{
	enum { FLOWS = 1 << 18 };
	static unsigned by_pick[EG_SEL_BUCKETS], by_low[EG_SEL_BUCKETS];
	static uint16_t identity[EG_SEL_BUCKETS];
	const double limit = 1.2 * (EG_SEL_BUCKETS - 1);

	for (unsigned b = 0; b < EG_SEL_BUCKETS; b++)
		identity[b] = (uint16_t)b;

	for (int kind = 0; kind < 3; kind++) {
		memset(by_pick, 0, sizeof(by_pick));
		memset(by_low, 0, sizeof(by_low));
		for (uint32_t i = 0; i < FLOWS; i++) {
			struct eg_flow_key k = kind == 2 ? v6_key() : v4_key();
			if (kind == 0) {
				k.sport = (uint16_t)i;
				k.dport = (uint16_t)(443 + (i >> 16));
			} else {
				/* Consecutive sources, the way a site's hosts are numbered. */
				uint8_t *a = kind == 1 ? k.src : k.src + 12;
				a[1] = (uint8_t)(i >> 16);
				a[2] = (uint8_t)(i >> 8);
				a[3] = (uint8_t)i;
			}
			uint64_t h = eg_flow_hash(&k);
			by_pick[eg_sel_pick(identity, h)]++;
			by_low[h & (EG_SEL_BUCKETS - 1)]++;
		}
		double chi = chi_square(by_pick, FLOWS);
		cr_expect_lt(chi, limit, "kind %d: picked buckets chi-square %.0f", kind, chi);
		chi = chi_square(by_low, FLOWS);
		cr_expect_lt(chi, limit, "kind %d: low bits chi-square %.0f", kind, chi);
	}
}

Test(flow_select, sel_key_tells_names_apart)
{
	static const char *const names[] = { "", "a", "b", "ab", "ba", "wg-fra1", "wg-fra2",
					     "wg-fra10", "egress-0", "egress-1" };
	const size_t n = sizeof(names) / sizeof(names[0]);

	for (size_t i = 0; i < n; i++) {
		cr_expect_eq(eg_sel_key(names[i]), eg_sel_key(names[i]));
		for (size_t j = 0; j < i; j++)
			cr_expect_neq(eg_sel_key(names[i]), eg_sel_key(names[j]), "%s vs %s",
				      names[i], names[j]);
	}
}
