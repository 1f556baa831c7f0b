/* ESP SAs in egress-control: the configured and socket-added SAs, their slots in shared
 * memory (install, adopt after a restart, retire after a grace period), lifetimes and
 * sequence-number overflow, and the ipsec.sa.* methods' work. */
#ifndef CP_IPSEC_H
#define CP_IPSEC_H

#include <stdbool.h>
#include <stdint.h>

#include "aead.h"
#include "sa_config.h"
#include "shm.h"
#include "table.h"

struct cp_sa {
	struct eg_sa_cfg cfg;
	uint32_t slot;			/* EG_TABLE_NO_SA while not installed */
	bool soft_reported;
	bool stop_reported;
	uint64_t installed_ns;		/* monotonic, for the seconds lifetime */
	uint64_t last_seq;		/* outbound: carried into a re-created segment */
	uint64_t last_top;		/* inbound: likewise for the replay window */
};

struct cp_retiring {
	uint32_t slot;
	uint64_t after_gen;		/* free once every worker passed this generation */
};

struct cp_ipsec {
	unsigned n;
	struct cp_sa *sas;
	struct eg_aead_ctx aead;
	bool aead_ready;
	unsigned n_retiring;
	struct cp_retiring retiring[EG_MAX_SAS];
};

struct cp_state;

/* Takes over the configured SAs (the array is owned afterwards). */
void cp_ipsec_init(struct cp_ipsec *ip, struct eg_sa_cfg *sas, unsigned n);
void cp_ipsec_free(struct cp_ipsec *ip);

/* After attaching: adopts slots that already hold our SAs (a control restart), frees the
 * others once unreferenced, installs what is missing. 0 or -errno. */
int cp_ipsec_attach(struct cp_state *st);
/* Before detaching from a segment: remember sequence numbers and windows. */
void cp_ipsec_detach(struct cp_state *st);

/* Installs cfg into a free slot; *slot is set. -ENOSPC, -ENOTCONN when not attached. */
int cp_ipsec_install(struct cp_state *st, const struct eg_sa_cfg *cfg, uint64_t last_seq,
		     uint64_t last_top, uint32_t *slot);
/* Stops a slot at once (reason); it is wiped and freed once every worker has passed
 * generation after_gen, the first one that no longer names it. */
void cp_ipsec_retire(struct cp_state *st, uint32_t slot, uint32_t reason, uint64_t after_gen);
/* A slot never published: wiped and freed at once. */
void cp_ipsec_uninstall(struct cp_state *st, uint32_t slot);

/* For the table: per egress its outbound slot, and the inbound (spi, slot) list. The
 * arrays are allocated (free them). */
int cp_ipsec_table_inputs(const struct cp_state *st, const struct eg_egress_cfg *egs, unsigned n_egs,
			  uint32_t **egress_slot, struct eg_table_spi **inbound, unsigned *n_inbound);
/* Up when both of an ipsec egress's SAs are installed and active. */
bool cp_ipsec_egress_up(const struct cp_state *st, const struct eg_egress_cfg *e);

/* Lifetimes, overflow, retiring; returns true when SA states changed (re-publish). */
bool cp_ipsec_tick(struct cp_state *st);

/* ipsec.sa.list entry: config without the key, state and counters. */
json_t *cp_ipsec_sa_json(const struct cp_state *st, const struct cp_sa *sa);
int cp_ipsec_find(const struct cp_ipsec *ip, uint32_t spi, uint8_t dir);

#endif
