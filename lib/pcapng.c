#include "pcapng.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum {
	BLOCK_SHB = 0x0A0D0D0A,
	BLOCK_IDB = 1,
	BLOCK_EPB = 6,
	BYTE_ORDER_MAGIC = 0x1A2B3C4D,
	OPT_END = 0,
	OPT_SHB_USERAPPL = 4,
	OPT_IF_NAME = 2,
	OPT_IF_DESCRIPTION = 3,
	OPT_IF_TSRESOL = 9,
	OPT_EPB_FLAGS = 2,
	TSRESOL_NS = 9,			/* 10^-9 s */
};

/* A block being built: body bytes and options, padded to 32 bits as the format wants. */
struct block {
	uint8_t *p;
	size_t len, cap;
	int err;
};

static void put(struct block *b, const void *data, size_t n)
{
	size_t padded = (n + 3) & ~(size_t)3;

	if (b->err)
		return;
	if (b->len + padded > b->cap) {
		size_t cap = (b->len + padded) * 2;
		uint8_t *p = realloc(b->p, cap);

		if (!p) {
			b->err = -ENOMEM;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, data, n);
	memset(b->p + b->len + n, 0, padded - n);
	b->len += padded;
}

static void put32(struct block *b, uint32_t v)
{
	put(b, &v, 4);
}

static void option(struct block *b, uint16_t code, const void *data, size_t n)
{
	uint16_t hdr[2] = {code, (uint16_t)n};

	put(b, hdr, sizeof(hdr));
	put(b, data, n);
}

static void option_str(struct block *b, uint16_t code, const char *s)
{
	if (s && *s)
		option(b, code, s, strnlen(s, 0xfff0));
}

/* type, total length, body, total length again. */
static int emit(FILE *f, uint32_t type, struct block *b)
{
	uint32_t total = (uint32_t)b->len + 12;
	int rc = b->err;

	if (!rc && (fwrite(&type, 4, 1, f) != 1 || fwrite(&total, 4, 1, f) != 1 ||
		    (b->len && fwrite(b->p, b->len, 1, f) != 1) || fwrite(&total, 4, 1, f) != 1))
		rc = -EIO;
	free(b->p);
	return rc;
}

int eg_pcapng_section(FILE *f, const char *application)
{
	struct block b = {0};
	uint16_t version[2] = {1, 0};
	int64_t section_len = -1;	/* not known in advance */

	put32(&b, BYTE_ORDER_MAGIC);
	put(&b, version, sizeof(version));
	put(&b, &section_len, sizeof(section_len));
	option_str(&b, OPT_SHB_USERAPPL, application);
	option(&b, OPT_END, NULL, 0);
	return emit(f, BLOCK_SHB, &b);
}

int eg_pcapng_interface(FILE *f, uint16_t linktype, uint32_t snaplen, const char *name, const char *description)
{
	struct block b = {0};
	uint16_t lt[2] = {linktype, 0};
	uint8_t tsresol = TSRESOL_NS;

	put(&b, lt, sizeof(lt));
	put32(&b, snaplen);
	option_str(&b, OPT_IF_NAME, name);
	option_str(&b, OPT_IF_DESCRIPTION, description);
	option(&b, OPT_IF_TSRESOL, &tsresol, 1);
	option(&b, OPT_END, NULL, 0);
	return emit(f, BLOCK_IDB, &b);
}

int eg_pcapng_packet(FILE *f, uint32_t interface, uint64_t time_ns, const void *data, uint32_t cap_len,
		     uint32_t len, enum eg_pcapng_dir dir)
{
	struct block b = {0};
	uint32_t flags = (uint32_t)dir & 3;	/* bits 0-1: 01 inbound, 10 outbound */

	put32(&b, interface);
	put32(&b, (uint32_t)(time_ns >> 32));
	put32(&b, (uint32_t)time_ns);
	put32(&b, cap_len);
	put32(&b, len < cap_len ? cap_len : len);
	put(&b, data, cap_len);
	if (flags)
		option(&b, OPT_EPB_FLAGS, &flags, sizeof(flags));
	option(&b, OPT_END, NULL, 0);
	return emit(f, BLOCK_EPB, &b);
}
