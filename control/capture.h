/* Packet capture for `egressctl capture`: capture.start tells the workers what to copy
 * (lib/capture_ring.h), capture.read hands the copies out a batch at a time, and a capture
 * ends at its packet count, its duration, capture.stop, or when nobody read it for
 * CP_CAPTURE_IDLE_MS. One capture runs at a time per instance. */
#ifndef CP_CAPTURE_H
#define CP_CAPTURE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "capture_ring.h"
#include "config.h"
#include "rpc.h"

enum {
	CP_CAPTURE_IDLE_MS = 10000,	/* a reader that went away */
	CP_CAPTURE_READ_MAX = 512,	/* records per capture.read */
	CP_CAPTURE_DEFAULT_COUNT = 1000,
	CP_CAPTURE_MAX_COUNT = 10000000,
	CP_CAPTURE_DEFAULT_SECONDS = 60,
	CP_CAPTURE_MAX_SECONDS = 86400,
};

struct cp_capture {
	uint32_t next_session;		/* random start, so a restarted control never reuses one */
	uint32_t session;		/* the current or last capture; 0: none yet */
	bool active;			/* workers are copying */
	bool draining;			/* stopped; records of it may still wait in the rings */
	const char *end_reason;		/* why it stopped */
	uint64_t epoch;			/* of the segment it runs in */
	uint64_t count;			/* packets wanted */
	uint64_t delivered;
	uint64_t deadline_ns, last_read_ns;
	uint64_t dropped_base[EG_MAX_WORKERS];
	uint64_t dropped;		/* ring full, as of the last read */
	bool decrypted;
	char target[EG_NAME_LEN];
};

struct cp_state;

void cp_capture_init(struct cp_capture *c);
/* Ends a capture whose time is up or whose reader went away; turns off a capture that a
 * previous control process left running in the segment. Called from the main loop. */
void cp_capture_tick(struct cp_state *st);

/* For status: the running capture ({id, target, decrypted, captured, seconds_left}), or
 * NULL when none runs. */
json_t *cp_capture_status(const struct cp_state *st);

int cp_m_capture_start(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err);
int cp_m_capture_read(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err);
int cp_m_capture_stop(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err);

#endif
