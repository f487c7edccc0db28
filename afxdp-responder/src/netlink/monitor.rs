//! Following the kernel's changes as they happen: a netlink socket subscribed to the link
//! (`RTNLGRP_LINK`), IPv4/IPv6 address (`RTNLGRP_IPV4_IFADDR`, `RTNLGRP_IPV6_IFADDR`), IPv4/IPv6
//! route (`RTNLGRP_IPV4_ROUTE`, `RTNLGRP_IPV6_ROUTE`) and neighbour (`RTNLGRP_NEIGH`) groups.
//!
//! The kernel multicasts every `RTM_NEWADDR`/`RTM_DELADDR`/`RTM_NEWLINK`/`RTM_DELLINK`,
//! `RTM_NEWROUTE`/`RTM_DELROUTE` and `RTM_NEWNEIGH`/`RTM_DELNEIGH` of the namespace to it. When the socket's receive buffer overflows, the kernel drops notifications
//! and the next read fails with `ENOBUFS`: that is reported as [`Change::Overflow`], after which
//! the reader must resynchronise from a full dump.

use std::os::fd::AsFd;
use std::time::Duration;

use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::address::{Address, dump_addresses_with};
use super::link::{Link, link_by_index_with};
use super::route::{Neighbour, Route, dump_neighbours_with, dump_routes_with};
use super::{NetlinkError, RECV_BUFFER, RouteSocket, messages};

/// One change the kernel announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An address was added or changed (its flags, e.g. DAD finished).
    NewAddress(Address),
    /// An address was removed.
    DelAddress(Address),
    /// An interface was added or changed (state, MTU, MAC, name, XDP).
    NewLink(Link),
    /// An interface was removed (or left the namespace).
    DelLink {
        /// Its index.
        index: u32,
    },
    /// A route was added, changed or removed (`RTM_NEWROUTE`/`RTM_DELROUTE`, any table): the
    /// host mirror re-reads the routing tables.
    Routes,
    /// A neighbour entry was added, changed or removed; a removed one has no usable MAC.
    Neighbour(Neighbour),
    /// Notifications were lost (`ENOBUFS`): resynchronise from a dump.
    Overflow,
}

/// A socket subscribed to the link and address notifications of the calling thread's
/// namespace, plus a request socket for the dumps that resynchronise after an overflow.
#[derive(Debug)]
pub struct Notifications {
    socket: Socket,
    buffer: Vec<u8>,
    requests: RouteSocket,
}

impl Notifications {
    /// Subscribes. Needs no privilege. Open it *before* the first dump, so that no change
    /// between the dump and the subscription is missed.
    pub fn subscribe() -> Result<Self, NetlinkError> {
        let io = |what, source| NetlinkError::Io { what, source };
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| io("socket", e))?;
        let groups = libc::RTMGRP_LINK
            | libc::RTMGRP_IPV4_IFADDR
            | libc::RTMGRP_IPV6_IFADDR
            | libc::RTMGRP_IPV4_ROUTE
            | libc::RTMGRP_IPV6_ROUTE
            | libc::RTMGRP_NEIGH;
        socket
            .bind(&SocketAddr::new(0, groups as u32))
            .map_err(|e| io("subscribing to link, address, route and neighbour notifications", e))?;
        socket.set_non_blocking(true).map_err(|e| io("O_NONBLOCK", e))?;
        // Room for bursts (an interface going down removes all its IPv6 addresses at once):
        // a few hundred notifications (the kernel doubles it, capped by net.core.rmem_max); an
        // overflow is recovered from by a full dump.
        let _ = socket.set_rx_buf_sz(256 * 1024);
        Ok(Notifications {
            socket,
            buffer: vec![0; RECV_BUFFER],
            requests: RouteSocket::open()?,
        })
    }

    /// Waits up to `timeout` for notifications and returns every change received, in order
    /// (empty after a quiet `timeout`). Returns as soon as the first one arrives.
    pub fn wait(&mut self, timeout: Duration) -> Result<Vec<Change>, NetlinkError> {
        let mut fds = [PollFd::new(self.socket.as_fd(), PollFlags::POLLIN)];
        let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                return Err(NetlinkError::Io {
                    what: "poll",
                    source: e.into(),
                });
            }
        }
        self.drain()
    }

    /// Reads every queued notification without blocking.
    fn drain(&mut self) -> Result<Vec<Change>, NetlinkError> {
        let mut changes = Vec::new();
        loop {
            let len = match self.socket.recv(&mut &mut self.buffer[..], libc::MSG_TRUNC) {
                Ok(len) => len,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(changes),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    changes.push(Change::Overflow);
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(NetlinkError::Io {
                        what: "reading notifications",
                        source,
                    });
                }
            };
            if len > self.buffer.len() {
                changes.push(Change::Overflow); // truncated: what it said is lost
                continue;
            }
            for parsed in messages(&self.buffer[..len]) {
                let change = match parsed {
                    Ok((_, NetlinkPayload::InnerMessage(message))) => change_of(&message),
                    Ok(_) => None,
                    Err(_) => Some(Change::Overflow), // undecodable: resynchronise
                };
                changes.extend(change);
            }
        }
    }

    /// A full dump of interface `index`'s addresses, for resynchronising.
    pub fn dump_addresses(&mut self, index: u32) -> Result<Vec<Address>, NetlinkError> {
        dump_addresses_with(&mut self.requests, index)
    }

    /// Every route, for the host mirror (at start, after a route change, after an overflow).
    pub fn dump_routes(&mut self) -> Result<Vec<Route>, NetlinkError> {
        dump_routes_with(&mut self.requests)
    }

    /// Every neighbour entry, for the host mirror (at start and after an overflow).
    pub fn dump_neighbours(&mut self) -> Result<Vec<Neighbour>, NetlinkError> {
        dump_neighbours_with(&mut self.requests)
    }

    /// Interface `index` as it is now (`None` if it is gone), for resynchronising.
    pub fn link(&mut self, index: u32) -> Result<Option<Link>, NetlinkError> {
        link_by_index_with(&mut self.requests, index)
    }
}

fn change_of(message: &RouteNetlinkMessage) -> Option<Change> {
    Some(match message {
        RouteNetlinkMessage::NewAddress(a) => Change::NewAddress(Address::from_message(a)?),
        RouteNetlinkMessage::DelAddress(a) => Change::DelAddress(Address::from_message(a)?),
        RouteNetlinkMessage::NewLink(l) => Change::NewLink(Link::from_message(l)),
        RouteNetlinkMessage::DelLink(l) => Change::DelLink { index: l.header.index },
        RouteNetlinkMessage::NewRoute(_) | RouteNetlinkMessage::DelRoute(_) => Change::Routes,
        RouteNetlinkMessage::NewNeighbour(n) => Change::Neighbour(Neighbour::from_message(n)?),
        RouteNetlinkMessage::DelNeighbour(n) => Change::Neighbour(Neighbour {
            usable_mac: None,
            ..Neighbour::from_message(n)?
        }),
        _ => return None,
    })
}
