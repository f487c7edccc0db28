/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * echo_xsk: a compact C AF_XDP echo responder, the bench's reference point for afxdp-responder.
 *
 * Written for this repository in the style of the xdp-tutorial's advanced03-AF_XDP user program
 * (libxdp's xsk.h API, libxdp's default XSKMAP redirect program, one socket on one queue, a
 * poll() loop, batches of 64), with its ICMPv6 echo exercise done and IPv4 echo added the same
 * way. No code is taken from the tutorial (GPL-2.0); see README.md here for how it differs.
 *
 * Usage: echo_xsk IFACE [QUEUE]   (copy mode, native XDP; Ctrl-C/SIGTERM stops it)
 * Prints "ready" on stdout once the socket is bound, and "rx N tx M dropped D" at exit.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <linux/icmp.h>
#include <linux/icmpv6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <xdp/xsk.h>

#define NUM_FRAMES 4096
#define FRAME_SIZE XSK_UMEM__DEFAULT_FRAME_SIZE
#define BATCH 64

static volatile sig_atomic_t stop;

static void on_signal(int sig) { (void)sig; stop = 1; }

struct responder {
	struct xsk_ring_prod fq, tx;
	struct xsk_ring_cons cq, rx;
	struct xsk_umem *umem;
	struct xsk_socket *xsk;
	uint8_t *buffer;
	/* Free frames (not on any ring), a stack of UMEM addresses. */
	uint64_t free[NUM_FRAMES];
	uint32_t nfree;
	uint32_t outstanding_tx;
	uint64_t rx_count, tx_count, dropped;
};

static uint64_t frame_alloc(struct responder *r) { return r->free[--r->nfree]; }
static void frame_free(struct responder *r, uint64_t addr) { r->free[r->nfree++] = addr; }

/* RFC 1624 incremental update of a 16-bit one's-complement checksum: field `old` became `new`. */
static uint16_t csum_replace(uint16_t check, uint16_t old, uint16_t new)
{
	uint32_t sum = (uint16_t)~check + (uint16_t)~old + new;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static void swap_bytes(uint8_t *a, uint8_t *b, size_t n)
{
	uint8_t t[16];
	memcpy(t, a, n);
	memcpy(a, b, n);
	memcpy(b, t, n);
}

/* Turns an echo request into its reply in place; false for anything else (dropped). The swapped
 * addresses leave the IPv4 header checksum and the ICMPv6 pseudo-header sum unchanged. */
static bool echo_in_place(uint8_t *pkt, uint32_t len)
{
	struct ethhdr *eth = (struct ethhdr *)pkt;
	if (len < sizeof(*eth))
		return false;
	if (eth->h_proto == htons(ETH_P_IP)) {
		struct iphdr *ip = (struct iphdr *)(eth + 1);
		if (len < sizeof(*eth) + sizeof(*ip) || ip->ihl != 5 || ip->protocol != IPPROTO_ICMP ||
		    ntohs(ip->tot_len) < sizeof(*ip) + sizeof(struct icmphdr) ||
		    ntohs(ip->tot_len) > len - sizeof(*eth))
			return false;
		struct icmphdr *icmp = (struct icmphdr *)(ip + 1);
		if (icmp->type != ICMP_ECHO || icmp->code != 0)
			return false;
		swap_bytes((uint8_t *)&ip->saddr, (uint8_t *)&ip->daddr, 4);
		icmp->type = ICMP_ECHOREPLY;
		icmp->checksum = csum_replace(icmp->checksum, htons(ICMP_ECHO << 8), htons(ICMP_ECHOREPLY << 8));
	} else if (eth->h_proto == htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (struct ipv6hdr *)(eth + 1);
		if (len < sizeof(*eth) + sizeof(*ip6) + sizeof(struct icmp6hdr) || ip6->nexthdr != IPPROTO_ICMPV6 ||
		    ntohs(ip6->payload_len) < sizeof(struct icmp6hdr) ||
		    ntohs(ip6->payload_len) > len - sizeof(*eth) - sizeof(*ip6))
			return false;
		struct icmp6hdr *icmp6 = (struct icmp6hdr *)(ip6 + 1);
		if (icmp6->icmp6_type != ICMPV6_ECHO_REQUEST || icmp6->icmp6_code != 0)
			return false;
		swap_bytes((uint8_t *)&ip6->saddr, (uint8_t *)&ip6->daddr, 16);
		icmp6->icmp6_type = ICMPV6_ECHO_REPLY;
		icmp6->icmp6_cksum = csum_replace(icmp6->icmp6_cksum, htons(ICMPV6_ECHO_REQUEST << 8),
						  htons(ICMPV6_ECHO_REPLY << 8));
	} else {
		return false;
	}
	swap_bytes(eth->h_dest, eth->h_source, ETH_ALEN);
	return true;
}

/* Sent frames back to the free stack; kick the kernel while replies are outstanding (copy mode
 * transmits in sendto()). */
static void complete_tx(struct responder *r)
{
	uint32_t idx;
	if (!r->outstanding_tx)
		return;
	if (sendto(xsk_socket__fd(r->xsk), NULL, 0, MSG_DONTWAIT, NULL, 0) < 0 && errno != EAGAIN &&
	    errno != EBUSY && errno != ENOBUFS && errno != ENETDOWN) {
		perror("echo_xsk: sendto");
		stop = 1;
	}
	uint32_t done = xsk_ring_cons__peek(&r->cq, NUM_FRAMES, &idx);
	for (uint32_t i = 0; i < done; i++)
		frame_free(r, *xsk_ring_cons__comp_addr(&r->cq, idx++));
	xsk_ring_cons__release(&r->cq, done);
	r->outstanding_tx -= done;
}

static void refill(struct responder *r)
{
	uint32_t idx;
	uint32_t n = xsk_prod_nb_free(&r->fq, r->nfree);
	if (n > r->nfree)
		n = r->nfree;
	if (n == 0 || xsk_ring_prod__reserve(&r->fq, n, &idx) != n)
		return;
	for (uint32_t i = 0; i < n; i++)
		*xsk_ring_prod__fill_addr(&r->fq, idx++) = frame_alloc(r);
	xsk_ring_prod__submit(&r->fq, n);
}

static void handle_batch(struct responder *r)
{
	uint32_t idx_rx, idx_tx = 0;
	uint32_t n = xsk_ring_cons__peek(&r->rx, BATCH, &idx_rx);
	if (n == 0)
		return;
	refill(r);
	/* One TX reservation for the batch: at most n replies. */
	uint32_t room = xsk_ring_prod__reserve(&r->tx, n, &idx_tx);
	uint32_t sent = 0;
	for (uint32_t i = 0; i < n; i++) {
		const struct xdp_desc *d = xsk_ring_cons__rx_desc(&r->rx, idx_rx++);
		uint8_t *pkt = xsk_umem__get_data(r->buffer, d->addr);
		if (sent < room && echo_in_place(pkt, d->len)) {
			struct xdp_desc *t = xsk_ring_prod__tx_desc(&r->tx, idx_tx + sent);
			t->addr = d->addr;
			t->len = d->len;
			sent++;
		} else {
			frame_free(r, d->addr);
			r->dropped++;
		}
	}
	xsk_ring_cons__release(&r->rx, n);
	if (room) {
		/* Unused reserved slots are given back by submitting only what was written:
		 * libxdp's reserve only advances the cached producer, so rewind it. */
		r->tx.cached_prod -= room - sent;
		xsk_ring_prod__submit(&r->tx, sent);
	}
	r->outstanding_tx += sent;
	r->rx_count += n;
	r->tx_count += sent;
	complete_tx(r);
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: echo_xsk IFACE [QUEUE]\n");
		return 2;
	}
	const char *ifname = argv[1];
	uint32_t queue = argc == 3 ? (uint32_t)strtoul(argv[2], NULL, 10) : 0;
	static struct responder r;

	size_t size = (size_t)NUM_FRAMES * FRAME_SIZE;
	r.buffer = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r.buffer == MAP_FAILED) {
		perror("echo_xsk: mmap");
		return 1;
	}
	int err = xsk_umem__create(&r.umem, r.buffer, size, &r.fq, &r.cq, NULL);
	if (err) {
		fprintf(stderr, "echo_xsk: xsk_umem__create: %s\n", strerror(-err));
		return 1;
	}
	struct xsk_socket_config cfg = {
		.rx_size = XSK_RING_CONS__DEFAULT_NUM_DESCS,
		.tx_size = XSK_RING_PROD__DEFAULT_NUM_DESCS,
		.xdp_flags = XDP_FLAGS_DRV_MODE,
		.bind_flags = XDP_COPY | XDP_USE_NEED_WAKEUP,
	};
	err = xsk_socket__create(&r.xsk, ifname, queue, r.umem, &r.rx, &r.tx, &cfg);
	if (err) {
		fprintf(stderr, "echo_xsk: xsk_socket__create on %s queue %u: %s\n", ifname, queue, strerror(-err));
		xsk_umem__delete(r.umem);
		return 1;
	}
	for (uint32_t i = 0; i < NUM_FRAMES; i++)
		frame_free(&r, (uint64_t)i * FRAME_SIZE);
	refill(&r);

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	printf("ready\n");
	fflush(stdout);

	struct pollfd pfd = {.fd = xsk_socket__fd(r.xsk), .events = POLLIN};
	while (!stop) {
		/* Sleep until frames arrive (as the tutorial's poll mode); 100 ms so a signal is seen. */
		int ret = poll(&pfd, 1, 100);
		if (ret <= 0)
			continue;
		handle_batch(&r);
	}
	/* Let the kernel send what is still queued. */
	for (int i = 0; i < 100 && r.outstanding_tx; i++) {
		complete_tx(&r);
		usleep(1000);
	}
	xsk_socket__delete(r.xsk);
	xsk_umem__delete(r.umem);
	printf("rx %llu tx %llu dropped %llu\n", (unsigned long long)r.rx_count, (unsigned long long)r.tx_count,
	       (unsigned long long)r.dropped);
	return 0;
}
