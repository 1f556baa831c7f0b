#include "churn.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <rte_cycles.h>
#include <rte_launch.h>
#include <rte_lcore.h>

#include "blob.h"
#include "offline.h"
#include "table.h"
#include "scenario.h"
#include "shm.h"

enum { CHURN_TIMEOUT_MS = 100 };

static struct {
	unsigned rate, lcore;
	bool stop;				/* atomic */
	uint64_t start_tsc, stop_tsc;		/* when the publisher was started and when told to
						 * stop: its rate is over that span */
	struct eg_blob tables[2];		/* spare up, spare down */
	struct bench_churn_stats stats;
} churn;

static int publisher(void *arg)
{
	struct eg_shm_hdr *h = bench_context()->ctx.shm.hdr;
	struct timespec next;

	(void)arg;
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (unsigned i = 0; !__atomic_load_n(&churn.stop, __ATOMIC_RELAXED); i++) {
		const struct eg_blob *b = &churn.tables[i & 1];
		uint64_t gen;

		/* Sleeping to the next tick, as a control process between publishes would, leaves
		 * the CPU to whoever shares it with us. */
		next.tv_nsec += 1000000000L / churn.rate;
		while (next.tv_nsec >= 1000000000L) {
			next.tv_nsec -= 1000000000L;
			next.tv_sec++;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
		bool done = eg_shm_publish(h, b->data, b->len, CHURN_TIMEOUT_MS, &gen) == 0 &&
			    eg_shm_wait_grace(h, gen, CHURN_TIMEOUT_MS) == 0;

		/* A publish the end of the run overtook is no timeout: the workers stopped passing
		 * quiescent states when their run ended, and its grace period waited for them
		 * until the timeout (every run counted one, and its rate took the 100 ms). One
		 * that completed did reach them. */
		if (!done && __atomic_load_n(&churn.stop, __ATOMIC_ACQUIRE))
			break;
		if (done)
			churn.stats.publishes++;
		else
			churn.stats.timeouts++;
	}
	return 0;
}

int bench_churn_start(unsigned rate)
{
	struct dp_offline *f = bench_context();
	const struct eg_config *c = &f->ctx.cfg;
	uint8_t state[EG_MAX_EGRESSES];
	int spare = -1;

	for (unsigned e = 0; e < c->n_egresses; e++)
		if (strcmp(c->egresses[e].name, "spare") == 0)
			spare = (int)e;
	churn.lcore = RTE_MAX_LCORE;
	for (unsigned l = rte_get_next_lcore(-1, 1, 0); l < RTE_MAX_LCORE; l = rte_get_next_lcore(l, 1, 0))
		churn.lcore = l;
	if (spare < 0 || rate == 0 || churn.lcore >= RTE_MAX_LCORE) {
		fprintf(stderr, "egress-bench: table churn needs a second CPU and the spare egress\n");
		return -1;
	}
	memset(state, EG_PATH_UP, sizeof(state));
	dp_offline_build_table(f, state, &churn.tables[0]);
	state[spare] = EG_PATH_DOWN;
	dp_offline_build_table(f, state, &churn.tables[1]);
	churn.rate = rate;
	memset(&churn.stats, 0, sizeof(churn.stats));
	__atomic_store_n(&churn.stop, false, __ATOMIC_RELAXED);
	churn.start_tsc = rte_rdtsc();
	if (rte_eal_remote_launch(publisher, NULL, churn.lcore) != 0) {
		fprintf(stderr, "egress-bench: lcore %u is busy\n", churn.lcore);
		eg_blob_free(&churn.tables[0]);
		eg_blob_free(&churn.tables[1]);
		return -1;
	}
	return 0;
}

void bench_churn_stop(struct bench_churn_stats *out)
{
	churn.stop_tsc = rte_rdtsc();
	__atomic_store_n(&churn.stop, true, __ATOMIC_RELEASE);
	rte_eal_wait_lcore(churn.lcore);
	churn.stats.seconds = (double)(churn.stop_tsc - churn.start_tsc) / (double)rte_get_tsc_hz();
	*out = churn.stats;
	eg_blob_free(&churn.tables[0]);
	eg_blob_free(&churn.tables[1]);
}
