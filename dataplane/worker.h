/* Worker lcores: run-to-completion loops over bursts. */
#ifndef DP_WORKER_H
#define DP_WORKER_H

#include <stdint.h>

#include <rte_mbuf.h>

#include "context.h"
#include "table.h"

/* A worker's rings, reassembly table and identifiers, before its lcore starts; ctx's pool,
 * shared memory and tsc_hz must be ready. 0 or -ENOMEM. */
int dp_worker_init(struct dp_ctx *ctx, struct dp_worker *w, unsigned id);

/* The lcore entry point; arg is the struct dp_worker. */
int dp_worker_main(void *arg);

/* Everything a worker does with a burst received on port index in_port: parse, classify,
 * select, rewrite, and queue on this worker's tx buffers (sent by dp_worker_flush).
 * t is the table acquired for this burst (NULL when none is published). Dropped packets
 * are counted by reason and freed; punted ones go to the service ring. Returns how many
 * were queued for transmission. egress-bench calls this too. */
uint16_t dp_worker_process(struct dp_worker *w, const struct eg_table_hdr *t, uint16_t in_port,
			   struct rte_mbuf **pkts, uint16_t n);

/* An inner packet out of a tunnel (m starts at its IP header): checked like a received one
 * and routed toward the site side as if it had arrived on in_port; from names the tunnel,
 * for answers sent back through it. Consumes m. */
void dp_worker_route_inner(struct dp_worker *w, const struct eg_table_hdr *t, uint16_t in_port,
			   struct rte_mbuf *m, uint8_t family, const struct dp_origin *from);

/* An IP packet we originate (m starts at its IP header: a probe, a reflection) sent
 * through egress e as if it had arrived on in_port: encrypted into e's tunnel or out of
 * e's port. Dropped and counted when it cannot go. Consumes m; tunnel packets are staged
 * until dp_worker_run_staged. */
void dp_worker_send_via(struct dp_worker *w, const struct eg_table_egress *e, uint16_t in_port,
			struct rte_mbuf *m, uint8_t family);

/* A message for the control process, written by a worker into an mbuf of its own: the
 * header zeroed, with room for len bytes of data. NULL (n unset) when no mbuf is free. */
struct eg_msg *dp_worker_msg_new(struct dp_worker *w, uint16_t len, struct rte_mbuf **n);
/* Hands it to the service, which passes it on over the punt ring. False when the ring is
 * full (n is freed). */
bool dp_worker_msg_punt(struct dp_worker *w, struct rte_mbuf *n, uint16_t port);

/* Encrypts and queues what is staged for ESP and WireGuard output. */
void dp_worker_run_staged(struct dp_worker *w);

/* Asks the service to resolve a next hop, at most every 100 ms per next hop per worker. */
void dp_worker_ask_resolve(struct dp_worker *w, uint16_t port, uint8_t family, const uint8_t *ip);

/* Transmits what dp_worker_process queued. */
void dp_worker_flush(struct dp_worker *w);

#endif
