//! rtnetlink, synchronously: what the daemon asks the kernel about interfaces, addresses and
//! neighbours, the one change it makes (detaching a netlink-attached XDP program for `--force`),
//! and the notifications it follows while running. Built on the rust-netlink crates
//! (`netlink-sys` for the socket, `netlink-packet-route` for the messages), without an async
//! runtime and without `unsafe`; see docs/decisions.md.
//!
//! | module | what it does |
//! |---|---|
//! | [`address`] | the addresses of an interface with their flags (`RTM_GETADDR`), and which of them Linux answers pings for |
//! | [`link`] | one interface's facts (`RTM_GETLINK`): index, name, MAC, MTU, state, attached XDP program; XDP detach (`RTM_SETLINK`) |
//! | [`neighbour`] | the neighbour table's MAC for an address (`RTM_GETNEIGH`) |
//! | [`route`] | the routing and neighbour tables (`RTM_GETROUTE`, `RTM_GETNEIGH`) and the non-default policy rules (`RTM_GETRULE`), for the host mirror |
//! | [`monitor`] | a socket subscribed to the link, IPv4/IPv6 address, route and neighbour groups: changes as they happen |
//!
//! Everything describes the network namespace of the calling thread.

pub mod address;
pub mod link;
pub mod monitor;
pub mod neighbour;
pub mod route;

use std::io;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

pub use address::{Address, dump_addresses};
pub use link::{Link, LinkState, XdpAttachMode, XdpAttachment, detach_xdp, link_by_index, link_by_name};
pub use monitor::{Change, Notifications};
pub use neighbour::neighbour_mac;

/// A netlink request or notification that failed. Messages say what was asked.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// A socket call failed.
    #[error("rtnetlink {what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The kernel answered a request with an error.
    #[error("rtnetlink {what}: the kernel said: {source}")]
    Kernel {
        /// The request.
        what: &'static str,
        /// The errno the kernel returned.
        #[source]
        source: io::Error,
    },
    /// A message from the kernel could not be decoded.
    #[error("rtnetlink {what}: undecodable message from the kernel: {detail}")]
    Decode {
        /// The request.
        what: &'static str,
        /// The decoder's complaint.
        detail: String,
    },
}

impl NetlinkError {
    /// The errno behind the error, if there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Io { source, .. } | Self::Kernel { source, .. } => source.raw_os_error(),
            Self::Decode { .. } => None,
        }
    }
}

/// The largest datagram we read: the kernel fills dump datagrams up to about 32 KiB.
const RECV_BUFFER: usize = 64 * 1024;

/// How long a request waits for the kernel's answer.
const REQUEST_TIMEOUT_S: i64 = 5;

/// A request/response rtnetlink socket (not subscribed to any group).
#[derive(Debug)]
pub(crate) struct RouteSocket {
    socket: Socket,
    sequence: u32,
    buffer: Vec<u8>,
}

impl RouteSocket {
    /// Opens and binds a `NETLINK_ROUTE` socket. Needs no privilege.
    pub(crate) fn open() -> Result<Self, NetlinkError> {
        let io = |what, source| NetlinkError::Io { what, source };
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| io("socket", e))?;
        socket.bind_auto().map_err(|e| io("bind", e))?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(|e| io("connect", e))?;
        // Dumps only the asked interface's entries where the kernel can filter (4.20+); older
        // kernels ignore it and every caller filters again.
        let _ = socket.set_netlink_get_strict_chk(true);
        // The kernel always answers; should it not, a request fails instead of hanging.
        let timeout = nix::sys::time::TimeVal::new(REQUEST_TIMEOUT_S, 0);
        nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::ReceiveTimeout, &timeout)
            .map_err(|e| io("SO_RCVTIMEO", e.into()))?;
        Ok(RouteSocket {
            socket,
            sequence: 0,
            buffer: vec![0; RECV_BUFFER],
        })
    }

    /// Sends `message` (a dump if `dump`, otherwise acknowledged) and returns every message the
    /// kernel answered with, up to `NLMSG_DONE` or the acknowledgement. An error answer is
    /// [`NetlinkError::Kernel`].
    pub(crate) fn request(
        &mut self,
        what: &'static str,
        message: RouteNetlinkMessage,
        dump: bool,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { NLM_F_ACK };
        header.sequence_number = self.sequence;
        let mut request = NetlinkMessage::new(header, NetlinkPayload::from(message));
        request.finalize();
        let mut bytes = vec![0; request.buffer_len()];
        request.serialize(&mut bytes);
        self.socket
            .send(&bytes, 0)
            .map_err(|source| NetlinkError::Io { what, source })?;

        let mut answers = Vec::new();
        loop {
            let len = self
                .socket
                .recv(&mut &mut self.buffer[..], libc::MSG_TRUNC)
                .map_err(|source| NetlinkError::Io { what, source })?;
            if len > self.buffer.len() {
                return Err(NetlinkError::Decode {
                    what,
                    detail: format!("a {len}-byte datagram does not fit the {RECV_BUFFER}-byte buffer"),
                });
            }
            let mut finished = false;
            for parsed in messages(&self.buffer[..len]) {
                let (sequence, payload) = parsed.map_err(|detail| NetlinkError::Decode { what, detail })?;
                if sequence != self.sequence {
                    continue; // an answer to an earlier request that was abandoned
                }
                match payload {
                    NetlinkPayload::InnerMessage(m) => answers.push(m),
                    NetlinkPayload::Done(_) => finished = true,
                    NetlinkPayload::Error(e) => match e.code {
                        None => finished = true, // the acknowledgement
                        Some(_) => {
                            return Err(NetlinkError::Kernel {
                                what,
                                source: e.to_io(),
                            });
                        }
                    },
                    _ => {}
                }
            }
            if finished {
                return Ok(answers);
            }
        }
    }
}

/// The messages of one datagram: (sequence number, payload), or why one could not be decoded.
/// A malformed length ends the datagram.
pub(crate) fn messages(
    datagram: &[u8],
) -> impl Iterator<Item = Result<(u32, NetlinkPayload<RouteNetlinkMessage>), String>> + '_ {
    let mut rest = datagram;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        // Checked: at least a header, and no longer than what is left.
        let length = match NetlinkBuffer::new_checked(rest) {
            Ok(buffer) => buffer.length() as usize,
            Err(e) => {
                rest = &[];
                return Some(Err(e.to_string()));
            }
        };
        let this = &rest[..length];
        // Messages are padded to 4 bytes.
        rest = &rest[length.next_multiple_of(4).min(rest.len())..];
        Some(
            NetlinkMessage::<RouteNetlinkMessage>::deserialize(this)
                .map(|m| (m.header.sequence_number, m.payload))
                .map_err(|e| e.to_string()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::DoneMessage;
    use netlink_packet_route::address::{AddressAttribute, AddressMessage};

    fn bytes(sequence: u32, payload: NetlinkPayload<RouteNetlinkMessage>) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.sequence_number = sequence;
        let mut message = NetlinkMessage::new(header, payload);
        message.finalize();
        let mut out = vec![0; message.buffer_len()];
        message.serialize(&mut out);
        out
    }

    #[test]
    fn a_datagram_is_split_into_its_messages_and_garbage_is_an_error() {
        let mut address = AddressMessage::default();
        address.header.index = 7;
        address
            .attributes
            .push(AddressAttribute::Local("198.18.0.1".parse().unwrap()));
        let mut datagram = bytes(3, NetlinkPayload::from(RouteNetlinkMessage::NewAddress(address)));
        datagram.resize(datagram.len().next_multiple_of(4), 0);
        datagram.extend(bytes(3, NetlinkPayload::Done(DoneMessage::default())));
        let parsed: Vec<_> = messages(&datagram).collect();
        assert_eq!(parsed.len(), 2, "{parsed:?}");
        assert!(matches!(
            &parsed[0],
            Ok((3, NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(a)))) if a.header.index == 7
        ));
        assert!(matches!(parsed[1], Ok((3, NetlinkPayload::Done(_)))));

        // A length field longer than the datagram, or shorter than a header: one error, no panic.
        let mut bad = datagram.clone();
        bad[0..4].copy_from_slice(&10_000u32.to_ne_bytes());
        let parsed: Vec<_> = messages(&bad).collect();
        assert!(parsed.len() == 1 && parsed[0].is_err(), "{parsed:?}");
        for cut in 0..datagram.len() {
            let _ = messages(&datagram[..cut]).count();
        }
    }
}
