/* Frames waiting for their due time, in one direction: a binary min-heap ordered by due
 * time, then by arrival, so frames due at the same instant leave in the order they came.
 * Bounded in frames (the --queue-max); each frame owns a copy of exactly its bytes. */
#ifndef PATH_SIM_HELD_QUEUE_H
#define PATH_SIM_HELD_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct held_frame {
	uint64_t due_ns;	/* CLOCK_MONOTONIC */
	uint64_t arrival;	/* order of arrival: the tie-break */
	uint32_t len;
	unsigned char *bytes;
};

struct held_queue {
	struct held_frame *heap;
	size_t count;
	size_t allocated;	/* grows on demand, never beyond max */
	size_t max;
	uint64_t arrivals;
};

void held_queue_init(struct held_queue *q, size_t max);
/* False when the queue is full or memory ran out: the caller drops the frame. */
bool held_queue_push(struct held_queue *q, uint64_t due_ns, const void *frame, uint32_t len);
/* The frame due first, or NULL when none is held. */
const struct held_frame *held_queue_first(const struct held_queue *q);
/* Removes the frame due first into *out; the caller frees out->bytes. */
void held_queue_pop(struct held_queue *q, struct held_frame *out);
void held_queue_free(struct held_queue *q);

#endif
