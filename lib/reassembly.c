#include "reassembly.h"

#include <stdlib.h>
#include <string.h>

#include "net_addr.h"

enum { PROBE = 4 };			/* slots a datagram may live in: its hash and the next 3 */

struct piece {
	uint32_t start, end;		/* payload bytes [start, end) */
};

struct datagram {
	bool used;
	uint8_t family, proto, n_pieces;
	uint32_t id;
	uint8_t src[16], dst[16];
	uint64_t born;
	uint32_t total;			/* payload length once the last fragment came, else 0 */
	uint32_t have;			/* payload bytes held */
	uint16_t hdr_len;		/* 0 until the first fragment came */
	struct piece pieces[EG_REASM_MAX_FRAGS];
	/* EG_REASM_MAX_HDR bytes for the header, then the payload: the finished datagram
	 * is contiguous without another copy. */
	uint8_t *buf;
};

struct eg_reasm {
	unsigned mask;
	unsigned pending;
	unsigned cursor;		/* eg_reasm_expire's position */
	uint32_t max_len;
	uint64_t timeout;
	struct datagram *slots;
	uint8_t *mem;
};

struct eg_reasm *eg_reasm_create(unsigned slots, uint32_t max_len, uint64_t timeout)
{
	struct eg_reasm *r = calloc(1, sizeof(*r));
	unsigned n = PROBE;

	if (!r)
		return NULL;
	while (n < slots)
		n <<= 1;
	r->mask = n - 1;
	r->max_len = max_len;
	r->timeout = timeout;
	r->slots = calloc(n, sizeof(*r->slots));
	r->mem = malloc((size_t)n * (EG_REASM_MAX_HDR + max_len));
	if (!r->slots || !r->mem) {
		eg_reasm_free(r);
		return NULL;
	}
	for (unsigned i = 0; i < n; i++)
		r->slots[i].buf = r->mem + (size_t)i * (EG_REASM_MAX_HDR + max_len);
	return r;
}

void eg_reasm_free(struct eg_reasm *r)
{
	if (!r)
		return;
	free(r->slots);
	free(r->mem);
	free(r);
}

unsigned eg_reasm_pending(const struct eg_reasm *r)
{
	return r->pending;
}

static void discard(struct eg_reasm *r, struct datagram *d)
{
	d->used = false;
	r->pending--;
}

static bool expired(const struct eg_reasm *r, const struct datagram *d, uint64_t now)
{
	return now > d->born && now - d->born > r->timeout;
}

static uint32_t hash(const struct eg_frag *f)
{
	unsigned alen = eg_addr_len(f->family);
	uint32_t h = 2166136261u ^ f->id ^ (uint32_t)f->proto << 24;

	/* FNV-1a over the addresses: the table is small and this is the slow path. */
	for (unsigned i = 0; i < alen; i++)
		h = (h ^ f->src[i]) * 16777619u;
	for (unsigned i = 0; i < alen; i++)
		h = (h ^ f->dst[i]) * 16777619u;
	return h ^ h >> 15;
}

static bool same(const struct datagram *d, const struct eg_frag *f)
{
	unsigned alen = eg_addr_len(f->family);

	return d->used && d->family == f->family && d->proto == f->proto && d->id == f->id &&
	       memcmp(d->src, f->src, alen) == 0 && memcmp(d->dst, f->dst, alen) == 0;
}

/* The datagram f belongs to: held already, or a new one in a free or expired slot, or in
 * the oldest of its probe slots (whose datagram is lost). */
static struct datagram *find(struct eg_reasm *r, const struct eg_frag *f, uint64_t now, unsigned *lost)
{
	uint32_t h = hash(f);
	struct datagram *free_slot = NULL, *oldest = NULL, *d;

	for (unsigned i = 0; i < PROBE; i++) {
		d = &r->slots[(h + i) & r->mask];
		if (same(d, f)) {
			if (!expired(r, d, now))
				return d;
			discard(r, d);
			(*lost)++;
		}
		if (d->used && expired(r, d, now)) {
			discard(r, d);
			(*lost)++;
		}
		if (!d->used && !free_slot)
			free_slot = d;
		if (d->used && (!oldest || d->born < oldest->born))
			oldest = d;
	}
	d = free_slot;
	if (!d) {
		d = oldest;
		discard(r, d);
		(*lost)++;
	}
	memset(d->src, 0, sizeof(d->src));
	memset(d->dst, 0, sizeof(d->dst));
	memcpy(d->src, f->src, eg_addr_len(f->family));
	memcpy(d->dst, f->dst, eg_addr_len(f->family));
	d->family = f->family;
	d->proto = f->proto;
	d->id = f->id;
	d->born = now;
	d->total = d->have = 0;
	d->hdr_len = 0;
	d->n_pieces = 0;
	d->used = true;
	r->pending++;
	return d;
}

static uint16_t checksum(const uint8_t *p, unsigned len)
{
	uint32_t sum = 0;

	for (unsigned i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* The finished datagram: the first fragment's header in front of the payload, its
 * lengths and fragment fields made those of an unfragmented packet. */
static void finish(struct datagram *d, const uint8_t **out, uint32_t *out_len)
{
	uint8_t *h = d->buf + EG_REASM_MAX_HDR - d->hdr_len;
	uint32_t len = d->hdr_len + d->total;

	if (d->family == EG_AF_INET) {
		uint16_t sum;

		h[2] = (uint8_t)(len >> 8);
		h[3] = (uint8_t)len;
		h[6] &= 0x40;			/* DF stays; MF and the offset go */
		h[7] = 0;
		h[10] = h[11] = 0;
		sum = checksum(h, d->hdr_len);
		h[10] = (uint8_t)(sum >> 8);
		h[11] = (uint8_t)sum;
	} else {
		h[4] = (uint8_t)(d->total >> 8);
		h[5] = (uint8_t)d->total;
		h[6] = d->proto;		/* the Fragment header is gone */
	}
	*out = h;
	*out_len = len;
}

enum eg_reasm_result eg_reasm_add(struct eg_reasm *r, const struct eg_frag *f, uint64_t now,
				  const uint8_t **out, uint32_t *out_len, unsigned *lost)
{
	uint32_t end = f->offset + f->len;
	uint32_t min_hdr = f->family == EG_AF_INET ? 20 : 40;
	struct datagram *d;

	*lost = 0;
	/* Only the last fragment may end off an 8-byte boundary, none may be empty, and the
	 * datagram cannot outgrow its length field. */
	if (f->len == 0 || (f->more && (f->len & 7)) || (f->offset & 7) ||
	    end > (f->family == EG_AF_INET ? 65535u - min_hdr : 65535u) ||
	    (f->offset == 0 && (f->hdr_len < min_hdr || f->hdr_len > EG_REASM_MAX_HDR)))
		return EG_REASM_BAD;
	d = find(r, f, now, lost);
	if (end + min_hdr > r->max_len) {
		discard(r, d);
		return EG_REASM_TOO_BIG;
	}
	/* The last fragment fixes the length; nothing may contradict it. */
	if ((!f->more && ((d->total && d->total != end) || d->have > end)) || (d->total && end > d->total)) {
		discard(r, d);
		return EG_REASM_BAD;
	}
	for (unsigned i = 0; i < d->n_pieces; i++) {
		const struct piece *p = &d->pieces[i];

		if (p->start == f->offset && p->end == end)
			return EG_REASM_DUPLICATE;
		if (f->offset < p->end && p->start < end) {
			discard(r, d);
			return EG_REASM_OVERLAP;
		}
		if (!f->more && p->end > end) {
			discard(r, d);
			return EG_REASM_BAD;
		}
	}
	if (d->n_pieces == EG_REASM_MAX_FRAGS) {
		discard(r, d);
		return EG_REASM_TOO_MANY;
	}
	if (f->offset == 0) {
		memcpy(d->buf + EG_REASM_MAX_HDR - f->hdr_len, f->hdr, f->hdr_len);
		d->hdr_len = f->hdr_len;
	}
	memcpy(d->buf + EG_REASM_MAX_HDR + f->offset, f->data, f->len);
	d->pieces[d->n_pieces++] = (struct piece){f->offset, end};
	d->have += f->len;
	if (!f->more)
		d->total = end;
	if (!d->total || d->have != d->total)
		return EG_REASM_HELD;
	/* Pieces never overlap, so holding total bytes below total means holding them all. */
	if (d->hdr_len + d->total > r->max_len) {
		discard(r, d);
		return EG_REASM_TOO_BIG;
	}
	finish(d, out, out_len);
	discard(r, d);
	return EG_REASM_DONE;
}

unsigned eg_reasm_expire(struct eg_reasm *r, uint64_t now, unsigned budget)
{
	unsigned lost = 0;

	for (unsigned i = 0; i < budget && r->pending; i++) {
		struct datagram *d = &r->slots[r->cursor];

		r->cursor = (r->cursor + 1) & r->mask;
		if (d->used && expired(r, d, now)) {
			discard(r, d);
			lost++;
		}
	}
	return lost;
}
