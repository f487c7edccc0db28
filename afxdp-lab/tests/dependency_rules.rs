//! The dependency rules of docs/architecture.md ("The crates"), checked with `cargo tree` on the
//! workspace's lock file: a crate's dependency list says what it is, so a new dependency that
//! breaks a rule fails here, not in review.

use std::collections::BTreeSet;
use std::process::Command;

/// The packages in `package`'s normal (non-dev, non-build) dependency tree, to `depth` levels
/// (`None`: all), without `package` itself.
fn deps(package: &str, depth: Option<u32>) -> BTreeSet<String> {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args([
        "tree",
        "--offline",
        "--locked",
        "-e",
        "normal",
        "--prefix",
        "none",
        "--format",
        "{p}",
    ])
    .args(["-p", package])
    .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    if let Some(depth) = depth {
        cmd.args(["--depth", &depth.to_string()]);
    }
    let out = cmd.output().expect("running cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {package} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != package)
        .map(String::from)
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_wire_crate_links_nothing() {
    assert_eq!(deps("echo-wire", None), set(&[]));
}

#[test]
fn the_leaf_crates_depend_only_on_what_their_row_allows() {
    assert_eq!(deps("afxdp-xsk", Some(1)), set(&["libc", "thiserror"]));
    assert_eq!(deps("responder-json", Some(1)), set(&["serde", "serde_json"]));
    assert_eq!(deps("redirect-ebpf", Some(1)), set(&[]));
}

#[test]
fn the_lab_does_not_link_the_daemon_and_the_daemon_does_not_link_the_lab() {
    let lab = deps("afxdp-lab", None);
    for forbidden in ["afxdp-responder", "afxdp-xsk", "echo-wire"] {
        assert!(!lab.contains(forbidden), "afxdp-lab depends on {forbidden}: {lab:?}");
    }
    let daemon = deps("afxdp-responder", None);
    for forbidden in ["afxdp-lab", "plotters"] {
        assert!(
            !daemon.contains(forbidden),
            "afxdp-responder depends on {forbidden}: {daemon:?}"
        );
    }
}

#[test]
fn the_examples_use_the_published_crates_only() {
    // A learner reads examples/ to see what the AF_XDP crate and respond() give them on their
    // own: the examples must not reach into the daemon (or the lab).
    assert_eq!(
        deps("afxdp-examples", Some(1)),
        set(&[
            "afxdp-xsk",
            "aya",
            "clap",
            "echo-wire",
            "nix",
            "redirect-ebpf",
            "signal-hook"
        ])
    );
    let all = deps("afxdp-examples", None);
    for forbidden in ["afxdp-responder", "afxdp-lab", "responder-json"] {
        assert!(
            !all.contains(forbidden),
            "afxdp-examples depends on {forbidden}: {all:?}"
        );
    }
}
