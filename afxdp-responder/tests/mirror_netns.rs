//! The host mirror follows the kernel's neighbour and routing tables while the responder runs,
//! with forwarding off on its interface (the default): a neighbour entry deleted or added, a
//! route added, changed (`hoplimit`) or removed changes which pings the responder answers, from
//! the rtnetlink notification on (the daemon has no polling for routes or neighbours). What the
//! program decided is read from outside with `afxdp-responder status --json` (the program's
//! counters: `mirror_handled`, `mirror_passed`), what the client got from `ping`. Needs root;
//! every ping is bounded in count and time.

mod common;

use std::process::Command;
use std::thread::sleep;
use std::time::Duration;

use afxdp_lab::{NetnsPair, PingReport, Side, mac_string};
use common::{EXE, client_ip, ip, pair, start, stop, wait_notice};
use responder_json::{FibPassed, ProgramCounters, StatusReport};

/// Slack for the daemon to read a notification on a loaded, shared machine: not a bound that is
/// asserted (a notification is normally applied within microseconds), only what keeps the test
/// from racing the monitor thread's wake-up.
const SLACK: Duration = Duration::from_millis(200);

/// The responder program's counters, read from outside (`status --json`).
fn counters(pair: &NetnsPair) -> ProgramCounters {
    let out = pair
        .command_in(Side::Responder, EXE)
        .args(["status", "--iface", pair.responder_if(), "--json"])
        .output()
        .expect("afxdp-responder status");
    let report: StatusReport = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status --json: {e}: {}", String::from_utf8_lossy(&out.stdout)));
    report.counters.expect("the program's counters")
}

/// `count` IPv4 pings from the client, from `source` (an address of the client), 0.1 s apart,
/// each reply awaited at most 1 s (`-W`; `-w` would keep sending until `count` replies).
fn ping_from(pair: &NetnsPair, source: &str, count: u32) -> PingReport {
    let target = pair.config().responder_v4.to_string();
    let out: std::process::Output = pair
        .command_in(Side::Client, "ping")
        .args([
            "-4",
            "-n",
            "-c",
            &count.to_string(),
            "-i",
            "0.1",
            "-W",
            "1",
            "-I",
            source,
            &target,
        ])
        .output()
        .expect("ping");
    PingReport::parse(&String::from_utf8_lossy(&out.stdout)).expect("ping's summary")
}

fn delta(after: &FibPassed, before: &FibPassed) -> FibPassed {
    FibPassed {
        no_neighbour: after.no_neighbour - before.no_neighbour,
        not_unicast: after.not_unicast - before.not_unicast,
        no_route: after.no_route - before.no_route,
        frag_needed: after.frag_needed - before.frag_needed,
        other_egress: after.other_egress - before.other_egress,
        other: after.other - before.other,
    }
}

fn forwarding_is_off(pair: &NetnsPair) {
    let key = format!("net.ipv4.conf.{}.forwarding", pair.responder_if());
    let out = Command::new("ip")
        .args(["netns", "exec", pair.responder_ns(), "sysctl", "-n", &key])
        .output()
        .expect("sysctl");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "{key}");
}

#[test]
fn neighbour_entries_deleted_and_added_while_running_change_the_verdict() {
    let pair = pair(1);
    forwarding_is_off(&pair);
    let (dev, client) = (pair.responder_if().to_string(), pair.config().client_v4.to_string());
    let client_mac = mac_string(pair.config().client_mac);
    // The client answers no ARP request (arp_ignore 8): once the responder's kernel forgets it,
    // nobody can resolve it. (The client itself has a permanent entry for the responder.)
    let key = format!("net.ipv4.conf.{}.arp_ignore=8", pair.client_if());
    let status = pair
        .command_in(Side::Client, "sysctl")
        .args(["-qw", &key])
        .status()
        .expect("sysctl");
    assert!(status.success(), "{key}");
    let responder = start(&pair, &["--stats-interval", "0"]);

    let c0 = counters(&pair);
    let answered = ping_from(&pair, &client, 3);
    let c1 = counters(&pair);
    assert_eq!(answered.received, 3, "with the neighbour entry: answered");
    assert_eq!(
        c1.mirror_handled - c0.mirror_handled,
        3,
        "by the responder, on the mirror's verdict"
    );

    ip(&pair, &["neigh", "del", &client, "dev", &dev]);
    sleep(SLACK);
    let unanswered = ping_from(&pair, &client, 3);
    let c2 = counters(&pair);
    assert_eq!(
        unanswered.received, 0,
        "no neighbour entry, none can be made: Linux stays silent"
    );
    assert_eq!(c2.mirror_handled, c1.mirror_handled, "the responder answered none");
    assert_eq!(
        delta(&c2.mirror_passed, &c1.mirror_passed).no_neighbour,
        3,
        "every one passed to the kernel for want of a neighbour: {:?}",
        c2.mirror_passed
    );

    #[rustfmt::skip]
    ip(&pair, &["neigh", "replace", &client, "lladdr", &client_mac, "dev", &dev, "nud", "permanent"]);
    sleep(SLACK);
    let again = ping_from(&pair, &client, 3);
    let c3 = counters(&pair);
    assert_eq!(
        again.received, 3,
        "the entry is back (it replaces the kernel's FAILED one): answered"
    );
    assert_eq!(c3.mirror_handled - c2.mirror_handled, 3, "by the responder again");
    stop(responder);
}

#[test]
fn routes_added_changed_and_removed_while_running_change_the_verdict() {
    let pair = pair(1);
    forwarding_is_off(&pair);
    let dev = pair.responder_if().to_string();
    let via = pair.config().client_v4.to_string();
    // A source behind the client, which the responder reaches only through a route via it.
    let source = "198.19.5.5";
    client_ip(
        &pair,
        &["addr", "add", &format!("{source}/32"), "dev", pair.client_if()],
    );
    let responder = start(&pair, &["--stats-interval", "0"]);

    let c0 = counters(&pair);
    let no_route = ping_from(&pair, source, 3);
    let c1 = counters(&pair);
    assert_eq!(no_route.received, 0, "no route back: Linux stays silent");
    assert_eq!(
        delta(&c1.mirror_passed, &c0.mirror_passed).no_route,
        3,
        "passed: no route"
    );

    ip(&pair, &["route", "add", "198.19.5.0/24", "via", &via, "dev", &dev]);
    sleep(SLACK);
    let routed = ping_from(&pair, source, 3);
    let c2 = counters(&pair);
    assert_eq!(routed.received, 3, "a route via the client: answered");
    assert_eq!(c2.mirror_handled - c1.mirror_handled, 3, "by the responder");
    assert_eq!(
        routed.ttls_seen.iter().copied().collect::<Vec<_>>(),
        [64],
        "the default TTL"
    );

    #[rustfmt::skip]
    ip(&pair, &["route", "replace", "198.19.5.0/24", "via", &via, "dev", &dev, "hoplimit", "7"]);
    sleep(SLACK);
    let hoplimit = ping_from(&pair, source, 3);
    let c3 = counters(&pair);
    assert_eq!(hoplimit.received, 3);
    assert_eq!(c3.mirror_handled - c2.mirror_handled, 3, "by the responder");
    assert_eq!(
        hoplimit.ttls_seen.iter().copied().collect::<Vec<_>>(),
        [7],
        "the route's hoplimit"
    );

    ip(&pair, &["route", "replace", "blackhole", "198.19.5.0/24"]);
    sleep(SLACK);
    let blackholed = ping_from(&pair, source, 3);
    let c4 = counters(&pair);
    assert_eq!(blackholed.received, 0, "a blackhole route: Linux stays silent");
    assert_eq!(
        delta(&c4.mirror_passed, &c3.mirror_passed).no_route,
        3,
        "passed: blackhole"
    );

    ip(&pair, &["route", "del", "198.19.5.0/24"]);
    sleep(SLACK);
    let removed = ping_from(&pair, source, 3);
    let c5 = counters(&pair);
    assert_eq!(removed.received, 0, "the route is gone");
    assert_eq!(c5.mirror_handled, c4.mirror_handled, "the responder answered none");
    assert_eq!(
        delta(&c5.mirror_passed, &c4.mirror_passed).no_route,
        3,
        "passed: no route"
    );
    stop(responder);
}

#[test]
fn status_shows_the_host_policy_and_route_reasons_read_from_the_program() {
    let pair = pair(1);
    let client = pair.config().client_v4.to_string();
    let responder = start(
        &pair,
        &["--stats-interval", "0", "--deny-from", &format!("{client}/32")],
    );
    let denied = ping_from(&pair, &client, 2);
    assert_eq!(denied.received, 2, "denied: passed to the kernel, which answers");
    let c = counters(&pair);
    assert_eq!(c.passed_by.denied, 2, "status reads policy_counters: {:?}", c.passed_by);
    assert_eq!(c.mirror_handled, 0, "the responder answered none");
    let out = pair
        .command_in(Side::Responder, EXE)
        .args(["status", "--iface", pair.responder_if()])
        .output()
        .expect("afxdp-responder status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--deny-from 2"), "{text}");
    assert!(text.contains("host mirror (forwarding off)"), "{text}");
    stop(responder);
}

#[test]
fn policy_routing_rules_are_named_in_one_notice() {
    let pair = pair(1);
    ip(
        &pair,
        &["rule", "add", "from", "198.19.0.0/16", "table", "100", "pref", "100"],
    );
    let mut responder = start(&pair, &["--stats-interval", "0"]);
    let notice = wait_notice(&mut responder, "the policy routing notice", "policy routing rules");
    let text = format!("{notice:?}");
    assert!(text.contains("100: table 100"), "{text}");
    stop(responder);
}
