//! Attaching a loaded program to an interface with a bpf_link, and finding out what is
//! attached already: the interface's `IFLA_XDP` (rtnetlink), the kernel's program and link
//! lists, and `/proc/*/fdinfo` for the process that holds a link.
//!
//! Nothing is ever replaced silently: an interface that has an XDP program gets
//! [`LoaderError::AlreadyAttached`], which names the program and its owner. Only `--force`
//! ([`detach_netlink_program`]) removes a program, and only one attached with netlink (`ip link
//! set ... xdp obj ...`), by the same netlink request `ip link set ... off` sends; a bpf_link can
//! be released by its owner alone.

use std::fmt;

use aya::programs::{Link as _, ProgramError, Xdp, links::LinkType, loaded_links, loaded_programs, xdp::XdpLink};

use super::error::{LoaderError, errno_of, error_chain, hint_for, program_error};
use super::program::{EngineProgram, xdp_program};
use crate::netlink::{self, XdpAttachment};
use crate::options::XdpMode;

/// The mode an attached program actually runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachedMode {
    /// Native (driver) XDP.
    Native,
    /// Generic (SKB) XDP.
    Skb,
}

impl AttachedMode {
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

/// An XDP program that was already attached to an interface, as rtnetlink (`IFLA_XDP`) and the
/// kernel's program and link lists report it.
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

/// An attachment made by [`Attacher::attach`].
#[derive(Debug)]
struct Attachment {
    ifname: String,
    mode: AttachedMode,
    /// Dropping it closes the bpf_link fd, which detaches the program.
    link: XdpLink,
}

/// The attachment of one loaded program, and why `auto` fell back to SKB mode if it did. Every
/// program the loader attaches (engines, pass, capture) goes through it. Dropping it detaches.
#[derive(Debug, Default)]
pub(super) struct Attacher {
    attachment: Option<Attachment>,
    native_fallback: Option<String>,
}

impl Attacher {
    /// Attaches `program` to `ifname` with a bpf_link; see [`EngineProgram::attach`].
    pub(super) fn attach(
        &mut self,
        program: &mut Xdp,
        name: &'static str,
        ifname: &str,
        mode: XdpMode,
    ) -> Result<AttachedMode, LoaderError> {
        if let Some(attachment) = &self.attachment {
            return Err(LoaderError::AttachedHere {
                program: name,
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
            XdpMode::Native => self.attach_in(program, ifname, ifindex, AttachedMode::Native)?,
            XdpMode::Skb => self.attach_in(program, ifname, ifindex, AttachedMode::Skb)?,
            XdpMode::Auto => match self.attach_in(program, ifname, ifindex, AttachedMode::Native) {
                Ok(mode) => mode,
                Err(
                    e @ (LoaderError::AlreadyAttached { .. }
                    | LoaderError::NotALink { .. }
                    | LoaderError::UnknownInterface { .. }),
                ) => return Err(e),
                Err(native) => {
                    let reason = error_chain(&native);
                    let mode = self.attach_in(program, ifname, ifindex, AttachedMode::Skb)?;
                    self.native_fallback = Some(reason);
                    mode
                }
            },
        };
        Ok(used)
    }

    fn attach_in(
        &mut self,
        program: &mut Xdp,
        ifname: &str,
        ifindex: u32,
        mode: AttachedMode,
    ) -> Result<AttachedMode, LoaderError> {
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
        let prog_id = program
            .info()
            .map_err(|source| program_error("reading the program info".into(), source))?
            .id();
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

    /// Closes the bpf_link; returns whether the program was attached.
    pub(super) fn detach(&mut self) -> Result<bool, LoaderError> {
        let Some(Attachment { ifname, link, .. }) = self.attachment.take() else {
            return Ok(false);
        };
        link.detach()
            .map_err(|source| program_error(format!("detaching from {ifname}"), source))?;
        Ok(true)
    }
}

impl EngineProgram {
    /// Attaches the program to `ifname` with a bpf_link, so that a crashed process leaves
    /// nothing attached. Returns the mode actually used: for [`XdpMode::Auto`] native is tried
    /// first and generic (SKB) is used if native fails; the reason is kept in
    /// [`EngineProgram::native_fallback_reason`].
    ///
    /// Refuses ([`LoaderError::AlreadyAttached`]) when any XDP program, in any mode, is
    /// already attached to the interface: the error names it (program id and name, the
    /// bpf_link that holds it if any, as reported by rtnetlink and the kernel's program and
    /// link lists) and says how to remove it. Nothing is replaced.
    pub fn attach(&mut self, ifname: &str, mode: XdpMode) -> Result<AttachedMode, LoaderError> {
        let name = self.engine.program_name();
        self.attacher
            .attach(xdp_program(&mut self.ebpf, name)?, name, ifname, mode)
    }

    /// Why [`XdpMode::Auto`] fell back to SKB mode in the last [`EngineProgram::attach`],
    /// or `None` if it did not.
    pub fn native_fallback_reason(&self) -> Option<&str> {
        self.attacher.native_fallback.as_deref()
    }

    /// The interface and mode the program is attached to, if it is.
    pub fn attached(&self) -> Option<(&str, AttachedMode)> {
        self.attacher.attachment.as_ref().map(|a| (a.ifname.as_str(), a.mode))
    }

    /// Detaches the program (closes the bpf_link); it stays loaded with its maps and counters
    /// and can be attached again. Returns whether it was attached. Dropping the
    /// [`EngineProgram`] detaches as well.
    pub fn detach(&mut self) -> Result<bool, LoaderError> {
        self.attacher.detach()
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

/// The XDP program attached to `ifname` (the first one if several modes have one), from the
/// interface's `IFLA_XDP`, completed with the program's name and the id of the bpf_link that
/// holds it, if any, from the kernel's program and link lists (which need `CAP_SYS_ADMIN`;
/// without it the name and link are unknown). `None` if there is none or the interface cannot
/// be asked (the kernel then still refuses a second program, and the error says so without
/// details).
pub fn existing_xdp_program(ifname: &str) -> Option<ExistingXdpProgram> {
    let (_, attachment) = attached_program(ifname)?;
    Some(describe(attachment))
}

/// The interface's index and its first attached XDP program.
fn attached_program(ifname: &str) -> Option<(u32, XdpAttachment)> {
    let link = netlink::link_by_name(ifname).ok()??;
    let first = *link.xdp.first()?;
    Some((link.index, first))
}

fn describe(attachment: XdpAttachment) -> ExistingXdpProgram {
    let id = attachment.prog_id;
    let name = loaded_programs()
        .flatten()
        .find(|info| info.id() == id)
        .and_then(|info| info.name_as_str().map(str::to_owned));
    let link_id = loaded_links()
        .flatten()
        .find(|info| info.program_id() == id && matches!(info.link_type(), Ok(LinkType::Xdp)))
        .map(|info| info.id());
    ExistingXdpProgram {
        mode: attachment.mode.ip_keyword(),
        id,
        name,
        link_id,
        holder: link_id.and_then(link_holder),
    }
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
    let Some((ifindex, attachment)) = attached_program(ifname) else {
        return Ok(None);
    };
    let existing = describe(attachment);
    if existing.link_id.is_some() {
        return Err(already_attached(ifname, Some(existing)));
    }
    let failed = |detail: String| LoaderError::ForceFailed {
        ifname: ifname.to_owned(),
        existing: Box::new(existing.clone()),
        detail,
    };
    netlink::detach_xdp(ifindex, attachment.mode).map_err(|e| failed(e.to_string()))?;
    if let Some(still) = existing_xdp_program(ifname) {
        return Err(failed(format!("{still} is still attached")));
    }
    Ok(Some(existing))
}

#[cfg(test)]
mod tests {
    use super::*;

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
