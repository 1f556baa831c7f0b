#include "table.h"

#include "blake2s.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int find_egress(const struct eg_table_input *in, const char *name)
{
	for (unsigned i = 0; i < in->n_egresses; i++)
		if (strcmp(in->egresses[i].name, name) == 0)
			return (int)i;
	return -1;
}

static uint8_t state_of(const struct eg_table_input *in, unsigned i)
{
	return in->egress_state ? in->egress_state[i] : EG_PATH_UP;
}

static struct eg_sel_member member(const struct eg_table_input *in, unsigned i)
{
	return (struct eg_sel_member){
		.key = eg_sel_key(in->egresses[i].name),
		.weight = in->egresses[i].weight,
		.value = (uint16_t)i,
	};
}

unsigned eg_table_policy_members(const struct eg_table_input *in, unsigned policy,
				 struct eg_sel_member *out)
{
	const struct eg_policy_cfg *p = &in->policies[policy];
	struct eg_path_pick pick;

	if (in->picks) {
		pick = in->picks[policy];
	} else {
		/* No measurements: the paths' states alone decide, without hysteresis. */
		struct eg_path_view views[EG_MAX_POLICY_EGRESSES];
		int idx[EG_MAX_POLICY_EGRESSES], at[EG_MAX_POLICY_EGRESSES];
		unsigned k = 0;

		for (unsigned j = 0; j < p->n_egresses; j++) {
			int i = find_egress(in, p->egresses[j]);

			if (i < 0)
				continue;
			at[k] = i;
			idx[k] = (int)k;
			views[k] = (struct eg_path_view){.state = state_of(in, (unsigned)i)};
			k++;
		}
		eg_path_select(p, idx, k, views, &(struct eg_select_tuning){0}, NULL, 0, &pick);
		for (unsigned j = 0; j < pick.n; j++)
			pick.egress[j] = (uint16_t)at[pick.egress[j]];
	}
	for (unsigned j = 0; j < pick.n; j++) {
		out[j] = member(in, pick.egress[j]);
		out[j].weight *= pick.share[j] / (double)EG_SHARE_FULL;
	}
	return pick.n;
}

/* Policies with the same member set share one bucket table. */
struct sel_cache_entry {
	unsigned n;
	uint32_t off;
	struct eg_sel_member m[EG_MAX_POLICY_EGRESSES];
};

struct sel_cache {
	struct sel_cache_entry *e;
	unsigned n, cap;
};

static uint32_t sel_table_for(struct eg_blob *b, struct sel_cache *c,
			      const struct eg_sel_member *m, unsigned n)
{
	for (unsigned i = 0; i < c->n; i++) {
		const struct sel_cache_entry *e = &c->e[i];
		unsigned j;

		if (e->n != n)
			continue;
		for (j = 0; j < n; j++)
			if (e->m[j].key != m[j].key || e->m[j].value != m[j].value ||
			    e->m[j].weight != m[j].weight)
				break;
		if (j == n)
			return e->off;
	}
	if (c->n == c->cap) {
		unsigned cap = c->cap ? c->cap * 2 : 16;
		struct sel_cache_entry *ne = realloc(c->e, cap * sizeof(*ne));

		if (!ne)
			return EG_BLOB_NONE;
		c->e = ne;
		c->cap = cap;
	}
	uint32_t off = eg_sel_build(b, m, n);

	if (off == EG_BLOB_NONE)
		return off;
	c->e[c->n].n = n;
	c->e[c->n].off = off;
	memcpy(c->e[c->n].m, m, n * sizeof(*m));
	c->n++;
	return off;
}

static size_t count_rules(const struct eg_policy_cfg *p)
{
	return (size_t)(p->match.n_src ? p->match.n_src : 1) * (p->match.n_dst ? p->match.n_dst : 1);
}

static void fill_rules(const struct eg_table_input *in, const struct eg_policy_cfg *p,
		       uint32_t result, struct eg_rule *rules, size_t *n)
{
	const struct eg_match_cfg *m = &p->match;
	struct eg_prefix any = {0};
	int in_port = m->port[0] ? eg_config_port_index(in->dp, m->port) : -1;

	for (unsigned s = 0; s < (m->n_src ? m->n_src : 1); s++) {
		for (unsigned d = 0; d < (m->n_dst ? m->n_dst : 1); d++) {
			const struct eg_prefix *src = m->n_src ? &m->src[s] : &any;
			const struct eg_prefix *dst = m->n_dst ? &m->dst[d] : &any;
			struct eg_rule *r = &rules[*n];

			/* A listed 0.0.0.0/0 still means "IPv4 only": the family comes from
			 * the lists, not from the prefix length. */
			if (m->n_src && m->n_dst && src->family != dst->family)
				continue;
			memset(r, 0, sizeof(*r));
			r->priority = p->priority;
			r->result = result;
			r->family = m->n_src ? src->family : m->n_dst ? dst->family : EG_AF_ANY;
			r->src = *src;
			r->dst = *dst;
			r->proto_any = !m->has_proto;
			r->proto = m->proto;
			r->sport_lo = m->sport_lo;
			r->sport_hi = m->sport_hi;
			r->dport_lo = m->dport_lo;
			r->dport_hi = m->dport_hi;
			r->dscp_mask = m->dscp_mask;
			r->in_port = in_port >= 0 ? (uint16_t)in_port : EG_PORT_ANY;
			(*n)++;
		}
	}
}

/* A digest of everything the classifier is built from: the rules (zeroed before they are
 * filled, so padding is the same every time) and the policy count. Tables with the same id
 * send every flow to the same policy index. Never 0, which means "no id". */
static uint64_t classifier_id(const struct eg_rule *rules, size_t n_rules, unsigned n_policies)
{
	struct eg_blake2s st;
	uint8_t d[8];
	uint64_t id;
	uint32_t np = n_policies;

	eg_blake2s_init(&st, sizeof(d), NULL, 0);
	eg_blake2s_update(&st, (const uint8_t *)&np, sizeof(np));
	eg_blake2s_update(&st, (const uint8_t *)rules, n_rules * sizeof(*rules));
	eg_blake2s_final(&st, d);
	memcpy(&id, d, sizeof(id));
	return id | 1;
}

static int fail(struct eg_error *err, int rc, const char *path, const char *msg)
{
	snprintf(err->path, sizeof(err->path), "%s", path);
	snprintf(err->msg, sizeof(err->msg), "%s", msg);
	return rc;
}

static uint32_t copy_ranges(struct eg_blob *b, const struct eg_prefix_range *r, unsigned n)
{
	uint32_t off = eg_blob_alloc(b, sizeof(*r) * (n ? n : 1), 8);

	if (off != EG_BLOB_NONE && n)
		memcpy(eg_blob_at(b, off), r, sizeof(*r) * n);
	return off;
}

/* Flattens every installed peer's allowed IPs into one range map per family, owned by
 * peer slots. 0 or -ENOMEM. */
static int wg_allowed_ranges(const struct eg_table_input *in, struct eg_blob *b, uint32_t *off4,
			     unsigned *n4, uint32_t *off6, unsigned *n6)
{
	struct eg_prefix_owned *all;
	struct eg_prefix_range *ranges;
	unsigned n = 0;
	int rc = 0;

	for (unsigned i = 0; i < in->n_wg_peers; i++)
		n += in->wg_peers[i].n_allowed;
	all = malloc(sizeof(*all) * (n ? n : 1));
	ranges = malloc(sizeof(*ranges) * 2 * (n ? n : 1));
	if (!all || !ranges) {
		rc = -ENOMEM;
		goto out;
	}
	n = 0;
	for (unsigned i = 0; i < in->n_wg_peers; i++)
		for (unsigned a = 0; a < in->wg_peers[i].n_allowed; a++)
			all[n++] = (struct eg_prefix_owned){.prefix = in->wg_peers[i].allowed[a],
							    .owner = in->wg_peers[i].slot};
	*n4 = eg_prefix_map_flatten(EG_AF_INET, all, n, ranges);
	*off4 = copy_ranges(b, ranges, *n4);
	*n6 = eg_prefix_map_flatten(EG_AF_INET6, all, n, ranges);
	*off6 = copy_ranges(b, ranges, *n6);
	if (*off4 == EG_BLOB_NONE || *off6 == EG_BLOB_NONE)
		rc = -ENOMEM;
out:
	free(all);
	free(ranges);
	return rc;
}

int eg_table_build(const struct eg_table_input *in, struct eg_blob *b, struct eg_error *err)
{
	struct sel_cache cache = {0};
	struct eg_rule *rules = NULL;
	size_t n_rules = 0, max_rules = 0;
	uint32_t hdr_off, eg_off, pol_off, cls_off;
	int rc = -ENOMEM;

	hdr_off = eg_blob_alloc(b, sizeof(struct eg_table_hdr), 64);
	eg_off = eg_blob_alloc(b, sizeof(struct eg_table_egress) * (in->n_egresses ? in->n_egresses : 1), 64);
	pol_off = eg_blob_alloc(b, sizeof(struct eg_table_policy) * (in->n_policies ? in->n_policies : 1), 64);
	if (hdr_off != 0 || eg_off == EG_BLOB_NONE || pol_off == EG_BLOB_NONE)
		goto nomem;

	for (unsigned i = 0; i < in->n_egresses; i++) {
		const struct eg_egress_cfg *c = &in->egresses[i];
		/* The pool first: allocating may move the blob under e. */
		uint32_t snat_off = c->n_snat ? eg_blob_alloc(b, sizeof(uint32_t) * c->n_snat, 4) : EG_BLOB_NONE;
		struct eg_table_egress *e = (struct eg_table_egress *)eg_blob_at(b, eg_off) + i;
		int port = c->type == EG_EGRESS_DIRECT ? eg_config_port_index(in->dp, c->port) : -1;

		snprintf(e->name, sizeof(e->name), "%s", c->name);
		e->id = (uint16_t)in->egress_ids[i];
		e->type = (uint8_t)c->type;
		e->state = state_of(in, i);
		e->port = port >= 0 ? (uint16_t)port : 0xffff;
		if (c->has_next_hop) {
			e->nh_family = c->next_hop.family;
			memcpy(e->next_hop, c->next_hop.addr, sizeof(e->next_hop));
		}
		e->sa_slot = in->egress_sa_slot ? in->egress_sa_slot[i] : EG_TABLE_NO_SA;
		e->wg_slot = in->egress_wg_slot ? in->egress_wg_slot[i] : EG_TABLE_NO_SA;
		if (c->n_snat) {
			if (snat_off == EG_BLOB_NONE)
				goto nomem;
			memcpy(eg_blob_at(b, snat_off), c->snat, sizeof(uint32_t) * c->n_snat);
			e->snat_off = snat_off;
			e->n_snat = (uint16_t)c->n_snat;
		}
	}

	/* WireGuard allowed IPs: one longest-prefix map per family over all peers. */
	uint32_t wg4_off, wg6_off;
	unsigned n_wg4, n_wg6;

	rc = wg_allowed_ranges(in, b, &wg4_off, &n_wg4, &wg6_off, &n_wg6);
	if (rc)
		goto nomem;

	/* Inbound SPIs at most half full, so probe chains stay short and always end. */
	uint32_t spi_size = 16, spi_off;

	while (spi_size < in->n_inbound * 2)
		spi_size <<= 1;
	spi_off = eg_blob_alloc(b, spi_size * sizeof(struct eg_table_spi), 64);
	if (spi_off == EG_BLOB_NONE)
		goto nomem;
	{
		struct eg_table_spi *spis = eg_blob_at(b, spi_off);

		for (uint32_t i = 0; i < spi_size; i++)
			spis[i].slot = EG_TABLE_NO_SA;
		for (unsigned i = 0; i < in->n_inbound; i++) {
			uint32_t h = eg_table_spi_hash(in->inbound[i].spi);

			while (spis[h & (spi_size - 1)].slot != EG_TABLE_NO_SA)
				h++;
			spis[h & (spi_size - 1)] = in->inbound[i];
		}
	}

	for (unsigned i = 0; i < in->n_policies; i++) {
		struct eg_sel_member m[EG_MAX_POLICY_EGRESSES];
		const struct eg_policy_cfg *c = &in->policies[i];
		unsigned n = eg_table_policy_members(in, i, m);
		uint32_t sel = EG_BLOB_NONE;
		struct eg_table_policy *p;

		if (n > 1) {
			sel = sel_table_for(b, &cache, m, n);
			if (sel == EG_BLOB_NONE)
				goto nomem;
		}
		p = (struct eg_table_policy *)eg_blob_at(b, pol_off) + i;
		snprintf(p->name, sizeof(p->name), "%s", c->name);
		p->id = in->policy_ids[i];
		p->action = (uint8_t)c->action;
		p->strategy = (uint8_t)c->strategy;
		p->single = n == 1 ? m[0].value : EG_SEL_NONE;
		p->sel_off = sel;
		max_rules += count_rules(c);
	}

	rules = malloc((max_rules ? max_rules : 1) * sizeof(*rules));
	if (!rules)
		goto nomem;
	for (unsigned i = 0; i < in->n_policies; i++)
		fill_rules(in, &in->policies[i], i, rules, &n_rules);
	cls_off = eg_classifier_build(b, rules, (uint32_t)n_rules);
	if (cls_off == EG_BLOB_NONE) {
		rc = errno ? -errno : -ENOMEM;
		goto nomem;
	}

	struct eg_table_hdr *h = eg_blob_at(b, hdr_off);

	h->magic = EG_TABLE_MAGIC;
	h->n_egresses = in->n_egresses;
	h->egresses_off = eg_off;
	h->n_policies = in->n_policies;
	h->policies_off = pol_off;
	h->classifier_off = cls_off;
	h->n_rules = (uint32_t)n_rules;
	h->classifier_id = classifier_id(rules, n_rules, in->n_policies);
	h->spi_off = spi_off;
	h->spi_mask = spi_size - 1;
	h->wg4_off = wg4_off;
	h->n_wg4 = n_wg4;
	h->wg6_off = wg6_off;
	h->n_wg6 = n_wg6;
	h->size = (uint32_t)b->len;
	free(rules);
	free(cache.e);
	return 0;
nomem:
	free(rules);
	free(cache.e);
	return fail(err, rc, "$.policies", "table too large for memory or its shared-memory slot (raise dataplane.table_mb)");
}

int eg_table_validate(const void *table, size_t max_size)
{
	const struct eg_table_hdr *t = table;

	if (max_size < sizeof(*t) || t->magic != EG_TABLE_MAGIC || t->size > max_size)
		return -EPROTO;
	if ((uint64_t)t->egresses_off + (uint64_t)t->n_egresses * sizeof(struct eg_table_egress) > t->size ||
	    (uint64_t)t->policies_off + (uint64_t)t->n_policies * sizeof(struct eg_table_policy) > t->size ||
	    t->classifier_off >= t->size ||
	    (uint64_t)t->spi_off + ((uint64_t)t->spi_mask + 1) * sizeof(struct eg_table_spi) > t->size ||
	    (t->spi_mask & (t->spi_mask + 1)) != 0 ||
	    (uint64_t)t->wg4_off + (uint64_t)t->n_wg4 * sizeof(struct eg_prefix_range) > t->size ||
	    (uint64_t)t->wg6_off + (uint64_t)t->n_wg6 * sizeof(struct eg_prefix_range) > t->size)
		return -EPROTO;
	for (uint32_t i = 0; i < t->n_egresses; i++) {
		const struct eg_table_egress *e = &eg_table_egresses(t)[i];

		if (e->n_snat && (uint64_t)e->snat_off + (uint64_t)e->n_snat * sizeof(uint32_t) > t->size)
			return -EPROTO;
	}
	return 0;
}

const char *eg_path_state_name(unsigned state)
{
	static const char *const names[] = {"up", "degraded", "down"};

	return state < sizeof(names) / sizeof(names[0]) ? names[state] : "?";
}
