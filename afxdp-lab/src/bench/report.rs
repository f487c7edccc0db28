//! The bench's results: per-run samples, per-row summaries, and their JSON and Markdown forms.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use responder_json::{FloodReport, Latency};
use serde::Serialize;

use super::generator::{self, Generator, Rate};
use super::{EngineMode, Plan};
use crate::{Family, LabError};

/// IP version of a workload, as written in the JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ip {
    /// IPv4 / ICMP.
    Ipv4,
    /// IPv6 / ICMPv6.
    Ipv6,
}

/// One workload: what the generator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Workload {
    /// IP version.
    pub ip: Ip,
    /// IP packet size in bytes.
    pub ip_size: u16,
    /// Request rate.
    pub rate: Rate,
    /// How the generator makes the requests.
    pub generator: Generator,
}

impl Workload {
    /// A workload of `family` echo requests of `ip_size` bytes at `rate`, from the AF_XDP TX
    /// generator (see [`Workload::with_generator`]).
    pub fn new(family: Family, ip_size: u16, rate: Rate) -> Self {
        let ip = match family {
            Family::V4 => Ip::Ipv4,
            Family::V6 => Ip::Ipv6,
        };
        Workload {
            ip,
            ip_size,
            rate,
            generator: Generator::Xsk,
        }
    }

    /// The same workload made by `generator`.
    pub fn with_generator(self, generator: Generator) -> Self {
        Workload { generator, ..self }
    }

    /// The lab's family value.
    pub fn family(&self) -> Family {
        match self.ip {
            Ip::Ipv4 => Family::V4,
            Ip::Ipv6 => Family::V6,
        }
    }

    /// "IPv4 64 B" (no rate).
    pub fn traffic_label(&self) -> String {
        let ip = match self.ip {
            Ip::Ipv4 => "IPv4",
            Ip::Ipv6 => "ICMPv6",
        };
        format!("{ip} {} B", self.ip_size)
    }

    /// "max" or "100 kpps".
    pub fn rate_label(&self) -> String {
        match self.rate {
            Rate::Max => "max rate".into(),
            Rate::Pps(pps) => format!("{} pps", si(pps as f64)),
        }
    }

    /// "IPv4 64 B, max rate, live gen".
    pub fn label(&self) -> String {
        format!(
            "{}, {}, {} gen",
            self.traffic_label(),
            self.rate_label(),
            self.generator.id()
        )
    }
}

/// One load run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// What the generator saw: the report of `afxdp-responder flood --json`, as it printed it.
    pub flood: FloodReport,
    /// Wall-clock seconds of the run as the bench saw it (generator start to end).
    pub wall_s: f64,
    /// CPU seconds of the responder process over the run (`None`: no responder process).
    pub responder_cpu_s: Option<f64>,
    /// CPU seconds per responder thread (by name) over the run.
    pub responder_threads: Vec<(String, f64)>,
    /// Host-wide softirq CPU seconds over the run (`/proc/stat`).
    pub softirq_cpu_s: f64,
    /// Host-wide busy CPU seconds over the run (`/proc/stat`), generator included.
    pub host_busy_cpu_s: f64,
}

impl Sample {
    fn per_mreply(&self, cpu_s: f64) -> Option<f64> {
        (self.flood.replies > 0).then(|| cpu_s / (self.flood.replies as f64 / 1e6))
    }
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// Median, minimum and maximum of a figure over the repetitions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// Median (mean of the two middle values for an even count).
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`, `None` when empty.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

/// The row's figures over its repetitions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Replies per second.
    pub replies_per_s: Spread,
    /// Requests per second the generator managed.
    pub sent_per_s: Spread,
    /// All replies over all requests, in percent.
    pub answered_pct: f64,
    /// All correct replies over all replies, in percent (100 with no replies).
    pub correct_pct: f64,
    /// Total wrong replies.
    pub wrong: u64,
    /// Responder process CPU seconds per million replies (`None`: no responder process).
    pub responder_cpu_s_per_mreply: Option<Spread>,
    /// Host-wide softirq CPU seconds per million replies.
    pub softirq_cpu_s_per_mreply: Option<Spread>,
    /// Host-wide busy CPU seconds per million replies (generator included).
    pub host_busy_cpu_s_per_mreply: Option<Spread>,
    /// Responder process CPU in percent of one core over the run.
    pub responder_cpu_pct_of_core: Option<Spread>,
    /// Latency: medians over the repetitions of p50/p99/p99.9, the maximum of the maxima; over
    /// the runs with correct replies (`None`: none had any).
    pub latency_us: Option<Latency>,
    /// The generator process's CPU (user + system, `flood`'s own report) in percent of one core
    /// over the time it was measured (`generator_wall_s`: sending and drain).
    pub generator_cpu_pct_of_core: Option<Spread>,
    /// Softirq time of the generator's CPUs (`flood`'s `generator_softirq_s`) in percent of one
    /// core over the same time: on veth the responder end's receive path runs there.
    pub generator_softirq_pct_of_core: Option<Spread>,
    /// What limited a max-rate row: see [`limit_of`] (`None` for fixed-rate rows).
    pub limit: Option<Limit>,
}

/// The wall time the generator's CPU figures cover: its own `generator_wall_s`, or for reports
/// without it the sending time.
fn generator_wall_s(flood: &FloodReport) -> Option<f64> {
    [flood.generator_wall_s, flood.duration_s]
        .into_iter()
        .find(|&w| w > 0.0)
}

/// What limited a max-rate row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// The engine (with its path: the veth ring, the responder's softirq) answered less than was
    /// offered: at least 1 % of the requests went unanswered.
    Engine,
    /// Everything offered was answered (at least 99 %): the engine might do more, the generator
    /// could not offer more.
    Generator,
}

impl Limit {
    /// `engine` or `generator`.
    pub fn id(self) -> &'static str {
        match self {
            Limit::Engine => "engine",
            Limit::Generator => "generator",
        }
    }
}

/// Answered share (replies over requests, percent) below which a max-rate row counts as limited by
/// the engine ([`Limit`]).
pub const ENGINE_LIMIT_ANSWERED_PCT: f64 = 99.0;

/// The rule of [`Limit`]: for a max-rate workload, `engine` when less than
/// [`ENGINE_LIMIT_ANSWERED_PCT`] of the requests were answered, else `generator`.
pub fn limit_of(rate: Rate, answered_pct: f64) -> Option<Limit> {
    match rate {
        Rate::Pps(_) => None,
        Rate::Max if answered_pct < ENGINE_LIMIT_ANSWERED_PCT => Some(Limit::Engine),
        Rate::Max => Some(Limit::Generator),
    }
}

/// Whether a row was measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RowStatus {
    /// Measured (see the samples and the summary).
    Ok,
    /// Not run, and why (zero-copy, which veth lacks; SKB mode with several veth queues).
    Skipped {
        /// Why.
        reason: String,
    },
    /// Tried and failed.
    Failed {
        /// What went wrong.
        error: String,
    },
}

/// One engine/mode on one workload with one queue count.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// veth queues (and responder queues served).
    pub queues: u32,
    /// Engine/mode id.
    pub engine: EngineMode,
    /// Engine/mode label.
    pub engine_label: &'static str,
    /// The workload (`None` for a row that skips the engine on every workload).
    pub workload: Option<Workload>,
    /// Measured, skipped or failed.
    #[serde(flatten)]
    pub status: RowStatus,
    /// Summary over the samples (when there are any).
    pub summary: Option<Summary>,
    /// Every run.
    pub samples: Vec<Sample>,
}

impl Row {
    /// An empty row that will be measured.
    pub fn new(queues: u32, engine: EngineMode, workload: Workload) -> Self {
        Row {
            queues,
            engine,
            engine_label: engine.label(),
            workload: Some(workload),
            status: RowStatus::Ok,
            summary: None,
            samples: Vec::new(),
        }
    }

    /// One row standing for every workload of an engine that cannot run.
    pub fn skipped(queues: u32, engine: EngineMode, reason: String) -> Self {
        Row {
            workload: None,
            status: RowStatus::Skipped { reason },
            ..Row::new(queues, engine, Workload::new(Family::V4, 64, Rate::Max))
        }
    }

    /// A row that failed before any run.
    pub fn failed(queues: u32, engine: EngineMode, workload: Workload, error: String) -> Self {
        Row {
            status: RowStatus::Failed { error },
            ..Row::new(queues, engine, workload)
        }
    }

    /// Computes [`Row::summary`] from the samples.
    pub fn summarize(&mut self) {
        let s = &self.samples;
        let Some(replies_per_s) = Spread::of(s.iter().map(|x| x.flood.replies_per_s)) else {
            self.summary = None;
            return;
        };
        let sum = |f: fn(&Sample) -> u64| s.iter().map(f).sum::<u64>();
        let (sent, replies, correct) = (
            sum(|x| x.flood.sent),
            sum(|x| x.flood.replies),
            sum(|x| x.flood.correct),
        );
        // A run without correct replies has no round trips to measure (flood then says 0).
        let timed: Vec<&Latency> = s
            .iter()
            .filter(|x| x.flood.correct > 0)
            .map(|x| &x.flood.latency_us)
            .collect();
        let lat = |f: fn(&Latency) -> f64| Spread::of(timed.iter().map(|l| f(l)));
        self.summary = Some(Summary {
            replies_per_s,
            sent_per_s: Spread::of(s.iter().map(|x| x.flood.sent_per_s)).unwrap_or(replies_per_s),
            answered_pct: pct(replies, sent),
            correct_pct: if replies == 0 { 100.0 } else { pct(correct, replies) },
            wrong: sum(|x| x.flood.wrong),
            responder_cpu_s_per_mreply: Spread::of(
                s.iter().filter_map(|x| x.responder_cpu_s.and_then(|c| x.per_mreply(c))),
            ),
            softirq_cpu_s_per_mreply: Spread::of(s.iter().filter_map(|x| x.per_mreply(x.softirq_cpu_s))),
            host_busy_cpu_s_per_mreply: Spread::of(s.iter().filter_map(|x| x.per_mreply(x.host_busy_cpu_s))),
            responder_cpu_pct_of_core: Spread::of(
                s.iter()
                    .filter_map(|x| x.responder_cpu_s.map(|c| 100.0 * c / x.flood.duration_s.max(1e-9))),
            ),
            latency_us: match (lat(|l| l.p50), lat(|l| l.p99), lat(|l| l.p999), lat(|l| l.max)) {
                (Some(p50), Some(p99), Some(p999), Some(max)) => Some(Latency {
                    p50: p50.median,
                    p99: p99.median,
                    p999: p999.median,
                    max: max.max,
                }),
                _ => None,
            },
            generator_cpu_pct_of_core: Spread::of(
                s.iter()
                    .filter_map(|x| generator_wall_s(&x.flood).map(|w| 100.0 * x.flood.generator_cpu_s / w)),
            ),
            generator_softirq_pct_of_core: Spread::of(
                s.iter()
                    .filter_map(|x| generator_wall_s(&x.flood).map(|w| 100.0 * x.flood.generator_softirq_s / w)),
            ),
            limit: self.workload.and_then(|w| limit_of(w.rate, pct(replies, sent))),
        });
    }
}

/// The responder's CPU with no traffic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdleCheck {
    /// Seconds measured.
    pub seconds: f64,
    /// CPU seconds used in that time (utime + stime, 10 ms ticks).
    pub cpu_s: f64,
    /// CPU seconds used in that time by the live threads, from schedstat (nanoseconds).
    pub schedstat_cpu_s: f64,
    /// In percent of one core.
    pub pct_of_core: f64,
    /// Under the 1 % bar.
    pub pass: bool,
    /// The responder's options.
    pub options: String,
}

/// Where and how the bench ran.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Machine {
    /// `uname -r`.
    pub kernel: String,
    /// First `model name` of /proc/cpuinfo.
    pub cpu_model: String,
    /// Online CPUs.
    pub cpus: usize,
    /// /proc/loadavg when the bench started (others' load disturbs host-wide figures).
    pub loadavg_start: String,
    /// /proc/loadavg when it ended.
    pub loadavg_end: String,
}

impl Machine {
    pub(crate) fn read() -> Self {
        let text = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = text("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".to_string(), |(_, v)| v.trim().to_string());
        let cpus = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
        Machine {
            kernel: text("/proc/sys/kernel/osrelease").trim().to_string(),
            cpu_model,
            cpus,
            loadavg_start: loadavg(),
            loadavg_end: String::new(),
        }
    }
}

pub(crate) fn loadavg() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// Everything one bench run produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    /// UTC start time, `YYYY-MM-DD HH:MM UTC`.
    pub date: String,
    /// The machine.
    pub machine: Machine,
    /// The plan that ran.
    pub plan: Plan,
    /// The fixed rate in requests per second.
    pub fixed_rate_pps: u64,
    /// The load generator (`flood`: `afxdp-responder flood`).
    pub generator: &'static str,
    /// The idle check, if it ran.
    pub idle: Option<IdleCheck>,
    /// Every row, in run order.
    pub rows: Vec<Row>,
    /// Remarks (how to read host-wide figures, interruptions, failed checks).
    pub notes: Vec<String>,
    /// Wall-clock seconds of the whole bench.
    pub elapsed_s: f64,
    /// The VM rows (`--vm`): zero-copy vs copy vs XDP_TX vs the kernel stack on an emulated NIC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vm: Option<crate::vm::VmBenchReport>,
}

impl BenchReport {
    /// An empty report for `plan`, dated now.
    pub fn new(plan: &Plan, fixed_rate_pps: u64) -> Self {
        let notes = vec![
            "softirq and host busy CPU come from /proc/stat and are host-wide (generator-side softirq included); \
             the bench assumes it is the only load on the machine"
                .to_string(),
            "the generator's own process CPU is not counted".to_string(),
        ];
        BenchReport {
            date: utc_now(),
            machine: Machine::read(),
            plan: plan.clone(),
            fixed_rate_pps,
            generator: generator::NAME,
            idle: None,
            rows: Vec::new(),
            notes,
            elapsed_s: 0.0,
            vm: None,
        }
    }

    /// Records the end.
    pub fn finish(&mut self, elapsed: Duration) {
        self.elapsed_s = elapsed.as_secs_f64();
        self.machine.loadavg_end = loadavg();
    }

    /// The JSON form.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// Writes `latest.json`, `latest.md` and `latest.svg` into `dir`; returns the paths.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, LabError> {
        let json = dir.join("latest.json");
        let md = dir.join("latest.md");
        let svg = dir.join("latest.svg");
        write_file(&json, &(self.json() + "\n"))?;
        write_file(&md, &self.markdown("latest.svg"))?;
        write_file(
            &svg,
            &super::plot::svg(self).map_err(|detail| LabError::Parse { what: "plot", detail })?,
        )?;
        let mut written = vec![json, md, svg];
        if let Some(vm) = &self.vm {
            let path = dir.join("latest-vm.svg");
            write_file(
                &path,
                &crate::vm::bench_output::svg(vm).map_err(|detail| LabError::Parse { what: "plot", detail })?,
            )?;
            written.push(path);
        }
        Ok(written)
    }

    /// The header lines: date, kernel, CPU, generator, idle check.
    pub fn markdown_header(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(out, "- date: {}", self.date);
        let _ = writeln!(out, "- kernel: {}", m.kernel);
        let _ = writeln!(out, "- CPU: {} ({} CPUs)", m.cpu_model, m.cpus);
        let _ = writeln!(
            out,
            "- load average at start / end: {} / {} (others' load disturbs the host-wide CPU figures)",
            m.loadavg_start, m.loadavg_end
        );
        let _ = writeln!(
            out,
            "- generator: {}; {} repetition(s) of {:.1} s per row; fixed rate {} requests/s",
            self.generator,
            self.plan.repetitions,
            self.plan.duration_s,
            si(self.fixed_rate_pps as f64)
        );
        match &self.idle {
            Some(idle) => {
                let _ = writeln!(
                    out,
                    "- idle CPU of the responder ({}, no traffic, {:.1} s): {:.3} % of a core: {}",
                    idle.options,
                    idle.seconds,
                    idle.pct_of_core,
                    if idle.pass {
                        "under the 1 % bar"
                    } else {
                        "**over the 1 % bar**"
                    }
                );
            }
            None => {
                let _ = writeln!(out, "- idle CPU check: not run");
            }
        }
        let _ = writeln!(out, "- whole bench: {:.0} s", self.elapsed_s);
        for note in &self.notes {
            let _ = writeln!(out, "- note: {note}");
        }
        out
    }

    /// The results table.
    pub fn markdown_table(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "| queues | engine / mode | workload | replies/s median (min–max) | answered | correct \
             | responder CPU s / M replies | softirq CPU s / M replies | latency µs p50 / p99 / p99.9 / max \
             | generator CPU % of a core (+ softirq of its CPUs) | limit |\n",
        );
        out.push_str("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n");
        for row in &self.rows {
            let workload = row.workload.map_or_else(|| "all".to_string(), |w| w.label());
            let head = format!("| {} | {} | {} ", row.queues, row.engine_label, workload);
            match (&row.status, &row.summary) {
                (RowStatus::Skipped { reason }, _) => {
                    let _ = writeln!(out, "{head}| {reason} | | | | | | | |");
                }
                (RowStatus::Failed { error }, None) => {
                    let _ = writeln!(out, "{head}| failed: {} | | | | | | | |", error.replace('|', "/"));
                }
                (status, Some(s)) => {
                    let failed = if let RowStatus::Failed { error } = status {
                        format!(" (then failed: {})", error.replace('|', "/"))
                    } else {
                        String::new()
                    };
                    let cpu = |c: &Option<Spread>| c.map_or_else(|| "–".to_string(), |c| format!("{:.2}", c.median));
                    let _ = writeln!(
                        out,
                        "{head}| {} ({}–{}){failed} | {} | {} | {} | {} | {} | {} | {} |",
                        si(s.replies_per_s.median),
                        si(s.replies_per_s.min),
                        si(s.replies_per_s.max),
                        pct_text(s.answered_pct),
                        pct_text(s.correct_pct),
                        cpu(&s.responder_cpu_s_per_mreply),
                        cpu(&s.softirq_cpu_s_per_mreply),
                        latency_text(s.latency_us.as_ref()),
                        match (s.generator_cpu_pct_of_core, s.generator_softirq_pct_of_core) {
                            (Some(c), Some(si)) => format!("{:.0} % (+ {:.0} %)", c.median, si.median),
                            (Some(c), None) => format!("{:.0} %", c.median),
                            _ => "–".to_string(),
                        },
                        s.limit.map_or("rate", Limit::id),
                    );
                }
                (RowStatus::Ok, None) => {
                    let _ = writeln!(out, "{head}| not measured | | | | | | | |");
                }
            }
        }
        out
    }

    /// `latest.md`: header, table, plot link.
    pub fn markdown(&self, svg_link: &str) -> String {
        let mut out = format!(
            "# afxdp-lab bench results\n\n{}\n{}\n![replies/s and CPU per million replies]({svg_link})\n",
            self.markdown_header(),
            self.markdown_table()
        );
        if let Some(vm) = &self.vm {
            let vm_svg = svg_link.replace(".svg", "-vm.svg");
            let _ = write!(
                out,
                "\n## VM rows: zero-copy vs copy vs XDP_TX vs the kernel stack on an emulated NIC\n\n{}\n![guest and QEMU CPU per reply]({vm_svg})\n",
                crate::vm::bench_output::markdown(vm)
            );
        }
        out
    }
}

fn write_file(path: &Path, text: &str) -> Result<(), LabError> {
    std::fs::write(path, text).map_err(|source| LabError::Io {
        what: format!("writing {}", path.display()),
        source,
    })
}

/// Replaces the text between `<!-- bench:begin -->` and `<!-- bench:end -->` in `doc` with the
/// report's header, table and plot (linked relative to the document).
pub fn update_doc(doc: &Path, report: &BenchReport, out_dir: &Path) -> Result<(), LabError> {
    const BEGIN: &str = "<!-- bench:begin -->";
    const END: &str = "<!-- bench:end -->";
    let text = std::fs::read_to_string(doc).map_err(|source| LabError::Io {
        what: format!("reading {}", doc.display()),
        source,
    })?;
    // Only markers alone on their line count: the document may quote them in its text.
    let line_at = |marker: &str| {
        let mut offset = 0;
        text.split_inclusive('\n').find_map(|line| {
            let here = offset;
            offset += line.len();
            (line.trim_end() == marker).then_some(here)
        })
    };
    let (Some(b), Some(e)) = (line_at(BEGIN), line_at(END)) else {
        return Err(LabError::Config(format!(
            "{} has no {BEGIN} … {END} section to replace",
            doc.display()
        )));
    };
    if e < b {
        return Err(LabError::Config(format!(
            "{}: {END} comes before {BEGIN}",
            doc.display()
        )));
    }
    let svg = relative_link(doc, &out_dir.join("latest.svg"));
    let section = format!(
        "{BEGIN}\n<!-- written by `afxdp-lab bench --update-doc`; edits here are overwritten -->\n\n{}\n{}\n\
         ![replies/s and CPU per million replies]({svg})\n\n",
        report.markdown_header(),
        report.markdown_table()
    );
    let new = format!("{}{section}{}", &text[..b], &text[e..]);
    write_file(doc, &new)
}

/// `target` relative to the directory of `doc` when both are relative paths under one root.
fn relative_link(doc: &Path, target: &Path) -> String {
    let base = doc.parent().unwrap_or(Path::new(""));
    match target.strip_prefix(base) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => target.display().to_string(),
    }
}

fn pct_text(v: f64) -> String {
    if (99.995..100.0).contains(&v) {
        "99.99 %".into()
    } else if v == 100.0 {
        "100 %".into()
    } else {
        format!("{v:.2} %")
    }
}

fn latency_text(l: Option<&Latency>) -> String {
    match l {
        Some(l) => format!("{:.0} / {:.0} / {:.0} / {:.0}", l.p50, l.p99, l.p999, l.max),
        None => "–".into(),
    }
}

/// 1234567 → "1.23 M", 100000 → "100 k", 999 → "999".
pub fn si(v: f64) -> String {
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if v >= 1e6 {
        format!("{} M", trim(format!("{:.2}", v / 1e6)))
    } else if v >= 1e3 {
        format!("{} k", trim(format!("{:.1}", v / 1e3)))
    } else {
        format!("{v:.0}")
    }
}

/// `YYYY-MM-DD HH:MM UTC` for now.
pub(crate) fn utc_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    utc_text(secs)
}

/// `YYYY-MM-DD HH:MM UTC` for `secs` since the epoch (Howard Hinnant's civil-from-days).
fn utc_text(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let (hh, mm) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(sent: u64, replies: u64, correct: u64, rps: f64, cpu: Option<f64>, softirq: f64) -> Sample {
        Sample {
            flood: FloodReport {
                sent,
                replies,
                correct,
                wrong: replies - correct,
                lost: sent - replies,
                duration_s: 1.0,
                sent_per_s: sent as f64,
                replies_per_s: rps,
                latency_us: Latency {
                    p50: 10.0,
                    p99: 20.0,
                    p999: 30.0,
                    max: rps / 1000.0,
                },
                ..FloodReport::default()
            },
            wall_s: 1.2,
            responder_cpu_s: cpu,
            responder_threads: vec![],
            softirq_cpu_s: softirq,
            host_busy_cpu_s: 2.0,
        }
    }

    #[test]
    fn spreads() {
        assert_eq!(
            Spread::of([3.0, 1.0, 2.0]).unwrap(),
            Spread {
                median: 2.0,
                min: 1.0,
                max: 3.0
            }
        );
        assert_eq!(Spread::of([4.0, 1.0]).unwrap().median, 2.5);
        assert_eq!(Spread::of([]), None);
        assert_eq!(Spread::of([f64::NAN]), None);
    }

    #[test]
    fn summaries_use_totals_and_medians() {
        let w = Workload::new(Family::V6, 64, Rate::Max);
        let mut row = Row::new(1, EngineMode::AfxdpCopyNative, w);
        row.samples = vec![
            sample(1_000_000, 1_000_000, 1_000_000, 1e6, Some(0.5), 0.2),
            sample(1_000_000, 500_000, 499_999, 5e5, Some(0.5), 0.2),
            sample(1_000_000, 1_000_000, 1_000_000, 9e5, Some(0.9), 0.3),
        ];
        row.summarize();
        let s = row.summary.as_ref().unwrap();
        assert_eq!(
            s.replies_per_s,
            Spread {
                median: 9e5,
                min: 5e5,
                max: 1e6
            }
        );
        assert!((s.answered_pct - 250.0 / 3.0).abs() < 1e-9);
        assert!(s.correct_pct < 100.0);
        assert_eq!(s.wrong, 1);
        // 0.5 s / 1 M, 0.5 s / 0.5 M = 1.0, 0.9 s / 1 M: median 0.9.
        assert!((s.responder_cpu_s_per_mreply.unwrap().median - 0.9).abs() < 1e-9);
        let latency = s.latency_us.unwrap();
        assert_eq!((latency.p50, latency.max), (10.0, 1000.0));
    }

    #[test]
    fn runs_without_correct_replies_have_no_latency() {
        let w = Workload::new(Family::V4, 64, Rate::Max);
        let mut row = Row::new(1, EngineMode::XdpTx, w);
        // flood says 0 µs when nothing came back: that is no measurement.
        let mut silent = sample(1000, 0, 0, 0.0, Some(0.1), 0.1);
        silent.flood.latency_us = Latency::default();
        row.samples = vec![silent.clone(), sample(1000, 1000, 1000, 1e6, Some(0.1), 0.1)];
        row.summarize();
        let latency = row.summary.as_ref().unwrap().latency_us.unwrap();
        assert_eq!((latency.p50, latency.max), (10.0, 1000.0));
        row.samples = vec![silent];
        row.summarize();
        assert_eq!(row.summary.as_ref().unwrap().latency_us, None);
        assert_eq!(latency_text(None), "–");
    }

    #[test]
    fn max_rate_rows_say_what_limited_them() {
        assert_eq!(limit_of(Rate::Pps(1000), 50.0), None, "a fixed rate limits itself");
        assert_eq!(limit_of(Rate::Max, 98.9), Some(Limit::Engine));
        assert_eq!(limit_of(Rate::Max, 99.0), Some(Limit::Generator));
        let mut row = Row::new(
            1,
            EngineMode::XdpTx,
            Workload::new(Family::V4, 64, Rate::Max).with_generator(Generator::Live),
        );
        let mut s = sample(1_000_000, 400_000, 400_000, 4e5, None, 0.1);
        s.flood.generator_cpu_s = 0.5;
        s.flood.generator_softirq_s = 0.25;
        row.samples.push(s);
        row.summarize();
        let summary = row.summary.as_ref().unwrap();
        assert_eq!(summary.limit, Some(Limit::Engine));
        assert_eq!(summary.generator_cpu_pct_of_core.unwrap().median, 50.0);
        let table = {
            let plan = Plan {
                queues: vec![1],
                engines: vec![EngineMode::XdpTx],
                workloads: vec![],
                duration_s: 1.0,
                repetitions: 1,
                idle_s: 0.0,
            };
            let mut report = BenchReport::new(&plan, 100_000);
            report.rows.push(row);
            report.markdown_table()
        };
        assert!(table.contains("IPv4 64 B, max rate, live gen"), "{table}");
        assert!(table.trim_end().ends_with("| 50 % (+ 25 %) | engine |"), "{table}");
    }

    #[test]
    fn table_has_a_line_per_row_and_says_why_rows_are_skipped() {
        let plan = Plan {
            queues: vec![1],
            engines: vec![EngineMode::Kernel],
            workloads: vec![],
            duration_s: 1.0,
            repetitions: 1,
            idle_s: 0.0,
        };
        let mut report = BenchReport::new(&plan, 100_000);
        let mut row = Row::new(
            1,
            EngineMode::Kernel,
            Workload::new(Family::V4, 1000, Rate::Pps(100_000)),
        );
        row.samples.push(sample(100_000, 100_000, 100_000, 1e5, None, 0.1));
        row.summarize();
        report.rows.push(row);
        report.rows.push(Row::skipped(
            1,
            EngineMode::AfxdpZeroCopy,
            "not supported by veth".into(),
        ));
        let table = report.markdown_table();
        assert_eq!(table.lines().count(), 4, "{table}");
        assert!(
            table.contains(
                "| 1 | kernel stack, no XDP | IPv4 1000 B, 100 k pps, xsk gen | 100 k (100 k–100 k) | 100 % | 100 % | – | 1.00 |"
            ),
            "{table}"
        );
        assert!(
            table.contains("| AF_XDP zero-copy | all | not supported by veth |"),
            "{table}"
        );
        let json: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
        assert_eq!(json["rows"][0]["status"], "ok");
        assert_eq!(json["rows"][0]["workload"]["ip"], "ipv4");
        assert_eq!(json["rows"][0]["workload"]["rate"]["pps"], 100_000);
        assert_eq!(json["rows"][1]["status"], "skipped");
        assert_eq!(json["generator"], "flood");
        assert_eq!(json["rows"][0]["samples"][0]["flood"]["replies"], 100_000);
        assert_eq!(json["rows"][0]["summary"]["latency_us"]["p99"], 20.0);
    }

    #[test]
    fn si_numbers() {
        assert_eq!(si(1_234_567.0), "1.23 M");
        assert_eq!(si(100_000.0), "100 k");
        assert_eq!(si(612_345.0), "612.3 k");
        assert_eq!(si(999.0), "999");
        assert_eq!(si(2_000_000.0), "2 M");
    }

    #[test]
    fn dates() {
        assert_eq!(utc_text(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_text(951_782_400 + 3660), "2000-02-29 01:01 UTC");
        assert_eq!(utc_text(1_767_225_600), "2026-01-01 00:00 UTC");
    }

    #[test]
    fn doc_section_is_replaced() {
        let dir = std::env::temp_dir().join(format!("afxr-doc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let doc = dir.join("benchmarks.md");
        std::fs::write(
            &doc,
            "# B\nsee `<!-- bench:begin -->` and `<!-- bench:end -->`\n<!-- bench:begin -->\nold\n<!-- bench:end -->\ntail\n",
        )
        .unwrap();
        let plan = Plan {
            queues: vec![1],
            engines: vec![],
            workloads: vec![],
            duration_s: 1.0,
            repetitions: 1,
            idle_s: 0.0,
        };
        let report = BenchReport::new(&plan, 1000);
        update_doc(&doc, &report, &dir.join("bench-results")).unwrap();
        let text = std::fs::read_to_string(&doc).unwrap();
        assert!(
            text.starts_with("# B\nsee `<!-- bench:begin -->` and `<!-- bench:end -->`\n<!-- bench:begin -->\n"),
            "{text}"
        );
        assert!(!text.contains("old"), "{text}");
        assert!(text.contains("](bench-results/latest.svg)"), "{text}");
        assert!(text.ends_with("<!-- bench:end -->\ntail\n"), "{text}");
        std::fs::write(&doc, "no markers").unwrap();
        assert!(update_doc(&doc, &report, &dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
