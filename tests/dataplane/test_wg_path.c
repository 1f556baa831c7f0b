/* The WireGuard paths of a real dataplane context (dataplane/offline.c), frame by frame. What the
 * workers seal (intel-ipsec-mb) is opened with libsodium (wg_open_data), and what they
 * open was sealed with libsodium (wg_seal_data), so the two crypto libraries check each
 * other; and every way a data message can be wrong is dropped by its reason: a flipped
 * byte anywhere, a replay, a counter older than the window, an index no keypair has, an
 * inner source outside the peer's allowed IPs. Handshake messages go to the punt ring,
 * a peer seen at a new address is reported, a responder's keypair is sent with only after
 * it received, and counters run out as the protocol says. */
#include <criterion/criterion.h>

#include <string.h>

#include <rte_byteorder.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_udp.h>

#include "offline.h"
#include "wg_noise.h"
#include "worker.h"

#define PEER_PUB "3Fs5UY9v5otH4pfY5gghORWGlrxEWLvTnGeniDSCWV0="
#define OUR_KEY "0BKc8qw9F5m+FFQ6q0P4QTDXTyPcZN07LHrw5Znc3G8="

static const char config_fmt[] =
	"{\"instance\": \"%s\", \"dataplane\": {\"workers\": 1, \"idle_backoff\": false, \"table_mb\": 1,"
	" \"ports\": ["
	"  {\"name\": \"lan0\", \"role\": \"site\", \"device\": \"net_null0\", \"ipv4\": \"10.10.0.1/24\","
	"   \"mac\": \"02:00:00:00:00:01\", \"neighbours\": [{\"ip\": \"10.10.0.2\", \"mac\": \"02:00:00:00:00:02\"}]},"
	"  {\"name\": \"wan0\", \"role\": \"uplink\", \"device\": \"net_null1\", \"ipv4\": \"192.0.2.1/24\","
	"   \"mac\": \"02:00:00:00:01:01\","
	"   \"neighbours\": [{\"ip\": \"192.0.2.9\", \"mac\": \"02:00:00:00:01:09\"}]}]},"
	" \"wireguard\": {\"private_key\": \"" OUR_KEY "\", \"listen_port\": 51820,"
	"  \"test_timers\": {\"rekey_after_messages\": 1000, \"reject_after_messages\": 20000},"
	"  \"peers\": [{\"name\": \"fra\", \"public_key\": \"" PEER_PUB "\", \"endpoint\": \"192.0.2.9:51000\","
	"   \"allowed_ips\": [\"10.20.0.0/16\"]},"
	"  {\"name\": \"ams\", \"public_key\": \"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=\","
	"   \"allowed_ips\": [\"10.20.5.0/24\"]}]},"
	" \"egresses\": [{\"name\": \"wg\", \"type\": \"wireguard\", \"peer\": \"fra\"}],"
	" \"policies\": [{\"name\": \"p\", \"priority\": 1, \"match\": {\"dst\": [\"10.20.0.0/16\"]},"
	"  \"egresses\": [\"wg\"], \"strategy\": \"pinned\"}]}";

enum {
	LOCAL_INDEX = 0x5a5a0000 | (0 * EG_WG_KEYPAIRS + 1),	/* slot 0, keypair 1 */
	REMOTE_INDEX = 0x11223344,
	MSG_AT = 14 + 20 + 8,	/* Ethernet, IPv4, UDP */
};

static struct dp_offline fx;
static uint16_t lan, wan;
static struct eg_wg_keypair *kp;
/* The peer's view: it sends with our receiving key and receives with our sending key. */
static struct wg_keypair peer_keys, our_keys;

static void setup(void)
{
	dp_offline_start(&fx, "testwg", config_fmt, 2048, 1024);
	dp_offline_publish(&fx);
	lan = dp_offline_port(&fx, "lan0");
	wan = dp_offline_port(&fx, "wan0");
	for (unsigned i = 0; i < 32; i++) {
		our_keys.send[i] = (uint8_t)(i + 1);
		our_keys.recv[i] = (uint8_t)(0xa0 + i);
	}
	our_keys.local_index = LOCAL_INDEX;
	our_keys.remote_index = REMOTE_INDEX;
	memcpy(peer_keys.send, our_keys.recv, 32);
	memcpy(peer_keys.recv, our_keys.send, 32);
	peer_keys.local_index = REMOTE_INDEX;
	peer_keys.remote_index = LOCAL_INDEX;
	kp = dp_offline_wg_keypair(&fx, 0, 1, our_keys.send, our_keys.recv, LOCAL_INDEX, REMOTE_INDEX, true, 1);
}

static uint64_t drops(enum eg_drop_reason r)
{
	return fx.w->shm->drop[r];
}

static unsigned take_tx(uint16_t port, struct rte_mbuf **out, unsigned max)
{
	return dp_offline_take_tx(&fx, port, out, max);
}

/* An IPv4/UDP packet from src to dst with len payload bytes (i * 3 + seed), no L2. */
static size_t inner_udp(uint8_t *buf, uint32_t src, uint32_t dst, uint16_t len, uint8_t seed)
{
	uint8_t pl[256];

	cr_assert_leq(len, sizeof(pl));
	for (unsigned i = 0; i < len; i++)
		pl[i] = (uint8_t)(i * 3 + seed);
	return dp_offline_ipv4_udp(buf, src, dst, 7000, 7001, pl, len, false, 0);
}

/* A frame on port with dst MAC the port's, IPv4 src -> dst, UDP sport -> dport. */
static struct rte_mbuf *frame(uint16_t port, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport,
			      const uint8_t *payload, size_t len)
{
	static const uint8_t mac[6] = {0x02, 0, 0, 0, 0, 0x09};

	return dp_offline_udp_frame(&fx, port, mac, src, dst, sport, dport, payload, (uint16_t)len, false, 0);
}

#define PEER_IP DP_IPV4(192, 0, 2, 9)
#define OUR_IP DP_IPV4(192, 0, 2, 1)

/* A data message the peer sends, carrying an inner packet from src to the site host. */
static size_t peer_message(uint8_t *msg, uint64_t counter, uint32_t src, uint8_t seed)
{
	uint8_t inner[256];
	size_t n = inner_udp(inner, src, DP_IPV4(10, 10, 0, 2), 60, seed);

	return wg_seal_data(&peer_keys, counter, inner, n, msg);
}

static unsigned receive(const uint8_t *msg, size_t len, uint16_t sport, struct rte_mbuf **out)
{
	struct rte_mbuf *m = frame(wan, PEER_IP, OUR_IP, sport, 51820, msg, len);

	dp_worker_process(fx.w, fx.table, wan, &m, 1);
	return take_tx(lan, out, 8);
}

Test(wg_path, workers_seal_what_libsodium_opens, .init = setup)
{
	struct rte_mbuf *in[4], *out[8];
	uint8_t inner[256], plain[2048];
	unsigned n;

	for (unsigned i = 0; i < 4; i++) {
		size_t len = inner_udp(inner, DP_IPV4(10, 10, 0, 2), DP_IPV4(10, 20, 1, 1), (uint16_t)(30 + i * 17),
				       (uint8_t)i);

		in[i] = frame(lan, DP_IPV4(10, 10, 0, 2), DP_IPV4(10, 20, 1, 1), 7000, 7001,
			      inner + 28, len - 28);
	}
	dp_worker_process(fx.w, fx.table, lan, in, 4);
	n = take_tx(wan, out, 8);
	cr_assert_eq(n, 4, "all four leave through the tunnel, got %u", n);
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *f = rte_pktmbuf_mtod(out[i], const uint8_t *);
		const struct rte_ipv4_hdr *ip = (const struct rte_ipv4_hdr *)(f + 14);
		const struct rte_udp_hdr *u = (const struct rte_udp_hdr *)(ip + 1);
		const uint8_t *msg = f + MSG_AT;
		size_t mlen = rte_pktmbuf_pkt_len(out[i]) - MSG_AT;
		long plen;

		cr_assert_eq(ip->dst_addr, rte_cpu_to_be_32(PEER_IP));
		cr_assert_eq(rte_raw_cksum(ip, 20), 0xffff, "outer IPv4 checksum");
		cr_assert_eq(rte_be_to_cpu_16(u->src_port), 51820);
		cr_assert_eq(rte_be_to_cpu_16(u->dst_port), 51000);
		cr_assert_eq(msg[0], WG_MSG_DATA);
		cr_assert_eq(wg_le32(msg + 4), REMOTE_INDEX);
		cr_assert_eq(wg_data_counter(msg), i, "counters from 0 in order");
		cr_assert_eq((mlen - WG_DATA_MIN_LEN) % 16, 0, "padded to 16");
		plen = wg_open_data(&peer_keys, msg, mlen, plain);
		cr_assert_geq(plen, 0, "libsodium opens what intel-ipsec-mb sealed");
		inner_udp(inner, DP_IPV4(10, 10, 0, 2), DP_IPV4(10, 20, 1, 1), (uint16_t)(30 + i * 17), (uint8_t)i);
		cr_assert_eq(plain[8], 63, "TTL decremented once");
		cr_assert_eq(memcmp(plain + 12, inner + 12, (size_t)(28 + 30 + i * 17 - 12)), 0, "inner packet intact");
		for (long k = 28 + 30 + i * 17; k < plen; k++)
			cr_assert_eq(plain[k], 0, "padding is zeros");
	}
	rte_pktmbuf_free_bulk(out, n);
	cr_assert_eq(kp->send_counter, 4);
	cr_assert_eq(eg_shm_wg_counters(fx.ctx.shm.hdr, fx.w->shm)[0].tx_packets, 4);
}

Test(wg_path, libsodium_sealed_messages_are_delivered_once, .init = setup)
{
	uint8_t msg[512];
	struct rte_mbuf *out[8];
	size_t len = peer_message(msg, 0, DP_IPV4(10, 20, 0, 5), 1);
	unsigned n = receive(msg, len, 51000, out);

	cr_assert_eq(n, 1, "delivered to the site");
	cr_assert_eq(rte_pktmbuf_pkt_len(out[0]), 14 + 88, "padding stripped");
	rte_pktmbuf_free_bulk(out, n);
	cr_assert_eq(receive(msg, len, 51000, out), 0, "a replay is not");
	cr_assert_eq(drops(EG_DROP_WG_REPLAY), 1);

	/* Reordering inside the window is fine; older than the window is not. */
	for (uint64_t c = 9000; c >= 8998; c--) {
		len = peer_message(msg, c, DP_IPV4(10, 20, 0, 5), 2);
		n = receive(msg, len, 51000, out);
		cr_assert_eq(n, 1, "counter %llu out of order is accepted", (unsigned long long)c);
		rte_pktmbuf_free_bulk(out, n);
	}
	len = peer_message(msg, 9000 - EG_WG_REPLAY_WINDOW - 1, DP_IPV4(10, 20, 0, 5), 3);
	cr_assert_eq(receive(msg, len, 51000, out), 0);
	cr_assert_eq(drops(EG_DROP_WG_REPLAY), 2);
	len = peer_message(msg, 9000 - 100, DP_IPV4(10, 20, 0, 5), 3);
	n = receive(msg, len, 51000, out);
	cr_assert_eq(n, 1, "a counter well inside the 8128-wide window is accepted");
	rte_pktmbuf_free_bulk(out, n);
}

Test(wg_path, every_flipped_byte_is_dropped, .init = setup)
{
	uint8_t msg[512], bad[512];
	struct rte_mbuf *out[8];
	size_t len = peer_message(msg, 7, DP_IPV4(10, 20, 0, 5), 4);
	uint64_t before = fx.w->shm->drops;

	for (size_t i = 0; i < len; i++) {
		memcpy(bad, msg, len);
		bad[i] ^= 0x01;
		cr_assert_eq(receive(bad, len, 51000, out), 0, "byte %zu flipped is not delivered", i);
	}
	cr_assert_eq(fx.w->shm->drops - before, len, "each is counted once");
	cr_assert_eq(drops(EG_DROP_WG_BAD_MESSAGE), 4, "type and reserved bytes");
	cr_assert_eq(drops(EG_DROP_WG_UNKNOWN_INDEX), 4, "receiver index");
	/* A counter flipped high is past REJECT_AFTER_MESSAGES; low, it is another nonce. */
	cr_assert_eq(drops(EG_DROP_WG_KEY_EXHAUSTED), 6, "counter bytes 2..7");
	cr_assert_eq(drops(EG_DROP_WG_AUTH_FAILED), len - 16 + 2, "counter bytes 0..1, ciphertext and tag");
	cr_assert_eq(receive(msg, len, 51000, out), 1, "the genuine one still gets in: forgeries left no trace");
	dp_offline_drain(&fx);
}

Test(wg_path, inner_sources_outside_allowed_ips_are_dropped, .init = setup)
{
	uint8_t msg[512];
	struct rte_mbuf *out[8];
	size_t len = peer_message(msg, 1, DP_IPV4(10, 21, 0, 5), 5);

	cr_assert_eq(receive(msg, len, 51000, out), 0);
	cr_assert_eq(drops(EG_DROP_WG_ALLOWED_IPS), 1);
	/* A keepalive authenticates but carries nothing. */
	len = wg_seal_data(&peer_keys, 2, NULL, 0, msg);
	cr_assert_eq(len, WG_DATA_MIN_LEN);
	cr_assert_eq(receive(msg, len, 51000, out), 0);
	cr_assert_eq(eg_shm_wg_counters(fx.ctx.shm.hdr, fx.w->shm)[0].rx_packets, 2);
	cr_assert_eq(fx.w->shm->drops, 1, "a keepalive is no drop");
}

/* Cryptokey routing takes the longest prefix among all peers: ams holds 10.20.5.0/24
 * inside fra's 10.20.0.0/16, so fra may not send from there, but may from around it. */
Test(wg_path, a_longer_prefix_of_another_peer_is_not_this_peers, .init = setup)
{
	uint8_t msg[512];
	struct rte_mbuf *out[8];
	size_t len = peer_message(msg, 1, DP_IPV4(10, 20, 5, 7), 5);

	cr_assert_eq(receive(msg, len, 51000, out), 0);
	cr_assert_eq(drops(EG_DROP_WG_ALLOWED_IPS), 1);
	len = peer_message(msg, 2, DP_IPV4(10, 20, 6, 1), 6);
	cr_assert_eq(receive(msg, len, 51000, out), 1, "just past ams's prefix is fra's again");
	rte_pktmbuf_free(out[0]);
	len = peer_message(msg, 3, DP_IPV4(10, 20, 4, 255), 7);
	cr_assert_eq(receive(msg, len, 51000, out), 1, "and just before it");
	rte_pktmbuf_free(out[0]);
}

Test(wg_path, handshakes_go_to_control_and_a_new_source_is_reported, .init = setup)
{
	uint8_t msg[WG_INITIATION_LEN] = {WG_MSG_INITIATION};
	struct rte_mbuf *out[8], *punted[4];
	const struct eg_msg *note;
	size_t len;
	unsigned n;

	receive(msg, sizeof(msg), 51000, out);
	n = rte_ring_dequeue_burst(fx.w->punt, (void **)punted, 4, NULL);
	cr_assert_eq(n, 1, "the initiation is punted");
	cr_assert_eq(punted[0]->hash.usr, DP_PUNT_WG_HANDSHAKE);
	rte_pktmbuf_free(punted[0]);
	receive(msg, sizeof(msg) - 1, 51000, out);
	cr_assert_eq(drops(EG_DROP_WG_BAD_MESSAGE), 1, "a handshake message of the wrong length is not");

	/* An authenticated message from another port than the endpoint: control hears of it. */
	len = peer_message(msg, 3, DP_IPV4(10, 20, 0, 5), 6);
	n = receive(msg, len, 51999, out);
	rte_pktmbuf_free_bulk(out, n);
	n = rte_ring_dequeue_burst(fx.w->punt, (void **)punted, 4, NULL);
	cr_assert_eq(n, 1);
	cr_assert_eq(punted[0]->hash.usr, DP_PUNT_MSG);
	note = rte_pktmbuf_mtod(punted[0], const struct eg_msg *);
	cr_assert_eq(note->kind, EG_MSG_WG_ROAM);
	cr_assert_eq(note->peer_slot, 0);
	cr_assert_eq(note->remote_port, 51999);
	rte_pktmbuf_free(punted[0]);
	/* A forged one from there is not reported. */
	msg[len - 1] ^= 1;
	receive(msg, len, 51998, out);
	cr_assert_eq(rte_ring_count(fx.w->punt), 0);

	/* In one burst, one message from the endpoint and one from elsewhere: the endpoint
	 * is read once for the burst, and the second is still reported. */
	struct rte_mbuf *burst[2];
	uint8_t msg2[256];
	size_t len2;

	eg_shm_wg(fx.ctx.shm.hdr, 0)->roam_noticed_ms = 0;	/* past the report's rate limit */
	len = peer_message(msg, 4, DP_IPV4(10, 20, 0, 5), 6);
	len2 = peer_message(msg2, 5, DP_IPV4(10, 20, 0, 5), 6);
	burst[0] = frame(wan, PEER_IP, OUR_IP, 51000, 51820, msg, len);
	burst[1] = frame(wan, PEER_IP, OUR_IP, 51997, 51820, msg2, len2);
	dp_worker_process(fx.w, fx.table, wan, burst, 2);
	n = take_tx(lan, out, 8);
	cr_assert_eq(n, 2, "both are delivered");
	rte_pktmbuf_free_bulk(out, n);
	n = rte_ring_dequeue_burst(fx.w->punt, (void **)punted, 4, NULL);
	cr_assert_eq(n, 1, "one report, for the second");
	note = rte_pktmbuf_mtod(punted[0], const struct eg_msg *);
	cr_assert_eq(note->kind, EG_MSG_WG_ROAM);
	cr_assert_eq(note->remote_port, 51997);
	rte_pktmbuf_free(punted[0]);

	/* From another address with the endpoint's port: reported too, with that address. */
	eg_shm_wg(fx.ctx.shm.hdr, 0)->roam_noticed_ms = 0;
	len = peer_message(msg, 6, DP_IPV4(10, 20, 0, 5), 6);
	burst[0] = frame(wan, PEER_IP + 1, OUR_IP, 51000, 51820, msg, len);
	dp_worker_process(fx.w, fx.table, wan, burst, 1);
	n = take_tx(lan, out, 8);
	cr_assert_eq(n, 1);
	rte_pktmbuf_free_bulk(out, n);
	n = rte_ring_dequeue_burst(fx.w->punt, (void **)punted, 4, NULL);
	cr_assert_eq(n, 1, "the new address is reported");
	note = rte_pktmbuf_mtod(punted[0], const struct eg_msg *);
	cr_assert_eq(note->remote_port, 51000);
	cr_assert_eq(rte_be_to_cpu_32(*(const uint32_t *)note->remote), PEER_IP + 1);
	rte_pktmbuf_free(punted[0]);
}

Test(wg_path, a_responder_sends_only_after_it_received, .init = setup)
{
	struct eg_wg_peer_slot *ps = eg_shm_wg(fx.ctx.shm.hdr, 0);
	struct wg_keypair newer = peer_keys;
	uint32_t idx = 0x77770000 | (0 * EG_WG_KEYPAIRS + 2);
	struct rte_mbuf *in, *out[8];
	uint8_t msg[512];
	size_t len;

	/* A newer keypair from a handshake we answered: not to be sent with yet. */
	newer.remote_index = idx;
	newer.send[0] ^= 0xff;
	{
		uint8_t s[32], r[32];

		memcpy(s, newer.recv, 32);
		memcpy(r, newer.send, 32);
		dp_offline_wg_keypair(&fx, 0, 2, s, r, idx, REMOTE_INDEX + 1, false, 2);
	}
	cr_assert_eq(ps->send_kp, 1, "still the old one");
	len = wg_seal_data(&newer, 0, NULL, 0, msg);	/* the initiator's confirming keepalive */
	receive(msg, len, 51000, out);
	cr_assert_eq(ps->send_kp, 2, "the first packet under it makes it the sending keypair");
	cr_assert(eg_wg_kp(ps, 2)->confirmed);

	/* An older keypair's packets do not move it back. */
	len = peer_message(msg, 4, DP_IPV4(10, 20, 0, 5), 7);
	rte_pktmbuf_free_bulk(out, receive(msg, len, 51000, out));
	cr_assert_eq(ps->send_kp, 2);

	/* Without any keypair to send with, packets are dropped and control asked. */
	__atomic_store_n(&ps->send_kp, EG_WG_NO_KEYPAIR, __ATOMIC_RELEASE);
	ps->want_handshake = 0;
	in = frame(lan, DP_IPV4(10, 10, 0, 2), DP_IPV4(10, 20, 1, 1), 7000, 7001, msg, 20);
	dp_worker_process(fx.w, fx.table, lan, &in, 1);
	cr_assert_eq(take_tx(wan, out, 8), 0);
	cr_assert_eq(drops(EG_DROP_WG_NO_SESSION), 1);
	cr_assert(ps->want_handshake);
}

Test(wg_path, counters_run_out_as_the_protocol_says, .init = setup)
{
	struct eg_wg_peer_slot *ps = eg_shm_wg(fx.ctx.shm.hdr, 0);
	struct rte_mbuf *in[3], *out[8];
	uint8_t pl[20] = {0};
	unsigned n;

	/* REKEY_AFTER_MESSAGES (1000 here) asks for a handshake; REJECT (20000) stops. */
	kp->send_counter = 998;
	in[0] = frame(lan, DP_IPV4(10, 10, 0, 2), DP_IPV4(10, 20, 1, 1), 7000, 7001, pl, sizeof(pl));
	dp_worker_process(fx.w, fx.table, lan, in, 1);
	rte_pktmbuf_free_bulk(out, take_tx(wan, out, 8));
	cr_assert_not(ps->want_handshake);
	in[0] = frame(lan, DP_IPV4(10, 10, 0, 2), DP_IPV4(10, 20, 1, 1), 7000, 7001, pl, sizeof(pl));
	dp_worker_process(fx.w, fx.table, lan, in, 1);
	rte_pktmbuf_free_bulk(out, take_tx(wan, out, 8));
	cr_assert(ps->want_handshake, "counter 999 is the 1000th message");

	kp->send_counter = 19999;
	for (unsigned i = 0; i < 3; i++)
		in[i] = frame(lan, DP_IPV4(10, 10, 0, 2), DP_IPV4(10, 20, 1, 1), 7000, 7001, pl, sizeof(pl));
	dp_worker_process(fx.w, fx.table, lan, in, 3);
	n = take_tx(wan, out, 8);
	cr_assert_eq(n, 1, "counter 19999 is the last one");
	cr_assert_eq(wg_data_counter(rte_pktmbuf_mtod_offset(out[0], const uint8_t *, MSG_AT)), 19999);
	rte_pktmbuf_free_bulk(out, n);
	cr_assert_eq(drops(EG_DROP_WG_KEY_EXHAUSTED), 2);
}
