//! The XDP program and `respond()` must agree: a differential test.
//!
//! A seeded generator makes well-formed echo requests (IPv4 and IPv6, untagged, priority-tagged,
//! VLAN-tagged, 802.1ad-tagged, with random identifiers, payloads, TTLs, trailers) and mutates
//! most of them (bit flips, truncations, header fields set to edge values, appended bytes; then,
//! more often than not, the checksums made right again, so the mutations get past them). Each
//! frame goes to the redirect program through `BPF_PROG_TEST_RUN`, as if it arrived on the
//! responder's veth of a lab pair (routes and permanent neighbour entries for the client's
//! addresses, so a program that consults the FIB finds them), and to echo-wire's `respond()`.
//! With no socket in the XSKMAP, "the program would redirect" shows as its `no_socket` counter.
//!
//! 1. Every frame the program redirects is one `respond()` answers, or drops for a checksum (the
//!    program does not verify checksums: `respond()` does, as the kernel does).
//! 2. Every frame `respond()` answers is redirected, unless host state says otherwise, and the
//!    reason is one of a checked list, decided from the frame by this file's own parsing: another
//!    destination MAC, a VLAN id without an owned address, a destination that is not owned, and
//!    (only if the program is seen to consult the FIB, see `program_checks_the_source_path`) a
//!    source without a route and neighbour entry.
//!
//! `DIFF_FRAMES=N` runs N frames instead of 20 000 (`DIFF_SEED=S` another seed); every run is
//! bounded by `MAX_DURATION` as well. Needs root.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use afxdp_lab::Side;
use afxdp_responder::loader::{EngineCounters, EngineProgram, XDP_PASS, xdp_action_name};
use echo_wire::respond::{DropReason, ReplyPolicy, Responder, Verdict};
use etherparse::PacketBuilder;

mod common;

const DEFAULT_FRAMES: u64 = 20_000;
const MAX_DURATION: Duration = Duration::from_secs(120);

/// splitmix64: small, seeded, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// The lab pair's facts the generator and the judge need.
struct Hosts {
    our_mac: [u8; 6],
    peer_mac: [u8; 6],
    our_v4: [u8; 4],
    peer_v4: [u8; 4],
    our_v6: [u8; 16],
    peer_v6: [u8; 16],
}

/// Where the IP header starts, and the VLAN id of the tag if there is exactly one.
fn link(frame: &[u8]) -> Option<(usize, Option<u16>)> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    if ethertype == 0x8100 || ethertype == 0x88a8 {
        let tci = u16::from_be_bytes([*frame.get(14)?, *frame.get(15)?]);
        Some((18, Some(tci & 0x0fff)))
    } else {
        Some((14, None))
    }
}

/// A well-formed echo request from the peer to us.
fn request(rng: &mut Rng, h: &Hosts) -> Vec<u8> {
    let payload: Vec<u8> = (0..rng.below(200)).map(|_| rng.byte()).collect();
    let (id, seq) = (rng.next() as u16, rng.next() as u16);
    let v6 = rng.chance(50);
    let eth = PacketBuilder::ethernet2(h.peer_mac, h.our_mac);
    let mut frame = Vec::new();
    let tag = match rng.below(10) {
        0 => Some((etherparse::EtherType::VLAN_TAGGED_FRAME, 0)), // priority tag
        1 => Some((etherparse::EtherType::VLAN_TAGGED_FRAME, 100)),
        2 => Some((etherparse::EtherType::PROVIDER_BRIDGING, 0)),
        _ => None,
    };
    let hop = (rng.below(255) + 1) as u8;
    match (v6, tag) {
        (false, None) => eth
            .ipv4(h.peer_v4, h.our_v4, hop)
            .icmpv4_echo_request(id, seq)
            .write(&mut frame, &payload),
        (true, None) => eth
            .ipv6(h.peer_v6, h.our_v6, hop)
            .icmpv6_echo_request(id, seq)
            .write(&mut frame, &payload),
        (false, Some((tpid, vid))) => eth
            .single_vlan(etherparse::VlanId::try_new(vid).unwrap())
            .ipv4(h.peer_v4, h.our_v4, hop)
            .icmpv4_echo_request(id, seq)
            .write(&mut frame, &payload)
            .map(|()| frame[12..14].copy_from_slice(&tpid.0.to_be_bytes())),
        (true, Some((tpid, vid))) => eth
            .single_vlan(etherparse::VlanId::try_new(vid).unwrap())
            .ipv6(h.peer_v6, h.our_v6, hop)
            .icmpv6_echo_request(id, seq)
            .write(&mut frame, &payload)
            .map(|()| frame[12..14].copy_from_slice(&tpid.0.to_be_bytes())),
    }
    .expect("etherparse builds the request");
    if rng.chance(10) {
        // Ethernet trailer (padding after the IP packet).
        frame.extend((0..rng.below(30)).map(|_| rng.byte()));
    }
    frame
}

/// 0 to 3 mutations, biased towards the headers.
fn mutate(rng: &mut Rng, h: &Hosts, frame: &mut Vec<u8>) {
    let Some((l3, _)) = link(frame) else { return };
    let v6 = frame.get(l3).is_some_and(|b| b >> 4 == 6);
    let l4 = l3 + if v6 { 40 } else { 20 };
    for _ in 0..rng.below(4) {
        match rng.below(12) {
            0 | 1 => {
                // A bit flip, nine times in ten in the first 70 bytes.
                let span = if rng.chance(90) {
                    frame.len().min(70)
                } else {
                    frame.len()
                };
                if span > 0 {
                    let at = rng.below(span as u64) as usize;
                    frame[at] ^= 1 << rng.below(8);
                }
            }
            2 => {
                let len = 14 + rng.below(frame.len().saturating_sub(13).max(1) as u64) as usize;
                frame.truncate(len);
            }
            3 => frame.extend((0..rng.below(16) + 1).map(|_| rng.byte())),
            4 => {
                // Destination MAC: broadcast, multicast, another host, ours.
                let macs = [[0xff; 6], [0x33, 0x33, 0, 0, 0, 1], [0x02, 0, 0, 0, 0, 0x77], h.our_mac];
                let mac = macs[rng.below(4) as usize];
                frame[..6].copy_from_slice(&mac);
            }
            5 => frame[6] |= 1, // group bit on the source MAC
            6 => {
                // EtherType / TPID.
                let types: [u16; 6] = [0x0800, 0x86dd, 0x0806, 0x8100, 0x88a8, 0x1234];
                let t = types[rng.below(6) as usize];
                let at = if l3 == 18 && frame.len() >= 18 && rng.chance(50) {
                    16
                } else {
                    12
                };
                frame[at..at + 2].copy_from_slice(&t.to_be_bytes());
            }
            7 if l3 + 40 <= frame.len() => {
                // Version / IHL / traffic class byte, length fields.
                if rng.chance(50) {
                    frame[l3] = rng.byte();
                } else {
                    let at = l3 + if v6 { 4 } else { 2 };
                    let value: u16 = match rng.below(4) {
                        0 => 0,
                        1 => rng.below(64) as u16,
                        2 => (frame.len() - l3) as u16 + rng.below(3) as u16,
                        _ => rng.next() as u16,
                    };
                    frame[at..at + 2].copy_from_slice(&value.to_be_bytes());
                }
            }
            8 if l3 + 40 <= frame.len() => {
                // Protocol / next header; IPv4 fragment flags.
                if v6 {
                    frame[l3 + 6] = [58, 0, 44, 60, 17, 6][rng.below(6) as usize];
                } else if rng.chance(50) {
                    frame[l3 + 9] = [1, 17, 6, 58][rng.below(4) as usize];
                } else {
                    let flags: [u16; 4] = [0x2000, 0x0001, 0x4000, 0x8000];
                    frame[l3 + 6..l3 + 8].copy_from_slice(&flags[rng.below(4) as usize].to_be_bytes());
                }
            }
            9 if l4 + 2 <= frame.len() => {
                // ICMP type and code.
                frame[l4] = [0, 8, 128, 129, 13, 3][rng.below(6) as usize];
                frame[l4 + 1] = if rng.chance(70) { 0 } else { rng.byte() };
            }
            10 if l3 + 40 <= frame.len() => {
                // Source address: a special one, another host (no neighbour entry), the peer.
                if v6 {
                    let specials: [[u8; 16]; 5] = [
                        [0; 16],
                        std::net::Ipv6Addr::LOCALHOST.octets(),
                        [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                        std::net::Ipv4Addr::new(198, 18, 0, 2).to_ipv6_mapped().octets(),
                        [0x20, 0x01, 0x0d, 0xb8, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7],
                    ];
                    frame[l3 + 8..l3 + 24].copy_from_slice(&specials[rng.below(5) as usize]);
                } else {
                    let specials: [[u8; 4]; 6] = [
                        [0, 0, 0, 0],
                        [127, 0, 0, 1],
                        [224, 0, 0, 1],
                        [255, 255, 255, 255],
                        [240, 0, 0, 9],
                        [198, 18, 0, 77],
                    ];
                    frame[l3 + 12..l3 + 16].copy_from_slice(&specials[rng.below(6) as usize]);
                }
            }
            11 if l3 + 40 <= frame.len() => {
                // Destination address: ours, the peer's, another one.
                if v6 {
                    let dsts = [h.our_v6, h.peer_v6, [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]];
                    frame[l3 + 24..l3 + 40].copy_from_slice(&dsts[rng.below(3) as usize]);
                } else {
                    let dsts = [h.our_v4, h.peer_v4, [198, 18, 0, 255]];
                    frame[l3 + 16..l3 + 20].copy_from_slice(&dsts[rng.below(3) as usize]);
                }
            }
            _ => {}
        }
    }
}

/// Makes the checksums of a mutated frame right again where its headers allow, so that the
/// mutations reach the checks after the checksums (otherwise most would stop at them).
fn fix_checksums(frame: &mut [u8]) {
    let Some((l3, _)) = link(frame) else { return };
    let Some(packet) = frame.get_mut(l3..) else { return };
    match packet.first().map(|b| b >> 4) {
        Some(4) => {
            if let Ok(mut ip) = echo_wire::ipv4::Packet::new_checked(&mut *packet) {
                ip.fill_checksum();
                if let Ok(mut echo) = echo_wire::icmp::EchoPacket::new_checked(ip.payload_mut()) {
                    echo.fill_checksum_v4();
                }
            }
        }
        Some(6) => {
            if let Ok(mut ip) = echo_wire::ipv6::Packet::new_checked(&mut *packet) {
                let pseudo_header = ip.pseudo_header_sum();
                if let Ok(mut echo) = echo_wire::icmp::EchoPacket::new_checked(ip.payload_mut()) {
                    echo.fill_checksum_v6(pseudo_header);
                }
            }
        }
        _ => {}
    }
}

/// Host state that rightly keeps the program from redirecting a frame `respond()` answers,
/// decided from the frame alone; `None` when there is no such reason.
fn host_state_reason(frame: &[u8], h: &Hosts, fib_gates_sources: bool) -> Option<&'static str> {
    if frame[..6] != h.our_mac {
        return Some("another destination MAC");
    }
    let (l3, vid) = link(frame)?;
    if vid.is_some_and(|v| v != 0) {
        return Some("a VLAN without owned addresses");
    }
    let v6 = frame[l3] >> 4 == 6;
    let (src, dst): (IpAddr, IpAddr) = if v6 {
        let a: [u8; 16] = frame[l3 + 8..l3 + 24].try_into().unwrap();
        let b: [u8; 16] = frame[l3 + 24..l3 + 40].try_into().unwrap();
        (a.into(), b.into())
    } else {
        let a: [u8; 4] = frame[l3 + 12..l3 + 16].try_into().unwrap();
        let b: [u8; 4] = frame[l3 + 16..l3 + 20].try_into().unwrap();
        (a.into(), b.into())
    };
    if dst != IpAddr::from(h.our_v4) && dst != IpAddr::from(h.our_v6) {
        return Some("a destination that is not owned");
    }
    if fib_gates_sources && src != IpAddr::from(h.peer_v4) && src != IpAddr::from(h.peer_v6) {
        return Some("a source without a route and neighbour entry (FIB or host mirror)");
    }
    None
}

/// Runs the program on `frame` as if it arrived on queue 0 of `ifindex`: true when it took the
/// redirect path (no socket registered: `no_socket` moves), false when it passed the frame.
fn redirects(program: &EngineProgram, ifindex: u32, frame: &[u8]) -> bool {
    let before = program.counters().expect("counters");
    let action = program
        .test_run_on_interface(frame, ifindex, 0)
        .expect("BPF_PROG_TEST_RUN");
    let after = program.counters().expect("counters");
    assert_eq!(
        xdp_action_name(action),
        xdp_action_name(XDP_PASS),
        "without a socket every verdict is XDP_PASS"
    );
    let delta = |f: fn(&EngineCounters) -> u64| f(&after) - f(&before);
    match (delta(|c| c.no_socket), delta(|c| c.passed)) {
        (1, 0) => true,
        (0, 1) => false,
        other => panic!("exactly one of no_socket / passed must move by one: {other:?}"),
    }
}

/// Enters a named network namespace for the current thread; leaves it on drop.
struct InNetns {
    original: File,
}

impl InNetns {
    fn enter(name: &str) -> Self {
        let original = File::open("/proc/thread-self/ns/net").expect("own netns");
        let target = File::open(format!("/run/netns/{name}")).expect("lab netns");
        nix::sched::setns(target.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        InNetns { original }
    }
}

impl Drop for InNetns {
    fn drop(&mut self) {
        nix::sched::setns(self.original.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("back to own netns");
    }
}

fn hex(frame: &[u8]) -> String {
    frame.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_xdp_program_and_respond_agree_on_every_frame() {
    let pair = common::pair(1);
    let cfg = pair.config().clone();
    let h = Hosts {
        our_mac: cfg.responder_mac,
        peer_mac: cfg.client_mac,
        our_v4: cfg.responder_v4.octets(),
        peer_v4: cfg.client_v4.octets(),
        our_v6: cfg.responder_v6.octets(),
        peer_v6: cfg.client_v6.octets(),
    };
    let owned = [IpAddr::from(h.our_v4), IpAddr::from(h.our_v6)];
    let mut program = EngineProgram::load(h.our_mac, &owned).expect("load the redirect program");
    let _inside = InNetns::enter(pair.ns(Side::Responder));
    let ifindex = nix::net::if_::if_nametoindex(pair.ifname(Side::Responder)).expect("ifindex");
    // Forwarding is off in the lab (the default): the program's host mirror decides, filled from
    // the namespace's own tables as the daemon fills it.
    let routes = afxdp_responder::netlink::route::dump_routes().expect("route dump");
    program
        .sync_mirror_routes(&routes, &[ifindex])
        .expect("mirror the routes");
    let neighbours = afxdp_responder::netlink::route::dump_neighbours().expect("neighbour dump");
    program
        .replace_mirror_neighbours(&neighbours, &[ifindex])
        .expect("mirror the neighbours");

    // Does the program gate on the source's path (a FIB lookup or the host mirror)? Then a request from an on-link
    // address without a neighbour entry is passed; otherwise it is redirected like the peer's.
    let mut rng = Rng(1);
    let mut probe = request(&mut rng, &h);
    while link(&probe).and_then(|l| l.1).is_some() || probe[12..14] != [0x08, 0x00] {
        probe = request(&mut rng, &h);
    }
    assert!(
        redirects(&program, ifindex, &probe),
        "a plain request from the peer is redirected"
    );
    probe[14 + 12..14 + 16].copy_from_slice(&[198, 18, 0, 77]);
    let ip_checksum = {
        probe[24..26].fill(0);
        echo_wire::checksum::checksum(&probe[14..34])
    };
    probe[24..26].copy_from_slice(&ip_checksum.to_be_bytes());
    let fib_gates_sources = !redirects(&program, ifindex, &probe);

    let frames: u64 = std::env::var("DIFF_FRAMES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_FRAMES);
    let seed: u64 = std::env::var("DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let mut rng = Rng(seed);
    let mut responder = Responder::new(ReplyPolicy::DEFAULT, 1);
    let mut table: BTreeMap<String, u64> = BTreeMap::new();
    let mut failures = Vec::new();
    let started = Instant::now();
    let mut done = 0;
    while done < frames && started.elapsed() < MAX_DURATION {
        let mut frame = request(&mut rng, &h);
        if rng.chance(75) {
            mutate(&mut rng, &h, &mut frame);
            if rng.chance(60) {
                fix_checksums(&mut frame);
            }
        }
        if frame.len() < 14 {
            continue;
        }
        done += 1;
        let redirected = redirects(&program, ifindex, &frame);
        let mut copy = frame.clone();
        let verdict = responder.respond(&mut copy);
        let outcome = match (redirected, verdict) {
            (true, Verdict::Reply { .. }) => "redirected, answered".to_string(),
            (true, Verdict::Drop(r @ (DropReason::IpChecksum | DropReason::IcmpChecksum))) => {
                format!("redirected, dropped by respond(): {r}")
            }
            (true, Verdict::Drop(r)) => {
                failures.push(format!("redirected but respond() drops it ({r}): {}", hex(&frame)));
                format!("MISMATCH redirected, dropped: {r}")
            }
            (false, Verdict::Reply { .. }) => match host_state_reason(&frame, &h, fib_gates_sources) {
                Some(why) => format!("passed, answerable: {why}"),
                None => {
                    failures.push(format!("respond() answers but the program passes it: {}", hex(&frame)));
                    "MISMATCH passed, answered".to_string()
                }
            },
            (false, Verdict::Drop(r)) => format!("passed, dropped by respond(): {r}"),
        };
        *table.entry(outcome).or_default() += 1;
    }
    let elapsed = started.elapsed();
    println!(
        "{done} frames (seed {seed:#x}) in {elapsed:.1?}; the program gates sources on the FIB: {fib_gates_sources}"
    );
    for (outcome, n) in &table {
        println!("{n:>8}  {outcome}");
    }
    assert!(
        failures.is_empty(),
        "{} disagreements, first ones:\n{}",
        failures.len(),
        failures.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
    // Not vacuous: both sides saw many answered requests and many rejects of several kinds.
    let count = |prefix: &str| -> u64 {
        table
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    };
    assert!(count("redirected, answered") >= done / 10, "{table:?}");
    assert!(count("redirected, dropped by respond()") > 0, "{table:?}");
    assert!(count("passed, answerable") > 0, "{table:?}");
    assert!(
        table.keys().filter(|k| k.starts_with("passed, dropped")).count() >= 8,
        "{table:?}"
    );
    assert!(done == frames || elapsed >= MAX_DURATION);
}
