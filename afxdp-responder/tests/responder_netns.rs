//! The real responder binary in a network namespace, real clients in the peer namespace.
//!
//! Nothing here trusts ping's exit code alone: every test also checks the client kernel's own
//! counters (`IcmpInEchoReps`, `IcmpInCsumErrors`, ...), what `tcpdump -vvv` on the client side
//! says about each reply, and the responder's own per-queue report (so a reply from the kernel
//! cannot pass for one from the responder). Needs root; `./run.sh test` runs these one at a time.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use afxdp_responder::lab::{
    Capture, Family, LabConfig, NetnsPair, Nstat, PingSpec, ResponderExit, ResponderProcess, Side, ping, require_root,
};

const EXE: &str = env!("CARGO_BIN_EXE_afxdp-responder");

fn pair(queues: u32) -> NetnsPair {
    if let Err(e) = require_root() {
        panic!("these tests need root (run ./run.sh test): {e}");
    }
    NetnsPair::create(&LabConfig {
        queues,
        ..LabConfig::default()
    })
    .expect("creating the namespace pair")
}

fn start(pair: &NetnsPair, args: &[&str]) -> ResponderProcess {
    ResponderProcess::start(pair, Path::new(EXE), args).expect("starting the responder")
}

fn stop(responder: ResponderProcess) -> ResponderExit {
    let exit = responder.stop().expect("stopping the responder");
    assert!(
        exit.finished.status.success(),
        "responder failed: {:?}\n{}",
        exit.finished.status,
        exit.finished.stderr
    );
    for q in &exit.queues {
        assert!(q.frames_accounted(), "queue {}: {}", q.queue, q.frames);
    }
    exit
}

/// Runs `ip -d link show` for the responder's interface (to see whether XDP is attached).
fn link_details(pair: &NetnsPair) -> String {
    let out = pair
        .command_in(Side::Responder, "ip")
        .args(["-d", "link", "show", "dev", pair.responder_if()])
        .output()
        .expect("ip link show");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sysctl(pair: &NetnsPair, key: &str, value: &str) {
    let status = pair
        .command_in(Side::Responder, "sysctl")
        .args(["-qw", &format!("{key}={value}")])
        .status()
        .expect("sysctl");
    assert!(status.success(), "sysctl {key}={value}");
}

/// Pings `family` at payload sizes 0, 56 and 1400 (with a data pattern), `count` each, and
/// checks everything the client side can see.
fn ping_sizes_and_check(family: Family) {
    let pair = pair(1);
    let responder = start(&pair, &["--queues", "0", "--stats-interval", "0"]);
    let before = Nstat::read(&pair, Side::Client).unwrap();
    let capture = Capture::start_icmp(&pair).unwrap();
    let count = 5u32;
    let mut sent = 0;
    for size in [0u16, 56, 1400] {
        let mut spec = PingSpec::new(family, count)
            .size(size)
            .interval(Duration::from_millis(20));
        if size >= 16 {
            spec = spec.pattern("a5c3");
        }
        let report = ping(&pair, &spec).unwrap();
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
    let delta = Nstat::read(&pair, Side::Client).unwrap().since(&before);
    let exit = stop(responder);

    let (replies, csum_errors) = match family {
        Family::V4 => ("IcmpInEchoReps", "IcmpInCsumErrors"),
        Family::V6 => ("Icmp6InEchoReplies", "Icmp6InCsumErrors"),
    };
    assert_eq!(
        delta.counter(replies).unwrap(),
        sent,
        "client kernel counted every reply"
    );
    assert_eq!(delta.counter(csum_errors).unwrap(), 0, "no checksum errors");
    assert!(
        text.bad_checksum_packets().is_empty(),
        "tcpdump: {:?}",
        text.bad_checksum_packets()
    );
    assert_eq!(text.echo_reply_count() as u64, sent, "{}", text.raw);
    assert_eq!(
        text.reply_ttls().into_iter().collect::<Vec<_>>(),
        vec![64],
        "TTL/hop limit of the host default"
    );
    if family == Family::V4 {
        // Linux parity: the kernel's echo replies have DF clear.
        for reply in text.echo_replies() {
            assert!(reply.contains("flags [none]"), "DF must be clear: {reply}");
        }
    }
    // The responder, not the kernel, sent every reply.
    assert_eq!(exit.totals(), (sent, sent, 0), "{}", exit.finished.stdout);
    assert_eq!(exit.redirected, Some(sent));
}

#[test]
fn ipv4_pings_of_every_size_are_answered_correctly_by_the_responder() {
    ping_sizes_and_check(Family::V4);
}

#[test]
fn ipv6_pings_of_every_size_are_answered_correctly_by_the_responder() {
    ping_sizes_and_check(Family::V6);
}

#[test]
fn two_queues_both_answer_one_flow_each() {
    let pair = pair(2);
    let responder = start(&pair, &["--queues", "0-1", "--stats-interval", "0"]);
    let mut expected = [0u64; 2];
    for (queue, family, count) in [
        (0u32, Family::V4, 7u32),
        (1, Family::V4, 5),
        (1, Family::V6, 4),
        (0, Family::V6, 3),
    ] {
        let cpu = pair.steer_client_queue(queue).unwrap();
        let spec = PingSpec::new(family, count)
            .interval(Duration::from_millis(20))
            .pinned_cpu(cpu);
        let report = ping(&pair, &spec).unwrap();
        assert_eq!(report.received, u64::from(count), "{}", report.raw);
        expected[queue as usize] += u64::from(count);
    }
    let exit = stop(responder);
    for q in 0..2u32 {
        let totals = exit
            .queue(q)
            .unwrap_or_else(|| panic!("queue {q} missing: {}", exit.finished.stdout));
        assert_eq!(
            (totals.rx, totals.tx),
            (expected[q as usize], expected[q as usize]),
            "queue {q}"
        );
        assert_eq!(totals.mode, "copy");
    }
}

#[test]
fn reply_ttl_and_hop_limit_follow_the_host_settings() {
    let pair = pair(1);
    sysctl(&pair, "net.ipv4.ip_default_ttl", "77");
    sysctl(&pair, &format!("net.ipv6.conf.{}.hop_limit", pair.responder_if()), "99");
    let responder = start(&pair, &["--stats-interval", "0"]);
    assert!(
        responder.startup_output().contains("TTL 77 and hop limit 99"),
        "{}",
        responder.startup_output()
    );
    let v4 = ping(&pair, &PingSpec::new(Family::V4, 2).interval(Duration::from_millis(20))).unwrap();
    let v6 = ping(&pair, &PingSpec::new(Family::V6, 2).interval(Duration::from_millis(20))).unwrap();
    let exit = stop(responder);
    assert_eq!(v4.ttls_seen.into_iter().collect::<Vec<_>>(), vec![77], "{}", v4.raw);
    assert_eq!(v6.ttls_seen.into_iter().collect::<Vec<_>>(), vec![99], "{}", v6.raw);
    assert_eq!(exit.totals().1, 4);
}

#[test]
fn veth_gets_copy_mode_and_forced_zero_copy_is_refused_with_advice() {
    let pair = pair(1);
    let responder = start(&pair, &["--mode", "auto", "--stats-interval", "0"]);
    assert!(
        responder.startup_output().contains("queue 0: cpu"),
        "{}",
        responder.startup_output()
    );
    assert!(
        responder.startup_output().contains("copy mode"),
        "{}",
        responder.startup_output()
    );
    stop(responder);

    let out = pair
        .command_in(Side::Responder, EXE)
        .args(["--iface", pair.responder_if(), "--mode", "zero-copy"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("driver veth") && stderr.contains("--mode auto"),
        "{stderr}"
    );
    assert!(
        !link_details(&pair).contains("prog/xdp"),
        "nothing left attached: {}",
        link_details(&pair)
    );
}

#[test]
fn a_flood_of_100000_pings_is_answered_without_losing_a_frame() {
    let pair = pair(1);
    let responder = start(&pair, &["--stats-interval", "0"]);
    let before = Nstat::read(&pair, Side::Client).unwrap();
    let n = 100_000u32;
    let report = ping(
        &pair,
        &PingSpec::new(Family::V4, n)
            .flood()
            .quiet()
            .deadline(Duration::from_secs(120)),
    )
    .unwrap();
    let delta = Nstat::read(&pair, Side::Client).unwrap().since(&before);
    let exit = stop(responder);
    assert_eq!(
        (report.transmitted, report.received),
        (u64::from(n), u64::from(n)),
        "{}",
        report.raw
    );
    assert_eq!(delta.counter("IcmpInEchoReps").unwrap(), u64::from(n));
    assert_eq!(delta.counter("IcmpInCsumErrors").unwrap(), 0);
    assert_eq!(
        exit.totals(),
        (u64::from(n), u64::from(n), 0),
        "{}",
        exit.finished.stdout
    );
    // stop() already asserted that every UMEM frame is accounted for.
}

#[test]
fn every_wait_mode_answers_a_ping_flood_with_every_frame_accounted_for() {
    // The three ways a worker can wait for traffic (`--wait`), plus the adaptive spin with its
    // shortest window (it then mostly sleeps) and the `--busy-poll` alias: each must answer every
    // request of a flood, with the frame accounting checked after every loop turn.
    let pair = pair(1);
    let n = 20_000u32;
    let modes: [&[&str]; 5] = [
        &["--wait", "adaptive"],
        &["--wait", "adaptive", "--spin-window-us", "1"],
        &["--wait", "sleep"],
        &["--wait", "busy"],
        &["--busy-poll"],
    ];
    for mode in modes {
        let mut args = vec!["--stats-interval", "0", "--check-frames"];
        args.extend_from_slice(mode);
        let responder = start(&pair, &args);
        let before = Nstat::read(&pair, Side::Client).unwrap();
        let report = ping(
            &pair,
            &PingSpec::new(Family::V6, n)
                .flood()
                .quiet()
                .deadline(Duration::from_secs(60)),
        )
        .unwrap();
        let delta = Nstat::read(&pair, Side::Client).unwrap().since(&before);
        let exit = stop(responder);
        assert_eq!(
            (report.transmitted, report.received),
            (u64::from(n), u64::from(n)),
            "{mode:?}: {}",
            report.raw
        );
        assert_eq!(delta.counter("Icmp6InEchoReplies").unwrap(), u64::from(n), "{mode:?}");
        assert_eq!(delta.counter("Icmp6InCsumErrors").unwrap(), 0, "{mode:?}");
        assert_eq!(
            exit.totals(),
            (u64::from(n), u64::from(n), 0),
            "{mode:?}: {}",
            exit.finished.stdout
        );
        // Each mode waits the way it says (the `queue 0 waits:` line).
        let waits = exit.queue(0).unwrap().waits;
        assert!(waits.kicks > 0, "{mode:?}: {waits:?}");
        assert!(waits.spins_caught <= waits.spins, "{mode:?}: {waits:?}");
        match mode {
            ["--wait", "sleep"] => assert!(waits.spins == 0 && waits.sleeps > 0, "{mode:?}: {waits:?}"),
            ["--wait", "busy"] | ["--busy-poll"] => {
                assert!(waits.spins == 0 && waits.sleeps == 0, "{mode:?}: {waits:?}")
            }
            // Adaptive starts by sleeping; whether later spins catch anything depends on ping's gaps.
            _ => assert!(waits.sleeps > 0, "{mode:?}: {waits:?}"),
        }
    }
}

#[test]
fn after_exit_or_sigkill_nothing_is_attached_and_the_kernel_answers_again() {
    let pair = pair(1);
    // Clean exit.
    let responder = start(&pair, &["--stats-interval", "0"]);
    assert!(
        link_details(&pair).contains("prog/xdp"),
        "attached while running: {}",
        link_details(&pair)
    );
    stop(responder);
    assert!(!link_details(&pair).contains("prog/xdp"), "{}", link_details(&pair));
    // SIGKILL: the bpf_link dies with the process.
    let mut responder = start(&pair, &["--stats-interval", "0"]);
    let status = Command::new("kill")
        .args(["-KILL", &responder.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for _ in 0..100 {
        if !responder.is_running() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!responder.is_running());
    assert!(!link_details(&pair).contains("prog/xdp"), "{}", link_details(&pair));
    let before = Nstat::read(&pair, Side::Responder).unwrap();
    let report = ping(&pair, &PingSpec::new(Family::V4, 3).interval(Duration::from_millis(20))).unwrap();
    assert_eq!(report.received, 3, "{}", report.raw);
    let delta = Nstat::read(&pair, Side::Responder).unwrap().since(&before);
    assert_eq!(
        delta.counter("IcmpOutEchoReps").unwrap(),
        3,
        "the kernel itself answered"
    );
}

#[test]
fn bad_start_up_input_gives_one_line_and_a_non_zero_exit() {
    let pair = pair(2);
    let run = |args: &[&str]| {
        let out = pair.command_in(Side::Responder, EXE).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        )
    };
    let iface = pair.responder_if().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--iface", &iface, "--queues", "0-2"], "has 2 queue(s)"),
        (vec!["--iface", "afxr-nonexist0"], "does not exist"),
        (vec!["--iface", &iface, "--queues", "2-1"], "use a list like 0-3"),
        (vec!["--iface", &iface, "--frame-size", "1000"], "use 2048 or 4096"),
        (vec!["--iface", &iface, "--rx-size", "1000"], "power of two"),
        (
            vec!["--iface", &iface, "--mode", "turbo"],
            "use auto, zero-copy or copy",
        ),
        (vec!["--queues", "0"], "--iface"),
        (
            vec!["--iface", &iface, "--wait", "sometimes"],
            "possible values: adaptive, sleep, busy",
        ),
        (
            vec!["--iface", &iface, "--wait", "sleep", "--busy-poll"],
            "cannot be used with",
        ),
        (vec!["--iface", &iface, "--spin-window-us", "0"], "not in 1..=10000"),
    ];
    for (args, expected) in cases {
        let (code, stderr) = run(&args);
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: one line, got {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    assert!(!link_details(&pair).contains("prog/xdp"));
}
