//! An independent model of the reply rule, for the fuzz targets.
//!
//! Nothing here uses `echo_wire`: the headers are read from raw byte offsets, and
//! the checksums are the textbook RFC 1071 sum, one 16-bit word at a time, with the carries folded
//! after every addition. The model follows the rule documented on `respond::DropReason`: a frame is
//! answered exactly when it is an intact ICMP / ICMPv6 echo request between unicast MACs and
//! unicast addresses, with at most one VLAN tag, no IPv4 options, no IPv6 extension header and no
//! fragmentation. [`expected_reply`] builds the whole reply from scratch (checksums recomputed over
//! the reply, not updated), so a fuzz target can compare it byte for byte.

/// EtherTypes that mark a VLAN tag: 802.1Q, 802.1ad, and the legacy QinQ 0x9100.
const VLAN_TPIDS: [u16; 3] = [0x8100, 0x88a8, 0x9100];
/// IPv6 next-header values of extension headers (RFC 8200, RFC 7045 list, 253/254 experimental).
const IPV6_EXTENSION_HEADERS: [u8; 11] = [0, 43, 44, 50, 51, 60, 135, 139, 140, 253, 254];

/// What the responder is configured with in the fuzz targets.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// TTL of IPv4 replies.
    pub ttl: u8,
    /// Hop limit of IPv6 replies.
    pub hop_limit: u8,
    /// The IPv4 identification seed of a fresh responder.
    pub ident_seed: u16,
}

/// The RFC 1071 one's-complement sum of `data` (odd length: zero-padded), folded to 16 bits,
/// starting from `initial`. Deliberately naive: one word at a time, carry folded immediately.
pub fn ones_complement_sum(initial: u16, data: &[u8]) -> u16 {
    let mut sum = u32::from(initial);
    for pair in data.chunks(2) {
        let word = u16::from_be_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]);
        sum += u32::from(word);
        if sum > 0xffff {
            sum = (sum & 0xffff) + 1;
        }
    }
    sum as u16
}

/// The checksum to store in a zeroed checksum field: the complement of the sum.
pub fn internet_checksum(initial: u16, data: &[u8]) -> u16 {
    !ones_complement_sum(initial, data)
}

/// Sum of the IPv6 pseudo-header (RFC 8200 §8.1) for an upper-layer packet of `len` bytes.
pub fn ipv6_pseudo_header_sum(src: &[u8], dst: &[u8], len: u32, next_header: u8) -> u16 {
    let mut pseudo = Vec::with_capacity(40);
    pseudo.extend_from_slice(src);
    pseudo.extend_from_slice(dst);
    pseudo.extend_from_slice(&len.to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, next_header]);
    ones_complement_sum(0, &pseudo)
}

fn be16(data: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([data[at], data[at + 1]])
}

fn unicast_mac(mac: &[u8]) -> bool {
    mac[0] & 1 == 0
}

fn unicast_ipv4(addr: &[u8]) -> bool {
    let first = addr[0];
    !(first == 0 || first == 127 || (224..=239).contains(&first) || addr == [255, 255, 255, 255])
}

fn unicast_ipv6(addr: &[u8]) -> bool {
    let unspecified = addr.iter().all(|&b| b == 0);
    let loopback = addr[..15].iter().all(|&b| b == 0) && addr[15] == 1;
    let multicast = addr[0] == 0xff;
    let v4_mapped = addr[..10].iter().all(|&b| b == 0) && addr[10] == 0xff && addr[11] == 0xff;
    !(unspecified || loopback || multicast || v4_mapped)
}

/// Where the IP header starts (14 or 18) and its EtherType, or `None` if the link layer alone
/// rules out a reply.
fn link_layer(frame: &[u8]) -> Option<(usize, u16)> {
    if frame.len() < 14 || !unicast_mac(&frame[0..6]) || !unicast_mac(&frame[6..12]) {
        return None;
    }
    let ethertype = be16(frame, 12);
    if !VLAN_TPIDS.contains(&ethertype) {
        return Some((14, ethertype));
    }
    if frame.len() < 18 {
        return None;
    }
    let inner = be16(frame, 16);
    (!VLAN_TPIDS.contains(&inner)).then_some((18, inner))
}

/// The reply the responder must send for `frame`, built from scratch, or `None` if it must not
/// answer. The reply is `frame` up to the end of the IP packet (without a priority tag, which
/// Linux does not echo) with MACs and addresses swapped,
/// the echo type changed, TTL / hop limit from `policy`, for IPv4 DF cleared and the
/// identification `policy.ident_seed` (plus one if that is the request's), checksums recomputed.
pub fn expected_reply(frame: &[u8], policy: Policy) -> Option<Vec<u8>> {
    let (l3, ethertype) = link_layer(frame)?;
    let mut reply = match ethertype {
        0x0800 => ipv4_reply(frame, l3, policy)?,
        0x86dd => ipv6_reply(frame, l3, policy)?,
        _ => return None,
    };
    let (dst, src) = (frame[0..6].to_vec(), frame[6..12].to_vec());
    reply[0..6].copy_from_slice(&src);
    reply[6..12].copy_from_slice(&dst);
    if l3 == 18 && be16(frame, 14) & 0x0fff == 0 {
        // A priority tag (VLAN id 0) is removed, as Linux answers such a request untagged.
        reply.drain(12..16);
    }
    Some(reply)
}

fn ipv4_reply(frame: &[u8], l3: usize, policy: Policy) -> Option<Vec<u8>> {
    let ip = frame.get(l3..)?;
    if ip.len() < 20 || ip[0] >> 4 != 4 || ip[0] & 0x0f != 5 {
        return None;
    }
    let total_len = usize::from(be16(ip, 2));
    if total_len < 20 + 8 || total_len > ip.len() {
        return None;
    }
    let header = &ip[..20];
    if ones_complement_sum(0, header) != 0xffff {
        return None;
    }
    if !unicast_ipv4(&header[12..16]) || !unicast_ipv4(&header[16..20]) {
        return None;
    }
    let fragment = be16(header, 6) & 0x3fff != 0;
    if fragment || header[9] != 1 {
        return None;
    }
    let icmp = &ip[20..total_len];
    if icmp[0] != 8 || ones_complement_sum(0, icmp) != 0xffff {
        return None;
    }

    let mut reply = frame[..l3 + total_len].to_vec();
    let r = &mut reply[l3..];
    let request_ident = be16(header, 4);
    let ident = if policy.ident_seed == request_ident {
        policy.ident_seed.wrapping_add(1)
    } else {
        policy.ident_seed
    };
    r[4..6].copy_from_slice(&ident.to_be_bytes());
    r[6..8].fill(0);
    r[8] = policy.ttl;
    r[12..16].copy_from_slice(&header[16..20]);
    r[16..20].copy_from_slice(&header[12..16]);
    r[10..12].fill(0);
    let header_checksum = internet_checksum(0, &r[..20]);
    r[10..12].copy_from_slice(&header_checksum.to_be_bytes());
    r[20] = 0;
    r[22..24].fill(0);
    let icmp_checksum = internet_checksum(0, &r[20..]);
    r[22..24].copy_from_slice(&icmp_checksum.to_be_bytes());
    Some(reply)
}

fn ipv6_reply(frame: &[u8], l3: usize, policy: Policy) -> Option<Vec<u8>> {
    let ip = frame.get(l3..)?;
    if ip.len() < 40 || ip[0] >> 4 != 6 {
        return None;
    }
    let payload_len = usize::from(be16(ip, 4));
    if 40 + payload_len > ip.len() {
        return None;
    }
    let next_header = ip[6];
    if next_header != 58 || IPV6_EXTENSION_HEADERS.contains(&next_header) {
        return None;
    }
    let (src, dst) = (&ip[8..24], &ip[24..40]);
    if !unicast_ipv6(src) || !unicast_ipv6(dst) || payload_len < 8 {
        return None;
    }
    let icmp = &ip[40..40 + payload_len];
    let pseudo = ipv6_pseudo_header_sum(src, dst, payload_len as u32, 58);
    if icmp[0] != 128 || ones_complement_sum(pseudo, icmp) != 0xffff {
        return None;
    }

    let mut reply = frame[..l3 + 40 + payload_len].to_vec();
    let r = &mut reply[l3..];
    r[7] = policy.hop_limit;
    r[8..24].copy_from_slice(dst);
    r[24..40].copy_from_slice(src);
    r[40] = 129;
    r[42..44].fill(0);
    let pseudo = ipv6_pseudo_header_sum(&r[8..24], &r[24..40], payload_len as u32, 58);
    let icmp_checksum = internet_checksum(pseudo, &r[40..]);
    r[42..44].copy_from_slice(&icmp_checksum.to_be_bytes());
    Some(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        assert_eq!(
            ones_complement_sum(0, &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }
}
