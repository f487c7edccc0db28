//! Receiving replies: the checks a reply must pass to count as correct, read through echo-wire's
//! packet views, and the record of which requests were answered already.
//!
//! A reply is *correct* when it is exactly the reply to one of our requests: MACs and addresses
//! swapped, the type an echo reply with code 0, both checksums valid, length, identifier,
//! sequence and payload (stamp and filler) what was sent. IPv6 fields no checksum covers and a
//! responder may set as it likes (traffic class, flow label, hop limit) are not looked at.

use std::net::IpAddr;

use echo_wire::ethernet::Frame;
use echo_wire::{icmp, ipv4, ipv6};

use super::template::{STAMP_LEN, Template};

impl Template {
    /// Checks a reply to a request with identifier `ident`; returns `(gseq, send timestamp)`
    /// of the request it answers if it is exactly right.
    pub(super) fn check_reply(&self, frame: &[u8], ident: u16) -> Option<(u64, u64)> {
        let request = Frame::new_checked(&self.frame[..]).ok()?;
        let eth = Frame::new_checked(frame).ok()?;
        if frame.len() != self.frame.len()
            || eth.dst_addr() != self.our_mac
            || eth.src_addr() != self.their_mac
            || eth.ethertype() != request.ethertype()
        {
            return None;
        }
        match (self.src, self.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let sent = ipv4::Packet::new_checked(request.payload()).ok()?;
                let ip = ipv4::Packet::new_checked(eth.payload()).ok()?;
                let header_ok = ip.version() == 4
                    && ip.header_len() == ipv4::HEADER_LEN
                    && ip.total_len() == sent.total_len()
                    && ip.protocol() == ipv4::PROTOCOL_ICMP
                    && ip.src_addr() == dst
                    && ip.dst_addr() == src
                    && ip.verify_checksum();
                let echo = icmp::EchoPacket::new_checked(ip.payload()).ok()?;
                let echo_ok = echo.msg_type() == icmp::ECHO_REPLY_V4 && echo.verify_checksum_v4();
                (header_ok && echo_ok).then(|| self.check_echo(&echo, frame.len(), ident))?
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let sent = ipv6::Packet::new_checked(request.payload()).ok()?;
                let ip = ipv6::Packet::new_checked(eth.payload()).ok()?;
                let header_ok = ip.version() == 6
                    && ip.payload_len() == sent.payload_len()
                    && ip.next_header() == ipv6::NEXT_HEADER_ICMPV6
                    && ip.src_addr() == dst
                    && ip.dst_addr() == src;
                let echo = icmp::EchoPacket::new_checked(ip.payload()).ok()?;
                let echo_ok = echo.msg_type() == icmp::ECHO_REPLY_V6 && echo.verify_checksum_v6(ip.pseudo_header_sum());
                (header_ok && echo_ok).then(|| self.check_echo(&echo, frame.len(), ident))?
            }
            _ => None,
        }
    }

    /// The echo part of [`Template::check_reply`]: code, identifier, sequence, stamp, filler.
    fn check_echo(&self, echo: &icmp::EchoPacket<&[u8]>, frame_len: usize, ident: u16) -> Option<(u64, u64)> {
        if echo.code() != 0 || echo.identifier() != ident {
            return None;
        }
        let data = echo.data();
        let ts = u64::from_be_bytes(data.get(..8)?.try_into().ok()?);
        let gseq = u64::from_be_bytes(data.get(8..STAMP_LEN)?.try_into().ok()?);
        if echo.sequence() != gseq as u16 {
            return None;
        }
        self.filler_matches(data, frame_len - data.len()).then_some((gseq, ts))
    }
}

/// Which requests got a correct reply already: a growing bitset over sequence numbers.
#[derive(Debug, Default)]
pub(super) struct Answered(Vec<u64>);

impl Answered {
    /// Marks request `gseq` as answered; returns whether it was already (a duplicate reply).
    pub(super) fn test_and_set(&mut self, gseq: u64) -> bool {
        let word = (gseq / 64) as usize;
        if word >= self.0.len() {
            self.0.resize(word + 1, 0);
        }
        let mask = 1u64 << (gseq % 64);
        let was = self.0[word] & mask != 0;
        self.0[word] |= mask;
        was
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use echo_wire::checksum::Sum;

    const ETH_LEN: usize = 14;

    /// Turns a request into the reply a correct responder would send (swap, type, checksum), by
    /// raw offsets: an oracle independent of the views the checks use.
    fn reply_to(req: &[u8], v6: bool) -> Vec<u8> {
        let mut f = req.to_vec();
        let (a, b) = f.split_at_mut(6);
        a.swap_with_slice(&mut b[..6]);
        let icmp = if v6 { ETH_LEN + 40 } else { ETH_LEN + 20 };
        if v6 {
            let (s, d) = f[ETH_LEN + 8..ETH_LEN + 40].split_at_mut(16);
            s.swap_with_slice(d);
            f[icmp] = 129;
        } else {
            let (s, d) = f[ETH_LEN + 12..ETH_LEN + 20].split_at_mut(4);
            s.swap_with_slice(d);
            f[icmp] = 0;
        }
        f[icmp + 2..icmp + 4].copy_from_slice(&[0, 0]);
        let mut sum = Sum::new().add_bytes(&f[icmp..]);
        if v6 {
            sum = sum
                .add_bytes(&f[ETH_LEN + 8..ETH_LEN + 40])
                .add_u32((f.len() - icmp) as u32)
                .add_u16(58);
        }
        let c = sum.checksum();
        f[icmp + 2..icmp + 4].copy_from_slice(&c.to_be_bytes());
        f
    }

    #[test]
    fn replies_are_checked_byte_by_byte() {
        for (dst, src, size) in [("198.18.0.1", "198.18.0.2", 64), ("2001:db8::1", "2001:db8::2", 1000)] {
            let t = Template::new(
                src.parse().unwrap(),
                dst.parse().unwrap(),
                size,
                [2, 0, 0, 0, 0, 2],
                [2, 0, 0, 0, 0, 1],
            )
            .unwrap();
            let v6 = t.dst.is_ipv6();
            let mut req = vec![0u8; t.frame.len()];
            t.write_request(&mut req, 7, 12345, 999, false);
            let reply = reply_to(&req, v6);
            assert_eq!(t.check_reply(&reply, 7), Some((12345, 999)));
            assert_eq!(t.check_reply(&reply, 8), None, "other identifier");
            assert_eq!(t.check_reply(&req, 7), None, "the request itself");
            assert_eq!(t.check_reply(&reply[..reply.len() - 1], 7), None, "one byte short");
            for i in 0..reply.len() {
                let mut bad = reply.clone();
                bad[i] ^= 0x01;
                // Every single-bit change is caught (the IPv4 header checksum covers the whole
                // IPv4 header), except in the IPv6 fields no checksum covers and we do not
                // look at: traffic class, flow label, hop limit.
                let ignorable = v6 && ((ETH_LEN..ETH_LEN + 4).contains(&i) || i == ETH_LEN + 7);
                if !ignorable {
                    assert_eq!(t.check_reply(&bad, 7), None, "bit flip at byte {i} must be caught");
                }
            }
        }
    }

    #[test]
    fn duplicates_are_recognised() {
        let mut answered = Answered::default();
        assert!(!answered.test_and_set(1000));
        assert!(answered.test_and_set(1000));
        assert!(!answered.test_and_set(0));
    }
}
