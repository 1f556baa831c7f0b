#include "ledger.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sa.h"
#include "wg_slot.h"

enum { REPORT_MAX = 8 };	/* differences named per worker; the count has them all */

/* The bytes from the block's start to the end of its WireGuard counters. */
static size_t block_size(const struct eg_shm_hdr *h, struct eg_worker_shm *w)
{
	return (size_t)((const uint8_t *)(eg_shm_wg_counters(h, w) + h->n_wg_slots) - (const uint8_t *)w);
}

int bench_ledger_open(struct bench_ledger *l, const struct eg_shm_hdr *h, struct eg_worker_shm *w)
{
	size_t size = block_size(h, w), room = (size + 63) / 64 * 64;

	*l = (struct bench_ledger){.h = h, .w = w, .size = size};
	l->before = aligned_alloc(64, room);
	l->want = aligned_alloc(64, room);
	if (!l->before || !l->want) {
		free(l->before);
		free(l->want);
		return -1;
	}
	memcpy(l->before, w, size);
	memset(l->want, 0, size);
	return 0;
}

void bench_ledger_egress(struct bench_ledger *l, int egress_id, uint64_t bytes)
{
	if (egress_id < 0)
		return;
	eg_shm_egress_counters(l->want)[egress_id].tx_packets++;
	eg_shm_egress_counters(l->want)[egress_id].tx_bytes += bytes;
}

void bench_ledger_policy(struct bench_ledger *l, int policy_id)
{
	if (policy_id >= 0)
		eg_shm_policy_hits(l->want)[policy_id]++;
}

void bench_ledger_sa(struct bench_ledger *l, int slot, uint64_t inner_bytes)
{
	if (slot < 0)
		return;
	eg_shm_sa_counters(l->want)[slot].packets++;
	eg_shm_sa_counters(l->want)[slot].bytes += inner_bytes;
}

void bench_ledger_wg_tx(struct bench_ledger *l, int slot, uint64_t message_bytes)
{
	if (slot < 0)
		return;
	eg_shm_wg_counters(l->h, l->want)[slot].tx_packets++;
	eg_shm_wg_counters(l->h, l->want)[slot].tx_bytes += message_bytes;
}

void bench_ledger_wg_rx(struct bench_ledger *l, int slot, uint64_t message_bytes)
{
	if (slot < 0)
		return;
	eg_shm_wg_counters(l->h, l->want)[slot].rx_packets++;
	eg_shm_wg_counters(l->h, l->want)[slot].rx_bytes += message_bytes;
}

void bench_ledger_nat_out(struct bench_ledger *l)
{
	l->want->nat_out++;
}

/* The name of the counter at byte off of a worker block, for a message. Slots are named
 * by config position, as dataplane/offline.c installs SAs and peers. */
static void counter_name(const struct bench_ledger *l, const struct eg_config *cfg, size_t off, char *out,
			 size_t cap)
{
	static const char *const egress_field[] = {"tx_packets", "tx_bytes"};
	static const char *const sa_field[] = {"packets", "bytes", "auth_failures", "replays", "padding_errors",
					       "other_drops", "pad", "pad"};
	static const char *const wg_field[] = {"rx_packets", "rx_bytes", "tx_packets", "tx_bytes"};
	size_t egresses = (size_t)((uint8_t *)eg_shm_egress_counters(l->want) - (uint8_t *)l->want);
	size_t hits = (size_t)((uint8_t *)eg_shm_policy_hits(l->want) - (uint8_t *)l->want);
	size_t sas = (size_t)((uint8_t *)eg_shm_sa_counters(l->want) - (uint8_t *)l->want);
	size_t wgs = (size_t)((uint8_t *)eg_shm_wg_counters(l->h, l->want) - (uint8_t *)l->want);
	size_t i;

	if (off >= wgs) {
		i = (off - wgs) / sizeof(struct eg_wg_counters);
		snprintf(out, cap, "WireGuard peer %s %s", i < cfg->wg.n_peers ? cfg->wg.peers[i].name : "(none)",
			 wg_field[(off - wgs) % sizeof(struct eg_wg_counters) / 8]);
	} else if (off >= sas) {
		i = (off - sas) / sizeof(struct eg_sa_counters);
		if (i < cfg->n_sas)
			snprintf(out, cap, "SA %" PRIu32 " %s %s", cfg->sas[i].spi,
				 cfg->sas[i].dir == EG_SA_DIR_IN ? "in" : "out",
				 sa_field[(off - sas) % sizeof(struct eg_sa_counters) / 8]);
		else
			snprintf(out, cap, "SA slot %zu (none)", i);
	} else if (off >= hits) {
		i = (off - hits) / 8;
		snprintf(out, cap, "policy %s hits", i < cfg->n_policies ? cfg->policies[i].name : "(none)");
	} else if (off >= egresses) {
		i = (off - egresses) / sizeof(struct eg_egress_counters);
		snprintf(out, cap, "egress %s %s", i < cfg->n_egresses ? cfg->egresses[i].name : "(none)",
			 egress_field[(off - egresses) % sizeof(struct eg_egress_counters) / 8]);
	} else {
		static const char *const nat_field[] = {"nat_out", "nat_in", "nat_in_other_worker", "nat_created"};

		snprintf(out, cap, "%s", nat_field[(off - offsetof(struct eg_worker_shm, nat_out)) / 8]);
	}
}

uint64_t bench_ledger_close(struct bench_ledger *l, const struct eg_config *cfg, const char *who)
{
	/* Source NAT's four counters, then everything from the egress counters on. */
	size_t nat_lo = offsetof(struct eg_worker_shm, nat_out), nat_hi = offsetof(struct eg_worker_shm, flow_lookups);
	size_t lo = sizeof(struct eg_worker_shm);
	const uint8_t *now = (const uint8_t *)l->w, *was = (const uint8_t *)l->before, *want = (const uint8_t *)l->want;
	uint64_t differ = 0;

	for (size_t off = nat_lo; off + 8 <= l->size; off += 8) {
		uint64_t a, b, w;

		if (off == nat_hi)
			off = lo;
		memcpy(&a, now + off, 8);
		memcpy(&b, was + off, 8);
		memcpy(&w, want + off, 8);
		if (a - b == w)
			continue;
		if (differ++ < REPORT_MAX) {
			char name[160];

			counter_name(l, cfg, off, name, sizeof(name));
			fprintf(stderr, "egress-bench: %s: %s went up by %" PRIu64 ", the frames say %" PRIu64 "\n", who,
				name, a - b, w);
		}
	}
	if (differ > REPORT_MAX)
		fprintf(stderr, "egress-bench: %s: %" PRIu64 " counters differ in all\n", who, differ);
	free(l->before);
	free(l->want);
	l->before = l->want = NULL;
	return differ;
}
