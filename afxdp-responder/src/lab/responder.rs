//! The real responder binary, run inside the lab's responder namespace, and the totals it prints
//! when it stops (parsed back, so the demo and the tests can check them).

use std::path::Path;
use std::time::Duration;

use super::{Background, Finished, LabError, NetnsPair, Side};

/// The line the responder prints once every queue is being served.
pub const READY_MARKER: &str = "SIGTERM stops";

/// A responder process running in the pair's responder namespace.
#[derive(Debug)]
pub struct ResponderProcess {
    process: Background,
    startup: String,
}

impl ResponderProcess {
    /// Starts `exe --iface <responder_if> <args...>` in the responder namespace and waits (at most
    /// 20 s) until it serves every queue. Fails with its error message if it exits instead.
    pub fn start(pair: &NetnsPair, exe: &Path, args: &[&str]) -> Result<Self, LabError> {
        let mut cmd = pair.command_in(Side::Responder, &exe.to_string_lossy());
        cmd.arg("--iface").arg(pair.responder_if()).args(args);
        let mut process = Background::spawn(cmd)?;
        process.wait_for_line(READY_MARKER, Duration::from_secs(20))?;
        let startup = process.stdout_so_far().to_string();
        Ok(ResponderProcess { process, startup })
    }

    /// What it printed while starting (interface, XDP mode, mode per queue, TTL).
    pub fn startup_output(&self) -> &str {
        &self.startup
    }

    /// Process id of the responder.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Stops it with SIGINT (killing it after 10 s) and parses what it printed.
    pub fn stop(self) -> Result<ResponderExit, LabError> {
        let finished = self.process.stop(Duration::from_secs(10))?;
        Ok(ResponderExit::parse(finished))
    }
}

fn leading_number(s: &str) -> Option<u64> {
    s.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// Per-queue totals from the responder's exit report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueTotals {
    /// Queue id.
    pub queue: u32,
    /// Mode the socket was bound in (`copy` or `zero-copy`).
    pub mode: String,
    /// Frames received.
    pub rx: u64,
    /// Replies sent.
    pub tx: u64,
    /// Frames not answered.
    pub dropped: u64,
    /// Drops by reason (`icmp-checksum`, ...), as printed.
    pub drop_reasons: Vec<(String, u64)>,
    /// Frames the kernel dropped before the worker saw them (XDP_STATISTICS).
    pub kernel_dropped: u64,
    /// The frame census line (`4096 frames = ... : all accounted for`).
    pub frames: String,
    /// How the worker waited: sleeps in poll(), spins, spins that caught traffic, TX kicks.
    pub waits: WaitTotals,
}

/// The `queue N waits: S sleeps in poll(), C of P spins caught traffic; K TX kicks` line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WaitTotals {
    /// Times the worker waited in poll().
    pub sleeps: u64,
    /// Spins before a sleep.
    pub spins: u64,
    /// Spins that saw traffic in time.
    pub spins_caught: u64,
    /// Kernel wake-ups (TX sendto, busy-poll nudges).
    pub kicks: u64,
}

impl WaitTotals {
    fn parse(line: &str) -> Option<Self> {
        let numbers: Vec<u64> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter(|w| !w.is_empty())
            .filter_map(|w| w.parse().ok())
            .collect();
        match numbers[..] {
            [sleeps, spins_caught, spins, kicks] => Some(WaitTotals {
                sleeps,
                spins,
                spins_caught,
                kicks,
            }),
            _ => None,
        }
    }
}

impl QueueTotals {
    /// Whether the census says every frame was accounted for.
    pub fn frames_accounted(&self) -> bool {
        self.frames.ends_with("all accounted for")
    }
}

/// What the responder printed and how it ended.
#[derive(Debug, Clone)]
pub struct ResponderExit {
    /// Exit status, stdout and stderr.
    pub finished: Finished,
    /// Per-queue totals, in the order printed.
    pub queues: Vec<QueueTotals>,
    /// "redirected N" from the XDP program's counters, if printed.
    pub redirected: Option<u64>,
    /// The `total:` line, parsed (every engine prints one).
    pub total: Option<EngineTotals>,
}

/// The `total:` line of any engine:
/// `total: rx A tx B dropped C; XDP program: VERB H, passed to the kernel P, no socket S[, bad
/// checksum K]; engine E`, where VERB is `redirected` (afxdp), `replied` (xdp-tx) or `dropped`
/// (drop).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineTotals {
    /// Engine name (`afxdp`, `xdp-tx`, `drop`); `afxdp` when the line does not say.
    pub engine: String,
    /// Requests received (AF_XDP workers; for the in-kernel engines, what their program handled).
    pub rx: u64,
    /// Replies sent.
    pub tx: u64,
    /// Requests not answered.
    pub dropped: u64,
    /// What VERB says: the owned requests the XDP program redirected, replied to or dropped.
    pub handled: u64,
    /// Frames the XDP program passed to the kernel.
    pub passed: u64,
    /// Owned requests on a queue without a socket (afxdp).
    pub no_socket: u64,
    /// Requests dropped for a wrong checksum by the xdp-tx program.
    pub bad_checksum: u64,
}

impl EngineTotals {
    /// Parses a `total:` line; `None` if `line` is not one.
    pub fn parse(line: &str) -> Option<Self> {
        let rest = line.strip_prefix("total: ")?;
        let (workers, rest) = rest.split_once("; XDP program: ")?;
        let (program, engine) = match rest.split_once("; engine ") {
            Some((program, engine)) => (program, engine.trim().to_string()),
            None => (rest, "afxdp".to_string()),
        };
        let number = |text: &str, key: &str| -> Option<u64> {
            let (_, v) = text.split_once(key)?;
            v.trim_start().split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        };
        let handled = ["redirected ", "replied ", "dropped "]
            .iter()
            .find_map(|verb| program.strip_prefix(verb))
            .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|v| v.parse().ok())?;
        Some(EngineTotals {
            engine,
            rx: number(workers, "rx ")?,
            tx: number(workers, "tx ")?,
            dropped: number(workers, "dropped ")?,
            handled,
            passed: number(program, "passed to the kernel ")?,
            no_socket: number(program, "no socket ").unwrap_or(0),
            bad_checksum: number(program, "bad checksum ").unwrap_or(0),
        })
    }
}

impl ResponderExit {
    /// Parses the exit report (lines `queue N (MODE mode): rx A tx B dropped C` and
    /// `queue N frames: ...`).
    pub fn parse(finished: Finished) -> Self {
        let mut queues: Vec<QueueTotals> = Vec::new();
        let mut redirected = None;
        let mut total = None;
        for line in finished.stdout.lines() {
            if let Some(t) = EngineTotals::parse(line) {
                total = Some(t);
            }
            if let Some(rest) = line.strip_prefix("queue ") {
                let Some((q, rest)) = rest.split_once(' ') else {
                    continue;
                };
                let Ok(queue) = q.parse::<u32>() else { continue };
                if let Some(census) = rest.strip_prefix("frames: ") {
                    if let Some(t) = queues.iter_mut().find(|t| t.queue == queue) {
                        t.frames = census.to_string();
                    }
                } else if let Some(w) = rest.strip_prefix("waits: ") {
                    if let (Some(t), Some(w)) = (queues.iter_mut().find(|t| t.queue == queue), WaitTotals::parse(w)) {
                        t.waits = w;
                    }
                } else if let Some(k) = rest.strip_prefix("kernel drops: ") {
                    if let Some(t) = queues.iter_mut().find(|t| t.queue == queue) {
                        t.kernel_dropped = leading_number(k).unwrap_or(0);
                    }
                } else if let Some(rest) = rest.strip_prefix('(') {
                    let mode = rest.split(" mode").next().unwrap_or("").to_string();
                    let num = |key: &str| -> u64 {
                        let key = format!(" {key} ");
                        rest.split_once(&key)
                            .and_then(|(_, v)| v.split(|c: char| !c.is_ascii_digit()).next())
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0)
                    };
                    let drop_reasons = rest
                        .split_once('[')
                        .and_then(|(_, r)| r.split_once(']'))
                        .map(|(list, _)| {
                            list.split(", ")
                                .filter_map(|item| item.rsplit_once(' '))
                                .filter_map(|(name, n)| Some((name.to_string(), n.parse().ok()?)))
                                .collect()
                        })
                        .unwrap_or_default();
                    queues.push(QueueTotals {
                        queue,
                        mode,
                        rx: num("rx"),
                        tx: num("tx"),
                        dropped: num("dropped"),
                        drop_reasons,
                        kernel_dropped: 0,
                        frames: String::new(),
                        waits: WaitTotals::default(),
                    });
                }
            } else if let Some(rest) = line.split_once("redirected ").map(|(_, r)| r) {
                redirected = rest
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .and_then(|v| v.parse().ok());
            }
        }
        ResponderExit {
            finished,
            queues,
            redirected,
            total,
        }
    }

    /// Totals over all queues: (rx, tx, dropped).
    pub fn totals(&self) -> (u64, u64, u64) {
        self.queues
            .iter()
            .fold((0, 0, 0), |(r, t, d), q| (r + q.rx, t + q.tx, d + q.dropped))
    }

    /// The totals of one queue.
    pub fn queue(&self, queue: u32) -> Option<&QueueTotals> {
        self.queues.iter().find(|q| q.queue == queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn parses_the_exit_report() {
        let stdout = "\
afxdp-responder: va (driver veth, XDP in native mode) answering for 198.18.0.1
  queue 0: cpu 0, copy mode
replies use TTL 64 and hop limit 64; Ctrl-C (SIGINT) or SIGTERM stops
stopped: XDP program detached from va
queue 0 (copy mode): rx 5 tx 4 dropped 1 [icmp-checksum 1]
queue 0 frames: 4096 frames = 4096 fill + 0 rx + 0 tx + 0 completion: all accounted for
queue 0 waits: 12 sleeps in poll(), 3 of 4 spins caught traffic; 9 TX kicks
queue 0 kernel drops: 7 (ring-full 7, fill-empty 0, rx-invalid 0, tx-invalid 0, other 0)
queue 1 (copy mode): rx 3 tx 3 dropped 0
queue 1 frames: 4096 frames = 4095 fill + 0 rx + 0 tx + 0 completion + 1 unaccounted
total: rx 8 tx 7 dropped 1; XDP program: redirected 8, passed to the kernel 2, no socket 0
";
        let exit = ResponderExit::parse(Finished {
            status: std::process::ExitStatus::from_raw(0),
            stdout: stdout.into(),
            stderr: String::new(),
        });
        assert_eq!(exit.queues.len(), 2);
        let q0 = exit.queue(0).unwrap();
        assert_eq!((q0.mode.as_str(), q0.rx, q0.tx, q0.dropped), ("copy", 5, 4, 1));
        assert!(q0.frames_accounted());
        assert_eq!(q0.drop_reasons, vec![("icmp-checksum".to_string(), 1)]);
        assert_eq!(q0.kernel_dropped, 7);
        assert_eq!(
            q0.waits,
            WaitTotals {
                sleeps: 12,
                spins: 4,
                spins_caught: 3,
                kicks: 9
            }
        );
        assert_eq!(exit.queue(1).unwrap().waits, WaitTotals::default());
        assert!(exit.queue(1).unwrap().drop_reasons.is_empty());
        assert!(!exit.queue(1).unwrap().frames_accounted());
        assert_eq!(exit.totals(), (8, 7, 1));
        assert_eq!(exit.redirected, Some(8));
        let total = exit.total.unwrap();
        assert_eq!(
            (total.engine.as_str(), total.rx, total.tx, total.dropped),
            ("afxdp", 8, 7, 1)
        );
        assert_eq!((total.handled, total.passed, total.no_socket), (8, 2, 0));
    }

    #[test]
    fn parses_the_total_line_of_every_engine() {
        let tx = EngineTotals::parse(
            "total: rx 6 tx 5 dropped 1; XDP program: replied 5, passed to the kernel 2, no socket 0, \
             bad checksum 1; engine xdp-tx",
        )
        .unwrap();
        assert_eq!(
            tx,
            EngineTotals {
                engine: "xdp-tx".into(),
                rx: 6,
                tx: 5,
                dropped: 1,
                handled: 5,
                passed: 2,
                no_socket: 0,
                bad_checksum: 1,
            }
        );
        let drop = EngineTotals::parse(
            "total: rx 3 tx 0 dropped 3; XDP program: dropped 3, passed to the kernel 0, no socket 0; engine drop",
        )
        .unwrap();
        assert_eq!((drop.engine.as_str(), drop.handled, drop.dropped), ("drop", 3, 3));
        assert_eq!(EngineTotals::parse("queue 0 (copy mode): rx 1"), None);
    }
}
