//! The generator's own cost over a run: its process CPU time (`/proc/self/stat`, user + system of
//! all threads) and the softirq time of the CPUs its threads run on (`/proc/stat`). Both are
//! best effort: a field that cannot be read counts as 0 and the report says 0.

/// A reading of the counters.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Usage {
    /// Process user + system time, seconds.
    pub(super) process_s: f64,
    /// Softirq time of the chosen CPUs, seconds.
    pub(super) softirq_s: f64,
}

/// `/proc` times are in `USER_HZ` ticks, 100 per second on Linux.
const TICKS_PER_S: f64 = 100.0;

impl Usage {
    /// Reads the counters now, the softirq time summed over `cpus`.
    pub(super) fn read(cpus: &[usize]) -> Usage {
        let process = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|t| process_ticks(&t))
            .unwrap_or(0);
        let softirq = std::fs::read_to_string("/proc/stat")
            .map(|t| softirq_ticks(&t, cpus))
            .unwrap_or(0);
        Usage {
            process_s: process as f64 / TICKS_PER_S,
            softirq_s: softirq as f64 / TICKS_PER_S,
        }
    }

    /// What was used between `earlier` and this reading.
    pub(super) fn since(&self, earlier: &Usage) -> Usage {
        Usage {
            process_s: (self.process_s - earlier.process_s).max(0.0),
            softirq_s: (self.softirq_s - earlier.softirq_s).max(0.0),
        }
    }
}

/// `utime + stime` from a `/proc/<pid>/stat` line (fields 14 and 15; the command name in
/// parentheses may contain spaces, so count from the last `)`).
fn process_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, index 11 here.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// The softirq ticks (7th number of a `cpuN` line) of `cpus`, added up, from `/proc/stat`.
fn softirq_ticks(stat: &str, cpus: &[usize]) -> u64 {
    stat.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let cpu: usize = fields.next()?.strip_prefix("cpu")?.parse().ok()?;
            if !cpus.contains(&cpu) {
                return None;
            }
            fields.nth(6)?.parse::<u64>().ok()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let stat = "1234 (flood (x) y) R 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 3 0";
        assert_eq!(process_ticks(stat), Some(300));
        assert_eq!(process_ticks("garbage"), None);
        let proc_stat = "cpu  10 0 10 100 0 0 99 0 0 0\n\
                         cpu0 1 0 1 50 0 0 40 0 0 0\n\
                         cpu1 9 0 9 50 0 0 59 0 0 0\n\
                         intr 1 2 3\n";
        assert_eq!(softirq_ticks(proc_stat, &[1]), 59);
        assert_eq!(softirq_ticks(proc_stat, &[0, 1]), 99);
        assert_eq!(softirq_ticks(proc_stat, &[5]), 0);
    }

    #[test]
    fn reads_this_process() {
        // Burn a little CPU so that the reading cannot be all zero on a tick boundary... it still
        // can on a fast machine: only check that the readings are consistent.
        let a = Usage::read(&[0]);
        let b = Usage::read(&[0]);
        assert!(b.since(&a).process_s >= 0.0 && b.process_s >= a.process_s);
    }
}
