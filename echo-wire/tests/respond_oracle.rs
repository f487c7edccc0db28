//! Property tests of `respond()` against an independent oracle.
//!
//! Requests are built by `etherparse` from random parameters (addresses, MACs, VLAN tag, TTL/hop
//! limit, TOS/traffic class, flow label, identification, code, identifier, sequence, 0..=1472
//! bytes of data, Ethernet trailer padding). After `respond()`, the reply is parsed by `etherparse`
//! again and every field is compared with what Linux would send; the checksums are recomputed by
//! `etherparse`, not by this crate. Other properties feed garbage and corrupted requests.

use std::net::{Ipv4Addr, Ipv6Addr};

use echo_wire::respond::{DropReason, FlowLabelPolicy, ReplyPolicy, Responder, Verdict};
use etherparse::{
    EtherType, IcmpEchoHeader, Icmpv4Type, Icmpv6Slice, Icmpv6Type, IpDscp, IpEcn, IpHeaders, IpNumber, Ipv4Header,
    Ipv6FlowLabel, Ipv6Header, LinkExtHeader, LinkHeader, NetHeaders, PacketBuilder, PacketHeaders, SingleVlanHeader,
    TransportHeader, VlanHeader, VlanId, VlanPcp,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

/// A single VLAN tag.
#[derive(Debug, Clone)]
struct Tag {
    /// 0x8100 (802.1Q) or 0x88a8 (802.1ad).
    tpid: u16,
    pcp: u8,
    dei: bool,
    /// 0 is a priority tag.
    vid: u16,
}

/// The IP layer of a request.
#[derive(Debug, Clone)]
enum Ip {
    V4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        ttl: u8,
        dscp: u8,
        ecn: u8,
        ident: u16,
        dont_frag: bool,
    },
    V6 {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        hop_limit: u8,
        traffic_class: u8,
        flow_label: u32,
    },
}

/// Everything a random echo request is made of.
#[derive(Debug, Clone)]
struct Request {
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    tag: Option<Tag>,
    ip: Ip,
    code: u8,
    id: u16,
    seq: u16,
    data: Vec<u8>,
    trailer: Vec<u8>,
}

impl Request {
    /// Bytes before the IP header.
    fn link_len(&self) -> usize {
        if self.tag.is_some() { 18 } else { 14 }
    }

    /// Bytes before the IP header in the reply: a priority tag (VLAN 0) is removed, as Linux does.
    fn reply_link_len(&self) -> usize {
        match &self.tag {
            Some(tag) if tag.vid == 0 => 14,
            _ => self.link_len(),
        }
    }

    /// The length of the IP packet.
    fn ip_len(&self) -> usize {
        let header = match self.ip {
            Ip::V4 { .. } => 20,
            Ip::V6 { .. } => 40,
        };
        header + 8 + self.data.len()
    }

    /// The frame as etherparse writes it, with the trailer after it.
    fn build(&self) -> Vec<u8> {
        let ip = match self.ip {
            Ip::V4 {
                src,
                dst,
                ttl,
                dscp,
                ecn,
                ident,
                dont_frag,
            } => {
                let mut header =
                    Ipv4Header::new(0, ttl, IpNumber::ICMP, src.octets(), dst.octets()).expect("an empty payload fits");
                header.dscp = IpDscp::try_new(dscp).unwrap();
                header.ecn = IpEcn::try_new(ecn).unwrap();
                header.identification = ident;
                header.dont_fragment = dont_frag;
                IpHeaders::Ipv4(header, Default::default())
            }
            Ip::V6 {
                src,
                dst,
                hop_limit,
                traffic_class,
                flow_label,
            } => IpHeaders::Ipv6(
                Ipv6Header {
                    traffic_class,
                    flow_label: Ipv6FlowLabel::try_new(flow_label).unwrap(),
                    hop_limit,
                    source: src.octets(),
                    destination: dst.octets(),
                    ..Default::default()
                },
                Default::default(),
            ),
        };
        let ethernet = PacketBuilder::ethernet2(self.src_mac, self.dst_mac);
        let builder = match &self.tag {
            Some(tag) => ethernet
                .vlan(VlanHeader::Single(SingleVlanHeader {
                    pcp: VlanPcp::try_new(tag.pcp).unwrap(),
                    drop_eligible_indicator: tag.dei,
                    vlan_id: VlanId::try_new(tag.vid).unwrap(),
                    ether_type: EtherType(0), // set by write()
                }))
                .ip(ip),
            None => ethernet.ip(ip),
        };
        let mut bytes5to8 = [0; 4];
        bytes5to8[..2].copy_from_slice(&self.id.to_be_bytes());
        bytes5to8[2..].copy_from_slice(&self.seq.to_be_bytes());
        let mut frame = Vec::new();
        match self.ip {
            Ip::V4 { .. } => builder
                .icmpv4_raw(8, self.code, bytes5to8)
                .write(&mut frame, &self.data),
            Ip::V6 { .. } => builder
                .icmpv6_raw(128, self.code, bytes5to8)
                .write(&mut frame, &self.data),
        }
        .expect("etherparse writes the request");
        if let Some(tag) = &self.tag {
            // etherparse writes 802.1Q; an 802.1ad single tag differs only in its TPID.
            frame[12..14].copy_from_slice(&tag.tpid.to_be_bytes());
        }
        assert_eq!(frame.len(), self.link_len() + self.ip_len());
        frame.extend_from_slice(&self.trailer);
        frame
    }
}

fn unicast_mac() -> impl Strategy<Value = [u8; 6]> {
    any::<[u8; 6]>().prop_map(|mut mac| {
        mac[0] &= !0x01; // clear the group bit
        mac
    })
}

fn unicast_ipv4() -> impl Strategy<Value = Ipv4Addr> {
    any::<[u8; 4]>().prop_map(Ipv4Addr::from).prop_filter("unicast", |a| {
        !(a.octets()[0] == 0 || a.is_loopback() || a.is_multicast() || a.is_broadcast())
    })
}

fn unicast_ipv6() -> impl Strategy<Value = Ipv6Addr> {
    let documentation = any::<[u8; 12]>().prop_map(|tail| {
        let mut a = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        a[4..].copy_from_slice(&tail);
        Ipv6Addr::from(a)
    });
    let link_local = any::<[u8; 8]>().prop_map(|tail| {
        let mut a = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        a[8..].copy_from_slice(&tail);
        Ipv6Addr::from(a)
    });
    let anything = any::<[u8; 16]>().prop_map(Ipv6Addr::from);
    prop_oneof![documentation, link_local, anything].prop_filter("unicast", |a| {
        !(a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.to_ipv4_mapped().is_some())
    })
}

/// A MAC address with the group bit set: multicast, or broadcast.
fn group_mac() -> impl Strategy<Value = [u8; 6]> {
    prop_oneof![
        Just([0xff; 6]),
        any::<[u8; 6]>().prop_map(|mut mac| {
            mac[0] |= 0x01;
            mac
        }),
    ]
}

/// An IPv4 address that is never answered: this network (0/8), loopback, multicast, broadcast.
fn non_unicast_ipv4() -> impl Strategy<Value = Ipv4Addr> {
    prop_oneof![
        Just(Ipv4Addr::UNSPECIFIED),
        Just(Ipv4Addr::BROADCAST),
        any::<[u8; 3]>().prop_map(|[b, c, d]| Ipv4Addr::new(0, b, c, d)),
        any::<[u8; 3]>().prop_map(|[b, c, d]| Ipv4Addr::new(127, b, c, d)),
        (224u8..240, any::<[u8; 3]>()).prop_map(|(a, [b, c, d])| Ipv4Addr::new(a, b, c, d)),
    ]
}

/// An IPv6 address that is never answered: unspecified, loopback, multicast, IPv4-mapped.
fn non_unicast_ipv6() -> impl Strategy<Value = Ipv6Addr> {
    prop_oneof![
        Just(Ipv6Addr::UNSPECIFIED),
        Just(Ipv6Addr::LOCALHOST),
        any::<[u8; 15]>().prop_map(|tail| {
            let mut a = [0xff; 16];
            a[1..].copy_from_slice(&tail);
            Ipv6Addr::from(a)
        }),
        any::<[u8; 4]>().prop_map(|v4| Ipv4Addr::from(v4).to_ipv6_mapped()),
    ]
}

fn tag() -> impl Strategy<Value = Tag> {
    (
        prop_oneof![Just(0x8100u16), Just(0x88a8u16)],
        0u8..8,
        any::<bool>(),
        prop_oneof![Just(0u16), 1u16..4095],
    )
        .prop_map(|(tpid, pcp, dei, vid)| Tag { tpid, pcp, dei, vid })
}

fn ip() -> impl Strategy<Value = Ip> {
    let v4 = (
        unicast_ipv4(),
        unicast_ipv4(),
        any::<u8>(),
        0u8..64,
        0u8..4,
        any::<u16>(),
        any::<bool>(),
    )
        .prop_map(|(src, dst, ttl, dscp, ecn, ident, dont_frag)| Ip::V4 {
            src,
            dst,
            ttl,
            dscp,
            ecn,
            ident,
            dont_frag,
        });
    let v6 = (unicast_ipv6(), unicast_ipv6(), any::<u8>(), any::<u8>(), 0u32..1 << 20).prop_map(
        |(src, dst, hop_limit, traffic_class, flow_label)| Ip::V6 {
            src,
            dst,
            hop_limit,
            traffic_class,
            flow_label,
        },
    );
    prop_oneof![v4, v6]
}

prop_compose! {
    fn request()(
        src_mac in unicast_mac(),
        dst_mac in unicast_mac(),
        tag in proptest::option::of(tag()),
        ip in ip(),
        code in prop_oneof![3 => Just(0u8), 1 => any::<u8>()],
        // Zeros are drawn often: an all-zero reply message is the one corner of RFC 1624 eqn. 3.
        id in prop_oneof![3 => any::<u16>(), 1 => Just(0u16)],
        seq in prop_oneof![3 => any::<u16>(), 1 => Just(0u16)],
        data in prop_oneof![
            3 => vec(any::<u8>(), 0..=1472),
            1 => vec(Just(0u8), 0..=64),
        ],
        trailer in vec(any::<u8>(), 0..=24),
    ) -> Request {
        Request { src_mac, dst_mac, tag, ip, code, id, seq, data, trailer }
    }
}

fn policy() -> impl Strategy<Value = ReplyPolicy> {
    (
        any::<u8>(),
        any::<u8>(),
        any::<bool>(),
        any::<bool>(),
        any::<[u64; 2]>(),
    )
        .prop_map(|(ipv4_ttl, ipv6_hop_limit, reflect, auto, key)| ReplyPolicy {
            ipv4_ttl,
            ipv6_hop_limit,
            flow_label: FlowLabelPolicy {
                reflect,
                auto,
                state_ranges: false,
                key,
            },
        })
}

/// A responder's identification seed: random, or (one time in four) the request's own
/// identification, which the responder must step over.
fn seed() -> impl Strategy<Value = Option<u16>> {
    prop_oneof![3 => any::<u16>().prop_map(Some), 1 => Just(None)]
}

/// Resolves a [`seed()`] for `request`.
fn resolve_seed(seed: Option<u16>, request: &Request) -> u16 {
    match (seed, &request.ip) {
        (Some(seed), _) => seed,
        (None, Ip::V4 { ident, .. }) => *ident,
        (None, Ip::V6 { .. }) => 0,
    }
}

/// The IPv4 identification a fresh responder seeded with `seed` gives its first reply.
fn expected_ident(seed: u16, request_ident: u16) -> u16 {
    if seed == request_ident {
        seed.wrapping_add(1)
    } else {
        seed
    }
}

/// Parses a reply with etherparse and checks that its checksums are right, recomputed by
/// etherparse. Returns the parsed headers for further checks.
fn parse_valid_reply(reply: &[u8]) -> Result<PacketHeaders<'_>, TestCaseError> {
    let headers = PacketHeaders::from_ethernet_slice(reply)
        .map_err(|e| TestCaseError::fail(format!("etherparse cannot parse the reply: {e}")))?;
    let payload = headers.payload.slice();
    match (&headers.net, &headers.transport) {
        (Some(NetHeaders::Ipv4(ip, exts)), Some(TransportHeader::Icmpv4(icmp))) => {
            prop_assert!(exts.auth.is_none());
            prop_assert_eq!(ip.header_checksum, ip.calc_header_checksum(), "IPv4 header checksum");
            prop_assert_eq!(icmp.checksum, icmp.icmp_type.calc_checksum(payload), "ICMP checksum");
        }
        (Some(NetHeaders::Ipv6(ip, _)), Some(TransportHeader::Icmpv6(icmp))) => {
            let expected = icmp
                .icmp_type
                .calc_checksum(ip.source, ip.destination, payload)
                .unwrap();
            prop_assert_eq!(icmp.checksum, expected, "ICMPv6 checksum");
            let ip_payload = &reply[reply.len() - usize::from(ip.payload_length)..];
            let slice = Icmpv6Slice::from_slice(ip_payload).unwrap();
            prop_assert!(slice.is_checksum_valid(ip.source, ip.destination));
        }
        other => return Err(TestCaseError::fail(format!("not an ICMP reply: {other:?}"))),
    }
    Ok(headers)
}

/// Checks `reply` field by field against the request it answers.
fn check_reply(request: &Request, policy: ReplyPolicy, seed: u16, reply: &[u8]) -> Result<(), TestCaseError> {
    let headers = parse_valid_reply(reply)?;

    // Ethernet: back to the sender, the VLAN tag kept as it was (a priority tag removed).
    match &headers.link {
        Some(LinkHeader::Ethernet2(eth)) => {
            prop_assert_eq!(eth.source, request.dst_mac);
            prop_assert_eq!(eth.destination, request.src_mac);
        }
        other => return Err(TestCaseError::fail(format!("link: {other:?}"))),
    }
    match &request.tag {
        Some(tag) if tag.vid == 0 => prop_assert!(headers.link_exts.is_empty(), "priority tag removed"),
        Some(tag) => {
            prop_assert_eq!(headers.link_exts.len(), 1);
            let LinkExtHeader::Vlan(vlan) = &headers.link_exts[0] else {
                return Err(TestCaseError::fail("no VLAN tag in the reply"));
            };
            prop_assert_eq!(vlan.vlan_id.value(), tag.vid);
            prop_assert_eq!(vlan.pcp.value(), tag.pcp);
            prop_assert_eq!(vlan.drop_eligible_indicator, tag.dei);
            prop_assert_eq!(&reply[12..14], &tag.tpid.to_be_bytes()[..]);
        }
        None => prop_assert!(headers.link_exts.is_empty()),
    }

    let echo = IcmpEchoHeader {
        id: request.id,
        seq: request.seq,
    };
    let [id_hi, id_lo] = request.id.to_be_bytes();
    let [seq_hi, seq_lo] = request.seq.to_be_bytes();
    let bytes5to8 = [id_hi, id_lo, seq_hi, seq_lo];

    match (&request.ip, &headers.net, &headers.transport) {
        (
            Ip::V4 {
                src,
                dst,
                dscp,
                ecn,
                ident,
                ..
            },
            Some(NetHeaders::Ipv4(ip, exts)),
            Some(TransportHeader::Icmpv4(icmp)),
        ) => {
            prop_assert_eq!(ip.source, dst.octets());
            prop_assert_eq!(ip.destination, src.octets());
            prop_assert_eq!(ip.time_to_live, policy.ipv4_ttl);
            prop_assert!(!ip.dont_fragment, "DF must be clear");
            prop_assert!(!ip.more_fragments);
            prop_assert_eq!(ip.fragment_offset.value(), 0);
            prop_assert_ne!(ip.identification, *ident, "a fresh identification");
            prop_assert_eq!(ip.identification, expected_ident(seed, *ident));
            prop_assert_eq!(ip.dscp.value(), *dscp);
            prop_assert_eq!(ip.ecn.value(), *ecn);
            prop_assert_eq!(usize::from(ip.total_len), request.ip_len());
            prop_assert_eq!(ip.protocol, IpNumber::ICMP);
            prop_assert!(ip.options.is_empty() && exts.auth.is_none());
            let expected_type = if request.code == 0 {
                Icmpv4Type::EchoReply(echo)
            } else {
                Icmpv4Type::Unknown {
                    type_u8: 0,
                    code_u8: request.code,
                    bytes5to8,
                }
            };
            prop_assert_eq!(&icmp.icmp_type, &expected_type);
        }
        (
            Ip::V6 {
                src,
                dst,
                traffic_class,
                flow_label,
                ..
            },
            Some(NetHeaders::Ipv6(ip, exts)),
            Some(TransportHeader::Icmpv6(icmp)),
        ) => {
            prop_assert_eq!(ip.source, dst.octets());
            prop_assert_eq!(ip.destination, src.octets());
            prop_assert_eq!(ip.hop_limit, policy.ipv6_hop_limit);
            prop_assert_eq!(ip.traffic_class, *traffic_class);
            // Linux's rule: the request's label when reflecting one; else an auto label (never
            // 0) when auto labels are on; else none.
            let labels = policy.flow_label;
            if labels.reflect && *flow_label != 0 {
                prop_assert_eq!(ip.flow_label.value(), *flow_label);
            } else if labels.auto {
                prop_assert_ne!(ip.flow_label.value(), 0);
            } else {
                prop_assert_eq!(ip.flow_label.value(), 0);
            }
            prop_assert_eq!(usize::from(ip.payload_length) + 40, request.ip_len());
            prop_assert_eq!(ip.next_header, IpNumber::IPV6_ICMP);
            prop_assert!(exts.is_empty());
            let expected_type = if request.code == 0 {
                Icmpv6Type::EchoReply(echo)
            } else {
                Icmpv6Type::Unknown {
                    type_u8: 129,
                    code_u8: request.code,
                    bytes5to8,
                }
            };
            prop_assert_eq!(&icmp.icmp_type, &expected_type);
        }
        (ip, net, transport) => {
            return Err(TestCaseError::fail(format!(
                "{ip:?} answered with {net:?} / {transport:?}"
            )));
        }
    }
    prop_assert_eq!(headers.payload.slice(), &request.data[..], "data echoed whole");
    Ok(())
}

/// Runs `frame` through a fresh responder; checks the invariants that hold for every input:
/// a reply is never longer than the frame, and a dropped frame is not modified.
fn respond_checked(responder: &mut Responder, frame: &mut [u8]) -> Result<Verdict, TestCaseError> {
    let before = frame.to_vec();
    let verdict = responder.respond(frame);
    match verdict {
        Verdict::Reply { len } => prop_assert!(len <= frame.len(), "reply longer than the frame"),
        Verdict::Drop(_) => prop_assert!(frame == &before[..], "dropped frame was modified"),
    }
    Ok(verdict)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn reply_is_what_linux_would_send(request in request(), policy in policy(), seed in seed()) {
        let seed = resolve_seed(seed, &request);
        let mut frame = request.build();
        let original = frame.clone();
        let mut responder = Responder::new(policy, seed);
        let verdict = respond_checked(&mut responder, &mut frame)?;
        let len = request.reply_link_len() + request.ip_len();
        prop_assert_eq!(verdict, Verdict::Reply { len }, "trailer cut, nothing else");
        prop_assert_eq!(&frame[len..], &original[len..], "trailer left alone");
        check_reply(&request, policy, seed, &frame[..len])?;
    }

    /// One of the four addresses replaced by one that is not unicast (checksums kept valid by
    /// etherparse): never answered.
    #[test]
    fn non_unicast_addresses_are_not_answered(
        mut request in request(),
        which in 0..4usize,
        mac in group_mac(),
        v4 in non_unicast_ipv4(),
        v6 in non_unicast_ipv6(),
    ) {
        match (which, &mut request.ip) {
            (0, _) => request.src_mac = mac,
            (1, _) => request.dst_mac = mac,
            (2, Ip::V4 { src, .. }) => *src = v4,
            (3, Ip::V4 { dst, .. }) => *dst = v4,
            (2, Ip::V6 { src, .. }) => *src = v6,
            (_, Ip::V6 { dst, .. }) => *dst = v6,
            (_, Ip::V4 { .. }) => unreachable!(),
        }
        let mut frame = request.build();
        let verdict = respond_checked(&mut Responder::new(ReplyPolicy::default(), 3), &mut frame)?;
        prop_assert_eq!(verdict, Verdict::Drop(DropReason::NotUnicast));
    }

    #[test]
    fn garbage_never_panics_nor_grows(bytes in vec(any::<u8>(), 0..1600)) {
        let mut frame = bytes;
        respond_checked(&mut Responder::new(ReplyPolicy::default(), 1), &mut frame)?;
    }

    /// Requests with a few random bytes overwritten: whatever is answered must still be a valid
    /// reply (the responder never vouches for a corrupted packet with fresh checksums).
    #[test]
    fn corrupted_requests_are_dropped_or_answered_correctly(
        request in request(),
        hits in vec((any::<Index>(), any::<u8>()), 1..4),
    ) {
        let mut frame = request.build();
        for (at, value) in &hits {
            let at = at.index(frame.len());
            frame[at] = *value;
        }
        let mut responder = Responder::new(ReplyPolicy::default(), 0x4242);
        if let Verdict::Reply { len } = respond_checked(&mut responder, &mut frame)? {
            parse_valid_reply(&frame[..len])?;
        }
    }

    #[test]
    fn changed_icmp_bytes_give_icmp_checksum(
        request in request(),
        at in any::<Index>(),
        flip in 1u8..=255,
    ) {
        let mut frame = request.build();
        // Any byte of the ICMP message but the type (changing it gives NotEchoRequest).
        let icmp_start = request.link_len() + request.ip_len() - 8 - request.data.len();
        let message_len = 8 + request.data.len();
        let at = icmp_start + 1 + at.index(message_len - 1);
        frame[at] ^= flip;
        let verdict = respond_checked(&mut Responder::new(ReplyPolicy::default(), 9), &mut frame)?;
        prop_assert_eq!(verdict, Verdict::Drop(DropReason::IcmpChecksum));
    }
}
