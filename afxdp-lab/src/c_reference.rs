//! The C AF_XDP reference responder (`afxdp-lab/c-reference/echo_xsk.c`): built with the system's
//! C compiler against libxdp and libbpf when the bench or a test needs it, and run in the
//! responder namespace like the real responder. See `c-reference/README.md` for what it is
//! modelled on and how it differs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::exec::Background;
use crate::{LabError, NetnsPair, Side};

/// The C source, embedded so the lab builds it from any working directory.
pub const SOURCE: &str = include_str!("../c-reference/echo_xsk.c");

/// Builds the reference (once per source version: the binary's name carries a hash of the
/// source) under `dir` and returns its path. Needs `cc` and libxdp-dev/libbpf-dev (`run.sh`
/// installs them).
pub fn build(dir: &Path) -> Result<PathBuf, LabError> {
    let hash = SOURCE.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let exe = dir.join(format!("echo_xsk-{hash:016x}"));
    if exe.is_file() {
        return Ok(exe);
    }
    let io = |what: String| move |source| LabError::Io { what, source };
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let src = dir.join(format!("echo_xsk-{hash:016x}.c"));
    std::fs::write(&src, SOURCE).map_err(io(format!("writing {}", src.display())))?;
    let mut cc = Command::new("cc");
    cc.args(["-O2", "-Wall", "-Werror", "-o"])
        .arg(&exe)
        .arg(&src)
        .args(["-lxdp", "-lbpf"]);
    crate::exec::run_ok(
        cc,
        "building the C reference responder (needs cc, libxdp-dev and libbpf-dev: see run.sh)",
    )
    .map(drop)?;
    Ok(exe)
}

/// The default build directory: next to the lab's other build outputs in `target/`, or the
/// system's temporary directory.
pub fn default_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("afxdp-lab-c-reference")
}

/// A running reference responder on queue 0 of the pair's responder interface.
#[derive(Debug)]
pub struct CReference {
    process: Background,
}

/// What the reference counted at exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CReferenceTotals {
    /// Frames received on its socket.
    pub rx: u64,
    /// Replies sent.
    pub tx: u64,
    /// Frames that were not echo requests (or found TX full).
    pub dropped: u64,
}

impl CReference {
    /// Starts `exe` (from [`build`]) on the responder side and waits for its `ready` line.
    pub fn start(pair: &NetnsPair, exe: &Path) -> Result<Self, LabError> {
        Self::start_with(pair, exe, &[])
    }

    /// [`CReference::start`] through a wrapper that execs it in place (same pid), e.g.
    /// `taskset` with `args` = `-c 1 /path/to/echo_xsk`; the interface and queue are appended.
    pub fn start_with(pair: &NetnsPair, program: &Path, args: &[String]) -> Result<Self, LabError> {
        let mut cmd = pair.command_in(Side::Responder, &program.to_string_lossy());
        cmd.args(args).args([pair.responder_if(), "0"]);
        let mut process = Background::spawn(cmd)?;
        process.wait_for_line("ready", Duration::from_secs(20))?;
        Ok(CReference { process })
    }

    /// Its process id (for CPU accounting).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Stops it with SIGINT and reads its `rx N tx M dropped D` line.
    pub fn stop(self) -> Result<CReferenceTotals, LabError> {
        let command = self.process.command().to_string();
        let finished = self.process.stop(Duration::from_secs(10))?;
        let totals = finished.stdout.lines().find_map(|line| {
            let w: Vec<&str> = line.split_whitespace().collect();
            match w.as_slice() {
                ["rx", rx, "tx", tx, "dropped", d] => Some(CReferenceTotals {
                    rx: rx.parse().ok()?,
                    tx: tx.parse().ok()?,
                    dropped: d.parse().ok()?,
                }),
                _ => None,
            }
        });
        totals.ok_or_else(|| LabError::CommandFailed {
            what: "stopping the C reference responder".into(),
            command,
            status: finished.status.to_string(),
            stderr: finished.stderr.trim().to_string(),
        })
    }
}
