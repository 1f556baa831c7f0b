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
	struct dp_neigh_entry *spare = NULL;

	/* The whole probe chain first: the key may sit beyond a reusable slot. */
	for (unsigned i = 0; i < DP_NEIGH_MAX_PROBE; i++) {
		struct dp_neigh_entry *e = &t->e[(h + i) & (DP_NEIGH_SLOTS - 1)];

		if (e->state == DP_NEIGH_FREE) {
			if (!spare)
				spare = e;
			break;
		}
		if (e->port == port && e->family == family && memcmp(e->ip, ip, alen) == 0)
			return e;
		/* A failed entry gives its slot to a new key, so that addresses that never
		 * answered cannot fill the table for good. Readers compare the key inside the
		 * sequence lock, so they never mistake one key for the other. */
		if (!spare && e->state == DP_NEIGH_FAILED)
			spare = e;
	}
	if (!create || !spare)
		return NULL;
	__atomic_store_n(&spare->seq, spare->seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	spare->port = port;
	spare->family = family;
	memset(spare->ip, 0, sizeof(spare->ip));
	memcpy(spare->ip, ip, alen);
	spare->state = DP_NEIGH_INCOMPLETE;
	__atomic_store_n(&spare->seq, spare->seq + 1, __ATOMIC_RELEASE);
	spare->tries = 0;
	spare->asked_tsc = 0;
	return spare;
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
