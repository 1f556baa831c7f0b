/* A fuzz input read front to back, shared by the harnesses: what is missing reads as
 * zeros, so a short input is still a whole one. */
#ifndef FUZZ_INPUT_H
#define FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct in {
	const uint8_t *p;
	size_t n;
};

static inline uint8_t u8(struct in *r)
{
	if (!r->n)
		return 0;
	r->n--;
	return *r->p++;
}

static inline uint16_t u16(struct in *r)
{
	uint16_t hi = u8(r);

	return (uint16_t)(hi << 8 | u8(r));
}

static inline uint32_t u32(struct in *r)
{
	uint32_t hi = u16(r);

	return hi << 16 | u16(r);
}

static inline uint64_t u64(struct in *r)
{
	uint64_t hi = u32(r);

	return hi << 32 | u32(r);
}

/* len bytes into out, zero-filled past the end of the input. */
static inline void bytes(struct in *r, uint8_t *out, size_t len)
{
	size_t k = len < r->n ? len : r->n;

	memcpy(out, r->p, k);
	memset(out + k, 0, len - k);
	r->p += k;
	r->n -= k;
}

/* The first len bytes of r, as an input of their own. */
static inline struct in split(struct in *r, size_t len)
{
	struct in s = {r->p, len < r->n ? len : r->n};

	r->p += s.n;
	r->n -= s.n;
	return s;
}

#endif
