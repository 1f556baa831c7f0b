/* One generation of the egress table: egresses, policies, the classifier and per-policy
 * selection tables, built by the control process into a blob and published into shared
 * memory, where workers read it lock-free. All references inside are offsets from the
 * table's start. */
#ifndef EG_TABLE_H
#define EG_TABLE_H

#include <stdbool.h>
#include <stdint.h>

#include "blob.h"
#include "classifier.h"
#include "config.h"
#include "flow_select.h"
#include "path_select.h"
#include "prefix_map.h"

#define EG_TABLE_MAGIC 0x34425445u	/* "ETB4": classifier_id */

enum eg_path_state { EG_PATH_UP = 0, EG_PATH_DEGRADED = 1, EG_PATH_DOWN = 2 };

/* "up", "degraded", "down" ("?" out of range), as the socket, metrics and telemetry say it. */
const char *eg_path_state_name(unsigned state);

struct eg_table_hdr {
	uint32_t magic;
	uint32_t size;			/* bytes of the whole table */
	uint32_t n_egresses;
	uint32_t egresses_off;		/* struct eg_table_egress[n_egresses] */
	uint32_t n_policies;
	uint32_t policies_off;		/* struct eg_table_policy[n_policies] */
	uint32_t classifier_off;	/* rule results are policy indexes */
	uint32_t n_rules;
	uint32_t spi_off;		/* struct eg_table_spi[spi_mask + 1]: inbound ESP demux */
	uint32_t spi_mask;
	/* WireGuard allowed IPs as longest-prefix ranges owned by peer slots, per family. */
	uint32_t wg4_off;		/* struct eg_prefix_range[n_wg4] */
	uint32_t n_wg4;
	uint32_t wg6_off;		/* struct eg_prefix_range[n_wg6] */
	uint32_t n_wg6;
	/* Stamped by eg_shm_publish (0 before): different for every content published. */
	uint64_t generation;
	/* A digest of the rules the classifier was built from (never 0 for a built table):
	 * equal in two tables when every flow classifies to the same policy index in both, so
	 * workers' flow caches (dataplane/flow_cache.h) keep their entries across publishes
	 * that change only paths, which is most of them. */
	uint64_t classifier_id;
};

/* What the build needs to know of one installed WireGuard peer. */
struct eg_table_wg_peer {
	uint32_t slot;
	const struct eg_prefix *allowed;
	unsigned n_allowed;
};

/* Inbound SPI -> SA slot, open addressing; slot EG_TABLE_NO_SA marks an empty entry. */
struct eg_table_spi {
	uint32_t spi;
	uint32_t slot;
};

#define EG_TABLE_NO_SA UINT32_MAX

struct eg_table_egress {
	char name[EG_NAME_LEN];
	uint16_t id;			/* counters index, stable while the egress exists */
	uint8_t type;			/* enum eg_egress_type */
	uint8_t state;			/* enum eg_path_state */
	uint16_t port;			/* index of the port in the config */
	uint8_t nh_family;		/* EG_AF_ANY: the port's gateway, or on-link */
	uint8_t pad;
	uint8_t next_hop[EG_ADDR_MAX_LEN];
	uint32_t sa_slot;		/* ipsec: the outbound SA's slot, or EG_TABLE_NO_SA */
	uint32_t wg_slot;		/* wireguard: the peer's slot, or EG_TABLE_NO_SA */
	uint16_t n_snat;		/* direct: source NAT pool addresses, 0 for none */
	uint16_t pad2;
	uint32_t snat_off;		/* uint32_t[n_snat], network order */
};

struct eg_table_policy {
	char name[EG_NAME_LEN];
	uint32_t id;			/* counters index, stable while the policy exists */
	uint8_t action;			/* enum eg_policy_action */
	uint8_t strategy;		/* enum eg_strategy */
	uint16_t single;		/* the egress when sel_off is EG_BLOB_NONE; EG_SEL_NONE: drop */
	uint32_t sel_off;		/* uint16_t[EG_SEL_BUCKETS] of egress indexes, or EG_BLOB_NONE */
};

/* What the build needs beyond the config: stable ids and live path state. */
struct eg_table_input {
	const struct eg_dataplane_cfg *dp;
	const struct eg_egress_cfg *egresses;
	unsigned n_egresses;
	const uint32_t *egress_ids;	/* < EG_MAX_EGRESSES */
	const uint8_t *egress_state;	/* enum eg_path_state per egress; NULL: all up */
	const struct eg_policy_cfg *policies;
	unsigned n_policies;
	const uint32_t *policy_ids;
	const uint32_t *egress_sa_slot;	/* per egress: its outbound SA slot; NULL: none */
	const struct eg_table_spi *inbound;	/* inbound SAs (spi, slot) */
	unsigned n_inbound;
	const uint32_t *egress_wg_slot;	/* per egress: its WireGuard peer's slot; NULL: none */
	const struct eg_table_wg_peer *wg_peers;	/* installed peers */
	unsigned n_wg_peers;
	/* Per policy, the egresses (indexes into egresses) that carry its flows, as the
	 * control process chose them from measurements (path_select.h); NULL: chosen here
	 * from egress_state alone. */
	const struct eg_path_pick *picks;
};

/* Builds a table into b (which should be empty). 0, or -errno with err filled. */
int eg_table_build(const struct eg_table_input *in, struct eg_blob *b, struct eg_error *err);

/* Which of policy's egresses carry its flows: fills out[] (egress indexes into
 * in->egresses, with weights) and returns how many; 0 means drop. */
unsigned eg_table_policy_members(const struct eg_table_input *in, unsigned policy,
				 struct eg_sel_member *out);

enum eg_verdict {
	EG_VERDICT_FORWARD = 0,
	EG_VERDICT_NO_POLICY,
	EG_VERDICT_POLICY_DROP,
	EG_VERDICT_NO_EGRESS,
};

static inline const struct eg_table_egress *eg_table_egresses(const struct eg_table_hdr *t)
{
	return EG_AT(t, t->egresses_off, struct eg_table_egress);
}

static inline const struct eg_table_policy *eg_table_policies(const struct eg_table_hdr *t)
{
	return EG_AT(t, t->policies_off, struct eg_table_policy);
}

/* The decision after classification: policy index pi's action, and the flow's egress among
 * the policy's. Sets *policy (NULL on NO_POLICY) and *egress (on FORWARD). */
static inline enum eg_verdict eg_table_verdict(const struct eg_table_hdr *t, uint32_t pi, uint64_t flow_hash,
					       const struct eg_table_policy **policy,
					       const struct eg_table_egress **egress)
{
	const struct eg_table_policy *p;
	uint16_t e;

	if (pi == EG_CLS_NO_MATCH) {
		*policy = NULL;
		return EG_VERDICT_NO_POLICY;
	}
	p = &eg_table_policies(t)[pi];
	*policy = p;
	if (p->action == EG_ACTION_DROP)
		return EG_VERDICT_POLICY_DROP;
	e = p->sel_off == EG_BLOB_NONE ? p->single
				       : eg_sel_pick(EG_AT(t, p->sel_off, uint16_t), flow_hash);
	if (e == EG_SEL_NONE)
		return EG_VERDICT_NO_EGRESS;
	*egress = &eg_table_egresses(t)[e];
	return EG_VERDICT_FORWARD;
}

/* The whole per-packet decision: classify, then pick the flow's egress. */
static inline enum eg_verdict eg_table_decide(const struct eg_table_hdr *t,
					      const struct eg_flow_key *k, uint64_t flow_hash,
					      const struct eg_table_policy **policy,
					      const struct eg_table_egress **egress)
{
	return eg_table_verdict(t, eg_classifier_lookup(t, t->classifier_off, k), flow_hash, policy, egress);
}

static inline uint32_t eg_table_spi_hash(uint32_t spi)
{
	return (spi * 0x9e3779b1u) ^ (spi >> 16);
}

/* The slot of the inbound SA with this SPI, or EG_TABLE_NO_SA. */
static inline uint32_t eg_table_spi_lookup(const struct eg_table_hdr *t, uint32_t spi)
{
	const struct eg_table_spi *e = EG_AT(t, t->spi_off, struct eg_table_spi);

	for (uint32_t i = eg_table_spi_hash(spi);; i++) {
		const struct eg_table_spi *x = &e[i & t->spi_mask];

		if (x->slot == EG_TABLE_NO_SA || x->spi == spi)
			return x->slot;
	}
}

/* Whether a WireGuard peer slot may send from src: cryptokey routing, where src's
 * longest matching allowed prefix among all peers must be this peer's. */
static inline bool eg_table_wg_allowed(const struct eg_table_hdr *t, uint32_t slot, uint8_t family,
				       const uint8_t *src)
{
	if (family == EG_AF_INET)
		return eg_prefix_map_lookup(EG_AT(t, t->wg4_off, struct eg_prefix_range), t->n_wg4,
					    family, src) == slot;
	return eg_prefix_map_lookup(EG_AT(t, t->wg6_off, struct eg_prefix_range), t->n_wg6,
				    family, src) == slot;
}

/* Structural check of a table (magic, sizes, offsets in range), for a reader that did not
 * build it. 0 or -EPROTO. */
int eg_table_validate(const void *table, size_t max_size);

#endif
