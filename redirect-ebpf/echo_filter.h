/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * echo_filter.h - "is this an echo request for one of our addresses?",
 * shared by every engine program:
 *
 *   redirect.c   --engine afxdp    hand it to the AF_XDP socket of its queue
 *   echo_tx.c    --engine xdp-tx   answer it in the kernel with XDP_TX
 *   echo_drop.c  --engine drop     drop it
 *
 * Keeping the filter in one place means the three engines answer (or drop)
 * exactly the same frames, so comparing them compares only what they do
 * with a request, never which requests they see.
 *
 * Accepted (all must hold, otherwise the frame is not ours: XDP_PASS):
 *   Ethernet  destination MAC == the interface's MAC (config map),
 *             source MAC unicast; at most one 802.1Q / 802.1ad tag
 *   IPv4      version 4, IHL 5 (no options), not a fragment,
 *             protocol ICMP, type 8 (echo request), unicast source,
 *             destination in owned_addrs for this frame's VLAN
 *   IPv6      version 6, next header 58 (ICMPv6, no extension headers),
 *             type 128 (echo request), unicast source,
 *             destination in owned_addrs for this frame's VLAN
 *
 * Every read from the packet is preceded by a bounds check against
 * data_end: the verifier rejects the program otherwise, and it is what keeps
 * a truncated frame from being read past its end. A length field read from
 * the packet goes through packet_len16() before it is added to a packet
 * pointer, so that the oldest verifiers we support (Linux 6.1) accept it.
 *
 * The maps every engine has (owned_addrs, config, counters) and count()
 * come from maps.h (layouts in redirect.h). Each program includes it once,
 * so each compiled object gets its own copy of the maps.
 */
#ifndef AFXDP_RESPONDER_ECHO_FILTER_H
#define AFXDP_RESPONDER_ECHO_FILTER_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "maps.h"

/*
 * <linux/icmp.h> and <linux/icmpv6.h> drag in headers that do not build for
 * -target bpf, and <linux/if_vlan.h> is kernel-internal. We need only a few
 * bytes of each, so we define them here.
 */

/* One 802.1Q / 802.1ad tag, the 4 bytes after the two MAC addresses. */
struct vlan_hdr {
	__be16 tci;	    /* priority (3 bits), DEI (1), VLAN id (12) */
	__be16 encap_proto; /* EtherType of what follows the tag */
};
#define VLAN_VID_MASK 0x0fff

/* The first 4 bytes of an ICMPv4 or ICMPv6 message: the same layout. */
struct icmp_common {
	__u8 type;
	__u8 code;
	__be16 checksum;
};
#define ICMP_ECHOREPLY 0	   /* ICMPv4 echo reply */
#define ICMP_ECHO 8		   /* ICMPv4 echo request */
#define ICMPV6_ECHO_REQUEST 128 /* ICMPv6 echo request */
#define ICMPV6_ECHO_REPLY 129	   /* ICMPv6 echo reply */
/* identifier and sequence number follow: an echo message is >= 8 bytes */
#define ICMP_ECHO_HDR_LEN 8

#define IP_DF 0x4000	 /* "don't fragment" flag in frag_off */
#define IP_MF 0x2000	 /* "more fragments" flag in frag_off */
#define IP_OFFSET 0x1fff /* fragment offset mask in frag_off */

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

/* Is there room for `len` bytes at `pos` before the end of the frame?
 * Written as a comparison of packet pointers, the form the verifier
 * understands: after it returns true, reads in [pos, pos + len) are allowed.
 * `len` must be a constant or a value the verifier knows to be small: see
 * packet_len16() for a length read from the packet. */
#define HAS_ROOM(pos, len, data_end) ((void *)(pos) + (len) <= (data_end))

/*
 * A 16-bit length field of the packet (IPv4 total length, IPv6 payload
 * length) in host byte order, in a form that every verifier accepts in
 * HAS_ROOM(), i.e. added to a packet pointer.
 *
 * bpf_ntohs() compiles to a byte swap instruction (BPF_END). Older
 * verifiers (seen with Linux 6.1 and 6.12; 6.18 and 7.3 know better) do not
 * follow a value through a byte swap: to them the result is any 64-bit
 * number ("R3_w=scalar()" in the verifier log), although it cannot
 * exceed 0xffff, and they refuse to add it to a packet pointer ("math
 * between pkt pointer and register with unbounded min value is not
 * allowed"), even after a `len < MIN` check, which bounds it from below
 * only. Masking with 0xffff gives them the bound back. clang knows that the
 * swapped value fits in 16 bits and would drop the mask as useless, so the
 * empty asm statement first hides the value from the optimiser. The mask
 * changes no value: the result is the same number bpf_ntohs() returns.
 */
static __always_inline __u32 packet_len16(__be16 field)
{
	__u32 len = bpf_ntohs(field);

	asm volatile("" : "+r"(len));
	return len & 0xffff;
}

static __always_inline int mac_equal(const __u8 *a, const __u8 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] &&
	       a[3] == b[3] && a[4] == b[4] && a[5] == b[5];
}

/* An IPv4 source we may reply to: not 0.0.0.0/8 ("this network"),
 * 127.0.0.0/8 (loopback), 224.0.0.0/4 (multicast) or the limited broadcast
 * 255.255.255.255. The reserved 240.0.0.0/4 is unicast to Linux (it
 * answers such sources) and to respond() (echo_wire::ipv4::is_unicast):
 * the differential test (tests/xdp_differential.rs) holds the two to one
 * definition. */
static __always_inline int ipv4_source_is_unicast(__be32 saddr)
{
	__u32 addr = bpf_ntohl(saddr);
	__u8 first = addr >> 24;

	return first != 0 && first != 127 && (first < 224 || first >= 240) &&
	       addr != 0xffffffff;
}

/* An IPv6 source we may reply to: not :: (unspecified), ::1 (loopback),
 * ff00::/8 (multicast) or ::ffff:0:0/96 (v4-mapped, never valid on the wire). */
static __always_inline int ipv6_source_is_unicast(const struct in6_addr *saddr)
{
	const __u32 *w = saddr->in6_u.u6_addr32; /* network byte order */

	if (saddr->in6_u.u6_addr8[0] == 0xff)
		return 0; /* multicast */
	if (w[0] == 0 && w[1] == 0) {
		if (w[2] == 0 && (w[3] == 0 || w[3] == bpf_htonl(1)))
			return 0; /* :: or ::1 */
		if (w[2] == bpf_htonl(0x0000ffff))
			return 0; /* ::ffff:a.b.c.d */
	}
	return 1;
}

/* ------------------------------------------------------------------------
 * The checks per network protocol. Each returns 1 when the packet starting at
 * `l3` is an echo request we answer, and fills in the owned_addrs key.
 * ------------------------------------------------------------------------ */

static __always_inline int ipv4_is_owned_echo(void *l3, void *data_end,
					      struct owned_key *key)
{
	struct iphdr *ip = l3;
	struct icmp_common *icmp;
	__u32 tot_len;

	if (!HAS_ROOM(ip, sizeof(*ip), data_end))
		return 0;
	/* IHL is in 32-bit words: 5 means a 20-byte header without options.
	 * Options are rare and have rules of their own (record route,
	 * timestamps...); the kernel handles them. */
	if (ip->version != 4 || ip->ihl != 5)
		return 0;
	/* A fragment (more to come, or not the first piece) cannot be
	 * answered before reassembly, which the kernel does. DF is fine. */
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return 0;
	if (ip->protocol != IPPROTO_ICMP)
		return 0;
	/* The IP total length must cover an echo header and fit in the frame
	 * (a frame may be longer: Ethernet pads short frames to 60 bytes). */
	tot_len = packet_len16(ip->tot_len);
	if (tot_len < sizeof(*ip) + ICMP_ECHO_HDR_LEN)
		return 0;
	if (!HAS_ROOM(ip, tot_len, data_end))
		return 0;

	icmp = (void *)(ip + 1);
	if (!HAS_ROOM(icmp, ICMP_ECHO_HDR_LEN, data_end))
		return 0;
	if (icmp->type != ICMP_ECHO)
		return 0;
	if (!ipv4_source_is_unicast(ip->saddr))
		return 0;

	/* ::ffff:a.b.c.d - bytes 0..10 are already zero (the caller zeroed
	 * the key), 10..12 are 0xff, 12..16 the address as on the wire. */
	key->addr[10] = 0xff;
	key->addr[11] = 0xff;
	__builtin_memcpy(&key->addr[12], &ip->daddr, 4);
	return 1;
}

static __always_inline int ipv6_is_owned_echo(void *l3, void *data_end,
					      struct owned_key *key)
{
	struct ipv6hdr *ip6 = l3;
	struct icmp_common *icmp;
	__u32 payload_len;

	if (!HAS_ROOM(ip6, sizeof(*ip6), data_end))
		return 0;
	if (ip6->version != 6)
		return 0;
	/* ICMPv6 must follow the fixed header directly. Extension headers
	 * (hop-by-hop, routing, fragment...) go to the kernel. */
	if (ip6->nexthdr != IPPROTO_ICMPV6)
		return 0;
	payload_len = packet_len16(ip6->payload_len);
	if (payload_len < ICMP_ECHO_HDR_LEN)
		return 0;
	if (!HAS_ROOM(ip6 + 1, payload_len, data_end))
		return 0;

	icmp = (void *)(ip6 + 1);
	if (!HAS_ROOM(icmp, ICMP_ECHO_HDR_LEN, data_end))
		return 0;
	if (icmp->type != ICMPV6_ECHO_REQUEST)
		return 0;
	if (!ipv6_source_is_unicast(&ip6->saddr))
		return 0;

	__builtin_memcpy(key->addr, &ip6->daddr, 16);
	return 1;
}

/* ------------------------------------------------------------------------
 * The whole filter
 * ------------------------------------------------------------------------ */

/* Where an accepted echo request is, for the engine that handles it. */
struct echo_request {
	/* The IPv4 or IPv6 header, after the Ethernet header and the VLAN tag
	 * if there is one. The filter has checked that the whole IP packet
	 * (as its length field says) lies before data_end. */
	void *l3;
	/* 0 for IPv4, 1 for IPv6. */
	int ipv6;
	/* The config map's value (MAC, reply TTL and hop limit). */
	const struct redirect_config *cfg;
	/* The device the reply's route lookup starts from, and that the reply
	 * must leave by (reply_path.h): the owned_addrs value, or the ingress
	 * interface when that is 0. 0 for a VLAN-tagged frame whose VLAN
	 * device the loader did not name. */
	__u32 ifindex;
};

/*
 * Returns 1 when the frame in `ctx` is an ICMP / ICMPv6 echo request for one
 * of our addresses, in a form the engines handle, and fills in `req`.
 * Returns 0 for everything else: the caller passes it to the kernel.
 */
static __always_inline int find_owned_echo(struct xdp_md *ctx,
					   struct echo_request *req)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	const struct redirect_config *cfg;
	struct owned_key key;
	void *l3;
	__u16 proto;
	__u32 zero = 0, *owner;
	int is_echo;

	/* The whole key is hashed, padding included: start from zeros. */
	__builtin_memset(&key, 0, sizeof(key));

	/* Ethernet: sent to us, from a unicast sender. */
	if (!HAS_ROOM(eth, sizeof(*eth), data_end))
		return 0;
	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg)
		return 0;
	if (!mac_equal(eth->h_dest, cfg->mac))
		return 0; /* broadcast, multicast, or another host's frame */
	if (eth->h_source[0] & 0x01)
		return 0; /* group bit set: a multicast source is invalid */

	proto = eth->h_proto;
	l3 = eth + 1;

	/* At most one VLAN tag. Its VLAN id selects which owned addresses
	 * apply; VLAN id 0 (a priority tag) counts as untagged. */
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_hdr *vlan = l3;

		if (!HAS_ROOM(vlan, sizeof(*vlan), data_end))
			return 0;
		key.vlan_id = bpf_ntohs(vlan->tci) & VLAN_VID_MASK;
		proto = vlan->encap_proto;
		l3 = vlan + 1;
		if (proto == bpf_htons(ETH_P_8021Q) ||
		    proto == bpf_htons(ETH_P_8021AD))
			return 0; /* a second tag (QinQ): not ours */
	}

	if (proto == bpf_htons(ETH_P_IP)) {
		is_echo = ipv4_is_owned_echo(l3, data_end, &key);
		req->ipv6 = 0;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		is_echo = ipv6_is_owned_echo(l3, data_end, &key);
		req->ipv6 = 1;
	} else {
		return 0; /* ARP and everything else */
	}

	if (!is_echo)
		return 0;
	owner = bpf_map_lookup_elem(&owned_addrs, &key);
	if (!owner)
		return 0; /* not one of our addresses (on this VLAN) */

	req->l3 = l3;
	req->cfg = cfg;
	req->ifindex = *owner;
	if (req->ifindex == 0 && key.vlan_id == 0)
		req->ifindex = ctx->ingress_ifindex;
	return 1;
}

#endif /* AFXDP_RESPONDER_ECHO_FILTER_H */
