/* The WireGuard handshake (lib/wg_noise.c) between our own initiator and responder: both
 * sides derive mirrored transport keys, with and without a preshared key; any flipped
 * byte of either message is refused; a wrong preshared key or an unknown responder key
 * fails; mac1, mac2 and cookie replies check out and refuse forgeries; transport data
 * round-trips and refuses tampering. Interop with wireguard-go is tests/integration/
 * wg_interop.sh. */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "wg_noise.h"

struct side {
	struct wg_identity id;
	struct wg_peer_keys peer;
};

static void pair(struct side *i, struct side *r, const uint8_t *psk_i, const uint8_t *psk_r)
{
	uint8_t a[WG_KEY_LEN], b[WG_KEY_LEN];

	cr_assert_eq(sodium_init() >= 0, true);
	wg_generate_private(a);
	wg_generate_private(b);
	cr_assert_eq(wg_identity_init(&i->id, a), 0);
	cr_assert_eq(wg_identity_init(&r->id, b), 0);
	cr_assert_eq(wg_peer_keys_init(&i->peer, &i->id, r->id.pub, psk_i), 0);
	cr_assert_eq(wg_peer_keys_init(&r->peer, &r->id, i->id.pub, psk_r), 0);
}

/* A full handshake; returns 0 when both sides hold mirrored keys. */
static int handshake(struct side *i, struct side *r, struct wg_keypair *ki, struct wg_keypair *kr, int flip1,
		     int flip2)
{
	struct wg_handshake hi, hr;
	uint8_t m1[WG_INITIATION_LEN], m2[WG_RESPONSE_LEN], ts[WG_TAI64N_LEN], ts_seen[WG_TAI64N_LEN],
		who[WG_KEY_LEN];

	wg_tai64n_now(ts);
	cr_assert_eq(wg_create_initiation(&i->id, &i->peer, &hi, 0x11223344, ts, NULL, m1), 0);
	cr_assert(wg_mac1_ok(&r->id, m1, sizeof(m1)));
	if (flip1 >= 0)
		m1[flip1 / 8] ^= (uint8_t)(1u << (flip1 % 8));
	if (!wg_mac1_ok(&r->id, m1, sizeof(m1)))
		return -1;
	if (wg_consume_initiation(&r->id, m1, &hr, who, ts_seen) != 0)
		return -2;
	cr_assert_eq(memcmp(who, i->id.pub, WG_KEY_LEN), 0, "the responder learns the initiator");
	cr_assert_eq(memcmp(ts, ts_seen, WG_TAI64N_LEN), 0);
	cr_assert_eq(wg_create_response(&r->peer, &hr, 0x55667788, NULL, m2, kr), 0);
	cr_assert(wg_mac1_ok(&i->id, m2, sizeof(m2)));
	if (flip2 >= 0)
		m2[flip2 / 8] ^= (uint8_t)(1u << (flip2 % 8));
	/* Indexes are outside the Noise transcript: mac1 is what covers them. */
	if (!wg_mac1_ok(&i->id, m2, sizeof(m2)) || wg_consume_response(&i->id, &i->peer, &hi, m2, ki) != 0)
		return -3;
	cr_assert_eq(ki->local_index, 0x11223344);
	cr_assert_eq(ki->remote_index, 0x55667788);
	cr_assert_eq(kr->remote_index, 0x11223344);
	return memcmp(ki->send, kr->recv, WG_KEY_LEN) == 0 && memcmp(ki->recv, kr->send, WG_KEY_LEN) == 0 &&
			       memcmp(ki->send, ki->recv, WG_KEY_LEN) != 0
		       ? 0
		       : -4;
}

Test(wg_noise, keys_mirror_without_and_with_psk)
{
	struct side i, r;
	struct wg_keypair ki, kr;
	uint8_t psk[WG_KEY_LEN];

	pair(&i, &r, NULL, NULL);
	cr_assert_eq(handshake(&i, &r, &ki, &kr, -1, -1), 0);
	randombytes_buf(psk, sizeof(psk));
	pair(&i, &r, psk, psk);
	cr_assert_eq(handshake(&i, &r, &ki, &kr, -1, -1), 0);
}

Test(wg_noise, a_wrong_psk_fails_at_the_response)
{
	struct side i, r;
	struct wg_keypair ki, kr;
	uint8_t psk[WG_KEY_LEN], other[WG_KEY_LEN];

	randombytes_buf(psk, sizeof(psk));
	randombytes_buf(other, sizeof(other));
	pair(&i, &r, psk, other);
	cr_assert_eq(handshake(&i, &r, &ki, &kr, -1, -1), -3);
}

Test(wg_noise, every_flipped_bit_is_refused)
{
	struct side i, r;
	struct wg_keypair ki, kr;

	pair(&i, &r, NULL, NULL);
	/* Message 1 up to mac2 (mac2 is not checked without load); message 2 up to mac1 (the
	 * initiator checks mac1 before it opens the message, in the caller). */
	for (int bit = 0; bit < 8 * (WG_INITIATION_LEN - WG_MAC_LEN); bit += 3)
		cr_assert_lt(handshake(&i, &r, &ki, &kr, bit, -1), 0, "message 1 bit %d", bit);
	for (int bit = 0; bit < 8 * (WG_RESPONSE_LEN - 2 * WG_MAC_LEN); bit += 3)
		cr_assert_lt(handshake(&i, &r, &ki, &kr, -1, bit), 0, "message 2 bit %d", bit);
}

Test(wg_noise, an_initiation_for_another_responder_fails)
{
	struct side i, r, x;
	struct wg_handshake hs;
	uint8_t m1[WG_INITIATION_LEN], ts[WG_TAI64N_LEN], who[WG_KEY_LEN];

	pair(&i, &r, NULL, NULL);
	pair(&x, &x, NULL, NULL);
	wg_tai64n_now(ts);
	cr_assert_eq(wg_create_initiation(&i.id, &i.peer, &hs, 1, ts, NULL, m1), 0);
	cr_assert(!wg_mac1_ok(&x.id, m1, sizeof(m1)));
	cr_assert_eq(wg_consume_initiation(&x.id, m1, &hs, who, ts), -EBADMSG);
}

Test(wg_noise, cookie_reply_and_mac2)
{
	struct side i, r;
	struct wg_handshake hs;
	uint8_t m1[WG_INITIATION_LEN], reply[WG_COOKIE_REPLY_LEN], ts[WG_TAI64N_LEN], secret[WG_KEY_LEN],
		cookie[WG_COOKIE_LEN], got[WG_COOKIE_LEN], mac1[WG_MAC_LEN];
	const uint8_t src[] = {192, 0, 2, 7, 0xca, 0x6c};	/* 192.0.2.7:51820 */

	pair(&i, &r, NULL, NULL);
	randombytes_buf(secret, sizeof(secret));
	wg_tai64n_now(ts);
	cr_assert_eq(wg_create_initiation(&i.id, &i.peer, &hs, 7, ts, NULL, m1), 0);
	memcpy(mac1, m1 + WG_INITIATION_LEN - 2 * WG_MAC_LEN, WG_MAC_LEN);
	wg_cookie_for(secret, src, sizeof(src), cookie);
	cr_assert(!wg_mac2_ok(cookie, m1, sizeof(m1)), "no cookie yet: mac2 is zeros");

	/* The responder is under load: it answers with a cookie the initiator can open. */
	wg_create_cookie_reply(&r.id, m1, sizeof(m1), cookie, reply);
	cr_assert_eq(wg_le32(reply + 4), 7);
	cr_assert_eq(wg_consume_cookie_reply(&i.peer, reply, mac1, got), 0);
	cr_assert_eq(memcmp(got, cookie, WG_COOKIE_LEN), 0);
	/* Sealed to that mac1: another message's mac1 cannot open it. */
	mac1[0] ^= 1;
	cr_assert_eq(wg_consume_cookie_reply(&i.peer, reply, mac1, got), -EBADMSG);

	/* The retry carries mac2, which the responder verifies for this source only. */
	cr_assert_eq(wg_create_initiation(&i.id, &i.peer, &hs, 8, ts, cookie, m1), 0);
	cr_assert(wg_mac1_ok(&r.id, m1, sizeof(m1)));
	cr_assert(wg_mac2_ok(cookie, m1, sizeof(m1)));
	wg_cookie_for(secret, (const uint8_t[]){192, 0, 2, 8, 0xca, 0x6c}, 6, got);
	cr_assert(!wg_mac2_ok(got, m1, sizeof(m1)), "another source's cookie does not pass");
}

Test(wg_noise, transport_data_round_trip)
{
	struct side i, r;
	struct wg_keypair ki, kr;
	uint8_t msg[WG_DATA_HDR_LEN + 64 + WG_TAG_LEN], out[64], payload[37];

	pair(&i, &r, NULL, NULL);
	cr_assert_eq(handshake(&i, &r, &ki, &kr, -1, -1), 0);
	for (unsigned k = 0; k < sizeof(payload); k++)
		payload[k] = (uint8_t)k;
	size_t n = wg_seal_data(&ki, 5, payload, sizeof(payload), msg);

	cr_assert_eq(n, WG_DATA_HDR_LEN + 48 + WG_TAG_LEN, "padded to 16");
	cr_assert_eq(wg_data_counter(msg), 5);
	cr_assert_eq(wg_le32(msg + 4), kr.local_index);
	cr_assert_eq(wg_open_data(&kr, msg, n, out), 48);
	cr_assert_eq(memcmp(out, payload, sizeof(payload)), 0);
	msg[20] ^= 1;
	cr_assert_eq(wg_open_data(&kr, msg, n, out), -EBADMSG);
	msg[20] ^= 1;
	msg[8] ^= 1;			/* the counter is the nonce */
	cr_assert_eq(wg_open_data(&kr, msg, n, out), -EBADMSG);
	/* A keepalive: no payload at all. */
	n = wg_seal_data(&kr, 0, NULL, 0, msg);
	cr_assert_eq(n, WG_DATA_MIN_LEN);
	cr_assert_eq(wg_open_data(&ki, msg, n, out), 0);
}
