//! The responder as a whole, for every engine: look at the interface, load and attach the XDP
//! program, start one pinned worker per queue (`--engine afxdp`; the in-kernel engines have
//! none), drop every capability, say `ready`, then watch the run (live statistics, address and
//! link changes as rtnetlink announces them, a vanished interface or worker) until
//! SIGINT/SIGTERM, and stop in the right order:
//! detach first, so the kernel answers again at once; then drain the workers; then the
//! `summary`. What it says goes through [`Output`] as events (`--output human|json`).

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use crate::config::Config;
use crate::cpu;
use crate::options::{Engine, XskMode};

use crate::iface::{AddressTable, IfaceError, Interface};
use crate::loader::{AttachedMode, EngineCounters, EngineProgram, LoaderError, SourceList};
use crate::metrics::{Exporter, MetricsError, QueueSample, Snapshot};
use crate::napi::NapiTuning;
use crate::netlink::{Change, Link, Notifications};
use crate::output::Output;
use crate::policy::{self, HostSysctls, LivePolicy, SysctlError};
use crate::privileges;
use crate::stats::{Counters, KernelStats, Rates, SharedCounters};
use crate::worker::{Wait, Worker, WorkerError, WorkerReport};
use afxdp_xsk::{BindMode, Xsk, XskError};
use echo_wire::respond::{ReplyPolicy, Responder};
use responder_json::{
    Addresses, Event, FrameCensus, PassReasons, ProgramCounters, QueueReady, QueueStats, QueueSummary, Ready, Stats,
    Summary, Totals,
};

/// Why the responder could not start or stopped with an error. Each message is one line and
/// says what to do.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The interface could not be looked up.
    #[error(transparent)]
    Iface(#[from] IfaceError),
    /// A queue id is not below the device's queue count.
    #[error("{iface} has {count} queue(s) (0-{last}); queue {queue} does not exist: pick --queues below {count}")]
    NoSuchQueue {
        /// Interface.
        iface: String,
        /// Requested queue.
        queue: u32,
        /// Queues the device has.
        count: u32,
        /// Highest valid queue id.
        last: u32,
    },
    /// Nothing to answer for.
    #[error("{0} has no IPv4 or IPv6 unicast address: add one (ip addr add ...) or pass --address")]
    NoAddresses(String),
    /// The XDP program could not be loaded or attached.
    #[error(transparent)]
    Loader(#[from] LoaderError),
    /// A socket could not be set up.
    #[error(transparent)]
    Xsk(#[from] XskError),
    /// A socket could not be set up for lack of a capability or of locked memory.
    #[error("{source}: {needs}")]
    Privilege {
        /// What the process lacks, and what to do.
        needs: String,
        /// The failed set-up.
        #[source]
        source: XskError,
    },
    /// A worker failed while running.
    #[error("worker failed: {0} (is the interface still there and up?)")]
    Worker(#[from] WorkerError),
    /// The running kernel is older than the responder needs.
    #[error("{0}")]
    KernelTooOld(String),
    /// The interface disappeared while running (deleted, or moved to another namespace).
    #[error("{0} was removed while the responder was running (the kernel unbound its AF_XDP sockets): stopped")]
    InterfaceGone(String),
    /// The metrics endpoint could not be started.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// A sysctl of the host could not be read at start.
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
    /// A worker thread panicked (a bug: please report it).
    #[error(
        "--busy-poll on queue {queue}: {source} (needs Linux 5.11+ and CAP_NET_ADMIN; without them use --wait spin)"
    )]
    BusyPoll {
        /// The queue whose socket refused.
        queue: u32,
        /// The failed setsockopt/getsockopt.
        source: afxdp_xsk::SyscallError,
    },

    #[error("worker for queue {0} panicked (a bug: please report it with the output above)")]
    WorkerPanicked(u32),
}

/// What a worker thread tells the main thread once its socket is ready.
struct SocketReady {
    queue: u32,
    cpu: usize,
    pinned: bool,
    mode: BindMode,
    zero_copy_refused: Option<String>,
    /// A duplicate of the socket descriptor, for the XSKMAP and `XDP_STATISTICS`.
    fd: OwnedFd,
}

struct Running {
    queue: u32,
    mode: BindMode,
    fd: OwnedFd,
    shared: Arc<SharedCounters>,
    handle: JoinHandle<Result<WorkerReport, WorkerError>>,
}

/// Flattens an error and its sources into one line (for the one-line error messages).
pub fn one_line(err: &dyn std::error::Error) -> String {
    let mut msg = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}

/// Runs the responder until `stop` is set (by a signal handler, or a test) and returns its
/// summary (also emitted as the last event).
pub fn run(cfg: &Config, stop: &AtomicBool, out: &mut Output) -> Result<Summary, AppError> {
    let start_time = SystemTime::now();
    crate::kernel::check().map_err(AppError::KernelTooOld)?;
    // Subscribed before the interface and its addresses are read, so that no change between
    // that reading and the monitor loop is missed.
    let mut notifications = Notifications::subscribe().map_err(IfaceError::from)?;
    let iface = Interface::lookup(&cfg.iface)?;
    tracing::debug!(
        "interface {}: index {}, {} usable queue(s)",
        iface.name,
        iface.index,
        iface.queue_count
    );
    if cfg.engine.uses_afxdp() {
        for &queue in &cfg.queues {
            if queue >= iface.queue_count {
                return Err(AppError::NoSuchQueue {
                    iface: iface.name.clone(),
                    queue,
                    count: iface.queue_count,
                    last: iface.queue_count.saturating_sub(1),
                });
            }
        }
    }
    let table = AddressTable::new(iface.index, iface.address_entries()?);
    let addresses = if cfg.addresses.is_empty() {
        table.answered()
    } else {
        cfg.addresses.clone()
    };
    // An interface whose only addresses are still in DAD starts with nothing to answer and
    // answers them once the kernel says they are usable.
    let pending = table
        .entries()
        .iter()
        .any(|a| crate::iface::is_unicast(&a.ip) && !a.answers_echo());
    if addresses.is_empty() && !(cfg.addresses.is_empty() && pending) {
        return Err(AppError::NoAddresses(iface.name.clone()));
    }
    // The host's sysctls, followed while running (HostPolicy::refresh in the monitor loop).
    let sysctls = HostSysctls::read(&iface.name)?;
    let flow_label_key = policy::random_key();
    let policy = sysctls.reply_policy(cfg.ttl, cfg.hop_limit, flow_label_key);

    // Bound before anything is attached, so a port in use is a clean error at start.
    let exporter = cfg.metrics_addr.map(Exporter::start).transpose()?;
    // Warnings after the last check of the input, so that bad input is one line on stderr.
    if cfg.engine.uses_afxdp() && (cfg.queues.len() as u32) < iface.queue_count {
        let unserved: Vec<String> = (0..iface.queue_count)
            .filter(|q| !cfg.queues.contains(q))
            .map(|q| q.to_string())
            .collect();
        out.warning(format!(
            "{} has {} queues and {} of them are not served ({}): pings arriving there are answered \
             by the kernel; serve them with --queues all, or steer pings to the served queues (ethtool -N)",
            iface.name,
            iface.queue_count,
            unserved.len(),
            unserved.join(",")
        ));
    }
    // XDP runs before netfilter: say so when the host's rules filter echo requests.
    match crate::firewall::echo_filtering_rules() {
        Some(rules) if !rules.is_empty() => out.warning(crate::firewall::warning(&rules)),
        Some(_) => tracing::debug!("nftables: no rule filters ICMP echo requests on input"),
        None => tracing::debug!("nftables ruleset not readable (no nft?): firewall not checked"),
    }
    let mut program = EngineProgram::load_engine(cfg.engine, iface.mac, &addresses, policy)?;
    tracing::debug!(
        "loaded the {} program for {} address(es); TTL {}, hop limit {}",
        cfg.engine.program_name(),
        addresses.len(),
        policy.ipv4_ttl,
        policy.ipv6_hop_limit
    );
    program.set_ignore_all(sysctls.ignore_v4, sysctls.ignore_v6)?;
    for &cidr in &cfg.deny_from {
        program.add_source_rule(SourceList::Deny, cidr)?;
    }
    for &cidr in &cfg.allow_from {
        program.add_source_rule(SourceList::Allow, cidr)?;
    }
    if let Some(per_second) = cfg.rate_limit_per_source {
        program.set_rate_limit(per_second, per_second)?;
    }
    // The host mirror (forwarding off): the routes and neighbours the program consults when the
    // kernel refuses its FIB lookups, from dumps taken after the subscription, before attaching.
    let served = [iface.index];
    let routes = notifications.dump_routes().map_err(IfaceError::from)?;
    program.sync_mirror_routes(&routes, &served)?;
    let neighbours = notifications.dump_neighbours().map_err(IfaceError::from)?;
    program.replace_mirror_neighbours(&neighbours, &served)?;
    let attached = program.attach(&iface.name, cfg.xdp_mode)?;
    match program.native_fallback_reason() {
        Some(why) => tracing::debug!("attached in {attached} mode (native refused: {why})"),
        None => tracing::debug!("attached in {attached} mode"),
    }
    let driver = afxdp_xsk::driver_name(&iface.name).unwrap_or_else(|_| "unknown".into());
    if cfg.engine == Engine::XdpTx && driver == "veth" && attached == AttachedMode::Native {
        out.notice(
            "on veth, native XDP_TX replies reach the peer only if the peer has an XDP program \
             attached (an XDP_PASS one is enough); --xdp-mode skb needs none",
        );
    }

    // --busy-poll: the interface's NAPI settings for the run, restored when `napi` is dropped (at
    // every return from here on, normal, error or after a stop signal).
    let busy_poll = cfg.engine.uses_afxdp() && matches!(cfg.wait, Wait::BusyPoll { .. });
    let napi = busy_poll.then(|| {
        let (tuning, warning) = NapiTuning::apply(&iface.name);
        if let Some(warning) = warning {
            out.warning(warning);
        }
        let set = tuning.describe();
        if !set.is_empty() {
            out.notice(format!("--busy-poll: {set} on {} until exit", iface.name));
        }
        tuning
    });
    // The AF_XDP engine's workers; the in-kernel engines have none.
    let workers_stop = Arc::new(AtomicBool::new(false));
    let live = Arc::new(LivePolicy::new(policy));
    let (running, queues) = if cfg.engine.uses_afxdp() {
        match start_workers(cfg, &iface, policy, &live, &workers_stop, &mut program) {
            Ok(r) => r,
            Err(e) => {
                workers_stop.store(true, Ordering::Relaxed);
                return Err(e);
            }
        }
    } else {
        (Vec::new(), Vec::new())
    };
    // Every worker dropped its own capabilities before it reported ready; the program is
    // attached and the sockets are registered: nothing from here on (data path, statistics,
    // address changes through the map, shutdown) needs a capability.
    // With --busy-poll the main thread keeps CAP_NET_ADMIN: the kernel checks it when the NAPI
    // settings are written back at exit.
    let keep = napi
        .as_ref()
        .is_some_and(|n| !n.describe().is_empty())
        .then_some(caps::Capability::CAP_NET_ADMIN);
    let capabilities = match privileges::drop_after_setup_keeping(keep) {
        Ok(_) if keep.is_some() => {
            "CAP_NET_ADMIN in the main thread only (to restore the interface's NAPI settings at exit)".to_string()
        }
        Ok(_) => "none".to_string(),
        Err(e) => format!("could not drop capabilities after set-up ({e}); running with them"),
    };
    let mut metrics = exporter.map(|exporter| MetricsFeed {
        exporter,
        iface: iface.name.clone(),
        engine: cfg.engine.name().to_string(),
        start_time,
        cpus: queues.iter().map(|q| (q.queue, q.cpu)).collect(),
    });
    if let Some(m) = &mut metrics {
        m.publish_if_due(&running, &program, addresses.len()); // a scrape after `ready` gets numbers
    }
    out.emit(&Event::Ready(Ready {
        engine: cfg.engine.name().to_string(),
        iface: iface.name.clone(),
        ifindex: iface.index,
        driver,
        xdp_mode: attached.to_string(),
        addresses: addresses.iter().map(IpAddr::to_string).collect(),
        ttl: policy.ipv4_ttl,
        hop_limit: policy.ipv6_hop_limit,
        queues,
        capabilities,
        pid: std::process::id(),
    }));
    crate::notify::notify("READY=1");
    if let Some(m) = &metrics {
        out.notice(format!("metrics: http://{}/metrics", m.exporter.local_addr()));
    }
    // After `ready`: a start that fails is still one line on stderr.
    if cfg.engine != Engine::Drop {
        let off = forwarding_off(&iface.name);
        if !off.is_empty() {
            out.notice(format!(
                "{} {} 0, and the kernel answers XDP route lookups only where forwarding is on: the \
                 responder's mirror of the routes and neighbour entries decides for those pings \
                 (counted as mirror_handled and mirror_passed; see docs/parity.md)",
                off.join(" and "),
                if off.len() == 1 { "is" } else { "are" }
            ));
        }
        match crate::netlink::route::non_default_rules() {
            Ok(rules) if !rules.is_empty() => out.notice(format!(
                "the host has policy routing rules ({}): the route mirror follows the default rules \
                 only (local, main, default tables), so with forwarding off its verdicts can differ \
                 from the kernel's for the sources those rules select (see docs/parity.md)",
                rules.join(", ")
            )),
            Ok(_) => {}
            Err(e) => tracing::debug!("policy rules not read: {}", one_line(&e)),
        }
    }

    let started = Instant::now();
    let mut owned = Following {
        notifications,
        table,
        follow: cfg.addresses.is_empty(),
        current: addresses,
        link: LinkFacts {
            name: iface.name.clone(),
            mac: iface.mac,
            mtu: iface.mtu,
        },
        warned: false,
        stale: false,
        served: served.to_vec(),
    };
    let mut host = HostPolicy {
        sysctls,
        ttl: cfg.ttl,
        hop_limit: cfg.hop_limit,
        key: flow_label_key,
        live,
        checked: started,
    };
    let failure = monitor(
        cfg,
        &iface,
        &mut owned,
        &mut host,
        &mut program,
        stop,
        &running,
        started,
        out,
        &mut metrics,
    );

    crate::notify::notify("STOPPING=1");
    // Detach first: from here on the kernel answers pings itself again.
    let counters = program.counters().unwrap_or_default();
    for r in &running {
        let _ = program.unregister_socket(r.queue);
    }
    drop(program);
    workers_stop.store(true, Ordering::Relaxed);

    let mut reports = Vec::new();
    let mut first_error = failure;
    for r in running {
        match r.handle.join() {
            Ok(Ok(report)) => reports.push(report),
            Ok(Err(e)) => {
                first_error.get_or_insert(AppError::Worker(e));
            }
            Err(_) => {
                first_error.get_or_insert(AppError::WorkerPanicked(r.queue));
            }
        }
    }
    let summary = summary(
        cfg.engine,
        &iface.name,
        started.elapsed(),
        &reports,
        &counters,
        cfg.xsk.fill_size,
    );
    out.emit(&Event::Summary(summary.clone()));
    match first_error {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

/// The forwarding sysctls of `iface` that are off (`net.ipv4.conf.IFACE.forwarding`, …): where
/// they are, `bpf_fib_lookup` answers `FWD_DISABLED` and the program cannot ask the FIB
/// (`redirect-ebpf/reply_path.h`). A sysctl that cannot be read (no IPv6) is not reported.
fn forwarding_off(iface: &str) -> Vec<String> {
    ["ipv4", "ipv6"]
        .into_iter()
        .filter(|family| {
            // (Built directly: an interface name may contain dots, e.g. eth0.100.)
            let path = format!("/proc/sys/net/{family}/conf/{iface}/forwarding");
            std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "0")
        })
        .map(|family| format!("net.{family}.conf.{iface}.forwarding"))
        .collect()
}

/// The program's counters in the shape of the JSON schema.
fn program_counters(c: &EngineCounters) -> ProgramCounters {
    ProgramCounters {
        handled: c.handled,
        passed: c.passed,
        no_socket: c.no_socket,
        bad_checksum: c.bad_checksum,
        fib_passed: c.fib.into(),
        mirror_handled: c.mirror_handled,
        mirror_passed: c.mirror.into(),
        passed_by: PassReasons {
            ignore_all: c.ignored,
            denied: c.denied,
            not_allowed: c.not_allowed,
            rate_limited: c.rate_limited,
        },
    }
}

/// The `summary` event. For the AF_XDP engine the totals are the workers' sums. The in-kernel
/// engines have no workers; their program's counters fill the same fields: xdp-tx received
/// `replied + bad checksum`, sent `replied`, dropped `bad checksum`; drop received and dropped
/// `dropped`, sent nothing.
///
/// The frame census: in copy mode every frame must be on a ring at exit; in zero-copy mode the
/// driver keeps up to a fill ring's worth of frames as posted RX buffers, and those are reported
/// as `in_driver`, not as missing.
fn summary(
    engine: Engine,
    iface: &str,
    duration: Duration,
    reports: &[WorkerReport],
    counters: &EngineCounters,
    fill_size: u32,
) -> Summary {
    let queues: Vec<QueueSummary> = reports
        .iter()
        .map(|r| {
            let c = &r.counters;
            let census = &r.census;
            let elsewhere = census.elsewhere();
            let in_driver = match r.mode {
                BindMode::ZeroCopy => u32::try_from(elsewhere).ok().filter(|&n| n <= fill_size).unwrap_or(0),
                BindMode::Copy => 0,
            };
            QueueSummary {
                queue: r.queue,
                mode: r.mode.to_string(),
                rx: c.rx,
                tx: c.tx,
                dropped: c.dropped(),
                drops: c.drops_by_reason(),
                kernel: r.kernel.drops(r.mode),
                frames: FrameCensus {
                    total: census.total,
                    fill: census.fill,
                    rx: census.rx,
                    tx: census.tx,
                    completion: census.completion,
                    elsewhere,
                    accounted: elsewhere == i64::from(in_driver),
                    in_driver,
                },
                waits: c.waits(),
            }
        })
        .collect();
    let total = match engine {
        Engine::AfXdp => Totals {
            rx: queues.iter().map(|q| q.rx).sum(),
            tx: queues.iter().map(|q| q.tx).sum(),
            dropped: queues.iter().map(|q| q.dropped).sum(),
        },
        Engine::XdpTx => Totals {
            rx: counters.handled + counters.bad_checksum,
            tx: counters.handled,
            dropped: counters.bad_checksum,
        },
        Engine::Drop => Totals {
            rx: counters.handled,
            tx: 0,
            dropped: counters.handled,
        },
    };
    Summary {
        engine: engine.name().to_string(),
        iface: iface.to_string(),
        duration_s: duration.as_secs_f64(),
        queues,
        total,
        program: program_counters(counters),
    }
}

fn start_workers(
    cfg: &Config,
    iface: &Interface,
    policy: ReplyPolicy,
    live: &Arc<LivePolicy>,
    workers_stop: &Arc<AtomicBool>,
    program: &mut EngineProgram,
) -> Result<(Vec<Running>, Vec<QueueReady>), AppError> {
    let (ready_tx, ready_rx) = mpsc::channel::<Result<SocketReady, XskError>>();
    let mut pending = Vec::new();
    for (&queue, &cpu) in cfg.queues.iter().zip(&cfg.cpus) {
        let shared = Arc::new(SharedCounters::default());
        let ready_tx = ready_tx.clone();
        let (stop, counters) = (Arc::clone(workers_stop), Arc::clone(&shared));
        let (cfg, ifname, ifindex) = (cfg.clone(), iface.name.clone(), iface.index);
        let live = Arc::clone(live);
        let handle = thread::Builder::new()
            .name(format!("afxdp-q{queue}"))
            .spawn(move || {
                // Pin first, so the UMEM is allocated and touched on the worker's own CPU.
                let pinned = cpu::pin_current_thread(cpu);
                let opened = match cfg.mode {
                    XskMode::Auto => Xsk::open_auto(&ifname, ifindex, queue, &cfg.xsk).map(|(x, refused)| {
                        let why = refused.map(|e| match e {
                            XskError::ZeroCopyUnsupported { driver, .. } => {
                                format!("driver {driver} does not support it")
                            }
                            other => other.to_string(),
                        });
                        (x, why)
                    }),
                    XskMode::ZeroCopy => {
                        Xsk::open(&ifname, ifindex, queue, &cfg.xsk, BindMode::ZeroCopy).map(|x| (x, None))
                    }
                    XskMode::Copy => Xsk::open(&ifname, ifindex, queue, &cfg.xsk, BindMode::Copy).map(|x| (x, None)),
                };
                let (xsk, zero_copy_refused) = match opened {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return Ok(empty_report(queue));
                    }
                };
                let fd = match xsk.fd().try_clone_to_owned() {
                    Ok(fd) => fd,
                    Err(e) => {
                        let source = afxdp_xsk::SyscallError {
                            call: "dup(AF_XDP socket)",
                            source: e,
                        };
                        let _ = ready_tx.send(Err(XskError::Setup {
                            iface: ifname.clone(),
                            queue,
                            source,
                        }));
                        return Ok(empty_report(queue));
                    }
                };
                let mode = xsk.mode();
                // Capabilities are per thread: this one needs none from here on (the main thread
                // registers the socket and checks that the drop took effect).
                let _ = privileges::drop_all_capabilities();
                let _ = ready_tx.send(Ok(SocketReady {
                    queue,
                    cpu,
                    pinned,
                    mode,
                    zero_copy_refused,
                    fd,
                }));
                let responder = Responder::new(policy, random_u16() ^ queue as u16);
                Worker::new(xsk, responder, cfg.batch, cfg.wait)
                    .with_frame_checks(cfg.check_frames)
                    .with_trace(cfg.trace)
                    .with_live_policy(live)
                    .run(&stop, &counters)
            })
            .expect("spawning a worker thread");
        pending.push((queue, shared, handle));
    }
    drop(ready_tx);

    let mut ready = Vec::new();
    let mut error = None;
    for _ in 0..pending.len() {
        match ready_rx.recv() {
            Ok(Ok(r)) => ready.push(r),
            Ok(Err(e)) => {
                error.get_or_insert(e);
            }
            Err(_) => break,
        }
    }
    if let Some(e) = error {
        workers_stop.store(true, Ordering::Relaxed);
        for (_, _, h) in pending {
            let _ = h.join();
        }
        return Err(explain_xsk_error(e, cfg));
    }

    let (mut running, mut announced) = (Vec::new(), Vec::new());
    for (queue, shared, handle) in pending {
        let r = ready
            .iter()
            .position(|r| r.queue == queue)
            .map(|i| ready.swap_remove(i));
        let Some(r) = r else {
            return Err(AppError::WorkerPanicked(queue));
        };
        program.register_socket(queue, r.fd.as_fd())?;
        // --busy-poll: set on the socket (the worker's descriptor is a duplicate of this one),
        // then read back, so the ready event says what the kernel holds.
        let busy_poll = match cfg.wait {
            Wait::BusyPoll { window } => {
                let wanted = afxdp_xsk::BusyPoll {
                    prefer: true,
                    usecs: u32::try_from(window.as_micros()).unwrap_or(u32::MAX),
                    budget: cfg.batch,
                };
                afxdp_xsk::set_busy_poll(r.fd.as_fd(), wanted)
                    .and_then(|()| afxdp_xsk::busy_poll(r.fd.as_fd()))
                    .map_err(|source| AppError::BusyPoll { queue, source })
                    .map(|got| {
                        Some(responder_json::BusyPollReady {
                            prefer: got.prefer,
                            usecs: got.usecs,
                            budget: got.budget,
                        })
                    })
            }
            _ => Ok(None),
        };
        let busy_poll = match busy_poll {
            Ok(b) => b,
            Err(e) => {
                workers_stop.store(true, Ordering::Relaxed);
                return Err(e);
            }
        };
        tracing::debug!(
            "queue {queue}: socket bound in {} mode on CPU {}, registered in the XSKMAP",
            r.mode,
            r.cpu
        );
        announced.push(QueueReady {
            queue,
            cpu: r.cpu,
            pinned: r.pinned,
            mode: r.mode.to_string(),
            zero_copy_refused: r.zero_copy_refused,
            busy_poll,
        });
        running.push(Running {
            queue,
            mode: r.mode,
            fd: r.fd,
            shared,
            handle,
        });
    }
    Ok((running, announced))
}

/// Says which capability (or locked-memory limit) a failed socket set-up lacks.
fn explain_xsk_error(e: XskError, cfg: &Config) -> AppError {
    let XskError::Setup { source, .. } = &e else {
        return e.into();
    };
    let umem_kib = u64::from(cfg.xsk.frame_size) * u64::from(cfg.xsk.fill_size) / 1024;
    let umem = if umem_kib >= 1024 {
        format!("{} MiB", umem_kib / 1024)
    } else {
        format!("{umem_kib} KiB")
    };
    let needs = match (source.call, source.errno()) {
        ("socket(AF_XDP)", Some(libc::EPERM | libc::EACCES)) => {
            "creating AF_XDP sockets needs CAP_NET_RAW: run as root or add CAP_NET_RAW".to_string()
        }
        ("setsockopt(XDP_UMEM_REG)", Some(libc::ENOBUFS | libc::EPERM)) => format!(
            "registering the {umem} UMEM needs CAP_IPC_LOCK, or a locked-memory limit (ulimit -l) \
             of at least {umem}: run as root or add CAP_IPC_LOCK"
        ),
        _ => return e.into(),
    };
    AppError::Privilege { needs, source: e }
}

/// Whether the interface is gone as far as the sockets tell: the kernel unbinds every AF_XDP
/// socket of an interface that is unregistered and sets its socket error to `ENETDOWN`
/// (`poll()` does not report it, so the workers would sleep on forever); a plain link down does
/// neither. The `RTM_DELLINK` notification ([`Following`]) says the same for every engine.
fn sockets_unbound(running: &[Running]) -> bool {
    use nix::sys::socket::{getsockopt, sockopt::SocketError};
    running
        .iter()
        .any(|r| getsockopt(&r.fd, SocketError).is_ok_and(|e| e == libc::ENETDOWN))
}

/// What the daemon holds about its link, kept true from `RTM_NEWLINK` notifications.
struct LinkFacts {
    name: String,
    mac: [u8; 6],
    mtu: u32,
}

/// The interface's state as rtnetlink announces it: the addresses answered for and the link.
/// Without `--address` the answered addresses follow the interface's own exactly as the kernel
/// treats them ([`AddressTable::answered`]): a new address is answered as soon as its
/// `RTM_NEWADDR` arrives (for IPv6, the one that says DAD is over), a removed one no longer as
/// soon as its `RTM_DELADDR` arrives (Linux flushes an interface's IPv6 addresses when it goes
/// down, unless `keep_addr_on_down`). The XDP program's map is changed before the `addresses`
/// event is printed.
struct Following {
    notifications: Notifications,
    table: AddressTable,
    follow: bool,
    current: Vec<IpAddr>,
    link: LinkFacts,
    /// A failing notification socket was reported once.
    warned: bool,
    /// Notifications may have been missed (a read failed): re-read everything at the next turn.
    stale: bool,
    /// The devices the host mirror keeps routes' preference and neighbour entries for.
    served: Vec<u32>,
}

/// How long the monitor loop waits for a notification before it looks at the statistics.
const MONITOR_TICK: Duration = Duration::from_millis(50);

impl Following {
    /// Waits up to [`MONITOR_TICK`] for notifications and applies them; returns the error to
    /// stop with if the interface is gone.
    fn wait_and_apply(&mut self, iface: &Interface, program: &mut EngineProgram, out: &mut Output) -> Option<AppError> {
        let changes = match self.notifications.wait(MONITOR_TICK) {
            Ok(changes) => changes,
            Err(e) => {
                if !self.warned {
                    self.warned = true;
                    out.notice(format!(
                        "warning: {}; address and link changes may be missed until it recovers",
                        one_line(&e)
                    ));
                }
                self.stale = true;
                thread::sleep(MONITOR_TICK);
                return None;
            }
        };
        let mut resync = std::mem::take(&mut self.stale);
        let mut addresses_changed = false;
        let mut routes_changed = false;
        for change in &changes {
            match change {
                Change::Overflow => resync = true,
                Change::DelLink { index } if *index == iface.index => {
                    return Some(AppError::InterfaceGone(self.link.name.clone()));
                }
                Change::NewLink(link) if link.index == iface.index => self.link_changed(link, program, out),
                Change::NewAddress(_) | Change::DelAddress(_) => {
                    self.table.apply(change);
                    addresses_changed = true;
                }
                Change::Routes => routes_changed = true,
                Change::Neighbour(entry) => {
                    if let Err(e) = program.set_mirror_neighbour(entry, &self.served) {
                        // E.g. the map is full: that neighbour's pings go to the kernel.
                        tracing::debug!("host mirror: {}", one_line(&e));
                    }
                }
                _ => {}
            }
        }
        if resync {
            // Notifications were lost: the kernel's present state replaces what we built.
            match self.notifications.link(iface.index) {
                Ok(None) => return Some(AppError::InterfaceGone(self.link.name.clone())),
                Ok(Some(link)) => self.link_changed(&link, program, out),
                Err(_) => {}
            }
            if let Ok(entries) = self.notifications.dump_addresses(iface.index) {
                self.table.replace(entries);
                addresses_changed = true;
            }
            routes_changed = true;
            if let Ok(entries) = self.notifications.dump_neighbours() {
                let _ = program.replace_mirror_neighbours(&entries, &self.served);
            }
            out.notice(
                "rtnetlink notifications were lost (the socket buffer overflowed, or a read failed): \
                 resynchronised from a full dump",
            );
        }
        if addresses_changed {
            self.sync_addresses(program, out);
        }
        if routes_changed {
            // A route notification says what changed, but not which route Linux now prefers
            // for that prefix (several may remain): re-read the tables and write the difference.
            match self.notifications.dump_routes() {
                Ok(routes) => {
                    if let Err(e) = program.sync_mirror_routes(&routes, &self.served) {
                        out.notice(format!("warning: the route mirror could not follow: {}", one_line(&e)));
                    }
                }
                Err(_) => self.stale = true,
            }
        }
        None
    }

    /// Brings the XDP program's address map in line with the table, then says so.
    fn sync_addresses(&mut self, program: &mut EngineProgram, out: &mut Output) {
        if !self.follow {
            return;
        }
        let now = self.table.answered();
        if now.len() == self.current.len() && now.iter().all(|a| self.current.contains(a)) {
            return;
        }
        for gone in self.current.iter().filter(|a| !now.contains(a)) {
            let _ = program.remove_address(0, *gone);
        }
        for new in now.iter().filter(|a| !self.current.contains(a)) {
            if let Err(e) = program.add_address(0, *new) {
                // E.g. the map is full: say so rather than list an address that is not answered.
                out.notice(format!("warning: {new} is not answered: {}", one_line(&e)));
            }
        }
        out.emit(&Event::Addresses(Addresses {
            iface: self.link.name.clone(),
            addresses: now.iter().map(IpAddr::to_string).collect(),
        }));
        self.current = now;
    }

    /// Keeps the link facts true. Up/down needs nothing here (the addresses Linux flushes or
    /// marks tentative arrive as address notifications); a new MAC goes into the XDP
    /// program's configuration, so only frames to it are handled.
    fn link_changed(&mut self, link: &Link, program: &mut EngineProgram, out: &mut Output) {
        if !link.name.is_empty() && link.name != self.link.name {
            out.notice(format!("{} was renamed to {}", self.link.name, link.name));
            self.link.name.clone_from(&link.name);
        }
        if let Some(mac) = link.mac().filter(|m| *m != self.link.mac) {
            let result = match program.set_mac(mac) {
                Ok(()) => "requests are answered only when sent to the new one".to_string(),
                Err(e) => format!("the XDP program could not follow it: {}", one_line(&e)),
            };
            out.notice(format!(
                "{}: MAC address changed from {} to {}: {result}",
                self.link.name,
                mac_text(self.link.mac),
                mac_text(mac)
            ));
            self.link.mac = mac;
        }
        if link.mtu != 0 && link.mtu != self.link.mtu {
            out.notice(format!(
                "{}: MTU changed from {} to {}",
                self.link.name, self.link.mtu, link.mtu
            ));
            self.link.mtu = link.mtu;
        }
    }
}

fn mac_text(mac: [u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

/// The host's policy as last read, and where it goes when it changes: the XDP program's
/// `host_policy` and `config` maps and the workers' [`LivePolicy`].
struct HostPolicy {
    sysctls: HostSysctls,
    /// `--ttl` / `--hop-limit`: fixed, not followed.
    ttl: Option<u8>,
    hop_limit: Option<u8>,
    key: [u64; 2],
    live: Arc<LivePolicy>,
    checked: Instant,
}

impl HostPolicy {
    /// Reads the sysctls at most every [`policy::SYSCTL_POLL_INTERVAL`] and applies a change:
    /// the program passes or handles echo requests, the workers (and the xdp-tx program) reply
    /// with the new TTL, hop limit and flow-label policy. A file that cannot be read (it can
    /// only vanish with IPv6 being disabled) keeps the last values.
    fn refresh(&mut self, iface: &Interface, program: &mut EngineProgram, out: &mut Output) {
        if self.checked.elapsed() < policy::SYSCTL_POLL_INTERVAL {
            return;
        }
        self.checked = Instant::now();
        let Ok(now) = HostSysctls::read(&iface.name) else {
            return;
        };
        if now == self.sysctls {
            return;
        }
        let policy = now.reply_policy(self.ttl, self.hop_limit, self.key);
        let applied = program
            .set_ignore_all(now.ignore_v4, now.ignore_v6)
            .and_then(|()| program.set_reply_policy(policy));
        if let Err(e) = applied {
            out.notice(format!(
                "warning: host policy changed but could not be applied: {}",
                one_line(&e)
            ));
            return;
        }
        self.live.store(policy);
        out.notice(format!(
            "host policy: echo_ignore_all v4 {} v6 {}; replies use TTL {} and hop limit {}; IPv6 flow labels: {}",
            u8::from(now.ignore_v4),
            u8::from(now.ignore_v6),
            policy.ipv4_ttl,
            policy.ipv6_hop_limit,
            match (now.flowlabel_reflect, now.auto_flowlabels) {
                (true, true) => "reflected, else auto",
                (true, false) => "reflected",
                (false, true) => "auto",
                (false, false) => "none",
            }
        ));
        self.sysctls = now;
    }
}

/// Waits for `stop`, emitting live statistics every `--stats-interval` (when something moved)
/// and following the interface's addresses and link from rtnetlink notifications (the wait
/// for the next one is the loop's clock); returns early if a worker dies or the interface
/// disappears. The same loop serves every engine: the in-kernel ones simply have no workers.
#[allow(clippy::too_many_arguments)]
fn monitor(
    cfg: &Config,
    iface: &Interface,
    owned: &mut Following,
    host: &mut HostPolicy,
    program: &mut EngineProgram,
    stop: &AtomicBool,
    running: &[Running],
    started: Instant,
    out: &mut Output,
    metrics: &mut Option<MetricsFeed>,
) -> Option<AppError> {
    let mut last_print = started;
    let mut last: Vec<Counters> = running.iter().map(|r| r.shared.snapshot()).collect();
    let mut last_program = program.counters().unwrap_or_default();
    while !stop.load(Ordering::Relaxed) {
        if let Some(gone) = owned.wait_and_apply(iface, program, out) {
            return Some(gone);
        }
        if sockets_unbound(running) {
            return Some(AppError::InterfaceGone(owned.link.name.clone()));
        }
        host.refresh(iface, program, out);
        if let Some(m) = metrics {
            m.publish_if_due(running, program, owned.current.len());
        }
        if let Some(r) = running.iter().find(|r| r.handle.is_finished()) {
            // The worker ended on its own: an error (reported when it is joined).
            out.warning(format!("queue {} stopped unexpectedly", r.queue));
            return None;
        }
        let Some(interval) = cfg.stats_interval else { continue };
        let now = Instant::now();
        let elapsed = now.duration_since(last_print);
        if elapsed < interval {
            continue;
        }
        let mut queues = Vec::new();
        for (r, prev) in running.iter().zip(last.iter_mut()) {
            let cur = r.shared.snapshot();
            let kernel = afxdp_xsk::statistics(r.fd.as_fd())
                .map(KernelStats::from)
                .unwrap_or_default()
                .drops(r.mode);
            if cur.rx == prev.rx && cur.tx == prev.tx && kernel.dropped == 0 {
                continue; // an idle queue says nothing
            }
            let rates = Rates::between(prev, &cur, elapsed);
            queues.push(QueueStats {
                queue: r.queue,
                rx: cur.rx,
                tx: cur.tx,
                dropped: cur.dropped(),
                drops: cur.drops_by_reason(),
                rx_pps: rates.rx_pps,
                tx_pps: rates.tx_pps,
                kernel,
            });
            *prev = cur;
        }
        let counters = program.counters().unwrap_or(last_program);
        let policy_moved = (
            counters.ignored,
            counters.denied,
            counters.not_allowed,
            counters.rate_limited,
        ) != (
            last_program.ignored,
            last_program.denied,
            last_program.not_allowed,
            last_program.rate_limited,
        );
        let moved = if cfg.engine.uses_afxdp() {
            !queues.is_empty() || policy_moved
        } else {
            counters != last_program
        };
        if moved {
            let secs = elapsed.as_secs_f64();
            out.emit(&Event::Stats(Stats {
                engine: cfg.engine.name().to_string(),
                elapsed_s: now.duration_since(started).as_secs_f64(),
                queues,
                program: program_counters(&counters),
                handled_pps: counters.handled.saturating_sub(last_program.handled) as f64 / secs,
                passed_pps: counters.passed.saturating_sub(last_program.passed) as f64 / secs,
            }));
            last_program = counters;
        }
        last_print = now;
    }
    None
}

fn empty_report(queue: u32) -> WorkerReport {
    WorkerReport {
        queue,
        mode: BindMode::Copy,
        counters: Counters::default(),
        census: Default::default(),
        kernel: KernelStats::default(),
    }
}

// ---- The Prometheus endpoint (--metrics-addr; see metrics.rs for why this is the only feed) ----

/// What the monitor loop needs to feed the exporter: the endpoint and the facts that do not change.
struct MetricsFeed {
    exporter: Exporter,
    iface: String,
    engine: String,
    start_time: SystemTime,
    /// (queue, CPU of its worker).
    cpus: Vec<(u32, usize)>,
}

impl MetricsFeed {
    /// Publishes a new snapshot when one is due: the workers' published counters, the kernel's
    /// statistics through the duplicate descriptors, the program's counters through its map.
    fn publish_if_due(&mut self, running: &[Running], program: &EngineProgram, owned_addresses: usize) {
        if !self.exporter.due() {
            return;
        }
        let queues = running
            .iter()
            .map(|r| QueueSample {
                queue: r.queue,
                cpu: self.cpus.iter().find(|c| c.0 == r.queue).map_or(0, |c| c.1),
                mode: r.mode.to_string(),
                counters: r.shared.snapshot(),
                kernel: afxdp_xsk::statistics(r.fd.as_fd())
                    .map(KernelStats::from)
                    .unwrap_or_default()
                    .drops(r.mode),
            })
            .collect();
        let snapshot = Snapshot {
            iface: self.iface.clone(),
            engine: self.engine.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            start_time_seconds: self
                .start_time
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            owned_addresses,
            queues,
            program: program.counters().unwrap_or_default(),
        };
        self.exporter.publish(&snapshot);
    }
}

/// A random 16-bit seed for the IPv4 identification counter (from the std hasher's random keys).
fn random_u16() -> u16 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish() as u16
}
