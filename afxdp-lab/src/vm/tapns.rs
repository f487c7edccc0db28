//! The host end of a VM guest's NIC: a tap device in a network namespace of the lab's own.
//!
//! As shell (`H` the namespace, `t` the tap):
//!
//! ```text
//! ip netns add H
//! echo 0 > /proc/sys/net/ipv6/conf/{all,default}/{accept_dad,dad_transmits,router_solicitations,accept_ra}
//! ip -n H tuntap add dev t mode tap [multi_queue]
//! ip -n H addr add 198.18.0.2/24 dev t; ip -n H addr add 2001:db8::2/64 dev t nodad
//! ip -n H link set lo up; ip -n H link set t up
//! ```
//!
//! QEMU is started inside `H` and opens `t` by name. The guest is 198.18.0.1 and 2001:db8::1.
//! [`Drop`] kills what still runs in `H`, removes the tap and the namespace.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use crate::exec::{netns_exec, run_ok, tool};
use crate::{Endpoints, Family, LabError, Side, require_root};

/// The guest's addresses and MAC.
pub const GUEST_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// A second guest address that the responder is told not to answer (`--address` names only
/// [`GUEST_V4`] and [`GUEST_V6`]): its echo requests are `XDP_PASS`ed to the guest kernel.
pub const GUEST_PASS_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);
/// The guest's IPv6 address.
pub const GUEST_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
/// The guest NIC's MAC address (locally administered).
pub const GUEST_MAC: &str = "52:54:00:12:34:56";
/// The host end's addresses.
pub const HOST_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The host end's IPv6 address.
pub const HOST_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A namespace holding the tap of one guest; removed in `Drop`.
///
/// Names: `afxv-<pid>-<n>` for the namespace, `afxv<pid hex>-<n hex>t` for the tap.
#[derive(Debug)]
pub struct TapNs {
    ip: PathBuf,
    ns: String,
    tap: String,
    ns_created: bool,
}

impl TapNs {
    /// Creates the namespace and a tap with `queues` queues, addressed and up.
    pub fn create(queues: u32) -> Result<Self, LabError> {
        require_root()?;
        let pid = std::process::id();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut me = TapNs {
            ip: tool("ip")?,
            ns: format!("afxv-{pid}-{n}"),
            tap: format!("afxv{pid:x}-{:x}t", n % 0x100),
            ns_created: false,
        };
        me.ip_cmd("creating a network namespace", &["netns", "add", &me.ns.clone()])?;
        me.ns_created = true;
        let mut quiet = String::new();
        for scope in ["all", "default"] {
            for knob in ["accept_dad", "dad_transmits", "router_solicitations", "accept_ra"] {
                quiet.push_str(&format!("echo 0 > /proc/sys/net/ipv6/conf/{scope}/{knob}; "));
            }
        }
        let mut sh = netns_exec(&me.ip, &me.ns, tool("sh")?);
        sh.args(["-c", &quiet]);
        run_ok(sh, "turning off IPv6 DAD and router solicitations")?;
        let (ns, tap) = (me.ns.clone(), me.tap.clone());
        let mut add = vec!["-n", &ns, "tuntap", "add", "dev", &tap, "mode", "tap"];
        if queues > 1 {
            add.push("multi_queue");
        }
        me.ip_cmd("creating the tap device", &add)?;
        let (v4, v6) = (format!("{HOST_V4}/24"), format!("{HOST_V6}/64"));
        me.ip_cmd("addressing the tap", &["-n", &ns, "addr", "add", &v4, "dev", &tap])?;
        me.ip_cmd(
            "addressing the tap",
            &["-n", &ns, "addr", "add", &v6, "dev", &tap, "nodad"],
        )?;
        me.ip_cmd("bringing lo up", &["-n", &ns, "link", "set", "lo", "up"])?;
        me.ip_cmd("bringing the tap up", &["-n", &ns, "link", "set", &tap, "up"])?;
        Ok(me)
    }

    /// The namespace's name.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// The tap's name.
    pub fn tap(&self) -> &str {
        &self.tap
    }

    fn ip_cmd(&self, what: &str, args: &[&str]) -> Result<String, LabError> {
        let mut cmd = Command::new(&self.ip);
        cmd.args(args);
        run_ok(cmd, what)
    }
}

impl Endpoints for TapNs {
    /// Commands run in the host namespace (`Side::Client`); the guest (`Side::Responder`) runs
    /// only what its `/init` runs.
    fn command_on(&self, side: Side, program: &str, cpu: Option<usize>) -> Result<Command, LabError> {
        if side == Side::Responder {
            return Err(LabError::Config(
                "the lab cannot run commands inside the VM guest".into(),
            ));
        }
        Ok(match cpu {
            Some(cpu) => {
                let mut cmd = netns_exec(&self.ip, &self.ns, tool("taskset")?);
                cmd.args(["-c", &cpu.to_string(), program]);
                cmd
            }
            None => netns_exec(&self.ip, &self.ns, program),
        })
    }

    fn address_of(&self, side: Side, family: Family) -> IpAddr {
        match (side, family) {
            (Side::Responder, Family::V4) => GUEST_V4.into(),
            (Side::Responder, Family::V6) => GUEST_V6.into(),
            (Side::Client, Family::V4) => HOST_V4.into(),
            (Side::Client, Family::V6) => HOST_V6.into(),
        }
    }
}

impl Drop for TapNs {
    fn drop(&mut self) {
        if !self.ns_created {
            return;
        }
        // Anything still running in the namespace (a QEMU that outlived its guard) goes first.
        if let Ok(out) = self.ip_cmd("listing processes in the namespace", &["netns", "pids", &self.ns]) {
            for pid in out.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
                let _ = signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        let _ = self.ip_cmd("removing the tap", &["-n", &self.ns, "link", "del", &self.tap]);
        if let Err(err) = self.ip_cmd("removing a network namespace", &["netns", "del", &self.ns]) {
            eprintln!("afxdp-lab vm: {err}; remove it by hand: ip netns del {}", self.ns);
        }
    }
}
