/* Table churn for egress-bench: a publisher on its own lcore that publishes tables at a
 * fixed rate while the workers forward, as the control process does when probes flip a
 * path's state. Tables alternate between the config's with the spare egress up and with
 * it down (so its failover policy moves to the direct egress); each publish waits, as
 * control does, until every worker runs on the new generation. */
#ifndef BENCH_CHURN_H
#define BENCH_CHURN_H

#include <stdint.h>

struct bench_churn_stats {
	uint64_t publishes;		/* confirmed by every worker */
	uint64_t timeouts;		/* publishes or confirmations that took over 100 ms */
	double seconds;
};

/* Starts publishing rate tables a second on the last lcore (bench_run leaves it free). 0, or -1 when
 * there is no such lcore (message on stderr). */
int bench_churn_start(unsigned rate);

/* Stops the publisher and says what it did. */
void bench_churn_stop(struct bench_churn_stats *out);

#endif
