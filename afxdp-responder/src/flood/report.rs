//! What a flood measured: each queue's counts and round-trip histogram, added up into one
//! [`FloodReport`] (the schema of `flood --json`, from `responder-json`), and the few lines
//! people read.

use std::fmt::Write as _;
use std::time::Instant;

use afxdp_xsk::BindMode;
use responder_json::{FloodReport, Latency};

use crate::stats::human_rate;

/// Latency histogram: 100 ns buckets up to 10 ms, then one overflow bucket.
const BUCKET_NS: u64 = 100;
const BUCKETS: usize = 100_000;

/// Round-trip times in fixed 100 ns buckets, and the slowest exactly.
#[derive(Debug, Clone)]
pub(super) struct Histogram {
    buckets: Vec<u64>,
    max_ns: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: vec![0; BUCKETS + 1],
            max_ns: 0,
        }
    }
}

impl Histogram {
    /// Counts one round trip.
    pub(super) fn record(&mut self, rtt_ns: u64) {
        self.max_ns = self.max_ns.max(rtt_ns);
        self.buckets[((rtt_ns / BUCKET_NS) as usize).min(BUCKETS)] += 1;
    }

    /// Adds another queue's histogram to this one.
    fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    /// The `q`-quantile in microseconds (bucket upper bound); 0 without samples.
    fn percentile(&self, q: f64) -> f64 {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return 0.0;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return ((i as u64 + 1) * BUCKET_NS) as f64 / 1000.0;
            }
        }
        (self.buckets.len() as u64 * BUCKET_NS) as f64 / 1000.0
    }

    fn latency(&self) -> Latency {
        Latency {
            p50: self.percentile(0.50),
            p99: self.percentile(0.99),
            p999: self.percentile(0.999),
            max: self.max_ns as f64 / 1000.0,
        }
    }
}

/// What one queue's thread counted.
#[derive(Debug)]
pub(super) struct QueueResult {
    pub(super) sent: u64,
    pub(super) sent_invalid: u64,
    pub(super) replies: u64,
    pub(super) correct: u64,
    pub(super) wrong: u64,
    pub(super) first_send: Option<Instant>,
    pub(super) last_send: Option<Instant>,
    pub(super) rtt: Histogram,
    pub(super) mode: BindMode,
    pub(super) kernel_dropped: u64,
}

impl QueueResult {
    pub(super) fn new(mode: BindMode) -> Self {
        QueueResult {
            sent: 0,
            sent_invalid: 0,
            replies: 0,
            correct: 0,
            wrong: 0,
            first_send: None,
            last_send: None,
            rtt: Histogram::default(),
            mode,
            kernel_dropped: 0,
        }
    }
}

/// Adds up the queues' results into the report of the whole flood.
pub(super) fn summarise(results: &[QueueResult]) -> FloodReport {
    let mut report = FloodReport::default();
    let mut rtt = Histogram::default();
    let (mut first, mut last) = (None::<Instant>, None::<Instant>);
    for r in results {
        report.sent += r.sent;
        report.sent_invalid += r.sent_invalid;
        report.replies += r.replies;
        report.correct += r.correct;
        report.wrong += r.wrong;
        report.kernel_dropped += r.kernel_dropped;
        report.mode = r.mode.to_string();
        rtt.merge(&r.rtt);
        first = first.into_iter().chain(r.first_send).min();
        last = last.into_iter().chain(r.last_send).max();
    }
    report.lost = (report.sent - report.sent_invalid).saturating_sub(report.correct);
    report.duration_s = match (first, last) {
        (Some(a), Some(b)) if b > a => (b - a).as_secs_f64(),
        _ => 0.0,
    };
    report.latency_us = rtt.latency();
    report.with_rates()
}

/// A few lines for people.
pub fn human(report: &FloodReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "sent {} ({}/s{}), replies {} ({}/s)",
        report.sent,
        human_rate(report.sent_per_s),
        if report.sent_invalid > 0 {
            format!(", {} with a bad checksum on purpose", report.sent_invalid)
        } else {
            String::new()
        },
        report.replies,
        human_rate(report.replies_per_s)
    );
    let _ = writeln!(
        s,
        "correct {} ({:.3} % of replies), wrong {}, lost {} ({:.3} % answered; {} dropped by this side's kernel)",
        report.correct, report.correct_pct, report.wrong, report.lost, report.answered_pct, report.kernel_dropped
    );
    let Latency { p50, p99, p999, max } = report.latency_us;
    let _ = write!(
        s,
        "round trip: p50 {p50:.1} µs, p99 {p99:.1} µs, p99.9 {p999:.1} µs, max {max:.1} µs"
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn percentiles() {
        let mut h = Histogram::default();
        for _ in 0..50 {
            h.record(950); // bucket 9: 1.0 µs
        }
        for _ in 0..49 {
            h.record(9_950); // 10 µs
        }
        h.record(99_950); // 100 µs
        assert_eq!(h.percentile(0.5), 1.0);
        assert_eq!(h.percentile(0.99), 10.0);
        assert_eq!(h.percentile(0.999), 100.0);
        assert_eq!(h.latency().max, 99.95);
        assert_eq!(Histogram::default().percentile(0.5), 0.0);
    }

    #[test]
    fn queues_add_up_and_the_json_has_the_schema() {
        let start = Instant::now();
        let queue = |sent, correct, offset_ms| {
            let mut r = QueueResult::new(BindMode::Copy);
            r.sent = sent;
            r.correct = correct;
            r.replies = correct;
            r.first_send = Some(start + Duration::from_millis(offset_ms));
            r.last_send = Some(start + Duration::from_millis(offset_ms + 1000));
            r.rtt.record(5_000);
            r
        };
        let report = summarise(&[queue(100, 100, 0), queue(100, 90, 1000)]);
        assert_eq!((report.sent, report.correct, report.lost), (200, 190, 10));
        assert_eq!(report.duration_s, 2.0);
        assert_eq!(report.sent_per_s, 100.0);
        assert_eq!(report.mode, "copy");
        assert_eq!(report.latency_us.p50, 5.1);
        let json = serde_json::to_string(&report).unwrap();
        assert!(json.starts_with("{\"sent\":200,\"sent_invalid\":0,"), "{json}");
        assert!(json.contains("\"latency_us\":{\"p50\":5.1,"), "{json}");
        assert!(human(&report).starts_with("sent 200 ("), "{}", human(&report));
    }
}
