//! Fuzzes `Responder::respond` with arbitrary frames (the input is the frame, as it would arrive on
//! an RX ring) against the independent model in `afxdp_responder_fuzz`.
//!
//! Asserted for every input:
//! * it does not panic (libFuzzer reports a panic as a crash);
//! * it answers exactly the frames the model answers, and drops the others;
//! * a dropped frame is left unchanged, byte for byte;
//! * a reply is never longer than the frame, and nothing after `len` is touched;
//! * the reply equals the model's reply byte for byte: MACs and addresses swapped, type 0 / 129,
//!   code, identifier, sequence and data unchanged, TTL / hop limit from the policy, DF clear and
//!   a fresh identification, every checksum equal to a from-scratch recomputation (so the
//!   IPv4 header checksum, the ICMP checksum and the ICMPv6 checksum with its pseudo-header all
//!   verify independently);
//! * the reply, fed back in, is dropped: the responder never answers its own replies.
#![no_main]

use afxdp_responder_fuzz::{Policy, expected_reply};
use echo_wire::respond::{DropReason, FlowLabelPolicy, ReplyPolicy, Responder, Verdict};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    // An even length seeds the identification counter with the bytes where an untagged IPv4
    // request carries its own identification, so the "never reuse the request's" step is
    // exercised too; an odd length uses a fixed seed.
    let ident_seed = match input.get(18..20) {
        Some(&[a, b]) if input.len().is_multiple_of(2) => u16::from_be_bytes([a, b]),
        _ => 0x8001,
    };
    let policy = Policy {
        ttl: 77,
        hop_limit: 99,
        ident_seed,
    };
    let mut responder = Responder::new(
        ReplyPolicy {
            ipv4_ttl: policy.ttl,
            ipv6_hop_limit: policy.hop_limit,
            // The model keeps the request's label; auto labels are unit- and property-tested.
            flow_label: FlowLabelPolicy::REFLECT_ONLY,
        },
        ident_seed,
    );

    let mut frame = input.to_vec();
    let verdict = responder.respond(&mut frame);
    let expected = expected_reply(input, policy);
    match (verdict, expected) {
        (Verdict::Drop(reason), None) => {
            assert_eq!(frame, input, "dropped ({reason}) but modified");
        }
        (Verdict::Drop(reason), Some(_)) => {
            panic!("dropped ({reason}) a frame the model answers");
        }
        (Verdict::Reply { len }, None) => {
            panic!("answered (len {len}) a frame the model drops");
        }
        (Verdict::Reply { len }, Some(reply)) => {
            assert!(
                len <= input.len(),
                "reply of {len} bytes from a {}-byte frame",
                input.len()
            );
            assert_eq!(&frame[len..], &input[len..], "bytes after the reply were changed");
            assert_eq!(&frame[..len], &reply[..], "reply differs from the model's");

            // Fed back in (on a fresh copy), a reply is never answered.
            let mut again = frame[..len].to_vec();
            let verdict = responder.respond(&mut again);
            assert_eq!(
                verdict,
                Verdict::Drop(DropReason::NotEchoRequest),
                "a reply was answered"
            );
            assert_eq!(again, &frame[..len]);
        }
    }
});
