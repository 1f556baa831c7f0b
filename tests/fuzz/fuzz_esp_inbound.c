/* libFuzzer harness for the inbound ESP path: frames built from the input arrive on the
 * uplink of a real dataplane context (EAL on net_null devices, the shared-memory segment,
 * SA slots filled the way control/ipsec.c fills them, a published table) and go through
 * dp_worker_process and dp_worker_flush as a worker's received burst would.
 *
 * The context is dataplane/offline.c's.
 *
 * Input (every field is optional: a short input reads as zeros):
 *
 *   input   := flags:u8 [topA:u32 topB:u64 if flags & IN_TOP] packet{1..4}
 *   flags   := bit 0 IN_TOP: restore the replay windows to these tops first (ESN wrap)
 *              bit 1 IN_STOP_A: SA "A" is STOPPED for this input
 *              bit 2 IN_BURST: all packets in one dp_worker_process call, else one call each
 *              bits 6-7: packets - 1
 *   packet  := kind:u8 len:u16be body[len]   (the last packet has no len: the rest)
 *   kind    := bits 0-2 outer: 0 IPv4/ESP, 1 IPv6/ESP, 2 IPv4/UDP 4500, 3 IPv6/UDP 4500,
 *                 4 IPv4 with options (body: o:u8, bits 0-3 option words, then 4 MF,
 *                   5 a fragment offset, 6 UDP 4500, 7 DF; the options follow),
 *                 5 IPv6 (body: next header:u8, n:u8, n bytes of extension headers),
 *                 6 raw IPv4 packet (its checksum fixed), 7 raw ethertype:u16 + L3
 *              bits 3-4 SPI: 1 SA "A", 2 SA "B" (of the outer family), else from the body
 *              bit 5 seal: the ESP part is an encrypted packet (see seal()), else raw bytes
 *              bits 6-7 Ethernet padding after the IP packet: 0, 2, 17 or 60 bytes, the
 *                 body's first bytes (the rest of the body follows them)
 *
 * SA "A" is AES-GCM-128 without ESN (window 1024), "B" AES-GCM-256 with ESN and window 64;
 * each is installed for an IPv4 and an IPv6 local address. Replay windows are reset before
 * every input, so an input always does the same.
 *
 * Findings beyond crashes: an mbuf the dataplane neither sent, punted nor freed (the pool's
 * free count must come back after every input), and any read or write outside the frame:
 * the mbuf's headroom and tailroom are poisoned for ASan while the dataplane runs, and the
 * data room (16 KiB) is larger than any header offset the parsers can compute (four IPv6
 * extension headers of 2 KiB), so a bad one lands in poison, not in another mbuf. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include <sanitizer/asan_interface.h>

#include "aead.h"
#include "config.h"
#include "context.h"
#include "fuzz_input.h"
#include "offline.h"
#include "replay.h"
#include "sa.h"
#include "shm.h"
#include "table.h"
#include "worker.h"

#define DIE(fmt, ...) do { fprintf(stderr, "fuzz_esp_inbound: " fmt "\n", ##__VA_ARGS__); abort(); } while (0)

enum {
	DATA_ROOM = 16384,		/* beyond any header offset: see above */
	N_MBUFS = 2048,
	MAX_PKTS = 4,
	ETH_LEN = 14,
	IPV4_LEN = 20,
	IPV6_LEN = 40,
	UDP_LEN = 8,
	ESP_HDR = 8,			/* SPI, sequence number */
	ESP_IV = 8,
	ESP_ICV = 16,
	NATT_PORT = 4500,
	IN_TOP = 1 << 0,
	IN_STOP_A = 1 << 1,
	IN_BURST = 1 << 2,
	SPI_A = 0x1001,
	SPI_B = 0x2002,
	SPI_A6 = 0x1006,
	SPI_B6 = 0x2006,
};

/* Site port lan0 (10.10.0.0/24, 2001:db8:10::/64, static neighbours so that decrypted
 * packets reach transmission) and uplink wan0, where the SAs end. */
static const char config_fmt[] =
	"{\"instance\": \"%s\", \"dataplane\": {\"workers\": 1, \"idle_backoff\": false, \"table_mb\": 1,"
	" \"ports\": ["
	"  {\"name\": \"lan0\", \"role\": \"site\", \"device\": \"net_null0\","
	"   \"ipv4\": \"10.10.0.1/24\", \"ipv6\": \"2001:db8:10::1/64\", \"mac\": \"02:00:00:00:00:01\","
	"   \"neighbours\": [{\"ip\": \"10.10.0.2\", \"mac\": \"02:00:00:00:00:02\"},"
	"                    {\"ip\": \"10.10.0.254\", \"mac\": \"02:00:00:00:00:fe\"},"
	"                    {\"ip\": \"2001:db8:10::2\", \"mac\": \"02:00:00:00:00:12\"},"
	"                    {\"ip\": \"2001:db8:10::fe\", \"mac\": \"02:00:00:00:00:1e\"}]},"
	"  {\"name\": \"wan0\", \"role\": \"uplink\", \"device\": \"net_null1\","
	"   \"ipv4\": \"192.0.2.1/24\", \"gateway\": \"192.0.2.254\", \"ipv6\": \"2001:db8:1::1/64\","
	"   \"mac\": \"02:00:00:00:01:01\"}],"
	" \"routes\": [{\"prefix\": \"10.99.0.0/16\", \"via\": \"10.10.0.254\", \"port\": \"lan0\"},"
	"            {\"prefix\": \"2001:db8:99::/48\", \"via\": \"2001:db8:10::fe\", \"port\": \"lan0\"}]},"
	" \"ipsec\": {\"sas\": ["
	"  {\"spi\": 4097, \"direction\": \"in\", \"local\": \"192.0.2.1\", \"remote\": \"198.51.100.7\","
	"   \"aead\": \"aes-gcm-128\", \"key\": \"000102030405060708090a0b0c0d0e0fa0a1a2a3\"},"
	"  {\"spi\": 8194, \"direction\": \"in\", \"local\": \"192.0.2.1\", \"remote\": \"198.51.100.7\","
	"   \"aead\": \"aes-gcm-256\", \"esn\": true, \"replay_window\": 64,"
	"   \"key\": \"101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2fb0b1b2b3\"},"
	"  {\"spi\": 4102, \"direction\": \"in\", \"local\": \"2001:db8:1::1\", \"remote\": \"2001:db8:77::7\","
	"   \"aead\": \"aes-gcm-128\", \"key\": \"000102030405060708090a0b0c0d0e0fa0a1a2a3\"},"
	"  {\"spi\": 8198, \"direction\": \"in\", \"local\": \"2001:db8:1::1\", \"remote\": \"2001:db8:77::7\","
	"   \"aead\": \"aes-gcm-256\", \"esn\": true, \"replay_window\": 64,"
	"   \"key\": \"101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2fb0b1b2b3\"}]}}";

static const uint8_t peer4[4] = {198, 51, 100, 7};
static const uint8_t peer6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0x77, [15] = 7};
static const uint8_t peer_mac[6] = {0x02, 0, 0, 0, 0x99, 0x99};

struct fuzz_sa {
	const struct eg_sa_cfg *cfg;
	struct eg_sa_slot *s;
};

static struct dp_offline fx;
static uint16_t uplink;
static struct fuzz_sa sas[4];		/* A4, B4, A6, B6: the order of the config */
static struct eg_aead_ctx sealer;	/* the peer's: encrypts what seal() builds */
/* The input's frames come from a pool of their own: freed mid-burst while still fenced,
 * they must not be what the dataplane allocates (reassembly, fragments) and fills. */
static struct rte_mempool *frames;
static unsigned pool_free, frames_free;	/* free mbufs between inputs */
static bool trace;			/* FUZZ_ESP_TRACE=1: what each input did, on stderr */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static void ipv4_checksum(uint8_t *ip, size_t ihl)
{
	uint16_t sum;

	ip[10] = ip[11] = 0;
	sum = rte_raw_cksum(ip, ihl);
	sum = sum == 0xffff ? sum : (uint16_t)~sum;
	memcpy(ip + 10, &sum, 2);	/* rte_raw_cksum sums in memory order */
}

/* ---- Setup ---- */

static void cleanup(void)
{
	eg_aead_ctx_free(&sealer);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	dp_offline_start(&fx, "fuzzesp", config_fmt, DATA_ROOM, N_MBUFS);
	if (eg_aead_ctx_init(&sealer, fx.ctx.imb_arch) != 0)
		DIE("no crypto manager");
	atexit(cleanup);
	uplink = dp_offline_port(&fx, "wan0");
	dp_offline_publish(&fx);
	if (fx.ctx.cfg.n_sas != RTE_DIM(sas))
		DIE("expected %zu SAs in the config", RTE_DIM(sas));
	for (unsigned i = 0; i < RTE_DIM(sas); i++) {
		sas[i].cfg = &fx.ctx.cfg.sas[i];
		sas[i].s = eg_shm_sa(fx.ctx.shm.hdr, i);
	}
	if (eg_table_spi_lookup(fx.table, SPI_B6) != 3)
		DIE("the published table has not the SAs");
	frames = rte_pktmbuf_pool_create("frames", N_MBUFS, 0, 0, RTE_PKTMBUF_HEADROOM + DATA_ROOM,
					 (int)rte_socket_id());
	if (!frames)
		DIE("out of memory for the frames");
	pool_free = rte_mempool_avail_count(fx.ctx.pool);
	frames_free = rte_mempool_avail_count(frames);
	trace = getenv("FUZZ_ESP_TRACE") && strcmp(getenv("FUZZ_ESP_TRACE"), "0") != 0;
	return 0;
}

/* ---- Building the frames ---- */

/* The SA of an SPI choice (1: A, 2: B) for an outer family, or NULL. */
static const struct fuzz_sa *choose_sa(unsigned choice, bool v6)
{
	if (choice != 1 && choice != 2)
		return NULL;
	return &sas[(v6 ? 2 : 0) + choice - 1];
}

/* The inner packet seal() encrypts: a well-formed IPv4 or IPv6 packet toward the site side
 * (the fields the input does not fix come from it), raw bytes under an input next header,
 * or a dummy packet. sel: bits 0-1 kind, 2-3 destination, 7 keep the header as given.
 * Returns its length; *next is its ESP next header. */
static size_t inner_packet(uint8_t *out, struct in *r, uint8_t sel, uint8_t *next)
{
	static const uint8_t host4[4] = {10, 10, 0, 2}, ours4[4] = {10, 10, 0, 1};
	static const uint8_t host6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0x10, [15] = 2};
	static const uint8_t ours6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0x10, [15] = 1};
	unsigned kind = sel & 3, dst = (sel >> 2) & 3;
	bool as_given = sel & 0x80;
	size_t plen;

	if (kind >= 2) {
		*next = kind == 2 ? u8(r) : 59;	/* 59: no next header, a dummy (RFC 4303 2.6) */
		plen = u16(r) % 2048;
		bytes(r, out, plen);
		return plen;
	}
	plen = u16(r) % 2048;
	if (kind == 0) {
		*next = 4;
		bytes(r, out, IPV4_LEN + plen);
		if (as_given)
			return IPV4_LEN + plen;
		out[0] = 0x45;
		put16(out + 2, (uint16_t)(IPV4_LEN + plen));
		if (dst == 0)
			memcpy(out + 16, host4, 4);
		else if (dst == 1)
			out[16] = 10, out[17] = 99;	/* 10.99/16: the static route */
		else if (dst == 3)
			memcpy(out + 16, ours4, 4);
		ipv4_checksum(out, IPV4_LEN);
		return IPV4_LEN + plen;
	}
	*next = 41;
	bytes(r, out, IPV6_LEN + plen);
	if (as_given)
		return IPV6_LEN + plen;
	out[0] = (uint8_t)(0x60 | (out[0] & 0x0f));
	put16(out + 4, (uint16_t)plen);
	if (dst == 0) {
		memcpy(out + 24, host6, 16);
	} else if (dst == 1) {
		memcpy(out + 24, host6, 16);
		out[29] = 0x99;			/* 2001:db8:99::/48: the static route */
		out[28] = 0;
	} else if (dst == 3) {
		memcpy(out + 24, ours6, 16);
	}
	return IPV6_LEN + plen;
}

/* An ESP packet (RFC 4303, AES-GCM as RFC 4106) as the peer would send it for fs, into
 * out, then changed by the input. Body:
 *   seq_lo:u32 hi_adj:i8 iv[8] sel:u8 inner (see inner_packet) {pos:u16 xor:u8}*
 * hi_adj is added to the high half the receiver will infer (ESN): 0 for a good packet.
 * sel bits 4-6 padding: 0 the minimum, 1-4 the minimum + 4k, 5 a wrong byte, 6 a pad
 * length longer than the payload, 7 one longer than fits. The mutations (xor at pos,
 * counted from the SPI) follow encryption. Returns the bytes written. */
static size_t seal(uint8_t *out, size_t room, struct in *r, const struct fuzz_sa *fs)
{
	struct eg_sa_slot *s = fs->s;
	uint32_t lo = u32(r), hi;
	int8_t hi_adj = (int8_t)u8(r);
	uint64_t seq = s->esn ? eg_replay_esn(eg_sa_replay(s), lo) : lo;
	uint8_t nonce[EG_AEAD_NONCE_LEN], aad[12], sel, next = 0, padding;
	uint8_t *ct = out + ESP_HDR + ESP_IV;
	size_t inner_len, pad, ct_len, total;
	struct eg_aead_op op;

	if (room < ESP_HDR + ESP_IV + 2 + 255 + 4 * 4 + ESP_ICV + IPV6_LEN + 2048)
		return 0;
	hi = (uint32_t)(seq >> 32) + (uint32_t)(int32_t)hi_adj;
	put32(out, s->spi);
	put32(out + 4, lo);
	bytes(r, out + ESP_HDR, ESP_IV);
	sel = u8(r);
	inner_len = inner_packet(ct, r, sel, &next);
	padding = (sel >> 4) & 7;
	pad = (4 - ((inner_len + 2) & 3)) & 3;
	if (padding >= 1 && padding <= 4)
		pad += 4 * padding;
	if (padding == 5 && pad == 0)
		pad = 4;
	for (size_t k = 0; k < pad; k++)
		ct[inner_len + k] = (uint8_t)(k + 1);
	if (padding == 5)
		ct[inner_len + pad - 1] ^= 0x80;
	ct_len = inner_len + pad + 2;
	ct[ct_len - 2] = (uint8_t)pad;
	if (padding == 6)
		ct[ct_len - 2] = 0xff;
	if (padding == 7)
		ct[ct_len - 2] = (uint8_t)(ct_len - 1 > 255 ? 255 : ct_len - 1);
	ct[ct_len - 1] = next;

	memcpy(nonce, s->salt, EG_SA_SALT_LEN);
	memcpy(nonce + EG_SA_SALT_LEN, out + ESP_HDR, ESP_IV);
	memcpy(aad, out, 4);
	if (s->esn) {
		put32(aad + 4, hi);
		memcpy(aad + 8, out + 4, 4);
	} else {
		memcpy(aad + 4, out + 4, 4);
	}
	op = (struct eg_aead_op){
		.key = &s->key, .nonce = nonce, .aad = aad, .aad_len = s->esn ? 12 : 8,
		.src = ct, .dst = ct, .len = (uint32_t)ct_len, .tag = ct + ct_len,
	};
	if (eg_aead_encrypt_burst(&sealer, &op, 1) != 1)
		DIE("cannot encrypt");
	total = ESP_HDR + ESP_IV + ct_len + ESP_ICV;
	while (r->n >= 3) {
		uint16_t pos = u16(r);

		out[pos % total] ^= u8(r);
	}
	return total;
}

/* One frame for the uplink from a packet's kind and body; NULL when the pool is dry. */
static struct rte_mbuf *frame(uint8_t kind, struct in *body)
{
	static const uint8_t pad_lens[4] = {0, 2, 17, 60};
	enum { ROOM = DATA_ROOM - 128 };	/* for the body: leaves room for the trailer */
	static uint8_t f[DATA_ROOM];
	uint8_t trailer[60];
	size_t trailer_len = pad_lens[kind >> 6];
	unsigned outer = kind & 7;
	bool v6 = outer == 1 || outer == 3 || outer == 5, udp = outer == 2 || outer == 3;
	const struct fuzz_sa *fs = choose_sa((kind >> 3) & 3, v6);
	const struct dp_port *up = &fx.ctx.ports[uplink];
	size_t n = ETH_LEN, l3 = ETH_LEN, esp;
	uint8_t proto = IPPROTO_ESP, o = 0;
	struct rte_mbuf *m;
	uint8_t *d;

	bytes(body, trailer, trailer_len);
	memcpy(f, up->mac.addr_bytes, 6);
	memcpy(f + 6, peer_mac, 6);
	put16(f + 12, v6 ? RTE_ETHER_TYPE_IPV6 : RTE_ETHER_TYPE_IPV4);
	if (outer == 6 || outer == 7) {
		if (outer == 7)
			put16(f + 12, u16(body));
		n += body->n < ROOM - n ? body->n : ROOM - n;
		bytes(body, f + l3, n - l3);
		/* Raw IPv4 still gets a good checksum: the fuzzer would rarely find one. */
		if (outer == 6 && n - l3 >= IPV4_LEN && (f[l3] & 0xf) * 4u >= IPV4_LEN &&
		    (f[l3] & 0xf) * 4u <= n - l3)
			ipv4_checksum(f + l3, (f[l3] & 0xf) * 4u);
	} else {
		if (!v6) {
			memset(f + l3, 0, IPV4_LEN);
			f[l3] = 0x45;
			f[l3 + 8] = 64;
			memcpy(f + l3 + 12, peer4, 4);
			memcpy(f + l3 + 16, up->cfg->ipv4.addr, 4);
			n += IPV4_LEN;
			if (outer == 4) {
				unsigned words;

				o = u8(body);
				words = o & 15;
				f[l3] = (uint8_t)(0x45 + words);
				bytes(body, f + n, 4 * words);
				n += 4 * words;
				put16(f + l3 + 6, (uint16_t)((o & 0x10 ? RTE_IPV4_HDR_MF_FLAG : 0) |
							     (o & 0x20 ? 185 : 0) |
							     (o & 0x80 ? RTE_IPV4_HDR_DF_FLAG : 0)));
				udp = o & 0x40;
			}
		} else {
			memset(f + l3, 0, IPV6_LEN);
			f[l3] = 0x60;
			f[l3 + 7] = 64;
			memcpy(f + l3 + 8, peer6, 16);
			memcpy(f + l3 + 24, up->cfg->ipv6.addr, 16);
			n += IPV6_LEN;
			if (outer == 5) {
				uint8_t ext;

				proto = u8(body);
				ext = u8(body);
				bytes(body, f + n, ext);
				n += ext;
			}
		}
		if (udp) {
			proto = IPPROTO_UDP;
			put16(f + n, NATT_PORT);
			put16(f + n + 2, NATT_PORT);
			f[n + 6] = f[n + 7] = 0;
			n += UDP_LEN;
		}
		esp = n;
		if (kind & 0x20) {
			n += seal(f + n, ROOM - n, body, fs ? fs : &sas[v6 ? 2 : 0]);
		} else {
			size_t k = body->n < ROOM - n ? body->n : ROOM - n;

			bytes(body, f + n, k);
			n += k;
			if (fs && k >= 4)
				put32(f + esp, fs->cfg->spi);
		}
		if (udp)
			put16(f + esp - UDP_LEN + 4, (uint16_t)(n - esp + UDP_LEN));
		if (!v6) {
			f[l3 + 9] = proto;
			put16(f + l3 + 2, (uint16_t)(n - l3));
			ipv4_checksum(f + l3, (f[l3] & 0xf) * 4u);
		} else {
			f[l3 + 6] = proto;
			put16(f + l3 + 4, (uint16_t)(n - l3 - IPV6_LEN));
		}
	}
	/* Bytes after the IP packet are the sender's to choose too: the dataplane must not
	 * mistake them for the packet's. */
	memcpy(f + n, trailer, trailer_len);
	n += trailer_len;

	m = rte_pktmbuf_alloc(frames);
	if (!m)
		return NULL;
	d = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)n);
	if (!d)
		DIE("frame of %zu bytes does not fit an mbuf", n);
	memcpy(d, f, n);
	return m;
}

/* ASan sees the frame and nothing else of the mbuf's buffer while the dataplane runs. */
static void fence(struct rte_mbuf *m)
{
	uint8_t *buf = m->buf_addr;

	ASAN_POISON_MEMORY_REGION(buf, m->data_off);
	ASAN_POISON_MEMORY_REGION(buf + m->data_off + m->data_len,
				  (size_t)m->buf_len - m->data_off - m->data_len);
}

static void unfence(uint8_t *buf, uint16_t len)
{
	ASAN_UNPOISON_MEMORY_REGION(buf, len);
}

/* ---- One input ---- */

/* To check that seeds reach what they are meant to: drops by reason, SA counters, sends. */
static void report(const struct eg_worker_shm *before)
{
	const struct eg_worker_shm *now = fx.w->shm;

	fprintf(stderr, "input:");
	for (unsigned r = 0; r < EG_DROP_MAX; r++)
		if (now->drop[r] != before->drop[r])
			fprintf(stderr, " %s=%llu", eg_drop_names[r],
				(unsigned long long)(now->drop[r] - before->drop[r]));
	for (unsigned i = 0; i < fx.ctx.n_ports; i++)
		if (now->port[i].tx_packets != before->port[i].tx_packets)
			fprintf(stderr, " tx.%s=%llu", fx.ctx.ports[i].cfg->name,
				(unsigned long long)(now->port[i].tx_packets - before->port[i].tx_packets));
	for (unsigned i = 0; i < RTE_DIM(sas); i++) {
		const struct eg_sa_counters *c = &eg_shm_sa_counters(fx.w->shm)[i];

		if (c->packets || c->auth_failures || c->replays || c->padding_errors || c->other_drops)
			fprintf(stderr, " sa%u{ok=%llu auth=%llu replay=%llu pad=%llu other=%llu}", sas[i].cfg->spi,
				(unsigned long long)c->packets, (unsigned long long)c->auth_failures,
				(unsigned long long)c->replays, (unsigned long long)c->padding_errors,
				(unsigned long long)c->other_drops);
	}
	fprintf(stderr, " punted=%u\n", rte_ring_count(fx.w->punt));
}

static void reset(bool stop_a)
{
	for (unsigned i = 0; i < RTE_DIM(sas); i++) {
		bool a = sas[i].cfg->spi == SPI_A || sas[i].cfg->spi == SPI_A6;

		eg_replay_init(eg_sa_replay(sas[i].s), sas[i].cfg->replay_window);
		__atomic_store_n(&sas[i].s->state, stop_a && a ? EG_SA_STOPPED : EG_SA_ACTIVE,
				 __ATOMIC_RELEASE);
	}
	/* Resolve requests are rate limited by time: forget them, so every input asks alike. */
	memset(fx.w->asked, 0, sizeof(fx.w->asked));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in r = {data, size};
	uint8_t flags = u8(&r);
	unsigned n = 1 + (flags >> 6);
	struct rte_mbuf *m[MAX_PKTS];
	struct {
		uint8_t *buf;
		uint16_t len;
	} fenced[MAX_PKTS];
	unsigned built = 0, free_now;

	static struct eg_worker_shm before;

	reset(flags & IN_STOP_A);
	if (trace) {
		before = *fx.w->shm;
		for (unsigned i = 0; i < RTE_DIM(sas); i++)
			memset(&eg_shm_sa_counters(fx.w->shm)[i], 0, sizeof(struct eg_sa_counters));
	}
	if (flags & IN_TOP) {
		uint32_t top_a = u32(&r);
		uint64_t top_b = u64(&r);

		for (unsigned i = 0; i < RTE_DIM(sas); i++)
			eg_replay_restore(eg_sa_replay(sas[i].s), sas[i].cfg->esn ? top_b : top_a);
	}
	for (unsigned i = 0; i < n; i++) {
		uint8_t kind = u8(&r);
		struct in body = i + 1 < n ? split(&r, u16(&r)) : split(&r, r.n);
		struct rte_mbuf *x = frame(kind, &body);

		if (!x)
			DIE("mbuf pool exhausted");
		fenced[built].buf = x->buf_addr;
		fenced[built].len = x->buf_len;
		fence(x);
		m[built++] = x;
		/* One by one, each frame is built after the one before went through: ESN
		 * inference in seal() sees the window the dataplane will see. */
		if (!(flags & IN_BURST)) {
			dp_worker_process(fx.w, fx.table, uplink, &m[built - 1], 1);
			dp_worker_flush(fx.w);
			/* Sent or freed, it may come back from the pool as the next frame. */
			unfence(fenced[built - 1].buf, fenced[built - 1].len);
		}
	}
	if (flags & IN_BURST) {
		dp_worker_process(fx.w, fx.table, uplink, m, (uint16_t)built);
		dp_worker_flush(fx.w);
	}
	if (trace)
		report(&before);
	dp_offline_drain(&fx);
	for (unsigned i = 0; i < built; i++)
		unfence(fenced[i].buf, fenced[i].len);
	free_now = rte_mempool_avail_count(fx.ctx.pool);
	if (free_now != pool_free || rte_mempool_avail_count(frames) != frames_free)
		DIE("mbuf leak: %u free after the input, %u before; frames %u, %u", free_now, pool_free,
		    rte_mempool_avail_count(frames), frames_free);
	return 0;
}
