#include "wg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "msg_ring.h"
#include "rpc.h"
#include "state.h"

#define LOG(fmt, ...) fprintf(stderr, "egress-control: " fmt "\n", ##__VA_ARGS__)

enum {
	COOKIE_SECRET_S = 120,		/* the secret rotates, and a cookie expires, after this */
	INITIATIONS_MIN_MS = 20,	/* at most 50 initiations a second from one peer */
	JITTER_MAX_MS = 333,		/* added to REKEY_TIMEOUT between retries */
};

static const uint64_t NS = 1000000000ull;

static uint64_t now_ms(void)
{
	return eg_now_ns() / 1000000ull;
}

static uint64_t unix_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

static struct eg_wg_peer_slot *slot_of(const struct cp_state *st, const struct cp_wg_peer *p)
{
	return eg_shm_wg(st->shm.hdr, p->slot);
}

/* ---- setup ---- */

static int peer_new(struct cp_wg *wg, struct eg_wg_peer_cfg *cfg, struct cp_wg_peer **out)
{
	/* Plain heap, wiped when freed: guarded sodium_malloc pages for 10,000 peers would
	 * run into the locked-memory limit. */
	struct cp_wg_peer *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	if (wg_peer_keys_init(&p->keys, &wg->me, cfg->public_key, cfg->has_psk ? cfg->psk : NULL)) {
		sodium_memzero(p, sizeof(*p));
		free(p);
		return -EINVAL;
	}
	p->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));	/* allowed IPs moved, secrets not left behind */
	p->slot = EG_TABLE_NO_SA;
	*out = p;
	return 0;
}

static void peer_free(struct cp_wg_peer *p)
{
	for (unsigned k = 0; k < EG_WG_KEYPAIRS; k++)
		free(p->kp[k].snap);
	eg_wg_peer_wipe(&p->cfg);
	sodium_memzero(p, sizeof(*p));	/* keys, handshake, cookie */
	free(p);
}

int cp_wg_init(struct cp_wg *wg, struct eg_wg_cfg *cfg)
{
	memset(wg, 0, sizeof(*wg));
	if (!cfg->present)
		return 0;
	if (sodium_init() < 0)
		return -ENOTSUP;
	if (wg_identity_init(&wg->me, cfg->private_key))
		return -EINVAL;
	wg->present = true;
	wg->listen_port = cfg->listen_port;
	wg->timers = cfg->timers;
	wg->load_threshold = cfg->load_threshold;
	randombytes_buf(wg->cookie_secret, sizeof(wg->cookie_secret));
	wg->cookie_secret_ns = eg_now_ns();
	wg->cap = cfg->n_peers + 16;
	wg->peers = calloc(wg->cap, sizeof(*wg->peers));
	if (!wg->peers)
		return -ENOMEM;
	for (unsigned i = 0; i < cfg->n_peers; i++) {
		int rc = peer_new(wg, &cfg->peers[i], &wg->peers[wg->n]);

		if (rc)
			return rc;
		wg->n++;
	}
	return 0;
}

void cp_wg_free(struct cp_wg *wg)
{
	for (unsigned i = 0; i < wg->n; i++)
		peer_free(wg->peers[i]);
	free(wg->peers);
	free(wg->by_slot);
	sodium_memzero(wg, sizeof(*wg));
}

int cp_wg_find(const struct cp_wg *wg, const char *name)
{
	for (unsigned i = 0; i < wg->n; i++)
		if (strcmp(wg->peers[i]->cfg.name, name) == 0)
			return (int)i;
	return -1;
}

int cp_wg_find_key(const struct cp_wg *wg, const uint8_t pub[WG_KEY_LEN])
{
	for (unsigned i = 0; i < wg->n; i++)
		if (sodium_memcmp(wg->peers[i]->cfg.public_key, pub, WG_KEY_LEN) == 0)
			return (int)i;
	return -1;
}

/* ---- endpoints ---- */

/* The uplink that reaches addr: one whose subnet holds it, else one with a gateway. */
static int endpoint_port(const struct cp_state *st, uint8_t family, const uint8_t *addr)
{
	const struct eg_dataplane_cfg *dp = &st->cfg.dataplane;

	for (unsigned i = 0; i < dp->n_ports; i++) {
		const struct eg_port_cfg *p = &dp->ports[i];

		if (p->role == EG_ROLE_UPLINK && (family == EG_AF_INET ? p->has_ipv4 : p->has_ipv6) &&
		    eg_prefix_contains(family == EG_AF_INET ? &p->ipv4 : &p->ipv6, family, addr))
			return (int)i;
	}
	for (unsigned i = 0; i < dp->n_ports; i++) {
		const struct eg_port_cfg *p = &dp->ports[i];

		if (p->role == EG_ROLE_UPLINK && (family == EG_AF_INET ? p->has_gateway4 : p->has_gateway6))
			return (int)i;
	}
	return -1;
}

static void set_endpoint(struct cp_state *st, struct cp_wg_peer *p, const struct eg_wg_endpoint *ep)
{
	if (memcmp(&p->ep, ep, sizeof(*ep)) == 0)
		return;
	if (p->ep.family) {
		char a[EG_ADDR_STR_LEN], b[EG_ADDR_STR_LEN];

		LOG("wireguard peer %s: endpoint %s:%u -> %s:%u", p->cfg.name,
		    eg_addr_format(p->ep.family, p->ep.addr, a, sizeof(a)), p->ep.udp_port,
		    eg_addr_format(ep->family, ep->addr, b, sizeof(b)), ep->udp_port);
	}
	p->ep = *ep;
	if (st->mapped && p->slot != EG_TABLE_NO_SA)
		eg_wg_endpoint_write(slot_of(st, p), ep);
}

static void configured_endpoint(const struct cp_state *st, const struct cp_wg_peer *p, struct eg_wg_endpoint *ep)
{
	int port;

	memset(ep, 0, sizeof(*ep));
	if (!p->cfg.has_endpoint)
		return;
	port = endpoint_port(st, p->cfg.endpoint.family, p->cfg.endpoint.addr);
	if (port < 0)
		return;
	ep->family = p->cfg.endpoint.family;
	ep->port = (uint16_t)port;
	ep->udp_port = p->cfg.endpoint_port;
	memcpy(ep->addr, p->cfg.endpoint.addr, eg_addr_len(ep->family));
}

/* ---- sending ---- */

static bool send_to(struct cp_state *st, const struct eg_wg_endpoint *ep, const uint8_t *data, size_t len)
{
	struct eg_msg m;

	if (!st->mapped || ep->family == 0 || len > EG_MSG_DATA_MAX)
		return false;
	memset(&m, 0, offsetof(struct eg_msg, data));
	m.kind = EG_MSG_UDP_SEND;
	m.len = (uint16_t)len;
	m.port = ep->port;
	m.family = ep->family;
	m.local_port = st->wg.listen_port;
	m.remote_port = ep->udp_port;
	memcpy(m.remote, ep->addr, 16);
	memcpy(m.data, data, len);
	return eg_msg_put(eg_shm_inject(st->shm.hdr), &m);
}

static void reply_to(struct cp_state *st, const struct eg_msg *in, const uint8_t *data, size_t len)
{
	struct eg_wg_endpoint ep = {.family = in->family, .port = in->port, .udp_port = in->remote_port};

	memcpy(ep.addr, in->remote, 16);
	send_to(st, &ep, data, len);
}

/* ---- keypairs ---- */

static unsigned active_count(const struct cp_wg_peer *p)
{
	unsigned n = 0;

	for (unsigned k = 0; k < EG_WG_KEYPAIRS; k++)
		n += p->kp[k].used && !(p->hs_active && k == p->hs_kp);
	return n;
}

/* A free position, not waiting out a grace period; -1 when there is none. */
static int free_kp(const struct cp_wg_peer *p)
{
	for (unsigned k = 0; k < EG_WG_KEYPAIRS; k++)
		if (!p->kp[k].used && !p->kp[k].retiring)
			return (int)k;
	return -1;
}

/* Takes a keypair out of use: FREE in the slot now, wiped once every worker has moved on. */
static void retire_kp(struct cp_state *st, struct cp_wg_peer *p, unsigned k)
{
	struct cp_wg_kp *c = &p->kp[k];
	struct eg_wg_peer_slot *s;
	uint32_t cur = k;

	if (!c->used)
		return;
	c->used = false;
	sodium_memzero(&c->keys, sizeof(c->keys));
	if (!st->mapped || p->slot == EG_TABLE_NO_SA)
		return;
	s = slot_of(st, p);
	__atomic_compare_exchange_n(&s->send_kp, &cur, EG_WG_NO_KEYPAIR, false, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
	__atomic_store_n(&eg_wg_kp(s, k)->state, EG_WG_FREE, __ATOMIC_RELEASE);
	free(c->snap);
	c->snap = malloc(sizeof(uint64_t) * st->shm.hdr->n_workers);
	if (!c->snap) {
		/* Without a snapshot the position is never reused: safe, if wasteful. */
		c->retiring = true;
		return;
	}
	eg_shm_loops_snapshot(st->shm.hdr, c->snap);
	c->retiring = true;
}

/* Wipes retired keypairs no worker can still be using. */
static void reap(struct cp_state *st, struct cp_wg_peer *p)
{
	for (unsigned k = 0; k < EG_WG_KEYPAIRS; k++) {
		struct cp_wg_kp *c = &p->kp[k];

		if (!c->retiring || !c->snap || !eg_shm_loops_passed(st->shm.hdr, c->snap))
			continue;
		sodium_memzero(eg_wg_kp(slot_of(st, p), k), eg_wg_kp_stride());
		free(c->snap);
		c->snap = NULL;
		c->retiring = false;
	}
}

/* At most three sessions live (previous, current, next): making room retires the oldest
 * that is not the one being sent with. */
static void make_room(struct cp_state *st, struct cp_wg_peer *p)
{
	uint32_t sending = __atomic_load_n(&slot_of(st, p)->send_kp, __ATOMIC_ACQUIRE);

	while (active_count(p) >= EG_WG_KEYPAIRS - 1) {
		int oldest = -1;

		for (unsigned k = 0; k < EG_WG_KEYPAIRS; k++)
			if (p->kp[k].used && !(p->hs_active && k == p->hs_kp) && k != sending &&
			    (oldest < 0 || p->kp[k].serial < p->kp[oldest].serial))
				oldest = (int)k;
		if (oldest < 0)
			break;
		retire_kp(st, p, (unsigned)oldest);
	}
}

static void install_kp(struct cp_state *st, struct cp_wg_peer *p, unsigned k, const struct wg_keypair *keys)
{
	struct eg_wg_peer_slot *s = slot_of(st, p);
	struct eg_wg_keypair *x = eg_wg_kp(s, k);
	struct cp_wg_kp *c = &p->kp[k];

	sodium_memzero(x, eg_wg_kp_stride());
	x->local_index = keys->local_index;
	x->remote_index = keys->remote_index;
	x->initiator = keys->initiator;
	x->confirmed = keys->initiator;	/* a responder waits for the first packet */
	x->serial = ++st->wg.serial;
	x->created_ns = eg_now_ns();
	memcpy(x->send_key, keys->send, WG_KEY_LEN);
	memcpy(x->recv_key, keys->recv, WG_KEY_LEN);
	eg_replay_init(eg_wg_kp_replay(x), EG_WG_REPLAY_WINDOW);
	c->used = true;
	c->keys = *keys;
	c->created_ns = x->created_ns;
	c->serial = x->serial;
	__atomic_store_n(&x->state, EG_WG_ACTIVE, __ATOMIC_RELEASE);
	if (keys->initiator)
		__atomic_store_n(&s->send_kp, k, __ATOMIC_RELEASE);
	p->last_session_ns = c->created_ns;
	p->last_handshake_unix_ns = unix_ns();
	p->handshakes++;
}

/* The keypair workers send with, when it may be used. */
static int sending_kp(const struct cp_state *st, const struct cp_wg_peer *p)
{
	uint32_t k = __atomic_load_n(&slot_of(st, p)->send_kp, __ATOMIC_ACQUIRE);

	return k < EG_WG_KEYPAIRS && p->kp[k].used ? (int)k : -1;
}

static void send_keepalive(struct cp_state *st, struct cp_wg_peer *p)
{
	int k = sending_kp(st, p);
	uint8_t msg[WG_DATA_MIN_LEN];
	uint64_t counter;

	if (k < 0)
		return;
	counter = __atomic_fetch_add(&eg_wg_kp(slot_of(st, p), (unsigned)k)->send_counter, 1, __ATOMIC_RELAXED);
	if (counter >= st->wg.timers.reject_after_messages)
		return;
	wg_seal_data(&p->kp[k].keys, counter, NULL, 0, msg);
	if (send_to(st, &p->ep, msg, sizeof(msg)))
		p->last_keepalive_ms = now_ms();
}

/* ---- handshakes ---- */

static uint16_t random16(void)
{
	return (uint16_t)randombytes_uniform(65536);
}

static void end_handshake(struct cp_wg_peer *p)
{
	wg_handshake_wipe(&p->hs);
	p->hs_active = false;
}

/* Sends a fresh initiation (a new ephemeral each time, as the protocol wants). */
static void initiate(struct cp_state *st, struct cp_wg_peer *p)
{
	struct cp_wg *wg = &st->wg;
	uint8_t tai[WG_TAI64N_LEN], msg[WG_INITIATION_LEN];
	uint64_t now = eg_now_ns();
	int k;

	if (!st->mapped || p->slot == EG_TABLE_NO_SA || p->ep.family == 0)
		return;
	if (!p->hs_active) {
		make_room(st, p);
		k = free_kp(p);
		if (k < 0)
			return;		/* every position waits out a grace period: next tick */
		p->hs_kp = (unsigned)k;
		p->kp[k].used = true;	/* reserved for the session this brings */
		p->hs_first_ns = now;
		p->hs_active = true;
	}
	wg_handshake_wipe(&p->hs);
	wg_tai64n_now(tai);
	if (p->cookie_ns && now - p->cookie_ns >= (uint64_t)COOKIE_SECRET_S * NS)
		p->cookie_ns = 0;
	if (wg_create_initiation(&wg->me, &p->keys, &p->hs, eg_wg_index(p->slot, p->hs_kp, random16()), tai,
				 p->cookie_ns ? p->cookie : NULL, msg)) {
		p->kp[p->hs_kp].used = false;
		end_handshake(p);
		return;
	}
	memcpy(p->hs_mac1, msg + WG_INITIATION_LEN - 2 * WG_MAC_LEN, WG_MAC_LEN);
	/* REKEY_TIMEOUT plus jitter, so that both sides do not retry in lockstep. */
	p->hs_retry_after_ns = now + (uint64_t)wg->timers.rekey_timeout * NS +
			       (uint64_t)randombytes_uniform(JITTER_MAX_MS) * 1000000ull;
	send_to(st, &p->ep, msg, sizeof(msg));
}

/* Under load, a handshake message must carry a mac2 made with the cookie we would give its
 * source; otherwise the source gets that cookie and we do no Diffie-Hellman for it. */
static bool pass_load_check(struct cp_state *st, const struct eg_msg *m)
{
	struct cp_wg *wg = &st->wg;
	uint8_t src[18], cookie[WG_COOKIE_LEN], reply[WG_COOKIE_REPLY_LEN];
	size_t n = eg_addr_len(m->family);

	if (!wg->under_load)
		return true;
	memcpy(src, m->remote, n);
	src[n] = (uint8_t)(m->remote_port >> 8);
	src[n + 1] = (uint8_t)m->remote_port;
	wg_cookie_for(wg->cookie_secret, src, n + 2, cookie);
	if (wg_mac2_ok(cookie, m->data, m->len)) {
		sodium_memzero(cookie, sizeof(cookie));
		return true;
	}
	wg_create_cookie_reply(&wg->me, m->data, m->len, cookie, reply);
	sodium_memzero(cookie, sizeof(cookie));
	reply_to(st, m, reply, sizeof(reply));
	wg->cookie_replies_sent++;
	return false;
}

static void endpoint_from(const struct eg_msg *m, struct eg_wg_endpoint *ep)
{
	memset(ep, 0, sizeof(*ep));
	ep->family = m->family;
	ep->port = m->port;
	ep->udp_port = m->remote_port;
	memcpy(ep->addr, m->remote, eg_addr_len(m->family));
}

static void notify_handshake(struct cp_state *st, const struct cp_wg_peer *p, const char *role)
{
	if (st->rpc)
		cp_rpc_server_notify(st->rpc, "wg.handshake",
				     json_pack("{s:s,s:s}", "peer", p->cfg.name, "role", role));
}

static void on_initiation(struct cp_state *st, const struct eg_msg *m)
{
	struct cp_wg *wg = &st->wg;
	struct wg_handshake hs;
	struct wg_keypair kp;
	uint8_t pub[WG_KEY_LEN], tai[WG_TAI64N_LEN], reply[WG_RESPONSE_LEN];
	struct eg_wg_endpoint ep;
	struct cp_wg_peer *p;
	uint64_t now = eg_now_ns();
	int i, k;

	if (!wg_mac1_ok(&wg->me, m->data, m->len) || !pass_load_check(st, m))
		return;
	if (wg_consume_initiation(&wg->me, m->data, &hs, pub, tai))
		goto out;
	i = cp_wg_find_key(wg, pub);
	if (i < 0)
		goto out;
	p = wg->peers[i];
	if (p->slot == EG_TABLE_NO_SA)
		goto out;
	/* The timestamp must grow (replayed initiations), and a peer gets no more than 50
	 * handshakes a second out of us. */
	if (memcmp(tai, p->last_tai64n, WG_TAI64N_LEN) <= 0 ||
	    now - p->last_initiation_ns < (uint64_t)INITIATIONS_MIN_MS * 1000000ull) {
		wg->handshakes_dropped++;
		goto out;
	}
	make_room(st, p);
	k = free_kp(p);
	if (k < 0 || (p->hs_active && (unsigned)k == p->hs_kp)) {
		wg->handshakes_dropped++;
		goto out;
	}
	if (wg_create_response(&p->keys, &hs, eg_wg_index(p->slot, (unsigned)k, random16()), NULL, reply, &kp))
		goto out;
	memcpy(p->last_tai64n, tai, WG_TAI64N_LEN);
	p->last_initiation_ns = now;
	install_kp(st, p, (unsigned)k, &kp);
	endpoint_from(m, &ep);
	set_endpoint(st, p, &ep);
	reply_to(st, m, reply, sizeof(reply));
	notify_handshake(st, p, "responder");
out:
	wg_handshake_wipe(&hs);
	sodium_memzero(&kp, sizeof(kp));
}

/* The peer whose initiation in flight used this sender index, or NULL. */
static struct cp_wg_peer *initiator_for(struct cp_wg *wg, uint32_t index)
{
	uint32_t slot = eg_wg_index_slot(index);
	struct cp_wg_peer *p;

	if (slot >= wg->n_slots || wg->by_slot[slot] < 0)
		return NULL;
	p = wg->peers[wg->by_slot[slot]];
	return p->hs_active && p->hs.local_index == index ? p : NULL;
}

static void on_response(struct cp_state *st, const struct eg_msg *m)
{
	struct cp_wg *wg = &st->wg;
	struct cp_wg_peer *p;
	struct wg_keypair kp;
	struct eg_wg_endpoint ep;

	if (!wg_mac1_ok(&wg->me, m->data, m->len) || !pass_load_check(st, m))
		return;
	p = initiator_for(wg, wg_le32(m->data + 8));
	if (!p || wg_consume_response(&wg->me, &p->keys, &p->hs, m->data, &kp))
		return;
	make_room(st, p);
	install_kp(st, p, p->hs_kp, &kp);
	sodium_memzero(&kp, sizeof(kp));
	end_handshake(p);
	endpoint_from(m, &ep);
	set_endpoint(st, p, &ep);
	/* The responder may send only once it heard from us under the new keys. */
	send_keepalive(st, p);
	notify_handshake(st, p, "initiator");
}

static void on_cookie_reply(struct cp_state *st, const struct eg_msg *m)
{
	struct cp_wg_peer *p = initiator_for(&st->wg, wg_le32(m->data + 4));

	if (p && wg_consume_cookie_reply(&p->keys, m->data, p->hs_mac1, p->cookie) == 0)
		p->cookie_ns = eg_now_ns();
}

static void on_roam(struct cp_state *st, const struct eg_msg *m)
{
	struct cp_wg *wg = &st->wg;
	struct eg_wg_endpoint ep;

	if (m->peer_slot >= wg->n_slots || wg->by_slot[m->peer_slot] < 0 || m->port >= st->cfg.dataplane.n_ports)
		return;
	endpoint_from(m, &ep);
	set_endpoint(st, wg->peers[wg->by_slot[m->peer_slot]], &ep);
}

static void count_load(struct cp_wg *wg, uint64_t now)
{
	if (now - wg->rate_window_ns >= NS) {
		wg->under_load = wg->rate_count > wg->load_threshold;
		wg->rate_window_ns = now;
		wg->rate_count = 0;
	}
	if (++wg->rate_count > wg->load_threshold)
		wg->under_load = true;
}

void cp_wg_handle(struct cp_state *st, const struct eg_msg *m)
{
	if (!st->wg.present || st->shm.hdr->n_wg_slots == 0)
		return;
	if (m->kind == EG_MSG_WG_ROAM) {
		on_roam(st, m);
		return;
	}
	if (m->kind != EG_MSG_WG_HANDSHAKE || m->len < 4)
		return;
	/* More handshake messages in a second than the configured threshold put us under
	 * load: initiations and responses then need a valid mac2, and get a cookie reply
	 * otherwise. */
	count_load(&st->wg, eg_now_ns());
	switch (m->data[0]) {
	case WG_MSG_INITIATION:
		if (m->len == WG_INITIATION_LEN)
			on_initiation(st, m);
		break;
	case WG_MSG_RESPONSE:
		if (m->len == WG_RESPONSE_LEN)
			on_response(st, m);
		break;
	case WG_MSG_COOKIE_REPLY:
		if (m->len == WG_COOKIE_REPLY_LEN)
			on_cookie_reply(st, m);
		break;
	}
}

/* ---- timers (WireGuard paper 6) ---- */

static void peer_timers(struct cp_state *st, struct cp_wg_peer *p, uint64_t now)
{
	const struct eg_wg_timers *t = &st->wg.timers;
	struct eg_wg_peer_slot *s = slot_of(st, p);
	uint64_t ms = now / 1000000ull;
	uint64_t last_rx = __atomic_load_n(&s->last_rx_ms, __ATOMIC_RELAXED);
	uint64_t last_rx_data = __atomic_load_n(&s->last_rx_data_ms, __ATOMIC_RELAXED);
	uint64_t last_tx = __atomic_load_n(&s->last_tx_ms, __ATOMIC_RELAXED);
	uint64_t last_sent = last_tx > p->last_keepalive_ms ? last_tx : p->last_keepalive_ms;
	bool want = __atomic_exchange_n(&s->want_handshake, 0, __ATOMIC_RELAXED) != 0;
	int k;

	reap(st, p);
	/* Keypairs past REJECT_AFTER_TIME, or whose counters ran out, are done. */
	for (unsigned i = 0; i < EG_WG_KEYPAIRS; i++) {
		struct cp_wg_kp *c = &p->kp[i];

		if (!c->used || (p->hs_active && i == p->hs_kp))
			continue;
		if (now - c->created_ns >= (uint64_t)t->reject_after_time * NS ||
		    __atomic_load_n(&eg_wg_kp(s, i)->send_counter, __ATOMIC_RELAXED) >= t->reject_after_messages)
			retire_kp(st, p, i);
	}
	/* Nothing new for 3 x REJECT_AFTER_TIME: every trace of the sessions goes. */
	if (p->last_session_ns && now - p->last_session_ns >= 3ull * t->reject_after_time * NS) {
		p->last_session_ns = 0;
		p->cookie_ns = 0;
		sodium_memzero(p->cookie, sizeof(p->cookie));
	}
	/* On receive, renew early enough that the session does not expire under the peer's
	 * feet: REJECT - KEEPALIVE - REKEY_TIMEOUT (test timers may make that negative). */
	uint64_t renew_on_rx_s = t->reject_after_time > t->keepalive_timeout + t->rekey_timeout
					 ? t->reject_after_time - t->keepalive_timeout - t->rekey_timeout
					 : t->rekey_after_time;

	k = sending_kp(st, p);
	if (k >= 0) {
		uint64_t age = now - p->kp[k].created_ns, born_ms = p->kp[k].created_ns / 1000000ull;
		uint64_t heard = last_rx > born_ms ? last_rx : born_ms;

		/* The initiator of a session renews it: REKEY_AFTER_TIME when sending. */
		if (p->kp[k].keys.initiator &&
		    ((age >= (uint64_t)t->rekey_after_time * NS && ms - last_tx <= 1000) ||
		     (age >= renew_on_rx_s * NS && ms - last_rx <= 1000)))
			want = true;
		/* Data went out and nothing came back for KEEPALIVE + REKEY_TIMEOUT. */
		if (last_tx > heard && last_tx - heard >= (uint64_t)(t->keepalive_timeout + t->rekey_timeout) * 1000u)
			want = true;
	} else if (p->cfg.persistent_keepalive) {
		want = true;
	}
	if (p->hs_active) {
		if (now - p->hs_first_ns >= (uint64_t)t->rekey_attempt_time * NS) {
			/* REKEY_ATTEMPT_TIME: give up until traffic asks again. */
			p->kp[p->hs_kp].used = false;
			end_handshake(p);
		} else if (now >= p->hs_retry_after_ns) {
			initiate(st, p);
		}
	} else if (want && (k < 0 || now - p->kp[k].created_ns >= (uint64_t)t->rekey_timeout * NS)) {
		initiate(st, p);
	}
	if (k < 0)
		return;
	/* Keepalives: passive (we heard from the peer and said nothing for KEEPALIVE) and
	 * persistent (every persistent_keepalive seconds whatever happens). */
	if ((last_rx_data > last_sent && ms - last_rx_data >= 1000u * t->keepalive_timeout) ||
	    (p->cfg.persistent_keepalive && ms - last_sent >= 1000u * p->cfg.persistent_keepalive))
		send_keepalive(st, p);
}

void cp_wg_poll(struct cp_state *st)
{
	struct cp_wg *wg = &st->wg;
	uint64_t now;

	if (!wg->present || !st->mapped || st->shm.hdr->n_wg_slots == 0)
		return;
	now = eg_now_ns();
	if (now < wg->next_tick_ns)
		return;
	wg->next_tick_ns = now + 50 * 1000000ull;
	if (now - wg->cookie_secret_ns >= (uint64_t)COOKIE_SECRET_S * NS) {
		randombytes_buf(wg->cookie_secret, sizeof(wg->cookie_secret));
		wg->cookie_secret_ns = now;
	}
	if (now - wg->rate_window_ns >= 2 * NS)
		wg->under_load = false;
	for (unsigned i = 0; i < wg->n; i++)
		if (wg->peers[i]->slot != EG_TABLE_NO_SA)
			peer_timers(st, wg->peers[i], now);
}

/* ---- install / uninstall ---- */

/* Waits (up to 2 s, in this thread) until every worker finished the loop iteration it was
 * in: after that none holds anything it found before the call. */
static bool workers_moved_on(const struct eg_shm_hdr *h)
{
	uint64_t *snap = malloc(sizeof(uint64_t) * (h->n_workers + 1));
	uint64_t deadline = eg_now_ns() + 2 * NS;
	bool passed;

	if (!snap)
		return false;
	eg_shm_loops_snapshot(h, snap);
	while (!(passed = eg_shm_loops_passed(h, snap)) && eg_now_ns() < deadline) {
		struct timespec ts = {0, 100000};

		nanosleep(&ts, NULL);
	}
	free(snap);
	return passed;
}

static int install_peer(struct cp_state *st, unsigned i)
{
	struct cp_wg *wg = &st->wg;
	struct cp_wg_peer *p = wg->peers[i];
	struct eg_wg_peer_slot *s;
	struct eg_wg_endpoint ep;
	uint32_t slot;

	for (slot = 0; slot < wg->n_slots; slot++)
		if (wg->by_slot[slot] == -1)
			break;
	if (slot == wg->n_slots)
		return -ENOSPC;
	s = eg_shm_wg(st->shm.hdr, slot);
	sodium_memzero(s, st->shm.hdr->wg_stride);
	if (slot >= st->shm.hdr->wg_high)
		st->shm.hdr->wg_high = slot + 1;
	s->listen_port = wg->listen_port;
	s->send_kp = EG_WG_NO_KEYPAIR;
	p->slot = slot;
	wg->by_slot[slot] = (int32_t)i;
	memset(p->kp, 0, sizeof(p->kp));
	p->hs_active = false;
	memset(&p->ep, 0, sizeof(p->ep));
	configured_endpoint(st, p, &ep);
	set_endpoint(st, p, &ep);	/* into the slot too: install_peer runs mapped */
	__atomic_store_n(&s->state, EG_WG_ACTIVE, __ATOMIC_RELEASE);
	return 0;
}

void cp_wg_attach(struct cp_state *st)
{
	struct cp_wg *wg = &st->wg;
	struct eg_shm_hdr *h = st->shm.hdr;

	if (!wg->present)
		return;
	free(wg->by_slot);
	wg->n_slots = h->n_wg_slots;
	wg->by_slot = malloc(sizeof(*wg->by_slot) * (wg->n_slots + 1));
	if (!wg->by_slot) {
		wg->n_slots = 0;
		return;
	}
	for (uint32_t s = 0; s < wg->n_slots; s++)
		wg->by_slot[s] = -1;
	/* A previous control process's peers: their sessions start over, and their keys go
	 * once the workers moved on. */
	if (h->wg_high) {
		for (uint32_t s = 0; s < h->wg_high && s < wg->n_slots; s++)
			__atomic_store_n(&eg_shm_wg(h, s)->state, EG_WG_FREE, __ATOMIC_RELEASE);
		workers_moved_on(h);
		for (uint32_t s = 0; s < h->wg_high && s < wg->n_slots; s++)
			sodium_memzero(eg_shm_wg(h, s), h->wg_stride);
		h->wg_high = 0;
	}
	for (unsigned i = 0; i < wg->n; i++) {
		wg->peers[i]->slot = EG_TABLE_NO_SA;
		if (install_peer(st, i))
			LOG("wireguard peer %s: no slot in the dataplane", wg->peers[i]->cfg.name);
	}
}

void cp_wg_detach(struct cp_state *st)
{
	struct cp_wg *wg = &st->wg;

	for (unsigned i = 0; i < wg->n; i++) {
		struct cp_wg_peer *p = wg->peers[i];

		p->slot = EG_TABLE_NO_SA;
		end_handshake(p);
		for (unsigned k = 0; k < EG_WG_KEYPAIRS; k++) {
			free(p->kp[k].snap);
			sodium_memzero(&p->kp[k], sizeof(p->kp[k]));
		}
	}
	for (uint32_t s = 0; s < wg->n_slots; s++)
		wg->by_slot[s] = -1;
}

int cp_wg_table_inputs(const struct cp_state *st, const struct eg_egress_cfg *egs, unsigned n_egs,
		       uint32_t **egress_slot, struct eg_table_wg_peer **peers, unsigned *n_peers)
{
	const struct cp_wg *wg = &st->wg;

	*egress_slot = calloc(n_egs + 1, sizeof(**egress_slot));
	*peers = calloc(wg->n + 1, sizeof(**peers));
	*n_peers = 0;
	if (!*egress_slot || !*peers) {
		free(*egress_slot);
		free(*peers);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < n_egs; i++) {
		int j = egs[i].type == EG_EGRESS_WIREGUARD ? cp_wg_find(wg, egs[i].peer) : -1;

		(*egress_slot)[i] = j >= 0 && st->mapped ? wg->peers[j]->slot : EG_TABLE_NO_SA;
	}
	for (unsigned i = 0; i < wg->n && st->mapped; i++) {
		const struct cp_wg_peer *p = wg->peers[i];

		if (p->slot != EG_TABLE_NO_SA)
			(*peers)[(*n_peers)++] = (struct eg_table_wg_peer){
				.slot = p->slot, .allowed = p->cfg.allowed, .n_allowed = p->cfg.n_allowed};
	}
	return 0;
}

bool cp_wg_egress_up(const struct cp_state *st, const struct eg_egress_cfg *e)
{
	int j = cp_wg_find(&st->wg, e->peer);

	return j >= 0 && st->mapped && st->wg.peers[j]->slot != EG_TABLE_NO_SA;
}

/* ---- live changes ---- */

int cp_wg_peer_add(struct cp_state *st, struct eg_wg_peer_cfg *cfg)
{
	struct cp_wg *wg = &st->wg;
	struct cp_wg_peer *p;
	int rc;

	if (cp_wg_find(wg, cfg->name) >= 0 || cp_wg_find_key(wg, cfg->public_key) >= 0)
		return -EEXIST;
	if (wg->n >= EG_MAX_WG_PEERS)
		return -ENOSPC;
	if (wg->n == wg->cap) {
		struct cp_wg_peer **n = realloc(wg->peers, sizeof(*n) * wg->cap * 2);

		if (!n)
			return -ENOMEM;
		wg->peers = n;
		wg->cap *= 2;
	}
	rc = peer_new(wg, cfg, &p);
	if (rc)
		return rc;
	wg->peers[wg->n++] = p;
	if (st->mapped && install_peer(st, wg->n - 1)) {
		LOG("wireguard peer %s: no slot in the dataplane", p->cfg.name);
		return -ENOSPC;
	}
	return 0;
}

int cp_wg_peer_remove(struct cp_state *st, unsigned i)
{
	struct cp_wg *wg = &st->wg;
	struct cp_wg_peer *p = wg->peers[i];

	if (st->mapped && p->slot != EG_TABLE_NO_SA) {
		struct eg_wg_peer_slot *s = slot_of(st, p);

		/* No worker finds it from now on; once they all moved on, its keys go. */
		__atomic_store_n(&s->state, EG_WG_FREE, __ATOMIC_RELEASE);
		for (unsigned k = 0; k < EG_WG_KEYPAIRS; k++)
			__atomic_store_n(&eg_wg_kp(s, k)->state, EG_WG_FREE, __ATOMIC_RELEASE);
		if (workers_moved_on(st->shm.hdr)) {
			sodium_memzero(s, st->shm.hdr->wg_stride);
			wg->by_slot[p->slot] = -1;
		} else {
			LOG("wireguard peer %s: workers did not move on; its slot stays out of use", p->cfg.name);
		}
	}
	peer_free(p);
	memmove(&wg->peers[i], &wg->peers[i + 1], sizeof(*wg->peers) * (wg->n - i - 1));
	wg->n--;
	for (uint32_t s = 0; s < wg->n_slots; s++)
		if (wg->by_slot[s] > (int32_t)i)
			wg->by_slot[s]--;
	return 0;
}

/* ---- wg show ---- */

json_t *cp_wg_show(const struct cp_state *st)
{
	const struct cp_wg *wg = &st->wg;
	char key[45];
	json_t *peers = json_array(), *o;

	eg_wg_key_base64(wg->me.pub, key);
	o = json_pack("{s:s,s:i,s:b,s:I,s:I}", "public_key", key, "listen_port", wg->listen_port, "under_load",
		      wg->under_load, "cookie_replies_sent", (json_int_t)wg->cookie_replies_sent,
		      "handshakes_dropped", (json_int_t)wg->handshakes_dropped);
	for (unsigned i = 0; i < wg->n; i++) {
		const struct cp_wg_peer *p = wg->peers[i];
		json_t *po = eg_wg_peer_to_json(&p->cfg, false);
		uint64_t rx = 0, tx = 0;

		if (p->ep.family) {
			char a[EG_ADDR_STR_LEN], ep[EG_ADDR_STR_LEN + 10];

			eg_addr_format(p->ep.family, p->ep.addr, a, sizeof(a));
			snprintf(ep, sizeof(ep), p->ep.family == EG_AF_INET ? "%s:%u" : "[%s]:%u", a, p->ep.udp_port);
			json_object_set_new(po, "endpoint", json_string(ep));
		}
		if (st->mapped && p->slot != EG_TABLE_NO_SA) {
			for (unsigned w = 0; w < st->shm.hdr->n_workers; w++) {
				const struct eg_wg_counters *c =
					&eg_shm_wg_counters(st->shm.hdr, eg_shm_worker(st->shm.hdr, w))[p->slot];

				rx += c->rx_bytes;
				tx += c->tx_bytes;
			}
		}
		json_object_set_new(po, "latest_handshake", json_integer((json_int_t)(p->last_handshake_unix_ns / NS)));
		json_object_set_new(po, "rx_bytes", json_integer((json_int_t)rx));
		json_object_set_new(po, "tx_bytes", json_integer((json_int_t)tx));
		json_object_set_new(po, "handshakes", json_integer((json_int_t)p->handshakes));
		json_object_set_new(po, "session", json_boolean(st->mapped && p->slot != EG_TABLE_NO_SA &&
								sending_kp(st, p) >= 0));
		json_array_append_new(peers, po);
	}
	json_object_set_new(o, "peers", peers);
	return o;
}
