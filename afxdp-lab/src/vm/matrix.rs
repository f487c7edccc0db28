//! `afxdp-lab vm --matrix`: on each guest kernel, load every XDP object of `redirect-ebpf` (does
//! this kernel's verifier accept it?) and run the daemon's `xdp_verdicts` integration test binary
//! (`BPF_PROG_TEST_RUN` verdicts, attach, detach) inside the guest. Guests run one after another.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::cache::{Cache, GuestKernel, Qemu};
use super::guest::{AccelChoice, Guest, GuestSpec, choose_accel};
use super::initramfs::Initramfs;
use crate::LabError;
use crate::exec::{run, tail};

/// The environment variable that names a prebuilt `xdp_verdicts` test binary.
pub const TEST_BINARY_ENV: &str = "AFXDP_XDP_VERDICTS";

/// The test binary to run in the guest.
#[derive(Debug, Clone)]
pub struct TestBinary {
    /// The `xdp_verdicts-<hash>` executable.
    pub path: PathBuf,
}

impl TestBinary {
    /// `$AFXDP_XDP_VERDICTS` if set, else built with
    /// `cargo test -p afxdp-responder --test xdp_verdicts --no-run --message-format=json` in the
    /// workspace.
    pub fn find() -> Result<Self, LabError> {
        if let Some(path) = std::env::var_os(TEST_BINARY_ENV) {
            return Ok(TestBinary {
                path: PathBuf::from(path),
            });
        }
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new("."));
        println!(
            "vm: building the xdp_verdicts test binary (cargo test --no-run) in {}",
            workspace.display()
        );
        let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.args([
            "test",
            "-p",
            "afxdp-responder",
            "--test",
            "xdp_verdicts",
            "--no-run",
            "--message-format=json",
        ])
        .current_dir(workspace);
        let out = run(cmd, "building the xdp_verdicts test binary", Duration::from_secs(1800))?;
        if !out.status.success() {
            return Err(LabError::CommandFailed {
                what: "building the xdp_verdicts test binary".into(),
                command: "cargo test -p afxdp-responder --test xdp_verdicts --no-run".into(),
                status: out.status.to_string(),
                stderr: tail(&String::from_utf8_lossy(&out.stderr)),
            });
        }
        let mut path = None;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            match msg["reason"].as_str() {
                Some("compiler-artifact") if msg["target"]["name"] == "xdp_verdicts" => {
                    path = msg["executable"].as_str().map(PathBuf::from);
                }
                _ => {}
            }
        }
        let path = path.ok_or_else(|| LabError::Parse {
            what: "cargo's JSON messages",
            detail: "no xdp_verdicts executable".into(),
        })?;
        Ok(TestBinary { path })
    }
}

/// One kernel's line of the matrix.
#[derive(Debug, Clone)]
pub struct MatrixRow {
    /// The kernel series.
    pub kernel: GuestKernel,
    /// Its exact release.
    pub release: String,
    /// KVM or TCG, and why.
    pub accel: AccelChoice,
    /// Each XDP object and whether the verifier accepted it.
    pub loads: Vec<(String, bool)>,
    /// The test binary's `test result:` line, if it got that far.
    pub tests: Option<String>,
    /// Whether the test binary passed.
    pub tests_passed: bool,
    /// The failing tests' names.
    pub failed: Vec<String>,
    /// Wall time of the guest.
    pub duration: Duration,
    /// Why the guest run itself failed (timeout, no boot), if it did.
    pub error: Option<String>,
}

impl MatrixRow {
    /// Every object loaded and every test passed.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.tests_passed && !self.loads.is_empty() && self.loads.iter().all(|(_, ok)| *ok)
    }
}

/// The five XDP objects, as the guest gets them.
fn objects() -> Vec<(String, &'static [u8])> {
    [
        ("redirect.o", redirect_ebpf::REDIRECT),
        ("echo_tx.o", redirect_ebpf::ECHO_TX),
        ("echo_drop.o", redirect_ebpf::ECHO_DROP),
        ("flood_replies.o", redirect_ebpf::FLOOD_REPLIES),
        ("xdp_pass.o", redirect_ebpf::XDP_PASS),
    ]
    .into_iter()
    .map(|(n, b)| (n.to_string(), b))
    .collect()
}

/// Runs the matrix on `kernels`, one guest after another; a guest that fails is a FAIL row, not
/// an error (the other kernels still run). Errors are for what stops every row (no test binary,
/// no download, Ctrl-C).
pub fn run_matrix(
    kernels: &[GuestKernel],
    test: &TestBinary,
    cache: &Cache,
    echo: bool,
    interrupted: Arc<AtomicBool>,
) -> Result<Vec<MatrixRow>, LabError> {
    let busybox = cache.busybox()?;
    let qemu = Qemu::host()?;
    let mut rows = Vec::new();
    for &k in kernels {
        let kernel = cache.kernel(k)?;
        let image = Initramfs {
            busybox: busybox.clone(),
            modules: kernel.load_order(&["veth"]),
            tests: vec![("xdp_verdicts".into(), test.path.clone())],
            objects: objects(),
            object_dirs: Vec::new(),
            ..Initramfs::default()
        }
        .build()?;
        let accel = choose_accel(&qemu, &kernel.vmlinuz, image.path(), &interrupted);
        println!(
            "vm: matrix: booting Linux {} (accelerator {accel}) to load the XDP objects and run xdp_verdicts",
            kernel.release
        );
        let started = Instant::now();
        let spec = GuestSpec {
            qemu: &qemu,
            accel: accel.accel,
            vmlinuz: &kernel.vmlinuz,
            initrd: image.path(),
            options: "kmx.mode=tests".into(),
            nic: None,
            mac: String::new(),
            echo,
            prefix: format!("  guest {}| ", k.label()),
        };
        let mut row = MatrixRow {
            kernel: k,
            release: kernel.release.clone(),
            accel,
            loads: Vec::new(),
            tests: None,
            tests_passed: false,
            failed: Vec::new(),
            duration: Duration::ZERO,
            error: None,
        };
        let mut guest = Guest::boot(&spec, None, Arc::clone(&interrupted))?;
        let outcome = guest.wait_for("the test result", Duration::from_secs(300), |l| {
            l.contains("KMX-RESULT")
        });
        if let Err(err) = &outcome {
            if interrupted.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(LabError::Config("interrupted (Ctrl-C)".into()));
            }
            row.error = Some(crate::one_line(err));
        }
        for line in guest.log() {
            if let Some(rest) = line.split("KMX-LOAD ").nth(1) {
                let mut words = rest.split_whitespace();
                let name = words.next().unwrap_or_default().to_string();
                row.loads.push((name, words.next() == Some("ok")));
            } else if line.starts_with("test result:") {
                row.tests = Some(line.clone());
            } else if line.starts_with("test ") && line.ends_with("FAILED") {
                row.failed.push(
                    line.trim_start_matches("test ")
                        .trim_end_matches(" ... FAILED")
                        .to_string(),
                );
            } else if line.contains("KMX-RESULT xdp_verdicts PASS") {
                row.tests_passed = true;
            }
        }
        let _ = guest.finish(Duration::from_secs(30));
        row.duration = started.elapsed();
        println!(
            "vm: matrix: Linux {}: {} in {:.0} s",
            row.release,
            if row.passed() { "PASS" } else { "FAIL" },
            row.duration.as_secs_f64()
        );
        rows.push(row);
    }
    Ok(rows)
}

/// The matrix as a Markdown table.
pub fn render_matrix(rows: &[MatrixRow]) -> String {
    let mut out = String::from(
        "| kernel | accel | XDP objects loaded | xdp_verdicts | result | time |\n|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let loaded = r.loads.iter().filter(|(_, ok)| *ok).count();
        let failed_loads: Vec<&str> = r.loads.iter().filter(|(_, ok)| !*ok).map(|(n, _)| n.as_str()).collect();
        let loads = if failed_loads.is_empty() {
            format!("{loaded}/{}", r.loads.len())
        } else {
            format!("{loaded}/{} (refused: {})", r.loads.len(), failed_loads.join(", "))
        };
        let tests = match (&r.error, &r.tests) {
            (Some(e), _) => e.clone(),
            (None, Some(t)) => t.trim_start_matches("test result: ").to_string(),
            (None, None) => "no result".into(),
        };
        let tests = if r.failed.is_empty() {
            tests
        } else {
            format!("{tests}; failed: {}", r.failed.join(", "))
        };
        out.push_str(&format!(
            "| {} | {} | {loads} | {tests} | {} | {:.0} s |\n",
            r.release,
            r.accel.accel.name(),
            if r.passed() { "PASS" } else { "FAIL" },
            r.duration.as_secs_f64()
        ));
    }
    out
}
