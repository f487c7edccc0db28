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
 * Fills `key` (and the reply's IP length) for the reply to `req`: the
 * destination is the request's source. Returns 0 when the headers are not
 * there (cannot happen: the filter checked them).
 */
static __always_inline int mirror_key(const struct echo_request *req,
				      void *data_end,
				      struct mirror_route_key *key,
				      __u32 *tot_len)
{
	__builtin_memset(key, 0, sizeof(*key));
	if (req->ipv6) {
		struct ipv6hdr *ip6 = req->l3;

		if (!HAS_ROOM(ip6, sizeof(*ip6), data_end))
			return 0;
		key->family = 6;
		key->prefixlen = 32 + 128;
		__builtin_memcpy(key->addr, &ip6->saddr, 16);
		*tot_len = sizeof(*ip6) + packet_len16(ip6->payload_len);
	} else {
		struct iphdr *ip = req->l3;

		if (!HAS_ROOM(ip, sizeof(*ip), data_end))
			return 0;
		key->family = 4;
		key->prefixlen = 32 + 32;
		__builtin_memcpy(key->addr, &ip->saddr, 4);
		*tot_len = packet_len16(ip->tot_len);
	}
	return 1;
}

/*
 * One question to the host mirror, on the stack of the caller: the reply's
 * destination (`key`, filled by mirror_key()), its IP length and the device
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
 * Forwarding is off, so the FIB does not answer: the host mirror decides,
 * as Linux's output route lookup and neighbour resolution would. Returns
 * COUNTER_HANDLED (and fills in `macs`) or the COUNTER_MIRROR_* reason.
 */
static __always_inline __u32 reply_mirrored(const struct echo_request *req,
					    void *data_end,
					    struct reply_macs *macs)
{
	struct mirror_query q;
	int verdict;

	if (req->ifindex == 0)
		return COUNTER_MIRROR_OTHER_EGRESS; /* a VLAN the loader did not name */
	__builtin_memset(&q, 0, sizeof(q));
	if (!mirror_key(req, data_end, &q.key, &q.tot_len))
		return COUNTER_MIRROR_OTHER;
	q.ifindex = req->ifindex;
	verdict = mirror_decide(&q);
	if (verdict != COUNTER_HANDLED) {
		if (verdict < COUNTER_MIRROR_NO_NEIGH || verdict > COUNTER_MIRROR_OTHER)
			return COUNTER_MIRROR_OTHER;
		return verdict;
	}
	__builtin_memcpy(macs->dst, q.mac, ETH_ALEN);
	__builtin_memcpy(macs->src, req->cfg->mac, ETH_ALEN);
	macs->hop_limit = q.hop_limit;
	count(COUNTER_MIRROR_HANDLED);
	return COUNTER_HANDLED;
}

/* The hop limit of the route the mirror holds for the reply's destination
 * (0: none, or no such route), for a reply the FIB approved. */
static __always_inline __u8 route_hop_limit(const struct echo_request *req,
					    void *data_end)
{
	struct mirror_query q;

	__builtin_memset(&q, 0, sizeof(q));
	if (!mirror_key(req, data_end, &q.key, &q.tot_len))
		return 0;
	q.hop_limit_only = 1;
	if (mirror_decide(&q) != COUNTER_HANDLED)
		return 0;
	return q.hop_limit;
}

/*
 * Asks the FIB about the reply to `req`. Returns COUNTER_HANDLED when the
 * engine may answer (and fills in `macs`), or the COUNTER_FIB_* reason to
 * pass the frame to the kernel instead.
 *
 * Reads the packet (addresses, lengths) but writes nothing to it.
 */
static __always_inline __u32 reply_path(struct xdp_md *ctx,
					const struct echo_request *req,
					void *data_end,
					struct reply_macs *macs)
{
	struct bpf_fib_lookup fib;
	long rc;

	__builtin_memset(&fib, 0, sizeof(fib));
	/* req->ifindex is 0 for a tagged frame whose VLAN device the loader
	 * did not name: the lookup starts from the interface (so that the
	 * forwarding check gives the same answer), but cannot succeed. */
	fib.ifindex = req->ifindex ? req->ifindex : ctx->ingress_ifindex;
	if (req->ipv6) {
		struct ipv6hdr *ip6 = req->l3;

		if (!HAS_ROOM(ip6, sizeof(*ip6), data_end))
			return COUNTER_FIB_OTHER;
		fib.family = AF_INET6;
		fib.l4_protocol = IPPROTO_ICMPV6;
		fib.tot_len = sizeof(*ip6) + packet_len16(ip6->payload_len);
		/* The traffic class (bits 20..27 of the first word), no label:
		 * the reply's label is the kernel's own choice. */
		fib.flowinfo = *(__be32 *)ip6 & bpf_htonl(0x0ff00000);
		__builtin_memcpy(fib.ipv6_src, &ip6->daddr, 16);
		__builtin_memcpy(fib.ipv6_dst, &ip6->saddr, 16);
	} else {
		struct iphdr *ip = req->l3;

		if (!HAS_ROOM(ip, sizeof(*ip), data_end))
			return COUNTER_FIB_OTHER;
		fib.family = AF_INET;
		fib.l4_protocol = IPPROTO_ICMP;
		fib.tot_len = packet_len16(ip->tot_len);
		fib.tos = ip->tos;
		fib.ipv4_src = ip->daddr;
		fib.ipv4_dst = ip->saddr;
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
		return reply_mirrored(req, data_end, macs);
	default:
		return COUNTER_FIB_OTHER; /* < 0: an error; LWT; unknown */
	}
	if (req->ifindex == 0 || fib.ifindex != req->ifindex)
		return COUNTER_FIB_OTHER_EGRESS;
	/* smac is the egress device's MAC as it is now. The filter compared
	 * the frame with the config map's copy, which user space refreshes
	 * only after a MAC change: a frame still sent to the old MAC is one
	 * Linux no longer takes (PACKET_OTHERHOST), so it is not ours either. */
	{
		struct ethhdr *eth = (void *)(long)ctx->data;

		if (!HAS_ROOM(eth, sizeof(*eth), data_end))
			return COUNTER_FIB_OTHER;
		if (!mac_equal(eth->h_dest, fib.smac))
			return COUNTER_FIB_OTHER_EGRESS;
	}

	__builtin_memcpy(macs->dst, fib.dmac, ETH_ALEN);
	__builtin_memcpy(macs->src, fib.smac, ETH_ALEN);
	macs->hop_limit = route_hop_limit(req, data_end);
	return COUNTER_HANDLED;
}

#endif /* AFXDP_RESPONDER_REPLY_PATH_H */
