//! Diagnostics on stderr: warnings, notices and the debug details of the set-up steps, through
//! [`tracing`], filtered by `RUST_LOG` (an [`EnvFilter`] directive such as `debug` or
//! `afxdp_responder=debug`) or, without it, by `-v` / `-q`.
//!
//! | flags | shown |
//! |---|---|
//! | `-qq` | errors |
//! | `-q` | errors and warnings |
//! | (none) | errors, warnings and notices (the default) |
//! | `-v` | and the set-up steps (`debug`) |
//! | `-vv` | everything (`trace`) |
//!
//! Lines read `afxdp-responder: warning: …` in a terminal. Under systemd (stderr is the journal
//! stream named by `$JOURNAL_STREAM`, see `systemd.exec(5)`) each line starts with the
//! sd-daemon priority prefix instead (`<3>` error, `<4>` warning, `<5>` notice, `<7>` debug), so
//! journald records the priority (`journalctl -p warning`); no extra crate is needed for that.
//!
//! Standard output is not touched: the live line, the totals and `--output json` stay there,
//! exactly as before.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The default filter for a verbosity (`-v` count minus `-q` count).
pub fn default_directive(verbosity: i16) -> &'static str {
    match verbosity {
        i16::MIN..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    }
}

/// Whether stderr is the journal stream systemd named in `$JOURNAL_STREAM` (`DEV:INODE` of the
/// stream; a redirected stderr no longer matches it).
pub fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    std::fs::metadata("/proc/self/fd/2").is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// The sd-daemon priority (`<N>` prefix) of a level: syslog's err 3, warning 4, notice 5, debug 7.
pub const fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 5,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// Installs the global subscriber: stderr, `RUST_LOG` if set (a bad directive falls back to the
/// `-v`/`-q` default with a warning), otherwise [`default_directive`]. Call once, first thing.
pub fn init(verbosity: i16) {
    let journal = stderr_is_journal();
    let (filter, bad) = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => match EnvFilter::try_new(&spec) {
            Ok(f) => (f, None),
            Err(e) => (
                EnvFilter::new(default_directive(verbosity)),
                Some(format!("{spec:?}: {e}")),
            ),
        },
        _ => (EnvFilter::new(default_directive(verbosity)), None),
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .event_format(LineFormat { journal })
        .try_init();
    if let Some(bad) = bad {
        tracing::warn!("RUST_LOG {bad}; using the default level (fix RUST_LOG, e.g. RUST_LOG=debug)");
    }
}

/// Prints a fatal error: `afxdp-responder: <message>` on one line of stderr (`<3>` first under
/// journald). Not filtered: an error is always said.
pub fn error_line(message: &str) {
    if stderr_is_journal() {
        eprintln!("<3>afxdp-responder: {message}");
    } else {
        eprintln!("afxdp-responder: {message}");
    }
}

/// One line per event: `afxdp-responder: warning: message key=value` or `<4>message key=value`.
#[derive(Debug, Clone, Copy)]
struct LineFormat {
    journal: bool,
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: format::Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = *event.metadata().level();
        if self.journal {
            write!(writer, "<{}>", priority(level))?;
        } else {
            writer.write_str("afxdp-responder: ")?;
            writer.write_str(match level {
                Level::ERROR => "error: ",
                Level::WARN => "warning: ",
                Level::INFO => "",
                Level::DEBUG => "debug: ",
                Level::TRACE => "trace: ",
            })?;
        }
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                write!(writer, "{}", span.name())?;
                if let Some(fields) = span.extensions().get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    write!(writer, "{{{fields}}}")?;
                }
                writer.write_str(": ")?;
            }
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_maps_to_levels() {
        assert_eq!(default_directive(-5), "error");
        assert_eq!(default_directive(-1), "warn");
        assert_eq!(default_directive(0), "info");
        assert_eq!(default_directive(1), "debug");
        assert_eq!(default_directive(3), "trace");
        assert_eq!(priority(Level::WARN), 4);
        assert_eq!(priority(Level::ERROR), 3);
    }
}
