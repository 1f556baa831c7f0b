/* Textual addresses, prefixes, port ranges and protocol names, as they appear in the config
 * file and on the control socket. Strict on purpose: anything inet_pton would not print
 * back (leading '+', spaces, empty parts) is refused, so that a typo never turns into a
 * different but valid value. */
#include "net_addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Reads 1..digits decimal digits at *s into *out, refusing values above max. Leaves *s on
 * the first character that is not a digit. Bounding the digit count keeps the
 * accumulator far from overflow whatever the input. */
static bool parse_dec(const char **s, unsigned digits, unsigned max, unsigned *out)
{
	const char *p = *s;
	unsigned v = 0, n = 0;

	while (*p >= '0' && *p <= '9') {
		if (++n > digits)
			return false;
		v = v * 10 + (unsigned)(*p - '0');
		p++;
	}
	if (n == 0 || v > max)
		return false;
	*s = p;
	*out = v;
	return true;
}

int eg_addr_parse(const char *s, struct eg_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (!s)
		return -EINVAL;
	/* A ':' can only mean IPv6; inet_pton(AF_INET) takes strict dotted quads only. */
	if (strchr(s, ':')) {
		if (inet_pton(AF_INET6, s, out->addr) != 1)
			goto invalid;
		out->family = EG_AF_INET6;
	} else {
		if (inet_pton(AF_INET, s, out->addr) != 1)
			goto invalid;
		out->family = EG_AF_INET;
	}
	return 0;
invalid:
	memset(out, 0, sizeof(*out));
	return -EINVAL;
}

static bool host_bits_zero(const struct eg_prefix *p)
{
	unsigned bits = eg_addr_bits(p->family);

	for (unsigned b = p->len; b < bits; b++)
		if (eg_addr_bit(p->addr, b))
			return false;
	return true;
}

int eg_hostport_split(const char *s, char *host, size_t host_len, const char **port)
{
	const char *start = s, *end;

	if (s[0] && strspn(s + (s[0] == ':'), "0123456789") == strlen(s + (s[0] == ':'))) {
		if (host_len < sizeof("127.0.0.1"))
			return -EINVAL;
		memcpy(host, "127.0.0.1", sizeof("127.0.0.1"));
		*port = s + (s[0] == ':');
		return **port ? 0 : -EINVAL;
	}
	if (s[0] == '[') {
		start = s + 1;
		end = strchr(start, ']');
		if (!end || end[1] != ':')
			return -EINVAL;
	} else {
		end = strrchr(s, ':');
		if (!end)
			return -EINVAL;
	}
	if ((size_t)(end - start) >= host_len)
		return -EINVAL;
	memcpy(host, start, (size_t)(end - start));
	host[end - start] = '\0';
	*port = strchr(end, ':') + 1;
	return 0;
}

int eg_prefix_parse(const char *s, bool allow_host_bits, struct eg_prefix *out)
{
	char buf[EG_ADDR_STR_LEN];
	struct eg_addr a;
	const char *slash, *p;
	unsigned len;
	size_t alen;

	memset(out, 0, sizeof(*out));
	if (!s)
		return -EINVAL;
	slash = strchr(s, '/');
	alen = slash ? (size_t)(slash - s) : strlen(s);
	if (alen == 0 || alen >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	if (eg_addr_parse(buf, &a))
		return -EINVAL;

	len = eg_addr_bits(a.family);
	if (slash) {
		p = slash + 1;
		if (!parse_dec(&p, 3, eg_addr_bits(a.family), &len) || *p != '\0')
			return -EINVAL;
	}

	out->family = a.family;
	out->len = (uint8_t)len;
	memcpy(out->addr, a.addr, sizeof(out->addr));
	if (!allow_host_bits && !host_bits_zero(out)) {
		memset(out, 0, sizeof(*out));
		return -EINVAL;
	}
	return 0;
}

const char *eg_addr_format(uint8_t family, const uint8_t *addr, char *buf, size_t len)
{
	int af = family == EG_AF_INET ? AF_INET : family == EG_AF_INET6 ? AF_INET6 : -1;

	if (len == 0)
		return buf;
	if (af < 0 || !inet_ntop(af, addr, buf, (socklen_t)len))
		snprintf(buf, len, "?");
	return buf;
}

const char *eg_prefix_format(const struct eg_prefix *p, char *buf, size_t len)
{
	char a[EG_ADDR_STR_LEN];

	if (len == 0)
		return buf;
	eg_addr_format(p->family, p->addr, a, sizeof(a));
	if (snprintf(buf, len, "%s/%u", a, p->len) >= (int)len)
		snprintf(buf, len, "?");
	return buf;
}

bool eg_prefix_contains(const struct eg_prefix *p, uint8_t family, const uint8_t *addr)
{
	unsigned full, rest;

	if (p->family != family)
		return false;
	full = p->len / 8;
	rest = p->len % 8;
	if (memcmp(p->addr, addr, full) != 0)
		return false;
	if (rest) {
		uint8_t m = (uint8_t)(0xff << (8 - rest));

		if ((p->addr[full] & m) != (addr[full] & m))
			return false;
	}
	return true;
}

void eg_prefix_mask(struct eg_prefix *p)
{
	unsigned len = p->len, full, rest;

	if (len > eg_addr_bits(p->family))
		len = p->len = (uint8_t)eg_addr_bits(p->family);
	full = len / 8;
	rest = len % 8;
	if (rest)
		p->addr[full++] &= (uint8_t)(0xff << (8 - rest));
	/* Bytes past an IPv4 address are zero by contract; clearing them too keeps
	 * memcmp-based comparisons of whole structs honest. */
	memset(p->addr + full, 0, sizeof(p->addr) - full);
}

int eg_port_range_parse(const char *s, uint16_t *lo, uint16_t *hi)
{
	unsigned a, b;

	if (!s || !parse_dec(&s, 5, 65535, &a))
		return -EINVAL;
	b = a;
	if (*s == '-') {
		s++;
		if (!parse_dec(&s, 5, 65535, &b))
			return -EINVAL;
	}
	if (*s != '\0' || a > b)
		return -EINVAL;
	*lo = (uint16_t)a;
	*hi = (uint16_t)b;
	return 0;
}

/* IANA protocol numbers. */
static const struct {
	const char *name;
	uint8_t proto;
} protos[] = {
	{"icmp", 1},
	{"tcp", 6},
	{"udp", 17},
	{"gre", 47},
	{"esp", 50},
	{"ah", 51},
	{"icmpv6", 58},
	{"sctp", 132},
};

int eg_proto_parse(const char *s)
{
	unsigned v;

	if (!s)
		return -1;
	for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++)
		if (strcasecmp(s, protos[i].name) == 0)
			return protos[i].proto;
	if (!parse_dec(&s, 3, 255, &v) || *s != '\0')
		return -1;
	return (int)v;
}

const char *eg_proto_name(uint8_t proto, char *buf, size_t len)
{
	if (len == 0)
		return buf;
	for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++)
		if (protos[i].proto == proto) {
			snprintf(buf, len, "%s", protos[i].name);
			return buf;
		}
	snprintf(buf, len, "%u", proto);
	return buf;
}
