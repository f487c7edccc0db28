//! Least privilege, on the real binary in a network namespace:
//!
//! * started as root, every thread of the running responder has empty effective, permitted,
//!   inheritable, ambient and bounding sets and no_new_privs, while pings are still answered by
//!   it and shutdown still unregisters and detaches (the kernel answers again);
//! * started as an unprivileged user with exactly the capabilities of
//!   `config/afxdp-responder.service` (read from the unit file), with no_new_privs and the same
//!   bounding set, it starts, answers, drops them and detaches; without any one of them it does not
//!   start (so the set is minimal).
//!
//! Needs root; `./run.sh test` runs these one at a time.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use afxdp_lab::{Family, NetnsPair, ResponderExit, ResponderProcess};
use afxdp_responder::privileges::{self, REQUIRED_CAPABILITIES, ThreadCaps};
use common::{EXE, assert_nothing_attached, link_details, pair, ping_all_answered, start, stop};

const UNIT: &str = include_str!("../../config/afxdp-responder.service");
/// The unprivileged user the responder runs as (nobody).
const UID: u32 = 65534;
/// RLIMIT_MEMLOCK for the unprivileged runs: the common default, below one default UMEM (16 MiB).
const MEMLOCK: u64 = 8 << 20;

/// The capability sets of every thread of `pid`, checked to be empty (and no_new_privs set).
fn assert_unprivileged(pid: u32) -> Vec<ThreadCaps> {
    let threads = privileges::threads(&pid.to_string()).expect("reading /proc/<pid>/task");
    for t in &threads {
        assert!(t.is_unprivileged(), "thread still privileged: {t}");
        assert_eq!((t.effective, t.permitted), (0, 0), "{t}");
        assert!(t.no_new_privs, "no_new_privs not set: {t}");
    }
    threads
}

/// The responder said at start-up that it dropped its capabilities.
#[track_caller]
fn assert_reports_dropped_capabilities(responder: &ResponderProcess) {
    assert_eq!(responder.ready().capabilities, "none", "{:?}", responder.ready());
}

/// Pings v4 and v6 `count` times each; all must be answered.
fn ping_both(pair: &NetnsPair, count: u32) {
    for family in [Family::V4, Family::V6] {
        ping_all_answered(pair, family, count);
    }
}

/// Stops the responder and checks that it exited cleanly, answered `sent` pings itself, and left
/// nothing attached (the kernel answers again).
fn stop_and_check(pair: &NetnsPair, responder: ResponderProcess, sent: u64) -> ResponderExit {
    let exit = stop(responder);
    assert!(exit.summary.is_some(), "no summary: {}", exit.finished.stdout);
    let (rx, tx, _) = exit.totals();
    assert_eq!((rx, tx), (sent, sent), "{}", exit.finished.stdout);
    assert_nothing_attached(pair);
    ping_both(pair, 1); // the kernel's own replies
    exit
}

#[test]
fn as_root_every_thread_drops_every_capability_and_pings_are_still_answered() {
    let pair = pair(2);
    let responder = start(&pair, &["--queues", "0-1", "--stats-interval", "0"]);
    assert_reports_dropped_capabilities(&responder);
    let threads = assert_unprivileged(responder.pid());
    assert!(threads.len() >= 3, "main thread and two workers: {threads:?}");
    assert!(
        threads.iter().filter(|t| t.name.starts_with("afxdp-q")).count() == 2,
        "{threads:?}"
    );
    for t in &threads {
        // Started as root, it had CAP_SETPCAP: the bounding set is empty too.
        assert_eq!(t.bounding, 0, "{t}");
    }
    ping_both(&pair, 5);
    // Still unprivileged after the traffic, and the totals prove the responder answered.
    assert_unprivileged(responder.pid());
    stop_and_check(&pair, responder, 10);
}

/// The value of `key=` in the unit, split on whitespace.
fn unit_list(key: &str) -> Vec<String> {
    let line = UNIT
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("{key}= missing from the unit"));
    line.split_whitespace().map(str::to_string).collect()
}

/// `CAP_NET_ADMIN` -> `net_admin`, as setpriv spells it.
fn setpriv_name(cap: &str) -> String {
    cap.trim_start_matches("CAP_").to_ascii_lowercase()
}

/// A copy of the binary that the unprivileged user may execute, and a wrapper that runs it the
/// way the unit does: as that user, with `caps` inheritable, ambient and bounding, no_new_privs,
/// and RLIMIT_MEMLOCK at the common default. Removed on drop.
struct Unprivileged {
    dir: PathBuf,
}

impl Unprivileged {
    fn new(tag: &str, caps: &[String]) -> Self {
        let dir = std::env::temp_dir().join(format!("afxdp-priv-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let exe = dir.join("afxdp-responder");
        fs::copy(EXE, &exe).unwrap();
        fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
        let list: String = caps.iter().map(|c| format!(",+{}", setpriv_name(c))).collect();
        let script = format!(
            "#!/bin/sh\nexec prlimit --memlock={MEMLOCK}:{MEMLOCK} setpriv --reuid={UID} --regid={UID} --clear-groups \
             --nnp --inh-caps=-all{list} --ambient-caps=-all{list} --bounding-set=-all{list} {} \"$@\"\n",
            exe.display()
        );
        let wrapper = dir.join("run");
        fs::write(&wrapper, script).unwrap();
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
        Unprivileged { dir }
    }

    fn wrapper(&self) -> PathBuf {
        self.dir.join("run")
    }
}

impl Drop for Unprivileged {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn the_units_capability_set_is_exactly_the_required_one() {
    let ambient = unit_list("AmbientCapabilities");
    let bounding = unit_list("CapabilityBoundingSet");
    let mut required: Vec<String> = REQUIRED_CAPABILITIES.iter().map(|(c, _)| c.to_string()).collect();
    let (mut a, mut b) = (ambient.clone(), bounding.clone());
    a.sort();
    b.sort();
    required.sort();
    assert_eq!(a, required, "AmbientCapabilities");
    assert_eq!(b, required, "CapabilityBoundingSet");
    assert_eq!(unit_list("NoNewPrivileges"), ["yes"]);
    assert!(unit_list("User").first().is_some_and(|u| u != "root"));
}

#[test]
fn as_an_unprivileged_user_with_the_units_capabilities_it_runs_and_drops_them() {
    let caps = unit_list("AmbientCapabilities");
    let wrapper = Unprivileged::new("unit", &caps);
    let pair = pair(1);
    let responder = ResponderProcess::start(&pair, &wrapper.wrapper(), &["--queues", "0", "--stats-interval", "0"])
        .expect("starting the responder as nobody with the unit's capabilities");
    let status = fs::read_to_string(format!("/proc/{}/status", responder.pid())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap().to_string();
    assert!(
        uid_line.split_whitespace().skip(1).all(|u| u == UID.to_string()),
        "{uid_line}"
    );
    let mask: u64 = REQUIRED_CAPABILITIES.iter().map(|(c, _)| c.bitmask()).sum();
    for t in assert_unprivileged(responder.pid()) {
        // No CAP_SETPCAP to empty it: the bounding set stays exactly the unit's.
        assert_eq!(t.bounding, mask, "{t}");
    }
    assert_reports_dropped_capabilities(&responder);
    ping_both(&pair, 5);
    stop_and_check(&pair, responder, 10);
}

#[test]
fn without_any_one_of_the_units_capabilities_it_does_not_start() {
    let caps = unit_list("AmbientCapabilities");
    let pair = pair(1);
    for missing in &caps {
        let fewer: Vec<String> = caps.iter().filter(|c| *c != missing).cloned().collect();
        let wrapper = Unprivileged::new(&setpriv_name(missing), &fewer);
        match ResponderProcess::start(&pair, &wrapper.wrapper(), &["--queues", "0", "--stats-interval", "0"]) {
            Ok(responder) => {
                let exit = responder.stop();
                panic!("started without {missing}: {exit:?}");
            }
            Err(e) => {
                // It failed at the step that needs the missing capability, not for another reason.
                let e = e.to_string();
                let step = match missing.as_str() {
                    "CAP_BPF" => "failed to create map", // whichever map comes first
                    "CAP_PERFMON" => "only with CAP_PERFMON",
                    "CAP_NET_ADMIN" => "failed to create map `xsks`",
                    "CAP_NET_RAW" => "socket(AF_XDP): Operation not permitted",
                    "CAP_IPC_LOCK" => "setsockopt(XDP_UMEM_REG): No buffer space available",
                    other => panic!("no expectation for {other}"),
                };
                assert!(e.contains(step), "without {missing}, expected {step:?}: {e}");
            }
        }
        let details = link_details(&pair);
        assert!(
            !details.contains("prog/xdp"),
            "left attached without {missing}: {details}"
        );
    }
}
