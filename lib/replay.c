/* Anti-replay window: RFC 4303 3.4.3 semantics over the RFC 6479 ring of 64-bit blocks,
 * made lock-free by keeping each block's number next to its bits.
 *
 * Why no update is ever lost, with any number of concurrent callers:
 *
 *  - A slot's (id, bits) pair changes only through one 16-byte CAS, so nobody ever sees an
 *    id with bits from another id. A CAS either ORs a bit into the block with the same id,
 *    or replaces the pair by a strictly newer id; ids in a slot only grow and a bit is only
 *    cleared by that replacement. So once accept() has returned 0 for seq, a later accept()
 *    of seq finds its bit (-EEXIST) or a newer id in its slot (-ERANGE): never 0 twice.
 *  - A block is replaced only by an id at least n_blocks newer, i.e. by some seq' at least
 *    (n_blocks - 1) * 64 + 1 > window numbers above every number of the old block. Once top
 *    reaches seq', everything the old block recorded is outside the window, so the bits
 *    that vanish are ones nobody may be accepted for any more: no in-window bit is lost.
 *  - Two threads advancing at once: each one CASes its own block first, then raises top
 *    with a CAS loop that only ever increases it, so top ends at the larger of the two
 *    whatever the order. If they race for the same slot, the loser's CAS fails and it
 *    re-decides on what the winner stored: same id -> sets its bit next to the winner's,
 *    newer id -> it is too old (-ERANGE), older id -> it replaces that block in turn.
 *  - top and the block are not updated together. A thread that read top just before
 *    another one raised it far ahead may still record a number that is, by then, just
 *    older than the window. That accepts nothing twice (the point above still holds) and
 *    is the same answer the packet would have got a moment earlier.
 *
 * The ring size: the window spans at most ceil(window / 64) + 1 blocks, so with
 * (n_blocks - 1) * 64 >= window every block of the window has its own slot (RFC 6479:
 * the ring holds one block more than the window needs). */
#include "replay.h"

#include <errno.h>
#include <stdbool.h>

#ifndef __GCC_HAVE_SYNC_COMPARE_AND_SWAP_16
#error "lib/replay.c needs an inline 16-byte CAS: build with -mcx16 on x86-64"
#endif
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "lib/replay.c packs {id, bits} as a little-endian 128-bit word"
#endif

/* The same 16 bytes as struct eg_replay_block, seen as one word for cmpxchg16b. may_alias
 * because the halves are also read as plain uint64_t. */
typedef unsigned __int128 __attribute__((may_alias)) u128;

_Static_assert(sizeof(struct eg_replay_block) == sizeof(u128), "block is one CAS word");
_Static_assert(offsetof(struct eg_replay, blocks) % 16 == 0, "blocks are CAS-aligned");

static inline u128 pack(uint64_t id, uint64_t bits)
{
	return (u128)bits << 64 | id;
}

static unsigned blocks_for(unsigned window)
{
	unsigned need = (window + 63) / 64 + 1, n = 1;

	while (n < need)
		n <<= 1;
	return n;
}

size_t eg_replay_size(unsigned window)
{
	if (window < EG_REPLAY_MIN_WINDOW || window > EG_REPLAY_MAX_WINDOW)
		return 0;
	return sizeof(struct eg_replay) + blocks_for(window) * sizeof(struct eg_replay_block);
}

/* Precondition: nobody else uses r yet. All-zero blocks read as "block 0, nothing seen",
 * which is exactly the fresh state: seq 0 is new until someone accepts it. */
int eg_replay_init(struct eg_replay *r, unsigned window)
{
	if (window < EG_REPLAY_MIN_WINDOW || window > EG_REPLAY_MAX_WINDOW)
		return -EINVAL;
	/* cmpxchg16b faults on an unaligned operand; shared memory carved by hand could be. */
	if ((uintptr_t)r % 16 != 0)
		return -EINVAL;
	r->window = window;
	r->n_blocks = blocks_for(window);
	r->pad = 0;
	for (unsigned i = 0; i < r->n_blocks; i++)
		r->blocks[i] = (struct eg_replay_block){ 0, 0 };
	__atomic_store_n(&r->top, 0, __ATOMIC_RELEASE);
	return 0;
}

/* RFC 4303 3.4.3: reject what lies window or more below top. seq above top is always in. */
static inline bool too_old(uint64_t top, uint64_t seq, unsigned window)
{
	return seq <= top && top - seq >= window;
}

/* A consistent (id, bits) of one slot without writing to it (check() must stay read-only
 * and must not pull the line exclusive). ids only grow, so reading the same id before and
 * after the bits proves the bits belong to that id. */
static inline void snapshot(const struct eg_replay_block *b, uint64_t *id, uint64_t *bits)
{
	uint64_t again;

	*id = __atomic_load_n(&b->id, __ATOMIC_ACQUIRE);
	for (;;) {
		*bits = __atomic_load_n(&b->bits, __ATOMIC_ACQUIRE);
		again = __atomic_load_n(&b->id, __ATOMIC_ACQUIRE);
		if (__builtin_expect(again == *id, 1))
			return;
		*id = again;
	}
}

static inline int verdict(uint64_t slot_id, uint64_t slot_bits, uint64_t id, uint64_t bit)
{
	if (slot_id > id)
		return -ERANGE;		/* slot recycled for a newer block: seq is too old */
	if (slot_id == id && (slot_bits & bit))
		return -EEXIST;
	return 0;
}

int eg_replay_check(const struct eg_replay *r, uint64_t seq)
{
	uint64_t top = __atomic_load_n(&r->top, __ATOMIC_ACQUIRE);
	uint64_t id = seq >> 6, slot_id, slot_bits;

	if (too_old(top, seq, r->window))
		return -ERANGE;
	snapshot(&r->blocks[id & (r->n_blocks - 1)], &slot_id, &slot_bits);
	return verdict(slot_id, slot_bits, id, 1ULL << (seq & 63));
}

int eg_replay_accept(struct eg_replay *r, uint64_t seq)
{
	uint64_t top = __atomic_load_n(&r->top, __ATOMIC_ACQUIRE);
	uint64_t id = seq >> 6, bit = 1ULL << (seq & 63), slot_id, slot_bits;
	struct eg_replay_block *b;
	u128 old, seen;
	int ret;

	if (too_old(top, seq, r->window))
		return -ERANGE;
	b = &r->blocks[id & (r->n_blocks - 1)];
	snapshot(b, &slot_id, &slot_bits);
	for (;;) {
		ret = verdict(slot_id, slot_bits, id, bit);
		if (ret)
			return ret;
		old = pack(slot_id, slot_bits);
		/* An older id is a block that left the window: start it afresh (RFC 6479). */
		seen = __sync_val_compare_and_swap((u128 *)b, old,
						   pack(id, (slot_id == id ? slot_bits : 0) | bit));
		if (seen == old)
			break;
		slot_id = (uint64_t)seen;
		slot_bits = (uint64_t)(seen >> 64);
	}

	/* Atomic max: a failed CAS reloads top, and we stop as soon as someone went further. */
	while (seq > top && !__atomic_compare_exchange_n(&r->top, &top, seq, true,
							 __ATOMIC_RELEASE, __ATOMIC_ACQUIRE))
		;
	return 0;
}

/* Precondition: no worker uses r yet. Whatever the lost window had accepted is unknown, so
 * every number it could have held counts as seen: the window ends on top and is full. The
 * at most ceil(window / 64) + 1 blocks it spans have distinct slots (see the ring size
 * above); the other slots get block 0, older than anything a later accept brings. */
void eg_replay_restore(struct eg_replay *r, uint64_t top)
{
	uint64_t lo = top >= r->window - 1 ? (top - (r->window - 1)) >> 6 : 0, hi = top >> 6;
	uint64_t last = (top & 63) == 63 ? ~0ULL : (2ULL << (top & 63)) - 1;

	for (unsigned i = 0; i < r->n_blocks; i++)
		r->blocks[i] = (struct eg_replay_block){ 0, 0 };
	for (uint64_t id = lo; id <= hi; id++)
		r->blocks[id & (r->n_blocks - 1)] =
			(struct eg_replay_block){ .id = id, .bits = id == hi ? last : ~0ULL };
	__atomic_store_n(&r->top, top, __ATOMIC_RELEASE);
}

/* RFC 4303 Appendix A2.2. Tl, Th: low and high halves of top. The only case the RFC leaves
 * open is Th == 0 with seq_lo just "below" a small Tl: there is no subspace -1, so the one
 * sender state that can produce it is a jump forward within subspace 0, and the ICV decides.
 * Th + 1 past 2^32 wraps to 0, which accept() rejects as too old: the SA must have been
 * rekeyed long before (RFC 4303 3.3.3). */
uint64_t eg_replay_esn(const struct eg_replay *r, uint32_t seq_lo)
{
	uint64_t top = __atomic_load_n(&r->top, __ATOMIC_ACQUIRE);
	uint32_t tl = (uint32_t)top, bottom = tl - (r->window - 1);	/* Tl - W + 1 mod 2^32 */
	uint64_t th = top >> 32;

	if (tl >= r->window - 1) {		/* case A: window within one subspace */
		if (seq_lo < bottom)
			th++;
	} else {				/* case B: window spans Th - 1 and Th */
		if (seq_lo >= bottom && th > 0)
			th--;
	}
	return th << 32 | seq_lo;
}
