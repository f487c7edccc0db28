//! The UMEM and the frame token that entitles its holder to one frame of it.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::sys::{Mmap, SyscallError};

/// The right to use one UMEM frame: its address and a length.
///
/// Only the rings hand frames out (reading the RX or the completion ring, see
/// [`ConsumerRing::peek`](crate::ConsumerRing::peek)) and only the rings take them back (writing
/// the fill or the TX ring, see [`Reserved::push`](crate::Reserved::push)); [`Xsk::take_tx_frames`]
/// hands out the frames that were never on a ring. A `Frame` is neither `Copy` nor `Clone`, and
/// only this crate can make one, so while you hold it the kernel does not own the frame and
/// nobody else holds it: [`Umem::frame_mut`] can give you its bytes safely.
///
/// A frame carries the identity of the socket it belongs to; handing it to another socket's
/// ring panics and another socket's [`Umem::frame_mut`] returns `None`.
///
/// A dropped `Frame` is not unsafe, but the frame is lost to the socket until the socket is
/// closed (the [`FrameCensus`](crate::FrameCensus) shows it as unaccounted).
///
/// A frame cannot be copied, so it cannot be given back twice:
///
/// ```compile_fail,E0382
/// # fn f(parts: afxdp_xsk::XskParts<'_>) {
/// let mut rx = parts.rx.peek(1);
/// let mut tx = parts.tx.reserve(1);
/// let mut fill = parts.fill.reserve(1);
/// if let Some(frame) = rx.next() {
///     tx.push(frame);
///     fill.push(frame); // error: use of moved value
/// }
/// # }
/// ```
///
/// ```compile_fail,E0599
/// # fn f(frame: afxdp_xsk::Frame) {
/// let copy = frame.clone(); // error: no method `clone`
/// # }
/// ```
///
/// and it cannot be made up:
///
/// ```compile_fail,E0451
/// let frame = afxdp_xsk::Frame { addr: 0, len: 64, owner: 0 }; // error: private fields
/// ```
///
/// [`Xsk::take_tx_frames`]: crate::Xsk::take_tx_frames
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a dropped frame is lost to its socket: give it back to the fill or the TX ring"]
pub struct Frame {
    /// UMEM address of the first byte (the kernel may add an offset into the frame).
    pub(crate) addr: u64,
    /// Bytes of packet from `addr`: received (RX), to send (TX), 0 for an empty frame.
    pub(crate) len: u32,
    /// The socket whose UMEM this frame is in (see [`Umem`]).
    pub(crate) owner: u32,
}

impl Frame {
    /// UMEM address of the packet's first byte.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// Length of the packet in bytes: what was received, or what [`Frame::set_len`] set.
    /// Frames from the completion ring and from [`Xsk::take_tx_frames`](crate::Xsk::take_tx_frames)
    /// have length 0.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether the packet is empty (`len() == 0`).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets the packet length: the bytes [`Umem::frame_mut`] gives and the TX ring sends.
    pub fn set_len(&mut self, len: u32) {
        self.len = len;
    }
}

/// The identity of the next socket: tags its UMEM, its rings and its frames.
static NEXT_OWNER: AtomicU32 = AtomicU32::new(1);

/// A fresh socket identity, or `None` once 2³² − 1 sockets were opened in this process (an
/// identity is never reused, so a frame of a closed socket never matches a new one).
pub(crate) fn new_owner() -> Option<u32> {
    NEXT_OWNER
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |id| id.checked_add(1))
        .ok()
}

/// The UMEM: `frame_count` frames of `frame_size` bytes in one anonymous mapping.
///
/// Get one from [`Xsk::split`](crate::Xsk::split) or [`Xsk::umem`](crate::Xsk::umem).
#[derive(Debug)]
pub struct Umem {
    map: Mmap,
    frame_size: u32,
    frame_count: u32,
    owner: u32,
}

impl Umem {
    /// Maps `frame_count` frames of `frame_size` bytes (a power of two) for socket `owner`.
    pub(crate) fn new(frame_size: u32, frame_count: u32, owner: u32) -> Result<Self, SyscallError> {
        // `frame_mut`'s bounds check relies on it.
        assert!(
            frame_size.is_power_of_two(),
            "frame size {frame_size} is not a power of two"
        );
        let map = Mmap::anonymous(frame_size as usize * frame_count as usize)?;
        Ok(Umem {
            map,
            frame_size,
            frame_count,
            owner,
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

    /// The mapping, to register it with the kernel.
    pub(crate) fn map(&self) -> &Mmap {
        &self.map
    }

    /// The token of frame `index` (its first byte, length 0). Only for frames that are on no
    /// ring and have no token yet: `Xsk::open` calls it once per frame.
    pub(crate) fn new_frame(&self, index: u32) -> Frame {
        debug_assert!(index < self.frame_count);
        Frame {
            addr: u64::from(index) * u64::from(self.frame_size),
            len: 0,
            owner: self.owner,
        }
    }

    /// The `frame.len()` bytes of `frame`, or `None` when the frame belongs to another socket
    /// or its bytes do not lie inside one frame of this UMEM (a bad RX descriptor, or a length
    /// set too large).
    ///
    /// The bytes stay borrowed from `frame`, so the frame cannot be given back to a ring while
    /// they are in use:
    ///
    /// ```compile_fail,E0505
    /// # fn f(parts: afxdp_xsk::XskParts<'_>) {
    /// let mut rx = parts.rx.peek(1);
    /// let mut tx = parts.tx.reserve(1);
    /// let frame = rx.next().unwrap();
    /// let bytes = parts.umem.frame_mut(&frame).unwrap();
    /// tx.push(frame); // error: the kernel may read the frame now...
    /// bytes[0] = 0; //  ...while this writes it
    /// # }
    /// ```
    ///
    /// # Example
    ///
    /// ```no_run
    /// # fn f(xsk: &mut afxdp_xsk::Xsk) {
    /// let parts = xsk.split();
    /// let mut rx = parts.rx.peek(64);
    /// let mut fill = parts.fill.reserve(rx.len() as u32);
    /// for frame in &mut rx {
    ///     if let Some(bytes) = parts.umem.frame_mut(&frame) {
    ///         println!("received {} bytes, first {:02x?}", bytes.len(), &bytes[..bytes.len().min(14)]);
    ///     }
    ///     fill.push(frame); // receive into it again
    /// }
    /// # }
    /// ```
    #[inline]
    pub fn frame_mut<'a>(&'a mut self, frame: &'a Frame) -> Option<&'a mut [u8]> {
        // `frame_size` is a power of two (see `new`), so this is the offset inside the frame.
        let offset_in_frame = frame.addr & u64::from(self.frame_size - 1);
        if frame.owner != self.owner
            || frame.addr >= self.map.len() as u64
            || offset_in_frame + u64::from(frame.len) > u64::from(self.frame_size)
        {
            return None;
        }
        // SAFETY: `addr..addr+len` lies inside one frame of the mapping (checked above), which
        // lives as long as `self`. Nobody else touches these bytes while the slice lives:
        // - the kernel does not, because the frame is on no ring: `frame` proves it was taken
        //   from a ring of this socket (the owner check) and not given back yet (giving it back
        //   moves it, which the borrow of `frame` forbids while the slice lives);
        // - no other Rust code does, because `&mut self` is the only borrow of the UMEM, and a
        //   `Frame` is unique (neither `Copy` nor `Clone`, made only by this crate, one per
        //   frame; the kernel returns each frame it was given once).
        Some(unsafe { std::slice::from_raw_parts_mut(self.map.as_ptr().add(frame.addr as usize), frame.len as usize) })
    }

    /// The `meta_len` bytes right before the packet in the same UMEM frame (where the XDP
    /// program's metadata lands: `bpf_xdp_adjust_meta`, delivered by AF_XDP in copy and in
    /// zero-copy mode), and the packet's bytes as [`Umem::frame_mut`] gives them.
    ///
    /// `None` when [`Umem::frame_mut`] would refuse the frame, or when the packet starts less
    /// than `meta_len` bytes into its frame (then there is no room for metadata). The bytes are
    /// whatever is in the frame's headroom: the caller must recognise its own metadata (a magic
    /// value) and should clear it after reading, so a stale copy is never taken for a new one.
    ///
    /// ```no_run
    /// # fn f(xsk: &mut afxdp_xsk::Xsk) {
    /// let parts = xsk.split();
    /// let mut rx = parts.rx.peek(1);
    /// let mut fill = parts.fill.reserve(1);
    /// for frame in &mut rx {
    ///     if let Some((meta, packet)) = parts.umem.meta_and_frame_mut(&frame, 16) {
    ///         println!("metadata {meta:02x?} before {} bytes", packet.len());
    ///         meta.fill(0);
    ///     }
    ///     fill.push(frame);
    /// }
    /// # }
    /// ```
    #[inline]
    pub fn meta_and_frame_mut<'a>(
        &'a mut self,
        frame: &'a Frame,
        meta_len: usize,
    ) -> Option<(&'a mut [u8], &'a mut [u8])> {
        let offset_in_frame = frame.addr & u64::from(self.frame_size - 1);
        if offset_in_frame < meta_len as u64 {
            return None;
        }
        // `frame_mut` checks owner, bounds and length; the metadata lies in the same frame
        // (checked just above), so both slices are inside one frame of this UMEM.
        let meta_start = (frame.addr - meta_len as u64) as usize;
        let packet = self.frame_mut(frame)?;
        let packet_ptr = packet.as_mut_ptr();
        let packet_len = packet.len();
        // SAFETY: `meta_start..frame.addr` lies inside the same UMEM frame as the packet (its
        // offset in the frame is at least `meta_len`, checked above, and `frame_mut` checked the
        // frame is in this mapping), so it is valid for reads and writes. It does not overlap
        // the packet slice, which starts at `frame.addr`. Nobody else touches the frame while
        // the slices live, for the reasons given in `frame_mut`: the kernel does not own the
        // frame while `frame` is held, and `&mut self` is the only borrow of the UMEM. The two
        // slices are rebuilt from raw pointers so that they can coexist.
        let (meta, packet) = unsafe {
            (
                std::slice::from_raw_parts_mut(self.map.as_ptr().add(meta_start), meta_len),
                std::slice::from_raw_parts_mut(packet_ptr, packet_len),
            )
        };
        Some((meta, packet))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "mmap")]
    fn frame_mut_gives_the_bytes_of_one_frame_of_this_umem_only() {
        let owner = new_owner().unwrap();
        let mut umem = Umem::new(2048, 4, owner).unwrap();
        let mut frame = umem.new_frame(3);
        assert_eq!((frame.addr(), frame.len()), (3 * 2048, 0));
        frame.set_len(2048);
        umem.frame_mut(&frame).unwrap().fill(0xab);
        let rx = Frame {
            addr: 3 * 2048 + 256,
            len: 1792,
            owner,
        };
        let bytes = umem.frame_mut(&rx).unwrap();
        assert_eq!((bytes.len(), bytes[0], bytes[1791]), (1792, 0xab, 0xab));

        let bad = [
            (3 * 2048 + 256, 1793, owner, "one byte past the frame"),
            (4 * 2048, 1, owner, "past the UMEM"),
            (u64::MAX, 0, owner, "far past the UMEM"),
            (0, 64, owner + 1, "a frame of another socket"),
        ];
        for (addr, len, owner, what) in bad {
            assert!(umem.frame_mut(&Frame { addr, len, owner }).is_none(), "{what}");
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap")]
    fn metadata_is_the_bytes_before_the_packet_in_its_frame() {
        let owner = new_owner().unwrap();
        let mut umem = Umem::new(2048, 2, owner).unwrap();
        let mut whole = umem.new_frame(1);
        whole.set_len(2048);
        let bytes = umem.frame_mut(&whole).unwrap();
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = i as u8;
        }
        let rx = Frame {
            addr: 2048 + 256,
            len: 60,
            owner,
        };
        let (meta, packet) = umem.meta_and_frame_mut(&rx, 16).unwrap();
        assert_eq!(meta, &(240u8..=255).collect::<Vec<_>>()[..]);
        assert_eq!((packet.len(), packet[0]), (60, 0));
        meta.fill(0);
        let (meta, _) = umem.meta_and_frame_mut(&rx, 16).unwrap();
        assert_eq!(meta, &[0; 16]);

        let at_start = Frame {
            addr: 2048 + 8,
            len: 60,
            owner,
        };
        assert!(
            umem.meta_and_frame_mut(&at_start, 16).is_none(),
            "no room before the packet"
        );
        let foreign = Frame {
            addr: 256,
            len: 60,
            owner: owner + 1,
        };
        assert!(
            umem.meta_and_frame_mut(&foreign, 16).is_none(),
            "another socket's frame"
        );
        let too_long = Frame {
            addr: 2048 + 256,
            len: 1793,
            owner,
        };
        assert!(umem.meta_and_frame_mut(&too_long, 16).is_none(), "past the frame");
    }

    #[test]
    fn socket_identities_are_unique() {
        let (a, b) = (new_owner().unwrap(), new_owner().unwrap());
        assert_ne!(a, b);
        assert_ne!(a, 0);
    }
}
