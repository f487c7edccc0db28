//! The neighbour table's MAC for an address (`RTM_GETNEIGH`).

use std::net::IpAddr;

use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{NetlinkError, RouteSocket};

/// The MAC the neighbour table holds for `ip` on interface `index`, if it has a usable one
/// (any state but `INCOMPLETE` and `FAILED`, which have no address to use), as
/// `ip neigh show to IP dev IF` would list it.
pub fn neighbour_mac(index: u32, ip: IpAddr) -> Result<Option<[u8; 6]>, NetlinkError> {
    let mut request = NeighbourMessage::default();
    request.header.family = match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    // The whole family's table: the kernel filters dumps by an NDA_IFINDEX attribute, not by
    // the header's index; the interface is checked below.
    let answers = RouteSocket::open()?.request(
        "neighbour dump (RTM_GETNEIGH)",
        RouteNetlinkMessage::GetNeighbour(request),
        true,
    )?;
    Ok(answers.iter().find_map(|m| match m {
        RouteNetlinkMessage::NewNeighbour(n) => usable_mac(n, index, ip),
        _ => None,
    }))
}

fn usable_mac(entry: &NeighbourMessage, index: u32, ip: IpAddr) -> Option<[u8; 6]> {
    if entry.header.ifindex != index
        || matches!(entry.header.state, NeighbourState::Incomplete | NeighbourState::Failed)
    {
        return None;
    }
    let mut destination = None;
    let mut mac = None;
    for attribute in &entry.attributes {
        match attribute {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => destination = Some(IpAddr::V4(*v4)),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => destination = Some(IpAddr::V6(*v6)),
            NeighbourAttribute::LinkLayerAddress(lladdr) => mac = <[u8; 6]>::try_from(lladdr.as_slice()).ok(),
            _ => {}
        }
    }
    (destination == Some(ip)).then_some(mac).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_complete_entry_for_the_address_and_interface_counts() {
        let ip: IpAddr = "198.18.0.2".parse().unwrap();
        let mut entry = NeighbourMessage::default();
        entry.header.ifindex = 3;
        entry.header.state = NeighbourState::Permanent;
        entry.attributes = vec![
            NeighbourAttribute::Destination(NeighbourAddress::Inet("198.18.0.2".parse().unwrap())),
            NeighbourAttribute::LinkLayerAddress(vec![2, 0xaf, 0, 0, 0, 2]),
        ];
        assert_eq!(usable_mac(&entry, 3, ip), Some([2, 0xaf, 0, 0, 0, 2]));
        assert_eq!(usable_mac(&entry, 4, ip), None, "another interface");
        assert_eq!(
            usable_mac(&entry, 3, "198.18.0.3".parse().unwrap()),
            None,
            "another address"
        );
        entry.header.state = NeighbourState::Failed;
        assert_eq!(usable_mac(&entry, 3, ip), None, "a failed entry has no usable MAC");
    }
}
