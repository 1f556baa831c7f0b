/* Why a worker dropped a packet: one list, from which the enum, the names shown to
 * operators and the counter arrays are all made. Append only: the shared-memory counters are
 * indexed by these values. */
#ifndef EG_DROP_REASONS_H
#define EG_DROP_REASONS_H

#define EG_DROP_REASONS(X)                                                              \
	X(ETH_RUNT,           "eth_runt")           /* shorter than an Ethernet header */   \
	X(VLAN_MISMATCH,      "vlan_mismatch")      /* tag other than the port's vlan */    \
	X(UNKNOWN_ETHERTYPE,  "unknown_ethertype")                                          \
	X(IPV4_RUNT,          "ipv4_runt")                                                  \
	X(IPV4_BAD_HEADER,    "ipv4_bad_header")    /* version or IHL wrong */              \
	X(IPV4_BAD_CHECKSUM,  "ipv4_bad_checksum")                                          \
	X(IPV4_BAD_LENGTH,    "ipv4_bad_length")    /* total length beyond the frame */     \
	X(IPV6_RUNT,          "ipv6_runt")                                                  \
	X(IPV6_BAD_LENGTH,    "ipv6_bad_length")                                            \
	X(L4_RUNT,            "l4_runt")            /* TCP/UDP header cut short */          \
	X(TTL_EXCEEDED,       "ttl_exceeded")                                               \
	X(NO_TABLE,           "no_table")           /* nothing published yet */             \
	X(NO_POLICY,          "no_policy")          /* no rule matched */                   \
	X(POLICY_DROP,        "policy_drop")        /* a policy with action drop */         \
	X(NO_EGRESS,          "no_egress")          /* pinned policy, none eligible */      \
	X(EGRESS_UNSUPPORTED, "egress_unsupported") /* egress type this build cannot send */\
	X(NO_ROUTE,           "no_route")           /* return traffic with no site route */ \
	X(NEIGH_UNRESOLVED,   "neigh_unresolved")   /* next hop MAC not known yet */        \
	X(PUNT_FULL,          "punt_full")          /* service ring full */                 \
	X(TX_FULL,            "tx_full")            /* device would not take it */          \
	X(NOT_IP,             "not_ip")             /* on a port that only routes IP */     \
	X(MTU_EXCEEDED,       "mtu_exceeded")                                               \
	X(L2_OTHER_HOST,      "l2_other_host")      /* unicast to another MAC */            \
	X(IPV6_BAD_HEADER,    "ipv6_bad_header")    /* version or extension chain */        \
	X(NOT_FORWARDABLE,    "not_forwardable")    /* multicast, broadcast, link-local */  \
	X(SERVICE_DROP,       "service_drop")       /* punted, then nothing to answer */    \
	X(NO_ROOM,            "no_room")            /* no head- or tailroom to encapsulate */\
	X(ESP_NO_SA,          "esp_no_sa")          /* inbound SPI unknown */               \
	X(ESP_SA_STOPPED,     "esp_sa_stopped")     /* SA expired, overflowed or removed */ \
	X(ESP_MALFORMED,      "esp_malformed")      /* lengths that cannot be ESP */        \
	X(ESP_REPLAY,         "esp_replay")         /* replayed or older than the window */ \
	X(ESP_AUTH_FAILED,    "esp_auth_failed")    /* ICV did not verify */                \
	X(ESP_BAD_PADDING,    "esp_bad_padding")    /* RFC 4303 2.4 padding bytes wrong */  \
	X(ESP_BAD_INNER,      "esp_bad_inner")      /* next header not IPv4/IPv6 */         \
	X(ESP_DUMMY,          "esp_dummy")          /* next header 59, RFC 4303 2.6 */      \
	X(ESP_SEQ_OVERFLOW,   "esp_seq_overflow")   /* outbound numbers used up */          \
	X(NATT_KEEPALIVE,     "natt_keepalive")     /* RFC 3948 2.3, expected */            \
	X(REASM_BAD,          "reasm_bad")          /* fragment malformed or contradictory */\
	X(REASM_DUPLICATE,    "reasm_duplicate")    /* copy of a fragment held already */   \
	X(REASM_OVERLAP,      "reasm_overlap")      /* overlapping fragments (RFC 5722) */  \
	X(REASM_TOO_BIG,      "reasm_too_big")      /* reassembled it would not fit */      \
	X(REASM_TOO_MANY,     "reasm_too_many")     /* more fragments than we hold */       \
	X(REASM_EXPIRED,      "reasm_expired")      /* incomplete in time, or evicted */   \
	X(WG_BAD_MESSAGE,     "wg_bad_message")     /* unknown type or wrong length */      \
	X(WG_NO_SESSION,      "wg_no_session")      /* no keypair to send with (yet) */     \
	X(WG_NO_ENDPOINT,     "wg_no_endpoint")     /* peer's address not known yet */      \
	X(WG_UNKNOWN_INDEX,   "wg_unknown_index")   /* receiver index names no keypair */   \
	X(WG_REPLAY,          "wg_replay")          /* counter seen or older than window */ \
	X(WG_AUTH_FAILED,     "wg_auth_failed")     /* Poly1305 tag did not verify */       \
	X(WG_KEY_EXHAUSTED,   "wg_key_exhausted")   /* REJECT_AFTER_MESSAGES reached */     \
	X(WG_BAD_INNER,       "wg_bad_inner")       /* decrypted bytes are not an IP packet */\
	X(WG_ALLOWED_IPS,     "wg_allowed_ips")     /* inner source not in peer's allowed IPs */\
	X(WG_HANDSHAKE_FULL,  "wg_handshake_full")  /* handshake ring to control full */   \
	X(PROBE_NO_PATH,      "probe_no_path")      /* probe or reflection: no egress for it */\
	X(PROBE_MALFORMED,    "probe_malformed")    /* STAMP or echo too short to answer */\
	X(NAT_NO_SESSION,     "nat_no_session")     /* to a pool address: no session admits it */\
	X(NAT_HOST_PORTS,     "nat_host_ports")     /* the inside host used all its port blocks */\
	X(NAT_POOL_EXHAUSTED, "nat_pool_exhausted") /* no pool address has a block for the host */\
	X(NAT_TABLE_FULL,     "nat_table_full")     /* no session, mapping or host record free */\
	X(NAT_UNSUPPORTED,    "nat_unsupported")    /* protocol or ICMP type NAT does not carry */\
	X(NAT_FRAGMENT,       "nat_fragment")       /* a fragment: its ports are not in it */

enum eg_drop_reason {
#define EG_DROP_ENUM(id, name) EG_DROP_##id,
	EG_DROP_REASONS(EG_DROP_ENUM)
#undef EG_DROP_ENUM
	EG_DROP_MAX
};

extern const char *const eg_drop_names[EG_DROP_MAX];

#endif
