/* An ESP SA as the workers use it: a slot in shared memory. The control process fills a
 * FREE slot (keys expanded for the dataplane's crypto architecture), then makes it ACTIVE
 * with a release store; workers use a slot only while it is ACTIVE and only through the
 * published table (outbound: the egress names the slot; inbound: the SPI table). A slot is
 * wiped and freed only after a grace period in which no table names it. */
#ifndef EG_SA_H
#define EG_SA_H

#include <stdint.h>

#include "aead.h"
#include "replay.h"
#include "sa_config.h"

enum eg_sa_state { EG_SA_FREE = 0, EG_SA_ACTIVE = 1, EG_SA_STOPPED = 2 };

enum eg_sa_stop {
	EG_SA_STOP_NONE = 0,
	EG_SA_STOP_LIFETIME,		/* hard lifetime reached (control) */
	EG_SA_STOP_SEQ_OVERFLOW,	/* sequence numbers exhausted (worker); never wraps */
	EG_SA_STOP_REMOVED,		/* ipsec.sa.remove, or replaced by a rekey */
};

struct eg_sa_slot {
	uint32_t state;			/* enum eg_sa_state; atomic */
	uint32_t stop_reason;		/* enum eg_sa_stop; atomic, written before state */
	uint32_t spi;
	uint8_t dir;			/* EG_SA_DIR_* */
	uint8_t family;			/* outer */
	uint8_t esn;
	uint8_t udp_encap;
	uint8_t fragment_outer;
	uint8_t limit_is_lifetime;	/* seq_limit comes from a hard packet lifetime */
	uint16_t port;			/* uplink port index of local */
	uint16_t encap_sport, encap_dport;
	uint8_t salt[EG_SA_SALT_LEN];
	uint8_t local[16], remote[16];
	uint64_t seq_limit;		/* outbound: the last sequence number that may be sent: the
					 * end of the number space, or of a packet lifetime (exact) */
	uint8_t fingerprint[32];	/* of the key material, to adopt the slot after a control restart */
	uint64_t installed_unix_ns;
	uint64_t seq __attribute__((aligned(64)));	/* outbound: last number handed out; atomic */
	struct eg_aead_key key;		/* cache-line aligned */
	/* followed, at EG_SA_REPLAY_OFF, by the inbound replay window */
};

/* Per worker and slot, in the worker's counter block. */
struct eg_sa_counters {
	uint64_t packets, bytes;
	uint64_t auth_failures, replays, padding_errors, other_drops;
	uint64_t pad[2];
};

#define EG_SA_REPLAY_OFF (((sizeof(struct eg_sa_slot) + 63) / 64) * 64)

static inline struct eg_replay *eg_sa_replay(struct eg_sa_slot *s)
{
	return (struct eg_replay *)((uint8_t *)s + EG_SA_REPLAY_OFF);
}

/* Bytes one slot takes, room for the largest window included. */
static inline size_t eg_sa_slot_stride(void)
{
	return (EG_SA_REPLAY_OFF + eg_replay_size(EG_REPLAY_MAX_WINDOW) + 4095) & ~(size_t)4095;
}

/* Fills a slot from its configuration: identity, addresses, ports, the sequence limit of
 * the number space, the key expanded by aead, and (inbound) a fresh replay window. The
 * state stays FREE: the caller adds what it alone knows, then makes the slot ACTIVE.
 * 0 or -errno; on error the slot's key material is wiped. */
int eg_sa_slot_fill(struct eg_sa_slot *s, const struct eg_sa_cfg *cfg, uint16_t port,
		    const struct eg_aead_ctx *aead);

#endif
