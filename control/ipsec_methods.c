#include "ipsec_methods.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"

/* Swaps in a new SA list for one apply; on failure the old one comes back. */
static int apply_with_sas(struct cp_state *st, struct cp_sa *sas, unsigned n, struct eg_egress_cfg *egs,
			  uint64_t *gen, struct cp_rpc_error *err)
{
	struct cp_sa *old = st->ipsec.sas;
	unsigned old_n = st->ipsec.n;
	struct eg_error e = {0};
	int code = 0;

	st->ipsec.sas = sas;
	st->ipsec.n = n;
	if (cp_state_apply(st, egs, egs ? st->n_egresses : 0, NULL, 0, gen, &code, &e) != 0) {
		st->ipsec.sas = old;
		st->ipsec.n = old_n;
		return cp_rpc_fail(err, code, NULL, "%s", e.msg);
	}
	/* The old array's entries were copied: wipe their keys. */
	for (unsigned i = 0; i < old_n; i++)
		eg_sa_cfg_wipe(&old[i].cfg);
	free(old);
	return 0;
}

static int dir_param(json_t *v, const char *path, uint8_t *dir, struct cp_rpc_error *err)
{
	const char *s = json_string_value(v);

	if (!s || (strcmp(s, "in") && strcmp(s, "out")))
		return cp_rpc_invalid(err, path, v ? "expected \"in\" or \"out\"" : "required");
	*dir = strcmp(s, "out") == 0 ? EG_SA_DIR_OUT : EG_SA_DIR_IN;
	return 0;
}

int cp_m_ipsec_sa_add(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err)
{
	struct cp_state *st = ctx;
	struct eg_sa_cfg cfg;
	struct eg_error e = {0};
	struct cp_sa *sas = NULL;
	struct eg_egress_cfg *egs = NULL;
	json_t *copy, *rep;
	uint32_t replaces = 0, slot;
	int old = -1, rc;
	unsigned n = 0;
	uint64_t gen;

	if (!json_is_object(params))
		return cp_rpc_invalid(err, "$.params", "expected an SA object");
	rep = json_object_get(params, "replaces");
	if (rep) {
		if (!json_is_integer(rep) || json_integer_value(rep) < 256 || json_integer_value(rep) > 0xffffffffLL)
			return cp_rpc_invalid(err, "$.params.replaces", "expected the SPI of the SA this one replaces");
		replaces = (uint32_t)json_integer_value(rep);
	}
	copy = json_deep_copy(params);
	json_object_del(copy, "replaces");
	rc = eg_sa_cfg_parse(copy, "$.params", &cfg, &e);
	json_decref(copy);
	if (rc)
		return cp_rpc_fail(err, CP_RPC_INVALID_PARAMS, e.path, "%s", e.msg);
	if (cp_ipsec_find(&st->ipsec, cfg.spi, cfg.dir) >= 0) {
		eg_sa_cfg_wipe(&cfg);
		return cp_rpc_fail(err, CP_RPC_EXISTS, "$.params.spi", "an %s SA with this SPI exists",
				   cfg.dir == EG_SA_DIR_OUT ? "outbound" : "inbound");
	}
	if (eg_sa_cfg_port(&st->cfg.dataplane, &cfg) < 0) {
		eg_sa_cfg_wipe(&cfg);
		return cp_rpc_invalid(err, "$.params.local", "not the address of an uplink port");
	}
	if (rep && (old = cp_ipsec_find(&st->ipsec, replaces, cfg.dir)) < 0) {
		eg_sa_cfg_wipe(&cfg);
		return cp_rpc_invalid(err, "$.params.replaces", "no %s SA with SPI %u",
				      cfg.dir == EG_SA_DIR_OUT ? "outbound" : "inbound", replaces);
	}
	if (!cp_state_dataplane_alive(st)) {
		eg_sa_cfg_wipe(&cfg);
		return cp_rpc_fail(err, CP_RPC_NOT_ATTACHED, NULL, "the dataplane is not running; nothing changed");
	}
	rc = cp_ipsec_install(st, &cfg, 0, 0, &slot);
	if (rc) {
		eg_sa_cfg_wipe(&cfg);
		return cp_rpc_fail(err, rc == -ENOSPC ? CP_RPC_RESOURCE : CP_RPC_INTERNAL_ERROR, NULL,
				   "cannot install the SA: %s", strerror(-rc));
	}
	/* The new list: every SA but a replaced outbound one (make-before-break: a replaced
	 * inbound SA keeps decrypting until it expires or is removed), then the new one. */
	sas = calloc(st->ipsec.n + 1, sizeof(*sas));
	if (!sas)
		goto nomem;
	for (unsigned i = 0; i < st->ipsec.n; i++)
		if (!(cfg.dir == EG_SA_DIR_OUT && (int)i == old))
			sas[n++] = st->ipsec.sas[i];
	sas[n] = (struct cp_sa){.cfg = cfg, .slot = slot, .installed_ns = eg_now_ns()};
	n++;
	if (rep) {
		/* Egresses on the old SA move to the new one in the same publish. */
		egs = calloc(st->n_egresses + 1, sizeof(*egs));
		if (!egs)
			goto nomem;
		memcpy(egs, st->egresses, st->n_egresses * sizeof(*egs));
		for (unsigned i = 0; i < st->n_egresses; i++) {
			if (egs[i].type != EG_EGRESS_IPSEC)
				continue;
			if (cfg.dir == EG_SA_DIR_OUT && egs[i].sa_out == replaces)
				egs[i].sa_out = cfg.spi;
			if (cfg.dir == EG_SA_DIR_IN && egs[i].sa_in == replaces)
				egs[i].sa_in = cfg.spi;
		}
	}
	uint32_t old_slot = old >= 0 ? st->ipsec.sas[old].slot : EG_TABLE_NO_SA;

	if (apply_with_sas(st, sas, n, egs, &gen, err)) {
		cp_ipsec_uninstall(st, slot);
		explicit_bzero(sas, n * sizeof(*sas));
		free(sas);
		free(egs);
		eg_sa_cfg_wipe(&cfg);
		return -1;
	}
	if (cfg.dir == EG_SA_DIR_OUT && old_slot != EG_TABLE_NO_SA)
		cp_ipsec_retire(st, old_slot, EG_SA_STOP_REMOVED, gen);
	eg_sa_cfg_wipe(&cfg);
	*result = json_pack("{s:I}", "generation", (json_int_t)gen);
	return 0;
nomem:
	cp_ipsec_uninstall(st, slot);
	free(sas);
	eg_sa_cfg_wipe(&cfg);
	return cp_rpc_fail(err, CP_RPC_INTERNAL_ERROR, NULL, "out of memory");
}

int cp_m_ipsec_sa_remove(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err)
{
	struct cp_state *st = ctx;
	json_t *spi;
	const char *key;
	json_t *v;
	struct cp_sa *sas;
	uint8_t dir = EG_SA_DIR_IN;
	uint32_t slot;
	uint64_t gen;
	unsigned n = 0;
	int j;

	if (!json_is_object(params))
		return cp_rpc_invalid(err, "$.params", "expected {\"spi\", \"direction\"}");
	json_object_foreach(params, key, v)
		if (strcmp(key, "spi") && strcmp(key, "direction"))
			return cp_rpc_invalid(err, "$.params", "unknown key \"%.32s\"", key);
	spi = json_object_get(params, "spi");
	if (!json_is_integer(spi) || json_integer_value(spi) < 0 || json_integer_value(spi) > 0xffffffffLL)
		return cp_rpc_invalid(err, "$.params.spi", spi ? "expected an SPI" : "required");
	if (dir_param(json_object_get(params, "direction"), "$.params.direction", &dir, err))
		return -1;
	j = cp_ipsec_find(&st->ipsec, (uint32_t)json_integer_value(spi), dir);
	if (j < 0)
		return cp_rpc_fail(err, CP_RPC_NOT_FOUND, "$.params.spi", "no such SA");
	for (unsigned i = 0; i < st->n_egresses; i++) {
		const struct eg_egress_cfg *e = &st->egresses[i];

		if (e->type == EG_EGRESS_IPSEC &&
		    ((dir == EG_SA_DIR_OUT && e->sa_out == st->ipsec.sas[j].cfg.spi) ||
		     (dir == EG_SA_DIR_IN && e->sa_in == st->ipsec.sas[j].cfg.spi)))
			return cp_rpc_fail(err, CP_RPC_CONFLICT, "$.params.spi",
					   "egress \"%s\" uses this SA: rekey it (ipsec.sa.add with \"replaces\") or remove the egress first",
					   e->name);
	}
	sas = calloc(st->ipsec.n + 1, sizeof(*sas));
	if (!sas)
		return cp_rpc_fail(err, CP_RPC_INTERNAL_ERROR, NULL, "out of memory");
	for (unsigned i = 0; i < st->ipsec.n; i++)
		if ((int)i != j)
			sas[n++] = st->ipsec.sas[i];
	slot = st->ipsec.sas[j].slot;
	if (apply_with_sas(st, sas, n, NULL, &gen, err)) {
		explicit_bzero(sas, n * sizeof(*sas));
		free(sas);
		return -1;
	}
	cp_ipsec_retire(st, slot, EG_SA_STOP_REMOVED, gen);
	*result = json_pack("{s:I}", "generation", (json_int_t)gen);
	return 0;
}

int cp_m_ipsec_sa_list(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err)
{
	struct cp_state *st = ctx;
	json_t *list;

	if (cp_rpc_no_params(params, err))
		return -1;
	list = json_array();
	for (unsigned i = 0; i < st->ipsec.n; i++)
		json_array_append_new(list, cp_ipsec_sa_json(st, &st->ipsec.sas[i]));
	*result = json_pack("{s:o}", "sas", list);
	return 0;
}
