//! Host policy with the real binary in a namespace pair: the sysctls followed while running
//! (echo_ignore_all, default TTL, hop limit, flow labels), `--allow-from` / `--deny-from` with an
//! nftables rule behind them, and IPv6 flow labels compared with the kernel's own. Needs root.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use afxdp_lab::{Capture, CaptureText, Family, NetnsPair, PingReport, PingSpec, Side, ping};

mod common;
use common::{ip, pair, start_queue0, stop, sysctl};

/// The responder reads the sysctls every 500 ms: a change is in effect within a second.
const FOLLOW: Duration = Duration::from_millis(1100);

fn pings(pair: &NetnsPair, family: Family, count: u32) -> PingReport {
    let spec = PingSpec::new(family, count)
        .interval(Duration::from_millis(50))
        .deadline(Duration::from_secs(3));
    ping(pair, &spec).expect("ping runs")
}

/// Every request answered, at least `count` (ping, with a deadline, sends on while a reply is
/// late, e.g. on a busy machine, and stops after `count` replies). Returns the replies.
#[track_caller]
fn assert_answered(report: &PingReport, count: u64, what: &str) -> u64 {
    assert!(report.received >= count, "{what}: {}", report.raw);
    assert_eq!(report.received, report.transmitted, "{what}: {}", report.raw);
    report.received
}

#[track_caller]
fn assert_unanswered(report: &PingReport, what: &str) {
    assert!(report.transmitted > 0, "{what}: {}", report.raw);
    assert_eq!(report.received, 0, "{what}: {}", report.raw);
}

#[test]
fn sysctls_are_followed_while_running() {
    let pair = pair(1);
    let responder = start_queue0(&pair, &[]);
    let iface = pair.responder_if().to_string();
    assert_eq!((responder.ready().ttl, responder.ready().hop_limit), (64, 64));
    let mut answered = assert_answered(&pings(&pair, Family::V4, 3), 3, "v4 at start");

    // TTL and hop limit changed while running.
    sysctl(&pair, "net.ipv4.ip_default_ttl", "33");
    sysctl(&pair, &format!("net.ipv6.conf.{iface}.hop_limit"), "44");
    std::thread::sleep(FOLLOW);
    let v4 = pings(&pair, Family::V4, 3);
    let v6 = pings(&pair, Family::V6, 3);
    answered += assert_answered(&v4, 3, "v4 after the TTL change");
    answered += assert_answered(&v6, 3, "v6 after the hop limit change");
    assert_eq!(v4.ttls_seen.iter().copied().collect::<Vec<_>>(), vec![33], "{}", v4.raw);
    assert_eq!(v6.ttls_seen.iter().copied().collect::<Vec<_>>(), vec![44], "{}", v6.raw);

    // echo_ignore_all for IPv4: passed to the kernel, which ignores it; IPv6 still answered.
    sysctl(&pair, "net.ipv4.icmp_echo_ignore_all", "1");
    std::thread::sleep(FOLLOW);
    let ignored_v4 = pings(&pair, Family::V4, 3);
    assert_unanswered(&ignored_v4, "v4 with icmp_echo_ignore_all=1");
    answered += assert_answered(&pings(&pair, Family::V6, 3), 3, "v6 with only the v4 sysctl set");
    // And for IPv6.
    sysctl(&pair, "net.ipv6.icmp.echo_ignore_all", "1");
    std::thread::sleep(FOLLOW);
    let ignored_v6 = pings(&pair, Family::V6, 3);
    assert_unanswered(&ignored_v6, "v6 with icmp.echo_ignore_all=1");
    // Back: answered again.
    sysctl(&pair, "net.ipv4.icmp_echo_ignore_all", "0");
    sysctl(&pair, "net.ipv6.icmp.echo_ignore_all", "0");
    std::thread::sleep(FOLLOW);
    answered += assert_answered(&pings(&pair, Family::V4, 3), 3, "v4 after the sysctl is cleared");
    answered += assert_answered(&pings(&pair, Family::V6, 3), 3, "v6 after the sysctl is cleared");

    let exit = stop(responder);
    let summary = exit.expect_summary();
    // Answered by the responder: every reply of the answered pings; passed for the sysctl:
    // exactly the requests sent while it was set (ping keeps sending until its deadline when
    // nothing comes back).
    assert_eq!(
        (summary.total.rx, summary.total.tx),
        (answered, answered),
        "{summary:?}"
    );
    assert_eq!(
        summary.program.passed_by.ignore_all,
        ignored_v4.transmitted + ignored_v6.transmitted,
        "{:?}",
        summary.program
    );
    assert_eq!(summary.program.handled, answered);
}

/// An nftables rule in the responder's namespace that drops every echo request on input.
fn firewall_drops_echo_requests(pair: &NetnsPair) {
    let script = "add table inet afxdp_test\n\
                  add chain inet afxdp_test input { type filter hook input priority 0; policy accept; }\n\
                  add rule inet afxdp_test input icmp type echo-request drop\n\
                  add rule inet afxdp_test input icmpv6 type echo-request drop\n";
    let path = std::env::temp_dir().join(format!("afxdp-nft-{}.nft", std::process::id()));
    std::fs::write(&path, script).unwrap();
    let out = pair
        .command_in(Side::Responder, "nft")
        .arg("-f")
        .arg(&path)
        .output()
        .expect("nft (apt-get install nftables)");
    std::fs::remove_file(&path).unwrap();
    assert!(out.status.success(), "nft: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn allow_and_deny_lists_leave_requests_to_the_kernel_and_its_firewall() {
    let pair = pair(1);
    // Without the responder, the firewall rule holds: no echo request is answered.
    firewall_drops_echo_requests(&pair);
    assert_unanswered(&pings(&pair, Family::V4, 2), "the kernel behind its firewall");

    // XDP runs before netfilter: the responder answers what the firewall would drop.
    let responder = start_queue0(&pair, &[]);
    assert_answered(&pings(&pair, Family::V4, 3), 3, "bypassed firewall (documented)");
    stop(responder);

    // --deny-from the client's addresses: the kernel gets them, and its firewall drops them.
    let responder = start_queue0(
        &pair,
        &["--deny-from", "198.18.0.2/32", "--deny-from", "2001:db8:0:1::/64"],
    );
    let (v4, v6) = (pings(&pair, Family::V4, 3), pings(&pair, Family::V6, 3));
    assert_unanswered(&v4, "v4 denied");
    assert_unanswered(&v6, "v6 denied");
    let exit = stop(responder);
    let p = exit.expect_summary().program;
    let sent = v4.transmitted + v6.transmitted;
    assert_eq!(
        (p.handled, p.passed_by.denied, p.passed_by.not_allowed),
        (0, sent, 0),
        "{p:?}"
    );

    // --allow-from only the IPv6 documentation range: IPv4 goes to the kernel (dropped by its
    // firewall), IPv6 is answered by the responder. A deny entry wins over an allow entry.
    let responder = start_queue0(
        &pair,
        &[
            "--allow-from",
            "2001:db8::/32",
            "--allow-from",
            "198.18.0.0/15",
            "--deny-from",
            "198.18.0.0/24",
        ],
    );
    let v4 = pings(&pair, Family::V4, 3);
    assert_unanswered(&v4, "v4 denied, though allowed by a shorter prefix");
    let v6 = assert_answered(&pings(&pair, Family::V6, 3), 3, "v6 allowed");
    let exit = stop(responder);
    let s = exit.expect_summary();
    assert_eq!(
        (s.program.handled, s.program.passed_by.denied, s.total.tx),
        (v6, v4.transmitted, v6),
        "{:?}",
        s.program
    );
    let responder = start_queue0(&pair, &["--allow-from", "2001:db8::/32"]);
    let v4 = pings(&pair, Family::V4, 3);
    assert_unanswered(&v4, "v4 not in the allow list");
    let v6 = assert_answered(&pings(&pair, Family::V6, 3), 3, "v6 allowed");
    let exit = stop(responder);
    let p = exit.expect_summary().program;
    assert_eq!((p.handled, p.passed_by.not_allowed), (v6, v4.transmitted), "{p:?}");
}

#[test]
fn a_bad_cidr_is_one_line_and_exit_status_1() {
    common::need_root();
    for bad in ["198.18.0.0/33", "2001:db8::/129", "example.org/8"] {
        let out = std::process::Command::new(common::EXE)
            .args(["--iface", "lo", "--allow-from", bad])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{bad}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{bad}: {stderr}");
        assert!(stderr.contains("use e.g. 198.18.0.0/15"), "{bad}: {stderr}");
    }
}

/// One captured IPv6 echo message: (reply?, source, destination, sequence, flow label).
fn echo_messages(text: &CaptureText) -> Vec<(bool, String, String, u32, u32)> {
    let mut out = Vec::new();
    for p in text.packets() {
        let reply = p.contains("echo reply");
        if !(reply || p.contains("echo request")) || !p.contains("ICMP6") {
            continue;
        }
        let number = |key: &str, radix: u32| -> Option<u32> {
            let start = p.find(key)? + key.len();
            let digits: String = p[start..].chars().take_while(|c| c.is_ascii_hexdigit()).collect();
            u32::from_str_radix(&digits, radix).ok()
        };
        // "IP6 (flowlabel 0x1234a, hlim 64, ...) 2001:db8:0:1::1 > 2001:db8:0:1::2: [icmp6 sum ok] ICMP6, echo reply, id 9, seq 1"
        let label = number("flowlabel 0x", 16).unwrap_or(0);
        let seq = number("seq ", 10).expect("seq");
        let (before, after) = p.split_once(" > ").unwrap_or_default();
        let src = before.rsplit(' ').next().unwrap_or("").to_string();
        let dst = after.split(' ').next().unwrap_or("").trim_end_matches(':').to_string();
        out.push((reply, src, dst, seq, label));
    }
    out
}

/// Pings the responder's two IPv6 addresses, the first one from two ping processes; returns the
/// replies' flow labels per (reply source, ping run).
fn labels_of_three_flows(pair: &NetnsPair, second: IpAddr) -> Vec<BTreeSet<u32>> {
    let capture = Capture::start(pair, Side::Client, "icmp6").unwrap();
    let first = pair.ipv6(Side::Responder).into();
    let mut runs = Vec::new();
    for target in [first, first, second] {
        let report = ping(
            pair,
            &PingSpec::new(Family::V6, 4)
                .interval(Duration::from_millis(50))
                .target(target),
        )
        .unwrap();
        assert_eq!(report.received, 4, "{}", report.raw);
        runs.push(target);
    }
    let text = capture.stop().unwrap();
    let replies: Vec<_> = echo_messages(&text).into_iter().filter(|m| m.0).collect();
    assert_eq!(replies.len(), 12, "{}", text.raw);
    // ping runs one after the other: replies 0..4, 4..8, 8..12.
    replies
        .chunks(4)
        .zip(runs)
        .map(|(chunk, target)| {
            assert!(chunk.iter().all(|m| m.1 == target.to_string()), "{chunk:?}");
            chunk.iter().map(|m| m.4).collect()
        })
        .collect()
}

/// Linux's kind of auto flow labels: one non-zero label per address pair (two ping processes to
/// one address share it), another one for another address pair.
#[track_caller]
fn assert_per_flow_labels(runs: &[BTreeSet<u32>], who: &str) {
    for run in runs {
        assert_eq!(run.len(), 1, "{who}: one label per flow: {runs:?}");
        assert!(!run.contains(&0), "{who}: auto labels are not 0: {runs:?}");
    }
    assert_eq!(
        runs[0], runs[1],
        "{who}: two pings to one address: one flow for Linux: {runs:?}"
    );
    assert_ne!(runs[0], runs[2], "{who}: another address pair, another label: {runs:?}");
}

#[test]
fn ipv6_flow_labels_follow_the_kernels_policy() {
    let pair = pair(1);
    let second: IpAddr = "2001:db8:0:1::5".parse().unwrap();
    ip(
        &pair,
        &["addr", "add", "2001:db8:0:1::5/64", "dev", pair.responder_if(), "nodad"],
    );

    // The kernel alone.
    let kernel = labels_of_three_flows(&pair, second);
    assert_per_flow_labels(&kernel, "kernel");

    // The responder: the same kind (its key differs from the kernel's, so do the values).
    let responder = start_queue0(&pair, &[]);
    assert!(responder.ready().addresses.contains(&second.to_string()));
    let ours = labels_of_three_flows(&pair, second);
    assert_per_flow_labels(&ours, "responder");

    // net.ipv6.flowlabel_reflect=4 while running: each reply carries its request's label.
    sysctl(&pair, "net.ipv6.flowlabel_reflect", "4");
    std::thread::sleep(FOLLOW);
    let capture = Capture::start(&pair, Side::Client, "icmp6").unwrap();
    let report = ping(&pair, &PingSpec::new(Family::V6, 4).interval(Duration::from_millis(50))).unwrap();
    assert_eq!(report.received, 4, "{}", report.raw);
    let text = capture.stop().unwrap();
    let mut requests = BTreeMap::new();
    let mut replies = BTreeMap::new();
    for (reply, _, _, seq, label) in echo_messages(&text) {
        if reply {
            replies.insert(seq, label);
        } else {
            requests.insert(seq, label);
        }
    }
    assert_eq!(replies.len(), 4, "{}", text.raw);
    assert!(
        requests.values().all(|&l| l != 0),
        "the client's requests carry labels: {requests:?}"
    );
    assert_eq!(replies, requests, "reflected labels");

    let exit = stop(responder);
    // Every reply above came from the responder, none from the kernel.
    assert_eq!(exit.expect_summary().total.tx, 12 + 4);
}

/// `net.ipv6.icmp.echo_ignore_anycast`: anycast addresses (here the subnet-router anycast
/// address a forwarding interface joins) are not unicast addresses of the interface, so the
/// responder never owns them and the kernel applies the sysctl.
#[test]
fn anycast_destinations_are_left_to_the_kernel() {
    let pair = pair(1);
    let iface = pair.responder_if().to_string();
    sysctl(&pair, &format!("net.ipv6.conf.{iface}.forwarding"), "1");
    let anycast: IpAddr = "2001:db8:0:1::".parse().unwrap();
    let responder = start_queue0(&pair, &[]);
    assert!(
        !responder.ready().addresses.contains(&anycast.to_string()),
        "{:?}",
        responder.ready().addresses
    );
    let to_anycast = |count| {
        ping(
            &pair,
            &PingSpec::new(Family::V6, count)
                .interval(Duration::from_millis(50))
                .deadline(Duration::from_secs(2))
                .target(anycast),
        )
        .expect("ping runs")
    };
    // echo_ignore_anycast=0 (the default): the kernel answers (from a unicast address). The
    // first ping waits for the client's neighbour discovery of the anycast address.
    assert!(to_anycast(1).received >= 1, "the kernel answers anycast pings");
    assert_answered(&to_anycast(3), 3, "anycast, answered by the kernel");
    sysctl(&pair, "net.ipv6.icmp.echo_ignore_anycast", "1");
    assert_unanswered(&to_anycast(3), "anycast with echo_ignore_anycast=1");
    let exit = stop(responder);
    let s = exit.expect_summary();
    assert_eq!(
        (s.program.handled, s.total.tx),
        (0, 0),
        "the responder answered none: {s:?}"
    );
}

/// `--rate-limit-per-source`: past its rate (and burst), a source's requests go to the kernel,
/// which answers them by its own rules (here: all of them). Every request is answered by one of
/// the two; the responder answered no more than the rate allows over the run.
#[test]
fn a_per_source_rate_limit_passes_the_excess_to_the_kernel() {
    let pair = pair(1);
    let rate = 20u64;
    let responder = start_queue0(&pair, &["--rate-limit-per-source", "20/s"]);
    let started = std::time::Instant::now();
    let flood = ping(
        &pair,
        &PingSpec::new(Family::V4, 300)
            .flood()
            .quiet()
            .deadline(Duration::from_secs(10)),
    )
    .expect("ping runs");
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(
        flood.received, flood.transmitted,
        "kernel or responder answers each: {}",
        flood.raw
    );
    let exit = stop(responder);
    let p = exit.expect_summary().program;
    println!(
        "{} requests in {elapsed:.2} s: {} answered by the responder, {} rate-limited",
        flood.transmitted, p.handled, p.passed_by.rate_limited
    );
    assert_eq!(p.handled + p.passed_by.rate_limited, flood.transmitted, "{p:?}");
    assert!(p.passed_by.rate_limited > 0, "{p:?} in {elapsed:.2} s");
    let allowed = rate + (rate as f64 * (elapsed + 1.0)) as u64;
    assert!(
        p.handled >= 1 && p.handled <= allowed,
        "{} handled in {elapsed:.2} s at {rate}/s",
        p.handled
    );
}
