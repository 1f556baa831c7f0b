/* A table generation as workers see it: policies compiled to rules, strategies choosing
 * egresses from path state, and per-flow selection that moves only the flows it must. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "table.h"

static struct eg_dataplane_cfg dp;
static struct eg_egress_cfg egs[8];
static uint32_t eids[8];
static uint8_t estate[8];
static struct eg_policy_cfg pols[8];
static uint32_t pids[8];
static unsigned n_egs, n_pols;

static void add_port(const char *name, enum eg_port_role role)
{
	struct eg_port_cfg *p = &dp.ports[dp.n_ports++];

	snprintf(p->name, sizeof(p->name), "%s", name);
	p->role = role;
}

static void add_egress(const char *name, const char *port)
{
	struct eg_egress_cfg *e = &egs[n_egs];

	memset(e, 0, sizeof(*e));
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->type = EG_EGRESS_DIRECT;
	snprintf(e->port, sizeof(e->port), "%s", port);
	e->weight = 1;
	eids[n_egs] = 100 + n_egs;
	estate[n_egs] = EG_PATH_UP;
	n_egs++;
}

static void add_policy(const char *json)
{
	struct eg_error err;
	json_error_t jerr;
	json_t *j = json_loads(json, 0, &jerr);

	cr_assert_not_null(j, "%s", jerr.text);
	cr_assert_eq(eg_config_parse_policy(j, "$", &pols[n_pols], &err), 0, "%s: %s", err.path, err.msg);
	json_decref(j);
	pids[n_pols] = 7 + n_pols;
	n_pols++;
}

static void setup(void)
{
	memset(&dp, 0, sizeof(dp));
	add_port("lan0", EG_ROLE_SITE);
	add_port("wan0", EG_ROLE_UPLINK);
	add_port("wan1", EG_ROLE_UPLINK);
	add_port("wan2", EG_ROLE_UPLINK);
	n_egs = n_pols = 0;
}

static void teardown(void)
{
	for (unsigned i = 0; i < n_pols; i++)
		eg_policy_cfg_free(&pols[i]);
}

TestSuite(table, .init = setup, .fini = teardown);

/* picks: the control process's choices per policy; NULL: from egress state alone. */
static struct eg_blob build_with(const struct eg_path_pick *picks)
{
	struct eg_table_input in = {
		.dp = &dp, .egresses = egs, .n_egresses = n_egs, .egress_ids = eids,
		.egress_state = estate, .policies = pols, .n_policies = n_pols, .policy_ids = pids,
		.picks = picks,
	};
	struct eg_blob b;
	struct eg_error err;

	eg_blob_init(&b, 0);
	cr_assert_eq(eg_table_build(&in, &b, &err), 0, "%s", err.msg);
	cr_assert_eq(eg_table_validate(b.data, b.len), 0);
	return b;
}

static struct eg_blob build(void)
{
	return build_with(NULL);
}

static struct eg_flow_key v4(const char *src, const char *dst, uint8_t proto, uint16_t sport,
			     uint16_t dport)
{
	struct eg_flow_key k = {.family = EG_AF_INET, .proto = proto, .sport = sport, .dport = dport,
				.in_port = 0};
	struct eg_addr a;

	cr_assert_eq(eg_addr_parse(src, &a), 0);
	memcpy(k.src, a.addr, 16);
	cr_assert_eq(eg_addr_parse(dst, &a), 0);
	memcpy(k.dst, a.addr, 16);
	return k;
}

/* What the workers would do with k: the policy name and egress name, "-" for none. */
static const char *decide(const struct eg_blob *b, struct eg_flow_key k, enum eg_verdict *v)
{
	static char out[80];
	const struct eg_table_policy *p = NULL;
	const struct eg_table_egress *e = NULL;

	*v = eg_table_decide((const struct eg_table_hdr *)b->data, &k, eg_flow_hash(&k), &p, &e);
	snprintf(out, sizeof(out), "%s %s", p ? p->name : "-", *v == EG_VERDICT_FORWARD ? e->name : "-");
	return out;
}

Test(table, policies_in_priority_order_with_actions)
{
	enum eg_verdict v;

	add_egress("a", "wan0");
	add_egress("b", "wan1");
	add_policy("{\"name\":\"default\",\"priority\":1000,\"egresses\":[\"a\"]}");
	add_policy("{\"name\":\"voice\",\"priority\":10,\"match\":{\"proto\":\"udp\",\"dport\":\"10000-20000\"},"
		   "\"egresses\":[\"b\"]}");
	add_policy("{\"name\":\"deny\",\"priority\":5,\"match\":{\"dst\":[\"192.0.2.0/24\"]},\"action\":\"drop\"}");
	add_policy("{\"name\":\"v6only\",\"priority\":1,\"match\":{\"dst\":[\"::/0\"]},\"egresses\":[\"b\"]}");
	struct eg_blob b = build();

	/* 1 */ cr_assert_str_eq(decide(&b, v4("10.0.0.1", "8.8.8.8", 6, 1000, 443), &v), "default a");
	/* 2 */ cr_assert_str_eq(decide(&b, v4("10.0.0.1", "8.8.8.8", 17, 1000, 15000), &v), "voice b");
	/* 3 */ cr_assert_str_eq(decide(&b, v4("10.0.0.1", "8.8.8.8", 17, 1000, 20001), &v), "default a");
	/* 4 */ cr_assert_str_eq(decide(&b, v4("10.0.0.1", "192.0.2.9", 17, 1000, 15000), &v), "deny -");
	cr_assert_eq(v, EG_VERDICT_POLICY_DROP);
	/* 5: ::/0 names IPv6 only, though its length is 0 */
	cr_assert_str_eq(decide(&b, v4("10.0.0.1", "1.1.1.1", 1, 0, 0), &v), "default a");
	struct eg_flow_key k6 = {.family = EG_AF_INET6, .proto = 6, .dport = 80};

	k6.dst[0] = 0x20;
	/* 6 */ cr_assert_str_eq(decide(&b, k6, &v), "v6only b");
	const struct eg_table_policy *p = &eg_table_policies((const struct eg_table_hdr *)b.data)[1];

	cr_assert_eq(p->id, 8, "counter ids come from the caller");
	eg_blob_free(&b);
}

Test(table, no_match_without_a_catch_all)
{
	enum eg_verdict v;

	add_egress("a", "wan0");
	add_policy("{\"name\":\"web\",\"priority\":1,\"match\":{\"proto\":\"tcp\",\"dport\":443},\"egresses\":[\"a\"]}");
	struct eg_blob b = build();

	cr_assert_str_eq(decide(&b, v4("10.0.0.1", "8.8.8.8", 17, 1, 443), &v), "- -");
	cr_assert_eq(v, EG_VERDICT_NO_POLICY);
	eg_blob_free(&b);
}

Test(table, strategies_follow_path_state)
{
	enum eg_verdict v;
	struct eg_flow_key k = v4("10.0.0.1", "8.8.8.8", 6, 1000, 443);

	add_egress("a", "wan0");
	add_egress("b", "wan1");
	add_egress("c", "wan2");
	add_policy("{\"name\":\"prio\",\"priority\":1,\"match\":{\"dport\":443,\"proto\":\"tcp\"},"
		   "\"egresses\":[\"a\",\"b\",\"c\"]}");
	add_policy("{\"name\":\"pin\",\"priority\":2,\"match\":{\"dport\":80,\"proto\":\"tcp\"},"
		   "\"egresses\":[\"a\",\"b\"],\"strategy\":\"pinned\"}");
	struct {
		uint8_t a, b, c;
		const char *prio, *pin;
	} cases[] = {
		/* 1 */ {EG_PATH_UP, EG_PATH_UP, EG_PATH_UP, "prio a", "pin a"},
		/* 2 */ {EG_PATH_DOWN, EG_PATH_UP, EG_PATH_UP, "prio b", "pin b"},
		/* 3 */ {EG_PATH_DOWN, EG_PATH_DEGRADED, EG_PATH_UP, "prio c", "pin -"},
		/* 4: nothing eligible: the degraded one before the down ones */
		/* 4 */ {EG_PATH_DOWN, EG_PATH_DOWN, EG_PATH_DEGRADED, "prio c", "pin -"},
		/* 5: all down: first listed */
		/* 5 */ {EG_PATH_DOWN, EG_PATH_DOWN, EG_PATH_DOWN, "prio a", "pin -"},
	};
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		estate[0] = cases[i].a;
		estate[1] = cases[i].b;
		estate[2] = cases[i].c;
		struct eg_blob b = build();

		k.dport = 443;
		cr_assert_str_eq(decide(&b, k, &v), cases[i].prio, "case %u", i + 1);
		k.dport = 80;
		cr_assert_str_eq(decide(&b, k, &v), cases[i].pin, "case %u", i + 1);
		if (strcmp(cases[i].pin, "pin -") == 0)
			cr_assert_eq(v, EG_VERDICT_NO_EGRESS, "pinned with none eligible drops");
		eg_blob_free(&b);
	}
}

/* Spread 20000 flows; returns the egress index of each. */
static void spread(const struct eg_blob *b, unsigned *out, unsigned n)
{
	srand(42);
	for (unsigned i = 0; i < n; i++) {
		char src[32];
		enum eg_verdict v;
		const struct eg_table_policy *p;
		const struct eg_table_egress *e = NULL;

		snprintf(src, sizeof(src), "10.%u.%u.%u", rand() % 256, rand() % 256, rand() % 256);
		struct eg_flow_key k = v4(src, "203.0.113.1", 6, (uint16_t)(rand() % 65536), 443);

		v = eg_table_decide((const struct eg_table_hdr *)b->data, &k, eg_flow_hash(&k), &p, &e);
		cr_assert_eq(v, EG_VERDICT_FORWARD);
		out[i] = (unsigned)(e - eg_table_egresses((const struct eg_table_hdr *)b->data));
	}
}

Test(table, weighted_selection_moves_only_the_flows_it_must)
{
	enum { FLOWS = 20000 };
	static unsigned before[FLOWS], after[FLOWS];
	unsigned per[4] = {0}, moved = 0;

	add_egress("a", "wan0");
	add_egress("b", "wan1");
	add_egress("c", "wan2");
	add_egress("d", "wan0");
	add_policy("{\"name\":\"spread\",\"priority\":1,\"egresses\":[\"a\",\"b\",\"c\",\"d\"],"
		   "\"strategy\":\"weighted\"}");
	estate[3] = EG_PATH_DOWN;
	struct eg_blob b = build();

	spread(&b, before, FLOWS);
	for (unsigned i = 0; i < FLOWS; i++)
		per[before[i]]++;
	cr_assert_eq(per[3], 0, "a down egress gets no flows");
	for (unsigned i = 0; i < 3; i++)
		cr_assert(per[i] > FLOWS / 3 * 0.85 && per[i] < FLOWS / 3 * 1.15, "egress %u: %u flows", i, per[i]);
	eg_blob_free(&b);

	/* b goes down: exactly b's flows move. */
	estate[1] = EG_PATH_DOWN;
	b = build();
	spread(&b, after, FLOWS);
	for (unsigned i = 0; i < FLOWS; i++) {
		if (before[i] == 1)
			cr_assert_neq(after[i], 1);
		else
			cr_assert_eq(after[i], before[i], "flow %u moved from %u to %u", i, before[i], after[i]);
	}
	eg_blob_free(&b);

	/* b back and d comes up: about a quarter of the flows move, all of them to d. */
	estate[1] = EG_PATH_UP;
	estate[3] = EG_PATH_UP;
	b = build();
	spread(&b, after, FLOWS);
	for (unsigned i = 0; i < FLOWS; i++) {
		if (after[i] != before[i]) {
			cr_assert_eq(after[i], 3, "a flow moved between old egresses");
			moved++;
		}
	}
	cr_assert(moved > FLOWS / 4 * 0.85 && moved < FLOWS / 4 * 1.15, "%u of %u moved", moved, FLOWS);
	eg_blob_free(&b);
}

Test(table, weights_shape_the_spread)
{
	enum { FLOWS = 20000 };
	static unsigned got[FLOWS];
	unsigned per[2] = {0};

	add_egress("a", "wan0");
	add_egress("b", "wan1");
	egs[1].weight = 3;
	add_policy("{\"name\":\"w\",\"priority\":1,\"egresses\":[\"a\",\"b\"],\"strategy\":\"weighted\"}");
	struct eg_blob b = build();

	spread(&b, got, FLOWS);
	for (unsigned i = 0; i < FLOWS; i++)
		per[got[i]]++;
	cr_assert(per[1] > per[0] * 2.5 && per[1] < per[0] * 3.5, "a %u, b %u", per[0], per[1]);
	eg_blob_free(&b);
}

/* The control process's picks scale each member's configured weight by its share. */
Test(table, measured_shares_scale_the_weights)
{
	enum { FLOWS = 20000 };
	static unsigned got[FLOWS];
	unsigned per[2] = {0};
	struct eg_path_pick pick = {.n = 2, .egress = {0, 1}, .share = {EG_SHARE_FULL, EG_SHARE_QUARTER}};

	add_egress("a", "wan0");
	add_egress("b", "wan1");
	egs[1].weight = 2;		/* 2 x a quarter: half of a's 1 x full */
	add_policy("{\"name\":\"w\",\"priority\":1,\"egresses\":[\"a\",\"b\"],\"strategy\":\"weighted\"}");
	struct eg_blob b = build_with(&pick);

	spread(&b, got, FLOWS);
	for (unsigned i = 0; i < FLOWS; i++)
		per[got[i]]++;
	cr_assert(per[0] > per[1] * 1.7 && per[0] < per[1] * 2.3, "a %u, b %u", per[0], per[1]);
	eg_blob_free(&b);
}

Test(table, ingress_port_and_dscp_match)
{
	enum eg_verdict v;

	add_egress("a", "wan0");
	add_egress("b", "wan1");
	add_policy("{\"name\":\"ef\",\"priority\":1,\"match\":{\"dscp\":[46],\"port\":\"lan0\"},\"egresses\":[\"b\"]}");
	add_policy("{\"name\":\"default\",\"priority\":9,\"egresses\":[\"a\"]}");
	struct eg_blob b = build();
	struct eg_flow_key k = v4("10.0.0.1", "8.8.8.8", 17, 5, 5);

	k.dscp = 46;
	cr_assert_str_eq(decide(&b, k, &v), "ef b");
	k.in_port = 1;
	cr_assert_str_eq(decide(&b, k, &v), "default a");
	k.in_port = 0;
	k.dscp = 0;
	cr_assert_str_eq(decide(&b, k, &v), "default a");
	eg_blob_free(&b);
}

Test(table, many_policies_share_selection_tables)
{
	static struct eg_policy_cfg many[2000];
	static uint32_t ids[2000];
	struct eg_blob b, small;
	struct eg_error err;

	add_egress("a", "wan0");
	add_egress("b", "wan1");
	for (unsigned i = 0; i < 2000; i++) {
		char js[200];
		json_t *j;

		snprintf(js, sizeof(js),
			 "{\"name\":\"p%u\",\"priority\":%u,\"match\":{\"dst\":[\"10.%u.%u.0/24\"]},"
			 "\"egresses\":[\"a\",\"b\"],\"strategy\":\"weighted\"}", i, i, i / 256, i % 256);
		j = json_loads(js, 0, NULL);
		cr_assert_eq(eg_config_parse_policy(j, "$", &many[i], &err), 0, "%s", err.msg);
		json_decref(j);
		ids[i] = i;
	}
	struct eg_table_input in = {.dp = &dp, .egresses = egs, .n_egresses = n_egs, .egress_ids = eids,
				    .egress_state = estate, .policies = many, .n_policies = 2000,
				    .policy_ids = ids};

	eg_blob_init(&b, 0);
	cr_assert_eq(eg_table_build(&in, &b, &err), 0);
	/* One shared bucket table, not 2000 of them. */
	cr_assert_lt(b.len, 2000 * EG_SEL_BUCKETS * 2 / 4, "%zu bytes", b.len);
	eg_blob_init(&small, 64 << 10);
	cr_assert_neq(eg_table_build(&in, &small, &err), 0, "a blob limit is honoured");
	cr_assert_str_eq(err.path, "$.policies");
	eg_blob_free(&small);
	eg_blob_free(&b);
	for (unsigned i = 0; i < 2000; i++)
		eg_policy_cfg_free(&many[i]);
}
