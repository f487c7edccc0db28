//! afxdp-xsk: the AF_XDP layer: UMEM, the four rings, and the socket that ties them to one queue of one
//! interface. This is the only crate of the workspace with `unsafe` code.
//!
//! # How an AF_XDP socket works (the short version)
//!
//! - The **UMEM** is ordinary memory we allocate and register with the socket, cut into equal
//!   frames (here 2048 or 4096 bytes). Packets live in it; the kernel and we pass *frame
//!   addresses* (offsets into the UMEM) back and forth, never copies of packets.
//! - Four **rings** carry those addresses (see [`ring`]): we put empty frames on the *fill*
//!   ring, the kernel hands received frames back on the *RX* ring; we put frames to send on the
//!   *TX* ring, the kernel hands sent frames back on the *completion* ring.
//! - **bind** ties the socket to one queue of one interface, in *zero-copy* mode (the NIC DMAs
//!   straight into the UMEM; needs driver support) or *copy* mode (the kernel copies; works on
//!   every driver, veth included). The XDP program then redirects packets of that queue into the
//!   socket through an `XSKMAP`.
//! - With **need_wakeup** the kernel sets a flag on a ring when it needs a system call to make
//!   progress (`poll` for RX/fill, `sendto` for TX), so an idle or steady socket needs none.
//!
//! # Safety rules, stated once
//!
//! 1. Every mapping (UMEM, rings) is owned by one value that unmaps it in `Drop`; every pointer
//!    into it is derived from that value and never outlives it.
//! 2. A frame may be touched only by whoever holds its address: after we read it from the RX or
//!    completion ring and until we write it to the TX or fill ring. [`Umem::frame_mut`] checks
//!    that an address and length lie inside one frame, so a bad descriptor cannot reach outside
//!    the UMEM.
//! 3. Ring slots are read or written only inside the current batch (checked, see [`ring`]).
//! 4. Structs passed to the kernel are zeroed first and their sizes are asserted at compile
//!    time (see [`sys`]).
//!
//! # Example
//!
//! ```no_run
//! use afxdp_xsk::{BindMode, Xsk, XskConfig};
//! let cfg = XskConfig::default();
//! let mut xsk = Xsk::open("eth0", 2, 0, &cfg, BindMode::Copy)?;
//! println!("bound in {} mode", xsk.mode());
//! # Ok::<(), afxdp_xsk::XskError>(())
//! ```
#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod ring;
pub mod sys;

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

pub use ring::{ConsumerRing, ProducerRing};
pub use sys::{Mmap, RingKind, SyscallError, xdp_desc, xdp_statistics};

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
    /// to send (the load generator); see [`Xsk::tx_frame_addrs`]. 0 for the responder, which
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

/// The UMEM: `frame_count` frames of `frame_size` bytes in one anonymous mapping.
#[derive(Debug)]
pub struct Umem {
    map: Mmap,
    frame_size: u32,
    frame_count: u32,
}

impl Umem {
    fn new(frame_size: u32, frame_count: u32) -> Result<Self, SyscallError> {
        let map = Mmap::anonymous(frame_size as usize * frame_count as usize)?;
        Ok(Umem {
            map,
            frame_size,
            frame_count,
        })
    }

    /// Bytes per frame.
    pub fn frame_size(&self) -> u32 {
        self.frame_size
    }

    /// Number of frames.
    pub fn frame_count(&self) -> u32 {
        self.frame_count
    }

    /// Address of frame `index` (the frame's first byte).
    pub fn frame_addr(&self, index: u32) -> u64 {
        u64::from(index) * u64::from(self.frame_size)
    }

    /// The `len` bytes at UMEM address `addr`, or `None` when they do not lie inside one frame.
    ///
    /// Holding the address (from the RX ring) is what entitles the caller to the bytes (rule 2
    /// of the module docs); this check makes sure a bad address cannot reach outside the UMEM.
    pub fn frame_mut(&mut self, addr: u64, len: u32) -> Option<&mut [u8]> {
        let offset_in_frame = addr % u64::from(self.frame_size);
        if addr >= self.map.len() as u64 || offset_in_frame + u64::from(len) > u64::from(self.frame_size) {
            return None;
        }
        // SAFETY: `addr..addr+len` lies inside one frame of the mapping (checked above). Only the
        // holder of the address touches the frame (module rule 2): the kernel does not write it
        // while it is out of the rings, and `&mut self` makes this the only borrow of the UMEM.
        Some(unsafe { std::slice::from_raw_parts_mut(self.map.as_ptr().add(addr as usize), len as usize) })
    }
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
/// The fields are public so a worker can borrow the rings and the UMEM at the same time.
/// Field order is drop order: rings are unmapped, then the socket is closed, then the UMEM.
#[derive(Debug)]
pub struct Xsk {
    /// Fill ring (producer).
    pub fill: ProducerRing<u64>,
    /// Completion ring (consumer).
    pub comp: ConsumerRing<u64>,
    /// RX ring (consumer).
    pub rx: ConsumerRing<xdp_desc>,
    /// TX ring (producer).
    pub tx: ProducerRing<xdp_desc>,
    fd: OwnedFd,
    /// The frames.
    pub umem: Umem,
    mode: BindMode,
    queue: u32,
    need_wakeup: bool,
    tx_frames: u32,
    tx_budget: u32,
}

impl Xsk {
    /// Creates a socket with its UMEM and rings, fills the fill ring with every frame, and binds
    /// it to `queue` of the interface (`iface`, index `ifindex`) in `mode`.
    pub fn open(iface: &str, ifindex: u32, queue: u32, cfg: &XskConfig, mode: BindMode) -> Result<Self, XskError> {
        let setup = |source| XskError::Setup {
            iface: iface.to_string(),
            queue,
            source,
        };
        // The UMEM first, so that it is unmapped after the socket is closed on every path: on
        // an error return locals drop in reverse order, and `Xsk` drops `fd` before `umem`.
        let umem = Umem::new(cfg.frame_size, cfg.frame_count()).map_err(setup)?;
        let fd = sys::xdp_socket().map_err(setup)?;
        // SAFETY: the mapping is page-aligned, readable and writable, and owned by `umem`, which
        // is unmapped only after `fd` is closed (see above). Rust code touches a frame only
        // while it holds the frame's address (crate rule 2).
        unsafe { sys::register_umem(fd.as_fd(), umem.map.as_ptr(), umem.map.len(), cfg.frame_size) }.map_err(setup)?;
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
        let mut fill = ProducerRing::map(fd.as_fd(), RingKind::Fill, cfg.fill_size).map_err(setup)?;
        let comp = ConsumerRing::map(fd.as_fd(), RingKind::Completion, cfg.comp_size).map_err(setup)?;
        let rx = ConsumerRing::map(fd.as_fd(), RingKind::Rx, cfg.rx_size).map_err(setup)?;
        let tx = ProducerRing::map(fd.as_fd(), RingKind::Tx, cfg.tx_size).map_err(setup)?;

        // Every receive frame goes onto the fill ring before bind, so the first packets find room.
        let frames = cfg.fill_size;
        let n = fill.reserve(frames);
        debug_assert_eq!(n, frames, "fill ring sized to hold every frame");
        for i in 0..n {
            fill.write(i, umem.frame_addr(i));
        }
        fill.submit(n);

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
            comp,
            rx,
            tx,
            fd,
            umem,
            mode,
            queue,
            need_wakeup: cfg.need_wakeup,
            tx_frames: cfg.tx_frames,
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
            Err(e @ XskError::QueueBusy { .. }) => Err(e),
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

    /// Addresses of the [`XskConfig::tx_frames`] frames that were kept off the fill ring: the
    /// caller owns them (rule 2 of the module docs) until it puts them on the TX ring.
    pub fn tx_frame_addrs(&self) -> impl Iterator<Item = u64> + '_ {
        let first = self.umem.frame_count() - self.tx_frames;
        (first..self.umem.frame_count()).map(|i| self.umem.frame_addr(i))
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

    /// Tells the kernel to transmit what is on the TX ring.
    pub fn kick_tx(&self) -> Result<(), SyscallError> {
        sys::kick_tx(self.fd.as_fd())
    }

    /// Waits up to `timeout_ms` for received frames; also wakes the kernel's RX/fill processing.
    pub fn poll_rx(&self, timeout_ms: i32) -> Result<bool, SyscallError> {
        sys::poll_readable(self.fd.as_fd(), timeout_ms)
    }

    /// Counts where the frames are right now (meaningful when the worker holds none).
    pub fn frame_census(&self) -> FrameCensus {
        FrameCensus {
            total: self.umem.frame_count(),
            fill: self.fill.outstanding(),
            rx: self.rx.outstanding(),
            tx: self.tx.outstanding(),
            completion: self.comp.outstanding(),
        }
    }
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
