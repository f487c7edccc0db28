//! Two network namespaces joined by a veth pair: the responder on one end, clients on the other.
//!
//! What [`NetnsPair::create`] does, as shell (`R`/`C` are the namespaces, `r`/`c` the veth ends):
//!
//! ```text
//! ip netns add R; ip netns add C
//! # in both: no DAD, no router solicitations, no RA: IPv6 is quiet and usable at once
//! echo 0 > /proc/sys/net/ipv6/conf/{all,default}/{accept_dad,dad_transmits,router_solicitations,accept_ra}
//! ip link add r address 02:af:00:00:00:01 numrxqueues 2 numtxqueues 2 netns R \
//!    type veth peer name c address 02:af:00:00:00:02 numrxqueues 2 numtxqueues 2 netns C
//! echo 1 > /proc/sys/net/ipv6/conf/r/mldv2_unsolicited_report_interval   # (and mldv1_): MLD ends fast
//! ip -n R addr add 198.18.0.1/24 dev r; ip -n R addr add 2001:db8:0:1::1/64 dev r nodad
//! ip -n C addr add 198.18.0.2/24 dev c; ip -n C addr add 2001:db8:0:1::2/64 dev c nodad
//! ip -n R neigh replace 198.18.0.2 lladdr 02:af:00:00:00:02 dev r nud permanent   # and v6, and C
//! ip netns exec R ethtool -K r gro on tso off       # per-queue RX counters, see rx_queue_packets
//! ip -n R link set lo up; ip -n R link set r up     # and C
//! # then wait until neither end has sent ICMP/ICMPv6 for 100 ms (the MLD reports are over)
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sched::sched_getaffinity;
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use super::exec::{netns_exec, run_ok, tool};
use super::{LabError, Nstat, require_root};
use crate::xdp_pass::PassProgram;

/// Which end of a [`NetnsPair`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The namespace where the responder (or the kernel under test) answers.
    Responder,
    /// The namespace where `ping`, `tcpdump` and `nstat` run.
    Client,
}

impl Side {
    /// The other end.
    pub fn peer(self) -> Side {
        match self {
            Side::Responder => Side::Client,
            Side::Client => Side::Responder,
        }
    }
}

/// Where the lab's clients run and whom they talk to: a [`NetnsPair`], or the host end of a VM
/// guest (`vm::TapNs`). [`super::ping`] and [`super::Nstat`] work with either.
pub trait Endpoints {
    /// `program` to run on `side` (pinned to `cpu` if given); an error if the lab cannot run
    /// commands there (inside a VM guest).
    fn command_on(&self, side: Side, program: &str, cpu: Option<usize>) -> Result<Command, LabError>;
    /// The address of `side` in `family`.
    fn address_of(&self, side: Side, family: Family) -> IpAddr;
}

impl Endpoints for NetnsPair {
    fn command_on(&self, side: Side, program: &str, cpu: Option<usize>) -> Result<Command, LabError> {
        match cpu {
            Some(cpu) => self.command_pinned(side, cpu, program),
            None => Ok(self.command_in(side, program)),
        }
    }

    fn address_of(&self, side: Side, family: Family) -> IpAddr {
        self.addr(side, family)
    }
}

/// IP version of an address or a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 and ICMP.
    V4,
    /// IPv6 and ICMPv6.
    V6,
}

/// What to build: queue count, addresses and MACs of both ends, and two switches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabConfig {
    /// RX and TX queues of each veth end (1..=64).
    pub queues: u32,
    /// IPv4 address of the responder end, in 198.18.0.0/15.
    pub responder_v4: Ipv4Addr,
    /// IPv4 address of the client end, in the responder's subnet.
    pub client_v4: Ipv4Addr,
    /// IPv4 prefix length of both addresses (15..=30).
    pub v4_prefix: u8,
    /// IPv6 address of the responder end, in 2001:db8::/32.
    pub responder_v6: Ipv6Addr,
    /// IPv6 address of the client end, in the responder's subnet.
    pub client_v6: Ipv6Addr,
    /// IPv6 prefix length of both addresses (32..=126).
    pub v6_prefix: u8,
    /// MAC address of the responder end (unicast).
    pub responder_mac: [u8; 6],
    /// MAC address of the client end (unicast).
    pub client_mac: [u8; 6],
    /// Permanent ARP/ND entries on both ends: no neighbour traffic at all (set `false` to see ARP/ND).
    pub static_neighbours: bool,
    /// GRO on and TSO off on both ends, so every frame is counted per RX queue (see
    /// [`NetnsPair::rx_queue_packets`]).
    pub rx_queue_counters: bool,
}

impl Default for LabConfig {
    fn default() -> Self {
        LabConfig {
            queues: 2,
            responder_v4: Ipv4Addr::new(198, 18, 0, 1),
            client_v4: Ipv4Addr::new(198, 18, 0, 2),
            v4_prefix: 24,
            responder_v6: Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 1),
            client_v6: Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 2),
            v6_prefix: 64,
            responder_mac: [0x02, 0xaf, 0, 0, 0, 0x01],
            client_mac: [0x02, 0xaf, 0, 0, 0, 0x02],
            static_neighbours: true,
            rx_queue_counters: true,
        }
    }
}

/// The most queues a lab veth gets: plenty for a 2-core machine, small enough to stay cheap.
const MAX_QUEUES: u32 = 64;

impl LabConfig {
    /// Checks the test-network rules: benchmarking/documentation ranges only, one subnet, unicast MACs.
    pub fn validate(&self) -> Result<(), LabError> {
        let bad = |msg: String| Err(LabError::Config(msg));
        if !(1..=MAX_QUEUES).contains(&self.queues) {
            return bad(format!("queues = {}: must be 1..={MAX_QUEUES}", self.queues));
        }
        if !(15..=30).contains(&self.v4_prefix) {
            return bad(format!("v4_prefix = {}: must be 15..=30", self.v4_prefix));
        }
        for addr in [self.responder_v4, self.client_v4] {
            let [a, b, ..] = addr.octets();
            if a != 198 || b & 0xfe != 18 {
                return bad(format!(
                    "{addr} is outside 198.18.0.0/15, the only IPv4 range the lab may use"
                ));
            }
        }
        let host_bits = 32 - u32::from(self.v4_prefix);
        let (resp, client) = (u32::from(self.responder_v4), u32::from(self.client_v4));
        if resp >> host_bits != client >> host_bits {
            return bad(format!(
                "{} and {} are not in one /{} subnet",
                self.responder_v4, self.client_v4, self.v4_prefix
            ));
        }
        let host_mask = (1u32 << host_bits) - 1;
        for addr in [resp, client] {
            if addr & host_mask == 0 || addr & host_mask == host_mask {
                return bad(format!(
                    "{} is the network or broadcast address of its /{} subnet",
                    Ipv4Addr::from(addr),
                    self.v4_prefix
                ));
            }
        }
        if !(32..=126).contains(&self.v6_prefix) {
            return bad(format!("v6_prefix = {}: must be 32..=126", self.v6_prefix));
        }
        for addr in [self.responder_v6, self.client_v6] {
            if addr.segments()[..2] != [0x2001, 0x0db8] {
                return bad(format!(
                    "{addr} is outside 2001:db8::/32, the only IPv6 range the lab may use"
                ));
            }
        }
        let host_bits = 128 - u32::from(self.v6_prefix);
        if u128::from(self.responder_v6) >> host_bits != u128::from(self.client_v6) >> host_bits {
            return bad(format!(
                "{} and {} are not in one /{} subnet",
                self.responder_v6, self.client_v6, self.v6_prefix
            ));
        }
        if resp == client || self.responder_v6 == self.client_v6 {
            return bad("the responder and the client need different addresses".into());
        }
        for mac in [self.responder_mac, self.client_mac] {
            if mac[0] & 1 != 0 || mac == [0; 6] {
                return bad(format!("{} is not a unicast MAC address", mac_string(mac)));
            }
        }
        if self.responder_mac == self.client_mac {
            return bad("the responder and the client need different MAC addresses".into());
        }
        Ok(())
    }
}

/// `02:af:00:00:00:01` notation of a MAC address.
pub fn mac_string(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

/// How long both ends must stay silent before [`NetnsPair::create`] returns.
const QUIET: Duration = Duration::from_millis(100);

/// The longest [`NetnsPair::create`] waits for IPv6 start-up chatter to end.
const SETTLE_MAX: Duration = Duration::from_secs(3);

/// Distinguishes the pairs of one process; with the pid it makes every name unique on the machine.
static NEXT_PAIR: AtomicU32 = AtomicU32::new(0);

/// Two network namespaces joined by a veth pair; everything is removed in `Drop` (also on panic).
///
/// Names are `afxr-<pid>-<n>-r` / `-c` for the namespaces and `afxr<pid hex>-<n hex>r` / `c` for the
/// veth ends (at most 15 characters, the kernel's limit for interface names).
#[derive(Debug)]
pub struct NetnsPair {
    cfg: LabConfig,
    ip: PathBuf,
    responder_ns: String,
    client_ns: String,
    responder_if: String,
    client_if: String,
    /// Namespaces that exist and must be removed in `Drop`, in creation order.
    created: Vec<String>,
}

impl NetnsPair {
    /// Builds the pair described by `cfg`: both ends up, addresses usable at once, nothing left
    /// behind if any step fails.
    pub fn create(cfg: &LabConfig) -> Result<Self, LabError> {
        require_root()?;
        cfg.validate()?;
        let ip = tool("ip")?;
        tool("sh")?;
        if cfg.rx_queue_counters {
            tool("ethtool")?;
        }
        let pid = std::process::id();
        let n = NEXT_PAIR.fetch_add(1, Ordering::Relaxed);
        let mut pair = NetnsPair {
            cfg: cfg.clone(),
            ip,
            responder_ns: format!("afxr-{pid}-{n}-r"),
            client_ns: format!("afxr-{pid}-{n}-c"),
            responder_if: format!("afxr{pid:x}-{:x}r", n % 0x1000),
            client_if: format!("afxr{pid:x}-{:x}c", n % 0x1000),
            created: Vec::new(),
        };
        // From here on an early return drops `pair`, and Drop removes whatever exists.
        for ns in [pair.responder_ns.clone(), pair.client_ns.clone()] {
            pair.ip_cmd("creating a network namespace", &["netns", "add", &ns])?;
            pair.created.push(ns);
        }
        for side in [Side::Responder, Side::Client] {
            pair.quiet_ipv6(side)?;
        }
        pair.add_veth()?;
        for side in [Side::Responder, Side::Client] {
            pair.configure(side)?;
        }
        for side in [Side::Responder, Side::Client] {
            pair.wait_carrier(side, Duration::from_secs(3))?;
        }
        pair.settle()?;
        Ok(pair)
    }

    /// The configuration the pair was built from.
    pub fn config(&self) -> &LabConfig {
        &self.cfg
    }

    /// The responder's namespace name.
    pub fn responder_ns(&self) -> &str {
        &self.responder_ns
    }

    /// The client's namespace name.
    pub fn client_ns(&self) -> &str {
        &self.client_ns
    }

    /// The responder's veth interface name (inside [`Self::responder_ns`]).
    pub fn responder_if(&self) -> &str {
        &self.responder_if
    }

    /// The client's veth interface name (inside [`Self::client_ns`]).
    pub fn client_if(&self) -> &str {
        &self.client_if
    }

    /// The namespace name of `side`.
    pub fn ns(&self, side: Side) -> &str {
        match side {
            Side::Responder => &self.responder_ns,
            Side::Client => &self.client_ns,
        }
    }

    /// The veth interface name of `side`.
    pub fn ifname(&self, side: Side) -> &str {
        match side {
            Side::Responder => &self.responder_if,
            Side::Client => &self.client_if,
        }
    }

    /// The IPv4 address of `side`.
    pub fn ipv4(&self, side: Side) -> Ipv4Addr {
        match side {
            Side::Responder => self.cfg.responder_v4,
            Side::Client => self.cfg.client_v4,
        }
    }

    /// The IPv6 address of `side`.
    pub fn ipv6(&self, side: Side) -> Ipv6Addr {
        match side {
            Side::Responder => self.cfg.responder_v6,
            Side::Client => self.cfg.client_v6,
        }
    }

    /// The address of `side` in `family`.
    pub fn addr(&self, side: Side, family: Family) -> IpAddr {
        match family {
            Family::V4 => self.ipv4(side).into(),
            Family::V6 => self.ipv6(side).into(),
        }
    }

    /// The MAC address of `side`'s veth end.
    pub fn mac(&self, side: Side) -> [u8; 6] {
        match side {
            Side::Responder => self.cfg.responder_mac,
            Side::Client => self.cfg.client_mac,
        }
    }

    /// `ip netns exec NS program`: add arguments and run it; bounding it in time is up to the caller
    /// (see [`super::Background`]).
    pub fn command_in(&self, side: Side, program: &str) -> Command {
        netns_exec(&self.ip, self.ns(side), program)
    }

    /// `ip netns exec NS taskset -c CPU program`: like [`Self::command_in`], pinned to one CPU.
    pub fn command_pinned(&self, side: Side, cpu: usize, program: &str) -> Result<Command, LabError> {
        let mut cmd = netns_exec(&self.ip, self.ns(side), tool("taskset")?);
        cmd.args(["-c", &cpu.to_string(), program]);
        Ok(cmd)
    }

    /// Makes a client sender pinned to the returned CPU transmit on TX queue `queue`, so its frames
    /// arrive on the responder's RX queue `queue`.
    ///
    /// veth delivers a frame on the peer's RX queue whose number is the sender's TX queue, and the
    /// sender picks its TX queue from its XPS map by the CPU it runs on. This writes the whole map,
    /// one CPU per queue (`echo <mask of CPU q> > /sys/class/net/c/queues/tx-q/xps_cpus`), so it is
    /// idempotent; run the sender with `taskset -c CPU` (see [`super::PingSpec::pinned_cpu`]).
    pub fn steer_client_queue(&self, queue: u32) -> Result<usize, LabError> {
        let queues = self.cfg.queues;
        if queue >= queues {
            return Err(LabError::Config(format!(
                "queue {queue} does not exist: the veth has {queues} queue(s), 0..={}",
                queues - 1
            )));
        }
        let cpus = allowed_cpus()?;
        if queues == 1 {
            // A one-queue veth has no XPS map to write (the kernel refuses `xps_cpus` on a device
            // that is not multiqueue): every frame takes TX queue 0 whatever CPU sends it.
            return cpus
                .first()
                .copied()
                .ok_or_else(|| LabError::Config("this process may run on no CPU at all (empty affinity mask)".into()));
        }
        let Some(&cpu) = cpus.get(queue as usize) else {
            return Err(LabError::Config(format!(
                "cannot steer to queue {queue}: XPS gives each queue its own CPU and this process may \
                 only run on {} CPU(s) {cpus:?}",
                cpus.len()
            )));
        };
        let writes: Vec<(String, String)> = (0..queues)
            .map(|q| {
                let mask = cpus.get(q as usize).map_or_else(|| "0".to_string(), |&c| cpu_mask(c));
                let path = format!("/sys/class/net/{}/queues/tx-{q}/xps_cpus", self.client_if);
                (path, mask)
            })
            .collect();
        self.write_files(Side::Client, "setting the client's XPS map (TX queue per CPU)", &writes)?;
        Ok(cpu)
    }

    /// Frames received so far on each RX queue of `side`'s veth (`rx_queue_N_xdp_packets` of
    /// `ethtool -S`), index = queue number.
    ///
    /// veth counts a frame there only when it goes through the queue's NAPI poll: that needs either
    /// an XDP program on this end or [`LabConfig::rx_queue_counters`] (GRO on here, TSO off on the
    /// sender: the kernel skips NAPI for TSO-capable senders). Without either, all counters stay 0.
    pub fn rx_queue_packets(&self, side: Side) -> Result<Vec<u64>, LabError> {
        let mut cmd = netns_exec(&self.ip, self.ns(side), tool("ethtool")?);
        cmd.args(["-S", self.ifname(side)]);
        let out = run_ok(cmd, "reading the veth's per-queue counters")?;
        parse_rx_queue_packets(&out, self.cfg.queues)
    }

    /// Attaches an XDP program that passes every frame to `side`'s veth end (native mode, with a
    /// bpf_link); it stays attached until the returned [`PassProgram`] is dropped (or the pair is).
    ///
    /// Needed on the client end when the responder answers with `XDP_TX` (`--engine xdp-tx`): a
    /// veth delivers frames that XDP sends out of one end only to a peer that runs XDP itself.
    /// The calling thread enters `side`'s namespace for the attach and returns to its own.
    pub fn attach_xdp_pass(&self, side: Side) -> Result<PassProgram, LabError> {
        use std::os::fd::AsFd;
        let io = |what: &str, source: std::io::Error| LabError::Io {
            what: format!("attaching an XDP_PASS program to {}: {what}", self.ifname(side)),
            source,
        };
        let own = std::fs::File::open("/proc/thread-self/ns/net").map_err(|e| io("opening our netns", e))?;
        let target = std::fs::File::open(format!("/var/run/netns/{}", self.ns(side)))
            .map_err(|e| io("opening the pair's netns", e))?;
        let clone_newnet = nix::sched::CloneFlags::CLONE_NEWNET;
        nix::sched::setns(target.as_fd(), clone_newnet).map_err(|e| io("entering the netns", e.into()))?;
        let attached = PassProgram::attach(self.ifname(side));
        let back = nix::sched::setns(own.as_fd(), clone_newnet);
        if let Err(e) = back {
            // Without a way back this thread would keep running in the lab's namespace.
            panic!("cannot return to the original network namespace: {e}");
        }
        attached.map_err(|e| io("loading or attaching it", std::io::Error::other(e)))
    }

    fn ip_cmd(&self, what: &str, args: &[&str]) -> Result<String, LabError> {
        let mut cmd = Command::new(&self.ip);
        cmd.args(args).env("LC_ALL", "C");
        run_ok(cmd, what)
    }

    /// Writes `value` to each `path` from inside `side`'s namespace (sysfs shows a namespace's devices
    /// only to processes that mounted it there, which `ip netns exec` does).
    fn write_files(&self, side: Side, what: &str, writes: &[(String, String)]) -> Result<(), LabError> {
        const SCRIPT: &str = r#"while [ $# -gt 1 ]; do printf '%s\n' "$2" > "$1" || exit 1; shift 2; done"#;
        let mut cmd = netns_exec(&self.ip, self.ns(side), "sh");
        cmd.args(["-c", SCRIPT, "lab-write"]);
        for (path, value) in writes {
            cmd.args([path, value]);
        }
        run_ok(cmd, what).map(drop)
    }

    /// Turns off what makes a fresh IPv6 interface noisy or slow: duplicate address detection, router
    /// solicitations, router advertisements. New interfaces inherit `default`.
    fn quiet_ipv6(&self, side: Side) -> Result<(), LabError> {
        let mut writes = Vec::new();
        for scope in ["all", "default"] {
            for knob in ["accept_dad", "dad_transmits", "router_solicitations", "accept_ra"] {
                writes.push((format!("/proc/sys/net/ipv6/conf/{scope}/{knob}"), "0".to_string()));
            }
        }
        self.write_files(side, "turning off IPv6 DAD and router solicitations", &writes)
    }

    fn add_veth(&self) -> Result<(), LabError> {
        let q = self.cfg.queues.to_string();
        let (rmac, cmac) = (mac_string(self.cfg.responder_mac), mac_string(self.cfg.client_mac));
        #[rustfmt::skip]
        let args = [
            "link", "add", &self.responder_if, "address", &rmac,
            "numrxqueues", &q, "numtxqueues", &q, "netns", &self.responder_ns,
            "type", "veth", "peer", "name", &self.client_if, "address", &cmac,
            "numrxqueues", &q, "numtxqueues", &q, "netns", &self.client_ns,
        ];
        self.ip_cmd("creating the veth pair", &args).map(drop)
    }

    fn configure(&self, side: Side) -> Result<(), LabError> {
        let (ns, dev) = (self.ns(side), self.ifname(side));
        let other = side.peer();
        // MLD reports for the new addresses' groups cannot be turned off; squeeze their repeats from
        // up to 1 s (10 s for MLDv1) apart into a few ms, so `settle` sees them end quickly. This
        // knob is not inherited from `default`: set it on the device.
        let writes: Vec<(String, String)> = ["mldv1_unsolicited_report_interval", "mldv2_unsolicited_report_interval"]
            .iter()
            .map(|knob| (format!("/proc/sys/net/ipv6/conf/{dev}/{knob}"), "1".to_string()))
            .collect();
        self.write_files(side, "shortening the MLD report interval", &writes)?;
        let v4 = format!("{}/{}", self.ipv4(side), self.cfg.v4_prefix);
        let v6 = format!("{}/{}", self.ipv6(side), self.cfg.v6_prefix);
        self.ip_cmd("adding the IPv4 address", &["-n", ns, "addr", "add", &v4, "dev", dev])?;
        // `nodad`: usable at once, never "tentative".
        self.ip_cmd(
            "adding the IPv6 address",
            &["-n", ns, "addr", "add", &v6, "dev", dev, "nodad"],
        )?;
        if self.cfg.static_neighbours {
            let mac = mac_string(self.mac(other));
            for peer in [self.ipv4(other).to_string(), self.ipv6(other).to_string()] {
                #[rustfmt::skip]
                let args = ["-n", ns, "neigh", "replace", &peer, "lladdr", &mac, "dev", dev, "nud", "permanent"];
                self.ip_cmd("adding a static neighbour entry", &args)?;
            }
        }
        if self.cfg.rx_queue_counters {
            let mut cmd = netns_exec(&self.ip, ns, tool("ethtool")?);
            cmd.args(["-K", dev, "gro", "on", "tso", "off"]);
            run_ok(cmd, "turning GRO on and TSO off (per-queue RX counters)")?;
        }
        self.ip_cmd("bringing up loopback", &["-n", ns, "link", "set", "lo", "up"])?;
        self.ip_cmd("bringing up the veth", &["-n", ns, "link", "set", dev, "up"])?;
        Ok(())
    }

    fn wait_carrier(&self, side: Side, timeout: Duration) -> Result<(), LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.ip_cmd(
                "reading the link state",
                &["-n", self.ns(side), "-o", "link", "show", "dev", self.ifname(side)],
            )?;
            if out.contains("LOWER_UP") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout {
                    what: format!("waiting for carrier on {}", self.ifname(side)),
                    command: format!("ip -n {} link show dev {}", self.ns(side), self.ifname(side)),
                    timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until neither end has sent an ICMP or ICMPv6 message for [`QUIET`]: after link-up the
    /// kernel announces the new addresses' multicast groups (MLD reports, a few ms apart thanks to
    /// the interval set in `configure`), and a test counting frames per queue must not see them.
    /// Gives up silently after [`SETTLE_MAX`]: the lab works, it is only noisier.
    fn settle(&self) -> Result<(), LabError> {
        let started = Instant::now();
        let mut last = None;
        let mut quiet_since = Instant::now();
        while started.elapsed() < SETTLE_MAX {
            let mut sent = 0;
            for side in [Side::Responder, Side::Client] {
                let stat = Nstat::read(self, side)?;
                sent += stat.counter("Icmp6OutMsgs")? + stat.counter("IcmpOutMsgs")?;
            }
            if last != Some(sent) {
                last = Some(sent);
                quiet_since = Instant::now();
            } else if sent > 0 && quiet_since.elapsed() >= QUIET {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Kills whatever still runs inside `ns` (a leaked responder or tcpdump would keep it alive).
    fn kill_leftovers(&self, ns: &str) {
        let Ok(out) = self.ip_cmd("listing processes in the namespace", &["netns", "pids", ns]) else {
            return;
        };
        for pid in out.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
            let _ = signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        for ns in &self.created {
            self.kill_leftovers(ns);
        }
        if self.created.len() == 2 {
            // Deleting one end removes both, at once (namespace teardown would do it later).
            let _ = self.ip_cmd(
                "removing the veth pair",
                &["-n", &self.responder_ns, "link", "del", &self.responder_if],
            );
        }
        for ns in &self.created {
            if let Err(err) = self.ip_cmd("removing a network namespace", &["netns", "del", ns]) {
                eprintln!("afxdp-lab: {err}; remove it by hand: ip netns del {ns}");
            }
        }
    }
}

/// The CPUs this process may run on, in increasing order.
pub fn allowed_cpus() -> Result<Vec<usize>, LabError> {
    let set = sched_getaffinity(Pid::from_raw(0)).map_err(|errno| LabError::Io {
        what: "reading the CPU affinity (sched_getaffinity)".into(),
        source: errno.into(),
    })?;
    Ok((0..nix::sched::CpuSet::count())
        .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
        .collect())
}

/// The `xps_cpus` bitmap with only `cpu` set: hex, 32-bit groups separated by commas.
fn cpu_mask(cpu: usize) -> String {
    let mut mask = format!("{:x}", 1u32 << (cpu % 32));
    for _ in 0..cpu / 32 {
        mask.push_str(",00000000");
    }
    mask
}

/// Picks `rx_queue_N_xdp_packets: V` out of `ethtool -S` output, for queues `0..queues`.
fn parse_rx_queue_packets(ethtool_s: &str, queues: u32) -> Result<Vec<u64>, LabError> {
    let mut counts = vec![None; queues as usize];
    for line in ethtool_s.lines() {
        let Some((name, value)) = line.trim().split_once(':') else {
            continue;
        };
        let Some(queue) = name
            .strip_prefix("rx_queue_")
            .and_then(|r| r.strip_suffix("_xdp_packets"))
        else {
            continue;
        };
        if let (Ok(queue), Ok(value)) = (queue.parse::<usize>(), value.trim().parse::<u64>())
            && let Some(slot) = counts.get_mut(queue)
        {
            *slot = Some(value);
        }
    }
    counts
        .iter()
        .enumerate()
        .map(|(queue, count)| {
            count.ok_or_else(|| LabError::Parse {
                what: "ethtool -S output",
                detail: format!("no rx_queue_{queue}_xdp_packets counter (is this a veth?)"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        LabConfig::default().validate().unwrap();
    }

    #[test]
    fn addresses_outside_the_test_ranges_are_refused() {
        let cfg = LabConfig {
            client_v4: Ipv4Addr::new(192, 168, 0, 2),
            ..LabConfig::default()
        };
        assert!(cfg.validate().unwrap_err().to_string().contains("198.18.0.0/15"));
        let cfg = LabConfig {
            responder_v6: "2001:db9::1".parse().unwrap(),
            ..LabConfig::default()
        };
        assert!(cfg.validate().unwrap_err().to_string().contains("2001:db8::/32"));
    }

    #[test]
    fn inconsistent_configs_are_refused() {
        let refused = |cfg: LabConfig| cfg.validate().is_err();
        let d = LabConfig::default;
        assert!(refused(LabConfig { queues: 0, ..d() }));
        assert!(refused(LabConfig {
            client_v4: Ipv4Addr::new(198, 18, 1, 2),
            ..d()
        }));
        assert!(refused(LabConfig {
            client_v4: Ipv4Addr::new(198, 18, 0, 255),
            ..d()
        }));
        assert!(refused(LabConfig {
            client_v4: d().responder_v4,
            ..d()
        }));
        assert!(refused(LabConfig {
            client_v6: "2001:db8:0:2::2".parse().unwrap(),
            ..d()
        }));
        assert!(refused(LabConfig {
            client_mac: [0x01, 0, 0, 0, 0, 2],
            ..d()
        }));
        assert!(refused(LabConfig {
            client_mac: d().responder_mac,
            ..d()
        }));
        // The other half of 198.18.0.0/15 is fine.
        assert!(!refused(LabConfig {
            responder_v4: Ipv4Addr::new(198, 19, 7, 1),
            client_v4: Ipv4Addr::new(198, 19, 7, 2),
            ..d()
        }));
    }

    #[test]
    fn cpu_masks_are_kernel_bitmaps() {
        assert_eq!(cpu_mask(0), "1");
        assert_eq!(cpu_mask(1), "2");
        assert_eq!(cpu_mask(31), "80000000");
        assert_eq!(cpu_mask(33), "2,00000000");
    }

    #[test]
    fn macs_print_like_ip_does() {
        assert_eq!(mac_string([0x02, 0xaf, 0, 0, 0, 0x1b]), "02:af:00:00:00:1b");
    }

    #[test]
    fn per_queue_counters_are_parsed_from_ethtool() {
        let out = "NIC statistics:\n     peer_ifindex: 2\n     rx_queue_0_xdp_packets: 5\n     \
                   rx_queue_0_xdp_bytes: 420\n     rx_queue_1_xdp_packets: 17\n     tx_queue_0_xdp_xmit: 0\n";
        assert_eq!(parse_rx_queue_packets(out, 2).unwrap(), vec![5, 17]);
        assert!(parse_rx_queue_packets(out, 3).is_err());
    }

    #[test]
    fn interface_names_fit_the_kernel_limit() {
        let longest = format!("afxr{:x}-{:x}r", 4_194_304u32, 0xfff);
        assert!(longest.len() <= 15, "{longest}");
    }
}
