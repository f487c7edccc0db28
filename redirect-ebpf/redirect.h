/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * redirect.h - what the XDP program and the user-space loader agree on.
 *
 * Everything in this file is part of the contract with
 * afxdp-responder/src/loader.rs, which mirrors these layouts byte for byte
 * (the loader writes them as plain byte arrays, so there is no code
 * generation between the two sides). Change one side, change the other.
 *
 * Byte order: fields that come from the wire (addresses) are stored in
 * network byte order, exactly as they appear in the packet. Fields that are
 * numbers for the program (vlan_id, counter values) are in host byte order.
 */
#ifndef AFXDP_RESPONDER_REDIRECT_H
#define AFXDP_RESPONDER_REDIRECT_H

#include <linux/types.h>

/*
 * Value of the `config` map (BPF_MAP_TYPE_ARRAY, one entry, key 0).
 *
 *   offset 0..6  mac  the MAC address of the interface the program is
 *                     attached to; only frames sent to it are answered
 *   offset 6..8  pad  zero
 *
 * An all-zero MAC (the state before the loader fills the map) matches no
 * real frame, so an unconfigured program passes everything to the kernel.
 */
struct redirect_config {
	__u8 mac[6];
	__u8 pad[2];
};

/*
 * Key of the `owned_addrs` map (BPF_MAP_TYPE_HASH): the addresses we answer
 * for, per VLAN.
 *
 *   offset  0..2   vlan_id  host byte order; 0 = untagged or priority-tagged
 *                           (802.1p, VLAN id 0) frames, N = frames tagged
 *                           with VLAN id N
 *   offset  2..4   pad      zero (the hash covers every byte of the key)
 *   offset  4..20  addr     IPv6 address, network byte order; an IPv4 address
 *                           a.b.c.d is stored v4-mapped: ::ffff:a.b.c.d
 *
 * The value is a __u32 that is reserved and written as 0.
 */
struct owned_key {
	__u16 vlan_id;
	__u16 pad;
	__u8 addr[16];
};

/*
 * Indexes into the `counters` map (BPF_MAP_TYPE_PERCPU_ARRAY, __u64 values,
 * one slot per CPU; user space sums them).
 */
enum redirect_counter {
	/* an owned echo request went to the AF_XDP socket of its RX queue */
	COUNTER_REDIRECTED = 0,
	/* an owned echo request arrived on a queue with no socket in `xsks`:
	 * bpf_redirect_map() returned its fallback, XDP_PASS */
	COUNTER_NO_SOCKET = 1,
	/* anything else (not an echo request for an owned address, or a form
	 * we leave to the kernel): XDP_PASS */
	COUNTER_PASSED = 2,
	COUNTER_MAX = 3,
};

/* Capacity of the maps the loader fills. */
#define XSKS_MAX_ENTRIES 64	  /* RX queues that can have a socket */
#define OWNED_ADDRS_MAX_ENTRIES 1024 /* (vlan, address) pairs */

#endif /* AFXDP_RESPONDER_REDIRECT_H */
