#include "prefix_map.h"

#include <stdbool.h>
#include <stdlib.h>

/* Sorting by first address and then by length puts every prefix before the prefixes it
 * contains, and those right after it: a sweep with a stack of the prefixes still open
 * sees each range boundary in address order. */
static int by_start_then_len(const void *a, const void *b)
{
	const struct eg_prefix *p = &((const struct eg_prefix_owned *)a)->prefix;
	const struct eg_prefix *q = &((const struct eg_prefix_owned *)b)->prefix;
	int c = (int)p->family - (int)q->family;

	if (c)
		return c;
	c = memcmp(p->addr, q->addr, EG_ADDR_MAX_LEN);

	if (c)
		return c;
	return (int)p->len - (int)q->len;
}

static void last_address(const struct eg_prefix *p, uint8_t end[EG_ADDR_MAX_LEN], size_t len)
{
	memcpy(end, p->addr, EG_ADDR_MAX_LEN);
	for (size_t bit = p->len; bit < len * 8; bit++)
		end[bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
}

/* addr + 1; false when addr was the family's last address. */
static bool next_address(uint8_t addr[EG_ADDR_MAX_LEN], size_t len)
{
	for (size_t i = len; i-- > 0;)
		if (++addr[i] != 0)
			return true;
	return false;
}

struct sweep {
	struct eg_prefix_range *out;
	unsigned n;
	size_t len;
};

static void boundary(struct sweep *s, const uint8_t start[EG_ADDR_MAX_LEN], uint32_t owner)
{
	struct eg_prefix_range *last = s->n ? &s->out[s->n - 1] : NULL;

	if (last && memcmp(last->start, start, s->len) == 0) {
		/* A prefix starting where another ended: it replaces that boundary. */
		s->n--;
		last = s->n ? &s->out[s->n - 1] : NULL;
	}
	if (last ? last->owner == owner : owner == EG_PREFIX_NO_OWNER)
		return;			/* the range before goes on */
	memset(s->out[s->n].start, 0, EG_ADDR_MAX_LEN);
	memcpy(s->out[s->n].start, start, s->len);
	s->out[s->n].owner = owner;
	s->n++;
}

/* Closes the innermost open prefix: what follows it goes back to the one around it. */
static void close_top(struct sweep *s, const struct eg_prefix_owned **stack, unsigned *depth)
{
	uint8_t after[EG_ADDR_MAX_LEN];

	last_address(&stack[*depth - 1]->prefix, after, s->len);
	(*depth)--;
	if (next_address(after, s->len))
		boundary(s, after, *depth ? stack[*depth - 1]->owner : EG_PREFIX_NO_OWNER);
}

unsigned eg_prefix_map_flatten(uint8_t family, struct eg_prefix_owned *in, unsigned n,
			       struct eg_prefix_range *out)
{
	/* Open prefixes nest with strictly growing length, so the stack is bounded. */
	const struct eg_prefix_owned *stack[EG_ADDR_MAX_LEN * 8 + 1];
	struct sweep s = {.out = out, .len = family == EG_AF_INET ? 4 : 16};
	unsigned depth = 0;

	qsort(in, n, sizeof(*in), by_start_then_len);
	for (unsigned i = 0; i < n; i++) {
		const struct eg_prefix *p = &in[i].prefix;

		if (p->family != family)
			continue;

		while (depth) {
			const struct eg_prefix *top = &stack[depth - 1]->prefix;
			uint8_t end[EG_ADDR_MAX_LEN];

			if (top->len == p->len && memcmp(top->addr, p->addr, s.len) == 0) {
				depth--;	/* identical: the later one replaces it */
				break;
			}
			last_address(top, end, s.len);
			if (memcmp(end, p->addr, s.len) >= 0)
				break;		/* p lies inside top */
			close_top(&s, stack, &depth);
		}
		boundary(&s, p->addr, in[i].owner);
		stack[depth++] = &in[i];
	}
	while (depth)
		close_top(&s, stack, &depth);
	return s.n;
}
