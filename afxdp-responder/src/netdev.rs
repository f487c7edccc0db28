//! The XDP features of a device from the kernel's `netdev` generic netlink family
//! (`NETDEV_CMD_DEV_GET`, Linux 6.3+; what `xdp-loader features` and `ynl` show): native XDP,
//! redirect, redirect target, AF_XDP zero-copy, so that zero-copy support is known before binding.
//! A kernel without the family reports nothing: the caller says "unknown".

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload, Nla, NlasIterator,
    ParseableParametrized,
};
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_GENERIC};

/// `NETDEV_CMD_DEV_GET` (include/uapi/linux/netdev.h).
const NETDEV_CMD_DEV_GET: u8 = 1;
/// `NETDEV_A_DEV_IFINDEX` (u32).
const NETDEV_A_DEV_IFINDEX: u16 = 1;
/// `NETDEV_A_DEV_XDP_FEATURES` (u64, `enum netdev_xdp_act`).
const NETDEV_A_DEV_XDP_FEATURES: u16 = 3;
/// `NETDEV_A_DEV_XDP_ZC_MAX_SEGS` (u32).
const NETDEV_A_DEV_XDP_ZC_MAX_SEGS: u16 = 4;

/// `enum netdev_xdp_act` bits.
pub mod act {
    /// Native XDP (`XDP_PASS`, `XDP_DROP`, `XDP_ABORTED`, `XDP_TX`).
    pub const BASIC: u64 = 1 << 0;
    /// `XDP_REDIRECT`.
    pub const REDIRECT: u64 = 1 << 1;
    /// Can be the target of a redirect (`ndo_xdp_xmit`).
    pub const NDO_XMIT: u64 = 1 << 2;
    /// AF_XDP zero-copy.
    pub const XSK_ZEROCOPY: u64 = 1 << 3;
    /// Hardware offload.
    pub const HW_OFFLOAD: u64 = 1 << 4;
    /// Multi-buffer RX.
    pub const RX_SG: u64 = 1 << 5;
}

/// What the netdev family says about one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceFeatures {
    /// `xdp-features` bit mask ([`act`]).
    pub xdp: u64,
    /// `xdp-zc-max-segs`, if reported.
    pub zc_max_segs: Option<u32>,
}

/// The payload of a netdev family message: its command and raw attributes.
#[derive(Debug, Clone)]
struct Netdev {
    cmd: u8,
    attrs: Vec<DefaultNla>,
}

impl GenlFamily for Netdev {
    fn family_name() -> &'static str {
        "netdev"
    }
    fn command(&self) -> u8 {
        self.cmd
    }
    fn version(&self) -> u8 {
        1
    }
}

impl Emitable for Netdev {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }
    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer);
    }
}

impl ParseableParametrized<[u8], GenlHeader> for Netdev {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let mut attrs = Vec::new();
        for nla in NlasIterator::new(buf) {
            let nla = nla?;
            attrs.push(DefaultNla::new(nla.kind(), nla.value().to_vec()));
        }
        Ok(Netdev { cmd: header.cmd, attrs })
    }
}

/// Sends one request and returns the first answer (or the kernel's error).
fn request<F>(socket: &Socket, payload: F) -> Result<GenlMessage<F>, String>
where
    F: GenlFamily + Emitable + ParseableParametrized<[u8], GenlHeader> + std::fmt::Debug + Clone,
{
    request_as(socket, GenlMessage::from_payload(payload))
}

fn request_as<F>(socket: &Socket, mut genl: GenlMessage<F>) -> Result<GenlMessage<F>, String>
where
    F: GenlFamily + Emitable + ParseableParametrized<[u8], GenlHeader> + std::fmt::Debug + Clone,
{
    genl.finalize();
    let mut msg = NetlinkMessage::from(genl);
    msg.header.flags = NLM_F_REQUEST;
    msg.finalize();
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut buf);
    socket.send(&buf, 0).map_err(|e| format!("netlink send: {e}"))?;
    let (reply, _) = socket.recv_from_full().map_err(|e| format!("netlink receive: {e}"))?;
    let parsed = NetlinkMessage::<GenlMessage<F>>::deserialize(&reply).map_err(|e| format!("netlink reply: {e}"))?;
    match parsed.payload {
        NetlinkPayload::InnerMessage(m) => Ok(m),
        NetlinkPayload::Error(e) => Err(match e.code {
            Some(code) => std::io::Error::from_raw_os_error(-code.get()).to_string(),
            None => "acknowledged without data".to_string(),
        }),
        other => Err(format!("unexpected netlink answer {other:?}")),
    }
}

/// The XDP features of interface `ifindex`; `Err` says why they are unknown (e.g. "the kernel
/// has no netdev netlink family (Linux 6.3+)").
pub fn device_features(ifindex: u32) -> Result<DeviceFeatures, String> {
    let mut socket = Socket::new(NETLINK_GENERIC).map_err(|e| format!("netlink socket: {e}"))?;
    socket.bind_auto().map_err(|e| format!("netlink bind: {e}"))?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(|e| format!("netlink connect: {e}"))?;
    let family = request(
        &socket,
        GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName("netdev".into())],
        },
    )
    .map_err(|e| format!("the kernel has no netdev netlink family (Linux 6.3+): {e}"))?;
    let id = family
        .payload
        .nlas
        .iter()
        .find_map(|a| match a {
            GenlCtrlAttrs::FamilyId(id) => Some(*id),
            _ => None,
        })
        .ok_or("the netdev family has no id")?;
    let mut genl = GenlMessage::from_payload(Netdev {
        cmd: NETDEV_CMD_DEV_GET,
        attrs: vec![DefaultNla::new(NETDEV_A_DEV_IFINDEX, ifindex.to_ne_bytes().to_vec())],
    });
    genl.set_resolved_family_id(id);
    let answer = request_as(&socket, genl).map_err(|e| format!("NETDEV_CMD_DEV_GET: {e}"))?;
    let attr = |kind: u16| {
        answer.payload.attrs.iter().find(|a| a.kind() == kind).map(|a| {
            let mut v = vec![0u8; a.value_len()];
            a.emit_value(&mut v);
            v
        })
    };
    let xdp = attr(NETDEV_A_DEV_XDP_FEATURES)
        .and_then(|v| v.get(..8).map(|b| u64::from_ne_bytes(b.try_into().unwrap_or_default())))
        .ok_or("the kernel did not report xdp-features")?;
    let zc_max_segs = attr(NETDEV_A_DEV_XDP_ZC_MAX_SEGS)
        .and_then(|v| v.get(..4).map(|b| u32::from_ne_bytes(b.try_into().unwrap_or_default())));
    Ok(DeviceFeatures { xdp, zc_max_segs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_features_are_read() {
        // This kernel (6.18) has the family; lo has no native XDP.
        let lo = device_features(1).expect("netdev family on Linux 6.3+");
        assert_eq!(lo.xdp & act::XSK_ZEROCOPY, 0);
        assert_eq!(lo.xdp & act::BASIC, 0);
    }

    #[test]
    fn a_missing_device_is_an_error() {
        let err = device_features(0x7fff_fff0).unwrap_err();
        assert!(err.contains("NETDEV_CMD_DEV_GET"), "{err}");
    }
}
