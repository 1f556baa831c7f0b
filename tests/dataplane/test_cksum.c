/* The IPv4 header checksums the workers write without summing the header again
 * (dataplane/cksum.h) must be the very checksum a full computation gives, for every
 * header: a receiver would take 0xffff for 0, but a frame that differs from the one a
 * router computing it in full sends is not the frame egress-bench --check expects. The
 * identification takes all 65536 values, so every header sum, 0xffff included, occurs. */
#include <criterion/criterion.h>

#include <string.h>

#include <rte_byteorder.h>
#include <rte_ip.h>

#include "cksum.h"

static struct rte_ipv4_hdr header(uint16_t id, uint8_t ttl)
{
	struct rte_ipv4_hdr ip = {
		.version_ihl = 0x45,
		.type_of_service = 0x8a,
		.total_length = rte_cpu_to_be_16(1406),
		.packet_id = rte_cpu_to_be_16(id),
		.fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG),
		.time_to_live = ttl,
		.next_proto_id = IPPROTO_UDP,
		.src_addr = RTE_BE32(0x0a0a0002),
		.dst_addr = RTE_BE32(0xc6336401),
	};

	/* RFC 791's definition, not rte_ipv4_cksum, which some DPDK releases made 0xffff */
	ip.hdr_checksum = (uint16_t)~rte_raw_cksum(&ip, sizeof(ip));
	return ip;
}

Test(cksum, ttl_decrement_gives_the_full_checksum)
{
	unsigned zero_sums = 0;

	for (uint32_t id = 0; id <= UINT16_MAX; id++) {
		struct rte_ipv4_hdr ip = header((uint16_t)id, 64), want = header((uint16_t)id, 63);

		dp_ipv4_ttl_decrement(&ip);
		cr_assert_eq(ip.time_to_live, 63);
		cr_assert_eq(ip.hdr_checksum, want.hdr_checksum, "identification %u: checksum %#06x, in full %#06x",
			     id, ip.hdr_checksum, want.hdr_checksum);
		zero_sums += want.hdr_checksum == 0;
	}
	/* The case RFC 1141's update gets wrong was among them. */
	cr_assert_gt(zero_sums, 0);
}

Test(cksum, written_header_gives_the_full_checksum)
{
	for (uint32_t id = 0; id <= UINT16_MAX; id++) {
		struct rte_ipv4_hdr want = header((uint16_t)id, 64), ip;

		dp_ipv4_write20(&ip, 0x45u << 24 | 0x8au << 16 | 1406, id << 16 | RTE_IPV4_HDR_DF_FLAG,
				64u << 24 | IPPROTO_UDP << 16, want.src_addr, want.dst_addr);
		cr_assert_eq(memcmp(&ip, &want, sizeof(ip)), 0, "identification %u: checksum %#06x, in full %#06x", id,
			     ip.hdr_checksum, want.hdr_checksum);
	}
}
