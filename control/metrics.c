#include "metrics.h"

#include <string.h>

#include "ipsec.h"
#include "methods.h"
#include "rpc.h"
#include "table.h"
#include "wg.h"

/* The figures are the ones the control socket gives (stats.get, path.list, wg.show,
 * ipsec.sa.list, status), rendered in Prometheus's text format, so the two never
 * disagree. Names follow Prometheus's conventions: an egress_ prefix, base units
 * (seconds, bytes, ratios), _total on counters. */

static json_t *call_with(struct cp_state *st, const char *method, json_t *params)
{
	struct cp_rpc_error err = {0};
	json_t *result = NULL;

	for (const struct cp_rpc_method *m = cp_methods; m->name; m++)
		if (strcmp(m->name, method) == 0 && m->fn(st, params, &result, &err) == 0)
			return result;
	return json_object();
}

static json_t *call(struct cp_state *st, const char *method)
{
	return call_with(st, method, NULL);
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value as the text format wants it: backslash, quote and newline escaped. */
static void label_value(FILE *f, const json_t *v)
{
	if (json_is_integer(v)) {
		fprintf(f, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return;
	}
	for (const char *s = json_is_string(v) ? json_string_value(v) : ""; *s; s++) {
		if (*s == '\\' || *s == '"')
			fputc('\\', f);
		if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

/* Labels {name="value",...} from pairs of label name and JSON key of o; extra (may be
 * NULL) is appended as it is, already formatted. */
static void labels(FILE *f, const json_t *o, const char *const *pairs, const char *extra)
{
	bool any = false;

	for (unsigned i = 0; pairs && pairs[i]; i += 2) {
		fprintf(f, "%s%s=\"", any ? "," : "{", pairs[i]);
		label_value(f, json_object_get(o, pairs[i + 1]));
		fputc('"', f);
		any = true;
	}
	if (extra) {
		fprintf(f, "%s%s", any ? "," : "{", extra);
		any = true;
	}
	if (any)
		fputc('}', f);
}

/* A sample's value, scaled (ms to seconds, percent to a ratio); false when there is none. */
static bool value(FILE *f, const json_t *v, double scale)
{
	if (json_is_integer(v) && scale == 1)
		fprintf(f, " %" JSON_INTEGER_FORMAT "\n", json_integer_value(v));
	else if (json_is_number(v))
		fprintf(f, " %.9g\n", json_number_value(v) * scale);
	else if (json_is_boolean(v))
		fprintf(f, " %d\n", json_is_true(v));
	else
		return false;
	return true;
}

/* One sample per object of arr that has key (found at the object's top level, or inside
 * its sub-object when key is "sub.key"). */
static void per_item(FILE *f, const char *name, const char *type, const char *help, const json_t *arr,
		     const char *key, double scale, const char *const *label_pairs)
{
	const json_t *o;
	size_t i;

	family(f, name, type, help);
	json_array_foreach(arr, i, o) {
		const char *dot = strchr(key, '.');
		const json_t *v;

		if (dot) {
			char outer[32];

			snprintf(outer, sizeof(outer), "%.*s", (int)(dot - key), key);
			v = json_object_get(json_object_get(o, outer), dot + 1);
		} else {
			v = json_object_get(o, key);
		}
		if (!v || json_is_null(v))
			continue;
		fputs(name, f);
		labels(f, o, label_pairs, NULL);
		value(f, v, scale);
	}
}

/* One family per entry, each over the same array and labels. */
struct item_metric {
	const char *name, *type, *key;
	double scale;
	const char *help;
};

static void per_item_all(FILE *f, const struct item_metric *defs, const json_t *arr, const char *const *label_pairs)
{
	for (const struct item_metric *d = defs; d->name; d++)
		per_item(f, d->name, d->type, d->help, arr, d->key, d->scale, label_pairs);
}

static const struct item_metric port_metrics[] = {
	{"egress_port_rx_packets_total", "counter", "rx_packets", 1, "Packets received on a port."},
	{"egress_port_rx_bytes_total", "counter", "rx_bytes", 1, "Bytes received on a port."},
	{"egress_port_tx_packets_total", "counter", "tx_packets", 1, "Packets sent on a port."},
	{"egress_port_tx_bytes_total", "counter", "tx_bytes", 1, "Bytes sent on a port."},
	{"egress_port_drops_total", "counter", "drops", 1, "Packets dropped that arrived on a port."},
	{NULL, NULL, NULL, 0, NULL},
};

static const struct item_metric worker_metrics[] = {
	{"egress_worker_rx_packets_total", "counter", "rx_packets", 1, "Packets a worker received."},
	{"egress_worker_tx_packets_total", "counter", "tx_packets", 1, "Packets a worker sent."},
	{"egress_worker_drops_total", "counter", "drops", 1, "Packets a worker dropped."},
	{"egress_worker_busy_loops_total", "counter", "busy_loops", 1, "Worker loop iterations that found packets."},
	{"egress_worker_idle_loops_total", "counter", "idle_loops", 1, "Worker loop iterations that found none."},
	{"egress_worker_reassembled_total", "counter", "reassembled", 1, "Datagrams a worker reassembled from fragments."},
	{"egress_worker_probes_sent_total", "counter", "probes_sent", 1, "Path probes a worker sent."},
	{"egress_worker_probe_answers_total", "counter", "probe_answers", 1, "Probe answers a worker received."},
	{"egress_worker_probes_reflected_total", "counter", "probes_reflected", 1,
	 "STAMP and echo probes a worker answered for a peer."},
	{"egress_worker_flow_cache_lookups_total", "counter", "flow_cache.lookups", 1,
	 "Flows looked up in a worker's flow cache."},
	{"egress_worker_flow_cache_misses_total", "counter", "flow_cache.misses", 1,
	 "Flow cache lookups that missed and went through the classifier."},
	{"egress_worker_flow_cache_evictions_total", "counter", "flow_cache.evictions", 1,
	 "Flow cache entries evicted to make room."},
	{"egress_worker_flow_cache_capacity_flows", "gauge", "flow_cache.capacity", 1,
	 "Flows a worker's flow cache holds at its current size."},
	{"egress_worker_flow_cache_relocations_total", "counter", "flow_cache.relocations", 1,
	 "Flow cache entries moved to their other bucket to make room."},
	{"egress_worker_flow_cache_grows_total", "counter", "flow_cache.grows", 1,
	 "Times a worker's flow cache grew to its full size."},
	{NULL, NULL, NULL, 0, NULL},
};

static const struct item_metric path_metrics[] = {
	{"egress_path_rtt_min_seconds", "gauge", "rtt_ms.min", 1e-3, "Lowest probe round trip in the window."},
	{"egress_path_rtt_avg_seconds", "gauge", "rtt_ms.avg", 1e-3, "Mean probe round trip in the window."},
	{"egress_path_rtt_p50_seconds", "gauge", "rtt_ms.p50", 1e-3, "Median probe round trip in the window."},
	{"egress_path_rtt_p99_seconds", "gauge", "rtt_ms.p99", 1e-3, "99th percentile probe round trip in the window."},
	{"egress_path_jitter_seconds", "gauge", "jitter_ms", 1e-3, "Round-trip jitter (RFC 3550) over the window."},
	{"egress_path_loss_ratio", "gauge", "loss_pct", 1e-2, "Share of the window's settled probes that were lost."},
	{"egress_path_last_answer_age_seconds", "gauge", "last_answer_age_ms", 1e-3, "Time since the last probe answer."},
	{"egress_path_probes_sent_total", "counter", "totals.sent", 1, "Probes sent on a path."},
	{"egress_path_probes_answered_total", "counter", "totals.answered", 1, "Probes answered on a path."},
	{"egress_path_probes_lost_total", "counter", "totals.lost", 1, "Probes lost on a path."},
	{NULL, NULL, NULL, 0, NULL},
};

static const struct item_metric peer_metrics[] = {
	{"egress_wireguard_peer_rx_bytes_total", "counter", "rx_bytes", 1, "Bytes received from a WireGuard peer."},
	{"egress_wireguard_peer_tx_bytes_total", "counter", "tx_bytes", 1, "Bytes sent to a WireGuard peer."},
	{"egress_wireguard_peer_handshakes_total", "counter", "handshakes", 1, "Handshakes completed with a peer."},
	{"egress_wireguard_peer_latest_handshake_timestamp_seconds", "gauge", "latest_handshake", 1,
	 "Unix time of the latest handshake with a peer (0: none)."},
	{"egress_wireguard_peer_session", "gauge", "session", 1, "Whether a peer has a session to send with."},
	{NULL, NULL, NULL, 0, NULL},
};

static const struct item_metric sa_metrics[] = {
	{"egress_ipsec_sa_packets_total", "counter", "packets", 1, "Packets an ESP SA carried."},
	{"egress_ipsec_sa_bytes_total", "counter", "bytes", 1, "Bytes an ESP SA carried."},
	{"egress_ipsec_sa_auth_failures_total", "counter", "auth_failures", 1, "Inbound packets failing authentication."},
	{"egress_ipsec_sa_replays_total", "counter", "replays", 1, "Inbound packets the replay window refused."},
	{"egress_ipsec_sa_padding_errors_total", "counter", "padding_errors", 1, "Inbound packets with bad padding."},
	{"egress_ipsec_sa_other_drops_total", "counter", "other_drops", 1, "Other packets an SA dropped."},
	{NULL, NULL, NULL, 0, NULL},
};

static const struct item_metric wg_metrics[] = {
	{"egress_wireguard_cookie_replies_sent_total", "counter", "cookie_replies_sent", 1, "Cookie replies sent under load."},
	{"egress_wireguard_handshakes_dropped_total", "counter", "handshakes_dropped", 1, "Handshake messages dropped."},
	{"egress_wireguard_under_load", "gauge", "under_load", 1, "Whether handshakes must carry a cookie (mac2)."},
	{NULL, NULL, NULL, 0, NULL},
};

static void ports_and_workers(FILE *f, const json_t *stats)
{
	static const char *const port[] = {"port", "name", "role", "role", NULL};
	static const char *const worker[] = {"worker", "id", NULL};
	const json_t *ports = json_object_get(stats, "ports"), *workers = json_object_get(stats, "workers");
	const json_t *o, *v;
	const char *reason;
	size_t i;

	per_item_all(f, port_metrics, ports, port);
	family(f, "egress_port_link_up", "gauge", "Whether a port's link is up.");
	json_array_foreach(ports, i, o) {
		fputs("egress_port_link_up", f);
		labels(f, o, port, NULL);
		fprintf(f, " %d\n", strcmp(json_string_value(json_object_get(o, "link")) ?: "", "up") == 0);
	}
	per_item_all(f, worker_metrics, workers, worker);
	family(f, "egress_drops_total", "counter", "Packets dropped, by reason.");
	json_object_foreach((json_t *)json_object_get(stats, "drops"), reason, v)
		fprintf(f, "egress_drops_total{reason=\"%s\"} %" JSON_INTEGER_FORMAT "\n", reason,
			json_integer_value(v));
}

static void paths_and_policies(FILE *f, const json_t *stats, const json_t *paths)
{
	static const char *const egress[] = {"egress", "name", NULL};
	static const char *const policy[] = {"policy", "name", NULL};
	const json_t *list = json_object_get(paths, "paths"), *o;
	size_t i;

	per_item(f, "egress_path_tx_packets_total", "counter", "Packets sent through an egress.",
		 json_object_get(stats, "egresses"), "tx_packets", 1, egress);
	per_item(f, "egress_path_tx_bytes_total", "counter", "Bytes sent through an egress.",
		 json_object_get(stats, "egresses"), "tx_bytes", 1, egress);
	per_item(f, "egress_policy_hits_total", "counter", "Packets classified into a policy.",
		 json_object_get(stats, "policies"), "hits", 1, policy);
	family(f, "egress_path_state", "gauge", "An egress path's state: 1 for the state it is in.");
	json_array_foreach(list, i, o) {
		for (unsigned s = EG_PATH_UP; s <= EG_PATH_DOWN; s++) {
			char extra[32];

			snprintf(extra, sizeof(extra), "state=\"%s\"", eg_path_state_name(s));
			fputs("egress_path_state", f);
			labels(f, o, egress, extra);
			fprintf(f, " %d\n", strcmp(json_string_value(json_object_get(o, "state")) ?: "", eg_path_state_name(s)) == 0);
		}
	}
	per_item_all(f, path_metrics, list, egress);
}

static void wireguard(FILE *f, struct cp_state *st)
{
	static const char *const peer[] = {"peer", "name", "public_key", "public_key", NULL};
	json_t *wg = cp_wg_show(st);
	const json_t *peers = json_object_get(wg, "peers");

	per_item_all(f, peer_metrics, peers, peer);
	for (const struct item_metric *d = wg_metrics; d->name; d++) {
		family(f, d->name, d->type, d->help);
		fputs(d->name, f);
		value(f, json_object_get(wg, d->key), 1);
	}
	json_decref(wg);
}

static void ipsec(FILE *f, struct cp_state *st)
{
	static const char *const sa[] = {"spi", "spi", "direction", "direction", NULL};
	json_t *sas = json_array();
	const json_t *o;
	size_t i;

	for (unsigned s = 0; s < st->ipsec.n; s++)
		json_array_append_new(sas, cp_ipsec_sa_json(st, &st->ipsec.sas[s]));
	per_item_all(f, sa_metrics, sas, sa);
	family(f, "egress_ipsec_sa_active", "gauge", "Whether an SA is installed and carrying traffic.");
	json_array_foreach(sas, i, o) {
		fputs("egress_ipsec_sa_active", f);
		labels(f, o, sa, NULL);
		fprintf(f, " %d\n", strcmp(json_string_value(json_object_get(o, "state")) ?: "", "active") == 0);
	}
	json_decref(sas);
}

static void table_and_daemon(FILE *f, struct cp_state *st, const json_t *status)
{
	static const char *const build[] = {"version", "version", "instance", "instance", NULL};
	const struct cp_publish_stats *p = &st->publishes;
	const json_t *dp = json_object_get(status, "dataplane");

	family(f, "egress_build_info", "gauge", "Version and instance of this egress-control.");
	fputs("egress_build_info", f);
	labels(f, status, build, NULL);
	fputs(" 1\n", f);
	family(f, "egress_control_uptime_seconds", "gauge", "Seconds since egress-control started.");
	fputs("egress_control_uptime_seconds", f);
	value(f, json_object_get(status, "uptime_s"), 1);
	family(f, "egress_control_clients", "gauge", "Clients connected to the control socket.");
	fprintf(f, "egress_control_clients %u\n", st->rpc ? cp_rpc_server_clients(st->rpc) : 0);
	family(f, "egress_dataplane_attached", "gauge", "Whether control is attached to a live dataplane.");
	fputs("egress_dataplane_attached", f);
	value(f, json_object_get(dp, "attached"), 1);
	family(f, "egress_table_generation", "gauge", "Generation of the egress table the workers run on.");
	fprintf(f, "egress_table_generation %llu\n", (unsigned long long)st->generation);
	family(f, "egress_table_publishes_total", "counter", "Table publishes, by result.");
	fprintf(f, "egress_table_publishes_total{result=\"ok\"} %llu\n", (unsigned long long)p->ok);
	fprintf(f, "egress_table_publishes_total{result=\"failed\"} %llu\n", (unsigned long long)p->failed);
	family(f, "egress_table_publish_duration_seconds", "histogram",
	       "Time from publishing a table to every worker running on it.");
	for (unsigned i = 0; i < CP_PUBLISH_BUCKETS; i++)
		fprintf(f, "egress_table_publish_duration_seconds_bucket{le=\"%g\"} %llu\n", cp_publish_bounds[i],
			(unsigned long long)p->le[i]);
	fprintf(f, "egress_table_publish_duration_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)p->ok);
	fprintf(f, "egress_table_publish_duration_seconds_sum %.9g\n", p->seconds_sum);
	fprintf(f, "egress_table_publish_duration_seconds_count %llu\n", (unsigned long long)p->ok);
}

static const struct item_metric nat_metrics[] = {
	{"egress_nat_sessions", "gauge", "sessions", 1, "Source NAT sessions (a mapping and one remote address)."},
	{"egress_nat_mappings", "gauge", "mappings", 1, "Source NAT mappings (an inside endpoint's outside one)."},
	{"egress_nat_hosts", "gauge", "hosts", 1, "Inside hosts holding source NAT port blocks."},
	{"egress_nat_blocks", "gauge", "blocks", 1, "Port blocks held by inside hosts."},
	{"egress_nat_sessions_created_total", "counter", "created", 1, "Source NAT sessions made."},
	{"egress_nat_sessions_expired_total", "counter", "expired", 1, "Source NAT sessions ended by their idle timeout."},
	{"egress_nat_sessions_ended_total", "counter", "ended", 1,
	 "Source NAT sessions ended because their pool address was removed."},
	{NULL, NULL, NULL, 0, NULL},
};

static const struct item_metric nat_addr_metrics[] = {
	{"egress_nat_pool_hosts", "gauge", "hosts", 1, "Inside hosts on a pool address."},
	{"egress_nat_pool_blocks_used", "gauge", "blocks_used", 1, "Port blocks in use on a pool address."},
	{"egress_nat_pool_blocks", "gauge", "blocks", 1, "Port blocks a pool address has."},
	{NULL, NULL, NULL, 0, NULL},
};

static void nat(FILE *f, struct cp_state *st)
{
	static const char *const addr[] = {"address", "address", "egress", "egress", NULL};
	json_t *params = json_pack("{s:i}", "limit", 0), *r = call_with(st, "nat.sessions", params);
	const json_t *pk = json_object_get(r, "packets");

	json_decref(params);
	if (json_is_true(json_object_get(r, "attached"))) {
		for (const struct item_metric *d = nat_metrics; d->name; d++) {
			family(f, d->name, d->type, d->help);
			fputs(d->name, f);
			value(f, json_object_get(r, d->key), 1);
		}
		family(f, "egress_nat_packets_total", "counter", "Packets source NAT translated, by direction.");
		fprintf(f, "egress_nat_packets_total{direction=\"out\"} %" JSON_INTEGER_FORMAT "\n",
			json_integer_value(json_object_get(pk, "out")));
		fprintf(f, "egress_nat_packets_total{direction=\"in\"} %" JSON_INTEGER_FORMAT "\n",
			json_integer_value(json_object_get(pk, "in")));
		per_item_all(f, nat_addr_metrics, json_object_get(r, "addresses"), addr);
	}
	json_decref(r);
}

static bool any_snat(const struct cp_state *st)
{
	for (unsigned i = 0; i < st->n_egresses; i++)
		if (st->egresses[i].n_snat)
			return true;
	return false;
}

void cp_metrics_render(void *ctx, FILE *f)
{
	struct cp_state *st = ctx;
	json_t *status = call(st, "status"), *stats = call(st, "stats.get"), *paths = call(st, "path.list");

	table_and_daemon(f, st, status);
	ports_and_workers(f, stats);
	paths_and_policies(f, stats, paths);
	if (st->wg.present)
		wireguard(f, st);
	if (st->ipsec.n)
		ipsec(f, st);
	if (any_snat(st))
		nat(f, st);
	json_decref(status);
	json_decref(stats);
	json_decref(paths);
}
