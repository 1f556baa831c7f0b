/* Anti-replay sliding window (RFC 4303 3.4.3, bitmap as in RFC 6479), for ESP SAs and
 * WireGuard keypairs. Lock-free for any number of workers at once: each 64-bit block of the
 * bitmap is stored with the number of the block it currently holds, and both are updated
 * together with one 16-byte compare-and-swap, so a block is recycled for a newer range
 * without a separate clearing step that could race with a concurrent update.
 *
 * The structure is position independent (it lives in shared memory) and is followed by
 * its blocks; eg_replay_size() tells how many bytes to reserve. */
#ifndef EG_REPLAY_H
#define EG_REPLAY_H

#include <stddef.h>
#include <stdint.h>

enum {
	EG_REPLAY_MIN_WINDOW = 64,
	EG_REPLAY_MAX_WINDOW = 65536,
	EG_REPLAY_MAX_BURST = 256,	/* for eg_replay_accept_each */
};

struct eg_replay_block {
	uint64_t id;			/* seq >> 6 of the numbers this block records */
	uint64_t bits;
} __attribute__((aligned(16)));

struct eg_replay {
	uint64_t top;			/* highest sequence number accepted so far; atomic */
	uint32_t window;		/* in sequence numbers, as configured */
	uint32_t n_blocks;		/* power of two, > window / 64 */
	uint64_t pad;
	struct eg_replay_block blocks[];
};

/* The ring's blocks for a window: a power of two, with (n - 1) * 64 >= window (see
 * replay.c). */
static inline unsigned eg_replay_blocks_for(unsigned window)
{
	unsigned need = (window + 63) / 64 + 1, n = 1;

	while (n < need)
		n <<= 1;
	return n;
}

/* Bytes needed for a window of window sequence numbers; 0 for a window out of range.
 * Inline because WireGuard's keypair stride is made of it and workers find a keypair
 * per packet: with a constant window it folds to a constant. */
static inline size_t eg_replay_size(unsigned window)
{
	if (window < EG_REPLAY_MIN_WINDOW || window > EG_REPLAY_MAX_WINDOW)
		return 0;
	return sizeof(struct eg_replay) + eg_replay_blocks_for(window) * sizeof(struct eg_replay_block);
}
/* window in [EG_REPLAY_MIN_WINDOW, EG_REPLAY_MAX_WINDOW]. 0 or -EINVAL. Nothing is
 * accepted yet: top is 0, and sequence number 0 is treated as already seen only if the
 * caller accepts it. */
int eg_replay_init(struct eg_replay *r, unsigned window);

/* Cheap, read-only test before authentication: 0 when seq may be new, -ERANGE when it is
 * older than the window, -EEXIST when it was seen. A packet that passes must still pass
 * eg_replay_accept after its ICV checked out. */
int eg_replay_check(const struct eg_replay *r, uint64_t seq);
/* Records seq after authentication: 0 when it is new (and now recorded), -EEXIST for a
 * replay, -ERANGE when older than the window. Safe against concurrent callers. */
int eg_replay_accept(struct eg_replay *r, uint64_t seq);
/* eg_replay_accept for n numbers at once, verdict[i] for seq[i]: one atomic update per
 * block of the window the burst touches and one of top, instead of one each per number.
 * A number twice in the burst is accepted once, the other time -EEXIST. */
void eg_replay_accept_burst(struct eg_replay *r, const uint64_t *seq, unsigned n, int *verdict);
/* A burst whose numbers belong to different windows: seq[i] is recorded in win[i], in one
 * eg_replay_accept_burst per window. win[i] NULL leaves verdict[i] untouched.
 * n <= EG_REPLAY_MAX_BURST. */
void eg_replay_accept_each(struct eg_replay *const *win, const uint64_t *seq, unsigned n,
			   int *verdict);

/* After the window was lost (a dataplane restart): counts every sequence number up to top
 * as seen, so that nothing older than what the last window accepted gets in again. Not
 * safe against concurrent callers: for a window no worker uses yet. */
void eg_replay_restore(struct eg_replay *r, uint64_t top);

/* ESN (RFC 4303 Appendix A2.2): the full 64-bit sequence number a packet carrying the low
 * 32 bits seq_lo most likely has, given the window's top. */
uint64_t eg_replay_esn(const struct eg_replay *r, uint32_t seq_lo);

#endif
