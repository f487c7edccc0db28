//! One interface's facts (`RTM_GETLINK`), and detaching a netlink-attached XDP program
//! (`RTM_SETLINK` with `IFLA_XDP`).

use std::fmt;

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkExtentMask, LinkFlags, LinkMessage, LinkXdp, State, XdpAttached};

use super::{NetlinkError, RouteSocket};

/// How an XDP program is attached (`XDP_ATTACHED_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpAttachMode {
    /// Native (driver) XDP.
    Native,
    /// Generic (SKB) XDP.
    Generic,
    /// Offloaded to the NIC.
    Offload,
}

impl XdpAttachMode {
    /// The `XDP_FLAGS_*_MODE` flag that names this mode in `IFLA_XDP_FLAGS`.
    pub const fn flag(self) -> u32 {
        match self {
            Self::Generic => 1 << 1, // XDP_FLAGS_SKB_MODE
            Self::Native => 1 << 2,  // XDP_FLAGS_DRV_MODE
            Self::Offload => 1 << 3, // XDP_FLAGS_HW_MODE
        }
    }

    /// The keyword `ip link set dev X <keyword> off` takes for this mode.
    pub const fn ip_keyword(self) -> &'static str {
        match self {
            Self::Native => "xdpdrv",
            Self::Generic => "xdpgeneric",
            Self::Offload => "xdpoffload",
        }
    }
}

/// An XDP program attached to an interface (`IFLA_XDP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XdpAttachment {
    /// How it is attached.
    pub mode: XdpAttachMode,
    /// Kernel program id.
    pub prog_id: u32,
}

/// The operational state (`IFLA_OPERSTATE`, RFC 2863).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Up: can pass packets.
    Up,
    /// Down (administratively, or its lower layer is).
    Down,
    /// Anything else (unknown, dormant, testing, not present).
    Other,
}

impl fmt::Display for LinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Up => "up",
            Self::Down => "down",
            Self::Other => "unknown",
        })
    }
}

/// What the kernel says about one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Name (`IFLA_IFNAME`).
    pub name: String,
    /// Hardware address (`IFLA_ADDRESS`): 6 bytes on Ethernet, other lengths elsewhere, empty
    /// for devices without one.
    pub address: Vec<u8>,
    /// MTU.
    pub mtu: u32,
    /// Administratively up (`IFF_UP`).
    pub admin_up: bool,
    /// Operational state.
    pub state: LinkState,
    /// Attached XDP programs: none, one, or one per mode (`XDP_ATTACHED_MULTI`), generic first.
    pub xdp: Vec<XdpAttachment>,
}

impl Link {
    /// The MAC address, if the interface has a 6-byte hardware address.
    pub fn mac(&self) -> Option<[u8; 6]> {
        self.address.as_slice().try_into().ok()
    }

    /// Reads an `RTM_NEWLINK` message.
    pub(crate) fn from_message(message: &LinkMessage) -> Self {
        let mut link = Link {
            index: message.header.index,
            name: String::new(),
            address: Vec::new(),
            mtu: 0,
            admin_up: message.header.flags.contains(LinkFlags::Up),
            state: LinkState::Other,
            xdp: Vec::new(),
        };
        for attribute in &message.attributes {
            match attribute {
                LinkAttribute::IfName(name) => link.name.clone_from(name),
                LinkAttribute::Address(address) => link.address.clone_from(address),
                LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
                LinkAttribute::OperState(state) => {
                    link.state = match state {
                        State::Up => LinkState::Up,
                        State::Down | State::LowerLayerDown => LinkState::Down,
                        _ => LinkState::Other,
                    }
                }
                LinkAttribute::Xdp(xdp) => link.xdp = xdp_attachments(xdp),
                _ => {}
            }
        }
        link
    }
}

/// The programs an `IFLA_XDP` attribute reports.
fn xdp_attachments(xdp: &[LinkXdp]) -> Vec<XdpAttachment> {
    let attached = xdp.iter().find_map(|a| match a {
        LinkXdp::Attached(mode) => Some(*mode),
        _ => None,
    });
    let find = |want: fn(&LinkXdp) -> Option<u32>| xdp.iter().find_map(want);
    let single = |mode| {
        find(|a| match a {
            LinkXdp::ProgId(id) => Some(*id),
            _ => None,
        })
        .map(|prog_id| vec![XdpAttachment { mode, prog_id }])
        .unwrap_or_default()
    };
    match attached {
        Some(XdpAttached::Driver) => single(XdpAttachMode::Native),
        Some(XdpAttached::SocketBuffer) => single(XdpAttachMode::Generic),
        Some(XdpAttached::Hardware) => single(XdpAttachMode::Offload),
        Some(XdpAttached::Multiple) => {
            let per_mode = [
                (
                    XdpAttachMode::Generic,
                    find(|a| match a {
                        LinkXdp::SkbProgId(id) => Some(*id),
                        _ => None,
                    }),
                ),
                (
                    XdpAttachMode::Native,
                    find(|a| match a {
                        LinkXdp::DrvProgId(id) => Some(*id),
                        _ => None,
                    }),
                ),
                (
                    XdpAttachMode::Offload,
                    find(|a| match a {
                        LinkXdp::HwProgId(id) => Some(*id),
                        _ => None,
                    }),
                ),
            ];
            per_mode
                .into_iter()
                .filter_map(|(mode, id)| id.map(|prog_id| XdpAttachment { mode, prog_id }))
                .collect()
        }
        _ => Vec::new(),
    }
}

fn get_link(socket: &mut RouteSocket, mut request: LinkMessage) -> Result<Option<Link>, NetlinkError> {
    // Counters are not needed: keep the answer small.
    request
        .attributes
        .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
    match socket.request("link query (RTM_GETLINK)", RouteNetlinkMessage::GetLink(request), false) {
        Ok(answers) => Ok(answers.iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(Link::from_message(l)),
            _ => None,
        })),
        Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The interface called `name`, or `None` if there is none.
pub fn link_by_name(name: &str) -> Result<Option<Link>, NetlinkError> {
    let mut request = LinkMessage::default();
    request.attributes.push(LinkAttribute::IfName(name.to_owned()));
    get_link(&mut RouteSocket::open()?, request)
}

/// The interface with index `index`, or `None` if there is none.
pub fn link_by_index(index: u32) -> Result<Option<Link>, NetlinkError> {
    let mut socket = RouteSocket::open()?;
    link_by_index_with(&mut socket, index)
}

pub(crate) fn link_by_index_with(socket: &mut RouteSocket, index: u32) -> Result<Option<Link>, NetlinkError> {
    let mut request = LinkMessage::default();
    request.header.index = index;
    get_link(socket, request)
}

/// Detaches the XDP program attached in `mode` to interface `index` with netlink (`IFLA_XDP`
/// with fd -1 and the mode's flag), as `ip link set dev X xdpdrv|xdpgeneric|xdpoffload off`
/// does. Needs `CAP_NET_ADMIN`. A program held by a bpf_link cannot be removed this way (the
/// kernel answers `EBUSY`).
pub fn detach_xdp(index: u32, mode: XdpAttachMode) -> Result<(), NetlinkError> {
    let mut request = LinkMessage::default();
    request.header.index = index;
    request
        .attributes
        .push(LinkAttribute::Xdp(vec![LinkXdp::Fd(-1), LinkXdp::Flags(mode.flag())]));
    RouteSocket::open()?
        .request(
            "XDP detach (RTM_SETLINK IFLA_XDP)",
            RouteNetlinkMessage::SetLink(request),
            false,
        )
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_found_by_name_and_index() {
        let by_name = link_by_name("lo").unwrap().expect("lo exists in every namespace");
        assert_eq!(by_name.index, 1);
        assert_eq!(by_name.mac(), Some([0; 6]));
        assert!(by_name.mtu >= 1280, "{by_name:?}");
        assert_eq!(link_by_index(1).unwrap().as_ref(), Some(&by_name));
        assert_eq!(link_by_name("afxr-no-such0").unwrap(), None);
    }

    #[test]
    fn xdp_attribute_is_read_in_every_mode() {
        let one = [LinkXdp::Attached(XdpAttached::SocketBuffer), LinkXdp::ProgId(101)];
        assert_eq!(
            xdp_attachments(&one),
            vec![XdpAttachment {
                mode: XdpAttachMode::Generic,
                prog_id: 101
            }]
        );
        let native = [LinkXdp::Attached(XdpAttached::Driver), LinkXdp::ProgId(7)];
        assert_eq!(xdp_attachments(&native)[0].mode, XdpAttachMode::Native);
        let multi = [
            LinkXdp::Attached(XdpAttached::Multiple),
            LinkXdp::DrvProgId(8),
            LinkXdp::SkbProgId(7),
        ];
        let modes: Vec<_> = xdp_attachments(&multi).iter().map(|a| (a.mode, a.prog_id)).collect();
        assert_eq!(modes, vec![(XdpAttachMode::Generic, 7), (XdpAttachMode::Native, 8)]);
        assert!(xdp_attachments(&[LinkXdp::Attached(XdpAttached::None)]).is_empty());
        assert_eq!(XdpAttachMode::Generic.flag(), 2);
        assert_eq!(XdpAttachMode::Native.flag(), 4);
    }
}
