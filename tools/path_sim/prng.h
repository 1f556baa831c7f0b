/* The simulator's only source of randomness. splitmix64: tiny, fast and good enough to
 * decide loss and jitter; one generator per direction so that a direction's decisions
 * depend only on its own traffic and the seed, and a run given --seed repeats. Not for
 * anything secret. */
#ifndef PATH_SIM_PRNG_H
#define PATH_SIM_PRNG_H

#include <stdint.h>

struct prng {
	uint64_t state;
};

static inline uint64_t prng_next(struct prng *p)
{
	uint64_t z = (p->state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* Uniform in [0, 1): the top 53 bits, which is all a double holds. */
static inline double prng_unit(struct prng *p)
{
	return (double)(prng_next(p) >> 11) * 0x1.0p-53;
}

#endif
