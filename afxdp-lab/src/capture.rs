//! `tcpdump -vvv` on one veth end, and what its text says about the echo replies.
//!
//! Capture on the client: tcpdump on the responder's own interface does not see frames that XDP
//! redirected or that an AF_XDP socket sent.

use std::collections::BTreeSet;
use std::time::Duration;

use super::exec::{Background, tool};
use super::{Endpoints, LabError, NetnsPair, Side};

/// The BPF filter for echo traffic of both families (untagged frames only; VLAN needs `vlan and ...`).
pub const ICMP_FILTER: &str = "icmp or icmp6";

/// How long tcpdump may take to open its socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long frames already on the wire get to reach tcpdump before it is interrupted.
const SETTLE: Duration = Duration::from_millis(200);

/// A running tcpdump; [`Capture::stop`] returns its text, dropping it kills it.
#[derive(Debug)]
pub struct Capture {
    process: Background,
}

impl Capture {
    /// Starts `tcpdump -i IF -n -vvv -l --immediate-mode FILTER` on `side`'s veth and returns once it
    /// really listens (its "listening on" line), so nothing sent afterwards is missed.
    pub fn start(pair: &NetnsPair, side: Side, filter: &str) -> Result<Self, LabError> {
        Self::start_on(pair, side, pair.ifname(side), filter)
    }

    /// Like [`Capture::start`], on interface `iface` of any [`Endpoints`]' `side` (the VM lab's
    /// tap, whose other end is a guest).
    pub fn start_on<E: Endpoints + ?Sized>(
        endpoints: &E,
        side: Side,
        iface: &str,
        filter: &str,
    ) -> Result<Self, LabError> {
        let mut cmd = endpoints.command_on(side, &tool("tcpdump")?.to_string_lossy(), None)?;
        // -n: no name lookups; -l: line-buffered; --immediate-mode: hand each frame over at once
        // (TPACKET_V3 otherwise batches them and an interrupt can lose the last block).
        cmd.args(["-i", iface, "-n", "-vvv", "-l", "--immediate-mode"]);
        cmd.arg(filter);
        let mut process = Background::spawn(cmd)?;
        process.wait_for_line("listening on", START_TIMEOUT)?;
        Ok(Capture { process })
    }

    /// Starts capturing echo traffic ([`ICMP_FILTER`]) on the client's veth.
    pub fn start_icmp(pair: &NetnsPair) -> Result<Self, LabError> {
        Self::start(pair, Side::Client, ICMP_FILTER)
    }

    /// Lets in-flight frames arrive, interrupts tcpdump (it flushes on SIGINT) and parses its text.
    pub fn stop(self) -> Result<CaptureText, LabError> {
        std::thread::sleep(SETTLE);
        let finished = self.process.stop(Duration::from_secs(3))?;
        let mut text = CaptureText::parse(&finished.stdout);
        text.stderr = finished.stderr;
        Ok(text)
    }
}

/// The text tcpdump printed, split into one record per frame.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureText {
    /// tcpdump's stdout, unchanged.
    pub raw: String,
    /// tcpdump's stderr ("listening on", "N packets captured", "M packets dropped by kernel").
    pub stderr: String,
    packets: Vec<String>,
}

impl CaptureText {
    /// Splits `-vvv` output into frames: a line that starts with a space or tab continues the frame
    /// above it (IPv4 prints the IP header on one line, the ICMP message on the next).
    pub fn parse(stdout: &str) -> Self {
        let mut packets: Vec<String> = Vec::new();
        for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
            match packets.last_mut() {
                Some(last) if line.starts_with([' ', '\t']) => {
                    last.push(' ');
                    last.push_str(line.trim());
                }
                _ => packets.push(line.trim().to_string()),
            }
        }
        CaptureText {
            raw: stdout.to_string(),
            stderr: String::new(),
            packets,
        }
    }

    /// One line per captured frame.
    pub fn packets(&self) -> &[String] {
        &self.packets
    }

    /// The frames that are echo replies (`ICMP echo reply` / `ICMP6, echo reply`).
    pub fn echo_replies(&self) -> impl Iterator<Item = &str> {
        self.packets
            .iter()
            .map(String::as_str)
            .filter(|p| p.contains("echo reply"))
    }

    /// The frames that are echo requests.
    pub fn echo_requests(&self) -> impl Iterator<Item = &str> {
        self.packets
            .iter()
            .map(String::as_str)
            .filter(|p| p.contains("echo request"))
    }

    /// How many echo replies were captured.
    pub fn echo_reply_count(&self) -> usize {
        self.echo_replies().count()
    }

    /// Frames with a checksum tcpdump found wrong: `wrong icmp cksum` (IPv4), `bad icmp6 cksum`
    /// (IPv6), `bad cksum` (IPv4 header), `bad udp cksum`...
    pub fn bad_checksum_packets(&self) -> Vec<&str> {
        self.packets
            .iter()
            .map(String::as_str)
            .filter(|p| {
                let p = p.to_ascii_lowercase();
                (p.contains("wrong") || p.contains("bad ")) && (p.contains("cksum") || p.contains("checksum"))
            })
            .collect()
    }

    /// The TTLs (IPv4 `ttl N`) and hop limits (IPv6 `hlim N`) of the echo replies.
    pub fn reply_ttls(&self) -> BTreeSet<u8> {
        self.echo_replies()
            .filter_map(|p| header_value(p, "ttl ").or_else(|| header_value(p, "hlim ")))
            .collect()
    }
}

/// The number after `key` in tcpdump's header summary, e.g. `(tos 0x0, ttl 64, id 1, ...)` → 64.
fn header_value(packet: &str, key: &str) -> Option<u8> {
    let start = packet.find(key)? + key.len();
    let digits: String = packet[start..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: &str = "\
21:15:39.221390 IP (tos 0x0, ttl 64, id 61851, offset 0, flags [DF], proto ICMP (1), length 48)
    198.18.0.2 > 198.18.0.1: ICMP echo request, id 6768, seq 1, length 28
21:15:39.221426 IP (tos 0x0, ttl 64, id 10064, offset 0, flags [none], proto ICMP (1), length 48)
    198.18.0.1 > 198.18.0.2: ICMP echo reply, id 6768, seq 1, length 28
21:15:39.221500 IP (tos 0x0, ttl 63, id 10065, offset 0, flags [none], proto ICMP (1), length 48)
    198.18.0.1 > 198.18.0.2: ICMP echo reply, id 6768, seq 2, length 28 (wrong icmp cksum 1234 (->abcd)!)
";
    const V6: &str = "\
21:15:39.226554 IP6 (flowlabel 0xc2156, hlim 64, next-header ICMPv6 (58) payload length: 64) 2001:db8:0:1::2 > 2001:db8:0:1::1: [icmp6 sum ok] ICMP6, echo request, id 6769, seq 1
21:15:39.226583 IP6 (flowlabel 0x322a8, hlim 255, next-header ICMPv6 (58) payload length: 64) 2001:db8:0:1::1 > 2001:db8:0:1::2: [bad icmp6 cksum 0x1 -> 0x2!] ICMP6, echo reply, id 6769, seq 1
";

    #[test]
    fn joins_continuation_lines_and_counts_replies() {
        let text = CaptureText::parse(V4);
        assert_eq!(text.packets().len(), 3);
        assert_eq!(text.echo_reply_count(), 2);
        assert_eq!(text.echo_requests().count(), 1);
        assert_eq!(text.reply_ttls(), BTreeSet::from([63, 64]));
        let bad = text.bad_checksum_packets();
        assert_eq!(bad.len(), 1);
        assert!(bad[0].contains("seq 2"));
    }

    #[test]
    fn reads_ipv6_hop_limit_and_bad_checksum() {
        let text = CaptureText::parse(V6);
        assert_eq!(text.echo_reply_count(), 1);
        assert_eq!(text.reply_ttls(), BTreeSet::from([255]));
        assert_eq!(text.bad_checksum_packets().len(), 1);
    }

    #[test]
    fn good_checksums_are_not_flagged() {
        let ok = V6.replace("[bad icmp6 cksum 0x1 -> 0x2!]", "[icmp6 sum ok]");
        assert!(CaptureText::parse(&ok).bad_checksum_packets().is_empty());
        assert!(
            CaptureText::parse(&V4.replace(" (wrong icmp cksum 1234 (->abcd)!)", ""))
                .bad_checksum_packets()
                .is_empty()
        );
    }
}
