/* Known answers for the WireGuard handshake: lib/wg_noise.c, given the fixed keys,
 * ephemerals, timestamp and nonce of tests/lib/wg_kat_vectors.h, must produce exactly the
 * messages and transport keys that tests/lib/wg_kat.py computed with Python's hashlib and
 * python3-cryptography from the WireGuard paper's formulas. The meson test lib-wg_kat_vectors
 * proves the header is what that script computes. */
#include <criterion/criterion.h>

#include <string.h>

#include <sodium.h>

#include "wg_kat_vectors.h"
#include "wg_noise.h"

struct kat {
	struct wg_identity init, resp;
	struct wg_peer_keys init_sees_resp, resp_sees_init;
};

static void setup(struct kat *k)
{
	cr_assert_geq(sodium_init(), 0);
	cr_assert_eq(wg_identity_init(&k->init, kat_init_static), 0);
	cr_assert_eq(wg_identity_init(&k->resp, kat_resp_static), 0);
	cr_assert_eq(wg_peer_keys_init(&k->init_sees_resp, &k->init, k->resp.pub, kat_psk), 0);
	cr_assert_eq(wg_peer_keys_init(&k->resp_sees_init, &k->resp, k->init.pub, kat_psk), 0);
}

/* Byte-exact, and where not, the first differing offset. */
static void same(const uint8_t *got, const uint8_t *want, size_t len, const char *what)
{
	for (size_t i = 0; i < len; i++)
		cr_assert_eq(got[i], want[i], "%s differs first at byte %zu", what, i);
}

Test(wg_kat, initiation_response_and_transport_keys)
{
	struct kat k;
	struct wg_handshake hi, hr;
	struct wg_keypair ki, kr;
	uint8_t m1[WG_INITIATION_LEN], m2[WG_RESPONSE_LEN], who[WG_KEY_LEN], ts[WG_TAI64N_LEN];

	setup(&k);
	cr_assert_eq(wg_create_initiation_with_ephemeral(&k.init, &k.init_sees_resp, &hi, kat_init_ephemeral,
							 KAT_INIT_INDEX, kat_tai64n, NULL, m1), 0);
	same(m1, kat_initiation, sizeof(m1), "message 1");

	cr_assert(wg_mac1_ok(&k.resp, kat_initiation, sizeof(kat_initiation)));
	cr_assert_eq(wg_consume_initiation(&k.resp, kat_initiation, &hr, who, ts), 0);
	same(who, k.init.pub, WG_KEY_LEN, "initiator identity");
	same(ts, kat_tai64n, WG_TAI64N_LEN, "timestamp");
	cr_assert_eq(wg_create_response_with_ephemeral(&k.resp_sees_init, &hr, kat_resp_ephemeral, KAT_RESP_INDEX,
						       NULL, m2, &kr), 0);
	same(m2, kat_response, sizeof(m2), "message 2");
	same(kr.recv, kat_init_send, WG_KEY_LEN, "responder receive key");
	same(kr.send, kat_init_recv, WG_KEY_LEN, "responder send key");

	cr_assert(wg_mac1_ok(&k.init, kat_response, sizeof(kat_response)));
	cr_assert_eq(wg_consume_response(&k.init, &k.init_sees_resp, &hi, kat_response, &ki), 0);
	same(ki.send, kat_init_send, WG_KEY_LEN, "initiator send key");
	same(ki.recv, kat_init_recv, WG_KEY_LEN, "initiator receive key");
	cr_assert_eq(ki.local_index, KAT_INIT_INDEX);
	cr_assert_eq(ki.remote_index, KAT_RESP_INDEX);
}

Test(wg_kat, first_data_message)
{
	struct wg_keypair ki = {.remote_index = KAT_RESP_INDEX, .initiator = true};
	struct wg_keypair kr = {.local_index = KAT_RESP_INDEX};
	uint8_t msg[sizeof(kat_data)], out[sizeof(kat_data)];

	memcpy(ki.send, kat_init_send, WG_KEY_LEN);
	memcpy(kr.recv, kat_init_send, WG_KEY_LEN);
	cr_assert_eq(wg_seal_data(&ki, KAT_DATA_COUNTER, kat_payload, sizeof(kat_payload), msg), sizeof(kat_data));
	same(msg, kat_data, sizeof(kat_data), "data message");
	cr_assert_eq(wg_open_data(&kr, kat_data, sizeof(kat_data), out), 48);
	same(out, kat_payload, sizeof(kat_payload), "opened payload");
}

Test(wg_kat, cookie_reply_and_mac2)
{
	struct kat k;
	struct wg_handshake hi;
	uint8_t cookie[WG_COOKIE_LEN], reply[WG_COOKIE_REPLY_LEN], got[WG_COOKIE_LEN], m1[WG_INITIATION_LEN];

	setup(&k);
	wg_cookie_for(kat_cookie_secret, kat_cookie_source, sizeof(kat_cookie_source), cookie);
	same(cookie, kat_cookie, WG_COOKIE_LEN, "cookie");
	wg_create_cookie_reply_with_nonce(&k.resp, kat_initiation, sizeof(kat_initiation), cookie, kat_cookie_nonce,
					  reply);
	same(reply, kat_cookie_reply, sizeof(reply), "cookie reply");
	cr_assert_eq(wg_consume_cookie_reply(&k.init_sees_resp, kat_cookie_reply,
					     kat_initiation + WG_INITIATION_LEN - 2 * WG_MAC_LEN, got), 0);
	same(got, kat_cookie, WG_COOKIE_LEN, "opened cookie");

	cr_assert_eq(wg_create_initiation_with_ephemeral(&k.init, &k.init_sees_resp, &hi, kat_init_ephemeral,
							 KAT_INIT_INDEX, kat_tai64n, got, m1), 0);
	same(m1, kat_initiation_mac2, sizeof(m1), "message 1 with mac2");
	cr_assert(wg_mac2_ok(kat_cookie, kat_initiation_mac2, sizeof(kat_initiation_mac2)));
	wg_handshake_wipe(&hi);
}
