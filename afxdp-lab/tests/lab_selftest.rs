//! Tests of the lab itself, against the real kernel: no responder involved, the kernel's own stack
//! answers. If these fail, a failing responder test says nothing about the responder.
//!
//! Root is required: without it every test panics with one clear line (never a silent pass).
//! Each test builds its own uniquely named pair, so they may run in parallel.

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use afxdp_lab::{
    Background, Capture, Family, LabConfig, LabError, NetnsPair, Nstat, PingSpec, Side, allowed_cpus, ping,
    require_root,
};

fn root() {
    if let Err(err) = require_root() {
        panic!("{err}");
    }
}

fn pair() -> NetnsPair {
    root();
    NetnsPair::create(&LabConfig::default()).unwrap_or_else(|err| panic!("creating the lab: {err}"))
}

/// `ip` as a test would type it, with stdout returned.
fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn namespaces() -> BTreeSet<String> {
    ip(&["netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect()
}

/// Every interface name in the root namespace and in every named namespace.
fn interfaces_everywhere() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut collect = |out: String| {
        for line in out.lines() {
            // "7: afxr1f3a-0r@if6: <BROADCAST,..."
            if let Some(name) = line.split(": ").nth(1) {
                names.insert(name.split('@').next().unwrap_or(name).to_string());
            }
        }
    };
    collect(ip(&["-o", "link", "show"]));
    for ns in namespaces() {
        // A namespace may vanish between the listing and this look: ignore failures.
        if let Ok(out) = Command::new("ip").args(["-n", &ns, "-o", "link", "show"]).output() {
            collect(String::from_utf8_lossy(&out.stdout).into_owned());
        }
    }
    names
}

struct Names {
    namespaces: [String; 2],
    interfaces: [String; 2],
}

fn names_of(pair: &NetnsPair) -> Names {
    Names {
        namespaces: [pair.responder_ns().into(), pair.client_ns().into()],
        interfaces: [pair.responder_if().into(), pair.client_if().into()],
    }
}

fn assert_gone(names: &Names) {
    let namespaces = namespaces();
    let interfaces = interfaces_everywhere();
    for ns in &names.namespaces {
        assert!(!namespaces.contains(ns), "namespace {ns} is still there");
    }
    for dev in &names.interfaces {
        assert!(!interfaces.contains(dev), "interface {dev} is still there");
    }
}

#[test]
fn pair_is_created_and_removed_on_drop() {
    let pair = pair();
    let names = names_of(&pair);
    let namespaces = namespaces();
    for ns in &names.namespaces {
        assert!(namespaces.contains(ns), "namespace {ns} missing from `ip netns list`");
    }
    let resp = ip(&[
        "-n",
        pair.responder_ns(),
        "-o",
        "link",
        "show",
        "dev",
        pair.responder_if(),
    ]);
    assert!(
        resp.contains("LOWER_UP") && resp.contains("02:af:00:00:00:01"),
        "{resp}"
    );
    let client = ip(&["-n", pair.client_ns(), "-o", "addr", "show", "dev", pair.client_if()]);
    assert!(client.contains("198.18.0.2/24"), "{client}");
    assert!(client.contains("2001:db8:0:1::2/64"), "{client}");
    assert!(!client.contains("tentative"), "IPv6 must be usable at once: {client}");
    drop(pair);
    assert_gone(&names);
}

#[test]
fn pair_is_removed_when_the_scope_panics() {
    root();
    let mut names = None;
    let result = catch_unwind(AssertUnwindSafe(|| {
        let pair = NetnsPair::create(&LabConfig::default()).expect("creating the lab");
        names = Some(names_of(&pair));
        panic!("deliberate panic: the lab must clean up during unwinding");
    }));
    assert!(result.is_err(), "the closure was meant to panic");
    assert_gone(&names.expect("the pair was created before the panic"));
}

#[test]
fn processes_left_in_the_namespace_are_killed_on_drop() {
    let pair = pair();
    let mut leftover = pair
        .command_in(Side::Responder, "sleep")
        .arg("60")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawning sleep in the namespace");
    // Wait until `ip netns exec` has entered the namespace and exec'd `sleep`: a process that is
    // still on its way in cannot be found there yet.
    let comm = format!("/proc/{}/comm", leftover.id());
    let entered = Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(&comm)
        .map(|c| c.trim() != "sleep")
        .unwrap_or(true)
    {
        assert!(Instant::now() < entered, "sleep never started in the namespace");
        std::thread::sleep(Duration::from_millis(5));
    }
    let names = names_of(&pair);
    drop(pair);
    let deadline = Instant::now() + Duration::from_secs(5);
    while leftover.try_wait().expect("try_wait").is_none() {
        assert!(
            Instant::now() < deadline,
            "the process in the deleted namespace still runs"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_gone(&names);
}

#[test]
fn background_process_is_killed_on_drop() {
    let pair = pair();
    let mut cmd = pair.command_in(Side::Client, "sleep");
    cmd.arg("60");
    let process = Background::spawn(cmd).expect("spawning sleep");
    let pid = process.pid();
    drop(process);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "pid {pid} survived its Background guard"
    );
}

/// Pings the responder namespace's kernel from the client and checks ping, SNMP counters and tcpdump
/// against each other.
fn kernel_answers(family: Family) {
    const COUNT: u32 = 5;
    let pair = pair();
    let (echo_reps, csum_errors) = match family {
        Family::V4 => ("IcmpInEchoReps", "IcmpInCsumErrors"),
        Family::V6 => ("Icmp6InEchoReplies", "Icmp6InCsumErrors"),
    };
    let client_before = Nstat::read(&pair, Side::Client).unwrap();
    let responder_before = Nstat::read(&pair, Side::Responder).unwrap();
    let capture = Capture::start_icmp(&pair).unwrap();
    let spec = PingSpec::new(family, COUNT)
        .interval(Duration::from_millis(50))
        .size(100)
        .pattern("a55a");
    let report = ping(&pair, &spec).unwrap();
    let text = capture.stop().unwrap();
    let client = Nstat::read(&pair, Side::Client).unwrap().since(&client_before);
    let responder = Nstat::read(&pair, Side::Responder).unwrap().since(&responder_before);

    assert_eq!(
        (report.transmitted, report.received),
        (u64::from(COUNT), u64::from(COUNT)),
        "{}",
        report.raw
    );
    assert_eq!(report.exit_code, Some(0));
    assert_eq!(report.ttls_seen, BTreeSet::from([64]), "{}", report.raw);
    assert!(report.rtt.is_some());

    assert_eq!(
        client.counter(echo_reps).unwrap(),
        u64::from(COUNT),
        "{:?}",
        client.non_zero()
    );
    assert_eq!(client.counter(csum_errors).unwrap(), 0, "{:?}", client.non_zero());
    let (in_echos, out_replies) = match family {
        Family::V4 => ("IcmpInEchos", "IcmpOutEchoReps"),
        Family::V6 => ("Icmp6InEchos", "Icmp6OutEchoReplies"),
    };
    assert_eq!(
        responder.counter(in_echos).unwrap(),
        u64::from(COUNT),
        "{:?}",
        responder.non_zero()
    );
    assert_eq!(
        responder.counter(out_replies).unwrap(),
        u64::from(COUNT),
        "{:?}",
        responder.non_zero()
    );

    assert_eq!(text.echo_requests().count(), COUNT as usize, "{}", text.raw);
    assert_eq!(text.echo_reply_count(), COUNT as usize, "{}", text.raw);
    assert!(
        text.bad_checksum_packets().is_empty(),
        "{:?}",
        text.bad_checksum_packets()
    );
    assert_eq!(text.reply_ttls(), BTreeSet::from([64]), "{}", text.raw);
    assert!(text.stderr.contains(" packets captured"), "{}", text.stderr);
}

#[test]
fn kernel_answers_ping_v4_and_counters_match_exactly() {
    kernel_answers(Family::V4);
}

#[test]
fn kernel_answers_ping_v6_and_counters_match_exactly() {
    kernel_answers(Family::V6);
}

#[test]
fn queue_steering_puts_the_flow_on_the_chosen_rx_queue() {
    steering_puts_the_flow_on_the_chosen_rx_queue(pair());
}

/// A one-queue veth has no XPS map (the kernel refuses writes to `xps_cpus` there); steering to
/// its only queue must still work, as `afxdp-lab demo --queues 1` needs.
#[test]
fn queue_steering_on_a_one_queue_veth() {
    root();
    let cfg = LabConfig {
        queues: 1,
        ..LabConfig::default()
    };
    let pair = NetnsPair::create(&cfg).unwrap_or_else(|err| panic!("creating the lab: {err}"));
    steering_puts_the_flow_on_the_chosen_rx_queue(pair);
}

fn steering_puts_the_flow_on_the_chosen_rx_queue(pair: NetnsPair) {
    const COUNT: u64 = 20;
    let queues = pair.config().queues;
    let cpus = allowed_cpus().unwrap();
    assert!(
        cpus.len() >= queues as usize,
        "this test needs {queues} CPUs (one per queue) and may use {cpus:?}"
    );
    for family in [Family::V4, Family::V6] {
        for queue in 0..queues {
            let cpu = pair.steer_client_queue(queue).unwrap();
            let before = pair.rx_queue_packets(Side::Responder).unwrap();
            let spec = PingSpec::new(family, COUNT as u32)
                .interval(Duration::from_millis(5))
                .quiet()
                .pinned_cpu(cpu);
            let report = ping(&pair, &spec).unwrap();
            assert_eq!(report.received, COUNT, "{}", report.raw);
            let after = pair.rx_queue_packets(Side::Responder).unwrap();
            let delta: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
            let mut expected = vec![0; queues as usize];
            expected[queue as usize] = COUNT;
            assert_eq!(
                delta, expected,
                "{family:?} pinged from CPU {cpu} should arrive on RX queue {queue} only"
            );
        }
    }
}

#[test]
fn steering_to_a_queue_the_veth_lacks_is_an_error() {
    let pair = pair();
    let err = pair.steer_client_queue(pair.config().queues).unwrap_err();
    assert!(matches!(err, LabError::Config(_)), "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[test]
fn ping_is_bounded_when_nobody_answers() {
    let pair = pair();
    let started = Instant::now();
    let silent = "198.18.0.99".parse().unwrap();
    let spec = PingSpec::new(Family::V4, 3)
        .interval(Duration::from_millis(200))
        .deadline(Duration::from_secs(1))
        .target(silent);
    let report = ping(&pair, &spec).unwrap();
    assert_eq!(report.received, 0, "{}", report.raw);
    assert_eq!(report.exit_code, Some(1));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_bad_capture_filter_fails_with_tcpdumps_message() {
    let pair = pair();
    let err = Capture::start(&pair, Side::Client, "icmp and and")
        .unwrap_err()
        .to_string();
    assert!(err.contains("syntax error"), "{err}");
}

#[test]
fn two_pairs_with_the_same_addresses_are_isolated() {
    let (a, b) = (pair(), pair());
    assert_ne!(a.responder_ns(), b.responder_ns());
    assert_ne!(a.client_if(), b.client_if());
    for pair in [&a, &b] {
        let spec = PingSpec::new(Family::V6, 2).interval(Duration::from_millis(20));
        assert_eq!(ping(pair, &spec).unwrap().received, 2);
    }
}
