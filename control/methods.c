#include "methods.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "drop_reasons.h"
#include "ipsec_methods.h"
#include "nat_methods.h"
#include "wg_methods.h"
#include "state.h"


static int from_eg_error(struct cp_rpc_error *err, int code, const struct eg_error *e)
{
	return cp_rpc_fail(err, code, e->path[0] ? e->path : NULL, "%s", e->msg);
}

static json_t *counters_json(const struct cp_state *st, unsigned i)
{
	uint64_t pkts, bytes;

	cp_state_egress_counters(st, i, &pkts, &bytes);
	return json_pack("{s:I,s:I}", "tx_packets", (json_int_t)pkts, "tx_bytes", (json_int_t)bytes);
}

static int m_status(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err)
{
	struct cp_state *st = ctx;
	json_t *dp;

	if (cp_rpc_no_params(params, err))
		return -1;
	if (st->mapped) {
		const struct eg_shm_hdr *h = st->shm.hdr;
		char epoch[24];
		uint64_t age = (eg_now_ns() - __atomic_load_n(&h->heartbeat_ns, __ATOMIC_ACQUIRE)) / 1000000;

		snprintf(epoch, sizeof(epoch), "%016llx", (unsigned long long)h->epoch);
		dp = json_pack("{s:b,s:i,s:s,s:i,s:I,s:I}", "attached", cp_state_dataplane_alive(st), "pid",
			       h->dp_pid, "epoch", epoch, "workers", (int)h->n_workers, "heartbeat_age_ms",
			       (json_int_t)age, "generation", (json_int_t)eg_shm_generation(h));
	} else {
		dp = json_pack("{s:b}", "attached", 0);
	}
	*result = json_pack("{s:s,s:s,s:I,s:I,s:o,s:i,s:i}", "version", EG_VERSION, "instance",
			    st->cfg.instance, "uptime_s", (json_int_t)((eg_now_ns() - st->started_ns) / 1000000000ull),
			    "generation", (json_int_t)st->generation, "dataplane", dp, "egresses",
			    (int)st->n_egresses, "policies", (int)st->n_policies);
	if (st->capture.active)
		json_object_set_new(*result, "capture", cp_capture_status(st));
	return 0;
}

static int m_stats_get(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err)
{
	static const char *const keys[] = {"port", NULL};
	struct cp_state *st = ctx;
	const char *only = NULL;
	json_t *ports, *workers, *drops, *egs, *pols;
	uint64_t drop_sum[EG_DROP_MAX] = {0};

	if (params && !(json_is_array(params) && json_array_size(params) == 0)) {
		if (cp_rpc_object_params(params, keys, err))
			return -1;
		json_t *p = json_object_get(params, "port");

		if (p) {
			if (!json_is_string(p))
				return cp_rpc_invalid(err, "$.params.port", "expected a port name");
			only = json_string_value(p);
			if (eg_config_port_index(&st->cfg.dataplane, only) < 0)
				return cp_rpc_invalid(err, "$.params.port", "unknown port \"%.32s\"", only);
		}
	}
	ports = json_array();
	workers = json_array();
	drops = json_object();
	egs = json_array();
	pols = json_array();
	for (unsigned i = 0; i < st->cfg.dataplane.n_ports; i++) {
		const struct eg_port_cfg *pc = &st->cfg.dataplane.ports[i];
		struct eg_port_counters sum = {0};
		bool link = false;

		if (only && strcmp(only, pc->name) != 0)
			continue;
		if (st->mapped) {
			link = __atomic_load_n(&st->shm.hdr->ports[i].link_up, __ATOMIC_RELAXED);
			eg_shm_port_sum(st->shm.hdr, i, &sum);
		}
		json_array_append_new(ports, json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I}", "name", pc->name,
						       "role", pc->role == EG_ROLE_SITE ? "site" : "uplink",
						       "link", link ? "up" : "down", "rx_packets",
						       (json_int_t)sum.rx_packets, "rx_bytes", (json_int_t)sum.rx_bytes,
						       "tx_packets", (json_int_t)sum.tx_packets, "tx_bytes",
						       (json_int_t)sum.tx_bytes, "drops", (json_int_t)sum.drops));
	}
	if (st->mapped) {
		eg_shm_drops_sum(st->shm.hdr, drop_sum);
		for (unsigned w = 0; w < st->shm.hdr->n_workers; w++) {
			const struct eg_worker_shm *ws = eg_shm_worker(st->shm.hdr, w);

			json_array_append_new(workers, json_pack("{s:i,s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:{s:I,s:I,s:I,s:I,s:I,s:I}}", "id",
								 (int)w, "lcore", (int)ws->lcore, "rx_packets",
								 (json_int_t)ws->rx_packets, "tx_packets",
								 (json_int_t)ws->tx_packets, "drops",
								 (json_int_t)ws->drops, "busy_loops",
								 (json_int_t)ws->busy_loops, "idle_loops",
								 (json_int_t)ws->idle_loops, "reassembled",
								 (json_int_t)ws->reassembled, "probes_sent",
								 (json_int_t)ws->probes_sent, "probe_answers",
								 (json_int_t)ws->probe_answers, "probes_reflected",
								 (json_int_t)ws->probes_reflected, "flow_cache", "lookups",
								 (json_int_t)ws->flow_lookups, "misses", (json_int_t)ws->flow_misses,
								 "evictions", (json_int_t)ws->flow_evictions, "capacity",
								 (json_int_t)ws->flow_capacity, "relocations",
								 (json_int_t)ws->flow_relocations, "grows",
								 (json_int_t)ws->flow_grows));
		}
	}
	for (unsigned r = 0; r < EG_DROP_MAX; r++)
		json_object_set_new(drops, eg_drop_names[r], json_integer((json_int_t)drop_sum[r]));
	for (unsigned i = 0; i < st->n_egresses; i++) {
		json_t *c = counters_json(st, i);

		json_object_set_new(c, "name", json_string(st->egresses[i].name));
		json_array_append_new(egs, c);
	}
	for (unsigned i = 0; i < st->n_policies; i++)
		json_array_append_new(pols, json_pack("{s:s,s:I}", "name", st->policies[i].name, "hits",
						      (json_int_t)cp_state_policy_hits(st, i)));
	*result = json_pack("{s:o,s:o,s:o,s:o,s:o}", "ports", ports, "workers", workers, "drops", drops,
			    "egresses", egs, "policies", pols);
	return 0;
}

static json_t *egress_json(const struct cp_state *st, unsigned i)
{
	json_t *e = eg_config_egress_to_json(&st->egresses[i]);
	json_t *c = counters_json(st, i);

	json_object_set_new(e, "state", json_string(eg_path_state_name(st->egress_state[i])));
	json_object_set_new(e, "metrics", cp_probes_json(st, i) ?: json_null());
	json_object_update(e, c);
	json_decref(c);
	if (!json_object_get(e, "port"))
		json_object_set_new(e, "port", json_string(""));
	return e;
}

static int m_egress_list(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err)
{
	struct cp_state *st = ctx;
	json_t *list;

	if (cp_rpc_no_params(params, err))
		return -1;
	list = json_array();
	for (unsigned i = 0; i < st->n_egresses; i++)
		json_array_append_new(list, egress_json(st, i));
	*result = json_pack("{s:o}", "egresses", list);
	return 0;
}

static int m_path_list(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err)
{
	struct cp_state *st = ctx;
	json_t *list;

	if (cp_rpc_no_params(params, err))
		return -1;
	list = json_array();
	for (unsigned i = 0; i < st->n_egresses; i++) {
		json_t *m = cp_probes_json(st, i);
		json_t *path = json_pack("{s:s,s:s,s:b}", "name", st->egresses[i].name, "state",
					 eg_path_state_name(st->egress_state[i]), "probed", m != NULL);

		if (m)
			json_object_update(path, m);
		json_decref(m);
		json_array_append_new(list, path);
	}
	*result = json_pack("{s:o}", "paths", list);
	return 0;
}

static int apply(struct cp_state *st, struct eg_egress_cfg *egs, unsigned n_egs, struct eg_policy_cfg *pols,
		 unsigned n_pols, uint64_t *gen, struct cp_rpc_error *err)
{
	struct eg_error e = {0};
	int code = 0;

	if (cp_state_apply(st, egs, n_egs, pols, n_pols, gen, &code, &e) == 0)
		return 0;
	return cp_rpc_fail(err, code, NULL, "%s", e.msg);
}

static int m_egress_add(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err)
{
	struct cp_state *st = ctx;
	struct eg_egress_cfg e, *egs;
	struct eg_error ee = {0};
	uint64_t gen;

	if (!json_is_object(params))
		return cp_rpc_invalid(err, "$.params", "expected an egress object");
	if (eg_config_parse_egress(params, "$.params", &e, &ee))
		return from_eg_error(err, CP_RPC_INVALID_PARAMS, &ee);
	if (cp_state_egress_index(st, e.name) >= 0)
		return cp_rpc_fail(err, CP_RPC_EXISTS, "$.params.name", "egress \"%s\" exists already", e.name);
	if (st->n_egresses >= EG_MAX_EGRESSES)
		return cp_rpc_fail(err, CP_RPC_RESOURCE, NULL, "at most %d egresses", EG_MAX_EGRESSES);
	egs = calloc(st->n_egresses + 1, sizeof(*egs));
	if (!egs)
		return cp_rpc_fail(err, CP_RPC_INTERNAL_ERROR, NULL, "out of memory");
	if (st->n_egresses)
		memcpy(egs, st->egresses, st->n_egresses * sizeof(*egs));
	egs[st->n_egresses] = e;
	/* References of the new egress (its port) are checked with the whole new list. */
	if (eg_config_check_refs(&st->cfg.dataplane, egs, st->n_egresses + 1, "$.egresses", st->policies,
				 st->n_policies, "$.policies", &ee)) {
		char want[32];

		snprintf(want, sizeof(want), "$.egresses[%u]", st->n_egresses);
		free(egs);
		if (strncmp(ee.path, want, strlen(want)) == 0) {
			char path[EG_PATH_LEN];

			snprintf(path, sizeof(path), "$.params%s", ee.path + strlen(want));
			return cp_rpc_invalid(err, path, "%s", ee.msg);
		}
		return from_eg_error(err, CP_RPC_CONFLICT, &ee);
	}
	if (apply(st, egs, st->n_egresses + 1, NULL, 0, &gen, err)) {
		free(egs);
		return -1;
	}
	*result = json_pack("{s:I}", "generation", (json_int_t)gen);
	return 0;
}

static int name_param(json_t *params, const char **name, struct cp_rpc_error *err)
{
	static const char *const keys[] = {"name", NULL};
	json_t *n;

	if (cp_rpc_object_params(params, keys, err))
		return -1;
	n = json_object_get(params, "name");
	if (!json_is_string(n))
		return cp_rpc_invalid(err, "$.params.name", n ? "expected a string" : "required");
	*name = json_string_value(n);
	return 0;
}

static int m_egress_remove(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err)
{
	struct cp_state *st = ctx;
	struct eg_egress_cfg *egs;
	const char *name = NULL;
	uint64_t gen;
	int idx;

	if (name_param(params, &name, err))
		return -1;
	idx = cp_state_egress_index(st, name);
	if (idx < 0)
		return cp_rpc_fail(err, CP_RPC_NOT_FOUND, "$.params.name", "no egress \"%.32s\"", name);
	for (unsigned i = 0; i < st->n_policies; i++)
		for (unsigned j = 0; j < st->policies[i].n_egresses; j++)
			if (strcmp(st->policies[i].egresses[j], name) == 0)
				return cp_rpc_fail(err, CP_RPC_CONFLICT, "$.params.name",
						   "policy \"%s\" uses egress \"%s\": change the policy first",
						   st->policies[i].name, name);
	egs = calloc(st->n_egresses, sizeof(*egs));
	if (!egs)
		return cp_rpc_fail(err, CP_RPC_INTERNAL_ERROR, NULL, "out of memory");
	for (unsigned i = 0, k = 0; i < st->n_egresses; i++)
		if ((int)i != idx)
			egs[k++] = st->egresses[i];
	if (apply(st, egs, st->n_egresses - 1, NULL, 0, &gen, err)) {
		free(egs);
		return -1;
	}
	*result = json_pack("{s:I}", "generation", (json_int_t)gen);
	return 0;
}

/* Priority order, ties in list order: the order the classifier decides in. */
static int by_priority(const void *a, const void *b)
{
	const struct eg_policy_cfg *const *x = a, *const *y = b;

	if ((*x)->priority != (*y)->priority)
		return (*x)->priority < (*y)->priority ? -1 : 1;
	return *x < *y ? -1 : *x > *y;
}

static int m_policy_list(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err)
{
	struct cp_state *st = ctx;
	const struct eg_policy_cfg **order;
	json_t *list;

	if (cp_rpc_no_params(params, err))
		return -1;
	order = malloc((st->n_policies + 1) * sizeof(*order));
	if (!order)
		return cp_rpc_fail(err, CP_RPC_INTERNAL_ERROR, NULL, "out of memory");
	for (unsigned i = 0; i < st->n_policies; i++)
		order[i] = &st->policies[i];
	qsort(order, st->n_policies, sizeof(*order), by_priority);
	list = json_array();
	for (unsigned i = 0; i < st->n_policies; i++) {
		json_t *p = eg_config_policy_to_json(order[i]);
		unsigned idx = (unsigned)(order[i] - st->policies);

		json_object_set_new(p, "hits", json_integer((json_int_t)cp_state_policy_hits(st, idx)));
		if (!json_object_get(p, "strategy"))
			json_object_set_new(p, "strategy", json_string(eg_strategy_name(order[i]->strategy)));
		if (!json_object_get(p, "action"))
			json_object_set_new(p, "action",
					    json_string(order[i]->action == EG_ACTION_DROP ? "drop" : "forward"));
		/* Where its flows go now (path selection's pick). */
		json_t *via = json_array(), *shares = json_array();

		for (unsigned j = 0; st->picks && j < st->picks[idx].n; j++) {
			json_array_append_new(via, json_string(st->egresses[st->picks[idx].egress[j]].name));
			json_array_append_new(shares, json_real(st->picks[idx].share[j] / (double)EG_SHARE_FULL));
		}
		json_object_set_new(p, "via", via);
		json_object_set_new(p, "shares", shares);
		json_object_set_new(p, "fallback", json_boolean(st->picks && st->picks[idx].fallback));
		json_array_append_new(list, p);
	}
	free(order);
	*result = json_pack("{s:I,s:o}", "generation", (json_int_t)st->generation, "policies", list);
	return 0;
}

static int m_policy_set(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err)
{
	static const char *const keys[] = {"policies", NULL};
	struct cp_state *st = ctx;
	struct eg_policy_cfg *pols;
	struct eg_error ee = {0};
	json_t *arr;
	size_t n;
	unsigned parsed = 0;
	uint64_t gen;

	if (cp_rpc_object_params(params, keys, err))
		return -1;
	arr = json_object_get(params, "policies");
	if (!json_is_array(arr))
		return cp_rpc_invalid(err, "$.params.policies", arr ? "expected an array" : "required");
	n = json_array_size(arr);
	if (n > EG_MAX_POLICIES)
		return cp_rpc_invalid(err, "$.params.policies", "at most %d policies", EG_MAX_POLICIES);
	pols = calloc(n + 1, sizeof(*pols));
	if (!pols)
		return cp_rpc_fail(err, CP_RPC_INTERNAL_ERROR, NULL, "out of memory");
	for (; parsed < n; parsed++) {
		char path[64];

		snprintf(path, sizeof(path), "$.params.policies[%u]", parsed);
		if (eg_config_parse_policy(json_array_get(arr, parsed), path, &pols[parsed], &ee)) {
			from_eg_error(err, CP_RPC_INVALID_PARAMS, &ee);
			goto fail;
		}
	}
	if (eg_config_check_refs(&st->cfg.dataplane, st->egresses, st->n_egresses, "$.egresses", pols,
				 (unsigned)n, "$.params.policies", &ee)) {
		from_eg_error(err, CP_RPC_INVALID_PARAMS, &ee);
		goto fail;
	}
	if (apply(st, NULL, 0, pols, (unsigned)n, &gen, err))
		goto fail;
	*result = json_pack("{s:I}", "generation", (json_int_t)gen);
	return 0;
fail:
	for (unsigned i = 0; i < parsed; i++)
		eg_policy_cfg_free(&pols[i]);
	free(pols);
	return -1;
}

static int addr_field(json_t *params, const char *key, struct eg_addr *a, struct cp_rpc_error *err)
{
	json_t *v = json_object_get(params, key);
	char path[32];

	snprintf(path, sizeof(path), "$.params.%s", key);
	if (!v)
		return cp_rpc_invalid(err, path, "required");
	if (!json_is_string(v) || eg_addr_parse(json_string_value(v), a) != 0)
		return cp_rpc_invalid(err, path, "expected an IPv4 or IPv6 address");
	return 0;
}

static int m_flow_lookup(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err)
{
	static const char *const keys[] = {"src", "dst", "proto", "sport", "dport", "dscp", "port", NULL};
	struct cp_state *st = ctx;
	const struct eg_table_hdr *t = (const struct eg_table_hdr *)st->table.data;
	const struct eg_table_policy *pol = NULL;
	const struct eg_table_egress *eg = NULL;
	struct eg_flow_key k = {0};
	struct eg_addr src, dst;
	long sport = 0, dport = 0, dscp = 0;
	json_t *proto, *port;
	int in_port = -1, p;
	enum eg_verdict v;

	if (cp_rpc_object_params(params, keys, err) || addr_field(params, "src", &src, err) ||
	    addr_field(params, "dst", &dst, err))
		return -1;
	if (src.family != dst.family)
		return cp_rpc_invalid(err, "$.params.dst", "src and dst are of different address families");
	proto = json_object_get(params, "proto");
	if (!proto)
		return cp_rpc_invalid(err, "$.params.proto", "required");
	p = json_is_string(proto) ? eg_proto_parse(json_string_value(proto))
	    : json_is_integer(proto) && json_integer_value(proto) >= 0 && json_integer_value(proto) <= 255
		? (int)json_integer_value(proto) : -1;
	if (p < 0)
		return cp_rpc_invalid(err, "$.params.proto", "expected a protocol name or number 0..255");
	if (cp_rpc_int_param(params, "sport", 0, 65535, &sport, err) ||
	    cp_rpc_int_param(params, "dport", 0, 65535, &dport, err) ||
	    cp_rpc_int_param(params, "dscp", 0, 63, &dscp, err))
		return -1;
	port = json_object_get(params, "port");
	if (port) {
		if (!json_is_string(port) ||
		    (in_port = eg_config_port_index(&st->cfg.dataplane, json_string_value(port))) < 0)
			return cp_rpc_invalid(err, "$.params.port", "expected the name of a port");
	} else {
		/* Flows enter on the site side: the first site port stands for it. */
		for (unsigned i = 0; i < st->cfg.dataplane.n_ports && in_port < 0; i++)
			if (st->cfg.dataplane.ports[i].role == EG_ROLE_SITE)
				in_port = (int)i;
	}
	k.family = src.family;
	k.proto = (uint8_t)p;
	k.sport = (uint16_t)sport;
	k.dport = (uint16_t)dport;
	k.dscp = (uint8_t)dscp;
	k.in_port = in_port < 0 ? EG_PORT_ANY : (uint16_t)in_port;
	memcpy(k.src, src.addr, 16);
	memcpy(k.dst, dst.addr, 16);
	/* The same table and the same code the workers use. */
	v = eg_table_decide(t, &k, eg_flow_hash(&k), &pol, &eg);
	*result = json_pack("{s:s?,s:s?,s:s?,s:I}", "policy", pol ? pol->name : NULL, "action",
			    v == EG_VERDICT_NO_POLICY ? NULL : v == EG_VERDICT_FORWARD ? "forward" : "drop",
			    "egress", v == EG_VERDICT_FORWARD ? eg->name : NULL, "generation",
			    (json_int_t)st->generation);
	if (v == EG_VERDICT_FORWARD)
		json_object_set_new(*result, "egress_state", json_string(eg_path_state_name(eg->state)));
	else if (v == EG_VERDICT_NO_EGRESS)
		json_object_set_new(*result, "reason", json_string("no eligible egress (pinned)"));
	else if (v == EG_VERDICT_NO_POLICY)
		json_object_set_new(*result, "reason", json_string("no policy matches"));
	return 0;
}

const struct cp_rpc_method cp_methods[] = {
	{"status", m_status, "version, uptime, dataplane attachment, table generation"},
	{"stats.get", m_stats_get, "per-port and per-worker counters, drops by reason [{\"port\"}]"},
	{"egress.list", m_egress_list, "egresses with state and counters"},
	{"egress.add", m_egress_add, "add an egress (an egress object)"},
	{"egress.remove", m_egress_remove, "remove an egress {\"name\"}"},
	{"policy.list", m_policy_list, "policies in priority order"},
	{"path.list", m_path_list, "per egress: state, RTT min/avg/p50/p99, jitter, loss, last probe and answer ages"},
	{"policy.set", m_policy_set, "replace all policies {\"policies\":[...]}"},
	{"flow.lookup", m_flow_lookup, "the policy and egress of a 5-tuple {src,dst,proto,sport,dport,dscp?,port?}"},
	{"ipsec.sa.add", cp_m_ipsec_sa_add, "add an ESP SA; \"replaces\": SPI rekeys make-before-break"},
	{"ipsec.sa.remove", cp_m_ipsec_sa_remove, "remove an SA {\"spi\",\"direction\"}"},
	{"ipsec.sa.list", cp_m_ipsec_sa_list, "SAs with state and counters (never keys)"},
	{"wg.show", cp_m_wg_show, "WireGuard interface and peers, as wg show tells them"},
	{"wg.peer.add", cp_m_wg_peer_add, "add a WireGuard peer live"},
	{"wg.peer.remove", cp_m_wg_peer_remove, "remove a WireGuard peer {\"public_key\"} or {\"name\"}"},
	{"capture.start", cp_m_capture_start,
	 "capture what a port or egress sends and receives {port|egress|target, count?, duration_s?, decrypted?, snaplen?}"},
	{"capture.read", cp_m_capture_read, "the next captured packets {id, max?}"},
	{"capture.stop", cp_m_capture_stop, "end a capture {id}"},
	{"nat.sessions", cp_m_nat_sessions,
	 "source NAT: counts, pool addresses and their blocks, sessions {address?, egress?, limit?}"},
	{NULL, NULL, NULL},
};
