/* A pcapng writer (draft-ietf-opsawg-pcapng): one section, interfaces, enhanced packet
 * blocks with nanosecond timestamps and a direction flag. Written in host byte order,
 * which the section header's magic announces to readers. */
#ifndef EG_PCAPNG_H
#define EG_PCAPNG_H

#include <stdint.h>
#include <stdio.h>

enum {
	EG_PCAPNG_LINKTYPE_ETHERNET = 1,
	EG_PCAPNG_LINKTYPE_RAW = 101,		/* IPv4 or IPv6, no link header */
};

enum eg_pcapng_dir { EG_PCAPNG_DIR_UNKNOWN = 0, EG_PCAPNG_DIR_IN = 1, EG_PCAPNG_DIR_OUT = 2 };

/* The section header; application names the writer (shb_userappl). 0 or -errno. */
int eg_pcapng_section(FILE *f, const char *application);
/* An interface description; interfaces are numbered from 0 in the order written. name and
 * description may be NULL. 0 or -errno. */
int eg_pcapng_interface(FILE *f, uint16_t linktype, uint32_t snaplen, const char *name,
			const char *description);
/* One packet: cap_len bytes of a packet that was len long, at time_ns since the epoch. */
int eg_pcapng_packet(FILE *f, uint32_t interface, uint64_t time_ns, const void *data, uint32_t cap_len,
		     uint32_t len, enum eg_pcapng_dir dir);

#endif
