/* WireGuard peers as the workers use them: one slot per peer in the shared segment, each
 * with room for four keypairs (previous, current, next, and one waiting out its grace
 * period before it is wiped).
 *
 * The control process owns the lifecycle: it fills a FREE keypair (keys, indexes, a fresh
 * replay window) and makes it ACTIVE with a release store; it names the keypair to send
 * with in send_kp; it retires a keypair by making it FREE again and wipes the keys once every
 * worker has finished the loop iteration it was in (eg_shm_loops_*). Workers only ever add
 * to counters and windows, set `confirmed` and `want_handshake`, and move send_kp forward
 * to a newer confirmed keypair.
 *
 * Receiver indexes carry their keypair's position, so an inbound data message finds its
 * keypair in O(1) however many peers there are: the low 16 bits are slot * 4 + keypair,
 * the high 16 bits random, checked against the keypair's own index. */
#ifndef EG_WG_SLOT_H
#define EG_WG_SLOT_H

#include <stdbool.h>
#include <stdint.h>

#include "replay.h"

enum {
	EG_WG_KEYPAIRS = 4,
	/* A 128-block bitmap, 8192 bits, of which 8128 are the window (as wireguard-go),
	 * so reordering across workers and paths does not drop good packets. */
	EG_WG_REPLAY_WINDOW = 8128,
	EG_WG_NO_KEYPAIR = 0xff,
	EG_WG_MAX_SLOTS = 16384,	/* slot * 4 + keypair fits 16 bits */
};

enum eg_wg_state { EG_WG_FREE = 0, EG_WG_ACTIVE = 1 };

struct eg_wg_keypair {
	uint32_t state;			/* enum eg_wg_state; atomic */
	uint32_t local_index;		/* the peer puts this in its data messages to us */
	uint32_t remote_index;		/* we put this in ours */
	uint8_t initiator;		/* we sent the initiation */
	uint8_t confirmed;		/* may be sent with: initiator at once, responder once a
					 * packet arrived under it; atomic */
	uint16_t pad;
	uint64_t serial;		/* higher is newer */
	uint64_t created_ns;		/* CLOCK_MONOTONIC */
	uint8_t send_key[32], recv_key[32];
	uint64_t send_counter __attribute__((aligned(64)));	/* next to hand out; atomic */
	/* followed, at eg_wg_kp_replay_off(), by the replay window */
} __attribute__((aligned(64)));

/* Where the peer is: written by control under a sequence lock (odd while writing). */
struct eg_wg_endpoint {
	uint8_t family;			/* 0: unknown */
	uint8_t pad;
	uint16_t port;			/* dataplane port index to send from */
	uint16_t udp_port;		/* the peer's */
	uint8_t addr[16];
};

struct eg_wg_peer_slot {
	uint32_t state;			/* enum eg_wg_state; atomic */
	uint32_t send_kp;		/* keypair to send with, or EG_WG_NO_KEYPAIR; atomic */
	uint32_t want_handshake;	/* workers: a packet found no session, or the keypair
					 * is worn out; control clears it; atomic */
	uint16_t listen_port;
	uint16_t pad;
	uint32_t ep_seq;		/* sequence lock of ep; atomic */
	struct eg_wg_endpoint ep;
	uint64_t last_rx_ms;		/* CLOCK_MONOTONIC ms of the latest authenticated packet */
	uint64_t last_rx_data_ms;	/* ... of the latest one that was not a keepalive */
	uint64_t last_tx_ms;		/* ... of the latest data packet sent by a worker */
	uint64_t roam_noticed_ms;	/* a worker told control of a new endpoint then */
	/* followed, every eg_wg_kp_stride() bytes from eg_wg_peer_kp_off(), by the keypairs */
} __attribute__((aligned(64)));

/* Per worker and peer slot, in the worker's counter block. */
struct eg_wg_counters {
	uint64_t rx_packets, rx_bytes, tx_packets, tx_bytes;
};

static inline size_t eg_wg_align(size_t v)
{
	return (v + 63) & ~(size_t)63;
}

static inline size_t eg_wg_kp_replay_off(void)
{
	return eg_wg_align(sizeof(struct eg_wg_keypair));
}

static inline size_t eg_wg_kp_stride(void)
{
	return eg_wg_align(eg_wg_kp_replay_off() + eg_replay_size(EG_WG_REPLAY_WINDOW));
}

static inline size_t eg_wg_peer_kp_off(void)
{
	return eg_wg_align(sizeof(struct eg_wg_peer_slot));
}

static inline size_t eg_wg_slot_stride(void)
{
	return eg_wg_peer_kp_off() + EG_WG_KEYPAIRS * eg_wg_kp_stride();
}

static inline struct eg_wg_keypair *eg_wg_kp(struct eg_wg_peer_slot *p, unsigned kp)
{
	return (struct eg_wg_keypair *)((uint8_t *)p + eg_wg_peer_kp_off() + kp * eg_wg_kp_stride());
}

static inline struct eg_replay *eg_wg_kp_replay(struct eg_wg_keypair *k)
{
	return (struct eg_replay *)((uint8_t *)k + eg_wg_kp_replay_off());
}

static inline uint32_t eg_wg_index(uint32_t slot, unsigned kp, uint16_t random)
{
	return (uint32_t)random << 16 | (slot * EG_WG_KEYPAIRS + kp);
}

static inline uint32_t eg_wg_index_slot(uint32_t index)
{
	return (index & 0xffff) / EG_WG_KEYPAIRS;
}

static inline unsigned eg_wg_index_kp(uint32_t index)
{
	return (index & 0xffff) % EG_WG_KEYPAIRS;
}

/* A consistent copy of the endpoint; false when control kept rewriting it. */
static inline bool eg_wg_endpoint_read(const struct eg_wg_peer_slot *p, struct eg_wg_endpoint *out)
{
	for (unsigned i = 0; i < 8; i++) {
		uint32_t s1 = __atomic_load_n(&p->ep_seq, __ATOMIC_ACQUIRE);

		if (s1 & 1)
			continue;
		__builtin_memcpy(out, (const void *)&p->ep, sizeof(*out));
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&p->ep_seq, __ATOMIC_RELAXED) == s1)
			return true;
	}
	return false;
}

/* Control only (the one writer). */
static inline void eg_wg_endpoint_write(struct eg_wg_peer_slot *p, const struct eg_wg_endpoint *ep)
{
	uint32_t s = __atomic_load_n(&p->ep_seq, __ATOMIC_RELAXED);

	__atomic_store_n(&p->ep_seq, s + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	__builtin_memcpy((void *)&p->ep, ep, sizeof(*ep));
	__atomic_store_n(&p->ep_seq, s + 2, __ATOMIC_RELEASE);
}

#endif
