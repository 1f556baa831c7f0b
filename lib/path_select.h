/* Which of a policy's egresses carry its flows, from what is known of each path (issue 5,
 * API.md "Strategies").
 *
 * An egress is eligible for a policy while it is up and meets the policy's SLA
 * (max RTT, loss, jitter; a path without measurements meets every SLA, as there is
 * nothing to hold against it). Among the eligible:
 *   priority, pinned   the first in the policy's list;
 *   lowest-latency     the lowest mean RTT (list order breaks ties and goes first for
 *                      paths not measured yet);
 *   lowest-loss        the lowest loss, then the lowest RTT;
 *   weighted           all of them, each with its configured weight times a share
 *                      from its figures: full while it is within the margins of the
 *                      best eligible path, half when worse by a margin in RTT or loss,
 *                      a quarter when worse in both or more than twice the best RTT.
 * With none eligible, pinned drops and the others fall back to the best of the paths
 * that are not down by the same measure (list order for priority), then to the first.
 *
 * Hysteresis, for the strategies that put all flows on one egress: while the current
 * choice stays eligible, flows move to a better one only after it has been better by the
 * margin for the whole hold-down time. A current choice that stops being eligible is
 * left at once (failover). Weighted holds each member's share the same way: a member
 * that stops being eligible leaves at once, while joining (or coming back) and a change
 * of share wait for the hold-down, unless no member is left. Consistent hashing then
 * moves only the flows of the members that changed (flow_select.h). */
#ifndef EG_PATH_SELECT_H
#define EG_PATH_SELECT_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

struct eg_path_view {
	/* enum eg_path_state. Only an up path is eligible; degraded marks a path known to
	 * break SLAs without figures to show it (set by hand, or in tests), which the
	 * fallback still prefers to a down one. The control process passes up or down and
	 * the measured figures. */
	uint8_t state;
	bool measured;			/* the figures below come from probes */
	double rtt_ms, loss_pct, jitter_ms;
};

struct eg_select_tuning {
	uint64_t hold_down_ns;		/* 0: move as soon as something is better */
	double latency_margin_ms;	/* better means lower RTT by at least this ... */
	double latency_margin_pct;	/* ... and by at least this share of the current RTT */
	double loss_margin_pct;		/* better means lower loss by at least these points */
};

/* A weighted member's share of its configured weight, from its figures. */
enum eg_path_share {
	EG_SHARE_NONE = 0,		/* not a member */
	EG_SHARE_QUARTER = 1,
	EG_SHARE_HALF = 2,
	EG_SHARE_FULL = 4,
};

/* Per policy, what hysteresis remembers between decisions: positions in the policy's
 * egress list, so the memory stays valid while the list does, whatever else changes. */
struct eg_path_hold {
	int32_t current;		/* the egress carrying the flows, -1: none yet */
	int32_t candidate;		/* the better one being timed, -1: none */
	uint64_t candidate_since_ns;
	/* weighted: each position's share in force, and a different one being timed */
	uint8_t share[EG_MAX_POLICY_EGRESSES];
	uint8_t next_share[EG_MAX_POLICY_EGRESSES];
	uint64_t next_share_since_ns[EG_MAX_POLICY_EGRESSES];
};

struct eg_path_pick {
	unsigned n;			/* 0: drop */
	uint16_t egress[EG_MAX_POLICY_EGRESSES];	/* indexes into the views */
	uint8_t share[EG_MAX_POLICY_EGRESSES];		/* enum eg_path_share, per egress[] */
	bool fallback;			/* nothing was eligible: a fallback carries the flows */
};

static inline void eg_path_hold_init(struct eg_path_hold *h)
{
	*h = (struct eg_path_hold){.current = -1, .candidate = -1};
}

/* Whether a hold-down is being timed (the decision may change with time alone). */
static inline bool eg_path_hold_pending(const struct eg_path_hold *h)
{
	if (h->candidate >= 0)
		return true;
	for (unsigned j = 0; j < EG_MAX_POLICY_EGRESSES; j++)
		if (h->next_share[j] != h->share[j])
			return true;
	return false;
}

bool eg_path_meets_sla(const struct eg_path_view *v, const struct eg_sla_cfg *sla);

/* idx[k]: the policy's egresses in list order, as indexes into views. hold may be NULL
 * (no memory: the best now wins). */
void eg_path_select(const struct eg_policy_cfg *p, const int *idx, unsigned k,
		    const struct eg_path_view *views, const struct eg_select_tuning *t,
		    struct eg_path_hold *hold, uint64_t now_ns, struct eg_path_pick *out);

#endif
