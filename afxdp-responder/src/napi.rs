//! The interface side of `--busy-poll`: `napi_defer_hard_irqs` and `gro_flush_timeout` in
//! `/sys/class/net/IF/`, set for the run and restored at exit.
//!
//! With preferred busy polling the application runs the queue's NAPI from its own system calls.
//! While it does, the device's interrupts must stay off, and when it stops polling (it sleeps in
//! `poll()`), something must still run the NAPI: `napi_defer_hard_irqs` keeps the interrupt masked
//! for that many empty NAPI passes, and `gro_flush_timeout` arms a timer that schedules the NAPI
//! instead (the kernel's Documentation/networking/napi.rst, "Preferred busy polling"). Both are
//! per-device settings, so [`NapiTuning`] remembers the values it found and writes them back when
//! it is dropped: at a normal exit, on an error return and after SIGINT/SIGTERM (the stop flag
//! leads to the same return path). A SIGKILL leaves the tuned values in place.
//!
//! Writing these files needs `CAP_NET_ADMIN` at the time of the write (the kernel checks it in
//! `netdev_store`), so with `--busy-poll` the main thread keeps that one capability (see
//! `crate::privileges::drop_after_setup`).

use std::fs;
use std::path::{Path, PathBuf};

/// Empty NAPI passes before the device's interrupt is re-armed (af_xdp.rst uses 2).
pub const DEFER_HARD_IRQS: u64 = 2;
/// Nanoseconds before the deferred-interrupt timer runs the NAPI (af_xdp.rst uses 200000).
pub const GRO_FLUSH_TIMEOUT_NS: u64 = 200_000;

/// The two files and their values.
const SETTINGS: [(&str, u64); 2] = [
    ("napi_defer_hard_irqs", DEFER_HARD_IRQS),
    ("gro_flush_timeout", GRO_FLUSH_TIMEOUT_NS),
];

/// The tuned values of one interface; restores the previous ones when dropped.
#[derive(Debug)]
pub struct NapiTuning {
    /// Each file written, with the value found before.
    saved: Vec<(PathBuf, String)>,
}

impl NapiTuning {
    /// Sets [`DEFER_HARD_IRQS`] and [`GRO_FLUSH_TIMEOUT_NS`] on `iface` (under `/sys/class/net`).
    /// Returns the guard of what was set and, when something could not be set, one line that
    /// says what and why (the run goes on: busy polling still works, less well).
    pub fn apply(iface: &str) -> (NapiTuning, Option<String>) {
        Self::apply_in(Path::new("/sys/class/net").join(iface))
    }

    /// [`NapiTuning::apply`] on the device directory `dir` (tests use a temporary one).
    pub fn apply_in(dir: PathBuf) -> (NapiTuning, Option<String>) {
        let mut saved = Vec::new();
        let mut problems = Vec::new();
        for (name, value) in SETTINGS {
            let path = dir.join(name);
            let old = match fs::read_to_string(&path) {
                Ok(old) => old.trim().to_string(),
                Err(e) => {
                    problems.push(format!("{name}: {e}"));
                    continue;
                }
            };
            match fs::write(&path, value.to_string()) {
                Ok(()) => saved.push((path, old)),
                Err(e) => problems.push(format!("{name} = {value}: {e}")),
            }
        }
        let warning = (!problems.is_empty()).then(|| {
            format!(
                "--busy-poll: could not tune {} ({}); busy polling runs without it",
                dir.display(),
                problems.join("; ")
            )
        });
        (NapiTuning { saved }, warning)
    }

    /// What was set, as `name=value` words, for the start-up line.
    pub fn describe(&self) -> String {
        SETTINGS
            .iter()
            .filter(|(name, _)| self.saved.iter().any(|(p, _)| p.ends_with(name)))
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Writes the saved values back (also done by `Drop`); returns the files that failed.
    pub fn restore(&mut self) -> Vec<String> {
        let mut failed = Vec::new();
        for (path, old) in self.saved.drain(..) {
            if let Err(e) = fs::write(&path, &old) {
                failed.push(format!("{} = {old}: {e}", path.display()));
            }
        }
        failed
    }
}

impl Drop for NapiTuning {
    fn drop(&mut self) {
        for line in self.restore() {
            crate::logging::error_line(&format!("--busy-poll: could not restore {line}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_set_and_restored_on_drop_and_missing_files_are_reported() {
        let dir = std::env::temp_dir().join(format!("afxdp-napi-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("napi_defer_hard_irqs"), "0\n").unwrap();
        let (tuning, warning) = NapiTuning::apply_in(dir.clone());
        // gro_flush_timeout is missing: reported, the other one still set.
        let warning = warning.expect("a missing file is reported");
        assert!(warning.contains("gro_flush_timeout"), "{warning}");
        assert_eq!(fs::read_to_string(dir.join("napi_defer_hard_irqs")).unwrap(), "2");
        assert_eq!(tuning.describe(), "napi_defer_hard_irqs=2");
        drop(tuning);
        assert_eq!(fs::read_to_string(dir.join("napi_defer_hard_irqs")).unwrap(), "0");
        fs::remove_dir_all(&dir).unwrap();
    }
}
