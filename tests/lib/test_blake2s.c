/* BLAKE2s, HMAC-BLAKE2s and HKDF (lib/blake2s.c): RFC 7693's vector for "abc" and its
 * Appendix E self-test (every digest and key length it names, hashed together), streaming
 * in any chunking equal to one call, and HMAC/HKDF/keyed-MAC values computed with Python's
 * hashlib and hmac (an independent implementation). */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "blake2s.h"

static void unhex(const char *h, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(sscanf(h + 2 * i, "%2hhx", &out[i]), 1);
}

static void expect_hex(const uint8_t *got, const char *hex, size_t n)
{
	uint8_t want[64];

	unhex(hex, want, n);
	cr_assert_eq(memcmp(got, want, n), 0, "expected %s", hex);
}

Test(blake2s, rfc7693_abc)
{
	uint8_t out[32];

	eg_blake2s(out, 32, NULL, 0, (const uint8_t *)"abc", 3);
	expect_hex(out, "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982", 32);
}

/* RFC 7693 Appendix E: deterministic inputs and keys, the digests of all of them hashed. */
static void selftest_seq(uint8_t *out, size_t len, uint32_t seed)
{
	uint32_t a = 0xDEAD4BAD * seed, b = 1;

	for (size_t i = 0; i < len; i++) {
		uint32_t t = a + b;

		a = b;
		b = t;
		out[i] = (uint8_t)(t >> 24);
	}
}

Test(blake2s, rfc7693_selftest)
{
	static const size_t outlens[] = {16, 20, 28, 32}, inlens[] = {0, 3, 64, 65, 255, 1024};
	uint8_t in[1024], md[32], key[32], result[32];
	struct eg_blake2s all;

	eg_blake2s_init(&all, 32, NULL, 0);
	for (size_t i = 0; i < 4; i++)
		for (size_t j = 0; j < 6; j++) {
			size_t outlen = outlens[i], inlen = inlens[j];

			selftest_seq(in, inlen, (uint32_t)inlen);
			eg_blake2s(md, outlen, NULL, 0, in, inlen);
			eg_blake2s_update(&all, md, outlen);
			selftest_seq(key, outlen, (uint32_t)outlen);
			eg_blake2s(md, outlen, key, outlen, in, inlen);
			eg_blake2s_update(&all, md, outlen);
		}
	eg_blake2s_final(&all, result);
	expect_hex(result, "6a411f08ce25adcdfb02aba641451cec53c598b24f4fc787fbdc88797f4c1dfe", 32);
}

Test(blake2s, streaming_equals_one_call)
{
	uint8_t in[1000], key[32], one[32], many[32];

	selftest_seq(in, sizeof(in), 7);
	selftest_seq(key, sizeof(key), 9);
	for (size_t len = 0; len <= sizeof(in); len += 37)
		for (size_t chunk = 1; chunk <= 130; chunk += 43) {
			struct eg_blake2s s;

			eg_blake2s(one, 32, key, 32, in, len);
			eg_blake2s_init(&s, 32, key, 32);
			for (size_t off = 0; off < len; off += chunk)
				eg_blake2s_update(&s, in + off, len - off < chunk ? len - off : chunk);
			eg_blake2s_final(&s, many);
			cr_assert_eq(memcmp(one, many, 32), 0, "len %zu chunk %zu", len, chunk);
		}
}

Test(blake2s, keyed_mac_hmac_and_hkdf_match_python)
{
	uint8_t out[32], key[100], msg[200], ck[32], t1[32], t2[32], t3[32];

	for (unsigned i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)i;
	for (unsigned i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)i;
	memcpy(ck, key, 32);

	eg_blake2s(out, 16, ck, 32, (const uint8_t *)"message", 7);
	expect_hex(out, "2b75eb9c63ca8524ff53d01905b406eb", 16);

	eg_hmac_blake2s(out, (const uint8_t *)"key", 3, (const uint8_t *)"The quick brown fox jumps over the lazy dog", 43);
	expect_hex(out, "f93215bb90d4af4c3061cd932fb169fb8bb8a91d0b4022baea1271e1323cd9a0", 32);
	/* A key longer than a block is hashed first. */
	eg_hmac_blake2s(out, key, sizeof(key), msg, sizeof(msg));
	expect_hex(out, "c4c95271905c6f69c1dd7c6fbc0cb3735457a660ccc2c4370f28825e7abef5af", 32);

	eg_hkdf_blake2s(t1, t2, t3, 3, ck, (const uint8_t *)"input", 5);
	expect_hex(t1, "87b7f70b24183c6db5dc4f6d9f4c47cdb203321aa2a0bef714896adb3107a040", 32);
	expect_hex(t2, "538a02e1eb2e31b7e4d4b82476d1fe2acf50085d3fb584537279195f5d1f5824", 32);
	expect_hex(t3, "9ad858025593be88de0f9442a589cfe84a88dc19e4753d93684d1c5efc4837f9", 32);
	/* Fewer outputs are the same first ones. */
	memset(t2, 0, sizeof(t2));
	eg_hkdf_blake2s(t2, NULL, NULL, 1, ck, (const uint8_t *)"input", 5);
	cr_assert_eq(memcmp(t1, t2, 32), 0);
}
