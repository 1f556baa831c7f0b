/* DPDK's own measure of the same cipher, for egress-bench --crypto-perf: runs
 * dpdk-test-crypto-perf (Debian's dpdk-dev) with crypto_aesni_mb, the PMD over the same
 * intel-ipsec-mb, on the CPU where egress-bench measures its ceiling, for the lengths the
 * ceiling seals. The rule for the ceiling is that it is no lower than this tool's
 * figure in the same session: egress-bench checks it in the same run instead of quoting
 * an old one. */
#ifndef BENCH_CRYPTO_PERF_H
#define BENCH_CRYPTO_PERF_H

#include <stdbool.h>
#include <stdint.h>

#include "aead.h"

enum { BENCH_CRYPTO_PERF_MAX_LENS = 8 };

struct bench_crypto_perf_req {
	enum eg_aead_alg alg;
	bool decrypt;
	uint32_t aad_len;
	uint32_t lens[BENCH_CRYPTO_PERF_MAX_LENS];	/* AEAD lengths, distinct */
	unsigned n_lens;
	uint64_t ops;			/* per length */
	unsigned cpu;			/* where its worker lcore runs */
	unsigned main_cpu;		/* its main lcore, which only waits: another CPU */
};

/* Runs the tool once for all of req's lengths; mpps[i] its rate for req->lens[i]. 0, or -1
 * with the reason on stderr (the tool missing, failing, or printing no row for a length). */
int bench_crypto_perf(const struct bench_crypto_perf_req *req, double *mpps);

#endif
