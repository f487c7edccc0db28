//! IPv6 fixed headers (RFC 8200) and the upper-layer pseudo-header used by ICMPv6 checksums.
//!
//! ```text
//!  0       4               12                                      31
//! +-------+---------------+----------------------------------------+
//! |version| traffic class |               flow label               |  0
//! +-------+---------------+-------+---------------+----------------+
//! |         payload length        |  next header  |   hop limit    |  4
//! +-------------------------------+---------------+----------------+
//! |                    source address (16 bytes)                   |  8
//! +----------------------------------------------------------------+
//! |                 destination address (16 bytes)                 | 24
//! +----------------------------------------------------------------+
//! |          extension headers, then the upper-layer payload       | 40
//! ```
//!
//! The payload length counts everything after the 40-byte fixed header (extension headers
//! included); anything in the buffer after it (Ethernet padding) is not part of the packet.

use core::net::Ipv6Addr;

use super::checksum::Sum;
use super::{Error, read, read_u16, write_u16};

/// The next-header number of ICMPv6.
pub const NEXT_HEADER_ICMPV6: u8 = 58;
/// The next-header number of the fragment extension header.
pub const NEXT_HEADER_FRAGMENT: u8 = 44;

/// True for the next-header numbers that announce an IPv6 extension header (the IANA "IPv6
/// Extension Header Types" registry: hop-by-hop, routing, fragment, ESP, AH, destination
/// options, mobility, HIP, shim6, and the two experimental values).
#[inline]
pub const fn is_extension_header(next_header: u8) -> bool {
    matches!(next_header, 0 | 43 | 44 | 50 | 51 | 60 | 135 | 139 | 140 | 253 | 254)
}

/// True for an IPv6 address that an echo reply may come from or go to: not unspecified (::),
/// loopback (::1), multicast (ff00::/8) or IPv4-mapped (::ffff:0:0/96, which never appears on
/// the wire). Link-local addresses are unicast: the kernel answers pings to them too.
///
/// ```
/// assert!(echo_wire::ipv6::is_unicast("2001:db8::1".parse().unwrap()));
/// assert!(echo_wire::ipv6::is_unicast("fe80::1".parse().unwrap()));
/// assert!(!echo_wire::ipv6::is_unicast("::ffff:198.18.0.1".parse().unwrap()));
/// ```
#[inline]
pub fn is_unicast(addr: Ipv6Addr) -> bool {
    !(addr.is_unspecified() || addr.is_loopback() || addr.is_multicast() || addr.to_ipv4_mapped().is_some())
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = field::HEADER_LEN;

mod field {
    use crate::Field;

    /// Version (4 bits), traffic class (8) and flow label (20) share the first 32-bit word.
    pub const VER_TC_FLOW: Field = 0..4;
    pub const PAYLOAD_LEN: Field = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
    pub const HEADER_LEN: usize = 40;
}

/// A read/write view of an IPv6 packet at the start of a buffer.
///
/// Contract: [`Packet::new_checked`] accepts a buffer that holds the 40-byte fixed header and the
/// whole payload its payload length announces. After it, no accessor panics, and
/// [`Packet::payload`] is exactly the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking the lengths (the version is not checked).
    ///
    /// [`Error::Truncated`]: fewer than 40 bytes. [`Error::Length`]: the payload length reaches
    /// beyond the end of the buffer.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let len = buffer.as_ref().len();
        if len < field::HEADER_LEN {
            return Err(Error::Truncated);
        }
        let packet = Packet { buffer };
        if field::HEADER_LEN + usize::from(packet.payload_len()) > len {
            return Err(Error::Length);
        }
        Ok(packet)
    }

    /// Gives the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn buf(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    #[inline]
    fn first_word(&self) -> u32 {
        u32::from_be_bytes(read(self.buf(), field::VER_TC_FLOW))
    }

    /// The version field (6 for IPv6).
    #[inline]
    pub fn version(&self) -> u8 {
        (self.first_word() >> 28) as u8
    }

    /// The traffic class (DSCP and ECN).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.first_word() >> 20) as u8
    }

    /// The 20-bit flow label.
    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.first_word() & 0x000f_ffff
    }

    /// The length of everything after the fixed header, in bytes.
    #[inline]
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buf(), field::PAYLOAD_LEN)
    }

    /// The type of the header that follows (58 for ICMPv6).
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buf()[field::NEXT_HEADER]
    }

    /// The hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buf()[field::HOP_LIMIT]
    }

    /// The source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(read::<16>(self.buf(), field::SRC_ADDR))
    }

    /// The destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(read::<16>(self.buf(), field::DST_ADDR))
    }

    /// The sum of the pseudo-header (RFC 8200 §8.1) for an upper-layer message that directly
    /// follows the fixed header: both addresses, the payload length and the next header.
    #[inline]
    pub fn pseudo_header_sum(&self) -> Sum {
        Sum::new()
            .add_bytes(&self.buf()[field::SRC_ADDR.start..field::DST_ADDR.end])
            .add_u32(u32::from(self.payload_len()))
            .add_u32(u32::from(self.next_header()))
    }

    /// Start and end of the payload in the buffer, clamped so that slicing never panics.
    #[inline]
    fn payload_range(&self) -> (usize, usize) {
        let len = self.buf().len();
        let end = (field::HEADER_LEN + usize::from(self.payload_len())).min(len);
        (field::HEADER_LEN, end)
    }

    /// The payload: the bytes after the fixed header, up to the payload length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let (start, end) = self.payload_range();
        &self.buf()[start..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    fn set_first_word(&mut self, word: u32) {
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&word.to_be_bytes());
    }

    /// Starts a packet that fills the whole of `buffer`: writes version 6 with traffic class
    /// and flow label 0, and a payload length of `buffer.len() - 40`, leaves every other byte
    /// as it is, and wraps the buffer. For building packets; the checks of
    /// [`Packet::new_checked`] hold for the result.
    ///
    /// [`Error::Truncated`]: fewer than 40 bytes. [`Error::Length`]: a payload over 65 535.
    pub fn init(buffer: T) -> Result<Self, Error> {
        let len = buffer.as_ref().len();
        if len < field::HEADER_LEN {
            return Err(Error::Truncated);
        }
        let payload_len = u16::try_from(len - field::HEADER_LEN).map_err(|_| Error::Length)?;
        let mut packet = Packet { buffer };
        packet.set_first_word(6 << 28);
        packet.set_payload_len(payload_len);
        Ok(packet)
    }

    /// Sets the version field.
    #[inline]
    pub fn set_version(&mut self, version: u8) {
        let word = self.first_word() & 0x0fff_ffff;
        self.set_first_word(word | u32::from(version & 0x0f) << 28);
    }

    /// Sets the traffic class.
    #[inline]
    pub fn set_traffic_class(&mut self, class: u8) {
        let word = self.first_word() & 0xf00f_ffff;
        self.set_first_word(word | u32::from(class) << 20);
    }

    /// Sets the flow label (the low 20 bits of `label`).
    #[inline]
    pub fn set_flow_label(&mut self, label: u32) {
        let word = self.first_word() & 0xfff0_0000;
        self.set_first_word(word | (label & 0x000f_ffff));
    }

    /// Sets the payload length.
    #[inline]
    pub fn set_payload_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::PAYLOAD_LEN, len);
    }

    /// Sets the next header.
    #[inline]
    pub fn set_next_header(&mut self, next_header: u8) {
        self.buffer.as_mut()[field::NEXT_HEADER] = next_header;
    }

    /// Sets the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = hop_limit;
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// The payload, writable (see [`Packet::payload`]).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = self.payload_range();
        &mut self.buffer.as_mut()[start..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::ECHO_REQUEST_V6;

    fn request() -> &'static [u8] {
        &ECHO_REQUEST_V6[14..]
    }

    const CLIENT: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
    const SERVER: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

    #[test]
    fn parse_fixture() {
        let p = Packet::new_checked(request()).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0x28);
        assert_eq!(p.flow_label(), 0x9b3e1);
        assert_eq!(p.payload_len(), 64);
        assert_eq!(p.next_header(), NEXT_HEADER_ICMPV6);
        assert_eq!(p.hop_limit(), 57);
        assert_eq!(p.src_addr(), CLIENT);
        assert_eq!(p.dst_addr(), SERVER);
        assert_eq!(p.payload(), &request()[40..]);
        // The ICMPv6 checksum verifies against this pseudo-header.
        assert!(p.pseudo_header_sum().add_bytes(p.payload()).is_valid());
    }

    #[test]
    fn build_fixture_from_zeros() {
        let mut bytes = [0u8; 104];
        bytes[40..].copy_from_slice(&request()[40..]); // the ICMPv6 message, built in icmp.rs
        {
            let mut p = Packet { buffer: &mut bytes[..] };
            p.set_version(6);
            p.set_traffic_class(0x28);
            p.set_flow_label(0x9b3e1);
            p.set_payload_len(64);
            p.set_next_header(NEXT_HEADER_ICMPV6);
            p.set_hop_limit(57);
            p.set_src_addr(CLIENT);
            p.set_dst_addr(SERVER);
        }
        assert_eq!(&bytes[..], request());
    }

    #[test]
    fn lengths_are_checked() {
        assert_eq!(Packet::new_checked(&request()[..39]), Err(Error::Truncated));
        assert_eq!(Packet::new_checked(&request()[..103]), Err(Error::Length));
        let mut padded = request().to_vec();
        padded.extend_from_slice(&[0xee; 3]);
        assert_eq!(Packet::new_checked(&padded[..]).unwrap().payload().len(), 64);
    }

    #[test]
    fn accessors_never_panic_after_a_bad_setter() {
        let mut bytes = request().to_vec();
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        p.set_payload_len(u16::MAX);
        assert_eq!(p.payload().len(), 64);
        assert_eq!(p.payload_mut().len(), 64);
    }

    #[test]
    fn extension_headers() {
        for nh in [0, 43, 44, 60] {
            assert!(is_extension_header(nh));
        }
        for nh in [NEXT_HEADER_ICMPV6, 6, 17, 59] {
            assert!(!is_extension_header(nh));
        }
    }

    #[test]
    fn init_starts_a_packet_that_new_checked_accepts() {
        let mut bytes = [0xaau8; 48];
        let packet = Packet::init(&mut bytes[..]).unwrap();
        assert_eq!(
            (packet.version(), packet.traffic_class(), packet.flow_label()),
            (6, 0, 0)
        );
        assert_eq!((packet.payload_len(), packet.payload().len()), (8, 8));
        assert_eq!(bytes[6], 0xaa, "other fields are left alone");
        assert!(Packet::new_checked(&bytes[..]).is_ok());
        assert_eq!(Packet::init(&mut [0u8; 39][..]), Err(Error::Truncated));
        assert!(matches!(Packet::init(vec![0u8; 40 + 65_536]), Err(Error::Length)));
    }
}
