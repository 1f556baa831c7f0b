/* One side of the wire: an AF_PACKET raw socket bound to one interface, promiscuous, that
 * reads the frames arriving on it and writes frames out of it. */
#ifndef PATH_SIM_PACKET_PORT_H
#define PATH_SIM_PACKET_PORT_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Jumbo frames, VLAN tag included. */
#define PACKET_PORT_MAX_FRAME 9216
/* What a receive buffer must hold: room to put a stripped VLAN tag back in front. */
#define PACKET_PORT_BUFFER (PACKET_PORT_MAX_FRAME + 4)

struct packet_port {
	int fd;
	int ifindex;
	char name[IF_NAMESIZE];
};

int packet_port_open(struct packet_port *p, const char *ifname, char *err, size_t errlen);

enum packet_receive {
	PACKET_NONE,		/* nothing more to read now */
	PACKET_FRAME,		/* a frame: *frame, *len bytes, inside buf */
	PACKET_OVERSIZED,	/* a frame too big for PACKET_PORT_MAX_FRAME, discarded */
};
/* buf holds PACKET_PORT_BUFFER bytes. Never returns our own transmissions. */
enum packet_receive packet_port_receive(struct packet_port *p, unsigned char *buf,
					const unsigned char **frame, uint32_t *len);

/* 0 on success, -1 with errno set. Never blocks. */
int packet_port_send(struct packet_port *p, const void *frame, uint32_t len);

/* Frames the kernel dropped for want of socket buffer since the last call. */
uint64_t packet_port_take_kernel_drops(struct packet_port *p);

/* Clears and returns the socket's pending error (what made poll() report POLLERR). */
int packet_port_take_error(struct packet_port *p);

/* Whether the interface still exists: the socket only reports ENETDOWN when it goes. */
bool packet_port_interface_exists(const struct packet_port *p);

void packet_port_close(struct packet_port *p);

#endif
