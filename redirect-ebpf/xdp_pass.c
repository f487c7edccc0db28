// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * xdp_pass.c - passes every frame. The lab attaches it to the CLIENT end of
 * a veth pair when the responder end answers with XDP_TX (--engine xdp-tx):
 * a veth delivers frames that an XDP program transmits (XDP_TX, or a
 * redirect out of the device) only into a peer that runs XDP itself, and any
 * program, even this one, turns that on.
 */

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	(void)ctx;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
