/* egress-control: the control process. See README "Running it". */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "methods.h"
#include "metrics.h"
#include "metrics_http.h"
#include "rpc.h"
#include "state.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	struct cp_rpc_server_opts opts = {0};
	struct pollfd also[1 + CP_METRICS_MAX_CLIENTS];
	struct cp_metrics_http *metrics = NULL;
	unsigned n_also = 0;
	const char *config = NULL;
	struct cp_state st;
	struct eg_error err = {0};
	struct sigaction sa = {0};
	int opt, rc;

	while ((opt = getopt(argc, argv, "c:h")) != -1) {
		switch (opt) {
		case 'c':
			config = optarg;
			break;
		case 'h':
			printf("usage: egress-control -c CONFIG\n");
			return 0;
		default:
			fprintf(stderr, "usage: egress-control -c CONFIG\n");
			return 2;
		}
	}
	if (!config) {
		fprintf(stderr, "usage: egress-control -c CONFIG\n");
		return 2;
	}
	rc = cp_state_init(&st, config, &err);
	if (rc) {
		fprintf(stderr, "egress-control: bad config %s: %s: %s\n", config, err.path, err.msg);
		cp_state_free(&st);
		return 1;
	}
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	opts.path = st.cfg.control.socket;
	opts.mode = 0660;
	opts.group = st.cfg.control.socket_group;
	opts.methods = cp_methods;
	opts.ctx = &st;
	st.rpc = cp_rpc_server_open(&opts);
	if (!st.rpc) {
		fprintf(stderr, "egress-control: cannot serve %s\n", opts.path);
		cp_state_free(&st);
		return 1;
	}
	if (st.cfg.control.metrics[0]) {
		metrics = cp_metrics_http_open(st.cfg.control.metrics, cp_metrics_render, &st);
		if (!metrics) {
			cp_rpc_server_close(st.rpc);
			st.rpc = NULL;
			cp_state_free(&st);
			return 1;
		}
	}
	fprintf(stderr, "egress-control: instance %s, socket %s, %u egress(es), %u policy(ies)%s%s\n",
		st.cfg.instance, opts.path, st.n_egresses, st.n_policies, metrics ? ", metrics on " : "",
		metrics ? st.cfg.control.metrics : "");
	while (!stop) {
		/* WireGuard handshakes and probe answers wait in the punt ring: look often when
		 * there can be any, and wake for the next probe. */
		n_also = metrics ? cp_metrics_http_pollfds(metrics, also) : 0;
		rc = cp_rpc_server_poll_also(st.rpc, cp_probes_due_ms(&st, st.wg.present ? 5 : 100), also, n_also);
		if (rc && rc != -EINTR) {
			fprintf(stderr, "egress-control: socket failed: %s\n", strerror(-rc));
			break;
		}
		if (metrics)
			cp_metrics_http_handle(metrics, also, n_also);
		cp_state_poll_punt(&st);
		cp_state_tick(&st);
		cp_capture_tick(&st);
		cp_wg_poll(&st);
	}
	fprintf(stderr, "egress-control: stopping\n");
	cp_metrics_http_close(metrics);
	cp_rpc_server_close(st.rpc);
	st.rpc = NULL;
	cp_state_free(&st);
	return rc && rc != -EINTR ? 1 : 0;
}
