/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * policy.h - host policy for owned echo requests: the sysctls that tell the
 * kernel to ignore echo requests, and --allow-from / --deny-from.
 *
 * An engine program calls policy_passes() once, right after
 * find_owned_echo() said "an owned echo request". When it returns 1 the
 * program returns XDP_PASS: the kernel then does what it would do without
 * the responder (ignore the request when the sysctl says so; run its
 * firewall, which XDP runs before, and answer or not). Nothing here drops
 * a frame: the kernel stays the judge.
 *
 * Maps (filled and kept current by afxdp-responder/src/policy.rs and the
 * loader, program.rs):
 *   host_policy      ARRAY[1]      struct host_policy, rewritten within
 *                                  500 ms when a sysctl changes
 *   allow_from       LPM_TRIE      --allow-from CIDRs
 *   deny_from        LPM_TRIE      --deny-from CIDRs
 *   rate_buckets     LRU_HASH      per-source rate limit state
 *                                  (--rate-limit-per-source): source
 *                                  address -> next allowed time
 *   policy_counters  PERCPU_ARRAY  why a request was passed (enum
 *                                  policy_counter); each is also counted
 *                                  in COUNTER_PASSED
 *
 * Both tries hold IPv6 keys; an IPv4 CIDR a.b.c.d/n is stored v4-mapped,
 * ::ffff:a.b.c.d/(96 + n), like the owned_addrs keys, so one lookup serves
 * both families.
 */
#ifndef AFXDP_RESPONDER_POLICY_H
#define AFXDP_RESPONDER_POLICY_H

#include <linux/bpf.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>

#include "maps.h"

/*
 * Value of `host_policy` (key 0). All zero (before the loader writes it)
 * means "no policy": every owned request is handled.
 *
 *   offset 0  ignore_v4   net.ipv4.icmp_echo_ignore_all is set: pass
 *                         every IPv4 echo request to the kernel
 *   offset 1  ignore_v6   net.ipv6.icmp.echo_ignore_all is set: the same
 *                         for ICMPv6
 *   offset 2  allow_list  --allow-from was given: a source that is not in
 *                         allow_from is passed
 *   offset 3  pad         zero
 *   offset 4  pad2        zero
 *   offset 8  rate_interval_ns   --rate-limit-per-source N: 1e9 / N, the
 *                         time one request "costs"; 0 = no rate limit
 *   offset 16 rate_burst_ns      how far ahead of now a source's next
 *                         allowed time may run before requests are passed:
 *                         (burst - 1) * rate_interval_ns
 */
struct host_policy {
	__u8 ignore_v4;
	__u8 ignore_v6;
	__u8 allow_list;
	__u8 pad;
	__u32 pad2;
	__u64 rate_interval_ns;
	__u64 rate_burst_ns;
};

/* Key of allow_from / deny_from: the prefix length in bits (host byte
 * order, as BPF_MAP_TYPE_LPM_TRIE wants it) and the address. */
struct policy_lpm_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* Indexes into policy_counters: why an owned request was passed. */
enum policy_counter {
	POLICY_IGNORE_ALL = 0,	/* the echo_ignore_all sysctl of its family */
	POLICY_DENIED = 1,	/* the source is in --deny-from */
	POLICY_NOT_ALLOWED = 2, /* --allow-from given, the source not in it */
	POLICY_RATE_LIMITED = 3, /* over --rate-limit-per-source */
	POLICY_COUNTER_MAX = 4,
};

#define POLICY_LPM_MAX_ENTRIES 1024
#define RATE_BUCKETS_MAX_ENTRIES 16384 /* sources tracked (least recent evicted) */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct host_policy);
} host_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, POLICY_LPM_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct policy_lpm_key);
	__type(value, __u32);
} allow_from SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, POLICY_LPM_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct policy_lpm_key);
	__type(value, __u32);
} deny_from SEC(".maps");

/* Source address (as in struct policy_lpm_key) -> the time (bpf_ktime_get_ns)
 * from which its next request is within its rate: the "theoretical arrival
 * time" of GCRA, the token bucket written as one number. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, RATE_BUCKETS_MAX_ENTRIES);
	__type(key, __u8[16]);
	__type(value, __u64);
} rate_buckets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, POLICY_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} policy_counters SEC(".maps");

static __always_inline int policy_pass(__u32 reason)
{
	__u64 *value = bpf_map_lookup_elem(&policy_counters, &reason);

	if (value)
		*value += 1;
	count(COUNTER_PASSED);
	return 1;
}

/*
 * GCRA (a token bucket as one timestamp): a source may send when its next
 * allowed time `tat` is at most rate_burst_ns ahead of now; each accepted
 * request moves tat on by rate_interval_ns. Two CPUs updating one source at
 * the same instant may both pass: the limit is approximate by at most one
 * request per CPU, which is fine for its purpose (what exceeds it is passed
 * to the kernel, not lost).
 */
static __always_inline int over_rate(const __u8 *addr,
				     const struct host_policy *policy)
{
	__u64 now = bpf_ktime_get_ns();
	__u64 *tat = bpf_map_lookup_elem(&rate_buckets, addr);
	__u64 next;

	if (!tat) {
		next = now + policy->rate_interval_ns;
		bpf_map_update_elem(&rate_buckets, addr, &next, BPF_ANY);
		return 0;
	}
	next = *tat > now ? *tat : now;
	if (next - now > policy->rate_burst_ns)
		return 1;
	*tat = next + policy->rate_interval_ns;
	return 0;
}

/*
 * 1 when host policy says the owned echo request at `l3` (IPv4 when
 * `ipv6` is 0) must go to the kernel; the reason is counted, and so is
 * COUNTER_PASSED. 0: handle it.
 */
static __always_inline int policy_passes(struct xdp_md *ctx, void *l3, int ipv6)
{
	void *data_end = (void *)(long)ctx->data_end;
	const struct host_policy *policy;
	struct policy_lpm_key key;
	__u32 zero = 0;

	policy = bpf_map_lookup_elem(&host_policy, &zero);
	if (!policy)
		return 0;
	if (ipv6 ? policy->ignore_v6 : policy->ignore_v4)
		return policy_pass(POLICY_IGNORE_ALL);

	__builtin_memset(&key, 0, sizeof(key));
	if (ipv6) {
		struct ipv6hdr *ip6 = l3;

		if ((void *)(ip6 + 1) > data_end)
			return 0; /* cannot happen: the filter checked it */
		__builtin_memcpy(key.addr, &ip6->saddr, 16);
		key.prefixlen = 128;
	} else {
		struct iphdr *ip = l3;

		if ((void *)(ip + 1) > data_end)
			return 0;
		key.addr[10] = 0xff;
		key.addr[11] = 0xff;
		__builtin_memcpy(&key.addr[12], &ip->saddr, 4);
		key.prefixlen = 128;
	}
	if (bpf_map_lookup_elem(&deny_from, &key))
		return policy_pass(POLICY_DENIED);
	if (policy->allow_list && !bpf_map_lookup_elem(&allow_from, &key))
		return policy_pass(POLICY_NOT_ALLOWED);
	if (policy->rate_interval_ns && over_rate(key.addr, policy))
		return policy_pass(POLICY_RATE_LIMITED);
	return 0;
}

#endif /* AFXDP_RESPONDER_POLICY_H */
