//! redirect-ebpf: the XDP programs, compiled from the C beside this crate by clang at build time
//! (`build.rs`) and embedded here as ELF objects, ready for aya's loader.
//!
//! | object | C source | used by |
//! |---|---|---|
//! | [`REDIRECT`] | `redirect.c` | `--engine afxdp`: echo requests → the AF_XDP socket of their queue |
//! | [`ECHO_TX`] | `echo_tx.c` | `--engine xdp-tx`: answered in the kernel with `XDP_TX` |
//! | [`ECHO_DROP`] | `echo_drop.c` | `--engine drop`: dropped and counted |
//! | [`FLOOD_REPLIES`] | `flood_replies.c` (+ `flood_inject.h`) | `flood`: the generator's reply capture, and its kernel-side injector (`--inject live`) |
//! | [`XDP_PASS`] | `xdp_pass.c` | the lab: an XDP_PASS program for a veth peer |
//! | [`XSK_ALL`] | `xsk_all.c` | the first example (`examples/rxdrop.rs`): every frame → the AF_XDP socket of its queue |
//!
//! The three engine programs share one filter (`echo_filter.h`) and one set of map and key
//! layouts (`redirect.h`). Nothing here runs anything: the crate has no dependencies.
//!
//! ```
//! // Every object is an ELF file for the BPF target, 8-byte aligned as the loader wants.
//! assert_eq!(&redirect_ebpf::REDIRECT[..4], b"\x7fELF");
//! assert_eq!(redirect_ebpf::XDP_PASS.as_ptr() as usize % 8, 0);
//! ```

#![no_std]
#![forbid(unsafe_code)]

/// Bytes with the alignment of a `u64`: ELF parsers read the headers in place.
#[repr(C, align(8))]
struct Aligned<B: ?Sized>(B);

macro_rules! object {
    ($(#[$doc:meta])* $name:ident, $file:literal) => {
        $(#[$doc])*
        pub static $name: &[u8] = {
            static ALIGNED: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/", $file)));
            &ALIGNED.0
        };
    };
}

object!(
    /// `redirect.c`: the AF_XDP engine's program, `redirect_echo`.
    REDIRECT,
    "redirect.o"
);
object!(
    /// `echo_tx.c`: the in-kernel responder, `tx_echo`.
    ECHO_TX,
    "echo_tx.o"
);
object!(
    /// `echo_drop.c`: the drop baseline, `drop_echo`.
    ECHO_DROP,
    "echo_drop.o"
);
object!(
    /// `flood_replies.c`: the load generator's reply capture.
    FLOOD_REPLIES,
    "flood_replies.o"
);
object!(
    /// `xdp_pass.c`: passes every frame, `xdp_pass`.
    XDP_PASS,
    "xdp_pass.o"
);
object!(
    /// `xsk_all.c`: redirects every frame to the AF_XDP socket of its RX queue, `xsk_all` (the
    /// `xsk-rxdrop` example).
    XSK_ALL,
    "xsk_all.o"
);
