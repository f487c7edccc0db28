//! ICMP and ICMPv6 echo messages (RFC 792, RFC 4443 §4).
//!
//! Echo request and reply have the same layout in both protocols:
//!
//! ```text
//!  0               8               16                              31
//! +---------------+---------------+--------------------------------+
//! |     type      |     code      |            checksum            |  0
//! +---------------+---------------+--------------------------------+
//! |           identifier          |        sequence number         |  4
//! +-------------------------------+--------------------------------+
//! |                         data (any length)                      |  8
//! ```
//!
//! The checksum covers the whole message. ICMPv6 also covers an IPv6 pseudo-header (addresses,
//! length, next header: see [`super::ipv6::Packet::pseudo_header_sum`]); ICMP for IPv4 does not.

use super::checksum::Sum;
use super::{Error, read_u16, write_u16};

/// ICMP (IPv4) echo request type.
pub const ECHO_REQUEST_V4: u8 = 8;
/// ICMP (IPv4) echo reply type.
pub const ECHO_REPLY_V4: u8 = 0;
/// ICMPv6 echo request type.
pub const ECHO_REQUEST_V6: u8 = 128;
/// ICMPv6 echo reply type.
pub const ECHO_REPLY_V6: u8 = 129;

/// Length of the echo header (type, code, checksum, identifier, sequence).
pub const HEADER_LEN: usize = field::HEADER_LEN;

mod field {
    use crate::Field;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const IDENTIFIER: Field = 4..6;
    pub const SEQUENCE: Field = 6..8;
    pub const HEADER_LEN: usize = 8;
}

/// A read/write view of a whole ICMP or ICMPv6 echo message: the buffer is the message, from the
/// type byte to the last data byte, and nothing after it.
///
/// Contract: [`EchoPacket::new_checked`] accepts buffers of at least [`HEADER_LEN`]
/// bytes, and then no accessor panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EchoPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EchoPacket<T> {
    /// Wraps `buffer` (the whole message) if it holds the 8-byte echo header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        if buffer.as_ref().len() < field::HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(EchoPacket { buffer })
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

    /// The message type (8/0 for ICMP echo request/reply, 128/129 for ICMPv6).
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buf()[field::TYPE]
    }

    /// The message code (0 for echo).
    #[inline]
    pub fn code(&self) -> u8 {
        self.buf()[field::CODE]
    }

    /// The type and code as the one 16-bit word they share (for checksum updates).
    #[inline]
    pub fn type_code_word(&self) -> u16 {
        u16::from_be_bytes([self.msg_type(), self.code()])
    }

    /// The checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buf(), field::CHECKSUM)
    }

    /// The identifier chosen by the sender.
    #[inline]
    pub fn identifier(&self) -> u16 {
        read_u16(self.buf(), field::IDENTIFIER)
    }

    /// The sequence number.
    #[inline]
    pub fn sequence(&self) -> u16 {
        read_u16(self.buf(), field::SEQUENCE)
    }

    /// The data after the echo header.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buf()[field::HEADER_LEN..]
    }

    /// The one's-complement sum over the whole message, checksum field included.
    #[inline]
    pub fn sum(&self) -> Sum {
        Sum::new().add_bytes(self.buf())
    }

    /// True when an ICMP (IPv4) checksum is right.
    #[inline]
    pub fn verify_checksum_v4(&self) -> bool {
        self.sum().is_valid()
    }

    /// True when an ICMPv6 checksum is right, given the IPv6 pseudo-header's sum.
    #[inline]
    pub fn verify_checksum_v6(&self, pseudo_header: Sum) -> bool {
        // The sum is associative: the pseudo-header's 40 bytes are an even-length prefix, so the
        // message's words simply go on from the pseudo-header's sum (folded once, at the end).
        pseudo_header.add_bytes(self.buf()).is_valid()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EchoPacket<T> {
    #[inline]
    fn buf_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Sets the message type.
    #[inline]
    pub fn set_msg_type(&mut self, msg_type: u8) {
        self.buf_mut()[field::TYPE] = msg_type;
    }

    /// Sets the message code.
    #[inline]
    pub fn set_code(&mut self, code: u8) {
        self.buf_mut()[field::CODE] = code;
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, checksum: u16) {
        write_u16(self.buf_mut(), field::CHECKSUM, checksum);
    }

    /// Sets the identifier.
    #[inline]
    pub fn set_identifier(&mut self, identifier: u16) {
        write_u16(self.buf_mut(), field::IDENTIFIER, identifier);
    }

    /// Sets the sequence number.
    #[inline]
    pub fn set_sequence(&mut self, sequence: u16) {
        write_u16(self.buf_mut(), field::SEQUENCE, sequence);
    }

    /// The data after the echo header, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf_mut()[field::HEADER_LEN..]
    }

    /// Computes an ICMP (IPv4) checksum from scratch and stores it.
    #[inline]
    pub fn fill_checksum_v4(&mut self) {
        self.set_checksum(0);
        let checksum = self.sum().checksum();
        self.set_checksum(checksum);
    }

    /// Computes an ICMPv6 checksum from scratch, given the pseudo-header's sum, and stores it.
    #[inline]
    pub fn fill_checksum_v6(&mut self, pseudo_header: Sum) {
        self.set_checksum(0);
        let checksum = self.sum().add_u16(pseudo_header.fold()).checksum();
        self.set_checksum(checksum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{ECHO_REQUEST_V4 as FRAME_V4, ECHO_REQUEST_V6 as FRAME_V6};
    use crate::ipv6;

    /// The 56 data bytes of both fixtures: a `struct timeval` and the bytes 0x10..=0x37.
    fn ping_data() -> Vec<u8> {
        let mut data = Vec::new();
        data.extend_from_slice(&1_700_000_000u64.to_le_bytes());
        data.extend_from_slice(&123_456u64.to_le_bytes());
        data.extend(0x10..=0x37u8);
        data
    }

    #[test]
    fn parse_v4_fixture() {
        let icmp = EchoPacket::new_checked(&FRAME_V4[34..]).unwrap();
        assert_eq!(icmp.msg_type(), ECHO_REQUEST_V4);
        assert_eq!(icmp.code(), 0);
        assert_eq!(icmp.type_code_word(), 0x0800);
        assert_eq!(icmp.checksum(), 0x9e21);
        assert_eq!(icmp.identifier(), 0x04d2);
        assert_eq!(icmp.sequence(), 1);
        assert_eq!(icmp.data(), &ping_data()[..]);
        assert!(icmp.verify_checksum_v4());
    }

    #[test]
    fn build_v4_fixture_from_zeros() {
        let mut bytes = [0u8; 64];
        let mut icmp = EchoPacket::new_checked(&mut bytes[..]).unwrap();
        icmp.set_msg_type(ECHO_REQUEST_V4);
        icmp.set_code(0);
        icmp.set_identifier(0x04d2);
        icmp.set_sequence(1);
        icmp.data_mut().copy_from_slice(&ping_data());
        icmp.fill_checksum_v4();
        assert_eq!(&bytes[..], &FRAME_V4[34..]);
    }

    #[test]
    fn parse_and_build_v6_fixture() {
        let ip = ipv6::Packet::new_checked(&FRAME_V6[14..]).unwrap();
        let icmp = EchoPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(icmp.msg_type(), ECHO_REQUEST_V6);
        assert_eq!(icmp.code(), 0);
        assert_eq!(icmp.checksum(), 0xb2d2);
        assert_eq!(icmp.identifier(), 0x1c2b);
        assert_eq!(icmp.sequence(), 7);
        assert_eq!(icmp.data(), &ping_data()[..]);
        assert!(icmp.verify_checksum_v6(ip.pseudo_header_sum()));
        // Without the pseudo-header the checksum does not verify.
        assert!(!icmp.verify_checksum_v4());

        let mut bytes = [0u8; 64];
        let mut built = EchoPacket::new_checked(&mut bytes[..]).unwrap();
        built.set_msg_type(ECHO_REQUEST_V6);
        built.set_identifier(0x1c2b);
        built.set_sequence(7);
        built.data_mut().copy_from_slice(&ping_data());
        built.fill_checksum_v6(ip.pseudo_header_sum());
        assert_eq!(&bytes[..], ip.payload());
    }

    #[test]
    fn short_and_bare_messages() {
        assert_eq!(
            EchoPacket::new_checked(&[8u8, 0, 0, 0, 0, 0, 0][..]),
            Err(Error::Truncated)
        );
        let bare = EchoPacket::new_checked(&[8u8, 0, 0xf7, 0xff, 0, 0, 0, 0][..]).unwrap();
        assert!(bare.data().is_empty());
        assert!(bare.verify_checksum_v4());
    }
}
