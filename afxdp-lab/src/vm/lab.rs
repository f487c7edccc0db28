//! `afxdp-lab vm`: the responder inside a guest with a virtio-net NIC, real `ping` (and
//! optionally the `flood` generator) from the host end, checked with the host's kernel counters.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use responder_json::{Event, FloodReport, Ready, Summary};

use super::cache::{Cache, GuestKernel};
use super::guest::{Guest, GuestSpec};
use super::initramfs::Initramfs;
use super::tapns::{GUEST_MAC, GUEST_V4, TapNs};
use crate::exec::{describe, run, tail};
use crate::{Endpoints, Family, LabError, Nstat, PingReport, PingSpec, Side, ping};

/// The modules a virtio-net guest loads (those that are built in are skipped).
const VIRTIO_MODULES: &[&str] = &["virtio_pci", "virtio_net"];

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
    /// `--mode` values to run the responder with, one after another in the same guest.
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
    /// `ping -4` and `ping -6`.
    pub pings: Vec<(Family, PingReport)>,
    /// The host namespace's SNMP counters: growth over the pings.
    pub counters: Option<Nstat>,
    /// The flood report.
    pub flood: Option<FloodReport>,
    /// The `summary` event.
    pub summary: Option<Summary>,
}

impl ModeRun {
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
        if self.ready.is_none() {
            out.push(format!(
                "--mode {} did not start: {}",
                self.requested,
                self.stderr.join(" ")
            ));
            return out;
        }
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
        if let Some(f) = &self.flood
            && (f.lost != 0 || f.wrong != 0 || f.replies != f.sent)
        {
            out.push(format!(
                "flood: {} sent, {} replies, {} wrong, {} lost",
                f.sent, f.replies, f.wrong, f.lost
            ));
        }
        match &self.summary {
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
    /// Guest kernel.
    pub kernel: GuestKernel,
    /// The guest NIC's driver (`virtio_net`).
    pub driver: String,
    /// Per `--mode`, in order.
    pub modes: Vec<ModeRun>,
    /// From QEMU's start to the guest's network being up.
    pub boot: Duration,
    /// The whole run.
    pub total: Duration,
}

/// The `summary` or `ready` event in a console line (the responder prints JSON on the console).
fn event_in(line: &str) -> Option<Event> {
    let start = line.find("{\"event\"")?;
    Event::parse_line(&line[start..])
}

/// Boots `cfg.kernel` with a virtio-net NIC, runs the responder in each mode, pings it and
/// removes everything (guest, tap, namespace), also on failure or when `interrupted` is set.
pub fn run_vm(cfg: &VmConfig, cache: &Cache, interrupted: Arc<AtomicBool>) -> Result<VmReport, LabError> {
    let started = Instant::now();
    if !(1..=2).contains(&cfg.queues) {
        return Err(LabError::Config(format!("--queues {}: use 1 or 2", cfg.queues)));
    }
    let kernel = cache.kernel(cfg.kernel)?;
    let image = Initramfs {
        busybox: cache.busybox()?,
        modules: kernel.load_order(VIRTIO_MODULES),
        responder: Some(cfg.responder.clone()),
        ..Initramfs::default()
    }
    .build()?;
    let net = TapNs::create(cfg.queues)?;
    let spec = GuestSpec {
        vmlinuz: &kernel.vmlinuz,
        initrd: image.path(),
        options: format!(
            "kmx.mode=responder kmx.modes={} kmx.queues={}",
            cfg.modes.join(","),
            cfg.queues
        ),
        nic: Some((net.tap().to_string(), cfg.queues)),
        mac: GUEST_MAC.into(),
        echo: cfg.echo,
        prefix: format!("  guest {}| ", cfg.kernel.label()),
    };
    println!(
        "vm: booting Linux {} under QEMU (TCG emulation, {} vCPU) with a virtio-net NIC on tap {} in namespace {}",
        cfg.kernel.release(),
        cfg.queues,
        net.tap(),
        net.ns()
    );
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
        driver,
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
        matches!(event_in(l), Some(Event::Ready(_))) || l.contains("KMX-EXIT")
    })?;
    if let Some(Event::Ready(ready)) = event_in(&line) {
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
        let before = Nstat::read(net, Side::Client)?;
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
            let report = run_flood(&cfg.responder, net, rate, flood.duration)?;
            println!(
                "vm: --mode {mode}: flood {} pps for {} s: {} sent, {} replies ({:.1} %), {} wrong, {} lost, p50 {:.0} us",
                rate,
                flood.duration,
                report.sent,
                report.replies,
                report.answered_pct,
                report.wrong,
                report.lost,
                report.latency_us.p50
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
    match (&run.ready, run.exit_code) {
        (None, code) => println!(
            "vm: --mode {mode}: refused, exit status {code:?}: {}",
            run.stderr.join(" ")
        ),
        (Some(_), _) => {
            if let Some(s) = &run.summary {
                for q in &s.queues {
                    let f = &q.frames;
                    println!(
                        "vm: --mode {mode}: exit: queue {} ({}) rx {} tx {}; frames {} = {} fill + {} rx + {} tx + {} completion + {} in the driver: {}",
                        q.queue,
                        q.mode,
                        q.rx,
                        q.tx,
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

/// `afxdp-responder flood --json` from the host namespace against the guest.
fn run_flood(exe: &Path, net: &TapNs, rate: &str, duration: f64) -> Result<FloodReport, LabError> {
    let mut cmd: Command = net.command_on(Side::Client, &exe.to_string_lossy(), None)?;
    cmd.args([
        "flood",
        "--iface",
        net.tap(),
        "--dst",
        &GUEST_V4.to_string(),
        "--dst-mac",
        GUEST_MAC,
    ])
    .args(["--rate", rate, "--duration", &duration.to_string(), "--json"]);
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
