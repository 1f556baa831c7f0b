#include "packet_port.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Room for bursts that arrive while the loop is busy with the other side or the control
 * socket; what the kernel still drops is counted (PACKET_STATISTICS). */
#define PACKET_PORT_RCVBUF (4 << 20)

#define VLAN_TAG_LEN 4
#define MAC_ADDRS_LEN 12

static int fail(char *err, size_t errlen, const char *ifname, const char *what)
{
	snprintf(err, errlen, "%s: %s: %s", ifname, what, strerror(errno));
	return -1;
}

int packet_port_open(struct packet_port *p, const char *ifname, char *err, size_t errlen)
{
	struct sockaddr_ll addr = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL) };
	struct packet_mreq promisc = { .mr_type = PACKET_MR_PROMISC };
	int one = 1, rcvbuf = PACKET_PORT_RCVBUF;

	p->fd = -1;
	if (strlen(ifname) >= sizeof(p->name)) {
		snprintf(err, errlen, "%s: interface name too long", ifname);
		return -1;
	}
	strcpy(p->name, ifname);
	p->ifindex = (int)if_nametoindex(ifname);
	if (p->ifindex == 0)
		return fail(err, errlen, ifname, "no such interface");

	/* Protocol 0 until bind: a socket opened with ETH_P_ALL would queue frames from every
	 * interface in the namespace before it is bound to ours. */
	p->fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->fd < 0)
		return fail(err, errlen, ifname, "AF_PACKET socket");
#ifdef PACKET_IGNORE_OUTGOING
	/* Our own transmissions (and the namespace's) would otherwise come back to us as
	 * PACKET_OUTGOING: receive() filters them too, for kernels without this option. */
	(void)setsockopt(p->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one));
#endif
	/* The kernel strips VLAN tags into metadata on receive: auxdata lets us put them back
	 * and bridge the frame as it was on the wire. */
	if (setsockopt(p->fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof(one)) < 0)
		goto failed_option;
	/* FORCE goes past net.core.rmem_max, given CAP_NET_ADMIN (root in the namespace). */
	if (setsockopt(p->fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
		(void)setsockopt(p->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));

	addr.sll_ifindex = p->ifindex;
	if (bind(p->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		fail(err, errlen, ifname, "bind");
		goto close;
	}
	/* Frames for the hosts on the far side are not addressed to this interface. The
	 * membership goes with the socket, so the interface leaves promiscuous mode when we
	 * exit, however we exit. */
	promisc.mr_ifindex = p->ifindex;
	if (setsockopt(p->fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &promisc, sizeof(promisc)) < 0)
		goto failed_option;
	return 0;

failed_option:
	fail(err, errlen, ifname, "setsockopt");
close:
	close(p->fd);
	p->fd = -1;
	return -1;
}

static const struct tpacket_auxdata *find_auxdata(struct msghdr *msg)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c))
		if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA &&
		    c->cmsg_len >= CMSG_LEN(sizeof(struct tpacket_auxdata)))
			return (const struct tpacket_auxdata *)CMSG_DATA(c);
	return NULL;
}

static bool has_stripped_vlan(const struct tpacket_auxdata *aux)
{
	return aux && ((aux->tp_status & TP_STATUS_VLAN_VALID) || aux->tp_vlan_tci != 0);
}

enum packet_receive packet_port_receive(struct packet_port *p, unsigned char *buf,
					const unsigned char **frame, uint32_t *len)
{
	union {
		char bytes[CMSG_SPACE(sizeof(struct tpacket_auxdata))];
		struct cmsghdr align;
	} control;
	struct sockaddr_ll from;
	struct iovec iov;
	struct msghdr msg;
	const struct tpacket_auxdata *aux;
	ssize_t n;

	for (;;) {
		/* Read VLAN_TAG_LEN bytes in, so a stripped tag can be put back by moving only
		 * the two MAC addresses. */
		iov = (struct iovec){ .iov_base = buf + VLAN_TAG_LEN, .iov_len = PACKET_PORT_MAX_FRAME };
		msg = (struct msghdr){ .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov,
				       .msg_iovlen = 1, .msg_control = control.bytes,
				       .msg_controllen = sizeof(control.bytes) };
		/* MSG_TRUNC: the real length, so that a frame too big is known as such. */
		n = recvmsg(p->fd, &msg, MSG_DONTWAIT | MSG_TRUNC);
		if (n < 0)
			return PACKET_NONE;	/* EAGAIN, or an error that poll() reports */
		if (from.sll_pkttype == PACKET_OUTGOING)
			continue;
		aux = find_auxdata(&msg);
		if (!has_stripped_vlan(aux) || n < MAC_ADDRS_LEN) {
			if (n > PACKET_PORT_MAX_FRAME)
				return PACKET_OVERSIZED;
			*frame = buf + VLAN_TAG_LEN;
			*len = (uint32_t)n;
			return PACKET_FRAME;
		}
		if (n + VLAN_TAG_LEN > PACKET_PORT_MAX_FRAME)
			return PACKET_OVERSIZED;
		uint16_t tpid = (aux->tp_status & TP_STATUS_VLAN_TPID_VALID) ? aux->tp_vlan_tpid : ETH_P_8021Q;
		uint16_t tag[2] = { htons(tpid), htons(aux->tp_vlan_tci) };

		memmove(buf, buf + VLAN_TAG_LEN, MAC_ADDRS_LEN);
		memcpy(buf + MAC_ADDRS_LEN, tag, VLAN_TAG_LEN);
		*frame = buf;
		*len = (uint32_t)n + VLAN_TAG_LEN;
		return PACKET_FRAME;
	}
}

int packet_port_send(struct packet_port *p, const void *frame, uint32_t len)
{
	const unsigned char *bytes = frame;
	struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_ifindex = p->ifindex };
	uint16_t ethertype = ETH_P_802_3;
	ssize_t n;

	/* The skb's protocol comes from sll_protocol: give the frame's own, as the kernel's
	 * stack would, for whatever classifies on it before the wire. */
	if (len >= ETH_HLEN) {
		uint16_t type_or_length = (uint16_t)(bytes[12] << 8 | bytes[13]);

		if (type_or_length >= ETH_P_802_3_MIN)
			ethertype = type_or_length;
	}
	to.sll_protocol = htons(ethertype);
	n = sendto(p->fd, frame, len, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof(to));
	if (n < 0)
		return -1;
	if ((uint32_t)n != len) {
		errno = EMSGSIZE;
		return -1;
	}
	return 0;
}

uint64_t packet_port_take_kernel_drops(struct packet_port *p)
{
	struct tpacket_stats stats;
	socklen_t size = sizeof(stats);

	/* Reading the statistics resets them: the caller accumulates. */
	if (getsockopt(p->fd, SOL_PACKET, PACKET_STATISTICS, &stats, &size) < 0)
		return 0;
	return stats.tp_drops;
}

int packet_port_take_error(struct packet_port *p)
{
	int error = 0;
	socklen_t size = sizeof(error);

	if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &error, &size) < 0)
		return errno;
	return error;
}

bool packet_port_interface_exists(const struct packet_port *p)
{
	char name[IF_NAMESIZE];

	return if_indextoname((unsigned)p->ifindex, name) != NULL;
}

void packet_port_close(struct packet_port *p)
{
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
}
