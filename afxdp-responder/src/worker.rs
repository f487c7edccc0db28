//! One worker per queue: the loop that turns received echo requests into replies.
//!
//! A worker owns its socket, its UMEM and its [`Responder`]; it shares nothing with other
//! workers and takes no lock. Each turn of the loop (the shape of xdpsock's l2fwd):
//!
//! 1. **reclaim**: frames the kernel finished sending (completion ring) go straight back to the
//!    fill ring;
//! 2. **receive**: take a batch from the RX ring, no larger than the free room on the TX ring
//!    (if TX is full, frames wait on the RX ring: back-pressure, not loss);
//! 3. **respond** to each frame in place, to the next hop the XDP program found in the kernel's
//!    FIB (its metadata in front of the frame, [`NextHop`]): a reply goes onto the TX ring *at
//!    the same UMEM address*; a dropped frame goes back onto the fill ring;
//! 4. **send**: publish the batch, and kick the kernel when it needs it. In copy mode one kick
//!    sends at most 32 frames, so the worker kicks until the TX ring is drained;
//! 5. **wait**: with nothing received, spin briefly while that pays off, else sleep in `poll()`
//!    ([`Wait`], [`SpinPredictor`]); with kernel busy polling ([`Wait::BusyPoll`]), drive the
//!    queue's NAPI with `recvfrom(MSG_DONTWAIT)` for a window, then sleep in `poll()`.
//!
//! Frame accounting: the UMEM has exactly as many frames as the fill ring has slots, and every
//! frame is always on one of the four rings or, within one loop turn, in the worker's hands.
//! So the fill ring always has room for every frame the worker gives back, and at exit
//! [`FrameCensus`] must add up to the UMEM's frame count. The worker's hands are typed: a frame
//! is an [`afxdp_xsk::Frame`] token from the RX or completion ring, and the only way to let go of
//! it is to push it onto the TX or fill ring.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::policy::LivePolicy;
use crate::stats::{Counters, KernelStats, SharedCounters};
use crate::tracer::{NoProbe, Probe, Tracer};
use afxdp_xsk::{BindMode, FrameCensus, SyscallError, Xsk};
use echo_wire::respond::{DropReason, NextHop, Responder, Verdict};

/// How a worker waits when its RX ring is empty.
///
/// Sleeping in `poll()` costs almost nothing while idle, but under load every sleep is paid
/// twice: a wake-up in the kernel's receive path (on the CPU that delivered the packet, often an
/// IPI to ours) and a context switch here. Spinning costs nothing extra when the next packet is
/// about to arrive and a whole core when it is not. [`Wait::Adaptive`] takes the middle road.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Sleep in `poll()` as soon as the RX ring is empty.
    Sleep,
    /// Spin for up to `window` before sleeping, but only while spinning pays off: after a
    /// spin that caught a packet, or a sleep that would have been shorter than `window`. See
    /// [`SpinPredictor`].
    Adaptive {
        /// The longest spin; about the cost of one sleep/wake-up pair.
        window: Duration,
    },
    /// Never sleep: spin on the rings in user space (one busy core per queue, even without
    /// traffic). The kernel's softirq still does the receive work (`--wait spin`).
    Spin,
    /// The kernel's preferred busy polling (`--busy-poll`): the socket has `SO_PREFER_BUSY_POLL`
    /// set, and with its RX ring empty the worker runs the queue's NAPI itself
    /// (`recvfrom(MSG_DONTWAIT)`, up to the socket's busy-poll budget per call) for up to
    /// `window`, then sleeps in `poll()`; while it sleeps, the device's `gro_flush_timeout`
    /// timer schedules the NAPI instead of its interrupt.
    BusyPoll {
        /// How long to keep polling an empty queue before sleeping (also `SO_BUSY_POLL`).
        window: Duration,
    },
}

impl Wait {
    /// The default: sleep in `poll()` (docs/decisions.md §17: the adaptive spin cost more CPU
    /// per reply than sleeping at fixed rates in the bench's ladder and bought no latency).
    pub const DEFAULT: Wait = Wait::Sleep;
}

/// The default window of [`Wait::BusyPoll`] (`--busy-poll-us`), the value the kernel's
/// Documentation/networking/af_xdp.rst gives for `SO_BUSY_POLL`.
pub const DEFAULT_BUSY_POLL: Duration = Duration::from_micros(20);

/// The default window of [`Wait::Adaptive`]. Measured in the bench lab (docs/benchmarks.md).
pub const DEFAULT_SPIN_WINDOW: Duration = Duration::from_micros(20);

/// Decides, before each wait, whether to spin first: a one-bit predictor that assumes the next
/// gap between packets looks like the last one, with a back-off for when it keeps being wrong.
///
/// * A spin that caught a packet within the window: keep spinning.
/// * A spin that ran out: the traffic paused or thinned; sleep from now on, and ignore the next
///   `backoff` short sleeps (1, 2, 4, … up to [`SpinPredictor::MAX_BACKOFF`] after consecutive
///   failures; a caught spin resets it).
/// * A sleep that lasted less than the window: a spin would have caught that packet for less
///   than the sleep/wake-up cost; spin next time.
///
/// Under dense traffic the worker therefore never sleeps; at low rates (gaps longer than the
/// window) it sleeps like [`Wait::Sleep`]; when traffic stops it wastes at most one window, so
/// an idle worker costs what a sleeping one does. (Spinning for as long as a sleep costs is the
/// classic competitive rule for spin-then-block: it never spends more than twice the optimum.)
///
/// The back-off matters when the sender shares the worker's CPU (the lab with two queues on two
/// cores): a short sleep then only means the sender ran *because* the worker slept, and a spin
/// keeps the sender off the CPU until the window runs out. Measured before the back-off: 0 of
/// 30 000 spins caught anything at 2 × 50 k requests/s, and the spins nearly doubled the
/// worker's CPU per reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpinPredictor {
    window: Duration,
    spin_next: bool,
    /// Short sleeps to ignore after the last failed spin (doubles per consecutive failure).
    backoff: u32,
    /// Short sleeps still to ignore.
    ignore: u32,
}

impl SpinPredictor {
    /// The most short sleeps ignored after consecutive failed spins.
    pub const MAX_BACKOFF: u32 = 256;

    /// A predictor with the given window; it starts by sleeping.
    pub fn new(window: Duration) -> Self {
        SpinPredictor {
            window,
            spin_next: false,
            backoff: 0,
            ignore: 0,
        }
    }

    /// How long to spin before sleeping this time (zero: sleep right away).
    pub fn spin_for(&self) -> Duration {
        if self.spin_next { self.window } else { Duration::ZERO }
    }

    /// A spin ended: `caught` is true when traffic arrived before the window ran out.
    pub fn spun(&mut self, caught: bool) {
        self.spin_next = caught;
        if caught {
            self.backoff = 0;
        } else {
            self.backoff = (self.backoff * 2).clamp(1, Self::MAX_BACKOFF);
            self.ignore = self.backoff;
        }
    }

    /// A sleep in `poll()` ended after `slept`, with traffic (`woken`) or at its timeout.
    pub fn slept(&mut self, slept: Duration, woken: bool) {
        let short = woken && slept < self.window;
        if short && self.ignore > 0 {
            self.ignore -= 1;
            self.spin_next = false;
            return;
        }
        self.spin_next = short;
    }
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
    wait: Wait,
    spin: SpinPredictor,
    check_frames: bool,
    counters: Counters,
    /// The host's reply policy as the monitor publishes it, and the last word applied.
    live: Option<(Arc<LivePolicy>, u64)>,
    /// `--trace N`: the frame tracer while it runs (see [`crate::tracer`]).
    tracer: Option<Box<Tracer>>,
}

impl Worker {
    /// A worker answering on `xsk` with `responder`, taking up to `batch` frames per turn.
    pub fn new(xsk: Xsk, responder: Responder, batch: u32, wait: Wait) -> Self {
        // A zero window never spins (no sleep is shorter than zero): that is `--wait sleep`.
        // (`--wait spin` and `--busy-poll` do not consult the predictor at all.)
        let window = match wait {
            Wait::Adaptive { window } => window,
            Wait::Sleep | Wait::Spin | Wait::BusyPoll { .. } => Duration::ZERO,
        };
        Worker {
            xsk,
            responder,
            batch,
            wait,
            spin: SpinPredictor::new(window),
            check_frames: false,
            counters: Counters::default(),
            live: None,
            tracer: None,
        }
    }

    /// Prints the journey of the first `frames` frames round the rings on stderr (`--trace`;
    /// 0: off). See [`crate::tracer`].
    pub fn with_trace(mut self, frames: u32) -> Self {
        self.tracer = (frames > 0).then(|| Tracer::new(&self.xsk, frames));
        self
    }

    /// Follows `live`: before each batch the worker compares its word with the last one it
    /// applied (one relaxed atomic load) and gives its [`Responder`] the new policy when the
    /// host's sysctls changed.
    pub fn with_live_policy(mut self, live: Arc<LivePolicy>) -> Self {
        let word = live.word();
        self.responder
            .set_policy(LivePolicy::unpack(word, self.responder.policy().flow_label.key));
        self.live = Some((live, word));
        self
    }

    /// Applies a changed host policy (see [`Worker::with_live_policy`]).
    fn follow_policy(&mut self) {
        if let Some((live, seen)) = &mut self.live {
            let word = live.word();
            if word != *seen {
                *seen = word;
                let key = self.responder.policy().flow_label.key;
                self.responder.set_policy(LivePolicy::unpack(word, key));
            }
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
        let (rx, tx) = (i64::from(self.xsk.rx().size()), i64::from(self.xsk.tx().size()));
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
        match self.tracer.take() {
            None => self.reclaim_completions_with(&mut NoProbe),
            Some(mut tracer) => {
                let room = self.reclaim_completions_with(&mut *tracer);
                self.tracer = tracer.active().then_some(tracer);
                room
            }
        }
    }

    /// [`Worker::reclaim_completions`] with the tracer's hooks (empty for [`NoProbe`]).
    #[inline(always)]
    fn reclaim_completions_with<P: Probe>(&mut self, probe: &mut P) -> u32 {
        let parts = self.xsk.split();
        let n = parts.completion.available(parts.completion.size());
        if n == 0 {
            return 0;
        }
        let mut refill = parts.fill.reserve(n);
        let mut done = parts.completion.peek(refill.remaining());
        let mut index = done.next_index();
        for frame in &mut done {
            probe.completed(index, frame.addr(), refill.next_index());
            index = index.wrapping_add(1);
            refill.push(frame);
        }
        let room = refill.submit();
        done.release();
        probe.published(&self.xsk);
        room
    }

    /// Steps 2 and 3: take a batch, respond in place, queue replies and recycle drops.
    fn receive_and_respond(&mut self) -> u32 {
        match self.tracer.take() {
            None => self.receive_and_respond_with(&mut NoProbe),
            Some(mut tracer) => {
                let n = self.receive_and_respond_with(&mut *tracer);
                self.tracer = tracer.active().then_some(tracer);
                n
            }
        }
    }

    /// [`Worker::receive_and_respond`] with the tracer's hooks (empty for [`NoProbe`]).
    #[inline(always)]
    fn receive_and_respond_with<P: Probe>(&mut self, probe: &mut P) -> u32 {
        // Once per batch: has the host's policy (TTL, hop limit, flow labels) changed?
        self.follow_policy();
        let parts = self.xsk.split();
        let tx_room = parts.tx.free(self.batch).min(self.batch);
        if tx_room == 0 {
            self.counters.tx_ring_full += 1;
            return 0;
        }
        // Never take more frames than the fill ring can take back right now: it has a slot for
        // every frame, but the kernel publishes its consumer index lazily.
        let fill_room = parts.fill.free(tx_room).min(tx_room);
        let mut received = parts.rx.peek(fill_room);
        let n = received.len() as u32;
        if n == 0 {
            return 0;
        }
        let mut replies = parts.tx.reserve(n);
        let mut recycled = parts.fill.reserve(n);
        debug_assert!(replies.remaining() == n && recycled.remaining() == n);

        let mut index = received.next_index();
        for mut frame in &mut received {
            probe.received(index, frame.addr(), frame.len());
            index = index.wrapping_add(1);
            // The XDP program put the reply's next hop (the neighbour's MAC, the egress MAC,
            // from the kernel's FIB) in front of the frame; read it and clear it, so a stale
            // copy is never taken for the next frame's.
            let verdict = parts
                .umem
                .meta_and_frame_mut(&frame, NextHop::XDP_META_LEN)
                .map(|(meta, bytes)| {
                    let hop = NextHop::from_xdp_meta(meta);
                    meta.fill(0);
                    match hop {
                        Some(hop) => probe.respond(&mut self.responder, bytes, &hop),
                        None => Verdict::Drop(DropReason::NoNextHop),
                    }
                });
            match verdict {
                Some(Verdict::Reply { len }) => {
                    // The reply leaves from the same frame: no copy.
                    frame.set_len(len as u32);
                    probe.replied(replies.next_index(), len as u32);
                    replies.push(frame);
                }
                Some(Verdict::Drop(reason)) => {
                    self.counters.drops[reason.index()] += 1;
                    probe.dropped(recycled.next_index(), frame.addr(), reason.as_str());
                    recycled.push(frame);
                }
                None => {
                    self.counters.bad_descriptors += 1;
                    probe.dropped(recycled.next_index(), frame.addr(), "bad descriptor");
                    recycled.push(frame);
                }
            }
        }
        let sent = replies.submit();
        recycled.submit();
        received.release();
        probe.published(&self.xsk);
        self.counters.rx += u64::from(n);
        self.counters.tx += u64::from(sent);
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
        if self.xsk.tx().outstanding() == 0 {
            return Ok(());
        }
        if self.xsk.mode() == BindMode::ZeroCopy {
            // With busy polling the application drives the queue: every sendto() is a chance
            // for the kernel to run the NAPI (xdpsock -B does the same).
            let busy_poll = matches!(self.wait, Wait::BusyPoll { .. });
            if busy_poll || !self.xsk.uses_need_wakeup() || self.xsk.tx().needs_wakeup() {
                self.xsk.kick_tx()?;
                self.counters.kicks += 1;
            }
            return Ok(());
        }
        let max_kicks = self.xsk.tx().size() / self.xsk.tx_budget() + 2;
        for _ in 0..max_kicks {
            self.xsk.kick_tx()?;
            self.counters.kicks += 1;
            self.reclaim_completions();
            if self.xsk.tx().outstanding() == 0 {
                break;
            }
        }
        Ok(())
    }

    /// Step 5: nothing arrived; wait for traffic as [`Wait`] says.
    fn wait_for_traffic(&mut self) -> Result<(), SyscallError> {
        if let Wait::BusyPoll { window } = self.wait {
            return self.busy_poll_then_sleep(window);
        }
        if self.wait == Wait::Spin {
            // Spin mode never sleeps; with need_wakeup the kernel may still ask for a nudge to
            // refill its RX side.
            if self.xsk.uses_need_wakeup() && self.xsk.fill().needs_wakeup() {
                self.xsk.poll_rx(0)?;
                self.counters.kicks += 1;
            }
            std::hint::spin_loop();
            return Ok(());
        }
        let spin = self.spin.spin_for();
        if !spin.is_zero() {
            self.counters.spins += 1;
            let until = Instant::now() + spin;
            loop {
                let parts = self.xsk.split();
                if parts.rx.available(1) > 0 || parts.completion.available(1) > 0 {
                    self.spin.spun(true);
                    self.counters.spins_caught += 1;
                    return Ok(());
                }
                if Instant::now() >= until {
                    break;
                }
                std::hint::spin_loop();
            }
            self.spin.spun(false);
        }
        self.counters.sleeps += 1;
        let asleep = Instant::now();
        let woken = self.xsk.poll_rx(POLL_TIMEOUT_MS)?;
        self.spin.slept(asleep.elapsed(), woken);
        Ok(())
    }

    /// [`Wait::BusyPoll`]: run the queue's NAPI from this thread until something arrives or
    /// `window` passes, then sleep in `poll()` (counted as one spin, caught or not, and a sleep).
    fn busy_poll_then_sleep(&mut self, window: Duration) -> Result<(), SyscallError> {
        self.counters.spins += 1;
        let until = Instant::now() + window;
        loop {
            self.xsk.busy_poll_nudge()?;
            self.counters.kicks += 1;
            let parts = self.xsk.split();
            if parts.rx.available(1) > 0 || parts.completion.available(1) > 0 {
                self.counters.spins_caught += 1;
                return Ok(());
            }
            if Instant::now() >= until {
                break;
            }
        }
        self.counters.sleeps += 1;
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
            let idle = self.xsk.rx().outstanding() == 0
                && self.xsk.tx().outstanding() == 0
                && self.xsk.completion().outstanding() == 0
                && self.xsk.fill().outstanding() == self.xsk.umem().frame_count();
            if idle || Instant::now() >= deadline {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spin_predictor_spins_only_while_it_pays() {
        let window = Duration::from_micros(20);
        let short = Duration::from_micros(5);
        let mut p = SpinPredictor::new(window);
        assert_eq!(p.spin_for(), Duration::ZERO, "starts by sleeping");
        // A long sleep (traffic is sparse): keep sleeping.
        p.slept(Duration::from_micros(500), true);
        assert_eq!(p.spin_for(), Duration::ZERO);
        // A sleep shorter than the window: a spin would have been cheaper.
        p.slept(short, true);
        assert_eq!(p.spin_for(), window);
        // Spins that catch traffic keep it spinning.
        p.spun(true);
        assert_eq!(p.spin_for(), window);
        // A poll() timeout is not traffic, however short it was.
        let mut q = p;
        q.slept(Duration::from_micros(1), false);
        assert_eq!(q.spin_for(), Duration::ZERO);
        // A spin that runs out: back to sleeping, and the next short sleep is ignored.
        p.spun(false);
        assert_eq!(p.spin_for(), Duration::ZERO);
        p.slept(short, true);
        assert_eq!(p.spin_for(), Duration::ZERO, "backing off");
        p.slept(short, true);
        assert_eq!(p.spin_for(), window, "back-off of 1 used up");
    }

    #[test]
    fn a_zero_window_never_spins() {
        let mut p = SpinPredictor::new(Duration::ZERO);
        for slept in [Duration::ZERO, Duration::from_nanos(1), Duration::from_micros(5)] {
            p.slept(slept, true);
            assert_eq!(p.spin_for(), Duration::ZERO);
        }
    }

    #[test]
    fn failed_spins_back_off_exponentially_and_a_caught_one_resets() {
        let window = Duration::from_micros(20);
        let short = Duration::from_micros(5);
        let mut p = SpinPredictor::new(window);
        // Every spin fails (the sender cannot run while we spin): count the short sleeps between
        // two spins. They double up to MAX_BACKOFF.
        let mut gaps = Vec::new();
        let mut since_spin = 0;
        for _ in 0..2000 {
            if p.spin_for().is_zero() {
                p.slept(short, true);
                since_spin += 1;
            } else {
                gaps.push(since_spin);
                since_spin = 0;
                p.spun(false);
            }
        }
        assert_eq!(
            &gaps[..6],
            &[1, 2, 3, 5, 9, 17],
            "first spin after one short sleep, then 1+backoff"
        );
        assert!(gaps.iter().all(|&g| g <= SpinPredictor::MAX_BACKOFF + 1), "{gaps:?}");
        assert_eq!(*gaps.last().unwrap(), SpinPredictor::MAX_BACKOFF + 1);
        // One caught spin resets the back-off: the next failure ignores one short sleep only.
        while p.spin_for().is_zero() {
            p.slept(short, true);
        }
        p.spun(true);
        p.spun(false);
        p.slept(short, true);
        assert_eq!(p.spin_for(), Duration::ZERO);
        p.slept(short, true);
        assert_eq!(p.spin_for(), window);
    }
}
