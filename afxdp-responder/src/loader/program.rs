//! Loading the embedded XDP objects into the kernel and filling their maps.
//!
//! [`EngineProgram`] is the program of one [`Engine`]; [`PassProgram`] and [`CaptureProgram`]
//! are the helpers of the lab and of the load generator. All of them are loaded by
//! [`load_object`] and fill the maps of `redirect-ebpf/maps.h` with the layouts described in
//! [`super`].

use std::collections::BTreeMap;
use std::{fmt, net::IpAddr, os::fd::BorrowedFd};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, MapError, PerCpuArray, XskMap, lpm_trie::Key as LpmKey, lpm_trie::LpmTrie},
    programs::Xdp,
};

use super::attach::Attacher;
use super::error::{LoaderError, errno_of, hint_for, map_error, program_error};
use super::{OWNED_ADDRS_MAX_ENTRIES, XSKS_MAX_ENTRIES};
use crate::mirror;
use crate::netlink::route::{Neighbour, Route};
use crate::options::{Engine, XdpMode};
use crate::policy::Cidr;
use echo_wire::respond::ReplyPolicy;
use echo_wire::{ethernet, ipv4, ipv6};

// Map names and counter indexes: must match redirect-ebpf/maps.h.
const MAP_XSKS: &str = "xsks";
const MAP_OWNED_ADDRS: &str = "owned_addrs";
const MAP_CONFIG: &str = "config";
pub(super) const MAP_COUNTERS: &str = "counters";
pub(super) const COUNTER_HANDLED: u32 = 0;
pub(super) const COUNTER_NO_SOCKET: u32 = 1;
pub(super) const COUNTER_PASSED: u32 = 2;
pub(super) const COUNTER_BAD_CHECKSUM: u32 = 3;
/// The first `COUNTER_FIB_*` pass slot; the six reasons follow in [`FibPasses`]'s field order.
pub(super) const COUNTER_FIB_FIRST: u32 = 4;
/// `COUNTER_MIRROR_HANDLED`: handled on the host mirror's verdict (forwarding off).
pub(super) const COUNTER_MIRROR_HANDLED: u32 = 10;
/// The first `COUNTER_MIRROR_*` pass slot; the six reasons follow in [`FibPasses`]'s order.
pub(super) const COUNTER_MIRROR_FIRST: u32 = 11;
// Must match redirect-ebpf/redirect.h and reply_path.h (the host mirror).
const MAP_MIRROR_ROUTES: &str = "mirror_routes";
const MAP_MIRROR_NEIGHS: &str = "mirror_neighs";
/// `MIRROR_ROUTES_MAX_ENTRIES` of redirect.h.
pub const MIRROR_ROUTES_MAX_ENTRIES: usize = 16384;
// Must match redirect-ebpf/policy.h.
const MAP_HOST_POLICY: &str = "host_policy";
const MAP_ALLOW_FROM: &str = "allow_from";
const MAP_DENY_FROM: &str = "deny_from";
pub(super) const MAP_POLICY_COUNTERS: &str = "policy_counters";
pub(super) const POLICY_IGNORE_ALL: u32 = 0;
pub(super) const POLICY_DENIED: u32 = 1;
pub(super) const POLICY_NOT_ALLOWED: u32 = 2;
pub(super) const POLICY_RATE_LIMITED: u32 = 3;
/// Entries of each of `allow_from` and `deny_from` (`POLICY_LPM_MAX_ENTRIES`).
pub const POLICY_LPM_MAX_ENTRIES: usize = crate::policy::MAX_SOURCE_RULES;

/// `struct owned_key` from maps.h, as bytes.
type OwnedKey = [u8; 20];
/// `struct redirect_config` from maps.h, as bytes.
/// mac (6), ttl, hop_limit, flow_flags, pad (7), flow_key (2 x u64, host order).
type ConfigValue = [u8; 32];
/// `struct host_policy` from policy.h, as bytes: ignore_v4, ignore_v6, allow_list, pad, pad2
/// (4 bytes), rate_interval_ns (u64, host order), rate_burst_ns (u64).
type HostPolicyValue = [u8; 24];
/// `struct policy_lpm_key` from policy.h without its prefix length: the address.
type LpmAddr = [u8; 16];

/// Which source list of the XDP program a CIDR goes into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceList {
    /// `--allow-from`: once it has an entry, only listed sources are handled.
    Allow,
    /// `--deny-from`: listed sources are passed to the kernel (before the allow list).
    Deny,
}

/// An embedded object: its file name (for messages), its bytes, and the name of its XDP function.
#[derive(Debug, Clone, Copy)]
pub(super) struct Object {
    pub(super) file: &'static str,
    pub(super) bytes: &'static [u8],
    pub(super) program: &'static str,
}

/// The compiled program of `engine` (`redirect-ebpf/*.c`, embedded by the `redirect-ebpf` crate).
fn engine_object(engine: Engine) -> Object {
    let (file, bytes): (&str, &'static [u8]) = match engine {
        Engine::AfXdp => ("redirect.o", redirect_ebpf::REDIRECT),
        Engine::XdpTx => ("echo_tx.o", redirect_ebpf::ECHO_TX),
        Engine::Drop => ("echo_drop.o", redirect_ebpf::ECHO_DROP),
    };
    Object {
        file,
        bytes,
        program: engine.program_name(),
    }
}

/// `redirect-ebpf/flood_replies.c`: redirects echo replies to the flood's sockets
/// ([`CaptureProgram`]).
const CAPTURE_OBJECT: Object = Object {
    file: "flood_replies.o",
    bytes: redirect_ebpf::FLOOD_REPLIES,
    program: CaptureProgram::NAME,
};

/// Loads an embedded object and its XDP program into the kernel (through the verifier).
pub(super) fn load_object(object: Object) -> Result<Ebpf, LoaderError> {
    let mut ebpf = EbpfLoader::new()
        .load(object.bytes)
        .map_err(|source| LoaderError::Object {
            object: object.file,
            hint: hint_for(&source),
            source: Box::new(source),
        })?;
    let name = object.program;
    xdp_program(&mut ebpf, name)?
        .load()
        .map_err(|source| program_error(format!("loading `{name}` into the kernel (verifier)"), source))?;
    Ok(ebpf)
}

/// The XDP program `name` of a loaded object.
pub(super) fn xdp_program<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Xdp, LoaderError> {
    ebpf.program_mut(name)
        .ok_or(LoaderError::Missing { kind: "program", name })?
        .try_into()
        .map_err(|source| program_error(format!("using `{name}` as XDP"), source))
}

/// Takes map `name` out of `ebpf` as the typed map `M`.
pub(super) fn take_map<M>(ebpf: &mut Ebpf, name: &'static str) -> Result<M, LoaderError>
where
    M: TryFrom<aya::maps::Map, Error = MapError>,
{
    let map = ebpf.take_map(name).ok_or(LoaderError::Missing { kind: "map", name })?;
    M::try_from(map).map_err(|source| map_error(name, "checking the key/value layout".into(), source))
}

/// The `xsks` XSKMAP of a loaded object, checked to have [`XSKS_MAX_ENTRIES`] slots.
fn take_xsks(ebpf: &mut Ebpf) -> Result<XskMap<MapData>, LoaderError> {
    let xsks: XskMap<MapData> = take_map(ebpf, MAP_XSKS)?;
    if xsks.len() != XSKS_MAX_ENTRIES {
        return Err(LoaderError::Missing {
            kind: "64-entry XSKMAP",
            name: MAP_XSKS,
        });
    }
    Ok(xsks)
}

/// Puts `socket_fd` into slot `queue_id` of `xsks`.
fn register(xsks: &mut XskMap<MapData>, queue_id: u32, socket_fd: BorrowedFd<'_>) -> Result<(), LoaderError> {
    check_queue(queue_id)?;
    xsks.set(queue_id, socket_fd, 0).map_err(|source| {
        let hint = if errno_of(&source) == Some(libc::EOPNOTSUPP) {
            ": the fd must be an AF_XDP socket that is already bound (bind()) with an RX ring"
        } else {
            hint_for(&source)
        };
        LoaderError::Map {
            map: MAP_XSKS,
            action: format!("registering the socket of queue {queue_id}"),
            hint,
            source: Box::new(source),
        }
    })
}

fn check_queue(queue_id: u32) -> Result<(), LoaderError> {
    if queue_id >= XSKS_MAX_ENTRIES {
        return Err(LoaderError::QueueOutOfRange {
            queue_id,
            max: XSKS_MAX_ENTRIES,
        });
    }
    Ok(())
}

/// Rejects addresses that an echo request we answer can never be sent to: everything that is
/// not unicast by [`ipv4::is_unicast`] / [`ipv6::is_unicast`], with the reason in words.
fn validate_owned(addr: IpAddr) -> Result<(), LoaderError> {
    let unicast = match addr {
        IpAddr::V4(v4) => ipv4::is_unicast(v4),
        IpAddr::V6(v6) => ipv6::is_unicast(v6),
    };
    if unicast {
        return Ok(());
    }
    let reason = match addr {
        IpAddr::V4(v4) if v4.is_broadcast() => {
            "broadcast pings are left to the kernel (net.ipv4.icmp_echo_ignore_broadcasts)"
        }
        IpAddr::V4(v4) if v4.octets()[0] == 0 => "0.0.0.0/8 is not an address of a host",
        IpAddr::V6(v6) if v6.is_unspecified() => ":: is not an address of a host",
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => {
            "v4-mapped IPv6 addresses never arrive on the wire; give the IPv4 address"
        }
        _ if addr.is_loopback() => "loopback addresses never arrive on a network interface",
        _ => "multicast pings are left to the kernel",
    };
    Err(LoaderError::InvalidAddress { addr, reason })
}

/// `struct owned_key` (maps.h) for `(vlan_id, addr)`.
fn owned_key(vlan_id: u16, addr: IpAddr) -> Result<OwnedKey, LoaderError> {
    if vlan_id > 4094 {
        return Err(LoaderError::InvalidVlan { vlan_id });
    }
    let octets = match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    let mut key = [0u8; 20];
    key[0..2].copy_from_slice(&vlan_id.to_ne_bytes());
    // key[2..4] is padding and stays zero.
    key[4..20].copy_from_slice(&octets);
    Ok(key)
}

/// `struct redirect_config` (maps.h) for `mac` and the reply TTL / hop limit of `policy`.
fn config_value(mac: [u8; 6], policy: ReplyPolicy) -> ConfigValue {
    let mut value: ConfigValue = [0; 32];
    value[..6].copy_from_slice(&mac);
    value[6] = policy.ipv4_ttl;
    value[7] = policy.ipv6_hop_limit;
    let flow = policy.flow_label;
    value[8] = u8::from(flow.reflect) | (u8::from(flow.auto) << 1) | (u8::from(flow.state_ranges) << 2);
    value[16..24].copy_from_slice(&flow.key[0].to_ne_bytes());
    value[24..32].copy_from_slice(&flow.key[1].to_ne_bytes());
    value
}

/// Adds `(vlan_id, addr)` to an `owned_addrs` map, held by device `ifindex` (0: the interface
/// the program is attached to).
fn insert_owned(
    map: &mut HashMap<MapData, OwnedKey, u32>,
    vlan_id: u16,
    addr: IpAddr,
    ifindex: u32,
) -> Result<(), LoaderError> {
    validate_owned(addr)?;
    let key = owned_key(vlan_id, addr)?;
    map.insert(key, ifindex, 0)
        .map_err(|source| map_error(MAP_OWNED_ADDRS, format!("adding {addr} on VLAN {vlan_id}"), source))
}

/// The counters of any engine's program, summed over all CPUs, since it was loaded: the one
/// shape in which every engine reports, so that they can be compared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineCounters {
    /// Owned echo requests the engine handled: redirected to an AF_XDP socket (afxdp), answered
    /// with `XDP_TX` (xdp-tx), dropped (drop).
    pub handled: u64,
    /// Frames passed to the kernel: not an owned echo request (or not in a form the engine
    /// handles), or an owned one whose reply the kernel's FIB leaves to the kernel (the sum of
    /// [`EngineCounters::fib`] is included).
    pub passed: u64,
    /// afxdp only: owned echo requests that arrived on a queue with no socket in `xsks`, passed
    /// to the kernel instead. Non-zero while the responder runs means a queue is not served.
    pub no_socket: u64,
    /// xdp-tx only: owned echo requests with a wrong IPv4 header or ICMP checksum, dropped as
    /// the kernel drops them. (The afxdp engine's workers count these themselves.)
    pub bad_checksum: u64,
    /// afxdp and xdp-tx: owned echo requests passed to the kernel because of the FIB lookup for
    /// their reply, by reason (`redirect-ebpf/reply_path.h`).
    pub fib: FibPasses,
    /// afxdp and xdp-tx: owned echo requests handled on the host mirror's verdict, because the
    /// kernel refuses the FIB lookup while forwarding is disabled on the interface: a unicast
    /// route by the interface and a usable neighbour entry (`crate::mirror`). Included in
    /// `handled` (or `no_socket`). See docs/parity.md.
    pub mirror_handled: u64,
    /// afxdp and xdp-tx: owned echo requests the host mirror passed to the kernel (forwarding
    /// off), by the same reasons as [`EngineCounters::fib`] (their sum is in `passed`).
    pub mirror: FibPasses,
    /// Owned echo requests passed to the kernel because its `echo_ignore_all` sysctl is set
    /// (included in `passed`).
    pub ignored: u64,
    /// Owned echo requests passed because their source is in `--deny-from` (in `passed`).
    pub denied: u64,
    /// Owned echo requests passed because `--allow-from` does not list their source (in
    /// `passed`).
    pub not_allowed: u64,
    /// Owned echo requests passed because their source exceeded `--rate-limit-per-source` (in
    /// `passed`).
    pub rate_limited: u64,
}

/// Owned echo requests the FIB lookup for the reply passed to the kernel, by reason (the
/// `COUNTER_FIB_*` slots of `redirect-ebpf/redirect.h`, in that order).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FibPasses {
    /// The next hop has no neighbour entry yet; the kernel resolves it (ARP / NS) first.
    pub no_neigh: u64,
    /// The reply would not take a unicast route: to our own address, a broadcast address, an
    /// IPv6 link-local address, or a destination without any route.
    pub not_unicast: u64,
    /// A blackhole, unreachable or prohibit route.
    pub no_route: u64,
    /// The reply is larger than the route's MTU; the kernel fragments it.
    pub frag_needed: u64,
    /// The reply would leave by another interface, or a VLAN the program does not know, or the
    /// frame was sent to a MAC the interface no longer has (after a MAC change).
    pub other_egress: u64,
    /// A lookup error, a lightweight-tunnel route, or no room for the metadata.
    pub other: u64,
}

impl From<FibPasses> for responder_json::FibPassed {
    /// The JSON shape (`fib_passed`, `mirror_passed`).
    fn from(p: FibPasses) -> Self {
        responder_json::FibPassed {
            no_neighbour: p.no_neigh,
            not_unicast: p.not_unicast,
            no_route: p.no_route,
            frag_needed: p.frag_needed,
            other_egress: p.other_egress,
            other: p.other,
        }
    }
}

impl FibPasses {
    /// No request passed for any reason.
    pub const ZERO: FibPasses = FibPasses {
        no_neigh: 0,
        not_unicast: 0,
        no_route: 0,
        frag_needed: 0,
        other_egress: 0,
        other: 0,
    };

    /// The reasons with their labels (kebab-case, as in the JSON and metrics output).
    pub fn by_reason(&self) -> [(&'static str, u64); 6] {
        [
            ("no-neighbour", self.no_neigh),
            ("not-unicast", self.not_unicast),
            ("no-route", self.no_route),
            ("frag-needed", self.frag_needed),
            ("other-egress", self.other_egress),
            ("other", self.other),
        ]
    }

    /// All of them.
    pub fn total(&self) -> u64 {
        self.by_reason().iter().map(|(_, n)| n).sum()
    }
}

/// One engine's XDP program, loaded, maps filled; attached with [`EngineProgram::attach`].
///
/// Dropping it detaches the program (if attached) and releases the program and its maps; the
/// kernel frees them once no socket or link refers to them any more.
pub struct EngineProgram {
    // Declared first so it is dropped first: detach before the program goes away.
    pub(super) attacher: Attacher,
    pub(super) engine: Engine,
    /// The afxdp engine's XSKMAP; `None` for the in-kernel engines.
    xsks: Option<XskMap<MapData>>,
    owned_addrs: HashMap<MapData, OwnedKey, u32>,
    counters: PerCpuArray<MapData, u64>,
    /// `config`: kept to follow the interface's MAC ([`EngineProgram::set_mac`]) and the
    /// reply TTL / hop limit ([`EngineProgram::set_reply_policy`]).
    config: Array<MapData, ConfigValue>,
    /// The MAC last written to `config`.
    mac: [u8; 6],
    host_policy: Array<MapData, HostPolicyValue>,
    host_policy_value: HostPolicyValue,
    allow_from: LpmTrie<MapData, LpmAddr, u32>,
    deny_from: LpmTrie<MapData, LpmAddr, u32>,
    policy_counters: PerCpuArray<MapData, u64>,
    /// The host mirror's maps and what was last written to them (afxdp and xdp-tx only).
    mirror: Option<MirrorMaps>,
    pub(super) ebpf: Ebpf,
}

/// `mirror_routes` and `mirror_neighs` (`redirect-ebpf/reply_path.h`), with a copy of the route
/// entries written, so that a re-read routing table changes only what differs.
struct MirrorMaps {
    routes: LpmTrie<MapData, mirror::RouteKey, mirror::RouteValue>,
    neighs: HashMap<MapData, mirror::NeighKey, mirror::NeighValue>,
    written: BTreeMap<(u32, mirror::RouteKey), mirror::RouteValue>,
}

impl fmt::Debug for EngineProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineProgram")
            .field("program", &self.engine.program_name())
            .field("attacher", &self.attacher)
            .finish_non_exhaustive()
    }
}

impl EngineProgram {
    /// Loads the AF_XDP engine's redirect program into the kernel and fills its maps: `config`
    /// with `mac`, `owned_addrs` with every address of `owned` on VLAN 0 (untagged and
    /// priority-tagged frames). The same as [`EngineProgram::load_engine`] with
    /// [`Engine::AfXdp`] and the default reply policy (which only xdp-tx uses).
    ///
    /// Needs root (CAP_BPF and CAP_NET_ADMIN). The program is verified here, so a verifier
    /// rejection shows up as an error of this call, with the verifier log.
    pub fn load(mac: [u8; 6], owned: &[IpAddr]) -> Result<Self, LoaderError> {
        Self::load_engine(Engine::AfXdp, mac, owned, ReplyPolicy::default())
    }

    /// Loads the program of `engine` and fills its maps: `config` with `mac` and the reply TTL
    /// and hop limit of `policy` (used by [`Engine::XdpTx`]; give the host's, see
    /// [`crate::iface::Interface::ipv4_default_ttl`]), `owned_addrs` with every address of
    /// `owned` on VLAN 0.
    pub fn load_engine(
        engine: Engine,
        mac: [u8; 6],
        owned: &[IpAddr],
        policy: ReplyPolicy,
    ) -> Result<Self, LoaderError> {
        if !ethernet::is_unicast_mac(&mac) || mac == [0; 6] {
            return Err(LoaderError::InvalidMac { mac });
        }
        if owned.len() > OWNED_ADDRS_MAX_ENTRIES as usize {
            return Err(LoaderError::TooManyAddresses {
                count: owned.len(),
                max: OWNED_ADDRS_MAX_ENTRIES,
            });
        }
        for &addr in owned {
            validate_owned(addr)?;
        }

        let mut ebpf = load_object(engine_object(engine))?;
        let xsks = if engine.uses_afxdp() {
            Some(take_xsks(&mut ebpf)?)
        } else {
            None
        };
        let owned_addrs: HashMap<MapData, OwnedKey, u32> = take_map(&mut ebpf, MAP_OWNED_ADDRS)?;
        let counters: PerCpuArray<MapData, u64> = take_map(&mut ebpf, MAP_COUNTERS)?;
        let mut config: Array<MapData, ConfigValue> = take_map(&mut ebpf, MAP_CONFIG)?;

        config
            .set(0, config_value(mac, policy), 0)
            .map_err(|source| map_error(MAP_CONFIG, "setting the interface MAC and reply TTL".into(), source))?;
        let host_policy: Array<MapData, HostPolicyValue> = take_map(&mut ebpf, MAP_HOST_POLICY)?;
        let allow_from: LpmTrie<MapData, LpmAddr, u32> = take_map(&mut ebpf, MAP_ALLOW_FROM)?;
        let deny_from: LpmTrie<MapData, LpmAddr, u32> = take_map(&mut ebpf, MAP_DENY_FROM)?;
        let policy_counters: PerCpuArray<MapData, u64> = take_map(&mut ebpf, MAP_POLICY_COUNTERS)?;
        let mirror = if matches!(engine, Engine::AfXdp | Engine::XdpTx) {
            Some(MirrorMaps {
                routes: take_map(&mut ebpf, MAP_MIRROR_ROUTES)?,
                neighs: take_map(&mut ebpf, MAP_MIRROR_NEIGHS)?,
                written: BTreeMap::new(),
            })
        } else {
            None
        };

        let mut this = Self {
            attacher: Attacher::default(),
            engine,
            xsks,
            owned_addrs,
            counters,
            mac,
            config,
            host_policy,
            host_policy_value: [0; 24],
            allow_from,
            deny_from,
            policy_counters,
            mirror,
            ebpf,
        };
        for &addr in owned {
            this.add_address(0, addr)?;
        }
        Ok(this)
    }

    /// Adds `(vlan_id, addr)` to `owned_addrs`: echo requests to `addr` in frames tagged with
    /// `vlan_id` (0 = untagged or priority-tagged) are handled from now on.
    ///
    /// The reply's route is looked up from the interface the request arrived on, which is right
    /// for untagged frames; for a VLAN, see [`EngineProgram::add_address_on`] (without it,
    /// tagged requests are passed to the kernel).
    pub fn add_address(&mut self, vlan_id: u16, addr: IpAddr) -> Result<(), LoaderError> {
        insert_owned(&mut self.owned_addrs, vlan_id, addr, 0)
    }

    /// Like [`EngineProgram::add_address`], for an address held by the device `ifindex` (the
    /// VLAN device, e.g. `eth0.100`, for `vlan_id` 100): the reply's FIB lookup starts from that
    /// device and the reply is sent only when the route leaves by it.
    pub fn add_address_on(&mut self, vlan_id: u16, addr: IpAddr, ifindex: u32) -> Result<(), LoaderError> {
        insert_owned(&mut self.owned_addrs, vlan_id, addr, ifindex)
    }

    /// Removes `(vlan_id, addr)` from `owned_addrs`; requests for it go to the kernel again.
    pub fn remove_address(&mut self, vlan_id: u16, addr: IpAddr) -> Result<(), LoaderError> {
        let key = owned_key(vlan_id, addr)?;
        self.owned_addrs
            .remove(&key)
            .map_err(|source| map_error(MAP_OWNED_ADDRS, format!("removing {addr} on VLAN {vlan_id}"), source))
    }

    /// Sets the interface MAC in `config` (after the interface's address changed): only frames
    /// sent to it are handled from now on, so a frame to the old MAC goes to the kernel, which
    /// drops it as another host's, as it would without the responder. The reply TTL and hop
    /// limit stay as they are.
    pub fn set_mac(&mut self, mac: [u8; 6]) -> Result<(), LoaderError> {
        if !ethernet::is_unicast_mac(&mac) || mac == [0; 6] {
            return Err(LoaderError::InvalidMac { mac });
        }
        let mut value = self
            .config
            .get(&0, 0)
            .map_err(|source| map_error(MAP_CONFIG, "reading the configuration".into(), source))?;
        value[..6].copy_from_slice(&mac);
        self.config
            .set(0, value, 0)
            .map_err(|source| map_error(MAP_CONFIG, "setting the interface MAC".into(), source))?;
        self.mac = mac;
        Ok(())
    }

    /// Writes the reply TTL, hop limit and flow-label policy of `policy` into the `config` map
    /// (what the xdp-tx engine puts in its replies; the other programs ignore them), e.g. after
    /// the host's sysctls changed.
    pub fn set_reply_policy(&mut self, policy: ReplyPolicy) -> Result<(), LoaderError> {
        self.config
            .set(0, config_value(self.mac, policy), 0)
            .map_err(|source| map_error(MAP_CONFIG, "updating the reply TTL and hop limit".into(), source))
    }

    /// Sets whether the program passes every IPv4 / IPv6 owned echo request to the kernel (the
    /// `echo_ignore_all` sysctls), in the `host_policy` map.
    pub fn set_ignore_all(&mut self, ipv4: bool, ipv6: bool) -> Result<(), LoaderError> {
        let mut value = self.host_policy_value;
        value[0] = u8::from(ipv4);
        value[1] = u8::from(ipv6);
        self.write_host_policy(value)
    }

    /// Adds `cidr` to a source list of the program. The first `--allow-from` entry turns the
    /// allow list on: from then on only listed sources are handled, the rest is passed.
    pub fn add_source_rule(&mut self, list: SourceList, cidr: Cidr) -> Result<(), LoaderError> {
        let (prefix, addr) = cidr.lpm_key();
        let (map, name) = match list {
            SourceList::Allow => (&mut self.allow_from, MAP_ALLOW_FROM),
            SourceList::Deny => (&mut self.deny_from, MAP_DENY_FROM),
        };
        map.insert(&LpmKey::new(prefix, addr), 0, 0)
            .map_err(|source| map_error(name, format!("adding {cidr}"), source))?;
        if list == SourceList::Allow && self.host_policy_value[2] == 0 {
            let mut value = self.host_policy_value;
            value[2] = 1;
            self.write_host_policy(value)?;
        }
        Ok(())
    }

    /// Limits each source to `per_second` owned echo requests per second with bursts of `burst`
    /// (`--rate-limit-per-source`); requests beyond it are passed to the kernel. 0: no limit.
    pub fn set_rate_limit(&mut self, per_second: u32, burst: u32) -> Result<(), LoaderError> {
        let mut value = self.host_policy_value;
        let interval = 1_000_000_000u64.checked_div(u64::from(per_second)).unwrap_or(0);
        let tolerance = interval * u64::from(burst.max(1) - 1);
        value[8..16].copy_from_slice(&interval.to_ne_bytes());
        value[16..24].copy_from_slice(&tolerance.to_ne_bytes());
        self.write_host_policy(value)
    }

    fn write_host_policy(&mut self, value: HostPolicyValue) -> Result<(), LoaderError> {
        if value == self.host_policy_value {
            return Ok(());
        }
        self.host_policy
            .set(0, value, 0)
            .map_err(|source| map_error(MAP_HOST_POLICY, "setting the host policy".into(), source))?;
        self.host_policy_value = value;
        Ok(())
    }

    /// The engine whose program this is.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The kernel's id of the loaded program (what `ip link` and `bpftool prog` show).
    pub fn program_id(&self) -> Result<u32, LoaderError> {
        let info = self
            .xdp()?
            .info()
            .map_err(|source| program_error("reading the program info".into(), source))?;
        Ok(info.id())
    }

    /// Registers the AF_XDP socket that serves RX queue `queue_id`: echo requests arriving on
    /// that queue are redirected to it from now on.
    ///
    /// The socket must already be bound to (this interface, `queue_id`) with an RX ring;
    /// otherwise the kernel refuses it (`EOPNOTSUPP`). The map keeps its own reference to the
    /// socket until [`EngineProgram::unregister_socket`] or until the program is dropped.
    pub fn register_socket(&mut self, queue_id: u32, socket_fd: BorrowedFd<'_>) -> Result<(), LoaderError> {
        let engine = self.engine;
        let xsks = self.xsks.as_mut().ok_or(LoaderError::NoSockets { engine })?;
        register(xsks, queue_id, socket_fd)
    }

    /// Removes the socket of RX queue `queue_id`; requests on that queue go to the kernel.
    pub fn unregister_socket(&mut self, queue_id: u32) -> Result<(), LoaderError> {
        check_queue(queue_id)?;
        let engine = self.engine;
        let xsks = self.xsks.as_mut().ok_or(LoaderError::NoSockets { engine })?;
        xsks.unset(queue_id).map_err(|source| {
            map_error(
                MAP_XSKS,
                format!("unregistering the socket of queue {queue_id}"),
                source,
            )
        })
    }

    /// Brings the host mirror's route map in line with `routes` (the kernel's routing tables,
    /// from a dump): `served` are the devices the program answers for (the interface, its VLAN
    /// devices). Only entries that differ are written or deleted. Returns how many changed; 0
    /// for an engine without a mirror (drop).
    pub fn sync_mirror_routes(&mut self, routes: &[Route], served: &[u32]) -> Result<usize, LoaderError> {
        let Some(maps) = self.mirror.as_mut() else {
            return Ok(0);
        };
        let wanted = mirror::route_entries(routes, served);
        if wanted.len() > MIRROR_ROUTES_MAX_ENTRIES {
            return Err(map_error(
                MAP_MIRROR_ROUTES,
                format!(
                    "mirroring {} routes (at most {MIRROR_ROUTES_MAX_ENTRIES})",
                    wanted.len()
                ),
                MapError::OutOfBounds {
                    index: wanted.len() as u32,
                    max_entries: MIRROR_ROUTES_MAX_ENTRIES as u32,
                },
            ));
        }
        let mut changed = 0;
        // Insert and update first, then delete: a prefix that stays is never missing.
        for (&(prefix_len, key), value) in &wanted {
            if maps.written.get(&(prefix_len, key)) != Some(value) {
                maps.routes
                    .insert(&LpmKey::new(prefix_len, key), value, 0)
                    .map_err(|source| map_error(MAP_MIRROR_ROUTES, "adding a route".into(), source))?;
                changed += 1;
            }
        }
        for (prefix_len, key) in maps.written.keys().filter(|k| !wanted.contains_key(*k)) {
            maps.routes
                .remove(&LpmKey::new(*prefix_len, *key))
                .map_err(|source| map_error(MAP_MIRROR_ROUTES, "removing a route".into(), source))?;
            changed += 1;
        }
        maps.written = wanted;
        Ok(changed)
    }

    /// Puts `entry` into the host mirror's neighbour map when Linux would transmit to it, and
    /// removes it otherwise (INCOMPLETE, FAILED, deleted). Entries of devices not in `served`
    /// are ignored.
    pub fn set_mirror_neighbour(&mut self, entry: &Neighbour, served: &[u32]) -> Result<(), LoaderError> {
        let Some(maps) = self.mirror.as_mut() else {
            return Ok(());
        };
        if !served.contains(&entry.index) {
            return Ok(());
        }
        let (key, value) = mirror::neighbour_entry(entry);
        match value {
            Some(value) => maps
                .neighs
                .insert(key, value, 0)
                .map_err(|source| map_error(MAP_MIRROR_NEIGHS, format!("adding the neighbour {}", entry.ip), source)),
            None => match maps.neighs.remove(&key) {
                Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
                Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
                Err(source) => Err(map_error(
                    MAP_MIRROR_NEIGHS,
                    format!("removing the neighbour {}", entry.ip),
                    source,
                )),
            },
        }
    }

    /// Replaces the host mirror's neighbour map with `entries` (a full dump): at start and after
    /// lost notifications.
    pub fn replace_mirror_neighbours(&mut self, entries: &[Neighbour], served: &[u32]) -> Result<(), LoaderError> {
        let Some(maps) = self.mirror.as_mut() else {
            return Ok(());
        };
        let wanted: std::collections::BTreeSet<mirror::NeighKey> = entries
            .iter()
            .filter(|e| served.contains(&e.index))
            .filter_map(|e| match mirror::neighbour_entry(e) {
                (key, Some(_)) => Some(key),
                _ => None,
            })
            .collect();
        let stale: Vec<mirror::NeighKey> = maps
            .neighs
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !wanted.contains(k))
            .collect();
        for key in stale {
            let _ = maps.neighs.remove(&key);
        }
        for entry in entries {
            self.set_mirror_neighbour(entry, served)?;
        }
        Ok(())
    }

    /// The counters, summed over all CPUs.
    pub fn counters(&self) -> Result<EngineCounters, LoaderError> {
        let read = |index: u32, name: &str| -> Result<u64, LoaderError> {
            let values = self
                .counters
                .get(&index, 0)
                .map_err(|source| map_error(MAP_COUNTERS, format!("reading counter {name}"), source))?;
            Ok(values.iter().copied().fold(0u64, u64::wrapping_add))
        };
        let fib_slot = |i: u32| read(COUNTER_FIB_FIRST + i, "fib");
        let fib = FibPasses {
            no_neigh: fib_slot(0)?,
            not_unicast: fib_slot(1)?,
            no_route: fib_slot(2)?,
            frag_needed: fib_slot(3)?,
            other_egress: fib_slot(4)?,
            other: fib_slot(5)?,
        };
        let mirror_slot = |i: u32| read(COUNTER_MIRROR_FIRST + i, "mirror");
        let mirror = FibPasses {
            no_neigh: mirror_slot(0)?,
            not_unicast: mirror_slot(1)?,
            no_route: mirror_slot(2)?,
            frag_needed: mirror_slot(3)?,
            other_egress: mirror_slot(4)?,
            other: mirror_slot(5)?,
        };
        let read_policy = |index: u32, name: &str| -> Result<u64, LoaderError> {
            let values = self
                .policy_counters
                .get(&index, 0)
                .map_err(|source| map_error(MAP_POLICY_COUNTERS, format!("reading counter {name}"), source))?;
            Ok(values.iter().copied().fold(0u64, u64::wrapping_add))
        };
        Ok(EngineCounters {
            handled: read(COUNTER_HANDLED, "handled")?,
            passed: read(COUNTER_PASSED, "passed")? + fib.total() + mirror.total(),
            no_socket: read(COUNTER_NO_SOCKET, "no_socket")?,
            bad_checksum: read(COUNTER_BAD_CHECKSUM, "bad_checksum")?,
            fib,
            mirror_handled: read(COUNTER_MIRROR_HANDLED, "mirror_handled")?,
            mirror,
            ignored: read_policy(POLICY_IGNORE_ALL, "ignore_all")?,
            denied: read_policy(POLICY_DENIED, "denied")?,
            not_allowed: read_policy(POLICY_NOT_ALLOWED, "not_allowed")?,
            rate_limited: read_policy(POLICY_RATE_LIMITED, "rate_limited")?,
        })
    }

    /// The loaded XDP program.
    pub(super) fn xdp(&self) -> Result<&Xdp, LoaderError> {
        let name = self.engine.program_name();
        self.ebpf
            .program(name)
            .ok_or(LoaderError::Missing { kind: "program", name })?
            .try_into()
            .map_err(|source| program_error(format!("using `{name}` as XDP"), source))
    }
}

/// `redirect-ebpf/flood_replies.c`, the load generator's reply capture: every ICMP echo reply
/// addressed to the generator's address is redirected to the AF_XDP socket of its RX queue.
/// Attached with a bpf_link like the engines; dropping it detaches it.
pub struct CaptureProgram {
    // Declared first so it is dropped first: detach before the program goes away.
    attacher: Attacher,
    xsks: XskMap<MapData>,
    pub(super) inject: super::inject::InjectMaps,
    pub(super) ebpf: Ebpf,
}

impl fmt::Debug for CaptureProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureProgram")
            .field("attacher", &self.attacher)
            .finish_non_exhaustive()
    }
}

impl CaptureProgram {
    /// Name of the XDP function in `flood_replies.c`.
    pub const NAME: &'static str = "flood_replies";

    /// Loads the program, makes it capture the replies to `our_addr`, and attaches it to
    /// `ifname` in `mode`. Returns it with the mode obtained.
    pub fn load_and_attach(
        ifname: &str,
        mode: XdpMode,
        our_addr: IpAddr,
    ) -> Result<(Self, super::AttachedMode), LoaderError> {
        let mut ebpf = load_object(CAPTURE_OBJECT)?;
        let xsks = take_xsks(&mut ebpf)?;
        let mut owned: HashMap<MapData, OwnedKey, u32> = take_map(&mut ebpf, MAP_OWNED_ADDRS)?;
        insert_owned(&mut owned, 0, our_addr, 0)?;
        let inject = super::inject::InjectMaps::take(&mut ebpf)?;
        let mut attacher = Attacher::default();
        let obtained = attacher.attach(xdp_program(&mut ebpf, Self::NAME)?, Self::NAME, ifname, mode)?;
        Ok((
            CaptureProgram {
                attacher,
                xsks,
                inject,
                ebpf,
            },
            obtained,
        ))
    }

    /// Registers the generator's socket of RX queue `queue_id` (see
    /// [`EngineProgram::register_socket`]).
    pub fn register_socket(&mut self, queue_id: u32, socket_fd: BorrowedFd<'_>) -> Result<(), LoaderError> {
        register(&mut self.xsks, queue_id, socket_fd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_key_layout_matches_maps_h() {
        let key = owned_key(0, "198.18.0.1".parse().unwrap()).unwrap();
        let mut expected = [0u8; 20];
        expected[14..16].copy_from_slice(&[0xff, 0xff]);
        expected[16..20].copy_from_slice(&[198, 18, 0, 1]);
        assert_eq!(key, expected);

        let key = owned_key(42, "2001:db8::1".parse().unwrap()).unwrap();
        assert_eq!(key[0..2], 42u16.to_ne_bytes());
        assert_eq!(key[2..4], [0, 0]);
        assert_eq!(key[4..8], [0x20, 0x01, 0x0d, 0xb8]);
        assert_eq!(key[19], 1);

        assert!(matches!(
            owned_key(4095, "198.18.0.1".parse().unwrap()),
            Err(LoaderError::InvalidVlan { vlan_id: 4095 })
        ));
    }

    #[test]
    fn rejects_addresses_that_are_never_answered() {
        for (bad, why) in [
            ("0.0.0.0", "not an address of a host"),
            ("0.1.2.3", "not an address of a host"),
            ("255.255.255.255", "broadcast"),
            ("224.0.0.1", "multicast"),
            ("127.0.0.1", "loopback"),
            ("::", "not an address of a host"),
            ("::1", "loopback"),
            ("ff02::1", "multicast"),
            ("::ffff:198.18.0.1", "v4-mapped"),
        ] {
            let addr: IpAddr = bad.parse().unwrap();
            let err = validate_owned(addr).expect_err(bad);
            assert!(err.to_string().contains(why), "{bad}: {err}");
        }
        for good in ["198.18.0.1", "2001:db8::1", "fe80::1"] {
            assert!(validate_owned(good.parse().unwrap()).is_ok(), "{good}");
        }
    }

    #[test]
    fn config_value_layout_matches_maps_h() {
        let policy = ReplyPolicy {
            ipv4_ttl: 63,
            ipv6_hop_limit: 255,
            ..ReplyPolicy::DEFAULT
        };
        let value = config_value([2, 0, 0, 0, 0, 1], policy);
        assert_eq!(value[..9], [2, 0, 0, 0, 0, 1, 63, 255, 0b010], "auto labels only");
        let reflect = ReplyPolicy {
            flow_label: echo_wire::respond::FlowLabelPolicy {
                reflect: true,
                auto: false,
                state_ranges: true,
                key: [1, 2],
            },
            ..policy
        };
        let value = config_value([2, 0, 0, 0, 0, 1], reflect);
        assert_eq!(value[8], 0b101);
        assert_eq!(value[9..16], [0; 7]);
        assert_eq!(value[16..24], 1u64.to_ne_bytes());
        assert_eq!(value[24..32], 2u64.to_ne_bytes());
    }
}
