/* egress-bench: what the worker code costs per packet, on real mbufs, with a real
 * shared-memory table, SAs and a WireGuard peer (dataplane/offline.c), but no NIC: each
 * burst of 32 frames is copied into mbufs, and only dp_worker_process, the function the
 * worker loop calls for every received burst, is timed. Tunnel scenarios are reported
 * beside the raw AEAD ceiling measured in the same run on the same core (ceiling.c);
 * direct-snat (a source NAT table of BENCH_SNAT_SESSIONS sessions, the packets in --flows
 * of them) beside plain direct forwarding of the same frames, measured in the same run.
 *
 *   egress-bench [--scenarios LIST] [--sizes LIST] [--packets N] [--flows N] [--repeat N] [--rules N]
 *                [--tunnels N] [--workers N | --scaling | --churn RATE] [--check] [--json FILE|-]
 *                [--no-ceiling] [--crypto-perf]
 *
 * Each case runs --repeat times (default 3) and the fastest run is reported, for the
 * reference too. The reference, and the ratio to it, depend on the mode:
 *   - by default, the raw AEAD ceiling (tunnels) or plain direct forwarding (direct-snat);
 *   - --scaling: the same case on one worker, against all the workers the CPUs allow;
 *     beside it, for tunnels, the raw AEAD ceiling on all of them against one (AEAD), the
 *     cipher's own scaling on this machine, measured in the same runs;
 *   - --churn RATE: the same case with no table publishes, against RATE publishes a second
 *     (churn.c) on a second CPU.
 *
 * --crypto-perf also runs dpdk-test-crypto-perf (crypto_aesni_mb) in each run of a tunnel
 * case, on the ceiling's CPU for the ceiling's lengths, and prints the two side by side:
 * the ceiling must be no lower than what DPDK's own tool gets from the same library
 * (crypto_perf.c).
 *
 * --check verifies every output frame (sealed frames are opened again, by the library
 * the worker does not use where there is one) and that the counters add up; it exits 1
 * when anything does not. The test suite runs it with a few thousand packets.
 *
 *   egress-bench --live INSTANCE [--seconds N] [--interval SECONDS] [--json FILE|-]
 *
 * measures a running dataplane instead, while an external generator drives it (live.c):
 * its rates from the counters in its shared memory, read-only, without EAL or the
 * offline context. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <rte_lcore.h>
#include <sodium.h>

#include "ceiling.h"
#include "churn.h"
#include "crypto_perf.h"
#include "live.h"
#include "scenario.h"

static const struct bench_size sizes[] = {
	{"64", 1, {64}},
	{"512", 1, {512}},
	{"1420", 1, {1420}},
	/* 7:4:1, interleaved as a generator would send them */
	{"imix", 12, {64, 570, 64, 64, 1420, 64, 570, 64, 570, 64, 64, 570}},
};
enum { N_SIZES = sizeof(sizes) / sizeof(sizes[0]) };

static void usage(FILE *f)
{
	fprintf(f, "usage: egress-bench [--scenarios LIST] [--sizes LIST] [--packets N] [--flows N] [--repeat N]\n"
		   "                    [--rules N] [--tunnels N] [--workers N | --scaling | --churn RATE]\n"
		   "                    [--check] [--json FILE|-] [--no-ceiling] [--crypto-perf]\n"
		   "  scenarios:");
	for (unsigned i = 0; i < bench_n_scenarios; i++)
		fprintf(f, " %s", bench_scenarios[i].name);
	fprintf(f, " (default all)\n  sizes: 64 512 1420 imix (default all)\n"
		   "  packets: per scenario and size (default 2000000); flows: UDP flows (default 1024);\n"
		   "  repeat: runs per case, the fastest reported (default 3);\n"
		   "  rules: classifier rules of higher priority than the traffic's, none matching it (default 0,\n"
		   "    at most 1000000);\n"
		   "  tunnels: ESP-128 tunnels and WireGuard peers the esp-gcm128-* and wg-* flows spread over (default 1);\n"
		   "  workers: workers at once (default 1); scaling: 1 worker against all; churn: table publishes a second;\n"
		   "  crypto-perf: dpdk-test-crypto-perf beside the ceiling, same lengths and CPU\n");
	bench_live_usage(f, "      ");
}

/* The next item of a comma-separated list at *p (advanced past it), its length in *len;
 * NULL after the last. */
static const char *next_item(const char **p, size_t *len)
{
	const char *item = *p, *e;

	if (!item)
		return NULL;
	e = strchr(item, ',');
	*len = e ? (size_t)(e - item) : strlen(item);
	*p = e ? e + 1 : NULL;
	return item;
}

static bool item_is(const char *item, size_t len, const char *name)
{
	return strlen(name) == len && strncmp(item, name, len) == 0;
}

/* Whether name is in a comma-separated list (NULL: all). */
static bool listed(const char *list, const char *name)
{
	const char *p = list, *item;
	size_t len;

	while ((item = next_item(&p, &len)))
		if (item_is(item, len, name))
			return true;
	return !list;
}

/* Option opt's argument as a whole number in lo..hi; false, with a message naming the
 * option, for anything else: "1M" or "1e6" must not quietly run 1. */
static bool number_arg(const char *opt, const char *arg, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno || end == arg || *end || arg[0] < '0' || arg[0] > '9' || v < lo || v > hi) {
		fprintf(stderr, "egress-bench: --%s: '%s' is not a whole number in %llu..%llu\n", opt, arg,
			(unsigned long long)lo, (unsigned long long)hi);
		return false;
	}
	*out = v;
	return true;
}

static bool is_scenario(const char *item, size_t len)
{
	for (unsigned i = 0; i < bench_n_scenarios; i++)
		if (item_is(item, len, bench_scenarios[i].name))
			return true;
	return false;
}

static bool is_size(const char *item, size_t len)
{
	for (unsigned i = 0; i < N_SIZES; i++)
		if (item_is(item, len, sizes[i].label))
			return true;
	return false;
}

/* Whether every item of a comma-separated list is known; a message naming the first that
 * is not. A misspelt scenario would otherwise be skipped, and --check pass on nothing. */
static bool list_known(const char *opt, const char *noun, const char *list, bool (*known)(const char *, size_t))
{
	const char *p = list, *item;
	size_t len;

	while ((item = next_item(&p, &len)))
		if (!known(item, len)) {
			fprintf(stderr, "egress-bench: --%s: no %s '%.*s' (--help lists them)\n", opt, noun, (int)len, item);
			return false;
		}
	return true;
}

/* The ceiling for a size: for IMIX, the time of one pattern at each length's own rate. */
static int ceiling_for(const struct bench_scenario *s, const struct bench_size *z, uint64_t packets,
		       struct bench_ceiling *c)
{
	double per_pattern = 0, burst = 0, direct = 0;

	for (unsigned i = 0; i < z->n; i++) {
		struct bench_ceiling one;
		uint32_t aad, len = bench_aead_len(s, z->len[i], &aad);
		int rc = bench_ceiling_measure((IMB_ARCH)bench_imb_arch(), s->alg, s->kind == BENCH_DECAP, len, aad,
					       packets / z->n + 32, bench_tsc_hz(), &one);

		if (rc)
			return rc;
		per_pattern += 1 / one.mpps;
		burst += 1 / one.burst_mpps;
		direct += one.direct_mpps > 0 ? 1 / one.direct_mpps : 0;
	}
	c->mpps = z->n / per_pattern;
	c->burst_mpps = z->n / burst;
	c->direct_mpps = direct > 0 ? z->n / direct : 0;
	return 0;
}

/* dpdk-test-crypto-perf's rate for a case, on the CPU of the lane the one-worker ceiling
 * runs on (the main lcore), for the lengths that ceiling seals, combined over IMIX as the
 * ceiling is. */
static int crypto_perf_for(const struct bench_scenario *s, const struct bench_size *z, uint64_t packets,
			   double *mpps)
{
	struct bench_crypto_perf_req req = {.alg = s->alg, .decrypt = s->kind == BENCH_DECAP,
					    .ops = packets / z->n + 32};
	double rate[BENCH_CRYPTO_PERF_MAX_LENS], per_pattern = 0;
	uint32_t aead[sizeof(z->len) / sizeof(z->len[0])];
	unsigned main_lcore = rte_get_main_lcore(), other;

	/* Checked first: with wrap, rte_get_next_lcore loops for ever when the main lcore is
	 * the only one. */
	if (rte_lcore_count() < 2) {
		fprintf(stderr, "egress-bench: --crypto-perf needs a second CPU for the tool's main lcore\n");
		return -1;
	}
	other = rte_get_next_lcore(main_lcore, 1, 1);
	req.cpu = rte_lcore_to_cpu_id((int)main_lcore);
	req.main_cpu = rte_lcore_to_cpu_id((int)other);
	/* The pattern's AEAD lengths, and each distinct one once, in order (the tool wants
	 * them so): an insertion into the sorted list unless it is there already. */
	for (unsigned i = 0; i < z->n; i++) {
		uint32_t len = aead[i] = bench_aead_len(s, z->len[i], &req.aad_len);
		unsigned k = 0;

		while (k < req.n_lens && req.lens[k] < len)
			k++;
		if (k < req.n_lens && req.lens[k] == len)
			continue;
		if (req.n_lens == BENCH_CRYPTO_PERF_MAX_LENS) {
			fprintf(stderr, "egress-bench: --crypto-perf: more than %d lengths in size %s\n",
				BENCH_CRYPTO_PERF_MAX_LENS, z->label);
			return -1;
		}
		memmove(&req.lens[k + 1], &req.lens[k], (req.n_lens - k) * sizeof(req.lens[0]));
		req.lens[k] = len;
		req.n_lens++;
	}
	if (bench_crypto_perf(&req, rate) != 0)
		return -1;
	for (unsigned i = 0; i < z->n; i++)
		for (unsigned k = 0; k < req.n_lens; k++)
			if (req.lens[k] == aead[i])
				per_pattern += 1 / rate[k];
	*mpps = z->n / per_pattern;
	return 0;
}

/* The raw AEAD ceiling of one case, measured on one lane's lcore (bench_on_lanes). */
struct ceiling_job {
	const struct bench_scenario *s;
	const struct bench_size *z;
	uint64_t packets;
	struct bench_ceiling c;
};

static int ceiling_job_run(void *arg)
{
	struct ceiling_job *j = arg;

	return ceiling_for(j->s, j->z, j->packets, &j->c);
}

/* The raw AEAD ceiling on lanes lanes at once, each lane's rate over its own time, added
 * up as bench_run adds the workers up: the reference of a run on that many workers. */
static int ceiling_on_lanes(const struct bench_scenario *s, const struct bench_size *z, uint64_t packets,
			    unsigned lanes, struct bench_ceiling *sum)
{
	struct ceiling_job jobs[BENCH_MAX_LANES];
	void *args[BENCH_MAX_LANES];

	for (unsigned k = 0; k < lanes; k++) {
		jobs[k] = (struct ceiling_job){.s = s, .z = z, .packets = packets};
		args[k] = &jobs[k];
	}
	if (bench_on_lanes(lanes, ceiling_job_run, args) != 0)
		return -1;
	memset(sum, 0, sizeof(*sum));
	for (unsigned k = 0; k < lanes; k++) {
		sum->mpps += jobs[k].c.mpps;
		sum->burst_mpps += jobs[k].c.burst_mpps;
		sum->direct_mpps += jobs[k].c.direct_mpps;
	}
	return 0;
}

/* The raw AEAD ceiling on one lane, and on all lanes at once: how the cipher itself
 * scales. The workers cannot scale better than the cipher units under them; where two
 * vCPUs share a core's, this says so. */
static int aead_on_lanes(const struct bench_scenario *s, const struct bench_size *z, uint64_t packets,
			 unsigned lanes, double *one_mpps, double *all_mpps)
{
	struct bench_ceiling one, all;

	if (ceiling_for(s, z, packets, &one) != 0 || ceiling_on_lanes(s, z, packets, lanes, &all) != 0)
		return -1;
	*one_mpps = one.mpps;
	*all_mpps = all.mpps;
	return 0;
}

enum mode { MODE_CEILING, MODE_SCALING, MODE_CHURN };

struct options {
	enum mode mode;
	uint64_t packets;
	unsigned flows, repeat, workers, churn_rate;
	bool check, ceiling, crypto_perf;
};

/* One case measured against its reference, the best of o->repeat runs of each. */
struct outcome {
	struct bench_result r;
	struct bench_ceiling c;			/* c.mpps: the reference's rate */
	unsigned workers, ref_workers;
	double aead_one, aead_all;		/* --scaling: the raw ceiling on one lane and on all,
						 * each the best of the runs, like the workers' */
	double crypto_perf;			/* --crypto-perf: the tool's rate, the best of the runs */
};

/* Whether run a beats run b: workers that ran together beat ones that did not (their
 * added-up rates overstate), then the faster. */
static bool better(const struct bench_result *a, const struct bench_result *b)
{
	bool a_together = a->overlap >= 0.9, b_together = b->overlap >= 0.9;

	return a_together != b_together ? a_together : a->mpps > b->mpps;
}

static int measure(const struct options *o, const struct bench_scenario *s, const struct bench_size *z,
		   struct outcome *out)
{
	struct bench_run_opts run = {.flows = o->flows, .check = o->check,
				     .churn_rate = o->mode == MODE_CHURN ? o->churn_rate : 0},
			      quiet = {.flows = o->flows};

	memset(out, 0, sizeof(*out));
	out->workers = o->mode == MODE_SCALING ? bench_workers() : o->workers;
	out->ref_workers = o->mode == MODE_SCALING ? 1 : out->workers;
	run.lanes = out->workers;
	quiet.lanes = out->ref_workers;
	/* The best of a few runs, for us and the reference alike: on a shared machine the slow
	 * runs measure the neighbours. */
	for (unsigned k = 0; k < o->repeat; k++) {
		struct bench_result rk, ref;
		struct bench_ceiling ck = {0};

		if (bench_run(s, z, o->packets, &run, &rk) != 0)
			return -1;
		if (k == 0 || !bench_clean(&rk) || better(&rk, &out->r))
			out->r = rk;
		switch (o->mode) {
		case MODE_CEILING:
			/* On the workers' own lcores at once, or the ratio would set --workers N
			 * against one core's cipher. */
			if (o->ceiling && s->tunnel != BENCH_NONE &&
			    ceiling_on_lanes(s, z, o->packets, out->workers, &ck) != 0) {
				fprintf(stderr, "egress-bench: %s: the AEAD ceiling could not be measured\n", s->name);
				return -1;
			}
			if (o->crypto_perf && s->tunnel != BENCH_NONE) {
				double cp;

				if (crypto_perf_for(s, z, o->packets, &cp) != 0)
					return -1;
				out->crypto_perf = cp > out->crypto_perf ? cp : out->crypto_perf;
			}
			if (s->snat) {	/* the reference: the same frames without NAT */
				if (bench_run(&bench_scenarios[0], z, o->packets, &quiet, &ref) != 0)
					return -1;
				ck.mpps = ref.mpps;
			}
			break;
		case MODE_SCALING:
		case MODE_CHURN:	/* the same case: on one worker, or with no publishes */
			if (bench_run(s, z, o->packets, &quiet, &ref) != 0)
				return -1;
			ck.mpps = ref.mpps;
			if (o->mode == MODE_SCALING && o->ceiling && s->tunnel != BENCH_NONE) {
				double one, all;

				if (aead_on_lanes(s, z, o->packets, out->workers, &one, &all) != 0) {
					fprintf(stderr, "egress-bench: %s: the AEAD ceiling's scaling could not be measured\n",
						s->name);
					return -1;
				}
				out->aead_one = one > out->aead_one ? one : out->aead_one;
				out->aead_all = all > out->aead_all ? all : out->aead_all;
			}
			break;
		}
		if (ck.mpps > out->c.mpps)
			out->c = ck;
		if (!bench_clean(&out->r))
			break;
	}
	return 0;
}

/* The ceiling beside dpdk-test-crypto-perf's rate for each tunnel row, and a warning where
 * the ceiling came out lower. Not an exit status: for ChaCha20-Poly1305 the two run within
 * a few percent of each other (the PMD adds little to an op of 300 cycles and more), so on
 * a shared machine either can come out ahead in one run; the ratios say by how much. */
static void report_crypto_perf(FILE *tab, json_t *results)
{
	size_t i;
	json_t *row;

	fprintf(tab, "\nThe ceiling against dpdk-test-crypto-perf (crypto_aesni_mb, bursts of 32, the same lengths "
		     "on the same CPU):\n%-18s %5s %11s %11s %12s\n",
		"SCENARIO", "SIZE", "CEILING", "CRYPTO-PERF", "CEILING/TOOL");
	json_array_foreach(results, i, row) {
		double ours = json_real_value(json_object_get(row, "reference_mpps")),
		       tool = json_real_value(json_object_get(row, "crypto_perf_mpps"));
		const char *name = json_string_value(json_object_get(row, "scenario")),
			   *size = json_string_value(json_object_get(row, "size"));

		if (tool <= 0)
			continue;
		fprintf(tab, "%-18s %5s %11.2f %11.2f %11.2fx\n", name, size, ours, tool, ours / tool);
		if (ours < tool)
			fprintf(stderr, "egress-bench: %s %s: the ceiling (%.2f Mpps) came out below "
					"dpdk-test-crypto-perf (%.2f Mpps) in this run; a larger --repeat evens out "
					"the machine's noise\n",
				name, size, ours, tool);
	}
}

/* The --json file while this run has not yet written it whole, if it is a regular file
 * (a device or a symlink given as the file stays). Any way out before then removes it:
 * a failed case or write, a DIE in the scenarios, or a signal, so that no empty or
 * half-made file is left for a plot to read as this run's. */
static const char *json_unfinished;

static void json_remove_unfinished(void)
{
	if (json_unfinished)
		unlink(json_unfinished);
}

static void json_remove_on_signal(int sig)
{
	json_remove_unfinished();	/* unlink is async-signal-safe */
	signal(sig, SIG_DFL);
	raise(sig);
}

static void json_guard(const char *path)
{
	static const int signals[] = {SIGINT, SIGTERM, SIGHUP};

	json_unfinished = path;
	atexit(json_remove_unfinished);
	for (unsigned i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
		signal(signals[i], json_remove_on_signal);
}

static const char *const reference_name[] = {
	[MODE_CEILING] = "CEILING", [MODE_SCALING] = "1 WORKER", [MODE_CHURN] = "NO CHURN"};
static const char *const mode_name[] = {[MODE_CEILING] = "ceiling", [MODE_SCALING] = "scaling", [MODE_CHURN] = "churn"};

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"scenarios", required_argument, NULL, 's'}, {"sizes", required_argument, NULL, 'z'},
		{"packets", required_argument, NULL, 'n'}, {"flows", required_argument, NULL, 'f'},
		{"check", no_argument, NULL, 'c'}, {"no-ceiling", no_argument, NULL, 'C'},
		{"repeat", required_argument, NULL, 'r'}, {"json", required_argument, NULL, 'j'},
		{"rules", required_argument, NULL, 'R'}, {"tunnels", required_argument, NULL, 'T'},
		{"workers", required_argument, NULL, 'w'}, {"scaling", no_argument, NULL, 'S'},
		{"churn", required_argument, NULL, 'u'}, {"crypto-perf", no_argument, NULL, 'P'},
		{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	const char *scen_list = NULL, *size_list = NULL, *json_out = NULL;
	struct options o = {.mode = MODE_CEILING, .packets = 2000000, .flows = 1024, .repeat = 3, .workers = 1,
			    .ceiling = true};
	unsigned rules = 0, tunnels = 1, n_rules, modes = 0;
	uint64_t v = 0;
	bool bad = false, bad_arg = false;
	json_t *results;
	int opt;

	/* Before anything starts EAL: live mode only reads another process's counters. */
	if (bench_live_wanted(argc, argv))
		return bench_live_main(argc, argv);
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 's': scen_list = optarg; break;
		case 'z': size_list = optarg; break;
		case 'n': bad_arg |= !number_arg("packets", optarg, 1, UINT64_C(1) << 40, &o.packets); break;
		case 'f': bad_arg |= !number_arg("flows", optarg, 1, BENCH_MAX_FLOWS, &v); o.flows = (unsigned)v; break;
		case 'r': bad_arg |= !number_arg("repeat", optarg, 1, 100, &v); o.repeat = (unsigned)v; break;
		case 'R': bad_arg |= !number_arg("rules", optarg, 0, BENCH_MAX_RULES, &v); rules = (unsigned)v; break;
		case 'T': bad_arg |= !number_arg("tunnels", optarg, 1, BENCH_MAX_TUNNELS, &v); tunnels = (unsigned)v; break;
		case 'w':
			bad_arg |= !number_arg("workers", optarg, 1, BENCH_MAX_LANES, &v);
			o.workers = (unsigned)v;
			modes++;
			break;
		case 'S': o.mode = MODE_SCALING; modes++; break;
		case 'u':
			bad_arg |= !number_arg("churn", optarg, 1, 100000, &v);
			o.mode = MODE_CHURN;
			o.churn_rate = (unsigned)v;
			modes++;
			break;
		case 'c': o.check = true; break;
		case 'C': o.ceiling = false; break;
		case 'P': o.crypto_perf = true; break;
		case 'j': json_out = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "egress-bench: unexpected argument '%s'\n", argv[optind]);
		bad_arg = true;
	}
	if (modes > 1) {
		fprintf(stderr, "egress-bench: one of --workers, --scaling and --churn at most\n");
		bad_arg = true;
	}
	if (o.crypto_perf && (o.mode != MODE_CEILING || o.workers != 1 || !o.ceiling)) {
		fprintf(stderr, "egress-bench: --crypto-perf compares one core's ceiling: not with --workers, "
				"--scaling, --churn or --no-ceiling\n");
		bad_arg = true;
	}
	if ((scen_list && !list_known("scenarios", "scenario", scen_list, is_scenario)) ||
	    (size_list && !list_known("sizes", "size", size_list, is_size)))
		bad_arg = true;
	if (bad_arg)
		return 2;
	if (sodium_init() < 0)
		return 2;
	n_rules = bench_context_start(rules, tunnels);
	if (o.workers > bench_workers()) {
		fprintf(stderr, "egress-bench: --workers %u, but the CPUs allow %u\n", o.workers, bench_workers());
		return 2;
	}
	/* One worker against one would report a scaling of 1 and pass a check of nothing. */
	if (o.mode == MODE_SCALING && bench_workers() < 2) {
		fprintf(stderr, "egress-bench: --scaling needs two workers, but the CPUs allow one\n");
		return 2;
	}
	/* Opened before the run: a file that cannot be written is refused now, not after
	 * minutes of measuring, and never leaves an old file to be read as this run's. */
	FILE *json_file = NULL;

	if (json_out && strcmp(json_out, "-") != 0) {
		struct stat st;

		if (!(json_file = fopen(json_out, "w"))) {
			fprintf(stderr, "egress-bench: --json: cannot write %s: %s\n", json_out, strerror(errno));
			return 2;
		}
		if (fstat(fileno(json_file), &st) == 0 && S_ISREG(st.st_mode))
			json_guard(json_out);
	}
	/* Only now, so that a refusal above leaves nothing behind (LeakSanitizer's exit 1
	 * would hide the refusal's 2). */
	results = json_array();

	FILE *tab = json_out && strcmp(json_out, "-") == 0 ? stderr : stdout;

	fprintf(tab, "%u classifier rules; %u flows; %u tunnel%s; %u worker%s%s", n_rules, o.flows, tunnels,
		tunnels == 1 ? "" : "s", o.mode == MODE_SCALING ? bench_workers() : o.workers,
		(o.mode == MODE_SCALING ? bench_workers() : o.workers) == 1 ? "" : "s",
		o.mode == MODE_SCALING ? " against 1" : "");
	if (o.mode == MODE_CHURN)
		fprintf(tab, "; %u table publishes a second against none", o.churn_rate);
	fprintf(tab, "\n%-18s %5s %9s %8s %8s %10s %5s %11s %6s%s%s\n", "SCENARIO", "SIZE", "PACKETS", "MPPS",
		"GBIT/S", "CYCLES/PKT", "MISS", reference_name[o.mode], "RATIO",
		o.mode == MODE_CHURN ? "  PUB/S" : o.mode == MODE_SCALING ? "   AEAD" : "", o.check ? "  CHECK" : "");
	for (unsigned si = 0; si < bench_n_scenarios; si++) {
		const struct bench_scenario *s = &bench_scenarios[si];

		if (!listed(scen_list, s->name))
			continue;
		for (unsigned zi = 0; zi < N_SIZES; zi++) {
			const struct bench_size *z = &sizes[zi];
			struct outcome out;
			const struct bench_result *r = &out.r;
			double ratio = 0, pub_s = 0;
			bool ok;

			if (!listed(size_list, z->label))
				continue;
			if (measure(&o, s, z, &out) != 0) {
				json_decref(results);
				return 2;	/* the --json file goes at exit */
			}
			if (out.c.mpps > 0)
				ratio = r->mpps / out.c.mpps;
			if (r->churn.seconds > 0)
				pub_s = (double)r->churn.publishes / r->churn.seconds;
			/* Under churn, checking also asks that tables did change under the workers. */
			ok = !o.check || (bench_clean(r) && r->checked == r->packets &&
					  (o.mode != MODE_CHURN || r->churn.publishes > 0));
			bad |= !ok;
			char ceil_s[16] = "-", ratio_s[16] = "-", extra[24] = "", miss_s[16] = "-";	/* extra: PUB/S or AEAD */

			if (out.c.mpps > 0) {
				snprintf(ceil_s, sizeof(ceil_s), "%.2f", out.c.mpps);
				if (o.mode == MODE_SCALING)
					snprintf(ratio_s, sizeof(ratio_s), "%.2fx", ratio);
				else
					snprintf(ratio_s, sizeof(ratio_s), "%.0f%%", 100 * ratio);
			}
			if (s->kind != BENCH_DECAP && r->packets)	/* decap classifies nothing */
				snprintf(miss_s, sizeof(miss_s), "%.0f%%", 100.0 * (double)r->flow_misses / (double)r->packets);
			if (o.mode == MODE_CHURN)
				snprintf(extra, sizeof(extra), "  %5.0f", pub_s);
			else if (o.mode == MODE_SCALING && out.aead_one > 0)
				snprintf(extra, sizeof(extra), "  %4.2fx", out.aead_all / out.aead_one);
			else if (o.mode == MODE_SCALING)
				snprintf(extra, sizeof(extra), "  %5s", "-");
			fprintf(tab, "%-18s %5s %9llu %8.2f %8.2f %10.0f %5s %11s %6s%s%s\n", s->name, z->label,
				(unsigned long long)r->packets, r->mpps, r->gbps, r->cycles_per_packet, miss_s, ceil_s, ratio_s, extra,
				o.check ? (ok ? "  ok" : "  FAIL") : "");
			if (!ok)
				fprintf(stderr,
					"egress-bench: %s %s: %llu in, %llu out, %llu dropped, %llu of %llu checked "
					"frames wrong, %llu counters not adding up, %llu nonces used twice; "
					"%llu table publishes\n",
					s->name, z->label, (unsigned long long)r->packets, (unsigned long long)r->out_packets,
					(unsigned long long)r->drops, (unsigned long long)r->check_failures,
					(unsigned long long)r->checked, (unsigned long long)r->counters_differing,
					(unsigned long long)r->nonces_repeated, (unsigned long long)r->churn.publishes);
			/* The ratio is of the churn there was: say when it fell short of the rate asked
			 * for (allowing the first tick, which a short run is mostly made of). */
			if (o.mode == MODE_CHURN &&
			    (r->churn.timeouts > 0 ||
			     (double)(r->churn.publishes + 1) < 0.9 * o.churn_rate * r->churn.seconds))
				fprintf(stderr, "egress-bench: %s %s: %.0f table publishes a second of the %u asked for, "
						"%llu timed out; the ratio is against that\n",
					s->name, z->label, pub_s, o.churn_rate, (unsigned long long)r->churn.timeouts);
			if (out.workers > 1 && r->overlap < 0.9)
				fprintf(stderr, "egress-bench: %s %s: the %u workers ran together for %.0f%% of the run only; "
						"the sum of their rates overstates what they did together\n",
					s->name, z->label, out.workers, 100 * r->overlap);
			json_t *row = json_pack(
				"{s:s,s:s,s:I,s:I,s:I,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:b,s:I,s:I}", "scenario", s->name, "size",
				z->label, "packets", (json_int_t)r->packets, "out_packets", (json_int_t)r->out_packets, "drops",
				(json_int_t)r->drops, "mpps", r->mpps, "gbps", r->gbps, "cycles_per_packet",
				r->cycles_per_packet, "reference_mpps", out.c.mpps, "ceiling_burst_mpps", out.c.burst_mpps,
				"ceiling_direct_mpps", out.c.direct_mpps, "ratio", ratio, "checked", o.check && ok, "workers",
				(json_int_t)out.workers, "reference_workers", (json_int_t)out.ref_workers);

			json_object_set_new(row, "flow_cache_misses", json_integer((json_int_t)r->flow_misses));
			if (out.workers > 1)
				json_object_set_new(row, "lanes_overlap", json_real(r->overlap));
			/* "checked" alone cannot tell a failed check from none. */
			json_object_set_new(row, "check", json_string(!o.check ? "off" : ok ? "ok" : "fail"));
			json_object_set_new(row, "checked_frames", json_integer((json_int_t)r->checked));
			json_object_set_new(row, "check_failures", json_integer((json_int_t)r->check_failures));
			json_object_set_new(row, "counters_differing", json_integer((json_int_t)r->counters_differing));
			json_object_set_new(row, "nonces_repeated", json_integer((json_int_t)r->nonces_repeated));

			if (out.crypto_perf > 0) {
				json_object_set_new(row, "crypto_perf_mpps", json_real(out.crypto_perf));
				json_object_set_new(row, "ceiling_over_crypto_perf", json_real(out.c.mpps / out.crypto_perf));
			}
			if (o.mode == MODE_SCALING && out.aead_one > 0) {
				json_object_set_new(row, "aead_one_worker_mpps", json_real(out.aead_one));
				json_object_set_new(row, "aead_all_workers_mpps", json_real(out.aead_all));
				json_object_set_new(row, "aead_scaling", json_real(out.aead_all / out.aead_one));
			}
			if (o.mode == MODE_CHURN) {
				json_object_set_new(row, "publishes_per_s", json_real(pub_s));
				json_object_set_new(row, "publish_timeouts", json_integer((json_int_t)r->churn.timeouts));
			}
			json_array_append_new(results, row);
		}
	}
	if (o.crypto_perf)
		report_crypto_perf(tab, results);
	uint64_t made;
	double each, bytes;

	bench_snat_setup(&made, &each, &bytes);
	if (made)
		fprintf(tab, "direct-snat: %llu sessions in the table; a flow's first packet (making its "
			"session) took %.0f cycles; %.0f bytes of shared memory per session held\n",
			(unsigned long long)made, each, bytes);
	if (json_out) {
		json_t *doc = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:o}", "ipsec_mb", IMB_VERSION_STR, "mode",
					mode_name[o.mode], "tsc_hz", (json_int_t)bench_tsc_hz(), "flows",
					(json_int_t)o.flows, "rules", (json_int_t)n_rules, "tunnels", (json_int_t)tunnels,
					"churn_rate", (json_int_t)o.churn_rate, "repeat", (json_int_t)o.repeat,
					"results", results);

		FILE *f = json_file ? json_file : stdout;
		bool written = json_dumpf(doc, f, JSON_INDENT(2)) == 0 && fputc('\n', f) != EOF;

		written &= json_file ? fclose(json_file) == 0 : fflush(stdout) == 0;
		json_decref(doc);
		if (!written) {
			fprintf(stderr, "egress-bench: --json: cannot write %s: %s\n", json_out, strerror(errno));
			return 2;	/* the --json file goes at exit */
		}
		json_unfinished = NULL;
	} else {
		json_decref(results);
	}
	return bad ? 1 : 0;
}
