//! afxdp-xsk: the AF_XDP layer: UMEM, the four rings, and the socket that ties them to one queue of one
//! interface. This is the only crate of the workspace with `unsafe` code.
//!
//! # How an AF_XDP socket works (the short version)
//!
//! - The **UMEM** is ordinary memory we allocate and register with the socket, cut into equal
//!   frames (here 2048 or 4096 bytes). Packets live in it; the kernel and we pass *frame
//!   addresses* (offsets into the UMEM) back and forth, never copies of packets.
//! - Four **rings** carry those addresses: we put empty frames on the *fill* ring
//!   ([`FillRing`]), the kernel hands received frames back on the *RX* ring ([`RxRing`]); we put
//!   frames to send on the *TX* ring ([`TxRing`]), the kernel hands sent frames back on the
//!   *completion* ring ([`CompletionRing`]). Each ring has one producer and one consumer: we
//!   write into the fill and TX rings in batches ([`ProducerRing::reserve`]) and read the RX and
//!   completion rings in batches ([`ConsumerRing::peek`]).
//! - **bind** ties the socket to one queue of one interface, in *zero-copy* mode (the NIC DMAs
//!   straight into the UMEM; needs driver support) or *copy* mode (the kernel copies; works on
//!   every driver, veth included). The XDP program then redirects packets of that queue into the
//!   socket through an `XSKMAP`.
//! - With **need_wakeup** the kernel sets a flag on a ring when it needs a system call to make
//!   progress (`poll` for RX/fill, `sendto` for TX), so an idle or steady socket needs none.
//!
//! # Safety rules, stated once, and the types that enforce them
//!
//! 1. **Every mapping is owned.** The UMEM ([`Umem`]) and each ring ([`ProducerRing`],
//!    [`ConsumerRing`]) own their mapping and unmap it in `Drop`; every pointer into one is
//!    derived from its owner and never outlives it. [`Xsk`] drops the rings, then closes the
//!    socket, then unmaps the UMEM.
//! 2. **A frame is touched by one side at a time.** The right to a frame is a [`Frame`] token,
//!    which is neither `Copy` nor `Clone` and which only this crate makes: reading the RX or
//!    the completion ring ([`ConsumerRing::peek`]) gives you frames, writing the fill or the TX
//!    ring ([`Reserved::push`]) takes them, and [`Xsk::take_tx_frames`] hands out the frames
//!    that start on no ring. [`Umem::frame_mut`] gives bytes only for a frame you hold, only
//!    while you hold it (the bytes borrow the token), and only inside that one frame. A token
//!    carries the identity of its socket: another socket's rings refuse it (a panic) and
//!    another socket's UMEM gives no bytes for it.
//! 3. **Ring slots are touched only inside the current batch.** A batch is a guard
//!    ([`Reserved`], [`Peeked`]) that borrows its ring; it publishes what it moved when it is
//!    submitted, released or dropped, and a leaked guard loses frames but never duplicates one.
//! 4. **Structs handed to the kernel are zeroed** (padding included) and their sizes asserted at
//!    compile time; the raw system calls are private to the crate, and the one that hands the
//!    kernel a pointer (registering the UMEM) is an `unsafe fn` with its contract written down.
//!
//! One assumption is not ours to check: the kernel returns each frame it was given exactly once
//! (on the RX ring for a fill-ring frame, on the completion ring for a TX-ring frame).
//!
//! # Example
//!
//! ```no_run
//! use afxdp_xsk::{BindMode, Xsk, XskConfig};
//! let cfg = XskConfig::default();
//! let mut xsk = Xsk::open("eth0", 2, 0, &cfg, BindMode::Copy)?;
//! println!("bound in {} mode", xsk.mode());
//!
//! // Receive a batch, look at each frame, and give it back to the fill ring.
//! xsk.poll_rx(100)?;
//! let parts = xsk.split();
//! let mut fill = parts.fill.reserve(64);
//! for frame in parts.rx.peek(fill.remaining()) {
//!     if let Some(bytes) = parts.umem.frame_mut(&frame) {
//!         println!("{} bytes", bytes.len());
//!     }
//!     fill.push(frame);
//! }
//! fill.submit();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

mod ring;
pub mod sandbox;
mod sys;
mod umem;

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

pub use ring::{
    CompletionRing, ConsumerRing, Entry, FillRing, KernelSide, Peeked, ProducerRing, Reserved, RingIndices, RxRing,
    TxRing,
};
pub use sys::{BusyPoll, SyscallError, xdp_statistics};
pub use umem::{Frame, Umem};

use sys::RingKind;

/// Ring and frame sizes of one socket. Validate with [`XskConfig::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XskConfig {
    /// Bytes per UMEM frame: a power of two in 2048..=4096.
    pub frame_size: u32,
    /// Fill ring entries. The UMEM has exactly this many frames, so the fill ring can always
    /// take every frame back and no frame ever waits outside a ring.
    pub fill_size: u32,
    /// Completion ring entries.
    pub comp_size: u32,
    /// RX ring entries.
    pub rx_size: u32,
    /// TX ring entries.
    pub tx_size: u32,
    /// Bind with `XDP_USE_NEED_WAKEUP`.
    pub need_wakeup: bool,
    /// Extra UMEM frames kept off the fill ring, for an application that builds its own packets
    /// to send (the load generator); see [`Xsk::take_tx_frames`]. 0 for the responder, which
    /// sends replies from the frames it received.
    pub tx_frames: u32,
}

impl Default for XskConfig {
    /// The sizes xdpsock uses: 4096 frames of 4096 bytes (16 MiB per queue), RX/TX/completion
    /// rings of 2048, fill ring of 4096 (twice the RX ring, so RX never starves).
    fn default() -> Self {
        XskConfig {
            frame_size: 4096,
            fill_size: 4096,
            comp_size: 2048,
            rx_size: 2048,
            tx_size: 2048,
            need_wakeup: true,
            tx_frames: 0,
        }
    }
}

impl XskConfig {
    /// Checks the sizes; the message names the option to change.
    pub fn validate(&self) -> Result<(), String> {
        if !(2048..=4096).contains(&self.frame_size) || !self.frame_size.is_power_of_two() {
            return Err(format!(
                "--frame-size {} is not valid: use 2048 or 4096",
                self.frame_size
            ));
        }
        for (name, v) in [
            ("--fill-size", self.fill_size),
            ("--comp-size", self.comp_size),
            ("--rx-size", self.rx_size),
            ("--tx-size", self.tx_size),
        ] {
            if !v.is_power_of_two() || !(64..=65536).contains(&v) {
                return Err(format!("{name} {v} is not valid: use a power of two from 64 to 65536"));
            }
        }
        if self.tx_frames > 65536 {
            return Err(format!("{} TX frames is too many: use at most 65536", self.tx_frames));
        }
        if self.fill_size < self.rx_size {
            return Err(format!(
                "--fill-size {} is smaller than --rx-size {}: use a fill ring at least as large (twice is best)",
                self.fill_size, self.rx_size
            ));
        }
        Ok(())
    }

    /// Number of frames in the UMEM: the fill ring size (see [`XskConfig::fill_size`]) plus
    /// [`XskConfig::tx_frames`].
    pub fn frame_count(&self) -> u32 {
        self.fill_size + self.tx_frames
    }
}

/// How the socket is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    /// The NIC reads and writes the UMEM directly (`XDP_ZEROCOPY`).
    ZeroCopy,
    /// The kernel copies packets in and out of the UMEM (`XDP_COPY`); works on every driver.
    Copy,
}

impl fmt::Display for BindMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BindMode::ZeroCopy => "zero-copy",
            BindMode::Copy => "copy",
        })
    }
}

/// Why a socket could not be set up. Messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    /// The configuration does not pass [`XskConfig::validate`].
    #[error("AF_XDP set-up of {iface} queue {queue}: {message}")]
    InvalidConfig {
        /// Interface name.
        iface: String,
        /// Queue id.
        queue: u32,
        /// What is wrong, naming the option to change.
        message: String,
    },
    /// A system call failed during set-up.
    #[error("AF_XDP set-up of {iface} queue {queue} failed at {source}")]
    Setup {
        /// Interface name.
        iface: String,
        /// Queue id.
        queue: u32,
        /// The failed call.
        #[source]
        source: SyscallError,
    },
    /// Zero-copy was asked for and the driver cannot do it.
    #[error(
        "zero-copy is not supported by driver {driver} on {iface} (queue {queue}: {source}); use --mode copy or --mode auto"
    )]
    ZeroCopyUnsupported {
        /// Interface name.
        iface: String,
        /// Driver name as `ethtool -i` shows it.
        driver: String,
        /// Queue id.
        queue: u32,
        /// The failed bind.
        #[source]
        source: SyscallError,
    },
    /// The queue already has an AF_XDP socket.
    #[error(
        "queue {queue} of {iface} is already used by another AF_XDP socket (another afxdp-responder?): stop it or pick other --queues"
    )]
    QueueBusy {
        /// Interface name.
        iface: String,
        /// Queue id.
        queue: u32,
    },
}

/// Where the frames of one socket are (see [`Xsk::frame_census`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameCensus {
    /// Frames in the UMEM.
    pub total: u32,
    /// On the fill ring, waiting for the kernel to receive into them.
    pub fill: u32,
    /// On the RX ring, received and not yet taken by the worker.
    pub rx: u32,
    /// On the TX ring, not yet taken by the kernel.
    pub tx: u32,
    /// On the completion ring, sent and not yet reclaimed.
    pub completion: u32,
}

impl FrameCensus {
    /// Frames not on any ring: held by the driver (zero-copy RX buffers) or in flight in the
    /// kernel. After a quiet shutdown in copy mode this is 0.
    pub fn elsewhere(&self) -> i64 {
        i64::from(self.total)
            - i64::from(self.fill)
            - i64::from(self.rx)
            - i64::from(self.tx)
            - i64::from(self.completion)
    }
}

impl fmt::Display for FrameCensus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} frames = {} fill + {} rx + {} tx + {} completion",
            self.total, self.fill, self.rx, self.tx, self.completion
        )?;
        match self.elsewhere() {
            0 => write!(f, ": all accounted for"),
            n => write!(f, " + {n} unaccounted"),
        }
    }
}

/// An AF_XDP socket bound to one queue, with its own UMEM and four rings.
///
/// [`Xsk::split`] lends the UMEM and the rings out at the same time, for the packet loop.
/// Field order is drop order: rings are unmapped, then the socket is closed, then the UMEM.
#[derive(Debug)]
pub struct Xsk {
    fill: FillRing,
    completion: CompletionRing,
    rx: RxRing,
    tx: TxRing,
    fd: OwnedFd,
    umem: Umem,
    mode: BindMode,
    queue: u32,
    need_wakeup: bool,
    /// The frames kept off the fill ring that [`Xsk::take_tx_frames`] has not handed out yet.
    tx_frames: std::ops::Range<u32>,
    tx_budget: u32,
}

/// The UMEM and the four rings of one [`Xsk`], borrowed at the same time (from [`Xsk::split`]).
///
/// # Example
///
/// ```no_run
/// # fn f(xsk: &mut afxdp_xsk::Xsk) {
/// let parts = xsk.split();
/// // Sent frames go back to the fill ring.
/// let mut refill = parts.fill.reserve(parts.completion.available(64));
/// for frame in parts.completion.peek(refill.remaining()) {
///     refill.push(frame);
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct XskParts<'a> {
    /// The frames.
    pub umem: &'a mut Umem,
    /// Fill ring: frames to receive into (we produce, the kernel consumes).
    pub fill: &'a mut FillRing,
    /// Completion ring: frames the kernel has sent (the kernel produces, we consume).
    pub completion: &'a mut CompletionRing,
    /// RX ring: received frames (the kernel produces, we consume).
    pub rx: &'a mut RxRing,
    /// TX ring: frames to send (we produce, the kernel consumes).
    pub tx: &'a mut TxRing,
}

impl Xsk {
    /// Creates a socket with its UMEM and rings, fills the fill ring with every frame, and binds
    /// it to `queue` of the interface (`iface`, index `ifindex`) in `mode`.
    ///
    /// Needs Linux 5.4+ (need_wakeup, `XDP_OPTIONS`); CAP_NET_RAW, and CAP_IPC_LOCK or a large
    /// enough `RLIMIT_MEMLOCK` for the UMEM.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use afxdp_xsk::{BindMode, Xsk, XskConfig};
    /// let xsk = Xsk::open("eth0", 2, 0, &XskConfig::default(), BindMode::Copy)?;
    /// // Now put xsk.fd() into the XSKMAP of the XDP program, at index 0.
    /// # Ok::<(), afxdp_xsk::XskError>(())
    /// ```
    pub fn open(iface: &str, ifindex: u32, queue: u32, cfg: &XskConfig, mode: BindMode) -> Result<Self, XskError> {
        cfg.validate().map_err(|message| XskError::InvalidConfig {
            iface: iface.to_string(),
            queue,
            message,
        })?;
        let setup = |source| XskError::Setup {
            iface: iface.to_string(),
            queue,
            source,
        };
        let owner = umem::new_owner().ok_or_else(|| XskError::InvalidConfig {
            iface: iface.to_string(),
            queue,
            message: "this process has opened 2^32 AF_XDP sockets: restart it".into(),
        })?;
        // The UMEM first, so that it is unmapped after the socket is closed on every path: on
        // an error return locals drop in reverse order, and `Xsk` drops `fd` before `umem`.
        let umem = Umem::new(cfg.frame_size, cfg.frame_count(), owner).map_err(setup)?;
        let fd = sys::xdp_socket().map_err(setup)?;
        // SAFETY: the mapping is page-aligned, readable and writable, and owned by `umem`, which
        // is unmapped only after `fd` is closed (see above). Rust code touches the frames only
        // through `Umem::frame_mut`, which needs a `Frame`, and a frame is never on a ring and
        // in a `Frame` at the same time (crate rule 2).
        unsafe { sys::register_umem(fd.as_fd(), umem.map().as_ptr(), umem.map().len(), cfg.frame_size) }
            .map_err(setup)?;
        for (kind, size) in [
            (RingKind::Fill, cfg.fill_size),
            (RingKind::Completion, cfg.comp_size),
            (RingKind::Rx, cfg.rx_size),
            (RingKind::Tx, cfg.tx_size),
        ] {
            sys::set_ring_size(fd.as_fd(), kind, size).map_err(setup)?;
        }
        // Copy mode sends at most 32 frames per sendto() unless told otherwise (Linux 6.17+):
        // allow half the TX ring, so one kick usually drains a whole batch.
        let tx_budget = match sys::set_max_tx_budget(fd.as_fd(), (cfg.tx_size / 2).max(32)) {
            Ok(true) => (cfg.tx_size / 2).max(32),
            _ => 32,
        };
        let mut fill =
            ProducerRing::map(fd.as_fd(), RingKind::Fill, cfg.fill_size, owner, cfg.frame_size).map_err(setup)?;
        let completion = ConsumerRing::map(fd.as_fd(), RingKind::Completion, cfg.comp_size, owner).map_err(setup)?;
        let rx = ConsumerRing::map(fd.as_fd(), RingKind::Rx, cfg.rx_size, owner).map_err(setup)?;
        let tx = ProducerRing::map(fd.as_fd(), RingKind::Tx, cfg.tx_size, owner, cfg.frame_size).map_err(setup)?;

        // Every receive frame goes onto the fill ring before bind, so the first packets find
        // room. These are the only tokens ever made for frames 0..fill_size; the rest are the
        // TX frames, made once by `take_tx_frames`.
        let mut batch = fill.reserve(cfg.fill_size);
        debug_assert_eq!(batch.remaining(), cfg.fill_size, "fill ring sized to hold every frame");
        for i in 0..batch.remaining() {
            batch.push(umem.new_frame(i));
        }
        batch.submit();

        let mut flags = match mode {
            BindMode::ZeroCopy => libc::XDP_ZEROCOPY,
            BindMode::Copy => libc::XDP_COPY,
        };
        if cfg.need_wakeup {
            flags |= libc::XDP_USE_NEED_WAKEUP;
        }
        if let Err(source) = sys::bind(fd.as_fd(), ifindex, queue, flags) {
            return Err(match (source.errno(), mode) {
                (Some(libc::EBUSY), _) => XskError::QueueBusy {
                    iface: iface.to_string(),
                    queue,
                },
                (_, BindMode::ZeroCopy) => XskError::ZeroCopyUnsupported {
                    iface: iface.to_string(),
                    driver: sys::driver_name(iface).unwrap_or_else(|_| "unknown".into()),
                    queue,
                    source,
                },
                _ => setup(source),
            });
        }
        // Report what the kernel actually gave us, not what we asked for.
        let mode = if sys::is_zero_copy(fd.as_fd()).map_err(setup)? {
            BindMode::ZeroCopy
        } else {
            BindMode::Copy
        };
        Ok(Xsk {
            fill,
            completion,
            rx,
            tx,
            fd,
            umem,
            mode,
            queue,
            need_wakeup: cfg.need_wakeup,
            tx_frames: cfg.fill_size..cfg.frame_count(),
            tx_budget,
        })
    }

    /// `auto` mode: zero-copy if the driver can, copy otherwise. Returns the socket and, when it
    /// fell back, why zero-copy was refused.
    pub fn open_auto(
        iface: &str,
        ifindex: u32,
        queue: u32,
        cfg: &XskConfig,
    ) -> Result<(Self, Option<XskError>), XskError> {
        match Self::open(iface, ifindex, queue, cfg, BindMode::ZeroCopy) {
            Ok(xsk) => Ok((xsk, None)),
            Err(e @ (XskError::QueueBusy { .. } | XskError::InvalidConfig { .. })) => Err(e),
            Err(zc_err) => Ok((Self::open(iface, ifindex, queue, cfg, BindMode::Copy)?, Some(zc_err))),
        }
    }

    /// The socket descriptor (for the XSKMAP).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The mode the kernel bound the socket in.
    pub fn mode(&self) -> BindMode {
        self.mode
    }

    /// The queue this socket is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// The UMEM and the four rings, borrowed at the same time: what a packet loop works with.
    #[inline]
    pub fn split(&mut self) -> XskParts<'_> {
        XskParts {
            umem: &mut self.umem,
            fill: &mut self.fill,
            completion: &mut self.completion,
            rx: &mut self.rx,
            tx: &mut self.tx,
        }
    }

    /// The UMEM (its sizes; [`Xsk::split`] lends it out for the frames' bytes).
    pub fn umem(&self) -> &Umem {
        &self.umem
    }

    /// The fill ring (its size and state; [`Xsk::split`] lends it out to write to).
    pub fn fill(&self) -> &FillRing {
        &self.fill
    }

    /// The completion ring (its size and state; [`Xsk::split`] lends it out to read from).
    pub fn completion(&self) -> &CompletionRing {
        &self.completion
    }

    /// The RX ring (its size and state; [`Xsk::split`] lends it out to read from).
    pub fn rx(&self) -> &RxRing {
        &self.rx
    }

    /// The TX ring (its size and state; [`Xsk::split`] lends it out to write to).
    pub fn tx(&self) -> &TxRing {
        &self.tx
    }

    /// The [`XskConfig::tx_frames`] frames that were kept off the fill ring, for packets of the
    /// caller's own making. The first call hands them all out; later calls hand out none.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use afxdp_xsk::{BindMode, Frame, Xsk, XskConfig};
    /// let cfg = XskConfig { tx_frames: 1024, ..XskConfig::default() };
    /// let mut xsk = Xsk::open("eth0", 2, 0, &cfg, BindMode::Copy)?;
    /// let free: Vec<Frame> = xsk.take_tx_frames().collect();
    /// assert_eq!(free.len(), 1024);
    /// assert_eq!(xsk.take_tx_frames().count(), 0);
    /// # Ok::<(), afxdp_xsk::XskError>(())
    /// ```
    pub fn take_tx_frames(&mut self) -> impl Iterator<Item = Frame> + '_ {
        let frames = std::mem::replace(&mut self.tx_frames, 0..0);
        frames.map(|i| self.umem.new_frame(i))
    }

    /// Frames one TX kick sends at most in copy mode (32, or more where the kernel allows).
    pub fn tx_budget(&self) -> u32 {
        self.tx_budget
    }

    /// Whether the socket was bound with `XDP_USE_NEED_WAKEUP`.
    pub fn uses_need_wakeup(&self) -> bool {
        self.need_wakeup
    }

    /// The kernel's drop counters for this socket (see [`statistics`]).
    pub fn statistics(&self) -> Result<xdp_statistics, SyscallError> {
        sys::statistics(self.fd.as_fd())
    }

    /// Gives the frames the kernel has finished sending (completion ring) back to the fill
    /// ring, to receive into again: as many as the fill ring has room for now (the rest stay on
    /// the completion ring for the next call). Returns how many moved. The teaching examples'
    /// reclaim step; the daemon's worker does the same with its tracer's hooks.
    pub fn recycle_completions(&mut self) -> u32 {
        let parts = self.split();
        let mut refill = parts.fill.reserve(parts.completion.available(u32::MAX));
        for frame in parts.completion.peek(refill.remaining()) {
            refill.push(frame);
        }
        refill.submit()
    }

    /// Tells the kernel to transmit what is on the TX ring.
    pub fn kick_tx(&self) -> Result<(), SyscallError> {
        sys::kick_tx(self.fd.as_fd())
    }

    /// Turns on the kernel's preferred busy polling for this socket (`SO_PREFER_BUSY_POLL`,
    /// `SO_BUSY_POLL`, `SO_BUSY_POLL_BUDGET`; Linux 5.11+, `CAP_NET_ADMIN`). The application then
    /// drives the queue's NAPI with [`Xsk::busy_poll_nudge`], [`Xsk::kick_tx`] and
    /// [`Xsk::poll_rx`]; the device's `napi_defer_hard_irqs` and `gro_flush_timeout` decide what
    /// happens while it does not (see the kernel's Documentation/networking/napi.rst).
    ///
    /// ```no_run
    /// # fn f(xsk: &afxdp_xsk::Xsk) -> Result<(), afxdp_xsk::SyscallError> {
    /// use afxdp_xsk::BusyPoll;
    /// xsk.set_busy_poll(BusyPoll { prefer: true, usecs: 20, budget: 64 })?;
    /// assert!(xsk.busy_poll()?.prefer);
    /// # Ok(()) }
    /// ```
    pub fn set_busy_poll(&self, settings: BusyPoll) -> Result<(), SyscallError> {
        sys::set_busy_poll(self.fd.as_fd(), settings)
    }

    /// The busy-polling options the kernel holds for this socket (read back with `getsockopt`).
    pub fn busy_poll(&self) -> Result<BusyPoll, SyscallError> {
        sys::busy_poll(self.fd.as_fd())
    }

    /// Runs the queue's NAPI once from this thread (`recvfrom(MSG_DONTWAIT)`), as preferred busy
    /// polling expects of an application whose RX ring is empty; returns at once.
    pub fn busy_poll_nudge(&self) -> Result<(), SyscallError> {
        sys::recv_nudge(self.fd.as_fd())
    }

    /// Waits up to `timeout_ms` for received frames; also wakes the kernel's RX/fill processing.
    pub fn poll_rx(&self, timeout_ms: i32) -> Result<bool, SyscallError> {
        sys::poll_readable(self.fd.as_fd(), timeout_ms)
    }

    /// Counts where the frames are right now (meaningful when the caller holds none).
    pub fn frame_census(&self) -> FrameCensus {
        FrameCensus {
            total: self.umem.frame_count(),
            fill: self.fill.outstanding(),
            rx: self.rx.outstanding(),
            tx: self.tx.outstanding(),
            completion: self.completion.outstanding(),
        }
    }
}

/// Sets the busy-polling options of the AF_XDP socket `fd` (a duplicate descriptor is enough:
/// options belong to the socket); see [`Xsk::set_busy_poll`].
pub fn set_busy_poll(fd: BorrowedFd<'_>, settings: BusyPoll) -> Result<(), SyscallError> {
    sys::set_busy_poll(fd, settings)
}

/// The busy-polling options the kernel holds for the socket `fd` (`getsockopt`).
pub fn busy_poll(fd: BorrowedFd<'_>) -> Result<BusyPoll, SyscallError> {
    sys::busy_poll(fd)
}

/// The kernel's drop counters (`getsockopt(XDP_STATISTICS)`) of the AF_XDP socket `fd`, e.g. a
/// duplicate of [`Xsk::fd`] held by another thread.
///
/// Needs Linux 5.9+ for the ring-full and ring-empty counters (older kernels give a shorter
/// struct, reported as an error).
///
/// # Example
///
/// ```no_run
/// # fn f(xsk: &afxdp_xsk::Xsk) -> Result<(), Box<dyn std::error::Error>> {
/// use std::os::fd::AsFd;
/// let dup = xsk.fd().try_clone_to_owned()?; // e.g. for a monitoring thread
/// let stats = afxdp_xsk::statistics(dup.as_fd())?;
/// println!("RX ring full: {}", stats.rx_ring_full);
/// # Ok(()) }
/// ```
pub fn statistics(fd: BorrowedFd<'_>) -> Result<xdp_statistics, SyscallError> {
    sys::statistics(fd)
}

/// The driver behind an interface (`ethtool -i`), e.g. `"veth"`.
pub fn driver_name(iface: &str) -> Result<String, SyscallError> {
    sys::driver_name(iface)
}
