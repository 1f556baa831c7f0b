/* The JSON configuration (see README "Config reference" and ../shared/API.md), parsed into
 * plain structs. Both daemons load the same file; egress-control also uses the egress and
 * policy parsers to validate what arrives over the control socket.
 *
 * Every error names the JSON path of the offending value, like
 * "$.policies[2].match.dst[0]", so an operator can find it. */
#ifndef EG_CONFIG_H
#define EG_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "net_addr.h"
#include "sa_config.h"
#include "wg_config.h"

enum {
	EG_NAME_LEN = 32,		/* names of ports, egresses, policies, instance (incl. NUL) */
	EG_DEVICE_LEN = 256,
	EG_PATH_LEN = 256,
	EG_MAX_PORTS = 16,
	EG_MAX_WORKERS = 64,
	EG_MAX_EGRESSES = 4096,
	EG_MAX_POLICIES = 65536,
	EG_MAX_POLICY_EGRESSES = 16,
	EG_STAMP_DEFAULT_PORT = 862,	/* RFC 8762 */
	EG_MAX_MATCH_PREFIXES = 256,	/* per src or dst list of one policy */
	EG_MAX_STATIC_NEIGH = 64,	/* per port */
	EG_MAX_ROUTES = 256,
	EG_MAX_EAL_ARGS = 64,
	EG_SNAT_POOL_MAX = 64,		/* addresses in one direct egress's snat pool */
};

struct eg_error {
	char path[EG_PATH_LEN];		/* JSON path, "$" for the document */
	char msg[256];			/* what is wrong, quoting the bad value where short */
};

enum eg_port_role { EG_ROLE_SITE = 0, EG_ROLE_UPLINK = 1 };

struct eg_static_neigh {
	struct eg_addr ip;
	uint8_t mac[6];
};

struct eg_port_cfg {
	char name[EG_NAME_LEN];
	enum eg_port_role role;
	char device[EG_DEVICE_LEN];	/* DPDK device string: "net_af_packet0,iface=x", "0000:03:00.0" */
	bool has_ipv4, has_ipv6;
	struct eg_prefix ipv4;		/* interface address with its prefix length (host bits kept) */
	struct eg_prefix ipv6;
	bool has_gateway4, has_gateway6;
	struct eg_addr gateway4, gateway6;
	bool has_mac;			/* override the port's MAC */
	uint8_t mac[6];
	uint16_t vlan;			/* 0: untagged; 1..4094: this port sends and expects this 802.1Q tag */
	uint16_t mtu;			/* 0: device default */
	unsigned n_neigh;
	struct eg_static_neigh neigh[EG_MAX_STATIC_NEIGH];
};

/* A static route for traffic toward the site side (return traffic), beyond the site
 * ports' connected subnets. */
struct eg_route_cfg {
	struct eg_prefix prefix;
	struct eg_addr via;
	char port[EG_NAME_LEN];
};

/* Source NAT on direct egresses (lib/nat_table.h): how much state, how ports are handed
 * out, and when idle sessions end. */
struct eg_nat_cfg {
	unsigned sessions;		/* session (and mapping) records, default 1048576 */
	unsigned hosts;			/* inside hosts, default 65536 */
	unsigned ports_per_block;	/* default 256 */
	unsigned blocks_per_host;	/* default 8 */
	bool log_blocks;		/* a log line per block given or taken back, default off */
	unsigned tcp_established_s;	/* default 7440 (RFC 5382 REQ-5: 2 h 4 min) */
	unsigned tcp_transitory_s;	/* default 240 (RFC 5382 REQ-5: 4 min) */
	unsigned udp_s;			/* default 300 (RFC 4787 REQ-5) */
	unsigned icmp_s;		/* default 60 (RFC 5508 REQ-1) */
};

struct eg_dataplane_cfg {
	unsigned n_eal;
	char *eal[EG_MAX_EAL_ARGS];	/* owned strings */
	unsigned workers;		/* worker lcores, >= 1 */
	bool idle_backoff;		/* default true */
	unsigned idle_sleep_max_us;	/* longest idle sleep, default 200 */
	bool stamp_reflector;		/* answer STAMP test packets, default true */
	unsigned table_mb;		/* size of each table slot in shared memory, default 64 */
	unsigned neigh_timeout_s;	/* reachable neighbour entries are refreshed after this, default 60 */
	unsigned flow_cache_flows;	/* flows each worker's flow cache holds, default 1048576 */
	unsigned n_ports;
	struct eg_port_cfg ports[EG_MAX_PORTS];
	unsigned n_routes;
	struct eg_route_cfg routes[EG_MAX_ROUTES];
	struct eg_nat_cfg nat;
};

struct eg_control_cfg {
	char socket[108];		/* default /run/egress/<instance>.sock */
	char socket_group[EG_NAME_LEN];	/* "" : the daemon's group */
	char metrics[64];		/* "" : off */
	char state_file[EG_PATH_LEN];	/* default /var/lib/egress/<instance>.state.json */
	unsigned publish_timeout_ms;	/* default 1000 */
	/* Path selection hysteresis (path_select.h). */
	unsigned hold_down_ms;		/* default 10000 */
	double latency_margin_ms;	/* default 5 */
	double latency_margin_pct;	/* default 10 */
	double loss_margin_pct;		/* default 1 */
};

enum eg_egress_type { EG_EGRESS_DIRECT = 0, EG_EGRESS_WIREGUARD = 1, EG_EGRESS_IPSEC = 2 };

enum eg_probe_method { EG_PROBE_ICMP = 0, EG_PROBE_STAMP = 1 };

struct eg_probe_cfg {
	bool enabled;
	struct eg_addr target;
	unsigned interval_ms;		/* default 1000 */
	enum eg_probe_method method;	/* default icmp */
	uint16_t port;			/* stamp: the reflector's UDP port, default 862 */
	bool has_source;		/* else the site port's address (tunnels) or the uplink's */
	struct eg_addr source;
	unsigned window;		/* probes the metrics cover, default 100 */
	unsigned down_after;		/* intervals without an answer before down, default 3 */
	unsigned timeout_ms;		/* a probe unanswered this long is lost; default
					 * max(1000, 3 x interval) */
};

struct eg_egress_cfg {
	char name[EG_NAME_LEN];
	enum eg_egress_type type;
	char port[EG_NAME_LEN];		/* direct: the uplink port */
	bool has_next_hop;		/* direct: instead of the port's gateway */
	struct eg_addr next_hop;
	char peer[EG_NAME_LEN];		/* wireguard */
	unsigned n_snat;		/* direct: source NAT pool size, 0 for none */
	uint32_t snat[EG_SNAT_POOL_MAX];	/* IPv4 addresses, network order */
	uint32_t sa_out, sa_in;		/* ipsec */
	double weight;			/* for the weighted strategy, default 1 */
	struct eg_probe_cfg probe;
};

enum eg_strategy {
	EG_STRATEGY_PRIORITY = 0,
	EG_STRATEGY_LOWEST_LATENCY,
	EG_STRATEGY_LOWEST_LOSS,
	EG_STRATEGY_WEIGHTED,
	EG_STRATEGY_PINNED,
};

enum eg_policy_action { EG_ACTION_FORWARD = 0, EG_ACTION_DROP = 1 };

struct eg_match_cfg {
	unsigned n_src, n_dst;		/* 0: any */
	struct eg_prefix *src, *dst;	/* owned arrays */
	bool has_proto;
	uint8_t proto;
	uint16_t sport_lo, sport_hi;	/* 0-65535 when absent */
	uint16_t dport_lo, dport_hi;
	uint64_t dscp_mask;		/* EG_DSCP_ANY (all ones) when absent */
	char port[EG_NAME_LEN];		/* ingress port name, "" for any */
};

struct eg_sla_cfg {
	bool has_max_rtt, has_max_loss, has_max_jitter;
	double max_rtt_ms, max_loss_pct, max_jitter_ms;
};

struct eg_policy_cfg {
	char name[EG_NAME_LEN];
	uint32_t priority;
	struct eg_match_cfg match;
	enum eg_policy_action action;
	unsigned n_egresses;
	char egresses[EG_MAX_POLICY_EGRESSES][EG_NAME_LEN];
	enum eg_strategy strategy;	/* default priority */
	struct eg_sla_cfg sla;
};

struct eg_config {
	char instance[EG_NAME_LEN];
	struct eg_dataplane_cfg dataplane;
	struct eg_control_cfg control;
	unsigned n_egresses;
	struct eg_egress_cfg *egresses;	/* owned */
	unsigned n_policies;
	struct eg_policy_cfg *policies;	/* owned, as given (not sorted) */
	json_t *wireguard;		/* kept as given for the WireGuard module; NULL if absent */
	json_t *ipsec;			/* the "ipsec" section as given */
	unsigned n_sas;
	struct eg_sa_cfg *sas;		/* owned, parsed from ipsec.sas; wiped when freed */
	struct eg_wg_cfg wg;		/* parsed from wireguard; keys wiped when freed */
};

/* Loads and validates a config file. 0, or -errno with err filled (path "$..." and message;
 * for unreadable files or JSON syntax errors, path "$" and the line/column). On error *cfg is
 * left freed. */
int eg_config_load(const char *file, struct eg_config *cfg, struct eg_error *err);
/* The same from a parsed document. */
int eg_config_from_json(const json_t *doc, struct eg_config *cfg, struct eg_error *err);
void eg_config_free(struct eg_config *cfg);

/* Parsers for the pieces the control socket receives; path is the JSON path of obj (for
 * example "$.params" or "$.params.policies[3]") and prefixes every error. They validate the
 * object on its own (names, types, ranges, unknown keys); references between objects
 * (a policy naming an unknown egress, an egress naming an unknown port) are checked by
 * eg_config_check_refs. On error the output is freed/zeroed. */
int eg_config_parse_egress(const json_t *obj, const char *path, struct eg_egress_cfg *out,
			   struct eg_error *err);
int eg_config_parse_policy(const json_t *obj, const char *path, struct eg_policy_cfg *out,
			   struct eg_error *err);
void eg_policy_cfg_free(struct eg_policy_cfg *p);
/* Deep copy (match arrays included). 0 or -ENOMEM. */
int eg_policy_cfg_copy(struct eg_policy_cfg *dst, const struct eg_policy_cfg *src);

/* Checks names are unique and every reference resolves: egress -> port (an uplink, for
 * direct), policy -> egresses, policy match.port -> port. policy_path / egress_path are the
 * JSON paths of the arrays ("$.policies", "$.params.policies"), element paths get "[i]". */
int eg_config_check_refs(const struct eg_dataplane_cfg *dp,
			 const struct eg_egress_cfg *egresses, unsigned n_egresses,
			 const char *egress_path,
			 const struct eg_policy_cfg *policies, unsigned n_policies,
			 const char *policy_path, struct eg_error *err);

/* Back to JSON, in the same shape the parsers accept (for policy.list, egress.list and the
 * state file). */
json_t *eg_config_egress_to_json(const struct eg_egress_cfg *e);
json_t *eg_config_policy_to_json(const struct eg_policy_cfg *p);

const char *eg_strategy_name(enum eg_strategy s);
const char *eg_egress_type_name(enum eg_egress_type t);

/* Index of the port named name, or -1. */
int eg_config_port_index(const struct eg_dataplane_cfg *dp, const char *name);

#endif
