/* IP reassembly (lib/reassembly.c): datagrams cut into fragments come back byte for byte
 * in any arrival order, IPv4 and IPv6; overlaps, duplicates, contradictions, oversize,
 * too many pieces, timeouts and a full table each end the way reassembly.h says. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net_addr.h"
#include "reassembly.h"

#define MAX_LEN 2048u
#define TIMEOUT 1000u

static const uint8_t src4[4] = {192, 0, 2, 7}, dst4[4] = {192, 0, 2, 1};
static const uint8_t src6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 7}, dst6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};

/* An IPv4 (or IPv6) packet with a payload of len bytes that differ from each other. */
struct dgram {
	uint8_t family;
	uint8_t pkt[70000];
	uint16_t hdr_len;
	uint32_t len;			/* payload */
};

static uint16_t sum16(const uint8_t *p, unsigned len)
{
	uint32_t s = 0;

	for (unsigned i = 0; i + 1 < len; i += 2)
		s += (uint32_t)p[i] << 8 | p[i + 1];
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

static void make(struct dgram *g, uint8_t family, uint32_t len, uint8_t seed)
{
	memset(g, 0, sizeof(*g));
	g->family = family;
	g->len = len;
	if (family == EG_AF_INET) {
		uint8_t *h = g->pkt;
		uint16_t s;

		g->hdr_len = 24;		/* with one option word: headers may be longer */
		h[0] = 0x46;
		h[2] = (uint8_t)((24 + len) >> 8);
		h[3] = (uint8_t)(24 + len);
		h[8] = 64;
		h[9] = 50;			/* ESP */
		memcpy(h + 12, src4, 4);
		memcpy(h + 16, dst4, 4);
		h[20] = 1, h[21] = 1, h[22] = 1, h[23] = 0;	/* NOPs, end of options */
		s = (uint16_t)~sum16(h, 24);
		h[10] = (uint8_t)(s >> 8);
		h[11] = (uint8_t)s;
	} else {
		uint8_t *h = g->pkt;

		g->hdr_len = 40;
		h[0] = 0x60;
		h[4] = (uint8_t)(len >> 8);
		h[5] = (uint8_t)len;
		h[6] = 50;
		h[7] = 64;
		memcpy(h + 8, src6, 16);
		memcpy(h + 24, dst6, 16);
	}
	for (uint32_t i = 0; i < len; i++)
		g->pkt[g->hdr_len + i] = (uint8_t)(i * 7 + seed + (i >> 8));
}

/* Fragment [off, off+len) of g as the parser would present it. */
static struct eg_frag piece(const struct dgram *g, uint32_t id, uint32_t off, uint32_t len)
{
	return (struct eg_frag){
		.family = g->family, .proto = 50, .id = id,
		.src = g->family == EG_AF_INET ? src4 : src6, .dst = g->family == EG_AF_INET ? dst4 : dst6,
		.offset = off, .more = off + len < g->len,
		.hdr = g->pkt, .hdr_len = g->hdr_len,
		.data = g->pkt + g->hdr_len + off, .len = len,
	};
}

static enum eg_reasm_result add(struct eg_reasm *r, const struct eg_frag *f, uint64_t now,
				const uint8_t **out, uint32_t *out_len)
{
	unsigned lost;
	enum eg_reasm_result res = eg_reasm_add(r, f, now, out, out_len, &lost);

	cr_assert_eq(lost, 0, "nothing should be lost here");
	return res;
}

static void expect_whole(const struct dgram *g, const uint8_t *out, uint32_t out_len)
{
	cr_assert_eq(out_len, g->hdr_len + g->len);
	cr_assert_eq(memcmp(out, g->pkt, out_len), 0, "the datagram must come back byte for byte");
	if (g->family == EG_AF_INET)
		cr_assert_eq(sum16(out, g->hdr_len), 0xffff, "IPv4 header checksum");
}

Test(reassembly, ipv4_in_order_and_reversed)
{
	struct eg_reasm *r = eg_reasm_create(64, MAX_LEN, TIMEOUT);
	struct dgram *g = malloc(sizeof(*g));
	const uint8_t *out;
	uint32_t out_len;
	struct eg_frag f;

	make(g, EG_AF_INET, 1500, 1);
	f = piece(g, 77, 0, 512);
	cr_assert_eq(add(r, &f, 1, &out, &out_len), EG_REASM_HELD);
	f = piece(g, 77, 512, 512);
	cr_assert_eq(add(r, &f, 2, &out, &out_len), EG_REASM_HELD);
	f = piece(g, 77, 1024, 476);
	cr_assert_eq(add(r, &f, 3, &out, &out_len), EG_REASM_DONE);
	expect_whole(g, out, out_len);
	cr_assert_eq(eg_reasm_pending(r), 0);

	/* The last fragment first: the first one, with the header, completes it. */
	f = piece(g, 78, 1024, 476);
	cr_assert_eq(add(r, &f, 4, &out, &out_len), EG_REASM_HELD);
	f = piece(g, 78, 512, 512);
	cr_assert_eq(add(r, &f, 5, &out, &out_len), EG_REASM_HELD);
	f = piece(g, 78, 0, 512);
	cr_assert_eq(add(r, &f, 6, &out, &out_len), EG_REASM_DONE);
	expect_whole(g, out, out_len);
	free(g);
	eg_reasm_free(r);
}

Test(reassembly, ipv6_gets_next_header_and_payload_length)
{
	struct eg_reasm *r = eg_reasm_create(64, MAX_LEN, TIMEOUT);
	struct dgram *g = malloc(sizeof(*g));
	const uint8_t *out;
	uint32_t out_len;
	struct eg_frag f = {0};

	make(g, EG_AF_INET6, 1333, 2);
	/* As received, the fixed header says "Fragment header next": reassembly puts the
	 * fragment header's next header back. */
	g->pkt[6] = 44;
	f = piece(g, 0xdeadbeef, 1232, 101);
	cr_assert_eq(add(r, &f, 1, &out, &out_len), EG_REASM_HELD);
	f = piece(g, 0xdeadbeef, 0, 1232);
	cr_assert_eq(add(r, &f, 2, &out, &out_len), EG_REASM_DONE);
	g->pkt[6] = 50;
	expect_whole(g, out, out_len);
	free(g);
	eg_reasm_free(r);
}

Test(reassembly, datagrams_differ_by_id_address_and_protocol)
{
	struct eg_reasm *r = eg_reasm_create(64, MAX_LEN, TIMEOUT);
	struct dgram *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	const uint8_t *out;
	uint32_t out_len;
	struct eg_frag f;

	make(a, EG_AF_INET, 800, 3);
	make(b, EG_AF_INET, 800, 4);
	f = piece(a, 1, 0, 400);
	cr_assert_eq(add(r, &f, 1, &out, &out_len), EG_REASM_HELD);
	f = piece(b, 2, 0, 400);
	cr_assert_eq(add(r, &f, 1, &out, &out_len), EG_REASM_HELD);
	/* Same id, other protocol: another datagram. */
	f = piece(b, 1, 400, 400);
	f.proto = 17;
	cr_assert_eq(add(r, &f, 1, &out, &out_len), EG_REASM_HELD);
	cr_assert_eq(eg_reasm_pending(r), 3);
	f = piece(b, 2, 400, 400);
	cr_assert_eq(add(r, &f, 1, &out, &out_len), EG_REASM_DONE);
	expect_whole(b, out, out_len);
	f = piece(a, 1, 400, 400);
	cr_assert_eq(add(r, &f, 1, &out, &out_len), EG_REASM_DONE);
	expect_whole(a, out, out_len);
	cr_assert_eq(eg_reasm_pending(r), 1);
	free(a);
	free(b);
	eg_reasm_free(r);
}

Test(reassembly, exact_duplicate_is_dropped_alone)
{
	struct eg_reasm *r = eg_reasm_create(64, MAX_LEN, TIMEOUT);
	struct dgram *g = malloc(sizeof(*g));
	const uint8_t *out;
	uint32_t out_len;
	struct eg_frag f;

	make(g, EG_AF_INET6, 1000, 5);
	f = piece(g, 9, 0, 504);
	cr_assert_eq(add(r, &f, 1, &out, &out_len), EG_REASM_HELD);
	cr_assert_eq(add(r, &f, 1, &out, &out_len), EG_REASM_DUPLICATE);
	f = piece(g, 9, 504, 496);
	cr_assert_eq(add(r, &f, 1, &out, &out_len), EG_REASM_DONE);
	expect_whole(g, out, out_len);
	free(g);
	eg_reasm_free(r);
}

Test(reassembly, overlap_discards_the_datagram)
{
	struct eg_reasm *r = eg_reasm_create(64, MAX_LEN, TIMEOUT);
	struct dgram *g = malloc(sizeof(*g));
	const uint8_t *out;
	uint32_t out_len;
	struct eg_frag f;

	make(g, EG_AF_INET, 1000, 6);
	f = piece(g, 5, 0, 504);
	cr_assert_eq(add(r, &f, 1, &out, &out_len), EG_REASM_HELD);
	f = piece(g, 5, 496, 504);	/* rewrites 8 bytes already held */
	cr_assert_eq(add(r, &f, 1, &out, &out_len), EG_REASM_OVERLAP);
	cr_assert_eq(eg_reasm_pending(r), 0);
	/* What is left cannot complete: the first fragment went with the datagram. */
	f = piece(g, 5, 504, 496);
	cr_assert_eq(add(r, &f, 1, &out, &out_len), EG_REASM_HELD);
	free(g);
	eg_reasm_free(r);
}

Test(reassembly, malformed_and_contradictory_fragments)
{
	struct eg_reasm *r = eg_reasm_create(64, MAX_LEN, TIMEOUT);
	struct dgram *g = malloc(sizeof(*g));
	const uint8_t *out;
	uint32_t out_len;
	struct eg_frag f;

	make(g, EG_AF_INET, 1000, 7);
	f = piece(g, 1, 0, 500);	/* not the last, yet not a multiple of 8 */
	cr_assert_eq(add(r, &f, 1, &out, &out_len), EG_REASM_BAD);
	f = piece(g, 1, 0, 0);
	cr_assert_eq(add(r, &f, 1, &out, &out_len), EG_REASM_BAD);
	f = piece(g, 1, 0, 504);
	f.hdr_len = 12;			/* shorter than any IPv4 header */
	cr_assert_eq(add(r, &f, 1, &out, &out_len), EG_REASM_BAD);
	cr_assert_eq(eg_reasm_pending(r), 0);

	/* Two different ends, then a piece beyond the end. */
	f = piece(g, 2, 504, 496);
	cr_assert_eq(add(r, &f, 1, &out, &out_len), EG_REASM_HELD);
	f = piece(g, 2, 0, 504);
	f.more = false;
	cr_assert_eq(add(r, &f, 1, &out, &out_len), EG_REASM_BAD);
	cr_assert_eq(eg_reasm_pending(r), 0);
	f = piece(g, 3, 0, 504);
	f.more = false;
	cr_assert_eq(add(r, &f, 1, &out, &out_len), EG_REASM_DONE, "a whole datagram in one fragment");
	cr_assert_eq(out_len, g->hdr_len + 504);
	f = piece(g, 4, 0, 504);
	cr_assert_eq(add(r, &f, 1, &out, &out_len), EG_REASM_HELD);
	f = piece(g, 4, 504, 8);
	f.more = false;
	cr_assert_eq(add(r, &f, 1, &out, &out_len), EG_REASM_DONE);
	f = piece(g, 5, 504, 496);
	cr_assert_eq(add(r, &f, 1, &out, &out_len), EG_REASM_HELD);
	f = piece(g, 5, 1000, 8);	/* beyond the end the last fragment set */
	f.more = true;
	cr_assert_eq(add(r, &f, 1, &out, &out_len), EG_REASM_BAD);
	cr_assert_eq(eg_reasm_pending(r), 0);
	free(g);
	eg_reasm_free(r);
}

Test(reassembly, too_big_and_too_many)
{
	struct eg_reasm *r = eg_reasm_create(64, MAX_LEN, TIMEOUT);
	struct dgram *g = malloc(sizeof(*g));
	const uint8_t *out;
	uint32_t out_len;
	struct eg_frag f;

	make(g, EG_AF_INET, 4000, 8);
	f = piece(g, 1, 0, 1000);
	cr_assert_eq(add(r, &f, 1, &out, &out_len), EG_REASM_HELD);
	f = piece(g, 1, 2048, 1000);	/* past max_len */
	cr_assert_eq(add(r, &f, 1, &out, &out_len), EG_REASM_TOO_BIG);
	cr_assert_eq(eg_reasm_pending(r), 0);

	/* A 24-byte header with 2024 bytes of payload is 2048: fits; 2028 does not, which
	 * only the first fragment's header length shows. */
	make(g, EG_AF_INET, 2028, 8);
	f = piece(g, 2, 1024, 1004);
	cr_assert_eq(add(r, &f, 1, &out, &out_len), EG_REASM_HELD);
	f = piece(g, 2, 0, 1024);
	cr_assert_eq(add(r, &f, 1, &out, &out_len), EG_REASM_TOO_BIG);
	make(g, EG_AF_INET, 2024, 8);
	f = piece(g, 3, 1024, 1000);
	cr_assert_eq(add(r, &f, 1, &out, &out_len), EG_REASM_HELD);
	f = piece(g, 3, 0, 1024);
	cr_assert_eq(add(r, &f, 1, &out, &out_len), EG_REASM_DONE);
	expect_whole(g, out, out_len);

	make(g, EG_AF_INET, 8 * (EG_REASM_MAX_FRAGS + 1), 9);
	for (unsigned i = 0; i < EG_REASM_MAX_FRAGS; i++) {
		f = piece(g, 4, 8 * i, 8);
		cr_assert_eq(add(r, &f, 1, &out, &out_len), EG_REASM_HELD);
	}
	f = piece(g, 4, 8 * EG_REASM_MAX_FRAGS, 8);
	cr_assert_eq(add(r, &f, 1, &out, &out_len), EG_REASM_TOO_MANY);
	cr_assert_eq(eg_reasm_pending(r), 0);
	free(g);
	eg_reasm_free(r);
}

Test(reassembly, expiry_and_a_full_table)
{
	struct eg_reasm *r = eg_reasm_create(4, MAX_LEN, TIMEOUT);
	struct dgram *g = malloc(sizeof(*g));
	const uint8_t *out;
	uint32_t out_len;
	unsigned lost;
	struct eg_frag f;

	make(g, EG_AF_INET, 1000, 10);
	f = piece(g, 1, 0, 504);
	cr_assert_eq(eg_reasm_add(r, &f, 100, &out, &out_len, &lost), EG_REASM_HELD);
	/* Too late: the first piece expired, this one starts over. */
	f = piece(g, 1, 504, 496);
	cr_assert_eq(eg_reasm_add(r, &f, 100 + TIMEOUT + 1, &out, &out_len, &lost), EG_REASM_HELD);
	cr_assert_eq(lost, 1);
	cr_assert_eq(eg_reasm_expire(r, 101 + 2 * TIMEOUT, 64), 0, "not expired yet");
	cr_assert_eq(eg_reasm_expire(r, 102 + 2 * TIMEOUT, 64), 1);
	cr_assert_eq(eg_reasm_pending(r), 0);

	/* Four slots: a fifth datagram takes the oldest one's. */
	for (unsigned id = 10; id < 14; id++) {
		f = piece(g, id, 0, 504);
		cr_assert_eq(eg_reasm_add(r, &f, 1000 + id, &out, &out_len, &lost), EG_REASM_HELD);
		cr_assert_eq(lost, 0);
	}
	f = piece(g, 14, 0, 504);
	cr_assert_eq(eg_reasm_add(r, &f, 1020, &out, &out_len, &lost), EG_REASM_HELD);
	cr_assert_eq(lost, 1);
	cr_assert_eq(eg_reasm_pending(r), 4);
	f = piece(g, 10, 504, 496);	/* 10 was the oldest: gone */
	cr_assert_eq(eg_reasm_add(r, &f, 1021, &out, &out_len, &lost), EG_REASM_HELD);
	cr_assert_eq(lost, 1);
	f = piece(g, 13, 504, 496);	/* 13 was kept */
	cr_assert_eq(eg_reasm_add(r, &f, 1022, &out, &out_len, &lost), EG_REASM_DONE);
	cr_assert_eq(lost, 0);
	expect_whole(g, out, out_len);
	free(g);
	eg_reasm_free(r);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

/* Random sizes cut at random 8-byte boundaries, delivered in random order, with several
 * datagrams interleaved: every one comes back whole, each exactly when its last piece
 * arrives. */
Test(reassembly, random_cuts_and_orders)
{
	enum { ROUNDS = 2000, AT_ONCE = 3 };
	struct eg_reasm *r = eg_reasm_create(64, MAX_LEN, TIMEOUT);
	struct dgram *g = malloc(AT_ONCE * sizeof(*g));
	unsigned done = 0;

	for (unsigned round = 0; round < ROUNDS; round++) {
		struct eg_frag q[AT_ONCE * EG_REASM_MAX_FRAGS];
		unsigned nq = 0, left[AT_ONCE];

		for (unsigned k = 0; k < AT_ONCE; k++) {
			uint8_t fam = rnd(2) ? EG_AF_INET : EG_AF_INET6;
			uint32_t len = 1 + rnd(MAX_LEN - 64), off = 0;
			unsigned n = 0;

			make(&g[k], fam, len, (uint8_t)round);
			while (off < len) {
				uint32_t chunk = 8 * (1 + rnd(40));

				if (n == EG_REASM_MAX_FRAGS - 1 || off + chunk > len)
					chunk = len - off;
				q[nq++] = piece(&g[k], round * AT_ONCE + k, off, chunk);
				off += chunk;
				n++;
			}
			left[k] = n;
		}
		for (unsigned i = nq - 1; i > 0; i--) {
			unsigned j = rnd(i + 1);
			struct eg_frag t = q[i];

			q[i] = q[j];
			q[j] = t;
		}
		for (unsigned i = 0; i < nq; i++) {
			unsigned k = q[i].id - round * AT_ONCE;
			const uint8_t *out;
			uint32_t out_len;
			enum eg_reasm_result res = add(r, &q[i], round, &out, &out_len);

			left[k]--;
			cr_assert_eq(res, left[k] ? EG_REASM_HELD : EG_REASM_DONE, "round %u", round);
			if (res == EG_REASM_DONE) {
				expect_whole(&g[k], out, out_len);
				done++;
			}
		}
	}
	cr_assert_eq(done, ROUNDS * AT_ONCE);
	cr_assert_eq(eg_reasm_pending(r), 0);
	free(g);
	eg_reasm_free(r);
}
