#include "sa.h"

#include <string.h>

int eg_sa_slot_fill(struct eg_sa_slot *s, const struct eg_sa_cfg *cfg, uint16_t port,
		    const struct eg_aead_ctx *aead)
{
	int rc;

	memset(s, 0, EG_SA_REPLAY_OFF);
	s->spi = cfg->spi;
	s->dir = cfg->dir;
	s->family = cfg->local.family;
	s->esn = cfg->esn;
	s->udp_encap = cfg->udp_encap;
	s->fragment_outer = cfg->fragment_outer;
	s->port = port;
	s->encap_sport = cfg->encap_sport;
	s->encap_dport = cfg->encap_dport;
	memcpy(s->salt, cfg->salt, sizeof(s->salt));
	memcpy(s->local, cfg->local.addr, 16);
	memcpy(s->remote, cfg->remote.addr, 16);
	/* RFC 4303 3.3.3: the counter never cycles; without ESN it ends at 2^32 - 1. */
	s->seq_limit = cfg->esn ? UINT64_MAX : UINT32_MAX;
	rc = eg_aead_key_set(aead, &s->key, (enum eg_aead_alg)cfg->aead, cfg->key, cfg->key_len);
	if (rc == 0 && cfg->dir == EG_SA_DIR_IN)
		rc = eg_replay_init(eg_sa_replay(s), cfg->replay_window);
	if (rc)
		explicit_bzero(s, EG_SA_REPLAY_OFF);
	return rc;
}
