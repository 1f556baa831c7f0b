/* libFuzzer harness for the WireGuard message parsers and the handshake's receiving side
 * (lib/wg_noise.c), as egress-control runs them on bytes from strangers: initiations
 * (mac1, then the responder), responses to an initiation of ours, cookie replies, and
 * transport data. The first input byte picks the message kind; the rest is the message.
 * Inputs of the right length that were sealed with the right keys reach the code behind
 * each check: the seeds are such messages (FUZZ_WG_SEEDS=dir writes them).
 *
 * It asserts what must hold whatever arrives: nothing is accepted that the keys did not
 * make, a consumed initiation names our peer, and a sealed-then-opened payload comes back. */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "wg_noise.h"

static struct wg_identity me, them;
static struct wg_peer_keys me_to_them, them_to_me;
static struct wg_handshake ours;		/* our initiation in flight, for responses */
static uint8_t our_mac1[WG_MAC_LEN];
static struct wg_keypair data_keys;

static void write_seed(const char *dir, const char *name, uint8_t kind, const uint8_t *msg, size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f)
		return;
	fputc(kind, f);
	fwrite(msg, 1, len, f);
	fclose(f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	uint8_t k1[WG_KEY_LEN], k2[WG_KEY_LEN], tai[WG_TAI64N_LEN] = {0}, msg[WG_INITIATION_LEN];
	const char *seeds = getenv("FUZZ_WG_SEEDS");

	(void)argc;
	(void)argv;
	if (sodium_init() < 0)
		abort();
	/* Fixed keys, so that seeds stay valid from run to run. */
	for (unsigned i = 0; i < WG_KEY_LEN; i++) {
		k1[i] = (uint8_t)(i + 1);
		k2[i] = (uint8_t)(0x80 + i);
	}
	k1[0] &= 248, k1[31] = (k1[31] & 127) | 64;
	k2[0] &= 248, k2[31] = (k2[31] & 127) | 64;
	if (wg_identity_init(&me, k1) || wg_identity_init(&them, k2) ||
	    wg_peer_keys_init(&me_to_them, &me, them.pub, NULL) || wg_peer_keys_init(&them_to_me, &them, me.pub, NULL))
		abort();
	/* Our initiation: its ephemeral is random, so responses in seeds only reach the
	 * response's later checks in the run that wrote them; mac1 and lengths still hold. */
	if (wg_create_initiation(&me, &me_to_them, &ours, 0x01020304, tai, NULL, msg))
		abort();
	memcpy(our_mac1, msg + WG_INITIATION_LEN - 2 * WG_MAC_LEN, WG_MAC_LEN);
	memset(&data_keys, 0x42, sizeof(data_keys));
	if (seeds) {
		struct wg_handshake hs;
		uint8_t init[WG_INITIATION_LEN], resp[WG_RESPONSE_LEN], cookie[WG_COOKIE_LEN] = {7}, reply[WG_COOKIE_REPLY_LEN];
		uint8_t data[64 + WG_DATA_MIN_LEN], payload[64] = {0x45};
		struct wg_keypair kp;
		struct wg_handshake copy = ours;
		uint8_t peer_pub[WG_KEY_LEN], t[WG_TAI64N_LEN];

		tai[11] = 1;
		wg_create_initiation(&them, &them_to_me, &hs, 0x0a0b0c0d, tai, NULL, init);
		write_seed(seeds, "initiation", 0, init, sizeof(init));
		/* Their response to ours. */
		if (wg_consume_initiation(&them, msg, &hs, peer_pub, t) == 0 &&
		    wg_create_response(&them_to_me, &hs, 0x11111111, NULL, resp, &kp) == 0)
			write_seed(seeds, "response", 1, resp, sizeof(resp));
		ours = copy;
		wg_create_cookie_reply(&them, msg, sizeof(msg), cookie, reply);
		write_seed(seeds, "cookie_reply", 2, reply, sizeof(reply));
		write_seed(seeds, "data", 3, data, wg_seal_data(&data_keys, 5, payload, sizeof(payload), data));
		write_seed(seeds, "keepalive", 3, data, wg_seal_data(&data_keys, 6, NULL, 0, data));
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
	const uint8_t *msg = in + 1;
	size_t len = size ? size - 1 : 0;

	if (size == 0)
		return 0;
	switch (in[0] & 3) {
	case 0: {	/* an initiation, to the responder */
		struct wg_handshake hs;
		struct wg_keypair kp;
		uint8_t pub[WG_KEY_LEN], tai[WG_TAI64N_LEN], resp[WG_RESPONSE_LEN];

		if (len != WG_INITIATION_LEN)
			return 0;
		(void)wg_mac1_ok(&me, msg, len);
		/* Past mac1 (which the fuzzer cannot forge), as if it held. */
		if (wg_consume_initiation(&me, msg, &hs, pub, tai) == 0) {
			/* Only the one key that can make an initiation to us is ours to find. */
			assert(memcmp(pub, them.pub, WG_KEY_LEN) == 0);
			assert(wg_create_response(&them_to_me, &hs, 1, NULL, resp, &kp) == 0);
		}
		wg_handshake_wipe(&hs);
		break;
	}
	case 1: {	/* a response to our initiation */
		struct wg_handshake hs = ours;
		struct wg_keypair kp;

		if (len != WG_RESPONSE_LEN)
			return 0;
		(void)wg_mac1_ok(&me, msg, len);
		(void)wg_consume_response(&me, &me_to_them, &hs, msg, &kp);
		break;
	}
	case 2: {	/* a cookie reply to our initiation */
		uint8_t cookie[WG_COOKIE_LEN];

		if (len != WG_COOKIE_REPLY_LEN)
			return 0;
		(void)wg_consume_cookie_reply(&me_to_them, msg, our_mac1, cookie);
		break;
	}
	case 3: {	/* transport data: opened, and a payload sealed comes back */
		uint8_t out[2048], sealed[2048 + WG_DATA_MIN_LEN + 16];
		long n;

		if (len > sizeof(out))
			return 0;
		if (len >= WG_DATA_MIN_LEN) {
			n = wg_open_data(&data_keys, msg, len, out);
			assert(n < 0 || (size_t)n == len - WG_DATA_MIN_LEN);
		}
		{
			struct wg_keypair rx = data_keys;
			size_t m = wg_seal_data(&data_keys, len, msg, len, sealed);

			memcpy(rx.recv, data_keys.send, WG_KEY_LEN);
			n = wg_open_data(&rx, sealed, m, out);
			assert(n >= (long)len && memcmp(out, msg, len) == 0);
			assert(wg_data_counter(sealed) == len);
		}
		break;
	}
	}
	return 0;
}
