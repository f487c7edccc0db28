//! afxdp-responder: ICMP echo replies from user space over AF_XDP.
//!
//! The crate is laid out along the data path (see `docs/architecture.md`):
//!
//! | module | what it owns |
//! |---|---|
//! | [`options`] | the option vocabulary: `--mode`, `--xdp-mode`, `--engine`, `--wait` as clap value enums |
//! | [`config`] | the validated configuration handed to every worker |
//! | [`config_file`] | `--config FILE`: every long option as a TOML key, generically |
//! | [`logging`] | diagnostics on stderr (`tracing`, `RUST_LOG`, `-v`/`-q`, journald priorities) |
//! | [`firewall`] | nftables rules that filter ICMP echo input (XDP bypasses them) |
//! | [`netdev`] | a device's XDP features from the netdev generic netlink family |
//! | [`xsk_diag`] | the bound AF_XDP sockets (interface, queue) from the kernel's socket diagnostics |
//! | [`preflight`] | `check` (would starting work?) and `status` (what runs now?) |
//! | [`loader`] | the XDP programs: load (aya), maps, attach with a bpf_link, existing-program discovery |
//! | [`flood`] | the load generator: echo requests from AF_XDP TX rings, every reply verified |
//! | [`netlink`] | rtnetlink, synchronously: links, addresses with their flags, neighbours, XDP detach, change notifications |
//! | [`mirror`] | the host mirror: the kernel's routes and neighbour entries as the XDP program's maps hold them |
//! | [`iface`] | facts about a network interface: index, MAC, MTU, addresses (and the table that follows them), queues, TTL |
//! | [`policy`] | host policy: the sysctls followed while running, `--allow-from` / `--deny-from` CIDRs |
//! | [`kernel`] | the running kernel's version against the minimum (5.9) |
//! | [`cpu`] | allowed CPUs, default CPU per queue, pinning a thread |
//! | [`app`] | the responder as a whole, for every engine: start-up, workers, the monitor loop, orderly shutdown, the events |
//! | [`output`] | the events rendered as human lines or JSON lines (`--output`) |
//! | [`notify`] | systemd readiness (`READY=1`, `STOPPING=1`) when run with `Type=notify` |
//! | [`privileges`] | dropping every capability once set-up is done |
//! | [`worker`] | one pinned thread per queue: the RX → respond → TX loop |
//! | [`tracer`] | `--trace N`: the first N frames' journey round the four rings, on stderr |
//! | [`stats`] | per-queue counters and the kernel's socket statistics |
//! | [`metrics`] | the Prometheus endpoint (`--metrics-addr`): rendering and its HTTP thread |
//!
//! The packet views and `respond()` are the `echo-wire` crate, the AF_XDP rings and sockets the
//! `afxdp-xsk` crate, the machine-readable output's schema the `responder-json` crate.
//!
//! Module dependencies go one way (checked by listing every `crate::` path outside comments per
//! module and sorting the graph with `tsort`, which fails on a cycle): `options`, `cpu`,
//! `policy`, `netlink`, `config_file`, `logging`, `firewall`, `netdev` and `xsk_diag` depend on
//! nothing in the crate; `iface` and `mirror` on `netlink`; `tracer` on nothing; `worker` on `stats`, `policy` and `tracer`; `config` on
//! `options`, `policy` and `worker`; `loader` on `options`, `policy`, `mirror` and `netlink`; `output` on
//! `stats`; `metrics` on `stats`, `loader` and `privileges`; `app` on all of these and
//! `firewall`; `preflight` on `config`, `iface`, `kernel`, `loader`, `netdev`, `options`,
//! `firewall` and `xsk_diag`; `flood` on `loader`, `options`, `iface`, `netlink`, `stats` and
//! `cpu`.

pub mod app;
pub mod config;
pub mod config_file;
pub mod cpu;
pub mod firewall;
pub mod flood;
pub mod iface;
pub mod kernel;
pub mod loader;
pub mod logging;
pub mod metrics;
pub mod mirror;
pub mod napi;
pub mod netdev;
pub mod netlink;
pub mod notify;
pub mod options;
pub mod output;
pub mod policy;
pub mod preflight;
pub mod privileges;
pub mod stats;
pub mod tracer;
pub mod worker;
pub mod xsk_diag;
