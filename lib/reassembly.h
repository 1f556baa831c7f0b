/* Reassembly of IP datagrams addressed to us (RFC 791 3.2, RFC 8200 4.5), for ESP that a
 * peer or a path fragmented. One table per worker, no locks: the fragments of a datagram
 * share source, destination and protocol, which is what NIC RSS and AF_PACKET fanout hash
 * fragments by, so they reach the same worker.
 *
 * Fragments are copied into a fixed buffer per datagram; nothing is allocated after
 * eg_reasm_create. Overlapping fragments discard the whole datagram (RFC 5722; also what
 * keeps IPv4 overlap attacks out); an exact duplicate is dropped alone (RFC 8200 4.5).
 * A datagram that is not complete within the timeout is discarded. */
#ifndef EG_REASSEMBLY_H
#define EG_REASSEMBLY_H

#include <stdbool.h>
#include <stdint.h>

enum {
	EG_REASM_MAX_FRAGS = 16,	/* fragments one datagram may arrive in */
	EG_REASM_MAX_HDR = 60,		/* an IPv4 header with options; IPv6 keeps its 40 */
};

/* One fragment, as parsed by the caller. hdr is the header the whole datagram gets when
 * this is the first fragment: the IPv4 header with its options, or the fixed IPv6 header
 * (the Fragment header must follow it directly). */
struct eg_frag {
	uint8_t family;			/* EG_AF_INET or EG_AF_INET6 */
	uint8_t proto;			/* IPv4 protocol, or the Fragment header's next header */
	uint32_t id;			/* identification: 16 bits (IPv4) or 32 (IPv6) */
	const uint8_t *src, *dst;	/* 4 or 16 bytes */
	uint32_t offset;		/* bytes into the payload */
	bool more;			/* more fragments follow */
	const uint8_t *hdr;
	uint16_t hdr_len;
	const uint8_t *data;
	uint32_t len;
};

enum eg_reasm_result {
	EG_REASM_HELD,			/* kept until the rest arrives */
	EG_REASM_DONE,			/* the datagram is whole: see eg_reasm_add */
	EG_REASM_BAD,			/* malformed, or contradicts what is held: dropped */
	EG_REASM_DUPLICATE,		/* a copy of a fragment already held: dropped alone */
	EG_REASM_OVERLAP,		/* overlaps a held fragment: the datagram is discarded */
	EG_REASM_TOO_BIG,		/* larger than max_len: the datagram is discarded */
	EG_REASM_TOO_MANY,		/* more than EG_REASM_MAX_FRAGS pieces: discarded */
};

struct eg_reasm;

/* A table of `slots` datagrams in reassembly (rounded up to a power of two) of at most
 * max_len bytes each, headers included. Time is in the caller's units (TSC cycles in the
 * dataplane); a datagram older than timeout is discarded. NULL without memory. */
struct eg_reasm *eg_reasm_create(unsigned slots, uint32_t max_len, uint64_t timeout);
void eg_reasm_free(struct eg_reasm *r);

/* Adds one fragment at time now. On EG_REASM_DONE *out and *out_len hold the whole IP
 * datagram (header fixed up: lengths, fragment fields and, for IPv4, the checksum), valid
 * until the next call. *lost counts datagrams this call discarded because they expired or
 * their slot was needed (besides the one the result names). */
enum eg_reasm_result eg_reasm_add(struct eg_reasm *r, const struct eg_frag *f, uint64_t now,
				  const uint8_t **out, uint32_t *out_len, unsigned *lost);

/* Discards datagrams older than the timeout, looking at no more than budget slots (from
 * where the last call stopped); returns how many it discarded. Called when idle, so that
 * expired datagrams are counted and their slots free even when no fragment comes. */
unsigned eg_reasm_expire(struct eg_reasm *r, uint64_t now, unsigned budget);

/* Datagrams in reassembly now. */
unsigned eg_reasm_pending(const struct eg_reasm *r);

#endif
