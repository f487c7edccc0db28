//! [`LoaderError`]: what can go wrong while loading, filling, attaching or test-running an XDP
//! program, and the errno-based hints that say what to do about it.

use std::{io, net::IpAddr};

use aya::{EbpfError, maps::MapError, programs::ProgramError};

use super::attach::{AttachedMode, ExistingXdpProgram};
use crate::options::Engine;
use echo_wire::ethernet::{DisplayMac, MacAddr};

/// Errors of the loader, grouped by the step that failed. Each message says what failed and,
/// where it can, what to do; [`crate::app::one_line`] appends the underlying causes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoaderError {
    // --- Loading an embedded object into the kernel -------------------------------------------
    /// The embedded object could not be parsed or its maps created.
    #[error("cannot load the embedded XDP object {object}{hint}")]
    Object {
        /// The object (`redirect.o`, …).
        object: &'static str,
        /// What to do about it, derived from the errno ("" if nothing specific).
        hint: &'static str,
        /// The underlying aya error.
        #[source]
        source: Box<EbpfError>,
    },
    /// The object lacks a program or map the loader expects.
    #[error(
        "the embedded XDP object has no {kind} `{name}`: the C program (redirect-ebpf/) and the \
         loader (src/loader/) disagree; rebuild from a clean tree (cargo clean)"
    )]
    Missing {
        /// "program", "map", or what the map should have been.
        kind: &'static str,
        /// The missing name.
        name: &'static str,
    },
    /// A step on the program failed (load, verify, info, detach).
    #[error("{action} failed{hint}")]
    Program {
        /// What was being done.
        action: String,
        /// What to do about it ("" if nothing specific).
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
        /// Which capabilities it needs, and how to get them.
        needs: &'static str,
        /// EPERM or EACCES.
        #[source]
        source: io::Error,
    },

    // --- Filling the maps ----------------------------------------------------------------------
    /// A map operation failed.
    #[error("{action} in map `{map}` failed{hint}")]
    Map {
        /// The map name.
        map: &'static str,
        /// What was being done.
        action: String,
        /// What to do about it ("" if nothing specific).
        hint: &'static str,
        /// The underlying aya error.
        #[source]
        source: Box<MapError>,
    },
    /// The interface MAC is not a usable unicast address.
    #[error(
        "MAC {} is not a unicast address: pass the MAC of the interface the program is \
         attached to",
        DisplayMac(*mac)
    )]
    InvalidMac {
        /// The MAC given.
        mac: MacAddr,
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
        /// [`super::OWNED_ADDRS_MAX_ENTRIES`].
        max: u32,
    },
    /// A queue id that the XSKMAP has no slot for.
    #[error(
        "queue {queue_id} is out of range: the xsks map has slots for queues 0..{max}; \
         use fewer queues or steer traffic to queues below {max}"
    )]
    QueueOutOfRange {
        /// The queue id given.
        queue_id: u32,
        /// [`super::XSKS_MAX_ENTRIES`].
        max: u32,
    },
    /// A socket operation on an engine that has no `xsks` map.
    #[error(
        "the {engine} engine has no AF_XDP sockets: only the afxdp engine's program redirects \
         to sockets"
    )]
    NoSockets {
        /// The engine loaded.
        engine: Engine,
    },

    // --- Attaching to an interface -------------------------------------------------------------
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
        existing.as_ref().map_or_else(|| "could not identify it through rtnetlink".to_owned(), ToString::to_string)
    )]
    AlreadyAttached {
        /// The interface.
        ifname: String,
        /// What is attached, if it could be identified.
        existing: Option<ExistingXdpProgram>,
        /// What to do.
        remedy: String,
    },
    /// `attach()` was called on a program that is attached already.
    #[error("the XDP program `{program}` is already attached to {ifname}: call detach() first")]
    AttachedHere {
        /// The program's name.
        program: &'static str,
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
        /// What to do about it ("" if nothing specific).
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
    /// `--force` could not remove the program attached with netlink.
    #[error(
        "--force: could not detach {existing} from {ifname}: {detail}; remove it by hand \
         (`ip link set dev {ifname} {} off`) and start again",
        existing.mode
    )]
    ForceFailed {
        /// The interface.
        ifname: String,
        /// What is attached.
        existing: Box<ExistingXdpProgram>,
        /// What went wrong.
        detail: String,
    },

    // --- BPF_PROG_TEST_RUN (feature `test-support`) --------------------------------------------
    /// A frame `BPF_PROG_TEST_RUN` cannot run.
    #[cfg(feature = "test-support")]
    #[error(
        "BPF_PROG_TEST_RUN needs an XDP test frame of at least {min} bytes (an Ethernet \
         header), got {len}: the kernel refuses shorter ones without running the program"
    )]
    TestRunFrameTooShort {
        /// The frame length.
        len: usize,
        /// [`super::TEST_RUN_MIN_FRAME`].
        min: usize,
    },
    /// A test run on a queue other than 0 without an interface.
    #[cfg(feature = "test-support")]
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

/// A hint for the errno at the bottom of an error chain, as `": what to do"` ("" if none).
pub(super) fn hint_for(error: &(dyn std::error::Error + 'static)) -> &'static str {
    match errno_of(error) {
        Some(libc::EPERM | libc::EACCES) => {
            ": permission denied; run as root (or with CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, \
             CAP_NET_RAW and CAP_IPC_LOCK)"
        }
        Some(libc::EOPNOTSUPP) => ": not supported by this interface's driver or kernel",
        Some(libc::ENOMEM) => ": out of memory for BPF objects (check the memory cgroup limit)",
        Some(libc::E2BIG) => ": the map is full",
        Some(libc::ERANGE) => {
            ": the MTU is too large for native XDP on this driver (on veth: the peer's MTU); \
             lower it, or use --xdp-mode skb"
        }
        _ => "",
    }
}

/// The errno at the bottom of an error chain.
pub(super) fn errno_of(error: &(dyn std::error::Error + 'static)) -> Option<i32> {
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

/// A failed step on a program: [`LoaderError::Permission`] for EPERM/EACCES (with the
/// capabilities it needs), [`LoaderError::Program`] otherwise.
pub(super) fn program_error(action: String, source: ProgramError) -> LoaderError {
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

/// A failed operation on map `map`.
pub(super) fn map_error(map: &'static str, action: String, source: MapError) -> LoaderError {
    LoaderError::Map {
        map,
        action,
        hint: hint_for(&source),
        source: Box::new(source),
    }
}

/// The error and its sources on one line (for the reason of a fallback).
pub(super) fn error_chain(error: &LoaderError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
