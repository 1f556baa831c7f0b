/* What link-quality probes look like on the wire, shared by the control process (which
 * schedules them and keeps the metrics) and the dataplane (which stamps, sends, receives
 * and reflects them).
 *
 * STAMP (RFC 8762), unauthenticated mode: the session-sender's test packet and the
 * reflector's reply are 44-byte UDP payloads; the reflector listens on UDP 862. Each
 * egress's session-sender uses UDP source port EG_PROBE_PORT_BASE + the egress's counter
 * id, and ICMP echo probes the identifier EG_PROBE_ICMP_ID_BASE + that id, so an answer
 * names the egress it measures without any lookup. Timestamps are NTP format (RFC 5905:
 * seconds since 1900 in the high 32 bits, binary fraction in the low), from
 * CLOCK_REALTIME, taken by the worker that sends or receives the packet. */
#ifndef EG_PROBE_WIRE_H
#define EG_PROBE_WIRE_H

#include <stdint.h>
#include <time.h>

#include "config.h"

enum {
	EG_STAMP_PORT = EG_STAMP_DEFAULT_PORT,
	EG_STAMP_LEN = 44,			/* both packet kinds, unauthenticated */
	EG_PROBE_PORT_BASE = 49152,		/* + egress id < EG_MAX_EGRESSES */
	EG_PROBE_ICMP_ID_BASE = 0xe000,		/* + egress id */
	EG_PROBE_ICMP_LEN = 16,			/* echo payload: NTP timestamp, sequence, zeros */
};

_Static_assert(EG_PROBE_PORT_BASE + EG_MAX_EGRESSES <= 65536, "probe ports fit");
_Static_assert(EG_PROBE_ICMP_ID_BASE + EG_MAX_EGRESSES <= 65536, "probe identifiers fit");

/* Offsets in the STAMP payloads (RFC 8762 4.2.1 and 4.3.1). */
enum {
	EG_STAMP_SEQ = 0,
	EG_STAMP_TIMESTAMP = 4,			/* sender: T1; reflector: T3 */
	EG_STAMP_ERROR_ESTIMATE = 12,
	EG_STAMP_RX_TIMESTAMP = 16,		/* reflector: T2 */
	EG_STAMP_SENDER_SEQ = 24,
	EG_STAMP_SENDER_TIMESTAMP = 28,		/* T1, as received */
	EG_STAMP_SENDER_ERROR_ESTIMATE = 36,
	EG_STAMP_SENDER_TTL = 40,
};

/* Error estimate (RFC 4656 4.1.2): S=0 (no external synchronisation), Z=0 (NTP format),
 * scale 22, multiplier 1: 2^22 * 2^-32 s, about a millisecond. */
#define EG_STAMP_ERROR_ESTIMATE_VALUE 0x1601u

#define EG_NTP_UNIX_OFFSET 2208988800ull	/* seconds from 1900 to 1970 */

static inline uint64_t eg_ntp_from_ns(uint64_t unix_ns)
{
	uint64_t s = unix_ns / 1000000000ull, ns = unix_ns % 1000000000ull;

	return (s + EG_NTP_UNIX_OFFSET) << 32 | ((ns << 32) / 1000000000ull);
}

static inline uint64_t eg_ntp_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return eg_ntp_from_ns((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
}

/* The length of an NTP-format interval b - a, in nanoseconds (0 when negative). */
static inline uint64_t eg_ntp_diff_ns(uint64_t a, uint64_t b)
{
	if (b <= a)
		return 0;
	uint64_t d = b - a;

	return (d >> 32) * 1000000000ull + (((d & 0xffffffffull) * 1000000000ull) >> 32);
}

static inline void eg_put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static inline uint64_t eg_get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static inline void eg_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline uint32_t eg_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

#endif
