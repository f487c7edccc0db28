//! The two learning examples (`examples/` in the workspace: `xsk-rxdrop`, `xsk-echo`) in a
//! namespace pair: `afxdp-lab demo --example rxdrop|echo`, and the harness of their tests.
//!
//! Like the responder, an example is a separate process the lab talks to through its
//! machine-readable lines and exit status only: `{"event":"ready",...}` once it is attached,
//! `{"event":"summary",...}` at exit (docs/learn/README.md describes both), exit status 0 when
//! every UMEM frame was accounted for.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::{
    Background, Capture, CaptureText, Family, Finished, LabConfig, LabError, NetnsPair, Nstat, PingSpec, Side,
    mac_string, ping,
};

/// One of the examples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Example {
    /// `xsk-rxdrop`: receives every frame of queue 0 over AF_XDP and drops it.
    Rxdrop,
    /// `xsk-echo`: answers pings on queue 0 over AF_XDP.
    Echo,
}

impl Example {
    /// The example's binary name.
    pub fn binary(self) -> &'static str {
        match self {
            Example::Rxdrop => "xsk-rxdrop",
            Example::Echo => "xsk-echo",
        }
    }
}

/// Where the example's binary is: in `$AFXDP_EXAMPLES` (a directory) if set, else beside this
/// program (the same cargo target directory), else on `PATH`.
pub fn example_exe(example: Example) -> Result<PathBuf, LabError> {
    let name = example.binary();
    if let Some(dir) = std::env::var_os("AFXDP_EXAMPLES") {
        return Ok(PathBuf::from(dir).join(name));
    }
    let me = std::env::current_exe().map_err(|source| LabError::Io {
        what: "finding our own binary".into(),
        source,
    })?;
    let beside = me.ancestors().skip(1).take(2).map(|dir| dir.join(name));
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name));
    beside.chain(on_path).find(|p| p.is_file()).ok_or_else(|| {
        LabError::Config(format!(
            "{name} not found beside {} nor on PATH: build the examples (cargo build -p afxdp-examples, \
             with --release for target/release) or set AFXDP_EXAMPLES to their directory",
            me.display()
        ))
    })
}

/// Gives the client permanent neighbour entries for the responder's addresses, so that it can
/// send while `xsk-rxdrop` takes every frame of the responder's queue (ARP and neighbour
/// discovery included) away from the kernel.
pub fn pin_client_neighbours(pair: &NetnsPair) -> Result<(), LabError> {
    let mac = mac_string(pair.mac(Side::Responder));
    for family in [Family::V4, Family::V6] {
        let addr = pair.addr(Side::Responder, family).to_string();
        let mut cmd = pair.command_in(Side::Client, "ip");
        cmd.args([
            "neigh",
            "replace",
            &addr,
            "lladdr",
            &mac,
            "dev",
            pair.client_if(),
            "nud",
            "permanent",
        ]);
        let out = cmd.output().map_err(|source| LabError::Io {
            what: "running ip neigh replace".into(),
            source,
        })?;
        if !out.status.success() {
            return Err(LabError::Config(format!(
                "ip neigh replace {addr} in the client namespace failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    Ok(())
}

/// An example running on the pair's responder interface.
#[derive(Debug)]
pub struct ExampleProcess {
    process: Background,
    ready: Value,
}

/// A JSON line of an example with `"event": event`.
fn event_line(line: &str, event: &str) -> Option<Value> {
    let value: Value = serde_json::from_str(line.trim()).ok()?;
    (value.get("event")?.as_str()? == event).then_some(value)
}

impl ExampleProcess {
    /// Starts `exe <responder_if> <args...>` in the responder namespace and waits (at most 20 s)
    /// for its `ready` line.
    pub fn start(pair: &NetnsPair, exe: &Path, args: &[&str]) -> Result<Self, LabError> {
        let mut cmd = pair.command_in(Side::Responder, &exe.to_string_lossy());
        cmd.arg(pair.responder_if()).args(args);
        let mut process = Background::spawn(cmd)?;
        let line = process.wait_for("the example's ready line", Duration::from_secs(20), |line| {
            event_line(line, "ready").is_some()
        })?;
        let ready = event_line(&line, "ready").unwrap_or_default();
        Ok(ExampleProcess { process, ready })
    }

    /// The `ready` line: `iface`, `queue`, `mode` (`copy` or `zero-copy`).
    pub fn ready(&self) -> &Value {
        &self.ready
    }

    /// Stops it with SIGINT (if `--count` has not stopped it already; killed after 10 s).
    pub fn stop(self) -> Result<ExampleExit, LabError> {
        let finished = self.process.stop(Duration::from_secs(10))?;
        let summary = finished.stdout.lines().rev().find_map(|l| event_line(l, "summary"));
        Ok(ExampleExit { finished, summary })
    }
}

/// What an example printed and how it ended.
#[derive(Debug, Clone)]
pub struct ExampleExit {
    /// Exit status, stdout, stderr.
    pub finished: Finished,
    /// The `summary` line, if it got that far.
    pub summary: Option<Value>,
}

impl ExampleExit {
    /// A number of the summary (`received`, `replied`, `dropped`, `frames`, `unaccounted`).
    pub fn number(&self, key: &str) -> Option<i64> {
        self.summary.as_ref()?.get(key)?.as_i64()
    }
}

/// What [`demo`] saw.
#[derive(Debug)]
pub struct ExampleDemo {
    /// Pings sent, and replies the client received.
    pub sent: u64,
    /// Replies `ping` counted.
    pub received: u64,
    /// The client's kernel counters over the run.
    pub client: Nstat,
    /// The responder namespace's kernel counters over the run (requests the kernel saw).
    pub responder: Nstat,
    /// tcpdump -vvv on the client.
    pub capture: CaptureText,
    /// The example's exit.
    pub exit: ExampleExit,
    /// What went wrong; empty when every check passed.
    pub problems: Vec<String>,
}

/// Runs `example` (binary `exe`) on a fresh one-queue pair, pings it `count` times per family and
/// payload size (0, 56, 1400 bytes) from the client, and checks the outcome on both sides:
/// `echo` must answer every ping with correct checksums (client `nstat`, `tcpdump -vvv`) while
/// the responder's kernel sees none; `rxdrop` must receive every ping while nothing answers.
pub fn demo(example: Example, exe: &Path, count: u32, verbose: bool) -> Result<ExampleDemo, LabError> {
    let pair = NetnsPair::create(&LabConfig {
        queues: 1,
        ..LabConfig::default()
    })?;
    let say = |text: String| {
        if verbose {
            println!("{text}");
        }
    };
    if example == Example::Rxdrop {
        pin_client_neighbours(&pair)?;
        say("   (the client got permanent neighbour entries: rxdrop takes ARP and ND away from the kernel)".into());
    }
    let (client_before, responder_before) = (Nstat::read(&pair, Side::Client)?, Nstat::read(&pair, Side::Responder)?);
    say(format!(
        "1. Starting {} {} in namespace {} ...",
        exe.display(),
        pair.responder_if(),
        pair.responder_ns()
    ));
    let process = ExampleProcess::start(&pair, exe, &[])?;
    say(format!("   ready: {}", process.ready()));
    let capture = Capture::start_icmp(&pair)?;
    say(format!(
        "2. Pinging {} and {} from the client, {count} per payload size 0, 56, 1400:",
        pair.ipv4(Side::Responder),
        pair.ipv6(Side::Responder)
    ));
    let (mut sent, mut received) = (0, 0);
    for family in [Family::V4, Family::V6] {
        for size in [0u16, 56, 1400] {
            let mut spec = PingSpec::new(family, count)
                .size(size)
                .interval(Duration::from_millis(50));
            if example == Example::Rxdrop {
                spec = spec.deadline(Duration::from_secs(1) + Duration::from_millis(50) * count);
            }
            let report = ping(&pair, &spec)?;
            say(format!(
                "   {family:?} {size:>4} bytes: {}/{} replies",
                report.received, report.transmitted
            ));
            sent += report.transmitted;
            received += report.received;
        }
    }
    let capture = capture.stop()?;
    let client = Nstat::read(&pair, Side::Client)?.since(&client_before);
    let responder = Nstat::read(&pair, Side::Responder)?.since(&responder_before);
    let exit = process.stop()?;
    say(format!(
        "3. Stopped it: {}",
        exit.summary.as_ref().map_or("no summary".into(), Value::to_string)
    ));

    let mut problems = Vec::new();
    let kernel_saw = responder.counter("IcmpInEchos")? + responder.counter("Icmp6InEchos")?;
    if kernel_saw != 0 {
        problems.push(format!("the responder's kernel saw {kernel_saw} echo requests"));
    }
    let csum_errors = client.counter("IcmpInCsumErrors")? + client.counter("Icmp6InCsumErrors")?;
    let client_replies = client.counter("IcmpInEchoReps")? + client.counter("Icmp6InEchoReplies")?;
    match example {
        Example::Echo => {
            if received != sent || client_replies != sent {
                problems.push(format!(
                    "{sent} pings: ping counted {received} replies, the client kernel {client_replies}"
                ));
            }
            if csum_errors != 0 || !capture.bad_checksum_packets().is_empty() {
                problems.push(format!("replies with a wrong checksum (nstat: {csum_errors})"));
            }
            if exit.number("replied") != Some(sent as i64) {
                problems.push(format!(
                    "the example says it replied {:?} times",
                    exit.number("replied")
                ));
            }
        }
        Example::Rxdrop => {
            if received != 0 || client_replies != 0 {
                problems.push(format!("{received} pings were answered while rxdrop ran"));
            }
            if exit.number("received").is_none_or(|n| n < sent as i64) {
                problems.push(format!(
                    "the example received {:?} frames for {sent} pings",
                    exit.number("received")
                ));
            }
        }
    }
    if exit.number("unaccounted") != Some(0) || !exit.finished.status.success() {
        problems.push(format!(
            "the example exited with {} and {:?} frames unaccounted: {}",
            exit.finished.status,
            exit.number("unaccounted"),
            exit.finished.stderr.trim()
        ));
    }
    Ok(ExampleDemo {
        sent,
        received,
        client,
        responder,
        capture,
        exit,
        problems,
    })
}
