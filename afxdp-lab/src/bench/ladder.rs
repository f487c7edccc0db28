//! `afxdp-lab bench --ladder`: the cost of a reply at fixed request rates, per wait policy and
//! engine, with a C AF_XDP responder side by side (docs/benchmarks.md, "Cost per reply").
//!
//! One namespace pair with one veth queue; for each repetition, every variant in turn (the order
//! rotates with the repetition, so slow drifts of the machine spread over all variants): start
//! it, run every family and rate of the ladder (1 k, 10 k, 100 k, 300 k requests/s and max by
//! default) with `afxdp-responder flood` pinned to the first allowed CPU and the responder (or the
//! C reference) pinned to the second, stop it. Per point: the responder process's CPU seconds per
//! million replies, host-wide softirq seconds per million replies, p50/p99 latency, answered %,
//! replies/s; medians over the repetitions, and the ratios that carry the claims
//! (`ladder.json`, `ladder.md`, `ladder.svg`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use plotters::prelude::*;
use serde::Serialize;

use super::generator::{self, Generator, Load, Rate};
use super::plot::PALETTE;
use super::progress::Progress;
use super::report::{Machine, Spread, loadavg, utc_now};
use super::{HostCpu, short_error};
use crate::c_reference::{self, CReference};
use crate::{Family, LabConfig, LabError, NetnsPair, ResponderProcess};

/// The default rungs: requests per second, then max.
pub const DEFAULT_RATES: [Rate; 5] = [
    Rate::Pps(1_000),
    Rate::Pps(10_000),
    Rate::Pps(100_000),
    Rate::Pps(300_000),
    Rate::Max,
];

/// One column of the ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LadderVariant {
    /// afxdp-responder with its defaults (no wait option).
    Default,
    /// `--wait adaptive` (the default until §17).
    Adaptive,
    /// `--wait sleep`.
    Sleep,
    /// `--wait spin`.
    Spin,
    /// `--busy-poll` (the kernel's preferred busy polling).
    BusyPoll,
    /// The C AF_XDP reference responder (`afxdp-lab/c-reference/`).
    CReference,
    /// The in-kernel XDP_TX engine.
    XdpTx,
    /// No XDP: the kernel's own ICMP code.
    Kernel,
}

impl LadderVariant {
    /// Every variant, in table order.
    pub const ALL: [LadderVariant; 8] = [
        LadderVariant::Default,
        LadderVariant::Adaptive,
        LadderVariant::Sleep,
        LadderVariant::Spin,
        LadderVariant::BusyPoll,
        LadderVariant::CReference,
        LadderVariant::XdpTx,
        LadderVariant::Kernel,
    ];

    /// Label for tables and plots.
    pub fn label(self) -> &'static str {
        match self {
            LadderVariant::Default => "AF_XDP defaults (no --wait)",
            LadderVariant::Adaptive => "AF_XDP --wait adaptive",
            LadderVariant::Sleep => "AF_XDP --wait sleep",
            LadderVariant::Spin => "AF_XDP --wait spin",
            LadderVariant::BusyPoll => "AF_XDP --busy-poll",
            LadderVariant::CReference => "C AF_XDP reference (libxdp, poll)",
            LadderVariant::XdpTx => "XDP_TX (in-kernel)",
            LadderVariant::Kernel => "kernel stack, no XDP",
        }
    }

    /// The responder's options (AF_XDP copy mode, native XDP, queue 0 on `cpu`), or `None` when
    /// afxdp-responder does not run.
    pub fn responder_args(self, cpu: usize) -> Option<Vec<String>> {
        let mut args: Vec<String> = ["--stats-interval", "0"].map(String::from).to_vec();
        let afxdp = [
            "--engine",
            "afxdp",
            "--queues",
            "0",
            "--xdp-mode",
            "native",
            "--mode",
            "copy",
            "--cpus",
        ];
        let mut wait = |extra: &[&str]| {
            args.extend(afxdp.iter().map(|s| s.to_string()));
            args.push(cpu.to_string());
            args.extend(extra.iter().map(|s| s.to_string()));
        };
        match self {
            LadderVariant::Default => wait(&[]),
            LadderVariant::Adaptive => wait(&["--wait", "adaptive"]),
            LadderVariant::Sleep => wait(&["--wait", "sleep"]),
            LadderVariant::Spin => wait(&["--wait", "spin"]),
            LadderVariant::BusyPoll => wait(&["--busy-poll"]),
            LadderVariant::XdpTx => args.extend(["--engine", "xdp-tx", "--xdp-mode", "native"].map(String::from)),
            LadderVariant::CReference | LadderVariant::Kernel => return None,
        }
        Some(args)
    }
}

/// Parses a rung: `max`, `300000`, `300k`, `1.5m`.
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    let t = text.trim().to_ascii_lowercase();
    if t == "max" {
        return Ok(Rate::Max);
    }
    let (num, mult) = match t.strip_suffix('k') {
        Some(n) => (n, 1e3),
        None => match t.strip_suffix('m') {
            Some(n) => (n, 1e6),
            None => (t.as_str(), 1.0),
        },
    };
    match num.parse::<f64>() {
        Ok(v) if v.is_finite() && v * mult >= 1.0 && v * mult <= 5e6 => Ok(Rate::Pps((v * mult).round() as u64)),
        _ => Err(format!(
            "{text:?} is not a rate: use max, or 1 to 5m requests/s like 300k"
        )),
    }
}

fn rate_label(rate: Rate) -> String {
    match rate {
        Rate::Max => "max".into(),
        Rate::Pps(p) => super::report::si(p as f64),
    }
}

/// One load run of the ladder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LadderSample {
    /// Repetition (from 1).
    pub rep: u32,
    /// Requests sent per second.
    pub sent_per_s: f64,
    /// Correct replies per second.
    pub replies_per_s: f64,
    /// Valid requests answered, percent.
    pub answered_pct: f64,
    /// Wrong replies (must be 0).
    pub wrong: u64,
    /// Replies (correct or not).
    pub replies: u64,
    /// On-CPU seconds of the responder process, all threads (schedstat; `None`: none runs).
    pub responder_cpu_s: Option<f64>,
    /// Host-wide softirq seconds.
    pub softirq_cpu_s: f64,
    /// Median round trip, µs.
    pub p50_us: f64,
    /// 99th percentile round trip, µs.
    pub p99_us: f64,
}

impl LadderSample {
    fn per_mreply(&self, cpu_s: f64) -> Option<f64> {
        (self.replies > 0).then(|| cpu_s / (self.replies as f64 / 1e6))
    }
}

/// One point of a curve: a variant at a rate, over the repetitions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LadderPoint {
    /// The variant.
    pub variant: LadderVariant,
    /// `v4` or `v6`.
    pub family: String,
    /// The rung.
    pub rate: Rate,
    /// Its runs.
    pub samples: Vec<LadderSample>,
    /// Responder CPU seconds per million replies.
    pub cpu_s_per_mreply: Option<Spread>,
    /// Host-wide softirq seconds per million replies.
    pub softirq_s_per_mreply: Option<Spread>,
    /// Correct replies per second.
    pub replies_per_s: Option<Spread>,
    /// Answered percent.
    pub answered_pct: Option<Spread>,
    /// p50 latency, µs.
    pub p50_us: Option<Spread>,
    /// p99 latency, µs.
    pub p99_us: Option<Spread>,
    /// Why it has no samples, if it has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl LadderPoint {
    fn summarize(&mut self) {
        let s = &self.samples;
        self.cpu_s_per_mreply = Spread::of(s.iter().filter_map(|x| x.responder_cpu_s.and_then(|c| x.per_mreply(c))));
        self.softirq_s_per_mreply = Spread::of(s.iter().filter_map(|x| x.per_mreply(x.softirq_cpu_s)));
        self.replies_per_s = Spread::of(s.iter().map(|x| x.replies_per_s));
        self.answered_pct = Spread::of(s.iter().map(|x| x.answered_pct));
        self.p50_us = Spread::of(s.iter().filter(|x| x.replies > 0).map(|x| x.p50_us));
        self.p99_us = Spread::of(s.iter().filter(|x| x.replies > 0).map(|x| x.p99_us));
    }
}

/// Everything one ladder run produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LadderReport {
    /// UTC start time.
    pub date: String,
    /// The machine (load averages at start and end).
    pub machine: Machine,
    /// Seconds per run.
    pub duration_s: f64,
    /// Repetitions.
    pub repetitions: u32,
    /// CPUs: generator, responder.
    pub generator_cpu: usize,
    /// The responder's (or C reference's) CPU.
    pub responder_cpu: usize,
    /// Every point.
    pub points: Vec<LadderPoint>,
    /// Anything the reader must know.
    pub notes: Vec<String>,
    /// Wall-clock seconds of the whole run.
    pub elapsed_s: f64,
}

/// What `--ladder` runs.
#[derive(Debug, Clone)]
pub struct LadderPlan {
    /// Variants, in table order.
    pub variants: Vec<LadderVariant>,
    /// Rungs.
    pub rates: Vec<Rate>,
    /// Families.
    pub families: Vec<Family>,
    /// Seconds per run.
    pub duration_s: f64,
    /// Repetitions.
    pub repetitions: u32,
}

impl LadderPlan {
    /// Number of load runs.
    pub fn runs(&self) -> usize {
        self.variants.len() * self.rates.len() * self.families.len() * self.repetitions as usize
    }

    /// Upper estimate of the wall-clock time.
    pub fn estimate(&self) -> Duration {
        let runs = self.runs() as f64 * (self.duration_s + super::RUN_OVERHEAD_S + super::PAUSE.as_secs_f64());
        let starts = (self.variants.len() * self.repetitions as usize) as f64 * super::ENGINE_OVERHEAD_S;
        Duration::from_secs_f64(runs + starts + super::PAIR_OVERHEAD_S)
    }
}

/// A running variant.
enum Engine {
    Responder(ResponderProcess),
    Reference(CReference),
    Nothing,
}

impl Engine {
    fn pid(&self) -> Option<u32> {
        match self {
            Engine::Responder(r) => Some(r.pid()),
            Engine::Reference(c) => Some(c.pid()),
            Engine::Nothing => None,
        }
    }

    /// Stops it, then waits (at most 10 s) until the responder interface has no XDP program
    /// left, so the next variant can attach (a loaded machine can take a while to tear down).
    fn stop(self, pair: &NetnsPair) {
        match self {
            Engine::Responder(r) => drop(r.stop()),
            Engine::Reference(c) => drop(c.stop()),
            Engine::Nothing => return,
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let out = pair
                .command_in(crate::Side::Responder, "ip")
                .args(["-details", "link", "show", "dev", pair.responder_if()])
                .output();
            match out {
                Ok(o) if !String::from_utf8_lossy(&o.stdout).contains("prog/xdp") => return,
                Err(_) => return,
                Ok(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
}

/// Runs the ladder with the afxdp-responder binary `exe`; writes `ladder.{json,md,svg}` into
/// `out` and returns the report.
pub fn run(plan: &LadderPlan, exe: &Path, out: &Path, interrupted: &AtomicBool) -> Result<LadderReport, LabError> {
    let started = Instant::now();
    let cpus = crate::allowed_cpus()?;
    let generator_cpu = cpus.first().copied().unwrap_or(0);
    let responder_cpu = cpus.get(1).copied().unwrap_or(generator_cpu);
    let mut report = LadderReport {
        date: utc_now(),
        machine: Machine::read(),
        duration_s: plan.duration_s,
        repetitions: plan.repetitions,
        generator_cpu,
        responder_cpu,
        points: Vec::new(),
        notes: vec![
            "one veth queue, copy mode, native XDP, 64-byte IP packets; generator pinned to the first allowed CPU, \
             responder (or C reference) to the second"
                .into(),
            "responder CPU is the on-CPU time of every thread of its process (schedstat); XDP_TX and the kernel stack do their work in softirq, \
             which /proc/stat counts host-wide (generator side included)"
                .into(),
        ],
        elapsed_s: 0.0,
    };
    if cpus.len() < 2 {
        report
            .notes
            .push("only one allowed CPU: generator and responder share it".into());
    }
    let reference = if plan.variants.contains(&LadderVariant::CReference) {
        match c_reference::build(&c_reference::default_dir()) {
            Ok(exe) => Some(exe),
            Err(e) => {
                report
                    .notes
                    .push(format!("C reference not built: {}", crate::one_line(&e)));
                None
            }
        }
    } else {
        None
    };
    let pair = NetnsPair::create(&LabConfig {
        queues: 1,
        ..LabConfig::default()
    })?;
    let mut points: BTreeMap<(LadderVariant, String, Rate), LadderPoint> = BTreeMap::new();
    for &variant in &plan.variants {
        for &family in &plan.families {
            for &rate in &plan.rates {
                points.insert(
                    (variant, family_id(family), rate),
                    LadderPoint {
                        variant,
                        family: family_id(family),
                        rate,
                        samples: Vec::new(),
                        cpu_s_per_mreply: None,
                        softirq_s_per_mreply: None,
                        replies_per_s: None,
                        answered_pct: None,
                        p50_us: None,
                        p99_us: None,
                        error: None,
                    },
                );
            }
        }
    }
    let per_variant = (plan.rates.len() * plan.families.len()) as u64;
    let progress = Progress::new(plan.runs() as u64, false);
    'reps: for rep in 0..plan.repetitions {
        let n = plan.variants.len();
        for i in 0..n {
            let variant = plan.variants[(i + rep as usize) % n];
            if interrupted.load(Ordering::Relaxed) {
                break 'reps;
            }
            progress.running(&format!("rep {} {}: starting", rep + 1, variant.label()));
            let engine = match start(variant, &pair, exe, reference.as_deref(), responder_cpu) {
                Ok(e) => e,
                Err(error) => {
                    progress.line(&format!("ladder: {}: FAILED to start: {error}", variant.label()));
                    for p in points.values_mut().filter(|p| p.variant == variant) {
                        p.error.get_or_insert_with(|| error.clone());
                    }
                    progress.done(per_variant);
                    continue;
                }
            };
            for &family in &plan.families {
                for &rate in &plan.rates {
                    if interrupted.load(Ordering::Relaxed) {
                        engine.stop(&pair);
                        break 'reps;
                    }
                    let what = format!(
                        "rep {} {} {} {}",
                        rep + 1,
                        variant.label(),
                        family_id(family),
                        rate_label(rate)
                    );
                    progress.running(&what);
                    let load = Load {
                        family,
                        ip_size: 64,
                        rate,
                        duration: Duration::from_secs_f64(plan.duration_s),
                        queues: 1,
                        // The ladder's figures were measured with the AF_XDP TX generator; the
                        // fixed rates are far below its ceiling, so it does not limit them.
                        generator: Generator::Xsk,
                    };
                    let key = (variant, family_id(family), rate);
                    // A generator socket whose teardown the kernel has not finished makes the
                    // next flood's bind fail with EBUSY: wait a second and try once more.
                    let measured = match measure(&pair, exe, &load, engine.pid(), generator_cpu) {
                        Err(e) if short_error(&e).contains("already used") => {
                            std::thread::sleep(Duration::from_secs(1));
                            measure(&pair, exe, &load, engine.pid(), generator_cpu)
                        }
                        other => other,
                    };
                    match measured {
                        Ok(mut sample) => {
                            sample.rep = rep + 1;
                            let cpu = sample.responder_cpu_s.and_then(|c| sample.per_mreply(c));
                            progress.line(&format!(
                                "ladder: {what}: {:>9.0} replies/s, {:>6.2} % answered, responder {} s/M, p50 {:.0} us, p99 {:.0} us",
                                sample.replies_per_s,
                                sample.answered_pct,
                                cpu.map_or_else(|| "-".into(), |c| format!("{c:.2}")),
                                sample.p50_us,
                                sample.p99_us
                            ));
                            if let Some(p) = points.get_mut(&key) {
                                p.samples.push(sample);
                            }
                        }
                        Err(e) => {
                            let error = short_error(&e);
                            progress.line(&format!("ladder: {what}: FAILED: {error}"));
                            if let Some(p) = points.get_mut(&key) {
                                p.error.get_or_insert(error);
                            }
                        }
                    }
                    progress.done(1);
                    std::thread::sleep(super::PAUSE);
                }
            }
            engine.stop(&pair);
        }
    }
    progress.finish();
    drop(pair);
    if interrupted.load(Ordering::Relaxed) {
        report.notes.push("interrupted: the results are partial".into());
    }
    // Table order: variants as planned, then family, then rate.
    let order = |v: LadderVariant| plan.variants.iter().position(|&x| x == v).unwrap_or(usize::MAX);
    let mut list: Vec<LadderPoint> = points.into_values().collect();
    let rung = |r: Rate| match r {
        Rate::Pps(p) => p,
        Rate::Max => u64::MAX,
    };
    list.sort_by_key(|p| (p.family.clone(), rung(p.rate), order(p.variant)));
    for p in &mut list {
        p.summarize();
    }
    report.points = list;
    report.machine.loadavg_end = loadavg();
    report.elapsed_s = started.elapsed().as_secs_f64();
    write(&report, out)?;
    Ok(report)
}

fn family_id(f: Family) -> String {
    match f {
        Family::V4 => "v4".into(),
        Family::V6 => "v6".into(),
    }
}

fn start(
    variant: LadderVariant,
    pair: &NetnsPair,
    exe: &Path,
    reference: Option<&Path>,
    cpu: usize,
) -> Result<Engine, String> {
    match variant {
        LadderVariant::Kernel => Ok(Engine::Nothing),
        LadderVariant::CReference => {
            let Some(bin) = reference else {
                return Err("the C reference could not be built (see the notes)".into());
            };
            // Pinned like the responder's worker: taskset execs it in place (same pid).
            let taskset = PathBuf::from("/usr/bin/taskset");
            let (program, pinned) = if taskset.is_file() {
                (taskset, true)
            } else {
                (bin.to_path_buf(), false)
            };
            // Right after another variant the queue can still be held by a socket the kernel
            // has not finished releasing (EBUSY from xsk_socket__create): try up to 3 times.
            let mut last = String::new();
            for _ in 0..3 {
                let result = if pinned {
                    CReference::start_with(
                        pair,
                        &program,
                        &["-c".into(), cpu.to_string(), bin.to_string_lossy().into()],
                    )
                } else {
                    CReference::start(pair, bin)
                };
                match result {
                    Ok(c) => return Ok(Engine::Reference(c)),
                    Err(e) => last = short_error(&e),
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(last)
        }
        _ => {
            let args = variant.responder_args(cpu).unwrap_or_default();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            ResponderProcess::start(pair, exe, &args)
                .map(Engine::Responder)
                .map_err(|e| short_error(&e))
        }
    }
}

/// One run: the flood pinned to `generator_cpu`, CPU accounting around it.
fn measure(
    pair: &NetnsPair,
    exe: &Path,
    load: &Load,
    pid: Option<u32>,
    generator_cpu: usize,
) -> Result<LadderSample, LabError> {
    // schedstat (ns on CPU, every thread) rather than utime+stime: at 1 k requests/s a run costs
    // a few 10 ms ticks only.
    let proc_before = pid.map(super::cpu::schedstat_ns).transpose()?;
    let host_before = HostCpu::read()?;
    let mut cmd = generator::flood_command(pair, exe, load);
    cmd.args(["--cpus", &generator_cpu.to_string()]);
    let flood = generator::run_flood_command(cmd, load)?;
    let host = HostCpu::read()?.since(&host_before);
    let responder_cpu_s = match (pid, proc_before) {
        (Some(pid), Some(before)) => Some(super::cpu::schedstat_ns(pid)?.saturating_sub(before) as f64 / 1e9),
        _ => None,
    };
    Ok(LadderSample {
        rep: 0,
        sent_per_s: flood.sent_per_s,
        replies_per_s: flood.replies_per_s,
        answered_pct: flood.answered_pct,
        wrong: flood.wrong,
        replies: flood.replies,
        responder_cpu_s,
        softirq_cpu_s: host.softirq_s,
        p50_us: flood.latency_us.p50,
        p99_us: flood.latency_us.p99,
    })
}

fn write(report: &LadderReport, out: &Path) -> Result<(), LabError> {
    let io = |what: String| move |source| LabError::Io { what, source };
    std::fs::create_dir_all(out).map_err(io(format!("creating {}", out.display())))?;
    let json = serde_json::to_string_pretty(report).unwrap_or_default();
    for (name, text) in [
        ("ladder.json", json + "\n"),
        ("ladder.md", markdown(report)),
        ("ladder.svg", svg(report).map_err(LabError::Config)?),
    ] {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(io(format!("writing {}", path.display())))?;
        println!("ladder: wrote {}", path.display());
    }
    Ok(())
}

fn cell(s: Option<Spread>, digits: usize) -> String {
    match s {
        Some(s) if s.min != s.max => format!("{:.d$} ({:.d$}–{:.d$})", s.median, s.min, s.max, d = digits),
        Some(s) => format!("{:.d$}", s.median, d = digits),
        None => "–".into(),
    }
}

fn median(
    report: &LadderReport,
    v: LadderVariant,
    family: &str,
    rate: Rate,
    f: fn(&LadderPoint) -> Option<Spread>,
) -> Option<f64> {
    report
        .points
        .iter()
        .find(|p| p.variant == v && p.family == family && p.rate == rate)
        .and_then(f)
        .map(|s| s.median)
}

/// The tables: every point, then the ratios.
pub fn markdown(report: &LadderReport) -> String {
    let mut md = format!(
        "Cost-per-reply ladder, {} · kernel {} · {} ({} CPUs) · {} × {:.1} s per point, medians (min–max) · \
         load average {} at start, {} at end · {:.0} s in all\n\n",
        report.date,
        report.machine.kernel,
        report.machine.cpu_model,
        report.machine.cpus,
        report.repetitions,
        report.duration_s,
        report.machine.loadavg_start,
        report.machine.loadavg_end,
        report.elapsed_s
    );
    for n in &report.notes {
        md.push_str(&format!("- {n}\n"));
    }
    md.push_str(
        "\n| family | rate | variant | answered % | replies/s | responder CPU s/M | softirq s/M (host) | p50 µs | p99 µs |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for p in &report.points {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            p.family,
            rate_label(p.rate),
            p.variant.label(),
            cell(p.answered_pct, 1),
            p.replies_per_s
                .map_or_else(|| "–".into(), |s| super::report::si(s.median)),
            cell(p.cpu_s_per_mreply, 2),
            cell(p.softirq_s_per_mreply, 2),
            cell(p.p50_us, 0),
            p.error
                .as_ref()
                .map_or_else(|| cell(p.p99_us, 0), |e| format!("{} ({e})", cell(p.p99_us, 0)))
        ));
    }
    // Ratios of medians: responder CPU per reply against `--wait sleep` and the C reference, and
    // throughput at max rate.
    use LadderVariant as V;
    let families: Vec<String> = {
        let mut f: Vec<String> = report.points.iter().map(|p| p.family.clone()).collect();
        f.dedup();
        f
    };
    let rates: Vec<Rate> = {
        let mut r: Vec<Rate> = report.points.iter().map(|p| p.rate).collect();
        // Fixed rates in increasing order, max last.
        r.sort_by_key(|&r| match r {
            Rate::Pps(p) => p,
            Rate::Max => u64::MAX,
        });
        r.dedup();
        r
    };
    md.push_str(
        "\nRatios of medians (CPU per reply: below 1.00 means cheaper than the reference it is divided by; \
         replies/s: above 1.00 means more):\n\n\
         | family | rate | default / sleep | default / C ref | adaptive / sleep | spin / sleep | busy-poll / sleep | sleep / C ref | replies/s default / sleep | replies/s default / C ref | replies/s adaptive / sleep |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let cpu = |p: &LadderPoint| p.cpu_s_per_mreply;
    let rps = |p: &LadderPoint| p.replies_per_s;
    for f in &families {
        for &r in &rates {
            let ratio = |a: V, b: V, m: fn(&LadderPoint) -> Option<Spread>| match (
                median(report, a, f, r, m),
                median(report, b, f, r, m),
            ) {
                (Some(x), Some(y)) if y > 0.0 => format!("{:.2}", x / y),
                _ => "–".into(),
            };
            md.push_str(&format!(
                "| {f} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                rate_label(r),
                ratio(V::Default, V::Sleep, cpu),
                ratio(V::Default, V::CReference, cpu),
                ratio(V::Adaptive, V::Sleep, cpu),
                ratio(V::Spin, V::Sleep, cpu),
                ratio(V::BusyPoll, V::Sleep, cpu),
                ratio(V::Sleep, V::CReference, cpu),
                ratio(V::Default, V::Sleep, rps),
                ratio(V::Default, V::CReference, rps),
                ratio(V::Adaptive, V::Sleep, rps),
            ));
        }
    }
    md
}

fn color(v: LadderVariant) -> RGBColor {
    PALETTE[LadderVariant::ALL.iter().position(|&x| x == v).unwrap_or(0) % PALETTE.len()]
}

/// The ladder plot: responder CPU s per million replies against the offered rate (left), p50
/// (solid) and p99 (dashed, lighter) latency against the offered rate (right); log-log, one curve
/// per variant, first family only. Max-rate points sit at the median rate they achieved.
pub fn svg(report: &LadderReport) -> Result<String, String> {
    const W: u32 = 1400;
    const H: u32 = 620;
    let mut buf = String::new();
    {
        let err = |e: DrawingAreaErrorKind<_>| e.to_string();
        let root = SVGBackend::with_string(&mut buf, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let family = report
            .points
            .first()
            .map_or_else(|| "v4".to_string(), |p| p.family.clone());
        let title = format!(
            "Cost per reply vs request rate ({family}, 1 veth queue, copy mode, 64 B) · {} · load avg {} → {}",
            report.date, report.machine.loadavg_start, report.machine.loadavg_end
        );
        let (head, body) = root.split_vertically(34);
        head.draw(&Text::new(title, (12, 8), ("sans-serif", 17).into_font().color(&BLACK)))
            .map_err(err)?;
        let (left, right) = body.split_horizontally(W / 2);
        let x_of = |p: &LadderPoint| match p.rate {
            Rate::Pps(r) => Some(r as f64),
            Rate::Max => p.replies_per_s.map(|s| s.median).filter(|v| *v > 0.0),
        };
        let mine: Vec<&LadderPoint> = report.points.iter().filter(|p| p.family == family).collect();
        let xs: Vec<f64> = mine.iter().filter_map(|p| x_of(p)).collect();
        let x_lo = xs.iter().copied().fold(f64::INFINITY, f64::min).min(1e3) * 0.7;
        let x_hi = xs.iter().copied().fold(0.0, f64::max).max(1e4) * 1.4;
        let variants: Vec<LadderVariant> = {
            let mut v: Vec<LadderVariant> = mine.iter().map(|p| p.variant).collect();
            v.sort();
            v.dedup();
            v
        };
        let curve = |v: LadderVariant, y: fn(&LadderPoint) -> Option<Spread>| -> Vec<(f64, f64)> {
            let mut pts: Vec<(f64, f64)> = mine
                .iter()
                .filter(|p| p.variant == v)
                .filter_map(|p| Some((x_of(p)?, y(p)?.median)))
                .filter(|&(_, y)| y > 0.0)
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            pts
        };
        // Left: CPU per reply.
        let cpu_max = mine
            .iter()
            .filter_map(|p| p.cpu_s_per_mreply.map(|s| s.median))
            .fold(0.0, f64::max)
            .max(1.0);
        let cpu_min = mine
            .iter()
            .filter_map(|p| p.cpu_s_per_mreply.map(|s| s.median))
            .filter(|v| *v > 0.0)
            .fold(f64::INFINITY, f64::min)
            .min(cpu_max / 10.0);
        let mut chart = ChartBuilder::on(&left)
            .caption("Responder CPU s per million replies (log-log)", ("sans-serif", 15))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((x_lo..x_hi).log_scale(), (cpu_min * 0.7..cpu_max * 1.5).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("requests/s offered (max: achieved)")
            .y_desc("CPU s / M replies")
            .x_label_formatter(&|v| super::report::si(*v))
            .y_label_formatter(&|v| {
                if *v < 0.1 { format!("{v:.3}") } else { format!("{v:.1}") }
            })
            .draw()
            .map_err(err)?;
        for &v in &variants {
            let c = color(v);
            let pts = curve(v, |p| p.cpu_s_per_mreply);
            if pts.is_empty() {
                continue;
            }
            chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                .map_err(err)?
                .label(v.label())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        // Right: latency.
        let lat_max = mine
            .iter()
            .filter_map(|p| p.p99_us.map(|s| s.median))
            .fold(0.0, f64::max)
            .max(10.0);
        let lat_min = mine
            .iter()
            .filter_map(|p| p.p50_us.map(|s| s.median))
            .filter(|v| *v > 0.0)
            .fold(f64::INFINITY, f64::min)
            .min(lat_max / 10.0);
        let mut chart = ChartBuilder::on(&right)
            .caption(
                "Round trip p50 (solid) and p99 (dashed) µs (log-log)",
                ("sans-serif", 15),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((x_lo..x_hi).log_scale(), (lat_min * 0.7..lat_max * 1.5).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("requests/s offered (max: achieved)")
            .y_desc("µs")
            .x_label_formatter(&|v| super::report::si(*v))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(err)?;
        for &v in &variants {
            let c = color(v);
            let p50 = curve(v, |p| p.p50_us);
            let p99 = curve(v, |p| p.p99_us);
            chart
                .draw_series(LineSeries::new(p50.clone(), c.stroke_width(2)))
                .map_err(err)?
                .label(v.label())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
            chart
                .draw_series(p50.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .map_err(err)?;
            chart
                .draw_series(DashedLineSeries::new(p99, 6, 4, c.mix(0.6).stroke_width(2)))
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(rep: u32, replies: u64, cpu: Option<f64>, p50: f64) -> LadderSample {
        LadderSample {
            rep,
            sent_per_s: replies as f64,
            replies_per_s: replies as f64,
            answered_pct: 100.0,
            wrong: 0,
            replies,
            responder_cpu_s: cpu,
            softirq_cpu_s: 1.0,
            p50_us: p50,
            p99_us: p50 * 3.0,
        }
    }

    fn report() -> LadderReport {
        let mut points = Vec::new();
        for (v, cpu) in [
            (LadderVariant::Default, 2.0),
            (LadderVariant::Sleep, 1.0),
            (LadderVariant::CReference, 4.0),
        ] {
            for rate in [Rate::Pps(1000), Rate::Pps(100_000), Rate::Max] {
                let mut p = LadderPoint {
                    variant: v,
                    family: "v4".into(),
                    rate,
                    samples: (1..=3)
                        .map(|r| sample(r, 1_000_000, Some(cpu * f64::from(r)), 50.0))
                        .collect(),
                    cpu_s_per_mreply: None,
                    softirq_s_per_mreply: None,
                    replies_per_s: None,
                    answered_pct: None,
                    p50_us: None,
                    p99_us: None,
                    error: None,
                };
                p.summarize();
                points.push(p);
            }
        }
        LadderReport {
            date: "2026-01-01 00:00 UTC".into(),
            machine: Machine::read(),
            duration_s: 1.0,
            repetitions: 3,
            generator_cpu: 0,
            responder_cpu: 1,
            points,
            notes: vec![],
            elapsed_s: 1.0,
        }
    }

    #[test]
    fn rates_parse_with_suffixes_and_bad_ones_say_what_to_type() {
        assert_eq!(parse_rate("max"), Ok(Rate::Max));
        assert_eq!(parse_rate("300k"), Ok(Rate::Pps(300_000)));
        assert_eq!(parse_rate("1.5m"), Ok(Rate::Pps(1_500_000)));
        assert_eq!(parse_rate("1000"), Ok(Rate::Pps(1000)));
        for bad in ["", "fast", "0", "9m"] {
            assert!(parse_rate(bad).unwrap_err().contains("use max"), "{bad}");
        }
    }

    #[test]
    fn medians_per_point_and_ratios_between_variants() {
        let r = report();
        let p = &r.points[0];
        // Samples 2, 4, 6 s per million replies: median 4.
        assert_eq!(p.cpu_s_per_mreply.unwrap().median, 2.0 * 2.0);
        let md = markdown(&r);
        // default/sleep = 4/2 = 2.00, default/C = 4/8 = 0.50, sleep/C = 0.25.
        assert!(
            md.contains("| v4 | 1 k | 2.00 | 0.50 | – | – | – | 0.25 | 1.00 | 1.00 | – |"),
            "{md}"
        );
    }

    #[test]
    fn the_plot_has_a_curve_per_variant() {
        let svg = svg(&report()).unwrap();
        for v in [LadderVariant::Default, LadderVariant::Sleep, LadderVariant::CReference] {
            assert!(svg.contains(v.label()), "{}", v.label());
        }
        assert!(svg.contains("polyline") || svg.contains("path"));
    }

    #[test]
    fn variants_run_the_options_they_name() {
        let args = |v: LadderVariant| v.responder_args(1).map(|a| a.join(" "));
        assert!(args(LadderVariant::Default).unwrap().ends_with("--cpus 1"));
        assert!(args(LadderVariant::Adaptive).unwrap().ends_with("--wait adaptive"));
        assert!(args(LadderVariant::Sleep).unwrap().ends_with("--wait sleep"));
        assert!(args(LadderVariant::Spin).unwrap().ends_with("--wait spin"));
        assert!(args(LadderVariant::BusyPoll).unwrap().ends_with("--busy-poll"));
        assert_eq!(args(LadderVariant::Kernel), None);
        assert_eq!(args(LadderVariant::CReference), None);
    }
}
