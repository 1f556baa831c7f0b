#include "neigh.h"

#include <rte_malloc.h>

struct dp_neigh_table *dp_neigh_create(int socket)
{
	return rte_zmalloc_socket("neigh", sizeof(struct dp_neigh_table), 64, socket);
}

void dp_neigh_free(struct dp_neigh_table *t)
{
	rte_free(t);
}

struct dp_neigh_entry *dp_neigh_get(struct dp_neigh_table *t, uint16_t port, uint8_t family,
				    const uint8_t *ip, bool create)
{
	uint32_t h = dp_neigh_hash(port, family, ip);
	unsigned alen = eg_addr_len(family);

	for (unsigned i = 0; i < DP_NEIGH_MAX_PROBE; i++) {
		struct dp_neigh_entry *e = &t->e[(h + i) & (DP_NEIGH_SLOTS - 1)];

		if (e->state == DP_NEIGH_FREE) {
			if (!create)
				return NULL;
			/* Readers skip odd sequences, so they never match a key half written. */
			__atomic_store_n(&e->seq, e->seq + 1, __ATOMIC_RELAXED);
			__atomic_thread_fence(__ATOMIC_RELEASE);
			e->port = port;
			e->family = family;
			memset(e->ip, 0, sizeof(e->ip));
			memcpy(e->ip, ip, alen);
			e->state = DP_NEIGH_INCOMPLETE;
			e->tries = 0;
			e->asked_tsc = 0;
			__atomic_store_n(&e->seq, e->seq + 1, __ATOMIC_RELEASE);
			return e;
		}
		if (e->port == port && e->family == family && memcmp(e->ip, ip, alen) == 0)
			return e;
	}
	return NULL;
}

void dp_neigh_set(struct dp_neigh_entry *e, const struct rte_ether_addr *mac, uint8_t state,
		  uint64_t now_tsc)
{
	__atomic_store_n(&e->seq, e->seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	e->mac = *mac;
	e->state = state;
	__atomic_store_n(&e->seq, e->seq + 1, __ATOMIC_RELEASE);
	e->tries = 0;
	e->confirmed_tsc = now_tsc;
}

void dp_neigh_set_state(struct dp_neigh_entry *e, uint8_t state)
{
	__atomic_store_n(&e->seq, e->seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	e->state = state;
	__atomic_store_n(&e->seq, e->seq + 1, __ATOMIC_RELEASE);
}

unsigned dp_neigh_count(const struct dp_neigh_table *t, uint8_t state)
{
	unsigned n = 0;

	for (unsigned i = 0; i < DP_NEIGH_SLOTS; i++)
		n += t->e[i].state == state;
	return n;
}
