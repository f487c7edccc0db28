//! The routing tables (`RTM_GETROUTE`), the neighbour tables (`RTM_GETNEIGH`) and the policy
//! rules (`RTM_GETRULE`) of the namespace, as plain values: what the host mirror
//! (`crate::mirror`) copies into the XDP program's maps.

use std::net::IpAddr;

use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteMetric, RouteType};
use netlink_packet_route::rule::{RuleAttribute, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{NetlinkError, RouteSocket};

/// `RTN_*` route types (rtnetlink.h), as the XDP program's `struct mirror_route` holds them.
pub mod kind {
    /// A gateway or direct route.
    pub const UNICAST: u8 = 1;
    /// One of the host's own addresses.
    pub const LOCAL: u8 = 2;
    /// A broadcast address.
    pub const BROADCAST: u8 = 3;
    /// An anycast address of the host (IPv6 subnet-router anycast).
    pub const ANYCAST: u8 = 4;
    /// Multicast.
    pub const MULTICAST: u8 = 5;
    /// Silently discarded.
    pub const BLACKHOLE: u8 = 6;
    /// Host unreachable.
    pub const UNREACHABLE: u8 = 7;
    /// Administratively prohibited.
    pub const PROHIBIT: u8 = 8;
    /// Not in this table: the lookup continues with the next rule.
    pub const THROW: u8 = 9;
}

/// One route, as the kernel reports it (`RTM_NEWROUTE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination prefix (the family's zero address for a default route).
    pub dst: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
    /// Routing table (`RTA_TABLE`, else the header's).
    pub table: u32,
    /// `RTN_*` ([`kind`]).
    pub kind: u8,
    /// The TOS selector (0 for almost every route).
    pub tos: u8,
    /// Metric (`RTA_PRIORITY`): the lowest wins among routes to one prefix.
    pub priority: u32,
    /// Output device (`RTA_OIF`), 0 if none.
    pub oif: u32,
    /// Gateway (`RTA_GATEWAY`), if any.
    pub gateway: Option<IpAddr>,
    /// `RTAX_HOPLIMIT`, 0 if not set.
    pub hop_limit: u8,
    /// `RTAX_MTU`, 0 if not set.
    pub mtu: u32,
    /// Several next hops (`RTA_MULTIPATH`), a nexthop object (`RTA_NH_ID`) or a lightweight
    /// tunnel (`RTA_ENCAP`): the mirror leaves these to the kernel.
    pub complex: bool,
}

impl Route {
    /// Reads a route message; `None` for a family other than IPv4/IPv6 or a cloned/cached entry.
    pub fn from_message(message: &RouteMessage) -> Option<Route> {
        let header = &message.header;
        let dst_zero: IpAddr = match header.address_family {
            AddressFamily::Inet => std::net::Ipv4Addr::UNSPECIFIED.into(),
            AddressFamily::Inet6 => std::net::Ipv6Addr::UNSPECIFIED.into(),
            _ => return None,
        };
        let mut route = Route {
            dst: dst_zero,
            prefix_len: header.destination_prefix_length,
            table: u32::from(header.table),
            kind: u8::from(header.kind),
            tos: header.tos,
            priority: 0,
            oif: 0,
            gateway: None,
            hop_limit: 0,
            mtu: 0,
            complex: false,
        };
        if header.kind == RouteType::Unspec {
            return None;
        }
        for attribute in &message.attributes {
            match attribute {
                RouteAttribute::Destination(a) => route.dst = route_ip(a)?,
                RouteAttribute::Gateway(a) => route.gateway = route_ip(a),
                RouteAttribute::Oif(i) => route.oif = *i,
                RouteAttribute::Priority(p) => route.priority = *p,
                RouteAttribute::Table(t) => route.table = *t,
                RouteAttribute::Metrics(metrics) => {
                    for metric in metrics {
                        match metric {
                            RouteMetric::Hoplimit(h) => route.hop_limit = u8::try_from(*h).unwrap_or(u8::MAX),
                            RouteMetric::Mtu(m) => route.mtu = *m,
                            _ => {}
                        }
                    }
                }
                RouteAttribute::MultiPath(_)
                | RouteAttribute::NhId(_)
                | RouteAttribute::Encap(_)
                | RouteAttribute::Via(_) => route.complex = true,
                _ => {}
            }
        }
        Some(route)
    }
}

fn route_ip(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// One neighbour entry, as the kernel reports it (`RTM_NEWNEIGH` / `RTM_DELNEIGH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbour {
    /// Interface index.
    pub index: u32,
    /// The neighbour's address.
    pub ip: IpAddr,
    /// Its MAC, when the entry is one Linux transmits to: REACHABLE, STALE, DELAY, PROBE,
    /// PERMANENT or NOARP, with a 6-byte link-layer address. `None` for INCOMPLETE, FAILED,
    /// NONE, or an entry without an address.
    pub usable_mac: Option<[u8; 6]>,
}

impl Neighbour {
    /// Reads a neighbour message; `None` without a destination address.
    pub fn from_message(message: &NeighbourMessage) -> Option<Neighbour> {
        let mut ip = None;
        let mut mac = None;
        for attribute in &message.attributes {
            match attribute {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => ip = Some(IpAddr::V4(*v4)),
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => ip = Some(IpAddr::V6(*v6)),
                NeighbourAttribute::LinkLayerAddress(lladdr) => mac = <[u8; 6]>::try_from(lladdr.as_slice()).ok(),
                _ => {}
            }
        }
        let usable = matches!(
            message.header.state,
            NeighbourState::Reachable
                | NeighbourState::Stale
                | NeighbourState::Delay
                | NeighbourState::Probe
                | NeighbourState::Permanent
                | NeighbourState::Noarp
        );
        Some(Neighbour {
            index: message.header.ifindex,
            ip: ip?,
            usable_mac: mac.filter(|_| usable),
        })
    }
}

/// Every IPv4 and IPv6 route of every table (cloned/cache entries are not dumped).
pub fn dump_routes() -> Result<Vec<Route>, NetlinkError> {
    dump_routes_with(&mut RouteSocket::open()?)
}

pub(crate) fn dump_routes_with(socket: &mut RouteSocket) -> Result<Vec<Route>, NetlinkError> {
    let mut routes = Vec::new();
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        let mut request = RouteMessage::default();
        request.header.address_family = family;
        for answer in socket.request(
            "route dump (RTM_GETROUTE)",
            RouteNetlinkMessage::GetRoute(request),
            true,
        )? {
            if let RouteNetlinkMessage::NewRoute(m) = answer {
                routes.extend(Route::from_message(&m));
            }
        }
    }
    Ok(routes)
}

/// Every IPv4 and IPv6 neighbour entry of every interface.
pub fn dump_neighbours() -> Result<Vec<Neighbour>, NetlinkError> {
    dump_neighbours_with(&mut RouteSocket::open()?)
}

pub(crate) fn dump_neighbours_with(socket: &mut RouteSocket) -> Result<Vec<Neighbour>, NetlinkError> {
    let mut entries = Vec::new();
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        let mut request = NeighbourMessage::default();
        request.header.family = family;
        for answer in socket.request(
            "neighbour dump (RTM_GETNEIGH)",
            RouteNetlinkMessage::GetNeighbour(request),
            true,
        )? {
            if let RouteNetlinkMessage::NewNeighbour(m) = answer {
                entries.extend(Neighbour::from_message(&m));
            }
        }
    }
    Ok(entries)
}

/// The policy rules (`ip rule`) that are not Linux's defaults (`0: lookup local`, `32766:
/// lookup main`, `32767: lookup default`), as short descriptions: with any, the host mirror's
/// "local, then main, then default" is an approximation.
pub fn non_default_rules() -> Result<Vec<String>, NetlinkError> {
    let mut socket = RouteSocket::open()?;
    let mut found = Vec::new();
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        let mut request = RuleMessage::default();
        request.header.family = family;
        for answer in socket.request("rule dump (RTM_GETRULE)", RouteNetlinkMessage::GetRule(request), true)? {
            if let RouteNetlinkMessage::NewRule(rule) = answer
                && let Some(text) = non_default_rule(&rule)
            {
                found.push(text);
            }
        }
    }
    Ok(found)
}

fn non_default_rule(rule: &RuleMessage) -> Option<String> {
    let mut priority = 0;
    let mut table = u32::from(rule.header.table);
    let mut selectors = rule.header.src_len != 0 || rule.header.dst_len != 0 || rule.header.tos != 0;
    for attribute in &rule.attributes {
        match attribute {
            RuleAttribute::Priority(p) => priority = *p,
            RuleAttribute::Table(t) => table = *t,
            RuleAttribute::Protocol(_) | RuleAttribute::SuppressPrefixLen(_) => {}
            _ => selectors = true,
        }
    }
    let default = !selectors && matches!((priority, table), (0, 255) | (32766, 254) | (32767, 253));
    (!default).then(|| format!("{priority}: table {table}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::route::RouteNextHop;

    fn route_message(kind: RouteType, attributes: Vec<RouteAttribute>) -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.header.destination_prefix_length = 24;
        m.header.table = 254;
        m.header.kind = kind;
        m.attributes = attributes;
        m
    }

    #[test]
    fn a_route_message_gives_its_type_metrics_and_next_hop() {
        let m = route_message(
            RouteType::Unicast,
            vec![
                RouteAttribute::Destination(RouteAddress::Inet("198.19.6.0".parse().unwrap())),
                RouteAttribute::Gateway(RouteAddress::Inet("198.18.0.2".parse().unwrap())),
                RouteAttribute::Oif(3),
                RouteAttribute::Priority(100),
                RouteAttribute::Metrics(vec![RouteMetric::Hoplimit(9), RouteMetric::Mtu(1400)]),
            ],
        );
        let r = Route::from_message(&m).unwrap();
        assert_eq!(
            (r.dst, r.prefix_len, r.table, r.kind, r.oif, r.priority),
            ("198.19.6.0".parse().unwrap(), 24, 254, kind::UNICAST, 3, 100)
        );
        assert_eq!(
            (r.gateway, r.hop_limit, r.mtu, r.complex),
            (Some("198.18.0.2".parse().unwrap()), 9, 1400, false)
        );

        let multipath = route_message(
            RouteType::Unicast,
            vec![RouteAttribute::MultiPath(vec![RouteNextHop::default()])],
        );
        assert!(
            Route::from_message(&multipath).unwrap().complex,
            "several next hops: the kernel's"
        );
        let blackhole = route_message(RouteType::BlackHole, vec![RouteAttribute::Table(254)]);
        assert_eq!(Route::from_message(&blackhole).unwrap().kind, kind::BLACKHOLE);
        assert_eq!(Route::from_message(&route_message(RouteType::Unspec, vec![])), None);
    }

    #[test]
    fn only_linux_default_rules_are_default() {
        let rule = |priority: u32, table: u32, extra: Option<RuleAttribute>| {
            let mut m = RuleMessage::default();
            m.header.family = AddressFamily::Inet;
            m.attributes = vec![RuleAttribute::Priority(priority), RuleAttribute::Table(table)];
            m.attributes.extend(extra);
            m
        };
        assert_eq!(non_default_rule(&rule(0, 255, None)), None);
        assert_eq!(non_default_rule(&rule(32766, 254, None)), None);
        assert_eq!(non_default_rule(&rule(32767, 253, None)), None);
        assert_eq!(
            non_default_rule(&rule(100, 254, None)).as_deref(),
            Some("100: table 254")
        );
        assert_eq!(
            non_default_rule(&rule(32766, 100, None)).as_deref(),
            Some("32766: table 100")
        );
        let marked = rule(32766, 254, Some(RuleAttribute::FwMark(1)));
        assert!(non_default_rule(&marked).is_some(), "a selector makes it a policy rule");
    }
}
