//! `afxdp-responder flood`: a load generator that sends ICMP echo requests from AF_XDP TX rings
//! and verifies every reply.
//!
//! Each queue gets one pinned thread with its own socket and UMEM. The UMEM is split in two:
//! frames on the fill ring receive replies (redirected to the socket by
//! `redirect-ebpf/flood_replies.c`), and a pool of TX frames (see
//! [`XskConfig::tx_frames`]) holds the requests being sent. Every request carries, in its
//! payload, the time it was sent and a sequence number; a reply is *correct* when both checksums
//! are valid, the addresses and MACs are swapped, the type is an echo reply, and identifier,
//! sequence and payload are exactly what was sent. Round-trip times come from the timestamp.
//!
//! Every run is bounded: by `--duration` (at most 600 s) and, optionally, `--count`.

use std::fmt::Write as _;
use std::io::Write;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aya::maps::{HashMap, MapData, XskMap};
use aya::programs::Xdp;
use aya::{Ebpf, EbpfLoader};

use crate::iface::{IfaceError, Interface};
use crate::loader::XdpMode;
use afxdp_xsk::{BindMode, Frame, SyscallError, Xsk, XskConfig, XskError};
use echo_wire::checksum::Sum;

/// The longest run allowed.
pub const MAX_DURATION: Duration = Duration::from_secs(600);
/// How long to keep receiving after the last request was sent.
const DRAIN: Duration = Duration::from_millis(300);
/// Bytes of our own data at the start of every request payload: send time and sequence number.
const STAMP_LEN: usize = 16;
const ETH_LEN: usize = 14;
const ICMP_HEADER_LEN: usize = 8;
/// Latency histogram: 100 ns buckets up to 10 ms, then one overflow bucket.
const BUCKET_NS: u64 = 100;
const BUCKETS: usize = 100_000;

/// Requests per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// As fast as the TX ring takes them.
    Max,
    /// A fixed rate, spread over the queues.
    Pps(u64),
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "max" {
            return Ok(Rate::Max);
        }
        let (digits, mult) = match s.strip_suffix(['k', 'K']) {
            Some(d) => (d, 1_000.0),
            None => match s.strip_suffix(['m', 'M']) {
                Some(d) => (d, 1_000_000.0),
                None => (s, 1.0),
            },
        };
        match digits.parse::<f64>() {
            Ok(v) if v > 0.0 && (v * mult) <= 100e6 => Ok(Rate::Pps((v * mult) as u64)),
            _ => Err(format!(
                "{s:?} is not a rate: use max or packets per second, e.g. 100000 or 100k"
            )),
        }
    }
}

/// What to send.
#[derive(Debug, Clone)]
pub struct FloodConfig {
    /// Interface to send from.
    pub iface: String,
    /// Address to ping.
    pub dst: IpAddr,
    /// Our source address (default: the interface's first address of the same family).
    pub src: Option<IpAddr>,
    /// MAC of the target (default: from the kernel's neighbour table).
    pub dst_mac: Option<[u8; 6]>,
    /// IP packet size in bytes (header included).
    pub size: usize,
    /// Requests per second.
    pub rate: Rate,
    /// How long to send.
    pub duration: Duration,
    /// Stop after this many requests (over all queues).
    pub count: Option<u64>,
    /// TX queues to send on, one thread each.
    pub queues: Vec<u32>,
    /// CPU of each thread.
    pub cpus: Vec<usize>,
    /// How to attach the reply-capturing XDP program.
    pub xdp_mode: XdpMode,
    /// Every N-th request gets a wrong ICMP checksum (0: never); such requests must not be answered.
    pub bad_checksum_every: u64,
}

/// Why a flood could not run.
#[derive(Debug, thiserror::Error)]
pub enum FloodError {
    /// Bad option.
    #[error("{0}")]
    Config(String),
    /// Interface lookup.
    #[error(transparent)]
    Iface(#[from] IfaceError),
    /// The capture program.
    #[error("loading the reply capture program: {0}")]
    Program(String),
    /// Socket set-up.
    #[error(transparent)]
    Xsk(#[from] XskError),
    /// A system call failed while running.
    #[error("queue {queue}: {source}")]
    Run {
        /// Queue of the failing thread.
        queue: u32,
        /// The failed call.
        #[source]
        source: SyscallError,
    },
}

/// What a flood measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FloodReport {
    /// Requests sent (valid and deliberately invalid).
    pub sent: u64,
    /// Requests sent with a deliberately wrong checksum.
    pub sent_invalid: u64,
    /// Frames received on the sockets (replies, correct or not).
    pub replies: u64,
    /// Replies that passed every check, each counted once.
    pub correct: u64,
    /// Replies that failed a check (wrong checksum, field, payload) or came twice.
    pub wrong: u64,
    /// Valid requests without a correct reply.
    pub lost: u64,
    /// Replies the generator's own kernel dropped before its sockets saw them (RX ring full,
    /// fill ring empty: `XDP_STATISTICS`), part of `lost`.
    pub kernel_dropped: u64,
    /// Seconds from the first request to the last.
    pub duration_s: f64,
    /// Round-trip times of correct replies, in microseconds: p50, p99, p99.9, max.
    pub latency_us: [f64; 4],
    /// AF_XDP mode of the sockets.
    pub mode: String,
}

impl FloodReport {
    /// Requests per second.
    pub fn sent_per_s(&self) -> f64 {
        if self.duration_s > 0.0 {
            self.sent as f64 / self.duration_s
        } else {
            0.0
        }
    }

    /// Correct replies per second.
    pub fn replies_per_s(&self) -> f64 {
        if self.duration_s > 0.0 {
            self.correct as f64 / self.duration_s
        } else {
            0.0
        }
    }

    /// Valid requests that got a reply, in percent.
    pub fn answered_pct(&self) -> f64 {
        let valid = self.sent - self.sent_invalid;
        if valid == 0 {
            100.0
        } else {
            100.0 * (self.correct + self.wrong).min(valid) as f64 / valid as f64
        }
    }

    /// Replies that were correct, in percent.
    pub fn correct_pct(&self) -> f64 {
        let all = self.correct + self.wrong;
        if all == 0 {
            100.0
        } else {
            100.0 * self.correct as f64 / all as f64
        }
    }

    /// One line of JSON (the format `bench` reads).
    pub fn to_json(&self) -> String {
        let [p50, p99, p999, max] = self.latency_us;
        format!(
            concat!(
                "{{\"sent\":{},\"sent_invalid\":{},\"replies\":{},\"correct\":{},\"wrong\":{},\"lost\":{},\"kernel_dropped\":{},",
                "\"duration_s\":{:.6},\"sent_per_s\":{:.1},\"replies_per_s\":{:.1},\"answered_pct\":{:.4},",
                "\"correct_pct\":{:.4},\"mode\":\"{}\",",
                "\"latency_us\":{{\"p50\":{:.2},\"p99\":{:.2},\"p999\":{:.2},\"max\":{:.2}}}}}"
            ),
            self.sent,
            self.sent_invalid,
            self.replies,
            self.correct,
            self.wrong,
            self.lost,
            self.kernel_dropped,
            self.duration_s,
            self.sent_per_s(),
            self.replies_per_s(),
            self.answered_pct(),
            self.correct_pct(),
            self.mode,
            p50,
            p99,
            p999,
            max
        )
    }

    /// A few lines for people.
    pub fn human(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "sent {} ({}/s{}), replies {} ({}/s)",
            self.sent,
            crate::stats::human_rate(self.sent_per_s()),
            if self.sent_invalid > 0 {
                format!(", {} with a bad checksum on purpose", self.sent_invalid)
            } else {
                String::new()
            },
            self.replies,
            crate::stats::human_rate(self.replies_per_s())
        );
        let _ = writeln!(
            s,
            "correct {} ({:.3} % of replies), wrong {}, lost {} ({:.3} % answered; {} dropped by this side's kernel)",
            self.correct,
            self.correct_pct(),
            self.wrong,
            self.lost,
            self.answered_pct(),
            self.kernel_dropped
        );
        let [p50, p99, p999, max] = self.latency_us;
        let _ = write!(
            s,
            "round trip: p50 {p50:.1} µs, p99 {p99:.1} µs, p99.9 {p999:.1} µs, max {max:.1} µs"
        );
        s
    }
}

/// Where the request fields live for one address family.
#[derive(Debug, Clone, Copy)]
struct Layout {
    v6: bool,
    ip_len: usize,
}

impl Layout {
    fn icmp(&self) -> usize {
        ETH_LEN + self.ip_len
    }
    fn payload(&self) -> usize {
        self.icmp() + ICMP_HEADER_LEN
    }
}

/// Everything a sending thread needs to build and check frames.
#[derive(Debug, Clone)]
struct Template {
    layout: Layout,
    frame: Vec<u8>,
    src: IpAddr,
    dst: IpAddr,
    our_mac: [u8; 6],
    their_mac: [u8; 6],
}

fn filler(i: usize) -> u8 {
    (i as u8).wrapping_mul(31) ^ 0x5a
}

impl Template {
    fn new(cfg: &FloodConfig, src: IpAddr, our_mac: [u8; 6], their_mac: [u8; 6]) -> Result<Self, FloodError> {
        let v6 = cfg.dst.is_ipv6();
        let ip_len = if v6 { 40 } else { 20 };
        let min = ip_len + ICMP_HEADER_LEN + STAMP_LEN;
        if cfg.size < min || cfg.size > 1500 {
            return Err(FloodError::Config(format!(
                "--size {} is not valid for IPv{}: use {min}..=1500 (IP packet bytes)",
                cfg.size,
                if v6 { 6 } else { 4 }
            )));
        }
        let layout = Layout { v6, ip_len };
        let mut f = vec![0u8; ETH_LEN + cfg.size];
        f[0..6].copy_from_slice(&their_mac);
        f[6..12].copy_from_slice(&our_mac);
        match (src, cfg.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
                let ip = &mut f[ETH_LEN..ETH_LEN + 20];
                ip[0] = 0x45;
                ip[2..4].copy_from_slice(&(cfg.size as u16).to_be_bytes());
                ip[6] = 0x40; // DF, as ping sets it
                ip[8] = 64;
                ip[9] = 1;
                ip[12..16].copy_from_slice(&s.octets());
                ip[16..20].copy_from_slice(&d.octets());
                f[layout.icmp()] = 8;
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
                let ip = &mut f[ETH_LEN..ETH_LEN + 40];
                ip[0] = 0x60;
                ip[4..6].copy_from_slice(&((cfg.size - 40) as u16).to_be_bytes());
                ip[6] = 58;
                ip[7] = 64;
                ip[8..24].copy_from_slice(&s.octets());
                ip[24..40].copy_from_slice(&d.octets());
                f[layout.icmp()] = 128;
            }
            _ => return Err(FloodError::Config("--src and --dst must be of the same family".into())),
        }
        let start = layout.payload() + STAMP_LEN;
        for (i, byte) in f.iter_mut().enumerate().skip(start) {
            *byte = filler(i);
        }
        Ok(Template {
            layout,
            frame: f,
            src,
            dst: cfg.dst,
            our_mac,
            their_mac,
        })
    }

    /// Writes request number `gseq` (identifier `ident`) sent at `ts_ns` into `out`.
    fn write_request(&self, out: &mut [u8], ident: u16, gseq: u64, ts_ns: u64, bad_checksum: bool) {
        let l = self.layout;
        out.copy_from_slice(&self.frame);
        if !l.v6 {
            let ip = &mut out[ETH_LEN..ETH_LEN + 20];
            ip[4..6].copy_from_slice(&(gseq as u16).to_be_bytes());
            let c = Sum::new().add_bytes(ip).checksum();
            ip[10..12].copy_from_slice(&c.to_be_bytes());
        }
        let icmp = l.icmp();
        out[icmp + 4..icmp + 6].copy_from_slice(&ident.to_be_bytes());
        out[icmp + 6..icmp + 8].copy_from_slice(&(gseq as u16).to_be_bytes());
        out[l.payload()..l.payload() + 8].copy_from_slice(&ts_ns.to_be_bytes());
        out[l.payload() + 8..l.payload() + 16].copy_from_slice(&gseq.to_be_bytes());
        let mut sum = Sum::new().add_bytes(&out[icmp..]);
        if l.v6 {
            sum = sum
                .add_bytes(&out[ETH_LEN + 8..ETH_LEN + 40])
                .add_u32((out.len() - icmp) as u32)
                .add_u16(58);
        }
        let mut c = sum.checksum();
        if bad_checksum {
            c = !c.wrapping_add(0x1234);
        }
        out[icmp + 2..icmp + 4].copy_from_slice(&c.to_be_bytes());
    }

    /// Checks a reply; returns `(gseq, send timestamp)` if it is exactly right.
    fn check_reply(&self, frame: &[u8], ident: u16) -> Option<(u64, u64)> {
        let l = self.layout;
        if frame.len() != self.frame.len() || frame[0..6] != self.our_mac || frame[6..12] != self.their_mac {
            return None;
        }
        if frame[12..14] != self.frame[12..14] {
            return None;
        }
        let icmp = l.icmp();
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let ip = &frame[ETH_LEN..ETH_LEN + 20];
                if ip[0] != 0x45 || ip[2..4] != self.frame[ETH_LEN + 2..ETH_LEN + 4] || ip[9] != 1 {
                    return None;
                }
                if ip[12..16] != d.octets() || ip[16..20] != s.octets() || !Sum::new().add_bytes(ip).is_valid() {
                    return None;
                }
                if frame[icmp] != 0 || !Sum::new().add_bytes(&frame[icmp..]).is_valid() {
                    return None;
                }
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let ip = &frame[ETH_LEN..ETH_LEN + 40];
                if ip[0] >> 4 != 6 || ip[4..6] != self.frame[ETH_LEN + 4..ETH_LEN + 6] || ip[6] != 58 {
                    return None;
                }
                if ip[8..24] != d.octets() || ip[24..40] != s.octets() {
                    return None;
                }
                let sum = Sum::new()
                    .add_bytes(&frame[icmp..])
                    .add_bytes(&ip[8..40])
                    .add_u32((frame.len() - icmp) as u32)
                    .add_u16(58);
                if frame[icmp] != 129 || !sum.is_valid() {
                    return None;
                }
            }
            _ => return None,
        }
        if frame[icmp + 1] != 0 || frame[icmp + 4..icmp + 6] != ident.to_be_bytes() {
            return None;
        }
        let p = l.payload();
        let ts = u64::from_be_bytes(frame[p..p + 8].try_into().ok()?);
        let gseq = u64::from_be_bytes(frame[p + 8..p + 16].try_into().ok()?);
        if frame[icmp + 6..icmp + 8] != (gseq as u16).to_be_bytes() {
            return None;
        }
        if frame[p + STAMP_LEN..] != self.frame[p + STAMP_LEN..] {
            return None;
        }
        Some((gseq, ts))
    }
}

/// The reply-capturing XDP program, attached while the flood runs (detached on drop).
struct CaptureProgram {
    _ebpf: Ebpf,
    xsks: XskMap<MapData>,
}

impl CaptureProgram {
    fn load_and_attach(iface: &str, mode: XdpMode, our_addr: IpAddr) -> Result<Self, FloodError> {
        let err = |what: &str, e: &dyn std::fmt::Display| FloodError::Program(format!("{what}: {e}"));
        let mut ebpf = EbpfLoader::new()
            .load(aya::include_bytes_aligned!(concat!(
                env!("OUT_DIR"),
                "/flood_replies.o"
            )))
            .map_err(|e| err("loading the object", &e))?;
        let mut owned: HashMap<MapData, [u8; 20], u32> = HashMap::try_from(
            ebpf.take_map("owned_addrs")
                .ok_or_else(|| err("map", &"owned_addrs missing"))?,
        )
        .map_err(|e| err("owned_addrs", &e))?;
        let mut key = [0u8; 20];
        key[4..20].copy_from_slice(&match our_addr {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        });
        owned.insert(key, 0, 0).map_err(|e| err("owned_addrs insert", &e))?;
        let xsks = XskMap::try_from(ebpf.take_map("xsks").ok_or_else(|| err("map", &"xsks missing"))?)
            .map_err(|e| err("xsks", &e))?;
        let program: &mut Xdp = ebpf
            .program_mut("flood_replies")
            .ok_or_else(|| err("program", &"flood_replies missing"))?
            .try_into()
            .map_err(|e| err("program", &e))?;
        program.load().map_err(|e| err("loading into the kernel", &e))?;
        let flags = match mode {
            XdpMode::Auto => aya::programs::XdpMode::Default,
            XdpMode::Native => aya::programs::XdpMode::Driver,
            XdpMode::Skb => aya::programs::XdpMode::Skb,
        };
        program.attach(iface, flags).map_err(|e| {
            err(
                &format!("attaching to {iface} (is another XDP program attached? `ip link show dev {iface}` shows it)"),
                &e,
            )
        })?;
        Ok(CaptureProgram { _ebpf: ebpf, xsks })
    }
}

/// The neighbour table's MAC for `ip` on `iface` (`ip neigh show`), for the default `--dst-mac`.
fn neighbour_mac(iface: &str, ip: IpAddr) -> Option<[u8; 6]> {
    let out = std::process::Command::new("ip")
        .args(["neigh", "show", "to", &ip.to_string(), "dev", iface])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mac = text.split_whitespace().skip_while(|w| *w != "lladdr").nth(1)?;
    parse_mac(mac)
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Per-thread results.
#[derive(Debug)]
struct ThreadResult {
    sent: u64,
    sent_invalid: u64,
    replies: u64,
    correct: u64,
    wrong: u64,
    first_send: Option<Instant>,
    last_send: Option<Instant>,
    histogram: Vec<u64>,
    max_ns: u64,
    mode: BindMode,
    kernel_dropped: u64,
}

/// Runs a flood and returns what it measured. `stop` ends it early (Ctrl-C).
pub fn run(cfg: &FloodConfig, stop: &AtomicBool, out: &mut dyn Write) -> Result<FloodReport, FloodError> {
    if cfg.duration.is_zero() || cfg.duration > MAX_DURATION {
        return Err(FloodError::Config(format!(
            "--duration {:?} is not valid: use 0 < seconds <= {}",
            cfg.duration,
            MAX_DURATION.as_secs()
        )));
    }
    if cfg.queues.is_empty() || cfg.cpus.len() != cfg.queues.len() {
        return Err(FloodError::Config(
            "give one CPU per queue (--cpus) and at least one queue".into(),
        ));
    }
    let iface = Interface::lookup(&cfg.iface)?;
    for &q in &cfg.queues {
        if q >= iface.queue_count {
            return Err(FloodError::Config(format!(
                "{} has {} queue(s); queue {q} does not exist: pick --queues below {}",
                iface.name, iface.queue_count, iface.queue_count
            )));
        }
    }
    let src = match cfg.src {
        Some(s) => s,
        None => iface
            .addresses()?
            .into_iter()
            .filter(|a| a.is_ipv6() == cfg.dst.is_ipv6())
            .min_by_key(|a| matches!(a, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80))
            .ok_or_else(|| {
                FloodError::Config(format!(
                    "{} has no address of the family of {}: pass --src",
                    iface.name, cfg.dst
                ))
            })?,
    };
    let their_mac = match cfg.dst_mac.or_else(|| neighbour_mac(&iface.name, cfg.dst)) {
        Some(m) => m,
        None => {
            return Err(FloodError::Config(format!(
                "no neighbour entry for {} on {}: ping it once first or pass --dst-mac",
                cfg.dst, iface.name
            )));
        }
    };
    let template = Template::new(cfg, src, iface.mac, their_mac)?;
    let mut capture = CaptureProgram::load_and_attach(&iface.name, cfg.xdp_mode, src)?;

    let xsk_cfg = XskConfig {
        fill_size: 4096,
        rx_size: 2048,
        tx_size: 2048,
        comp_size: 2048,
        tx_frames: 2048,
        ..XskConfig::default()
    };
    let mut sockets = Vec::new();
    for &queue in &cfg.queues {
        let (xsk, _) = Xsk::open_auto(&iface.name, iface.index, queue, &xsk_cfg)?;
        capture
            .xsks
            .set(queue, xsk.fd().as_fd(), 0)
            .map_err(|e| FloodError::Program(format!("registering queue {queue}: {e}")))?;
        sockets.push(xsk);
    }
    let n = cfg.queues.len() as u64;
    let _ = writeln!(
        out,
        "flood: {src} -> {} on {} queue(s) {:?} ({} mode), {}-byte IP packets, rate {}, for at most {:?}{}",
        cfg.dst,
        iface.name,
        cfg.queues,
        sockets[0].mode(),
        cfg.size,
        match cfg.rate {
            Rate::Max => "max".to_string(),
            Rate::Pps(p) => format!("{p}/s"),
        },
        cfg.duration,
        cfg.count.map(|c| format!(" or {c} requests")).unwrap_or_default()
    );

    let base = Instant::now();
    let results: Vec<Result<ThreadResult, FloodError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = sockets
            .into_iter()
            .enumerate()
            .map(|(i, xsk)| {
                let template = template.clone();
                let cpu = cfg.cpus[i];
                let count = cfg.count.map(|c| c / n + u64::from((i as u64) < c % n));
                let rate = match cfg.rate {
                    Rate::Max => None,
                    Rate::Pps(p) => Some((p as f64 / n as f64).max(1.0)),
                };
                let ident = 0x4146u16.wrapping_add(i as u16);
                scope.spawn(move || {
                    let mut set = nix::sched::CpuSet::new();
                    if set.set(cpu).is_ok() {
                        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
                    }
                    let queue = xsk.queue();
                    sender(xsk, &template, ident, base, cfg, count, rate, stop)
                        .map_err(|source| FloodError::Run { queue, source })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("flood thread panicked"))
            .collect()
    });
    drop(capture);

    let mut report = FloodReport::default();
    let mut histogram = vec![0u64; BUCKETS + 1];
    let mut max_ns = 0;
    let (mut first, mut last) = (None::<Instant>, None::<Instant>);
    for r in results {
        let r = r?;
        report.sent += r.sent;
        report.sent_invalid += r.sent_invalid;
        report.replies += r.replies;
        report.correct += r.correct;
        report.wrong += r.wrong;
        report.kernel_dropped += r.kernel_dropped;
        report.mode = r.mode.to_string();
        for (h, v) in histogram.iter_mut().zip(&r.histogram) {
            *h += v;
        }
        max_ns = max_ns.max(r.max_ns);
        first = match (first, r.first_send) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        last = match (last, r.last_send) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    report.lost = (report.sent - report.sent_invalid).saturating_sub(report.correct);
    report.duration_s = match (first, last) {
        (Some(a), Some(b)) if b > a => (b - a).as_secs_f64(),
        _ => 0.0,
    };
    report.latency_us = [
        percentile(&histogram, 0.50),
        percentile(&histogram, 0.99),
        percentile(&histogram, 0.999),
        max_ns as f64 / 1000.0,
    ];
    Ok(report)
}

/// The `q`-quantile of the histogram, in microseconds (bucket upper bound).
fn percentile(histogram: &[u64], q: f64) -> f64 {
    let total: u64 = histogram.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, &c) in histogram.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return ((i as u64 + 1) * BUCKET_NS) as f64 / 1000.0;
        }
    }
    (histogram.len() as u64 * BUCKET_NS) as f64 / 1000.0
}

/// One queue's loop: send (paced), reclaim, receive and verify; then drain replies.
#[allow(clippy::too_many_arguments)]
fn sender(
    mut xsk: Xsk,
    template: &Template,
    ident: u16,
    base: Instant,
    cfg: &FloodConfig,
    count: Option<u64>,
    rate: Option<f64>,
    stop: &AtomicBool,
) -> Result<ThreadResult, SyscallError> {
    const BATCH: u32 = 64;
    let mut free: Vec<Frame> = xsk.take_tx_frames().collect();
    let frame_len = template.frame.len() as u32;
    let mut seen: Vec<u64> = Vec::new();
    let mut r = ThreadResult {
        sent: 0,
        sent_invalid: 0,
        replies: 0,
        correct: 0,
        wrong: 0,
        first_send: None,
        last_send: None,
        histogram: vec![0; BUCKETS + 1],
        max_ns: 0,
        mode: xsk.mode(),
        kernel_dropped: 0,
    };
    let start = Instant::now();
    let end = start + cfg.duration;
    let mut drain_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let sending = drain_until.is_none();
        if sending && (now >= end || stop.load(Ordering::Relaxed) || count.is_some_and(|c| r.sent >= c)) {
            drain_until = Some(now + DRAIN);
        }
        if let Some(t) = drain_until
            && now >= t
        {
            break;
        }

        // Reclaim sent frames.
        let parts = xsk.split();
        free.extend(parts.completion.peek(parts.completion.size()));

        // Send, paced.
        let mut sent_now = 0;
        if drain_until.is_none() {
            let mut want = BATCH.min(free.len() as u32);
            if let Some(c) = count {
                want = want.min((c - r.sent).min(u64::from(u32::MAX)) as u32);
            }
            if let Some(pps) = rate {
                let due = (now.duration_since(start).as_secs_f64() * pps) as u64 + 1;
                want = want.min(due.saturating_sub(r.sent).min(u64::from(BATCH)) as u32);
            }
            let mut batch = parts.tx.reserve(want);
            let n = batch.remaining();
            for _ in 0..n {
                let mut tx_frame = free.pop().expect("reserved no more than the free frames");
                tx_frame.set_len(frame_len);
                let gseq = r.sent;
                let bad = cfg.bad_checksum_every > 0 && (gseq + 1).is_multiple_of(cfg.bad_checksum_every);
                let frame = parts.umem.frame_mut(&tx_frame).expect("TX frame inside the UMEM");
                let ts = base.elapsed().as_nanos() as u64;
                template.write_request(frame, ident, gseq, ts, bad);
                batch.push(tx_frame);
                r.sent += 1;
                r.sent_invalid += u64::from(bad);
            }
            batch.submit();
            sent_now = n;
            if n > 0 {
                r.first_send.get_or_insert(now);
                r.last_send = Some(now);
            }
        }
        let mut kicks = 0;
        while xsk.tx().outstanding() > 0 && kicks < 4 {
            xsk.kick_tx()?;
            kicks += 1;
        }

        // Receive and verify, no more than the fill ring can take back right now (the kernel
        // publishes its fill consumer index lazily).
        let parts = xsk.split();
        let mut room = parts.fill.reserve(BATCH);
        let mut received = parts.rx.peek(room.remaining());
        let got = received.len() as u32;
        let now_ns = base.elapsed().as_nanos() as u64;
        for rx_frame in &mut received {
            r.replies += 1;
            let ok = parts
                .umem
                .frame_mut(&rx_frame)
                .and_then(|f| template.check_reply(f, ident));
            match ok {
                Some((gseq, ts)) if gseq < r.sent && !test_and_set(&mut seen, gseq) => {
                    r.correct += 1;
                    let rtt = now_ns.saturating_sub(ts);
                    r.max_ns = r.max_ns.max(rtt);
                    r.histogram[((rtt / BUCKET_NS) as usize).min(BUCKETS)] += 1;
                }
                _ => r.wrong += 1,
            }
            room.push(rx_frame);
        }
        room.submit();
        received.release();

        if got == 0 && sent_now == 0 {
            // Nothing to do right now: wait for replies, but not past the next send time.
            xsk.poll_rx(if rate.is_some() || drain_until.is_some() { 1 } else { 0 })?;
        }
    }
    r.kernel_dropped = xsk.statistics().map(|s| crate::stats::KernelStats::from(s).dropped())?;
    Ok(r)
}

/// Marks `i` in the bitset; returns whether it was already set (a duplicate reply).
fn test_and_set(bits: &mut Vec<u64>, i: u64) -> bool {
    let word = (i / 64) as usize;
    if word >= bits.len() {
        bits.resize(word + 1, 0);
    }
    let mask = 1u64 << (i % 64);
    let was = bits[word] & mask != 0;
    bits[word] |= mask;
    was
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dst: &str, size: usize) -> FloodConfig {
        FloodConfig {
            iface: "x".into(),
            dst: dst.parse().unwrap(),
            src: None,
            dst_mac: None,
            size,
            rate: Rate::Max,
            duration: Duration::from_secs(1),
            count: None,
            queues: vec![0],
            cpus: vec![0],
            xdp_mode: XdpMode::Auto,
            bad_checksum_every: 0,
        }
    }

    /// Turns a request into the reply a correct responder would send (swap, type, checksums).
    fn reply_to(req: &[u8], v6: bool) -> Vec<u8> {
        let mut f = req.to_vec();
        let (a, b) = f.split_at_mut(6);
        a.swap_with_slice(&mut b[..6]);
        let icmp = if v6 { ETH_LEN + 40 } else { ETH_LEN + 20 };
        if v6 {
            let (s, d) = f[ETH_LEN + 8..ETH_LEN + 40].split_at_mut(16);
            s.swap_with_slice(d);
            f[icmp] = 129;
        } else {
            let (s, d) = f[ETH_LEN + 12..ETH_LEN + 20].split_at_mut(4);
            s.swap_with_slice(d);
            f[icmp] = 0;
        }
        f[icmp + 2..icmp + 4].copy_from_slice(&[0, 0]);
        let mut sum = Sum::new().add_bytes(&f[icmp..]);
        if v6 {
            sum = sum
                .add_bytes(&f[ETH_LEN + 8..ETH_LEN + 40])
                .add_u32((f.len() - icmp) as u32)
                .add_u16(58);
        }
        let c = sum.checksum();
        f[icmp + 2..icmp + 4].copy_from_slice(&c.to_be_bytes());
        f
    }

    #[test]
    fn requests_are_valid_and_replies_are_checked_byte_by_byte() {
        for (dst, src, size) in [("198.18.0.1", "198.18.0.2", 64), ("2001:db8::1", "2001:db8::2", 1000)] {
            let c = cfg(dst, size);
            let t = Template::new(&c, src.parse().unwrap(), [2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1]).unwrap();
            let mut req = vec![0u8; t.frame.len()];
            t.write_request(&mut req, 7, 12345, 999, false);
            let parsed = etherparse_free_check(&req);
            assert!(parsed, "request checksums valid");
            let reply = reply_to(&req, t.layout.v6);
            assert_eq!(t.check_reply(&reply, 7), Some((12345, 999)));
            assert_eq!(t.check_reply(&reply, 8), None, "other identifier");
            for i in 0..reply.len() {
                let mut bad = reply.clone();
                bad[i] ^= 0x01;
                // Every single-bit change is caught (the IPv4 header checksum covers the whole
                // IPv4 header), except in the IPv6 fields no checksum covers and we do not
                // look at: traffic class, flow label, hop limit.
                let ignorable = t.layout.v6 && ((ETH_LEN..ETH_LEN + 4).contains(&i) || i == ETH_LEN + 7);
                if !ignorable {
                    assert_eq!(t.check_reply(&bad, 7), None, "bit flip at byte {i} must be caught");
                }
            }
        }
    }

    /// Request checksums verified with the generic summer (independent of write_request's path).
    fn etherparse_free_check(req: &[u8]) -> bool {
        if req[12..14] == [0x08, 0x00] {
            Sum::new().add_bytes(&req[ETH_LEN..ETH_LEN + 20]).is_valid()
                && Sum::new().add_bytes(&req[ETH_LEN + 20..]).is_valid()
        } else {
            let icmp = ETH_LEN + 40;
            Sum::new()
                .add_bytes(&req[icmp..])
                .add_bytes(&req[ETH_LEN + 8..ETH_LEN + 40])
                .add_u32((req.len() - icmp) as u32)
                .add_u16(58)
                .is_valid()
        }
    }

    #[test]
    fn bad_checksum_requests_are_invalid() {
        let c = cfg("198.18.0.1", 100);
        let t = Template::new(&c, "198.18.0.2".parse().unwrap(), [2; 6], [4; 6]).unwrap();
        let mut req = vec![0u8; t.frame.len()];
        t.write_request(&mut req, 1, 5, 1, true);
        assert!(!Sum::new().add_bytes(&req[ETH_LEN + 20..]).is_valid());
    }

    #[test]
    fn sizes_rates_and_percentiles() {
        assert!(Template::new(&cfg("198.18.0.1", 43), "198.18.0.2".parse().unwrap(), [2; 6], [4; 6]).is_err());
        assert!(Template::new(&cfg("2001:db8::1", 63), "2001:db8::2".parse().unwrap(), [2; 6], [4; 6]).is_err());
        assert!(Template::new(&cfg("198.18.0.1", 1501), "198.18.0.2".parse().unwrap(), [2; 6], [4; 6]).is_err());
        assert_eq!("max".parse::<Rate>().unwrap(), Rate::Max);
        assert_eq!("100k".parse::<Rate>().unwrap(), Rate::Pps(100_000));
        assert_eq!("2M".parse::<Rate>().unwrap(), Rate::Pps(2_000_000));
        assert!(
            "fast"
                .parse::<Rate>()
                .unwrap_err()
                .contains("use max or packets per second")
        );
        let mut h = vec![0u64; BUCKETS + 1];
        h[9] = 50; // 1.0 µs
        h[99] = 49; // 10 µs
        h[999] = 1; // 100 µs
        assert_eq!(percentile(&h, 0.5), 1.0);
        assert_eq!(percentile(&h, 0.99), 10.0);
        assert_eq!(percentile(&h, 0.999), 100.0);
        let mut bits = Vec::new();
        assert!(!test_and_set(&mut bits, 1000));
        assert!(test_and_set(&mut bits, 1000));
        assert_eq!(parse_mac("02:af:00:00:00:01"), Some([2, 0xaf, 0, 0, 0, 1]));
    }
}
