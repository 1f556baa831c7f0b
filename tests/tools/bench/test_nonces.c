/* egress-bench --check's nonce log (tools/bench/nonces.c): a nonce sealed twice under one
 * tunnel's key is found, on one worker or across workers, and counted once per extra use;
 * the same number on different tunnels is not a repeat; what could not be logged fails
 * the check rather than passing unseen. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include "nonces.h"

TestSuite(nonces, .init = cr_redirect_stderr);

static void logs(struct bench_nonces *l, unsigned lanes, size_t cap)
{
	for (unsigned i = 0; i < lanes; i++)
		cr_assert_eq(bench_nonces_init(&l[i], cap), 0);
}

Test(nonces, blocks_handed_out_apart_pass)
{
	struct bench_nonces l[2];

	logs(l, 2, 64);
	/* two workers taking blocks of one SA's numbers, and the same numbers on another */
	for (uint64_t n = 1; n <= 16; n++) {
		bench_nonces_add(&l[n > 8], 0, n);
		bench_nonces_add(&l[0], 5, n);
	}
	cr_assert_eq(bench_nonces_repeats(l, 2, "test"), 0);
	cr_assert_null(l[0].v);
	cr_assert_null(l[1].v);
}

Test(nonces, a_repeat_on_one_worker_is_found)
{
	struct bench_nonces l[1];

	logs(l, 1, 16);
	bench_nonces_add(&l[0], 3, 41);
	bench_nonces_add(&l[0], 3, 42);
	bench_nonces_add(&l[0], 3, 41);
	cr_assert_eq(bench_nonces_repeats(l, 1, "test"), 1);
	fflush(stderr);
	cr_assert_stderr_eq_str("egress-bench: test: tunnel 3 used nonce 41 again\n");
}

Test(nonces, overlapping_blocks_across_workers_are_counted_per_extra_use)
{
	struct bench_nonces l[3];

	logs(l, 3, 64);
	/* blocks 1..32 and 25..40: eight numbers twice; 30 a third time on the third */
	for (uint64_t n = 1; n <= 32; n++)
		bench_nonces_add(&l[0], 0, n);
	for (uint64_t n = 25; n <= 40; n++)
		bench_nonces_add(&l[1], 0, n);
	bench_nonces_add(&l[2], 0, 30);
	cr_assert_eq(bench_nonces_repeats(l, 3, "test"), 9);
}

Test(nonces, what_could_not_be_logged_fails)
{
	struct bench_nonces l[1];

	logs(l, 1, 2);
	bench_nonces_add(&l[0], 0, 1);
	bench_nonces_add(&l[0], 0, 2);
	bench_nonces_add(&l[0], 0, 3);		/* past the room */
	bench_nonces_add(&l[0], 0, UINT64_C(1) << 48);	/* too wide to log */
	cr_assert_eq(bench_nonces_repeats(l, 1, "test"), 2);
}
