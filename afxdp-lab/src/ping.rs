//! iputils `ping` from the client namespace, always bounded (`-c` and `-w`), and its output parsed.
//!
//! A green ping proves nothing about checksums (`ping -4` counts replies with a wrong ICMP checksum as
//! received): pair it with [`super::Nstat`] or [`super::Capture`].

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;

use super::exec::{describe, run, tail, tool};
use super::{Endpoints, Family, LabError, Side};

/// The longest a single ping run may last, whatever the caller asks for.
pub const MAX_DEADLINE: Duration = Duration::from_secs(300);

/// The most echo requests a single ping run may send.
pub const MAX_COUNT: u32 = 10_000_000;

/// What to send: one bounded `ping` run (build with [`PingSpec::new`] and the setters).
#[derive(Debug, Clone, PartialEq)]
pub struct PingSpec {
    family: Family,
    count: u32,
    size: Option<u16>,
    pattern: Option<String>,
    interval: Option<Duration>,
    flood: bool,
    quiet: bool,
    ttl: Option<u8>,
    deadline: Option<Duration>,
    cpu: Option<usize>,
    target: Option<IpAddr>,
    from: Side,
}

impl PingSpec {
    /// `count` echo requests of `family` from the client to the responder's address.
    pub fn new(family: Family, count: u32) -> Self {
        PingSpec {
            family,
            count,
            size: None,
            pattern: None,
            interval: None,
            flood: false,
            quiet: false,
            ttl: None,
            deadline: None,
            cpu: None,
            target: None,
            from: Side::Client,
        }
    }

    /// Payload bytes per request (`-s`); ping's default is 56.
    pub fn size(mut self, bytes: u16) -> Self {
        self.size = Some(bytes);
        self
    }

    /// Payload fill pattern in hex, up to 16 bytes (`-p`, e.g. `"deadbeef"`).
    pub fn pattern(mut self, hex: &str) -> Self {
        self.pattern = Some(hex.to_string());
        self
    }

    /// Time between requests (`-i`); ping's default is 1 s.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = Some(interval);
        self
    }

    /// Flood mode (`-f`): a request per reply, or 100 per second without replies; implies quiet output.
    pub fn flood(mut self) -> Self {
        self.flood = true;
        self
    }

    /// Summary only (`-q`): no per-reply lines, so no TTLs in the report.
    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }

    /// TTL / hop limit of the requests (`-t`).
    pub fn ttl(mut self, ttl: u8) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Hard limit for the whole run (`-w`, rounded up to whole seconds, at most [`MAX_DEADLINE`]);
    /// by default the time `count` requests need plus 3 s.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Runs ping on one CPU (`taskset -c`); with [`super::NetnsPair::steer_client_queue`] this picks the
    /// queue its requests arrive on.
    pub fn pinned_cpu(mut self, cpu: usize) -> Self {
        self.cpu = Some(cpu);
        self
    }

    /// Pings this address instead of the responder's; it must be in the lab's ranges.
    pub fn target(mut self, addr: IpAddr) -> Self {
        self.target = Some(addr);
        self
    }

    /// Pings from the responder's namespace (towards the client by default).
    pub fn from_responder(mut self) -> Self {
        self.from = Side::Responder;
        self
    }

    /// The `-w` deadline this spec runs with.
    pub fn effective_deadline(&self) -> Duration {
        let wanted = self.deadline.unwrap_or_else(|| {
            let gap = if self.flood {
                Duration::from_millis(10) // the rate without replies
            } else {
                self.interval.unwrap_or(Duration::from_secs(1))
            };
            gap.saturating_mul(self.count) + Duration::from_secs(3)
        });
        let whole_secs = wanted.as_secs() + u64::from(wanted.subsec_nanos() > 0);
        Duration::from_secs(whole_secs.clamp(1, MAX_DEADLINE.as_secs()))
    }

    fn validate(&self) -> Result<(), LabError> {
        let bad = |msg: String| Err(LabError::Config(msg));
        if !(1..=MAX_COUNT).contains(&self.count) {
            return bad(format!("ping count {}: must be 1..={MAX_COUNT}", self.count));
        }
        if let Some(pattern) = &self.pattern
            && (pattern.is_empty() || pattern.len() > 32 || !pattern.chars().all(|c| c.is_ascii_hexdigit()))
        {
            return bad(format!("ping pattern {pattern:?}: must be 1 to 32 hex digits"));
        }
        if let Some(target) = self.target {
            let allowed = match target {
                IpAddr::V4(a) => a.octets()[0] == 198 && a.octets()[1] & 0xfe == 18,
                IpAddr::V6(a) => a.segments()[..2] == [0x2001, 0x0db8],
            };
            let family_ok = matches!(
                (target, self.family),
                (IpAddr::V4(_), Family::V4) | (IpAddr::V6(_), Family::V6)
            );
            if !allowed || !family_ok {
                return bad(format!(
                    "ping target {target}: must be a {:?} address in 198.18.0.0/15 or 2001:db8::/32",
                    self.family
                ));
            }
        }
        Ok(())
    }
}

/// Round-trip times from ping's `rtt min/avg/max/mdev` line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RttStats {
    /// Fastest reply.
    pub min: Duration,
    /// Mean.
    pub avg: Duration,
    /// Slowest reply.
    pub max: Duration,
    /// Mean deviation.
    pub mdev: Duration,
}

/// What one ping run reported.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PingReport {
    /// Requests sent ("N packets transmitted").
    pub transmitted: u64,
    /// Distinct replies received ("M received"), duplicates not included.
    pub received: u64,
    /// Duplicate replies ("+D duplicates").
    pub duplicates: u64,
    /// Replies ping itself found corrupted ("+C corrupted").
    pub corrupted: u64,
    /// ICMP errors received instead of replies ("+E errors").
    pub errors: u64,
    /// Per-reply lines printed (none with `-q` or `-f`).
    pub reply_lines: u64,
    /// Per-reply lines ping flagged "(BAD CHECKSUM!)".
    pub bad_checksum_lines: u64,
    /// TTL (IPv4) or hop limit (IPv6) values seen in reply lines.
    pub ttls_seen: BTreeSet<u8>,
    /// Round-trip times, when at least one reply came.
    pub rtt: Option<RttStats>,
    /// ping's exit code (0: all replies; 1: some missing; 2: error).
    pub exit_code: Option<i32>,
    /// The command line that ran.
    pub command: String,
    /// ping's stdout, unchanged.
    pub raw: String,
}

impl PingReport {
    /// Requests that got no reply.
    pub fn lost(&self) -> u64 {
        self.transmitted.saturating_sub(self.received)
    }

    /// Parses iputils ping output (stdout); fails when there is no statistics line.
    pub fn parse(stdout: &str) -> Result<Self, LabError> {
        let mut report = PingReport {
            raw: stdout.to_string(),
            ..PingReport::default()
        };
        let mut summary_seen = false;
        for line in stdout.lines() {
            let line = line.trim();
            if line.contains(" bytes from ") && line.contains("icmp_seq=") {
                report.reply_lines += 1;
                if line.contains("BAD CHECKSUM") {
                    report.bad_checksum_lines += 1;
                }
                if let Some(ttl) = field(line, "ttl=").and_then(|v| v.parse().ok()) {
                    report.ttls_seen.insert(ttl);
                }
            } else if line.contains("packets transmitted") {
                summary_seen = true;
                parse_summary(line, &mut report)?;
            } else if let Some(values) = line.strip_prefix("rtt min/avg/max/mdev = ") {
                report.rtt = Some(parse_rtt(values)?);
            }
        }
        if !summary_seen {
            return Err(LabError::Parse {
                what: "ping output",
                detail: format!("no \"packets transmitted\" line in {:?}", tail(stdout)),
            });
        }
        Ok(report)
    }
}

/// The value after `key` up to the next space, e.g. `field("ttl=64 time=1", "ttl=") == Some("64")`.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(key)? + key.len();
    line[start..].split_whitespace().next()
}

/// `5 packets transmitted, 4 received, +1 duplicates, +2 errors, 20% packet loss, time 4005ms`
fn parse_summary(line: &str, report: &mut PingReport) -> Result<(), LabError> {
    for part in line.split(", ") {
        let mut words = part.split_whitespace();
        let (Some(number), Some(label)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(value) = number.trim_start_matches('+').parse::<u64>() else {
            continue;
        };
        match label {
            "packets" => report.transmitted = value,
            "received" => report.received = value,
            "duplicates" => report.duplicates = value,
            "corrupted" => report.corrupted = value,
            "errors" => report.errors = value,
            _ => {}
        }
    }
    if !line.contains(" received") {
        return Err(LabError::Parse {
            what: "ping summary",
            detail: format!("no \"received\" count in {line:?}"),
        });
    }
    Ok(())
}

/// `0.048/0.150/0.252/0.102 ms` (flood mode appends `, ipg/ewma ...`).
fn parse_rtt(values: &str) -> Result<RttStats, LabError> {
    let numbers = values.split_whitespace().next().unwrap_or_default();
    let ms: Vec<f64> = numbers.split('/').filter_map(|v| v.parse().ok()).collect();
    let [min, avg, max, mdev] = ms[..] else {
        return Err(LabError::Parse {
            what: "ping rtt line",
            detail: format!("expected min/avg/max/mdev, got {values:?}"),
        });
    };
    let ms = |v: f64| Duration::from_secs_f64(v.max(0.0) / 1000.0);
    Ok(RttStats {
        min: ms(min),
        avg: ms(avg),
        max: ms(max),
        mdev: ms(mdev),
    })
}

/// The `ip netns exec NS [taskset -c CPU] ping ...` command for `spec`, to run it in the background
/// (with [`super::Background`]) and parse its stdout with [`PingReport::parse`].
pub fn ping_command(pair: &impl Endpoints, spec: &PingSpec) -> Result<Command, LabError> {
    spec.validate()?;
    let ping = tool("ping")?;
    let mut cmd = pair.command_on(spec.from, &ping.to_string_lossy(), spec.cpu)?;
    let target = spec
        .target
        .unwrap_or_else(|| pair.address_of(spec.from.peer(), spec.family));
    cmd.arg(match spec.family {
        Family::V4 => "-4",
        Family::V6 => "-6",
    });
    // -n: never resolve names (no DNS traffic, ever).
    cmd.args(["-n", "-c", &spec.count.to_string()]);
    cmd.args(["-w", &spec.effective_deadline().as_secs().to_string()]);
    if let Some(size) = spec.size {
        cmd.args(["-s", &size.to_string()]);
    }
    if let Some(pattern) = &spec.pattern {
        cmd.args(["-p", pattern]);
    }
    if let Some(interval) = spec.interval {
        cmd.args(["-i", &format!("{:.6}", interval.as_secs_f64())]);
    }
    if let Some(ttl) = spec.ttl {
        cmd.args(["-t", &ttl.to_string()]);
    }
    if spec.flood {
        cmd.arg("-f");
    }
    if spec.quiet {
        cmd.arg("-q");
    }
    cmd.arg(target.to_string());
    Ok(cmd)
}

/// Runs one bounded ping and parses what it printed.
///
/// Missing replies are not an error (look at [`PingReport::received`]); a ping that could not send at
/// all (no summary line) is, with its stderr.
pub fn ping(pair: &impl Endpoints, spec: &PingSpec) -> Result<PingReport, LabError> {
    let cmd = ping_command(pair, spec)?;
    let command = describe(&cmd);
    // ping stops itself at -w; the extra time only matters if it hangs anyway.
    let output = run(cmd, "ping", spec.effective_deadline() + Duration::from_secs(5))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut report = PingReport::parse(&stdout).map_err(|err| LabError::CommandFailed {
        what: "ping".into(),
        command: command.clone(),
        status: output.status.to_string(),
        stderr: format!("{} ({err})", tail(&String::from_utf8_lossy(&output.stderr))),
    })?;
    report.exit_code = output.status.code();
    report.command = command;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4_OK: &str = "\
PATTERN: 0xabcd
PING 198.18.0.1 (198.18.0.1) 20(48) bytes of data.
28 bytes from 198.18.0.1: icmp_seq=1 ttl=64 time=0.063 ms
28 bytes from 198.18.0.1: icmp_seq=2 ttl=63 time=0.050 ms

--- 198.18.0.1 ping statistics ---
2 packets transmitted, 2 received, 0% packet loss, time 1001ms
rtt min/avg/max/mdev = 0.050/0.056/0.063/0.006 ms
";

    #[test]
    fn parses_replies_ttls_and_rtt() {
        let r = PingReport::parse(V4_OK).unwrap();
        assert_eq!((r.transmitted, r.received, r.lost()), (2, 2, 0));
        assert_eq!(r.reply_lines, 2);
        assert_eq!(r.ttls_seen, BTreeSet::from([63, 64]));
        let rtt = r.rtt.unwrap();
        assert_eq!(rtt.min, Duration::from_micros(50));
        assert_eq!(rtt.max, Duration::from_micros(63));
    }

    #[test]
    fn parses_v6_duplicates_errors_and_flood_rtt() {
        let out = "\
PING 2001:db8:0:1::1(2001:db8:0:1::1) 56 data bytes
64 bytes from 2001:db8:0:1::1: icmp_seq=1 ttl=64 time=0.087 ms
64 bytes from 2001:db8:0:1::1: icmp_seq=1 ttl=64 time=0.090 ms (DUP!)

--- 2001:db8:0:1::1 ping statistics ---
3 packets transmitted, 1 received, +1 duplicates, +2 errors, 66.6667% packet loss, time 2003ms
rtt min/avg/max/mdev = 0.087/0.088/0.090/0.001 ms, ipg/ewma 1.234/0.088 ms
";
        let r = PingReport::parse(out).unwrap();
        assert_eq!((r.transmitted, r.received, r.duplicates, r.errors), (3, 1, 1, 2));
        assert_eq!(r.lost(), 2);
        assert_eq!(r.ttls_seen, BTreeSet::from([64]));
        assert!(r.rtt.is_some());
    }

    #[test]
    fn parses_total_loss_without_rtt() {
        let out = "PING 198.18.0.77 (198.18.0.77) 56(84) bytes of data.\n\n--- 198.18.0.77 ping statistics ---\n\
                   2 packets transmitted, 0 received, 100% packet loss, time 1020ms\n\n";
        let r = PingReport::parse(out).unwrap();
        assert_eq!((r.transmitted, r.received, r.reply_lines), (2, 0, 0));
        assert_eq!(r.rtt, None);
    }

    #[test]
    fn counts_lines_flagged_bad_checksum() {
        let out = "64 bytes from 198.18.0.1: icmp_seq=1 ttl=64 time=0.1 ms (BAD CHECKSUM!)\n\
                   1 packets transmitted, 1 received, 0% packet loss, time 0ms\n";
        assert_eq!(PingReport::parse(out).unwrap().bad_checksum_lines, 1);
    }

    #[test]
    fn output_without_summary_is_an_error() {
        assert!(PingReport::parse("ping: connect: Network is unreachable\n").is_err());
    }

    #[test]
    fn deadline_defaults_cover_the_run_and_are_capped() {
        let spec = PingSpec::new(Family::V4, 5).interval(Duration::from_millis(200));
        assert_eq!(spec.effective_deadline(), Duration::from_secs(4));
        assert_eq!(
            PingSpec::new(Family::V4, 1).effective_deadline(),
            Duration::from_secs(4)
        );
        let huge = PingSpec::new(Family::V4, MAX_COUNT);
        assert_eq!(huge.effective_deadline(), MAX_DEADLINE);
        let short = PingSpec::new(Family::V4, 1).deadline(Duration::from_millis(1500));
        assert_eq!(short.effective_deadline(), Duration::from_secs(2));
    }

    #[test]
    fn specs_outside_the_rules_are_refused() {
        assert!(PingSpec::new(Family::V4, 0).validate().is_err());
        assert!(PingSpec::new(Family::V4, 1).pattern("xyz").validate().is_err());
        assert!(
            PingSpec::new(Family::V4, 1)
                .pattern(&"ab".repeat(17))
                .validate()
                .is_err()
        );
        let outside = PingSpec::new(Family::V4, 1).target("10.0.0.1".parse().unwrap());
        assert!(outside.validate().is_err());
        let wrong_family = PingSpec::new(Family::V4, 1).target("2001:db8::1".parse().unwrap());
        assert!(wrong_family.validate().is_err());
        let fine = PingSpec::new(Family::V6, 1).target("2001:db8::99".parse().unwrap());
        assert!(fine.validate().is_ok());
    }
}
