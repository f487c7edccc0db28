//! The in-kernel engines (`--engine xdp-tx`, `--engine drop`), checked on the real kernel.
//!
//! The first part runs the loaded (not attached) programs on hand-made frames with
//! `BPF_PROG_TEST_RUN` and checks the verdict, the counters and, for xdp-tx, the reply the
//! program wrote over the request: parsed by etherparse, with both checksums computed here
//! independently of the program and of the crate.
//!
//! The second part runs the real binary with `--engine xdp-tx` / `--engine drop` in a namespace
//! pair and pings it from the peer namespace, checking the client kernel's counters, tcpdump on
//! the client side and the engine's exit report.
//!
//! All of this needs root: run `./run.sh test`.

mod common;

use std::net::IpAddr;
use std::ops::Range;
use std::time::Duration;

use afxdp_lab::{Family, NetnsPair, Nstat, PingSpec, ResponderProcess, Side, ping};
use afxdp_responder::loader::{EngineCounters, EngineProgram, FibPasses, XDP_DROP, XDP_PASS, XDP_TX, xdp_action_name};
use afxdp_responder::netlink::route::kind;
use afxdp_responder::options::Engine;
use common::frames::{
    ETH_LEN, LOOPBACK, OUR_MAC, OUR_V4, OUR_V6, PEER_MAC, PEER_V4, PEER_V6, add_peer_neighbours, mirror_route,
};
use common::{assert_nothing_attached, link_details, need_root, pair, ping_all_answered, ping_sizes, stop};
use echo_wire::respond::{FlowLabelPolicy, ReplyPolicy};
use etherparse::{LinkExtHeader, LinkHeader, NetHeaders, PacketBuilder, PacketHeaders, VlanId};

const OTHER_V4: [u8; 4] = [198, 18, 0, 3];
const OTHER_V6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3];

/// TTL and hop limit the loader puts in the config map: not 64, so a reply that kept the
/// request's value (64) or a default cannot pass for one that took the config's.
const POLICY: ReplyPolicy = ReplyPolicy {
    ipv4_ttl: 77,
    ipv6_hop_limit: 99,
    ..ReplyPolicy::DEFAULT
};

fn load(engine: Engine) -> EngineProgram {
    need_root();
    let owned = [IpAddr::from(OUR_V4), IpAddr::from(OUR_V6)];
    let mut program = EngineProgram::load_engine(engine, OUR_MAC, &owned, POLICY)
        .unwrap_or_else(|e| panic!("loading the {engine} program: {}", chain(&e)));
    prepare_mirror(&mut program);
    program
}

/// `BPF_PROG_TEST_RUN` without an interface runs as if the frame arrived on loopback, where
/// forwarding is off: the kernel refuses the FIB lookup and the program consults its host mirror.
/// This one holds what a host with the peer on-link would: the peer's subnets by loopback and
/// the peer's neighbour entries (its MAC), as rtnetlink would report them.
fn prepare_mirror(program: &mut EngineProgram) {
    let routes = [
        mirror_route("198.18.0.0", 15, kind::UNICAST, LOOPBACK),
        mirror_route("2001:db8::", 32, kind::UNICAST, LOOPBACK),
    ];
    program
        .sync_mirror_routes(&routes, &[LOOPBACK])
        .expect("fill mirror_routes");
    add_peer_neighbours(program, LOOPBACK);
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Deterministic payload bytes of length `len` (every byte value appears).
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

fn echo_v4(dst: [u8; 4], id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(PEER_MAC, OUR_MAC)
        .ipv4(PEER_V4, dst, 64)
        .icmpv4_echo_request(id, seq)
        .write(&mut frame, data)
        .expect("build IPv4 echo request");
    frame
}

fn echo_v6(dst: [u8; 16], id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(PEER_MAC, OUR_MAC)
        .ipv6(PEER_V6, dst, 64)
        .icmpv6_echo_request(id, seq)
        .write(&mut frame, data)
        .expect("build ICMPv6 echo request");
    frame
}

// ---------------------------------------------------------------------------------------------
// Checksums, computed here (RFC 1071), independent of the program and the crate
// ---------------------------------------------------------------------------------------------

fn ones_sum(mut acc: u32, bytes: &[u8]) -> u32 {
    for pair in bytes.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        acc += u32::from(word);
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

/// Whether `bytes` (checksum field included) sum to 0xffff, i.e. the checksum is right.
fn sums_to_ffff(acc: u32, bytes: &[u8]) -> bool {
    ones_sum(acc, bytes) == 0xffff
}

/// Rewrites the IPv4 header checksum of the header at `l3` so that the header is valid again.
fn fix_ipv4_header_checksum(frame: &mut [u8], l3: usize) {
    frame[l3 + 10..l3 + 12].copy_from_slice(&[0, 0]);
    let sum = ones_sum(0, &frame[l3..l3 + 20]) as u16;
    frame[l3 + 10..l3 + 12].copy_from_slice(&(!sum).to_be_bytes());
}

// ---------------------------------------------------------------------------------------------
// Running the programs
// ---------------------------------------------------------------------------------------------

fn counters(program: &EngineProgram) -> EngineCounters {
    program.counters().expect("reading the counters")
}

/// Runs `frame` through the program; returns the verdict, the output frame and the counter deltas.
fn run(program: &EngineProgram, frame: &[u8]) -> (u32, Vec<u8>, EngineCounters) {
    let before = counters(program);
    let (action, out) = program.test_run_with_output(frame).expect("BPF_PROG_TEST_RUN");
    let after = counters(program);
    let delta = EngineCounters {
        handled: after.handled - before.handled,
        passed: after.passed - before.passed,
        no_socket: after.no_socket - before.no_socket,
        bad_checksum: after.bad_checksum - before.bad_checksum,
        fib: FibPasses {
            no_neigh: after.fib.no_neigh - before.fib.no_neigh,
            not_unicast: after.fib.not_unicast - before.fib.not_unicast,
            no_route: after.fib.no_route - before.fib.no_route,
            frag_needed: after.fib.frag_needed - before.fib.frag_needed,
            other_egress: after.fib.other_egress - before.fib.other_egress,
            other: after.fib.other - before.fib.other,
        },
        mirror_handled: after.mirror_handled - before.mirror_handled,
        mirror: FibPasses {
            no_neigh: after.mirror.no_neigh - before.mirror.no_neigh,
            not_unicast: after.mirror.not_unicast - before.mirror.not_unicast,
            no_route: after.mirror.no_route - before.mirror.no_route,
            frag_needed: after.mirror.frag_needed - before.mirror.frag_needed,
            other_egress: after.mirror.other_egress - before.mirror.other_egress,
            other: after.mirror.other - before.mirror.other,
        },
        ignored: after.ignored - before.ignored,
        denied: after.denied - before.denied,
        not_allowed: after.not_allowed - before.not_allowed,
        rate_limited: after.rate_limited - before.rate_limited,
    };
    (action, out, delta)
}

/// One request answered by xdp-tx. `BPF_PROG_TEST_RUN` without an interface runs on loopback,
/// where forwarding is off, so the kernel refuses the FIB lookup and the host mirror (prepared
/// by `load`) approves the reply, to the peer's MAC: counted in `mirror_handled` as well. The
/// FIB's and the mirror's other verdicts are tested on a veth in `xdp_verdicts.rs`.
const ONE_HANDLED: EngineCounters = EngineCounters {
    handled: 1,
    passed: 0,
    no_socket: 0,
    bad_checksum: 0,
    fib: FibPasses::ZERO,
    mirror_handled: 1,
    mirror: FibPasses::ZERO,
    ignored: 0,
    denied: 0,
    not_allowed: 0,
    rate_limited: 0,
};
const ONE_PASSED: EngineCounters = EngineCounters {
    handled: 0,
    passed: 1,
    no_socket: 0,
    bad_checksum: 0,
    fib: FibPasses::ZERO,
    mirror_handled: 0,
    mirror: FibPasses::ZERO,
    ignored: 0,
    denied: 0,
    not_allowed: 0,
    rate_limited: 0,
};
/// One request dropped by xdp-tx for its checksum, after the FIB question (answered by the
/// mirror, on loopback), which comes first.
const ONE_BAD_CHECKSUM: EngineCounters = EngineCounters {
    handled: 0,
    passed: 0,
    no_socket: 0,
    bad_checksum: 1,
    fib: FibPasses::ZERO,
    mirror_handled: 1,
    mirror: FibPasses::ZERO,
    ignored: 0,
    denied: 0,
    not_allowed: 0,
    rate_limited: 0,
};

/// The program passes `frame` to the kernel untouched, and counts it as passed.
#[track_caller]
fn assert_passed(program: &EngineProgram, frame: &[u8], what: &str) {
    let (action, out, delta) = run(program, frame);
    assert_eq!(xdp_action_name(action), "XDP_PASS", "{what}");
    assert_eq!(delta, ONE_PASSED, "{what}");
    assert_eq!(out, frame, "{what}: a passed frame must be left as it came");
}

/// Parses a reply and its request; checks that the reply is an Ethernet frame from us back to the
/// peer (MACs swapped). Returns the headers of the reply and of the request.
#[track_caller]
fn parse_reply<'a>(request: &'a [u8], reply: &'a [u8], what: &str) -> (PacketHeaders<'a>, PacketHeaders<'a>) {
    let headers = PacketHeaders::from_ethernet_slice(reply).unwrap_or_else(|e| panic!("{what}: {e}"));
    let Some(LinkHeader::Ethernet2(eth)) = &headers.link else {
        panic!("{what}: no Ethernet header")
    };
    assert_eq!(
        (eth.source, eth.destination),
        (OUR_MAC, PEER_MAC),
        "{what}: MACs swapped"
    );
    let req = PacketHeaders::from_ethernet_slice(request).unwrap();
    (headers, req)
}

/// Checks the ICMP message `icmp` (a range of both frames) of a reply against the request's: type
/// `reply_type`, the request's code, identifier, sequence and data; and that the reply ends with
/// it (no padding) and keeps the request's EtherType and VLAN tag (the bytes from 12 up to `l3`).
/// The checksum is left to the caller.
#[track_caller]
fn check_echo_message(request: &[u8], reply: &[u8], l3: usize, icmp: Range<usize>, reply_type: u8, what: &str) {
    let req_icmp = &request[icmp.clone()];
    let end = icmp.end;
    let icmp = &reply[icmp];
    assert_eq!(
        (icmp[0], icmp[1]),
        (reply_type, req_icmp[1]),
        "{what}: type {reply_type}, code kept"
    );
    assert_eq!(
        icmp[4..],
        req_icmp[4..],
        "{what}: identifier, sequence and data unchanged"
    );
    assert_eq!(reply.len(), end, "{what}: no padding");
    // A VLAN tag (if any) is kept as it was.
    assert_eq!(reply[12..l3], request[12..l3], "{what}: EtherType / VLAN tag kept");
}

/// Checks the reply to an IPv4 echo request in every field the parity table names.
#[track_caller]
fn check_ipv4_reply(request: &[u8], reply: &[u8], l3: usize) {
    let what = format!("IPv4 reply to a {}-byte request", request.len());
    let (headers, req) = parse_reply(request, reply, &what);
    let Some(NetHeaders::Ipv4(ip, _)) = &headers.net else {
        panic!("{what}: not IPv4")
    };
    let Some(NetHeaders::Ipv4(req_ip, _)) = &req.net else {
        panic!("request not IPv4")
    };
    assert_eq!(
        (ip.source, ip.destination),
        (req_ip.destination, req_ip.source),
        "{what}: addresses"
    );
    assert_eq!(ip.time_to_live, POLICY.ipv4_ttl, "{what}: TTL from the config map");
    assert!(!ip.dont_fragment && !ip.more_fragments, "{what}: DF clear");
    assert_eq!(ip.fragment_offset.value(), 0, "{what}");
    assert_eq!((ip.dscp, ip.ecn), (req_ip.dscp, req_ip.ecn), "{what}: TOS kept");
    assert_eq!(ip.total_len, req_ip.total_len, "{what}");
    assert!(sums_to_ffff(0, &reply[l3..l3 + 20]), "{what}: IPv4 header checksum");

    // The lengths are equal (checked above): the ICMP messages stand at the same place.
    let icmp = l3 + 20..l3 + usize::from(ip.total_len);
    check_echo_message(request, reply, l3, icmp.clone(), 0, &what);
    assert!(sums_to_ffff(0, &reply[icmp]), "{what}: ICMP checksum");
}

/// Checks the reply to an ICMPv6 echo request.
#[track_caller]
fn check_ipv6_reply(request: &[u8], reply: &[u8], l3: usize) {
    let what = format!("ICMPv6 reply to a {}-byte request", request.len());
    let (headers, req) = parse_reply(request, reply, &what);
    let Some(NetHeaders::Ipv6(ip, _)) = &headers.net else {
        panic!("{what}: not IPv6")
    };
    let Some(NetHeaders::Ipv6(req_ip, _)) = &req.net else {
        panic!("request not IPv6")
    };
    assert_eq!(
        (ip.source, ip.destination),
        (req_ip.destination, req_ip.source),
        "{what}: addresses"
    );
    assert_eq!(
        ip.hop_limit, POLICY.ipv6_hop_limit,
        "{what}: hop limit from the config map"
    );
    assert_eq!(
        (ip.traffic_class, ip.payload_length),
        (req_ip.traffic_class, req_ip.payload_length),
        "{what}: traffic class, length kept"
    );
    // The program's own implementation of the label hash against echo-wire's (the AF_XDP path's).
    let label = POLICY
        .flow_label
        .reply_label(req_ip.flow_label.value(), &ip.source, &ip.destination);
    assert_eq!(ip.flow_label.value(), label, "{what}: flow label by the policy");
    let len = usize::from(ip.payload_length);
    let icmp = l3 + 40..l3 + 40 + len;
    check_echo_message(request, reply, l3, icmp.clone(), 129, &what);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&ip.source);
    pseudo.extend_from_slice(&ip.destination);
    pseudo.extend_from_slice(&(len as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    assert!(
        sums_to_ffff(ones_sum(0, &pseudo), &reply[icmp]),
        "{what}: ICMPv6 checksum"
    );
}

// Sizes around every piece boundary of the program's checksum loop (256-byte chunks, then 128, 64,
// 32, 16, 8, 4 and 0..3 bytes), odd sizes, and the largest that fit a 1500-byte MTU.
const PAYLOAD_SIZES: [usize; 16] = [0, 1, 2, 3, 4, 5, 7, 56, 120, 247, 248, 249, 255, 1000, 1452, 1472];

// ---------------------------------------------------------------------------------------------
// xdp-tx: BPF_PROG_TEST_RUN
// ---------------------------------------------------------------------------------------------

#[test]
fn xdp_tx_answers_ipv4_echo_requests_of_every_size() {
    let program = load(Engine::XdpTx);
    for size in PAYLOAD_SIZES {
        let request = echo_v4(OUR_V4, 0x1234, size as u16, &payload(size));
        let (action, reply, delta) = run(&program, &request);
        assert_eq!(xdp_action_name(action), "XDP_TX", "payload {size}");
        assert_eq!(delta, ONE_HANDLED, "payload {size}");
        check_ipv4_reply(&request, &reply, ETH_LEN);
    }
}

#[test]
fn xdp_tx_answers_icmpv6_echo_requests_of_every_size() {
    let program = load(Engine::XdpTx);
    for size in PAYLOAD_SIZES {
        let request = echo_v6(OUR_V6, 0x4321, size as u16, &payload(size));
        let (action, reply, delta) = run(&program, &request);
        assert_eq!(xdp_action_name(action), "XDP_TX", "payload {size}");
        assert_eq!(delta, ONE_HANDLED, "payload {size}");
        check_ipv6_reply(&request, &reply, ETH_LEN);
    }
}

#[test]
fn xdp_tx_clears_df_keeps_tos_and_gives_fresh_ids() {
    let program = load(Engine::XdpTx);
    let mut request = echo_v4(OUR_V4, 7, 1, &payload(56));
    request[ETH_LEN + 1] = 0xb8; // DSCP EF
    request[ETH_LEN + 6] |= 0x40; // DF
    request[ETH_LEN + 4..ETH_LEN + 6].copy_from_slice(&[0xab, 0xcd]); // request id
    fix_ipv4_header_checksum(&mut request, ETH_LEN);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (action, reply, _) = run(&program, &request);
        assert_eq!(action, XDP_TX);
        check_ipv4_reply(&request, &reply, ETH_LEN);
        assert_eq!(reply[ETH_LEN + 1], 0xb8, "TOS kept");
        ids.push(u16::from_be_bytes([reply[ETH_LEN + 4], reply[ETH_LEN + 5]]));
    }
    // The test runs may land on different CPUs, each with its own counter: the ids need not
    // be consecutive, but consecutive runs must not repeat one.
    assert!(ids[0] != ids[1] && ids[1] != ids[2], "fresh IPv4 ids: {ids:?}");
}

#[test]
fn xdp_tx_keeps_the_traffic_class_and_labels_flows_like_the_afxdp_path() {
    let mut program = load(Engine::XdpTx);
    let mut request = echo_v6(OUR_V6, 7, 1, &payload(56));
    // version 6, traffic class 0xb8, flow label 0x12345 (not in the ICMPv6 checksum).
    request[ETH_LEN..ETH_LEN + 4].copy_from_slice(&[0x6b, 0x81, 0x23, 0x45]);
    let label_of = |reply: &[u8]| u32::from_be_bytes(reply[ETH_LEN..ETH_LEN + 4].try_into().unwrap()) & 0xf_ffff;
    let (reply_src, reply_dst) = (OUR_V6, PEER_V6);
    for (what, flow_label) in [
        (
            "auto labels, a random key",
            FlowLabelPolicy::LINUX_DEFAULT.with_key([0x0123_4567_89ab_cdef, 0xfeed_f00d_dead_beef]),
        ),
        (
            "auto labels, another key",
            FlowLabelPolicy::LINUX_DEFAULT.with_key([7, 11]),
        ),
        (
            "auto labels with state ranges",
            FlowLabelPolicy {
                state_ranges: true,
                ..FlowLabelPolicy::LINUX_DEFAULT.with_key([3, 5])
            },
        ),
        ("reflect", FlowLabelPolicy::REFLECT_ONLY),
        (
            "neither",
            FlowLabelPolicy {
                auto: false,
                ..FlowLabelPolicy::LINUX_DEFAULT
            },
        ),
    ] {
        program
            .set_reply_policy(ReplyPolicy { flow_label, ..POLICY })
            .expect("set the reply policy");
        let (action, reply, _) = run(&program, &request);
        assert_eq!(action, XDP_TX, "{what}");
        assert_eq!(
            reply[ETH_LEN..ETH_LEN + 2],
            [0x6b, 0x80 | (reply[ETH_LEN + 1] & 0x0f)],
            "{what}: version, class"
        );
        // The program's hash and echo-wire's (what the AF_XDP workers send) agree bit for bit.
        let expected = flow_label.reply_label(0x12345, &reply_src, &reply_dst);
        assert_eq!(label_of(&reply), expected, "{what}");
    }
    assert_eq!(label_of(&run(&program, &request).1), 0, "no policy: 0");
    // One flow keeps its label; another destination gets another one.
    program.set_reply_policy(POLICY).unwrap();
    let other = {
        let mut r = request.clone();
        r[ETH_LEN + 8 + 15] = 0x42; // another source, i.e. another reply destination
        r
    };
    let (a, b, c) = (
        label_of(&run(&program, &request).1),
        label_of(&run(&program, &request).1),
        label_of(&run(&program, &other).1),
    );
    assert!(a != 0 && a == b && a != c, "per-flow labels: {a:#x} {b:#x} {c:#x}");
}

#[test]
fn xdp_tx_cuts_ethernet_padding() {
    let program = load(Engine::XdpTx);
    let mut request = echo_v4(OUR_V4, 1, 1, &[]);
    assert_eq!(request.len(), 42);
    request.resize(60, 0); // what a NIC pads a minimum frame to
    let (action, reply, _) = run(&program, &request);
    assert_eq!(action, XDP_TX);
    assert_eq!(reply.len(), 42, "the reply carries the IP packet only");
    check_ipv4_reply(&request[..42], &reply, ETH_LEN);

    let mut request = echo_v6(OUR_V6, 1, 1, &[]);
    assert_eq!(request.len(), 62);
    request.resize(64, 0xee);
    let (action, reply, _) = run(&program, &request);
    assert_eq!(action, XDP_TX);
    check_ipv6_reply(&request[..62], &reply, ETH_LEN);
}

#[test]
fn xdp_tx_answers_on_the_vlan_of_the_address_and_keeps_the_tag() {
    let mut program = load(Engine::XdpTx);
    // The address's device is named (loopback, where the test run says the frame arrived): the
    // reply's route must leave by it. Unnamed, the egress of a tagged reply is unknown: passed.
    program.add_address(42, IpAddr::from(OTHER_V4)).unwrap();
    let vlan = VlanId::try_new(42).unwrap();
    let mut unnamed = Vec::new();
    PacketBuilder::ethernet2(PEER_MAC, OUR_MAC)
        .single_vlan(vlan)
        .ipv4(PEER_V4, OTHER_V4, 64)
        .icmpv4_echo_request(9, 9)
        .write(&mut unnamed, &payload(33))
        .unwrap();
    let (action, _, delta) = run(&program, &unnamed);
    assert_eq!(
        (xdp_action_name(action), delta.mirror.other_egress, delta.passed),
        ("XDP_PASS", 1, 1),
        "the VLAN's device unknown"
    );
    program.add_address_on(42, IpAddr::from(OTHER_V4), 1).unwrap();
    program.add_address_on(42, IpAddr::from(OTHER_V6), 1).unwrap();
    let mut request = Vec::new();
    PacketBuilder::ethernet2(PEER_MAC, OUR_MAC)
        .single_vlan(vlan)
        .ipv4(PEER_V4, OTHER_V4, 64)
        .icmpv4_echo_request(9, 9)
        .write(&mut request, &payload(33))
        .unwrap();
    let (action, reply, delta) = run(&program, &request);
    assert_eq!((xdp_action_name(action), delta), ("XDP_TX", ONE_HANDLED));
    check_ipv4_reply(&request, &reply, ETH_LEN + 4);
    let headers = PacketHeaders::from_ethernet_slice(&reply).unwrap();
    assert!(
        matches!(headers.link_exts.first(), Some(LinkExtHeader::Vlan(v)) if v.vlan_id == vlan),
        "VLAN tag kept"
    );

    let mut request = Vec::new();
    PacketBuilder::ethernet2(PEER_MAC, OUR_MAC)
        .single_vlan(vlan)
        .ipv6(PEER_V6, OTHER_V6, 64)
        .icmpv6_echo_request(9, 9)
        .write(&mut request, &payload(33))
        .unwrap();
    let (action, reply, _) = run(&program, &request);
    assert_eq!(action, XDP_TX);
    check_ipv6_reply(&request, &reply, ETH_LEN + 4);

    // The same addresses untagged (VLAN 0) are not ours.
    assert_passed(
        &program,
        &echo_v4(OTHER_V4, 1, 1, &[]),
        "IPv4 address of VLAN 42, untagged",
    );
}

#[test]
fn xdp_tx_drops_requests_with_a_wrong_checksum_and_counts_them() {
    let program = load(Engine::XdpTx);
    for size in [0usize, 1, 56, 1000, 1472] {
        // One payload (or echo header) byte flipped: the ICMP checksum no longer matches.
        let mut request = echo_v4(OUR_V4, 1, 1, &payload(size));
        let last = request.len() - 1;
        request[last] ^= 0x10;
        let (action, out, delta) = run(&program, &request);
        assert_eq!(
            (xdp_action_name(action), delta),
            ("XDP_DROP", ONE_BAD_CHECKSUM),
            "v4 payload {size}"
        );
        assert_eq!(out, request, "a dropped frame is left as it came");

        let mut request = echo_v6(OUR_V6, 1, 1, &payload(size));
        let last = request.len() - 1;
        request[last] ^= 0x01;
        let (action, _, delta) = run(&program, &request);
        assert_eq!(
            (xdp_action_name(action), delta),
            ("XDP_DROP", ONE_BAD_CHECKSUM),
            "v6 payload {size}"
        );
    }
    // A wrong IPv4 header checksum.
    let mut request = echo_v4(OUR_V4, 1, 1, &payload(8));
    request[ETH_LEN + 10] ^= 0xff;
    let (action, _, delta) = run(&program, &request);
    assert_eq!((action, delta), (XDP_DROP, ONE_BAD_CHECKSUM), "IPv4 header checksum");
    // ICMPv6 checksum with the wrong pseudo-header: the same message to another owned address.
    let mut request = echo_v6(OUR_V6, 1, 1, &payload(8));
    request[ETH_LEN + 24 + 15] = 0x09; // destination ...::9 -> a different pseudo-header sum
    let mut program = program;
    program.add_address(0, "2001:db8::9".parse().unwrap()).unwrap();
    let (action, _, delta) = run(&program, &request);
    assert_eq!((action, delta), (XDP_DROP, ONE_BAD_CHECKSUM), "ICMPv6 pseudo-header");
}

#[test]
fn xdp_tx_passes_what_is_not_an_owned_echo_request() {
    let program = load(Engine::XdpTx);
    assert_passed(&program, &echo_v4(OTHER_V4, 1, 1, &payload(8)), "IPv4, not our address");
    assert_passed(&program, &echo_v6(OTHER_V6, 1, 1, &payload(8)), "IPv6, not our address");

    let mut reply = echo_v4(OUR_V4, 1, 1, &payload(8));
    reply[ETH_LEN + 20] = 0; // an echo reply
    assert_passed(&program, &reply, "IPv4 echo reply");
    let mut reply = echo_v6(OUR_V6, 1, 1, &payload(8));
    reply[ETH_LEN + 40] = 129;
    assert_passed(&program, &reply, "ICMPv6 echo reply");

    let mut other_mac = echo_v4(OUR_V4, 1, 1, &payload(8));
    other_mac[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x99]);
    assert_passed(&program, &other_mac, "another host's MAC");
    let mut broadcast = echo_v4([198, 18, 0, 255], 1, 1, &payload(8));
    broadcast[0..6].copy_from_slice(&[0xff; 6]);
    assert_passed(&program, &broadcast, "broadcast");

    let mut fragment = echo_v4(OUR_V4, 1, 1, &payload(8));
    fragment[ETH_LEN + 6] |= 0x20; // MF
    fix_ipv4_header_checksum(&mut fragment, ETH_LEN);
    assert_passed(&program, &fragment, "fragment");

    let mut arp = Vec::new();
    arp.extend_from_slice(&[0xff; 6]);
    arp.extend_from_slice(&PEER_MAC);
    arp.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    arp.extend_from_slice(&PEER_MAC);
    arp.extend_from_slice(&PEER_V4);
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&OUR_V4);
    assert_passed(&program, &arp, "ARP");

    // Truncated requests: the IP length says more than the frame has.
    let request = echo_v4(OUR_V4, 1, 1, &payload(56));
    for len in [ETH_LEN, ETH_LEN + 19, ETH_LEN + 27, request.len() - 1] {
        assert_passed(&program, &request[..len], &format!("IPv4 request cut to {len} bytes"));
    }
}

#[test]
fn xdp_tx_counters_add_up_and_socket_calls_are_refused() {
    let mut program = load(Engine::XdpTx);
    assert_eq!(program.engine(), Engine::XdpTx);
    for _ in 0..3 {
        let (action, _, _) = run(&program, &echo_v4(OUR_V4, 1, 1, &[]));
        assert_eq!(action, XDP_TX);
    }
    let (action, _, _) = run(&program, &echo_v4(OTHER_V4, 1, 1, &[]));
    assert_eq!(action, XDP_PASS);
    let c = counters(&program);
    assert_eq!((c.handled, c.passed, c.no_socket, c.bad_checksum), (3, 1, 0, 0));
    let err = program.unregister_socket(0).unwrap_err();
    assert!(err.to_string().contains("no AF_XDP sockets"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// drop: BPF_PROG_TEST_RUN
// ---------------------------------------------------------------------------------------------

#[test]
fn drop_engine_drops_owned_echo_requests_and_passes_everything_else() {
    let program = load(Engine::Drop);
    for request in [echo_v4(OUR_V4, 1, 1, &payload(56)), echo_v6(OUR_V6, 1, 1, &payload(56))] {
        let (action, out, delta) = run(&program, &request);
        // The drop engine asks neither the FIB nor a mirror.
        let dropped = EngineCounters {
            mirror_handled: 0,
            ..ONE_HANDLED
        };
        assert_eq!((xdp_action_name(action), delta), ("XDP_DROP", dropped));
        assert_eq!(out, request);
    }
    assert_passed(&program, &echo_v4(OTHER_V4, 1, 1, &[]), "IPv4, not our address");
    assert_passed(&program, &echo_v6(OTHER_V6, 1, 1, &[]), "IPv6, not our address");
    let mut reply = echo_v4(OUR_V4, 1, 1, &payload(8));
    reply[ETH_LEN + 20] = 0;
    assert_passed(&program, &reply, "IPv4 echo reply");
    let c = counters(&program);
    assert_eq!((c.handled, c.passed, c.no_socket, c.bad_checksum), (2, 3, 0, 0));
}

// ---------------------------------------------------------------------------------------------
// The engines see the same requests
// ---------------------------------------------------------------------------------------------

/// One frame of every kind the filter decides on.
fn frames_of_every_kind() -> Vec<(&'static str, Vec<u8>)> {
    let mut frames = vec![
        ("IPv4 request", echo_v4(OUR_V4, 1, 1, &payload(56))),
        ("ICMPv6 request", echo_v6(OUR_V6, 1, 1, &payload(56))),
        ("IPv4, other host", echo_v4(OTHER_V4, 1, 1, &payload(8))),
        ("IPv6, other host", echo_v6(OTHER_V6, 1, 1, &payload(8))),
    ];
    let mut reply = echo_v4(OUR_V4, 1, 1, &payload(8));
    reply[ETH_LEN + 20] = 0;
    frames.push(("IPv4 echo reply", reply));
    let mut options = echo_v4(OUR_V4, 1, 1, &payload(8));
    options[ETH_LEN] = 0x46; // IHL 6
    frames.push(("IPv4 with IHL 6", options));
    let mut ext = echo_v6(OUR_V6, 1, 1, &payload(8));
    ext[ETH_LEN + 6] = 0; // next header: hop-by-hop
    frames.push(("IPv6 extension header", ext));
    let mut other_mac = echo_v6(OUR_V6, 1, 1, &payload(8));
    other_mac[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x99]);
    frames.push(("another host's MAC", other_mac));
    let mut loopback_source = echo_v4(OUR_V4, 1, 1, &payload(8));
    loopback_source[ETH_LEN + 12..ETH_LEN + 16].copy_from_slice(&[127, 0, 0, 1]);
    fix_ipv4_header_checksum(&mut loopback_source, ETH_LEN);
    frames.push(("loopback source", loopback_source));
    frames
}

#[test]
fn all_engines_handle_exactly_the_same_frames() {
    let afxdp = load(Engine::AfXdp);
    let tx = load(Engine::XdpTx);
    let drop = load(Engine::Drop);
    for (what, frame) in frames_of_every_kind() {
        // With no socket registered, an owned request takes the redirect path and counts no_socket.
        let (_, _, redirect) = run(&afxdp, &frame);
        let (tx_action, _, _) = run(&tx, &frame);
        let (drop_action, _, _) = run(&drop, &frame);
        let owned = redirect.no_socket == 1;
        assert_eq!(tx_action == XDP_TX, owned, "{what}: xdp-tx and afxdp disagree");
        assert_eq!(drop_action == XDP_DROP, owned, "{what}: drop and afxdp disagree");
        assert_eq!(owned, what.ends_with("request"), "{what}");
    }
}

// ---------------------------------------------------------------------------------------------
// The real binary in a namespace pair
// ---------------------------------------------------------------------------------------------

fn start(pair: &NetnsPair, engine: Engine) -> ResponderProcess {
    common::start(pair, &["--engine", engine.name(), "--stats-interval", "0"])
}

fn xdp_tx_answers_real_pings(family: Family) {
    let pair = pair(1);
    // XDP_TX out of a veth reaches the peer only if the peer runs XDP too.
    let _pass = pair.attach_xdp_pass(Side::Client).expect("XDP_PASS on the client end");
    let responder = start(&pair, Engine::XdpTx);
    assert_eq!(responder.ready().engine, "xdp-tx", "{:?}", responder.ready());
    let responder_before = Nstat::read(&pair, Side::Responder).unwrap();
    let client = ping_sizes(&pair, family);
    let responder_delta = Nstat::read(&pair, Side::Responder).unwrap().since(&responder_before);
    let exit = stop(responder);

    client.check();
    let sent = client.sent;
    // The engine, not the kernel, answered: the responder's kernel saw no echo request.
    let kernel_requests = match family {
        Family::V4 => "IcmpInEchos",
        Family::V6 => "Icmp6InEchos",
    };
    assert_eq!(
        responder_delta.get(kernel_requests).unwrap_or(0),
        0,
        "the kernel answered some"
    );
    let summary = exit.expect_summary();
    assert_eq!(summary.engine, "xdp-tx", "{}", exit.finished.stdout);
    assert_eq!(
        (summary.program.handled, summary.total.tx, summary.program.bad_checksum),
        (sent, sent, 0),
        "{}",
        exit.finished.stdout
    );
}

#[test]
fn xdp_tx_engine_answers_real_ipv4_pings() {
    xdp_tx_answers_real_pings(Family::V4);
}

#[test]
fn xdp_tx_engine_answers_real_ipv6_pings() {
    xdp_tx_answers_real_pings(Family::V6);
}

#[test]
fn drop_engine_silences_pings_until_it_exits() {
    let pair = pair(1);
    let responder = start(&pair, Engine::Drop);
    let count = 4u32;
    let mut sent = 0;
    for family in [Family::V4, Family::V6] {
        // Without replies, `ping -c N -w S` keeps sending until the deadline: count what it sent.
        let spec = PingSpec::new(family, count)
            .interval(Duration::from_millis(200))
            .deadline(Duration::from_secs(1));
        let report = ping(&pair, &spec).unwrap();
        assert_eq!(
            report.received, 0,
            "the drop engine let a reply through: {}",
            report.raw
        );
        assert!(report.transmitted >= u64::from(count), "{}", report.raw);
        sent += report.transmitted;
    }
    let exit = stop(responder);
    let summary = exit.expect_summary();
    assert_eq!(summary.engine, "drop", "{}", exit.finished.stdout);
    let handled = summary.program.handled;
    assert_eq!(
        handled, sent,
        "every request sent was dropped: {}",
        exit.finished.stdout
    );
    assert_eq!(exit.totals(), (handled, 0, handled));

    // Detached: the kernel answers again.
    for family in [Family::V4, Family::V6] {
        let spec = PingSpec::new(family, 2).interval(Duration::from_millis(50));
        let report = ping(&pair, &spec).unwrap();
        assert_eq!(
            report.received, 2,
            "the kernel must answer after the engine exits: {}",
            report.raw
        );
    }
}

#[test]
fn drop_engine_program_is_attached_only_while_it_runs() {
    let pair = pair(1);
    let responder = start(&pair, Engine::Drop);
    let details = link_details(&pair);
    assert!(details.contains("drop_echo"), "{details}");
    let _ = stop(responder);
    assert_nothing_attached(&pair);
}

#[test]
fn the_xdp_pass_helper_attaches_and_detaches() {
    let pair = pair(1);
    let pass = pair.attach_xdp_pass(Side::Client).expect("attach");
    let show = || {
        let out = pair
            .command_in(Side::Client, "ip")
            .args(["-d", "link", "show", "dev", pair.client_if()])
            .output()
            .expect("ip link show");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(show().contains("xdp_pass"), "{}", show());
    assert_eq!(pass.ifname(), pair.client_if());
    pass.detach().unwrap();
    assert!(!show().contains("prog/xdp"), "{}", show());
}

#[test]
fn xdp_tx_in_skb_mode_needs_no_program_on_the_peer() {
    // Generic XDP transmits XDP_TX frames through the device's normal transmit path, which a
    // veth delivers to its peer like any other frame.
    let pair = pair(1);
    let args = ["--engine", "xdp-tx", "--xdp-mode", "skb", "--stats-interval", "0"];
    let responder = common::start(&pair, &args);
    assert_eq!(responder.ready().xdp_mode, "skb", "{:?}", responder.ready());
    let before = Nstat::read(&pair, Side::Client).unwrap();
    for family in [Family::V4, Family::V6] {
        ping_all_answered(&pair, family, 3);
    }
    let delta = Nstat::read(&pair, Side::Client).unwrap().since(&before);
    let exit = stop(responder);
    assert_eq!(delta.counter("IcmpInEchoReps").unwrap(), 3);
    assert_eq!(delta.counter("Icmp6InEchoReplies").unwrap(), 3);
    assert_eq!(
        delta.counter("IcmpInCsumErrors").unwrap() + delta.counter("Icmp6InCsumErrors").unwrap(),
        0
    );
    assert_eq!(exit.handled(), Some(6), "{}", exit.finished.stdout);
}
