//! The kernel's SNMP counters of one namespace, absolute, named as `nstat` names them.
//!
//! Read straight from `/proc/net/snmp`, `/proc/net/snmp6` and `/proc/net/netstat` inside the
//! namespace rather than from `nstat`: `nstat` prints deltas against a history file kept in `/tmp`
//! (shared by every namespace on the machine), so two runs or two namespaces disturb each other.

use std::collections::BTreeMap;

use super::exec::{run_ok, tool};
use super::{Endpoints, LabError, Side};

/// Absolute counter values at one moment, e.g. `IcmpInEchoReps`, `Icmp6InEchoReplies`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Nstat {
    counters: BTreeMap<String, u64>,
}

/// Counters every snapshot must have: the ones the echo tests read.
const REQUIRED: &[&str] = &[
    "IcmpInEchoReps",
    "IcmpInCsumErrors",
    "Icmp6InEchoReplies",
    "Icmp6InCsumErrors",
];

impl Nstat {
    /// Reads the counters of `side`'s namespace now.
    pub fn read(pair: &impl Endpoints, side: Side) -> Result<Self, LabError> {
        let mut cmd = pair.command_on(side, &tool("cat")?.to_string_lossy(), None)?;
        cmd.args(["/proc/net/snmp", "/proc/net/snmp6", "/proc/net/netstat"]);
        Self::parse(&run_ok(cmd, "reading SNMP counters")?)
    }

    /// Parses the concatenated text of `/proc/net/snmp`, `/proc/net/snmp6` and `/proc/net/netstat`.
    ///
    /// `snmp` and `netstat` hold pairs of lines (`Icmp: InMsgs InErrors ...` then `Icmp: 3 0 ...`),
    /// named `Icmp` + `InMsgs`; `snmp6` holds one `Icmp6InMsgs 3` per line. Values that are not
    /// counters (`Tcp: MaxConn -1`) are skipped.
    pub fn parse(text: &str) -> Result<Self, LabError> {
        let mut counters = BTreeMap::new();
        let mut header: Option<(&str, Vec<&str>)> = None;
        for line in text.lines() {
            if let Some((prefix, rest)) = line.split_once(':') {
                let words: Vec<&str> = rest.split_whitespace().collect();
                match header.take() {
                    Some((head, names)) if head == prefix => {
                        if names.len() != words.len() {
                            return Err(LabError::Parse {
                                what: "/proc/net/snmp",
                                detail: format!("{prefix}: {} names but {} values", names.len(), words.len()),
                            });
                        }
                        for (name, value) in names.iter().zip(words) {
                            if let Ok(value) = value.parse::<u64>() {
                                counters.insert(format!("{prefix}{name}"), value);
                            }
                        }
                    }
                    _ => header = Some((prefix, words)),
                }
            } else if let [name, value] = line.split_whitespace().collect::<Vec<_>>()[..]
                && let Ok(value) = value.parse::<u64>()
            {
                counters.insert(name.to_string(), value);
            }
        }
        let stat = Nstat { counters };
        if let Some(missing) = REQUIRED.iter().find(|name| !stat.counters.contains_key(**name)) {
            return Err(LabError::Parse {
                what: "/proc/net/snmp and /proc/net/snmp6",
                detail: format!("no {missing} counter (is IPv6 enabled?)"),
            });
        }
        Ok(stat)
    }

    /// The value of `name`, or `None` if this kernel has no such counter.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.counters.get(name).copied()
    }

    /// The value of `name`; a counter this kernel lacks is an error (a typo must not read as 0).
    pub fn counter(&self, name: &str) -> Result<u64, LabError> {
        self.get(name).ok_or_else(|| LabError::Parse {
            what: "SNMP counters",
            detail: format!("no counter named {name}"),
        })
    }

    /// How much each counter grew since `earlier` (a snapshot of the same namespace).
    pub fn since(&self, earlier: &Nstat) -> Nstat {
        let counters = self
            .counters
            .iter()
            .map(|(name, &now)| {
                let before = earlier.counters.get(name).copied().unwrap_or(0);
                (name.clone(), now.saturating_sub(before))
            })
            .collect();
        Nstat { counters }
    }

    /// The non-zero counters, by name (handy in assertion messages).
    pub fn non_zero(&self) -> BTreeMap<&str, u64> {
        self.counters
            .iter()
            .filter(|&(_, &v)| v != 0)
            .map(|(k, &v)| (k.as_str(), v))
            .collect()
    }

    /// All counters, by name.
    pub fn counters(&self) -> &BTreeMap<String, u64> {
        &self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNMP: &str = "\
Ip: Forwarding DefaultTTL InReceives
Ip: 2 64 12
Icmp: InMsgs InErrors InCsumErrors InEchoReps InEchos OutEchoReps
Icmp: 7 1 1 5 0 0
Tcp: RtoAlgorithm MaxConn ActiveOpens
Tcp: 1 -1 0
";
    const SNMP6: &str = "\
Ip6InReceives                   \t10
Icmp6InCsumErrors               \t0
Icmp6InEchoReplies              \t4
";
    const NETSTAT: &str = "TcpExt: SyncookiesSent EmbryonicRsts\nTcpExt: 3 0\n";

    #[test]
    fn parses_all_three_files_with_nstat_names() {
        let stat = Nstat::parse(&format!("{SNMP}{SNMP6}{NETSTAT}")).unwrap();
        assert_eq!(stat.get("IcmpInEchoReps"), Some(5));
        assert_eq!(stat.get("IcmpInCsumErrors"), Some(1));
        assert_eq!(stat.get("IpDefaultTTL"), Some(64));
        assert_eq!(stat.get("Icmp6InEchoReplies"), Some(4));
        assert_eq!(stat.get("TcpExtSyncookiesSent"), Some(3));
        assert_eq!(stat.get("TcpMaxConn"), None, "-1 is not a counter");
        assert!(stat.counter("IcmpInEchoRepz").is_err());
    }

    #[test]
    fn since_gives_growth() {
        let before = Nstat::parse(&format!("{SNMP}{SNMP6}")).unwrap();
        let after = Nstat::parse(&format!("{}{SNMP6}", SNMP.replace("7 1 1 5 0 0", "9 1 1 7 0 0"))).unwrap();
        let delta = after.since(&before);
        assert_eq!(delta.get("IcmpInEchoReps"), Some(2));
        assert_eq!(delta.get("IcmpInMsgs"), Some(2));
        assert_eq!(delta.get("Icmp6InEchoReplies"), Some(0));
        assert_eq!(
            delta.non_zero(),
            BTreeMap::from([("IcmpInEchoReps", 2), ("IcmpInMsgs", 2)])
        );
    }

    #[test]
    fn missing_echo_counters_are_an_error() {
        let err = Nstat::parse(SNMP).unwrap_err().to_string();
        assert!(err.contains("Icmp6InEchoReplies"), "{err}");
    }

    #[test]
    fn mismatched_header_and_values_are_an_error() {
        assert!(Nstat::parse("Icmp: InMsgs InErrors\nIcmp: 1\n").is_err());
    }
}
