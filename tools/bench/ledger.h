/* egress-bench --check: what a run should have added to a worker's counters in shared
 * memory, written down by the bench frame by frame as it checks each output, and at the
 * end compared with what the worker did add. The counters are the ones operators read
 * (egressctl stats, telemetry): each egress's transmitted packets and bytes, each policy's
 * hits, each SA's and WireGuard peer's packets, bytes and errors, and source NAT's
 * translations. A frame counted twice, on the wrong SA, or not at all shows up here even
 * when the frame itself is right. Drop counters are the caller's to check (it requires
 * none); the per-port and per-loop counters, which the worker loop mostly keeps around
 * dp_worker_process, are not compared. */
#ifndef BENCH_LEDGER_H
#define BENCH_LEDGER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "shm.h"

struct bench_ledger {
	const struct eg_shm_hdr *h;
	struct eg_worker_shm *w;	/* the worker's counter block */
	size_t size;			/* of it, from its start to the WireGuard counters' end */
	struct eg_worker_shm *before;	/* a copy at the start */
	struct eg_worker_shm *want;	/* zero at the start; what the frames should add */
};

/* Copies worker w's counters as they are now. 0, or -1 when out of memory. */
int bench_ledger_open(struct bench_ledger *l, const struct eg_shm_hdr *h, struct eg_worker_shm *w);

/* What one frame should add, by the counter's home; a negative id or slot adds nothing. */
void bench_ledger_egress(struct bench_ledger *l, int egress_id, uint64_t bytes);
void bench_ledger_policy(struct bench_ledger *l, int policy_id);
void bench_ledger_sa(struct bench_ledger *l, int slot, uint64_t inner_bytes);
void bench_ledger_wg_tx(struct bench_ledger *l, int slot, uint64_t message_bytes);
void bench_ledger_wg_rx(struct bench_ledger *l, int slot, uint64_t message_bytes);
void bench_ledger_nat_out(struct bench_ledger *l);

/* Compares what the worker added since bench_ledger_open with what the frames should
 * have added, counter by counter (a counter no frame named must not have moved), names
 * the first differences on stderr (who: the scenario and worker, for the message) and
 * frees the copies. Returns how many counters differ. */
uint64_t bench_ledger_close(struct bench_ledger *l, const struct eg_config *cfg, const char *who);

#endif
