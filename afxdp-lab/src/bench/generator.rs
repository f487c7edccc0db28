//! The load generator side of the bench: one bounded load run from the client namespace, measured.
//!
//! The generator is `afxdp-responder flood … --json`, the project's AF_XDP generator: it sends from
//! AF_XDP TX rings, receives the replies through its own XDP program on the client veth, verifies
//! each one and reports latency percentiles from a timestamp in the payload. Its report is one line
//! of JSON on stdout, a [`FloodReport`] of the `responder-json` crate, which the bench keeps as it is.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use responder_json::FloodReport;
use serde::{Deserialize, Serialize};

use super::super::exec::{describe, run, tail};
use super::super::{Family, LabError, NetnsPair, Side, mac_string};

/// The generator's name in reports.
pub const NAME: &str = "flood";

/// Request rate of a load run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rate {
    /// As fast as the generator can send.
    Max,
    /// This many requests per second in total (over all queues).
    Pps(u64),
}

/// How `flood` makes its requests (`afxdp-lab bench --generator`, `flood --inject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Generator {
    /// Generated in the kernel (`flood --inject live`: BPF_PROG_RUN with live frames), so that
    /// the generator's own core is not what limits a row.
    Live,
    /// Written into AF_XDP TX rings by the generator's threads (`flood --inject xsk`).
    Xsk,
}

impl Generator {
    /// `live` or `xsk`, as `flood --inject` spells it.
    pub fn id(self) -> &'static str {
        match self {
            Generator::Live => "live",
            Generator::Xsk => "xsk",
        }
    }
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
    /// How the requests are made.
    pub generator: Generator,
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

/// `ip netns exec C afxdp-responder flood --iface c --dst R --src C --dst-mac MAC …` as the bench
/// runs it (also printed in the docs for real NICs).
pub fn flood_command(pair: &NetnsPair, exe: &Path, load: &Load) -> Command {
    flood_command_from(pair, exe, load, pair.addr(Side::Client, load.family))
}

/// Like [`flood_command`], with `src` as the requests' source address instead of the client's
/// own (`afxdp-lab soak` floods from an address of its own so that its capture program does not
/// take the replies of the `ping`s running at the same time). The responder needs a neighbour
/// entry for `src`.
pub fn flood_command_from(pair: &NetnsPair, exe: &Path, load: &Load, src: std::net::IpAddr) -> Command {
    let mut cmd = pair.command_in(Side::Client, &exe.to_string_lossy());
    let queues: Vec<String> = (0..load.queues).map(|q| q.to_string()).collect();
    let rate = match load.rate {
        Rate::Max => "max".to_string(),
        Rate::Pps(pps) => pps.to_string(),
    };
    cmd.arg("flood")
        .args(["--iface", pair.client_if()])
        .args(["--dst", &pair.addr(Side::Responder, load.family).to_string()])
        .args(["--src", &src.to_string()])
        .args(["--dst-mac", &mac_string(pair.mac(Side::Responder))])
        .args(["--size", &load.ip_size.to_string()])
        .args(["--rate", &rate])
        .args(["--duration", &format!("{:.3}", load.duration.as_secs_f64())])
        .args(["--count", &load.count_bound().to_string()])
        .args(["--queues", &queues.join(",")])
        .args(["--inject", load.generator.id()]);
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

/// Sends `load` with `flood` (the `afxdp-responder` binary `exe`) from the client namespace of
/// `pair` to the responder end, and returns its report.
pub fn run_flood(pair: &NetnsPair, exe: &Path, load: &Load) -> Result<FloodReport, LabError> {
    run_flood_command(flood_command(pair, exe, load), load)
}

/// Runs a command made by [`flood_command`] or [`flood_command_from`] for `load` (bounded by its
/// duration plus 30 s) and returns its report.
pub fn run_flood_command(cmd: Command, load: &Load) -> Result<FloodReport, LabError> {
    let command = describe(&cmd);
    let output = run(cmd, "the flood generator", load.duration + Duration::from_secs(30))?;
    if !output.status.success() {
        return Err(LabError::CommandFailed {
            what: "the flood generator".into(),
            command,
            status: output.status.to_string(),
            stderr: tail(&String::from_utf8_lossy(&output.stderr)),
        });
    }
    parse_report(&String::from_utf8_lossy(&output.stdout))
}

/// The report in `flood --json` stdout: exactly one line of JSON (its progress goes to stderr).
pub fn parse_report(stdout: &str) -> Result<FloodReport, LabError> {
    let parse_error = |detail: String| LabError::Parse {
        what: "flood --json output",
        detail,
    };
    let line = stdout.trim();
    if line.is_empty() || line.contains('\n') {
        return Err(parse_error(format!(
            "expected one line of JSON on stdout, got {:?}",
            tail(stdout)
        )));
    }
    serde_json::from_str(line).map_err(|e| parse_error(format!("{e} in {line:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line in the format `afxdp-responder flood --json` prints.
    const LINE: &str = "{\"sent\":1000,\"sent_invalid\":0,\"replies\":990,\"correct\":990,\"wrong\":0,\"lost\":10,\
                        \"kernel_dropped\":4,\"duration_s\":1.000000,\"sent_per_s\":1000.0,\"replies_per_s\":990.0,\
                        \"answered_pct\":99.0000,\"correct_pct\":100.0000,\"mode\":\"copy\",\
                        \"latency_us\":{\"p50\":12.50,\"p99\":40.00,\"p999\":80.00,\"max\":120.00}}";

    #[test]
    fn reads_the_one_json_line_of_flood() {
        let r = parse_report(&format!("{LINE}\n")).unwrap();
        assert_eq!((r.sent, r.replies, r.correct, r.lost), (1000, 990, 990, 10));
        assert_eq!((r.kernel_dropped, r.mode.as_str()), (4, "copy"));
        assert_eq!(r.latency_us.p50, 12.5);
        assert_eq!(r.latency_us.max, 120.0);
    }

    #[test]
    fn anything_but_one_json_line_is_an_error() {
        assert!(parse_report("").is_err());
        assert!(parse_report("no json here\n").is_err());
        assert!(parse_report("{\"sent\":1}\n").is_err());
        assert!(parse_report(&format!("flood: sending on c\n{LINE}\n")).is_err());
    }

    #[test]
    fn counts_are_bounded_by_rate_and_time() {
        let load = Load {
            family: Family::V4,
            ip_size: 64,
            rate: Rate::Pps(100_000),
            duration: Duration::from_millis(1500),
            queues: 2,
            generator: Generator::Xsk,
        };
        assert_eq!(load.count_bound(), 150_000);
        let max = Load {
            rate: Rate::Max,
            ..load
        };
        assert_eq!(max.count_bound(), 30_000_000);
    }
}
