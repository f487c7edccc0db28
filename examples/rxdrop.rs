//! xsk-rxdrop: the first step with AF_XDP. Receive every frame of one queue in user space,
//! count it, and give its UMEM frame straight back to the kernel. (docs/learn/03-umem-and-rings.md
//! walks through it.)
//!
//!     sudo target/debug/xsk-rxdrop IFACE [--queue Q] [--count N]
//!
//! While it runs, the kernel of this host sees no frame of that queue, ARP included: try it in
//! the lab (`afxdp-lab demo --example rxdrop`), not on the interface you are logged in through.
//! Machine-readable lines for the lab: `{"event":"ready",...}` once frames can arrive,
//! `{"event":"summary",...}` at exit; exit status 0 when every UMEM frame is accounted for.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use afxdp_xsk::{BindMode, Xsk, XskConfig};
use aya::{Ebpf, maps::XskMap, programs::Xdp, programs::XdpMode};
use clap::Parser;

/// Receives every frame of one queue over AF_XDP and drops it.
#[derive(Debug, Parser)]
struct Args {
    /// Interface to receive on (its XDP program is replaced by ours until we exit).
    iface: String,
    /// RX queue to serve.
    #[arg(long, default_value_t = 0)]
    queue: u32,
    /// Stop after this many frames (default: on Ctrl-C).
    #[arg(long)]
    count: Option<u64>,
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) if !e.use_stderr() => return e.print().map_or(ExitCode::FAILURE, |_| ExitCode::SUCCESS),
        Err(e) => return fail(e.to_string().lines().next().unwrap_or("bad arguments")),
    };
    run(&args).unwrap_or_else(|e| fail(&e.to_string()))
}

fn fail(message: &str) -> ExitCode {
    eprintln!("xsk-rxdrop: {} (see --help)", message.trim_start_matches("error: "));
    ExitCode::FAILURE
}

fn run(args: &Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    // 1. The socket: a UMEM of 4096 frames, four rings, bound to one queue. `open` puts every
    //    frame on the fill ring before bind(), so the kernel has somewhere to receive into.
    let ifindex =
        nix::net::if_::if_nametoindex(args.iface.as_str()).map_err(|e| format!("no interface {}: {e}", args.iface))?;
    let mut xsk = Xsk::open(&args.iface, ifindex, args.queue, &XskConfig::default(), BindMode::Copy)?;

    // 2. The XDP program (redirect-ebpf/xsk_all.c): bpf_redirect_map(&xsks, rx_queue_index).
    //    Our socket goes into the XSKMAP at our queue's index, then the program is attached.
    let mut ebpf = Ebpf::load(redirect_ebpf::XSK_ALL)?;
    let mut xsks = XskMap::try_from(ebpf.take_map("xsks").ok_or("no xsks map")?)?;
    xsks.set(args.queue, xsk.fd(), 0)?;
    let program: &mut Xdp = ebpf.program_mut("xsk_all").ok_or("no xsk_all program")?.try_into()?;
    program.load()?;
    program.attach(&args.iface, XdpMode::Driver)?; // detached when `ebpf` is dropped
    println!(
        r#"{{"event":"ready","example":"xsk-rxdrop","iface":"{}","queue":{},"mode":"{}"}}"#,
        args.iface,
        args.queue,
        xsk.mode()
    );

    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop))?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&stop))?;

    // 3. The loop: sleep until frames arrive, take a batch off the RX ring, give each frame
    //    back to the fill ring. The frame moves as a `Frame` token: RX hands it to us,
    //    `fill.push` hands it back; nothing is copied.
    let (mut received, mut shown, mut last) = (0u64, 0, Instant::now());
    while !stop.load(Ordering::Relaxed) && args.count.is_none_or(|n| received < n) {
        xsk.poll_rx(100)?;
        let parts = xsk.split();
        let mut fill = parts.fill.reserve(64);
        let mut rx = parts.rx.peek(fill.remaining());
        for frame in &mut rx {
            if shown < 3 {
                // The address is an offset into the UMEM; past the frame's start by the headroom.
                let size = u64::from(parts.umem.frame_size());
                let (index, offset) = (frame.addr() / size, frame.addr() % size);
                println!(
                    "frame at UMEM address {:#x} (frame {index} + {offset}), {} bytes",
                    frame.addr(),
                    frame.len()
                );
                shown += 1;
            }
            fill.push(frame); // the fill ring masks the address back to the frame's start
        }
        fill.submit();
        received += u64::from(rx.release());
        if last.elapsed().as_secs() >= 1 {
            let stats = xsk.statistics()?;
            let (full, empty) = (stats.rx_ring_full, stats.rx_fill_ring_empty_descs);
            println!("received {received} frames; kernel drops: rx ring full {full}, fill ring empty {empty}");
            last = Instant::now();
        }
    }

    // 4. The census: every frame is on a ring again (we hold none).
    drop(ebpf); // detach first, so nothing arrives while we count
    let census = xsk.frame_census();
    println!("received {received} frames; {census}");
    println!(
        r#"{{"event":"summary","example":"xsk-rxdrop","received":{received},"frames":{},"unaccounted":{}}}"#,
        census.total,
        census.elsewhere()
    );
    Ok(if census.elsewhere() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
