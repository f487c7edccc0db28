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
 * returns BPF_FIB_LKUP_RET_FWD_DISABLED. Passing every request to the
 * kernel then would turn the responder off on every host that is not a
 * router, so the request is answered as before the FIB check existed (to
 * the request's source MAC, from the interface's MAC) and counted as
 * COUNTER_FIB_UNCHECKED. docs/parity.md lists what that costs.
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

/* The reply's MAC addresses, when the engine may answer. */
struct reply_macs {
	__u8 dst[ETH_ALEN];
	__u8 src[ETH_ALEN];
};

/*
 * No FIB verdict (forwarding is disabled): the reply goes back where the
 * request came from, from the interface's MAC.
 */
static __always_inline __u32 reply_unchecked(struct xdp_md *ctx,
					     const struct echo_request *req,
					     void *data_end,
					     struct reply_macs *macs)
{
	struct ethhdr *eth = (void *)(long)ctx->data;

	if (!HAS_ROOM(eth, sizeof(*eth), data_end))
		return COUNTER_FIB_OTHER;
	__builtin_memcpy(macs->dst, eth->h_source, ETH_ALEN);
	__builtin_memcpy(macs->src, req->cfg->mac, ETH_ALEN);
	count(COUNTER_FIB_UNCHECKED);
	return COUNTER_HANDLED;
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
		return reply_unchecked(ctx, req, data_end, macs);
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
	return COUNTER_HANDLED;
}

#endif /* AFXDP_RESPONDER_REPLY_PATH_H */
