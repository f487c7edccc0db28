//! What the rewrite of one request changed, field by field: the record behind the frame tracer.
//!
//! [`Responder::respond_via_recorded`](crate::respond::Responder::respond_via_recorded) runs the
//! very same rewrite as [`respond_via`](crate::respond::Responder::respond_via) and writes each
//! value it reads and each value it writes into a caller-provided [`Rewrite`]. Nothing is
//! recomputed here: the old and new checksums are the ones the rewrite read and stored, and the
//! words `(m, m')` are the ones it fed to [`checksum::update_words`]. The untraced path is
//! generic over the same recorder with a zero-sized no-op ([`Recorder`] for `()`), so it compiles
//! to the code it was before.
//!
//! ```
//! use echo_wire::respond::{NextHop, ReplyPolicy, Responder, Verdict};
//! use echo_wire::trace::{Family, Rewrite};
//! use echo_wire::{icmp, ipv4};
//! #[rustfmt::skip]
//! let mut frame = [
//!     0x02, 0, 0, 0, 0, 0x01,  0x02, 0, 0, 0, 0, 0x02,  0x08, 0x00,
//!     0x45, 0, 0, 28,  0, 1, 0x40, 0,  57, 1, 0, 0,
//!     198, 18, 0, 2,  198, 18, 0, 1,
//!     8, 0, 0, 0,  0x12, 0x34, 0, 1,
//! ];
//! let mut ip = ipv4::Packet::new_checked(&mut frame[14..]).unwrap();
//! ip.fill_checksum();
//! icmp::EchoPacket::new_checked(ip.payload_mut()).unwrap().fill_checksum_v4();
//!
//! let hop = NextHop { dst_mac: [0x02, 0, 0, 0, 0, 0x02], src_mac: [0x02, 0, 0, 0, 0, 0x01], hop_limit: 0 };
//! let mut responder = Responder::new(ReplyPolicy::default(), 0x8000);
//! let mut rewrite = Rewrite::default();
//! assert_eq!(responder.respond_via_recorded(&mut frame, &hop, &mut rewrite), Verdict::Reply { len: 42 });
//! assert_eq!(rewrite.family, Family::V4);
//! assert_eq!((rewrite.ttl, rewrite.ident), ((57, 64), (1, 0x8000)));
//! // The ICMP checksum: the one in the reply, and RFC 1624 reproduces it from the terms.
//! let reply = icmp::EchoPacket::new_checked(&frame[34..]).unwrap();
//! assert_eq!(rewrite.icmp_checksum.new, reply.checksum());
//! assert_eq!(rewrite.icmp_checksum.recompute(), reply.checksum());
//! ```

use core::fmt;
use core::net::IpAddr;

use crate::ethernet::{DisplayMac, MacAddr};

/// Receives the field changes of a rewrite. Implemented by [`Rewrite`] (records) and `()`
/// (records nothing; the closure is never called and compiles away).
pub trait Recorder {
    /// Applies `note` to the record, if there is one.
    fn note(&mut self, note: impl FnOnce(&mut Rewrite));
}

impl Recorder for () {
    #[inline(always)]
    fn note(&mut self, _note: impl FnOnce(&mut Rewrite)) {}
}

impl Recorder for Rewrite {
    #[inline]
    fn note(&mut self, note: impl FnOnce(&mut Rewrite)) {
        note(self)
    }
}

/// The IP version of a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Family {
    /// Not decoded (the record of a dropped frame may stop early).
    #[default]
    Unknown,
    /// IPv4 with ICMP.
    V4,
    /// IPv6 with ICMPv6.
    V6,
}

/// One checksum's incremental update (RFC 1624 eqn. 3): `HC' = ~(~HC + ~m + m' + …)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChecksumUpdate {
    /// `HC`: the request's checksum, as the rewrite read it.
    pub old: u16,
    /// The changed words `(m, m')`, as the rewrite fed them to the update; `len` are used.
    pub words: [(u16, u16); 3],
    /// How many of `words` are used.
    pub len: usize,
    /// What each word is (`"type/code"`, `"id"`, …), for the trace.
    pub names: [&'static str; 3],
    /// `HC'`: the checksum the rewrite stored in the reply.
    pub new: u16,
}

impl ChecksumUpdate {
    /// The changed words in use.
    pub fn words(&self) -> &[(u16, u16)] {
        &self.words[..self.len.min(3)]
    }

    /// The one's-complement sum `~HC + ~m + m' + …` folded to 16 bits (before the final `~`).
    pub fn sum(&self) -> u16 {
        let mut sum = u32::from(!self.old);
        for &(m, m_new) in self.words() {
            sum += u32::from(!m) + u32::from(m_new);
        }
        let sum = (sum & 0xffff) + (sum >> 16);
        ((sum & 0xffff) + (sum >> 16)) as u16
    }

    /// `~sum()`: what the arithmetic gives; equals [`ChecksumUpdate::new`] unless the rewrite
    /// had to turn `0x0000` into `0xffff` (an all-zero ICMPv4 message, see `checksum::update`).
    pub fn recompute(&self) -> u16 {
        !self.sum()
    }
}

impl fmt::Display for ChecksumUpdate {
    /// `type/code 0x0800 -> 0x0000, HC 0x1c4b: ~HC 0xe3b4 + ~m 0xf7ff + m' 0x0000 = 0xdbb4; HC' = ~0xdbb4 = 0x244b`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (&(m, m_new), name) in self.words().iter().zip(self.names) {
            write!(f, "{name} {m:#06x} -> {m_new:#06x}, ")?;
        }
        write!(f, "HC {:#06x}: ~HC {:#06x}", self.old, !self.old)?;
        for &(m, m_new) in self.words() {
            write!(f, " + ~m {:#06x} + m' {m_new:#06x}", !m)?;
        }
        write!(
            f,
            " = {:#06x}; HC' = ~{:#06x} = {:#06x}",
            self.sum(),
            self.sum(),
            self.new
        )?;
        if self.recompute() != self.new {
            write!(f, " (all-zero message: 0x0000 sent as 0xffff)")?;
        }
        Ok(())
    }
}

/// Every field a rewrite read and changed, each as `(before, after)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewrite {
    /// IPv4 or IPv6.
    pub family: Family,
    /// Ethernet destination MAC.
    pub dst_mac: (MacAddr, MacAddr),
    /// Ethernet source MAC.
    pub src_mac: (MacAddr, MacAddr),
    /// A priority tag (VLAN 0) was removed.
    pub priority_tag_removed: bool,
    /// The request's source address (the reply's destination).
    pub src: IpAddr,
    /// The request's destination address (the reply's source).
    pub dst: IpAddr,
    /// Echo identifier (unchanged).
    pub identifier: u16,
    /// Echo sequence number (unchanged).
    pub sequence: u16,
    /// IP packet length (IPv4 total length; IPv6 40 + payload length).
    pub ip_len: usize,
    /// ICMP type.
    pub icmp_type: (u8, u8),
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: (u8, u8),
    /// IPv4 identification (IPv6: unused).
    pub ident: (u16, u16),
    /// IPv4 flags/fragment-offset word (DF is 0x4000; IPv6: unused).
    pub flags: (u16, u16),
    /// IPv6 flow label (IPv4: unused).
    pub flow_label: (u32, u32),
    /// The IPv4 header checksum's update (IPv6 has none).
    pub ip_checksum: ChecksumUpdate,
    /// The ICMP (ICMPv6) checksum's update.
    pub icmp_checksum: ChecksumUpdate,
}

impl Default for Rewrite {
    fn default() -> Self {
        Rewrite {
            family: Family::Unknown,
            dst_mac: ([0; 6], [0; 6]),
            src_mac: ([0; 6], [0; 6]),
            priority_tag_removed: false,
            src: IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED),
            dst: IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED),
            identifier: 0,
            sequence: 0,
            ip_len: 0,
            icmp_type: (0, 0),
            ttl: (0, 0),
            ident: (0, 0),
            flags: (0, 0),
            flow_label: (0, 0),
            ip_checksum: ChecksumUpdate::default(),
            icmp_checksum: ChecksumUpdate::default(),
        }
    }
}

impl Rewrite {
    /// The request, decoded: `IPv4 198.18.0.2 -> 198.18.0.1 echo request id 0x1234 seq 1, 84 bytes`.
    pub fn request(&self) -> impl fmt::Display + '_ {
        DisplayRequest(self)
    }

    /// The changed fields, one `name before -> after` item per line (MACs, addresses, type,
    /// TTL/hop limit, IPv4 ID/DF or the flow label, both checksums with the arithmetic).
    pub fn changes(&self) -> impl Iterator<Item = Change<'_>> {
        let v4 = self.family == Family::V4;
        let kinds: &[ChangeKind] = if v4 {
            &[
                ChangeKind::Macs,
                ChangeKind::Addrs,
                ChangeKind::Type,
                ChangeKind::Ttl,
                ChangeKind::Ident,
                ChangeKind::IpChecksum,
                ChangeKind::IcmpChecksum,
            ]
        } else {
            &[
                ChangeKind::Macs,
                ChangeKind::Addrs,
                ChangeKind::Type,
                ChangeKind::Ttl,
                ChangeKind::FlowLabel,
                ChangeKind::IcmpChecksum,
            ]
        };
        kinds.iter().map(move |&kind| Change { rewrite: self, kind })
    }
}

struct DisplayRequest<'a>(&'a Rewrite);

impl fmt::Display for DisplayRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        let family = match r.family {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
            Family::Unknown => "?",
        };
        write!(
            f,
            "{family} {} -> {} echo request id {:#06x} seq {}, ip length {}",
            r.src, r.dst, r.identifier, r.sequence, r.ip_len
        )
    }
}

#[derive(Debug, Clone, Copy)]
enum ChangeKind {
    Macs,
    Addrs,
    Type,
    Ttl,
    Ident,
    FlowLabel,
    IpChecksum,
    IcmpChecksum,
}

/// One line of [`Rewrite::changes`].
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    rewrite: &'a Rewrite,
    kind: ChangeKind,
}

impl fmt::Display for Change<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.rewrite;
        match self.kind {
            ChangeKind::Macs => {
                write!(
                    f,
                    "eth dst {} -> {}, src {} -> {}",
                    DisplayMac(r.dst_mac.0),
                    DisplayMac(r.dst_mac.1),
                    DisplayMac(r.src_mac.0),
                    DisplayMac(r.src_mac.1)
                )?;
                if r.priority_tag_removed {
                    f.write_str(", priority tag removed")?;
                }
                Ok(())
            }
            ChangeKind::Addrs => write!(
                f,
                "ip src {} -> {}, dst {} -> {} (swapped: no checksum changes)",
                r.src, r.dst, r.dst, r.src
            ),
            ChangeKind::Type => write!(f, "icmp type {} -> {}", r.icmp_type.0, r.icmp_type.1),
            ChangeKind::Ttl if r.family == Family::V4 => write!(f, "ttl {} -> {}", r.ttl.0, r.ttl.1),
            ChangeKind::Ttl => write!(f, "hop limit {} -> {}", r.ttl.0, r.ttl.1),
            ChangeKind::Ident => write!(
                f,
                "ip id {:#06x} -> {:#06x}, flags/frag {:#06x} -> {:#06x} (DF {} -> {})",
                r.ident.0,
                r.ident.1,
                r.flags.0,
                r.flags.1,
                u8::from(r.flags.0 & 0x4000 != 0),
                u8::from(r.flags.1 & 0x4000 != 0)
            ),
            ChangeKind::FlowLabel => write!(f, "flow label {:#07x} -> {:#07x}", r.flow_label.0, r.flow_label.1),
            ChangeKind::IpChecksum => write!(f, "ipv4 header checksum {}", r.ip_checksum),
            ChangeKind::IcmpChecksum => write!(f, "icmp checksum {}", r.icmp_checksum),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{ECHO_REQUEST_V4, ECHO_REQUEST_V6};
    use crate::respond::{NextHop, ReplyPolicy, Responder, Verdict};

    const HOP: NextHop = NextHop {
        dst_mac: [0x02, 0, 0, 0, 0, 0x0b],
        src_mac: [0x02, 0, 0, 0, 0, 0x0a],
        hop_limit: 0,
    };

    fn both(request: &[u8]) -> (Vec<u8>, Vec<u8>, Rewrite, Verdict) {
        let mut plain = request.to_vec();
        let mut traced = request.to_vec();
        let v1 = Responder::new(ReplyPolicy::default(), 0x4242).respond_via(&mut plain, &HOP);
        let mut rewrite = Rewrite::default();
        let v2 = Responder::new(ReplyPolicy::default(), 0x4242).respond_via_recorded(&mut traced, &HOP, &mut rewrite);
        assert_eq!(v1, v2);
        (plain, traced, rewrite, v2)
    }

    #[test]
    fn the_recorded_rewrite_writes_the_same_reply_and_its_arithmetic_holds() {
        for request in [&ECHO_REQUEST_V4[..], &ECHO_REQUEST_V6[..]] {
            let (plain, traced, r, verdict) = both(request);
            assert!(matches!(verdict, Verdict::Reply { .. }));
            assert_eq!(plain, traced, "recording changes nothing in the reply");
            assert_eq!(r.dst_mac.1, HOP.dst_mac);
            assert_eq!(r.src_mac.1, HOP.src_mac);
            assert_eq!(r.icmp_checksum.recompute(), r.icmp_checksum.new);
            let icmp_at = if r.family == Family::V4 { 14 + 20 } else { 14 + 40 };
            let stored = u16::from_be_bytes([traced[icmp_at + 2], traced[icmp_at + 3]]);
            assert_eq!(r.icmp_checksum.new, stored);
            assert_eq!(traced[icmp_at], r.icmp_type.1);
            if r.family == Family::V4 {
                assert_eq!(r.ip_checksum.len, 3);
                assert_eq!(r.ip_checksum.recompute(), u16::from_be_bytes([traced[24], traced[25]]));
                assert_eq!(r.icmp_type, (8, 0));
            } else {
                assert_eq!(r.icmp_type, (128, 129));
            }
            let lines: Vec<String> = r.changes().map(|c| c.to_string()).collect();
            assert!(
                lines.iter().any(|l| l.starts_with("icmp checksum type/code ")),
                "{lines:?}"
            );
        }
    }

    #[test]
    fn a_dropped_frame_records_no_reply() {
        let mut frame = ECHO_REQUEST_V4.to_vec();
        frame[14 + 20 + 2] ^= 1; // break the ICMP checksum
        let mut rewrite = Rewrite::default();
        let verdict = Responder::new(ReplyPolicy::default(), 1).respond_via_recorded(&mut frame, &HOP, &mut rewrite);
        assert!(matches!(verdict, Verdict::Drop(_)));
        assert_eq!(rewrite.icmp_checksum.len, 0, "nothing was rewritten");
    }
}
