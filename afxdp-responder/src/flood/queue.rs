//! One queue's thread: send requests (paced), reclaim sent frames, receive and verify replies,
//! and drain the last replies when sending ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use afxdp_xsk::{Frame, SyscallError, Xsk};

use super::FloodConfig;
use super::capture::Answered;
use super::report::QueueResult;
use super::template::Template;
use crate::loader::{CaptureProgram, LoaderError};

/// How long to keep receiving after the last request was sent.
const DRAIN: Duration = Duration::from_millis(300);

/// One queue's loop: send (paced), reclaim, receive and verify; then drain replies.
#[allow(clippy::too_many_arguments)]
pub(super) fn sender(
    mut xsk: Xsk,
    template: &Template,
    ident: u16,
    base: Instant,
    cfg: &FloodConfig,
    count: Option<u64>,
    rate: Option<f64>,
    stop: &AtomicBool,
) -> Result<QueueResult, SyscallError> {
    const BATCH: u32 = 64;
    let mut free: Vec<Frame> = xsk.take_tx_frames().collect();
    let frame_len = template.frame.len() as u32;
    let mut answered = Answered::default();
    let mut r = QueueResult::new(xsk.mode());
    let start = Instant::now();
    let end = start + cfg.duration;
    let mut drain_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let sending = drain_until.is_none();
        if sending && (now >= end || stop.load(Ordering::Relaxed) || count.is_some_and(|c| r.sent >= c)) {
            drain_until = Some(now + DRAIN);
        }
        if let Some(t) = drain_until
            && now >= t
        {
            break;
        }

        // Reclaim sent frames.
        let parts = xsk.split();
        free.extend(parts.completion.peek(parts.completion.size()));

        // Send, paced.
        let mut sent_now = 0;
        if drain_until.is_none() {
            let mut want = BATCH.min(free.len() as u32);
            if let Some(c) = count {
                want = want.min((c - r.sent).min(u64::from(u32::MAX)) as u32);
            }
            if let Some(pps) = rate {
                let due = (now.duration_since(start).as_secs_f64() * pps) as u64 + 1;
                want = want.min(due.saturating_sub(r.sent).min(u64::from(BATCH)) as u32);
            }
            let mut batch = parts.tx.reserve(want);
            let n = batch.remaining();
            for _ in 0..n {
                let mut tx_frame = free.pop().expect("reserved no more than the free frames");
                tx_frame.set_len(frame_len);
                let gseq = r.sent;
                let bad = cfg.bad_checksum_every > 0 && (gseq + 1).is_multiple_of(cfg.bad_checksum_every);
                let frame = parts.umem.frame_mut(&tx_frame).expect("TX frame inside the UMEM");
                let ts = base.elapsed().as_nanos() as u64;
                template.write_request(frame, ident, gseq, ts, bad);
                batch.push(tx_frame);
                r.sent += 1;
                r.sent_invalid += u64::from(bad);
            }
            batch.submit();
            sent_now = n;
            if n > 0 {
                r.first_send.get_or_insert(now);
                r.last_send = Some(now);
            }
        }
        let mut kicks = 0;
        while xsk.tx().outstanding() > 0 && kicks < 4 {
            xsk.kick_tx()?;
            kicks += 1;
        }

        let got = receive(&mut xsk, template, ident, &mut r, &mut answered, || {
            base.elapsed().as_nanos() as u64
        });

        if got == 0 && sent_now == 0 {
            // Nothing to do right now: wait for replies, but not past the next send time.
            xsk.poll_rx(if rate.is_some() || drain_until.is_some() { 1 } else { 0 })?;
        }
    }
    r.kernel_dropped = xsk
        .statistics()
        .map(|s| crate::stats::KernelStats::from(s).drops(xsk.mode()).dropped)?;
    Ok(r)
}

/// Receives and verifies one batch of replies, no more than the fill ring can take back right
/// now (the kernel publishes its fill consumer index lazily). `now_ns` reads the clock the
/// requests' stamps use. Returns how many frames it received.
fn receive(
    xsk: &mut Xsk,
    template: &Template,
    ident: u16,
    r: &mut QueueResult,
    answered: &mut Answered,
    now_ns: impl Fn() -> u64,
) -> u32 {
    const BATCH: u32 = 64;
    let parts = xsk.split();
    let mut room = parts.fill.reserve(BATCH);
    let mut received = parts.rx.peek(room.remaining());
    let got = received.len() as u32;
    let now_ns = now_ns();
    for rx_frame in &mut received {
        r.replies += 1;
        let ok = parts
            .umem
            .frame_mut(&rx_frame)
            .and_then(|f| template.check_reply(f, ident));
        match ok {
            Some((gseq, ts)) if gseq < r.sent && !answered.test_and_set(gseq) => {
                r.correct += 1;
                r.rtt.record(now_ns.saturating_sub(ts));
            }
            _ => r.wrong += 1,
        }
        room.push(rx_frame);
    }
    room.submit();
    received.release();
    got
}

/// Requests per `BPF_PROG_RUN` call at most (`repeat`): small enough to keep the receive side
/// served and the pacing fine-grained, large enough that the call's fixed cost is spread.
const LIVE_CALL: u64 = 1024;
/// Frames per transmission inside one call (`batch_size`; the kernel's default is 64).
const LIVE_BATCH: u32 = 64;

/// What a live-injecting thread uses: the capture program that holds the injectors, the template
/// request of this thread's injector, and the CPU it is set up on (the thread's own).
pub(super) struct Live<'a> {
    pub(super) capture: &'a CaptureProgram,
    pub(super) request: &'a [u8],
    pub(super) cpu: u32,
}

/// One queue's loop with `--inject live`: the kernel generates the requests (the injector of this
/// thread's CPU, with its own sequence numbers), this thread paces the calls, receives and verifies the replies,
/// then drains. Send times are `CLOCK_MONOTONIC` (`bpf_ktime_get_ns()` in the program).
#[allow(clippy::too_many_arguments)]
pub(super) fn injector(
    mut xsk: Xsk,
    live: Live<'_>,
    template: &Template,
    ident: u16,
    cfg: &FloodConfig,
    count: Option<u64>,
    rate: Option<f64>,
    stop: &AtomicBool,
) -> Result<QueueResult, InjectError> {
    let mut answered = Answered::default();
    let mut r = QueueResult::new(xsk.mode());
    let start = Instant::now();
    let end = start + cfg.duration;
    let mut drain_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if drain_until.is_none() && (now >= end || stop.load(Ordering::Relaxed) || count.is_some_and(|c| r.sent >= c)) {
            drain_until = Some(now + DRAIN);
        }
        if let Some(t) = drain_until
            && now >= t
        {
            break;
        }

        let mut sent_now = 0;
        if drain_until.is_none() {
            let mut want = LIVE_CALL;
            if let Some(c) = count {
                want = want.min(c - r.sent);
            }
            if let Some(pps) = rate {
                let due = (now.duration_since(start).as_secs_f64() * pps) as u64 + 1;
                want = want.min(due.saturating_sub(r.sent));
            }
            if want > 0 {
                let result = live.capture.inject(live.request, want as u32, LIVE_BATCH);
                // The program's own counter is the truth, also after an interrupted call.
                let generated = live.capture.injected(live.cpu).map_err(InjectError::Program)?;
                sent_now = generated - r.sent;
                r.sent = generated;
                r.sent_invalid = r.sent.checked_div(cfg.bad_checksum_every).unwrap_or(0);
                if sent_now > 0 {
                    r.first_send.get_or_insert(now);
                    r.last_send = Some(Instant::now());
                }
                if let Err(e) = result
                    && !stop.load(Ordering::Relaxed)
                {
                    return Err(InjectError::Program(e));
                }
            }
        }

        // Receive until the ring is empty (a call sends up to LIVE_CALL requests at once), but
        // come back to sending in time.
        let mut got = 0;
        loop {
            let n = receive(&mut xsk, template, ident, &mut r, &mut answered, monotonic_ns);
            got += u64::from(n);
            if n == 0 || got >= 4 * LIVE_CALL {
                break;
            }
        }
        if got == 0 && sent_now == 0 {
            xsk.poll_rx(1).map_err(InjectError::Syscall)?;
        }
    }
    r.kernel_dropped = xsk
        .statistics()
        .map(|s| crate::stats::KernelStats::from(s).drops(xsk.mode()).dropped)
        .map_err(InjectError::Syscall)?;
    Ok(r)
}

/// Why a live-injection thread (`flood --inject live`) stopped.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// The injector program failed.
    #[error(transparent)]
    Program(#[from] LoaderError),
    /// A socket call failed.
    #[error(transparent)]
    Syscall(#[from] SyscallError),
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock of `bpf_ktime_get_ns()`.
pub(super) fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}
