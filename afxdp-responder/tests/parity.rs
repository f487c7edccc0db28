//! Kernel parity: the same crafted frames, once answered by the Linux kernel's own stack and once
//! with afxdp-responder running, must get the same answer: the same reply bytes or no reply.
//!
//! The frames are built by scapy (`tests/parity/parity.py`, run in the client namespace), which also
//! sends them on a raw packet socket and captures what comes back. Both runs use the same namespace
//! pair and the same sysctls; the only bytes allowed to differ are the IPv4 identification (and the
//! header checksum that covers it) and the IPv6 flow label, which Linux picks itself. The table this
//! test prints is the one in `docs/parity.md` (`PARITY_TABLE=path` writes it to a file as well).
//!
//! The test also checks *who* answered in the responder run (the responder's kernel counts every
//! ICMP message it sends): a case the XDP program should redirect must be answered by the
//! responder, not quietly by the kernel, or the parity would prove nothing.

mod common;

use std::fmt::Write as _;
use std::time::Duration;

use afxdp_lab::{NetnsPair, ResponderExit, Side, mac_string};
use common::{assert_frames_accounted, pair, start, sysctl};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/parity/parity.py");

/// Who answers a case while the responder runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// The XDP program redirects it and the responder replies.
    Responder,
    /// The XDP program redirects it and the responder drops it (bad checksum).
    ResponderDrops,
    /// The XDP program passes it and the kernel replies (with an echo reply or an ICMP error).
    Kernel,
    /// The XDP program passes it and nobody replies.
    Nobody,
}

/// Every case of `parity.py`, in its order, with who must answer it while the responder runs.
const CASES: &[(&str, Who)] = &[
    ("v4-basic", Who::Responder),
    ("v4-odd-payload", Who::Responder),
    ("v4-empty-payload", Who::Responder),
    ("v4-ethernet-trailer", Who::Responder),
    ("v4-payload-1472", Who::Responder),
    ("v4-ip-options-nop", Who::Kernel),
    ("v4-ip-options-record-route", Who::Kernel),
    ("v4-fragments", Who::Kernel),
    ("v4-lone-first-fragment", Who::Kernel),
    ("v4-bad-icmp-checksum", Who::ResponderDrops),
    ("v4-bad-ip-header-checksum", Who::ResponderDrops),
    ("v4-icmp-truncated-4", Who::Nobody),
    ("v4-total-length-beyond-frame", Who::Nobody),
    ("v4-subnet-broadcast", Who::Nobody),
    ("v4-limited-broadcast", Who::Nobody),
    ("v4-multicast-224.0.0.1", Who::Nobody),
    ("v4-other-host-ip-our-mac", Who::Nobody),
    ("v4-our-ip-other-mac", Who::Nobody),
    ("v4-broadcast-source", Who::Nobody),
    ("v4-source-0.0.0.0", Who::Nobody),
    ("v4-ttl1-tos-b8-df-id", Who::Responder),
    ("v4-echo-code-1", Who::Responder),
    ("v4-timestamp-request", Who::Kernel),
    ("v4-unsolicited-echo-reply", Who::Nobody),
    ("v4-destination-unreachable", Who::Nobody),
    ("v4-vlan-100", Who::Nobody),
    ("v4-vlan-0-priority-tag", Who::Responder),
    ("v6-basic", Who::Responder),
    ("v6-odd-payload", Who::Responder),
    ("v6-payload-1452", Who::Responder),
    ("v6-bad-checksum", Who::ResponderDrops),
    ("v6-multicast-ff02::1", Who::Kernel),
    ("v6-other-host-address", Who::Nobody),
    ("v6-link-local", Who::Kernel),
    ("v6-hop-by-hop", Who::Kernel),
    ("v6-destination-options", Who::Kernel),
    ("v6-vlan-0-priority-tag", Who::Responder),
    ("v6-fragments", Who::Kernel),
];

/// Cases where the responder is allowed to differ from the kernel with forwarding on (the FIB
/// decides), and why (docs/parity.md, "Deliberate differences").
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[(
    "fib-v6-reply-over-unlocked-route-mtu",
    "bpf_fib_lookup sees an IPv6 route's MTU only when it is locked (ip6_mtu_from_fib6)",
)];

/// The same with forwarding off (the host mirror decides): none.
const NO_KNOWN_DIFFERENCES: &[(&str, &str)] = &[];

/// What one run of one case produced.
#[derive(Debug, Clone)]
struct Outcome {
    name: String,
    /// ICMP messages the responder namespace's kernel sent (ND and MLD not counted).
    kernel_icmp_out: u64,
    sent: Vec<Vec<u8>>,
    replies: Vec<Vec<u8>>,
}

fn hex_list(field: &str) -> Vec<Vec<u8>> {
    if field == "-" {
        return Vec::new();
    }
    field
        .split(',')
        .map(|h| {
            (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex from parity.py"))
                .collect()
        })
        .collect()
}

fn link_local(pair: &NetnsPair, side: Side) -> String {
    let out = pair
        .command_in(side, "ip")
        .args(["-6", "-o", "addr", "show", "dev", pair.ifname(side), "scope", "link"])
        .output()
        .expect("ip addr show");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "inet6")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap_or_else(|| panic!("no link-local address on {}: {text}", pair.ifname(side)))
        .to_string()
}

/// The routing and neighbour cases (`fib_cases` in `parity.py`, run with forwarding enabled on
/// the responder's interface and the routes of [`fib_routes`]), with who must answer them while
/// the responder runs. The XDP program asks the kernel's FIB about each reply and redirects only
/// what Linux would send by this interface to a resolved neighbour.
const FIB_CASES: &[(&str, Who)] = &[
    ("fib-v4-neighbour-resolves", Who::Kernel),
    ("fib-v6-neighbour-resolves", Who::Kernel),
    ("fib-v4-basic", Who::Responder),
    ("fib-v6-basic", Who::Responder),
    ("fib-v4-source-own-address", Who::Nobody),
    ("fib-v4-source-subnet-broadcast", Who::Kernel),
    ("fib-v4-source-no-route", Who::Nobody),
    ("fib-v6-source-no-route", Who::Nobody),
    ("fib-v4-source-blackhole", Who::Nobody),
    ("fib-v4-source-unreachable", Who::Nobody),
    ("fib-v4-source-prohibit", Who::Nobody),
    ("fib-v6-source-blackhole", Who::Nobody),
    ("fib-v6-source-unreachable", Who::Nobody),
    ("fib-v6-source-prohibit", Who::Nobody),
    ("fib-v6-ipv4-compatible-source", Who::Nobody),
    ("fib-v4-reply-over-route-mtu", Who::Kernel),
    ("fib-v6-reply-over-route-mtu", Who::Kernel),
    ("fib-v6-reply-over-unlocked-route-mtu", Who::Responder),
    ("fib-v4-source-mac-not-the-neighbours", Who::Responder),
    ("fib-v6-source-mac-not-the-neighbours", Who::Responder),
    ("fib-v4-source-mac-zero", Who::Responder),
    ("fib-v6-source-mac-zero", Who::Responder),
    ("fib-v4-source-mac-ours", Who::Responder),
    ("fib-v4-source-mac-multicast", Who::Kernel),
    ("fib-v4-route-hoplimit", Who::Responder),
    ("fib-v6-route-hoplimit", Who::Responder),
    ("fib-v6-link-local", Who::Kernel),
    // The program takes frames for the config map's MAC; after a MAC change the FIB's source MAC
    // (the device's current one) no longer matches a frame sent to the old MAC: passed, and
    // Linux drops it. A frame to the new MAC is the kernel's until the map follows the change.
    ("fib-v4-to-the-old-mac-after-a-mac-change", Who::Nobody),
    ("fib-v4-to-the-new-mac-after-a-mac-change", Who::Kernel),
    // A MAC change flushes the neighbour table: the kernel resolves the client first.
    ("fib-v4-after-the-mac-is-back", Who::Kernel),
    // The kernel answers the last three (IcmpOutMsgs counts the reply), but the reply waits for
    // a neighbour that never answers ARP / NS: nothing arrives, in both runs.
    ("fib-v4-source-network-address", Who::Kernel),
    ("fib-v4-source-no-neighbour", Who::Kernel),
    ("fib-v6-source-no-neighbour", Who::Kernel),
];

/// The same cases with forwarding off on the responder's interface (the default on a host that is
/// not a router): the kernel refuses the program's FIB lookups, and the responder's host mirror
/// (routes and neighbour entries copied from rtnetlink into BPF maps) decides instead. Who
/// answers is the same as with the FIB, except where the FIB cannot see what the mirror sees:
/// an unlocked IPv6 route MTU (passed: the kernel fragments, as Linux does).
fn fib_off_cases() -> Vec<(&'static str, Who)> {
    FIB_CASES
        .iter()
        .map(|&(name, who)| match name {
            "fib-v6-reply-over-unlocked-route-mtu" => (name, Who::Kernel),
            _ => (name, who),
        })
        .collect()
}

/// The routes `fib_cases` relies on, in the responder namespace (`ip ARGS`).
fn fib_routes(pair: &NetnsPair) -> Vec<Vec<String>> {
    let dev = pair.responder_if();
    let (c4, c6) = (pair.config().client_v4, pair.config().client_v6);
    [
        "route add blackhole 198.19.1.0/24".to_string(),
        "route add unreachable 198.19.2.0/24".to_string(),
        "route add prohibit 198.19.3.0/24".to_string(),
        format!("route add 198.19.4.0/24 via {c4} dev {dev} mtu lock 576"),
        "-6 route add blackhole 2001:db8:11::/64".to_string(),
        "-6 route add unreachable 2001:db8:12::/64".to_string(),
        "-6 route add prohibit 2001:db8:13::/64".to_string(),
        format!("-6 route add 2001:db8:4::/64 via {c6} dev {dev} mtu lock 1280"),
        format!("-6 route add 2001:db8:5::/64 via {c6} dev {dev} mtu 1280"),
        format!("route add 198.19.6.0/24 via {c4} dev {dev} hoplimit 9"),
        format!("-6 route add 2001:db8:6::/64 via {c6} dev {dev} hoplimit 9"),
    ]
    .iter()
    .map(|line| line.split_whitespace().map(String::from).collect())
    .collect()
}

/// Runs the cases of `parity.py` chosen by `args` (none: the packet-format cases; `["--fib"]`:
/// the routing and neighbour cases) once, from the client namespace, and parses what came back.
fn run_group(pair: &NetnsPair, args: &[&str]) -> Vec<Outcome> {
    let cfg = pair.config();
    let json = format!(
        concat!(
            r#"{{"client_if":"{}","responder_ns":"{}","client_mac":"{}","responder_mac":"{}","#,
            r#""client_v4":"{}","responder_v4":"{}","broadcast_v4":"198.18.0.255","other_v4":"198.18.0.3","#,
            r#""client_v6":"{}","responder_v6":"{}","other_v6":"2001:db8:0:1::3","#,
            r#""client_v6_ll":"{}","responder_v6_ll":"{}","other_mac":"02:af:00:00:00:99","#,
            r#""responder_if":"{}"}}"#
        ),
        pair.client_if(),
        pair.responder_ns(),
        mac_string(cfg.client_mac),
        mac_string(cfg.responder_mac),
        cfg.client_v4,
        cfg.responder_v4,
        cfg.client_v6,
        cfg.responder_v6,
        link_local(pair, Side::Client),
        link_local(pair, Side::Responder),
        pair.responder_if(),
    );
    let mut cmd = pair.command_in(Side::Client, "timeout");
    cmd.args(["120", "python3", SCRIPT, &json]).args(args);
    let out = cmd.output().expect("running python3 tests/parity/parity.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "parity.py failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        stdout
    );
    stdout
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            (f.len() == 5 && f[0] == "case").then(|| Outcome {
                name: f[1].to_string(),
                kernel_icmp_out: f[2].parse().expect("a count"),
                sent: hex_list(f[3]),
                replies: hex_list(f[4]),
            })
        })
        .collect()
}

/// Offset of the IP header (after one VLAN tag, if any) and the EtherType.
fn l3(frame: &[u8]) -> (usize, u16) {
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    if matches!(ethertype, 0x8100 | 0x88a8) && frame.len() >= 18 {
        (18, u16::from_be_bytes([frame[16], frame[17]]))
    } else {
        (14, ethertype)
    }
}

/// `frame` with the bytes that may differ zeroed: IPv4 identification and header checksum, IPv6
/// flow label and fragment identification; for a timestamp reply also its receive/transmit timestamps and ICMP checksum (the
/// kernel's clock, different in each run).
fn masked(frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    let (at, ethertype) = l3(&f);
    match ethertype {
        0x0800 if f.len() >= at + 20 => {
            f[at + 4..at + 6].fill(0);
            f[at + 10..at + 12].fill(0);
            let icmp = at + usize::from(f[at] & 0x0f) * 4;
            if f[at + 9] == 1 && f.get(icmp) == Some(&14) && f.len() >= icmp + 20 {
                f[icmp + 2..icmp + 4].fill(0);
                f[icmp + 12..icmp + 20].fill(0);
            }
        }
        0x86dd if f.len() >= at + 40 => {
            f[at + 1] &= 0xf0;
            f[at + 2..at + 4].fill(0);
            // A fragment header's identification: the kernel's own choice, new in each run.
            if f[at + 6] == 44 && f.len() >= at + 48 {
                f[at + 44..at + 48].fill(0);
            }
        }
        _ => {}
    }
    f
}

/// A short description of a reply: "echo reply 98 B", "VLAN 0 echo reply 102 B", ...
fn describe(frame: &[u8]) -> String {
    let (at, ethertype) = l3(frame);
    let tag = if at == 18 {
        format!("VLAN {} ", u16::from_be_bytes([frame[14], frame[15]]) & 0x0fff)
    } else {
        String::new()
    };
    let kind = match ethertype {
        0x0800 if frame.len() > at + 20 => {
            let icmp = at + usize::from(frame[at] & 0x0f) * 4;
            match (frame[at + 9], frame.get(icmp)) {
                (1, Some(0)) => "echo reply".to_string(),
                (1, Some(3)) => "dest. unreachable".to_string(),
                (1, Some(11)) => "time exceeded".to_string(),
                (1, Some(12)) => "parameter problem".to_string(),
                (1, Some(14)) => "timestamp reply".to_string(),
                (p, t) => format!("IPv4 proto {p} type {t:?}"),
            }
        }
        0x86dd if frame.len() > at + 40 => match (frame[at + 6], frame[at + 40]) {
            (58, 129) => "echo reply".to_string(),
            (58, 1) => "dest. unreachable".to_string(),
            (58, 3) => "time exceeded".to_string(),
            (58, 4) => "parameter problem".to_string(),
            (nh, t) => format!("IPv6 next header {nh} type {t}"),
        },
        other => format!("EtherType {other:#06x}"),
    };
    format!("{tag}{kind} {} B", frame.len())
}

fn describe_all(replies: &[Vec<u8>]) -> String {
    if replies.is_empty() {
        return "no reply".into();
    }
    replies.iter().map(|r| describe(r)).collect::<Vec<_>>().join(" + ")
}

/// The first byte where two frames differ, for the failure message.
fn first_difference(a: &[u8], b: &[u8]) -> String {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => format!("byte {i}: kernel {:#04x}, responder {:#04x}", a[i], b[i]),
        None => format!("lengths {} and {}", a.len(), b.len()),
    }
}

fn hex(frame: &[u8]) -> String {
    frame.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn every_crafted_request_gets_the_same_answer_as_from_the_kernel() {
    let pair = pair(1);
    // The lone first fragment: the kernel gives up reassembly after 1 s and says so (ICMP time
    // exceeded) within the case's listening time, not 30 s later in the middle of another case.
    sysctl(&pair, "net.ipv4.ipfrag_time", "1");
    sysctl(&pair, "net.ipv6.ip6frag_time", "1");

    compare(&pair, &[], CASES, KNOWN_DIFFERENCES, "PARITY_TABLE");
}

#[test]
fn routing_and_neighbour_cases_get_the_same_answer_as_from_the_kernel() {
    let pair = pair(1);
    // bpf_fib_lookup answers only where forwarding is enabled (docs/parity.md). It changes
    // nothing in how Linux answers a ping, and both runs have it.
    let dev = pair.responder_if().to_string();
    sysctl(&pair, &format!("net.ipv4.conf.{dev}.forwarding"), "1");
    sysctl(&pair, &format!("net.ipv6.conf.{dev}.forwarding"), "1");
    add_fib_routes(&pair);
    compare(&pair, &["--fib"], FIB_CASES, KNOWN_DIFFERENCES, "PARITY_FIB_TABLE");
}

#[test]
fn routing_and_neighbour_cases_with_forwarding_off_get_the_same_answer_as_from_the_kernel() {
    let pair = pair(1);
    // Forwarding stays off (the namespace's default, checked): the host mirror decides.
    let dev = pair.responder_if().to_string();
    for family in ["ipv4", "ipv6"] {
        let out = pair
            .command_in(Side::Responder, "sysctl")
            .args(["-n", &format!("net.{family}.conf.{dev}.forwarding")])
            .output()
            .expect("sysctl");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "0",
            "{family} forwarding is off"
        );
    }
    add_fib_routes(&pair);
    compare(
        &pair,
        &["--fib"],
        &fib_off_cases(),
        NO_KNOWN_DIFFERENCES,
        "PARITY_FIB_OFF_TABLE",
    );
}

fn add_fib_routes(pair: &NetnsPair) {
    for route in fib_routes(pair) {
        let status = pair
            .command_in(Side::Responder, "ip")
            .args(&route)
            .status()
            .expect("ip route");
        assert!(status.success(), "ip {route:?}");
    }
}

/// Runs the `args` group of cases with the kernel alone, then with the responder, and checks
/// that the answers are the same and that `cases` says who answered. `table_var` names the
/// environment variable that asks for the table to be written to a file.
fn compare(pair: &NetnsPair, args: &[&str], cases: &[(&str, Who)], known: &[(&str, &str)], table_var: &str) {
    let kernel = run_group(pair, args);
    let responder = start(pair, &["--stats-interval", "0"]);
    let with_responder = run_group(pair, args);
    std::thread::sleep(Duration::from_millis(100));
    let exit: ResponderExit = responder.stop().expect("stopping the responder");
    assert!(exit.finished.status.success(), "{}", exit.finished.stderr);

    let names: Vec<&str> = kernel.iter().map(|o| o.name.as_str()).collect();
    let expected: Vec<&str> = cases.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, expected, "parity.py and CASES list the same cases");
    assert_eq!(
        with_responder.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(),
        expected
    );

    let mut table = String::from("| case | kernel alone | with afxdp-responder | identical |\n|---|---|---|---|\n");
    let mut failures = Vec::new();
    let (mut want_rx, mut want_tx, mut want_dropped) = (0u64, 0u64, 0u64);
    for ((k, r), (name, who)) in kernel.iter().zip(&with_responder).zip(cases) {
        assert_eq!(k.sent, r.sent, "{name}: the same frames both times");
        let same =
            k.replies.len() == r.replies.len() && k.replies.iter().zip(&r.replies).all(|(a, b)| masked(a) == masked(b));
        let answered_by = match (r.replies.is_empty(), r.kernel_icmp_out) {
            (true, 0) => None,
            (false, 0) => Some(Who::Responder),
            (_, _) => Some(Who::Kernel),
        };
        let who_ok = match who {
            Who::Responder => answered_by == Some(Who::Responder),
            Who::Kernel => answered_by == Some(Who::Kernel),
            Who::ResponderDrops | Who::Nobody => answered_by.is_none(),
        };
        match who {
            Who::Responder => {
                want_rx += r.sent.len() as u64;
                want_tx += r.replies.len() as u64;
            }
            Who::ResponderDrops => {
                want_rx += r.sent.len() as u64;
                want_dropped += r.sent.len() as u64;
            }
            Who::Kernel | Who::Nobody => {}
        }
        let known = known.iter().find(|(n, _)| n == name).map(|(_, why)| *why);
        let by = match who {
            Who::Responder => "answered by the responder",
            Who::ResponderDrops => "dropped by the responder",
            Who::Kernel => "passed to the kernel, which answers",
            Who::Nobody => "passed to the kernel",
        };
        let verdict = match (same, known) {
            (true, None) => "yes".to_string(),
            (false, Some(why)) => format!("no (known: {why})"),
            (true, Some(_)) => "yes (listed as a known difference: remove it)".to_string(),
            (false, None) => "**NO**".to_string(),
        };
        let _ = writeln!(
            table,
            "| {name} | {} | {} ({by}) | {verdict} |",
            describe_all(&k.replies),
            describe_all(&r.replies)
        );
        if !same && known.is_none() {
            let detail = match (k.replies.first(), r.replies.first()) {
                (Some(a), Some(b)) if k.replies.len() == r.replies.len() => format!(
                    "{}\n  kernel:    {}\n  responder: {}",
                    first_difference(&masked(a), &masked(b)),
                    hex(a),
                    hex(b)
                ),
                _ => format!("{} vs {} replies", k.replies.len(), r.replies.len()),
            };
            failures.push(format!("{name}: differs from the kernel: {detail}"));
        }
        if same && known.is_some() {
            failures.push(format!("{name}: listed in KNOWN_DIFFERENCES but identical"));
        }
        if !who_ok {
            failures.push(format!(
                "{name}: expected {who:?} in the responder run, got {} replies with {} kernel ICMP messages",
                r.replies.len(),
                r.kernel_icmp_out
            ));
        }
    }
    println!("{table}");
    if let Ok(path) = std::env::var(table_var) {
        std::fs::write(&path, &table).expect("writing PARITY_TABLE");
    }

    // The responder's own account: it saw exactly the redirected cases' frames, answered the ones
    // it should, dropped the bad checksums, and every UMEM frame is back where it belongs.
    assert_frames_accounted(&exit);
    let totals = exit.totals();
    if totals != (want_rx, want_tx, want_dropped) {
        failures.push(format!(
            "responder totals (rx, tx, dropped) {totals:?}, expected {:?}:\n{}",
            (want_rx, want_tx, want_dropped),
            exit.finished.stdout
        ));
    }
    assert!(failures.is_empty(), "{}\n{table}", failures.join("\n"));
}
