/* AEAD through intel-ipsec-mb's burst API: AES-GCM-128/256 (ESP, RFC 4106) and
 * ChaCha20-Poly1305 (ESP RFC 7634, WireGuard). One struct eg_aead_ctx per thread (it owns
 * a library manager); keys are plain data, position independent, so the control process
 * can expand them into shared memory where workers use them.
 *
 * A key expanded by one library architecture (SSE, AVX2, AVX512) must be used by a
 * manager of the same one: contexts take the architecture to use, and keys record it. */
#ifndef EG_AEAD_H
#define EG_AEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <intel-ipsec-mb.h>

enum eg_aead_alg {
	EG_AEAD_NONE = 0,
	EG_AEAD_AES_GCM_128 = 1,
	EG_AEAD_AES_GCM_256 = 2,
	EG_AEAD_CHACHA20_POLY1305 = 3,
};

enum {
	EG_AEAD_TAG_LEN = 16,
	EG_AEAD_NONCE_LEN = 12,		/* what the library is given as IV */
	EG_AEAD_MAX_KEY_LEN = 32,
	EG_AEAD_MAX_BURST = 64,
};

struct eg_aead_key {
	uint32_t alg;			/* enum eg_aead_alg */
	uint32_t arch;			/* IMB_ARCH the key was expanded for */
	uint8_t raw[EG_AEAD_MAX_KEY_LEN];	/* ChaCha20-Poly1305 uses the raw key */
	/* AES-GCM: expanded round keys and hash key. The library's SIMD code needs 64-byte
	 * alignment, which intel-ipsec-mb.h 1.3 only declares when LINUX is defined. */
	struct gcm_key_data gcm __attribute__((aligned(64)));
} __attribute__((aligned(64)));

struct eg_aead_ctx {
	IMB_MGR *mgr;
	IMB_ARCH arch;
};

/* arch: an IMB_ARCH value, or IMB_ARCH_NONE to pick the best this CPU has. 0 or -errno. */
int eg_aead_ctx_init(struct eg_aead_ctx *c, IMB_ARCH arch);
void eg_aead_ctx_free(struct eg_aead_ctx *c);

/* Key lengths: 16 (AES-GCM-128), 32 (AES-GCM-256, ChaCha20-Poly1305). 0 or -EINVAL. */
int eg_aead_key_set(const struct eg_aead_ctx *c, struct eg_aead_key *k, enum eg_aead_alg alg,
		    const uint8_t *key, size_t len);
/* Overwrites all key material in a way the compiler cannot drop. */
void eg_aead_key_wipe(struct eg_aead_key *k);

struct eg_aead_op {
	const struct eg_aead_key *key;	/* NULL: ChaCha20-Poly1305 with chacha_key */
	const uint8_t *nonce;		/* EG_AEAD_NONCE_LEN bytes */
	const uint8_t *aad;
	uint32_t aad_len;
	const uint8_t *src;
	uint8_t *dst;			/* may equal src (in place) */
	uint32_t len;
	uint8_t *tag;			/* encrypt: the tag is written here; decrypt: the expected tag */
	int status;			/* out: 0, or -EBADMSG (decrypt: tag mismatch), -EINVAL */
	const uint8_t *chacha_key;	/* 32 raw bytes, when key is NULL: small key stores
					 * (WireGuard keypairs) skip the room of an AES-GCM schedule */
};

/* Encrypts (or decrypts and verifies) n ops as bursts through the library; ops may mix
 * keys and algorithms. No allocation, no syscalls. Returns how many have status 0. A
 * decrypt whose tag does not verify has its status set to -EBADMSG and its dst contents
 * are not to be used. */
unsigned eg_aead_encrypt_burst(struct eg_aead_ctx *c, struct eg_aead_op *ops, unsigned n);
unsigned eg_aead_decrypt_burst(struct eg_aead_ctx *c, struct eg_aead_op *ops, unsigned n);

#endif
