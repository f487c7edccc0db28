//! Where a long lab run is: a progress bar with the run being measured and an ETA when stderr is a
//! terminal (indicatif), plain lines otherwise (a log, CI, a pipe).
//!
//! Either way the per-run result lines go to stdout as before; the bar lives on stderr and is
//! redrawn above them, so a redirected stdout is the same with or without a terminal.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress of a run of `total` measurements.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar on a terminal, plain lines otherwise (also when `plain` is asked for, e.g. JSON
    /// output).
    pub fn new(total: u64, plain: bool) -> Self {
        let bar = (!plain && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {pos}/{len} ETA {eta}  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(500));
            bar
        });
        Progress { bar }
    }

    /// Whether a bar is drawn.
    pub fn is_bar(&self) -> bool {
        self.bar.is_some()
    }

    /// Says which run is being measured now (on the bar; nothing without one).
    pub fn running(&self, what: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(what.to_string());
        }
    }

    /// Prints a result line (above the bar, or as a plain line on stdout).
    pub fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| println!("{text}")),
            None => println!("{text}"),
        }
    }

    /// One measurement done (or skipped: `n` of them).
    pub fn done(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_when_asked_or_not_on_a_terminal() {
        assert!(!Progress::new(10, true).is_bar());
        // Under `cargo test` stderr is captured or a pipe, never a terminal here unless it is one.
        assert_eq!(Progress::new(10, false).is_bar(), std::io::stderr().is_terminal());
        let p = Progress::new(3, true);
        p.running("x");
        p.line("a result line");
        p.done(3);
        p.finish();
    }
}
