/* The neighbour table (ARP for IPv4, neighbour discovery for IPv6): next-hop MACs per
 * port. Only the service lcore writes it; workers read it lock-free with a per-entry
 * sequence counter (seqlock), so a reader never sees a half-updated MAC. Keys are never
 * moved or deleted once placed, which keeps open-addressing probe chains valid; an entry
 * that failed to resolve keeps its slot and is re-resolved when asked for again. */
#ifndef DP_NEIGH_H
#define DP_NEIGH_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <rte_ether.h>
#include <rte_pause.h>

#include "net_addr.h"

enum {
	DP_NEIGH_SLOTS = 1 << 16,
	DP_NEIGH_MAX_PROBE = 32,
	DP_NEIGH_RETRIES = 3,		/* requests before an entry is marked failed */
};

enum dp_neigh_state {
	DP_NEIGH_FREE = 0,
	DP_NEIGH_INCOMPLETE,		/* asked, no answer yet */
	DP_NEIGH_REACHABLE,
	DP_NEIGH_STALE,			/* usable; being re-confirmed */
	DP_NEIGH_FAILED,
	DP_NEIGH_STATIC,		/* from the config; never ages */
};

struct dp_neigh_entry {
	uint32_t seq;			/* odd while the service writes the entry */
	uint8_t state;
	uint8_t family;
	uint16_t port;
	uint8_t ip[16];
	struct rte_ether_addr mac;
	uint8_t tries;
	uint8_t pad;
	uint64_t confirmed_tsc;		/* last answer seen */
	uint64_t asked_tsc;		/* last request sent */
};

struct dp_neigh_table {
	struct dp_neigh_entry e[DP_NEIGH_SLOTS];
};

static inline uint32_t dp_neigh_hash(uint16_t port, uint8_t family, const uint8_t *ip)
{
	uint64_t h = 0x9e3779b97f4a7c15ull * (uint64_t)(port + 1) + family;

	for (unsigned i = 0; i < eg_addr_len(family); i += 4) {
		uint32_t w;

		memcpy(&w, ip + i, 4);
		h = (h ^ w) * 0xff51afd7ed558ccdull;
		h ^= h >> 29;
	}
	return (uint32_t)h;
}

/* Worker side: true and *mac set when a usable MAC is known. */
static inline bool dp_neigh_lookup(const struct dp_neigh_table *t, uint16_t port, uint8_t family,
				   const uint8_t *ip, struct rte_ether_addr *mac)
{
	uint32_t h = dp_neigh_hash(port, family, ip);

	for (unsigned i = 0; i < DP_NEIGH_MAX_PROBE; i++) {
		const struct dp_neigh_entry *e = &t->e[(h + i) & (DP_NEIGH_SLOTS - 1)];
		uint32_t s1, s2;
		uint8_t state;
		bool match;

		do {
			s1 = __atomic_load_n(&e->seq, __ATOMIC_ACQUIRE);
			if (s1 & 1) {
				rte_pause();
				continue;
			}
			state = e->state;
			match = e->port == port && e->family == family && eg_addr_equal(family, e->ip, ip);
			*mac = e->mac;
			__atomic_thread_fence(__ATOMIC_ACQUIRE);
			s2 = __atomic_load_n(&e->seq, __ATOMIC_RELAXED);
		} while ((s1 & 1) || s1 != s2);
		if (state == DP_NEIGH_FREE)
			return false;
		if (match)
			return state == DP_NEIGH_REACHABLE || state == DP_NEIGH_STALE ||
			       state == DP_NEIGH_STATIC;
	}
	return false;
}

/* Service side (single writer). */
struct dp_neigh_table *dp_neigh_create(int socket);
void dp_neigh_free(struct dp_neigh_table *t);
/* Finds the entry for (port, ip), creating it INCOMPLETE if absent. NULL when full. */
struct dp_neigh_entry *dp_neigh_get(struct dp_neigh_table *t, uint16_t port, uint8_t family,
				    const uint8_t *ip, bool create);
/* Records an answer (or a static entry). */
void dp_neigh_set(struct dp_neigh_entry *e, const struct rte_ether_addr *mac, uint8_t state,
		  uint64_t now_tsc);
void dp_neigh_set_state(struct dp_neigh_entry *e, uint8_t state);
unsigned dp_neigh_count(const struct dp_neigh_table *t, uint8_t state);

#endif
