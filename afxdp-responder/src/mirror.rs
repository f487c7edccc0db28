//! The host mirror: what the kernel's output route lookup and neighbour resolution would decide
//! for a reply, as the XDP program's `mirror_routes` and `mirror_neighs` maps hold it
//! (`redirect-ebpf/redirect.h`, `reply_path.h`).
//!
//! The program asks the kernel's FIB first; the kernel refuses to answer while forwarding is off
//! on the interface (the default on every host that is not a router), and then the program
//! consults these maps. They are built from rtnetlink dumps and kept current from
//! `RTM_NEWROUTE`/`RTM_DELROUTE` and `RTM_NEWNEIGH`/`RTM_DELNEIGH` notifications (the monitor
//! loop in `app`). This module turns the kernel's routes and neighbour entries into the maps'
//! entries; it does no I/O. See docs/decisions.md §16 for what the mirror approximates.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::netlink::route::{Neighbour, Route, kind};

/// The routing tables the default `ip rule`s consult, in their order: local, main, default.
pub const TABLES: [u32; 3] = [255, 254, 253];
/// `MIRROR_ROUTE_KERNEL`: a route the program leaves to the kernel (multipath, nexthop object,
/// lightweight tunnel, unknown type).
pub const ROUTE_KERNEL: u8 = 0xff;

/// `struct mirror_route_key` without its prefix length: family, table, pad, address.
pub type RouteKey = [u8; 20];
/// `struct mirror_route`: type, hop_limit, gateway, pad, ifindex, mtu, via.
pub type RouteValue = [u8; 28];
/// `struct mirror_neigh_key`: ifindex, family, pad, address.
pub type NeighKey = [u8; 24];
/// `struct mirror_neigh`: MAC, pad.
pub type NeighValue = [u8; 8];

/// The entries of `mirror_routes`: (LPM prefix length = 32 + the route's, key) → value. One
/// entry per (family, table, prefix): the route Linux would pick for it (the lowest metric; for
/// IPv6, whose replies are routed with the ingress device as output interface, a route by one
/// of the `served` devices first). Routes with a TOS selector and tables other than
/// [`TABLES`] are left out.
pub fn route_entries(routes: &[Route], served: &[u32]) -> BTreeMap<(u32, RouteKey), RouteValue> {
    let mut best: BTreeMap<(u32, RouteKey), &Route> = BTreeMap::new();
    for route in routes {
        if !TABLES.contains(&route.table) || route.tos != 0 {
            continue;
        }
        let key = (32 + u32::from(route.prefix_len), route_key(route));
        let rank = |r: &Route| (r.dst.is_ipv6() && !served.contains(&r.oif), r.priority);
        match best.get(&key) {
            Some(current) if rank(current) <= rank(route) => {}
            _ => {
                best.insert(key, route);
            }
        }
    }
    best.into_iter().map(|(key, route)| (key, route_value(route))).collect()
}

fn family(ip: IpAddr) -> u8 {
    if ip.is_ipv6() { 6 } else { 4 }
}

fn addr_bytes(ip: IpAddr) -> [u8; 16] {
    let mut bytes = [0; 16];
    match ip {
        IpAddr::V4(v4) => bytes[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => bytes = v6.octets(),
    }
    bytes
}

fn route_key(route: &Route) -> RouteKey {
    let mut key = [0; 20];
    key[0] = family(route.dst);
    key[1] = route.table as u8; // one of TABLES
    key[4..].copy_from_slice(&addr_bytes(route.dst));
    key
}

fn route_value(route: &Route) -> RouteValue {
    let mut value = [0; 28];
    let known = (kind::UNICAST..=kind::THROW).contains(&route.kind);
    value[0] = if route.complex || !known {
        ROUTE_KERNEL
    } else {
        route.kind
    };
    value[1] = route.hop_limit;
    if let Some(gateway) = route.gateway {
        value[2] = 1;
        value[12..].copy_from_slice(&addr_bytes(gateway));
    }
    value[4..8].copy_from_slice(&route.oif.to_ne_bytes());
    value[8..12].copy_from_slice(&route.mtu.to_ne_bytes());
    value
}

/// The `mirror_neighs` key of `entry`, and its value when Linux would transmit to it (`None`:
/// the entry must not be in the map).
pub fn neighbour_entry(entry: &Neighbour) -> (NeighKey, Option<NeighValue>) {
    let mut key = [0; 24];
    key[..4].copy_from_slice(&entry.index.to_ne_bytes());
    key[4] = family(entry.ip);
    key[8..].copy_from_slice(&addr_bytes(entry.ip));
    let value = entry
        .usable_mac
        .filter(|mac| *mac != [0; 6] && mac[0] & 1 == 0)
        .map(|mac| {
            let mut value = [0; 8];
            value[..6].copy_from_slice(&mac);
            value
        });
    (key, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(dst: &str, prefix_len: u8, table: u32, kind: u8, priority: u32, oif: u32) -> Route {
        Route {
            dst: dst.parse().unwrap(),
            prefix_len,
            table,
            kind,
            tos: 0,
            priority,
            oif,
            gateway: None,
            hop_limit: 0,
            mtu: 0,
            complex: false,
        }
    }

    #[test]
    fn one_entry_per_prefix_with_the_lowest_metric_and_the_layout_of_redirect_h() {
        let mut via = route("0.0.0.0", 0, 254, kind::UNICAST, 100, 7);
        via.gateway = Some("198.18.0.254".parse().unwrap());
        via.hop_limit = 9;
        via.mtu = 1400;
        let worse = route("0.0.0.0", 0, 254, kind::UNICAST, 200, 8);
        let entries = route_entries(&[worse, via], &[7]);
        assert_eq!(entries.len(), 1);
        let ((plen, key), value) = entries.iter().next().unwrap();
        assert_eq!(*plen, 32);
        assert_eq!(key[..2], [4, 254]);
        assert_eq!(value[..4], [kind::UNICAST, 9, 1, 0]);
        assert_eq!(u32::from_ne_bytes(value[4..8].try_into().unwrap()), 7);
        assert_eq!(u32::from_ne_bytes(value[8..12].try_into().unwrap()), 1400);
        assert_eq!(value[12..16], [198, 18, 0, 254]);
    }

    #[test]
    fn other_tables_tos_routes_and_complex_routes_are_not_mirrored_as_unicast() {
        let other_table = route("198.18.0.0", 16, 100, kind::UNICAST, 0, 7);
        let mut tos = route("198.18.0.0", 16, 254, kind::UNICAST, 0, 7);
        tos.tos = 0x10;
        let mut multipath = route("2001:db8::", 32, 254, kind::UNICAST, 0, 0);
        multipath.complex = true;
        let entries = route_entries(&[other_table, tos, multipath], &[7]);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries.values().next().unwrap()[0], ROUTE_KERNEL);
    }

    #[test]
    fn ipv6_prefers_a_route_by_the_served_device() {
        let elsewhere = route("fe80::", 64, 254, kind::UNICAST, 100, 3);
        let here = route("fe80::", 64, 254, kind::UNICAST, 256, 7);
        let entries = route_entries(&[elsewhere, here], &[7]);
        let value = entries.values().next().unwrap();
        assert_eq!(u32::from_ne_bytes(value[4..8].try_into().unwrap()), 7);
    }

    #[test]
    fn only_a_unicast_mac_of_a_usable_entry_goes_into_the_map() {
        let mut entry = Neighbour {
            index: 7,
            ip: "198.18.0.2".parse().unwrap(),
            usable_mac: Some([2, 0, 0, 0, 0, 2]),
        };
        let (key, value) = neighbour_entry(&entry);
        assert_eq!(key[..4], 7u32.to_ne_bytes());
        assert_eq!(key[4..8], [4, 0, 0, 0]);
        assert_eq!(key[8..12], [198, 18, 0, 2]);
        assert_eq!(value, Some([2, 0, 0, 0, 0, 2, 0, 0]));
        entry.usable_mac = None;
        assert_eq!(neighbour_entry(&entry).1, None);
        entry.usable_mac = Some([0; 6]);
        assert_eq!(neighbour_entry(&entry).1, None, "all-zero");
        entry.usable_mac = Some([1, 0, 0x5e, 0, 0, 1]);
        assert_eq!(neighbour_entry(&entry).1, None, "multicast");
    }
}
