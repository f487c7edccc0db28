//! `afxdp-responder flood --inject live` in network namespaces: requests generated in the kernel
//! (`BPF_PROG_RUN` with live frames on `redirect-ebpf/flood_inject.c`) and redirected into the
//! responder's veth, every reply checked byte for byte by the same verifier as the AF_XDP
//! generator's. No speed is asserted. Needs root; `./run.sh test` runs these one at a time.

mod common;

use std::time::{Duration, Instant};

use afxdp_lab::{NetnsPair, Side};
use common::{EXE, stop};
use responder_json::FloodReport;

/// Runs `flood --json --inject live ARGS` from the client side and returns its report and line.
fn flood_live(pair: &NetnsPair, args: &[&str]) -> (FloodReport, String) {
    let out = pair
        .command_in(Side::Client, EXE)
        .args(["flood", "--iface", pair.client_if(), "--json", "--inject", "live"])
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
    (report, stdout)
}

/// Every live-injected request, IPv4 and ICMPv6, small and large, with and without deliberately
/// bad checksums, is answered correctly by the AF_XDP responder, whose own counters agree: it
/// received every request, dropped exactly the bad-checksum ones for their checksum (so the
/// program's incremental checksum of every other one was right) and answered the rest.
#[test]
fn live_injected_requests_all_get_a_correct_reply() {
    let pair = common::pair(1);
    let responder = common::start(&pair, &["--stats-interval", "0"]);
    let v4 = pair.ipv4(Side::Responder).to_string();
    let v6 = pair.ipv6(Side::Responder).to_string();
    let (a, a_raw) = flood_live(
        &pair,
        &["--dst", &v4, "--count", "20000", "--rate", "40k", "--duration", "30"],
    );
    let (b, b_raw) = flood_live(
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
    let (c, c_raw) = flood_live(
        &pair,
        &[
            "--dst",
            &v4,
            "--count",
            "10000",
            "--rate",
            "40k",
            "--size",
            "44",
            "--bad-checksum-every",
            "4",
            "--duration",
            "30",
        ],
    );
    let exit = stop(responder);
    eprintln!("{a_raw}{b_raw}{c_raw}");
    for (f, raw) in [(&a, &a_raw), (&b, &b_raw)] {
        assert_eq!(f.inject, "live", "{raw}");
        assert_eq!((f.sent, f.correct, f.wrong, f.lost), (20_000, 20_000, 0, 0), "{raw}");
        assert!(
            f.latency_us.p50 > 0.0,
            "round trips measured from the kernel's stamp: {raw}"
        );
        assert!(
            f.latency_us.max < 10_000_000.0,
            "stamp and receive clock agree (CLOCK_MONOTONIC): {raw}"
        );
    }
    assert_eq!((c.sent, c.sent_invalid), (10_000, 2_500), "{c_raw}");
    assert_eq!((c.correct, c.wrong, c.lost, c.replies), (7_500, 0, 0, 7_500), "{c_raw}");
    let q = exit.queue(0).expect("queue 0 report");
    assert_eq!(
        (q.rx, q.tx, q.dropped),
        (50_000, 47_500, 2_500),
        "{}",
        exit.finished.stdout
    );
    assert_eq!(
        q.drops.iter().collect::<Vec<_>>(),
        [(&"icmp-checksum".to_string(), &2_500)]
    );
}

/// A reply that is not exactly the one expected is counted as wrong, never as correct: here the
/// host's own stack answers (the responder veth has only an XDP_PASS program, which live frames
/// need) and a tc rule on its egress mirrors every reply back out, so each request gets the same
/// reply more than once. Every request is answered correctly once; every copy is wrong.
#[test]
fn duplicate_replies_to_live_requests_are_counted_wrong() {
    let pair = common::pair(1);
    let _pass = pair
        .attach_xdp_pass(Side::Responder)
        .expect("XDP_PASS on the responder veth");
    let tc = |args: &[&str]| {
        let out = pair.command_in(Side::Responder, "tc").args(args).output().expect("tc");
        assert!(
            out.status.success(),
            "tc {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let dev = pair.responder_if();
    tc(&["qdisc", "add", "dev", dev, "clsact"]);
    tc(&[
        "filter", "add", "dev", dev, "egress", "protocol", "ip", "u32", "match", "u32", "0", "0", "action", "mirred",
        "egress", "mirror", "dev", dev,
    ]);
    let v4 = pair.ipv4(Side::Responder).to_string();
    let (f, raw) = flood_live(
        &pair,
        &["--dst", &v4, "--count", "2000", "--rate", "1k", "--duration", "30"],
    );
    eprintln!("{raw}");
    // The host's stack may leave a few requests unanswered (its own limits); none is answered
    // correctly twice, and every answered one came with at least one copy.
    assert_eq!(f.sent, 2_000, "{raw}");
    assert_eq!(f.correct + f.lost, 2_000, "{raw}");
    assert!(f.correct >= 1_000, "{raw}");
    assert!(
        f.wrong >= f.correct,
        "every mirrored copy is a duplicate, counted wrong: {raw}"
    );
    assert_eq!(f.replies, f.correct + f.wrong, "{raw}");
    assert!(f.correct_pct < 51.0, "{raw}");
}

/// `--count` and `--duration` bound a live run: a count is met exactly at the maximum rate, and a
/// run without a count stops at its duration, having sent no more than the rate allows.
#[test]
fn live_runs_are_bounded_by_count_and_duration() {
    let pair = common::pair(1);
    let responder = common::start(&pair, &["--stats-interval", "0"]);
    let v6 = pair.ipv6(Side::Responder).to_string();
    let (f, raw) = flood_live(&pair, &["--dst", &v6, "--count", "5000", "--duration", "30"]);
    assert_eq!((f.sent, f.wrong), (5_000, 0), "{raw}");
    assert_eq!(f.correct + f.lost, 5_000, "{raw}");

    let started = Instant::now();
    let (g, raw) = flood_live(&pair, &["--dst", &v6, "--rate", "2000", "--duration", "0.5"]);
    let took = started.elapsed();
    assert!(g.sent > 0 && g.sent <= 1_001, "at most rate × duration + 1: {raw}");
    assert!(g.duration_s <= 0.6, "{raw}");
    assert!(took < Duration::from_secs(20), "the run ended ({took:?}): {raw}");
    assert!(g.generator_cpu_s >= 0.0, "{raw}");
    assert!(
        g.generator_wall_s >= g.duration_s && g.generator_wall_s < 20.0,
        "the generator's CPU figures cover the sending time and the drain: {raw}"
    );
    stop(responder);
}

/// Two queues, one live-injecting thread per queue on CPUs of its own: veth delivers each
/// thread's frames to the responder queue of the thread's CPU number, so with threads on the
/// first two CPUs each responder queue gets exactly its thread's requests, and every reply comes
/// back correct to the thread that sent the request.
#[test]
fn two_live_threads_feed_two_responder_queues() {
    let allowed = afxdp_lab::allowed_cpus().expect("allowed CPUs");
    let even = allowed.iter().find(|&&c| c % 2 == 0);
    let odd = allowed.iter().find(|&&c| c % 2 == 1);
    let (Some(&even), Some(&odd)) = (even, odd) else {
        panic!("this test needs an even and an odd CPU, has {allowed:?}");
    };
    let cpus = [even, odd];
    let pair = common::pair(2);
    let responder = common::start(&pair, &["--stats-interval", "0", "--queues", "0-1"]);
    let v4 = pair.ipv4(Side::Responder).to_string();
    let cpu_list = format!("{},{}", cpus[0], cpus[1]);
    let (f, raw) = flood_live(
        &pair,
        &[
            "--dst",
            &v4,
            "--count",
            "20000",
            "--rate",
            "20k",
            "--queues",
            "0,1",
            "--cpus",
            &cpu_list,
            "--duration",
            "30",
        ],
    );
    let exit = stop(responder);
    assert_eq!((f.sent, f.correct, f.wrong, f.lost), (20_000, 20_000, 0, 0), "{raw}");
    let (q0, q1) = (exit.queue(0).expect("queue 0"), exit.queue(1).expect("queue 1"));
    // veth picks the peer queue as the CPU number modulo the queue count: two CPUs of different
    // parity put each thread's 10 000 requests on a queue of their own.
    assert_eq!(q0.rx + q1.rx, 20_000, "{}", exit.finished.stdout);
    assert_eq!(
        (q0.rx, q1.rx),
        (10_000, 10_000),
        "each thread's requests on one queue: {}",
        exit.finished.stdout
    );
}
