/* The shared-memory segment between egress-dataplane (creates it) and egress-control
 * (attaches to it): layout, counters, and the generation publish/read protocol.
 *
 * Everything is addressed by offsets from the segment start, so the processes may map it
 * anywhere. Tables are published RCU-style: the control process writes a whole new
 * generation into the slot no worker can be reading, then makes it current with one
 * release store. Workers load-acquire `current` once per burst and announce a quiescent
 * state (QSBR) once per loop; a slot is rewritten only after every worker has announced a
 * generation at least as new as the one that retired it. */
#ifndef EG_SHM_H
#define EG_SHM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capture_ring.h"
#include "config.h"
#include "drop_reasons.h"
#include "msg_ring.h"
#include "nat_table.h"
#include "sa.h"
#include "wg_slot.h"

#define EG_SHM_MAGIC 0x31304d4853474745ULL	/* "EGSHM01" */
#define EG_SHM_LAYOUT_VERSION 8u
#define EG_SHM_NAME_LEN 64
#define EG_CACHE_LINE 64

enum {
	EG_TABLE_SLOTS = 2,
	EG_DROP_SLOTS = 64,		/* room for reasons added later without a layout change */
	EG_SHM_GEN_SHIFT = 8,		/* current = generation << 8 | slot */
};

_Static_assert((int)EG_DROP_MAX <= (int)EG_DROP_SLOTS, "too many drop reasons for the layout");

struct eg_shm_port {
	char name[EG_NAME_LEN];
	uint8_t role;			/* enum eg_port_role */
	uint8_t mac[6];
	uint8_t link_up;		/* written by the dataplane main loop */
	uint32_t link_speed_mbps;
	uint16_t dpdk_port_id;
	uint16_t rx_queues;
};

struct eg_port_counters {
	uint64_t rx_packets, rx_bytes;
	uint64_t tx_packets, tx_bytes;
	uint64_t drops;
};

struct eg_egress_counters {
	uint64_t tx_packets, tx_bytes;
};

/* Written only by its worker (plain stores, naturally aligned, so readers see whole values);
 * read by the control process for stats. */
struct eg_worker_shm {
	uint64_t quiescent;		/* generation announced; atomic */
	uint64_t lcore;
	uint64_t busy_loops, idle_loops;
	uint64_t rx_packets, tx_packets, drops;
	uint64_t reassembled;		/* datagrams to us put back together from fragments */
	uint64_t probes_sent, probe_answers, probes_reflected;	/* dataplane/probe.c */
	/* Source NAT (dataplane/nat.c): packets translated each way, inbound ones whose session
	 * another worker made (RSS sent the reply elsewhere), sessions this worker made. */
	uint64_t nat_out, nat_in, nat_in_other_worker, nat_created;
	/* The worker's flow cache (dataplane/flow_cache.h), copied after each burst: lookups,
	 * those that missed (and went through the classifier), entries evicted to make room,
	 * the flows it holds at its current size, entries moved to their other bucket to make
	 * room (cuckoo moves: the cache filling up) and times it grew to its full size. */
	uint64_t flow_lookups, flow_misses, flow_evictions, flow_capacity;
	uint64_t flow_relocations, flow_grows;
	uint64_t drop[EG_DROP_SLOTS];
	struct eg_port_counters port[EG_MAX_PORTS];
	/* followed by struct eg_egress_counters[EG_MAX_EGRESSES], uint64_t hits[EG_MAX_POLICIES],
	 * struct eg_sa_counters[n_sa_slots] and struct eg_wg_counters[n_wg_slots] */
} __attribute__((aligned(EG_CACHE_LINE)));

struct eg_shm_hdr {
	uint64_t magic;
	uint32_t layout_version;
	uint32_t hdr_size;
	uint64_t epoch;			/* random, new at every creation */
	uint64_t total_size;
	int32_t dp_pid;
	uint32_t n_workers;
	uint32_t n_ports;
	uint32_t worker_stride;
	uint64_t workers_off;
	uint64_t slot_off[EG_TABLE_SLOTS];
	uint64_t slot_size;
	uint64_t created_unix_ns;
	char instance[EG_NAME_LEN];
	uint32_t imb_arch;		/* intel-ipsec-mb architecture the workers use: keys are
					 * expanded for it */
	uint32_t n_sa_slots;
	uint64_t sa_off;		/* struct eg_sa_slot, every sa_stride bytes */
	uint64_t sa_stride;
	uint32_t n_wg_slots;		/* WireGuard peers (0: no wireguard section) */
	uint32_t wg_high;		/* control: no slot at or above this was ever used */
	uint64_t wg_off;		/* struct eg_wg_peer_slot, every wg_stride bytes */
	uint64_t wg_stride;
	uint64_t punt_off;		/* struct eg_msg_ring: service lcore -> control */
	uint64_t inject_off;		/* struct eg_msg_ring: control -> service lcore */
	uint64_t capture_off;		/* struct eg_capture_ring per worker, every capture_stride */
	uint64_t capture_stride;
	uint64_t nat_off;		/* struct eg_nat_hdr region (lib/nat_table.h) */
	uint64_t nat_size;

	uint64_t heartbeat_ns __attribute__((aligned(EG_CACHE_LINE))); /* CLOCK_MONOTONIC; atomic */
	uint64_t current __attribute__((aligned(EG_CACHE_LINE)));	/* atomic; 0: none yet */
	/* Written by control only, read by workers every loop: a line of its own. */
	struct eg_capture_spec capture __attribute__((aligned(EG_CACHE_LINE)));
	struct eg_shm_port ports[EG_MAX_PORTS] __attribute__((aligned(EG_CACHE_LINE)));
};

struct eg_shm_geometry {
	unsigned n_workers;
	unsigned n_ports;
	size_t slot_size;
	unsigned n_sa_slots;		/* 0: EG_MAX_SAS */
	unsigned imb_arch;
	unsigned n_wg_slots;		/* 0: none */
	struct eg_nat_params nat;	/* sessions 0: no NAT region */
};

struct eg_shm_map {
	struct eg_shm_hdr *hdr;
	size_t size;
	int fd;
	uint64_t inode;			/* to notice a re-created segment */
	char name[EG_SHM_NAME_LEN];
};

/* "/egress-<instance>" */
void eg_shm_name(const char *instance, char name[static EG_SHM_NAME_LEN]);

/* Dataplane: creates (replacing any old one) a mode-0600 segment and fills the header.
 * 0 or -errno. */
int eg_shm_create(const char *name, const char *instance, const struct eg_shm_geometry *g,
		  struct eg_shm_map *out);
/* Control: maps an existing segment read-write and validates magic, version and size.
 * 0, -ENOENT (none yet), -EPROTO (not ours / other layout) or -errno. */
int eg_shm_attach(const char *name, struct eg_shm_map *out);
/* Tools that only look (egress-bench --live): the same checks and errors, but opened and
 * mapped read-only, so that a reader cannot write into a running dataplane's segment. */
int eg_shm_attach_readonly(const char *name, struct eg_shm_map *out);
/* True when the segment now behind m->name is another one than m maps (re-created). */
bool eg_shm_replaced(const struct eg_shm_map *m);
void eg_shm_detach(struct eg_shm_map *m);

static inline struct eg_worker_shm *eg_shm_worker(const struct eg_shm_hdr *h, unsigned w)
{
	return (struct eg_worker_shm *)((uint8_t *)h + h->workers_off + (size_t)w * h->worker_stride);
}

static inline struct eg_egress_counters *eg_shm_egress_counters(struct eg_worker_shm *w)
{
	return (struct eg_egress_counters *)(w + 1);
}

static inline uint64_t *eg_shm_policy_hits(struct eg_worker_shm *w)
{
	return (uint64_t *)(eg_shm_egress_counters(w) + EG_MAX_EGRESSES);
}

static inline struct eg_sa_counters *eg_shm_sa_counters(struct eg_worker_shm *w)
{
	return (struct eg_sa_counters *)(eg_shm_policy_hits(w) + EG_MAX_POLICIES);
}

static inline struct eg_wg_counters *eg_shm_wg_counters(const struct eg_shm_hdr *h, struct eg_worker_shm *w)
{
	return (struct eg_wg_counters *)(eg_shm_sa_counters(w) + h->n_sa_slots);
}

static inline struct eg_wg_peer_slot *eg_shm_wg(const struct eg_shm_hdr *h, unsigned slot)
{
	return (struct eg_wg_peer_slot *)((uint8_t *)h + h->wg_off + (size_t)slot * h->wg_stride);
}

static inline struct eg_msg_ring *eg_shm_punt(const struct eg_shm_hdr *h)
{
	return (struct eg_msg_ring *)((uint8_t *)h + h->punt_off);
}

static inline struct eg_msg_ring *eg_shm_inject(const struct eg_shm_hdr *h)
{
	return (struct eg_msg_ring *)((uint8_t *)h + h->inject_off);
}

static inline struct eg_capture_ring *eg_shm_capture(const struct eg_shm_hdr *h, unsigned w)
{
	return (struct eg_capture_ring *)((uint8_t *)h + h->capture_off + (size_t)w * h->capture_stride);
}

/* The source NAT region, or NULL when the segment has none. */
static inline struct eg_nat_hdr *eg_shm_nat(const struct eg_shm_hdr *h)
{
	return h->nat_size ? (struct eg_nat_hdr *)((uint8_t *)h + h->nat_off) : NULL;
}

static inline struct eg_sa_slot *eg_shm_sa(const struct eg_shm_hdr *h, unsigned slot)
{
	return (struct eg_sa_slot *)((uint8_t *)h + h->sa_off + (size_t)slot * h->sa_stride);
}

/* Reader side (workers). Returns the current table or NULL, and its generation. */
static inline const void *eg_shm_table_acquire(const struct eg_shm_hdr *h, uint64_t *gen)
{
	uint64_t cur = __atomic_load_n(&h->current, __ATOMIC_ACQUIRE);

	*gen = cur >> EG_SHM_GEN_SHIFT;
	if (cur == 0)
		return NULL;
	return (const uint8_t *)h + h->slot_off[cur & ((1u << EG_SHM_GEN_SHIFT) - 1)];
}

/* Precondition: the caller holds no pointer into any table slot. */
static inline void eg_shm_quiescent(const struct eg_shm_hdr *h, struct eg_worker_shm *w)
{
	uint64_t cur = __atomic_load_n(&h->current, __ATOMIC_ACQUIRE);

	__atomic_store_n(&w->quiescent, cur >> EG_SHM_GEN_SHIFT, __ATOMIC_RELEASE);
}

/* A worker that stops (or never starts) reading tables says so, so that it never holds up
 * a grace period. */
static inline void eg_shm_offline(struct eg_worker_shm *w)
{
	__atomic_store_n(&w->quiescent, UINT64_MAX, __ATOMIC_RELEASE);
}

/* Writer side (one control process). */
static inline uint64_t eg_shm_generation(const struct eg_shm_hdr *h)
{
	return __atomic_load_n(&h->current, __ATOMIC_ACQUIRE) >> EG_SHM_GEN_SHIFT;
}

/* Waits until every worker has announced a generation >= gen. 0 or -ETIMEDOUT. */
int eg_shm_wait_grace(const struct eg_shm_hdr *h, uint64_t gen, unsigned timeout_ms);

/* Publishes len bytes of table as the next generation: waits for the free slot's grace
 * period (bounded by timeout_ms), copies, then one release store. On success *gen is the new
 * generation. -ETIMEDOUT (nothing changed), -ENOSPC (table larger than a slot). */
int eg_shm_publish(struct eg_shm_hdr *h, const void *table, size_t len, unsigned timeout_ms,
		   uint64_t *gen);

/* Makes the slot that was current before the last publish current again, under a new
 * generation number: used when workers did not confirm a publish in time, so that the old
 * state stays live. Its contents were not touched by that publish.
 * Precondition: a generation was current before the last publish (not the first one). */
void eg_shm_revert(struct eg_shm_hdr *h, uint64_t *gen);

/* A grace period outside table publishes, for memory workers reach through something
 * other than the table (WireGuard keypairs): snapshot every worker's loop count after
 * unpublishing; once each has moved on (or is offline), no worker still uses what it saw
 * before. snap has h->n_workers entries. */
void eg_shm_loops_snapshot(const struct eg_shm_hdr *h, uint64_t *snap);

/* Counter sums over every worker, as both processes report them. */
void eg_shm_port_sum(const struct eg_shm_hdr *h, unsigned port, struct eg_port_counters *out);
void eg_shm_egress_sum(const struct eg_shm_hdr *h, unsigned id, uint64_t *pkts, uint64_t *bytes);
void eg_shm_drops_sum(const struct eg_shm_hdr *h, uint64_t out[EG_DROP_MAX]);
bool eg_shm_loops_passed(const struct eg_shm_hdr *h, const uint64_t *snap);

uint64_t eg_now_ns(void);	/* CLOCK_MONOTONIC */

#endif
