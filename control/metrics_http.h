/* The HTTP side of the Prometheus endpoint (control.metrics): GET /metrics answered with
 * what a render callback writes, everything else refused. It runs inside the control
 * loop without blocking it: descriptors go into the loop's poll (cp_rpc_server_poll_also),
 * each connection reads one request and gets one answer, and a client that is slow to ask
 * or to read is dropped after a few seconds. */
#ifndef CP_METRICS_HTTP_H
#define CP_METRICS_HTTP_H

#include <poll.h>
#include <stdio.h>

/* Writes the exposition text to f. */
typedef void (*cp_metrics_render_fn)(void *ctx, FILE *f);

enum { CP_METRICS_MAX_CLIENTS = 8 };

struct cp_metrics_http;

/* Listens on "host:port" or "[v6]:port". NULL with a message on stderr on failure. */
struct cp_metrics_http *cp_metrics_http_open(const char *listen, cp_metrics_render_fn render, void *ctx);
/* Fills out (room for 1 + CP_METRICS_MAX_CLIENTS) with what to wait on; returns how many. */
unsigned cp_metrics_http_pollfds(struct cp_metrics_http *m, struct pollfd *out);
/* Handles what poll reported in the n entries pollfds gave. */
void cp_metrics_http_handle(struct cp_metrics_http *m, const struct pollfd *pfds, unsigned n);
void cp_metrics_http_close(struct cp_metrics_http *m);

#endif
