/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * flood_replies.c - the load generator's side of the lab: redirect ICMP
 * echo REPLIES addressed to the generator into its AF_XDP sockets.
 *
 * `afxdp-responder flood` sends echo requests from AF_XDP TX rings and must
 * see the replies to verify them and measure round-trip times. This program
 * runs on the generator's interface and sends every echo reply (ICMP type 0,
 * ICMPv6 type 129) whose destination is in `owned_addrs` to the AF_XDP socket
 * of the RX queue it arrived on. Everything else goes to the kernel.
 *
 * Maps: those of maps.h (xsks included), filled by the same user-space code
 * as the engines' (afxdp-responder/src/loader/program.rs, CaptureProgram):
 *   xsks         XSKMAP, key = RX queue, value = AF_XDP socket
 *   owned_addrs  struct owned_key (VLAN 0, the generator's address) -> 0
 *   counters     COUNTER_HANDLED redirected, COUNTER_NO_SOCKET, COUNTER_PASSED
 *   config       unused here
 *   inject_config, inject_state   the injector's (flood_inject.h)
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAPS_WITH_XSKS
#include "maps.h"
#include "flood_inject.h"

#define IPPROTO_ICMP_ 1
#define IPPROTO_ICMPV6_ 58
#define ICMP_ECHOREPLY_ 0
#define ICMPV6_ECHO_REPLY_ 129
#define IP_MF_ 0x2000
#define IP_OFFSET_ 0x1fff

static __always_inline int pass(void)
{
	count(COUNTER_PASSED);
	return XDP_PASS;
}

SEC("xdp")
int flood_replies(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct owned_key key = {};
	__u8 *l4;
	struct inject_config *inject_cfg = injection(ctx);

	/* A test run from user space (`flood --inject live`): make a request. */
	if (inject_cfg)
		return inject(ctx, inject_cfg);

	if ((void *)(eth + 1) > data_end)
		return pass();

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end || ip->ihl != 5 || ip->protocol != IPPROTO_ICMP_)
			return pass();
		if (ip->frag_off & bpf_htons(IP_MF_ | IP_OFFSET_))
			return pass();
		l4 = (__u8 *)(ip + 1);
		if ((void *)(l4 + 1) > data_end || *l4 != ICMP_ECHOREPLY_)
			return pass();
		key.addr[10] = 0xff;
		key.addr[11] = 0xff;
		__builtin_memcpy(&key.addr[12], &ip->daddr, 4);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end || ip6->nexthdr != IPPROTO_ICMPV6_)
			return pass();
		l4 = (__u8 *)(ip6 + 1);
		if ((void *)(l4 + 1) > data_end || *l4 != ICMPV6_ECHO_REPLY_)
			return pass();
		__builtin_memcpy(key.addr, &ip6->daddr, 16);
	} else {
		return pass();
	}

	if (!bpf_map_lookup_elem(&owned_addrs, &key))
		return pass();

	/* XDP_PASS as the fallback: a reply on a queue without a socket goes to
	 * the kernel (and counts as lost for the generator). */
	int action = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
	count(action == XDP_REDIRECT ? COUNTER_HANDLED : COUNTER_NO_SOCKET);
	return action;
}

char _license[] SEC("license") = "Dual MIT/GPL";
