//! `afxdp-lab soak`: the responder run for a bounded time (default 10 minutes) at a fixed rate
//! while its environment keeps changing, then checked for leaks and for counters that disagree.
//!
//! In a one-queue namespace pair, with `--metrics-addr`, throughout the run:
//!
//! - a flood thread sends bounded chunks of `afxdp-responder flood --json` (alternating IPv4 and
//!   IPv6, 64/512/1400-byte packets) at `--rate`, from source addresses of its own (so that its
//!   reply capture does not take the replies of the pings below); every reply is checked byte
//!   for byte by the generator;
//! - every `--address-every` an extra IPv4 + IPv6 address is added to or deleted from the
//!   responder's interface; after the responder's `addresses` event says so, 3 + 3 pings to them
//!   must all be answered (added) or none (deleted);
//! - every `--flap-every` the link goes down and up (between flood chunks); the kernel flushes
//!   the IPv6 addresses on the way down, the soak puts them back, and pings to both main
//!   addresses must be answered again;
//! - every `--scrape-every` the metrics endpoint is scraped (`curl` in the responder's
//!   namespace); every counter must be non-decreasing from one scrape to the next;
//! - every second the responder's RSS (`VmRSS` of /proc/PID/status) and open descriptors
//!   (/proc/PID/fd) are sampled.
//!
//! At the end the responder is stopped (SIGINT) and [`Verdict`] checks: RSS and descriptors did
//! not grow from the first to the last quarter beyond [`RSS_TOLERANCE_KIB`] +
//! [`RSS_TOLERANCE_PCT`] / [`FD_TOLERANCE`]; every UMEM frame is accounted for; the replies the
//! flood verified plus the pings the responder answered equal the replies it sent; every lost
//! request is explained by a drop counter; the last scrape equals the summary. The lab talks to
//! the responder only through its JSON events, its metrics text and its exit status.

use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use responder_json::{Event, FloodReport, Summary};
use serde::Serialize;

use super::bench::generator::{Load, Rate, flood_command_from, run_flood_command};
use super::exec::{run as run_command, run_ok, tool};
use super::{Family, LabConfig, LabError, NetnsPair, Nstat, PingSpec, ResponderProcess, Side, mac_string, ping};

/// RSS may grow by this much (plus [`RSS_TOLERANCE_PCT`]) from the first quarter to the last.
pub const RSS_TOLERANCE_KIB: u64 = 1024;
/// RSS may grow by this share of the first quarter's (plus [`RSS_TOLERANCE_KIB`]).
pub const RSS_TOLERANCE_PCT: f64 = 2.0;
/// Open descriptors may be this many more in the last quarter than in the first: a sample can
/// catch a short-lived one (a metrics connection, a /proc/sys file being read).
pub const FD_TOLERANCE: u64 = 2;

/// The longest soak.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// The shortest soak (enough for a few of everything).
pub const MIN_DURATION: Duration = Duration::from_secs(10);

/// Where the responder's metrics listen, on its namespace's own loopback.
const METRICS_ADDR: &str = "127.0.0.1:9417";
/// The extra addresses added and deleted while it runs.
const EXTRA_V4: &str = "198.18.0.10";
const EXTRA_V6: &str = "2001:db8:0:1::10";
/// The flood's source addresses (not the client's own: see the module comment).
const FLOOD_SRC_V4: &str = "198.18.0.200";
const FLOOD_SRC_V6: &str = "2001:db8:0:1::200";
/// IP packet sizes the flood chunks cycle through.
const FLOOD_SIZES: [u16; 3] = [64, 512, 1400];
/// Pings per family in an address or link check.
const CHECK_PINGS: u32 = 3;

/// Options of `afxdp-lab soak`.
#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    /// How long to run: seconds, or with a unit (`30s`, `10m`, `1h`); 10 s to 60 min.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub duration: Duration,
    /// Flood requests per second (`20k`, `20000`); modest, so that it runs on shared cores.
    #[arg(long, default_value = "20k", value_parser = parse_rate)]
    pub rate: u64,
    /// Length of one flood chunk (link flaps happen between chunks).
    #[arg(long, default_value = "5s", value_parser = parse_duration_short)]
    pub chunk: Duration,
    /// How often the extra IPv4 + IPv6 address is added or deleted.
    #[arg(long, default_value = "5s", value_parser = parse_duration_short)]
    pub address_every: Duration,
    /// How often the link goes down and up.
    #[arg(long, default_value = "30s", value_parser = parse_duration_short)]
    pub flap_every: Duration,
    /// How often the metrics are scraped.
    #[arg(long, default_value = "5s", value_parser = parse_duration_short)]
    pub scrape_every: Duration,
    /// Print the result as one JSON object on stdout instead of a table (progress goes to stderr).
    #[arg(long)]
    pub json: bool,
}

/// Parses `90`, `90s`, `10m`, `1h` into a duration.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit() && *c != '.') {
        Some((i, _)) => text.split_at(i),
        None => (text, "s"),
    };
    let mult = match unit {
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("{text:?} is not a duration: use seconds or 30s, 10m, 1h")),
    };
    match digits.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(Duration::from_secs_f64(v * mult)),
        _ => Err(format!("{text:?} is not a duration: use seconds or 30s, 10m, 1h")),
    }
}

/// `--duration`: [`MIN_DURATION`]..=[`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = parse_seconds(text)?;
    if d < MIN_DURATION || d > MAX_DURATION {
        return Err(format!("--duration {text}: use 10s to 60m"));
    }
    Ok(d)
}

/// The intervals: 1 s to 10 min.
fn parse_duration_short(text: &str) -> Result<Duration, String> {
    let d = parse_seconds(text)?;
    if d < Duration::from_secs(1) || d > Duration::from_secs(600) {
        return Err(format!("{text}: use 1s to 10m"));
    }
    Ok(d)
}

/// `--rate`: 1 to 1,000,000 requests per second, `k` allowed.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let (digits, mult) = match text.strip_suffix(['k', 'K']) {
        Some(d) => (d, 1000.0),
        None => (text, 1.0),
    };
    match digits.parse::<f64>() {
        Ok(v) if v * mult >= 1.0 && v * mult <= 1e6 => Ok((v * mult) as u64),
        _ => Err(format!(
            "{text:?} is not a rate: use requests per second from 1 to 1000k, e.g. 20k"
        )),
    }
}

/// One sample of the responder's memory and descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ResourceSample {
    /// Seconds since the responder was ready.
    pub t_s: f64,
    /// `VmRSS` in KiB.
    pub rss_kib: u64,
    /// Entries of /proc/PID/fd.
    pub fds: u64,
}

impl ResourceSample {
    /// Reads `pid`'s RSS and descriptor count.
    pub fn read(pid: u32, t_s: f64) -> Result<Self, LabError> {
        let io = |what: &str, source| LabError::Io {
            what: format!("reading /proc/{pid}/{what} of the responder"),
            source,
        };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| io("status", e))?;
        let rss_kib = parse_vm_rss(&status).ok_or_else(|| LabError::Parse {
            what: "/proc/PID/status",
            detail: "no VmRSS line".into(),
        })?;
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map_err(|e| io("fd", e))?
            .count() as u64;
        Ok(ResourceSample { t_s, rss_kib, fds })
    }
}

/// `VmRSS:   12345 kB` → 12345.
fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// First and last quarter of a resource over the run, and whether it stayed within tolerance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Trend {
    /// The largest value in the first quarter of the samples.
    pub first_quarter_max: u64,
    /// The largest value in the last quarter.
    pub last_quarter_max: u64,
    /// How much the last may exceed the first.
    pub tolerance: u64,
    /// `last_quarter_max <= first_quarter_max + tolerance`.
    pub stable: bool,
}

/// Compares the largest value of the first quarter of `values` with that of the last quarter.
/// The maximum, not the mean: allocators keep what they took, so a leak shows as a level that
/// keeps rising, while warm-up (first traffic, first scrape) happens in the first quarter.
/// `None` with fewer than 4 samples.
pub fn trend(values: &[u64], tolerance: impl Fn(u64) -> u64) -> Option<Trend> {
    if values.len() < 4 {
        return None;
    }
    let q = values.len() / 4;
    let first = *values[..q].iter().max()?;
    let last = *values[values.len() - q..].iter().max()?;
    let tolerance = tolerance(first);
    Some(Trend {
        first_quarter_max: first,
        last_quarter_max: last,
        tolerance,
        stable: last <= first + tolerance,
    })
}

/// The RSS tolerance for a first-quarter RSS of `first_kib`.
pub fn rss_tolerance(first_kib: u64) -> u64 {
    RSS_TOLERANCE_KIB + (first_kib as f64 * RSS_TOLERANCE_PCT / 100.0) as u64
}

/// The sums over labels of the counters the soak compares, from one scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Scrape {
    /// `afxdp_responder_requests_received_total`.
    pub rx: u64,
    /// `afxdp_responder_replies_sent_total`.
    pub tx: u64,
    /// `afxdp_responder_requests_dropped_total`.
    pub dropped: u64,
    /// `afxdp_responder_kernel_rx_dropped_total`.
    pub kernel_dropped: u64,
    /// `afxdp_responder_program_handled_total`.
    pub handled: u64,
    /// `afxdp_responder_owned_addresses`.
    pub owned_addresses: u64,
}

impl Scrape {
    /// Sums the samples of the text exposition by metric name; fails if a family is missing.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut sums = std::collections::BTreeMap::<&str, f64>::new();
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let value = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
            let Some(value) = value else {
                return Err(format!("a sample without a number: {line:?}"));
            };
            *sums.entry(&line[..name_end]).or_default() += value;
        }
        let get = |name: &str| {
            sums.get(name)
                .map(|v| *v as u64)
                .ok_or_else(|| format!("no {name} in the exposition"))
        };
        Ok(Scrape {
            rx: get("afxdp_responder_requests_received_total")?,
            tx: get("afxdp_responder_replies_sent_total")?,
            dropped: get("afxdp_responder_requests_dropped_total")?,
            kernel_dropped: get("afxdp_responder_kernel_rx_dropped_total")?,
            handled: get("afxdp_responder_program_handled_total")?,
            owned_addresses: get("afxdp_responder_owned_addresses")?,
        })
    }

    /// The counters of `self` that are smaller than in `earlier` (counters never go back).
    pub fn went_back(&self, earlier: &Scrape) -> Vec<&'static str> {
        let mut back = Vec::new();
        for (name, now, then) in [
            ("rx", self.rx, earlier.rx),
            ("tx", self.tx, earlier.tx),
            ("dropped", self.dropped, earlier.dropped),
            ("kernel_dropped", self.kernel_dropped, earlier.kernel_dropped),
            ("handled", self.handled, earlier.handled),
        ] {
            if now < then {
                back.push(name);
            }
        }
        back
    }
}

/// The flood's chunks added up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FloodTotals {
    /// Chunks run.
    pub chunks: u64,
    /// Chunks that failed to run (the error is in `problems`).
    pub failed_chunks: u64,
    /// Requests sent.
    pub sent: u64,
    /// Replies that passed every byte-for-byte check.
    pub correct: u64,
    /// Replies that failed a check or came twice.
    pub wrong: u64,
    /// Requests without a correct reply.
    pub lost: u64,
    /// Replies the generator's kernel dropped (part of `lost`).
    pub kernel_dropped: u64,
}

impl FloodTotals {
    fn add(&mut self, r: &FloodReport) {
        self.chunks += 1;
        self.sent += r.sent;
        self.correct += r.correct;
        self.wrong += r.wrong;
        self.lost += r.lost;
        self.kernel_dropped += r.kernel_dropped;
    }
}

/// Pings of the address and link checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PingTotals {
    /// Requests sent.
    pub sent: u64,
    /// Replies received.
    pub received: u64,
    /// Of those, answered by the responder's kernel (its `IcmpOutEchoReps` +
    /// `Icmp6OutEchoReplies`); the rest the responder answered.
    pub by_kernel: u64,
}

/// What happened during the run: the figures the checks use.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    /// Seconds from ready to the end of the last flood chunk.
    pub duration_s: f64,
    /// Configured flood rate.
    pub rate: u64,
    /// Flood totals.
    pub flood: FloodTotals,
    /// Ping totals.
    pub pings: PingTotals,
    /// Extra-address additions and deletions (each one IPv4 + one IPv6 address).
    pub address_changes: u64,
    /// Link down/up cycles.
    pub link_flaps: u64,
    /// Successful metrics scrapes.
    pub scrapes: u64,
    /// The last scrape, taken after the traffic stopped.
    pub final_scrape: Option<Scrape>,
    /// Resource samples.
    pub samples: Vec<ResourceSample>,
    /// Summary totals (rx, tx, dropped), kernel drops, program handled.
    pub summary: Option<SummaryTotals>,
    /// Whether the responder exited with status 0.
    pub exit_ok: bool,
    /// Problems seen during the run (a failed ping check, a failed scrape, …).
    pub problems: Vec<String>,
}

/// The totals of the `summary` event the checks use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SummaryTotals {
    /// Requests received.
    pub rx: u64,
    /// Replies sent.
    pub tx: u64,
    /// Requests the workers dropped.
    pub dropped: u64,
    /// The kernel's drops over all sockets.
    pub kernel_dropped: u64,
    /// The XDP program's handled counter.
    pub handled: u64,
    /// Every queue's frame census accounted for every frame.
    pub frames_accounted: bool,
    /// The census, one line per queue (`queue 0: 4096 = 4096 fill + 0 rx + …`).
    pub census: Vec<String>,
}

impl SummaryTotals {
    /// From a `summary` event.
    pub fn from_summary(s: &Summary) -> Self {
        SummaryTotals {
            rx: s.total.rx,
            tx: s.total.tx,
            dropped: s.total.dropped,
            kernel_dropped: s.queues.iter().map(|q| q.kernel.dropped).sum(),
            handled: s.program.handled,
            frames_accounted: !s.queues.is_empty() && s.queues.iter().all(|q| q.frames.accounted),
            census: s
                .queues
                .iter()
                .map(|q| {
                    let f = &q.frames;
                    format!(
                        "queue {}: {} frames = {} fill + {} rx + {} tx + {} completion + {} elsewhere",
                        q.queue, f.total, f.fill, f.rx, f.tx, f.completion, f.elsewhere
                    )
                })
                .collect(),
        }
    }
}

/// One check of the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Short name (`rss`, `fds`, `census`, `replies`, `drops`, `metrics`, `events`, `exit`).
    pub name: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// The figures behind it, for people.
    pub detail: String,
}

/// The checks over the figures of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// All passed.
    pub passed: bool,
    /// Each check.
    pub checks: Vec<Check>,
    /// RSS trend in KiB.
    pub rss_kib: Option<Trend>,
    /// Descriptor trend.
    pub fds: Option<Trend>,
}

impl Verdict {
    /// Judges `f`. Pure: the unit tests feed it synthetic figures.
    pub fn judge(f: &Figures) -> Verdict {
        let mut checks = Vec::new();
        let mut check = |name, ok, detail: String| checks.push(Check { name, ok, detail });

        let rss: Vec<u64> = f.samples.iter().map(|s| s.rss_kib).collect();
        let fds: Vec<u64> = f.samples.iter().map(|s| s.fds).collect();
        let rss_trend = trend(&rss, rss_tolerance);
        let fd_trend = trend(&fds, |_| FD_TOLERANCE);
        match rss_trend {
            Some(t) => check(
                "rss",
                t.stable,
                format!(
                    "VmRSS max {} KiB in the first quarter, {} KiB in the last (tolerance +{} KiB)",
                    t.first_quarter_max, t.last_quarter_max, t.tolerance
                ),
            ),
            None => check("rss", false, format!("only {} samples: need 4", rss.len())),
        }
        match fd_trend {
            Some(t) => check(
                "fds",
                t.stable,
                format!(
                    "open descriptors max {} in the first quarter, {} in the last (tolerance +{})",
                    t.first_quarter_max, t.last_quarter_max, t.tolerance
                ),
            ),
            None => check("fds", false, format!("only {} samples: need 4", fds.len())),
        }

        let Some(s) = &f.summary else {
            check("exit", false, "the responder printed no summary".into());
            return Verdict::finish(checks, rss_trend, fd_trend);
        };
        check(
            "exit",
            f.exit_ok,
            if f.exit_ok {
                "the responder exited with status 0".into()
            } else {
                "the responder exited with a non-zero status".into()
            },
        );
        check(
            "census",
            s.frames_accounted,
            if s.census.is_empty() {
                "no queue in the summary".into()
            } else {
                s.census.join("; ")
            },
        );

        // Every reply the responder sent is a flood reply the generator verified (or its
        // kernel dropped on arrival) or a reply to one of the check pings.
        let by_responder = f.pings.received.saturating_sub(f.pings.by_kernel);
        let accounted = f.flood.correct + f.flood.kernel_dropped + by_responder;
        check(
            "replies",
            f.flood.wrong == 0 && accounted == s.tx && s.rx == s.tx + s.dropped && f.flood.chunks > 0,
            format!(
                "responder tx {} = flood correct {} + dropped by the generator's kernel {} + pings answered by the \
                 responder {} ({} replies - {} from the kernel): {}; wrong replies {}; rx {} = tx {} + dropped {}",
                s.tx,
                f.flood.correct,
                f.flood.kernel_dropped,
                by_responder,
                f.pings.received,
                f.pings.by_kernel,
                if accounted == s.tx { "yes" } else { "NO" },
                f.flood.wrong,
                s.rx,
                s.tx,
                s.dropped
            ),
        );

        // A request the flood lost was dropped somewhere a counter says: the responder's socket
        // (kernel), its worker, or the generator's socket (its kernel).
        let explained = s.kernel_dropped + s.dropped + f.flood.kernel_dropped;
        // And every request the program redirected reached a worker or was a counted kernel drop.
        check(
            "drops",
            f.flood.lost <= explained && s.handled == s.rx + s.kernel_dropped,
            format!(
                "flood lost {} of {} requests; explained by the responder's kernel drops {}, worker drops {}, the \
                 generator's kernel drops {}; program handled {} = rx {} + kernel drops {}: {}",
                f.flood.lost,
                f.flood.sent,
                s.kernel_dropped,
                s.dropped,
                f.flood.kernel_dropped,
                s.handled,
                s.rx,
                s.kernel_dropped,
                if s.handled == s.rx + s.kernel_dropped {
                    "yes"
                } else {
                    "NO"
                }
            ),
        );

        match &f.final_scrape {
            Some(m) => {
                let same = (m.rx, m.tx, m.dropped, m.kernel_dropped, m.handled)
                    == (s.rx, s.tx, s.dropped, s.kernel_dropped, s.handled);
                check(
                    "metrics",
                    same,
                    format!(
                        "last scrape rx {} tx {} dropped {} kernel dropped {} handled {}; summary {} {} {} {} {}",
                        m.rx,
                        m.tx,
                        m.dropped,
                        m.kernel_dropped,
                        m.handled,
                        s.rx,
                        s.tx,
                        s.dropped,
                        s.kernel_dropped,
                        s.handled
                    ),
                );
            }
            None => check("metrics", false, "no final scrape".into()),
        }

        check(
            "events",
            f.problems.is_empty() && f.address_changes > 0 && f.scrapes > 0,
            if f.problems.is_empty() {
                format!(
                    "{} address changes and {} link flaps followed, {} scrapes with counters never going back",
                    f.address_changes, f.link_flaps, f.scrapes
                )
            } else {
                f.problems.join("; ")
            },
        );
        Verdict::finish(checks, rss_trend, fd_trend)
    }

    fn finish(checks: Vec<Check>, rss_kib: Option<Trend>, fds: Option<Trend>) -> Verdict {
        Verdict {
            passed: checks.iter().all(|c| c.ok),
            checks,
            rss_kib,
            fds,
        }
    }
}

/// The `--json` output: the figures and the verdict.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    /// All checks passed (exit status 0).
    pub passed: bool,
    /// The failed checks' names.
    pub failed: Vec<&'static str>,
    /// What happened.
    pub figures: Figures,
    /// The checks.
    pub verdict: Verdict,
}

/// Shared between the main thread and the flood thread.
struct FloodShared {
    stop: AtomicBool,
    pause: AtomicBool,
    /// Held by the flood thread while a chunk runs and by the main thread while the link flaps.
    gate: Mutex<()>,
    totals: Mutex<(FloodTotals, Vec<String>)>,
}

/// Runs the soak; exit status 0 when every check passed, 1 when one failed.
pub fn run(args: &SoakArgs) -> Result<ExitCode, LabError> {
    super::require_root()?;
    tool("curl")?;
    let exe = super::responder_exe()?;
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, Arc::clone(&interrupted));
    }
    let pair = NetnsPair::create(&LabConfig {
        queues: 1,
        ..LabConfig::default()
    })?;
    let figures = soak(&pair, &exe, args, &interrupted)?;
    drop(pair);
    if interrupted.load(Ordering::Relaxed) {
        eprintln!("soak: interrupted; namespaces removed");
        return Ok(ExitCode::from(130));
    }
    let verdict = Verdict::judge(&figures);
    let report = SoakReport {
        passed: verdict.passed,
        failed: verdict.checks.iter().filter(|c| !c.ok).map(|c| c.name).collect(),
        figures,
        verdict,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| LabError::Config(format!("serialising the report: {e}")))?
        );
    } else {
        print_table(&report);
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_table(r: &SoakReport) {
    let f = &r.figures;
    println!(
        "soak: {:.0} s at {} requests/s: {} flood chunks, {} address changes, {} link flaps, {} scrapes, {} samples",
        f.duration_s,
        f.rate,
        f.flood.chunks,
        f.address_changes,
        f.link_flaps,
        f.scrapes,
        f.samples.len()
    );
    println!(
        "flood: {} sent, {} correct, {} wrong, {} lost; pings: {} sent, {} answered ({} by the kernel)",
        f.flood.sent, f.flood.correct, f.flood.wrong, f.flood.lost, f.pings.sent, f.pings.received, f.pings.by_kernel
    );
    if let (Some(first), Some(last)) = (f.samples.first(), f.samples.last()) {
        println!(
            "responder: VmRSS {} KiB at {:.0} s, {} KiB at {:.0} s; open descriptors {} then {}",
            first.rss_kib, first.t_s, last.rss_kib, last.t_s, first.fds, last.fds
        );
    }
    println!("{:<8} {:<6} detail", "check", "result");
    for c in &r.verdict.checks {
        println!("{:<8} {:<6} {}", c.name, if c.ok { "ok" } else { "FAILED" }, c.detail);
    }
    println!(
        "Result: {}",
        if r.passed {
            "all checks passed".to_string()
        } else {
            format!("FAILED: {}", r.failed.join(", "))
        }
    );
}

fn ip_in(pair: &NetnsPair, side: Side, what: &str, args: &[&str]) -> Result<(), LabError> {
    let mut cmd = pair.command_in(side, &tool("ip")?.to_string_lossy());
    cmd.args(args);
    run_ok(cmd, what).map(drop)
}

/// Permanent neighbour entries: on the responder for the flood's sources, on the client for the
/// extra addresses (so its pings go out while they are absent, and are not answered).
fn neighbours(pair: &NetnsPair) -> Result<(), LabError> {
    let client_mac = mac_string(pair.mac(Side::Client));
    let responder_mac = mac_string(pair.mac(Side::Responder));
    for (side, addr, mac) in [
        (Side::Responder, FLOOD_SRC_V4, &client_mac),
        (Side::Responder, FLOOD_SRC_V6, &client_mac),
        (Side::Responder, &pair.ipv4(Side::Client).to_string(), &client_mac),
        (Side::Responder, &pair.ipv6(Side::Client).to_string(), &client_mac),
        (Side::Client, EXTRA_V4, &responder_mac),
        (Side::Client, EXTRA_V6, &responder_mac),
    ] {
        #[rustfmt::skip]
        let args = ["neigh", "replace", addr, "lladdr", mac, "dev", pair.ifname(side), "nud", "permanent"];
        ip_in(pair, side, "adding a static neighbour entry", &args)?;
    }
    Ok(())
}

fn scrape(pair: &NetnsPair) -> Result<Scrape, String> {
    let mut cmd = pair.command_in(
        Side::Responder,
        &tool("curl").map_err(|e| e.to_string())?.to_string_lossy(),
    );
    cmd.args(["-sS", "--max-time", "3", &format!("http://{METRICS_ADDR}/metrics")]);
    let out = run_command(cmd, "scraping the metrics", Duration::from_secs(6)).map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("curl exited with {}", out.status));
    }
    Scrape::parse(&String::from_utf8_lossy(&out.stdout))
}

/// Pings `addr` [`CHECK_PINGS`] times; returns (sent, received). Without replies ping keeps
/// sending until its deadline: 2 s when replies are expected, 1 s when none are.
fn ping_check(pair: &NetnsPair, addr: IpAddr, answered: bool) -> Result<(u64, u64), LabError> {
    let family = if addr.is_ipv4() { Family::V4 } else { Family::V6 };
    let r = ping(
        pair,
        &PingSpec::new(family, CHECK_PINGS)
            .target(addr)
            .interval(Duration::from_millis(20))
            .deadline(Duration::from_secs(if answered { 2 } else { 1 })),
    )?;
    Ok((r.transmitted, r.received))
}

/// Waits (at most 5 s) for an `addresses` event in which both extra addresses are `present`.
fn wait_extra(responder: &mut ResponderProcess, present: bool) -> Result<(), LabError> {
    responder
        .wait_for_event(
            "the addresses event for the extra addresses",
            Duration::from_secs(5),
            |e| {
                matches!(e, Event::Addresses(a)
                if [EXTRA_V4, EXTRA_V6].iter().all(|x| a.addresses.iter().any(|y| y == x) == present))
            },
        )
        .map(drop)
}

/// Waits (at most 5 s) for an `addresses` event listing both main addresses.
fn wait_main(responder: &mut ResponderProcess, pair: &NetnsPair) -> Result<(), LabError> {
    let main = [
        pair.ipv4(Side::Responder).to_string(),
        pair.ipv6(Side::Responder).to_string(),
    ];
    responder
        .wait_for_event(
            "the addresses event with the main addresses back",
            Duration::from_secs(5),
            |e| matches!(e, Event::Addresses(a) if main.iter().all(|x| a.addresses.contains(x))),
        )
        .map(drop)
}

fn flood_thread(pair: &NetnsPair, exe: &Path, args: &SoakArgs, shared: &FloodShared, until: Instant) {
    let mut chunk = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        while shared.pause.load(Ordering::Relaxed) && !shared.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let left = until.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(500) || shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let guard = shared.gate.lock().unwrap_or_else(|e| e.into_inner());
        let family = if chunk.is_multiple_of(2) {
            Family::V4
        } else {
            Family::V6
        };
        let load = Load {
            family,
            ip_size: FLOOD_SIZES[(chunk / 2) as usize % FLOOD_SIZES.len()],
            rate: Rate::Pps(args.rate),
            duration: args.chunk.min(left),
            queues: 1,
            generator: crate::bench::generator::Generator::Xsk,
        };
        let src: IpAddr = match family {
            Family::V4 => FLOOD_SRC_V4.parse().expect("a valid address"),
            Family::V6 => FLOOD_SRC_V6.parse().expect("a valid address"),
        };
        let result = run_flood_command(flood_command_from(pair, exe, &load, src), &load);
        drop(guard);
        let mut totals = shared.totals.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(report) => totals.0.add(&report),
            Err(err) => {
                totals.0.failed_chunks += 1;
                totals.1.push(format!("flood chunk {chunk}: {}", super::one_line(&err)));
            }
        }
        drop(totals);
        chunk += 1;
        // Leave the gate free for a moment: a waiting link flap gets it.
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn soak(pair: &NetnsPair, exe: &Path, args: &SoakArgs, interrupted: &AtomicBool) -> Result<Figures, LabError> {
    neighbours(pair)?;
    let say = |text: String| eprintln!("soak: {text}");
    let mut responder = ResponderProcess::start(pair, exe, &["--queues", "0", "--metrics-addr", METRICS_ADDR])?;
    let pid = responder.ready().pid;
    let ready_at = Instant::now();
    say(format!(
        "responder pid {pid} ready on {} ({} mode); {:?} at {}/s, address change every {:?}, link flap every {:?}, \
         scrape every {:?}",
        pair.responder_if(),
        responder.ready().queues.first().map_or("?", |q| q.mode.as_str()),
        args.duration,
        args.rate,
        args.address_every,
        args.flap_every,
        args.scrape_every
    ));
    let kernel_before = Nstat::read(pair, Side::Responder)?;
    let mut f = Figures {
        rate: args.rate,
        ..Figures::default()
    };
    let until = ready_at + args.duration;
    let shared = FloodShared {
        stop: AtomicBool::new(false),
        pause: AtomicBool::new(false),
        gate: Mutex::new(()),
        totals: Mutex::new((FloodTotals::default(), Vec::new())),
    };
    let extra: [IpAddr; 2] = [EXTRA_V4.parse().expect("valid"), EXTRA_V6.parse().expect("valid")];
    let main: [IpAddr; 2] = [pair.ipv4(Side::Responder).into(), pair.ipv6(Side::Responder).into()];
    let dev = pair.responder_if().to_string();

    std::thread::scope(|scope| -> Result<(), LabError> {
        let flood = scope.spawn(|| flood_thread(pair, exe, args, &shared, until));
        let result = (|| -> Result<(), LabError> {
            let mut extra_present = false;
            let mut last_scrape: Option<Scrape> = None;
            let (mut next_sample, mut next_address, mut next_flap, mut next_scrape) = (
                ready_at,
                ready_at + args.address_every,
                ready_at + args.flap_every,
                ready_at + args.scrape_every,
            );
            let mut last_report = ready_at;
            while Instant::now() < until && !interrupted.load(Ordering::Relaxed) {
                let now = Instant::now();
                if !responder.is_running() {
                    f.problems.push("the responder exited during the soak".into());
                    break;
                }
                if now >= next_sample {
                    f.samples
                        .push(ResourceSample::read(pid, ready_at.elapsed().as_secs_f64())?);
                    next_sample += Duration::from_secs(1);
                }
                if now >= next_scrape {
                    match scrape(pair) {
                        Ok(s) => {
                            if let Some(prev) = &last_scrape {
                                let back = s.went_back(prev);
                                if !back.is_empty() {
                                    f.problems.push(format!("scrape {}: {back:?} went back", f.scrapes + 1));
                                }
                            }
                            f.scrapes += 1;
                            last_scrape = Some(s);
                        }
                        Err(e) => f
                            .problems
                            .push(format!("scrape at {:.0} s: {e}", ready_at.elapsed().as_secs_f64())),
                    }
                    next_scrape += args.scrape_every;
                }
                if now >= next_address {
                    let verb = if extra_present { "del" } else { "add" };
                    ip_in(
                        pair,
                        Side::Responder,
                        "changing the extra IPv4 address",
                        &["addr", verb, &format!("{EXTRA_V4}/24"), "dev", &dev],
                    )?;
                    let v6 = format!("{EXTRA_V6}/64");
                    let mut v6_args = vec!["addr", verb, &v6, "dev", &dev];
                    if !extra_present {
                        v6_args.push("nodad");
                    }
                    ip_in(pair, Side::Responder, "changing the extra IPv6 address", &v6_args)?;
                    extra_present = !extra_present;
                    f.address_changes += 1;
                    if let Err(e) = wait_extra(&mut responder, extra_present) {
                        f.problems
                            .push(format!("address change {}: {}", f.address_changes, super::one_line(&e)));
                    }
                    for addr in extra {
                        let (sent, received) = ping_check(pair, addr, extra_present)?;
                        f.pings.sent += sent;
                        f.pings.received += received;
                        let want = if extra_present { sent } else { 0 };
                        if received != want || sent == 0 {
                            f.problems.push(format!(
                                "address change {} ({verb} {addr}): {received} of {sent} pings answered, {want} expected",
                                f.address_changes
                            ));
                        }
                    }
                    next_address += args.address_every;
                }
                if now >= next_flap && Instant::now() + Duration::from_secs(3) < until {
                    shared.pause.store(true, Ordering::Relaxed);
                    let guard = shared.gate.lock().unwrap_or_else(|e| e.into_inner());
                    ip_in(
                        pair,
                        Side::Responder,
                        "setting the link down",
                        &["link", "set", "dev", &dev, "down"],
                    )?;
                    std::thread::sleep(Duration::from_millis(500));
                    ip_in(
                        pair,
                        Side::Responder,
                        "setting the link up",
                        &["link", "set", "dev", &dev, "up"],
                    )?;
                    f.link_flaps += 1;
                    wait_carrier(pair)?;
                    // Linux flushed the IPv6 addresses and the neighbour entries on the way down.
                    let v6 = format!("{}/{}", pair.ipv6(Side::Responder), pair.config().v6_prefix);
                    ip_in(
                        pair,
                        Side::Responder,
                        "putting the IPv6 address back",
                        &["addr", "replace", &v6, "dev", &dev, "nodad"],
                    )?;
                    if extra_present {
                        let v6 = format!("{EXTRA_V6}/64");
                        ip_in(
                            pair,
                            Side::Responder,
                            "putting the extra IPv6 address back",
                            &["addr", "replace", &v6, "dev", &dev, "nodad"],
                        )?;
                    }
                    neighbours(pair)?;
                    if let Err(e) = wait_main(&mut responder, pair) {
                        f.problems
                            .push(format!("link flap {}: {}", f.link_flaps, super::one_line(&e)));
                    }
                    let mut targets = main.to_vec();
                    if extra_present {
                        targets.extend(extra);
                    }
                    for addr in targets {
                        let (sent, received) = ping_check(pair, addr, true)?;
                        f.pings.sent += sent;
                        f.pings.received += received;
                        if received != sent || sent == 0 {
                            f.problems.push(format!(
                                "link flap {}: {received} of {sent} pings to {addr} answered after link up",
                                f.link_flaps
                            ));
                        }
                    }
                    drop(guard);
                    shared.pause.store(false, Ordering::Relaxed);
                    next_flap += args.flap_every;
                }
                if now.duration_since(last_report) >= Duration::from_secs(60) {
                    last_report = now;
                    let totals = shared.totals.lock().unwrap_or_else(|e| e.into_inner()).0;
                    say(format!(
                        "{:.0} s: {} flood replies verified, {} address changes, {} link flaps, {} scrapes, VmRSS {} KiB, \
                         {} fds",
                        ready_at.elapsed().as_secs_f64(),
                        totals.correct,
                        f.address_changes,
                        f.link_flaps,
                        f.scrapes,
                        f.samples.last().map_or(0, |s| s.rss_kib),
                        f.samples.last().map_or(0, |s| s.fds)
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(())
        })();
        shared.stop.store(true, Ordering::Relaxed);
        shared.pause.store(false, Ordering::Relaxed);
        let _ = flood.join();
        result
    })?;
    f.duration_s = ready_at.elapsed().as_secs_f64();
    let (flood, flood_problems) = shared.totals.into_inner().unwrap_or_else(|e| e.into_inner());
    f.flood = flood;
    f.problems.extend(flood_problems);

    // Quiet now: the exporter republishes at most every 250 ms; two equal scrapes are final.
    let mut final_scrape = None;
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(400));
        let s = scrape(pair).ok();
        if s.is_some() && s == final_scrape {
            break;
        }
        final_scrape = s;
    }
    f.final_scrape = final_scrape;
    f.samples
        .push(ResourceSample::read(pid, ready_at.elapsed().as_secs_f64())?);
    let kernel = Nstat::read(pair, Side::Responder)?.since(&kernel_before);
    f.pings.by_kernel = kernel.counter("IcmpOutEchoReps")? + kernel.counter("Icmp6OutEchoReplies")?;
    let exit = responder.stop()?;
    f.exit_ok = exit.finished.status.success();
    if !f.exit_ok {
        f.problems.push(format!(
            "the responder exited with {}: {}",
            exit.finished.status,
            exit.finished.stderr.trim()
        ));
    }
    f.summary = exit.summary.as_ref().map(SummaryTotals::from_summary);
    Ok(f)
}

fn wait_carrier(pair: &NetnsPair) -> Result<(), LabError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let path = format!("/sys/class/net/{}/carrier", pair.responder_if());
    loop {
        let mut cmd = pair.command_in(Side::Responder, &tool("cat")?.to_string_lossy());
        cmd.arg(&path);
        if run_command(cmd, "reading the carrier", Duration::from_secs(5))
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "1")
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(LabError::Config(format!(
                "no carrier on {} 5 s after link up",
                pair.responder_if()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(rss: &[u64], fds: &[u64]) -> Vec<ResourceSample> {
        rss.iter()
            .zip(fds)
            .enumerate()
            .map(|(i, (&rss_kib, &fds))| ResourceSample {
                t_s: i as f64,
                rss_kib,
                fds,
            })
            .collect()
    }

    /// A run where everything adds up.
    fn good() -> Figures {
        Figures {
            duration_s: 30.0,
            rate: 20_000,
            flood: FloodTotals {
                chunks: 6,
                failed_chunks: 0,
                sent: 600_000,
                correct: 599_990,
                wrong: 0,
                lost: 10,
                kernel_dropped: 4,
            },
            pings: PingTotals {
                sent: 48,
                received: 36,
                by_kernel: 6,
            },
            address_changes: 6,
            link_flaps: 1,
            scrapes: 6,
            final_scrape: Some(Scrape {
                rx: 600_026,
                tx: 600_024,
                dropped: 0,
                kernel_dropped: 6,
                handled: 600_030,
                owned_addresses: 2,
            }),
            samples: samples(&[20_000; 20], &[12; 20]),
            summary: Some(SummaryTotals {
                rx: 600_024,
                tx: 600_024,
                dropped: 0,
                kernel_dropped: 6,
                handled: 600_030,
                frames_accounted: true,
                census: vec!["queue 0: 4096 frames = 4096 fill + 0 rx + 0 tx + 0 completion + 0 elsewhere".into()],
            }),
            exit_ok: true,
            problems: vec![],
        }
    }

    fn failed(f: &Figures) -> Vec<&'static str> {
        Verdict::judge(f)
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name)
            .collect()
    }

    #[test]
    fn a_consistent_run_passes() {
        let mut f = good();
        f.final_scrape = Some(Scrape {
            rx: 600_024,
            ..f.final_scrape.unwrap()
        });
        let v = Verdict::judge(&f);
        assert!(v.passed, "{:#?}", v.checks);
        assert_eq!(v.checks.len(), 8);
    }

    #[test]
    fn a_metrics_total_that_differs_from_the_summary_fails() {
        // good()'s scrape has rx 600_026 against the summary's 600_024.
        assert_eq!(failed(&good()), ["metrics"]);
    }

    fn consistent() -> Figures {
        let mut f = good();
        f.final_scrape.as_mut().unwrap().rx = 600_024;
        f
    }

    #[test]
    fn a_growing_rss_fails_and_warm_up_does_not() {
        // Warm-up in the first quarter, flat afterwards: stable.
        let mut rss = vec![18_000, 19_000, 20_000, 20_000, 20_000];
        rss.extend([20_100; 15]);
        let mut f = consistent();
        f.samples = samples(&rss, &[12; 20]);
        assert!(Verdict::judge(&f).passed);
        // 64 KiB more every sample: 4.8 MiB over the run.
        let leak: Vec<u64> = (0..20).map(|i| 20_000 + 256 * i).collect();
        f.samples = samples(&leak, &[12; 20]);
        assert_eq!(failed(&f), ["rss"]);
        let t = Verdict::judge(&f).rss_kib.unwrap();
        assert_eq!((t.first_quarter_max, t.last_quarter_max), (21_024, 24_864));
        assert_eq!(t.tolerance, 1024 + 420);
    }

    #[test]
    fn a_descriptor_leak_fails_and_a_transient_one_does_not() {
        let mut f = consistent();
        let mut fds = vec![12; 20];
        fds[17] = 14; // a scrape's connection caught in a sample
        f.samples = samples(&[20_000; 20], &fds);
        assert!(Verdict::judge(&f).passed);
        let leak: Vec<u64> = (0..20).map(|i| 12 + i / 3).collect();
        f.samples = samples(&[20_000; 20], &leak);
        assert_eq!(failed(&f), ["fds"]);
        f.samples.truncate(3);
        assert_eq!(failed(&f), ["rss", "fds"]);
    }

    #[test]
    fn unaccounted_replies_and_wrong_bytes_fail() {
        let mut f = consistent();
        f.flood.correct -= 1; // a reply sent that nobody verified
        assert_eq!(failed(&f), ["replies"]);
        let mut f = consistent();
        f.flood.wrong = 1;
        assert_eq!(failed(&f), ["replies"]);
        let mut f = consistent();
        f.pings.by_kernel = 7; // the kernel answered one more: the responder sent one too many
        assert_eq!(failed(&f), ["replies"]);
    }

    #[test]
    fn unexplained_losses_fail() {
        let mut f = consistent();
        f.flood.lost = 11; // one more than the drop counters explain
        assert_eq!(failed(&f), ["drops"]);
        let mut f = consistent();
        // Redirected by the program, but neither received nor counted as a kernel drop.
        f.summary.as_mut().unwrap().handled += 1;
        f.final_scrape.as_mut().unwrap().handled += 1;
        assert_eq!(failed(&f), ["drops"]);
    }

    #[test]
    fn census_exit_and_events_are_checked() {
        let mut f = consistent();
        f.summary.as_mut().unwrap().frames_accounted = false;
        assert_eq!(failed(&f), ["census"]);
        let mut f = consistent();
        f.exit_ok = false;
        assert_eq!(failed(&f), ["exit"]);
        let mut f = consistent();
        f.problems
            .push("address change 3 (add 198.18.0.10): 0 of 3 pings answered, 3 expected".into());
        assert_eq!(failed(&f), ["events"]);
        let mut f = consistent();
        f.summary = None;
        assert_eq!(failed(&f), ["exit"]);
    }

    #[test]
    fn scrapes_are_summed_over_labels() {
        let text = "# HELP afxdp_responder_requests_received_total x\n\
                    # TYPE afxdp_responder_requests_received_total counter\n\
                    afxdp_responder_requests_received_total{iface=\"a\",queue=\"0\"} 5\n\
                    afxdp_responder_requests_received_total{iface=\"a\",queue=\"1\"} 7\n\
                    afxdp_responder_replies_sent_total{iface=\"a\",queue=\"0\"} 11\n\
                    afxdp_responder_requests_dropped_total{iface=\"a\",queue=\"0\",reason=\"truncated\"} 1\n\
                    afxdp_responder_requests_dropped_total{iface=\"a\",queue=\"0\",reason=\"icmp-checksum\"} 0\n\
                    afxdp_responder_kernel_rx_dropped_total{iface=\"a\",queue=\"0\",reason=\"rx_ring_full\"} 3\n\
                    afxdp_responder_program_handled_total{iface=\"a\",engine=\"afxdp\"} 12\n\
                    afxdp_responder_owned_addresses{iface=\"a\",engine=\"afxdp\"} 2\n\
                    afxdp_responder_start_time_seconds 1.7e9\n";
        let s = Scrape::parse(text).unwrap();
        assert_eq!(
            (s.rx, s.tx, s.dropped, s.kernel_dropped, s.handled, s.owned_addresses),
            (12, 11, 1, 3, 12, 2)
        );
        let earlier = Scrape { tx: 12, ..s };
        assert_eq!(s.went_back(&earlier), ["tx"]);
        assert!(Scrape::parse("afxdp_responder_requests_received_total 1\n").is_err());
        assert!(Scrape::parse("afxdp_responder_requests_received_total x\n").is_err());
    }

    #[test]
    fn durations_rates_and_proc_status_parse() {
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("5s").is_err());
        assert!(parse_duration("2h").is_err());
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("10d").is_err());
        assert_eq!(parse_rate("20k").unwrap(), 20_000);
        assert_eq!(parse_rate("500").unwrap(), 500);
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("2000k").is_err());
        assert_eq!(
            parse_vm_rss("Name:\tx\nVmRSS:\t   20480 kB\nThreads: 4\n"),
            Some(20_480)
        );
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }
}
