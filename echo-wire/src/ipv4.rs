//! IPv4 headers (RFC 791).
//!
//! ```text
//!  0       4       8               16      19                      31
//! +-------+-------+---------------+-------+------------------------+
//! |version|  IHL  |      TOS      |          total length          |  0
//! +-------+-------+---------------+-------+------------------------+
//! |        identification         |0|DF|MF|    fragment offset     |  4
//! +---------------+---------------+-------+------------------------+
//! |      TTL      |   protocol    |        header checksum         |  8
//! +---------------+---------------+--------------------------------+
//! |                        source address                          | 12
//! +----------------------------------------------------------------+
//! |                      destination address                       | 16
//! +----------------------------------------------------------------+
//! |                  options (IHL > 5), then payload               | 20
//! ```
//!
//! IHL counts the header in 32-bit words (5 without options); the total length counts header and
//! payload in bytes. Anything in the buffer after the total length (Ethernet padding) is not part
//! of the packet.

use core::net::Ipv4Addr;

use super::checksum::Sum;
use super::{Error, read, read_u16, write_u16};

/// The IP protocol number of ICMP.
pub const PROTOCOL_ICMP: u8 = 1;

/// True for an IPv4 address that an echo reply may come from or go to: an address of one host.
/// False for 0.0.0.0/8 ("this network"), 127.0.0.0/8 (loopback), 224.0.0.0/4 (multicast) and
/// 255.255.255.255 (limited broadcast), the addresses Linux treats as martian sources or
/// leaves to its own broadcast/multicast rules. (A subnet's directed broadcast address cannot
/// be told from its prefix alone: that takes the interface's configuration.)
///
/// The one definition of "unicast" of the project: [`crate::respond`] answers only between
/// such addresses and the daemon answers only for such addresses.
///
/// ```
/// use core::net::Ipv4Addr;
/// assert!(echo_wire::ipv4::is_unicast(Ipv4Addr::new(198, 18, 0, 1)));
/// assert!(!echo_wire::ipv4::is_unicast(Ipv4Addr::new(0, 1, 2, 3)));
/// assert!(!echo_wire::ipv4::is_unicast(Ipv4Addr::BROADCAST));
/// ```
#[inline]
pub fn is_unicast(addr: Ipv4Addr) -> bool {
    !(addr.octets()[0] == 0 || addr.is_loopback() || addr.is_multicast() || addr.is_broadcast())
}

/// Length of the header without options.
pub const HEADER_LEN: usize = field::HEADER_LEN;

mod field {
    use crate::Field;

    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const TOTAL_LEN: Field = 2..4;
    pub const IDENT: Field = 4..6;
    /// Flags (reserved, DF, MF) and the fragment offset share one 16-bit word.
    pub const FLAGS_FRAG: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
    pub const HEADER_LEN: usize = 20;

    pub const FLAG_DF: u16 = 0x4000;
    pub const FLAG_MF: u16 = 0x2000;
    pub const FRAG_OFFSET: u16 = 0x1fff;
}

/// A read/write view of an IPv4 packet at the start of a buffer.
///
/// Contract: [`Packet::new_checked`] accepts a buffer that holds the 20-byte fixed header, whose
/// header length is at least 20 bytes and whose total length covers the header and fits in the
/// buffer. After it, no accessor panics, and [`Packet::header`] and [`Packet::payload`] are exactly
/// the header and payload the length fields describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking the lengths (the version is not checked).
    ///
    /// [`Error::Truncated`]: fewer than 20 bytes. [`Error::Length`]: IHL below 5, total length
    /// below the header length, or total length beyond the end of the buffer.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let len = buffer.as_ref().len();
        if len < field::HEADER_LEN {
            return Err(Error::Truncated);
        }
        let packet = Packet { buffer };
        let header_len = packet.header_len();
        let total_len = usize::from(packet.total_len());
        if header_len < field::HEADER_LEN || total_len < header_len || total_len > len {
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

    /// The version field (4 for IPv4).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buf()[field::VER_IHL] >> 4
    }

    /// The header length in bytes (IHL × 4): 20 without options, up to 60.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buf()[field::VER_IHL] & 0x0f) * 4
    }

    /// The type-of-service byte (DSCP and ECN).
    #[inline]
    pub fn tos(&self) -> u8 {
        self.buf()[field::TOS]
    }

    /// The total length of the packet, header included, in bytes.
    #[inline]
    pub fn total_len(&self) -> u16 {
        read_u16(self.buf(), field::TOTAL_LEN)
    }

    /// The identification used to reassemble fragments.
    #[inline]
    pub fn ident(&self) -> u16 {
        read_u16(self.buf(), field::IDENT)
    }

    /// The flags and fragment offset as the one 16-bit word they share (for checksum updates).
    #[inline]
    pub fn flags_frag_word(&self) -> u16 {
        read_u16(self.buf(), field::FLAGS_FRAG)
    }

    /// The "don't fragment" flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.flags_frag_word() & field::FLAG_DF != 0
    }

    /// The "more fragments" flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.flags_frag_word() & field::FLAG_MF != 0
    }

    /// The fragment offset in bytes (the field counts 8-byte units).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (self.flags_frag_word() & field::FRAG_OFFSET) << 3
    }

    /// True for a fragment: more fragments follow, or this is not the first one.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.flags_frag_word() & (field::FLAG_MF | field::FRAG_OFFSET) != 0
    }

    /// The time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buf()[field::TTL]
    }

    /// The protocol of the payload (1 for ICMP).
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buf()[field::PROTOCOL]
    }

    /// The TTL and protocol as the one 16-bit word they share (for checksum updates).
    #[inline]
    pub fn ttl_protocol_word(&self) -> u16 {
        u16::from_be_bytes([self.ttl(), self.protocol()])
    }

    /// The header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buf(), field::CHECKSUM)
    }

    /// The source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read::<4>(self.buf(), field::SRC_ADDR))
    }

    /// The destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read::<4>(self.buf(), field::DST_ADDR))
    }

    /// Start and end of the payload in the buffer, clamped so that slicing never panics.
    #[inline]
    fn payload_range(&self) -> (usize, usize) {
        let end = usize::from(self.total_len()).min(self.buf().len());
        let start = self.header_len().min(end);
        (start, end)
    }

    /// The header, options included.
    #[inline]
    pub fn header(&self) -> &[u8] {
        let (start, _) = self.payload_range();
        &self.buf()[..start]
    }

    /// True when the header checksum is right (the sum over the header is all ones).
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        let header = self.header();
        // The usual header, without options, is 20 bytes: as a fixed-size array its sum compiles
        // to a handful of additions, with no loop and no length checks.
        match <&[u8; HEADER_LEN]>::try_from(header) {
            Ok(fixed) => Sum::new().add_bytes(fixed).is_valid(),
            Err(_) => Sum::new().add_bytes(header).is_valid(),
        }
    }

    /// The payload: the bytes after the header, up to the total length (padding excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let (start, end) = self.payload_range();
        &self.buf()[start..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    fn buf_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Starts a packet that fills the whole of `buffer`: writes version 4, a header length of
    /// 20 bytes (no options) and a total length of `buffer.len()`, leaves every other byte as
    /// it is, and wraps the buffer. For building packets (a load generator's requests); the
    /// checks of [`Packet::new_checked`] hold for the result.
    ///
    /// [`Error::Truncated`]: fewer than 20 bytes. [`Error::Length`]: more than 65 535.
    pub fn init(mut buffer: T) -> Result<Self, Error> {
        let len = buffer.as_ref().len();
        if len < field::HEADER_LEN {
            return Err(Error::Truncated);
        }
        let total_len = u16::try_from(len).map_err(|_| Error::Length)?;
        let bytes = buffer.as_mut();
        bytes[field::VER_IHL] = 0x45;
        write_u16(bytes, field::TOTAL_LEN, total_len);
        Packet::new_checked(buffer)
    }

    /// Sets the version field.
    #[inline]
    pub fn set_version(&mut self, version: u8) {
        let b = &mut self.buf_mut()[field::VER_IHL];
        *b = (version << 4) | (*b & 0x0f);
    }

    /// Sets the header length in bytes (a multiple of 4, 20..=60).
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        let b = &mut self.buf_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((len / 4) as u8 & 0x0f);
    }

    /// Sets the type-of-service byte.
    #[inline]
    pub fn set_tos(&mut self, tos: u8) {
        self.buf_mut()[field::TOS] = tos;
    }

    /// Sets the total length.
    #[inline]
    pub fn set_total_len(&mut self, len: u16) {
        write_u16(self.buf_mut(), field::TOTAL_LEN, len);
    }

    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, ident: u16) {
        write_u16(self.buf_mut(), field::IDENT, ident);
    }

    /// Sets the flags and fragment offset word at once.
    #[inline]
    pub fn set_flags_frag_word(&mut self, word: u16) {
        write_u16(self.buf_mut(), field::FLAGS_FRAG, word);
    }

    /// Sets or clears the "don't fragment" flag.
    #[inline]
    pub fn set_dont_frag(&mut self, value: bool) {
        let word = self.flags_frag_word() & !field::FLAG_DF;
        self.set_flags_frag_word(word | if value { field::FLAG_DF } else { 0 });
    }

    /// Sets or clears the "more fragments" flag.
    #[inline]
    pub fn set_more_frags(&mut self, value: bool) {
        let word = self.flags_frag_word() & !field::FLAG_MF;
        self.set_flags_frag_word(word | if value { field::FLAG_MF } else { 0 });
    }

    /// Sets the fragment offset, in bytes (a multiple of 8).
    #[inline]
    pub fn set_frag_offset(&mut self, offset: u16) {
        let word = self.flags_frag_word() & !field::FRAG_OFFSET;
        self.set_flags_frag_word(word | ((offset >> 3) & field::FRAG_OFFSET));
    }

    /// Sets the time to live.
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buf_mut()[field::TTL] = ttl;
    }

    /// Sets the payload protocol.
    #[inline]
    pub fn set_protocol(&mut self, protocol: u8) {
        self.buf_mut()[field::PROTOCOL] = protocol;
    }

    /// Sets the header checksum field.
    #[inline]
    pub fn set_checksum(&mut self, checksum: u16) {
        write_u16(self.buf_mut(), field::CHECKSUM, checksum);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buf_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buf_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// Computes the header checksum from scratch and stores it.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let checksum = Sum::new().add_bytes(self.header()).checksum();
        self.set_checksum(checksum);
    }

    /// The payload, writable (see [`Packet::payload`]).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = self.payload_range();
        &mut self.buf_mut()[start..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::ECHO_REQUEST_V4;

    /// The IPv4 packet inside the fixture frame (after the 14-byte Ethernet header).
    fn request() -> &'static [u8] {
        &ECHO_REQUEST_V4[14..]
    }

    #[test]
    fn parse_fixture() {
        let p = Packet::new_checked(request()).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.tos(), 0xb8);
        assert_eq!(p.total_len(), 84);
        assert_eq!(p.ident(), 0x3c1d);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert_eq!(p.flags_frag_word(), 0x4000);
        assert_eq!(p.ttl(), 61);
        assert_eq!(p.protocol(), PROTOCOL_ICMP);
        assert_eq!(p.ttl_protocol_word(), 0x3d01);
        assert_eq!(p.checksum(), 0x74ac);
        assert!(p.verify_checksum());
        assert_eq!(p.src_addr(), Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(p.header(), &request()[..20]);
        assert_eq!(p.payload(), &request()[20..]);
    }

    #[test]
    fn build_fixture_from_zeros() {
        let mut bytes = [0u8; 84];
        bytes[20..].copy_from_slice(&request()[20..]); // the ICMP message, built in icmp.rs
        {
            let mut p = Packet { buffer: &mut bytes[..] };
            p.set_version(4);
            p.set_header_len(20);
            p.set_tos(0xb8);
            p.set_total_len(84);
            p.set_ident(0x3c1d);
            p.set_dont_frag(true);
            p.set_more_frags(false);
            p.set_frag_offset(0);
            p.set_ttl(61);
            p.set_protocol(PROTOCOL_ICMP);
            p.set_src_addr(Ipv4Addr::new(198, 18, 0, 2));
            p.set_dst_addr(Ipv4Addr::new(198, 18, 0, 1));
            p.fill_checksum();
        }
        assert_eq!(&bytes[..], request());
    }

    #[test]
    fn fragment_fields() {
        let mut bytes = request().to_vec();
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        p.set_dont_frag(false);
        p.set_more_frags(true);
        p.set_frag_offset(1480);
        assert_eq!(p.flags_frag_word(), 0x2000 | 185);
        assert!(p.more_frags() && !p.dont_frag() && p.is_fragment());
        assert_eq!(p.frag_offset(), 1480);
        p.set_more_frags(false);
        assert!(p.is_fragment(), "a last fragment has only an offset");
    }

    #[test]
    fn lengths_are_checked() {
        assert_eq!(Packet::new_checked(&request()[..19]), Err(Error::Truncated));
        // Total length 84 but only 83 bytes present.
        assert_eq!(Packet::new_checked(&request()[..83]), Err(Error::Length));
        let mut bytes = request().to_vec();
        bytes[0] = 0x44; // IHL 4: 16 bytes, shorter than the fixed header
        assert_eq!(Packet::new_checked(&bytes[..]), Err(Error::Length));
        bytes[0] = 0x45;
        bytes[2..4].copy_from_slice(&19u16.to_be_bytes()); // total length below the header
        assert_eq!(Packet::new_checked(&bytes[..]), Err(Error::Length));
        // Trailing padding is allowed and is not payload.
        let mut padded = request().to_vec();
        padded.extend_from_slice(&[0; 6]);
        let p = Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(p.payload().len(), 64);
    }

    #[test]
    fn accessors_never_panic_after_a_bad_setter() {
        let mut bytes = request().to_vec();
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        p.set_header_len(60);
        p.set_total_len(u16::MAX);
        assert_eq!(p.header().len(), 60);
        assert_eq!(p.payload().len(), 84 - 60);
        p.set_total_len(0);
        assert!(p.header().is_empty() && p.payload().is_empty());
        assert!(!p.verify_checksum());
    }

    #[test]
    fn init_starts_a_packet_that_new_checked_accepts() {
        let mut bytes = [0xaau8; 28];
        let mut packet = Packet::init(&mut bytes[..]).unwrap();
        assert_eq!((packet.version(), packet.header_len(), packet.total_len()), (4, 20, 28));
        assert_eq!(packet.payload().len(), 8);
        packet.fill_checksum();
        assert!(packet.verify_checksum());
        assert_eq!(bytes[1], 0xaa, "other fields are left alone");
        assert_eq!(Packet::init(&mut [0u8; 19][..]), Err(Error::Truncated));
        assert!(matches!(Packet::init(vec![0u8; 65_536]), Err(Error::Length)));
    }
}
