//! The load generator's kernel-side injector (`flood --inject live`), `redirect-ebpf/flood_inject.h`
//! inside the [`CaptureProgram`]: run with `BPF_PROG_RUN` and `BPF_F_TEST_XDP_LIVE_FRAMES`
//! (Linux 5.18) from the loopback device, the program turns a template request into a fresh
//! request on every run (sequence number, send time, ICMP checksum) and redirects it out of the
//! generator's interface. The capture program is attached, so these runs do not change the
//! kernel's XDP dispatcher (which waits for an RCU grace period each time). One injector per CPU:
//! the CPU a run happens on selects its slot. See docs/decisions.md §18.
//!
//! ```no_run
//! use afxdp_responder::loader::CaptureProgram;
//! use afxdp_responder::options::XdpMode;
//!
//! # let request = vec![0u8; 78];
//! let (mut capture, _) = CaptureProgram::load_and_attach("eth1", XdpMode::Native, "198.18.0.2".parse()?)?;
//! // `request`: a whole echo request frame, valid checksums, zero sequence and stamp; its ICMP
//! // header at byte 34 (IPv4). Injections come from loopback (ifindex 1), go out of ifindex 3.
//! capture.add_injector(0, &request, 34, 0, 1, 3)?;
//! // On CPU 0 (pin the thread first): 1024 requests, 64 per batch.
//! capture.inject(&request, 1024, 64)?;
//! assert_eq!(capture.injected(0)?, 1024);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use aya::{
    Ebpf,
    maps::{Array, MapData},
    programs::{ProgramError, TestRun as _, TestRunAttrs, TestRunOptions, Xdp},
};

use super::error::{LoaderError, errno_of, hint_for, map_error, program_error};
use super::program::{CaptureProgram, take_map};

const MAP_CONFIG: &str = "inject_config";
const MAP_STATE: &str = "inject_state";

/// Slots of the injector maps: CPUs `0..INJECT_MAX_CPUS` can run an injector
/// (`INJECT_MAX_CPUS` in flood_inject.h).
pub const INJECT_MAX_CPUS: u32 = 256;
/// Bytes of the template rewritten on every run: `INJECT_HEAD_MAX` + 2 in flood_inject.h.
const HEAD_BYTES: usize = 64;

/// `struct inject_config` of flood_inject.h, as bytes: head (64), icmp_off (u32), base_sum
/// (u32), bad_every (u64), from_ifindex (u32), out_ifindex (u32), all in host order.
type ConfigValue = [u8; 88];

/// The injector's maps of a loaded capture object.
pub(super) struct InjectMaps {
    config: Array<MapData, ConfigValue>,
    state: Array<MapData, u64>,
}

impl InjectMaps {
    pub(super) fn take(ebpf: &mut Ebpf) -> Result<Self, LoaderError> {
        Ok(InjectMaps {
            config: take_map(ebpf, MAP_CONFIG)?,
            state: take_map(ebpf, MAP_STATE)?,
        })
    }
}

impl CaptureProgram {
    /// Sets up the injector of `cpu` for `request`, a whole echo request frame with valid IP and
    /// ICMP checksums and a zero sequence number and stamp (the 16 bytes after the ICMP header),
    /// whose ICMP header starts at `icmp_off` (34 for IPv4, 54 for IPv6). Runs from the device
    /// `from_ifindex` (the namespace's loopback) are injections; they go out of `out_ifindex`.
    /// Every `bad_every`-th request (0: none) gets a wrong ICMP checksum. Restarts the sequence.
    pub fn add_injector(
        &mut self,
        cpu: u32,
        request: &[u8],
        icmp_off: usize,
        bad_every: u64,
        from_ifindex: u32,
        out_ifindex: u32,
    ) -> Result<(), LoaderError> {
        let invalid = |why: String| LoaderError::Program {
            action: "preparing the live injector".into(),
            hint: "",
            source: Box::new(ProgramError::IOError(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                why,
            ))),
        };
        if cpu >= INJECT_MAX_CPUS {
            return Err(invalid(format!(
                "CPU {cpu}: live injection runs on CPUs below {INJECT_MAX_CPUS}"
            )));
        }
        if icmp_off != 34 && icmp_off != 54 {
            return Err(invalid(format!("ICMP offset {icmp_off}: only 34 (IPv4) and 54 (IPv6)")));
        }
        if request.len() < icmp_off + 8 + 16 {
            return Err(invalid(format!(
                "a {}-byte request frame is shorter than the {} bytes the injector rewrites",
                request.len(),
                icmp_off + 8 + 16
            )));
        }
        let value = config_value(request, icmp_off, bad_every, from_ifindex, out_ifindex);
        self.inject
            .state
            .set(cpu, 0, 0)
            .map_err(|source| map_error(MAP_STATE, "restarting the sequence".into(), source))?;
        self.inject
            .config
            .set(cpu, value, 0)
            .map_err(|source| map_error(MAP_CONFIG, "writing the template".into(), source))
    }

    /// Generates `count` requests on the calling thread's CPU, whose injector must be set up for
    /// `request` ([`CaptureProgram::add_injector`]), and sends them, `batch` frames per
    /// transmission (the kernel's `batch_size`, at most 256). Returns when all were handed to the
    /// interface (or dropped by it when its peer's ring was full: the kernel does not say). The
    /// thread must stay on its CPU (pin it).
    pub fn inject(&self, request: &[u8], count: u32, batch: u32) -> Result<(), LoaderError> {
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(request);
        opts.repeat = count.max(1);
        opts.attrs = TestRunAttrs::new().xdp_live_frames(batch.clamp(1, 256));
        self.xdp()?.test_run(opts).map(drop).map_err(|source| {
            let hint = match errno_of(&source) {
                Some(libc::EINVAL) => ": live frames need Linux >= 5.18",
                _ => hint_for(&source),
            };
            LoaderError::Program {
                action: "BPF_PROG_RUN with live frames".into(),
                hint,
                source: Box::new(source),
            }
        })
    }

    /// Requests the injector of `cpu` generated so far (its next sequence number): the truth also
    /// when a run was interrupted by a signal.
    pub fn injected(&self, cpu: u32) -> Result<u64, LoaderError> {
        self.inject
            .state
            .get(&cpu, 0)
            .map_err(|source| map_error(MAP_STATE, "reading the sequence number".into(), source))
    }

    fn xdp(&self) -> Result<&Xdp, LoaderError> {
        self.ebpf
            .program(Self::NAME)
            .ok_or(LoaderError::Missing {
                kind: "program",
                name: Self::NAME,
            })?
            .try_into()
            .map_err(|source| program_error(format!("using `{}` as XDP", Self::NAME), source))
    }
}

/// The bytes of `struct inject_config` for `request`. The request's ICMP checksum is the
/// complement of the sum of everything else, to which the program adds sequence number and stamp.
fn config_value(request: &[u8], icmp_off: usize, bad_every: u64, from_ifindex: u32, out_ifindex: u32) -> ConfigValue {
    let mut value = [0u8; 88];
    let head = (icmp_off + 8).min(HEAD_BYTES);
    value[..head].copy_from_slice(&request[..head]);
    value[64..68].copy_from_slice(&(icmp_off as u32).to_ne_bytes());
    let checksum = [request[icmp_off + 2], request[icmp_off + 3]];
    let base_sum = u32::from(!u16::from_ne_bytes(checksum));
    value[68..72].copy_from_slice(&base_sum.to_ne_bytes());
    value[72..80].copy_from_slice(&bad_every.to_ne_bytes());
    value[80..84].copy_from_slice(&from_ifindex.to_ne_bytes());
    value[84..88].copy_from_slice(&out_ifindex.to_ne_bytes());
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_layout_matches_flood_inject_h() {
        let mut request = vec![0xeeu8; 100];
        request[34 + 2] = 0x12;
        request[34 + 3] = 0x34;
        let v = config_value(&request, 34, 7, 1, 5);
        assert_eq!(&v[..42], &request[..42]);
        assert!(v[42..64].iter().all(|&b| b == 0), "only the header block is copied");
        assert_eq!(u32::from_ne_bytes(v[64..68].try_into().unwrap()), 34);
        let sum = u32::from_ne_bytes(v[68..72].try_into().unwrap()) as u16;
        assert_eq!(sum.to_ne_bytes(), [!0x12, !0x34]);
        assert_eq!(u64::from_ne_bytes(v[72..80].try_into().unwrap()), 7);
        assert_eq!(u32::from_ne_bytes(v[80..84].try_into().unwrap()), 1);
        assert_eq!(u32::from_ne_bytes(v[84..88].try_into().unwrap()), 5);
    }
}
