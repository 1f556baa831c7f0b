/* libFuzzer harness for what every frame meets first: Ethernet/VLAN/IPv4/IPv6 parsing,
 * classification against policy, direct forwarding and source NAT in both directions, on a
 * real dataplane context (dataplane/offline.c: EAL on net_null devices, the shared-memory
 * segment with its NAT region, a published table).
 *
 * Input (short inputs read as zeros):
 *
 *   input  := flags:u8 frame{1..4}
 *   flags  := bit 0: expire every NAT session first (the clock jumps a day, two sweeps)
 *             bits 6-7: frames - 1
 *   frame  := how:u8 len:u16be body[len]   (the last frame has no len: the rest)
 *   how    := bit 0: arrives on the uplink (else on the site port)
 *             bits 1-3: 0 the body is the whole Ethernet frame
 *                       1 the body is an IPv4 packet (header checksum fixed) behind our MAC
 *                       2 the body is an IPv6 packet behind our MAC
 *                       3 the body is an IPv4 packet whose addresses are made those of a
 *                         site host to the internet (site) or of the internet to a pool
 *                         address (uplink)
 *                       4 uplink: a reply to NAT session body[0] (its protocol, endpoints
 *                         and ports), the rest of the body after the transport ports
 *                       5 uplink: an ICMP error (type, code from the body) quoting what
 *                         session body[0] sent, cut to body[3] bytes
 *             bits 4-5: VLAN tag: none, the port's (none configured: mismatch), 0, random
 *
 * Findings beyond crashes and sanitizer reports: an mbuf neither sent nor freed; an IPv4
 * packet leaving on the uplink from a site address (every site flow goes through the NAT
 * egress, so its source must be a pool address); a packet leaving with a wrong IPv4
 * header checksum; NAT counts that do not add up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "fuzz_input.h"
#include "nat_table.h"
#include "offline.h"
#include "shm.h"
#include "worker.h"

#define DIE(fmt, ...) do { fprintf(stderr, "fuzz_frames: " fmt "\n", ##__VA_ARGS__); abort(); } while (0)

enum { N_MBUFS = 2048, MAX_FRAMES = 4, ETH = 14 };

/* Site 10.10.0.0/24 with four hosts; the uplink with its gateway; every site flow to IPv4
 * leaves through direct-nat (pool 192.0.2.100-101), IPv6 through direct-wan0; short NAT
 * timeouts and small blocks, so that exhaustion is within reach. */
static const char config_fmt[] =
	"{\"instance\": \"%s\", \"dataplane\": {\"workers\": 1, \"idle_backoff\": false, \"table_mb\": 1,"
	" \"nat\": {\"sessions\": 1024, \"hosts\": 16, \"ports_per_block\": 64, \"blocks_per_host\": 2,"
	"  \"timeouts\": {\"tcp_established\": 60, \"tcp_transitory\": 5, \"udp\": 10, \"icmp\": 5}},"
	" \"ports\": ["
	"  {\"name\": \"lan0\", \"role\": \"site\", \"device\": \"net_null0\","
	"   \"ipv4\": \"10.10.0.1/24\", \"ipv6\": \"2001:db8:10::1/64\", \"mac\": \"02:00:00:00:00:01\","
	"   \"neighbours\": [{\"ip\": \"10.10.0.2\", \"mac\": \"02:00:00:00:00:02\"},"
	"                    {\"ip\": \"10.10.0.3\", \"mac\": \"02:00:00:00:00:03\"},"
	"                    {\"ip\": \"10.10.0.4\", \"mac\": \"02:00:00:00:00:04\"},"
	"                    {\"ip\": \"10.10.0.5\", \"mac\": \"02:00:00:00:00:05\"},"
	"                    {\"ip\": \"2001:db8:10::2\", \"mac\": \"02:00:00:00:00:12\"}]},"
	"  {\"name\": \"wan0\", \"role\": \"uplink\", \"device\": \"net_null1\","
	"   \"ipv4\": \"192.0.2.1/24\", \"gateway\": \"192.0.2.254\", \"ipv6\": \"2001:db8:1::1/64\","
	"   \"gateway6\": \"2001:db8:1::fe\", \"mac\": \"02:00:00:00:01:01\","
	"   \"neighbours\": [{\"ip\": \"192.0.2.254\", \"mac\": \"02:00:00:00:01:fe\"},"
	"                    {\"ip\": \"2001:db8:1::fe\", \"mac\": \"02:00:00:00:01:fd\"}]}]},"
	" \"egresses\": [{\"name\": \"direct-nat\", \"type\": \"direct\", \"port\": \"wan0\","
	"   \"snat\": {\"pool\": [\"192.0.2.100\", \"192.0.2.101\"]}},"
	"  {\"name\": \"direct-wan0\", \"type\": \"direct\", \"port\": \"wan0\"}],"
	" \"policies\": ["
	"  {\"name\": \"blocked\", \"priority\": 5, \"match\": {\"proto\": \"udp\", \"dport\": \"9\"}, \"action\": \"drop\"},"
	"  {\"name\": \"v4\", \"priority\": 10, \"match\": {\"dst\": \"0.0.0.0/0\"}, \"egresses\": [\"direct-nat\"]},"
	"  {\"name\": \"v6\", \"priority\": 20, \"match\": {\"dst\": \"::/0\"}, \"egresses\": [\"direct-wan0\"]}]}";

static struct dp_offline fx;
static uint16_t lan, wan;
static unsigned pool_free;
static uint64_t clock_now;		/* the NAT service's time: only forward */

static void tick(uint64_t advance)
{
	clock_now += advance;
	if (clock_now < rte_rdtsc())
		clock_now = rte_rdtsc();
	dp_offline_nat_tick(&fx, clock_now);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	dp_offline_start(&fx, "fuzzframes", config_fmt, 2048, N_MBUFS);
	dp_offline_publish(&fx);
	lan = dp_offline_port(&fx, "lan0");
	wan = dp_offline_port(&fx, "wan0");
	if (!fx.ctx.nat || fx.ctx.nat->n_addrs != 2)
		DIE("the NAT region has not the pool");
	tick(0);
	pool_free = rte_mempool_avail_count(fx.ctx.pool);
	return 0;
}

static void fix_ipv4_checksum(uint8_t *ip, size_t len)
{
	struct rte_ipv4_hdr *h = (struct rte_ipv4_hdr *)ip;
	size_t ihl = (size_t)(ip[0] & 0xf) * 4;

	if (len < sizeof(*h) || ihl < sizeof(*h) || ihl > len)
		return;
	h->hdr_checksum = 0;
	h->hdr_checksum = rte_raw_cksum(ip, ihl) == 0xffff ? 0 : (uint16_t)~rte_raw_cksum(ip, ihl);
}

/* The session with index k (of those ever used), if linked. */
static const struct eg_nat_session *session(uint8_t k)
{
	const struct eg_nat_hdr *n = fx.ctx.nat;

	if (n->sess_high == 0)
		return NULL;
	const struct eg_nat_session *s = &eg_nat_sessions(n)[k % n->sess_high];

	return s->linked ? s : NULL;
}

static const uint8_t ipproto[] = {[EG_NAT_TCP] = IPPROTO_TCP, [EG_NAT_UDP] = IPPROTO_UDP, [EG_NAT_ICMP] = IPPROTO_ICMP};

/* An IPv4 packet at ip: header, then l4 bytes; returns its length. */
static size_t ipv4(uint8_t *ip, uint8_t proto, uint32_t src, uint32_t dst, const uint8_t *l4, size_t l4_len)
{
	struct rte_ipv4_hdr *h = (struct rte_ipv4_hdr *)ip;

	memset(h, 0, sizeof(*h));
	h->version_ihl = 0x45;
	h->total_length = rte_cpu_to_be_16((uint16_t)(sizeof(*h) + l4_len));
	h->time_to_live = 64;
	h->next_proto_id = proto;
	h->src_addr = src;
	h->dst_addr = dst;
	memcpy(ip + sizeof(*h), l4, l4_len);
	fix_ipv4_checksum(ip, sizeof(*h));
	return sizeof(*h) + l4_len;
}

/* The L3 part of a frame, by kind; returns its length, 0 for none. */
static size_t l3_of(unsigned kind, bool up, struct in *b, uint8_t *out, uint16_t *ethertype)
{
	size_t n = b->n > 1500 ? 1500 : b->n;
	const struct eg_nat_session *s;
	uint8_t l4[1500];

	*ethertype = RTE_ETHER_TYPE_IPV4;
	switch (kind) {
	case 1:
	case 3:
		memcpy(out, b->p, n);
		if (kind == 3 && n >= 20) {
			uint32_t site = rte_cpu_to_be_32(DP_IPV4(10, 10, 0, 2 + (out[12] & 3)));
			uint32_t net = rte_cpu_to_be_32(DP_IPV4(203, 0, 113, out[16]));
			uint32_t pool = rte_cpu_to_be_32(DP_IPV4(192, 0, 2, 100 + (out[19] & 1)));

			memcpy(out + 12, up ? &net : &site, 4);
			memcpy(out + 16, up ? &pool : &net, 4);
		}
		fix_ipv4_checksum(out, n);
		return n;
	case 2:
		*ethertype = RTE_ETHER_TYPE_IPV6;
		memcpy(out, b->p, n);
		return n;
	case 4:
		if (!up || !(s = session(u8(b))))
			return 0;
		n = b->n > 1400 ? 1400 : b->n;
		memcpy(l4, b->p, n);
		if (n < 8)
			n = 8;
		if (s->proto == EG_NAT_ICMP) {
			l4[0] = 0, l4[1] = 0;	/* echo reply */
			l4[4] = (uint8_t)(s->out_port >> 8), l4[5] = (uint8_t)s->out_port;
		} else {
			l4[0] = (uint8_t)(s->rem_port >> 8), l4[1] = (uint8_t)s->rem_port;
			l4[2] = (uint8_t)(s->out_port >> 8), l4[3] = (uint8_t)s->out_port;
			if (s->proto == EG_NAT_TCP && n < 20)
				n = 20;
		}
		return ipv4(out, ipproto[s->proto], s->rem_addr, s->out_addr, l4, n);
	case 5: {
		uint8_t type, code, cut, quoted[1500];
		size_t qn;

		if (!up || !(s = session(u8(b))))
			return 0;
		type = u8(b), code = u8(b), cut = u8(b);
		n = b->n > 1000 ? 1000 : b->n;
		/* What the session sent: pool endpoint to the remote one. */
		uint8_t t[1000 + 20] = {0};

		memcpy(t, b->p, n);
		if (s->proto == EG_NAT_ICMP) {
			t[0] = 8, t[1] = 0;
			t[4] = (uint8_t)(s->out_port >> 8), t[5] = (uint8_t)s->out_port;
		} else {
			t[0] = (uint8_t)(s->out_port >> 8), t[1] = (uint8_t)s->out_port;
			t[2] = (uint8_t)(s->rem_port >> 8), t[3] = (uint8_t)s->rem_port;
		}
		qn = ipv4(quoted, ipproto[s->proto], s->out_addr, s->rem_addr, t, n < 20 ? 20 : n);
		if (cut && cut < qn)
			qn = cut;
		memset(l4, 0, 8);
		l4[0] = type, l4[1] = code;
		memcpy(l4 + 8, quoted, qn);
		uint16_t c = (uint16_t)~rte_raw_cksum(l4, 8 + qn);

		memcpy(l4 + 2, &c, 2);
		return ipv4(out, IPPROTO_ICMP, rte_cpu_to_be_32(DP_IPV4(198, 51, 100, 1 + code)), s->out_addr, l4, 8 + qn);
	}
	}
	return 0;
}

static struct rte_mbuf *frame(uint8_t how, struct in *b)
{
	bool up = how & 1;
	unsigned kind = (how >> 1) & 7, vlan = (how >> 4) & 3;
	struct rte_mbuf *m = rte_pktmbuf_alloc(fx.ctx.pool);
	uint8_t l3[1600];
	uint16_t ethertype;
	size_t n;
	uint8_t *d;

	if (!m)
		DIE("mbuf pool exhausted");
	if (kind == 0) {
		n = b->n > 1600 ? 1600 : b->n;
		d = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)n);
		if (n && !d)
			DIE("no room");
		if (n)
			memcpy(d, b->p, n);
		return m;
	}
	n = l3_of(kind, up, b, l3, &ethertype);
	size_t hdr = ETH + (vlan ? 4 : 0);

	d = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)(hdr + n));
	if (!d)
		DIE("no room");
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)d;

	eth->dst_addr = fx.ctx.ports[up ? wan : lan].mac;
	memset(eth->src_addr.addr_bytes, 0x02, 6);
	if (vlan) {
		struct rte_vlan_hdr *vh = (struct rte_vlan_hdr *)(eth + 1);

		eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_VLAN);
		vh->vlan_tci = rte_cpu_to_be_16(vlan == 2 ? 0 : (uint16_t)(vlan == 1 ? 1 : 0xfff));
		vh->eth_proto = rte_cpu_to_be_16(ethertype);
	} else {
		eth->ether_type = rte_cpu_to_be_16(ethertype);
	}
	memcpy(d + hdr, l3, n);
	return m;
}

/* What left: checked, then freed. */
static void check_sent(void)
{
	struct rte_mbuf *out[64];
	unsigned n = dp_offline_take_tx(&fx, wan, out, RTE_DIM(out));

	for (unsigned i = 0; i < n; i++) {
		const uint8_t *d = rte_pktmbuf_mtod(out[i], const uint8_t *);
		uint16_t et;
		size_t off = ETH;

		memcpy(&et, d + 12, 2);
		if (et == rte_cpu_to_be_16(RTE_ETHER_TYPE_VLAN)) {
			memcpy(&et, d + 16, 2);
			off += 4;
		}
		if (et == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) && rte_pktmbuf_data_len(out[i]) >= off + 20) {
			const uint8_t *ip = d + off;
			size_t ihl = (size_t)(ip[0] & 0xf) * 4;

			if (ip[12] == 10 && ip[13] == 10)
				DIE("a site address left on the uplink untranslated");
			if (ihl >= 20 && rte_pktmbuf_data_len(out[i]) >= off + ihl && rte_raw_cksum(ip, ihl) != 0xffff)
				DIE("a packet left the uplink with a bad IPv4 header checksum");
		}
	}
	rte_pktmbuf_free_bulk(out, n);
	n = dp_offline_take_tx(&fx, lan, out, RTE_DIM(out));
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *d = rte_pktmbuf_mtod(out[i], const uint8_t *);
		uint16_t et;

		memcpy(&et, d + 12, 2);
		if (et == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) && rte_pktmbuf_data_len(out[i]) >= ETH + 20) {
			const uint8_t *ip = d + ETH;

			if (ip[16] == 192 && ip[17] == 0 && ip[18] == 2 && (ip[19] == 100 || ip[19] == 101))
				DIE("a packet to a pool address was sent to the site untranslated");
			if (rte_raw_cksum(ip, (size_t)(ip[0] & 0xf) * 4) != 0xffff)
				DIE("a packet left to the site with a bad IPv4 header checksum");
		}
	}
	rte_pktmbuf_free_bulk(out, n);
}

static void check_nat(void)
{
	const struct eg_nat_hdr *n = fx.ctx.nat;
	uint64_t linked = 0;

	for (uint32_t i = 0; i < n->sess_high; i++)
		linked += eg_nat_sessions(n)[i].linked;
	if (linked != n->sessions || n->mappings > n->sessions || n->hosts > n->mappings ||
	    n->blocks > (uint64_t)n->hosts * n->p.blocks_per_host)
		DIE("NAT counts do not add up: %llu linked, %llu sessions, %llu mappings, %llu hosts, %llu blocks",
		    (unsigned long long)linked, (unsigned long long)n->sessions, (unsigned long long)n->mappings,
		    (unsigned long long)n->hosts, (unsigned long long)n->blocks);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in r = {data, size};
	uint8_t flags = u8(&r);
	unsigned nf = 1 + (flags >> 6);

	if (flags & 1) {
		tick(fx.ctx.tsc_hz * 86400);
		tick(0);
		tick(0);
	}
	memset(fx.w->asked, 0, sizeof(fx.w->asked));
	for (unsigned i = 0; i < nf; i++) {
		uint8_t how = u8(&r);
		struct in body = i + 1 < nf ? split(&r, u16(&r)) : split(&r, r.n);
		struct rte_mbuf *m = frame(how, &body);

		dp_worker_process(fx.w, fx.table, how & 1 ? wan : lan, &m, 1);
		check_sent();
	}
	dp_worker_flush(fx.w);
	dp_offline_drain(&fx);
	tick(0);
	check_nat();
	if (rte_mempool_avail_count(fx.ctx.pool) != pool_free)
		DIE("mbuf leak: %u free after the input, %u before", rte_mempool_avail_count(fx.ctx.pool), pool_free);
	return 0;
}
