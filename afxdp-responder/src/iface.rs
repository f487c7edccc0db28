//! Facts about a network interface that the responder needs: index, MAC, MTU, queue count, the
//! addresses it answers for, and the TTL / hop limit the kernel would put in its own replies.
//!
//! Everything is read from the kernel's own views (rtnetlink through [`crate::netlink`],
//! `/sys/class/net` for the queues, `/proc/sys/net`), so inside a network namespace it
//! describes that namespace. [`AddressTable`] follows the addresses as the kernel announces
//! their changes.

use std::fs;
use std::net::IpAddr;
use std::path::PathBuf;

use crate::netlink::{self, Address, Change, NetlinkError};
use echo_wire::{ipv4, ipv6};

/// What could not be found out about an interface. Messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum IfaceError {
    /// No such interface in this network namespace.
    #[error("interface {0} does not exist (see `ip link`); pass an existing one with --iface")]
    NotFound(String),
    /// A file under /sys or /proc could not be read or parsed.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// An rtnetlink request failed.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
}

/// An interface and the facts about it, read once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Name, e.g. `eth0`.
    pub name: String,
    /// Kernel interface index.
    pub index: u32,
    /// MAC address.
    pub mac: [u8; 6],
    /// MTU.
    pub mtu: u32,
    /// Usable queues: the smaller of the RX and TX queue counts (an AF_XDP socket needs both).
    pub queue_count: u32,
}

fn read_sys(path: PathBuf) -> Result<String, IfaceError> {
    fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|e| IfaceError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
}

impl Interface {
    /// Looks up `name` in the current network namespace.
    pub fn lookup(name: &str) -> Result<Self, IfaceError> {
        if name.is_empty() || name.contains('/') || name.len() > 15 {
            return Err(IfaceError::NotFound(name.to_string()));
        }
        let link = netlink::link_by_name(name)?.ok_or_else(|| IfaceError::NotFound(name.to_string()))?;
        let base = PathBuf::from("/sys/class/net").join(name);
        let mac = link.mac().ok_or_else(|| IfaceError::Read {
            path: format!("the hardware address of {name} (rtnetlink IFLA_ADDRESS)"),
            reason: format!(
                "{} byte(s) is not an Ethernet MAC address (only Ethernet interfaces are supported)",
                link.address.len()
            ),
        })?;
        let count = |prefix: &str| -> Result<u32, IfaceError> {
            let dir = base.join("queues");
            let entries = fs::read_dir(&dir).map_err(|e| IfaceError::Read {
                path: dir.display().to_string(),
                reason: e.to_string(),
            })?;
            Ok(entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .count() as u32)
        };
        let queue_count = count("rx-")?.min(count("tx-")?);
        Ok(Interface {
            name: name.to_string(),
            index: link.index,
            mac,
            mtu: link.mtu,
            queue_count,
        })
    }

    /// The unicast IPv4 and IPv6 addresses of the interface that Linux answers pings for
    /// (link-local included; tentative and DAD-failed IPv6 addresses not: see
    /// [`Address::answers_echo`]), in the order the kernel lists them.
    pub fn addresses(&self) -> Result<Vec<IpAddr>, IfaceError> {
        Ok(AddressTable::new(self.index, self.address_entries()?).answered())
    }

    /// Every address of the interface with its flags, answered or not.
    pub fn address_entries(&self) -> Result<Vec<Address>, IfaceError> {
        Ok(netlink::dump_addresses(self.index)?)
    }

    /// The TTL the kernel puts in its own IPv4 replies (`net.ipv4.ip_default_ttl`).
    pub fn ipv4_default_ttl() -> Result<u8, IfaceError> {
        read_u8(PathBuf::from("/proc/sys/net/ipv4/ip_default_ttl"))
    }

    /// The hop limit the kernel puts in IPv6 packets sent on this interface
    /// (`net.ipv6.conf.<iface>.hop_limit`); 64 when IPv6 is disabled.
    pub fn ipv6_hop_limit(&self) -> Result<u8, IfaceError> {
        let path = PathBuf::from("/proc/sys/net/ipv6/conf")
            .join(&self.name)
            .join("hop_limit");
        if !path.exists() {
            return Ok(64);
        }
        read_u8(path)
    }
}

fn read_u8(path: PathBuf) -> Result<u8, IfaceError> {
    let text = read_sys(path.clone())?;
    text.parse().map_err(|_| IfaceError::Read {
        path: path.display().to_string(),
        reason: format!("{text:?} is not 1..=255"),
    })
}

/// Whether an address can be the destination of a ping we answer: echo-wire's one definition
/// ([`ipv4::is_unicast`], [`ipv6::is_unicast`]).
pub fn is_unicast(ip: &IpAddr) -> bool {
    match *ip {
        IpAddr::V4(v4) => ipv4::is_unicast(v4),
        IpAddr::V6(v6) => ipv6::is_unicast(v6),
    }
}

/// The addresses of one interface with their flags, kept in step with the kernel's
/// notifications ([`Change`]); [`AddressTable::answered`] is what the responder answers for.
///
/// An address is one entry per (address, prefix length): Linux allows the same IPv4 address
/// twice with different prefixes, and removing one leaves the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressTable {
    index: u32,
    entries: Vec<Address>,
}

impl AddressTable {
    /// A table for interface `index` from a dump of its addresses.
    pub fn new(index: u32, entries: Vec<Address>) -> Self {
        let mut table = AddressTable {
            index,
            entries: Vec::new(),
        };
        table.replace(entries);
        table
    }

    /// Replaces every entry (a resynchronising dump).
    pub fn replace(&mut self, entries: Vec<Address>) {
        self.entries.clear();
        for entry in entries {
            self.upsert(entry);
        }
    }

    fn upsert(&mut self, entry: Address) {
        if entry.index != self.index {
            return;
        }
        match self
            .entries
            .iter_mut()
            .find(|e| e.ip == entry.ip && e.prefix_len == entry.prefix_len)
        {
            Some(existing) => *existing = entry,
            None => self.entries.push(entry),
        }
    }

    /// Applies an address notification; other changes and other interfaces' addresses are
    /// ignored.
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::NewAddress(a) => self.upsert(*a),
            Change::DelAddress(a) if a.index == self.index => {
                self.entries.retain(|e| !(e.ip == a.ip && e.prefix_len == a.prefix_len));
            }
            _ => {}
        }
    }

    /// The unicast addresses Linux answers pings for, each once, in the kernel's order.
    pub fn answered(&self) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for entry in &self.entries {
            if entry.answers_echo() && is_unicast(&entry.ip) && !out.contains(&entry.ip) {
                out.push(entry.ip);
            }
        }
        out
    }

    /// Every entry, with its flags.
    pub fn entries(&self) -> &[Address] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_interface_is_a_clear_error() {
        let err = Interface::lookup("afxr-no-such0").unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert!(matches!(Interface::lookup("a/b"), Err(IfaceError::NotFound(_))));
    }

    #[test]
    fn loopback_is_described() {
        let lo = Interface::lookup("lo").expect("lo exists in every namespace");
        assert_eq!(lo.index, 1);
        assert_eq!(lo.mac, [0; 6]);
        assert!(lo.queue_count >= 1);
        // 127.0.0.1 is not an address we would answer for.
        assert!(lo.addresses().unwrap().iter().all(is_unicast));
    }

    fn entry(ip: &str, prefix_len: u8, flags: u32) -> Address {
        Address {
            index: 3,
            ip: ip.parse().unwrap(),
            prefix_len,
            flags,
        }
    }

    #[test]
    fn the_table_follows_notifications() {
        use crate::netlink::address::flags::*;
        let v4 = entry("198.18.0.1", 24, PERMANENT);
        let mut table = AddressTable::new(3, vec![v4, entry("127.0.0.1", 8, PERMANENT)]);
        assert_eq!(table.answered(), vec![v4.ip]);

        // An IPv6 address in DAD is not answered until the kernel says DAD is over.
        let tentative = entry("2001:db8::1", 64, PERMANENT | TENTATIVE);
        table.apply(&Change::NewAddress(tentative));
        assert_eq!(table.answered(), vec![v4.ip]);
        table.apply(&Change::NewAddress(entry("2001:db8::1", 64, PERMANENT)));
        assert_eq!(table.answered(), vec![v4.ip, tentative.ip]);

        // The same IPv4 address with a second prefix: removing one leaves the other.
        table.apply(&Change::NewAddress(entry("198.18.0.1", 16, PERMANENT)));
        table.apply(&Change::DelAddress(v4));
        assert_eq!(table.answered(), vec![tentative.ip, v4.ip]);
        table.apply(&Change::DelAddress(entry("198.18.0.1", 16, 0)));
        assert_eq!(table.answered(), vec![tentative.ip]);

        // Another interface's addresses, and duplicates, change nothing.
        let mut other = entry("198.18.0.9", 24, 0);
        other.index = 4;
        table.apply(&Change::NewAddress(other));
        table.apply(&Change::DelAddress(Address { index: 4, ..tentative }));
        assert_eq!(table.answered(), vec![tentative.ip]);

        // DAD failed: never answered.
        table.apply(&Change::NewAddress(entry("2001:db8::1", 64, TENTATIVE | DADFAILED)));
        assert!(table.answered().is_empty());
        table.replace(vec![v4]);
        assert_eq!(table.answered(), vec![v4.ip]);
    }

    #[test]
    fn unicast_filter() {
        for s in [
            "0.0.0.0",
            "127.0.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "ff02::1",
        ] {
            assert!(!is_unicast(&s.parse().unwrap()), "{s}");
        }
        for s in ["198.18.0.1", "2001:db8::1", "fe80::1"] {
            assert!(is_unicast(&s.parse().unwrap()), "{s}");
        }
    }
}
