/* egress-bench --check: the nonces a run's sealed frames carried (an ESP SA's 64-bit IV,
 * a WireGuard keypair's counter), per tunnel and per worker, to prove afterwards that no
 * tunnel used one twice, on one worker or across several. AES-GCM and ChaCha20-Poly1305
 * lose their confidentiality and integrity when a nonce repeats under one key, and the
 * workers share each SA's and keypair's number space (blocks handed out by atomic adds);
 * a frame that checks out alone cannot show this. */
#ifndef BENCH_NONCES_H
#define BENCH_NONCES_H

#include <stddef.h>
#include <stdint.h>

struct bench_nonces {
	uint64_t *v;		/* tunnel << 48 | nonce */
	size_t n, cap;
	uint64_t refused;	/* past cap, or a nonce of 2^48 or more (never in a bench run) */
};

/* Room for cap nonces. 0, or -1 when out of memory. */
int bench_nonces_init(struct bench_nonces *l, size_t cap);

void bench_nonces_add(struct bench_nonces *l, unsigned tunnel, uint64_t nonce);

/* Counts the nonces that appear more than once in the logs of lanes workers together
 * (each extra use one), and the ones that could not be logged, names the first few on
 * stderr (who: the scenario, for the message) and frees the logs. */
uint64_t bench_nonces_repeats(struct bench_nonces *logs, unsigned lanes, const char *who);

#endif
