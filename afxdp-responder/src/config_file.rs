//! `--config FILE`: options from a TOML file, for every long option of a command, generically.
//!
//! Each key is the long option's name without the dashes (`iface = "eth0"`, `queues = "0-3"`,
//! `xdp-mode = "native"`); flags without a value are booleans (`force = true`), counted flags are
//! numbers (`verbose = 1`), repeatable options are arrays (`address = ["198.18.0.1"]`). There is no
//! per-option code: the keys come from clap's own list of arguments, so an option added to the
//! command line is a key at once, and each value goes through the option's own value parser.
//!
//! The file's options are turned into command-line arguments and appended to the real command
//! line, except those the command line gives itself: **command-line flags override the file**
//! (for a repeatable option, the command line's list replaces the file's).
//!
//! Errors are one line that names the file, the line and the key, and says what to do:
//! `/etc/afxdp-responder/afxdp-responder.toml line 3: unknown key `queue`: …`.
//!
//! ```
//! use clap::{Arg, ArgAction, Command};
//! use afxdp_responder::config_file;
//!
//! let cmd = Command::new("x")
//!     .arg(Arg::new("config").long("config"))
//!     .arg(Arg::new("iface").long("iface").required(true))
//!     .arg(Arg::new("queues").long("queues").default_value("0"));
//! let args = config_file::expand_with_text(&cmd, &["x".into(), "--queues".into(), "1".into()],
//!                                         "afxdp.toml", "iface = \"eth0\"\nqueues = \"0-3\"\n")?;
//! assert_eq!(args, ["x", "--queues", "1", "--iface=eth0"]); // the command line's --queues wins
//! # Ok::<(), String>(())
//! ```

use std::collections::BTreeMap;
use std::ffi::OsString;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};
use toml::{Spanned, Value};

/// The id of the `--config` argument.
pub const CONFIG_ARG: &str = "config";

/// Arguments that are not options of the run and have no key.
const NOT_KEYS: [&str; 3] = [CONFIG_ARG, "help", "version"];

/// Reads `--config FILE` from `argv` (at the top level or in a subcommand that has it) and returns
/// `argv` with the file's options appended. Without `--config`, or if `argv` does not parse even
/// with every argument optional (clap then reports the real error), returns `argv` unchanged.
pub fn expand(cmd: &Command, argv: &[OsString]) -> Result<Vec<OsString>, String> {
    let Some((path, _, _)) = config_path(cmd, argv) else {
        return Ok(argv.to_vec());
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read the config file {path}: {e} (check the path given to --config)"))?;
    expand_with_text(cmd, argv, &path, &text)
}

/// [`expand`] with the file's contents given (`file` names it in messages).
pub fn expand_with_text(cmd: &Command, argv: &[OsString], file: &str, text: &str) -> Result<Vec<OsString>, String> {
    let Some((_, level, matches)) = config_path(cmd, argv).or_else(|| {
        let (level, matches) = parse_relaxed(cmd, argv)?;
        Some((String::new(), level, matches))
    }) else {
        return Ok(argv.to_vec());
    };
    let extra = file_arguments(&level, &matches, file, text)?;
    let mut out = argv.to_vec();
    out.extend(extra);
    Ok(out)
}

/// The long options of `cmd` that are config keys, as (key, argument).
pub fn keys(cmd: &Command) -> Vec<(&str, &Arg)> {
    cmd.get_arguments()
        .filter(|a| !NOT_KEYS.contains(&a.get_id().as_str()))
        .filter_map(|a| a.get_long().map(|l| (l, a)))
        .collect()
}

/// `(path, command level, matches of that level)` when `argv` gives `--config`.
fn config_path(cmd: &Command, argv: &[OsString]) -> Option<(String, Command, ArgMatches)> {
    let (level, matches) = parse_relaxed(cmd, argv)?;
    let has_config = level.get_arguments().any(|a| a.get_id() == CONFIG_ARG);
    let path = if has_config {
        matches.get_one::<String>(CONFIG_ARG).cloned()
    } else {
        None
    }?;
    Some((path, level, matches))
}

/// Parses `argv` with every argument optional, and returns the level that was used (the
/// subcommand if one was given) and its matches.
fn parse_relaxed(cmd: &Command, argv: &[OsString]) -> Option<(Command, ArgMatches)> {
    let relax = |c: Command| c.mut_args(|a| a.required(false));
    let mut relaxed = relax(cmd.clone()).mut_subcommands(relax);
    relaxed.build();
    let matches = relaxed.clone().try_get_matches_from(argv).ok()?;
    match matches.subcommand() {
        Some((name, sub)) => {
            let level = relaxed.find_subcommand(name)?.clone();
            Some((level, sub.clone()))
        }
        None => Some((relaxed, matches)),
    }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

/// The file's options as `--long=value` arguments, for the options the command line does not
/// give.
fn file_arguments(level: &Command, matches: &ArgMatches, file: &str, text: &str) -> Result<Vec<OsString>, String> {
    let table: BTreeMap<Spanned<String>, Spanned<Value>> = toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map_or(String::new(), |s| format!(" line {}", line_of(text, s.start)));
        let message: Vec<&str> = e.message().split_whitespace().collect();
        format!(
            "{file}{at}: not valid TOML: {} (fix the file; see config/afxdp-responder.toml)",
            message.join(" ")
        )
    })?;
    let keys = keys(level);
    let mut out = Vec::new();
    for (key, value) in &table {
        let line = line_of(text, key.span().start);
        let at = format!("{file} line {line}");
        let name = key.get_ref().as_str();
        let Some(&(long, arg)) = keys
            .iter()
            .find(|(long, arg)| *long == name || arg.get_all_aliases().is_some_and(|a| a.contains(&name)))
        else {
            return Err(format!(
                "{at}: unknown key `{name}`: use the name of a long option of `afxdp-responder --help` without \
                 the dashes (e.g. queues = \"0-3\"), or remove it"
            ));
        };
        if matches.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine) {
            continue; // the command line overrides the file
        }
        let value = value.get_ref();
        let bad = |why: &str| format!("{at}: bad value for `{name}`: {why}");
        match arg.get_action() {
            ArgAction::SetTrue | ArgAction::SetFalse => {
                let Value::Boolean(on) = value else {
                    return Err(bad(&format!("{value} is not a boolean: use {name} = true or false")));
                };
                if *on == matches!(arg.get_action(), ArgAction::SetTrue) {
                    out.push(OsString::from(format!("--{long}")));
                }
            }
            ArgAction::Count => {
                let Some(n) = value.as_integer().filter(|n| (0..=8).contains(n)) else {
                    return Err(bad(&format!("{value} is not a count: use a number from 0 to 8")));
                };
                out.extend((0..n).map(|_| OsString::from(format!("--{long}"))));
            }
            ArgAction::Append => {
                let items: Vec<&Value> = match value {
                    Value::Array(items) => items.iter().collect(),
                    single => vec![single],
                };
                for item in items {
                    let text = scalar(item).ok_or_else(|| {
                        bad(&format!(
                            "{item} is not a string or number: use e.g. {name} = [\"…\", \"…\"]"
                        ))
                    })?;
                    check_value(level, arg, &text).map_err(|e| bad(&e))?;
                    out.push(OsString::from(format!("--{long}={text}")));
                }
            }
            _ => {
                if let Value::Array(_) = value {
                    return Err(bad(&format!("{name} takes one value, not a list: use {name} = \"…\"")));
                }
                let text = scalar(value)
                    .ok_or_else(|| bad(&format!("{value} is not a string or number: use {name} = \"…\"")))?;
                check_value(level, arg, &text).map_err(|e| bad(&e))?;
                out.push(OsString::from(format!("--{long}={text}")));
            }
        }
    }
    Ok(out)
}

/// A TOML scalar as the command line would spell it.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Integer(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Runs the option's own value parser on `text` (by parsing `--long=text` alone with `level`,
/// whose arguments are all optional); the error is clap's first line, without `error: `.
fn check_value(level: &Command, arg: &Arg, text: &str) -> Result<(), String> {
    let long = arg.get_long().unwrap_or_default();
    let argv = [level.get_name().to_string(), format!("--{long}={text}")];
    match level.clone().try_get_matches_from(argv) {
        Ok(_) => Ok(()),
        Err(e) => {
            let rendered = e.to_string();
            let first = rendered.lines().next().unwrap_or("invalid value");
            Err(first.trim_start_matches("error: ").to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd() -> Command {
        Command::new("x")
            .arg(Arg::new(CONFIG_ARG).long("config"))
            .arg(Arg::new("iface").long("iface").short('i').required(true))
            .arg(
                Arg::new("queues")
                    .long("queues")
                    .default_value("0")
                    .value_parser(clap::value_parser!(u32)),
            )
            .arg(Arg::new("force").long("force").action(ArgAction::SetTrue))
            .arg(Arg::new("verbose").long("verbose").short('v').action(ArgAction::Count))
            .arg(Arg::new("address").long("address").action(ArgAction::Append))
            .subcommand(
                Command::new("check")
                    .arg(Arg::new("config").long("config"))
                    .arg(Arg::new("iface").long("iface")),
            )
    }

    fn expand(argv: &[&str], text: &str) -> Result<Vec<String>, String> {
        let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
        expand_with_text(&cmd(), &argv, "f.toml", text)
            .map(|v| v.into_iter().map(|s| s.into_string().unwrap()).collect())
    }

    #[test]
    fn every_kind_of_option() {
        let text =
            "iface = \"eth0\"\nqueues = 3\nforce = true\nverbose = 2\naddress = [\"198.18.0.1\", \"2001:db8::1\"]\n";
        assert_eq!(
            expand(&["x"], text).unwrap(),
            [
                "x",
                "--address=198.18.0.1",
                "--address=2001:db8::1",
                "--force",
                "--iface=eth0",
                "--queues=3",
                "--verbose",
                "--verbose"
            ]
        );
        assert_eq!(expand(&["x"], "force = false\n").unwrap(), ["x"]);
    }

    #[test]
    fn the_command_line_wins() {
        let text = "iface = \"eth0\"\nqueues = 3\naddress = [\"198.18.0.1\"]\n";
        assert_eq!(
            expand(&["x", "-i", "eth1", "--address", "198.18.0.9"], text).unwrap(),
            ["x", "-i", "eth1", "--address", "198.18.0.9", "--queues=3"]
        );
    }

    #[test]
    fn subcommands_read_their_own_keys() {
        assert_eq!(
            expand(&["x", "check"], "iface = \"eth0\"\n").unwrap(),
            ["x", "check", "--iface=eth0"]
        );
        let err = expand(&["x", "check"], "queues = 1\n").unwrap_err();
        assert!(err.contains("unknown key `queues`"), "{err}");
    }

    #[test]
    fn errors_name_the_file_the_line_and_the_key() {
        let cases = [
            (
                "iface = \"eth0\"\n\nqueue = 3\n",
                "f.toml line 3: unknown key `queue`: ",
            ),
            (
                "queues = \"many\"\n",
                "f.toml line 1: bad value for `queues`: invalid value 'many'",
            ),
            (
                "force = \"yes\"\n",
                "f.toml line 1: bad value for `force`: \"yes\" is not a boolean",
            ),
            (
                "iface = [\"a\", \"b\"]\n",
                "f.toml line 1: bad value for `iface`: iface takes one value, not a list",
            ),
            ("iface = \n", "f.toml line 1: not valid TOML: "),
        ];
        for (text, wanted) in cases {
            let err = expand(&["x"], text).unwrap_err();
            assert!(err.starts_with(wanted), "{text:?}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn without_config_nothing_changes() {
        let argv: Vec<OsString> = ["x", "--iface", "eth0"].iter().map(OsString::from).collect();
        assert_eq!(expand_path_free(&argv), argv);
    }

    fn expand_path_free(argv: &[OsString]) -> Vec<OsString> {
        super::expand(&cmd(), argv).unwrap()
    }
}
