/* egressctl top: rates per port, egress and worker, drops by reason, and each egress's
 * path quality, redrawn every interval (one second by default) until ^C or -n frames.
 * Rates are the difference of two stats.get/egress.list samples over the time between
 * them, so the first frame comes one interval after the start. On a terminal each frame
 * replaces the last; into a pipe, frames follow each other. */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "egressctl.h"

struct sample {
	json_t *stats, *egress_list, *status;
	const json_t *egresses;		/* in egress_list */
	double t;			/* CLOCK_MONOTONIC seconds */
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void take(struct ctl *c, struct sample *s)
{
	s->status = rpc_call(c, "status", NULL);
	s->stats = rpc_call(c, "stats.get", NULL);
	s->egress_list = rpc_call(c, "egress.list", NULL);
	s->egresses = json_object_get(s->egress_list, "egresses");
	s->t = now_s();
}

static void drop_sample(struct sample *s)
{
	json_decref(s->status);
	json_decref(s->stats);
	json_decref(s->egress_list);
	*s = (struct sample){0};
}

/* The element of array old with the same "name" (or "id") as cur, for its counters. */
static const json_t *same(const json_t *old, const json_t *cur, const char *key)
{
	const json_t *o, *k = json_object_get(cur, key);
	size_t i;

	json_array_foreach(old, i, o)
		if (json_equal(json_object_get(o, key), k))
			return o;
	return NULL;
}

static double rate(const json_t *cur, const json_t *old, const char *key, double dt)
{
	json_int_t a = json_integer_value(json_object_get(cur, key));
	json_int_t b = json_integer_value(json_object_get(old, key));

	if (!old || dt <= 0 || a < b)		/* new, or counters restarted with the dataplane */
		return 0;
	return (double)(a - b) / dt;
}

static char *num(double v, const char *fmt)
{
	char *s;

	if (asprintf(&s, fmt, v) < 0)
		die(EXIT_LOCAL, "out of memory");
	return s;
}

/* Packets per second as a compact figure: 950, 12.3k, 1.48M. */
static char *pps(double v)
{
	return v >= 1e6 ? num(v / 1e6, "%.2fM") : v >= 1e4 ? num(v / 1e3, "%.1fk") : num(v, "%.0f");
}

static char *mbps(double bytes_per_s)
{
	return num(bytes_per_s * 8 / 1e6, "%.2f");
}

static char *metric(const json_t *path, const char *key, const char *sub)
{
	const json_t *v = json_object_get(path, key);

	if (sub)
		v = json_object_get(v, sub);
	return json_is_number(v) ? num(json_number_value(v), "%.1f") : strdup("-");
}

static void frame(const struct sample *cur, const struct sample *old, bool tty)
{
	static const char *const port_head[] = {"PORT", "ROLE", "LINK", "RX_PPS", "RX_MBPS", "TX_PPS", "TX_MBPS",
						"DROPS/S"};
	static const char *const egress_head[] = {"EGRESS", "TYPE", "STATE", "TX_PPS", "TX_MBPS", "RTT_MS",
						  "P99_MS", "JITTER_MS", "LOSS_%"};
	static const char *const worker_head[] = {"WORKER", "LCORE", "BUSY_%", "RX_PPS", "TX_PPS", "DROPS/S"};
	const json_t *st = cur->status, *dp = json_object_get(st, "dataplane");
	double dt = cur->t - old->t;
	const json_t *e, *o;
	struct table t;
	char stamp[32];
	time_t wall = time(NULL);
	struct tm tm;
	size_t i;

	localtime_r(&wall, &tm);
	strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
	if (tty)
		fputs("\033[H\033[2J", stdout);
	printf("egress %s  %s  generation %" JSON_INTEGER_FORMAT "  dataplane %s  (every %.1f s, ^C quits)\n\n",
	       json_string_value(json_object_get(st, "instance")) ?: "?", stamp,
	       json_integer_value(json_object_get(st, "generation")),
	       json_is_true(json_object_get(dp, "attached")) ? "attached" : "NOT ATTACHED", dt);

	table_init(&t, "lllrrrrr", port_head);
	json_array_foreach(json_object_get(cur->stats, "ports"), i, e) {
		o = same(json_object_get(old->stats, "ports"), e, "name");
		table_add(&t, cell(json_object_get(e, "name")));
		table_add(&t, cell(json_object_get(e, "role")));
		table_add(&t, cell(json_object_get(e, "link")));
		table_add(&t, pps(rate(e, o, "rx_packets", dt)));
		table_add(&t, mbps(rate(e, o, "rx_bytes", dt)));
		table_add(&t, pps(rate(e, o, "tx_packets", dt)));
		table_add(&t, mbps(rate(e, o, "tx_bytes", dt)));
		table_add(&t, pps(rate(e, o, "drops", dt)));
	}
	table_print(&t);
	putchar('\n');

	table_init(&t, "lllrrrrrr", egress_head);
	json_array_foreach(cur->egresses, i, e) {
		const json_t *path = json_object_get(e, "metrics");

		o = same(old->egresses, e, "name");
		table_add(&t, cell(json_object_get(e, "name")));
		table_add(&t, cell(json_object_get(e, "type")));
		table_add(&t, cell(json_object_get(e, "state")));
		table_add(&t, pps(rate(e, o, "tx_packets", dt)));
		table_add(&t, mbps(rate(e, o, "tx_bytes", dt)));
		table_add(&t, metric(path, "rtt_ms", "avg"));
		table_add(&t, metric(path, "rtt_ms", "p99"));
		table_add(&t, metric(path, "jitter_ms", NULL));
		table_add(&t, metric(path, "loss_pct", NULL));
	}
	table_print(&t);
	putchar('\n');

	table_init(&t, "rrrrrr", worker_head);
	json_array_foreach(json_object_get(cur->stats, "workers"), i, e) {
		double busy, idle;

		o = same(json_object_get(old->stats, "workers"), e, "id");
		busy = rate(e, o, "busy_loops", dt);
		idle = rate(e, o, "idle_loops", dt);
		table_add(&t, cell(json_object_get(e, "id")));
		table_add(&t, cell(json_object_get(e, "lcore")));
		/* Share of loops that found packets: with idle backoff, a rough load figure. */
		table_add(&t, num(busy + idle > 0 ? 100 * busy / (busy + idle) : 0, "%.1f"));
		table_add(&t, pps(rate(e, o, "rx_packets", dt)));
		table_add(&t, pps(rate(e, o, "tx_packets", dt)));
		table_add(&t, pps(rate(e, o, "drops", dt)));
	}
	table_print(&t);

	/* Only the reasons that counted something in this interval. */
	const json_t *drops = json_object_get(cur->stats, "drops"), *old_drops = json_object_get(old->stats, "drops");
	const char *reason;
	bool any = false;

	json_object_foreach((json_t *)drops, reason, e) {
		json_int_t d = json_integer_value(e) - json_integer_value(json_object_get(old_drops, reason));

		if (d <= 0 || dt <= 0)
			continue;
		printf("%s %s %.0f/s", any ? "," : "\ndrops:", reason, (double)d / dt);
		any = true;
	}
	printf(any ? "\n" : "\ndrops: none\n");
	if (!tty)
		puts("--");
	fflush(stdout);
}

int cmd_top(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"iterations", required_argument, NULL, 'n'},
		{"interval", required_argument, NULL, 'i'},
		{NULL, 0, NULL, 0},
	};
	struct sigaction sa = {.sa_handler = SIG_DFL};
	struct sample old = {0}, cur = {0};
	unsigned long frames = 0, interval_ms = 1000, v;
	bool tty = isatty(STDOUT_FILENO);
	int opt;

	optind = 0;
	while ((opt = getopt_long(argc + 1, argv - 1, "n:i:", opts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			if (!parse_uint(optarg, 1000000, &frames) || frames == 0)
				die(EXIT_LOCAL, "-n wants a positive number of frames");
			break;
		case 'i':
			if (!parse_uint(optarg, 3600, &v) || v == 0)
				die(EXIT_LOCAL, "-i wants whole seconds, 1 to 3600");
			interval_ms = v * 1000;
			break;
		default:
			return -1;
		}
	}
	if (optind != argc + 1)
		return -1;
	/* ^C ends top as it ends any viewer: the default action, nothing to clean up. */
	sigaction(SIGINT, &sa, NULL);
	take(c, &old);
	for (unsigned long n = 0; !frames || n < frames; n++) {
		struct timespec ts = {.tv_sec = (time_t)(interval_ms / 1000), .tv_nsec = (long)(interval_ms % 1000) * 1000000};

		nanosleep(&ts, NULL);
		take(c, &cur);
		frame(&cur, &old, tty);
		drop_sample(&old);
		old = cur;
		cur = (struct sample){0};
	}
	drop_sample(&old);
	return 0;
}
