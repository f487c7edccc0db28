//! The command lines the documentation shows, so that tests can check them against the real
//! command-line parsers: a renamed or removed option fails CI instead of a reader.
//!
//! [`doc_commands`] reads `README.md` and every `docs/**/*.md` of the workspace, takes the lines
//! of fenced code blocks, and returns those that run `program` (`afxdp-responder`,
//! `afxdp-lab`), with the shell around them removed: a `$ ` prompt, `sudo`, `VAR=value`
//! assignments, `ip netns exec NS`, `timeout N`, `taskset -c CPUS`, a directory in front of the
//! program name, a trailing `# comment`, and `\` continuation lines. `./run.sh demo ARGS`
//! counts as `afxdp-lab demo ARGS` (that is what it runs). The binaries' unit tests parse each
//! one with their clap `Cli` (`try_parse_from`).

use std::path::{Path, PathBuf};

/// One command line found in the documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocCommand {
    /// The file, relative to the workspace root, and the line number (1-based).
    pub place: String,
    /// The program name followed by its arguments, as a shell would split them.
    pub args: Vec<String>,
}

/// The workspace root (the parent of this crate's directory).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every command line of `program` in README.md and docs/**/*.md, in file order.
pub fn doc_commands(program: &str) -> Vec<DocCommand> {
    let root = workspace_root();
    let mut files = vec![PathBuf::from("README.md")];
    markdown_files(&root, Path::new("docs"), &mut files);
    let mut found = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(root.join(&file)).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        found.extend(commands_in(&file.display().to_string(), &text, program));
    }
    found
}

fn markdown_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| dir.join(e.file_name()))
        .collect();
    paths.sort();
    for path in paths {
        if root.join(&path).is_dir() {
            markdown_files(root, &path, out);
        } else if path.extension().is_some_and(|x| x == "md") {
            out.push(path);
        }
    }
}

/// The command lines of `program` in the fenced code blocks of one Markdown text.
pub fn commands_in(file: &str, text: &str, program: &str) -> Vec<DocCommand> {
    let mut found = Vec::new();
    let mut in_code = false;
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            pending = None;
            continue;
        }
        if !in_code {
            continue;
        }
        let (start, mut joined) = pending.take().unwrap_or((i + 1, String::new()));
        let line = strip_comment(line);
        if let Some(head) = line.trim_end().strip_suffix('\\') {
            joined.push_str(head);
            joined.push(' ');
            pending = Some((start, joined));
            continue;
        }
        joined.push_str(&line);
        if let Some(args) = command_of(&joined, program) {
            found.push(DocCommand {
                place: format!("{file}:{start}"),
                args,
            });
        }
    }
    found
}

/// The line without a `# comment` that starts outside quotes after a blank.
fn strip_comment(line: &str) -> String {
    let (mut quote, mut prev_blank) = (None, true);
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if prev_blank => return line[..i].to_string(),
            _ => {}
        }
        prev_blank = c.is_whitespace();
    }
    line.to_string()
}

/// Splits a line into words as a shell would for simple quoting ('…', "…"); a `$(…)` stays in
/// its word.
fn shell_words(line: &str) -> Vec<String> {
    let (mut words, mut word, mut quote, mut has_word) = (Vec::new(), String::new(), None, false);
    let mut depth = 0u32;
    for c in line.chars() {
        if depth > 0 || (c == '(' && word.ends_with('$')) {
            depth = match c {
                '(' => depth + 1,
                ')' => depth - 1,
                _ => depth,
            };
            word.push(c);
            continue;
        }
        match (quote, c) {
            (None, '\'' | '"') => {
                quote = Some(c);
                has_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if has_word {
                    words.push(std::mem::take(&mut word));
                    has_word = false;
                }
            }
            (_, c) => {
                word.push(c);
                has_word = true;
            }
        }
    }
    if has_word {
        words.push(word);
    }
    words
}

/// `program ARGS...` if the line runs `program`, with the shell around it removed.
fn command_of(line: &str, program: &str) -> Option<Vec<String>> {
    let words = shell_words(line);
    let mut rest = &words[..];
    loop {
        match rest {
            [first, tail @ ..] if first == "$" || first == "sudo" || is_assignment(first) => rest = tail,
            [ip, netns, exec, _ns, tail @ ..] if ip == "ip" && netns == "netns" && exec == "exec" => rest = tail,
            [timeout, n, tail @ ..] if timeout == "timeout" && n.chars().all(|c| c.is_ascii_digit() || c == 's') => {
                rest = tail
            }
            [taskset, c, _cpus, tail @ ..] if taskset == "taskset" && c == "-c" => rest = tail,
            _ => break,
        }
    }
    // The command ends at a shell operator (`&`, `|`, `;`, `&&`, a redirection).
    let end = rest
        .iter()
        .position(|w| ["&", "|", ";", "&&", "||"].contains(&w.as_str()) || w.starts_with('>') || w.starts_with('<'))
        .unwrap_or(rest.len());
    let (first, args) = rest[..end].split_first()?;
    let args = without_shell_values(args);
    let name = first.rsplit('/').next().unwrap_or(first);
    let mut command = vec![program.to_string()];
    let run_sh_demo = program == "afxdp-lab" && name == "run.sh" && args.first().is_some_and(|a| a == "demo");
    if name != program && !run_sh_demo {
        return None;
    }
    command.extend(args);
    Some(command)
}

/// The arguments without options whose value the shell provides (`--mode $mode`,
/// `--dst-mac=$(cat …)`): their names are still checked, with no value to check.
fn without_shell_values(args: &[String]) -> Vec<String> {
    let mut kept: Vec<String> = Vec::new();
    for arg in args {
        if !arg.contains('$') {
            kept.push(arg.clone());
        } else if let Some((name, _)) = arg.split_once('=').filter(|(n, _)| n.starts_with("--")) {
            kept.push(name.to_string());
            kept.push(SHELL_VALUE.to_string());
        } else if kept.last().is_some_and(|prev| prev.starts_with("--")) {
            kept.push(SHELL_VALUE.to_string());
        }
    }
    kept
}

/// Stands for a value the shell provides; see [`DocCommand::has_shell_values`].
pub const SHELL_VALUE: &str = "<shell value>";

impl DocCommand {
    /// Whether some option's value comes from the shell (`$var`, `$(…)`): the option's name is
    /// in [`DocCommand::args`], followed by [`SHELL_VALUE`]; a parser can only check the name.
    pub fn has_shell_values(&self) -> bool {
        self.args.iter().any(|a| a == SHELL_VALUE)
    }
}

/// Parses every documented command line of `program` with `parse` (the binary's clap `Cli`,
/// `Cli::try_parse_from`) and returns what failed, one entry per command: the place, the command
/// and clap's first line. A value the shell provides ([`SHELL_VALUE`]) may be refused by its
/// option's value parser; a command with `--config FILE` may leave required options to the
/// file; every other error counts.
pub fn parse_failures<T>(program: &str, parse: impl Fn(&[String]) -> Result<T, clap::Error>) -> Vec<String> {
    use clap::error::ErrorKind;
    doc_commands(program)
        .into_iter()
        .filter_map(|c| {
            let e = parse(&c.args).err()?;
            let text = e.to_string();
            let shell =
                matches!(e.kind(), ErrorKind::InvalidValue | ErrorKind::ValueValidation) && text.contains(SHELL_VALUE);
            // The responder's `--config FILE` supplies options before clap parses (its main()
            // expands the file), so a required option may be in the file.
            let from_file = e.kind() == ErrorKind::MissingRequiredArgument
                && c.args.iter().any(|a| a == "--config" || a.starts_with("--config="));
            (!shell && !from_file).then(|| {
                format!(
                    "{}: {}\n  {}",
                    c.place,
                    c.args.join(" "),
                    text.lines().next().unwrap_or("")
                )
            })
        })
        .collect()
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MD: &str = "\
Some text with `afxdp-responder --not-in-a-block`.

```sh
sudo target/release/afxdp-responder --iface eth0 --queues 0-3   # a comment
$ afxdp-lab demo --queues 2
sudo ./run.sh demo --example echo
sudo ./run.sh test
sudo ip netns exec afxr-1-r timeout 5 target/debug/afxdp-responder --iface 'a b' \\
    --mode copy
AFXDP_RESPONDER=/x afxdp-lab vm --matrix
afxdp-responder: error: something   (output, not a command)
cargo build --release
```
";

    #[test]
    fn finds_the_commands_of_a_program_in_code_blocks_only() {
        let responder: Vec<Vec<String>> = commands_in("f.md", MD, "afxdp-responder")
            .into_iter()
            .map(|c| c.args)
            .collect();
        assert_eq!(
            responder,
            vec![
                vec!["afxdp-responder", "--iface", "eth0", "--queues", "0-3"],
                vec!["afxdp-responder", "--iface", "a b", "--mode", "copy"],
            ]
        );
        let lab = commands_in("f.md", MD, "afxdp-lab");
        let places: Vec<&str> = lab.iter().map(|c| c.place.as_str()).collect();
        assert_eq!(places, ["f.md:5", "f.md:6", "f.md:10"]);
        assert_eq!(lab[1].args, ["afxdp-lab", "demo", "--example", "echo"]);
        assert_eq!(lab[2].args, ["afxdp-lab", "vm", "--matrix"]);
    }

    #[test]
    fn the_documentation_shows_commands_of_both_programs() {
        // The check is only as good as what it finds: the README alone shows several of each.
        assert!(doc_commands("afxdp-responder").len() >= 2);
        assert!(doc_commands("afxdp-lab").len() >= 5);
    }
}
