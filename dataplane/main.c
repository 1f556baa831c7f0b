/* egress-dataplane: the DPDK primary process. See README "Running it". */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>

#include "context.h"
#include "flow_cache.h"
#include "nat.h"
#include "neigh.h"
#include "ports.h"
#include "routes.h"
#include "runtime_dir.h"
#include "segment.h"
#include "service.h"
#include "telemetry.h"
#include "reassembly.h"
#include "worker.h"

#define LOG(fmt, ...) fprintf(stderr, "egress-dataplane: " fmt "\n", ##__VA_ARGS__)

static struct dp_ctx ctx;

static void on_signal(int sig)
{
	(void)sig;
	__atomic_store_n(&ctx.stop, true, __ATOMIC_RELAXED);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: egress-dataplane -c CONFIG [-- EAL ARGS...]\n"
		   "  EAL arguments come from dataplane.eal in the config, then from after --.\n");
}

static bool has_arg(char **argv, int argc, const char *prefix)
{
	for (int i = 0; i < argc; i++)
		if (strncmp(argv[i], prefix, strlen(prefix)) == 0)
			return true;
	return false;
}

/* argv for rte_eal_init: the config's EAL arguments, the command line's, the devices.
 * *made lists (NULL-terminated) the strings made here, for freeing at exit: rte_eal_init
 * reorders argv, so argv itself cannot tell them apart from the borrowed ones later. */
static int eal_argv(char *prog, int extra_argc, char **extra, char ***out, char ***made)
{
	const struct eg_dataplane_cfg *dp = &ctx.cfg.dataplane;
	int max = 4 + (int)dp->n_eal + extra_argc + 2 * (int)dp->n_ports;
	char **argv = calloc((size_t)max + 1, sizeof(*argv));
	int argc = 0, first_made;

	if (!argv)
		return -ENOMEM;
	argv[argc++] = prog;
	for (unsigned i = 0; i < dp->n_eal; i++)
		argv[argc++] = dp->eal[i];
	for (int i = 0; i < extra_argc; i++)
		argv[argc++] = extra[i];
	first_made = argc;
	/* Two instances on one host must not share DPDK's runtime files. */
	if (!has_arg(argv, argc, "--file-prefix")) {
		char buf[64];

		snprintf(buf, sizeof(buf), "--file-prefix=egress-%s", ctx.cfg.instance);
		argv[argc++] = strdup(buf);
	}
	argc = dp_ports_eal_args(dp, argv, argc, max);
	*out = argv;
	*made = argc >= first_made ? calloc((size_t)(argc - first_made) + 1, sizeof(**made)) : NULL;
	if (*made)
		memcpy(*made, argv + first_made, sizeof(*argv) * (size_t)(argc - first_made));
	return argc;
}

static int create_workers(void)
{
	/* struct dp_worker is cache-line aligned; calloc would not honour that. */
	ctx.workers = rte_zmalloc("workers", ctx.n_workers * sizeof(*ctx.workers), RTE_CACHE_LINE_SIZE);
	if (!ctx.workers)
		return -ENOMEM;
	for (unsigned w = 0; w < ctx.n_workers; w++)
		if (dp_worker_init(&ctx, &ctx.workers[w], w) != 0)
			return -ENOMEM;
	return 0;
}

int main(int argc, char **argv)
{
	const char *config = NULL;
	struct eg_error err;
	char **eal = NULL, **eal_made = NULL, runtime_dir[PATH_MAX];
	int eal_argc, rc, opt, extra = argc;

	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--") == 0) {
			extra = i;
			break;
		}
	while ((opt = getopt(extra, argv, "c:h")) != -1) {
		switch (opt) {
		case 'c':
			config = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!config) {
		usage(stderr);
		return 2;
	}
	if (eg_config_load(config, &ctx.cfg, &err) != 0) {
		LOG("bad config %s: %s: %s", config, err.path, err.msg);
		return 1;
	}
	ctx.n_workers = ctx.cfg.dataplane.workers;
	eal_argc = eal_argv(argv[0], extra < argc ? argc - extra - 1 : 0, argv + extra + 1, &eal, &eal_made);
	if (eal_argc < 0) {
		LOG("too many EAL arguments");
		return 1;
	}
	rc = rte_eal_init(eal_argc, eal);
	if (rc < 0) {
		LOG("EAL init failed: %s", rte_strerror(rte_errno));
		return 1;
	}
	if (rte_lcore_count() < ctx.n_workers + 1) {
		LOG("%u worker(s) need %u lcores (one for the service loop); EAL gave %u: widen -l",
		    ctx.n_workers, ctx.n_workers + 1, rte_lcore_count());
		rc = 1;
		goto out_eal;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	ctx.tsc_hz = rte_get_tsc_hz();

	unsigned nb_mbufs = ctx.cfg.dataplane.n_ports * ctx.n_workers * (DP_RX_DESC + DP_TX_DESC + DP_BURST * 2) +
			    ctx.n_workers * (DP_PUNT_RING + DP_INJECT_RING) + 4096;

	ctx.pool = rte_pktmbuf_pool_create("mbufs", nb_mbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
					   (int)rte_socket_id());
	ctx.neigh = dp_neigh_create((int)rte_socket_id());
	if (!ctx.pool || !ctx.neigh) {
		LOG("out of memory for %u mbufs and the neighbour table (raise -m)", nb_mbufs);
		rc = 1;
		goto out_eal;
	}
	/* Workers and the control process must expand and use keys for the same library
	 * architecture: pick it once and publish it in the segment. */
	{
		struct eg_aead_ctx probe;

		if (eg_aead_ctx_init(&probe, IMB_ARCH_NONE) != 0) {
			LOG("intel-ipsec-mb cannot start on this CPU");
			rc = 1;
			goto out_eal;
		}
		ctx.imb_arch = probe.arch;
		eg_aead_ctx_free(&probe);
	}
	rc = dp_segment_create(&ctx);
	if (rc || (rc = create_workers()) != 0 || (rc = dp_ports_init(&ctx)) != 0 ||
	    (rc = dp_routes_init(&ctx)) != 0) {
		rc = 1;
		goto out;
	}
	ctx.nat = eg_shm_nat(ctx.shm.hdr);
	dp_segment_describe_ports(&ctx);
	dp_service_init(&ctx);
	dp_telemetry_register(&ctx);

	unsigned w = 0, lcore;

	RTE_LCORE_FOREACH_WORKER(lcore) {
		if (w == ctx.n_workers)
			break;
		ctx.workers[w].lcore = lcore;
		rte_eal_remote_launch(dp_worker_main, &ctx.workers[w], lcore);
		w++;
	}
	LOG("instance %s: %u worker(s), %u port(s), shared memory %s", ctx.cfg.instance, ctx.n_workers,
	    ctx.n_ports, ctx.shm.name);
	dp_service_run(&ctx);
	rte_eal_mp_wait_lcore();
	LOG("stopping");
	rc = 0;
out:
	dp_ports_close(&ctx);
	for (unsigned i = 0; ctx.workers && i < ctx.n_workers; i++) {
		eg_reasm_free(ctx.workers[i].reasm);
		dp_flow_cache_free(ctx.workers[i].flows);
	}
	dp_routes_free(&ctx);
	dp_nat_service_free();
	dp_segment_destroy(&ctx);
out_eal:
	/* Copied first: the path lives in EAL's configuration. */
	snprintf(runtime_dir, sizeof(runtime_dir), "%s", rte_eal_get_runtime_dir());
	rte_eal_cleanup();
	/* No secondary process can attach to a primary that has gone, so nothing needs the
	 * directory any more (a crash leaves it; the next start under the same prefix takes
	 * it over). */
	dp_runtime_dir_remove(runtime_dir);
	for (char **s = eal_made; s && *s; s++)
		free(*s);
	free(eal_made);
	free(eal);
	eg_config_free(&ctx.cfg);
	return rc;
}
