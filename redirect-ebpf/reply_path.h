/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * reply_path.h - "would Linux send the reply, and to which MAC?", asked of
 * the kernel's own FIB and neighbour table with bpf_fib_lookup(), for the
 * engines that answer (redirect.c hands the answer to user space, echo_tx.c
 * writes it into the reply).
 *
 * The lookup is for the REPLY, as the kernel's icmp_reply() /
 * icmpv6_echo_reply() would route it:
 *
 *   source       the owned address the request was sent to
 *   destination  the request's source
 *   ifindex      the device that holds the address: the interface the
 *                frame came in on, or the VLAN device for a tagged frame
 *   tot_len      the reply's IP length (= the request's), for the MTU verdict
 *   tos / class  the request's (Linux copies it into the reply)
 *
 * Only BPF_FIB_LKUP_RET_SUCCESS with egress by that same device lets the
 * engine answer: SUCCESS means a unicast route and a neighbour entry (the
 * kernel fills in its MAC as dmac, the egress device's MAC as smac).
 * Everything else goes to the kernel, which then does exactly what Linux
 * does: resolve the neighbour first (NO_NEIGH), refuse (blackhole,
 * unreachable, prohibit), answer a local or broadcast source its own way
 * (NOT_FWDED), fragment (FRAG_NEEDED)...
 *
 * Flags: 0, the forwarding-style lookup. BPF_FIB_LOOKUP_OUTPUT would also
 * restrict the route's next hops to the given device, so a less specific
 * route by this interface could win over the route Linux really uses; with
 * 0 the route is the one the destination selects, and the egress check
 * below refuses it when it leaves by another device. Only flags that exist
 * since Linux 4.18 are used (no SKIP_NEIGH / SRC / MARK), so the programs
 * load on 6.1.
 *
 * The kernel answers a lookup only when forwarding is enabled on the device
 * (net.ipv4.conf.DEV.forwarding, net.ipv6.conf.DEV.forwarding), also for a
 * reply that is not forwarded at all: net/core/filter.c checks it first and
 * returns BPF_FIB_LKUP_RET_FWD_DISABLED, the answer on every host that is
 * not a router. Then the HOST MIRROR decides (reply_mirrored() below): user
 * space keeps the routes of the tables the default rules consult (local,
 * main, default) and the usable neighbour entries in two maps
 * (mirror_routes, mirror_neighs; layouts in redirect.h), current from
 * rtnetlink notifications. A unicast route by this interface whose next hop
 * has a usable neighbour entry is answered, to that MAC; everything else is
 * passed, counted by the same reasons in the COUNTER_MIRROR_* slots.
 *
 * The route's hop limit (`ip route ... hoplimit N`) is not in the FIB
 * lookup's result: the mirror's route gives it on both paths.
 */
#ifndef AFXDP_RESPONDER_REPLY_PATH_H
#define AFXDP_RESPONDER_REPLY_PATH_H

#include "echo_filter.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

/* The reply's MAC addresses and route hop limit, when the engine may answer. */
struct reply_macs {
	__u8 dst[ETH_ALEN];
	__u8 src[ETH_ALEN];
	__u8 hop_limit; /* the route's hoplimit metric, 0 = the host default */
};

/* The host mirror's maps (layouts and contract in redirect.h). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MIRROR_ROUTES_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct mirror_route_key);
	__type(value, struct mirror_route);
} mirror_routes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MIRROR_NEIGHS_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct mirror_neigh_key);
	__type(value, struct mirror_neigh);
} mirror_neighs SEC(".maps");

#define RTN_UNICAST_ 1
#define RTN_LOCAL_ 2
#define RTN_BROADCAST_ 3
#define RTN_ANYCAST_ 4
#define RTN_MULTICAST_ 5
#define RTN_BLACKHOLE_ 6
#define RTN_UNREACHABLE_ 7
#define RTN_PROHIBIT_ 8
#define RTN_THROW_ 9

/*
 * The route Linux's default rules would select for the reply's destination
 * (the request's source, `key->addr`): the local table first, then main,
 * then default; a `throw` route goes on to the next table, as the rules
 * do. NULL: no route (the kernel answers ENETUNREACH, i.e. nothing).
 */
static __always_inline const struct mirror_route *
mirror_route(struct mirror_route_key *key)
{
	const struct mirror_route *route;

	key->table = MIRROR_TABLE_LOCAL;
	route = bpf_map_lookup_elem(&mirror_routes, key);
	if (route && route->type != RTN_THROW_)
		return route;
	key->table = MIRROR_TABLE_MAIN;
	route = bpf_map_lookup_elem(&mirror_routes, key);
	if (route && route->type != RTN_THROW_)
		return route;
	key->table = MIRROR_TABLE_DEFAULT;
	route = bpf_map_lookup_elem(&mirror_routes, key);
	if (route && route->type != RTN_THROW_)
		return route;
	return 0;
}

/*
 * One question to the host mirror, on the stack of the caller: the reply's
 * destination (`key`), its IP length and the device
 * it must leave by; the answer (the next hop's MAC, the route's hop limit)
 * comes back in it.
 */
struct mirror_query {
	struct mirror_route_key key;
	__u32 tot_len;
	__u32 ifindex;
	__u8 mac[ETH_ALEN];
	__u8 hop_limit;
	__u8 hop_limit_only; /* 1: only look up the route's hop limit */
};

/*
 * The host mirror's verdict on `q`: COUNTER_HANDLED (q->mac, q->hop_limit
 * filled in) or the COUNTER_MIRROR_* reason to pass the request.
 *
 * A global (not inlined) function: the verifier checks it once, on its own,
 * and the caller sees one scalar come back. Inlined, its branches multiply
 * the xdp-tx program's verifier states past the 1M-instruction limit of
 * older verifiers (Linux 6.1). Pointer arguments of global functions need
 * Linux 5.12.
 */
__attribute__((noinline)) int mirror_decide(struct mirror_query *q)
{
	const struct mirror_route *route;
	const struct mirror_neigh *neigh;
	struct mirror_neigh_key nkey;
	struct mirror_route_key key;

	if (!q)
		return COUNTER_MIRROR_OTHER;
	/* Map keys must be on this function's stack for older verifiers
	 * (6.1 refuses a key in the caller's memory, PTR_TO_MEM). */
	__builtin_memcpy(&key, &q->key, sizeof(key));
	route = mirror_route(&key);
	if (q->hop_limit_only) {
		q->hop_limit = route ? route->hop_limit : 0;
		return COUNTER_HANDLED;
	}
	if (!route)
		return COUNTER_MIRROR_NO_ROUTE;
	switch (route->type) {
	case RTN_UNICAST_:
		break;
	case RTN_LOCAL_:
	case RTN_BROADCAST_:
	case RTN_ANYCAST_:
	case RTN_MULTICAST_:
		return COUNTER_MIRROR_NOT_UNICAST;
	case RTN_BLACKHOLE_:
	case RTN_UNREACHABLE_:
	case RTN_PROHIBIT_:
		return COUNTER_MIRROR_NO_ROUTE;
	default:
		return COUNTER_MIRROR_OTHER; /* multipath, nexthop object, ... */
	}
	if (route->ifindex != q->ifindex)
		return COUNTER_MIRROR_OTHER_EGRESS;
	if (route->mtu && q->tot_len > route->mtu)
		return COUNTER_MIRROR_FRAG_NEEDED;

	__builtin_memset(&nkey, 0, sizeof(nkey));
	nkey.ifindex = q->ifindex;
	nkey.family = key.family;
	if (route->gateway)
		__builtin_memcpy(nkey.addr, route->via, 16);
	else
		__builtin_memcpy(nkey.addr, key.addr, 16);
	neigh = bpf_map_lookup_elem(&mirror_neighs, &nkey);
	if (!neigh)
		return COUNTER_MIRROR_NO_NEIGH;
	__builtin_memcpy(q->mac, neigh->mac, ETH_ALEN);
	q->hop_limit = route->hop_limit;
	return COUNTER_HANDLED;
}

/*
 * The reply to decide about, copied from the request by reply_path() onto
 * its stack, and the decision (the MACs, the route's hop limit) coming back.
 */
struct reply_query {
	__u8 ipv6;
	__u8 tos;	/* IPv4 TOS (the IPv6 traffic class is in flowinfo) */
	__u8 no_mirror; /* config: the loader keeps no host mirror */
	__u8 hop_limit; /* out: the route's hoplimit, 0 = none */
	__u32 ifindex;	/* the device the reply must leave by, 0 = unknown */
	__u32 tot_len;	/* the reply's IP length */
	__be32 flowinfo;
	__u8 src[16];	/* the reply's source: the owned address (IPv4: 0..4) */
	__u8 dst[16];	/* the reply's destination: the request's source */
	__u8 frame_dst[ETH_ALEN]; /* the request's destination MAC */
	__u8 frame_src[ETH_ALEN]; /* the request's source MAC */
	__u8 cfg_mac[ETH_ALEN];	  /* the config map's MAC */
	__u8 out_dst[ETH_ALEN];	  /* out: the reply's destination MAC */
	__u8 out_src[ETH_ALEN];	  /* out: the reply's source MAC */
	__u8 pad[2];
};

/* The host mirror's hop limit for the reply in `q` (0: none). */
static __always_inline __u8 mirror_hop_limit(const struct reply_query *q)
{
	struct mirror_query m;

	__builtin_memset(&m, 0, sizeof(m));
	m.key.family = q->ipv6 ? 6 : 4;
	m.key.prefixlen = 32 + (q->ipv6 ? 128 : 32);
	__builtin_memcpy(m.key.addr, q->dst, 16);
	m.hop_limit_only = 1;
	if (mirror_decide(&m) != COUNTER_HANDLED)
		return 0;
	return m.hop_limit;
}

/*
 * Forwarding is off, so the FIB does not answer: the host mirror decides,
 * as Linux's output route lookup and neighbour resolution would.
 */
static __always_inline int reply_mirrored(struct reply_query *q)
{
	struct mirror_query m;
	int verdict;

	if (q->no_mirror) {
		/* A loader without a mirror (redirect.h, config.no_mirror):
		 * back to the request's source MAC, unchecked. */
		__builtin_memcpy(q->out_dst, q->frame_src, ETH_ALEN);
		__builtin_memcpy(q->out_src, q->cfg_mac, ETH_ALEN);
		q->hop_limit = 0;
		count(COUNTER_MIRROR_HANDLED);
		return COUNTER_HANDLED;
	}
	if (q->ifindex == 0)
		return COUNTER_MIRROR_OTHER_EGRESS; /* a VLAN the loader did not name */
	__builtin_memset(&m, 0, sizeof(m));
	m.key.family = q->ipv6 ? 6 : 4;
	m.key.prefixlen = 32 + (q->ipv6 ? 128 : 32);
	__builtin_memcpy(m.key.addr, q->dst, 16);
	m.tot_len = q->tot_len;
	m.ifindex = q->ifindex;
	verdict = mirror_decide(&m);
	if (verdict != COUNTER_HANDLED)
		return verdict;
	__builtin_memcpy(q->out_dst, m.mac, ETH_ALEN);
	__builtin_memcpy(q->out_src, q->cfg_mac, ETH_ALEN);
	q->hop_limit = m.hop_limit;
	count(COUNTER_MIRROR_HANDLED);
	return COUNTER_HANDLED;
}

/*
 * The decision about the reply in `q`: the FIB's (forwarding on) or the
 * host mirror's (forwarding off). COUNTER_HANDLED with q->out_* and
 * q->hop_limit filled in, or the COUNTER_FIB_* / COUNTER_MIRROR_* reason.
 *
 * A global function, verified once on its own: every path through it ends
 * in the same caller state (the stack it wrote is unknown to the caller),
 * so its branches do not multiply the states the caller's checksum loop
 * (echo_tx.c) is verified in, which older verifiers (6.1) cannot afford.
 */
__attribute__((noinline)) int reply_decide(struct xdp_md *ctx, struct reply_query *q)
{
	struct bpf_fib_lookup fib;
	long rc;

	if (!q)
		return COUNTER_FIB_OTHER;
	__builtin_memset(&fib, 0, sizeof(fib));
	/* q->ifindex is 0 for a tagged frame whose VLAN device the loader
	 * did not name: the lookup starts from the interface (so that the
	 * forwarding check gives the same answer), but cannot succeed. */
	fib.ifindex = q->ifindex ? q->ifindex : ctx->ingress_ifindex;
	fib.tot_len = q->tot_len;
	if (q->ipv6) {
		fib.family = AF_INET6;
		fib.l4_protocol = IPPROTO_ICMPV6;
		/* The traffic class, no label: the reply's label is its own. */
		fib.flowinfo = q->flowinfo;
		__builtin_memcpy(fib.ipv6_src, q->src, 16);
		__builtin_memcpy(fib.ipv6_dst, q->dst, 16);
	} else {
		fib.family = AF_INET;
		fib.l4_protocol = IPPROTO_ICMP;
		fib.tos = q->tos;
		__builtin_memcpy(&fib.ipv4_src, q->src, 4);
		__builtin_memcpy(&fib.ipv4_dst, q->dst, 4);
	}

	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	switch (rc) {
	case BPF_FIB_LKUP_RET_SUCCESS:
		break;
	case BPF_FIB_LKUP_RET_NO_NEIGH:
		return COUNTER_FIB_NO_NEIGH;
	case BPF_FIB_LKUP_RET_NOT_FWDED:
		return COUNTER_FIB_NOT_UNICAST;
	case BPF_FIB_LKUP_RET_BLACKHOLE:
	case BPF_FIB_LKUP_RET_UNREACHABLE:
	case BPF_FIB_LKUP_RET_PROHIBIT:
		return COUNTER_FIB_NO_ROUTE;
	case BPF_FIB_LKUP_RET_FRAG_NEEDED:
		return COUNTER_FIB_FRAG_NEEDED;
	case BPF_FIB_LKUP_RET_FWD_DISABLED:
		return reply_mirrored(q);
	default:
		return COUNTER_FIB_OTHER; /* < 0: an error; LWT; unknown */
	}
	if (q->ifindex == 0 || fib.ifindex != q->ifindex)
		return COUNTER_FIB_OTHER_EGRESS;
	/* smac is the egress device's MAC as it is now. The filter compared
	 * the frame with the config map's copy, which user space refreshes
	 * only after a MAC change: a frame still sent to the old MAC is one
	 * Linux no longer takes (PACKET_OTHERHOST), so it is not ours either. */
	if (!mac_equal(q->frame_dst, fib.smac))
		return COUNTER_FIB_OTHER_EGRESS;
	__builtin_memcpy(q->out_dst, fib.dmac, ETH_ALEN);
	__builtin_memcpy(q->out_src, fib.smac, ETH_ALEN);
	/* The FIB's result has no hop limit: the mirror's route has it. */
	q->hop_limit = mirror_hop_limit(q);
	return COUNTER_HANDLED;
}

/*
 * Would Linux send the reply to `req`, and to which MAC? Returns
 * COUNTER_HANDLED when the engine may answer (and fills in `macs`), or the
 * COUNTER_FIB_* / COUNTER_MIRROR_* reason to pass the frame to the kernel.
 *
 * Reads the packet (addresses, lengths, MACs) but writes nothing to it.
 */
static __always_inline __u32 reply_path(struct xdp_md *ctx,
					const struct echo_request *req,
					void *data_end,
					struct reply_macs *macs)
{
	struct ethhdr *eth = (void *)(long)ctx->data;
	struct reply_query q;
	int verdict;

	__builtin_memset(&q, 0, sizeof(q));
	if (!HAS_ROOM(eth, sizeof(*eth), data_end))
		return COUNTER_FIB_OTHER;
	__builtin_memcpy(q.frame_dst, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(q.frame_src, eth->h_source, ETH_ALEN);
	__builtin_memcpy(q.cfg_mac, req->cfg->mac, ETH_ALEN);
	q.no_mirror = req->cfg->no_mirror;
	q.ifindex = req->ifindex;
	if (req->ipv6) {
		struct ipv6hdr *ip6 = req->l3;

		if (!HAS_ROOM(ip6, sizeof(*ip6), data_end))
			return COUNTER_FIB_OTHER;
		q.ipv6 = 1;
		q.tot_len = sizeof(*ip6) + packet_len16(ip6->payload_len);
		q.flowinfo = *(__be32 *)ip6 & bpf_htonl(0x0ff00000);
		__builtin_memcpy(q.src, &ip6->daddr, 16);
		__builtin_memcpy(q.dst, &ip6->saddr, 16);
	} else {
		struct iphdr *ip = req->l3;

		if (!HAS_ROOM(ip, sizeof(*ip), data_end))
			return COUNTER_FIB_OTHER;
		q.tot_len = packet_len16(ip->tot_len);
		q.tos = ip->tos;
		__builtin_memcpy(q.src, &ip->daddr, 4);
		__builtin_memcpy(q.dst, &ip->saddr, 4);
	}

	verdict = reply_decide(ctx, &q);
	if (verdict != COUNTER_HANDLED)
		return verdict < 0 ? COUNTER_FIB_OTHER : (__u32)verdict;
	__builtin_memcpy(macs->dst, q.out_dst, ETH_ALEN);
	__builtin_memcpy(macs->src, q.out_src, ETH_ALEN);
	macs->hop_limit = q.hop_limit;
	return COUNTER_HANDLED;
}

#endif /* AFXDP_RESPONDER_REPLY_PATH_H */
