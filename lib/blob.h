/* A growable byte buffer addressed by offsets, so that what is built in it can be copied
 * into shared memory and read there at any mapping address (position independent). */
#ifndef EG_BLOB_H
#define EG_BLOB_H

#include <stddef.h>
#include <stdint.h>

#define EG_BLOB_NONE UINT32_MAX

struct eg_blob {
	uint8_t *data;
	size_t len;
	size_t cap;
	size_t limit;	/* refuse to grow past this (0: 4 GiB - 1) */
};

void eg_blob_init(struct eg_blob *b, size_t limit);
void eg_blob_free(struct eg_blob *b);
/* Reserves size zeroed bytes aligned to align (a power of two <= 64). Returns the offset,
 * or EG_BLOB_NONE when out of memory or past the limit. Earlier pointers into b->data are
 * invalidated by a call that grows; offsets stay valid. */
uint32_t eg_blob_alloc(struct eg_blob *b, size_t size, size_t align);

static inline void *eg_blob_at(const struct eg_blob *b, uint32_t off)
{
	return b->data + off;
}

/* Reading a built structure: base is where the blob starts (heap or shared memory). */
#define EG_AT(base, off, type) ((const type *)((const uint8_t *)(base) + (off)))

#endif
