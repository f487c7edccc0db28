//! The lab: two network namespaces joined by a veth pair, and client tools that parse real output.
//!
//! It serves the `lab demo` subcommand and the namespace integration tests: the responder runs in one
//! namespace, real clients (`ping`, `tcpdump`, the kernel's SNMP counters) in the other. Everything
//! the lab creates has a unique name and is removed in `Drop`, also when a test panics; every command
//! it starts has a deadline and is killed if it overstays. It only ever uses 198.18.0.0/15 and
//! 2001:db8::/32, and it needs root.
//!
//! ```no_run
//! use afxdp_lab::{Capture, Family, LabConfig, NetnsPair, Nstat, PingSpec, Side, ping};
//!
//! # fn main() -> Result<(), afxdp_lab::LabError> {
//! let pair = NetnsPair::create(&LabConfig::default())?;
//! let cpu = pair.steer_client_queue(1)?; // requests from `cpu` arrive on responder RX queue 1
//! let before = Nstat::read(&pair, Side::Client)?;
//! let capture = Capture::start_icmp(&pair)?;
//! let report = ping(&pair, &PingSpec::new(Family::V4, 5).interval(std::time::Duration::from_millis(50)).pinned_cpu(cpu))?;
//! let text = capture.stop()?;
//! let delta = Nstat::read(&pair, Side::Client)?.since(&before);
//! assert_eq!(report.received, 5);
//! assert_eq!(delta.counter("IcmpInEchoReps")?, 5);
//! assert_eq!(delta.counter("IcmpInCsumErrors")?, 0);
//! assert!(text.bad_checksum_packets().is_empty());
//! # Ok(())
//! # }
//! ```
//!
//! Tools used: `ip` (iproute2), `ethtool`, `ping` (iputils-ping), `tcpdump`, `taskset` (util-linux);
//! `./run.sh` installs them.

pub mod bench;
pub mod c_reference;
mod capture;
pub mod demo;
pub mod diagrams;
pub mod doc_commands;
mod error;
pub mod example;
mod exec;
mod netns;
mod nstat;
mod ping;
mod responder;
pub mod soak;
pub mod trace;
pub mod vm;
mod xdp_pass;

pub use capture::{Capture, CaptureText, ICMP_FILTER};
pub use error::{LabError, one_line, require_root};
pub use exec::{Background, Finished};
pub use netns::{Endpoints, Family, LabConfig, NetnsPair, Side, allowed_cpus, mac_string};
pub use nstat::Nstat;
pub use ping::{MAX_COUNT, MAX_DEADLINE, PingReport, PingSpec, RttStats, ping, ping_command};
pub use responder::{ResponderExit, ResponderProcess, responder_exe};
pub use xdp_pass::PassProgram;
