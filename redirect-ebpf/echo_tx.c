// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * echo_tx.c - --engine xdp-tx: the in-kernel echo responder.
 *
 * The seed article's second program, finished. It turns an echo request for
 * one of our addresses into its echo reply in place and sends it back out of
 * the interface it came in on (XDP_TX), without user space and without the
 * kernel's network stack. The reply follows the same rules as the AF_XDP
 * path (echo-wire/src/respond.rs) and Linux's own replies:
 *
 *   Ethernet  to the neighbour-table MAC of the reply's next hop, from the
 *             egress device's MAC (reply_path.h); a VLAN tag is kept
 *   IPv4      addresses swapped, TTL of the reply's route (`ip route ...
 *             hoplimit N`) or else from the config map (the host default,
 *             net.ipv4.ip_default_ttl), DF cleared, a fresh identification
 *             (per-CPU counter), TOS kept, header checksum updated
 *   IPv6      addresses swapped, hop limit of the reply's route or else
 *             from the config map (the interface's hop_limit), traffic class
 *             kept, flow label by the kernel's policy (reply_flow_label(),
 *             the same as respond()'s)
 *   ICMP      type 8 -> 0 (ICMPv6 128 -> 129); code, identifier, sequence
 *             and data unchanged; checksum updated
 *   length    the Ethernet trailer padding after the IP packet is cut off
 *
 * Which requests it answers is decided by find_owned_echo() in
 * echo_filter.h, the same filter the redirect program uses.
 *
 * Checksums. The seed stops at "wrong icmp cksum" because it changes the
 * ICMP type without touching the checksum. Here:
 *
 *  1. The request's checksums are VERIFIED first (IPv4 header checksum over
 *     the 20-byte header; ICMP checksum over the whole message, for ICMPv6
 *     with the pseudo-header). A request with a wrong checksum is dropped
 *     (XDP_DROP) and counted as bad_checksum, as the kernel drops it
 *     (IcmpInCsumErrors). Without this, the incremental update below would
 *     carry the error into the reply and echo corrupted data back as if it
 *     were what the sender sent.
 *
 *     The sum uses bpf_csum_diff(), which sums a buffer of a size known to
 *     the verifier. A message of any length is cut into 256-byte pieces
 *     (at most CSUM_MAX_CHUNKS of them), then one piece each of 128, 64,
 *     32, 16, 8 and 4 bytes as the remaining length's bits say, then the
 *     last 0 to 3 bytes by hand. Every piece has a constant size and its
 *     own bounds check, which is what the verifier can prove safe. An ICMP
 *     message longer than that (> 4351 bytes, only with jumbo frames) is
 *     passed to the kernel, which answers it.
 *
 *  2. The reply's checksums are UPDATED, not recomputed (RFC 1624,
 *     equation 3: HC' = ~(~HC + ~m + m') for each 16-bit word m that
 *     changes to m'). Swapping addresses changes no sum (the same words are
 *     summed in another order), so IPv4 updates the header checksum for
 *     three words (identification, flags/fragment offset, TTL/protocol) and
 *     the ICMP checksum for one (type/code); ICMPv6 updates its checksum
 *     for type/code only (the hop limit is not in the pseudo-header).
 *
 * Maps (layouts in redirect.h): owned_addrs, config, counters as in every
 * engine (echo_filter.h), and ip_ids for the IPv4 identification.
 *
 * Counters: COUNTER_HANDLED = replied, COUNTER_PASSED = passed to the
 * kernel, COUNTER_BAD_CHECKSUM = dropped for a wrong checksum.
 *
 * On veth in native mode, an XDP_TX frame reaches the peer only if the peer
 * has an XDP program attached too (any, XDP_PASS is enough); generic (skb)
 * mode and real NICs need nothing.
 */

#include "echo_filter.h"
#include "reply_path.h"
#include "policy.h"

/* Per-CPU source of IPv4 identifications: each CPU counts up from its own
 * random start, without atomics. Two CPUs may hand the same value to the
 * same destination; that matters only if both replies are fragmented on the
 * way and their fragments are mixed up, which is what DF-clear replies
 * risk with Linux too (it hashes per destination, also without a
 * guarantee). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} ip_ids SEC(".maps");

/* ------------------------------------------------------------------------
 * One's-complement arithmetic (RFC 1071)
 *
 * All 16-bit words here are taken as they lie in memory (network byte
 * order), and so are the sums: the one's-complement sum does not depend on
 * the byte order as long as every word uses the same one.
 * ------------------------------------------------------------------------ */

/* Folds a 32-bit (or wider) partial sum into 16 bits. */
static __always_inline __u16 csum_fold(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* RFC 1624, equation 3: the checksum `*check` of some data in which the
 * word `old` became `new`. */
static __always_inline void csum_replace(__u16 *check, __u16 old, __u16 new)
{
	__u32 sum = (__u16)~*check;

	sum += (__u16)~old;
	sum += new;
	*check = ~csum_fold(sum);
}

/* 256-byte pieces; CSUM_MAX_CHUNKS of them plus up to 255 bytes is the
 * longest ICMP message we verify (4351 bytes). */
#define CSUM_CHUNK 256
#define CSUM_MAX_CHUNKS 16
#define CSUM_MAX_LEN (CSUM_MAX_CHUNKS * CSUM_CHUNK + CSUM_CHUNK - 1)

/* Adds `size` bytes at `*pos` to `*sum` if bit `size` is set in `len`, and
 * moves `*pos` past them. `size` is a constant, so the verifier knows how
 * much bpf_csum_diff() reads. Returns 0, or -1 if the frame ends early. */
#define SUM_PIECE(size)                                                       \
	do {                                                                  \
		if (len & (size)) {                                           \
			if (!HAS_ROOM(pos, size, data_end))                   \
				return -1;                                    \
			ret = bpf_csum_diff(0, 0, pos, size, sum);            \
			if (ret < 0)                                          \
				return -1;                                    \
			sum = ret;                                            \
			pos += size;                                          \
		}                                                             \
	} while (0)

/*
 * Adds `len` bytes starting at `msg` to the partial sum `*acc`. `msg` must be
 * at an even offset from the start of what is being summed (here: the start
 * of the ICMP message), which the pieces keep: all but the last are a
 * multiple of 4 bytes long. Returns 0, or -1 if the message is too long to
 * verify or the frame ends before it does.
 */
static __always_inline int sum_bytes(void *msg, __u32 len, void *data_end,
				     __u32 *acc)
{
	void *pos = msg;
	__u32 sum = *acc;
	__u8 tail[4] = { 0, 0, 0, 0 };
	__s64 ret;
	int i;

	if (len > CSUM_MAX_LEN)
		return -1;

	for (i = 0; i < CSUM_MAX_CHUNKS; i++) {
		if (len < CSUM_CHUNK)
			break;
		if (!HAS_ROOM(pos, CSUM_CHUNK, data_end))
			return -1;
		ret = bpf_csum_diff(0, 0, pos, CSUM_CHUNK, sum);
		if (ret < 0)
			return -1;
		sum = ret;
		pos += CSUM_CHUNK;
		len -= CSUM_CHUNK;
	}

	/* len < 256: the bits of len say which smaller pieces remain. */
	SUM_PIECE(128);
	SUM_PIECE(64);
	SUM_PIECE(32);
	SUM_PIECE(16);
	SUM_PIECE(8);
	SUM_PIECE(4);

	/* The last 0 to 3 bytes, padded with zeros to a 4-byte word (RFC 1071:
	 * an odd last byte is summed as if followed by a zero byte). */
	if (len & 2) {
		if (!HAS_ROOM(pos, 2, data_end))
			return -1;
		tail[0] = ((__u8 *)pos)[0];
		tail[1] = ((__u8 *)pos)[1];
		pos += 2;
		if (len & 1) {
			if (!HAS_ROOM(pos, 1, data_end))
				return -1;
			tail[2] = ((__u8 *)pos)[0];
		}
	} else if (len & 1) {
		if (!HAS_ROOM(pos, 1, data_end))
			return -1;
		tail[0] = ((__u8 *)pos)[0];
	}
	if (len & 3) {
		ret = bpf_csum_diff(0, 0, (__be32 *)tail, sizeof(tail), sum);
		if (ret < 0)
			return -1;
		sum = ret;
	}

	*acc = sum;
	return 0;
}

/* Verdicts of the checksum checks. */
enum csum_check {
	CSUM_OK = 0,	    /* the checksums are right: answer */
	CSUM_BAD = 1,	    /* a checksum is wrong: drop */
	CSUM_UNCHECKED = 2, /* too long to verify here: let the kernel answer */
};

/* ------------------------------------------------------------------------
 * IPv4
 * ------------------------------------------------------------------------ */

static __always_inline enum csum_check ipv4_check(struct iphdr *ip,
						  void *data_end)
{
	struct icmp_common *icmp = (void *)(ip + 1);
	__u32 sum = 0;
	__s64 ret;

	if (!HAS_ROOM(ip, sizeof(*ip), data_end))
		return CSUM_UNCHECKED;

	/* The header, checksum field included, sums to 0xffff when right. */
	ret = bpf_csum_diff(0, 0, (__be32 *)ip, sizeof(*ip), 0);
	if (ret < 0)
		return CSUM_UNCHECKED;
	if (csum_fold(ret) != 0xffff)
		return CSUM_BAD;

	/* The ICMP message: everything after the header, as tot_len says. */
	if (sum_bytes(icmp, packet_len16(ip->tot_len) - sizeof(*ip), data_end,
		      &sum))
		return CSUM_UNCHECKED;
	return csum_fold(sum) == 0xffff ? CSUM_OK : CSUM_BAD;
}

static __always_inline void ipv4_reply(struct iphdr *ip, void *data_end,
				       __u8 ttl)
{
	struct icmp_common *icmp = (void *)(ip + 1);
	__u16 *word = (__u16 *)ip;
	__u16 old, *type_code = (__u16 *)icmp;
	__u32 zero = 0, *next_id;
	__be32 addr;

	if (!HAS_ROOM(ip, sizeof(*ip), data_end) ||
	    !HAS_ROOM(icmp, ICMP_ECHO_HDR_LEN, data_end))
		return; /* cannot happen: the filter checked both */

	addr = ip->saddr;
	ip->saddr = ip->daddr;
	ip->daddr = addr;

	/* Word 2: identification. A fresh one, as Linux gives its replies. */
	next_id = bpf_map_lookup_elem(&ip_ids, &zero);
	if (next_id) {
		if (*next_id == 0)
			*next_id = bpf_get_prandom_u32() | 1;
		old = word[2];
		ip->id = bpf_htons((__u16)*next_id);
		*next_id += 1;
		csum_replace(&ip->check, old, word[2]);
	}

	/* Word 3: flags and fragment offset. The filter let only unfragmented
	 * packets through, so this clears DF and leaves 0. */
	old = word[3];
	ip->frag_off = 0;
	csum_replace(&ip->check, old, word[3]);

	/* Word 4: TTL and protocol. */
	old = word[4];
	ip->ttl = ttl;
	csum_replace(&ip->check, old, word[4]);

	/* ICMP word 0: type and code. */
	old = *type_code;
	icmp->type = ICMP_ECHOREPLY;
	csum_replace(&icmp->checksum, old, *type_code);
}

/* ------------------------------------------------------------------------
 * IPv6
 * ------------------------------------------------------------------------ */

static __always_inline enum csum_check ipv6_check(struct ipv6hdr *ip6,
						  void *data_end)
{
	/* The pseudo-header's upper-layer length and next header, each as a
	 * 32-bit big-endian word (RFC 8200, section 8.1). */
	__be32 length_and_next[2];
	__u32 sum = 0;
	__u32 payload_len;
	__s64 ret;

	if (!HAS_ROOM(ip6, sizeof(*ip6), data_end))
		return CSUM_UNCHECKED;
	payload_len = packet_len16(ip6->payload_len);

	/* Pseudo-header: source and destination address (32 bytes that lie
	 * next to each other in the header), length, next header. */
	ret = bpf_csum_diff(0, 0, (__be32 *)&ip6->saddr, 32, 0);
	if (ret < 0)
		return CSUM_UNCHECKED;
	length_and_next[0] = bpf_htonl(payload_len);
	length_and_next[1] = bpf_htonl(IPPROTO_ICMPV6);
	ret = bpf_csum_diff(0, 0, length_and_next, sizeof(length_and_next),
			    ret);
	if (ret < 0)
		return CSUM_UNCHECKED;
	sum = ret;

	if (sum_bytes(ip6 + 1, payload_len, data_end, &sum))
		return CSUM_UNCHECKED;
	return csum_fold(sum) == 0xffff ? CSUM_OK : CSUM_BAD;
}

/* The 128-bit product of a and b folded to 64 bits (high half ^ low half),
 * from four 32x32->64 products: BPF has no 128-bit multiply. The same value
 * as echo-wire's folded_multiply(). */
static __always_inline __u64 folded_multiply(__u64 a, __u64 b)
{
	__u64 a0 = a & 0xffffffff, a1 = a >> 32;
	__u64 b0 = b & 0xffffffff, b1 = b >> 32;
	__u64 p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
	__u64 mid = (p00 >> 32) + (p01 & 0xffffffff) + (p10 & 0xffffffff);
	__u64 lo = (p00 & 0xffffffff) | (mid << 32);
	__u64 hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);

	return lo ^ hi;
}

static __always_inline __u64 be64_word(const __u8 *bytes)
{
	__u64 w = 0;

#pragma unroll
	for (int i = 0; i < 8; i++)
		w = (w << 8) | bytes[i];
	return w;
}

/*
 * The reply's flow label, by the kernel's policy as echo-wire's
 * FlowLabelPolicy::reply_label() implements it (the same hash, the same key
 * from the config map, so both engines give a flow the same label): the
 * request's label when reflecting and it has one; else, with auto labels, a
 * keyed hash of the reply's flow (its source = the request's destination,
 * its destination = the request's source, next header 58, type 129),
 * never 0, bit 19 set with state_ranges; else 0.
 */
struct flow_query {
	__u64 key[2];
	__u8 reply_src[16]; /* the request's destination */
	__u8 reply_dst[16]; /* the request's source */
	__u32 request_label;
	__u32 flags;
};

/*
 * A global (not inlined) function, verified once on its own: inlined, its
 * branches and loops push the program's verifier states past the
 * 1M-instruction limit of older verifiers (Linux 6.1).
 */
__attribute__((noinline)) __u32 flow_label_of(struct flow_query *q)
{
	__u64 k0, k1, m, m_final, h, words[5];
	__u32 label;

	if (!q)
		return 0;
	if ((q->flags & FLOW_REFLECT) && q->request_label)
		return q->request_label;
	if (!(q->flags & FLOW_AUTO))
		return 0;
	k0 = q->key[0];
	k1 = q->key[1];
	m = (k0 ^ 0x243f6a8885a308d3ULL) | (1ULL << 63) | 1;
	m_final = (k1 ^ 0x13198a2e03707344ULL) | (1ULL << 63) | 1;
	h = k1 ^ ((k0 << 32) | (k0 >> 32)) ^ 0xa4093822299f31d0ULL;
	words[0] = be64_word(&q->reply_src[0]);
	words[1] = be64_word(&q->reply_src[8]);
	words[2] = be64_word(&q->reply_dst[0]);
	words[3] = be64_word(&q->reply_dst[8]);
	words[4] = (58ULL << 8) | 129;
#pragma unroll
	for (int i = 0; i < 5; i++)
		h = folded_multiply(h ^ words[i], m);
	h = folded_multiply(h, m_final);
	label = (__u32)(h ^ (h >> 32)) & 0xfffff;
	if (label == 0)
		label = 1;
	if (q->flags & FLOW_STATE_RANGES)
		label |= 0x80000;
	return label;
}

static __always_inline __u32 reply_flow_label(const struct ipv6hdr *ip6,
					      const struct redirect_config *cfg)
{
	struct flow_query q;

	__builtin_memset(&q, 0, sizeof(q));
	q.key[0] = cfg->flow_key[0];
	q.key[1] = cfg->flow_key[1];
	__builtin_memcpy(q.reply_src, &ip6->daddr, 16);
	__builtin_memcpy(q.reply_dst, &ip6->saddr, 16);
	q.request_label = bpf_ntohl(*(const __be32 *)ip6) & 0xfffff;
	q.flags = cfg->flow_flags;
	return flow_label_of(&q) & 0xfffff;
}

static __always_inline void ipv6_reply(struct ipv6hdr *ip6, void *data_end,
				       __u8 hop_limit, __u32 flow_label)
{
	struct icmp_common *icmp = (void *)(ip6 + 1);
	__u16 old, *type_code = (__u16 *)icmp;
	struct in6_addr addr;

	if (!HAS_ROOM(ip6, sizeof(*ip6), data_end) ||
	    !HAS_ROOM(icmp, ICMP_ECHO_HDR_LEN, data_end))
		return; /* cannot happen: the filter checked both */

	addr = ip6->saddr;
	ip6->saddr = ip6->daddr;
	ip6->daddr = addr;
	ip6->hop_limit = hop_limit;
	/* The flow label (no checksum covers it): version and traffic class
	 * stay, the label is the policy's, computed from the request. */
	*(__be32 *)ip6 = (*(__be32 *)ip6 & bpf_htonl(0xfff00000)) |
			 bpf_htonl(flow_label & 0xfffff);

	old = *type_code;
	icmp->type = ICMPV6_ECHO_REPLY;
	csum_replace(&icmp->checksum, old, *type_code);
}

/* ------------------------------------------------------------------------
 * The program
 * ------------------------------------------------------------------------ */

SEC("xdp")
int tx_echo(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct echo_request req;
	enum csum_check check;
	struct reply_macs macs;
	__u32 verdict;
	__u32 flow_label = 0;
	__u32 ip_len;
	long padding;

	if (!find_owned_echo(ctx, &req))
		goto pass;
	if (policy_passes(ctx, req.l3, req.ipv6))
		return XDP_PASS; /* host policy: the kernel decides (counted) */
	if (!HAS_ROOM(eth, sizeof(*eth), data_end))
		goto pass; /* cannot happen: the filter checked it */

	/* Would Linux answer it, and to which MAC? (reply_path.h) Asked
	 * before the checksums are verified: a request the kernel answers
	 * itself is also the kernel's to drop for a bad checksum. (After the
	 * checksum loop, the lookup's branches multiply the verifier's states
	 * past its limit.) */
	verdict = reply_path(ctx, &req, data_end, &macs);
	if (verdict != COUNTER_HANDLED) {
		count(verdict);
		return XDP_PASS;
	}

	/* The IPv6 reply's flow label, also before the checksum loop (with
	 * its branches after the loop the verifier's states exceed its limit). */
	if (req.ipv6) {
		struct ipv6hdr *ip6 = req.l3;

		if (!HAS_ROOM(ip6, sizeof(*ip6), data_end))
			goto pass;
		flow_label = reply_flow_label(ip6, req.cfg);
	}

	/* Verify, before anything is written: a dropped or passed frame is
	 * left exactly as it came. */
	if (req.ipv6) {
		struct ipv6hdr *ip6 = req.l3;

		if (!HAS_ROOM(ip6, sizeof(*ip6), data_end))
			goto pass;
		check = ipv6_check(ip6, data_end);
		ip_len = sizeof(*ip6) + packet_len16(ip6->payload_len);
	} else {
		struct iphdr *ip = req.l3;

		if (!HAS_ROOM(ip, sizeof(*ip), data_end))
			goto pass;
		check = ipv4_check(ip, data_end);
		ip_len = packet_len16(ip->tot_len);
	}
	if (check == CSUM_BAD) {
		count(COUNTER_BAD_CHECKSUM);
		return XDP_DROP;
	}
	if (check == CSUM_UNCHECKED)
		goto pass;

	/* Rewrite: the reply goes to the neighbour-table MAC of its next hop,
	 * from the egress device's MAC, as Linux's reply would. */
	__builtin_memcpy(eth->h_dest, macs.dst, ETH_ALEN);
	__builtin_memcpy(eth->h_source, macs.src, ETH_ALEN);
	/* The route's hoplimit metric, when it has one (reply_path.h), else
	 * the host default from the config map. */
	if (req.ipv6) {
		struct ipv6hdr *ip6 = req.l3;

		if (!HAS_ROOM(ip6, sizeof(*ip6), data_end))
			goto pass;
		ipv6_reply(ip6, data_end,
			   macs.hop_limit ? macs.hop_limit : req.cfg->hop_limit,
			   flow_label);
	}
	else
		ipv4_reply(req.l3, data_end,
			   macs.hop_limit ? macs.hop_limit : req.cfg->ttl);

	/* Cut off Ethernet padding after the IP packet: the reply carries the
	 * IP packet only, as the kernel's and the AF_XDP path's replies do (the
	 * NIC pads a short frame again). This moves data_end, so it comes
	 * last: every packet pointer is invalid after it.
	 *
	 * clang computes this as data_end - (l3 + ip_len), adding ip_len to a
	 * packet pointer: that is why ip_len comes from packet_len16() above,
	 * which older verifiers need to see the sum as bounded. */
	padding = (long)(data_end - req.l3) - (long)ip_len;
	if (padding > 0)
		bpf_xdp_adjust_tail(ctx, (int)-padding);

	count(COUNTER_HANDLED);
	return XDP_TX;

pass:
	count(COUNTER_PASSED);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
