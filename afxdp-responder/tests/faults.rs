//! Faults the responder must survive, or refuse cleanly: the interface going down and up or
//! disappearing, a second instance, another XDP program, a hostile start-up environment, and a
//! flood larger than its rings. Each test is bounded in time and leaves nothing behind (the lab
//! removes its namespaces; every test also checks that no XDP program stays attached).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use afxdp_lab::{Background, Family, NetnsPair, PingSpec, ResponderProcess, Side, ping};
use common::{
    EXE, TempDir, assert_frames_accounted, assert_nothing_attached, attach_with_ip, attached_program_id, finish_ping,
    ip, pair, ping_all_answered, ping_in_background, start, stop,
};
use responder_json::Event;

/// Waits until the responder's veth end has its carrier back.
fn wait_carrier(pair: &NetnsPair) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ip(pair, &["-o", "link", "show", "dev", pair.responder_if()]).contains("LOWER_UP") {
        assert!(Instant::now() < deadline, "no carrier after link up");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded) for a responder process to end on its own.
fn wait_exit(responder: &mut ResponderProcess, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while responder.is_running() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

#[test]
fn interface_down_and_up_while_pings_flow_is_survived() {
    let pair = pair(1);
    let mut responder = start(&pair, &["--stats-interval", "0"]);
    let flowing = ping_in_background(
        &pair,
        &PingSpec::new(Family::V4, 60)
            .interval(Duration::from_millis(50))
            .deadline(Duration::from_secs(10)),
    );
    std::thread::sleep(Duration::from_millis(700));
    ip(&pair, &["link", "set", "dev", pair.responder_if(), "down"]);
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        responder.is_running(),
        "the responder must survive the interface going down"
    );
    ip(&pair, &["link", "set", "dev", pair.responder_if(), "up"]);
    wait_carrier(&pair);
    let during = finish_ping(flowing, Duration::from_secs(15));
    assert!(
        responder.is_running(),
        "the responder must survive the interface coming back"
    );
    assert!(during.received > 0, "{}", during.raw);
    let after_v4 = ping_all_answered(&pair, Family::V4, 10);

    // Linux flushed the IPv6 address on the way down (keep_addr_on_down is off): like the kernel,
    // the responder no longer answers for it, and answers again once it is back.
    let v6 = format!("{}/{}", pair.ipv6(Side::Responder), pair.config().v6_prefix);
    let had_v6 = ip(&pair, &["-6", "addr", "show", "dev", pair.responder_if()]).contains(&v6);
    assert!(
        !had_v6,
        "the kernel keeps IPv6 addresses over down/up here: the test needs adapting"
    );
    let gone_v6 = ping(
        &pair,
        &PingSpec::new(Family::V6, 3)
            .interval(Duration::from_millis(20))
            .deadline(Duration::from_secs(2)),
    )
    .unwrap();
    assert_eq!(gone_v6.received, 0, "answered for a removed address: {}", gone_v6.raw);
    ip(&pair, &["addr", "add", &v6, "dev", pair.responder_if(), "nodad"]);
    // Answered from the `addresses` event on (rtnetlink notification, no polling window).
    let v6_addr = pair.ipv6(Side::Responder).to_string();
    responder
        .wait_for_event(
            "the addresses event with the IPv6 address back",
            Duration::from_secs(5),
            |e| matches!(e, Event::Addresses(a) if a.addresses.contains(&v6_addr)),
        )
        .expect("the responder follows the re-added address");
    let back_v6 = ping_all_answered(&pair, Family::V6, 10);

    let exit = stop(responder);
    let answered = during.received + after_v4.received + back_v6.received;
    // Down flushed the neighbour table (permanent entries too): with forwarding off the host
    // mirror follows, so the first request of each family after it is answered by the kernel,
    // which resolves the client first, as Linux does (counted as mirror_passed.no_neighbour).
    let by_kernel = exit.expect_summary().program.mirror_passed.no_neighbour;
    assert!(by_kernel <= 2, "{}", exit.finished.stdout);
    let by_responder = answered - by_kernel;
    assert_eq!(
        exit.totals(),
        (by_responder, by_responder, 0),
        "{}",
        exit.finished.stdout
    );
    assert!(
        !exit.address_changes().is_empty(),
        "the address change is reported: {}",
        exit.finished.stdout
    );
    assert_nothing_attached(&pair);
}

#[test]
fn interface_deleted_while_running_exits_with_one_line() {
    let pair = pair(1);
    let mut responder = start(&pair, &["--stats-interval", "0"]);
    ping_all_answered(&pair, Family::V4, 3);
    ip(&pair, &["link", "del", "dev", pair.responder_if()]);
    assert!(
        wait_exit(&mut responder, Duration::from_secs(5)),
        "the responder must notice that its interface is gone"
    );
    let exit = responder.stop().unwrap();
    let stderr = exit.finished.stderr.trim();
    println!("{stderr}");
    assert_eq!(exit.finished.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains(pair.responder_if()) && stderr.contains("was removed"),
        "{stderr}"
    );
    // It still accounted for its work and its frames on the way out.
    assert_eq!(exit.totals().1, 3, "{}", exit.finished.stdout);
    assert_frames_accounted(&exit);
    let left = Command::new("ip")
        .args(["netns", "pids", pair.responder_ns()])
        .output()
        .unwrap();
    let left = String::from_utf8_lossy(&left.stdout);
    assert!(left.trim().is_empty(), "processes left in the namespace: {left}");
}

/// Runs the responder binary in the responder namespace with `args`, bounded by `timeout(1)`
/// (a start that is not refused would otherwise run forever); returns (exit code, stderr, stdout).
fn run_bounded(pair: &NetnsPair, prefix: &[&str], exe: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = pair.command_in(Side::Responder, "timeout");
    cmd.args(["-s", "INT", "20"]).args(prefix).arg(exe).args(args);
    let out = cmd.output().expect("running the responder");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// [`run_bounded`] for the responder binary itself, run as root on the responder's interface.
fn run_as_root(pair: &NetnsPair, args: &[&str]) -> (Option<i32>, String, String) {
    let mut all = vec!["--iface", pair.responder_if()];
    all.extend_from_slice(args);
    run_bounded(pair, &[], EXE, &all)
}

/// Asserts a refused start: exit code 1, one line on stderr that contains every `needle`.
fn assert_refused(what: &str, (code, stderr, _): &(Option<i32>, String, String), needles: &[&str]) {
    println!("{what}: {stderr}");
    assert_eq!(*code, Some(1), "{what}: exit code; stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{what}: one line, got: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{what}: {needle:?} missing from: {stderr}");
    }
}

#[test]
fn a_second_instance_on_the_same_interface_is_refused_naming_the_first() {
    let pair = pair(1);
    let first = start(&pair, &["--stats-interval", "0"]);
    let second = run_as_root(&pair, &["--stats-interval", "0"]);
    let pid = format!("process {} (afxdp-respond", first.pid());
    assert_refused(
        "second instance",
        &second,
        &["already has an XDP program", &pid, "stop process"],
    );
    // The first one was not disturbed.
    ping_all_answered(&pair, Family::V4, 3);
    let exit = stop(first);
    assert_eq!(exit.totals(), (3, 3, 0), "{}", exit.finished.stdout);
    assert_nothing_attached(&pair);
}

#[test]
fn another_xdp_program_is_refused_with_the_remedy_and_force_replaces_it() {
    let pair = pair(1);
    // A program attached the old way, with netlink, as `ip` and many tools do.
    // The same object the responder embeds, as a file for `ip`.
    attach_with_ip(&pair, "xdpgeneric", "redirect", redirect_ebpf::REDIRECT);
    let foreign = attached_program_id(&pair).expect("the foreign program is attached");

    let refused = run_as_root(&pair, &["--stats-interval", "0"]);
    let remedy = format!("ip link set dev {} xdpgeneric off", pair.responder_if());
    assert_refused(
        "foreign program",
        &refused,
        &[&format!("program id {foreign}"), &remedy, "--force"],
    );
    assert_eq!(attached_program_id(&pair), Some(foreign.clone()), "left as it was");

    // --force: detach it, attach ours, answer.
    let responder = start(&pair, &["--force", "--stats-interval", "0"]);
    let notices = responder.notices();
    assert!(
        notices
            .iter()
            .any(|n| n.contains(&format!("--force: detached program id {foreign}"))),
        "{notices:?}"
    );
    assert_ne!(attached_program_id(&pair), Some(foreign));
    ping_all_answered(&pair, Family::V4, 3);
    let exit = stop(responder);
    assert_eq!(
        exit.totals(),
        (3, 3, 0),
        "answered by the responder: {}",
        exit.finished.stdout
    );
    // The replaced program is gone for good: not re-attached at exit.
    assert_nothing_attached(&pair);
}

#[test]
fn force_does_not_take_over_another_responder() {
    let pair = pair(1);
    let first = start(&pair, &["--stats-interval", "0"]);
    let second = run_as_root(&pair, &["--force", "--stats-interval", "0"]);
    assert_refused(
        "--force against a bpf_link",
        &second,
        &[&format!("process {}", first.pid()), "--force can"],
    );
    stop(first);
    assert_nothing_attached(&pair);
}

/// A copy of the responder binary that any user may run (the build directory may be private).
struct PublicCopy {
    dir: TempDir,
}

impl PublicCopy {
    fn new() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("afxr-faults");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::copy(EXE, dir.path().join("afxdp-responder")).unwrap();
        std::fs::set_permissions(
            dir.path().join("afxdp-responder"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        PublicCopy { dir }
    }

    fn exe(&self) -> String {
        self.dir.path().join("afxdp-responder").to_string_lossy().into_owned()
    }
}

#[test]
fn a_hostile_start_up_environment_gives_one_line_and_a_non_zero_exit() {
    // (Queues beyond the device's and an interface that does not exist: responder_netns.rs,
    // bad_start_up_input_gives_one_line_and_a_non_zero_exit.)
    let pair = pair(1);
    let copy = PublicCopy::new();
    let exe = copy.exe();
    let iface = ["--iface", pair.responder_if(), "--stats-interval", "0"];

    let nobody = run_bounded(
        &pair,
        &["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"],
        &exe,
        &iface,
    );
    assert_refused("user nobody", &nobody, &["permission denied", "CAP_BPF"]);

    let drop_caps = |caps: &str| {
        let inh = format!("--inh-caps={caps}");
        let bounding = format!("--bounding-set={caps}");
        run_bounded(&pair, &["setpriv", &inh, &bounding], &exe, &iface)
    };
    assert_refused("without CAP_NET_RAW", &drop_caps("-net_raw"), &["CAP_NET_RAW"]);
    assert_refused(
        "without CAP_PERFMON",
        &drop_caps("-perfmon,-sys_admin"),
        &["CAP_PERFMON"],
    );
    let no_ipc_lock = run_bounded(
        &pair,
        &[
            "prlimit",
            "--memlock=65536",
            "setpriv",
            "--inh-caps=-ipc_lock",
            "--bounding-set=-ipc_lock",
        ],
        &exe,
        &iface,
    );
    assert_refused(
        "without CAP_IPC_LOCK, memlock 64 KiB",
        &no_ipc_lock,
        &["CAP_IPC_LOCK", "ulimit -l", "16 MiB"],
    );
    assert_nothing_attached(&pair);

    // Root with a tiny locked-memory limit: not needed (CAP_IPC_LOCK, memcg accounting), so it
    // runs and answers.
    let mut cmd = pair.command_in(Side::Responder, "prlimit");
    cmd.args(["--memlock=65536", &exe])
        .args(iface)
        .args(["--output", "json"]);
    let mut process = Background::spawn(cmd).unwrap();
    process
        .wait_for("the ready event", Duration::from_secs(20), |line| {
            matches!(Event::parse_line(line), Some(Event::Ready(_)))
        })
        .expect("starts with memlock 64 KiB");
    let report = ping(&pair, &PingSpec::new(Family::V4, 3).interval(Duration::from_millis(20))).unwrap();
    let finished = process.stop(Duration::from_secs(10)).unwrap();
    assert_eq!(report.received, 3, "{}", report.raw);
    assert!(finished.status.success(), "{}", finished.stderr);
    let exit = afxdp_lab::ResponderExit::new(finished);
    assert_eq!(exit.totals(), (3, 3, 0), "{}", exit.finished.stdout);
    assert!(
        exit.finished.stderr.lines().all(|l| l.contains("warning")),
        "at most a warning: {}",
        exit.finished.stderr
    );

    // An interface without any address: nothing to answer for.
    ip(&pair, &["addr", "flush", "dev", pair.responder_if()]);
    let bare = run_bounded(&pair, &[], &exe, &iface);
    assert_refused(
        "no addresses",
        &bare,
        &["has no IPv4 or IPv6 unicast address", "ip addr add"],
    );
    assert_nothing_attached(&pair);
}

#[test]
fn a_flood_larger_than_the_rings_is_counted_and_survived() {
    let pair = pair(1);
    #[rustfmt::skip]
    let tiny = [
        "--stats-interval", "1", "--rx-size", "64", "--fill-size", "128", "--comp-size", "64",
        "--tx-size", "64", "--batch", "16",
    ];
    let responder = start(&pair, &tiny);
    // Three flood pings with 500 requests in flight each: 1500 frames at once against a
    // 64-slot RX ring. Bounded: 20000 requests and 10 s each.
    let target = pair.ipv4(Side::Responder).to_string();
    let floods: Vec<Background> = (0..3)
        .map(|_| {
            let mut cmd = pair.command_in(Side::Client, "ping");
            cmd.args(["-4", "-n", "-q", "-f", "-l", "500", "-c", "20000", "-w", "10", &target]);
            Background::spawn(cmd).expect("flood ping")
        })
        .collect();
    let mut lost = 0;
    for flood in floods {
        let report = finish_ping(flood, Duration::from_secs(20));
        lost += report.lost();
    }
    // Recovered: ordinary pings are all answered again.
    ping_all_answered(&pair, Family::V4, 10);
    let exit = stop(responder);
    let stdout = &exit.finished.stdout;

    println!("{stdout}");
    let kernel = exit.queue(0).unwrap_or_else(|| panic!("no queue 0: {stdout}")).kernel;
    let dropped = kernel.dropped;
    assert!(dropped > 0, "the flood must overflow the rings: {stdout}");
    assert!(lost > 0, "the clients saw losses");

    let (rx, tx, app_dropped) = exit.totals();
    assert_eq!(
        (tx, app_dropped),
        (rx, 0),
        "whatever reached the ring was answered: {stdout}"
    );
    assert_eq!(
        exit.handled(),
        Some(rx + dropped),
        "every redirected frame was either answered or counted by the kernel: {stdout}"
    );
    assert_nothing_attached(&pair);
}
