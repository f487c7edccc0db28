//! The XDP programs of the engines: load one with aya, fill its maps, attach it with a bpf_link.
//!
//! [`EngineProgram::load_engine`] loads the program of any [`Engine`]: `redirect.c` (AF_XDP,
//! the default, described below), `echo_tx.c` (answers in the kernel with `XDP_TX`) or
//! `echo_drop.c` (drops). They share one filter (`redirect-ebpf/echo_filter.h`) and the maps
//! `owned_addrs`, `config` and `counters`, so loading, map filling, attaching and counting are
//! the same code for all three; only the redirect program has the `xsks` map.
//!
//! | module | concern |
//! |---|---|
//! | `program` | the embedded objects: load them ([`EngineProgram`], [`CaptureProgram`]), fill their maps, read the counters |
//! | `attach` | attach with a bpf_link, find what is attached already, `--force` ([`detach_netlink_program`]) |
//! | `inspect` | a running program seen from outside: what is attached ([`attached_program`]), its counters by program id ([`program_counters`]), for `status` and `check` |
//! | `error` | [`LoaderError`], and the errno hints that say what to do |
//! | `test_run` | `BPF_PROG_TEST_RUN` helpers, only with the cargo feature `test-support` (the crate's tests enable it) |
//!
//! # The program
//!
//! `redirect-ebpf/redirect.c` is compiled by clang in `build.rs` and embedded in the binary. Its
//! one XDP function, `redirect_echo`, runs for every frame the interface receives and asks a
//! single question: *is this an ICMP echo request for one of our addresses, in a form simple
//! enough for user space to answer?* That means: sent to the interface's MAC from a unicast MAC,
//! at most one VLAN tag, IPv4 without options and not a fragment or IPv6 without extension
//! headers, ICMP type 8 / ICMPv6 type 128, a unicast source address, and a destination address
//! in `owned_addrs` for the frame's VLAN. Such a frame is redirected to the AF_XDP socket of the
//! RX queue it arrived on (`bpf_redirect_map(&xsks, rx_queue_index, XDP_PASS)`); everything else
//! gets `XDP_PASS`, so the kernel keeps doing ARP, neighbour discovery, SSH, fragments, options…
//! If no socket is registered for the queue, the request is passed too and the kernel answers
//! it.
//!
//! # The maps
//!
//! The C side is `redirect-ebpf/maps.h` (shared by every program, `flood_replies.c` included); the layouts below are mirrored here byte by byte
//! (keys and values are written as byte arrays, so no `unsafe` `Pod` impls are needed).
//!
//! | map | type | key | value |
//! |---|---|---|---|
//! | `xsks` | `XSKMAP`, [`XSKS_MAX_ENTRIES`] | `u32` RX queue index | AF_XDP socket fd (write only) |
//! | `owned_addrs` | `HASH`, [`OWNED_ADDRS_MAX_ENTRIES`] | 20 bytes, see below | `u32`: ifindex of the device holding the address, 0 = the interface the frame arrived on |
//! | `config` | `ARRAY`, 1 entry | `u32` 0 | 8 bytes: `mac[6]`, `ttl`, `hop_limit` |
//! | `counters` | `PERCPU_ARRAY`, 11 entries | `u32` index | `u64` per CPU |
//! | `ip_ids` | `PERCPU_ARRAY`, 1 entry (xdp-tx only) | `u32` 0 | `u32` next IPv4 id per CPU |
//! | `host_policy` | `ARRAY`, 1 entry (engines) | `u32` 0 | 24 bytes: `ignore_v4`, `ignore_v6`, `allow_list`, 5 bytes pad, `rate_interval_ns`, `rate_burst_ns` (`redirect-ebpf/policy.h`) |
//! | `allow_from`, `deny_from` | `LPM_TRIE`, [`POLICY_LPM_MAX_ENTRIES`] each | `u32` prefix length + 16 address bytes (IPv4 v4-mapped, prefix + 96) | `u32`, reserved, 0 |
//! | `rate_buckets` | `LRU_HASH`, 16384 entries | 16 address bytes (IPv4 v4-mapped) | `u64` next allowed time (ns, `bpf_ktime_get_ns`) |
//! | `policy_counters` | `PERCPU_ARRAY`, 4 entries | `u32` index | `u64` per CPU: 0 ignore-all, 1 denied, 2 not allowed, 3 rate-limited |
//!
//! The `owned_addrs` key is `struct { u16 vlan_id; u16 pad; u8 addr[16]; }`:
//!
//! | bytes | field | content |
//! |---|---|---|
//! | 0..2 | `vlan_id` | host byte order; 0 for untagged and priority-tagged frames |
//! | 2..4 | `pad` | zero (the kernel hashes every key byte) |
//! | 4..20 | `addr` | IPv6 address as on the wire; IPv4 `a.b.c.d` as `::ffff:a.b.c.d` |
//!
//! The counter indexes are 0 = handled (redirected / replied / dropped), 1 = no socket, 2 =
//! passed, 3 = bad checksum, 4..=10 = owned requests the reply's FIB lookup passed to the
//! kernel, by reason ([`EngineCounters`], [`FibPasses`]). `ttl` and `hop_limit` are what the xdp-tx
//! engine writes into its replies; the other programs ignore them.
//!
//! # Lifetime
//!
//! [`EngineProgram::attach`] uses a bpf_link: the attachment lives exactly as long as the
//! link's file descriptor, so a process that crashes or is killed leaves nothing attached.
//! Dropping the [`EngineProgram`] (or calling [`EngineProgram::detach`]) detaches it.
//!
//! # Example
//!
//! ```no_run
//! use afxdp_responder::loader::EngineProgram;
//! use afxdp_responder::options::XdpMode;
//!
//! let owned = ["198.18.0.1".parse()?, "2001:db8::1".parse()?];
//! let mut program = EngineProgram::load([0x02, 0, 0, 0, 0, 1], &owned)?;
//! let mode = program.attach("veth0", XdpMode::Auto)?;
//! println!("attached in {mode} mode");
//! // ... bind an AF_XDP socket to queue 0, then:
//! // program.register_socket(0, socket.as_fd())?;
//! println!("{:?}", program.counters()?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod attach;
mod error;
mod inject;
mod inspect;
mod program;
#[cfg(feature = "test-support")]
mod test_run;

pub use attach::{AttachedMode, ExistingXdpProgram, detach_netlink_program, existing_xdp_program};
pub use error::LoaderError;
pub use inject::INJECT_MAX_CPUS;
pub use inspect::{attached_program, program_counters};
pub use program::{CaptureProgram, EngineCounters, EngineProgram, FibPasses, POLICY_LPM_MAX_ENTRIES, SourceList};
#[cfg(feature = "test-support")]
pub use test_run::{TEST_RUN_MIN_FRAME, XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_REDIRECT, XDP_TX, xdp_action_name};

/// Entries in the `xsks` XSKMAP: RX queues `0..XSKS_MAX_ENTRIES` can have a socket.
pub const XSKS_MAX_ENTRIES: u32 = 64;

/// Entries in the `owned_addrs` map: `(vlan id, address)` pairs that are answered.
pub const OWNED_ADDRS_MAX_ENTRIES: u32 = 1024;
