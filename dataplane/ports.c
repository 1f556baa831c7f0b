#include "ports.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_log.h>

#define LOG(fmt, ...) fprintf(stderr, "egress-dataplane: " fmt "\n", ##__VA_ARGS__)

static bool is_vdev(const char *device)
{
	return strncmp(device, "net_", 4) == 0 || strncmp(device, "eth_", 4) == 0;
}

/* The ethdev name is the device string up to its first comma. */
static void device_name(const char *device, char *name, size_t len)
{
	size_t n = strcspn(device, ",");

	if (n >= len)
		n = len - 1;
	memcpy(name, device, n);
	name[n] = '\0';
}

int dp_ports_eal_args(const struct eg_dataplane_cfg *dp, char **argv, int argc, int max)
{
	for (unsigned i = 0; i < dp->n_ports; i++) {
		const char *dev = dp->ports[i].device;
		char buf[EG_DEVICE_LEN + 32];

		if (argc + 2 > max)
			return -E2BIG;
		/* net_af_packet spreads received frames over its queue pairs with
		 * PACKET_FANOUT; every worker needs one pair, and every pair must be polled
		 * or the frames fanned out to it are lost. */
		if (strncmp(dev, "net_af_packet", 13) == 0 && !strstr(dev, "qpairs="))
			snprintf(buf, sizeof(buf), "%s,qpairs=%u", dev, dp->workers);
		else
			snprintf(buf, sizeof(buf), "%s", dev);
		argv[argc++] = strdup(is_vdev(dev) ? "--vdev" : "-a");
		argv[argc++] = strdup(buf);
	}
	return argc;
}

static int configure_port(struct dp_ctx *ctx, struct dp_port *p)
{
	const struct eg_port_cfg *c = p->cfg;
	struct rte_eth_conf conf;
	struct rte_eth_dev_info info;
	uint16_t nb_rxd = DP_RX_DESC, nb_txd = DP_TX_DESC;
	uint16_t rxq, txq = (uint16_t)ctx->n_workers;
	int rc, socket = rte_eth_dev_socket_id(p->port_id);

	if (socket < 0)
		socket = (int)rte_socket_id();
	rc = rte_eth_dev_info_get(p->port_id, &info);
	if (rc)
		return rc;
	if (info.max_tx_queues < txq) {
		LOG("port %s: device offers %u tx queues, every worker needs one (%u)",
		    c->name, info.max_tx_queues, txq);
		return -EINVAL;
	}
	rxq = info.max_rx_queues < ctx->n_workers ? info.max_rx_queues : (uint16_t)ctx->n_workers;
	memset(&conf, 0, sizeof(conf));
	if (rxq > 1 && info.flow_type_rss_offloads) {
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_hf = (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP) &
						   info.flow_type_rss_offloads;
	}
	rc = rte_eth_dev_configure(p->port_id, rxq, txq, &conf);
	if (rc) {
		LOG("port %s: configure failed: %s", c->name, rte_strerror(-rc));
		return rc;
	}
	rte_eth_dev_adjust_nb_rx_tx_desc(p->port_id, &nb_rxd, &nb_txd);
	for (uint16_t q = 0; q < rxq; q++) {
		rc = rte_eth_rx_queue_setup(p->port_id, q, nb_rxd, (unsigned)socket, NULL, ctx->pool);
		if (rc) {
			LOG("port %s: rx queue %u: %s", c->name, q, rte_strerror(-rc));
			return rc;
		}
	}
	for (uint16_t q = 0; q < txq; q++) {
		rc = rte_eth_tx_queue_setup(p->port_id, q, nb_txd, (unsigned)socket, NULL);
		if (rc) {
			LOG("port %s: tx queue %u: %s", c->name, q, rte_strerror(-rc));
			return rc;
		}
	}
	if (c->mtu) {
		rc = rte_eth_dev_set_mtu(p->port_id, c->mtu);
		if (rc)
			LOG("port %s: cannot set mtu %u (%s), keeping the device's", c->name, c->mtu,
			    rte_strerror(-rc));
	}
	if (c->has_mac) {
		struct rte_ether_addr mac;

		memcpy(mac.addr_bytes, c->mac, 6);
		rc = rte_eth_dev_default_mac_addr_set(p->port_id, &mac);
		if (rc)
			LOG("port %s: cannot set mac (%s)", c->name, rte_strerror(-rc));
	}
	/* Neighbour discovery needs multicast; not every virtual device implements it. */
	rte_eth_allmulticast_enable(p->port_id);
	rc = rte_eth_dev_start(p->port_id);
	if (rc) {
		LOG("port %s: start failed: %s", c->name, rte_strerror(-rc));
		return rc;
	}
	rte_eth_macaddr_get(p->port_id, &p->mac);
	if (rte_eth_dev_get_mtu(p->port_id, &p->mtu) || p->mtu == 0)
		p->mtu = RTE_ETHER_MTU;
	p->rx_queues = rxq;
	return 0;
}

int dp_ports_init(struct dp_ctx *ctx)
{
	const struct eg_dataplane_cfg *dp = &ctx->cfg.dataplane;

	ctx->n_ports = dp->n_ports;
	for (unsigned i = 0; i < dp->n_ports; i++) {
		struct dp_port *p = &ctx->ports[i];
		const struct eg_port_cfg *c = &dp->ports[i];
		char name[EG_DEVICE_LEN];
		int rc;

		memset(p, 0, sizeof(*p));
		p->cfg = c;
		p->index = (uint16_t)i;
		device_name(c->device, name, sizeof(name));
		if (rte_eth_dev_get_port_by_name(name, &p->port_id) != 0) {
			LOG("port %s: no device %s (see dataplane.ports[%u].device)", c->name, name, i);
			return -ENODEV;
		}
		if (c->has_ipv4) {
			p->has_ipv4 = true;
			memcpy(&p->ipv4, c->ipv4.addr, 4);
			p->net4 = c->ipv4;
			eg_prefix_mask(&p->net4);
			memcpy(&p->net4_addr, p->net4.addr, 4);
			p->net4_mask = rte_cpu_to_be_32(p->net4.len ? UINT32_MAX << (32 - p->net4.len) : 0);
		}
		if (c->has_ipv6) {
			p->has_ipv6 = true;
			memcpy(p->ipv6, c->ipv6.addr, 16);
			p->net6 = c->ipv6;
			eg_prefix_mask(&p->net6);
		}
		rc = configure_port(ctx, p);
		if (rc)
			return rc;
		LOG("port %s: %s, %u rx queue(s), mtu %u, mac " RTE_ETHER_ADDR_PRT_FMT, c->name,
		    name, p->rx_queues, p->mtu, RTE_ETHER_ADDR_BYTES(&p->mac));
	}
	return 0;
}

void dp_ports_update_link(struct dp_ctx *ctx)
{
	for (unsigned i = 0; i < ctx->n_ports; i++) {
		struct eg_shm_port *sp = &ctx->shm.hdr->ports[i];
		struct rte_eth_link link;

		if (rte_eth_link_get_nowait(ctx->ports[i].port_id, &link) != 0)
			continue;
		__atomic_store_n(&sp->link_up, (uint8_t)link.link_status, __ATOMIC_RELAXED);
		sp->link_speed_mbps = link.link_speed;
	}
}

void dp_ports_close(struct dp_ctx *ctx)
{
	for (unsigned i = 0; i < ctx->n_ports; i++) {
		rte_eth_dev_stop(ctx->ports[i].port_id);
		rte_eth_dev_close(ctx->ports[i].port_id);
	}
}
