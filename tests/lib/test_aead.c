/* AEAD bursts through intel-ipsec-mb: published known answers (GCM specification, the
 * RFC 4106 ESP test cases, RFC 8439), single-byte forgeries on every input, mixed bursts
 * larger than one library burst, and a differential check against libsodium. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "aead.h"

static struct eg_aead_ctx ctx;

static void setup(void)
{
	cr_assert_eq(sodium_init() < 0, 0);
	cr_assert_eq(eg_aead_ctx_init(&ctx, IMB_ARCH_NONE), 0);
}

static void teardown(void)
{
	eg_aead_ctx_free(&ctx);
}

TestSuite(aead, .init = setup, .fini = teardown);

static size_t unhex(const char *s, uint8_t *out, size_t max)
{
	size_t n = 0;

	while (*s) {
		unsigned v;

		if (*s == ' ') {
			s++;
			continue;
		}
		cr_assert(n < max, "hex string longer than %zu bytes", max);
		cr_assert_eq(sscanf(s, "%2x", &v), 1, "bad hex at \"%.8s\"", s);
		out[n++] = (uint8_t)v;
		s += 2;
	}
	return n;
}

static unsigned key_len_of(enum eg_aead_alg alg)
{
	return alg == EG_AEAD_AES_GCM_128 ? 16 : 32;
}

static int crypt1(struct eg_aead_ctx *c, bool enc, const struct eg_aead_key *k,
		  const uint8_t *nonce, const uint8_t *aad, uint32_t aad_len, const uint8_t *src,
		  uint8_t *dst, uint32_t len, uint8_t *tag)
{
	struct eg_aead_op op = {
		.key = k, .nonce = nonce, .aad = aad, .aad_len = aad_len,
		.src = src, .dst = dst, .len = len, .tag = tag, .status = 12345,
	};
	unsigned good = enc ? eg_aead_encrypt_burst(c, &op, 1) : eg_aead_decrypt_burst(c, &op, 1);

	cr_assert_eq(good, op.status == 0 ? 1u : 0u);
	return op.status;
}

/* ---- known answers ---------------------------------------------------------------- */

struct kat {
	enum eg_aead_alg alg;
	const char *key, *nonce, *aad, *pt, *ct, *tag;
};

#define G128 EG_AEAD_AES_GCM_128
#define G256 EG_AEAD_AES_GCM_256
#define CCP EG_AEAD_CHACHA20_POLY1305

/* McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", revised spec, appendix B,
 * test cases 1-4 (AES-128) and 13-16 (AES-256); all with 96-bit IVs. Transcribed from
 * the copy in GNU Nettle's testsuite/gcm-test.c; case 16 also checked against a second
 * public copy. */
#define TC_K1 "feffe9928665731c6d6a8f9467308308"
#define TC_P64 "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72" \
	       "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255"
#define TC_P60 "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72" \
	       "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
#define TC_A20 "feedfacedeadbeeffeedfacedeadbeefabaddad2"
#define TC_IV "cafebabefacedbaddecaf888"
#define Z12 "000000000000000000000000"
#define Z16 "00000000000000000000000000000000"

static const struct kat gcm_spec[] = {
	/* 1 */ { G128, Z16, Z12, "", "", "", "58e2fccefa7e3061367f1d57a4e7455a" },
	/* 2 */ { G128, Z16, Z12, "", Z16, "0388dace60b6a392f328c2b971b2fe78",
		  "ab6e47d42cec13bdf53a67b21257bddf" },
	/* 3 */ { G128, TC_K1, TC_IV, "", TC_P64,
		  "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
		  "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
		  "4d5c2af327cd64a62cf35abd2ba6fab4" },
	/* 4 */ { G128, TC_K1, TC_IV, TC_A20, TC_P60,
		  "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
		  "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
		  "5bc94fbc3221a5db94fae95ae7121a47" },
	/* 13 */ { G256, Z16 Z16, Z12, "", "", "", "530f8afbc74536b9a963b4f1c4cb738b" },
	/* 14 */ { G256, Z16 Z16, Z12, "", Z16, "cea7403d4d606b6e074ec5d3baf39d18",
		   "d0d1c8a799996bf0265b98b5d48ab919" },
	/* 15 */ { G256, TC_K1 TC_K1, TC_IV, "", TC_P64,
		   "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
		   "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
		   "b094dac5d93471bdec1a502270e3cc6c" },
	/* 16 */ { G256, TC_K1 TC_K1, TC_IV, TC_A20, TC_P60,
		   "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
		   "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
		   "76fc6ece0f4e1768cddf8853bb2d551b" },
};

/* RFC 8439 (ChaCha20 and Poly1305 for IETF Protocols): section 2.8.2, the AEAD example
 * ("Ladies and Gentlemen of the class of '99..."), and appendix A.5, the decryption
 * example. Transcribed from public copies of the RFC's hex (several agree byte for byte). */
static const struct kat rfc8439[] = {
	/* 2.8.2 */ { CCP,
		"808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
		"070000004041424344454647",
		"50515253c0c1c2c3c4c5c6c7",
		"4c616469657320616e642047656e746c656d656e206f662074686520636c6173"
		"73206f66202739393a204966204920636f756c64206f6666657220796f75206f"
		"6e6c79206f6e652074697020666f7220746865206675747572652c2073756e73"
		"637265656e20776f756c642062652069742e",
		"d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
		"3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
		"92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
		"3ff4def08e4b7a9de576d26586cec64b6116",
		"1ae10b594f09e26a7e902ecbd0600691" },
	/* A.5 */ { CCP,
		"1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0",
		"000000000102030405060708",
		"f33388860000000000004e91",
		"496e7465726e65742d4472616674732061726520647261667420646f63756d65"
		"6e74732076616c696420666f722061206d6178696d756d206f6620736978206d"
		"6f6e74687320616e64206d617920626520757064617465642c207265706c6163"
		"65642c206f72206f62736f6c65746564206279206f7468657220646f63756d65"
		"6e747320617420616e792074696d652e20497420697320696e617070726f7072"
		"6961746520746f2075736520496e7465726e65742d4472616674732061732072"
		"65666572656e6365206d6174657269616c206f7220746f206369746520746865"
		"6d206f74686572207468616e206173202fe2809c776f726b20696e2070726f67"
		"726573732e2fe2809d",
		"64a0861575861af460f062c79be643bd5e805cfd345cf389f108670ac76c8cb2"
		"4c6cfc18755d43eea09ee94e382d26b0bdb7b73c321b0100d4f03b7f355894cf"
		"332f830e710b97ce98c8a84abd0b948114ad176e008d33bd60f982b1ff37c855"
		"9797a06ef4f0ef61c186324e2b3506383606907b6a7c02b0f9f6157b53c867e4"
		"b9166c767b804d46a59b5216cde7a4e99040c5a40433225ee282a1b0a06c523e"
		"af4534d7f83fa1155b0047718cbc546a0d072b04b3564eea1b422273f548271a"
		"0bb2316053fa76991955ebd63159434ecebb4e466dae5a1073a6727627097a10"
		"49e617d91d361094fa68f0ff77987130305beaba2eda04df997b714d6c6f2c29"
		"a6ad5cb4022b02709b",
		"eead9d67890cbb22392336fea1851f38" },
};

/* draft-mcgrew-gcm-test-01 ("Test Cases for the use of GCM and GMAC in IPsec ESP"),
 * section 4: whole ESP payloads as RFC 4106 builds them, nonce = salt || explicit IV and
 * AAD = SPI || sequence number (|| high half first, with ESN). Transcribed from two
 * independent public copies (a Go test suite and the ell library's unit/test-cipher.c);
 * (b) is in only the first. Entries are named by their parameters, not by the draft's
 * case numbers, which the copies did not carry. */
struct esp_kat {
	enum eg_aead_alg alg;
	const char *key, *salt, *iv, *spi, *seq, *pt, *ct, *tag;
};

static const struct esp_kat rfc4106[] = {
	/* (a) AES-128, ESN: 12-byte AAD */
	{ G128, "4c80cdefbb5d10da906ac73c3613a634", "2e443b68", "4956ed7e3b244cfe",
	  "00004321", "8765432100000000",
	  "45000048699a000080114db7c0a80102c0a801010a9bf15638d3010000010000"
	  "00000000045f736970045f756470037369700963796265726369747902646b00"
	  "0021000101020201",
	  "fecf537e729d5b07dc30df528dd22b768d1b98736696a6fd348509fa13ceac34"
	  "cfa2436f14a3f3cf65925bf1f4a13c5d15b21e1884f5ff6247aeabb786b93bce"
	  "61bc17d768fd9732",
	  "459018148f6cbe722fd04796562dfdb4" },
	/* (b) AES-128, 32-bit sequence number: 8-byte AAD */
	{ G128, "feffe9928665731c6d6a8f9467308308", "cafebabe", "facedbaddecaf888",
	  "0000a5f8", "0000000a",
	  "4500003e698f000080114dccc0a80102c0a801010a980035002a2343b2d00100"
	  "0001000000000000037369700963796265726369747902646b00000100010001",
	  "deb22cd9b07c72c16e3a65beeb8df304a5a5897d33ae530f1ba76d5d114d2a5c"
	  "3de81827c10e9a4f51330d0eec416642cfbb85a5b47e48a4ec3b9ba95d918bd1",
	  "83b70d3aa8bc6ee4c309e9d85a41ad4a" },
	/* (c) AES-256 */
	{ G256, "abbccddef00112233445566778899aababbccddef00112233445566778899aab",
	  "11223344", "0102030405060708", "4a2cbfe3", "00000002",
	  "4500003069a6400080062690c0a801029389155e0a9e008b2dc57ee000000000"
	  "7002400020bf0000020405b40101040201020201",
	  "ff425c9b724599df7a3bcd510194e00d6a78107f1b0b1cbf06efae9d65a5d763"
	  "748a637985771d347f0545659f14e99def842d8e",
	  "b335f4eecfdbf831824b4c4915956c96" },
	/* (d) AES-128, all-zero key, salt and IV */
	{ G128, "00000000000000000000000000000000", "00000000", "0000000000000000",
	  "00000000", "00000001",
	  "4500003c99c500008001cb7a40679318010101010800075c0200440061626364"
	  "65666768696a6b6c6d6e6f707172737475767761626364656667686901020201",
	  "4688daf2f973a392732909c331d56d60f694abaa414b5e7ff5fdcdfff5e9a284"
	  "456476492719ffb64de7d9dca1e1d894bc3bd57873ed4d181d19d4d5c8c18af3",
	  "f821d496eeb096e98ad2b69e4799c71d" },
	/* (e) AES-128, 4-byte payload, sequence number 0xffffffff */
	{ G128, "7d773d00c144c525ac619d18c84a3f47", "d9664267", "43457e9182443bc6",
	  "335467ae", "ffffffff", "01020201", "437f866b",
	  "cb3f699fe9b0822bac961c4504bef270" },
};

enum { KAT_MAX = 512 };

struct kat_buf {
	uint8_t key[32], nonce[12], aad[32], pt[KAT_MAX], ct[KAT_MAX], tag[16];
	uint8_t out[KAT_MAX], otag[16], back[KAT_MAX];
	size_t key_len, nonce_len, aad_len, len, ct_len, tag_len;
};

static void load_kat(const struct kat *t, struct kat_buf *b)
{
	memset(b, 0, sizeof(*b));
	b->key_len = unhex(t->key, b->key, sizeof(b->key));
	b->nonce_len = unhex(t->nonce, b->nonce, sizeof(b->nonce));
	b->aad_len = unhex(t->aad, b->aad, sizeof(b->aad));
	b->len = unhex(t->pt, b->pt, sizeof(b->pt));
	b->ct_len = unhex(t->ct, b->ct, sizeof(b->ct));
	b->tag_len = unhex(t->tag, b->tag, sizeof(b->tag));
	cr_assert_eq(b->key_len, key_len_of(t->alg));
	cr_assert_eq(b->nonce_len, 12);
	cr_assert_eq(b->len, b->ct_len);
	cr_assert_eq(b->tag_len, 16);
}

static void load_esp(const struct esp_kat *t, struct kat *k, char *nonce, char *aad)
{
	/* RFC 4106 section 4: nonce = salt || IV; section 5: AAD = SPI || sequence number */
	strcpy(nonce, t->salt);
	strcat(nonce, t->iv);
	strcpy(aad, t->spi);
	strcat(aad, t->seq);
	*k = (struct kat){ t->alg, t->key, nonce, aad, t->pt, t->ct, t->tag };
}

static void check_kat(struct eg_aead_ctx *c, const char *what, unsigned i, const struct kat *t)
{
	struct kat_buf *b = malloc(sizeof(*b));
	struct eg_aead_key k;

	cr_assert_not_null(b);
	load_kat(t, b);
	cr_assert_eq(eg_aead_key_set(c, &k, t->alg, b->key, b->key_len), 0);

	cr_assert_eq(crypt1(c, true, &k, b->nonce, b->aad, (uint32_t)b->aad_len, b->pt, b->out,
			    (uint32_t)b->len, b->otag), 0, "%s %u: encrypt", what, i);
	cr_assert_arr_eq(b->out, b->ct, b->len, "%s %u: ciphertext", what, i);
	cr_assert_arr_eq(b->otag, b->tag, 16, "%s %u: tag", what, i);

	cr_assert_eq(crypt1(c, false, &k, b->nonce, b->aad, (uint32_t)b->aad_len, b->ct, b->back,
			    (uint32_t)b->len, b->tag), 0, "%s %u: decrypt", what, i);
	cr_assert_arr_eq(b->back, b->pt, b->len, "%s %u: plaintext", what, i);

	/* and in place */
	memcpy(b->back, b->pt, b->len);
	cr_assert_eq(crypt1(c, true, &k, b->nonce, b->aad, (uint32_t)b->aad_len, b->back, b->back,
			    (uint32_t)b->len, b->otag), 0);
	cr_assert_arr_eq(b->back, b->ct, b->len, "%s %u: in-place ciphertext", what, i);
	cr_assert_eq(crypt1(c, false, &k, b->nonce, b->aad, (uint32_t)b->aad_len, b->back, b->back,
			    (uint32_t)b->len, b->tag), 0);
	cr_assert_arr_eq(b->back, b->pt, b->len, "%s %u: in-place plaintext", what, i);

	eg_aead_key_wipe(&k);
	free(b);
}

static void check_all_kats(struct eg_aead_ctx *c)
{
	char nonce[64], aad[64];
	struct kat k;

	for (unsigned i = 0; i < sizeof(gcm_spec) / sizeof(gcm_spec[0]); i++)
		check_kat(c, "GCM spec", i, &gcm_spec[i]);
	for (unsigned i = 0; i < sizeof(rfc8439) / sizeof(rfc8439[0]); i++)
		check_kat(c, "RFC 8439", i, &rfc8439[i]);
	for (unsigned i = 0; i < sizeof(rfc4106) / sizeof(rfc4106[0]); i++) {
		load_esp(&rfc4106[i], &k, nonce, aad);
		check_kat(c, "draft-mcgrew-gcm-test-01", i, &k);
	}
}

Test(aead, gcm_spec_rfc8439_rfc4106_known_answers)
{
	check_all_kats(&ctx);
}

/* The same answers from every library architecture this CPU can run. */
Test(aead, known_answers_on_every_arch)
{
	static const IMB_ARCH archs[] = { IMB_ARCH_SSE, IMB_ARCH_AVX, IMB_ARCH_AVX2,
					  IMB_ARCH_AVX512 };
	unsigned ran = 0;

	for (unsigned i = 0; i < sizeof(archs) / sizeof(archs[0]); i++) {
		struct eg_aead_ctx c;
		int rc = eg_aead_ctx_init(&c, archs[i]);

		if (rc == -ENOTSUP)
			continue;
		cr_assert_eq(rc, 0, "arch %d: %d", archs[i], rc);
		cr_assert_eq(c.arch, archs[i]);
		check_all_kats(&c);
		eg_aead_ctx_free(&c);
		ran++;
	}
	cr_assert_gt(ran, 0);
}

/* All known answers at once, as one mixed burst of both directions' inputs. */
Test(aead, known_answers_in_one_burst)
{
	enum { N = 32 };
	static struct kat_buf b[N];
	static struct eg_aead_key keys[N];
	struct eg_aead_op ops[N];
	char nonces[N][64], aads[N][64];
	struct kat all[N];
	unsigned n = 0;

	for (unsigned i = 0; i < sizeof(gcm_spec) / sizeof(gcm_spec[0]); i++)
		all[n++] = gcm_spec[i];
	for (unsigned i = 0; i < sizeof(rfc8439) / sizeof(rfc8439[0]); i++)
		all[n++] = rfc8439[i];
	for (unsigned i = 0; i < sizeof(rfc4106) / sizeof(rfc4106[0]); i++, n++)
		load_esp(&rfc4106[i], &all[n], nonces[n], aads[n]);

	for (unsigned i = 0; i < n; i++) {
		load_kat(&all[i], &b[i]);
		cr_assert_eq(eg_aead_key_set(&ctx, &keys[i], all[i].alg, b[i].key, b[i].key_len), 0);
		ops[i] = (struct eg_aead_op){ &keys[i], b[i].nonce, b[i].aad, (uint32_t)b[i].aad_len,
					      b[i].pt, b[i].out, (uint32_t)b[i].len, b[i].otag, 1 };
	}
	cr_assert_eq(eg_aead_encrypt_burst(&ctx, ops, n), n);
	for (unsigned i = 0; i < n; i++) {
		cr_assert_eq(ops[i].status, 0);
		cr_assert_arr_eq(b[i].out, b[i].ct, b[i].len, "vector %u", i);
		cr_assert_arr_eq(b[i].otag, b[i].tag, 16, "vector %u", i);
		ops[i].src = b[i].ct;
		ops[i].dst = b[i].back;
		ops[i].tag = b[i].tag;
	}
	cr_assert_eq(eg_aead_decrypt_burst(&ctx, ops, n), n);
	for (unsigned i = 0; i < n; i++)
		cr_assert_arr_eq(b[i].back, b[i].pt, b[i].len, "vector %u", i);
}

/* ---- forgeries ------------------------------------------------------------------- */

enum { FLIP_MAX_LEN = 1420 };

enum region { R_AAD, R_NONCE, R_CT, R_TAG };

struct flip {
	enum region r;
	unsigned i;
};

static const enum eg_aead_alg all_algs[] = { G128, G256, CCP };

static unsigned flips_for(unsigned len, unsigned aad_len, struct flip *f)
{
	unsigned n = 0;

	for (unsigned i = 0; i < aad_len; i++)
		f[n++] = (struct flip){ R_AAD, i };
	for (unsigned i = 0; i < EG_AEAD_NONCE_LEN; i++)
		f[n++] = (struct flip){ R_NONCE, i };
	for (unsigned i = 0; i < EG_AEAD_TAG_LEN; i++)
		f[n++] = (struct flip){ R_TAG, i };
	for (unsigned i = 0; i < len; i++) {
		/* every byte of short inputs; of long ones both ends, a stride, both block
		 * boundaries around each sampled point */
		bool take = len <= 64 || i < 20 || i >= len - 20 || i % 61 == 0 || i % 64 == 15;

		if (take)
			f[n++] = (struct flip){ R_CT, i };
	}
	return n;
}

Test(aead, every_single_byte_flip_is_refused)
{
	static const unsigned lens[] = { 0, 1, 15, 16, 17, 64, 1420 };
	static const unsigned aad_lens[] = { 8, 12 };
	static uint8_t pt[FLIP_MAX_LEN], ct[FLIP_MAX_LEN], back[FLIP_MAX_LEN];
	static uint8_t f_ct[EG_AEAD_MAX_BURST][FLIP_MAX_LEN], f_dst[EG_AEAD_MAX_BURST][FLIP_MAX_LEN];
	static uint8_t f_aad[EG_AEAD_MAX_BURST][12], f_nonce[EG_AEAD_MAX_BURST][12];
	static uint8_t f_tag[EG_AEAD_MAX_BURST][16];
	static struct flip flips[12 + 12 + 16 + FLIP_MAX_LEN];
	unsigned total = 0;

	for (unsigned a = 0; a < 3; a++) {
		uint8_t raw[32];
		struct eg_aead_key k;

		randombytes_buf(raw, sizeof(raw));
		cr_assert_eq(eg_aead_key_set(&ctx, &k, all_algs[a], raw, key_len_of(all_algs[a])), 0);
		for (unsigned li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
			for (unsigned ai = 0; ai < 2; ai++) {
				unsigned len = lens[li], aad_len = aad_lens[ai];
				uint8_t aad[12], nonce[12], tag[16];
				unsigned nf = flips_for(len, aad_len, flips);

				randombytes_buf(pt, len);
				randombytes_buf(aad, sizeof(aad));
				randombytes_buf(nonce, sizeof(nonce));
				cr_assert_eq(crypt1(&ctx, true, &k, nonce, aad, aad_len, pt, ct, len, tag), 0);
				cr_assert_eq(crypt1(&ctx, false, &k, nonce, aad, aad_len, ct, back, len, tag), 0);
				cr_assert_arr_eq(back, pt, len);

				for (unsigned f0 = 0; f0 < nf; f0 += EG_AEAD_MAX_BURST) {
					struct eg_aead_op ops[EG_AEAD_MAX_BURST];
					unsigned m = nf - f0 < EG_AEAD_MAX_BURST ? nf - f0 : EG_AEAD_MAX_BURST;

					for (unsigned j = 0; j < m; j++) {
						const struct flip *f = &flips[f0 + j];
						uint8_t bit = (uint8_t)(1u << ((f0 + j) % 8));

						memcpy(f_ct[j], ct, len);
						memcpy(f_aad[j], aad, aad_len);
						memcpy(f_nonce[j], nonce, 12);
						memcpy(f_tag[j], tag, 16);
						memset(f_dst[j], 0xa5, len);
						switch (f->r) {
						case R_AAD: f_aad[j][f->i] ^= bit; break;
						case R_NONCE: f_nonce[j][f->i] ^= bit; break;
						case R_CT: f_ct[j][f->i] ^= bit; break;
						case R_TAG: f_tag[j][f->i] ^= bit; break;
						}
						ops[j] = (struct eg_aead_op){ &k, f_nonce[j], f_aad[j], aad_len,
									      f_ct[j], f_dst[j], len, f_tag[j], 0 };
					}
					cr_assert_eq(eg_aead_decrypt_burst(&ctx, ops, m), 0);
					for (unsigned j = 0; j < m; j++) {
						cr_assert_eq(ops[j].status, -EBADMSG,
							     "alg %d len %u aad %u: region %d byte %u accepted",
							     all_algs[a], len, aad_len, flips[f0 + j].r,
							     flips[f0 + j].i);
						/* unauthenticated plaintext is not left behind */
						for (unsigned x = 0; x < len; x++)
							cr_assert_eq(f_dst[j][x], 0);
					}
					total += m;
				}
			}
		}
		eg_aead_key_wipe(&k);
	}
	cr_assert_gt(total, 2000);
}

/* ---- bursts ---------------------------------------------------------------------- */

enum { MIX_MAX = 200, MIX_LEN = 1500, MIX_KEYS = 6 };

struct mix {
	struct eg_aead_key keys[MIX_KEYS];
	uint8_t raw[MIX_KEYS][32];
	struct eg_aead_op ops[MIX_MAX];
	uint8_t pt[MIX_MAX][MIX_LEN], buf[MIX_MAX][MIX_LEN], ref[MIX_MAX][MIX_LEN];
	uint8_t back[MIX_MAX][MIX_LEN];
	uint8_t nonce[MIX_MAX][12], aad[MIX_MAX][24], tag[MIX_MAX][16], ref_tag[MIX_MAX][16];
	unsigned kidx[MIX_MAX];
};

static const enum eg_aead_alg mix_alg[MIX_KEYS] = { G128, G256, CCP, G128, G256, CCP };

static void mix_setup(struct mix *m, unsigned n)
{
	for (unsigned i = 0; i < MIX_KEYS; i++) {
		randombytes_buf(m->raw[i], 32);
		cr_assert_eq(eg_aead_key_set(&ctx, &m->keys[i], mix_alg[i], m->raw[i],
					     key_len_of(mix_alg[i])), 0);
	}
	for (unsigned i = 0; i < n; i++) {
		static const unsigned edge[] = { 0, 1, 15, 16, 17, 63, 64, 65, 1420, MIX_LEN };
		struct eg_aead_op *op = &m->ops[i];

		m->kidx[i] = randombytes_uniform(MIX_KEYS);
		op->key = &m->keys[m->kidx[i]];
		op->len = i < 10 ? edge[i] : randombytes_uniform(MIX_LEN + 1);
		op->aad_len = randombytes_uniform(25);
		randombytes_buf(m->pt[i], op->len);
		randombytes_buf(m->nonce[i], 12);
		randombytes_buf(m->aad[i], op->aad_len);
		op->nonce = m->nonce[i];
		op->aad = m->aad[i];
		op->status = 99;
	}
}

/* Each op alone, through the one-op path, as the reference for the burst. */
static void mix_reference(struct mix *m, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct eg_aead_op *op = &m->ops[i];

		cr_assert_eq(crypt1(&ctx, true, op->key, op->nonce, op->aad, op->aad_len, m->pt[i],
				    m->ref[i], op->len, m->ref_tag[i]), 0);
	}
}

static void mixed_burst(unsigned n, bool in_place)
{
	struct mix *m = aligned_alloc(64, sizeof(*m));

	cr_assert_not_null(m);
	memset(m, 0, sizeof(*m));
	mix_setup(m, n);
	mix_reference(m, n);

	for (unsigned i = 0; i < n; i++) {
		struct eg_aead_op *op = &m->ops[i];

		if (in_place)
			memcpy(m->buf[i], m->pt[i], op->len);
		op->src = in_place ? m->buf[i] : m->pt[i];
		op->dst = m->buf[i];
		op->tag = m->tag[i];
	}
	cr_assert_eq(eg_aead_encrypt_burst(&ctx, m->ops, n), n);
	for (unsigned i = 0; i < n; i++) {
		cr_assert_eq(m->ops[i].status, 0);
		cr_assert_arr_eq(m->buf[i], m->ref[i], m->ops[i].len, "op %u", i);
		cr_assert_arr_eq(m->tag[i], m->ref_tag[i], 16, "op %u", i);
	}

	/* decrypt, with every seventh op's tag forged */
	unsigned forged = 0;

	for (unsigned i = 0; i < n; i++) {
		struct eg_aead_op *op = &m->ops[i];

		op->src = m->buf[i];
		op->dst = in_place ? m->buf[i] : m->back[i];
		if (i % 7 == 3) {
			m->tag[i][i % 16] ^= 0x40;
			forged++;
		}
	}
	cr_assert_eq(eg_aead_decrypt_burst(&ctx, m->ops, n), n - forged);
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *out = in_place ? m->buf[i] : m->back[i];

		if (i % 7 == 3) {
			cr_assert_eq(m->ops[i].status, -EBADMSG, "op %u", i);
			continue;
		}
		cr_assert_eq(m->ops[i].status, 0, "op %u", i);
		cr_assert_arr_eq(out, m->pt[i], m->ops[i].len, "op %u", i);
	}
	for (unsigned i = 0; i < MIX_KEYS; i++)
		eg_aead_key_wipe(&m->keys[i]);
	free(m);
}

Test(aead, hundred_mixed_ops_out_of_place)
{
	mixed_burst(100, false);
}

Test(aead, hundred_mixed_ops_in_place)
{
	mixed_burst(100, true);
}

Test(aead, more_than_one_library_burst)
{
	mixed_burst(MIX_MAX, false);
	mixed_burst(EG_AEAD_MAX_BURST + 1, true);
	mixed_burst(EG_AEAD_MAX_BURST, false);
}

/* Ops the library must not see are refused one by one; the rest of the burst goes on. */
Test(aead, bad_ops_fail_alone)
{
	enum { N = 12 };
	struct eg_aead_ctx sse;
	struct eg_aead_key k, foreign, none = { 0 };
	uint8_t raw[32], nonce[12] = { 0 }, pt[N][40], out[N][40], tag[N][16];
	struct eg_aead_op ops[N];
	bool foreign_arch = false;

	randombytes_buf(raw, sizeof(raw));
	cr_assert_eq(eg_aead_key_set(&ctx, &k, G128, raw, 16), 0);
	/* a key expanded for another architecture than this context's */
	if (ctx.arch != IMB_ARCH_SSE && eg_aead_ctx_init(&sse, IMB_ARCH_SSE) == 0) {
		cr_assert_eq(eg_aead_key_set(&sse, &foreign, G128, raw, 16), 0);
		eg_aead_ctx_free(&sse);
		foreign_arch = true;
	}
	for (unsigned i = 0; i < N; i++)
		ops[i] = (struct eg_aead_op){ &k, nonce, NULL, 0, pt[i], out[i], 40, tag[i], 0 };
	ops[2].key = NULL;
	ops[4].key = &none;
	ops[6].nonce = NULL;
	ops[8].src = NULL;
	ops[9].aad_len = 4;		/* with aad NULL */
	ops[10].tag = NULL;
	unsigned bad = 6;

	if (foreign_arch) {
		ops[11].key = &foreign;
		bad++;
	}
	cr_assert_eq(eg_aead_encrypt_burst(&ctx, ops, N), N - bad);
	for (unsigned i = 0; i < N; i++) {
		bool is_bad = i == 2 || i == 4 || i == 6 || i == 8 || i == 9 || i == 10 ||
			      (i == 11 && foreign_arch);

		cr_assert_eq(ops[i].status, is_bad ? -EINVAL : 0, "op %u", i);
	}
	cr_assert_eq(eg_aead_encrypt_burst(NULL, ops, N), 0);
	cr_assert_eq(ops[0].status, -EINVAL);
	cr_assert_eq(eg_aead_decrypt_burst(&ctx, ops, 0), 0);
}

/* The same for ChaCha20-Poly1305, which goes to the library's job queue unchecked: a bad
 * pointer op_valid let through would crash here, not come back as an error. */
Test(aead, bad_chacha_ops_fail_alone)
{
	enum { N = 11 };
	struct eg_aead_key k;
	uint8_t raw[32], nonce[12] = { 0 }, aad[8] = { 0 }, pt[N][40], ct[N][40], tag[N][16];
	struct eg_aead_op ops[N];

	randombytes_buf(raw, sizeof(raw));
	randombytes_buf(pt, sizeof(pt));
	cr_assert_eq(eg_aead_key_set(&ctx, &k, CCP, raw, 32), 0);
	for (unsigned dec = 0; dec < 2; dec++) {
		for (unsigned i = 0; i < N; i++)
			ops[i] = (struct eg_aead_op){ &k, nonce, aad, 8, dec ? ct[i] : pt[i], dec ? pt[i] : ct[i],
						      40, tag[i], 0 };
		ops[1].key = NULL;	/* and no chacha_key */
		ops[2].nonce = NULL;
		ops[3].src = NULL;
		ops[4].dst = NULL;
		ops[5].aad = NULL;
		ops[6].tag = NULL;
		/* empty, with a raw key: fine */
		ops[7] = (struct eg_aead_op){ NULL, nonce, NULL, 0, NULL, NULL, 0, tag[7], 0, raw };
		/* with a raw key, a message but no buffers, or AAD without a pointer */
		ops[9] = (struct eg_aead_op){ NULL, nonce, NULL, 0, NULL, NULL, 40, tag[9], 0, raw };
		ops[10] = (struct eg_aead_op){ NULL, nonce, NULL, 8, pt[10], ct[10], 40, tag[10], 0, raw };
		cr_assert_eq(dec ? eg_aead_decrypt_burst(&ctx, ops, N) : eg_aead_encrypt_burst(&ctx, ops, N), 3);
		for (unsigned i = 0; i < N; i++)
			cr_assert_eq(ops[i].status, i == 0 || i == 7 || i == 8 ? 0 : -EINVAL, "op %u", i);
	}
	eg_aead_key_wipe(&k);
}

/* ---- differential: libsodium ----------------------------------------------------- */

static void versus_sodium(enum eg_aead_alg alg)
{
	enum { N = 48, ROUNDS = 6, MAXLEN = 2048 };
	static uint8_t pt[N][MAXLEN], out[N][MAXLEN], sct[N][MAXLEN];
	static uint8_t aad[N][64], nonce[N][12], tag[N][16], stag[N][16];
	struct eg_aead_key keys[4];
	uint8_t raw[4][32];
	struct eg_aead_op ops[N];

	for (unsigned i = 0; i < 4; i++) {
		randombytes_buf(raw[i], 32);
		cr_assert_eq(eg_aead_key_set(&ctx, &keys[i], alg, raw[i], 32), 0);
	}
	for (unsigned r = 0; r < ROUNDS; r++) {
		for (unsigned i = 0; i < N; i++) {
			unsigned ki = randombytes_uniform(4);
			uint32_t len = randombytes_uniform(MAXLEN + 1);
			uint32_t aad_len = randombytes_uniform(65);
			unsigned long long maclen = 0;

			randombytes_buf(pt[i], len);
			randombytes_buf(aad[i], aad_len);
			randombytes_buf(nonce[i], 12);
			ops[i] = (struct eg_aead_op){ &keys[ki], nonce[i], aad[i], aad_len, pt[i],
						      out[i], len, tag[i], 1 };
			if (alg == CCP)
				crypto_aead_chacha20poly1305_ietf_encrypt_detached(
					sct[i], stag[i], &maclen, pt[i], len, aad[i], aad_len, NULL,
					nonce[i], raw[ki]);
			else
				crypto_aead_aes256gcm_encrypt_detached(
					sct[i], stag[i], &maclen, pt[i], len, aad[i], aad_len, NULL,
					nonce[i], raw[ki]);
			cr_assert_eq(maclen, 16);
		}
		cr_assert_eq(eg_aead_encrypt_burst(&ctx, ops, N), N);
		for (unsigned i = 0; i < N; i++) {
			cr_assert_arr_eq(out[i], sct[i], ops[i].len, "round %u op %u", r, i);
			cr_assert_arr_eq(tag[i], stag[i], 16, "round %u op %u", r, i);
		}
	}
	for (unsigned i = 0; i < 4; i++)
		eg_aead_key_wipe(&keys[i]);
}

Test(aead, chacha20_poly1305_matches_libsodium)
{
	versus_sodium(CCP);
}

Test(aead, aes256_gcm_matches_libsodium)
{
	if (!crypto_aead_aes256gcm_is_available())
		cr_skip_test("libsodium has no AES-256-GCM on this CPU");
	versus_sodium(G256);
}

/* ---- keys and contexts ----------------------------------------------------------- */

static bool has_run(const uint8_t *hay, size_t n, const uint8_t *needle, size_t m, size_t run)
{
	/* any run of key bytes left anywhere in the struct */
	for (size_t j = 0; j + run <= m; j++)
		if (memmem(hay, n, needle + j, run))
			return true;
	return false;
}

Test(aead, key_wipe_leaves_no_key_bytes)
{
	for (unsigned a = 0; a < 3; a++) {
		struct eg_aead_key k;
		uint8_t raw[32];
		const uint8_t *p = (const uint8_t *)&k;

		memset(raw, 0, sizeof(raw));
		while (memchr(raw, 0, sizeof(raw)))	/* keep zero out so "all zero" means wiped */
			randombytes_buf(raw, sizeof(raw));
		cr_assert_eq(eg_aead_key_set(&ctx, &k, all_algs[a], raw, key_len_of(all_algs[a])), 0);
		cr_assert_eq(k.alg, all_algs[a]);
		cr_assert_eq(k.arch, (uint32_t)ctx.arch);
		if (all_algs[a] == CCP)
			cr_assert(has_run(p, sizeof(k), raw, 32, 8));
		eg_aead_key_wipe(&k);
		for (size_t i = 0; i < sizeof(k); i++)
			cr_assert_eq(p[i], 0, "byte %zu of the wiped key is %#x", i, p[i]);
		cr_assert_not(has_run(p, sizeof(k), raw, key_len_of(all_algs[a]), 4));
	}
}

Test(aead, key_set_checks_lengths_and_wipes_on_failure)
{
	struct eg_aead_key k;
	uint8_t raw[32];

	randombytes_buf(raw, sizeof(raw));
	cr_assert_eq(eg_aead_key_set(&ctx, &k, CCP, raw, 32), 0);
	cr_assert_eq(eg_aead_key_set(&ctx, &k, G128, raw, 32), -EINVAL);
	/* the failed set did not leave the earlier key usable */
	cr_assert_eq(k.alg, EG_AEAD_NONE);
	cr_assert_not(has_run((const uint8_t *)&k, sizeof(k), raw, 32, 4));
	cr_assert_eq(eg_aead_key_set(&ctx, &k, G256, raw, 16), -EINVAL);
	cr_assert_eq(eg_aead_key_set(&ctx, &k, CCP, raw, 16), -EINVAL);
	cr_assert_eq(eg_aead_key_set(&ctx, &k, EG_AEAD_NONE, raw, 16), -EINVAL);
	cr_assert_eq(eg_aead_key_set(&ctx, &k, 7, raw, 32), -EINVAL);
	cr_assert_eq(eg_aead_key_set(&ctx, &k, G128, NULL, 16), -EINVAL);
	cr_assert_eq(eg_aead_key_set(&ctx, NULL, G128, raw, 16), -EINVAL);
}

Test(aead, ctx_records_its_arch)
{
	struct eg_aead_ctx c;

	cr_assert_neq(ctx.arch, IMB_ARCH_NONE);
	cr_assert_not_null(ctx.mgr);
	cr_assert_eq(eg_aead_ctx_init(&c, IMB_ARCH_NOAESNI), -ENOTSUP);
	cr_assert_eq(eg_aead_ctx_init(&c, (IMB_ARCH)99), -EINVAL);
	cr_assert_null(c.mgr);
	cr_assert_eq(eg_aead_ctx_init(&c, IMB_ARCH_SSE), 0);
	cr_assert_eq(c.arch, IMB_ARCH_SSE);
	eg_aead_ctx_free(&c);
	cr_assert_null(c.mgr);
	eg_aead_ctx_free(&c);	/* twice is harmless */
}

/* The library faults on a misaligned GCM key; key_set refuses one instead. */
Test(aead, misaligned_key_is_refused)
{
	static uint8_t mem[sizeof(struct eg_aead_key) + 128] __attribute__((aligned(64)));
	struct eg_aead_key *k = (struct eg_aead_key *)(void *)(mem + 16);
	uint8_t raw[32] = { 1 };

	cr_assert_eq(eg_aead_key_set(&ctx, k, G128, raw, 16), -EINVAL);
	cr_assert_eq(eg_aead_key_set(&ctx, (struct eg_aead_key *)(void *)mem, G128, raw, 16), 0);
}
