/* egress-bench's scenarios: one offline dataplane context (dataplane/offline.c) with a
 * direct egress, ESP SAs (AES-GCM-128 and -256) and a WireGuard peer, and for each
 * scenario the frames that go in, how many cycles dp_worker_process spends on them, and
 * (with checking on) proof that what comes out is the input, sealed or opened. */
#ifndef BENCH_SCENARIO_H
#define BENCH_SCENARIO_H

#include <stdbool.h>
#include <stdint.h>

#include "aead.h"
#include "churn.h"

enum bench_kind { BENCH_DIRECT, BENCH_ENCAP, BENCH_DECAP };
enum bench_tunnel { BENCH_NONE, BENCH_ESP, BENCH_WG };

struct bench_scenario {
	const char *name;
	enum bench_kind kind;
	enum bench_tunnel tunnel;
	enum eg_aead_alg alg;
	uint8_t net;		/* the remote network 10.<net>.0.0/16 (tunnels) */
	bool snat;		/* direct through a source NAT pool, BENCH_SNAT_SESSIONS live */
};

/* Sessions in the NAT table before a direct-snat run is timed: one inside host's 16384
 * ports, each to 64 remote addresses (the flows set_flow makes). */
#define BENCH_SNAT_SESSIONS (1u << 20)

/* The most flows --flows takes: all of them NAT sessions in direct-snat. */
#define BENCH_MAX_FLOWS BENCH_SNAT_SESSIONS

extern const struct bench_scenario bench_scenarios[];
extern const unsigned bench_n_scenarios;

/* A packet size: one frame length, or IMIX (7:4:1 of 64, 570 and 1420 bytes). */
struct bench_size {
	const char *label;
	unsigned n;		/* frame lengths in the repeating pattern */
	uint16_t len[12];
};

struct bench_result {
	uint64_t packets, out_packets, frame_bytes, cycles;	/* frame_bytes: site-side frames */
	uint64_t drops;		/* the worker's drop counters over the run */
	uint64_t flow_misses;	/* flow cache lookups that missed (classifier walks) */
	uint64_t checked, check_failures;	/* frames checked, and found wrong */
	uint64_t counters_differing;	/* dataplane counters that did not add up (ledger.h) */
	uint64_t nonces_repeated;	/* nonces a tunnel sealed with more than once (nonces.h) */
	double mpps, gbps, cycles_per_packet;
	double overlap;		/* share of the run all lanes ran together (1: one lane) */
	struct bench_churn_stats churn;	/* publishes while the workers ran */
};

struct bench_run_opts {
	unsigned flows;			/* UDP flows the frames spread over */
	unsigned lanes;			/* workers at once */
	unsigned churn_rate;		/* table publishes a second meanwhile (churn.c), 0 for none */
	bool check;			/* verify every output frame */
};

enum {
	BENCH_MAX_LANES = 8,		/* workers run at once */
	BENCH_MAX_TUNNELS = 1024,	/* each has frames among a lane's inputs (scenario.c INPUTS) */
	BENCH_MAX_RULES = 1000000,	/* ten times the 100k; a table slot sized for them */
};

/* Starts the dataplane context (EAL included), or exits: one worker per CPU the process
 * may use (up to BENCH_MAX_LANES). rules: classifier rules ahead of the scenarios' own
 * (policies of /32 destinations no packet matches, scattered over the address space and
 * some on the traffic's own networks, TCP only: a lookup walks past them), 0 for none;
 * returns how many rules the table got. tunnels: 1, or how many ESP AES-GCM-128 tunnels
 * and WireGuard peers the esp-gcm128-* and wg-* scenarios spread their flows over (each
 * its own SA pair or peer, egress and policies). */
unsigned bench_context_start(unsigned rules, unsigned tunnels);

/* The context, for the table churn publisher (churn.c). */
struct dp_offline *bench_context(void);

/* The workers bench_run may run at once. */
unsigned bench_workers(void);

/* The length the scenario's AEAD seals or opens for a frame of frame_len bytes, and the
 * length of its AAD. */
uint32_t bench_aead_len(const struct bench_scenario *s, uint16_t frame_len, uint32_t *aad_len);

/* Runs packets frames (rounded up to whole bursts of 32) of size z through the scenario on
 * each of o->lanes workers at once (each on its own lcore, the first on the caller's),
 * spread over o->flows UDP flows (each worker its own share of them, as RSS would deal
 * them). Every burst is timed as the worker loop does it: table acquired, processed,
 * quiescent state announced. The result adds the workers up; its rate is the sum of each
 * worker's rate over its own time. 0, or -1 when the scenario cannot run (message on
 * stderr). */
int bench_run(const struct bench_scenario *s, const struct bench_size *z, uint64_t packets,
	      const struct bench_run_opts *o, struct bench_result *r);

/* Runs fn(args[k]) for k < lanes at once, each on the lcore bench_run gives worker k (the
 * first on the caller's), and waits for them all. 0, or -1 when an lcore is missing. */
int bench_on_lanes(unsigned lanes, int (*fn)(void *), void **args);

/* direct-snat: how many sessions were made before timing, and the cycles each took (the
 * slow path: first packet of a flow), 0 before the first direct-snat run; and the shared
 * memory the NAT region takes per session it can hold (records and indexes). */
void bench_snat_setup(uint64_t *sessions, double *cycles_each, double *bytes_each);

/* Every packet came out, nothing was dropped or found wrong, and the counters and nonces
 * checked out. */
static inline bool bench_clean(const struct bench_result *r)
{
	return r->check_failures == 0 && r->counters_differing == 0 && r->nonces_repeated == 0 && r->drops == 0 &&
	       r->out_packets == r->packets;
}

/* The IMB architecture the workers use. */
unsigned bench_imb_arch(void);
uint64_t bench_tsc_hz(void);

#endif
