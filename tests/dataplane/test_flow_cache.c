/* Tests for dataplane/flow_cache.c: a worker's cache of classifications. It must never
 * answer with another flow's policy or with one from before the rules changed, and it
 * must hold as many flows as it was sized for: a cache that loses flows sends them
 * through the classifier on every packet. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "flow_cache.h"
#include "flow_select.h"

static struct eg_flow_key key_of(unsigned i, bool v6)
{
	struct eg_flow_key k = {.family = v6 ? EG_AF_INET6 : EG_AF_INET, .proto = 17, .in_port = 1,
				.sport = (uint16_t)(1024 + i % 50000), .dport = 443};
	uint32_t n = i / 50000 + 1;

	k.src[0] = 10;
	memcpy(&k.src[v6 ? 12 : 1], &i, 3);
	memcpy(&k.dst[v6 ? 12 : 0], &n, 4);
	return k;
}

/* Under fixed rules a key always classifies to the same policy. */
static uint32_t policy_of(const struct eg_flow_key *k, unsigned rules)
{
	return (uint32_t)(eg_flow_hash(k) % 1000) + rules * 1000;
}

static bool find(struct dp_flow_cache *c, const struct eg_flow_key *k, uint32_t *pi)
{
	return dp_flow_find(c, k, eg_flow_hash(k), pi);
}

static void insert(struct dp_flow_cache *c, const struct eg_flow_key *k, uint32_t pi)
{
	dp_flow_insert(c, k, eg_flow_hash(k), pi);
}

Test(flow_cache, sizes_refused)
{
	cr_assert_null(dp_flow_cache_create(DP_FLOW_MIN_FLOWS - 1));
	cr_assert_null(dp_flow_cache_create(DP_FLOW_MAX_FLOWS + 1));
}

/* Where flows land is secret to each cache: flows picked because they share a bucket in
 * one cache (as someone who knew the placement would pick them, to make each of their
 * packets a miss and a cuckoo walk) are scattered in another. */
Test(flow_cache, placement_is_secret)
{
	struct dp_flow_cache *a = dp_flow_cache_create(DP_FLOW_MIN_FLOWS), *b = dp_flow_cache_create(DP_FLOW_MIN_FLOWS);
	enum { AIMED = 16 };
	uint32_t target = 0, b1, b2, in_b[AIMED];
	unsigned found = 0, same = 0;

	cr_assert(a && b);
	cr_assert_eq(a->n_buckets, b->n_buckets);
	for (unsigned i = 0; i < 1000000 && found < AIMED; i++) {
		struct eg_flow_key k = key_of(i, false);
		uint64_t h = eg_flow_hash(&k);

		dp_flow_buckets(a, h, &b1, &b2);
		if (found && b1 != target)
			continue;
		target = b1;
		dp_flow_buckets(b, h, &in_b[found], &b2);
		found++;
	}
	cr_assert_eq(found, AIMED, "candidates for one bucket of %u", a->n_buckets);
	for (unsigned i = 1; i < AIMED; i++)
		same += in_b[i] == in_b[0];
	/* By chance, each would share the first one's bucket once in n_buckets. */
	cr_expect_lt(same, 4, "%u of %u flows aimed at one bucket share it in another cache too", same, AIMED - 1);
	dp_flow_cache_free(a);
	dp_flow_cache_free(b);
}

/* Every field the classifier matches on is part of the key: a flow that differs in any
 * one of them is another flow. */
Test(flow_cache, every_field_counts)
{
	struct dp_flow_cache *c = dp_flow_cache_create(DP_FLOW_MIN_FLOWS);

	cr_assert_not_null(c);
	for (int v6 = 0; v6 < 2; v6++) {
		struct eg_flow_key k = key_of(7, v6);
		unsigned alen = v6 ? 16 : 4;
		uint32_t pi;

		insert(c, &k, 42);
		cr_assert(find(c, &k, &pi) && pi == 42);
		for (unsigned f = 0; f < 5 + 2 * alen; f++) {
			struct eg_flow_key o = k;

			switch (f) {
			case 0: o.proto ^= 1; break;
			case 1: o.dscp ^= 1; break;
			case 2: o.in_port ^= 1; break;
			case 3: o.sport ^= 0x100; break;
			case 4: o.dport ^= 1; break;
			default:
				if (f - 5 < alen)
					o.src[f - 5] ^= 0x80;
				else
					o.dst[f - 5 - alen] ^= 0x80;
			}
			cr_assert_not(find(c, &o, &pi), "v6 %d: field %u changed and the flow still hit", v6, f);
		}
		/* The other family with the same bytes is another flow too. */
		k.family = v6 ? EG_AF_INET : EG_AF_INET6;
		cr_assert_not(find(c, &k, &pi));
	}
	dp_flow_cache_free(c);
}

/* One pass over flows first..first+n-1 as the worker makes it: each looked up, and
 * inserted on a miss. Returns the misses; every hit must be the flow's own policy. */
static unsigned pass(struct dp_flow_cache *c, unsigned first, unsigned n, bool v6)
{
	unsigned misses = 0;

	for (unsigned i = first; i < first + n; i++) {
		struct eg_flow_key k = key_of(i, v6);
		uint32_t pi;

		if (find(c, &k, &pi)) {
			cr_assert_eq(pi, policy_of(&k, 0), "flow %u hit with another policy", i);
		} else {
			misses++;
			insert(c, &k, policy_of(&k, 0));
		}
	}
	return misses;
}

/* Sized for n flows, it holds n flows, once it has grown to them: with these 200,000
 * flows the cache outgrows its start size in the first pass, takes its full size, and
 * holds them all from the third pass on, some of them moved to their other bucket to make
 * room, none evicted. Where flows land differs from cache to cache, but at half load a
 * cuckoo walk of four moves failing is rare enough never to have been seen here. */
Test(flow_cache, holds_what_it_was_sized_for)
{
	enum { N = 200000 };
	struct dp_flow_cache *c = dp_flow_cache_create(N);
	unsigned misses = 0, passes = 0;

	cr_assert_not_null(c);
	cr_assert_lt(c->n_buckets, c->max_buckets, "a cache starts small");
	cr_assert_eq(pass(c, 0, N, false), N, "flows hit before they were seen");
	do
		misses = pass(c, 0, N, false);
	while (misses && ++passes < 8);
	cr_log_info("%u passes; %llu grows, %llu relocations, %llu evictions", passes + 2,
		    (unsigned long long)c->grows, (unsigned long long)c->relocations,
		    (unsigned long long)c->evictions);
	cr_assert_eq(misses, 0, "%u of %u flows still missing after %u passes", misses, N, passes + 2);
	cr_assert_eq(c->n_buckets, c->max_buckets);
	cr_assert_eq(c->grows, 1);
	cr_assert_leq(passes + 2, 3);
	cr_assert_gt(c->relocations, 0, "no insert had to move a resident: the test is too easy");
	cr_assert_eq(c->evictions, c->window.evictions, "evictions at full size");
	dp_flow_cache_free(c);
}

/* The worker finds a flow's buckets before the burst's lookups (to prefetch them), and an
 * insert earlier in the burst may grow the cache in between: the lookup must then find the
 * buckets again, or it would look where the flow no longer lives. */
Test(flow_cache, buckets_found_before_the_cache_grew_are_found_again)
{
	enum { N = 200000 };
	struct dp_flow_cache *c = dp_flow_cache_create(N);
	struct eg_flow_key k = key_of(N + 1, false);
	uint64_t h = eg_flow_hash(&k);
	struct dp_flow_place before;
	uint32_t pi, start;

	cr_assert_not_null(c);
	start = c->n_buckets;
	before = dp_flow_place(c, h);
	for (unsigned passes = 0; c->n_buckets == start && passes < 4; passes++)
		pass(c, 0, N, false);
	cr_assert_neq(c->n_buckets, start, "the cache never grew");
	insert(c, &k, 77);
	cr_assert(dp_flow_find_at(c, &k, h, before, &pi), "the flow was looked for where it lived before");
	cr_assert_eq(pi, 77);
	dp_flow_cache_free(c);
}

/* A thousand flows stay in the small start region of a cache sized for a million (the
 * TLB covers them), in either family, and none of them is lost: an IPv6 flow, which needs
 * a bucket of its own, finds one by pushing residents on when both of its buckets are
 * taken. (Moving residents one step only, about one IPv6 insert in a thousand evicted a
 * flow here.) */
Test(flow_cache, few_flows_do_not_grow)
{
	struct dp_flow_cache *c = dp_flow_cache_create(1 << 20);
	uint32_t start;

	cr_assert_not_null(c);
	start = c->n_buckets;
	for (int v6 = 0; v6 < 2; v6++) {
		cr_assert_eq(pass(c, 0, 1000, v6), 1000);
		cr_assert_eq(pass(c, 0, 1000, v6), 0, "%s flows missed again", v6 ? "IPv6" : "IPv4");
	}
	cr_assert_eq(pass(c, 0, 1000, false), 0, "IPv4 flows lost to IPv6 ones");
	cr_assert_eq(c->evictions, 0);
	cr_assert_eq(c->n_buckets, start);
	cr_assert_eq(c->grows, 0);
	dp_flow_cache_free(c);
}

/* IPv6 flows among IPv4 ones, at two thirds of what the cache was sized for (an IPv6
 * flow counts as three IPv4 flows, the room of its bucket): after the cache has grown,
 * every flow stays in. Moving residents one step only, the IPv6 flows' buckets stopped
 * walks, and 55 to 109 of these flows were lost on every pass. */
Test(flow_cache, holds_ipv6_flows_among_ipv4)
{
	enum { N = 200000, N4 = 100000, N6 = 10000 };
	struct dp_flow_cache *c = dp_flow_cache_create(N);
	unsigned misses, passes = 0;

	cr_assert_not_null(c);
	do {
		misses = pass(c, 0, N4, false);
		misses += pass(c, 0, N6, true);
	} while (misses && ++passes < 8);
	cr_log_info("%u passes; %llu relocations, %llu evictions", passes + 1, (unsigned long long)c->relocations,
		    (unsigned long long)c->evictions);
	cr_assert_eq(misses, 0, "%u of %u flows still missing after %u passes", misses, N4 + N6, passes + 1);
	cr_assert_eq(c->grows, 1);
	cr_assert_leq(passes + 1, 5);
	dp_flow_cache_free(c);
}

/* Whatever moves inserts make (one-step moves, cuckoo walks, IPv6 flows pushing residents
 * on, evictions), every entry stays in one of its own two buckets, once, with its own
 * policy, and what the cache holds is every inserted flow but the evicted ones: a move
 * that dropped or copied an entry, or put it where lookups never look, breaks one of
 * these. */
Test(flow_cache, moves_keep_every_entry_where_it_belongs)
{
	enum { FLOWS = 6000 };
	struct dp_flow_cache *c = dp_flow_cache_create(DP_FLOW_MIN_FLOWS);
	static bool seen[2][FLOWS];
	uint64_t inserted = 0, held = 0;

	cr_assert_not_null(c);
	srandom(11);
	for (unsigned n = 0; n < 3000; n++) {
		unsigned i = (unsigned)random() % FLOWS;
		bool v6 = random() % 3 == 0;
		struct eg_flow_key k = key_of(i, v6);
		uint32_t pi;

		if (!find(c, &k, &pi)) {
			insert(c, &k, policy_of(&k, 0));
			inserted++;
		}
	}
	cr_assert_gt(c->relocations, 0, "nothing moved: the test is too easy");
	cr_assert_gt(c->evictions, 0, "nothing was evicted: the test is too easy");
	for (uint32_t bi = 0; bi < c->n_buckets; bi++) {
		const struct dp_flow_bucket *b = &c->b[bi];
		unsigned n = !dp_flow_live(c, b) ? 0 : b->tag & 4 ? 1 : b->tag & 3;

		for (unsigned j = 0; j < n; j++) {
			bool v6 = b->tag & 4;
			const uint32_t *w = v6 ? b->v6.key : b->v4[j].key;
			uint32_t policy = v6 ? b->v6.policy : b->v4[j].policy;
			uint32_t i = 0, b1, b2;
			struct eg_flow_key k;

			memcpy(&i, v6 ? (const uint8_t *)w + 12 : (const uint8_t *)w + 1, 3);
			cr_assert_lt(i, FLOWS);
			k = key_of(i, v6);
			dp_flow_buckets(c, eg_flow_hash(&k), &b1, &b2);
			cr_assert(bi == b1 || bi == b2, "flow %u (v6 %d) in bucket %u, not in %u or %u", i, v6, bi, b1, b2);
			cr_assert_eq(policy, policy_of(&k, 0));
			cr_assert_not(seen[v6][i], "flow %u (v6 %d) held twice", i, v6);
			seen[v6][i] = true;
			held++;
		}
	}
	cr_assert_eq(held + c->evictions, inserted, "%llu held and %llu evicted of %llu inserted",
		     (unsigned long long)held, (unsigned long long)c->evictions, (unsigned long long)inserted);
	dp_flow_cache_free(c);
}

/* Flows that come and go, two thousand at a time and 150,000 in all, a few packets
 * each: ended flows' entries fill the start size and are evicted, but the live flows
 * fit, so the cache must not take its full size for them. */
Test(flow_cache, churning_flows_do_not_grow)
{
	struct dp_flow_cache *c = dp_flow_cache_create(1 << 20);
	uint32_t start = c ? c->n_buckets : 0;

	cr_assert_not_null(c);
	for (unsigned r = 0; r < 300; r++)
		for (unsigned packet = 0; packet < 4; packet++)
			pass(c, r * 500, 2000, false);
	cr_assert_gt(c->evictions, 0, "ended flows never had to make room: the test is too easy");
	cr_assert_eq(c->n_buckets, start);
	cr_assert_eq(c->grows, 0);
	dp_flow_cache_free(c);
}

/* Far more flows than room, IPv4 and IPv6 mixed, looked up in random order and inserted
 * on a miss as the worker does, with the rules changing now and then: whatever hits is
 * the flow's own policy under the current rules. */
Test(flow_cache, overfull_never_wrong)
{
	struct dp_flow_cache *c = dp_flow_cache_create(DP_FLOW_MIN_FLOWS);
	unsigned rules = 0, hits = 0;

	cr_assert_not_null(c);
	srandom(7);
	dp_flow_new_rules(c, 1);
	for (unsigned n = 0; n < 400000; n++) {
		struct eg_flow_key k = key_of((unsigned)random() % 8192, random() % 4 == 0);
		uint32_t pi;

		if (n % 50000 == 49999)
			dp_flow_new_rules(c, ++rules + 1);
		if (find(c, &k, &pi)) {
			hits++;
			cr_assert_eq(pi, policy_of(&k, rules), "a hit with another policy at lookup %u", n);
		} else {
			insert(c, &k, policy_of(&k, rules));
			cr_assert(find(c, &k, &pi) && pi == policy_of(&k, rules), "just inserted, not found");
		}
	}
	cr_assert_gt(hits, 0);
	cr_assert_gt(c->evictions, 0);
	dp_flow_cache_free(c);
}

/* New rules make every entry stale at once, also across the epoch counter's wrap. */
Test(flow_cache, new_rules_forget_everything)
{
	struct dp_flow_cache *c = dp_flow_cache_create(DP_FLOW_MIN_FLOWS);
	struct eg_flow_key k4 = key_of(1, false), k6 = key_of(2, true);
	uint32_t pi;

	cr_assert_not_null(c);
	for (int round = 0; round < 2; round++) {
		if (round == 1)
			c->epoch = (1u << DP_FLOW_EPOCH_BITS) - 1;	/* the last before the wrap */
		insert(c, &k4, 1);
		insert(c, &k6, 2);
		cr_assert(find(c, &k4, &pi) && pi == 1);
		cr_assert(find(c, &k6, &pi) && pi == 2);
		dp_flow_new_rules(c, 99 + (uint64_t)round);
		cr_assert_eq(c->classifier_id, 99 + (uint64_t)round);
		cr_assert_not(find(c, &k4, &pi));
		cr_assert_not(find(c, &k6, &pi));
	}
	cr_assert_eq(c->epoch, 1, "the wrap starts again at 1");
	dp_flow_cache_free(c);
}
