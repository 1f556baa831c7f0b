#include "capture.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include <sodium.h>

#include "pcapng.h"
#include "state.h"

void cp_capture_init(struct cp_capture *c)
{
	memset(c, 0, sizeof(*c));
	if (getrandom(&c->next_session, sizeof(c->next_session), 0) != sizeof(c->next_session))
		c->next_session = (uint32_t)eg_now_ns();
}

static struct eg_capture_spec *spec(struct cp_state *st)
{
	return &st->shm.hdr->capture;
}

static bool same_segment(const struct cp_state *st, const struct cp_capture *c)
{
	return st->mapped && st->epoch == c->epoch;
}

/* Workers stop copying; what they copied already may still be read. */
static void stop(struct cp_state *st, const char *reason)
{
	struct cp_capture *c = &st->capture;

	if (!c->active)
		return;
	c->active = false;
	c->draining = same_segment(st, c);
	c->end_reason = reason;
	if (c->draining)
		__atomic_store_n(&spec(st)->session, 0, __ATOMIC_RELEASE);
}

void cp_capture_tick(struct cp_state *st)
{
	struct cp_capture *c = &st->capture;
	uint64_t now = eg_now_ns();

	if (c->active && !same_segment(st, c))
		stop(st, "the dataplane restarted");
	else if (c->active && now >= c->deadline_ns)
		stop(st, "duration");
	if ((c->active || c->draining) && now - c->last_read_ns > (uint64_t)CP_CAPTURE_IDLE_MS * 1000000) {
		stop(st, "nobody read it");
		c->draining = false;
	}
	if (!c->active && st->mapped && __atomic_load_n(&spec(st)->session, __ATOMIC_RELAXED) != 0)
		__atomic_store_n(&spec(st)->session, 0, __ATOMIC_RELEASE);
}

/* Fills s (all but session and snaplen) for the named port or egress, and describes the
 * pcapng interface. */
static int resolve(struct cp_state *st, const char *key, const char *name, bool decrypted,
		   struct eg_capture_spec *s, json_t **iface, struct cp_rpc_error *err)
{
	char path[32];
	int pi = strcmp(key, "egress") != 0 ? eg_config_port_index(&st->cfg.dataplane, name) : -1;
	int ei = strcmp(key, "port") != 0 ? cp_state_egress_index(st, name) : -1;
	const struct eg_egress_cfg *e;

	snprintf(path, sizeof(path), "$.params.%s", key);
	if (pi >= 0 && ei >= 0)
		return cp_rpc_invalid(err, path, "\"%s\" is both a port and an egress: say which with "
					   "\"port\" or \"egress\"", name);
	if (pi >= 0) {
		if (decrypted)
			return cp_rpc_invalid(err, "$.params.decrypted", "a port's frames are captured as they "
				"are on the wire; decrypted applies to tunnel egresses");
		s->what = EG_CAPTURE_PORT;
		s->port = (uint16_t)pi;
		*iface = json_pack("{s:s,s:i,s:s+}", "name", name, "linktype", EG_PCAPNG_LINKTYPE_ETHERNET, "description",
				   "egress port ", st->cfg.dataplane.ports[pi].device);
		return 0;
	}
	if (ei < 0)
		return cp_rpc_fail(err, CP_RPC_NOT_FOUND, path, "no %s named \"%.64s\"",
				   strcmp(key, "target") == 0 ? "port or egress" : key, name);
	e = &st->egresses[ei];
	s->what = EG_CAPTURE_EGRESS;
	s->egress_id = (uint16_t)st->egress_ids[ei];
	s->egress_type = (uint8_t)e->type;
	s->decrypted = decrypted;
	s->in_slot = EG_TABLE_NO_SA;
	switch (e->type) {
	case EG_EGRESS_DIRECT:
		if (decrypted)
			return cp_rpc_invalid(err, "$.params.decrypted", "egress \"%s\" is direct: it has "
					      "nothing encrypted", name);
		s->port = (uint16_t)eg_config_port_index(&st->cfg.dataplane, e->port);
		break;
	case EG_EGRESS_WIREGUARD: {
		int peer = cp_wg_find(&st->wg, e->peer);

		if (peer >= 0)
			s->in_slot = st->wg.peers[peer]->slot;
		break;
	}
	case EG_EGRESS_IPSEC: {
		int sa = cp_ipsec_find(&st->ipsec, e->sa_in, EG_SA_DIR_IN);

		if (sa >= 0)
			s->in_slot = st->ipsec.sas[sa].slot;
		break;
	}
	}
	*iface = json_pack("{s:s,s:i,s:s+++}", "name", name, "linktype",
			   decrypted ? EG_PCAPNG_LINKTYPE_RAW : EG_PCAPNG_LINKTYPE_ETHERNET, "description", "egress ",
			   eg_egress_type_name(e->type), " ",
			   decrypted ? "inner packets" : e->type == EG_EGRESS_DIRECT ? "frames" : "encrypted frames");
	return 0;
}

json_t *cp_capture_status(const struct cp_state *st)
{
	const struct cp_capture *c = &st->capture;
	uint64_t now = eg_now_ns();

	if (!c->active)
		return NULL;
	return json_pack("{s:I,s:s,s:b,s:I,s:I}", "id", (json_int_t)c->session, "target", c->target, "decrypted",
			 c->decrypted, "captured", (json_int_t)c->delivered, "seconds_left",
			 (json_int_t)(c->deadline_ns > now ? (c->deadline_ns - now) / 1000000000ull : 0));
}

int cp_m_capture_start(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err)
{
	static const char *const keys[] = {"port", "egress", "target", "count", "duration_s", "decrypted",
					   "snaplen", NULL};
	static const char *const target_keys[] = {"port", "egress", "target"};
	struct cp_state *st = ctx;
	struct cp_capture *c = &st->capture;
	struct eg_capture_spec s = {0};
	long count = CP_CAPTURE_DEFAULT_COUNT, seconds = CP_CAPTURE_DEFAULT_SECONDS, snaplen = EG_CAPTURE_SNAP_MAX;
	const char *key = NULL;
	json_t *v, *iface = NULL;
	bool decrypted = false;

	if (cp_rpc_object_params(params, keys, err) ||
	    cp_rpc_int_param(params, "count", 1, CP_CAPTURE_MAX_COUNT, &count, err) ||
	    cp_rpc_int_param(params, "duration_s", 1, CP_CAPTURE_MAX_SECONDS, &seconds, err) ||
	    cp_rpc_int_param(params, "snaplen", 64, EG_CAPTURE_SNAP_MAX, &snaplen, err))
		return -1;
	for (unsigned i = 0; i < 3; i++) {
		v = json_object_get(params, target_keys[i]);
		if (!v)
			continue;
		if (key)
			return cp_rpc_invalid(err, "$.params", "give one of port, egress or target");
		key = target_keys[i];
		if (!json_is_string(v) || !json_string_length(v)) {
			char path[32];

			snprintf(path, sizeof(path), "$.params.%s", key);
			return cp_rpc_invalid(err, path, "expected a name");
		}
	}
	if (!key)
		return cp_rpc_invalid(err, "$.params.target", "required: the port or egress to capture");
	v = json_object_get(params, "decrypted");
	if (v && !json_is_boolean(v))
		return cp_rpc_invalid(err, "$.params.decrypted", "expected true or false");
	decrypted = json_is_true(v);
	if (!cp_state_dataplane_alive(st))
		return cp_rpc_fail(err, CP_RPC_NOT_ATTACHED, NULL, "the dataplane is not running");
	if (c->active)
		return cp_rpc_fail(err, CP_RPC_CONFLICT, NULL, "capture %u is running; one at a time",
				   c->session);
	if (resolve(st, key, json_string_value(json_object_get(params, key)), decrypted, &s, &iface, err))
		return -1;

	/* Workers see session 0 now (no capture is active): the fields may change. */
	struct eg_capture_spec *sh = spec(st);
	const struct eg_shm_hdr *h = st->shm.hdr;

	if (++c->next_session == 0)
		c->next_session = 1;
	__atomic_store_n(&sh->session, 0, __ATOMIC_RELEASE);	/* one a crashed control left */
	s.snaplen = (uint32_t)snaplen;
	memcpy((uint8_t *)sh + sizeof(sh->session), (uint8_t *)&s + sizeof(s.session), sizeof(s) - sizeof(s.session));
	for (unsigned w = 0; w < h->n_workers; w++) {
		struct eg_capture_ring *r = eg_shm_capture(h, w);

		eg_capture_discard(r);
		c->dropped_base[w] = __atomic_load_n(&r->dropped, __ATOMIC_RELAXED);
	}
	c->session = c->next_session;
	c->active = true;
	c->draining = false;
	c->end_reason = NULL;
	c->epoch = st->epoch;
	c->count = (uint64_t)count;
	c->delivered = c->dropped = 0;
	c->last_read_ns = eg_now_ns();
	c->deadline_ns = c->last_read_ns + (uint64_t)seconds * 1000000000ull;
	c->decrypted = decrypted;
	snprintf(c->target, sizeof(c->target), "%s", json_string_value(json_object_get(params, key)));
	__atomic_store_n(&sh->session, c->session, __ATOMIC_RELEASE);
	*result = json_pack("{s:I,s:o,s:I,s:I,s:I}", "id", (json_int_t)c->session, "interface", iface, "count",
			    (json_int_t)count, "duration_s", (json_int_t)seconds, "snaplen", (json_int_t)snaplen);
	return 0;
}

static int session_param(struct cp_state *st, json_t *params, const char *const *keys, struct cp_rpc_error *err)
{
	json_t *id;

	if (cp_rpc_object_params(params, keys, err))
		return -1;
	id = json_object_get(params, "id");
	if (!json_is_integer(id))
		return cp_rpc_invalid(err, "$.params.id", "required: the id capture.start gave");
	if (st->capture.session == 0 || json_integer_value(id) != (json_int_t)st->capture.session)
		return cp_rpc_fail(err, CP_RPC_NOT_FOUND, "$.params.id", "no capture %" JSON_INTEGER_FORMAT,
				   json_integer_value(id));
	return 0;
}

static json_t *record_json(const struct eg_capture_rec *r)
{
	size_t b64_len = sodium_base64_ENCODED_LEN(r->cap_len, sodium_base64_VARIANT_ORIGINAL);
	char b64[sodium_base64_ENCODED_LEN(EG_CAPTURE_SNAP_MAX, sodium_base64_VARIANT_ORIGINAL)];

	sodium_bin2base64(b64, b64_len, r->data, r->cap_len, sodium_base64_VARIANT_ORIGINAL);
	return json_pack("{s:I,s:s,s:I,s:s}", "time_ns", (json_int_t)r->time_ns, "dir",
			 r->dir == EG_CAPTURE_IN ? "in" : "out", "len", (json_int_t)r->len, "data", b64);
}

/* The next record of session c across the workers' rings, oldest first; records of other
 * sessions are thrown away on the way. NULL when every ring is empty. */
static const struct eg_capture_rec *next_record(const struct eg_shm_hdr *h, uint32_t session, unsigned *from)
{
	const struct eg_capture_rec *best = NULL;

	for (unsigned w = 0; w < h->n_workers; w++) {
		struct eg_capture_ring *r = eg_shm_capture(h, w);
		const struct eg_capture_rec *rec;

		while ((rec = eg_capture_peek(r)) && rec->session != session)
			eg_capture_release(r);
		if (rec && (!best || rec->time_ns < best->time_ns)) {
			best = rec;
			*from = w;
		}
	}
	return best;
}

int cp_m_capture_read(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err)
{
	static const char *const keys[] = {"id", "max", NULL};
	struct cp_state *st = ctx;
	struct cp_capture *c = &st->capture;
	long max = 256;
	bool empty = true;
	json_t *pkts;

	if (session_param(st, params, keys, err) ||
	    cp_rpc_int_param(params, "max", 1, CP_CAPTURE_READ_MAX, &max, err))
		return -1;
	c->last_read_ns = eg_now_ns();
	cp_capture_tick(st);
	pkts = json_array();
	if ((c->active || c->draining) && same_segment(st, c)) {
		const struct eg_shm_hdr *h = st->shm.hdr;
		const struct eg_capture_rec *rec;
		unsigned from = 0;

		empty = false;
		while (json_array_size(pkts) < (size_t)max && c->delivered < c->count) {
			rec = next_record(h, c->session, &from);
			if (!rec) {
				empty = true;
				break;
			}
			json_array_append_new(pkts, record_json(rec));
			eg_capture_release(eg_shm_capture(h, from));
			c->delivered++;
		}
		if (c->active) {
			c->dropped = 0;
			for (unsigned w = 0; w < h->n_workers; w++)
				c->dropped += __atomic_load_n(&eg_shm_capture(h, w)->dropped, __ATOMIC_RELAXED) -
					      c->dropped_base[w];
		}
		if (c->delivered >= c->count) {
			stop(st, "count");
			empty = true;
		}
	}
	bool done = !c->active && empty;

	if (done)
		c->draining = false;
	*result = json_pack("{s:o,s:I,s:I,s:b}", "packets", pkts, "captured", (json_int_t)c->delivered, "dropped",
			    (json_int_t)c->dropped, "done", done);
	if (c->end_reason)
		json_object_set_new(*result, "reason", json_string(c->end_reason));
	return 0;
}

int cp_m_capture_stop(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err)
{
	static const char *const keys[] = {"id", NULL};
	struct cp_state *st = ctx;

	if (session_param(st, params, keys, err))
		return -1;
	stop(st, "stopped");
	*result = json_pack("{s:I,s:I}", "captured", (json_int_t)st->capture.delivered, "dropped",
			    (json_int_t)st->capture.dropped);
	return 0;
}
