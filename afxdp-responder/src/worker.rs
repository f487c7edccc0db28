//! One worker per queue: the loop that turns received echo requests into replies.
//!
//! A worker owns its socket, its UMEM and its [`Responder`]; it shares nothing with other
//! workers and takes no lock. Each turn of the loop (the shape of xdpsock's l2fwd):
//!
//! 1. **reclaim**: frames the kernel finished sending (completion ring) go straight back to the
//!    fill ring;
//! 2. **receive**: take a batch from the RX ring, no larger than the free room on the TX ring
//!    (if TX is full, frames wait on the RX ring: back-pressure, not loss);
//! 3. **respond** to each frame in place: a reply goes onto the TX ring *at the same UMEM
//!    address*; a dropped frame goes back onto the fill ring;
//! 4. **send**: publish the batch, and kick the kernel when it needs it. In copy mode one kick
//!    sends at most 32 frames, so the worker kicks until the TX ring is drained;
//! 5. **wait**: with nothing received, sleep in `poll()` (or spin with `--busy-poll`).
//!
//! Frame accounting: the UMEM has exactly as many frames as the fill ring has slots, and every
//! frame is always on one of the four rings or, within one loop turn, in the worker's hands.
//! So the fill ring always has room for every frame the worker gives back, and at exit
//! [`FrameCensus`] must add up to the UMEM's frame count.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::respond::{Responder, Verdict};
use crate::stats::{Counters, KernelStats, SharedCounters};
use crate::xsk::{BindMode, FrameCensus, SyscallError, Xsk, xdp_desc};

/// How long an idle worker spins on its rings before it sleeps in `poll()`: 0 by default, set
/// with the environment variable `AFXDP_SPIN_US` (an experiment knob). Measured in the bench lab
/// on this 2-core VM (`bench --queues 1 --engines afxdp-copy-native,kernel --families v4 --sizes 64`,
/// two runs each): 50 µs answered more at saturation (98 % vs 79–93 %) but cost more CPU per
/// reply at 100 kpps (9.1–10.7 vs 8.7–9.0 CPU-s per million), with no clear throughput gain.
fn spin_before_sleep() -> Duration {
    static SPIN: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *SPIN.get_or_init(|| {
        let us = std::env::var("AFXDP_SPIN_US")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Duration::from_micros(us)
    })
}

/// How long `poll()` sleeps before the worker checks whether it should stop.
const POLL_TIMEOUT_MS: i32 = 100;

/// How long the worker waits at exit for the kernel to finish sending queued replies.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(500);

/// A worker failed; the message names the queue and the failed call.
#[derive(Debug, thiserror::Error)]
#[error("queue {queue}: {source}")]
pub struct WorkerError {
    /// Queue of the worker.
    pub queue: u32,
    /// The failed call.
    #[source]
    pub source: SyscallError,
}

/// What a worker reports when it stops.
#[derive(Debug, Clone, Copy)]
pub struct WorkerReport {
    /// Queue served.
    pub queue: u32,
    /// Mode the socket was bound in.
    pub mode: BindMode,
    /// Final counters.
    pub counters: Counters,
    /// Where every UMEM frame was at exit.
    pub census: FrameCensus,
    /// The kernel's drop counters for the socket at exit.
    pub kernel: KernelStats,
}

/// The per-queue worker: socket, responder, counters.
#[derive(Debug)]
pub struct Worker {
    xsk: Xsk,
    responder: Responder,
    batch: u32,
    busy_poll: bool,
    check_frames: bool,
    counters: Counters,
}

impl Worker {
    /// A worker answering on `xsk` with `responder`, taking up to `batch` frames per turn.
    pub fn new(xsk: Xsk, responder: Responder, batch: u32, busy_poll: bool) -> Self {
        Worker {
            xsk,
            responder,
            batch,
            busy_poll,
            check_frames: false,
            counters: Counters::default(),
        }
    }

    /// Checks the frame accounting after every turn of the loop (for tests; costs four atomic
    /// loads per turn). See [`Worker::check_frame_accounting`].
    pub fn with_frame_checks(mut self, on: bool) -> Self {
        self.check_frames = on;
        self
    }

    /// Between two turns of the loop the worker holds no frame, so every frame is on one of the
    /// four rings or in flight inside the kernel. Two kinds of "in flight" are legitimate and
    /// bounded: frames the kernel took from TX and has not completed (at most a TX ring), and
    /// frames it took from the fill ring while receiving, whose RX entries it publishes before
    /// the new fill consumer index (`xsk_flush`), so for a moment they are counted twice (at
    /// most an RX ring). A leaked or duplicated frame breaks these bounds sooner or later; at
    /// exit, when nothing is in flight, the census must add up exactly.
    pub fn check_frame_accounting(&self) -> Result<(), String> {
        let census = self.xsk.frame_census();
        let elsewhere = census.elsewhere();
        let (rx, tx) = (i64::from(self.xsk.rx.size()), i64::from(self.xsk.tx.size()));
        if elsewhere < -rx || elsewhere > rx + tx {
            return Err(format!(
                "frame accounting broken on queue {}: {census} (allowed: -{rx}..={} in flight)",
                self.xsk.queue(),
                rx + tx
            ));
        }
        Ok(())
    }

    /// The socket (for its descriptor and mode).
    pub fn xsk(&self) -> &Xsk {
        &self.xsk
    }

    /// Runs until `stop` is set, publishing counters to `shared` after every batch. At exit it
    /// answers what is still on the RX ring, lets the kernel send every queued reply, and
    /// counts the frames.
    pub fn run(mut self, stop: &AtomicBool, shared: &SharedCounters) -> Result<WorkerReport, WorkerError> {
        let queue = self.xsk.queue();
        let err = |source| WorkerError { queue, source };
        while !stop.load(Ordering::Relaxed) {
            self.reclaim_completions();
            let received = self.receive_and_respond();
            self.flush_tx().map_err(err)?;
            if received == 0 {
                self.wait_for_traffic().map_err(err)?;
            }
            shared.publish(&self.counters);
            if self.check_frames
                && let Err(msg) = self.check_frame_accounting()
            {
                return Err(WorkerError {
                    queue,
                    source: SyscallError {
                        call: "frame check",
                        source: std::io::Error::other(msg),
                    },
                });
            }
        }
        self.drain().map_err(err)?;
        shared.publish(&self.counters);
        Ok(WorkerReport {
            queue,
            mode: self.xsk.mode(),
            counters: self.counters,
            census: self.xsk.frame_census(),
            kernel: self.xsk.statistics().map(KernelStats::from).unwrap_or_default(),
        })
    }

    /// Step 1: sent frames go back to the fill ring.
    ///
    /// The fill ring has a slot for every frame, but the kernel publishes its fill-ring consumer
    /// index lazily (it may have taken entries it has not reported yet), so the room we *see*
    /// can be smaller for a moment: frames that do not fit stay on the completion ring until the
    /// next turn. Nothing is lost either way.
    fn reclaim_completions(&mut self) -> u32 {
        let xsk = &mut self.xsk;
        let n = xsk.comp.peek(xsk.comp.size());
        if n == 0 {
            xsk.comp.release(0);
            return 0;
        }
        let room = xsk.fill.reserve(n);
        for i in 0..room {
            xsk.fill.write(i, frame_base(xsk.comp.read(i), xsk.umem.frame_size()));
        }
        xsk.fill.submit(room);
        xsk.comp.release(room);
        room
    }

    /// Steps 2 and 3: take a batch, respond in place, queue replies and recycle drops.
    fn receive_and_respond(&mut self) -> u32 {
        let xsk = &mut self.xsk;
        let tx_room = xsk.tx.free(self.batch).min(self.batch);
        if tx_room == 0 {
            self.counters.tx_ring_full += 1;
            return 0;
        }
        // Never take more frames than the fill ring can take back right now: it has a slot for
        // every frame, but the kernel publishes its consumer index lazily.
        let fill_room = xsk.fill.free(tx_room).min(tx_room);
        let n = xsk.rx.peek(fill_room);
        if n == 0 {
            xsk.rx.release(0);
            return 0;
        }
        let replies_room = xsk.tx.reserve(n);
        let fill_room = xsk.fill.reserve(n);
        debug_assert!(replies_room == n && fill_room == n);

        let frame_size = xsk.umem.frame_size();
        let (mut replies, mut recycled) = (0u32, 0u32);
        for i in 0..n {
            let desc = xsk.rx.read(i);
            let verdict = match xsk.umem.frame_mut(desc.addr, desc.len) {
                Some(frame) => Some(self.responder.respond(frame)),
                None => None,
            };
            match verdict {
                Some(Verdict::Reply { len }) => {
                    xsk.tx.write(
                        replies,
                        xdp_desc {
                            addr: desc.addr,
                            len: len as u32,
                            options: 0,
                        },
                    );
                    replies += 1;
                }
                Some(Verdict::Drop(reason)) => {
                    self.counters.drops[reason.index()] += 1;
                    xsk.fill.write(recycled, frame_base(desc.addr, frame_size));
                    recycled += 1;
                }
                None => {
                    self.counters.bad_descriptors += 1;
                    xsk.fill.write(recycled, frame_base(desc.addr, frame_size));
                    recycled += 1;
                }
            }
        }
        xsk.tx.submit(replies);
        xsk.fill.submit(recycled);
        xsk.rx.release(n);
        self.counters.rx += u64::from(n);
        self.counters.tx += u64::from(replies);
        n
    }

    /// Step 4: make the kernel send what is on the TX ring.
    ///
    /// Zero-copy: kick only when the kernel asks (`need_wakeup`). Copy mode: each kick sends at
    /// most [`Xsk::tx_budget`] frames (32 by default; raised to half the TX ring where the kernel
    /// allows it), so kick until the kernel has taken everything (bounded: a full ring needs
    /// `size / budget` kicks), reclaiming completions in between so TX never stalls on a full
    /// completion ring.
    fn flush_tx(&mut self) -> Result<(), SyscallError> {
        if self.xsk.tx.outstanding() == 0 {
            return Ok(());
        }
        if self.xsk.mode() == BindMode::ZeroCopy {
            if !self.xsk.uses_need_wakeup() || self.xsk.tx.needs_wakeup() {
                self.xsk.kick_tx()?;
                self.counters.kicks += 1;
            }
            return Ok(());
        }
        let max_kicks = self.xsk.tx.size() / self.xsk.tx_budget() + 2;
        for _ in 0..max_kicks {
            self.xsk.kick_tx()?;
            self.counters.kicks += 1;
            self.reclaim_completions();
            if self.xsk.tx.outstanding() == 0 {
                break;
            }
        }
        Ok(())
    }

    /// Step 5: nothing arrived; sleep in `poll()` until something does (or spin).
    fn wait_for_traffic(&mut self) -> Result<(), SyscallError> {
        if self.busy_poll {
            // Busy-poll mode never sleeps; with need_wakeup the kernel may still ask for a
            // nudge to refill its RX side.
            if self.xsk.uses_need_wakeup() && self.xsk.fill.needs_wakeup() {
                self.xsk.poll_rx(0)?;
                self.counters.polls += 1;
            }
            std::hint::spin_loop();
            return Ok(());
        }
        // Under load the RX ring is often empty only for a few microseconds: spinning briefly
        // before sleeping can save a sleep/wake-up pair per batch, at the price of CPU time (off
        // by default, see `spin_before_sleep`). An idle worker sleeps in poll(): idle CPU stays
        // near zero.
        let spin = spin_before_sleep();
        if !spin.is_zero() {
            let until = Instant::now() + spin;
            while Instant::now() < until {
                if self.xsk.rx.available(1) > 0 || self.xsk.comp.available(1) > 0 {
                    return Ok(());
                }
                std::hint::spin_loop();
            }
        }
        self.counters.polls += 1;
        self.xsk.poll_rx(POLL_TIMEOUT_MS)?;
        Ok(())
    }

    /// At exit: answer what is still queued, then wait (bounded) until the kernel sent every
    /// reply and every frame is back on the fill ring. (In zero-copy mode the driver keeps some
    /// fill frames in its own RX ring, so this ends at the deadline; the census shows them.)
    fn drain(&mut self) -> Result<(), SyscallError> {
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        loop {
            self.reclaim_completions();
            self.receive_and_respond();
            self.flush_tx()?;
            self.reclaim_completions();
            let idle = self.xsk.rx.outstanding() == 0
                && self.xsk.tx.outstanding() == 0
                && self.xsk.comp.outstanding() == 0
                && self.xsk.fill.outstanding() == self.xsk.umem.frame_count();
            if idle || Instant::now() >= deadline {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// The first byte of the frame that holds `addr` (RX addresses point past the headroom).
fn frame_base(addr: u64, frame_size: u32) -> u64 {
    addr - addr % u64::from(frame_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_base_strips_the_offset() {
        assert_eq!(frame_base(0, 4096), 0);
        assert_eq!(frame_base(256, 4096), 0);
        assert_eq!(frame_base(4096 * 7 + 256, 4096), 4096 * 7);
        assert_eq!(frame_base(2048 * 3 + 2047, 2048), 2048 * 3);
    }
}
