//! The four rings over plain heap memory, with the kernel's side played by hand: watch the
//! indices move without a socket, a NIC or root.
//!
//! The rings are the very types an [`Xsk`](crate::Xsk) uses ([`FillRing`], [`RxRing`],
//! [`TxRing`], [`CompletionRing`]) over memory laid out as the kernel lays it out; each comes
//! with a [`KernelSide`] that moves the other index. Here is one frame's round trip, the one
//! `afxdp-responder --trace` prints for real traffic (docs/learn/08-the-frame-tracer.md):
//!
//! ```
//! use afxdp_xsk::RingIndices;
//! use afxdp_xsk::sandbox::Sandbox;
//!
//! let sandbox = Sandbox::new(2048);
//! let (mut fill, mut kernel_fill) = sandbox.fill_ring(4);
//! let (mut rx, mut kernel_rx) = sandbox.rx_ring(4);
//! let (mut tx, mut kernel_tx) = sandbox.tx_ring(4);
//! let (mut completion, mut kernel_completion) = sandbox.completion_ring(4);
//! let at = |producer, consumer| RingIndices { producer, consumer };
//!
//! // Frames start in our hands; in an Xsk, `open` puts them all on the fill ring. Here the
//! // kernel "completes" two frames we never sent, to hand us their tokens.
//! kernel_completion.produce(&[0x0, 0x800]);
//! let mut refill = fill.reserve(2); // reserve: two free slots, nothing published yet
//! for frame in completion.peek(2) {  // peek: read the kernel's entries
//!     refill.push(frame);
//! }
//! assert_eq!(kernel_fill.indices(), at(0, 0), "the kernel sees nothing before submit");
//! refill.submit();                   // submit: publish the producer index
//! assert_eq!(fill.shared_indices(), at(2, 0));
//! assert_eq!(completion.shared_indices(), at(2, 2), "the peeked batch was released when dropped");
//!
//! // The kernel takes both frames to receive into, and one packet arrives, 98 bytes, written
//! // after 256 bytes of headroom: the RX address points into the frame, not at its start.
//! assert_eq!(kernel_fill.consume(2), vec![0x0, 0x800]);
//! assert_eq!(fill.shared_indices(), at(2, 2));
//! kernel_rx.produce(&[(0x800 + 256, 98)]);
//! assert_eq!(rx.shared_indices(), at(1, 0));
//!
//! // We answer in place: the same address, the reply's length, onto the TX ring.
//! let mut replies = tx.reserve(1);
//! let mut received = rx.peek(1);
//! let frame = received.next().unwrap();
//! assert_eq!((frame.addr(), frame.len()), (0x900, 98));
//! replies.push(frame);
//! assert_eq!(received.release(), 1); // release: publish the consumer index
//! assert_eq!(replies.submit(), 1);
//! assert_eq!((rx.shared_indices(), tx.shared_indices()), (at(1, 1), at(1, 0)));
//!
//! // The kernel sends it and returns the address on the completion ring; we put the frame
//! // back on the fill ring, which stores the frame's base (headroom masked off).
//! assert_eq!(kernel_tx.consume(4), vec![(0x900, 98)]);
//! kernel_completion.produce(&[0x900]);
//! let mut refill = fill.reserve(1);
//! for frame in completion.peek(1) {
//!     refill.push(frame);
//! }
//! refill.submit();
//! assert_eq!(kernel_fill.consume(4), vec![0x800], "back where it started");
//! assert_eq!((fill.shared_indices(), completion.shared_indices()), (at(3, 3), at(3, 3)));
//! ```

use crate::ring::{self, KernelSide};
use crate::sys::xdp_desc;
use crate::{CompletionRing, FillRing, RxRing, TxRing};

/// One make-believe socket: the rings it makes accept each other's frames (and no real
/// socket's).
#[derive(Debug)]
pub struct Sandbox {
    owner: u32,
    frame_size: u32,
}

impl Sandbox {
    /// A sandbox whose fill ring masks addresses to frames of `frame_size` bytes (a power of two).
    ///
    /// Panics if `frame_size` is not a power of two, or after 2^32 sandboxes and sockets.
    pub fn new(frame_size: u32) -> Self {
        assert!(
            frame_size.is_power_of_two(),
            "frame size {frame_size} is not a power of two"
        );
        let owner = crate::umem::new_owner().expect("socket identities exhausted");
        Sandbox { owner, frame_size }
    }

    /// A fill ring of `size` entries (a power of two) and its kernel side.
    pub fn fill_ring(&self, size: u32) -> (FillRing, KernelSide<u64>) {
        check(size);
        ring::heap_producer(size, self.owner, !(u64::from(self.frame_size) - 1), 0)
    }

    /// A completion ring of `size` entries (a power of two) and its kernel side.
    pub fn completion_ring(&self, size: u32) -> (CompletionRing, KernelSide<u64>) {
        check(size);
        ring::heap_consumer(size, self.owner, 0)
    }

    /// An RX ring of `size` entries (a power of two) and its kernel side.
    pub fn rx_ring(&self, size: u32) -> (RxRing, KernelSide<xdp_desc>) {
        check(size);
        ring::heap_consumer(size, self.owner, ZERO_DESC)
    }

    /// A TX ring of `size` entries (a power of two) and its kernel side.
    pub fn tx_ring(&self, size: u32) -> (TxRing, KernelSide<xdp_desc>) {
        check(size);
        ring::heap_producer(size, self.owner, !0, ZERO_DESC)
    }
}

fn check(size: u32) {
    assert!(size.is_power_of_two(), "ring size {size} is not a power of two");
}

const ZERO_DESC: xdp_desc = xdp_desc {
    addr: 0,
    len: 0,
    options: 0,
};
