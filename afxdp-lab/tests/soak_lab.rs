//! `afxdp-lab soak` as a user runs it, short: 30 s with a link flap every 10 s, judged by its
//! one JSON object and its exit status. The checker's logic (a growing RSS, a descriptor leak,
//! unaccounted replies, unexplained drops, metrics that differ from the summary all fail) is
//! unit-tested on synthetic figures in `afxdp-lab/src/soak.rs`. Needs root and the
//! `afxdp-responder` binary beside this test.

use std::process::Command;

use serde_json::Value;

const LAB: &str = env!("CARGO_BIN_EXE_afxdp-lab");

fn u(v: &Value, path: &str) -> u64 {
    v.pointer(path)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{path} missing in {v}"))
}

#[test]
fn a_30_second_soak_passes_every_check() {
    if let Err(e) = afxdp_lab::require_root() {
        panic!("this test needs root (run ./run.sh test): {e}");
    }
    let out = Command::new("timeout")
        .args(["180", LAB, "soak", "--duration", "30s", "--flap-every", "10s", "--json"])
        .output()
        .expect("running afxdp-lab soak");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON object on stdout: {stdout}");
    let report: Value = serde_json::from_str(lines[0]).expect("the report is JSON");

    assert_eq!(report["passed"], Value::Bool(true), "{report:#}");
    assert_eq!(report["failed"], Value::Array(vec![]), "{report:#}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let names: Vec<&str> = report["verdict"]["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            assert_eq!(c["ok"], Value::Bool(true), "{c}");
            c["name"].as_str().expect("name")
        })
        .collect();
    assert_eq!(
        names,
        ["rss", "fds", "exit", "census", "replies", "drops", "metrics", "events"]
    );

    // The run did what it says, and the figures agree with each other.
    assert!(u(&report, "/figures/link_flaps") >= 2, "{report:#}");
    assert!(u(&report, "/figures/address_changes") >= 4, "{report:#}");
    assert!(u(&report, "/figures/scrapes") >= 4, "{report:#}");
    let samples = report["figures"]["samples"].as_array().expect("samples");
    assert!(samples.len() >= 25, "one sample a second: {}", samples.len());
    assert!(u(&report, "/figures/flood/chunks") >= 5, "{report:#}");
    assert_eq!(u(&report, "/figures/flood/failed_chunks"), 0);
    assert_eq!(u(&report, "/figures/flood/wrong"), 0);
    let correct = u(&report, "/figures/flood/correct");
    assert!(correct > 100_000, "a 20k/s flood for about 30 s: {correct}");
    let tx = u(&report, "/figures/summary/tx");
    let by_responder = u(&report, "/figures/pings/received") - u(&report, "/figures/pings/by_kernel");
    assert!(by_responder > 0, "the address and link checks were answered");
    assert_eq!(tx, correct + u(&report, "/figures/flood/kernel_dropped") + by_responder);
    assert_eq!(u(&report, "/figures/final_scrape/tx"), tx);
    assert_eq!(
        u(&report, "/figures/final_scrape/rx"),
        u(&report, "/figures/summary/rx")
    );
    assert_eq!(report["figures"]["summary"]["frames_accounted"], Value::Bool(true));
    assert!(u(&report, "/verdict/rss_kib/first_quarter_max") > 0);
}

#[test]
fn a_soak_outside_its_bounds_is_refused_with_one_line() {
    for args in [
        ["soak", "--duration", "5s"],
        ["soak", "--duration", "2h"],
        ["soak", "--rate", "fast"],
    ] {
        let out = Command::new("timeout")
            .arg("20")
            .arg(LAB)
            .args(args)
            .output()
            .expect("running afxdp-lab");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}
