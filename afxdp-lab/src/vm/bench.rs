//! `afxdp-lab vm --bench`: the comparison the product promises, on an emulated NIC that has
//! AF_XDP zero-copy: AF_XDP zero-copy vs copy mode vs the in-kernel `XDP_TX` engine vs the guest
//! kernel's own stack, the same load from the host's `flood` generator, in one guest per NIC.
//!
//! The variants are interleaved (zero-copy, copy, xdp-tx, kernel, then again, `--bench-repetitions`
//! times), so slow drifts of a shared machine hit them alike; each figure is the median of the
//! repetitions. CPU per reply is the **guest's** CPU time (its `/proc/stat`, read over the console
//! before and after each flood: user + system + irq + softirq of the vCPU) divided by the replies:
//! it covers the responder, the XDP program, the driver and the kernel stack inside the guest, not
//! QEMU's emulation on the host. Beside it, the host side: the CPU time of the whole QEMU process
//! (`utime + stime` of all its threads: the emulated vCPU and the emulated NIC) per reply, which
//! also counts what the emulated device costs. The guest's figure is sampled by its 250 Hz tick
//! (Debian's kernels have no IRQ time accounting), so short softirq bursts are counted
//! statistically; the QEMU figure is exact but includes the emulation. Under TCG the absolute
//! figures are those of an emulated CPU: compare the ratios (the `vs copy` columns), not the
//! numbers.
//!
//! Writes `vm-latest.json`, `vm-latest.md` and `vm-latest.svg` into `--bench-out`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use plotters::prelude::*;
use responder_json::Event;
use serde::Serialize;

use super::cache::{Cache, GuestKernel, Qemu};
use super::guest::{Accel, Guest, GuestSpec, Nic, choose_accel};
use super::initramfs::Initramfs;
use super::lab::{GuestCpu, event_in, guest_stat, run_flood};
use super::tapns::{GUEST_MAC, GUEST_PASS_V4, GUEST_V4, TapNs};
use crate::bench::cpu::ProcessCpu;
use crate::bench::report::Spread;
use crate::{LabError, responder_exe};

/// Options of `afxdp-lab vm --bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct VmBenchArgs {
    /// Run the zero-copy vs copy vs XDP_TX vs kernel comparison in the guest instead of the
    /// functional checks.
    #[arg(long)]
    pub bench: bool,
    /// NICs to compare (one guest each), e.g. virtio,igb; default: --nic.
    #[arg(long = "bench-nics", value_enum, value_delimiter = ',', value_name = "LIST")]
    pub nics: Vec<Nic>,
    /// Request rates of the flood (the same for every variant), e.g. 5k,20k.
    #[arg(
        long = "bench-rates",
        value_delimiter = ',',
        default_value = "5k,20k",
        value_name = "LIST"
    )]
    pub rates: Vec<String>,
    /// Seconds per flood.
    #[arg(long = "bench-duration", default_value_t = 3.0, value_name = "SECONDS")]
    pub duration: f64,
    /// Rounds of the interleaved variants; the table gives medians.
    #[arg(long = "bench-repetitions", default_value_t = 3, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=10))]
    pub repetitions: u32,
    /// Variants to interleave: zero-copy, copy, zero-copy-busypoll, copy-busypoll (the kernel's
    /// preferred busy polling, `--busy-poll`), xdp-tx, kernel, zero-copy-pass, copy-pass.
    #[arg(long = "bench-variants", value_delimiter = ',', default_value = DEFAULT_VARIANTS,
          value_parser = clap::builder::PossibleValuesParser::new(VARIANTS.map(|(id, _)| id)),
          value_name = "LIST")]
    pub variants: Vec<String>,
    /// Where to write the results.
    #[arg(long = "bench-out", default_value = "docs/bench-results", value_name = "DIR")]
    pub out: PathBuf,
    /// File name stem of the results: STEM.json, STEM.md, STEM.svg.
    #[arg(long = "bench-name", default_value = "vm-latest", value_name = "STEM")]
    pub name: String,
}

impl VmBenchArgs {
    fn variants(&self) -> Vec<(&'static str, &'static str)> {
        VARIANTS
            .into_iter()
            .filter(|(id, _)| self.variants.iter().any(|v| v == id))
            .collect()
    }
}

/// The variants, in interleaving order: `(id the guest's /init takes, label)`. The `-pass`
/// variants run the responder in that mode but flood an address it does not answer
/// ([`GUEST_PASS_V4`]): every request is `XDP_PASS`ed and the guest kernel replies, which in
/// zero-copy mode costs a copy of each frame into a new kernel buffer (an skb).
pub const VARIANTS: [(&str, &str); 8] = [
    ("zero-copy", "AF_XDP zero-copy"),
    ("copy", "AF_XDP copy"),
    ("zero-copy-busypoll", "AF_XDP zero-copy, --busy-poll"),
    ("copy-busypoll", "AF_XDP copy, --busy-poll"),
    ("xdp-tx", "XDP_TX (in-kernel)"),
    ("kernel", "kernel stack, no XDP"),
    ("zero-copy-pass", "XDP_PASS to the kernel, zero-copy socket bound"),
    ("copy-pass", "XDP_PASS to the kernel, copy-mode socket bound"),
];

/// The default variants: the four answering ones.
const DEFAULT_VARIANTS: &str = "zero-copy,copy,xdp-tx,kernel";

/// One flood of one variant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VmSample {
    /// Requests sent.
    pub sent: u64,
    /// Replies received.
    pub replies: u64,
    /// Replies correct byte for byte.
    pub correct: u64,
    /// Replies per second.
    pub replies_per_s: f64,
    /// Median round trip, µs.
    pub p50_us: f64,
    /// The guest's busy CPU seconds over the flood.
    pub guest_busy_s: f64,
    /// Of which softirq.
    pub guest_softirq_s: f64,
    /// Guest CPU µs per reply.
    pub cpu_us_per_reply: Option<f64>,
    /// CPU seconds of the QEMU process on the host over the flood.
    pub qemu_cpu_s: f64,
    /// QEMU process CPU µs per reply.
    pub qemu_us_per_reply: Option<f64>,
}

/// One variant at one rate on one NIC, over the repetitions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VmBenchRow {
    /// `virtio` or `igb`.
    pub nic: Nic,
    /// Variant id (`zero-copy`, `copy`, `xdp-tx`, `kernel`).
    pub variant: &'static str,
    /// Variant label.
    pub label: &'static str,
    /// The AF_XDP mode each queue got (`ready` event), empty for xdp-tx and kernel.
    pub mode_obtained: Vec<String>,
    /// The flood's `--rate`.
    pub rate: String,
    /// Each repetition.
    pub samples: Vec<VmSample>,
    /// Answered over all repetitions, percent.
    pub answered_pct: f64,
    /// Correct over all replies, percent.
    pub correct_pct: f64,
    /// Replies per second.
    pub replies_per_s: Option<Spread>,
    /// Guest CPU µs per reply.
    pub cpu_us_per_reply: Option<Spread>,
    /// Median CPU per reply over copy mode's, same NIC and rate.
    pub cpu_vs_copy: Option<f64>,
    /// QEMU process CPU µs per reply (host side).
    pub qemu_us_per_reply: Option<Spread>,
    /// Its median over copy mode's.
    pub qemu_vs_copy: Option<f64>,
    /// Median round trip, µs (median of the repetitions' medians).
    pub p50_us: Option<f64>,
    /// Why the variant did not run, if it did not.
    pub error: Option<String>,
}

/// What a `vm --bench` run measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VmBenchReport {
    /// UTC date.
    pub date: String,
    /// Guest kernel release.
    pub kernel: String,
    /// Accelerator per NIC, and the QEMU version.
    pub guests: Vec<(Nic, String, String)>,
    /// Seconds per flood.
    pub duration_s: f64,
    /// Rounds.
    pub repetitions: u32,
    /// Where CPU per reply comes from.
    pub cpu_source: &'static str,
    /// The rows.
    pub rows: Vec<VmBenchRow>,
    /// Wall time.
    pub elapsed_s: f64,
}

const CPU_SOURCE: &str = "guest /proc/stat over each flood: user+nice+system+irq+softirq of the guest's vCPU (responder, XDP, driver and kernel stack inside the guest; not QEMU's emulation on the host)";

const QEMU_SOURCE: &str = "utime + stime of the QEMU process on the host over each flood (all its threads: the emulated vCPU and NIC included)";

/// Runs the comparison on `nics` with `kernel` and writes the results.
pub fn run_vm_bench(
    args: &VmBenchArgs,
    kernel: GuestKernel,
    nics: &[Nic],
    cache: &Cache,
    echo: bool,
    interrupted: Arc<AtomicBool>,
) -> Result<ExitCode, LabError> {
    let report = measure_vm_bench(args, kernel, nics, cache, echo, interrupted)?;
    std::fs::create_dir_all(&args.out).map_err(|source| LabError::Io {
        what: format!("creating {}", args.out.display()),
        source,
    })?;
    for (ext, text) in [
        ("json", serde_json::to_string_pretty(&report).unwrap_or_default()),
        ("md", markdown(&report)),
        ("svg", svg(&report).map_err(LabError::Config)?),
    ] {
        let path = args.out.join(format!("{}.{ext}", args.name));
        std::fs::write(&path, text).map_err(|source| LabError::Io {
            what: format!("writing {}", path.display()),
            source,
        })?;
        println!("vm bench: wrote {}", path.display());
    }
    println!("\n{}", markdown(&report));
    Ok(if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

impl VmBenchReport {
    /// Whether a variant failed or a reply was wrong.
    pub fn failed(&self) -> bool {
        self.rows
            .iter()
            .any(|r| r.error.is_some() || r.samples.iter().any(|s| s.correct != s.replies))
    }
}

/// Measures the comparison on `nics` with `kernel` (one guest per NIC, variants interleaved).
pub fn measure_vm_bench(
    args: &VmBenchArgs,
    kernel: GuestKernel,
    nics: &[Nic],
    cache: &Cache,
    echo: bool,
    interrupted: Arc<AtomicBool>,
) -> Result<VmBenchReport, LabError> {
    if !(args.duration > 0.0 && args.duration <= 30.0) {
        return Err(LabError::Config(format!(
            "--bench-duration {}: use seconds in (0, 30]",
            args.duration
        )));
    }
    let started = Instant::now();
    let exe = responder_exe()?;
    let files = cache.kernel(kernel)?;
    let mut report = VmBenchReport {
        date: crate::bench::report::utc_now(),
        kernel: files.release.clone(),
        guests: Vec::new(),
        duration_s: args.duration,
        repetitions: args.repetitions,
        cpu_source: CPU_SOURCE,
        rows: Vec::new(),
        elapsed_s: 0.0,
    };
    let variants = args.variants();
    if variants.is_empty() {
        return Err(LabError::Config("--bench-variants: name at least one".into()));
    }
    let floods = nics.len() * variants.len() * args.rates.len() * args.repetitions as usize;
    println!(
        "vm bench: {} NIC(s) x {} variants x {} rate(s) x {} round(s) of {:.0} s floods = {floods} floods, interleaved; about {:.0} min",
        nics.len(),
        variants.len(),
        args.rates.len(),
        args.repetitions,
        args.duration,
        (floods as f64 * (args.duration + 3.0)
            + (nics.len() * variants.len() * args.repetitions as usize) as f64 * 8.0)
            / 60.0
    );
    for &nic in nics {
        let qemu = match nic {
            Nic::Virtio => Qemu::host()?,
            Nic::Igb => cache.qemu_backports()?,
        };
        let image = Initramfs {
            busybox: cache.busybox()?,
            modules: files.load_order(nic.modules()),
            responder: Some(exe.clone()),
            ..Initramfs::default()
        }
        .build()?;
        let accel = choose_accel(&qemu, &files.vmlinuz, image.path(), &interrupted);
        report.guests.push((nic, accel.to_string(), qemu.version()));
        println!(
            "vm bench: {}: Linux {}, QEMU {}, accelerator {accel}",
            nic.label(),
            files.release,
            qemu.version()
        );
        if accel.accel == Accel::Tcg {
            println!(
                "vm bench: TCG emulates every guest instruction: absolute figures mean little, compare the ratios"
            );
        }
        let mut modes = Vec::new();
        for _ in 0..args.repetitions {
            modes.extend(variants.iter().map(|(id, _)| *id));
        }
        let net = TapNs::create(1)?;
        let spec = GuestSpec {
            qemu: &qemu,
            accel: accel.accel,
            vmlinuz: &files.vmlinuz,
            initrd: image.path(),
            options: format!("kmx.mode=responder kmx.modes={} kmx.queues=1", modes.join(",")),
            nic: Some((nic, net.tap().to_string(), 1)),
            mac: GUEST_MAC.into(),
            echo,
            prefix: format!("  guest {}| ", nic.label()),
        };
        let mut guest = Guest::boot(&spec, Some(net.ns()), Arc::clone(&interrupted))?;
        guest.wait_for("KMX-NET ready", Duration::from_secs(240), |l| {
            l.contains("KMX-NET ready")
        })?;
        let mut rows: Vec<VmBenchRow> = Vec::new();
        for rate in &args.rates {
            for &(id, label) in &variants {
                rows.push(VmBenchRow {
                    nic,
                    variant: id,
                    label,
                    mode_obtained: Vec::new(),
                    rate: rate.clone(),
                    samples: Vec::new(),
                    answered_pct: 0.0,
                    correct_pct: 0.0,
                    replies_per_s: None,
                    cpu_us_per_reply: None,
                    cpu_vs_copy: None,
                    qemu_us_per_reply: None,
                    qemu_vs_copy: None,
                    p50_us: None,
                    error: None,
                });
            }
        }
        let mut stopped = None;
        for (round, mode) in modes.iter().enumerate() {
            let ctx = Round {
                exe: &exe,
                net: &net,
                args,
                nic,
                round: round / variants.len() + 1,
                mode,
            };
            if let Err(err) = bench_round(&ctx, &mut guest, &mut rows) {
                stopped = Some(crate::one_line(&err));
                break;
            }
        }
        match stopped {
            None => {
                let _ = guest.finish(Duration::from_secs(60));
            }
            Some(msg) => {
                // A guest that stops answering ends this NIC's part; what was measured stays.
                println!("vm bench: {}: stopped: {msg}", nic.label());
                for row in rows
                    .iter_mut()
                    .filter(|r| r.error.is_none() && r.samples.len() < args.repetitions as usize)
                {
                    row.error = Some(format!("incomplete: {msg}"));
                }
            }
        }
        summarize(&mut rows);
        report.rows.extend(rows);
    }
    report.elapsed_s = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Medians, totals and the ratio to copy mode.
fn summarize(rows: &mut [VmBenchRow]) {
    for row in rows.iter_mut() {
        let (sent, replies, correct) = row
            .samples
            .iter()
            .fold((0, 0, 0), |(s, r, c), x| (s + x.sent, r + x.replies, c + x.correct));
        row.answered_pct = if sent == 0 {
            0.0
        } else {
            100.0 * replies as f64 / sent as f64
        };
        row.correct_pct = if replies == 0 {
            100.0
        } else {
            100.0 * correct as f64 / replies as f64
        };
        row.replies_per_s = Spread::of(row.samples.iter().map(|s| s.replies_per_s));
        row.cpu_us_per_reply = Spread::of(row.samples.iter().filter_map(|s| s.cpu_us_per_reply));
        row.qemu_us_per_reply = Spread::of(row.samples.iter().filter_map(|s| s.qemu_us_per_reply));
        row.p50_us = Spread::of(row.samples.iter().map(|s| s.p50_us)).map(|s| s.median);
    }
    type Pick = fn(&VmBenchRow) -> Option<Spread>;
    type Set = fn(&mut VmBenchRow, f64);
    let pairs: [(Pick, Set); 2] = [
        (|r| r.cpu_us_per_reply, |r, x| r.cpu_vs_copy = Some(x)),
        (|r| r.qemu_us_per_reply, |r, x| r.qemu_vs_copy = Some(x)),
    ];
    for (pick, set) in pairs {
        let copies: Vec<(Nic, String, f64)> = rows
            .iter()
            .filter(|r| r.variant == "copy")
            .filter_map(|r| Some((r.nic, r.rate.clone(), pick(r)?.median)))
            .collect();
        for row in rows.iter_mut() {
            if let (Some(cpu), Some((_, _, copy))) = (
                pick(row),
                copies.iter().find(|(n, rate, _)| *n == row.nic && *rate == row.rate),
            ) {
                set(row, cpu.median / copy);
            }
        }
    }
}

/// What one round of one variant needs.
struct Round<'a> {
    exe: &'a std::path::Path,
    net: &'a TapNs,
    args: &'a VmBenchArgs,
    nic: Nic,
    round: usize,
    mode: &'a str,
}

/// One variant once: wait for it to start, flood it at each rate with the CPU readings around,
/// and tell the guest to move on.
fn bench_round(ctx: &Round<'_>, guest: &mut Guest, rows: &mut [VmBenchRow]) -> Result<(), LabError> {
    let Round {
        exe,
        net,
        args,
        nic,
        round,
        mode,
    } = *ctx;
    let marker = format!("KMX-START mode={mode}");
    guest.wait_for(&marker, Duration::from_secs(90), |l| l.contains(&marker))?;
    let line = guest.wait_for("the variant's start", Duration::from_secs(180), |l| {
        matches!(event_in(l), Some(Event::Ready(_))) || l.contains("KMX-EXIT") || l.contains("KMX-KERNEL ready")
    })?;
    let obtained: Vec<String> = match event_in(&line) {
        Some(Event::Ready(r)) => r.queues.iter().map(|q| q.mode.clone()).collect(),
        _ => Vec::new(),
    };
    if line.contains("KMX-EXIT") {
        for row in rows.iter_mut().filter(|r| r.variant == mode) {
            row.error = Some(format!("did not start ({})", line.trim()));
        }
        guest.send_line("next")?;
        return Ok(());
    }
    // Let the start-up settle (map filling, the first neighbour resolution).
    std::thread::sleep(Duration::from_millis(500));
    for rate in &args.rates {
        let before = guest_stat(guest)?;
        let qemu_before = ProcessCpu::read(guest.pid())?;
        let dst = if mode.ends_with("-pass") {
            GUEST_PASS_V4
        } else {
            GUEST_V4
        };
        let flood = run_flood(exe, net, dst, rate, args.duration, 1)?;
        let qemu_cpu = ProcessCpu::read(guest.pid())?.since(&qemu_before).total_s;
        let cpu = GuestCpu::between(&before, &guest_stat(guest)?);
        let sample = VmSample {
            sent: flood.sent,
            replies: flood.replies,
            correct: flood.correct,
            replies_per_s: flood.replies_per_s,
            p50_us: flood.latency_us.p50,
            guest_busy_s: cpu.busy_s,
            guest_softirq_s: cpu.softirq_s,
            cpu_us_per_reply: (flood.replies > 0).then(|| 1e6 * cpu.busy_s / flood.replies as f64),
            qemu_cpu_s: qemu_cpu,
            qemu_us_per_reply: (flood.replies > 0).then(|| 1e6 * qemu_cpu / flood.replies as f64),
        };
        println!(
            "vm bench: {} round {} {:<22} {:>4} pps: {:>6} sent, {:>6.1} % answered, {} wrong, guest CPU {:.2} s = {} us/reply",
            nic.label(),
            round,
            mode,
            rate,
            sample.sent,
            flood.answered_pct,
            flood.wrong,
            cpu.busy_s,
            sample
                .cpu_us_per_reply
                .map_or_else(|| "-".into(), |c| format!("{c:.1}"))
        );
        if let Some(row) = rows.iter_mut().find(|r| r.variant == mode && &r.rate == rate) {
            row.mode_obtained.clone_from(&obtained);
            row.samples.push(sample);
        }
    }
    guest.send_line("next")?;
    guest.wait_for("the variant's exit", Duration::from_secs(60), |l| {
        l.contains("KMX-EXIT")
    })?;
    Ok(())
}

/// The Markdown table.
pub fn markdown(report: &VmBenchReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Guest Linux {}, {} s floods, {} interleaved round(s), medians (min–max); {}.",
        report.kernel, report.duration_s, report.repetitions, report.date
    );
    for (nic, accel, qemu) in &report.guests {
        let _ = writeln!(out, "- {}: QEMU {qemu}, accelerator {accel}", nic.label());
    }
    let _ = writeln!(
        out,
        "- guest CPU per reply: {}; QEMU CPU per reply: {QEMU_SOURCE}. **Under TCG every figure is an emulated CPU's: compare the ratios.**\n",
        report.cpu_source
    );
    out.push_str("| NIC | variant | mode obtained | rate | answered | correct | replies/s | guest CPU µs/reply | vs copy | QEMU CPU µs/reply | vs copy | p50 µs |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in &report.rows {
        let spread = |s: Option<Spread>, digits: usize| {
            s.map_or_else(
                || "–".to_string(),
                |s| format!("{:.d$} ({:.d$}–{:.d$})", s.median, s.min, s.max, d = digits),
            )
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} pps | {} | {:.1} % | {} | {} | {} | {} | {} | {} |",
            r.nic.label(),
            r.label,
            if r.mode_obtained.is_empty() {
                "–".to_string()
            } else {
                r.mode_obtained.join(", ")
            },
            r.rate,
            r.error
                .as_ref()
                .map_or_else(|| format!("{:.1} %", r.answered_pct), |e| format!("FAILED: {e}")),
            r.correct_pct,
            spread(r.replies_per_s, 0),
            spread(r.cpu_us_per_reply, 1),
            r.cpu_vs_copy.map_or_else(|| "–".into(), |x| format!("{x:.2}×")),
            spread(r.qemu_us_per_reply, 1),
            r.qemu_vs_copy.map_or_else(|| "–".into(), |x| format!("{x:.2}×")),
            r.p50_us.map_or_else(|| "–".into(), |x| format!("{x:.0}")),
        );
    }
    out
}

/// Two panels of grouped bars, one group per NIC and rate, one bar per variant: the guest's CPU
/// µs per reply (top) and the QEMU process's (bottom), medians.
pub fn svg(report: &VmBenchReport) -> Result<String, String> {
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, (1000, 900)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (top, bottom) = root.split_vertically(450);
        panel(
            &top,
            report,
            &format!(
                "Guest CPU per reply, Linux {} (guest /proc/stat; lower is better; TCG: compare ratios)",
                report.kernel
            ),
            "guest CPU µs per reply",
            |r| r.cpu_us_per_reply,
        )?;
        panel(
            &bottom,
            report,
            "QEMU process CPU per reply on the host (emulated vCPU + NIC)",
            "QEMU CPU µs per reply",
            |r| r.qemu_us_per_reply,
        )?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(text)
}

fn panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    report: &VmBenchReport,
    caption: &str,
    y_desc: &str,
    pick: fn(&VmBenchRow) -> Option<Spread>,
) -> Result<(), String> {
    let mut groups: Vec<(Nic, String)> = Vec::new();
    for r in &report.rows {
        if !groups.iter().any(|(n, rate)| *n == r.nic && *rate == r.rate) {
            groups.push((r.nic, r.rate.clone()));
        }
    }
    let max = report
        .rows
        .iter()
        .filter_map(|r| pick(r).map(|s| s.median))
        .fold(1.0_f64, f64::max);
    let colors = [
        RGBColor(0x2c, 0xa0, 0x2c),
        RGBColor(0x1f, 0x77, 0xb4),
        RGBColor(0xff, 0x7f, 0x0e),
        RGBColor(0x7f, 0x7f, 0x7f),
        RGBColor(0x94, 0x67, 0xbd),
        RGBColor(0xd6, 0x27, 0x28),
    ];
    let n = groups.len().max(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 17))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..n, 0.0..max * 1.8)
        .map_err(|e| e.to_string())?;
    let labels = groups.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 {
                labels
                    .get(i)
                    .map_or_else(String::new, |(nic, rate)| format!("{} {rate} pps", nic.label()))
            } else {
                String::new()
            }
        })
        .y_desc(y_desc)
        .draw()
        .map_err(|e| e.to_string())?;
    let present: Vec<&(&str, &str)> = VARIANTS
        .iter()
        .filter(|(id, _)| report.rows.iter().any(|r| r.variant == *id))
        .collect();
    let width = 0.8 / present.len().max(1) as f64;
    for (v, (id, label)) in present.into_iter().enumerate() {
        let color = colors[v % colors.len()];
        let bars: Vec<Rectangle<(f64, f64)>> = groups
            .iter()
            .enumerate()
            .filter_map(|(g, (nic, rate))| {
                let row = report
                    .rows
                    .iter()
                    .find(|r| r.nic == *nic && r.rate == *rate && r.variant == *id)?;
                let value = pick(row)?.median;
                let x0 = g as f64 + 0.1 + width * v as f64;
                Some(Rectangle::new([(x0, 0.0), (x0 + width * 0.9, value)], color.filled()))
            })
            .collect();
        chart
            .draw_series(bars)
            .map_err(|e| e.to_string())?
            .label(*label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(replies: u64, busy_s: f64) -> VmSample {
        VmSample {
            sent: replies,
            replies,
            correct: replies,
            replies_per_s: replies as f64 / 3.0,
            p50_us: 100.0,
            guest_busy_s: busy_s,
            guest_softirq_s: busy_s / 2.0,
            cpu_us_per_reply: Some(1e6 * busy_s / replies as f64),
            qemu_cpu_s: 2.0 * busy_s,
            qemu_us_per_reply: Some(2e6 * busy_s / replies as f64),
        }
    }

    fn row(variant: &'static str, samples: Vec<VmSample>) -> VmBenchRow {
        VmBenchRow {
            nic: Nic::Virtio,
            variant,
            label: variant,
            mode_obtained: Vec::new(),
            rate: "5k".into(),
            samples,
            answered_pct: 0.0,
            correct_pct: 0.0,
            replies_per_s: None,
            cpu_us_per_reply: None,
            cpu_vs_copy: None,
            qemu_us_per_reply: None,
            qemu_vs_copy: None,
            p50_us: None,
            error: None,
        }
    }

    #[test]
    fn medians_and_the_ratio_to_copy() {
        let mut rows = vec![
            row("copy", vec![sample(15000, 1.5), sample(15000, 3.0), sample(15000, 1.2)]),
            row(
                "zero-copy",
                vec![sample(15000, 0.6), sample(15000, 0.75), sample(15000, 9.0)],
            ),
        ];
        summarize(&mut rows);
        assert_eq!(rows[0].cpu_us_per_reply.unwrap().median, 100.0);
        assert_eq!(rows[1].cpu_us_per_reply.unwrap().median, 50.0);
        assert_eq!(rows[1].cpu_vs_copy, Some(0.5));
        assert_eq!(rows[1].qemu_us_per_reply.unwrap().median, 100.0);
        assert_eq!(rows[1].qemu_vs_copy, Some(0.5));
        assert_eq!(rows[0].answered_pct, 100.0);
        let md = markdown(&VmBenchReport {
            date: "d".into(),
            kernel: "7.3.4+deb13-amd64".into(),
            guests: vec![],
            duration_s: 3.0,
            repetitions: 3,
            cpu_source: CPU_SOURCE,
            rows: rows.clone(),
            elapsed_s: 1.0,
        });
        assert!(
            md.contains("| virtio | zero-copy | – | 5k pps | 100.0 % | 100.0 % |"),
            "{md}"
        );
        assert!(md.contains("0.50×"), "{md}");
    }

    #[test]
    fn guest_cpu_from_two_proc_stat_lines() {
        let a = GuestCpu::parse("KMX-STAT cpu  100 0 50 1000 0 0 10 0 0 0").unwrap();
        let b = GuestCpu::parse("KMX-STAT cpu  150 0 80 1200 0 0 40 0 0 0").unwrap();
        let cpu = GuestCpu::between(&a, &b);
        assert!((cpu.busy_s - 1.1).abs() < 1e-9, "{cpu:?}");
        assert!((cpu.softirq_s - 0.3).abs() < 1e-9);
        assert!((cpu.total_s - 3.1).abs() < 1e-9);
        assert!(GuestCpu::parse("cpu0 1 2").is_none());
    }

    #[test]
    fn the_plot_renders() {
        let mut rows = vec![row("copy", vec![sample(15000, 1.5)])];
        summarize(&mut rows);
        let svg = svg(&VmBenchReport {
            date: "d".into(),
            kernel: "k".into(),
            guests: vec![],
            duration_s: 3.0,
            repetitions: 1,
            cpu_source: CPU_SOURCE,
            rows,
            elapsed_s: 1.0,
        })
        .unwrap();
        assert!(svg.contains("<svg"));
    }
}
