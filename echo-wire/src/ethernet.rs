//! Ethernet II frames and 802.1Q / 802.1ad VLAN tags.
//!
//! ```text
//!  0                   6                  12      14
//! +-------------------+-------------------+-------+----------
//! | destination MAC   | source MAC        | type  | payload…
//! +-------------------+-------------------+-------+----------
//! ```
//!
//! A VLAN tag sits where the EtherType would be: the "type" field holds the tag protocol identifier
//! (TPID: 0x8100 for 802.1Q, 0x88a8 for an 802.1ad service tag) and the 4-byte tag follows it:
//!
//! ```text
//!  12      14      16      18
//! +-------+-------+-------+----------
//! | TPID  | TCI   | type  | payload…     TCI = priority (3) | drop eligible (1) | VLAN id (12)
//! +-------+-------+-------+----------
//! ```
//!
//! [`Frame`] views the first 14 bytes; [`VlanTag`] views the 4 bytes that follow the TPID, so the
//! tag's own "type" field is at offset 2 of its view.

use super::{Error, read, read_u16, write_u16};

/// A MAC address, as it lies on the wire.
pub type MacAddr = [u8; 6];

/// The EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// The EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// The TPID of an IEEE 802.1Q (customer) VLAN tag.
pub const TPID_8021Q: u16 = 0x8100;
/// The TPID of an IEEE 802.1ad (service, "QinQ" outer) VLAN tag.
pub const TPID_8021AD: u16 = 0x88a8;
/// The pre-standard QinQ TPID some switches still use.
pub const TPID_QINQ_LEGACY: u16 = 0x9100;

/// Length of the Ethernet II header (two MACs and the EtherType).
pub const HEADER_LEN: usize = field::HEADER_LEN;
/// Length of a VLAN tag (TPID, TCI): the bytes a tag adds to a frame.
pub const VLAN_TAG_LEN: usize = field::TAG_LEN;

/// True for the TPIDs that announce a VLAN tag.
#[inline]
pub const fn is_vlan_tpid(ethertype: u16) -> bool {
    matches!(ethertype, TPID_8021Q | TPID_8021AD | TPID_QINQ_LEGACY)
}

/// True for an individual (unicast) MAC address: the I/G bit, the lowest bit of the first byte,
/// is clear. Broadcast (ff:ff:ff:ff:ff:ff) and multicast addresses have it set.
#[inline]
pub const fn is_unicast_mac(mac: &MacAddr) -> bool {
    mac[0] & 0x01 == 0
}

/// Parses a MAC address in the usual text form, six hexadecimal bytes separated by colons
/// (`02:af:00:00:00:01`, as `ip link` prints it). `None` for anything else.
///
/// ```
/// use echo_wire::ethernet::{DisplayMac, parse_mac};
///
/// let mac = parse_mac("02:af:00:00:00:1b").unwrap();
/// assert_eq!(mac, [0x02, 0xaf, 0, 0, 0, 0x1b]);
/// assert_eq!(DisplayMac(mac).to_string(), "02:af:00:00:00:1b");
/// assert_eq!(parse_mac("02:af:00:00:00"), None);
/// ```
pub fn parse_mac(text: &str) -> Option<MacAddr> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Shows a MAC address as `ip link` does: `02:af:00:00:00:1b` (lower-case hex, colons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisplayMac(pub MacAddr);

impl core::fmt::Display for DisplayMac {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

mod field {
    use crate::Field;

    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const HEADER_LEN: usize = 14;

    // Offsets inside a VLAN tag view (the 4 bytes after the TPID).
    pub const TCI: Field = 0..2;
    pub const INNER_ETHERTYPE: Field = 2..4;
    pub const TAG_LEN: usize = 4;
}

/// A read/write view of an Ethernet II header at the start of a buffer.
///
/// Contract: [`Frame::new_checked`] accepts buffers of at least [`HEADER_LEN`] bytes, and
/// then no accessor panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps `buffer` if it holds a whole Ethernet header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        if buffer.as_ref().len() < field::HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Frame { buffer })
    }

    /// Gives the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The destination MAC address.
    #[inline]
    pub fn dst_addr(&self) -> MacAddr {
        read(self.buffer.as_ref(), field::DESTINATION)
    }

    /// The source MAC address.
    #[inline]
    pub fn src_addr(&self) -> MacAddr {
        read(self.buffer.as_ref(), field::SOURCE)
    }

    /// The EtherType, or the TPID of a VLAN tag.
    #[inline]
    pub fn ethertype(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ETHERTYPE)
    }

    /// Everything after the 14-byte header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination MAC address.
    #[inline]
    pub fn set_dst_addr(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&mac);
    }

    /// Sets the source MAC address.
    #[inline]
    pub fn set_src_addr(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&mac);
    }

    /// Sets the EtherType (or the TPID of a VLAN tag).
    #[inline]
    pub fn set_ethertype(&mut self, ethertype: u16) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE, ethertype);
    }

    /// Everything after the 14-byte header, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::HEADER_LEN..]
    }
}

/// A read/write view of the 4 bytes of a VLAN tag that follow its TPID.
///
/// Contract: [`VlanTag::new_checked`] accepts buffers of at least 4 bytes, and then
/// no accessor panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    /// Wraps `buffer` if it holds the TCI and the inner EtherType.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        if buffer.as_ref().len() < field::TAG_LEN {
            return Err(Error::Truncated);
        }
        Ok(VlanTag { buffer })
    }

    /// The VLAN identifier (0: priority tag, no VLAN).
    #[inline]
    pub fn vlan_id(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::TCI) & 0x0fff
    }

    /// The priority code point (802.1p class, 0..=7).
    #[inline]
    pub fn priority(&self) -> u8 {
        (read_u16(self.buffer.as_ref(), field::TCI) >> 13) as u8
    }

    /// The EtherType of what the tag carries.
    #[inline]
    pub fn ethertype(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::INNER_ETHERTYPE)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    /// Sets the whole tag control information (priority, drop eligible, VLAN id).
    #[inline]
    pub fn set_tci(&mut self, tci: u16) {
        write_u16(self.buffer.as_mut(), field::TCI, tci);
    }

    /// Sets the EtherType of what the tag carries.
    #[inline]
    pub fn set_ethertype(&mut self, ethertype: u16) {
        write_u16(self.buffer.as_mut(), field::INNER_ETHERTYPE, ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAGGED: [u8; 20] = [
        0x02, 0x00, 0x5e, 0x10, 0x00, 0x01, // destination
        0x02, 0x00, 0x5e, 0x10, 0x00, 0x02, // source
        0x81, 0x00, // 802.1Q
        0xa0, 0x64, // priority 5, VLAN 100
        0x08, 0x00, // IPv4
        0x45, 0x00, // (start of the payload)
    ];

    #[test]
    fn parse_tagged_frame() {
        let frame = Frame::new_checked(&TAGGED[..]).unwrap();
        assert_eq!(frame.dst_addr(), [0x02, 0x00, 0x5e, 0x10, 0x00, 0x01]);
        assert_eq!(frame.src_addr(), [0x02, 0x00, 0x5e, 0x10, 0x00, 0x02]);
        assert_eq!(frame.ethertype(), TPID_8021Q);
        assert!(is_vlan_tpid(frame.ethertype()));
        let tag = VlanTag::new_checked(frame.payload()).unwrap();
        assert_eq!(tag.vlan_id(), 100);
        assert_eq!(tag.priority(), 5);
        assert_eq!(tag.ethertype(), ETHERTYPE_IPV4);
    }

    #[test]
    fn build_tagged_frame() {
        let mut bytes = [0u8; 20];
        let mut frame = Frame::new_checked(&mut bytes[..]).unwrap();
        frame.set_dst_addr([0x02, 0x00, 0x5e, 0x10, 0x00, 0x01]);
        frame.set_src_addr([0x02, 0x00, 0x5e, 0x10, 0x00, 0x02]);
        frame.set_ethertype(TPID_8021Q);
        let mut tag = VlanTag::new_checked(frame.payload_mut()).unwrap();
        tag.set_tci(5 << 13 | 100);
        tag.set_ethertype(ETHERTYPE_IPV4);
        bytes[18..20].copy_from_slice(&[0x45, 0x00]);
        assert_eq!(bytes, TAGGED);
    }

    #[test]
    fn short_buffers_are_refused() {
        assert_eq!(Frame::new_checked(&TAGGED[..13]), Err(Error::Truncated));
        assert!(Frame::new_checked(&TAGGED[..14]).unwrap().payload().is_empty());
        assert_eq!(VlanTag::new_checked(&TAGGED[14..17]), Err(Error::Truncated));
    }

    #[test]
    fn unicast_mac() {
        assert!(is_unicast_mac(&[0x02, 0, 0, 0, 0, 1]));
        assert!(!is_unicast_mac(&[0xff; 6]));
        assert!(!is_unicast_mac(&[0x01, 0x00, 0x5e, 0, 0, 1])); // IPv4 multicast
        assert!(!is_unicast_mac(&[0x33, 0x33, 0, 0, 0, 1])); // IPv6 multicast
    }

    #[test]
    fn mac_text_both_ways() {
        assert_eq!(parse_mac("02:00:5e:10:00:0a"), Some([2, 0, 0x5e, 0x10, 0, 0x0a]));
        assert_eq!(parse_mac("02:AF:00:00:00:01"), Some([2, 0xaf, 0, 0, 0, 1]));
        for bad in [
            "",
            "02:00:5e:10:00",
            "02:00:5e:10:00:0a:01",
            "zz:00:5e:10:00:0a",
            "+2:00:5e:10:00:0a",
            "002:0:0:0:0:0",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
        let mac = [0x02, 0xaf, 0, 0, 0, 0x1b];
        assert_eq!(DisplayMac(mac).to_string(), "02:af:00:00:00:1b");
        assert_eq!(parse_mac(&DisplayMac(mac).to_string()), Some(mac));
    }
}
