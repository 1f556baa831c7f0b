/* A real dataplane context for tests and fuzz harnesses, without lcores or a control
 * process: EAL on net_null devices, the config, the mbuf pool, shared memory, the config's
 * workers (one unless it says more) made as dataplane/main.c makes them, ports, routes and static neighbours; SA slots filled
 * the way control/ipsec.c fills them, WireGuard peers installed (peer i in slot i, no
 * keypairs) and a table published from the config. Frames go
 * through dp_worker_process on the test's own thread. Every failure aborts. */
#ifndef DP_OFFLINE_H
#define DP_OFFLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "context.h"
#include "sa.h"
#include "table.h"

/* An IPv4 address in host order. DPDK 22.11's RTE_IPV4 shifts an int into its sign bit
 * for addresses from 128.0.0.0 up, which is undefined (UBSan says so). */
#define DP_IPV4(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))

struct dp_offline {
	struct dp_ctx ctx;
	struct dp_worker *w;			/* worker 0 of ctx.workers[ctx.n_workers] */
	const struct eg_table_hdr *table;	/* after dp_offline_publish */
};

/* config_fmt is the config JSON with one %s for the instance name (unique per process).
 * The devices must be net_null0, net_null1, ... in port order. Everything is released at
 * exit; the runtime directory and the segment's name are gone at once, so a crash leaves
 * nothing behind. */
void dp_offline_start(struct dp_offline *f, const char *name, const char *config_fmt, uint16_t data_room,
		      unsigned n_mbufs);

/* Every SA of the config installed and ACTIVE, the i-th in slot i; then a table with the
 * config's egresses (an ipsec egress names its sa_out's slot), policies and inbound SAs. */
void dp_offline_publish(struct dp_offline *f);

/* The table dp_offline_publish publishes, with each egress in the state egress_state
 * gives it (enum eg_path_state per config egress; NULL: all up), built into b (which the
 * caller frees): for a caller that publishes tables of its own. */
struct eg_blob;
void dp_offline_build_table(struct dp_offline *f, const uint8_t *egress_state, struct eg_blob *b);

/* The slot of the config's SA spi in direction dir (EG_SA_DIR_*). */
struct eg_sa_slot *dp_offline_sa(struct dp_offline *f, uint32_t spi, uint8_t dir, uint32_t *slot);

/* A keypair installed in position k of WireGuard peer slot peer (the config's peer
 * index), as control/wg.c installs one: an initiator's is confirmed and sent with. */
struct eg_wg_keypair *dp_offline_wg_keypair(struct dp_offline *f, uint32_t peer, unsigned k, const uint8_t send[32],
					     const uint8_t recv[32], uint32_t local_index, uint32_t remote_index,
					     bool initiator, uint64_t serial);

/* An IPv4 header (TTL 64, checksum set) and a UDP header (no checksum) in front of len
 * bytes of payload, written at buf (room for 28 + len). Addresses in host order; returns
 * the packet's length. */
size_t dp_offline_ipv4_udp(uint8_t *buf, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport,
			   const uint8_t *payload, uint16_t len, bool df, uint16_t id);
/* That packet in an Ethernet frame from src_mac to port's MAC, in a new mbuf. */
struct rte_mbuf *dp_offline_udp_frame(struct dp_offline *f, uint16_t port, const uint8_t src_mac[6], uint32_t src,
				      uint32_t dst, uint16_t sport, uint16_t dport, const uint8_t *payload,
				      uint16_t len, bool df, uint16_t id);

/* Takes what the worker queued for transmission on port (before it is sent): at most max
 * frames, or the test dies. */
unsigned dp_offline_take_tx(struct dp_offline *f, uint16_t port, struct rte_mbuf **out, unsigned max);

/* The same for any of the config's workers (dataplane.workers of them, default 1), for a
 * caller that runs several on threads of its own, one thread per worker. */
unsigned dp_offline_worker_take_tx(struct dp_worker *w, uint16_t port, struct rte_mbuf **out, unsigned max);

/* Port index of a port name in the config. */
uint16_t dp_offline_port(const struct dp_offline *f, const char *name);

/* The service lcore's source NAT duties once (clock, pools, expiry, reclaim), as if now
 * were the time (rte_rdtsc()-based). */
void dp_offline_nat_tick(struct dp_offline *f, uint64_t now);

/* Frames the worker handed to the service, and resolve requests, back to the pool. */
void dp_offline_drain(struct dp_offline *f);
void dp_offline_worker_drain(struct dp_worker *w);

#endif
