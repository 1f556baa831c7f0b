/* Link-quality probes in the dataplane (lib/probe_wire.h has the formats): the worker end
 * of the control process's probing, and the STAMP reflector.
 *
 * Sending: the service turns the control process's EG_MSG_PROBE_SEND into an IP packet
 * and hands it to a worker, which writes the transmit timestamp into it as late as it can
 * and sends it through the egress it measures (inside the tunnel for WireGuard and IPsec,
 * so the probe sees what traffic sees).
 * Receiving: an answer addressed to us (STAMP to a session-sender port, an echo reply
 * with a probe identifier) is stamped on arrival and punted to the control process.
 * Reflecting: STAMP test packets to UDP 862 are answered statelessly (RFC 8762 4.3.1),
 * and echo requests that came out of a tunnel are answered back into it; both go back the
 * way they came: the tunnel they arrived in, or the port and MAC they came from. */
#ifndef DP_PROBE_H
#define DP_PROBE_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_mbuf.h>

#include "context.h"
#include "table.h"

/* A packet addressed to one of our addresses, as the worker parsed it. */
struct dp_local_pkt {
	uint8_t *l3;
	uint16_t l2_len;		/* 0 for an inner packet */
	uint16_t l3_len;
	uint16_t l4_off;		/* from l3 */
	uint8_t family, proto;
};

/* True when the packet was a probe, an answer or a reflection and has been taken
 * (punted, sent back, or dropped and counted); false leaves it to the caller. */
bool dp_probe_local(struct dp_worker *w, const struct eg_table_hdr *t, const struct dp_port *in,
		    struct rte_mbuf *m, const struct dp_local_pkt *p, const struct dp_origin *from);

/* An injected probe (m->hash.usr DP_INJECT_PROBE, the egress id in m->port): stamped and
 * sent through its egress. Consumes m. */
void dp_probe_transmit(struct dp_worker *w, const struct eg_table_hdr *t, struct rte_mbuf *m);

/* The service's half: an EG_MSG_PROBE_SEND message as an IP packet for a worker. False
 * when it cannot be built. */
bool dp_probe_inject(struct dp_ctx *ctx, const struct eg_msg *msg);

#endif
