//! Benchmarks of the per-packet work: `respond()` on IPv4 and ICMPv6 echo requests of 64 and 1500
//! bytes (IP packet length), and the Internet checksum over 64 and 1500 bytes.
//!
//! `respond()` rewrites its input, so every iteration first copies the request template into the
//! work buffer. The `copy` benchmarks measure that copy alone: subtract it from `respond` to get
//! the cost of `respond()` itself.
//!
//! The `respond_batch` benchmarks work like the worker does: a batch of 64 frames (the RX batch),
//! all refilled from the template first, then answered one after the other. The frames then sit
//! in the cache as received frames would, but `respond()` no longer reads bytes that were stored
//! a few instructions earlier, and the loop overhead is shared by 64 frames. Criterion reports the
//! time per batch; divide by 64 (or read the element throughput) and subtract `copy` likewise.
//!
//! Run: `cargo bench -p echo-wire --bench respond -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use echo_wire::checksum::Sum;
use echo_wire::respond::{ReplyPolicy, Responder, Verdict};
use etherparse::PacketBuilder;

const CLIENT_MAC: [u8; 6] = [0x02, 0, 0xc6, 0x12, 0, 0x02];
const SERVER_MAC: [u8; 6] = [0x02, 0, 0xc6, 0x12, 0, 0x01];

/// An IPv4 echo request frame whose IP packet is `ip_len` bytes long.
fn ipv4_request(ip_len: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..ip_len - 28).map(|i| i as u8).collect();
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, SERVER_MAC)
        .ipv4([198, 18, 0, 2], [198, 18, 0, 1], 64)
        .icmpv4_echo_request(0x1234, 1)
        .write(&mut frame, &data)
        .unwrap();
    frame
}

/// An ICMPv6 echo request frame whose IP packet is `ip_len` bytes long.
fn ipv6_request(ip_len: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..ip_len - 48).map(|i| i as u8).collect();
    let client = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    let server = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, SERVER_MAC)
        .ipv6(client, server, 64)
        .icmpv6_echo_request(0x1234, 1)
        .write(&mut frame, &data)
        .unwrap();
    frame
}

fn respond(c: &mut Criterion) {
    let mut group = c.benchmark_group("respond");
    for ip_len in [64usize, 1500] {
        for (name, template) in [("ipv4", ipv4_request(ip_len)), ("ipv6", ipv6_request(ip_len))] {
            let mut responder = Responder::new(ReplyPolicy::default(), 1);
            let mut buffer = template.clone();
            assert_eq!(
                responder.respond(&mut buffer),
                Verdict::Reply { len: template.len() },
                "the template must be answered"
            );
            group.throughput(Throughput::Bytes(ip_len as u64));
            group.bench_function(BenchmarkId::new(name, ip_len), |b| {
                b.iter(|| {
                    buffer.copy_from_slice(&template);
                    black_box(responder.respond(black_box(&mut buffer)))
                })
            });
        }
        // The copy the respond benchmarks include, alone (IPv4 and IPv6 frames have the same length).
        let template = ipv4_request(ip_len);
        let mut buffer = template.clone();
        group.bench_function(BenchmarkId::new("copy", ip_len), |b| {
            b.iter(|| {
                buffer.copy_from_slice(&template);
                black_box(&mut buffer);
            })
        });
    }
    group.finish();
}

/// Frames per batch in the `respond_batch` group: the worker's RX batch size.
const BATCH: usize = 64;

fn respond_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("respond_batch");
    group.throughput(Throughput::Elements(BATCH as u64));
    for ip_len in [64usize, 1500] {
        for (name, template) in [("ipv4", ipv4_request(ip_len)), ("ipv6", ipv6_request(ip_len))] {
            let mut responder = Responder::new(ReplyPolicy::default(), 1);
            let mut frames = vec![template.clone(); BATCH];
            group.bench_function(BenchmarkId::new(name, ip_len), |b| {
                b.iter(|| {
                    for frame in &mut frames {
                        frame.copy_from_slice(&template);
                    }
                    for frame in &mut frames {
                        black_box(responder.respond(black_box(frame)));
                    }
                })
            });
        }
        let template = ipv4_request(ip_len);
        let mut frames = vec![template.clone(); BATCH];
        group.bench_function(BenchmarkId::new("copy", ip_len), |b| {
            b.iter(|| {
                for frame in &mut frames {
                    frame.copy_from_slice(&template);
                }
                black_box(&mut frames);
            })
        });
    }
    group.finish();
}

fn checksum(c: &mut Criterion) {
    let mut group = c.benchmark_group("checksum");
    for len in [64usize, 1500] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(BenchmarkId::from_parameter(len), |b| {
            b.iter(|| Sum::new().add_bytes(black_box(&data)).fold())
        });
    }
    group.finish();
}

criterion_group!(benches, respond, respond_batch, checksum);
criterion_main!(benches);
