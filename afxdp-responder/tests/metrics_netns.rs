//! The Prometheus endpoint (`--metrics-addr`) of the real binary in a namespace pair: scraped
//! with `curl` from inside the responder's namespace (its loopback is the namespace's own),
//! before and after real pings; the exposition is checked by an independent parser, Python's
//! `prometheus_client` (`./run.sh` installs it with pip), and by Prometheus's own linter,
//! `promtool check metrics` (`$PROMTOOL`, which `./run.sh` fetches). Needs root; bounded in time.

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use afxdp_lab::{Family, NetnsPair, Side};
use afxdp_responder::privileges;
use common::{EXE, assert_nothing_attached, pair, ping_all_answered, start, stop};

const ADDR: &str = "127.0.0.1:9417";

/// One HTTP answer: status code, headers (lower-cased names), body.
struct Answer {
    status: u16,
    headers: String,
    body: String,
}

/// `curl` in the responder's namespace, bounded by its own timeout.
fn get(pair: &NetnsPair, path: &str) -> Answer {
    let out = pair
        .command_in(Side::Responder, "curl")
        .args(["-sS", "-i", "--max-time", "5", &format!("http://{ADDR}{path}")])
        .output()
        .expect("running curl (apt-get install curl)");
    assert!(
        out.status.success(),
        "curl {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line: {head}"));
    Answer {
        status,
        headers: head.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

/// The value of the sample `series` (name and labels exactly as rendered).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
        .parse()
        .unwrap_or_else(|e| panic!("{series}: {e}"))
}

/// `promtool check metrics` (Prometheus's own linter: naming, units, `_total` on counters, help
/// texts) accepts the exposition with no problem reported. `$PROMTOOL` or `promtool` on `PATH`
/// (`./run.sh test` unpacks Debian's into /var/cache/afxdp-lab/promtool and sets `PROMTOOL`).
fn check_with_promtool(text: &str) {
    let promtool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let mut child = std::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{promtool}: {e}: set PROMTOOL to promtool (./run.sh test fetches it)"));
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics found problems ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Parses the exposition with `prometheus_client.parser` and returns the family names it saw;
/// any parse error fails the test.
fn validate_with_prometheus_client(text: &str) -> Vec<String> {
    const SCRIPT: &str = "\
import sys
from prometheus_client.parser import text_string_to_metric_families
names = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        float(s.value)
    names.append(family.name + ' ' + family.type)
print('\\n'.join(names))
";
    let mut child = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named"),
        "prometheus_client is missing: python3 -m pip install prometheus-client (./run.sh test does)"
    );
    assert!(
        out.status.success(),
        "prometheus_client rejected the exposition: {stderr}\n{text}"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn metrics_move_by_exactly_the_pings_and_parse_cleanly() {
    let pair = pair(1);
    let responder = start(
        &pair,
        &["--queues", "0", "--stats-interval", "0", "--metrics-addr", ADDR],
    );
    let iface = pair.responder_if().to_string();
    let q = format!("{{iface=\"{iface}\",queue=\"0\"}}");
    let prog = format!("{{iface=\"{iface}\",engine=\"afxdp\"}}");
    let received = format!("afxdp_responder_requests_received_total{q}");
    let sent = format!("afxdp_responder_replies_sent_total{q}");
    let handled = format!("afxdp_responder_program_handled_total{prog}");

    let first = get(&pair, "/metrics");
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(
        first.headers.contains("content-type: text/plain; version=0.0.4"),
        "{}",
        first.headers
    );
    let before: Vec<f64> = [&received, &sent, &handled]
        .iter()
        .map(|s| value(&first.body, s))
        .collect();
    assert_eq!(
        value(
            &first.body,
            &format!(
                "afxdp_responder_queue_info{{iface=\"{iface}\",queue=\"0\",mode=\"copy\",cpu=\"{}\"}}",
                responder.ready().queues[0].cpu
            )
        ),
        1.0
    );
    assert_eq!(
        value(&first.body, &format!("afxdp_responder_owned_addresses{prog}")),
        responder.ready().addresses.len() as f64
    );
    let start_time = value(&first.body, "afxdp_responder_start_time_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(start_time <= now && now - start_time < 120.0, "{start_time} vs {now}");

    let n = 8u32;
    ping_all_answered(&pair, Family::V4, 5);
    ping_all_answered(&pair, Family::V6, n - 5);
    let expected: Vec<f64> = before.iter().map(|b| b + f64::from(n)).collect();
    // The exposition is republished at most every 250 ms: wait for it (bounded), then the
    // numbers must be exactly the pings, no more.
    let deadline = Instant::now() + Duration::from_secs(3);
    let after = loop {
        let a = get(&pair, "/metrics");
        let now: Vec<f64> = [&received, &sent, &handled].iter().map(|s| value(&a.body, s)).collect();
        if now == expected || Instant::now() > deadline {
            break a;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for (series, want) in [&received, &sent, &handled].iter().zip(&expected) {
        assert_eq!(value(&after.body, series), *want, "{series}:\n{}", after.body);
    }
    assert_eq!(
        value(
            &after.body,
            &format!(
                "afxdp_responder_kernel_rx_dropped_total{{iface=\"{iface}\",queue=\"0\",reason=\"rx_ring_full\"}}"
            )
        ),
        0.0
    );

    // An independent parser accepts it, with the types we mean.
    let families = validate_with_prometheus_client(&after.body);
    check_with_promtool(&after.body);
    for want in [
        "afxdp_responder_requests_received counter",
        "afxdp_responder_requests_dropped counter",
        "afxdp_responder_kernel_rx_dropped counter",
        "afxdp_responder_program_handled counter",
        "afxdp_responder_worker_kicks counter",
        "afxdp_responder_queue_info gauge",
        "afxdp_responder_build_info gauge",
        "afxdp_responder_start_time_seconds gauge",
    ] {
        assert!(families.iter().any(|f| f == want), "{want} not in {families:?}");
    }

    let other = get(&pair, "/");
    assert_eq!(other.status, 404, "{}", other.body);

    // The exporter thread holds no capability either.
    let threads = privileges::threads(&responder.pid().to_string()).unwrap();
    assert!(threads.iter().any(|t| t.name == "metrics"), "{threads:?}");
    for t in &threads {
        assert!(t.is_unprivileged(), "{t}");
    }

    // A second responder on the same port: one line that says what to do, nothing attached.
    let out = pair
        .command_in(Side::Responder, EXE)
        .args(["--iface", &iface, "--metrics-addr", ADDR])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("pick a free port"), "{stderr}");

    let exit = stop(responder);
    let total = u64::from(n) + before[1] as u64;
    assert_eq!(exit.totals(), (total, total, 0), "{}", exit.finished.stdout);
    assert_nothing_attached(&pair);
}

#[test]
fn in_kernel_engines_export_their_program_counters() {
    let pair = pair(1);
    let args = [
        "--engine",
        "xdp-tx",
        "--xdp-mode",
        "skb",
        "--stats-interval",
        "0",
        "--metrics-addr",
        ADDR,
    ];
    let responder = common::start(&pair, &args);
    let series = format!(
        "afxdp_responder_program_handled_total{{iface=\"{}\",engine=\"xdp-tx\"}}",
        pair.responder_if()
    );
    let before = value(&get(&pair, "/metrics").body, &series);
    ping_all_answered(&pair, Family::V4, 3);
    let deadline = Instant::now() + Duration::from_secs(3);
    let after = loop {
        let a = get(&pair, "/metrics").body;
        if value(&a, &series) == before + 3.0 || Instant::now() > deadline {
            break a;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(value(&after, &series), before + 3.0, "{after}");
    assert!(
        !after.contains("queue=\""),
        "no queues in the in-kernel engines: {after}"
    );
    validate_with_prometheus_client(&after);
    check_with_promtool(&after);
    let exit = stop(responder);
    assert_eq!(exit.handled(), Some(before as u64 + 3), "{}", exit.finished.stdout);
}
