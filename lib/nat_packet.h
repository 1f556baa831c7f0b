/* What source NAT reads from and changes in an IPv4 packet: the flow's endpoints (TCP and
 * UDP ports, the ICMP echo identifier as the port, RFC 5508 section 3.1), or for an ICMP
 * error the flow of the packet it quotes (RFC 5508 section 4), and the rewrite with its
 * checksum updates (RFC 1624 incremental, the ICMP error's own checksum recomputed whole
 * because the quoted packet changed under it). No DPDK: the worker and the tests share it. */
#ifndef EG_NAT_PACKET_H
#define EG_NAT_PACKET_H

#include <stdbool.h>
#include <stdint.h>

enum eg_nat_parse {
	EG_NAT_PARSE_OK = 0,
	EG_NAT_PARSE_UNSUPPORTED,	/* a protocol or ICMP type NAT does not carry */
	EG_NAT_PARSE_FRAGMENT,		/* ports are in the first fragment only */
	EG_NAT_PARSE_MALFORMED,		/* too short for what it says it is */
};

/* The flow a packet belongs to, seen from the NAT: local is the inside (outbound) or pool
 * (inbound) side. */
struct eg_nat_pkt {
	uint8_t proto;			/* enum eg_nat_proto */
	bool error;			/* an ICMP error quoting a packet of the flow */
	uint8_t tcp_flags;		/* EG_NAT_SYN | FIN | RST; 0 for errors and others */
	uint32_t local_addr, remote_addr;	/* network order */
	uint16_t local_port, remote_port;	/* host order */
	uint16_t l4_off;		/* transport (or ICMP) header, from the IP header */
	uint16_t inner_off;		/* error: the quoted IP header */
	uint16_t inner_l4_off;		/* error: the quoted transport header */
	uint16_t len;			/* the IP packet's total length */
};

/* Reads the flow of an IPv4 packet of len bytes (at least its total length) going out
 * (from the site) or coming in (to a pool address). */
enum eg_nat_parse eg_nat_packet_parse(const uint8_t *ip, uint32_t len, bool outbound, struct eg_nat_pkt *k);

/* Puts addr:port (network-order address, host-order port) where the local endpoint was:
 * the source going out, the destination coming in; for an ICMP error, the outer address
 * and the quoted packet's endpoint. k is what eg_nat_packet_parse returned for ip. */
void eg_nat_packet_rewrite(uint8_t *ip, const struct eg_nat_pkt *k, bool outbound, uint32_t addr, uint16_t port);

#endif
