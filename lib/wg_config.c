/* Keys of the "wireguard" section:
 *   private_key     base64 of 32 bytes, as `wg genkey` prints it; required
 *   listen_port     1..65535, default 51820
 *   peers           array of peer objects, at most 16384
 *   handshake_load_threshold  handshake messages a second (0..1000000, default 100) above
 *                   which initiations and responses need a valid mac2 and get a cookie
 *                   reply otherwise; 0 asks for cookies all the time
 *   test_timers     object, for tests only: any of rekey_after_time, reject_after_time,
 *                   rekey_attempt_time, rekey_timeout, keepalive_timeout (seconds, 1..3600)
 *                   and rekey_after_messages, reject_after_messages (1..2^60); each must
 *                   keep rekeying before rejecting
 * Keys of a peer object:
 *   name            egress-style name, unique; required (wireguard egresses name it)
 *   public_key      base64 of 32 bytes, unique, not our own; required
 *   preshared_key   base64 of 32 bytes, optional
 *   endpoint        "IPv4:port" or "[IPv6]:port", optional (learned from the peer otherwise)
 *   allowed_ips     array of prefixes (host bits zero), at most 256, no prefix in two peers
 *   persistent_keepalive  seconds 0..65535, default 0 (off) */
#include "wg_config.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "config_read.h"
#include "wg_noise.h"

_Static_assert(sizeof(((struct eg_wg_peer_cfg *)0)->name) == EG_NAME_LEN, "peer names are egress-style names");

void eg_wg_timers_default(struct eg_wg_timers *t)
{
	*t = (struct eg_wg_timers){
		.rekey_after_time = 120, .reject_after_time = 180, .rekey_attempt_time = 90, .rekey_timeout = 5,
		.keepalive_timeout = 10, .rekey_after_messages = 1ull << 60,
		.reject_after_messages = UINT64_MAX - (1ull << 13),
	};
}

/* A key never appears in an error: only what is wrong with it. */
static int want_key(const json_t *v, const char *path, uint8_t out[EG_WG_KEY_LEN], struct eg_error *err)
{
	const char *s;
	size_t len = 0;
	int ret;

	if ((ret = want_string(v, path, &s, err)))
		return ret;
	if (sodium_base642bin(out, EG_WG_KEY_LEN, s, strlen(s), NULL, &len, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    len != EG_WG_KEY_LEN) {
		sodium_memzero(out, EG_WG_KEY_LEN);
		return fail(err, path, "expected a key: base64 of 32 bytes, as wg genkey prints it");
	}
	return 0;
}

/* "192.0.2.10:51820" or "[2001:db8::1]:51820" */
static int want_endpoint(const json_t *v, const char *path, struct eg_addr *addr, uint16_t *port,
			 struct eg_error *err)
{
	char host[EG_ADDR_STR_LEN + 2];
	const char *s, *colon, *h;
	size_t hl;
	char *end;
	long p;
	int ret;

	if ((ret = want_string(v, path, &s, err)))
		return ret;
	colon = strrchr(s, ':');
	if (!colon)
		return fail(err, path, "expected \"address:port\", like \"192.0.2.10:51820\" or \"[2001:db8::1]:51820\"");
	h = s;
	hl = (size_t)(colon - s);
	if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof(host))
		return fail(err, path, "expected \"address:port\", like \"192.0.2.10:51820\" or \"[2001:db8::1]:51820\"");
	memcpy(host, h, hl);
	host[hl] = 0;
	if (eg_addr_parse(host, addr) != 0 || (addr->family == EG_AF_INET6 && h == s))
		return fail(err, path, "%s is not an address (IPv6 goes in brackets: \"[2001:db8::1]:51820\")", Q(host));
	p = strtol(colon + 1, &end, 10);
	if (*end || end == colon + 1 || p < 1 || p > 65535)
		return fail(err, path, "the port must be 1..65535");
	*port = (uint16_t)p;
	return 0;
}

void eg_wg_peer_wipe(struct eg_wg_peer_cfg *p)
{
	free(p->allowed);
	sodium_memzero(p, sizeof(*p));
}

int eg_wg_peer_parse(const json_t *v, const char *path, struct eg_wg_peer_cfg *p, struct eg_error *err)
{
	static const char *const keys[] = {"name", "public_key", "preshared_key", "endpoint", "allowed_ips",
		"persistent_keepalive", NULL};
	char kp[EG_PATH_LEN], ep[EG_PATH_LEN];
	const json_t *m, *e;
	unsigned u;
	size_t i;
	int ret;

	memset(p, 0, sizeof(*p));
	if ((ret = want_object(v, path, err)) || (ret = check_keys(v, path, keys, err)))
		goto fail;
	if (!(m = get(v, path, "name", kp))) {
		ret = missing(err, kp);
		goto fail;
	}
	if ((ret = want_name(m, kp, p->name, err)))
		goto fail;
	if (!(m = get(v, path, "public_key", kp))) {
		ret = missing(err, kp);
		goto fail;
	}
	if ((ret = want_key(m, kp, p->public_key, err)))
		goto fail;
	if ((m = get(v, path, "preshared_key", kp))) {
		if ((ret = want_key(m, kp, p->psk, err)))
			goto fail;
		p->has_psk = true;
	}
	if ((m = get(v, path, "endpoint", kp))) {
		if ((ret = want_endpoint(m, kp, &p->endpoint, &p->endpoint_port, err)))
			goto fail;
		p->has_endpoint = true;
	}
	if ((m = get(v, path, "persistent_keepalive", kp))) {
		if ((ret = want_uint(m, kp, 0, 65535, &u, err)))
			goto fail;
		p->persistent_keepalive = (uint16_t)u;
	}
	if ((m = get(v, path, "allowed_ips", kp))) {
		if ((ret = want_array(m, kp, err)))
			goto fail;
		if (json_array_size(m) > EG_WG_MAX_ALLOWED_IPS) {
			ret = fail(err, kp, "at most %d prefixes", EG_WG_MAX_ALLOWED_IPS);
			goto fail;
		}
		if (json_array_size(m) && !(p->allowed = calloc(json_array_size(m), sizeof(*p->allowed)))) {
			ret = fail_nomem(err, kp);
			goto fail;
		}
		json_array_foreach(m, i, e) {
			idx_path(ep, kp, i);
			if ((ret = want_prefix(e, ep, &p->allowed[i], err)))
				goto fail;
			p->n_allowed = (unsigned)i + 1;
		}
	}
	return 0;
fail:
	eg_wg_peer_wipe(p);
	return ret;
}

static int parse_timers(const json_t *v, const char *path, struct eg_wg_timers *t, struct eg_error *err)
{
	static const char *const keys[] = {"rekey_after_time", "reject_after_time", "rekey_attempt_time",
		"rekey_timeout", "keepalive_timeout", "rekey_after_messages", "reject_after_messages", NULL};
	uint32_t *secs[] = {&t->rekey_after_time, &t->reject_after_time, &t->rekey_attempt_time, &t->rekey_timeout,
			    &t->keepalive_timeout};
	uint64_t *msgs[] = {&t->rekey_after_messages, &t->reject_after_messages};
	char kp[EG_PATH_LEN];
	const json_t *m;
	int ret;

	if ((ret = want_object(v, path, err)) || (ret = check_keys(v, path, keys, err)))
		return ret;
	for (unsigned i = 0; i < ARRAY_SIZE(secs); i++)
		if ((m = get(v, path, keys[i], kp))) {
			unsigned u = 0;

			if ((ret = want_uint(m, kp, 1, 3600, &u, err)))
				return ret;
			*secs[i] = u;
		}
	for (unsigned i = 0; i < ARRAY_SIZE(msgs); i++)
		if ((m = get(v, path, keys[ARRAY_SIZE(secs) + i], kp))) {
			long long x = 0;

			if ((ret = want_int(m, kp, 1, 1LL << 60, &x, err)))
				return ret;
			*msgs[i] = (uint64_t)x;
		}
	if (t->rekey_after_time >= t->reject_after_time) {
		key_path(kp, path, "rekey_after_time");
		return fail(err, kp, "must be less than reject_after_time (%u)", t->reject_after_time);
	}
	if (t->rekey_after_messages >= t->reject_after_messages) {
		key_path(kp, path, "rekey_after_messages");
		return fail(err, kp, "must be less than reject_after_messages");
	}
	return 0;
}

void eg_wg_cfg_free(struct eg_wg_cfg *wg)
{
	for (unsigned i = 0; wg->peers && i < wg->n_peers; i++)
		eg_wg_peer_wipe(&wg->peers[i]);
	free(wg->peers);
	sodium_memzero(wg, sizeof(*wg));
}

int eg_wg_peer_find(const struct eg_wg_cfg *wg, const char *name)
{
	for (unsigned i = 0; i < wg->n_peers; i++)
		if (strcmp(wg->peers[i].name, name) == 0)
			return (int)i;
	return -1;
}

int eg_wg_allowed_conflict(const struct eg_wg_peer_cfg *p, const struct eg_wg_peer_cfg *q)
{
	for (unsigned a = 0; a < p->n_allowed; a++)
		for (unsigned b = 0; b < q->n_allowed; b++)
			if (p->allowed[a].family == q->allowed[b].family && p->allowed[a].len == q->allowed[b].len &&
			    memcmp(p->allowed[a].addr, q->allowed[b].addr, 16) == 0)
				return (int)a;
	return -1;
}

/* Names and keys unique, not our own key, and no allowed prefix in two peers (a packet
 * from the site must have one peer to go to, and a decrypted one one peer it may come
 * from). Quadratic in prefixes: checked at config time only. */
static int check_peers(const struct eg_wg_cfg *wg, const char *peers_path, struct eg_error *err)
{
	uint8_t our_pub[EG_WG_KEY_LEN];
	char pp[EG_PATH_LEN], kp[EG_PATH_LEN];

	if (wg_public_from_private(our_pub, wg->private_key) != 0)
		return fail(err, peers_path, "the private key gives no public key");
	for (unsigned i = 0; i < wg->n_peers; i++) {
		const struct eg_wg_peer_cfg *p = &wg->peers[i];

		idx_path(pp, peers_path, i);
		key_path(kp, pp, "public_key");
		if (sodium_memcmp(p->public_key, our_pub, EG_WG_KEY_LEN) == 0)
			return fail(err, kp, "this is our own public key");
		for (unsigned j = 0; j < i; j++) {
			const struct eg_wg_peer_cfg *q = &wg->peers[j];
			int a;

			if (strcmp(p->name, q->name) == 0) {
				key_path(kp, pp, "name");
				return fail(err, kp, "peer %s is configured twice", Q(p->name));
			}
			if (sodium_memcmp(p->public_key, q->public_key, EG_WG_KEY_LEN) == 0)
				return fail(err, kp, "the same public key as peer %s", Q(q->name));
			a = eg_wg_allowed_conflict(p, q);
			if (a >= 0) {
				char buf[EG_PREFIX_STR_LEN], ap[EG_PATH_LEN];

				key_path(kp, pp, "allowed_ips");
				idx_path(ap, kp, (unsigned)a);
				return fail(err, ap, "%s is already peer %s's",
					    eg_prefix_format(&p->allowed[a], buf, sizeof(buf)), Q(q->name));
			}
		}
	}
	sodium_memzero(our_pub, sizeof(our_pub));
	return 0;
}

int eg_wg_cfg_parse_section(const json_t *v, const char *path, struct eg_wg_cfg *wg, struct eg_error *err)
{
	static const char *const keys[] = {"private_key", "listen_port", "handshake_load_threshold", "peers",
					   "test_timers", NULL};
	char kp[EG_PATH_LEN], ep[EG_PATH_LEN];
	const json_t *m, *e;
	unsigned u;
	size_t i;
	int ret;

	memset(wg, 0, sizeof(*wg));
	eg_wg_timers_default(&wg->timers);
	wg->listen_port = EG_WG_DEFAULT_PORT;
	wg->load_threshold = EG_WG_DEFAULT_LOAD_THRESHOLD;
	if (!v)
		return 0;
	wg->present = true;
	if ((ret = want_object(v, path, err)) || (ret = check_keys(v, path, keys, err)))
		goto fail;
	if (!(m = get(v, path, "private_key", kp))) {
		ret = missing(err, kp);
		goto fail;
	}
	if ((ret = want_key(m, kp, wg->private_key, err)))
		goto fail;
	if ((m = get(v, path, "listen_port", kp))) {
		if ((ret = want_uint(m, kp, 1, 65535, &u, err)))
			goto fail;
		wg->listen_port = (uint16_t)u;
	}
	if ((m = get(v, path, "handshake_load_threshold", kp))) {
		if ((ret = want_uint(m, kp, 0, 1000000, &u, err)))
			goto fail;
		wg->load_threshold = u;
	}
	if ((m = get(v, path, "test_timers", kp)) && (ret = parse_timers(m, kp, &wg->timers, err)))
		goto fail;
	if ((m = get(v, path, "peers", kp))) {
		if ((ret = want_array(m, kp, err)))
			goto fail;
		if (json_array_size(m) > EG_MAX_WG_PEERS) {
			ret = fail(err, kp, "at most %d peers", EG_MAX_WG_PEERS);
			goto fail;
		}
		if (json_array_size(m) && !(wg->peers = calloc(json_array_size(m), sizeof(*wg->peers)))) {
			ret = fail_nomem(err, kp);
			goto fail;
		}
		json_array_foreach(m, i, e) {
			idx_path(ep, kp, i);
			if ((ret = eg_wg_peer_parse(e, ep, &wg->peers[i], err)))
				goto fail;
			wg->n_peers = (unsigned)i + 1;
		}
		if ((ret = check_peers(wg, kp, err)))
			goto fail;
	}
	return 0;
fail:
	eg_wg_cfg_free(wg);
	return ret;
}

int eg_wg_check_refs(const struct eg_wg_cfg *wg, const struct eg_egress_cfg *egresses, unsigned n_egresses,
		     const char *egress_path, struct eg_error *err)
{
	char ep[EG_PATH_LEN], kp[EG_PATH_LEN];

	for (unsigned i = 0; i < n_egresses; i++) {
		if (egresses[i].type != EG_EGRESS_WIREGUARD)
			continue;
		idx_path(ep, egress_path, i);
		key_path(kp, ep, "peer");
		if (!wg->present)
			return fail(err, kp, "a wireguard egress needs the \"wireguard\" section");
		if (eg_wg_peer_find(wg, egresses[i].peer) < 0)
			return fail(err, kp, "no WireGuard peer %s", Q(egresses[i].peer));
	}
	return 0;
}

void eg_wg_key_base64(const uint8_t key[EG_WG_KEY_LEN], char out[45])
{
	sodium_bin2base64(out, 45, key, EG_WG_KEY_LEN, sodium_base64_VARIANT_ORIGINAL);
}

json_t *eg_wg_peer_to_json(const struct eg_wg_peer_cfg *p, bool with_secrets)
{
	json_t *o = json_object(), *ips = json_array();
	char b64[45], buf[EG_PREFIX_STR_LEN + 8], a[EG_ADDR_STR_LEN];

	if (!o || !ips) {
		json_decref(o);
		json_decref(ips);
		return NULL;
	}
	json_object_set_new(o, "name", json_string(p->name));
	eg_wg_key_base64(p->public_key, b64);
	json_object_set_new(o, "public_key", json_string(b64));
	if (p->has_psk && with_secrets) {
		eg_wg_key_base64(p->psk, b64);
		json_object_set_new(o, "preshared_key", json_string(b64));
		sodium_memzero(b64, sizeof(b64));
	}
	if (p->has_endpoint) {
		eg_addr_format(p->endpoint.family, p->endpoint.addr, a, sizeof(a));
		snprintf(buf, sizeof(buf), p->endpoint.family == EG_AF_INET6 ? "[%s]:%u" : "%s:%u", a,
			 p->endpoint_port);
		json_object_set_new(o, "endpoint", json_string(buf));
	}
	for (unsigned i = 0; i < p->n_allowed; i++)
		json_array_append_new(ips, json_string(eg_prefix_format(&p->allowed[i], buf, sizeof(buf))));
	json_object_set_new(o, "allowed_ips", ips);
	json_object_set_new(o, "persistent_keepalive", json_integer(p->persistent_keepalive));
	return o;
}
