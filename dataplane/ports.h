/* Ethernet ports: devices from the config, queues for the workers, link state. */
#ifndef DP_PORTS_H
#define DP_PORTS_H

#include "context.h"

/* Appends the EAL arguments that create or allow the configured devices (--vdev for
 * virtual devices, -a for PCI addresses) to argv. Returns the new argc or -E2BIG. */
int dp_ports_eal_args(const struct eg_dataplane_cfg *dp, char **argv, int argc, int max);
/* Finds, configures and starts every port: one rx queue per worker where the device offers
 * that many (RSS over them), one tx queue per worker. 0 or -errno with a message logged. */
int dp_ports_init(struct dp_ctx *ctx);
/* Copies link state into the shared-memory header. */
void dp_ports_update_link(struct dp_ctx *ctx);
void dp_ports_close(struct dp_ctx *ctx);

#endif
