//! The AF_XDP sockets bound in this network namespace, from the kernel's socket diagnostics
//! (`NETLINK_SOCK_DIAG`, `SOCK_DIAG_BY_FAMILY` for `AF_XDP` with `XDP_SHOW_INFO`; what
//! `ss --xdp` shows): each socket's interface and queue. `status` reports from it which queues of
//! an interface have a socket, since the kernel does not let user space read an XSKMAP.
//! Needs `CONFIG_XDP_SOCKETS_DIAG`; without it the caller says "unknown".

use netlink_packet_core::NlasIterator;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_SOCK_DIAG};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const AF_XDP: u8 = 44;
const XDP_SHOW_INFO: u32 = 1;
const XDP_DIAG_INFO: u16 = 1;
/// `struct nlmsghdr`.
const NLMSG_HDRLEN: usize = 16;
/// `struct xdp_diag_msg`.
const XDP_DIAG_MSG_LEN: usize = 16;

/// One bound AF_XDP socket: (ifindex, queue id).
pub type BoundSocket = (u32, u32);

/// The request: `nlmsghdr` + `struct xdp_diag_req` (family, protocol, pad, ino 0 = every socket,
/// show, cookie).
fn request() -> Vec<u8> {
    let mut m = Vec::with_capacity(NLMSG_HDRLEN + 20);
    m.extend_from_slice(&((NLMSG_HDRLEN + 20) as u32).to_ne_bytes());
    m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    m.extend_from_slice(&[AF_XDP, 0, 0, 0]);
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&XDP_SHOW_INFO.to_ne_bytes());
    m.extend_from_slice(&[0u8; 8]);
    m
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// Parses one datagram of the dump; returns whether `NLMSG_DONE` was seen.
fn parse(datagram: &[u8], out: &mut Vec<BoundSocket>) -> Result<bool, String> {
    let mut at = 0;
    while at + NLMSG_HDRLEN <= datagram.len() {
        let len = u32_at(datagram, at).unwrap_or(0) as usize;
        let kind = u16_at(datagram, at + 4).unwrap_or(0);
        if len < NLMSG_HDRLEN || at + len > datagram.len() {
            return Err("truncated netlink message".into());
        }
        let body = &datagram[at + NLMSG_HDRLEN..at + len];
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let code = u32_at(body, 0).map_or(0, |c| c as i32);
                return Err(std::io::Error::from_raw_os_error(-code).to_string());
            }
            SOCK_DIAG_BY_FAMILY => {
                for nla in NlasIterator::new(body.get(XDP_DIAG_MSG_LEN..).unwrap_or_default()).flatten() {
                    if nla.kind() == XDP_DIAG_INFO
                        && let (Some(ifindex), Some(queue)) = (u32_at(nla.value(), 0), u32_at(nla.value(), 4))
                    {
                        out.push((ifindex, queue));
                    }
                }
            }
            _ => {}
        }
        at += len.next_multiple_of(4);
    }
    Ok(false)
}

/// Every bound AF_XDP socket of this network namespace. `Err` says why they are unknown.
pub fn bound_sockets() -> Result<Vec<BoundSocket>, String> {
    let mut socket = Socket::new(NETLINK_SOCK_DIAG).map_err(|e| format!("netlink socket: {e}"))?;
    socket.bind_auto().map_err(|e| format!("netlink bind: {e}"))?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(|e| format!("netlink connect: {e}"))?;
    socket.send(&request(), 0).map_err(|e| format!("netlink send: {e}"))?;
    let mut out = Vec::new();
    // A dump ends with NLMSG_DONE; bounded in case the kernel never says it.
    for _ in 0..1024 {
        let (datagram, _) = socket.recv_from_full().map_err(|e| format!("netlink receive: {e}"))?;
        if parse(&datagram, &mut out).map_err(|e| format!("AF_XDP socket diagnostics: {e}"))? {
            return Ok(out);
        }
    }
    Err("AF_XDP socket diagnostics: the dump did not end".into())
}

/// The queues of interface `ifindex` that have a bound AF_XDP socket, sorted.
pub fn queues_with_sockets(ifindex: u32) -> Result<Vec<u32>, String> {
    let mut queues: Vec<u32> = bound_sockets()?
        .into_iter()
        .filter(|&(i, _)| i == ifindex)
        .map(|(_, q)| q)
        .collect();
    queues.sort_unstable();
    queues.dedup();
    Ok(queues)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_dump() {
        // One socket (ifindex 7, queue 1) with an XDP_DIAG_INFO attribute, then NLMSG_DONE.
        let mut d = Vec::new();
        let msg_len = NLMSG_HDRLEN + XDP_DIAG_MSG_LEN + 12;
        d.extend_from_slice(&(msg_len as u32).to_ne_bytes());
        d.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        d.extend_from_slice(&[0; 10]);
        d.extend_from_slice(&[AF_XDP, 3, 0, 0]);
        d.extend_from_slice(&[0; 12]);
        d.extend_from_slice(&12u16.to_ne_bytes());
        d.extend_from_slice(&XDP_DIAG_INFO.to_ne_bytes());
        d.extend_from_slice(&7u32.to_ne_bytes());
        d.extend_from_slice(&1u32.to_ne_bytes());
        d.extend_from_slice(&(NLMSG_HDRLEN as u32 + 4).to_ne_bytes());
        d.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        d.extend_from_slice(&[0; 14]);
        let mut out = Vec::new();
        assert_eq!(parse(&d, &mut out), Ok(true));
        assert_eq!(out, [(7, 1)]);
        assert!(parse(&d[..20], &mut Vec::new()).is_err(), "truncated");
    }
}
