// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * xsk_all.c - the smallest useful AF_XDP program, for the first example
 * (examples/rxdrop.rs, docs/learn/): every frame that arrives on RX queue q
 * goes to the AF_XDP socket registered at index q of the XSKMAP `xsks`.
 *
 * Everything means everything: ARP and neighbour discovery too, so while it
 * is attached the kernel of this host sees no frame of a served queue (the
 * lab gives the client a permanent neighbour entry for that reason). The
 * responder's own program (redirect.c) redirects only echo requests.
 */

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* RX queue index -> AF_XDP socket; user space puts its socket at index q
 * once it is bound to queue q. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

SEC("xdp")
int xsk_all(struct xdp_md *ctx)
{
	/* No socket at this index: the flags' low bits are the verdict,
	 * XDP_PASS, and the kernel gets the frame as usual. */
	return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
