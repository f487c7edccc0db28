//! The commands of the course (docs/learn/) run as a learner runs them: the `afxdp-lab` binary
//! with the documented arguments, judged by its exit status (0 only when every check of the
//! demo passed: replies counted by the client's kernel, tcpdump -vvv, the responder's own
//! report). Needs root, the `afxdp-responder` binary and the examples (`xsk-rxdrop`, `xsk-echo`)
//! built beside this test (`./run.sh test` builds every binary of the workspace first).

use std::process::Command;

const LAB: &str = env!("CARGO_BIN_EXE_afxdp-lab");

fn need_root() {
    if let Err(e) = afxdp_lab::require_root() {
        panic!("these tests need root (run ./run.sh test): {e}");
    }
}

/// Runs `afxdp-lab ARGS` (bounded: the demo's pings have deadlines) and asserts exit status 0.
#[track_caller]
fn lab_succeeds(args: &[&str]) {
    need_root();
    let out = Command::new("timeout")
        .arg("300")
        .arg(LAB)
        .args(args)
        .output()
        .expect("running afxdp-lab");
    assert!(
        out.status.success(),
        "afxdp-lab {}: {}\n{}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn step_1_the_seed_programs_drop_and_answer_in_the_kernel() {
    lab_succeeds(&["demo", "--engine", "drop"]);
    lab_succeeds(&["demo", "--engine", "xdp-tx"]);
}

#[test]
fn steps_2_to_4_the_examples_receive_and_answer() {
    lab_succeeds(&["demo", "--example", "rxdrop"]);
    lab_succeeds(&["demo", "--example", "echo"]);
}

#[test]
fn step_5_flood_with_and_without_need_wakeup() {
    lab_succeeds(&["demo", "--flood", "--count", "200"]);
    lab_succeeds(&["demo", "--flood", "--count", "200", "--", "--no-need-wakeup"]);
}

#[test]
fn step_8_the_frame_tracer_follows_pings_round_the_rings() {
    // Exit status 0 only when every traced journey holds together (afxdp_lab::trace).
    lab_succeeds(&["demo", "--trace", "2"]);
    // Exercise 7: a 64-frame UMEM, so frames 65 and 66 come round a second time.
    lab_succeeds(&[
        "demo",
        "--trace",
        "66",
        "--",
        "--fill-size",
        "64",
        "--rx-size",
        "64",
        "--tx-size",
        "64",
        "--comp-size",
        "64",
    ]);
}
