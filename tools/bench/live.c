/* egress-bench --live: what a running dataplane forwards while something else makes the
 * traffic (pktgen-dpdk or dpdk-testpmd over net_memif, or a generator on real NICs). It maps
 * the instance's shared-memory segment read-only and takes differences of the workers'
 * counters between samples: no EAL, no control socket, nothing written into the segment,
 * so the dataplane runs as it would without it.
 *
 *   egress-bench --live INSTANCE [--seconds N] [--interval SECONDS] [--json FILE|-]
 *
 * Every interval (1 s by default) one line per port: packet and bit rates each way and
 * drops per second. After --seconds (10 by default; SIGINT or SIGTERM ends the window
 * early) a summary of the whole window: per port packets and average rates, drops by
 * reason, and per worker the share of its loops that found work and its rates. Bit rates
 * count frame bytes as the ports received and sent them, without preamble, gap and CRC
 * (24 bytes a frame more on a wire).
 *
 * A sample reads each counter once while the workers go on counting, so it is not one
 * instant: a burst counted as received but not yet as sent when a sample is taken shows up
 * as sent in the next interval, up to one burst per worker.
 *
 * Exit 1 when the dataplane restarted or went away during the window (the differences
 * would mix two runs' counters), 2 for bad usage or when there is no segment to read. */
#include "live.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "drop_reasons.h"
#include "shm.h"

#define LIVE_MAX_SECONDS 86400.0
#define LIVE_MIN_INTERVAL 0.1		/* below this the samples measure the sampling */
#define LIVE_STALE_HEARTBEAT_NS 2000000000ull	/* the service loop beats at least every 0.5 ms */

enum {
	LIVE_EXIT_CHANGED = 1,
	LIVE_EXIT_LOCAL = 2,
};

struct worker_sample {
	uint64_t lcore, busy_loops, idle_loops, rx_packets, tx_packets, drops;
};

struct sample {
	uint64_t ns;				/* CLOCK_MONOTONIC, as eg_now_ns */
	struct eg_port_counters port[EG_MAX_PORTS];
	uint64_t drop[EG_DROP_MAX];
	struct worker_sample worker[EG_MAX_WORKERS];
};

struct port_rates {
	double rx_mpps, tx_mpps, rx_gbps, tx_gbps, drops_per_s;
};

/* One run: the segment it reads, what it found there at the start, where it reports. */
struct live {
	const char *instance;
	struct eg_shm_map map;
	const struct eg_shm_hdr *h;
	unsigned n_ports, n_workers;
	char port_name[EG_MAX_PORTS][EG_NAME_LEN];
	const char *port_role[EG_MAX_PORTS];
	uint64_t epoch;
	int dp_pid;
	FILE *out;				/* the tables: stderr when the JSON goes to stdout */
	json_t *intervals;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

void bench_live_usage(FILE *f, const char *lead)
{
	fprintf(f, "%s egress-bench --live INSTANCE [--seconds N] [--interval SECONDS] [--json FILE|-]\n"
		   "  live: rates of the running dataplane of INSTANCE, read from its shared memory\n"
		   "  (/dev/shm/egress-INSTANCE) while an external generator drives it: per port every\n"
		   "  --interval (default 1 s, at least %.1f), a summary after --seconds (default 10,\n"
		   "  at most %.0f); exit 1 if the dataplane restarted meanwhile\n",
		lead, LIVE_MIN_INTERVAL, LIVE_MAX_SECONDS);
}

bool bench_live_wanted(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--live") == 0 || strncmp(argv[i], "--live=", 7) == 0)
			return true;
	}
	return false;
}

/* The value of option --opt: seconds between LIVE_MIN_INTERVAL and LIVE_MAX_SECONDS, or
 * false after saying what is wrong with it. */
static bool parse_seconds(const char *opt, const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < LIVE_MIN_INTERVAL || v > LIVE_MAX_SECONDS) {
		fprintf(stderr, "egress-bench: --%s %s: want seconds from %.1f to %.0f\n", opt, s, LIVE_MIN_INTERVAL,
			LIVE_MAX_SECONDS);
		return false;
	}
	*out = v;
	return true;
}

/* The config's rule for instance names, so that a typo is named as one and not looked up. */
static bool valid_instance(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n < EG_NAME_LEN &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

static uint64_t load(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void take(const struct live *l, struct sample *s)
{
	s->ns = eg_now_ns();
	for (unsigned p = 0; p < l->n_ports; p++)
		eg_shm_port_sum(l->h, p, &s->port[p]);
	eg_shm_drops_sum(l->h, s->drop);
	for (unsigned w = 0; w < l->n_workers; w++) {
		const struct eg_worker_shm *ws = eg_shm_worker(l->h, w);

		s->worker[w] = (struct worker_sample){
			.lcore = load(&ws->lcore),
			.busy_loops = load(&ws->busy_loops),
			.idle_loops = load(&ws->idle_loops),
			.rx_packets = load(&ws->rx_packets),
			.tx_packets = load(&ws->tx_packets),
			.drops = load(&ws->drops),
		};
	}
}

/* Counters only grow within one segment: a smaller later value must not become a huge
 * unsigned difference. */
static uint64_t delta(uint64_t before, uint64_t after)
{
	return after > before ? after - before : 0;
}

static double per_s(uint64_t n, uint64_t ns)
{
	return ns ? (double)n * 1e9 / (double)ns : 0;
}

static struct port_rates port_rates(const struct eg_port_counters *a, const struct eg_port_counters *b,
				    uint64_t ns)
{
	return (struct port_rates){
		.rx_mpps = per_s(delta(a->rx_packets, b->rx_packets), ns) / 1e6,
		.tx_mpps = per_s(delta(a->tx_packets, b->tx_packets), ns) / 1e6,
		.rx_gbps = per_s(delta(a->rx_bytes, b->rx_bytes), ns) * 8 / 1e9,
		.tx_gbps = per_s(delta(a->tx_bytes, b->tx_bytes), ns) * 8 / 1e9,
		.drops_per_s = per_s(delta(a->drops, b->drops), ns),
	};
}

/* Whether the samples from here on would come from another dataplane than the first one;
 * why says which way. */
static bool changed(const struct live *l, char *why, size_t len)
{
	struct eg_shm_map now;

	if (eg_shm_replaced(&l->map)) {
		if (eg_shm_attach_readonly(l->map.name, &now) == 0) {
			snprintf(why, len, "the dataplane restarted: %s was re-created (pid %d, epoch %016llx; was pid %d, "
				 "epoch %016llx)", l->map.name, now.hdr->dp_pid, (unsigned long long)now.hdr->epoch,
				 l->dp_pid, (unsigned long long)l->epoch);
			eg_shm_detach(&now);
		} else {
			snprintf(why, len, "the dataplane (pid %d) stopped: %s was removed", l->dp_pid, l->map.name);
		}
		return true;
	}
	/* Our mapping keeps the old segment alive, so its epoch is the one we started with
	 * unless something rewrote the header in place. */
	if (l->h->epoch != l->epoch) {
		snprintf(why, len, "the epoch of %s changed (%016llx, was %016llx)", l->map.name,
			 (unsigned long long)l->h->epoch, (unsigned long long)l->epoch);
		return true;
	}
	/* SIGKILL leaves the segment behind, unchanged. */
	if (kill(l->dp_pid, 0) != 0 && errno == ESRCH) {
		snprintf(why, len, "the dataplane (pid %d) is gone", l->dp_pid);
		return true;
	}
	return false;
}

static void print_interval(struct live *l, const struct sample *a, const struct sample *b, double t)
{
	uint64_t ns = b->ns - a->ns;
	json_t *ports = json_array();

	for (unsigned p = 0; p < l->n_ports; p++) {
		struct port_rates r = port_rates(&a->port[p], &b->port[p], ns);

		fprintf(l->out, "%8.1f  %-15s %9.3f %9.3f %10.3f %10.3f %12.0f\n", t, l->port_name[p], r.rx_mpps,
			r.tx_mpps, r.rx_gbps, r.tx_gbps, r.drops_per_s);
		json_array_append_new(ports, json_pack("{s:s,s:f,s:f,s:f,s:f,s:f}", "name", l->port_name[p], "rx_mpps",
						       r.rx_mpps, "tx_mpps", r.tx_mpps, "rx_gbps", r.rx_gbps,
						       "tx_gbps", r.tx_gbps, "drops_per_s", r.drops_per_s));
	}
	fflush(l->out);
	json_array_append_new(l->intervals,
			      json_pack("{s:f,s:f,s:o}", "t", t, "seconds", (double)ns / 1e9, "ports", ports));
}

/* Prints the summary of the window from a to b and returns it as the JSON document. */
static json_t *summary(struct live *l, const struct sample *a, const struct sample *b, double interval,
		       bool interrupted)
{
	uint64_t ns = b->ns - a->ns, total = 0;
	json_t *ports = json_array(), *drops = json_object(), *workers = json_array();

	fprintf(l->out, "\nsummary: %.2f s%s; instance %s, dataplane pid %d, epoch %016llx, %u worker(s)\n",
		(double)ns / 1e9, interrupted ? " (ended early by a signal)" : "", l->instance, l->dp_pid,
		(unsigned long long)l->epoch, l->n_workers);
	fprintf(l->out, "%-15s %-7s %13s %13s %9s %9s %10s %10s %12s\n", "PORT", "ROLE", "RX_PACKETS", "TX_PACKETS",
		"RX_MPPS", "TX_MPPS", "RX_GBIT/S", "TX_GBIT/S", "DROPS");
	for (unsigned p = 0; p < l->n_ports; p++) {
		const struct eg_port_counters *x = &a->port[p], *y = &b->port[p];
		struct port_rates r = port_rates(x, y, ns);
		uint64_t rx = delta(x->rx_packets, y->rx_packets), tx = delta(x->tx_packets, y->tx_packets);
		uint64_t d = delta(x->drops, y->drops);

		fprintf(l->out, "%-15s %-7s %13llu %13llu %9.3f %9.3f %10.3f %10.3f %12llu\n", l->port_name[p],
			l->port_role[p], (unsigned long long)rx, (unsigned long long)tx, r.rx_mpps, r.tx_mpps,
			r.rx_gbps, r.tx_gbps, (unsigned long long)d);
		json_array_append_new(
			ports, json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:f,s:f,s:f,s:f,s:f}", "name", l->port_name[p],
					 "role", l->port_role[p], "rx_packets", (json_int_t)rx, "tx_packets",
					 (json_int_t)tx, "rx_bytes", (json_int_t)delta(x->rx_bytes, y->rx_bytes),
					 "tx_bytes", (json_int_t)delta(x->tx_bytes, y->tx_bytes), "drops",
					 (json_int_t)d, "rx_mpps", r.rx_mpps, "tx_mpps", r.tx_mpps, "rx_gbps",
					 r.rx_gbps, "tx_gbps", r.tx_gbps, "drops_per_s", r.drops_per_s));
	}

	for (unsigned i = 0; i < EG_DROP_MAX; i++) {
		uint64_t d = delta(a->drop[i], b->drop[i]);

		if (!d)
			continue;
		if (!total)
			fprintf(l->out, "\n%-22s %13s %12s\n", "DROP_REASON", "PACKETS", "PER_S");
		fprintf(l->out, "%-22s %13llu %12.0f\n", eg_drop_names[i], (unsigned long long)d, per_s(d, ns));
		json_object_set_new(drops, eg_drop_names[i], json_integer((json_int_t)d));
		total += d;
	}
	if (!total)
		fprintf(l->out, "\ndrops: none\n");

	fprintf(l->out, "\n%-6s %5s %7s %9s %9s %12s\n", "WORKER", "LCORE", "BUSY_%", "RX_MPPS", "TX_MPPS", "DROPS/S");
	for (unsigned w = 0; w < l->n_workers; w++) {
		const struct worker_sample *x = &a->worker[w], *y = &b->worker[w];
		uint64_t busy = delta(x->busy_loops, y->busy_loops), idle = delta(x->idle_loops, y->idle_loops);
		uint64_t rx = delta(x->rx_packets, y->rx_packets), tx = delta(x->tx_packets, y->tx_packets);
		uint64_t d = delta(x->drops, y->drops);
		char busy_s[16] = "-";
		/* No loops at all in the window: a stalled worker has no busy share, not 0%. */
		json_t *fraction = busy + idle ? json_real((double)busy / (double)(busy + idle)) : json_null();

		if (busy + idle)
			snprintf(busy_s, sizeof(busy_s), "%.1f", 100.0 * (double)busy / (double)(busy + idle));
		fprintf(l->out, "%6u %5llu %7s %9.3f %9.3f %12.0f\n", w, (unsigned long long)y->lcore, busy_s,
			per_s(rx, ns) / 1e6, per_s(tx, ns) / 1e6, per_s(d, ns));
		json_array_append_new(
			workers, json_pack("{s:i,s:I,s:I,s:I,s:o,s:I,s:I,s:I,s:f,s:f,s:f}", "id", (int)w, "lcore",
					   (json_int_t)y->lcore, "busy_loops", (json_int_t)busy, "idle_loops",
					   (json_int_t)idle, "busy_fraction", fraction, "rx_packets", (json_int_t)rx,
					   "tx_packets", (json_int_t)tx, "drops", (json_int_t)d, "rx_mpps",
					   per_s(rx, ns) / 1e6, "tx_mpps", per_s(tx, ns) / 1e6, "drops_per_s",
					   per_s(d, ns)));
	}
	fflush(l->out);

	char epoch[20];

	snprintf(epoch, sizeof(epoch), "%016llx", (unsigned long long)l->epoch);
	return json_pack("{s:s,s:s,s:i,s:s,s:f,s:f,s:b,s:o,s:o,s:I,s:o,s:o}", "instance", l->instance,
			 "segment", l->map.name, "dp_pid", l->dp_pid, "epoch", epoch, "seconds", (double)ns / 1e9,
			 "interval", interval, "interrupted", (int)interrupted, "ports", ports, "drops", drops,
			 "drops_total", (json_int_t)total, "workers", workers, "intervals",
			 json_incref(l->intervals));
}

static void sleep_until(uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull)};

	/* A signal ends the sleep (clock_nanosleep is never restarted) and the window. */
	while (!stop && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* Attaches to the instance's segment; on failure says why, naming the segment. */
static int open_segment(struct live *l, const char *instance)
{
	char name[EG_SHM_NAME_LEN];
	int rc;

	eg_shm_name(instance, name);
	rc = eg_shm_attach_readonly(name, &l->map);
	if (rc == -ENOENT) {
		fprintf(stderr, "egress-bench: no shared memory segment %s (/dev/shm%s): no dataplane of instance "
				"%s is running here\n", name, name, instance);
		return rc;
	}
	if (rc == -EACCES) {
		fprintf(stderr, "egress-bench: cannot read %s: permission denied (the segment is mode 0600: run as "
				"the dataplane's user or root)\n", name);
		return rc;
	}
	if (rc == -EPROTO) {
		fprintf(stderr, "egress-bench: %s is not an egress segment of layout version %u (a dataplane of "
				"another build?)\n", name, EG_SHM_LAYOUT_VERSION);
		return rc;
	}
	if (rc) {
		fprintf(stderr, "egress-bench: cannot attach to %s: %s\n", name, strerror(-rc));
		return rc;
	}
	l->h = l->map.hdr;
	l->epoch = l->h->epoch;
	l->dp_pid = l->h->dp_pid;
	if (kill(l->dp_pid, 0) != 0 && errno == ESRCH) {
		fprintf(stderr, "egress-bench: %s was left behind by a dataplane that is gone (pid %d): no dataplane "
				"of instance %s is running\n", name, l->dp_pid, instance);
		eg_shm_detach(&l->map);
		return -ESRCH;
	}
	l->n_ports = l->h->n_ports;
	l->n_workers = l->h->n_workers;
	for (unsigned p = 0; p < l->n_ports; p++) {
		/* The dataplane writes the name; bound it ourselves all the same. */
		snprintf(l->port_name[p], sizeof(l->port_name[p]), "%.*s", EG_NAME_LEN - 1, l->h->ports[p].name);
		l->port_role[p] = l->h->ports[p].role == EG_ROLE_SITE ? "site" : "uplink";
	}
	return 0;
}

int bench_live_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"live", required_argument, NULL, 'l'}, {"seconds", required_argument, NULL, 's'},
		{"interval", required_argument, NULL, 'i'}, {"json", required_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	const char *instance = NULL, *json_out = NULL;
	double seconds = 10, interval = 1;
	struct live l = {.out = stdout};
	static struct sample first, prev, cur;	/* a few KiB each */
	struct sigaction sa = {.sa_handler = on_signal};
	FILE *json_file = NULL;
	char why[256];
	int o, status = 0;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'l': instance = optarg; break;
		case 's':
			if (!parse_seconds("seconds", optarg, &seconds))
				return LIVE_EXIT_LOCAL;
			break;
		case 'i':
			if (!parse_seconds("interval", optarg, &interval))
				return LIVE_EXIT_LOCAL;
			break;
		case 'j': json_out = optarg; break;
		case 'h': bench_live_usage(stdout, "usage:"); return 0;
		default:
			if (optopt == 0)	/* an option of its own, not one without its argument */
				fprintf(stderr, "egress-bench: with --live, only --seconds, --interval and --json apply\n");
			bench_live_usage(stderr, "usage:");
			return LIVE_EXIT_LOCAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "egress-bench: unexpected argument %s\n", argv[optind]);
		return LIVE_EXIT_LOCAL;
	}
	if (!instance || !valid_instance(instance)) {
		fprintf(stderr, "egress-bench: --live %s: an instance name is 1 to %d of A-Z a-z 0-9 _ -\n",
			instance ? instance : "", EG_NAME_LEN - 1);
		return LIVE_EXIT_LOCAL;
	}
	l.instance = instance;
	if (interval > seconds)
		interval = seconds;
	if (json_out && strcmp(json_out, "-") == 0) {
		l.out = stderr;
	} else if (json_out) {
		/* Now rather than after a long window: a path that cannot be written is a usage
		 * error. */
		json_file = fopen(json_out, "w");
		if (!json_file) {
			fprintf(stderr, "egress-bench: cannot write %s: %s\n", json_out, strerror(errno));
			return LIVE_EXIT_LOCAL;
		}
	}
	if (open_segment(&l, instance) != 0) {
		if (json_file) {
			fclose(json_file);
			unlink(json_out);
		}
		return LIVE_EXIT_LOCAL;
	}
	{
		uint64_t beat = __atomic_load_n(&l.h->heartbeat_ns, __ATOMIC_ACQUIRE), now = eg_now_ns();

		if (now > beat && now - beat > LIVE_STALE_HEARTBEAT_NS)
			fprintf(stderr, "egress-bench: warning: the dataplane's heartbeat is %.1f s old (stopped or "
					"starved of CPU?): its rates may read 0\n", (double)(now - beat) / 1e9);
	}
	l.intervals = json_array();
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	fprintf(l.out, "egress-bench --live %s: dataplane pid %d, %u worker(s), %u port(s); every %.1f s for %.1f s\n",
		instance, l.dp_pid, l.n_workers, l.n_ports, interval, seconds);
	fprintf(l.out, "%8s  %-15s %9s %9s %10s %10s %12s\n", "TIME_S", "PORT", "RX_MPPS", "TX_MPPS", "RX_GBIT/S",
		"TX_GBIT/S", "DROPS/S");
	take(&l, &first);
	prev = first;

	uint64_t interval_ns = (uint64_t)(interval * 1e9), end = first.ns + (uint64_t)(seconds * 1e9);

	/* Bounded by the window: every pass sleeps until a later due time, the last is end. */
	for (uint64_t due = first.ns + interval_ns;; due += interval_ns) {
		if (due > end)
			due = end;
		sleep_until(due);
		take(&l, &cur);
		if (changed(&l, why, sizeof(why))) {
			fprintf(stderr, "egress-bench: %s, %.1f s into the window: no summary\n", why,
				(double)(cur.ns - first.ns) / 1e9);
			status = LIVE_EXIT_CHANGED;
			break;
		}
		print_interval(&l, &prev, &cur, (double)(cur.ns - first.ns) / 1e9);
		prev = cur;
		if (due >= end || stop)
			break;
	}

	if (status == 0) {
		json_t *doc = summary(&l, &first, &prev, interval, stop);

		if (json_out && !json_file) {
			json_dumpf(doc, stdout, JSON_INDENT(2));
			putchar('\n');
		} else if (json_file) {
			if (json_dumpf(doc, json_file, JSON_INDENT(2)) != 0 || fputc('\n', json_file) == EOF)
				status = LIVE_EXIT_LOCAL;
			if (fclose(json_file) != 0)
				status = LIVE_EXIT_LOCAL;
			json_file = NULL;
			if (status)
				fprintf(stderr, "egress-bench: cannot write %s\n", json_out);
		}
		json_decref(doc);
	}
	if (json_file) {		/* no summary: no file that looks like one */
		fclose(json_file);
		unlink(json_out);
	}
	json_decref(l.intervals);
	eg_shm_detach(&l.map);
	return status;
}
