//! Fuzzes the checksum routines of `echo_wire::checksum` against the naive RFC 1071
//! sum in `afxdp_responder_fuzz`: the fast `Sum` (64-bit accumulator, native-order words,
//! branch-free fold, tail handling) over any buffer and any even split point, the 16/32-bit word
//! adders, and the RFC 1624 `update` against a full recomputation.
//!
//! Input layout: bytes 0-1 a split point, 2-3 a word index, 4-5 a new word value, the rest the data.
#![no_main]

use afxdp_responder_fuzz::{internet_checksum, ones_complement_sum};
use echo_wire::checksum::{self, Sum};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((head, data)) = input.split_first_chunk::<6>() else {
        return;
    };
    let split = usize::from(u16::from_be_bytes([head[0], head[1]])) & !1;
    let index = usize::from(u16::from_be_bytes([head[2], head[3]]));
    let new_word = u16::from_be_bytes([head[4], head[5]]);
    let naive = ones_complement_sum(0, data);

    // The whole buffer at once, and split at an even point (every part but the last must be even).
    assert_eq!(Sum::new().add_bytes(data).fold(), naive, "sum of {} bytes", data.len());
    let split = split.min(data.len()) & !1;
    let (a, b) = data.split_at(split);
    assert_eq!(Sum::new().add_bytes(a).add_bytes(b).fold(), naive, "split at {split}");
    assert_eq!(checksum::checksum(data), internet_checksum(0, data));

    // Word adders equal the same bytes added as a buffer.
    assert_eq!(
        Sum::new().add_bytes(a).add_u16(new_word).fold(),
        ones_complement_sum(ones_complement_sum(0, a), &new_word.to_be_bytes())
    );
    let value = u32::from(new_word) << 16 | index as u32;
    assert_eq!(
        Sum::new().add_u32(value).fold(),
        ones_complement_sum(0, &value.to_be_bytes())
    );
    // A message is valid once its checksum is appended (even-length data only: the checksum must
    // sit on a word boundary).
    if data.len().is_multiple_of(2) {
        let stored = checksum::checksum(data);
        assert!(Sum::new().add_bytes(data).add_u16(stored).is_valid());
    }

    // RFC 1624 eqn. 3: updating one word equals recomputing, unless the new message is all zeros.
    let words = data.len() / 2;
    if words == 0 {
        return;
    }
    let at = (index % words) * 2;
    let old_word = u16::from_be_bytes([data[at], data[at + 1]]);
    let hc = checksum::checksum(data);
    let mut changed = data.to_vec();
    changed[at..at + 2].copy_from_slice(&new_word.to_be_bytes());
    let updated = checksum::update(hc, old_word, new_word);
    if changed.iter().all(|&b| b == 0) {
        assert_eq!(updated, 0x0000, "the documented all-zero exception");
    } else {
        assert_eq!(
            updated,
            internet_checksum(0, &changed),
            "update of word {at} {old_word:#06x} -> {new_word:#06x}"
        );
    }
});
