//! The hosts of the hand-made frames that `BPF_PROG_TEST_RUN` tests feed the loaded programs
//! (engines.rs, xdp_verdicts.rs), and the host mirror entries those tests prepare.

use std::net::IpAddr;

use afxdp_responder::loader::EngineProgram;
use afxdp_responder::netlink::route::{Neighbour, Route};

/// The responder's interface.
pub const OUR_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
/// The pinging host.
pub const PEER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];
/// The responder's IPv4 address.
pub const OUR_V4: [u8; 4] = [198, 18, 0, 1];
/// The pinging host's IPv4 address.
pub const PEER_V4: [u8; 4] = [198, 18, 0, 2];
/// The responder's IPv6 address.
pub const OUR_V6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
/// The pinging host's IPv6 address.
pub const PEER_V6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
/// The length of an untagged Ethernet header: where the IP header starts.
pub const ETH_LEN: usize = 14;
/// `BPF_PROG_TEST_RUN` without an interface runs as if the frame arrived on loopback.
pub const LOOPBACK: u32 = 1;

/// A route of the host mirror (`afxdp_responder::mirror`), as an rtnetlink dump would give it.
pub fn mirror_route(dst: &str, prefix_len: u8, kind: u8, oif: u32) -> Route {
    Route {
        dst: dst.parse().unwrap(),
        prefix_len,
        table: 254,
        kind,
        tos: 0,
        priority: 0,
        oif,
        gateway: None,
        hop_limit: 0,
        mtu: 0,
        complex: false,
    }
}

/// Puts the peer's neighbour entries (its IPv4 and IPv6 address at `PEER_MAC`) on `ifindex` in the host mirror.
pub fn add_peer_neighbours(program: &mut EngineProgram, ifindex: u32) {
    for ip in [IpAddr::from(PEER_V4), IpAddr::from(PEER_V6)] {
        let entry = Neighbour {
            index: ifindex,
            ip,
            usable_mac: Some(PEER_MAC),
        };
        program
            .set_mirror_neighbour(&entry, &[ifindex])
            .expect("fill mirror_neighs");
    }
}
