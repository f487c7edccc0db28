//! `afxdp-lab demo`: the responder in one network namespace, real `ping` from the
//! other, checked the way a sceptical user would check it, and everything removed afterwards.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{
    Capture, Family, LabConfig, LabError, NetnsPair, Nstat, PingSpec, ResponderProcess, Side, ping, require_root,
};

/// Options of `lab demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Queues of the veth pair; the responder serves all of them and each ping flow is steered
    /// to one queue (at most one queue per CPU).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub queues: u32,
    /// Pings per flow.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub count: u32,
    /// AF_XDP mode for the responder (veth supports copy only; auto falls back to it).
    #[arg(long, default_value = "auto")]
    pub mode: String,
    /// How the responder attaches its XDP program: auto, native or skb.
    #[arg(long, default_value = "auto")]
    pub xdp_mode: String,
    /// Instead of the responder, run one of the learning examples (`xsk-rxdrop`, `xsk-echo`,
    /// built by `cargo build -p afxdp-examples`) on a one-queue pair (docs/learn/).
    #[arg(long, value_enum)]
    pub example: Option<crate::example::Example>,
    /// Who answers: the AF_XDP workers (afxdp), the XDP program in the kernel (xdp-tx), or
    /// nobody (drop: the XDP program drops and counts the requests).
    #[arg(long, default_value = "afxdp", value_parser = ["afxdp", "xdp-tx", "drop"])]
    pub engine: String,
    /// Ping with `ping -f` (flood: as fast as replies come, at most `--count` per flow) instead
    /// of one request every 50 ms.
    #[arg(long)]
    pub flood: bool,
    /// Run the responder with `--trace N` on a one-queue pair, ping it N times (IPv4, then
    /// IPv6), print each frame's journey round the four rings and check that every journey
    /// holds together (docs/learn/08-the-frame-tracer.md).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256), conflicts_with = "example")]
    pub trace: Option<u32>,
    /// More options for the responder, after `--` (e.g. `-- --rx-size 64 --no-need-wakeup`).
    #[arg(last = true, value_name = "RESPONDER OPTIONS")]
    pub responder_args: Vec<String>,
}

/// Ping payload sizes the demo tries: empty, ping's default, and near the MTU.
const SIZES: [u16; 3] = [0, 56, 1400];

/// Runs the demo; returns success only if every check passed.
pub fn run(args: &DemoArgs) -> Result<ExitCode, LabError> {
    require_root()?;
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Ctrl-C must not kill the demo before it removes what it created: it only sets a flag.
        let _ = signal_hook::flag::register(sig, Arc::clone(&interrupted));
    }
    if let Some(example) = args.example {
        return run_example(example, args.count);
    }
    let exe = crate::responder_exe()?;
    if let Some(frames) = args.trace {
        return run_trace(&exe, frames, args);
    }

    let cfg = LabConfig {
        queues: args.queues,
        ..LabConfig::default()
    };
    let pair = NetnsPair::create(&cfg)?;
    println!(
        "1. Created two network namespaces joined by a veth pair with {} queues:",
        args.queues
    );
    for side in [Side::Responder, Side::Client] {
        println!(
            "   {:<9} namespace {:<20} interface {:<16} {} and {}",
            if side == Side::Responder { "responder" } else { "client" },
            pair.ns(side),
            pair.ifname(side),
            pair.ipv4(side),
            pair.ipv6(side)
        );
    }

    let last_queue = (args.queues - 1).to_string();
    let queues = if args.queues == 1 {
        "0".to_string()
    } else {
        format!("0-{last_queue}")
    };
    let mut responder_args = vec![
        "--engine",
        &args.engine,
        "--queues",
        &queues,
        "--mode",
        &args.mode,
        "--xdp-mode",
        &args.xdp_mode,
        "--stats-interval",
        "0",
    ];
    responder_args.extend(args.responder_args.iter().map(String::as_str));
    println!(
        "2. Starting afxdp-responder --iface {} {} in the responder namespace:",
        pair.responder_if(),
        responder_args.join(" ")
    );
    let responder = ResponderProcess::start(&pair, &exe, &responder_args)?;
    let ready = responder.ready();
    println!(
        "   ready: {} (driver {}, XDP in {} mode), answering for {}; replies use TTL {} and hop limit {}",
        ready.iface,
        ready.driver,
        ready.xdp_mode,
        ready.addresses.join(", "),
        ready.ttl,
        ready.hop_limit
    );
    for q in &ready.queues {
        println!("   queue {}: {} mode, worker pinned to CPU {}", q.queue, q.mode, q.cpu);
    }

    // On veth, XDP_TX reaches the peer only if the peer runs an XDP program too.
    let _pass = if args.engine == "xdp-tx" {
        Some(pair.attach_xdp_pass(Side::Client)?)
    } else {
        None
    };
    let before = Nstat::read(&pair, Side::Client)?;
    let capture = Capture::start_icmp(&pair)?;
    println!("3. Pinging from the client namespace with the real ping (one flow per queue and size):");
    let mut sent = 0u64;
    let mut received = 0u64;
    let mut ttls = std::collections::BTreeSet::new();
    'outer: for family in [Family::V4, Family::V6] {
        for size in SIZES {
            for queue in 0..args.queues {
                if interrupted.load(Ordering::Relaxed) {
                    break 'outer;
                }
                let cpu = pair.steer_client_queue(queue)?;
                let mut spec = PingSpec::new(family, args.count)
                    .size(size)
                    .interval(Duration::from_millis(50))
                    .pinned_cpu(cpu);
                if size >= 16 {
                    spec = spec.pattern("a5c3");
                }
                if args.flood {
                    spec = spec.flood().quiet();
                }
                if args.engine == "drop" {
                    // Nothing answers: ping sends until its deadline.
                    spec = spec.deadline(Duration::from_secs(1));
                }
                let report = ping(&pair, &spec)?;
                sent += report.transmitted;
                received += report.received;
                ttls.extend(report.ttls_seen.iter().copied());
                let (name, limit) = match family {
                    Family::V4 => ("IPv4", "TTL"),
                    Family::V6 => ("IPv6", "hop limit"),
                };
                let ttl_seen: Vec<String> = report.ttls_seen.iter().map(u8::to_string).collect();
                let rtt = report
                    .rtt
                    .map(|r| format!(", rtt avg {:.3} ms", r.avg.as_secs_f64() * 1e3))
                    .unwrap_or_default();
                println!(
                    "   {name} to {}, {size:>4}-byte payload, queue {queue}: {}/{} replies{}{}",
                    pair.addr(Side::Responder, family),
                    report.received,
                    report.transmitted,
                    if ttl_seen.is_empty() {
                        String::new()
                    } else {
                        format!(", {limit} {}", ttl_seen.join("/"))
                    },
                    rtt
                );
            }
        }
    }
    let text = capture.stop()?;
    let delta = Nstat::read(&pair, Side::Client)?.since(&before);
    let exit = responder.stop()?;

    if interrupted.load(Ordering::Relaxed) {
        println!("Interrupted: removing the namespaces and the veth pair.");
        drop(pair);
        return Ok(ExitCode::from(130));
    }

    let v4_replies = delta.counter("IcmpInEchoReps")?;
    let v6_replies = delta.counter("Icmp6InEchoReplies")?;
    let csum_errors = delta.counter("IcmpInCsumErrors")? + delta.counter("Icmp6InCsumErrors")?;
    let bad = text.bad_checksum_packets();
    println!("4. Checked on the client side, without trusting ping:");
    println!(
        "   kernel counters: IcmpInEchoReps +{v4_replies}, Icmp6InEchoReplies +{v6_replies}, checksum errors +{csum_errors}"
    );
    println!(
        "   tcpdump -vvv: {} echo replies, {} with a wrong checksum",
        text.echo_reply_count(),
        bad.len()
    );

    println!("5. Stopped the responder (SIGINT); it detached and reported:");
    for q in exit.queues() {
        let f = &q.frames;
        println!(
            "   queue {} ({} mode): {} requests received, {} replies sent, {} dropped; {} frames = {} fill + {} rx + {} tx \
             + {} completion{}",
            q.queue,
            q.mode,
            q.rx,
            q.tx,
            q.dropped,
            f.total,
            f.fill,
            f.rx,
            f.tx,
            f.completion,
            if f.accounted {
                ": all accounted for"
            } else {
                ", some unaccounted"
            }
        );
        let (k, w) = (&q.kernel, &q.waits);
        println!(
            "     kernel drops: rx ring full {}, fill ring empty {}; the worker slept {} times, kicked the kernel {} times",
            k.rx_ring_full, k.fill_ring_empty, w.sleeps, w.kicks
        );
    }
    if let Some(summary) = &exit.summary {
        let p = &summary.program;
        println!(
            "   XDP program ({}): handled {}, passed to the kernel {}, no socket {}, bad checksum {}",
            summary.engine, p.handled, p.passed, p.no_socket, p.bad_checksum
        );
    }
    let (_, replies_sent, _) = exit.totals();

    let mut problems = Vec::new();
    let (afxdp, expected) = match args.engine.as_str() {
        "afxdp" => (true, sent),
        "drop" => (false, 0),
        _ => (false, sent),
    };
    if received != expected {
        problems.push(format!("{received} of {sent} pings got a reply ({expected} expected)"));
    }
    if v4_replies + v6_replies != expected {
        problems.push(format!(
            "the client kernel counted {} replies for {sent} pings",
            v4_replies + v6_replies
        ));
    }
    if exit.handled() != Some(sent) {
        problems.push(format!(
            "the XDP program handled {:?} requests for {sent} pings",
            exit.handled()
        ));
    }
    if csum_errors > 0 || !bad.is_empty() {
        problems.push(format!(
            "{} replies with a wrong checksum",
            csum_errors.max(bad.len() as u64)
        ));
    }
    if afxdp && replies_sent != sent {
        problems.push(format!(
            "the responder sent {replies_sent} replies for {sent} pings (the rest came from the kernel?)"
        ));
    }
    if afxdp && exit.queues().iter().any(|q| q.tx == 0) {
        problems.push("a queue answered nothing (queue steering did not work?)".into());
    }
    if !exit.queues().iter().all(|q| q.frames.accounted) {
        problems.push("some UMEM frames were not accounted for".into());
    }
    if !exit.finished.status.success() {
        problems.push(format!(
            "the responder exited with {}: {}",
            exit.finished.status,
            exit.finished.stderr.trim()
        ));
    }
    drop(pair);
    let ttl_text: Vec<String> = ttls.iter().map(u8::to_string).collect();
    let ttl_text = if ttl_text.is_empty() {
        "(not shown by ping -f)".to_string()
    } else {
        ttl_text.join("/")
    };
    if problems.is_empty() {
        println!(
            "{}",
            match args.engine.as_str() {
                "afxdp" => format!(
                    "Result: all {sent} pings answered by afxdp-responder over AF_XDP ({} mode), TTL/hop limit {} as the kernel sets it, 0 checksum errors, every frame accounted for. Namespaces removed.",
                    exit.queues().first().map_or("?", |q| q.mode.as_str()),
                    ttl_text
                ),
                "xdp-tx" => format!(
                    "Result: all {sent} pings answered in the kernel by the XDP program (XDP_TX), TTL/hop limit {}, 0 checksum errors. Namespaces removed.",
                    ttl_text
                ),
                _ => format!(
                    "Result: all {sent} pings dropped and counted by the XDP program, none answered. Namespaces removed."
                ),
            }
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!("Result: FAILED: {}. Namespaces removed.", problems.join("; "));
        Ok(ExitCode::FAILURE)
    }
}

/// `demo --example NAME`: the example on a one-queue pair, `count` pings per family and size.
fn run_example(example: crate::example::Example, count: u32) -> Result<ExitCode, LabError> {
    let exe = crate::example::example_exe(example)?;
    let demo = crate::example::demo(example, &exe, count, true)?;
    println!("   What {} printed:", example.binary());
    for line in demo.exit.finished.stdout.lines() {
        println!("   | {line}");
    }
    let client = &demo.client;
    println!(
        "4. Client kernel: IcmpInEchoReps +{}, Icmp6InEchoReplies +{}, checksum errors +{}; tcpdump -vvv: {} echo \
         replies, {} with a wrong checksum. Responder kernel: IcmpInEchos +{}, Icmp6InEchos +{}.",
        client.counter("IcmpInEchoReps")?,
        client.counter("Icmp6InEchoReplies")?,
        client.counter("IcmpInCsumErrors")? + client.counter("Icmp6InCsumErrors")?,
        demo.capture.echo_reply_count(),
        demo.capture.bad_checksum_packets().len(),
        demo.responder.counter("IcmpInEchos")?,
        demo.responder.counter("Icmp6InEchos")?,
    );
    if demo.problems.is_empty() {
        println!(
            "Result: {} pings, {} replies, as {} should. Namespaces removed.",
            demo.sent,
            demo.received,
            example.binary()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!("Result: FAILED: {}. Namespaces removed.", demo.problems.join("; "));
        Ok(ExitCode::FAILURE)
    }
}

/// `demo --trace N`: the responder with `--trace N` on a one-queue pair, N pings (IPv4 first,
/// then IPv6), the trace printed and every journey checked ([`crate::trace`]).
fn run_trace(exe: &std::path::Path, frames: u32, args: &DemoArgs) -> Result<ExitCode, LabError> {
    let pair = NetnsPair::create(&LabConfig {
        queues: 1,
        ..LabConfig::default()
    })?;
    let frames_text = frames.to_string();
    let mut responder_args = vec![
        "--queues",
        "0",
        "--mode",
        &args.mode,
        "--xdp-mode",
        &args.xdp_mode,
        "--stats-interval",
        "0",
        "--trace",
        &frames_text,
    ];
    responder_args.extend(args.responder_args.iter().map(String::as_str));
    println!(
        "1. Starting afxdp-responder --iface {} {} in namespace {}",
        pair.responder_if(),
        responder_args.join(" "),
        pair.responder_ns()
    );
    let responder = ResponderProcess::start(&pair, exe, &responder_args)?;
    let v4 = frames.div_ceil(2);
    let v6 = frames - v4;
    println!(
        "2. Pinging it from namespace {}: {v4} IPv4 and {v6} IPv6 echo requests",
        pair.client_ns()
    );
    let mut received = 0;
    for (family, count) in [(Family::V4, v4), (Family::V6, v6)] {
        if count > 0 {
            // One at a time, so that each request is its own batch; faster for long traces.
            let gap = if frames > 16 { 20 } else { 200 };
            let report = ping(
                &pair,
                &PingSpec::new(family, count).interval(Duration::from_millis(gap)),
            )?;
            received += report.received;
        }
    }
    // Let the last completion come back and be reclaimed (the worker reclaims on every turn).
    std::thread::sleep(Duration::from_millis(300));
    let exit = responder.stop()?;
    println!("3. What the tracer printed on stderr (stdout stays JSON):");
    for line in exit.finished.stderr.lines().filter(|l| l.starts_with("trace ")) {
        println!("   {line}");
    }
    let frame_size = exit
        .finished
        .stderr
        .lines()
        .find_map(|l| l.split_once(" frames x ")?.1.split(' ').next()?.parse::<u64>().ok())
        .unwrap_or(4096);
    let journeys = crate::trace::parse(&exit.finished.stderr);
    let mut problems: Vec<String> = journeys.iter().filter_map(|j| j.check(frame_size).err()).collect();
    if journeys.len() != frames as usize {
        problems.push(format!("{} journeys traced, {frames} expected", journeys.len()));
    }
    if received != u64::from(frames) {
        problems.push(format!("{received} of {frames} pings answered"));
    }
    if !exit.finished.status.success() {
        problems.push(format!("the responder exited with {}", exit.finished.status));
    }
    drop(pair);
    if problems.is_empty() {
        println!(
            "Result: {frames} frames went round fill -> rx -> tx -> completion -> fill, each at one UMEM address, \
             and each checksum's RFC 1624 arithmetic gives the checksum sent. Namespaces removed."
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!("Result: FAILED: {}. Namespaces removed.", problems.join("; "));
        Ok(ExitCode::FAILURE)
    }
}
