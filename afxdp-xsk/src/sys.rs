//! The kernel ABI of AF_XDP (`<linux/if_xdp.h>`) and the few raw system calls around it.
//!
//! Private to the crate: the public types ([`crate::Xsk`], [`crate::Umem`], the rings) are the
//! only way in, so nothing outside this crate can hand the kernel a pointer. The crate root
//! re-exports [`SyscallError`] and [`xdp_statistics`], and wraps [`statistics`] for a descriptor
//! the caller holds.
//!
//! Every struct handed to the kernel is zeroed first (padding included: newer kernels read
//! bytes that older headers call padding, e.g. `tx_metadata_len` in `xdp_umem_reg`, and reject
//! non-zero garbage with `EINVAL`) and its size is asserted at compile time against the
//! kernel's header.
//!
//! Functions here return [`SyscallError`]s that name the call, so an error message says which
//! step failed ("setsockopt(XDP_UMEM_REG): Cannot allocate memory").

use std::ffi::CString;
use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

pub use libc::xdp_statistics;
pub(crate) use libc::{sockaddr_xdp, xdp_desc, xdp_mmap_offsets, xdp_options, xdp_umem_reg};

// Compile-time size checks against <linux/if_xdp.h> (Linux 6.x): if libc ever changes a layout,
// the build fails here instead of the kernel silently reading the wrong bytes.
const _: () = assert!(size_of::<sockaddr_xdp>() == 16);
const _: () = assert!(size_of::<xdp_umem_reg>() == 32);
const _: () = assert!(size_of::<xdp_mmap_offsets>() == 4 * 32);
const _: () = assert!(size_of::<xdp_statistics>() == 48);
const _: () = assert!(size_of::<xdp_options>() == 4);
const _: () = assert!(size_of::<xdp_desc>() == 16);
// The other structs handed to the kernel here: `struct ifreq` (<linux/if.h>, 64-bit layout) and
// `struct pollfd`.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(size_of::<libc::ifreq>() == 40);
const _: () = assert!(size_of::<libc::pollfd>() == 8);

const SOL_XDP: libc::c_int = libc::SOL_XDP;

/// A failed system call, with the name of the call and the OS error.
#[derive(Debug, thiserror::Error)]
#[error("{call}: {source}")]
pub struct SyscallError {
    /// The call that failed, e.g. `"setsockopt(XDP_UMEM_REG)"`.
    pub call: &'static str,
    /// What the kernel said.
    #[source]
    pub source: io::Error,
}

impl SyscallError {
    fn last(call: &'static str) -> Self {
        SyscallError {
            call,
            source: io::Error::last_os_error(),
        }
    }

    /// The raw `errno`, if any.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

/// Plain-old-data kernel structs: every bit pattern, all zeros included, is a valid value, and
/// they have no invariants (no references, no `Drop`), so the kernel may write any bytes into
/// them.
///
/// Private to this module, so [`zeroed_pod`] and [`getsockopt`] can be used only with the
/// structs listed here.
///
/// # Safety
///
/// Implement only for `#[repr(C)]` types made of integers, arrays of integers, raw pointers and
/// unions of those.
unsafe trait KernelPod: Copy {}

// SAFETY: integers.
unsafe impl KernelPod for u32 {}
// SAFETY: a plain integer.
unsafe impl KernelPod for libc::c_int {}
// SAFETY: #[repr(C)] structs of integers (<linux/if_xdp.h>); `xdp_mmap_offsets` is four
// `xdp_ring_offset`s of `u64`s.
unsafe impl KernelPod for sockaddr_xdp {}
// SAFETY: as above.
unsafe impl KernelPod for xdp_umem_reg {}
// SAFETY: as above.
unsafe impl KernelPod for xdp_mmap_offsets {}
// SAFETY: as above.
unsafe impl KernelPod for xdp_statistics {}
// SAFETY: as above.
unsafe impl KernelPod for xdp_options {}
// SAFETY: `struct ifreq`: a name array and a union of integers, sockaddrs (integers) and raw
// pointers, for which all zeros (null) is valid.
unsafe impl KernelPod for libc::ifreq {}

/// Returns a value of `T` with every byte zero, padding included.
fn zeroed_pod<T: KernelPod>() -> T {
    // SAFETY: `T: KernelPod` is made of integers and raw pointers only, for which the all-zero
    // bit pattern is a valid value.
    unsafe { zeroed() }
}

/// Opens an `AF_XDP` socket (`socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0)`).
pub(crate) fn xdp_socket() -> Result<OwnedFd, SyscallError> {
    // SAFETY: plain system call with constant arguments; no memory is passed.
    let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(SyscallError::last("socket(AF_XDP)"));
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn setsockopt<T: KernelPod>(
    fd: BorrowedFd<'_>,
    opt: libc::c_int,
    value: &T,
    call: &'static str,
) -> Result<(), SyscallError> {
    setsockopt_at(fd, SOL_XDP, opt, value, call)
}

fn setsockopt_at<T: KernelPod>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    opt: libc::c_int,
    value: &T,
    call: &'static str,
) -> Result<(), SyscallError> {
    // SAFETY: `value` points to a live, initialized `T` of the size we pass; the kernel only
    // reads it during the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(SyscallError::last(call));
    }
    Ok(())
}

fn getsockopt<T: KernelPod>(fd: BorrowedFd<'_>, opt: libc::c_int, call: &'static str) -> Result<T, SyscallError> {
    getsockopt_at(fd, SOL_XDP, opt, call)
}

fn getsockopt_at<T: KernelPod>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    opt: libc::c_int,
    call: &'static str,
) -> Result<T, SyscallError> {
    let mut value: T = zeroed_pod();
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` is a writable `T` of `len` bytes; the kernel writes at most `len` bytes
    // and reports the written length back in `len`; any bytes it writes are a valid `T`
    // (`T: KernelPod`).
    let rc = unsafe { libc::getsockopt(fd.as_raw_fd(), level, opt, (&mut value as *mut T).cast(), &mut len) };
    if rc != 0 {
        return Err(SyscallError::last(call));
    }
    if len as usize != size_of::<T>() {
        return Err(SyscallError {
            call,
            source: io::Error::other(format!(
                "kernel returned {len} bytes, expected {} (kernel too old?)",
                size_of::<T>()
            )),
        });
    }
    Ok(value)
}

/// Registers `len` bytes at `addr` as the UMEM of the socket, cut into `chunk_size` frames.
///
/// From then on the kernel writes received packets into any frame whose address is put on the
/// fill ring, and reads the frames put on the TX ring.
///
/// # Safety
///
/// `addr..addr + len` must be a readable and writable mapping, page-aligned, that stays mapped
/// for as long as the socket `fd` is open, and that Rust code touches only through frames it
/// holds ([`crate::Frame`], crate rule 2): the caller never lets the kernel and Rust code use one
/// frame at the same time.
pub(crate) unsafe fn register_umem(
    fd: BorrowedFd<'_>,
    addr: *mut u8,
    len: usize,
    chunk_size: u32,
) -> Result<(), SyscallError> {
    let mut reg: xdp_umem_reg = zeroed_pod();
    reg.addr = addr as u64;
    reg.len = len as u64;
    reg.chunk_size = chunk_size;
    reg.headroom = 0;
    reg.flags = 0;
    setsockopt(fd, libc::XDP_UMEM_REG, &reg, "setsockopt(XDP_UMEM_REG)")
}

/// Which of the four rings a size or an mmap offset is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RingKind {
    /// Fill ring: user space → kernel, free frames to receive into.
    Fill,
    /// Completion ring: kernel → user space, frames whose transmission finished.
    Completion,
    /// RX ring: kernel → user space, received frames.
    Rx,
    /// TX ring: user space → kernel, frames to send.
    Tx,
}

impl RingKind {
    fn sockopt(self) -> (libc::c_int, &'static str) {
        match self {
            RingKind::Fill => (libc::XDP_UMEM_FILL_RING, "setsockopt(XDP_UMEM_FILL_RING)"),
            RingKind::Completion => (libc::XDP_UMEM_COMPLETION_RING, "setsockopt(XDP_UMEM_COMPLETION_RING)"),
            RingKind::Rx => (libc::XDP_RX_RING, "setsockopt(XDP_RX_RING)"),
            RingKind::Tx => (libc::XDP_TX_RING, "setsockopt(XDP_TX_RING)"),
        }
    }

    /// The `mmap` page offset that selects this ring.
    fn pgoff(self) -> libc::off_t {
        match self {
            RingKind::Fill => libc::XDP_UMEM_PGOFF_FILL_RING as libc::off_t,
            RingKind::Completion => libc::XDP_UMEM_PGOFF_COMPLETION_RING as libc::off_t,
            RingKind::Rx => libc::XDP_PGOFF_RX_RING,
            RingKind::Tx => libc::XDP_PGOFF_TX_RING,
        }
    }

    /// This ring's offsets inside its mapping.
    pub(crate) fn offsets(self, off: &xdp_mmap_offsets) -> libc::xdp_ring_offset {
        match self {
            RingKind::Fill => off.fr,
            RingKind::Completion => off.cr,
            RingKind::Rx => off.rx,
            RingKind::Tx => off.tx,
        }
    }
}

/// Asks the kernel to create `kind` with `entries` descriptors (a power of two).
pub(crate) fn set_ring_size(fd: BorrowedFd<'_>, kind: RingKind, entries: u32) -> Result<(), SyscallError> {
    let (opt, call) = kind.sockopt();
    setsockopt(fd, opt, &entries, call)
}

/// Reads where the producer, consumer, flags and descriptors live inside each ring mapping.
pub(crate) fn mmap_offsets(fd: BorrowedFd<'_>) -> Result<xdp_mmap_offsets, SyscallError> {
    getsockopt(fd, libc::XDP_MMAP_OFFSETS, "getsockopt(XDP_MMAP_OFFSETS)")
}

/// Reads the kernel's per-socket drop counters.
pub(crate) fn statistics(fd: BorrowedFd<'_>) -> Result<xdp_statistics, SyscallError> {
    getsockopt(fd, libc::XDP_STATISTICS, "getsockopt(XDP_STATISTICS)")
}

/// `XDP_MAX_TX_SKB_BUDGET` (Linux 6.17+): how many frames one `sendto()` may transmit in copy
/// mode (default 32). Not yet in libc.
pub(crate) const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;

/// Raises the copy-mode TX budget per `sendto()` to `frames` (at least 32, at most half the TX
/// ring). Returns `Ok(false)` on kernels without the option, which keep 32.
pub(crate) fn set_max_tx_budget(fd: BorrowedFd<'_>, frames: u32) -> Result<bool, SyscallError> {
    match setsockopt(fd, XDP_MAX_TX_SKB_BUDGET, &frames, "setsockopt(XDP_MAX_TX_SKB_BUDGET)") {
        Ok(()) => Ok(true),
        Err(e) if e.errno() == Some(libc::ENOPROTOOPT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Reads `XDP_OPTIONS`: whether the bound socket runs in zero-copy mode.
pub(crate) fn is_zero_copy(fd: BorrowedFd<'_>) -> Result<bool, SyscallError> {
    let opts: xdp_options = getsockopt(fd, libc::XDP_OPTIONS, "getsockopt(XDP_OPTIONS)")?;
    Ok(opts.flags & libc::XDP_OPTIONS_ZEROCOPY != 0)
}

/// Binds the socket to one queue of one interface. `flags` are `XDP_COPY`, `XDP_ZEROCOPY`,
/// `XDP_USE_NEED_WAKEUP`.
pub(crate) fn bind(fd: BorrowedFd<'_>, ifindex: u32, queue_id: u32, flags: u16) -> Result<(), SyscallError> {
    let mut sa: sockaddr_xdp = zeroed_pod();
    sa.sxdp_family = libc::AF_XDP as u16;
    sa.sxdp_flags = flags;
    sa.sxdp_ifindex = ifindex;
    sa.sxdp_queue_id = queue_id;
    // SAFETY: `sa` is a fully initialized sockaddr_xdp and we pass its exact size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const sockaddr_xdp).cast(),
            size_of::<sockaddr_xdp>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(SyscallError::last("bind(AF_XDP)"));
    }
    Ok(())
}

/// Kicks the kernel to transmit what is on the TX ring (`sendto` with no data).
///
/// Returns `Ok(())` also for the errors that only mean "try again later" (as xdpsock does):
/// `ENOBUFS`, `EAGAIN`, `EBUSY`, `ENETDOWN`.
pub(crate) fn kick_tx(fd: BorrowedFd<'_>) -> Result<(), SyscallError> {
    // SAFETY: a zero-length send with null buffer and address is valid for AF_XDP sockets; the
    // kernel reads no user memory.
    let rc = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            std::ptr::null(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null(),
            0,
        )
    };
    if rc >= 0 {
        return Ok(());
    }
    let err = SyscallError::last("sendto(AF_XDP kick)");
    match err.errno() {
        Some(libc::ENOBUFS | libc::EAGAIN | libc::EBUSY | libc::ENETDOWN) => Ok(()),
        _ => Err(err),
    }
}

/// The socket-level busy-polling options of one socket (`SOL_SOCKET`): what
/// [`set_busy_poll`] asks for and [`busy_poll`] reads back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyPoll {
    /// `SO_PREFER_BUSY_POLL`: the application's busy polling, not the softirq, runs the NAPI
    /// of the socket's queue while it keeps polling (Linux 5.11+).
    pub prefer: bool,
    /// `SO_BUSY_POLL`: microseconds a blocking receive or `poll()` busy-polls the device.
    pub usecs: u32,
    /// `SO_BUSY_POLL_BUDGET`: packets one busy-poll pass of the NAPI may process (Linux 5.11+).
    /// Read back as 0 where the kernel cannot report it (Linux 6.18 cannot) (`getsockopt` gives `ENOPROTOOPT`).
    pub budget: u32,
}

/// Sets `SO_PREFER_BUSY_POLL`, `SO_BUSY_POLL` and `SO_BUSY_POLL_BUDGET` on `fd`, in that order
/// (as the kernel's Documentation/networking/af_xdp.rst shows). Raising any of them above the
/// socket's current value needs `CAP_NET_ADMIN`.
pub(crate) fn set_busy_poll(fd: BorrowedFd<'_>, bp: BusyPoll) -> Result<(), SyscallError> {
    let level = libc::SOL_SOCKET;
    setsockopt_at(
        fd,
        level,
        libc::SO_PREFER_BUSY_POLL,
        &libc::c_int::from(bp.prefer),
        "setsockopt(SO_PREFER_BUSY_POLL)",
    )?;
    let usecs = libc::c_int::try_from(bp.usecs).unwrap_or(libc::c_int::MAX);
    setsockopt_at(fd, level, libc::SO_BUSY_POLL, &usecs, "setsockopt(SO_BUSY_POLL)")?;
    let budget = libc::c_int::try_from(bp.budget).unwrap_or(libc::c_int::MAX);
    setsockopt_at(
        fd,
        level,
        libc::SO_BUSY_POLL_BUDGET,
        &budget,
        "setsockopt(SO_BUSY_POLL_BUDGET)",
    )
}

/// Reads back the busy-polling options of `fd` (see [`set_busy_poll`]).
pub(crate) fn busy_poll(fd: BorrowedFd<'_>) -> Result<BusyPoll, SyscallError> {
    let level = libc::SOL_SOCKET;
    let prefer: libc::c_int = getsockopt_at(fd, level, libc::SO_PREFER_BUSY_POLL, "getsockopt(SO_PREFER_BUSY_POLL)")?;
    let usecs: libc::c_int = getsockopt_at(fd, level, libc::SO_BUSY_POLL, "getsockopt(SO_BUSY_POLL)")?;
    // The kernel (6.18 at least) has no getsockopt for SO_BUSY_POLL_BUDGET (ENOPROTOOPT): 0 then means
    // "set, not readable".
    let budget =
        match getsockopt_at::<libc::c_int>(fd, level, libc::SO_BUSY_POLL_BUDGET, "getsockopt(SO_BUSY_POLL_BUDGET)") {
            Ok(b) => b.max(0) as u32,
            Err(e) if e.errno() == Some(libc::ENOPROTOOPT) => 0,
            Err(e) => return Err(e),
        };
    Ok(BusyPoll {
        prefer: prefer != 0,
        usecs: usecs.max(0) as u32,
        budget,
    })
}

/// Drives the socket's NAPI once (`recvfrom` with no buffer and `MSG_DONTWAIT`): with preferred
/// busy polling this runs the driver's receive processing in the calling thread, up to the
/// socket's busy-poll budget, and returns at once. The "try again" errors (`EAGAIN`, `EBUSY`,
/// `ENOBUFS`, `ENETDOWN`) are not failures.
pub(crate) fn recv_nudge(fd: BorrowedFd<'_>) -> Result<(), SyscallError> {
    // SAFETY: a zero-length receive with null buffer and address is valid for AF_XDP sockets
    // (the data arrive through the RX ring); the kernel writes no user memory.
    let rc = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            std::ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    if rc >= 0 {
        return Ok(());
    }
    let err = SyscallError::last("recvfrom(AF_XDP busy poll)");
    match err.errno() {
        Some(libc::ENOBUFS | libc::EAGAIN | libc::EBUSY | libc::ENETDOWN | libc::EINTR) => Ok(()),
        _ => Err(err),
    }
}

/// Waits up to `timeout_ms` for the socket to become readable (frames on the RX ring). In
/// need-wakeup mode this call is also what lets the kernel refill from the fill ring.
/// Returns whether the socket is readable; an interrupted wait counts as "not readable".
pub(crate) fn poll_readable(fd: BorrowedFd<'_>, timeout_ms: i32) -> Result<bool, SyscallError> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid pollfd and we pass count 1.
    let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    if rc < 0 {
        let err = SyscallError::last("poll(AF_XDP)");
        return if err.errno() == Some(libc::EINTR) {
            Ok(false)
        } else {
            Err(err)
        };
    }
    if pfd.revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
        return Err(SyscallError {
            call: "poll(AF_XDP)",
            source: io::Error::other("socket error (interface gone or down?)"),
        });
    }
    Ok(rc > 0 && pfd.revents & libc::POLLIN != 0)
}

/// An owned memory mapping, unmapped in `Drop`.
#[derive(Debug)]
pub(crate) struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: `Mmap` is a plain owned region of memory; moving it to another thread moves the
// ownership with it. It is not `Sync`: the rings built on it are used by one thread.
unsafe impl Send for Mmap {}

impl Mmap {
    /// Anonymous, private, pre-faulted memory for a UMEM (`MAP_POPULATE` so the data path never
    /// page-faults).
    pub(crate) fn anonymous(len: usize) -> Result<Self, SyscallError> {
        // SAFETY: a fresh anonymous mapping; no existing memory is touched.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        Self::from_raw(ptr, len, "mmap(UMEM)")
    }

    /// Maps one of the socket's rings (`kind`) of `len` bytes, shared with the kernel.
    pub(crate) fn ring(fd: BorrowedFd<'_>, kind: RingKind, len: usize) -> Result<Self, SyscallError> {
        // SAFETY: mapping the ring region of our own AF_XDP socket, at the page offset the
        // kernel defines for it; `len` covers exactly the ring as reported by XDP_MMAP_OFFSETS.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                kind.pgoff(),
            )
        };
        Self::from_raw(ptr, len, "mmap(AF_XDP ring)")
    }

    fn from_raw(ptr: *mut libc::c_void, len: usize, call: &'static str) -> Result<Self, SyscallError> {
        if ptr == libc::MAP_FAILED {
            return Err(SyscallError::last(call));
        }
        let ptr = NonNull::new(ptr.cast()).ok_or_else(|| SyscallError {
            call,
            source: io::Error::other("null mapping"),
        })?;
        Ok(Mmap { ptr, len })
    }

    /// Start of the mapping.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length of the mapping in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: we own this mapping (made by `mmap` with this length) and nothing refers to it
        // any more: every borrow of it is tied to `&self`/`&mut self`.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// The name of the driver behind `ifname` (`ethtool -i`), e.g. `"veth"`, `"ice"`, `"mlx5_core"`.
pub(crate) fn driver_name(ifname: &str) -> Result<String, SyscallError> {
    const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;
    // struct ethtool_drvinfo from <linux/ethtool.h>.
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct EthtoolDrvinfo {
        cmd: u32,
        driver: [u8; 32],
        version: [u8; 32],
        fw_version: [u8; 32],
        bus_info: [u8; 32],
        erom_version: [u8; 32],
        reserved2: [u8; 12],
        n_priv_flags: u32,
        n_stats: u32,
        testinfo_len: u32,
        eedump_len: u32,
        regdump_len: u32,
    }
    const _: () = assert!(size_of::<EthtoolDrvinfo>() == 196);

    let name = CString::new(ifname).map_err(|_| SyscallError {
        call: "ioctl(SIOCETHTOOL)",
        source: io::Error::new(io::ErrorKind::InvalidInput, "interface name contains NUL"),
    })?;
    // SAFETY: `EthtoolDrvinfo` is #[repr(C)] and made of integers and integer arrays only.
    unsafe impl KernelPod for EthtoolDrvinfo {}
    let mut info: EthtoolDrvinfo = zeroed_pod();
    info.cmd = ETHTOOL_GDRVINFO;
    let mut ifr: libc::ifreq = zeroed_pod();
    let bytes = name.as_bytes_with_nul();
    if bytes.len() > ifr.ifr_name.len() {
        return Err(SyscallError {
            call: "ioctl(SIOCETHTOOL)",
            source: io::Error::new(io::ErrorKind::InvalidInput, "interface name too long"),
        });
    }
    for (dst, src) in ifr.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = (&mut info as *mut EthtoolDrvinfo).cast();
    // SAFETY: plain datagram socket used only for the ioctl below.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(SyscallError::last("socket(AF_INET)"));
    }
    // SAFETY: `sock` is a fresh descriptor we own.
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    // SAFETY: `ifr` holds a NUL-terminated name and a pointer to `info`, which lives across
    // the call and is large enough for ETHTOOL_GDRVINFO's answer.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &mut ifr) };
    if rc != 0 {
        return Err(SyscallError::last("ioctl(SIOCETHTOOL)"));
    }
    let end = info.driver.iter().position(|&b| b == 0).unwrap_or(info.driver.len());
    Ok(String::from_utf8_lossy(&info.driver[..end]).into_owned())
}
