/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * flood_inject.h - the load generator's kernel-side injector
 * (`afxdp-responder flood --inject live`), part of flood_replies.c.
 *
 * User space runs the flood_replies program with BPF_PROG_RUN and the flag
 * BPF_F_TEST_XDP_LIVE_FRAMES (as xdp-trafficgen does), without an ingress
 * interface: the kernel then runs it as if the frames arrived on the
 * namespace's loopback device, which is how the program tells an injection
 * (ingress_ifindex == inject_config.from_ifindex) from a frame really
 * received on the generator's interface. The kernel runs it `repeat` times on
 * frames from a page pool it initialised from one template request, and
 * transmits what it redirects, in batches of `batch_size`. No user-space TX
 * ring is involved.
 *
 * Why inside flood_replies and not a program of its own: a test run of an
 * XDP program that is not attached anywhere adds it to the kernel's XDP
 * dispatcher and removes it again, each time waiting for an RCU grace period
 * (synchronize_rcu, ~30 ms seen here); the attached capture program is in
 * the dispatcher already, so its runs cost no such wait.
 *
 * The page pool recycles its pages within a run without re-copying the
 * template: a page may come back holding what the responder made of it (a
 * reply, with MACs, addresses and type swapped). So every run rewrites
 * everything a responder may have touched: the Ethernet, IP and ICMP headers
 * from the template (`inject_config.head`), then the 16-byte stamp (send time
 * from bpf_ktime_get_ns(), i.e. CLOCK_MONOTONIC, and the sequence number,
 * both big-endian), the ICMP sequence (low 16 bits of the sequence number)
 * and the ICMP checksum, computed from the template's sum of everything else
 * (`inject_config.base_sum`) plus the words written here. The payload after
 * the stamp is never written by a responder and stays the template's.
 *
 * One generator thread per CPU: the kernel runs a test run without migrating
 * it, so the CPU number selects the thread's slot in both maps:
 *   inject_config  written once per thread by user space
 *   inject_state   the thread's next sequence number (= frames generated)
 */
#ifndef FLOOD_INJECT_H
#define FLOOD_INJECT_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Bytes of the template rewritten on every run (the largest header block:
 * Ethernet 14 + IPv6 40 + ICMP 8). */
#define INJECT_HEAD_MAX 62
#define STAMP_LEN 16

/* CPUs (slots) an injector can run on. */
#define INJECT_MAX_CPUS 256

/* Must match config_value() in afxdp-responder/src/loader/inject.rs. */
struct inject_config {
	__u8 head[INJECT_HEAD_MAX + 2];
	/* Offset of the ICMP header: 34 (IPv4) or 54 (IPv6). */
	__u32 icmp_off;
	/* One's-complement sum of the ICMP message (IPv6: and pseudo-header)
	 * with checksum, sequence and stamp zero, folded to 16 bits, in the
	 * byte order of a native 16-bit load from the packet. */
	__u32 base_sum;
	/* Every N-th request (sequence + 1 divisible by N) gets a wrong ICMP
	 * checksum on purpose; 0: never. */
	__u64 bad_every;
	/* Frames whose ingress_ifindex is this are injections (0: slot unused). */
	__u32 from_ifindex;
	/* Interface to send the requests out of. */
	__u32 out_ifindex;
};

struct inject_state {
	__u64 next_seq;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, INJECT_MAX_CPUS);
	__type(key, __u32);
	__type(value, struct inject_config);
} inject_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, INJECT_MAX_CPUS);
	__type(key, __u32);
	__type(value, struct inject_state);
} inject_state SEC(".maps");

static __always_inline __u32 words64(__u64 v)
{
	return (__u32)(v & 0xffff) + (__u32)((v >> 16) & 0xffff) + (__u32)((v >> 32) & 0xffff) +
	       (__u32)(v >> 48);
}

/* The injector's config for this CPU if `ctx` is an injection (a test run
 * from the loopback device), else NULL. */
static __always_inline struct inject_config *injection(struct xdp_md *ctx)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct inject_config *cfg = bpf_map_lookup_elem(&inject_config, &cpu);

	if (cfg && cfg->from_ifindex && ctx->ingress_ifindex == cfg->from_ifindex)
		return cfg;
	return NULL;
}

/* Turns the frame into the next request of this CPU's injector and sends it
 * out of cfg->out_ifindex. */
static __always_inline int inject(struct xdp_md *ctx, struct inject_config *cfg)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 cpu = bpf_get_smp_processor_id();
	struct inject_state *state = bpf_map_lookup_elem(&inject_state, &cpu);
	__u8 *icmp;

	if (!state)
		return XDP_ABORTED;
	/* The header block, then the stamp: 58 bytes (IPv4), 78 (IPv6). */
	if (cfg->icmp_off == 54) {
		if (data + 54 + 8 + STAMP_LEN > data_end)
			return XDP_ABORTED;
		__builtin_memcpy(data, cfg->head, 62);
		icmp = (__u8 *)data + 54;
	} else if (cfg->icmp_off == 34) {
		if (data + 34 + 8 + STAMP_LEN > data_end)
			return XDP_ABORTED;
		__builtin_memcpy(data, cfg->head, 42);
		icmp = (__u8 *)data + 34;
	} else {
		return XDP_ABORTED;
	}

	__u64 seq = state->next_seq;
	state->next_seq = seq + 1;
	__u64 ts_be = bpf_cpu_to_be64(bpf_ktime_get_ns());
	__u64 seq_be = bpf_cpu_to_be64(seq);
	__u16 seq16_be = bpf_htons((__u16)seq);

	__builtin_memcpy(icmp + 6, &seq16_be, 2);
	__builtin_memcpy(icmp + 8, &ts_be, 8);
	__builtin_memcpy(icmp + 16, &seq_be, 8);

	/* Native loads of big-endian words sum to the native load of the
	 * big-endian sum: the order of the bytes does not matter as long as
	 * every term is taken the same way. */
	__u32 sum = cfg->base_sum + seq16_be + words64(ts_be) + words64(seq_be);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	__u16 csum = ~(__u16)sum;
	if (cfg->bad_every && (seq + 1) % cfg->bad_every == 0)
		csum ^= 0x5a5a;
	__builtin_memcpy(icmp + 2, &csum, 2);

	return bpf_redirect(cfg->out_ifindex, 0);
}

#endif /* FLOOD_INJECT_H */
