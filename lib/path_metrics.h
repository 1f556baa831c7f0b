/* Link-quality measurements of one egress path from its probes (issue 5).
 *
 * A ring of the last `window` probes sent on the path, each answered (with its round-trip
 * time), lost (no answer within the timeout) or still in flight. Statistics cover the
 * settled probes in the window only, so a probe in flight is neither a loss nor a sample:
 *   - RTT minimum, mean, and the 50th and 99th percentiles (nearest rank);
 *   - jitter as RFC 3550 (6.4.1) estimates it, J += (|D| - J) / 16, where D is the
 *     difference between consecutive round-trip times, in the order the probes were sent;
 *   - loss as the percentage of settled probes that were lost.
 * Pure bookkeeping over times the caller passes in: no clock, no I/O, so tests can feed
 * hand-computed sequences. */
#ifndef EG_PATH_METRICS_H
#define EG_PATH_METRICS_H

#include <stdbool.h>
#include <stdint.h>

enum eg_probe_status { EG_PROBE_PENDING = 0, EG_PROBE_ANSWERED, EG_PROBE_LOST };

struct eg_probe_sample {
	uint32_t seq;
	uint8_t status;			/* enum eg_probe_status */
	uint64_t sent_ns;
	uint64_t rtt_ns;		/* when answered */
};

struct eg_path_window {
	unsigned cap;			/* probes kept */
	unsigned n;			/* probes in the ring (<= cap) */
	unsigned next;			/* where the next one goes */
	struct eg_probe_sample *s;
	uint64_t *scratch;		/* cap entries, for sorting round-trip times */
	uint64_t sent;			/* totals since init */
	uint64_t answered, lost, late;	/* late: answers after their probe was settled or evicted */
	uint64_t first_sent_ns, last_sent_ns, last_answer_ns;	/* 0: never */
};

struct eg_path_stats {
	unsigned answered, lost, pending;	/* in the window */
	double rtt_min_ms, rtt_avg_ms, rtt_p50_ms, rtt_p99_ms;	/* 0 when nothing answered */
	double jitter_ms;
	double loss_pct;			/* 0 when nothing settled */
};

/* 0 or -ENOMEM; cap >= 1. */
int eg_path_window_init(struct eg_path_window *w, unsigned cap);
void eg_path_window_free(struct eg_path_window *w);
/* Forgets every probe and total, keeping the capacity. */
void eg_path_window_reset(struct eg_path_window *w);

/* A probe went out: it joins the ring, evicting the oldest when the ring is full. */
void eg_path_probe_sent(struct eg_path_window *w, uint32_t seq, uint64_t sent_ns);

/* Its answer arrived with this round-trip time. False when no probe with that sequence
 * number is in flight (duplicate, late after its timeout, or never sent): not a sample. */
bool eg_path_probe_answered(struct eg_path_window *w, uint32_t seq, uint64_t rtt_ns, uint64_t now_ns);

/* Probes in flight for longer than timeout_ns become losses. */
void eg_path_expire(struct eg_path_window *w, uint64_t now_ns, uint64_t timeout_ns);

void eg_path_window_stats(const struct eg_path_window *w, struct eg_path_stats *out);

/* How long the path has gone without an answer: since the last answer, or since the first
 * probe when none ever came; 0 before the first probe. */
uint64_t eg_path_silence_ns(const struct eg_path_window *w, uint64_t now_ns);

#endif
