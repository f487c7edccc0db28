//! The XDP programs of the engines: load one with aya, fill its maps, attach it with a bpf_link.
//!
//! [`EngineProgram::load_engine`] loads the program of any [`Engine`]: `redirect.c` (AF_XDP,
//! the default, described below), `echo_tx.c` (answers in the kernel with `XDP_TX`) or
//! `echo_drop.c` (drops). They share one filter (`redirect-ebpf/echo_filter.h`) and the maps
//! `owned_addrs`, `config` and `counters`, so loading, map filling, attaching and counting are
//! the same code for all three; only the redirect program has the `xsks` map.
//! [`RedirectProgram`] is the name the AF_XDP path has always used for it.
//!
//! # The program
//!
//! `redirect-ebpf/redirect.c` is compiled by clang in `build.rs` and embedded in the binary. Its
//! one XDP function, `redirect_echo`, runs for every frame the interface receives and asks a
//! single question: *is this an ICMP echo request for one of our addresses, in a form simple
//! enough for user space to answer?* That means: sent to the interface's MAC from a unicast MAC,
//! at most one VLAN tag, IPv4 without options and not a fragment or IPv6 without extension
//! headers, ICMP type 8 / ICMPv6 type 128, a unicast source address, and a destination address
//! in `owned_addrs` for the frame's VLAN. Such a frame is redirected to the AF_XDP socket of the
//! RX queue it arrived on (`bpf_redirect_map(&xsks, rx_queue_index, XDP_PASS)`); everything else
//! gets `XDP_PASS`, so the kernel keeps doing ARP, neighbour discovery, SSH, fragments, options…
//! If no socket is registered for the queue, the request is passed too and the kernel answers
//! it.
//!
//! # The maps
//!
//! The C side is `redirect-ebpf/redirect.h`; the layouts below are mirrored here byte by byte
//! (keys and values are written as byte arrays, so no `unsafe` `Pod` impls are needed).
//!
//! | map | type | key | value |
//! |---|---|---|---|
//! | `xsks` | `XSKMAP`, [`XSKS_MAX_ENTRIES`] | `u32` RX queue index | AF_XDP socket fd (write only) |
//! | `owned_addrs` | `HASH`, [`OWNED_ADDRS_MAX_ENTRIES`] | 20 bytes, see below | `u32`, reserved, 0 |
//! | `config` | `ARRAY`, 1 entry | `u32` 0 | 8 bytes: `mac[6]`, `ttl`, `hop_limit` |
//! | `counters` | `PERCPU_ARRAY`, 4 entries | `u32` index | `u64` per CPU |
//! | `ip_ids` | `PERCPU_ARRAY`, 1 entry (xdp-tx only) | `u32` 0 | `u32` next IPv4 id per CPU |
//!
//! The `owned_addrs` key is `struct { u16 vlan_id; u16 pad; u8 addr[16]; }`:
//!
//! | bytes | field | content |
//! |---|---|---|
//! | 0..2 | `vlan_id` | host byte order; 0 for untagged and priority-tagged frames |
//! | 2..4 | `pad` | zero (the kernel hashes every key byte) |
//! | 4..20 | `addr` | IPv6 address as on the wire; IPv4 `a.b.c.d` as `::ffff:a.b.c.d` |
//!
//! The counter indexes are 0 = handled (redirected / replied / dropped), 1 = no socket, 2 =
//! passed, 3 = bad checksum ([`EngineCounters`]). `ttl` and `hop_limit` are what the xdp-tx
//! engine writes into its replies; the other programs ignore them.
//!
//! # Lifetime
//!
//! [`RedirectProgram::attach`] uses a bpf_link: the attachment lives exactly as long as the
//! link's file descriptor, so a process that crashes or is killed leaves nothing attached.
//! Dropping the [`RedirectProgram`] (or calling [`RedirectProgram::detach`]) detaches it.
//!
//! # Example
//!
//! ```no_run
//! use afxdp_responder::loader::{RedirectProgram, XdpMode};
//!
//! let owned = ["198.18.0.1".parse()?, "2001:db8::1".parse()?];
//! let mut program = RedirectProgram::load([0x02, 0, 0, 0, 0, 1], &owned)?;
//! let mode = program.attach("veth0", XdpMode::Auto)?;
//! println!("attached in {mode} mode");
//! // ... bind an AF_XDP socket to queue 0, then:
//! // program.register_socket(0, socket.as_fd())?;
//! println!("{:?}", program.counters()?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::{error::Error as _, fmt, io, net::IpAddr, os::fd::BorrowedFd, process::Command, str::FromStr};

use crate::engine::Engine;
use echo_wire::respond::ReplyPolicy;

use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{Array, HashMap, MapData, MapError, PerCpuArray, XskMap},
    programs::{
        Link as _, ProgramError, TestRun as _, TestRunOptions, Xdp, links::LinkType, loaded_links, loaded_programs,
        xdp::XdpLink,
    },
};

/// The compiled program of `engine` (`redirect-ebpf/*.c`), aligned for the ELF parser.
fn engine_object(engine: Engine) -> &'static [u8] {
    match engine {
        Engine::AfXdp => aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/redirect.o")),
        Engine::XdpTx => aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/echo_tx.o")),
        Engine::Drop => aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/echo_drop.o")),
    }
}

/// The compiled `redirect-ebpf/xdp_pass.c`: passes every frame ([`PassProgram`]).
fn pass_object() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdp_pass.o"))
}

/// Name of the XDP function in `redirect.c` (also the program name the kernel shows). The other
/// engines' names are [`Engine::program_name`].
pub const PROGRAM_NAME: &str = "redirect_echo";

/// Entries in the `xsks` XSKMAP: RX queues `0..XSKS_MAX_ENTRIES` can have a socket.
pub const XSKS_MAX_ENTRIES: u32 = 64;

/// Entries in the `owned_addrs` map: `(vlan id, address)` pairs that are answered.
pub const OWNED_ADDRS_MAX_ENTRIES: u32 = 1024;

/// The XDP verdict "drop, something went wrong" (`XDP_ABORTED`, traced as an exception).
pub const XDP_ABORTED: u32 = 0;
/// The XDP verdict "drop the frame" (`XDP_DROP`).
pub const XDP_DROP: u32 = 1;
/// The XDP verdict "continue into the kernel's network stack" (`XDP_PASS`).
pub const XDP_PASS: u32 = 2;
/// The XDP verdict "send the frame back out of the interface it came in on" (`XDP_TX`).
pub const XDP_TX: u32 = 3;
/// The XDP verdict "hand the frame to the target chosen by a redirect helper" (`XDP_REDIRECT`).
pub const XDP_REDIRECT: u32 = 4;

/// Name of an XDP verdict for messages: `"XDP_PASS"`, …, `"unknown"`.
pub const fn xdp_action_name(action: u32) -> &'static str {
    match action {
        XDP_ABORTED => "XDP_ABORTED",
        XDP_DROP => "XDP_DROP",
        XDP_PASS => "XDP_PASS",
        XDP_TX => "XDP_TX",
        XDP_REDIRECT => "XDP_REDIRECT",
        _ => "unknown",
    }
}

// Map names and counter indexes: must match redirect.c / redirect.h.
const MAP_XSKS: &str = "xsks";
const MAP_OWNED_ADDRS: &str = "owned_addrs";
const MAP_CONFIG: &str = "config";
const MAP_COUNTERS: &str = "counters";
const COUNTER_HANDLED: u32 = 0;
const COUNTER_NO_SOCKET: u32 = 1;
const COUNTER_PASSED: u32 = 2;
const COUNTER_BAD_CHECKSUM: u32 = 3;

/// `struct owned_key` from redirect.h, as bytes.
type OwnedKey = [u8; 20];
/// `struct redirect_config` from redirect.h, as bytes.
type ConfigValue = [u8; 8];

/// `XDP_FLAGS_SKB_MODE` from `<linux/if_link.h>`.
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// `XDP_FLAGS_DRV_MODE` from `<linux/if_link.h>`.
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// The smallest frame `BPF_PROG_TEST_RUN` accepts for XDP: an Ethernet header.
pub const TEST_RUN_MIN_FRAME: usize = 14;

/// How to attach the XDP program: the `--xdp-mode` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpMode {
    /// Native if the driver accepts it, otherwise generic (SKB). The mode actually used is
    /// returned by [`RedirectProgram::attach`].
    #[default]
    Auto,
    /// Native (driver) XDP: runs in the driver before an skb exists. Needed for zero-copy.
    Native,
    /// Generic XDP: runs in the kernel's receive path after the skb is built. Works on every
    /// interface, slower, copy mode only.
    Skb,
}

impl XdpMode {
    /// The `XDP_FLAGS_*` mode bit for this mode (`<linux/if_link.h>`).
    ///
    /// `Auto` is 0, which to the kernel means "native if the driver has XDP support, else
    /// generic". [`RedirectProgram::attach`] does not pass 0: it tries `XDP_FLAGS_DRV_MODE`
    /// and then `XDP_FLAGS_SKB_MODE`, so that it knows which mode it got.
    pub const fn flags(self) -> u32 {
        match self {
            Self::Auto => 0,
            Self::Native => XDP_FLAGS_DRV_MODE,
            Self::Skb => XDP_FLAGS_SKB_MODE,
        }
    }
}

impl fmt::Display for XdpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Native => "native",
            Self::Skb => "skb",
        })
    }
}

/// An XDP mode name that is not `auto`, `native` or `skb`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown XDP mode `{0}`: use auto, native or skb")]
pub struct ParseXdpModeError(String);

impl FromStr for XdpMode {
    type Err = ParseXdpModeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "native" => Ok(Self::Native),
            "skb" => Ok(Self::Skb),
            _ => Err(ParseXdpModeError(s.to_owned())),
        }
    }
}

/// The mode an attached program actually runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachedMode {
    /// Native (driver) XDP.
    Native,
    /// Generic (SKB) XDP.
    Skb,
}

impl AttachedMode {
    /// The `XDP_FLAGS_*` mode bit the program was attached with.
    pub const fn flags(self) -> u32 {
        match self {
            Self::Native => XDP_FLAGS_DRV_MODE,
            Self::Skb => XDP_FLAGS_SKB_MODE,
        }
    }

    const fn aya_mode(self) -> aya::programs::XdpMode {
        match self {
            Self::Native => aya::programs::XdpMode::Driver,
            Self::Skb => aya::programs::XdpMode::Skb,
        }
    }
}

impl fmt::Display for AttachedMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Native => "native",
            Self::Skb => "skb",
        })
    }
}

/// The program's counters, summed over all CPUs, since it was loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedirectCounters {
    /// Owned echo requests handed to an AF_XDP socket (`bpf_redirect_map` returned
    /// `XDP_REDIRECT`).
    pub redirected: u64,
    /// Owned echo requests that arrived on a queue with no socket in `xsks`, passed to the
    /// kernel instead. Non-zero while the responder runs means a queue is not served.
    pub no_socket: u64,
    /// Frames that are not an owned echo request (or not in a form we answer), passed to the
    /// kernel.
    pub passed: u64,
}

impl From<EngineCounters> for RedirectCounters {
    fn from(c: EngineCounters) -> Self {
        RedirectCounters {
            redirected: c.handled,
            no_socket: c.no_socket,
            passed: c.passed,
        }
    }
}

/// The counters of any engine's program, summed over all CPUs, since it was loaded: the one
/// shape in which every engine reports, so that they can be compared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineCounters {
    /// Owned echo requests the engine handled: redirected to an AF_XDP socket (afxdp), answered
    /// with `XDP_TX` (xdp-tx), dropped (drop).
    pub handled: u64,
    /// Frames that are not an owned echo request (or not in a form the engine handles), passed
    /// to the kernel.
    pub passed: u64,
    /// afxdp only: owned echo requests that arrived on a queue with no socket in `xsks`, passed
    /// to the kernel instead.
    pub no_socket: u64,
    /// xdp-tx only: owned echo requests with a wrong IPv4 header or ICMP checksum, dropped as
    /// the kernel drops them. (The afxdp engine's workers count these themselves.)
    pub bad_checksum: u64,
}

/// An XDP program that was already attached to an interface, as `ip link` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingXdpProgram {
    /// Mode keyword as `ip link set … <mode> off` takes it: `xdpdrv`, `xdpgeneric` or
    /// `xdpoffload`.
    pub mode: &'static str,
    /// Kernel program id (`bpftool prog show id N`).
    pub id: u32,
    /// Program name, if known.
    pub name: Option<String>,
    /// Id of the bpf_link that holds it, if it is held by a link (then `ip link set … off`
    /// cannot remove it; the process owning the link must close it).
    pub link_id: Option<u32>,
    /// The process holding that bpf_link, as `process PID (COMM)`, if one was found in
    /// `/proc/*/fdinfo` (e.g. another afxdp-responder on the same interface).
    pub holder: Option<Box<str>>,
}

impl fmt::Display for ExistingXdpProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "program id {}", self.id)?;
        if let Some(name) = &self.name {
            write!(f, " `{name}`")?;
        }
        let mode = match self.mode {
            "xdpgeneric" => "generic/skb",
            "xdpoffload" => "offload",
            _ => "native",
        };
        write!(f, " in {mode} mode")?;
        if let Some(link) = self.link_id {
            write!(f, ", held by bpf_link id {link}")?;
        }
        if let Some(holder) = &self.holder {
            write!(f, " of {holder}")?;
        }
        Ok(())
    }
}

impl ExistingXdpProgram {
    /// What the user can do to remove it.
    fn remedy(&self, ifname: &str) -> String {
        match self.link_id {
            Some(link) => format!(
                "stop {} (`bpftool link show id {link}` names it), or remove the link's pin in \
                 /sys/fs/bpf if it is pinned; neither `ip link set dev {ifname} {} off` nor \
                 --force can remove a link",
                self.holder
                    .as_deref()
                    .map_or_else(|| format!("the process that owns bpf_link {link}"), str::to_owned),
                self.mode
            ),
            None => format!(
                "remove it with `ip link set dev {ifname} {} off` if nothing needs it, or run \
                 with --force to replace it",
                self.mode
            ),
        }
    }
}

/// Errors of the loader. Each message says what failed and, where it can, what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoaderError {
    /// The embedded object could not be parsed or its maps created.
    #[error("cannot load the embedded XDP object{hint}")]
    Object {
        /// What to do about it, derived from the errno ("" if nothing specific).
        hint: &'static str,
        /// The underlying aya error.
        #[source]
        source: Box<EbpfError>,
    },
    /// The object lacks a program or map the loader expects.
    #[error(
        "the embedded XDP object has no {kind} `{name}`: redirect.c and loader.rs disagree; \
         rebuild from a clean tree"
    )]
    Missing {
        /// "program" or "map".
        kind: &'static str,
        /// The missing name.
        name: &'static str,
    },
    /// A step on the program failed (load, verify, info).
    #[error("{action} failed{hint}")]
    Program {
        /// What was being done.
        action: String,
        /// What to do about it.
        hint: &'static str,
        /// The underlying aya error (for a verifier rejection it carries the verifier log).
        #[source]
        source: Box<ProgramError>,
    },
    /// A step on the program was refused for lack of privileges. (Without the verifier log:
    /// the program is fine, the process lacks a capability.)
    #[error("{action} failed: {source}; {needs}")]
    Permission {
        /// What was being done.
        action: String,
        /// Which capabilities it needs.
        needs: &'static str,
        /// EPERM or EACCES.
        #[source]
        source: io::Error,
    },
    /// A map operation failed.
    #[error("{action} in map `{map}` failed{hint}")]
    Map {
        /// The map name.
        map: &'static str,
        /// What was being done.
        action: String,
        /// What to do about it.
        hint: &'static str,
        /// The underlying aya error.
        #[source]
        source: Box<MapError>,
    },
    /// The interface MAC is not a usable unicast address.
    #[error(
        "MAC {mac} is not a unicast address: pass the MAC of the interface the program is \
         attached to"
    )]
    InvalidMac {
        /// The MAC, formatted.
        mac: String,
    },
    /// An owned address can never be the destination of an echo request we answer.
    #[error("{addr} cannot be an answered address: {reason}")]
    InvalidAddress {
        /// The address.
        addr: IpAddr,
        /// Why, and what to use instead.
        reason: &'static str,
    },
    /// A VLAN id outside 0..=4094.
    #[error("VLAN id {vlan_id} is out of range: use 0 for untagged frames or 1..=4094")]
    InvalidVlan {
        /// The VLAN id.
        vlan_id: u16,
    },
    /// More owned addresses than the map holds.
    #[error(
        "{count} addresses to answer for, but the owned_addrs map holds at most {max}: \
         answer for fewer addresses"
    )]
    TooManyAddresses {
        /// How many were given.
        count: usize,
        /// [`OWNED_ADDRS_MAX_ENTRIES`].
        max: u32,
    },
    /// No such interface in this network namespace.
    #[error("no network interface named `{ifname}` in this network namespace (see `ip link show`)")]
    UnknownInterface {
        /// The name given.
        ifname: String,
        /// The errno from if_nametoindex.
        #[source]
        source: nix::Error,
    },
    /// Another XDP program is attached to the interface; it is never replaced.
    #[error(
        "interface {ifname} already has an XDP program attached ({}); afxdp-responder does \
         not replace it: {remedy}",
        existing.as_ref().map_or_else(|| "could not identify it: `ip` is missing".to_owned(), ToString::to_string)
    )]
    AlreadyAttached {
        /// The interface.
        ifname: String,
        /// What is attached, if it could be identified.
        existing: Option<ExistingXdpProgram>,
        /// What to do.
        remedy: String,
    },
    /// [`RedirectProgram::attach`] was called while this program is attached.
    #[error("the redirect program is already attached to {ifname}: call detach() first")]
    AttachedHere {
        /// Where it is attached.
        ifname: String,
    },
    /// The kernel refused the attachment.
    #[error("attaching the XDP program to {ifname} in {mode} mode failed{hint}")]
    Attach {
        /// The interface.
        ifname: String,
        /// The mode tried.
        mode: AttachedMode,
        /// What to do about it.
        hint: &'static str,
        /// The underlying aya error.
        #[source]
        source: Box<ProgramError>,
    },
    /// The kernel has no XDP bpf_link support, or refused one and aya fell back to a netlink
    /// attachment (which would outlive a crash, so it was removed again).
    #[error(
        "the kernel did not attach to {ifname} with a bpf_link (XDP links need Linux 5.9 or \
         newer); a netlink attachment would survive a crash of this process, so none was \
         made: upgrade the kernel, or use --xdp-mode skb if the driver refused native mode"
    )]
    NotALink {
        /// The interface.
        ifname: String,
    },
    /// A queue id that the XSKMAP has no slot for.
    #[error(
        "queue {queue_id} is out of range: the xsks map has slots for queues 0..{max}; \
         use fewer queues or steer traffic to queues below {max}"
    )]
    QueueOutOfRange {
        /// The queue id given.
        queue_id: u32,
        /// [`XSKS_MAX_ENTRIES`].
        max: u32,
    },
    /// A socket operation on an engine that has no `xsks` map.
    #[error("the {engine} engine has no AF_XDP sockets: only the afxdp engine's program redirects to sockets")]
    NoSockets {
        /// The engine loaded.
        engine: Engine,
    },
    /// A frame `BPF_PROG_TEST_RUN` cannot run.
    #[error(
        "BPF_PROG_TEST_RUN needs an XDP test frame of at least {min} bytes (an Ethernet \
         header), got {len}: the kernel refuses shorter ones without running the program"
    )]
    TestRunFrameTooShort {
        /// The frame length.
        len: usize,
        /// [`TEST_RUN_MIN_FRAME`].
        min: usize,
    },
    /// `--force` could not remove the program attached with netlink.
    #[error("--force: could not detach {existing} from {ifname}: {detail}")]
    ForceFailed {
        /// The interface.
        ifname: String,
        /// What is attached.
        existing: Box<ExistingXdpProgram>,
        /// What went wrong.
        detail: String,
    },
    /// A test run on a queue other than 0 without an interface.
    #[error(
        "BPF_PROG_TEST_RUN without an interface runs on loopback, which has only RX queue 0: \
         for queue {rx_queue_index} use test_run_on_interface() with an interface that has \
         more than {rx_queue_index} RX queues"
    )]
    TestRunQueue {
        /// The queue asked for.
        rx_queue_index: u32,
    },
}

/// A hint for the errno at the bottom of an error chain.
fn hint_for(error: &(dyn std::error::Error + 'static)) -> &'static str {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return match io.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => {
                    ": permission denied; run as root (or with CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, \
                     CAP_NET_RAW and CAP_IPC_LOCK)"
                }
                Some(libc::EOPNOTSUPP) => ": not supported by this interface's driver or kernel",
                Some(libc::ENOMEM) => ": out of memory for BPF objects (check the memory cgroup limit)",
                Some(libc::E2BIG) => ": the map is full",
                Some(libc::ERANGE) => {
                    ": the MTU is too large for native XDP on this driver (on veth: the peer's \
                     MTU); lower it, or use --xdp-mode skb"
                }
                _ => "",
            };
        }
        current = e.source();
    }
    ""
}

/// The errno at the bottom of an error chain.
fn errno_of(error: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return io.raw_os_error();
        }
        if let Some(nl) = e.downcast_ref::<aya::sys::NetlinkError>() {
            return nl.raw_os_error();
        }
        current = e.source();
    }
    None
}

/// An attachment made by [`RedirectProgram::attach`].
#[derive(Debug)]
struct Attachment {
    ifname: String,
    mode: AttachedMode,
    /// Dropping it closes the bpf_link fd, which detaches the program.
    link: XdpLink,
}

/// The AF_XDP engine's program (`redirect.c`): [`EngineProgram`] loaded with
/// [`EngineProgram::load`].
pub type RedirectProgram = EngineProgram;

/// One engine's XDP program, loaded, maps filled, not yet attached.
///
/// Dropping it detaches the program (if attached) and releases the program and its maps; the
/// kernel frees them once no socket or link refers to them any more.
pub struct EngineProgram {
    // Declared first so it is dropped first: detach before the program goes away.
    attachment: Option<Attachment>,
    native_fallback: Option<String>,
    engine: Engine,
    /// The afxdp engine's XSKMAP; `None` for the in-kernel engines.
    xsks: Option<XskMap<MapData>>,
    owned_addrs: HashMap<MapData, OwnedKey, u32>,
    counters: PerCpuArray<MapData, u64>,
    ebpf: Ebpf,
}

impl fmt::Debug for EngineProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineProgram")
            .field("program", &self.engine.program_name())
            .field("attachment", &self.attachment)
            .field("native_fallback", &self.native_fallback)
            .finish_non_exhaustive()
    }
}

impl EngineProgram {
    /// Loads the AF_XDP engine's redirect program into the kernel and fills its maps: `config`
    /// with `mac`, `owned_addrs` with every address of `owned` on VLAN 0 (untagged and
    /// priority-tagged frames). The same as [`EngineProgram::load_engine`] with
    /// [`Engine::AfXdp`].
    ///
    /// Needs root (CAP_BPF and CAP_NET_ADMIN). The program is verified here, so a verifier
    /// rejection shows up as an error of this call, with the verifier log.
    pub fn load(mac: [u8; 6], owned: &[IpAddr]) -> Result<Self, LoaderError> {
        Self::load_engine(Engine::AfXdp, mac, owned, ReplyPolicy::default())
    }

    /// Loads the program of `engine` and fills its maps: `config` with `mac` and the reply TTL
    /// and hop limit of `policy` (used by [`Engine::XdpTx`]; give the host's, see
    /// [`crate::iface::Interface::ipv4_default_ttl`]), `owned_addrs` with every address of
    /// `owned` on VLAN 0.
    pub fn load_engine(
        engine: Engine,
        mac: [u8; 6],
        owned: &[IpAddr],
        policy: ReplyPolicy,
    ) -> Result<Self, LoaderError> {
        if mac[0] & 0x01 != 0 || mac == [0; 6] {
            return Err(LoaderError::InvalidMac { mac: format_mac(mac) });
        }
        if owned.len() > OWNED_ADDRS_MAX_ENTRIES as usize {
            return Err(LoaderError::TooManyAddresses {
                count: owned.len(),
                max: OWNED_ADDRS_MAX_ENTRIES,
            });
        }
        for &addr in owned {
            validate_owned(addr)?;
        }

        let name = engine.program_name();
        let mut ebpf = load_object(engine_object(engine), name)?;

        let xsks = if engine.uses_afxdp() {
            let xsks: XskMap<MapData> = take_map(&mut ebpf, MAP_XSKS)?;
            if xsks.len() != XSKS_MAX_ENTRIES {
                return Err(LoaderError::Missing {
                    kind: "64-entry XSKMAP",
                    name: MAP_XSKS,
                });
            }
            Some(xsks)
        } else {
            None
        };
        let owned_addrs: HashMap<MapData, OwnedKey, u32> = take_map(&mut ebpf, MAP_OWNED_ADDRS)?;
        let counters: PerCpuArray<MapData, u64> = take_map(&mut ebpf, MAP_COUNTERS)?;
        let mut config: Array<MapData, ConfigValue> = take_map(&mut ebpf, MAP_CONFIG)?;

        config
            .set(0, config_value(mac, policy), 0)
            .map_err(|source| map_error(MAP_CONFIG, "setting the interface MAC and reply TTL".into(), source))?;
        // `config` may be dropped: the loaded program holds its own reference to the map.

        let mut this = Self {
            attachment: None,
            native_fallback: None,
            engine,
            xsks,
            owned_addrs,
            counters,
            ebpf,
        };
        for &addr in owned {
            this.add_address(0, addr)?;
        }
        Ok(this)
    }

    /// Adds `(vlan_id, addr)` to `owned_addrs`: echo requests to `addr` in frames tagged with
    /// `vlan_id` (0 = untagged or priority-tagged) are redirected from now on.
    pub fn add_address(&mut self, vlan_id: u16, addr: IpAddr) -> Result<(), LoaderError> {
        validate_owned(addr)?;
        let key = owned_key(vlan_id, addr)?;
        self.owned_addrs
            .insert(key, 0, 0)
            .map_err(|source| map_error(MAP_OWNED_ADDRS, format!("adding {addr} on VLAN {vlan_id}"), source))
    }

    /// Removes `(vlan_id, addr)` from `owned_addrs`; requests for it go to the kernel again.
    pub fn remove_address(&mut self, vlan_id: u16, addr: IpAddr) -> Result<(), LoaderError> {
        let key = owned_key(vlan_id, addr)?;
        self.owned_addrs
            .remove(&key)
            .map_err(|source| map_error(MAP_OWNED_ADDRS, format!("removing {addr} on VLAN {vlan_id}"), source))
    }

    /// The engine whose program this is.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The kernel's id of the loaded program (what `ip link` and `bpftool prog` show).
    pub fn program_id(&self) -> Result<u32, LoaderError> {
        let info = self
            .xdp()?
            .info()
            .map_err(|source| program_error("reading the program info".into(), source))?;
        Ok(info.id())
    }

    /// Attaches the program to `ifname` with a bpf_link, so that a crashed process leaves
    /// nothing attached. Returns the mode actually used: for [`XdpMode::Auto`] native is tried
    /// first and generic (SKB) is used if native fails; the reason is kept in
    /// [`RedirectProgram::native_fallback_reason`].
    ///
    /// Refuses ([`LoaderError::AlreadyAttached`]) when any XDP program, in any mode, is
    /// already attached to the interface: the error names it (program id and name, the
    /// bpf_link that holds it if any, as reported by `ip -d link show` and the kernel's link
    /// list) and says how to remove it. Nothing is replaced.
    pub fn attach(&mut self, ifname: &str, mode: XdpMode) -> Result<AttachedMode, LoaderError> {
        if let Some(attachment) = &self.attachment {
            return Err(LoaderError::AttachedHere {
                ifname: attachment.ifname.clone(),
            });
        }
        let ifindex = nix::net::if_::if_nametoindex(ifname).map_err(|source| LoaderError::UnknownInterface {
            ifname: ifname.to_owned(),
            source,
        })?;
        if let Some(existing) = existing_xdp_program(ifname) {
            return Err(already_attached(ifname, Some(existing)));
        }
        // XDP bpf_links exist since Linux 5.9; on older kernels aya would silently attach with
        // netlink instead, and that attachment would outlive a crash.
        if aya::util::KernelVersion::current().is_ok_and(|v| v < aya::util::KernelVersion::new(5, 9, 0)) {
            return Err(LoaderError::NotALink {
                ifname: ifname.to_owned(),
            });
        }

        self.native_fallback = None;
        let used = match mode {
            XdpMode::Native => self.attach_in(ifname, ifindex, AttachedMode::Native)?,
            XdpMode::Skb => self.attach_in(ifname, ifindex, AttachedMode::Skb)?,
            XdpMode::Auto => match self.attach_in(ifname, ifindex, AttachedMode::Native) {
                Ok(mode) => mode,
                Err(
                    e @ (LoaderError::AlreadyAttached { .. }
                    | LoaderError::NotALink { .. }
                    | LoaderError::UnknownInterface { .. }),
                ) => return Err(e),
                Err(native) => {
                    let reason = error_chain(&native);
                    let mode = self.attach_in(ifname, ifindex, AttachedMode::Skb)?;
                    self.native_fallback = Some(reason);
                    mode
                }
            },
        };
        Ok(used)
    }

    /// Why [`XdpMode::Auto`] fell back to SKB mode in the last [`RedirectProgram::attach`],
    /// or `None` if it did not.
    pub fn native_fallback_reason(&self) -> Option<&str> {
        self.native_fallback.as_deref()
    }

    /// The interface and mode the program is attached to, if it is.
    pub fn attached(&self) -> Option<(&str, AttachedMode)> {
        self.attachment.as_ref().map(|a| (a.ifname.as_str(), a.mode))
    }

    /// Detaches the program (closes the bpf_link); it stays loaded with its maps and counters
    /// and can be attached again. Returns whether it was attached. Dropping the
    /// [`RedirectProgram`] detaches as well.
    pub fn detach(&mut self) -> Result<bool, LoaderError> {
        let Some(attachment) = self.attachment.take() else {
            return Ok(false);
        };
        let Attachment { ifname, link, .. } = attachment;
        link.detach()
            .map_err(|source| program_error(format!("detaching from {ifname}"), source))?;
        Ok(true)
    }

    fn attach_in(&mut self, ifname: &str, ifindex: u32, mode: AttachedMode) -> Result<AttachedMode, LoaderError> {
        let program = self.xdp_mut()?;
        let link_id = match program.attach_to_if_index(ifindex, mode.aya_mode()) {
            Ok(id) => id,
            Err(source) => {
                // EBUSY: a program (or link) is attached in this mode. EEXIST: one is attached
                // in the other mode ("native and generic XDP can't be active at the same time").
                if matches!(errno_of(&source), Some(libc::EBUSY | libc::EEXIST)) {
                    return Err(already_attached(ifname, existing_xdp_program(ifname)));
                }
                return Err(LoaderError::Attach {
                    ifname: ifname.to_owned(),
                    mode,
                    hint: attach_hint(&source, mode),
                    source: Box::new(source),
                });
            }
        };
        let link = program
            .take_link(link_id)
            .map_err(|source| program_error("taking ownership of the XDP link".into(), source))?;

        // aya falls back to a netlink attachment when bpf_link_create() fails with EINVAL. A
        // netlink attachment outlives the process, which we promised not to do: check that the
        // kernel has a bpf_link for our program, and undo the attachment otherwise.
        let prog_id = self.program_id()?;
        if xdp_link_exists(prog_id) == Some(false) {
            // Detaching a netlink link clears the interface's program (if it is still ours).
            let _ignored = link.detach();
            return Err(LoaderError::NotALink {
                ifname: ifname.to_owned(),
            });
        }

        self.attachment = Some(Attachment {
            ifname: ifname.to_owned(),
            mode,
            link,
        });
        Ok(mode)
    }

    /// Registers the AF_XDP socket that serves RX queue `queue_id`: echo requests arriving on
    /// that queue are redirected to it from now on.
    ///
    /// The socket must already be bound to (this interface, `queue_id`) with an RX ring;
    /// otherwise the kernel refuses it (`EOPNOTSUPP`). The map keeps its own reference to the
    /// socket until [`RedirectProgram::unregister_socket`] or until the program is dropped.
    pub fn register_socket(&mut self, queue_id: u32, socket_fd: BorrowedFd<'_>) -> Result<(), LoaderError> {
        check_queue(queue_id)?;
        let engine = self.engine;
        let xsks = self.xsks.as_mut().ok_or(LoaderError::NoSockets { engine })?;
        xsks.set(queue_id, socket_fd, 0).map_err(|source| {
            let hint = if errno_of(&source) == Some(libc::EOPNOTSUPP) {
                ": the fd must be an AF_XDP socket that is already bound (bind()) with an RX ring"
            } else {
                hint_for(&source)
            };
            LoaderError::Map {
                map: MAP_XSKS,
                action: format!("registering the socket of queue {queue_id}"),
                hint,
                source: Box::new(source),
            }
        })
    }

    /// Removes the socket of RX queue `queue_id`; requests on that queue go to the kernel.
    pub fn unregister_socket(&mut self, queue_id: u32) -> Result<(), LoaderError> {
        check_queue(queue_id)?;
        let engine = self.engine;
        let xsks = self.xsks.as_mut().ok_or(LoaderError::NoSockets { engine })?;
        xsks.unset(queue_id).map_err(|source| {
            map_error(
                MAP_XSKS,
                format!("unregistering the socket of queue {queue_id}"),
                source,
            )
        })
    }

    /// The counters, summed over all CPUs, in the redirect program's terms (`redirected` is
    /// the engine's [`EngineCounters::handled`]).
    pub fn counters(&self) -> Result<RedirectCounters, LoaderError> {
        self.engine_counters().map(RedirectCounters::from)
    }

    /// The counters, summed over all CPUs, in the shape every engine shares.
    pub fn engine_counters(&self) -> Result<EngineCounters, LoaderError> {
        let read = |index: u32, name: &str| -> Result<u64, LoaderError> {
            let values = self
                .counters
                .get(&index, 0)
                .map_err(|source| map_error(MAP_COUNTERS, format!("reading counter {name}"), source))?;
            Ok(values.iter().copied().fold(0u64, u64::wrapping_add))
        };
        Ok(EngineCounters {
            handled: read(COUNTER_HANDLED, "handled")?,
            passed: read(COUNTER_PASSED, "passed")?,
            no_socket: read(COUNTER_NO_SOCKET, "no_socket")?,
            bad_checksum: read(COUNTER_BAD_CHECKSUM, "bad_checksum")?,
        })
    }

    /// Runs the program once on `frame` with `BPF_PROG_TEST_RUN` and returns its verdict
    /// (`XDP_PASS`, `XDP_REDIRECT`, …). The program is not attached for this; maps and counters
    /// are the real ones, so a redirect is reported only if a socket is registered for
    /// `rx_queue_index`, and the counters move.
    ///
    /// Without an interface the kernel runs the program as if the frame arrived on loopback
    /// queue 0, so only `rx_queue_index == 0` is possible here; for other queues see
    /// [`RedirectProgram::test_run_on_interface`]. The frame must be at least
    /// [`TEST_RUN_MIN_FRAME`] bytes: the kernel refuses shorter ones.
    pub fn test_run(&self, frame: &[u8], rx_queue_index: u32) -> Result<u32, LoaderError> {
        if rx_queue_index != 0 {
            return Err(LoaderError::TestRunQueue { rx_queue_index });
        }
        self.run(frame, None)
    }

    /// Like [`RedirectProgram::test_run`], as if `frame` arrived on RX queue `rx_queue_index`
    /// of the interface `ifindex` (in the calling thread's network namespace). The kernel
    /// requires `rx_queue_index` to be below the interface's number of RX queues.
    pub fn test_run_on_interface(&self, frame: &[u8], ifindex: u32, rx_queue_index: u32) -> Result<u32, LoaderError> {
        self.run(frame, Some((ifindex, rx_queue_index)))
    }

    /// Like [`EngineProgram::test_run`] (queue 0), and also returns the frame as the program
    /// left it: for [`Engine::XdpTx`] the reply it would send.
    pub fn test_run_with_output(&self, frame: &[u8]) -> Result<(u32, Vec<u8>), LoaderError> {
        let mut out = vec![0u8; frame.len() + 256];
        let (action, len) = self.run_raw(frame, None, Some(&mut out))?;
        out.truncate(len);
        Ok((action, out))
    }

    fn run(&self, frame: &[u8], ingress: Option<(u32, u32)>) -> Result<u32, LoaderError> {
        self.run_raw(frame, ingress, None).map(|(action, _)| action)
    }

    fn run_raw(
        &self,
        frame: &[u8],
        ingress: Option<(u32, u32)>,
        data_out: Option<&mut [u8]>,
    ) -> Result<(u32, usize), LoaderError> {
        if frame.len() < TEST_RUN_MIN_FRAME {
            return Err(LoaderError::TestRunFrameTooShort {
                len: frame.len(),
                min: TEST_RUN_MIN_FRAME,
            });
        }
        // struct xdp_md { u32 data, data_end, data_meta, ingress_ifindex, rx_queue_index,
        // egress_ifindex; }. The kernel wants data = data_meta = 0, data_end = the frame
        // length, egress_ifindex = 0, and a non-zero rx_queue_index only together with an
        // ingress_ifindex whose device has that many RX queues.
        let mut ctx = [0u8; 24];
        let ctx_in = ingress.map(|(ifindex, queue)| {
            let data_end = u32::try_from(frame.len()).unwrap_or(u32::MAX);
            ctx[4..8].copy_from_slice(&data_end.to_ne_bytes());
            ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
            ctx[16..20].copy_from_slice(&queue.to_ne_bytes());
            &ctx[..]
        });
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.ctx_in = ctx_in;
        opts.data_out = data_out;
        let result = self.xdp()?.test_run(opts).map_err(|source| {
            let hint = if errno_of(&source) == Some(libc::EINVAL) && ingress.is_some() {
                ": the RX queue index must be below the interface's RX queue count"
            } else if errno_of(&source) == Some(libc::ENODEV) {
                ": no interface with that index in this thread's network namespace"
            } else {
                hint_for(&source)
            };
            LoaderError::Program {
                action: "BPF_PROG_TEST_RUN".into(),
                hint,
                source: Box::new(source),
            }
        })?;
        Ok((result.return_value, result.data_size_out as usize))
    }

    fn xdp(&self) -> Result<&Xdp, LoaderError> {
        let name = self.engine.program_name();
        self.ebpf
            .program(name)
            .ok_or(LoaderError::Missing { kind: "program", name })?
            .try_into()
            .map_err(|source| program_error(format!("using `{name}` as XDP"), source))
    }

    fn xdp_mut(&mut self) -> Result<&mut Xdp, LoaderError> {
        let name = self.engine.program_name();
        self.ebpf
            .program_mut(name)
            .ok_or(LoaderError::Missing { kind: "program", name })?
            .try_into()
            .map_err(|source| program_error(format!("using `{name}` as XDP"), source))
    }
}

/// `struct redirect_config` (redirect.h) for `mac` and the reply TTL / hop limit of `policy`.
fn config_value(mac: [u8; 6], policy: ReplyPolicy) -> ConfigValue {
    let mut value: ConfigValue = [0; 8];
    value[..6].copy_from_slice(&mac);
    value[6] = policy.ipv4_ttl;
    value[7] = policy.ipv6_hop_limit;
    value
}

/// `redirect-ebpf/xdp_pass.c`, attached in native mode with a bpf_link: a program that passes
/// every frame.
///
/// On veth, frames that an XDP program sends out of one end (`XDP_TX`, redirects) are delivered
/// only if the *other* end runs an XDP program too; attaching this one to the peer of an
/// [`Engine::XdpTx`] responder is all it takes. The lab does that
/// (`NetnsPair::attach_xdp_pass`). Dropping it detaches the program.
pub struct PassProgram {
    // Declared first so it is dropped first: detach before the program goes away.
    link: Option<XdpLink>,
    ifname: String,
    _ebpf: Ebpf,
}

impl fmt::Debug for PassProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PassProgram")
            .field("ifname", &self.ifname)
            .finish_non_exhaustive()
    }
}

impl PassProgram {
    /// Name of the XDP function in `xdp_pass.c`.
    pub const NAME: &'static str = "xdp_pass";

    /// Loads the program and attaches it to `ifname` (in the calling thread's network
    /// namespace) in native mode with a bpf_link.
    pub fn attach(ifname: &str) -> Result<Self, LoaderError> {
        let name = Self::NAME;
        let ifindex = nix::net::if_::if_nametoindex(ifname).map_err(|source| LoaderError::UnknownInterface {
            ifname: ifname.to_owned(),
            source,
        })?;
        let mut ebpf = load_object(pass_object(), name)?;
        let program = xdp_program(&mut ebpf, name)?;
        let mode = AttachedMode::Native;
        let link_id = program.attach_to_if_index(ifindex, mode.aya_mode()).map_err(|source| {
            if matches!(errno_of(&source), Some(libc::EBUSY | libc::EEXIST)) {
                return already_attached(ifname, existing_xdp_program(ifname));
            }
            LoaderError::Attach {
                ifname: ifname.to_owned(),
                mode,
                hint: attach_hint(&source, mode),
                source: Box::new(source),
            }
        })?;
        let link = program
            .take_link(link_id)
            .map_err(|source| program_error("taking ownership of the XDP link".into(), source))?;
        Ok(PassProgram {
            link: Some(link),
            ifname: ifname.to_owned(),
            _ebpf: ebpf,
        })
    }

    /// The interface it is attached to.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Detaches the program now (dropping it does the same).
    pub fn detach(mut self) -> Result<(), LoaderError> {
        match self.link.take() {
            Some(link) => link
                .detach()
                .map_err(|source| program_error(format!("detaching from {}", self.ifname), source)),
            None => Ok(()),
        }
    }
}

/// Loads an embedded object and its XDP program `name` into the kernel (through the verifier).
fn load_object(object: &[u8], name: &'static str) -> Result<Ebpf, LoaderError> {
    let mut ebpf = EbpfLoader::new().load(object).map_err(|source| LoaderError::Object {
        hint: hint_for(&source),
        source: Box::new(source),
    })?;
    xdp_program(&mut ebpf, name)?
        .load()
        .map_err(|source| program_error(format!("loading `{name}` into the kernel (verifier)"), source))?;
    Ok(ebpf)
}

/// The XDP program `name` of a loaded object.
fn xdp_program<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Xdp, LoaderError> {
    ebpf.program_mut(name)
        .ok_or(LoaderError::Missing { kind: "program", name })?
        .try_into()
        .map_err(|source| program_error(format!("using `{name}` as XDP"), source))
}

fn program_error(action: String, source: ProgramError) -> LoaderError {
    if let Some(errno @ (libc::EPERM | libc::EACCES)) = errno_of(&source) {
        // The verifier allows this program's packet-pointer arithmetic only to CAP_PERFMON
        // ("pointer arithmetic ... prohibited for !root"); everything else needs CAP_BPF.
        let needs = if source.to_string().contains("!root") {
            "the verifier accepts this program only with CAP_PERFMON (or CAP_SYS_ADMIN): run as root or add CAP_PERFMON"
        } else {
            "loading XDP programs needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN): run as root or add them"
        };
        return LoaderError::Permission {
            action,
            needs,
            source: io::Error::from_raw_os_error(errno),
        };
    }
    LoaderError::Program {
        action,
        hint: hint_for(&source),
        source: Box::new(source),
    }
}

fn map_error(map: &'static str, action: String, source: MapError) -> LoaderError {
    LoaderError::Map {
        map,
        action,
        hint: hint_for(&source),
        source: Box::new(source),
    }
}

fn attach_hint(source: &ProgramError, mode: AttachedMode) -> &'static str {
    match (errno_of(source), mode) {
        (Some(libc::EOPNOTSUPP), AttachedMode::Native) => {
            ": the driver has no native XDP support; use --xdp-mode skb (or auto)"
        }
        _ => hint_for(source),
    }
}

/// Takes map `name` out of `ebpf` as the typed map `M`.
fn take_map<M>(ebpf: &mut Ebpf, name: &'static str) -> Result<M, LoaderError>
where
    M: TryFrom<aya::maps::Map, Error = MapError>,
{
    let map = ebpf.take_map(name).ok_or(LoaderError::Missing { kind: "map", name })?;
    M::try_from(map).map_err(|source| map_error(name, "checking the key/value layout".into(), source))
}

fn check_queue(queue_id: u32) -> Result<(), LoaderError> {
    if queue_id >= XSKS_MAX_ENTRIES {
        return Err(LoaderError::QueueOutOfRange {
            queue_id,
            max: XSKS_MAX_ENTRIES,
        });
    }
    Ok(())
}

/// Rejects addresses that an echo request we answer can never be sent to.
fn validate_owned(addr: IpAddr) -> Result<(), LoaderError> {
    let reason = match addr {
        IpAddr::V4(v4) if v4.is_unspecified() => Some("0.0.0.0 is not an address of a host"),
        IpAddr::V4(v4) if v4.is_broadcast() => {
            Some("broadcast pings are left to the kernel (net.ipv4.icmp_echo_ignore_broadcasts)")
        }
        IpAddr::V4(v4) if v4.is_multicast() => Some("multicast pings are left to the kernel"),
        IpAddr::V4(v4) if v4.is_loopback() => Some("loopback addresses never arrive on a network interface"),
        IpAddr::V6(v6) if v6.is_unspecified() => Some(":: is not an address of a host"),
        IpAddr::V6(v6) if v6.is_multicast() => Some("multicast pings are left to the kernel"),
        IpAddr::V6(v6) if v6.is_loopback() => Some("loopback addresses never arrive on a network interface"),
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => {
            Some("v4-mapped IPv6 addresses never arrive on the wire; give the IPv4 address")
        }
        _ => None,
    };
    match reason {
        Some(reason) => Err(LoaderError::InvalidAddress { addr, reason }),
        None => Ok(()),
    }
}

/// `struct owned_key` (redirect.h) for `(vlan_id, addr)`.
fn owned_key(vlan_id: u16, addr: IpAddr) -> Result<OwnedKey, LoaderError> {
    if vlan_id > 4094 {
        return Err(LoaderError::InvalidVlan { vlan_id });
    }
    let octets = match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    let mut key = [0u8; 20];
    key[0..2].copy_from_slice(&vlan_id.to_ne_bytes());
    // key[2..4] is padding and stays zero.
    key[4..20].copy_from_slice(&octets);
    Ok(key)
}

fn format_mac(mac: [u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

/// The error and its sources on one line, for the fallback reason.
fn error_chain(error: &LoaderError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

fn already_attached(ifname: &str, existing: Option<ExistingXdpProgram>) -> LoaderError {
    let remedy = match &existing {
        Some(existing) => existing.remedy(ifname),
        None => format!(
            "see `ip -d link show dev {ifname}`; remove it with `ip link set dev {ifname} \
             xdpgeneric off` or `… xdpdrv off`"
        ),
    };
    LoaderError::AlreadyAttached {
        ifname: ifname.to_owned(),
        existing,
        remedy,
    }
}

/// Whether the kernel has an XDP bpf_link for program `prog_id`; `None` if the link list cannot
/// be read completely (it needs CAP_SYS_ADMIN).
fn xdp_link_exists(prog_id: u32) -> Option<bool> {
    for info in loaded_links() {
        let info = info.ok()?;
        if info.program_id() == prog_id && matches!(info.link_type(), Ok(LinkType::Xdp)) {
            return Some(true);
        }
    }
    Some(false)
}

/// The XDP program attached to `ifname`, from `ip -d link show dev IFNAME`, completed with the
/// program name and bpf_link id from the kernel. `None` if there is none or `ip` is missing
/// (the kernel then still refuses a second program, and the error says so without details).
fn existing_xdp_program(ifname: &str) -> Option<ExistingXdpProgram> {
    let output = Command::new("ip")
        .args(["-d", "link", "show", "dev", ifname])
        .env("LC_ALL", "C")
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let mut existing = parse_ip_link_xdp(&String::from_utf8_lossy(&output.stdout))?;
    if existing.name.is_none() {
        existing.name = loaded_programs()
            .flatten()
            .find(|info| info.id() == existing.id)
            .and_then(|info| info.name_as_str().map(str::to_owned));
    }
    existing.link_id = loaded_links()
        .flatten()
        .find(|info| info.program_id() == existing.id && matches!(info.link_type(), Ok(LinkType::Xdp)))
        .map(|info| info.id());
    existing.holder = existing.link_id.and_then(link_holder);
    Some(existing)
}

/// The process that holds bpf_link `link_id` open: the first `/proc/PID/fdinfo/FD` that says
/// `link_id:\t<link_id>`, as `process PID (COMM)`. `None` if no process holds it (a pinned link)
/// or `/proc` cannot be read.
fn link_holder(link_id: u32) -> Option<Box<str>> {
    let wanted = format!("link_id:\t{link_id}");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fdinfo")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| std::fs::read_to_string(fd.path()).is_ok_and(|info| info.lines().any(|line| line == wanted)));
        if holds {
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            return Some(format!("process {pid} ({})", comm.trim()).into());
        }
    }
    None
}

/// `--force`: detaches an XDP program that another tool attached to `ifname` with netlink
/// (`ip link set … xdp obj …`, libxdp in legacy mode), so that ours can be attached. Returns what
/// was detached (`None` if nothing was attached). The kernel unloads the detached program unless
/// something else still holds it (a pin or an open descriptor); it is not re-attached when the
/// responder exits. A program held by a bpf_link is refused with [`LoaderError::AlreadyAttached`]:
/// only its owner can release it.
pub fn detach_netlink_program(ifname: &str) -> Result<Option<ExistingXdpProgram>, LoaderError> {
    let Some(existing) = existing_xdp_program(ifname) else {
        return Ok(None);
    };
    if existing.link_id.is_some() {
        return Err(already_attached(ifname, Some(existing)));
    }
    let failed = |detail: String| LoaderError::ForceFailed {
        ifname: ifname.to_owned(),
        existing: Box::new(existing.clone()),
        detail,
    };
    let output = Command::new("ip")
        .args(["link", "set", "dev", ifname, existing.mode, "off"])
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| failed(format!("running `ip`: {e}")))?;
    if !output.status.success() {
        return Err(failed(String::from_utf8_lossy(&output.stderr).trim().to_owned()));
    }
    if let Some(still) = existing_xdp_program(ifname) {
        return Err(failed(format!("{still} is still attached")));
    }
    Ok(Some(existing))
}

/// Parses the XDP part of `ip link show` output (iproute2 ≥ 4.x):
///
/// ```text
/// 3: va@vb: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 xdpgeneric qdisc noqueue ...
///     prog/xdp id 101 name redirect_echo tag 9a10604b8db38cb4 jited
/// ```
///
/// The flag after the MTU is `xdp` (native), `xdpgeneric`, `xdpoffload` or `xdpmulti`; with
/// `xdpmulti` each program line names its mode (`prog/xdpdrv`, `prog/xdpgeneric`, …). The
/// first program line wins.
fn parse_ip_link_xdp(text: &str) -> Option<ExistingXdpProgram> {
    let first_line = text.lines().next()?;
    let flag_mode = first_line.split_whitespace().find_map(|word| match word {
        "xdp" => Some("xdpdrv"),
        "xdpgeneric" => Some("xdpgeneric"),
        "xdpoffload" => Some("xdpoffload"),
        _ => None,
    });
    for line in text.lines().skip(1) {
        let mut words = line.split_whitespace();
        let Some(kind) = words.next().and_then(|w| w.strip_prefix("prog/")) else {
            continue;
        };
        let mode = match kind {
            "xdpdrv" => "xdpdrv",
            "xdpgeneric" => "xdpgeneric",
            "xdpoffload" => "xdpoffload",
            "xdp" => flag_mode.unwrap_or("xdpdrv"),
            _ => continue,
        };
        let rest: Vec<&str> = words.collect();
        let value_of = |key: &str| rest.windows(2).find(|pair| pair[0] == key).map(|pair| pair[1]);
        let Some(id) = value_of("id").and_then(|id| id.parse().ok()) else {
            continue;
        };
        return Some(ExistingXdpProgram {
            mode,
            id,
            name: value_of("name").map(str::to_owned),
            link_id: None,
            holder: None,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdp_mode_round_trips_through_text() {
        for mode in [XdpMode::Auto, XdpMode::Native, XdpMode::Skb] {
            assert_eq!(mode.to_string().parse::<XdpMode>(), Ok(mode));
        }
        assert_eq!("SKB".parse::<XdpMode>(), Ok(XdpMode::Skb));
        let err = "drv".parse::<XdpMode>().unwrap_err();
        assert_eq!(err.to_string(), "unknown XDP mode `drv`: use auto, native or skb");
        assert_eq!(XdpMode::Native.flags(), 4);
        assert_eq!(XdpMode::Skb.flags(), 2);
        assert_eq!(XdpMode::Auto.flags(), 0);
    }

    #[test]
    fn owned_key_layout_matches_redirect_h() {
        let key = owned_key(0, "198.18.0.1".parse().unwrap()).unwrap();
        let mut expected = [0u8; 20];
        expected[14..16].copy_from_slice(&[0xff, 0xff]);
        expected[16..20].copy_from_slice(&[198, 18, 0, 1]);
        assert_eq!(key, expected);

        let key = owned_key(42, "2001:db8::1".parse().unwrap()).unwrap();
        assert_eq!(key[0..2], 42u16.to_ne_bytes());
        assert_eq!(key[2..4], [0, 0]);
        assert_eq!(key[4..8], [0x20, 0x01, 0x0d, 0xb8]);
        assert_eq!(key[19], 1);

        assert!(matches!(
            owned_key(4095, "198.18.0.1".parse().unwrap()),
            Err(LoaderError::InvalidVlan { vlan_id: 4095 })
        ));
    }

    #[test]
    fn rejects_addresses_that_are_never_answered() {
        for bad in [
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "127.0.0.1",
            "::",
            "::1",
            "ff02::1",
            "::ffff:198.18.0.1",
        ] {
            let addr: IpAddr = bad.parse().unwrap();
            assert!(validate_owned(addr).is_err(), "{bad} should be rejected");
        }
        for good in ["198.18.0.1", "2001:db8::1", "fe80::1"] {
            assert!(validate_owned(good.parse().unwrap()).is_ok(), "{good}");
        }
    }

    #[test]
    fn parses_ip_link_output() {
        let generic = "3: va@vb: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 xdpgeneric qdisc \
                       noqueue state UP mode DEFAULT group default qlen 1000\n    link/ether \
                       0e:86:29:90:74:01 brd ff:ff:ff:ff:ff:ff\n    prog/xdp id 101 name \
                       redirect_echo tag 9a10604b8db38cb4 jited \n";
        assert_eq!(
            parse_ip_link_xdp(generic),
            Some(ExistingXdpProgram {
                mode: "xdpgeneric",
                id: 101,
                name: Some("redirect_echo".into()),
                link_id: None,
                holder: None,
            })
        );
        let native = "2: vb@va: <UP> mtu 1500 xdp qdisc noqueue\n    link/ether \
                      8e:d0:e7:b6:ed:88 brd ff:ff:ff:ff:ff:ff\n    prog/xdp id 111 tag 9a jited\n";
        let parsed = parse_ip_link_xdp(native).unwrap();
        assert_eq!((parsed.mode, parsed.id, parsed.name), ("xdpdrv", 111, None));
        let multi = "2: vb@va: <UP> mtu 1500 xdpmulti qdisc noqueue\n    link/ether 8e:d0\n    \
                     prog/xdpgeneric id 7 name a\n    prog/xdpdrv id 8 name b\n";
        assert_eq!(parse_ip_link_xdp(multi).unwrap().mode, "xdpgeneric");
        let none = "2: vb@va: <UP> mtu 1500 qdisc noqueue\n    link/ether 8e:d0\n";
        assert_eq!(parse_ip_link_xdp(none), None);
    }

    #[test]
    fn existing_program_message_says_how_to_remove_it() {
        let existing = ExistingXdpProgram {
            mode: "xdpgeneric",
            id: 101,
            name: Some("xdp_pass".into()),
            link_id: None,
            holder: None,
        };
        let err = already_attached("veth0", Some(existing.clone()));
        assert_eq!(
            err.to_string(),
            "interface veth0 already has an XDP program attached (program id 101 `xdp_pass` \
             in generic/skb mode); afxdp-responder does not replace it: remove it with \
             `ip link set dev veth0 xdpgeneric off` if nothing needs it, or run with --force to \
             replace it"
        );
        let linked = ExistingXdpProgram {
            link_id: Some(9),
            holder: Some("process 4242 (afxdp-responder)".into()),
            ..existing
        };
        let text = already_attached("veth0", Some(linked)).to_string();
        assert!(text.contains("held by bpf_link id 9 of process 4242"), "{text}");
        assert!(text.contains("stop process 4242 (afxdp-responder)"), "{text}");
        assert!(text.contains("bpftool link show id 9"), "{text}");
    }
}
