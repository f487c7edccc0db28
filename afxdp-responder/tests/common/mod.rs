//! Helpers shared by the integration tests that run the real responder binary in a namespace pair
//! (`mod common;` in each test file): creating the pair, starting and stopping the responder with
//! its exit report checked, pinging with every reply checked, and looking at the interface.
//!
//! Cargo compiles this module into every test binary that declares it, and each of them uses only
//! some of the helpers: the rest would be reported as dead code there, hence the `allow` below.
#![allow(dead_code)]

pub mod frames;

use std::path::{Path, PathBuf};
use std::time::Duration;

use responder_json::Event;

use afxdp_lab::{
    Background, Capture, CaptureText, Family, LabConfig, NetnsPair, Nstat, PingReport, PingSpec, ResponderExit,
    ResponderProcess, Side, ping, ping_command, require_root,
};

/// The responder binary under test.
pub const EXE: &str = env!("CARGO_BIN_EXE_afxdp-responder");

/// Panics with one clear line unless running as root (never a silent pass).
pub fn need_root() {
    if let Err(e) = require_root() {
        panic!("these tests need root (run ./run.sh test): {e}");
    }
}

/// A fresh namespace pair with `queues` queues per veth end (needs root).
pub fn pair(queues: u32) -> NetnsPair {
    need_root();
    NetnsPair::create(&LabConfig {
        queues,
        ..LabConfig::default()
    })
    .expect("creating the namespace pair")
}

/// Starts the responder binary on the pair's responder interface with `args`.
pub fn start(pair: &NetnsPair, args: &[&str]) -> ResponderProcess {
    ResponderProcess::start(pair, Path::new(EXE), args).expect("starting the responder")
}

/// [`start`] on queue 0 without periodic statistics (`--queues 0 --stats-interval 0`), then `extra`.
pub fn start_queue0(pair: &NetnsPair, extra: &[&str]) -> ResponderProcess {
    let mut args = vec!["--queues", "0", "--stats-interval", "0"];
    args.extend_from_slice(extra);
    start(pair, &args)
}

/// Waits up to 5 s for the responder's notice containing `needle` (`what` names it in the panic).
#[track_caller]
pub fn wait_notice(responder: &mut ResponderProcess, what: &str, needle: &str) -> Event {
    responder
        .wait_for_event(
            what,
            Duration::from_secs(5),
            |e| matches!(e, Event::Notice(n) if n.message.contains(needle)),
        )
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Stops the responder and checks that it exited cleanly and that every queue accounted for every
/// UMEM frame.
#[track_caller]
pub fn stop(responder: ResponderProcess) -> ResponderExit {
    let exit = responder.stop().expect("stopping the responder");
    assert!(
        exit.finished.status.success(),
        "responder failed: {:?}\n{}\n{}",
        exit.finished.status,
        exit.finished.stdout,
        exit.finished.stderr
    );
    assert_frames_accounted(&exit);
    exit
}

/// Every queue's frame census in the exit report says "all accounted for".
#[track_caller]
pub fn assert_frames_accounted(exit: &ResponderExit) {
    let summary = exit.expect_summary();
    for q in &summary.queues {
        assert!(q.frames.accounted, "queue {}: {:?}", q.queue, q.frames);
    }
}

/// A directory `{name}-{pid}` under the temporary directory, made afresh and removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates the directory (removing any leftover of an earlier run first).
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `ip ARGS` in the responder's namespace and returns stdout; panics if it fails.
pub fn ip(pair: &NetnsPair, args: &[&str]) -> String {
    let out = pair.command_in(Side::Responder, "ip").args(args).output().expect("ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `ip ARGS` in the client's namespace; panics if it fails.
pub fn client_ip(pair: &NetnsPair, args: &[&str]) {
    let out = pair.command_in(Side::Client, "ip").args(args).output().expect("ip");
    assert!(
        out.status.success(),
        "ip {args:?} (client): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ip -d link show` of the responder's interface (to see whether XDP is attached).
pub fn link_details(pair: &NetnsPair) -> String {
    ip(pair, &["-d", "link", "show", "dev", pair.responder_if()])
}

/// No XDP program is attached to the responder's interface.
#[track_caller]
pub fn assert_nothing_attached(pair: &NetnsPair) {
    let details = link_details(pair);
    assert!(!details.contains("prog/xdp"), "XDP left attached: {details}");
}

/// The id of the program `ip -d link show` reports on the responder's interface.
pub fn attached_program_id(pair: &NetnsPair) -> Option<String> {
    let details = link_details(pair);
    let mut words = details.split_whitespace().skip_while(|w| !w.starts_with("prog/xdp"));
    words.by_ref().position(|w| w == "id")?;
    words.next().map(str::to_string)
}

/// Writes an XDP `object` to a temporary `afxdp-test-{name}-{pid}.o` for `ip ... obj` (the caller removes it).
pub fn object_file(name: &str, object: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("afxdp-test-{name}-{}.o", std::process::id()));
    std::fs::write(&path, object).expect("writing the object for ip");
    path
}

/// Attaches `object` (section `xdp`) to the responder's interface with `ip` (netlink) in `mode`, e.g. `xdpgeneric`.
pub fn attach_with_ip(pair: &NetnsPair, mode: &str, name: &str, object: &[u8]) {
    let path = object_file(name, object);
    let obj = path.to_str().expect("a UTF-8 temporary path");
    ip(
        pair,
        &[
            "link",
            "set",
            "dev",
            pair.responder_if(),
            mode,
            "obj",
            obj,
            "sec",
            "xdp",
        ],
    );
    let _ = std::fs::remove_file(&path);
}

/// Sets a sysctl in the responder's namespace.
pub fn sysctl(pair: &NetnsPair, key: &str, value: &str) {
    let status = pair
        .command_in(Side::Responder, "sysctl")
        .args(["-qw", &format!("{key}={value}")])
        .status()
        .expect("sysctl");
    assert!(status.success(), "sysctl {key}={value}");
}

/// The client kernel's counters of echo replies received and of ICMP checksum errors.
pub fn counter_names(family: Family) -> (&'static str, &'static str) {
    match family {
        Family::V4 => ("IcmpInEchoReps", "IcmpInCsumErrors"),
        Family::V6 => ("Icmp6InEchoReplies", "Icmp6InCsumErrors"),
    }
}

/// Pings `family` `count` times, 20 ms apart, and checks that every request was answered.
#[track_caller]
pub fn ping_all_answered(pair: &NetnsPair, family: Family, count: u32) -> PingReport {
    let report = ping(pair, &PingSpec::new(family, count).interval(Duration::from_millis(20))).unwrap();
    assert_eq!(report.received, u64::from(count), "{}", report.raw);
    report
}

/// A background `ping` from the client; [`finish_ping`] waits for its summary.
pub fn ping_in_background(pair: &NetnsPair, spec: &PingSpec) -> Background {
    Background::spawn(ping_command(pair, spec).expect("ping command")).expect("starting ping")
}

/// Waits up to `timeout` for a background ping's summary line, stops it and parses its report.
pub fn finish_ping(mut ping: Background, timeout: Duration) -> PingReport {
    ping.wait_for_line("packets transmitted", timeout)
        .expect("ping finished");
    let finished = ping.stop(Duration::from_secs(2)).expect("ping stopped");
    PingReport::parse(&finished.stdout).expect("ping output")
}

/// What the client side saw of [`ping_sizes`]: its kernel's counters and tcpdump's view.
#[derive(Debug)]
pub struct ClientView {
    pub family: Family,
    /// Echo requests sent (and, per ping's own report, answered).
    pub sent: u64,
    /// The client kernel's counters over the pings.
    pub delta: Nstat,
    /// `tcpdump -vvv` on the client side over the pings.
    pub text: CaptureText,
}

/// Pings `family` at payload sizes 0, 56 and 1400 (with a data pattern), 5 each, 20 ms apart,
/// while counting and capturing on the client side. Checks each ping's own report: every request
/// answered, no corrupted payload, no bad checksum, the host default TTL / hop limit (64) where
/// ping shows it. [`ClientView::check`] checks the rest.
pub fn ping_sizes(pair: &NetnsPair, family: Family) -> ClientView {
    let before = Nstat::read(pair, Side::Client).unwrap();
    let capture = Capture::start_icmp(pair).unwrap();
    let count = 5u32;
    let mut sent = 0;
    for size in [0u16, 56, 1400] {
        let mut spec = PingSpec::new(family, count)
            .size(size)
            .interval(Duration::from_millis(20));
        if size >= 16 {
            spec = spec.pattern("a5c3");
        }
        let report = ping(pair, &spec).unwrap();
        assert_eq!(
            (report.transmitted, report.received),
            (u64::from(count), u64::from(count)),
            "{}",
            report.raw
        );
        assert_eq!(report.corrupted, 0, "ping saw corrupted payloads: {}", report.raw);
        assert_eq!(report.bad_checksum_lines, 0, "{}", report.raw);
        if size >= 16 {
            assert_eq!(
                report.ttls_seen.iter().copied().collect::<Vec<_>>(),
                vec![64],
                "{}",
                report.raw
            );
        }
        sent += u64::from(count);
    }
    let text = capture.stop().unwrap();
    let delta = Nstat::read(pair, Side::Client).unwrap().since(&before);
    ClientView {
        family,
        sent,
        delta,
        text,
    }
}

impl ClientView {
    /// The client kernel counted every reply and no checksum error; tcpdump saw every reply, none
    /// with a bad checksum, all with the host default TTL / hop limit and, for IPv4, DF clear.
    #[track_caller]
    pub fn check(&self) {
        let (replies, csum_errors) = counter_names(self.family);
        assert_eq!(
            self.delta.counter(replies).unwrap(),
            self.sent,
            "client kernel counted every reply"
        );
        assert_eq!(self.delta.counter(csum_errors).unwrap(), 0, "no checksum errors");
        assert!(
            self.text.bad_checksum_packets().is_empty(),
            "tcpdump: {:?}",
            self.text.bad_checksum_packets()
        );
        assert_eq!(self.text.echo_reply_count() as u64, self.sent, "{}", self.text.raw);
        assert_eq!(
            self.text.reply_ttls().into_iter().collect::<Vec<_>>(),
            vec![64],
            "TTL/hop limit of the host default"
        );
        if self.family == Family::V4 {
            // Linux parity: the kernel's echo replies have DF clear.
            for reply in self.text.echo_replies() {
                assert!(reply.contains("flags [none]"), "DF must be clear: {reply}");
            }
        }
    }
}
