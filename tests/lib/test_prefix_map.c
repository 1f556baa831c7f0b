/* lib/prefix_map.c: nested prefixes of different owners, edges of the address space, and
 * random sets checked against a plain longest-prefix scan. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "net_addr.h"
#include "prefix_map.h"

#define MAX_SET 64

static struct eg_prefix_owned set[MAX_SET];
static unsigned n_set;
static struct eg_prefix_range ranges[2 * MAX_SET];
static unsigned n_ranges;

static void add(const char *prefix, uint32_t owner)
{
	cr_assert_eq(eg_prefix_parse(prefix, false, &set[n_set].prefix), 0, "%s", prefix);
	set[n_set++].owner = owner;
}

static void flatten(uint8_t family)
{
	/* A copy: flattening sorts its input, the scan below wants the set as given. */
	struct eg_prefix_owned copy[MAX_SET];

	memcpy(copy, set, sizeof(copy));
	n_ranges = eg_prefix_map_flatten(family, copy, n_set, ranges);
	cr_assert_leq(n_ranges, 2 * n_set);
	for (unsigned i = 1; i < n_ranges; i++)
		cr_assert_lt(memcmp(ranges[i - 1].start, ranges[i].start, 16), 0, "ranges sorted and distinct");
}

static uint32_t owner_of(const char *address)
{
	struct eg_addr a;

	cr_assert_eq(eg_addr_parse(address, &a), 0, "%s", address);
	return eg_prefix_map_lookup(ranges, n_ranges, a.family, a.addr);
}

/* The reference: scan every prefix, keep the longest that contains addr. */
static uint32_t scan(uint8_t family, const uint8_t *addr)
{
	int best = -1;
	uint32_t owner = EG_PREFIX_NO_OWNER;

	for (unsigned i = 0; i < n_set; i++)
		if (eg_prefix_contains(&set[i].prefix, family, addr) && set[i].prefix.len > best) {
			best = set[i].prefix.len;
			owner = set[i].owner;
		}
	return owner;
}

Test(prefix_map, empty_set_owns_nothing)
{
	n_set = 0;
	flatten(EG_AF_INET);
	cr_assert_eq(n_ranges, 0);
	cr_assert_eq(owner_of("10.1.2.3"), EG_PREFIX_NO_OWNER);
}

Test(prefix_map, longer_prefix_of_another_owner_takes_its_addresses)
{
	n_set = 0;
	add("10.0.0.0/8", 1);
	add("10.1.0.0/16", 2);
	add("10.1.1.0/24", 1);
	add("192.168.0.0/24", 3);
	flatten(EG_AF_INET);
	cr_assert_eq(owner_of("9.255.255.255"), EG_PREFIX_NO_OWNER);
	cr_assert_eq(owner_of("10.0.0.0"), 1);
	cr_assert_eq(owner_of("10.0.255.255"), 1);
	cr_assert_eq(owner_of("10.1.0.0"), 2);
	cr_assert_eq(owner_of("10.1.0.255"), 2);
	cr_assert_eq(owner_of("10.1.1.0"), 1);
	cr_assert_eq(owner_of("10.1.1.255"), 1);
	cr_assert_eq(owner_of("10.1.2.0"), 2);
	cr_assert_eq(owner_of("10.1.255.255"), 2);
	cr_assert_eq(owner_of("10.2.0.0"), 1);
	cr_assert_eq(owner_of("10.255.255.255"), 1);
	cr_assert_eq(owner_of("11.0.0.0"), EG_PREFIX_NO_OWNER);
	cr_assert_eq(owner_of("192.168.0.77"), 3);
	cr_assert_eq(owner_of("192.168.1.0"), EG_PREFIX_NO_OWNER);
}

Test(prefix_map, default_route_and_the_last_address)
{
	n_set = 0;
	add("0.0.0.0/0", 7);
	add("255.255.255.255/32", 8);
	add("0.0.0.0/32", 9);
	flatten(EG_AF_INET);
	cr_assert_eq(owner_of("0.0.0.0"), 9);
	cr_assert_eq(owner_of("0.0.0.1"), 7);
	cr_assert_eq(owner_of("128.0.0.0"), 7);
	cr_assert_eq(owner_of("255.255.255.254"), 7);
	cr_assert_eq(owner_of("255.255.255.255"), 8);
}

Test(prefix_map, families_are_kept_apart)
{
	n_set = 0;
	add("::/0", 1);
	add("fd00::/8", 2);
	add("fd00:1::/32", 3);
	add("10.0.0.0/8", 4);
	flatten(EG_AF_INET6);
	cr_assert_eq(owner_of("2001:db8::1"), 1);
	cr_assert_eq(owner_of("fd00::1"), 2);
	cr_assert_eq(owner_of("fd00:1:ffff::1"), 3);
	cr_assert_eq(owner_of("fd00:2::"), 2);
	cr_assert_eq(owner_of("fe00::"), 1);
	cr_assert_eq(owner_of("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), 1);
	flatten(EG_AF_INET);
	cr_assert_eq(owner_of("10.9.9.9"), 4);
	cr_assert_eq(owner_of("11.0.0.0"), EG_PREFIX_NO_OWNER);
}

Test(prefix_map, same_owner_nested_and_adjacent_prefixes_merge)
{
	n_set = 0;
	add("10.0.0.0/8", 1);
	add("10.1.0.0/16", 1);
	add("11.0.0.0/8", 1);
	flatten(EG_AF_INET);
	cr_assert_eq(n_ranges, 2, "one range for 10/8 and 11/8, one after them");
	cr_assert_eq(owner_of("11.255.0.0"), 1);
	cr_assert_eq(owner_of("12.0.0.0"), EG_PREFIX_NO_OWNER);
}

/* Random nested sets inside a small space, so that nesting, adjacency and shared starts
 * are common; every address of 10.0.0.0/20 is looked up both ways. */
Test(prefix_map, random_sets_agree_with_a_scan)
{
	srand(20261122);
	for (int round = 0; round < 300; round++) {
		n_set = 0;
		unsigned want = 1 + (unsigned)rand() % MAX_SET;

		while (n_set < want) {
			struct eg_prefix p = {.family = EG_AF_INET, .len = (uint8_t)(16 + rand() % 17)};
			bool dup = false;

			p.addr[0] = 10;
			p.addr[1] = 0;
			p.addr[2] = (uint8_t)(rand() % 16);
			p.addr[3] = (uint8_t)rand();
			eg_prefix_mask(&p);
			for (unsigned i = 0; i < n_set; i++)
				dup |= set[i].prefix.len == p.len && memcmp(set[i].prefix.addr, p.addr, 4) == 0;
			if (dup)
				continue;
			set[n_set].prefix = p;
			set[n_set++].owner = (uint32_t)rand() % 4;
		}
		flatten(EG_AF_INET);
		for (uint32_t a = 0; a < 4096 + 256; a++) {
			/* 10.0.0.0 through 10.0.16.255: one /24 past where the random prefixes start */
			uint8_t addr[16] = {10, 0, (uint8_t)(a >> 8), (uint8_t)a};

			cr_assert_eq(eg_prefix_map_lookup(ranges, n_ranges, EG_AF_INET, addr),
				     scan(EG_AF_INET, addr), "round %d, 10.0.%u.%u", round, a >> 8, a & 255);
		}
	}
}
