//! Deploying with systemd, on the real binary:
//!
//! * the template unit `config/afxdp-responder@.service` has the same `[Service]` and `[Install]`
//!   sections as `config/afxdp-responder.service` (the five capabilities, the sandboxing, the
//!   restart policy), only its command line differs;
//! * `systemd-analyze verify` (Debian's systemd) accepts both units with no warning, the manual
//!   page their `Documentation=` names included;
//! * the template unit's `ExecStart=` **as written** (parsed from the file, `%i` replaced by the
//!   lab's interface, `/etc/afxdp-responder/` by a temporary directory holding `<iface>.toml`)
//!   notifies readiness (`READY=1` on `$NOTIFY_SOCKET`, as `Type=notify` expects), answers real
//!   pings (client `nstat` and `tcpdump -vvv` clean), and after a `kill -9` the same command line
//!   (what `Restart=` runs, or an upgrade's new binary) starts again and answers.
//!
//! The verify test needs no root; the namespace test does. `./run.sh test` runs them one at a time.

mod common;

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use afxdp_lab::{Background, Family, NetnsPair, ResponderExit, Side};
use common::{EXE, assert_nothing_attached, pair, ping_all_answered, ping_sizes};
use responder_json::Event;

const UNIT: &str = include_str!("../../config/afxdp-responder.service");
const TEMPLATE: &str = include_str!("../../config/afxdp-responder@.service");
const MAN_PAGE: &str = include_str!("../../docs/man/man1/afxdp-responder.1");
/// Where the units expect the binary (the Debian package puts it there).
const INSTALLED_EXE: &str = "/usr/bin/afxdp-responder";
/// Where the template unit expects the per-interface files.
const CONFIG_DIR: &str = "/etc/afxdp-responder/";

/// A temporary directory, removed on drop (also when a test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("afxdp-deploy-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The settings of section `[name]`: every line that is neither empty nor a comment.
fn section<'a>(unit: &'a str, name: &str) -> Vec<&'a str> {
    let header = format!("[{name}]");
    unit.lines()
        .skip_while(|l| *l != header)
        .skip(1)
        .take_while(|l| !l.starts_with('['))
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect()
}

/// The words of the unit's `ExecStart=` line (the units use no quoting, checked here).
fn exec_start(unit: &str) -> Vec<String> {
    let line = section(unit, "Service")
        .into_iter()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart= in [Service]");
    assert!(
        !line.contains(['"', '\'', '\\', '$']),
        "quoting or variables in ExecStart=: extend this parser ({line})"
    );
    line.split_whitespace().map(str::to_string).collect()
}

#[test]
fn the_template_unit_has_the_same_privileges_sandboxing_and_restart_policy() {
    let single: Vec<&str> = section(UNIT, "Service")
        .into_iter()
        .filter(|l| !l.starts_with("ExecStart="))
        .collect();
    let template: Vec<&str> = section(TEMPLATE, "Service")
        .into_iter()
        .filter(|l| !l.starts_with("ExecStart="))
        .collect();
    assert_eq!(template, single, "[Service] of the two units differ beyond ExecStart=");
    assert_eq!(section(TEMPLATE, "Install"), section(UNIT, "Install"));
    for wanted in [
        "Type=notify",
        "Restart=on-failure",
        "AmbientCapabilities=CAP_BPF CAP_PERFMON CAP_NET_ADMIN CAP_NET_RAW CAP_IPC_LOCK",
        "User=afxdp-responder",
    ] {
        assert!(template.contains(&wanted), "{wanted} missing from the template unit");
    }
    assert_eq!(
        exec_start(TEMPLATE),
        [
            INSTALLED_EXE,
            "--config",
            "/etc/afxdp-responder/%i.toml",
            "--iface",
            "%i"
        ]
    );
    assert_eq!(exec_start(UNIT)[0], INSTALLED_EXE);
}

/// Runs `systemd-analyze verify` on `unit` (a path inside `dir`), with the committed manual page
/// on `MANPATH`; returns (success, stderr).
fn verify(dir: &Path, unit: &str) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(["verify", unit])
        .current_dir(dir)
        .env("MANPATH", dir.join("man"))
        .output()
        .expect("systemd-analyze (Debian's systemd package) must be installed");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `systemd-analyze verify` checks that the `ExecStart=` binary exists and is executable and that
/// every `man:` page of `Documentation=` is found, so the test verifies copies of the units whose
/// `ExecStart=` names the binary under test, with the committed manual page on `MANPATH`;
/// everything else is the unit as committed. A warning on stderr fails the test.
#[test]
fn systemd_analyze_verify_accepts_both_units() {
    let dir = TempDir::new("verify");
    let man1 = dir.path().join("man/man1");
    fs::create_dir_all(&man1).unwrap();
    fs::write(man1.join("afxdp-responder.1"), MAN_PAGE).unwrap();
    for (file, text) in [
        ("afxdp-responder.service", UNIT),
        ("afxdp-responder@.service", TEMPLATE),
    ] {
        assert!(text.contains(INSTALLED_EXE), "{file}");
        fs::write(dir.path().join(file), text.replace(INSTALLED_EXE, EXE)).unwrap();
    }
    for unit in ["./afxdp-responder.service", "./afxdp-responder@veth0.service"] {
        let (ok, stderr) = verify(dir.path(), unit);
        assert!(
            ok && stderr.trim().is_empty(),
            "systemd-analyze verify {unit}: {stderr}"
        );
    }
    // The check can fail: an unknown key is reported.
    fs::write(
        dir.path().join("afxdp-responder@.service"),
        TEMPLATE
            .replace(INSTALLED_EXE, EXE)
            .replace("Type=notify", "Type=notify\nNoSuchKey=1"),
    )
    .unwrap();
    let (_, stderr) = verify(dir.path(), "./afxdp-responder@veth0.service");
    assert!(stderr.contains("NoSuchKey"), "{stderr}");
}

/// The template unit's `ExecStart=` for instance `iface`, with the file under `config_dir` and the
/// binary under test.
fn template_command(iface: &str, config_dir: &Path) -> Vec<String> {
    let mut argv: Vec<String> = exec_start(TEMPLATE)
        .into_iter()
        .map(|w| {
            w.replace(CONFIG_DIR, &format!("{}/", config_dir.display()))
                .replace("%i", iface)
        })
        .collect();
    assert_eq!(argv[0], INSTALLED_EXE);
    argv[0] = EXE.to_string();
    argv
}

/// Starts the command in the responder namespace with `$NOTIFY_SOCKET`, waits for `READY=1` on it
/// and then for the `ready` event.
fn start_as_systemd(pair: &NetnsPair, argv: &[String], notify: &UnixDatagram, notify_path: &Path) -> Background {
    let mut cmd = pair.command_in(Side::Responder, &argv[0]);
    cmd.args(&argv[1..]).env("NOTIFY_SOCKET", notify_path);
    let mut process = Background::spawn(cmd).expect("starting the template unit's command");
    let mut buf = [0u8; 64];
    let n = notify
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no READY=1 within 20 s ({e}); {:?}", process.stdout_so_far()));
    assert_eq!(&buf[..n], b"READY=1");
    process
        .wait_for("the ready event", Duration::from_secs(5), |l| {
            matches!(Event::parse_line(l), Some(Event::Ready(_)))
        })
        .expect("a ready event after READY=1");
    process
}

#[test]
fn the_template_units_command_answers_pings_and_starts_again_after_kill_9() {
    let pair = pair(2);
    let dir = TempDir::new("unit");
    let iface = pair.responder_if();
    // The per-interface file as an operator writes it: no `iface` (the instance name gives it);
    // JSON output so that the test reads the responder's events, not its human text.
    let config = dir.path().join(format!("{iface}.toml"));
    fs::write(&config, "queues = \"all\"\nstats-interval = 0\noutput = \"json\"\n").unwrap();
    let argv = template_command(iface, dir.path());
    assert!(argv.contains(&config.display().to_string()), "{argv:?}");
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("binding the notify socket");
    notify.set_read_timeout(Some(Duration::from_secs(20))).unwrap();

    let first = start_as_systemd(&pair, &argv, &notify, &notify_path);
    for family in [Family::V4, Family::V6] {
        ping_sizes(&pair, family).check();
    }
    // kill -9, as a crash or an impatient upgrade does: the bpf_link goes with the process.
    let status = Command::new("kill")
        .args(["-KILL", &first.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let finished = first
        .stop(Duration::from_secs(5))
        .expect("reaping the killed responder");
    assert!(!finished.status.success(), "killed: {:?}", finished.status);
    assert_nothing_attached(&pair);

    // What Restart= (or the upgraded package's start) runs: the same command line.
    let second = start_as_systemd(&pair, &argv, &notify, &notify_path);
    for family in [Family::V4, Family::V6] {
        ping_all_answered(&pair, family, 5);
    }
    let finished = second.stop(Duration::from_secs(10)).expect("stopping");
    let mut buf = [0u8; 64];
    let n = notify.recv(&mut buf).expect("STOPPING=1");
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert!(finished.status.success(), "{}", finished.stderr);
    let exit = ResponderExit::new(finished);
    let (rx, tx, _) = exit.totals();
    assert_eq!((rx, tx), (10, 10), "the restarted responder answered every ping itself");
    assert_eq!(
        exit.queues().len(),
        2,
        "queues = \"all\" from the file: both queues served"
    );
    assert_nothing_attached(&pair);
}
