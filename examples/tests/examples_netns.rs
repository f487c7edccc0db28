//! The two learning examples against real clients in a namespace pair, as
//! `afxdp-lab demo --example echo|rxdrop` runs them (docs/learn/): `xsk-echo` answers real `ping`
//! (IPv4 and IPv6, payloads 0, 56 and 1400) with replies that the client's kernel counts and
//! `tcpdump -vvv` finds correct, while the responder's own kernel sees no request;
//! `xsk-rxdrop` receives every frame and nothing is answered. Needs root; run one at a time.

use std::path::Path;
use std::time::Duration;

use afxdp_lab::example::{Example, ExampleProcess, demo};
use afxdp_lab::{Capture, Family, LabConfig, NetnsPair, Nstat, PingSpec, Side, ping, require_root};

const ECHO: &str = env!("CARGO_BIN_EXE_xsk-echo");
const RXDROP: &str = env!("CARGO_BIN_EXE_xsk-rxdrop");

fn need_root() {
    if let Err(e) = require_root() {
        panic!("these tests need root (run ./run.sh test): {e}");
    }
}

#[test]
fn echo_answers_every_ping_with_correct_replies() {
    need_root();
    let run = demo(Example::Echo, Path::new(ECHO), 3, false).expect("running the echo example");
    assert!(
        run.problems.is_empty(),
        "{:?}\n{}",
        run.problems,
        run.exit.finished.stdout
    );
    assert_eq!((run.sent, run.received), (18, 18));
    assert_eq!(run.client.counter("IcmpInEchoReps").unwrap(), 9);
    assert_eq!(run.client.counter("Icmp6InEchoReplies").unwrap(), 9);
    assert_eq!(run.client.counter("IcmpInCsumErrors").unwrap(), 0);
    assert_eq!(run.client.counter("Icmp6InCsumErrors").unwrap(), 0);
    assert_eq!(
        run.responder.counter("IcmpInEchos").unwrap(),
        0,
        "the kernel answered instead"
    );
    // tcpdump -vvv on the client verifies both checksums of every reply.
    assert_eq!(run.capture.echo_reply_count(), 18, "{}", run.capture.raw);
    assert!(run.capture.bad_checksum_packets().is_empty(), "{}", run.capture.raw);
    assert_eq!(run.capture.reply_ttls().into_iter().collect::<Vec<_>>(), vec![64]);
    assert_eq!(run.exit.number("replied"), Some(18));
    assert_eq!(run.exit.number("unaccounted"), Some(0));
    assert!(run.exit.finished.status.success());
}

#[test]
fn rxdrop_receives_every_ping_and_answers_none() {
    need_root();
    let run = demo(Example::Rxdrop, Path::new(RXDROP), 2, false).expect("running the rxdrop example");
    assert!(
        run.problems.is_empty(),
        "{:?}\n{}",
        run.problems,
        run.exit.finished.stdout
    );
    assert!(run.sent >= 12);
    assert_eq!(run.received, 0);
    assert_eq!(
        run.exit.number("received"),
        Some(run.sent as i64),
        "every request, nothing else"
    );
    assert_eq!(run.responder.counter("IcmpInEchos").unwrap(), 0);
    assert_eq!(run.exit.number("unaccounted"), Some(0));
}

#[test]
fn echo_stops_by_itself_after_count_replies() {
    need_root();
    let pair = NetnsPair::create(&LabConfig {
        queues: 1,
        ..LabConfig::default()
    })
    .expect("creating the namespace pair");
    let process = ExampleProcess::start(&pair, Path::new(ECHO), &["--count", "4"]).expect("starting xsk-echo");
    assert_eq!(process.ready()["mode"], "copy", "veth has copy mode only");
    let before = Nstat::read(&pair, Side::Responder).unwrap();
    let capture = Capture::start_icmp(&pair).unwrap();
    let first = ping(&pair, &PingSpec::new(Family::V4, 4).interval(Duration::from_millis(50))).unwrap();
    // The example has exited: these go to the kernel again, which answers them itself.
    std::thread::sleep(Duration::from_millis(300));
    let after = ping(&pair, &PingSpec::new(Family::V4, 2).interval(Duration::from_millis(50))).unwrap();
    let text = capture.stop().unwrap();
    let kernel = Nstat::read(&pair, Side::Responder).unwrap().since(&before);
    let exit = process.stop().unwrap();
    assert_eq!((first.received, after.received), (4, 2));
    assert_eq!(
        kernel.counter("IcmpInEchos").unwrap(),
        2,
        "the kernel answered only the last two"
    );
    assert_eq!(exit.number("replied"), Some(4));
    assert!(exit.finished.status.success(), "{:?}", exit.finished);
    assert!(text.bad_checksum_packets().is_empty());
}

#[test]
fn bad_input_is_one_line_and_exit_status_1() {
    for (exe, args) in [
        (ECHO, &["--queue", "x", "lo"][..]),
        (RXDROP, &["--count"][..]),
        (ECHO, &["afxr-no-such-if"][..]),
        (RXDROP, &["afxr-no-such-if"][..]),
    ] {
        let out = std::process::Command::new(exe).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{exe} {args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{exe} {args:?}: {stderr}");
        assert!(stderr.contains("(see --help)"), "{stderr}");
    }
}
