//! `--trace N`: the journey of a worker's first N frames round the four rings, on stderr.
//!
//! The worker's loop is generic over a [`Probe`]. Without `--trace` it runs with [`NoProbe`],
//! whose hooks are empty and inline to nothing: the only cost of the tracer is the check of
//! `Option<Box<Tracer>>` once per batch (and once per completion reclaim) that picks the probe,
//! and nothing is allocated. With `--trace N` it runs with a [`Tracer`], which notes what the
//! loop does to each of the first N frames (ring slots, descriptors, the rewrite as
//! [`Responder::respond_via_recorded`] recorded it) and prints it once the batch is published,
//! with the shared producer/consumer indices of the ring each step moved, as the kernel now sees
//! them. When the N frames are back on the fill ring the worker drops the tracer, and the loop is
//! the untraced one again. docs/decisions.md §19; docs/learn/08-the-frame-tracer.md.

use std::fmt::Write as _;
use std::io::Write as _;

use afxdp_xsk::{BindMode, RingIndices, Xsk};
use echo_wire::respond::{NextHop, Responder, Verdict};
use echo_wire::trace::{Family, Rewrite};

/// The hooks the worker's loop calls. Every hook of the default implementation does nothing.
pub(crate) trait Probe {
    /// Rewrites a request: [`Responder::respond_via`], or a recorded variant of it.
    #[inline(always)]
    fn respond(&mut self, responder: &mut Responder, frame: &mut [u8], hop: &NextHop) -> Verdict {
        responder.respond_via(frame, hop)
    }
    /// A frame was read from the RX ring slot `index`.
    #[inline(always)]
    fn received(&mut self, _index: u32, _addr: u64, _len: u32) {}
    /// The frame just received goes onto the TX ring at `index` with `len` bytes.
    #[inline(always)]
    fn replied(&mut self, _index: u32, _len: u32) {}
    /// The frame `addr` just received was dropped; it goes onto the fill ring at `index`.
    #[inline(always)]
    fn dropped(&mut self, _index: u32, _addr: u64, _why: &'static str) {}
    /// A sent frame `addr` was read from the completion ring slot `index`; it goes onto the fill
    /// ring at `fill_index`.
    #[inline(always)]
    fn completed(&mut self, _index: u32, _addr: u64, _fill_index: u32) {}
    /// The batch (RX → TX/fill, or completion → fill) is published: print what happened.
    #[inline(always)]
    fn published(&mut self, _xsk: &Xsk) {}
}

/// The probe of an untraced worker.
pub(crate) struct NoProbe;

impl Probe for NoProbe {}

/// A traced frame the kernel has not completed yet.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    number: u32,
    addr: u64,
}

/// What happened to one traced frame in the current batch.
#[derive(Debug)]
enum Step {
    Received {
        number: u32,
        fill_index: u32,
        refilled: bool,
        rx_index: u32,
        addr: u64,
        len: u32,
        verdict: Option<Verdict>,
        rewrite: Box<Rewrite>,
        /// TX index (reply) or fill index (drop).
        to_index: u32,
        reply_len: u32,
        why: &'static str,
    },
    Completed {
        number: u32,
        index: u32,
        addr: u64,
        fill_index: u32,
    },
}

/// The frame tracer of one worker (`--trace N`).
#[derive(Debug)]
pub struct Tracer {
    queue: u32,
    frame_size: u64,
    /// Entries of the fill, RX, TX and completion rings (slot = index & (size - 1)).
    sizes: [u32; 4],
    limit: u32,
    /// Frames taken for tracing so far (numbered from 1).
    started: u32,
    /// Traced frames back on the fill ring.
    finished: u32,
    /// For each UMEM frame, the fill-ring index it was last handed to the kernel at, and
    /// whether the worker did that (`true`) or `Xsk::open` before bind (`false`).
    fill_index: Vec<(u32, bool)>,
    in_flight: Vec<InFlight>,
    steps: Vec<Step>,
    /// The rewrite of the frame being answered.
    rewrite: Rewrite,
    /// Whether the frame being answered is traced.
    current: bool,
    out: String,
}

impl Tracer {
    /// A tracer for the first `limit` frames of `xsk`'s worker; prints the starting point.
    pub fn new(xsk: &Xsk, limit: u32) -> Box<Tracer> {
        let umem = xsk.umem();
        let frame_size = u64::from(umem.frame_size());
        // `Xsk::open` put frame i at fill index i (a fresh ring starts at index 0).
        let fill_index = (0..umem.frame_count()).map(|i| (i, false)).collect();
        let t = Box::new(Tracer {
            queue: xsk.queue(),
            frame_size,
            sizes: [
                xsk.fill().size(),
                xsk.rx().size(),
                xsk.tx().size(),
                xsk.completion().size(),
            ],
            limit,
            started: 0,
            finished: 0,
            fill_index,
            in_flight: Vec::new(),
            steps: Vec::new(),
            rewrite: Rewrite::default(),
            current: false,
            out: String::new(),
        });
        let fill = xsk.fill().shared_indices();
        let mode = match xsk.mode() {
            BindMode::ZeroCopy => "zero-copy",
            BindMode::Copy => "copy",
        };
        let filled = fill.producer.min(umem.frame_count());
        eprintln!(
            "trace q{}: {mode} mode, UMEM {} frames x {} bytes; before bind, fill index i <- frame i * {:#x} \
             (frames 0x0..={:#x}); tracing the next {limit} frames; rings: fill {} | rx {} | tx {} | completion {}",
            t.queue,
            umem.frame_count(),
            frame_size,
            frame_size,
            u64::from(filled.saturating_sub(1)) * frame_size,
            fill,
            xsk.rx().shared_indices(),
            xsk.tx().shared_indices(),
            xsk.completion().shared_indices(),
        );
        t
    }

    /// Whether frames remain to trace or to follow home.
    pub fn active(&self) -> bool {
        self.finished < self.limit
    }

    fn base(&self, addr: u64) -> u64 {
        addr & !(self.frame_size - 1)
    }

    fn note_fill(&mut self, addr: u64, index: u32) {
        let frame = (self.base(addr) / self.frame_size) as usize;
        if let Some(slot) = self.fill_index.get_mut(frame) {
            *slot = (index, true);
        }
    }

    fn line(&mut self, number: u32, step: &str, text: std::fmt::Arguments<'_>) {
        let _ = writeln!(self.out, "trace q{} #{number} {step:<10} {text}", self.queue);
    }
}

impl Probe for Tracer {
    fn respond(&mut self, responder: &mut Responder, frame: &mut [u8], hop: &NextHop) -> Verdict {
        if !self.current {
            return responder.respond_via(frame, hop);
        }
        let verdict = responder.respond_via_recorded(frame, hop, &mut self.rewrite);
        if let Some(Step::Received {
            verdict: v, rewrite, ..
        }) = self.steps.last_mut()
        {
            *v = Some(verdict);
            **rewrite = self.rewrite;
        }
        verdict
    }

    fn received(&mut self, index: u32, addr: u64, len: u32) {
        self.current = self.started < self.limit;
        if !self.current {
            return;
        }
        self.started += 1;
        let frame = (self.base(addr) / self.frame_size) as usize;
        let (fill_index, refilled) = self.fill_index.get(frame).copied().unwrap_or((u32::MAX, false));
        self.steps.push(Step::Received {
            number: self.started,
            fill_index,
            refilled,
            rx_index: index,
            addr,
            len,
            verdict: None,
            rewrite: Box::default(),
            to_index: 0,
            reply_len: 0,
            why: "",
        });
    }

    fn replied(&mut self, index: u32, len: u32) {
        if !self.current {
            return;
        }
        if let Some(Step::Received {
            number,
            addr,
            to_index,
            reply_len,
            ..
        }) = self.steps.last_mut()
        {
            *to_index = index;
            *reply_len = len;
            self.in_flight.push(InFlight {
                number: *number,
                addr: *addr,
            });
        }
    }

    fn dropped(&mut self, index: u32, addr: u64, why: &'static str) {
        self.note_fill(addr, index);
        if !self.current {
            return;
        }
        if let Some(Step::Received { to_index, why: w, .. }) = self.steps.last_mut() {
            *to_index = index;
            *w = why;
            self.finished += 1;
        }
    }

    fn completed(&mut self, index: u32, addr: u64, fill_index: u32) {
        self.note_fill(addr, fill_index);
        if let Some(pos) = self.in_flight.iter().position(|f| f.addr == addr) {
            let f = self.in_flight.swap_remove(pos);
            self.finished += 1;
            self.steps.push(Step::Completed {
                number: f.number,
                index,
                addr,
                fill_index,
            });
        }
    }

    fn published(&mut self, xsk: &Xsk) {
        self.current = false;
        if self.steps.is_empty() {
            return;
        }
        let fill = xsk.fill().shared_indices();
        let rx = xsk.rx().shared_indices();
        let tx = xsk.tx().shared_indices();
        let completion = xsk.completion().shared_indices();
        let steps = std::mem::take(&mut self.steps);
        for step in &steps {
            self.print_step(step, [fill, rx, tx, completion]);
        }
        self.steps = steps;
        self.steps.clear();
        if !self.active() {
            let _ = writeln!(
                self.out,
                "trace q{}: {} frames traced and back on the fill ring; tracer off",
                self.queue, self.limit
            );
        }
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(self.out.as_bytes());
        let _ = err.flush();
        self.out.clear();
    }
}

impl Tracer {
    fn print_step(&mut self, step: &Step, [fill, rx, tx, completion]: [RingIndices; 4]) {
        match *step {
            Step::Received {
                number,
                fill_index,
                refilled,
                rx_index,
                addr,
                len,
                verdict,
                ref rewrite,
                to_index,
                reply_len,
                why,
            } => {
                let base = self.base(addr);
                let when = if refilled { "by the worker" } else { "before bind" };
                self.line(
                    number,
                    "fill",
                    format_args!(
                        "index {fill_index} (slot {}) <- frame {base:#x}, {when}; fill {fill}",
                        fill_index & (self.sizes[0] - 1)
                    ),
                );
                self.line(
                    number,
                    "rx",
                    format_args!(
                        "index {rx_index} (slot {}) desc addr {addr:#x} len {len} = frame {base:#x} + headroom {}; rx {rx}",
                        rx_index & (self.sizes[1] - 1),
                        addr - base
                    ),
                );
                match verdict {
                    Some(Verdict::Reply { .. }) => {
                        self.line(number, "request", format_args!("{}", rewrite.request()));
                        let changes: Vec<String> = rewrite.changes().map(|c| c.to_string()).collect();
                        for change in changes {
                            self.line(number, "rewrite", format_args!("{change}"));
                        }
                        self.line(
                            number,
                            "tx",
                            format_args!(
                                "index {to_index} (slot {}) desc addr {addr:#x} len {reply_len} (same frame, no copy); tx {tx}",
                                to_index & (self.sizes[2] - 1)
                            ),
                        );
                    }
                    Some(Verdict::Drop(reason)) => {
                        if rewrite.family != Family::Unknown {
                            self.line(number, "request", format_args!("{}", rewrite.request()));
                        }
                        self.line(
                            number,
                            "drop",
                            format_args!("{reason}; fill index {to_index} <- frame {base:#x}; fill {fill}"),
                        );
                    }
                    None => self.line(
                        number,
                        "drop",
                        format_args!("{why}; fill index {to_index} <- frame {base:#x}; fill {fill}"),
                    ),
                }
            }
            Step::Completed {
                number,
                index,
                addr,
                fill_index,
            } => {
                let base = self.base(addr);
                self.line(
                    number,
                    "completion",
                    format_args!(
                        "index {index} (slot {}) addr {addr:#x}; completion {completion}",
                        index & (self.sizes[3] - 1)
                    ),
                );
                self.line(
                    number,
                    "refill",
                    format_args!("fill index {fill_index} <- frame {base:#x} (headroom masked off); fill {fill}"),
                );
            }
        }
    }
}
