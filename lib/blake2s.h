/* BLAKE2s (RFC 7693), keyed and unkeyed, any digest length 1..32; HMAC-BLAKE2s (RFC 2104
 * over BLAKE2s-256, as WireGuard uses it) and the HKDF of the Noise protocol framework.
 * libsodium has BLAKE2b only; WireGuard needs BLAKE2s. */
#ifndef EG_BLAKE2S_H
#define EG_BLAKE2S_H

#include <stddef.h>
#include <stdint.h>

enum {
	EG_BLAKE2S_OUT = 32,		/* the largest (and WireGuard's HASH) digest */
	EG_BLAKE2S_KEY = 32,		/* the largest key */
	EG_BLAKE2S_BLOCK = 64,
};

struct eg_blake2s {
	uint32_t h[8];
	uint32_t t[2];			/* bytes compressed so far */
	uint8_t buf[EG_BLAKE2S_BLOCK];
	size_t buf_len;
	size_t out_len;
};

/* out_len 1..32, key_len 0..32 (key may be NULL when 0). */
void eg_blake2s_init(struct eg_blake2s *s, size_t out_len, const uint8_t *key, size_t key_len);
void eg_blake2s_update(struct eg_blake2s *s, const uint8_t *in, size_t len);
/* Writes out_len bytes and wipes the state. */
void eg_blake2s_final(struct eg_blake2s *s, uint8_t *out);
/* The whole message at once. */
void eg_blake2s(uint8_t *out, size_t out_len, const uint8_t *key, size_t key_len, const uint8_t *in, size_t len);

/* HMAC-BLAKE2s-256 of in under key (any length). */
void eg_hmac_blake2s(uint8_t out[EG_BLAKE2S_OUT], const uint8_t *key, size_t key_len, const uint8_t *in,
		     size_t len);

/* Noise's HKDF(chaining key, input): n (1..3) outputs of 32 bytes, out1..out3 (later ones
 * may be NULL when n is smaller). Intermediate secrets are wiped. */
void eg_hkdf_blake2s(uint8_t *out1, uint8_t *out2, uint8_t *out3, unsigned n, const uint8_t ck[EG_BLAKE2S_OUT],
		     const uint8_t *in, size_t len);

#endif
