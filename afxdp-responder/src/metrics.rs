//! The Prometheus endpoint (`--metrics-addr ADDR:PORT`, off by default): `GET /metrics` answers
//! with the text exposition format (version 0.0.4), any other path with 404. The metrics are
//! listed in `docs/metrics.md`.
//!
//! # Where the numbers come from, and why the packet path does not notice
//!
//! Nothing here touches a worker. The workers already publish their counters once per batch
//! into their own [`SharedCounters`](crate::stats::SharedCounters) (relaxed stores, one cache
//! line per queue); the main thread's monitor loop, which wakes every 50 ms anyway, reads those
//! snapshots, the kernel's `XDP_STATISTICS` through its duplicate socket descriptors and the XDP
//! program's per-CPU counters through the map it owns, at most every [`PUBLISH_INTERVAL`].
//! It builds a [`Snapshot`], renders it to text ([`render`]) *outside* any lock, and swaps the
//! text into a `Mutex<String>` ([`Exporter::publish`]). The exporter thread only clones that
//! string under the lock and writes it to the client. So:
//!
//! - the only lock is between the main thread and the exporter thread, held for a swap or a
//!   clone of a few kilobytes; no worker ever takes it, and no worker does anything new;
//! - a scrape sees numbers at most [`PUBLISH_INTERVAL`] plus one monitor tick old (about 300 ms),
//!   which is well inside any scrape interval;
//! - a slow client cannot stall the monitor loop: the monitor never waits for the exporter.
//!
//! # The server
//!
//! One thread (`metrics`), plain HTTP/1.1 on `std::net`, one connection at a time, `Connection:
//! close` after each answer. A request head larger than [`MAX_REQUEST_BYTES`] gets 431; a client
//! that has not sent its whole request head within [`CLIENT_TIMEOUT`] (also a client that
//! trickles one byte at a time) is dropped; writes time out the same way. So a bad or slow client
//! costs at most [`CLIENT_TIMEOUT`] of the exporter's time and never the packet path's. Like every
//! thread of the responder, the exporter drops all of its capabilities before it serves anything.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use echo_wire::respond::DropReason;
use responder_json::KernelDrops;

use crate::loader::EngineCounters;
use crate::stats::Counters;

/// How often the monitor loop publishes a new snapshot at most.
pub const PUBLISH_INTERVAL: Duration = Duration::from_millis(250);
/// The largest request head (request line and headers) the exporter reads.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// How long a client may take to send its request, and to take the answer.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the exporter thread looks at its stop flag while no client connects.
const ACCEPT_POLL: Duration = Duration::from_millis(100);
/// How long, and for how many bytes, a closing connection reads what the client still sends.
const LINGER: Duration = Duration::from_millis(100);
const LINGER_BYTES: u64 = 64 * 1024;

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Everything one exposition shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Interface served (label `iface`).
    pub iface: String,
    /// Engine name (label `engine`): `afxdp`, `xdp-tx` or `drop`.
    pub engine: String,
    /// The responder's version (`build_info`).
    pub version: String,
    /// When the process started, in seconds since the Unix epoch.
    pub start_time_seconds: f64,
    /// How many addresses the XDP program answers for.
    pub owned_addresses: usize,
    /// One entry per served queue (none for the in-kernel engines).
    pub queues: Vec<QueueSample>,
    /// The XDP program's counters.
    pub program: EngineCounters,
}

/// One queue's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSample {
    /// Queue id.
    pub queue: u32,
    /// CPU its worker runs on.
    pub cpu: usize,
    /// AF_XDP bind mode obtained: `copy` or `zero-copy`.
    pub mode: String,
    /// The worker's last published counters.
    pub counters: Counters,
    /// The socket's `XDP_STATISTICS`, each drop counted once.
    pub kernel: KernelDrops,
}

/// Writes one metric family in the text format.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &'static str, kind: &str, help: &str) -> Self {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out, name }
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// A label value with `\`, `"` and newlines escaped, as the text format asks.
fn escape(v: &str) -> String {
    v.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

/// Renders `s` in the Prometheus text exposition format 0.0.4. Every family is always present
/// (with HELP and TYPE), every drop reason always has a sample (0 until it happens), so that
/// `rate()` sees a series from the start.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::with_capacity(4096);
    let iface = s.iface.as_str();
    let engine = s.engine.as_str();
    let queues: Vec<(String, &QueueSample)> = s.queues.iter().map(|q| (q.queue.to_string(), q)).collect();

    let mut f = Family::new(
        &mut out,
        "afxdp_responder_build_info",
        "gauge",
        "Always 1; the version of the running responder.",
    );
    f.sample(&[("version", &s.version)], 1);
    let mut f = Family::new(
        &mut out,
        "afxdp_responder_start_time_seconds",
        "gauge",
        "Start time of the process since the Unix epoch in seconds.",
    );
    f.sample(&[], s.start_time_seconds);
    let mut f = Family::new(
        &mut out,
        "afxdp_responder_owned_addresses",
        "gauge",
        "Addresses the XDP program answers echo requests for.",
    );
    f.sample(&[("iface", iface), ("engine", engine)], s.owned_addresses);

    let mut f = Family::new(
        &mut out,
        "afxdp_responder_queue_info",
        "gauge",
        "Always 1 for each served queue; its AF_XDP mode and its worker's CPU.",
    );
    for (q, sample) in &queues {
        let cpu = sample.cpu.to_string();
        f.sample(
            &[("iface", iface), ("queue", q), ("mode", &sample.mode), ("cpu", &cpu)],
            1,
        );
    }

    type Get = fn(&QueueSample) -> u64;
    let per_queue: [(&'static str, &str, Get); 7] = [
        (
            "afxdp_responder_requests_received_total",
            "Frames the worker took from its RX ring.",
            |q| q.counters.rx,
        ),
        (
            "afxdp_responder_replies_sent_total",
            "Echo replies the worker put on its TX ring.",
            |q| q.counters.tx,
        ),
        (
            "afxdp_responder_worker_sleeps_total",
            "Times the worker slept in poll() because its RX ring was empty.",
            |q| q.counters.sleeps,
        ),
        (
            "afxdp_responder_worker_spins_total",
            "Spins on the rings before a sleep (--wait adaptive) or busy-poll windows (--busy-poll).",
            |q| q.counters.spins,
        ),
        (
            "afxdp_responder_worker_spins_caught_total",
            "Spins that saw traffic arrive before their window ran out.",
            |q| q.counters.spins_caught,
        ),
        (
            "afxdp_responder_worker_kicks_total",
            "Wake-ups of the kernel (sendto on TX, poll nudges with --wait spin, recvfrom with --busy-poll).",
            |q| q.counters.kicks,
        ),
        (
            "afxdp_responder_worker_tx_ring_full_total",
            "Times the TX ring had no room, so received frames waited on the RX ring.",
            |q| q.counters.tx_ring_full,
        ),
    ];
    for (name, help, get) in per_queue {
        let mut f = Family::new(&mut out, name, "counter", help);
        for (q, sample) in &queues {
            f.sample(&[("iface", iface), ("queue", q)], get(sample));
        }
    }

    let mut f = Family::new(
        &mut out,
        "afxdp_responder_requests_dropped_total",
        "counter",
        "Frames the worker did not answer, by reason.",
    );
    for (q, sample) in &queues {
        let c = &sample.counters;
        for r in DropReason::ALL {
            f.sample(
                &[("iface", iface), ("queue", q), ("reason", r.as_str())],
                c.drops[r.index()],
            );
        }
        f.sample(
            &[("iface", iface), ("queue", q), ("reason", "bad-descriptor")],
            c.bad_descriptors,
        );
    }

    let mut f = Family::new(
        &mut out,
        "afxdp_responder_kernel_rx_dropped_total",
        "counter",
        "Frames the kernel dropped before the socket's RX ring (XDP_STATISTICS), each counted once, by reason.",
    );
    for (q, sample) in &queues {
        let k = &sample.kernel;
        for (reason, n) in [
            ("rx_ring_full", k.rx_ring_full),
            ("fill_ring_empty", k.fill_ring_empty),
            ("rx_invalid", k.rx_invalid),
            ("other", k.other),
        ] {
            f.sample(&[("iface", iface), ("queue", q), ("reason", reason)], n);
        }
    }
    let mut f = Family::new(
        &mut out,
        "afxdp_responder_kernel_tx_invalid_descriptors_total",
        "counter",
        "Invalid TX descriptors the kernel saw on the socket (XDP_STATISTICS).",
    );
    for (q, sample) in &queues {
        f.sample(&[("iface", iface), ("queue", q)], sample.kernel.tx_invalid);
    }
    let mut f = Family::new(
        &mut out,
        "afxdp_responder_kernel_tx_ring_empty_total",
        "counter",
        "Times the kernel found the socket's TX ring empty when asked to send (XDP_STATISTICS).",
    );
    for (q, sample) in &queues {
        f.sample(&[("iface", iface), ("queue", q)], sample.kernel.tx_ring_empty);
    }

    let p = &s.program;
    for (name, help, value) in [
        (
            "afxdp_responder_program_handled_total",
            "Echo requests for an owned address the XDP program handled: redirected to a socket (afxdp), answered with XDP_TX (xdp-tx) or dropped (drop).",
            p.handled,
        ),
        (
            "afxdp_responder_program_passed_total",
            "Frames the XDP program passed to the kernel (not an owned echo request in a form the engine handles).",
            p.passed,
        ),
        (
            "afxdp_responder_program_no_socket_total",
            "Owned echo requests that arrived on a queue without a socket and were passed to the kernel (afxdp).",
            p.no_socket,
        ),
        (
            "afxdp_responder_program_bad_checksum_total",
            "Owned echo requests with a wrong checksum that the XDP program dropped (xdp-tx).",
            p.bad_checksum,
        ),
    ] {
        let mut f = Family::new(&mut out, name, "counter", help);
        f.sample(&[("iface", iface), ("engine", engine)], value);
    }
    let mut f = Family::new(
        &mut out,
        "afxdp_responder_program_policy_passed_total",
        "counter",
        "Owned echo requests host policy passed to the kernel (part of passed), by reason: ignore-all (the echo_ignore_all sysctl), denied (--deny-from), not-allowed (--allow-from), rate-limited (--rate-limit-per-source).",
    );
    for (reason, value) in [
        ("ignore-all", p.ignored),
        ("denied", p.denied),
        ("not-allowed", p.not_allowed),
        ("rate-limited", p.rate_limited),
    ] {
        f.sample(&[("iface", iface), ("engine", engine), ("reason", reason)], value);
    }
    let mut f = Family::new(
        &mut out,
        "afxdp_responder_program_route_passed_total",
        "counter",
        "Owned echo requests passed to the kernel because of the reply's route or neighbour (part of passed), by who decided (fib: the kernel's FIB lookup, forwarding on; mirror: the responder's host mirror, forwarding off) and reason: no-neighbour, not-unicast, no-route, frag-needed, other-egress, other.",
    );
    for (decided_by, passes) in [("fib", &p.fib), ("mirror", &p.mirror)] {
        for (reason, value) in passes.by_reason() {
            f.sample(
                &[
                    ("iface", iface),
                    ("engine", engine),
                    ("decided_by", decided_by),
                    ("reason", reason),
                ],
                value,
            );
        }
    }
    let mut f = Family::new(
        &mut out,
        "afxdp_responder_program_mirror_handled_total",
        "counter",
        "Owned echo requests handled on the host mirror's verdict (forwarding off: a unicast route by the interface and a usable neighbour entry); part of handled or no_socket.",
    );
    f.sample(&[("iface", iface), ("engine", engine)], p.mirror_handled);
    out
}

/// Why the endpoint could not be started. One line that says what to do.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address could not be bound.
    #[error("cannot serve metrics on {addr} (--metrics-addr): {source}: {advice}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What to do.
        advice: &'static str,
        /// The failed bind.
        #[source]
        source: std::io::Error,
    },
    /// The exporter thread could not be started.
    #[error("cannot start the metrics thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// The running endpoint: its thread and the text it serves. Dropping it stops the thread.
#[derive(Debug)]
pub struct Exporter {
    addr: SocketAddr,
    published: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    last_publish: Option<Instant>,
}

impl Exporter {
    /// Binds `addr` and starts the exporter thread, which drops every capability before it
    /// returns. Until the first [`Exporter::publish`], a scrape gets 503.
    pub fn start(addr: SocketAddr) -> Result<Exporter, MetricsError> {
        let listener = TcpListener::bind(addr).map_err(|source| MetricsError::Bind {
            addr,
            advice: match source.kind() {
                std::io::ErrorKind::AddrInUse => "pick a free port, or stop what listens there",
                std::io::ErrorKind::AddrNotAvailable => {
                    "use an address of this host, e.g. 127.0.0.1:9417 or [::1]:9417"
                }
                std::io::ErrorKind::PermissionDenied => {
                    "ports below 1024 need CAP_NET_BIND_SERVICE: use a port of 1024 or above"
                }
                _ => "check the address, e.g. 127.0.0.1:9417",
            },
            source,
        })?;
        let bound = listener.local_addr().unwrap_or(addr);
        listener.set_nonblocking(true).map_err(MetricsError::Thread)?;
        let published = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let (dropped_tx, dropped_rx) = mpsc::channel();
        let handle = {
            let (published, stop) = (Arc::clone(&published), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("metrics".into())
                .spawn(move || {
                    // Capabilities are per thread and this one never needs any: drop them
                    // first, so that "every thread of the responder holds none" stays true.
                    let _ = crate::privileges::drop_all_capabilities();
                    let _ = dropped_tx.send(());
                    serve(&listener, &published, &stop);
                })
                .map_err(MetricsError::Thread)?
        };
        // The main thread checks later that no thread holds a capability: wait for the drop.
        let _ = dropped_rx.recv();
        Ok(Exporter {
            addr: bound,
            published,
            stop,
            handle: Some(handle),
            last_publish: None,
        })
    }

    /// The address actually bound (port 0 is resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether a new snapshot is due ([`PUBLISH_INTERVAL`] since the last one, or none yet).
    pub fn due(&self) -> bool {
        self.last_publish.is_none_or(|t| t.elapsed() >= PUBLISH_INTERVAL)
    }

    /// Renders `snapshot` and makes it what scrapes get from now on.
    pub fn publish(&mut self, snapshot: &Snapshot) {
        let text = render(snapshot);
        *self.published.lock().unwrap_or_else(PoisonError::into_inner) = Some(text);
        self.last_publish = Some(Instant::now());
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The exporter thread: accept, answer, close; until `stop`.
fn serve(listener: &TcpListener, published: &Mutex<Option<String>>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                // A client that misbehaves only ends its own connection.
                let _ = answer(stream, published);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
            Err(_) => std::thread::sleep(ACCEPT_POLL),
        }
    }
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    MethodNotAllowed,
    NotFound,
    BadRequest,
}

/// Routes a request head (request line and headers, without the final blank line).
fn route(head: &[u8]) -> Route {
    let Ok(head) = std::str::from_utf8(head) else {
        return Route::BadRequest;
    };
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::BadRequest;
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    match (method, path) {
        ("GET", "/metrics") => Route::Metrics,
        (_, "/metrics") => Route::MethodNotAllowed,
        _ => Route::NotFound,
    }
}

/// Reads one request head within [`CLIENT_TIMEOUT`] and at most [`MAX_REQUEST_BYTES`], answers
/// it and closes the connection.
fn answer(mut stream: TcpStream, published: &Mutex<Option<String>>) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let end = loop {
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if head.len() > MAX_REQUEST_BYTES {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "request too large\n",
            );
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return respond(&mut stream, "408 Request Timeout", "request timeout\n");
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf) {
            Ok(0) => return Ok(()), // the client went away
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return respond(&mut stream, "408 Request Timeout", "request timeout\n");
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    };
    match route(&head[..end]) {
        Route::Metrics => {
            let text = published.lock().unwrap_or_else(PoisonError::into_inner).clone();
            match text {
                Some(text) => respond(&mut stream, "200 OK", &text),
                None => respond(&mut stream, "503 Service Unavailable", "starting\n"),
            }
        }
        Route::MethodNotAllowed => respond(&mut stream, "405 Method Not Allowed", "use GET /metrics\n"),
        Route::NotFound => respond(&mut stream, "404 Not Found", "not found: use GET /metrics\n"),
        Route::BadRequest => respond(&mut stream, "400 Bad Request", "bad request\n"),
    }
}

fn respond(stream: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let content_type = if status.starts_with("200") {
        CONTENT_TYPE
    } else {
        "text/plain; charset=utf-8"
    };
    let allow = if status.starts_with("405") {
        "Allow: GET\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()?;
    // Close gently: a client still sending (an oversized request) would otherwise get a reset
    // instead of the answer. Bounded: at most LINGER and LINGER_BYTES.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(LINGER));
    let _ = std::io::copy(&mut stream.take(LINGER_BYTES), &mut std::io::sink());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::FibPasses;

    fn snapshot() -> Snapshot {
        let mut counters = Counters {
            rx: 12,
            tx: 11,
            sleeps: 3,
            spins: 4,
            spins_caught: 2,
            kicks: 5,
            tx_ring_full: 1,
            bad_descriptors: 0,
            ..Default::default()
        };
        counters.drops[DropReason::IcmpChecksum.index()] = 1;
        Snapshot {
            iface: "veth0".into(),
            engine: "afxdp".into(),
            version: "0.1.0".into(),
            start_time_seconds: 1_764_633_000.25,
            owned_addresses: 2,
            queues: vec![QueueSample {
                queue: 0,
                cpu: 1,
                mode: "copy".into(),
                counters,
                kernel: KernelDrops {
                    dropped: 3,
                    rx_ring_full: 1,
                    fill_ring_empty: 2,
                    rx_invalid: 0,
                    other: 0,
                    tx_invalid: 0,
                    tx_ring_empty: 7,
                },
            }],
            program: EngineCounters {
                handled: 12,
                passed: 4,
                no_socket: 0,
                bad_checksum: 0,
                fib: FibPasses {
                    no_neigh: 2,
                    ..FibPasses::ZERO
                },
                mirror_handled: 5,
                mirror: FibPasses {
                    no_route: 1,
                    ..FibPasses::ZERO
                },
                ignored: 0,
                denied: 3,
                not_allowed: 0,
                rate_limited: 0,
            },
        }
    }

    #[test]
    fn renders_the_exact_exposition() {
        let mut drops = String::new();
        for r in DropReason::ALL {
            let n = if r == DropReason::IcmpChecksum { 1 } else { 0 };
            drops.push_str(&format!(
                "afxdp_responder_requests_dropped_total{{iface=\"veth0\",queue=\"0\",reason=\"{}\"}} {n}\n",
                r.as_str()
            ));
        }
        let expected = format!(
            r#"# HELP afxdp_responder_build_info Always 1; the version of the running responder.
# TYPE afxdp_responder_build_info gauge
afxdp_responder_build_info{{version="0.1.0"}} 1
# HELP afxdp_responder_start_time_seconds Start time of the process since the Unix epoch in seconds.
# TYPE afxdp_responder_start_time_seconds gauge
afxdp_responder_start_time_seconds 1764633000.25
# HELP afxdp_responder_owned_addresses Addresses the XDP program answers echo requests for.
# TYPE afxdp_responder_owned_addresses gauge
afxdp_responder_owned_addresses{{iface="veth0",engine="afxdp"}} 2
# HELP afxdp_responder_queue_info Always 1 for each served queue; its AF_XDP mode and its worker's CPU.
# TYPE afxdp_responder_queue_info gauge
afxdp_responder_queue_info{{iface="veth0",queue="0",mode="copy",cpu="1"}} 1
# HELP afxdp_responder_requests_received_total Frames the worker took from its RX ring.
# TYPE afxdp_responder_requests_received_total counter
afxdp_responder_requests_received_total{{iface="veth0",queue="0"}} 12
# HELP afxdp_responder_replies_sent_total Echo replies the worker put on its TX ring.
# TYPE afxdp_responder_replies_sent_total counter
afxdp_responder_replies_sent_total{{iface="veth0",queue="0"}} 11
# HELP afxdp_responder_worker_sleeps_total Times the worker slept in poll() because its RX ring was empty.
# TYPE afxdp_responder_worker_sleeps_total counter
afxdp_responder_worker_sleeps_total{{iface="veth0",queue="0"}} 3
# HELP afxdp_responder_worker_spins_total Spins on the rings before a sleep (--wait adaptive) or busy-poll windows (--busy-poll).
# TYPE afxdp_responder_worker_spins_total counter
afxdp_responder_worker_spins_total{{iface="veth0",queue="0"}} 4
# HELP afxdp_responder_worker_spins_caught_total Spins that saw traffic arrive before their window ran out.
# TYPE afxdp_responder_worker_spins_caught_total counter
afxdp_responder_worker_spins_caught_total{{iface="veth0",queue="0"}} 2
# HELP afxdp_responder_worker_kicks_total Wake-ups of the kernel (sendto on TX, poll nudges with --wait spin, recvfrom with --busy-poll).
# TYPE afxdp_responder_worker_kicks_total counter
afxdp_responder_worker_kicks_total{{iface="veth0",queue="0"}} 5
# HELP afxdp_responder_worker_tx_ring_full_total Times the TX ring had no room, so received frames waited on the RX ring.
# TYPE afxdp_responder_worker_tx_ring_full_total counter
afxdp_responder_worker_tx_ring_full_total{{iface="veth0",queue="0"}} 1
# HELP afxdp_responder_requests_dropped_total Frames the worker did not answer, by reason.
# TYPE afxdp_responder_requests_dropped_total counter
{drops}afxdp_responder_requests_dropped_total{{iface="veth0",queue="0",reason="bad-descriptor"}} 0
# HELP afxdp_responder_kernel_rx_dropped_total Frames the kernel dropped before the socket's RX ring (XDP_STATISTICS), each counted once, by reason.
# TYPE afxdp_responder_kernel_rx_dropped_total counter
afxdp_responder_kernel_rx_dropped_total{{iface="veth0",queue="0",reason="rx_ring_full"}} 1
afxdp_responder_kernel_rx_dropped_total{{iface="veth0",queue="0",reason="fill_ring_empty"}} 2
afxdp_responder_kernel_rx_dropped_total{{iface="veth0",queue="0",reason="rx_invalid"}} 0
afxdp_responder_kernel_rx_dropped_total{{iface="veth0",queue="0",reason="other"}} 0
# HELP afxdp_responder_kernel_tx_invalid_descriptors_total Invalid TX descriptors the kernel saw on the socket (XDP_STATISTICS).
# TYPE afxdp_responder_kernel_tx_invalid_descriptors_total counter
afxdp_responder_kernel_tx_invalid_descriptors_total{{iface="veth0",queue="0"}} 0
# HELP afxdp_responder_kernel_tx_ring_empty_total Times the kernel found the socket's TX ring empty when asked to send (XDP_STATISTICS).
# TYPE afxdp_responder_kernel_tx_ring_empty_total counter
afxdp_responder_kernel_tx_ring_empty_total{{iface="veth0",queue="0"}} 7
# HELP afxdp_responder_program_handled_total Echo requests for an owned address the XDP program handled: redirected to a socket (afxdp), answered with XDP_TX (xdp-tx) or dropped (drop).
# TYPE afxdp_responder_program_handled_total counter
afxdp_responder_program_handled_total{{iface="veth0",engine="afxdp"}} 12
# HELP afxdp_responder_program_passed_total Frames the XDP program passed to the kernel (not an owned echo request in a form the engine handles).
# TYPE afxdp_responder_program_passed_total counter
afxdp_responder_program_passed_total{{iface="veth0",engine="afxdp"}} 4
# HELP afxdp_responder_program_no_socket_total Owned echo requests that arrived on a queue without a socket and were passed to the kernel (afxdp).
# TYPE afxdp_responder_program_no_socket_total counter
afxdp_responder_program_no_socket_total{{iface="veth0",engine="afxdp"}} 0
# HELP afxdp_responder_program_bad_checksum_total Owned echo requests with a wrong checksum that the XDP program dropped (xdp-tx).
# TYPE afxdp_responder_program_bad_checksum_total counter
afxdp_responder_program_bad_checksum_total{{iface="veth0",engine="afxdp"}} 0
# HELP afxdp_responder_program_policy_passed_total Owned echo requests host policy passed to the kernel (part of passed), by reason: ignore-all (the echo_ignore_all sysctl), denied (--deny-from), not-allowed (--allow-from), rate-limited (--rate-limit-per-source).
# TYPE afxdp_responder_program_policy_passed_total counter
afxdp_responder_program_policy_passed_total{{iface="veth0",engine="afxdp",reason="ignore-all"}} 0
afxdp_responder_program_policy_passed_total{{iface="veth0",engine="afxdp",reason="denied"}} 3
afxdp_responder_program_policy_passed_total{{iface="veth0",engine="afxdp",reason="not-allowed"}} 0
afxdp_responder_program_policy_passed_total{{iface="veth0",engine="afxdp",reason="rate-limited"}} 0
# HELP afxdp_responder_program_route_passed_total Owned echo requests passed to the kernel because of the reply's route or neighbour (part of passed), by who decided (fib: the kernel's FIB lookup, forwarding on; mirror: the responder's host mirror, forwarding off) and reason: no-neighbour, not-unicast, no-route, frag-needed, other-egress, other.
# TYPE afxdp_responder_program_route_passed_total counter
afxdp_responder_program_route_passed_total{{iface="veth0",engine="afxdp",decided_by="fib",reason="no-neighbour"}} 2
afxdp_responder_program_route_passed_total{{iface="veth0",engine="afxdp",decided_by="fib",reason="not-unicast"}} 0
afxdp_responder_program_route_passed_total{{iface="veth0",engine="afxdp",decided_by="fib",reason="no-route"}} 0
afxdp_responder_program_route_passed_total{{iface="veth0",engine="afxdp",decided_by="fib",reason="frag-needed"}} 0
afxdp_responder_program_route_passed_total{{iface="veth0",engine="afxdp",decided_by="fib",reason="other-egress"}} 0
afxdp_responder_program_route_passed_total{{iface="veth0",engine="afxdp",decided_by="fib",reason="other"}} 0
afxdp_responder_program_route_passed_total{{iface="veth0",engine="afxdp",decided_by="mirror",reason="no-neighbour"}} 0
afxdp_responder_program_route_passed_total{{iface="veth0",engine="afxdp",decided_by="mirror",reason="not-unicast"}} 0
afxdp_responder_program_route_passed_total{{iface="veth0",engine="afxdp",decided_by="mirror",reason="no-route"}} 1
afxdp_responder_program_route_passed_total{{iface="veth0",engine="afxdp",decided_by="mirror",reason="frag-needed"}} 0
afxdp_responder_program_route_passed_total{{iface="veth0",engine="afxdp",decided_by="mirror",reason="other-egress"}} 0
afxdp_responder_program_route_passed_total{{iface="veth0",engine="afxdp",decided_by="mirror",reason="other"}} 0
# HELP afxdp_responder_program_mirror_handled_total Owned echo requests handled on the host mirror's verdict (forwarding off: a unicast route by the interface and a usable neighbour entry); part of handled or no_socket.
# TYPE afxdp_responder_program_mirror_handled_total counter
afxdp_responder_program_mirror_handled_total{{iface="veth0",engine="afxdp"}} 5
"#
        );
        let text = render(&snapshot());
        assert_eq!(text, expected, "got:\n{text}");
    }

    #[test]
    fn in_kernel_engines_have_program_counters_and_no_queue_samples() {
        let mut s = snapshot();
        s.engine = "xdp-tx".into();
        s.queues.clear();
        let text = render(&s);
        assert!(text.contains("afxdp_responder_program_handled_total{iface=\"veth0\",engine=\"xdp-tx\"} 12\n"));
        assert!(!text.contains("queue=\""), "{text}");
        // Every family still has its HELP and TYPE lines.
        assert!(text.contains("# TYPE afxdp_responder_requests_received_total counter\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        let mut s = snapshot();
        s.iface = "a\"b\\c\nd".into();
        let text = render(&s);
        assert!(text.contains(r#"iface="a\"b\\c\nd""#), "{text}");
        assert_eq!(text.lines().filter(|l| l.starts_with('d')).count(), 0, "no raw newline");
    }

    #[test]
    fn routes() {
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\nHost: x"), Route::Metrics);
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0"), Route::Metrics);
        assert_eq!(route(b"POST /metrics HTTP/1.1"), Route::MethodNotAllowed);
        assert_eq!(route(b"GET / HTTP/1.1"), Route::NotFound);
        assert_eq!(route(b"GET /metricsx HTTP/1.1"), Route::NotFound);
        assert_eq!(route(b"GET /metrics"), Route::BadRequest);
        assert_eq!(route(b"GET /metrics SPDY/3"), Route::BadRequest);
        assert_eq!(route(b"\xff\xfe"), Route::BadRequest);
    }

    /// Talks to a real exporter on the loopback (no privileges needed): 503 before the first
    /// snapshot, then the text; 404 elsewhere; an oversized or silent client gets an answer and
    /// does not stop the next one.
    #[test]
    fn serves_scrapes_and_survives_bad_clients() {
        let mut exporter = Exporter::start("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = exporter.local_addr();
        let get = |request: &[u8]| -> String {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(request).unwrap();
            let mut text = String::new();
            let _ = s.read_to_string(&mut text);
            text
        };
        assert!(get(b"GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 503"));
        exporter.publish(&snapshot());
        let ok = get(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(
            ok.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            "{ok}"
        );
        assert!(ok.ends_with(&render(&snapshot())), "{ok}");
        assert!(get(b"GET /other HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        let huge = vec![b'a'; MAX_REQUEST_BYTES * 2];
        assert!(get(&huge).starts_with("HTTP/1.1 431"));
        // A client that connects and says nothing is dropped after the timeout.
        let silent = TcpStream::connect(addr).unwrap();
        let t = Instant::now();
        assert!(get(b"GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));
        assert!(t.elapsed() < CLIENT_TIMEOUT + Duration::from_secs(2));
        drop(silent);
        // Port in use: one line that says what to do.
        let err = Exporter::start(addr).unwrap_err().to_string();
        assert!(err.contains("pick a free port") && !err.contains('\n'), "{err}");
    }
}
