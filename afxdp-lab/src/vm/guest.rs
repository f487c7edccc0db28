//! One QEMU guest, its serial console read line by line; KVM where a probe boot shows that it
//! works, pure emulation (`-accel tcg`) otherwise.
//!
//! The console is QEMU's stdin/stdout (`-serial stdio`): every line the guest prints reaches the
//! lab (and, prefixed, the user), and the lab answers the guest's `/init` by writing a line. The
//! QEMU process is killed when the [`Guest`] is dropped, so a failing or interrupted run leaves no
//! guest behind; every wait has a deadline.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use super::cache::Qemu;
use crate::LabError;
use crate::exec::{ChildGuard, tool};

/// The guest's NIC model (`--nic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Nic {
    /// virtio-net (`virtio-net-pci`, modern-only behind an IOMMU); the host's QEMU is enough;
    /// AF_XDP zero-copy in guests >= 6.13.
    Virtio,
    /// Intel 82576 (`igb`): QEMU >= 8, fetched from bookworm-backports; AF_XDP zero-copy in
    /// guests >= 6.14.
    Igb,
}

impl Nic {
    /// The guest driver's name, as `ethtool -i` and the responder report it.
    pub fn driver(self) -> &'static str {
        match self {
            Nic::Virtio => "virtio_net",
            Nic::Igb => "igb",
        }
    }

    /// The `--nic` value.
    pub fn label(self) -> &'static str {
        match self {
            Nic::Virtio => "virtio",
            Nic::Igb => "igb",
        }
    }

    /// The modules the guest loads for it (built-in ones are skipped).
    pub fn modules(self) -> &'static [&'static str] {
        match self {
            Nic::Virtio => &["virtio_pci", "virtio_net"],
            Nic::Igb => &["igb"],
        }
    }

    /// The first guest kernel whose driver has AF_XDP zero-copy: virtio-net 6.13 (TX zero-copy,
    /// commit "virtio_net: xsk: tx: support xmit xsk buffer"), igb 6.14.
    pub fn zero_copy_since(self) -> (u32, u32) {
        match self {
            Nic::Virtio => (6, 13),
            Nic::Igb => (6, 14),
        }
    }

    /// QEMU's `-device` and `-netdev` for this NIC on `tap` with `queues` queues.
    fn qemu_args(self, tap: &str, queues: u32, mac: &str) -> (String, String) {
        let mut netdev = format!("tap,id=n0,ifname={tap},script=no,downscript=no");
        if queues > 1 {
            netdev.push_str(&format!(",queues={queues}"));
        }
        let device = match self {
            // Zero-copy needs a modern-only device behind an IOMMU (else the bind fails with
            // EINVAL); several queues need mq=on and 2 vectors per queue pair + 2.
            Nic::Virtio => {
                let mut d = format!("virtio-net-pci,disable-legacy=on,iommu_platform=on,netdev=n0,mac={mac},romfile=");
                if queues > 1 {
                    d.push_str(&format!(",mq=on,vectors={}", 2 * queues + 2));
                }
                d
            }
            // igb has 8 queue pairs of its own; the guest uses one per vCPU.
            Nic::Igb => format!("igb,netdev=n0,mac={mac},romfile="),
        };
        (device, netdev)
    }
}

/// How QEMU runs the guest's CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware virtualisation through /dev/kvm.
    Kvm,
    /// QEMU's own emulation: slow, but runs anywhere.
    Tcg,
}

impl Accel {
    /// `kvm` or `tcg`.
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    fn qemu_args(self) -> [&'static str; 4] {
        match self {
            Accel::Kvm => ["-accel", "kvm", "-cpu", "host"],
            Accel::Tcg => ["-accel", "tcg", "-cpu", "max"],
        }
    }
}

/// The accelerator chosen for a QEMU, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelChoice {
    /// KVM or TCG.
    pub accel: Accel,
    /// Why: "KVM probe booted in 1.2 s", "/dev/kvm: No such file or directory", ...
    pub why: String,
}

impl std::fmt::Display for AccelChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.accel.name(), self.why)
    }
}

/// Environment variable that skips the probe: `kvm` or `tcg`.
pub const ACCEL_ENV: &str = "AFXDP_LAB_ACCEL";

/// How long a KVM probe boot may take: a working KVM reaches `/init` in a second or two.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Lines of QEMU or the guest that mean KVM cannot run this guest (seen on a PVM hypervisor:
/// `-cpu host` aborts on an MSR, other CPU models stop in early boot).
const KVM_FAILURES: &[&str] = &[
    "KVM internal error",
    "failed to set MSR",
    "kvm run failed",
    "Could not access KVM",
];

/// Cached per QEMU binary: the probe runs once per process.
static CHOICES: std::sync::Mutex<Vec<(std::path::PathBuf, AccelChoice)>> = std::sync::Mutex::new(Vec::new());

/// Chooses KVM if `/dev/kvm` can really boot `vmlinuz` with `initrd` (a probe boot with
/// `kmx.mode=probe`, bounded by a timeout), else TCG; `$AFXDP_LAB_ACCEL` overrides. The answer is
/// kept for the rest of the process.
pub fn choose_accel(qemu: &Qemu, vmlinuz: &Path, initrd: &Path, interrupted: &Arc<AtomicBool>) -> AccelChoice {
    if let Ok(forced) = std::env::var(ACCEL_ENV) {
        let accel = if forced == "kvm" { Accel::Kvm } else { Accel::Tcg };
        return AccelChoice {
            accel,
            why: format!("${ACCEL_ENV}={forced}"),
        };
    }
    let mut choices = CHOICES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, c)) = choices.iter().find(|(exe, _)| *exe == qemu.exe) {
        return c.clone();
    }
    let choice = probe_kvm(qemu, vmlinuz, initrd, interrupted);
    choices.push((qemu.exe.clone(), choice.clone()));
    choice
}

fn probe_kvm(qemu: &Qemu, vmlinuz: &Path, initrd: &Path, interrupted: &Arc<AtomicBool>) -> AccelChoice {
    let tcg = |why: String| AccelChoice { accel: Accel::Tcg, why };
    if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        return tcg(format!("/dev/kvm: {e}"));
    }
    let spec = GuestSpec {
        qemu,
        accel: Accel::Kvm,
        vmlinuz,
        initrd,
        options: "kmx.mode=probe".into(),
        nic: None,
        mac: String::new(),
        echo: false,
        prefix: String::new(),
    };
    let started = Instant::now();
    let mut guest = match Guest::boot(&spec, None, Arc::clone(interrupted)) {
        Ok(g) => g,
        Err(e) => return tcg(format!("KVM probe did not start: {}", crate::one_line(&e))),
    };
    let mut failure = None;
    let booted = guest.wait_for("the KVM probe's boot line", PROBE_TIMEOUT, |l| {
        if KVM_FAILURES.iter().any(|f| l.contains(f)) {
            failure = Some(l.to_string());
            return true;
        }
        l.contains("KMX-BOOT")
    });
    match (booted, failure) {
        (Ok(_), None) => AccelChoice {
            accel: Accel::Kvm,
            why: format!(
                "a KVM probe boot reached /init in {:.1} s",
                started.elapsed().as_secs_f64()
            ),
        },
        (_, Some(line)) => tcg(format!("KVM cannot run this guest: \"{}\"", line.trim())),
        (Err(e), None) => tcg(format!("KVM probe failed: {}", crate::one_line(&e))),
    }
}

/// How the guest is started.
#[derive(Debug, Clone)]
pub struct GuestSpec<'a> {
    /// The QEMU to run.
    pub qemu: &'a Qemu,
    /// KVM or TCG.
    pub accel: Accel,
    /// The kernel image.
    pub vmlinuz: &'a Path,
    /// The initramfs.
    pub initrd: &'a Path,
    /// `kmx.*` options for `/init` (appended to the kernel command line).
    pub options: String,
    /// Guest NIC: `(model, tap name, queues)`; `None` for no NIC.
    pub nic: Option<(Nic, String, u32)>,
    /// The guest's MAC address.
    pub mac: String,
    /// Print console lines as they come (prefixed with `prefix`).
    pub echo: bool,
    /// Prefix of echoed lines, e.g. `guest 7.3| `.
    pub prefix: String,
}

/// A running guest; killed when dropped.
#[derive(Debug)]
pub struct Guest {
    child: ChildGuard,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    log: Vec<String>,
    echo: bool,
    prefix: String,
    interrupted: Arc<AtomicBool>,
    started: Instant,
}

impl Guest {
    /// Starts QEMU (inside network namespace `ns` when given) with `spec`.
    pub fn boot(spec: &GuestSpec<'_>, ns: Option<&str>, interrupted: Arc<AtomicBool>) -> Result<Self, LabError> {
        let wrapper = match ns {
            Some(ns) => {
                let mut c = Command::new(tool("ip")?);
                c.args(["netns", "exec", ns]);
                Some(c)
            }
            None => None,
        };
        let mut cmd = spec.qemu.command(wrapper);
        let smp = spec.nic.as_ref().map_or(1, |(_, _, q)| (*q).max(1));
        cmd.args(spec.accel.qemu_args())
            .args(["-smp", &smp.to_string(), "-m", "1G"])
            .args([
                "-display",
                "none",
                "-vga",
                "none",
                "-monitor",
                "none",
                "-serial",
                "stdio",
                "-no-reboot",
            ])
            .arg("-kernel")
            .arg(spec.vmlinuz)
            .arg("-initrd")
            .arg(spec.initrd)
            .arg("-append")
            .arg(format!("console=ttyS0 panic=-1 loglevel=4 {}", spec.options));
        match &spec.nic {
            Some((model, tap, queues)) => {
                let (device, netdev) = model.qemu_args(tap, *queues, &spec.mac);
                cmd.args(["-device", &device, "-netdev", &netdev]);
            }
            None => {
                cmd.args(["-nic", "none"]);
            }
        }
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = ChildGuard::spawn(&mut cmd)?;
        let (tx, lines) = mpsc::channel();
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            thread::spawn(move || {
                let mut reader = BufReader::new(pipe);
                let mut buf = Vec::new();
                // Lines may hold bytes that are not UTF-8 (the firmware's escape sequences).
                while reader.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                    let line = clean(&String::from_utf8_lossy(&buf));
                    buf.clear();
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let stdin = child.stdin.take();
        Ok(Guest {
            child,
            stdin,
            lines,
            log: Vec::new(),
            echo: spec.echo,
            prefix: spec.prefix.clone(),
            interrupted,
            started: Instant::now(),
        })
    }

    /// The QEMU process's id (`ip netns exec` execs QEMU in place).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Seconds since QEMU started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Every console line so far.
    pub fn log(&self) -> &[String] {
        &self.log
    }

    /// Waits for a console line for which `wanted` is true and returns it; every line read on
    /// the way is kept (and echoed). Fails when the guest ends first, `timeout` passes, or the
    /// user interrupts.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        mut wanted: impl FnMut(&str) -> bool,
    ) -> Result<String, LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.interrupted.load(Ordering::Relaxed) {
                return Err(LabError::Config(
                    "interrupted (Ctrl-C): the guest, tap and namespace are removed".into(),
                ));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.timeout(what, timeout));
            }
            match self.lines.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => {
                    if self.echo {
                        println!("{}{line}", self.prefix);
                    }
                    self.log.push(line.clone());
                    if wanted(&line) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.try_wait().ok().flatten();
                    return Err(LabError::CommandFailed {
                        what: format!("waiting for {what} from the guest"),
                        command: "qemu-system-x86_64".into(),
                        status: status.map_or("its console closed".into(), |s| s.to_string()),
                        stderr: self
                            .log
                            .iter()
                            .rev()
                            .take(3)
                            .rev()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(" | "),
                    });
                }
            }
        }
    }

    fn timeout(&self, what: &str, timeout: Duration) -> LabError {
        LabError::Timeout {
            what: format!("waiting for {what} from the guest"),
            command: "qemu-system-x86_64".into(),
            timeout,
        }
    }

    /// Writes one line on the guest's console (its `/init` reads it).
    pub fn send_line(&mut self, line: &str) -> Result<(), LabError> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| LabError::Config("the guest console is closed".into()))?;
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|source| LabError::Io {
                what: "writing to the guest console".into(),
                source,
            })
    }

    /// Waits (at most `timeout`) for the guest to power off; kills it otherwise.
    pub fn finish(mut self, timeout: Duration) -> Result<(), LabError> {
        let _ = self.wait_for("KMX-DONE", timeout, |l| l.contains("KMX-DONE"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(50));
        }
        Err(self.timeout("power-off", timeout))
    }
}

/// A console line without its line end, carriage returns and terminal escape sequences.
fn clean(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI: ESC [ params final-byte
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for p in chars.by_ref() {
                        if ('@'..='~').contains(&p) {
                            break;
                        }
                    }
                }
            }
            '\r' | '\n' => {}
            c if c.is_control() && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn clean_strips_escapes_and_line_ends() {
        assert_eq!(clean("\u{1b}[?7l\u{1b}[2J\u{1b}[0mKMX-BOOT x\r\n"), "KMX-BOOT x");
    }
}
