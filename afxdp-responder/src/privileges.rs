//! Least privilege: give up every capability once set-up is done.
//!
//! Set-up needs privileges: loading the XDP program and creating maps (`CAP_BPF`, and
//! `CAP_PERFMON` for the pointer arithmetic of a program that reads packets), attaching it and
//! binding AF_XDP sockets (`CAP_NET_ADMIN`), creating AF_XDP sockets (`CAP_NET_RAW`), and pinning
//! the UMEM beyond `RLIMIT_MEMLOCK` (`CAP_IPC_LOCK`). Once the program is attached, the sockets
//! are bound and registered in the XSKMAP, and the workers run, nothing needs a capability any
//! more: the kernel checks capabilities when a descriptor is created or a program loaded, not
//! when an existing AF_XDP socket sends (`sendto`), waits (`poll`), reads its statistics, or when
//! a map entry is deleted or a bpf_link closed through descriptors the process already holds.
//! `docs/security.md` records the experiments that show it, and `tests/privileges_netns.rs`
//! checks it on the running binary.
//!
//! Capabilities are per thread on Linux, and so is `no_new_privs`: [`drop_all_capabilities`]
//! changes the calling thread only. The responder calls it in each worker thread once its socket
//! is ready, and in the main thread once every socket is registered ([`drop_after_setup`]), which
//! then checks every thread of the process in `/proc/self/task` before saying so.

use std::fmt;
use std::fs;
use std::io;

use caps::{CapSet, Capability};

/// The capabilities the responder needs to start without full root (Linux 5.8 or newer, where
/// `CAP_BPF` and `CAP_PERFMON` exist), and why. Each was shown necessary by starting the binary as
/// an ordinary user with all the others (`tests/privileges_netns.rs`); `config/afxdp-responder.service`
/// grants exactly these.
pub const REQUIRED_CAPABILITIES: [(Capability, &str); 5] = [
    (
        Capability::CAP_BPF,
        "create the maps and load the XDP program (BPF_MAP_CREATE, BPF_PROG_LOAD)",
    ),
    (
        Capability::CAP_PERFMON,
        "let the verifier accept the program's packet pointer arithmetic (without it: EACCES)",
    ),
    (
        Capability::CAP_NET_ADMIN,
        "create the XSKMAP, attach XDP to the interface (bpf_link), bind AF_XDP sockets",
    ),
    (Capability::CAP_NET_RAW, "create AF_XDP sockets (socket(AF_XDP))"),
    (
        Capability::CAP_IPC_LOCK,
        "pin the UMEM (16 MiB per queue by default) beyond RLIMIT_MEMLOCK (without it: ENOBUFS)",
    ),
];

/// Why capabilities could not be dropped.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// A capability system call failed.
    #[error("{what}: {source}")]
    Caps {
        /// What was being done.
        what: &'static str,
        /// The error from the `caps` crate.
        source: caps::errors::CapsError,
    },
    /// `prctl(PR_SET_NO_NEW_PRIVS)` failed.
    #[error("prctl(PR_SET_NO_NEW_PRIVS): {0}")]
    NoNewPrivs(nix::Error),
    /// `/proc/self/task` could not be read.
    #[error("reading /proc/self/task: {0}")]
    Proc(io::Error),
    /// A thread still holds capabilities after the drop.
    #[error("thread {0} still holds capabilities")]
    StillPrivileged(ThreadCaps),
}

/// What [`drop_all_capabilities`] did to the calling thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// Whether the bounding set was emptied too. Emptying it needs `CAP_SETPCAP`, which a
    /// responder started with only the capabilities it needs (see `docs/security.md`) does not
    /// have; its bounding set was then already limited to those by whoever started it.
    pub bounding_set_cleared: bool,
}

/// Drops every capability of the calling thread, for good.
///
/// In this order: sets `no_new_privs` (no `execve` can grant privileges again, not even to
/// uid 0); empties the bounding set if `CAP_SETPCAP` allows it; empties the ambient, inheritable,
/// effective and permitted sets. With an empty permitted set the thread can never raise a
/// capability again. Other threads are not affected: call it in each thread.
pub fn drop_all_capabilities() -> Result<Dropped, PrivilegeError> {
    drop_all_but(None)
}

/// [`drop_all_capabilities`], except that `keep` (if any) stays in the effective and permitted
/// sets of the calling thread. Only `--busy-poll` keeps one: `CAP_NET_ADMIN` in the main thread,
/// to restore the interface's NAPI settings at exit (see `crate::napi`).
pub fn drop_all_but(keep: Option<Capability>) -> Result<Dropped, PrivilegeError> {
    nix::sys::prctl::set_no_new_privs().map_err(PrivilegeError::NoNewPrivs)?;
    let caps_error = |what| move |source| PrivilegeError::Caps { what, source };
    let may_set_bounding = caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP)
        .map_err(caps_error("reading the effective set"))?;
    if may_set_bounding {
        caps::clear(None, CapSet::Bounding).map_err(caps_error("clearing the bounding set"))?;
    }
    caps::clear(None, CapSet::Ambient).map_err(caps_error("clearing the ambient set"))?;
    caps::clear(None, CapSet::Inheritable).map_err(caps_error("clearing the inheritable set"))?;
    // Effective first: it must stay a subset of permitted at every step.
    let kept: caps::CapsHashSet = keep.into_iter().collect();
    caps::set(None, CapSet::Effective, &kept).map_err(caps_error("clearing the effective set"))?;
    caps::set(None, CapSet::Permitted, &kept).map_err(caps_error("clearing the permitted set"))?;
    Ok(Dropped {
        bounding_set_cleared: may_set_bounding,
    })
}

/// The capability sets of one thread, from `/proc/<pid>/task/<tid>/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadCaps {
    /// Thread id.
    pub tid: u32,
    /// Thread name (`Name:`).
    pub name: String,
    /// `CapEff`.
    pub effective: u64,
    /// `CapPrm`.
    pub permitted: u64,
    /// `CapInh`.
    pub inheritable: u64,
    /// `CapAmb`.
    pub ambient: u64,
    /// `CapBnd`.
    pub bounding: u64,
    /// `NoNewPrivs`.
    pub no_new_privs: bool,
}

impl ThreadCaps {
    /// Parses the text of a `/proc/.../status` file; `None` if a capability line is missing.
    pub fn parse(tid: u32, status: &str) -> Option<ThreadCaps> {
        let field = |key: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
                .map(str::trim)
        };
        let hex = |key: &str| field(key).and_then(|v| u64::from_str_radix(v, 16).ok());
        Some(ThreadCaps {
            tid,
            name: field("Name").unwrap_or("").to_string(),
            effective: hex("CapEff")?,
            permitted: hex("CapPrm")?,
            inheritable: hex("CapInh")?,
            ambient: hex("CapAmb")?,
            bounding: hex("CapBnd")?,
            no_new_privs: field("NoNewPrivs") == Some("1"),
        })
    }

    /// True when the thread holds no capability and cannot gain one: effective, permitted,
    /// inheritable and ambient sets empty. (The bounding set only limits what could be gained.)
    pub fn is_unprivileged(&self) -> bool {
        self.effective == 0 && self.permitted == 0 && self.inheritable == 0 && self.ambient == 0
    }
}

impl fmt::Display for ThreadCaps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): CapEff {:016x} CapPrm {:016x} CapInh {:016x} CapAmb {:016x} CapBnd {:016x} NoNewPrivs {}",
            self.tid,
            self.name,
            self.effective,
            self.permitted,
            self.inheritable,
            self.ambient,
            self.bounding,
            u8::from(self.no_new_privs)
        )
    }
}

/// The capability sets of every thread of process `pid` (`"self"` for this one).
pub fn threads(pid: &str) -> io::Result<Vec<ThreadCaps>> {
    let mut threads = Vec::new();
    for entry in fs::read_dir(format!("/proc/{pid}/task"))? {
        let entry = entry?;
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        // A thread that ended meanwhile has no status any more: skip it.
        let Ok(status) = fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let caps = ThreadCaps::parse(tid, &status)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("no capability lines for {tid}")))?;
        threads.push(caps);
    }
    threads.sort_by_key(|t| t.tid);
    Ok(threads)
}

/// The main thread's part, once every worker has dropped its own capabilities and every socket
/// is registered: drops the calling thread's capabilities, then checks that no thread of the
/// process holds any. Returns the number of threads checked.
pub fn drop_after_setup() -> Result<(usize, Dropped), PrivilegeError> {
    drop_after_setup_keeping(None)
}

/// [`drop_after_setup`], except that the calling (main) thread keeps `keep` in its effective and
/// permitted sets; every other thread must hold nothing.
pub fn drop_after_setup_keeping(keep: Option<Capability>) -> Result<(usize, Dropped), PrivilegeError> {
    let dropped = drop_all_but(keep)?;
    let threads = threads("self").map_err(PrivilegeError::Proc)?;
    let me = nix::unistd::gettid().as_raw() as u32;
    let allowed = keep.map_or(0, |c| 1u64 << c.index());
    let holds_more = |t: &ThreadCaps| {
        if t.tid == me && keep.is_some() {
            t.effective & !allowed != 0 || t.permitted & !allowed != 0 || t.inheritable != 0 || t.ambient != 0
        } else {
            !t.is_unprivileged()
        }
    };
    if let Some(t) = threads.iter().find(|t| holds_more(t)) {
        return Err(PrivilegeError::StillPrivileged(t.clone()));
    }
    Ok((threads.len(), dropped))
}

/// The start-up line for the outcome of [`drop_after_setup`].
pub fn setup_line(result: &Result<(usize, Dropped), PrivilegeError>) -> String {
    match result {
        Ok((threads, dropped)) => format!(
            "privileges: dropped all capabilities after set-up ({threads} threads: effective, permitted, inheritable, \
             ambient{} empty; no_new_privs set)",
            if dropped.bounding_set_cleared { ", bounding" } else { "" }
        ),
        Err(e) => format!("privileges: WARNING: could not drop capabilities after set-up ({e}); running with them"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tafxdp-q0\nUmask:\t0022\nState:\tS (sleeping)\nCapInh:\t0000000000000000\n\
                          CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t000001ffffffffff\n\
                          CapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t0\n";

    #[test]
    fn parses_a_status_file() {
        let caps = ThreadCaps::parse(42, STATUS).unwrap();
        assert_eq!(caps.name, "afxdp-q0");
        assert_eq!((caps.effective, caps.permitted, caps.bounding), (0, 0, 0x1ff_ffff_ffff));
        assert!(caps.no_new_privs);
        assert!(caps.is_unprivileged());
        let privileged = STATUS.replace("CapEff:\t0000000000000000", "CapEff:\t0000000000003000");
        assert!(!ThreadCaps::parse(42, &privileged).unwrap().is_unprivileged());
        assert_eq!(ThreadCaps::parse(1, "Name:\tx\n"), None);
    }

    #[test]
    fn reads_this_process() {
        let threads = threads("self").unwrap();
        assert!(!threads.is_empty());
        assert!(threads.iter().any(|t| t.tid == std::process::id()));
    }

    /// In a thread of its own (capabilities are per thread, so the test runner keeps its own):
    /// after the drop the thread holds nothing and cannot raise anything again.
    #[test]
    fn drops_the_calling_threads_capabilities_for_good() {
        let (dropped, mine, others) = std::thread::spawn(|| {
            let dropped = drop_all_capabilities().unwrap();
            let tid = nix::unistd::gettid().as_raw() as u32;
            let all = threads("self").unwrap();
            let mine = all.iter().find(|t| t.tid == tid).cloned().unwrap();
            let raise = caps::raise(None, CapSet::Effective, Capability::CAP_NET_ADMIN);
            (dropped, mine, raise)
        })
        .join()
        .unwrap();
        assert!(mine.is_unprivileged(), "{mine}");
        assert!(mine.no_new_privs);
        assert!(others.is_err(), "a capability could be raised again");
        if dropped.bounding_set_cleared {
            assert_eq!(mine.bounding, 0, "{mine}");
        }
    }
}
