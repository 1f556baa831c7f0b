/* The control protocol: one request line in, one JSON line out.
 *
 *   set DIR key=value ...   DIR: a2b, b2a or both; keys: delay_ms, jitter_ms, loss_pct,
 *                           blackhole (0/1); keys not given keep their values
 *   reset DIR               every impairment of DIR back to zero
 *   show                    both directions' impairments, held frames and counters
 *
 * A request is checked whole before anything changes: a bad one gets {"error": "..."}
 * naming what was wrong and leaves every setting as it was. */
#ifndef PATH_SIM_CONTROL_H
#define PATH_SIM_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "direction.h"

/* Longest request accepted, newline included. */
#define CONTROL_REQUEST_MAX 1024
/* Enough for the longest reply, show's. */
#define CONTROL_REPLY_MAX 4096

struct control_target {
	struct direction *a2b;
	struct direction *b2a;
	uint64_t seed;
	size_t queue_max;
};

/* Handles one request (without its newline) and writes the reply, newline included. */
void control_handle(const struct control_target *t, const char *request, char *reply, size_t cap);

#endif
