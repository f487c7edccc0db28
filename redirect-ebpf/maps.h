/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * maps.h - the maps every XDP program of the project shares, and count().
 *
 * Included by echo_filter.h (the engines: redirect.c, echo_tx.c,
 * echo_drop.c) and by flood_replies.c (the load generator's reply capture),
 * so that all of them have the same maps with the same layouts
 * (redirect.h), filled by the same user-space code
 * (afxdp-responder/src/loader/program.rs). Each program includes it once, so
 * each compiled object gets its own copy of the maps.
 *
 * A program that redirects to AF_XDP sockets defines MAPS_WITH_XSKS before
 * including this header to get the `xsks` map as well.
 */
#ifndef AFXDP_RESPONDER_MAPS_H
#define AFXDP_RESPONDER_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "redirect.h"

/* The addresses we answer for, per VLAN. See struct owned_key. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, OWNED_ADDRS_MAX_ENTRIES);
	__type(key, struct owned_key);
	__type(value, __u32);
} owned_addrs SEC(".maps");

/* One entry: the interface's MAC and the reply TTL / hop limit. See struct
 * redirect_config. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct redirect_config);
} config SEC(".maps");

/* Per-CPU counters: every CPU increments its own slot without atomics;
 * user space adds the slots up. See enum redirect_counter. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

#ifdef MAPS_WITH_XSKS
/* RX queue index -> AF_XDP socket. The loader puts a socket at index q
 * once the socket is bound to queue q of this interface. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, XSKS_MAX_ENTRIES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");
#endif

static __always_inline void count(__u32 index)
{
	__u64 *value = bpf_map_lookup_elem(&counters, &index);

	/* The verifier insists on the NULL check even though an array lookup
	 * with an index below max_entries cannot fail. */
	if (value)
		*value += 1;
}

#endif /* AFXDP_RESPONDER_MAPS_H */
