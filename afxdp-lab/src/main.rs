//! The `afxdp-lab` command: the network-namespace demo and the bench of afxdp-responder.
//!
//! It runs the `afxdp-responder` binary found beside it (or `$AFXDP_RESPONDER`) and talks to it
//! only through its JSON output and exit status.

use std::process::ExitCode;

use afxdp_lab::{bench, demo, diagrams, one_line, responder_exe, soak, vm};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "afxdp-lab",
    version,
    about = "The lab of afxdp-responder: a demo and a bench in network namespaces of its own.",
    long_about = "The lab of afxdp-responder: a demo and a bench in network namespaces of its own.\n\n\
                  Everything it creates (namespaces, a veth pair, addresses from 198.18.0.0/15 and \
                  2001:db8::/32 only) is removed when it ends, also on Ctrl-C or failure. It needs root \
                  and the afxdp-responder binary beside it (or in $AFXDP_RESPONDER).\n\n\
                  Examples:\n  afxdp-lab demo\n  afxdp-lab demo --queues 2\n  afxdp-lab bench --quick\n  afxdp-lab vm --kernel 7 --mode all\n  afxdp-lab vm --nic igb\n  afxdp-lab vm --matrix\n  afxdp-lab vm --bench\n  afxdp-lab soak --duration 10m\n  afxdp-lab demo --example echo"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the responder in one namespace and real `ping` from the other, checks the replies
    /// with the client's kernel counters and tcpdump, and removes everything it created.
    Demo(demo::DemoArgs),
    /// Every engine and mode against the same loads (sent by `afxdp-responder flood`) in a
    /// namespace pair; writes a table (Markdown, JSON) and a plot (SVG).
    Bench(bench::BenchArgs),
    /// A QEMU guest (KVM if a probe boot works, else TCG) with a virtio-net or igb NIC: the
    /// responder in zero-copy and copy mode on Debian's kernels, pinged from a tap in a namespace
    /// of its own; with --matrix, the XDP programs and their verdict tests on 6.1, 6.12 and 7.x;
    /// with --bench, zero-copy vs copy vs XDP_TX vs the kernel stack. Downloads go to
    /// /var/cache/afxdp-lab.
    Vm(vm::VmArgs),
    /// The responder for a bounded time (default 10 min) at a fixed rate while addresses come and
    /// go, the link flaps and the metrics are scraped; then checks that RSS and open descriptors
    /// stayed flat, every frame and reply is accounted for and the metrics equal the summary.
    /// Exit status 0: every check passed; 1: one failed (named in the output).
    Soak(soak::SoakArgs),
    /// Regenerates the SVG diagrams of docs/diagrams from their .dia text sources (run it from a
    /// source checkout); --check only compares.
    Diagrams(diagrams::DiagramArgs),
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("afxdp-lab: {message}");
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // clap's message without its usage block: one line that says what is wrong.
            let rendered = e.to_string();
            let first = rendered.split("\n\n").next().unwrap_or("invalid arguments");
            let message = first.split_whitespace().collect::<Vec<_>>().join(" ");
            return fail(format!(
                "{} (see afxdp-lab --help)",
                message.trim_start_matches("error: ")
            ));
        }
    };
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Bench(args) => responder_exe().and_then(|exe| bench::run(&args, &exe)),
        Command::Vm(args) => vm::run(&args),
        Command::Soak(args) => soak::run(&args),
        Command::Diagrams(args) => {
            return match diagrams::run(&args) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => fail(e),
            };
        }
    };
    result.unwrap_or_else(|e| fail(one_line(&e)))
}

#[cfg(test)]
mod doc_command_tests {
    /// Every `afxdp-lab …` command line in README.md and docs/ parses with this command line
    /// (afxdp-lab's `doc_commands` finds them): a renamed option fails here, not for a reader.
    #[test]
    fn every_command_in_the_docs_parses() {
        use clap::Parser as _;
        let failures = afxdp_lab::doc_commands::parse_failures("afxdp-lab", |args| super::Cli::try_parse_from(args));
        assert!(
            failures.is_empty(),
            "documented commands that do not parse:\n{}",
            failures.join("\n")
        );
    }
}
