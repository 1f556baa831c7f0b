/* Messages between egress-control and the dataplane's service lcore, through two
 * single-producer/single-consumer rings in the shared segment (DESIGN.md): the punt ring
 * carries what arrived for the control process (WireGuard handshake messages, notices of a
 * peer's new endpoint), the inject ring what it wants sent (handshake replies, keepalives).
 *
 * Fixed-size slots, copied in and out: neither side ever holds a pointer into the other's
 * memory, and a slow consumer costs the producer dropped messages (counted), never a
 * wait. head and tail only grow; each is written by one side only. */
#ifndef EG_MSG_RING_H
#define EG_MSG_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum {
	EG_MSG_DATA_MAX = 256,		/* the largest handshake message is 148 bytes */
	EG_MSG_RING_SLOTS = 1024,	/* power of two */
};

enum eg_msg_kind {
	/* punt: a WireGuard handshake or cookie message that arrived on port from remote */
	EG_MSG_WG_HANDSHAKE = 1,
	/* punt: peer_slot authenticated a packet from remote, which is not its endpoint */
	EG_MSG_WG_ROAM = 2,
	/* inject: send data as one UDP datagram from local:local_port to remote:remote_port,
	 * out of port */
	EG_MSG_UDP_SEND = 3,
	/* inject: send a link-quality probe (probe_wire.h) from local to remote through the
	 * egress whose counter id is peer_slot: proto is IPPROTO_UDP (STAMP: data is the
	 * 44-byte test packet, ports as given) or ICMP/ICMPv6 echo (local_port is the
	 * identifier, remote_port the sequence number, data the payload). The worker writes
	 * the transmit timestamp into it. */
	EG_MSG_PROBE_SEND = 4,
	/* punt: a probe's answer addressed to us arrived on port (through a tunnel or not):
	 * proto, addresses and ports (or identifier and sequence) as in EG_MSG_PROBE_SEND
	 * seen from our side, data the UDP or echo payload, rx_ntp when the worker got it. */
	EG_MSG_PROBE_REPLY = 5,
};

struct eg_msg {
	uint16_t kind;			/* enum eg_msg_kind */
	uint16_t len;			/* bytes of data */
	uint16_t port;			/* dataplane port index */
	uint8_t family;			/* EG_AF_INET or EG_AF_INET6, of local and remote */
	uint8_t proto;			/* probes: the IP protocol */
	uint16_t local_port, remote_port;
	uint32_t peer_slot;		/* WireGuard: the peer's slot; probes: the egress id */
	uint8_t local[16], remote[16];
	uint64_t time_ns;		/* CLOCK_MONOTONIC: when it arrived (punt) */
	uint64_t rx_ntp;		/* probe replies: the worker's receive timestamp */
	uint8_t data[EG_MSG_DATA_MAX];
};

struct eg_msg_ring {
	uint64_t head __attribute__((aligned(64)));	/* producer: next slot to fill; atomic */
	uint64_t dropped;				/* producer: full ring */
	uint64_t tail __attribute__((aligned(64)));	/* consumer: next slot to read; atomic */
	struct eg_msg slots[EG_MSG_RING_SLOTS] __attribute__((aligned(64)));
};

/* Producer: copies m in. False (and counted) when the ring is full. */
static inline bool eg_msg_put(struct eg_msg_ring *r, const struct eg_msg *m)
{
	uint64_t head = __atomic_load_n(&r->head, __ATOMIC_RELAXED);
	uint64_t tail = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
	struct eg_msg *s;

	if (head - tail >= EG_MSG_RING_SLOTS || m->len > EG_MSG_DATA_MAX) {
		__atomic_store_n(&r->dropped, r->dropped + 1, __ATOMIC_RELAXED);
		return false;
	}
	s = &r->slots[head & (EG_MSG_RING_SLOTS - 1)];
	memcpy(s, m, offsetof(struct eg_msg, data) + m->len);
	__atomic_store_n(&r->head, head + 1, __ATOMIC_RELEASE);
	return true;
}

/* Consumer: copies the oldest message out. False when there is none. A message whose
 * length is out of range (a damaged segment) is skipped, so the reader can trust len. */
static inline bool eg_msg_get(struct eg_msg_ring *r, struct eg_msg *out)
{
	for (;;) {
		uint64_t tail = __atomic_load_n(&r->tail, __ATOMIC_RELAXED);
		uint64_t head = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
		const struct eg_msg *s;

		if (tail == head)
			return false;
		s = &r->slots[tail & (EG_MSG_RING_SLOTS - 1)];
		memcpy(out, s, offsetof(struct eg_msg, data));
		if (out->len <= EG_MSG_DATA_MAX)
			memcpy(out->data, s->data, out->len);
		__atomic_store_n(&r->tail, tail + 1, __ATOMIC_RELEASE);
		if (out->len <= EG_MSG_DATA_MAX)
			return true;
	}
}

#endif
