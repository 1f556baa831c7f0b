/* egress-bench --check's nonce log (tools/bench/nonces.c): a nonce sealed twice under one
 * tunnel's key is found, on one worker or across workers, and counted once per extra use;
 * the same number on different tunnels is not a repeat; runs of numbers take one entry;
 * what could not be logged fails the check rather than passing unseen. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include "nonces.h"

TestSuite(nonces, .init = cr_redirect_stderr);

static void logs(struct bench_nonces *l, unsigned lanes)
{
	for (unsigned i = 0; i < lanes; i++)
		cr_assert_eq(bench_nonces_init(&l[i]), 0);
}

Test(nonces, blocks_handed_out_apart_pass)
{
	struct bench_nonces l[2];

	logs(l, 2);
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

	logs(l, 1);
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

	logs(l, 3);
	/* blocks 1..32 and 25..40: eight numbers twice; 30 a third time on the third */
	for (uint64_t n = 1; n <= 32; n++)
		bench_nonces_add(&l[0], 0, n);
	for (uint64_t n = 25; n <= 40; n++)
		bench_nonces_add(&l[1], 0, n);
	bench_nonces_add(&l[2], 0, 30);
	cr_assert_eq(bench_nonces_repeats(l, 3, "test"), 9);
	fflush(stderr);
	cr_assert_stderr_eq_str("egress-bench: test: tunnel 0 used nonces 25-32 again\n"
				"egress-bench: test: tunnel 0 used nonce 30 again\n");
}

Test(nonces, every_extra_use_counts_however_the_runs_nest)
{
	struct bench_nonces l[4];

	logs(l, 4);
	/* 1..10 on the first; 5..6 on the second; 5..12 on the third; 6 again on the last:
	 * 5 three times, 6 four times, 7..10 twice */
	for (uint64_t n = 1; n <= 10; n++)
		bench_nonces_add(&l[0], 7, n);
	bench_nonces_add(&l[1], 7, 5);
	bench_nonces_add(&l[1], 7, 6);
	for (uint64_t n = 5; n <= 12; n++)
		bench_nonces_add(&l[2], 7, n);
	bench_nonces_add(&l[3], 7, 6);
	cr_assert_eq(bench_nonces_repeats(l, 4, "test"), 2 + 3 + 4);
}

Test(nonces, a_run_takes_one_entry_and_tunnels_interleave)
{
	struct bench_nonces l[1];

	logs(l, 1);
	/* 1000 tunnels, each sealing 1..100 in turn: one entry each */
	for (uint64_t n = 1; n <= 100; n++)
		for (unsigned t = 0; t < 1000; t++)
			bench_nonces_add(&l[0], t, n);
	cr_assert_eq(l[0].n, 1000);
	/* a run longer than an entry can say goes on in the next */
	for (uint64_t n = 1; n <= 40000; n++)
		bench_nonces_add(&l[0], 1000, n);
	cr_assert_eq(l[0].n, 1000 + 3);
	/* a gap (another worker's block) starts a new run */
	bench_nonces_add(&l[0], 1001, 1);
	bench_nonces_add(&l[0], 1001, 3);
	cr_assert_eq(l[0].n, 1000 + 3 + 2);
	bench_nonces_add(&l[0], 7, 100);	/* and a repeat among them is still found */
	cr_assert_eq(bench_nonces_repeats(l, 1, "test"), 1);
}

Test(nonces, what_could_not_be_logged_fails)
{
	struct bench_nonces l[1];

	logs(l, 1);
	bench_nonces_add(&l[0], 0, 1);
	bench_nonces_add(&l[0], 0, UINT64_C(1) << BENCH_NONCE_BITS);	/* too wide to log */
	bench_nonces_add(&l[0], 1u << BENCH_NONCE_TUNNEL_BITS, 1);
	cr_assert_eq(bench_nonces_repeats(l, 1, "test"), 2);
	fflush(stderr);
	cr_assert_stderr_eq_str("egress-bench: test: 2 nonces could not be logged\n");
}
