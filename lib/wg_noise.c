#include "wg_noise.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "blake2s.h"

static const char construction[] = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
static const char identifier[] = "WireGuard v1 zx2c4 Jason@zx2c4.com";
static const char label_mac1[] = "mac1----";
static const char label_cookie[] = "cookie--";

/* Message layouts: offsets into the wire bytes. */
enum {
	INIT_SENDER = 4, INIT_EPHEMERAL = 8, INIT_STATIC = 40, INIT_TIMESTAMP = 88, INIT_MAC1 = 116, INIT_MAC2 = 132,
	RESP_SENDER = 4, RESP_RECEIVER = 8, RESP_EPHEMERAL = 12, RESP_EMPTY = 44, RESP_MAC1 = 60, RESP_MAC2 = 76,
	COOKIE_RECEIVER = 4, COOKIE_NONCE = 8, COOKIE_ENCRYPTED = 32,
	DATA_RECEIVER = 4, DATA_COUNTER = 8,
};

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static void put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

/* HASH(a || b) */
static void hash2(uint8_t out[WG_KEY_LEN], const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	struct eg_blake2s s;

	eg_blake2s_init(&s, WG_KEY_LEN, NULL, 0);
	eg_blake2s_update(&s, a, alen);
	eg_blake2s_update(&s, b, blen);
	eg_blake2s_final(&s, out);
}

/* h = HASH(h || data) */
static void mix_hash(uint8_t h[WG_KEY_LEN], const uint8_t *data, size_t len)
{
	hash2(h, h, WG_KEY_LEN, data, len);
}

/* The chaining key and hash every handshake starts from, and h with the responder's key. */
static void initial_state(uint8_t ck[WG_KEY_LEN], uint8_t h[WG_KEY_LEN], const uint8_t responder_pub[WG_KEY_LEN])
{
	eg_blake2s(ck, WG_KEY_LEN, NULL, 0, (const uint8_t *)construction, sizeof(construction) - 1);
	hash2(h, ck, WG_KEY_LEN, (const uint8_t *)identifier, sizeof(identifier) - 1);
	mix_hash(h, responder_pub, WG_KEY_LEN);
}

/* The handshake's AEAD: ChaCha20-Poly1305 with a zero nonce (each key seals once), the
 * hash as associated data. */
static void seal(uint8_t *out, const uint8_t key[WG_KEY_LEN], const uint8_t *in, size_t len,
		 const uint8_t h[WG_KEY_LEN])
{
	uint8_t nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES] = {0};

	crypto_aead_chacha20poly1305_ietf_encrypt(out, NULL, in, len, h, WG_KEY_LEN, NULL, nonce, key);
}

static int open_(uint8_t *out, const uint8_t key[WG_KEY_LEN], const uint8_t *in, size_t len,
		 const uint8_t h[WG_KEY_LEN])
{
	uint8_t nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES] = {0};

	return crypto_aead_chacha20poly1305_ietf_decrypt(out, NULL, NULL, in, len, h, WG_KEY_LEN, nonce, key);
}

/* A DH result of all zeros means a low-order point: libsodium refuses it with -1. */
static int dh(uint8_t out[WG_KEY_LEN], const uint8_t priv[WG_KEY_LEN], const uint8_t pub[WG_KEY_LEN])
{
	return crypto_scalarmult(out, priv, pub) == 0 ? 0 : -EINVAL;
}

static void mac(uint8_t out[WG_MAC_LEN], const uint8_t key[WG_KEY_LEN], const uint8_t *msg, size_t len)
{
	eg_blake2s(out, WG_MAC_LEN, key, WG_KEY_LEN, msg, len);
}

void wg_generate_private(uint8_t priv[WG_KEY_LEN])
{
	randombytes_buf(priv, WG_KEY_LEN);
	priv[0] &= 248;
	priv[31] = (uint8_t)((priv[31] & 127) | 64);
}

int wg_public_from_private(uint8_t pub[WG_KEY_LEN], const uint8_t priv[WG_KEY_LEN])
{
	return crypto_scalarmult_base(pub, priv) == 0 ? 0 : -EINVAL;
}

int wg_identity_init(struct wg_identity *id, const uint8_t priv[WG_KEY_LEN])
{
	memcpy(id->priv, priv, WG_KEY_LEN);
	if (wg_public_from_private(id->pub, priv) != 0) {
		sodium_memzero(id, sizeof(*id));
		return -EINVAL;
	}
	hash2(id->mac1_key, (const uint8_t *)label_mac1, 8, id->pub, WG_KEY_LEN);
	hash2(id->cookie_key, (const uint8_t *)label_cookie, 8, id->pub, WG_KEY_LEN);
	return 0;
}

int wg_peer_keys_init(struct wg_peer_keys *pk, const struct wg_identity *me, const uint8_t pub[WG_KEY_LEN],
		      const uint8_t *psk)
{
	memset(pk, 0, sizeof(*pk));
	memcpy(pk->pub, pub, WG_KEY_LEN);
	if (psk)
		memcpy(pk->psk, psk, WG_KEY_LEN);
	hash2(pk->mac1_key, (const uint8_t *)label_mac1, 8, pub, WG_KEY_LEN);
	hash2(pk->cookie_key, (const uint8_t *)label_cookie, 8, pub, WG_KEY_LEN);
	if (dh(pk->ss, me->priv, pub) != 0) {
		sodium_memzero(pk, sizeof(*pk));
		return -EINVAL;
	}
	return 0;
}

void wg_tai64n_now(uint8_t out[WG_TAI64N_LEN])
{
	struct timespec ts;
	uint64_t secs;

	clock_gettime(CLOCK_REALTIME, &ts);
	secs = 0x400000000000000aull + (uint64_t)ts.tv_sec;	/* TAI64 label, as WireGuard writes it */
	for (unsigned i = 0; i < 8; i++)
		out[i] = (uint8_t)(secs >> (56 - 8 * i));
	for (unsigned i = 0; i < 4; i++)
		out[8 + i] = (uint8_t)((uint32_t)ts.tv_nsec >> (24 - 8 * i));
}

/* The two MACs at the end of a handshake message we send. */
static void add_macs(uint8_t *msg, size_t len, const uint8_t mac1_key[WG_KEY_LEN], const uint8_t *cookie)
{
	mac(msg + len - 2 * WG_MAC_LEN, mac1_key, msg, len - 2 * WG_MAC_LEN);
	/* mac2 only with a fresh cookie from the peer (it is under load), else zeros. */
	if (cookie)
		eg_blake2s(msg + len - WG_MAC_LEN, WG_MAC_LEN, cookie, WG_COOKIE_LEN, msg, len - WG_MAC_LEN);
	else
		memset(msg + len - WG_MAC_LEN, 0, WG_MAC_LEN);
}

int wg_create_initiation(const struct wg_identity *me, const struct wg_peer_keys *peer, struct wg_handshake *hs,
			 uint32_t sender_index, const uint8_t tai64n[WG_TAI64N_LEN], const uint8_t *cookie,
			 uint8_t out[WG_INITIATION_LEN])
{
	uint8_t e_priv[WG_KEY_LEN];
	int rc;

	wg_generate_private(e_priv);
	rc = wg_create_initiation_with_ephemeral(me, peer, hs, e_priv, sender_index, tai64n, cookie, out);
	sodium_memzero(e_priv, sizeof(e_priv));
	return rc;
}

int wg_create_initiation_with_ephemeral(const struct wg_identity *me, const struct wg_peer_keys *peer,
					struct wg_handshake *hs, const uint8_t e_priv[WG_KEY_LEN],
					uint32_t sender_index, const uint8_t tai64n[WG_TAI64N_LEN],
					const uint8_t *cookie, uint8_t out[WG_INITIATION_LEN])
{
	uint8_t k[WG_KEY_LEN], shared[WG_KEY_LEN];
	int rc = -EINVAL;

	memset(hs, 0, sizeof(*hs));
	memset(out, 0, WG_INITIATION_LEN);
	out[0] = WG_MSG_INITIATION;
	put_le32(out + INIT_SENDER, sender_index);
	hs->local_index = sender_index;
	initial_state(hs->ck, hs->h, peer->pub);
	memcpy(hs->e_priv, e_priv, WG_KEY_LEN);
	if (wg_public_from_private(hs->e_pub, hs->e_priv) != 0)
		goto out;
	eg_hkdf_blake2s(hs->ck, NULL, NULL, 1, hs->ck, hs->e_pub, WG_KEY_LEN);
	memcpy(out + INIT_EPHEMERAL, hs->e_pub, WG_KEY_LEN);
	mix_hash(hs->h, hs->e_pub, WG_KEY_LEN);
	if (dh(shared, hs->e_priv, peer->pub) != 0)
		goto out;
	eg_hkdf_blake2s(hs->ck, k, NULL, 2, hs->ck, shared, WG_KEY_LEN);
	seal(out + INIT_STATIC, k, me->pub, WG_KEY_LEN, hs->h);
	mix_hash(hs->h, out + INIT_STATIC, WG_KEY_LEN + WG_TAG_LEN);
	eg_hkdf_blake2s(hs->ck, k, NULL, 2, hs->ck, peer->ss, WG_KEY_LEN);
	seal(out + INIT_TIMESTAMP, k, tai64n, WG_TAI64N_LEN, hs->h);
	mix_hash(hs->h, out + INIT_TIMESTAMP, WG_TAI64N_LEN + WG_TAG_LEN);
	add_macs(out, WG_INITIATION_LEN, peer->mac1_key, cookie);
	rc = 0;
out:
	sodium_memzero(k, sizeof(k));
	sodium_memzero(shared, sizeof(shared));
	if (rc)
		wg_handshake_wipe(hs);
	return rc;
}

int wg_consume_initiation(const struct wg_identity *me, const uint8_t msg[WG_INITIATION_LEN],
			  struct wg_handshake *hs, uint8_t peer_pub[WG_KEY_LEN], uint8_t tai64n[WG_TAI64N_LEN])
{
	uint8_t k[WG_KEY_LEN], shared[WG_KEY_LEN];
	int rc = -EBADMSG;

	memset(hs, 0, sizeof(*hs));
	if (msg[0] != WG_MSG_INITIATION || msg[1] || msg[2] || msg[3])
		return -EBADMSG;
	hs->remote_index = wg_le32(msg + INIT_SENDER);
	initial_state(hs->ck, hs->h, me->pub);
	memcpy(hs->remote_e, msg + INIT_EPHEMERAL, WG_KEY_LEN);
	eg_hkdf_blake2s(hs->ck, NULL, NULL, 1, hs->ck, hs->remote_e, WG_KEY_LEN);
	mix_hash(hs->h, hs->remote_e, WG_KEY_LEN);
	if (dh(shared, me->priv, hs->remote_e) != 0)
		goto out;
	eg_hkdf_blake2s(hs->ck, k, NULL, 2, hs->ck, shared, WG_KEY_LEN);
	if (open_(peer_pub, k, msg + INIT_STATIC, WG_KEY_LEN + WG_TAG_LEN, hs->h) != 0)
		goto out;
	mix_hash(hs->h, msg + INIT_STATIC, WG_KEY_LEN + WG_TAG_LEN);
	if (dh(shared, me->priv, peer_pub) != 0)
		goto out;
	eg_hkdf_blake2s(hs->ck, k, NULL, 2, hs->ck, shared, WG_KEY_LEN);
	if (open_(tai64n, k, msg + INIT_TIMESTAMP, WG_TAI64N_LEN + WG_TAG_LEN, hs->h) != 0)
		goto out;
	mix_hash(hs->h, msg + INIT_TIMESTAMP, WG_TAI64N_LEN + WG_TAG_LEN);
	rc = 0;
out:
	sodium_memzero(k, sizeof(k));
	sodium_memzero(shared, sizeof(shared));
	if (rc)
		wg_handshake_wipe(hs);
	return rc;
}

/* Both sides, after message 2: the transport keys from the final chaining key. */
static void derive_keypair(struct wg_handshake *hs, struct wg_keypair *kp, bool initiator)
{
	uint8_t t1[WG_KEY_LEN], t2[WG_KEY_LEN];

	eg_hkdf_blake2s(t1, t2, NULL, 2, hs->ck, NULL, 0);
	memcpy(initiator ? kp->send : kp->recv, t1, WG_KEY_LEN);
	memcpy(initiator ? kp->recv : kp->send, t2, WG_KEY_LEN);
	kp->local_index = hs->local_index;
	kp->remote_index = hs->remote_index;
	kp->initiator = initiator;
	sodium_memzero(t1, sizeof(t1));
	sodium_memzero(t2, sizeof(t2));
	wg_handshake_wipe(hs);
}

/* Message 2's key schedule after the ephemeral: both DHs, then the preshared key. */
static void response_keys(struct wg_handshake *hs, const uint8_t dh_ee[WG_KEY_LEN], const uint8_t dh_es[WG_KEY_LEN],
			  const uint8_t psk[WG_KEY_LEN], uint8_t k[WG_KEY_LEN])
{
	uint8_t t[WG_KEY_LEN];

	eg_hkdf_blake2s(hs->ck, NULL, NULL, 1, hs->ck, dh_ee, WG_KEY_LEN);
	eg_hkdf_blake2s(hs->ck, NULL, NULL, 1, hs->ck, dh_es, WG_KEY_LEN);
	eg_hkdf_blake2s(hs->ck, t, k, 3, hs->ck, psk, WG_KEY_LEN);
	mix_hash(hs->h, t, WG_KEY_LEN);
	sodium_memzero(t, sizeof(t));
}

int wg_create_response(const struct wg_peer_keys *peer, struct wg_handshake *hs, uint32_t sender_index,
		       const uint8_t *cookie, uint8_t out[WG_RESPONSE_LEN], struct wg_keypair *kp)
{
	uint8_t e_priv[WG_KEY_LEN];
	int rc;

	wg_generate_private(e_priv);
	rc = wg_create_response_with_ephemeral(peer, hs, e_priv, sender_index, cookie, out, kp);
	sodium_memzero(e_priv, sizeof(e_priv));
	return rc;
}

int wg_create_response_with_ephemeral(const struct wg_peer_keys *peer, struct wg_handshake *hs,
				      const uint8_t e_priv[WG_KEY_LEN], uint32_t sender_index, const uint8_t *cookie,
				      uint8_t out[WG_RESPONSE_LEN], struct wg_keypair *kp)
{
	uint8_t k[WG_KEY_LEN], ee[WG_KEY_LEN], es[WG_KEY_LEN];
	int rc = -EINVAL;

	memset(out, 0, WG_RESPONSE_LEN);
	out[0] = WG_MSG_RESPONSE;
	put_le32(out + RESP_SENDER, sender_index);
	put_le32(out + RESP_RECEIVER, hs->remote_index);
	hs->local_index = sender_index;
	memcpy(hs->e_priv, e_priv, WG_KEY_LEN);
	if (wg_public_from_private(hs->e_pub, hs->e_priv) != 0)
		goto out;
	eg_hkdf_blake2s(hs->ck, NULL, NULL, 1, hs->ck, hs->e_pub, WG_KEY_LEN);
	memcpy(out + RESP_EPHEMERAL, hs->e_pub, WG_KEY_LEN);
	mix_hash(hs->h, hs->e_pub, WG_KEY_LEN);
	if (dh(ee, hs->e_priv, hs->remote_e) != 0 || dh(es, hs->e_priv, peer->pub) != 0)
		goto out;
	response_keys(hs, ee, es, peer->psk, k);
	seal(out + RESP_EMPTY, k, NULL, 0, hs->h);
	mix_hash(hs->h, out + RESP_EMPTY, WG_TAG_LEN);
	add_macs(out, WG_RESPONSE_LEN, peer->mac1_key, cookie);
	derive_keypair(hs, kp, false);
	rc = 0;
out:
	sodium_memzero(k, sizeof(k));
	sodium_memzero(ee, sizeof(ee));
	sodium_memzero(es, sizeof(es));
	if (rc)
		wg_handshake_wipe(hs);
	return rc;
}

int wg_consume_response(const struct wg_identity *me, const struct wg_peer_keys *peer, struct wg_handshake *hs,
			const uint8_t msg[WG_RESPONSE_LEN], struct wg_keypair *kp)
{
	struct wg_handshake try = *hs;	/* a forged response must not spoil the real one */
	uint8_t k[WG_KEY_LEN], ee[WG_KEY_LEN], se[WG_KEY_LEN];
	int rc = -EBADMSG;

	if (msg[0] != WG_MSG_RESPONSE || msg[1] || msg[2] || msg[3] || wg_le32(msg + RESP_RECEIVER) != hs->local_index)
		goto out;
	try.remote_index = wg_le32(msg + RESP_SENDER);
	memcpy(try.remote_e, msg + RESP_EPHEMERAL, WG_KEY_LEN);
	eg_hkdf_blake2s(try.ck, NULL, NULL, 1, try.ck, try.remote_e, WG_KEY_LEN);
	mix_hash(try.h, try.remote_e, WG_KEY_LEN);
	if (dh(ee, try.e_priv, try.remote_e) != 0 || dh(se, me->priv, try.remote_e) != 0)
		goto out;
	response_keys(&try, ee, se, peer->psk, k);
	if (open_(NULL, k, msg + RESP_EMPTY, WG_TAG_LEN, try.h) != 0)
		goto out;
	mix_hash(try.h, msg + RESP_EMPTY, WG_TAG_LEN);
	derive_keypair(&try, kp, true);
	wg_handshake_wipe(hs);
	rc = 0;
out:
	sodium_memzero(k, sizeof(k));
	sodium_memzero(ee, sizeof(ee));
	sodium_memzero(se, sizeof(se));
	wg_handshake_wipe(&try);
	return rc;
}

bool wg_mac1_ok(const struct wg_identity *me, const uint8_t *msg, size_t len)
{
	uint8_t m[WG_MAC_LEN];

	if (len < 2 * WG_MAC_LEN)
		return false;
	mac(m, me->mac1_key, msg, len - 2 * WG_MAC_LEN);
	return sodium_memcmp(m, msg + len - 2 * WG_MAC_LEN, WG_MAC_LEN) == 0;
}

bool wg_mac2_ok(const uint8_t cookie[WG_COOKIE_LEN], const uint8_t *msg, size_t len)
{
	uint8_t m[WG_MAC_LEN];

	if (len < 2 * WG_MAC_LEN)
		return false;
	eg_blake2s(m, WG_MAC_LEN, cookie, WG_COOKIE_LEN, msg, len - WG_MAC_LEN);
	return sodium_memcmp(m, msg + len - WG_MAC_LEN, WG_MAC_LEN) == 0;
}

void wg_cookie_for(const uint8_t secret[WG_KEY_LEN], const uint8_t *src, size_t src_len,
		   uint8_t cookie[WG_COOKIE_LEN])
{
	mac(cookie, secret, src, src_len);
}

void wg_create_cookie_reply(const struct wg_identity *me, const uint8_t *msg, size_t len,
			    const uint8_t cookie[WG_COOKIE_LEN], uint8_t out[WG_COOKIE_REPLY_LEN])
{
	uint8_t nonce[WG_COOKIE_NONCE_LEN];

	randombytes_buf(nonce, sizeof(nonce));
	wg_create_cookie_reply_with_nonce(me, msg, len, cookie, nonce, out);
}

void wg_create_cookie_reply_with_nonce(const struct wg_identity *me, const uint8_t *msg, size_t len,
				       const uint8_t cookie[WG_COOKIE_LEN], const uint8_t nonce[WG_COOKIE_NONCE_LEN],
				       uint8_t out[WG_COOKIE_REPLY_LEN])
{
	memset(out, 0, WG_COOKIE_REPLY_LEN);
	out[0] = WG_MSG_COOKIE_REPLY;
	memcpy(out + COOKIE_RECEIVER, msg + INIT_SENDER, 4);	/* the sender index: at 4 in both */
	memcpy(out + COOKIE_NONCE, nonce, WG_COOKIE_NONCE_LEN);
	/* Sealed to the mac1 it answers, so only that message's sender can use it. */
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + COOKIE_ENCRYPTED, NULL, cookie, WG_COOKIE_LEN,
						   msg + len - 2 * WG_MAC_LEN, WG_MAC_LEN, NULL, out + COOKIE_NONCE,
						   me->cookie_key);
}

int wg_consume_cookie_reply(const struct wg_peer_keys *peer, const uint8_t msg[WG_COOKIE_REPLY_LEN],
			    const uint8_t mac1[WG_MAC_LEN], uint8_t cookie[WG_COOKIE_LEN])
{
	if (msg[0] != WG_MSG_COOKIE_REPLY || msg[1] || msg[2] || msg[3])
		return -EBADMSG;
	return crypto_aead_xchacha20poly1305_ietf_decrypt(cookie, NULL, NULL, msg + COOKIE_ENCRYPTED,
							  WG_COOKIE_LEN + WG_TAG_LEN, mac1, WG_MAC_LEN,
							  msg + COOKIE_NONCE, peer->cookie_key) == 0 ? 0 : -EBADMSG;
}

static void data_nonce(uint8_t nonce[12], uint64_t counter)
{
	memset(nonce, 0, 4);
	put_le64(nonce + 4, counter);
}

size_t wg_seal_data(const struct wg_keypair *kp, uint64_t counter, const uint8_t *payload, size_t len,
		    uint8_t *out)
{
	size_t padded = (len + 15) & ~(size_t)15;
	uint8_t nonce[12];

	memset(out, 0, WG_DATA_HDR_LEN);
	out[0] = WG_MSG_DATA;
	put_le32(out + DATA_RECEIVER, kp->remote_index);
	put_le64(out + DATA_COUNTER, counter);
	if (len)		/* a keepalive may come with no buffer at all */
		memmove(out + WG_DATA_HDR_LEN, payload, len);
	memset(out + WG_DATA_HDR_LEN + len, 0, padded - len);
	data_nonce(nonce, counter);
	crypto_aead_chacha20poly1305_ietf_encrypt(out + WG_DATA_HDR_LEN, NULL, out + WG_DATA_HDR_LEN, padded, NULL, 0,
						  NULL, nonce, kp->send);
	return WG_DATA_HDR_LEN + padded + WG_TAG_LEN;
}

long wg_open_data(const struct wg_keypair *kp, const uint8_t *msg, size_t len, uint8_t *out)
{
	uint8_t nonce[12];
	unsigned long long plain;

	if (len < WG_DATA_MIN_LEN || msg[0] != WG_MSG_DATA || msg[1] || msg[2] || msg[3] ||
	    wg_le32(msg + DATA_RECEIVER) != kp->local_index)
		return -EBADMSG;
	data_nonce(nonce, wg_data_counter(msg));
	if (crypto_aead_chacha20poly1305_ietf_decrypt(out, &plain, NULL, msg + WG_DATA_HDR_LEN, len - WG_DATA_HDR_LEN,
						      NULL, 0, nonce, kp->recv) != 0)
		return -EBADMSG;
	return (long)plain;
}

void wg_handshake_wipe(struct wg_handshake *hs)
{
	sodium_memzero(hs, sizeof(*hs));
}
