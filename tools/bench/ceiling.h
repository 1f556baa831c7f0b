/* The raw AEAD ceiling: intel-ipsec-mb on its own, on this core, sealing or opening
 * buffers of the exact lengths a scenario seals or opens, in bursts of 32, in place, with
 * nothing else to do. No data path using the same library can go faster; egress-bench
 * reports each scenario as a ratio of it. */
#ifndef BENCH_CEILING_H
#define BENCH_CEILING_H

#include <stdbool.h>
#include <stdint.h>

#include "aead.h"

struct bench_ceiling {
	double burst_mpps;	/* the job API: IMB_GET_NEXT_BURST / IMB_SUBMIT_BURST_NOCHECK */
	double direct_mpps;	/* AES-GCM's direct API, one call per buffer (0: not for this algorithm) */
	double mpps;		/* the better of the two */
};

/* ops buffers of len bytes with aad_len bytes of AAD, sealed (or opened) ops times. */
int bench_ceiling_measure(IMB_ARCH arch, enum eg_aead_alg alg, bool decrypt, uint32_t len, uint32_t aad_len,
			  uint64_t ops, uint64_t tsc_hz, struct bench_ceiling *out);

#endif
