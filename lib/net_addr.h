/* Addresses, prefixes and flow keys shared by both daemons. No DPDK here. */
#ifndef EG_NET_ADDR_H
#define EG_NET_ADDR_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <stddef.h>

enum {
	EG_AF_ANY = 0,
	EG_AF_INET = 4,
	EG_AF_INET6 = 6,
	EG_ADDR_MAX_LEN = 16,
	EG_ADDR_STR_LEN = 46,		/* INET6_ADDRSTRLEN */
	EG_PREFIX_STR_LEN = 50,
	EG_PORT_ANY = 0xffff,		/* ingress port wildcard */
};

/* An IPv4 address lives in addr[0..3], network order; the rest is zero. */
struct eg_addr {
	uint8_t family;
	uint8_t addr[EG_ADDR_MAX_LEN];
};

struct eg_prefix {
	uint8_t family;			/* EG_AF_INET or EG_AF_INET6 */
	uint8_t len;			/* 0..32 or 0..128 */
	uint8_t addr[EG_ADDR_MAX_LEN];	/* host bits beyond len are zero */
};

/* What the classifier and the per-flow selection look at. Host byte order for ports. */
struct eg_flow_key {
	uint8_t family;
	uint8_t proto;
	uint8_t dscp;
	uint8_t pad;
	uint16_t in_port;
	uint16_t sport;
	uint16_t dport;
	uint8_t src[EG_ADDR_MAX_LEN];
	uint8_t dst[EG_ADDR_MAX_LEN];
};

static inline unsigned eg_addr_bits(uint8_t family)
{
	return family == EG_AF_INET ? 32 : 128;
}

static inline unsigned eg_addr_len(uint8_t family)
{
	return family == EG_AF_INET ? 4 : 16;
}

/* Whether two addresses of family are equal: inline, as the hot path asks per packet and
 * memcmp with a length only known at run time is a library call. */
static inline bool eg_addr_equal(uint8_t family, const uint8_t *a, const uint8_t *b)
{
	uint64_t x[2], y[2];
	uint32_t u, v;

	if (family == EG_AF_INET) {
		memcpy(&u, a, 4);
		memcpy(&v, b, 4);
		return u == v;
	}
	memcpy(x, a, 16);
	memcpy(y, b, 16);
	return ((x[0] ^ y[0]) | (x[1] ^ y[1])) == 0;
}

static inline bool eg_addr_bit(const uint8_t *addr, unsigned bit)
{
	return (addr[bit >> 3] >> (7 - (bit & 7))) & 1;
}

/* Parses "a.b.c.d" or an IPv6 address. 0 or -EINVAL. */
int eg_addr_parse(const char *s, struct eg_addr *out);
/* Splits a listen address, "host:port" or "[v6]:port", into host (brackets removed) and
 * the port's text (*port points into s). A port alone ("9469" or ":9469") means loopback:
 * host is "127.0.0.1". Checks the form only. 0 or -EINVAL. */
int eg_hostport_split(const char *s, char *host, size_t host_len, const char **port);
/* Parses "addr/len" (a bare address means a host prefix). Host bits must be zero unless
 * allow_host_bits, in which case they are kept in the address and the caller decides
 * (an interface address such as 10.0.0.1/24 needs them). 0 or -EINVAL. */
int eg_prefix_parse(const char *s, bool allow_host_bits, struct eg_prefix *out);
/* Writes into buf (EG_ADDR_STR_LEN / EG_PREFIX_STR_LEN). Returns buf. */
const char *eg_addr_format(uint8_t family, const uint8_t *addr, char *buf, size_t len);
const char *eg_prefix_format(const struct eg_prefix *p, char *buf, size_t len);
/* True when addr (of family) lies inside p. */
bool eg_prefix_contains(const struct eg_prefix *p, uint8_t family, const uint8_t *addr);
/* Zeroes host bits beyond p->len. */
void eg_prefix_mask(struct eg_prefix *p);

/* Parses a port "80" or range "1000-2000" into [lo, hi]. 0 or -EINVAL. */
int eg_port_range_parse(const char *s, uint16_t *lo, uint16_t *hi);
/* "tcp", "udp", "icmp", "icmpv6", "sctp", "gre", "esp" or a number 0..255. -1 when unknown. */
int eg_proto_parse(const char *s);
const char *eg_proto_name(uint8_t proto, char *buf, size_t len);

#endif
