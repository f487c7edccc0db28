//! Facts about a network interface that the responder needs: index, MAC, queue count, the
//! addresses it owns, and the TTL / hop limit the kernel would put in its own replies.
//!
//! Everything is read from the kernel's own views (`getifaddrs`, `/sys/class/net`,
//! `/proc/sys/net`), so inside a network namespace it describes that namespace.

use std::fs;
use std::net::IpAddr;
use std::path::PathBuf;

use echo_wire::{ethernet, ipv4, ipv6};

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
    /// `getifaddrs` failed.
    #[error("cannot list interface addresses: {0}")]
    Addresses(#[source] nix::Error),
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
        let index = nix::net::if_::if_nametoindex(name).map_err(|_| IfaceError::NotFound(name.to_string()))?;
        let base = PathBuf::from("/sys/class/net").join(name);
        let mac_text = read_sys(base.join("address"))?;
        let mac = ethernet::parse_mac(&mac_text).ok_or_else(|| IfaceError::Read {
            path: base.join("address").display().to_string(),
            reason: format!("{mac_text:?} is not an Ethernet MAC address (only Ethernet interfaces are supported)"),
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
            index,
            mac,
            queue_count,
        })
    }

    /// The unicast IPv4 and IPv6 addresses configured on the interface (link-local included:
    /// the kernel answers pings to those too), in the order the kernel lists them.
    pub fn addresses(&self) -> Result<Vec<IpAddr>, IfaceError> {
        let mut out = Vec::new();
        for ifa in nix::ifaddrs::getifaddrs().map_err(IfaceError::Addresses)? {
            if ifa.interface_name != self.name {
                continue;
            }
            let Some(addr) = ifa.address else { continue };
            let ip = if let Some(v4) = addr.as_sockaddr_in() {
                IpAddr::V4(v4.ip())
            } else if let Some(v6) = addr.as_sockaddr_in6() {
                IpAddr::V6(v6.ip())
            } else {
                continue;
            };
            if is_unicast(&ip) && !out.contains(&ip) {
                out.push(ip);
            }
        }
        Ok(out)
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
