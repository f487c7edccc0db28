//! `afxdp-responder flood`: a load generator that sends ICMP echo requests from AF_XDP TX rings
//! and verifies every reply.
//!
//! Each queue gets one pinned thread with its own socket and UMEM. The UMEM is split in two:
//! frames on the fill ring receive replies (redirected to the socket by
//! `redirect-ebpf/flood_replies.c`), and a pool of TX frames (see
//! [`XskConfig::tx_frames`]) holds the requests being sent. Every request carries, in its
//! payload, the time it was sent and a sequence number; a reply is *correct* when both checksums
//! are valid, the addresses and MACs are swapped, the type is an echo reply, and identifier,
//! sequence and payload are exactly what was sent. Round-trip times come from the timestamp.
//!
//! With `--inject live` ([`Inject::Live`]) the kernel generates the requests instead: each
//! thread runs its own copy of `redirect-ebpf/flood_inject.c` with `BPF_PROG_RUN` on live frames
//! (the loader's [`InjectProgram`]), paced from here, and keeps receiving and verifying the
//! replies the same way; the send time in the stamp is then `CLOCK_MONOTONIC`. See
//! docs/decisions.md §18.
//!
//! Every run is bounded: by `--duration` (at most 600 s) and, optionally, `--count`.
//!
//! | module | what it does |
//! |---|---|
//! | `template` | builds the request frames with echo-wire's packet views |
//! | `queue` | one queue's thread: send, reclaim, receive, drain |
//! | `capture` | checks every reply, through the same views; spots duplicates |
//! | `usage` | the generator's own CPU time and its CPUs' softirq time over the run |
//! | `report` | adds the queues up into a [`FloodReport`] (`flood --json`) and prints it for people ([`human`]) |
//!
//! The reply-capturing XDP program is the loader's [`CaptureProgram`].

use std::io::Write;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::cpu;
use crate::iface::{IfaceError, Interface};
use crate::loader::{CaptureProgram, LoaderError};
use crate::netlink::{self, NetlinkError};
use crate::options::XdpMode;
use afxdp_xsk::{SyscallError, Xsk, XskConfig, XskError};

mod capture;
mod queue;
mod report;
mod template;
mod usage;

pub use queue::InjectError;
pub use report::human;

use responder_json::FloodReport;

use report::QueueResult;
use template::Template;

/// The longest run allowed.
pub const MAX_DURATION: Duration = Duration::from_secs(600);

/// Requests per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// As fast as the TX ring takes them.
    Max,
    /// A fixed rate, spread over the queues.
    Pps(u64),
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "max" {
            return Ok(Rate::Max);
        }
        let (digits, mult) = match s.strip_suffix(['k', 'K']) {
            Some(d) => (d, 1_000.0),
            None => match s.strip_suffix(['m', 'M']) {
                Some(d) => (d, 1_000_000.0),
                None => (s, 1.0),
            },
        };
        match digits.parse::<f64>() {
            Ok(v) if v > 0.0 && (v * mult) <= 100e6 => Ok(Rate::Pps((v * mult) as u64)),
            _ => Err(format!(
                "{s:?} is not a rate: use max or packets per second, e.g. 100000 or 100k"
            )),
        }
    }
}

/// Where the requests come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Inject {
    /// Written by the generator's threads into AF_XDP TX rings (the default).
    #[default]
    Xsk,
    /// Generated in the kernel: `BPF_PROG_RUN` with live frames on `redirect-ebpf/flood_inject.c`,
    /// which rewrites sequence number, send time and ICMP checksum of a template on every run and
    /// returns `XDP_TX` (Linux >= 5.18; on veth the peer needs an XDP program).
    Live,
}

impl std::fmt::Display for Inject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Inject::Xsk => "xsk",
            Inject::Live => "live",
        })
    }
}

/// What to send.
#[derive(Debug, Clone)]
pub struct FloodConfig {
    /// Interface to send from.
    pub iface: String,
    /// Address to ping.
    pub dst: IpAddr,
    /// Our source address (default: the interface's first address of the same family).
    pub src: Option<IpAddr>,
    /// MAC of the target (default: from the kernel's neighbour table, read with rtnetlink).
    pub dst_mac: Option<[u8; 6]>,
    /// IP packet size in bytes (header included).
    pub size: usize,
    /// Requests per second.
    pub rate: Rate,
    /// How long to send.
    pub duration: Duration,
    /// Stop after this many requests (over all queues).
    pub count: Option<u64>,
    /// TX queues to send on, one thread each.
    pub queues: Vec<u32>,
    /// CPU of each thread.
    pub cpus: Vec<usize>,
    /// How to attach the reply-capturing XDP program.
    pub xdp_mode: XdpMode,
    /// Every N-th request gets a wrong ICMP checksum (0: never); such requests must not be answered.
    pub bad_checksum_every: u64,
    /// Where the requests come from.
    pub inject: Inject,
}

/// Why a flood could not run.
#[derive(Debug, thiserror::Error)]
pub enum FloodError {
    /// A bad option; the message says what to use instead.
    #[error("{0}")]
    Config(String),
    /// Interface lookup.
    #[error(transparent)]
    Iface(#[from] IfaceError),
    /// The neighbour table could not be read.
    #[error("reading the neighbour table for the default --dst-mac: {0}")]
    Neighbour(#[from] NetlinkError),
    /// The reply capture program could not be loaded, filled or attached.
    #[error("the reply capture XDP program: {0}")]
    Program(#[from] LoaderError),
    /// Socket set-up.
    #[error(transparent)]
    Xsk(#[from] XskError),
    /// The live injector failed while running.
    #[error("queue {queue}: {source}")]
    Inject {
        /// Queue of the failing thread.
        queue: u32,
        /// What failed.
        #[source]
        source: InjectError,
    },
    /// A system call failed while running.
    #[error("queue {queue}: {source}")]
    Run {
        /// Queue of the failing thread.
        queue: u32,
        /// The failed call.
        #[source]
        source: SyscallError,
    },
}

/// Runs a flood and returns what it measured. `stop` ends it early (Ctrl-C).
pub fn run(cfg: &FloodConfig, stop: &AtomicBool, out: &mut dyn Write) -> Result<FloodReport, FloodError> {
    if cfg.duration.is_zero() || cfg.duration > MAX_DURATION {
        return Err(FloodError::Config(format!(
            "--duration {:?} is not valid: use 0 < seconds <= {}",
            cfg.duration,
            MAX_DURATION.as_secs()
        )));
    }
    if cfg.queues.is_empty() || cfg.cpus.len() != cfg.queues.len() {
        return Err(FloodError::Config(
            "give one CPU per queue (--cpus) and at least one queue".into(),
        ));
    }
    let iface = Interface::lookup(&cfg.iface)?;
    for &q in &cfg.queues {
        if q >= iface.queue_count {
            return Err(FloodError::Config(format!(
                "{} has {} queue(s); queue {q} does not exist: pick --queues below {}",
                iface.name, iface.queue_count, iface.queue_count
            )));
        }
    }
    let src = match cfg.src {
        Some(s) => s,
        None => iface
            .addresses()?
            .into_iter()
            .filter(|a| a.is_ipv6() == cfg.dst.is_ipv6())
            .min_by_key(|a| matches!(a, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80))
            .ok_or_else(|| {
                FloodError::Config(format!(
                    "{} has no address of the family of {}: pass --src",
                    iface.name, cfg.dst
                ))
            })?,
    };
    let their_mac = match cfg.dst_mac {
        Some(m) => m,
        None => match netlink::neighbour_mac(iface.index, cfg.dst)? {
            Some(m) => m,
            None => {
                return Err(FloodError::Config(format!(
                    "no neighbour entry for {} on {}: ping it once first or pass --dst-mac",
                    cfg.dst, iface.name
                )));
            }
        },
    };
    let template = Template::new(src, cfg.dst, cfg.size, iface.mac, their_mac)?;
    let (mut capture, _attached) = CaptureProgram::load_and_attach(&iface.name, cfg.xdp_mode, src)?;

    let xsk_cfg = XskConfig {
        fill_size: 4096,
        rx_size: 2048,
        tx_size: 2048,
        comp_size: 2048,
        tx_frames: 2048,
        ..XskConfig::default()
    };
    let mut sockets = Vec::new();
    for &queue in &cfg.queues {
        let xsk = open_socket(&iface, queue, &xsk_cfg)?;
        capture.register_socket(queue, xsk.fd().as_fd())?;
        sockets.push(xsk);
    }
    let n = cfg.queues.len() as u64;
    let _ = writeln!(
        out,
        "flood: {src} -> {} on {} queue(s) {:?} ({} mode, {} injection), {}-byte IP packets, rate {}, for at most {:?}{}",
        cfg.dst,
        iface.name,
        cfg.queues,
        sockets[0].mode(),
        cfg.inject,
        cfg.size,
        match cfg.rate {
            Rate::Max => "max".to_string(),
            Rate::Pps(p) => format!("{p}/s"),
        },
        cfg.duration,
        cfg.count.map(|c| format!(" or {c} requests")).unwrap_or_default()
    );

    // One injector per thread, on the thread's CPU, in the capture program (see
    // redirect-ebpf/flood_inject.h); each thread's requests carry its own identifier.
    let mut requests = Vec::new();
    if cfg.inject == Inject::Live {
        let mut cpus = cfg.cpus.clone();
        cpus.sort_unstable();
        cpus.dedup();
        if cpus.len() != cfg.cpus.len() {
            return Err(FloodError::Config(
                "--inject live needs a different CPU for each queue's thread (--cpus)".into(),
            ));
        }
        let loopback = Interface::lookup("lo")?;
        let icmp_off = if cfg.dst.is_ipv4() { 34 } else { 54 };
        for (i, &cpu) in cfg.cpus.iter().enumerate() {
            let mut request = vec![0u8; template.frame.len()];
            template.write_request(&mut request, ident_of(i), 0, 0, false);
            let cpu = u32::try_from(cpu).unwrap_or(u32::MAX);
            capture.add_injector(
                cpu,
                &request,
                icmp_off,
                cfg.bad_checksum_every,
                loopback.index,
                iface.index,
            )?;
            requests.push(request);
        }
    }

    let usage_before = usage::Usage::read(&cfg.cpus);
    let base = Instant::now();
    let capture_ref = &capture;
    let results: Vec<Result<QueueResult, FloodError>> = std::thread::scope(|scope| {
        let mut requests = requests.into_iter();
        let handles: Vec<_> = sockets
            .into_iter()
            .enumerate()
            .map(|(i, xsk)| {
                let template = template.clone();
                let cpu = cfg.cpus[i];
                let count = cfg.count.map(|c| c / n + u64::from((i as u64) < c % n));
                let rate = match cfg.rate {
                    Rate::Max => None,
                    Rate::Pps(p) => Some((p as f64 / n as f64).max(1.0)),
                };
                let ident = ident_of(i);
                let request = requests.next();
                scope.spawn(move || {
                    let pinned = cpu::pin_current_thread(cpu);
                    let queue = xsk.queue();
                    match request {
                        Some(_) if !pinned => Err(FloodError::Config(format!(
                            "cannot pin queue {queue}'s thread to CPU {cpu}, which --inject live needs: pick allowed --cpus"
                        ))),
                        Some(request) => {
                            let live = queue::Live {
                                capture: capture_ref,
                                request: &request,
                                cpu: cpu as u32,
                            };
                            queue::injector(xsk, live, &template, ident, cfg, count, rate, stop)
                                .map_err(|source| FloodError::Inject { queue, source })
                        }
                        None => queue::sender(xsk, &template, ident, base, cfg, count, rate, stop)
                            .map_err(|source| FloodError::Run { queue, source }),
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("flood thread panicked"))
            .collect()
    });
    let usage = usage::Usage::read(&cfg.cpus).since(&usage_before);
    let usage_wall_s = base.elapsed().as_secs_f64();
    drop(capture);

    let results = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    let mut report = report::summarise(&results);
    report.inject = cfg.inject.to_string();
    report.generator_cpu_s = usage.process_s;
    report.generator_softirq_s = usage.softirq_s;
    report.generator_wall_s = usage_wall_s;
    Ok(report)
}

/// Opens the socket of `queue`. A queue still held by the socket of a flood that has just exited
/// (the kernel releases it a moment after the process ends) is tried again for up to a second;
/// after that the queue really is in use and the error says so.
fn open_socket(iface: &Interface, queue: u32, cfg: &XskConfig) -> Result<Xsk, FloodError> {
    const RETRY: Duration = Duration::from_millis(50);
    const PATIENCE: Duration = Duration::from_secs(1);
    let start = Instant::now();
    loop {
        match Xsk::open_auto(&iface.name, iface.index, queue, cfg) {
            Ok((xsk, _)) => return Ok(xsk),
            Err(XskError::QueueBusy { .. }) if start.elapsed() < PATIENCE => std::thread::sleep(RETRY),
            Err(e) => return Err(e.into()),
        }
    }
}

/// The ICMP identifier of the `i`-th thread's requests.
fn ident_of(i: usize) -> u16 {
    0x4146u16.wrapping_add(i as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!("max".parse::<Rate>().unwrap(), Rate::Max);
        assert_eq!("100k".parse::<Rate>().unwrap(), Rate::Pps(100_000));
        assert_eq!("2M".parse::<Rate>().unwrap(), Rate::Pps(2_000_000));
        assert!(
            "fast"
                .parse::<Rate>()
                .unwrap_err()
                .contains("use max or packets per second")
        );
    }
}
