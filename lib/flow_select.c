/* Per-flow egress selection with consistent hashing (see flow_select.h).
 *
 * Everything here must give the same answer in every process and build: control answers
 * flow.lookup with it and the workers forward with it. So: fixed constants, bytes read in
 * a fixed order, no seeding from the environment. */
#include <endian.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "flow_select.h"

/* Arbitrary odd constants that keep the three uses of mix64() independent. */
#define FLOW_SEED 0x6a09e667f3bcc909ULL
#define BUCKET_SEED 0xbb67ae8584caa73bULL
#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

/* A bijective 64-bit finaliser (the SplitMix64 one): every input bit reaches every
 * output bit, so consecutive ports or addresses land far apart. */
static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

/* Bijective in w for a given h: two inputs differing in one word never collide there. */
static inline uint64_t absorb(uint64_t h, uint64_t w)
{
	return mix64(h ^ w);
}

/* Little-endian on every host, so the hash does not depend on the machine. */
static inline uint64_t load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static inline uint32_t load32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

uint64_t eg_flow_hash(const struct eg_flow_key *k)
{
	uint64_t head = (uint64_t)k->family << 56 | (uint64_t)k->proto << 48 |
			(uint64_t)k->sport << 16 | k->dport;
	uint64_t h = absorb(FLOW_SEED, head);

	/* Only the address bytes of the family count: the rest of an IPv4 key is not
	 * guaranteed to be zero by every producer. */
	if (k->family == EG_AF_INET)
		return absorb(h, (uint64_t)load32(k->src) << 32 | load32(k->dst));

	h = absorb(h, load64(k->src));
	h = absorb(h, load64(k->src + 8));
	h = absorb(h, load64(k->dst));
	return absorb(h, load64(k->dst + 8));
}

/* FNV-1a over the name, then mix64() because FNV's high bits mix poorly for short names. */
uint64_t eg_sel_key(const char *name)
{
	uint64_t h = FNV_OFFSET;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		h ^= *p;
		h *= FNV_PRIME;
	}
	return mix64(h);
}

/* A uniform draw in (0, 1) for the pair (bucket, member key). */
static double draw(uint64_t bucket_hash, uint64_t key)
{
	uint64_t h = absorb(bucket_hash, key);

	/* 53 bits centred in their interval: never 0 (log would be -inf) nor 1 (log 0). */
	return ((double)(h >> 11) + 0.5) * 0x1p-53;
}

static bool usable(const struct eg_sel_member *m)
{
	return m->weight > 0 && isfinite(m->weight);
}

/* Weighted rendezvous hashing: member m scores -weight / ln(u) for its draw u, which is
 * an exponential race with rate 1/weight, so m wins a bucket with probability
 * weight / sum(weights). Each bucket's winner depends only on the members present, not
 * on their order, so taking one away moves only the buckets it won, and a newcomer takes
 * only the buckets where it beats the old winner. Members with a weight that is not
 * positive and finite never win. */
void eg_sel_fill(uint16_t *table, const struct eg_sel_member *m, unsigned n)
{
	for (unsigned b = 0; b < EG_SEL_BUCKETS; b++) {
		uint64_t bucket_hash = mix64(BUCKET_SEED ^ b);
		const struct eg_sel_member *win = NULL;
		double win_score = 0;

		for (unsigned i = 0; i < n; i++) {
			if (!usable(&m[i]))
				continue;
			double score = -m[i].weight / log(draw(bucket_hash, m[i].key));
			/* Equal scores are next to impossible, but order must never decide. */
			if (!win || score > win_score ||
			    (score == win_score && m[i].key < win->key)) {
				win = &m[i];
				win_score = score;
			}
		}
		table[b] = win ? win->value : EG_SEL_NONE;
	}
}

uint32_t eg_sel_build(struct eg_blob *b, const struct eg_sel_member *m, unsigned n)
{
	uint32_t off = eg_blob_alloc(b, EG_SEL_BUCKETS * sizeof(uint16_t), 64);

	if (off == EG_BLOB_NONE)
		return EG_BLOB_NONE;
	eg_sel_fill(eg_blob_at(b, off), m, n);
	return off;
}
