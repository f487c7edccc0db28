//! The reply policy: turn an echo request frame into its echo reply, in place.
//!
//! [`Responder::respond`] is the whole protocol logic of the responder. It is pure (no I/O, no
//! allocation, no clock), safe, and never panics on any input, so it is tested on byte fixtures,
//! property-tested against `etherparse`, fuzzable and benchmarked on its own. The worker calls it on
//! each received frame and sends `frame[..len]` back when the verdict is [`Verdict::Reply`].
//!
//! # What the reply looks like
//!
//! The reply should be indistinguishable from the one the Linux kernel sends (net/ipv4/icmp.c,
//! net/ipv6/icmp.c; see the parity table in docs/parity.md):
//!
//! * Ethernet: source and destination MAC swapped; a single VLAN tag (802.1Q or 802.1ad) is kept
//!   as it is, except a priority tag (VLAN id 0), which is removed: Linux consumes a priority tag
//!   on the way in and answers untagged (see `tests/parity.rs`). Removing it moves the IP packet
//!   4 bytes towards the start of the frame, which only priority-tagged requests pay for.
//! * IPv4: addresses swapped, TTL from the [`ReplyPolicy`], DF clear, a fresh identification
//!   (per [`Responder`] counter), TOS copied, header checksum valid.
//! * IPv6: addresses swapped, hop limit from the [`ReplyPolicy`], traffic class kept, flow label
//!   as Linux picks it ([`FlowLabelPolicy`]): by default a label of its own per flow (auto flow
//!   labels), the request's when `net.ipv6.flowlabel_reflect` has bit 2 (4) set.
//! * ICMP: type 8 → 0 (ICMPv6: 128 → 129); code, identifier, sequence and data unchanged.
//!   Linux copies the request's code into the reply whatever it is (it copies the whole echo
//!   header and changes only the type), so a request with a non-zero code is answered too.
//! * Length: the Ethernet header (and tag) plus the IP packet as its length field says; Ethernet
//!   trailer padding after the IP packet is not echoed. The reply is never longer than the
//!   request.
//!
//! Anything else is dropped with a [`DropReason`] that says why. Frames the XDP program should
//! never have redirected (ARP, IP options, fragments, broadcasts…) are among them: the responder
//! checks for itself instead of trusting its input.
//!
//! # Why the request's checksums are verified
//!
//! The reply's checksums are *updated* from the request's, not computed anew (see below). An update
//! carries any error along: a request corrupted on the way in would produce a reply whose checksum
//! is wrong by exactly the same amount, and the corrupted data would be echoed back as if it were
//! what the sender sent. The kernel drops such requests (IcmpInCsumErrors), and so do we: the
//! ICMP checksum is verified over the whole message (for ICMPv6 with the pseudo-header of addresses,
//! length and next header), and the IPv4 header checksum over the header. This sum over the
//! payload is the only part of the work that grows with the packet size.
//!
//! # Updating the checksums (RFC 1624)
//!
//! A few 16-bit words change between request and reply. For each, the checksum `HC` becomes
//! `HC' = ~(~HC + ~m + m')` in one's-complement arithmetic, where `m` is the old word and `m'` the
//! new one ([`checksum::update`]). Swapping the source and destination addresses needs no update
//! at all: the sum does not depend on the order of its words, and both addresses stay in the
//! summed data (for ICMPv6 in the pseudo-header). So an IPv4 reply updates the header checksum for
//! three words (identification, flags/fragment offset, TTL/protocol) and the ICMP checksum for one
//! (type/code); an ICMPv6 reply updates the ICMPv6 checksum for type/code only.
//!
//! # Order of the checks
//!
//! The checks run in the order of the [`DropReason`] variants, and the first one that fails names
//! the drop. Nothing in the frame is written before every check has passed: a dropped frame is
//! left exactly as it came.

use crate::checksum::{self, Sum};
use crate::ethernet::{self, ETHERTYPE_IPV4, ETHERTYPE_IPV6, Frame, VlanTag};
use crate::icmp::{self, EchoPacket};
use crate::trace::{Family, Recorder, Rewrite};
use crate::{ipv4, ipv6};

/// Host parameters the reply takes from the host (Linux: `net.ipv4.ip_default_ttl`, the
/// interface's IPv6 `hop_limit`, the flow label sysctls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyPolicy {
    /// TTL of IPv4 replies.
    pub ipv4_ttl: u8,
    /// Hop limit of IPv6 replies.
    pub ipv6_hop_limit: u8,
    /// How the flow label of IPv6 replies is chosen.
    pub flow_label: FlowLabelPolicy,
}

impl ReplyPolicy {
    /// Linux's defaults: TTL 64, hop limit 64, auto flow labels ([`FlowLabelPolicy::LINUX_DEFAULT`],
    /// hash key 0: give a random one with [`FlowLabelPolicy::with_key`]).
    pub const DEFAULT: ReplyPolicy = ReplyPolicy {
        ipv4_ttl: 64,
        ipv6_hop_limit: 64,
        flow_label: FlowLabelPolicy::LINUX_DEFAULT,
    };
}

impl Default for ReplyPolicy {
    /// [`ReplyPolicy::DEFAULT`].
    fn default() -> Self {
        ReplyPolicy::DEFAULT
    }
}

/// Where the reply goes on the link: the MAC addresses Linux would use, from its FIB and
/// neighbour table.
///
/// The XDP program looks them up for every request it redirects (`bpf_fib_lookup` for the reply:
/// the neighbour entry of the next hop, the egress device's MAC) and hands them over as XDP
/// metadata in front of the frame ([`NextHop::from_xdp_meta`]); [`Responder::respond_via`]
/// writes them into the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop {
    /// The reply's destination MAC: the neighbour-table entry of its next hop.
    pub dst_mac: [u8; 6],
    /// The reply's source MAC: the egress device's current MAC.
    pub src_mac: [u8; 6],
    /// The TTL / hop limit of the reply's route (`ip route ... hoplimit N`, `RTAX_HOPLIMIT`),
    /// which Linux gives its replies on that route; 0: the route has none, the policy's
    /// [`ReplyPolicy::ipv4_ttl`] / [`ReplyPolicy::ipv6_hop_limit`] applies.
    pub hop_limit: u8,
}

impl NextHop {
    /// Length of the XDP program's metadata (`struct reply_meta` in `redirect-ebpf/redirect.h`).
    pub const XDP_META_LEN: usize = 20;
    /// The `magic` field of that metadata (host byte order).
    pub const XDP_META_MAGIC: u32 = 0x4e45_5848;

    /// Reads `struct reply_meta` (`dst_mac[6]`, `src_mac[6]`, `hop_limit`, 3 bytes of padding,
    /// `magic` as a host-order `u32`); `None` unless the magic is there and both MACs are
    /// unicast and not all-zero.
    ///
    /// ```
    /// use echo_wire::respond::NextHop;
    ///
    /// let mut meta = [0u8; NextHop::XDP_META_LEN];
    /// meta[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    /// meta[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    /// assert_eq!(NextHop::from_xdp_meta(&meta), None); // no magic: not the program's
    /// meta[16..].copy_from_slice(&NextHop::XDP_META_MAGIC.to_ne_bytes());
    /// let hop = NextHop::from_xdp_meta(&meta).unwrap();
    /// assert_eq!(hop.dst_mac, [0x02, 0, 0, 0, 0, 2]);
    /// assert_eq!(hop.hop_limit, 0); // the route has no hoplimit: the policy's TTL applies
    /// ```
    pub fn from_xdp_meta(meta: &[u8]) -> Option<NextHop> {
        let meta: &[u8; Self::XDP_META_LEN] = meta.first_chunk()?;
        let (dst, rest) = meta.split_first_chunk::<6>()?;
        let (src, rest) = rest.split_first_chunk::<6>()?;
        let (hop_limit, rest) = rest.split_first_chunk::<4>()?;
        let magic = u32::from_ne_bytes(*rest.first_chunk::<4>()?);
        let hop = NextHop {
            dst_mac: *dst,
            src_mac: *src,
            hop_limit: hop_limit[0],
        };
        let unicast =
            ethernet::is_unicast_mac(dst) && ethernet::is_unicast_mac(src) && *dst != [0; 6] && *src != [0; 6];
        (magic == Self::XDP_META_MAGIC && unicast).then_some(hop)
    }
}

/// How an IPv6 echo reply gets its flow label, as Linux decides it (net/ipv6/icmp.c
/// `icmpv6_echo_reply`, `ip6_make_flowlabel` in include/net/ipv6.h):
///
/// 1. with `reflect` (`net.ipv6.flowlabel_reflect` bit 2, value 4) the request's label is taken;
/// 2. if that gives 0 (no reflect, or a request without a label) and `auto` is on
///    (`net.ipv6.auto_flowlabels` 1 "opt-out", the default, or 3 "forced"; the kernel's ICMPv6
///    socket never opts in or out), the label is a keyed hash of the flow, with bit 19 set when
///    `state_ranges` (`net.ipv6.flowlabel_state_ranges`);
/// 3. otherwise 0.
///
/// The flow of an echo reply, for Linux, is what its `flowi6` holds: the two addresses, the
/// next header (58) and the ICMPv6 type (129). The echo identifier is not part of it, so two
/// `ping` processes between the same two addresses get the same label (measured on Linux 6.18:
/// one label for every reply between a pair of addresses). [`FlowLabelPolicy::auto_label`]
/// hashes the same fields with a per-run random key, as Linux hashes them with a per-boot one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowLabelPolicy {
    /// Take the request's label (`flowlabel_reflect & 4`).
    pub reflect: bool,
    /// Pick a per-flow label when the label is still 0 (`auto_flowlabels` 1 or 3).
    pub auto: bool,
    /// Set bit 19 (0x80000) in auto labels (`flowlabel_state_ranges`).
    pub state_ranges: bool,
    /// Key of the auto-label hash: random per run in the daemon.
    pub key: [u64; 2],
}

impl FlowLabelPolicy {
    /// Linux's defaults (`flowlabel_reflect=0`, `auto_flowlabels=1`, `flowlabel_state_ranges=0`),
    /// with key 0.
    pub const LINUX_DEFAULT: FlowLabelPolicy = FlowLabelPolicy {
        reflect: false,
        auto: true,
        state_ranges: false,
        key: [0, 0],
    };

    /// The request's label, unchanged (reflect, no auto labels).
    pub const REFLECT_ONLY: FlowLabelPolicy = FlowLabelPolicy {
        reflect: true,
        auto: false,
        state_ranges: false,
        key: [0, 0],
    };

    /// This policy with another hash key.
    pub const fn with_key(mut self, key: [u64; 2]) -> Self {
        self.key = key;
        self
    }

    /// The flow label of the reply from `src` to `dst` (the reply's addresses) to a request
    /// that carried `request_label`.
    pub fn reply_label(&self, request_label: u32, src: &[u8; 16], dst: &[u8; 16]) -> u32 {
        let label = if self.reflect { request_label & 0xf_ffff } else { 0 };
        if label != 0 || !self.auto {
            return label;
        }
        self.auto_label(src, dst)
    }

    /// The auto flow label of the echo-reply flow from `src` to `dst`: never 0, the same for
    /// every reply of the flow, different (with probability 1 - 2^-20) for another flow.
    ///
    /// A keyed hash of the two addresses, the next header (58) and the ICMPv6 type (129): each
    /// 64-bit word is mixed in with a 64x64->128-bit multiplication folded to 64 bits (the
    /// "folded multiply" of foldhash/ahash), by a key-derived multiplier that is odd and has its
    /// top bit set, so that no key makes a step degenerate. Five multiplications and a final
    /// one: a few nanoseconds, no allocation. It is not a cryptographic hash; the key keeps the
    /// labels of one run unpredictable from those of another, like Linux's per-boot key.
    pub fn auto_label(&self, src: &[u8; 16], dst: &[u8; 16]) -> u32 {
        let word = |bytes: &[u8; 16], half: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[half * 8..half * 8 + 8]);
            u64::from_be_bytes(w)
        };
        let [k0, k1] = self.key;
        // Arbitrary constants (hex digits of pi), so that the zero key mixes as well as any.
        let m = (k0 ^ 0x243f_6a88_85a3_08d3) | (1 << 63) | 1;
        let m_final = (k1 ^ 0x1319_8a2e_0370_7344) | (1 << 63) | 1;
        let flow = (58u64 << 8) | 129;
        // Every key bit counts: the two bits the multiplier forces also enter here.
        let mut h = k1 ^ k0.rotate_left(32) ^ 0xa409_3822_299f_31d0;
        for w in [word(src, 0), word(src, 1), word(dst, 0), word(dst, 1), flow] {
            h = folded_multiply(h ^ w, m);
        }
        let h = folded_multiply(h, m_final);
        let mut label = ((h ^ (h >> 32)) as u32) & 0xf_ffff;
        if label == 0 {
            label = 1; // Linux would send 0 here, one flow in 2^20; "no label" is not a label
        }
        if self.state_ranges {
            label |= 0x8_0000;
        }
        label
    }
}

/// The 128-bit product of `a` and `b`, folded to 64 bits (high half xor low half).
#[inline]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

/// Per-worker responder state (the IPv4 identification generator). One per worker thread.
#[derive(Debug)]
pub struct Responder {
    policy: ReplyPolicy,
    /// The identification the next IPv4 reply gets.
    next_ipv4_ident: u16,
}

/// What to do with a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send `frame[..len]` back (len <= frame.len(); trailer padding after the IP packet is cut).
    Reply {
        /// Length of the reply, from the start of the frame.
        len: usize,
    },
    /// Do not answer; the frame was left unchanged.
    Drop(DropReason),
}

/// Why a frame was not answered. The variants are listed in the order the checks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// The frame ends before a header the reply needs is complete: Ethernet (14 bytes), a VLAN tag,
    /// the first byte of the IP header, the IPv4 (20) or IPv6 (40) fixed header, or the 8-byte
    /// echo header inside the IP packet.
    Truncated,
    /// More than one VLAN tag (QinQ); one 802.1Q or 802.1ad tag, VLAN 0 included, is answered.
    Vlan,
    /// The EtherType (after one VLAN tag) is neither IPv4 nor IPv6: ARP, LLDP, …
    NotIp,
    /// The IP version field contradicts the EtherType (not 4 under 0x0800, not 6 under 0x86dd).
    IpVersion,
    /// The IP length fields are inconsistent: IPv4 IHL below 5, total length below the header
    /// length or beyond the end of the frame; IPv6 payload length beyond the end of the frame.
    IpLength,
    /// IPv4 options (IHL > 5) or an IPv6 extension header other than a fragment header: the
    /// kernel handles these. (Checked before the IPv4 header checksum, so that the checksum is
    /// summed over exactly the 20 bytes of a header without options.)
    IpOptions,
    /// The IPv4 header checksum is wrong (the kernel drops these too).
    IpChecksum,
    /// A MAC or IP address is not a unicast one: a group (multicast, broadcast) source or
    /// destination MAC; an IPv4 source or destination in 0.0.0.0/8, 127.0.0.0/8, 224.0.0.0/4 or
    /// 255.255.255.255; an IPv6 source or destination that is unspecified (::), loopback (::1),
    /// multicast (ff00::/8) or IPv4-mapped (::ffff:0:0/96). The kernel applies its own rules to
    /// these (broadcast echo, martians); the responder never answers them.
    NotUnicast,
    /// An IPv4 fragment (more-fragments set or a non-zero offset) or an IPv6 fragment header:
    /// only the kernel can reassemble.
    Fragment,
    /// The IP payload is not ICMP (IPv4) or ICMPv6 (IPv6).
    NotIcmp,
    /// An ICMP message other than an echo request (type 8, ICMPv6 type 128). Any code is answered,
    /// as Linux does.
    NotEchoRequest,
    /// The ICMP or ICMPv6 checksum of the request is wrong (Linux: `IcmpInCsumErrors`).
    IcmpChecksum,
    /// Not a check of [`Responder::respond`]: the worker received the frame without the XDP
    /// program's next-hop metadata ([`NextHop::from_xdp_meta`]), so it does not know where Linux
    /// would send the reply and sends none. The program writes it for every frame it redirects,
    /// so this counts a driver that loses XDP metadata.
    NoNextHop,
}

impl DropReason {
    /// Every reason, in the order of the checks (and of [`DropReason::index`]).
    pub const ALL: [DropReason; 13] = [
        DropReason::Truncated,
        DropReason::Vlan,
        DropReason::NotIp,
        DropReason::IpVersion,
        DropReason::IpLength,
        DropReason::IpOptions,
        DropReason::IpChecksum,
        DropReason::NotUnicast,
        DropReason::Fragment,
        DropReason::NotIcmp,
        DropReason::NotEchoRequest,
        DropReason::IcmpChecksum,
        DropReason::NoNextHop,
    ];

    /// The number of reasons: the size of a per-reason counter array.
    pub const COUNT: usize = Self::ALL.len();

    /// A short kebab-case label for statistics, e.g. `"icmp-checksum"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::Vlan => "vlan",
            DropReason::NotIp => "not-ip",
            DropReason::IpVersion => "ip-version",
            DropReason::IpLength => "ip-length",
            DropReason::IpOptions => "ip-options",
            DropReason::IpChecksum => "ip-checksum",
            DropReason::NotUnicast => "not-unicast",
            DropReason::Fragment => "fragment",
            DropReason::NotIcmp => "not-icmp",
            DropReason::NotEchoRequest => "not-echo-request",
            DropReason::IcmpChecksum => "icmp-checksum",
            DropReason::NoNextHop => "no-next-hop",
        }
    }

    /// The position of this reason in [`DropReason::ALL`]: an index into a counter array.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl core::fmt::Display for DropReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A view refused the IP header: too short for the fixed part, or bad length fields.
fn ip_error(error: crate::Error) -> DropReason {
    match error {
        crate::Error::Truncated => DropReason::Truncated,
        crate::Error::Length => DropReason::IpLength,
    }
}

// The one definition of a unicast address (see [`DropReason::NotUnicast`]).
use crate::ipv4::is_unicast as is_unicast_ipv4;
use crate::ipv6::is_unicast as is_unicast_ipv6;

/// The IP version a frame carries, as found by [`parse_link`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ip {
    V4,
    V6,
}

/// What the link layer of a request says.
#[derive(Debug, Clone, Copy)]
struct Link {
    /// Bytes before the IP header: 14, or 18 with a VLAN tag.
    header_len: usize,
    /// The VLAN tag is a priority tag (VLAN id 0): the reply goes out untagged, like Linux's.
    priority_tag: bool,
    ip: Ip,
    /// Both MAC addresses are unicast.
    unicast: bool,
}

/// Reads the Ethernet header and at most one VLAN tag, and checks that an IP header of the
/// announced version starts after them.
fn parse_link(frame: &[u8]) -> Result<Link, DropReason> {
    // The views work on fixed-size arrays here: the compiler then knows every field is in bounds.
    let (header, rest) = frame
        .split_first_chunk::<{ ethernet::HEADER_LEN }>()
        .ok_or(DropReason::Truncated)?;
    let eth = Frame::new_checked(header).map_err(|_| DropReason::Truncated)?;
    let unicast = ethernet::is_unicast_mac(&eth.src_addr()) && ethernet::is_unicast_mac(&eth.dst_addr());
    let mut header_len = ethernet::HEADER_LEN;
    let mut ethertype = eth.ethertype();
    let mut priority_tag = false;
    if ethernet::is_vlan_tpid(ethertype) {
        let tag = rest
            .first_chunk::<{ ethernet::VLAN_TAG_LEN }>()
            .ok_or(DropReason::Truncated)?;
        let tag = VlanTag::new_checked(tag).map_err(|_| DropReason::Truncated)?;
        ethertype = tag.ethertype();
        priority_tag = tag.vlan_id() == 0;
        header_len += ethernet::VLAN_TAG_LEN;
        if ethernet::is_vlan_tpid(ethertype) {
            return Err(DropReason::Vlan);
        }
    }
    let version = frame.get(header_len).map(|first| first >> 4);
    let ip = match (ethertype, version) {
        (ETHERTYPE_IPV4, Some(4)) => Ip::V4,
        (ETHERTYPE_IPV6, Some(6)) => Ip::V6,
        (ETHERTYPE_IPV4 | ETHERTYPE_IPV6, Some(_)) => return Err(DropReason::IpVersion),
        (ETHERTYPE_IPV4 | ETHERTYPE_IPV6, None) => return Err(DropReason::Truncated),
        _ => return Err(DropReason::NotIp),
    };
    Ok(Link {
        header_len,
        priority_tag,
        ip,
        unicast,
    })
}

impl Responder {
    /// A responder that replies with `policy`, numbering IPv4 replies from `ip_id_seed`.
    ///
    /// Give each worker a different seed (e.g. random, or random plus the queue id), so that two
    /// workers answering the same client do not issue the same identification sequence.
    pub fn new(policy: ReplyPolicy, ip_id_seed: u16) -> Self {
        Responder {
            policy,
            next_ipv4_ident: ip_id_seed,
        }
    }

    /// The host parameters this responder replies with.
    pub fn policy(&self) -> ReplyPolicy {
        self.policy
    }

    /// Replies with `policy` from now on (the host's sysctls changed). The IPv4 identification
    /// counter goes on where it was.
    pub fn set_policy(&mut self, policy: ReplyPolicy) {
        self.policy = policy;
    }

    /// Rewrites an echo request frame into its reply in place.
    ///
    /// On [`Verdict::Reply`], `frame[..len]` is the reply, ready to send back on the interface the
    /// request came from. On [`Verdict::Drop`], the frame is unchanged. Never panics, never writes
    /// outside `frame`, never needs more room than the request had.
    ///
    /// # Example
    ///
    /// ```
    /// use echo_wire::{icmp, ipv4};
    /// use echo_wire::respond::{ReplyPolicy, Responder, Verdict};
    ///
    /// // An echo request from 198.18.0.2 to 198.18.0.1 (identifier 0x1234, sequence 1, no data).
    /// #[rustfmt::skip]
    /// let mut frame = [
    ///     0x02, 0, 0, 0, 0, 0x01,  0x02, 0, 0, 0, 0, 0x02,  0x08, 0x00, // to us, from the client, IPv4
    ///     0x45, 0, 0, 28,  0, 1, 0x40, 0,  57, 1, 0, 0,                  // DF, TTL 57, ICMP, checksum below
    ///     198, 18, 0, 2,  198, 18, 0, 1,                                 // source, destination
    ///     8, 0, 0, 0,  0x12, 0x34, 0, 1,                                 // echo request, checksum below
    /// ];
    /// let mut ip = ipv4::Packet::new_checked(&mut frame[14..]).unwrap();
    /// ip.fill_checksum();
    /// icmp::EchoPacket::new_checked(ip.payload_mut()).unwrap().fill_checksum_v4();
    ///
    /// let mut responder = Responder::new(ReplyPolicy::default(), 0x8000);
    /// assert_eq!(responder.respond(&mut frame), Verdict::Reply { len: 42 });
    ///
    /// assert_eq!(frame[..6], [0x02, 0, 0, 0, 0, 0x02]); // back to the client's MAC
    /// let ip = ipv4::Packet::new_checked(&frame[14..]).unwrap();
    /// assert_eq!(ip.dst_addr(), core::net::Ipv4Addr::new(198, 18, 0, 2));
    /// assert_eq!((ip.ttl(), ip.dont_frag(), ip.ident()), (64, false, 0x8000));
    /// assert!(ip.verify_checksum());
    /// let reply = icmp::EchoPacket::new_checked(ip.payload()).unwrap();
    /// assert_eq!((reply.msg_type(), reply.identifier(), reply.sequence()), (0, 0x1234, 1));
    /// assert!(reply.verify_checksum_v4());
    /// ```
    pub fn respond(&mut self, frame: &mut [u8]) -> Verdict {
        match self.reply(frame, None, &mut ()) {
            Ok(len) => Verdict::Reply { len },
            Err(reason) => Verdict::Drop(reason),
        }
    }

    /// Like [`Responder::respond`], but the reply is addressed on the link as `next_hop` says
    /// (the neighbour-table MAC of the reply's next hop, from the egress device's MAC: what the
    /// kernel's FIB told the XDP program), instead of back to the request's source MAC. Every
    /// check and every other byte of the reply are the same.
    ///
    /// ```
    /// # use echo_wire::{icmp, ipv4};
    /// use echo_wire::respond::{NextHop, ReplyPolicy, Responder, Verdict};
    /// # #[rustfmt::skip]
    /// # let mut frame = [
    /// #     0x02, 0, 0, 0, 0, 0x01,  0x02, 0, 0, 0, 0, 0x02,  0x08, 0x00,
    /// #     0x45, 0, 0, 28,  0, 1, 0x40, 0,  57, 1, 0, 0,
    /// #     198, 18, 0, 2,  198, 18, 0, 1,
    /// #     8, 0, 0, 0,  0x12, 0x34, 0, 1,
    /// # ];
    /// # let mut ip = ipv4::Packet::new_checked(&mut frame[14..]).unwrap();
    /// # ip.fill_checksum();
    /// # icmp::EchoPacket::new_checked(ip.payload_mut()).unwrap().fill_checksum_v4();
    /// // `frame`: an echo request from 198.18.0.2 (MAC 02:00:00:00:00:02) to 198.18.0.1.
    /// let hop = NextHop { dst_mac: [0x02, 0, 0, 0, 0, 0x99], src_mac: [0x02, 0, 0, 0, 0, 0x01], hop_limit: 0 };
    /// let mut responder = Responder::new(ReplyPolicy::default(), 0x8000);
    /// assert_eq!(responder.respond_via(&mut frame, &hop), Verdict::Reply { len: 42 });
    /// assert_eq!(frame[..12], [0x02, 0, 0, 0, 0, 0x99, 0x02, 0, 0, 0, 0, 0x01]);
    /// ```
    pub fn respond_via(&mut self, frame: &mut [u8], next_hop: &NextHop) -> Verdict {
        match self.reply(frame, Some(next_hop), &mut ()) {
            Ok(len) => Verdict::Reply { len },
            Err(reason) => Verdict::Drop(reason),
        }
    }

    /// [`Responder::respond_via`], recording every field it reads and changes into `rewrite`
    /// (for the frame tracer, `--trace`; see [`crate::trace`]). The same code as `respond_via`
    /// (generic over the recorder), so the record cannot disagree with the reply.
    pub fn respond_via_recorded(&mut self, frame: &mut [u8], next_hop: &NextHop, rewrite: &mut Rewrite) -> Verdict {
        *rewrite = Rewrite::default();
        match self.reply(frame, Some(next_hop), rewrite) {
            Ok(len) => Verdict::Reply { len },
            Err(reason) => Verdict::Drop(reason),
        }
    }

    /// [`Responder::respond`] with `?`: the reply length, or why there is none.
    fn reply<R: Recorder>(
        &mut self,
        frame: &mut [u8],
        next_hop: Option<&NextHop>,
        rec: &mut R,
    ) -> Result<usize, DropReason> {
        let link = parse_link(frame)?;
        // The route's hoplimit metric, when the XDP program found one (0: none).
        let route_hop_limit = next_hop.map_or(0, |hop| hop.hop_limit);
        // `parse_link` has read the first byte after the link header, so neither this slice nor
        // the Ethernet header below can fail: the `?`s only spare us a panic path.
        let packet = frame.get_mut(link.header_len..).ok_or(DropReason::Truncated)?;
        let ip_len = match link.ip {
            Ip::V4 => self.reply_ipv4(packet, link.unicast, route_hop_limit, rec)?,
            Ip::V6 => self.reply_ipv6(packet, link.unicast, route_hop_limit, rec)?,
        };
        // The IP layer has been rewritten: the verdict is Reply, nothing can fail any more.
        let eth = frame
            .first_chunk_mut::<{ ethernet::HEADER_LEN }>()
            .ok_or(DropReason::Truncated)?;
        let mut eth = Frame::new_checked(eth).map_err(|_| DropReason::Truncated)?;
        let (src, dst) = match next_hop {
            // Where Linux would send it: the reply's next hop, from the egress device.
            Some(hop) => (hop.dst_mac, hop.src_mac),
            None => (eth.src_addr(), eth.dst_addr()),
        };
        rec.note(|r| {
            r.dst_mac = (eth.dst_addr(), src);
            r.src_mac = (eth.src_addr(), dst);
            r.priority_tag_removed = link.priority_tag;
        });
        eth.set_src_addr(dst);
        eth.set_dst_addr(src);
        if link.priority_tag {
            // Drop the 4-byte tag: the inner EtherType and the IP packet move over the TPID and
            // TCI. (`ip_len` fits: the IP layer checked it against the frame.)
            let end = link.header_len + ip_len;
            frame.copy_within(
                ethernet::HEADER_LEN + ethernet::VLAN_TAG_LEN - 2..end,
                ethernet::HEADER_LEN - 2,
            );
            return Ok(ethernet::HEADER_LEN + ip_len);
        }
        Ok(link.header_len + ip_len)
    }

    /// Checks an IPv4 echo request and rewrites it into the reply; returns the IP packet length.
    fn reply_ipv4<R: Recorder>(
        &mut self,
        packet: &mut [u8],
        macs_unicast: bool,
        route_ttl: u8,
        rec: &mut R,
    ) -> Result<usize, DropReason> {
        let mut ip = ipv4::Packet::new_checked(packet).map_err(ip_error)?;
        if ip.header_len() != ipv4::HEADER_LEN {
            return Err(DropReason::IpOptions);
        }
        if !ip.verify_checksum() {
            return Err(DropReason::IpChecksum);
        }
        if !(macs_unicast && is_unicast_ipv4(ip.src_addr()) && is_unicast_ipv4(ip.dst_addr())) {
            return Err(DropReason::NotUnicast);
        }
        if ip.is_fragment() {
            return Err(DropReason::Fragment);
        }
        if ip.protocol() != ipv4::PROTOCOL_ICMP {
            return Err(DropReason::NotIcmp);
        }

        let mut echo = EchoPacket::new_checked(ip.payload_mut()).map_err(|_| DropReason::Truncated)?;
        if echo.msg_type() != icmp::ECHO_REQUEST_V4 {
            return Err(DropReason::NotEchoRequest);
        }
        if !echo.verify_checksum_v4() {
            return Err(DropReason::IcmpChecksum);
        }

        // Every check passed: rewrite. ICMP first: type 8 -> 0, the code stays.
        let reply_word = u16::from_be_bytes([icmp::ECHO_REPLY_V4, echo.code()]);
        let mut echo_checksum = checksum::update(echo.checksum(), echo.type_code_word(), reply_word);
        rec.note(|r| {
            r.family = Family::V4;
            r.identifier = echo.identifier();
            r.sequence = echo.sequence();
            r.icmp_type = (echo.msg_type(), icmp::ECHO_REPLY_V4);
            r.icmp_checksum.old = echo.checksum();
            r.icmp_checksum.words[0] = (echo.type_code_word(), reply_word);
            r.icmp_checksum.names[0] = "type/code";
            r.icmp_checksum.len = 1;
        });
        echo.set_msg_type(icmp::ECHO_REPLY_V4);
        if echo_checksum == 0x0000 && is_all_zero(&echo) {
            // The one message eqn. 3 gets wrong: all zeros sums to +0, whose checksum is 0xffff
            // (see `checksum::update`). Reached by identifier 0, sequence 0, all-zero data.
            echo_checksum = 0xffff;
        }
        echo.set_checksum(echo_checksum);
        rec.note(|r| r.icmp_checksum.new = echo_checksum);

        // Then the IP header: three words change, and the checksum is updated for all three in
        // one sum. Not a fragment (checked above), so clearing DF leaves the whole word zero.
        let ident = self.next_ipv4_ident(ip.ident());
        let ttl = if route_ttl != 0 {
            route_ttl
        } else {
            self.policy.ipv4_ttl
        };
        let ttl_protocol = u16::from_be_bytes([ttl, ipv4::PROTOCOL_ICMP]);
        let header_checksum = checksum::update_words(
            ip.checksum(),
            [
                (ip.ident(), ident),
                (ip.flags_frag_word(), 0),
                (ip.ttl_protocol_word(), ttl_protocol),
            ],
        );
        rec.note(|r| {
            r.src = ip.src_addr().into();
            r.dst = ip.dst_addr().into();
            r.ip_len = usize::from(ip.total_len());
            r.ttl = (ip.ttl(), ttl);
            r.ident = (ip.ident(), ident);
            r.flags = (ip.flags_frag_word(), 0);
            r.ip_checksum.old = ip.checksum();
            r.ip_checksum.words = [
                (ip.ident(), ident),
                (ip.flags_frag_word(), 0),
                (ip.ttl_protocol_word(), ttl_protocol),
            ];
            r.ip_checksum.names = ["id", "flags/frag", "ttl/protocol"];
            r.ip_checksum.len = 3;
            r.ip_checksum.new = header_checksum;
        });
        ip.set_ident(ident);
        ip.set_flags_frag_word(0);
        ip.set_ttl(ttl);
        ip.set_checksum(header_checksum);
        // Swapping the addresses leaves the checksum as it is (the same words, in another order).
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        ip.set_src_addr(dst);
        ip.set_dst_addr(src);
        Ok(usize::from(ip.total_len()))
    }

    /// Checks an IPv6 echo request and rewrites it into the reply; returns the IP packet length.
    fn reply_ipv6<R: Recorder>(
        &mut self,
        packet: &mut [u8],
        macs_unicast: bool,
        route_hop_limit: u8,
        rec: &mut R,
    ) -> Result<usize, DropReason> {
        let mut ip = ipv6::Packet::new_checked(packet).map_err(ip_error)?;
        let next_header = ip.next_header();
        if ipv6::is_extension_header(next_header) && next_header != ipv6::NEXT_HEADER_FRAGMENT {
            return Err(DropReason::IpOptions);
        }
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        if !(macs_unicast && is_unicast_ipv6(src) && is_unicast_ipv6(dst)) {
            return Err(DropReason::NotUnicast);
        }
        match next_header {
            ipv6::NEXT_HEADER_ICMPV6 => {}
            ipv6::NEXT_HEADER_FRAGMENT => return Err(DropReason::Fragment),
            _ => return Err(DropReason::NotIcmp),
        }
        let pseudo_header: Sum = ip.pseudo_header_sum();
        let ip_len = ipv6::HEADER_LEN + usize::from(ip.payload_len());

        let mut echo = EchoPacket::new_checked(ip.payload_mut()).map_err(|_| DropReason::Truncated)?;
        if echo.msg_type() != icmp::ECHO_REQUEST_V6 {
            return Err(DropReason::NotEchoRequest);
        }
        if !echo.verify_checksum_v6(pseudo_header) {
            return Err(DropReason::IcmpChecksum);
        }

        // Every check passed: rewrite. The pseudo-header's sum does not change (same addresses,
        // swapped; same length and next header), so only the type word needs an update. The
        // message is never all zeros here: the pseudo-header's next header (58) is in the sum.
        let reply_word = u16::from_be_bytes([icmp::ECHO_REPLY_V6, echo.code()]);
        let echo_checksum = checksum::update(echo.checksum(), echo.type_code_word(), reply_word);
        rec.note(|r| {
            r.family = Family::V6;
            r.identifier = echo.identifier();
            r.sequence = echo.sequence();
            r.icmp_type = (echo.msg_type(), icmp::ECHO_REPLY_V6);
            r.icmp_checksum.old = echo.checksum();
            r.icmp_checksum.words[0] = (echo.type_code_word(), reply_word);
            r.icmp_checksum.names[0] = "type/code";
            r.icmp_checksum.len = 1;
            r.icmp_checksum.new = echo_checksum;
        });
        echo.set_msg_type(icmp::ECHO_REPLY_V6);
        echo.set_checksum(echo_checksum);

        // The flow label is not covered by any checksum.
        let label = self
            .policy
            .flow_label
            .reply_label(ip.flow_label(), &dst.octets(), &src.octets());
        let hop_limit = if route_hop_limit != 0 {
            route_hop_limit
        } else {
            self.policy.ipv6_hop_limit
        };
        rec.note(|r| {
            r.src = src.into();
            r.dst = dst.into();
            r.ip_len = ip_len;
            r.ttl = (ip.hop_limit(), hop_limit);
            r.flow_label = (ip.flow_label(), label);
        });
        ip.set_flow_label(label);
        ip.set_src_addr(dst);
        ip.set_dst_addr(src);
        ip.set_hop_limit(hop_limit);
        Ok(ip_len)
    }

    /// The identification of the next IPv4 reply: a counter, stepping over the request's own
    /// identification so that a reply never carries it (which makes "fresh" testable).
    fn next_ipv4_ident(&mut self, request_ident: u16) -> u16 {
        let mut ident = self.next_ipv4_ident;
        if ident == request_ident {
            ident = ident.wrapping_add(1);
        }
        self.next_ipv4_ident = ident.wrapping_add(1);
        ident
    }
}

/// True when an ICMP message is all zeros apart from its checksum field.
fn is_all_zero<T: AsRef<[u8]>>(echo: &EchoPacket<T>) -> bool {
    echo.type_code_word() == 0
        && echo.identifier() == 0
        && echo.sequence() == 0
        && echo.data().iter().all(|&byte| byte == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{ECHO_REPLY_V4, ECHO_REPLY_V6, ECHO_REQUEST_V4, ECHO_REQUEST_V6};
    use core::net::{Ipv4Addr, Ipv6Addr};
    use std::collections::HashSet;

    /// The IPv4 identification seed the fixture replies were made with.
    const SEED: u16 = 0x8001;
    /// The policy the fixture replies were made with: Linux's defaults, but the request's flow
    /// label kept (the auto label has tests of its own).
    const FIXTURE_POLICY: ReplyPolicy = ReplyPolicy {
        flow_label: FlowLabelPolicy::REFLECT_ONLY,
        ..ReplyPolicy::DEFAULT
    };
    /// Where the IP header starts in an untagged frame.
    const L3: usize = 14;

    /// Runs `frame` through a fresh responder, and checks that a dropped frame was left unchanged.
    fn run(frame: &mut [u8]) -> Verdict {
        let before = frame.to_vec();
        let verdict = Responder::new(FIXTURE_POLICY, SEED).respond(frame);
        if let Verdict::Drop(reason) = verdict {
            assert_eq!(frame, &before[..], "dropped ({reason}) but modified");
        }
        verdict
    }

    /// A copy of an untagged fixture frame changed by `edit`.
    fn edited(fixture: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut frame = fixture.to_vec();
        edit(&mut frame);
        frame
    }

    /// `frame` with a VLAN tag inserted after the MAC addresses.
    fn with_tag(frame: &[u8], tpid: u16, tci: u16) -> Vec<u8> {
        let mut tagged = frame[..12].to_vec();
        tagged.extend_from_slice(&tpid.to_be_bytes());
        tagged.extend_from_slice(&tci.to_be_bytes());
        tagged.extend_from_slice(&frame[12..]);
        tagged
    }

    /// Recomputes the IPv4 header checksum of an untagged frame from scratch (raw bytes, so it
    /// also works when a test broke the length fields on purpose).
    fn fix_ipv4_header(frame: &mut [u8]) {
        let header_len = usize::from(frame[L3] & 0x0f) * 4;
        frame[L3 + 10..L3 + 12].fill(0);
        let sum = checksum::checksum(&frame[L3..L3 + header_len]);
        frame[L3 + 10..L3 + 12].copy_from_slice(&sum.to_be_bytes());
    }

    /// Recomputes the ICMP checksum of an untagged IPv4 frame from scratch.
    fn fix_icmpv4(frame: &mut [u8]) {
        let mut ip = ipv4::Packet::new_checked(&mut frame[L3..]).unwrap();
        EchoPacket::new_checked(ip.payload_mut()).unwrap().fill_checksum_v4();
    }

    /// Recomputes the ICMPv6 checksum of an untagged IPv6 frame from scratch.
    fn fix_icmpv6(frame: &mut [u8]) {
        let mut ip = ipv6::Packet::new_checked(&mut frame[L3..]).unwrap();
        let pseudo_header = ip.pseudo_header_sum();
        EchoPacket::new_checked(ip.payload_mut())
            .unwrap()
            .fill_checksum_v6(pseudo_header);
    }

    #[test]
    fn ipv4_request_gives_the_exact_reply() {
        let mut frame = ECHO_REQUEST_V4;
        assert_eq!(run(&mut frame), Verdict::Reply { len: 98 });
        assert_eq!(frame, ECHO_REPLY_V4);
    }

    #[test]
    fn ipv6_request_gives_the_exact_reply() {
        let mut frame = ECHO_REQUEST_V6;
        assert_eq!(run(&mut frame), Verdict::Reply { len: 118 });
        assert_eq!(frame, ECHO_REPLY_V6);
    }

    #[test]
    fn ipv4_reply_field_by_field() {
        let mut frame = ECHO_REQUEST_V4;
        run(&mut frame);
        let eth = Frame::new_checked(&frame[..]).unwrap();
        assert_eq!(eth.dst_addr(), ECHO_REQUEST_V4[6..12]);
        assert_eq!(eth.src_addr(), ECHO_REQUEST_V4[0..6]);
        let ip = ipv4::Packet::new_checked(&frame[L3..]).unwrap();
        assert_eq!(ip.src_addr(), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(ip.dst_addr(), Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(ip.ttl(), 64, "host TTL, not the request's 61");
        assert!(!ip.dont_frag());
        assert_eq!(ip.ident(), SEED);
        assert_eq!(ip.tos(), 0xb8, "TOS copied");
        assert_eq!(ip.total_len(), 84);
        assert!(ip.verify_checksum());
        let echo = EchoPacket::new_checked(ip.payload()).unwrap();
        assert_eq!((echo.msg_type(), echo.code()), (icmp::ECHO_REPLY_V4, 0));
        assert_eq!((echo.identifier(), echo.sequence()), (0x04d2, 1));
        assert_eq!(echo.data(), &ECHO_REQUEST_V4[42..]);
        assert!(echo.verify_checksum_v4());
    }

    #[test]
    fn ipv6_reply_field_by_field() {
        let mut frame = ECHO_REQUEST_V6;
        run(&mut frame);
        let ip = ipv6::Packet::new_checked(&frame[L3..]).unwrap();
        assert_eq!(ip.src_addr(), Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        assert_eq!(ip.dst_addr(), Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));
        assert_eq!(ip.hop_limit(), 64, "host hop limit, not the request's 57");
        assert_eq!((ip.traffic_class(), ip.flow_label()), (0x28, 0x9b3e1));
        let echo = EchoPacket::new_checked(ip.payload()).unwrap();
        assert_eq!((echo.msg_type(), echo.code()), (icmp::ECHO_REPLY_V6, 0));
        assert_eq!((echo.identifier(), echo.sequence()), (0x1c2b, 7));
        assert!(echo.verify_checksum_v6(ip.pseudo_header_sum()));
    }

    #[test]
    fn policy_sets_ttl_and_hop_limit() {
        let policy = ReplyPolicy {
            ipv4_ttl: 255,
            ipv6_hop_limit: 1,
            ..ReplyPolicy::DEFAULT
        };
        let mut responder = Responder::new(policy, 7);
        assert_eq!(responder.policy(), policy);

        let mut frame = ECHO_REQUEST_V4;
        assert_eq!(responder.respond(&mut frame), Verdict::Reply { len: 98 });
        let ip = ipv4::Packet::new_checked(&frame[L3..]).unwrap();
        assert_eq!(ip.ttl(), 255);
        assert!(ip.verify_checksum());

        let mut frame = ECHO_REQUEST_V6;
        assert_eq!(responder.respond(&mut frame), Verdict::Reply { len: 118 });
        assert_eq!(ipv6::Packet::new_checked(&frame[L3..]).unwrap().hop_limit(), 1);
    }

    #[test]
    fn a_policy_change_applies_to_the_next_reply() {
        let mut responder = Responder::new(FIXTURE_POLICY, 7);
        let new = ReplyPolicy {
            ipv4_ttl: 32,
            ipv6_hop_limit: 200,
            ..FIXTURE_POLICY
        };
        responder.set_policy(new);
        assert_eq!(responder.policy(), new);
        let mut frame = ECHO_REQUEST_V4;
        responder.respond(&mut frame);
        assert_eq!(ipv4::Packet::new_checked(&frame[L3..]).unwrap().ttl(), 32);
        let mut frame = ECHO_REQUEST_V6;
        responder.respond(&mut frame);
        assert_eq!(ipv6::Packet::new_checked(&frame[L3..]).unwrap().hop_limit(), 200);
    }

    /// The flow label of the reply to `request` (an untagged IPv6 request) under `labels`.
    fn reply_label(labels: FlowLabelPolicy, request: &[u8]) -> u32 {
        let policy = ReplyPolicy {
            flow_label: labels,
            ..ReplyPolicy::DEFAULT
        };
        let mut frame = request.to_vec();
        let before = frame.clone();
        assert!(matches!(
            Responder::new(policy, 1).respond(&mut frame),
            Verdict::Reply { .. }
        ));
        let ip = ipv6::Packet::new_checked(&frame[L3..]).unwrap();
        assert!(
            EchoPacket::new_checked(ip.payload())
                .unwrap()
                .verify_checksum_v6(ip.pseudo_header_sum()),
            "the label is outside every checksum"
        );
        // Everything but the label, hop limit, addresses, type and checksum is the request's.
        assert_eq!(frame[L3] & 0xf0, before[L3] & 0xf0);
        assert_eq!(frame[L3 + 4..L3 + 7], before[L3 + 4..L3 + 7]);
        ip.flow_label()
    }

    /// The IPv6 fixture request with another flow label, identifier or source address.
    fn v6_request(label: u32, identifier: u16, src_last: u8) -> Vec<u8> {
        let mut frame = ECHO_REQUEST_V6.to_vec();
        let mut ip = ipv6::Packet::new_checked(&mut frame[L3..]).unwrap();
        ip.set_flow_label(label);
        let mut src = ip.src_addr().octets();
        src[15] = src_last;
        ip.set_src_addr(Ipv6Addr::from(src));
        frame[L3 + 44..L3 + 46].copy_from_slice(&identifier.to_be_bytes());
        fix_icmpv6(&mut frame);
        frame
    }

    const KEY: [u64; 2] = [0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210];

    #[test]
    fn auto_flow_labels_are_per_flow_like_linux() {
        let auto = FlowLabelPolicy::LINUX_DEFAULT.with_key(KEY);
        // One flow (same addresses): one non-zero label, whatever the request's label, the
        // identifier (Linux's flow for an echo reply has no identifier) or the payload.
        let first = reply_label(auto, &v6_request(0x12345, 0x1c2b, 2));
        assert_ne!(first, 0);
        assert!(first <= 0xf_ffff);
        assert_eq!(reply_label(auto, &v6_request(0, 0x1c2b, 2)), first);
        assert_eq!(reply_label(auto, &v6_request(0x12345, 0x7777, 2)), first);
        assert_eq!(
            reply_label(auto, &ECHO_REQUEST_V6),
            first,
            "the fixture's source ends in 2"
        );
        // Other flows (other sources): other labels, all non-zero, whatever the key (the zero
        // key, small keys and all-ones included: a multiplier derived naively from the key would
        // be 0 or 1 for some of them and give every flow one label).
        for key in [KEY, [0, 0], [1, 2], [0x243f_6a88_85a3_08d3, 0], [u64::MAX, u64::MAX]] {
            let keyed = FlowLabelPolicy::LINUX_DEFAULT.with_key(key);
            let mut labels = HashSet::new();
            for src_last in 0..=255u8 {
                let label = reply_label(keyed, &v6_request(0, 1, src_last));
                assert!(label != 0 && label <= 0xf_ffff, "{label:#x}");
                labels.insert(label);
            }
            // 256 random 20-bit labels collide with probability ~3 %, twice with ~0.05 %: a
            // weak hash (a key or address word that does not mix in) collides far more.
            assert!(labels.len() >= 254, "key {key:x?}: 256 flows, {} labels", labels.len());
        }
        // Another key (another run): another label for the same flow.
        let other_run = FlowLabelPolicy::LINUX_DEFAULT.with_key([KEY[0] ^ 1, KEY[1]]);
        assert_ne!(reply_label(other_run, &v6_request(0, 0x1c2b, 2)), first);
        // flowlabel_state_ranges sets bit 19 of auto labels.
        let ranges = FlowLabelPolicy {
            state_ranges: true,
            ..auto
        };
        assert_eq!(reply_label(ranges, &v6_request(0, 1, 2)), first | 0x8_0000);
    }

    #[test]
    fn reflected_and_disabled_flow_labels_follow_linux() {
        let reflect_auto = FlowLabelPolicy {
            reflect: true,
            ..FlowLabelPolicy::LINUX_DEFAULT.with_key(KEY)
        };
        let auto_label = reply_label(FlowLabelPolicy::LINUX_DEFAULT.with_key(KEY), &v6_request(0, 1, 2));
        // flowlabel_reflect=4: the request's label; a request without one gets the auto label.
        assert_eq!(reply_label(reflect_auto, &v6_request(0x12345, 1, 2)), 0x12345);
        assert_eq!(reply_label(reflect_auto, &v6_request(0, 1, 2)), auto_label);
        // Reflect without auto labels: the request's label, 0 included.
        assert_eq!(
            reply_label(FlowLabelPolicy::REFLECT_ONLY, &v6_request(0xabcde, 1, 2)),
            0xabcde
        );
        assert_eq!(reply_label(FlowLabelPolicy::REFLECT_ONLY, &v6_request(0, 1, 2)), 0);
        // auto_flowlabels=0 and no reflect: no label at all.
        let none = FlowLabelPolicy {
            auto: false,
            ..FlowLabelPolicy::LINUX_DEFAULT
        };
        assert_eq!(reply_label(none, &v6_request(0x12345, 1, 2)), 0);
    }

    #[test]
    fn identification_counts_up_and_skips_the_requests() {
        // The request's identification is 0x3c1d.
        let mut responder = Responder::new(ReplyPolicy::default(), 0x3c1c);
        let mut idents = Vec::new();
        for _ in 0..3 {
            let mut frame = ECHO_REQUEST_V4;
            assert!(matches!(responder.respond(&mut frame), Verdict::Reply { .. }));
            let ip = ipv4::Packet::new_checked(&frame[L3..]).unwrap();
            assert!(ip.verify_checksum());
            idents.push(ip.ident());
        }
        assert_eq!(idents, [0x3c1c, 0x3c1e, 0x3c1f]);

        // And it wraps around.
        let mut responder = Responder::new(ReplyPolicy::default(), 0xffff);
        let mut idents = Vec::new();
        for _ in 0..2 {
            let mut frame = ECHO_REQUEST_V4;
            responder.respond(&mut frame);
            idents.push(ipv4::Packet::new_checked(&frame[L3..]).unwrap().ident());
        }
        assert_eq!(idents, [0xffff, 0x0000]);
    }

    /// A minimal IPv4 request (no data) padded to Ethernet's 60-byte minimum.
    fn padded_ipv4_request() -> Vec<u8> {
        let mut frame = ECHO_REQUEST_V4[..42].to_vec();
        frame[L3 + 2..L3 + 4].copy_from_slice(&28u16.to_be_bytes());
        fix_ipv4_header(&mut frame);
        frame.resize(60, 0xee);
        fix_icmpv4(&mut frame);
        frame
    }

    #[test]
    fn trailer_padding_is_not_echoed() {
        let mut frame = padded_ipv4_request();
        assert_eq!(run(&mut frame), Verdict::Reply { len: 42 });
        assert_eq!(frame[42..], [0xee; 18], "the padding is neither sent nor touched");
        let ip = ipv4::Packet::new_checked(&frame[L3..42]).unwrap();
        assert!(ip.verify_checksum());
        assert!(EchoPacket::new_checked(ip.payload()).unwrap().verify_checksum_v4());

        let mut frame = ECHO_REQUEST_V6.to_vec();
        frame.extend_from_slice(&[0xee; 5]);
        assert_eq!(run(&mut frame), Verdict::Reply { len: 118 });
        assert_eq!(frame[..118], ECHO_REPLY_V6);
    }

    #[test]
    fn one_vlan_tag_is_kept() {
        let tags = [
            (ethernet::TPID_8021Q, 5 << 13 | 100), // VLAN 100, priority 5
            (ethernet::TPID_8021AD, 7),            // a single service tag
        ];
        for (tpid, tci) in tags {
            for (request, reply) in [
                (&ECHO_REQUEST_V4[..], &ECHO_REPLY_V4[..]),
                (&ECHO_REQUEST_V6[..], &ECHO_REPLY_V6[..]),
            ] {
                let mut frame = with_tag(request, tpid, tci);
                let len = frame.len();
                assert_eq!(run(&mut frame), Verdict::Reply { len }, "{tpid:#x} {tci:#x}");
                assert_eq!(frame, with_tag(reply, tpid, tci));
            }
        }
    }

    #[test]
    fn a_priority_tag_is_removed_like_linux_does() {
        for (tpid, tci) in [
            (ethernet::TPID_8021Q, 3 << 13),
            (ethernet::TPID_8021AD, 7 << 13 | 1 << 12),
        ] {
            for (request, reply) in [
                (&ECHO_REQUEST_V4[..], &ECHO_REPLY_V4[..]),
                (&ECHO_REQUEST_V6[..], &ECHO_REPLY_V6[..]),
            ] {
                let mut frame = with_tag(request, tpid, tci);
                frame.extend_from_slice(&[0xee; 3]); // trailer padding, not echoed
                assert_eq!(
                    run(&mut frame),
                    Verdict::Reply { len: reply.len() },
                    "{tpid:#x} {tci:#x}"
                );
                assert_eq!(frame[..reply.len()], *reply);
            }
        }
    }

    #[test]
    fn any_echo_code_is_answered_and_copied() {
        let mut frame = edited(&ECHO_REQUEST_V4, |f| {
            f[L3 + 21] = 3;
            fix_icmpv4(f);
        });
        assert_eq!(run(&mut frame), Verdict::Reply { len: 98 });
        let ip = ipv4::Packet::new_checked(&frame[L3..]).unwrap();
        let echo = EchoPacket::new_checked(ip.payload()).unwrap();
        assert_eq!((echo.msg_type(), echo.code()), (icmp::ECHO_REPLY_V4, 3));
        assert!(echo.verify_checksum_v4());

        let mut frame = edited(&ECHO_REQUEST_V6, |f| {
            f[L3 + 41] = 0xff;
            fix_icmpv6(f);
        });
        assert_eq!(run(&mut frame), Verdict::Reply { len: 118 });
        let ip = ipv6::Packet::new_checked(&frame[L3..]).unwrap();
        let echo = EchoPacket::new_checked(ip.payload()).unwrap();
        assert_eq!((echo.msg_type(), echo.code()), (icmp::ECHO_REPLY_V6, 0xff));
        assert!(echo.verify_checksum_v6(ip.pseudo_header_sum()));
    }

    #[test]
    fn an_all_zero_reply_gets_checksum_ffff() {
        // Identifier 0, sequence 0, 16 zero bytes of data: the reply message is all zeros.
        let mut frame = ECHO_REQUEST_V4[..58].to_vec();
        frame[L3 + 2..L3 + 4].copy_from_slice(&44u16.to_be_bytes());
        frame[L3 + 24..].fill(0);
        fix_ipv4_header(&mut frame);
        fix_icmpv4(&mut frame);
        assert_eq!(frame[L3 + 22..L3 + 24], [0xf7, 0xff]);

        assert_eq!(run(&mut frame), Verdict::Reply { len: 58 });
        let ip = ipv4::Packet::new_checked(&frame[L3..]).unwrap();
        let echo = EchoPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(
            echo.checksum(),
            0xffff,
            "what a recomputation gives, and receivers accept"
        );
        assert!(echo.verify_checksum_v4());
    }

    /// One crafted frame for each way a frame can fail, IPv4 and IPv6 where both apply.
    fn drop_cases() -> Vec<(&'static str, Vec<u8>, DropReason)> {
        use DropReason::*;
        let v4 = |edit: fn(&mut Vec<u8>)| edited(&ECHO_REQUEST_V4, edit);
        let v6 = |edit: fn(&mut Vec<u8>)| edited(&ECHO_REQUEST_V6, edit);
        let tagged = with_tag(&ECHO_REQUEST_V4, ethernet::TPID_8021Q, 100);
        vec![
            ("empty frame", Vec::new(), Truncated),
            ("cut in the Ethernet header", ECHO_REQUEST_V4[..13].to_vec(), Truncated),
            ("cut in the VLAN tag", tagged[..17].to_vec(), Truncated),
            (
                "nothing after the Ethernet header",
                ECHO_REQUEST_V4[..14].to_vec(),
                Truncated,
            ),
            ("cut in the IPv4 header", ECHO_REQUEST_V4[..33].to_vec(), Truncated),
            ("cut in the IPv6 header", ECHO_REQUEST_V6[..53].to_vec(), Truncated),
            (
                "IPv4 packet too short for the echo header",
                v4(|f| {
                    f.truncate(L3 + 24);
                    f[L3 + 2..L3 + 4].copy_from_slice(&24u16.to_be_bytes());
                    fix_ipv4_header(f);
                }),
                Truncated,
            ),
            (
                "IPv6 payload too short for the echo header",
                v6(|f| {
                    f.truncate(L3 + 47);
                    f[L3 + 4..L3 + 6].copy_from_slice(&7u16.to_be_bytes());
                }),
                Truncated,
            ),
            ("QinQ", with_tag(&tagged, ethernet::TPID_8021AD, 7), Vlan),
            (
                "legacy QinQ TPID inside a tag",
                with_tag(&with_tag(&ECHO_REQUEST_V4, 0x9100, 1), ethernet::TPID_8021Q, 2),
                Vlan,
            ),
            ("ARP", v4(|f| f[12..14].copy_from_slice(&[0x08, 0x06])), NotIp),
            ("LLDP", v6(|f| f[12..14].copy_from_slice(&[0x88, 0xcc])), NotIp),
            (
                "ARP in a VLAN",
                edited(&tagged, |f| f[16..18].copy_from_slice(&[0x08, 0x06])),
                NotIp,
            ),
            (
                "IPv6 under the IPv4 EtherType",
                v6(|f| f[12..14].copy_from_slice(&[0x08, 0x00])),
                IpVersion,
            ),
            (
                "IPv4 under the IPv6 EtherType",
                v4(|f| f[12..14].copy_from_slice(&[0x86, 0xdd])),
                IpVersion,
            ),
            ("IPv4 version 5", v4(|f| f[L3] = 0x55), IpVersion),
            (
                "IPv4 total length beyond the frame",
                v4(|f| {
                    f[L3 + 3] = 85;
                    fix_ipv4_header(f);
                }),
                IpLength,
            ),
            (
                "IPv4 IHL below 5",
                v4(|f| {
                    f[L3] = 0x44;
                    fix_ipv4_header(f);
                }),
                IpLength,
            ),
            (
                "IPv4 total length below the header",
                v4(|f| {
                    f[L3 + 3] = 19;
                    fix_ipv4_header(f);
                }),
                IpLength,
            ),
            ("IPv6 payload length beyond the frame", v6(|f| f[L3 + 5] = 65), IpLength),
            ("IPv4 TTL changed in transit", v4(|f| f[L3 + 8] -= 1), IpChecksum),
            ("IPv4 header checksum off by one", v4(|f| f[L3 + 11] ^= 1), IpChecksum),
            ("broadcast destination MAC", v4(|f| f[..6].fill(0xff)), NotUnicast),
            (
                "multicast source MAC",
                v6(|f| f[6..12].copy_from_slice(&[0x33, 0x33, 0, 0, 0, 1])),
                NotUnicast,
            ),
            (
                "IPv4 limited broadcast destination",
                v4(|f| {
                    f[L3 + 16..L3 + 20].fill(0xff);
                    fix_ipv4_header(f);
                }),
                NotUnicast,
            ),
            (
                "IPv4 multicast destination",
                v4(|f| {
                    f[L3 + 16..L3 + 20].copy_from_slice(&[224, 0, 0, 1]);
                    fix_ipv4_header(f);
                }),
                NotUnicast,
            ),
            (
                "IPv4 loopback source",
                v4(|f| {
                    f[L3 + 12..L3 + 16].copy_from_slice(&[127, 0, 0, 1]);
                    fix_ipv4_header(f);
                }),
                NotUnicast,
            ),
            (
                "IPv4 unspecified source",
                v4(|f| {
                    f[L3 + 12..L3 + 16].fill(0);
                    fix_ipv4_header(f);
                }),
                NotUnicast,
            ),
            (
                "IPv6 all-nodes destination",
                v6(|f| f[L3 + 24..L3 + 40].copy_from_slice(&Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).octets())),
                NotUnicast,
            ),
            (
                "IPv6 unspecified source",
                v6(|f| f[L3 + 8..L3 + 24].fill(0)),
                NotUnicast,
            ),
            (
                "IPv6 loopback source",
                v6(|f| f[L3 + 8..L3 + 24].copy_from_slice(&Ipv6Addr::LOCALHOST.octets())),
                NotUnicast,
            ),
            (
                "IPv4-mapped IPv6 source",
                v6(|f| {
                    let mapped = Ipv4Addr::new(198, 18, 0, 2).to_ipv6_mapped();
                    f[L3 + 8..L3 + 24].copy_from_slice(&mapped.octets());
                }),
                NotUnicast,
            ),
            (
                "IPv4 options",
                v4(|f| {
                    // IHL 6: four option bytes (three NOPs and an end of list) before the ICMP.
                    f.splice(L3 + 20..L3 + 20, [1, 1, 1, 0]);
                    f[L3] = 0x46;
                    f[L3 + 3] += 4;
                    fix_ipv4_header(f);
                }),
                IpOptions,
            ),
            ("IPv6 hop-by-hop options", v6(|f| f[L3 + 6] = 0), IpOptions),
            ("IPv6 destination options", v6(|f| f[L3 + 6] = 60), IpOptions),
            (
                "IPv4 first fragment",
                v4(|f| {
                    f[L3 + 6] = 0x20; // MF
                    fix_ipv4_header(f);
                }),
                Fragment,
            ),
            (
                "IPv4 last fragment",
                v4(|f| {
                    f[L3 + 6..L3 + 8].copy_from_slice(&185u16.to_be_bytes()); // offset 1480
                    fix_ipv4_header(f);
                }),
                Fragment,
            ),
            ("IPv6 fragment header", v6(|f| f[L3 + 6] = 44), Fragment),
            (
                "IPv4 UDP",
                v4(|f| {
                    f[L3 + 9] = 17;
                    fix_ipv4_header(f);
                }),
                NotIcmp,
            ),
            ("IPv6 UDP", v6(|f| f[L3 + 6] = 17), NotIcmp),
            ("IPv6 no next header", v6(|f| f[L3 + 6] = 59), NotIcmp),
            (
                "ICMP echo reply",
                v4(|f| {
                    f[L3 + 20] = icmp::ECHO_REPLY_V4;
                    fix_icmpv4(f);
                }),
                NotEchoRequest,
            ),
            (
                "ICMP timestamp request",
                v4(|f| {
                    f[L3 + 20] = 13;
                    fix_icmpv4(f);
                }),
                NotEchoRequest,
            ),
            (
                "ICMPv6 echo reply",
                v6(|f| {
                    f[L3 + 40] = icmp::ECHO_REPLY_V6;
                    fix_icmpv6(f);
                }),
                NotEchoRequest,
            ),
            (
                "ICMPv6 neighbour solicitation",
                v6(|f| {
                    f[L3 + 40] = 135;
                    fix_icmpv6(f);
                }),
                NotEchoRequest,
            ),
            ("ICMP data changed in transit", v4(|f| f[97] ^= 0x40), IcmpChecksum),
            ("ICMP checksum off by one", v4(|f| f[L3 + 23] ^= 1), IcmpChecksum),
            ("ICMPv6 data changed in transit", v6(|f| f[117] ^= 0x01), IcmpChecksum),
            (
                "IPv6 source changed (pseudo-header)",
                v6(|f| f[L3 + 23] = 3),
                IcmpChecksum,
            ),
        ]
    }

    #[test]
    fn every_drop_reason_is_reached_and_leaves_the_frame_alone() {
        let mut reached = HashSet::new();
        for (name, mut frame, expected) in drop_cases() {
            assert_eq!(run(&mut frame), Verdict::Drop(expected), "{name}");
            reached.insert(expected);
        }
        for reason in DropReason::ALL {
            if reason == DropReason::NoNextHop {
                continue; // the worker's, not a check of respond(): see next_hop_metadata_is_checked
            }
            assert!(reached.contains(&reason), "no test frame reaches {reason}");
        }
    }

    #[test]
    fn next_hop_metadata_is_checked() {
        let mut meta = [0u8; NextHop::XDP_META_LEN];
        meta[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x22]);
        meta[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x11]);
        assert_eq!(NextHop::from_xdp_meta(&meta), None, "no magic");
        meta[16..].copy_from_slice(&NextHop::XDP_META_MAGIC.to_ne_bytes());
        meta[12] = 7;
        assert_eq!(
            NextHop::from_xdp_meta(&meta),
            Some(NextHop {
                dst_mac: [0x02, 0, 0, 0, 0, 0x22],
                src_mac: [0x02, 0, 0, 0, 0, 0x11],
                hop_limit: 7,
            })
        );
        assert_eq!(NextHop::from_xdp_meta(&meta[..19]), None, "too short");
        for bad in [[0xff; 6], [0x01, 0, 0x5e, 0, 0, 1], [0; 6]] {
            let mut m = meta;
            m[..6].copy_from_slice(&bad);
            assert_eq!(NextHop::from_xdp_meta(&m), None, "destination {bad:02x?}");
            let mut m = meta;
            m[6..12].copy_from_slice(&bad);
            assert_eq!(NextHop::from_xdp_meta(&m), None, "source {bad:02x?}");
        }
    }

    #[test]
    fn respond_via_addresses_the_reply_to_the_next_hop_and_changes_nothing_else() {
        let hop = NextHop {
            dst_mac: [0x02, 0xaa, 0, 0, 0, 0x22],
            src_mac: [0x02, 0xbb, 0, 0, 0, 0x11],
            hop_limit: 0,
        };
        let tagged = |f: &[u8]| with_tag(f, ethernet::TPID_8021Q, 100);
        let priority = |f: &[u8]| with_tag(f, ethernet::TPID_8021Q, 5 << 13);
        let cases: [(&str, Vec<u8>); 6] = [
            ("v4", ECHO_REQUEST_V4.to_vec()),
            ("v6", ECHO_REQUEST_V6.to_vec()),
            ("v4 vlan 100", tagged(&ECHO_REQUEST_V4)),
            ("v6 vlan 100", tagged(&ECHO_REQUEST_V6)),
            ("v4 priority tag", priority(&ECHO_REQUEST_V4)),
            ("v6 priority tag", priority(&ECHO_REQUEST_V6)),
        ];
        for (what, request) in cases {
            let mut swapped = request.clone();
            let mut via = request.clone();
            let a = Responder::new(ReplyPolicy::default(), SEED).respond(&mut swapped);
            let b = Responder::new(ReplyPolicy::default(), SEED).respond_via(&mut via, &hop);
            assert_eq!(a, b, "{what}");
            let Verdict::Reply { len } = b else {
                panic!("{what}: {b:?}")
            };
            assert_eq!(via[..6], hop.dst_mac, "{what}: destination");
            assert_eq!(via[6..12], hop.src_mac, "{what}: source");
            assert_eq!(
                via[12..len],
                swapped[12..len],
                "{what}: the rest as respond() builds it"
            );
        }
        // A dropped frame is left alone, metadata or not.
        for (name, frame, expected) in drop_cases() {
            let mut copy = frame.clone();
            let verdict = Responder::new(ReplyPolicy::default(), SEED).respond_via(&mut copy, &hop);
            assert_eq!(verdict, Verdict::Drop(expected), "{name}");
            assert_eq!(copy, frame, "{name}: modified");
        }
    }

    #[test]
    fn a_route_hop_limit_replaces_the_policys_ttl_and_hop_limit() {
        let hop = NextHop {
            dst_mac: [0x02, 0xaa, 0, 0, 0, 0x22],
            src_mac: [0x02, 0xbb, 0, 0, 0, 0x11],
            hop_limit: 9,
        };
        let mut v4 = ECHO_REQUEST_V4.to_vec();
        let verdict = Responder::new(ReplyPolicy::default(), SEED).respond_via(&mut v4, &hop);
        assert!(matches!(verdict, Verdict::Reply { .. }), "{verdict:?}");
        let ip = ipv4::Packet::new_checked(&v4[ethernet::HEADER_LEN..]).unwrap();
        assert_eq!(ip.ttl(), 9, "the route's hoplimit");
        assert!(ip.verify_checksum(), "the header checksum covers the new TTL");

        let mut v6 = ECHO_REQUEST_V6.to_vec();
        let verdict = Responder::new(ReplyPolicy::default(), SEED).respond_via(&mut v6, &hop);
        assert!(matches!(verdict, Verdict::Reply { .. }), "{verdict:?}");
        assert_eq!(v6[ethernet::HEADER_LEN + 7], 9, "the route's hop limit");

        // 0: the route has none, the policy's applies.
        let none = NextHop { hop_limit: 0, ..hop };
        let mut v4 = ECHO_REQUEST_V4.to_vec();
        Responder::new(ReplyPolicy::default(), SEED).respond_via(&mut v4, &none);
        assert_eq!(v4[ethernet::HEADER_LEN + 8], ReplyPolicy::DEFAULT.ipv4_ttl);
    }

    #[test]
    fn every_cut_of_a_request_is_dropped() {
        for request in [&ECHO_REQUEST_V4[..], &ECHO_REQUEST_V6[..]] {
            for len in 0..request.len() {
                let mut frame = request[..len].to_vec();
                let verdict = run(&mut frame);
                assert!(
                    matches!(verdict, Verdict::Drop(DropReason::Truncated | DropReason::IpLength)),
                    "{len}: {verdict:?}"
                );
            }
        }
    }

    #[test]
    fn drop_reason_table_is_consistent() {
        assert_eq!(DropReason::COUNT, DropReason::ALL.len());
        let mut labels = HashSet::new();
        for (i, reason) in DropReason::ALL.into_iter().enumerate() {
            assert_eq!(reason.index(), i);
            let label = reason.as_str();
            assert!(labels.insert(label), "duplicate label {label}");
            assert!(
                label.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{label} is not kebab-case"
            );
            assert_eq!(reason.to_string(), label);
        }
    }
}
