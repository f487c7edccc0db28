//! CPU accounting for the bench: a process's own CPU time from `/proc/<pid>/stat` (all its threads,
//! with a per-thread breakdown from `/proc/<pid>/task/*/stat`), and the machine's softirq and busy
//! time from `/proc/stat`.
//!
//! `/proc/stat` is host-wide: it counts every CPU's softirq time, including the softirq work done
//! for the load generator. The bench is meant to be the only load on the machine while it runs;
//! the report says so.

use std::path::Path;

use super::super::LabError;

/// Clock ticks per second of `/proc` CPU times (`USER_HZ`, 100 on every Linux architecture that
/// matters; `sysconf(_SC_CLK_TCK)` says so).
fn ticks_per_second() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|&t| t > 0)
        .map_or(100.0, |t| t as f64)
}

fn read(path: &Path) -> Result<String, LabError> {
    std::fs::read_to_string(path).map_err(|source| LabError::Io {
        what: format!("reading {}", path.display()),
        source,
    })
}

/// CPU seconds a process has used, user + system, over all its threads (live and exited).
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessCpu {
    /// `utime + stime` of the whole process, in seconds.
    pub total_s: f64,
    /// `(thread name, utime + stime in seconds)` for each live thread.
    pub threads: Vec<(String, f64)>,
}

impl ProcessCpu {
    /// Reads `/proc/<pid>/stat` and `/proc/<pid>/task/*/stat` now.
    pub fn read(pid: u32) -> Result<Self, LabError> {
        let hz = ticks_per_second();
        let dir = format!("/proc/{pid}");
        let (_, ticks) = parse_pid_stat(&read(Path::new(&format!("{dir}/stat")))?)?;
        let mut threads = Vec::new();
        if let Ok(entries) = std::fs::read_dir(format!("{dir}/task")) {
            for entry in entries.flatten() {
                // A thread may end between the listing and the read: skip it.
                if let Ok(text) = std::fs::read_to_string(entry.path().join("stat"))
                    && let Ok((name, t)) = parse_pid_stat(&text)
                {
                    threads.push((name, t as f64 / hz));
                }
            }
        }
        threads.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(ProcessCpu {
            total_s: ticks as f64 / hz,
            threads,
        })
    }

    /// CPU seconds used since `earlier` (a reading of the same process), per thread by name.
    pub fn since(&self, earlier: &ProcessCpu) -> ProcessCpu {
        let threads = self
            .threads
            .iter()
            .map(|(name, now)| {
                let before = earlier.threads.iter().find(|(n, _)| n == name).map_or(0.0, |(_, v)| *v);
                (name.clone(), (now - before).max(0.0))
            })
            .collect();
        ProcessCpu {
            total_s: (self.total_s - earlier.total_s).max(0.0),
            threads,
        }
    }
}

/// Nanoseconds on CPU of every live thread of `pid`, summed (first field of
/// `/proc/<pid>/task/*/schedstat`): far finer than the 10 ms ticks of `utime`/`stime`, for the idle
/// check. Threads that already ended are not included.
pub fn schedstat_ns(pid: u32) -> Result<u64, LabError> {
    let dir = format!("/proc/{pid}/task");
    let entries = std::fs::read_dir(&dir).map_err(|source| LabError::Io {
        what: format!("listing {dir}"),
        source,
    })?;
    let mut total = 0;
    for entry in entries.flatten() {
        if let Ok(text) = std::fs::read_to_string(entry.path().join("schedstat"))
            && let Some(ns) = text.split_whitespace().next().and_then(|v| v.parse::<u64>().ok())
        {
            total += ns;
        }
    }
    Ok(total)
}

/// `(comm, utime + stime)` in ticks from the text of `/proc/<pid>/stat` (or a task's).
///
/// The command name is in parentheses and may itself hold spaces and parentheses: everything up to
/// the last `)` is the name, and fields are counted from there (utime and stime are fields 14 and 15).
pub fn parse_pid_stat(text: &str) -> Result<(String, u64), LabError> {
    let bad = |detail: &str| LabError::Parse {
        what: "/proc/<pid>/stat",
        detail: format!("{detail} in {:?}", text.trim()),
    };
    let open = text.find('(').ok_or_else(|| bad("no command name"))?;
    let close = text.rfind(')').ok_or_else(|| bad("no command name"))?;
    let name = text.get(open + 1..close).unwrap_or_default().to_string();
    // After ")": field 3 (state) is the first word, so utime (14) and stime (15) are words 11 and 12.
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let num = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    match (num(11), num(12)) {
        (Some(utime), Some(stime)) => Ok((name, utime + stime)),
        _ => Err(bad("no utime/stime")),
    }
}

/// Host-wide CPU time from the `cpu` line of `/proc/stat`, in seconds summed over all CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HostCpu {
    /// Time spent serving softirqs (NAPI polls, XDP, the kernel's own ICMP replies, …).
    pub softirq_s: f64,
    /// Time not idle: user + nice + system + irq + softirq + steal.
    pub busy_s: f64,
    /// Wall-clock-equivalent time of all CPUs (busy + idle + iowait).
    pub total_s: f64,
}

impl HostCpu {
    /// Reads `/proc/stat` now.
    pub fn read() -> Result<Self, LabError> {
        Self::parse(&read(Path::new("/proc/stat"))?, ticks_per_second())
    }

    /// Parses the aggregate `cpu` line of `/proc/stat`.
    pub fn parse(text: &str, hz: f64) -> Result<Self, LabError> {
        let line = text
            .lines()
            .find(|l| l.starts_with("cpu "))
            .ok_or_else(|| LabError::Parse {
                what: "/proc/stat",
                detail: "no aggregate \"cpu\" line".into(),
            })?;
        let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
        if v.len() < 8 {
            return Err(LabError::Parse {
                what: "/proc/stat",
                detail: format!("too few fields in {line:?}"),
            });
        }
        // user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
        let (user, nice, system, idle, iowait, irq, softirq, steal) = (v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
        let busy = user + nice + system + irq + softirq + steal;
        Ok(HostCpu {
            softirq_s: softirq as f64 / hz,
            busy_s: busy as f64 / hz,
            total_s: (busy + idle + iowait) as f64 / hz,
        })
    }

    /// Growth since `earlier`.
    pub fn since(&self, earlier: &HostCpu) -> HostCpu {
        HostCpu {
            softirq_s: (self.softirq_s - earlier.softirq_s).max(0.0),
            busy_s: (self.busy_s - earlier.busy_s).max(0.0),
            total_s: (self.total_s - earlier.total_s).max(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_stat_with_odd_command_names() {
        let text = "4242 (afxdp (q0) x) S 1 4242 4242 0 -1 4194560 300 0 0 0 150 25 0 0 20 0 3 0 100 0 0\n";
        assert_eq!(parse_pid_stat(text).unwrap(), ("afxdp (q0) x".to_string(), 175));
        assert!(parse_pid_stat("4242 (x) S 1 2").is_err());
    }

    #[test]
    fn proc_stat_cpu_line() {
        let text = "cpu  100 5 50 1000 10 2 30 3 0 0\ncpu0 50 2 25 500 5 1 15 1 0 0\nintr 1 2 3\n";
        let cpu = HostCpu::parse(text, 100.0).unwrap();
        assert_eq!(cpu.softirq_s, 0.30);
        assert_eq!(cpu.busy_s, 1.90);
        assert_eq!(cpu.total_s, 12.0);
        let later = HostCpu::parse(
            &text.replace("cpu  100 5 50 1000 10 2 30", "cpu  100 5 50 1000 10 2 80"),
            100.0,
        )
        .unwrap();
        assert!((later.since(&cpu).softirq_s - 0.5).abs() < 1e-9);
    }

    #[test]
    fn this_process_has_cpu_time() {
        let me = ProcessCpu::read(std::process::id()).unwrap();
        assert!(me.total_s >= 0.0);
        assert!(!me.threads.is_empty());
        assert!(schedstat_ns(std::process::id()).unwrap() > 0);
    }
}
