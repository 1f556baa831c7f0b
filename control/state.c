#include "state.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "persist.h"
#include "rpc.h"

#define LOG(fmt, ...) fprintf(stderr, "egress-control: " fmt "\n", ##__VA_ARGS__)

enum {
	HEARTBEAT_STALE_MS = 2000,	/* the dataplane's service loop beats every ~1 ms */
	ATTACH_RETRY_MS = 200,
};

/* Policy ids must survive policy.set for policies that keep their name, among up to
 * EG_MAX_POLICIES of them: names are looked up through a small open-addressing index over
 * any array of structs whose first member is the name. */
struct name_index {
	unsigned mask;
	int *slot;			/* index into the array, -1 empty */
	const char *base;
	size_t stride;
};

static uint32_t name_hash(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h;
}

static const char *name_at(const struct name_index *ix, int i)
{
	return ix->base + (size_t)i * ix->stride;
}

static int name_index_build(struct name_index *ix, const void *array, size_t stride, unsigned n)
{
	unsigned size = 16;

	while (size < n * 2)
		size <<= 1;
	ix->mask = size - 1;
	ix->base = array;
	ix->stride = stride;
	ix->slot = malloc(size * sizeof(int));
	if (!ix->slot)
		return -ENOMEM;
	memset(ix->slot, 0xff, size * sizeof(int));
	for (unsigned i = 0; i < n; i++) {
		uint32_t h = name_hash(name_at(ix, (int)i));

		while (ix->slot[h & ix->mask] >= 0)
			h++;
		ix->slot[h & ix->mask] = (int)i;
	}
	return 0;
}

static int name_index_find(const struct name_index *ix, const char *name)
{
	for (uint32_t h = name_hash(name);; h++) {
		int i = ix->slot[h & ix->mask];

		if (i < 0 || strcmp(name_at(ix, i), name) == 0)
			return i;
	}
}

static void free_policies(struct eg_policy_cfg *p, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		eg_policy_cfg_free(&p[i]);
	free(p);
}

int cp_state_egress_index(const struct cp_state *st, const char *name)
{
	for (unsigned i = 0; i < st->n_egresses; i++)
		if (strcmp(st->egresses[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* Counter sums straight from shared memory (0 when not mapped). */
static void egress_sum(const struct cp_state *st, uint32_t id, uint64_t *pkts, uint64_t *bytes)
{
	*pkts = *bytes = 0;
	if (st->mapped)
		eg_shm_egress_sum(st->shm.hdr, id, pkts, bytes);
}

static uint64_t policy_sum(const struct cp_state *st, uint32_t id)
{
	uint64_t n = 0;

	if (!st->mapped)
		return 0;
	for (unsigned w = 0; w < st->shm.hdr->n_workers; w++)
		n += eg_shm_policy_hits(eg_shm_worker(st->shm.hdr, w))[id];
	return n;
}

/* Baselines, so that an id handed out again, or a control process that restarted against
 * a running dataplane, counts from zero. */
static uint64_t egress_base_pkts[EG_MAX_EGRESSES], egress_base_bytes[EG_MAX_EGRESSES];
static uint64_t *policy_base;

/* Gives every entry of ids[] still UINT32_MAX the lowest id below max that used[] does not
 * mark, marking it. -ENOSPC when none is left. */
static int take_free_ids(uint32_t *ids, unsigned n, uint8_t *used, unsigned max, bool *fresh)
{
	unsigned next = 0;

	for (unsigned i = 0; i < n; i++) {
		if (fresh)
			fresh[i] = ids[i] == UINT32_MAX;
		if (ids[i] != UINT32_MAX)
			continue;
		while (next < max && used[next])
			next++;
		if (next == max)
			return -ENOSPC;
		ids[i] = next;
		used[next] = 1;
	}
	return 0;
}

_Static_assert(offsetof(struct eg_policy_cfg, name) == 0 && offsetof(struct eg_table_policy, name) == 0 &&
	       offsetof(struct eg_table_egress, name) == 0, "name_index needs the name first");

/* On attach, a restarted control process takes over the counter ids of the table the
 * dataplane runs, so that counters of egresses and policies that kept their names go on
 * counting; everything else gets a free id and a baseline. Safe to read: this process is
 * the only writer of table slots and is not publishing. */
static int adopt_ids(struct cp_state *st)
{
	const struct eg_shm_hdr *h = st->shm.hdr;
	const struct eg_table_hdr *t;
	struct name_index ix = {0};
	uint8_t eused[EG_MAX_EGRESSES] = {0};
	uint8_t *pused = calloc(EG_MAX_POLICIES, 1);
	uint32_t *eids = calloc(st->n_egresses + 1, sizeof(*eids));
	uint32_t *pids = calloc(st->n_policies + 1, sizeof(*pids));
	bool *fresh_e = calloc(st->n_egresses + 1, sizeof(bool));
	bool *fresh_p = calloc(st->n_policies + 1, sizeof(bool));
	uint64_t gen;
	int rc = -ENOMEM;

	/* Everything is worked out in temporaries: on failure the state keeps its ids. */
	if (!pused || !eids || !pids || !fresh_e || !fresh_p)
		goto out;
	t = eg_shm_table_acquire(h, &gen);
	if (t && eg_table_validate(t, h->slot_size) != 0)
		t = NULL;
	for (unsigned i = 0; i < st->n_egresses; i++) {
		eids[i] = UINT32_MAX;
		for (unsigned j = 0; t && j < t->n_egresses; j++) {
			const struct eg_table_egress *e = &eg_table_egresses(t)[j];

			if (strcmp(e->name, st->egresses[i].name) == 0 && e->id < EG_MAX_EGRESSES && !eused[e->id]) {
				eids[i] = e->id;
				eused[e->id] = 1;
			}
		}
	}
	if (t && name_index_build(&ix, eg_table_policies(t), sizeof(struct eg_table_policy), t->n_policies))
		goto out;
	for (unsigned i = 0; i < st->n_policies; i++) {
		int j = t ? name_index_find(&ix, st->policies[i].name) : -1;
		uint32_t id = j >= 0 ? eg_table_policies(t)[j].id : UINT32_MAX;

		pids[i] = id < EG_MAX_POLICIES && !pused[id] ? id : UINT32_MAX;
		if (pids[i] != UINT32_MAX)
			pused[id] = 1;
	}
	if ((rc = take_free_ids(eids, st->n_egresses, eused, EG_MAX_EGRESSES, fresh_e)) != 0 ||
	    (rc = take_free_ids(pids, st->n_policies, pused, EG_MAX_POLICIES, fresh_p)) != 0)
		goto out;
	for (unsigned i = 0; i < st->n_egresses; i++) {
		uint32_t id = eids[i];

		st->egress_ids[i] = id;
		egress_base_pkts[id] = egress_base_bytes[id] = 0;
		if (fresh_e[i])
			egress_sum(st, id, &egress_base_pkts[id], &egress_base_bytes[id]);
	}
	for (unsigned i = 0; i < st->n_policies; i++) {
		uint32_t id = pids[i];

		st->policy_ids[i] = id;
		policy_base[id] = fresh_p[i] ? policy_sum(st, id) : 0;
	}
	memcpy(st->egress_id_used, eused, sizeof(eused));
	free(st->policy_id_used);
	st->policy_id_used = pused;
	pused = NULL;
out:
	free(ix.slot);
	free(pused);
	free(eids);
	free(pids);
	free(fresh_e);
	free(fresh_p);
	return rc;
}

void cp_state_egress_counters(const struct cp_state *st, unsigned i, uint64_t *pkts, uint64_t *bytes)
{
	uint32_t id = st->egress_ids[i];

	egress_sum(st, id, pkts, bytes);
	*pkts -= *pkts >= egress_base_pkts[id] ? egress_base_pkts[id] : *pkts;
	*bytes -= *bytes >= egress_base_bytes[id] ? egress_base_bytes[id] : *bytes;
}

uint64_t cp_state_policy_hits(const struct cp_state *st, unsigned i)
{
	uint32_t id = st->policy_ids[i];
	uint64_t n = policy_sum(st, id);

	return n >= policy_base[id] ? n - policy_base[id] : 0;
}

/* A direct egress is up while its port has link, an IPsec egress while its SAs are
 * installed and active, a WireGuard egress while its peer is installed (its session comes
 * on demand: the first packet starts the handshake). */
static uint8_t egress_state_now(const struct cp_state *st, const struct eg_egress_cfg *e)
{
	int port;

	if (e->type == EG_EGRESS_IPSEC)
		return cp_ipsec_egress_up(st, e) ? EG_PATH_UP : EG_PATH_DOWN;
	if (e->type == EG_EGRESS_WIREGUARD)
		return cp_wg_egress_up(st, e) ? EG_PATH_UP : EG_PATH_DOWN;
	if (e->type != EG_EGRESS_DIRECT)
		return EG_PATH_DOWN;
	if (!st->mapped)
		return EG_PATH_UP;
	port = eg_config_port_index(&st->cfg.dataplane, e->port);
	if (port < 0)
		return EG_PATH_DOWN;
	return __atomic_load_n(&st->shm.hdr->ports[port].link_up, __ATOMIC_RELAXED) ? EG_PATH_UP
										     : EG_PATH_DOWN;
}

static struct eg_select_tuning tuning(const struct cp_state *st)
{
	const struct eg_control_cfg *c = &st->cfg.control;

	return (struct eg_select_tuning){
		.hold_down_ns = (uint64_t)c->hold_down_ms * 1000000ull,
		.latency_margin_ms = c->latency_margin_ms,
		.latency_margin_pct = c->latency_margin_pct,
		.loss_margin_pct = c->loss_margin_pct,
	};
}

/* Path states and each policy's egresses for egs and pols: base[] is each egress's state
 * from link and SAs, the probes (kept per egress name) add down and the figures, and an
 * up path that breaks the SLA of a policy listing it is shown degraded. holds (may be
 * NULL) is per policy. Sets *pending when a hold-down is being timed. 0 or -ENOMEM. */
static int choose(const struct cp_state *st, const struct eg_egress_cfg *egs, unsigned n_egs, const uint8_t *base,
		  const struct eg_policy_cfg *pols, unsigned n_pols, struct eg_path_hold *holds, uint8_t *states,
		  struct eg_path_pick *picks, bool *pending)
{
	struct eg_path_view *views = calloc(n_egs + 1, sizeof(*views));
	struct eg_select_tuning t = tuning(st);
	uint64_t now = eg_now_ns();
	struct name_index ix = {0};

	if (!views || name_index_build(&ix, egs, sizeof(*egs), n_egs)) {
		free(views);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < n_egs; i++) {
		int at = egs == st->egresses ? (int)i : cp_state_egress_index(st, egs[i].name);

		cp_probes_view(st, at >= 0 ? (unsigned)at : UINT32_MAX, base[i], &views[i]);
		states[i] = views[i].state;
	}
	*pending = false;
	for (unsigned p = 0; p < n_pols; p++) {
		int idx[EG_MAX_POLICY_EGRESSES];
		unsigned k = 0;

		for (unsigned j = 0; j < pols[p].n_egresses; j++) {
			int i = name_index_find(&ix, pols[p].egresses[j]);

			if (i < 0)
				continue;
			idx[k++] = i;
			if (states[i] == EG_PATH_UP && pols[p].action == EG_ACTION_FORWARD &&
			    !eg_path_meets_sla(&views[i], &pols[p].sla))
				states[i] = EG_PATH_DEGRADED;
		}
		eg_path_select(&pols[p], idx, k, views, &t, holds ? &holds[p] : NULL, now, &picks[p]);
		if (holds && eg_path_hold_pending(&holds[p]))
			*pending = true;
	}
	free(ix.slot);
	free(views);
	return 0;
}

static int build(const struct cp_state *st, const struct eg_egress_cfg *egs, unsigned n_egs,
		 const uint32_t *eids, const uint8_t *estate, const struct eg_policy_cfg *pols,
		 unsigned n_pols, const uint32_t *pids, const struct eg_path_pick *picks, struct eg_blob *b,
		 struct eg_error *err)
{
	struct eg_table_input in = {
		.dp = &st->cfg.dataplane,
		.egresses = egs, .n_egresses = n_egs, .egress_ids = eids, .egress_state = estate,
		.policies = pols, .n_policies = n_pols, .policy_ids = pids, .picks = picks,
	};
	uint32_t *sa_slot, *wg_slot;
	struct eg_table_spi *inbound;
	struct eg_table_wg_peer *wg_peers;
	int rc;

	eg_blob_init(b, (size_t)st->cfg.dataplane.table_mb << 20);
	if (cp_ipsec_table_inputs(st, egs, n_egs, &sa_slot, &inbound, &in.n_inbound)) {
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return -ENOMEM;
	}
	if (cp_wg_table_inputs(st, egs, n_egs, &wg_slot, &wg_peers, &in.n_wg_peers)) {
		free(sa_slot);
		free(inbound);
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return -ENOMEM;
	}
	in.egress_sa_slot = sa_slot;
	in.inbound = inbound;
	in.egress_wg_slot = wg_slot;
	in.wg_peers = wg_peers;
	rc = eg_table_build(&in, b, err);
	free(sa_slot);
	free(inbound);
	free(wg_slot);
	free(wg_peers);
	return rc;
}

bool cp_state_dataplane_alive(const struct cp_state *st)
{
	if (!st->mapped)
		return false;
	return eg_now_ns() - __atomic_load_n(&st->shm.hdr->heartbeat_ns, __ATOMIC_ACQUIRE) <
	       (uint64_t)HEARTBEAT_STALE_MS * 1000000ull;
}

/* Publishes b and waits until every worker runs on it. On a timeout the previous
 * generation is made current again, so the state stays the one operators last confirmed. */
static int publish_and_wait(struct cp_state *st, const struct eg_blob *b, uint64_t *gen, int *code,
			    struct eg_error *err)
{
	unsigned timeout = st->cfg.control.publish_timeout_ms;
	struct eg_shm_hdr *h = st->shm.hdr;
	uint64_t before;
	int rc;

	if (!cp_state_dataplane_alive(st)) {
		*code = CP_RPC_NOT_ATTACHED;
		snprintf(err->msg, sizeof(err->msg), "the dataplane is not running; nothing changed");
		return -ENOTCONN;
	}
	before = eg_shm_generation(h);
	rc = eg_shm_publish(h, b->data, b->len, timeout, gen);
	if (rc == -ENOSPC) {
		*code = CP_RPC_RESOURCE;
		snprintf(err->msg, sizeof(err->msg), "table of %zu bytes exceeds the %llu-byte slot (dataplane.table_mb)",
			 b->len, (unsigned long long)h->slot_size);
		return rc;
	}
	if (rc == 0) {
		rc = eg_shm_wait_grace(h, *gen, timeout);
		if (rc && before != 0) {
			uint64_t back;

			eg_shm_revert(h, &back);
			LOG("workers did not confirm generation %llu within %u ms; generation %llu restores the previous table",
			    (unsigned long long)*gen, timeout, (unsigned long long)back);
			*gen = back;
		}
	}
	if (rc) {
		*code = CP_RPC_PUBLISH_TIMEOUT;
		snprintf(err->msg, sizeof(err->msg),
			 "workers did not pass a quiescent state within %u ms; the previous table stays live", timeout);
		return rc;
	}
	st->generation = *gen;
	return 0;
}

const double cp_publish_bounds[CP_PUBLISH_BUCKETS] = {0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5};

static void count_publish(struct cp_publish_stats *p, int rc, uint64_t took_ns)
{
	double s = (double)took_ns / 1e9;

	if (rc) {
		p->failed++;
		return;
	}
	p->ok++;
	p->seconds_sum += s;
	for (unsigned i = 0; i < CP_PUBLISH_BUCKETS; i++)
		if (s <= cp_publish_bounds[i])
			p->le[i]++;
}

/* publish_and_wait, counted for metrics (not when there was no dataplane to ask). */
static int publish(struct cp_state *st, const struct eg_blob *b, uint64_t *gen, int *code,
		   struct eg_error *err)
{
	uint64_t t0 = eg_now_ns();
	int rc = publish_and_wait(st, b, gen, code, err);

	if (rc != -ENOTCONN)
		count_publish(&st->publishes, rc, eg_now_ns() - t0);
	return rc;
}

static void notify_applied(struct cp_state *st, uint64_t gen)
{
	if (st->rpc)
		cp_rpc_server_notify(st->rpc, "policy.applied",
				     json_pack("{s:I,s:I,s:I}", "generation", (json_int_t)gen, "policies",
					       (json_int_t)st->n_policies, "egresses", (json_int_t)st->n_egresses));
}

int cp_state_publish_current(struct cp_state *st)
{
	struct eg_error err = {0};
	uint64_t gen;
	int code = 0, rc;

	rc = publish(st, &st->table, &gen, &code, &err);
	/* The state changed underneath (a path went down, an SA expired): keep trying until
	 * the workers run on it, or they would keep using the old table. */
	st->publish_pending = rc != 0;
	if (rc)
		LOG("publish failed, will retry: %s", err.msg);
	else
		notify_applied(st, gen);
	return rc;
}

/* Gives each egress of the new list an id: its old one when it keeps its name. */
static int assign_egress_ids(const struct cp_state *st, const struct eg_egress_cfg *egs, unsigned n,
			     uint32_t *ids, uint8_t *states, uint8_t *used, bool *fresh)
{
	int rc;

	if (n > EG_MAX_EGRESSES)
		return -ENOSPC;
	memset(used, 0, EG_MAX_EGRESSES);
	for (unsigned i = 0; i < n; i++) {
		int old = cp_state_egress_index(st, egs[i].name);

		ids[i] = old >= 0 ? st->egress_ids[old] : UINT32_MAX;
		if (old >= 0) {
			states[i] = st->egress_state[old];
			used[ids[i]] = 1;
		}
	}
	rc = take_free_ids(ids, n, used, EG_MAX_EGRESSES, fresh);
	for (unsigned i = 0; !rc && i < n; i++)
		if (fresh[i])
			states[i] = egress_state_now(st, &egs[i]);
	return rc;
}

/* A policy that keeps its name and its egress list keeps its hysteresis memory. */
static int carry_holds(const struct cp_state *st, const struct eg_policy_cfg *pols, unsigned n,
		       struct eg_path_hold *holds)
{
	struct name_index ix;

	if (name_index_build(&ix, st->policies, sizeof(*st->policies), st->n_policies))
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		int old = st->holds ? name_index_find(&ix, pols[i].name) : -1;
		const struct eg_policy_cfg *o = old >= 0 ? &st->policies[old] : NULL;
		bool same = o && o->n_egresses == pols[i].n_egresses &&
			    memcmp(o->egresses, pols[i].egresses, sizeof(o->egresses[0]) * o->n_egresses) == 0;

		if (same)
			holds[i] = st->holds[old];
		else
			eg_path_hold_init(&holds[i]);
	}
	free(ix.slot);
	return 0;
}

static int assign_policy_ids(const struct cp_state *st, const struct eg_policy_cfg *pols, unsigned n,
			     uint32_t *ids, uint8_t *used, bool *fresh)
{
	struct name_index ix;

	if (n > EG_MAX_POLICIES)
		return -ENOSPC;
	if (name_index_build(&ix, st->policies, sizeof(*st->policies), st->n_policies))
		return -ENOMEM;
	memset(used, 0, EG_MAX_POLICIES);
	for (unsigned i = 0; i < n; i++) {
		int old = name_index_find(&ix, pols[i].name);

		ids[i] = old >= 0 ? st->policy_ids[old] : UINT32_MAX;
		if (old >= 0)
			used[ids[i]] = 1;
	}
	free(ix.slot);
	return take_free_ids(ids, n, used, EG_MAX_POLICIES, fresh);
}

int cp_state_apply(struct cp_state *st, struct eg_egress_cfg *egresses, unsigned n_egresses,
		   struct eg_policy_cfg *policies, unsigned n_policies, uint64_t *generation,
		   int *code, struct eg_error *err)
{
	bool new_egs = egresses != NULL, new_pols = policies != NULL;
	struct eg_egress_cfg *egs = new_egs ? egresses : st->egresses;
	struct eg_policy_cfg *pols = new_pols ? policies : st->policies;
	unsigned n_egs = new_egs ? n_egresses : st->n_egresses;
	unsigned n_pols = new_pols ? n_policies : st->n_policies;
	uint32_t *eids = calloc(n_egs + 1, sizeof(*eids));
	uint8_t *estate = calloc(n_egs + 1, 1);
	uint32_t *pids = calloc(n_pols + 1, sizeof(*pids));
	uint8_t *pused = calloc(EG_MAX_POLICIES, 1);
	bool *efresh = calloc(n_egs + 1, sizeof(bool)), *pfresh = calloc(n_pols + 1, sizeof(bool));
	struct eg_path_pick *picks = calloc(n_pols + 1, sizeof(*picks));
	struct eg_path_hold *holds = calloc(n_pols + 1, sizeof(*holds));
	uint8_t eused[EG_MAX_EGRESSES];
	struct eg_blob b = {0};
	bool pending = false;
	int rc = -ENOMEM;

	*code = CP_RPC_INTERNAL_ERROR;
	snprintf(err->path, sizeof(err->path), "$.params");
	snprintf(err->msg, sizeof(err->msg), "out of memory");
	if (!eids || !estate || !pids || !pused || !efresh || !pfresh || !picks || !holds)
		goto fail;
	if (assign_egress_ids(st, egs, n_egs, eids, estate, eused, efresh) ||
	    assign_policy_ids(st, pols, n_pols, pids, pused, pfresh)) {
		*code = CP_RPC_RESOURCE;
		snprintf(err->msg, sizeof(err->msg), "too many egresses or policies");
		rc = -ENOSPC;
		goto fail;
	}
	if (carry_holds(st, pols, n_pols, holds) ||
	    choose(st, egs, n_egs, estate, pols, n_pols, holds, estate, picks, &pending))
		goto fail;
	rc = build(st, egs, n_egs, eids, estate, pols, n_pols, pids, picks, &b, err);
	if (rc) {
		*code = CP_RPC_RESOURCE;
		goto fail;
	}
	/* Saved before publishing, put in place after: a failure anywhere leaves the old
	 * state both live and on disk. */
	rc = cp_persist_prepare(st->cfg.control.state_file, egs, n_egs, pols, n_pols, st->ipsec.sas,
				st->ipsec.n, &st->wg);
	if (rc) {
		*code = CP_RPC_PERSIST_FAILED;
		snprintf(err->msg, sizeof(err->msg), "cannot write %.160s.tmp: %s; nothing changed",
			 st->cfg.control.state_file, strerror(-rc));
		goto fail;
	}
	rc = publish(st, &b, generation, code, err);
	if (rc) {
		cp_persist_abort(st->cfg.control.state_file);
		goto fail;
	}
	rc = cp_persist_commit(st->cfg.control.state_file);
	if (rc)
		LOG("published generation %llu but could not save %s: %s", (unsigned long long)*generation,
		    st->cfg.control.state_file, strerror(-rc));

	/* Commit. */
	if (new_egs)
		free(st->egresses);
	if (new_pols)
		free_policies(st->policies, st->n_policies);
	free(st->egress_ids);
	free(st->egress_state);
	free(st->policy_ids);
	st->egresses = egs;
	st->n_egresses = n_egs;
	st->policies = pols;
	st->n_policies = n_pols;
	st->egress_ids = eids;
	st->egress_state = estate;
	st->policy_ids = pids;
	free(st->picks);
	free(st->holds);
	st->picks = picks;
	st->holds = holds;
	st->holds_pending = pending;
	if (cp_probes_sync(st, egs, n_egs, eids))
		LOG("out of memory setting up probes; the new egresses are not probed");
	/* Ids handed out by this change count from what their counters hold now, even an id
	 * another egress or policy gave up in the same change. */
	for (unsigned i = 0; i < n_egs; i++)
		if (efresh[i])
			egress_sum(st, eids[i], &egress_base_pkts[eids[i]], &egress_base_bytes[eids[i]]);
	for (unsigned i = 0; i < n_pols; i++)
		if (pfresh[i])
			policy_base[pids[i]] = policy_sum(st, pids[i]);
	memcpy(st->egress_id_used, eused, sizeof(eused));
	free(st->policy_id_used);
	st->policy_id_used = pused;
	eg_blob_free(&st->table);
	st->table = b;
	st->publish_pending = false;
	free(efresh);
	free(pfresh);
	notify_applied(st, *generation);
	return 0;
fail:
	eg_blob_free(&b);
	free(picks);
	free(holds);
	free(eids);
	free(estate);
	free(pids);
	free(pused);
	free(efresh);
	free(pfresh);
	return rc;
}

static void prefix_state_file(const struct cp_state *st, struct eg_error *err)
{
	char where[EG_PATH_LEN];

	snprintf(where, sizeof(where), "%s", err->path);
	snprintf(err->path, sizeof(err->path), "%.120s: %.120s", st->cfg.control.state_file, where);
}

int cp_state_init(struct cp_state *st, const char *config_path, struct eg_error *err)
{
	struct eg_egress_cfg *egs;
	struct eg_policy_cfg *pols;
	struct eg_sa_cfg *sas;
	struct eg_wg_peer_cfg *wg_peers;
	unsigned n_egs, n_pols, n_sas;
	int rc, n_wg_peers;

	memset(st, 0, sizeof(*st));
	st->config_path = config_path;
	st->started_ns = eg_now_ns();
	cp_capture_init(&st->capture);
	rc = eg_config_load(config_path, &st->cfg, err);
	if (rc)
		return rc;
	st->egresses = st->cfg.egresses;
	st->n_egresses = st->cfg.n_egresses;
	st->policies = st->cfg.policies;
	st->n_policies = st->cfg.n_policies;
	cp_ipsec_init(&st->ipsec, st->cfg.sas, st->cfg.n_sas);
	st->cfg.egresses = NULL;
	st->cfg.policies = NULL;
	st->cfg.sas = NULL;
	st->cfg.n_egresses = st->cfg.n_policies = st->cfg.n_sas = 0;

	/* What operators changed through the socket wins over the config file. */
	rc = cp_persist_load(st->cfg.control.state_file, &egs, &n_egs, &pols, &n_pols, &sas, &n_sas, &wg_peers,
			     &n_wg_peers, err);
	if (rc < 0) {
		prefix_state_file(st, err);
		return rc;
	}
	if (rc == 0 && n_wg_peers >= 0 && st->cfg.wg.present) {
		/* Peers added and removed through the socket replace the config's. */
		for (unsigned i = 0; i < st->cfg.wg.n_peers; i++)
			eg_wg_peer_wipe(&st->cfg.wg.peers[i]);
		free(st->cfg.wg.peers);
		st->cfg.wg.peers = wg_peers;
		st->cfg.wg.n_peers = (unsigned)n_wg_peers;
	} else {
		for (int i = 0; i < n_wg_peers; i++)
			eg_wg_peer_wipe(&wg_peers[i]);
		free(wg_peers);
	}
	if (rc == 0) {
		rc = eg_config_check_refs(&st->cfg.dataplane, egs, n_egs, "$.egresses", pols, n_pols,
					  "$.policies", err);
		if (!rc)
			rc = eg_sa_check_refs(&st->cfg.dataplane, sas, n_sas, "$.ipsec.sas", egs, n_egs,
					      "$.egresses", err);
		if (!rc)
			rc = eg_wg_check_refs(&st->cfg.wg, egs, n_egs, "$.egresses", err);
		if (rc) {
			prefix_state_file(st, err);
			free(egs);
			free_policies(pols, n_pols);
			eg_sa_cfg_free_all(sas, n_sas);
			return rc;
		}
		LOG("state from %s: %u egress(es), %u policy(ies), %u SA(s)", st->cfg.control.state_file,
		    n_egs, n_pols, n_sas);
		free(st->egresses);
		free_policies(st->policies, st->n_policies);
		cp_ipsec_free(&st->ipsec);
		st->egresses = egs;
		st->n_egresses = n_egs;
		st->policies = pols;
		st->n_policies = n_pols;
		cp_ipsec_init(&st->ipsec, sas, n_sas);
	}
	rc = cp_wg_init(&st->wg, &st->cfg.wg);
	if (rc) {
		snprintf(err->path, sizeof(err->path), "$.wireguard");
		snprintf(err->msg, sizeof(err->msg), "cannot set up WireGuard: %s", strerror(-rc));
		return rc;
	}

	policy_base = calloc(EG_MAX_POLICIES, sizeof(*policy_base));
	st->policy_id_used = calloc(EG_MAX_POLICIES, 1);
	st->egress_ids = calloc(st->n_egresses + 1, sizeof(*st->egress_ids));
	st->egress_state = calloc(st->n_egresses + 1, 1);
	st->policy_ids = calloc(st->n_policies + 1, sizeof(*st->policy_ids));
	if (!policy_base || !st->policy_id_used || !st->egress_ids || !st->egress_state || !st->policy_ids)
		return -ENOMEM;
	/* Ids in order until a dataplane's table says otherwise (adopt_ids). */
	for (unsigned i = 0; i < st->n_egresses; i++) {
		st->egress_ids[i] = i;
		st->egress_id_used[i] = 1;
		st->egress_state[i] = egress_state_now(st, &st->egresses[i]);
	}
	for (unsigned i = 0; i < st->n_policies; i++) {
		st->policy_ids[i] = i;
		st->policy_id_used[i] = 1;
	}
	st->picks = calloc(st->n_policies + 1, sizeof(*st->picks));
	st->holds = calloc(st->n_policies + 1, sizeof(*st->holds));
	if (!st->picks || !st->holds || cp_probes_sync(st, st->egresses, st->n_egresses, st->egress_ids))
		return -ENOMEM;
	for (unsigned i = 0; i < st->n_policies; i++)
		eg_path_hold_init(&st->holds[i]);
	if (choose(st, st->egresses, st->n_egresses, st->egress_state, st->policies, st->n_policies, st->holds,
		   st->egress_state, st->picks, &st->holds_pending))
		return -ENOMEM;
	return build(st, st->egresses, st->n_egresses, st->egress_ids, st->egress_state, st->policies,
		     st->n_policies, st->policy_ids, st->picks, &st->table, err);
}

void cp_state_free(struct cp_state *st)
{
	if (st->mapped)
		eg_shm_detach(&st->shm);
	free(st->egresses);
	free_policies(st->policies, st->n_policies);
	free(st->egress_ids);
	free(st->egress_state);
	free(st->policy_ids);
	free(st->picks);
	free(st->holds);
	cp_probes_free(&st->probes);
	free(st->policy_id_used);
	free(policy_base);
	policy_base = NULL;
	cp_ipsec_free(&st->ipsec);
	cp_wg_free(&st->wg);
	eg_blob_free(&st->table);
	eg_config_free(&st->cfg);
}

static void notify(struct cp_state *st, const char *type, json_t *params)
{
	if (st->rpc)
		cp_rpc_server_notify(st->rpc, type, params);
	else
		json_decref(params);
}

/* Rebuilds st->table from the current state and publishes it (retried while it fails). */
static void republish(struct cp_state *st, const char *why)
{
	struct eg_error err = {0};
	struct eg_blob b;

	if (build(st, st->egresses, st->n_egresses, st->egress_ids, st->egress_state, st->policies,
		  st->n_policies, st->policy_ids, st->picks, &b, &err) == 0) {
		eg_blob_free(&st->table);
		st->table = b;
		cp_state_publish_current(st);
	} else {
		eg_blob_free(&b);
		LOG("rebuild after %s failed: %s", why, err.msg);
	}
}

static bool same_pick(const struct eg_path_pick *a, const struct eg_path_pick *b)
{
	return a->n == b->n && a->fallback == b->fallback &&
	       memcmp(a->egress, b->egress, sizeof(a->egress[0]) * a->n) == 0 &&
	       memcmp(a->share, b->share, sizeof(a->share[0]) * a->n) == 0;
}

static void notify_selected(struct cp_state *st, unsigned p, const struct eg_path_pick *pick)
{
	json_t *names = json_array(), *shares = json_array();

	for (unsigned j = 0; j < pick->n; j++) {
		json_array_append_new(names, json_string(st->egresses[pick->egress[j]].name));
		json_array_append_new(shares, json_real(pick->share[j] / (double)EG_SHARE_FULL));
	}
	char *list = json_dumps(names, JSON_COMPACT), *sh = json_dumps(shares, JSON_COMPACT);

	LOG("policy %s: now via %s, shares %s%s", st->policies[p].name, list ? list : "?", sh ? sh : "?",
	    pick->fallback ? " (nothing eligible: fallback)" : "");
	free(list);
	free(sh);
	notify(st, "path.selected", json_pack("{s:s,s:o,s:o,s:b}", "policy", st->policies[p].name, "egresses", names,
					      "shares", shares, "fallback", pick->fallback));
}

/* Path states follow link, SA and probe state, and policies follow path states and
 * figures; a change is re-published. Judged when probes brought news, when a hold-down
 * is being timed, and every 100 ms for link and SA changes. */
static void refresh_states(struct cp_state *st, bool changed)
{
	uint64_t now = eg_now_ns();
	uint8_t *base, *states;
	struct eg_path_pick *picks;
	bool pending = false;

	if (!changed && !st->probes.changed && !st->holds_pending && now < st->next_choose_ns) {
		if (st->publish_pending)
			cp_state_publish_current(st);
		return;
	}
	st->next_choose_ns = now + 100 * 1000000ull;
	st->probes.changed = false;
	base = malloc(st->n_egresses + 1);
	states = malloc(st->n_egresses + 1);
	picks = malloc((st->n_policies + 1) * sizeof(*picks));
	if (!base || !states || !picks)
		goto out;
	for (unsigned i = 0; i < st->n_egresses; i++)
		base[i] = egress_state_now(st, &st->egresses[i]);
	if (choose(st, st->egresses, st->n_egresses, base, st->policies, st->n_policies, st->holds, states, picks,
		   &pending))
		goto out;
	st->holds_pending = pending;
	for (unsigned i = 0; i < st->n_egresses; i++) {
		if (states[i] == st->egress_state[i])
			continue;
		const char *was = eg_path_state_name(st->egress_state[i]), *now_name = eg_path_state_name(states[i]);

		LOG("egress %s: %s -> %s", st->egresses[i].name, was, now_name);
		notify(st, "egress.state", json_pack("{s:s,s:s,s:s}", "name", st->egresses[i].name, "state", now_name,
						     "previous", was));
		st->egress_state[i] = states[i];
		changed = true;
	}
	for (unsigned p = 0; p < st->n_policies; p++) {
		if (same_pick(&picks[p], &st->picks[p]))
			continue;
		st->picks[p] = picks[p];
		notify_selected(st, p, &picks[p]);
		changed = true;
	}
out:
	free(base);
	free(states);
	free(picks);
	if (changed)
		republish(st, "a path change");
	else if (st->publish_pending)
		cp_state_publish_current(st);
}

void cp_state_poll_punt(struct cp_state *st)
{
	struct eg_msg m;

	if (!st->mapped)
		return;
	for (unsigned i = 0; i < 256 && eg_msg_get(eg_shm_punt(st->shm.hdr), &m); i++) {
		if (m.kind == EG_MSG_PROBE_REPLY)
			cp_probes_answer(st, &m);
		else
			cp_wg_handle(st, &m);
	}
}

/* The segment outlives a dataplane killed with SIGKILL; its heartbeat may still look fresh
 * for a moment, but its process is gone. */
static bool dataplane_process_exists(const struct eg_shm_hdr *h)
{
	return kill(h->dp_pid, 0) == 0 || errno != ESRCH;
}

static void detach(struct cp_state *st, const char *why)
{
	LOG("dataplane detached (%s)", why);
	st->detached_ns = eg_now_ns();
	notify(st, "dataplane.detached", json_pack("{s:s}", "reason", why));
	cp_ipsec_detach(st);
	cp_wg_detach(st);
	cp_probes_reset(&st->probes);
	eg_shm_detach(&st->shm);
	st->mapped = false;
}

static void try_attach(struct cp_state *st)
{
	char name[EG_SHM_NAME_LEN];
	struct eg_shm_hdr *h;
	int rc;

	eg_shm_name(st->cfg.instance, name);
	rc = eg_shm_attach(name, &st->shm);
	if (rc) {
		if (rc != -ENOENT)
			LOG("cannot attach to %s: %s", name, strerror(-rc));
		return;
	}
	h = st->shm.hdr;
	if (h->n_ports != st->cfg.dataplane.n_ports) {
		LOG("dataplane in %s has %u ports, the config %u: not attaching", name, h->n_ports,
		    st->cfg.dataplane.n_ports);
		eg_shm_detach(&st->shm);
		return;
	}
	st->mapped = true;
	if (!dataplane_process_exists(h) || !cp_state_dataplane_alive(st)) {
		/* A segment left behind by a dataplane that died; wait for a live one. */
		eg_shm_detach(&st->shm);
		st->mapped = false;
		return;
	}
	bool new_epoch = st->epoch != h->epoch;
	char gap[64] = "";

	/* The gap: how long no dataplane was there (forwarding stopped if it had died). */
	if (st->detached_ns)
		snprintf(gap, sizeof(gap), " after a gap of %.3f s", (double)(eg_now_ns() - st->detached_ns) / 1e9);
	st->detached_ns = 0;
	st->epoch = h->epoch;
	LOG("attached to dataplane pid %d (epoch %016llx, %u workers, generation %llu)%s%s", h->dp_pid,
	    (unsigned long long)h->epoch, h->n_workers, (unsigned long long)eg_shm_generation(h), gap,
	    new_epoch && st->generation ? ": re-publishing" : "");
	if (adopt_ids(st))
		LOG("out of memory adopting counter ids; keeping the ones assigned");
	if (cp_ipsec_attach(st))
		LOG("not every SA could be installed; their egresses stay down");
	cp_wg_attach(st);
	/* Ids may have changed (adopt_ids): probes are named by them. Measurements start
	 * afresh with a new dataplane. */
	if (cp_probes_sync(st, st->egresses, st->n_egresses, st->egress_ids))
		LOG("out of memory setting up probes");
	cp_probes_reset(&st->probes);
	for (unsigned i = 0; i < st->n_egresses; i++)
		st->egress_state[i] = egress_state_now(st, &st->egresses[i]);
	notify(st, "dataplane.attached",
	       json_pack("{s:i,s:I,s:i}", "pid", h->dp_pid, "generation", (json_int_t)eg_shm_generation(h),
			 "workers", (int)h->n_workers));
	republish(st, "attaching");
}

void cp_state_tick(struct cp_state *st)
{
	uint64_t now = eg_now_ns();

	if (st->mapped) {
		if (eg_shm_replaced(&st->shm)) {
			detach(st, "segment re-created: the dataplane restarted");
		} else if (!dataplane_process_exists(st->shm.hdr)) {
			detach(st, "dataplane process gone");
		} else {
			cp_probes_poll(st);
			refresh_states(st, cp_ipsec_tick(st));
			return;
		}
	}
	if (now < st->next_attach_ns)
		return;
	st->next_attach_ns = now + (uint64_t)ATTACH_RETRY_MS * 1000000ull;
	try_attach(st);
}
