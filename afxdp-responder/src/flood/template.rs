//! The request frames of a flood: one template per run, built with echo-wire's packet views,
//! stamped per request with its send time and sequence number.
//!
//! A request is an Ethernet frame with an IPv4 (no options, DF set, TTL 64, as `ping` sends it)
//! or IPv6 (hop limit 64) header and an ICMP echo request whose data starts with a 16-byte stamp
//! (send time in ns, then the flood-wide sequence number, both big-endian) followed by a fixed
//! filler pattern. [`Template::check_reply`] (in `capture.rs`) checks replies against it.

use std::net::IpAddr;

use echo_wire::ethernet::{self, Frame, MacAddr};
use echo_wire::{icmp, ipv4, ipv6};

use super::FloodError;

/// Bytes of our own data at the start of every request payload: send time and sequence number.
pub(super) const STAMP_LEN: usize = 16;
/// The largest IP packet a flood sends (a standard Ethernet MTU).
const MAX_IP_LEN: usize = 1500;

/// The filler byte at offset `i` of a frame, after the stamp.
fn filler(i: usize) -> u8 {
    (i as u8).wrapping_mul(31) ^ 0x5a
}

/// Everything a sending thread needs to build and check frames.
#[derive(Debug, Clone)]
pub(super) struct Template {
    /// The request with a zero stamp, zero identifier/sequence and no checksums.
    pub(super) frame: Vec<u8>,
    pub(super) src: IpAddr,
    pub(super) dst: IpAddr,
    pub(super) our_mac: MacAddr,
    pub(super) their_mac: MacAddr,
}

impl Template {
    /// The template of `size`-byte IP packets from `src` (`our_mac`) to `dst` (`their_mac`).
    pub(super) fn new(
        src: IpAddr,
        dst: IpAddr,
        size: usize,
        our_mac: MacAddr,
        their_mac: MacAddr,
    ) -> Result<Self, FloodError> {
        let (ip_len, version) = match dst {
            IpAddr::V4(_) => (ipv4::HEADER_LEN, 4),
            IpAddr::V6(_) => (ipv6::HEADER_LEN, 6),
        };
        let min = ip_len + icmp::HEADER_LEN + STAMP_LEN;
        if !(min..=MAX_IP_LEN).contains(&size) {
            return Err(FloodError::Config(format!(
                "--size {size} is not valid for IPv{version}: use {min}..={MAX_IP_LEN} (IP packet bytes)"
            )));
        }
        let mut bytes = vec![0u8; ethernet::HEADER_LEN + size];
        let mut eth = Frame::new_checked(&mut bytes[..]).expect("longer than an Ethernet header");
        eth.set_dst_addr(their_mac);
        eth.set_src_addr(our_mac);
        let icmp_message = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                eth.set_ethertype(ethernet::ETHERTYPE_IPV4);
                let mut ip = ipv4::Packet::init(eth.payload_mut()).expect("checked size");
                ip.set_dont_frag(true); // as ping sets it
                ip.set_ttl(64);
                ip.set_protocol(ipv4::PROTOCOL_ICMP);
                ip.set_src_addr(s);
                ip.set_dst_addr(d);
                (icmp::ECHO_REQUEST_V4, ethernet::HEADER_LEN + ipv4::HEADER_LEN)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                eth.set_ethertype(ethernet::ETHERTYPE_IPV6);
                let mut ip = ipv6::Packet::init(eth.payload_mut()).expect("checked size");
                ip.set_next_header(ipv6::NEXT_HEADER_ICMPV6);
                ip.set_hop_limit(64);
                ip.set_src_addr(s);
                ip.set_dst_addr(d);
                (icmp::ECHO_REQUEST_V6, ethernet::HEADER_LEN + ipv6::HEADER_LEN)
            }
            _ => return Err(FloodError::Config("--src and --dst must be of the same family".into())),
        };
        let (msg_type, icmp_start) = icmp_message;
        let mut echo = icmp::EchoPacket::new_checked(&mut bytes[icmp_start..]).expect("checked size");
        echo.set_msg_type(msg_type);
        let filler_start = icmp_start + icmp::HEADER_LEN + STAMP_LEN;
        for (i, byte) in bytes.iter_mut().enumerate().skip(filler_start) {
            *byte = filler(i);
        }
        Ok(Template {
            frame: bytes,
            src,
            dst,
            our_mac,
            their_mac,
        })
    }

    /// Writes request number `gseq` (identifier `ident`) sent at `ts_ns` into `out`, which must
    /// be exactly as long as the template. With `bad_checksum` its ICMP checksum is wrong on
    /// purpose.
    pub(super) fn write_request(&self, out: &mut [u8], ident: u16, gseq: u64, ts_ns: u64, bad_checksum: bool) {
        out.copy_from_slice(&self.frame);
        let mut eth = Frame::new_checked(out).expect("the template is a whole frame");
        let seq = gseq as u16;
        let stamp = |echo: &mut icmp::EchoPacket<&mut [u8]>| {
            echo.set_identifier(ident);
            echo.set_sequence(seq);
            let data = echo.data_mut();
            data[..8].copy_from_slice(&ts_ns.to_be_bytes());
            data[8..STAMP_LEN].copy_from_slice(&gseq.to_be_bytes());
        };
        let spoil = |checksum: u16| {
            if bad_checksum {
                !checksum.wrapping_add(0x1234)
            } else {
                checksum
            }
        };
        if self.dst.is_ipv4() {
            let mut ip = ipv4::Packet::new_checked(eth.payload_mut()).expect("the template's header");
            ip.set_ident(seq);
            ip.fill_checksum();
            let mut echo = icmp::EchoPacket::new_checked(ip.payload_mut()).expect("the template's message");
            stamp(&mut echo);
            echo.fill_checksum_v4();
            echo.set_checksum(spoil(echo.checksum()));
        } else {
            let mut ip = ipv6::Packet::new_checked(eth.payload_mut()).expect("the template's header");
            let pseudo_header = ip.pseudo_header_sum();
            let mut echo = icmp::EchoPacket::new_checked(ip.payload_mut()).expect("the template's message");
            stamp(&mut echo);
            echo.fill_checksum_v6(pseudo_header);
            echo.set_checksum(spoil(echo.checksum()));
        }
    }

    /// Whether the filler after the stamp of `data` (an echo message's data) is the template's.
    pub(super) fn filler_matches(&self, data: &[u8], data_start: usize) -> bool {
        data.get(STAMP_LEN..) == self.frame.get(data_start + STAMP_LEN..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use echo_wire::checksum::Sum;

    #[test]
    fn requests_are_valid_packets() {
        let t = Template::new(
            "198.18.0.2".parse().unwrap(),
            "198.18.0.1".parse().unwrap(),
            100,
            [2; 6],
            [4; 6],
        )
        .unwrap();
        let mut req = vec![0u8; t.frame.len()];
        t.write_request(&mut req, 7, 0x1_0005, 99, false);
        let eth = Frame::new_checked(&req[..]).unwrap();
        assert_eq!((eth.dst_addr(), eth.src_addr()), ([4; 6], [2; 6]));
        let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!((ip.version(), ip.header_len(), ip.total_len()), (4, 20, 100));
        assert!(ip.dont_frag());
        assert_eq!((ip.ttl(), ip.protocol(), ip.ident()), (64, 1, 5));
        let echo = icmp::EchoPacket::new_checked(ip.payload()).unwrap();
        assert!(echo.verify_checksum_v4());
        assert_eq!((echo.msg_type(), echo.identifier(), echo.sequence()), (8, 7, 5));
        assert_eq!(echo.data()[..8], 99u64.to_be_bytes());
        assert_eq!(echo.data()[8..16], 0x1_0005u64.to_be_bytes());

        // An independent oracle for the ICMPv6 checksum: the pseudo-header summed by hand.
        let t = Template::new(
            "2001:db8::2".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
            64,
            [2; 6],
            [4; 6],
        )
        .unwrap();
        let mut req = vec![0u8; t.frame.len()];
        t.write_request(&mut req, 1, 2, 3, false);
        let icmp_start = 14 + 40;
        let sum = Sum::new()
            .add_bytes(&req[icmp_start..])
            .add_bytes(&req[14 + 8..14 + 40])
            .add_u32((req.len() - icmp_start) as u32)
            .add_u16(58);
        assert!(sum.is_valid());
        assert_eq!(
            (req[12], req[13], req[14] >> 4, req[14 + 6], req[icmp_start]),
            (0x86, 0xdd, 6, 58, 128)
        );
    }

    #[test]
    fn bad_checksum_requests_are_invalid() {
        let t = Template::new(
            "198.18.0.2".parse().unwrap(),
            "198.18.0.1".parse().unwrap(),
            100,
            [2; 6],
            [4; 6],
        )
        .unwrap();
        let mut req = vec![0u8; t.frame.len()];
        t.write_request(&mut req, 1, 5, 1, true);
        assert!(!Sum::new().add_bytes(&req[14 + 20..]).is_valid());
        assert!(
            Sum::new().add_bytes(&req[14..14 + 20]).is_valid(),
            "the IP header stays valid"
        );
    }

    #[test]
    fn sizes_outside_the_range_are_refused() {
        let v4 = |size| {
            Template::new(
                "198.18.0.2".parse().unwrap(),
                "198.18.0.1".parse().unwrap(),
                size,
                [2; 6],
                [4; 6],
            )
        };
        let v6 = |size| {
            Template::new(
                "2001:db8::2".parse().unwrap(),
                "2001:db8::1".parse().unwrap(),
                size,
                [2; 6],
                [4; 6],
            )
        };
        assert!(v4(43).is_err());
        assert!(v4(44).is_ok());
        assert!(v4(1501).is_err());
        assert!(v6(63).is_err());
        assert!(v6(64).is_ok());
        let mixed = Template::new(
            "2001:db8::2".parse().unwrap(),
            "198.18.0.1".parse().unwrap(),
            64,
            [2; 6],
            [4; 6],
        );
        assert!(mixed.unwrap_err().to_string().contains("same family"));
    }
}
