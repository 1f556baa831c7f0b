/* egress-bench --check: the nonces a run's sealed frames carried (an ESP SA's 64-bit IV,
 * a WireGuard keypair's counter), per tunnel and per worker, to prove afterwards that no
 * tunnel used one twice, on one worker or across several. AES-GCM and ChaCha20-Poly1305
 * lose their confidentiality and integrity when a nonce repeats under one key, and the
 * workers share each SA's and keypair's number space (blocks handed out by atomic adds);
 * a frame that checks out alone cannot show this.
 *
 * A worker's nonces on one tunnel mostly come in runs (a burst's block, or every number
 * when no other worker seals on the tunnel), so the log keeps runs: one 8-byte entry per
 * run, at worst one per sealed frame. */
#ifndef BENCH_NONCES_H
#define BENCH_NONCES_H

#include <stddef.h>
#include <stdint.h>

enum {
	BENCH_NONCE_TUNNEL_BITS = 10,	/* tunnels the log tells apart */
	BENCH_NONCE_BITS = 40,		/* nonces it can hold: far more than a bench run seals */
	BENCH_NONCE_RUN_BITS = 14,	/* a longer run takes more entries */
};

struct bench_nonces {
	uint64_t *v;		/* tunnel, first nonce, length - 1, from the top bit down */
	size_t n, cap;
	size_t *open;		/* per tunnel, 1 + the entry its last nonce went into */
	uint64_t refused;	/* out of memory, or a tunnel or nonce too wide to log */
};

/* 0, or -1 when out of memory. */
int bench_nonces_init(struct bench_nonces *l);

void bench_nonces_add(struct bench_nonces *l, unsigned tunnel, uint64_t nonce);

/* Counts the nonces that appear more than once in the logs of lanes workers together
 * (each extra use one), and the ones that could not be logged, names the first few on
 * stderr (who: the scenario, for the message) and frees the logs. */
uint64_t bench_nonces_repeats(struct bench_nonces *logs, unsigned lanes, const char *who);

#endif
