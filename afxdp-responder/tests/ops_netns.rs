//! Operating the responder, with the real binary in a namespace pair: `check` (the pre-flight
//! report, JSON parsed with serde and checked against what the namespace really has), `status`
//! (the running program's counters read from its map, against the pings sent), `--config FILE`,
//! the diagnostics on stderr (journald priorities, `-q`) with stdout's JSON kept pure, and the
//! warning about nftables rules that XDP bypasses. Needs root; every wait is bounded.

mod common;

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use afxdp_lab::{Family, NetnsPair, Side};
use common::{EXE, assert_nothing_attached, pair, ping_all_answered, start, stop};
use responder_json::{CheckReport, Event, StatusReport};

/// Runs `afxdp-responder ARGS` in the responder's namespace to completion (bounded: `check` and
/// `status` read the kernel and return).
fn run(pair: &NetnsPair, args: &[&str]) -> Output {
    let mut child = pair
        .command_in(Side::Responder, EXE)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running afxdp-responder");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("waiting").is_none() {
        assert!(
            Instant::now() < deadline,
            "afxdp-responder {args:?} did not finish in 20 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("reading the output")
}

fn check_json(pair: &NetnsPair, extra: &[&str]) -> (i32, CheckReport) {
    let mut args = vec!["check", "--iface", pair.responder_if(), "--json"];
    args.extend_from_slice(extra);
    let out = run(pair, &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: CheckReport = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "check --json is not a CheckReport ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().expect("exit code"), report)
}

fn status_json(pair: &NetnsPair) -> (i32, StatusReport) {
    let out = run(pair, &["status", "--iface", pair.responder_if(), "--json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: StatusReport =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("status --json ({e}): {stdout}"));
    (out.status.code().expect("exit code"), report)
}

#[test]
fn check_reports_what_the_namespace_has() {
    let pair = pair(2);
    let (code, r) = check_json(&pair, &[]);
    assert_eq!(code, 0, "{r:?}");
    assert!(r.ok && r.problems.is_empty(), "{r:?}");
    assert_eq!(r.driver, "veth");
    assert_eq!((r.queues.rx, r.queues.tx, r.queues.usable), (2, 2, 2));
    assert_eq!(r.queues.requested, [0]);
    assert_eq!(r.queues.unserved, [1], "--queues 0 of 2 leaves queue 1 to the kernel");
    assert!(
        r.warnings.iter().any(|w| w.contains("would not be served (1)")),
        "{:?}",
        r.warnings
    );
    assert!(
        r.addresses.contains(&pair.ipv4(Side::Responder).to_string()),
        "{:?}",
        r.addresses
    );
    assert!(
        r.addresses.contains(&pair.ipv6(Side::Responder).to_string()),
        "{:?}",
        r.addresses
    );
    assert!(
        r.xdp_features.known,
        "Linux 6.3+ has the netdev family: {:?}",
        r.xdp_features
    );
    assert_eq!(r.xdp_features.native, Some(true), "veth has native XDP");
    assert_eq!(r.xdp_features.xsk_zerocopy, Some(false), "veth has no AF_XDP zero-copy");
    assert_eq!(r.attached, None);
    assert!(r.capabilities.missing.is_empty(), "root holds all five");
    assert!(r.kernel.ok);
    assert_eq!(r.memlock.umem_bytes, 4096 * 4096);

    // Every queue served, and zero-copy demanded on veth: a problem, exit status 1.
    let (code, r) = check_json(&pair, &["--queues", "all", "--xsk-mode", "zero-copy"]);
    assert_eq!(code, 1);
    assert!(!r.ok);
    assert!(r.queues.unserved.is_empty());
    assert!(
        r.problems
            .iter()
            .any(|p| p.contains("zero-copy") && p.contains("use --mode copy")),
        "{:?}",
        r.problems
    );
    let (code, r) = check_json(&pair, &["--queues", "0-2"]);
    assert_eq!((code, r.queues.missing.clone()), (1, vec![2]));
    // Ring sizes the responder refuses at start are refused by check too, with its message.
    let (code, r) = check_json(&pair, &["--fill-size", "32"]);
    assert_eq!((code, r.ok), (1, false), "{r:?}");
    assert_eq!(
        r.problems,
        ["--fill-size 32 is not valid: use a power of two from 64 to 65536"],
        "only the size is wrong here"
    );

    // With a responder running, its program is reported attached, with its link and holder; a
    // second one would not start.
    let responder = start(&pair, &["--queues", "all", "--stats-interval", "0"]);
    let (code, r) = check_json(&pair, &["--queues", "all"]);
    let attached = r.attached.clone().expect("the running responder's program");
    assert_eq!(attached.name.as_deref(), Some("redirect_echo"));
    assert_eq!(attached.mode, responder.ready().xdp_mode);
    assert!(attached.link_id.is_some());
    assert!(
        attached
            .holder
            .as_deref()
            .is_some_and(|h| h.contains(&responder.pid().to_string())),
        "{attached:?} vs pid {}",
        responder.pid()
    );
    assert_eq!(code, 1, "{r:?}");
    assert!(
        r.problems.iter().any(|p| p.contains("already has an XDP program")),
        "{:?}",
        r.problems
    );
    stop(responder);

    // Human output: readable lines, the same verdict.
    let out = run(&pair, &["check", "--iface", pair.responder_if()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("AF_XDP zero-copy no"), "{text}");
}

#[test]
fn check_of_a_missing_interface_or_bad_usage_is_one_line() {
    let pair = pair(1);
    let out = run(&pair, &["check", "--iface", "afxops-nope0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("afxops-nope0 does not exist"), "{stderr}");
    assert!(out.stdout.is_empty());

    let out = run(&pair, &["check", "--iface", pair.responder_if(), "--queues", "x"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "bad usage: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let out = run(&pair, &["status", "--iface", "afxops-nope0"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}

#[test]
fn status_reads_the_running_programs_counters() {
    let pair = pair(1);
    let (code, r) = status_json(&pair);
    assert_eq!((code, r.attached.clone()), (1, None), "nothing attached yet");

    let responder = start(&pair, &["--stats-interval", "0"]);
    let sent = 10u64;
    ping_all_answered(&pair, Family::V4, sent as u32);
    let (code, r) = status_json(&pair);
    assert_eq!(code, 0);
    assert!(r.responder, "{r:?}");
    assert_eq!(r.engine.as_deref(), Some("afxdp"));
    let attached = r.attached.clone().unwrap();
    assert_eq!(attached.name.as_deref(), Some("redirect_echo"));
    let counters = r.counters.expect("the program's counters map is readable");
    assert!(
        counters.handled >= sent,
        "redirected {} < {sent} pings sent",
        counters.handled
    );
    assert_eq!(counters.no_socket, 0);
    // Queues with a socket come from the kernel's AF_XDP socket diagnostics, when it has them.
    let diag = kernel_config_has("CONFIG_XDP_SOCKETS_DIAG");
    match diag {
        Some(true) => assert_eq!(r.queues.as_deref(), Some(&[0u32][..]), "{r:?}"),
        Some(false) => assert_eq!(r.queues, None, "no AF_XDP socket diagnostics in this kernel"),
        None => {}
    }

    let exit = stop(responder);
    let summary = exit.expect_summary();
    assert!(summary.program.handled >= counters.handled, "the counters only grow");
    assert_eq!(
        summary.total.tx, summary.program.handled,
        "every redirected request was answered"
    );
    let (code, _) = status_json(&pair);
    assert_eq!(code, 1, "detached at exit");
}

/// Whether the running kernel was built with `option` (`/proc/config.gz`); `None` if unreadable.
fn kernel_config_has(option: &str) -> Option<bool> {
    let out = std::process::Command::new("zcat")
        .arg("/proc/config.gz")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Some(
        text.lines()
            .any(|l| l == format!("{option}=y") || l == format!("{option}=m")),
    )
}

/// A config file in /tmp, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str, text: &str) -> Self {
        let path = std::env::temp_dir().join(format!("afxops-{}-{tag}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn options_come_from_the_config_file_and_the_command_line_wins() {
    let pair = pair(2);
    let file = TempFile::new(
        "good",
        "# as an operator writes it\nqueues = \"all\"\nxsk-mode = \"copy\"\nxdp-mode = \"native\"\nstats-interval = 0\nttl = 99\n",
    );
    // --ttl on the command line overrides the file's 99.
    let responder = start(&pair, &["--config", file.path(), "--ttl", "64"]);
    let ready = responder.ready().clone();
    assert_eq!(ready.queues.iter().map(|q| q.queue).collect::<Vec<_>>(), [0, 1]);
    assert!(ready.queues.iter().all(|q| q.mode == "copy"), "{ready:?}");
    assert_eq!(ready.xdp_mode, "native");
    assert_eq!(ready.ttl, 64);
    common::ping_sizes(&pair, Family::V4).check(); // TTL 64 checked by tcpdump
    stop(responder);
    assert_nothing_attached(&pair);

    // `check` reads the same file.
    let out = run(
        &pair,
        &[
            "check",
            "--iface",
            pair.responder_if(),
            "--config",
            file.path(),
            "--json",
        ],
    );
    let r: CheckReport = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r.queues.requested, [0, 1]);

    for (tag, text, wanted) in [
        (
            "unknown",
            "queues = \"all\"\n\nqueue = 1\n",
            "line 3: unknown key `queue`",
        ),
        ("value", "xdp-mode = \"turbo\"\n", "line 1: bad value for `xdp-mode`"),
        ("syntax", "queues = \n", "line 1: not valid TOML"),
        ("list", "queues = [\"0\", \"1\"]\n", "takes one value, not a list"),
    ] {
        let bad = TempFile::new(tag, text);
        let out = run(&pair, &["--iface", pair.responder_if(), "--config", bad.path()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{tag}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{tag}: one line: {stderr}");
        assert!(
            stderr.contains(bad.path()) && stderr.contains(wanted),
            "{tag}: {stderr}"
        );
        assert_nothing_attached(&pair);
    }
    let out = run(
        &pair,
        &["--iface", pair.responder_if(), "--config", "/nonexistent/afxops.toml"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the config file /nonexistent/afxops.toml"));
}

/// Adds an nftables input rule that drops IPv4 echo requests in the responder's namespace.
fn drop_echo_with_nft(pair: &NetnsPair) {
    let rules = "table inet afxops {\n chain input {\n  type filter hook input priority 0; policy accept;\n  \
                 icmp type echo-request drop\n }\n}\n";
    let mut child = pair
        .command_in(Side::Responder, "nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("nft (apt-get install nftables)");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(rules.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "nft -f");
}

/// A responder in human mode with stderr going to a file (so that `JOURNAL_STREAM` can name it):
/// started, waited for with `status --json` (the documented interface, not its text), stopped
/// with SIGINT. Returns (stdout, stderr).
fn run_human(pair: &NetnsPair, args: &[&str], journal: bool, rust_log: Option<&str>) -> (String, String) {
    let err_path = std::env::temp_dir().join(format!("afxops-{}-stderr", std::process::id()));
    let err = File::create(&err_path).unwrap();
    let meta = err.metadata().unwrap();
    let mut cmd = pair.command_in(Side::Responder, EXE);
    cmd.args(["--iface", pair.responder_if(), "--stats-interval", "0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err);
    if journal {
        cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
    } else {
        cmd.env_remove("JOURNAL_STREAM");
    }
    match rust_log {
        Some(filter) => cmd.env("RUST_LOG", filter),
        None => cmd.env_remove("RUST_LOG"),
    };
    let child: Child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while status_json(pair).0 != 0 {
        assert!(Instant::now() < deadline, "the responder did not attach in 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300)); // past `ready`
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let mut child = child;
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the responder did not stop in 10 s after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    let stderr = std::fs::read_to_string(&err_path).unwrap();
    let _ = std::fs::remove_file(&err_path);
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

#[test]
fn diagnostics_go_to_stderr_with_journal_priorities_and_json_stays_pure() {
    let pair = pair(2);
    drop_echo_with_nft(&pair);

    // Under journald: the firewall warning with <4>, the veth XDP_TX caveat (a notice) with <5>.
    let (stdout, stderr) = run_human(&pair, &["--engine", "xdp-tx"], true, None);
    let warning = stderr
        .lines()
        .find(|l| l.contains("XDP runs before netfilter"))
        .unwrap_or_else(|| panic!("no firewall warning: {stderr}"));
    assert!(warning.starts_with("<4>"), "{warning}");
    assert!(warning.contains("icmp type echo-request drop"), "{warning}");
    assert!(warning.contains("--allow-from/--deny-from"), "{warning}");
    assert!(
        stderr.lines().any(|l| l.starts_with("<5>on veth, native XDP_TX")),
        "{stderr}"
    );
    assert!(!stdout.contains("netfilter"), "diagnostics are not on stdout: {stdout}");

    // -q hides notices, keeps warnings; without journald the lines carry the program's name.
    let (_, stderr) = run_human(&pair, &["--engine", "xdp-tx", "-q"], false, None);
    assert!(!stderr.contains("on veth, native XDP_TX"), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("afxdp-responder: warning: the host firewall")),
        "{stderr}"
    );
    // -qq hides the warning too; -v shows the set-up steps.
    let (_, stderr) = run_human(&pair, &["--engine", "xdp-tx", "-qq"], false, None);
    assert!(stderr.is_empty(), "{stderr}");
    let (_, stderr) = run_human(&pair, &["--queues", "all", "-v"], false, None);
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("afxdp-responder: debug: attached in")),
        "{stderr}"
    );
    // RUST_LOG decides over -q.
    let (_, stderr) = run_human(&pair, &["--queues", "all", "-qq"], false, Some("debug"));
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("afxdp-responder: debug: attached in")),
        "{stderr}"
    );

    // JSON: every stdout line is an event; the warning is a notice event with level warning;
    // stderr stays empty. The responder answers although nftables drops echo requests (XDP runs
    // first): that is what the warning is about.
    let responder = start(&pair, &["--queues", "all", "--stats-interval", "0", "-v"]);
    ping_all_answered(&pair, Family::V4, 3);
    let exit = stop(responder);
    for line in exit.finished.stdout.lines() {
        assert!(Event::parse_line(line).is_some(), "not an event on stdout: {line}");
    }
    let notice = exit
        .events
        .iter()
        .find_map(|e| match e {
            Event::Notice(n) if n.message.contains("XDP runs before netfilter") => Some(n.clone()),
            _ => None,
        })
        .expect("the firewall warning as a notice event");
    assert_eq!(notice.level, "warning");
    assert!(
        exit.finished
            .stderr
            .lines()
            .all(|l| l.starts_with("afxdp-responder: debug: ")),
        "{}",
        exit.finished.stderr
    );
}

#[test]
fn no_firewall_rule_no_warning() {
    let pair = pair(1);
    let responder = start(&pair, &["--stats-interval", "0"]);
    assert!(
        !responder.notices().iter().any(|n| n.contains("netfilter")),
        "{:?}",
        responder.notices()
    );
    stop(responder);
    let (_, r) = check_json(&pair, &[]);
    assert!(
        r.firewall.checked && r.firewall.filtering_rules.is_empty(),
        "{:?}",
        r.firewall
    );
    drop_echo_with_nft(&pair);
    let (_, r) = check_json(&pair, &[]);
    assert_eq!(r.firewall.filtering_rules.len(), 1, "{:?}", r.firewall);
    assert!(r.warnings.iter().any(|w| w.contains("XDP runs before netfilter")));
}
