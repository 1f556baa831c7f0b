/* Reading typed JSON values with errors that name their JSON path: the helpers the config
 * parsers (config.c, sa_config.c) share. Private to lib/: every function is static, so
 * each parser file gets its own copy and the exported API stays in config.h. */
#ifndef EG_CONFIG_READ_H
#define EG_CONFIG_READ_H

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config.h"
#include "net_addr.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

enum {
	QUOTE_LEN = 72,		/* quoted bad input in a message: short enough to stay one line */
};

/* ---- errors and paths ---- */

/* Writes s into buf as a double-quoted string safe for a log line: quotes, backslashes and
 * non-printable bytes escaped, long input cut with "...". */
static const char *quote(char *buf, const char *s)
{
	size_t o = 0;

	buf[o++] = '"';
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char tmp[5];
		size_t n;

		if (c == '"' || c == '\\')
			n = (size_t)snprintf(tmp, sizeof(tmp), "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			n = (size_t)snprintf(tmp, sizeof(tmp), "\\x%02x", c);
		else {
			tmp[0] = (char)c;
			n = 1;
		}
		if (o + n > QUOTE_LEN - 5) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(buf + o, tmp, n);
		o += n;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

/* The buffer lives until the end of the enclosing block: use inside one call. */
#define Q(s) quote((char[QUOTE_LEN]){0}, (s))

__attribute__((format(printf, 3, 4)))
static int fail(struct eg_error *err, const char *path, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return -EINVAL;
	snprintf(err->path, sizeof(err->path), "%s", path);
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int fail_nomem(struct eg_error *err, const char *path)
{
	fail(err, path, "out of memory");
	return -ENOMEM;
}

static void clear_err(struct eg_error *err)
{
	if (err)
		err->path[0] = err->msg[0] = '\0';
}

static bool plain_key(const char *k)
{
	if (!*k)
		return false;
	for (; *k; k++)
		if (!isalnum((unsigned char)*k) && *k != '_' && *k != '-')
			return false;
	return true;
}

/* A path cut at EG_PATH_LEN still points the operator near the right place; mark the cut. */
static void path_cut(char out[EG_PATH_LEN], int n)
{
	if (n >= EG_PATH_LEN)
		memcpy(out + EG_PATH_LEN - 4, "...", 4);
}

/* base.key, or base["odd key"] for keys that would make the path ambiguous. */
static void key_path(char out[EG_PATH_LEN], const char *base, const char *key)
{
	if (plain_key(key))
		path_cut(out, snprintf(out, EG_PATH_LEN, "%s.%s", base, key));
	else
		path_cut(out, snprintf(out, EG_PATH_LEN, "%s[%s]", base, Q(key)));
}

static void idx_path(char out[EG_PATH_LEN], const char *base, size_t i)
{
	path_cut(out, snprintf(out, EG_PATH_LEN, "%s[%zu]", base, i));
}

/* The member key of obj (NULL when absent), with its path in kp for error messages. */
static const json_t *get(const json_t *obj, const char *path, const char *key,
			 char kp[EG_PATH_LEN])
{
	key_path(kp, path, key);
	return json_object_get(obj, key);
}

static int missing(struct eg_error *err, const char *kp)
{
	return fail(err, kp, "missing required key");
}

static bool in_list(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(s, *list) == 0)
			return true;
	return false;
}

/* Refuses any key of obj not in keys (NULL-terminated). Runs before the values are looked
 * at, so a misspelt key is reported as such rather than as a missing one. */
static int check_keys(const json_t *obj, const char *path, const char *const *keys,
		      struct eg_error *err)
{
	const char *k;
	json_t *v;
	char kp[EG_PATH_LEN];

	json_object_foreach((json_t *)obj, k, v) {
		if (!in_list(k, keys)) {
			key_path(kp, path, k);
			return fail(err, kp, "unknown key");
		}
	}
	return 0;
}

/* ---- typed values ---- */

static int want_object(const json_t *v, const char *path, struct eg_error *err)
{
	return json_is_object(v) ? 0 : fail(err, path, "expected an object");
}

static int want_array(const json_t *v, const char *path, struct eg_error *err)
{
	return json_is_array(v) ? 0 : fail(err, path, "expected an array");
}

static int want_string(const json_t *v, const char *path, const char **out,
		       struct eg_error *err)
{
	if (!json_is_string(v))
		return fail(err, path, "expected a string");
	/* Built documents may carry NULs (json_stringn); a C string would silently stop there. */
	if (strlen(json_string_value(v)) != json_string_length(v))
		return fail(err, path, "contains a NUL byte");
	*out = json_string_value(v);
	return 0;
}

/* A string that must fit in size bytes with its NUL, and not be empty. */
static int want_text(const json_t *v, const char *path, char *out, size_t size,
		     struct eg_error *err)
{
	const char *s;
	int ret = want_string(v, path, &s, err);

	if (ret)
		return ret;
	if (!*s)
		return fail(err, path, "must not be empty");
	if (strlen(s) >= size)
		return fail(err, path, "too long (%zu bytes, at most %zu): %s", strlen(s),
			    size - 1, Q(s));
	memcpy(out, s, strlen(s) + 1);
	return 0;
}

static int want_int(const json_t *v, const char *path, long long min, long long max,
		    long long *out, struct eg_error *err)
{
	long long x;

	if (!json_is_integer(v))
		return fail(err, path, "expected an integer");
	x = json_integer_value(v);
	if (x < min || x > max)
		return fail(err, path, "%lld is out of range %lld..%lld", x, min, max);
	*out = x;
	return 0;
}

static int want_uint(const json_t *v, const char *path, unsigned min, unsigned max,
		     unsigned *out, struct eg_error *err)
{
	long long x = 0;
	int ret = want_int(v, path, min, max, &x, err);

	if (!ret)
		*out = (unsigned)x;
	return ret;
}

/* A JSON number (integer or real) in [min, max], or (min, max] when min_open. */
static int want_number(const json_t *v, const char *path, double min, bool min_open,
		       double max, double *out, struct eg_error *err)
{
	double x;

	if (!json_is_number(v))
		return fail(err, path, "expected a number");
	x = json_number_value(v);
	if (!isfinite(x) || x < min || (min_open && x == min) || x > max) {
		if (max == INFINITY)
			return fail(err, path, "%g must be %s %g", x, min_open ? ">" : ">=", min);
		return fail(err, path, "%g is out of range %g..%g", x, min, max);
	}
	*out = x;
	return 0;
}

static int want_bool(const json_t *v, const char *path, bool *out, struct eg_error *err)
{
	if (!json_is_boolean(v))
		return fail(err, path, "expected true or false");
	*out = json_is_true(v);
	return 0;
}

static bool valid_name(const char *s)
{
	size_t n = 0;

	for (; *s; s++, n++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
			return false;
	return n >= 1 && n < EG_NAME_LEN;
}

static int want_name(const json_t *v, const char *path, char out[EG_NAME_LEN],
		     struct eg_error *err)
{
	const char *s;
	int ret = want_string(v, path, &s, err);

	if (ret)
		return ret;
	if (!valid_name(s))
		return fail(err, path, "invalid name %s: use 1-%d of A-Z a-z 0-9 _ -", Q(s),
			    EG_NAME_LEN - 1);
	memcpy(out, s, strlen(s) + 1);
	return 0;
}

static const char *family_name(uint8_t family)
{
	return family == EG_AF_INET ? "IPv4" : "IPv6";
}

/* An address; family EG_AF_ANY accepts both. */
static int want_addr(const json_t *v, const char *path, uint8_t family, struct eg_addr *out,
		     struct eg_error *err)
{
	const char *s;
	int ret = want_string(v, path, &s, err);

	if (ret)
		return ret;
	if (eg_addr_parse(s, out))
		return fail(err, path, "invalid IP address %s", Q(s));
	if (family != EG_AF_ANY && out->family != family)
		return fail(err, path, "%s is not an %s address", Q(s), family_name(family));
	return 0;
}

/* A prefix whose host bits are zero (a match or route prefix). */
static int want_prefix(const json_t *v, const char *path, struct eg_prefix *out,
		       struct eg_error *err)
{
	char buf[EG_PREFIX_STR_LEN];
	const char *s;
	int ret = want_string(v, path, &s, err);

	if (ret)
		return ret;
	if (eg_prefix_parse(s, false, out) == 0)
		return 0;
	/* Tell a prefix with host bits apart from garbage, and offer the likely intent. */
	if (eg_prefix_parse(s, true, out) == 0) {
		eg_prefix_mask(out);
		eg_prefix_format(out, buf, sizeof(buf));
		memset(out, 0, sizeof(*out));
		return fail(err, path, "host bits set in %s (did you mean \"%s\"?)", Q(s), buf);
	}
	return fail(err, path, "invalid prefix %s", Q(s));
}

/* An interface address "addr/len" of the given family; host bits are the point. */
static int want_ifaddr(const json_t *v, const char *path, uint8_t family,
		       struct eg_prefix *out, struct eg_error *err)
{
	const char *s;
	int ret = want_string(v, path, &s, err);

	if (ret)
		return ret;
	if (!strchr(s, '/') || eg_prefix_parse(s, true, out) || out->family != family)
		return fail(err, path, "invalid interface address %s: expected an %s address "
			    "with prefix length, like %s", Q(s), family_name(family),
			    family == EG_AF_INET ? "192.0.2.1/24" : "2001:db8::1/64");
	if (family == EG_AF_INET && out->len <= 30) {
		struct eg_prefix net = *out;
		bool all_ones = true;

		eg_prefix_mask(&net);
		for (unsigned b = out->len; b < 32; b++)
			all_ones &= eg_addr_bit(out->addr, b);
		if (memcmp(net.addr, out->addr, 4) == 0 || all_ones)
			return fail(err, path, "%s is the subnet's %s address, not a host address",
				    Q(s), all_ones ? "broadcast" : "network");
	}
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* "aa:bb:cc:dd:ee:ff", a unicast address: a group or all-zero MAC would never be answered. */
static int want_mac(const json_t *v, const char *path, uint8_t mac[6], struct eg_error *err)
{
	const char *s;
	int ret = want_string(v, path, &s, err);

	if (ret)
		return ret;
	if (strlen(s) != 17)
		goto invalid;
	for (int i = 0; i < 6; i++) {
		int hi = hexval(s[3 * i]), lo = hexval(s[3 * i + 1]);

		if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != ':'))
			goto invalid;
		mac[i] = (uint8_t)(hi << 4 | lo);
	}
	if (mac[0] & 1)
		return fail(err, path, "%s is a multicast MAC address", Q(s));
	if (!(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]))
		return fail(err, path, "%s is the all-zero MAC address", Q(s));
	return 0;
invalid:
	return fail(err, path, "invalid MAC address %s: expected aa:bb:cc:dd:ee:ff", Q(s));
}

/* "80", "1000-2000" or an integer. */
static int want_port_range(const json_t *v, const char *path, uint16_t *lo, uint16_t *hi,
			   struct eg_error *err)
{
	const char *s;
	long long x;
	int ret;

	if (json_is_integer(v)) {
		if ((ret = want_int(v, path, 0, 65535, &x, err)))
			return ret;
		*lo = *hi = (uint16_t)x;
		return 0;
	}
	if (!json_is_string(v))
		return fail(err, path, "expected a port string like \"80\" or \"1000-2000\", "
			    "or an integer");
	if ((ret = want_string(v, path, &s, err)))
		return ret;
	if (eg_port_range_parse(s, lo, hi))
		return fail(err, path, "invalid port or range %s: expected \"80\" or "
			    "\"1000-2000\" with ports 0..65535, low first", Q(s));
	return 0;
}


#pragma GCC diagnostic pop

#endif
