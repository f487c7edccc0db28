//! responder-json: what `afxdp-responder` says to programs.
//!
//! With `--output json` the responder prints one JSON object per line on stdout, each an
//! [`Event`] tagged by its `"event"` field; `afxdp-responder flood --json` prints one
//! [`FloodReport`]. The daemon serialises these types and the lab (and anything else that drives
//! the responder) deserialises them: this crate *is* the schema, documented in
//! `docs/json-output.md`. Errors are not events: a failure is one line on stderr and exit status 1.
//!
//! Compatibility: fields are only ever added, never renamed or removed within a major version;
//! readers must ignore fields they do not know (serde does by default).
//!
//! ```
//! use responder_json::Event;
//! let line = r#"{"event":"addresses","iface":"eth0","addresses":["198.18.0.1"]}"#;
//! let Event::Addresses(a) = serde_json::from_str::<Event>(line).unwrap() else { panic!() };
//! assert_eq!(a.addresses, ["198.18.0.1"]);
//! ```

#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod check;
mod flood;

pub use check::{
    AttachedProgram, CapabilityCheck, CheckReport, FirewallCheck, KernelCheck, MemlockCheck, QueueCheck, StatusReport,
    XdpFeatures,
};
pub use flood::{FloodReport, Latency};

/// One line of `--output json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Every queue is served (or, for the in-kernel engines, the program is attached): pings are
    /// answered from now on. Printed once.
    Ready(Ready),
    /// Live counters, every `--stats-interval` seconds (only queues that saw traffic).
    Stats(Stats),
    /// The addresses answered for changed (they follow the interface's unless `--address`).
    Addresses(Addresses),
    /// The responder stopped: the program is detached, the workers are drained. Printed once,
    /// also when it stops because of an error (then followed by the error on stderr).
    Summary(Summary),
    /// Something worth saying that is not a counter: a replaced program (`--force`), a caveat
    /// of the driver, a worker that stopped. Informational; never needed to follow the run.
    Notice(Notice),
}

/// The `notice` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// One line for people.
    pub message: String,
    /// `warning` or `notice` (added later: absent in older output, read as `notice`).
    #[serde(default = "notice_level")]
    pub level: String,
}

fn notice_level() -> String {
    "notice".to_string()
}

/// The `ready` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ready {
    /// `afxdp`, `xdp-tx` or `drop`.
    pub engine: String,
    /// Interface name.
    pub iface: String,
    /// Interface index.
    pub ifindex: u32,
    /// The interface's driver (`veth`, `virtio_net`, `ice`, …).
    pub driver: String,
    /// How the XDP program is attached: `native` or `skb`.
    pub xdp_mode: String,
    /// Addresses answered for.
    pub addresses: Vec<String>,
    /// IPv4 TTL of replies.
    pub ttl: u8,
    /// IPv6 hop limit of replies.
    pub hop_limit: u8,
    /// The served queues (empty for the in-kernel engines).
    pub queues: Vec<QueueReady>,
    /// Capabilities after set-up: `none` once every thread dropped every capability, otherwise
    /// why they were kept.
    pub capabilities: String,
    /// Process id.
    pub pid: u32,
}

/// One served queue in the `ready` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueReady {
    /// Queue id.
    pub queue: u32,
    /// CPU its worker runs on.
    pub cpu: usize,
    /// Whether pinning the worker to `cpu` worked.
    pub pinned: bool,
    /// AF_XDP mode obtained: `zero-copy` or `copy`.
    pub mode: String,
    /// With `--mode auto`: why zero-copy was refused, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zero_copy_refused: Option<String>,
    /// With `--busy-poll`: the socket's busy-polling options as the kernel reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy_poll: Option<BusyPollReady>,
}

/// The busy-polling options of one socket, read back with `getsockopt` (`--busy-poll`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusyPollReady {
    /// `SO_PREFER_BUSY_POLL`.
    pub prefer: bool,
    /// `SO_BUSY_POLL`, microseconds.
    pub usecs: u32,
    /// `SO_BUSY_POLL_BUDGET`, packets per NAPI pass; 0 where the kernel cannot read it back
    /// (it was set all the same: setting it failing is an error at start).
    pub budget: u32,
}

/// The `stats` event: printed when something moved since the last one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// `afxdp`, `xdp-tx` or `drop`.
    pub engine: String,
    /// Seconds since the responder became ready.
    pub elapsed_s: f64,
    /// Queues with traffic since the last `stats` event (empty for the in-kernel engines).
    pub queues: Vec<QueueStats>,
    /// The XDP program's counters, cumulative.
    pub program: ProgramCounters,
    /// Owned requests the program handled per second since the last event.
    pub handled_pps: f64,
    /// Frames passed to the kernel per second since the last event.
    pub passed_pps: f64,
}

/// Live counters of one queue (cumulative since start) and its rates since the last event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Queue id.
    pub queue: u32,
    /// Frames received.
    pub rx: u64,
    /// Replies sent.
    pub tx: u64,
    /// Frames not answered (the sum of `drops`).
    pub dropped: u64,
    /// Frames not answered, by reason (`icmp-checksum`, …); only non-zero reasons.
    pub drops: BTreeMap<String, u64>,
    /// Received frames per second since the last event.
    pub rx_pps: f64,
    /// Replies per second since the last event.
    pub tx_pps: f64,
    /// The kernel's counters for the socket.
    pub kernel: KernelDrops,
}

/// The kernel's per-socket counters (`XDP_STATISTICS`), each drop counted once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelDrops {
    /// All frames the kernel dropped before the worker saw them: the sum of the next four.
    pub dropped: u64,
    /// Dropped because the RX ring was full (the worker was too slow).
    pub rx_ring_full: u64,
    /// Dropped because the fill ring was empty.
    pub fill_ring_empty: u64,
    /// Invalid RX descriptors.
    pub rx_invalid: u64,
    /// Dropped for any other reason (e.g. a frame larger than a UMEM frame).
    pub other: u64,
    /// Invalid TX descriptors (never expected: a bug if non-zero). Not part of `dropped`.
    pub tx_invalid: u64,
    /// Times the kernel found the TX ring empty when asked to send. Not a drop.
    pub tx_ring_empty: u64,
}

/// The `addresses` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addresses {
    /// Interface name.
    pub iface: String,
    /// Addresses answered for from now on (possibly none).
    pub addresses: Vec<String>,
}

/// The `summary` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// `afxdp`, `xdp-tx` or `drop`.
    pub engine: String,
    /// Interface name.
    pub iface: String,
    /// Seconds from ready to stop.
    pub duration_s: f64,
    /// Per-queue totals (empty for the in-kernel engines).
    pub queues: Vec<QueueSummary>,
    /// Sums over the queues (for the in-kernel engines: what their program handled).
    pub total: Totals,
    /// The XDP program's own counters.
    pub program: ProgramCounters,
}

/// Totals of one queue at exit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueSummary {
    /// Queue id.
    pub queue: u32,
    /// AF_XDP mode: `zero-copy` or `copy`.
    pub mode: String,
    /// Frames received.
    pub rx: u64,
    /// Replies sent.
    pub tx: u64,
    /// Frames not answered.
    pub dropped: u64,
    /// Frames not answered, by reason; only non-zero reasons.
    pub drops: BTreeMap<String, u64>,
    /// The kernel's counters for the socket.
    pub kernel: KernelDrops,
    /// Where every UMEM frame was at exit.
    pub frames: FrameCensus,
    /// How the worker waited.
    pub waits: Waits,
}

/// Where a queue's UMEM frames are at exit, after the worker returned every frame it held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameCensus {
    /// Frames in the UMEM.
    pub total: u32,
    /// On the fill ring.
    pub fill: u32,
    /// On the RX ring, not yet read.
    pub rx: u32,
    /// On the TX ring, not yet taken by the kernel.
    pub tx: u32,
    /// On the completion ring, not yet reclaimed.
    pub completion: u32,
    /// On no ring: held by a zero-copy driver as RX buffers, or in flight in the kernel; a
    /// leak if it stays non-zero after a quiet copy-mode shutdown.
    pub elsewhere: i64,
    /// Every frame is known: in copy mode `elsewhere == 0`; in zero-copy mode the frames on no
    /// ring are the driver's RX buffers (`elsewhere == in_driver`, at most the fill ring's size).
    pub accounted: bool,
    /// Zero-copy mode only: frames the driver took from the fill ring as RX buffers and still
    /// held at exit (they are `elsewhere`, not lost). Always 0 in copy mode. Added after
    /// `accounted`; absent in older output, read as 0.
    #[serde(default)]
    pub in_driver: u32,
}

/// How a worker waited when its RX ring was empty.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waits {
    /// Sleeps in `poll()`.
    pub sleeps: u64,
    /// Spins on the rings before a sleep.
    pub spins: u64,
    /// Spins that saw traffic arrive in time.
    pub spins_caught: u64,
    /// Kernel wake-ups (TX `sendto`, `poll()` nudges with `--wait spin`, `recvfrom()` with `--busy-poll`).
    pub kicks: u64,
    /// Times the TX ring had no room.
    pub tx_ring_full: u64,
}

/// Sums over all queues.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Requests received.
    pub rx: u64,
    /// Replies sent.
    pub tx: u64,
    /// Requests not answered.
    pub dropped: u64,
}

/// The XDP program's counters (per-CPU, summed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramCounters {
    /// Owned echo requests the program handled: redirected (afxdp), replied to (xdp-tx) or
    /// dropped (drop).
    pub handled: u64,
    /// Frames passed to the kernel.
    pub passed: u64,
    /// Owned requests that arrived on a queue without a socket (afxdp): the kernel answered them.
    pub no_socket: u64,
    /// Requests the xdp-tx program dropped for a wrong checksum.
    pub bad_checksum: u64,
    /// Owned requests the FIB lookup for their reply passed to the kernel, by reason (included
    /// in `passed`). Absent in the output of older versions: read as zeros.
    #[serde(default)]
    pub fib_passed: FibPassed,
    /// Owned requests handled on the host mirror's verdict because forwarding is off on the
    /// interface (the kernel refuses FIB lookups then): a unicast route by the interface and a
    /// usable neighbour entry (included in `handled` or `no_socket`). Replaces the former
    /// `fib_unchecked`. Absent in older versions: 0.
    #[serde(default)]
    pub mirror_handled: u64,
    /// Owned requests the host mirror passed to the kernel (forwarding off), by the same
    /// reasons as `fib_passed` (included in `passed`). Absent in older versions: zeros.
    #[serde(default)]
    pub mirror_passed: FibPassed,
    /// Owned echo requests that host policy sent to the kernel, by reason (a part of `passed`).
    /// Absent in output of versions before it existed: read as all zero.
    #[serde(default)]
    pub passed_by: PassReasons,
}

/// Why the FIB lookup for the reply passed owned requests to the kernel (`redirect-ebpf/reply_path.h`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FibPassed {
    /// The reply's next hop has no neighbour entry yet (the kernel resolves it first).
    pub no_neighbour: u64,
    /// Not a unicast route: our own address, a broadcast or link-local address, no route at all.
    pub not_unicast: u64,
    /// A blackhole, unreachable or prohibit route.
    pub no_route: u64,
    /// The reply is larger than the route MTU (the kernel fragments it).
    pub frag_needed: u64,
    /// The reply would leave by another interface (or a VLAN the program does not know).
    pub other_egress: u64,
    /// A lookup error, a lightweight-tunnel route, no room for the metadata.
    pub other: u64,
}

/// Why owned echo requests were passed to the kernel instead of being handled: host policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassReasons {
    /// `net.ipv4.icmp_echo_ignore_all` / `net.ipv6.icmp.echo_ignore_all` was set: the kernel
    /// ignored them.
    #[serde(default)]
    pub ignore_all: u64,
    /// The source is in `--deny-from`.
    #[serde(default)]
    pub denied: u64,
    /// `--allow-from` was given and does not list the source.
    #[serde(default)]
    pub not_allowed: u64,
    /// The source sent more than `--rate-limit-per-source` allows.
    #[serde(default)]
    pub rate_limited: u64,
}

impl Event {
    /// Parses one line; `None` if it is not an event (e.g. a human line).
    pub fn parse_line(line: &str) -> Option<Event> {
        let line = line.trim();
        if !line.starts_with('{') {
            return None;
        }
        serde_json::from_str(line).ok()
    }
}
