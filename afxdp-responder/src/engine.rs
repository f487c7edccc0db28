//! The three engines (`--engine`): three ways to handle the same echo requests, side by side.
//!
//! | engine | XDP program | what happens to an owned echo request | user space |
//! |---|---|---|---|
//! | [`Engine::AfXdp`] (default) | `redirect.c` | redirected to the AF_XDP socket of its queue, answered by a worker | one pinned worker per queue |
//! | [`Engine::XdpTx`] | `echo_tx.c` | answered in the kernel, in place, with `XDP_TX` | none (counters only) |
//! | [`Engine::Drop`] | `echo_drop.c` | dropped (`XDP_DROP`), not answered | none (counters only) |
//!
//! All three programs share one filter (`redirect-ebpf/echo_filter.h`), so they see exactly the
//! same requests: only what they do with a request differs. All three count in the same
//! per-CPU slots ([`EngineCounters`]), and the responder prints the same live line and the same
//! exit report for each, so a bench can compare them on the same host.
//!
//! This module runs the two in-kernel engines ([`run_in_kernel`]): attach, print the counters
//! per interval, detach on SIGINT/SIGTERM, print the totals. The AF_XDP engine is [`crate::app`].

use std::io::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::iface::Interface;
use crate::loader::{AttachedMode, EngineCounters, EngineProgram, LoaderError};
use crate::options::Engine;
use crate::stats::human_rate;
use echo_wire::respond::ReplyPolicy;

/// The live line of an in-kernel engine: `xdp-tx: replied 10 (10/s) passed 2 (2/s) bad-checksum 0`.
pub fn live_line(engine: Engine, cur: &EngineCounters, prev: &EngineCounters, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let rate = |now: u64, before: u64| human_rate(now.saturating_sub(before) as f64 / secs);
    let mut line = format!(
        "{engine}: {} {} ({}/s) passed {} ({}/s)",
        engine.handled_verb(),
        cur.handled,
        rate(cur.handled, prev.handled),
        cur.passed,
        rate(cur.passed, prev.passed)
    );
    if engine == Engine::XdpTx {
        line.push_str(&format!(" bad-checksum {}", cur.bad_checksum));
    }
    line
}

/// The `total:` line every engine prints when it stops (the lab's `ResponderExit` parses it).
///
/// For the AF_XDP engine `rx`, `tx` and `dropped` are the workers' sums. The in-kernel engines
/// have no workers; their program's counters fill the same fields: xdp-tx received
/// `replied + bad checksum`, sent `replied`, dropped `bad checksum`; drop received and dropped
/// `dropped`, sent nothing.
pub fn total_line(engine: Engine, rx: u64, tx: u64, dropped: u64, counters: &EngineCounters) -> String {
    let mut line = format!(
        "total: rx {rx} tx {tx} dropped {dropped}; XDP program: {} {}, passed to the kernel {}, no socket {}",
        engine.handled_verb(),
        counters.handled,
        counters.passed,
        counters.no_socket
    );
    if engine == Engine::XdpTx {
        line.push_str(&format!(", bad checksum {}", counters.bad_checksum));
    }
    line.push_str(&format!("; engine {engine}"));
    line
}

/// Runs an in-kernel engine ([`Engine::XdpTx`] or [`Engine::Drop`]) on `iface` until `stop` is
/// set: load and attach its program, print the live line every `cfg.stats_interval` (only when
/// a counter moved), then detach and print the totals. Returns the program's counters.
pub fn run_in_kernel(
    cfg: &Config,
    iface: &Interface,
    addresses: &[IpAddr],
    policy: ReplyPolicy,
    stop: &AtomicBool,
    out: &mut dyn Write,
) -> Result<EngineCounters, LoaderError> {
    let engine = cfg.engine;
    let mut program = EngineProgram::load_engine(engine, iface.mac, addresses, policy)?;
    let attached = program.attach(&iface.name, cfg.xdp_mode)?;
    let driver = afxdp_xsk::driver_name(&iface.name).unwrap_or_else(|_| "unknown".into());
    let addrs: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
    let _ = writeln!(
        out,
        "afxdp-responder: {} (driver {driver}, XDP in {attached} mode, engine {engine}) {} for {}",
        iface.name,
        match engine {
            Engine::Drop => "dropping echo requests",
            _ => "answering",
        },
        addrs.join(", ")
    );
    if engine == Engine::XdpTx && driver == "veth" && attached == AttachedMode::Native {
        let _ = writeln!(
            out,
            "note: on veth, native XDP_TX replies reach the peer only if the peer has an XDP program \
             attached (an XDP_PASS one is enough); --xdp-mode skb needs none"
        );
    }
    match engine {
        Engine::XdpTx => {
            let _ = writeln!(
                out,
                "replies use TTL {} and hop limit {}; Ctrl-C (SIGINT) or SIGTERM stops",
                policy.ipv4_ttl, policy.ipv6_hop_limit
            );
        }
        _ => {
            let _ = writeln!(out, "nothing is answered; Ctrl-C (SIGINT) or SIGTERM stops");
        }
    }

    let started = Instant::now();
    let mut last_print = started;
    let mut last = program.counters().unwrap_or_default();
    while !stop.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(50));
        let Some(interval) = cfg.stats_interval else { continue };
        let now = Instant::now();
        if now.duration_since(last_print) < interval {
            continue;
        }
        let cur = program.counters().unwrap_or(last);
        if cur != last {
            let _ = writeln!(
                out,
                "[{:>7.1}s] {}",
                now.duration_since(started).as_secs_f64(),
                live_line(engine, &cur, &last, now.duration_since(last_print))
            );
            last = cur;
        }
        last_print = now;
    }

    program.detach()?;
    let counters = program.counters()?;
    drop(program);
    let _ = writeln!(out, "stopped: XDP program detached from {}", iface.name);
    let (rx, tx, dropped) = match engine {
        Engine::XdpTx => (
            counters.handled + counters.bad_checksum,
            counters.handled,
            counters.bad_checksum,
        ),
        _ => (counters.handled, 0, counters.handled),
    };
    let _ = writeln!(out, "{}", total_line(engine, rx, tx, dropped, &counters));
    Ok(counters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_lines_have_one_format() {
        let c = EngineCounters {
            handled: 5,
            passed: 2,
            no_socket: 0,
            bad_checksum: 1,
        };
        assert_eq!(
            total_line(Engine::AfXdp, 5, 5, 0, &c),
            "total: rx 5 tx 5 dropped 0; XDP program: redirected 5, passed to the kernel 2, no socket 0; \
             engine afxdp"
        );
        assert_eq!(
            total_line(Engine::XdpTx, 6, 5, 1, &c),
            "total: rx 6 tx 5 dropped 1; XDP program: replied 5, passed to the kernel 2, no socket 0, \
             bad checksum 1; engine xdp-tx"
        );
        assert!(total_line(Engine::Drop, 5, 0, 5, &c).contains("XDP program: dropped 5,"));
    }

    #[test]
    fn live_line_shows_rates() {
        let prev = EngineCounters::default();
        let cur = EngineCounters {
            handled: 10,
            passed: 2,
            ..EngineCounters::default()
        };
        let line = live_line(Engine::XdpTx, &cur, &prev, Duration::from_secs(1));
        assert!(line.starts_with("xdp-tx: replied 10 ("), "{line}");
        assert!(line.ends_with("bad-checksum 0"), "{line}");
        assert!(!live_line(Engine::Drop, &cur, &prev, Duration::from_secs(1)).contains("bad-checksum"));
    }
}
