/* IPsec ESP security associations as configured: the "ipsec.sas" section of the config
 * and the objects ipsec.sa.add receives (../shared/API.md). Tunnel mode only. */
#ifndef EG_SA_CONFIG_H
#define EG_SA_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "net_addr.h"

struct eg_error;
struct eg_dataplane_cfg;
struct eg_egress_cfg;

enum {
	EG_SA_DIR_IN = 0,
	EG_SA_DIR_OUT = 1,
	EG_MAX_SAS = 4096,		/* 1,000 tunnels, in and out, and their rekeys overlapping */
	EG_SA_KEY_MAX = 32,
	EG_SA_SALT_LEN = 4,		/* RFC 4106 section 4 / RFC 7634 section 2: the nonce salt */
	EG_SA_DEFAULT_WINDOW = 1024,
	EG_ESP_UDP_PORT = 4500,		/* RFC 3948 */
};

/* 0 in any field: no limit. */
struct eg_sa_lifetime {
	uint64_t bytes, packets, seconds;
};

struct eg_sa_cfg {
	uint32_t spi;
	uint8_t dir;			/* EG_SA_DIR_* */
	uint8_t aead;			/* enum eg_aead_alg */
	uint8_t key_len;		/* 16 or 32, salt not included */
	bool esn;			/* 64-bit sequence numbers, high half implicit (RFC 4303 2.2.1) */
	bool udp_encap;			/* NAT traversal, RFC 3948 */
	bool fragment_outer;		/* oversized inner IPv4 without DF: fragment the ESP packet
					 * (outer) instead of the inner packet */
	uint16_t encap_sport, encap_dport;
	uint32_t replay_window;		/* inbound: 64..65536 */
	struct eg_addr local, remote;	/* outer addresses; local is one of our uplinks' */
	uint8_t key[EG_SA_KEY_MAX];
	uint8_t salt[EG_SA_SALT_LEN];
	struct eg_sa_lifetime hard, soft;	/* soft defaults to 90% of hard */
};

/* One SA object at path. On error *out is wiped. */
int eg_sa_cfg_parse(const json_t *obj, const char *path, struct eg_sa_cfg *out, struct eg_error *err);
/* The "ipsec" section {"sas": [...]}: an owned array (wipe with eg_sa_cfg_free_all). */
int eg_sa_cfg_parse_section(const json_t *ipsec, const char *path, struct eg_sa_cfg **sas,
			    unsigned *n, struct eg_error *err);
/* (spi, direction) unique, inbound SPIs unique, local a uplink port's address of the same
 * family, remote of the same family; ipsec egresses name an existing out SA (sa_out) and
 * in SA (sa_in). */
int eg_sa_check_refs(const struct eg_dataplane_cfg *dp, const struct eg_sa_cfg *sas, unsigned n,
		     const char *sa_path, const struct eg_egress_cfg *egresses, unsigned n_egresses,
		     const char *egress_path, struct eg_error *err);
/* The uplink port whose address is sa->local, or -1. */
int eg_sa_cfg_port(const struct eg_dataplane_cfg *dp, const struct eg_sa_cfg *sa);
/* Index of (spi, dir) in sas, or -1. */
int eg_sa_cfg_find(const struct eg_sa_cfg *sas, unsigned n, uint32_t spi, uint8_t dir);
/* JSON in the form the parser takes; the key only when with_key (for the state file, never
 * for replies or logs). */
json_t *eg_sa_cfg_to_json(const struct eg_sa_cfg *sa, bool with_key);
void eg_sa_cfg_wipe(struct eg_sa_cfg *sa);
void eg_sa_cfg_free_all(struct eg_sa_cfg *sas, unsigned n);
const char *eg_sa_aead_name(uint8_t aead);

#endif
