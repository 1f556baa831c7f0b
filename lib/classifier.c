/* Multi-field classifier (see classifier.h).
 *
 * Every rule gets a rank: its position in (priority, array index) order, so "lower rank
 * wins" is the whole tie-break and the match in hand is one number.
 *
 * The structure is a hierarchical trie per address family, all inside the blob and
 * linked by uint32 offsets only, as workers map it at another address:
 *
 *   header -> a dst trie for IPv4 and one for IPv6
 *   dst trie -> for each dst prefix, a src trie over the rules with that dst prefix
 *   src trie -> for each src prefix, a leaf: the rules with exactly that (dst, src)
 *               pair, by rank, as compact entries holding only the remaining fields
 *
 * A rule goes into the tries of the families it can match: family ANY with wildcard
 * prefixes into both. Tries are multibit, one nibble per level, stored as tree bitmaps: a
 * node has a bitmap of the prefixes that end in it (lengths depth..depth+3) and one of
 * its children, whose values and children sit in arrays indexed by popcount. Chains of
 * nodes with one child and no prefix are left out (path compression), which matters for
 * IPv6 host routes. Nodes and values carry the best rank beneath them.
 *
 * Lookup walks the dst trie along the key's dst and collects the dst prefixes it meets;
 * it searches their src tries best bound first, before going deeper whenever a bound
 * beats everything deeper, so that an early match prunes both the other candidates and
 * the rest of the walk. A src walk scans the leaf of each src prefix it meets, in rank
 * order, up to the first match.
 *
 * Cost: at most 9 (IPv4) or 33 (IPv6) dst nodes, then up to W + 1 dst prefixes on that
 * path, each a src walk of as many nodes: O(W^2 / 4) node visits when rules nest at
 * every dst and src length and the bounds prune nothing (priorities opposite to
 * specificity). The real worst case is a long leaf: rules that share both prefixes and
 * differ only in protocol, ports, DSCP or ingress port are checked one by one. Leaves
 * with many single-dport rules (an ACL of services towards one prefix) index those by
 * dport, which leaves dport ranges, any-dport rules and rules sharing one dport to the
 * linear scan. */
#include <errno.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "classifier.h"

enum {
	STRIDE = 4,			/* bits per trie level: one nibble of the address */
	MAX_SKIP = 8,			/* nibbles one node can skip: what fits cls_node.skip */
	LEAF_INDEX_MIN = 8,		/* single-dport rules in a leaf before they are indexed */
};

#define NO_RANK UINT32_MAX

struct cls_header {
	uint32_t root4;			/* struct cls_node: the IPv4 dst trie */
	uint32_t root6;
};

struct cls_node {
	uint16_t inner;		/* bit inner_pos(j, nib): a prefix of length depth + j ends here */
	uint16_t outer;		/* bit c: a child for next nibble c */
	uint32_t min_rank;	/* best rank anywhere in this subtree; NO_RANK when empty */
	uint32_t values;	/* struct cls_value[popcount(inner)], by slot */
	uint32_t children;	/* struct cls_node[popcount(outer)], by nibble */
	uint32_t skip;		/* nibbles left out between the parent's slot and this node, */
	uint8_t skip_len;	/* first one in the high bits (path compression) */
};

/* What a prefix in a trie leads to, with the best rank there so that a lookup can pass it
 * by without reading it. */
struct cls_value {
	uint32_t off;		/* dst trie: the src trie root; src trie: the leaf */
	uint32_t min_rank;
};

/* A rule once both its prefixes are known to match. */
struct cls_entry {
	uint32_t rank;
	uint32_t result;
	uint64_t dscp_mask;
	uint16_t sport_lo, sport_hi;
	uint16_t dport_lo, dport_hi;
	uint16_t in_port;
	uint8_t proto_any;
	uint8_t proto;
};

struct cls_list {
	uint32_t n;
	uint32_t entries;	/* struct cls_entry[n], by rank */
};

struct cls_port {
	uint16_t dport;
	uint16_t pad;
	struct cls_list list;	/* the leaf's rules for exactly this dport */
};

struct cls_leaf {
	struct cls_list rest;	/* every rule not in the dport index */
	uint32_t n_ports;
	uint32_t ports;		/* struct cls_port[n_ports], by dport */
};

/* The naive reference. */

static bool prefix_matches(const struct eg_prefix *p, uint8_t family, const uint8_t *addr)
{
	if (p->len == 0)
		return true;
	if (p->family != family || p->len > eg_addr_bits(family))
		return false;

	unsigned full = p->len / 8, rest = p->len % 8;
	if (memcmp(p->addr, addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return ((p->addr[full] ^ addr[full]) & mask) == 0;
}

/* DSCP is six bits; the top two bits of k->dscp are ignored rather than shifting by 64+. */
static inline bool dscp_matches(uint64_t mask, uint8_t dscp)
{
	return (mask >> (dscp & 63)) & 1;
}

int eg_rule_matches(const struct eg_rule *r, const struct eg_flow_key *k)
{
	if (k->family != EG_AF_INET && k->family != EG_AF_INET6)
		return 0;
	if (r->family != EG_AF_ANY && r->family != k->family)
		return 0;
	if (!prefix_matches(&r->src, k->family, k->src) ||
	    !prefix_matches(&r->dst, k->family, k->dst))
		return 0;
	if (!r->proto_any && r->proto != k->proto)
		return 0;
	if (k->sport < r->sport_lo || k->sport > r->sport_hi ||
	    k->dport < r->dport_lo || k->dport > r->dport_hi)
		return 0;
	if (!dscp_matches(r->dscp_mask, k->dscp))
		return 0;
	return r->in_port == EG_PORT_ANY || r->in_port == k->in_port;
}

/* Shared by build and lookup. */

/* The nibble of addr at bit depth (a multiple of STRIDE). */
static inline unsigned nibble(const uint8_t *addr, unsigned depth)
{
	uint8_t byte = addr[depth / 8];
	return (depth & 4) ? byte & 0xf : byte >> 4;
}

/* A node's inner bitmap holds its prefixes of length depth + j (j < STRIDE) breadth first:
 * slot 0 for j = 0, slots 1-2 for j = 1, 3-6 for j = 2, 7-14 for j = 3. */
static inline unsigned inner_pos(unsigned j, unsigned nib)
{
	return (1u << j) - 1 + (nib >> (STRIDE - j));
}

static inline unsigned rank_below(uint16_t bitmap, unsigned pos)
{
	return (unsigned)__builtin_popcount(bitmap & ((1u << pos) - 1));
}

/* Lookup. */

struct best {
	uint32_t rank;
	uint32_t result;
};

static inline bool entry_matches(const struct cls_entry *e, const struct eg_flow_key *k)
{
	return (e->proto_any || e->proto == k->proto) &&
	       k->dport >= e->dport_lo && k->dport <= e->dport_hi &&
	       k->sport >= e->sport_lo && k->sport <= e->sport_hi &&
	       dscp_matches(e->dscp_mask, k->dscp) &&
	       (e->in_port == EG_PORT_ANY || e->in_port == k->in_port);
}

static void scan_list(const void *base, struct cls_list l, const struct eg_flow_key *k,
		      struct best *best)
{
	const struct cls_entry *e = EG_AT(base, l.entries, struct cls_entry);

	/* By rank: the first match is the list's best, and past best->rank nothing can win. */
	for (uint32_t i = 0; i < l.n && e[i].rank < best->rank; i++) {
		if (entry_matches(&e[i], k)) {
			best->rank = e[i].rank;
			best->result = e[i].result;
			return;
		}
	}
}

static void scan_leaf(const void *base, uint32_t leaf_off, const struct eg_flow_key *k,
		      struct best *best)
{
	const struct cls_leaf *leaf = EG_AT(base, leaf_off, struct cls_leaf);
	const struct cls_port *ports = EG_AT(base, leaf->ports, struct cls_port);

	scan_list(base, leaf->rest, k, best);

	uint32_t lo = 0, hi = leaf->n_ports;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (ports[mid].dport < k->dport)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < leaf->n_ports && ports[lo].dport == k->dport)
		scan_list(base, ports[lo].list, k, best);
}

/* The nibble of the key's address that picks the inner slots and child at depth. A node
 * at depth nbits only holds full-length prefixes (slot 0) and has no children; the
 * nibble there would lie past the address. */
static inline unsigned key_nibble(const uint8_t *addr, unsigned depth, unsigned nbits)
{
	return depth < nbits ? nibble(addr, depth) : 0;
}

/* The value of the prefix of length depth + j (j < STRIDE) on the key's path, if stored. */
static inline const struct cls_value *inner_value(const void *base, const struct cls_node *node,
						  unsigned j, unsigned nib)
{
	unsigned pos = inner_pos(j, nib);

	if (!((node->inner >> pos) & 1))
		return NULL;
	return EG_AT(base, node->values, struct cls_value) + rank_below(node->inner, pos);
}

static inline const struct cls_node *child(const void *base, const struct cls_node *node,
					   unsigned nib)
{
	if (!((node->outer >> nib) & 1))
		return NULL;
	return EG_AT(base, node->children, struct cls_node) + rank_below(node->outer, nib);
}

/* A node that skips nibbles stands for a chain of nodes with one child and no prefix,
 * left out at build time: the key must follow the chain to get there. Moves depth past
 * the skipped nibbles. */
static inline bool follows_skip(const struct cls_node *node, const uint8_t *addr,
				unsigned *depth)
{
	for (unsigned s = node->skip_len; s-- > 0; *depth += STRIDE)
		if (nibble(addr, *depth) != ((node->skip >> (STRIDE * s)) & 0xf))
			return false;
	return true;
}

/* Src tries are small (most are a lone wildcard): their leaves are scanned as met. */
static void walk_src(const void *base, uint32_t root, unsigned nbits, const struct eg_flow_key *k,
		     struct best *best)
{
	const struct cls_node *node = EG_AT(base, root, struct cls_node);

	for (unsigned depth = 0; node && node->min_rank < best->rank; depth += STRIDE) {
		if (!follows_skip(node, k->src, &depth))
			return;
		unsigned nib = key_nibble(k->src, depth, nbits);
		for (unsigned j = 0; j < STRIDE; j++) {
			const struct cls_value *v = inner_value(base, node, j, nib);
			if (v && v->min_rank < best->rank)
				scan_leaf(base, v->off, k, best);
		}
		node = child(base, node, nib);
	}
}

/* A dst prefix on the key's path whose src trie is not searched yet. At most one per
 * prefix length. */
struct cand {
	uint32_t src_trie;
	uint32_t min_rank;
};

enum { MAX_CANDS = 129 };

/* Searches pending candidates best bound first, as long as a bound beats both the match
 * in hand and `ahead`, the best that anything deeper in the dst trie could do. A match
 * found early then spares the other candidates and the rest of the walk. */
static void drain(const void *base, struct cand *c, unsigned *n, uint32_t ahead,
		  unsigned nbits, const struct eg_flow_key *k, struct best *best)
{
	for (;;) {
		uint32_t limit = ahead < best->rank ? ahead : best->rank;
		unsigned pick = *n;

		for (unsigned i = 0; i < *n; i++) {
			if (c[i].min_rank >= limit)
				continue;
			if (pick == *n || c[i].min_rank < c[pick].min_rank)
				pick = i;
		}
		if (pick == *n)
			return;
		uint32_t src_trie = c[pick].src_trie;
		c[pick] = c[--*n];
		walk_src(base, src_trie, nbits, k, best);
	}
}

static void walk_dst(const void *base, uint32_t root, unsigned nbits, const struct eg_flow_key *k,
		     struct best *best)
{
	const struct cls_node *node = EG_AT(base, root, struct cls_node);
	struct cand cands[MAX_CANDS];
	unsigned n = 0;

	for (unsigned depth = 0; node && node->min_rank < best->rank; depth += STRIDE) {
		if (!follows_skip(node, k->dst, &depth))
			break;
		unsigned nib = key_nibble(k->dst, depth, nbits);
		for (unsigned j = 0; j < STRIDE; j++) {
			const struct cls_value *v = inner_value(base, node, j, nib);
			if (v && v->min_rank < best->rank)
				cands[n++] = (struct cand){ v->off, v->min_rank };
		}
		node = child(base, node, nib);
		drain(base, cands, &n, node ? node->min_rank : NO_RANK, nbits, k, best);
	}
	drain(base, cands, &n, NO_RANK, nbits, k, best);
}

uint32_t eg_classifier_lookup(const void *base, uint32_t off, const struct eg_flow_key *k)
{
	const struct cls_header *h = EG_AT(base, off, struct cls_header);
	struct best best = { .rank = NO_RANK, .result = EG_CLS_NO_MATCH };

	if (k->family == EG_AF_INET)
		walk_dst(base, h->root4, 32, k, &best);
	else if (k->family == EG_AF_INET6)
		walk_dst(base, h->root6, 128, k, &best);
	return best.result;
}

/* Build. */

struct bent {
	const struct eg_rule *r;
	uint32_t rank;
};

/* A dst prefix whose src trie is still to be built, and the value slot it goes in. */
struct pending {
	uint32_t slot;
	size_t lo, hi;
};

struct builder {
	struct eg_blob *b;
	struct bent *ents;
	struct pending *pend;	/* room for one per entry: there are no more dst prefixes */
	size_t n_pend;
};

static const struct eg_prefix *prefix_of(const struct bent *e, bool is_src)
{
	return is_src ? &e->r->src : &e->r->dst;
}

/* The slot of p in the node at depth where it ends (p->len - depth < STRIDE). */
static unsigned end_pos(const struct eg_prefix *p, unsigned depth)
{
	unsigned j = p->len - depth;

	/* j == 0 needs no address bits, and depth may then be the full address length. */
	return j ? inner_pos(j, nibble(p->addr, depth)) : 0;
}

/* The order in which build_node() consumes prefixes: at each depth, those that end in the
 * node come first, by slot, then those that go on, by their next nibble. Zero means the
 * same prefix (host bits past len are never read). */
static int trie_cmp(const struct eg_prefix *a, const struct eg_prefix *b)
{
	for (unsigned depth = 0;; depth += STRIDE) {
		bool a_ends = a->len < depth + STRIDE, b_ends = b->len < depth + STRIDE;
		if (a_ends != b_ends)
			return a_ends ? -1 : 1;
		if (a_ends)
			return (int)end_pos(a, depth) - (int)end_pos(b, depth);
		int d = (int)nibble(a->addr, depth) - (int)nibble(b->addr, depth);
		if (d)
			return d;
	}
}

static int bent_cmp(const void *pa, const void *pb)
{
	const struct bent *a = pa, *b = pb;
	int c = trie_cmp(&a->r->dst, &b->r->dst);

	if (!c)
		c = trie_cmp(&a->r->src, &b->r->src);
	if (!c)
		c = (a->rank > b->rank) - (a->rank < b->rank);
	return c;
}

static bool single_dport(const struct eg_rule *r)
{
	return r->dport_lo == r->dport_hi;
}

/* Inside an indexed leaf: the unindexed rules first, then by (dport, rank). */
static int leaf_cmp(const void *pa, const void *pb)
{
	const struct bent *a = pa, *b = pb;
	bool ai = single_dport(a->r), bi = single_dport(b->r);

	if (ai != bi)
		return ai ? 1 : -1;
	if (ai && a->r->dport_lo != b->r->dport_lo)
		return a->r->dport_lo < b->r->dport_lo ? -1 : 1;
	return (a->rank > b->rank) - (a->rank < b->rank);
}

/* An empty array needs no bytes; its offset is never read. */
static uint32_t alloc_array(struct eg_blob *b, size_t n, size_t size, size_t align)
{
	if (n == 0)
		return 0;
	if (n > SIZE_MAX / size) {
		errno = ENOMEM;
		return EG_BLOB_NONE;
	}
	return eg_blob_alloc(b, n * size, align);
}

static void fill_entry(struct cls_entry *e, const struct bent *be)
{
	const struct eg_rule *r = be->r;

	*e = (struct cls_entry){
		.rank = be->rank,
		.result = r->result,
		.dscp_mask = r->dscp_mask,
		.sport_lo = r->sport_lo,
		.sport_hi = r->sport_hi,
		.dport_lo = r->dport_lo,
		.dport_hi = r->dport_hi,
		.in_port = r->in_port,
		.proto_any = r->proto_any ? 1 : 0,
		.proto = r->proto,
	};
}

/* The rules [lo, hi) share both prefixes and are by rank. May reorder them. */
static uint32_t build_leaf(struct builder *bd, size_t lo, size_t hi)
{
	struct bent *ents = bd->ents + lo;
	size_t n = hi - lo, n_single = 0, n_ports = 0;

	for (size_t i = 0; i < n; i++)
		n_single += single_dport(ents[i].r);
	if (n_single < LEAF_INDEX_MIN)
		n_single = 0;
	size_t n_rest = n - n_single;

	if (n_single) {
		qsort(ents, n, sizeof(*ents), leaf_cmp);
		for (size_t i = n_rest; i < n; i++)
			n_ports += i == n_rest || ents[i].r->dport_lo != ents[i - 1].r->dport_lo;
	}

	uint32_t leaf_off, entries, ports;
	leaf_off = eg_blob_alloc(bd->b, sizeof(struct cls_leaf), alignof(struct cls_leaf));
	if (leaf_off == EG_BLOB_NONE)
		return EG_BLOB_NONE;
	entries = alloc_array(bd->b, n, sizeof(struct cls_entry), alignof(struct cls_entry));
	if (entries == EG_BLOB_NONE)
		return EG_BLOB_NONE;
	ports = alloc_array(bd->b, n_ports, sizeof(struct cls_port), alignof(struct cls_port));
	if (ports == EG_BLOB_NONE)
		return EG_BLOB_NONE;

	struct cls_leaf *leaf = eg_blob_at(bd->b, leaf_off);
	struct cls_entry *e = eg_blob_at(bd->b, entries);
	struct cls_port *p = eg_blob_at(bd->b, ports);

	for (size_t i = 0; i < n; i++)
		fill_entry(&e[i], &ents[i]);
	leaf->rest = (struct cls_list){ .n = (uint32_t)n_rest, .entries = entries };
	leaf->n_ports = (uint32_t)n_ports;
	leaf->ports = ports;

	for (size_t i = n_rest; i < n;) {
		size_t end = i + 1;
		while (end < n && ents[end].r->dport_lo == ents[i].r->dport_lo)
			end++;
		*p++ = (struct cls_port){
			.dport = ents[i].r->dport_lo,
			.list = { .n = (uint32_t)(end - i),
				  .entries = entries + (uint32_t)(i * sizeof(struct cls_entry)) },
		};
		i = end;
	}
	return leaf_off;
}

static uint32_t min_rank_of(const struct bent *ents, size_t lo, size_t hi)
{
	uint32_t min = NO_RANK;

	for (size_t i = lo; i < hi; i++)
		if (ents[i].rank < min)
			min = ents[i].rank;
	return min;
}

/* Fills the node at node_off from entries [lo, hi): in trie order, all sharing the first
 * depth bits of the trie's prefix and at least that long. Returns 0 or -errno. */
static int build_node(struct builder *bd, uint32_t node_off, size_t lo, size_t hi,
		      unsigned depth, bool is_src)
{
	struct bent *ents = bd->ents;
	uint16_t inner = 0, outer = 0;
	uint32_t skip = 0;
	unsigned skip_len = 0;
	size_t first_child = lo;

	/* Path compression: while every prefix here goes on through the same nibble, the node
	 * at this depth would hold nothing but one child. In trie order that is the case when
	 * the first prefix does not end here and the last one shares its nibble. */
	while (lo < hi && skip_len < MAX_SKIP) {
		const struct eg_prefix *first = prefix_of(&ents[lo], is_src);
		const struct eg_prefix *last = prefix_of(&ents[hi - 1], is_src);
		if (first->len < depth + STRIDE ||
		    nibble(first->addr, depth) != nibble(last->addr, depth))
			break;
		skip = skip << STRIDE | nibble(first->addr, depth);
		skip_len++;
		depth += STRIDE;
	}

	for (size_t i = lo; i < hi; i++) {
		const struct eg_prefix *p = prefix_of(&ents[i], is_src);
		if (p->len < depth + STRIDE) {
			inner |= (uint16_t)(1u << end_pos(p, depth));
			first_child = i + 1;	/* trie order: the ones ending here come first */
		} else {
			outer |= (uint16_t)(1u << nibble(p->addr, depth));
		}
	}

	uint32_t values = alloc_array(bd->b, (size_t)__builtin_popcount(inner),
				      sizeof(struct cls_value), alignof(struct cls_value));
	if (values == EG_BLOB_NONE)
		return -errno;
	uint32_t children = alloc_array(bd->b, (size_t)__builtin_popcount(outer),
					sizeof(struct cls_node), alignof(struct cls_node));
	if (children == EG_BLOB_NONE)
		return -errno;

	struct cls_node *node = eg_blob_at(bd->b, node_off);
	*node = (struct cls_node){
		.inner = inner,
		.outer = outer,
		.min_rank = min_rank_of(ents, lo, hi),
		.values = values,
		.children = children,
		.skip = skip,
		.skip_len = (uint8_t)skip_len,
	};

	/* One value per run of the same prefix. A src trie keeps its leaves next to it, for
	 * the few lines a lookup reads at the end; a dst trie defers its src tries (see
	 * build_family()). The blob may move under each call. */
	for (size_t i = lo, v = 0; i < first_child; v++) {
		unsigned pos = end_pos(prefix_of(&ents[i], is_src), depth);
		size_t end = i + 1;
		while (end < first_child && end_pos(prefix_of(&ents[end], is_src), depth) == pos)
			end++;
		uint32_t slot = values + (uint32_t)(v * sizeof(struct cls_value));
		((struct cls_value *)eg_blob_at(bd->b, slot))->min_rank = min_rank_of(ents, i, end);
		if (is_src) {
			uint32_t leaf = build_leaf(bd, i, end);
			if (leaf == EG_BLOB_NONE)
				return -errno;
			((struct cls_value *)eg_blob_at(bd->b, slot))->off = leaf;
		} else {
			bd->pend[bd->n_pend++] = (struct pending){ slot, i, end };
		}
		i = end;
	}

	/* One child per run of the same next nibble. */
	for (size_t i = first_child, c = 0; i < hi; c++) {
		unsigned nib = nibble(prefix_of(&ents[i], is_src)->addr, depth);
		size_t end = i + 1;
		while (end < hi && nibble(prefix_of(&ents[end], is_src)->addr, depth) == nib)
			end++;
		uint32_t child_off = children + (uint32_t)(c * sizeof(struct cls_node));
		int err = build_node(bd, child_off, i, end, depth + STRIDE, is_src);
		if (err)
			return err;
		i = end;
	}
	return 0;
}

static bool prefix_valid(const struct eg_prefix *p, uint8_t family)
{
	if (p->len == 0)
		return true;
	if (p->family != EG_AF_INET && p->family != EG_AF_INET6)
		return false;
	if (family != EG_AF_ANY && p->family != family)
		return false;
	return p->len <= eg_addr_bits(p->family);
}

static bool rule_valid(const struct eg_rule *r)
{
	if (r->family != EG_AF_ANY && r->family != EG_AF_INET && r->family != EG_AF_INET6)
		return false;
	if (r->result == EG_CLS_NO_MATCH)
		return false;
	return prefix_valid(&r->src, r->family) && prefix_valid(&r->dst, r->family);
}

/* A family-ANY rule with an IPv4 prefix can only match IPv4 keys, and one with an IPv4
 * and an IPv6 prefix matches nothing and goes nowhere. */
static bool rule_in_family(const struct eg_rule *r, uint8_t family)
{
	return (r->family == EG_AF_ANY || r->family == family) &&
	       (r->src.len == 0 || r->src.family == family) &&
	       (r->dst.len == 0 || r->dst.family == family);
}

static int priority_cmp(const void *pa, const void *pb)
{
	const struct bent *a = pa, *b = pb;

	if (a->r->priority != b->r->priority)
		return a->r->priority < b->r->priority ? -1 : 1;
	return (a->r > b->r) - (a->r < b->r);	/* same array: pointer order is index order */
}

static int build_family(struct builder *bd, const struct eg_rule *rules, uint32_t n,
			const uint32_t *rank, uint8_t family, uint32_t *root)
{
	size_t m = 0;

	for (uint32_t i = 0; i < n; i++)
		if (rule_in_family(&rules[i], family))
			bd->ents[m++] = (struct bent){ .r = &rules[i], .rank = rank[i] };
	qsort(bd->ents, m, sizeof(*bd->ents), bent_cmp);

	*root = eg_blob_alloc(bd->b, sizeof(struct cls_node), alignof(struct cls_node));
	if (*root == EG_BLOB_NONE)
		return -errno;
	bd->n_pend = 0;
	int err = build_node(bd, *root, 0, m, 0, false);
	if (err)
		return err;

	/* Every lookup walks the dst trie, but reads only a few src tries: building these
	 * after it keeps the dst nodes dense in memory, for the cache and the TLB. */
	for (size_t i = 0; i < bd->n_pend; i++) {
		const struct pending *p = &bd->pend[i];
		uint32_t src_root = eg_blob_alloc(bd->b, sizeof(struct cls_node),
						  alignof(struct cls_node));
		if (src_root == EG_BLOB_NONE)
			return -errno;
		err = build_node(bd, src_root, p->lo, p->hi, 0, true);
		if (err)
			return err;
		((struct cls_value *)eg_blob_at(bd->b, p->slot))->off = src_root;
	}
	return 0;
}

uint32_t eg_classifier_build(struct eg_blob *b, const struct eg_rule *rules, uint32_t n)
{
	size_t saved_len = b->len;
	struct builder bd = { .b = b };
	uint32_t *rank = NULL;
	uint32_t hdr = EG_BLOB_NONE, root4, root6;
	int err = 0;

	if (n && !rules) {
		errno = EINVAL;
		return EG_BLOB_NONE;
	}
	for (uint32_t i = 0; i < n; i++) {
		if (!rule_valid(&rules[i])) {
			errno = EINVAL;
			return EG_BLOB_NONE;
		}
	}

	bd.ents = malloc((n ? n : 1) * sizeof(*bd.ents));
	bd.pend = malloc((n ? n : 1) * sizeof(*bd.pend));
	rank = malloc((n ? n : 1) * sizeof(*rank));
	if (!bd.ents || !bd.pend || !rank) {
		err = -ENOMEM;
		goto out;
	}

	for (uint32_t i = 0; i < n; i++)
		bd.ents[i] = (struct bent){ .r = &rules[i] };
	qsort(bd.ents, n, sizeof(*bd.ents), priority_cmp);
	for (uint32_t i = 0; i < n; i++)
		rank[bd.ents[i].r - rules] = i;

	hdr = eg_blob_alloc(b, sizeof(struct cls_header), alignof(struct cls_header));
	if (hdr == EG_BLOB_NONE) {
		err = -errno;
		goto out;
	}
	err = build_family(&bd, rules, n, rank, EG_AF_INET, &root4);
	if (!err)
		err = build_family(&bd, rules, n, rank, EG_AF_INET6, &root6);
	if (!err)
		*(struct cls_header *)eg_blob_at(b, hdr) = (struct cls_header){
			.root4 = root4,
			.root6 = root6,
		};

out:
	free(bd.ents);
	free(bd.pend);
	free(rank);
	if (err) {
		b->len = saved_len;	/* drop the half-built structure; alloc re-zeroes */
		errno = -err;
		return EG_BLOB_NONE;
	}
	return hdr;
}
