//! The validated configuration: one [`Config`] is built from the command line, checked once,
//! and handed to every worker. Parsers here give one-line messages that say what to type.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use crate::options::{Engine, XdpMode, XskMode};
use crate::policy::Cidr;
use afxdp_xsk::XskConfig;

/// `--queues`: `all` (every RX/combined channel of the interface, known once it is looked up)
/// or a list such as `0-3`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueList {
    /// Every queue of the interface.
    All,
    /// These queues, in this order.
    Ids(IdList),
}

impl FromStr for QueueList {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().eq_ignore_ascii_case("all") {
            return Ok(QueueList::All);
        }
        s.parse::<IdList>()
            .map(QueueList::Ids)
            .map_err(|e| e.replace("use a list like 0-3 or 0,2", "use all, or a list like 0-3 or 0,2"))
    }
}

impl QueueList {
    /// The queue ids, `all` meaning `0..count`.
    pub fn resolve(&self, count: u32) -> Vec<u32> {
        match self {
            QueueList::All => (0..count).collect(),
            QueueList::Ids(ids) => ids.0.clone(),
        }
    }
}

/// A parsed list of small numbers such as `0-3` or `0,2,5-6`, in the order given, without
/// duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdList(pub Vec<u32>);

impl FromStr for IdList {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        const MAX_IDS: u32 = 4096;
        let bad = |why: &str| format!("{s:?} is not a valid list ({why}): use a list like 0-3 or 0,2");
        let mut ids = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            let (lo, hi) = match part.split_once('-') {
                Some((lo, hi)) => (lo.trim(), hi.trim()),
                None => (part, part),
            };
            let lo: u32 = lo
                .parse()
                .map_err(|_| bad(&format!("{part:?} is not a number or range")))?;
            let hi: u32 = hi
                .parse()
                .map_err(|_| bad(&format!("{part:?} is not a number or range")))?;
            if lo > hi {
                return Err(bad(&format!("range {part} goes backwards")));
            }
            if hi >= MAX_IDS {
                return Err(bad(&format!("{hi} is too large")));
            }
            for id in lo..=hi {
                if ids.contains(&id) {
                    return Err(bad(&format!("{id} appears twice")));
                }
                ids.push(id);
            }
        }
        Ok(IdList(ids))
    }
}

impl fmt::Display for IdList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Interface to serve.
    pub iface: String,
    /// Queues to serve, one worker each.
    pub queues: Vec<u32>,
    /// CPU of each worker (same length as `queues`).
    pub cpus: Vec<usize>,
    /// Requested AF_XDP bind mode.
    pub mode: XskMode,
    /// How the XDP program is attached.
    pub xdp_mode: XdpMode,
    /// Ring and frame sizes of every socket.
    pub xsk: XskConfig,
    /// Frames taken from the RX ring per batch.
    pub batch: u32,
    /// How a worker waits when there is no traffic (sleep, adaptive spin, busy poll).
    pub wait: crate::worker::Wait,
    /// Addresses to answer for; empty means "the interface's own addresses".
    pub addresses: Vec<IpAddr>,
    /// IPv4 TTL of replies; `None` means the host default.
    pub ttl: Option<u8>,
    /// IPv6 hop limit of replies; `None` means the interface's hop limit.
    pub hop_limit: Option<u8>,
    /// Live statistics interval; `None` disables them.
    pub stats_interval: Option<Duration>,
    /// Check the UMEM frame accounting after every loop turn (tests).
    pub check_frames: bool,
    /// `--trace N`: print the journey of each worker's first N frames (0: off).
    pub trace: u32,
    /// Which engine handles the requests (AF_XDP workers, in-kernel XDP_TX, or drop).
    pub engine: Engine,
    /// Where to serve Prometheus metrics (`--metrics-addr`); `None`: no endpoint.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// `--allow-from`: when not empty, only these sources are answered.
    pub allow_from: Vec<Cidr>,
    /// `--deny-from`: these sources are never answered (passed to the kernel).
    pub deny_from: Vec<Cidr>,
    /// `--rate-limit-per-source`: owned echo requests per second and source answered; the
    /// rest is passed to the kernel. `None`: no limit.
    pub rate_limit_per_source: Option<u32>,
}

impl Config {
    /// Checks the parts that can be checked without looking at the system.
    pub fn validate(&self) -> Result<(), String> {
        self.xsk.validate()?;
        if self.queues.is_empty() {
            return Err("--queues is empty: give at least one queue, e.g. --queues 0".into());
        }
        if self.cpus.len() != self.queues.len() {
            return Err(format!(
                "--cpus lists {} CPUs for {} queues: give one CPU per queue",
                self.cpus.len(),
                self.queues.len()
            ));
        }
        for (list, option) in [(&self.allow_from, "--allow-from"), (&self.deny_from, "--deny-from")] {
            if list.len() > crate::policy::MAX_SOURCE_RULES {
                return Err(format!(
                    "{option} is given {} times: at most {} CIDRs fit in the XDP program's list; merge them into shorter prefixes",
                    list.len(),
                    crate::policy::MAX_SOURCE_RULES
                ));
            }
        }
        if self.batch == 0 || self.batch > self.xsk.rx_size {
            return Err(format!(
                "--batch {} is not valid: use 1..={} (the RX ring size)",
                self.batch, self.xsk.rx_size
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(s: &str) -> Result<Vec<u32>, String> {
        s.parse::<IdList>().map(|l| l.0)
    }

    #[test]
    fn lists_and_ranges() {
        assert_eq!(ids("0-3").unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(ids("0,2").unwrap(), vec![0, 2]);
        assert_eq!(ids("5").unwrap(), vec![5]);
        assert_eq!(ids("3,0-1").unwrap(), vec![3, 0, 1]);
        assert_eq!(ids(" 1 , 2 ").unwrap(), vec![1, 2]);
    }

    #[test]
    fn bad_lists_say_what_to_type() {
        for bad in ["", "a", "1-", "3-1", "1,1", "0-2,2", "-1", "99999", "1;2"] {
            let err = ids(bad).unwrap_err();
            assert!(err.contains("use a list like 0-3 or 0,2"), "{bad}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    fn config() -> Config {
        Config {
            iface: "eth0".into(),
            queues: vec![0, 1],
            cpus: vec![0, 1],
            mode: XskMode::Auto,
            xdp_mode: XdpMode::Auto,
            xsk: XskConfig::default(),
            batch: 64,
            wait: crate::worker::Wait::DEFAULT,
            addresses: vec![],
            ttl: None,
            hop_limit: None,
            stats_interval: None,
            check_frames: false,
            trace: 0,
            engine: Engine::AfXdp,
            metrics_addr: None,
            allow_from: vec![],
            deny_from: vec![],
            rate_limit_per_source: None,
        }
    }

    #[test]
    fn validation() {
        assert_eq!(config().validate(), Ok(()));
        let mut c = config();
        c.cpus = vec![0];
        assert!(c.validate().unwrap_err().contains("one CPU per queue"));
        let mut c = config();
        c.batch = 0;
        assert!(c.validate().is_err());
        let mut c = config();
        c.xsk.frame_size = 3000;
        assert!(c.validate().unwrap_err().contains("use 2048 or 4096"));
        let mut c = config();
        c.xsk.rx_size = 1000;
        assert!(c.validate().unwrap_err().contains("--rx-size"));
        let mut c = config();
        c.xsk.fill_size = 1024;
        assert!(c.validate().unwrap_err().contains("--fill-size"));
        let mut c = config();
        c.deny_from = vec!["198.18.0.0/15".parse().unwrap(); crate::policy::MAX_SOURCE_RULES + 1];
        assert!(c.validate().unwrap_err().contains("--deny-from is given 1025 times"));
    }
}
