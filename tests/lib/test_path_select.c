/* Path selection as a table: path metrics in, the egress each strategy picks out,
 * including SLA violations on every path, pinned with none eligible, and hold-down. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "path_select.h"
#include "table.h"

#define MS 1000000ull
enum { A, B, C };
#define UP EG_PATH_UP
#define DOWN EG_PATH_DOWN
#define M(r, l, j) {.state = UP, .measured = true, .rtt_ms = r, .loss_pct = l, .jitter_ms = j}

static const struct eg_select_tuning tuning = {
	.hold_down_ns = 5000 * MS, .latency_margin_ms = 5, .latency_margin_pct = 10, .loss_margin_pct = 1,
};

static struct eg_policy_cfg policy(enum eg_strategy s, double max_rtt, double max_loss, double max_jitter)
{
	struct eg_policy_cfg p = {.strategy = s, .n_egresses = 3};

	strcpy(p.name, "p");
	if (max_rtt >= 0)
		p.sla.has_max_rtt = true, p.sla.max_rtt_ms = max_rtt;
	if (max_loss >= 0)
		p.sla.has_max_loss = true, p.sla.max_loss_pct = max_loss;
	if (max_jitter >= 0)
		p.sla.has_max_jitter = true, p.sla.max_jitter_ms = max_jitter;
	return p;
}

static const int list[3] = {A, B, C};

Test(path_select, strategies_and_slas)
{
	static const struct {
		const char *what;
		enum eg_strategy s;
		double max_rtt, max_loss, max_jitter;	/* < 0: no limit */
		struct eg_path_view v[3];
		unsigned n;
		int pick[3];
		bool fallback;
	} table[] = {
		{"priority: the first in list order", EG_STRATEGY_PRIORITY, -1, -1, -1,
		 {M(50, 0, 1), M(10, 0, 1), M(20, 0, 1)}, 1, {A}, false},
		{"priority: a down first entry is skipped", EG_STRATEGY_PRIORITY, -1, -1, -1,
		 {{.state = DOWN}, M(10, 0, 1), M(20, 0, 1)}, 1, {B}, false},
		{"priority: an SLA breach is skipped", EG_STRATEGY_PRIORITY, 40, -1, -1,
		 {M(50, 0, 1), M(10, 0, 1), M(20, 0, 1)}, 1, {B}, false},
		{"lowest-latency", EG_STRATEGY_LOWEST_LATENCY, -1, -1, -1,
		 {M(50, 0, 1), M(10, 5, 1), M(20, 0, 1)}, 1, {B}, false},
		{"lowest-latency within the loss SLA", EG_STRATEGY_LOWEST_LATENCY, -1, 1, -1,
		 {M(50, 0, 1), M(10, 5, 1), M(20, 0, 1)}, 1, {C}, false},
		{"lowest-latency within the jitter SLA", EG_STRATEGY_LOWEST_LATENCY, -1, -1, 10,
		 {M(50, 0, 1), M(10, 0, 30), M(20, 0, 11)}, 1, {A}, false},
		{"lowest-latency: a measured path beats an unmeasured one", EG_STRATEGY_LOWEST_LATENCY, -1, -1, -1,
		 {{.state = UP}, M(90, 0, 1), M(20, 0, 1)}, 1, {C}, false},
		{"lowest-latency: nothing measured, list order", EG_STRATEGY_LOWEST_LATENCY, 10, 0, 0,
		 {{.state = UP}, {.state = UP}, {.state = UP}}, 1, {A}, false},
		{"lowest-loss, then latency", EG_STRATEGY_LOWEST_LOSS, -1, -1, -1,
		 {M(50, 2, 1), M(30, 0.5, 1), M(20, 0.5, 1)}, 1, {C}, false},
		{"weighted: every eligible path", EG_STRATEGY_WEIGHTED, 100, -1, -1,
		 {M(50, 0, 1), M(150, 0, 1), M(20, 0, 1)}, 2, {A, C}, false},
		{"pinned: first eligible", EG_STRATEGY_PINNED, 40, -1, -1,
		 {M(50, 0, 1), M(30, 0, 1), M(20, 0, 1)}, 1, {B}, false},
		{"pinned with none eligible drops", EG_STRATEGY_PINNED, 5, -1, -1,
		 {M(50, 0, 1), M(30, 0, 1), M(20, 0, 1)}, 0, {0}, false},
		{"pinned with all down drops", EG_STRATEGY_PINNED, -1, -1, -1,
		 {{.state = DOWN}, {.state = DOWN}, {.state = DOWN}}, 0, {0}, false},
		{"every path breaks the SLA: lowest-latency falls back to the best", EG_STRATEGY_LOWEST_LATENCY, 5, -1, -1,
		 {M(50, 0, 1), M(30, 0, 1), M(40, 0, 1)}, 1, {B}, true},
		{"every path breaks the SLA: lowest-loss falls back to the least lossy", EG_STRATEGY_LOWEST_LOSS, -1, 0.1, -1,
		 {M(50, 3, 1), M(30, 9, 1), M(40, 2, 1)}, 1, {C}, true},
		{"every path breaks the SLA: priority falls back to the first not down", EG_STRATEGY_PRIORITY, 5, -1, -1,
		 {{.state = DOWN}, M(30, 0, 1), M(40, 0, 1)}, 1, {B}, true},
		{"weighted, none eligible: the first not down", EG_STRATEGY_WEIGHTED, 5, -1, -1,
		 {{.state = DOWN}, M(30, 0, 1), M(40, 0, 1)}, 1, {B}, true},
		{"all down: the first in the list", EG_STRATEGY_LOWEST_LATENCY, -1, -1, -1,
		 {{.state = DOWN}, {.state = DOWN}, {.state = DOWN}}, 1, {A}, true},
	};

	for (unsigned t = 0; t < sizeof(table) / sizeof(table[0]); t++) {
		struct eg_policy_cfg p = policy(table[t].s, table[t].max_rtt, table[t].max_loss, table[t].max_jitter);
		struct eg_path_pick out;

		eg_path_select(&p, list, 3, table[t].v, &tuning, NULL, 0, &out);
		cr_expect_eq(out.n, table[t].n, "%s: %u egresses", table[t].what, out.n);
		for (unsigned j = 0; j < out.n && j < table[t].n; j++)
			cr_expect_eq(out.egress[j], table[t].pick[j], "%s: [%u] is %u", table[t].what, j, out.egress[j]);
		cr_expect_eq(out.fallback, table[t].fallback, "%s: fallback", table[t].what);
	}
}

Test(path_select, a_drop_policy_picks_nothing)
{
	struct eg_policy_cfg p = policy(EG_STRATEGY_PRIORITY, -1, -1, -1);
	struct eg_path_view v[3] = {M(1, 0, 0), M(1, 0, 0), M(1, 0, 0)};
	struct eg_path_pick out;

	p.action = EG_ACTION_DROP;
	eg_path_select(&p, list, 3, v, &tuning, NULL, 0, &out);
	cr_expect_eq(out.n, 0);
}

/* One decision at time t (ms) with hold state h; returns the egress. */
static int at(struct eg_policy_cfg *p, struct eg_path_view *v, struct eg_path_hold *h, uint64_t t_ms)
{
	struct eg_path_pick out;

	eg_path_select(p, list, 3, v, &tuning, h, t_ms * MS, &out);
	cr_assert_eq(out.n, 1);
	return out.egress[0];
}

Test(path_select, hold_down_before_moving_back_and_failover_at_once)
{
	struct eg_policy_cfg p = policy(EG_STRATEGY_LOWEST_LATENCY, 150, -1, -1);
	struct eg_path_view v[3] = {M(20, 0, 1), M(30, 0, 1), {.state = DOWN}};
	struct eg_path_hold h;

	eg_path_hold_init(&h);
	cr_expect_eq(at(&p, v, &h, 0), A, "best at start");
	v[A].rtt_ms = 100;			/* worse, still eligible: B is better by 70 ms */
	cr_expect_eq(at(&p, v, &h, 100), A, "held: B has been better for 0 ms");
	cr_expect_eq(at(&p, v, &h, 4000), A, "held: 3.9 s < 5 s");
	cr_expect_eq(at(&p, v, &h, 5100), B, "better for the whole hold-down: moved");
	v[A].rtt_ms = 20;			/* A recovers */
	cr_expect_eq(at(&p, v, &h, 5200), B, "back only after the hold-down");
	v[A].rtt_ms = 28;			/* better by 2 ms only: below the margin */
	cr_expect_eq(at(&p, v, &h, 12000), B, "a gain under the margin never moves flows");
	v[A].rtt_ms = 20;
	cr_expect_eq(at(&p, v, &h, 12100), B, "the timer restarts when the gain returns");
	cr_expect_eq(at(&p, v, &h, 17100), A, "and moves back after the hold-down");
	v[A].state = DOWN;
	cr_expect_eq(at(&p, v, &h, 17200), B, "a down path is left at once");
	v[A].state = UP;
	v[B].rtt_ms = 200;			/* B breaks the SLA: left at once too */
	cr_expect_eq(at(&p, v, &h, 17300), A, "an SLA breach is left at once");
}

Test(path_select, priority_returns_to_the_first_after_the_hold_down)
{
	struct eg_policy_cfg p = policy(EG_STRATEGY_PRIORITY, -1, -1, -1);
	struct eg_path_view v[3] = {M(20, 0, 1), M(30, 0, 1), M(40, 0, 1)};
	struct eg_path_hold h;

	eg_path_hold_init(&h);
	cr_expect_eq(at(&p, v, &h, 0), A);
	v[A].state = DOWN;
	cr_expect_eq(at(&p, v, &h, 100), B);
	v[A].state = UP;
	cr_expect_eq(at(&p, v, &h, 200), B);
	v[A].state = DOWN;			/* flaps again inside the hold-down */
	cr_expect_eq(at(&p, v, &h, 300), B);
	v[A].state = UP;
	cr_expect_eq(at(&p, v, &h, 400), B, "the hold-down restarts after a flap");
	cr_expect_eq(at(&p, v, &h, 5300), B);
	cr_expect_eq(at(&p, v, &h, 5400), A);
}

Test(path_select, lowest_loss_needs_the_loss_margin)
{
	struct eg_policy_cfg p = policy(EG_STRATEGY_LOWEST_LOSS, -1, -1, -1);
	struct eg_path_view v[3] = {M(20, 2, 1), M(30, 1.5, 1), {.state = DOWN}};
	struct eg_path_hold h;

	eg_path_hold_init(&h);
	h.current = 0;		/* position of A in the list */
	cr_expect_eq(at(&p, v, &h, 0), A, "0.5 points better is under the 1 point margin");
	v[B].loss_pct = 0.5;
	cr_expect_eq(at(&p, v, &h, 100), A);
	cr_expect_eq(at(&p, v, &h, 5100), B);
}

Test(path_select, the_table_builds_from_path_state_alone_without_picks)
{
	/* lib/table.c chooses from egress_state when the control process gives no picks. */
	struct eg_dataplane_cfg dp = {.n_ports = 1};
	struct eg_egress_cfg egs[3];
	struct eg_policy_cfg p = policy(EG_STRATEGY_PRIORITY, -1, -1, -1);
	uint32_t ids[3] = {1, 2, 3}, pid = 1;
	uint8_t state[3] = {DOWN, UP, UP};
	struct eg_sel_member m[EG_MAX_POLICY_EGRESSES];
	struct eg_table_input in = {.dp = &dp, .egresses = egs, .n_egresses = 3, .egress_ids = ids,
				    .egress_state = state, .policies = &p, .n_policies = 1, .policy_ids = &pid};

	strcpy(dp.ports[0].name, "wan0");
	dp.ports[0].role = EG_ROLE_UPLINK;
	memset(egs, 0, sizeof(egs));
	for (unsigned i = 0; i < 3; i++) {
		snprintf(egs[i].name, sizeof(egs[i].name), "e%u", i);
		strcpy(egs[i].port, "wan0");
		egs[i].weight = 1;
		snprintf(p.egresses[i], sizeof(p.egresses[i]), "e%u", 2 - i);	/* e2, e1, e0 */
	}
	cr_assert_eq(eg_table_policy_members(&in, 0, m), 1);
	cr_expect_eq(m[0].value, 2, "e2 is first in the list and up");
	state[2] = DOWN;
	cr_assert_eq(eg_table_policy_members(&in, 0, m), 1);
	cr_expect_eq(m[0].value, 1);
}

/* Weighted: the share each member gets of its configured weight, from its figures. */
Test(path_select, weighted_shares_follow_the_figures)
{
	static const struct {
		const char *what;
		struct eg_path_view v[3];
		uint8_t share[3];	/* per list position, NONE when not a member */
	} table[] = {
		{"within the margins of the best: full shares",
		 {M(20, 0, 1), M(24, 0.5, 1), M(21, 0, 1)}, {EG_SHARE_FULL, EG_SHARE_FULL, EG_SHARE_FULL}},
		{"worse by the RTT margin (10 ms, 33%): half",
		 {M(20, 0, 1), M(30, 0, 1), M(20, 0, 1)}, {EG_SHARE_FULL, EG_SHARE_HALF, EG_SHARE_FULL}},
		{"beyond twice the best RTT: a quarter",
		 {M(20, 0, 1), M(41, 0, 1), M(20, 0, 1)}, {EG_SHARE_FULL, EG_SHARE_QUARTER, EG_SHARE_FULL}},
		{"worse by the loss margin: half; in both RTT and loss: a quarter",
		 {M(20, 0, 1), M(20, 2, 1), M(30, 3, 1)}, {EG_SHARE_FULL, EG_SHARE_HALF, EG_SHARE_QUARTER}},
		{"compared with the best eligible path only (A breaks the 100 ms SLA)",
		 {M(5, 0, 1), M(40, 0, 1), M(60, 0, 1)}, {EG_SHARE_NONE, EG_SHARE_FULL, EG_SHARE_HALF}},
		{"an unmeasured path has nothing against it",
		 {{.state = UP}, M(20, 0, 1), M(90, 0, 1)}, {EG_SHARE_FULL, EG_SHARE_FULL, EG_SHARE_QUARTER}},
	};

	for (unsigned t = 0; t < sizeof(table) / sizeof(table[0]); t++) {
		struct eg_policy_cfg p = policy(EG_STRATEGY_WEIGHTED, 100, -1, -1);
		struct eg_path_view v[3];
		struct eg_path_pick out;
		uint8_t got[3] = {0};

		memcpy(v, table[t].v, sizeof(v));
		if (t == 4)
			v[A].state = EG_PATH_DOWN;	/* the 5 ms path is not eligible */
		eg_path_select(&p, list, 3, v, &tuning, NULL, 0, &out);
		for (unsigned j = 0; j < out.n; j++)
			got[out.egress[j]] = out.share[j];
		for (unsigned j = 0; j < 3; j++)
			cr_expect_eq(got[j], table[t].share[j], "%s: position %u has %u", table[t].what, j, got[j]);
	}
}

/* One weighted decision with hold state; returns the shares per list position. */
static const uint8_t *shares_at(struct eg_policy_cfg *p, struct eg_path_view *v, struct eg_path_hold *h,
				uint64_t t_ms)
{
	static uint8_t got[3];
	struct eg_path_pick out;

	eg_path_select(p, list, 3, v, &tuning, h, t_ms * MS, &out);
	memset(got, 0, sizeof(got));
	for (unsigned j = 0; j < out.n; j++)
		got[out.egress[j]] = out.share[j];
	return got;
}

#define SHARES(a, b, c) ((const uint8_t[3]){a, b, c})
#define expect_shares(got, want, what) \
	cr_expect_arr_eq(got, want, 3, "%s: got %u %u %u", what, (got)[0], (got)[1], (got)[2])

Test(path_select, weighted_holds_joins_and_share_changes_but_not_leaving)
{
	struct eg_policy_cfg p = policy(EG_STRATEGY_WEIGHTED, 100, -1, -1);
	struct eg_path_view v[3] = {M(20, 0, 1), M(20, 0, 1), M(20, 0, 1)};
	struct eg_path_hold h;
	const uint8_t *got;

	eg_path_hold_init(&h);
	got = shares_at(&p, v, &h, 0);
	expect_shares(got, SHARES(4, 4, 4), "all full at start, at once");
	cr_expect_not(eg_path_hold_pending(&h));
	v[B].rtt_ms = 35;			/* worse by the margin: half, after the hold-down */
	got = shares_at(&p, v, &h, 100);
	expect_shares(got, SHARES(4, 4, 4), "held");
	cr_expect(eg_path_hold_pending(&h), "a share change is being timed");
	got = shares_at(&p, v, &h, 5100);
	expect_shares(got, SHARES(4, 2, 4), "halved after the hold-down");
	cr_expect_not(eg_path_hold_pending(&h));
	v[C].state = DOWN;
	got = shares_at(&p, v, &h, 5200);
	expect_shares(got, SHARES(4, 2, 0), "a down member leaves at once");
	v[C].state = UP;
	got = shares_at(&p, v, &h, 5300);
	expect_shares(got, SHARES(4, 2, 0), "coming back waits for the hold-down");
	v[B].rtt_ms = 20;			/* B recovers inside C's hold-down */
	got = shares_at(&p, v, &h, 6000);
	expect_shares(got, SHARES(4, 2, 0), "B's return to full is timed too");
	got = shares_at(&p, v, &h, 10300);
	expect_shares(got, SHARES(4, 2, 4), "C back after its hold-down");
	v[B].rtt_ms = 35;			/* B worse again before its timer ran out */
	got = shares_at(&p, v, &h, 11000);
	expect_shares(got, SHARES(4, 2, 4), "the pending change to full is cancelled");
	cr_expect_not(eg_path_hold_pending(&h));
	v[A].state = v[B].state = v[C].state = DOWN;
	got = shares_at(&p, v, &h, 11100);
	expect_shares(got, SHARES(4, 0, 0), "all down: the first in the list carries the flows (fallback)");
	v[B].state = UP;
	got = shares_at(&p, v, &h, 11200);
	expect_shares(got, SHARES(0, 4, 0), "with no member left, one that comes back joins at once");
}
