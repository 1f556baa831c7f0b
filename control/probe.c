#include "probe.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe_wire.h"
#include "shm.h"
#include "state.h"

#define LOG(fmt, ...) fprintf(stderr, "egress-control: " fmt "\n", ##__VA_ARGS__)
#define MS 1000000ull

void cp_probes_free(struct cp_probes *p)
{
	for (unsigned i = 0; i < p->n; i++)
		eg_path_window_free(&p->p[i].win);
	free(p->p);
	memset(p, 0, sizeof(*p));
}

void cp_probes_reset(struct cp_probes *p)
{
	for (unsigned i = 0; i < p->n; i++) {
		struct cp_probe *q = &p->p[i];

		if (!q->on)
			continue;
		eg_path_window_reset(&q->win);
		q->down = false;
		q->next_ns = 0;
	}
	p->changed = true;
}

/* The address probes leave from: configured, else the egress port's (direct) or the first
 * site port's (tunnels: the far side routes our site's addresses back into the tunnel). */
static bool probe_source(const struct cp_state *st, const struct eg_egress_cfg *e, struct eg_addr *out)
{
	const struct eg_dataplane_cfg *dp = &st->cfg.dataplane;
	uint8_t fam = e->probe.target.family;

	if (e->probe.has_source) {
		*out = e->probe.source;
		return true;
	}
	for (unsigned i = 0; i < dp->n_ports; i++) {
		const struct eg_port_cfg *p = &dp->ports[i];
		const struct eg_prefix *a = fam == EG_AF_INET ? &p->ipv4 : &p->ipv6;
		bool wanted = e->type == EG_EGRESS_DIRECT ? strcmp(p->name, e->port) == 0 : p->role == EG_ROLE_SITE;

		if (wanted && (fam == EG_AF_INET ? p->has_ipv4 : p->has_ipv6)) {
			out->family = fam;
			memcpy(out->addr, a->addr, 16);
			return true;
		}
	}
	return false;
}

static bool addr_equal(const struct eg_addr *a, const struct eg_addr *b)
{
	return a->family == b->family && memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

static bool same_probe(const struct eg_probe_cfg *a, const struct eg_probe_cfg *b)
{
	return a->enabled == b->enabled && a->interval_ms == b->interval_ms && a->method == b->method &&
	       a->port == b->port && a->window == b->window && a->down_after == b->down_after &&
	       a->timeout_ms == b->timeout_ms && addr_equal(&a->target, &b->target) &&
	       a->has_source == b->has_source && (!a->has_source || addr_equal(&a->source, &b->source));
}

int cp_probes_sync(struct cp_state *st, const struct eg_egress_cfg *egs, unsigned n, const uint32_t *ids)
{
	struct cp_probes *old = &st->probes;
	struct cp_probe *p = calloc(n ? n : 1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		const struct eg_egress_cfg *e = &egs[i];
		struct cp_probe *q = &p[i];

		snprintf(q->name, sizeof(q->name), "%s", e->name);
		q->id = (uint16_t)ids[i];
		q->cfg = e->probe;
		if (!e->probe.enabled)
			continue;
		for (unsigned j = 0; j < old->n; j++) {
			struct cp_probe *o = &old->p[j];

			if (o->on && strcmp(o->name, e->name) == 0 && same_probe(&o->cfg, &e->probe) &&
			    o->id == q->id) {
				*q = *o;		/* takes the window over */
				memset(o, 0, sizeof(*o));
				break;
			}
		}
		if (q->on)
			continue;
		if (!probe_source(st, e, &q->source)) {
			LOG("egress %s: no address of the probe target's family to probe from; not probing",
			    e->name);
			continue;
		}
		if (eg_path_window_init(&q->win, e->probe.window)) {
			for (unsigned j = 0; j < i; j++)
				eg_path_window_free(&p[j].win);
			free(p);
			return -ENOMEM;
		}
		q->on = true;
	}
	cp_probes_free(old);
	st->probes.p = p;
	st->probes.n = n;
	st->probes.changed = true;
	return 0;
}

static bool send_probe(struct cp_state *st, struct cp_probe *q)
{
	struct eg_msg m = {.kind = EG_MSG_PROBE_SEND, .family = q->cfg.target.family, .peer_slot = q->id};
	bool v4 = m.family == EG_AF_INET;

	memcpy(m.local, q->source.addr, 16);
	memcpy(m.remote, q->cfg.target.addr, 16);
	if (q->cfg.method == EG_PROBE_STAMP) {
		m.proto = IPPROTO_UDP;
		m.local_port = (uint16_t)(EG_PROBE_PORT_BASE + q->id);
		m.remote_port = q->cfg.port;
		m.len = EG_STAMP_LEN;
		eg_put_be32(m.data + EG_STAMP_SEQ, q->seq);
		m.data[EG_STAMP_ERROR_ESTIMATE] = EG_STAMP_ERROR_ESTIMATE_VALUE >> 8;
		m.data[EG_STAMP_ERROR_ESTIMATE + 1] = EG_STAMP_ERROR_ESTIMATE_VALUE & 0xff;
	} else {
		m.proto = v4 ? IPPROTO_ICMP : IPPROTO_ICMPV6;
		m.local_port = (uint16_t)(EG_PROBE_ICMP_ID_BASE + q->id);
		m.remote_port = (uint16_t)q->seq;
		m.len = EG_PROBE_ICMP_LEN;
		eg_put_be32(m.data + 8, q->seq);
	}
	return eg_msg_put(eg_shm_inject(st->shm.hdr), &m);
}

void cp_probes_poll(struct cp_state *st)
{
	struct cp_probes *ps = &st->probes;
	uint64_t now = eg_now_ns();

	if (!st->mapped)
		return;
	for (unsigned i = 0; i < ps->n; i++) {
		struct cp_probe *q = &ps->p[i];
		uint64_t lost_before, interval = (uint64_t)q->cfg.interval_ms * MS;
		bool down;

		if (!q->on)
			continue;
		if (now >= q->next_ns) {
			/* On schedule, without catching up a backlog after a stall. */
			q->next_ns = q->next_ns && now - q->next_ns < interval ? q->next_ns + interval : now + interval;
			if (send_probe(st, q))
				eg_path_probe_sent(&q->win, q->seq, now);
			q->seq++;
		}
		lost_before = q->win.lost;
		eg_path_expire(&q->win, now, (uint64_t)q->cfg.timeout_ms * MS);
		down = eg_path_silence_ns(&q->win, now) > (uint64_t)q->cfg.down_after * interval;
		if (down != q->down || q->win.lost != lost_before)
			ps->changed = true;
		q->down = down;
	}
}

static int probe_by_id(const struct cp_probes *ps, uint32_t id)
{
	for (unsigned i = 0; i < ps->n; i++)
		if (ps->p[i].on && ps->p[i].id == id)
			return (int)i;
	return -1;
}

void cp_probes_answer(struct cp_state *st, const struct eg_msg *m)
{
	struct cp_probes *ps = &st->probes;
	uint64_t t1, rtt;
	uint32_t seq, id;
	struct cp_probe *q;
	int i;

	if (m->proto == IPPROTO_UDP) {
		if (m->len < EG_STAMP_LEN || m->local_port < EG_PROBE_PORT_BASE)
			return;
		id = m->local_port - EG_PROBE_PORT_BASE;
	} else {
		if (m->len < 12 || m->local_port < EG_PROBE_ICMP_ID_BASE)
			return;
		id = m->local_port - EG_PROBE_ICMP_ID_BASE;
	}
	i = probe_by_id(ps, id);
	if (i < 0)
		return;
	q = &ps->p[i];
	/* Only the target answers for its path; anything else naming our port is noise. */
	if (m->family != q->cfg.target.family || memcmp(m->remote, q->cfg.target.addr, 16) != 0)
		return;
	if (m->proto == IPPROTO_UDP) {
		if (q->cfg.method != EG_PROBE_STAMP)
			return;
		/* RTT less the time the reflector held it: (T4 - T1) - (T3 - T2). */
		uint64_t t2 = eg_get_be64(m->data + EG_STAMP_RX_TIMESTAMP), t3 = eg_get_be64(m->data + EG_STAMP_TIMESTAMP);
		uint64_t held = eg_ntp_diff_ns(t2, t3);

		seq = eg_get_be32(m->data + EG_STAMP_SENDER_SEQ);
		t1 = eg_get_be64(m->data + EG_STAMP_SENDER_TIMESTAMP);
		rtt = eg_ntp_diff_ns(t1, m->rx_ntp);
		rtt = rtt > held ? rtt - held : 0;
	} else {
		if (q->cfg.method != EG_PROBE_ICMP)
			return;
		seq = eg_get_be32(m->data + 8);
		t1 = eg_get_be64(m->data);
		rtt = eg_ntp_diff_ns(t1, m->rx_ntp);
	}
	if (eg_path_probe_answered(&q->win, seq, rtt, eg_now_ns())) {
		if (q->down)
			q->down = false;
		ps->changed = true;
	}
}

unsigned cp_probes_due_ms(const struct cp_state *st, unsigned max_ms)
{
	uint64_t now = eg_now_ns(), due = now + (uint64_t)max_ms * MS;

	if (!st->mapped)
		return max_ms;
	for (unsigned i = 0; i < st->probes.n; i++)
		if (st->probes.p[i].on && st->probes.p[i].next_ns < due)
			due = st->probes.p[i].next_ns;
	return due <= now ? 0 : (unsigned)((due - now + MS - 1) / MS);
}

void cp_probes_view(const struct cp_state *st, unsigned i, uint8_t base_state, struct eg_path_view *v)
{
	const struct cp_probe *q = i < st->probes.n ? &st->probes.p[i] : NULL;
	struct eg_path_stats s;

	*v = (struct eg_path_view){.state = base_state == EG_PATH_DOWN ? EG_PATH_DOWN : EG_PATH_UP};
	if (!q || !q->on)
		return;
	if (q->down)
		v->state = EG_PATH_DOWN;
	eg_path_window_stats(&q->win, &s);
	if (s.answered) {
		v->measured = true;
		v->rtt_ms = s.rtt_avg_ms;
		v->jitter_ms = s.jitter_ms;
		v->loss_pct = s.loss_pct;
	}
}

static json_t *age_ms(uint64_t then_ns, uint64_t now_ns)
{
	return then_ns ? json_integer((json_int_t)((now_ns - then_ns) / MS)) : json_null();
}

json_t *cp_probes_json(const struct cp_state *st, unsigned i)
{
	const struct cp_probe *q = i < st->probes.n ? &st->probes.p[i] : NULL;
	uint64_t now = eg_now_ns();
	struct eg_path_stats s;
	char target[64];

	if (!q || !q->on)
		return NULL;
	eg_path_window_stats(&q->win, &s);
	eg_addr_format(q->cfg.target.family, q->cfg.target.addr, target, sizeof(target));
	return json_pack("{s:s,s:s,s:i,s:b,s:{s:f,s:f,s:f,s:f},s:f,s:f,s:o,s:o,s:{s:i,s:i,s:i},s:{s:I,s:I,s:I,s:I}}",
			 "method", q->cfg.method == EG_PROBE_STAMP ? "stamp" : "icmp", "target", target,
			 "interval_ms", (int)q->cfg.interval_ms, "down", q->down,
			 "rtt_ms", "min", s.rtt_min_ms, "avg", s.rtt_avg_ms, "p50", s.rtt_p50_ms, "p99", s.rtt_p99_ms,
			 "jitter_ms", s.jitter_ms, "loss_pct", s.loss_pct,
			 "last_probe_age_ms", age_ms(q->win.last_sent_ns, now),
			 "last_answer_age_ms", age_ms(q->win.last_answer_ns, now),
			 "window", "answered", (int)s.answered, "lost", (int)s.lost, "pending", (int)s.pending,
			 "totals", "sent", (json_int_t)q->win.sent, "answered", (json_int_t)q->win.answered,
			 "lost", (json_int_t)q->win.lost, "late", (json_int_t)q->win.late);
}
