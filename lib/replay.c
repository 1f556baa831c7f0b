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
	r->n_blocks = eg_replay_blocks_for(window);
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

/* Records, in one compare-and-swap, the bits in mask of block id. Sets verdict[k] for the
 * group's members (those whose verdict is PENDING or REPEAT and whose seq is in block id),
 * and returns the highest seq it accepted, or 0. */
enum {
	PENDING = 1,
	REPEAT = 2,		/* a number the burst already holds: a replay of it, unless the
				 * block turns out too old, and then it is too old as well */
};

static uint64_t accept_block(struct eg_replay *r, uint64_t id, uint64_t mask,
			     const uint64_t *seq, unsigned from, unsigned n, int *verdict)
{
	struct eg_replay_block *b = &r->blocks[id & (r->n_blocks - 1)];
	uint64_t slot_id, slot_bits, had = 0, accepted = 0;
	u128 old, seen;

	snapshot(b, &slot_id, &slot_bits);
	for (;;) {
		if (slot_id > id) {
			had = ~0ULL;	/* recycled for a newer block: all of them too old */
			break;
		}
		had = slot_id == id ? slot_bits : 0;
		if ((had | mask) == had)
			break;		/* nothing new: no write, every member a replay */
		old = pack(slot_id, slot_bits);
		/* An older id is a block that left the window: start it afresh (RFC 6479). */
		seen = __sync_val_compare_and_swap((u128 *)b, old, pack(id, had | mask));
		if (seen == old)
			break;
		slot_id = (uint64_t)seen;
		slot_bits = (uint64_t)(seen >> 64);
	}
	for (unsigned k = from; k < n; k++) {
		if ((verdict[k] != PENDING && verdict[k] != REPEAT) || seq[k] >> 6 != id)
			continue;
		if (slot_id > id) {
			verdict[k] = -ERANGE;
		} else if (verdict[k] == REPEAT) {
			verdict[k] = -EEXIST;
		} else if (had & 1ULL << (seq[k] & 63)) {
			verdict[k] = -EEXIST;
		} else {
			verdict[k] = 0;
			accepted = seq[k] > accepted ? seq[k] : accepted;
		}
	}
	return accepted;
}

/* Why a burst costs one CAS per block it touches and one on top, not one each per packet:
 * with several workers on one SA these are the cache lines that bounce between cores. The
 * argument above holds unchanged, a CAS that ORs several bits being several single-bit
 * CASes that happened at once. */
void eg_replay_accept_burst(struct eg_replay *r, const uint64_t *seq, unsigned n, int *verdict)
{
	uint64_t top = __atomic_load_n(&r->top, __ATOMIC_ACQUIRE), highest = 0;

	for (unsigned i = 0; i < n; i++)
		verdict[i] = too_old(top, seq[i], r->window) ? -ERANGE : PENDING;
	for (unsigned i = 0; i < n; i++) {
		uint64_t id = seq[i] >> 6, mask = 0, got;

		if (verdict[i] != PENDING)
			continue;
		/* Gather the block's numbers; a number twice in one burst is a replay. */
		for (unsigned k = i; k < n; k++) {
			uint64_t bit = 1ULL << (seq[k] & 63);

			if (verdict[k] != PENDING || seq[k] >> 6 != id)
				continue;
			if (mask & bit)
				verdict[k] = REPEAT;
			mask |= bit;
		}
		got = accept_block(r, id, mask, seq, i, n, verdict);
		highest = got > highest ? got : highest;
	}
	/* Atomic max: a failed CAS reloads top, and we stop as soon as someone went further. */
	while (highest > top && !__atomic_compare_exchange_n(&r->top, &top, highest, true,
							     __ATOMIC_RELEASE, __ATOMIC_ACQUIRE))
		;
}

int eg_replay_accept(struct eg_replay *r, uint64_t seq)
{
	int verdict;

	eg_replay_accept_burst(r, &seq, 1, &verdict);
	return verdict;
}

void eg_replay_accept_each(struct eg_replay *const *win, const uint64_t *seq, unsigned n,
			   int *verdict)
{
	uint64_t group_seq[EG_REPLAY_MAX_BURST];
	int group_verdict[EG_REPLAY_MAX_BURST];
	unsigned char member[EG_REPLAY_MAX_BURST];
	bool done[EG_REPLAY_MAX_BURST] = { false };

	for (unsigned i = 0; i < n; i++) {
		unsigned g = 0;

		if (done[i] || !win[i])
			continue;
		for (unsigned k = i; k < n; k++) {
			if (done[k] || win[k] != win[i])
				continue;
			done[k] = true;
			member[g] = (unsigned char)k;
			group_seq[g++] = seq[k];
		}
		eg_replay_accept_burst(win[i], group_seq, g, group_verdict);
		for (unsigned k = 0; k < g; k++)
			verdict[member[k]] = group_verdict[k];
	}
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
