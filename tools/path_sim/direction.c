#include "direction.h"

#include <string.h>

void direction_init(struct direction *d, const char *name, uint64_t prng_seed, size_t queue_max)
{
	memset(d, 0, sizeof(*d));
	d->name = name;
	d->prng.state = prng_seed;
	held_queue_init(&d->held, queue_max);
}

static uint64_t hold_time_ns(struct direction *d)
{
	double ms = d->impairment.delay_ms;

	/* Drawn only when jitter is on, so that turning it on does not shift the loss
	 * decisions of a seeded run that never used it. */
	if (d->impairment.jitter_ms > 0)
		ms += (2.0 * prng_unit(&d->prng) - 1.0) * d->impairment.jitter_ms;
	if (ms <= 0)
		return 0;
	return (uint64_t)(ms * 1e6 + 0.5);
}

void direction_accept(struct direction *d, const void *frame, uint32_t len, uint64_t now_ns)
{
	d->counters.in++;
	if (d->impairment.blackhole) {
		d->counters.blackholed++;
		return;
	}
	if (d->impairment.loss_pct > 0 && prng_unit(&d->prng) * 100.0 < d->impairment.loss_pct) {
		d->counters.lost++;
		return;
	}
	/* Undelayed frames go through the queue too, due now: that way they leave after
	 * frames already due but not yet sent, and one path serves every frame. */
	if (!held_queue_push(&d->held, now_ns + hold_time_ns(d), frame, len))
		d->counters.queue_overflow++;
}

void direction_free(struct direction *d)
{
	held_queue_free(&d->held);
}
