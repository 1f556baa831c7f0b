/* The ESP paths of a real dataplane context (dataplane/offline.c), frame by frame: sequence-number
 * overflow stops an SA without wrapping (RFC 4303 3.3.3) while ESN goes on past 2^32, and
 * an ESP packet fragmented on the way out ("fragment": "outer") comes back through our own
 * IPv4 reassembly, in any order, decrypts and is delivered; overlapping fragments are
 * dropped by reason. (In the integration tests AF_PACKET reassembles IPv4 in the kernel
 * first, so this is where our IPv4 reassembly meets real ESP.) */
#include <criterion/criterion.h>

#include <string.h>

#include <rte_byteorder.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_udp.h>

#include "flow_cache.h"
#include "offline.h"
#include "worker.h"

#define K "000102030405060708090a0b0c0d0e0fa0a1a2a3"

static const char config_fmt[] =
	"{\"instance\": \"%s\", \"dataplane\": {\"workers\": 1, \"idle_backoff\": false, \"table_mb\": 1,"
	" \"ports\": ["
	"  {\"name\": \"lan0\", \"role\": \"site\", \"device\": \"net_null0\", \"ipv4\": \"10.10.0.1/24\","
	"   \"mac\": \"02:00:00:00:00:01\", \"neighbours\": [{\"ip\": \"10.10.0.2\", \"mac\": \"02:00:00:00:00:02\"}]},"
	"  {\"name\": \"wan0\", \"role\": \"uplink\", \"device\": \"net_null1\", \"ipv4\": \"192.0.2.1/24\","
	"   \"gateway\": \"192.0.2.254\", \"mac\": \"02:00:00:00:01:01\","
	"   \"neighbours\": [{\"ip\": \"192.0.2.254\", \"mac\": \"02:00:00:00:01:fe\"}]}],"
	" \"routes\": [{\"prefix\": \"203.0.113.0/24\", \"via\": \"10.10.0.2\", \"port\": \"lan0\"}]},"
	" \"ipsec\": {\"sas\": ["
	"  {\"spi\": 256, \"direction\": \"out\", \"local\": \"192.0.2.1\", \"remote\": \"192.0.2.254\","
	"   \"aead\": \"aes-gcm-128\", \"key\": \"" K "\"},"
	"  {\"spi\": 257, \"direction\": \"out\", \"local\": \"192.0.2.1\", \"remote\": \"192.0.2.254\","
	"   \"aead\": \"aes-gcm-128\", \"esn\": true, \"key\": \"" K "\"},"
	"  {\"spi\": 768, \"direction\": \"out\", \"local\": \"192.0.2.1\", \"remote\": \"192.0.2.254\","
	"   \"aead\": \"aes-gcm-128\", \"fragment\": \"outer\", \"key\": \"" K "\"},"
	"  {\"spi\": 768, \"direction\": \"in\", \"local\": \"192.0.2.1\", \"remote\": \"192.0.2.254\","
	"   \"aead\": \"aes-gcm-128\", \"key\": \"" K "\"}]},"
	" \"egresses\": ["
	"  {\"name\": \"plain\", \"type\": \"ipsec\", \"sa_out\": 256, \"sa_in\": 768},"
	"  {\"name\": \"esn\", \"type\": \"ipsec\", \"sa_out\": 257, \"sa_in\": 768},"
	"  {\"name\": \"outer\", \"type\": \"ipsec\", \"sa_out\": 768, \"sa_in\": 768}],"
	" \"policies\": ["
	"  {\"name\": \"p1\", \"priority\": 1, \"match\": {\"proto\": \"udp\", \"dport\": \"6001\"}, \"egresses\": [\"plain\"], \"strategy\": \"pinned\"},"
	"  {\"name\": \"p2\", \"priority\": 2, \"match\": {\"proto\": \"udp\", \"dport\": \"6002\"}, \"egresses\": [\"esn\"], \"strategy\": \"pinned\"},"
	"  {\"name\": \"p3\", \"priority\": 3, \"match\": {\"proto\": \"udp\", \"dport\": \"6003\"}, \"egresses\": [\"outer\"], \"strategy\": \"pinned\"}]}";

static struct dp_offline fx;
static uint16_t lan, wan;

static void setup(void)
{
	dp_offline_start(&fx, "testesp", config_fmt, 2048, 1024);
	dp_offline_publish(&fx);
	lan = dp_offline_port(&fx, "lan0");
	wan = dp_offline_port(&fx, "wan0");
}

/* A frame from the site host 10.10.0.2 to 203.0.113.20, UDP to dport with len bytes of
 * payload (byte i is i * 7 + seed). */
static struct rte_mbuf *site_udp(uint16_t dport, uint16_t len, bool df, uint8_t seed)
{
	static const uint8_t mac[6] = {0x02, 0, 0, 0, 0, 0x02};
	uint8_t pl[2048];

	cr_assert_leq(len, sizeof(pl));
	for (unsigned i = 0; i < len; i++)
		pl[i] = (uint8_t)(i * 7 + seed);
	return dp_offline_udp_frame(&fx, lan, mac, DP_IPV4(10, 10, 0, 2), DP_IPV4(203, 0, 113, 20), 5555, dport, pl,
				    len, df, seed);
}

static unsigned take_tx(uint16_t port, struct rte_mbuf **out, unsigned max)
{
	return dp_offline_take_tx(&fx, port, out, max);
}

static uint32_t be32_at(const struct rte_mbuf *m, unsigned off)
{
	uint32_t v;

	memcpy(&v, rte_pktmbuf_mtod_offset(m, const uint8_t *, off), 4);
	return rte_be_to_cpu_32(v);
}

static uint64_t drops(enum eg_drop_reason r)
{
	return fx.w->shm->drop[r];
}

enum { ESP_AT = 14 + 20 };		/* Ethernet, outer IPv4 */

Test(esp_path, sequence_overflow_stops_the_sa_and_never_wraps, .init = setup)
{
	uint32_t slot;
	struct eg_sa_slot *s = dp_offline_sa(&fx, 256, EG_SA_DIR_OUT, &slot);
	struct rte_mbuf *in[5], *out[8];
	unsigned n;

	/* As if 2^32 - 3 numbers were used: two are left. */
	s->seq = UINT32_MAX - 2;
	for (unsigned i = 0; i < 5; i++)
		in[i] = site_udp(6001, 100, true, (uint8_t)i);
	dp_worker_process(fx.w, fx.table, lan, in, 5);
	n = take_tx(wan, out, 8);
	cr_assert_eq(n, 2, "only the last two numbers are sent, got %u packets", n);
	cr_assert_eq(be32_at(out[0], ESP_AT), 256);
	cr_assert_eq(be32_at(out[0], ESP_AT + 4), UINT32_MAX - 1);
	cr_assert_eq(be32_at(out[1], ESP_AT + 4), UINT32_MAX);
	rte_pktmbuf_free_bulk(out, n);
	cr_assert_eq(__atomic_load_n(&s->state, __ATOMIC_ACQUIRE), EG_SA_STOPPED);
	cr_assert_eq(s->stop_reason, EG_SA_STOP_SEQ_OVERFLOW, "control is told why");
	cr_assert_eq(drops(EG_DROP_ESP_SEQ_OVERFLOW), 1);
	cr_assert_eq(drops(EG_DROP_ESP_SA_STOPPED), 2);
	cr_assert_eq(eg_shm_sa_counters(fx.w->shm)[slot].packets, 2);

	/* Stopped stays stopped. */
	in[0] = site_udp(6001, 100, true, 9);
	dp_worker_process(fx.w, fx.table, lan, in, 1);
	cr_assert_eq(take_tx(wan, out, 8), 0);
	cr_assert_eq(drops(EG_DROP_ESP_SA_STOPPED), 3);
}

/* The worker remembers a flow's classification (dataplane/flow_cache.h), not its egress:
 * after a publish that moves the policy to another egress (the rules unchanged, so the
 * cached entry stays), the same flow takes the new egress at once. */
Test(esp_path, a_publish_moves_a_cached_flow_at_once, .init = setup)
{
	struct rte_mbuf *m, *out[4];
	const struct eg_table_hdr *old = fx.table;
	uint64_t lookups = fx.w->shm->flow_lookups, misses = fx.w->shm->flow_misses;

	for (unsigned round = 0; round < 2; round++) {
		m = site_udp(6001, 100, true, (uint8_t)round);
		dp_worker_process(fx.w, fx.table, lan, &m, 1);
		cr_assert_eq(take_tx(wan, out, 4), 1);
		cr_assert_eq(be32_at(out[0], ESP_AT), 256, "policy p1 sends with SA 256");
		rte_pktmbuf_free(out[0]);
	}
	uint64_t old_gen = old->generation, old_cls = old->classifier_id;

	strcpy(fx.ctx.cfg.policies[0].egresses[0], "esn");
	dp_offline_publish(&fx);
	cr_assert_neq(fx.table->generation, old_gen);
	cr_assert_eq(fx.table->classifier_id, old_cls, "the same rules: the cached classification holds");
	m = site_udp(6001, 100, true, 9);
	dp_worker_process(fx.w, fx.table, lan, &m, 1);
	cr_assert_eq(take_tx(wan, out, 4), 1);
	cr_assert_eq(be32_at(out[0], ESP_AT), 257, "the same flow now leaves with p1's new egress's SA");
	rte_pktmbuf_free(out[0]);
	/* As the worker's shared-memory counters tell the control process: three lookups,
	 * one miss, the flow's first packet. */
	cr_assert_eq(fx.w->shm->flow_lookups - lookups, 3);
	cr_assert_eq(fx.w->shm->flow_misses - misses, 1);
	cr_assert_eq(fx.w->shm->flow_capacity, DP_FLOW_START_FLOWS);
}

/* A publish that changes the rules makes the worker classify a cached flow again: here p2
 * comes to match the flow p1 had, ahead of it. */
Test(esp_path, a_rule_change_reclassifies_a_cached_flow, .init = setup)
{
	struct rte_mbuf *m, *out[4];
	uint64_t old_cls = fx.table->classifier_id;
	struct eg_policy_cfg *p2 = &fx.ctx.cfg.policies[1];

	m = site_udp(6001, 100, true, 1);
	dp_worker_process(fx.w, fx.table, lan, &m, 1);
	cr_assert_eq(take_tx(wan, out, 4), 1);
	cr_assert_eq(be32_at(out[0], ESP_AT), 256, "p1 (SA 256) first");
	rte_pktmbuf_free(out[0]);
	p2->priority = 0;
	p2->match.dport_lo = p2->match.dport_hi = 6001;
	dp_offline_publish(&fx);
	cr_assert_neq(fx.table->classifier_id, old_cls);
	m = site_udp(6001, 100, true, 2);
	dp_worker_process(fx.w, fx.table, lan, &m, 1);
	cr_assert_eq(take_tx(wan, out, 4), 1);
	cr_assert_eq(be32_at(out[0], ESP_AT), 257, "now p2's egress (SA 257)");
	rte_pktmbuf_free(out[0]);
}

Test(esp_path, esn_goes_past_2_32, .init = setup)
{
	struct eg_sa_slot *s = dp_offline_sa(&fx, 257, EG_SA_DIR_OUT, NULL);
	struct rte_mbuf *in[3], *out[8];
	uint64_t iv;
	unsigned n;

	s->seq = (1ull << 32) - 2;
	for (unsigned i = 0; i < 3; i++)
		in[i] = site_udp(6002, 100, true, (uint8_t)i);
	dp_worker_process(fx.w, fx.table, lan, in, 3);
	n = take_tx(wan, out, 8);
	cr_assert_eq(n, 3);
	/* The wire carries the low half; the IV (our choice: the whole number) shows the
	 * high half moved on. */
	cr_assert_eq(be32_at(out[0], ESP_AT + 4), UINT32_MAX);
	cr_assert_eq(be32_at(out[1], ESP_AT + 4), 0);
	cr_assert_eq(be32_at(out[2], ESP_AT + 4), 1);
	memcpy(&iv, rte_pktmbuf_mtod_offset(out[2], const uint8_t *, ESP_AT + 8), 8);
	cr_assert_eq(rte_be_to_cpu_64(iv), (1ull << 32) + 1);
	rte_pktmbuf_free_bulk(out, n);
	cr_assert_eq(__atomic_load_n(&s->state, __ATOMIC_ACQUIRE), EG_SA_ACTIVE);
	cr_assert_eq(drops(EG_DROP_ESP_SEQ_OVERFLOW), 0);
}

/* Sends a 1460-byte datagram without DF into the "outer" SA and returns its fragments as
 * they would arrive back at us: outer addresses swapped, to our MAC. */
static unsigned fragments_back(uint8_t seed, struct rte_mbuf **frags, struct rte_mbuf **orig)
{
	struct rte_mbuf *in = site_udp(6003, 1460, false, seed);
	unsigned n;

	*orig = rte_pktmbuf_copy(in, fx.ctx.pool, 0, UINT32_MAX);
	cr_assert_not_null(*orig);
	dp_worker_process(fx.w, fx.table, lan, &in, 1);
	n = take_tx(wan, frags, 8);
	cr_assert_eq(n, 2, "the ESP packet (1544 bytes) leaves in two fragments, got %u", n);
	for (unsigned i = 0; i < n; i++) {
		struct rte_ether_hdr *eth = rte_pktmbuf_mtod(frags[i], struct rte_ether_hdr *);
		struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
		uint32_t a = ip->src_addr;

		cr_assert_leq(rte_pktmbuf_pkt_len(frags[i]) - sizeof(*eth), fx.ctx.ports[wan].mtu);
		cr_assert_eq(ip->next_proto_id, IPPROTO_ESP);
		cr_assert_eq(!!(rte_be_to_cpu_16(ip->fragment_offset) & RTE_IPV4_HDR_MF_FLAG), i == 0);
		cr_assert_eq(rte_raw_cksum(ip, sizeof(*ip)), 0xffff, "header checksum");
		eth->dst_addr = fx.ctx.ports[wan].mac;
		ip->src_addr = ip->dst_addr;
		ip->dst_addr = a;
		ip->hdr_checksum = 0;
		ip->hdr_checksum = rte_ipv4_cksum(ip);
	}
	return n;
}

/* The inner datagram delivered to the site is the one sent (two hops took two TTL). */
static void expect_delivered(struct rte_mbuf *orig)
{
	struct rte_mbuf *out[8];
	unsigned n = take_tx(lan, out, 8);
	const struct rte_ipv4_hdr *a, *b;

	cr_assert_eq(n, 1, "the datagram reaches the site once, got %u", n);
	cr_assert_eq(rte_pktmbuf_pkt_len(out[0]), rte_pktmbuf_pkt_len(orig));
	a = rte_pktmbuf_mtod_offset(orig, const struct rte_ipv4_hdr *, 14);
	b = rte_pktmbuf_mtod_offset(out[0], const struct rte_ipv4_hdr *, 14);
	cr_assert_eq(b->time_to_live, a->time_to_live - 2);
	cr_assert_eq(a->src_addr, b->src_addr);
	cr_assert_eq(a->dst_addr, b->dst_addr);
	cr_assert_eq(memcmp(a + 1, b + 1, rte_be_to_cpu_16(a->total_length) - sizeof(*a)), 0,
		     "UDP header and payload intact");
	rte_pktmbuf_free(out[0]);
	rte_pktmbuf_free(orig);
}

Test(esp_path, outer_fragments_come_back_through_our_reassembly, .init = setup)
{
	struct rte_mbuf *frags[8], *orig;
	unsigned n = fragments_back(1, frags, &orig);

	/* Last fragment first. */
	for (unsigned i = n; i-- > 0;)
		dp_worker_process(fx.w, fx.table, wan, &frags[i], 1);
	expect_delivered(orig);
	cr_assert_eq(fx.w->shm->reassembled, 1);

	/* In order, in one burst. */
	n = fragments_back(2, frags, &orig);
	dp_worker_process(fx.w, fx.table, wan, frags, (uint16_t)n);
	expect_delivered(orig);
	cr_assert_eq(fx.w->shm->reassembled, 2);
	cr_assert_eq(fx.w->shm->drops, 0);
}

Test(esp_path, overlapping_and_duplicate_fragments_are_dropped_by_reason, .init = setup)
{
	struct rte_mbuf *frags[8], *orig, *dup, *out[8];
	unsigned n = fragments_back(3, frags, &orig);
	struct rte_ipv4_hdr *ip = rte_pktmbuf_mtod_offset(frags[1], struct rte_ipv4_hdr *, 14);

	/* The first fragment twice: the copy goes alone, the datagram still completes. */
	dup = rte_pktmbuf_copy(frags[0], fx.ctx.pool, 0, UINT32_MAX);
	dp_worker_process(fx.w, fx.table, wan, &frags[0], 1);
	dp_worker_process(fx.w, fx.table, wan, &dup, 1);
	cr_assert_eq(drops(EG_DROP_REASM_DUPLICATE), 1);
	dp_worker_process(fx.w, fx.table, wan, &frags[1], 1);
	expect_delivered(orig);

	/* The second fragment moved back 8 bytes, over the first one's end: both go. */
	n = fragments_back(4, frags, &orig);
	ip = rte_pktmbuf_mtod_offset(frags[1], struct rte_ipv4_hdr *, 14);
	ip->fragment_offset = rte_cpu_to_be_16((uint16_t)(rte_be_to_cpu_16(ip->fragment_offset) - 1));
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	dp_worker_process(fx.w, fx.table, wan, frags, (uint16_t)n);
	cr_assert_eq(drops(EG_DROP_REASM_OVERLAP), 1);
	cr_assert_eq(take_tx(lan, out, 8), 0, "nothing of it is delivered");
	cr_assert_eq(fx.w->shm->reassembled, 1);
	rte_pktmbuf_free(orig);
}
