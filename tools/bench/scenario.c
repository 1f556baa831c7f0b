#include "scenario.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_udp.h>

#include "drop_reasons.h"
#include "offline.h"
#include "replay.h"
#include "sa.h"
#include "shm.h"
#include "wg_noise.h"
#include "wg_slot.h"
#include "worker.h"

#define DIE(fmt, ...) do { fprintf(stderr, "egress-bench: " fmt "\n", ##__VA_ARGS__); exit(2); } while (0)

/* ESP keys: 16 or 32 bytes and a 4-byte salt. */
#define K128 "000102030405060708090a0b0c0d0e0f" "a0a1a2a3"
#define K256 "101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f" "b0b1b2b3"
#define WG_OUR_KEY "0BKc8qw9F5m+FFQ6q0P4QTDXTyPcZN07LHrw5Znc3G8="
#define WG_PEER_PUB "3Fs5UY9v5otH4pfY5gghORWGlrxEWLvTnGeniDSCWV0="

/* The policies send 198.51.100.0/24 direct and 10.21/10.22/10.20.0.0/16 into the tunnels;
 * the gen-* ones seal packets from those networks to the site host, which, turned around,
 * are what the decap scenarios receive. Each SA and the peer's keypair serve both
 * directions with one key, so what we seal we can open. */
static const char config_fmt[] =
	"{\"instance\": \"%s\", \"dataplane\": {\"workers\": 1, \"idle_backoff\": false, \"table_mb\": 8,"
	" \"nat\": {\"sessions\": 1100000, \"hosts\": 1024, \"ports_per_block\": 512, \"blocks_per_host\": 32},"
	" \"ports\": ["
	"  {\"name\": \"lan0\", \"role\": \"site\", \"device\": \"net_null0\", \"ipv4\": \"10.10.0.1/24\","
	"   \"mac\": \"02:00:00:00:00:01\", \"neighbours\": [{\"ip\": \"10.10.0.2\", \"mac\": \"02:00:00:00:00:02\"}]},"
	"  {\"name\": \"wan0\", \"role\": \"uplink\", \"device\": \"net_null1\", \"ipv4\": \"192.0.2.1/24\","
	"   \"gateway\": \"192.0.2.254\", \"mac\": \"02:00:00:00:01:01\","
	"   \"neighbours\": [{\"ip\": \"192.0.2.254\", \"mac\": \"02:00:00:00:01:fe\"},"
	"                  {\"ip\": \"192.0.2.9\", \"mac\": \"02:00:00:00:01:09\"}]}]},"
	" \"ipsec\": {\"sas\": ["
	"  {\"spi\": 256, \"direction\": \"out\", \"local\": \"192.0.2.1\", \"remote\": \"192.0.2.254\", \"aead\": \"aes-gcm-128\", \"key\": \"" K128 "\"},"
	"  {\"spi\": 256, \"direction\": \"in\", \"local\": \"192.0.2.1\", \"remote\": \"192.0.2.254\", \"aead\": \"aes-gcm-128\", \"key\": \"" K128 "\"},"
	"  {\"spi\": 512, \"direction\": \"out\", \"local\": \"192.0.2.1\", \"remote\": \"192.0.2.254\", \"aead\": \"aes-gcm-256\", \"key\": \"" K256 "\"},"
	"  {\"spi\": 512, \"direction\": \"in\", \"local\": \"192.0.2.1\", \"remote\": \"192.0.2.254\", \"aead\": \"aes-gcm-256\", \"key\": \"" K256 "\"}]},"
	" \"wireguard\": {\"private_key\": \"" WG_OUR_KEY "\", \"listen_port\": 51820,"
	"  \"peers\": [{\"name\": \"peer\", \"public_key\": \"" WG_PEER_PUB "\", \"endpoint\": \"192.0.2.9:51000\","
	"   \"allowed_ips\": [\"10.20.0.0/16\"]}]},"
	" \"egresses\": [{\"name\": \"direct\", \"type\": \"direct\", \"port\": \"wan0\"},"
	"  {\"name\": \"direct-snat\", \"type\": \"direct\", \"port\": \"wan0\","
	"   \"snat\": {\"pool\": [\"192.0.2.100\", \"192.0.2.101\"]}},"
	"  {\"name\": \"esp128\", \"type\": \"ipsec\", \"sa_out\": 256, \"sa_in\": 256},"
	"  {\"name\": \"esp256\", \"type\": \"ipsec\", \"sa_out\": 512, \"sa_in\": 512},"
	"  {\"name\": \"wg\", \"type\": \"wireguard\", \"peer\": \"peer\"}],"
	" \"policies\": ["
	"  {\"name\": \"direct\", \"priority\": 10, \"match\": {\"dst\": [\"198.51.100.0/24\"]}, \"egresses\": [\"direct\"], \"strategy\": \"pinned\"},"
	"  {\"name\": \"direct-snat\", \"priority\": 14, \"match\": {\"dst\": [\"198.51.101.0/24\"]}, \"egresses\": [\"direct-snat\"], \"strategy\": \"pinned\"},"
	"  {\"name\": \"esp128\", \"priority\": 11, \"match\": {\"dst\": [\"10.21.0.0/16\"]}, \"egresses\": [\"esp128\"], \"strategy\": \"pinned\"},"
	"  {\"name\": \"esp256\", \"priority\": 12, \"match\": {\"dst\": [\"10.22.0.0/16\"]}, \"egresses\": [\"esp256\"], \"strategy\": \"pinned\"},"
	"  {\"name\": \"wg\", \"priority\": 13, \"match\": {\"dst\": [\"10.20.0.0/16\"]}, \"egresses\": [\"wg\"], \"strategy\": \"pinned\"},"
	"  {\"name\": \"gen-esp128\", \"priority\": 20, \"match\": {\"src\": [\"10.21.0.0/16\"]}, \"egresses\": [\"esp128\"], \"strategy\": \"pinned\"},"
	"  {\"name\": \"gen-esp256\", \"priority\": 21, \"match\": {\"src\": [\"10.22.0.0/16\"]}, \"egresses\": [\"esp256\"], \"strategy\": \"pinned\"},"
	"  {\"name\": \"gen-wg\", \"priority\": 22, \"match\": {\"src\": [\"10.20.0.0/16\"]}, \"egresses\": [\"wg\"], \"strategy\": \"pinned\"}]}";

const struct bench_scenario bench_scenarios[] = {
	{"direct", BENCH_DIRECT, BENCH_NONE, EG_AEAD_NONE, 0, false},
	{"direct-snat", BENCH_DIRECT, BENCH_NONE, EG_AEAD_NONE, 0, true},
	{"esp-gcm128-encap", BENCH_ENCAP, BENCH_ESP, EG_AEAD_AES_GCM_128, 21},
	{"esp-gcm128-decap", BENCH_DECAP, BENCH_ESP, EG_AEAD_AES_GCM_128, 21},
	{"esp-gcm256-encap", BENCH_ENCAP, BENCH_ESP, EG_AEAD_AES_GCM_256, 22},
	{"esp-gcm256-decap", BENCH_DECAP, BENCH_ESP, EG_AEAD_AES_GCM_256, 22},
	{"wg-encap", BENCH_ENCAP, BENCH_WG, EG_AEAD_CHACHA20_POLY1305, 20},
	{"wg-decap", BENCH_DECAP, BENCH_WG, EG_AEAD_CHACHA20_POLY1305, 20},
};
const unsigned bench_n_scenarios = sizeof(bench_scenarios) / sizeof(bench_scenarios[0]);

enum {
	INPUTS = 1056,			/* distinct input frames: 33 bursts, 88 IMIX patterns */
	BURST = 32,
	ETH = 14, IP4 = 20, UDP = 8,
	ESP_HDR = 8, ESP_IV = 8, ICV = 16,
	WG_INDEX = 0x5a5a0001,		/* peer slot 0, keypair 1 */
	SITE_HOST = DP_IPV4(10, 10, 0, 2),
};

static const uint8_t site_mac[6] = {0x02, 0, 0, 0, 0, 0x02}, gateway_mac[6] = {0x02, 0, 0, 0, 0x01, 0xfe},
		     peer_mac[6] = {0x02, 0, 0, 0, 0x01, 0x09};

static struct dp_offline fx;
static uint16_t lan, wan;
static struct eg_wg_keypair *wg_kp;
static struct wg_keypair wg_keys;		/* the same keys for libsodium, to check */
static struct eg_aead_ctx check_aead;
static struct eg_aead_key *esp_key[2];		/* AES-GCM-128, -256 */
static uint8_t esp_salt[2][4];

struct frame {
	uint16_t len;
	uint8_t data[1536];
};

static struct frame *inputs, *inners;	/* what goes in; for decap, the packets before sealing */

enum { FILL_PER_POLICY = 256 };		/* destinations per filler policy (the most a list holds) */

/* config_fmt with the filler policies in front of the scenarios' and room in the table
 * slot for their rules. Caller frees. */
static char *config_with_rules(unsigned rules)
{
	/* At most 20 bytes per destination, 128 per policy around them. */
	size_t cap = sizeof(config_fmt) + (size_t)rules * 24 + ((size_t)rules / FILL_PER_POLICY + 1) * 128, len;
	char *s = malloc(cap), *at;
	const char *tail = strstr(config_fmt, " \"policies\": [");

	if (!s || !tail)
		DIE("out of memory");
	len = (size_t)(tail - config_fmt);
	memcpy(s, config_fmt, len);
	at = s + len;
	at += sprintf(at, " \"policies\": [");
	for (unsigned p = 0; p * FILL_PER_POLICY < rules; p++) {
		at += sprintf(at, "{\"name\": \"fill%u\", \"priority\": 1, \"egresses\": [\"direct\"], \"match\": {\"dst\": [", p);
		for (unsigned k = 0; k < FILL_PER_POLICY && p * FILL_PER_POLICY + k < rules; k++) {
			unsigned r = p * FILL_PER_POLICY + k;

			at += sprintf(at, "%s\"100.%u.%u.%u/32\"", k ? "," : "", 64 + (r >> 16), (r >> 8) & 0xff, r & 0xff);
		}
		at += sprintf(at, "]}},");
	}
	strcpy(at, tail + strlen(" \"policies\": ["));
	/* Rules take room in the table slot: 64 MiB holds a million. */
	char *mb = strstr(s, "\"table_mb\": 8");

	if (mb && rules > 1000)
		memcpy(mb, "\"table_mb\":64", 13);	/* as long as what it replaces */
	return s;
}

unsigned bench_context_start(unsigned rules)
{
	uint8_t key[32];
	char *cfg;

	if (rules > 4000000)
		DIE("--rules: at most 4000000");
	cfg = config_with_rules(rules);
	dp_offline_start(&fx, "bench", cfg, 2048, 8192);
	free(cfg);
	dp_offline_publish(&fx);
	lan = dp_offline_port(&fx, "lan0");
	wan = dp_offline_port(&fx, "wan0");
	for (unsigned i = 0; i < 32; i++)
		key[i] = (uint8_t)(0x40 + i);
	wg_kp = dp_offline_wg_keypair(&fx, 0, 1, key, key, WG_INDEX, WG_INDEX, true, 1);
	memcpy(wg_keys.send, key, 32);
	memcpy(wg_keys.recv, key, 32);
	wg_keys.local_index = wg_keys.remote_index = WG_INDEX;
	if (eg_aead_ctx_init(&check_aead, fx.ctx.imb_arch) != 0)
		DIE("no crypto manager");
	/* The outbound SAs' keys, as the config gave them, to open what the worker seals. */
	for (unsigned i = 0; i < 2; i++) {
		uint32_t slot;
		const struct eg_sa_cfg *sa;

		dp_offline_sa(&fx, i ? 512 : 256, EG_SA_DIR_OUT, &slot);
		sa = &fx.ctx.cfg.sas[slot];
		esp_key[i] = aligned_alloc(64, sizeof(*esp_key[i]));
		memcpy(esp_salt[i], sa->salt, sizeof(esp_salt[i]));
		if (!esp_key[i] || eg_aead_key_set(&check_aead, esp_key[i], i ? EG_AEAD_AES_GCM_256 : EG_AEAD_AES_GCM_128,
						   sa->key, sa->key_len))
			DIE("ESP check key");
	}
	inputs = calloc(INPUTS, sizeof(*inputs));
	inners = calloc(INPUTS, sizeof(*inners));
	if (!inputs || !inners)
		DIE("out of memory");
	return fx.table->n_rules;
}

unsigned bench_imb_arch(void)
{
	return fx.ctx.imb_arch;
}

uint64_t bench_tsc_hz(void)
{
	return fx.ctx.tsc_hz;
}

uint32_t bench_aead_len(const struct bench_scenario *s, uint16_t frame_len, uint32_t *aad_len)
{
	uint32_t ip = frame_len - ETH;

	*aad_len = s->tunnel == BENCH_ESP ? 8 : 0;
	if (s->tunnel == BENCH_ESP)
		return (ip + 2 + 3) & ~3u;	/* padding and trailer to 4 bytes (RFC 4303) */
	if (s->tunnel == BENCH_WG)
		return (ip + 15) & ~15u;	/* padding to 16 (the tunnel MTU is not reached here) */
	return 0;
}

/* An Ethernet/IPv4/UDP frame of len bytes from the site host's MAC to port's. */
static void site_frame(struct frame *f, uint16_t port, uint16_t len, uint32_t src, uint32_t dst, uint16_t sport,
		       unsigned seed)
{
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)f->data;
	uint8_t payload[1536];
	uint16_t pl = (uint16_t)(len - ETH - IP4 - UDP);

	for (unsigned i = 0; i < pl; i++)
		payload[i] = (uint8_t)(i * 7 + seed);
	eth->dst_addr = fx.ctx.ports[port].mac;
	memcpy(eth->src_addr.addr_bytes, site_mac, 6);
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	dp_offline_ipv4_udp(f->data + ETH, src, dst, sport, 7000, payload, pl, false, (uint16_t)seed);
	f->len = len;
}

/* Flow f of up to 2^20: a UDP source port (14 bits) and the last byte of the destination. */
static void set_flow(uint8_t *frame, unsigned f)
{
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(frame + ETH);
	struct rte_udp_hdr *u = (struct rte_udp_hdr *)(ip + 1);
	uint32_t dst = rte_be_to_cpu_32(ip->dst_addr);

	u->src_port = rte_cpu_to_be_16((uint16_t)(1024 + (f & 0x3fff)));
	ip->dst_addr = rte_cpu_to_be_32((dst & 0xffffff00u) | ((f >> 14) + 1));
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
}

static struct rte_mbuf *to_mbuf(const struct frame *f)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(fx.ctx.pool);
	uint8_t *d = m ? (uint8_t *)rte_pktmbuf_append(m, f->len) : NULL;

	if (!d)
		DIE("mbuf pool exhausted");
	memcpy(d, f->data, f->len);
	return m;
}

/* Sends n frames through the worker on port in, and takes what leaves on port out. */
static unsigned through(uint16_t in, struct rte_mbuf **pkts, unsigned n, uint16_t out, struct rte_mbuf **got)
{
	dp_worker_process(fx.w, fx.table, in, pkts, (uint16_t)n);
	n = dp_offline_take_tx(&fx, out, got, 2 * BURST);
	dp_offline_drain(&fx);
	return n;
}

static void reset_replay(const struct bench_scenario *s)
{
	if (s->tunnel == BENCH_WG) {
		eg_replay_init(eg_wg_kp_replay(wg_kp), EG_WG_REPLAY_WINDOW);
	} else {
		struct eg_replay *r = eg_sa_replay(dp_offline_sa(&fx, s->alg == EG_AEAD_AES_GCM_128 ? 256 : 512,
								 EG_SA_DIR_IN, NULL));

		eg_replay_init(r, r->window);
	}
}

/* The inputs for a size: site frames, or for decap, sealed frames turned around. */
static void build_inputs(const struct bench_scenario *s, const struct bench_size *z, unsigned flows)
{
	uint32_t net = DP_IPV4(10, s->net, 0, 0);

	for (unsigned i = 0; i < INPUTS; i++) {
		uint16_t len = z->len[i % z->n];

		if (s->kind == BENCH_DIRECT)
			site_frame(&inputs[i], lan, len, SITE_HOST, DP_IPV4(198, 51, s->snat ? 101 : 100, 1), 1024, i);
		else if (s->kind == BENCH_ENCAP)
			site_frame(&inputs[i], lan, len, SITE_HOST, net | 1, 1024, i);
		else
			site_frame(&inners[i], lan, len, net | 1, SITE_HOST, (uint16_t)(1024 + i % flows), i);
		if (s->kind != BENCH_DECAP)
			set_flow(inputs[i].data, i % flows);
	}
	if (s->kind != BENCH_DECAP)
		return;
	/* Seal them the way the worker does (gen-* policies), then address them to us as
	 * the far end would. */
	for (unsigned i = 0; i < INPUTS; i += BURST) {
		struct rte_mbuf *pkts[BURST], *got[2 * BURST];

		for (unsigned j = 0; j < BURST; j++)
			pkts[j] = to_mbuf(&inners[i + j]);
		if (through(lan, pkts, BURST, wan, got) != BURST)
			DIE("%s: sealing the inputs failed", s->name);
		for (unsigned j = 0; j < BURST; j++) {
			struct frame *f = &inputs[i + j];
			struct rte_ether_hdr *eth = (struct rte_ether_hdr *)f->data;
			struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(f->data + ETH);
			uint32_t a;

			f->len = (uint16_t)rte_pktmbuf_pkt_len(got[j]);
			memcpy(f->data, rte_pktmbuf_mtod(got[j], void *), f->len);
			eth->src_addr = eth->dst_addr;
			eth->dst_addr = fx.ctx.ports[wan].mac;
			a = ip->src_addr;		/* swapping words keeps the checksum */
			ip->src_addr = ip->dst_addr;
			ip->dst_addr = a;
			if (s->tunnel == BENCH_WG) {
				struct rte_udp_hdr *u = (struct rte_udp_hdr *)(ip + 1);
				uint16_t p = u->src_port;

				u->src_port = u->dst_port;
				u->dst_port = p;
			}
		}
		rte_pktmbuf_free_bulk(got, BURST);
	}
	reset_replay(s);
}

/* The inner packet out equals the one in, but for TTL and checksum; the checksum is right. */
static bool same_ip(const uint8_t *out, const uint8_t *in, uint32_t len)
{
	struct rte_ipv4_hdr h;

	memcpy(&h, out, sizeof(h));
	h.hdr_checksum = 0;
	return len >= IP4 && memcmp(out, in, 8) == 0 && memcmp(out + 9, in + 9, 1) == 0 &&
	       memcmp(out + 12, in + 12, len - 12) == 0 && out[8] < in[8] && out[8] + 2 >= in[8] &&
	       rte_ipv4_cksum(&h) == ((const struct rte_ipv4_hdr *)out)->hdr_checksum;
}

static bool check_esp(const struct bench_scenario *s, const uint8_t *d, uint32_t len, const uint8_t *in_ip,
		      uint32_t in_len)
{
	unsigned k = s->alg == EG_AEAD_AES_GCM_256;
	const uint8_t *esp = d + ETH + IP4;
	uint8_t plain[1600], nonce[12];
	uint32_t ct;

	if (len < ETH + IP4 + ESP_HDR + ESP_IV + ICV + 4 || d[ETH + 9] != IPPROTO_ESP)
		return false;
	ct = len - (ETH + IP4 + ESP_HDR + ESP_IV + ICV);
	memcpy(nonce, esp_salt[k], 4);
	memcpy(nonce + 4, esp + ESP_HDR, ESP_IV);
	struct eg_aead_op op = {.key = esp_key[k], .nonce = nonce, .aad = esp, .aad_len = ESP_HDR,
				.src = esp + ESP_HDR + ESP_IV, .dst = plain, .len = ct,
				.tag = (uint8_t *)esp + ESP_HDR + ESP_IV + ct};

	return eg_aead_decrypt_burst(&check_aead, &op, 1) == 1 && plain[ct - 1] == IPPROTO_IPIP &&
	       ct >= in_len + 2 && same_ip(plain, in_ip, in_len);
}

static bool check_wg(const uint8_t *d, uint32_t len, const uint8_t *in_ip, uint32_t in_len)
{
	uint8_t plain[1600];
	long n;

	if (len < ETH + IP4 + UDP + WG_DATA_MIN_LEN || d[ETH + 9] != IPPROTO_UDP)
		return false;
	n = wg_open_data(&wg_keys, d + ETH + IP4 + UDP, len - ETH - IP4 - UDP, plain);
	return n >= (long)in_len && same_ip(plain, in_ip, in_len);
}

/* Through source NAT: from a pool address and the session's port, to the same place, the
 * same payload, the header checksum right, the (absent) UDP checksum still absent. */
static bool check_snat(const uint8_t *out, const uint8_t *in, uint32_t len)
{
	const struct rte_ipv4_hdr *o = (const void *)out, *i = (const void *)in;
	const struct rte_udp_hdr *ou = (const void *)(o + 1), *iu = (const void *)(i + 1);
	uint32_t src = rte_be_to_cpu_32(o->src_addr), sess;
	struct rte_ipv4_hdr h = *o;

	h.hdr_checksum = 0;
	/* Egress ids are config positions here (dataplane/offline.c): direct-snat is 1. */
	sess = eg_nat_find_out(fx.ctx.nat, EG_NAT_UDP, i->src_addr, rte_be_to_cpu_16(iu->src_port), i->dst_addr, 1);
	return len > IP4 + UDP && (src == DP_IPV4(192, 0, 2, 100) || src == DP_IPV4(192, 0, 2, 101)) &&
	       o->dst_addr == i->dst_addr && o->time_to_live + 1 == i->time_to_live &&
	       rte_ipv4_cksum(&h) == o->hdr_checksum && sess != EG_NAT_NONE &&
	       eg_nat_sessions(fx.ctx.nat)[sess].out_port == rte_be_to_cpu_16(ou->src_port) &&
	       eg_nat_sessions(fx.ctx.nat)[sess].out_addr == o->src_addr && ou->dst_port == iu->dst_port &&
	       ou->dgram_cksum == 0 && memcmp(out + IP4 + 4, in + IP4 + 4, len - IP4 - 4) == 0 &&
	       ou->dgram_len == iu->dgram_len;
}

static bool check_one(const struct bench_scenario *s, const struct rte_mbuf *m, const struct frame *in)
{
	const uint8_t *d = rte_pktmbuf_mtod(m, const uint8_t *);
	uint32_t len = rte_pktmbuf_pkt_len(m);

	switch (s->kind) {
	case BENCH_DIRECT:
		if (s->snat)
			return memcmp(d, gateway_mac, 6) == 0 && len == in->len &&
			       check_snat(d + ETH, in->data + ETH, in->len - ETH);
		return memcmp(d, gateway_mac, 6) == 0 && len == in->len && same_ip(d + ETH, in->data + ETH, in->len - ETH);
	case BENCH_ENCAP:
		if (s->tunnel == BENCH_ESP)	/* to the SA's remote, the gateway */
			return memcmp(d, gateway_mac, 6) == 0 && check_esp(s, d, len, in->data + ETH, in->len - ETH);
		return memcmp(d, peer_mac, 6) == 0 && check_wg(d, len, in->data + ETH, in->len - ETH);
	case BENCH_DECAP:
		return memcmp(d, site_mac, 6) == 0 && len == in->len && same_ip(d + ETH, in->data + ETH, in->len - ETH);
	}
	return false;
}

static uint64_t drop_total(void)
{
	uint64_t n = 0;

	for (unsigned r = 0; r < EG_DROP_SLOTS; r++)
		n += fx.w->shm->drop[r];
	return n;
}

static uint64_t snat_made;
static double snat_cycles_each;

void bench_snat_setup(uint64_t *sessions, double *cycles_each, double *bytes_each)
{
	*sessions = snat_made;
	*cycles_each = snat_cycles_each;
	*bytes_each = (double)fx.ctx.shm.hdr->nat_size / fx.ctx.nat->p.sessions;
}

/* The NAT table filled before the first direct-snat run: a 64-byte packet of every flow,
 * each making its session (timed apart, as the cost of a flow's first packet). */
static void snat_populate(void)
{
	struct frame f;
	uint64_t cycles = 0;

	if (snat_made)
		return;
	site_frame(&f, lan, 64, SITE_HOST, DP_IPV4(198, 51, 101, 1), 1024, 0);
	for (unsigned flow = 0; flow < BENCH_SNAT_SESSIONS; flow += BURST) {
		struct rte_mbuf *pkts[BURST], *got[2 * BURST];
		unsigned n;
		uint64_t t0;

		for (unsigned j = 0; j < BURST; j++) {
			pkts[j] = to_mbuf(&f);
			set_flow(rte_pktmbuf_mtod(pkts[j], uint8_t *), flow + j);
		}
		t0 = rte_rdtsc();
		dp_worker_process(fx.w, fx.table, lan, pkts, BURST);
		cycles += rte_rdtsc() - t0;
		n = dp_offline_take_tx(&fx, wan, got, 2 * BURST);
		rte_pktmbuf_free_bulk(got, n);
		dp_offline_drain(&fx);
	}
	snat_made = fx.ctx.nat->sessions;
	snat_cycles_each = (double)cycles / BENCH_SNAT_SESSIONS;
	if (snat_made != BENCH_SNAT_SESSIONS)
		DIE("direct-snat: %llu sessions made of %u", (unsigned long long)snat_made, BENCH_SNAT_SESSIONS);
}

int bench_run(const struct bench_scenario *s, const struct bench_size *z, uint64_t packets, unsigned flows,
	      bool check, struct bench_result *r)
{
	uint16_t in_port = s->kind == BENCH_DECAP ? wan : lan, out_port = s->kind == BENCH_DECAP ? lan : wan;
	uint64_t bursts = (packets + BURST - 1) / BURST, drops0, drops_by[EG_DROP_SLOTS];
	bool many_flows = s->kind != BENCH_DECAP && flows > INPUTS;	/* more than the inputs carry */
	unsigned next = 0, flow = 0;

	memset(r, 0, sizeof(*r));
	if (flows == 0)
		flows = 1;
	if (s->snat)
		snat_populate();
	build_inputs(s, z, flows);
	drops0 = drop_total();
	memcpy(drops_by, fx.w->shm->drop, sizeof(drops_by));
	for (uint64_t b = 0; b < bursts; b++) {
		struct rte_mbuf *pkts[BURST], *got[2 * BURST];
		const struct frame *sent[BURST];
		unsigned flow_of[BURST], n;
		uint64_t t0;

		if (next == 0 && s->kind == BENCH_DECAP && b)
			reset_replay(s);
		for (unsigned j = 0; j < BURST; j++) {
			sent[j] = s->kind == BENCH_DECAP ? &inners[next] : &inputs[next];
			pkts[j] = to_mbuf(&inputs[next]);
			if (many_flows) {
				flow_of[j] = flow++ % flows;
				set_flow(rte_pktmbuf_mtod(pkts[j], uint8_t *), flow_of[j]);
			}
			r->frame_bytes += inputs[next].len;
			next = (next + 1) % INPUTS;
		}
		/* Only the worker's own processing is timed: filling mbufs stands in for the
		 * NIC's receive DMA, and taking them back for its transmit. */
		t0 = rte_rdtsc();
		dp_worker_process(fx.w, fx.table, in_port, pkts, BURST);
		r->cycles += rte_rdtsc() - t0;
		n = dp_offline_take_tx(&fx, out_port, got, 2 * BURST);
		if (check) {
			for (unsigned j = 0; j < n && j < BURST; j++) {
				const struct frame *want = sent[j];
				struct frame patched;

				if (many_flows) {	/* compare with the flow written into the mbuf */
					patched = *want;
					set_flow(patched.data, flow_of[j]);
					want = &patched;
				}
				r->checked++;
				if (!check_one(s, got[j], want))
					r->check_failures++;
			}
		}
		r->packets += BURST;
		r->out_packets += n;
		rte_pktmbuf_free_bulk(got, n);
		dp_offline_drain(&fx);
	}
	r->drops = drop_total() - drops0;
	if (r->drops)
		for (unsigned k = 0; k < EG_DROP_MAX; k++)
			if (fx.w->shm->drop[k] != drops_by[k])
				fprintf(stderr, "egress-bench: %s: %llu dropped as %s\n", s->name,
					(unsigned long long)(fx.w->shm->drop[k] - drops_by[k]), eg_drop_names[k]);
	double secs = (double)r->cycles / (double)fx.ctx.tsc_hz;

	r->mpps = secs > 0 ? (double)r->packets / secs / 1e6 : 0;
	r->gbps = secs > 0 ? (double)r->frame_bytes * 8 / secs / 1e9 : 0;
	r->cycles_per_packet = r->packets ? (double)r->cycles / (double)r->packets : 0;
	return 0;
}
