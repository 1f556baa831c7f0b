#include "blake2s.h"

#include <string.h>

#include <sodium.h>

static const uint32_t iv[8] = {
	0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

/* RFC 7693 2.7: the message word permutation of each of the ten rounds. */
static const uint8_t sigma[10][16] = {
	{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
	{14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
	{11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
	{7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
	{9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
	{2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
	{12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
	{13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
	{6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
	{10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
};

static inline uint32_t rotr(uint32_t x, unsigned n)
{
	return x >> n | x << (32 - n);
}

static inline uint32_t load32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* RFC 7693 3.1: G with BLAKE2s's rotations 16, 12, 8, 7. */
#define G(a, b, c, d, x, y)                          \
	do {                                         \
		v[a] = v[a] + v[b] + (x);            \
		v[d] = rotr(v[d] ^ v[a], 16);        \
		v[c] = v[c] + v[d];                  \
		v[b] = rotr(v[b] ^ v[c], 12);        \
		v[a] = v[a] + v[b] + (y);            \
		v[d] = rotr(v[d] ^ v[a], 8);         \
		v[c] = v[c] + v[d];                  \
		v[b] = rotr(v[b] ^ v[c], 7);         \
	} while (0)

static void compress(struct eg_blake2s *s, const uint8_t block[EG_BLAKE2S_BLOCK], int last)
{
	uint32_t v[16], m[16];

	for (unsigned i = 0; i < 16; i++)
		m[i] = load32(block + 4 * i);
	for (unsigned i = 0; i < 8; i++) {
		v[i] = s->h[i];
		v[i + 8] = iv[i];
	}
	v[12] ^= s->t[0];
	v[13] ^= s->t[1];
	if (last)
		v[14] = ~v[14];
	for (unsigned r = 0; r < 10; r++) {
		const uint8_t *z = sigma[r];

		G(0, 4, 8, 12, m[z[0]], m[z[1]]);
		G(1, 5, 9, 13, m[z[2]], m[z[3]]);
		G(2, 6, 10, 14, m[z[4]], m[z[5]]);
		G(3, 7, 11, 15, m[z[6]], m[z[7]]);
		G(0, 5, 10, 15, m[z[8]], m[z[9]]);
		G(1, 6, 11, 12, m[z[10]], m[z[11]]);
		G(2, 7, 8, 13, m[z[12]], m[z[13]]);
		G(3, 4, 9, 14, m[z[14]], m[z[15]]);
	}
	for (unsigned i = 0; i < 8; i++)
		s->h[i] ^= v[i] ^ v[i + 8];
	sodium_memzero(v, sizeof(v));
	sodium_memzero(m, sizeof(m));
}

static void count(struct eg_blake2s *s, uint32_t n)
{
	s->t[0] += n;
	if (s->t[0] < n)
		s->t[1]++;
}

void eg_blake2s_init(struct eg_blake2s *s, size_t out_len, const uint8_t *key, size_t key_len)
{
	memset(s, 0, sizeof(*s));
	memcpy(s->h, iv, sizeof(iv));
	/* Parameter block word 0: digest length, key length, fanout 1, depth 1. */
	s->h[0] ^= 0x01010000u ^ (uint32_t)key_len << 8 ^ (uint32_t)out_len;
	s->out_len = out_len;
	if (key_len) {
		/* The key is the first block, zero-padded. */
		memcpy(s->buf, key, key_len);
		s->buf_len = EG_BLAKE2S_BLOCK;
	}
}

void eg_blake2s_update(struct eg_blake2s *s, const uint8_t *in, size_t len)
{
	while (len) {
		size_t take;

		/* A full buffer is compressed only once more input follows: the last block
		 * must go through final with the last-block flag. */
		if (s->buf_len == EG_BLAKE2S_BLOCK) {
			count(s, EG_BLAKE2S_BLOCK);
			compress(s, s->buf, 0);
			s->buf_len = 0;
		}
		take = EG_BLAKE2S_BLOCK - s->buf_len;
		if (take > len)
			take = len;
		memcpy(s->buf + s->buf_len, in, take);
		s->buf_len += take;
		in += take;
		len -= take;
	}
}

void eg_blake2s_final(struct eg_blake2s *s, uint8_t *out)
{
	uint8_t full[EG_BLAKE2S_OUT];

	count(s, (uint32_t)s->buf_len);
	memset(s->buf + s->buf_len, 0, EG_BLAKE2S_BLOCK - s->buf_len);
	compress(s, s->buf, 1);
	for (unsigned i = 0; i < 8; i++) {
		full[4 * i] = (uint8_t)s->h[i];
		full[4 * i + 1] = (uint8_t)(s->h[i] >> 8);
		full[4 * i + 2] = (uint8_t)(s->h[i] >> 16);
		full[4 * i + 3] = (uint8_t)(s->h[i] >> 24);
	}
	memcpy(out, full, s->out_len);
	sodium_memzero(full, sizeof(full));
	sodium_memzero(s, sizeof(*s));
}

void eg_blake2s(uint8_t *out, size_t out_len, const uint8_t *key, size_t key_len, const uint8_t *in, size_t len)
{
	struct eg_blake2s s;

	eg_blake2s_init(&s, out_len, key, key_len);
	eg_blake2s_update(&s, in, len);
	eg_blake2s_final(&s, out);
}

void eg_hmac_blake2s(uint8_t out[EG_BLAKE2S_OUT], const uint8_t *key, size_t key_len, const uint8_t *in,
		     size_t len)
{
	uint8_t k[EG_BLAKE2S_BLOCK] = {0}, pad[EG_BLAKE2S_BLOCK], inner[EG_BLAKE2S_OUT];
	struct eg_blake2s s;

	if (key_len > EG_BLAKE2S_BLOCK)
		eg_blake2s(k, EG_BLAKE2S_OUT, NULL, 0, key, key_len);
	else
		memcpy(k, key, key_len);
	for (unsigned i = 0; i < EG_BLAKE2S_BLOCK; i++)
		pad[i] = k[i] ^ 0x36;
	eg_blake2s_init(&s, EG_BLAKE2S_OUT, NULL, 0);
	eg_blake2s_update(&s, pad, sizeof(pad));
	eg_blake2s_update(&s, in, len);
	eg_blake2s_final(&s, inner);
	for (unsigned i = 0; i < EG_BLAKE2S_BLOCK; i++)
		pad[i] = k[i] ^ 0x5c;
	eg_blake2s_init(&s, EG_BLAKE2S_OUT, NULL, 0);
	eg_blake2s_update(&s, pad, sizeof(pad));
	eg_blake2s_update(&s, inner, sizeof(inner));
	eg_blake2s_final(&s, out);
	sodium_memzero(k, sizeof(k));
	sodium_memzero(pad, sizeof(pad));
	sodium_memzero(inner, sizeof(inner));
}

void eg_hkdf_blake2s(uint8_t *out1, uint8_t *out2, uint8_t *out3, unsigned n, const uint8_t ck[EG_BLAKE2S_OUT],
		     const uint8_t *in, size_t len)
{
	uint8_t prk[EG_BLAKE2S_OUT], t[EG_BLAKE2S_OUT + 1];
	uint8_t *outs[3] = {out1, out2, out3};

	/* Extract, then expand: T1 = HMAC(prk, 0x01), Ti = HMAC(prk, T(i-1) || i). */
	eg_hmac_blake2s(prk, ck, EG_BLAKE2S_OUT, in, len);
	t[0] = 1;
	eg_hmac_blake2s(t, prk, sizeof(prk), t, 1);
	memcpy(outs[0], t, EG_BLAKE2S_OUT);
	for (unsigned i = 1; i < n && i < 3; i++) {
		t[EG_BLAKE2S_OUT] = (uint8_t)(i + 1);
		eg_hmac_blake2s(t, prk, sizeof(prk), t, sizeof(t));
		memcpy(outs[i], t, EG_BLAKE2S_OUT);
	}
	sodium_memzero(prk, sizeof(prk));
	sodium_memzero(t, sizeof(t));
}
