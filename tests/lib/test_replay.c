/* The anti-replay window of lib/replay.c: numbered tables at each window size (edges,
 * recycled slots, ESN subspace changes, the end of the 64-bit space), a differential test
 * against a bit array over an absolute range, bursts against one number at a time, threads
 * racing on one window (one number or a burst at a time), and the window restored after a
 * restart. */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replay.h"

#define X32 (1ULL << 32)
#define M64 UINT64_MAX

static const unsigned windows[] = { 64, 1024, 4096, 65536 };
/* The differential test also runs a window that is not a multiple of 64 and WireGuard's. */
static const unsigned diff_windows[] = { 64, 100, 1024, 4096, 8192, 65536 };

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static struct eg_replay *fresh(unsigned window)
{
	size_t size = eg_replay_size(window);
	struct eg_replay *r;

	cr_assert_gt(size, sizeof(struct eg_replay));
	r = aligned_alloc(16, size);
	cr_assert_not_null(r);
	memset(r, 0xa5, size);		/* init must not rely on zeroed memory */
	cr_assert_eq(eg_replay_init(r, window), 0);
	return r;
}

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* xorshift64*: deterministic, so a failure reproduces. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

/* ---- tables ---------------------------------------------------------------------------- */

static struct eg_replay *tr;
static unsigned tw, tcase;

/* check() must predict accept() exactly when nobody else touches the window. */
static void step_at(uint64_t seq, int want)
{
	int c = eg_replay_check(tr, seq), a = eg_replay_accept(tr, seq);

	cr_expect_eq(c, want, "window %u case %u: check(%#llx) = %d, want %d", tw, tcase,
		     (unsigned long long)seq, c, want);
	cr_expect_eq(a, want, "window %u case %u: accept(%#llx) = %d, want %d", tw, tcase,
		     (unsigned long long)seq, a, want);
	if (a == 0)
		cr_expect_eq(eg_replay_check(tr, seq), -EEXIST, "window %u case %u: not recorded",
			     tw, tcase);
}

static void step(uint64_t seq, int want)
{
	tcase++;
	step_at(seq, want);
}

enum { NO_ACCEPT = 1 };

/* esn(lo) must give want; then accept(want) must answer acc unless acc is NO_ACCEPT. */
static void esn_step(uint32_t lo, uint64_t want, int acc)
{
	uint64_t got = eg_replay_esn(tr, lo);

	tcase++;
	cr_expect_eq(got, want, "window %u case %u: esn(%#x) = %#llx, want %#llx", tw, tcase, lo,
		     (unsigned long long)got, (unsigned long long)want);
	if (acc != NO_ACCEPT)
		step_at(want, acc);
}

#define T(seq, want) step((seq), (want))
#define E(lo, want, acc) esn_step((uint32_t)(lo), (want), (acc))

static void begin(unsigned window)
{
	free(tr);
	tr = fresh(window);
	tw = window;
	tcase = 0;
}

Test(replay, window_table)
{
	for (unsigned i = 0; i < ARRAY_SIZE(windows); i++) {
		begin(windows[i]);
		const uint64_t W = tw, S = (uint64_t)tr->n_blocks * 64, B = 4 * W + 2 * S;

		/* 1 */ T(0, 0);			/* WireGuard's first counter */
		/* 2 */ T(0, -EEXIST);
		/* 3 */ T(1, 0);
		/* 4 */ T(1, -EEXIST);
		/* 5 */ T(3, 0);
		/* 6 */ T(2, 0);			/* reordered, top stays 3 */
		/* 7 */ T(2, -EEXIST);
		/* 8 */ T(W - 1, 0);			/* window is exactly 0..W-1 */
		/* 9 */ T(0, -EEXIST);
		/* 10 */ T(4, 0);
		/* 11 */ T(W, 0);			/* 0 falls out */
		/* 12 */ T(0, -ERANGE);
		/* 13 */ T(1, -EEXIST);		/* top - W + 1, seen */
		/* 14 */ T(5, 0);
		/* 15 */ T(W + 1, 0);
		/* 16 */ T(1, -ERANGE);		/* top - W */
		/* 17 */ T(2, -EEXIST);
		/* 18 */ T(3 * W, 0);			/* jump of 2W - 1 */
		/* 19 */ T(2 * W + 1, 0);		/* top - W + 1, unseen: inside */
		/* 20 */ T(2 * W, -ERANGE);		/* top - W, unseen: outside */
		/* 21 */ T(W + 1, -ERANGE);		/* seen, and now too old */
		/* 22 */ T(2 * W + 1, -EEXIST);
		/* 23 */ T(3 * W - 1, 0);
		/* 24 */ T(3 * W, -EEXIST);
		/* 25 */ T(3 * W + S + 5, 0);		/* further than the whole ring */
		/* 26 */ T(3 * W, -ERANGE);
		/* 27 */ T(3 * W + S, 0);		/* 3W's slot, recycled clean */
		/* 28 */ T(3 * W + S, -EEXIST);
		/* 29 */ T(3 * W + S + 5 - W, -ERANGE);	/* top - W */
		/* 30 */ T(3 * W + S + 6 - W, 0);	/* top - W + 1 */
		/* 31 */ T(3 * W + S + 4, 0);
		/* 32 */ T(3 * W + S + 5, -EEXIST);
		/* 33 */ T(3 * W + S - 1, 0);		/* 3W-1's slot, recycled clean */
		/* 34 */ T(B + 7, 0);
		/* 35 */ T(B + 3, 0);
		/* 36 */ T(B + 5, 0);
		/* 37 */ T(B + 4, 0);
		/* 38 */ T(B + 7, -EEXIST);
		/* 39 */ T(B + 6, 0);
		/* 40 */ T(B + 3, -EEXIST);
		/* 41 */ T(B + 1, 0);
		/* 42 */ T(B + 8 - W, 0);		/* top - W + 1 */
		/* 43 */ T(B + 7 - W, -ERANGE);	/* top - W */
		/* 44 */ T(B + 2, 0);
		/* 45 */ T(B, 0);
		/* 46 */ T(B + 8 - W, -EEXIST);
		/* 47 */ T(B + 8, 0);			/* B + 8 - W falls out */
		/* 48 */ T(B + 8 - W, -ERANGE);
		/* 49 */ T(B + 9 - W, 0);
		cr_assert_eq(tcase, 49);
	}
	free(tr);
	tr = NULL;
}

Test(replay, full_window)
{
	for (unsigned i = 0; i < ARRAY_SIZE(windows); i++) {
		const unsigned W = windows[i];
		const uint64_t base = 1000003;	/* not block-aligned */

		begin(W);
		for (uint64_t s = base + W - 1; s >= base; s--)
			cr_assert_eq(eg_replay_accept(tr, s), 0, "window %u seq %llu", W,
				     (unsigned long long)s);
		cr_assert_eq(eg_replay_accept(tr, base - 1), -ERANGE);
		for (uint64_t s = base; s < base + W; s++)
			cr_assert_eq(eg_replay_accept(tr, s), -EEXIST, "window %u seq %llu", W,
				     (unsigned long long)s);
		cr_assert_eq(eg_replay_accept(tr, base + W), 0);
		cr_assert_eq(eg_replay_check(tr, base), -ERANGE);
		cr_assert_eq(eg_replay_check(tr, base + 1), -EEXIST);
		cr_assert_eq(tr->top, base + W);
	}
	free(tr);
	tr = NULL;
}

/* ESN (RFC 4303 Appendix A2.2) across subspaces: the inferred number is then accepted. */
Test(replay, esn_table)
{
	for (unsigned i = 0; i < ARRAY_SIZE(windows); i++) {
		begin(windows[i]);
		const uint64_t W = tw;

		/* Fresh window, Th == 0 and Tl < W - 1: "Th - 1" does not exist. */
		/* 1 */ E(0, 0, NO_ACCEPT);
		/* 2 */ E(5, 5, NO_ACCEPT);
		/* 3 */ E(0xffffffff, 0xffffffff, NO_ACCEPT);
		/* 4 */ E(X32 + 1 - W, X32 + 1 - W, NO_ACCEPT);
		/* 5 */ E(X32 - W, X32 - W, NO_ACCEPT);
		/* Case A, Tl >= W - 1, next to the top of subspace 0. */
		/* 6 */ T(X32 - 10, 0);
		/* 7 */ E(X32 - 10, X32 - 10, -EEXIST);
		/* 8 */ E(X32 - 8, X32 - 8, 0);
		/* 9 */ E(X32 - 7 - W, X32 - 7 - W, NO_ACCEPT);	/* Tl - W + 1: Th */
		/* 10 */ E(X32 - 8 - W, 2 * X32 - 8 - W, NO_ACCEPT);	/* below it: Th + 1 */
		/* 11 */ E(3, X32 + 3, 0);				/* crosses 2^32 */
		/* Case B, Tl = 3 < W - 1: the window reaches back into subspace 0. */
		/* 12 */ E(0xfffffff9, X32 - 7, 0);
		/* 13 */ E(0xfffffff8, X32 - 8, -EEXIST);
		/* 14 */ E(0xfffffff6, X32 - 10, -EEXIST);
		/* 15 */ E(2, X32 + 2, 0);
		/* 16 */ E(3, X32 + 3, -EEXIST);
		/* 17 */ E(4 - W, X32 + 4 - W, 0);			/* Tl - W + 1: Th - 1 */
		/* 18 */ E(3 - W, 2 * X32 + 3 - W, NO_ACCEPT);	/* Tl - W: Th, far ahead */
		/* 19 */ E(0, X32, 0);
		/* 20 */ E(0xffffffff, X32 - 1, 0);
		/* 21 */ E(X32 + 4 - W, X32 + 4 - W, -EEXIST);
		/* 22 */ T(X32 + 3 - W, -ERANGE);			/* the 64-bit edge agrees */
		/* Up to the end of subspace 1, across into 2, and back. */
		/* 23 */ T(2 * X32 - 5, 0);
		/* 24 */ E(0xffffffff, 2 * X32 - 1, 0);
		/* 25 */ E(0, 2 * X32, 0);
		/* 26 */ E(0xfffffffe, 2 * X32 - 2, 0);
		/* 27 */ E(0xffffffff, 2 * X32 - 1, -EEXIST);
		/* 28 */ E(1, 2 * X32 + 1, 0);
		/* 29 */ E(X32 + 2 - W, 2 * X32 + 2 - W, 0);		/* Tl - W + 1 */
		/* 30 */ E(X32 + 1 - W, 3 * X32 + 1 - W, NO_ACCEPT);	/* Tl - W */
		cr_assert_eq(tcase, 30);
	}
	free(tr);
	tr = NULL;
}

/* The state another worker leaves for an instant: it has recorded seq + ring in the slot
 * that seq shares with it, but has not raised top yet. seq must already count as too old,
 * though top alone says it is inside the window. */
Test(replay, slot_moved_on)
{
	for (unsigned i = 0; i < ARRAY_SIZE(windows); i++) {
		begin(windows[i]);
		const uint64_t W = tw, ring = (uint64_t)tr->n_blocks * 64, seq = 2 * W - 5;
		struct eg_replay_block *b = &tr->blocks[(seq >> 6) & (tr->n_blocks - 1)];

		/* 1 */ T(2 * W, 0);
		*b = (struct eg_replay_block){ .id = (seq + ring) >> 6, .bits = 1ULL << (seq & 63) };
		/* 2 */ T(seq, -ERANGE);
		/* 3 */ T(seq + ring, -EEXIST);
		/* 4 */ T(seq + 1, -ERANGE);		/* seq's block, never recorded */
		/* 5 */ T(seq + ring + 1, 0);
		cr_assert_eq(tcase, 5);
	}
	free(tr);
	tr = NULL;
}

/* Counters at the end of the 64-bit space, and a wrap that must never read as new. */
Test(replay, near_2_64)
{
	for (unsigned i = 0; i < ARRAY_SIZE(windows); i++) {
		begin(windows[i]);
		const uint64_t W = tw;

		/* 1 */ T(M64 - 2 * W, 0);
		/* 2 */ T(M64 - W, 0);
		/* 3 */ T(M64 - 2 * W, -ERANGE);	/* top - W */
		/* 4 */ T(M64 - 2 * W + 1, 0);		/* top - W + 1 */
		/* 5 */ T(M64, 0);
		/* 6 */ T(M64, -EEXIST);
		/* 7 */ T(M64 - W, -ERANGE);
		/* 8 */ T(M64 - W + 1, 0);
		/* 9 */ T(M64 - 1, 0);
		/* 10 */ T(M64 - W + 1, -EEXIST);
		/* 11 */ T(0, -ERANGE);
		/* 12 */ T(W, -ERANGE);
		/* 13 */ E(0xffffffff, M64, -EEXIST);
		/* 14 */ E(X32 - 2 - W, X32 - 2 - W, NO_ACCEPT);	/* Th + 1 wraps to 0 */
		/* 15 */ E(5, 5, -ERANGE);		/* Th + 1 wraps: too old */
		/* 16 */ E(M64 - 2, M64 - 2, 0);
		cr_assert_eq(tcase, 16);
	}
	free(tr);
	tr = NULL;
}

/* After a restart the whole window up to the last top is "seen": late copies of anything
 * the lost window may have accepted are replays, only numbers above it are new. */
Test(replay, restore)
{
	for (unsigned i = 0; i < ARRAY_SIZE(windows); i++) {
		const uint64_t W = windows[i];
		const uint64_t tops[] = { 0, 5, W - 1, W, 1000003, X32 + 10, M64 - 64, M64 };

		begin(windows[i]);
		const uint64_t ring = (uint64_t)tr->n_blocks * 64;

		for (unsigned j = 0; j < ARRAY_SIZE(tops); j++) {
			const uint64_t top = tops[j];
			uint64_t from = top >= W + 130 ? top - W - 130 : 0;
			uint64_t to = M64 - top > 2 * ring ? top + 2 * ring : M64;

			cr_assert_eq(eg_replay_init(tr, tw), 0);
			eg_replay_restore(tr, top);
			cr_assert_eq(tr->top, top);
			for (uint64_t s = from;; s++) {
				int want = s > top ? 0 : top - s >= W ? -ERANGE : -EEXIST;
				int got = eg_replay_check(tr, s);

				if (got != want)
					cr_assert_fail("window %u restored to %#llx: check(%#llx) = %d, want %d",
						       tw, (unsigned long long)top, (unsigned long long)s, got,
						       want);
				if (s == to)
					break;
			}
			cr_assert_eq(eg_replay_accept(tr, top), -EEXIST);
			if (top == M64)
				continue;
			cr_assert_eq(eg_replay_accept(tr, top + 1), 0);
			cr_assert_eq(eg_replay_accept(tr, top + 1), -EEXIST);
			cr_assert_eq(eg_replay_accept(tr, to), 0);
			cr_assert_eq(eg_replay_accept(tr, to - 1), 0);
		}
	}
	free(tr);
	tr = NULL;
}

Test(replay, init_rejects)
{
	static const unsigned bad[] = { 0, 1, 63, 65537, 1u << 20, ~0u };
	struct eg_replay *r = aligned_alloc(16, eg_replay_size(EG_REPLAY_MAX_WINDOW));

	cr_assert_not_null(r);
	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		cr_expect_eq(eg_replay_init(r, bad[i]), -EINVAL, "window %u", bad[i]);
		cr_expect_eq(eg_replay_size(bad[i]), 0, "window %u", bad[i]);
	}
	cr_expect_eq(eg_replay_init(r, 64), 0);
	cr_expect_eq(eg_replay_init(r, 65536), 0);
	/* cmpxchg16b faults on a misaligned block. */
	cr_expect_eq(eg_replay_init((struct eg_replay *)((char *)r + 8), 64), -EINVAL);
	free(r);
}

/* The ring has a slot for every block the window can touch, and no more than twice that. */
Test(replay, sizes)
{
	static const struct { unsigned window, n_blocks; } want[] = {
		{ 64, 2 }, { 100, 4 }, { 1024, 32 }, { 4096, 128 }, { 8192, 256 }, { 65536, 2048 },
	};
	struct eg_replay *r = aligned_alloc(16, eg_replay_size(EG_REPLAY_MAX_WINDOW));

	cr_assert_not_null(r);
	for (unsigned i = 0; i < ARRAY_SIZE(want); i++) {
		cr_assert_eq(eg_replay_init(r, want[i].window), 0);
		cr_expect_eq(r->n_blocks, want[i].n_blocks, "window %u", want[i].window);
		cr_expect_eq(r->window, want[i].window);
	}
	for (unsigned w = EG_REPLAY_MIN_WINDOW; w <= EG_REPLAY_MAX_WINDOW; w++) {
		unsigned n;

		cr_assert_eq(eg_replay_init(r, w), 0);
		n = r->n_blocks;
		cr_assert_eq(n & (n - 1), 0, "window %u: %u blocks", w, n);
		cr_assert_geq((n - 1) * 64, w, "window %u: %u blocks", w, n);
		cr_assert_lt((n / 2 - 1) * 64, w, "window %u: %u blocks", w, n);
		cr_assert_eq(eg_replay_size(w),
			     sizeof(struct eg_replay) + n * sizeof(struct eg_replay_block));
	}
	free(r);
}

/* ---- differential ---------------------------------------------------------------------- */

/* What the window must answer, kept the slow and obvious way: every number ever accepted,
 * one bit each over [base, base + span), and the highest one. */
struct naive {
	uint64_t base, top;
	unsigned window;
	uint8_t *seen;
};

static int naive_check(const struct naive *n, uint64_t seq)
{
	uint64_t off = seq - n->base;

	if (seq <= n->top && n->top - seq >= n->window)
		return -ERANGE;
	return n->seen[off / 8] & (1u << (off % 8)) ? -EEXIST : 0;
}

static int naive_accept(struct naive *n, uint64_t seq)
{
	uint64_t off = seq - n->base;
	int ret = naive_check(n, seq);

	if (ret)
		return ret;
	n->seen[off / 8] |= 1u << (off % 8);
	if (seq > n->top)
		n->top = seq;
	return 0;
}

/* RFC 4303 A2.2 restated: the number with low half lo in [top - W + 1, top - W + 1 + 2^32),
 * the window's bottom clamped at 0. */
static uint64_t naive_esn(uint64_t top, unsigned window, uint32_t lo)
{
	uint64_t bottom = top >= window - 1 ? top - (window - 1) : 0;

	return bottom + (uint32_t)(lo - (uint32_t)bottom);
}

enum { DIFF_STEPS = 100000, DIFF_SPAN_LOG2 = 26 };
enum where { FROM_ZERO, ACROSS_2_32, TO_2_64 };

static void differential(unsigned window, enum where where, uint64_t seed)
{
	struct eg_replay *r = fresh(window);
	const uint64_t ring = (uint64_t)r->n_blocks * 64;
	/* How far a stream of DIFF_STEPS goes, from the odds below: it places the stream so
	 * that it crosses 2^32 half-way, or ends on 2^64 - 1 three quarters in. */
	const uint64_t reach = DIFF_STEPS / 1000 * (4600 + 3 * ring / 2 + window);
	uint64_t limit = 1ULL << DIFF_SPAN_LOG2, base = 0;
	uint64_t recent[32] = { 0 }, cur = 0, off;	/* offsets from base */
	unsigned n_recent = 0, counts[3] = { 0 }, i;
	struct naive n = { .top = 0, .window = window };

	if (where == ACROSS_2_32)
		base = X32 - reach / 2;
	if (where == TO_2_64) {
		limit = reach * 3 / 4;
		base = M64 - limit + 1;
	}
	cr_assert_leq(reach, 1ULL << DIFF_SPAN_LOG2);
	n.base = base;
	n.seen = calloc((1ULL << DIFF_SPAN_LOG2) / 8, 1);
	cr_assert_not_null(n.seen);
	rng_state = seed;
	for (i = 0; i < DIFF_STEPS && cur < limit - 1; i++) {
		unsigned p = rnd() % 1000;
		uint64_t ahead = 0;

		if (p < 550) {				/* in order */
			ahead = 1;
		} else if (p < 700) {			/* late, around the window's edge */
			uint64_t back = rnd() % (window + window / 2 + 2);

			off = back > cur ? 0 : cur - back;
		} else if (p < 800) {			/* a duplicate of something recent */
			off = recent[rnd() % 32];
		} else if (p < 850) {			/* exactly on either side of the edge */
			uint64_t top = n.top - base, back = window - (rnd() & 1);

			off = n.top < base || back > top ? cur : top - back;
		} else if (p < 852) {			/* a jump, often past the whole ring */
			ahead = 1 + rnd() % (ring + ring / 2 + window);
		} else if (p < 875) {			/* anything ever sent */
			off = rnd() % (cur + 1);
		} else {				/* slightly ahead: a gap to be filled */
			ahead = 1 + rnd() % 64;
		}
		if (ahead)
			off = cur = ahead < limit - 1 - cur ? cur + ahead : limit - 1;
		recent[n_recent++ % 32] = off;

		uint64_t seq = base + off;
		int want = naive_check(&n, seq), c = eg_replay_check(r, seq);

		cr_assert_eq(c, want, "window %u base %#llx seed %llu step %u: check(%#llx) = %d, want %d",
			     window, (unsigned long long)base, (unsigned long long)seed, i,
			     (unsigned long long)seq, c, want);
		want = naive_accept(&n, seq);
		c = eg_replay_accept(r, seq);
		cr_assert_eq(c, want, "window %u base %#llx seed %llu step %u: accept(%#llx) = %d, want %d",
			     window, (unsigned long long)base, (unsigned long long)seed, i,
			     (unsigned long long)seq, c, want);
		counts[want == 0 ? 0 : want == -EEXIST ? 1 : 2]++;

		uint32_t lo = rnd() & 1 ? (uint32_t)rnd() : (uint32_t)(n.top - window + rnd() % 3);
		uint64_t got = eg_replay_esn(r, lo), wesn = naive_esn(n.top, window, lo);

		cr_assert_eq(got, wesn, "window %u top %#llx: esn(%#x) = %#llx, want %#llx", window,
			     (unsigned long long)n.top, lo, (unsigned long long)got,
			     (unsigned long long)wesn);
	}
	cr_log_info("window %u base %#llx: %u steps to %#llx: %u new, %u replays, %u too old",
		    window, (unsigned long long)base, i, (unsigned long long)n.top, counts[0],
		    counts[1], counts[2]);
	/* The stream must have exercised all three answers and reached its landmark, or it
	 * proves little. */
	cr_assert(counts[0] > 1000 && counts[1] > 1000 && counts[2] > 1000);
	if (where == ACROSS_2_32)
		cr_assert_gt(n.top, X32 + window, "window %u: never crossed 2^32", window);
	if (where == TO_2_64)
		cr_assert_eq(n.top, M64, "window %u: never reached 2^64 - 1", window);
	free(n.seen);
	free(r);
}

Test(replay, differential)
{
	static const enum where wheres[] = { FROM_ZERO, ACROSS_2_32, TO_2_64 };

	for (unsigned i = 0; i < ARRAY_SIZE(diff_windows); i++)
		for (unsigned j = 0; j < ARRAY_SIZE(wheres); j++)
			differential(diff_windows[i], wheres[j], 0x9e3779b97f4a7c15ULL * (i * 3 + j + 1));
}

/* ESN alone, at random tops, against the restatement. */
Test(replay, esn_differential)
{
	rng_state = 42;
	for (unsigned i = 0; i < ARRAY_SIZE(diff_windows); i++) {
		const unsigned W = diff_windows[i];
		struct eg_replay *r = fresh(W);

		for (unsigned k = 0; k < 20000; k++) {
			/* Tops near subspace boundaries, near 0 and 2^64, or anywhere. */
			uint64_t top = (rnd() % 4 == 0 ? rnd() : (rnd() % 8) << 32) + rnd() % (2 * W) -
				       W * (rnd() & 1);
			uint32_t lo = rnd() % 3 ? (uint32_t)(top - W + rnd() % 5) : (uint32_t)rnd();

			if (rnd() % 16 == 0)
				top = rnd() % W;
			cr_assert_eq(eg_replay_init(r, W), 0);
			if (top)
				cr_assert_eq(eg_replay_accept(r, top), 0);
			cr_assert_eq(eg_replay_esn(r, lo), naive_esn(top, W, lo),
				     "window %u top %#llx lo %#x", W, (unsigned long long)top, lo);
		}
		free(r);
	}
}

/* ---- bursts ---------------------------------------------------------------------------- */

Test(replay, burst_table)
{
	struct eg_replay *r = fresh(1024);
	/* 5 twice, 6 and 7 new, 200 in another block, 2000 ahead of all, 3 already in. */
	uint64_t seq[] = { 5, 6, 5, 200, 7, 2000, 3 };
	int v[ARRAY_SIZE(seq)];
	const int want[] = { 0, 0, -EEXIST, 0, 0, 0, -EEXIST };

	cr_assert_eq(eg_replay_accept(r, 3), 0);
	eg_replay_accept_burst(r, seq, ARRAY_SIZE(seq), v);
	for (unsigned i = 0; i < ARRAY_SIZE(seq); i++)
		cr_expect_eq(v[i], want[i], "seq %llu: %d, want %d", (unsigned long long)seq[i],
			     v[i], want[i]);
	cr_assert_eq(r->top, 2000);
	/* Now 5..7 are below 2000 - 1024 and too old; 1500 is new; 2000 seen. */
	uint64_t again[] = { 7, 1500, 2000, 1500 };
	const int want2[] = { -ERANGE, 0, -EEXIST, -EEXIST };
	int v2[ARRAY_SIZE(again)];

	eg_replay_accept_burst(r, again, ARRAY_SIZE(again), v2);
	for (unsigned i = 0; i < ARRAY_SIZE(again); i++)
		cr_expect_eq(v2[i], want2[i], "seq %llu: %d, want %d",
			     (unsigned long long)again[i], v2[i], want2[i]);
	cr_assert_eq(r->top, 2000);
	free(r);
}

Test(replay, accept_each_groups_by_window)
{
	struct eg_replay *a = fresh(64), *b = fresh(64);
	struct eg_replay *win[] = { a, b, NULL, a, b, a };
	uint64_t seq[] = { 10, 10, 10, 10, 11, 300 };
	int v[] = { 9, 9, 9, 9, 9, 9 };
	const int want[] = { 0, 0, 9, -EEXIST, 0, 0 };

	eg_replay_accept_each(win, seq, ARRAY_SIZE(seq), v);
	for (unsigned i = 0; i < ARRAY_SIZE(seq); i++)
		cr_expect_eq(v[i], want[i], "packet %u: %d, want %d", i, v[i], want[i]);
	cr_assert_eq(a->top, 300);
	cr_assert_eq(b->top, 11);
	cr_assert_eq(eg_replay_check(b, 10), -EEXIST);
	free(a);
	free(b);
}

/* A burst must answer as one number at a time would, taken block by block in the order the
 * blocks first appear in the burst (after the numbers already too old), with one difference: a number is too old only against
 * the top from before the burst. So where one at a time said -ERANGE because the burst had
 * itself raised top, the burst may have said 0 or -EEXIST; nothing else may differ, and
 * both windows must end on the same top. */
static void burst_differential(unsigned window, uint64_t seed)
{
	struct eg_replay *r = fresh(window), *one = fresh(window);
	const uint64_t ring = (uint64_t)r->n_blocks * 64;
	uint64_t cur = 1, recent[32] = { 0 }, seq[32];
	unsigned counts[3] = { 0 }, relaxed = 0, n_recent = 0;

	rng_state = seed;
	for (unsigned burst = 0; burst < 6000; burst++) {
		unsigned n = 1 + rnd() % 32, order[32], k = 0;
		int v[32], w;
		bool placed[32] = { false };

		for (unsigned i = 0; i < n; i++) {
			unsigned p = rnd() % 100;

			if (p < 55)
				seq[i] = ++cur;
			else if (p < 70)
				seq[i] = cur - rnd() % (window + window / 2 + 2) % cur;
			else if (p < 85)
				seq[i] = recent[rnd() % 32];
			else if (p < 86)
				seq[i] = cur += 1 + rnd() % (ring + ring / 2 + window);
			else
				seq[i] = cur += 1 + rnd() % 64;
			recent[n_recent++ % 32] = seq[i];
		}
		/* The reference order: what is too old against the top before the burst (either
		 * way the answer is -ERANGE), then block by block, by first appearance. */
		for (unsigned i = 0; i < n; i++)
			if (seq[i] <= one->top && one->top - seq[i] >= window) {
				placed[i] = true;
				order[k++] = i;
			}
		for (unsigned i = 0; i < n; i++)
			for (unsigned j = i; j < n && !(j == i && placed[i]); j++)
				if (!placed[j] && seq[j] >> 6 == seq[i] >> 6) {
					placed[j] = true;
					order[k++] = j;
				}
		eg_replay_accept_burst(r, seq, n, v);
		for (unsigned i = 0; i < n; i++) {
			unsigned j = order[i];

			w = eg_replay_accept(one, seq[j]);
			if (w != v[j]) {
				cr_assert(w == -ERANGE && v[j] != -ERANGE,
					  "window %u seed %llu burst %u: %llu burst %d, one by one %d",
					  window, (unsigned long long)seed, burst,
					  (unsigned long long)seq[j], v[j], w);
				relaxed++;
			}
			counts[v[j] == 0 ? 0 : v[j] == -EEXIST ? 1 : 2]++;
		}
		cr_assert_eq(r->top, one->top, "window %u burst %u", window, burst);
	}
	cr_log_info("window %u: %u new, %u replays, %u too old, %u decided on the old top",
		    window, counts[0], counts[1], counts[2], relaxed);
	cr_assert(counts[0] > 1000 && counts[1] > 1000 && counts[2] > 100);
	free(r);
	free(one);
}

Test(replay, burst_differential)
{
	for (unsigned i = 0; i < ARRAY_SIZE(diff_windows); i++)
		burst_differential(diff_windows[i], 0x51ed270b27a4d3c1ULL * (i + 1));
}

/* ---- concurrency ----------------------------------------------------------------------- */

enum { THREADS = 4, COPIES = 3, CONC_NUMBERS = 250000, MAX_RACE_BURST = 32 };

struct race {
	struct eg_replay *r;
	const uint64_t *sched;
	size_t n_sched, cursor;
	unsigned burst;			/* numbers a racer takes at once */
	uint32_t *n_new, *n_dup, *n_old;
	unsigned broken;		/* check() said no, accept() then said yes */
	unsigned top_back;		/* top seen going down, or below a number just accepted */
	pthread_barrier_t start;
};

static void *racer(void *arg)
{
	struct race *rc = arg;
	uint64_t last_top = 0;

	pthread_barrier_wait(&rc->start);
	for (;;) {
		size_t i = __atomic_fetch_add(&rc->cursor, rc->burst, __ATOMIC_RELAXED);
		unsigned n = 0;
		uint64_t s[MAX_RACE_BURST];
		int c[MAX_RACE_BURST], a[MAX_RACE_BURST];

		for (; n < rc->burst && i + n < rc->n_sched; n++) {
			s[n] = rc->sched[i + n];
			c[n] = eg_replay_check(rc->r, s[n]);
		}
		if (n == 0)
			break;
		if (rc->burst == 1)
			a[0] = eg_replay_accept(rc->r, s[0]);
		else
			eg_replay_accept_burst(rc->r, s, n, a);
		/* top is an atomic max: it never goes down, and covers what we just recorded. */
		uint64_t top = __atomic_load_n(&rc->r->top, __ATOMIC_ACQUIRE);

		if (top < last_top)
			__atomic_fetch_add(&rc->top_back, 1, __ATOMIC_RELAXED);
		last_top = top;
		for (unsigned k = 0; k < n; k++) {
			uint32_t *count = a[k] == 0 ? rc->n_new : a[k] == -EEXIST ? rc->n_dup : rc->n_old;

			/* A "no" from check() is final: a set bit stays until its block leaves. */
			if (c[k] != 0 && a[k] == 0)
				__atomic_fetch_add(&rc->broken, 1, __ATOMIC_RELAXED);
			if (a[k] == 0 && top < s[k])
				__atomic_fetch_add(&rc->top_back, 1, __ATOMIC_RELAXED);
			__atomic_fetch_add(&count[s[k]], 1, __ATOMIC_RELAXED);
		}
	}
	return NULL;
}

struct keyed { uint64_t key, seq; };

static int by_key(const void *a, const void *b)
{
	const struct keyed *x = a, *y = b;

	return x->key < y->key ? -1 : x->key > y->key;
}

/* Each number appears COPIES times, copies scattered up to spread positions later, so that
 * duplicates and reordered numbers are handed to different threads at the same moment. */
static void run_race(unsigned window, unsigned spread, unsigned burst)
{
	const size_t n_sched = (size_t)CONC_NUMBERS * COPIES;
	struct keyed *k = malloc(n_sched * sizeof(*k));
	uint64_t *sched = malloc(n_sched * sizeof(*sched));
	struct race rc = {
		.r = fresh(window), .sched = sched, .n_sched = n_sched, .burst = burst,
		.n_new = calloc(CONC_NUMBERS, sizeof(uint32_t)),
		.n_dup = calloc(CONC_NUMBERS, sizeof(uint32_t)),
		.n_old = calloc(CONC_NUMBERS, sizeof(uint32_t)),
	};
	pthread_t th[THREADS];
	unsigned accepted = 0;
	uint64_t top;

	cr_assert(k && sched && rc.n_new && rc.n_dup && rc.n_old);
	for (size_t i = 0; i < n_sched; i++)
		k[i] = (struct keyed){ .key = i + rnd() % spread, .seq = i / COPIES };
	qsort(k, n_sched, sizeof(*k), by_key);
	for (size_t i = 0; i < n_sched; i++)
		sched[i] = k[i].seq;

	pthread_barrier_init(&rc.start, NULL, THREADS);
	for (unsigned t = 0; t < THREADS; t++)
		cr_assert_eq(pthread_create(&th[t], NULL, racer, &rc), 0);
	for (unsigned t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	pthread_barrier_destroy(&rc.start);

	/* The highest number can never be too old, so it is always accepted and ends on top. */
	top = rc.r->top;
	cr_assert_eq(top, CONC_NUMBERS - 1, "window %u: top %llu", window, (unsigned long long)top);
	cr_assert_eq(rc.top_back, 0, "window %u: top went back %u times", window, rc.top_back);
	cr_assert_eq(rc.broken, 0, "window %u: accept() took %u numbers check() refused", window,
		     rc.broken);
	for (uint64_t s = 0; s < CONC_NUMBERS; s++) {
		cr_assert_eq(rc.n_new[s] + rc.n_dup[s] + rc.n_old[s], COPIES);
		cr_assert_leq(rc.n_new[s], 1, "window %u: %llu accepted %u times", window,
			      (unsigned long long)s, rc.n_new[s]);
		/* Never accepted: every copy must have been too old, none a "replay". */
		if (rc.n_new[s] == 0)
			cr_assert_eq(rc.n_old[s], COPIES, "window %u: %llu lost (%u replays)", window,
				     (unsigned long long)s, rc.n_dup[s]);
		if (top - s < window)
			cr_assert_eq(rc.n_new[s], 1, "window %u: %llu in the final window, accepted %u",
				     window, (unsigned long long)s, rc.n_new[s]);
		accepted += rc.n_new[s];
	}
	cr_log_info("window %u: %u of %u numbers accepted", window, accepted, CONC_NUMBERS);
	free(rc.n_new);
	free(rc.n_dup);
	free(rc.n_old);
	free(rc.r);
	free(sched);
	free(k);
}

Test(replay, concurrent, .timeout = 30)
{
	rng_state = 7;
	for (unsigned i = 0; i < ARRAY_SIZE(windows); i++) {
		/* Small windows: copies up to twice the window late, so the race also runs at
		 * the edge and on recycled slots. Big ones: a tenth, nearly all accepted. */
		unsigned spread = (windows[i] <= 1024 ? 2 * windows[i] : windows[i] / 10) * COPIES;

		run_race(windows[i], spread, 1);
	}
}

/* The same race with each thread taking a burst of numbers at a time, as workers do. */
Test(replay, concurrent_bursts, .timeout = 30)
{
	rng_state = 11;
	for (unsigned i = 0; i < ARRAY_SIZE(windows); i++) {
		unsigned spread = (windows[i] <= 1024 ? 2 * windows[i] : windows[i] / 10) * COPIES;

		run_race(windows[i], spread, i % 2 ? MAX_RACE_BURST : 8);
	}
}
