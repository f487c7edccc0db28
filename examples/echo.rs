//! xsk-echo: a complete ICMP echo responder for one queue, top to bottom. The daemon
//! (afxdp-responder) does the same with more queues, options, statistics and care at shutdown;
//! the reply bytes are the same, because both call echo-wire's `respond()`.
//! (docs/learn/04-the-worker-loop.md walks through it.)
//!
//!     sudo target/debug/xsk-echo IFACE [--queue Q] [--count N]
//!
//! It answers pings to every address of IFACE that arrive on queue Q (0), with TTL and hop limit
//! 64 (the daemon reads the host's settings). Everything else still goes to the kernel.
//! Machine-readable lines for the lab: `{"event":"ready",...}` once pings can be answered,
//! `{"event":"summary",...}` at exit; exit status 0 when every UMEM frame is accounted for.

use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use afxdp_xsk::{BindMode, Xsk, XskConfig};
use aya::maps::{Array, HashMap, XskMap};
use aya::programs::{Xdp, XdpMode};
use clap::Parser;
use echo_wire::respond::{ReplyPolicy, Responder, Verdict};

/// Answers pings on one queue of an interface over AF_XDP.
#[derive(Debug, Parser)]
struct Args {
    /// Interface to answer on (its XDP program is replaced by ours until we exit).
    iface: String,
    /// RX queue to serve (pings that arrive on other queues are answered by the kernel).
    #[arg(long, default_value_t = 0)]
    queue: u32,
    /// Stop after answering this many pings (default: on Ctrl-C).
    #[arg(long)]
    count: Option<u64>,
}

/// Frames taken from the RX ring per turn of the loop.
const BATCH: u32 = 64;

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) if !e.use_stderr() => return e.print().map_or(ExitCode::FAILURE, |_| ExitCode::SUCCESS),
        Err(e) => return fail(e.to_string().lines().next().unwrap_or("bad arguments")),
    };
    run(&args).unwrap_or_else(|e| fail(&e.to_string()))
}

fn fail(message: &str) -> ExitCode {
    eprintln!("xsk-echo: {} (see --help)", message.trim_start_matches("error: "));
    ExitCode::FAILURE
}

fn run(args: &Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    // 1. What the XDP program must know: our MAC and our addresses (from getifaddrs).
    let (mut mac, mut addrs) = (None, Vec::<IpAddr>::new());
    for ifa in nix::ifaddrs::getifaddrs()?.filter(|ifa| ifa.interface_name == args.iface) {
        let Some(a) = ifa.address else { continue };
        if let Some(link) = a.as_link_addr() {
            mac = mac.or(link.addr());
        } else if let Some(v4) = a.as_sockaddr_in() {
            addrs.push(v4.ip().into());
        } else if let Some(v6) = a.as_sockaddr_in6() {
            addrs.push(v6.ip().into());
        }
    }
    let mac = mac.ok_or_else(|| format!("no interface {} (or it has no MAC address)", args.iface))?;
    if addrs.is_empty() {
        return Err(format!("{} has no IP address: add one (ip addr add ...)", args.iface).into());
    }

    // 2. The socket, bound to one queue; every frame starts on the fill ring.
    let ifindex = nix::net::if_::if_nametoindex(args.iface.as_str())?;
    let (mut xsk, _) = Xsk::open_auto(&args.iface, ifindex, args.queue, &XskConfig::default())?;

    // 3. The daemon's XDP program (redirect-ebpf/redirect.c): echo requests to one of `addrs`
    //    and to `mac` go to the socket of their queue, everything else to the kernel.
    let mut ebpf = aya::Ebpf::load(redirect_ebpf::REDIRECT)?;
    // struct redirect_config: MAC, TTL and hop limit (for xdp-tx), flow-label flags and key (ditto),
    // and `no_mirror` = 1: this example keeps no copy of the host's routes and neighbours (the
    // daemon does, see docs/decisions.md §16), so with forwarding off the program redirects owned
    // requests without asking where their replies would go.
    let mut config: Array<_, [u8; 32]> = Array::try_from(ebpf.take_map("config").ok_or("no config map")?)?;
    let mut value = [0u8; 32];
    value[..6].copy_from_slice(&mac);
    value[6] = 64;
    value[7] = 64;
    value[9] = 1; // no_mirror
    config.set(0, value, 0)?;
    let mut owned: HashMap<_, [u8; 20], u32> = HashMap::try_from(ebpf.take_map("owned_addrs").ok_or("no map")?)?;
    for addr in &addrs {
        let v6 = match addr {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => *v6,
        };
        let mut key = [0u8; 20]; // struct owned_key: VLAN 0, padding, the address (v4-mapped)
        key[4..].copy_from_slice(&v6.octets());
        owned.insert(key, 0, 0)?;
    }
    let mut xsks = XskMap::try_from(ebpf.take_map("xsks").ok_or("no xsks map")?)?;
    xsks.set(args.queue, xsk.fd(), 0)?;
    let program: &mut Xdp = ebpf.program_mut("redirect_echo").ok_or("no program")?.try_into()?;
    program.load()?;
    program.attach(&args.iface, XdpMode::Driver)?; // detached when `ebpf` is dropped
    println!(
        r#"{{"event":"ready","example":"xsk-echo","iface":"{}","queue":{},"mode":"{}"}}"#,
        args.iface,
        args.queue,
        xsk.mode()
    );
    println!(
        "answering pings to {addrs:?} on queue {} ({} mode)",
        args.queue,
        xsk.mode()
    );

    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop))?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&stop))?;

    // 4. The loop. Every frame is always on one of the four rings or, for one turn, in our hands.
    let mut responder = Responder::new(ReplyPolicy::default(), std::process::id() as u16);
    let (mut replied, mut dropped) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) && args.count.is_none_or(|n| replied < n) {
        // 4a. Reclaim: frames the kernel has sent come back on the completion ring; they go
        //     straight to the fill ring, to receive into again (peek completion, push fill).
        xsk.recycle_completions();

        // 4b. Receive: no more than TX and the fill ring can take back this turn.
        let parts = xsk.split();
        let room = parts.tx.free(BATCH).min(parts.fill.free(BATCH));
        let mut received = parts.rx.peek(room);
        let got = received.len();
        let mut replies = parts.tx.reserve(room);
        let mut recycled = parts.fill.reserve(room);

        // 4c. Respond in place: a reply leaves from the very frame the request arrived in.
        for mut frame in &mut received {
            match parts.umem.frame_mut(&frame).map(|bytes| responder.respond(bytes)) {
                Some(Verdict::Reply { len }) => {
                    frame.set_len(len as u32);
                    replies.push(frame);
                    replied += 1;
                }
                _ => {
                    recycled.push(frame); // not a request we answer: receive into it again
                    dropped += 1;
                }
            }
        }
        replies.submit();
        recycled.submit();
        received.release();

        // 4d. Send. Copy mode: sendto() makes the kernel copy out (at most a budget per call),
        //     so kick until TX is empty. Zero-copy: kick only if the driver asks (need_wakeup).
        if xsk.mode() == BindMode::ZeroCopy {
            if xsk.tx().outstanding() > 0 && xsk.tx().needs_wakeup() {
                xsk.kick_tx()?;
            }
        } else {
            for _ in 0..64 {
                if xsk.tx().outstanding() == 0 {
                    break;
                }
                xsk.kick_tx()?;
            }
        }

        // 4e. Idle: sleep in poll() until something arrives (100 ms, to notice Ctrl-C).
        if got == 0 && xsk.tx().outstanding() == 0 {
            xsk.poll_rx(100)?;
        }
    }

    // 5. Detach, let the kernel finish sending, take the last completions, count the frames.
    drop(ebpf);
    std::thread::sleep(std::time::Duration::from_millis(100));
    xsk.recycle_completions();
    let census = xsk.frame_census();
    println!("replied to {replied} requests, dropped {dropped}; {census}");
    println!(
        r#"{{"event":"summary","example":"xsk-echo","replied":{replied},"dropped":{dropped},"frames":{},"unaccounted":{}}}"#,
        census.total,
        census.elsewhere()
    );
    // (In zero-copy mode the driver holds frames of its own as RX buffers: not a leak.)
    let accounted = census.elsewhere() == 0 || xsk.mode() == BindMode::ZeroCopy;
    Ok(if accounted {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
