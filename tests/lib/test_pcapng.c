/* lib/pcapng.c: the blocks it writes, read back field by field as the format defines them
 * (a reader that trusts nothing but the lengths). tshark reading real captures is in the
 * integration tests (wg_appliance.sh, esp_interop.sh). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pcapng.h"

static uint8_t *written(FILE *f, size_t *len)
{
	uint8_t *buf;

	*len = (size_t)ftell(f);
	buf = malloc(*len);
	rewind(f);
	cr_assert_eq(fread(buf, 1, *len, f), *len);
	return buf;
}

static uint32_t u32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint16_t u16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return v;
}

/* The option with code in the options area [p, end), or NULL; its length in *len. */
static const uint8_t *option(const uint8_t *p, const uint8_t *end, uint16_t code, uint16_t *len)
{
	while (p + 4 <= end) {
		uint16_t c = u16(p), l = u16(p + 2);

		if (c == 0)
			return NULL;
		if (c == code) {
			*len = l;
			return p + 4;
		}
		p += 4 + ((l + 3u) & ~3u);
	}
	return NULL;
}

Test(pcapng, blocks_are_whole_aligned_and_say_what_was_written)
{
	FILE *f = tmpfile();
	uint8_t frame[61], *buf, *p;
	size_t len;
	uint16_t olen;
	const uint8_t *o;
	uint64_t t = 1763800000123456789ull;

	for (unsigned i = 0; i < sizeof(frame); i++)
		frame[i] = (uint8_t)i;
	cr_assert_eq(eg_pcapng_section(f, "test"), 0);
	cr_assert_eq(eg_pcapng_interface(f, EG_PCAPNG_LINKTYPE_RAW, 2048, "wg-pop2", "inner packets"), 0);
	cr_assert_eq(eg_pcapng_packet(f, 0, t, frame, 40, 61, EG_PCAPNG_DIR_OUT), 0);
	cr_assert_eq(eg_pcapng_packet(f, 0, t + 1, frame, 61, 61, EG_PCAPNG_DIR_IN), 0);
	buf = written(f, &len);

	/* Section header: type, byte-order magic, version 1.0, unknown section length. */
	p = buf;
	cr_assert_eq(u32(p), 0x0A0D0D0A);
	cr_assert_eq(u32(p + 8), 0x1A2B3C4D);
	cr_assert_eq(u16(p + 12), 1);
	cr_assert_eq(u16(p + 14), 0);
	cr_assert_eq(*(int64_t *)(void *)(p + 16), -1);
	o = option(p + 24, p + u32(p + 4) - 4, 4, &olen);
	cr_assert(o && olen == 4 && memcmp(o, "test", 4) == 0);
	cr_assert_eq(u32(p + u32(p + 4) - 4), u32(p + 4), "trailing length repeats the leading one");

	/* Interface: link type, snap length, name, and nanosecond timestamps. */
	p += u32(p + 4);
	cr_assert_eq(u32(p), 1);
	cr_assert_eq(u32(p + 4) % 4, 0);
	cr_assert_eq(u16(p + 8), 101);
	cr_assert_eq(u32(p + 12), 2048);
	o = option(p + 16, p + u32(p + 4) - 4, 2, &olen);
	cr_assert(o && olen == 7 && memcmp(o, "wg-pop2", 7) == 0);
	o = option(p + 16, p + u32(p + 4) - 4, 9, &olen);
	cr_assert(o && olen == 1 && *o == 9);

	/* Enhanced packets: interface 0, the time in two halves, captured and original
	 * lengths, data padded to 32 bits, and the direction in epb_flags. */
	for (unsigned k = 0; k < 2; k++) {
		uint32_t cap = k ? 61 : 40;

		p += u32(p + 4);
		cr_assert_eq(u32(p), 6);
		cr_assert_eq(u32(p + 4) % 4, 0);
		cr_assert_eq(u32(p + 8), 0);
		cr_assert_eq(((uint64_t)u32(p + 12) << 32 | u32(p + 16)), t + k);
		cr_assert_eq(u32(p + 20), cap);
		cr_assert_eq(u32(p + 24), 61);
		cr_assert_eq(memcmp(p + 28, frame, cap), 0);
		o = option(p + 28 + ((cap + 3) & ~3u), p + u32(p + 4) - 4, 2, &olen);
		cr_assert(o && olen == 4 && u32(o) == (k ? 1u : 2u));
		cr_assert_eq(u32(p + u32(p + 4) - 4), u32(p + 4));
	}
	cr_assert_eq((size_t)(p + u32(p + 4) - buf), len, "nothing after the last block");
	free(buf);
	fclose(f);
}
