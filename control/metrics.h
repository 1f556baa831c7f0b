/* Prometheus metrics of egress-control (control.metrics): ports, workers, drops by
 * reason, egress paths and their probe figures, policies, WireGuard peers, ESP SAs, the
 * table's generation and publish latency. Served over HTTP by metrics_http.c. */
#ifndef CP_METRICS_H
#define CP_METRICS_H

#include <stdio.h>

#include "state.h"

/* Writes the text exposition format (version 0.0.4) for ctx, a struct cp_state. */
void cp_metrics_render(void *ctx, FILE *f);

#endif
