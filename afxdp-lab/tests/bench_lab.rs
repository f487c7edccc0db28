//! Smoke test of the bench orchestration: a tiny matrix (one queue, IPv4 64-byte, both rates, two
//! repetitions of 0.3 s) through the real binary and the real kernel, then checks that the files are
//! written, the JSON has the expected shape, unsupported engines are rows that say why, and nothing
//! is left behind. No timing assertions: the figures depend on the machine.
//!
//! Root is required: without it the test panics with one clear line (never a silent pass).

use std::process::{Command, ExitCode};

use afxdp_lab::bench::generator::{Generator, Rate};
use afxdp_lab::bench::{BenchArgs, EngineMode, FamilyArg, RateArg};
use afxdp_lab::require_root;

fn namespaces_of_this_process() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().expect("running ip");
    let prefix = format!("afxr-{}-", std::process::id());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&prefix))
        .map(String::from)
        .collect()
}

#[test]
fn a_tiny_bench_writes_table_json_and_plot_and_cleans_up() {
    if let Err(err) = require_root() {
        panic!("{err}");
    }
    let out = std::env::temp_dir().join(format!("afxr-bench-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let doc = out.join("benchmarks.md");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(&doc, "# Benchmarks\n<!-- bench:begin -->\n<!-- bench:end -->\nend\n").unwrap();
    let args = BenchArgs {
        queues: vec![1],
        duration: 0.3,
        repetitions: 2,
        quick: false,
        out: out.join("results"),
        fixed_rate: 2000,
        engines: vec![
            EngineMode::AfxdpCopyNative,
            EngineMode::AfxdpZeroCopy,
            EngineMode::Kernel,
        ],
        families: vec![FamilyArg::V4],
        sizes: vec![64],
        rates: vec![RateArg::Max, RateArg::Fixed],
        generator: vec![Generator::Live],
        idle_seconds: Some(0.3),
        update_doc: Some(doc.clone()),
        // The VM rows take minutes under emulation: `afxdp-lab bench --vm virtio` by hand.
        vm: Vec::new(),
        vm_kernel: afxdp_lab::vm::GuestKernel::V7,
        vm_rates: Vec::new(),
        ladder: false,
        ladder_rates: Vec::new(),
        ladder_variants: Vec::new(),
    };
    let exe = afxdp_lab::responder_exe().expect("the afxdp-responder binary (cargo build -p afxdp-responder)");
    let code = afxdp_lab::bench::run(&args, &exe).unwrap_or_else(|e| panic!("bench: {e}"));

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results/latest.json")).unwrap()).unwrap();
    let rows = json["rows"].as_array().unwrap();
    let failed: Vec<_> = rows.iter().filter(|r| r["status"] == "failed").collect();
    assert!(failed.is_empty(), "failed rows: {failed:#?}");
    assert_eq!(code, ExitCode::SUCCESS);
    // 2 measured engines x 2 rates, and one row for zero-copy, which veth does not have.
    assert_eq!(rows.len(), 5, "{rows:#?}");
    let zc: Vec<_> = rows.iter().filter(|r| r["engine"] == "afxdp-zero-copy").collect();
    assert_eq!(zc.len(), 1);
    assert_eq!(zc[0]["status"], "skipped");
    assert!(zc[0]["reason"].as_str().unwrap().contains("veth"), "{:?}", zc[0]);
    for row in rows.iter().filter(|r| r["status"] == "ok") {
        let samples = row["samples"].as_array().unwrap();
        assert_eq!(samples.len(), 2, "{row:#?}");
        for s in samples {
            // The generator's report, as `flood --json` printed it.
            let flood = &s["flood"];
            assert!(flood["sent"].as_u64().unwrap() > 0, "{s:#?}");
            assert!(flood["replies"].as_u64().unwrap() > 0, "{s:#?}");
            assert_eq!(flood["wrong"], 0, "{s:#?}");
            assert_eq!(flood["inject"], "live", "{s:#?}");
            assert!(flood["latency_us"]["p50"].as_f64().unwrap() > 0.0, "{s:#?}");
            assert!(s["softirq_cpu_s"].as_f64().unwrap() >= 0.0);
        }
        let summary = &row["summary"];
        assert_eq!(summary["correct_pct"], 100.0, "{row:#?}");
        // Max-rate rows say what limited them; fixed-rate rows have no limit.
        if row["workload"]["rate"] == "max" {
            assert!(
                summary["limit"] == "engine" || summary["limit"] == "generator",
                "{row:#?}"
            );
        } else {
            assert!(summary["limit"].is_null(), "{row:#?}");
        }
        // The kernel stack has no responder process; AF_XDP rows count the responder's CPU.
        let own_cpu = &samples[0]["responder_cpu_s"];
        if row["engine"] == "kernel" {
            assert!(own_cpu.is_null());
        } else {
            assert!(own_cpu.as_f64().unwrap() >= 0.0);
        }
    }
    assert_eq!(
        rows.iter()
            .filter(|r| r["workload"]["rate"] == serde_json::json!({"pps": 2000}))
            .count(),
        2
    );
    assert_eq!(
        serde_json::to_value(Rate::Pps(2000)).unwrap(),
        serde_json::json!({"pps": 2000})
    );
    assert!(json["idle"]["pct_of_core"].as_f64().unwrap() >= 0.0);
    assert_eq!(json["generator"], "flood");
    assert!(json.get("build").is_none());
    assert!(!json["machine"]["kernel"].as_str().unwrap().is_empty());

    let md = std::fs::read_to_string(out.join("results/latest.md")).unwrap();
    assert!(
        md.contains("| 1 | AF_XDP copy, native XDP | IPv4 64 B, max rate, live gen |"),
        "{md}"
    );
    assert!(
        md.contains("| 1 | AF_XDP zero-copy | all | not supported by veth"),
        "{md}"
    );
    assert!(md.contains("latest.svg"));
    let svg = std::fs::read_to_string(out.join("results/latest.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("AF_XDP copy, native XDP"));
    let doc_text = std::fs::read_to_string(&doc).unwrap();
    assert!(
        doc_text.contains("| 1 | kernel stack, no XDP | IPv4 64 B, 2 k pps, live gen |"),
        "{doc_text}"
    );
    assert!(doc_text.contains("](results/latest.svg)"), "{doc_text}");

    assert_eq!(
        namespaces_of_this_process(),
        Vec::<String>::new(),
        "namespaces left behind"
    );
    std::fs::remove_dir_all(&out).unwrap();
}
