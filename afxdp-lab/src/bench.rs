//! `afxdp-lab bench`: every engine and mode against the same workloads, side by side.
//!
//! For each veth queue count it builds a fresh [`NetnsPair`], and for each engine/mode (AF_XDP copy
//! mode with native XDP, AF_XDP copy mode with SKB XDP, AF_XDP zero-copy where the device has it,
//! the in-kernel XDP_TX engine, and the kernel's own stack with no XDP at all) it starts the
//! responder once and runs every workload (IPv4 and ICMPv6; 64- and 1000-byte IP packets; max
//! rate and a fixed rate below saturation) several times from the client namespace. It measures:
//!
//! - on the generator's side (`afxdp-responder flood`, see [`generator`]): sent, replies,
//!   correct, wrong, replies/s, latency percentiles;
//! - the responder process's CPU seconds (`utime + stime` of `/proc/<pid>/stat`, all threads)
//!   over the load run, with a per-thread breakdown;
//! - host-wide softirq and busy CPU seconds from `/proc/stat` over the same window. `/proc/stat`
//!   covers the whole machine, the generator's softirq work included: the bench must be the only
//!   load on the machine. The generator's own process CPU is not counted anywhere.
//!
//! It also measures the responder's idle CPU (default options, no traffic) and writes
//! `latest.json`, `latest.md` and `latest.svg` into the output directory (see [`report`] and
//! [`plot`]).

pub mod cpu;
pub mod generator;
pub mod ladder;
pub mod plot;
pub mod progress;
pub mod report;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use self::cpu::{HostCpu, ProcessCpu};
use self::generator::{Generator, Load, Rate};
use self::report::{BenchReport, IdleCheck, Row, RowStatus, Sample, Workload};
use super::{Family, LabConfig, LabError, NetnsPair, ResponderProcess, Side, require_root};
use crate::error::one_line;

/// Options of `afxdp-lab bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// veth queue counts to measure, e.g. 1,2 (a fresh namespace pair for each).
    #[arg(long, value_delimiter = ',', default_value = "1,2", value_name = "LIST",
          value_parser = clap::value_parser!(u32).range(1..=8))]
    pub queues: Vec<u32>,

    /// Seconds of load per run.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    pub duration: f64,

    /// Runs of each engine/workload; the table gives the median and the min–max.
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=20))]
    pub repetitions: u32,

    /// About a minute: one queue, 1-second runs, one repetition, a 2-second idle check.
    #[arg(long)]
    pub quick: bool,

    /// Where to write latest.json, latest.md and latest.svg.
    #[arg(long, default_value = "docs/bench-results", value_name = "DIR")]
    pub out: PathBuf,

    /// The fixed request rate (requests/s over all queues) that measures CPU per reply below
    /// saturation.
    #[arg(long, default_value_t = 100_000, value_name = "PPS",
          value_parser = clap::value_parser!(u64).range(1..=5_000_000))]
    pub fixed_rate: u64,

    /// Engines/modes to run (default: all).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub engines: Vec<EngineMode>,

    /// IP versions to send: v4, v6 (default: both).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub families: Vec<FamilyArg>,

    /// IP packet sizes in bytes (default: 64,1000).
    #[arg(long, value_delimiter = ',', value_name = "LIST",
          value_parser = clap::value_parser!(u16).range(64..=1500))]
    pub sizes: Vec<u16>,

    /// Request generators, each a row of its own, interleaved run by run: live (made in the
    /// kernel by `flood --inject live`, so the generator's core is not the limit), xsk (`flood`'s
    /// AF_XDP TX rings). Live needs a CPU per queue: rows with more queues than CPUs use xsk.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "live", value_name = "LIST")]
    pub generator: Vec<Generator>,

    /// Rates to run: max, fixed (default: both).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub rates: Vec<RateArg>,

    /// Seconds of the idle CPU check (responder with default options, no traffic); 0 skips it.
    #[arg(long, value_name = "SECONDS")]
    pub idle_seconds: Option<f64>,

    /// Also run the VM rows on these emulated NICs (virtio, igb): zero-copy vs copy vs XDP_TX vs
    /// the kernel stack in a QEMU guest (see `afxdp-lab vm --bench`), into the same table, JSON
    /// and a second plot (latest-vm.svg).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LIST")]
    pub vm: Vec<crate::vm::Nic>,

    /// Guest kernel series of the VM rows.
    #[arg(long, value_enum, default_value = "7", value_name = "SERIES")]
    pub vm_kernel: crate::vm::GuestKernel,

    /// Request rates of the VM rows' floods (emulated NICs answer far less than veth).
    #[arg(long, value_delimiter = ',', default_value = "5k,20k", value_name = "LIST")]
    pub vm_rates: Vec<String>,

    /// Also replace the results section of this Markdown file (between `<!-- bench:begin -->` and
    /// `<!-- bench:end -->`), e.g. docs/benchmarks.md.
    #[arg(long, value_name = "FILE")]
    pub update_doc: Option<PathBuf>,

    /// Run the cost-per-reply ladder instead of the matrix: fixed request rates (--ladder-rates)
    /// for every wait policy, XDP_TX, the kernel stack and the C AF_XDP reference, one veth queue,
    /// variants interleaved; writes ladder.json, ladder.md and ladder.svg into --out. Uses
    /// --duration, --repetitions and --families (default: v4 only).
    #[arg(long)]
    pub ladder: bool,

    /// The ladder's rungs: requests/s (300k, 1.5m) or max.
    #[arg(long, value_delimiter = ',', value_name = "LIST", default_value = "1k,10k,100k,300k,max",
          value_parser = ladder::parse_rate)]
    pub ladder_rates: Vec<Rate>,

    /// The ladder's variants (default: all).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LIST")]
    pub ladder_variants: Vec<ladder::LadderVariant>,
}

/// IP version on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FamilyArg {
    /// IPv4 / ICMP.
    V4,
    /// IPv6 / ICMPv6.
    V6,
}

/// Rate kind on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RateArg {
    /// As fast as the generator can.
    Max,
    /// `--fixed-rate` requests per second.
    Fixed,
}

/// One engine in one mode: a column of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum EngineMode {
    /// AF_XDP, copy mode, XDP program in native (driver) mode.
    AfxdpCopyNative,
    /// The same, with workers that always sleep in poll() (`--wait sleep`) instead of the adaptive
    /// spin: the CPU-per-reply side of the trade-off.
    AfxdpCopyNativeSleep,
    /// AF_XDP, copy mode, XDP program in SKB (generic) mode.
    AfxdpCopySkb,
    /// AF_XDP, zero-copy (needs driver support; veth has none).
    AfxdpZeroCopy,
    /// The in-kernel XDP_TX responder.
    XdpTx,
    /// No XDP at all: the kernel's own ICMP code answers.
    Kernel,
}

impl EngineMode {
    /// Every engine/mode, in table order.
    pub const ALL: [EngineMode; 6] = [
        EngineMode::AfxdpCopyNative,
        EngineMode::AfxdpCopyNativeSleep,
        EngineMode::AfxdpCopySkb,
        EngineMode::AfxdpZeroCopy,
        EngineMode::XdpTx,
        EngineMode::Kernel,
    ];

    /// Label for tables and plots.
    pub fn label(self) -> &'static str {
        match self {
            EngineMode::AfxdpCopyNative => "AF_XDP copy, native XDP",
            EngineMode::AfxdpCopyNativeSleep => "AF_XDP copy, native, --wait sleep",
            EngineMode::AfxdpCopySkb => "AF_XDP copy, SKB XDP",
            EngineMode::AfxdpZeroCopy => "AF_XDP zero-copy",
            EngineMode::XdpTx => "XDP_TX (in-kernel)",
            EngineMode::Kernel => "kernel stack, no XDP",
        }
    }

    /// Short id (the `--engines` value).
    pub fn id(self) -> &'static str {
        match self {
            EngineMode::AfxdpCopyNative => "afxdp-copy-native",
            EngineMode::AfxdpCopyNativeSleep => "afxdp-copy-native-sleep",
            EngineMode::AfxdpCopySkb => "afxdp-copy-skb",
            EngineMode::AfxdpZeroCopy => "afxdp-zero-copy",
            EngineMode::XdpTx => "xdp-tx",
            EngineMode::Kernel => "kernel",
        }
    }

    /// The responder's options for this engine/mode (without `--iface`), or `None` when no responder
    /// runs (the kernel stack).
    pub fn responder_args(self, queues: u32) -> Option<Vec<String>> {
        let queue_list = if queues == 1 {
            "0".to_string()
        } else {
            format!("0-{}", queues - 1)
        };
        let mut args: Vec<String> = Vec::new();
        let mut afxdp = |xdp_mode: &str, mode: &str| {
            args.extend(
                [
                    "--engine",
                    "afxdp",
                    "--queues",
                    &queue_list,
                    "--xdp-mode",
                    xdp_mode,
                    "--mode",
                    mode,
                ]
                .iter()
                .map(|s| s.to_string()),
            );
        };
        match self {
            EngineMode::AfxdpCopyNative => afxdp("native", "copy"),
            EngineMode::AfxdpCopyNativeSleep => {
                afxdp("native", "copy");
                args.extend(["--wait", "sleep"].map(String::from));
            }
            EngineMode::AfxdpCopySkb => afxdp("skb", "copy"),
            EngineMode::AfxdpZeroCopy => afxdp("native", "zero-copy"),
            EngineMode::XdpTx => args.extend(["--engine", "xdp-tx", "--xdp-mode", "native"].map(String::from)),
            EngineMode::Kernel => return None,
        }
        args.extend(["--stats-interval", "0"].map(String::from));
        Some(args)
    }
}

/// The effective plan of a bench run, after `--quick` and the defaults.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// veth queue counts.
    pub queues: Vec<u32>,
    /// Engines/modes.
    pub engines: Vec<EngineMode>,
    /// Workloads, in run order (one per generator).
    pub workloads: Vec<Workload>,
    /// Seconds of load per run.
    pub duration_s: f64,
    /// Runs per engine and workload.
    pub repetitions: u32,
    /// Seconds of the idle check (0: skipped).
    pub idle_s: f64,
}

/// Seconds a load run costs beyond its duration (generator start, counters, pause), for the estimate.
const RUN_OVERHEAD_S: f64 = 1.0;
/// Seconds to start and stop a responder, for the estimate.
const ENGINE_OVERHEAD_S: f64 = 2.0;
/// Seconds to build and remove a namespace pair, for the estimate.
const PAIR_OVERHEAD_S: f64 = 2.0;
/// Pause between runs so queues drain and counters settle.
const PAUSE: Duration = Duration::from_millis(200);

impl Plan {
    /// The plan for `args`.
    pub fn new(args: &BenchArgs) -> Result<Self, LabError> {
        let duration_s = if args.quick { 1.0 } else { args.duration };
        if !(duration_s.is_finite() && (0.1..=60.0).contains(&duration_s)) {
            return Err(LabError::Config(format!(
                "--duration {duration_s}: use 0.1 to 60 seconds"
            )));
        }
        let idle_s = args.idle_seconds.unwrap_or(if args.quick { 2.0 } else { 5.0 });
        if !(idle_s.is_finite() && (0.0..=60.0).contains(&idle_s)) {
            return Err(LabError::Config(format!(
                "--idle-seconds {idle_s}: use 0 to 60 seconds"
            )));
        }
        let mut queues = if args.quick { vec![1] } else { args.queues.clone() };
        queues.dedup();
        let engines = if args.engines.is_empty() {
            // --quick keeps to the default responder: the `--wait sleep` variant is a comparison
            // for the full run.
            EngineMode::ALL
                .into_iter()
                .filter(|&e| !(args.quick && e == EngineMode::AfxdpCopyNativeSleep))
                .collect()
        } else {
            args.engines.clone()
        };
        let families = if args.families.is_empty() {
            vec![Family::V4, Family::V6]
        } else {
            args.families
                .iter()
                .map(|f| match f {
                    FamilyArg::V4 => Family::V4,
                    FamilyArg::V6 => Family::V6,
                })
                .collect()
        };
        let sizes = if args.sizes.is_empty() {
            vec![64, 1000]
        } else {
            args.sizes.clone()
        };
        let rates = if args.rates.is_empty() {
            vec![Rate::Max, Rate::Pps(args.fixed_rate)]
        } else {
            args.rates
                .iter()
                .map(|r| match r {
                    RateArg::Max => Rate::Max,
                    RateArg::Fixed => Rate::Pps(args.fixed_rate),
                })
                .collect()
        };
        let mut generators = args.generator.clone();
        generators.dedup();
        if generators.is_empty() {
            generators.push(Generator::Live);
        }
        let mut workloads = Vec::new();
        for &family in &families {
            for &ip_size in &sizes {
                for &rate in &rates {
                    for &generator in &generators {
                        workloads.push(Workload::new(family, ip_size, rate).with_generator(generator));
                    }
                }
            }
        }
        Ok(Plan {
            queues,
            engines,
            workloads,
            duration_s,
            repetitions: if args.quick { 1 } else { args.repetitions },
            idle_s,
        })
    }

    /// Load runs in the whole plan (engines that turn out unavailable are skipped and cost less).
    pub fn runs(&self) -> usize {
        self.queues.len() * self.engines.len() * self.workloads.len() * self.repetitions as usize
    }

    /// Upper estimate of the wall-clock time.
    pub fn estimate(&self) -> Duration {
        let runs = self.runs() as f64 * (self.duration_s + RUN_OVERHEAD_S + PAUSE.as_secs_f64());
        let engines = (self.queues.len() * self.engines.len()) as f64 * ENGINE_OVERHEAD_S;
        let pairs = (self.queues.len() + 1) as f64 * PAIR_OVERHEAD_S;
        let idle = if self.idle_s > 0.0 {
            self.idle_s + ENGINE_OVERHEAD_S
        } else {
            0.0
        };
        Duration::from_secs_f64(runs + engines + pairs + idle)
    }
}

/// Runs the bench with the responder binary `exe`; prints progress and where the results went.
pub fn run(args: &BenchArgs, exe: &Path) -> Result<ExitCode, LabError> {
    require_root()?;
    let plan = Plan::new(args)?;
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Ctrl-C stops after the current run and still writes (and cleans up) what was measured.
        let _ = signal_hook::flag::register(sig, Arc::clone(&interrupted));
    }
    if args.ladder {
        return run_ladder(args, exe, &plan, &interrupted);
    }
    let started = Instant::now();
    let estimate = plan.estimate();
    println!(
        "bench: {} queue count(s) x {} engine/mode(s) x {} workload(s) x {} repetition(s) of {:.1} s = {} runs; \
         estimated at most {}",
        plan.queues.len(),
        plan.engines.len(),
        plan.workloads.len(),
        plan.repetitions,
        plan.duration_s,
        plan.runs(),
        human_duration(estimate)
    );
    println!("bench: /proc/stat softirq time is host-wide: keep the machine otherwise idle while this runs");

    let mut report = BenchReport::new(&plan, args.fixed_rate);
    if plan.idle_s > 0.0 && !interrupted.load(Ordering::Relaxed) {
        match idle_check(exe, Duration::from_secs_f64(plan.idle_s)) {
            Ok(idle) => {
                println!(
                    "bench: idle CPU of the responder (default options, no traffic, {:.1} s): {:.3} % of a core ({})",
                    idle.seconds,
                    idle.pct_of_core,
                    if idle.pass {
                        "under the 1 % bar"
                    } else {
                        "OVER the 1 % bar"
                    }
                );
                report.idle = Some(idle);
            }
            Err(err) => {
                println!("bench: idle check failed: {err}");
                report.notes.push(format!("idle check failed: {err}"));
            }
        }
    }

    // A bar with the run being measured and an ETA on a terminal, the same lines as before
    // otherwise.
    let progress = progress::Progress::new(plan.runs() as u64, false);
    'queues: for &queues in &plan.queues {
        let pair = NetnsPair::create(&LabConfig {
            queues,
            ..LabConfig::default()
        })?;
        if queues > 1 {
            steer_responder_tx(&pair)?;
        }
        for &engine in &plan.engines {
            if interrupted.load(Ordering::Relaxed) {
                break 'queues;
            }
            report
                .rows
                .extend(bench_engine(&pair, exe, engine, &plan, &interrupted, &progress));
        }
    }
    progress.finish();
    if !args.vm.is_empty() && !interrupted.load(Ordering::Relaxed) {
        let vm_args = crate::vm::VmBenchArgs {
            bench: true,
            nics: args.vm.clone(),
            rates: args.vm_rates.clone(),
            duration: plan.duration_s.min(30.0),
            repetitions: plan.repetitions,
            variants: ["zero-copy", "copy", "xdp-tx", "kernel"].map(String::from).to_vec(),
            out: args.out.clone(),
            name: "latest-vm".into(),
        };
        let cache = crate::vm::Cache::default();
        match crate::vm::measure_vm_bench(
            &vm_args,
            args.vm_kernel,
            &args.vm,
            &cache,
            false,
            Arc::clone(&interrupted),
        ) {
            Ok(vm) => report.vm = Some(vm),
            Err(err) => {
                println!("bench: VM rows failed: {}", one_line(&err));
                report.notes.push(format!("VM rows failed: {}", one_line(&err)));
            }
        }
    }
    if interrupted.load(Ordering::Relaxed) {
        report.notes.push("interrupted: the results are partial".into());
    }
    report.finish(started.elapsed());

    std::fs::create_dir_all(&args.out).map_err(|source| LabError::Io {
        what: format!("creating {}", args.out.display()),
        source,
    })?;
    let written = report.write(&args.out)?;
    for path in &written {
        println!("bench: wrote {}", path.display());
    }
    if let Some(doc) = &args.update_doc {
        report::update_doc(doc, &report, &args.out)?;
        println!("bench: updated the results section of {}", doc.display());
    }
    println!("bench: done in {}", human_duration(started.elapsed()));
    println!();
    println!("{}", report.markdown_table());
    if let Some(vm) = &report.vm {
        println!("{}", crate::vm::bench_output::markdown(vm));
    }
    Ok(
        if report.rows.iter().any(|r| matches!(r.status, RowStatus::Failed { .. }))
            || report.vm.as_ref().is_some_and(crate::vm::VmBenchReport::failed)
        {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        },
    )
}

/// `--ladder`: the cost-per-reply ladder (see [`ladder`]).
fn run_ladder(args: &BenchArgs, exe: &Path, plan: &Plan, interrupted: &AtomicBool) -> Result<ExitCode, LabError> {
    let lplan = ladder::LadderPlan {
        variants: if args.ladder_variants.is_empty() {
            ladder::LadderVariant::ALL.to_vec()
        } else {
            args.ladder_variants.clone()
        },
        rates: args.ladder_rates.clone(),
        families: if args.families.is_empty() {
            vec![Family::V4]
        } else {
            args.families
                .iter()
                .map(|f| match f {
                    FamilyArg::V4 => Family::V4,
                    FamilyArg::V6 => Family::V6,
                })
                .collect()
        },
        duration_s: plan.duration_s,
        repetitions: plan.repetitions,
    };
    println!(
        "ladder: {} variant(s) x {} rate(s) x {} famil(y/ies) x {} repetition(s) of {:.1} s = {} runs; estimated at most {}",
        lplan.variants.len(),
        lplan.rates.len(),
        lplan.families.len(),
        lplan.repetitions,
        lplan.duration_s,
        lplan.runs(),
        human_duration(lplan.estimate())
    );
    let report = ladder::run(&lplan, exe, &args.out, interrupted)?;
    println!();
    println!("{}", ladder::markdown(&report));
    let failed = report.points.iter().any(|p| p.error.is_some())
        || report.points.iter().flat_map(|p| &p.samples).any(|s| s.wrong > 0);
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// "3 min 20 s".
fn human_duration(d: Duration) -> String {
    let s = d.as_secs_f64().round() as u64;
    if s >= 60 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{s} s")
    }
}

/// Why `engine` is not measured with `queues` veth queues, if it is not. (Zero-copy is tried: the
/// responder says whether the device has it.)
fn unavailable(engine: EngineMode, queues: u32) -> Option<String> {
    match engine {
        // Generic XDP on veth sees every frame on RX queue 0: worker 0 answers everything on TX
        // queue 0, and a generator that expects each reply on its request's queue counts the
        // other queues' replies as wrong. One queue is all SKB mode can show on veth.
        EngineMode::AfxdpCopySkb if queues > 1 => Some(
            "not measured with several queues: on veth, SKB-mode XDP delivers every frame on queue 0 \
             (see the 1-queue rows)"
                .into(),
        ),
        _ => None,
    }
}

/// Every row of one engine on one pair: start it once, run each workload `repetitions` times.
fn bench_engine(
    pair: &NetnsPair,
    exe: &Path,
    engine: EngineMode,
    plan: &Plan,
    interrupted: &AtomicBool,
    progress: &progress::Progress,
) -> Vec<Row> {
    let queues = pair.config().queues;
    let engine_runs = (plan.workloads.len() * plan.repetitions as usize) as u64;
    let skipped = |reason: String| {
        progress.line(&format!(
            "bench: {queues} queue(s), {}: skipped: {reason}",
            engine.label()
        ));
        progress.done(engine_runs);
        vec![Row::skipped(queues, engine, reason)]
    };
    if let Some(reason) = unavailable(engine, queues) {
        return skipped(reason);
    }
    // On veth, XDP_TX frames reach the peer only if the peer runs XDP too: the flood generator
    // attaches its own program (the reply capture) on the client veth, which is enough.
    let responder = match engine.responder_args(queues) {
        None => None,
        Some(args) => {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            match ResponderProcess::start(pair, exe, &args) {
                Ok(r) => Some(r),
                // The responder refuses to start when the device has no zero-copy; its error is
                // one line on stderr (errors are not events), quoted as it is.
                Err(LabError::CommandFailed { stderr, .. }) if engine == EngineMode::AfxdpZeroCopy => {
                    return skipped(format!("not supported by veth: the responder said \"{stderr}\""));
                }
                Err(err) => {
                    let error = format!("the responder did not start: {}", short_error(&err));
                    progress.line(&format!(
                        "bench: {queues} queue(s), {}: FAILED: {error}",
                        engine.label()
                    ));
                    progress.done(engine_runs);
                    return plan
                        .workloads
                        .iter()
                        .map(|&w| Row::failed(queues, engine, w, error.clone()))
                        .collect();
                }
            }
        }
    };
    let mut responder = responder;
    // Repetitions are interleaved: every workload once, then every workload again, so that a
    // passing disturbance on the machine spreads over the rows instead of sinking one of them.
    let mut rows: Vec<Row> = plan.workloads.iter().map(|&w| Row::new(queues, engine, w)).collect();
    let cpus = super::allowed_cpus().map_or(1, |c| c.len());
    for rep in 0..plan.repetitions {
        for row in rows.iter_mut() {
            let Some(workload) = row.workload else { continue };
            if interrupted.load(Ordering::Relaxed) || row.status != RowStatus::Ok {
                // A run not made still counts towards the progress bar's total.
                progress.done(1);
                continue;
            }
            if let Some(r) = responder.as_mut()
                && !r.is_running()
            {
                row.status = RowStatus::Failed {
                    error: "the responder exited during the bench".into(),
                };
                progress.done(1);
                continue;
            }
            // Live injection runs one thread per queue, each on a CPU of its own.
            if workload.generator == Generator::Live && queues as usize > cpus {
                row.status = RowStatus::Skipped {
                    reason: format!(
                        "live generator: needs a CPU per queue thread, {queues} queues on {cpus} CPU(s); see the xsk row"
                    ),
                };
                progress.done(1);
                continue;
            }
            let load = Load {
                family: workload.family(),
                ip_size: workload.ip_size,
                rate: workload.rate,
                duration: Duration::from_secs_f64(plan.duration_s),
                queues,
                generator: workload.generator,
            };
            // A veth takes redirected frames (live injection) only when its receiving end runs
            // XDP: the kernel-stack rows get an XDP_PASS program on the responder end for them.
            let pass = if engine == EngineMode::Kernel && workload.generator == Generator::Live {
                match pair.attach_xdp_pass(Side::Responder) {
                    Ok(p) => Some(p),
                    Err(err) => {
                        row.status = RowStatus::Failed {
                            error: short_error(&err),
                        };
                        progress.done(1);
                        continue;
                    }
                }
            } else {
                None
            };
            progress.running(&format!(
                "{queues}q {} {} rep {}",
                engine.label(),
                workload.label(),
                rep + 1
            ));
            let measured = measure(pair, exe, &load, responder.as_ref().map(ResponderProcess::pid));
            progress.done(1);
            drop(pass);
            match measured {
                Ok(sample) => {
                    progress.line(&format!(
                        "bench: {queues}q {:<24} {:<36} rep {}: {:>10.0} replies/s, {:>6.2} % answered, {:>6.2} % correct, generator {:.2} CPU s",
                        engine.label(),
                        workload.label(),
                        rep + 1,
                        sample.flood.replies_per_s,
                        sample.flood.answered_pct,
                        sample.flood.correct_pct,
                        sample.flood.generator_cpu_s
                    ));
                    row.samples.push(sample);
                }
                Err(err) => {
                    let error = short_error(&err);
                    progress.line(&format!(
                        "bench: {queues}q {} {}: FAILED: {error}",
                        engine.label(),
                        workload.label()
                    ));
                    row.status = RowStatus::Failed { error };
                }
            }
            std::thread::sleep(PAUSE);
        }
    }
    for row in rows.iter_mut() {
        row.summarize();
    }
    if let Some(r) = responder
        && let Ok(exit) = r.stop()
    {
        let (rx, tx, dropped) = exit.totals();
        if !exit.queues().is_empty() {
            progress.line(&format!(
                "bench: {queues} queue(s), {}: responder totals rx {rx} tx {tx} dropped {dropped}",
                engine.label()
            ));
        }
    }
    rows
}

/// Sets the responder veth's XPS map so that TX queue q is used by the q-th allowed CPU: the kernel
/// stack then answers a request that arrived on queue q (processed on the CPU of the generator's
/// queue-q thread, see `generator::flood_command`) on TX queue q, which is the client's RX queue q.
fn steer_responder_tx(pair: &NetnsPair) -> Result<(), LabError> {
    const SCRIPT: &str = r#"while [ $# -gt 1 ]; do printf '%s\n' "$2" > "$1" || exit 1; shift 2; done"#;
    let cpus = super::allowed_cpus()?;
    let mut cmd = pair.command_in(Side::Responder, "sh");
    cmd.args(["-c", SCRIPT, "bench-xps"]);
    for q in 0..pair.config().queues {
        let mask = cpus.get(q as usize).map_or_else(|| "0".to_string(), |&c| cpu_mask(c));
        cmd.arg(format!("/sys/class/net/{}/queues/tx-{q}/xps_cpus", pair.responder_if()));
        cmd.arg(mask);
    }
    super::exec::run_ok(cmd, "setting the responder's XPS map (TX queue per CPU)").map(drop)
}

/// The `xps_cpus` bitmap with only `cpu` set: hex, 32-bit groups separated by commas.
fn cpu_mask(cpu: usize) -> String {
    let mut mask = format!("{:x}", 1u32 << (cpu % 32));
    for _ in 0..cpu / 32 {
        mask.push_str(",00000000");
    }
    mask
}

/// One load run with CPU accounting around it; `exe` is the afxdp-responder binary (for `flood`).
fn measure(pair: &NetnsPair, exe: &Path, load: &Load, pid: Option<u32>) -> Result<Sample, LabError> {
    let proc_before = pid.map(ProcessCpu::read).transpose()?;
    let host_before = HostCpu::read()?;
    let wall = Instant::now();
    let flood = generator::run_flood(pair, exe, load)?;
    let wall_s = wall.elapsed().as_secs_f64();
    let host = HostCpu::read()?.since(&host_before);
    let proc_delta = match (pid, proc_before) {
        (Some(pid), Some(before)) => Some(ProcessCpu::read(pid)?.since(&before)),
        _ => None,
    };
    Ok(Sample {
        flood,
        wall_s,
        responder_cpu_s: proc_delta.as_ref().map(|p| p.total_s),
        responder_threads: proc_delta.map(|p| p.threads).unwrap_or_default(),
        softirq_cpu_s: host.softirq_s,
        host_busy_cpu_s: host.busy_s,
    })
}

/// The responder with its default options (native or SKB XDP as available, auto mode, live stats
/// every second, no busy-poll) on a fresh one-queue pair, no traffic, CPU over `secs`.
fn idle_check(exe: &Path, secs: Duration) -> Result<IdleCheck, LabError> {
    let pair = NetnsPair::create(&LabConfig {
        queues: 1,
        ..LabConfig::default()
    })?;
    let responder = ResponderProcess::start(&pair, exe, &[])?;
    // Let start-up work (map filling, first stats line) finish before measuring.
    std::thread::sleep(Duration::from_millis(500));
    let before = ProcessCpu::read(responder.pid())?;
    let before_ns = cpu::schedstat_ns(responder.pid())?;
    let wall = Instant::now();
    std::thread::sleep(secs);
    let cpu = ProcessCpu::read(responder.pid())?.since(&before);
    let on_cpu_ns = cpu::schedstat_ns(responder.pid())?.saturating_sub(before_ns);
    let seconds = wall.elapsed().as_secs_f64();
    drop(responder.stop());
    let on_cpu_s = on_cpu_ns as f64 / 1e9;
    // utime+stime count whole 10 ms ticks; schedstat is exact. Judge by the larger of the two.
    let pct_of_core = 100.0 * cpu.total_s.max(on_cpu_s) / seconds;
    Ok(IdleCheck {
        seconds,
        cpu_s: cpu.total_s,
        schedstat_cpu_s: on_cpu_s,
        pct_of_core,
        pass: pct_of_core < 1.0,
        options: "--iface <responder veth> (all defaults)".into(),
    })
}

/// What a table cell says about an error: the failing tool's own message when there is one (not
/// the whole command line), at most 300 characters.
fn short_error(err: &LabError) -> String {
    let text = match err {
        LabError::CommandFailed { what, stderr, .. } => format!("{what}: {stderr}"),
        other => one_line(other),
    };
    if text.chars().count() > 300 {
        format!("{}…", text.chars().take(300).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn args(line: &[&str]) -> BenchArgs {
        Cli::try_parse_from(std::iter::once("bench").chain(line.iter().copied()))
            .unwrap()
            .bench
    }

    #[test]
    fn default_plan_is_the_full_matrix() {
        let plan = Plan::new(&args(&[])).unwrap();
        assert_eq!(plan.queues, vec![1, 2]);
        assert_eq!(plan.engines, EngineMode::ALL.to_vec());
        assert_eq!(plan.workloads.len(), 8);
        assert_eq!(plan.repetitions, 3);
        assert_eq!(plan.runs(), 2 * 6 * 8 * 3);
        assert!(plan.estimate() > Duration::from_secs(240 * 5));
    }

    #[test]
    fn quick_plan_is_about_a_minute() {
        let plan = Plan::new(&args(&["--quick"])).unwrap();
        assert_eq!(plan.queues, vec![1]);
        assert_eq!(plan.repetitions, 1);
        assert!(!plan.engines.contains(&EngineMode::AfxdpCopyNativeSleep));
        assert!(plan.estimate() < Duration::from_secs(120), "{:?}", plan.estimate());
    }

    #[test]
    fn filters_and_bounds() {
        let plan = Plan::new(&args(&[
            "--engines",
            "kernel,afxdp-copy-native",
            "--families",
            "v6",
            "--sizes",
            "64",
            "--rates",
            "fixed",
            "--fixed-rate",
            "5000",
        ]))
        .unwrap();
        assert_eq!(plan.engines, vec![EngineMode::Kernel, EngineMode::AfxdpCopyNative]);
        assert_eq!(
            plan.workloads,
            vec![Workload::new(Family::V6, 64, Rate::Pps(5000)).with_generator(Generator::Live)]
        );
        let both = Plan::new(&args(&["--rates", "max", "--sizes", "64", "--generator", "live,xsk"])).unwrap();
        assert_eq!(both.workloads.len(), 4, "v4 and v6, each with both generators");
        assert_eq!(
            both.workloads.iter().map(|w| w.generator).collect::<Vec<_>>(),
            [Generator::Live, Generator::Xsk, Generator::Live, Generator::Xsk]
        );
        assert!(Plan::new(&args(&["--duration", "0"])).is_err());
        assert!(Plan::new(&args(&["--duration", "1000"])).is_err());
        assert!(Cli::try_parse_from(["bench", "--sizes", "20"]).is_err());
        assert!(Cli::try_parse_from(["bench", "--repetitions", "0"]).is_err());
    }

    #[test]
    fn responder_options_per_engine() {
        let native = EngineMode::AfxdpCopyNative.responder_args(2).unwrap().join(" ");
        assert_eq!(
            native,
            "--engine afxdp --queues 0-1 --xdp-mode native --mode copy --stats-interval 0"
        );
        let sleep = EngineMode::AfxdpCopyNativeSleep.responder_args(1).unwrap().join(" ");
        assert!(
            sleep.contains("--queues 0 --xdp-mode native --mode copy --wait sleep"),
            "{sleep}"
        );
        let skb = EngineMode::AfxdpCopySkb.responder_args(1).unwrap().join(" ");
        assert!(skb.contains("--queues 0 --xdp-mode skb --mode copy"), "{skb}");
        let zc = EngineMode::AfxdpZeroCopy.responder_args(1).unwrap().join(" ");
        assert!(
            zc.starts_with("--engine afxdp") && zc.contains("--mode zero-copy"),
            "{zc}"
        );
        let xdp_tx = EngineMode::XdpTx.responder_args(2).unwrap().join(" ");
        assert_eq!(xdp_tx, "--engine xdp-tx --xdp-mode native --stats-interval 0");
        assert!(EngineMode::Kernel.responder_args(1).is_none());
    }

    #[test]
    fn skb_mode_is_not_measured_with_several_queues() {
        for engine in EngineMode::ALL {
            assert!(unavailable(engine, 1).is_none(), "{engine:?}");
        }
        assert!(unavailable(EngineMode::AfxdpCopySkb, 2).is_some());
        assert!(unavailable(EngineMode::AfxdpCopyNative, 2).is_none());
        assert!(unavailable(EngineMode::XdpTx, 2).is_none());
    }
}
