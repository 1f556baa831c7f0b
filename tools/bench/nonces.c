#include "nonces.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { REPORT_MAX = 8, FIRST_ROOM = 1024 };

_Static_assert(BENCH_NONCE_TUNNEL_BITS + BENCH_NONCE_BITS + BENCH_NONCE_RUN_BITS == 64, "an entry is one word");

#define RUN_MASK ((UINT64_C(1) << BENCH_NONCE_RUN_BITS) - 1)	/* an entry's low bits: its run's length - 1 */
#define NONCE_MASK ((UINT64_C(1) << BENCH_NONCE_BITS) - 1)

static unsigned tunnel_of(uint64_t e)
{
	return (unsigned)(e >> (BENCH_NONCE_BITS + BENCH_NONCE_RUN_BITS));
}

static uint64_t first_of(uint64_t e)
{
	return e >> BENCH_NONCE_RUN_BITS & NONCE_MASK;
}

static uint64_t last_of(uint64_t e)
{
	return first_of(e) + (e & RUN_MASK);
}

int bench_nonces_init(struct bench_nonces *l)
{
	memset(l, 0, sizeof(*l));
	l->open = calloc(1u << BENCH_NONCE_TUNNEL_BITS, sizeof(*l->open));
	return l->open ? 0 : -1;
}

void bench_nonces_add(struct bench_nonces *l, unsigned tunnel, uint64_t nonce)
{
	size_t *open;

	if (nonce >> BENCH_NONCE_BITS || tunnel >> BENCH_NONCE_TUNNEL_BITS) {
		l->refused++;
		return;
	}
	open = &l->open[tunnel];
	if (*open) {	/* the next number of the tunnel's run: the run grows */
		uint64_t *e = &l->v[*open - 1];

		if (last_of(*e) + 1 == nonce && (*e & RUN_MASK) < RUN_MASK) {
			++*e;
			return;
		}
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : FIRST_ROOM;
		uint64_t *v = realloc(l->v, cap * sizeof(*v));

		if (!v) {
			l->refused++;
			return;
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = (uint64_t)tunnel << (BENCH_NONCE_BITS + BENCH_NONCE_RUN_BITS) | nonce << BENCH_NONCE_RUN_BITS;
	*open = l->n;
}

static int by_value(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Sorted by tunnel and first nonce, each run's numbers that an earlier run of its tunnel
 * reached are used again: a number in k runs is counted k - 1 times, by all runs but the
 * first of them to start. */
uint64_t bench_nonces_repeats(struct bench_nonces *logs, unsigned lanes, const char *who)
{
	size_t n = 0, k = 0;
	uint64_t repeats = 0, refused = 0, *all, reach = 0;
	unsigned named = 0;

	for (unsigned i = 0; i < lanes; i++) {
		n += logs[i].n;
		refused += logs[i].refused;
	}
	all = malloc((n ? n : 1) * sizeof(*all));
	if (!all) {
		fprintf(stderr, "egress-bench: %s: out of memory for the nonce check\n", who);
		repeats = 1;
		goto out;
	}
	for (unsigned i = 0; i < lanes; i++)
		for (size_t j = 0; j < logs[i].n; j++)
			all[k++] = logs[i].v[j];
	qsort(all, n, sizeof(*all), by_value);
	for (size_t j = 0; j < n; j++) {
		uint64_t first = first_of(all[j]), last = last_of(all[j]);
		bool same_tunnel = j > 0 && tunnel_of(all[j]) == tunnel_of(all[j - 1]);

		if (same_tunnel && first <= reach) {
			uint64_t upto = last < reach ? last : reach;

			repeats += upto - first + 1;
			if (named++ < REPORT_MAX) {
				if (upto == first)
					fprintf(stderr, "egress-bench: %s: tunnel %u used nonce %" PRIu64 " again\n", who,
						tunnel_of(all[j]), first);
				else
					fprintf(stderr, "egress-bench: %s: tunnel %u used nonces %" PRIu64 "-%" PRIu64 " again\n",
						who, tunnel_of(all[j]), first, upto);
			}
		}
		if (!same_tunnel || last > reach)
			reach = last;
	}
	if (named > REPORT_MAX)
		fprintf(stderr, "egress-bench: %s: %" PRIu64 " nonces used again in all\n", who, repeats);
	if (refused)
		fprintf(stderr, "egress-bench: %s: %" PRIu64 " nonces could not be logged\n", who, refused);
	free(all);
out:
	for (unsigned i = 0; i < lanes; i++) {
		free(logs[i].v);
		free(logs[i].open);
		logs[i].v = NULL;
		logs[i].open = NULL;
		logs[i].n = logs[i].cap = 0;
	}
	return repeats + refused;
}
