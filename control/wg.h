/* WireGuard in egress-control: our identity, the peers, their handshakes (both roles,
 * lib/wg_noise.c), cookies under load, the protocol's timers, and the keypairs it installs
 * for the workers (lib/wg_slot.h). Handshake messages arrive over the punt ring and leave
 * over the inject ring (lib/msg_ring.h); transport data never comes here, only the
 * keepalives this side seals itself.
 *
 * A control restart starts every session afresh (the workers keep the published table, and
 * each peer re-handshakes on its next packet); a dataplane restart loses its keypairs with
 * its segment, and the peers are installed again on attach. */
#ifndef CP_WG_H
#define CP_WG_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "table.h"
#include "wg_config.h"
#include "wg_noise.h"
#include "wg_slot.h"

/* One of a peer's four keypair positions, as control knows it. */
struct cp_wg_kp {
	bool used;			/* ACTIVE in the slot, or reserved by an initiation */
	bool retiring;			/* FREE in the slot; wiped once workers moved on */
	uint64_t *snap;			/* loop counts at retirement (retiring) */
	struct wg_keypair keys;		/* our copy, to seal keepalives */
	uint64_t created_ns;
	uint64_t serial;
};

struct cp_wg_peer {
	struct eg_wg_peer_cfg cfg;
	struct wg_peer_keys keys;
	uint32_t slot;			/* EG_TABLE_NO_SA: not installed */

	/* Our initiation in flight. */
	bool hs_active;
	struct wg_handshake hs;
	unsigned hs_kp;			/* the keypair position it reserved */
	uint64_t hs_first_ns, hs_retry_after_ns;
	uint8_t hs_mac1[WG_MAC_LEN];	/* of the last initiation, for a cookie reply */
	uint8_t cookie[WG_COOKIE_LEN];	/* from the peer's cookie reply */
	uint64_t cookie_ns;		/* 0: none */

	uint8_t last_tai64n[WG_TAI64N_LEN];	/* newest initiation timestamp seen */
	uint64_t last_initiation_ns;		/* flood limit on its initiations */

	struct cp_wg_kp kp[EG_WG_KEYPAIRS];
	uint64_t last_handshake_unix_ns;	/* for wg show */
	uint64_t last_keepalive_ms;		/* CLOCK_MONOTONIC ms of our last keepalive */
	uint64_t last_session_ns;		/* the newest keypair's birth; keys zeroed 3 x
						 * REJECT_AFTER_TIME after it */
	uint64_t handshakes;			/* completed, for metrics */
	struct eg_wg_endpoint ep;		/* what we last wrote to the slot */
};

struct cp_wg {
	bool present;
	struct wg_identity me;
	uint16_t listen_port;
	struct eg_wg_timers timers;
	unsigned n, cap;
	struct cp_wg_peer **peers;
	int32_t *by_slot;		/* slot -> peer index, -1; n_slots entries */
	unsigned n_slots;
	uint64_t serial;
	/* Cookies: the secret rotates every 2 minutes; load is the handshake rate. */
	uint8_t cookie_secret[WG_KEY_LEN];
	uint64_t cookie_secret_ns;
	uint64_t rate_window_ns;
	unsigned rate_count, load_threshold;
	bool under_load;
	uint64_t cookie_replies_sent, handshakes_dropped;
	uint64_t next_tick_ns;
};

struct cp_state;
struct eg_msg;

/* Takes over the config's wireguard section (its peers array is owned afterwards). 0 or
 * -EINVAL when the private key is unusable. */
int cp_wg_init(struct cp_wg *wg, struct eg_wg_cfg *cfg);
void cp_wg_free(struct cp_wg *wg);

/* The dataplane's segment: install every peer (a fresh start for each session). */
void cp_wg_attach(struct cp_state *st);
void cp_wg_detach(struct cp_state *st);
/* Handshake messages and roaming notices from the punt ring, then timers (every 50 ms).
 * Called every loop of the daemon. */
void cp_wg_poll(struct cp_state *st);
/* A WireGuard message from the punt ring (handshake, roaming notice). */
void cp_wg_handle(struct cp_state *st, const struct eg_msg *m);

/* Table inputs: per egress its peer's slot (EG_TABLE_NO_SA for the rest), and the
 * installed peers' allowed IPs. Arrays are the caller's to free. -ENOMEM. */
int cp_wg_table_inputs(const struct cp_state *st, const struct eg_egress_cfg *egs, unsigned n_egs,
		       uint32_t **egress_slot, struct eg_table_wg_peer **peers, unsigned *n_peers);
/* A wireguard egress is up while its peer is installed (a session comes on demand). */
bool cp_wg_egress_up(const struct cp_state *st, const struct eg_egress_cfg *e);

int cp_wg_find(const struct cp_wg *wg, const char *name);
int cp_wg_find_key(const struct cp_wg *wg, const uint8_t pub[WG_KEY_LEN]);
/* Adds (taking over *p) or removes a peer live. 0, -EEXIST, -ENOENT, -ENOSPC. */
int cp_wg_peer_add(struct cp_state *st, struct eg_wg_peer_cfg *p);
int cp_wg_peer_remove(struct cp_state *st, unsigned i);

/* wg.show: interface and peers, as `wg show` tells them. */
json_t *cp_wg_show(const struct cp_state *st);

#endif
