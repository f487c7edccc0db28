//! `afxdp-responder check` (would starting work, and what would it get?) and
//! `afxdp-responder status` (what runs on an interface now?), both read from the kernel without
//! starting anything and without the running process's help. Their JSON is
//! [`responder_json::CheckReport`] and [`responder_json::StatusReport`] (docs/json-output.md).

use std::fmt::Write as _;
use std::net::IpAddr;

use caps::{CapSet, Capability};
use responder_json::{
    AttachedProgram, CapabilityCheck, CheckReport, FirewallCheck, KernelCheck, MemlockCheck, ProgramCounters,
    QueueCheck, StatusReport, XdpFeatures,
};

use crate::config::QueueList;
use crate::iface::{IfaceError, Interface};
use crate::kernel::{KernelVersion, MINIMUM};
use crate::loader::{self, ExistingXdpProgram};
use crate::netdev::{self, act};
use crate::options::{Engine, XdpMode, XskMode};

/// The options `check` looks at: the run command's, as given (or from `--config`).
#[derive(Debug, Clone)]
pub struct CheckInput {
    /// `--iface`.
    pub iface: String,
    /// `--queues`.
    pub queues: QueueList,
    /// `--mode`.
    pub mode: XskMode,
    /// `--xdp-mode`.
    pub xdp_mode: XdpMode,
    /// `--engine`.
    pub engine: Engine,
    /// `--address` (empty: the interface's own).
    pub addresses: Vec<IpAddr>,
    /// `--frame-size`.
    pub frame_size: u32,
    /// `--fill-size` (UMEM frames per queue).
    pub fill_size: u32,
    /// `--force`.
    pub force: bool,
}

/// The capabilities set-up needs (config/afxdp-responder.service, docs/security.md).
pub const NEEDED_CAPABILITIES: [Capability; 5] = [
    Capability::CAP_BPF,
    Capability::CAP_PERFMON,
    Capability::CAP_NET_ADMIN,
    Capability::CAP_NET_RAW,
    Capability::CAP_IPC_LOCK,
];

/// The responder's XDP function names and their engines.
fn engine_of(program_name: &str) -> Option<Engine> {
    Engine::ALL.into_iter().find(|e| e.program_name() == program_name)
}

fn attached(existing: &ExistingXdpProgram) -> AttachedProgram {
    AttachedProgram {
        id: existing.id,
        name: existing.name.clone(),
        mode: match existing.mode {
            "xdpgeneric" => "skb",
            "xdpoffload" => "offload",
            _ => "native",
        }
        .to_string(),
        link_id: existing.link_id,
        holder: existing.holder.as_deref().map(str::to_owned),
    }
}

/// `RLIMIT_MEMLOCK`'s soft limit from /proc/self/limits; `None` for unlimited.
fn memlock_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max locked memory"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes.div_ceil(1024 * 1024))
}

/// Runs every check. `Err` only when the interface does not exist (nothing else can be said).
pub fn check(input: &CheckInput) -> Result<CheckReport, IfaceError> {
    let iface = Interface::lookup(&input.iface)?;
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let name = &iface.name;
    let driver = afxdp_xsk::driver_name(name).unwrap_or_else(|_| "unknown".into());

    // Queues.
    let count = |prefix: &str| {
        std::fs::read_dir(format!("/sys/class/net/{name}/queues"))
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                    .count() as u32
            })
            .unwrap_or(0)
    };
    let requested = input.queues.resolve(iface.queue_count);
    let afxdp = input.engine.uses_afxdp();
    let missing: Vec<u32> = requested.iter().copied().filter(|&q| q >= iface.queue_count).collect();
    let unserved: Vec<u32> = if afxdp {
        (0..iface.queue_count).filter(|q| !requested.contains(q)).collect()
    } else {
        Vec::new()
    };
    if afxdp && !missing.is_empty() {
        problems.push(format!(
            "{name} has {} queue(s); --queues asks for {}: pick --queues below {} (or --queues all)",
            iface.queue_count,
            join(&missing),
            iface.queue_count
        ));
    }
    if !unserved.is_empty() {
        warnings.push(format!(
            "{} of {name}'s {} queues would not be served ({}): pings arriving there are answered by the kernel; \
             use --queues all, or steer pings to the served queues (ethtool -N)",
            unserved.len(),
            iface.queue_count,
            join(&unserved)
        ));
    }

    // Addresses.
    let addresses = if input.addresses.is_empty() {
        iface.addresses().unwrap_or_default()
    } else {
        input.addresses.clone()
    };
    if addresses.is_empty() {
        problems.push(format!(
            "{name} has no IPv4 or IPv6 unicast address: add one (ip addr add ...) or pass --address"
        ));
    }

    // XDP features.
    let xdp_features = match netdev::device_features(iface.index) {
        Ok(f) => {
            let has = |bit: u64| Some(f.xdp & bit != 0);
            XdpFeatures {
                known: true,
                unknown_reason: None,
                native: has(act::BASIC),
                redirect: has(act::REDIRECT),
                redirect_target: has(act::NDO_XMIT),
                xsk_zerocopy: has(act::XSK_ZEROCOPY),
                rx_sg: has(act::RX_SG),
                zc_max_segs: f.zc_max_segs,
                raw: Some(f.xdp),
            }
        }
        Err(why) => XdpFeatures {
            known: false,
            unknown_reason: Some(why),
            native: None,
            redirect: None,
            redirect_target: None,
            xsk_zerocopy: None,
            rx_sg: None,
            zc_max_segs: None,
            raw: None,
        },
    };
    if afxdp {
        match (input.mode, xdp_features.xsk_zerocopy) {
            (XskMode::ZeroCopy, Some(false)) => problems.push(format!(
                "driver {driver} does not support AF_XDP zero-copy (netdev xdp-features): use --mode copy or --mode auto"
            )),
            (XskMode::Auto, Some(false)) => warnings.push(format!(
                "driver {driver} does not support AF_XDP zero-copy: --mode auto will bind in copy mode"
            )),
            _ => {}
        }
    }
    let native_needed = afxdp || input.engine == Engine::XdpTx;
    match (input.xdp_mode, xdp_features.native) {
        (XdpMode::Native, Some(false)) => problems.push(format!(
            "driver {driver} has no native XDP (netdev xdp-features): use --xdp-mode skb or auto"
        )),
        (XdpMode::Auto, Some(false)) if native_needed => warnings.push(format!(
            "driver {driver} has no native XDP: --xdp-mode auto will attach in skb (generic) mode, which is slower"
        )),
        _ => {}
    }

    // What is attached.
    let existing = loader::attached_program(name);
    if let Some(e) = &existing {
        if input.force && e.link_id.is_none() {
            warnings.push(format!(
                "{e} is attached: --force would detach it (it is not re-attached at exit)"
            ));
        } else {
            problems.push(format!(
                "{name} already has an XDP program attached ({e}): the responder would not start"
            ));
        }
    }

    // Capabilities.
    let needed: Vec<String> = NEEDED_CAPABILITIES.iter().map(ToString::to_string).collect();
    let missing_caps: Vec<String> = NEEDED_CAPABILITIES
        .iter()
        .filter(|c| !caps::has_cap(None, CapSet::Effective, **c).unwrap_or(false))
        .map(ToString::to_string)
        .collect();
    if !missing_caps.is_empty() {
        problems.push(format!(
            "this process lacks {}: run as root or with the capabilities of config/afxdp-responder.service",
            missing_caps.join(", ")
        ));
    }

    // Locked memory: the UMEM is charged to RLIMIT_MEMLOCK unless CAP_IPC_LOCK is held.
    let limit_bytes = memlock_limit();
    let umem_bytes = if afxdp {
        u64::from(input.frame_size) * u64::from(input.fill_size) * requested.len() as u64
    } else {
        0
    };
    let ipc_lock = !missing_caps.iter().any(|c| c == "CAP_IPC_LOCK");
    let enough = ipc_lock || limit_bytes.is_none_or(|l| l >= umem_bytes);
    if !enough {
        problems.push(format!(
            "the UMEM needs {} of locked memory and the limit is {}: add CAP_IPC_LOCK, raise ulimit -l, or use a \
             smaller --fill-size / --frame-size",
            mib(umem_bytes),
            mib(limit_bytes.unwrap_or(0))
        ));
    }

    // Kernel.
    let (version, release) = KernelVersion::running().map_or((None, "unknown".to_string()), |(v, r)| (Some(v), r));
    let kernel_ok = version.is_none_or(|v| v >= MINIMUM);
    if !kernel_ok {
        problems.push(format!(
            "Linux {release} is too old: afxdp-responder needs Linux {MINIMUM} or newer (XDP attached with a bpf_link)"
        ));
    }
    if version.is_some_and(|v| v < KernelVersion { major: 5, minor: 11 }) && !enough {
        warnings.push("before Linux 5.11 BPF maps are charged to the locked-memory limit too".to_string());
    }

    // Firewall.
    let rules = crate::firewall::echo_filtering_rules();
    if let Some(rules) = &rules
        && !rules.is_empty()
    {
        warnings.push(crate::firewall::warning(rules));
    }

    Ok(CheckReport {
        iface: name.clone(),
        ok: problems.is_empty(),
        problems,
        warnings,
        ifindex: iface.index,
        driver,
        mac: iface
            .mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
        addresses: addresses.iter().map(IpAddr::to_string).collect(),
        queues: QueueCheck {
            rx: count("rx-"),
            tx: count("tx-"),
            usable: iface.queue_count,
            requested,
            missing,
            unserved,
        },
        xdp_features,
        attached: existing.as_ref().map(attached),
        capabilities: CapabilityCheck {
            needed,
            missing: missing_caps,
        },
        memlock: MemlockCheck {
            limit_bytes,
            umem_bytes,
            enough,
        },
        kernel: KernelCheck {
            release,
            minimum: MINIMUM.to_string(),
            ok: kernel_ok,
        },
        firewall: FirewallCheck {
            checked: rules.is_some(),
            filtering_rules: rules.unwrap_or_default(),
        },
    })
}

fn join(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

fn yes_no(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    }
}

fn describe(p: &AttachedProgram) -> String {
    let mut s = format!("program id {}", p.id);
    if let Some(name) = &p.name {
        let _ = write!(s, " `{name}`");
    }
    let _ = write!(s, " in {} mode", p.mode);
    if let Some(link) = p.link_id {
        let _ = write!(s, ", bpf_link id {link}");
    }
    if let Some(holder) = &p.holder {
        let _ = write!(s, " of {holder}");
    }
    s
}

/// The report for a terminal.
pub fn human_check(r: &CheckReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "interface   {} (index {}, driver {}, MAC {})",
        r.iface, r.ifindex, r.driver, r.mac
    );
    let _ = writeln!(
        s,
        "addresses   {}",
        if r.addresses.is_empty() {
            "none".to_string()
        } else {
            r.addresses.join(", ")
        }
    );
    let q = &r.queues;
    let _ = writeln!(
        s,
        "queues      {} rx, {} tx ({} usable); --queues serves {}{}",
        q.rx,
        q.tx,
        q.usable,
        join(&q.requested),
        if q.unserved.is_empty() {
            String::new()
        } else {
            format!("; unserved {}", join(&q.unserved))
        }
    );
    let f = &r.xdp_features;
    if f.known {
        let _ = writeln!(
            s,
            "xdp         native {}, redirect {}, redirect target {}, AF_XDP zero-copy {}{}",
            yes_no(f.native),
            yes_no(f.redirect),
            yes_no(f.redirect_target),
            yes_no(f.xsk_zerocopy),
            f.zc_max_segs.map_or(String::new(), |n| format!(" (max {n} segments)"))
        );
    } else {
        let _ = writeln!(
            s,
            "xdp         features unknown ({})",
            f.unknown_reason.as_deref().unwrap_or("not reported")
        );
    }
    let _ = writeln!(
        s,
        "attached    {}",
        r.attached.as_ref().map_or("nothing".to_string(), describe)
    );
    let _ = writeln!(
        s,
        "privileges  {}",
        if r.capabilities.missing.is_empty() {
            format!("all five held ({})", r.capabilities.needed.join(", "))
        } else {
            format!("missing {}", r.capabilities.missing.join(", "))
        }
    );
    let m = &r.memlock;
    let _ = writeln!(
        s,
        "memlock     limit {}, UMEM {}: {}",
        m.limit_bytes.map_or("unlimited".to_string(), mib),
        mib(m.umem_bytes),
        if m.enough { "fine" } else { "too low" }
    );
    let _ = writeln!(
        s,
        "kernel      {} (needs {}+): {}",
        r.kernel.release,
        r.kernel.minimum,
        if r.kernel.ok { "fine" } else { "too old" }
    );
    let _ = writeln!(
        s,
        "firewall    {}",
        if !r.firewall.checked {
            "not checked (no nft, or the ruleset is not readable)".to_string()
        } else if r.firewall.filtering_rules.is_empty() {
            "no nftables rule filters echo requests on input".to_string()
        } else {
            r.firewall.filtering_rules.join("; ")
        }
    );
    for w in &r.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    for p in &r.problems {
        let _ = writeln!(s, "problem: {p}");
    }
    s.push_str(if r.ok {
        "ok: starting the responder with these options would work"
    } else {
        "not ok: starting the responder with these options would fail (see the problems above)"
    });
    s
}

/// What runs on `ifname` now. `Err` only when the interface does not exist.
pub fn status(ifname: &str) -> Result<StatusReport, IfaceError> {
    let iface = Interface::lookup(ifname)?;
    let existing = loader::attached_program(&iface.name);
    let engine = existing.as_ref().and_then(|e| e.name.as_deref()).and_then(engine_of);
    let counters = existing
        .as_ref()
        .and_then(|e| loader::program_counters(e.id).ok())
        .map(|c| ProgramCounters {
            handled: c.handled,
            passed: c.passed,
            no_socket: c.no_socket,
            bad_checksum: c.bad_checksum,
            fib_passed: c.fib.into(),
            mirror_handled: c.mirror_handled,
            mirror_passed: c.mirror.into(),
            passed_by: responder_json::PassReasons {
                ignore_all: c.ignored,
                denied: c.denied,
                not_allowed: c.not_allowed,
                rate_limited: c.rate_limited,
            },
        });
    Ok(StatusReport {
        iface: iface.name,
        attached: existing.as_ref().map(attached),
        responder: engine.is_some(),
        engine: engine.map(|e| e.name().to_string()),
        queues: crate::xsk_diag::queues_with_sockets(iface.index).ok(),
        counters,
    })
}

/// The status for a terminal.
pub fn human_status(r: &StatusReport) -> String {
    let Some(p) = &r.attached else {
        return format!(
            "{}: no XDP program attached (the responder is not running there)",
            r.iface
        );
    };
    let mut s = format!("{}: {}", r.iface, describe(p));
    match &r.engine {
        Some(engine) => {
            let _ = write!(s, "\nafxdp-responder, engine {engine}");
        }
        None => s.push_str("\nnot afxdp-responder's program"),
    }
    match &r.queues {
        Some(q) if q.is_empty() => s.push_str("\nqueues with an AF_XDP socket: none"),
        Some(q) => {
            let _ = write!(s, "\nqueues with an AF_XDP socket: {}", join(q));
        }
        None => s.push_str("\nqueues with an AF_XDP socket: unknown (no AF_XDP socket diagnostics in this kernel)"),
    }
    if let Some(c) = &r.counters {
        let verb = r
            .engine
            .as_deref()
            .and_then(|e| crate::options::parse::<Engine>(e).ok())
            .map_or("handled", Engine::handled_verb);
        let _ = write!(
            s,
            "\ncounters: {verb} {}, passed to the kernel {}, no socket {}, bad checksum {}",
            c.handled, c.passed, c.no_socket, c.bad_checksum
        );
        let reasons = |p: &responder_json::FibPassed| {
            format!(
                "no neighbour {}, not unicast {}, no route {}, frag needed {}, other egress {}, other {}",
                p.no_neighbour, p.not_unicast, p.no_route, p.frag_needed, p.other_egress, p.other
            )
        };
        let _ = write!(s, "\npassed by the FIB (forwarding on): {}", reasons(&c.fib_passed));
        let _ = write!(
            s,
            "\nhost mirror (forwarding off): {verb} {}; passed: {}",
            c.mirror_handled,
            reasons(&c.mirror_passed)
        );
        let b = &c.passed_by;
        let _ = write!(
            s,
            "\npassed by host policy: echo_ignore_all {}, --deny-from {}, not in --allow-from {}, rate limit {}",
            b.ignore_all, b.denied, b.not_allowed, b.rate_limited
        );
    }
    s
}
