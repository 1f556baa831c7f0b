/* The control process's probing of every egress path (issue 5): it schedules each
 * egress's probes (ICMP echo or STAMP, lib/probe_wire.h) and hands them to the dataplane
 * over the inject ring; the answers come back over the punt ring with the dataplane's
 * timestamps, and become the path's metrics (lib/path_metrics.h) and its up/down verdict:
 * down after `down_after` intervals without an answer, up again with the next one. */
#ifndef CP_PROBE_H
#define CP_PROBE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "msg_ring.h"
#include "path_metrics.h"
#include "path_select.h"

struct cp_state;

struct cp_probe {
	char name[EG_NAME_LEN];		/* the egress's */
	bool on;			/* the egress has a probe config */
	uint16_t id;			/* the egress's counter id: names its probes */
	struct eg_probe_cfg cfg;
	struct eg_addr source;		/* resolved: from the config or the ports */
	uint32_t seq;			/* next sequence number */
	uint64_t next_ns;		/* when the next probe is due */
	struct eg_path_window win;
	bool down;			/* no answer for down_after intervals */
};

struct cp_probes {
	unsigned n;
	struct cp_probe *p;		/* parallel to cp_state.egresses */
	bool changed;			/* new answers, losses or verdicts since last looked */
};

/* Probing for a new egress list (ids parallel to egs): an egress whose name and probe
 * config are unchanged keeps its measurements. 0 or -ENOMEM (old left as it was). */
int cp_probes_sync(struct cp_state *st, const struct eg_egress_cfg *egs, unsigned n, const uint32_t *ids);
void cp_probes_free(struct cp_probes *p);
/* Forgets every measurement (the dataplane went away). */
void cp_probes_reset(struct cp_probes *p);

/* Sends what is due and settles what timed out. Attached dataplanes only. */
void cp_probes_poll(struct cp_state *st);
/* An EG_MSG_PROBE_REPLY from the punt ring. */
void cp_probes_answer(struct cp_state *st, const struct eg_msg *m);
/* Milliseconds until the next probe is due (capped at max_ms). */
unsigned cp_probes_due_ms(const struct cp_state *st, unsigned max_ms);

/* Egress i's measurements for path.list and egress.list: probe settings, RTT (min, avg,
 * p50, p99), jitter, loss, last answer's age, totals. NULL when it is not probed. */
json_t *cp_probes_json(const struct cp_state *st, unsigned i);

/* What selection knows of egress i's path, given its state from link and SAs. */
void cp_probes_view(const struct cp_state *st, unsigned i, uint8_t base_state, struct eg_path_view *v);

#endif
