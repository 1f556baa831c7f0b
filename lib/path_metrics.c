#include "path_metrics.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int eg_path_window_init(struct eg_path_window *w, unsigned cap)
{
	memset(w, 0, sizeof(*w));
	if (cap == 0)
		cap = 1;
	w->s = calloc(cap, sizeof(*w->s));
	w->scratch = calloc(cap, sizeof(*w->scratch));
	if (!w->s || !w->scratch) {
		eg_path_window_free(w);
		return -ENOMEM;
	}
	w->cap = cap;
	return 0;
}

void eg_path_window_free(struct eg_path_window *w)
{
	free(w->s);
	free(w->scratch);
	memset(w, 0, sizeof(*w));
}

void eg_path_window_reset(struct eg_path_window *w)
{
	*w = (struct eg_path_window){.cap = w->cap, .s = w->s, .scratch = w->scratch};
}

/* The i-th oldest probe in the ring. */
static struct eg_probe_sample *nth(const struct eg_path_window *w, unsigned i)
{
	return &w->s[(w->next + w->cap - w->n + i) % w->cap];
}

void eg_path_probe_sent(struct eg_path_window *w, uint32_t seq, uint64_t sent_ns)
{
	struct eg_probe_sample *s = &w->s[w->next];

	*s = (struct eg_probe_sample){.seq = seq, .status = EG_PROBE_PENDING, .sent_ns = sent_ns};
	w->next = (w->next + 1) % w->cap;
	if (w->n < w->cap)
		w->n++;
	if (!w->first_sent_ns)
		w->first_sent_ns = sent_ns ? sent_ns : 1;
	w->last_sent_ns = sent_ns ? sent_ns : 1;
	w->sent++;
}

bool eg_path_probe_answered(struct eg_path_window *w, uint32_t seq, uint64_t rtt_ns, uint64_t now_ns)
{
	/* Answers come back in order almost always: search from the newest. */
	for (unsigned i = w->n; i-- > 0;) {
		struct eg_probe_sample *s = nth(w, i);

		if (s->seq != seq)
			continue;
		if (s->status != EG_PROBE_PENDING)
			break;
		s->status = EG_PROBE_ANSWERED;
		s->rtt_ns = rtt_ns;
		w->answered++;
		w->last_answer_ns = now_ns ? now_ns : 1;
		return true;
	}
	w->late++;
	return false;
}

void eg_path_expire(struct eg_path_window *w, uint64_t now_ns, uint64_t timeout_ns)
{
	for (unsigned i = 0; i < w->n; i++) {
		struct eg_probe_sample *s = nth(w, i);

		if (s->status == EG_PROBE_PENDING && now_ns >= s->sent_ns + timeout_ns) {
			s->status = EG_PROBE_LOST;
			w->lost++;
		}
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of n sorted values: the smallest value with at least p% of
 * the values at or below it. */
static uint64_t percentile(const uint64_t *sorted, unsigned n, double p)
{
	unsigned rank = (unsigned)ceil(p / 100.0 * n);

	return sorted[rank ? rank - 1 : 0];
}

void eg_path_window_stats(const struct eg_path_window *w, struct eg_path_stats *out)
{
	uint64_t *rtt = w->scratch;
	double sum = 0, jitter = 0;
	uint64_t prev = 0;
	bool have_prev = false;

	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < w->n; i++) {
		const struct eg_probe_sample *s = nth(w, i);

		if (s->status == EG_PROBE_PENDING) {
			out->pending++;
		} else if (s->status == EG_PROBE_LOST) {
			out->lost++;
		} else {
			if (have_prev) {
				double d = fabs((double)s->rtt_ns - (double)prev);

				jitter += (d - jitter) / 16.0;
			}
			prev = s->rtt_ns;
			have_prev = true;
			sum += (double)s->rtt_ns;
			rtt[out->answered] = s->rtt_ns;
			out->answered++;
		}
	}
	if (out->answered + out->lost)
		out->loss_pct = 100.0 * out->lost / (out->answered + out->lost);
	out->jitter_ms = jitter / 1e6;
	if (out->answered) {
		out->rtt_avg_ms = sum / out->answered / 1e6;
		qsort(rtt, out->answered, sizeof(*rtt), cmp_u64);
		out->rtt_min_ms = (double)rtt[0] / 1e6;
		out->rtt_p50_ms = (double)percentile(rtt, out->answered, 50) / 1e6;
		out->rtt_p99_ms = (double)percentile(rtt, out->answered, 99) / 1e6;
	}
}

uint64_t eg_path_silence_ns(const struct eg_path_window *w, uint64_t now_ns)
{
	uint64_t since = w->last_answer_ns ? w->last_answer_ns : w->first_sent_ns;

	return since && now_ns > since ? now_ns - since : 0;
}
