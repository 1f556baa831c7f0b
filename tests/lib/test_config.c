/* lib/config.c: a full valid config, defaults, a numbered table of broken configs (each a
 * one-key patch of the full one, with the exact path the error must name), file errors,
 * round trips through to_json, and the deep copy. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "classifier.h"
#include "config.h"

#ifndef EG_TEST_DATA
#error "compile with -DEG_TEST_DATA=\"<abs path of tests/data>\""
#endif

#define FULL EG_TEST_DATA "/full.json"
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static json_t *load_full(void)
{
	json_error_t je;
	json_t *doc = json_load_file(FULL, JSON_REJECT_DUPLICATES, &je);

	cr_assert_not_null(doc, "%s: %s", FULL, je.text);
	return doc;
}

/* Applies one edit to doc: at is "a/b/0/c" (array indices as numbers, one past the end
 * appends), value is JSON text or NULL to delete; "" replaces the whole document. Returns
 * the (possibly new) document. */
static json_t *patch(json_t *doc, const char *at, const char *value)
{
	json_error_t je;
	json_t *v = NULL, *parent = doc;
	char buf[256], *seg, *next, *save = NULL;

	if (value) {
		v = json_loads(value, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
		cr_assert_not_null(v, "bad test value %s: %s", value, je.text);
	}
	if (!*at) {
		json_decref(doc);
		return v;
	}
	snprintf(buf, sizeof(buf), "%s", at);
	seg = strtok_r(buf, "/", &save);
	while ((next = strtok_r(NULL, "/", &save))) {
		parent = json_is_array(parent) ? json_array_get(parent, strtoul(seg, NULL, 10))
					       : json_object_get(parent, seg);
		cr_assert_not_null(parent, "bad test path %s at %s", at, seg);
		seg = next;
	}
	if (json_is_array(parent)) {
		size_t i = strtoul(seg, NULL, 10);

		if (!v)
			json_array_remove(parent, i);
		else if (i == json_array_size(parent))
			json_array_append_new(parent, v);
		else
			json_array_set_new(parent, i, v);
	} else if (!v) {
		json_object_del(parent, seg);
	} else {
		json_object_set_new(parent, seg, v);
	}
	return doc;
}

static bool is_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

Test(config, full_file)
{
	struct eg_config c;
	struct eg_error err;
	const struct eg_port_cfg *p;
	const struct eg_policy_cfg *pol;
	char buf[EG_PREFIX_STR_LEN];

	cr_assert_eq(eg_config_load(FULL, &c, &err), 0, "%s: %s", err.path, err.msg);
	cr_assert_str_eq(c.instance, "pop1");

	cr_assert_eq(c.dataplane.n_eal, 6);
	cr_assert_str_eq(c.dataplane.eal[0], "--no-huge");
	cr_assert_str_eq(c.dataplane.eal[5], "0-2");
	cr_assert_eq(c.dataplane.workers, 2);
	cr_assert_eq(c.dataplane.idle_backoff, false);
	cr_assert_eq(c.dataplane.idle_sleep_max_us, 500);
	cr_assert_eq(c.dataplane.table_mb, 128);
	cr_assert_eq(c.dataplane.neigh_timeout_s, 30);
	cr_assert_eq(c.dataplane.flow_cache_flows, 65536);

	cr_assert_eq(c.dataplane.n_ports, 3);
	p = &c.dataplane.ports[0];
	cr_assert_str_eq(p->name, "lan0");
	cr_assert_eq(p->role, EG_ROLE_SITE);
	cr_assert_str_eq(p->device, "net_af_packet0,iface=veth-lan");
	cr_assert(p->has_ipv4 && p->has_ipv6);
	cr_assert_str_eq(eg_prefix_format(&p->ipv4, buf, sizeof(buf)), "10.10.0.1/24");
	cr_assert_str_eq(eg_prefix_format(&p->ipv6, buf, sizeof(buf)), "2001:db8:10::1/64");
	cr_assert_not(p->has_gateway4 || p->has_gateway6 || p->has_mac);
	cr_assert_eq(p->vlan, 100);
	cr_assert_eq(p->mtu, 1500);
	cr_assert_eq(p->n_neigh, 2);
	cr_assert_eq(p->neigh[1].ip.family, EG_AF_INET6);
	cr_assert_eq(p->neigh[1].mac[5], 0x12);

	p = &c.dataplane.ports[1];
	cr_assert_eq(p->role, EG_ROLE_UPLINK);
	cr_assert(p->has_gateway4 && p->has_gateway6 && p->has_mac);
	cr_assert_str_eq(eg_addr_format(EG_AF_INET, p->gateway4.addr, buf, sizeof(buf)),
			 "192.0.2.254");
	cr_assert_str_eq(eg_addr_format(EG_AF_INET6, p->gateway6.addr, buf, sizeof(buf)), "fe80::1");
	cr_assert_eq(p->mac[0], 0x02);
	cr_assert_eq(p->mac[5], 0x01);
	cr_assert_eq(p->vlan, 0);
	cr_assert_eq(p->mtu, 0);
	cr_assert_eq(eg_config_port_index(&c.dataplane, "wan1"), 2);
	cr_assert_eq(eg_config_port_index(&c.dataplane, "wan9"), -1);

	cr_assert_eq(c.dataplane.n_routes, 2);
	cr_assert_str_eq(eg_prefix_format(&c.dataplane.routes[1].prefix, buf, sizeof(buf)),
			 "2001:db8:99::/48");
	cr_assert_str_eq(c.dataplane.routes[1].port, "lan0");

	cr_assert_str_eq(c.control.socket, "/run/egress/pop1-test.sock");
	cr_assert_str_eq(c.control.socket_group, "egress");
	cr_assert_str_eq(c.control.metrics, "127.0.0.1:9469");
	cr_assert_str_eq(c.control.state_file, "/var/lib/egress/pop1-test.json");
	cr_assert_eq(c.control.publish_timeout_ms, 2000);

	cr_assert(json_is_object(c.wireguard));
	cr_assert(c.wg.present);
	cr_assert_eq(c.wg.listen_port, 51820);
	cr_assert_eq(c.wg.load_threshold, 100, "100 handshake messages a second unless configured");
	cr_assert_eq(c.wg.timers.rekey_after_time, 120, "the protocol's timers unless a test shortens them");
	cr_assert_eq(c.wg.n_peers, 1);
	{
		const struct eg_wg_peer_cfg *wp = &c.wg.peers[0];
		char b64[45], ep[64];

		cr_assert_str_eq(wp->name, "fra");
		eg_wg_key_base64(wp->public_key, b64);
		cr_assert_str_eq(b64, "pM/Xw5701tUotAOoc6pB7OdWSB2yL6uvubX4WXthrAw=");
		cr_assert(wp->has_endpoint && !wp->has_psk);
		cr_assert_eq(wp->endpoint_port, 51820);
		cr_assert_eq(wp->n_allowed, 1);
		cr_assert_eq(wp->persistent_keepalive, 25);
		json_t *j = eg_wg_peer_to_json(wp, false);

		cr_assert_str_eq(json_string_value(json_object_get(j, "endpoint")), "192.0.2.10:51820");
		snprintf(ep, sizeof(ep), "%s", json_string_value(json_array_get(json_object_get(j, "allowed_ips"), 0)));
		cr_assert_str_eq(ep, "10.20.0.0/16");
		json_decref(j);
	}
	cr_assert(json_is_array(json_object_get(c.ipsec, "sas")));

	cr_assert_eq(c.n_egresses, 4);
	cr_assert_eq(c.egresses[0].type, EG_EGRESS_DIRECT);
	cr_assert_eq(c.egresses[0].n_snat, 5, "an address and a /30's four");
	cr_assert_eq(c.egresses[0].snat[0], __builtin_bswap32(0xc0000264u));
	cr_assert_eq(c.egresses[0].snat[4], __builtin_bswap32(0xc0000283u));
	cr_assert_eq(c.egresses[1].n_snat, 0);
	cr_assert_eq(c.dataplane.nat.sessions, 4096);
	cr_assert_eq(c.dataplane.nat.hosts, 256);
	cr_assert_eq(c.dataplane.nat.ports_per_block, 128);
	cr_assert_eq(c.dataplane.nat.blocks_per_host, 4);
	cr_assert(c.dataplane.nat.log_blocks);
	cr_assert_eq(c.dataplane.nat.udp_s, 30);
	cr_assert_eq(c.dataplane.nat.icmp_s, 10);
	cr_assert_eq(c.dataplane.nat.tcp_established_s, 7440, "default");
	cr_assert_eq(c.dataplane.nat.tcp_transitory_s, 240, "default");
	cr_assert_eq(c.egresses[0].weight, 1.0);
	cr_assert_not(c.egresses[0].probe.enabled);
	cr_assert(c.egresses[1].has_next_hop);
	cr_assert_eq(c.egresses[1].weight, 2.5);
	cr_assert(c.egresses[1].probe.enabled);
	cr_assert_eq(c.egresses[1].probe.interval_ms, 1000);
	cr_assert_eq(c.egresses[2].type, EG_EGRESS_WIREGUARD);
	cr_assert_str_eq(c.egresses[2].peer, "fra");
	cr_assert_eq(c.egresses[2].probe.interval_ms, 100);
	cr_assert_eq(c.egresses[3].type, EG_EGRESS_IPSEC);
	cr_assert_eq(c.egresses[3].sa_out, 4096);
	cr_assert_eq(c.egresses[3].sa_in, 4294967295u);

	cr_assert_eq(c.n_policies, 4);
	pol = &c.policies[0];
	cr_assert_str_eq(pol->name, "voice");
	cr_assert_eq(pol->priority, 10);
	cr_assert_eq(pol->match.n_src, 0);
	cr_assert_eq(pol->match.n_dst, 2);
	cr_assert_str_eq(eg_prefix_format(&pol->match.dst[1], buf, sizeof(buf)), "10.30.0.0/16");
	cr_assert(pol->match.has_proto);
	cr_assert_eq(pol->match.proto, 17);
	cr_assert_eq(pol->match.sport_lo, 0);
	cr_assert_eq(pol->match.sport_hi, 65535);
	cr_assert_eq(pol->match.dport_lo, 10000);
	cr_assert_eq(pol->match.dport_hi, 20000);
	cr_assert_eq(pol->match.dscp_mask, (1ULL << 46) | (1ULL << 34));
	cr_assert_eq(pol->n_egresses, 2);
	cr_assert_str_eq(pol->egresses[1], "esp-nyc");
	cr_assert_eq(pol->strategy, EG_STRATEGY_LOWEST_LATENCY);
	cr_assert(pol->sla.has_max_rtt && pol->sla.has_max_loss && pol->sla.has_max_jitter);
	cr_assert_eq(pol->sla.max_rtt_ms, 150);
	cr_assert_eq(pol->sla.max_loss_pct, 1.0);

	pol = &c.policies[1];
	cr_assert_eq(pol->action, EG_ACTION_DROP);
	cr_assert_eq(pol->n_egresses, 0);
	cr_assert_eq(pol->match.n_src, 1);
	cr_assert_eq(pol->match.dport_lo, 23);
	cr_assert_eq(pol->match.dport_hi, 23);
	cr_assert_str_eq(pol->match.port, "lan0");
	cr_assert_eq(pol->match.dscp_mask, EG_DSCP_ANY);

	pol = &c.policies[2];
	cr_assert_eq(pol->match.proto, 6);
	cr_assert_eq(pol->match.sport_lo, 1024);
	cr_assert_eq(pol->match.dport_lo, 443);
	cr_assert_eq(pol->match.dport_hi, 443);
	cr_assert_eq(pol->match.dscp_mask, 1);
	cr_assert_eq(pol->strategy, EG_STRATEGY_WEIGHTED);

	pol = &c.policies[3];
	cr_assert_eq(pol->priority, 2147483647u);
	cr_assert_not(pol->match.has_proto);
	cr_assert_eq(pol->match.n_src + pol->match.n_dst, 0);
	cr_assert_eq(pol->strategy, EG_STRATEGY_PRIORITY);

	eg_config_free(&c);
	cr_assert(is_zero(&c, sizeof(c)));
}

Test(config, defaults)
{
	static const char *doc_text =
		"{\"instance\": \"x_1\", \"dataplane\": {\"ports\": [{\"name\": \"p\", "
		"\"role\": \"site\", \"device\": \"d\", \"ipv6\": \"2001:db8::1/64\"}]}}";
	json_t *doc = json_loads(doc_text, 0, NULL);
	struct eg_config c;
	struct eg_error err;

	cr_assert_not_null(doc);
	cr_assert_eq(eg_config_from_json(doc, &c, &err), 0, "%s: %s", err.path, err.msg);
	json_decref(doc);
	cr_assert_eq(c.dataplane.n_eal, 0);
	cr_assert_eq(c.dataplane.workers, 1);
	cr_assert_eq(c.dataplane.idle_backoff, true);
	cr_assert_eq(c.dataplane.idle_sleep_max_us, 200);
	cr_assert_eq(c.dataplane.table_mb, 64);
	cr_assert_eq(c.dataplane.neigh_timeout_s, 60);
	cr_assert_eq(c.dataplane.flow_cache_flows, 1048576);
	cr_assert_eq(c.dataplane.n_routes, 0);
	cr_assert_eq(c.dataplane.nat.sessions, 1048576);
	cr_assert_eq(c.dataplane.nat.ports_per_block, 256);
	cr_assert_eq(c.dataplane.nat.blocks_per_host, 8);
	cr_assert_not(c.dataplane.nat.log_blocks);
	cr_assert_eq(c.dataplane.nat.udp_s, 300);
	cr_assert_eq(c.dataplane.nat.icmp_s, 60);
	cr_assert_not(c.dataplane.ports[0].has_ipv4);
	cr_assert_str_eq(c.control.socket, "/run/egress/egress.sock");
	cr_assert_str_eq(c.control.socket_group, "");
	cr_assert_str_eq(c.control.metrics, "");
	cr_assert_str_eq(c.control.state_file, "/var/lib/egress/x_1.state.json");
	cr_assert_eq(c.control.publish_timeout_ms, 1000);
	cr_assert_null(c.wireguard);
	cr_assert_null(c.ipsec);
	cr_assert_eq(c.n_egresses, 0);
	cr_assert_null(c.egresses);
	cr_assert_eq(c.n_policies, 0);
	cr_assert_null(c.policies);
	eg_config_free(&c);
}

Test(config, egress_and_policy_defaults)
{
	json_t *e = json_loads("{\"name\": \"e\", \"type\": \"wireguard\", \"peer\": \"p\"}", 0, NULL);
	json_t *p = json_loads("{\"name\": \"p\", \"priority\": 0, \"egresses\": [\"e\"]}", 0, NULL);
	struct eg_egress_cfg ec;
	struct eg_policy_cfg pc;
	struct eg_error err;

	cr_assert_eq(eg_config_parse_egress(e, "$", &ec, &err), 0, "%s: %s", err.path, err.msg);
	cr_assert_eq(ec.weight, 1.0);
	cr_assert_not(ec.probe.enabled);
	cr_assert_eq(ec.probe.interval_ms, 1000);
	cr_assert_str_eq(ec.port, "");

	cr_assert_eq(eg_config_parse_policy(p, "$", &pc, &err), 0, "%s: %s", err.path, err.msg);
	cr_assert_eq(pc.action, EG_ACTION_FORWARD);
	cr_assert_eq(pc.strategy, EG_STRATEGY_PRIORITY);
	cr_assert_not(pc.match.has_proto);
	cr_assert_eq(pc.match.n_src + pc.match.n_dst, 0);
	cr_assert_eq(pc.match.sport_lo, 0);
	cr_assert_eq(pc.match.sport_hi, 65535);
	cr_assert_eq(pc.match.dport_lo, 0);
	cr_assert_eq(pc.match.dport_hi, 65535);
	cr_assert_eq(pc.match.dscp_mask, EG_DSCP_ANY);
	cr_assert_str_eq(pc.match.port, "");
	cr_assert_not(pc.sla.has_max_rtt || pc.sla.has_max_loss || pc.sla.has_max_jitter);
	eg_policy_cfg_free(&pc);
	json_decref(e);
	json_decref(p);
}

struct bad_case {
	const char *at;		/* patch location in full.json, "" for the whole document */
	const char *value;	/* JSON text, NULL to delete */
	const char *path;	/* the exact path the error must name */
	const char *msg;	/* a piece of the message */
};

static const struct bad_case bad[] = {
	/* top level */
	/*  0 */ {"", "[]", "$", "expected an object"},
	/*  1 */ {"instance", NULL, "$.instance", "missing required key"},
	/*  2 */ {"instance", "\"pop 1\"", "$.instance", "invalid name \"pop 1\""},
	/*  3 */ {"instance", "\"abcdefghijabcdefghijabcdefghij12\"", "$.instance", "invalid name"},
	/*  4 */ {"instance", "7", "$.instance", "expected a string"},
	/*  5 */ {"dataplanez", "{}", "$.dataplanez", "unknown key"},
	/*  6 */ {"dataplane", NULL, "$.dataplane", "missing required key"},
	/*  7 */ {"wireguard", "[]", "$.wireguard", "expected an object"},
	/*  8 */ {"ipsec", "true", "$.ipsec", "expected an object"},
	/*  9 */ {"egresses", "{}", "$.egresses", "expected an array"},
	/* 10 */ {"policies", "null", "$.policies", "expected an array"},
	/* dataplane */
	/* 11 */ {"dataplane/portz", "[]", "$.dataplane.portz", "unknown key"},
	/* 12 */ {"dataplane/a.b", "1", "$.dataplane[\"a.b\"]", "unknown key"},
	/* 13 */ {"dataplane/workers", "0", "$.dataplane.workers", "0 is out of range 1..64"},
	/* 14 */ {"dataplane/workers", "65", "$.dataplane.workers", "out of range"},
	/* 15 */ {"dataplane/workers", "1.5", "$.dataplane.workers", "expected an integer"},
	/* 16 */ {"dataplane/workers", "\"2\"", "$.dataplane.workers", "expected an integer"},
	/* 17 */ {"dataplane/idle_backoff", "1", "$.dataplane.idle_backoff", "expected true or false"},
	/* 18 */ {"dataplane/idle_sleep_max_us", "100001", "$.dataplane.idle_sleep_max_us", "out of range"},
	/* 19 */ {"dataplane/idle_sleep_max_us", "0", "$.dataplane.idle_sleep_max_us", "out of range"},
	/* 20 */ {"dataplane/table_mb", "4097", "$.dataplane.table_mb", "out of range"},
	/* 21 */ {"dataplane/neigh_timeout_s", "86401", "$.dataplane.neigh_timeout_s", "out of range"},
	/* 22 */ {"dataplane/eal/1", "512", "$.dataplane.eal[1]", "expected a string"},
	/* 23 */ {"dataplane/eal", "\"--no-huge\"", "$.dataplane.eal", "expected an array"},
	/* 24 */ {"dataplane/ports", "[]", "$.dataplane.ports", "needs 1..16 ports"},
	/* 25 */ {"dataplane/ports", NULL, "$.dataplane.ports", "missing required key"},
	/* ports */
	/* 26 */ {"dataplane/ports/1/name", "\"lan0\"", "$.dataplane.ports[1].name", "duplicate port name \"lan0\""},
	/* 27 */ {"dataplane/ports/0/role", "\"lan\"", "$.dataplane.ports[0].role", "unknown role \"lan\""},
	/* 28 */ {"dataplane/ports/0/device", NULL, "$.dataplane.ports[0].device", "missing required key"},
	/* 29 */ {"dataplane/ports/0/device", "\"\"", "$.dataplane.ports[0].device", "must not be empty"},
	/* 30 */ {"dataplane/ports/0/ipv4", "\"10.10.0.1\"", "$.dataplane.ports[0].ipv4", "invalid interface address \"10.10.0.1\""},
	/* 31 */ {"dataplane/ports/0/ipv4", "\"2001:db8::1/64\"", "$.dataplane.ports[0].ipv4", "expected an IPv4 address"},
	/* 32 */ {"dataplane/ports/0/ipv4", "\"10.10.0.0/24\"", "$.dataplane.ports[0].ipv4", "network address"},
	/* 33 */ {"dataplane/ports/0/ipv4", "\"10.10.0.255/24\"", "$.dataplane.ports[0].ipv4", "broadcast address"},
	/* 34 */ {"dataplane/ports/0/ipv6", "\"10.0.0.1/8\"", "$.dataplane.ports[0].ipv6", "expected an IPv6 address"},
	/* 35 */ {"dataplane/ports/2/ipv4", NULL, "$.dataplane.ports[2]", "needs \"ipv4\" or \"ipv6\""},
	/* 36 */ {"dataplane/ports/1/gateway", "\"192.0.3.1\"", "$.dataplane.ports[1].gateway", "outside the port's subnet 192.0.2.0/24"},
	/* 37 */ {"dataplane/ports/1/gateway", "\"2001:db8:1::fe\"", "$.dataplane.ports[1].gateway", "not an IPv4 address"},
	/* 38 */ {"dataplane/ports/1/gateway", "\"192.0.2.1\"", "$.dataplane.ports[1].gateway", "own address"},
	/* 39 */ {"dataplane/ports/1/gateway6", "\"2001:db8:2::1\"", "$.dataplane.ports[1].gateway6", "outside"},
	/* 40 */ {"dataplane/ports/2/gateway6", "\"fe80::1\"", "$.dataplane.ports[2].gateway6", "needs the port's \"ipv6\""},
	/* 41 */ {"dataplane/ports/1/mac", "\"02:00:00:00:01\"", "$.dataplane.ports[1].mac", "invalid MAC address"},
	/* 42 */ {"dataplane/ports/1/mac", "\"02-00-00-00-01-01\"", "$.dataplane.ports[1].mac", "invalid MAC address"},
	/* 43 */ {"dataplane/ports/1/mac", "\"01:00:5e:00:00:01\"", "$.dataplane.ports[1].mac", "multicast"},
	/* 44 */ {"dataplane/ports/0/vlan", "4095", "$.dataplane.ports[0].vlan", "out of range 0..4094"},
	/* 45 */ {"dataplane/ports/0/mtu", "67", "$.dataplane.ports[0].mtu", "out of range 68..9216"},
	/* 46 */ {"dataplane/ports/0/mtu", "1000", "$.dataplane.ports[0].mtu", "below IPv6's minimum MTU"},
	/* 47 */ {"dataplane/ports/0/neighbours/0/mac", NULL, "$.dataplane.ports[0].neighbours[0].mac", "missing required key"},
	/* 48 */ {"dataplane/ports/0/neighbours/2", "{\"ip\": \"10.10.0.2\", \"mac\": \"02:00:00:00:00:03\"}", "$.dataplane.ports[0].neighbours[2]", "duplicate neighbour"},
	/* 49 */ {"dataplane/ports/2/neighbours", "[{\"ip\": \"2001:db8::5\", \"mac\": \"02:00:00:00:00:03\"}]", "$.dataplane.ports[2].neighbours[0].ip", "no IPv6 address"},
	/* 50 */ {"dataplane/ports/0/speed", "1", "$.dataplane.ports[0].speed", "unknown key"},
	/* 51 */ {"dataplane/ports/0", "\"lan0\"", "$.dataplane.ports[0]", "expected an object"},
	/* routes */
	/* 52 */ {"dataplane/routes/0/prefix", "\"10.99.0.1/16\"", "$.dataplane.routes[0].prefix", "host bits set in \"10.99.0.1/16\" (did you mean \"10.99.0.0/16\"?)"},
	/* 53 */ {"dataplane/routes/0/port", "\"wan0\"", "$.dataplane.routes[0].port", "is an uplink"},
	/* 54 */ {"dataplane/routes/0/port", "\"lan9\"", "$.dataplane.routes[0].port", "unknown port \"lan9\""},
	/* 55 */ {"dataplane/routes/1/via", "\"10.10.0.254\"", "$.dataplane.routes[1].via", "not an IPv6 address"},
	/* 56 */ {"dataplane/routes/2", "{\"prefix\": \"10.99.0.0/16\", \"via\": \"10.10.0.9\", \"port\": \"lan0\"}", "$.dataplane.routes[2].prefix", "duplicate route"},
	/* control */
	/* 57 */ {"control/socket", "\"/run/egress/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\"", "$.control.socket", "too long"},
	/* 58 */ {"control/metrics", "\":\"", "$.control.metrics", "invalid listen address \":\""},
	/* 59 */ {"control/metrics", "\"::1:9469\"", "$.control.metrics", "invalid listen address"},
	/* 60 */ {"control/metrics", "\"127.0.0.1:65536\"", "$.control.metrics", "invalid listen address"},
	/* 61 */ {"control/publish_timeout_ms", "5", "$.control.publish_timeout_ms", "out of range 10..60000"},
	/* 62 */ {"control/socket_group", "\"-wheel\"", "$.control.socket_group", "invalid group name"},
	/* 63 */ {"control/sockett", "\"/x\"", "$.control.sockett", "unknown key"},
	/* 64 */ {"control", "\"x\"", "$.control", "expected an object"},
	/* egresses */
	/* 65 */ {"egresses/1/name", "\"direct-wan0\"", "$.egresses[1].name", "duplicate egress name \"direct-wan0\" (also $.egresses[0])"},
	/* 66 */ {"egresses/0/type", "\"gre\"", "$.egresses[0].type", "unknown egress type \"gre\""},
	/* 67 */ {"egresses/0/type", NULL, "$.egresses[0].type", "missing required key"},
	/* 68 */ {"egresses/0/port", "\"lan0\"", "$.egresses[0].port", "not an uplink"},
	/* 69 */ {"egresses/0/port", "\"wan9\"", "$.egresses[0].port", "unknown port \"wan9\""},
	/* 70 */ {"egresses/2/port", "\"wan0\"", "$.egresses[2].port", "not valid for an egress of type \"wireguard\""},
	/* 71 */ {"egresses/0/sa_in", "5", "$.egresses[0].sa_in", "not valid for an egress of type \"direct\""},
	/* 72 */ {"egresses/3/sa_out", "0", "$.egresses[3].sa_out", "out of range"},
	/* 73 */ {"egresses/3/sa_in", "4294967296", "$.egresses[3].sa_in", "out of range"},
	/* 74 */ {"egresses/3/sa_in", NULL, "$.egresses[3].sa_in", "missing required key"},
	/* 75 */ {"egresses/1/weight", "0", "$.egresses[1].weight", "must be > 0"},
	/* 76 */ {"egresses/1/weight", "\"1\"", "$.egresses[1].weight", "expected a number"},
	/* 77 */ {"egresses/2/probe/interval_ms", "5", "$.egresses[2].probe.interval_ms", "out of range"},
	/* 78 */ {"egresses/2/probe/target", "\"10.20.0\"", "$.egresses[2].probe.target", "invalid IP address \"10.20.0\""},
	/* 79 */ {"egresses/2/probe/target", NULL, "$.egresses[2].probe.target", "missing required key"},
	/* 80 */ {"egresses/2/peer", NULL, "$.egresses[2].peer", "missing required key"},
	/* 81 */ {"egresses/1/next_hop", "\"2001:db8::1\"", "$.egresses[1].next_hop", "no IPv6 address"},
	/* 82 */ {"egresses/0/snat", "{}", "$.egresses[0].snat.pool", "missing required key"},
	/* policies */
	/* 83 */ {"policies/1/name", "\"voice\"", "$.policies[1].name", "duplicate policy name \"voice\""},
	/* 84 */ {"policies/0/priority", "-1", "$.policies[0].priority", "out of range"},
	/* 85 */ {"policies/0/priority", "2147483648", "$.policies[0].priority", "out of range"},
	/* 86 */ {"policies/0/priority", NULL, "$.policies[0].priority", "missing required key"},
	/* 87 */ {"policies/0/egresses/1", "\"wg-x\"", "$.policies[0].egresses[1]", "unknown egress \"wg-x\""},
	/* 88 */ {"policies/0/egresses/1", "\"wg-fra\"", "$.policies[0].egresses[1]", "listed twice"},
	/* 89 */ {"policies/0/egresses", "[]", "$.policies[0].egresses", "needs 1..16 egresses"},
	/* 90 */ {"policies/0/egresses", NULL, "$.policies[0].egresses", "missing required key"},
	/* 91 */ {"policies/1/egresses", "[\"wg-fra\"]", "$.policies[1].egresses", "must be empty when action is \"drop\""},
	/* 92 */ {"policies/1/strategy", "\"priority\"", "$.policies[1].strategy", "not valid when action is \"drop\""},
	/* 93 */ {"policies/0/strategy", "\"fastest\"", "$.policies[0].strategy", "unknown strategy \"fastest\""},
	/* 94 */ {"policies/0/action", "\"reject\"", "$.policies[0].action", "unknown action \"reject\""},
	/* 95 */ {"policies/2/match/dst/0", "\"2001:db8::1/32\"", "$.policies[2].match.dst[0]", "host bits set"},
	/* 96 */ {"policies/2/match/dst/0", "\"not-a-prefix\"", "$.policies[2].match.dst[0]", "invalid prefix \"not-a-prefix\""},
	/* 97 */ {"policies/0/match/dst/1", "16", "$.policies[0].match.dst[1]", "expected a string"},
	/* 98 */ {"policies/0/match/dst", "[]", "$.policies[0].match.dst", "empty list"},
	/* 99 */ {"policies/0/match/src", "5", "$.policies[0].match.src", "expected a prefix string"},
	/*100 */ {"policies/1/match/src", "\"10.10.0.0/33\"", "$.policies[1].match.src", "invalid prefix"},
	/*101 */ {"policies/0/match/proto", "\"tcpx\"", "$.policies[0].match.proto", "unknown protocol \"tcpx\""},
	/*102 */ {"policies/0/match/proto", "256", "$.policies[0].match.proto", "out of range 0..255"},
	/*103 */ {"policies/0/match/proto", "\"icmp\"", "$.policies[0].match.dport", "ports need proto tcp, udp or sctp, not icmp"},
	/*104 */ {"policies/0/match/dport", "\"20000-10000\"", "$.policies[0].match.dport", "invalid port or range \"20000-10000\""},
	/*105 */ {"policies/0/match/sport", "65536", "$.policies[0].match.sport", "out of range"},
	/*106 */ {"policies/0/match/sport", "true", "$.policies[0].match.sport", "expected a port string"},
	/*107 */ {"policies/0/match/dscp/0", "64", "$.policies[0].match.dscp[0]", "out of range 0..63"},
	/*108 */ {"policies/0/match/dscp", "[]", "$.policies[0].match.dscp", "empty list"},
	/*109 */ {"policies/1/match/port", "\"lan9\"", "$.policies[1].match.port", "unknown port \"lan9\""},
	/*110 */ {"policies/2/match/dst", "[\"10.0.0.0/8\"]", "$.policies[2].match", "src is IPv6 only and dst is IPv4 only"},
	/*111 */ {"policies/0/sla/max_loss_pct", "101", "$.policies[0].sla.max_loss_pct", "out of range 0..100"},
	/*112 */ {"policies/0/sla/max_rtt_ms", "-1", "$.policies[0].sla.max_rtt_ms", "must be >= 0"},
	/*113 */ {"policies/0/sla/max_rtt", "1", "$.policies[0].sla.max_rtt", "unknown key"},
	/*114 */ {"policies/0/match/dstt", "[]", "$.policies[0].match.dstt", "unknown key"},
	/*115 */ {"policies/3", "\"default\"", "$.policies[3]", "expected an object"},
	/*116 */ {"policies/0/name", "\"\"", "$.policies[0].name", "invalid name \"\""},
	/*117 */ {"instance", "\"po\\u0000p\"", "$.instance", "contains a NUL byte"},
	/*118 */ {"policies/0/name", "\"\\\"\\n\"", "$.policies[0].name", "invalid name \"\\\"\\x0a\""},
	/*119 */ {"policies/0/sla", "[]", "$.policies[0].sla", "expected an object"},
	/* ipsec */
	/*120 */ {"ipsec/sas/0/spi", "255", "$.ipsec.sas[0].spi", "out of range 256..4294967295"},
	/*121 */ {"ipsec/sas/0/direction", "\"both\"", "$.ipsec.sas[0].direction", "unknown direction"},
	/*122 */ {"ipsec/sas/0/mode", "\"transport\"", "$.ipsec.sas[0].mode", "only \"tunnel\""},
	/*123 */ {"ipsec/sas/0/key", "\"0011\"", "$.ipsec.sas[0].key", "expected 40 hex digits"},
	/*124 */ {"ipsec/sas/1/key", "\"000102030405060708090a0b0c0d0e0fa0a1a2a3\"", "$.ipsec.sas[1].key",
		  "expected 72 hex digits"},
	/*125 */ {"ipsec/sas/0/remote", "\"2001:db8::7\"", "$.ipsec.sas[0].remote", "not an IPv4 address"},
	/*126 */ {"ipsec/sas/0/local", "\"192.0.2.9\"", "$.ipsec.sas[0].local", "not the address of an uplink"},
	/*127 */ {"ipsec/sas/0/aead", "\"aes-cbc\"", "$.ipsec.sas[0].aead", "unknown aead"},
	/*128 */ {"ipsec/sas/1/replay_window", "65537", "$.ipsec.sas[1].replay_window", "out of range 64..65536"},
	/*129 */ {"ipsec/sas/0/encap_dport", "4501", "$.ipsec.sas[0].encap_dport", "only with \"encap\": \"udp\""},
	/*130 */ {"ipsec/sas/0/soft_lifetime", "{\"seconds\": 3600}", "$.ipsec.sas[0].soft_lifetime.seconds",
		  "below the hard one"},
	/*131 */ {"ipsec/sas/1/spi", "4096", "$.egresses[3].sa_in", "no inbound SA with SPI 4294967295"},
	/*132 */ {"egresses/3/sa_out", "1", "$.egresses[3].sa_out", "no outbound SA with SPI 1"},
	/*133 */ {"ipsec/sas/1", "{\"spi\": 4096, \"direction\": \"out\", \"local\": \"192.0.2.1\", "
		  "\"remote\": \"198.51.100.7\", \"aead\": \"aes-gcm-128\", "
		  "\"key\": \"000102030405060708090a0b0c0d0e0fa0a1a2a3\"}", "$.ipsec.sas[1].spi", "configured twice"},
	/*134 */ {"ipsec/sas", "{}", "$.ipsec.sas", "expected an array"},
	/*135 */ {"ipsec/policies", "[]", "$.ipsec.policies", "unknown key"},
	/*136 */ {"ipsec/sas/0/fragment", "\"middle\"", "$.ipsec.sas[0].fragment", "\"inner\" or \"outer\""},
	/* wireguard */
	/*137 */ {"wireguard/private_key", NULL, "$.wireguard.private_key", "missing required key"},
	/*138 */ {"wireguard/private_key", "\"abc\"", "$.wireguard.private_key", "expected a key"},
	/*139 */ {"wireguard/listen_port", "0", "$.wireguard.listen_port", "out of range"},
	/*140 */ {"wireguard/peers/0/public_key", "\"AAAA\"", "$.wireguard.peers[0].public_key", "base64 of 32 bytes"},
	/*141 */ {"wireguard/peers/0/name", NULL, "$.wireguard.peers[0].name", "missing required key"},
	/*142 */ {"wireguard/peers/0/endpoint", "\"192.0.2.10\"", "$.wireguard.peers[0].endpoint", "expected \"address:port\""},
	/*143 */ {"wireguard/peers/0/endpoint", "\"2001:db8::1:51820\"", "$.wireguard.peers[0].endpoint", "IPv6 goes in brackets"},
	/*144 */ {"wireguard/peers/0/endpoint", "\"192.0.2.10:0\"", "$.wireguard.peers[0].endpoint", "port must be 1..65535"},
	/*145 */ {"wireguard/peers/0/allowed_ips/0", "\"10.20.0.1/16\"", "$.wireguard.peers[0].allowed_ips[0]", "did you mean \"10.20.0.0/16\""},
	/*146 */ {"wireguard/peers/0/persistent_keepalive", "65536", "$.wireguard.peers[0].persistent_keepalive", "out of range"},
	/*147 */ {"wireguard/peers/1", "{\"name\": \"fra\", \"public_key\": \"W0i2TqtyMmtQ3DFyJgG9iEKDfWWRX11fH7D3x5ZEd1k=\"}", "$.wireguard.peers[1].name", "configured twice"},
	/*148 */ {"wireguard/peers/1", "{\"name\": \"ams\", \"public_key\": \"pM/Xw5701tUotAOoc6pB7OdWSB2yL6uvubX4WXthrAw=\"}", "$.wireguard.peers[1].public_key", "same public key as peer \"fra\""},
	/*149 */ {"wireguard/peers/1", "{\"name\": \"ams\", \"public_key\": \"W0i2TqtyMmtQ3DFyJgG9iEKDfWWRX11fH7D3x5ZEd1k=\", \"allowed_ips\": [\"10.20.0.0/16\"]}",
		  "$.wireguard.peers[1].allowed_ips[0]", "10.20.0.0/16 is already peer \"fra\"'s"},
	/*150 */ {"wireguard/peers/0/public_key", "\"W9QdjUrXB5NBVTZNPXLs4GJSJR94Jk3fA/zdPz3XVHc=\"", "$.wireguard.peers[0].public_key", "our own public key"},
	/*151 */ {"egresses/2/peer", "\"nyc\"", "$.egresses[2].peer", "no WireGuard peer \"nyc\""},
	/*152 */ {"wireguard/test_timers", "{\"rekey_after_time\": 200}", "$.wireguard.test_timers.rekey_after_time", "less than reject_after_time"},
	/*153 */ {"wireguard/peers/0/preshared_key", "\"c2VjcmV0\"", "$.wireguard.peers[0].preshared_key", "expected a key"},
	/*154 */ {"wireguard/peers/0/colour", "1", "$.wireguard.peers[0].colour", "unknown key"},
	/*155 */ {"wireguard", NULL, "$.egresses[2].peer", "needs the \"wireguard\" section"},
	/*156 */ {"wireguard/handshake_load_threshold", "-1", "$.wireguard.handshake_load_threshold", "out of range"},
	/*157 */ {"egresses/0/snat", "{\"pool\": []}", "$.egresses[0].snat.pool", "an empty pool"},
	/*158 */ {"egresses/0/snat/pool/0", "\"2001:db8::1\"", "$.egresses[0].snat.pool[0]", "not IPv4"},
	/*159 */ {"egresses/0/snat/pool/0", "\"192.0.2.0/24\"", "$.egresses[0].snat.pool[0]", "larger than /26"},
	/*160 */ {"egresses/0/snat/pool/1", "\"192.0.2.100/32\"", "$.egresses[0].snat.pool[1]", "repeats an address"},
	/*161 */ {"egresses/0/snat/pool/0", "\"192.0.2.1\"", "$.egresses[0].snat.pool", "port \"wan0\"'s own address"},
	/*162 */ {"egresses/1/snat", "{\"pool\": [\"192.0.2.131\"]}", "$.egresses[1].snat.pool", "in egress \"direct-wan0\"'s pool"},
	/*163 */ {"egresses/2/snat", "{\"pool\": [\"192.0.2.7\"]}", "$.egresses[2].snat", "not valid for an egress of type \"wireguard\""},
	/*164 */ {"egresses/0/snat/pool/2", "\"10.0.0.0/26\"", "$.egresses[0].snat.pool[2]", "more than 64 addresses"},
	/*165 */ {"egresses/0/snat/pool/0", "\"224.0.0.5\"", "$.egresses[0].snat.pool[0]", "not a unicast address"},
	/*166 */ {"egresses/0/snat/mode", "\"eim\"", "$.egresses[0].snat.mode", "unknown key"},
	/*167 */ {"dataplane/nat/ports_per_block", "100", "$.dataplane.nat.ports_per_block", "not a multiple of 64"},
	/*168 */ {"dataplane/nat/timeouts/udp", "0", "$.dataplane.nat.timeouts.udp", "out of range"},
	/*169 */ {"dataplane/nat/timeouts/sctp", "5", "$.dataplane.nat.timeouts.sctp", "unknown key"},
	/*170 */ {"dataplane/nat/sessions", "100", "$.dataplane.nat.sessions", "out of range"},
	/*171 */ {"dataplane/nat/blocks_per_host", "33", "$.dataplane.nat.blocks_per_host", "out of range"},
	/*172 */ {"dataplane/nat/colour", "1", "$.dataplane.nat.colour", "unknown key"},
	/*173 */ {"dataplane/flow_cache_flows", "1023", "$.dataplane.flow_cache_flows", "out of range"},
	/*174 */ {"dataplane/flow_cache_flows", "16777217", "$.dataplane.flow_cache_flows", "out of range"},
};

Test(config, bad_table)
{
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		json_t *doc = patch(load_full(), bad[i].at, bad[i].value);
		struct eg_config c;
		struct eg_error err;
		int ret;

		memset(&c, 0xa5, sizeof(c));
		ret = eg_config_from_json(doc, &c, &err);
		json_decref(doc);
		cr_assert_eq(ret, -EINVAL, "case %zu: ret %d", i, ret);
		cr_assert_str_eq(err.path, bad[i].path, "case %zu: path %s (%s)", i, err.path, err.msg);
		cr_assert_not_null(strstr(err.msg, bad[i].msg), "case %zu: message \"%s\", expected \"%s\"",
				   i, err.msg, bad[i].msg);
		/* On error the config is left freed, so a stray eg_config_free is harmless. */
		cr_assert(is_zero(&c, sizeof(c)), "case %zu: config not cleared", i);
		eg_config_free(&c);
	}
}

/* Each patch of the full config that must still be accepted: the edges of every range. */
static const struct {
	const char *at, *value;
} good[] = {
	/*  0 */ {"dataplane/workers", "64"},
	/*  1 */ {"dataplane/ports/0/vlan", "4094"},
	/*  2 */ {"dataplane/ports/2/mtu", "68"},
	/*  3 */ {"dataplane/ports/0/mtu", "9216"},
	/*  4 */ {"dataplane/ports/2/ipv4", "\"198.51.100.2/32\""},	/* then the gateway... */
	/*  5 */ {"control/metrics", "\"[::1]:9469\""},
	/*  6 */ {"control/metrics", "\"localhost:1\""},
	/*  7 */ {"control/metrics", "\"9469\""},	/* a port alone: loopback */
	/*  8 */ {"egresses/1/weight", "0.001"},
	/*  9 */ {"policies/0/priority", "0"},
	/* 10 */ {"policies/0/match/dscp", "63"},
	/* 11 */ {"policies/0/match/proto", "\"132\""},
	/* 12 */ {"policies/0/match/dport", "65535"},
	/* 13 */ {"policies/0/sla/max_loss_pct", "0"},
	/* 14 */ {"policies/1/egresses", "[]"},
	/* 15 */ {"policies/0/match/src", "[\"0.0.0.0/0\", \"::/0\"]"},
	/* 16 */ {"policies/1/match/proto", NULL},
	/* 17 */ {"dataplane/ports/1/gateway6", "\"2001:db8:1::fe\""},
	/* 18 */ {"ipsec/sas/1/replay_window", "64"},
};

Test(config, good_table)
{
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		json_t *doc = patch(load_full(), good[i].at, good[i].value);
		struct eg_config c;
		struct eg_error err;
		int ret;

		/* A /32 interface has no room for a gateway; drop it along with the edit. */
		if (i == 4)
			doc = patch(doc, "dataplane/ports/2/gateway", NULL);
		ret = eg_config_from_json(doc, &c, &err);
		json_decref(doc);
		cr_assert_eq(ret, 0, "case %zu: %s: %s", i, err.path, err.msg);
		eg_config_free(&c);
	}
}

Test(config, json_errors_from_files)
{
	char name[] = "/tmp/eg_cfg_XXXXXX";
	struct eg_config c;
	struct eg_error err;
	int fd;

	cr_assert_eq(eg_config_load("/nonexistent/egress.json", &c, &err), -ENOENT);
	cr_assert_str_eq(err.path, "$");
	cr_assert_not_null(strstr(err.msg, "cannot open"));
	cr_assert_eq(eg_config_load(EG_TEST_DATA, &c, &err), -EISDIR);
	cr_assert_str_eq(err.path, "$");

	fd = mkstemp(name);
	cr_assert_geq(fd, 0);
	dprintf(fd, "{\n  \"instance\": \"a\",\n  \"dataplane\": {,\n}\n");
	close(fd);
	cr_assert_eq(eg_config_load(name, &c, &err), -EINVAL);
	cr_assert_str_eq(err.path, "$");
	cr_assert_not_null(strstr(err.msg, "line 3, column 17"), "%s", err.msg);

	fd = open(name, O_WRONLY | O_TRUNC);
	cr_assert_geq(fd, 0);
	dprintf(fd, "{\"instance\": \"a\", \"instance\": \"b\"}\n");
	close(fd);
	cr_assert_eq(eg_config_load(name, &c, &err), -EINVAL);
	cr_assert_str_eq(err.path, "$");
	cr_assert_not_null(strstr(err.msg, "duplicate"), "%s", err.msg);

	fd = open(name, O_WRONLY | O_TRUNC);
	cr_assert_geq(fd, 0);
	dprintf(fd, "\"just a string\"");
	close(fd);
	cr_assert_eq(eg_config_load(name, &c, &err), -EINVAL);
	cr_assert_str_eq(err.path, "$");
	unlink(name);
	cr_assert(is_zero(&c, sizeof(c)));
}

static bool addr_eq(const struct eg_addr *a, const struct eg_addr *b)
{
	return a->family == b->family && memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

static void assert_egress_eq(const struct eg_egress_cfg *a, const struct eg_egress_cfg *b)
{
	cr_assert_str_eq(a->name, b->name);
	cr_assert_eq(a->type, b->type, "%s", a->name);
	cr_assert_str_eq(a->port, b->port);
	cr_assert_eq(a->has_next_hop, b->has_next_hop, "%s", a->name);
	cr_assert(addr_eq(&a->next_hop, &b->next_hop), "%s", a->name);
	cr_assert_str_eq(a->peer, b->peer);
	cr_assert_eq(a->sa_out, b->sa_out, "%s", a->name);
	cr_assert_eq(a->sa_in, b->sa_in, "%s", a->name);
	cr_assert_eq(a->n_snat, b->n_snat, "%s", a->name);
	cr_assert_eq(memcmp(a->snat, b->snat, sizeof(a->snat)), 0, "%s", a->name);
	cr_assert_eq(a->weight, b->weight, "%s", a->name);
	cr_assert_eq(a->probe.enabled, b->probe.enabled, "%s", a->name);
	cr_assert(addr_eq(&a->probe.target, &b->probe.target), "%s", a->name);
	cr_assert_eq(a->probe.interval_ms, b->probe.interval_ms, "%s", a->name);
}

static void assert_policy_eq(const struct eg_policy_cfg *a, const struct eg_policy_cfg *b)
{
	const struct eg_match_cfg *x = &a->match, *y = &b->match;

	cr_assert_str_eq(a->name, b->name);
	cr_assert_eq(a->priority, b->priority, "%s", a->name);
	cr_assert_eq(x->n_src, y->n_src, "%s", a->name);
	cr_assert_eq(x->n_dst, y->n_dst, "%s", a->name);
	cr_assert(x->n_src == 0 || memcmp(x->src, y->src, x->n_src * sizeof(*x->src)) == 0);
	cr_assert(x->n_dst == 0 || memcmp(x->dst, y->dst, x->n_dst * sizeof(*x->dst)) == 0);
	cr_assert_eq(x->has_proto, y->has_proto, "%s", a->name);
	cr_assert_eq(x->proto, y->proto, "%s", a->name);
	cr_assert(x->sport_lo == y->sport_lo && x->sport_hi == y->sport_hi, "%s", a->name);
	cr_assert(x->dport_lo == y->dport_lo && x->dport_hi == y->dport_hi, "%s", a->name);
	cr_assert_eq(x->dscp_mask, y->dscp_mask, "%s", a->name);
	cr_assert_str_eq(x->port, y->port);
	cr_assert_eq(a->action, b->action, "%s", a->name);
	cr_assert_eq(a->n_egresses, b->n_egresses, "%s", a->name);
	for (unsigned i = 0; i < a->n_egresses; i++)
		cr_assert_str_eq(a->egresses[i], b->egresses[i]);
	cr_assert_eq(a->strategy, b->strategy, "%s", a->name);
	cr_assert_eq(a->sla.has_max_rtt, b->sla.has_max_rtt, "%s", a->name);
	cr_assert_eq(a->sla.has_max_loss, b->sla.has_max_loss, "%s", a->name);
	cr_assert_eq(a->sla.has_max_jitter, b->sla.has_max_jitter, "%s", a->name);
	cr_assert_eq(a->sla.max_rtt_ms, b->sla.max_rtt_ms, "%s", a->name);
	cr_assert_eq(a->sla.max_loss_pct, b->sla.max_loss_pct, "%s", a->name);
	cr_assert_eq(a->sla.max_jitter_ms, b->sla.max_jitter_ms, "%s", a->name);
}

/* Through text, as the state file and the control socket carry it. */
static json_t *via_text(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);
	json_t *back;

	cr_assert_not_null(s);
	back = json_loads(s, JSON_REJECT_DUPLICATES, NULL);
	cr_assert_not_null(back, "%s", s);
	free(s);
	json_decref(j);
	return back;
}

Test(config, egress_round_trip)
{
	struct eg_config c;
	struct eg_error err;

	cr_assert_eq(eg_config_load(FULL, &c, &err), 0, "%s: %s", err.path, err.msg);
	for (unsigned i = 0; i < c.n_egresses; i++) {
		struct eg_egress_cfg back;
		json_t *j = eg_config_egress_to_json(&c.egresses[i]);

		cr_assert_not_null(j);
		j = via_text(j);
		cr_assert_eq(eg_config_parse_egress(j, "$", &back, &err), 0, "egress %u: %s: %s", i,
			     err.path, err.msg);
		assert_egress_eq(&c.egresses[i], &back);
		json_decref(j);
	}
	eg_config_free(&c);
}

/* Policies beyond the full config, for the less common shapes. */
static const char *extra_policies[] = {
	/* 0 */ "{\"name\": \"a\", \"priority\": 1, \"match\": {\"src\": [\"10.0.0.0/8\", \"2001:db8::/32\"],"
		" \"dst\": \"192.0.2.0/24\", \"proto\": 89, \"dscp\": 0}, \"egresses\": [\"x\"]}",
	/* 1 */ "{\"name\": \"b\", \"priority\": 2, \"match\": {\"proto\": \"sctp\", \"sport\": \"0-65535\","
		" \"dport\": 0}, \"egresses\": [\"x\", \"y\"], \"strategy\": \"pinned\","
		" \"sla\": {\"max_loss_pct\": 0.1}}",
	/* 2 */ "{\"name\": \"c\", \"priority\": 3, \"action\": \"drop\", \"egresses\": [],"
		" \"match\": {\"dscp\": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,"
		" 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,"
		" 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62]}}",
	/* 3 */ "{\"name\": \"d\", \"priority\": 4, \"match\": {\"proto\": \"ICMPv6\", \"port\": \"lan0\"},"
		" \"egresses\": [\"x\"], \"strategy\": \"lowest-loss\","
		" \"sla\": {\"max_rtt_ms\": 0.30000000000000004, \"max_jitter_ms\": 1e-9}}",
	/* 4 */ "{\"name\": \"e\", \"priority\": 5, \"match\": {\"sport\": 53, \"dst\": [\"::/0\"]},"
		" \"egresses\": [\"x\"]}",
};

Test(config, policy_round_trip)
{
	struct eg_config c;
	struct eg_error err;

	cr_assert_eq(eg_config_load(FULL, &c, &err), 0, "%s: %s", err.path, err.msg);
	for (unsigned i = 0; i < c.n_policies; i++) {
		struct eg_policy_cfg back;
		json_t *j = via_text(eg_config_policy_to_json(&c.policies[i]));

		cr_assert_eq(eg_config_parse_policy(j, "$", &back, &err), 0, "policy %u: %s: %s", i,
			     err.path, err.msg);
		assert_policy_eq(&c.policies[i], &back);
		eg_policy_cfg_free(&back);
		json_decref(j);
	}
	eg_config_free(&c);

	for (size_t i = 0; i < ARRAY_SIZE(extra_policies); i++) {
		struct eg_policy_cfg p, back;
		json_t *in = json_loads(extra_policies[i], 0, NULL), *j;

		cr_assert_not_null(in, "extra %zu", i);
		cr_assert_eq(eg_config_parse_policy(in, "$", &p, &err), 0, "extra %zu: %s: %s", i,
			     err.path, err.msg);
		j = via_text(eg_config_policy_to_json(&p));
		cr_assert_eq(eg_config_parse_policy(j, "$", &back, &err), 0, "extra %zu: %s: %s", i,
			     err.path, err.msg);
		assert_policy_eq(&p, &back);
		eg_policy_cfg_free(&p);
		eg_policy_cfg_free(&back);
		json_decref(in);
		json_decref(j);
	}
}

Test(config, policy_to_json_shape)
{
	struct eg_config c;
	struct eg_error err;
	json_t *j;
	char *s;

	cr_assert_eq(eg_config_load(FULL, &c, &err), 0, "%s: %s", err.path, err.msg);
	j = eg_config_policy_to_json(&c.policies[0]);
	s = json_dumps(json_object_get(j, "match"), JSON_COMPACT | JSON_SORT_KEYS);
	cr_assert_str_eq(s, "{\"dport\":\"10000-20000\",\"dscp\":[34,46],"
			 "\"dst\":[\"10.20.0.0/16\",\"10.30.0.0/16\"],\"proto\":\"udp\"}");
	free(s);
	json_decref(j);

	j = eg_config_policy_to_json(&c.policies[1]);
	cr_assert_str_eq(json_string_value(json_object_get(j, "action")), "drop");
	cr_assert_null(json_object_get(j, "egresses"));
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "match"), "dport")), "23");
	json_decref(j);

	j = eg_config_egress_to_json(&c.egresses[0]);
	s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	/* A pool prefix comes back as its addresses. */
	cr_assert_str_eq(s, "{\"name\":\"direct-wan0\",\"port\":\"wan0\",\"snat\":{\"pool\":[\"192.0.2.100\","
			    "\"192.0.2.128\",\"192.0.2.129\",\"192.0.2.130\",\"192.0.2.131\"]},\"type\":\"direct\"}");
	free(s);
	json_decref(j);
	eg_config_free(&c);
}

Test(config, policy_copy)
{
	struct eg_config c;
	struct eg_error err;
	struct eg_policy_cfg copy, empty;

	cr_assert_eq(eg_config_load(FULL, &c, &err), 0, "%s: %s", err.path, err.msg);
	cr_assert_eq(eg_policy_cfg_copy(&copy, &c.policies[2]), 0);
	cr_assert_neq(copy.match.src, c.policies[2].match.src);
	cr_assert_neq(copy.match.dst, c.policies[2].match.dst);
	assert_policy_eq(&c.policies[2], &copy);
	/* The copy must outlive its source (valgrind would see a use after free). */
	eg_config_free(&c);
	cr_assert_eq(copy.match.src[0].family, EG_AF_INET6);
	cr_assert_eq(copy.match.dst[0].len, 0);
	eg_policy_cfg_free(&copy);
	cr_assert(is_zero(&copy, sizeof(copy)));

	memset(&empty, 0, sizeof(empty));
	cr_assert_eq(eg_policy_cfg_copy(&copy, &empty), 0);
	cr_assert_null(copy.match.src);
	cr_assert_null(copy.match.dst);
	eg_policy_cfg_free(&copy);
}

/* The control socket's use: pieces parsed on their own with their own paths, then checked
 * against the running config. */
Test(config, control_socket_paths)
{
	struct eg_config c;
	struct eg_error err;
	struct eg_policy_cfg p[2];
	struct eg_egress_cfg e;
	json_t *j;

	cr_assert_eq(eg_config_load(FULL, &c, &err), 0, "%s: %s", err.path, err.msg);

	j = json_loads("{\"name\": \"p\", \"priority\": 1, \"match\": {\"dst\": [\"10.0.0.0/8\","
		       " \"10.0.0.1/8\"]}, \"egresses\": [\"wg-fra\"]}", 0, NULL);
	cr_assert_eq(eg_config_parse_policy(j, "$.params.policies[3]", &p[0], &err), -EINVAL);
	cr_assert_str_eq(err.path, "$.params.policies[3].match.dst[1]");
	cr_assert(is_zero(&p[0], sizeof(p[0])));
	json_decref(j);

	j = json_loads("{\"name\": \"e\", \"type\": \"ipsec\", \"sa_out\": 1, \"sa_in\": 2,"
		       " \"next_hop\": \"192.0.2.9\"}", 0, NULL);
	cr_assert_eq(eg_config_parse_egress(j, "$.params", &e, &err), -EINVAL);
	cr_assert_str_eq(err.path, "$.params.next_hop");
	cr_assert_not_null(strstr(err.msg, "not valid for an egress of type \"ipsec\""));
	cr_assert(is_zero(&e, sizeof(e)));
	json_decref(j);

	j = json_loads("{\"name\": \"p\", \"priority\": 1, \"egresses\": [\"wg-fra\", \"gone\"]}", 0, NULL);
	cr_assert_eq(eg_config_parse_policy(j, "$.params.policies[0]", &p[0], &err), 0);
	cr_assert_eq(eg_config_parse_policy(j, "$.params.policies[1]", &p[1], &err), 0);
	strcpy(p[1].name, "q");
	cr_assert_eq(eg_config_check_refs(&c.dataplane, c.egresses, c.n_egresses, "$.egresses",
					  p, 2, "$.params.policies", &err), -EINVAL);
	cr_assert_str_eq(err.path, "$.params.policies[0].egresses[1]");
	cr_assert_str_eq(err.msg, "unknown egress \"gone\"");
	strcpy(p[0].egresses[1], "esp-nyc");
	strcpy(p[1].egresses[1], "esp-nyc");
	cr_assert_eq(eg_config_check_refs(&c.dataplane, c.egresses, c.n_egresses, "$.egresses",
					  p, 2, "$.params.policies", &err), 0, "%s: %s", err.path, err.msg);
	strcpy(p[1].name, "p");
	cr_assert_eq(eg_config_check_refs(&c.dataplane, c.egresses, c.n_egresses, "$.egresses",
					  p, 2, "$.params.policies", &err), -EINVAL);
	cr_assert_str_eq(err.path, "$.params.policies[1].name");
	eg_policy_cfg_free(&p[0]);
	eg_policy_cfg_free(&p[1]);
	json_decref(j);

	cr_assert_str_eq(eg_strategy_name(EG_STRATEGY_LOWEST_LOSS), "lowest-loss");
	cr_assert_str_eq(eg_egress_type_name(EG_EGRESS_WIREGUARD), "wireguard");
	eg_config_free(&c);
}

/* Name checks stay sorted-lookup fast at the policy limit; the first duplicate in document
 * order is the one reported. */
Test(config, many_policies)
{
	struct eg_egress_cfg eg = {.name = "e", .type = EG_EGRESS_WIREGUARD, .peer = "p",
				   .weight = 1};
	struct eg_dataplane_cfg *dp = calloc(1, sizeof(*dp));
	struct eg_policy_cfg *p = calloc(EG_MAX_POLICIES, sizeof(*p));
	struct eg_error err;

	cr_assert(dp && p);
	for (unsigned i = 0; i < EG_MAX_POLICIES; i++) {
		snprintf(p[i].name, sizeof(p[i].name), "p%u", i);
		p[i].priority = i;
		p[i].n_egresses = 1;
		strcpy(p[i].egresses[0], "e");
	}
	cr_assert_eq(eg_config_check_refs(dp, &eg, 1, "$.egresses", p, EG_MAX_POLICIES,
					  "$.policies", &err), 0, "%s: %s", err.path, err.msg);
	strcpy(p[EG_MAX_POLICIES - 1].name, "p7");
	strcpy(p[40000].name, "p9");
	cr_assert_eq(eg_config_check_refs(dp, &eg, 1, "$.egresses", p, EG_MAX_POLICIES,
					  "$.policies", &err), -EINVAL);
	cr_assert_str_eq(err.path, "$.policies[40000].name");
	cr_assert_not_null(strstr(err.msg, "(also $.policies[9])"), "%s", err.msg);
	free(p);
	free(dp);
}

/* Every list limit, one past it: arrays too long for a table row. */
Test(config, list_limits)
{
	static const struct {
		const char *at;		/* array replaced by n + 1 copies of item */
		unsigned n;
		const char *item;
		const char *path;
	} lim[] = {
		/* 0 */ {"dataplane/eal", EG_MAX_EAL_ARGS, "\"-v\"", "$.dataplane.eal"},
		/* 1 */ {"dataplane/ports", EG_MAX_PORTS, "{}", "$.dataplane.ports"},
		/* 2 */ {"dataplane/ports/0/neighbours", EG_MAX_STATIC_NEIGH, "{}",
			 "$.dataplane.ports[0].neighbours"},
		/* 3 */ {"dataplane/routes", EG_MAX_ROUTES, "{}", "$.dataplane.routes"},
		/* 4 */ {"egresses", EG_MAX_EGRESSES, "{}", "$.egresses"},
		/* 5 */ {"policies/0/egresses", EG_MAX_POLICY_EGRESSES, "\"wg-fra\"",
			 "$.policies[0].egresses"},
		/* 6 */ {"policies/0/match/dst", EG_MAX_MATCH_PREFIXES, "\"10.0.0.0/8\"",
			 "$.policies[0].match.dst"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(lim); i++) {
		json_t *doc = patch(load_full(), lim[i].at, "[]"), *arr = doc;
		struct eg_config c;
		struct eg_error err;
		char buf[256], *seg, *save = NULL;

		snprintf(buf, sizeof(buf), "%s", lim[i].at);
		for (seg = strtok_r(buf, "/", &save); seg; seg = strtok_r(NULL, "/", &save))
			arr = json_is_array(arr) ? json_array_get(arr, strtoul(seg, NULL, 10))
						 : json_object_get(arr, seg);
		for (unsigned k = 0; k <= lim[i].n; k++)
			json_array_append_new(arr, json_loads(lim[i].item, JSON_DECODE_ANY, NULL));
		cr_assert_eq(eg_config_from_json(doc, &c, &err), -EINVAL, "case %zu", i);
		cr_assert_str_eq(err.path, lim[i].path, "case %zu: %s", i, err.msg);
		cr_assert(strstr(err.msg, "too many") || strstr(err.msg, "needs 1.."),
			  "case %zu: %s", i, err.msg);
		json_decref(doc);
	}
}
