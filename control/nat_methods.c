#include "nat_methods.h"

#include <stdio.h>
#include <string.h>

#include "nat_table.h"
#include "net_addr.h"
#include "shm.h"
#include "state.h"

static const char *egress_name(const struct cp_state *st, uint16_t id)
{
	for (unsigned i = 0; i < st->n_egresses; i++)
		if (st->egress_ids[i] == id)
			return st->egresses[i].name;
	return NULL;
}

static json_t *endpoint(uint32_t addr, uint16_t port)
{
	char a[EG_ADDR_STR_LEN], s[EG_ADDR_STR_LEN + 8];

	eg_addr_format(EG_AF_INET, (const uint8_t *)&addr, a, sizeof(a));
	snprintf(s, sizeof(s), "%s:%u", a, port);
	return json_string(s);
}

static json_t *address_json(const struct eg_addr *a)
{
	char s[EG_ADDR_STR_LEN];

	return json_string(eg_addr_format(EG_AF_INET, a->addr, s, sizeof(s)));
}

static const char *const proto_names[] = {[EG_NAT_TCP] = "tcp", [EG_NAT_UDP] = "udp", [EG_NAT_ICMP] = "icmp"};
static const char *const addr_states[] = {"free", "active", "retired"};

/* One session, read while workers may end it: a record is reused only after a grace
 * period, so the copy is of one session, though perhaps one ending right now. */
static json_t *session_json(const struct cp_state *st, const struct eg_nat_hdr *n, const struct eg_nat_session *s)
{
	uint32_t now = __atomic_load_n(&n->now_s, __ATOMIC_RELAXED);
	uint32_t last = __atomic_load_n(&s->last_s, __ATOMIC_RELAXED);
	const char *eg = egress_name(st, s->egress);

	return json_pack("{s:s,s:o,s:o,s:o,s:s?,s:s,s:I,s:I,s:I,s:i}", "proto",
			 s->proto < EG_NAT_PROTOS ? proto_names[s->proto] : "?", "inside",
			 endpoint(s->in_addr, s->in_port), "outside", endpoint(s->out_addr, s->out_port), "remote",
			 endpoint(s->rem_addr, s->rem_port), "egress", eg, "state", eg_nat_session_state_name(s),
			 "idle_s", (json_int_t)(now >= last ? now - last : 0), "age_s",
			 (json_int_t)(now >= s->created_s ? now - s->created_s : 0), "timeout_s",
			 (json_int_t)eg_nat_session_timeout(n, s), "worker", (int)s->worker);
}

int cp_m_nat_sessions(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err)
{
	static const char *const keys[] = {"address", "egress", "limit", NULL};
	struct cp_state *st = ctx;
	const struct eg_nat_hdr *n;
	struct eg_addr want = {0};
	bool by_addr = false;
	long limit = CP_NAT_LIST_DEFAULT, egress = -1;
	uint64_t matched = 0, out = 0, in = 0, other = 0, made = 0;
	json_t *list, *addrs, *v;

	if (params && !(json_is_array(params) && json_array_size(params) == 0)) {
		if (cp_rpc_object_params(params, keys, err) ||
		    cp_rpc_int_param(params, "limit", 0, CP_NAT_LIST_MAX, &limit, err))
			return -1;
		if ((v = json_object_get(params, "address"))) {
			if (!json_is_string(v) || eg_addr_parse(json_string_value(v), &want) != 0 ||
			    want.family != EG_AF_INET)
				return cp_rpc_invalid(err, "$.params.address",
						      "expected an IPv4 address (inside, outside or remote)");
			by_addr = true;
		}
		if ((v = json_object_get(params, "egress"))) {
			if (!json_is_string(v))
				return cp_rpc_invalid(err, "$.params.egress", "expected an egress name");
			for (unsigned i = 0; i < st->n_egresses && egress < 0; i++)
				if (strcmp(st->egresses[i].name, json_string_value(v)) == 0)
					egress = st->egress_ids[i];
			if (egress < 0)
				return cp_rpc_invalid(err, "$.params.egress", "unknown egress \"%.32s\"",
						      json_string_value(v));
		}
	}
	if (!st->mapped || !(n = eg_shm_nat(st->shm.hdr))) {
		*result = json_pack("{s:b,s:[]}", "attached", 0, "sessions_listed");
		return 0;
	}
	for (unsigned w = 0; w < st->shm.hdr->n_workers; w++) {
		const struct eg_worker_shm *ws = eg_shm_worker(st->shm.hdr, w);

		out += ws->nat_out;
		in += ws->nat_in;
		other += ws->nat_in_other_worker;
		made += ws->nat_created;
	}
	addrs = json_array();
	uint32_t n_addrs = __atomic_load_n(&n->n_addrs, __ATOMIC_ACQUIRE);

	for (uint32_t i = 0; i < n_addrs && i < EG_NAT_MAX_ADDRS; i++) {
		const struct eg_nat_addr *a = &eg_nat_addrs(n)[i];
		uint8_t state = __atomic_load_n(&a->state, __ATOMIC_ACQUIRE);
		struct eg_addr x = {.family = EG_AF_INET};

		if (state == EG_NAT_ADDR_FREE)
			continue;
		memcpy(x.addr, &a->addr, 4);
		json_array_append_new(addrs, json_pack("{s:o,s:s?,s:s,s:I,s:I,s:I}", "address", address_json(&x),
						       "egress", egress_name(st, a->egress), "state",
						       state < 3 ? addr_states[state] : "?", "hosts",
						       (json_int_t)a->hosts, "blocks_used", (json_int_t)a->blocks_used,
						       "blocks", (json_int_t)n->blocks_per_addr));
	}
	list = json_array();
	uint32_t high = __atomic_load_n(&n->sess_high, __ATOMIC_ACQUIRE);

	/* Counts alone (metrics ask so at every scrape): no scan. */
	if (limit == 0 && !by_addr && egress < 0) {
		matched = n->sessions;
		high = 0;
	}
	for (uint32_t i = 0; i < high && i < n->p.sessions; i++) {
		const struct eg_nat_session *s = &eg_nat_sessions(n)[i];
		uint32_t a;

		if (!__atomic_load_n(&s->linked, __ATOMIC_ACQUIRE))
			continue;
		if (egress >= 0 && s->egress != egress)
			continue;
		memcpy(&a, want.addr, 4);
		if (by_addr && s->in_addr != a && s->out_addr != a && s->rem_addr != a)
			continue;
		matched++;
		if (json_array_size(list) < (size_t)limit)
			json_array_append_new(list, session_json(st, n, s));
	}
	*result = json_pack(
		"{s:b,s:{s:I,s:I},s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:{s:I,s:I,s:I,s:I},s:{s:I,s:I,s:I,s:I,s:I,s:I},"
		"s:o,s:I,s:b,s:o}",
		"attached", 1, "capacity", "sessions", (json_int_t)n->p.sessions, "hosts", (json_int_t)n->p.hosts,
		"sessions", (json_int_t)n->sessions, "mappings", (json_int_t)n->mappings, "hosts", (json_int_t)n->hosts,
		"blocks", (json_int_t)n->blocks, "created", (json_int_t)n->created, "expired", (json_int_t)n->expired,
		"ended", (json_int_t)n->ended, "packets", "out", (json_int_t)out, "in", (json_int_t)in,
		"in_other_worker", (json_int_t)other, "sessions_made", (json_int_t)made, "config", "ports_per_block",
		(json_int_t)n->p.ports_per_block, "blocks_per_host", (json_int_t)n->p.blocks_per_host,
		"tcp_established_s", (json_int_t)n->p.timeout_s[EG_NAT_T_TCP_ESTABLISHED], "tcp_transitory_s",
		(json_int_t)n->p.timeout_s[EG_NAT_T_TCP_TRANSITORY], "udp_s", (json_int_t)n->p.timeout_s[EG_NAT_T_UDP],
		"icmp_s", (json_int_t)n->p.timeout_s[EG_NAT_T_ICMP], "addresses", addrs, "matched", (json_int_t)matched,
		"truncated", limit > 0 && matched > (uint64_t)json_array_size(list), "sessions_listed", list);
	return *result ? 0 : cp_rpc_fail(err, -32603, NULL, "out of memory");
}
