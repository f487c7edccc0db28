//! One QEMU guest under pure emulation (`-accel tcg`), its serial console read line by line.
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

use crate::LabError;
use crate::exec::{ChildGuard, tool};

/// How the guest is started.
#[derive(Debug, Clone)]
pub struct GuestSpec<'a> {
    /// The kernel image.
    pub vmlinuz: &'a Path,
    /// The initramfs.
    pub initrd: &'a Path,
    /// `kmx.*` options for `/init` (appended to the kernel command line).
    pub options: String,
    /// Guest NIC: `(tap name, queues)`; `None` for no NIC.
    pub nic: Option<(String, u32)>,
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
        let qemu = tool("qemu-system-x86_64")?;
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new(tool("ip")?);
                c.args(["netns", "exec", ns]).arg(&qemu);
                c
            }
            None => Command::new(&qemu),
        };
        let smp = spec.nic.as_ref().map_or(1, |(_, q)| (*q).max(1));
        cmd.args(["-accel", "tcg", "-cpu", "max", "-smp", &smp.to_string(), "-m", "1G"])
            .args(["-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot"])
            .arg("-kernel")
            .arg(spec.vmlinuz)
            .arg("-initrd")
            .arg(spec.initrd)
            .arg("-append")
            .arg(format!("console=ttyS0 panic=-1 loglevel=4 {}", spec.options));
        match &spec.nic {
            Some((tap, queues)) => {
                // Zero-copy needs a modern-only device behind an IOMMU (else the bind fails
                // with EINVAL); several queues need mq=on and 2 vectors per queue pair + 2.
                let mut device = format!(
                    "virtio-net-pci,disable-legacy=on,iommu_platform=on,netdev=n0,mac={}",
                    spec.mac
                );
                let mut netdev = format!("tap,id=n0,ifname={tap},script=no,downscript=no");
                if *queues > 1 {
                    device.push_str(&format!(",mq=on,vectors={}", 2 * queues + 2));
                    netdev.push_str(&format!(",queues={queues}"));
                }
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
