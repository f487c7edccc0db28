//! The XDP redirect program's verdicts, checked on the real kernel.
//!
//! Most tests run the loaded (not attached) program on hand-made frames with
//! `BPF_PROG_TEST_RUN` and check both the verdict and which counter moved. With an empty
//! XSKMAP an echo request for an owned address is *passed* (the `bpf_redirect_map` fallback)
//! and counted as `no_socket`; everything else is passed and counted as `passed`. So
//! `no_socket` moving is the proof that a frame took the redirect path.
//!
//! The last tests attach the program to a veth pair inside a network namespace created for
//! the test (and removed by a guard, also when the test fails).
//!
//! All of this needs root (CAP_BPF, CAP_NET_ADMIN): run `./run.sh test`.

mod common;
use common::frames::{
    ETH_LEN, LOOPBACK, OUR_MAC, OUR_V4, OUR_V6, PEER_MAC, PEER_V4, PEER_V6, add_peer_neighbours, mirror_route,
};

use std::{
    fs::File,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::AsFd,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

use afxdp_responder::loader::{
    AttachedMode, EngineCounters, EngineProgram, FibPasses, LoaderError, XDP_PASS, XDP_REDIRECT, xdp_action_name,
};
use afxdp_responder::netlink::route::{Neighbour, Route, kind};
use afxdp_responder::options::{Engine, XdpMode};
use afxdp_xsk::{BindMode, Xsk, XskConfig};
use echo_wire::respond::{NextHop, ReplyPolicy};
use etherparse::{PacketBuilder, VlanId};

const PAYLOAD: &[u8] = b"afxdp-responder ping payload 0123456789";

// Offsets in an untagged frame.
const IP4_FLAGS: usize = ETH_LEN + 6;
const IP6_NEXT_HEADER: usize = ETH_LEN + 6;

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests need root (run ./run.sh test)"
    );
}

fn load() -> EngineProgram {
    require_root();
    let owned = [IpAddr::from(OUR_V4), IpAddr::from(OUR_V6)];
    let mut program = EngineProgram::load(OUR_MAC, &owned).expect("load the redirect program");
    prepare_mirror(&mut program, LOOPBACK);
    program
}

/// A prepared host mirror for device `ifindex`: the peer's subnets on-link by it and the peer's
/// neighbour entries, as `ip route` / `ip neigh` would list them on a host with forwarding off.
/// Loopback (where BPF_PROG_TEST_RUN runs) has forwarding off: the kernel refuses the FIB
/// lookup and the program consults the mirror.
fn prepare_mirror(program: &mut EngineProgram, ifindex: u32) {
    let via = |dst: &str, gateway: IpAddr| Route {
        gateway: Some(gateway),
        ..mirror_route(dst, 0, kind::UNICAST, ifindex)
    };
    let routes = [
        mirror_route("198.18.0.0", 15, kind::UNICAST, ifindex),
        mirror_route("2001:db8::", 32, kind::UNICAST, ifindex),
        // A default route through the peer, so that any unicast source has a route.
        via("0.0.0.0", IpAddr::from(PEER_V4)),
        via("::", IpAddr::from(PEER_V6)),
    ];
    program
        .sync_mirror_routes(&routes, &[ifindex])
        .expect("fill mirror_routes");
    add_peer_neighbours(program, ifindex);
}

/// Which counter a test run moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counted {
    Redirected,
    NoSocket,
    Passed,
}

/// Runs the program on `frame` (queue 0); checks that exactly one counter moved by exactly one.
fn run(program: &EngineProgram, frame: &[u8]) -> (u32, Counted) {
    let before = program.counters().expect("read counters");
    let action = program.test_run(frame, 0).expect("BPF_PROG_TEST_RUN");
    let after = program.counters().expect("read counters");
    (action, which_counter(before, after))
}

fn which_counter(before: EngineCounters, after: EngineCounters) -> Counted {
    let deltas = (
        after.handled - before.handled,
        after.no_socket - before.no_socket,
        after.passed - before.passed,
    );
    match deltas {
        (1, 0, 0) => Counted::Redirected,
        (0, 1, 0) => Counted::NoSocket,
        (0, 0, 1) => Counted::Passed,
        other => panic!("exactly one counter should move by one, moved {other:?}"),
    }
}

/// The frame took the redirect path; with no socket registered that means XDP_PASS.
#[track_caller]
fn assert_redirect_path(program: &EngineProgram, frame: &[u8], what: &str) {
    let (action, counted) = run(program, frame);
    assert_eq!(
        (xdp_action_name(action), counted),
        ("XDP_PASS", Counted::NoSocket),
        "{what}: an owned echo request with no socket must fall back to XDP_PASS and count no_socket"
    );
}

/// The frame is not ours: passed to the kernel and counted as such.
#[track_caller]
fn assert_passed(program: &EngineProgram, frame: &[u8], what: &str) {
    let (action, counted) = run(program, frame);
    assert_eq!(
        (xdp_action_name(action), counted),
        ("XDP_PASS", Counted::Passed),
        "{what}: must be passed to the kernel"
    );
}

// ---------------------------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------------------------

fn echo_v4(src_mac: [u8; 6], dst_mac: [u8; 6], src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src, dst, 64)
        .icmpv4_echo_request(0x1234, 1)
        .write(&mut frame, PAYLOAD)
        .expect("build IPv4 echo request");
    frame
}

fn echo_v6(src_mac: [u8; 6], dst_mac: [u8; 6], src: [u8; 16], dst: [u8; 16]) -> Vec<u8> {
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv6(src, dst, 64)
        .icmpv6_echo_request(0x1234, 1)
        .write(&mut frame, PAYLOAD)
        .expect("build IPv6 echo request");
    frame
}

/// An echo request for us, from the peer.
fn request_v4() -> Vec<u8> {
    echo_v4(PEER_MAC, OUR_MAC, PEER_V4, OUR_V4)
}

fn request_v6() -> Vec<u8> {
    echo_v6(PEER_MAC, OUR_MAC, PEER_V6, OUR_V6)
}

fn tagged_request_v4(vlan: u16) -> Vec<u8> {
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(PEER_MAC, OUR_MAC)
        .single_vlan(VlanId::try_new(vlan).expect("valid VLAN id"))
        .ipv4(PEER_V4, OUR_V4, 64)
        .icmpv4_echo_request(0x1234, 1)
        .write(&mut frame, PAYLOAD)
        .expect("build tagged IPv4 echo request");
    frame
}

fn tagged_request_v6(vlan: u16) -> Vec<u8> {
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(PEER_MAC, OUR_MAC)
        .single_vlan(VlanId::try_new(vlan).expect("valid VLAN id"))
        .ipv6(PEER_V6, OUR_V6, 64)
        .icmpv6_echo_request(0x1234, 1)
        .write(&mut frame, PAYLOAD)
        .expect("build tagged IPv6 echo request");
    frame
}

/// Recomputes the IPv4 header checksum of the header at `l3` (the program does not check it,
/// but the frames stay valid apart from the one property under test).
fn fix_ipv4_checksum(frame: &mut [u8], l3: usize) {
    let header_len = usize::from(frame[l3] & 0x0f) * 4;
    frame[l3 + 10..l3 + 12].copy_from_slice(&[0, 0]);
    let mut sum: u32 = frame[l3..l3 + header_len]
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], pair[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    frame[l3 + 10..l3 + 12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

fn arp_request_for_us() -> Vec<u8> {
    let mut frame = Vec::new();
    frame.extend_from_slice(&[0xff; 6]); // broadcast
    frame.extend_from_slice(&PEER_MAC);
    frame.extend_from_slice(&[0x08, 0x06]); // ARP
    frame.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]); // Ethernet/IPv4, request
    frame.extend_from_slice(&PEER_MAC);
    frame.extend_from_slice(&PEER_V4);
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&OUR_V4);
    frame
}

// ---------------------------------------------------------------------------------------------
// Owned echo requests take the redirect path
// ---------------------------------------------------------------------------------------------

#[test]
fn owned_echo_request_without_socket_passes_and_counts_no_socket() {
    let program = load();
    assert_redirect_path(&program, &request_v4(), "IPv4 echo request");
    assert_redirect_path(&program, &request_v6(), "ICMPv6 echo request");
    let counters = program.counters().unwrap();
    assert_eq!(
        counters,
        EngineCounters {
            handled: 0,
            no_socket: 2,
            passed: 0,
            bad_checksum: 0,
            fib: FibPasses::ZERO,
            // BPF_PROG_TEST_RUN without an interface runs on loopback, where forwarding is off:
            // the kernel refuses the FIB lookup, and the host mirror (prepared by load()) says
            // yes. The FIB's and the mirror's verdicts are tested on a veth below.
            mirror_handled: 2,
            ..EngineCounters::default()
        }
    );
}

#[test]
fn owned_echo_request_with_a_bound_socket_redirects() {
    require_root();
    let ns = veth_pair();
    let _inside = ns.enter();
    let ifindex = nix::net::if_::if_nametoindex("afxr-a").expect("veth inside the netns");
    let cfg = XskConfig {
        fill_size: 64,
        comp_size: 64,
        rx_size: 64,
        tx_size: 64,
        ..XskConfig::default()
    };
    let socket = Xsk::open("afxr-a", ifindex, 0, &cfg, BindMode::Copy).expect("bind an AF_XDP socket to queue 0");

    let mut program = load();
    program
        .register_socket(0, socket.fd())
        .expect("register the socket in the XSKMAP");
    for (frame, what) in [
        (request_v4(), "IPv4 echo request"),
        (request_v6(), "ICMPv6 echo request"),
    ] {
        let (action, counted) = run(&program, &frame);
        assert_eq!(xdp_action_name(action), xdp_action_name(XDP_REDIRECT), "{what}");
        assert_eq!(counted, Counted::Redirected, "{what}");
    }
    // A bound socket changes nothing for frames that are not ours.
    let mut reply = request_v4();
    reply[ETH_LEN + 20] = 0; // ICMP type 0: echo reply
    assert_eq!(run(&program, &reply), (XDP_PASS, Counted::Passed));

    // Without the socket the same request falls back to the kernel again.
    program.unregister_socket(0).unwrap();
    assert_eq!(run(&program, &request_v4()), (XDP_PASS, Counted::NoSocket));
}

#[test]
fn padded_and_dont_fragment_requests_are_still_answered() {
    let program = load();
    // Ethernet pads short frames: bytes after the IP total length are ignored.
    let mut padded = request_v4();
    padded.extend_from_slice(&[0; 20]);
    assert_redirect_path(&program, &padded, "request with Ethernet padding");
    // DF is not a fragment (ping sets it for path MTU discovery).
    let mut df = request_v4();
    df[IP4_FLAGS] |= 0x40;
    fix_ipv4_checksum(&mut df, ETH_LEN);
    assert_redirect_path(&program, &df, "request with DF set");
    // Any TTL / hop limit.
    let mut ttl1 = request_v4();
    ttl1[ETH_LEN + 8] = 1;
    fix_ipv4_checksum(&mut ttl1, ETH_LEN);
    assert_redirect_path(&program, &ttl1, "request with TTL 1");
}

#[test]
fn link_local_ipv6_address_can_be_owned() {
    let mut program = load();
    let link_local: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let frame = echo_v6(PEER_MAC, OUR_MAC, PEER_V6, link_local);
    assert_passed(&program, &frame, "link-local destination not in the map");
    program.add_address(0, IpAddr::from(link_local)).expect("add fe80::1");
    // In the map, but the kernel's FIB never routes a link-local reply (bpf_fib_lookup answers
    // NOT_FWDED before anything else): the kernel answers it, as it would without us.
    let before = program.counters().unwrap();
    assert_passed(&program, &frame, "link-local destination in the map");
    assert_eq!(program.counters().unwrap().fib.not_unicast - before.fib.not_unicast, 1);
    program
        .remove_address(0, IpAddr::from(link_local))
        .expect("remove fe80::1");
    assert_passed(&program, &frame, "link-local destination removed again");
}

// ---------------------------------------------------------------------------------------------
// Everything else is passed to the kernel
// ---------------------------------------------------------------------------------------------

#[test]
fn echo_replies_pass() {
    let program = load();
    let mut reply4 = Vec::new();
    PacketBuilder::ethernet2(PEER_MAC, OUR_MAC)
        .ipv4(PEER_V4, OUR_V4, 64)
        .icmpv4_echo_reply(0x1234, 1)
        .write(&mut reply4, PAYLOAD)
        .unwrap();
    assert_passed(&program, &reply4, "IPv4 echo reply");
    let mut reply6 = Vec::new();
    PacketBuilder::ethernet2(PEER_MAC, OUR_MAC)
        .ipv6(PEER_V6, OUR_V6, 64)
        .icmpv6_echo_reply(0x1234, 1)
        .write(&mut reply6, PAYLOAD)
        .unwrap();
    assert_passed(&program, &reply6, "ICMPv6 echo reply");
}

#[test]
fn destination_not_owned_passes() {
    let program = load();
    let other_v4 = [198, 18, 0, 3];
    let mut other_v6 = OUR_V6;
    other_v6[15] = 3;
    assert_passed(
        &program,
        &echo_v4(PEER_MAC, OUR_MAC, PEER_V4, other_v4),
        "IPv4 request for 198.18.0.3",
    );
    assert_passed(
        &program,
        &echo_v6(PEER_MAC, OUR_MAC, PEER_V6, other_v6),
        "IPv6 request for 2001:db8::3",
    );
}

#[test]
fn broadcast_and_multicast_destinations_pass() {
    let program = load();
    // The IP check alone (frames sent to our MAC), then the usual broadcast/multicast MACs.
    for dst in [[255, 255, 255, 255], [198, 18, 0, 255], [224, 0, 0, 1]] {
        let frame = echo_v4(PEER_MAC, OUR_MAC, PEER_V4, dst);
        assert_passed(&program, &frame, &format!("request for {dst:?} to our MAC"));
    }
    let broadcast = echo_v4(PEER_MAC, [0xff; 6], PEER_V4, [255, 255, 255, 255]);
    assert_passed(&program, &broadcast, "limited broadcast ping");
    let all_nodes: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let multicast6 = echo_v6(PEER_MAC, [0x33, 0x33, 0, 0, 0, 1], PEER_V6, all_nodes);
    assert_passed(&program, &multicast6, "ping ff02::1");
    let multicast6_our_mac = echo_v6(PEER_MAC, OUR_MAC, PEER_V6, all_nodes);
    assert_passed(&program, &multicast6_our_mac, "ping ff02::1 to our MAC");
}

#[test]
fn other_destination_mac_passes() {
    let program = load();
    let other_host = [0x02, 0x00, 0x00, 0x00, 0x00, 0x03];
    for (mac, what) in [
        (other_host, "another host's MAC"),
        ([0xff; 6], "broadcast MAC"),
        ([0x01, 0x00, 0x5e, 0x00, 0x00, 0x01], "IPv4 multicast MAC"),
    ] {
        assert_passed(&program, &echo_v4(PEER_MAC, mac, PEER_V4, OUR_V4), what);
    }
    let solicited_node = [0x33, 0x33, 0xff, 0x00, 0x00, 0x01];
    assert_passed(
        &program,
        &echo_v6(PEER_MAC, solicited_node, PEER_V6, OUR_V6),
        "IPv6 multicast MAC",
    );
}

#[test]
fn multicast_source_mac_passes() {
    let program = load();
    let multicast_src = [0x03, 0x00, 0x00, 0x00, 0x00, 0x02];
    assert_passed(
        &program,
        &echo_v4(multicast_src, OUR_MAC, PEER_V4, OUR_V4),
        "IPv4 from a multicast MAC",
    );
    assert_passed(
        &program,
        &echo_v6([0xff; 6], OUR_MAC, PEER_V6, OUR_V6),
        "IPv6 from the broadcast MAC",
    );
}

#[test]
fn non_unicast_source_addresses_pass() {
    let program = load();
    for src in [
        [0, 0, 0, 0],
        [0, 1, 2, 3],
        [127, 0, 0, 1],
        [224, 0, 0, 1],
        [239, 255, 255, 250],
        [255, 255, 255, 255],
    ] {
        let frame = echo_v4(PEER_MAC, OUR_MAC, src, OUR_V4);
        assert_passed(&program, &frame, &format!("IPv4 from {}", Ipv4Addr::from(src)));
    }
    // 240.0.0.0/4 (reserved) is unicast to Linux, which answers it, and to respond(): the same
    // definition on both sides (tests/xdp_differential.rs found them apart).
    for src in [[240, 0, 0, 1], [255, 255, 255, 254]] {
        let frame = echo_v4(PEER_MAC, OUR_MAC, src, OUR_V4);
        assert_redirect_path(&program, &frame, &format!("IPv4 from {}", Ipv4Addr::from(src)));
    }
    for src in ["::", "::1", "ff02::1", "ff05::2", "::ffff:198.18.0.2"] {
        let addr: Ipv6Addr = src.parse().unwrap();
        let frame = echo_v6(PEER_MAC, OUR_MAC, addr.octets(), OUR_V6);
        assert_passed(&program, &frame, &format!("IPv6 from {src}"));
    }
}

#[test]
fn fragments_pass() {
    let program = load();
    let mut more_fragments = request_v4();
    more_fragments[IP4_FLAGS] |= 0x20; // MF
    fix_ipv4_checksum(&mut more_fragments, ETH_LEN);
    assert_passed(&program, &more_fragments, "first fragment (MF set)");

    let mut later_fragment = request_v4();
    later_fragment[IP4_FLAGS + 1] = 0x01; // offset 8 bytes, MF clear: the last fragment
    fix_ipv4_checksum(&mut later_fragment, ETH_LEN);
    assert_passed(&program, &later_fragment, "last fragment (offset != 0)");

    let mut high_offset = request_v4();
    high_offset[IP4_FLAGS] |= 0x10; // highest offset bit
    fix_ipv4_checksum(&mut high_offset, ETH_LEN);
    assert_passed(&program, &high_offset, "fragment with a large offset");
}

#[test]
fn ipv4_with_options_passes() {
    let program = load();
    let mut frame = request_v4();
    // Four option bytes (NOP NOP NOP EOL) after the 20-byte header: IHL 6.
    let l4 = ETH_LEN + 20;
    frame.splice(l4..l4, [1, 1, 1, 0]);
    frame[ETH_LEN] = 0x46;
    let total = u16::from_be_bytes([frame[ETH_LEN + 2], frame[ETH_LEN + 3]]) + 4;
    frame[ETH_LEN + 2..ETH_LEN + 4].copy_from_slice(&total.to_be_bytes());
    fix_ipv4_checksum(&mut frame, ETH_LEN);
    assert_passed(&program, &frame, "IPv4 with options (IHL 6)");
}

#[test]
fn malformed_ipv4_headers_pass() {
    let program = load();
    let mut ihl4 = request_v4();
    ihl4[ETH_LEN] = 0x44;
    assert_passed(&program, &ihl4, "IHL 4 (shorter than a header)");
    let mut version6 = request_v4();
    version6[ETH_LEN] = 0x65;
    assert_passed(&program, &version6, "version 6 in an IPv4 EtherType");
    let mut short_total = request_v4();
    short_total[ETH_LEN + 2..ETH_LEN + 4].copy_from_slice(&27u16.to_be_bytes());
    fix_ipv4_checksum(&mut short_total, ETH_LEN);
    assert_passed(&program, &short_total, "total length below IP + echo header");
    let mut long_total = request_v4();
    let too_long = (long_total.len() - ETH_LEN + 1) as u16;
    long_total[ETH_LEN + 2..ETH_LEN + 4].copy_from_slice(&too_long.to_be_bytes());
    fix_ipv4_checksum(&mut long_total, ETH_LEN);
    assert_passed(&program, &long_total, "total length beyond the frame");
}

#[test]
fn ipv6_with_extension_header_passes() {
    let program = load();
    let mut frame = request_v6();
    // Hop-by-hop options header (next header 0) in front of ICMPv6: 8 bytes, a PadN option.
    frame[IP6_NEXT_HEADER] = 0;
    let l4 = ETH_LEN + 40;
    frame.splice(l4..l4, [58, 0, 1, 4, 0, 0, 0, 0]);
    let payload = u16::from_be_bytes([frame[ETH_LEN + 4], frame[ETH_LEN + 5]]) + 8;
    frame[ETH_LEN + 4..ETH_LEN + 6].copy_from_slice(&payload.to_be_bytes());
    assert_passed(&program, &frame, "IPv6 with a hop-by-hop header");

    let mut long_payload = request_v6();
    let too_long = (long_payload.len() - ETH_LEN - 40 + 1) as u16;
    long_payload[ETH_LEN + 4..ETH_LEN + 6].copy_from_slice(&too_long.to_be_bytes());
    assert_passed(&program, &long_payload, "IPv6 payload length beyond the frame");
}

#[test]
fn arp_passes() {
    let program = load();
    assert_passed(&program, &arp_request_for_us(), "ARP request for our address");
    let mut unicast_arp = arp_request_for_us();
    unicast_arp[..6].copy_from_slice(&OUR_MAC);
    assert_passed(&program, &unicast_arp, "unicast ARP to our MAC");
}

#[test]
fn non_icmp_passes() {
    let program = load();
    let mut udp = Vec::new();
    PacketBuilder::ethernet2(PEER_MAC, OUR_MAC)
        .ipv4(PEER_V4, OUR_V4, 64)
        .udp(4000, 7)
        .write(&mut udp, PAYLOAD)
        .unwrap();
    assert_passed(&program, &udp, "UDP to our address");
    let mut tcp = Vec::new();
    PacketBuilder::ethernet2(PEER_MAC, OUR_MAC)
        .ipv6(PEER_V6, OUR_V6, 64)
        .tcp(40000, 22, 1, 1024)
        .write(&mut tcp, &[])
        .unwrap();
    assert_passed(&program, &tcp, "TCP (SSH) over IPv6 to our address");

    // ICMP that is not an echo request: neighbour solicitation, destination unreachable.
    let mut ns = request_v6();
    ns[ETH_LEN + 40] = 135;
    assert_passed(&program, &ns, "ICMPv6 type 135");
    let mut unreachable = request_v4();
    unreachable[ETH_LEN + 20] = 3;
    assert_passed(&program, &unreachable, "ICMP type 3");
    // ICMPv4 protocol number inside IPv6 and vice versa.
    let mut icmp4_in_v6 = request_v6();
    icmp4_in_v6[IP6_NEXT_HEADER] = 1;
    assert_passed(&program, &icmp4_in_v6, "protocol 1 in IPv6");
    let mut icmp6_in_v4 = request_v4();
    icmp6_in_v4[ETH_LEN + 9] = 58;
    fix_ipv4_checksum(&mut icmp6_in_v4, ETH_LEN);
    assert_passed(&program, &icmp6_in_v4, "protocol 58 in IPv4");
    // An IPv6 packet in an IPv4 EtherType and the reverse.
    let mut v6_as_v4 = request_v6();
    v6_as_v4[12..14].copy_from_slice(&[0x08, 0x00]);
    assert_passed(&program, &v6_as_v4, "IPv6 packet with EtherType 0x0800");
}

#[test]
fn truncated_frames_never_take_the_redirect_path() {
    let program = load();
    for (name, full) in [
        ("IPv4", request_v4()),
        ("IPv6", request_v6()),
        ("VLAN 0 IPv4", tagged_request_v4(0)),
        ("VLAN 0 IPv6", tagged_request_v6(0)),
    ] {
        for len in 0..full.len() {
            let frame = &full[..len];
            if len < afxdp_responder::loader::TEST_RUN_MIN_FRAME {
                // The kernel refuses to run XDP on less than an Ethernet header.
                let err = program.test_run(frame, 0).unwrap_err();
                assert!(
                    matches!(err, LoaderError::TestRunFrameTooShort { .. }),
                    "{name} truncated to {len}: {err}"
                );
                continue;
            }
            assert_passed(&program, frame, &format!("{name} truncated to {len} bytes"));
        }
        assert_redirect_path(&program, &full, &format!("{name} at full length"));
    }
}

// ---------------------------------------------------------------------------------------------
// VLANs
// ---------------------------------------------------------------------------------------------

#[test]
fn priority_tagged_frames_count_as_untagged() {
    let program = load();
    assert_redirect_path(&program, &tagged_request_v4(0), "IPv4 priority-tagged (VLAN 0)");
    assert_redirect_path(&program, &tagged_request_v6(0), "IPv6 priority-tagged (VLAN 0)");
    let mut qinq_outer = tagged_request_v4(0);
    qinq_outer[12..14].copy_from_slice(&[0x88, 0xa8]);
    assert_redirect_path(&program, &qinq_outer, "802.1ad tag with VLAN 0");
}

#[test]
fn tagged_frames_match_only_their_vlan() {
    let mut program = load();
    assert_passed(&program, &tagged_request_v4(5), "VLAN 5, address only on VLAN 0");
    assert_passed(&program, &tagged_request_v6(5), "VLAN 5, address only on VLAN 0");

    // Named with its device (here loopback, where the test run says the frame arrived): the
    // mirror's route leaves by it. Without a device the reply's egress is unknown: passed.
    program.add_address(5, IpAddr::from(OUR_V6)).unwrap();
    assert_passed(
        &program,
        &tagged_request_v6(5),
        "VLAN 5, its device unknown (other-egress)",
    );
    program.add_address_on(5, IpAddr::from(OUR_V4), LOOPBACK).unwrap();
    program.add_address_on(5, IpAddr::from(OUR_V6), LOOPBACK).unwrap();
    assert_redirect_path(&program, &tagged_request_v4(5), "VLAN 5 IPv4, address on VLAN 5");
    assert_redirect_path(&program, &tagged_request_v6(5), "VLAN 5 IPv6, address on VLAN 5");
    assert_passed(&program, &tagged_request_v4(6), "VLAN 6, address on VLAN 0 and 5");

    // The PCP and DEI bits are not part of the VLAN id.
    let mut with_priority = tagged_request_v4(5);
    with_priority[14] |= 0xf0; // PCP 7, DEI 1
    assert_redirect_path(&program, &with_priority, "VLAN 5 with PCP 7 and DEI");

    // Only on VLAN 5 now: untagged requests for it go to the kernel.
    program.remove_address(0, IpAddr::from(OUR_V4)).unwrap();
    assert_passed(&program, &request_v4(), "untagged, address only on VLAN 5");
    assert_redirect_path(&program, &tagged_request_v4(5), "VLAN 5 still answered");
}

#[test]
fn double_tagged_frames_pass() {
    let mut program = load();
    program.add_address(5, IpAddr::from(OUR_V4)).unwrap();
    program.add_address(7, IpAddr::from(OUR_V4)).unwrap();
    // Outer 802.1ad tag VLAN 5, inner 802.1Q tag VLAN 7.
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(PEER_MAC, OUR_MAC)
        .double_vlan(VlanId::try_new(5).unwrap(), VlanId::try_new(7).unwrap())
        .ipv4(PEER_V4, OUR_V4, 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut frame, PAYLOAD)
        .unwrap();
    assert_passed(&program, &frame, "QinQ");
    let mut dot1q_twice = frame.clone();
    dot1q_twice[12..14].copy_from_slice(&[0x81, 0x00]);
    assert_passed(&program, &dot1q_twice, "two 802.1Q tags");
    let mut truncated_tag = tagged_request_v4(5);
    truncated_tag.truncate(ETH_LEN + 2);
    assert_passed(&program, &truncated_tag, "frame ending inside the VLAN tag");
}

// ---------------------------------------------------------------------------------------------
// API edges
// ---------------------------------------------------------------------------------------------

#[test]
fn load_rejects_bad_configuration() {
    require_root();
    let err = EngineProgram::load([0x03, 0, 0, 0, 0, 1], &[]).unwrap_err();
    assert!(matches!(err, LoaderError::InvalidMac { .. }), "{err}");
    let err = EngineProgram::load(OUR_MAC, &["255.255.255.255".parse().unwrap()]).unwrap_err();
    assert!(matches!(err, LoaderError::InvalidAddress { .. }), "{err}");
    let too_many: Vec<IpAddr> = (0..=1024u32)
        .map(|i| IpAddr::from(Ipv6Addr::from((0x2001_0db8_u128 << 96) | (u128::from(i) + 1))))
        .collect();
    let err = EngineProgram::load(OUR_MAC, &too_many).unwrap_err();
    assert!(matches!(err, LoaderError::TooManyAddresses { .. }), "{err}");
}

#[test]
fn program_with_no_addresses_passes_everything() {
    require_root();
    let program = EngineProgram::load(OUR_MAC, &[]).unwrap();
    assert_passed(&program, &request_v4(), "no owned addresses");
}

#[test]
fn socket_registration_is_checked() {
    let mut program = load();
    let err = program.register_socket(64, std::io::stdin().as_fd()).unwrap_err();
    assert!(
        matches!(err, LoaderError::QueueOutOfRange { queue_id: 64, max: 64 }),
        "{err}"
    );
    // A UDP socket is not an AF_XDP socket: the kernel refuses it and the error says why.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let err = program.register_socket(0, udp.as_fd()).unwrap_err();
    assert!(err.to_string().contains("AF_XDP socket"), "{err}");
    program
        .unregister_socket(0)
        .expect("unregistering an empty slot is fine");
    assert_redirect_path(&program, &request_v4(), "still no socket");
}

#[test]
fn test_run_on_queue_other_than_zero_needs_an_interface() {
    let program = load();
    let err = program.test_run(&request_v4(), 3).unwrap_err();
    assert!(matches!(err, LoaderError::TestRunQueue { rx_queue_index: 3 }), "{err}");
}

#[test]
fn test_run_on_queue_3_of_a_four_queue_veth() {
    require_root();
    let ns = NetNs::new();
    ns.ip(&[
        "link",
        "add",
        "afxr-a",
        "numrxqueues",
        "4",
        "numtxqueues",
        "4",
        "type",
        "veth",
        "peer",
        "name",
        "afxr-b",
        "numrxqueues",
        "4",
        "numtxqueues",
        "4",
    ]);
    let _inside = ns.enter();
    let ifindex = nix::net::if_::if_nametoindex("afxr-a").expect("veth inside the netns");

    let mut program = load();
    prepare_mirror(&mut program, ifindex);
    let before = program.counters().unwrap();
    let action = program
        .test_run_on_interface(&request_v4(), ifindex, 3)
        .expect("queue 3 exists");
    assert_eq!(action, XDP_PASS);
    assert_eq!(which_counter(before, program.counters().unwrap()), Counted::NoSocket);
    let err = program.test_run_on_interface(&request_v4(), ifindex, 4).unwrap_err();
    assert!(err.to_string().contains("RX queue"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// The FIB decides (redirect-ebpf/reply_path.h), on a veth with routes and neighbours
// ---------------------------------------------------------------------------------------------

/// Each pass counter's growth from `b` to `a`.
fn passes_delta(b: FibPasses, a: FibPasses) -> FibPasses {
    FibPasses {
        no_neigh: a.no_neigh - b.no_neigh,
        not_unicast: a.not_unicast - b.not_unicast,
        no_route: a.no_route - b.no_route,
        frag_needed: a.frag_needed - b.frag_needed,
        other_egress: a.other_egress - b.other_egress,
        other: a.other - b.other,
    }
}

/// Which FIB counter moved, if any.
fn fib_delta(before: EngineCounters, after: EngineCounters) -> (FibPasses, u64) {
    (
        passes_delta(before.fib, after.fib),
        after.mirror_handled - before.mirror_handled,
    )
}

/// A namespace with the responder's veth `afxr-f` (our MAC and addresses, forwarding on), its
/// peer `afxr-p`, a second pair `afxr-o`/`afxr-q` for "another interface", the peer's neighbour
/// entries, and the routes the cases need.
fn fib_namespace() -> NetNs {
    let ns = NetNs::new();
    let (our_mac, peer_mac) = (afxdp_lab::mac_string(OUR_MAC), afxdp_lab::mac_string(PEER_MAC));
    let script = [
        format!("link add afxr-f address {our_mac} type veth peer name afxr-p"),
        "link add afxr-o type veth peer name afxr-q".to_string(),
        "link set afxr-f up".to_string(),
        "link set afxr-p up".to_string(),
        "link set afxr-o up".to_string(),
        "link set afxr-q up".to_string(),
        "addr add 198.18.0.1/24 dev afxr-f".to_string(),
        "addr add 2001:db8::1/64 dev afxr-f nodad".to_string(),
        "addr add 198.19.8.1/24 dev afxr-o".to_string(),
        format!("neigh add 198.18.0.2 lladdr {peer_mac} dev afxr-f nud permanent"),
        format!("-6 neigh add 2001:db8::2 lladdr {peer_mac} dev afxr-f nud permanent"),
        "neigh add 198.19.8.5 lladdr 02:00:00:00:00:08 dev afxr-o nud permanent".to_string(),
        "route add blackhole 198.19.1.0/24".to_string(),
        "route add unreachable 198.19.2.0/24".to_string(),
        "route add 198.19.4.0/24 via 198.18.0.2 dev afxr-f mtu lock 576".to_string(),
        "-6 route add blackhole 2001:db8:11::/64".to_string(),
        "-6 route add 2001:db8:4::/64 via 2001:db8::2 dev afxr-f mtu lock 1280".to_string(),
    ];
    for line in script {
        ns.ip(&line.split_whitespace().collect::<Vec<_>>());
    }
    set_forwarding(&ns, true);
    ns
}

fn set_forwarding(ns: &NetNs, on: bool) {
    let value = if on { "1" } else { "0" };
    for key in ["net.ipv4.conf.afxr-f.forwarding", "net.ipv6.conf.afxr-f.forwarding"] {
        run_cmd(
            "ip",
            &["netns", "exec", &ns.name, "sysctl", "-qw", &format!("{key}={value}")],
        );
    }
}

/// What one run on the veth did: the verdict, the counter that moved, the FIB pass counters'
/// deltas, and how many requests were handled unchecked.
type FibOutcome = (&'static str, Counted, FibPasses, u64);

/// Runs `frame` as if it arrived on `ifindex`: the action and the counters before and after.
fn test_run_counted(program: &EngineProgram, ifindex: u32, frame: &[u8]) -> (u32, EngineCounters, EngineCounters) {
    let before = program.counters().expect("read counters");
    let action = program
        .test_run_on_interface(frame, ifindex, 0)
        .expect("BPF_PROG_TEST_RUN");
    let after = program.counters().expect("read counters");
    (action, before, after)
}

/// Runs `frame` as if it arrived on `afxr-f`.
fn run_on(program: &EngineProgram, ifindex: u32, frame: &[u8]) -> FibOutcome {
    let (action, before, after) = test_run_counted(program, ifindex, frame);
    let (fib, unchecked) = fib_delta(before, after);
    (xdp_action_name(action), which_counter(before, after), fib, unchecked)
}

fn echo_v4_sized(src: [u8; 4], payload: usize) -> Vec<u8> {
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(PEER_MAC, OUR_MAC)
        .ipv4(src, OUR_V4, 64)
        .icmpv4_echo_request(0x1234, 1)
        .write(&mut frame, &vec![0xa5; payload])
        .expect("build IPv4 echo request");
    frame
}

fn echo_v6_sized(src: [u8; 16], payload: usize) -> Vec<u8> {
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(PEER_MAC, OUR_MAC)
        .ipv6(src, OUR_V6, 64)
        .icmpv6_echo_request(0x1234, 1)
        .write(&mut frame, &vec![0xa5; payload])
        .expect("build IPv6 echo request");
    frame
}

fn v6(last: u16, prefix: [u16; 3]) -> [u8; 16] {
    Ipv6Addr::new(prefix[0], prefix[1], prefix[2], 0, 0, 0, 0, last).octets()
}

#[test]
fn fib_decides_which_owned_requests_are_redirected() {
    require_root();
    let ns = fib_namespace();
    let _inside = ns.enter();
    let ifindex = nix::net::if_::if_nametoindex("afxr-f").expect("veth inside the netns");
    let program = load();
    let db8 = [0x2001, 0x0db8, 0];

    let redirected = ("XDP_PASS", Counted::NoSocket, FibPasses::ZERO, 0);
    let passed = |fib: FibPasses| ("XDP_PASS", Counted::Passed, fib, 0);
    let one = FibPasses::ZERO;
    let cases: Vec<(&str, Vec<u8>, FibOutcome)> = vec![
        ("v4 from the resolved peer", request_v4(), redirected),
        ("v6 from the resolved peer", request_v6(), redirected),
        (
            "v4 routed back through the peer, under the route MTU",
            echo_v4_sized([198, 19, 4, 9], 500),
            redirected,
        ),
        (
            "v6 routed back through the peer, under the route MTU",
            echo_v6_sized(v6(9, [0x2001, 0x0db8, 4]), 1000),
            redirected,
        ),
        (
            "v4 on-link source without a neighbour entry",
            echo_v4_sized([198, 18, 0, 77], 56),
            passed(FibPasses { no_neigh: 1, ..one }),
        ),
        (
            "v6 on-link source without a neighbour entry",
            echo_v6_sized(v6(0x77, db8), 56),
            passed(FibPasses { no_neigh: 1, ..one }),
        ),
        (
            "v4 source = our own address",
            echo_v4_sized(OUR_V4, 56),
            passed(FibPasses { not_unicast: 1, ..one }),
        ),
        (
            "v4 source = the subnet broadcast address",
            echo_v4_sized([198, 18, 0, 255], 56),
            passed(FibPasses { not_unicast: 1, ..one }),
        ),
        (
            "v4 source without any route",
            echo_v4_sized([198, 19, 9, 9], 56),
            passed(FibPasses { not_unicast: 1, ..one }),
        ),
        (
            "v4 source behind a blackhole route",
            echo_v4_sized([198, 19, 1, 5], 56),
            passed(FibPasses { no_route: 1, ..one }),
        ),
        (
            "v4 source behind an unreachable route",
            echo_v4_sized([198, 19, 2, 5], 56),
            passed(FibPasses { no_route: 1, ..one }),
        ),
        (
            "v6 source behind a blackhole route",
            echo_v6_sized(v6(5, [0x2001, 0x0db8, 0x11]), 56),
            passed(FibPasses { no_route: 1, ..one }),
        ),
        (
            "v4 reply larger than the route MTU (576, locked)",
            echo_v4_sized([198, 19, 4, 9], 1000),
            passed(FibPasses { frag_needed: 1, ..one }),
        ),
        (
            "v6 reply larger than the route MTU (1280, locked)",
            echo_v6_sized(v6(9, [0x2001, 0x0db8, 4]), 1400),
            passed(FibPasses { frag_needed: 1, ..one }),
        ),
        (
            "v4 reply that would leave by another interface",
            echo_v4_sized([198, 19, 8, 5], 56),
            passed(FibPasses { other_egress: 1, ..one }),
        ),
        (
            "v6 IPv4-compatible source ::198.18.0.2",
            echo_v6_sized(
                Ipv6Addr::from(u128::from(u32::from(Ipv4Addr::from(PEER_V4)))).octets(),
                56,
            ),
            passed(FibPasses { not_unicast: 1, ..one }),
        ),
    ];
    for (what, frame, expected) in cases {
        assert_eq!(run_on(&program, ifindex, &frame), expected, "{what}");
    }

    // The interface's MAC changes: a request still sent to the old MAC (the config map's) is no
    // longer the device's, and the FIB's source MAC says so. (A MAC change flushes the neighbour
    // table, permanent entries too: the peer is put back each time.)
    let peer = afxdp_lab::mac_string(PEER_MAC);
    let set_mac = |mac: &str| {
        ns.ip(&["link", "set", "dev", "afxr-f", "address", mac]);
        ns.ip(&[
            "neigh",
            "replace",
            "198.18.0.2",
            "lladdr",
            &peer,
            "dev",
            "afxr-f",
            "nud",
            "permanent",
        ]);
    };
    set_mac("02:00:00:00:00:42");
    assert_eq!(
        run_on(&program, ifindex, &request_v4()),
        passed(FibPasses { other_egress: 1, ..one }),
        "to the old MAC after a MAC change"
    );
    set_mac(&afxdp_lab::mac_string(OUR_MAC));
    assert_eq!(run_on(&program, ifindex, &request_v4()), redirected, "the MAC is back");

    // Forwarding off: the kernel refuses the lookup; the host mirror decides (an empty one
    // here: nothing is routed, so the request is passed). mirror_decides_* tests it filled.
    set_forwarding(&ns, false);
    let mut program = program;
    program.sync_mirror_routes(&[], &[ifindex]).expect("empty the mirror");
    let (action, counted, fib, handled) = run_on(&program, ifindex, &request_v4());
    assert_eq!(
        (action, counted, fib, handled),
        ("XDP_PASS", Counted::Passed, FibPasses::ZERO, 0),
        "forwarding off, no route in the mirror: passed"
    );
}

/// Which mirror pass counter moved (forwarding off), and whether the mirror handled it.
fn mirror_delta(before: EngineCounters, after: EngineCounters) -> (FibPasses, u64) {
    (
        passes_delta(before.mirror, after.mirror),
        after.mirror_handled - before.mirror_handled,
    )
}

/// Runs `frame` as if it arrived on `ifindex` with forwarding off: the verdict, the counter that
/// moved, the mirror's pass counters' deltas, and how many the mirror handled.
fn run_mirrored(program: &EngineProgram, ifindex: u32, frame: &[u8]) -> FibOutcome {
    let (action, before, after) = test_run_counted(program, ifindex, frame);
    assert_eq!(fib_delta(before, after).0, FibPasses::ZERO, "the FIB gave no verdict");
    let (passes, handled) = mirror_delta(before, after);
    (xdp_action_name(action), which_counter(before, after), passes, handled)
}

/// The host mirror, filled from this namespace's real routing and neighbour tables (the same
/// dumps the daemon takes), decides like Linux when forwarding is off: the same classes as
/// `fib_decides_which_owned_requests_are_redirected`, counted in the mirror's slots, and the
/// route's hoplimit travels in the metadata.
#[test]
fn mirror_decides_when_forwarding_is_off() {
    require_root();
    let ns = fib_namespace();
    set_forwarding(&ns, false);
    for line in [
        "route add prohibit 198.19.3.0/24",
        "route add 198.19.6.0/24 via 198.18.0.2 dev afxr-f hoplimit 9",
        "-6 route add 2001:db8:6::/64 via 2001:db8::2 dev afxr-f hoplimit 9",
        "-6 route add unreachable 2001:db8:12::/64",
        "route add 198.19.7.0/24 dev afxr-f mtu 700",
    ] {
        ns.ip(&line.split_whitespace().collect::<Vec<_>>());
    }
    let _inside = ns.enter();
    let ifindex = nix::net::if_::if_nametoindex("afxr-f").expect("veth inside the netns");
    let mut program = load();
    let served = [ifindex];
    let routes = afxdp_responder::netlink::route::dump_routes().expect("route dump");
    program.sync_mirror_routes(&routes, &served).expect("mirror the routes");
    let neighbours = afxdp_responder::netlink::route::dump_neighbours().expect("neighbour dump");
    program
        .replace_mirror_neighbours(&neighbours, &served)
        .expect("mirror the neighbours");
    let db8 = [0x2001, 0x0db8, 0];

    let run_mirror = |program: &EngineProgram, frame: &[u8]| run_mirrored(program, ifindex, frame);
    let redirected = ("XDP_PASS", Counted::NoSocket, FibPasses::ZERO, 1);
    let passed = |p: FibPasses| ("XDP_PASS", Counted::Passed, p, 0);
    let one = FibPasses::ZERO;
    let cases: Vec<(&str, Vec<u8>, FibOutcome)> = vec![
        ("v4 from the resolved peer", request_v4(), redirected),
        ("v6 from the resolved peer", request_v6(), redirected),
        (
            "v4 routed back through the peer",
            echo_v4_sized([198, 19, 4, 9], 500),
            redirected,
        ),
        (
            "v6 routed back through the peer",
            echo_v6_sized(v6(9, [0x2001, 0x0db8, 4]), 1000),
            redirected,
        ),
        (
            "v4 on-link source without a neighbour entry",
            echo_v4_sized([198, 18, 0, 77], 56),
            passed(FibPasses { no_neigh: 1, ..one }),
        ),
        (
            "v6 on-link source without a neighbour entry",
            echo_v6_sized(v6(0x77, db8), 56),
            passed(FibPasses { no_neigh: 1, ..one }),
        ),
        (
            "v4 source = our own address",
            echo_v4_sized(OUR_V4, 56),
            passed(FibPasses { not_unicast: 1, ..one }),
        ),
        (
            "v6 source = our own address",
            echo_v6_sized(OUR_V6, 56),
            passed(FibPasses { not_unicast: 1, ..one }),
        ),
        (
            "v4 source = the subnet broadcast address",
            echo_v4_sized([198, 18, 0, 255], 56),
            passed(FibPasses { not_unicast: 1, ..one }),
        ),
        (
            "v4 source without any route",
            echo_v4_sized([198, 19, 9, 9], 56),
            passed(FibPasses { no_route: 1, ..one }),
        ),
        (
            "v4 source behind a blackhole route",
            echo_v4_sized([198, 19, 1, 5], 56),
            passed(FibPasses { no_route: 1, ..one }),
        ),
        (
            "v4 source behind an unreachable route",
            echo_v4_sized([198, 19, 2, 5], 56),
            passed(FibPasses { no_route: 1, ..one }),
        ),
        (
            "v4 source behind a prohibit route",
            echo_v4_sized([198, 19, 3, 5], 56),
            passed(FibPasses { no_route: 1, ..one }),
        ),
        (
            "v6 source behind a blackhole route",
            echo_v6_sized(v6(5, [0x2001, 0x0db8, 0x11]), 56),
            passed(FibPasses { no_route: 1, ..one }),
        ),
        (
            "v6 source behind an unreachable route",
            echo_v6_sized(v6(5, [0x2001, 0x0db8, 0x12]), 56),
            passed(FibPasses { no_route: 1, ..one }),
        ),
        (
            "v4 reply larger than the route MTU (576, locked)",
            echo_v4_sized([198, 19, 4, 9], 1000),
            passed(FibPasses { frag_needed: 1, ..one }),
        ),
        (
            "v4 reply larger than the route MTU (700, not locked)",
            echo_v4_sized([198, 19, 7, 9], 1000),
            passed(FibPasses { frag_needed: 1, ..one }),
        ),
        (
            "v6 reply larger than the route MTU (1280, locked)",
            echo_v6_sized(v6(9, [0x2001, 0x0db8, 4]), 1400),
            passed(FibPasses { frag_needed: 1, ..one }),
        ),
        (
            "v4 reply that would leave by another interface",
            echo_v4_sized([198, 19, 8, 5], 56),
            passed(FibPasses { other_egress: 1, ..one }),
        ),
        (
            "v6 IPv4-compatible source ::198.18.0.2",
            echo_v6_sized(
                Ipv6Addr::from(u128::from(u32::from(Ipv4Addr::from(PEER_V4)))).octets(),
                56,
            ),
            passed(FibPasses { no_route: 1, ..one }),
        ),
    ];
    for (what, frame, expected) in cases {
        assert_eq!(run_mirror(&program, &frame), expected, "{what}");
    }

    // The route's hoplimit, and the neighbour's MAC whatever the frame's source MAC was
    // (all-zero here), travel in the metadata.
    for (what, frame, hop_limit) in [
        (
            "v4 on a route with hoplimit 9",
            echo_v4(PEER_MAC, OUR_MAC, [198, 19, 6, 6], OUR_V4),
            9,
        ),
        (
            "v6 on a route with hoplimit 9",
            echo_v6(PEER_MAC, OUR_MAC, v6(6, [0x2001, 0x0db8, 6]), OUR_V6),
            9,
        ),
        (
            "v4 on a route without one, zero source MAC",
            echo_v4([0; 6], OUR_MAC, PEER_V4, OUR_V4),
            0,
        ),
    ] {
        let (action, out) = program
            .test_run_on_interface_with_output(&frame, ifindex, 0)
            .expect("BPF_PROG_TEST_RUN");
        assert_eq!(xdp_action_name(action), "XDP_PASS", "{what}: no socket");
        let meta = NextHop::from_xdp_meta(&out).unwrap_or_else(|| panic!("{what}: reply_meta"));
        assert_eq!(
            (meta.dst_mac, meta.src_mac, meta.hop_limit),
            (PEER_MAC, OUR_MAC, hop_limit),
            "{what}"
        );
    }

    // A neighbour that goes away (INCOMPLETE/FAILED/deleted) is no longer answered.
    program
        .set_mirror_neighbour(
            &Neighbour {
                index: ifindex,
                ip: IpAddr::from(PEER_V4),
                usable_mac: None,
            },
            &served,
        )
        .expect("remove the neighbour");
    assert_eq!(
        run_mirror(&program, &request_v4()),
        passed(FibPasses { no_neigh: 1, ..one }),
        "after the neighbour left"
    );

    // Forwarding on: the FIB approves the reply, and the mirror's route still gives its hoplimit.
    set_forwarding(&ns, true);
    let frame = echo_v4(PEER_MAC, OUR_MAC, [198, 19, 6, 6], OUR_V4);
    let before = program.counters().expect("read counters");
    let (action, out) = program
        .test_run_on_interface_with_output(&frame, ifindex, 0)
        .expect("BPF_PROG_TEST_RUN");
    let after = program.counters().expect("read counters");
    assert_eq!(xdp_action_name(action), "XDP_PASS", "no socket");
    assert_eq!(
        after.mirror_handled, before.mirror_handled,
        "the FIB's verdict, not the mirror's"
    );
    let meta = NextHop::from_xdp_meta(&out).expect("reply_meta");
    assert_eq!(meta.hop_limit, 9, "forwarding on: the route's hoplimit from the mirror");
    set_forwarding(&ns, false);

    // xdp-tx: the same mirror gives its reply the neighbour's MAC and the route's hop limit.
    let owned = [IpAddr::from(OUR_V4), IpAddr::from(OUR_V6)];
    let mut tx = EngineProgram::load_engine(Engine::XdpTx, OUR_MAC, &owned, ReplyPolicy::default())
        .expect("load the xdp-tx program");
    tx.sync_mirror_routes(&routes, &served).expect("mirror the routes");
    tx.replace_mirror_neighbours(&neighbours, &served)
        .expect("mirror the neighbours");
    let request = echo_v4([0x02, 0, 0, 0, 0, 0x99], OUR_MAC, [198, 19, 6, 6], OUR_V4);
    let (action, out) = tx
        .test_run_on_interface_with_output(&request, ifindex, 0)
        .expect("BPF_PROG_TEST_RUN");
    assert_eq!(xdp_action_name(action), "XDP_TX");
    assert_eq!(
        (&out[..6], &out[6..12]),
        (&PEER_MAC[..], &OUR_MAC[..]),
        "to the neighbour, from us"
    );
    assert_eq!(out[14 + 8], 9, "the route's hoplimit as the reply's TTL");
    let v6_request = echo_v6(PEER_MAC, OUR_MAC, v6(6, [0x2001, 0x0db8, 6]), OUR_V6);
    let (action, out) = tx
        .test_run_on_interface_with_output(&v6_request, ifindex, 0)
        .expect("BPF_PROG_TEST_RUN");
    assert_eq!(xdp_action_name(action), "XDP_TX");
    assert_eq!(out[14 + 7], 9, "the route's hoplimit as the reply's hop limit");
    let (action, _) = tx
        .test_run_on_interface_with_output(&echo_v4_sized([198, 19, 1, 5], 56), ifindex, 0)
        .expect("BPF_PROG_TEST_RUN");
    assert_eq!(xdp_action_name(action), "XDP_PASS", "xdp-tx: blackholed source passed");
}

/// A tagged request's reply is looked up from the device the loader names for its VLAN. This
/// kernel has no 8021q (no VLAN devices, no modules), so a second veth with our MAC and the
/// addresses stands in for `afxr-f.5`: what is tested is that the lookup starts from the named
/// device and the reply must leave by it.
#[test]
fn a_tagged_request_is_routed_from_its_vlan_device() {
    require_root();
    let ns = NetNs::new();
    let (ours, peer) = (afxdp_lab::mac_string(OUR_MAC), afxdp_lab::mac_string(PEER_MAC));
    let script = [
        format!("link add afxr-f address {ours} type veth peer name afxr-p"),
        format!("link add afxr-v address {ours} type veth peer name afxr-w"),
        "link set afxr-f up".to_string(),
        "link set afxr-p up".to_string(),
        "link set afxr-v up".to_string(),
        "link set afxr-w up".to_string(),
        "addr add 198.18.0.1/24 dev afxr-v".to_string(),
        "addr add 2001:db8::1/64 dev afxr-v nodad".to_string(),
        format!("neigh add 198.18.0.2 lladdr {peer} dev afxr-v nud permanent"),
        format!("-6 neigh add 2001:db8::2 lladdr {peer} dev afxr-v nud permanent"),
    ];
    for line in script {
        ns.ip(&line.split_whitespace().collect::<Vec<_>>());
    }
    for key in [
        "net.ipv4.conf.afxr-v.forwarding",
        "net.ipv6.conf.afxr-v.forwarding",
        "net.ipv4.conf.afxr-f.forwarding",
        "net.ipv6.conf.afxr-f.forwarding",
    ] {
        run_cmd("ip", &["netns", "exec", &ns.name, "sysctl", "-qw", &format!("{key}=1")]);
    }
    let _inside = ns.enter();
    let ifindex = nix::net::if_::if_nametoindex("afxr-f").expect("veth inside the netns");
    let vlan_ifindex = nix::net::if_::if_nametoindex("afxr-v").expect("the VLAN device's stand-in");

    let mut program = load();
    // VLAN 5 with its device named: the reply's route starts from it and leaves by it.
    program
        .add_address_on(5, IpAddr::from(OUR_V4), vlan_ifindex)
        .expect("add on VLAN 5");
    assert_eq!(
        run_on(&program, ifindex, &tagged_request_v4(5)),
        ("XDP_PASS", Counted::NoSocket, FibPasses::ZERO, 0),
        "tagged v4, VLAN device known: the redirect path, checked by the FIB"
    );
    // Without the device (add_address): the program cannot know the egress; the kernel answers.
    program.add_address(5, IpAddr::from(OUR_V6)).expect("add on VLAN 5");
    assert_eq!(
        run_on(&program, ifindex, &tagged_request_v6(5)),
        (
            "XDP_PASS",
            Counted::Passed,
            FibPasses {
                other_egress: 1,
                ..FibPasses::ZERO
            },
            0
        ),
        "tagged v6, VLAN device unknown"
    );
}

#[test]
fn the_reply_macs_come_from_the_neighbour_table_in_both_engines() {
    require_root();
    let ns = fib_namespace();
    let _inside = ns.enter();
    let ifindex = nix::net::if_::if_nametoindex("afxr-f").expect("veth inside the netns");
    // From the peer's address, but another source MAC: Linux answers the neighbour-table MAC.
    let spoofed = [0x02, 0, 0, 0, 0, 0x99];
    let request = echo_v4(spoofed, OUR_MAC, PEER_V4, OUR_V4);

    // afxdp: the metadata in front of the frame names the neighbour's and our MAC; the frame
    // itself is untouched (the worker writes the reply).
    let program = load();
    let (action, out) = program
        .test_run_on_interface_with_output(&request, ifindex, 0)
        .expect("BPF_PROG_TEST_RUN");
    assert_eq!(
        xdp_action_name(action),
        "XDP_PASS",
        "no socket: the redirect's fallback"
    );
    let meta = NextHop::from_xdp_meta(&out).expect("reply_meta in front of the frame");
    assert_eq!((meta.dst_mac, meta.src_mac), (PEER_MAC, OUR_MAC));
    assert_eq!(
        &out[NextHop::XDP_META_LEN..],
        &request[..],
        "the frame is left as it came"
    );

    // A request the FIB passes gets no metadata.
    let unresolved = echo_v4(spoofed, OUR_MAC, [198, 18, 0, 77], OUR_V4);
    let (action, out) = program
        .test_run_on_interface_with_output(&unresolved, ifindex, 0)
        .expect("BPF_PROG_TEST_RUN");
    assert_eq!((xdp_action_name(action), out), ("XDP_PASS", unresolved));

    // xdp-tx writes them into its reply.
    let owned = [IpAddr::from(OUR_V4), IpAddr::from(OUR_V6)];
    let tx = EngineProgram::load_engine(Engine::XdpTx, OUR_MAC, &owned, ReplyPolicy::default())
        .expect("load the xdp-tx program");
    let (action, out) = tx
        .test_run_on_interface_with_output(&request, ifindex, 0)
        .expect("BPF_PROG_TEST_RUN");
    assert_eq!(xdp_action_name(action), "XDP_TX");
    assert_eq!(
        (&out[..6], &out[6..12]),
        (&PEER_MAC[..], &OUR_MAC[..]),
        "to the neighbour, from us"
    );
    assert_eq!(out[14 + 20], 0, "an echo reply");
}

// ---------------------------------------------------------------------------------------------
// Attaching, inside a throwaway network namespace
// ---------------------------------------------------------------------------------------------

/// A network namespace that exists for one test: created with a unique name, removed on drop
/// (also when the test panics).
struct NetNs {
    name: String,
}

/// While alive, the current thread is inside the namespace; it goes back on drop.
struct Entered {
    original: File,
}

impl NetNs {
    fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "afxr-ebpf-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run_cmd("ip", &["netns", "add", &name]);
        Self { name }
    }

    /// `ip -n NAME ARGS…`, panicking with the output on failure.
    fn ip(&self, args: &[&str]) {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        run_cmd("ip", &full);
    }

    fn enter(&self) -> Entered {
        let original = File::open("/proc/thread-self/ns/net").expect("current netns");
        let target = File::open(format!("/var/run/netns/{}", self.name)).expect("test netns");
        nix::sched::setns(target.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("enter test netns");
        Entered { original }
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ignored = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        nix::sched::setns(self.original.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .expect("return to the original netns");
    }
}

fn run_cmd(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A veth pair `afxr-a` / `afxr-b`, both up, inside a fresh namespace.
fn veth_pair() -> NetNs {
    let ns = NetNs::new();
    ns.ip(&["link", "add", "afxr-a", "type", "veth", "peer", "name", "afxr-b"]);
    ns.ip(&["link", "set", "afxr-a", "up"]);
    ns.ip(&["link", "set", "afxr-b", "up"]);
    ns
}

/// The `prog/xdp` line of `ip link show dev IFNAME` (in the current netns), if any.
fn xdp_line(ifname: &str) -> Option<String> {
    run_cmd("ip", &["link", "show", "dev", ifname])
        .lines()
        .find(|line| line.trim_start().starts_with("prog/xdp"))
        .map(str::to_owned)
}

#[test]
fn attach_detach_and_refuse_a_second_program() {
    require_root();
    let ns = veth_pair();
    let _inside = ns.enter();

    let mut program = load();
    let mode = program.attach("afxr-a", XdpMode::Auto).expect("attach");
    assert_eq!(mode, AttachedMode::Native, "veth supports native XDP");
    assert_eq!(program.native_fallback_reason(), None);
    assert_eq!(program.attached(), Some(("afxr-a", AttachedMode::Native)));
    let id = program.program_id().unwrap();
    let line = xdp_line("afxr-a").expect("ip link shows the program");
    assert!(line.contains(&format!("id {id} ")), "{line}");

    // Attaching twice is refused by us, a second program by the kernel check.
    let err = program.attach("afxr-a", XdpMode::Native).unwrap_err();
    assert!(matches!(err, LoaderError::AttachedHere { .. }), "{err}");
    let mut second = load();
    for mode in [XdpMode::Auto, XdpMode::Native, XdpMode::Skb] {
        let err = second.attach("afxr-a", mode).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, LoaderError::AlreadyAttached { .. }), "{text}");
        assert!(text.contains(&format!("program id {id} `redirect_echo`")), "{text}");
        assert!(text.contains("held by bpf_link id"), "{text}");
    }
    assert!(second.attached().is_none());

    // The bpf_link cannot be removed with `ip link set … xdp off`.
    let off = Command::new("ip")
        .args(["link", "set", "dev", "afxr-a", "xdpdrv", "off"])
        .output()
        .unwrap();
    assert!(!off.status.success(), "ip must not be able to remove a bpf_link");

    assert!(program.detach().unwrap());
    assert_eq!(xdp_line("afxr-a"), None, "detach removes the program");
    assert!(!program.detach().unwrap());

    // Attach again in generic mode; dropping the program detaches it.
    assert_eq!(program.attach("afxr-a", XdpMode::Skb).unwrap(), AttachedMode::Skb);
    assert!(xdp_line("afxr-a").is_some());
    drop(program);
    assert_eq!(xdp_line("afxr-a"), None, "drop detaches the program");
}

#[test]
fn refuses_a_program_attached_with_ip() {
    require_root();
    let ns = veth_pair();
    let _inside = ns.enter();
    // The same object the responder embeds, as a file for `ip`.
    let object = common::object_file("redirect", redirect_ebpf::REDIRECT);
    let object = object.to_str().expect("a UTF-8 temporary path");
    run_cmd(
        "ip",
        &[
            "link",
            "set",
            "dev",
            "afxr-b",
            "xdpgeneric",
            "obj",
            object,
            "sec",
            "xdp",
        ],
    );
    let _ = std::fs::remove_file(object);

    let mut program = load();
    for mode in [XdpMode::Auto, XdpMode::Native, XdpMode::Skb] {
        let err = program.attach("afxr-b", mode).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, LoaderError::AlreadyAttached { .. }), "{text}");
        assert!(text.contains("`redirect_echo` in generic/skb mode"), "{text}");
        assert!(text.contains("ip link set dev afxr-b xdpgeneric off"), "{text}");
    }
    run_cmd("ip", &["link", "set", "dev", "afxr-b", "xdpgeneric", "off"]);
    assert_eq!(program.attach("afxr-b", XdpMode::Auto).unwrap(), AttachedMode::Native);
}

#[test]
fn attach_to_a_missing_interface_says_so() {
    let mut program = load();
    let err = program.attach("afxr-nonexistent0", XdpMode::Auto).unwrap_err();
    assert!(matches!(err, LoaderError::UnknownInterface { .. }), "{err}");
}
