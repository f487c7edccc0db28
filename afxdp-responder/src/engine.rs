//! The three engines (`--engine`): three ways to handle the same echo requests, side by side.
//!
//! | engine | XDP program | what happens to an owned echo request | user space |
//! |---|---|---|---|
//! | [`Engine::AfXdp`] (default) | `redirect.c` | redirected to the AF_XDP socket of its queue, answered by a worker | one pinned worker per queue |
//! | [`Engine::XdpTx`] | `echo_tx.c` | answered in the kernel, in place, with `XDP_TX` | none (counters only) |
//! | [`Engine::Drop`] | `echo_drop.c` | dropped (`XDP_DROP`), not answered | none (counters only) |
//!
//! All three programs share one filter (`redirect-ebpf/echo_filter.h`), so they see exactly the
//! same requests: only what they do with a request differs. All three count in the same
//! per-CPU slots ([`crate::loader::EngineCounters`]), and [`crate::app`] runs all three with one
//! loop and reports them with the same events, so a bench can compare them on the same host.

use std::fmt;
use std::str::FromStr;

/// Which engine handles the echo requests: the `--engine` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Engine {
    /// AF_XDP: the XDP program redirects requests to user space, where pinned workers answer.
    #[default]
    AfXdp,
    /// In-kernel responder: the XDP program answers each request itself with `XDP_TX`.
    XdpTx,
    /// The XDP program drops each request (and counts it); nothing answers.
    Drop,
}

impl Engine {
    /// Every engine, in the order of the table above.
    pub const ALL: [Engine; 3] = [Engine::AfXdp, Engine::XdpTx, Engine::Drop];

    /// The name `--engine` takes and the reports print: `afxdp`, `xdp-tx` or `drop`.
    pub const fn name(self) -> &'static str {
        match self {
            Engine::AfXdp => "afxdp",
            Engine::XdpTx => "xdp-tx",
            Engine::Drop => "drop",
        }
    }

    /// Name of the engine's XDP function (also the program name `bpftool` and `ip link` show).
    pub const fn program_name(self) -> &'static str {
        match self {
            Engine::AfXdp => "redirect_echo",
            Engine::XdpTx => "tx_echo",
            Engine::Drop => "drop_echo",
        }
    }

    /// What the engine does with an owned request, as the reports say it: `redirected`,
    /// `replied` or `dropped`.
    pub const fn handled_verb(self) -> &'static str {
        match self {
            Engine::AfXdp => "redirected",
            Engine::XdpTx => "replied",
            Engine::Drop => "dropped",
        }
    }

    /// Whether the engine answers in user space (it has AF_XDP sockets and workers).
    pub const fn uses_afxdp(self) -> bool {
        matches!(self, Engine::AfXdp)
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An engine name that is not `afxdp`, `xdp-tx` or `drop`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown engine `{0}`: use afxdp, xdp-tx or drop")]
pub struct ParseEngineError(String);

impl FromStr for Engine {
    type Err = ParseEngineError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "afxdp" | "af-xdp" | "af_xdp" => Ok(Engine::AfXdp),
            "xdp-tx" | "xdp_tx" | "xdptx" => Ok(Engine::XdpTx),
            "drop" => Ok(Engine::Drop),
            _ => Err(ParseEngineError(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_names_round_trip() {
        for engine in Engine::ALL {
            assert_eq!(engine.name().parse::<Engine>(), Ok(engine));
            assert_eq!(engine.to_string(), engine.name());
        }
        assert_eq!("XDP-TX".parse::<Engine>(), Ok(Engine::XdpTx));
        assert_eq!(
            "kernel".parse::<Engine>().unwrap_err().to_string(),
            "unknown engine `kernel`: use afxdp, xdp-tx or drop"
        );
        assert_eq!(Engine::default(), Engine::AfXdp);
    }
}
