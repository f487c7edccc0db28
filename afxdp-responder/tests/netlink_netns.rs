//! The responder follows the kernel through rtnetlink, in network namespaces: addresses added
//! and removed while it runs (answered from the `addresses` event on, never after the event that
//! drops them), IPv6 addresses in DAD (not answered while tentative, answered once DAD is over,
//! never after DAD failed), a MAC change, `--force` against a program `ip` attached in native
//! mode, and flood's default `--dst-mac` from the neighbour table. The daemon runs with an empty
//! `PATH` where it matters, so nothing here can come from running `ip`. Needs root; every ping
//! is bounded in count and time.

mod common;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use afxdp_lab::{Family, NetnsPair, PingReport, PingSpec, ResponderProcess, Side, mac_string, ping};
use common::{
    EXE, TempDir, assert_nothing_attached, attach_with_ip, attached_program_id, client_ip, finish_ping, ip, pair,
    ping_in_background, start, stop, sysctl, wait_notice,
};
use responder_json::Event;

/// A permanent neighbour entry on the client: `addr` is at the responder's MAC. Requests then
/// reach the responder's interface whatever its kernel does with neighbour solicitations for
/// the address (it ignores them while the address is tentative or after DAD failed).
fn client_neighbour(pair: &NetnsPair, addr: &str, mac: [u8; 6]) {
    let mac = mac_string(mac);
    #[rustfmt::skip]
    client_ip(pair, &["neigh", "replace", addr, "lladdr", &mac, "dev", pair.client_if(), "nud", "permanent"]);
}

/// `count` pings to `target`, `interval` apart, bounded by `deadline`.
fn spec_to(target: &str, count: u32, interval: Duration, deadline: Duration) -> PingSpec {
    let addr: IpAddr = target.parse().unwrap();
    let family = if addr.is_ipv6() { Family::V6 } else { Family::V4 };
    PingSpec::new(family, count)
        .target(addr)
        .interval(interval)
        .deadline(deadline)
}

/// Runs [`spec_to`] and returns ping's report.
fn ping_to(pair: &NetnsPair, target: &str, count: u32, interval: Duration, deadline: Duration) -> PingReport {
    ping(pair, &spec_to(target, count, interval, deadline)).expect("ping")
}

/// Waits for the responder's `addresses` event that lists `addr` (`present`) or no longer does.
fn wait_addresses(responder: &mut ResponderProcess, addr: &str, present: bool) {
    let what = format!("an addresses event {} {addr}", if present { "with" } else { "without" });
    responder
        .wait_for_event(
            &what,
            Duration::from_secs(5),
            |e| matches!(e, Event::Addresses(a) if a.addresses.iter().any(|x| x == addr) == present),
        )
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The kernel's flags of `addr` on the responder's interface, from `ip -j` (JSON): e.g.
/// `["tentative"]`, `["dadfailed", "tentative"]`, `[]`; `None` if the address is not there.
fn kernel_flags(pair: &NetnsPair, addr: &str) -> Option<Vec<String>> {
    let text = ip(pair, &["-j", "-6", "addr", "show", "dev", pair.responder_if()]);
    let links: serde_json::Value = serde_json::from_str(&text).expect("ip -j prints JSON");
    let info = links.as_array()?.iter().find_map(|link| {
        link["addr_info"]
            .as_array()?
            .iter()
            .find(|a| a["local"].as_str() == Some(addr))
            .cloned()
    })?;
    Some(
        ["tentative", "dadfailed", "optimistic", "deprecated"]
            .iter()
            .filter(|flag| info[**flag].as_bool() == Some(true))
            .map(|flag| flag.to_string())
            .collect(),
    )
}

/// Waits (bounded) until `done(flags)` holds for `addr`.
fn wait_flags(pair: &NetnsPair, addr: &str, timeout: Duration, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let flags = kernel_flags(pair, addr).unwrap_or_else(|| panic!("{addr} is not on the interface"));
        if done(&flags) {
            return flags;
        }
        assert!(Instant::now() < deadline, "{addr}: flags still {flags:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Slow DAD on the responder's interface: `probes` neighbour solicitations `retrans_ms` apart.
fn slow_dad(pair: &NetnsPair, probes: u32, retrans_ms: u32) {
    let conf = format!("net.ipv6.conf.{}", pair.responder_if());
    sysctl(pair, &format!("{conf}.accept_dad"), "1");
    sysctl(pair, &format!("{conf}.dad_transmits"), &probes.to_string());
    let neigh = format!("net.ipv6.neigh.{}", pair.responder_if());
    sysctl(pair, &format!("{neigh}.retrans_time_ms"), &retrans_ms.to_string());
}

/// The metrics endpoint of the responder, on its namespace's own loopback.
const METRICS: &str = "127.0.0.1:9471";

/// Waits (bounded: the exporter publishes at most every 250 ms) until the metrics' owned-address
/// count is `expected`; scraped with `curl` inside the responder's namespace.
fn wait_owned_metric(pair: &NetnsPair, expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let out = pair
            .command_in(Side::Responder, "curl")
            .args(["-sS", "--max-time", "2", &format!("http://{METRICS}/metrics")])
            .output()
            .expect("running curl");
        let text = String::from_utf8_lossy(&out.stdout);
        let value = text
            .lines()
            .find(|l| l.starts_with("afxdp_responder_owned_addresses{"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok());
        if value == Some(expected as f64) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "owned addresses {value:?}, expected {expected}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn addresses_added_and_removed_while_running_are_followed_at_once() {
    let pair = pair(1);
    let mut responder = start(&pair, &["--stats-interval", "0", "--metrics-addr", METRICS]);
    let initial = responder.ready().addresses.len();
    wait_owned_metric(&pair, initial);
    let mac = pair.mac(Side::Responder);
    let mut replies = 0;
    for (addr, prefix, extra) in [("198.18.0.10", 24, None), ("2001:db8:0:1::10", 64, Some("nodad"))] {
        client_neighbour(&pair, addr, mac);
        let before = ping_to(&pair, addr, 3, Duration::from_millis(20), Duration::from_secs(2));
        assert_eq!(before.received, 0, "{addr} answered before it exists: {}", before.raw);

        let with_prefix = format!("{addr}/{prefix}");
        let mut add = vec!["addr", "add", &with_prefix, "dev", pair.responder_if()];
        add.extend(extra);
        ip(&pair, &add);
        wait_addresses(&mut responder, addr, true);
        wait_owned_metric(&pair, initial + 1);
        let answered = ping_to(&pair, addr, 10, Duration::from_millis(20), Duration::from_secs(5));
        assert_eq!(answered.received, 10, "{}", answered.raw);

        // A 10 ms stream across the deletion: answered until the notification, then nothing.
        let across = ping_in_background(
            &pair,
            &spec_to(addr, 300, Duration::from_millis(10), Duration::from_secs(3)),
        );
        std::thread::sleep(Duration::from_millis(600));
        ip(&pair, &["addr", "del", &with_prefix, "dev", pair.responder_if()]);
        let deleted = Instant::now();
        wait_addresses(&mut responder, addr, false);
        println!(
            "{addr}: addresses event {:?} after `ip addr del` returned",
            deleted.elapsed()
        );
        let across = finish_ping(across, Duration::from_secs(20));
        println!(
            "{addr}: {} of {} requests across the deletion answered",
            across.received, across.transmitted
        );
        assert!(across.received > 0, "{}", across.raw);
        assert!(across.received < across.transmitted, "{}", across.raw);

        // From the event on: zero replies (the kernel does not answer either: the address is gone).
        let after = ping_to(&pair, addr, 100, Duration::from_millis(10), Duration::from_secs(2));
        assert_eq!(after.received, 0, "answered after the addresses event: {}", after.raw);
        wait_owned_metric(&pair, initial);
        replies += answered.received + across.received;
    }
    let exit = stop(responder);
    // Every reply the client got came from the responder, and it answered nothing else.
    assert_eq!(exit.totals(), (replies, replies, 0), "{}", exit.finished.stdout);
    assert_eq!(exit.handled(), Some(replies), "{}", exit.finished.stdout);
    assert_nothing_attached(&pair);
}

#[test]
fn a_tentative_ipv6_address_is_answered_only_after_dad() {
    let pair = pair(1);
    slow_dad(&pair, 6, 1000); // about 6 s of DAD
    let mut responder = start(&pair, &["--stats-interval", "0"]);
    let addr = "2001:db8:0:1::20";
    client_neighbour(&pair, addr, pair.mac(Side::Responder));
    ip(
        &pair,
        &["addr", "add", &format!("{addr}/64"), "dev", pair.responder_if()],
    );

    let flags = kernel_flags(&pair, addr).expect("the address was added");
    assert!(flags.contains(&"tentative".to_string()), "{flags:?}");
    let during = ping_to(&pair, addr, 15, Duration::from_millis(100), Duration::from_secs(3));
    let flags_after = kernel_flags(&pair, addr).expect("still there");
    assert!(
        flags_after.contains(&"tentative".to_string()),
        "DAD ended during the pings, so they prove nothing: make DAD slower ({flags_after:?})"
    );
    assert!(during.transmitted >= 15, "{}", during.raw);
    assert_eq!(during.received, 0, "a tentative address was answered: {}", during.raw);

    wait_flags(&pair, addr, Duration::from_secs(15), |f| f.is_empty());
    wait_addresses(&mut responder, addr, true);
    let after = ping_to(&pair, addr, 10, Duration::from_millis(20), Duration::from_secs(5));
    assert_eq!(after.received, 10, "{}", after.raw);

    let exit = stop(responder);
    assert_eq!(
        exit.totals(),
        (10, 10, 0),
        "only the pings after DAD: {}",
        exit.finished.stdout
    );
    assert_eq!(exit.handled(), Some(10), "{}", exit.finished.stdout);
    assert_nothing_attached(&pair);
}

#[test]
fn an_ipv6_address_whose_dad_failed_is_never_answered() {
    let pair = pair(1);
    slow_dad(&pair, 2, 300);
    let responder = start(&pair, &["--stats-interval", "0"]);
    let addr = "2001:db8:0:1::30";
    // The client holds the address already: the responder's DAD finds the duplicate.
    client_ip(
        &pair,
        &["addr", "add", &format!("{addr}/64"), "dev", pair.client_if(), "nodad"],
    );
    ip(
        &pair,
        &["addr", "add", &format!("{addr}/64"), "dev", pair.responder_if()],
    );
    let flags = wait_flags(&pair, addr, Duration::from_secs(10), |f| {
        f.contains(&"dadfailed".to_string())
    });
    println!("the kernel's flags of {addr}: {flags:?}");
    // Now the client gives it up and sends its pings to the responder's MAC.
    client_ip(&pair, &["addr", "del", &format!("{addr}/64"), "dev", pair.client_if()]);
    client_neighbour(&pair, addr, pair.mac(Side::Responder));
    let pings = ping_to(&pair, addr, 15, Duration::from_millis(50), Duration::from_secs(3));
    assert!(pings.transmitted >= 15, "{}", pings.raw);
    assert_eq!(pings.received, 0, "a DAD-failed address was answered: {}", pings.raw);
    // A control, so that the silence above means something: the responder's own address is
    // answered, by the responder.
    let control = ping_to(
        &pair,
        &pair.ipv6(Side::Responder).to_string(),
        5,
        Duration::from_millis(20),
        Duration::from_secs(3),
    );
    assert_eq!(control.received, 5, "{}", control.raw);

    let exit = stop(responder);
    assert_eq!(exit.totals(), (5, 5, 0), "only the control: {}", exit.finished.stdout);
    for listed in exit.address_changes() {
        assert!(!listed.iter().any(|a| a == addr), "{addr} was listed: {listed:?}");
    }
    assert_nothing_attached(&pair);
}

#[test]
fn mac_and_mtu_changes_are_followed() {
    let pair = pair(1);
    let mut responder = start(&pair, &["--stats-interval", "0"]);
    let addr = pair.ipv4(Side::Responder).to_string();
    let new_mac = [0x02, 0xaf, 0, 0, 0, 0x71];
    ip(
        &pair,
        &[
            "link",
            "set",
            "dev",
            pair.responder_if(),
            "address",
            &mac_string(new_mac),
        ],
    );
    let notice = wait_notice(&mut responder, "the MAC change notice", "MAC address changed");
    println!("{notice:?}");
    // The client still sends to the old MAC (its permanent entry): the kernel drops such frames
    // as another host's, and so must the responder.
    let stale = ping_to(&pair, &addr, 10, Duration::from_millis(20), Duration::from_secs(3));
    assert_eq!(stale.received, 0, "answered a frame sent to the old MAC: {}", stale.raw);
    client_neighbour(&pair, &addr, new_mac);
    let fresh = ping_to(&pair, &addr, 10, Duration::from_millis(20), Duration::from_secs(3));
    assert_eq!(fresh.received, 10, "{}", fresh.raw);
    // An MTU change is noticed too (what the daemon holds about the link stays true).
    ip(&pair, &["link", "set", "dev", pair.responder_if(), "mtu", "1400"]);
    wait_notice(&mut responder, "the MTU change notice", "MTU changed from 1500 to 1400");
    let exit = stop(responder);
    // A MAC change flushes the neighbour table (permanent entries too): with forwarding off the
    // host mirror then has no entry for the client, so, as Linux does, the kernel resolves it
    // (ARP) and answers the first request itself; the rest are the responder's.
    let (rx, tx, dropped) = exit.totals();
    assert!(
        (9..=10).contains(&rx) && tx == rx && dropped == 0,
        "answered by the responder: {}",
        exit.finished.stdout
    );
}

/// A directory with nothing in it, for `PATH`: a daemon run with it cannot run `ip` (or any
/// other program by name). Removed on drop.
struct EmptyPath {
    dir: TempDir,
}

impl EmptyPath {
    fn new(tag: &str) -> Self {
        let dir = TempDir::new(&format!("afxdp-nopath-{tag}"));
        std::fs::create_dir_all(dir.path().join("empty")).unwrap();
        // `ip netns exec` finds the program on PATH, so the wrapper is given by its full path;
        // it replaces itself with the responder, whose PATH is then empty.
        let wrapper = dir.path().join("afxdp-responder-without-path");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nPATH={} exec {EXE} \"$@\"\n",
                dir.path().join("empty").display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        EmptyPath { dir }
    }

    fn exe(&self) -> PathBuf {
        self.dir.path().join("afxdp-responder-without-path")
    }
}

#[test]
fn force_detaches_a_native_program_attached_by_ip_through_netlink() {
    let pair = pair(1);
    attach_with_ip(&pair, "xdpdrv", "xdp-pass", redirect_ebpf::XDP_PASS);
    let foreign = attached_program_id(&pair).expect("xdp_pass is attached");

    let no_path = EmptyPath::new("force");
    let responder = ResponderProcess::start(&pair, &no_path.exe(), &["--force", "--stats-interval", "0"])
        .expect("the responder starts with --force and an empty PATH");
    let notices = responder.notices();
    assert!(
        notices.iter().any(|n| n.contains(&format!(
            "--force: detached program id {foreign} `xdp_pass` in native mode"
        ))),
        "{notices:?}"
    );
    assert_ne!(attached_program_id(&pair), Some(foreign));
    common::ping_all_answered(&pair, Family::V4, 3);
    let exit = stop(responder);
    assert_eq!(
        exit.totals(),
        (3, 3, 0),
        "answered by the responder: {}",
        exit.finished.stdout
    );
    assert_nothing_attached(&pair);
}

/// Runs `flood` from the client's namespace with an empty PATH; returns (status, stdout, stderr).
fn flood_without_path(pair: &NetnsPair, exe: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = pair
        .command_in(Side::Client, "timeout")
        .args(["-s", "INT", "30"])
        .arg(exe)
        .args(["flood", "--iface", pair.client_if(), "--json"])
        .args(args)
        .output()
        .expect("running flood");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    )
}

#[test]
fn flood_finds_the_destination_mac_in_the_neighbour_table_through_netlink() {
    let pair = pair(1);
    let responder = start(&pair, &["--stats-interval", "0"]);
    let no_path = EmptyPath::new("flood");
    let mut sent = 0;
    for family in [Family::V4, Family::V6] {
        let dst = pair.addr(Side::Responder, family).to_string();
        #[rustfmt::skip]
        let (code, stdout, stderr) = flood_without_path(&pair, &no_path.exe(), &["--dst", &dst, "--count", "2000", "--rate", "10k", "--duration", "10"]);
        assert_eq!(code, Some(0), "{stderr}");
        let report: responder_json::FloodReport =
            serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
        assert_eq!((report.sent, report.correct, report.wrong), (2000, 2000, 0), "{stdout}");
        sent += report.sent;
    }
    // No neighbour entry: one line that says what to do.
    let (code, _, stderr) = flood_without_path(&pair, &no_path.exe(), &["--dst", "198.18.0.99", "--count", "1"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("no neighbour entry for 198.18.0.99") && stderr.contains("--dst-mac"),
        "{stderr}"
    );
    let exit = stop(responder);
    assert_eq!(exit.totals(), (sent, sent, 0), "{}", exit.finished.stdout);
}

/// Runs `ip -batch -` in the responder's namespace with `lines` on stdin.
fn ip_batch(pair: &NetnsPair, lines: &str) {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = pair
        .command_in(Side::Responder, "ip")
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("ip -batch");
    child.stdin.take().unwrap().write_all(lines.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "ip -batch failed");
}

#[test]
fn lost_notifications_are_recovered_from_a_full_dump() {
    let pair = pair(1);
    let mut responder = start(&pair, &["--stats-interval", "0"]);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(responder.pid()).unwrap());
    let count = 1000u32;
    let addr = |n: u32| format!("2001:db8:0:1::1:{n:x}");
    let (first, last) = (addr(1), addr(count));
    client_neighbour(&pair, &last, pair.mac(Side::Responder));

    // While the responder is stopped, a thousand notifications overflow its socket's buffer.
    let mut add = String::new();
    let mut del = String::new();
    for n in 1..=count {
        add.push_str(&format!("addr add {}/64 dev {} nodad\n", addr(n), pair.responder_if()));
        del.push_str(&format!("addr del {}/64 dev {}\n", addr(n), pair.responder_if()));
    }
    for (lines, present) in [(&add, true), (&del, false)] {
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
        ip_batch(&pair, lines);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
        wait_notice(&mut responder, "the overflow notice", "overflowed");
        let event = responder
            .wait_for_event("the addresses after the dump", Duration::from_secs(5), |e| {
                matches!(e, Event::Addresses(_))
            })
            .unwrap();
        let Event::Addresses(listed) = event else {
            unreachable!()
        };
        for a in [&first, &last] {
            assert_eq!(
                listed.addresses.contains(a),
                present,
                "{a} in {:?}",
                listed.addresses.len()
            );
        }
        let pings = ping_to(&pair, &last, 5, Duration::from_millis(20), Duration::from_secs(2));
        assert_eq!(pings.received, if present { 5 } else { 0 }, "{}", pings.raw);
    }
    let exit = stop(responder);
    assert_eq!(
        exit.totals(),
        (5, 5, 0),
        "answered by the responder: {}",
        exit.finished.stdout
    );
}

#[test]
fn an_interface_whose_only_address_is_tentative_starts_and_answers_after_dad() {
    let pair = pair(1);
    slow_dad(&pair, 3, 1000);
    ip(&pair, &["addr", "flush", "dev", pair.responder_if()]);
    let addr = "2001:db8:0:1::40";
    ip(
        &pair,
        &["addr", "add", &format!("{addr}/64"), "dev", pair.responder_if()],
    );
    let mut responder = start(&pair, &["--stats-interval", "0"]);
    assert!(
        kernel_flags(&pair, addr).is_some_and(|f| f.contains(&"tentative".to_string())),
        "DAD ended before the responder was ready: make it slower"
    );
    assert!(responder.ready().addresses.is_empty(), "{:?}", responder.ready());
    client_neighbour(&pair, addr, pair.mac(Side::Responder));
    wait_addresses(&mut responder, addr, true);
    let after = ping_to(&pair, addr, 10, Duration::from_millis(20), Duration::from_secs(5));
    assert_eq!(after.received, 10, "{}", after.raw);
    let exit = stop(responder);
    assert_eq!(exit.totals(), (10, 10, 0), "{}", exit.finished.stdout);
}
