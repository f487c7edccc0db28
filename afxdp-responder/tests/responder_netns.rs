//! The real responder binary in a network namespace, real clients in the peer namespace.
//!
//! Nothing here trusts ping's exit code alone: every test also checks the client kernel's own
//! counters (`IcmpInEchoReps`, `IcmpInCsumErrors`, ...), what `tcpdump -vvv` on the client side
//! says about each reply, and the responder's own per-queue report (so a reply from the kernel
//! cannot pass for one from the responder). Needs root; `./run.sh test` runs these one at a time.

mod common;

use std::process::Command;
use std::time::Duration;

use afxdp_lab::{Background, Family, NetnsPair, Nstat, PingSpec, ResponderExit, Side, ping};
use common::{
    EXE, assert_nothing_attached, counter_names, link_details, pair, ping_all_answered, ping_sizes, start, stop, sysctl,
};
use responder_json::Event;

/// Pings `family` at payload sizes 0, 56 and 1400 (with a data pattern), 5 each, and
/// checks everything the client side can see.
fn ping_sizes_and_check(family: Family) {
    let pair = pair(1);
    let responder = start(&pair, &["--queues", "0", "--stats-interval", "0"]);
    let client = ping_sizes(&pair, family);
    let exit = stop(responder);
    client.check();
    // The responder, not the kernel, sent every reply.
    let sent = client.sent;
    assert_eq!(exit.totals(), (sent, sent, 0), "{}", exit.finished.stdout);
    assert_eq!(exit.handled(), Some(sent));
}

/// Starts the responder with `args`, floods it with `n` `family` pings (bounded by `deadline`) and
/// checks that every one was answered, by the responder, with nothing wrong on the client side;
/// [`stop`] checks that every UMEM frame is accounted for. Returns the responder's exit report.
fn flood_and_check(pair: &NetnsPair, family: Family, n: u32, deadline: Duration, args: &[&str]) -> ResponderExit {
    let responder = start(pair, args);
    let before = Nstat::read(pair, Side::Client).unwrap();
    let report = ping(pair, &PingSpec::new(family, n).flood().quiet().deadline(deadline)).unwrap();
    let delta = Nstat::read(pair, Side::Client).unwrap().since(&before);
    let exit = stop(responder);
    assert_eq!(
        (report.transmitted, report.received),
        (u64::from(n), u64::from(n)),
        "{args:?}: {}",
        report.raw
    );
    let (replies, csum_errors) = counter_names(family);
    assert_eq!(delta.counter(replies).unwrap(), u64::from(n), "{args:?}");
    assert_eq!(delta.counter(csum_errors).unwrap(), 0, "{args:?}");
    assert_eq!(
        exit.totals(),
        (u64::from(n), u64::from(n), 0),
        "{args:?}: {}",
        exit.finished.stdout
    );
    exit
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
    assert_eq!(
        (responder.ready().ttl, responder.ready().hop_limit),
        (77, 99),
        "{:?}",
        responder.ready()
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
    let queues = &responder.ready().queues;
    assert_eq!(queues.len(), 1, "{queues:?}");
    assert_eq!((queues[0].queue, queues[0].mode.as_str()), (0, "copy"), "{queues:?}");
    // veth has no zero-copy: auto says why it fell back.
    assert!(queues[0].zero_copy_refused.is_some(), "{queues:?}");
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
    assert_nothing_attached(&pair);
}

#[test]
fn a_flood_of_100000_pings_is_answered_without_losing_a_frame() {
    let pair = pair(1);
    flood_and_check(
        &pair,
        Family::V4,
        100_000,
        Duration::from_secs(120),
        &["--stats-interval", "0"],
    );
    // stop() already asserted that every UMEM frame is accounted for.
}

#[test]
fn every_wait_mode_answers_a_ping_flood_with_every_frame_accounted_for() {
    // The three ways a worker can wait for traffic (`--wait`), plus the adaptive spin with its
    // shortest window (it then mostly sleeps) and the kernel's busy polling (`--busy-poll`): each
    // must answer every request of a flood, with the frame accounting checked after every turn.
    let pair = pair(1);
    let modes: [&[&str]; 5] = [
        &["--wait", "adaptive"],
        &["--wait", "adaptive", "--spin-window-us", "1"],
        &["--wait", "sleep"],
        &["--wait", "spin"],
        &["--busy-poll"],
    ];
    for mode in modes {
        let mut args = vec!["--stats-interval", "0", "--check-frames"];
        args.extend_from_slice(mode);
        let exit = flood_and_check(&pair, Family::V6, 20_000, Duration::from_secs(60), &args);
        // Each mode waits the way it says (the `queue 0 waits:` line).
        let waits = exit.queue(0).unwrap().waits;
        assert!(waits.kicks > 0, "{mode:?}: {waits:?}");
        assert!(waits.spins_caught <= waits.spins, "{mode:?}: {waits:?}");
        match mode {
            ["--wait", "sleep"] => assert!(waits.spins == 0 && waits.sleeps > 0, "{mode:?}: {waits:?}"),
            ["--wait", "spin"] => assert!(waits.spins == 0 && waits.sleeps == 0, "{mode:?}: {waits:?}"),
            // Every wait is a busy-poll window (recvfrom nudges, counted as kicks).
            ["--busy-poll"] => assert!(waits.spins > 0 && waits.kicks >= waits.spins, "{mode:?}: {waits:?}"),
            // Adaptive starts by sleeping; whether later spins catch anything depends on ping's gaps.
            _ => assert!(waits.sleeps > 0, "{mode:?}: {waits:?}"),
        }
    }
}

/// `--queues all` serves every queue of the interface; serving fewer says, at start, which ones
/// are left to the kernel and how to fix it.
#[test]
fn queues_all_serves_every_queue_and_fewer_are_warned_about() {
    let pair = pair(2);
    let responder = start(&pair, &["--queues", "0", "--stats-interval", "0"]);
    let notices = responder.notices();
    assert!(
        notices
            .iter()
            .any(|n| n.contains("1 of them are not served (1)") && n.contains("--queues all")),
        "{notices:?}"
    );
    stop(responder);

    let responder = start(&pair, &["--queues", "all", "--stats-interval", "0"]);
    let served: Vec<u32> = responder.ready().queues.iter().map(|q| q.queue).collect();
    assert_eq!(served, [0, 1]);
    assert!(
        !responder.notices().iter().any(|n| n.contains("not served")),
        "{:?}",
        responder.notices()
    );
    stop(responder);
}

/// Under systemd with `Type=notify`, readiness is `READY=1` on `$NOTIFY_SOCKET`, sent when the
/// responder serves every queue (with its `ready` event), and `STOPPING=1` when it stops.
#[test]
fn systemd_readiness_is_notified_with_the_ready_event() {
    let pair = pair(1);
    let path = std::env::temp_dir().join(format!("afxdp-notify-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let socket = std::os::unix::net::UnixDatagram::bind(&path).expect("binding the notify socket");
    socket.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut cmd = pair.command_in(Side::Responder, EXE);
    cmd.args([
        "--iface",
        pair.responder_if(),
        "--output",
        "json",
        "--stats-interval",
        "0",
    ])
    .env("NOTIFY_SOCKET", &path);
    let mut process = Background::spawn(cmd).expect("starting the responder");
    let mut buf = [0u8; 64];
    let n = socket.recv(&mut buf).expect("READY=1 within 20 s");
    assert_eq!(&buf[..n], b"READY=1");
    // By then the ready event is out, and pings are answered.
    process
        .wait_for("the ready event", Duration::from_secs(5), |l| {
            matches!(Event::parse_line(l), Some(Event::Ready(_)))
        })
        .expect("a ready event");
    ping_all_answered(&pair, Family::V4, 2);
    let finished = process.stop(Duration::from_secs(10)).expect("stopping");
    let n = socket.recv(&mut buf).expect("STOPPING=1");
    assert_eq!(&buf[..n], b"STOPPING=1");
    let _ = std::fs::remove_file(&path);
    assert!(finished.status.success(), "{}", finished.stderr);
    assert_eq!(ResponderExit::new(finished).totals(), (2, 2, 0));
}

/// GNU `timeout -s INT` signals the child and its process group, and a terminal's Ctrl-C reaches the
/// whole foreground group: one stop request often arrives as two signals at once. They must give
/// the orderly stop (detach, drain, summary, exit 0), not the "second signal: exit now" path.
#[test]
fn two_signals_at_once_are_one_orderly_stop() {
    let pair = pair(1);
    let responder = start(&pair, &["--stats-interval", "0"]);
    ping_all_answered(&pair, Family::V4, 3);
    let pid = nix::unistd::Pid::from_raw(responder.pid() as i32);
    for signal in [nix::sys::signal::SIGINT, nix::sys::signal::SIGTERM] {
        nix::sys::signal::kill(pid, signal).expect("signalling the responder");
    }
    // `stop` sends one more SIGINT, still within the same second, and checks the exit status (0),
    // the summary and the frame census.
    let exit = stop(responder);
    assert_eq!(exit.totals(), (3, 3, 0), "{}", exit.finished.stdout);
    assert_nothing_attached(&pair);
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
    assert_nothing_attached(&pair);
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
    assert_nothing_attached(&pair);
    let before = Nstat::read(&pair, Side::Responder).unwrap();
    ping_all_answered(&pair, Family::V4, 3);
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
        (
            vec!["--iface", &iface, "--queues", "2-1"],
            "use all, or a list like 0-3",
        ),
        (vec!["--iface", &iface, "--frame-size", "1000"], "use 2048 or 4096"),
        (vec!["--iface", &iface, "--rx-size", "1000"], "power of two"),
        (
            vec!["--iface", &iface, "--mode", "turbo"],
            "use auto, zero-copy or copy",
        ),
        (vec!["--queues", "0"], "--iface"),
        (
            vec!["--iface", &iface, "--wait", "sometimes"],
            "possible values: adaptive, sleep, spin",
        ),
        (
            // The old name of the user-space spin says what to use now.
            vec!["--iface", &iface, "--wait", "busy"],
            "--wait busy was renamed: use --wait spin",
        ),
        (
            vec!["--iface", &iface, "--busy-poll", "--busy-poll-us", "0"],
            "not in 1..=10000",
        ),
        (
            vec!["--iface", &iface, "--wait", "sleep", "--busy-poll"],
            "cannot be used with",
        ),
        (vec!["--iface", &iface, "--spin-window-us", "0"], "not in 1..=10000"),
        (
            vec!["--iface", &iface, "--metrics-addr", "localhost"],
            "is not ADDR:PORT: use e.g. 127.0.0.1:9417",
        ),
        (
            // Not an address of the responder's namespace (nothing is sent: bind fails).
            vec!["--iface", &iface, "--metrics-addr", "198.18.255.254:9417"],
            "use an address of this host",
        ),
    ];
    for (args, expected) in cases {
        let (code, stderr) = run(&args);
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: one line, got {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    assert_nothing_attached(&pair);
}

/// Reads `/sys/class/net/<responder veth>/<name>` inside the responder's namespace.
fn napi_sysfs(pair: &NetnsPair, name: &str) -> String {
    let out = pair
        .command_in(Side::Responder, "cat")
        .arg(format!("/sys/class/net/{}/{name}", pair.responder_if()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `--busy-poll` is the kernel's preferred busy polling: the sockets hold SO_PREFER_BUSY_POLL,
/// SO_BUSY_POLL and SO_BUSY_POLL_BUDGET (read back with getsockopt and reported in the ready
/// event), the interface's napi_defer_hard_irqs and gro_flush_timeout are tuned while it runs
/// and restored after SIGINT, and real pings and a flood verified byte for byte are answered.
#[test]
fn busy_poll_tunes_socket_and_interface_answers_and_restores_the_interface() {
    let pair = pair(1);
    // Values that differ from the tuned ones, so a restore is visible.
    for (name, value) in [("napi_defer_hard_irqs", "1"), ("gro_flush_timeout", "12345")] {
        let path = format!("/sys/class/net/{}/{name}", pair.responder_if());
        let ok = pair
            .command_in(Side::Responder, "sh")
            .args(["-c", &format!("echo {value} > {path}")])
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let args = [
        "--stats-interval",
        "0",
        "--check-frames",
        "--busy-poll",
        "--busy-poll-us",
        "30",
        "--batch",
        "32",
    ];
    let responder = start(&pair, &args);
    let queues = &responder.ready().queues;
    let bp = queues[0]
        .busy_poll
        .expect("the ready event reports the socket's busy-poll options");
    assert_eq!((bp.prefer, bp.usecs), (true, 30), "{queues:?}");
    // Kernels that cannot read SO_BUSY_POLL_BUDGET back report 0 (its setsockopt succeeded).
    assert!(bp.budget == 32 || bp.budget == 0, "{queues:?}");
    assert!(
        responder.ready().capabilities.starts_with("CAP_NET_ADMIN"),
        "{:?}",
        responder.ready().capabilities
    );
    assert_eq!(napi_sysfs(&pair, "napi_defer_hard_irqs"), "2");
    assert_eq!(napi_sysfs(&pair, "gro_flush_timeout"), "200000");
    // Real pings, both families, then a bounded flood whose every reply is checked byte for byte.
    let v4 = ping_all_answered(&pair, Family::V4, 5);
    let v6 = ping_all_answered(&pair, Family::V6, 5);
    let load = afxdp_lab::bench::generator::Load {
        family: Family::V4,
        ip_size: 64,
        rate: afxdp_lab::bench::generator::Rate::Pps(20_000),
        duration: Duration::from_secs(1),
        queues: 1,
        generator: afxdp_lab::bench::generator::Generator::Xsk,
    };
    let flood = afxdp_lab::bench::generator::run_flood(&pair, std::path::Path::new(EXE), &load).unwrap();
    // stop() sends SIGINT and checks the frame census.
    let exit = stop(responder);
    assert_eq!(flood.wrong, 0, "{flood:?}");
    assert!(
        flood.correct > 0 && flood.correct + flood.lost == flood.sent - flood.sent_invalid,
        "{flood:?}"
    );
    let (rx, tx, _) = exit.totals();
    assert!(
        rx >= v4.received + v6.received + flood.correct,
        "{}",
        exit.finished.stdout
    );
    assert_eq!(rx, tx, "{}", exit.finished.stdout);
    assert_eq!(napi_sysfs(&pair, "napi_defer_hard_irqs"), "1", "restored after SIGINT");
    assert_eq!(napi_sysfs(&pair, "gro_flush_timeout"), "12345", "restored after SIGINT");
}
