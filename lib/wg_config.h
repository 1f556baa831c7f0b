/* The "wireguard" section of the config and the peer objects wg.peer.add receives
 * (../shared/API.md): our private key and UDP port, and peers with their public keys,
 * optional preshared keys, endpoints, allowed IPs and persistent keepalive. Timers may be
 * shortened for tests only ("test_timers"). */
#ifndef EG_WG_CONFIG_H
#define EG_WG_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "net_addr.h"

struct eg_error;
struct eg_egress_cfg;

enum {
	EG_WG_KEY_LEN = 32,
	EG_MAX_WG_PEERS = 16384,	/* the issue asks for 10,000 on one appliance */
	EG_WG_MAX_ALLOWED_IPS = 256,	/* per peer */
	EG_WG_DEFAULT_PORT = 51820,
	EG_WG_DEFAULT_LOAD_THRESHOLD = 100,	/* handshake messages a second */
};

/* The protocol's timers and limits (WireGuard paper 6.1), in seconds and messages. */
struct eg_wg_timers {
	uint32_t rekey_after_time, reject_after_time, rekey_attempt_time, rekey_timeout, keepalive_timeout;
	uint64_t rekey_after_messages, reject_after_messages;
};

struct eg_wg_peer_cfg {
	char name[32];
	uint8_t public_key[EG_WG_KEY_LEN];
	bool has_psk;
	uint8_t psk[EG_WG_KEY_LEN];
	bool has_endpoint;
	struct eg_addr endpoint;
	uint16_t endpoint_port;
	uint16_t persistent_keepalive;	/* seconds, 0 off */
	unsigned n_allowed;
	struct eg_prefix *allowed;	/* owned */
};

struct eg_wg_cfg {
	bool present;
	uint8_t private_key[EG_WG_KEY_LEN];
	uint16_t listen_port;
	unsigned load_threshold;	/* handshake messages a second before cookies */
	struct eg_wg_timers timers;
	unsigned n_peers;
	struct eg_wg_peer_cfg *peers;	/* owned; wiped when freed */
};

/* The protocol's values. */
void eg_wg_timers_default(struct eg_wg_timers *t);

/* The section at path (NULL: absent, which is fine). On error *out is wiped and empty. */
int eg_wg_cfg_parse_section(const json_t *wg, const char *path, struct eg_wg_cfg *out, struct eg_error *err);
/* One peer object at path. On error *out is wiped. */
int eg_wg_peer_parse(const json_t *obj, const char *path, struct eg_wg_peer_cfg *out, struct eg_error *err);
/* wireguard egresses name a configured peer (and need the section). */
int eg_wg_check_refs(const struct eg_wg_cfg *wg, const struct eg_egress_cfg *egresses, unsigned n_egresses,
		     const char *egress_path, struct eg_error *err);
/* The first of p's allowed prefixes that q has too, or -1: no prefix may be two peers'. */
int eg_wg_allowed_conflict(const struct eg_wg_peer_cfg *p, const struct eg_wg_peer_cfg *q);
/* Index of the peer called name, or -1. */
int eg_wg_peer_find(const struct eg_wg_cfg *wg, const char *name);
/* JSON in the form the parser takes; the preshared key only when with_secrets (the state
 * file), never in replies or logs. */
json_t *eg_wg_peer_to_json(const struct eg_wg_peer_cfg *p, bool with_secrets);
void eg_wg_peer_wipe(struct eg_wg_peer_cfg *p);
void eg_wg_cfg_free(struct eg_wg_cfg *wg);

/* Base64 (standard, as wg genkey prints) of a 32-byte key into out (45 bytes). */
void eg_wg_key_base64(const uint8_t key[EG_WG_KEY_LEN], char out[45]);

#endif
