/* egressctl capture: what a port or egress sends and receives, into a pcapng file that
 * tshark and wireshark read. The daemon copies the packets (control/capture.c); this side
 * fetches them in batches and writes the file, until the count or the duration is reached
 * or ^C, which ends the capture and still writes what was taken. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "capture_ring.h"
#include "egressctl.h"
#include "pcapng.h"

enum {
	READ_BATCH = 512,
	POLL_IDLE_MS = 50,		/* nothing came: wait a little before asking again */
};

static volatile sig_atomic_t stop_wanted;

static void on_stop(int sig)
{
	(void)sig;
	stop_wanted = 1;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

	nanosleep(&ts, NULL);		/* ^C cuts it short, which is what we want */
}

/* Writes one batch of packets; returns how many. */
static size_t write_packets(FILE *f, const char *path, const json_t *pkts)
{
	static uint8_t buf[EG_CAPTURE_SNAP_MAX];
	const json_t *p;
	size_t i;

	json_array_foreach(pkts, i, p) {
		const char *b64 = json_string_value(json_object_get(p, "data"));
		const char *dir = json_string_value(json_object_get(p, "dir"));
		json_int_t t = json_integer_value(json_object_get(p, "time_ns"));
		json_int_t len = json_integer_value(json_object_get(p, "len"));
		size_t n = 0;

		if (!b64 || sodium_base642bin(buf, sizeof(buf), b64, strlen(b64), NULL, &n, NULL,
					      sodium_base64_VARIANT_ORIGINAL) != 0)
			die(EXIT_LOCAL, "a captured packet came without readable data");
		if (eg_pcapng_packet(f, 0, (uint64_t)t, buf, (uint32_t)n, (uint32_t)len,
				     !dir ? EG_PCAPNG_DIR_UNKNOWN
				     : strcmp(dir, "in") == 0 ? EG_PCAPNG_DIR_IN : EG_PCAPNG_DIR_OUT) != 0)
			die(EXIT_LOCAL, "%s: %s", path, strerror(errno));
	}
	return i;
}

int cmd_capture(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"write", required_argument, NULL, 'w'},
		{"count", required_argument, NULL, 'c'},
		{"duration", required_argument, NULL, 'd'},
		{"snaplen", required_argument, NULL, 's'},
		{"decrypted", no_argument, NULL, 'D'},
		{"port", no_argument, NULL, 'P'},
		{"egress", no_argument, NULL, 'E'},
		{NULL, 0, NULL, 0},
	};
	struct sigaction sa = {.sa_handler = on_stop};	/* no SA_RESTART: sleeps end early */
	const char *path = NULL, *kind = "target", *reason = NULL;
	unsigned long count = 0, seconds = 0, snaplen = 0, v;
	json_t *params, *r, *iface;
	json_int_t id, dropped = 0, captured = 0;
	bool decrypted = false, stop_sent = false, to_stdout;
	FILE *f;
	int opt;

	optind = 0;		/* glibc: start over on this argv */
	while ((opt = getopt_long(argc + 1, argv - 1, "w:c:d:s:", opts, NULL)) != -1) {
		switch (opt) {
		case 'w':
			path = optarg;
			break;
		case 'c':
		case 'd':
		case 's':
			if (!parse_uint(optarg, 100000000, &v) || v == 0)
				die(EXIT_LOCAL, "-%c wants a positive number, not \"%s\"", opt, optarg);
			*(opt == 'c' ? &count : opt == 'd' ? &seconds : &snaplen) = v;
			break;
		case 'D':
			decrypted = true;
			break;
		case 'P':
			kind = "port";
			break;
		case 'E':
			kind = "egress";
			break;
		default:
			return -1;
		}
	}
	if (optind != argc || !path)	/* exactly one name, and a file */
		return -1;
	params = json_pack("{s:s,s:b}", kind, argv[optind - 1], "decrypted", decrypted);
	if (count)
		json_object_set_new(params, "count", json_integer((json_int_t)count));
	if (seconds)
		json_object_set_new(params, "duration_s", json_integer((json_int_t)seconds));
	if (snaplen)
		json_object_set_new(params, "snaplen", json_integer((json_int_t)snaplen));

	to_stdout = strcmp(path, "-") == 0;
	f = to_stdout ? stdout : fopen(path, "wb");
	if (!f)
		die(EXIT_LOCAL, "%s: %s", path, strerror(errno));
	r = rpc_call(c, "capture.start", params);
	id = json_integer_value(json_object_get(r, "id"));
	iface = json_object_get(r, "interface");
	if (eg_pcapng_section(f, "egressctl capture") != 0 ||
	    eg_pcapng_interface(f, (uint16_t)json_integer_value(json_object_get(iface, "linktype")),
				(uint32_t)json_integer_value(json_object_get(r, "snaplen")),
				json_string_value(json_object_get(iface, "name")),
				json_string_value(json_object_get(iface, "description"))) != 0)
		die(EXIT_LOCAL, "%s: %s", path, strerror(errno));
	fprintf(stderr, "egressctl: capturing %s (%s), up to %" JSON_INTEGER_FORMAT " packets for %"
		JSON_INTEGER_FORMAT " s; ^C ends it\n", json_string_value(json_object_get(iface, "name")),
		json_string_value(json_object_get(iface, "description")),
		json_integer_value(json_object_get(r, "count")), json_integer_value(json_object_get(r, "duration_s")));
	json_decref(r);

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	for (;;) {
		size_t n;

		if (stop_wanted && !stop_sent) {
			json_decref(rpc_call(c, "capture.stop", json_pack("{s:I}", "id", id)));
			stop_sent = true;
		}
		r = rpc_call(c, "capture.read", json_pack("{s:I,s:i}", "id", id, "max", READ_BATCH));
		n = write_packets(f, path, json_object_get(r, "packets"));
		if (fflush(f) == EOF)
			die(EXIT_LOCAL, "%s: %s", path, strerror(errno));
		captured = json_integer_value(json_object_get(r, "captured"));
		dropped = json_integer_value(json_object_get(r, "dropped"));
		if (json_is_true(json_object_get(r, "done"))) {
			reason = json_string_value(json_object_get(r, "reason"));
			reason = reason ? strdup(reason) : NULL;
			json_decref(r);
			break;
		}
		json_decref(r);
		if (n < READ_BATCH)
			sleep_ms(n ? POLL_IDLE_MS / 5 : POLL_IDLE_MS);
	}
	if (!to_stdout && fclose(f) != 0)
		die(EXIT_LOCAL, "%s: %s", path, strerror(errno));
	fprintf(stderr, "egressctl: %" JSON_INTEGER_FORMAT " packet%s written to %s (ended: %s)", captured,
		captured == 1 ? "" : "s", to_stdout ? "stdout" : path, reason ? reason : "?");
	if (dropped)
		fprintf(stderr, "; %" JSON_INTEGER_FORMAT " more were not captured: the capture ring was full",
			dropped);
	fputc('\n', stderr);
	free((char *)reason);
	return 0;
}
