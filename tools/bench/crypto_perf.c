#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sched_setaffinity, pipe2 */
#endif
#include "crypto_perf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <rte_eal.h>

#include "runtime_dir.h"

#define TOOL "dpdk-test-crypto-perf"

enum { OUTPUT_MAX = 1 << 16, ROW_MAX = 256, EXEC_FAILED = 127 };

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The tool's output, stdout and stderr together, until it exits or deadline passes (then
 * it is killed). The exit status in *status, -1 when killed. */
static int run_tool(char *const argv[], unsigned main_cpu, unsigned cpu, double deadline, char *out, size_t room,
		    int *status)
{
	int fds[2];
	size_t used = 0;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) != 0)
		return -1;
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		cpu_set_t set;

		/* EAL pinned this thread to its lcore; the tool needs both of its CPUs. */
		CPU_ZERO(&set);
		CPU_SET(main_cpu, &set);
		CPU_SET(cpu, &set);
		sched_setaffinity(0, sizeof(set), &set);
		dup2(fds[1], STDOUT_FILENO);
		dup2(fds[1], STDERR_FILENO);
		execvp(argv[0], argv);
		_exit(EXEC_FAILED);
	}
	close(fds[1]);
	for (;;) {
		struct pollfd p = {.fd = fds[0], .events = POLLIN};
		double left = deadline - now_s();
		int ready;
		ssize_t n;

		if (left <= 0) {
			kill(pid, SIGKILL);
			break;
		}
		ready = poll(&p, 1, (int)(left * 1000) + 1);
		if (ready < 0 && errno == EINTR)
			continue;
		if (ready < 0) {
			kill(pid, SIGKILL);
			break;
		}
		if (ready == 0)
			continue;
		/* Data, hang-up or error alike: read, and end at EOF or a real error. */
		if (used + 1 < room) {
			n = read(fds[0], out + used, room - used - 1);
			if (n > 0)
				used += (size_t)n;
		} else {
			char sink[4096];	/* past room: drained, so the tool never blocks on us */

			n = read(fds[0], sink, sizeof(sink));
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n < 0)
				kill(pid, SIGKILL);
			break;
		}
	}
	out[used] = '\0';
	close(fds[0]);
	/* Its output has ended (EOF) or it was killed: it exits now, so this cannot hang. */
	while (waitpid(pid, status, 0) != pid)
		if (errno != EINTR)
			return -1;
	if (!WIFEXITED(*status))
		*status = -1;
	else
		*status = WEXITSTATUS(*status);
	return 0;
}

/* The last non-empty line of text, for an error message. */
static const char *last_line(char *text)
{
	char *end = text + strlen(text);

	while (end > text && (end[-1] == '\n' || end[-1] == ' '))
		*--end = '\0';
	while (end > text && end[-1] != '\n')
		end--;
	return end;
}

/* The throughput test prints one row per buffer size: lcore, buffer size, burst size,
 * enqueued, dequeued, failed enqueues, failed dequeues, MOps, Gbps, cycles per buffer. */
static bool parse_rows(const char *out, const struct bench_crypto_perf_req *req, double *mpps)
{
	unsigned found = 0;

	for (unsigned i = 0; i < req->n_lens; i++)
		mpps[i] = 0;
	for (const char *line = out, *end; *line; line = end ? end + 1 : line + strlen(line)) {
		unsigned lcore, len, burst;
		unsigned long long enq, deq, fail_enq, fail_deq;
		double mops, gbps, cycles;
		char row[ROW_MAX];
		size_t n;
		int used = -1;

		end = strchr(line, '\n');
		n = end ? (size_t)(end - line) : strlen(line);
		/* One line at a time, and all of it: sscanf's conversions skip newlines, so over
		 * the whole output a short line would borrow its missing fields from the next. */
		/* Digits, points and blanks only: sscanf would take "-1" as a huge count and
		 * "inf" as a rate. */
		if (n >= sizeof(row) || strspn(line, " \t0123456789.") != n)
			continue;
		memcpy(row, line, n);
		row[n] = '\0';
		if (sscanf(row, "%u %u %u %llu %llu %llu %llu %lf %lf %lf %n", &lcore, &len, &burst, &enq, &deq, &fail_enq,
			   &fail_deq, &mops, &gbps, &cycles, &used) != 10 || row[used] != '\0')
			continue;
		for (unsigned i = 0; i < req->n_lens; i++)
			if (req->lens[i] == len && lcore == req->cpu && deq == req->ops && mops > 0 && mpps[i] == 0) {
				mpps[i] = mops;
				found++;
			}
	}
	return found == req->n_lens;
}

int bench_crypto_perf(const struct bench_crypto_perf_req *req, double *mpps)
{
	static unsigned runs;
	char lcores[32], main_lcore[16], prefix[64], key_sz[8], aad_sz[16], ops[24], sizes[16 * BENCH_CRYPTO_PERF_MAX_LENS];
	char runtime[PATH_MAX], *out = malloc(OUTPUT_MAX), *slash;
	int status = 0, rc = -1;
	size_t at = 0;

	if (!out || req->n_lens == 0 || req->n_lens > BENCH_CRYPTO_PERF_MAX_LENS || req->cpu == req->main_cpu) {
		fprintf(stderr, "egress-bench: cannot run %s: %s\n", TOOL,
			!out ? "out of memory" : req->cpu == req->main_cpu ? "its two lcores on one CPU" : "too many lengths");
		goto done;
	}
	snprintf(lcores, sizeof(lcores), "%u,%u", req->main_cpu, req->cpu);
	snprintf(main_lcore, sizeof(main_lcore), "%u", req->main_cpu);
	snprintf(prefix, sizeof(prefix), "--file-prefix=egress-bench-cp%d-%u", (int)getpid(), runs++);
	snprintf(key_sz, sizeof(key_sz), "%u", req->alg == EG_AEAD_AES_GCM_128 ? 16 : 32);
	snprintf(aad_sz, sizeof(aad_sz), "%u", req->aad_len);
	snprintf(ops, sizeof(ops), "%llu", (unsigned long long)req->ops);
	for (unsigned i = 0; i < req->n_lens; i++)
		at += (size_t)snprintf(sizes + at, sizeof(sizes) - at, "%s%u", i ? "," : "", req->lens[i]);

	/* DESIGN.md's command, with this case's algorithm, direction, AAD and lengths. */
	char *algo = req->alg == EG_AEAD_CHACHA20_POLY1305 ? "chacha20-poly1305" : "aes-gcm";
	char *const argv[] = {TOOL, "--no-huge", "-m", "256", "--no-pci", "--no-telemetry", "--log-level=1",
			      "-l", lcores, "--main-lcore", main_lcore, prefix, "--vdev", "crypto_aesni_mb", "--",
			      "--ptest", "throughput", "--devtype", "crypto_aesni_mb", "--optype", "aead",
			      "--aead-algo", algo,
			      "--aead-op", req->decrypt ? "decrypt" : "encrypt", "--aead-key-sz", key_sz,
			      "--aead-iv-sz", "12", "--aead-aad-sz", aad_sz, "--digest-sz", "16", "--buffer-sz", sizes,
			      "--burst-sz", "32", "--total-ops", ops, NULL};
	/* At least a quarter of a million operations a second, or something is wrong. */
	double deadline = now_s() + 60 + 4.0 * (double)req->n_lens * (double)req->ops / 1e6;

	if (run_tool(argv, req->main_cpu, req->cpu, deadline, out, OUTPUT_MAX, &status) != 0) {
		fprintf(stderr, "egress-bench: cannot run %s: %s\n", TOOL, strerror(errno));
		goto done;
	}
	/* Its runtime directory, beside ours (see dataplane/runtime_dir.h). */
	snprintf(runtime, sizeof(runtime), "%s", rte_eal_get_runtime_dir());
	if ((slash = strrchr(runtime, '/'))) {
		snprintf(slash + 1, sizeof(runtime) - (size_t)(slash + 1 - runtime), "%s",
			 prefix + strlen("--file-prefix="));
		dp_runtime_dir_remove(runtime);
	}
	if (status == EXEC_FAILED && out[0] == '\0') {
		fprintf(stderr, "egress-bench: %s not found (Debian's dpdk-dev; tools/install-deps.sh installs it)\n",
			TOOL);
		goto done;
	}
	if (status != 0 || !parse_rows(out, req, mpps)) {
		fprintf(stderr, "egress-bench: %s %s (%s %s, lengths %s): %s\n", TOOL,
			status < 0 ? "was killed or timed out" : status ? "failed" : "gave no rate for every length",
			algo,
			req->decrypt ? "decrypt" : "encrypt", sizes, last_line(out));
		goto done;
	}
	rc = 0;
done:
	free(out);
	return rc;
}
