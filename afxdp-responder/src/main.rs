//! The `afxdp-responder` command: answer ICMP echo requests on an interface from AF_XDP
//! sockets, or (`flood`) generate and verify them.

use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use afxdp_responder::app::{self, one_line};
use afxdp_responder::config::{Config, IdList, QueueList};
use afxdp_responder::cpu;
use afxdp_responder::iface::Interface;
use afxdp_responder::logging;
use afxdp_responder::options::{self, Engine, WaitMode, XdpMode, XskMode};
use afxdp_responder::output::{Output, OutputFormat};
use afxdp_responder::policy::Cidr;
use afxdp_responder::worker::{self, Wait};
use afxdp_xsk::XskConfig;
use clap::{Args, Parser, Subcommand};

const ABOUT: &str = "Answers ICMP echo requests (ping, IPv4 and IPv6) from user space over AF_XDP.";

const LONG_ABOUT: &str = "\
Answers ICMP echo requests (ping, IPv4 and IPv6) from user space over AF_XDP.

A small XDP program on the interface redirects echo requests for the interface's own addresses
into one AF_XDP socket per queue; one worker thread per queue, pinned to a CPU, rewrites each
request into its reply in place and sends it back. Everything else (ARP, neighbour discovery,
other traffic, odd pings) goes to the kernel as usual. The program is attached with a bpf_link,
so it disappears when the process ends, even on SIGKILL.

Needs root (or CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF, CAP_PERFMON and CAP_IPC_LOCK).

Examples:
  afxdp-responder --iface eth0 --queues 0-3
  afxdp-responder --iface eth0 --queues 0 --mode copy --stats-interval 0
  afxdp-responder --iface eth0 --engine xdp-tx     (answer in the kernel, for comparison)
  afxdp-responder --iface eth0 --output json       (one JSON event per line, for programs)
  afxdp-responder flood --iface eth1 --dst 198.18.0.1 --rate 100k --duration 5
  afxdp-responder --config /etc/afxdp-responder/afxdp-responder.toml   (options from a TOML file)
  afxdp-responder check --iface eth0 --queues all --mode zero-copy    (would it work? exit 0 / 1)
  afxdp-responder status --iface eth0 --json                          (what runs there now)

Diagnostics (warnings, notices; -v set-up steps) go to stderr, with journald priorities under
systemd; RUST_LOG overrides -v / -q. Standard output holds only the statistics and the totals.

The lab (network-namespace demo, bench) is its own program: afxdp-lab --help.";

#[derive(Debug, Parser)]
#[command(
    name = "afxdp-responder",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load generator: sends ICMP echo requests from AF_XDP TX rings, verifies every reply
    /// (checksums, addresses, identifier, sequence, payload) and reports rates, losses and
    /// round-trip percentiles. Bounded by --duration (at most 600 s) and --count.
    Flood(FloodArgs),
    /// Pre-flight check: would starting the responder with these options work?
    ///
    /// Reports the
    /// driver, queue counts, the device's XDP features (native, redirect, AF_XDP zero-copy, from
    /// the netdev netlink family), the XDP program attached now, capabilities, locked memory
    /// against the UMEM, the kernel, the queues --queues would leave unserved, and firewall rules
    /// that XDP bypasses. Takes every option of the responder (and --config). Exit status 0: it
    /// would work; 1: it would not (the problems say why); 2: bad usage.
    Check(CheckArgs),
    /// What runs on an interface now: the attached program and its counters.
    ///
    /// Read from the kernel without the process's help: the
    /// attached XDP program (id, name, mode, bpf_link and its holder), its counters and the queues
    /// with a bound AF_XDP socket. Exit
    /// status 1 when no XDP program is attached.
    Status(StatusArgs),
    /// Print a shell completion script on stdout (bash, zsh, fish, elvish, powershell).
    ///
    /// E.g. `afxdp-responder completions bash > /etc/bash_completion.d/afxdp-responder`. The
    /// Debian package installs the bash, zsh and fish scripts.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page afxdp-responder(1) (roff) on stdout.
    ///
    /// E.g. `afxdp-responder man | man -l -`. The Debian package installs it.
    Man,
}

#[derive(Debug, Args)]
struct FloodArgs {
    /// Interface to send from.
    #[arg(long, short = 'i', value_name = "IFACE")]
    iface: String,
    /// Address to ping.
    #[arg(long, value_name = "IP")]
    dst: IpAddr,
    /// Source address (default: the interface's address of the same family).
    #[arg(long, value_name = "IP")]
    src: Option<IpAddr>,
    /// MAC address of the target (default: from the kernel's neighbour table).
    #[arg(long, value_name = "MAC", value_parser = parse_mac_arg)]
    dst_mac: Option<[u8; 6]>,
    /// IP packet size in bytes, headers included (IPv4 44..=1500, IPv6 64..=1500).
    #[arg(long, default_value_t = 64, value_name = "BYTES")]
    size: usize,
    /// Requests per second over all queues: `max`, or a number such as 100000 or 100k.
    #[arg(long, default_value = "max", value_name = "PPS")]
    rate: afxdp_responder::flood::Rate,
    /// Seconds to send (then 0.3 s to collect the last replies); at most 600.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    duration: f64,
    /// Stop after this many requests.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// TX queues to send on, one thread each (replies are expected on the same queues).
    #[arg(long, short = 'q', default_value = "0", value_name = "LIST")]
    queues: IdList,
    /// CPU of each sending thread (default: the last allowed CPUs, away from a responder's
    /// defaults).
    #[arg(long, value_name = "LIST")]
    cpus: Option<IdList>,
    /// How to attach the reply capture XDP program: auto, native or skb.
    #[arg(long, default_value = "auto", value_name = "MODE", value_parser = options::parser::<XdpMode>())]
    xdp_mode: XdpMode,
    /// Every N-th request gets a wrong ICMP checksum on purpose (0: never); they must not be
    /// answered and are not counted as lost.
    #[arg(long, default_value_t = 0, value_name = "N")]
    bad_checksum_every: u64,
    /// Where requests come from: `xsk` writes them into AF_XDP TX rings; `live` has the kernel
    /// generate them (BPF_PROG_RUN with live frames, Linux >= 5.18; on veth the peer needs an XDP
    /// program), which costs the generator far less CPU per request.
    #[arg(long, default_value = "xsk", value_name = "HOW", value_enum)]
    inject: afxdp_responder::flood::Inject,
    /// Print the report as one line of JSON.
    #[arg(long)]
    json: bool,
}

fn parse_mac_arg(s: &str) -> Result<[u8; 6], String> {
    echo_wire::ethernet::parse_mac(s).ok_or_else(|| format!("{s:?} is not a MAC address: use e.g. 02:af:00:00:00:01"))
}

fn run_flood(args: FloodArgs) -> ExitCode {
    if !(args.duration.is_finite() && args.duration > 0.0 && args.duration <= 600.0) {
        return fail(format!(
            "--duration {} is not valid: use seconds in (0, 600]",
            args.duration
        ));
    }
    let queues = args.queues.0;
    let cpus = match args.cpus {
        Some(list) => list.0.into_iter().map(|c| c as usize).collect(),
        None => {
            let mut allowed = cpu::allowed_cpus();
            allowed.reverse();
            cpu::default_cpus(queues.len(), &allowed)
        }
    };
    let cfg = afxdp_responder::flood::FloodConfig {
        iface: args.iface,
        dst: args.dst,
        src: args.src,
        dst_mac: args.dst_mac,
        size: args.size,
        rate: args.rate,
        duration: Duration::from_secs_f64(args.duration),
        count: args.count,
        queues,
        cpus,
        xdp_mode: args.xdp_mode,
        bad_checksum_every: args.bad_checksum_every,
        inject: args.inject,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(signal, Arc::clone(&stop));
    }
    let mut stderr = std::io::stderr();
    match afxdp_responder::flood::run(&cfg, &stop, &mut stderr) {
        Ok(report) => {
            if args.json {
                match serde_json::to_string(&report) {
                    Ok(line) => println!("{line}"),
                    Err(e) => return fail(format!("cannot write the report as JSON: {e}")),
                }
            } else {
                println!("{}", afxdp_responder::flood::human(&report));
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(one_line(&e)),
    }
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Interface to answer on, e.g. eth0.
    #[arg(long, short = 'i', required = true, value_name = "IFACE")]
    iface: Option<String>,

    /// Queues to serve, one pinned worker each: `all` (every RX/combined channel of the
    /// interface), or a list or ranges, e.g. 0-3 or 0,2. Serve every queue that receives pings
    /// (or steer them to the served ones): a ping that arrives on an unserved queue is answered
    /// by the kernel instead, and the responder says so at start.
    #[arg(long, default_value = "0", value_name = "all|LIST")]
    queues: QueueList,

    /// CPU for each queue's worker, in the same order as --queues (default: the i-th CPU this
    /// process may use for the i-th queue).
    #[arg(long, value_name = "LIST")]
    cpus: Option<IdList>,

    /// Engine: afxdp (AF_XDP sockets, user-space workers), xdp-tx (the XDP program answers in
    /// the kernel with XDP_TX; no workers) or drop (the XDP program drops the requests and
    /// counts them). All three see the same requests and report the same counters.
    #[arg(long, default_value = "afxdp", value_name = "ENGINE", value_parser = options::parser::<Engine>())]
    engine: Engine,

    /// AF_XDP mode: auto (zero-copy if the driver supports it, else copy), zero-copy, or copy.
    #[arg(long, visible_alias = "xsk-mode", default_value = "auto", value_name = "MODE", value_parser = options::parser::<XskMode>())]
    mode: XskMode,

    /// How to attach the XDP program: auto (native if the driver supports it, else skb), native
    /// (driver mode), or skb (generic mode, slower, works everywhere).
    #[arg(long, default_value = "auto", value_name = "MODE", value_parser = options::parser::<XdpMode>())]
    xdp_mode: XdpMode,

    /// Only answer for these addresses (repeatable). Default: every unicast address of the
    /// interface.
    #[arg(long = "address", value_name = "IP")]
    addresses: Vec<IpAddr>,

    /// IPv4 TTL of replies (default: net.ipv4.ip_default_ttl, like the kernel).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..))]
    ttl: Option<u8>,

    /// IPv6 hop limit of replies (default: the interface's hop_limit, like the kernel).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..))]
    hop_limit: Option<u8>,

    /// What to print: human (lines for people) or json (one JSON object per line: ready, stats,
    /// addresses, notice and summary events; see docs/json-output.md).
    #[arg(long, value_enum, default_value_t = OutputFormat::Human, value_name = "FORMAT")]
    output: OutputFormat,

    /// Seconds between live statistics lines; 0 disables them.
    #[arg(long, default_value = "1", value_name = "SECONDS")]
    stats_interval: f64,

    /// How a worker waits when its RX ring is empty: sleep (always sleep in poll(): the least
    /// CPU per reply), adaptive (spin up to --spin-window-us while packets keep arriving within
    /// it, otherwise sleep in poll(); idle costs nothing), or spin (never sleep:
    /// spin on the rings in user space, one busy core per queue even without traffic). For the
    /// kernel's busy polling see --busy-poll.
    #[arg(long, default_value = "sleep", value_name = "MODE", value_parser = options::parser::<WaitMode>())]
    wait: WaitMode,

    /// The longest spin of --wait adaptive, in microseconds (about what a sleep and wake-up
    /// cost).
    #[arg(long, value_name = "MICROSECONDS", default_value_t = worker::DEFAULT_SPIN_WINDOW.as_micros() as u64,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    spin_window_us: u64,

    /// The kernel's preferred busy polling: SO_PREFER_BUSY_POLL, SO_BUSY_POLL and
    /// SO_BUSY_POLL_BUDGET (the batch size) on every socket, napi_defer_hard_irqs 2 and
    /// gro_flush_timeout 200000 ns on the interface (restored at exit); an idle worker runs the
    /// queue's NAPI for --busy-poll-us, then sleeps in poll(). Linux 5.11+.
    #[arg(long, conflicts_with = "wait")]
    busy_poll: bool,

    /// With --busy-poll: how long a worker keeps polling an empty queue before it sleeps, in
    /// microseconds (also the sockets' SO_BUSY_POLL).
    #[arg(long, value_name = "MICROSECONDS", default_value_t = worker::DEFAULT_BUSY_POLL.as_micros() as u64,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    busy_poll_us: u64,

    /// Do not bind with XDP_USE_NEED_WAKEUP (the kernel is then kicked after every batch).
    #[arg(long)]
    no_need_wakeup: bool,

    /// Bytes per UMEM frame: 2048 or 4096.
    #[arg(long, default_value_t = XskConfig::default().frame_size, value_name = "BYTES")]
    frame_size: u32,

    /// Fill ring size, which is also the number of UMEM frames per queue (power of two).
    #[arg(long, default_value_t = XskConfig::default().fill_size, value_name = "N")]
    fill_size: u32,

    /// Completion ring size (power of two).
    #[arg(long, default_value_t = XskConfig::default().comp_size, value_name = "N")]
    comp_size: u32,

    /// RX ring size (power of two).
    #[arg(long, default_value_t = XskConfig::default().rx_size, value_name = "N")]
    rx_size: u32,

    /// TX ring size (power of two).
    #[arg(long, default_value_t = XskConfig::default().tx_size, value_name = "N")]
    tx_size: u32,

    /// Frames taken from the RX ring per batch.
    #[arg(long, default_value = "64", value_name = "N")]
    batch: u32,

    /// Check after every loop turn that every UMEM frame is on a ring or in flight, and stop
    /// with an error if not (for tests and debugging; a little slower).
    #[arg(long)]
    check_frames: bool,

    /// Print the journey of each worker's first N frames round the four rings on stderr: fill
    /// slot, RX descriptor, the request, every field the rewrite changes (checksums with the RFC
    /// 1624 arithmetic), TX descriptor, completion, refill, with the ring indices (0: off; costs
    /// nothing when off; docs/learn/08-the-frame-tracer.md).
    #[arg(long, default_value_t = 0, value_name = "N")]
    trace: u32,
    /// Replace an XDP program that another tool attached to the interface with netlink (`ip link
    /// set ... xdp obj ...`): it is detached first (the kernel unloads it unless something else
    /// holds it) and is not re-attached at exit. A program held by a bpf_link, such as another
    /// running afxdp-responder, is never replaced: stop its owner.
    #[arg(long)]
    force: bool,

    /// Serve Prometheus metrics over HTTP on this address, e.g. 127.0.0.1:9417 (GET /metrics;
    /// see docs/metrics.md). Off by default. The endpoint has no authentication: bind it to a
    /// loopback or management address.
    #[arg(long, value_name = "ADDR:PORT", value_parser = parse_metrics_addr)]
    metrics_addr: Option<std::net::SocketAddr>,

    /// Answer only echo requests from these sources (repeatable; IPv4 or IPv6 CIDR, e.g.
    /// 198.18.0.0/15 or 2001:db8::/32; a bare address is one host). Requests from other sources
    /// go to the kernel, whose firewall (nftables/iptables, which XDP runs before) then decides.
    /// With only IPv4 CIDRs, no IPv6 source is answered by the responder: add ::/0 to answer them.
    #[arg(long = "allow-from", value_name = "CIDR")]
    allow_from: Vec<Cidr>,

    /// Never answer echo requests from these sources (repeatable CIDRs, checked before
    /// --allow-from): they go to the kernel and its firewall.
    #[arg(long = "deny-from", value_name = "CIDR")]
    deny_from: Vec<Cidr>,

    /// Answer at most N echo requests per second from each source address (bursts of up to N);
    /// the excess goes to the kernel, which answers or not by its own rules. Written N or N/s.
    #[arg(long, value_name = "N/s", value_parser = parse_rate_per_source)]
    rate_limit_per_source: Option<u32>,

    /// Read options from this TOML file: every long option is a key spelled as the flag
    /// (`iface = "eth0"`, `queues = "0-3"`, `force = true`, `address = ["198.18.0.1"]`); options
    /// given on the command line override the file. Example: config/afxdp-responder.toml.
    #[arg(long, value_name = "FILE")]
    config: Option<String>,

    #[command(flatten)]
    verbosity: Verbosity,
}

/// `-v` / `-q`: how much is said on stderr (RUST_LOG, if set, decides instead).
#[derive(Debug, Args)]
struct Verbosity {
    /// Say more on stderr: -v the set-up steps, -vv everything. RUST_LOG (e.g. RUST_LOG=debug)
    /// overrides -v and -q.
    #[arg(long, short = 'v', action = clap::ArgAction::Count)]
    verbose: u8,

    /// Say less on stderr: -q hides notices, -qq warnings too (errors are always printed).
    #[arg(long, short = 'q', action = clap::ArgAction::Count)]
    quiet: u8,
}

impl Verbosity {
    fn level(&self) -> i16 {
        i16::from(self.verbose) - i16::from(self.quiet)
    }
}

#[derive(Debug, Args)]
struct CheckArgs {
    #[command(flatten)]
    run: RunArgs,

    /// Print the report as one JSON object (schema: docs/json-output.md).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// Interface to look at.
    #[arg(long, short = 'i', value_name = "IFACE")]
    iface: String,

    /// Print the report as one JSON object (schema: docs/json-output.md).
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    verbosity: Verbosity,
}

fn parse_rate_per_source(s: &str) -> Result<u32, String> {
    s.trim()
        .trim_end_matches("/s")
        .parse::<u32>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{s:?} is not a rate: use requests per second per source, e.g. 100 or 100/s"))
}

fn parse_metrics_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{s:?} is not ADDR:PORT: use e.g. 127.0.0.1:9417 or [::1]:9417"))
}

impl RunArgs {
    fn into_config(self) -> Result<Config, String> {
        if !(self.stats_interval.is_finite() && self.stats_interval >= 0.0) {
            return Err(format!(
                "--stats-interval {} is not valid: use seconds >= 0",
                self.stats_interval
            ));
        }
        let iface = self.iface.unwrap_or_default();
        let queues = match self.queues {
            QueueList::All => {
                let count = Interface::lookup(&iface).map_err(|e| e.to_string())?.queue_count;
                QueueList::All.resolve(count)
            }
            QueueList::Ids(ids) => ids.0,
        };
        let cpus = match self.cpus {
            Some(list) => list.0.into_iter().map(|c| c as usize).collect(),
            None => cpu::default_cpus(queues.len(), &cpu::allowed_cpus()),
        };
        let cfg = Config {
            iface,
            queues,
            cpus,
            mode: self.mode,
            xdp_mode: self.xdp_mode,
            xsk: XskConfig {
                frame_size: self.frame_size,
                fill_size: self.fill_size,
                comp_size: self.comp_size,
                rx_size: self.rx_size,
                tx_size: self.tx_size,
                need_wakeup: !self.no_need_wakeup,
                tx_frames: 0,
            },
            batch: self.batch,
            wait: match (self.busy_poll, self.wait) {
                (true, _) => Wait::BusyPoll {
                    window: Duration::from_micros(self.busy_poll_us),
                },
                (_, WaitMode::Busy) => return Err(WaitMode::Busy.refused().unwrap_or_default().to_string()),
                (_, WaitMode::Spin) => Wait::Spin,
                (_, WaitMode::Sleep) => Wait::Sleep,
                (_, WaitMode::Adaptive) => Wait::Adaptive {
                    window: Duration::from_micros(self.spin_window_us),
                },
            },
            addresses: self.addresses,
            ttl: self.ttl,
            hop_limit: self.hop_limit,
            stats_interval: (self.stats_interval > 0.0).then(|| Duration::from_secs_f64(self.stats_interval)),
            check_frames: self.check_frames,
            trace: self.trace,
            engine: self.engine,
            metrics_addr: self.metrics_addr,
            allow_from: self.allow_from,
            deny_from: self.deny_from,
            rate_limit_per_source: self.rate_limit_per_source,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Prints `afxdp-responder: <message>` on one line and returns the failure exit code.
fn fail(message: impl std::fmt::Display) -> ExitCode {
    logging::error_line(&message.to_string());
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    use clap::CommandFactory;
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // `check` and `status` say "bad usage" with exit status 2, since 1 is their answer "no".
    let usage_status = match argv.get(1).and_then(|a| a.to_str()) {
        Some("check" | "status") => 2,
        _ => 1,
    };
    let argv = match afxdp_responder::config_file::expand(&Cli::command(), &argv) {
        Ok(argv) => argv,
        Err(message) => {
            logging::error_line(&message);
            return ExitCode::from(usage_status);
        }
    };
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // clap's message without its usage block: one line that says what is wrong.
            let rendered = e.to_string();
            let message = rendered.split("\n\n").next().unwrap_or("invalid arguments");
            let message: Vec<&str> = message.split_whitespace().collect();
            let message = message.join(" ");
            logging::error_line(&format!(
                "{} (see afxdp-responder --help)",
                message.trim_start_matches("error: ")
            ));
            return ExitCode::from(usage_status);
        }
    };
    match cli.command {
        Some(Command::Flood(args)) => {
            logging::init(0);
            run_flood(args)
        }
        Some(Command::Check(args)) => {
            logging::init(args.run.verbosity.level());
            run_check(args)
        }
        Some(Command::Status(args)) => {
            logging::init(args.verbosity.level());
            run_status(&args)
        }
        Some(Command::Completions { shell }) => {
            clap_complete::generate(shell, &mut Cli::command(), "afxdp-responder", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Some(Command::Man) => match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(format!("cannot write the manual page: {e}")),
        },
        None => {
            logging::init(cli.run.verbosity.level());
            run_responder(cli.run)
        }
    }
}

fn run_check(args: CheckArgs) -> ExitCode {
    let run = args.run;
    let json = args.json || run.output == OutputFormat::Json;
    let input = afxdp_responder::preflight::CheckInput {
        iface: run.iface.unwrap_or_default(),
        queues: run.queues,
        mode: run.mode,
        xdp_mode: run.xdp_mode,
        engine: run.engine,
        addresses: run.addresses,
        frame_size: run.frame_size,
        fill_size: run.fill_size,
        force: run.force,
    };
    let mut report = match afxdp_responder::preflight::check(&input) {
        Ok(report) => report,
        Err(e) => return fail(one_line(&e)),
    };
    // The ring and frame sizes the responder would refuse at start (the same validation).
    if input.engine == Engine::AfXdp {
        let sizes = afxdp_xsk::XskConfig {
            frame_size: run.frame_size,
            fill_size: run.fill_size,
            comp_size: run.comp_size,
            rx_size: run.rx_size,
            tx_size: run.tx_size,
            need_wakeup: !run.no_need_wakeup,
            tx_frames: 0,
        };
        if let Err(problem) = sizes.validate() {
            report.problems.push(problem);
            report.ok = false;
        }
    }
    if json {
        match serde_json::to_string(&report) {
            Ok(line) => println!("{line}"),
            Err(e) => return fail(format!("cannot write the report as JSON: {e}")),
        }
    } else {
        println!("{}", afxdp_responder::preflight::human_check(&report));
    }
    if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run_status(args: &StatusArgs) -> ExitCode {
    let report = match afxdp_responder::preflight::status(&args.iface) {
        Ok(report) => report,
        Err(e) => return fail(one_line(&e)),
    };
    if args.json {
        match serde_json::to_string(&report) {
            Ok(line) => println!("{line}"),
            Err(e) => return fail(format!("cannot write the report as JSON: {e}")),
        }
    } else {
        println!("{}", afxdp_responder::preflight::human_status(&report));
    }
    if report.attached.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run_responder(args: RunArgs) -> ExitCode {
    let force = args.force;
    let format = args.output;
    let mut stdout = std::io::stdout();
    let mut out = Output::new(format, &mut stdout);
    let cfg = match args.into_config() {
        Ok(cfg) => cfg,
        Err(msg) => return fail(msg),
    };
    if force {
        match afxdp_responder::loader::detach_netlink_program(&cfg.iface) {
            Ok(Some(old)) => out.notice(format!(
                "--force: detached {old} from {}; it is not re-attached at exit",
                cfg.iface
            )),
            Ok(None) => {}
            Err(e) => return fail(one_line(&e)),
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    if let Err(e) = stop_on_signals(Arc::clone(&stop)) {
        return fail(format!("cannot install the signal handler: {e}"));
    }
    match app::run(&cfg, &stop, &mut out) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => fail(one_line(&e)),
    }
}

/// SIGINT and SIGTERM ask for an orderly stop (detach, drain, summary). Signals that arrive
/// within [`SIGNAL_BURST`] of the first count as that same request: GNU `timeout -s INT` signals
/// the child and its process group, and a Ctrl-C in a terminal reaches every process of the
/// foreground group, so one stop request often arrives as two signals. A signal after that window
/// means "stop now": exit at once with status 130 (the bpf_link still detaches the program).
fn stop_on_signals(stop: Arc<AtomicBool>) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    const SIGNAL_BURST: Duration = Duration::from_secs(1);
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        // Capabilities are per thread and this one never needs any: drop them first, so that
        // "every thread of the responder holds none" stays true.
        let _ = afxdp_responder::privileges::drop_all_capabilities();
        let mut first: Option<std::time::Instant> = None;
        for _ in signals.forever() {
            match first {
                None => {
                    first = Some(std::time::Instant::now());
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                Some(at) if at.elapsed() < SIGNAL_BURST => {}
                Some(_) => {
                    logging::error_line("second signal: exiting without draining");
                    std::process::exit(130);
                }
            }
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use afxdp_responder::config_file;
    use clap::CommandFactory;
    use clap::parser::ValueSource;

    use super::*;

    const EXAMPLE: &str = include_str!("../../config/afxdp-responder.toml");

    /// The example with every commented `# key = value` line made active.
    fn example_uncommented() -> String {
        EXAMPLE
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if rest.split_once(" = ").is_some_and(|(k, _)| !k.contains(' ')) => rest,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn expand(argv: &[&str], file: &str) -> Vec<OsString> {
        let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
        config_file::expand_with_text(&Cli::command(), &argv, "afxdp-responder.toml", file)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// What `afxdp-responder man` and `completions SHELL` print now.
    fn generated(what: &str) -> String {
        let mut out = Vec::new();
        match what {
            "man" => clap_mangen::Man::new(Cli::command()).render(&mut out).unwrap(),
            shell => {
                let shell: clap_complete::Shell = shell.parse().unwrap();
                clap_complete::generate(shell, &mut Cli::command(), "afxdp-responder", &mut out);
            }
        }
        String::from_utf8(out).unwrap()
    }

    /// The committed manual page and completion scripts (installed by the Debian package) are what
    /// the command line's definition generates today.
    #[test]
    fn the_committed_man_page_and_completions_are_current() {
        let committed = [
            (
                "man",
                "docs/man/man1/afxdp-responder.1",
                include_str!("../../docs/man/man1/afxdp-responder.1"),
            ),
            (
                "bash",
                "config/completions/afxdp-responder.bash",
                include_str!("../../config/completions/afxdp-responder.bash"),
            ),
            (
                "zsh",
                "config/completions/_afxdp-responder",
                include_str!("../../config/completions/_afxdp-responder"),
            ),
            (
                "fish",
                "config/completions/afxdp-responder.fish",
                include_str!("../../config/completions/afxdp-responder.fish"),
            ),
        ];
        for (what, path, text) in committed {
            let command = if what == "man" {
                "man".to_string()
            } else {
                format!("completions {what}")
            };
            assert!(
                generated(what) == text,
                "{path} is stale: refresh it with `cargo run -q -p afxdp-responder -- {command} > {path}` \
                 (or all of them: docs/deploy.md#man-page-and-completions)"
            );
        }
        // The choices of the enum options are listed.
        let man = generated("man");
        for value in ["zero-copy", "xdp-tx", "adaptive", "skb"] {
            // roff writes a hyphen as `\-`.
            let roff = value.replace('-', "\\-");
            assert!(man.contains(&roff), "the man page does not list {value}");
        }
    }

    #[test]
    fn the_example_names_every_run_option() {
        let cmd = Cli::command();
        let text = example_uncommented();
        for (key, _) in config_file::keys(&cmd) {
            assert!(
                text.lines().any(|l| l.starts_with(&format!("{key} = "))),
                "config/afxdp-responder.toml does not show `{key}`: add it, commented, with its default"
            );
        }
    }

    #[test]
    fn the_example_as_shipped_parses() {
        let argv = expand(&["afxdp-responder"], EXAMPLE);
        let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cli.run.iface.as_deref(), Some("eth0"));
        assert_eq!(cli.run.queues, QueueList::All);
        assert_eq!(cli.run.stats_interval, 0.0);
    }

    /// Every option of the run command, whatever it is and however it was added, is taken from
    /// the file: after expansion clap sees it as given (so its own value parser checked it),
    /// unless the example's value is "off" (a false flag, a count of 0). No per-option code is involved.
    #[test]
    fn every_option_of_the_example_reaches_clap() {
        let cmd = Cli::command();
        let text = example_uncommented();
        let argv = expand(&["afxdp-responder"], &text);
        let matches = cmd
            .clone()
            .try_get_matches_from(&argv)
            .unwrap_or_else(|e| panic!("{e}"));
        let table: toml::Table = toml::from_str(&text).unwrap();
        for (key, arg) in config_file::keys(&cmd) {
            let off = match table.get(key) {
                Some(toml::Value::Boolean(false)) => true,
                Some(toml::Value::Integer(0)) => matches!(arg.get_action(), clap::ArgAction::Count),
                _ => false,
            };
            let source = matches.value_source(arg.get_id().as_str());
            if off {
                assert_ne!(source, Some(ValueSource::CommandLine), "{key}");
            } else {
                assert_eq!(
                    source,
                    Some(ValueSource::CommandLine),
                    "{key} did not reach clap: {argv:?}"
                );
            }
        }
        let cli = Cli::try_parse_from(&argv).unwrap();
        assert_eq!(cli.run.addresses.len(), 2);
        assert_eq!(cli.run.metrics_addr, Some("127.0.0.1:9417".parse().unwrap()));
    }

    #[test]
    fn the_command_line_overrides_the_file() {
        let file = "iface = \"eth0\"\nqueues = \"0-3\"\naddress = [\"198.18.0.1\"]\nforce = true\nverbose = 2\n";
        let argv = expand(
            &["afxdp-responder", "--queues", "1", "--address", "198.18.0.7", "-q"],
            file,
        );
        let cli = Cli::try_parse_from(&argv).unwrap();
        assert_eq!(cli.run.queues, QueueList::Ids(IdList(vec![1])));
        assert_eq!(cli.run.addresses, ["198.18.0.7".parse::<IpAddr>().unwrap()]);
        assert!(cli.run.force);
        assert_eq!(cli.run.iface.as_deref(), Some("eth0"));
        assert_eq!(cli.run.verbosity.level(), 1); // -v -v from the file, -q from the command line
        // `check` takes the same keys.
        let argv = expand(&["afxdp-responder", "check", "--json"], file);
        let cli = Cli::try_parse_from(&argv).unwrap();
        let Some(Command::Check(check)) = cli.command else {
            panic!("{argv:?}")
        };
        assert!(check.json);
        assert_eq!(check.run.queues, QueueList::Ids(IdList(vec![0, 1, 2, 3])));
    }
}

#[cfg(test)]
mod doc_command_tests {
    /// Every `afxdp-responder …` command line in README.md and docs/ parses with this command line
    /// (afxdp-lab's `doc_commands` finds them): a renamed option fails here, not for a reader.
    #[test]
    fn every_command_in_the_docs_parses() {
        use clap::Parser as _;
        let failures =
            afxdp_lab::doc_commands::parse_failures("afxdp-responder", |args| super::Cli::try_parse_from(args));
        assert!(
            failures.is_empty(),
            "documented commands that do not parse:\n{}",
            failures.join("\n")
        );
    }
}
