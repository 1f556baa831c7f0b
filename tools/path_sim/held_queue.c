#include "held_queue.h"

#include <stdlib.h>
#include <string.h>

/* Small at first: most runs hold a handful of frames, and the bound is what matters. */
#define HELD_QUEUE_FIRST_ALLOCATION 64

static bool leaves_before(const struct held_frame *x, const struct held_frame *y)
{
	if (x->due_ns != y->due_ns)
		return x->due_ns < y->due_ns;
	return x->arrival < y->arrival;
}

static void swap_frames(struct held_frame *x, struct held_frame *y)
{
	struct held_frame t = *x;

	*x = *y;
	*y = t;
}

void held_queue_init(struct held_queue *q, size_t max)
{
	memset(q, 0, sizeof(*q));
	q->max = max;
}

static bool make_room(struct held_queue *q)
{
	size_t want;
	struct held_frame *grown;

	if (q->count < q->allocated)
		return true;
	if (q->allocated >= q->max)
		return false;
	want = q->allocated ? q->allocated * 2 : HELD_QUEUE_FIRST_ALLOCATION;
	if (want > q->max)
		want = q->max;
	grown = realloc(q->heap, want * sizeof(*grown));
	if (!grown)
		return false;
	q->heap = grown;
	q->allocated = want;
	return true;
}

bool held_queue_push(struct held_queue *q, uint64_t due_ns, const void *frame, uint32_t len)
{
	unsigned char *copy;
	size_t i;

	if (!make_room(q))
		return false;
	copy = malloc(len ? len : 1);
	if (!copy)
		return false;
	memcpy(copy, frame, len);

	i = q->count++;
	q->heap[i] = (struct held_frame){ .due_ns = due_ns, .arrival = q->arrivals++, .len = len, .bytes = copy };
	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!leaves_before(&q->heap[i], &q->heap[parent]))
			break;
		swap_frames(&q->heap[i], &q->heap[parent]);
		i = parent;
	}
	return true;
}

const struct held_frame *held_queue_first(const struct held_queue *q)
{
	return q->count ? &q->heap[0] : NULL;
}

void held_queue_pop(struct held_queue *q, struct held_frame *out)
{
	size_t i = 0;

	*out = q->heap[0];
	q->heap[0] = q->heap[--q->count];
	for (;;) {
		size_t left = 2 * i + 1, right = left + 1, first = i;

		if (left < q->count && leaves_before(&q->heap[left], &q->heap[first]))
			first = left;
		if (right < q->count && leaves_before(&q->heap[right], &q->heap[first]))
			first = right;
		if (first == i)
			break;
		swap_frames(&q->heap[i], &q->heap[first]);
		i = first;
	}
}

void held_queue_free(struct held_queue *q)
{
	for (size_t i = 0; i < q->count; i++)
		free(q->heap[i].bytes);
	free(q->heap);
	memset(q, 0, sizeof(*q));
}
