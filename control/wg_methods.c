#include "wg_methods.h"

#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "state.h"

int cp_m_wg_show(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err)
{
	struct cp_state *st = ctx;

	if (cp_rpc_no_params(params, err))
		return -1;
	if (!st->wg.present)
		return cp_rpc_fail(err, CP_RPC_UNSUPPORTED, NULL, "no wireguard section in the config");
	*result = cp_wg_show(st);
	return 0;
}

/* The table changed (a peer's slot or allowed IPs): publish it, as any other change. */
static int republish(struct cp_state *st, uint64_t *gen, struct cp_rpc_error *err)
{
	struct eg_error e = {0};
	int code = 0;

	if (cp_state_apply(st, NULL, 0, NULL, 0, gen, &code, &e) != 0)
		return cp_rpc_fail(err, code, NULL, "%s", e.msg);
	return 0;
}

int cp_m_wg_peer_add(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err)
{
	struct cp_state *st = ctx;
	struct eg_wg_peer_cfg cfg;
	struct eg_error e = {0};
	uint8_t our_pub[32];
	uint64_t gen;
	int rc;

	if (!st->wg.present)
		return cp_rpc_fail(err, CP_RPC_UNSUPPORTED, NULL, "no wireguard section in the config");
	if (!json_is_object(params))
		return cp_rpc_invalid(err, "$.params", "expected a peer object");
	if (eg_wg_peer_parse(params, "$.params", &cfg, &e))
		return cp_rpc_fail(err, CP_RPC_INVALID_PARAMS, e.path, "%s", e.msg);
	memcpy(our_pub, st->wg.me.pub, sizeof(our_pub));
	if (sodium_memcmp(cfg.public_key, our_pub, sizeof(our_pub)) == 0) {
		eg_wg_peer_wipe(&cfg);
		return cp_rpc_invalid(err, "$.params.public_key", "this is our own public key");
	}
	if (cp_wg_find(&st->wg, cfg.name) >= 0) {
		eg_wg_peer_wipe(&cfg);
		return cp_rpc_fail(err, CP_RPC_EXISTS, "$.params.name", "a peer with this name exists");
	}
	if (cp_wg_find_key(&st->wg, cfg.public_key) >= 0) {
		eg_wg_peer_wipe(&cfg);
		return cp_rpc_fail(err, CP_RPC_EXISTS, "$.params.public_key", "a peer with this key exists");
	}
	for (unsigned i = 0; i < st->wg.n; i++) {
		const struct eg_wg_peer_cfg *q = &st->wg.peers[i]->cfg;
		int a = eg_wg_allowed_conflict(&cfg, q);

		if (a >= 0) {
			char path[64];

			snprintf(path, sizeof(path), "$.params.allowed_ips[%d]", a);
			eg_wg_peer_wipe(&cfg);
			return cp_rpc_fail(err, CP_RPC_CONFLICT, path, "already peer %s's", q->name);
		}
	}
	rc = cp_wg_peer_add(st, &cfg);
	if (rc) {
		eg_wg_peer_wipe(&cfg);
		return cp_rpc_fail(err, rc == -ENOSPC ? CP_RPC_RESOURCE : CP_RPC_INTERNAL_ERROR, NULL,
				   "cannot add the peer: %s", strerror(-rc));
	}
	if (republish(st, &gen, err)) {
		cp_wg_peer_remove(st, st->wg.n - 1);
		return -1;
	}
	*result = json_pack("{s:I}", "generation", (json_int_t)gen);
	return 0;
}

int cp_m_wg_peer_remove(void *ctx, json_t *params, json_t **result, struct cp_rpc_error *err)
{
	struct cp_state *st = ctx;
	json_t *key, *name;
	int i = -1;
	uint64_t gen;

	if (!st->wg.present)
		return cp_rpc_fail(err, CP_RPC_UNSUPPORTED, NULL, "no wireguard section in the config");
	if (!json_is_object(params))
		return cp_rpc_invalid(err, "$.params", "expected {\"public_key\"} or {\"name\"}");
	key = json_object_get(params, "public_key");
	name = json_object_get(params, "name");
	if (key) {
		const char *s = json_string_value(key);
		uint8_t pub[32];
		size_t len = 0;

		if (!s || sodium_base642bin(pub, sizeof(pub), s, strlen(s), NULL, &len, NULL,
					    sodium_base64_VARIANT_ORIGINAL) || len != sizeof(pub))
			return cp_rpc_invalid(err, "$.params.public_key", "expected a base64 key, as wg pubkey prints");
		i = cp_wg_find_key(&st->wg, pub);
	} else if (name) {
		if (!json_is_string(name))
			return cp_rpc_invalid(err, "$.params.name", "expected a string");
		i = cp_wg_find(&st->wg, json_string_value(name));
	} else {
		return cp_rpc_invalid(err, "$.params.public_key", "required");
	}
	if (i < 0)
		return cp_rpc_fail(err, CP_RPC_NOT_FOUND, key ? "$.params.public_key" : "$.params.name", "no such peer");
	for (unsigned e = 0; e < st->n_egresses; e++)
		if (st->egresses[e].type == EG_EGRESS_WIREGUARD &&
		    strcmp(st->egresses[e].peer, st->wg.peers[i]->cfg.name) == 0)
			return cp_rpc_fail(err, CP_RPC_CONFLICT, "$.params", "egress %s uses this peer: remove it first",
					   st->egresses[e].name);
	/* Out of the dataplane first (no worker finds its keypairs once this returns), then a
	 * table and a state file without it. */
	cp_wg_peer_remove(st, (unsigned)i);
	if (republish(st, &gen, err))
		return -1;
	*result = json_pack("{s:I}", "generation", (json_int_t)gen);
	return 0;
}
