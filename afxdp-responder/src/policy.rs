//! Host policy: the sysctls that shape the kernel's own echo replies, followed while running,
//! and the `--allow-from` / `--deny-from` source lists.
//!
//! | sysctl (in the responder's network namespace) | effect |
//! |---|---|
//! | `net.ipv4.icmp_echo_ignore_all`, `net.ipv6.icmp.echo_ignore_all` | the XDP program passes that family's requests to the kernel, which ignores them |
//! | `net.ipv4.ip_default_ttl`, `net.ipv6.conf.IFACE.hop_limit` | TTL / hop limit of the replies (unless `--ttl` / `--hop-limit`) |
//! | `net.ipv6.auto_flowlabels`, `net.ipv6.flowlabel_reflect`, `net.ipv6.flowlabel_state_ranges` | the flow label of IPv6 replies ([`FlowLabelPolicy`]) |
//!
//! The monitor loop reads them every [`SYSCTL_POLL_INTERVAL`] (so a change takes effect within
//! one second); the XDP program gets the ignore flags through its `host_policy` map, the workers
//! get the reply policy through one [`LivePolicy`]: an atomic word each worker loads once per
//! batch, so the packet path takes no lock and makes no system call.
//!
//! Not here because they need no action: `icmp_echo_ignore_broadcasts` and
//! `icmp.echo_ignore_multicast` concern broadcast and multicast destinations, which are never
//! owned addresses (the XDP program passes them and the kernel applies the sysctls);
//! `icmp.echo_ignore_anycast` concerns anycast addresses (the subnet-router anycast address of a
//! forwarding interface, addresses joined with `IPV6_JOIN_ANYCAST`), which are not unicast
//! addresses of the interface either, so they are not owned unless given with `--address`.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use echo_wire::respond::{FlowLabelPolicy, ReplyPolicy};

/// The most CIDRs each of `--allow-from` and `--deny-from` takes: the size of the XDP
/// program's tries (`POLICY_LPM_MAX_ENTRIES` in `redirect-ebpf/policy.h`).
pub const MAX_SOURCE_RULES: usize = 1024;

/// How often the monitor loop reads the sysctls.
pub const SYSCTL_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// An IPv4 or IPv6 prefix such as `198.18.0.0/15` or `2001:db8::/32`; a bare address is a
/// host prefix (/32, /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The address, with the bits beyond the prefix cleared.
    pub addr: IpAddr,
    /// Prefix length: 0..=32 for IPv4, 0..=128 for IPv6.
    pub prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("{s:?} is not a valid CIDR ({why}): use e.g. 198.18.0.0/15 or 2001:db8::/32");
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad("not an IPv4 or IPv6 address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| bad(&format!("the prefix length must be 0..={max}")))?,
        };
        Ok(Cidr {
            addr: mask(addr, prefix),
            prefix,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Cidr {
    /// The key of the XDP program's LPM tries (`struct policy_lpm_key` in
    /// `redirect-ebpf/policy.h`): prefix length and 16 address bytes, IPv4 v4-mapped.
    pub fn lpm_key(&self) -> (u32, [u8; 16]) {
        match self.addr {
            IpAddr::V4(v4) => (96 + u32::from(self.prefix), v4.to_ipv6_mapped().octets()),
            IpAddr::V6(v6) => (u32::from(self.prefix), v6.octets()),
        }
    }

    /// Whether `addr` lies in this prefix (the same answer as the XDP program's lookup).
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.addr, addr) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => mask(addr, self.prefix) == self.addr,
            _ => false,
        }
    }
}

/// `addr` with every bit after the first `prefix` cleared.
fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

/// The sysctls of the responder's network namespace that shape echo replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostSysctls {
    /// `net.ipv4.ip_default_ttl`.
    pub ipv4_ttl: u8,
    /// `net.ipv6.conf.IFACE.hop_limit` (64 when IPv6 is disabled).
    pub ipv6_hop_limit: u8,
    /// `net.ipv4.icmp_echo_ignore_all` is non-zero.
    pub ignore_v4: bool,
    /// `net.ipv6.icmp.echo_ignore_all` is non-zero.
    pub ignore_v6: bool,
    /// `net.ipv6.flowlabel_reflect & 4` (reflect the label of echo requests).
    pub flowlabel_reflect: bool,
    /// `net.ipv6.auto_flowlabels` is 1 (opt-out) or 3 (forced): the kernel's ICMPv6 socket gets
    /// auto labels.
    pub auto_flowlabels: bool,
    /// `net.ipv6.flowlabel_state_ranges`.
    pub flowlabel_state_ranges: bool,
}

impl Default for HostSysctls {
    /// Linux's defaults.
    fn default() -> Self {
        HostSysctls {
            ipv4_ttl: 64,
            ipv6_hop_limit: 64,
            ignore_v4: false,
            ignore_v6: false,
            flowlabel_reflect: false,
            auto_flowlabels: true,
            flowlabel_state_ranges: false,
        }
    }
}

/// A sysctl that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {reason}")]
pub struct SysctlError {
    /// The file under /proc/sys.
    pub path: String,
    /// What went wrong.
    pub reason: String,
}

impl HostSysctls {
    /// Reads them from `/proc/sys` (this process's network namespace) for interface `iface`.
    pub fn read(iface: &str) -> Result<Self, SysctlError> {
        Self::read_from(Path::new("/proc/sys"), iface)
    }

    /// Reads them from a `/proc/sys`-shaped tree at `root` (tests use a temporary directory).
    /// The IPv6 files are optional (IPv6 disabled or not built): Linux's defaults then.
    pub fn read_from(root: &Path, iface: &str) -> Result<Self, SysctlError> {
        let d = HostSysctls::default();
        let ttl = read_int(&root.join("net/ipv4/ip_default_ttl"))?;
        let ignore_v4 = read_int(&root.join("net/ipv4/icmp_echo_ignore_all"))?;
        let ipv6 = |rel: &str, default: i64| -> Result<i64, SysctlError> {
            let path = root.join(rel);
            if path.exists() { read_int(&path) } else { Ok(default) }
        };
        let hop_limit = ipv6(&format!("net/ipv6/conf/{iface}/hop_limit"), 64)?;
        let byte = |v: i64, path: &str| {
            u8::try_from(v).ok().filter(|&b| b > 0).ok_or_else(|| SysctlError {
                path: root.join(path).display().to_string(),
                reason: format!("{v} is not 1..=255"),
            })
        };
        let auto = ipv6("net/ipv6/auto_flowlabels", 1)?;
        Ok(HostSysctls {
            ipv4_ttl: byte(ttl, "net/ipv4/ip_default_ttl")?,
            ipv6_hop_limit: byte(hop_limit, "net/ipv6/conf/IFACE/hop_limit")?,
            ignore_v4: ignore_v4 != 0,
            ignore_v6: ipv6("net/ipv6/icmp/echo_ignore_all", i64::from(d.ignore_v6))? != 0,
            flowlabel_reflect: ipv6("net/ipv6/flowlabel_reflect", 0)? & 4 != 0,
            auto_flowlabels: auto == 1 || auto == 3,
            flowlabel_state_ranges: ipv6("net/ipv6/flowlabel_state_ranges", 0)? != 0,
        })
    }

    /// The reply policy these sysctls give, with `--ttl` / `--hop-limit` overrides and the
    /// run's flow-label hash key.
    pub fn reply_policy(&self, ttl: Option<u8>, hop_limit: Option<u8>, key: [u64; 2]) -> ReplyPolicy {
        ReplyPolicy {
            ipv4_ttl: ttl.unwrap_or(self.ipv4_ttl),
            ipv6_hop_limit: hop_limit.unwrap_or(self.ipv6_hop_limit),
            flow_label: FlowLabelPolicy {
                reflect: self.flowlabel_reflect,
                auto: self.auto_flowlabels,
                state_ranges: self.flowlabel_state_ranges,
                key,
            },
        }
    }
}

fn read_int(path: &PathBuf) -> Result<i64, SysctlError> {
    let err = |reason: String| SysctlError {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    text.trim()
        .parse()
        .map_err(|_| err(format!("{:?} is not a number", text.trim())))
}

/// The reply policy shared by the monitor (writer) and the workers (readers): one atomic word,
/// so a worker checks it with one relaxed load per batch and never blocks. The flow-label key
/// does not change during a run and is not in the word; the worker keeps its own copy.
#[derive(Debug)]
pub struct LivePolicy {
    word: AtomicU64,
}

impl LivePolicy {
    /// A shared policy starting at `policy`.
    pub fn new(policy: ReplyPolicy) -> Self {
        LivePolicy {
            word: AtomicU64::new(pack(policy)),
        }
    }

    /// Publishes `policy` (its key is ignored).
    pub fn store(&self, policy: ReplyPolicy) {
        // Relaxed: the word is the whole message; no other memory is published with it.
        self.word.store(pack(policy), Ordering::Relaxed);
    }

    /// The current word: compare it with the last one seen before unpacking.
    pub fn word(&self) -> u64 {
        self.word.load(Ordering::Relaxed)
    }

    /// The policy of `word` with the flow-label hash `key`.
    pub fn unpack(word: u64, key: [u64; 2]) -> ReplyPolicy {
        let [ttl, hop_limit, flags, ..] = word.to_le_bytes();
        ReplyPolicy {
            ipv4_ttl: ttl,
            ipv6_hop_limit: hop_limit,
            flow_label: FlowLabelPolicy {
                reflect: flags & 1 != 0,
                auto: flags & 2 != 0,
                state_ranges: flags & 4 != 0,
                key,
            },
        }
    }
}

fn pack(p: ReplyPolicy) -> u64 {
    let f = p.flow_label;
    let flags = u8::from(f.reflect) | (u8::from(f.auto) << 1) | (u8::from(f.state_ranges) << 2);
    u64::from_le_bytes([p.ipv4_ttl, p.ipv6_hop_limit, flags, 0, 0, 0, 0, 0])
}

/// A random key for the flow-label hash of this run (from the std hasher's random keys, which
/// the standard library seeds from the OS once per process).
pub fn random_key() -> [u64; 2] {
    use std::hash::{BuildHasher, Hasher};
    let mut key = [0u64; 2];
    for (i, k) in key.iter_mut().enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        *k = h.finish();
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_mask() {
        let c: Cidr = "198.18.3.7/15".parse().unwrap();
        assert_eq!(c.to_string(), "198.18.0.0/15");
        assert_eq!(c.lpm_key().0, 96 + 15);
        assert!(c.contains("198.19.255.255".parse().unwrap()));
        assert!(!c.contains("198.20.0.1".parse().unwrap()));
        assert!(!c.contains("::ffff:198.18.0.1".parse().unwrap()), "families do not mix");
        let c: Cidr = "2001:db8::1".parse().unwrap();
        assert_eq!((c.to_string().as_str(), c.lpm_key().0), ("2001:db8::1/128", 128));
        let c: Cidr = "2001:db8:ffff::/33".parse().unwrap();
        assert_eq!(c.to_string(), "2001:db8:8000::/33");
        let c: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(c.contains("203.0.113.1".parse().unwrap()));
        assert_eq!(
            c.lpm_key(),
            (96, "::ffff:0.0.0.0".parse::<Ipv6Addr>().unwrap().octets())
        );
    }

    #[test]
    fn bad_cidrs_say_what_to_type() {
        for bad in [
            "",
            "198.18.0.0/33",
            "2001:db8::/129",
            "198.18.0.0/-1",
            "host/24",
            "198.18.0/24",
            "/8",
            "1.2.3.4/",
        ] {
            let err = bad.parse::<Cidr>().unwrap_err();
            assert!(err.contains("use e.g. 198.18.0.0/15"), "{bad}: {err}");
            assert!(!err.contains('\n'));
        }
    }

    #[test]
    fn the_live_word_round_trips() {
        let key = [1, 2];
        for (reflect, auto, state_ranges) in [(false, true, false), (true, false, true), (true, true, true)] {
            let p = ReplyPolicy {
                ipv4_ttl: 17,
                ipv6_hop_limit: 250,
                flow_label: FlowLabelPolicy {
                    reflect,
                    auto,
                    state_ranges,
                    key,
                },
            };
            let live = LivePolicy::new(ReplyPolicy::DEFAULT);
            live.store(p);
            assert_eq!(LivePolicy::unpack(live.word(), key), p);
        }
    }

    #[test]
    fn sysctls_are_read_from_a_proc_sys_tree() {
        let root = std::env::temp_dir().join(format!("afxdp-sysctl-{}", std::process::id()));
        let write = |rel: &str, v: &str| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, format!("{v}\n")).unwrap();
        };
        write("net/ipv4/ip_default_ttl", "42");
        write("net/ipv4/icmp_echo_ignore_all", "1");
        // No IPv6 files: Linux's defaults.
        let s = HostSysctls::read_from(&root, "eth0").unwrap();
        assert_eq!(
            s,
            HostSysctls {
                ipv4_ttl: 42,
                ignore_v4: true,
                ..HostSysctls::default()
            }
        );
        write("net/ipv6/conf/eth0/hop_limit", "7");
        write("net/ipv6/icmp/echo_ignore_all", "1");
        write("net/ipv6/flowlabel_reflect", "5");
        write("net/ipv6/auto_flowlabels", "2");
        write("net/ipv6/flowlabel_state_ranges", "1");
        let s = HostSysctls::read_from(&root, "eth0").unwrap();
        assert_eq!((s.ipv6_hop_limit, s.ignore_v6, s.flowlabel_reflect), (7, true, true));
        assert!(
            !s.auto_flowlabels,
            "2 (opt-in): the kernel's ICMPv6 socket does not opt in"
        );
        assert!(s.flowlabel_state_ranges);
        let p = s.reply_policy(Some(99), None, [3, 4]);
        assert_eq!((p.ipv4_ttl, p.ipv6_hop_limit, p.flow_label.key), (99, 7, [3, 4]));
        write("net/ipv4/ip_default_ttl", "0");
        let err = HostSysctls::read_from(&root, "eth0").unwrap_err();
        assert!(err.to_string().contains("ip_default_ttl"), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
