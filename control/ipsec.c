#include "ipsec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "rpc.h"
#include "state.h"

#define LOG(fmt, ...) fprintf(stderr, "egress-control: " fmt "\n", ##__VA_ARGS__)

/* After a dataplane restart, outbound sequence numbers resume this far beyond the last
 * one seen, to cover packets sent after the last snapshot (taken every tick). */
enum { SEQ_RESUME_MARGIN = 1 << 20 };

static const char *const stop_names[] = {
	[EG_SA_STOP_NONE] = "none",
	[EG_SA_STOP_LIFETIME] = "lifetime",
	[EG_SA_STOP_SEQ_OVERFLOW] = "sequence-overflow",
	[EG_SA_STOP_REMOVED] = "removed",
};

void cp_ipsec_init(struct cp_ipsec *ip, struct eg_sa_cfg *sas, unsigned n)
{
	memset(ip, 0, sizeof(*ip));
	ip->sas = calloc(n + 1, sizeof(*ip->sas));
	if (!ip->sas)
		abort();
	for (unsigned i = 0; i < n; i++) {
		ip->sas[i].cfg = sas[i];
		ip->sas[i].slot = EG_TABLE_NO_SA;
	}
	ip->n = n;
	eg_sa_cfg_free_all(sas, n);
}

void cp_ipsec_free(struct cp_ipsec *ip)
{
	for (unsigned i = 0; i < ip->n; i++)
		eg_sa_cfg_wipe(&ip->sas[i].cfg);
	free(ip->sas);
	if (ip->aead_ready)
		eg_aead_ctx_free(&ip->aead);
	memset(ip, 0, sizeof(*ip));
}

int cp_ipsec_find(const struct cp_ipsec *ip, uint32_t spi, uint8_t dir)
{
	for (unsigned i = 0; i < ip->n; i++)
		if (ip->sas[i].cfg.spi == spi && ip->sas[i].cfg.dir == dir)
			return (int)i;
	return -1;
}

static void fingerprint(const struct eg_sa_cfg *c, uint8_t out[32])
{
	crypto_generichash_state g;

	crypto_generichash_init(&g, NULL, 0, 32);
	crypto_generichash_update(&g, (const uint8_t *)&c->spi, sizeof(c->spi));
	crypto_generichash_update(&g, &c->dir, 1);
	crypto_generichash_update(&g, &c->aead, 1);
	crypto_generichash_update(&g, c->key, c->key_len);
	crypto_generichash_update(&g, c->salt, sizeof(c->salt));
	crypto_generichash_update(&g, c->local.addr, sizeof(c->local.addr));
	crypto_generichash_update(&g, c->remote.addr, sizeof(c->remote.addr));
	crypto_generichash_final(&g, out, 32);
	sodium_memzero(&g, sizeof(g));
}

static bool retiring(const struct cp_ipsec *ip, uint32_t slot)
{
	for (unsigned i = 0; i < ip->n_retiring; i++)
		if (ip->retiring[i].slot == slot)
			return true;
	return false;
}

static int ensure_aead(struct cp_ipsec *ip, uint32_t arch)
{
	if (ip->aead_ready && ip->aead.arch == (IMB_ARCH)arch)
		return 0;
	if (ip->aead_ready)
		eg_aead_ctx_free(&ip->aead);
	ip->aead_ready = eg_aead_ctx_init(&ip->aead, (IMB_ARCH)arch) == 0;
	return ip->aead_ready ? 0 : -ENOTSUP;
}

static void zero_counters(const struct eg_shm_hdr *h, uint32_t slot)
{
	for (unsigned w = 0; w < h->n_workers; w++)
		memset(&eg_shm_sa_counters(eg_shm_worker(h, w))[slot], 0, sizeof(struct eg_sa_counters));
}

int cp_ipsec_install(struct cp_state *st, const struct eg_sa_cfg *cfg, uint64_t last_seq,
		     uint64_t last_top, uint32_t *out)
{
	struct cp_ipsec *ip = &st->ipsec;
	struct eg_shm_hdr *h;
	struct eg_sa_slot *s = NULL;
	uint32_t slot;
	int rc;

	if (!st->mapped)
		return -ENOTCONN;
	h = st->shm.hdr;
	if ((rc = ensure_aead(ip, h->imb_arch)) != 0)
		return rc;
	for (slot = 0; slot < h->n_sa_slots; slot++) {
		s = eg_shm_sa(h, slot);
		if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == EG_SA_FREE && !retiring(ip, slot))
			break;
	}
	if (slot == h->n_sa_slots)
		return -ENOSPC;
	rc = eg_sa_slot_fill(s, cfg, (uint16_t)eg_sa_cfg_port(&st->cfg.dataplane, cfg), &ip->aead);
	if (rc)
		return rc;
	fingerprint(cfg, s->fingerprint);
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		s->installed_unix_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	}
	s->seq = last_seq ? (last_seq + SEQ_RESUME_MARGIN < s->seq_limit ? last_seq + SEQ_RESUME_MARGIN
									 : s->seq_limit) : 0;
	/* Every outbound packet takes one sequence number, so a packet lifetime is a lower
	 * limit the workers enforce exactly. Byte and time limits are checked every tick. */
	if (cfg->dir == EG_SA_DIR_OUT && cfg->hard.packets && s->seq + cfg->hard.packets < s->seq_limit) {
		s->seq_limit = s->seq + cfg->hard.packets;
		s->limit_is_lifetime = 1;
	}
	if (cfg->dir == EG_SA_DIR_IN && last_top)
		eg_replay_restore(eg_sa_replay(s), last_top);
	zero_counters(h, slot);
	__atomic_store_n(&s->state, EG_SA_ACTIVE, __ATOMIC_RELEASE);
	*out = slot;
	return 0;
}

static void wipe(struct cp_state *st, uint32_t slot)
{
	struct eg_sa_slot *s = eg_shm_sa(st->shm.hdr, slot);

	/* Keys leave memory here: the whole slot, then FREE. */
	sodium_memzero(s, st->shm.hdr->sa_stride);
	__atomic_store_n(&s->state, EG_SA_FREE, __ATOMIC_RELEASE);
}

void cp_ipsec_uninstall(struct cp_state *st, uint32_t slot)
{
	if (st->mapped)
		wipe(st, slot);
}

void cp_ipsec_retire(struct cp_state *st, uint32_t slot, uint32_t reason, uint64_t after_gen)
{
	struct cp_ipsec *ip = &st->ipsec;
	struct eg_sa_slot *s;

	if (!st->mapped || slot == EG_TABLE_NO_SA)
		return;
	s = eg_shm_sa(st->shm.hdr, slot);
	__atomic_store_n(&s->stop_reason, reason, __ATOMIC_RELAXED);
	__atomic_store_n(&s->state, EG_SA_STOPPED, __ATOMIC_RELEASE);
	if (!retiring(ip, slot) && ip->n_retiring < EG_MAX_SAS)
		ip->retiring[ip->n_retiring++] = (struct cp_retiring){.slot = slot, .after_gen = after_gen};
}

static void snapshot(struct cp_state *st, struct cp_sa *sa)
{
	struct eg_sa_slot *s;

	if (!st->mapped || sa->slot == EG_TABLE_NO_SA)
		return;
	s = eg_shm_sa(st->shm.hdr, sa->slot);
	if (sa->cfg.dir == EG_SA_DIR_OUT)
		sa->last_seq = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);
	else
		sa->last_top = __atomic_load_n(&eg_sa_replay(s)->top, __ATOMIC_RELAXED);
}

void cp_ipsec_detach(struct cp_state *st)
{
	for (unsigned i = 0; i < st->ipsec.n; i++) {
		snapshot(st, &st->ipsec.sas[i]);
		st->ipsec.sas[i].slot = EG_TABLE_NO_SA;
	}
	st->ipsec.n_retiring = 0;
}

int cp_ipsec_attach(struct cp_state *st)
{
	struct cp_ipsec *ip = &st->ipsec;
	struct eg_shm_hdr *h = st->shm.hdr;
	uint64_t next_gen = eg_shm_generation(h) + 1;
	int rc = 0;

	ip->n_retiring = 0;
	for (unsigned i = 0; i < ip->n; i++)
		ip->sas[i].slot = EG_TABLE_NO_SA;
	/* A control restart: slots that hold exactly our SAs keep running with their
	 * sequence numbers and windows; anything else goes once the next table is live. */
	for (uint32_t slot = 0; slot < h->n_sa_slots; slot++) {
		struct eg_sa_slot *s = eg_shm_sa(h, slot);
		uint32_t state = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
		int j;

		if (state == EG_SA_FREE)
			continue;
		j = cp_ipsec_find(ip, s->spi, s->dir);
		if (j >= 0 && ip->sas[j].slot == EG_TABLE_NO_SA) {
			uint8_t fp[32];

			fingerprint(&ip->sas[j].cfg, fp);
			if (sodium_memcmp(fp, s->fingerprint, sizeof(fp)) == 0) {
				ip->sas[j].slot = slot;
				ip->sas[j].installed_ns = eg_now_ns();
				ip->sas[j].stop_reported = state == EG_SA_STOPPED;
				continue;
			}
		}
		cp_ipsec_retire(st, slot, EG_SA_STOP_REMOVED, next_gen);
	}
	for (unsigned i = 0; i < ip->n; i++) {
		struct cp_sa *sa = &ip->sas[i];
		int r;

		if (sa->slot != EG_TABLE_NO_SA)
			continue;
		r = cp_ipsec_install(st, &sa->cfg, sa->last_seq, sa->last_top, &sa->slot);
		if (r) {
			LOG("SA %u (%s): cannot install: %s", sa->cfg.spi, sa->cfg.dir ? "out" : "in", strerror(-r));
			rc = r;
			continue;
		}
		sa->installed_ns = eg_now_ns();
		sa->soft_reported = sa->stop_reported = false;
	}
	return rc;
}

int cp_ipsec_table_inputs(const struct cp_state *st, const struct eg_egress_cfg *egs, unsigned n_egs,
			  uint32_t **egress_slot, struct eg_table_spi **inbound, unsigned *n_inbound)
{
	const struct cp_ipsec *ip = &st->ipsec;

	*egress_slot = calloc(n_egs + 1, sizeof(**egress_slot));
	*inbound = calloc(ip->n + 1, sizeof(**inbound));
	*n_inbound = 0;
	if (!*egress_slot || !*inbound) {
		free(*egress_slot);
		free(*inbound);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < n_egs; i++) {
		int j = egs[i].type == EG_EGRESS_IPSEC ? cp_ipsec_find(ip, egs[i].sa_out, EG_SA_DIR_OUT) : -1;

		(*egress_slot)[i] = j >= 0 ? ip->sas[j].slot : EG_TABLE_NO_SA;
	}
	for (unsigned i = 0; i < ip->n; i++) {
		const struct cp_sa *sa = &ip->sas[i];

		if (sa->cfg.dir == EG_SA_DIR_IN && sa->slot != EG_TABLE_NO_SA && st->mapped &&
		    __atomic_load_n(&eg_shm_sa(st->shm.hdr, sa->slot)->state, __ATOMIC_ACQUIRE) == EG_SA_ACTIVE)
			(*inbound)[(*n_inbound)++] = (struct eg_table_spi){.spi = sa->cfg.spi, .slot = sa->slot};
	}
	return 0;
}

static bool active(const struct cp_state *st, int j)
{
	const struct cp_sa *sa;

	if (j < 0 || !st->mapped)
		return false;
	sa = &st->ipsec.sas[j];
	return sa->slot != EG_TABLE_NO_SA &&
	       __atomic_load_n(&eg_shm_sa(st->shm.hdr, sa->slot)->state, __ATOMIC_ACQUIRE) == EG_SA_ACTIVE;
}

bool cp_ipsec_egress_up(const struct cp_state *st, const struct eg_egress_cfg *e)
{
	return active(st, cp_ipsec_find(&st->ipsec, e->sa_out, EG_SA_DIR_OUT)) &&
	       active(st, cp_ipsec_find(&st->ipsec, e->sa_in, EG_SA_DIR_IN));
}

static void counters(const struct cp_state *st, uint32_t slot, struct eg_sa_counters *sum)
{
	memset(sum, 0, sizeof(*sum));
	for (unsigned w = 0; w < st->shm.hdr->n_workers; w++) {
		const struct eg_sa_counters *c = &eg_shm_sa_counters(eg_shm_worker(st->shm.hdr, w))[slot];

		sum->packets += c->packets;
		sum->bytes += c->bytes;
		sum->auth_failures += c->auth_failures;
		sum->replays += c->replays;
		sum->padding_errors += c->padding_errors;
		sum->other_drops += c->other_drops;
	}
}

static void expiring(struct cp_state *st, const struct cp_sa *sa, bool hard, const char *reason)
{
	LOG("SA %u (%s): %s lifetime event: %s", sa->cfg.spi, sa->cfg.dir ? "out" : "in", hard ? "hard" : "soft",
	    reason);
	if (st->rpc)
		cp_rpc_server_notify(st->rpc, "ipsec.sa.expiring",
				     json_pack("{s:I,s:s,s:b,s:s}", "spi", (json_int_t)sa->cfg.spi, "direction",
					       sa->cfg.dir ? "out" : "in", "hard", hard, "reason", reason));
}

static bool over(const struct eg_sa_lifetime *lt, const struct eg_sa_counters *c, uint64_t age_s)
{
	return (lt->bytes && c->bytes >= lt->bytes) || (lt->packets && c->packets >= lt->packets) ||
	       (lt->seconds && age_s >= lt->seconds);
}

bool cp_ipsec_tick(struct cp_state *st)
{
	struct cp_ipsec *ip = &st->ipsec;
	bool changed = false;

	if (!st->mapped)
		return false;
	for (unsigned i = 0; i < ip->n; i++) {
		struct cp_sa *sa = &ip->sas[i];
		struct eg_sa_slot *s;
		struct eg_sa_counters c;
		uint64_t age_s;

		if (sa->slot == EG_TABLE_NO_SA)
			continue;
		s = eg_shm_sa(st->shm.hdr, sa->slot);
		snapshot(st, sa);
		if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == EG_SA_STOPPED) {
			if (!sa->stop_reported) {
				uint32_t r = __atomic_load_n(&s->stop_reason, __ATOMIC_RELAXED);

				expiring(st, sa, true, r < 4 ? stop_names[r] : "stopped");
				sa->stop_reported = true;
				changed = true;
			}
			continue;
		}
		counters(st, sa->slot, &c);
		age_s = (eg_now_ns() - sa->installed_ns) / 1000000000ull;
		if (over(&sa->cfg.hard, &c, age_s)) {
			__atomic_store_n(&s->stop_reason, EG_SA_STOP_LIFETIME, __ATOMIC_RELAXED);
			__atomic_store_n(&s->state, EG_SA_STOPPED, __ATOMIC_RELEASE);
			expiring(st, sa, true, "lifetime");
			sa->stop_reported = true;
			changed = true;
		} else if (!sa->soft_reported && over(&sa->cfg.soft, &c, age_s)) {
			expiring(st, sa, false, "soft lifetime");
			sa->soft_reported = true;
		}
	}
	for (unsigned i = 0; i < ip->n_retiring;) {
		if (eg_shm_wait_grace(st->shm.hdr, ip->retiring[i].after_gen, 0) == 0 &&
		    eg_shm_generation(st->shm.hdr) >= ip->retiring[i].after_gen) {
			wipe(st, ip->retiring[i].slot);
			ip->retiring[i] = ip->retiring[--ip->n_retiring];
		} else {
			i++;
		}
	}
	return changed;
}

json_t *cp_ipsec_sa_json(const struct cp_state *st, const struct cp_sa *sa)
{
	json_t *o = eg_sa_cfg_to_json(&sa->cfg, false);
	static const char *const states[] = {"free", "active", "stopped"};

	if (sa->slot == EG_TABLE_NO_SA || !st->mapped) {
		json_object_set_new(o, "state", json_string("not installed"));
		return o;
	}
	struct eg_sa_slot *s = eg_shm_sa(st->shm.hdr, sa->slot);
	uint32_t state = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
	uint32_t reason = __atomic_load_n(&s->stop_reason, __ATOMIC_RELAXED);
	struct eg_sa_counters c;

	counters(st, sa->slot, &c);
	json_object_set_new(o, "state", json_string(state < 3 ? states[state] : "?"));
	if (state == EG_SA_STOPPED)
		json_object_set_new(o, "stop_reason", json_string(reason < 4 ? stop_names[reason] : "?"));
	json_object_set_new(o, "packets", json_integer((json_int_t)c.packets));
	json_object_set_new(o, "bytes", json_integer((json_int_t)c.bytes));
	json_object_set_new(o, "auth_failures", json_integer((json_int_t)c.auth_failures));
	json_object_set_new(o, "replays", json_integer((json_int_t)c.replays));
	json_object_set_new(o, "padding_errors", json_integer((json_int_t)c.padding_errors));
	json_object_set_new(o, "other_drops", json_integer((json_int_t)c.other_drops));
	if (sa->cfg.dir == EG_SA_DIR_OUT)
		json_object_set_new(o, "seq", json_integer((json_int_t)__atomic_load_n(&s->seq, __ATOMIC_RELAXED)));
	else
		json_object_set_new(o, "replay_top",
				    json_integer((json_int_t)__atomic_load_n(&eg_sa_replay(s)->top, __ATOMIC_RELAXED)));
	json_object_set_new(o, "age_s", json_integer((json_int_t)((eg_now_ns() - sa->installed_ns) / 1000000000ull)));
	json_object_set_new(o, "soft_expired", json_boolean(sa->soft_reported));
	return o;
}
