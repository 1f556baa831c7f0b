/* Next-hop MACs in forwarding (dataplane/tx.h, dp_neigh_mac): a burst's packets to one
 * next hop share one neighbour lookup, so what matters is that the shared answer is only
 * ever the right one. Packets to different next hops in one burst each get their own
 * MAC, an unresolved next hop is dropped in the middle of a burst without disturbing the
 * others, and a MAC the service changes between bursts is used from the next burst on. */
#include <criterion/criterion.h>

#include <string.h>

#include <rte_ether.h>
#include <rte_mbuf.h>

#include "neigh.h"
#include "offline.h"
#include "worker.h"

/* Return traffic from the uplink to the site: 203.0.113.0/24 is routed via 10.10.0.2,
 * 10.10.0.3 and 10.10.0.9 are on lan0's link (10.10.0.9 has no neighbour entry). */
static const char config_fmt[] =
	"{\"instance\": \"%s\", \"dataplane\": {\"workers\": 1, \"idle_backoff\": false, \"table_mb\": 1,"
	" \"ports\": ["
	"  {\"name\": \"lan0\", \"role\": \"site\", \"device\": \"net_null0\", \"ipv4\": \"10.10.0.1/24\","
	"   \"mac\": \"02:00:00:00:00:01\", \"neighbours\": [{\"ip\": \"10.10.0.2\", \"mac\": \"02:00:00:00:00:02\"},"
	"                                               {\"ip\": \"10.10.0.3\", \"mac\": \"02:00:00:00:00:03\"}]},"
	"  {\"name\": \"wan0\", \"role\": \"uplink\", \"device\": \"net_null1\", \"ipv4\": \"192.0.2.1/24\","
	"   \"gateway\": \"192.0.2.254\", \"mac\": \"02:00:00:00:01:01\","
	"   \"neighbours\": [{\"ip\": \"192.0.2.254\", \"mac\": \"02:00:00:00:01:fe\"}]}],"
	" \"routes\": [{\"prefix\": \"203.0.113.0/24\", \"via\": \"10.10.0.2\", \"port\": \"lan0\"}]},"
	" \"egresses\": [{\"name\": \"up\", \"type\": \"direct\", \"port\": \"wan0\"}],"
	" \"policies\": [{\"name\": \"all\", \"priority\": 1, \"match\": {}, \"egresses\": [\"up\"], \"strategy\": \"pinned\"}]}";

static struct dp_offline fx;
static uint16_t lan, wan;

static void setup(void)
{
	dp_offline_start(&fx, "testnh", config_fmt, 2048, 1024);
	dp_offline_publish(&fx);
	lan = dp_offline_port(&fx, "lan0");
	wan = dp_offline_port(&fx, "wan0");
}

/* A frame from the Internet host 198.51.100.7 (through the gateway) to dst. */
static struct rte_mbuf *from_uplink(uint32_t dst, uint8_t seed)
{
	static const uint8_t gw_mac[6] = {0x02, 0, 0, 0, 0x01, 0xfe};
	uint8_t pl[32];

	memset(pl, seed, sizeof(pl));
	return dp_offline_udp_frame(&fx, wan, gw_mac, DP_IPV4(198, 51, 100, 7), dst, 4000, 5000, pl, sizeof(pl),
				    true, seed);
}

/* The last byte of each sent frame's destination MAC, and of its IPv4 destination. */
static unsigned sent(uint8_t mac_last[], uint8_t dst_last[], unsigned max)
{
	struct rte_mbuf *out[16];
	unsigned n = dp_offline_take_tx(&fx, lan, out, max < 16 ? max : 16);

	for (unsigned i = 0; i < n; i++) {
		const struct rte_ether_hdr *eth = rte_pktmbuf_mtod(out[i], const struct rte_ether_hdr *);

		mac_last[i] = eth->dst_addr.addr_bytes[5];
		dst_last[i] = rte_pktmbuf_mtod_offset(out[i], const uint8_t *, 14 + 19)[0];
		rte_pktmbuf_free(out[i]);
	}
	return n;
}

static void set_mac(uint32_t ip_host, uint8_t last)
{
	uint32_t ip = rte_cpu_to_be_32(ip_host);
	struct dp_neigh_entry *e = dp_neigh_get(fx.ctx.neigh, lan, EG_AF_INET, (const uint8_t *)&ip, true);
	struct rte_ether_addr mac = {{0x02, 0, 0, 0, 0, last}};

	cr_assert_not_null(e);
	dp_neigh_set(e, &mac, DP_NEIGH_STATIC, 0);
}

Test(next_hop, each_packet_of_a_burst_gets_its_own_next_hops_mac, .init = setup)
{
	/* via 10.10.0.2, on-link 10.10.0.3, via 10.10.0.2, unresolved 10.10.0.9, on-link 10.10.0.3 */
	const uint32_t dst[] = {DP_IPV4(203, 0, 113, 20), DP_IPV4(10, 10, 0, 3), DP_IPV4(203, 0, 113, 21),
				DP_IPV4(10, 10, 0, 9), DP_IPV4(10, 10, 0, 3)};
	const uint8_t want_mac[] = {0x02, 0x03, 0x02, 0x03}, want_dst[] = {20, 3, 21, 3};
	struct rte_mbuf *in[5];
	uint8_t mac[16], d[16];
	uint64_t unresolved = fx.w->shm->drop[EG_DROP_NEIGH_UNRESOLVED];

	for (unsigned i = 0; i < 5; i++)
		in[i] = from_uplink(dst[i], (uint8_t)i);
	dp_worker_process(fx.w, fx.table, wan, in, 5);
	cr_assert_eq(sent(mac, d, 16), 4);
	for (unsigned i = 0; i < 4; i++) {
		cr_expect_eq(d[i], want_dst[i], "frame %u is to .%u", i, d[i]);
		cr_expect_eq(mac[i], want_mac[i], "frame %u (to .%u) went to MAC ..:%02x, not ..:%02x", i, d[i],
			     mac[i], want_mac[i]);
	}
	cr_assert_eq(fx.w->shm->drop[EG_DROP_NEIGH_UNRESOLVED] - unresolved, 1, "10.10.0.9 has no MAC yet");
	dp_offline_drain(&fx);
}

Test(next_hop, a_changed_mac_applies_from_the_next_burst, .init = setup)
{
	struct rte_mbuf *in[2];
	uint8_t mac[16], d[16];

	in[0] = from_uplink(DP_IPV4(203, 0, 113, 20), 1);
	in[1] = from_uplink(DP_IPV4(203, 0, 113, 21), 2);
	dp_worker_process(fx.w, fx.table, wan, in, 2);
	cr_assert_eq(sent(mac, d, 16), 2);
	cr_assert(mac[0] == 0x02 && mac[1] == 0x02);

	set_mac(DP_IPV4(10, 10, 0, 2), 0x22);	/* the gateway 10.10.0.2 moved */
	in[0] = from_uplink(DP_IPV4(203, 0, 113, 20), 3);
	dp_worker_process(fx.w, fx.table, wan, in, 1);
	cr_assert_eq(sent(mac, d, 16), 1);
	cr_assert_eq(mac[0], 0x22, "the next burst uses the new MAC, not ..:%02x", mac[0]);
}

/* A next hop that resolves between bursts is sent to from the next burst on. */
Test(next_hop, a_next_hop_resolved_later_is_used, .init = setup)
{
	struct rte_mbuf *in[1];
	uint8_t mac[16], d[16];

	in[0] = from_uplink(DP_IPV4(10, 10, 0, 9), 1);
	dp_worker_process(fx.w, fx.table, wan, in, 1);
	cr_assert_eq(sent(mac, d, 16), 0);
	dp_offline_drain(&fx);
	set_mac(DP_IPV4(10, 10, 0, 9), 0x09);
	in[0] = from_uplink(DP_IPV4(10, 10, 0, 9), 2);
	dp_worker_process(fx.w, fx.table, wan, in, 1);
	cr_assert_eq(sent(mac, d, 16), 1);
	cr_assert_eq(mac[0], 0x09);
}
