// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * redirect.c - the XDP half of afxdp-responder (--engine afxdp, the default).
 *
 * Runs for every frame that arrives on the interface, before the kernel has
 * allocated anything for it. It decides one thing: is this frame an ICMP
 * echo request (ping) for one of our addresses, in a form simple enough for
 * user space to answer? If yes, it is redirected to the AF_XDP socket that
 * serves the RX queue it arrived on. Everything else - ARP, neighbour
 * discovery, SSH, pings for other hosts, fragments, IP options, IPv6
 * extension headers, broadcast pings - gets XDP_PASS and continues into the
 * kernel's network stack as if this program were not there.
 *
 * The question itself ("an owned echo request?") is find_owned_echo() in
 * echo_filter.h, shared with the other engines (echo_tx.c, echo_drop.c), so
 * all of them see exactly the same requests.
 *
 * Maps (maps.h; layouts in redirect.h):
 *   xsks         XSKMAP, RX queue index -> AF_XDP socket
 *   owned_addrs  HASH, (vlan id, IPv6 or v4-mapped address) -> ifindex
 *   config       ARRAY[1], the interface MAC (TTL / hop limit unused here)
 *   counters     PERCPU_ARRAY, redirected / no_socket / passed / the
 *                reasons the reply's FIB lookup (or the host mirror)
 *                passed a request
 *   mirror_routes, mirror_neighs   the host mirror (reply_path.h), for
 *                hosts with forwarding off
 *
 * Before redirecting, reply_path() asks the kernel's FIB and neighbour
 * table (or, with forwarding off, the host mirror) whether Linux would send
 * the reply by this interface and to which MAC; the MACs and the route's
 * hop limit travel to user space as XDP metadata (struct reply_meta in
 * redirect.h), and respond() builds the reply with them.
 */

#define MAPS_WITH_XSKS /* xsks: RX queue index -> AF_XDP socket (maps.h) */
#include "echo_filter.h"
#include "reply_path.h"
#include "policy.h" /* host policy: sysctls, --allow-from / --deny-from */

SEC("xdp")
int redirect_echo(struct xdp_md *ctx)
{
	struct echo_request req;
	struct reply_macs macs;
	struct reply_meta *meta;
	void *data;
	__u32 verdict;
	long action;

	if (!find_owned_echo(ctx, &req)) {
		count(COUNTER_PASSED);
		return XDP_PASS;
	}
	if (policy_passes(ctx, req.l3, req.ipv6))
		return XDP_PASS; /* host policy: the kernel decides (counted) */

	/* Would Linux answer it, and to which MAC? Anything but "yes, by
	 * this interface, to this neighbour" is the kernel's to handle. */
	verdict = reply_path(ctx, &req, (void *)(long)ctx->data_end, &macs);
	if (verdict != COUNTER_HANDLED) {
		count(verdict);
		return XDP_PASS;
	}

	/*
	 * Hand the MACs to user space in front of the frame (struct
	 * reply_meta). This moves data_meta, so every packet pointer taken
	 * before is invalid from here on. A device without room or support
	 * for metadata gets its requests answered by the kernel.
	 */
	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(*meta))) {
		count(COUNTER_FIB_OTHER);
		return XDP_PASS;
	}
	meta = (void *)(long)ctx->data_meta;
	data = (void *)(long)ctx->data;
	if (!HAS_ROOM(meta, sizeof(*meta), data)) {
		count(COUNTER_FIB_OTHER);
		return XDP_PASS;
	}
	__builtin_memcpy(meta->dst_mac, macs.dst, ETH_ALEN);
	__builtin_memcpy(meta->src_mac, macs.src, ETH_ALEN);
	meta->hop_limit = macs.hop_limit;
	meta->pad[0] = 0;
	meta->pad[1] = 0;
	meta->pad[2] = 0;
	meta->magic = REPLY_META_MAGIC;

	/*
	 * Hand the frame to the AF_XDP socket of the queue it arrived on. An
	 * AF_XDP socket is bound to one (interface, queue) pair, so the key
	 * must be the RX queue index. If no socket is registered at that
	 * index, the lower bits of the flags argument are returned instead:
	 * XDP_PASS, so the kernel still answers the ping.
	 */
	action = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
	count(action == XDP_REDIRECT ? COUNTER_REDIRECTED : COUNTER_NO_SOCKET);
	return action;
}

/* GPL-compatible, so that the program may call GPL-only helpers. */
char LICENSE[] SEC("license") = "Dual MIT/GPL";
