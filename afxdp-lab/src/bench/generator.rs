//! The load generator side of the bench: one bounded load run from the client namespace, measured.
//!
//! Two generators sit behind [`Generator`]:
//!
//! - [`Generator::Flood`]: `afxdp-responder flood … --json`, the project's AF_XDP generator. It sends
//!   from AF_XDP TX rings, receives the replies through its own XDP program, verifies each one and
//!   reports latency percentiles from a timestamp in the payload.
//! - [`Generator::PingStandIn`]: **STAND-IN**, used only while this build has no `flood` command.
//!   iputils `ping -f` (max rate) or `ping -i` (fixed rate), one pinned process per queue; replies
//!   and checksum errors are taken from the client's SNMP counters (iputils `ping -4` counts replies
//!   with a wrong checksum as received). It is far slower than the responders it measures (one
//!   system call per request and per reply), reports only the average and maximum round trip, and
//!   its numbers measure ping more than the responder. Replace it by `flood` wherever it exists.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::super::exec::{describe, run, tail, tool};
use super::super::{Background, Family, LabError, NetnsPair, Nstat, PingReport, Side, mac_string};

/// Request rate of a load run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rate {
    /// As fast as the generator can send.
    Max,
    /// This many requests per second in total (over all queues).
    Pps(u64),
}

/// What one load run sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// IPv4 or ICMPv6 echo requests.
    pub family: Family,
    /// Size of each request's IP packet in bytes (IP header included, Ethernet not).
    pub ip_size: u16,
    /// Request rate.
    pub rate: Rate,
    /// How long to send.
    pub duration: Duration,
    /// Client TX queues to send from, `0..queues` (each arrives on the responder's RX queue of the
    /// same number).
    pub queues: u32,
}

/// The most requests per second the bench ever asks for at "max" rate, to bound the count too.
const MAX_PPS_BOUND: u64 = 20_000_000;

impl Load {
    /// The most requests this run may send: the rate (or [`MAX_PPS_BOUND`]) times the duration.
    pub fn count_bound(&self) -> u64 {
        let pps = match self.rate {
            Rate::Max => MAX_PPS_BOUND,
            Rate::Pps(pps) => pps,
        };
        ((pps as f64 * self.duration.as_secs_f64()).ceil() as u64).max(1)
    }
}

/// Round-trip latency in microseconds; `None` where the generator does not measure it.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// 99.9th percentile.
    pub p999: Option<f64>,
    /// Slowest reply.
    pub max: Option<f64>,
    /// Mean (the ping stand-in's only central figure).
    pub avg: Option<f64>,
}

/// What a load run measured on the generator's side.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Measured {
    /// Requests sent.
    pub sent: u64,
    /// Replies received (correct or not).
    pub replies: u64,
    /// Replies that passed every check.
    pub correct: u64,
    /// Replies that failed a check.
    pub wrong: u64,
    /// Requests without a reply.
    pub lost: u64,
    /// Sending time in seconds.
    pub duration_s: f64,
    /// Requests per second.
    pub sent_per_s: f64,
    /// Replies per second.
    pub replies_per_s: f64,
    /// Round-trip latency.
    pub latency: Latency,
    /// Frames the generator's own kernel side dropped (flood only).
    pub generator_kernel_dropped: Option<u64>,
    /// The AF_XDP mode the generator obtained (flood only).
    pub generator_mode: Option<String>,
}

/// The one line of JSON that `afxdp-responder flood --json` prints.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FloodJson {
    /// Requests sent.
    pub sent: u64,
    /// Replies received.
    pub replies: u64,
    /// Replies that passed every check.
    pub correct: u64,
    /// Replies that failed a check.
    pub wrong: u64,
    /// Requests without a reply.
    pub lost: u64,
    /// Sending time in seconds.
    pub duration_s: f64,
    /// Requests per second.
    pub sent_per_s: f64,
    /// Replies per second.
    pub replies_per_s: f64,
    /// Percentage of requests answered.
    pub answered_pct: f64,
    /// Percentage of replies that were correct.
    pub correct_pct: f64,
    /// Latency percentiles in microseconds.
    pub latency_us: FloodLatency,
    /// Frames the generator's side of the kernel dropped (its RX ring full, …), when reported.
    #[serde(default)]
    pub kernel_dropped: Option<u64>,
    /// The AF_XDP mode the generator obtained, when reported.
    #[serde(default)]
    pub mode: Option<String>,
}

/// The `latency_us` object of [`FloodJson`].
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct FloodLatency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Slowest.
    pub max: f64,
}

impl FloodJson {
    /// Finds the JSON line in `flood --json` stdout (the last line that starts with `{`).
    pub fn parse(stdout: &str) -> Result<Self, LabError> {
        let line = stdout
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('{'))
            .ok_or_else(|| LabError::Parse {
                what: "flood --json output",
                detail: format!("no JSON line in {:?}", tail(stdout)),
            })?;
        serde_json::from_str(line).map_err(|e| LabError::Parse {
            what: "flood --json output",
            detail: format!("{e} in {line:?}"),
        })
    }

    fn into_measured(self) -> Measured {
        let finite = |v: f64| v.is_finite().then_some(v);
        Measured {
            sent: self.sent,
            replies: self.replies,
            correct: self.correct,
            wrong: self.wrong,
            lost: self.lost,
            duration_s: self.duration_s,
            sent_per_s: self.sent_per_s,
            replies_per_s: self.replies_per_s,
            latency: Latency {
                p50: finite(self.latency_us.p50),
                p99: finite(self.latency_us.p99),
                p999: finite(self.latency_us.p999),
                max: finite(self.latency_us.max),
                avg: None,
            },
            generator_kernel_dropped: self.kernel_dropped,
            generator_mode: self.mode,
        }
    }
}

/// Which generator drives the load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Generator {
    /// `afxdp-responder flood`, from this binary.
    Flood {
        /// The afxdp-responder binary that has the `flood` command.
        exe: PathBuf,
    },
    /// STAND-IN until `flood` exists in this build: iputils ping, see the module docs.
    PingStandIn,
}

/// Which generator the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GeneratorChoice {
    /// `flood` when this build has it, otherwise the ping stand-in.
    Auto,
    /// `afxdp-responder flood` (fails when this build lacks it).
    Flood,
    /// The iputils ping stand-in.
    Ping,
}

/// Whether `exe` has a `flood` subcommand (`exe flood --help` succeeds).
pub fn has_flood(exe: &Path) -> bool {
    let mut cmd = Command::new(exe);
    cmd.args(["flood", "--help"]);
    run(cmd, "asking for flood --help", Duration::from_secs(10)).is_ok_and(|out| out.status.success())
}

impl Generator {
    /// The generator for `choice`; `exe` is the afxdp-responder binary.
    pub fn pick(choice: GeneratorChoice, exe: &Path) -> Result<Self, LabError> {
        let flood = || Generator::Flood { exe: exe.to_path_buf() };
        match choice {
            GeneratorChoice::Ping => Ok(Generator::PingStandIn),
            GeneratorChoice::Auto if has_flood(exe) => Ok(flood()),
            GeneratorChoice::Auto => Ok(Generator::PingStandIn),
            GeneratorChoice::Flood if has_flood(exe) => Ok(flood()),
            GeneratorChoice::Flood => Err(LabError::Config(format!(
                "{} has no `flood` command: this build cannot use --generator flood",
                exe.display()
            ))),
        }
    }

    /// Short name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Generator::Flood { .. } => "flood",
            Generator::PingStandIn => "ping stand-in",
        }
    }

    /// Whether the generator attaches an XDP program to the client veth (which XDP_TX replies from
    /// the responder end need to arrive on veth).
    pub fn has_client_xdp(&self) -> bool {
        matches!(self, Generator::Flood { .. })
    }

    /// Whether it measures latency percentiles (the stand-in gives only mean and maximum).
    pub fn has_percentiles(&self) -> bool {
        matches!(self, Generator::Flood { .. })
    }

    /// Sends `load` from the client namespace of `pair` to the responder end and measures.
    pub fn run(&self, pair: &NetnsPair, load: &Load) -> Result<Measured, LabError> {
        match self {
            Generator::Flood { exe } => flood(pair, exe, load),
            Generator::PingStandIn => ping_stand_in(pair, load),
        }
    }
}

/// `ip netns exec C afxdp-responder flood --iface c --dst R --src C --dst-mac MAC …` as the bench
/// runs it (also printed in the docs for real NICs).
pub fn flood_command(pair: &NetnsPair, exe: &Path, load: &Load) -> Command {
    let mut cmd = pair.command_in(Side::Client, &exe.to_string_lossy());
    let queues: Vec<String> = (0..load.queues).map(|q| q.to_string()).collect();
    let rate = match load.rate {
        Rate::Max => "max".to_string(),
        Rate::Pps(pps) => pps.to_string(),
    };
    cmd.arg("flood")
        .args(["--iface", pair.client_if()])
        .args(["--dst", &pair.addr(Side::Responder, load.family).to_string()])
        .args(["--src", &pair.addr(Side::Client, load.family).to_string()])
        .args(["--dst-mac", &mac_string(pair.mac(Side::Responder))])
        .args(["--size", &load.ip_size.to_string()])
        .args(["--rate", &rate])
        .args(["--duration", &format!("{:.3}", load.duration.as_secs_f64())])
        .args(["--count", &load.count_bound().to_string()])
        .args(["--queues", &queues.join(",")]);
    if load.queues > 1 {
        // flood expects each reply on the queue its request left from. Queue q's thread on the
        // q-th CPU (the CPU of the responder's worker q, and the CPU to which the responder's XPS
        // map sends TX queue q) keeps it so: veth picks the peer RX queue of an XDP_TX frame by
        // the CPU number, and the kernel stack replies on the TX queue of the CPU it runs on.
        let cpus = super::super::allowed_cpus().unwrap_or_default();
        let cpus: Vec<String> = (0..load.queues as usize)
            .map(|q| cpus.get(q).copied().unwrap_or(q).to_string())
            .collect();
        cmd.args(["--cpus", &cpus.join(",")]);
    }
    cmd.arg("--json");
    cmd
}

fn flood(pair: &NetnsPair, exe: &Path, load: &Load) -> Result<Measured, LabError> {
    let cmd = flood_command(pair, exe, load);
    let command = describe(&cmd);
    let output = run(cmd, "the flood generator", load.duration + Duration::from_secs(30))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(LabError::CommandFailed {
            what: "the flood generator".into(),
            command,
            status: output.status.to_string(),
            stderr: tail(&String::from_utf8_lossy(&output.stderr)),
        });
    }
    Ok(FloodJson::parse(&stdout)?.into_measured())
}

/// Echo-reply and checksum-error counters of `family` in the client's SNMP counters.
fn reply_counters(family: Family) -> (&'static str, &'static str) {
    match family {
        Family::V4 => ("IcmpInEchoReps", "IcmpInCsumErrors"),
        Family::V6 => ("Icmp6InEchoReplies", "Icmp6InCsumErrors"),
    }
}

/// ICMP payload bytes that make an IP packet of `ip_size` bytes (20/48 bytes of IP + ICMP headers).
pub fn ping_payload(family: Family, ip_size: u16) -> u16 {
    let headers = match family {
        Family::V4 => 28,
        Family::V6 => 48,
    };
    ip_size.saturating_sub(headers)
}

/// STAND-IN: one pinned iputils ping per queue, concurrently; see the module docs.
fn ping_stand_in(pair: &NetnsPair, load: &Load) -> Result<Measured, LabError> {
    let ping = tool("ping")?;
    let secs = load.duration.as_secs_f64();
    // ping's -w takes whole seconds (fractions are accepted by new iputils only): round up.
    let deadline = secs.ceil().max(1.0) as u64;
    let per_queue_count = (load.count_bound() / u64::from(load.queues)).max(1);
    let target: IpAddr = pair.addr(Side::Responder, load.family);
    let (good_name, bad_name) = reply_counters(load.family);
    let before = Nstat::read(pair, Side::Client)?;
    let mut pings = Vec::new();
    for queue in 0..load.queues {
        // One queue: nothing to steer (a single-queue device has no XPS map to write).
        let mut cmd = if load.queues == 1 {
            pair.command_in(Side::Client, &ping.to_string_lossy())
        } else {
            let cpu = pair.steer_client_queue(queue)?;
            pair.command_pinned(Side::Client, cpu, &ping.to_string_lossy())?
        };
        cmd.arg(match load.family {
            Family::V4 => "-4",
            Family::V6 => "-6",
        });
        cmd.args(["-n", "-q", "-s", &ping_payload(load.family, load.ip_size).to_string()]);
        cmd.args(["-c", &per_queue_count.min(10_000_000).to_string()]);
        cmd.args(["-w", &deadline.to_string()]);
        match load.rate {
            // Flood with 16 requests in flight: one system call per request is ping's limit anyway.
            Rate::Max => cmd.args(["-f", "-l", "16"]),
            Rate::Pps(pps) => {
                let interval = f64::from(load.queues) / pps.max(1) as f64;
                cmd.args(["-i", &format!("{interval:.6}")])
            }
        };
        cmd.arg(target.to_string());
        pings.push(Background::spawn(cmd)?);
    }
    let started = Instant::now();
    let mut measured = Measured::default();
    let mut rtt_max: Option<f64> = None;
    let mut rtt_weighted = 0.0;
    for mut p in pings {
        // ping ends itself at -w; give it a little more before stopping it.
        let hard = started + Duration::from_secs(deadline + 5);
        while p.is_running() && Instant::now() < hard {
            std::thread::sleep(Duration::from_millis(20));
        }
        let command = p.command().to_string();
        let finished = p.stop(Duration::from_secs(2))?;
        let report = PingReport::parse(&finished.stdout).map_err(|err| LabError::CommandFailed {
            what: "ping (bench stand-in)".into(),
            command,
            status: finished.status.to_string(),
            stderr: format!("{} ({err})", tail(&finished.stderr)),
        })?;
        measured.sent += report.transmitted;
        if let Some(rtt) = report.rtt {
            let max_us = rtt.max.as_secs_f64() * 1e6;
            rtt_max = Some(rtt_max.map_or(max_us, |m: f64| m.max(max_us)));
            rtt_weighted += rtt.avg.as_secs_f64() * 1e6 * report.received as f64;
        }
    }
    let delta = Nstat::read(pair, Side::Client)?.since(&before);
    measured.correct = delta.counter(good_name)?;
    measured.wrong = delta.counter(bad_name)?;
    measured.replies = measured.correct + measured.wrong;
    measured.lost = measured.sent.saturating_sub(measured.replies);
    measured.duration_s = secs;
    measured.sent_per_s = measured.sent as f64 / secs;
    measured.replies_per_s = measured.replies as f64 / secs;
    measured.latency = Latency {
        max: rtt_max,
        avg: (measured.correct > 0).then(|| rtt_weighted / measured.correct as f64),
        ..Latency::default()
    };
    Ok(measured)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_flood_json_line() {
        let out = "flood: sending on c, 2 queues\n{\"sent\":1000,\"replies\":990,\"correct\":990,\"wrong\":0,\
                   \"lost\":10,\"duration_s\":1.0,\"sent_per_s\":1000.0,\"replies_per_s\":990.0,\
                   \"answered_pct\":99.0,\"correct_pct\":100.0,\
                   \"latency_us\":{\"p50\":12.5,\"p99\":40.0,\"p999\":80.0,\"max\":120.0}}\n";
        let m = FloodJson::parse(out).unwrap().into_measured();
        assert_eq!((m.sent, m.replies, m.correct, m.lost), (1000, 990, 990, 10));
        assert_eq!(m.latency.p50, Some(12.5));
        assert_eq!(m.latency.avg, None);
        assert!(FloodJson::parse("no json here\n").is_err());
        assert!(FloodJson::parse("{\"sent\":1}\n").is_err());
    }

    #[test]
    fn counts_are_bounded_by_rate_and_time() {
        let load = Load {
            family: Family::V4,
            ip_size: 64,
            rate: Rate::Pps(100_000),
            duration: Duration::from_millis(1500),
            queues: 2,
        };
        assert_eq!(load.count_bound(), 150_000);
        let max = Load {
            rate: Rate::Max,
            ..load
        };
        assert_eq!(max.count_bound(), 30_000_000);
    }

    #[test]
    fn ping_payload_makes_the_ip_size() {
        assert_eq!(ping_payload(Family::V4, 64), 36);
        assert_eq!(ping_payload(Family::V6, 64), 16);
        assert_eq!(ping_payload(Family::V6, 1000), 952);
    }
}
