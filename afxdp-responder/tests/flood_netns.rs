//! The load generator (`afxdp-responder flood`) against the responder, in network namespaces.
//!
//! The generator checks every reply byte for byte; the responder reports, per queue, what it
//! received, answered and dropped (by reason), the kernel's own drop counters, and where every
//! UMEM frame is at exit. These tests make the two reports agree exactly. No speed is asserted.
//! Needs root; `./run.sh test` runs these one at a time.

mod common;

use afxdp_lab::{NetnsPair, ResponderProcess, Side};
use common::{EXE, stop};
use responder_json::FloodReport;

/// What `flood --json` printed: its schema (`responder_json::FloodReport`) and the line itself.
#[derive(Debug)]
struct Flood {
    report: FloodReport,
    raw: String,
}

impl std::ops::Deref for Flood {
    type Target = FloodReport;
    fn deref(&self) -> &FloodReport {
        &self.report
    }
}

fn flood(pair: &NetnsPair, args: &[&str]) -> Flood {
    let out = pair
        .command_in(Side::Client, EXE)
        .args(["flood", "--iface", pair.client_if(), "--json"])
        .args(args)
        .output()
        .expect("run flood");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "flood {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = serde_json::from_str::<FloodReport>(stdout.trim())
        .unwrap_or_else(|e| panic!("flood --json printed no FloodReport ({e}): {stdout}"));
    Flood { report, raw: stdout }
}

/// A namespace pair with `queues` queues and the responder started on it with `responder_args`.
fn setup(queues: u32, responder_args: &[&str]) -> (NetnsPair, ResponderProcess) {
    let pair = common::pair(queues);
    let responder = common::start(&pair, responder_args);
    (pair, responder)
}

#[test]
fn every_reply_to_the_generator_is_correct_ipv4_and_ipv6() {
    let (pair, responder) = setup(1, &["--stats-interval", "0"]);
    let v4 = pair.ipv4(Side::Responder).to_string();
    let v6 = pair.ipv6(Side::Responder).to_string();
    let a = flood(
        &pair,
        &["--dst", &v4, "--count", "20000", "--rate", "40k", "--duration", "30"],
    );
    let b = flood(
        &pair,
        &[
            "--dst",
            &v6,
            "--count",
            "20000",
            "--rate",
            "40k",
            "--size",
            "600",
            "--duration",
            "30",
        ],
    );
    let exit = stop(responder);
    for f in [&a, &b] {
        assert_eq!(
            (f.sent, f.correct, f.wrong, f.lost),
            (20_000, 20_000, 0, 0),
            "{}",
            f.raw
        );
    }
    assert_eq!(exit.totals(), (40_000, 40_000, 0), "{}", exit.finished.stdout);
}

#[test]
fn requests_with_a_bad_checksum_are_dropped_counted_and_never_answered() {
    let (pair, responder) = setup(1, &["--stats-interval", "0"]);
    let v4 = pair.ipv4(Side::Responder).to_string();
    let f = flood(
        &pair,
        &[
            "--dst",
            &v4,
            "--count",
            "10000",
            "--rate",
            "40k",
            "--bad-checksum-every",
            "4",
        ],
    );
    let exit = stop(responder);
    assert_eq!((f.sent, f.sent_invalid), (10_000, 2_500), "{}", f.raw);
    assert_eq!(
        (f.correct, f.wrong, f.lost, f.replies),
        (7_500, 0, 0, 7_500),
        "{}",
        f.raw
    );
    let q = exit.queue(0).unwrap();
    assert_eq!((q.rx, q.tx, q.dropped), (10_000, 7_500, 2_500));
    assert_eq!(
        q.drops.iter().collect::<Vec<_>>(),
        [(&"icmp-checksum".to_string(), &2_500)]
    );
}

/// One million frames: valid and bad-checksum requests, small and full-size, IPv4 and IPv6,
/// with the responder checking its frame accounting after every loop turn. Every request is
/// accounted for: answered correctly, dropped by the responder for its checksum, or counted by
/// one side's kernel as dropped at a full ring (rings are sized so that this stays rare even on
/// a busy machine; the test reports how many). No reply is ever wrong, and every UMEM frame is
/// accounted for at exit.
#[test]
fn a_mixed_flood_of_a_million_frames_loses_none_and_every_drop_is_counted() {
    let rings = [
        "--rx-size",
        "8192",
        "--fill-size",
        "16384",
        "--tx-size",
        "4096",
        "--comp-size",
        "4096",
    ];
    let mut args = vec!["--stats-interval", "0", "--check-frames"];
    args.extend(rings);
    let (pair, responder) = setup(1, &args);
    let v4 = pair.ipv4(Side::Responder).to_string();
    let v6 = pair.ipv6(Side::Responder).to_string();
    let phases: [&[&str]; 3] = [
        &[
            "--dst",
            &v4,
            "--count",
            "450000",
            "--rate",
            "100k",
            "--bad-checksum-every",
            "10",
            "--duration",
            "120",
        ],
        &[
            "--dst",
            &v4,
            "--count",
            "150000",
            "--rate",
            "50k",
            "--size",
            "1500",
            "--duration",
            "120",
        ],
        &[
            "--dst",
            &v6,
            "--count",
            "400000",
            "--rate",
            "100k",
            "--bad-checksum-every",
            "5",
            "--duration",
            "120",
        ],
    ];
    let (mut sent, mut invalid, mut correct, mut generator_dropped) = (0, 0, 0, 0);
    for args in phases {
        let f = flood(&pair, args);
        assert_eq!(f.wrong, 0, "{args:?}: {}", f.raw);
        assert_eq!(f.correct + f.lost, f.sent - f.sent_invalid, "{args:?}: {}", f.raw);
        sent += f.sent;
        invalid += f.sent_invalid;
        correct += f.correct;
        generator_dropped += f.kernel_dropped;
    }
    assert_eq!((sent, invalid), (1_000_000, 45_000 + 80_000));
    let exit = stop(responder);
    let q = exit.queue(0).expect("queue 0 report");
    eprintln!(
        "mixed flood: {sent} sent ({invalid} with a bad checksum); responder rx {} tx {} dropped {} {:?}, its kernel dropped {}; generator: {correct} correct replies, its kernel dropped {generator_dropped}",
        q.rx, q.tx, q.dropped, q.drops, q.kernel.dropped
    );
    // The responder's side: every request reached the worker or was counted by its kernel.
    assert_eq!(exit.handled(), Some(sent), "every request was redirected to the socket");
    assert_eq!(q.rx + q.kernel.dropped, sent, "{}", exit.finished.stdout);
    // Every frame the worker took was answered or dropped for a counted reason.
    assert_eq!(q.rx, q.tx + q.dropped);
    let checksum_drops = q.drops.get("icmp-checksum").copied().unwrap_or(0);
    assert_eq!(q.dropped, checksum_drops, "only checksum drops: {:?}", q.drops);
    // The generator's side: every reply sent arrived correct, or was counted by its kernel.
    assert_eq!(correct + generator_dropped, q.tx, "{}", exit.finished.stdout);
    // Nothing was dropped by the responder that was valid, nothing invalid was answered.
    assert!(checksum_drops <= invalid && invalid - checksum_drops <= q.kernel.dropped);
}
