/* A WireGuard peer made of lib/wg_noise.c and a UDP socket, to prove the handshake and
 * transport format against wireguard-go (tests/integration/wg_interop.sh). It carries ICMP
 * echoes through the tunnel: what wireguard-go decrypts goes to its TUN device and the
 * kernel behind it answers.
 *
 *   wg-noise-peer initiate --bind IP:PORT --peer IP:PORT --key B64 --peer-key B64 [--psk B64]
 *                 --tun-src IP --tun-dst IP [--count N] [--timeout S]
 *       handshakes as initiator, sends N echo requests tun-src -> tun-dst and expects the
 *       N replies.
 *   wg-noise-peer respond --bind IP:PORT --key B64 --peer-key B64 [--psk B64] --tun-src IP
 *                 [--count N] [--timeout S]
 *       answers one initiation from the peer, then answers N echo requests sent to
 *       tun-src through the tunnel.
 *
 * Prints one JSON line: {"handshake": bool, "echoes": n, "keepalives": n}; exits 0 when
 * all N echoes went through. Every wait is bounded by --timeout. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "wg_noise.h"

struct opts {
	const char *mode, *bind, *peer, *key, *peer_key, *psk, *tun_src, *tun_dst;
	int count;
	double timeout;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_addr(const char *s, struct sockaddr_in *a)
{
	char host[64];
	const char *colon = strrchr(s, ':');

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)atoi(colon + 1));
	return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

static int key_from_base64(const char *b64, uint8_t out[WG_KEY_LEN])
{
	size_t len;

	return b64 && sodium_base642bin(out, WG_KEY_LEN, b64, strlen(b64), NULL, &len, NULL,
					sodium_base64_VARIANT_ORIGINAL) == 0 && len == WG_KEY_LEN ? 0 : -1;
}

static uint16_t csum(const uint8_t *p, size_t len)
{
	uint32_t s = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		s += (uint32_t)p[i] << 8 | p[i + 1];
	if (len & 1)
		s += (uint32_t)p[len - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* The IPv4 header and ICMP checksums of the len-byte packet p, written in place. */
static void set_checksums(uint8_t *p, size_t len)
{
	uint16_t c;

	p[10] = p[11] = 0;
	c = csum(p, 20);
	p[10] = (uint8_t)(c >> 8);
	p[11] = (uint8_t)c;
	p[22] = p[23] = 0;
	c = csum(p + 20, len - 20);
	p[22] = (uint8_t)(c >> 8);
	p[23] = (uint8_t)c;
}

/* An IPv4 ICMP echo (type 8 request, 0 reply) of 32 bytes of data; returns its length. */
static size_t icmp_echo(uint8_t *out, uint8_t type, struct in_addr src, struct in_addr dst, uint16_t id,
			uint16_t seq)
{
	size_t len = 20 + 8 + 32;

	memset(out, 0, len);
	out[0] = 0x45;
	out[2] = (uint8_t)(len >> 8);
	out[3] = (uint8_t)len;
	out[8] = 64;
	out[9] = 1;
	memcpy(out + 12, &src, 4);
	memcpy(out + 16, &dst, 4);
	out[20] = type;
	out[24] = (uint8_t)(id >> 8);
	out[25] = (uint8_t)id;
	out[26] = (uint8_t)(seq >> 8);
	out[27] = (uint8_t)seq;
	for (unsigned i = 0; i < 32; i++)
		out[28 + i] = (uint8_t)('a' + i % 26);
	set_checksums(out, len);
	return len;
}

/* Waits for one datagram until the deadline; its length, or -1 at the deadline. */
static ssize_t receive(int fd, uint8_t *buf, size_t room, struct sockaddr_in *from, double deadline)
{
	for (;;) {
		double left = deadline - now();
		struct pollfd p = {.fd = fd, .events = POLLIN};
		socklen_t fl = sizeof(*from);

		if (left <= 0)
			return -1;
		if (poll(&p, 1, (int)(left * 1000) + 1) <= 0)
			continue;
		ssize_t n = recvfrom(fd, buf, room, 0, (struct sockaddr *)from, &fl);

		if (n >= 0)
			return n;
	}
}

struct session {
	int fd;
	struct sockaddr_in peer;
	struct wg_identity me;
	struct wg_peer_keys pk;
	struct wg_keypair kp;
	uint64_t send_counter;
	unsigned keepalives;
};

static int initiate(struct session *s, double deadline)
{
	uint8_t msg[WG_INITIATION_LEN], buf[2048], ts[WG_TAI64N_LEN], cookie[WG_COOKIE_LEN], mac1[WG_MAC_LEN];
	bool have_cookie = false;
	struct wg_handshake hs;
	struct sockaddr_in from;

	for (int attempt = 0; attempt < 5 && now() < deadline; attempt++) {
		uint32_t index = randombytes_random();

		wg_tai64n_now(ts);
		if (wg_create_initiation(&s->me, &s->pk, &hs, index, ts, have_cookie ? cookie : NULL, msg) != 0)
			return -1;
		memcpy(mac1, msg + WG_INITIATION_LEN - 2 * WG_MAC_LEN, WG_MAC_LEN);
		sendto(s->fd, msg, sizeof(msg), 0, (struct sockaddr *)&s->peer, sizeof(s->peer));
		double until = now() + 2 < deadline ? now() + 2 : deadline;	/* REKEY_TIMEOUT-ish */
		ssize_t n;

		while ((n = receive(s->fd, buf, sizeof(buf), &from, until)) >= 0) {
			if (n == WG_COOKIE_REPLY_LEN && buf[0] == WG_MSG_COOKIE_REPLY &&
			    wg_consume_cookie_reply(&s->pk, buf, mac1, cookie) == 0) {
				have_cookie = true;
				break;
			}
			if (n == WG_RESPONSE_LEN && wg_mac1_ok(&s->me, buf, (size_t)n) &&
			    wg_consume_response(&s->me, &s->pk, &hs, buf, &s->kp) == 0)
				return 0;
		}
	}
	wg_handshake_wipe(&hs);
	return -1;
}

static int respond(struct session *s, double deadline)
{
	uint8_t buf[2048], who[WG_KEY_LEN], ts[WG_TAI64N_LEN], out[WG_RESPONSE_LEN];
	struct wg_handshake hs;
	struct sockaddr_in from;
	ssize_t n;

	while ((n = receive(s->fd, buf, sizeof(buf), &from, deadline)) >= 0) {
		if (n != WG_INITIATION_LEN || !wg_mac1_ok(&s->me, buf, (size_t)n) ||
		    wg_consume_initiation(&s->me, buf, &hs, who, ts) != 0)
			continue;
		if (sodium_memcmp(who, s->pk.pub, WG_KEY_LEN) != 0) {
			wg_handshake_wipe(&hs);
			continue;
		}
		if (wg_create_response(&s->pk, &hs, randombytes_random(), NULL, out, &s->kp) != 0)
			return -1;
		s->peer = from;		/* the endpoint is where the initiation came from */
		sendto(s->fd, out, sizeof(out), 0, (struct sockaddr *)&from, sizeof(from));
		return 0;
	}
	return -1;
}

static void send_packet(struct session *s, const uint8_t *pkt, size_t len)
{
	uint8_t msg[2048];
	size_t n = wg_seal_data(&s->kp, s->send_counter++, pkt, len, msg);

	sendto(s->fd, msg, n, 0, (struct sockaddr *)&s->peer, sizeof(s->peer));
}

/* The next transport packet's plaintext (keepalives counted and skipped); its length or -1. */
static long next_packet(struct session *s, uint8_t *plain, double deadline)
{
	uint8_t buf[2048];
	struct sockaddr_in from;
	ssize_t n;

	while ((n = receive(s->fd, buf, sizeof(buf), &from, deadline)) >= 0) {
		long m;

		if (n < WG_DATA_MIN_LEN || buf[0] != WG_MSG_DATA)
			continue;
		m = wg_open_data(&s->kp, buf, (size_t)n, plain);
		if (m < 0)
			continue;
		if (m == 0) {
			s->keepalives++;
			continue;
		}
		return m;
	}
	return -1;
}

static bool is_echo(const uint8_t *p, long len, uint8_t type, struct in_addr src, struct in_addr dst, uint16_t *seq)
{
	if (len < 28 || (p[0] >> 4) != 4 || p[9] != 1 || p[20] != type || memcmp(p + 12, &src, 4) ||
	    memcmp(p + 16, &dst, 4))
		return false;
	*seq = (uint16_t)(p[26] << 8 | p[27]);
	return true;
}

int main(int argc, char **argv)
{
	struct opts o = {.count = 3, .timeout = 20};
	struct session s = {0};
	uint8_t priv[WG_KEY_LEN], peer_pub[WG_KEY_LEN], psk[WG_KEY_LEN], plain[2048], pkt[128];
	struct sockaddr_in bind_addr;
	struct in_addr tsrc = {0}, tdst = {0};
	double deadline;
	int echoes = 0;
	bool shaken;

	if (argc < 2 || sodium_init() < 0)
		return 2;
	o.mode = argv[1];
	for (int i = 2; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];

		if (!strcmp(k, "--bind")) o.bind = v;
		else if (!strcmp(k, "--peer")) o.peer = v;
		else if (!strcmp(k, "--key")) o.key = v;
		else if (!strcmp(k, "--peer-key")) o.peer_key = v;
		else if (!strcmp(k, "--psk")) o.psk = v;
		else if (!strcmp(k, "--tun-src")) o.tun_src = v;
		else if (!strcmp(k, "--tun-dst")) o.tun_dst = v;
		else if (!strcmp(k, "--count")) o.count = atoi(v);
		else if (!strcmp(k, "--timeout")) o.timeout = atof(v);
		else {
			fprintf(stderr, "wg-noise-peer: unknown option %s\n", k);
			return 2;
		}
	}
	if (!o.bind || parse_addr(o.bind, &bind_addr) || key_from_base64(o.key, priv) ||
	    key_from_base64(o.peer_key, peer_pub) || (o.psk && key_from_base64(o.psk, psk)) || !o.tun_src ||
	    inet_pton(AF_INET, o.tun_src, &tsrc) != 1 ||
	    (!strcmp(o.mode, "initiate") && (!o.peer || parse_addr(o.peer, &s.peer) || !o.tun_dst ||
					   inet_pton(AF_INET, o.tun_dst, &tdst) != 1))) {
		fprintf(stderr, "wg-noise-peer: bad or missing options\n");
		return 2;
	}
	if (wg_identity_init(&s.me, priv) || wg_peer_keys_init(&s.pk, &s.me, peer_pub, o.psk ? psk : NULL)) {
		fprintf(stderr, "wg-noise-peer: bad keys\n");
		return 2;
	}
	sodium_memzero(priv, sizeof(priv));
	s.fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (s.fd < 0 || bind(s.fd, (struct sockaddr *)&bind_addr, sizeof(bind_addr)) != 0) {
		perror("wg-noise-peer: bind");
		return 2;
	}
	deadline = now() + o.timeout;
	if (!strcmp(o.mode, "initiate")) {
		shaken = initiate(&s, deadline) == 0;
		for (int i = 0; shaken && i < o.count; i++) {
			uint16_t seq;
			size_t len = icmp_echo(pkt, 8, tsrc, tdst, 0x4567, (uint16_t)i);
			double until = now() + 3 < deadline ? now() + 3 : deadline;
			long m;

			send_packet(&s, pkt, len);
			while ((m = next_packet(&s, plain, until)) >= 0)
				if (is_echo(plain, m, 0, tdst, tsrc, &seq) && seq == i) {
					echoes++;
					break;
				}
		}
	} else {
		shaken = respond(&s, deadline) == 0;
		while (shaken && echoes < o.count) {
			uint16_t seq;
			long m = next_packet(&s, plain, deadline);
			struct in_addr from;

			if (m < 0)
				break;
			memcpy(&from, plain + 12, 4);
			if (!is_echo(plain, m, 8, from, tsrc, &seq))
				continue;
			/* Answer with the same identifier, sequence and data. */
			size_t len = (size_t)((plain[2] << 8) | plain[3]);

			if (len > sizeof(pkt) || len < 28 || (long)len > m)
				continue;
			memcpy(pkt, plain, len);
			memcpy(pkt + 12, &tsrc, 4);
			memcpy(pkt + 16, &from, 4);
			pkt[20] = 0;
			set_checksums(pkt, len);
			send_packet(&s, pkt, len);
			echoes++;
		}
	}
	printf("{\"handshake\": %s, \"echoes\": %d, \"keepalives\": %u}\n", shaken ? "true" : "false", echoes,
	       s.keepalives);
	sodium_memzero(&s, sizeof(s));
	return shaken && echoes == o.count ? 0 : 1;
}
