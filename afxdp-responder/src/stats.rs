//! Per-queue counters, grouped by who produces them (as xdpsock does):
//!
//! - the worker's own counters ([`Counters`]): frames received, replies sent, drops by reason,
//!   and loop events (sleeps in poll(), spins, TX kicks, times the TX ring was full);
//! - the kernel's per-socket counters (`XDP_STATISTICS`, see [`KernelStats`]);
//! - rates, computed from the difference of two snapshots ([`Rates`]).
//!
//! The worker counts in plain integers on its own stack and publishes a copy to its
//! [`SharedCounters`] once per batch with relaxed stores: no atomic read-modify-write and no
//! shared cache line per packet. Only the worker writes its `SharedCounters`; the main thread
//! only reads them.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use echo_wire::respond::DropReason;

/// The worker's own counters, as plain numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Frames taken from the RX ring.
    pub rx: u64,
    /// Replies put on the TX ring.
    pub tx: u64,
    /// Frames not answered, by [`DropReason::index`].
    pub drops: [u64; DropReason::COUNT],
    /// RX descriptors whose address or length did not fit a frame (never expected).
    pub bad_descriptors: u64,
    /// Times the worker waited in `poll()` because the RX ring was empty.
    pub sleeps: u64,
    /// Spins on the rings before a sleep ([`crate::worker::Wait::Adaptive`]).
    pub spins: u64,
    /// Spins that saw traffic arrive before their window ran out (no sleep needed).
    pub spins_caught: u64,
    /// Wake-ups of the kernel: TX `sendto` calls, and in busy-poll mode the `poll()` nudges that
    /// refill the RX side when the kernel asks.
    pub kicks: u64,
    /// Times the TX ring had no room, so received frames waited on the RX ring.
    pub tx_ring_full: u64,
}

impl Counters {
    /// All frames not answered.
    pub fn dropped(&self) -> u64 {
        self.drops.iter().sum::<u64>() + self.bad_descriptors
    }

    /// Drops as `reason count` pairs, only the non-zero ones, e.g. `icmp-checksum 3`.
    pub fn drop_summary(&self) -> String {
        let mut out = String::new();
        for reason in DropReason::ALL {
            let n = self.drops[reason.index()];
            if n > 0 {
                let _ = write!(out, "{}{} {n}", if out.is_empty() { "" } else { ", " }, reason.as_str());
            }
        }
        if self.bad_descriptors > 0 {
            let _ = write!(
                out,
                "{}bad-descriptor {}",
                if out.is_empty() { "" } else { ", " },
                self.bad_descriptors
            );
        }
        out
    }
}

/// A worker's counters as published for the main thread (single writer: the worker).
#[derive(Debug, Default)]
#[repr(align(64))] // one cache line (or more) per queue: workers never share a line
pub struct SharedCounters {
    rx: AtomicU64,
    tx: AtomicU64,
    drops: [AtomicU64; DropReason::COUNT],
    bad_descriptors: AtomicU64,
    sleeps: AtomicU64,
    spins: AtomicU64,
    spins_caught: AtomicU64,
    kicks: AtomicU64,
    tx_ring_full: AtomicU64,
}

impl SharedCounters {
    /// Publishes the worker's counters (worker thread only). Relaxed: a reader may see a
    /// snapshot that mixes two batches, which is fine for statistics.
    pub fn publish(&self, c: &Counters) {
        self.rx.store(c.rx, Ordering::Relaxed);
        self.tx.store(c.tx, Ordering::Relaxed);
        for (slot, v) in self.drops.iter().zip(c.drops) {
            slot.store(v, Ordering::Relaxed);
        }
        self.bad_descriptors.store(c.bad_descriptors, Ordering::Relaxed);
        self.sleeps.store(c.sleeps, Ordering::Relaxed);
        self.spins.store(c.spins, Ordering::Relaxed);
        self.spins_caught.store(c.spins_caught, Ordering::Relaxed);
        self.kicks.store(c.kicks, Ordering::Relaxed);
        self.tx_ring_full.store(c.tx_ring_full, Ordering::Relaxed);
    }

    /// Reads the last published counters.
    pub fn snapshot(&self) -> Counters {
        Counters {
            rx: self.rx.load(Ordering::Relaxed),
            tx: self.tx.load(Ordering::Relaxed),
            drops: std::array::from_fn(|i| self.drops[i].load(Ordering::Relaxed)),
            bad_descriptors: self.bad_descriptors.load(Ordering::Relaxed),
            sleeps: self.sleeps.load(Ordering::Relaxed),
            spins: self.spins.load(Ordering::Relaxed),
            spins_caught: self.spins_caught.load(Ordering::Relaxed),
            kicks: self.kicks.load(Ordering::Relaxed),
            tx_ring_full: self.tx_ring_full.load(Ordering::Relaxed),
        }
    }
}

/// The kernel's counters for one socket (`XDP_STATISTICS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KernelStats {
    /// Frames dropped for reasons other than a full RX ring or an empty fill ring.
    pub rx_dropped: u64,
    /// Frames dropped because the RX ring was full (the worker was too slow).
    pub rx_ring_full: u64,
    /// Frames dropped because the fill ring was empty.
    pub rx_fill_ring_empty: u64,
    /// Invalid RX descriptors.
    pub rx_invalid_descs: u64,
    /// Invalid TX descriptors (a bug on our side if ever non-zero).
    pub tx_invalid_descs: u64,
    /// Times the kernel found the TX ring empty when asked to send.
    pub tx_ring_empty: u64,
}

impl From<afxdp_xsk::xdp_statistics> for KernelStats {
    fn from(s: afxdp_xsk::xdp_statistics) -> Self {
        KernelStats {
            rx_dropped: s.rx_dropped,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty: s.rx_fill_ring_empty_descs,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            tx_ring_empty: s.tx_ring_empty_descs,
        }
    }
}

impl KernelStats {
    /// Frames the kernel dropped before we saw them.
    pub fn dropped(&self) -> u64 {
        self.rx_dropped + self.rx_ring_full + self.rx_fill_ring_empty + self.rx_invalid_descs
    }
}

/// Packets per second between two snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rates {
    /// Received frames per second.
    pub rx_pps: f64,
    /// Replies per second.
    pub tx_pps: f64,
}

impl Rates {
    /// Rates from `prev` to `cur` over `elapsed`.
    pub fn between(prev: &Counters, cur: &Counters, elapsed: Duration) -> Rates {
        let secs = elapsed.as_secs_f64();
        if secs <= 0.0 {
            return Rates::default();
        }
        Rates {
            rx_pps: cur.rx.saturating_sub(prev.rx) as f64 / secs,
            tx_pps: cur.tx.saturating_sub(prev.tx) as f64 / secs,
        }
    }
}

/// A rate in a short human form: `950`, `12.3k`, `1.25M`.
pub fn human_rate(pps: f64) -> String {
    if pps >= 1e6 {
        format!("{:.2}M", pps / 1e6)
    } else if pps >= 1e3 {
        format!("{:.1}k", pps / 1e3)
    } else {
        format!("{pps:.0}")
    }
}

/// One line of live statistics for one queue.
pub fn live_line(queue: u32, cur: &Counters, rates: &Rates, kernel: &KernelStats) -> String {
    let mut line = format!(
        "q{queue}: rx {} ({}/s) tx {} ({}/s) dropped {}",
        cur.rx,
        human_rate(rates.rx_pps),
        cur.tx,
        human_rate(rates.tx_pps),
        cur.dropped()
    );
    let reasons = cur.drop_summary();
    if !reasons.is_empty() {
        let _ = write!(line, " [{reasons}]");
    }
    if kernel.dropped() > 0 {
        let _ = write!(
            line,
            " kernel-dropped {} [ring-full {}, fill-empty {}, other {}]",
            kernel.dropped(),
            kernel.rx_ring_full,
            kernel.rx_fill_ring_empty,
            kernel.rx_dropped + kernel.rx_invalid_descs
        );
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_and_snapshot_round_trip() {
        let shared = SharedCounters::default();
        let mut c = Counters {
            rx: 10,
            tx: 7,
            sleeps: 3,
            spins: 4,
            spins_caught: 2,
            kicks: 2,
            tx_ring_full: 1,
            bad_descriptors: 1,
            ..Default::default()
        };
        c.drops[DropReason::IcmpChecksum.index()] = 2;
        shared.publish(&c);
        assert_eq!(shared.snapshot(), c);
        assert_eq!(c.dropped(), 3);
        assert_eq!(c.drop_summary(), "icmp-checksum 2, bad-descriptor 1");
    }

    #[test]
    fn rates_and_lines() {
        let prev = Counters {
            rx: 100,
            tx: 100,
            ..Default::default()
        };
        let cur = Counters {
            rx: 2100,
            tx: 2000,
            ..Default::default()
        };
        let r = Rates::between(&prev, &cur, Duration::from_secs(2));
        assert_eq!(r.rx_pps, 1000.0);
        assert_eq!(r.tx_pps, 950.0);
        assert_eq!(human_rate(1_250_000.0), "1.25M");
        assert_eq!(human_rate(12_345.0), "12.3k");
        let line = live_line(
            1,
            &cur,
            &r,
            &KernelStats {
                rx_ring_full: 5,
                ..Default::default()
            },
        );
        assert_eq!(
            line,
            "q1: rx 2100 (1.0k/s) tx 2000 (950/s) dropped 0 kernel-dropped 5 [ring-full 5, fill-empty 0, other 0]"
        );
        assert_eq!(Rates::between(&prev, &cur, Duration::ZERO), Rates::default());
    }
}
