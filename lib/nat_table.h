/* Source NAT state (NAPT for IPv4 on direct egresses, RFC 4787 / 5382 / 5508) in a region
 * of the shared segment: pool addresses, inside hosts, mappings and sessions, with chained
 * hash indexes over them.
 *
 * - A mapping is one inside endpoint (protocol, address, port) behind one outside endpoint
 *   (pool address, port), whatever it talks to: endpoint-independent mapping (RFC 4787
 *   REQ-1). Its pool address is its host's: every mapping of an inside host uses the one
 *   address the host was given ("paired" pooling, REQ-2), and its port comes from port
 *   blocks the host holds, so that one log line per block names who used which ports.
 * - A session is one mapping's conversation with one remote address. Inbound packets are
 *   admitted only by a session, which makes filtering address-dependent (REQ-8's
 *   recommendation); the remote port is not part of the key. Sessions carry the idle timer
 *   (per protocol, and for TCP per state, RFC 5382 REQ-5) and the TCP flags seen.
 *
 * Concurrency. Every worker looks sessions up without locks: chains are walked with
 * acquire loads, and a record is written whole before a release store links it. Creating
 * and ending records takes the writer lock (a spinlock here, never held by the control
 * process, which only reads). A record unlinked from its chains is not reused until every
 * worker has finished the loop it was in (the caller waits for that grace period, see
 * eg_nat_limbo), so a walker standing on it still finds valid `next` links.
 *
 * All fields are in host order except addresses, which are kept as on the wire. */
#ifndef EG_NAT_TABLE_H
#define EG_NAT_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EG_NAT_NONE UINT32_MAX

enum {
	EG_NAT_MAX_ADDRS = 256,		/* pool addresses over all egresses */
	EG_NAT_PORT_FIRST = 1024,	/* ports below are never handed out (RFC 4787 REQ-3's
					 * well-known range stays untouched) */
	EG_NAT_PORT_WORDS = 65536 / 64,
	EG_NAT_BLOCK_WORDS = 16,	/* (65536 - 1024) / 64 = 1008 blocks at the smallest size */
	EG_NAT_MAX_HOST_BLOCKS = 32,
	EG_NAT_EVENTS = 1024,		/* block log ring */
};

enum eg_nat_proto { EG_NAT_TCP = 0, EG_NAT_UDP = 1, EG_NAT_ICMP = 2, EG_NAT_PROTOS = 3 };

enum eg_nat_timer {
	EG_NAT_T_TCP_ESTABLISHED = 0,
	EG_NAT_T_TCP_TRANSITORY,
	EG_NAT_T_UDP,
	EG_NAT_T_ICMP,
	EG_NAT_T_MAX,
};

/* TCP flags a session has seen, per direction. */
enum { EG_NAT_SYN = 1, EG_NAT_FIN = 2, EG_NAT_RST = 4 };

enum eg_nat_addr_state { EG_NAT_ADDR_FREE = 0, EG_NAT_ADDR_ACTIVE = 1, EG_NAT_ADDR_RETIRED = 2 };

/* Why a flow got no mapping. */
enum eg_nat_result {
	EG_NAT_OK = 0,
	EG_NAT_HOST_PORTS,		/* the host holds its most blocks and they are full */
	EG_NAT_POOL,			/* no pool address (with a free block) for the host */
	EG_NAT_FULL,			/* no free session, mapping or host record */
};

struct eg_nat_params {
	uint32_t sessions;		/* session and mapping records */
	uint32_t hosts;			/* inside host records */
	uint32_t ports_per_block;	/* multiple of 64 */
	uint32_t blocks_per_host;	/* 1..EG_NAT_MAX_HOST_BLOCKS */
	uint32_t timeout_s[EG_NAT_T_MAX];
};

struct eg_nat_addr {
	uint32_t addr;			/* network order */
	uint16_t egress;		/* the egress id whose pool it is in */
	uint16_t port;			/* that egress's port (proxy ARP) */
	uint8_t state;			/* enum eg_nat_addr_state; atomic */
	uint8_t pad;
	uint16_t blocks_used;
	uint32_t hosts;
	uint64_t block_used[EG_NAT_BLOCK_WORDS];
	uint64_t port_used[EG_NAT_PROTOS][EG_NAT_PORT_WORDS];
};

struct eg_nat_host {
	uint32_t next;			/* host chain; free list */
	uint32_t in_addr;
	uint16_t egress;
	uint16_t addr;			/* index of its pool address */
	uint8_t linked;
	uint8_t n_blocks;
	uint16_t pad;
	uint32_t mappings;
	uint16_t blocks[EG_NAT_MAX_HOST_BLOCKS];
};

struct eg_nat_mapping {
	uint32_t next;			/* mapping chain; free list */
	uint32_t host;
	uint32_t in_addr;
	uint16_t in_port, out_port;
	uint16_t egress;
	uint16_t addr;
	uint8_t proto;			/* enum eg_nat_proto */
	uint8_t linked;
	uint16_t pad;
	uint32_t sessions;
};

struct eg_nat_session {
	uint32_t next_out, next_in;	/* chains (next_out also the free list) */
	uint32_t map;
	uint32_t in_addr, out_addr, rem_addr;
	uint16_t in_port, out_port;
	uint16_t rem_port;		/* the remote port of the first packet (for listings) */
	uint16_t egress;
	uint8_t proto;			/* enum eg_nat_proto */
	uint8_t linked;
	uint8_t flags_out, flags_in;	/* EG_NAT_SYN | FIN | RST seen; atomic */
	uint8_t worker;			/* who created it */
	uint8_t pad[3];
	uint32_t created_s;
	uint32_t last_s;		/* last packet either way; atomic */
};

/* A block handed to a host or taken back, for the operator's log (RFC 6888 REQ-12: a
 * line per block, not per session). */
struct eg_nat_event {
	uint8_t released;
	uint8_t pad;
	uint16_t egress;
	uint32_t in_addr, out_addr;
	uint16_t port_lo, port_hi;
	uint32_t at_s;
};

struct eg_nat_hdr {
	struct eg_nat_params p;
	uint32_t blocks_per_addr;
	uint32_t bucket_mask, host_bucket_mask;
	uint64_t seed;			/* keys the index hash: chains an outsider cannot aim at */
	uint64_t addrs_off, hosts_off, maps_off, sess_off;	/* from the region's start */
	uint64_t host_bkt_off, map_bkt_off, out_bkt_off, in_bkt_off, events_off;

	/* Read by workers on every packet, written seldom: a line of their own. */
	uint32_t now_s __attribute__((aligned(64)));	/* the clock sessions are stamped by;
							 * written by one thread each second, atomic */
	uint32_t n_addrs;		/* address records ever used (scan bound); atomic */
	/* Writers' state: this line moves between cores whenever flows start or end. */
	uint32_t lock __attribute__((aligned(64)));	/* writers only */
	uint32_t sess_free, sess_high, map_free, map_high, host_free, host_high;
	uint64_t sessions, mappings, hosts, blocks;	/* live counts */
	uint64_t created, expired, ended;		/* sessions made; timed out; removed
							 * with their pool address */
	uint64_t events_head;		/* events written (ring index = head % EG_NAT_EVENTS) */
};

/* Bytes the region needs for these parameters. */
size_t eg_nat_region_size(const struct eg_nat_params *p);
/* Lays the region out in zeroed memory of eg_nat_region_size bytes. */
void eg_nat_region_init(struct eg_nat_hdr *n, const struct eg_nat_params *p, uint64_t seed);

#define EG_NAT_AT(n, off, type) ((type *)((uint8_t *)(n) + (off)))

static inline struct eg_nat_addr *eg_nat_addrs(const struct eg_nat_hdr *n)
{
	return EG_NAT_AT(n, n->addrs_off, struct eg_nat_addr);
}
static inline struct eg_nat_host *eg_nat_hosts(const struct eg_nat_hdr *n)
{
	return EG_NAT_AT(n, n->hosts_off, struct eg_nat_host);
}
static inline struct eg_nat_mapping *eg_nat_mappings(const struct eg_nat_hdr *n)
{
	return EG_NAT_AT(n, n->maps_off, struct eg_nat_mapping);
}
static inline struct eg_nat_session *eg_nat_sessions(const struct eg_nat_hdr *n)
{
	return EG_NAT_AT(n, n->sess_off, struct eg_nat_session);
}

/* The protocol index of an IP protocol number, or -1. */
static inline int eg_nat_proto_of(uint8_t ipproto)
{
	return ipproto == 6 ? EG_NAT_TCP : ipproto == 17 ? EG_NAT_UDP : ipproto == 1 ? EG_NAT_ICMP : -1;
}

static inline uint64_t eg_nat_mix(uint64_t h, uint64_t v)
{
	h ^= v * 0x9e3779b97f4a7c15ull;
	h = (h << 31 | h >> 33) * 0xbf58476d1ce4e5b9ull;
	return h ^ (h >> 29);
}

static inline uint32_t eg_nat_hash_out(const struct eg_nat_hdr *n, uint8_t proto, uint32_t in_addr,
				       uint16_t in_port, uint32_t rem_addr, uint16_t egress)
{
	uint64_t h = eg_nat_mix(n->seed, (uint64_t)in_addr << 32 | rem_addr);

	return (uint32_t)eg_nat_mix(h, (uint64_t)proto << 48 | (uint64_t)egress << 16 | in_port);
}

static inline uint32_t eg_nat_hash_in(const struct eg_nat_hdr *n, uint8_t proto, uint32_t out_addr,
				      uint16_t out_port, uint32_t rem_addr)
{
	uint64_t h = eg_nat_mix(~n->seed, (uint64_t)out_addr << 32 | rem_addr);

	return (uint32_t)eg_nat_mix(h, (uint64_t)proto << 48 | out_port);
}

/* The session of an outbound packet from in_addr:in_port to rem_addr through egress, or
 * EG_NAT_NONE. Lock-free. */
static inline uint32_t eg_nat_find_out(const struct eg_nat_hdr *n, uint8_t proto, uint32_t in_addr,
				       uint16_t in_port, uint32_t rem_addr, uint16_t egress)
{
	const uint32_t *bkt = EG_NAT_AT(n, n->out_bkt_off, uint32_t);
	const struct eg_nat_session *s = eg_nat_sessions(n);
	uint32_t i = __atomic_load_n(&bkt[eg_nat_hash_out(n, proto, in_addr, in_port, rem_addr, egress) &
					  n->bucket_mask], __ATOMIC_ACQUIRE);

	/* A chain cannot be longer than the records; the bound guards against a cycle a
	 * reader might see while records are recycled under it (it should never). */
	for (uint32_t steps = 0; i != EG_NAT_NONE && steps <= n->p.sessions; steps++) {
		const struct eg_nat_session *x = &s[i];

		if (x->in_addr == in_addr && x->rem_addr == rem_addr && x->in_port == in_port &&
		    x->proto == proto && x->egress == egress)
			return i;
		i = __atomic_load_n(&x->next_out, __ATOMIC_ACQUIRE);
	}
	return EG_NAT_NONE;
}

/* The session an inbound packet from rem_addr to out_addr:out_port belongs to, or
 * EG_NAT_NONE. Lock-free. */
static inline uint32_t eg_nat_find_in(const struct eg_nat_hdr *n, uint8_t proto, uint32_t out_addr,
				      uint16_t out_port, uint32_t rem_addr)
{
	const uint32_t *bkt = EG_NAT_AT(n, n->in_bkt_off, uint32_t);
	const struct eg_nat_session *s = eg_nat_sessions(n);
	uint32_t i = __atomic_load_n(&bkt[eg_nat_hash_in(n, proto, out_addr, out_port, rem_addr) & n->bucket_mask],
				     __ATOMIC_ACQUIRE);

	for (uint32_t steps = 0; i != EG_NAT_NONE && steps <= n->p.sessions; steps++) {
		const struct eg_nat_session *x = &s[i];

		if (x->out_addr == out_addr && x->rem_addr == rem_addr && x->out_port == out_port &&
		    x->proto == proto)
			return i;
		i = __atomic_load_n(&x->next_in, __ATOMIC_ACQUIRE);
	}
	return EG_NAT_NONE;
}

/* The record of pool address addr (network order) in any state but free, or EG_NAT_NONE.
 * A scan: for the rare packet that matched no session, and for ARP. */
static inline uint32_t eg_nat_addr_find(const struct eg_nat_hdr *n, uint32_t addr)
{
	const struct eg_nat_addr *a = eg_nat_addrs(n);
	uint32_t high = __atomic_load_n(&n->n_addrs, __ATOMIC_ACQUIRE);

	for (uint32_t i = 0; i < high && i < EG_NAT_MAX_ADDRS; i++)
		if (a[i].addr == addr && __atomic_load_n(&a[i].state, __ATOMIC_ACQUIRE) != EG_NAT_ADDR_FREE)
			return i;
	return EG_NAT_NONE;
}

/* Marks a packet of session s seen now, with its TCP flags (0 for other protocols). A
 * SYN going out on a session that saw a FIN or RST starts a new connection on the same
 * endpoints: the old flags are forgotten. */
static inline void eg_nat_touch(struct eg_nat_hdr *n, struct eg_nat_session *s, bool outbound, uint8_t tcp_flags)
{
	uint32_t now = __atomic_load_n(&n->now_s, __ATOMIC_RELAXED);

	if (__atomic_load_n(&s->last_s, __ATOMIC_RELAXED) != now)
		__atomic_store_n(&s->last_s, now, __ATOMIC_RELAXED);
	if (tcp_flags) {
		uint8_t *mine = outbound ? &s->flags_out : &s->flags_in;

		if (outbound && tcp_flags == EG_NAT_SYN &&
		    ((s->flags_out | s->flags_in) & (EG_NAT_FIN | EG_NAT_RST))) {
			__atomic_store_n(&s->flags_in, 0, __ATOMIC_RELAXED);
			__atomic_store_n(&s->flags_out, EG_NAT_SYN, __ATOMIC_RELAXED);
		} else if ((*mine & tcp_flags) != tcp_flags) {
			__atomic_fetch_or(mine, tcp_flags, __ATOMIC_RELAXED);
		}
	}
}

/* The idle timeout that applies to a session now. */
uint32_t eg_nat_session_timeout(const struct eg_nat_hdr *n, const struct eg_nat_session *s);
/* "established", "transitory" (TCP), "udp", "icmp". */
const char *eg_nat_session_state_name(const struct eg_nat_session *s);

/* A new outbound flow: what the packet says. */
struct eg_nat_flow {
	uint8_t proto;			/* enum eg_nat_proto */
	uint32_t in_addr, rem_addr;
	uint16_t in_port, rem_port;
	uint16_t egress;
};

/* Finds or makes the session of flow f (host, then mapping, then session, each reused when
 * it exists), taking the writer lock. rnd: fresh unpredictable bits for the choice of
 * pool address, block and port. *session is set on EG_NAT_OK. */
enum eg_nat_result eg_nat_create(struct eg_nat_hdr *n, const struct eg_nat_flow *f, uint8_t worker, uint64_t rnd,
				 uint32_t *session);

/* Records unlinked and waiting for their grace period before reuse. */
struct eg_nat_limbo {
	uint32_t n_sess, n_maps, n_hosts;
	uint32_t cap;			/* of each array */
	uint32_t *sess, *maps, *hosts;
};

/* Unlinks expired sessions (and the mappings and hosts left without any) among records
 * [*cursor, *cursor + budget), wrapping at the high-water mark, into l while it has room.
 * Sessions whose pool address is retired end now. Takes the writer lock. Returns how many
 * sessions were unlinked. */
unsigned eg_nat_sweep(struct eg_nat_hdr *n, uint32_t *cursor, uint32_t budget, struct eg_nat_limbo *l);
/* After the grace period: gives l's records back (ports and blocks with them) and empties it.
 * Takes the writer lock. */
void eg_nat_limbo_free(struct eg_nat_hdr *n, struct eg_nat_limbo *l);

/* Pool membership, by the thread that follows the published table (one at a time).
 * Makes addr an active pool address of egress on port, or moves it there (ending what it
 * had when the egress changes). 0, or -ENOSPC when every record is in use; *started
 * (NULL: not wanted) says whether addr began to be used now. */
int eg_nat_addr_set(struct eg_nat_hdr *n, uint32_t addr, uint16_t egress, uint16_t port, bool *started);
/* Retires every active address not in keep[] (n_keep of them): no new hosts or blocks on
 * it; hosts on it are unlinked now (their next flows start on another address) and its
 * sessions end at the next sweeps. Returns how many were retired. */
unsigned eg_nat_addr_retire_others(struct eg_nat_hdr *n, const uint32_t *keep, unsigned n_keep);

/* Block events written since *tail, oldest first, at most max into out; *lost counts those
 * overwritten before they were read. Returns how many. Single reader. */
unsigned eg_nat_events_read(const struct eg_nat_hdr *n, uint64_t *tail, struct eg_nat_event *out, unsigned max,
			    uint64_t *lost);

#endif
