/* Keys of an SA object (all but spi, direction, local, remote, aead and key optional):
 *   spi            integer 256..4294967295 (1..255 are reserved, RFC 4303 2.1)
 *   direction      "in" | "out"
 *   mode           "tunnel" (the only mode)
 *   local, remote  outer IPv4 or IPv6 addresses of one family; local is an uplink's address
 *   aead           "aes-gcm-128" | "aes-gcm-256" | "chacha20-poly1305"
 *   key            hex, the key then the 4-byte salt: 40 hex digits for aes-gcm-128, 72
 *                  for aes-gcm-256 and chacha20-poly1305 (RFC 4106 4, RFC 7634 2)
 *   replay_window  64..65536, default 1024 (used by inbound SAs)
 *   esn            bool, default false
 *   encap          "none" (default) | "udp" (RFC 3948, ports below)
 *   encap_sport, encap_dport  default 4500
 *   fragment       what happens to an inner IPv4 packet without DF that is too big for the
 *                  tunnel: "inner" (the default) fragments it before encryption, every
 *                  fragment its own ESP packet, which any peer can take; "outer" encrypts
 *                  it whole and fragments the ESP packet, which the peer reassembles
 *                  (RFC 4303 3.3.4, 3.4.1), sparing the inner hosts the fragments
 *   lifetime       {"bytes","packets","seconds"}: hard limits, 0 or absent for none
 *   soft_lifetime  the same: ipsec.sa.expiring is sent; default 90% of each hard limit */
#include "sa_config.h"

#include "aead.h"
#include "config_read.h"

static const char *const aead_names[] = {
	[EG_AEAD_AES_GCM_128] = "aes-gcm-128",
	[EG_AEAD_AES_GCM_256] = "aes-gcm-256",
	[EG_AEAD_CHACHA20_POLY1305] = "chacha20-poly1305",
};

const char *eg_sa_aead_name(uint8_t aead)
{
	return aead < ARRAY_SIZE(aead_names) && aead_names[aead] ? aead_names[aead] : "none";
}

static int parse_hex(const char *s, uint8_t *out, size_t len)
{
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	if (strlen(s) != len * 2)
		return -1;
	for (size_t i = 0; i < len; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static int parse_lifetime(const json_t *v, const char *path, struct eg_sa_lifetime *lt,
			  struct eg_error *err)
{
	static const char *const keys[] = {"bytes", "packets", "seconds", NULL};
	uint64_t *fields[] = {&lt->bytes, &lt->packets, &lt->seconds};
	char kp[EG_PATH_LEN];
	int ret;

	if ((ret = want_object(v, path, err)) || (ret = check_keys(v, path, keys, err)))
		return ret;
	for (unsigned i = 0; keys[i]; i++) {
		const json_t *m = get(v, path, keys[i], kp);
		long long x;

		if (!m)
			continue;
		if ((ret = want_int(m, kp, 0, (long long)1 << 62, &x, err)))
			return ret;
		*fields[i] = (uint64_t)x;
	}
	return 0;
}

static int parse_sa(const json_t *v, const char *path, struct eg_sa_cfg *sa, struct eg_error *err)
{
	static const char *const keys[] = {"spi", "direction", "mode", "local", "remote", "aead",
		"key", "replay_window", "esn", "encap", "encap_sport", "encap_dport", "fragment",
		"lifetime", "soft_lifetime", NULL};
	char kp[EG_PATH_LEN];
	const json_t *m;
	const char *s;
	long long x;
	unsigned u;
	bool has_soft = false;
	int ret;

	if ((ret = want_object(v, path, err)) || (ret = check_keys(v, path, keys, err)))
		return ret;
	if (!(m = get(v, path, "spi", kp)))
		return missing(err, kp);
	if ((ret = want_int(m, kp, 256, 0xffffffffLL, &x, err)))
		return ret;
	sa->spi = (uint32_t)x;

	if (!(m = get(v, path, "direction", kp)))
		return missing(err, kp);
	if ((ret = want_string(m, kp, &s, err)))
		return ret;
	if (strcmp(s, "in") && strcmp(s, "out"))
		return fail(err, kp, "unknown direction %s: use \"in\" or \"out\"", Q(s));
	sa->dir = strcmp(s, "out") == 0 ? EG_SA_DIR_OUT : EG_SA_DIR_IN;

	if ((m = get(v, path, "mode", kp))) {
		if ((ret = want_string(m, kp, &s, err)))
			return ret;
		if (strcmp(s, "tunnel"))
			return fail(err, kp, "mode %s is not supported: only \"tunnel\"", Q(s));
	}
	if (!(m = get(v, path, "local", kp)))
		return missing(err, kp);
	if ((ret = want_addr(m, kp, EG_AF_ANY, &sa->local, err)))
		return ret;
	if (!(m = get(v, path, "remote", kp)))
		return missing(err, kp);
	if ((ret = want_addr(m, kp, sa->local.family, &sa->remote, err)))
		return ret;

	if (!(m = get(v, path, "aead", kp)))
		return missing(err, kp);
	if ((ret = want_string(m, kp, &s, err)))
		return ret;
	sa->aead = EG_AEAD_NONE;
	for (unsigned i = 1; i < ARRAY_SIZE(aead_names); i++)
		if (strcmp(s, aead_names[i]) == 0)
			sa->aead = (uint8_t)i;
	if (sa->aead == EG_AEAD_NONE)
		return fail(err, kp, "unknown aead %s: use \"aes-gcm-128\", \"aes-gcm-256\" or "
			    "\"chacha20-poly1305\"", Q(s));
	sa->key_len = sa->aead == EG_AEAD_AES_GCM_128 ? 16 : 32;

	if (!(m = get(v, path, "key", kp)))
		return missing(err, kp);
	if ((ret = want_string(m, kp, &s, err)))
		return ret;
	{
		uint8_t buf[EG_SA_KEY_MAX + EG_SA_SALT_LEN];

		/* The message must not quote the key. */
		if (parse_hex(s, buf, sa->key_len + EG_SA_SALT_LEN)) {
			explicit_bzero(buf, sizeof(buf));
			return fail(err, kp, "expected %u hex digits (%u-byte key, then the 4-byte salt)",
				    (sa->key_len + EG_SA_SALT_LEN) * 2, sa->key_len);
		}
		memcpy(sa->key, buf, sa->key_len);
		memcpy(sa->salt, buf + sa->key_len, EG_SA_SALT_LEN);
		explicit_bzero(buf, sizeof(buf));
	}

	sa->replay_window = EG_SA_DEFAULT_WINDOW;
	if ((m = get(v, path, "replay_window", kp)) &&
	    (ret = want_uint(m, kp, 64, 65536, &sa->replay_window, err)))
		return ret;
	if ((m = get(v, path, "esn", kp)) && (ret = want_bool(m, kp, &sa->esn, err)))
		return ret;
	if ((m = get(v, path, "encap", kp))) {
		if ((ret = want_string(m, kp, &s, err)))
			return ret;
		if (strcmp(s, "none") && strcmp(s, "udp"))
			return fail(err, kp, "unknown encap %s: use \"none\" or \"udp\"", Q(s));
		sa->udp_encap = strcmp(s, "udp") == 0;
	}
	sa->encap_sport = sa->encap_dport = EG_ESP_UDP_PORT;
	if ((m = get(v, path, "encap_sport", kp))) {
		if (!sa->udp_encap)
			return fail(err, kp, "only with \"encap\": \"udp\"");
		if ((ret = want_uint(m, kp, 1, 65535, &u, err)))
			return ret;
		sa->encap_sport = (uint16_t)u;
	}
	if ((m = get(v, path, "encap_dport", kp))) {
		if (!sa->udp_encap)
			return fail(err, kp, "only with \"encap\": \"udp\"");
		if ((ret = want_uint(m, kp, 1, 65535, &u, err)))
			return ret;
		sa->encap_dport = (uint16_t)u;
	}
	if ((m = get(v, path, "fragment", kp))) {
		if ((ret = want_string(m, kp, &s, err)))
			return ret;
		if (strcmp(s, "outer") == 0)
			sa->fragment_outer = true;
		else if (strcmp(s, "inner"))
			return fail(err, kp, "unknown fragment %s: use \"inner\" or \"outer\"", Q(s));
	}
	if ((m = get(v, path, "lifetime", kp)) && (ret = parse_lifetime(m, kp, &sa->hard, err)))
		return ret;
	if ((m = get(v, path, "soft_lifetime", kp))) {
		if ((ret = parse_lifetime(m, kp, &sa->soft, err)))
			return ret;
		has_soft = true;
		const uint64_t s3[] = {sa->soft.bytes, sa->soft.packets, sa->soft.seconds};
		const uint64_t h3[] = {sa->hard.bytes, sa->hard.packets, sa->hard.seconds};
		static const char *const names[] = {"bytes", "packets", "seconds"};

		for (unsigned i = 0; i < 3; i++)
			if (s3[i] && h3[i] && s3[i] >= h3[i]) {
				char fp[EG_PATH_LEN];

				key_path(fp, kp, names[i]);
				return fail(err, fp, "the soft limit must be below the hard one (%llu)",
					    (unsigned long long)h3[i]);
			}
	}
	if (!has_soft) {
		sa->soft.bytes = sa->hard.bytes / 10 * 9;
		sa->soft.packets = sa->hard.packets / 10 * 9;
		sa->soft.seconds = sa->hard.seconds / 10 * 9;
	}
	return 0;
}

void eg_sa_cfg_wipe(struct eg_sa_cfg *sa)
{
	explicit_bzero(sa, sizeof(*sa));
}

void eg_sa_cfg_free_all(struct eg_sa_cfg *sas, unsigned n)
{
	if (!sas)
		return;
	for (unsigned i = 0; i < n; i++)
		eg_sa_cfg_wipe(&sas[i]);
	free(sas);
}

int eg_sa_cfg_parse(const json_t *obj, const char *path, struct eg_sa_cfg *out, struct eg_error *err)
{
	int ret;

	clear_err(err);
	memset(out, 0, sizeof(*out));
	ret = parse_sa(obj, path ? path : "$", out, err);
	if (ret)
		eg_sa_cfg_wipe(out);
	return ret;
}

int eg_sa_cfg_parse_section(const json_t *ipsec, const char *path, struct eg_sa_cfg **sas,
			    unsigned *n, struct eg_error *err)
{
	static const char *const keys[] = {"sas", NULL};
	char kp[EG_PATH_LEN], ep[EG_PATH_LEN];
	const json_t *m, *e;
	size_t i;
	int ret;

	*sas = NULL;
	*n = 0;
	if (!ipsec)
		return 0;
	if ((ret = want_object(ipsec, path, err)) || (ret = check_keys(ipsec, path, keys, err)))
		return ret;
	if (!(m = get(ipsec, path, "sas", kp)) || json_array_size(m) == 0)
		return json_is_array(m) || !m ? 0 : fail(err, kp, "expected an array");
	if ((ret = want_array(m, kp, err)))
		return ret;
	if (json_array_size(m) > EG_MAX_SAS)
		return fail(err, kp, "at most %d SAs", EG_MAX_SAS);
	*sas = calloc(json_array_size(m), sizeof(**sas));
	if (!*sas)
		return fail_nomem(err, kp);
	json_array_foreach(m, i, e) {
		idx_path(ep, kp, i);
		if ((ret = eg_sa_cfg_parse(e, ep, &(*sas)[i], err))) {
			eg_sa_cfg_free_all(*sas, *n);
			*sas = NULL;
			*n = 0;
			return ret;
		}
		*n = (unsigned)i + 1;
	}
	return 0;
}

int eg_sa_cfg_port(const struct eg_dataplane_cfg *dp, const struct eg_sa_cfg *sa)
{
	for (unsigned i = 0; i < dp->n_ports; i++) {
		const struct eg_port_cfg *p = &dp->ports[i];
		const struct eg_prefix *a = sa->local.family == EG_AF_INET ? &p->ipv4 : &p->ipv6;
		bool has = sa->local.family == EG_AF_INET ? p->has_ipv4 : p->has_ipv6;

		if (p->role == EG_ROLE_UPLINK && has &&
		    memcmp(a->addr, sa->local.addr, eg_addr_len(sa->local.family)) == 0)
			return (int)i;
	}
	return -1;
}

int eg_sa_cfg_find(const struct eg_sa_cfg *sas, unsigned n, uint32_t spi, uint8_t dir)
{
	for (unsigned i = 0; i < n; i++)
		if (sas[i].spi == spi && sas[i].dir == dir)
			return (int)i;
	return -1;
}

int eg_sa_check_refs(const struct eg_dataplane_cfg *dp, const struct eg_sa_cfg *sas, unsigned n,
		     const char *sa_path, const struct eg_egress_cfg *egresses, unsigned n_egresses,
		     const char *egress_path, struct eg_error *err)
{
	char ep[EG_PATH_LEN], kp[EG_PATH_LEN];

	for (unsigned i = 0; i < n; i++) {
		idx_path(ep, sa_path, i);
		if (eg_sa_cfg_find(sas, i, sas[i].spi, sas[i].dir) >= 0) {
			key_path(kp, ep, "spi");
			return fail(err, kp, "SPI %u (%s) is configured twice", sas[i].spi,
				    sas[i].dir == EG_SA_DIR_IN ? "in" : "out");
		}
		if (eg_sa_cfg_port(dp, &sas[i]) < 0) {
			char a[EG_ADDR_STR_LEN];

			key_path(kp, ep, "local");
			return fail(err, kp, "%s is not the address of an uplink port",
				    eg_addr_format(sas[i].local.family, sas[i].local.addr, a, sizeof(a)));
		}
	}
	for (unsigned i = 0; i < n_egresses; i++) {
		const struct eg_egress_cfg *e = &egresses[i];

		if (e->type != EG_EGRESS_IPSEC)
			continue;
		idx_path(ep, egress_path, i);
		if (eg_sa_cfg_find(sas, n, e->sa_out, EG_SA_DIR_OUT) < 0) {
			key_path(kp, ep, "sa_out");
			return fail(err, kp, "no outbound SA with SPI %u", e->sa_out);
		}
		if (eg_sa_cfg_find(sas, n, e->sa_in, EG_SA_DIR_IN) < 0) {
			key_path(kp, ep, "sa_in");
			return fail(err, kp, "no inbound SA with SPI %u", e->sa_in);
		}
	}
	return 0;
}

static json_t *lifetime_json(const struct eg_sa_lifetime *lt)
{
	return json_pack("{s:I,s:I,s:I}", "bytes", (json_int_t)lt->bytes, "packets",
			 (json_int_t)lt->packets, "seconds", (json_int_t)lt->seconds);
}

json_t *eg_sa_cfg_to_json(const struct eg_sa_cfg *sa, bool with_key)
{
	char l[EG_ADDR_STR_LEN], r[EG_ADDR_STR_LEN];
	json_t *o = json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:i,s:b,s:s,s:s,s:o,s:o}", "spi", (json_int_t)sa->spi,
			      "direction", sa->dir == EG_SA_DIR_OUT ? "out" : "in", "mode", "tunnel", "local",
			      eg_addr_format(sa->local.family, sa->local.addr, l, sizeof(l)), "remote",
			      eg_addr_format(sa->remote.family, sa->remote.addr, r, sizeof(r)), "aead",
			      eg_sa_aead_name(sa->aead), "replay_window", (int)sa->replay_window, "esn",
			      sa->esn, "encap", sa->udp_encap ? "udp" : "none", "fragment",
			      sa->fragment_outer ? "outer" : "inner", "lifetime", lifetime_json(&sa->hard),
			      "soft_lifetime", lifetime_json(&sa->soft));

	if (o && sa->udp_encap) {
		json_object_set_new(o, "encap_sport", json_integer(sa->encap_sport));
		json_object_set_new(o, "encap_dport", json_integer(sa->encap_dport));
	}
	if (o && with_key) {
		char hex[(EG_SA_KEY_MAX + EG_SA_SALT_LEN) * 2 + 1];
		unsigned k = 0;

		for (unsigned i = 0; i < sa->key_len; i++)
			k += (unsigned)snprintf(hex + k, 3, "%02x", sa->key[i]);
		for (unsigned i = 0; i < EG_SA_SALT_LEN; i++)
			k += (unsigned)snprintf(hex + k, 3, "%02x", sa->salt[i]);
		json_object_set_new(o, "key", json_string(hex));
		explicit_bzero(hex, sizeof(hex));
	}
	return o;
}
