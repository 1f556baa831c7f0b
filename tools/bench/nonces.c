#include "nonces.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

enum { NONCE_BITS = 48, REPORT_MAX = 8 };

int bench_nonces_init(struct bench_nonces *l, size_t cap)
{
	*l = (struct bench_nonces){.cap = cap};
	l->v = cap ? malloc(cap * sizeof(*l->v)) : NULL;
	return cap && !l->v ? -1 : 0;
}

void bench_nonces_add(struct bench_nonces *l, unsigned tunnel, uint64_t nonce)
{
	if (l->n == l->cap || nonce >> NONCE_BITS || tunnel >> (64 - NONCE_BITS)) {
		l->refused++;
		return;
	}
	l->v[l->n++] = (uint64_t)tunnel << NONCE_BITS | nonce;
}

static int by_value(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

uint64_t bench_nonces_repeats(struct bench_nonces *logs, unsigned lanes, const char *who)
{
	size_t n = 0, k = 0;
	uint64_t repeats = 0, refused = 0, *all;

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
	for (size_t j = 1; j < n; j++) {
		if (all[j] != all[j - 1])
			continue;
		if (repeats++ < REPORT_MAX)
			fprintf(stderr, "egress-bench: %s: tunnel %" PRIu64 " used nonce %" PRIu64 " again\n", who,
				all[j] >> NONCE_BITS, all[j] & ((UINT64_C(1) << NONCE_BITS) - 1));
	}
	if (repeats > REPORT_MAX)
		fprintf(stderr, "egress-bench: %s: %" PRIu64 " nonces used again in all\n", who, repeats);
	if (refused)
		fprintf(stderr, "egress-bench: %s: %" PRIu64 " nonces could not be logged\n", who, refused);
	free(all);
out:
	for (unsigned i = 0; i < lanes; i++) {
		free(logs[i].v);
		logs[i].v = NULL;
	}
	return repeats + refused;
}
