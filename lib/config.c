/* The JSON configuration file, parsed into the structs of config.h.
 *
 * Config reference (the README's is derived from this block; keep them in step).
 * Unknown keys are refused everywhere, with their path, so that typos are caught.
 * "name" below means a string of 1-31 characters from A-Z a-z 0-9 _ -.
 *
 *   instance            name, required; used in the default socket and state paths
 *   dataplane           object, required
 *     eal               array of strings, at most 64, default none (more can follow "--")
 *     workers           integer 1..64, default 1
 *     idle_backoff      bool, default true
 *     idle_sleep_max_us integer 1..100000, default 200
 *     stamp_reflector   bool, default true: answer STAMP (RFC 8762) on UDP 862
 *     table_mb          integer 1..4096, default 64
 *     neigh_timeout_s   integer 1..86400, default 60
 *     flow_cache_flows  integer 1024..16777216, default 1048576: flows each worker
 *                       remembers the classification of (about 43 bytes per flow)
 *     ports             array of 1..16 port objects, required
 *       name            name, required, unique
 *       role            "site" | "uplink", required
 *       device          string of 1..255 bytes, required (DPDK device)
 *       ipv4            "a.b.c.d/len", host bits kept: the interface address (not the
 *                       subnet's network or broadcast address)
 *       ipv6            "addr/len", likewise; at least one of ipv4 and ipv6 is required
 *       gateway         IPv4 address inside the ipv4 subnet, default none
 *       gateway6        IPv6 address inside the ipv6 subnet or link-local, default none
 *       mac             "aa:bb:cc:dd:ee:ff" unicast, default the device's own
 *       vlan            integer 0..4094, default 0 (untagged)
 *       mtu             integer 68..9216 (1280.. with ipv6), default the device's
 *       neighbours      array of at most 64 {"ip": address, "mac": "aa:.."}, default none
 *     nat               object, optional: source NAT state for direct egresses with a pool
 *       sessions        integer 1024..16777216, default 1048576: sessions (and mappings) held
 *       hosts           integer 16..4194304, default 65536: inside hosts held
 *       ports_per_block integer 64..4096, a multiple of 64, default 256
 *       blocks_per_host integer 1..32, default 8
 *       log_blocks      bool, default false: log each port block given to or taken from a host
 *       timeouts        object of seconds, integers 1..86400: tcp_established (default 7440),
 *                       tcp_transitory (240), udp (300), icmp (60)
 *     routes            array of at most 256 route objects, default none
 *       prefix          prefix, host bits zero, required, unique
 *       via             address of the same family, required
 *       port            name of a site port with an address of that family, required
 *   control             object, optional
 *     socket            string of 1..107 bytes, default "/run/egress/egress.sock" (API.md; give each instance its own when several share a host)
 *     socket_group      group name (1-31 of A-Z a-z 0-9 _ . -), default the daemon's group
 *     metrics           "host:port", "[v6]:port", or a port alone for loopback ("9469"), default off
 *     state_file        string of 1..255 bytes, default "/var/lib/egress/<instance>.state.json"
 *     publish_timeout_ms integer 10..60000, default 1000
 *     selection         object, optional: hysteresis of path selection (path_select.h)
 *       hold_down_ms    integer 0..3600000, default 10000: how long a path must be better
 *       latency_margin_ms  number 0..10000, default 5    } by how much it must be better:
 *       latency_margin_pct number 0..100, default 10     } both latency margins, or
 *       loss_margin_pct number 0..100, default 1         } the loss margin in points
 *   wireguard           object, optional: see wg_config.c
 *   ipsec               object, optional: {"sas": [SA objects]}, see sa_config.c
 *   egresses            array of at most 4096 egress objects, default none
 *     name              name, required, unique
 *     type              "direct" | "wireguard" | "ipsec", required
 *     port              direct only, required: name of an uplink port
 *     next_hop          direct only: address used instead of the port's gateway
 *     peer              wireguard only, required: name of the WireGuard peer
 *     sa_out, sa_in     ipsec only, required: SPIs, integers 1..4294967295
 *     weight            number > 0, default 1 (weighted strategy)
 *     probe             object, default no probing
 *       target          address, required
 *       interval_ms     integer 10..60000, default 1000
 *       method          "icmp" (echo, default) | "stamp" (RFC 8762)
 *       port            stamp: reflector UDP port 1..65535, default 862
 *       source          address of the target's family, default the first site port's
 *                       (wireguard, ipsec) or the egress port's (direct) address
 *       window          integer 1..10000, default 100: probes the metrics cover
 *       down_after      integer 1..100, default 3: intervals without answers until down
 *       timeout_ms      integer 10..60000, default max(1000, 3 x interval_ms): lost after
 *     snat              direct only: {"pool": [...]}, source NAT (NAPT) behind the pool: 1..64
 *                       IPv4 addresses in all, each an address or a prefix /26../32 (every
 *                       address in it); unique over all egresses, none a port's own address;
 *                       the egress's port needs an IPv4 address
 *   policies            array of at most 65536 policy objects, default none
 *     name              name, required, unique
 *     priority          integer 0..2147483647, required; lower wins
 *     match             object, default {} (everything)
 *       src, dst        prefix string or non-empty array of at most 256, host bits zero
 *       proto           name (tcp udp icmp icmpv6 sctp gre esp ah) or 0..255
 *       sport, dport    "80", "1000-2000" or an integer; only with proto tcp/udp/sctp (or none)
 *       dscp            integer 0..63 or non-empty array of them
 *       port            name of the ingress port
 *     action            "forward" (default) | "drop"
 *     egresses          forward: array of 1..16 distinct egress names, required;
 *                       drop: absent or []
 *     strategy          "priority" (default) | "lowest-latency" | "lowest-loss" |
 *                       "weighted" | "pinned"; forward only
 *     sla               object, forward only, default no limits
 *       max_rtt_ms      number >= 0
 *       max_loss_pct    number 0..100
 *       max_jitter_ms   number >= 0
 *
 * A policy whose src list is IPv4 only and dst list IPv6 only (or the reverse) can never
 * match and is refused.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "classifier.h"		/* EG_DSCP_ANY */

#include "config_read.h"

enum {
	PRIORITY_MAX = 2147483647,
	IPV6_MIN_MTU = 1280,	/* RFC 8200 section 5 */
};

/* ---- dataplane ---- */

static int parse_neigh(const json_t *v, const char *path, const struct eg_port_cfg *p,
		       struct eg_static_neigh *n, struct eg_error *err)
{
	static const char *const keys[] = {"ip", "mac", NULL};
	char kp[EG_PATH_LEN];
	const json_t *m;
	int ret;

	if ((ret = want_object(v, path, err)) || (ret = check_keys(v, path, keys, err)))
		return ret;
	if (!(m = get(v, path, "ip", kp)))
		return missing(err, kp);
	if ((ret = want_addr(m, kp, EG_AF_ANY, &n->ip, err)))
		return ret;
	if (n->ip.family == EG_AF_INET ? !p->has_ipv4 : !p->has_ipv6)
		return fail(err, kp, "the port has no %s address", family_name(n->ip.family));
	if (!(m = get(v, path, "mac", kp)))
		return missing(err, kp);
	return want_mac(m, kp, n->mac, err);
}

static bool is_link_local6(const struct eg_addr *a)
{
	return a->addr[0] == 0xfe && (a->addr[1] & 0xc0) == 0x80;
}

static int check_gateway(const struct eg_prefix *net, const struct eg_addr *gw,
			 const char *path, struct eg_error *err)
{
	char g[EG_ADDR_STR_LEN], n[EG_PREFIX_STR_LEN];
	struct eg_prefix subnet = *net;

	eg_addr_format(gw->family, gw->addr, g, sizeof(g));
	if (memcmp(gw->addr, net->addr, sizeof(gw->addr)) == 0)
		return fail(err, path, "gateway %s is the port's own address", g);
	/* An IPv6 router is usually reached at its link-local address (RFC 4861 section 4.2). */
	if (gw->family == EG_AF_INET6 && is_link_local6(gw))
		return 0;
	eg_prefix_mask(&subnet);
	if (!eg_prefix_contains(&subnet, gw->family, gw->addr))
		return fail(err, path, "gateway %s is outside the port's subnet %s", g,
			    eg_prefix_format(&subnet, n, sizeof(n)));
	return 0;
}

static int parse_port(const json_t *v, const char *path, struct eg_port_cfg *p,
		      struct eg_error *err)
{
	static const char *const keys[] = {"name", "role", "device", "ipv4", "ipv6", "gateway",
		"gateway6", "mac", "vlan", "mtu", "neighbours", NULL};
	char kp[EG_PATH_LEN], ep[EG_PATH_LEN];
	const json_t *m, *e;
	const char *s;
	unsigned x;
	size_t i;
	int ret;

	if ((ret = want_object(v, path, err)) || (ret = check_keys(v, path, keys, err)))
		return ret;

	if (!(m = get(v, path, "name", kp)))
		return missing(err, kp);
	if ((ret = want_name(m, kp, p->name, err)))
		return ret;

	if (!(m = get(v, path, "role", kp)))
		return missing(err, kp);
	if ((ret = want_string(m, kp, &s, err)))
		return ret;
	if (strcmp(s, "site") == 0)
		p->role = EG_ROLE_SITE;
	else if (strcmp(s, "uplink") == 0)
		p->role = EG_ROLE_UPLINK;
	else
		return fail(err, kp, "unknown role %s: use \"site\" or \"uplink\"", Q(s));

	if (!(m = get(v, path, "device", kp)))
		return missing(err, kp);
	if ((ret = want_text(m, kp, p->device, sizeof(p->device), err)))
		return ret;

	if ((m = get(v, path, "ipv4", kp))) {
		if ((ret = want_ifaddr(m, kp, EG_AF_INET, &p->ipv4, err)))
			return ret;
		p->has_ipv4 = true;
	}
	if ((m = get(v, path, "ipv6", kp))) {
		if ((ret = want_ifaddr(m, kp, EG_AF_INET6, &p->ipv6, err)))
			return ret;
		p->has_ipv6 = true;
	}
	if (!p->has_ipv4 && !p->has_ipv6)
		return fail(err, path, "a port needs \"ipv4\" or \"ipv6\"");

	if ((m = get(v, path, "gateway", kp))) {
		if ((ret = want_addr(m, kp, EG_AF_INET, &p->gateway4, err)))
			return ret;
		if (!p->has_ipv4)
			return fail(err, kp, "a gateway needs the port's \"ipv4\"");
		if ((ret = check_gateway(&p->ipv4, &p->gateway4, kp, err)))
			return ret;
		p->has_gateway4 = true;
	}
	if ((m = get(v, path, "gateway6", kp))) {
		if ((ret = want_addr(m, kp, EG_AF_INET6, &p->gateway6, err)))
			return ret;
		if (!p->has_ipv6)
			return fail(err, kp, "a gateway6 needs the port's \"ipv6\"");
		if ((ret = check_gateway(&p->ipv6, &p->gateway6, kp, err)))
			return ret;
		p->has_gateway6 = true;
	}
	if ((m = get(v, path, "mac", kp))) {
		if ((ret = want_mac(m, kp, p->mac, err)))
			return ret;
		p->has_mac = true;
	}
	if ((m = get(v, path, "vlan", kp))) {
		if ((ret = want_uint(m, kp, 0, 4094, &x, err)))
			return ret;
		p->vlan = (uint16_t)x;
	}
	if ((m = get(v, path, "mtu", kp))) {
		if ((ret = want_uint(m, kp, 68, 9216, &x, err)))
			return ret;
		if (p->has_ipv6 && x < IPV6_MIN_MTU)
			return fail(err, kp, "%u is below IPv6's minimum MTU of %d", x,
				    IPV6_MIN_MTU);
		p->mtu = (uint16_t)x;
	}
	if ((m = get(v, path, "neighbours", kp))) {
		if ((ret = want_array(m, kp, err)))
			return ret;
		if (json_array_size(m) > EG_MAX_STATIC_NEIGH)
			return fail(err, kp, "too many neighbours (%zu, at most %d)",
				    json_array_size(m), EG_MAX_STATIC_NEIGH);
		json_array_foreach(m, i, e) {
			idx_path(ep, kp, i);
			if ((ret = parse_neigh(e, ep, p, &p->neigh[i], err)))
				return ret;
			for (size_t j = 0; j < i; j++)
				if (memcmp(&p->neigh[j].ip, &p->neigh[i].ip, sizeof(p->neigh[i].ip)) == 0)
					return fail(err, ep, "duplicate neighbour (also [%zu])", j);
			p->n_neigh = (unsigned)i + 1;
		}
	}
	return 0;
}

static int parse_route(const json_t *v, const char *path, const struct eg_dataplane_cfg *dp,
		       struct eg_route_cfg *r, struct eg_error *err)
{
	static const char *const keys[] = {"prefix", "via", "port", NULL};
	char kp[EG_PATH_LEN];
	const struct eg_port_cfg *p;
	const json_t *m;
	int ret, pi;

	if ((ret = want_object(v, path, err)) || (ret = check_keys(v, path, keys, err)))
		return ret;
	if (!(m = get(v, path, "prefix", kp)))
		return missing(err, kp);
	if ((ret = want_prefix(m, kp, &r->prefix, err)))
		return ret;
	if (!(m = get(v, path, "via", kp)))
		return missing(err, kp);
	if ((ret = want_addr(m, kp, r->prefix.family, &r->via, err)))
		return ret;
	if (!(m = get(v, path, "port", kp)))
		return missing(err, kp);
	if ((ret = want_name(m, kp, r->port, err)))
		return ret;
	/* Ports are parsed before routes whatever the key order, so this can be checked here. */
	if ((pi = eg_config_port_index(dp, r->port)) < 0)
		return fail(err, kp, "unknown port %s", Q(r->port));
	p = &dp->ports[pi];
	if (p->role != EG_ROLE_SITE)
		return fail(err, kp, "port %s is an uplink; routes lead toward the site side",
			    Q(r->port));
	if (r->prefix.family == EG_AF_INET ? !p->has_ipv4 : !p->has_ipv6)
		return fail(err, kp, "port %s has no %s address", Q(r->port),
			    family_name(r->prefix.family));
	return 0;
}

static int parse_eal(const json_t *v, const char *path, struct eg_dataplane_cfg *dp,
		     struct eg_error *err)
{
	char ep[EG_PATH_LEN];
	const json_t *e;
	const char *s;
	size_t i;
	int ret;

	if ((ret = want_array(v, path, err)))
		return ret;
	if (json_array_size(v) > EG_MAX_EAL_ARGS)
		return fail(err, path, "too many EAL arguments (%zu, at most %d)",
			    json_array_size(v), EG_MAX_EAL_ARGS);
	json_array_foreach(v, i, e) {
		idx_path(ep, path, i);
		if ((ret = want_string(e, ep, &s, err)))
			return ret;
		if (!(dp->eal[i] = strdup(s)))
			return fail_nomem(err, ep);
		dp->n_eal = (unsigned)i + 1;
	}
	return 0;
}

static int parse_nat(const json_t *v, const char *path, struct eg_nat_cfg *n, struct eg_error *err)
{
	static const char *const keys[] = {"sessions", "hosts", "ports_per_block", "blocks_per_host", "log_blocks",
		"timeouts", NULL};
	static const char *const tkeys[] = {"tcp_established", "tcp_transitory", "udp", "icmp", NULL};
	unsigned *const tval[] = {&n->tcp_established_s, &n->tcp_transitory_s, &n->udp_s, &n->icmp_s};
	char kp[EG_PATH_LEN], tp[EG_PATH_LEN];
	const json_t *m, *t;
	int ret;

	if ((ret = want_object(v, path, err)) || (ret = check_keys(v, path, keys, err)))
		return ret;
	if ((m = get(v, path, "sessions", kp)) && (ret = want_uint(m, kp, 1024, 16777216, &n->sessions, err)))
		return ret;
	if ((m = get(v, path, "hosts", kp)) && (ret = want_uint(m, kp, 16, 4194304, &n->hosts, err)))
		return ret;
	if ((m = get(v, path, "ports_per_block", kp))) {
		if ((ret = want_uint(m, kp, 64, 4096, &n->ports_per_block, err)))
			return ret;
		if (n->ports_per_block % 64)
			return fail(err, kp, "%u is not a multiple of 64", n->ports_per_block);
	}
	if ((m = get(v, path, "blocks_per_host", kp)) && (ret = want_uint(m, kp, 1, 32, &n->blocks_per_host, err)))
		return ret;
	if ((m = get(v, path, "log_blocks", kp)) && (ret = want_bool(m, kp, &n->log_blocks, err)))
		return ret;
	if ((t = get(v, path, "timeouts", kp))) {
		if ((ret = want_object(t, kp, err)) || (ret = check_keys(t, kp, tkeys, err)))
			return ret;
		for (unsigned i = 0; tkeys[i]; i++)
			if ((m = get(t, kp, tkeys[i], tp)) && (ret = want_uint(m, tp, 1, 86400, tval[i], err)))
				return ret;
	}
	return 0;
}

static int parse_dataplane(const json_t *v, const char *path, struct eg_dataplane_cfg *dp,
			   struct eg_error *err)
{
	static const char *const keys[] = {"eal", "workers", "idle_backoff", "idle_sleep_max_us",
		"stamp_reflector", "table_mb", "neigh_timeout_s", "flow_cache_flows", "ports", "routes", "nat", NULL};
	char kp[EG_PATH_LEN], ep[EG_PATH_LEN], np[EG_PATH_LEN];
	const json_t *m, *e;
	size_t i;
	int ret;

	dp->workers = 1;
	dp->idle_backoff = true;
	dp->idle_sleep_max_us = 200;
	dp->stamp_reflector = true;
	dp->table_mb = 64;
	dp->neigh_timeout_s = 60;
	dp->flow_cache_flows = 1048576;
	dp->nat = (struct eg_nat_cfg){
		.sessions = 1048576, .hosts = 65536, .ports_per_block = 256, .blocks_per_host = 8,
		.tcp_established_s = 7440, .tcp_transitory_s = 240, .udp_s = 300, .icmp_s = 60,
	};

	if ((ret = want_object(v, path, err)) || (ret = check_keys(v, path, keys, err)))
		return ret;
	if ((m = get(v, path, "eal", kp)) && (ret = parse_eal(m, kp, dp, err)))
		return ret;
	if ((m = get(v, path, "workers", kp)) &&
	    (ret = want_uint(m, kp, 1, EG_MAX_WORKERS, &dp->workers, err)))
		return ret;
	if ((m = get(v, path, "idle_backoff", kp)) &&
	    (ret = want_bool(m, kp, &dp->idle_backoff, err)))
		return ret;
	if ((m = get(v, path, "idle_sleep_max_us", kp)) &&
	    (ret = want_uint(m, kp, 1, 100000, &dp->idle_sleep_max_us, err)))
		return ret;
	if ((m = get(v, path, "stamp_reflector", kp)) &&
	    (ret = want_bool(m, kp, &dp->stamp_reflector, err)))
		return ret;
	if ((m = get(v, path, "table_mb", kp)) &&
	    (ret = want_uint(m, kp, 1, 4096, &dp->table_mb, err)))
		return ret;
	if ((m = get(v, path, "neigh_timeout_s", kp)) &&
	    (ret = want_uint(m, kp, 1, 86400, &dp->neigh_timeout_s, err)))
		return ret;
	if ((m = get(v, path, "flow_cache_flows", kp)) &&
	    (ret = want_uint(m, kp, 1024, 16777216, &dp->flow_cache_flows, err)))
		return ret;
	if ((m = get(v, path, "nat", kp)) && (ret = parse_nat(m, kp, &dp->nat, err)))
		return ret;

	if (!(m = get(v, path, "ports", kp)))
		return missing(err, kp);
	if ((ret = want_array(m, kp, err)))
		return ret;
	if (json_array_size(m) < 1 || json_array_size(m) > EG_MAX_PORTS)
		return fail(err, kp, "needs 1..%d ports, not %zu", EG_MAX_PORTS,
			    json_array_size(m));
	json_array_foreach(m, i, e) {
		idx_path(ep, kp, i);
		if ((ret = parse_port(e, ep, &dp->ports[i], err)))
			return ret;
		for (size_t j = 0; j < i; j++)
			if (strcmp(dp->ports[j].name, dp->ports[i].name) == 0) {
				key_path(np, ep, "name");
				return fail(err, np, "duplicate port name %s (also %s[%zu])",
					    Q(dp->ports[i].name), kp, j);
			}
		dp->n_ports = (unsigned)i + 1;
	}

	if ((m = get(v, path, "routes", kp))) {
		if ((ret = want_array(m, kp, err)))
			return ret;
		if (json_array_size(m) > EG_MAX_ROUTES)
			return fail(err, kp, "too many routes (%zu, at most %d)",
				    json_array_size(m), EG_MAX_ROUTES);
		json_array_foreach(m, i, e) {
			idx_path(ep, kp, i);
			if ((ret = parse_route(e, ep, dp, &dp->routes[i], err)))
				return ret;
			for (size_t j = 0; j < i; j++)
				if (memcmp(&dp->routes[j].prefix, &dp->routes[i].prefix,
					   sizeof(dp->routes[i].prefix)) == 0) {
					key_path(np, ep, "prefix");
					return fail(err, np, "duplicate route (also %s[%zu])", kp, j);
				}
			dp->n_routes = (unsigned)i + 1;
		}
	}
	return 0;
}

/* ---- control ---- */

static int want_group(const json_t *v, const char *path, char out[EG_NAME_LEN],
		      struct eg_error *err)
{
	const char *s, *c;
	int ret = want_string(v, path, &s, err);

	if (ret)
		return ret;
	for (c = s; *c; c++)
		if (!isalnum((unsigned char)*c) && *c != '_' && *c != '.' && *c != '-')
			break;
	if (*c || !*s || *s == '-' || strlen(s) >= EG_NAME_LEN)
		return fail(err, path, "invalid group name %s: use 1-%d of A-Z a-z 0-9 _ . -",
			    Q(s), EG_NAME_LEN - 1);
	memcpy(out, s, strlen(s) + 1);
	return 0;
}

/* "host:port" with a host name or IPv4 address, or "[v6]:port". */
static bool valid_listen(const char *s)
{
	char host[EG_ADDR_STR_LEN + 2];
	const char *c;
	struct eg_addr a;
	unsigned port = 0;

	if (eg_hostport_split(s, host, sizeof(host), &c))
		return false;
	if (s[0] == '[') {
		if (eg_addr_parse(host, &a) || a.family != EG_AF_INET6)
			return false;
	} else {
		if (!host[0] || strchr(host, ':'))
			return false;
		for (const char *h = host; *h; h++)
			if (!isalnum((unsigned char)*h) && *h != '.' && *h != '-')
				return false;
	}
	if (!*c || strlen(c) > 5)
		return false;
	for (; *c; c++) {
		if (!isdigit((unsigned char)*c))
			return false;
		port = port * 10 + (unsigned)(*c - '0');
	}
	return port >= 1 && port <= 65535;
}

static int parse_control(const json_t *v, const char *path, const char *instance,
			 struct eg_control_cfg *c, struct eg_error *err)
{
	static const char *const keys[] = {"socket", "socket_group", "metrics", "state_file",
		"publish_timeout_ms", "selection", NULL};
	static const char *const sel_keys[] = {"hold_down_ms", "latency_margin_ms", "latency_margin_pct",
		"loss_margin_pct", NULL};
	const json_t *sel;
	char kp[EG_PATH_LEN];
	const json_t *m;
	int ret;

	/* instance is at most 31 characters, so the default fits. */
	snprintf(c->socket, sizeof(c->socket), "/run/egress/egress.sock");
	snprintf(c->state_file, sizeof(c->state_file), "/var/lib/egress/%s.state.json", instance);
	c->publish_timeout_ms = 1000;
	c->hold_down_ms = 10000;
	c->latency_margin_ms = 5;
	c->latency_margin_pct = 10;
	c->loss_margin_pct = 1;
	if (!v)
		return 0;

	if ((ret = want_object(v, path, err)) || (ret = check_keys(v, path, keys, err)))
		return ret;
	if ((m = get(v, path, "socket", kp)) &&
	    (ret = want_text(m, kp, c->socket, sizeof(c->socket), err)))
		return ret;
	if ((m = get(v, path, "socket_group", kp)) &&
	    (ret = want_group(m, kp, c->socket_group, err)))
		return ret;
	if ((m = get(v, path, "metrics", kp))) {
		if ((ret = want_text(m, kp, c->metrics, sizeof(c->metrics), err)))
			return ret;
		if (!valid_listen(c->metrics))
			return fail(err, kp, "invalid listen address %s: expected host:port or "
				    "[v6]:port, like 127.0.0.1:9469", Q(c->metrics));
	}
	if ((m = get(v, path, "state_file", kp)) &&
	    (ret = want_text(m, kp, c->state_file, sizeof(c->state_file), err)))
		return ret;
	if ((m = get(v, path, "publish_timeout_ms", kp)) &&
	    (ret = want_uint(m, kp, 10, 60000, &c->publish_timeout_ms, err)))
		return ret;
	if ((sel = get(v, path, "selection", kp))) {
		char sp[EG_PATH_LEN];

		snprintf(sp, sizeof(sp), "%s", kp);
		if ((ret = want_object(sel, sp, err)) || (ret = check_keys(sel, sp, sel_keys, err)))
			return ret;
		if ((m = get(sel, sp, "hold_down_ms", kp)) &&
		    (ret = want_uint(m, kp, 0, 3600000, &c->hold_down_ms, err)))
			return ret;
		if ((m = get(sel, sp, "latency_margin_ms", kp)) &&
		    (ret = want_number(m, kp, 0, false, 10000, &c->latency_margin_ms, err)))
			return ret;
		if ((m = get(sel, sp, "latency_margin_pct", kp)) &&
		    (ret = want_number(m, kp, 0, false, 100, &c->latency_margin_pct, err)))
			return ret;
		if ((m = get(sel, sp, "loss_margin_pct", kp)) &&
		    (ret = want_number(m, kp, 0, false, 100, &c->loss_margin_pct, err)))
			return ret;
	}
	return 0;
}

/* ---- egresses ---- */

static const char *const egress_type_names[] = {
	[EG_EGRESS_DIRECT] = "direct",
	[EG_EGRESS_WIREGUARD] = "wireguard",
	[EG_EGRESS_IPSEC] = "ipsec",
};

/* Keys that belong to one type only, NULL-terminated per type. */
static const char *const egress_type_keys[][4] = {
	[EG_EGRESS_DIRECT] = {"port", "next_hop", "snat", NULL},
	[EG_EGRESS_WIREGUARD] = {"peer", NULL, NULL, NULL},
	[EG_EGRESS_IPSEC] = {"sa_out", "sa_in", NULL, NULL},
};

const char *eg_egress_type_name(enum eg_egress_type t)
{
	return (unsigned)t < ARRAY_SIZE(egress_type_names) ? egress_type_names[t] : "?";
}

static int parse_probe(const json_t *v, const char *path, struct eg_probe_cfg *p,
		       struct eg_error *err)
{
	static const char *const keys[] = {"target", "interval_ms", "method", "port", "source", "window",
		"down_after", "timeout_ms", NULL};
	char kp[EG_PATH_LEN];
	const json_t *m;
	const char *s;
	unsigned port = EG_STAMP_DEFAULT_PORT;
	int ret;

	p->window = 100;
	p->down_after = 3;
	if ((ret = want_object(v, path, err)) || (ret = check_keys(v, path, keys, err)))
		return ret;
	if (!(m = get(v, path, "target", kp)))
		return missing(err, kp);
	if ((ret = want_addr(m, kp, EG_AF_ANY, &p->target, err)))
		return ret;
	if ((m = get(v, path, "interval_ms", kp)) &&
	    (ret = want_uint(m, kp, 10, 60000, &p->interval_ms, err)))
		return ret;
	if ((m = get(v, path, "method", kp))) {
		if ((ret = want_string(m, kp, &s, err)))
			return ret;
		if (strcmp(s, "icmp") == 0)
			p->method = EG_PROBE_ICMP;
		else if (strcmp(s, "stamp") == 0)
			p->method = EG_PROBE_STAMP;
		else
			return fail(err, kp, "unknown probe method %s: use icmp or stamp", Q(s));
	}
	if ((m = get(v, path, "port", kp)) && (ret = want_uint(m, kp, 1, 65535, &port, err)))
		return ret;
	p->port = (uint16_t)port;
	if ((m = get(v, path, "source", kp))) {
		if ((ret = want_addr(m, kp, p->target.family, &p->source, err)))
			return ret;
		p->has_source = true;
	}
	if ((m = get(v, path, "window", kp)) && (ret = want_uint(m, kp, 1, 10000, &p->window, err)))
		return ret;
	if ((m = get(v, path, "down_after", kp)) && (ret = want_uint(m, kp, 1, 100, &p->down_after, err)))
		return ret;
	p->timeout_ms = p->interval_ms * 3 > 1000 ? p->interval_ms * 3 : 1000;
	if ((m = get(v, path, "timeout_ms", kp)) && (ret = want_uint(m, kp, 10, 60000, &p->timeout_ms, err)))
		return ret;
	p->enabled = true;
	return 0;
}

/* {"pool": [addresses or prefixes]}: the IPv4 addresses a direct egress's flows leave from. */
static int parse_snat(const json_t *v, const char *path, struct eg_egress_cfg *e, struct eg_error *err)
{
	static const char *const keys[] = {"pool", NULL};
	char kp[EG_PATH_LEN], ep[EG_PATH_LEN];
	const json_t *m, *a;
	size_t i;
	int ret;

	if ((ret = want_object(v, path, err)) || (ret = check_keys(v, path, keys, err)))
		return ret;
	if (!(m = get(v, path, "pool", kp)))
		return missing(err, kp);
	if ((ret = want_array(m, kp, err)))
		return ret;
	if (json_array_size(m) == 0)
		return fail(err, kp, "an empty pool: give 1..%d IPv4 addresses, or leave snat out",
			    EG_SNAT_POOL_MAX);
	json_array_foreach(m, i, a) {
		struct eg_prefix pf;
		const char *s;

		idx_path(ep, kp, i);
		if ((ret = want_string(a, ep, &s, err)))
			return ret;
		if (strchr(s, '/')) {
			if ((ret = want_prefix(a, ep, &pf, err)))
				return ret;
		} else {
			struct eg_addr ad;

			if ((ret = want_addr(a, ep, EG_AF_ANY, &ad, err)))
				return ret;
			pf.family = ad.family;
			pf.len = ad.family == EG_AF_INET ? 32 : 128;
			memcpy(pf.addr, ad.addr, sizeof(pf.addr));
		}
		if (pf.family != EG_AF_INET)
			return fail(err, ep, "%s is not IPv4: source NAT pools are IPv4", Q(s));
		if (pf.len < 26)
			return fail(err, ep, "prefix %s is larger than /26: list the addresses to use", Q(s));
		uint32_t base;

		memcpy(&base, pf.addr, 4);
		base = ntohl(base);
		for (uint64_t k = 0; k < (1ull << (32 - pf.len)); k++) {
			uint32_t host = base + (uint32_t)k, net = htonl(host);

			if (e->n_snat == EG_SNAT_POOL_MAX)
				return fail(err, ep, "the pool has more than %d addresses", EG_SNAT_POOL_MAX);
			for (unsigned j = 0; j < e->n_snat; j++)
				if (e->snat[j] == net)
					return fail(err, ep, "%s repeats an address of the pool", Q(s));
			if (host == 0 || (host >> 24) == 127 || (host >> 28) >= 14)
				return fail(err, ep, "%s is not a unicast address", Q(s));
			e->snat[e->n_snat++] = net;
		}
	}
	return 0;
}

static int parse_egress(const json_t *v, const char *path, struct eg_egress_cfg *e,
			struct eg_error *err)
{
	static const char *const keys[] = {"name", "type", "weight", "probe", "port",
		"next_hop", "snat", "peer", "sa_out", "sa_in", NULL};
	char kp[EG_PATH_LEN];
	const json_t *m, *mv;
	const char *s, *k;
	long long x;
	size_t t;
	int ret;

	e->weight = 1;
	e->probe.interval_ms = 1000;
	if ((ret = want_object(v, path, err)) || (ret = check_keys(v, path, keys, err)))
		return ret;

	if (!(m = get(v, path, "name", kp)))
		return missing(err, kp);
	if ((ret = want_name(m, kp, e->name, err)))
		return ret;

	if (!(m = get(v, path, "type", kp)))
		return missing(err, kp);
	if ((ret = want_string(m, kp, &s, err)))
		return ret;
	for (t = 0; t < ARRAY_SIZE(egress_type_names); t++)
		if (strcmp(s, egress_type_names[t]) == 0)
			break;
	if (t == ARRAY_SIZE(egress_type_names))
		return fail(err, kp, "unknown egress type %s: use \"direct\", \"wireguard\" "
			    "or \"ipsec\"", Q(s));
	e->type = (enum eg_egress_type)t;

	json_object_foreach((json_t *)v, k, mv) {
		for (size_t o = 0; o < ARRAY_SIZE(egress_type_keys); o++)
			if (o != t && in_list(k, egress_type_keys[o])) {
				key_path(kp, path, k);
				return fail(err, kp, "not valid for an egress of type \"%s\"",
					    egress_type_names[t]);
			}
	}

	switch (e->type) {
	case EG_EGRESS_DIRECT:
		if (!(m = get(v, path, "port", kp)))
			return missing(err, kp);
		if ((ret = want_name(m, kp, e->port, err)))
			return ret;
		if ((m = get(v, path, "next_hop", kp))) {
			if ((ret = want_addr(m, kp, EG_AF_ANY, &e->next_hop, err)))
				return ret;
			e->has_next_hop = true;
		}
		if ((m = get(v, path, "snat", kp)) && (ret = parse_snat(m, kp, e, err)))
			return ret;
		break;
	case EG_EGRESS_WIREGUARD:
		if (!(m = get(v, path, "peer", kp)))
			return missing(err, kp);
		if ((ret = want_name(m, kp, e->peer, err)))
			return ret;
		break;
	case EG_EGRESS_IPSEC:
		/* SPI 0 never appears on the wire (RFC 4303 section 2.1). */
		if (!(m = get(v, path, "sa_out", kp)))
			return missing(err, kp);
		if ((ret = want_int(m, kp, 1, UINT32_MAX, &x, err)))
			return ret;
		e->sa_out = (uint32_t)x;
		if (!(m = get(v, path, "sa_in", kp)))
			return missing(err, kp);
		if ((ret = want_int(m, kp, 1, UINT32_MAX, &x, err)))
			return ret;
		e->sa_in = (uint32_t)x;
		break;
	}

	if ((m = get(v, path, "weight", kp)) &&
	    (ret = want_number(m, kp, 0, true, INFINITY, &e->weight, err)))
		return ret;
	if ((m = get(v, path, "probe", kp)) && (ret = parse_probe(m, kp, &e->probe, err)))
		return ret;
	return 0;
}

int eg_config_parse_egress(const json_t *obj, const char *path, struct eg_egress_cfg *out,
			   struct eg_error *err)
{
	int ret;

	clear_err(err);
	memset(out, 0, sizeof(*out));
	ret = parse_egress(obj, path ? path : "$", out, err);
	if (ret)
		memset(out, 0, sizeof(*out));
	return ret;
}

/* ---- policies ---- */

static const char *const strategy_names[] = {
	[EG_STRATEGY_PRIORITY] = "priority",
	[EG_STRATEGY_LOWEST_LATENCY] = "lowest-latency",
	[EG_STRATEGY_LOWEST_LOSS] = "lowest-loss",
	[EG_STRATEGY_WEIGHTED] = "weighted",
	[EG_STRATEGY_PINNED] = "pinned",
};

const char *eg_strategy_name(enum eg_strategy s)
{
	return (unsigned)s < ARRAY_SIZE(strategy_names) ? strategy_names[s] : "?";
}

/* A prefix string or a non-empty array of them. An empty list is refused rather than read
 * as "any": in a drop policy that reading would drop everything. */
static int parse_prefix_list(const json_t *v, const char *path, struct eg_prefix **out,
			     unsigned *n, struct eg_error *err)
{
	char ep[EG_PATH_LEN];
	const json_t *e;
	size_t i, cnt;
	int ret;

	if (json_is_string(v)) {
		if (!(*out = calloc(1, sizeof(**out))))
			return fail_nomem(err, path);
		if ((ret = want_prefix(v, path, *out, err)))
			return ret;
		*n = 1;
		return 0;
	}
	if (!json_is_array(v))
		return fail(err, path, "expected a prefix string or an array of them");
	cnt = json_array_size(v);
	if (cnt == 0)
		return fail(err, path, "empty list; leave the key out to match any address");
	if (cnt > EG_MAX_MATCH_PREFIXES)
		return fail(err, path, "too many prefixes (%zu, at most %d)", cnt,
			    EG_MAX_MATCH_PREFIXES);
	if (!(*out = calloc(cnt, sizeof(**out))))
		return fail_nomem(err, path);
	json_array_foreach(v, i, e) {
		idx_path(ep, path, i);
		if ((ret = want_prefix(e, ep, &(*out)[i], err)))
			return ret;
	}
	*n = (unsigned)cnt;
	return 0;
}

/* EG_AF_INET or EG_AF_INET6 when every prefix is of that family, else EG_AF_ANY. */
static uint8_t list_family(const struct eg_prefix *p, unsigned n)
{
	uint8_t f = n ? p[0].family : EG_AF_ANY;

	for (unsigned i = 1; i < n; i++)
		if (p[i].family != f)
			return EG_AF_ANY;
	return f;
}

static int want_dscp(const json_t *v, const char *path, uint64_t *mask, struct eg_error *err)
{
	char ep[EG_PATH_LEN];
	const json_t *e;
	unsigned d;
	size_t i;
	int ret;

	*mask = 0;
	if (json_is_integer(v)) {
		if ((ret = want_uint(v, path, 0, 63, &d, err)))
			return ret;
		*mask = 1ULL << d;
		return 0;
	}
	if (!json_is_array(v))
		return fail(err, path, "expected an integer 0..63 or an array of them");
	if (json_array_size(v) == 0)
		return fail(err, path, "empty list; leave the key out to match any DSCP");
	json_array_foreach(v, i, e) {
		idx_path(ep, path, i);
		if ((ret = want_uint(e, ep, 0, 63, &d, err)))
			return ret;
		*mask |= 1ULL << d;
	}
	return 0;
}

static bool proto_has_ports(uint8_t proto)
{
	return proto == 6 || proto == 17 || proto == 132;	/* tcp, udp, sctp */
}

static int parse_match(const json_t *v, const char *path, struct eg_match_cfg *mc,
		       struct eg_error *err)
{
	static const char *const keys[] = {"src", "dst", "proto", "sport", "dport", "dscp",
		"port", NULL};
	static const char *const port_keys[] = {"sport", "dport"};
	char kp[EG_PATH_LEN], pn[16];
	const json_t *m;
	const char *s;
	long long x;
	uint8_t fs, fd;
	int ret, proto;

	if ((ret = want_object(v, path, err)) || (ret = check_keys(v, path, keys, err)))
		return ret;
	if ((m = get(v, path, "src", kp)) &&
	    (ret = parse_prefix_list(m, kp, &mc->src, &mc->n_src, err)))
		return ret;
	if ((m = get(v, path, "dst", kp)) &&
	    (ret = parse_prefix_list(m, kp, &mc->dst, &mc->n_dst, err)))
		return ret;

	if ((m = get(v, path, "proto", kp))) {
		if (json_is_integer(m)) {
			if ((ret = want_int(m, kp, 0, 255, &x, err)))
				return ret;
			proto = (int)x;
		} else if (json_is_string(m)) {
			if ((ret = want_string(m, kp, &s, err)))
				return ret;
			if ((proto = eg_proto_parse(s)) < 0)
				return fail(err, kp, "unknown protocol %s: use tcp, udp, icmp, "
					    "icmpv6, sctp, gre, esp, ah or 0..255", Q(s));
		} else {
			return fail(err, kp, "expected a protocol name or number");
		}
		mc->has_proto = true;
		mc->proto = (uint8_t)proto;
	}

	if ((m = get(v, path, "sport", kp)) &&
	    (ret = want_port_range(m, kp, &mc->sport_lo, &mc->sport_hi, err)))
		return ret;
	if ((m = get(v, path, "dport", kp)) &&
	    (ret = want_port_range(m, kp, &mc->dport_lo, &mc->dport_hi, err)))
		return ret;
	for (size_t i = 0; i < ARRAY_SIZE(port_keys); i++)
		if (mc->has_proto && !proto_has_ports(mc->proto) &&
		    get(v, path, port_keys[i], kp))
			return fail(err, kp, "ports need proto tcp, udp or sctp, not %s",
				    eg_proto_name(mc->proto, pn, sizeof(pn)));

	if ((m = get(v, path, "dscp", kp)) && (ret = want_dscp(m, kp, &mc->dscp_mask, err)))
		return ret;
	if ((m = get(v, path, "port", kp)) && (ret = want_name(m, kp, mc->port, err)))
		return ret;

	fs = list_family(mc->src, mc->n_src);
	fd = list_family(mc->dst, mc->n_dst);
	if (fs != EG_AF_ANY && fd != EG_AF_ANY && fs != fd)
		return fail(err, path, "src is %s only and dst is %s only: the policy can never "
			    "match", family_name(fs), family_name(fd));
	return 0;
}

static int parse_sla(const json_t *v, const char *path, struct eg_sla_cfg *sla,
		     struct eg_error *err)
{
	static const char *const keys[] = {"max_rtt_ms", "max_loss_pct", "max_jitter_ms", NULL};
	char kp[EG_PATH_LEN];
	const json_t *m;
	int ret;

	if ((ret = want_object(v, path, err)) || (ret = check_keys(v, path, keys, err)))
		return ret;
	if ((m = get(v, path, "max_rtt_ms", kp))) {
		if ((ret = want_number(m, kp, 0, false, INFINITY, &sla->max_rtt_ms, err)))
			return ret;
		sla->has_max_rtt = true;
	}
	if ((m = get(v, path, "max_loss_pct", kp))) {
		if ((ret = want_number(m, kp, 0, false, 100, &sla->max_loss_pct, err)))
			return ret;
		sla->has_max_loss = true;
	}
	if ((m = get(v, path, "max_jitter_ms", kp))) {
		if ((ret = want_number(m, kp, 0, false, INFINITY, &sla->max_jitter_ms, err)))
			return ret;
		sla->has_max_jitter = true;
	}
	return 0;
}

static int parse_policy(const json_t *v, const char *path, struct eg_policy_cfg *p,
			struct eg_error *err)
{
	static const char *const keys[] = {"name", "priority", "match", "action", "egresses",
		"strategy", "sla", NULL};
	static const char *const forward_only[] = {"strategy", "sla"};
	char kp[EG_PATH_LEN], ep[EG_PATH_LEN];
	const json_t *m, *e;
	const char *s;
	long long x;
	size_t i, t;
	int ret;

	p->match.sport_hi = p->match.dport_hi = 65535;
	p->match.dscp_mask = EG_DSCP_ANY;
	if ((ret = want_object(v, path, err)) || (ret = check_keys(v, path, keys, err)))
		return ret;

	if (!(m = get(v, path, "name", kp)))
		return missing(err, kp);
	if ((ret = want_name(m, kp, p->name, err)))
		return ret;
	if (!(m = get(v, path, "priority", kp)))
		return missing(err, kp);
	if ((ret = want_int(m, kp, 0, PRIORITY_MAX, &x, err)))
		return ret;
	p->priority = (uint32_t)x;

	if ((m = get(v, path, "match", kp)) && (ret = parse_match(m, kp, &p->match, err)))
		return ret;

	if ((m = get(v, path, "action", kp))) {
		if ((ret = want_string(m, kp, &s, err)))
			return ret;
		if (strcmp(s, "forward") == 0)
			p->action = EG_ACTION_FORWARD;
		else if (strcmp(s, "drop") == 0)
			p->action = EG_ACTION_DROP;
		else
			return fail(err, kp, "unknown action %s: use \"forward\" or \"drop\"", Q(s));
	}

	m = get(v, path, "egresses", kp);
	if (p->action == EG_ACTION_DROP) {
		if (m && (ret = want_array(m, kp, err)))
			return ret;
		if (m && json_array_size(m))
			return fail(err, kp, "must be empty when action is \"drop\"");
		for (i = 0; i < ARRAY_SIZE(forward_only); i++)
			if (get(v, path, forward_only[i], kp))
				return fail(err, kp, "not valid when action is \"drop\"");
		return 0;
	}
	if (!m)
		return fail(err, kp, "missing required key (unless action is \"drop\")");
	if ((ret = want_array(m, kp, err)))
		return ret;
	if (json_array_size(m) < 1 || json_array_size(m) > EG_MAX_POLICY_EGRESSES)
		return fail(err, kp, "needs 1..%d egresses, not %zu", EG_MAX_POLICY_EGRESSES,
			    json_array_size(m));
	json_array_foreach(m, i, e) {
		idx_path(ep, kp, i);
		if ((ret = want_name(e, ep, p->egresses[i], err)))
			return ret;
	}
	p->n_egresses = (unsigned)json_array_size(m);

	if ((m = get(v, path, "strategy", kp))) {
		if ((ret = want_string(m, kp, &s, err)))
			return ret;
		for (t = 0; t < ARRAY_SIZE(strategy_names); t++)
			if (strcmp(s, strategy_names[t]) == 0)
				break;
		if (t == ARRAY_SIZE(strategy_names))
			return fail(err, kp, "unknown strategy %s: use priority, lowest-latency, "
				    "lowest-loss, weighted or pinned", Q(s));
		p->strategy = (enum eg_strategy)t;
	}
	if ((m = get(v, path, "sla", kp)) && (ret = parse_sla(m, kp, &p->sla, err)))
		return ret;
	return 0;
}

int eg_config_parse_policy(const json_t *obj, const char *path, struct eg_policy_cfg *out,
			   struct eg_error *err)
{
	int ret;

	clear_err(err);
	memset(out, 0, sizeof(*out));
	ret = parse_policy(obj, path ? path : "$", out, err);
	if (ret)
		eg_policy_cfg_free(out);
	return ret;
}

void eg_policy_cfg_free(struct eg_policy_cfg *p)
{
	if (!p)
		return;
	free(p->match.src);
	free(p->match.dst);
	memset(p, 0, sizeof(*p));
}

static int copy_prefixes(struct eg_prefix **dst, const struct eg_prefix *src, unsigned n)
{
	*dst = NULL;
	if (!n)
		return 0;
	if (!(*dst = malloc(n * sizeof(*src))))
		return -ENOMEM;
	memcpy(*dst, src, n * sizeof(*src));
	return 0;
}

int eg_policy_cfg_copy(struct eg_policy_cfg *dst, const struct eg_policy_cfg *src)
{
	*dst = *src;
	if (copy_prefixes(&dst->match.src, src->match.src, src->match.n_src) ||
	    copy_prefixes(&dst->match.dst, src->match.dst, src->match.n_dst)) {
		/* The pointer not reached yet still aliases src: drop it before freeing. */
		if (dst->match.src == src->match.src)
			dst->match.src = NULL;
		if (dst->match.dst == src->match.dst)
			dst->match.dst = NULL;
		eg_policy_cfg_free(dst);
		return -ENOMEM;
	}
	return 0;
}

/* ---- references ---- */

struct name_ix {
	const char *name;
	unsigned idx;
};

static int cmp_name_ix(const void *a, const void *b)
{
	const struct name_ix *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

/* Names of n records (each stride bytes apart, starting at first) sorted, so that
 * duplicate checks and lookups stay O(n log n) at 65536 policies. NULL when out of memory;
 * n == 0 gives a NULL that is never read. */
static struct name_ix *sort_names(const char *first, size_t stride, unsigned n)
{
	struct name_ix *s;

	if (!n)
		return NULL;
	if (!(s = malloc(n * sizeof(*s))))
		return NULL;
	for (unsigned i = 0; i < n; i++)
		s[i] = (struct name_ix){first + i * stride, i};
	qsort(s, n, sizeof(*s), cmp_name_ix);
	return s;
}

/* The duplicate that comes first in document order, or -1; *orig is its first use. */
static long first_duplicate(const struct name_ix *s, unsigned n, unsigned *orig)
{
	long dup = -1;
	unsigned start = 0;

	for (unsigned i = 1; i < n; i++) {
		if (strcmp(s[i].name, s[start].name) != 0) {
			start = i;
			continue;
		}
		if (dup < 0 || s[i].idx < (unsigned long)dup) {
			dup = s[i].idx;
			*orig = s[start].idx;
		}
	}
	return dup;
}

static bool name_known(const struct name_ix *s, unsigned n, const char *name)
{
	unsigned lo = 0, hi = n;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		int c = strcmp(name, s[mid].name);

		if (c == 0)
			return true;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return false;
}

int eg_config_port_index(const struct eg_dataplane_cfg *dp, const char *name)
{
	for (unsigned i = 0; i < dp->n_ports; i++)
		if (strcmp(dp->ports[i].name, name) == 0)
			return (int)i;
	return -1;
}

static int check_egress_refs(const struct eg_dataplane_cfg *dp, const struct eg_egress_cfg *e,
			     const char *path, struct eg_error *err)
{
	char kp[EG_PATH_LEN];
	const struct eg_port_cfg *p;
	int pi;

	if (e->type != EG_EGRESS_DIRECT)
		return 0;
	key_path(kp, path, "port");
	if ((pi = eg_config_port_index(dp, e->port)) < 0)
		return fail(err, kp, "unknown port %s", Q(e->port));
	p = &dp->ports[pi];
	if (p->role != EG_ROLE_UPLINK)
		return fail(err, kp, "port %s is a site port, not an uplink", Q(e->port));
	if (e->has_next_hop &&
	    (e->next_hop.family == EG_AF_INET ? !p->has_ipv4 : !p->has_ipv6)) {
		key_path(kp, path, "next_hop");
		return fail(err, kp, "next hop is %s but port %s has no %s address",
			    family_name(e->next_hop.family), Q(e->port),
			    family_name(e->next_hop.family));
	}
	if (e->n_snat && !p->has_ipv4) {
		key_path(kp, path, "snat");
		return fail(err, kp, "port %s has no IPv4 address to send translated flows from", Q(e->port));
	}
	for (unsigned i = 0; i < e->n_snat; i++)
		for (unsigned q = 0; q < dp->n_ports; q++)
			if (dp->ports[q].has_ipv4 && memcmp(dp->ports[q].ipv4.addr, &e->snat[i], 4) == 0) {
				char ap[EG_PATH_LEN], a[EG_ADDR_STR_LEN];

				key_path(kp, path, "snat");
				key_path(ap, kp, "pool");
				return fail(err, ap, "%s is port %s's own address: pool addresses are the NAT's alone",
					    eg_addr_format(EG_AF_INET, dp->ports[q].ipv4.addr, a, sizeof(a)),
					    Q(dp->ports[q].name));
			}
	return 0;
}

/* No address in two pools: a returning packet must name one mapping. */
static int check_pool_unique(const struct eg_egress_cfg *egs, unsigned i, const char *path, struct eg_error *err)
{
	char kp[EG_PATH_LEN], ap[EG_PATH_LEN];

	for (unsigned j = 0; j < i; j++)
		for (unsigned a = 0; a < egs[i].n_snat; a++)
			for (unsigned b = 0; b < egs[j].n_snat; b++)
				if (egs[i].snat[a] == egs[j].snat[b]) {
					char s[EG_ADDR_STR_LEN];

					key_path(kp, path, "snat");
					key_path(ap, kp, "pool");
					return fail(err, ap, "%s is in egress %s's pool too",
						    eg_addr_format(EG_AF_INET, (const uint8_t *)&egs[i].snat[a], s, sizeof(s)),
						    Q(egs[j].name));
				}
	return 0;
}

static int check_policy_refs(const struct eg_dataplane_cfg *dp, const struct eg_policy_cfg *p,
			     const struct name_ix *egs, unsigned n_egs, const char *path,
			     struct eg_error *err)
{
	char kp[EG_PATH_LEN], ep[EG_PATH_LEN];

	key_path(kp, path, "egresses");
	for (unsigned j = 0; j < p->n_egresses; j++) {
		idx_path(ep, kp, j);
		for (unsigned k = 0; k < j; k++)
			if (strcmp(p->egresses[k], p->egresses[j]) == 0)
				return fail(err, ep, "egress %s listed twice (also [%u])",
					    Q(p->egresses[j]), k);
		if (!name_known(egs, n_egs, p->egresses[j]))
			return fail(err, ep, "unknown egress %s", Q(p->egresses[j]));
	}
	if (p->match.port[0] && eg_config_port_index(dp, p->match.port) < 0) {
		key_path(ep, path, "match");
		key_path(kp, ep, "port");
		return fail(err, kp, "unknown port %s", Q(p->match.port));
	}
	return 0;
}

int eg_config_check_refs(const struct eg_dataplane_cfg *dp,
			 const struct eg_egress_cfg *egresses, unsigned n_egresses,
			 const char *egress_path,
			 const struct eg_policy_cfg *policies, unsigned n_policies,
			 const char *policy_path, struct eg_error *err)
{
	struct name_ix *egs = NULL, *pols = NULL;
	char ip[EG_PATH_LEN], kp[EG_PATH_LEN];
	unsigned orig = 0;
	long dup;
	int ret = 0;

	clear_err(err);
	if (!egress_path)
		egress_path = "$.egresses";
	if (!policy_path)
		policy_path = "$.policies";
	egs = sort_names(egresses ? egresses[0].name : NULL, sizeof(*egresses), n_egresses);
	pols = sort_names(policies ? policies[0].name : NULL, sizeof(*policies), n_policies);
	if ((n_egresses && !egs) || (n_policies && !pols)) {
		ret = fail_nomem(err, "$");
		goto out;
	}

	if ((dup = first_duplicate(egs, n_egresses, &orig)) >= 0) {
		idx_path(ip, egress_path, (size_t)dup);
		key_path(kp, ip, "name");
		ret = fail(err, kp, "duplicate egress name %s (also %s[%u])",
			   Q(egresses[dup].name), egress_path, orig);
		goto out;
	}
	for (unsigned i = 0; i < n_egresses; i++) {
		idx_path(ip, egress_path, i);
		if ((ret = check_egress_refs(dp, &egresses[i], ip, err)))
			goto out;
		if ((ret = check_pool_unique(egresses, i, ip, err)))
			goto out;
	}

	if ((dup = first_duplicate(pols, n_policies, &orig)) >= 0) {
		idx_path(ip, policy_path, (size_t)dup);
		key_path(kp, ip, "name");
		ret = fail(err, kp, "duplicate policy name %s (also %s[%u])",
			   Q(policies[dup].name), policy_path, orig);
		goto out;
	}
	for (unsigned i = 0; i < n_policies; i++) {
		idx_path(ip, policy_path, i);
		if ((ret = check_policy_refs(dp, &policies[i], egs, n_egresses, ip, err)))
			goto out;
	}
out:
	free(egs);
	free(pols);
	return ret;
}

/* ---- the whole document ---- */

/* The array at member key of doc (NULL and 0 when absent), checked against max. */
static int top_list(const json_t *doc, const char *key, unsigned max, const json_t **arr,
		    char kp[EG_PATH_LEN], struct eg_error *err)
{
	int ret;

	if (!(*arr = get(doc, "$", key, kp)))
		return 0;
	if ((ret = want_array(*arr, kp, err)))
		return ret;
	if (json_array_size(*arr) > max)
		return fail(err, kp, "too many %s (%zu, at most %u)", key, json_array_size(*arr),
			    max);
	return 0;
}

static int keep_object(const json_t *doc, const char *key, json_t **out,
		       struct eg_error *err)
{
	char kp[EG_PATH_LEN];
	const json_t *m;
	int ret;

	if (!(m = get(doc, "$", key, kp)))
		return 0;
	if ((ret = want_object(m, kp, err)))
		return ret;
	*out = json_incref((json_t *)m);
	return 0;
}

static int from_json(const json_t *doc, struct eg_config *cfg, struct eg_error *err)
{
	static const char *const keys[] = {"instance", "dataplane", "control", "wireguard",
		"ipsec", "egresses", "policies", NULL};
	char kp[EG_PATH_LEN], ep[EG_PATH_LEN];
	const json_t *m, *e;
	size_t i;
	int ret;

	if ((ret = want_object(doc, "$", err)) || (ret = check_keys(doc, "$", keys, err)))
		return ret;
	if (!(m = get(doc, "$", "instance", kp)))
		return missing(err, kp);
	if ((ret = want_name(m, kp, cfg->instance, err)))
		return ret;
	if (!(m = get(doc, "$", "dataplane", kp)))
		return missing(err, kp);
	if ((ret = parse_dataplane(m, kp, &cfg->dataplane, err)))
		return ret;
	m = get(doc, "$", "control", kp);
	if ((ret = parse_control(m, kp, cfg->instance, &cfg->control, err)))
		return ret;
	if ((ret = keep_object(doc, "wireguard", &cfg->wireguard, err)) ||
	    (ret = keep_object(doc, "ipsec", &cfg->ipsec, err)))
		return ret;
	/* Counts go up as records are parsed, so a failure frees exactly what was built. */
	if ((ret = top_list(doc, "egresses", EG_MAX_EGRESSES, &m, kp, err)))
		return ret;
	if (m && json_array_size(m)) {
		if (!(cfg->egresses = calloc(json_array_size(m), sizeof(*cfg->egresses))))
			return fail_nomem(err, kp);
		json_array_foreach(m, i, e) {
			idx_path(ep, kp, i);
			cfg->n_egresses = (unsigned)i + 1;
			if ((ret = parse_egress(e, ep, &cfg->egresses[i], err)))
				return ret;
		}
	}
	if ((ret = top_list(doc, "policies", EG_MAX_POLICIES, &m, kp, err)))
		return ret;
	if (m && json_array_size(m)) {
		if (!(cfg->policies = calloc(json_array_size(m), sizeof(*cfg->policies))))
			return fail_nomem(err, kp);
		json_array_foreach(m, i, e) {
			idx_path(ep, kp, i);
			cfg->n_policies = (unsigned)i + 1;
			if ((ret = parse_policy(e, ep, &cfg->policies[i], err)))
				return ret;
		}
	}
	if ((ret = eg_sa_cfg_parse_section(cfg->ipsec, "$.ipsec", &cfg->sas, &cfg->n_sas, err)))
		return ret;
	if ((ret = eg_wg_cfg_parse_section(cfg->wireguard, "$.wireguard", &cfg->wg, err)) ||
	    (ret = eg_wg_check_refs(&cfg->wg, cfg->egresses, cfg->n_egresses, "$.egresses", err)))
		return ret;
	if ((ret = eg_config_check_refs(&cfg->dataplane, cfg->egresses, cfg->n_egresses,
					"$.egresses", cfg->policies, cfg->n_policies, "$.policies",
					err)))
		return ret;
	return eg_sa_check_refs(&cfg->dataplane, cfg->sas, cfg->n_sas, "$.ipsec.sas", cfg->egresses,
				cfg->n_egresses, "$.egresses", err);
}

int eg_config_from_json(const json_t *doc, struct eg_config *cfg, struct eg_error *err)
{
	int ret;

	clear_err(err);
	memset(cfg, 0, sizeof(*cfg));
	ret = from_json(doc, cfg, err);
	if (ret)
		eg_config_free(cfg);
	return ret;
}

int eg_config_load(const char *file, struct eg_config *cfg, struct eg_error *err)
{
	json_error_t jerr;
	struct stat st;
	json_t *doc;
	FILE *f;
	int ret;

	clear_err(err);
	memset(cfg, 0, sizeof(*cfg));
	/* Opened here rather than by json_load_file so that the caller gets the real errno. */
	if (!(f = fopen(file, "r"))) {
		ret = -errno;
		fail(err, "$", "cannot open %s: %s", Q(file), strerror(-ret));
		return ret;
	}
	/* A directory opens fine and then reads as an empty, hence misleading, document. */
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		fclose(f);
		fail(err, "$", "cannot read %s: %s", Q(file), strerror(EISDIR));
		return -EISDIR;
	}
	/* Duplicate keys would otherwise be resolved silently, last one winning. */
	doc = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
	fclose(f);
	if (!doc)
		return fail(err, "$", "invalid JSON at line %d, column %d: %s", jerr.line,
			    jerr.column, jerr.text);
	ret = eg_config_from_json(doc, cfg, err);
	json_decref(doc);
	return ret;
}

void eg_config_free(struct eg_config *cfg)
{
	if (!cfg)
		return;
	for (unsigned i = 0; i < cfg->dataplane.n_eal; i++)
		free(cfg->dataplane.eal[i]);
	for (unsigned i = 0; i < cfg->n_policies; i++)
		eg_policy_cfg_free(&cfg->policies[i]);
	free(cfg->policies);
	free(cfg->egresses);
	json_decref(cfg->wireguard);
	json_decref(cfg->ipsec);
	eg_sa_cfg_free_all(cfg->sas, cfg->n_sas);
	eg_wg_cfg_free(&cfg->wg);
	memset(cfg, 0, sizeof(*cfg));
}

/* ---- back to JSON ---- */

/* Sets key to v (stolen), remembering any failure in *ok so callers check once. */
static void put(json_t *obj, const char *key, json_t *v, bool *ok)
{
	if (!v || json_object_set_new(obj, key, v))
		*ok = false;
}

static json_t *addr_json(const struct eg_addr *a)
{
	char buf[EG_ADDR_STR_LEN];

	return json_string(eg_addr_format(a->family, a->addr, buf, sizeof(buf)));
}

json_t *eg_config_egress_to_json(const struct eg_egress_cfg *e)
{
	json_t *o = json_object(), *probe;
	bool ok = o != NULL;

	if (!o)
		return NULL;
	put(o, "name", json_string(e->name), &ok);
	put(o, "type", json_string(eg_egress_type_name(e->type)), &ok);
	switch (e->type) {
	case EG_EGRESS_DIRECT:
		put(o, "port", json_string(e->port), &ok);
		if (e->has_next_hop)
			put(o, "next_hop", addr_json(&e->next_hop), &ok);
		if (e->n_snat) {
			json_t *snat = json_object(), *pool = json_array();

			for (unsigned i = 0; pool && i < e->n_snat; i++) {
				struct eg_addr a = {.family = EG_AF_INET};

				memcpy(a.addr, &e->snat[i], 4);
				if (json_array_append_new(pool, addr_json(&a)))
					ok = false;
			}
			if (snat && pool)
				put(snat, "pool", pool, &ok);
			else
				json_decref(pool);
			put(o, "snat", snat, &ok);
		}
		break;
	case EG_EGRESS_WIREGUARD:
		put(o, "peer", json_string(e->peer), &ok);
		break;
	case EG_EGRESS_IPSEC:
		put(o, "sa_out", json_integer(e->sa_out), &ok);
		put(o, "sa_in", json_integer(e->sa_in), &ok);
		break;
	}
	if (e->weight != 1)
		put(o, "weight", json_real(e->weight), &ok);
	if (e->probe.enabled) {
		probe = json_object();
		if (probe) {
			put(probe, "target", addr_json(&e->probe.target), &ok);
			put(probe, "interval_ms", json_integer(e->probe.interval_ms), &ok);
			put(probe, "method", json_string(e->probe.method == EG_PROBE_STAMP ? "stamp" : "icmp"), &ok);
			if (e->probe.method == EG_PROBE_STAMP)
				put(probe, "port", json_integer(e->probe.port), &ok);
			if (e->probe.has_source)
				put(probe, "source", addr_json(&e->probe.source), &ok);
			put(probe, "window", json_integer(e->probe.window), &ok);
			put(probe, "down_after", json_integer(e->probe.down_after), &ok);
			put(probe, "timeout_ms", json_integer(e->probe.timeout_ms), &ok);
		}
		put(o, "probe", probe, &ok);
	}
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *prefixes_json(const struct eg_prefix *p, unsigned n)
{
	char buf[EG_PREFIX_STR_LEN];
	json_t *a = json_array();

	for (unsigned i = 0; a && i < n; i++)
		if (json_array_append_new(a, json_string(eg_prefix_format(&p[i], buf,
									  sizeof(buf))))) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static json_t *ports_json(uint16_t lo, uint16_t hi)
{
	char buf[16];

	if (lo == hi)
		snprintf(buf, sizeof(buf), "%u", lo);
	else
		snprintf(buf, sizeof(buf), "%u-%u", lo, hi);
	return json_string(buf);
}

static json_t *match_json(const struct eg_match_cfg *m)
{
	json_t *o = json_object(), *a;
	char buf[16];
	bool ok = o != NULL;

	if (!o)
		return NULL;
	if (m->n_src)
		put(o, "src", prefixes_json(m->src, m->n_src), &ok);
	if (m->n_dst)
		put(o, "dst", prefixes_json(m->dst, m->n_dst), &ok);
	if (m->has_proto)
		put(o, "proto", json_string(eg_proto_name(m->proto, buf, sizeof(buf))), &ok);
	if (m->sport_lo != 0 || m->sport_hi != 65535)
		put(o, "sport", ports_json(m->sport_lo, m->sport_hi), &ok);
	if (m->dport_lo != 0 || m->dport_hi != 65535)
		put(o, "dport", ports_json(m->dport_lo, m->dport_hi), &ok);
	if (m->dscp_mask != EG_DSCP_ANY) {
		a = json_array();
		for (unsigned d = 0; a && d < 64; d++)
			if ((m->dscp_mask >> d & 1) && json_array_append_new(a, json_integer(d)))
				ok = false;
		put(o, "dscp", a, &ok);
	}
	if (m->port[0])
		put(o, "port", json_string(m->port), &ok);
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *eg_config_policy_to_json(const struct eg_policy_cfg *p)
{
	json_t *o = json_object(), *a, *sla;
	bool ok = o != NULL;

	if (!o)
		return NULL;
	put(o, "name", json_string(p->name), &ok);
	put(o, "priority", json_integer(p->priority), &ok);
	put(o, "match", match_json(&p->match), &ok);
	if (p->action == EG_ACTION_DROP) {
		put(o, "action", json_string("drop"), &ok);
	} else {
		a = json_array();
		for (unsigned i = 0; a && i < p->n_egresses; i++)
			if (json_array_append_new(a, json_string(p->egresses[i])))
				ok = false;
		put(o, "egresses", a, &ok);
		put(o, "strategy", json_string(eg_strategy_name(p->strategy)), &ok);
		if (p->sla.has_max_rtt || p->sla.has_max_loss || p->sla.has_max_jitter) {
			sla = json_object();
			if (sla && p->sla.has_max_rtt)
				put(sla, "max_rtt_ms", json_real(p->sla.max_rtt_ms), &ok);
			if (sla && p->sla.has_max_loss)
				put(sla, "max_loss_pct", json_real(p->sla.max_loss_pct), &ok);
			if (sla && p->sla.has_max_jitter)
				put(sla, "max_jitter_ms", json_real(p->sla.max_jitter_ms), &ok);
			put(o, "sla", sla, &ok);
		}
	}
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}
