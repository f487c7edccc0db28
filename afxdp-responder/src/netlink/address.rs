//! The addresses of an interface, with their flags, and which of them Linux answers pings for.

use std::net::IpAddr;

use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{NetlinkError, RouteSocket};

/// `IFA_F_*` flags of an address (`IFA_FLAGS`, or the header's 8 bits on kernels without it).
pub mod flags {
    /// DAD is in progress (or failed, with [`DADFAILED`]).
    pub const TENTATIVE: u32 = 0x40;
    /// Duplicate address detection failed.
    pub const DADFAILED: u32 = 0x08;
    /// Optimistic DAD (RFC 4429): usable while DAD runs.
    pub const OPTIMISTIC: u32 = 0x04;
    /// Preferred lifetime over: not chosen as a source, still the host's own.
    pub const DEPRECATED: u32 = 0x20;
    /// Added without DAD.
    pub const NODAD: u32 = 0x02;
    /// Configured by hand (not from autoconfiguration).
    pub const PERMANENT: u32 = 0x80;
    /// A secondary IPv4 address of its subnet.
    pub const SECONDARY: u32 = 0x01;
}

/// One address of an interface, as the kernel reports it (`RTM_NEWADDR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    /// Interface index.
    pub index: u32,
    /// The local address (`IFA_LOCAL`, else `IFA_ADDRESS`).
    pub ip: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
    /// `IFA_F_*` flags ([`flags`]).
    pub flags: u32,
}

impl Address {
    /// Whether Linux answers an echo request to this address, as far as its state goes:
    ///
    /// - a **tentative** IPv6 address (DAD in progress) is not the host's yet: its local route
    ///   is inserted only when DAD completes (`addrconf_dad_completed` → `ipv6_ifa_notify`), and
    ///   `ipv6_chk_addr` treats it as absent; requests to it are not delivered locally;
    /// - **DADFAILED** addresses stay tentative for good, never answered;
    /// - an **optimistic** address (RFC 4429) is answered while DAD runs: `addrconf_dad_begin`
    ///   inserts its route at once ("Optimistic nodes can start receiving frames right away"),
    ///   and `__ipv6_chk_addr_and_flags` ignores TENTATIVE when OPTIMISTIC is set; it loses
    ///   OPTIMISTIC (and stays TENTATIVE) if DAD fails;
    /// - a **deprecated** address is still the host's own: only source address selection for
    ///   new traffic avoids it, so requests to it are answered;
    /// - IPv4 has no DAD in the kernel: every IPv4 address is answered.
    pub fn answers_echo(&self) -> bool {
        if self.flags & flags::DADFAILED != 0 {
            return false;
        }
        self.flags & flags::TENTATIVE == 0 || self.flags & flags::OPTIMISTIC != 0
    }

    /// Reads an `RTM_NEWADDR`/`RTM_DELADDR` message; `None` for families other than IPv4/IPv6
    /// or a message without an address.
    pub(crate) fn from_message(message: &AddressMessage) -> Option<Self> {
        if !matches!(message.header.family, AddressFamily::Inet | AddressFamily::Inet6) {
            return None;
        }
        let mut local = None;
        let mut address = None;
        let mut flags = u32::from(message.header.flags.bits());
        for attribute in &message.attributes {
            match attribute {
                AddressAttribute::Local(ip) => local = Some(*ip),
                AddressAttribute::Address(ip) => address = Some(*ip),
                AddressAttribute::Flags(f) => flags = AddressFlags::bits(f),
                _ => {}
            }
        }
        Some(Address {
            index: message.header.index,
            ip: local.or(address)?,
            prefix_len: message.header.prefix_len,
            flags,
        })
    }
}

/// Every IPv4 and IPv6 address of interface `index` with its flags, in the kernel's order
/// (IPv4 first).
pub fn dump_addresses(index: u32) -> Result<Vec<Address>, NetlinkError> {
    let mut socket = RouteSocket::open()?;
    dump_addresses_with(&mut socket, index)
}

pub(crate) fn dump_addresses_with(socket: &mut RouteSocket, index: u32) -> Result<Vec<Address>, NetlinkError> {
    let mut request = AddressMessage::default();
    request.header.index = index;
    let answers = socket.request(
        "address dump (RTM_GETADDR)",
        RouteNetlinkMessage::GetAddress(request),
        true,
    )?;
    Ok(answers
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewAddress(a) => Address::from_message(a),
            _ => None,
        })
        .filter(|a| a.index == index)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(flags: u32) -> Address {
        Address {
            index: 2,
            ip: "2001:db8::1".parse().unwrap(),
            prefix_len: 64,
            flags,
        }
    }

    #[test]
    fn answered_as_linux_answers() {
        use flags::*;
        assert!(addr(PERMANENT).answers_echo());
        assert!(addr(PERMANENT | NODAD).answers_echo());
        assert!(addr(DEPRECATED).answers_echo());
        assert!(addr(TENTATIVE | OPTIMISTIC).answers_echo());
        assert!(!addr(TENTATIVE).answers_echo());
        assert!(!addr(TENTATIVE | PERMANENT).answers_echo());
        assert!(!addr(TENTATIVE | DADFAILED).answers_echo());
        assert!(!addr(TENTATIVE | DADFAILED | OPTIMISTIC).answers_echo());
    }

    #[test]
    fn loopback_addresses_are_dumped() {
        // Every namespace has lo (index 1); in a fresh one it has no address at all, in the
        // host's it has 127.0.0.1 and ::1, both with a prefix length.
        let dumped = dump_addresses(1).expect("dumping lo's addresses needs no privilege");
        assert!(dumped.iter().all(|a| a.index == 1 && a.prefix_len > 0));
    }
}
