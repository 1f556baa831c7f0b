/* egress-bench --live: the rates of a running dataplane, from its shared-memory counters,
 * while an external generator drives it (README "Driving a running dataplane over
 * net_memif"). */
#ifndef BENCH_LIVE_H
#define BENCH_LIVE_H

#include <stdbool.h>
#include <stdio.h>

/* Whether the command line asks for live mode: --live anywhere before a "--". */
bool bench_live_wanted(int argc, char **argv);

/* Live mode's own option parsing, sampling and report. Starts neither EAL nor the offline
 * context. Returns the exit status: 0; 1 when the dataplane restarted or went away during
 * the window; 2 for bad usage, no such instance or a segment it cannot read. */
int bench_live_main(int argc, char **argv);

/* Its usage lines; lead is "usage:" alone, or spaces under another usage line. */
void bench_live_usage(FILE *f, const char *lead);

#endif
