/* What egress-control knows and publishes: the config, the live egresses and policies
 * (as changed through the socket), their stable counter ids, path states, and the
 * dataplane it is attached to. One instance, used only by the daemon's single thread. */
#ifndef CP_STATE_H
#define CP_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "blob.h"
#include "capture.h"
#include "config.h"
#include "ipsec.h"
#include "path_select.h"
#include "probe.h"
#include "shm.h"
#include "table.h"
#include "wg.h"

struct cp_rpc_server;

/* Table publishes, for metrics: how many, and how long each took to go live (to the
 * last worker's confirmation), as a histogram over cp_publish_bounds. */
enum { CP_PUBLISH_BUCKETS = 10 };
extern const double cp_publish_bounds[CP_PUBLISH_BUCKETS];	/* seconds */
struct cp_publish_stats {
	uint64_t ok, failed;
	uint64_t le[CP_PUBLISH_BUCKETS];	/* successful publishes this fast or faster */
	double seconds_sum;
};

struct cp_state {
	struct eg_config cfg;		/* ports, control settings; egresses/policies moved below */
	const char *config_path;
	uint64_t started_ns;

	unsigned n_egresses;
	struct eg_egress_cfg *egresses;
	uint32_t *egress_ids;
	uint8_t *egress_state;		/* enum eg_path_state */
	unsigned n_policies;
	struct eg_policy_cfg *policies;
	uint32_t *policy_ids;
	/* Per policy: which egresses carry its flows, and what hysteresis remembers. */
	struct eg_path_pick *picks;
	struct eg_path_hold *holds;
	bool holds_pending;		/* some policy is timing a hold-down */
	uint64_t next_choose_ns;

	/* Counters live in shared memory indexed by id; an id handed out again starts from
	 * the baseline taken when it was assigned. */
	uint8_t egress_id_used[EG_MAX_EGRESSES];
	uint8_t *policy_id_used;	/* [EG_MAX_POLICIES] */

	struct eg_blob table;		/* the table for the current state, as last built */
	uint64_t generation;		/* last generation published (0: none) */
	bool publish_pending;		/* st->table is not live yet: retried every tick */
	struct cp_publish_stats publishes;

	struct eg_shm_map shm;
	bool mapped;
	uint64_t epoch;
	uint64_t detached_ns;		/* when the last dataplane went away; 0: never attached or attached */
	uint64_t next_attach_ns;

	struct cp_ipsec ipsec;		/* ESP SAs and their slots */
	struct cp_wg wg;		/* WireGuard identity, peers, sessions */
	struct cp_probes probes;	/* per egress, parallel to egresses */
	struct cp_capture capture;	/* egressctl capture */

	struct cp_rpc_server *rpc;	/* for events; may be NULL in tests */
};

/* Loads the config (and the state file, when there is one). 0 or -errno with err set. */
int cp_state_init(struct cp_state *st, const char *config_path, struct eg_error *err);
void cp_state_free(struct cp_state *st);

/* Replaces egresses and/or policies (NULL: keep the current ones; arrays are taken over on
 * success and left to the caller on failure): builds the table (with the SAs in st->ipsec
 * as they are), publishes it and waits for every worker to see it, then commits and
 * persists. On failure nothing changed and *code/err say why (an RPC error code from
 * rpc.h). */
int cp_state_apply(struct cp_state *st, struct eg_egress_cfg *egresses, unsigned n_egresses,
		   struct eg_policy_cfg *policies, unsigned n_policies, uint64_t *generation,
		   int *code, struct eg_error *err);

/* The dataplane: attach when it appears, re-publish on a new epoch, notice it going.
 * Called from the main loop every ~100 ms. */
void cp_state_tick(struct cp_state *st);
/* Takes what the dataplane punted to us: WireGuard handshakes, roaming notices, probe
 * answers. */
void cp_state_poll_punt(struct cp_state *st);
/* True when mapped and the dataplane's heartbeat is fresh. */
bool cp_state_dataplane_alive(const struct cp_state *st);
/* Re-publishes the current table (after attach). 0 or -errno. */
int cp_state_publish_current(struct cp_state *st);

/* Counter sums over workers, minus the id's baseline. */
void cp_state_egress_counters(const struct cp_state *st, unsigned i, uint64_t *pkts, uint64_t *bytes);
uint64_t cp_state_policy_hits(const struct cp_state *st, unsigned i);

int cp_state_egress_index(const struct cp_state *st, const char *name);

#endif
