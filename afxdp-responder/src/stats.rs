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

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use afxdp_xsk::BindMode;
use echo_wire::respond::DropReason;
use responder_json::{KernelDrops, Waits};

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
    /// Spins on the rings before a sleep ([`crate::worker::Wait::Adaptive`]), or busy-poll
    /// windows ([`crate::worker::Wait::BusyPoll`]).
    pub spins: u64,
    /// Spins that saw traffic arrive before their window ran out (no sleep needed).
    pub spins_caught: u64,
    /// Wake-ups of the kernel: TX `sendto` calls, with `--wait spin` the `poll()` nudges that
    /// refill the RX side when the kernel asks, with `--busy-poll` the `recvfrom()` calls that run
    /// the NAPI.
    pub kicks: u64,
    /// Times the TX ring had no room, so received frames waited on the RX ring.
    pub tx_ring_full: u64,
}

impl Counters {
    /// All frames not answered.
    pub fn dropped(&self) -> u64 {
        self.drops.iter().sum::<u64>() + self.bad_descriptors
    }

    /// Drops by reason name (`icmp-checksum`, …, `bad-descriptor`), only the non-zero ones.
    pub fn drops_by_reason(&self) -> BTreeMap<String, u64> {
        let mut out: BTreeMap<String, u64> = DropReason::ALL
            .iter()
            .map(|r| (r.as_str().to_string(), self.drops[r.index()]))
            .filter(|&(_, n)| n > 0)
            .collect();
        if self.bad_descriptors > 0 {
            out.insert("bad-descriptor".to_string(), self.bad_descriptors);
        }
        out
    }

    /// How the worker waited, in the shape of the JSON schema.
    pub fn waits(&self) -> Waits {
        Waits {
            sleeps: self.sleeps,
            spins: self.spins,
            spins_caught: self.spins_caught,
            kicks: self.kicks,
            tx_ring_full: self.tx_ring_full,
        }
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
    /// The socket's `rx_dropped`: in copy mode this includes the fill-ring-empty drops (see
    /// [`KernelStats::drops`]).
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
    /// The counters with every drop counted once, for a socket bound in `mode`.
    ///
    /// The kernel counts one event twice in copy mode: when the fill ring is empty, the copy
    /// path's buffer allocation fails, which increments both the fill queue's empty counter
    /// (`rx_fill_ring_empty_descs`) and the socket's `rx_dropped` (net/xdp/xsk.c, `__xsk_rcv`). In
    /// zero-copy mode the driver's allocation fails instead and only the fill counter moves. So in
    /// copy mode the "other" drops are `rx_dropped` minus the fill-ring-empty ones.
    pub fn drops(&self, mode: BindMode) -> KernelDrops {
        let other = match mode {
            BindMode::Copy => self.rx_dropped.saturating_sub(self.rx_fill_ring_empty),
            BindMode::ZeroCopy => self.rx_dropped,
        };
        KernelDrops {
            dropped: self.rx_ring_full + self.rx_fill_ring_empty + self.rx_invalid_descs + other,
            rx_ring_full: self.rx_ring_full,
            fill_ring_empty: self.rx_fill_ring_empty,
            rx_invalid: self.rx_invalid_descs,
            other,
            tx_invalid: self.tx_invalid_descs,
            tx_ring_empty: self.tx_ring_empty,
        }
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
        let reasons: Vec<(String, u64)> = c.drops_by_reason().into_iter().collect();
        assert_eq!(
            reasons,
            [("bad-descriptor".to_string(), 1), ("icmp-checksum".to_string(), 2)]
        );
    }

    #[test]
    fn rates() {
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
        assert_eq!(Rates::between(&prev, &cur, Duration::ZERO), Rates::default());
    }

    /// A copy-mode run starved of fill-ring frames, as the kernel reported it: 320 027 frames were
    /// dropped, each one counted in both `rx_dropped` and `rx_fill_ring_empty_descs`.
    #[test]
    fn copy_mode_fill_ring_empty_drops_are_counted_once() {
        let raw = KernelStats {
            rx_dropped: 309_619,
            rx_ring_full: 10_408,
            rx_fill_ring_empty: 309_619,
            ..Default::default()
        };
        let copy = raw.drops(BindMode::Copy);
        assert_eq!(copy.dropped, 320_027);
        assert_eq!((copy.fill_ring_empty, copy.other), (309_619, 0));
        // A frame too large for the UMEM is only in rx_dropped: it stays "other".
        let oversized = KernelStats {
            rx_dropped: 5,
            ..Default::default()
        };
        assert_eq!(oversized.drops(BindMode::Copy).other, 5);
        // Zero-copy: the driver's allocation failure moves only the fill counter.
        let zc = KernelStats {
            rx_dropped: 3,
            rx_fill_ring_empty: 7,
            ..Default::default()
        };
        assert_eq!(zc.drops(BindMode::ZeroCopy).dropped, 10);
    }
}
