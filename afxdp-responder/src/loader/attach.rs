//! Attaching a loaded program to an interface with a bpf_link, and finding out what is
//! attached already: the kernel's link list, `ip -d link show` and `/proc/*/fdinfo`.
//!
//! Nothing is ever replaced silently: an interface that has an XDP program gets
//! [`LoaderError::AlreadyAttached`], which names the program and its owner. Only `--force`
//! ([`detach_netlink_program`]) removes a program, and only one attached with netlink (`ip link
//! set ... xdp obj ...`); a bpf_link can be released by its owner alone. (`ip` is used for the
//! discovery and for `--force` until they move to netlink.)

use std::{fmt, process::Command};

use aya::programs::{Link as _, ProgramError, Xdp, links::LinkType, loaded_links, loaded_programs, xdp::XdpLink};

use super::error::{LoaderError, errno_of, error_chain, hint_for, program_error};
use super::program::{EngineProgram, xdp_program};
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
    /// bpf_link that holds it if any, as reported by `ip -d link show` and the kernel's link
    /// list) and says how to remove it. Nothing is replaced.
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

/// The XDP program attached to `ifname`, from `ip -d link show dev IFNAME`, completed with the
/// program name and bpf_link id from the kernel. `None` if there is none or `ip` is missing
/// (the kernel then still refuses a second program, and the error says so without details).
pub(super) fn existing_xdp_program(ifname: &str) -> Option<ExistingXdpProgram> {
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
