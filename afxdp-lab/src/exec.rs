//! Running the lab's command-line tools: find them, bound them in time, never leave one behind.
//!
//! Every command the lab starts goes through [`run`] (wait with a timeout, kill on expiry) or is held
//! in a [`ChildGuard`] (killed when dropped), so a hung tool can never hang the caller.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use super::LabError;

/// The tools the lab drives and the Debian/Ubuntu package of each, for the "not found" message.
const TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("ping", "iputils-ping"),
    ("tcpdump", "tcpdump"),
    ("ethtool", "ethtool"),
    ("taskset", "util-linux"),
    ("cat", "coreutils"),
    ("sh", "dash"),
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("apt-get", "apt"),
    ("dpkg-deb", "dpkg"),
    ("ldd", "libc-bin"),
    ("gzip", "gzip"),
    ("xz", "xz-utils"),
    ("zstd", "zstd"),
    ("curl", "curl"),
];

/// Directories searched besides `$PATH`: `sudo` and cron often drop the `sbin` ones, where `ip` lives.
const EXTRA_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// How long an ordinary configuration command (`ip`, `ethtool`, `cat`) may take.
pub(crate) const SHORT: Duration = Duration::from_secs(10);

/// Finds `name` on `$PATH` (or the usual system directories) and returns its absolute path.
pub(crate) fn tool(name: &'static str) -> Result<PathBuf, LabError> {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path_var).chain(EXTRA_DIRS.iter().map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(name);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    let package = TOOLS
        .iter()
        .find(|(tool, _)| *tool == name)
        .map_or("it", |(_, pkg)| pkg);
    Err(LabError::ToolMissing { tool: name, package })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Builds `ip netns exec NS PROGRAM` with a fixed locale, so tool output parses the same everywhere.
pub(crate) fn netns_exec(ip: &Path, ns: &str, program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(ip);
    cmd.args(["netns", "exec", ns]).arg(program).env("LC_ALL", "C");
    cmd
}

/// The command line of `cmd`, for error messages a person can copy and run.
pub(crate) fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|part| {
            let part = part.to_string_lossy();
            if part.is_empty() || part.contains(char::is_whitespace) {
                format!("'{part}'")
            } else {
                part.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A child process that is killed (and reaped) when dropped, so a panic never leaks it.
#[derive(Debug)]
pub(crate) struct ChildGuard(Child);

impl ChildGuard {
    /// Spawns `cmd`; the error names the command line.
    pub(crate) fn spawn(cmd: &mut Command) -> Result<Self, LabError> {
        cmd.spawn().map(ChildGuard).map_err(|source| LabError::Spawn {
            command: describe(cmd),
            source,
        })
    }
}

impl Deref for ChildGuard {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Reads a pipe to its end on its own thread (a full pipe would otherwise block the child).
pub(crate) fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Waits for `child` until `deadline`; `None` means it is still running.
pub(crate) fn wait_until(child: &mut Child, deadline: Instant) -> Result<Option<ExitStatus>, LabError> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(Some(status)),
            Ok(None) if Instant::now() >= deadline => return Ok(None),
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(source) => {
                return Err(LabError::Io {
                    what: "waiting for a child process".into(),
                    source,
                });
            }
        }
    }
}

/// Runs `cmd` to completion with no stdin, capturing its output; kills it after `timeout`.
///
/// A non-zero exit is not an error here (ping exits 1 when replies are missing); see [`run_ok`].
pub(crate) fn run(mut cmd: Command, what: &str, timeout: Duration) -> Result<Output, LabError> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = ChildGuard::spawn(&mut cmd)?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let Some(status) = wait_until(&mut child, Instant::now() + timeout)? else {
        // Dropping the guard kills the child; the reader threads end when the pipes close.
        return Err(LabError::Timeout {
            what: what.into(),
            command: describe(&cmd),
            timeout,
        });
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default().into_bytes(),
        stderr: stderr.join().unwrap_or_default().into_bytes(),
    })
}

/// Like [`run`], but a non-zero exit becomes [`LabError::CommandFailed`]; returns stdout.
pub(crate) fn run_ok(cmd: Command, what: &str) -> Result<String, LabError> {
    let command = describe(&cmd);
    let output = run(cmd, what, SHORT)?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    Err(LabError::CommandFailed {
        what: what.into(),
        command,
        status: output.status.to_string(),
        stderr: tail(&String::from_utf8_lossy(&output.stderr)),
    })
}

/// Which output stream of a [`Background`] process a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

/// A long-running process (a responder, tcpdump, a background ping): its output is collected as it
/// comes, [`Background::stop`] interrupts it, and dropping it kills it.
#[derive(Debug)]
pub struct Background {
    child: ChildGuard,
    command: String,
    lines: Receiver<(Stream, String)>,
    stdout: String,
    stderr: String,
}

/// What a [`Background`] process left behind when it ended.
#[derive(Debug, Clone)]
pub struct Finished {
    /// How it ended (exit code or signal).
    pub status: ExitStatus,
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Everything it printed on stderr.
    pub stderr: String,
}

impl Background {
    /// Starts `cmd` with no stdin and both outputs captured line by line.
    pub fn spawn(mut cmd: Command) -> Result<Self, LabError> {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = ChildGuard::spawn(&mut cmd)?;
        let (tx, lines) = mpsc::channel();
        forward_lines(child.stdout.take(), Stream::Stdout, tx.clone());
        forward_lines(child.stderr.take(), Stream::Stderr, tx);
        Ok(Background {
            child,
            command: describe(&cmd),
            lines,
            stdout: String::new(),
            stderr: String::new(),
        })
    }

    /// The process id (with `ip netns exec` it is the tool's own: `ip` execs it in place).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The command line it was started with.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Waits until the process prints a line containing `needle` (on stdout or stderr) and
    /// returns it; fails if the process exits first or `timeout` passes.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> Result<String, LabError> {
        self.wait_for(&format!("{needle:?} in the output"), timeout, |line| {
            line.contains(needle)
        })
    }

    /// Waits until the process prints a line (on stdout or stderr) for which `wanted` is true and
    /// returns it; fails if the process exits first or `timeout` passes. `what` names the wait in
    /// the error.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        mut wanted: impl FnMut(&str) -> bool,
    ) -> Result<String, LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((stream, line)) => {
                    self.keep(stream, &line);
                    if wanted(&line) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(LabError::Timeout {
                        what: format!("waiting for {what}"),
                        command: self.command.clone(),
                        timeout,
                    });
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = wait_until(&mut self.child, Instant::now() + Duration::from_secs(1))?;
                    return Err(LabError::CommandFailed {
                        what: format!("waiting for {what}"),
                        command: self.command.clone(),
                        status: status.map_or("(still running, outputs closed)".into(), |s| s.to_string()),
                        stderr: tail(&self.stderr),
                    });
                }
            }
        }
    }

    /// Everything read from its stdout so far (lines consumed by [`Background::wait_for_line`]).
    pub fn stdout_so_far(&self) -> &str {
        &self.stdout
    }

    /// Returns `true` while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGINT (a clean stop: tcpdump flushes, a responder detaches), waits up to `grace`, then
    /// kills; returns everything it printed.
    pub fn stop(mut self, grace: Duration) -> Result<Finished, LabError> {
        if self.is_running()
            && let Ok(pid) = i32::try_from(self.child.id())
        {
            // The child is ours and not yet reaped, so the pid cannot have been reused.
            let _ = signal::kill(Pid::from_raw(pid), Signal::SIGINT);
        }
        let status = match wait_until(&mut self.child, Instant::now() + grace)? {
            Some(status) => status,
            None => {
                let _ = self.child.kill();
                self.child.wait().map_err(|source| LabError::Io {
                    what: format!("reaping `{}`", self.command),
                    source,
                })?
            }
        };
        // Collect the last lines; a grandchild holding a pipe open must not hang us.
        let deadline = Instant::now() + Duration::from_secs(2);
        while let Ok((stream, line)) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.keep(stream, &line);
        }
        Ok(Finished {
            status,
            stdout: std::mem::take(&mut self.stdout),
            stderr: std::mem::take(&mut self.stderr),
        })
    }

    fn keep(&mut self, stream: Stream, line: &str) {
        let text = match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        };
        text.push_str(line);
        text.push('\n');
    }
}

/// Sends each line of `pipe` to `tx` from its own thread, until the pipe closes.
fn forward_lines(pipe: Option<impl Read + Send + 'static>, stream: Stream, tx: Sender<(Stream, String)>) {
    let Some(pipe) = pipe else { return };
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send((stream, line)).is_err() {
                break;
            }
        }
    });
}

/// The last few non-empty lines of a tool's stderr, on one line.
pub(crate) fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let start = lines.len().saturating_sub(4);
    let tail = lines[start..].join(" | ");
    if tail.is_empty() { "(no output)".into() } else { tail }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_quotes_arguments_with_spaces() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo hi", ""]);
        assert_eq!(describe(&cmd), "sh -c 'echo hi' ''");
    }

    #[test]
    fn run_kills_a_command_that_overstays() {
        let started = Instant::now();
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let err = run(cmd, "sleeping", Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, LabError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn run_ok_reports_stderr_of_a_failing_command() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo first >&2; echo 'it broke' >&2; exit 3"]);
        let err = run_ok(cmd, "breaking on purpose").unwrap_err().to_string();
        assert!(err.contains("breaking on purpose failed"), "{err}");
        assert!(err.contains("it broke"), "{err}");
        assert!(err.contains("exit status: 3"), "{err}");
    }

    #[test]
    fn a_missing_tool_names_its_package() {
        let err = tool("ethtool-that-does-not-exist").unwrap_err().to_string();
        assert!(err.starts_with("`ethtool-that-does-not-exist` not found"), "{err}");
        assert!(err.contains("./run.sh installs it"), "{err}");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\n\nb\nc\nd\ne\n"), "b | c | d | e");
        assert_eq!(tail("  \n"), "(no output)");
    }
}
