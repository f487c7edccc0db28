/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * redirect.h - what the XDP program and the user-space loader agree on.
 *
 * Everything in this file is part of the contract with
 * afxdp-responder/src/loader/program.rs, which mirrors these layouts byte for byte
 * (the loader writes them as plain byte arrays, so there is no code
 * generation between the two sides). Change one side, change the other.
 *
 * Byte order: fields that come from the wire (addresses) are stored in
 * network byte order, exactly as they appear in the packet. Fields that are
 * numbers for the program (vlan_id, counter values) are in host byte order.
 */
#ifndef AFXDP_RESPONDER_REDIRECT_H
#define AFXDP_RESPONDER_REDIRECT_H

#include <linux/types.h>

/*
 * Value of the `config` map (BPF_MAP_TYPE_ARRAY, one entry, key 0).
 *
 *   offset 0..6  mac        the MAC address of the interface the program is
 *                           attached to; only frames sent to it are answered
 *   offset 6     ttl        IPv4 TTL of the replies the xdp-tx engine
 *                           (echo_tx.c) builds: the host default
 *                           (net.ipv4.ip_default_ttl), as the kernel uses
 *   offset 7     hop_limit  IPv6 hop limit of those replies: the
 *                           interface's hop_limit
 *   offset 8     flow_flags the IPv6 flow label policy of those replies,
 *                           as echo-wire's FlowLabelPolicy: bit 0 reflect
 *                           (net.ipv6.flowlabel_reflect & 4), bit 1 auto
 *                           (net.ipv6.auto_flowlabels 1 or 3), bit 2
 *                           state_ranges (net.ipv6.flowlabel_state_ranges)
 *   offset 9     no_mirror  1: the loader keeps no host mirror (reply_path.h)
 *                           for this program (the xsk-echo example, which
 *                           embeds redirect.c without the daemon): with
 *                           forwarding off, owned requests are answered
 *                           without a route check, to the request's source
 *                           MAC, as before the mirror existed. The daemon
 *                           writes 0.
 *   offset 10..16 pad       zero
 *   offset 16..32 flow_key  the per-run key of the auto label's hash, two
 *                           u64 in host order (FlowLabelPolicy::key)
 *
 * The redirect and drop programs read only `mac` (the loader writes the
 * other bytes all the same). An all-zero MAC (the state before the
 * loader fills the map) matches no real frame, so an unconfigured program
 * passes everything to the kernel.
 */
struct redirect_config {
	__u8 mac[6];
	__u8 ttl;
	__u8 hop_limit;
	__u8 flow_flags;
	__u8 no_mirror;
	__u8 pad[6];
	__u64 flow_key[2];
};
#define FLOW_REFLECT 0x1
#define FLOW_AUTO 0x2
#define FLOW_STATE_RANGES 0x4

/*
 * Key of the `owned_addrs` map (BPF_MAP_TYPE_HASH): the addresses we answer
 * for, per VLAN.
 *
 *   offset  0..2   vlan_id  host byte order; 0 = untagged or priority-tagged
 *                           (802.1p, VLAN id 0) frames, N = frames tagged
 *                           with VLAN id N
 *   offset  2..4   pad      zero (the hash covers every byte of the key)
 *   offset  4..20  addr     IPv6 address, network byte order; an IPv4 address
 *                           a.b.c.d is stored v4-mapped: ::ffff:a.b.c.d
 *
 * The value is the ifindex of the device that holds the address, the one the
 * reply's route lookup starts from (reply_path.h): 0 means "the interface
 * the frame arrived on", which is right for untagged and priority-tagged
 * frames. For a frame tagged with VLAN N the FIB can approve the reply only
 * when the value names the VLAN device (e.g. eth0.100), which the reply must
 * then leave by; with 0 it is passed to the kernel (other-egress), unless the
 * kernel refuses the lookup altogether (forwarding off: the host mirror,
 * which keys its routes and neighbours by this ifindex, decides).
 */
struct owned_key {
	__u16 vlan_id;
	__u16 pad;
	__u8 addr[16];
};

/*
 * Indexes into the `counters` map (BPF_MAP_TYPE_PERCPU_ARRAY, __u64 values,
 * one slot per CPU; user space sums them). Every engine program has the same
 * four slots, so user space reads them all the same way; a slot an engine
 * never uses stays 0.
 */
enum redirect_counter {
	/* an owned echo request was handled by the engine:
	 *   redirect.c  went to the AF_XDP socket of its RX queue
	 *   echo_tx.c   answered in place with XDP_TX
	 *   echo_drop.c dropped with XDP_DROP */
	COUNTER_HANDLED = 0,
	COUNTER_REDIRECTED = COUNTER_HANDLED,
	/* redirect.c: an owned echo request arrived on a queue with no socket
	 * in `xsks`: bpf_redirect_map() returned its fallback, XDP_PASS */
	COUNTER_NO_SOCKET = 1,
	/* anything else (not an echo request for an owned address, or a form
	 * we leave to the kernel): XDP_PASS */
	COUNTER_PASSED = 2,
	/* echo_tx.c: an owned echo request with a wrong IPv4 header or ICMP
	 * checksum, dropped (XDP_DROP) as the kernel drops it */
	COUNTER_BAD_CHECKSUM = 3,
	/*
	 * An owned echo request that the FIB lookup for its reply
	 * (reply_path.h) sends to the kernel, by reason. Each is also a pass:
	 * user space adds them to `passed`.
	 *
	 *   NO_NEIGH      the reply's next hop has no neighbour entry yet: the
	 *                 kernel resolves it (ARP / NS) and answers, or not
	 *   NOT_UNICAST   the reply would not be a unicast route's packet: the
	 *                 destination is local (our own address), broadcast,
	 *                 link-local (IPv6), or no route exists at all
	 *   NO_ROUTE      a blackhole, unreachable or prohibit route
	 *   FRAG_NEEDED   the reply is larger than the route's MTU: the kernel
	 *                 fragments it
	 *   OTHER_EGRESS  the reply would leave by another interface, the
	 *                 frame is tagged with a VLAN whose device is unknown,
	 *                 or it was sent to a MAC that is no longer the
	 *                 device's (after a MAC change)
	 *   OTHER         anything else: a lookup error, a lightweight-tunnel
	 *                 route, no room for the metadata
	 */
	COUNTER_FIB_NO_NEIGH = 4,
	COUNTER_FIB_NOT_UNICAST = 5,
	COUNTER_FIB_NO_ROUTE = 6,
	COUNTER_FIB_FRAG_NEEDED = 7,
	COUNTER_FIB_OTHER_EGRESS = 8,
	COUNTER_FIB_OTHER = 9,
	/*
	 * Not a pass: an owned echo request handled on the HOST MIRROR's
	 * verdict, because the kernel refuses the FIB lookup while forwarding
	 * is disabled on the interface (BPF_FIB_LKUP_RET_FWD_DISABLED, the
	 * default on every host that is not a router). The mirror (the
	 * mirror_routes and mirror_neighs maps below, kept by user space from
	 * rtnetlink) found a unicast route by this interface and a usable
	 * neighbour entry for its next hop. Counted in addition to
	 * COUNTER_HANDLED (or COUNTER_NO_SOCKET).
	 */
	COUNTER_MIRROR_HANDLED = 10,
	/*
	 * The same pass reasons as COUNTER_FIB_*, decided by the host mirror
	 * (forwarding off). Each is also a pass. NO_ROUTE here also covers
	 * "no route at all" (the FIB says NOT_FWDED for that); OTHER covers a
	 * multipath or nexthop-object route, a route with a TOS, and
	 * unknown route types: the kernel decides those.
	 */
	COUNTER_MIRROR_NO_NEIGH = 11,
	COUNTER_MIRROR_NOT_UNICAST = 12,
	COUNTER_MIRROR_NO_ROUTE = 13,
	COUNTER_MIRROR_FRAG_NEEDED = 14,
	COUNTER_MIRROR_OTHER_EGRESS = 15,
	COUNTER_MIRROR_OTHER = 16,
	COUNTER_MAX = 17,
};

/*
 * The host mirror: what the kernel's output route lookup and neighbour
 * resolution would decide for a reply, mirrored by user space
 * (afxdp-responder/src/mirror.rs) from rtnetlink dumps and notifications,
 * for the hosts where bpf_fib_lookup() refuses to answer (forwarding off).
 *
 * `mirror_routes` (BPF_MAP_TYPE_LPM_TRIE): one entry per (family, table,
 * destination prefix), the route Linux would pick for that prefix (lowest
 * metric; for IPv6, one on the served interface first).
 *
 *   offset 0..4   prefixlen  32 + the route's prefix length (host order)
 *   offset 4      family     4 or 6
 *   offset 5      table      MIRROR_TABLE_LOCAL (255), MAIN (254) or
 *                            DEFAULT (253), looked up in that order, as the
 *                            default `ip rule`s do
 *   offset 6..8   pad        zero
 *   offset 8..24  addr       the prefix, network order; IPv4 in bytes 8..12
 */
struct mirror_route_key {
	__u32 prefixlen;
	__u8 family;
	__u8 table;
	__u16 pad;
	__u8 addr[16];
};

/*
 *   offset 0      type       RTN_* (rtnetlink.h): 1 unicast, 2 local, 3
 *                            broadcast, 4 anycast, 5 multicast, 6
 *                            blackhole, 7 unreachable, 8 prohibit, 9 throw;
 *                            MIRROR_ROUTE_KERNEL for a route the program
 *                            leaves to the kernel (multipath, nexthop
 *                            object, TOS)
 *   offset 1      hop_limit  the route's RTAX_HOPLIMIT, 0 = none (the host
 *                            default applies)
 *   offset 2      gateway    1 when `via` holds the next hop; 0: on-link,
 *                            the next hop is the reply's destination
 *   offset 3      pad        zero
 *   offset 4..8   ifindex    the route's output device
 *   offset 8..12  mtu        the route's RTAX_MTU, 0 = none
 *   offset 12..28 via        the gateway, network order (IPv4: 12..16)
 */
struct mirror_route {
	__u8 type;
	__u8 hop_limit;
	__u8 gateway;
	__u8 pad;
	__u32 ifindex;
	__u32 mtu;
	__u8 via[16];
};
#define MIRROR_TABLE_LOCAL 255
#define MIRROR_TABLE_MAIN 254
#define MIRROR_TABLE_DEFAULT 253
#define MIRROR_ROUTE_KERNEL 0xff

/*
 * `mirror_neighs` (BPF_MAP_TYPE_HASH): the neighbour entries Linux would
 * transmit to (REACHABLE, STALE, DELAY, PROBE, PERMANENT, NOARP with a
 * link-layer address; never INCOMPLETE or FAILED).
 *
 *   key   offset 0..4  ifindex (host order), 4 family (4 or 6), 5..8 pad,
 *                      8..24 the next hop's address (IPv4 in 8..12)
 *   value offset 0..6  its MAC, 6..8 pad
 */
struct mirror_neigh_key {
	__u32 ifindex;
	__u8 family;
	__u8 pad[3];
	__u8 addr[16];
};
struct mirror_neigh {
	__u8 mac[6];
	__u16 pad;
};
#define MIRROR_ROUTES_MAX_ENTRIES 16384
#define MIRROR_NEIGHS_MAX_ENTRIES 16384

/*
 * The metadata the redirect program puts in front of a redirected frame
 * (bpf_xdp_adjust_meta): the MAC addresses of the reply, from the kernel's
 * FIB and neighbour table. User space finds it in the UMEM frame right
 * before the packet's first byte (afxdp-xsk's Umem::meta_and_frame_mut) and
 * clears `magic` after reading it, so a stale copy is never read twice.
 *
 *   offset 0..6   dst_mac    the reply's destination: the neighbour entry of
 *                            its next hop
 *   offset 6..12  src_mac    the reply's source: the egress device's MAC
 *   offset 12     hop_limit  the TTL / hop limit of the reply's route
 *                            (`ip route ... hoplimit N`), 0 = none: the
 *                            host default applies
 *   offset 13..16 pad        zero
 *   offset 16..20 magic      REPLY_META_MAGIC, host byte order
 *
 * 20 bytes: a multiple of 4 and at most 32, as bpf_xdp_adjust_meta wants.
 */
struct reply_meta {
	__u8 dst_mac[6];
	__u8 src_mac[6];
	__u8 hop_limit;
	__u8 pad[3];
	__u32 magic;
};
#define REPLY_META_MAGIC 0x4e455848 /* "NEXH" read as a big-endian number */

/* Capacity of the maps the loader fills (maps.h). */
#define XSKS_MAX_ENTRIES 64	  /* RX queues that can have a socket */
#define OWNED_ADDRS_MAX_ENTRIES 1024 /* (vlan, address) pairs */

#endif /* AFXDP_RESPONDER_REDIRECT_H */
