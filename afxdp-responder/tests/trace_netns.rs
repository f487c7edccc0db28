//! `--trace N` on veth (copy mode), with the real ping: the trace shows N journeys, each
//! consistent (the RX address in the frame the fill ring handed over, TX at that address, the
//! completion returning it, the frame back on the fill ring), and the checksums it prints are
//! the ones on the wire: the client's `tcpdump -xx` bytes, parsed by etherparse (an independent
//! parser), carry the trace's `HC'` in the reply and its `HC` in the request. Needs root.

mod common;

use std::time::Duration;

use afxdp_lab::trace::{self, Journey};
use afxdp_lab::{Background, Family, PingSpec, Side, ping};
use common::{pair, start_queue0, stop};
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use responder_json::Event;

/// One captured echo message: family, echo type, identifier, sequence, ICMP checksum, and the
/// IPv4 header checksum (IPv6: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Echo {
    v6: bool,
    icmp_type: u8,
    id: u16,
    seq: u16,
    icmp_checksum: u16,
    ip_checksum: Option<u16>,
}

/// The frames of `tcpdump -xx` text: a line that starts with a tab and `0x` continues the
/// frame above it with hex bytes.
fn frames(text: &str) -> Vec<Vec<u8>> {
    let mut frames: Vec<Vec<u8>> = Vec::new();
    for line in text.lines() {
        let Some(hex) = line.trim_start().strip_prefix("0x") else {
            if !line.starts_with(char::is_whitespace) && !line.is_empty() {
                frames.push(Vec::new());
            }
            continue;
        };
        let Some(frame) = frames.last_mut() else { continue };
        let bytes = hex.split_once(':').map_or("", |(_, b)| b);
        for group in bytes.split_whitespace() {
            for pair in group.as_bytes().chunks(2) {
                let byte = std::str::from_utf8(pair)
                    .ok()
                    .and_then(|p| u8::from_str_radix(p, 16).ok());
                frame.push(byte.unwrap_or_else(|| panic!("bad hex in {line:?}")));
            }
        }
    }
    frames
}

fn echo(frame: &[u8]) -> Option<Echo> {
    let packet = SlicedPacket::from_ethernet(frame).ok()?;
    let ip_checksum = match &packet.net {
        Some(NetSlice::Ipv4(ip)) => Some(ip.header().header_checksum()),
        Some(NetSlice::Ipv6(_)) => None,
        _ => return None,
    };
    let (v6, bytes) = match &packet.transport {
        Some(TransportSlice::Icmpv4(icmp)) => (false, icmp.slice()),
        Some(TransportSlice::Icmpv6(icmp)) => (true, icmp.slice()),
        _ => return None,
    };
    let word = |at: usize| u16::from_be_bytes([bytes[at], bytes[at + 1]]);
    Some(Echo {
        v6,
        icmp_type: bytes[0],
        id: word(4),
        seq: word(6),
        icmp_checksum: word(2),
        ip_checksum,
    })
}

#[test]
fn the_trace_of_real_pings_is_consistent_and_its_checksums_are_on_the_wire() {
    const FRAMES: u32 = 4;
    let pair = pair(1);
    let responder = start_queue0(&pair, &["--check-frames", "--trace", "4"]);
    let mut tcpdump = pair.command_in(Side::Client, "tcpdump");
    tcpdump.args([
        "-i",
        pair.client_if(),
        "-n",
        "-xx",
        "-l",
        "--immediate-mode",
        "icmp or icmp6",
    ]);
    let mut capture = Background::spawn(tcpdump).expect("tcpdump");
    capture.wait_for_line("listening on", Duration::from_secs(10)).unwrap();
    // Two IPv4 and two IPv6 requests traced, then two more IPv6 ones: the tracer must stop
    // after FRAMES.
    for (family, count) in [(Family::V4, 2), (Family::V6, 4)] {
        let report = ping(
            &pair,
            &PingSpec::new(family, count).interval(Duration::from_millis(100)),
        )
        .unwrap();
        assert_eq!(report.received, u64::from(count), "{}", report.raw);
    }
    std::thread::sleep(Duration::from_millis(300));
    let captured = capture.stop(Duration::from_secs(3)).unwrap();
    let exit = stop(responder);
    let stderr = &exit.finished.stderr;

    // stdout stays pure JSON; the trace is on stderr.
    for line in exit.finished.stdout.lines() {
        assert!(Event::parse_line(line).is_some(), "not a JSON event on stdout: {line}");
    }
    assert!(stderr.contains("trace q0: copy mode"), "{stderr}");
    assert!(
        stderr.contains("trace q0: 4 frames traced and back on the fill ring; tracer off"),
        "{stderr}"
    );

    let journeys: Vec<Journey> = trace::parse(stderr);
    assert_eq!(journeys.len(), FRAMES as usize, "{stderr}");
    let wire: Vec<Echo> = frames(&captured.stdout).iter().filter_map(|f| echo(f)).collect();
    assert_eq!(wire.len(), 12, "6 requests and 6 replies: {}", captured.stdout);
    for (i, j) in journeys.iter().enumerate() {
        assert_eq!(j.number, i as u32 + 1);
        j.check(4096).unwrap_or_else(|e| panic!("{e}\n{stderr}"));
        // In copy mode the kernel takes the fill ring in order: frame k came from index k-1.
        assert_eq!(j.fill.map(|f| f.0), Some(i as u32), "{stderr}");
        let (family, id, seq) = j.request.clone().unwrap();
        let v6 = family == "IPv6";
        assert_eq!(
            (v6, seq),
            (i >= 2, (i % 2) as u16 + 1),
            "pings 1-2 are IPv4, 3-4 IPv6: {stderr}"
        );
        let find = |icmp_type: u8| {
            *wire
                .iter()
                .find(|e| e.v6 == v6 && e.id == id && e.seq == seq && e.icmp_type == icmp_type)
                .unwrap_or_else(|| panic!("#{}: type {icmp_type} not captured", j.number))
        };
        let (request, reply) = if v6 { (find(128), find(129)) } else { (find(8), find(0)) };
        let icmp = j.checksums.iter().find(|c| c.which == "icmp").unwrap();
        assert_eq!(
            icmp.old, request.icmp_checksum,
            "#{}: HC is the request's checksum",
            j.number
        );
        assert_eq!(
            icmp.new, reply.icmp_checksum,
            "#{}: HC' is the reply's checksum",
            j.number
        );
        if v6 {
            assert_eq!(j.checksums.len(), 1);
        } else {
            let ip = j.checksums.iter().find(|c| c.which == "ipv4 header").unwrap();
            assert_eq!(Some(ip.old), request.ip_checksum, "#{}", j.number);
            assert_eq!(Some(ip.new), reply.ip_checksum, "#{}", j.number);
        }
    }
    // The frames traced were answered by the responder: 6 requests, 6 replies, nothing dropped.
    assert_eq!(exit.totals(), (6, 6, 0), "{}", exit.finished.stdout);
}

#[test]
fn without_trace_nothing_is_traced() {
    let pair = pair(1);
    let responder = start_queue0(&pair, &[]);
    let report = ping(
        &pair,
        &PingSpec::new(Family::V4, 2).interval(Duration::from_millis(100)),
    )
    .unwrap();
    assert_eq!(report.received, 2, "{}", report.raw);
    let exit = stop(responder);
    assert!(!exit.finished.stderr.contains("trace "), "{}", exit.finished.stderr);
}
