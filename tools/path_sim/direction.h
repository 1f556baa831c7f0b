/* One direction of the simulated path (a2b or b2a): its impairments, its counters and the
 * frames it holds. A frame's fate is decided once, when it arrives, with the impairments
 * in force then: changing them later never moves a frame already held. */
#ifndef PATH_SIM_DIRECTION_H
#define PATH_SIM_DIRECTION_H

#include <stdbool.h>
#include <stdint.h>

#include "held_queue.h"
#include "prng.h"

/* A sane ceiling for delay_ms and jitter_ms (one hour) that also keeps due times far
 * from overflowing a 64-bit nanosecond clock. */
#define IMPAIRMENT_MAX_MS 3600000.0

struct impairment {
	double delay_ms;	/* fixed one-way delay */
	double jitter_ms;	/* plus uniform [-jitter, +jitter], total never below 0 */
	double loss_pct;	/* independent random loss, 0..100 */
	bool blackhole;		/* drop everything */
};

/* Every frame read counts in "in" and ends in exactly one of the others or is still held:
 * in = forwarded + lost + blackholed + queue_overflow + oversized + tx_errors + held.
 * kernel_drops are frames the kernel dropped before we could read them (socket buffer
 * full); they never reached "in". */
struct direction_counters {
	uint64_t in;
	uint64_t forwarded;
	uint64_t lost;
	uint64_t blackholed;
	uint64_t queue_overflow;
	uint64_t oversized;
	uint64_t tx_errors;
	uint64_t kernel_drops;
};

struct direction {
	const char *name;
	struct impairment impairment;
	struct direction_counters counters;
	struct prng prng;
	struct held_queue held;
};

void direction_init(struct direction *d, const char *name, uint64_t prng_seed, size_t queue_max);
/* Counts a frame that arrived, and holds a copy until its due time unless an impairment
 * or a full queue drops it. */
void direction_accept(struct direction *d, const void *frame, uint32_t len, uint64_t now_ns);
void direction_free(struct direction *d);

#endif
