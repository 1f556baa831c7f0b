/* egress-pathsim: a path simulator for the integration tests, in place of netem (which
 * the test machines' kernel lacks). It bridges Ethernet frames between two interfaces,
 * typically two veth ends in a "wire" namespace, and delays, jitters, loses or
 * blackholes them per direction as the control socket says, while it runs.
 *
 *   egress-pathsim run --a IFACE --b IFACE --control SOCKET [--seed N] [--queue-max N]
 *   egress-pathsim ctl SOCKET REQUEST...
 *
 * One thread, one ppoll() loop whose timeout is the next held frame's due time: it
 * sleeps whenever nothing is due, since the data plane under test needs the CPUs. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "control_server.h"
#include "ctl_client.h"
#include "direction.h"
#include "packet_port.h"

#define DEFAULT_QUEUE_MAX 65536
/* Held memory per direction is at most queue-max x (frame + 32-byte slot); this cap only
 * catches typos: 2^24 full-size frames would already be 150 GB. */
#define QUEUE_MAX_LIMIT (1 << 24)
/* Work done per loop turn and side before looking at the others again, so that a flood
 * one way neither starves the other way nor the control socket. */
#define RECEIVE_BATCH 64
#define SEND_BATCH 256

enum { SIDE_A, SIDE_B, SIDES };
enum { POLL_PORT_A, POLL_PORT_B, POLL_CONTROL, POLL_COUNT = POLL_CONTROL + CONTROL_POLLFDS };

struct path_sim {
	struct packet_port port[SIDES];
	/* dir[SIDE_A] carries what arrives on a (a2b), dir[SIDE_B] what arrives on b. */
	struct direction dir[SIDES];
	struct control_server control;
	uint64_t seed;
	size_t queue_max;
};

static volatile sig_atomic_t stop_requested;

static void request_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void usage(FILE *to)
{
	fprintf(to,
		"usage: egress-pathsim run --a IFACE --b IFACE --control SOCKET [--seed N] [--queue-max N]\n"
		"       egress-pathsim ctl SOCKET set a2b|b2a|both key=value...   (delay_ms, jitter_ms, loss_pct, blackhole)\n"
		"       egress-pathsim ctl SOCKET reset a2b|b2a|both\n"
		"       egress-pathsim ctl SOCKET show\n");
}

static bool parse_u64(const char *text, uint64_t *out)
{
	char *end;

	if (*text < '0' || *text > '9')
		return false;
	errno = 0;
	*out = strtoull(text, &end, 0);
	return errno == 0 && *end == '\0';
}

/* Without --seed every run differs; show reports the seed, so any run can be repeated. */
static uint64_t fresh_seed(void)
{
	uint64_t seed;

	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) == sizeof(seed))
		return seed;
	return now_ns() ^ ((uint64_t)getpid() << 32);
}

static void answer_request(void *ctx, const char *request, char *reply, size_t cap)
{
	struct path_sim *sim = ctx;
	struct control_target target = {
		.a2b = &sim->dir[SIDE_A], .b2a = &sim->dir[SIDE_B],
		.seed = sim->seed, .queue_max = sim->queue_max,
	};

	for (int side = 0; side < SIDES; side++)
		sim->dir[side].counters.kernel_drops += packet_port_take_kernel_drops(&sim->port[side]);
	control_handle(&target, request, reply, cap);
}

/* Reads what arrived on one side, up to a batch, into that side's direction. */
static void receive_side(struct path_sim *sim, int side)
{
	static unsigned char buf[PACKET_PORT_BUFFER];
	struct direction *d = &sim->dir[side];

	for (int i = 0; i < RECEIVE_BATCH; i++) {
		const unsigned char *frame;
		uint32_t len;

		switch (packet_port_receive(&sim->port[side], buf, &frame, &len)) {
		case PACKET_NONE:
			return;
		case PACKET_OVERSIZED:
			d->counters.in++;
			d->counters.oversized++;
			break;
		case PACKET_FRAME:
			direction_accept(d, frame, len, now_ns());
			break;
		}
	}
}

/* Sends the frames that are due, up to a batch; false if some due ones remain. */
static bool send_due(struct path_sim *sim, int side, uint64_t now)
{
	struct direction *d = &sim->dir[side];
	struct packet_port *out = &sim->port[side == SIDE_A ? SIDE_B : SIDE_A];
	const struct held_frame *first;

	for (int i = 0; i < SEND_BATCH; i++) {
		struct held_frame f;

		first = held_queue_first(&d->held);
		if (!first || first->due_ns > now)
			return true;
		held_queue_pop(&d->held, &f);
		/* No retry: a wire that will not take a frame now loses it, like a full
		 * transmit ring; the counter says so. */
		if (packet_port_send(out, f.bytes, f.len) == 0)
			d->counters.forwarded++;
		else
			d->counters.tx_errors++;
		free(f.bytes);
	}
	first = held_queue_first(&d->held);
	return !first || first->due_ns > now;
}

/* How long ppoll() may sleep: until the first held frame is due, or for ever. */
static struct timespec *time_to_next_due(const struct path_sim *sim, struct timespec *ts)
{
	uint64_t next = UINT64_MAX, now;

	for (int side = 0; side < SIDES; side++) {
		const struct held_frame *first = held_queue_first(&sim->dir[side].held);

		if (first && first->due_ns < next)
			next = first->due_ns;
	}
	if (next == UINT64_MAX)
		return NULL;
	now = now_ns();
	next = next > now ? next - now : 0;
	ts->tv_sec = (time_t)(next / 1000000000u);
	ts->tv_nsec = (long)(next % 1000000000u);
	return ts;
}

/* False when the side's interface is gone: nothing more can cross the wire. */
static bool check_port_error(struct path_sim *sim, int side)
{
	struct packet_port *p = &sim->port[side];
	int error = packet_port_take_error(p);

	/* The socket reports ENETDOWN both when the interface goes down, after which it
	 * resumes by itself on the way up, and when it is deleted. */
	if (!packet_port_interface_exists(p)) {
		fprintf(stderr, "egress-pathsim: interface %s is gone\n", p->name);
		return false;
	}
	if (error)
		fprintf(stderr, "egress-pathsim: %s: %s\n", p->name, strerror(error));
	return true;
}

static int bridge(struct path_sim *sim, const sigset_t *wait_mask)
{
	struct pollfd pfds[POLL_COUNT];
	struct timespec ts;

	while (!stop_requested) {
		uint64_t now = now_ns();
		bool all_sent = true;
		int n;

		for (int side = 0; side < SIDES; side++)
			all_sent &= send_due(sim, side, now);

		for (int side = 0; side < SIDES; side++)
			pfds[side] = (struct pollfd){ .fd = sim->port[side].fd, .events = POLLIN };
		control_server_pollfds(&sim->control, &pfds[POLL_CONTROL]);
		ts = (struct timespec){ 0 };
		/* Signals are blocked except inside ppoll(): a SIGTERM can neither slip in
		 * between the check of stop_requested and the sleep, nor be lost. */
		n = ppoll(pfds, POLL_COUNT, all_sent ? time_to_next_due(sim, &ts) : &ts, wait_mask);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("egress-pathsim: ppoll");
			return 1;
		}
		for (int side = 0; side < SIDES; side++) {
			if (pfds[side].revents & POLLNVAL) {
				fprintf(stderr, "egress-pathsim: %s: socket closed under us\n", sim->port[side].name);
				return 1;
			}
			if ((pfds[side].revents & POLLERR) && !check_port_error(sim, side))
				return 1;
			if (pfds[side].revents & POLLIN)
				receive_side(sim, side);
		}
		control_server_service(&sim->control, &pfds[POLL_CONTROL], answer_request, sim);
	}
	return 0;
}

static int run(int argc, char **argv)
{
	static const struct option options[] = {
		{ "a", required_argument, NULL, 'a' },
		{ "b", required_argument, NULL, 'b' },
		{ "control", required_argument, NULL, 'c' },
		{ "seed", required_argument, NULL, 's' },
		{ "queue-max", required_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *iface[SIDES] = { NULL, NULL }, *control_path = NULL;
	struct path_sim sim = { .queue_max = DEFAULT_QUEUE_MAX };
	struct prng seeder;
	struct sigaction stop = { .sa_handler = request_stop };
	sigset_t stop_signals, wait_mask;
	char err[256], reply[CONTROL_REPLY_MAX];
	bool seeded = false;
	uint64_t v;
	int opt, rc;

	/* Past "egress-pathsim run", with argv whole so that getopt names the program. */
	optind = 2;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'a':
			iface[SIDE_A] = optarg;
			break;
		case 'b':
			iface[SIDE_B] = optarg;
			break;
		case 'c':
			control_path = optarg;
			break;
		case 's':
			if (!parse_u64(optarg, &sim.seed)) {
				fprintf(stderr, "egress-pathsim: --seed wants an unsigned 64-bit number, got %s\n", optarg);
				return 2;
			}
			seeded = true;
			break;
		case 'q':
			if (!parse_u64(optarg, &v) || v < 1 || v > QUEUE_MAX_LIMIT) {
				fprintf(stderr, "egress-pathsim: --queue-max wants 1 to %d frames, got %s\n",
					QUEUE_MAX_LIMIT, optarg);
				return 2;
			}
			sim.queue_max = (size_t)v;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || !iface[SIDE_A] || !iface[SIDE_B] || !control_path) {
		usage(stderr);
		return 2;
	}
	if (!seeded)
		sim.seed = fresh_seed();
	seeder.state = sim.seed;
	direction_init(&sim.dir[SIDE_A], "a2b", prng_next(&seeder), sim.queue_max);
	direction_init(&sim.dir[SIDE_B], "b2a", prng_next(&seeder), sim.queue_max);
	sim.port[SIDE_A].fd = sim.port[SIDE_B].fd = -1;
	sim.control.listen_fd = -1;

	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGINT);
	sigaddset(&stop_signals, SIGTERM);
	sigprocmask(SIG_BLOCK, &stop_signals, &wait_mask);
	sigdelset(&wait_mask, SIGINT);
	sigdelset(&wait_mask, SIGTERM);
	/* Installed even where the shell set SIGINT to be ignored (a background job). */
	sigaction(SIGINT, &stop, NULL);
	sigaction(SIGTERM, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);

	rc = 1;
	if (packet_port_open(&sim.port[SIDE_A], iface[SIDE_A], err, sizeof(err)) < 0 ||
	    packet_port_open(&sim.port[SIDE_B], iface[SIDE_B], err, sizeof(err)) < 0) {
		fprintf(stderr, "egress-pathsim: %s\n", err);
		goto out;
	}
	if (sim.port[SIDE_A].ifindex == sim.port[SIDE_B].ifindex) {
		fprintf(stderr, "egress-pathsim: --a and --b name the same interface\n");
		goto out;
	}
	/* The control socket last: once it answers, the wire is up. */
	if (control_server_open(&sim.control, control_path, err, sizeof(err)) < 0) {
		fprintf(stderr, "egress-pathsim: %s\n", err);
		goto out;
	}
	fprintf(stderr, "egress-pathsim: bridging %s <-> %s, control %s, seed %" PRIu64 ", queue-max %zu\n",
		iface[SIDE_A], iface[SIDE_B], control_path, sim.seed, sim.queue_max);

	rc = bridge(&sim, &wait_mask);

	/* The final counters, for the test's log. */
	answer_request(&sim, "show", reply, sizeof(reply));
	fprintf(stderr, "egress-pathsim: stopping: %s", reply);
out:
	control_server_close(&sim.control);
	for (int side = 0; side < SIDES; side++) {
		packet_port_close(&sim.port[side]);
		direction_free(&sim.dir[side]);
	}
	return rc;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "run") == 0)
		return run(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "ctl") == 0) {
		if (argc < 4) {
			usage(stderr);
			return CTL_EXIT_NO_SIMULATOR;
		}
		return ctl_client_run(argv[2], argc - 3, argv + 3);
	}
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	usage(stderr);
	return 2;
}
