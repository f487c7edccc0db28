//! Where the responder says what it does: `--output human` (the default, lines for people) or
//! `--output json` (one [`Event`] per line, the schema in the `responder-json` crate).
//!
//! The run loop builds each event once, as data; this module only renders it. So the two formats
//! cannot disagree, and a program that drives the responder (the lab, a supervisor) reads the
//! JSON lines instead of parsing the human ones.

use std::fmt::Write as _;
use std::io::Write;

use responder_json::{Event, KernelDrops, Notice, QueueStats, QueueSummary, Ready, Stats, Summary};

use crate::stats::human_rate;

/// The output format: `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// Lines for people.
    #[default]
    Human,
    /// One JSON object per line (see docs/json-output.md).
    Json,
}

/// The responder's standard output in the chosen format.
pub struct Output<'a> {
    format: OutputFormat,
    out: &'a mut dyn Write,
}

impl std::fmt::Debug for Output<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl<'a> Output<'a> {
    /// Renders to `out` in `format`.
    pub fn new(format: OutputFormat, out: &'a mut dyn Write) -> Self {
        Output { format, out }
    }

    /// Writes one event (a failed write, e.g. a closed pipe, is ignored: output never stops the
    /// data path).
    pub fn emit(&mut self, event: &Event) {
        let text = match self.format {
            OutputFormat::Json => serde_json::to_string(event).expect("events serialise"),
            OutputFormat::Human => human(event),
        };
        let _ = writeln!(self.out, "{text}");
        let _ = self.out.flush();
    }

    /// Says something worth knowing that is not a counter. With `--output json` it is a
    /// [`Notice`] event on stdout (`level` `notice`); otherwise a diagnostic on stderr through
    /// [`crate::logging`] (hidden by `-q`), so the human stdout keeps only the live lines and the
    /// totals.
    pub fn notice(&mut self, message: impl Into<String>) {
        self.say("notice", message.into());
    }

    /// A warning: as [`Output::notice`], with `level` `warning` (`<4>` under journald; hidden by
    /// `-qq`).
    pub fn warning(&mut self, message: impl Into<String>) {
        self.say("warning", message.into());
    }

    fn say(&mut self, level: &str, message: String) {
        match self.format {
            OutputFormat::Json => self.emit(&Event::Notice(Notice {
                message,
                level: level.to_string(),
            })),
            OutputFormat::Human if level == "warning" => tracing::warn!("{message}"),
            OutputFormat::Human => tracing::info!("{message}"),
        }
    }
}

/// The human rendering of an event (several lines for `ready` and `summary`).
pub fn human(event: &Event) -> String {
    match event {
        Event::Ready(r) => human_ready(r),
        Event::Stats(s) => human_stats(s),
        Event::Addresses(a) => format!(
            "addresses of {} changed: answering for {}",
            a.iface,
            if a.addresses.is_empty() {
                "none".to_string()
            } else {
                a.addresses.join(", ")
            }
        ),
        Event::Summary(s) => human_summary(s),
        Event::Notice(n) => n.message.clone(),
    }
}

fn human_ready(r: &Ready) -> String {
    let mut s = String::new();
    let addresses = r.addresses.join(", ");
    if r.engine == "afxdp" {
        let _ = writeln!(
            s,
            "afxdp-responder: {} (driver {}, XDP in {} mode) answering for {addresses}",
            r.iface, r.driver, r.xdp_mode
        );
        for q in &r.queues {
            let pin_note = if q.pinned {
                ""
            } else {
                " (pinning failed: running unpinned)"
            };
            let _ = write!(s, "  queue {}: cpu {}{pin_note}, {} mode", q.queue, q.cpu, q.mode);
            if let Some(why) = &q.zero_copy_refused {
                let _ = write!(s, " (zero-copy refused: {why})");
            }
            s.push('\n');
        }
        if r.capabilities == "none" {
            let _ = writeln!(
                s,
                "privileges: dropped all capabilities after set-up (every thread: effective, permitted, \
                 inheritable, ambient, bounding empty; no_new_privs set)"
            );
        } else {
            let _ = writeln!(s, "privileges: WARNING: {}", r.capabilities);
        }
    } else {
        let verb = if r.engine == "drop" {
            "dropping echo requests"
        } else {
            "answering"
        };
        let _ = writeln!(
            s,
            "afxdp-responder: {} (driver {}, XDP in {} mode, engine {}) {verb} for {addresses}",
            r.iface, r.driver, r.xdp_mode, r.engine
        );
    }
    if r.engine == "drop" {
        s.push_str("nothing is answered; Ctrl-C (SIGINT) or SIGTERM stops");
    } else {
        let _ = write!(
            s,
            "replies use TTL {} and hop limit {}; Ctrl-C (SIGINT) or SIGTERM stops",
            r.ttl, r.hop_limit
        );
    }
    s
}

fn human_stats(s: &Stats) -> String {
    let stamp = format!("[{:>7.1}s]", s.elapsed_s);
    if s.engine != "afxdp" {
        // An in-kernel engine: the program's counters are all there is.
        let p = &s.program;
        let mut line = format!(
            "{stamp} {}: {} {} ({}/s) passed {} ({}/s)",
            s.engine,
            handled_verb(&s.engine),
            p.handled,
            human_rate(s.handled_pps),
            p.passed,
            human_rate(s.passed_pps)
        );
        if s.engine == "xdp-tx" {
            let _ = write!(line, " bad-checksum {}", p.bad_checksum);
        }
        if let Some(policy) = policy_passes(&p.passed_by) {
            let _ = write!(line, " [{policy}]");
        }
        return line;
    }
    let mut lines: Vec<String> = s.queues.iter().map(|q| format!("{stamp} {}", queue_line(q))).collect();
    if let Some(policy) = policy_passes(&s.program.passed_by) {
        lines.push(format!("{stamp} host policy passed to the kernel: {policy}"));
    }
    if s.program.no_socket > 0 {
        lines.push(format!(
            "{stamp} no socket: {} requests arrived on queues without a worker (the kernel answered them)",
            s.program.no_socket
        ));
    }
    lines.join("\n")
}

/// `ignore-all 3, denied 1` (totals since start): owned requests host policy passed to the
/// kernel, by reason; `None` while there are none.
fn policy_passes(p: &responder_json::PassReasons) -> Option<String> {
    let parts: Vec<String> = [
        ("ignore-all", p.ignore_all),
        ("denied", p.denied),
        ("not-allowed", p.not_allowed),
        ("rate-limited", p.rate_limited),
    ]
    .iter()
    .filter(|(_, n)| *n > 0)
    .map(|(reason, n)| format!("{reason} {n}"))
    .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// What an engine does with an owned request: `redirected`, `replied` or `dropped`.
fn handled_verb(engine: &str) -> &'static str {
    match engine {
        "xdp-tx" => "replied",
        "drop" => "dropped",
        _ => "redirected",
    }
}
/// `q0: rx 2100 (1.0k/s) tx 2000 (950/s) dropped 0 [reasons] kernel-dropped …`
fn queue_line(q: &QueueStats) -> String {
    let mut line = format!(
        "q{}: rx {} ({}/s) tx {} ({}/s) dropped {}",
        q.queue,
        q.rx,
        human_rate(q.rx_pps),
        q.tx,
        human_rate(q.tx_pps),
        q.dropped
    );
    let reasons = drop_reasons(&q.drops);
    if !reasons.is_empty() {
        let _ = write!(line, " [{reasons}]");
    }
    let k = &q.kernel;
    if k.dropped > 0 {
        let _ = write!(
            line,
            " kernel-dropped {} [ring-full {}, fill-empty {}, other {}]",
            k.dropped,
            k.rx_ring_full,
            k.fill_ring_empty,
            k.other + k.rx_invalid
        );
    }
    line
}

fn drop_reasons(drops: &std::collections::BTreeMap<String, u64>) -> String {
    drops
        .iter()
        .map(|(reason, n)| format!("{reason} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn human_summary(s: &Summary) -> String {
    let mut out = format!("stopped: XDP program detached from {}\n", s.iface);
    for q in &s.queues {
        human_queue_summary(&mut out, q);
    }
    let p = &s.program;
    let verb = handled_verb(&s.engine);
    let _ = write!(
        out,
        "total: rx {} tx {} dropped {}; XDP program: {verb} {}, passed to the kernel {}, no socket {}",
        s.total.rx, s.total.tx, s.total.dropped, p.handled, p.passed, p.no_socket
    );
    if s.engine == "xdp-tx" {
        let _ = write!(out, ", bad checksum {}", p.bad_checksum);
    }
    if let Some(policy) = policy_passes(&p.passed_by) {
        let _ = write!(out, " (by host policy: {policy})");
    }
    let _ = write!(out, "; engine {}", s.engine);
    out
}

fn human_queue_summary(out: &mut String, q: &QueueSummary) {
    let reasons = drop_reasons(&q.drops);
    let _ = writeln!(
        out,
        "queue {} ({} mode): rx {} tx {} dropped {}{}",
        q.queue,
        q.mode,
        q.rx,
        q.tx,
        q.dropped,
        if reasons.is_empty() {
            String::new()
        } else {
            format!(" [{reasons}]")
        }
    );
    let f = &q.frames;
    let _ = write!(
        out,
        "queue {} frames: {} frames = {} fill + {} rx + {} tx + {} completion",
        q.queue, f.total, f.fill, f.rx, f.tx, f.completion
    );
    if f.in_driver > 0 {
        let _ = write!(out, " + {} held by the zero-copy driver as RX buffers", f.in_driver);
    }
    if f.accounted {
        out.push_str(": all accounted for\n");
    } else {
        let _ = writeln!(out, " + {} unaccounted", f.elsewhere);
    }
    let w = &q.waits;
    let _ = writeln!(
        out,
        "queue {} waits: {} sleeps in poll(), {} of {} spins caught traffic; {} TX kicks",
        q.queue, w.sleeps, w.spins_caught, w.spins, w.kicks
    );
    let k: &KernelDrops = &q.kernel;
    let _ = writeln!(
        out,
        "queue {} kernel drops: {} (ring-full {}, fill-empty {}, rx-invalid {}, tx-invalid {}, other {})",
        q.queue, k.dropped, k.rx_ring_full, k.fill_ring_empty, k.rx_invalid, k.tx_invalid, k.other
    );
}
