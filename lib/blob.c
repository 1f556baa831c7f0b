/* A growable byte buffer addressed by offsets (see blob.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blob.h"

enum {
	BLOB_MIN_CAP = 4096,
	BLOB_MAX_ALIGN = 64,
};

/* Offsets are uint32_t and UINT32_MAX is EG_BLOB_NONE, so no blob may reach 4 GiB. */
#define BLOB_MAX_LIMIT ((size_t)UINT32_MAX - 1)

void eg_blob_init(struct eg_blob *b, size_t limit)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->limit = (limit == 0 || limit > BLOB_MAX_LIMIT) ? BLOB_MAX_LIMIT : limit;
}

/* Leaves b empty but usable, with its limit kept. */
void eg_blob_free(struct eg_blob *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

static int grow(struct eg_blob *b, size_t need)
{
	size_t cap = b->cap < BLOB_MIN_CAP ? BLOB_MIN_CAP : b->cap;

	/* Doubling keeps a long series of small allocations amortised O(1). */
	while (cap < need && cap <= b->limit / 2)
		cap *= 2;
	if (cap < need || cap > b->limit)
		cap = b->limit;	/* need <= limit: the last step may not double */

	uint8_t *data = realloc(b->data, cap);
	if (!data)
		return -ENOMEM;
	b->data = data;
	b->cap = cap;
	return 0;
}

uint32_t eg_blob_alloc(struct eg_blob *b, size_t size, size_t align)
{
	if (align == 0 || align > BLOB_MAX_ALIGN || (align & (align - 1))) {
		errno = EINVAL;
		return EG_BLOB_NONE;
	}

	/* The limit is at most 4 GiB - 2, so start and end cannot wrap a size_t. */
	size_t start = (b->len + align - 1) & ~(align - 1);
	if (start > b->limit || size > b->limit - start) {
		errno = ENOSPC;
		return EG_BLOB_NONE;
	}
	size_t end = start + size;

	if (end > b->cap) {
		int err = grow(b, end);
		if (err) {
			errno = -err;
			return EG_BLOB_NONE;
		}
	}
	/* Padding is zeroed too, so the blob's bytes never depend on what realloc left. */
	if (end > b->len)
		memset(b->data + b->len, 0, end - b->len);
	b->len = end;
	return (uint32_t)start;
}
