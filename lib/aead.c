#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* explicit_bzero */
#endif
#include "aead.h"

#include <errno.h>
#include <string.h>

/* Why bursts. intel-ipsec-mb is a multi-buffer library: one manager per core owns a job
 * queue, and for many modes (AES-CBC, HMAC, ZUC...) its per-arch code parks jobs in SIMD
 * lanes and runs several independent buffers at once, so one buffer's AES rounds hide
 * another's latency; a caller that submits one packet and waits flushes those lanes half
 * empty every time. Hence: queue the whole burst, then force out what is left with one
 * IMB_FLUSH_BURST, never a flush per packet.
 *
 * In 1.3 the two AEAD modes here complete on submit (measured: IMB_SUBMIT_BURST returns
 * all n jobs and the flush returns none): AES-GCM and ChaCha20-Poly1305 interleave many
 * blocks of one buffer in the wide registers instead of lanes of several buffers. The
 * burst still pays: one library call and one dispatch loop per burst instead of a
 * get/submit pair of indirect calls per packet, and the same code picks up cross-buffer
 * lanes where a library version has them. The DESIGN.md ceilings were
 * measured this way, with bursts of 32.
 *
 * The cipher-only and hash-only burst calls of 1.3 have no AEAD modes, so this uses the
 * generic IMB_GET_NEXT_BURST / IMB_SUBMIT_BURST_NOCHECK / IMB_FLUSH_BURST. Completed jobs come
 * back in queue order today, but nothing here relies on it: each job carries its op in
 * user_data.
 *
 * AES-GCM skips the job queue altogether: since it completes on submit anyway, its direct
 * API (IMB_AES128_GCM_ENC and friends) does the same work without filling and checking a
 * job, and egress-bench measured it twice as fast at 64 bytes (about 50 cycles against
 * 95 on VAES) and a quarter faster at 1420. ChaCha20-Poly1305 has no direct API in 1.3
 * and stays on bursts. */

enum {
	CHACHA_KEY_LEN = 32,
	GCM_KEY_ALIGN = 64,
};

_Static_assert(offsetof(struct eg_aead_key, gcm) % GCM_KEY_ALIGN == 0 &&
	       _Alignof(struct eg_aead_key) % GCM_KEY_ALIGN == 0,
	       "the library's SIMD key expansion and GHASH use aligned loads and stores");

int eg_aead_ctx_init(struct eg_aead_ctx *c, IMB_ARCH arch)
{
	IMB_MGR *m;
	int err;

	if (!c)
		return -EINVAL;
	c->mgr = NULL;
	c->arch = IMB_ARCH_NONE;
	/* The AES-less emulation is far too slow for a data plane: not offered. */
	if (arch == IMB_ARCH_NOAESNI)
		return -ENOTSUP;
	if (arch != IMB_ARCH_NONE && arch != IMB_ARCH_SSE && arch != IMB_ARCH_AVX &&
	    arch != IMB_ARCH_AVX2 && arch != IMB_ARCH_AVX512)
		return -EINVAL;

	m = alloc_mb_mgr(0);
	if (!m)
		return -ENOMEM;
	switch (arch) {
	case IMB_ARCH_SSE:
		init_mb_mgr_sse(m);
		break;
	case IMB_ARCH_AVX:
		init_mb_mgr_avx(m);
		break;
	case IMB_ARCH_AVX2:
		init_mb_mgr_avx2(m);
		break;
	case IMB_ARCH_AVX512:
		init_mb_mgr_avx512(m);
		break;
	default:
		init_mb_mgr_auto(m, &arch);
		break;
	}
	err = imb_get_errno(m);
	if (err) {
		err = err == IMB_ERR_MISSING_CPUFLAGS_INIT_MGR ? -ENOTSUP : -EIO;
		goto fail;
	}
	/* Library self-tests (when built in) run at init; a failed one means wrong answers. */
	if ((m->features & IMB_FEATURE_SELF_TEST) && !(m->features & IMB_FEATURE_SELF_TEST_PASS)) {
		err = -EIO;
		goto fail;
	}
	if (arch == IMB_ARCH_NONE || arch == IMB_ARCH_NOAESNI) {
		/* auto fell back to AES emulation: refuse, as for an explicit request */
		err = -ENOTSUP;
		goto fail;
	}
	c->mgr = m;
	c->arch = arch;
	return 0;

fail:
	free_mb_mgr(m);
	return err;
}

void eg_aead_ctx_free(struct eg_aead_ctx *c)
{
	if (!c || !c->mgr)
		return;
	free_mb_mgr(c->mgr);
	c->mgr = NULL;
	c->arch = IMB_ARCH_NONE;
}

void eg_aead_key_wipe(struct eg_aead_key *k)
{
	if (k)
		explicit_bzero(k, sizeof(*k));
}

int eg_aead_key_set(const struct eg_aead_ctx *c, struct eg_aead_key *k, enum eg_aead_alg alg,
		    const uint8_t *key, size_t len)
{
	/* A key in malloc'ed or shared memory at an odd offset would fault in the library
	 * (and could never have been set, so there is nothing to wipe). */
	if (!k || (uintptr_t)(void *)k % _Alignof(struct eg_aead_key))
		return -EINVAL;
	/* Any old key goes first, so a failed set never leaves a usable stale one. */
	eg_aead_key_wipe(k);
	if (!c || !c->mgr || !key)
		return -EINVAL;

	switch (alg) {
	case EG_AEAD_AES_GCM_128:
		if (len != IMB_KEY_128_BYTES)
			return -EINVAL;
		IMB_AES128_GCM_PRE(c->mgr, key, &k->gcm);
		break;
	case EG_AEAD_AES_GCM_256:
		if (len != IMB_KEY_256_BYTES)
			return -EINVAL;
		IMB_AES256_GCM_PRE(c->mgr, key, &k->gcm);
		break;
	case EG_AEAD_CHACHA20_POLY1305:
		if (len != CHACHA_KEY_LEN)
			return -EINVAL;
		memcpy(k->raw, key, CHACHA_KEY_LEN);
		break;
	default:
		return -EINVAL;
	}
	if (imb_get_errno(c->mgr)) {
		eg_aead_key_wipe(k);
		return -EINVAL;
	}
	k->alg = alg;
	k->arch = (uint32_t)c->arch;
	return 0;
}

/* What the library would reject is refused here, per op, and only here: run_chunk submits
 * unchecked, so a pointer missed here would reach the library's SIMD code. The rest of a
 * job (lengths of IV, key and tag, modes, offsets) is constant in fill_job. */
static bool op_valid(const struct eg_aead_ctx *c, const struct eg_aead_op *op)
{
	const struct eg_aead_key *k = op->key;

	if (!op->nonce || !op->tag)
		return false;
	/* A key of a known algorithm for this arch (AES-GCM key schedules are laid out
	 * differently per arch), or a raw ChaCha20-Poly1305 key; either way the checks below. */
	if (k ? (k->alg != EG_AEAD_AES_GCM_128 && k->alg != EG_AEAD_AES_GCM_256 &&
		 k->alg != EG_AEAD_CHACHA20_POLY1305) || k->arch != (uint32_t)c->arch
	      : !op->chacha_key)
		return false;
	if (op->len && (!op->src || !op->dst))
		return false;
	if (op->aad_len && !op->aad)
		return false;
	return true;
}

/* Compares all 16 bytes whatever they hold: the time taken says nothing about where a
 * forged tag first differs. */
static bool tag_equal(const uint8_t *a, const uint8_t *b)
{
	uint8_t d = 0;

	for (unsigned i = 0; i < EG_AEAD_TAG_LEN; i++)
		d |= a[i] ^ b[i];
	__asm__("" : "+r"(d));
	return d == 0;
}

static void fill_job(IMB_JOB *job, struct eg_aead_op *op, bool enc, uint8_t *scratch_tag)
{
	const struct eg_aead_key *k = op->key;

	/* An empty message may come with NULL buffers; the library gets valid ones anyway. */
	job->src = op->src ? op->src : op->nonce;
	job->dst = op->dst ? op->dst : scratch_tag;
	job->cipher_start_src_offset_in_bytes = 0;
	job->msg_len_to_cipher_in_bytes = op->len;
	job->hash_start_src_offset_in_bytes = 0;
	job->msg_len_to_hash_in_bytes = op->len;
	job->iv = op->nonce;
	job->iv_len_in_bytes = EG_AEAD_NONCE_LEN;
	/* decrypt: the library writes the tag it computes; compared with op->tag afterwards */
	job->auth_tag_output = enc ? op->tag : scratch_tag;
	job->auth_tag_output_len_in_bytes = EG_AEAD_TAG_LEN;
	job->cipher_direction = enc ? IMB_DIR_ENCRYPT : IMB_DIR_DECRYPT;
	job->chain_order = enc ? IMB_ORDER_CIPHER_HASH : IMB_ORDER_HASH_CIPHER;
	job->user_data = op;
	job->user_data2 = NULL;
	if (!k || k->alg == EG_AEAD_CHACHA20_POLY1305) {
		const uint8_t *raw = k ? k->raw : op->chacha_key;

		job->cipher_mode = IMB_CIPHER_CHACHA20_POLY1305;
		job->hash_alg = IMB_AUTH_CHACHA20_POLY1305;
		job->enc_keys = raw;
		job->dec_keys = raw;
		job->key_len_in_bytes = CHACHA_KEY_LEN;
		job->u.CHACHA20_POLY1305.aad = op->aad;
		job->u.CHACHA20_POLY1305.aad_len_in_bytes = op->aad_len;
		job->u.CHACHA20_POLY1305.ctx = NULL;
	} else {
		job->cipher_mode = IMB_CIPHER_GCM;
		job->hash_alg = IMB_AUTH_AES_GMAC;
		job->enc_keys = &k->gcm;
		job->dec_keys = &k->gcm;
		job->key_len_in_bytes = k->alg == EG_AEAD_AES_GCM_128 ? IMB_KEY_128_BYTES
								       : IMB_KEY_256_BYTES;
		job->u.GCM.aad = op->aad;
		job->u.GCM.aad_len_in_bytes = op->aad_len;
		job->u.GCM.ctx = NULL;
	}
}

/* Returns how many of the completed jobs left their op with status 0. */
static unsigned complete(IMB_JOB **jobs, unsigned n, bool enc)
{
	unsigned good = 0;

	for (unsigned i = 0; i < n; i++) {
		IMB_JOB *job = jobs[i];
		struct eg_aead_op *op = job->user_data;

		if (job->status != IMB_STATUS_COMPLETED) {
			op->status = -EINVAL;
			continue;
		}
		if (!enc && !tag_equal(job->auth_tag_output, op->tag)) {
			/* Unauthenticated plaintext must not leak out by accident. */
			if (op->len)
				memset(op->dst, 0, op->len);
			op->status = -EBADMSG;
			continue;
		}
		op->status = 0;
		good++;
	}
	return good;
}

/* One AES-GCM op through the direct API; its status set. */
static bool gcm_direct(IMB_MGR *m, struct eg_aead_op *op, bool enc)
{
	const struct eg_aead_key *k = op->key;
	struct gcm_context_data gctx;
	uint8_t computed[EG_AEAD_TAG_LEN], empty[1];
	/* An empty message may come with NULL buffers; the library gets valid ones anyway. */
	const uint8_t *src = op->len ? op->src : empty;
	uint8_t *dst = op->len ? op->dst : empty;
	uint8_t *tag = enc ? op->tag : computed;
	/* What IMB_AES128_GCM_ENC and its kin call. */
	aes_gcm_enc_dec_t run = k->alg == EG_AEAD_AES_GCM_128 ? (enc ? m->gcm128_enc : m->gcm128_dec)
							     : (enc ? m->gcm256_enc : m->gcm256_dec);

	run(&k->gcm, &gctx, dst, src, op->len, op->nonce, op->aad, op->aad_len, tag, EG_AEAD_TAG_LEN);
	if (__builtin_expect(imb_get_errno(m) != 0, 0)) {
		op->status = -EINVAL;
		return false;
	}
	if (!enc && !tag_equal(computed, op->tag)) {
		/* Unauthenticated plaintext must not leak out by accident. */
		if (op->len)
			memset(op->dst, 0, op->len);
		op->status = -EBADMSG;
		return false;
	}
	op->status = 0;
	return true;
}

/* Precondition: n <= EG_AEAD_MAX_BURST and the manager's queue is empty (every call
 * leaves it empty). */
static unsigned run_chunk(struct eg_aead_ctx *c, struct eg_aead_op *ops, unsigned n, bool enc)
{
	IMB_MGR *m = c->mgr;
	IMB_JOB *jobs[EG_AEAD_MAX_BURST];
	struct eg_aead_op *todo[EG_AEAD_MAX_BURST];
	uint8_t scratch[EG_AEAD_MAX_BURST][EG_AEAD_TAG_LEN];
	unsigned n_todo = 0, good = 0;

	for (unsigned i = 0; i < n; i++) {
		const struct eg_aead_key *k = ops[i].key;

		if (!op_valid(c, &ops[i])) {
			ops[i].status = -EINVAL;
			continue;
		}
		if (k && (k->alg == EG_AEAD_AES_GCM_128 || k->alg == EG_AEAD_AES_GCM_256)) {
			good += gcm_direct(m, &ops[i], enc);
			continue;
		}
		todo[n_todo++] = &ops[i];
	}

	while (n_todo) {
		unsigned got = IMB_GET_NEXT_BURST(m, n_todo, jobs), done;

		if (!got)
			break;
		for (unsigned j = 0; j < got; j++)
			fill_job(jobs[j], todo[j], enc, scratch[j]);
		/* Unchecked: every field the library's check reads is a constant fill_job
		 * sets or a pointer op_valid has checked, and checking again cost a tenth of
		 * ChaCha20-Poly1305 at 64 bytes (egress-bench's ceiling, both ways). Nothing
		 * can be refused, so no job is lost either: what is not done on submit comes
		 * out of the flush. */
		done = IMB_SUBMIT_BURST_NOCHECK(m, got, jobs);
		good += complete(jobs, done, enc);
		done = IMB_FLUSH_BURST(m, got, jobs);
		good += complete(jobs, done, enc);

		/* the queue has room for IMB_MAX_JOBS, so got == n_todo in practice */
		memmove(todo, todo + got, (n_todo - got) * sizeof(todo[0]));
		n_todo -= got;
	}
	for (unsigned j = 0; j < n_todo; j++)
		todo[j]->status = -EINVAL;
	return good;
}

static unsigned run(struct eg_aead_ctx *c, struct eg_aead_op *ops, unsigned n, bool enc)
{
	unsigned good = 0;

	if (!ops)
		return 0;
	if (!c || !c->mgr) {
		for (unsigned i = 0; i < n; i++)
			ops[i].status = -EINVAL;
		return 0;
	}
	for (unsigned i = 0; i < n; i += EG_AEAD_MAX_BURST) {
		unsigned k = n - i < EG_AEAD_MAX_BURST ? n - i : EG_AEAD_MAX_BURST;

		good += run_chunk(c, ops + i, k, enc);
	}
	return good;
}

unsigned eg_aead_encrypt_burst(struct eg_aead_ctx *c, struct eg_aead_op *ops, unsigned n)
{
	return run(c, ops, n, true);
}

unsigned eg_aead_decrypt_burst(struct eg_aead_ctx *c, struct eg_aead_op *ops, unsigned n)
{
	return run(c, ops, n, false);
}
