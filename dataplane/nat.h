/* Source NAT on direct egresses with a pool: the workers' translation of packets going out
 * and coming back (state in lib/nat_table.h, rewriting in lib/nat_packet.h), and the
 * service lcore's part: the clock, following pool changes in the published table, ending
 * idle sessions and giving their records back after a grace period, block logging and
 * proxy ARP for pool addresses. */
#ifndef DP_NAT_H
#define DP_NAT_H

#include <stdbool.h>
#include <stdint.h>

#include "context.h"
#include "table.h"

/* A packet from the site leaving through e, which has a pool: translated in place, or why
 * not (EG_DROP_MAX: translated, or left as it is because it is not IPv4 or comes from one
 * of our own addresses). l3 is the IPv4 header, l3_len its total length. */
enum eg_drop_reason dp_nat_out(struct dp_worker *w, uint8_t *l3, uint16_t l3_len, const struct eg_table_egress *e);

/* An IPv4 packet that arrived on an uplink to be forwarded: when a session owns it, it is
 * translated back and dst (4 bytes) becomes the inside address (EG_DROP_MAX, *ours true);
 * to a pool address but admitted by no session, a reason to drop it (*ours true);
 * otherwise *ours is false and the packet goes on untouched. */
enum eg_drop_reason dp_nat_in(struct dp_worker *w, uint8_t *l3, uint16_t l3_len, uint8_t *dst, bool *ours);

/* Whether addr (network order) is an active pool address of an egress on port: the service
 * answers ARP for it. */
bool dp_nat_answers_arp(const struct dp_ctx *ctx, uint16_t port, uint32_t addr);

/* Service lcore, once per loop; now is rte_rdtsc(). Returns work done (0 when idle). */
unsigned dp_nat_service(struct dp_ctx *ctx, uint64_t now);
void dp_nat_service_free(void);

#endif
