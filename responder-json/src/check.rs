//! `afxdp-responder check --json` and `afxdp-responder status --json`: one object each.

use serde::{Deserialize, Serialize};

/// The pre-flight report of `afxdp-responder check --json`. Exit status 0 when `ok` (starting
/// with these options would work), 1 when not (`problems` says why).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    /// Interface name.
    pub iface: String,
    /// Whether starting the responder with these options would work: `problems` is empty.
    pub ok: bool,
    /// Why starting would fail, one line each, each saying what to do.
    pub problems: Vec<String>,
    /// What would work but deserves attention (unserved queues, copy mode, firewall rules).
    pub warnings: Vec<String>,
    /// Interface index.
    pub ifindex: u32,
    /// Driver (from sysfs), `unknown` if none is named.
    pub driver: String,
    /// MAC address.
    pub mac: String,
    /// Unicast addresses the responder would answer for.
    pub addresses: Vec<String>,
    /// Queue counts.
    pub queues: QueueCheck,
    /// XDP features of the device from the netdev netlink family (Linux 6.3+).
    pub xdp_features: XdpFeatures,
    /// The XDP program attached now, if any.
    pub attached: Option<AttachedProgram>,
    /// Capabilities held against the five needed.
    pub capabilities: CapabilityCheck,
    /// Locked-memory limit against the UMEM the options need.
    pub memlock: MemlockCheck,
    /// The running kernel against the features used.
    pub kernel: KernelCheck,
    /// Host firewall rules that filter ICMP echo input (which XDP bypasses).
    pub firewall: FirewallCheck,
}

/// Queue counts of the interface and what `--queues` would serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueCheck {
    /// RX queues (`/sys/class/net/IF/queues/rx-*`).
    pub rx: u32,
    /// TX queues.
    pub tx: u32,
    /// Usable for AF_XDP: the smaller of the two.
    pub usable: u32,
    /// The queues `--queues` asks for.
    pub requested: Vec<u32>,
    /// Requested queues the interface does not have (a problem).
    pub missing: Vec<u32>,
    /// Queues of the interface that would have no worker: pings there are answered by the
    /// kernel.
    pub unserved: Vec<u32>,
}

/// The device's XDP features (`NETDEV_CMD_DEV_GET`). Every flag is `null` when unknown (a kernel
/// older than 6.3 has no netdev family).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XdpFeatures {
    /// Whether the features could be read.
    pub known: bool,
    /// Why not, when not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_reason: Option<String>,
    /// Native XDP (`NETDEV_XDP_ACT_BASIC`).
    pub native: Option<bool>,
    /// `XDP_REDIRECT` support (`NETDEV_XDP_ACT_REDIRECT`).
    pub redirect: Option<bool>,
    /// Can be a redirect target (`NETDEV_XDP_ACT_NDO_XMIT`).
    pub redirect_target: Option<bool>,
    /// AF_XDP zero-copy (`NETDEV_XDP_ACT_XSK_ZEROCOPY`).
    pub xsk_zerocopy: Option<bool>,
    /// Multi-buffer (scatter-gather) RX (`NETDEV_XDP_ACT_RX_SG`).
    pub rx_sg: Option<bool>,
    /// Zero-copy segments per packet (`xdp-zc-max-segs`).
    pub zc_max_segs: Option<u32>,
    /// The raw `xdp-features` bit mask.
    pub raw: Option<u64>,
}

/// An XDP program attached to an interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachedProgram {
    /// Kernel program id.
    pub id: u32,
    /// Program name, if known (`redirect_echo`, `tx_echo`, `drop_echo` are the responder's).
    pub name: Option<String>,
    /// `native`, `skb` or `offload`.
    pub mode: String,
    /// The bpf_link holding it, if one does (then only its owner can remove it).
    pub link_id: Option<u32>,
    /// The process holding that link: `process PID (COMM)`.
    pub holder: Option<String>,
}

/// Capabilities of the process that ran `check`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilityCheck {
    /// The five the responder needs.
    pub needed: Vec<String>,
    /// Those of them not in the effective set.
    pub missing: Vec<String>,
}

/// `RLIMIT_MEMLOCK` against the UMEM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemlockCheck {
    /// The soft limit in bytes; `null` for unlimited.
    pub limit_bytes: Option<u64>,
    /// UMEM bytes over all requested queues (frame size × fill ring size × queues).
    pub umem_bytes: u64,
    /// Whether the limit matters: without CAP_IPC_LOCK the UMEM is charged to it.
    pub enough: bool,
}

/// The running kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelCheck {
    /// `uname -r`.
    pub release: String,
    /// The minimum the responder needs (`5.9`).
    pub minimum: String,
    /// Whether the kernel is at least the minimum.
    pub ok: bool,
}

/// Firewall rules that filter ICMP echo requests on input (nftables, `nft -j list ruleset`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallCheck {
    /// Whether the ruleset could be read (`false`: `nft` is missing or failed).
    pub checked: bool,
    /// The rules found, one line each (`inet filter input: icmp echo-request drop`).
    pub filtering_rules: Vec<String>,
}

/// `afxdp-responder status --json`: what runs on an interface, read from the kernel without the
/// running process's help. Exit status 1 when no XDP program is attached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Interface name.
    pub iface: String,
    /// The attached program (`null`: nothing attached).
    pub attached: Option<AttachedProgram>,
    /// Whether the attached program is one of the responder's (by name).
    pub responder: bool,
    /// The engine it belongs to (`afxdp`, `xdp-tx`, `drop`), if it is the responder's.
    pub engine: Option<String>,
    /// Queues of the interface with a bound AF_XDP socket in this namespace, from the kernel's
    /// socket diagnostics (`ss --xdp`; the kernel does not let user space read an XSKMAP);
    /// `null` when the kernel has no AF_XDP socket diagnostics (`CONFIG_XDP_SOCKETS_DIAG`).
    pub queues: Option<Vec<u32>>,
    /// The program's counters, from its per-CPU `counters` map (`null` if not readable).
    pub counters: Option<crate::ProgramCounters>,
}
