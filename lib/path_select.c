#include "path_select.h"

#include <string.h>

#include "table.h"

bool eg_path_meets_sla(const struct eg_path_view *v, const struct eg_sla_cfg *sla)
{
	if (!v->measured)
		return true;
	if (sla->has_max_rtt && v->rtt_ms > sla->max_rtt_ms)
		return false;
	if (sla->has_max_loss && v->loss_pct > sla->max_loss_pct)
		return false;
	if (sla->has_max_jitter && v->jitter_ms > sla->max_jitter_ms)
		return false;
	return true;
}

static bool eligible(const struct eg_policy_cfg *p, const struct eg_path_view *v)
{
	return v->state == EG_PATH_UP && eg_path_meets_sla(v, &p->sla);
}

/* Whether a is preferable to b under the strategy's measure (false when equal). */
static bool preferable(enum eg_strategy s, const struct eg_path_view *a, const struct eg_path_view *b)
{
	if (s != EG_STRATEGY_LOWEST_LATENCY && s != EG_STRATEGY_LOWEST_LOSS)
		return false;		/* list order decides */
	if (!a->measured || !b->measured)
		return a->measured && !b->measured;
	if (s == EG_STRATEGY_LOWEST_LOSS && a->loss_pct != b->loss_pct)
		return a->loss_pct < b->loss_pct;
	return a->rtt_ms < b->rtt_ms;
}

/* The best of idx[] that passes want(), or -1. */
static int best_of(const struct eg_policy_cfg *p, const int *idx, unsigned k, const struct eg_path_view *v,
		   bool (*want)(const struct eg_policy_cfg *, const struct eg_path_view *))
{
	int best = -1;

	for (unsigned j = 0; j < k; j++) {
		if (!want(p, &v[idx[j]]))
			continue;
		if (best < 0 || preferable(p->strategy, &v[idx[j]], &v[best]))
			best = idx[j];
	}
	return best;
}

static bool not_down(const struct eg_policy_cfg *p, const struct eg_path_view *v)
{
	(void)p;
	return v->state != EG_PATH_DOWN;
}

/* Whether an RTT of `better` beats one of `worse` by both latency margins (the share is
 * taken of the worse one). */
static bool rtt_better_by_margin(const struct eg_select_tuning *t, double better, double worse)
{
	double gain = worse - better;

	return gain > 0 && gain >= t->latency_margin_ms && gain >= worse * t->latency_margin_pct / 100.0;
}

/* Whether moving from cur to cand is worth it: strictly better by the margins. For the
 * list-order strategies an eligible earlier entry is always better. */
static bool better_by_margin(enum eg_strategy s, const struct eg_select_tuning *t, const struct eg_path_view *cand,
			     const struct eg_path_view *cur, bool earlier)
{
	if (s == EG_STRATEGY_PRIORITY || s == EG_STRATEGY_PINNED)
		return earlier;
	if (!cand->measured || !cur->measured)
		return false;
	if (s == EG_STRATEGY_LOWEST_LOSS && cand->loss_pct != cur->loss_pct)
		return cand->loss_pct < cur->loss_pct && cur->loss_pct - cand->loss_pct >= t->loss_margin_pct;
	return rtt_better_by_margin(t, cand->rtt_ms, cur->rtt_ms);
}

static int position(const int *idx, unsigned k, int e)
{
	for (unsigned j = 0; j < k; j++)
		if (idx[j] == e)
			return (int)j;
	return -1;
}

static void single(struct eg_path_pick *out, int e)
{
	out->n = 1;
	out->egress[0] = (uint16_t)e;
	out->share[0] = EG_SHARE_FULL;
}

/* A weighted member's share from how it compares with the best eligible figures: each
 * way it is worse by the margins (RTT, loss, RTT beyond twice the best) halves it, down
 * to a quarter. Unmeasured paths have nothing against them. */
static uint8_t share_of(const struct eg_select_tuning *t, const struct eg_path_view *v, double best_rtt,
			double best_loss)
{
	unsigned halvings = 0;

	if (!v->measured)
		return EG_SHARE_FULL;
	if (rtt_better_by_margin(t, best_rtt, v->rtt_ms))
		halvings += 1 + (v->rtt_ms > 2 * best_rtt);
	if (v->loss_pct > best_loss && v->loss_pct - best_loss >= t->loss_margin_pct)
		halvings++;
	return (uint8_t)(EG_SHARE_FULL >> (halvings > 2 ? 2 : halvings));
}

/* Weighted: every eligible member with its share; with hold, joining and share changes
 * wait out the hold-down (leaving does not). Returns how many members carry flows. */
static unsigned weighted(const struct eg_policy_cfg *p, const int *idx, unsigned k, const struct eg_path_view *v,
			 const struct eg_select_tuning *t, struct eg_path_hold *hold, uint64_t now_ns,
			 struct eg_path_pick *out)
{
	uint8_t want[EG_MAX_POLICY_EGRESSES] = {0};
	double best_rtt = 0, best_loss = 0;
	bool any_measured = false, kept = false;

	for (unsigned j = 0; j < k; j++) {
		const struct eg_path_view *x = &v[idx[j]];

		if (!eligible(p, x) || !x->measured)
			continue;
		if (!any_measured || x->rtt_ms < best_rtt)
			best_rtt = x->rtt_ms;
		if (!any_measured || x->loss_pct < best_loss)
			best_loss = x->loss_pct;
		any_measured = true;
	}
	for (unsigned j = 0; j < k; j++)
		if (eligible(p, &v[idx[j]]))
			want[j] = share_of(t, &v[idx[j]], best_rtt, best_loss);
	if (hold) {
		for (unsigned j = 0; j < k; j++) {
			if (!want[j])
				hold->share[j] = EG_SHARE_NONE;	/* leaves at once */
			kept |= hold->share[j] != EG_SHARE_NONE;
		}
		for (unsigned j = 0; j < k; j++) {
			if (!kept || want[j] == hold->share[j]) {
				hold->share[j] = want[j];	/* nobody left to hold for */
			} else if (hold->next_share[j] != want[j]) {
				hold->next_share[j] = want[j];
				hold->next_share_since_ns[j] = now_ns;
			} else if (now_ns - hold->next_share_since_ns[j] >= t->hold_down_ns) {
				hold->share[j] = want[j];
			}
			if (hold->share[j] == want[j])
				hold->next_share[j] = want[j];
		}
		for (unsigned j = k; j < EG_MAX_POLICY_EGRESSES; j++)
			hold->share[j] = hold->next_share[j] = EG_SHARE_NONE;
		memcpy(want, hold->share, sizeof(want));
	}
	for (unsigned j = 0; j < k; j++)
		if (want[j]) {
			out->egress[out->n] = (uint16_t)idx[j];
			out->share[out->n++] = want[j];
		}
	return out->n;
}

void eg_path_select(const struct eg_policy_cfg *p, const int *idx, unsigned k,
		    const struct eg_path_view *views, const struct eg_select_tuning *t,
		    struct eg_path_hold *hold, uint64_t now_ns, struct eg_path_pick *out)
{
	int best;

	memset(out, 0, sizeof(*out));
	if (p->action == EG_ACTION_DROP || k == 0) {
		if (hold)
			eg_path_hold_init(hold);
		return;
	}
	if (p->strategy == EG_STRATEGY_WEIGHTED && weighted(p, idx, k, views, t, hold, now_ns, out))
		return;
	best = best_of(p, idx, k, views, eligible);
	if (best < 0) {
		if (hold)
			eg_path_hold_init(hold);
		if (p->strategy == EG_STRATEGY_PINNED)
			return;
		best = best_of(p, idx, k, views, not_down);
		single(out, best >= 0 ? best : idx[0]);
		out->fallback = true;
		if (hold)
			hold->current = position(idx, k, out->egress[0]);
		return;
	}
	if (!hold || p->strategy == EG_STRATEGY_WEIGHTED) {
		single(out, best);
		return;
	}
	int best_pos = position(idx, k, best), cur_pos = hold->current;
	int cur = cur_pos >= 0 && (unsigned)cur_pos < k ? idx[cur_pos] : -1;

	if (cur < 0 || !eligible(p, &views[cur])) {
		/* Nothing held yet, or the current choice failed: the best, at once. */
		hold->current = best_pos;
		hold->candidate = -1;
		single(out, best);
		return;
	}
	if (cur == best || !better_by_margin(p->strategy, t, &views[best], &views[cur], best_pos < cur_pos)) {
		hold->candidate = -1;		/* not enough better: stay */
		single(out, cur);
		return;
	}
	/* Better by the margin: it must stay so for the hold-down time. */
	if (hold->candidate != best_pos) {
		hold->candidate = best_pos;
		hold->candidate_since_ns = now_ns;
	}
	if (now_ns - hold->candidate_since_ns >= t->hold_down_ns) {
		hold->current = best_pos;
		hold->candidate = -1;
	}
	single(out, idx[hold->current]);
}
