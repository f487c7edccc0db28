//! The real responder binary, run inside the lab's responder namespace with `--output json`.
//!
//! The lab talks to the responder only through its documented interface: the JSON events it
//! prints (the `responder-json` crate: `ready`, `stats`, `addresses`, `notice`, `summary`) and its
//! exit status. Readiness is the `ready` event; the totals are the `summary` event.

use std::path::{Path, PathBuf};
use std::time::Duration;

use responder_json::{Event, QueueSummary, Ready, Summary};

use super::{Background, Finished, LabError, NetnsPair, Side};

/// Where the `afxdp-responder` binary is: `$AFXDP_RESPONDER` if set, else the one beside this
/// program (the same cargo target directory, or the same `bin/` directory when installed), else
/// the first one on `PATH`.
pub fn responder_exe() -> Result<PathBuf, LabError> {
    if let Some(path) = std::env::var_os("AFXDP_RESPONDER") {
        return Ok(PathBuf::from(path));
    }
    let me = std::env::current_exe().map_err(|source| LabError::Io {
        what: "finding our own binary".into(),
        source,
    })?;
    // target/<profile>/afxdp-lab, or target/<profile>/deps/<test> for the integration tests.
    for dir in me.ancestors().skip(1).take(2) {
        let candidate = dir.join("afxdp-responder");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("afxdp-responder"))
        .find(|p| p.is_file());
    on_path.ok_or_else(|| {
        LabError::Config(format!(
            "afxdp-responder not found beside {} nor on PATH: build it (cargo build -p afxdp-responder) or set \
             AFXDP_RESPONDER to its path",
            me.display()
        ))
    })
}

/// A responder process running in the pair's responder namespace.
#[derive(Debug)]
pub struct ResponderProcess {
    process: Background,
    ready: Ready,
}

impl ResponderProcess {
    /// Starts `exe --iface <responder_if> --output json <args...>` in the responder namespace and
    /// waits (at most 20 s) for its `ready` event. Fails with its error message if it exits
    /// instead.
    pub fn start(pair: &NetnsPair, exe: &Path, args: &[&str]) -> Result<Self, LabError> {
        let mut cmd = pair.command_in(Side::Responder, &exe.to_string_lossy());
        cmd.arg("--iface")
            .arg(pair.responder_if())
            .args(["--output", "json"])
            .args(args);
        let mut process = Background::spawn(cmd)?;
        let line = process.wait_for("the responder's ready event", Duration::from_secs(20), |line| {
            matches!(Event::parse_line(line), Some(Event::Ready(_)))
        })?;
        let Some(Event::Ready(ready)) = Event::parse_line(&line) else {
            unreachable!("wait_for returned a ready event")
        };
        Ok(ResponderProcess { process, ready })
    }

    /// The `ready` event: interface, driver, XDP mode, mode per queue, TTL, capabilities.
    pub fn ready(&self) -> &Ready {
        &self.ready
    }

    /// The `notice` events printed so far.
    pub fn notices(&self) -> Vec<String> {
        events(self.process.stdout_so_far())
            .filter_map(|e| match e {
                Event::Notice(n) => Some(n.message),
                _ => None,
            })
            .collect()
    }

    /// Waits (at most `timeout`) for the next event for which `wanted` is true and returns it;
    /// events before it are kept for [`ResponderExit`]. Fails with the responder's error if it
    /// exits first. `what` names the wait in the error.
    pub fn wait_for_event(
        &mut self,
        what: &str,
        timeout: Duration,
        mut wanted: impl FnMut(&Event) -> bool,
    ) -> Result<Event, LabError> {
        let line = self.process.wait_for(what, timeout, |line| {
            Event::parse_line(line).is_some_and(|e| wanted(&e))
        })?;
        Ok(Event::parse_line(&line).expect("wait_for returned a line that parsed"))
    }

    /// Process id of the responder.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Stops it with SIGINT (killing it after 10 s) and reads its events.
    pub fn stop(self) -> Result<ResponderExit, LabError> {
        let finished = self.process.stop(Duration::from_secs(10))?;
        Ok(ResponderExit::new(finished))
    }
}

fn events(stdout: &str) -> impl Iterator<Item = Event> + '_ {
    stdout.lines().filter_map(Event::parse_line)
}

/// What the responder said and how it ended.
#[derive(Debug, Clone)]
pub struct ResponderExit {
    /// Exit status, stdout (the JSON lines) and stderr (an error, if any).
    pub finished: Finished,
    /// Every event, in order.
    pub events: Vec<Event>,
    /// The `summary` event, if it got that far.
    pub summary: Option<Summary>,
}

impl ResponderExit {
    /// Reads the events of a finished responder.
    pub fn new(finished: Finished) -> Self {
        let events: Vec<Event> = events(&finished.stdout).collect();
        let summary = events.iter().rev().find_map(|e| match e {
            Event::Summary(s) => Some(s.clone()),
            _ => None,
        });
        ResponderExit {
            finished,
            events,
            summary,
        }
    }

    /// The summary; panics with the output when there is none (for tests).
    #[track_caller]
    pub fn expect_summary(&self) -> &Summary {
        self.summary.as_ref().unwrap_or_else(|| {
            panic!(
                "the responder printed no summary (status {}):\n{}\n{}",
                self.finished.status, self.finished.stdout, self.finished.stderr
            )
        })
    }

    /// The per-queue totals (empty without a summary).
    pub fn queues(&self) -> &[QueueSummary] {
        self.summary.as_ref().map_or(&[], |s| &s.queues)
    }

    /// Sum of (rx, tx, dropped) over the queues.
    pub fn totals(&self) -> (u64, u64, u64) {
        self.summary
            .as_ref()
            .map_or((0, 0, 0), |s| (s.total.rx, s.total.tx, s.total.dropped))
    }

    /// The totals of one queue.
    pub fn queue(&self, queue: u32) -> Option<&QueueSummary> {
        self.queues().iter().find(|q| q.queue == queue)
    }

    /// Owned requests the XDP program redirected, replied to or dropped.
    pub fn handled(&self) -> Option<u64> {
        self.summary.as_ref().map(|s| s.program.handled)
    }

    /// The `addresses` events, in order.
    pub fn address_changes(&self) -> Vec<Vec<String>> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Addresses(a) => Some(a.addresses.clone()),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn reads_the_events_and_ignores_other_lines() {
        let stdout = r#"{"event":"notice","message":"hello"}
not json at all
{"event":"addresses","iface":"va","addresses":[]}
{"event":"summary","engine":"afxdp","iface":"va","duration_s":1.5,"queues":[{"queue":0,"mode":"copy","rx":5,"tx":4,"dropped":1,"drops":{"icmp-checksum":1},"kernel":{"dropped":7,"rx_ring_full":7,"fill_ring_empty":0,"rx_invalid":0,"other":0,"tx_invalid":0,"tx_ring_empty":0},"frames":{"total":4096,"fill":4096,"rx":0,"tx":0,"completion":0,"elsewhere":0,"accounted":true},"waits":{"sleeps":12,"spins":4,"spins_caught":3,"kicks":9,"tx_ring_full":0}}],"total":{"rx":5,"tx":4,"dropped":1},"program":{"handled":12,"passed":2,"no_socket":0,"bad_checksum":0}}
"#;
        let exit = ResponderExit::new(Finished {
            status: std::process::ExitStatus::from_raw(0),
            stdout: stdout.into(),
            stderr: String::new(),
        });
        assert_eq!(exit.events.len(), 3);
        assert_eq!(exit.totals(), (5, 4, 1));
        assert_eq!(exit.handled(), Some(12));
        let q0 = exit.queue(0).unwrap();
        assert!(q0.frames.accounted);
        assert_eq!(q0.drops.get("icmp-checksum"), Some(&1));
        assert_eq!(q0.kernel.dropped, 7);
        assert_eq!(q0.waits.spins_caught, 3);
        assert_eq!(exit.address_changes(), vec![Vec::<String>::new()]);
        assert!(exit.queue(1).is_none());
    }

    #[test]
    fn no_summary_means_no_totals() {
        let exit = ResponderExit::new(Finished {
            status: std::process::ExitStatus::from_raw(256),
            stdout: String::new(),
            stderr: "afxdp-responder: boom".into(),
        });
        assert!(exit.summary.is_none());
        assert_eq!(exit.totals(), (0, 0, 0));
    }
}
