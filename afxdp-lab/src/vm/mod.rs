//! The VM lab: the responder and the XDP programs on other kernels and on emulated NICs that
//! have AF_XDP zero-copy (virtio-net, igb), in a QEMU guest: KVM where a probe boot shows that it
//! works, pure emulation (TCG) otherwise ([`choose_accel`]).
//!
//! - [`run_vm`] (`afxdp-lab vm`): boots a Debian kernel with a virtio-net or igb NIC whose host
//!   end is a tap in a namespace of the lab's own ([`TapNs`]), runs `afxdp-responder --output
//!   json` in the guest once per `--mode`, pings it from the host with the real `ping` (v4 and
//!   v6), checks the host's SNMP counters and `tcpdump -vvv` on the tap, optionally floods it with
//!   `afxdp-responder flood`, and reports the mode each queue got (the guest's `ready` event,
//!   relayed over the serial console).
//! - [`run_matrix`] (`afxdp-lab vm --matrix`): per kernel, loads the five XDP objects and runs the
//!   daemon's `xdp_verdicts` test binary in the guest; one PASS/FAIL table.
//!
//! What it needs is fetched on first use into `/var/cache/afxdp-lab` ([`Cache`]): the newest of
//! Debian's guest kernels 6.1, 6.12 and 7.x and busybox-static (about 300 MiB); for igb, QEMU 10
//! from bookworm-backports (13 MiB). Virtio guests run on the host's `qemu-system-x86`. The guest, the tap and the namespace are removed when the run ends,
//! also on failure or Ctrl-C (each is a guard with a `Drop`). Addresses: 198.18.0.1/.2 and
//! 2001:db8::1/::2 only.
//!
//! ```no_run
//! use std::sync::{Arc, atomic::AtomicBool};
//! use afxdp_lab::vm::{Cache, GuestKernel, Nic, VmConfig, run_vm};
//!
//! # fn main() -> Result<(), afxdp_lab::LabError> {
//! let cfg = VmConfig {
//!     kernel: GuestKernel::V7,
//!     nic: Nic::Igb,
//!     modes: vec!["zero-copy".into()],
//!     queues: 1,
//!     pings: 5,
//!     flood: None,
//!     echo: true,
//!     responder: afxdp_lab::responder_exe()?,
//!     responder_args: vec![],
//! };
//! let report = run_vm(&cfg, &Cache::default(), Arc::new(AtomicBool::new(false)))?;
//! assert_eq!(report.modes[0].queue_modes(), ["zero-copy"]);
//! # Ok(())
//! # }
//! ```

mod bench;
mod cache;
mod guest;
mod initramfs;
mod lab;
mod matrix;
mod tapns;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

pub use bench::{VmBenchArgs, VmBenchReport, VmBenchRow, measure_vm_bench, run_vm_bench};
/// The VM bench's Markdown table and plot, for `afxdp-lab bench --vm`.
pub mod bench_output {
    pub use super::bench::{markdown, svg};
}
pub use cache::{CACHE_DIR, Cache, GuestKernel, KernelFiles, KernelPackage, Qemu, release_version};
pub use guest::{ACCEL_ENV, Accel, AccelChoice, Nic, choose_accel};
pub use lab::{CaptureCheck, FloodSpec, GuestCpu, ModeRun, VmConfig, VmReport, has_zero_copy, run_vm};
pub use matrix::{MatrixRow, TEST_BINARY_ENV, TestBinary, render_matrix, run_matrix};
pub use tapns::{GUEST_MAC, GUEST_PASS_V4, GUEST_V4, GUEST_V6, HOST_V4, HOST_V6, TapNs};

use crate::{LabError, require_root, responder_exe};

/// `--mode` of `afxdp-lab vm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VmMode {
    /// Zero-copy only: refused where the driver has none.
    ZeroCopy,
    /// Copy mode.
    Copy,
    /// Zero-copy where possible, else copy.
    Auto,
    /// copy, zero-copy and auto, one after another in the same guest.
    All,
    /// `--engine xdp-tx`: the XDP program answers in the guest kernel.
    XdpTx,
    /// No responder: the guest kernel's own ICMP code answers.
    Kernel,
}

/// Options of `afxdp-lab vm`.
#[derive(Debug, clap::Args)]
pub struct VmArgs {
    /// Guest kernel series: Debian 12's 6.1, Debian 13's 6.12, or the newest 7.x of
    /// trixie-backports (whose virtio-net and igb drivers have zero-copy); the newest package of
    /// the series is fetched once, then used from the cache.
    #[arg(long, value_enum, default_value = "7")]
    pub kernel: GuestKernel,
    /// Guest NIC: virtio-net (the host's QEMU), or igb (Intel 82576; QEMU 10 from
    /// bookworm-backports, fetched into the cache).
    #[arg(long, value_enum, default_value = "virtio")]
    pub nic: Nic,
    /// Look in Debian's archive for a newer kernel of the series even when one is cached.
    #[arg(long)]
    pub refresh: bool,
    /// The responder's --mode in the guest.
    #[arg(long, value_enum, default_value = "all")]
    pub mode: VmMode,
    /// NIC queues, each served by the responder (2 = -smp 2, virtio mq, a multi-queue tap).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=2))]
    pub queues: u32,
    /// Echo requests per family per mode.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub pings: u32,
    /// Also flood each mode with `afxdp-responder flood` at this rate (e.g. 2k) ...
    #[arg(long, value_name = "PPS")]
    pub flood_rate: Option<String>,
    /// The flood rate for a mode that got copy mode, if lower (emulated copy is slower).
    #[arg(long, value_name = "PPS", requires = "flood_rate")]
    pub flood_copy_rate: Option<String>,
    /// ... for this many seconds (at most 60).
    #[arg(long, default_value_t = 3.0, value_name = "SECONDS")]
    pub flood_duration: f64,
    /// Instead: the kernel matrix: per kernel, load the five XDP objects and run the
    /// xdp_verdicts test binary in the guest (6.1, 6.12 and 7 unless --matrix-kernel).
    #[arg(long)]
    pub matrix: bool,
    /// With --matrix: only these kernels (repeatable); default all three.
    #[arg(long = "matrix-kernel", value_enum)]
    pub matrix_kernels: Vec<GuestKernel>,
    /// Do not print the guest's console lines.
    #[arg(long)]
    pub quiet: bool,
    /// One more option word for the guest's responder (repeatable, in order; no spaces or
    /// commas), e.g. `--responder-arg=--no-need-wakeup`, or `--responder-arg=--trace
    /// --responder-arg=4` to print the frame tracer's journeys in zero-copy mode.
    #[arg(long = "responder-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub responder_args: Vec<String>,
    /// Instead: the zero-copy vs copy comparison (see `--bench-*`).
    #[command(flatten)]
    pub bench: VmBenchArgs,
}

impl VmArgs {
    /// The NICs of a `--bench` run: `--bench-nics`, else `--nic`.
    fn nic_list(&self) -> Vec<Nic> {
        if self.bench.nics.is_empty() {
            vec![self.nic]
        } else {
            self.bench.nics.clone()
        }
    }
}

impl VmMode {
    fn modes(self) -> Vec<String> {
        match self {
            VmMode::ZeroCopy => vec!["zero-copy".into()],
            VmMode::Copy => vec!["copy".into()],
            VmMode::Auto => vec!["auto".into()],
            VmMode::All => vec!["copy".into(), "zero-copy".into(), "auto".into()],
            VmMode::XdpTx => vec!["xdp-tx".into()],
            VmMode::Kernel => vec!["kernel".into()],
        }
    }
}

/// Ctrl-C and SIGTERM set the flag; the waits notice it and the guards clean up.
fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, Arc::clone(&flag));
    }
    flag
}

/// Runs `afxdp-lab vm` (or `vm --matrix`) and prints the results.
pub fn run(args: &VmArgs) -> Result<ExitCode, LabError> {
    require_root()?;
    let cache = Cache::default().with_refresh(args.refresh);
    let interrupted = interrupt_flag();
    if args.bench.bench {
        return run_vm_bench(
            &args.bench,
            args.kernel,
            &args.nic_list(),
            &cache,
            !args.quiet,
            interrupted,
        );
    }
    if args.matrix {
        let kernels = if args.matrix_kernels.is_empty() {
            GuestKernel::ALL.to_vec()
        } else {
            args.matrix_kernels.clone()
        };
        if let Some(msg) = cache.missing(&kernels) {
            println!("vm: {msg}");
        }
        let test = TestBinary::find()?;
        let rows = run_matrix(&kernels, &test, &cache, !args.quiet, interrupted)?;
        println!("\n{}", render_matrix(&rows));
        return Ok(if rows.iter().all(MatrixRow::passed) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    if !(args.flood_duration > 0.0 && args.flood_duration <= 60.0) {
        return Err(LabError::Config(format!(
            "--flood-duration {}: use seconds in (0, 60]",
            args.flood_duration
        )));
    }
    if let Some(msg) = cache.missing(&[args.kernel]) {
        println!("vm: {msg}");
    }
    let cfg = VmConfig {
        kernel: args.kernel,
        nic: args.nic,
        modes: args.mode.modes(),
        queues: args.queues,
        pings: args.pings,
        flood: args.flood_rate.clone().map(|rate| FloodSpec {
            rate,
            copy_rate: args.flood_copy_rate.clone(),
            duration: args.flood_duration,
        }),
        echo: !args.quiet,
        responder: responder_exe()?,
        responder_args: args.responder_args.clone(),
    };
    let report = run_vm(&cfg, &cache, interrupted)?;
    println!(
        "\nLinux {} on QEMU {} ({}), NIC {} ({} queue(s)), boot {:.1} s, total {:.0} s:",
        report.release,
        report.qemu_version,
        report.accel,
        report.driver,
        cfg.queues,
        report.boot.as_secs_f64(),
        report.total.as_secs_f64()
    );
    let mut ok = true;
    for m in &report.modes {
        // Before 6.13 (virtio-net) / 6.14 (igb) there is no zero-copy: a clean refusal is the
        // right answer there.
        let expected_refusal = m.requested == "zero-copy"
            && !has_zero_copy(report.nic, &report.release)
            && m.ready.is_none()
            && m.exit_code == Some(1);
        let problems = if expected_refusal { Vec::new() } else { m.problems() };
        let got = if m.ready.is_some() {
            m.queue_modes().join(", ")
        } else {
            "refused".into()
        };
        let verdict = match (expected_refusal, problems.is_empty()) {
            (true, _) => {
                let (major, minor) = report.nic.zero_copy_since();
                format!(
                    "OK: refused in one line, exit 1 ({} zero-copy needs Linux >= {major}.{minor})",
                    report.nic.driver()
                )
            }
            (false, true) => "OK".to_string(),
            (false, false) => problems.join("; "),
        };
        println!("  --mode {:<9} got {:<22} {verdict}", m.requested, got);
        ok &= problems.is_empty();
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
