//! `afxdp-lab vm`: the responder inside a guest with a virtio-net or igb NIC, real `ping` (and
//! optionally the `flood` generator) from the host end, checked with the host's kernel counters
//! and `tcpdump -vvv` on the tap.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use responder_json::{Event, FloodReport, Ready, Summary};

use super::cache::{Cache, GuestKernel, Qemu};
use super::guest::{Accel, AccelChoice, Guest, GuestSpec, Nic, choose_accel};
use super::initramfs::Initramfs;
use super::tapns::{GUEST_MAC, GUEST_V4, TapNs};
use crate::exec::{describe, run, tail};
use crate::{Capture, Endpoints, Family, ICMP_FILTER, LabError, Nstat, PingReport, PingSpec, Side, ping};

/// A bounded load from the `flood` generator in the host namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct FloodSpec {
    /// `--rate`, e.g. `20k`.
    pub rate: String,
    /// `--rate` when the queues got copy mode, if different: under emulation the guest copies
    /// every frame in software, so copy mode keeps up with a lower rate than zero-copy (measured
    /// on 7.3 with one vCPU: 100 % answered at 5k pps in copy mode, 45 % at 20k; zero-copy
    /// 100 % at 20k).
    pub copy_rate: Option<String>,
    /// `--duration` in seconds.
    pub duration: f64,
}

/// One `afxdp-lab vm` run.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// Guest kernel.
    pub kernel: GuestKernel,
    /// Guest NIC.
    pub nic: Nic,
    /// `--mode` values to run the responder with, one after another in the same guest; also
    /// `xdp-tx` (`--engine xdp-tx`) and `kernel` (no responder: the guest kernel answers).
    pub modes: Vec<String>,
    /// NIC queues (1 or 2), each served by the responder.
    pub queues: u32,
    /// Echo requests per family per mode.
    pub pings: u32,
    /// A flood per mode that started, after the pings.
    pub flood: Option<FloodSpec>,
    /// Print the guest's console lines as they come.
    pub echo: bool,
    /// The responder binary to put in the guest.
    pub responder: PathBuf,
    /// More options for the guest's responder, after the lab's own (`--responder-arg`; e.g.
    /// `--no-need-wakeup`, `--trace 4`). No spaces or commas (they travel on the guest's
    /// kernel command line).
    pub responder_args: Vec<String>,
}

/// What happened to one `--mode`.
#[derive(Debug, Clone, Default)]
pub struct ModeRun {
    /// The `--mode` given.
    pub requested: String,
    /// The `ready` event, if it started.
    pub ready: Option<Ready>,
    /// Its exit status in the guest.
    pub exit_code: Option<i32>,
    /// What it printed on stderr (an error is one line).
    pub stderr: Vec<String>,
    /// How many journeys the frame tracer printed (`--responder-arg=--trace`), and what is
    /// wrong with them.
    pub trace_journeys: usize,
    /// See `trace_journeys`.
    pub trace_problems: Vec<String>,
    /// `ping -4` and `ping -6`.
    pub pings: Vec<(Family, PingReport)>,
    /// The host namespace's SNMP counters: growth over the pings.
    pub counters: Option<Nstat>,
    /// What `tcpdump -vvv` on the tap saw during the pings.
    pub capture: Option<CaptureCheck>,
    /// The flood report.
    pub flood: Option<FloodReport>,
    /// The guest's CPU over the flood (its `/proc/stat`).
    pub guest_cpu: Option<GuestCpu>,
    /// The `summary` event.
    pub summary: Option<Summary>,
}

/// The echo replies `tcpdump -vvv` captured on the host end of the tap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureCheck {
    /// Echo replies captured (v4 and v6).
    pub replies: usize,
    /// Frames with a checksum tcpdump found wrong, as it printed them.
    pub bad_checksums: Vec<String>,
    /// The TTLs / hop limits of the replies.
    pub ttls: Vec<u8>,
}

/// The guest's CPU time over a measurement, from the first line of its `/proc/stat` (the
/// guest's own accounting of its vCPUs, in USER_HZ ticks; under TCG its clock is the host's).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GuestCpu {
    /// Busy seconds over all vCPUs: user, nice, system, irq, softirq (and steal, guest).
    pub busy_s: f64,
    /// Of which softirq (where the kernel stack, XDP and copy-mode AF_XDP run).
    pub softirq_s: f64,
    /// All seconds, idle included, over all vCPUs.
    pub total_s: f64,
}

impl GuestCpu {
    /// Parses a `cpu  user nice system idle iowait irq softirq steal guest guest_nice` line.
    pub fn parse(line: &str) -> Option<[u64; 10]> {
        let rest = line.split("cpu ").nth(1)?;
        let mut out = [0u64; 10];
        let mut n = 0;
        for (slot, word) in out.iter_mut().zip(rest.split_whitespace()) {
            *slot = word.parse().ok()?;
            n += 1;
        }
        (n >= 8).then_some(out)
    }

    /// The CPU between two `/proc/stat` readings (USER_HZ = 100).
    pub fn between(before: &[u64; 10], after: &[u64; 10]) -> Self {
        let d: Vec<f64> = before
            .iter()
            .zip(after)
            .map(|(b, a)| a.saturating_sub(*b) as f64 / 100.0)
            .collect();
        // guest and guest_nice are already counted in user and nice.
        let total: f64 = d[..8].iter().sum();
        GuestCpu {
            busy_s: total - d[3] - d[4],
            softirq_s: d[6],
            total_s: total,
        }
    }
}

impl ModeRun {
    /// Whether this run let the guest kernel answer (no responder).
    pub fn is_kernel_stack(&self) -> bool {
        self.requested == "kernel"
    }

    /// The mode of each queue, e.g. `["zero-copy"]`.
    pub fn queue_modes(&self) -> Vec<String> {
        self.ready
            .iter()
            .flat_map(|r| r.queues.iter().map(|q| q.mode.clone()))
            .collect()
    }

    /// What is wrong with a run that started: missing or bad replies, unaccounted frames.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.ready.is_none() && !self.is_kernel_stack() {
            out.push(format!(
                "--mode {} did not start: {}",
                self.requested,
                self.stderr.join(" ")
            ));
            return out;
        }
        out.extend(self.trace_problems.iter().map(|p| format!("trace: {p}")));
        for (family, report) in &self.pings {
            if report.received != report.transmitted || report.transmitted == 0 {
                out.push(format!(
                    "{family:?}: {} of {} pings answered",
                    report.received, report.transmitted
                ));
            }
        }
        if let Some(c) = &self.counters {
            for name in ["IcmpInCsumErrors", "Icmp6InCsumErrors"] {
                if c.get(name).unwrap_or(0) != 0 {
                    out.push(format!("{name} = {}", c.get(name).unwrap_or(0)));
                }
            }
            let want = |f: Family| {
                self.pings
                    .iter()
                    .filter(|(x, _)| *x == f)
                    .map(|(_, r)| r.received)
                    .sum::<u64>()
            };
            for (name, family) in [("IcmpInEchoReps", Family::V4), ("Icmp6InEchoReplies", Family::V6)] {
                if c.get(name).unwrap_or(0) < want(family) {
                    out.push(format!(
                        "{name} grew by {}, fewer than the {} replies ping saw",
                        c.get(name).unwrap_or(0),
                        want(family)
                    ));
                }
            }
        }
        if let Some(c) = &self.capture {
            let answered: u64 = self.pings.iter().map(|(_, r)| r.received).sum();
            if c.replies as u64 != answered {
                out.push(format!(
                    "tcpdump on the tap saw {} echo replies, ping received {answered}",
                    c.replies
                ));
            }
            if !c.bad_checksums.is_empty() {
                out.push(format!("tcpdump: wrong checksums: {}", c.bad_checksums.join(" | ")));
            }
            if c.ttls.iter().any(|&t| t != 64) {
                out.push(format!("tcpdump: reply TTL / hop limit {:?}, not 64", c.ttls));
            }
        }
        if let Some(f) = &self.flood
            && (f.lost != 0 || f.wrong != 0 || f.replies != f.sent)
        {
            out.push(format!(
                "flood: {} sent, {} replies, {} wrong, {} lost",
                f.sent, f.replies, f.wrong, f.lost
            ));
        }
        match &self.summary {
            None if self.is_kernel_stack() => {}
            None => out.push("no summary event".into()),
            Some(s) => {
                for q in s.queues.iter().filter(|q| !q.frames.accounted) {
                    out.push(format!(
                        "queue {}: {} UMEM frames unaccounted",
                        q.queue, q.frames.elsewhere
                    ));
                }
            }
        }
        if self.exit_code != Some(0) {
            out.push(format!("exit status {:?}", self.exit_code));
        }
        out
    }
}

/// What a whole run found.
#[derive(Debug, Clone)]
pub struct VmReport {
    /// Guest kernel series.
    pub kernel: GuestKernel,
    /// Its exact release (`uname -r`).
    pub release: String,
    /// The guest NIC model.
    pub nic: Nic,
    /// The guest NIC's driver (`virtio_net`, `igb`).
    pub driver: String,
    /// KVM or TCG, and why.
    pub accel: AccelChoice,
    /// The QEMU version that ran the guest.
    pub qemu_version: String,
    /// Per `--mode`, in order.
    pub modes: Vec<ModeRun>,
    /// From QEMU's start to the guest's network being up.
    pub boot: Duration,
    /// The whole run.
    pub total: Duration,
}

/// The `summary` or `ready` event in a console line (the responder prints JSON on the console).
pub(super) fn event_in(line: &str) -> Option<Event> {
    let start = line.find("{\"event\"")?;
    Event::parse_line(&line[start..])
}

/// Whether `nic`'s driver in the kernel `release` has AF_XDP zero-copy.
pub fn has_zero_copy(nic: Nic, release: &str) -> bool {
    super::cache::release_version(release) >= nic.zero_copy_since()
}

/// Boots `cfg.kernel` with a `cfg.nic` NIC, runs the responder in each mode, pings it and
/// removes everything (guest, tap, namespace), also on failure or when `interrupted` is set.
pub fn run_vm(cfg: &VmConfig, cache: &Cache, interrupted: Arc<AtomicBool>) -> Result<VmReport, LabError> {
    let started = Instant::now();
    if !(1..=2).contains(&cfg.queues) {
        return Err(LabError::Config(format!("--queues {}: use 1 or 2", cfg.queues)));
    }
    if let Some(bad) = cfg
        .responder_args
        .iter()
        .find(|a| a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == ','))
    {
        return Err(LabError::Config(format!(
            "--responder-arg {bad:?}: one word per --responder-arg, without spaces or commas"
        )));
    }
    let kernel = cache.kernel(cfg.kernel)?;
    let qemu = match cfg.nic {
        Nic::Virtio => Qemu::host()?,
        Nic::Igb => cache.qemu_backports()?,
    };
    let qemu_version = qemu.version();
    let image = Initramfs {
        busybox: cache.busybox()?,
        modules: kernel.load_order(cfg.nic.modules()),
        responder: Some(cfg.responder.clone()),
        ..Initramfs::default()
    }
    .build()?;
    let accel = choose_accel(&qemu, &kernel.vmlinuz, image.path(), &interrupted);
    let net = TapNs::create(cfg.queues)?;
    let spec = GuestSpec {
        qemu: &qemu,
        accel: accel.accel,
        vmlinuz: &kernel.vmlinuz,
        initrd: image.path(),
        options: format!(
            "kmx.mode=responder kmx.modes={} kmx.queues={}{}",
            cfg.modes.join(","),
            cfg.queues,
            if cfg.responder_args.is_empty() {
                String::new()
            } else {
                format!(" kmx.args={}", cfg.responder_args.join(","))
            }
        ),
        nic: Some((cfg.nic, net.tap().to_string(), cfg.queues)),
        mac: GUEST_MAC.into(),
        echo: cfg.echo,
        prefix: format!("  guest {}| ", cfg.kernel.label()),
    };
    println!(
        "vm: booting Linux {} under QEMU {qemu_version}, accelerator {accel}, {} vCPU, NIC {} on tap {} in namespace {}",
        kernel.release,
        cfg.queues,
        cfg.nic.label(),
        net.tap(),
        net.ns()
    );
    if accel.accel == Accel::Tcg {
        println!("vm: TCG emulates every guest instruction: absolute speeds mean little, compare ratios");
    }
    let mut guest = Guest::boot(&spec, Some(net.ns()), interrupted)?;
    let line = guest.wait_for("KMX-NET ready", Duration::from_secs(240), |l| {
        l.contains("KMX-NET ready")
    })?;
    let driver = line
        .split("driver=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or("?")
        .to_string();
    let boot = guest.uptime();
    println!("vm: guest up after {:.1} s, NIC driver {driver}", boot.as_secs_f64());
    let mut modes = Vec::new();
    for mode in &cfg.modes {
        modes.push(run_mode(cfg, &net, &mut guest, mode)?);
    }
    guest.finish(Duration::from_secs(60))?;
    Ok(VmReport {
        kernel: cfg.kernel,
        release: kernel.release.clone(),
        nic: cfg.nic,
        driver,
        accel,
        qemu_version,
        modes,
        boot,
        total: started.elapsed(),
    })
}

fn run_mode(cfg: &VmConfig, net: &TapNs, guest: &mut Guest, mode: &str) -> Result<ModeRun, LabError> {
    let mut run = ModeRun {
        requested: mode.to_string(),
        ..ModeRun::default()
    };
    let marker = format!("KMX-START mode={mode}");
    guest.wait_for(&marker, Duration::from_secs(60), |l| l.contains(&marker))?;
    let first = guest.log().len();
    let line = guest.wait_for("the responder's ready event or exit", Duration::from_secs(180), |l| {
        matches!(event_in(l), Some(Event::Ready(_))) || l.contains("KMX-EXIT") || l.contains("KMX-KERNEL ready")
    })?;
    let ready = match event_in(&line) {
        Some(Event::Ready(ready)) => Some(ready),
        _ => None,
    };
    let started = ready.is_some() || line.contains("KMX-KERNEL ready");
    if let Some(ready) = ready {
        let modes: Vec<String> = ready
            .queues
            .iter()
            .map(|q| format!("queue {}: {}", q.queue, q.mode))
            .collect();
        println!(
            "vm: --mode {mode}: ready on {} (driver {}, XDP {}): {}",
            ready.iface,
            ready.driver,
            ready.xdp_mode,
            modes.join(", ")
        );
        run.ready = Some(ready);
    } else if run.is_kernel_stack() {
        println!("vm: --mode kernel: no responder, the guest kernel answers");
    }
    if started {
        // One request per family first, not counted: under emulation the first reply can be
        // late (the guest resolves the host's address), and `ping -c` then sends one more.
        for family in [Family::V4, Family::V6] {
            let spec = PingSpec::new(family, 1).deadline(Duration::from_secs(10));
            let _ = ping(net, &spec);
        }
        let before = Nstat::read(net, Side::Client)?;
        let capture = Capture::start_on(net, Side::Client, net.tap(), ICMP_FILTER)?;
        for family in [Family::V4, Family::V6] {
            let spec = PingSpec::new(family, cfg.pings)
                .interval(Duration::from_millis(200))
                .deadline(Duration::from_secs(30));
            let report = ping(net, &spec)?;
            println!(
                "vm: --mode {mode}: ping {} {}: {} sent, {} received",
                if family == Family::V4 { "-4" } else { "-6" },
                net.address_of(Side::Responder, family),
                report.transmitted,
                report.received
            );
            run.pings.push((family, report));
        }
        let text = capture.stop()?;
        let check = CaptureCheck {
            replies: text.echo_reply_count(),
            bad_checksums: text.bad_checksum_packets().iter().map(|p| p.to_string()).collect(),
            ttls: text.reply_ttls().into_iter().collect(),
        };
        println!(
            "vm: --mode {mode}: tcpdump -vvv on the tap: {} echo replies, {} with a wrong checksum, TTL / hop limit {:?}",
            check.replies,
            check.bad_checksums.len(),
            check.ttls
        );
        run.capture = Some(check);
        let delta = Nstat::read(net, Side::Client)?.since(&before);
        println!(
            "vm: --mode {mode}: host counters: IcmpInEchoReps +{}, Icmp6InEchoReplies +{}, IcmpInCsumErrors +{}, Icmp6InCsumErrors +{}",
            delta.get("IcmpInEchoReps").unwrap_or(0),
            delta.get("Icmp6InEchoReplies").unwrap_or(0),
            delta.get("IcmpInCsumErrors").unwrap_or(0),
            delta.get("Icmp6InCsumErrors").unwrap_or(0)
        );
        run.counters = Some(delta);
        if let Some(flood) = &cfg.flood {
            let copy = run.queue_modes().iter().all(|m| m == "copy");
            let rate = match (&flood.copy_rate, copy) {
                (Some(rate), true) => rate,
                _ => &flood.rate,
            };
            let cpu_before = guest_stat(guest)?;
            let report = run_flood(&cfg.responder, net, GUEST_V4, rate, flood.duration, cfg.queues)?;
            let cpu = GuestCpu::between(&cpu_before, &guest_stat(guest)?);
            run.guest_cpu = Some(cpu);
            println!(
                "vm: --mode {mode}: flood {} pps for {} s: {} sent, {} replies ({:.1} %), {} wrong, {} lost, p50 {:.0} us; guest CPU busy {:.2} s (softirq {:.2} s) of {:.2} s",
                rate,
                flood.duration,
                report.sent,
                report.replies,
                report.answered_pct,
                report.wrong,
                report.lost,
                report.latency_us.p50,
                cpu.busy_s,
                cpu.softirq_s,
                cpu.total_s
            );
            run.flood = Some(report);
        }
    }
    // Tell /init we are done with this mode: it stops the responder (SIGINT) if it still runs.
    guest.send_line("next")?;
    let exit = if line.contains("KMX-EXIT") {
        line
    } else {
        guest.wait_for("the responder's exit", Duration::from_secs(60), |l| {
            l.contains("KMX-EXIT")
        })?
    };
    run.exit_code = exit.split("rc=").nth(1).and_then(|s| s.trim().parse().ok());
    for l in &guest.log()[first..] {
        if let Some(Event::Summary(s)) = event_in(l) {
            run.summary = Some(s);
        } else if let Some(err) = l.split("KMX-ERR ").nth(1) {
            run.stderr.push(err.to_string());
        }
    }
    // `--responder-arg --trace --responder-arg N`: the tracer's lines came back on stderr.
    let trace: Vec<&String> = run.stderr.iter().filter(|l| l.starts_with("trace ")).collect();
    if !trace.is_empty() {
        println!("vm: --mode {mode}: the responder's frame trace:");
        for line in &trace {
            println!("  {line}");
        }
        let text: String = trace.iter().map(|l| format!("{l}\n")).collect();
        let frame_size = text
            .lines()
            .find_map(|l| l.split_once(" frames x ")?.1.split(' ').next()?.parse::<u64>().ok())
            .unwrap_or(4096);
        let journeys = crate::trace::parse(&text);
        let bad: Vec<String> = journeys.iter().filter_map(|j| j.check(frame_size).err()).collect();
        println!(
            "vm: --mode {mode}: {} traced journeys, {}",
            journeys.len(),
            if bad.is_empty() {
                "each consistent".to_string()
            } else {
                format!("INCONSISTENT: {}", bad.join("; "))
            }
        );
        run.trace_journeys = journeys.len();
        run.trace_problems = bad;
    }
    match (&run.ready, run.exit_code) {
        (None, _) if run.is_kernel_stack() => {}
        (None, code) => println!(
            "vm: --mode {mode}: refused, exit status {code:?}: {}",
            run.stderr.join(" ")
        ),
        (Some(_), _) => {
            if let Some(s) = &run.summary {
                for q in &s.queues {
                    let f = &q.frames;
                    println!(
                        "vm: --mode {mode}: exit: queue {} ({}) rx {} tx {}, kicks {}, sleeps {}; frames {} = {} fill + {} rx + {} tx + {} completion + {} in the driver: {}",
                        q.queue,
                        q.mode,
                        q.rx,
                        q.tx,
                        q.waits.kicks,
                        q.waits.sleeps,
                        f.total,
                        f.fill,
                        f.rx,
                        f.tx,
                        f.completion,
                        f.in_driver,
                        if f.accounted {
                            "all accounted for"
                        } else {
                            "NOT accounted for"
                        }
                    );
                }
            }
        }
    }
    Ok(run)
}

/// The guest's `/proc/stat` CPU line, asked for on the console.
pub(super) fn guest_stat(guest: &mut Guest) -> Result<[u64; 10], LabError> {
    guest.send_line("stat")?;
    let line = guest.wait_for("the guest's CPU reading", Duration::from_secs(30), |l| {
        l.contains("KMX-STAT cpu ")
    })?;
    GuestCpu::parse(&line).ok_or_else(|| LabError::Parse {
        what: "the guest's /proc/stat line",
        detail: line.clone(),
    })
}

/// `afxdp-responder flood --json` from the host namespace against the guest, one sending thread
/// per tap queue (`--queues 0,…,queues-1`).
///
/// Each thread's AF_XDP socket transmits on its own tap queue; tun hands a frame to the QEMU queue
/// of that number (`tun_net_xmit` uses the frame's queue mapping, no flow hash on this path), and
/// virtio-net delivers it on the guest's RX queue of the same number: so every guest queue gets
/// its share. With one sending thread every request would land on guest queue 0.
pub(super) fn run_flood(
    exe: &Path,
    net: &TapNs,
    dst: Ipv4Addr,
    rate: &str,
    duration: f64,
    queues: u32,
) -> Result<FloodReport, LabError> {
    let mut cmd: Command = net.command_on(Side::Client, &exe.to_string_lossy(), None)?;
    cmd.args([
        "flood",
        "--iface",
        net.tap(),
        "--dst",
        &dst.to_string(),
        "--dst-mac",
        GUEST_MAC,
    ])
    .args(["--rate", rate, "--duration", &duration.to_string(), "--json"]);
    if queues > 1 {
        let list: Vec<String> = (0..queues).map(|q| q.to_string()).collect();
        cmd.args(["--queues", &list.join(",")]);
    }
    let command = describe(&cmd);
    let out = run(
        cmd,
        "the flood",
        Duration::from_secs_f64(duration) + Duration::from_secs(30),
    )?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or_default();
    serde_json::from_str(line).map_err(|e| LabError::CommandFailed {
        what: "the flood".into(),
        command,
        status: out.status.to_string(),
        stderr: format!("{} (no JSON report: {e})", tail(&String::from_utf8_lossy(&out.stderr))),
    })
}
