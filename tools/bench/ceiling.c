#include "ceiling.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>

enum { BURST = 32, MAX_LEN = 2048 };

struct bufs {
	uint8_t data[BURST][MAX_LEN] __attribute__((aligned(64)));
	uint8_t iv[BURST][16];
	uint8_t aad[BURST][16];
	uint8_t tag[BURST][16];
};

static void fill_job(IMB_JOB *job, const struct eg_aead_key *k, enum eg_aead_alg alg, bool decrypt, uint8_t *buf,
		     const uint8_t *iv, const uint8_t *aad, uint32_t aad_len, uint8_t *tag, uint32_t len)
{
	job->src = buf;
	job->dst = buf;
	job->cipher_start_src_offset_in_bytes = 0;
	job->msg_len_to_cipher_in_bytes = len;
	job->hash_start_src_offset_in_bytes = 0;
	job->msg_len_to_hash_in_bytes = len;
	job->iv = iv;
	job->iv_len_in_bytes = 12;
	job->auth_tag_output = tag;
	job->auth_tag_output_len_in_bytes = 16;
	job->cipher_direction = decrypt ? IMB_DIR_DECRYPT : IMB_DIR_ENCRYPT;
	job->chain_order = decrypt ? IMB_ORDER_HASH_CIPHER : IMB_ORDER_CIPHER_HASH;
	if (alg == EG_AEAD_CHACHA20_POLY1305) {
		job->cipher_mode = IMB_CIPHER_CHACHA20_POLY1305;
		job->hash_alg = IMB_AUTH_CHACHA20_POLY1305;
		job->enc_keys = k->raw;
		job->dec_keys = k->raw;
		job->key_len_in_bytes = 32;
		job->u.CHACHA20_POLY1305.aad = aad;
		job->u.CHACHA20_POLY1305.aad_len_in_bytes = aad_len;
	} else {
		job->cipher_mode = IMB_CIPHER_GCM;
		job->hash_alg = IMB_AUTH_AES_GMAC;
		job->enc_keys = &k->gcm;
		job->dec_keys = &k->gcm;
		job->key_len_in_bytes = alg == EG_AEAD_AES_GCM_128 ? 16 : 32;
		job->u.GCM.aad = aad;
		job->u.GCM.aad_len_in_bytes = aad_len;
	}
}

/* Cycles for rounds bursts of 32 through the job API, unchecked: the library's fastest
 * way with jobs. The checked submit took a tenth longer for ChaCha20-Poly1305 at 64 bytes
 * (about 335 cycles against 303), and one job at a time (IMB_SUBMIT_JOB) came between the
 * two; a ceiling from either would flatter every ratio against it. */
static uint64_t run_burst(IMB_MGR *m, const struct eg_aead_key *k, enum eg_aead_alg alg, bool decrypt,
			  struct bufs *b, uint32_t len, uint32_t aad_len, uint64_t rounds, uint64_t *done)
{
	IMB_JOB *jobs[BURST];
	uint64_t t0 = rte_rdtsc();

	*done = 0;
	for (uint64_t r = 0; r < rounds; r++) {
		unsigned n = IMB_GET_NEXT_BURST(m, BURST, jobs);

		for (unsigned j = 0; j < n; j++)
			fill_job(jobs[j], k, alg, decrypt, b->data[j], b->iv[j], b->aad[j], aad_len, b->tag[j], len);
		if (IMB_SUBMIT_BURST_NOCHECK(m, n, jobs) < n)
			IMB_FLUSH_BURST(m, BURST, jobs);
		*done += n;	/* the library may hand out fewer than asked */
	}
	return rte_rdtsc() - t0;
}

/* Cycles for rounds of 32 buffers through AES-GCM's direct API. */
static uint64_t run_direct(IMB_MGR *m, const struct eg_aead_key *k, enum eg_aead_alg alg, bool decrypt,
			   struct bufs *b, uint32_t len, uint32_t aad_len, uint64_t rounds)
{
	struct gcm_context_data ctx;
	uint64_t t0 = rte_rdtsc();

	for (uint64_t r = 0; r < rounds; r++)
		for (unsigned j = 0; j < BURST; j++) {
			uint8_t *d = b->data[j];

			if (alg == EG_AEAD_AES_GCM_128 && !decrypt)
				IMB_AES128_GCM_ENC(m, &k->gcm, &ctx, d, d, len, b->iv[j], b->aad[j], aad_len, b->tag[j], 16);
			else if (alg == EG_AEAD_AES_GCM_128)
				IMB_AES128_GCM_DEC(m, &k->gcm, &ctx, d, d, len, b->iv[j], b->aad[j], aad_len, b->tag[j], 16);
			else if (!decrypt)
				IMB_AES256_GCM_ENC(m, &k->gcm, &ctx, d, d, len, b->iv[j], b->aad[j], aad_len, b->tag[j], 16);
			else
				IMB_AES256_GCM_DEC(m, &k->gcm, &ctx, d, d, len, b->iv[j], b->aad[j], aad_len, b->tag[j], 16);
		}
	return rte_rdtsc() - t0;
}

/* Whether one round of each way does the real work: every buffer sealed (or opened) to
 * what the data path's own library wrapper (lib/aead.c) makes of the same bytes, tag
 * included. Unchecked jobs the library refused, or a direct call that did nothing, would
 * otherwise be timed as a ceiling no data path could reach. */
static bool does_the_work(struct eg_aead_ctx *c, const struct eg_aead_key *k, enum eg_aead_alg alg, bool decrypt,
			  struct bufs *b, uint32_t len, uint32_t aad_len)
{
	uint8_t plain[MAX_LEN], sealed[MAX_LEN];	/* not static: lanes measure at once */
	uint8_t iv[16] = {9, 8, 7, 6, 5, 4, 3, 2, 1}, aad[16] = {0xa1, 0xa2, 0xa3}, tag[16];
	struct eg_aead_op op = {.key = k, .nonce = iv, .aad = aad, .aad_len = aad_len, .src = sealed, .dst = sealed,
				.len = len, .tag = tag};
	uint64_t done;

	for (uint32_t i = 0; i < len; i++)
		plain[i] = (uint8_t)(i * 7 + 3);
	memcpy(sealed, plain, len);
	if (eg_aead_encrypt_burst(c, &op, 1) != 1)
		return false;
	for (int way = 0; way < (alg == EG_AEAD_CHACHA20_POLY1305 ? 1 : 2); way++) {
		for (unsigned j = 0; j < BURST; j++) {
			memcpy(b->data[j], decrypt ? sealed : plain, len);
			memcpy(b->iv[j], iv, sizeof(iv));
			memcpy(b->aad[j], aad, sizeof(aad));
			memset(b->tag[j], 0, sizeof(b->tag[j]));
		}
		if (way == 0) {
			run_burst(c->mgr, k, alg, decrypt, b, len, aad_len, 1, &done);
			if (done != BURST)
				return false;
		} else {
			run_direct(c->mgr, k, alg, decrypt, b, len, aad_len, 1);
		}
		/* Opening computes the tag of what it opened, for the caller to compare. */
		for (unsigned j = 0; j < BURST; j++)
			if (memcmp(b->data[j], decrypt ? plain : sealed, len) != 0 || memcmp(b->tag[j], tag, 16) != 0)
				return false;
	}
	return true;
}

static double mpps(uint64_t ops, uint64_t cycles, uint64_t tsc_hz)
{
	return cycles ? (double)ops * (double)tsc_hz / (double)cycles / 1e6 : 0;
}

int bench_ceiling_measure(IMB_ARCH arch, enum eg_aead_alg alg, bool decrypt, uint32_t len, uint32_t aad_len,
			  uint64_t ops, uint64_t tsc_hz, struct bench_ceiling *out)
{
	static const uint8_t key[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
					17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
	struct eg_aead_ctx c;
	struct eg_aead_key *k = aligned_alloc(64, sizeof(*k));
	struct bufs *b = aligned_alloc(64, sizeof(*b));
	uint64_t rounds = ops / BURST + 1, warm = rounds / 10 + 1;
	int rc = -ENOMEM;

	memset(out, 0, sizeof(*out));
	if (!k || !b)
		goto out;
	rc = -EINVAL;
	if (len > MAX_LEN)
		goto out;
	memset(b, 0x5a, sizeof(*b));
	if ((rc = eg_aead_ctx_init(&c, arch)) != 0)
		goto out;
	if ((rc = eg_aead_key_set(&c, k, alg, key, alg == EG_AEAD_AES_GCM_128 ? 16 : 32)) == 0 &&
	    !does_the_work(&c, k, alg, decrypt, b, len, aad_len)) {
		fprintf(stderr, "egress-bench: the ceiling's library calls did not seal as lib/aead.c does\n");
		rc = -EIO;
	}
	if (rc == 0) {
		uint64_t done, cycles;

		run_burst(c.mgr, k, alg, decrypt, b, len, aad_len, warm, &done);
		cycles = run_burst(c.mgr, k, alg, decrypt, b, len, aad_len, rounds, &done);
		out->burst_mpps = mpps(done, cycles, tsc_hz);
		if (alg != EG_AEAD_CHACHA20_POLY1305) {
			run_direct(c.mgr, k, alg, decrypt, b, len, aad_len, warm);
			out->direct_mpps =
				mpps(rounds * BURST, run_direct(c.mgr, k, alg, decrypt, b, len, aad_len, rounds), tsc_hz);
		}
		out->mpps = out->burst_mpps > out->direct_mpps ? out->burst_mpps : out->direct_mpps;
	}
	eg_aead_key_wipe(k);
	eg_aead_ctx_free(&c);
out:
	free(k);
	free(b);
	return rc;
}
