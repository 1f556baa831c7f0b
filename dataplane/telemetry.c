#include "telemetry.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_telemetry.h>

#include "table.h"

/* Telemetry callbacks run on DPDK's telemetry thread, which has no other way to us. */
static const struct dp_ctx *tel_ctx;

struct egress_view {
	uint16_t id;
	uint8_t type, state;
	char name[EG_NAME_LEN];
};

/* The current table's egresses, copied out. The telemetry thread is no QSBR reader, so the
 * copy is taken the seqlock way: a slot is only rewritten after `current` moved past it,
 * and `current` never repeats (the generation grows), so a copy made while `current` did
 * not change is whole. Returns how many, or -1 when there is no table. */
static int egresses_now(struct egress_view *out, unsigned max)
{
	const struct eg_shm_hdr *h = tel_ctx->shm.hdr;

	for (unsigned attempt = 0; attempt < 100; attempt++) {
		uint64_t cur = __atomic_load_n(&h->current, __ATOMIC_ACQUIRE), gen;
		const struct eg_table_hdr *t = eg_shm_table_acquire(h, &gen);
		unsigned n;

		if (!t)
			return -1;
		n = t->n_egresses;
		/* Torn values must not lead the copy out of the slot. */
		if (n <= max && t->egresses_off + (uint64_t)n * sizeof(struct eg_table_egress) <= h->slot_size) {
			const struct eg_table_egress *e = eg_table_egresses(t);

			for (unsigned i = 0; i < n; i++) {
				out[i].id = e[i].id;
				out[i].type = e[i].type;
				out[i].state = e[i].state;
				memcpy(out[i].name, e[i].name, EG_NAME_LEN);
				out[i].name[EG_NAME_LEN - 1] = '\0';
			}
		}
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&h->current, __ATOMIC_RELAXED) == cur)
			return n <= max ? (int)n : -1;
	}
	return -1;
}

static int cmd_info(const char *cmd, const char *params, struct rte_tel_data *d)
{
	const struct eg_shm_hdr *h = tel_ctx->shm.hdr;

	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_string(d, "instance", tel_ctx->cfg.instance);
	rte_tel_data_add_dict_string(d, "shared_memory", tel_ctx->shm.name);
	rte_tel_data_add_dict_int(d, "workers", (int)tel_ctx->n_workers);
	rte_tel_data_add_dict_int(d, "ports", (int)tel_ctx->n_ports);
	rte_tel_data_add_dict_u64(d, "generation", eg_shm_generation(h));
	rte_tel_data_add_dict_int(d, "capturing", __atomic_load_n(&h->capture.session, __ATOMIC_RELAXED) != 0);
	return 0;
}

static int cmd_stats(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct eg_worker_shm sum = {0};

	for (unsigned w = 0; w < tel_ctx->n_workers; w++) {
		const struct eg_worker_shm *ws = eg_shm_worker(tel_ctx->shm.hdr, w);

		sum.rx_packets += ws->rx_packets;
		sum.tx_packets += ws->tx_packets;
		sum.drops += ws->drops;
		sum.reassembled += ws->reassembled;
		sum.probes_sent += ws->probes_sent;
		sum.probe_answers += ws->probe_answers;
		sum.probes_reflected += ws->probes_reflected;
	}
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_u64(d, "rx_packets", sum.rx_packets);
	rte_tel_data_add_dict_u64(d, "tx_packets", sum.tx_packets);
	rte_tel_data_add_dict_u64(d, "drops", sum.drops);
	rte_tel_data_add_dict_u64(d, "reassembled", sum.reassembled);
	rte_tel_data_add_dict_u64(d, "probes_sent", sum.probes_sent);
	rte_tel_data_add_dict_u64(d, "probe_answers", sum.probe_answers);
	rte_tel_data_add_dict_u64(d, "probes_reflected", sum.probes_reflected);
	return 0;
}

static int cmd_drops(const char *cmd, const char *params, struct rte_tel_data *d)
{
	uint64_t n[EG_DROP_MAX];

	eg_shm_drops_sum(tel_ctx->shm.hdr, n);
	rte_tel_data_start_dict(d);
	for (unsigned r = 0; r < EG_DROP_MAX; r++)
		rte_tel_data_add_dict_u64(d, eg_drop_names[r], n[r]);
	return 0;
}

static int cmd_ports(const char *cmd, const char *params, struct rte_tel_data *d)
{
	rte_tel_data_start_array(d, RTE_TEL_STRING_VAL);
	for (unsigned i = 0; i < tel_ctx->n_ports; i++)
		rte_tel_data_add_array_string(d, tel_ctx->cfg.dataplane.ports[i].name);
	return 0;
}

/* A port by name or index, as /ethdev/stats takes an id. */
static int port_param(const char *params)
{
	char *end;
	long v;
	int by_name;

	if (!params || !*params)
		return -1;
	by_name = eg_config_port_index(&tel_ctx->cfg.dataplane, params);
	if (by_name >= 0)
		return by_name;
	v = strtol(params, &end, 10);
	return *end == '\0' && v >= 0 && v < (long)tel_ctx->n_ports ? (int)v : -1;
}

static int cmd_port_stats(const char *cmd, const char *params, struct rte_tel_data *d)
{
	int p = port_param(params);
	struct eg_port_counters sum;
	const struct eg_shm_hdr *h = tel_ctx->shm.hdr;

	if (p < 0)
		return -EINVAL;
	eg_shm_port_sum(h, (unsigned)p, &sum);
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_string(d, "name", tel_ctx->cfg.dataplane.ports[p].name);
	rte_tel_data_add_dict_int(d, "ethdev_port", tel_ctx->ports[p].port_id);
	rte_tel_data_add_dict_int(d, "link_up", __atomic_load_n(&h->ports[p].link_up, __ATOMIC_RELAXED));
	rte_tel_data_add_dict_u64(d, "rx_packets", sum.rx_packets);
	rte_tel_data_add_dict_u64(d, "rx_bytes", sum.rx_bytes);
	rte_tel_data_add_dict_u64(d, "tx_packets", sum.tx_packets);
	rte_tel_data_add_dict_u64(d, "tx_bytes", sum.tx_bytes);
	rte_tel_data_add_dict_u64(d, "drops", sum.drops);
	return 0;
}

static int cmd_workers(const char *cmd, const char *params, struct rte_tel_data *d)
{
	rte_tel_data_start_array(d, RTE_TEL_INT_VAL);
	for (unsigned w = 0; w < tel_ctx->n_workers; w++)
		rte_tel_data_add_array_int(d, (int)w);
	return 0;
}

static int cmd_worker_stats(const char *cmd, const char *params, struct rte_tel_data *d)
{
	char *end;
	long w = params && *params ? strtol(params, &end, 10) : -1;
	const struct eg_worker_shm *ws;

	if (w < 0 || w >= (long)tel_ctx->n_workers || *end)
		return -EINVAL;
	ws = eg_shm_worker(tel_ctx->shm.hdr, (unsigned)w);
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_int(d, "lcore", (int)ws->lcore);
	rte_tel_data_add_dict_u64(d, "rx_packets", ws->rx_packets);
	rte_tel_data_add_dict_u64(d, "tx_packets", ws->tx_packets);
	rte_tel_data_add_dict_u64(d, "drops", ws->drops);
	rte_tel_data_add_dict_u64(d, "busy_loops", ws->busy_loops);
	rte_tel_data_add_dict_u64(d, "idle_loops", ws->idle_loops);
	rte_tel_data_add_dict_u64(d, "quiescent_generation", __atomic_load_n(&ws->quiescent, __ATOMIC_RELAXED));
	/* The flow cache's counters, as stats.get and /metrics show them. */
	rte_tel_data_add_dict_u64(d, "flow_cache_lookups", ws->flow_lookups);
	rte_tel_data_add_dict_u64(d, "flow_cache_misses", ws->flow_misses);
	rte_tel_data_add_dict_u64(d, "flow_cache_evictions", ws->flow_evictions);
	rte_tel_data_add_dict_u64(d, "flow_cache_capacity", ws->flow_capacity);
	rte_tel_data_add_dict_u64(d, "flow_cache_relocations", ws->flow_relocations);
	rte_tel_data_add_dict_u64(d, "flow_cache_grows", ws->flow_grows);
	return 0;
}

static int cmd_egresses(const char *cmd, const char *params, struct rte_tel_data *d)
{
	static struct egress_view v[EG_MAX_EGRESSES];	/* one telemetry thread */
	int n = egresses_now(v, EG_MAX_EGRESSES);

	rte_tel_data_start_array(d, RTE_TEL_STRING_VAL);
	for (int i = 0; i < n; i++)
		rte_tel_data_add_array_string(d, v[i].name);
	return 0;
}

static int cmd_egress_stats(const char *cmd, const char *params, struct rte_tel_data *d)
{
	static struct egress_view v[EG_MAX_EGRESSES];
	int n = egresses_now(v, EG_MAX_EGRESSES);
	uint64_t pkts, bytes;

	for (int i = 0; i < n; i++) {
		if (!params || strcmp(v[i].name, params) != 0)
			continue;
		eg_shm_egress_sum(tel_ctx->shm.hdr, v[i].id, &pkts, &bytes);
		rte_tel_data_start_dict(d);
		rte_tel_data_add_dict_string(d, "name", v[i].name);
		rte_tel_data_add_dict_string(d, "type", eg_egress_type_name(v[i].type));
		rte_tel_data_add_dict_string(d, "state", eg_path_state_name(v[i].state));
		rte_tel_data_add_dict_int(d, "id", v[i].id);
		rte_tel_data_add_dict_u64(d, "tx_packets", pkts);
		rte_tel_data_add_dict_u64(d, "tx_bytes", bytes);
		return 0;
	}
	return -EINVAL;
}

static const struct {
	const char *cmd;
	telemetry_cb fn;
	const char *help;
} commands[] = {
	{"/egress/info", cmd_info, "Instance, workers, ports, table generation. Takes no parameters."},
	{"/egress/stats", cmd_stats, "Packet totals over all workers. Takes no parameters."},
	{"/egress/drops", cmd_drops, "Dropped packets by reason. Takes no parameters."},
	{"/egress/ports", cmd_ports, "Names of the ports. Takes no parameters."},
	{"/egress/port_stats", cmd_port_stats, "A port's counters. Parameters: port name or index."},
	{"/egress/workers", cmd_workers, "Worker ids. Takes no parameters."},
	{"/egress/worker_stats", cmd_worker_stats, "A worker's counters. Parameters: worker id."},
	{"/egress/egresses", cmd_egresses, "Names of the egresses in the current table. Takes no parameters."},
	{"/egress/egress_stats", cmd_egress_stats,
	 "An egress's type, path state and transmit counters (since the dataplane started). Parameters: name."},
};

void dp_telemetry_register(const struct dp_ctx *ctx)
{
	tel_ctx = ctx;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (rte_telemetry_register_cmd(commands[i].cmd, commands[i].fn, commands[i].help) != 0)
			fprintf(stderr, "egress-dataplane: telemetry command %s not registered\n", commands[i].cmd);
}
