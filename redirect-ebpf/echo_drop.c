// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * echo_drop.c - --engine drop: the seed article's first program, finished.
 *
 * Drops every ICMP / ICMPv6 echo request for one of our addresses and counts
 * it; everything else goes to the kernel. It answers nothing: it is the
 * baseline of the engine comparison ("what does it cost to see a request and
 * throw it away?") and a quick way to make a host look silent to ping
 * without touching the kernel's sysctls.
 *
 * Unlike the seed, which drops any IPv4 ICMP echo request on the wire, it
 * uses the same filter as the other engines (echo_filter.h): only requests
 * sent to this interface's MAC, for an address in owned_addrs, IPv4 without
 * options and not fragmented, or ICMPv6 without extension headers, from a
 * unicast source. A broadcast ping or a ping for another host still reaches
 * the kernel, which applies its own rules.
 *
 * Counters: COUNTER_HANDLED = dropped, COUNTER_PASSED = everything else.
 */

#include "echo_filter.h"
#include "policy.h"

SEC("xdp")
int drop_echo(struct xdp_md *ctx)
{
	struct echo_request req;

	if (!find_owned_echo(ctx, &req)) {
		count(COUNTER_PASSED);
		return XDP_PASS;
	}
	if (policy_passes(ctx, req.l3, req.ipv6))
		return XDP_PASS; /* host policy: the kernel decides (counted) */
	count(COUNTER_HANDLED);
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
