/* Path metrics against hand-computed tables: RTT minimum, mean and nearest-rank
 * percentiles, RFC 3550 jitter, loss over a sliding window, silence. */
#include <criterion/criterion.h>

#include "path_metrics.h"

#define MS 1000000ull

static struct eg_path_window w;

static void setup(void) {}
static void teardown(void)
{
	eg_path_window_free(&w);
}

TestSuite(path_metrics, .init = setup, .fini = teardown);

/* Sends seq 1..n every 100 ms; rtt_ms[i] < 0 leaves probe i+1 unanswered. */
static void run(const double *rtt_ms, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint64_t sent = (uint64_t)(i + 1) * 100 * MS;

		eg_path_probe_sent(&w, i + 1, sent);
		if (rtt_ms[i] >= 0)
			cr_assert(eg_path_probe_answered(&w, i + 1, (uint64_t)(rtt_ms[i] * MS), sent + 1));
	}
}

Test(path_metrics, a_window_of_five_keeps_the_last_five_probes)
{
	/* seq 1 falls out of the window; seq 3 times out; seq 6 is still in flight:
	 * answered 14, 12, 20 -> min 12, mean 46/3, p50 (rank 2 of 3) 14, p99 (rank 3) 20;
	 * jitter 0 -> 0 + (2 - 0)/16 = 0.125 -> 0.125 + (8 - 0.125)/16 = 0.6171875;
	 * loss 1 of 4 settled = 25 %. */
	const double rtt[] = {10, 14, -1, 12, 20, -1};
	struct eg_path_stats s;

	cr_assert_eq(eg_path_window_init(&w, 5), 0);
	run(rtt, 6);
	eg_path_expire(&w, 350 * MS, 250 * MS);	/* seq 3 went at 300 ms: not yet */
	eg_path_window_stats(&w, &s);
	cr_expect_eq(s.pending, 2, "seq 3 not yet timed out at 350 ms: %u", s.pending);
	eg_path_expire(&w, 560 * MS, 250 * MS);
	eg_path_window_stats(&w, &s);
	cr_expect_eq(s.answered, 3);
	cr_expect_eq(s.lost, 1);
	cr_expect_eq(s.pending, 1);
	cr_expect_float_eq(s.rtt_min_ms, 12, 1e-9);
	cr_expect_float_eq(s.rtt_avg_ms, 46.0 / 3, 1e-9);
	cr_expect_float_eq(s.rtt_p50_ms, 14, 1e-9);
	cr_expect_float_eq(s.rtt_p99_ms, 20, 1e-9);
	cr_expect_float_eq(s.jitter_ms, 0.6171875, 1e-9);
	cr_expect_float_eq(s.loss_pct, 25, 1e-9);
	cr_expect_eq(w.sent, 6);
	cr_expect_eq(w.lost, 1);
}

Test(path_metrics, jitter_follows_rfc3550_over_consecutive_round_trips)
{
	/* D = 10, 10, 30: J = 0.625, 0.625 + 9.375/16 = 1.2109375,
	 * 1.2109375 + 28.7890625/16 = 3.01025390625. A lost probe in between does not
	 * reset the estimate: D is taken between answered probes. */
	const double rtt[] = {100, 110, -1, 100, 130};
	struct eg_path_stats s;

	cr_assert_eq(eg_path_window_init(&w, 16), 0);
	run(rtt, 5);
	eg_path_expire(&w, 10000 * MS, 1000 * MS);
	eg_path_window_stats(&w, &s);
	cr_expect_float_eq(s.jitter_ms, 3.01025390625, 1e-9);
	cr_expect_float_eq(s.loss_pct, 20, 1e-9);
	cr_expect_float_eq(s.rtt_avg_ms, 110, 1e-9);
}

Test(path_metrics, nearest_rank_percentiles)
{
	static const struct {
		unsigned n;
		double p50, p99;
	} table[] = {
		{1, 1, 1},	/* one sample is every percentile */
		{2, 1, 2},	/* rank ceil(1.0) = 1, ceil(1.98) = 2 */
		{10, 5, 10},	/* ceil(5) = 5, ceil(9.9) = 10 */
		{100, 50, 99},	/* ceil(50), ceil(99) */
		{101, 51, 100},	/* ceil(50.5) = 51, ceil(99.99) = 100 */
	};

	for (unsigned t = 0; t < sizeof(table) / sizeof(table[0]); t++) {
		double rtt[128];
		struct eg_path_stats s;

		/* Sent in descending order, so sorting is exercised. */
		for (unsigned i = 0; i < table[t].n; i++)
			rtt[i] = table[t].n - i;
		cr_assert_eq(eg_path_window_init(&w, 128), 0);
		run(rtt, table[t].n);
		eg_path_window_stats(&w, &s);
		cr_expect_float_eq(s.rtt_p50_ms, table[t].p50, 1e-9, "n=%u p50 %f", table[t].n, s.rtt_p50_ms);
		cr_expect_float_eq(s.rtt_p99_ms, table[t].p99, 1e-9, "n=%u p99 %f", table[t].n, s.rtt_p99_ms);
		cr_expect_float_eq(s.rtt_min_ms, 1, 1e-9);
		cr_expect_float_eq(s.rtt_avg_ms, (table[t].n + 1) / 2.0, 1e-9);
		eg_path_window_free(&w);
	}
}

Test(path_metrics, duplicate_late_and_unknown_answers_are_not_samples)
{
	struct eg_path_stats s;

	cr_assert_eq(eg_path_window_init(&w, 4), 0);
	eg_path_probe_sent(&w, 7, 100 * MS);
	cr_expect(eg_path_probe_answered(&w, 7, 5 * MS, 105 * MS));
	cr_expect_not(eg_path_probe_answered(&w, 7, 6 * MS, 106 * MS), "duplicate");
	cr_expect_not(eg_path_probe_answered(&w, 99, 6 * MS, 106 * MS), "never sent");
	eg_path_probe_sent(&w, 8, 200 * MS);
	eg_path_expire(&w, 1300 * MS, 1000 * MS);
	cr_expect_not(eg_path_probe_answered(&w, 8, 1200 * MS, 1400 * MS), "after its timeout");
	eg_path_window_stats(&w, &s);
	cr_expect_eq(s.answered, 1);
	cr_expect_eq(s.lost, 1);
	cr_expect_eq(w.late, 3);
	cr_expect_float_eq(s.rtt_avg_ms, 5, 1e-9);
	cr_expect_float_eq(s.loss_pct, 50, 1e-9);
}

Test(path_metrics, silence_counts_from_the_last_answer_or_the_first_probe)
{
	cr_assert_eq(eg_path_window_init(&w, 4), 0);
	cr_expect_eq(eg_path_silence_ns(&w, 5000 * MS), 0, "nothing sent yet");
	eg_path_probe_sent(&w, 1, 1000 * MS);
	eg_path_probe_sent(&w, 2, 1100 * MS);
	cr_expect_eq(eg_path_silence_ns(&w, 1500 * MS), 500 * MS);
	cr_expect(eg_path_probe_answered(&w, 2, 100 * MS, 1200 * MS));
	cr_expect_eq(eg_path_silence_ns(&w, 1500 * MS), 300 * MS);
}

Test(path_metrics, an_empty_window_reports_zeros)
{
	struct eg_path_stats s;

	cr_assert_eq(eg_path_window_init(&w, 4), 0);
	eg_path_window_stats(&w, &s);
	cr_expect_eq(s.answered + s.lost + s.pending, 0);
	cr_expect_float_eq(s.loss_pct, 0, 1e-12);
	cr_expect_float_eq(s.rtt_p99_ms, 0, 1e-12);
}
