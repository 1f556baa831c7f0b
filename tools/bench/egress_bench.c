/* egress-bench: what the worker code costs per packet, on real mbufs, with a real
 * shared-memory table, SAs and a WireGuard peer (dataplane/offline.c), but no NIC: each
 * burst of 32 frames is copied into mbufs, and only dp_worker_process, the function the
 * worker loop calls for every received burst, is timed. Tunnel scenarios are reported
 * beside the raw AEAD ceiling measured in the same run on the same core (ceiling.c);
 * direct-snat (a source NAT table of BENCH_SNAT_SESSIONS sessions, the packets in --flows
 * of them) beside plain direct forwarding of the same frames, measured in the same run.
 *
 *   egress-bench [--scenarios LIST] [--sizes LIST] [--packets N] [--flows N] [--repeat N] [--rules N]
 *                [--check] [--json FILE|-] [--no-ceiling]
 *
 * Each case runs --repeat times (default 3) and the fastest run is reported, for the
 * ceiling too.
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
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "ceiling.h"
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
		   "                    [--rules N] [--check] [--json FILE|-] [--no-ceiling]\n"
		   "  scenarios:");
	for (unsigned i = 0; i < bench_n_scenarios; i++)
		fprintf(f, " %s", bench_scenarios[i].name);
	fprintf(f, " (default all)\n  sizes: 64 512 1420 imix (default all)\n"
		   "  packets: per scenario and size (default 2000000); flows: UDP flows (default 1024);\n"
		   "  repeat: runs per case, the fastest reported (default 3);\n"
		   "  rules: classifier rules every packet passes before its own (default 0)\n");
	bench_live_usage(f, "      ");
}

/* Whether name is in a comma-separated list (NULL: all). */
static bool listed(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; p && *p;) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);

		if (len == n && strncmp(p, name, n) == 0)
			return true;
		p = e ? e + 1 : NULL;
	}
	return !list;
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

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"scenarios", required_argument, NULL, 's'}, {"sizes", required_argument, NULL, 'z'},
		{"packets", required_argument, NULL, 'n'}, {"flows", required_argument, NULL, 'f'},
		{"check", no_argument, NULL, 'c'}, {"no-ceiling", no_argument, NULL, 'C'},
		{"repeat", required_argument, NULL, 'r'}, {"json", required_argument, NULL, 'j'},
		{"rules", required_argument, NULL, 'R'},
		{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	const char *scen_list = NULL, *size_list = NULL, *json_out = NULL;
	uint64_t packets = 2000000;
	unsigned flows = 1024, repeat = 3, rules = 0, n_rules;
	bool check = false, bad = false, ceiling = true;
	json_t *results;
	int o;

	/* Before anything starts EAL: live mode only reads another process's counters. */
	if (bench_live_wanted(argc, argv))
		return bench_live_main(argc, argv);
	results = json_array();
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 's': scen_list = optarg; break;
		case 'z': size_list = optarg; break;
		case 'n': packets = strtoull(optarg, NULL, 10); break;
		case 'f': flows = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'r': repeat = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'R': rules = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'c': check = true; break;
		case 'C': ceiling = false; break;
		case 'j': json_out = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (packets == 0 || flows == 0 || flows > (1u << 20) || repeat == 0 || repeat > 100) {
		fprintf(stderr, "egress-bench: --packets must be > 0, --flows 1..1048576, --repeat 1..100\n");
		return 2;
	}
	if (sodium_init() < 0)
		return 2;
	n_rules = bench_context_start(rules);

	FILE *tab = json_out && strcmp(json_out, "-") == 0 ? stderr : stdout;

	fprintf(tab, "%u classifier rules; %u flows\n", n_rules, flows);

	fprintf(tab, "%-18s %5s %9s %8s %8s %10s %11s %6s%s\n", "SCENARIO", "SIZE", "PACKETS", "MPPS", "GBIT/S",
		"CYCLES/PKT", "CEILING", "RATIO", check ? "  CHECK" : "");
	for (unsigned si = 0; si < bench_n_scenarios; si++) {
		const struct bench_scenario *s = &bench_scenarios[si];

		if (!listed(scen_list, s->name))
			continue;
		for (unsigned zi = 0; zi < N_SIZES; zi++) {
			const struct bench_size *z = &sizes[zi];
			struct bench_result r;
			struct bench_ceiling c = {0};
			double ratio = 0;
			bool ok;

			if (!listed(size_list, z->label))
				continue;
			/* The best of a few runs, for us and the ceiling alike: on a shared machine
			 * the slow runs measure the neighbours. */
			for (unsigned k = 0; k < repeat; k++) {
				struct bench_result rk;
				struct bench_ceiling ck = {0};

				bench_run(s, z, packets, flows, check, &rk);
				if (k == 0 || rk.mpps > r.mpps || !bench_clean(&rk))
					r = rk;
				if (ceiling && s->tunnel != BENCH_NONE && ceiling_for(s, z, packets, &ck) != 0) {
					fprintf(stderr, "egress-bench: %s: the AEAD ceiling could not be measured\n",
						s->name);
					return 2;
				}
				if (s->snat) {	/* the reference: the same frames without NAT */
					struct bench_result d;

					bench_run(&bench_scenarios[0], z, packets, flows, false, &d);
					ck.mpps = d.mpps;
				}
				if (ck.mpps > c.mpps)
					c = ck;
				if (!bench_clean(&r))
					break;
			}
			if (c.mpps > 0)
				ratio = r.mpps / c.mpps;
			ok = !check || (bench_clean(&r) && r.checked == r.packets);
			bad |= !ok;
			char ceil_s[16] = "-", ratio_s[16] = "-";

			if (c.mpps > 0) {
				snprintf(ceil_s, sizeof(ceil_s), "%.2f", c.mpps);
				snprintf(ratio_s, sizeof(ratio_s), "%.0f%%", 100 * ratio);
			}
			fprintf(tab, "%-18s %5s %9llu %8.2f %8.2f %10.0f %11s %6s%s\n", s->name, z->label,
				(unsigned long long)r.packets, r.mpps, r.gbps, r.cycles_per_packet, ceil_s, ratio_s,
				check ? (ok ? "  ok" : "  FAIL") : "");
			if (!ok)
				fprintf(stderr,
					"egress-bench: %s %s: %llu in, %llu out, %llu dropped, %llu of %llu checked "
					"frames wrong\n",
					s->name, z->label, (unsigned long long)r.packets, (unsigned long long)r.out_packets,
					(unsigned long long)r.drops, (unsigned long long)r.check_failures,
					(unsigned long long)r.checked);
			json_array_append_new(
				results,
				json_pack("{s:s,s:s,s:I,s:I,s:I,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:b}", "scenario", s->name,
					  "size", z->label, "packets", (json_int_t)r.packets, "out_packets",
					  (json_int_t)r.out_packets, "drops", (json_int_t)r.drops, "mpps", r.mpps,
					  "gbps", r.gbps, "cycles_per_packet", r.cycles_per_packet, "ceiling_mpps",
					  c.mpps, "ceiling_burst_mpps", c.burst_mpps, "ceiling_direct_mpps",
					  c.direct_mpps, "ratio", ratio, "checked", check && ok));
		}
	}
	uint64_t made;
	double each, bytes;

	bench_snat_setup(&made, &each, &bytes);
	if (made)
		fprintf(tab, "direct-snat: %llu sessions in the table; a flow's first packet (making its "
			"session) took %.0f cycles; %.0f bytes of shared memory per session held\n",
			(unsigned long long)made, each, bytes);
	if (json_out) {
		json_t *doc = json_pack("{s:s,s:I,s:I,s:I,s:I,s:o}", "ipsec_mb", IMB_VERSION_STR, "tsc_hz",
					(json_int_t)bench_tsc_hz(), "flows", (json_int_t)flows, "rules",
					(json_int_t)n_rules, "repeat", (json_int_t)repeat, "results", results);

		if (strcmp(json_out, "-") == 0)
			json_dumpf(doc, stdout, JSON_INDENT(2));
		else if (json_dump_file(doc, json_out, JSON_INDENT(2)) != 0)
			fprintf(stderr, "egress-bench: cannot write %s\n", json_out);
		json_decref(doc);
	} else {
		json_decref(results);
	}
	return bad ? 1 : 0;
}
