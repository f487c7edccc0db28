//! `BPF_PROG_TEST_RUN` on a loaded [`EngineProgram`]: run the program on a crafted frame
//! without attaching it, and see its verdict and output. For the crate's own tests (and other
//! tests that want them) behind the cargo feature `test-support`; the daemon does not contain it.
//!
//! ```no_run
//! use afxdp_responder::loader::{EngineProgram, XDP_PASS};
//!
//! let program = EngineProgram::load([0x02, 0, 0, 0, 0, 1], &["198.18.0.1".parse()?])?;
//! let arp = [0u8; 42];
//! assert_eq!(program.test_run(&arp, 0)?, XDP_PASS);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use aya::programs::{TestRun as _, TestRunOptions};

use super::error::{LoaderError, errno_of, hint_for};
use super::program::EngineProgram;

/// The smallest frame `BPF_PROG_TEST_RUN` accepts for XDP: an Ethernet header.
pub const TEST_RUN_MIN_FRAME: usize = 14;

/// The XDP verdict "drop, something went wrong" (`XDP_ABORTED`, traced as an exception).
pub const XDP_ABORTED: u32 = 0;
/// The XDP verdict "drop the frame" (`XDP_DROP`).
pub const XDP_DROP: u32 = 1;
/// The XDP verdict "continue into the kernel's network stack" (`XDP_PASS`).
pub const XDP_PASS: u32 = 2;
/// The XDP verdict "send the frame back out of the interface it came in on" (`XDP_TX`).
pub const XDP_TX: u32 = 3;
/// The XDP verdict "hand the frame to the target chosen by a redirect helper" (`XDP_REDIRECT`).
pub const XDP_REDIRECT: u32 = 4;

/// Name of an XDP verdict for messages: `"XDP_PASS"`, …, `"unknown"`.
pub const fn xdp_action_name(action: u32) -> &'static str {
    match action {
        XDP_ABORTED => "XDP_ABORTED",
        XDP_DROP => "XDP_DROP",
        XDP_PASS => "XDP_PASS",
        XDP_TX => "XDP_TX",
        XDP_REDIRECT => "XDP_REDIRECT",
        _ => "unknown",
    }
}

impl EngineProgram {
    /// Runs the program once on `frame` with `BPF_PROG_TEST_RUN` and returns its verdict
    /// (`XDP_PASS`, `XDP_REDIRECT`, …). The program is not attached for this; maps and counters
    /// are the real ones, so a redirect is reported only if a socket is registered for
    /// `rx_queue_index`, and the counters move.
    ///
    /// Without an interface the kernel runs the program as if the frame arrived on loopback
    /// queue 0, so only `rx_queue_index == 0` is possible here; for other queues see
    /// [`EngineProgram::test_run_on_interface`]. The frame must be at least
    /// [`TEST_RUN_MIN_FRAME`] bytes: the kernel refuses shorter ones.
    pub fn test_run(&self, frame: &[u8], rx_queue_index: u32) -> Result<u32, LoaderError> {
        if rx_queue_index != 0 {
            return Err(LoaderError::TestRunQueue { rx_queue_index });
        }
        self.run(frame, None)
    }

    /// Like [`EngineProgram::test_run`], as if `frame` arrived on RX queue `rx_queue_index`
    /// of the interface `ifindex` (in the calling thread's network namespace). The kernel
    /// requires `rx_queue_index` to be below the interface's number of RX queues.
    pub fn test_run_on_interface(&self, frame: &[u8], ifindex: u32, rx_queue_index: u32) -> Result<u32, LoaderError> {
        self.run(frame, Some((ifindex, rx_queue_index)))
    }

    /// Like [`EngineProgram::test_run`] (queue 0), and also returns the frame as the program
    /// left it: for [`Engine::XdpTx`] the reply it would send.
    pub fn test_run_with_output(&self, frame: &[u8]) -> Result<(u32, Vec<u8>), LoaderError> {
        let mut out = vec![0u8; frame.len() + 256];
        let (action, len) = self.run_raw(frame, None, Some(&mut out))?;
        out.truncate(len);
        Ok((action, out))
    }

    /// Like [`EngineProgram::test_run_on_interface`], and also returns what the program left:
    /// the kernel returns the frame from its metadata on, so the output starts with the XDP
    /// metadata the program wrote (for the afxdp engine, `struct reply_meta`, 20 bytes), then
    /// the frame.
    pub fn test_run_on_interface_with_output(
        &self,
        frame: &[u8],
        ifindex: u32,
        rx_queue_index: u32,
    ) -> Result<(u32, Vec<u8>), LoaderError> {
        let mut out = vec![0u8; frame.len() + 256];
        let (action, len) = self.run_raw(frame, Some((ifindex, rx_queue_index)), Some(&mut out))?;
        out.truncate(len);
        Ok((action, out))
    }

    fn run(&self, frame: &[u8], ingress: Option<(u32, u32)>) -> Result<u32, LoaderError> {
        self.run_raw(frame, ingress, None).map(|(action, _)| action)
    }

    fn run_raw(
        &self,
        frame: &[u8],
        ingress: Option<(u32, u32)>,
        data_out: Option<&mut [u8]>,
    ) -> Result<(u32, usize), LoaderError> {
        if frame.len() < TEST_RUN_MIN_FRAME {
            return Err(LoaderError::TestRunFrameTooShort {
                len: frame.len(),
                min: TEST_RUN_MIN_FRAME,
            });
        }
        // struct xdp_md { u32 data, data_end, data_meta, ingress_ifindex, rx_queue_index,
        // egress_ifindex; }. The kernel wants data = data_meta = 0, data_end = the frame
        // length, egress_ifindex = 0, and a non-zero rx_queue_index only together with an
        // ingress_ifindex whose device has that many RX queues.
        let mut ctx = [0u8; 24];
        let ctx_in = ingress.map(|(ifindex, queue)| {
            let data_end = u32::try_from(frame.len()).unwrap_or(u32::MAX);
            ctx[4..8].copy_from_slice(&data_end.to_ne_bytes());
            ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
            ctx[16..20].copy_from_slice(&queue.to_ne_bytes());
            &ctx[..]
        });
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.ctx_in = ctx_in;
        opts.data_out = data_out;
        let result = self.xdp()?.test_run(opts).map_err(|source| {
            let hint = if errno_of(&source) == Some(libc::EINVAL) && ingress.is_some() {
                ": the RX queue index must be below the interface's RX queue count"
            } else if errno_of(&source) == Some(libc::ENODEV) {
                ": no interface with that index in this thread's network namespace"
            } else {
                hint_for(&source)
            };
            LoaderError::Program {
                action: "BPF_PROG_TEST_RUN".into(),
                hint,
                source: Box::new(source),
            }
        })?;
        Ok((result.return_value, result.data_size_out as usize))
    }
}
