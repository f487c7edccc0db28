//! `afxdp-responder flood --json`: what one flood measured.

use serde::{Deserialize, Serialize};

/// The report of one flood run, printed as one line of JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FloodReport {
    /// Requests sent (valid and deliberately invalid).
    pub sent: u64,
    /// Requests sent with a deliberately wrong checksum (`--bad-checksum-every`).
    pub sent_invalid: u64,
    /// Frames received on the generator's sockets (replies, correct or not).
    pub replies: u64,
    /// Replies that passed every check, each counted once.
    pub correct: u64,
    /// Replies that failed a check (checksum, field, payload) or came twice.
    pub wrong: u64,
    /// Valid requests without a correct reply.
    pub lost: u64,
    /// Replies the generator's own kernel dropped before its sockets saw them (part of `lost`).
    pub kernel_dropped: u64,
    /// Seconds from the first request to the last.
    pub duration_s: f64,
    /// Requests per second.
    pub sent_per_s: f64,
    /// Correct replies per second.
    pub replies_per_s: f64,
    /// Valid requests that got a reply, in percent.
    pub answered_pct: f64,
    /// Replies that were correct, in percent.
    pub correct_pct: f64,
    /// AF_XDP mode of the generator's sockets: `zero-copy` or `copy`.
    pub mode: String,
    /// Round-trip times of correct replies.
    pub latency_us: Latency,
    /// Where the requests came from: `xsk` (AF_XDP TX rings, the default) or `live` (generated in
    /// the kernel with `BPF_PROG_RUN` live frames). Absent in reports of older versions: `xsk`.
    #[serde(default = "default_inject")]
    pub inject: String,
    /// CPU seconds the generator process used over the whole run (user + system time of all its
    /// threads, from `/proc/self/stat`): with `live`, the kernel's generation is system time.
    #[serde(default)]
    pub generator_cpu_s: f64,
    /// Softirq CPU seconds on the generator's CPUs over the run (`/proc/stat`): network work the
    /// kernel did there, for the generator or for whatever its transmissions woke up (on veth, the
    /// responder side's receive path often runs there too).
    #[serde(default)]
    pub generator_softirq_s: f64,
    /// Wall-clock seconds over which `generator_cpu_s` and `generator_softirq_s` were measured
    /// (sending and the 0.3 s drain; not the set-up): their denominator for a share of a core.
    #[serde(default)]
    pub generator_wall_s: f64,
}

fn default_inject() -> String {
    "xsk".into()
}

/// Round-trip percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Slowest.
    pub max: f64,
}

impl FloodReport {
    /// Fills the derived fields (`sent_per_s`, `replies_per_s`, `answered_pct`, `correct_pct`)
    /// from the counts and the duration.
    pub fn with_rates(mut self) -> Self {
        let per_s = |n: u64| {
            if self.duration_s > 0.0 {
                n as f64 / self.duration_s
            } else {
                0.0
            }
        };
        self.sent_per_s = per_s(self.sent);
        self.replies_per_s = per_s(self.correct);
        let valid = self.sent.saturating_sub(self.sent_invalid);
        self.answered_pct = if valid == 0 {
            100.0
        } else {
            100.0 * (self.correct + self.wrong).min(valid) as f64 / valid as f64
        };
        let all = self.correct + self.wrong;
        self.correct_pct = if all == 0 {
            100.0
        } else {
            100.0 * self.correct as f64 / all as f64
        };
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_round_trip() {
        let r = FloodReport {
            sent: 1000,
            sent_invalid: 100,
            correct: 850,
            wrong: 50,
            duration_s: 2.0,
            mode: "copy".into(),
            ..Default::default()
        }
        .with_rates();
        assert_eq!(r.sent_per_s, 500.0);
        assert_eq!(r.replies_per_s, 425.0);
        assert_eq!(r.answered_pct, 100.0);
        assert!((r.correct_pct - 94.444).abs() < 0.001);
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<FloodReport>(&line).unwrap(), r);
    }
}
