//! The four single-producer / single-consumer rings shared with the kernel.
//!
//! A ring is an array of `size` entries (a power of two) plus two free-running `u32` indices:
//! the producer (next slot to write) and the consumer (next slot to read). Entry `i` lives at
//! `i & (size - 1)`; indices wrap around at `u32::MAX`, so every difference is computed with
//! wrapping arithmetic. One side owns each index:
//!
//! | ring | type | we are the | entries | the kernel |
//! |---|---|---|---|---|
//! | fill | [`FillRing`] | producer | `u64` frame addresses to receive into | consumes |
//! | completion | [`CompletionRing`] | consumer | `u64` addresses of sent frames | produces |
//! | RX | [`RxRing`] | consumer | `xdp_desc` (address, length) of received frames | produces |
//! | TX | [`TxRing`] | producer | `xdp_desc` of frames to send | consumes |
//!
//! Both sides keep a *cached* copy of the other side's index and read the shared one only when
//! the cache says the ring looks full (producer) or empty (consumer), as libxdp does: most
//! batches touch no shared cache line except the one index they publish.
//!
//! Memory ordering, in one place:
//! - reading the other side's index uses `Acquire`, so that the entries it covers (written by the
//!   kernel before it published the index) are visible before we read them (consumer), or so
//!   that the kernel has finished reading the slots before we overwrite them (producer);
//! - publishing our own index uses `Release`, so that our entry writes (producer) or reads
//!   (consumer) happen before the kernel can see the new index.
//!
//! The API is batch-shaped, with guards as in libxdp's `reserve`/`submit` and `peek`/`release`:
//! [`ProducerRing::reserve`] gives a [`Reserved`] batch that [`Reserved::push`] fills with
//! [`Frame`]s, and [`ConsumerRing::peek`] gives a [`Peeked`] batch, an iterator of [`Frame`]s.
//! Entries move only inside the current batch, so a caller cannot touch a slot the kernel owns,
//! and the frames change hands with the entries. A guard publishes its batch when it is
//! submitted/released or dropped: the frames have already changed hands, so there is nothing to
//! roll back. Frames not taken from a [`Peeked`] batch stay on the ring for the next `peek`.
//! Leaking a guard (`mem::forget`) loses its frames but never duplicates one.

use std::fmt;
use std::iter::FusedIterator;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::Frame;
use crate::sys::{self, Mmap, RingKind, SyscallError, xdp_desc};
use std::os::fd::BorrowedFd;

/// Raw pointers into one ring's memory. Holds the mapping (if any) so the pointers stay valid.
#[derive(Debug)]
struct RingMem<T> {
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    entries: *mut T,
    size: u32,
    mask: u32,
    /// Keeps the memory alive.
    _keep: Keep<T>,
}

/// What keeps a ring's memory alive.
#[derive(Debug)]
enum Keep<T> {
    /// The kernel's ring, mapped from the socket.
    Mmap(#[allow(dead_code)] Mmap),
    /// A [`sandbox`](crate::sandbox) ring on the heap, shared with its [`KernelSide`].
    Heap(#[allow(dead_code)] Arc<HeapMem<T>>),
    /// A unit test's ring, borrowed from a `HeapMem` the test keeps alive.
    #[cfg(test)]
    Borrowed,
}

// SAFETY: the ring memory is owned by this value (the mapping moves with it) and a ring is used
// by one thread at a time (`&mut self` on every operation); the kernel is the only other party.
unsafe impl<T: Send> Send for RingMem<T> {}

impl<T: Copy> RingMem<T> {
    /// Maps ring `kind` of the socket `fd`, which has `size` entries of type `T`.
    fn map(fd: BorrowedFd<'_>, kind: RingKind, size: u32) -> Result<Self, SyscallError> {
        let all = sys::mmap_offsets(fd)?;
        let off = kind.offsets(&all);
        let len = off.desc as usize + size as usize * std::mem::size_of::<T>();
        let map = Mmap::ring(fd, kind, len)?;
        let base = map.as_ptr();
        // SAFETY: the kernel guarantees that the offsets it reported lie inside a mapping of
        // `desc + size * entry_size` bytes, with the indices 4-byte aligned and the entries
        // aligned for their type; `base` is that mapping, kept alive by `_map`.
        unsafe {
            Ok(RingMem {
                producer: base.add(off.producer as usize).cast(),
                consumer: base.add(off.consumer as usize).cast(),
                flags: base.add(off.flags as usize).cast(),
                entries: base.add(off.desc as usize).cast(),
                size,
                mask: size - 1,
                _keep: Keep::Mmap(map),
            })
        }
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into memory owned by `self` (see `map`), valid and aligned for the
        // lifetime of `self`; shared with the kernel only through atomic accesses.
        unsafe { &*self.producer }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { &*self.consumer }
    }

    fn flags(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { &*self.flags }
    }

    /// Reads entry `idx` (masked). The caller guarantees the slot is ours (see the rings below).
    #[inline]
    fn read(&self, idx: u32) -> T {
        // SAFETY: `idx & mask < size`, so the slot is inside the entry array; the rings only
        // call this for slots between the consumer and the producer index they own.
        unsafe { self.entries.add((idx & self.mask) as usize).read_volatile() }
    }

    /// Writes entry `idx` (masked). The caller guarantees the slot is ours.
    #[inline]
    fn write(&mut self, idx: u32, value: T) {
        // SAFETY: as for `read`; the rings only call this for reserved slots that the kernel
        // will not read before the producer index is published.
        unsafe { self.entries.add((idx & self.mask) as usize).write_volatile(value) }
    }
}

/// A ring's two shared indices as the kernel sees them (free-running; the slot of index `i` is
/// `i & (size - 1)`). Read-only, for the frame tracer and for learning: see [`crate::sandbox`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingIndices {
    /// The producer index: one past the last entry published.
    pub producer: u32,
    /// The consumer index: one past the last entry consumed.
    pub consumer: u32,
}

impl fmt::Display for RingIndices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "prod {} cons {}", self.producer, self.consumer)
    }
}

impl<T> RingMem<T> {
    /// Both shared indices (`Acquire`: whatever the other side published before is visible).
    fn shared_indices(&self) -> RingIndices {
        // SAFETY: as in `producer`/`consumer` below (which need `T: Copy`): the pointers point
        // into memory owned by `self`, valid and aligned for its lifetime, shared with the
        // other side only through atomic accesses.
        let (producer, consumer) = unsafe { (&*self.producer, &*self.consumer) };
        RingIndices {
            producer: producer.load(Ordering::Acquire),
            consumer: consumer.load(Ordering::Acquire),
        }
    }
}

/// What a ring carries: `u64` frame addresses (fill, completion) or `xdp_desc` descriptors
/// (RX, TX). Sealed: implemented for those two types only.
pub trait Entry: sealed::Sealed {}

mod sealed {
    use crate::Frame;

    /// The conversions between ring entries and frames, private to the crate.
    pub trait Sealed: Copy {
        /// The entry that gives `frame` to the kernel; `base_mask` clears the offset inside the
        /// frame (the fill ring takes frame bases).
        fn from_frame(frame: Frame, base_mask: u64) -> Self;
        /// The frame the kernel gave back in this entry.
        fn into_frame(self, owner: u32) -> Frame;
    }
}

impl sealed::Sealed for u64 {
    #[inline]
    fn from_frame(frame: Frame, base_mask: u64) -> Self {
        frame.addr & base_mask
    }

    #[inline]
    fn into_frame(self, owner: u32) -> Frame {
        Frame {
            addr: self,
            len: 0,
            owner,
        }
    }
}
impl Entry for u64 {}

impl sealed::Sealed for xdp_desc {
    #[inline]
    fn from_frame(frame: Frame, _base_mask: u64) -> Self {
        xdp_desc {
            addr: frame.addr,
            len: frame.len,
            options: 0,
        }
    }

    #[inline]
    fn into_frame(self, owner: u32) -> Frame {
        Frame {
            addr: self.addr,
            len: self.len,
            owner,
        }
    }
}
impl Entry for xdp_desc {}

/// The fill ring: frames given to the kernel to receive into.
pub type FillRing = ProducerRing<u64>;
/// The completion ring: frames the kernel has finished sending.
pub type CompletionRing = ConsumerRing<u64>;
/// The RX ring: received frames.
pub type RxRing = ConsumerRing<xdp_desc>;
/// The TX ring: frames to send.
pub type TxRing = ProducerRing<xdp_desc>;

/// The user-space side of a ring we produce into: [`FillRing`], [`TxRing`].
#[derive(Debug)]
pub struct ProducerRing<T: Entry> {
    mem: RingMem<T>,
    /// Our producer index (published by [`Reserved`]).
    cached_prod: u32,
    /// The kernel's consumer index plus `size`: the first index we may not write.
    cached_cons: u32,
    /// The socket whose frames this ring takes (see [`Frame`]).
    owner: u32,
    /// Clears the offset inside a frame (fill ring); all ones for TX.
    base_mask: u64,
}

/// The user-space side of a ring we consume from: [`RxRing`], [`CompletionRing`].
#[derive(Debug)]
pub struct ConsumerRing<T: Entry> {
    mem: RingMem<T>,
    /// Our consumer index, including the entries of a [`Peeked`] batch in progress (published
    /// when the batch ends).
    cached_cons: u32,
    /// The kernel's producer index as last read.
    cached_prod: u32,
    /// The socket whose frames this ring gives out (see [`Frame`]).
    owner: u32,
}

impl<T: Entry> ProducerRing<T> {
    /// Maps the producer ring `kind` of socket `fd` (whose identity is `owner`, with frames of
    /// `frame_size` bytes) with `size` entries.
    pub(crate) fn map(
        fd: BorrowedFd<'_>,
        kind: RingKind,
        size: u32,
        owner: u32,
        frame_size: u32,
    ) -> Result<Self, SyscallError> {
        let base_mask = match kind {
            RingKind::Fill => !(u64::from(frame_size) - 1),
            _ => !0,
        };
        Ok(Self::from_mem(RingMem::map(fd, kind, size)?, owner, base_mask))
    }

    fn from_mem(mem: RingMem<T>, owner: u32, base_mask: u64) -> Self {
        let cached_prod = mem.producer().load(Ordering::Relaxed);
        let cached_cons = mem.consumer().load(Ordering::Acquire).wrapping_add(mem.size);
        ProducerRing {
            mem,
            cached_prod,
            cached_cons,
            owner,
            base_mask,
        }
    }

    /// Number of entries in the ring.
    pub fn size(&self) -> u32 {
        self.mem.size
    }

    /// Free slots, reading the kernel's consumer index only when fewer than `wanted` look free.
    #[inline]
    pub fn free(&mut self, wanted: u32) -> u32 {
        let free = self.cached_cons.wrapping_sub(self.cached_prod);
        if free >= wanted {
            return free;
        }
        // Acquire: the kernel has finished with the slots it released before we reuse them.
        self.cached_cons = self.mem.consumer().load(Ordering::Acquire).wrapping_add(self.mem.size);
        self.cached_cons.wrapping_sub(self.cached_prod)
    }

    /// Starts a batch of up to `wanted` slots (maybe none; see [`Reserved::remaining`]).
    ///
    /// # Example
    ///
    /// ```no_run
    /// # fn f(xsk: &mut afxdp_xsk::Xsk) {
    /// // The load generator's first burst: build packets in frames of our own and send them.
    /// let mut frames: Vec<afxdp_xsk::Frame> = xsk.take_tx_frames().collect();
    /// let parts = xsk.split();
    /// let mut batch = parts.tx.reserve(frames.len() as u32);
    /// while batch.remaining() > 0 {
    ///     let mut frame = frames.pop().unwrap();
    ///     frame.set_len(60);
    ///     if let Some(bytes) = parts.umem.frame_mut(&frame) {
    ///         bytes.fill(0); // build the packet here
    ///     }
    ///     batch.push(frame);
    /// }
    /// let queued = batch.submit();
    /// # }
    /// ```
    #[inline]
    pub fn reserve(&mut self, wanted: u32) -> Reserved<'_, T> {
        let n = self.free(wanted).min(wanted);
        let next = self.cached_prod;
        Reserved {
            ring: self,
            next,
            end: next.wrapping_add(n),
        }
    }

    /// Entries published and not yet consumed by the kernel.
    pub fn outstanding(&self) -> u32 {
        self.cached_prod
            .wrapping_sub(self.mem.consumer().load(Ordering::Acquire))
    }

    /// The shared producer and consumer indices, as the kernel sees them (our producer index
    /// moves when a [`Reserved`] batch is submitted).
    pub fn shared_indices(&self) -> RingIndices {
        self.mem.shared_indices()
    }

    /// Whether the kernel asked to be woken up for this ring (`XDP_RING_NEED_WAKEUP`; Linux
    /// 5.4+, and only on a socket bound with need_wakeup).
    pub fn needs_wakeup(&self) -> bool {
        self.mem.flags().load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }
}

impl<T: Entry> ConsumerRing<T> {
    /// Maps the consumer ring `kind` of socket `fd` (whose identity is `owner`) with `size`
    /// entries.
    pub(crate) fn map(fd: BorrowedFd<'_>, kind: RingKind, size: u32, owner: u32) -> Result<Self, SyscallError> {
        Ok(Self::from_mem(RingMem::map(fd, kind, size)?, owner))
    }

    fn from_mem(mem: RingMem<T>, owner: u32) -> Self {
        let cached_cons = mem.consumer().load(Ordering::Relaxed);
        let cached_prod = mem.producer().load(Ordering::Acquire);
        ConsumerRing {
            mem,
            cached_cons,
            cached_prod,
            owner,
        }
    }

    /// Number of entries in the ring.
    pub fn size(&self) -> u32 {
        self.mem.size
    }

    /// Entries ready to read (at most `wanted`), reading the kernel's producer index only when
    /// the cached one shows fewer than `wanted`.
    #[inline]
    pub fn available(&mut self, wanted: u32) -> u32 {
        let mut ready = self.cached_prod.wrapping_sub(self.cached_cons);
        if ready < wanted {
            // Acquire: the entries the kernel wrote before this index are visible to our reads.
            self.cached_prod = self.mem.producer().load(Ordering::Acquire);
            ready = self.cached_prod.wrapping_sub(self.cached_cons);
        }
        ready.min(wanted)
    }

    /// Starts a batch of up to `wanted` entries (maybe none): an iterator of the frames in them.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # fn f(xsk: &mut afxdp_xsk::Xsk) {
    /// // Frames the kernel has sent go back to the fill ring, as many as fit.
    /// let parts = xsk.split();
    /// let room = parts.fill.free(64);
    /// let mut refill = parts.fill.reserve(room);
    /// for frame in parts.completion.peek(refill.remaining()) {
    ///     refill.push(frame);
    /// }
    /// refill.submit();
    /// # }
    /// ```
    #[inline]
    pub fn peek(&mut self, wanted: u32) -> Peeked<'_, T> {
        let n = self.available(wanted);
        let start = self.cached_cons;
        // Claim the whole batch now, so that even a leaked guard never hands out an entry twice;
        // the guard gives back what it did not read.
        self.cached_cons = start.wrapping_add(n);
        Peeked {
            ring: self,
            start,
            next: start,
            end: start.wrapping_add(n),
        }
    }

    /// The shared producer and consumer indices, as the kernel sees them (our consumer index
    /// moves when a [`Peeked`] batch is released).
    pub fn shared_indices(&self) -> RingIndices {
        self.mem.shared_indices()
    }

    /// Entries produced by the kernel and not yet released by us.
    pub fn outstanding(&self) -> u32 {
        self.mem
            .producer()
            .load(Ordering::Acquire)
            .wrapping_sub(self.cached_cons)
    }
}

/// A batch of slots on a [`ProducerRing`], from [`ProducerRing::reserve`]: push frames into it,
/// then [`submit`](Reserved::submit) it (dropping it submits too).
#[derive(Debug)]
#[must_use = "a reserved batch gives nothing to the kernel until frames are pushed into it"]
pub struct Reserved<'a, T: Entry> {
    ring: &'a mut ProducerRing<T>,
    /// Ring index of the next slot to write.
    next: u32,
    /// Ring index one past the last reserved slot.
    end: u32,
}

impl<T: Entry> Reserved<'_, T> {
    /// Slots still free in this batch.
    #[inline]
    pub fn remaining(&self) -> u32 {
        self.end.wrapping_sub(self.next)
    }

    /// The ring index of the slot the next [`Reserved::push`] writes (free-running; the slot is
    /// `index & (size - 1)`).
    #[inline]
    pub fn next_index(&self) -> u32 {
        self.next
    }

    /// Puts `frame` into the next slot: it goes to the kernel when the batch is submitted.
    ///
    /// Panics if the batch is full ([`Reserved::remaining`] is 0) or the frame belongs to
    /// another socket.
    #[inline]
    pub fn push(&mut self, frame: Frame) {
        if self.next == self.end || frame.owner != self.ring.owner {
            push_failed(self.remaining(), frame.owner, self.ring.owner);
        }
        let entry = T::from_frame(frame, self.ring.base_mask);
        self.ring.mem.write(self.next, entry);
        self.next = self.next.wrapping_add(1);
    }

    /// Publishes the frames pushed so far to the kernel and ends the batch (unused slots are
    /// given back). Returns how many frames were published.
    pub fn submit(self) -> u32 {
        let n = self.next.wrapping_sub(self.ring.cached_prod);
        drop(self); // publishes
        n
    }
}

impl<T: Entry> Drop for Reserved<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if self.next == self.ring.cached_prod {
            return;
        }
        self.ring.cached_prod = self.next;
        // Release: the entry writes above become visible before the kernel sees the new index.
        self.ring.mem.producer().store(self.next, Ordering::Release);
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn push_failed(remaining: u32, frame_owner: u32, ring_owner: u32) -> ! {
    if remaining == 0 {
        panic!("pushed a frame into a full batch");
    }
    panic!("frame of socket #{frame_owner} given to a ring of socket #{ring_owner}");
}

/// A batch of entries from a [`ConsumerRing`], from [`ConsumerRing::peek`]: an iterator of the
/// frames in them. [`release`](Peeked::release) it when done (dropping it releases too): the
/// entries read are given back to the kernel, the others stay on the ring.
#[derive(Debug)]
#[must_use = "iterate over the batch to take its frames"]
pub struct Peeked<'a, T: Entry> {
    ring: &'a mut ConsumerRing<T>,
    /// Ring index of the first entry of the batch.
    start: u32,
    /// Ring index of the next entry to read.
    next: u32,
    /// Ring index one past the last entry of the batch.
    end: u32,
}

impl<T: Entry> Peeked<'_, T> {
    /// The ring index of the entry the next call to `next()` reads (free-running).
    #[inline]
    pub fn next_index(&self) -> u32 {
        self.next
    }

    /// Gives the entries read so far back to the kernel and ends the batch; entries not read
    /// stay on the ring. Returns how many were released.
    pub fn release(self) -> u32 {
        let n = self.next.wrapping_sub(self.start);
        drop(self); // publishes
        n
    }
}

impl<T: Entry> Iterator for Peeked<'_, T> {
    type Item = Frame;

    #[inline]
    fn next(&mut self) -> Option<Frame> {
        if self.next == self.end {
            return None;
        }
        let entry = self.ring.mem.read(self.next);
        self.next = self.next.wrapping_add(1);
        Some(entry.into_frame(self.ring.owner))
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.end.wrapping_sub(self.next) as usize;
        (left, Some(left))
    }
}

impl<T: Entry> ExactSizeIterator for Peeked<'_, T> {}
impl<T: Entry> FusedIterator for Peeked<'_, T> {}

impl<T: Entry> Drop for Peeked<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Entries not read stay on the ring: un-claim them.
        self.ring.cached_cons = self.next;
        if self.next == self.start {
            return;
        }
        // Release: our reads of the entries happen before the kernel may overwrite them.
        self.ring.mem.consumer().store(self.next, Ordering::Release);
    }
}

/// Heap memory laid out like a kernel ring, to test and show the index logic without a socket
/// (and under Miri): the test or [`crate::sandbox`] plays the kernel by moving the other index
/// by hand.
#[derive(Debug)]
pub(crate) struct HeapMem<T> {
    indices: Box<[AtomicU32; 3]>,
    /// `UnsafeCell` because the ring under test writes through a raw pointer while the test
    /// (the "kernel") also reads and writes: shared access to interior-mutable memory.
    entries: Box<[std::cell::UnsafeCell<T>]>,
}

#[cfg(test)]
type TestRingMem<T> = HeapMem<T>;

// SAFETY: the indices are atomics; an entry is written by one side only while the indices
// make its slot that side's (the single-producer/single-consumer discipline every ring
// follows, see the module docs), and read by the other only after the `Release` store of the
// index that hands it over, which the reader loads with `Acquire`.
unsafe impl<T: Send> Sync for HeapMem<T> {}

impl<T: Copy> HeapMem<T> {
    pub(crate) fn new(size: u32, start: u32, zero: T) -> Self {
        HeapMem {
            indices: Box::new([AtomicU32::new(start), AtomicU32::new(start), AtomicU32::new(0)]),
            entries: (0..size).map(|_| std::cell::UnsafeCell::new(zero)).collect(),
        }
    }

    /// A ring over this memory that keeps it alive.
    fn shared_ring(self: &Arc<Self>) -> RingMem<T> {
        let size = self.entries.len() as u32;
        RingMem {
            producer: &self.indices[0],
            consumer: &self.indices[1],
            flags: &self.indices[2],
            entries: std::cell::UnsafeCell::raw_get(self.entries.as_ptr()),
            size,
            mask: size - 1,
            _keep: Keep::Heap(Arc::clone(self)),
        }
    }

    /// A ring over this memory; the caller keeps the memory alive while the ring lives.
    #[cfg(test)]
    fn ring(&self) -> RingMem<T> {
        let size = self.entries.len() as u32;
        RingMem {
            producer: &self.indices[0],
            consumer: &self.indices[1],
            flags: &self.indices[2],
            entries: std::cell::UnsafeCell::raw_get(self.entries.as_ptr()),
            size,
            mask: size - 1,
            _keep: Keep::Borrowed,
        }
    }

    /// The kernel side of a producer ring: consume `n` entries.
    pub(crate) fn kernel_consume(&self, n: u32) -> Vec<T> {
        let cons = self.indices[1].load(Ordering::Acquire);
        let prod = self.indices[0].load(Ordering::Acquire);
        let n = n.min(prod.wrapping_sub(cons));
        let mask = self.entries.len() as u32 - 1;
        let out = (0..n)
            .map(|i| {
                let cell = &self.entries[(cons.wrapping_add(i) & mask) as usize];
                // SAFETY: slots between consumer and producer are not written by the ring
                // under test until we publish the new consumer index below.
                unsafe { *cell.get() }
            })
            .collect();
        self.indices[1].store(cons.wrapping_add(n), Ordering::Release);
        out
    }

    /// The kernel side of a consumer ring: produce `values` (as many as fit; returns how many).
    pub(crate) fn kernel_produce(&self, values: &[T]) -> usize {
        let cons = self.indices[1].load(Ordering::Acquire);
        let prod = self.indices[0].load(Ordering::Acquire);
        let mask = self.entries.len() as u32 - 1;
        let room = (self.entries.len() as u32).wrapping_sub(prod.wrapping_sub(cons)) as usize;
        let values = &values[..values.len().min(room)];
        for (i, v) in values.iter().enumerate() {
            let cell = &self.entries[(prod.wrapping_add(i as u32) & mask) as usize];
            // SAFETY: slots past the producer index are not read by the ring under test until
            // we publish the new producer index below.
            unsafe { *cell.get() = *v };
        }
        self.indices[0].store(prod.wrapping_add(values.len() as u32), Ordering::Release);
        values.len()
    }
}

/// The kernel's end of a [`crate::sandbox`] ring: move the other index by hand.
#[derive(Debug)]
pub struct KernelSide<T> {
    mem: Arc<HeapMem<T>>,
}

impl<T: Copy> KernelSide<T> {
    /// The shared indices (the same memory the user-space ring reads).
    pub fn indices(&self) -> RingIndices {
        RingIndices {
            producer: self.mem.indices[0].load(Ordering::Acquire),
            consumer: self.mem.indices[1].load(Ordering::Acquire),
        }
    }

    /// Sets or clears the ring's need_wakeup flag, as the kernel does.
    pub fn set_need_wakeup(&mut self, on: bool) {
        let flag = if on { libc::XDP_RING_NEED_WAKEUP } else { 0 };
        self.mem.indices[2].store(flag, Ordering::Relaxed);
    }
}

impl KernelSide<u64> {
    /// Consumes up to `n` frame addresses from a fill ring (as the kernel does to receive).
    pub fn consume(&mut self, n: u32) -> Vec<u64> {
        self.mem.kernel_consume(n)
    }

    /// Produces frame addresses on a completion ring (as the kernel does after sending); as
    /// many as fit, returns how many.
    pub fn produce(&mut self, addrs: &[u64]) -> usize {
        self.mem.kernel_produce(addrs)
    }
}

impl KernelSide<xdp_desc> {
    /// Consumes up to `n` descriptors `(address, length)` from a TX ring (as the kernel does to
    /// send).
    pub fn consume(&mut self, n: u32) -> Vec<(u64, u32)> {
        self.mem.kernel_consume(n).iter().map(|d| (d.addr, d.len)).collect()
    }

    /// Produces descriptors `(address, length)` on an RX ring (as the kernel does after
    /// receiving); as many as fit, returns how many.
    pub fn produce(&mut self, descs: &[(u64, u32)]) -> usize {
        let descs: Vec<xdp_desc> = descs
            .iter()
            .map(|&(addr, len)| xdp_desc { addr, len, options: 0 })
            .collect();
        self.mem.kernel_produce(&descs)
    }
}

/// Makes a producer ring on the heap and its kernel side (see [`crate::sandbox`]).
pub(crate) fn heap_producer<T: Entry>(
    size: u32,
    owner: u32,
    base_mask: u64,
    zero: T,
) -> (ProducerRing<T>, KernelSide<T>) {
    let mem = Arc::new(HeapMem::new(size, 0, zero));
    (
        ProducerRing::from_mem(mem.shared_ring(), owner, base_mask),
        KernelSide { mem },
    )
}

/// Makes a consumer ring on the heap and its kernel side (see [`crate::sandbox`]).
pub(crate) fn heap_consumer<T: Entry>(size: u32, owner: u32, zero: T) -> (ConsumerRing<T>, KernelSide<T>) {
    let mem = Arc::new(HeapMem::new(size, 0, zero));
    (ConsumerRing::from_mem(mem.shared_ring(), owner), KernelSide { mem })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Start near u32::MAX so every test crosses the wrap-around of the free-running indices.
    const NEAR_WRAP: u32 = u32::MAX - 5;
    /// The socket identity of the test rings.
    const OWNER: u32 = 7;
    const FRAME_SIZE: u64 = 4096;

    fn frame(addr: u64, len: u32) -> Frame {
        Frame {
            addr,
            len,
            owner: OWNER,
        }
    }

    fn fill_ring(mem: &TestRingMem<u64>) -> FillRing {
        ProducerRing::from_mem(mem.ring(), OWNER, !(FRAME_SIZE - 1))
    }

    fn completion_ring(mem: &TestRingMem<u64>) -> CompletionRing {
        ConsumerRing::from_mem(mem.ring(), OWNER)
    }

    fn desc(addr: u64, len: u32) -> xdp_desc {
        xdp_desc { addr, len, options: 0 }
    }

    fn addrs(frames: impl Iterator<Item = Frame>) -> Vec<u64> {
        frames.map(|f| f.addr()).collect()
    }

    #[test]
    fn producer_fills_to_capacity_and_no_further() {
        let mem = TestRingMem::new(8, NEAR_WRAP, 0u64);
        let mut ring = fill_ring(&mem);
        let mut batch = ring.reserve(100);
        assert_eq!(batch.remaining(), 8);
        for i in 0..8 {
            batch.push(frame(i * FRAME_SIZE, 0));
        }
        assert_eq!(batch.remaining(), 0);
        assert_eq!(batch.submit(), 8);
        assert_eq!(ring.outstanding(), 8);
        assert_eq!(ring.reserve(1).remaining(), 0, "a full ring has no free slot");
        assert_eq!(mem.kernel_consume(3), vec![0, FRAME_SIZE, 2 * FRAME_SIZE]);
        let mut batch = ring.reserve(5);
        assert_eq!(batch.remaining(), 3, "the three consumed slots are free again");
        for i in 0..3 {
            batch.push(frame((100 + i) * FRAME_SIZE, 0));
        }
        drop(batch); // dropping submits too
        let got = mem.kernel_consume(8);
        assert_eq!(got.len(), 8);
        assert_eq!(got[5..], [100 * FRAME_SIZE, 101 * FRAME_SIZE, 102 * FRAME_SIZE]);
        assert_eq!(ring.outstanding(), 0);
    }

    #[test]
    fn the_fill_ring_takes_frame_bases() {
        let mem = TestRingMem::new(4, NEAR_WRAP, 0u64);
        let mut ring = fill_ring(&mem);
        let mut batch = ring.reserve(2);
        // An RX address points past the headroom; the fill ring wants the frame's first byte.
        batch.push(frame(3 * FRAME_SIZE + 256, 60));
        batch.push(frame(FRAME_SIZE - 1, 1));
        batch.submit();
        assert_eq!(mem.kernel_consume(2), vec![3 * FRAME_SIZE, 0]);
    }

    #[test]
    fn producer_partial_batch_gives_back_the_rest() {
        let mem = TestRingMem::new(4, NEAR_WRAP, 0u64);
        let mut ring = fill_ring(&mem);
        let mut batch = ring.reserve(4);
        batch.push(frame(7 * FRAME_SIZE, 0));
        batch.push(frame(8 * FRAME_SIZE, 0));
        assert_eq!(batch.submit(), 2);
        assert_eq!(ring.free(4), 2);
        assert_eq!(mem.kernel_consume(4), vec![7 * FRAME_SIZE, 8 * FRAME_SIZE]);
        // An empty batch publishes nothing.
        assert_eq!(ring.reserve(4).submit(), 0);
        assert_eq!(ring.outstanding(), 0);
    }

    #[test]
    #[should_panic(expected = "full batch")]
    fn pushing_into_a_full_batch_panics() {
        let mem = TestRingMem::new(4, 0, 0u64);
        let mut ring = fill_ring(&mem);
        let mut batch = ring.reserve(1);
        batch.push(frame(0, 0));
        batch.push(frame(FRAME_SIZE, 0));
    }

    #[test]
    #[should_panic(expected = "frame of socket #8 given to a ring of socket #7")]
    fn a_frame_of_another_socket_is_refused() {
        let mem = TestRingMem::new(4, 0, 0u64);
        let mut ring = fill_ring(&mem);
        let mut batch = ring.reserve(1);
        batch.push(Frame {
            addr: 0,
            len: 0,
            owner: OWNER + 1,
        });
    }

    #[test]
    fn a_leaked_reserved_batch_publishes_nothing() {
        let mem = TestRingMem::new(4, NEAR_WRAP, 0u64);
        let mut ring = fill_ring(&mem);
        let mut batch = ring.reserve(2);
        batch.push(frame(0, 0));
        std::mem::forget(batch);
        assert_eq!(ring.outstanding(), 0);
        assert_eq!(mem.kernel_consume(4), vec![], "the frame is lost, never half-published");
        let mut batch = ring.reserve(4);
        assert_eq!(batch.remaining(), 4);
        batch.push(frame(FRAME_SIZE, 0));
        batch.submit();
        assert_eq!(mem.kernel_consume(4), vec![FRAME_SIZE]);
    }

    #[test]
    fn consumer_sees_only_published_entries_across_wrap() {
        let mem = TestRingMem::new(8, NEAR_WRAP, 0u64);
        let mut ring = completion_ring(&mem);
        assert_eq!(ring.peek(8).len(), 0);
        mem.kernel_produce(&[1, 2, 3, 4, 5]);
        let mut batch = ring.peek(3);
        assert_eq!(batch.len(), 3);
        assert_eq!(addrs(batch.by_ref().take(2)), vec![1, 2]);
        assert_eq!(batch.release(), 2, "entry 3 was not read: it stays and is seen again");
        assert_eq!(ring.outstanding(), 3);
        mem.kernel_produce(&[6, 7, 8, 9, 10]);
        let batch = ring.peek(100);
        assert_eq!(batch.len(), 8);
        assert_eq!(addrs(batch), vec![3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(ring.outstanding(), 0);
        assert_eq!(mem.indices[1].load(Ordering::Relaxed), NEAR_WRAP.wrapping_add(10));
    }

    #[test]
    fn a_leaked_peeked_batch_never_hands_out_a_frame_twice() {
        let mem = TestRingMem::new(8, NEAR_WRAP, 0u64);
        let mut ring = completion_ring(&mem);
        mem.kernel_produce(&[1, 2, 3, 4]);
        let mut batch = ring.peek(3);
        assert_eq!(batch.next().map(|f| f.addr()), Some(1));
        std::mem::forget(batch);
        // Frames 2 and 3 are lost with the leaked batch; frame 1 is not handed out again.
        assert_eq!(addrs(ring.peek(8)), vec![4]);
        assert_eq!(
            mem.indices[1].load(Ordering::Relaxed),
            NEAR_WRAP.wrapping_add(4),
            "the next batch publishes past the leaked one"
        );
    }

    #[test]
    fn rx_frames_carry_their_length_and_tx_sends_the_length_set() {
        let rx_mem = TestRingMem::new(4, NEAR_WRAP, desc(0, 0));
        let tx_mem = TestRingMem::new(4, NEAR_WRAP, desc(0, 0));
        let mut rx: RxRing = ConsumerRing::from_mem(rx_mem.ring(), OWNER);
        let mut tx: TxRing = ProducerRing::from_mem(tx_mem.ring(), OWNER, !0);
        rx_mem.kernel_produce(&[desc(FRAME_SIZE + 256, 98), desc(2 * FRAME_SIZE + 256, 118)]);
        let mut batch = tx.reserve(2);
        for mut frame in rx.peek(2) {
            assert!(!frame.is_empty());
            frame.set_len(frame.len() - 4);
            batch.push(frame);
        }
        batch.submit();
        let sent: Vec<(u64, u32)> = tx_mem.kernel_consume(2).iter().map(|d| (d.addr, d.len)).collect();
        assert_eq!(sent, vec![(FRAME_SIZE + 256, 94), (2 * FRAME_SIZE + 256, 114)]);
    }

    #[test]
    fn need_wakeup_flag_is_read() {
        let mem = TestRingMem::new(4, 0, 0u64);
        let ring = fill_ring(&mem);
        assert!(!ring.needs_wakeup());
        mem.indices[2].store(libc::XDP_RING_NEED_WAKEUP, Ordering::Relaxed);
        assert!(ring.needs_wakeup());
    }
}
