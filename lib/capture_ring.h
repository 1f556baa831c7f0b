/* Packet capture through the shared segment (`egressctl capture`).
 *
 * egress-control writes what to capture into the header's struct eg_capture_spec; each
 * worker copies the frames that match into its own capture ring, and egress-control
 * drains the rings when egressctl asks for packets. Capturing is off while the spec's
 * session is 0: workers then pay one load of a line nobody writes per loop, and one
 * test of a local flag per capture point.
 *
 * The spec is not updated atomically as a whole. Control changes the fields only while
 * the session is 0 and stores the new session last (release), and every record carries
 * the session its worker read: a worker that mixes an old session's number with a new
 * session's fields writes records that control throws away, since their number is no
 * longer current. Session numbers are never reused within a segment's life. */
#ifndef EG_CAPTURE_RING_H
#define EG_CAPTURE_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum {
	EG_CAPTURE_SNAP_MAX = 2048,	/* bytes of a frame kept (the rest is counted in len) */
	EG_CAPTURE_SLOTS = 1024,	/* per worker; power of two */
};

enum eg_capture_what {
	EG_CAPTURE_PORT = 1,		/* frames a port receives and sends */
	EG_CAPTURE_EGRESS = 2,		/* what an egress sends and receives */
};

enum eg_capture_dir { EG_CAPTURE_IN = 1, EG_CAPTURE_OUT = 2 };

struct eg_capture_spec {
	uint32_t session;		/* 0: off; atomic, stored last */
	uint8_t what;			/* enum eg_capture_what */
	uint8_t decrypted;		/* tunnel egress: inner packets instead of its ESP/UDP */
	uint8_t egress_type;		/* enum eg_egress_type of the egress */
	uint8_t pad;
	uint16_t port;			/* PORT: the port; direct egress: its port (return traffic) */
	uint16_t egress_id;		/* EGRESS: counter id of the egress */
	uint32_t in_slot;		/* tunnel egress: WireGuard peer slot or inbound SA slot */
	uint32_t snaplen;		/* <= EG_CAPTURE_SNAP_MAX */
};

struct eg_capture_rec {
	uint32_t session;
	uint16_t cap_len;		/* bytes in data */
	uint8_t dir;			/* enum eg_capture_dir */
	uint8_t pad;
	uint32_t len;			/* the whole frame's length */
	uint32_t pad2;
	uint64_t time_ns;		/* CLOCK_REALTIME */
	uint8_t data[EG_CAPTURE_SNAP_MAX];
};

/* One per worker: the worker produces, control consumes. */
struct eg_capture_ring {
	uint64_t head __attribute__((aligned(64)));	/* worker: next slot to fill; atomic */
	uint64_t dropped;				/* worker: ring full; atomic */
	uint64_t tail __attribute__((aligned(64)));	/* control: next slot to read; atomic */
	struct eg_capture_rec slots[EG_CAPTURE_SLOTS] __attribute__((aligned(64)));
};

/* Worker: a slot to fill, or NULL (counted) when the ring is full. */
static inline struct eg_capture_rec *eg_capture_reserve(struct eg_capture_ring *r)
{
	uint64_t head = __atomic_load_n(&r->head, __ATOMIC_RELAXED);
	uint64_t tail = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);

	if (head - tail >= EG_CAPTURE_SLOTS) {
		__atomic_store_n(&r->dropped, r->dropped + 1, __ATOMIC_RELAXED);
		return NULL;
	}
	return &r->slots[head & (EG_CAPTURE_SLOTS - 1)];
}

/* Worker: makes the reserved slot visible. */
static inline void eg_capture_commit(struct eg_capture_ring *r)
{
	__atomic_store_n(&r->head, __atomic_load_n(&r->head, __ATOMIC_RELAXED) + 1, __ATOMIC_RELEASE);
}

/* Control: the oldest record, or NULL. It stays valid until eg_capture_release. */
static inline const struct eg_capture_rec *eg_capture_peek(const struct eg_capture_ring *r)
{
	uint64_t tail = __atomic_load_n(&r->tail, __ATOMIC_RELAXED);
	uint64_t head = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);

	if (tail == head)
		return NULL;
	return &r->slots[tail & (EG_CAPTURE_SLOTS - 1)];
}

static inline void eg_capture_release(struct eg_capture_ring *r)
{
	__atomic_store_n(&r->tail, __atomic_load_n(&r->tail, __ATOMIC_RELAXED) + 1, __ATOMIC_RELEASE);
}

/* Control: forgets everything queued (records of a finished session). */
static inline void eg_capture_discard(struct eg_capture_ring *r)
{
	__atomic_store_n(&r->tail, __atomic_load_n(&r->head, __ATOMIC_ACQUIRE), __ATOMIC_RELEASE);
}

#endif
