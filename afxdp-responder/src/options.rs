//! The vocabulary of the command line: every option that is a choice among names, as one
//! [`clap::ValueEnum`] each, and the one way their values are parsed and printed.
//!
//! | option | type | values | what is obtained (may differ from the request) |
//! |---|---|---|---|
//! | `--mode` | [`XskMode`] | `auto`, `zero-copy`, `copy` | [`afxdp_xsk::BindMode`] |
//! | `--xdp-mode` | [`XdpMode`] | `auto`, `native`, `skb` | [`crate::loader::AttachedMode`] |
//! | `--engine` | [`Engine`] | `afxdp`, `xdp-tx`, `drop` | (as requested) |
//! | `--wait` | [`WaitMode`] | `adaptive`, `sleep`, `spin` | [`crate::worker::Wait`] (with its spin window) |
//!
//! The requested types end in the user's words (`auto` is a request, never a result); the
//! obtained types live with the code that obtains them. This module depends on nothing else in
//! the crate, so the configuration, the loader and the engines can all use it without depending
//! on each other.
//!
//! Parsing is case-insensitive and accepts a few hidden aliases (`zc`, `af_xdp`, …). A wrong
//! value is refused with one line that names the choices:
//!
//! ```
//! use afxdp_responder::options::{self, XskMode};
//!
//! assert_eq!(options::parse::<XskMode>("zero-copy"), Ok(XskMode::ZeroCopy));
//! assert_eq!(XskMode::ZeroCopy.to_string(), "zero-copy");
//! let err = options::parse::<XskMode>("turbo").unwrap_err();
//! assert_eq!(err.to_string(), "unknown value `turbo`: use auto, zero-copy or copy");
//! ```
//!
//! With clap, `#[arg(value_parser = options::parser::<XskMode>())]` lists the values in
//! `--help` and gives the same one-line message.

use std::fmt;
use std::marker::PhantomData;

use clap::ValueEnum;
use clap::builder::{PossibleValue, TypedValueParser};
use clap::error::ErrorKind;

/// `--mode`: the AF_XDP bind mode asked for. The mode obtained is [`afxdp_xsk::BindMode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, ValueEnum)]
pub enum XskMode {
    /// Zero-copy when the driver supports it, copy otherwise (the mode obtained is printed).
    #[default]
    Auto,
    /// Zero-copy or fail.
    #[value(alias = "zerocopy", alias = "zc")]
    ZeroCopy,
    /// Copy mode (works on every driver).
    Copy,
}

/// `--xdp-mode`: how to attach an XDP program. The mode obtained is
/// [`crate::loader::AttachedMode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, ValueEnum)]
pub enum XdpMode {
    /// Native if the driver accepts it, otherwise generic (SKB); the loader reports which.
    #[default]
    Auto,
    /// Native (driver) XDP: runs in the driver before an skb exists. Needed for zero-copy.
    Native,
    /// Generic XDP: runs in the kernel's receive path after the skb is built. Works on every
    /// interface, slower, copy mode only.
    Skb,
}

/// `--engine`: which engine handles the echo requests (see [`crate::engine`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, ValueEnum)]
pub enum Engine {
    /// AF_XDP: the XDP program redirects requests to user space, where pinned workers answer.
    #[default]
    #[value(name = "afxdp", alias = "af-xdp", alias = "af_xdp")]
    AfXdp,
    /// In-kernel responder: the XDP program answers each request itself with `XDP_TX`.
    #[value(alias = "xdp_tx", alias = "xdptx")]
    XdpTx,
    /// The XDP program drops each request (and counts it); nothing answers.
    Drop,
}

impl Engine {
    /// Every engine, in the order of the table in [`crate::engine`].
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

/// `--wait`: how a worker waits when its RX ring is empty. With the spin window it becomes the
/// worker's [`crate::worker::Wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, ValueEnum)]
pub enum WaitMode {
    /// Spin up to the spin window while packets keep arriving within it, otherwise sleep in
    /// poll(); idle costs nothing.
    Adaptive,
    /// Always sleep in poll(): the least CPU per reply (the default).
    #[default]
    Sleep,
    /// Never sleep: spin on the rings in user space (one busy core per queue, even without
    /// traffic).
    Spin,
    /// The old name of `spin` (until 0.1): refused with a line that says what to use.
    #[value(hide = true)]
    Busy,
}

impl WaitMode {
    /// Why a value that parses is still refused: `busy` was renamed when `--busy-poll` became the
    /// kernel's busy polling.
    pub fn refused(self) -> Option<&'static str> {
        match self {
            WaitMode::Busy => Some(
                "--wait busy was renamed: use --wait spin (spin on the rings in user space, as before) \
                 or --busy-poll (the kernel's preferred busy polling)",
            ),
            _ => None,
        }
    }
}

/// The name of `value` as the command line spells it.
fn name_of<T: ValueEnum>(value: &T) -> String {
    value
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_owned())
}

/// The visible names of `T`'s values: `auto, zero-copy, copy`.
fn names<T: ValueEnum>() -> Vec<String> {
    T::value_variants()
        .iter()
        .filter_map(ValueEnum::to_possible_value)
        .filter(|v| !v.is_hide_set())
        .map(|v| v.get_name().to_owned())
        .collect()
}

/// `use auto, zero-copy or copy`.
fn use_one_of<T: ValueEnum>() -> String {
    let names = names::<T>();
    match names.split_last() {
        Some((last, [])) => format!("use {last}"),
        Some((last, rest)) => format!("use {} or {last}", rest.join(", ")),
        None => "no value is valid".to_owned(),
    }
}

macro_rules! display_by_name {
    ($($ty:ty),*) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&name_of(self))
            }
        }
    )*};
}
display_by_name!(XskMode, XdpMode, Engine, WaitMode);

/// A value that is none of an option's names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value `{value}`: {choices}")]
pub struct UnknownValue {
    /// What was given.
    pub value: String,
    /// `use a, b or c`.
    pub choices: String,
}

/// Parses an option value by name (case-insensitive, aliases accepted): the parsing of every
/// option enum, for code that is not clap.
pub fn parse<T: ValueEnum>(text: &str) -> Result<T, UnknownValue> {
    T::from_str(text, true).map_err(|_| UnknownValue {
        value: text.to_owned(),
        choices: use_one_of::<T>(),
    })
}

/// The clap value parser of an option enum: case-insensitive, aliases accepted, the values
/// listed in `--help`, and a one-line error that says what to type:
/// `invalid value 'turbo' for '--mode <MODE>': use auto, zero-copy or copy [possible values: auto, zero-copy, copy]`.
pub fn parser<T: ValueEnum + Clone + Send + Sync + 'static>() -> OptionParser<T> {
    OptionParser(PhantomData)
}

/// See [`parser`].
#[derive(Debug)]
pub struct OptionParser<T>(PhantomData<fn() -> T>);

impl<T> Clone for OptionParser<T> {
    fn clone(&self) -> Self {
        OptionParser(PhantomData)
    }
}

impl<T: ValueEnum + Clone + Send + Sync + 'static> TypedValueParser for OptionParser<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let text = value.to_string_lossy();
        parse::<T>(&text).map_err(|e| {
            let arg = arg.map_or_else(|| "...".to_owned(), ToString::to_string);
            let message = format!(
                "invalid value '{text}' for '{arg}': {} [possible values: {}]",
                e.choices,
                names::<T>().join(", ")
            );
            clap::Error::raw(ErrorKind::InvalidValue, message).with_cmd(cmd)
        })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            T::value_variants().iter().filter_map(ValueEnum::to_possible_value),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T: ValueEnum + fmt::Display + PartialEq + fmt::Debug>() {
        for value in T::value_variants() {
            assert_eq!(parse::<T>(&value.to_string()).as_ref(), Ok(value));
            assert_eq!(parse::<T>(&value.to_string().to_uppercase()).as_ref(), Ok(value));
        }
    }

    #[test]
    fn names_round_trip_through_text() {
        round_trips::<XskMode>();
        round_trips::<XdpMode>();
        round_trips::<Engine>();
        round_trips::<WaitMode>();
        for engine in Engine::ALL {
            assert_eq!(engine.to_string(), engine.name());
        }
    }

    #[test]
    fn spellings_stay_what_the_cli_always_took() {
        assert_eq!(names::<XskMode>(), ["auto", "zero-copy", "copy"]);
        assert_eq!(names::<XdpMode>(), ["auto", "native", "skb"]);
        assert_eq!(names::<Engine>(), ["afxdp", "xdp-tx", "drop"]);
        assert_eq!(names::<WaitMode>(), ["adaptive", "sleep", "spin"]);
        assert_eq!(parse::<XskMode>("zc"), Ok(XskMode::ZeroCopy));
        assert_eq!(parse::<XskMode>("zerocopy"), Ok(XskMode::ZeroCopy));
        assert_eq!(parse::<Engine>("af_xdp"), Ok(Engine::AfXdp));
        assert_eq!(parse::<Engine>("XDP-TX"), Ok(Engine::XdpTx));
        assert_eq!(parse::<XdpMode>("SKB"), Ok(XdpMode::Skb));
    }

    #[test]
    fn the_old_busy_wait_parses_but_is_refused_with_what_to_use() {
        // `busy` still parses (a config file or script written before the rename), so that the
        // refusal can say what to use instead of listing the values.
        assert_eq!(parse::<WaitMode>("busy"), Ok(WaitMode::Busy));
        let why = WaitMode::Busy.refused().unwrap();
        assert!(why.contains("--wait spin") && why.contains("--busy-poll"), "{why}");
        for ok in [WaitMode::Sleep, WaitMode::Adaptive, WaitMode::Spin] {
            assert_eq!(ok.refused(), None);
        }
        assert_eq!(WaitMode::default(), WaitMode::Sleep);
    }

    #[test]
    fn wrong_values_say_what_to_type() {
        assert_eq!(
            parse::<Engine>("kernel").unwrap_err().to_string(),
            "unknown value `kernel`: use afxdp, xdp-tx or drop"
        );
        assert_eq!(
            parse::<XdpMode>("drv").unwrap_err().to_string(),
            "unknown value `drv`: use auto, native or skb"
        );
        let mut cmd = clap::Command::new("t").arg(clap::Arg::new("mode").long("mode").value_name("MODE"));
        cmd.build();
        let arg = cmd.get_arguments().next().unwrap();
        let err = parser::<XskMode>()
            .parse_ref(&cmd, Some(arg), std::ffi::OsStr::new("turbo"))
            .unwrap_err()
            .to_string();
        let first = err.lines().next().unwrap();
        assert_eq!(
            first,
            "error: invalid value 'turbo' for '--mode <MODE>': use auto, zero-copy or copy \
             [possible values: auto, zero-copy, copy]"
        );
    }

    #[test]
    fn defaults() {
        assert_eq!(XskMode::default(), XskMode::Auto);
        assert_eq!(XdpMode::default(), XdpMode::Auto);
        assert_eq!(Engine::default(), Engine::AfXdp);
        assert_eq!(WaitMode::default(), WaitMode::Sleep);
    }
}
