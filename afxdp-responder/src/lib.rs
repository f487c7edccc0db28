//! afxdp-responder: ICMP echo replies from user space over AF_XDP.
//!
//! The crate is laid out along the data path (see `docs/architecture.md`):
//!
//! | module | what it owns |
//! |---|---|
//! | [`packet`] | small typed views over Ethernet / IPv4 / IPv6 / ICMP bytes, checksums |
//! | [`respond`] | `respond(frame) -> Verdict`: the whole reply policy, pure and safe |
//! | [`xsk`] | the AF_XDP layer: UMEM, rings, socket; the only module with `unsafe` |
//! | [`loader`] | the XDP redirect program: load (aya), maps, attach with a bpf_link |
//! | [`flood`] | the load generator: echo requests from AF_XDP TX rings, every reply verified |
//! | [`iface`] | facts about a network interface: index, MAC, addresses, queues, TTL |
//! | [`engine`] | `--engine afxdp\|xdp-tx\|drop`: the engines, and the run loop of the in-kernel ones |
//! | [`app`] | the responder as a whole: start-up, workers, live stats, orderly shutdown |
//! | [`config`] | the validated configuration handed to every worker |
//! | [`privileges`] | dropping every capability once set-up is done |
//! | [`worker`] | one pinned thread per queue: the RX → respond → TX loop |
//! | [`stats`] | per-queue counters and the live statistics line |
//! | [`lab`] | network-namespace pairs for the demo and the tests |

pub mod app;
pub mod config;
pub mod engine;
pub mod flood;
pub mod iface;
pub mod loader;
pub mod output;
pub mod privileges;
pub mod stats;
pub mod worker;
