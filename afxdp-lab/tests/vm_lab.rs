//! The VM lab in CI: the kernel matrix on the newest of Debian's 6.1, 6.12 and 7.x, and the
//! responder in a QEMU guest (KVM where a probe boot works, else TCG) with a virtio-net NIC:
//! zero-copy, copy and auto on 7.x (pings, host counters, `tcpdump -vvv` on the tap, a bounded
//! flood, the frame census; two NIC queues), a refused zero-copy bind plus the copy fallback on
//! 6.12; and with an igb NIC (QEMU 10 from bookworm-backports) zero-copy and copy on 7.x.
//!
//! Root is required, and QEMU (`qemu-system-x86`); the guest kernels, busybox and QEMU 10 are
//! fetched into /var/cache/afxdp-lab on first use (a failure to reach the archive fails the test
//! in one line). Each guest's kernel, NIC, QEMU and accelerator are written to stderr (uncaptured).
//! Without root the tests panic with one clear line (never a silent pass). The matrix needs the
//! `xdp_verdicts` test binary in `$AFXDP_XDP_VERDICTS`: `./run.sh test` sets it (cargo cannot build it from inside a
//! running `cargo test`). Guests run one at a time; about 2 minutes in all on 2 cores.

use std::io::Write as _;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};

use afxdp_lab::vm::{
    CACHE_DIR, Cache, FloodSpec, GuestKernel, ModeRun, Nic, TEST_BINARY_ENV, TestBinary, VmConfig, VmReport,
    render_matrix, run_matrix, run_vm,
};
use afxdp_lab::{Family, LabError, one_line, require_root, responder_exe};

/// One guest at a time: two emulated guests on 2 cores would each take twice as long.
static ONE_GUEST: Mutex<()> = Mutex::new(());

fn one_guest() -> MutexGuard<'static, ()> {
    if let Err(err) = require_root() {
        panic!("{err}");
    }
    ONE_GUEST.lock().unwrap_or_else(|p| p.into_inner())
}

fn leftovers() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().expect("running ip");
    let prefix = format!("afxv-{}-", std::process::id());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .map(String::from)
        .collect()
}

/// A line in the test log even when the test passes (libtest captures only the print macros).
fn log(line: &str) {
    let _ = writeln!(std::io::stderr(), "vm_lab: {line}");
}

fn vm(kernel: GuestKernel, nic: Nic, queues: u32, modes: &[&str], flood: Option<FloodSpec>) -> VmReport {
    vm_with(kernel, nic, queues, modes, flood, &[])
}

/// [`vm`] with more options for the guest's responder (`--responder-arg`).
fn vm_with(
    kernel: GuestKernel,
    nic: Nic,
    queues: u32,
    modes: &[&str],
    flood: Option<FloodSpec>,
    responder_args: &[&str],
) -> VmReport {
    let cfg = VmConfig {
        kernel,
        nic,
        modes: modes.iter().map(|m| m.to_string()).collect(),
        queues,
        pings: 5,
        flood,
        echo: false,
        responder: responder_exe().unwrap_or_else(|e| panic!("{}", one_line(&e))),
        responder_args: responder_args.iter().map(|a| a.to_string()).collect(),
    };
    let report = run_vm(&cfg, &Cache::default(), Arc::new(AtomicBool::new(false)))
        .unwrap_or_else(|e| panic!("vm run on {kernel}: {}", one_line(&e)));
    log(&format!(
        "Linux {}, NIC {}, QEMU {}, accelerator {}, {} queue(s): {}",
        report.release,
        report.driver,
        report.qemu_version,
        report.accel,
        queues,
        report
            .modes
            .iter()
            .map(|m| format!("--mode {} got {:?}", m.requested, m.queue_modes()))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    assert_eq!(leftovers(), Vec::<String>::new(), "the tap namespace must be gone");
    report
}

fn assert_answered(run: &ModeRun) {
    let problems = run.problems();
    assert!(problems.is_empty(), "--mode {}: {problems:?}", run.requested);
    for family in [Family::V4, Family::V6] {
        let (_, ping) = run
            .pings
            .iter()
            .find(|(f, _)| *f == family)
            .expect("both families pinged");
        assert_eq!((ping.transmitted, ping.received), (5, 5), "{family:?}");
    }
    let capture = run.capture.as_ref().expect("tcpdump ran on the tap");
    assert_eq!(capture.replies, 10, "tcpdump -vvv saw every reply: {capture:?}");
    assert_eq!(
        capture.bad_checksums,
        Vec::<String>::new(),
        "tcpdump -vvv: no wrong checksum"
    );
    assert_eq!(capture.ttls, vec![64], "TTL / hop limit 64");
    let counters = run.counters.as_ref().expect("counters read");
    assert_eq!(counters.get("IcmpInEchoReps"), Some(5));
    assert_eq!(counters.get("Icmp6InEchoReplies"), Some(5));
    assert_eq!(counters.get("IcmpInCsumErrors"), Some(0));
    assert_eq!(counters.get("Icmp6InCsumErrors"), Some(0));
    let summary = run.summary.as_ref().expect("a summary event");
    for q in &summary.queues {
        assert!(q.frames.accounted, "queue {}: {:?}", q.queue, q.frames);
        if q.mode == "copy" {
            assert_eq!((q.frames.elsewhere, q.frames.in_driver), (0, 0), "{:?}", q.frames);
        } else {
            assert_eq!(q.frames.elsewhere, i64::from(q.frames.in_driver), "{:?}", q.frames);
        }
    }
}

fn assert_flood_answered(run: &ModeRun) {
    let f = run.flood.as_ref().expect("a flood report");
    assert!(
        f.sent > 0 && f.replies == f.sent && f.correct == f.sent,
        "--mode {}: {f:?}",
        run.requested
    );
    assert_eq!((f.wrong, f.lost), (0, 0), "--mode {}: {f:?}", run.requested);
}

#[test]
fn kernel_matrix_passes_on_6_1_6_12_and_7() {
    let _guest = one_guest();
    if std::env::var_os(TEST_BINARY_ENV).is_none() {
        panic!("set {TEST_BINARY_ENV} to the xdp_verdicts test binary: ./run.sh test does");
    }
    let test = TestBinary::find().unwrap_or_else(|e| panic!("{}", one_line(&e)));
    let rows = run_matrix(
        &GuestKernel::ALL,
        &test,
        &Cache::default(),
        false,
        Arc::new(AtomicBool::new(false)),
    )
    .unwrap_or_else(|e| panic!("{}", one_line(&e)));
    let table = render_matrix(&rows);
    println!("{table}");
    for row in &rows {
        log(&format!("matrix: Linux {}, accelerator {}", row.release, row.accel));
    }
    assert_eq!(rows.len(), 3);
    for row in &rows {
        assert_eq!(row.loads.len(), 5, "five XDP objects on {}:\n{table}", row.kernel);
        assert!(row.passed(), "{} failed:\n{table}", row.kernel);
    }
}

/// Rates every run answers fully on 2 shared cores under TCG (copy mode copies in the emulated
/// CPU: 5k pps; zero-copy answered 20k pps alone, 10k leaves room for the machine's other load).
fn flood() -> FloodSpec {
    FloodSpec {
        rate: "10k".into(),
        copy_rate: Some("5k".into()),
        duration: 3.0,
    }
}

#[test]
fn virtio_on_7_binds_zero_copy_and_copy_and_answers_everything() {
    let _guest = one_guest();
    let report = vm(
        GuestKernel::V7,
        Nic::Virtio,
        1,
        &["zero-copy", "copy", "auto"],
        Some(flood()),
    );
    assert_eq!(report.driver, "virtio_net");
    let [zc, copy, auto] = &report.modes[..] else {
        panic!("three modes ran: {:?}", report.modes)
    };
    assert_eq!(zc.queue_modes(), ["zero-copy"]);
    assert_eq!(copy.queue_modes(), ["copy"]);
    assert_eq!(
        auto.queue_modes(),
        ["zero-copy"],
        "auto takes zero-copy where the driver has it"
    );
    for run in [zc, copy, auto] {
        assert_answered(run);
        assert_flood_answered(run);
        assert_eq!(run.exit_code, Some(0));
    }
    let zc_summary = zc.summary.as_ref().unwrap();
    assert!(
        zc_summary.queues[0].frames.in_driver > 0,
        "a zero-copy driver holds RX buffers: {:?}",
        zc_summary.queues[0].frames
    );
}

#[test]
fn virtio_on_7_traces_frames_round_the_rings_in_zero_copy() {
    let _guest = one_guest();
    let report = vm_with(GuestKernel::V7, Nic::Virtio, 1, &["zero-copy"], None, &["--trace", "4"]);
    let run = &report.modes[0];
    assert_eq!(run.queue_modes(), ["zero-copy"]);
    assert_answered(run);
    // The first four requests (the uncounted IPv4 and IPv6 ones, then two counted IPv4), each
    // journey consistent (afxdp_lab::trace::Journey::check): in zero-copy mode too.
    assert_eq!(run.trace_journeys, 4, "{:?}", run.stderr);
    assert_eq!(run.trace_problems, Vec::<String>::new());
    assert!(
        run.stderr.iter().any(|l| l.starts_with("trace q0: zero-copy mode")),
        "{:?}",
        run.stderr
    );
}

#[test]
fn virtio_on_6_12_refuses_zero_copy_in_one_line_and_auto_falls_back_to_copy() {
    let _guest = one_guest();
    let report = vm(GuestKernel::V6_12, Nic::Virtio, 1, &["zero-copy", "auto"], None);
    let [zc, auto] = &report.modes[..] else {
        panic!("two modes ran: {:?}", report.modes)
    };
    assert!(zc.ready.is_none(), "6.12's virtio_net has no zero-copy");
    assert_eq!(zc.exit_code, Some(1));
    assert_eq!(zc.stderr.len(), 1, "one line: {:?}", zc.stderr);
    assert!(
        zc.stderr[0].contains("zero-copy is not supported by driver virtio_net"),
        "{:?}",
        zc.stderr
    );
    assert_eq!(auto.queue_modes(), ["copy"]);
    assert_answered(auto);
}

#[test]
fn virtio_on_7_with_two_queues_serves_both_in_zero_copy() {
    let _guest = one_guest();
    let report = vm(GuestKernel::V7, Nic::Virtio, 2, &["auto"], Some(flood()));
    let [auto] = &report.modes[..] else {
        panic!("one mode ran: {:?}", report.modes)
    };
    assert_eq!(auto.queue_modes(), ["zero-copy", "zero-copy"]);
    assert_answered(auto);
    assert_flood_answered(auto);
    let queues = &auto.summary.as_ref().unwrap().queues;
    assert_eq!(queues.len(), 2);
    // The flood sends one thread per tap queue, so each guest queue answers its half: a flood
    // that landed on one queue only (the lab's old single sender) fails here.
    let flood = auto.flood.as_ref().unwrap();
    for q in queues {
        assert!(
            q.rx * 4 >= flood.sent,
            "queue {} answered {} of {} flood requests: the load did not spread over both queues",
            q.queue,
            q.rx,
            flood.sent
        );
    }
}

#[test]
fn igb_on_7_binds_zero_copy_and_copy_and_answers_everything() {
    let _guest = one_guest();
    let report = vm(GuestKernel::V7, Nic::Igb, 1, &["zero-copy", "copy"], Some(flood()));
    assert_eq!(report.driver, "igb");
    assert!(
        report
            .qemu_version
            .split('.')
            .next()
            .and_then(|m| m.parse::<u32>().ok())
            >= Some(8),
        "igb needs QEMU >= 8: {}",
        report.qemu_version
    );
    let [zc, copy] = &report.modes[..] else {
        panic!("two modes ran: {:?}", report.modes)
    };
    assert_eq!(zc.queue_modes(), ["zero-copy"]);
    assert_eq!(copy.queue_modes(), ["copy"]);
    for run in [zc, copy] {
        assert_answered(run);
        assert_flood_answered(run);
        assert_eq!(run.exit_code, Some(0));
    }
    let frames = &zc.summary.as_ref().unwrap().queues[0].frames;
    assert!(
        frames.in_driver > 0,
        "igb holds RX buffers in zero-copy mode: {frames:?}"
    );
}

/// The archive the tests pretend to use when it cannot be reached: a `file:` URI that does not
/// exist, so no packet leaves the machine.
const NO_ARCHIVE: &str = "file:///nonexistent-afxdp-lab-mirror";

#[test]
fn an_empty_cache_without_the_archive_fails_in_one_line() {
    let root = std::env::temp_dir().join(format!("afxdp-lab-empty-cache.{}", std::process::id()));
    let cache = Cache::new(root.clone(), NO_ARCHIVE);
    let err = cache.kernel(GuestKernel::V6_1).expect_err("nothing cached, no archive");
    let _ = std::fs::remove_dir_all(&root);
    let line = one_line(&err);
    assert!(matches!(err, LabError::Fetch { .. }), "{line}");
    assert!(!line.contains('\n'), "one line: {line}");
    assert!(line.contains("cannot fetch the newest Linux 6.1"), "{line}");
}

#[test]
fn a_filled_cache_works_without_the_archive() {
    let _guest = one_guest();
    // Fill (or find) the cache with the archive, then use it without.
    let online = Cache::default()
        .kernel(GuestKernel::V7)
        .unwrap_or_else(|e| panic!("{}", one_line(&e)));
    let offline = Cache::new(CACHE_DIR.into(), NO_ARCHIVE)
        .kernel(GuestKernel::V7)
        .unwrap_or_else(|e| panic!("a cached kernel needs no archive: {}", one_line(&e)));
    assert_eq!(offline.release, online.release);
    assert!(offline.vmlinuz.is_file());
    log(&format!("Linux 7 series resolved to {}", online.release));
}
