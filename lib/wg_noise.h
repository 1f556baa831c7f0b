/* The WireGuard handshake (Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s, as the WireGuard paper
 * defines it), its message formats, mac1/mac2 and cookie replies, and transport-data
 * sealing for the control side (keepalives, tests). Pure functions over caller-owned
 * state: no sockets, clocks or peer tables here. Every secret a function leaves behind in
 * its own frames is wiped; callers wipe what they own with wg_handshake_wipe and
 * sodium_memzero.
 *
 * Wire integers (message type, indexes, counters) are little-endian. */
#ifndef EG_WG_NOISE_H
#define EG_WG_NOISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
	WG_KEY_LEN = 32,
	WG_MAC_LEN = 16,
	WG_COOKIE_LEN = 16,
	WG_TAI64N_LEN = 12,
	WG_TAG_LEN = 16,
	WG_COOKIE_NONCE_LEN = 24,
	WG_MSG_INITIATION = 1,
	WG_MSG_RESPONSE = 2,
	WG_MSG_COOKIE_REPLY = 3,
	WG_MSG_DATA = 4,
	WG_INITIATION_LEN = 148,
	WG_RESPONSE_LEN = 92,
	WG_COOKIE_REPLY_LEN = 64,
	WG_DATA_HDR_LEN = 16,		/* type, receiver index, counter */
	WG_DATA_MIN_LEN = WG_DATA_HDR_LEN + WG_TAG_LEN,	/* a keepalive */
};

/* Our static identity, with the keys derived from it once. */
struct wg_identity {
	uint8_t priv[WG_KEY_LEN], pub[WG_KEY_LEN];
	uint8_t mac1_key[WG_KEY_LEN];	/* HASH("mac1----" || pub): checks mac1 sent to us */
	uint8_t cookie_key[WG_KEY_LEN];	/* HASH("cookie--" || pub): seals our cookie replies */
};

/* What we know of a peer, with what is derived from its key once. */
struct wg_peer_keys {
	uint8_t pub[WG_KEY_LEN];
	uint8_t psk[WG_KEY_LEN];	/* zeros when none */
	uint8_t mac1_key[WG_KEY_LEN];	/* HASH("mac1----" || peer pub): mac1 we send it */
	uint8_t cookie_key[WG_KEY_LEN];	/* opens the cookie replies it sends */
	uint8_t ss[WG_KEY_LEN];		/* DH(our static, its static) */
};

/* One handshake in progress, on either side. */
struct wg_handshake {
	uint8_t h[WG_KEY_LEN], ck[WG_KEY_LEN];
	uint8_t e_priv[WG_KEY_LEN], e_pub[WG_KEY_LEN];	/* ours */
	uint8_t remote_e[WG_KEY_LEN];
	uint32_t local_index, remote_index;
};

/* The transport keys a completed handshake gives one side. */
struct wg_keypair {
	uint8_t send[WG_KEY_LEN], recv[WG_KEY_LEN];
	uint32_t local_index, remote_index;
	bool initiator;
};

/* Generates a private key (clamped) and its public key. */
void wg_generate_private(uint8_t priv[WG_KEY_LEN]);
int wg_public_from_private(uint8_t pub[WG_KEY_LEN], const uint8_t priv[WG_KEY_LEN]);

/* 0, or -EINVAL for a private key whose public key cannot be computed. */
int wg_identity_init(struct wg_identity *id, const uint8_t priv[WG_KEY_LEN]);
/* 0, or -EINVAL when the DH with the peer's key is all zeros (a low-order point). psk may
 * be NULL. */
int wg_peer_keys_init(struct wg_peer_keys *pk, const struct wg_identity *me, const uint8_t pub[WG_KEY_LEN],
		      const uint8_t *psk);

/* TAI64N of the wall clock now (12 bytes: seconds + 2^62 big-endian, then nanoseconds). */
void wg_tai64n_now(uint8_t out[WG_TAI64N_LEN]);

/* Initiator: builds message 1 into out. cookie (16 bytes, or NULL) is the peer's latest
 * cookie, for mac2. The handshake keeps what the response needs. 0 or -EINVAL. */
int wg_create_initiation(const struct wg_identity *me, const struct wg_peer_keys *peer, struct wg_handshake *hs,
			 uint32_t sender_index, const uint8_t tai64n[WG_TAI64N_LEN], const uint8_t *cookie,
			 uint8_t out[WG_INITIATION_LEN]);

/* Responder: opens message 1 (mac1 must have been checked). On success *hs holds the
 * handshake, peer_pub the initiator's static key and tai64n its timestamp; the caller must
 * know the peer and see a timestamp newer than the last one before it answers. 0 or
 * -EBADMSG. */
int wg_consume_initiation(const struct wg_identity *me, const uint8_t msg[WG_INITIATION_LEN],
			  struct wg_handshake *hs, uint8_t peer_pub[WG_KEY_LEN], uint8_t tai64n[WG_TAI64N_LEN]);

/* Responder: message 2 for a consumed initiation, and our keypair. The handshake is wiped.
 * 0 or -EINVAL. */
int wg_create_response(const struct wg_peer_keys *peer, struct wg_handshake *hs, uint32_t sender_index,
		       const uint8_t *cookie, uint8_t out[WG_RESPONSE_LEN], struct wg_keypair *kp);

/* Initiator: opens message 2 (mac1 checked, receiver index ours) and derives our keypair.
 * The handshake is wiped on success. 0 or -EBADMSG. */
int wg_consume_response(const struct wg_identity *me, const struct wg_peer_keys *peer, struct wg_handshake *hs,
			const uint8_t msg[WG_RESPONSE_LEN], struct wg_keypair *kp);

/* mac1 and mac2 of a handshake message of len bytes (they are its last 32). */
bool wg_mac1_ok(const struct wg_identity *me, const uint8_t *msg, size_t len);
bool wg_mac2_ok(const uint8_t cookie[WG_COOKIE_LEN], const uint8_t *msg, size_t len);

/* The cookie for a source address (address bytes then port, as the caller encodes them)
 * under the current secret. */
void wg_cookie_for(const uint8_t secret[WG_KEY_LEN], const uint8_t *src, size_t src_len,
		   uint8_t cookie[WG_COOKIE_LEN]);
/* Under load: a cookie reply to a handshake message (its sender index and mac1). */
void wg_create_cookie_reply(const struct wg_identity *me, const uint8_t *msg, size_t len,
			    const uint8_t cookie[WG_COOKIE_LEN], uint8_t out[WG_COOKIE_REPLY_LEN]);
/* Initiator: the cookie from a reply to our message whose mac1 was mac1. 0 or -EBADMSG. */
int wg_consume_cookie_reply(const struct wg_peer_keys *peer, const uint8_t msg[WG_COOKIE_REPLY_LEN],
			    const uint8_t mac1[WG_MAC_LEN], uint8_t cookie[WG_COOKIE_LEN]);

/* The same three messages with the ephemeral key or nonce given instead of drawn at
 * random: for known-answer tests only (tests/lib/test_wg_kat.c). Reusing an ephemeral
 * key or a cookie nonce breaks the protocol's secrecy; the functions above never do. */
int wg_create_initiation_with_ephemeral(const struct wg_identity *me, const struct wg_peer_keys *peer,
					struct wg_handshake *hs, const uint8_t e_priv[WG_KEY_LEN],
					uint32_t sender_index, const uint8_t tai64n[WG_TAI64N_LEN],
					const uint8_t *cookie, uint8_t out[WG_INITIATION_LEN]);
int wg_create_response_with_ephemeral(const struct wg_peer_keys *peer, struct wg_handshake *hs,
				      const uint8_t e_priv[WG_KEY_LEN], uint32_t sender_index, const uint8_t *cookie,
				      uint8_t out[WG_RESPONSE_LEN], struct wg_keypair *kp);
void wg_create_cookie_reply_with_nonce(const struct wg_identity *me, const uint8_t *msg, size_t len,
				       const uint8_t cookie[WG_COOKIE_LEN], const uint8_t nonce[WG_COOKIE_NONCE_LEN],
				       uint8_t out[WG_COOKIE_REPLY_LEN]);

/* Transport data with libsodium (the control side and tests; workers use intel-ipsec-mb).
 * The payload is padded with zeros to a multiple of 16. Returns the message length. */
size_t wg_seal_data(const struct wg_keypair *kp, uint64_t counter, const uint8_t *payload, size_t len,
		    uint8_t *out);
/* Opens a type-4 message into out; returns the padded payload length, or -EBADMSG. The
 * caller checks the counter (read with wg_data_counter) against its replay window after. */
long wg_open_data(const struct wg_keypair *kp, const uint8_t *msg, size_t len, uint8_t *out);

static inline uint32_t wg_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t wg_data_counter(const uint8_t *msg)
{
	return (uint64_t)wg_le32(msg + 8) | (uint64_t)wg_le32(msg + 12) << 32;
}

void wg_handshake_wipe(struct wg_handshake *hs);

#endif
