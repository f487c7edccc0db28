//! The four single-producer / single-consumer rings shared with the kernel.
//!
//! A ring is an array of `size` entries (a power of two) plus two free-running `u32` indices:
//! the producer (next slot to write) and the consumer (next slot to read). Entry `i` lives at
//! `i & (size - 1)`; indices wrap around at `u32::MAX`, so every difference is computed with
//! wrapping arithmetic. One side owns each index:
//!
//! | ring | we are the | entries | the kernel |
//! |---|---|---|---|
//! | fill | producer | `u64` frame addresses to receive into | consumes |
//! | completion | consumer | `u64` addresses of sent frames | produces |
//! | RX | consumer | `xdp_desc` (address, length) of received frames | produces |
//! | TX | producer | `xdp_desc` of frames to send | consumes |
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
//! The API is batch-shaped and checked: [`ProducerRing::reserve`] / [`ProducerRing::write`] /
//! [`ProducerRing::submit`], and [`ConsumerRing::peek`] / [`ConsumerRing::read`] /
//! [`ConsumerRing::release`]. Reading or writing outside the current batch panics instead of
//! touching a slot the kernel owns, so a bug in a caller cannot corrupt the ring.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::sys::{self, Mmap, RingKind, SyscallError};
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
    /// Keeps the memory alive; `None` only for test rings backed by [`TestRingMem`].
    _map: Option<Mmap>,
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
                _map: Some(map),
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
    fn read(&self, idx: u32) -> T {
        // SAFETY: `idx & mask < size`, so the slot is inside the entry array; the rings only
        // call this for slots between the consumer and the producer index they own.
        unsafe { self.entries.add((idx & self.mask) as usize).read_volatile() }
    }

    /// Writes entry `idx` (masked). The caller guarantees the slot is ours.
    fn write(&mut self, idx: u32, value: T) {
        // SAFETY: as for `read`; the rings only call this for reserved slots that the kernel
        // will not read before the producer index is published.
        unsafe { self.entries.add((idx & self.mask) as usize).write_volatile(value) }
    }
}

/// The user-space side of a ring we produce into (fill, TX).
#[derive(Debug)]
pub struct ProducerRing<T> {
    mem: RingMem<T>,
    /// Our producer index (published with `submit`).
    cached_prod: u32,
    /// The kernel's consumer index plus `size`: the first index we may not write.
    cached_cons: u32,
    /// Slots reserved by the current batch and not yet submitted.
    reserved: u32,
}

/// The user-space side of a ring we consume from (RX, completion).
#[derive(Debug)]
pub struct ConsumerRing<T> {
    mem: RingMem<T>,
    /// Our consumer index (published with `release`).
    cached_cons: u32,
    /// The kernel's producer index as last read.
    cached_prod: u32,
    /// Entries in the current peeked batch, not yet released.
    peeked: u32,
}

impl<T: Copy> ProducerRing<T> {
    /// Maps the producer ring `kind` of socket `fd` with `size` entries.
    pub fn map(fd: BorrowedFd<'_>, kind: RingKind, size: u32) -> Result<Self, SyscallError> {
        Ok(Self::from_mem(RingMem::map(fd, kind, size)?))
    }

    fn from_mem(mem: RingMem<T>) -> Self {
        let cached_prod = mem.producer().load(Ordering::Relaxed);
        let cached_cons = mem.consumer().load(Ordering::Acquire).wrapping_add(mem.size);
        ProducerRing {
            mem,
            cached_prod,
            cached_cons,
            reserved: 0,
        }
    }

    /// Number of entries in the ring.
    pub fn size(&self) -> u32 {
        self.mem.size
    }

    /// Free slots, reading the kernel's consumer index only when fewer than `wanted` look free.
    pub fn free(&mut self, wanted: u32) -> u32 {
        let free = self.cached_cons.wrapping_sub(self.cached_prod);
        if free >= wanted {
            return free;
        }
        // Acquire: the kernel has finished with the slots it released before we reuse them.
        self.cached_cons = self.mem.consumer().load(Ordering::Acquire).wrapping_add(self.mem.size);
        self.cached_cons.wrapping_sub(self.cached_prod)
    }

    /// Starts a batch of up to `wanted` slots and returns how many were reserved (maybe 0).
    /// Panics if a previous batch was not submitted.
    pub fn reserve(&mut self, wanted: u32) -> u32 {
        assert_eq!(self.reserved, 0, "previous producer batch not submitted");
        let n = self.free(wanted).min(wanted);
        self.reserved = n;
        n
    }

    /// Writes slot `i` (0-based) of the current batch. Panics if `i` is outside the batch.
    pub fn write(&mut self, i: u32, value: T) {
        assert!(
            i < self.reserved,
            "slot {i} outside the reserved batch of {}",
            self.reserved
        );
        self.mem.write(self.cached_prod.wrapping_add(i), value);
    }

    /// Publishes the first `n` slots of the batch to the kernel and ends the batch (the rest of
    /// the reservation is given back).
    pub fn submit(&mut self, n: u32) {
        assert!(n <= self.reserved, "submitting {n} of {} reserved", self.reserved);
        self.reserved = 0;
        if n == 0 {
            return;
        }
        self.cached_prod = self.cached_prod.wrapping_add(n);
        // Release: the entry writes above become visible before the kernel sees the new index.
        self.mem.producer().store(self.cached_prod, Ordering::Release);
    }

    /// Entries published and not yet consumed by the kernel.
    pub fn outstanding(&self) -> u32 {
        self.cached_prod
            .wrapping_sub(self.mem.consumer().load(Ordering::Acquire))
    }

    /// Whether the kernel asked to be woken up for this ring (`XDP_RING_NEED_WAKEUP`).
    pub fn needs_wakeup(&self) -> bool {
        self.mem.flags().load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }
}

impl<T: Copy> ConsumerRing<T> {
    /// Maps the consumer ring `kind` of socket `fd` with `size` entries.
    pub fn map(fd: BorrowedFd<'_>, kind: RingKind, size: u32) -> Result<Self, SyscallError> {
        Ok(Self::from_mem(RingMem::map(fd, kind, size)?))
    }

    fn from_mem(mem: RingMem<T>) -> Self {
        let cached_cons = mem.consumer().load(Ordering::Relaxed);
        let cached_prod = mem.producer().load(Ordering::Acquire);
        ConsumerRing {
            mem,
            cached_cons,
            cached_prod,
            peeked: 0,
        }
    }

    /// Number of entries in the ring.
    pub fn size(&self) -> u32 {
        self.mem.size
    }

    /// Entries ready to read (at most `wanted`), reading the kernel's producer index only when
    /// the cached one shows fewer than `wanted`.
    pub fn available(&mut self, wanted: u32) -> u32 {
        let mut ready = self.cached_prod.wrapping_sub(self.cached_cons);
        if ready < wanted {
            // Acquire: the entries the kernel wrote before this index are visible to our reads.
            self.cached_prod = self.mem.producer().load(Ordering::Acquire);
            ready = self.cached_prod.wrapping_sub(self.cached_cons);
        }
        ready.min(wanted)
    }

    /// Starts a batch of up to `wanted` entries and returns how many there are (maybe 0).
    /// Panics if a previous batch was not released.
    pub fn peek(&mut self, wanted: u32) -> u32 {
        assert_eq!(self.peeked, 0, "previous consumer batch not released");
        let n = self.available(wanted);
        self.peeked = n;
        n
    }

    /// Reads entry `i` (0-based) of the current batch. Panics if `i` is outside the batch.
    pub fn read(&self, i: u32) -> T {
        assert!(i < self.peeked, "entry {i} outside the peeked batch of {}", self.peeked);
        self.mem.read(self.cached_cons.wrapping_add(i))
    }

    /// Gives the first `n` entries of the batch back to the kernel and ends the batch (entries
    /// not released stay in the ring and are seen again by the next `peek`).
    pub fn release(&mut self, n: u32) {
        assert!(n <= self.peeked, "releasing {n} of {} peeked", self.peeked);
        self.peeked = 0;
        if n == 0 {
            return;
        }
        self.cached_cons = self.cached_cons.wrapping_add(n);
        // Release: our reads of the entries happen before the kernel may overwrite them.
        self.mem.consumer().store(self.cached_cons, Ordering::Release);
    }

    /// Entries produced by the kernel and not yet released by us.
    pub fn outstanding(&self) -> u32 {
        self.mem
            .producer()
            .load(Ordering::Acquire)
            .wrapping_sub(self.cached_cons)
    }
}

/// Heap memory laid out like a kernel ring, to test the index logic without a socket (and under
/// Miri). The test plays the kernel by moving the other index by hand.
#[cfg(test)]
struct TestRingMem {
    indices: Box<[AtomicU32; 3]>,
    /// `UnsafeCell` because the ring under test writes through a raw pointer while the test
    /// (the "kernel") also reads and writes: shared access to interior-mutable memory.
    entries: Box<[std::cell::UnsafeCell<u64>]>,
}

#[cfg(test)]
impl TestRingMem {
    fn new(size: u32, start: u32) -> Self {
        TestRingMem {
            indices: Box::new([AtomicU32::new(start), AtomicU32::new(start), AtomicU32::new(0)]),
            entries: (0..size).map(|_| std::cell::UnsafeCell::new(0)).collect(),
        }
    }

    fn ring(&self) -> RingMem<u64> {
        let size = self.entries.len() as u32;
        RingMem {
            producer: &self.indices[0],
            consumer: &self.indices[1],
            flags: &self.indices[2],
            entries: std::cell::UnsafeCell::raw_get(self.entries.as_ptr()),
            size,
            mask: size - 1,
            _map: None,
        }
    }

    /// The kernel side of a producer ring: consume `n` entries.
    fn kernel_consume(&self, n: u32) -> Vec<u64> {
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

    /// The kernel side of a consumer ring: produce `values` (assumes room).
    fn kernel_produce(&self, values: &[u64]) {
        let prod = self.indices[0].load(Ordering::Acquire);
        let mask = self.entries.len() as u32 - 1;
        for (i, v) in values.iter().enumerate() {
            let cell = &self.entries[(prod.wrapping_add(i as u32) & mask) as usize];
            // SAFETY: slots past the producer index are not read by the ring under test until
            // we publish the new producer index below.
            unsafe { *cell.get() = *v };
        }
        self.indices[0].store(prod.wrapping_add(values.len() as u32), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Start near u32::MAX so every test crosses the wrap-around of the free-running indices.
    const NEAR_WRAP: u32 = u32::MAX - 5;

    #[test]
    fn producer_fills_to_capacity_and_no_further() {
        let mem = TestRingMem::new(8, NEAR_WRAP);
        let mut ring = ProducerRing::from_mem(mem.ring());
        assert_eq!(ring.reserve(100), 8);
        for i in 0..8 {
            ring.write(i, u64::from(i) * 10);
        }
        ring.submit(8);
        assert_eq!(ring.outstanding(), 8);
        assert_eq!(ring.reserve(1), 0, "a full ring has no free slot");
        ring.submit(0);
        assert_eq!(mem.kernel_consume(3), vec![0, 10, 20]);
        assert_eq!(ring.reserve(5), 3, "the three consumed slots are free again");
        for i in 0..3 {
            ring.write(i, 100 + u64::from(i));
        }
        ring.submit(3);
        assert_eq!(mem.kernel_consume(8), vec![30, 40, 50, 60, 70, 100, 101, 102]);
        assert_eq!(ring.outstanding(), 0);
    }

    #[test]
    fn producer_partial_submit_gives_back_the_rest() {
        let mem = TestRingMem::new(4, NEAR_WRAP);
        let mut ring = ProducerRing::from_mem(mem.ring());
        assert_eq!(ring.reserve(4), 4);
        ring.write(0, 7);
        ring.write(1, 8);
        ring.submit(2);
        assert_eq!(ring.free(4), 2);
        assert_eq!(mem.kernel_consume(4), vec![7, 8]);
    }

    #[test]
    #[should_panic(expected = "outside the reserved batch")]
    fn producer_write_outside_batch_panics() {
        let mem = TestRingMem::new(4, 0);
        let mut ring = ProducerRing::from_mem(mem.ring());
        assert_eq!(ring.reserve(2), 2);
        ring.write(2, 1);
    }

    #[test]
    fn consumer_sees_only_published_entries_across_wrap() {
        let mem = TestRingMem::new(8, NEAR_WRAP);
        let mut ring = ConsumerRing::from_mem(mem.ring());
        assert_eq!(ring.peek(8), 0);
        ring.release(0);
        mem.kernel_produce(&[1, 2, 3, 4, 5]);
        assert_eq!(ring.peek(3), 3);
        assert_eq!((ring.read(0), ring.read(1), ring.read(2)), (1, 2, 3));
        ring.release(2); // entry 3 stays and is seen again
        assert_eq!(ring.outstanding(), 3);
        mem.kernel_produce(&[6, 7, 8, 9, 10]);
        assert_eq!(ring.peek(100), 8);
        let got: Vec<u64> = (0..8).map(|i| ring.read(i)).collect();
        assert_eq!(got, vec![3, 4, 5, 6, 7, 8, 9, 10]);
        ring.release(8);
        assert_eq!(ring.outstanding(), 0);
        assert_eq!(mem.indices[1].load(Ordering::Relaxed), NEAR_WRAP.wrapping_add(10));
    }

    #[test]
    #[should_panic(expected = "outside the peeked batch")]
    fn consumer_read_outside_batch_panics() {
        let mem = TestRingMem::new(4, 0);
        mem.kernel_produce(&[1]);
        let mut ring = ConsumerRing::from_mem(mem.ring());
        assert_eq!(ring.peek(4), 1);
        ring.read(1);
    }

    #[test]
    fn need_wakeup_flag_is_read() {
        let mem = TestRingMem::new(4, 0);
        let ring = ProducerRing::from_mem(mem.ring());
        assert!(!ring.needs_wakeup());
        mem.indices[2].store(libc::XDP_RING_NEED_WAKEUP, Ordering::Relaxed);
        assert!(ring.needs_wakeup());
    }
}
