#include "scenario.h"

#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_pause.h>
#include <rte_udp.h>

#include "churn.h"
#include "drop_reasons.h"
#include "flow_cache.h"
#include "ledger.h"
#include "nonces.h"
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
 * directions with one key, so what we seal we can open. The config is put together in
 * pieces (config_text) because --rules and --tunnels add to several of its lists. The
 * spare egress and the failover policy are for table churn: publishes alternate between
 * tables where spare is up and down, as a path's probes would flip it. */
static const char cfg_head[] =
	"{\"instance\": \"%s\", \"dataplane\": {\"workers\": @W, \"idle_backoff\": false, \"table_mb\": @T,"
	" \"nat\": {\"sessions\": 1100000, \"hosts\": 1024, \"ports_per_block\": 512, \"blocks_per_host\": 32},"
	" \"ports\": ["
	"  {\"name\": \"lan0\", \"role\": \"site\", \"device\": \"net_null0\", \"ipv4\": \"10.10.0.1/24\","
	"   \"mac\": \"02:00:00:00:00:01\", \"neighbours\": [{\"ip\": \"10.10.0.2\", \"mac\": \"02:00:00:00:00:02\"}]},"
	"  {\"name\": \"wan0\", \"role\": \"uplink\", \"device\": \"net_null1\", \"ipv4\": \"192.0.2.1/24\","
	"   \"gateway\": \"192.0.2.254\", \"mac\": \"02:00:00:00:01:01\","
	"   \"neighbours\": [{\"ip\": \"192.0.2.254\", \"mac\": \"02:00:00:00:01:fe\"},"
	"                  {\"ip\": \"192.0.2.9\", \"mac\": \"02:00:00:00:01:09\"}]}]},";
static const char cfg_sas[] =
	"  {\"spi\": 256, \"direction\": \"out\", \"local\": \"192.0.2.1\", \"remote\": \"192.0.2.254\", \"aead\": \"aes-gcm-128\", \"key\": \"" K128 "\"},"
	"  {\"spi\": 256, \"direction\": \"in\", \"local\": \"192.0.2.1\", \"remote\": \"192.0.2.254\", \"aead\": \"aes-gcm-128\", \"key\": \"" K128 "\", \"replay_window\": 4096},"
	"  {\"spi\": 512, \"direction\": \"out\", \"local\": \"192.0.2.1\", \"remote\": \"192.0.2.254\", \"aead\": \"aes-gcm-256\", \"key\": \"" K256 "\"},"
	"  {\"spi\": 512, \"direction\": \"in\", \"local\": \"192.0.2.1\", \"remote\": \"192.0.2.254\", \"aead\": \"aes-gcm-256\", \"key\": \"" K256 "\", \"replay_window\": 4096}";
static const char cfg_peers[] =
	"  {\"name\": \"peer\", \"public_key\": \"" WG_PEER_PUB "\", \"endpoint\": \"192.0.2.9:51000\","
	"   \"allowed_ips\": [\"10.20.0.0/16\"]}";
static const char cfg_egresses[] =
	"  {\"name\": \"direct\", \"type\": \"direct\", \"port\": \"wan0\"},"
	"  {\"name\": \"direct-snat\", \"type\": \"direct\", \"port\": \"wan0\","
	"   \"snat\": {\"pool\": [\"192.0.2.100\", \"192.0.2.101\"]}},"
	"  {\"name\": \"esp128\", \"type\": \"ipsec\", \"sa_out\": 256, \"sa_in\": 256},"
	"  {\"name\": \"esp256\", \"type\": \"ipsec\", \"sa_out\": 512, \"sa_in\": 512},"
	"  {\"name\": \"wg\", \"type\": \"wireguard\", \"peer\": \"peer\"},"
	"  {\"name\": \"spare\", \"type\": \"direct\", \"port\": \"wan0\"}";
static const char cfg_policies[] =
	"  {\"name\": \"direct\", \"priority\": 10, \"match\": {\"dst\": [\"198.51.100.0/24\"]}, \"egresses\": [\"direct\"], \"strategy\": \"pinned\"},"
	"  {\"name\": \"direct-snat\", \"priority\": 14, \"match\": {\"dst\": [\"198.51.101.0/24\"]}, \"egresses\": [\"direct-snat\"], \"strategy\": \"pinned\"},"
	"  {\"name\": \"esp128\", \"priority\": 11, \"match\": {\"dst\": [\"10.21.0.0/16\"]}, \"egresses\": [\"esp128\"], \"strategy\": \"pinned\"},"
	"  {\"name\": \"esp256\", \"priority\": 12, \"match\": {\"dst\": [\"10.22.0.0/16\"]}, \"egresses\": [\"esp256\"], \"strategy\": \"pinned\"},"
	"  {\"name\": \"wg\", \"priority\": 13, \"match\": {\"dst\": [\"10.20.0.0/16\"]}, \"egresses\": [\"wg\"], \"strategy\": \"pinned\"},"
	"  {\"name\": \"failover\", \"priority\": 15, \"match\": {\"dst\": [\"203.0.113.0/24\"]}, \"egresses\": [\"spare\", \"direct\"]},"
	"  {\"name\": \"gen-esp128\", \"priority\": 20, \"match\": {\"src\": [\"10.21.0.0/16\"]}, \"egresses\": [\"esp128\"], \"strategy\": \"pinned\"},"
	"  {\"name\": \"gen-esp256\", \"priority\": 21, \"match\": {\"src\": [\"10.22.0.0/16\"]}, \"egresses\": [\"esp256\"], \"strategy\": \"pinned\"},"
	"  {\"name\": \"gen-wg\", \"priority\": 22, \"match\": {\"src\": [\"10.20.0.0/16\"]}, \"egresses\": [\"wg\"], \"strategy\": \"pinned\"}";

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
	INPUTS = 1056,			/* distinct input frames per lane: 33 bursts, 88 IMIX patterns */
	BURST = 32,
	ROUND = INPUTS / BURST,		/* bursts before a lane's inputs come round again */
	ETH = 14, IP4 = 20, UDP = 8,
	ESP_HDR = 8, ESP_IV = 8, ICV = 16,
	WG_RANDOM = 0x5a5a,		/* the random half of our receiver indexes */
	KP = 1,				/* the keypair position the bench installs */
	SITE_HOST = DP_IPV4(10, 10, 0, 2),
	/* The uplink side as the config above has it: our address (every SA's local), the
	 * gateway (every SA's remote), the WireGuard peer's endpoint, and our listen port. */
	UPLINK_ADDR = DP_IPV4(192, 0, 2, 1),
	GATEWAY_ADDR = DP_IPV4(192, 0, 2, 254),
	WG_PEER_ADDR = DP_IPV4(192, 0, 2, 9),
	WG_PEER_PORT = 51000,
	WG_LISTEN_PORT = 51820,
	TUNNEL_SPI = 4096,		/* --tunnels: the ESP SAs' SPIs from here */
	TUNNEL_ESP_NET = 32,		/* --tunnels: tunnel t's network is 10.(NET + t/256).(t%256).0/24 */
	TUNNEL_WG_NET = 48,
	TUNNEL_PRIORITY = 30,
};

static const uint8_t site_mac[6] = {0x02, 0, 0, 0, 0, 0x02}, gateway_mac[6] = {0x02, 0, 0, 0, 0x01, 0xfe},
		     peer_mac[6] = {0x02, 0, 0, 0, 0x01, 0x09};

static struct dp_offline fx;
static uint16_t lan, wan;
static unsigned n_tunnels = 1;			/* --tunnels */
static struct wg_keypair wg_keys;		/* the keypairs' keys for libsodium, to check */
static struct eg_aead_key *esp_key[2];		/* AES-GCM-128, -256: every SA of one has the same */
static uint8_t esp_salt[2][4];

struct frame {
	uint16_t len;
	uint8_t data[1536];
};

/* What goes in, per lane (INPUTS frames each); for decap, the packets before sealing. */
static struct frame *inputs, *inners;

enum { FILL_PER_POLICY = 256 };		/* destinations per filler policy (the most a list holds) */

/* Whether the scenario runs over the --tunnels set (ESP AES-GCM-128 and WireGuard) rather
 * than its single tunnel. */
static bool over_tunnels(const struct bench_scenario *s)
{
	return n_tunnels > 1 && (s->tunnel == BENCH_WG || s->alg == EG_AEAD_AES_GCM_128);
}

/* The network of tunnel t (of --tunnels), host order. */
static uint32_t tunnel_net(const struct bench_scenario *s, unsigned t)
{
	return DP_IPV4(10, (s->tunnel == BENCH_WG ? TUNNEL_WG_NET : TUNNEL_ESP_NET) + t / 256, t % 256, 0);
}

/* The tunnel of --tunnels an inner packet belongs to: its network is the one of the
 * remote end (the destination going out, the source coming back). */
static unsigned frame_tunnel(const struct bench_scenario *s, const uint8_t *ip)
{
	const uint8_t *remote = ip + (s->kind == BENCH_DECAP ? 12 : 16);

	if (!over_tunnels(s))
		return 0;
	return (remote[1] - (s->tunnel == BENCH_WG ? TUNNEL_WG_NET : TUNNEL_ESP_NET)) * 256u + remote[2];
}

/* The SPI of the scenario's ESP tunnel t (t 0 without --tunnels). */
static uint32_t tunnel_spi(const struct bench_scenario *s, unsigned t)
{
	return over_tunnels(s) ? TUNNEL_SPI + t : s->alg == EG_AEAD_AES_GCM_128 ? 256 : 512;
}

/* The peer slot of the scenario's WireGuard tunnel t: slot 0 is the single tunnel's
 * peer, --tunnels peers follow (bench_context_start). */
static unsigned tunnel_peer(const struct bench_scenario *s, unsigned t)
{
	return over_tunnels(s) ? t + 1 : 0;
}

/* A public key for --tunnels peer t (of a private key no one keeps). */
static void tunnel_peer_key(unsigned t, char b64[64])
{
	uint8_t sk[32], pk[32];

	memset(sk, 0, sizeof(sk));
	memcpy(sk + 1, &t, sizeof(t));	/* not byte 0, whose low bits X25519 clears */
	sk[31] = 0x42;
	if (crypto_scalarmult_base(pk, sk) != 0)
		DIE("peer key");
	sodium_bin2base64(b64, 64, pk, sizeof(pk), sodium_base64_VARIANT_ORIGINAL);
}

/* Filler rule r's destination. Most are /32s scattered over the unicast space by a
 * multiplicative hash, away from the first octets the bench's own traffic uses (10, 192,
 * 198), so that the classifier's destination trie is full on every branch, the traffic's
 * too. On-path ones (TCP only, every sixteenth policy) sit inside the networks the UDP
 * traffic goes to, at the very addresses it uses: a lookup reaches them and must reject
 * them on the protocol. */
static uint32_t filler_dst(unsigned r, bool on_path)
{
	uint32_t x = r * 2654435761u;
	unsigned a = 1 + (x >> 24) % 223;

	if (on_path)
		return r % 2 ? DP_IPV4(10, 20 + (r / 2) % 40, (r / 80) % 256, 1)
			     : DP_IPV4(198, 51, 100 + (r / 2) % 2, 1 + (r / 4) % 64);
	if (a == 10 || a == 192 || a == 198)
		a++;
	return DP_IPV4(a, (x >> 16) & 0xff, (x >> 8) & 0xff, (x ^ r) & 0xff);
}

/* The config: the pieces above, with workers workers, rules filler rules in front of the
 * scenarios' policies (filler_dst: /32 destinations no packet matches, some on its path),
 * and tunnels > 1 ESP tunnels and WireGuard peers, each with its own /24. Caller frees. */
static char *config_text(unsigned workers, unsigned rules, unsigned tunnels)
{
	const char *w = strstr(cfg_head, "@W"), *mb = strstr(cfg_head, "@T");
	char *text = NULL;
	size_t len = 0;
	FILE *t = open_memstream(&text, &len);

	if (!t)
		DIE("out of memory");

	/* Rules take room in the table slot, with their classifier about 115 bytes each (64
	 * MiB held 560,000 filler rules and not 600,000): 160 bytes each, and 64 MiB at least
	 * for many rules or tunnels. */
	unsigned table_mb = rules > 1000 || tunnels > 1 ? 64 : 8, rules_mb = (unsigned)((uint64_t)rules * 160 >> 20);

	if (rules_mb > table_mb)
		table_mb = rules_mb + 1;
	fprintf(t, "%.*s%u%.*s%u%s", (int)(w - cfg_head), cfg_head, workers, (int)(mb - w - 2), w + 2, table_mb,
		mb + 2);
	fprintf(t, " \"ipsec\": {\"sas\": [%s", cfg_sas);
	for (unsigned i = 0; tunnels > 1 && i < tunnels; i++)
		for (unsigned in = 0; in < 2; in++)
			fprintf(t, ", {\"spi\": %u, \"direction\": \"%s\", \"local\": \"192.0.2.1\", \"remote\": \"192.0.2.254\","
				" \"aead\": \"aes-gcm-128\", \"key\": \"" K128 "\"%s}",
			    TUNNEL_SPI + i, in ? "in" : "out", in ? ", \"replay_window\": 4096" : "");
	fprintf(t, "]}, \"wireguard\": {\"private_key\": \"" WG_OUR_KEY "\", \"listen_port\": 51820, \"peers\": [%s", cfg_peers);
	for (unsigned i = 0; tunnels > 1 && i < tunnels; i++) {
		char pk[64];

		tunnel_peer_key(i, pk);
		fprintf(t, ", {\"name\": \"p%u\", \"public_key\": \"%s\", \"endpoint\": \"192.0.2.9:51000\","
			" \"allowed_ips\": [\"10.%u.%u.0/24\"]}", i, pk, TUNNEL_WG_NET + i / 256, i % 256);
	}
	fprintf(t, "]}, \"egresses\": [%s", cfg_egresses);
	for (unsigned i = 0; tunnels > 1 && i < tunnels; i++)
		fprintf(t, ", {\"name\": \"esp-t%u\", \"type\": \"ipsec\", \"sa_out\": %u, \"sa_in\": %u},"
			" {\"name\": \"wg-t%u\", \"type\": \"wireguard\", \"peer\": \"p%u\"}",
		    i, TUNNEL_SPI + i, TUNNEL_SPI + i, i, i);
	fprintf(t, "], \"policies\": [");
	for (unsigned p = 0; p * FILL_PER_POLICY < rules; p++) {
		bool on_path = p % 16 == 15;

		fprintf(t, "{\"name\": \"fill%u\", \"priority\": 1, \"egresses\": [\"direct\"], \"match\": {%s\"dst\": [",
			p, on_path ? "\"proto\": \"tcp\", " : "");
		for (unsigned k = 0; k < FILL_PER_POLICY && p * FILL_PER_POLICY + k < rules; k++) {
			uint32_t d = filler_dst(p * FILL_PER_POLICY + k, on_path);

			fprintf(t, "%s\"%u.%u.%u.%u/32\"", k ? "," : "", d >> 24, (d >> 16) & 0xff, (d >> 8) & 0xff, d & 0xff);
		}
		fprintf(t, "]}},");
	}
	fprintf(t, "%s", cfg_policies);
	for (unsigned i = 0; tunnels > 1 && i < tunnels; i++)
		for (unsigned wg = 0; wg < 2; wg++)
			for (unsigned gen = 0; gen < 2; gen++)
				fprintf(t, ", {\"name\": \"%s%s-t%u\", \"priority\": %u, \"match\": {\"%s\": [\"10.%u.%u.0/24\"]},"
					" \"egresses\": [\"%s-t%u\"], \"strategy\": \"pinned\"}",
				    gen ? "gen-" : "", wg ? "wg" : "esp", i, TUNNEL_PRIORITY, gen ? "src" : "dst",
				    (wg ? TUNNEL_WG_NET : TUNNEL_ESP_NET) + i / 256, i % 256, wg ? "wg" : "esp", i);
	fprintf(t, "]}");
	if (fclose(t) != 0)
		DIE("out of memory");
	return text;
}

/* The CPUs this process may run on: the workers the bench can run at once. */
static unsigned cpus_available(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return 1;
	return RTE_MIN((unsigned)CPU_COUNT(&set), (unsigned)BENCH_MAX_LANES);
}

unsigned bench_context_start(unsigned rules, unsigned tunnels)
{
	uint8_t key[32];
	char *cfg;

	if (rules > BENCH_MAX_RULES)
		DIE("--rules: at most %u", BENCH_MAX_RULES);
	if (tunnels == 0 || tunnels > BENCH_MAX_TUNNELS)
		DIE("--tunnels: 1..%u", BENCH_MAX_TUNNELS);
	n_tunnels = tunnels;
	cfg = config_text(cpus_available(), rules, tunnels);
	dp_offline_start(&fx, "bench", cfg, 2048, 16384);
	free(cfg);
	dp_offline_publish(&fx);
	lan = dp_offline_port(&fx, "lan0");
	wan = dp_offline_port(&fx, "wan0");
	for (unsigned i = 0; i < 32; i++)
		key[i] = (uint8_t)(0x40 + i);
	/* Peer slot 0 is the single tunnel's peer; --tunnels peers follow. */
	for (unsigned p = 0; p < (tunnels > 1 ? tunnels + 1 : 1); p++)
		dp_offline_wg_keypair(&fx, p, KP, key, key, eg_wg_index(p, KP, WG_RANDOM), eg_wg_index(p, KP, WG_RANDOM),
				      true, 1);
	memcpy(wg_keys.send, key, 32);
	memcpy(wg_keys.recv, key, 32);
	/* The outbound SAs' keys, as the config gave them, to open what the workers seal. */
	for (unsigned i = 0; i < 2; i++) {
		uint32_t slot;
		const struct eg_sa_cfg *sa;
		struct eg_aead_ctx c;

		dp_offline_sa(&fx, i ? 512 : 256, EG_SA_DIR_OUT, &slot);
		sa = &fx.ctx.cfg.sas[slot];
		esp_key[i] = aligned_alloc(64, sizeof(*esp_key[i]));
		memcpy(esp_salt[i], sa->salt, sizeof(esp_salt[i]));
		if (!esp_key[i] || eg_aead_ctx_init(&c, fx.ctx.imb_arch) != 0 ||
		    eg_aead_key_set(&c, esp_key[i], i ? EG_AEAD_AES_GCM_256 : EG_AEAD_AES_GCM_128, sa->key, sa->key_len))
			DIE("ESP check key");
		eg_aead_ctx_free(&c);
	}
	inputs = calloc((size_t)INPUTS * fx.ctx.n_workers, sizeof(*inputs));
	inners = calloc((size_t)INPUTS * fx.ctx.n_workers, sizeof(*inners));
	if (!inputs || !inners)
		DIE("out of memory");
	return fx.table->n_rules;
}

struct dp_offline *bench_context(void)
{
	return &fx;
}

unsigned bench_workers(void)
{
	return fx.ctx.n_workers;
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

/* The inputs carry what the workers must pass on or follow: a DSCP and ECN code point
 * (ESP copies both to its outer header, WireGuard only ECN), DF on every other frame (ESP
 * copies it) and a UDP checksum (source NAT must adjust it). */
enum {
	INPUT_TOS = 34 << 2 | 2,	/* AF41, ECT(0) */
	OUTER_TTL = 64,			/* the outer header's, as the workers write it */
};

/* The checksum of a 20-byte IPv4 header whose checksum field is zero, as RFC 791 defines
 * it: 0, never 0xffff, which some DPDK releases' rte_ipv4_cksum gave. The frames are
 * compared byte for byte. */
static uint16_t ip_sum_of(const struct rte_ipv4_hdr *h)
{
	return (uint16_t)~rte_raw_cksum(h, IP4);
}

/* The header checksum of the IPv4 packet at ip, after its header changed. */
static void ip_resum(struct rte_ipv4_hdr *ip)
{
	ip->hdr_checksum = 0;
	ip->hdr_checksum = ip_sum_of(ip);
}

/* The UDP checksum of an IPv4/UDP packet at ip, after its ports or addresses changed. */
static void udp_resum(struct rte_ipv4_hdr *ip)
{
	struct rte_udp_hdr *u = (struct rte_udp_hdr *)(ip + 1);

	u->dgram_cksum = 0;
	u->dgram_cksum = rte_ipv4_udptcp_cksum(ip, u);
}

/* An Ethernet/IPv4/UDP frame of len bytes from the site host's MAC to port's. */
static void site_frame(struct frame *f, uint16_t port, uint16_t len, uint32_t src, uint32_t dst, uint16_t sport,
		       unsigned seed)
{
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)f->data;
	struct rte_ipv4_hdr *ip;
	uint8_t payload[1536];
	uint16_t pl = (uint16_t)(len - ETH - IP4 - UDP);

	for (unsigned i = 0; i < pl; i++)
		payload[i] = (uint8_t)(i * 7 + seed);
	eth->dst_addr = fx.ctx.ports[port].mac;
	memcpy(eth->src_addr.addr_bytes, site_mac, 6);
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	dp_offline_ipv4_udp(f->data + ETH, src, dst, sport, 7000, payload, pl, seed & 1, (uint16_t)seed);
	ip = (struct rte_ipv4_hdr *)(f->data + ETH);
	ip->type_of_service = INPUT_TOS;
	ip_resum(ip);
	udp_resum(ip);
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
	udp_resum(ip);	/* the destination is in UDP's pseudo-header */
	ip_resum(ip);
}

/* A multiplier for scattering flows flows: about 0.618 of them (the golden ratio's
 * fraction, whose multiples spread most evenly) and coprime to them, so that multiplying
 * by it modulo flows is a bijection. A fixed prime above 2^20 was 2^20 + 7, which modulo
 * any power of two is 7: a million flows' first 16384 reached 7 destinations of 64. */
static uint64_t flow_scatter(unsigned flows)
{
	uint64_t m = (uint64_t)flows * 618034 / 1000000;

	if (m == 0)
		m = 1;
	for (;; m++) {	/* ends: flows - 1 and flows are coprime */
		uint64_t a = m, b = flows;

		while (b) {
			uint64_t t = a % b;

			a = b;
			b = t;
		}
		if (a == 1)
			return m;
	}
}

/* The k-th flow that lane id of lanes sends, of flows in all. Each lane has the flows f
 * with f % lanes == id, as RSS gives each worker flows of its own (all lanes share them
 * when there are fewer flows than lanes), taken through the scatter's bijection: in
 * order, a short run of a million flows never left set_flow's first destination. */
static unsigned lane_flow(unsigned id, unsigned lanes, unsigned flows, uint64_t scatter, uint64_t k)
{
	unsigned f = flows < lanes ? id % flows : id + lanes * (unsigned)(k % ((flows - id + lanes - 1) / lanes));

	return (unsigned)((uint64_t)f * scatter % flows);
}

/* Flow f of scenario s written into a site frame: over several tunnels its tunnel too
 * (f % tunnels, the network of its destination), so that a lane's distinct flows are the
 * flows it is given, not those times the tunnels the frames happened to carry. */
static void set_scenario_flow(const struct bench_scenario *s, uint8_t *frame, unsigned f)
{
	if (over_tunnels(s)) {
		struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(frame + ETH);

		ip->dst_addr = rte_cpu_to_be_32(tunnel_net(s, f % n_tunnels) | 1);
	}
	set_flow(frame, f);	/* sums the headers again */
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

/* Worker 0 processes a burst on the current table, as its loop would. */
static void process(uint16_t in, struct rte_mbuf **pkts, unsigned n)
{
	uint64_t gen;

	dp_worker_process(fx.w, eg_shm_table_acquire(fx.ctx.shm.hdr, &gen), in, pkts, (uint16_t)n);
	eg_shm_quiescent(fx.ctx.shm.hdr, fx.w->shm);
}

/* Sends n frames through worker 0 on port in, and takes what leaves on port out. */
static unsigned through(uint16_t in, struct rte_mbuf **pkts, unsigned n, uint16_t out, struct rte_mbuf **got)
{
	process(in, pkts, n);
	n = dp_offline_take_tx(&fx, out, got, 2 * BURST);
	dp_offline_drain(&fx);
	return n;
}

/* The scenario's inbound replay windows, one per tunnel, found once by find_windows: the
 * SA lookup is a linear search, and the windows are reset every round. */
static struct eg_replay *windows[BENCH_MAX_TUNNELS];

static void find_windows(const struct bench_scenario *s)
{
	unsigned n = over_tunnels(s) ? n_tunnels : 1;

	for (unsigned t = 0; t < n; t++)
		windows[t] = s->tunnel == BENCH_WG ? eg_wg_kp_replay(eg_wg_kp(eg_shm_wg(fx.ctx.shm.hdr, tunnel_peer(s, t)), KP))
						   : eg_sa_replay(dp_offline_sa(&fx, tunnel_spi(s, t), EG_SA_DIR_IN, NULL));
}

/* Fresh replay windows for the scenario's inbound SAs or keypairs, so its inputs can be
 * opened again: lane lane of lanes resets the tunnels congruent to it, the ones it is
 * dealt (dealt_tunnel) when there are at least as many tunnels as lanes, so that the
 * windows stay in the cache of the core that opens their packets, as they would with
 * RSS. With fewer, lane t resets tunnel t, which every lane shares. */
static void reset_replay(const struct bench_scenario *s, unsigned lane, unsigned lanes)
{
	unsigned n = over_tunnels(s) ? n_tunnels : 1;

	for (unsigned t = lane; t < n; t += lanes)
		eg_replay_init(windows[t], windows[t]->window);
}

_Static_assert((unsigned)BENCH_MAX_TUNNELS <= (unsigned)INPUTS, "a tunnel without frames would see no traffic");

/* The tunnel of frame i of lane k (of lanes) for decap, when there are tunnels. With
 * fewer tunnels than lanes, frame g of all goes to tunnel g % tunnels: with one tunnel,
 * that deals its sequence numbers to every lane, the worst case, where the workers share
 * one replay window. Otherwise each lane gets the tunnels congruent to it, in turn, as RSS
 * does: it hashes the SPI (RTE_ETH_RSS_ESP) or the outer UDP ports, so a tunnel stays on
 * one queue. Site frames going out are any worker's, whatever their tunnel: frame g goes
 * to tunnel g % tunnels. */
static unsigned dealt_tunnel(unsigned i, unsigned k, unsigned lanes, unsigned tunnels)
{
	unsigned mine = (tunnels - k + lanes - 1) / lanes;	/* tunnels congruent to k */

	return tunnels < lanes ? (i * lanes + k) % tunnels : k + lanes * (i % mine);
}

/* The inputs of lanes lanes for a size: site frames (the same for every lane), or for
 * decap, sealed frames turned around and dealt to the lanes in turn (dealt_tunnel). */
static void build_inputs(const struct bench_scenario *s, const struct bench_size *z, unsigned flows, unsigned lanes)
{
	unsigned tunnels = over_tunnels(s) ? n_tunnels : 1, n = s->kind == BENCH_DECAP ? INPUTS * lanes : INPUTS;

	for (unsigned g = 0; g < n; g++) {
		/* for decap: frame i of lane g % lanes */
		unsigned i = s->kind == BENCH_DECAP ? g / lanes : g;
		unsigned t = s->kind == BENCH_DECAP ? dealt_tunnel(i, g % lanes, lanes, tunnels) : g % tunnels;
		uint16_t len = z->len[i % z->n];
		uint32_t net = over_tunnels(s) ? tunnel_net(s, t) : DP_IPV4(10, s->net, 0, 0);

		if (s->kind == BENCH_DIRECT)
			site_frame(&inputs[g], lan, len, SITE_HOST, DP_IPV4(198, 51, s->snat ? 101 : 100, 1), 1024, g);
		else if (s->kind == BENCH_ENCAP)
			site_frame(&inputs[g], lan, len, SITE_HOST, net | 1, 1024, g);
		else
			site_frame(&inners[g], lan, len, net | 1, SITE_HOST, (uint16_t)(1024 + i % flows), g);
		if (s->kind != BENCH_DECAP)
			set_flow(inputs[g].data, g % flows);
	}
	if (s->kind != BENCH_DECAP)
		return;
	/* Seal them the way the worker does (gen-* policies), then address them to us as
	 * the far end would. */
	for (unsigned g = 0; g < n; g += BURST) {
		struct rte_mbuf *pkts[BURST], *got[2 * BURST];

		for (unsigned j = 0; j < BURST; j++)
			pkts[j] = to_mbuf(&inners[g + j]);
		if (through(lan, pkts, BURST, wan, got) != BURST)
			DIE("%s: sealing the inputs failed", s->name);
		for (unsigned j = 0; j < BURST; j++) {
			struct frame *f = &inputs[g + j];
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
	/* Lane k's frames are the k-th of every lanes sealed: gather them, lane by lane. */
	if (lanes > 1) {
		struct frame *sealed = malloc((size_t)n * sizeof(*sealed)), *plain = malloc((size_t)n * sizeof(*plain));

		if (!sealed || !plain)
			DIE("out of memory");
		memcpy(sealed, inputs, (size_t)n * sizeof(*sealed));
		memcpy(plain, inners, (size_t)n * sizeof(*plain));
		for (unsigned g = 0; g < n; g++) {
			inputs[(g % lanes) * INPUTS + g / lanes] = sealed[g];
			inners[(g % lanes) * INPUTS + g / lanes] = plain[g];
		}
		free(sealed);
		free(plain);
	}
	find_windows(s);
	reset_replay(s, 0, 1);
}

/* The IPv4 packet out is in, len bytes, forwarded hops times: its TTL that much lower and
 * its header checksum right, every other byte the same. */
static bool same_ip(const uint8_t *out, const uint8_t *in, uint32_t len, unsigned hops)
{
	struct rte_ipv4_hdr h;

	memcpy(&h, out, sizeof(h));
	h.hdr_checksum = 0;
	return len >= IP4 && memcmp(out, in, 8) == 0 && memcmp(out + 9, in + 9, 1) == 0 &&
	       memcmp(out + 12, in + 12, len - 12) == 0 && out[8] + hops == in[8] &&
	       ip_sum_of(&h) == ((const struct rte_ipv4_hdr *)out)->hdr_checksum;
}

/* The outer IPv4 header of a sealed frame of len bytes: a plain 20-byte header from our
 * uplink address to dst, carrying proto with type of service tos and flags (network
 * order) frag, its length the frame's, the workers' TTL and its checksum right (the decap
 * inputs are the encap outputs, so nothing else would look at it). Only the
 * identification may be anything. */
static bool outer_ok(const uint8_t *d, uint32_t len, uint8_t proto, uint32_t dst, uint8_t tos, uint16_t frag)
{
	const struct rte_ipv4_hdr *ip = (const struct rte_ipv4_hdr *)(d + ETH);

	return len >= ETH + IP4 && ip->version_ihl == 0x45 && ip->next_proto_id == proto &&
	       ip->type_of_service == tos && ip->fragment_offset == frag && ip->time_to_live == OUTER_TTL &&
	       rte_be_to_cpu_16(ip->total_length) == len - ETH && rte_raw_cksum(ip, IP4) == 0xffff &&
	       ip->src_addr == rte_cpu_to_be_32(UPLINK_ADDR) && ip->dst_addr == rte_cpu_to_be_32(dst);
}

/* An ESP frame opened with the SA's key by the lane's own crypto manager (a manager is
 * not for two threads), on the SA of the inner packet's tunnel. */
static bool check_esp(const struct bench_scenario *s, struct eg_aead_ctx *aead, const uint8_t *d, uint32_t len,
		      const uint8_t *in_ip, uint32_t in_len)
{
	unsigned k = s->alg == EG_AEAD_AES_GCM_256;
	const uint8_t *esp = d + ETH + IP4;
	uint8_t plain[1600], nonce[12];
	uint32_t ct, spi, seq;
	uint64_t iv;

	const struct rte_ipv4_hdr *in_hdr = (const struct rte_ipv4_hdr *)in_ip;

	/* DSCP, ECN and DF copied from the inner header (esp_outb.c) */
	if (len < ETH + IP4 + ESP_HDR + ESP_IV + ICV + 4 ||
	    !outer_ok(d, len, IPPROTO_ESP, GATEWAY_ADDR, in_hdr->type_of_service,
		      in_hdr->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG)))
		return false;
	memcpy(&spi, esp, 4);
	/* The IV is the 64-bit sequence number, the header its low half (esp_outb.c). */
	memcpy(&seq, esp + 4, 4);
	memcpy(&iv, esp + ESP_HDR, 8);
	if (rte_be_to_cpu_32(seq) != (uint32_t)rte_be_to_cpu_64(iv))
		return false;
	ct = len - (ETH + IP4 + ESP_HDR + ESP_IV + ICV);
	memcpy(nonce, esp_salt[k], 4);
	memcpy(nonce + 4, esp + ESP_HDR, ESP_IV);
	struct eg_aead_op op = {.key = esp_key[k], .nonce = nonce, .aad = esp, .aad_len = ESP_HDR,
				.src = esp + ESP_HDR + ESP_IV, .dst = plain, .len = ct,
				.tag = (uint8_t *)esp + ESP_HDR + ESP_IV + ct};

	if (rte_be_to_cpu_32(spi) != tunnel_spi(s, frame_tunnel(s, in_ip)) || eg_aead_decrypt_burst(aead, &op, 1) != 1)
		return false;
	/* RFC 4303 2.4: the inner packet, padding 1, 2, 3... to a 4-byte boundary, the pad
	 * length and the next header, nothing more. */
	uint32_t pad = (4 - (in_len + 2) % 4) % 4;

	if (ct != in_len + pad + 2 || plain[ct - 2] != pad || plain[ct - 1] != IPPROTO_IPIP)
		return false;
	for (uint32_t i = 0; i < pad; i++)
		if (plain[in_len + i] != i + 1)
			return false;
	return same_ip(plain, in_ip, in_len, 1);
}

/* A WireGuard data message opened by libsodium, which the workers do not use, sent to
 * the keypair of the inner packet's tunnel. */
static bool check_wg(const struct bench_scenario *s, const uint8_t *d, uint32_t len, const uint8_t *in_ip,
		     uint32_t in_len)
{
	struct wg_keypair keys = wg_keys;
	unsigned peer = tunnel_peer(s, frame_tunnel(s, in_ip));
	uint8_t plain[1600];
	long n;

	const struct rte_udp_hdr *u = (const struct rte_udp_hdr *)(d + ETH + IP4);

	/* ECN copied out, DSCP not, no DF (wg_outb.c) */
	if (len < ETH + IP4 + UDP + WG_DATA_MIN_LEN || !outer_ok(d, len, IPPROTO_UDP, WG_PEER_ADDR, in_ip[1] & 3, 0) ||
	    u->src_port != rte_cpu_to_be_16(WG_LISTEN_PORT) || u->dst_port != rte_cpu_to_be_16(WG_PEER_PORT) ||
	    rte_be_to_cpu_16(u->dgram_len) != len - ETH - IP4)
		return false;
	/* Over IPv4 the workers send no UDP checksum (RFC 768 allows it; wg_outb.c). */
	if (u->dgram_cksum != 0)
		return false;
	keys.local_index = keys.remote_index = eg_wg_index(peer, KP, WG_RANDOM);
	n = wg_open_data(&keys, d + ETH + IP4 + UDP, len - ETH - IP4 - UDP, plain);
	/* The inner packet, then zeros up to a multiple of 16 (WireGuard paper 5.4.6). */
	if (n < (long)in_len || n - (long)in_len >= 16)
		return false;
	for (long i = in_len; i < n; i++)
		if (plain[i] != 0)
			return false;
	return same_ip(plain, in_ip, in_len, 1);
}

/* Whether the UDP datagram u in IPv4 packet ip sums to all ones with its pseudo-header
 * (DPDK 22.11 has this only as an experimental function). */
static bool udp_sum_ok(const struct rte_ipv4_hdr *ip, const struct rte_udp_hdr *u)
{
	uint32_t sum = (uint32_t)rte_raw_cksum(u, rte_be_to_cpu_16(u->dgram_len)) + rte_ipv4_phdr_cksum(ip, 0);

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return sum == 0xffff;
}

/* Through source NAT: from a pool address and the session's port, to the same place, the
 * same payload and the rest of the headers, both checksums right. */
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
	       memcmp(out, in, 8) == 0 && o->next_proto_id == i->next_proto_id &&
	       o->dst_addr == i->dst_addr && o->time_to_live + 1 == i->time_to_live &&
	       ip_sum_of(&h) == o->hdr_checksum && sess != EG_NAT_NONE &&
	       eg_nat_sessions(fx.ctx.nat)[sess].out_port == rte_be_to_cpu_16(ou->src_port) &&
	       eg_nat_sessions(fx.ctx.nat)[sess].out_addr == o->src_addr && ou->dst_port == iu->dst_port &&
	       ou->dgram_len == iu->dgram_len && ou->dgram_cksum != 0 && udp_sum_ok(o, ou) &&
	       memcmp(out + IP4 + UDP, in + IP4 + UDP, len - IP4 - UDP) == 0;
}

/* Where a frame's counters live (ledger.h): its egress and policy (-1 for decap, which
 * leaves by route), its SA slot and its WireGuard peer slot (-1 when not its kind); one
 * per tunnel of the run, found once before it by the names config_text gives them. */
struct home {
	int egress, policy, sa, peer;
};

static struct home homes[BENCH_MAX_TUNNELS];

/* The position of name in a config list of n entries of stride bytes, or -1. */
static int position(const void *list, unsigned n, size_t stride, const char *name)
{
	for (unsigned i = 0; i < n; i++)
		if (strcmp((const char *)list + (size_t)i * stride, name) == 0)
			return (int)i;
	return -1;
}

/* t when name is prefix followed by tunnel number t of --tunnels, else -1. */
static int tunnel_named(const char *name, const char *prefix)
{
	size_t n = strlen(prefix);
	char *end;
	unsigned long t;

	if (strncmp(name, prefix, n) != 0 || name[n] < '0' || name[n] > '9')
		return -1;
	t = strtoul(name + n, &end, 10);
	return *end == 0 && t < n_tunnels ? (int)t : -1;
}

static void find_homes(const struct bench_scenario *s)
{
	const struct eg_config *c = &fx.ctx.cfg;
	const char *single = s->kind == BENCH_DIRECT ? (s->snat ? "direct-snat" : "direct")
			     : s->tunnel == BENCH_WG ? "wg"
			     : s->alg == EG_AEAD_AES_GCM_128 ? "esp128" : "esp256";
	const char *prefix = s->tunnel == BENCH_WG ? "wg-t" : "esp-t";
	uint8_t dir = s->kind == BENCH_DECAP ? EG_SA_DIR_IN : EG_SA_DIR_OUT;
	unsigned n = over_tunnels(s) ? n_tunnels : 1;
	uint32_t slot;
	int t;

	for (unsigned i = 0; i < n; i++) {
		homes[i] = (struct home){.egress = -1, .policy = -1, .sa = -1, .peer = -1};
		if (s->tunnel == BENCH_ESP) {
			dp_offline_sa(&fx, tunnel_spi(s, i), dir, &slot);
			homes[i].sa = (int)slot;
		} else if (s->tunnel == BENCH_WG) {
			homes[i].peer = (int)tunnel_peer(s, i);
		}
	}
	if (s->kind == BENCH_DECAP)	/* it leaves by route: no egress, no policy */
		return;
	if (!over_tunnels(s)) {
		homes[0].egress = position(c->egresses, c->n_egresses, sizeof(*c->egresses), single);
		homes[0].policy = position(c->policies, c->n_policies, sizeof(*c->policies), single);
	} else {
		for (unsigned i = 0; i < c->n_egresses; i++)
			if ((t = tunnel_named(c->egresses[i].name, prefix)) >= 0)
				homes[t].egress = (int)i;
		for (unsigned i = 0; i < c->n_policies; i++)
			if ((t = tunnel_named(c->policies[i].name, prefix)) >= 0)
				homes[t].policy = (int)i;
	}
	for (unsigned i = 0; i < n; i++)
		if (homes[i].egress < 0 || homes[i].policy < 0)
			DIE("%s: no egress or policy for tunnel %u", s->name, i);
}

/* The Ethernet header of a frame leaving port out for dst: from that port's MAC, untagged
 * (no port of the bench's config has a VLAN), carrying IPv4. */
static bool l2_ok(const uint8_t *d, uint32_t len, const uint8_t dst[6], uint16_t out)
{
	const struct rte_ether_hdr *eth = (const struct rte_ether_hdr *)d;

	return len >= ETH && memcmp(&eth->dst_addr, dst, 6) == 0 &&
	       rte_is_same_ether_addr(&eth->src_addr, &fx.ctx.ports[out].mac) &&
	       eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
}

static bool check_one(const struct bench_scenario *s, struct eg_aead_ctx *aead, const struct rte_mbuf *m,
		      const struct frame *in)
{
	const uint8_t *d = rte_pktmbuf_mtod(m, const uint8_t *);
	uint32_t len = rte_pktmbuf_pkt_len(m);

	switch (s->kind) {
	case BENCH_DIRECT:
		if (s->snat)
			return l2_ok(d, len, gateway_mac, wan) && len == in->len &&
			       check_snat(d + ETH, in->data + ETH, in->len - ETH);
		return l2_ok(d, len, gateway_mac, wan) && len == in->len &&
		       same_ip(d + ETH, in->data + ETH, in->len - ETH, 1);
	case BENCH_ENCAP:
		if (s->tunnel == BENCH_ESP)	/* to the SA's remote, the gateway */
			return l2_ok(d, len, gateway_mac, wan) &&
			       check_esp(s, aead, d, len, in->data + ETH, in->len - ETH);
		return l2_ok(d, len, peer_mac, wan) && check_wg(s, d, len, in->data + ETH, in->len - ETH);
	case BENCH_DECAP:
		/* forwarded twice: into the tunnel when the inputs were sealed, and out of it */
		return l2_ok(d, len, site_mac, lan) && len == in->len &&
		       same_ip(d + ETH, in->data + ETH, in->len - ETH, 2);
	}
	return false;
}

/* Byte i of a frame of len bytes as a broken dataplane would write it: a bit flipped, and
 * the IPv4 header checksum and a UDP checksum (if the frame carries one) made right for
 * it again, as a dataplane writing a wrong field would still sum it. Otherwise a check
 * that only verified the checksums would look as if it read every field they cover. The
 * checksums' own bytes are left wrong. */
static void damage(uint8_t *d, uint32_t len, uint32_t i)
{
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(d + ETH);
	struct rte_udp_hdr *u = (struct rte_udp_hdr *)(ip + 1);
	bool ip_sum = i == ETH + 10 || i == ETH + 11, udp_sum = i == ETH + IP4 + 6 || i == ETH + IP4 + 7;

	d[i] ^= 0x01;
	if (i < ETH || len < ETH + IP4 + UDP)
		return;
	/* The UDP sum reads the lengths, so only where they still describe the frame. */
	if (!udp_sum && ip->version_ihl == 0x45 && rte_be_to_cpu_16(ip->total_length) == len - ETH &&
	    ip->next_proto_id == IPPROTO_UDP && u->dgram_cksum != 0 && rte_be_to_cpu_16(u->dgram_len) == len - ETH - IP4)
		udp_resum(ip);
	if (i < ETH + IP4 && !ip_sum)	/* the bench's headers are 20 bytes, whatever IHL now says */
		ip_resum(ip);
}

/* The frame check has to be able to fail, and on every byte of a frame: a copy of one
 * good output frame, damaged in each byte in turn, must be refused every time. Whatever
 * byte it took (the first version of this found the source MAC, the ethertype and
 * WireGuard's UDP checksum unchecked, and with the sums made right again the outer
 * header's type of service, flags and TTL) a broken dataplane could get wrong unseen.
 * Only a sealed frame's outer identification may be anything, the worker's own counter.
 * Returns how many bytes it took, the first few named on stderr. */
static unsigned check_is_blind(const struct bench_scenario *s, struct eg_aead_ctx *aead, const struct rte_mbuf *m,
			       const struct frame *in)
{
	struct rte_mbuf *c = rte_pktmbuf_copy(m, fx.ctx.pool, 0, UINT32_MAX);
	uint32_t len = rte_pktmbuf_pkt_len(m);
	const uint8_t *good = rte_pktmbuf_mtod(m, const uint8_t *);
	unsigned blind = 0;
	uint8_t *d;

	if (!c || !rte_pktmbuf_is_contiguous(c) || !rte_pktmbuf_is_contiguous(m))
		DIE("%s: no room to copy a frame for the check's own test", s->name);
	d = rte_pktmbuf_mtod(c, uint8_t *);
	for (uint32_t i = 0; i < len; i++) {
		if (s->kind == BENCH_ENCAP && (i == ETH + 4 || i == ETH + 5))
			continue;
		damage(d, len, i);
		if (check_one(s, aead, c, in) && blind++ < 8)
			fprintf(stderr, "egress-bench: %s: the frame check passed a %" PRIu32 "-byte frame with byte %" PRIu32
					" damaged\n", s->name, len, i);
		memcpy(d, good, len);
	}
	rte_pktmbuf_free(c);
	return blind;
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
		process(lan, pkts, BURST);
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

/* One worker's share of a run, on its own lcore. */
struct lane {
	unsigned id, lanes;
	struct dp_worker *w;
	const struct bench_scenario *s;
	uint64_t bursts;
	unsigned flows;
	bool check;
	bool check_tested;			/* check_is_blind has run on one of its frames */
	struct eg_aead_ctx aead;		/* for checking ESP */
	struct bench_ledger ledger;		/* checking: what the worker's counters should add */
	struct bench_nonces nonces;		/* checking encap: the nonces sealed with */
	struct bench_result r;
	uint64_t drops_by[EG_DROP_SLOTS];
	uint64_t misses_by;			/* the flow cache's misses before the run */
	uint64_t first_tsc, last_tsc;		/* when its first burst started, its last ended */
	uint64_t meet_every;			/* decap: bursts between meetings mid-round, 0: none */
	unsigned churn_rate;			/* lane 0: table publishes a second to start */
	int churn_rc;				/* lane 0: what starting them returned */
};

/* What frame out, checked, should have added to lane l's counters (plain: the site-side
 * frame; fed: what went in), and the nonce it was sealed with (ok: it checked out, so its
 * headers are where they should be). */
static void count_frame(const struct bench_scenario *s, struct lane *l, const struct frame *plain,
			const struct frame *fed, const struct rte_mbuf *out, bool ok)
{
	unsigned tunnel = frame_tunnel(s, plain->data + ETH);
	const struct home *at = &homes[tunnel];
	const uint8_t *d = rte_pktmbuf_mtod(out, const uint8_t *);
	uint32_t len = rte_pktmbuf_pkt_len(out);
	uint64_t nonce;

	if (s->kind != BENCH_DECAP) {
		bench_ledger_policy(&l->ledger, at->policy);
		bench_ledger_egress(&l->ledger, at->egress, len);
	}
	if (s->snat)
		bench_ledger_nat_out(&l->ledger);
	if (s->tunnel == BENCH_ESP)	/* SAs count the inner packet */
		bench_ledger_sa(&l->ledger, at->sa, plain->len - ETH);
	else if (s->tunnel == BENCH_WG && s->kind == BENCH_ENCAP)	/* peers the message */
		bench_ledger_wg_tx(&l->ledger, at->peer, len - ETH - IP4 - UDP);
	else if (s->tunnel == BENCH_WG)
		bench_ledger_wg_rx(&l->ledger, at->peer, fed->len - ETH - IP4 - UDP);
	if (s->kind != BENCH_ENCAP || !ok)
		return;
	if (s->tunnel == BENCH_ESP) {	/* the IV: the 64-bit sequence number */
		memcpy(&nonce, d + ETH + IP4 + ESP_HDR, 8);
		nonce = rte_be_to_cpu_64(nonce);
	} else {			/* the counter, little-endian */
		memcpy(&nonce, d + ETH + IP4 + UDP + 8, 8);
		nonce = rte_le_to_cpu_64(nonce);
	}
	bench_nonces_add(&l->nonces, tunnel, nonce);
}

/* Lanes meet between rounds of their inputs, so that decap's replay windows can be made
 * fresh while no lane is opening. A sense-reversing barrier: the last to arrive flips the
 * sense the others spin on. */
static struct {
	unsigned arrived, sense;
} barrier;

static void barrier_wait(unsigned lanes, unsigned *local_sense)
{
	*local_sense ^= 1;
	if (__atomic_add_fetch(&barrier.arrived, 1, __ATOMIC_ACQ_REL) == lanes) {
		__atomic_store_n(&barrier.arrived, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&barrier.sense, *local_sense, __ATOMIC_RELEASE);
	} else {
		while (__atomic_load_n(&barrier.sense, __ATOMIC_ACQUIRE) != *local_sense)
			rte_pause();
	}
}

/* The worker loop's work for each burst, timed: take the current table, process, announce
 * a quiescent state (dataplane/worker.c dp_worker_main); filling mbufs stands in for the
 * NIC's receive DMA and taking them back for its transmit, and they are not timed. */
static int lane_run(void *arg)
{
	struct lane *l = arg;
	const struct bench_scenario *s = l->s;
	const struct eg_shm_hdr *h = fx.ctx.shm.hdr;
	uint16_t in_port = s->kind == BENCH_DECAP ? wan : lan, out_port = s->kind == BENCH_DECAP ? lan : wan;
	/* The site frames carry flows 0 .. INPUTS - 1, the same for every lane: more flows, or
	 * lanes of their own, are written into each mbuf. */
	bool rewrite_flows = s->kind != BENCH_DECAP && (l->flows > INPUTS || l->lanes > 1);
	const struct frame *in = s->kind == BENCH_DECAP ? &inputs[l->id * INPUTS] : inputs;
	const struct frame *plain = s->kind == BENCH_DECAP ? &inners[l->id * INPUTS] : inputs;
	unsigned next = 0, sense = 0;
	uint64_t sent_flows = 0, scatter = flow_scatter(l->flows);
	struct bench_result *r = &l->r;

	eg_shm_quiescent(h, l->w->shm);
	for (uint64_t b = 0; b < l->bursts; b++) {
		struct rte_mbuf *pkts[BURST], *got[2 * BURST];
		const struct frame *sent[BURST], *fed[BURST];
		unsigned flow_of[BURST], n;
		uint64_t t0, gen;
		const struct eg_table_hdr *t;

		if (next == 0 && s->kind == BENCH_DECAP && b) {	/* the inputs again, to fresh windows */
			if (l->lanes > 1)
				barrier_wait(l->lanes, &sense);
			reset_replay(s, l->id, l->lanes);
			if (l->lanes > 1)
				barrier_wait(l->lanes, &sense);
		} else if (l->meet_every && b % l->meet_every == 0 && b) {
			barrier_wait(l->lanes, &sense);
		}
		for (unsigned j = 0; j < BURST; j++) {
			sent[j] = &plain[next];
			fed[j] = &in[next];
			pkts[j] = to_mbuf(&in[next]);
			if (rewrite_flows) {
				flow_of[j] = lane_flow(l->id, l->lanes, l->flows, scatter, sent_flows++);
				set_scenario_flow(s, rte_pktmbuf_mtod(pkts[j], uint8_t *), flow_of[j]);
			}
			/* The site-side frame, whose length is the SIZE column, either way: for
			 * decap, the one that comes out, not the larger sealed one going in. */
			r->frame_bytes += plain[next].len;
			next = (next + 1) % INPUTS;
		}
		t0 = rte_rdtsc();
		t = eg_shm_table_acquire(h, &gen);
		dp_worker_process(l->w, t, in_port, pkts, BURST);
		eg_shm_quiescent(h, l->w->shm);
		l->last_tsc = rte_rdtsc();
		if (b == 0)
			l->first_tsc = t0;
		r->cycles += l->last_tsc - t0;
		n = dp_offline_worker_take_tx(l->w, out_port, got, 2 * BURST);
		if (l->check) {
			for (unsigned j = 0; j < n && j < BURST; j++) {
				const struct frame *want = sent[j];
				struct frame patched;

				if (rewrite_flows) {	/* compare with the flow written into the mbuf */
					patched = *want;
					set_scenario_flow(s, patched.data, flow_of[j]);
					want = &patched;
				}
				bool ok = check_one(s, &l->aead, got[j], want);

				r->checked++;
				r->check_failures += !ok;
				if (ok && !l->check_tested) {	/* once a case and lane, on a good frame */
					r->check_failures += check_is_blind(s, &l->aead, got[j], want);
					l->check_tested = true;
				}
				count_frame(s, l, want, fed[j], got[j], ok);
			}
		}
		r->packets += BURST;
		r->out_packets += n;
		rte_pktmbuf_free_bulk(got, n);
		dp_offline_worker_drain(l->w);
	}
	return 0;
}

/* A lane as bench_run launches it. Lane 0 starts the publishes, last, when the others run
 * already: a lane not yet running announces no quiescent states, and would hold a publish
 * up. It runs even if they fail to start, or lanes waiting for it at a barrier would wait
 * for ever. */
static int lane_main(void *arg)
{
	struct lane *l = arg;

	if (l->churn_rate)
		l->churn_rc = bench_churn_start(l->churn_rate);
	return lane_run(l);
}

/* One lane of bench_on_lanes: it waits until every lane is there, so that none runs alone
 * for a while because it was launched first. */
struct lane_start {
	int (*fn)(void *);
	void *arg;
	unsigned lanes;
};

static unsigned lanes_started;		/* atomic */
static bool lanes_called_off;		/* atomic: a lane could not be launched */

static int start_together(void *arg)
{
	const struct lane_start *ls = arg;

	__atomic_add_fetch(&lanes_started, 1, __ATOMIC_ACQ_REL);
	while (__atomic_load_n(&lanes_started, __ATOMIC_ACQUIRE) < ls->lanes)
		rte_pause();
	/* Not run short-handed: lanes meet at barriers (lane_run) and would wait for ever
	 * for one that never started. */
	if (__atomic_load_n(&lanes_called_off, __ATOMIC_ACQUIRE))
		return -1;
	return ls->fn(ls->arg);
}

int bench_on_lanes(unsigned lanes, int (*fn)(void *), void **args)
{
	unsigned lcores[BENCH_MAX_LANES];
	struct lane_start start[BENCH_MAX_LANES];
	unsigned launched = 1;
	int rc = 0;

	if (lanes == 0 || lanes > BENCH_MAX_LANES)
		return -1;
	lcores[0] = rte_get_main_lcore();
	for (unsigned k = 1; k < lanes; k++) {
		lcores[k] = rte_get_next_lcore(lcores[k - 1], 1, 0);
		if (lcores[k] >= RTE_MAX_LCORE)
			return -1;
	}
	lanes_started = 0;
	lanes_called_off = false;
	for (unsigned k = 0; k < lanes; k++)
		start[k] = (struct lane_start){.fn = fn, .arg = args[k], .lanes = lanes};
	for (; launched < lanes; launched++)
		if (rte_eal_remote_launch(start_together, &start[launched], lcores[launched]) != 0)
			break;
	/* A lane that could not start leaves the others waiting for it: release them without
	 * running, and say so. */
	if (launched < lanes) {
		__atomic_store_n(&lanes_called_off, true, __ATOMIC_RELEASE);
		__atomic_store_n(&lanes_started, lanes, __ATOMIC_RELEASE);
		fprintf(stderr, "egress-bench: lcore %u could not be launched\n", lcores[launched]);
		rc = -1;
	} else if (start_together(&start[0]) != 0) {
		rc = -1;
	}
	for (unsigned k = 1; k < launched; k++)
		if (rte_eal_wait_lcore(lcores[k]) != 0)
			rc = -1;
	return rc;
}

/* The share of the lanes' whole span (first start to last end) in which all of them ran:
 * the sum of their rates is a throughput only if they ran together. A lane held off its
 * vCPU while the other ran alone would add its rate all the same. 1 for one lane. */
static double lanes_overlap(const struct lane *lane, unsigned lanes)
{
	uint64_t lo = lane[0].first_tsc, hi = lane[0].last_tsc, start = lo, end = hi;

	for (unsigned k = 1; k < lanes; k++) {
		lo = RTE_MIN(lo, lane[k].first_tsc);
		hi = RTE_MAX(hi, lane[k].last_tsc);
		start = RTE_MAX(start, lane[k].first_tsc);
		end = RTE_MIN(end, lane[k].last_tsc);
	}
	return hi > lo && end > start ? (double)(end - start) / (double)(hi - lo) : lanes == 1;
}

int bench_run(const struct bench_scenario *s, const struct bench_size *z, uint64_t packets,
	      const struct bench_run_opts *o, struct bench_result *r)
{
	unsigned flows = o->flows, lanes = o->lanes;
	bool check = o->check;
	static struct lane lane[BENCH_MAX_LANES];
	uint64_t bursts = (packets + BURST - 1) / BURST;
	void *args[BENCH_MAX_LANES];
	const struct eg_shm_hdr *h = fx.ctx.shm.hdr;

	memset(r, 0, sizeof(*r));
	if (flows == 0)
		flows = 1;
	if (o->churn_rate && lanes >= fx.ctx.n_workers) {
		fprintf(stderr, "egress-bench: table churn needs a CPU besides the workers'\n");
		return -1;
	}
	if (lanes == 0 || lanes > fx.ctx.n_workers) {
		fprintf(stderr, "egress-bench: %u workers asked for, %u available\n", lanes, fx.ctx.n_workers);
		return -1;
	}
	if (s->snat)
		snat_populate();
	build_inputs(s, z, flows, lanes);
	if (check)
		find_homes(s);
	/* Workers without a lane hold no table: they must not hold up a publish's grace. */
	for (unsigned k = lanes; k < fx.ctx.n_workers; k++)
		eg_shm_offline(fx.ctx.workers[k].shm);
	for (unsigned k = 0; k < lanes; k++) {
		struct lane *l = &lane[k];

		*l = (struct lane){.id = k, .lanes = lanes, .w = &fx.ctx.workers[k], .s = s, .bursts = bursts,
				   .flows = flows, .check = check};
		if (check && eg_aead_ctx_init(&l->aead, fx.ctx.imb_arch) != 0)
			DIE("no crypto manager");
		if (check && (bench_ledger_open(&l->ledger, h, l->w->shm) != 0 || bench_nonces_init(&l->nonces) != 0))
			DIE("out of memory");
		memcpy(l->drops_by, l->w->shm->drop, sizeof(l->drops_by));
		l->misses_by = l->w->flows->misses;
		args[k] = l;
	}
	/* Lanes sharing a replay window (fewer tunnels than lanes) send its numbers
	 * interleaved: one that falls behind the others by a window's worth would find its
	 * packets too old, a drop the bench made, not the dataplane. They meet often enough
	 * that none can: with one tunnel, K bursts each span K * BURST * lanes numbers. */
	if (s->kind == BENCH_DECAP && lanes > 1 && (over_tunnels(s) ? n_tunnels : 1) < lanes) {
		uint64_t k = (windows[0]->window - lanes) / (BURST * lanes);

		for (unsigned i = 0; i < lanes; i++)
			lane[i].meet_every = k > ROUND ? 0 : k > 1 ? k - 1 : 1;
	}
	lane[0].churn_rate = o->churn_rate;	/* publishes only while the lanes run */
	if (bench_on_lanes(lanes, lane_main, args) != 0)
		DIE("no lcore for %u workers", lanes);
	/* The lanes ran even if the publishes did not start: their checks are put away as
	 * usual, and the run fails at the end. */
	if (o->churn_rate && lane[0].churn_rc == 0)
		bench_churn_stop(&r->churn);
	for (unsigned k = 0; k < lanes; k++) {
		struct lane *l = &lane[k];
		struct bench_result *lr = &l->r;
		double secs = (double)lr->cycles / (double)fx.ctx.tsc_hz;

		for (unsigned d = 0; d < EG_DROP_SLOTS; d++) {
			uint64_t n = l->w->shm->drop[d] - l->drops_by[d];

			lr->drops += n;
			if (n && d < EG_DROP_MAX)
				fprintf(stderr, "egress-bench: %s: worker %u: %llu dropped as %s\n", s->name, k,
					(unsigned long long)n, eg_drop_names[d]);
		}
		/* Each worker's rate over its own time; together, the sum of their rates. */
		r->mpps += secs > 0 ? (double)lr->packets / secs / 1e6 : 0;
		r->gbps += secs > 0 ? (double)lr->frame_bytes * 8 / secs / 1e9 : 0;
		r->packets += lr->packets;
		r->out_packets += lr->out_packets;
		r->frame_bytes += lr->frame_bytes;
		r->cycles += lr->cycles;
		r->drops += lr->drops;
		r->flow_misses += l->w->flows->misses - l->misses_by;
		r->checked += lr->checked;
		r->check_failures += lr->check_failures;
		if (check) {
			char who[64];

			snprintf(who, sizeof(who), "%s: worker %u", s->name, k);
			r->counters_differing += bench_ledger_close(&l->ledger, &fx.ctx.cfg, who);
			eg_aead_ctx_free(&l->aead);
		}
	}
	if (check) {
		struct bench_nonces logs[BENCH_MAX_LANES];

		for (unsigned k = 0; k < lanes; k++)
			logs[k] = lane[k].nonces;
		r->nonces_repeated = bench_nonces_repeats(logs, lanes, s->name);
	}
	for (unsigned k = lanes; k < fx.ctx.n_workers; k++)
		eg_shm_quiescent(h, fx.ctx.workers[k].shm);
	r->overlap = lanes_overlap(lane, lanes);
	r->cycles_per_packet = r->packets ? (double)r->cycles / (double)r->packets : 0;
	return lane[0].churn_rc != 0 ? -1 : 0;
}
