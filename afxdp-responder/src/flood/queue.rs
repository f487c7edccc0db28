//! One queue's thread: send requests (paced), reclaim sent frames, receive and verify replies,
//! and drain the last replies when sending ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use afxdp_xsk::{Frame, SyscallError, Xsk};

use super::FloodConfig;
use super::capture::Answered;
use super::report::QueueResult;
use super::template::Template;

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

        // Receive and verify, no more than the fill ring can take back right now (the kernel
        // publishes its fill consumer index lazily).
        let parts = xsk.split();
        let mut room = parts.fill.reserve(BATCH);
        let mut received = parts.rx.peek(room.remaining());
        let got = received.len() as u32;
        let now_ns = base.elapsed().as_nanos() as u64;
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
