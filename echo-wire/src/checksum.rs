//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! IPv4 headers, ICMP and ICMPv6 all carry the same checksum: the one's-complement of the
//! one's-complement sum of the message taken as big-endian 16-bit words. A message is intact when
//! the sum over all of it, checksum field included, is `0xffff` (all ones, "negative zero").
//!
//! # Summing fast
//!
//! One's-complement addition is ordinary addition with the carries out of bit 15 added back in at
//! the bottom ("end-around carry"). Two facts from RFC 1071 §2 make it cheap:
//!
//! * The sum can be taken over wider words: 2^16 ≡ 1 modulo 2^16 − 1, so a 64-bit word is, for the
//!   checksum, the sum of its four 16-bit words. We add whole 64-bit words with the carry out of
//!   bit 63 added back in at once (one's-complement addition modulo 2^64 − 1, which 2^16 − 1
//!   divides), and fold the 64-bit total down to 16 bits once ([`Sum::fold`]). Eight independent
//!   accumulators, 64 bytes per step, let the CPU run several of these additions at a time (each
//!   is an `add` and an `adc` on x86-64: the carry of one step cannot delay the next word's).
//! * The sum does not depend on byte order: summing the words in the machine's native order and
//!   reading the folded result back in that same order gives the big-endian sum. So the hot loop
//!   never swaps bytes; only the final 16-bit value is interpreted as big-endian.
//!
//! # Updating instead of recomputing (RFC 1624)
//!
//! A responder changes a few 16-bit words of a message whose checksum `HC` is known to be right
//! (it was just verified). Rather than summing the whole message again, it adjusts `HC` by the
//! difference. RFC 1624 eqn. 3 writes it as
//!
//! ```text
//! HC' = ~(~HC + ~m + m')      (+ is one's-complement addition)
//! ```
//!
//! where `m` is the old value of the word and `m'` the new one: `~HC` is the sum of the old
//! message, adding `~m` removes `m` from it (in one's complement, `~m` is `-m`), adding `m'` puts
//! the new value in, and the final `~` turns the sum back into a checksum. Earlier formulations
//! (RFC 1141: `HC' = HC + m - m'`) can produce `0x0000` where a full recomputation gives `0xffff`;
//! eqn. 3 gives the same value as a recomputation for every message that is not all zeros (see
//! [`update`]).

/// A running one's-complement sum, not yet folded to 16 bits.
///
/// Add the parts of a message in order with [`Sum::add_bytes`] and [`Sum::add_u16`], then
/// [`Sum::fold`] it. Every part except the last one must have an even length: an odd part would
/// shift the byte pairing of everything after it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sum(u64);

impl Sum {
    /// An empty sum.
    pub const fn new() -> Self {
        Sum(0)
    }

    /// Adds `data` as 16-bit words; a trailing odd byte is padded with a zero byte (RFC 1071).
    #[inline]
    pub fn add_bytes(self, data: &[u8]) -> Self {
        // Native-order 64-bit words (see the module docs), 64 bytes per step into eight
        // accumulators so that the additions of neighbouring words do not wait for each other.
        let (blocks, tail) = data.as_chunks::<64>();
        let mut sum = self.0;
        if !blocks.is_empty() {
            let mut acc = [0u64; 8];
            for block in blocks {
                let (words, _) = block.as_chunks::<8>();
                for (acc, word) in acc.iter_mut().zip(words) {
                    *acc = add_carry(*acc, u64::from_ne_bytes(*word));
                }
            }
            let [a, b, c, d, e, f, g, h] = acc;
            let blocks_sum = add_carry(
                add_carry(add_carry(a, b), add_carry(c, d)),
                add_carry(add_carry(e, f), add_carry(g, h)),
            );
            sum = add_carry(sum, blocks_sum);
        }
        // The last 0..=63 bytes (all of a small message): 64-bit words two at a time into two
        // accumulators, then one 64-bit, one 32-bit and one 16-bit word at most, then an odd last
        // byte, which is the high-order byte of a word whose low-order byte is zero (in memory
        // order: the byte, then a zero).
        let (words, tail) = tail.as_chunks::<8>();
        let (pairs, words) = words.as_chunks::<2>();
        let (mut even, mut odd) = (sum, 0);
        for [first, second] in pairs {
            even = add_carry(even, u64::from_ne_bytes(*first));
            odd = add_carry(odd, u64::from_ne_bytes(*second));
        }
        let mut sum = add_carry(even, odd);
        if let [word] = words {
            sum = add_carry(sum, u64::from_ne_bytes(*word));
        }
        let (halves, tail) = tail.as_chunks::<4>();
        if let [half] = halves {
            sum = add_carry(sum, u64::from(u32::from_ne_bytes(*half)));
        }
        let (quarters, tail) = tail.as_chunks::<2>();
        if let [quarter] = quarters {
            sum = add_carry(sum, u64::from(u16::from_ne_bytes(*quarter)));
        }
        if let [last] = tail {
            sum = add_carry(sum, u64::from(u16::from_ne_bytes([*last, 0])));
        }
        Sum(sum)
    }

    /// Adds one 16-bit word given by its (big-endian, network-order) value.
    #[inline]
    pub const fn add_u16(self, word: u16) -> Self {
        // The accumulator holds native-order words: store the value the way it lies on the wire.
        Sum(add_carry(self.0, u16::from_ne_bytes(word.to_be_bytes()) as u64))
    }

    /// Adds a 32-bit value given by its (big-endian) value, as two 16-bit words.
    #[inline]
    pub const fn add_u32(self, value: u32) -> Self {
        self.add_u16((value >> 16) as u16).add_u16(value as u16)
    }

    /// Folds the carries back in (end-around carry) and returns the 16-bit sum as a big-endian value.
    #[inline]
    pub const fn fold(self) -> u16 {
        // Adding a value to itself rotated by half its width leaves, in the high half, the sum of
        // both halves plus the carry out of the low half: the end-around carry, in one addition.
        // (It cannot carry again: when the low half carries, the high half's sum is at most
        // 2^32 − 2.) Once from 64 to 32 bits, once from 32 to 16: no loop, no branch.
        let sum = self.0;
        let sum = (sum.wrapping_add(sum.rotate_right(32)) >> 32) as u32;
        let sum = (sum.wrapping_add(sum.rotate_right(16)) >> 16) as u16;
        // `sum` holds native-order bytes: read them back as they would lie on the wire.
        u16::from_be_bytes(sum.to_ne_bytes())
    }

    /// The checksum to store in a message whose other words were added: `!fold()`.
    #[inline]
    pub const fn checksum(self) -> u16 {
        !self.fold()
    }

    /// True when the message, checksum field included, sums to all ones: it is intact.
    #[inline]
    pub const fn is_valid(self) -> bool {
        self.fold() == 0xffff
    }
}

/// One's-complement addition of two 64-bit words: the carry out of bit 63 comes back in at the
/// bottom (end-around carry). It cannot carry again: when the addition overflows, the wrapped
/// result is at most `u64::MAX - 1`.
#[inline]
const fn add_carry(a: u64, b: u64) -> u64 {
    let (sum, carry) = a.overflowing_add(b);
    sum + carry as u64
}

/// The Internet checksum of `data` (the value to store in a zeroed checksum field).
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    Sum::new().add_bytes(data).checksum()
}

/// Updates checksum `hc` for one 16-bit word changing from `old` to `new` (RFC 1624 eqn. 3).
///
/// Given a correct `hc` for the old message, the result equals a full recomputation whenever the
/// updated message is not all zeros. An
/// all-zero message sums to `0x0000`, its recomputed checksum is `0xffff`; this function returns
/// `0x0000` for it instead, which receivers reject (the sum over data and checksum is then
/// `0x0000`, not `0xffff`). Only a caller that can produce an all-zero message needs to care:
/// [`crate::respond`] does, for an ICMPv4 echo reply with identifier 0, sequence 0 and an all-zero
/// payload.
#[inline]
pub const fn update(hc: u16, old: u16, new: u16) -> u16 {
    update_words(hc, [(old, new)])
}

/// Updates checksum `hc` for several 16-bit words changing at once, each `(old, new)` (RFC 1624
/// eqn. 3 with all the changes in one sum).
///
/// The same value as applying [`update`] word by word (one's-complement addition is associative:
/// the intermediate folds change nothing), for the cost of a single fold.
#[inline]
pub const fn update_words<const N: usize>(hc: u16, changes: [(u16, u16); N]) -> u16 {
    // One's-complement addition of 16-bit values in a u32: `~HC`, then `~m + m'` for each word.
    // The sum stays below 2^31 for N < 16384, so folding the end-around carry in twice (the
    // first fold can itself carry once) brings it to 16 bits.
    let mut sum = (!hc) as u32;
    let mut i = 0;
    while i < N {
        let (old, new) = changes[i];
        sum += (!old) as u32 + new as u32;
        i += 1;
    }
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain, obviously correct reference: big-endian words, one at a time, folded each step.
    fn reference_sum(data: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for pair in data.chunks(2) {
            let word = u32::from(pair[0]) << 8 | u32::from(pair.get(1).copied().unwrap_or(0));
            sum += word;
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2, checksum 220d.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(Sum::new().add_bytes(&data).fold(), 0xddf2);
        assert_eq!(checksum(&data), 0x220d);
        // The same words added one by one, and split across calls at an even boundary.
        let by_words = Sum::new().add_u16(0x0001).add_u16(0xf203).add_u32(0xf4f5_f6f7);
        assert_eq!(by_words.fold(), 0xddf2);
        assert_eq!(Sum::new().add_bytes(&data[..2]).add_bytes(&data[2..]).fold(), 0xddf2);
    }

    #[test]
    fn known_ipv4_header() {
        // A classic textbook header (45 00 0073 0000 4000 4011 b861 c0a80001 c0a800c7):
        // checksum b861; the sum over the whole header including it is ffff.
        let header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert!(Sum::new().add_bytes(&header).is_valid());
        let mut zeroed = header;
        zeroed[10..12].fill(0);
        assert_eq!(checksum(&zeroed), 0xb861);
    }

    #[test]
    fn fold_extremes() {
        // 2^16 is 1 in one's complement, so 2^32 is 1 too; all ones folds to all ones (-0).
        assert_eq!(Sum(u64::MAX).fold(), 0xffff);
        assert_eq!(Sum(1 << 32).fold(), u16::from_be_bytes(1u16.to_ne_bytes()));
        assert_eq!(Sum(0x1_0000).fold(), u16::from_be_bytes(1u16.to_ne_bytes()));
    }

    #[test]
    fn odd_lengths_and_edges() {
        assert_eq!(Sum::new().fold(), 0);
        assert_eq!(checksum(&[]), 0xffff);
        // An odd last byte is the high byte of a zero-padded word.
        assert_eq!(Sum::new().add_bytes(&[0xab]).fold(), 0xab00);
        assert_eq!(Sum::new().add_bytes(&[0x12, 0x34, 0x56]).fold(), 0x6834);
        // Carries wrap around: ffff + 0001 = 0001 (not 0000) in one's complement.
        assert_eq!(Sum::new().add_bytes(&[0xff, 0xff, 0x00, 0x01]).fold(), 0x0001);
        // Many all-ones words never overflow the accumulator and fold to ffff.
        assert_eq!(Sum::new().add_bytes(&[0xff; 9000]).fold(), 0xffff);
    }

    #[test]
    fn matches_reference_for_every_length_and_offset() {
        // A spread of values, then mostly 0xff bytes: the 64-bit additions carry almost every time.
        let spread: Vec<u8> = (0..600u32).map(|i| (i * 151 + 7) as u8).collect();
        let high: Vec<u8> = (0..600u32).map(|i| if i % 23 == 0 { 0xfe } else { 0xff }).collect();
        for data in [spread, high] {
            for_every_slice(&data);
        }
    }

    /// Compares `Sum` with the reference on every slice of `data` that starts in its first 8 bytes.
    fn for_every_slice(data: &[u8]) {
        for start in 0..8 {
            for end in start..data.len() {
                let slice = &data[start..end];
                assert_eq!(
                    Sum::new().add_bytes(slice).fold(),
                    reference_sum(slice),
                    "{start}..{end}"
                );
            }
        }
    }

    #[test]
    fn rfc1624_example() {
        // RFC 1624 §4: HC = dd2f, a word changes from 5555 to 3285: HC' = 0000 by eqn. 3.
        assert_eq!(update(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    #[test]
    fn incremental_update_equals_recomputation() {
        // Change every word of a message in turn, to a spread of values, and compare.
        let mut message: Vec<u8> = (0..64u32).map(|i| (i * 37 + 11) as u8).collect();
        for word in 0..message.len() / 2 {
            for new in [0x0000u16, 0x0001, 0x00ff, 0x8000, 0xfffe, 0xffff, 0x1234] {
                let hc = checksum(&message);
                let at = word * 2;
                let old = u16::from_be_bytes([message[at], message[at + 1]]);
                message[at..at + 2].copy_from_slice(&new.to_be_bytes());
                assert_eq!(update(hc, old, new), checksum(&message), "word {word} -> {new:#x}");
            }
        }
    }

    #[test]
    fn several_words_at_once_equal_one_by_one() {
        let mut message: Vec<u8> = (0..40u32).map(|i| (i * 91 + 3) as u8).collect();
        let word = |m: &[u8], at: usize| u16::from_be_bytes([m[at], m[at + 1]]);
        for (a, b, c) in [
            (0x0000, 0xffff, 0x1234),
            (0xffff, 0xffff, 0xffff),
            (0, 0, 0),
            (0x8000, 0x7fff, 1),
        ] {
            let hc = checksum(&message);
            let changes = [(word(&message, 4), a), (word(&message, 6), b), (word(&message, 8), c)];
            let one_by_one = changes.iter().fold(hc, |hc, &(old, new)| update(hc, old, new));
            for (i, new) in [a, b, c].into_iter().enumerate() {
                message[4 + 2 * i..6 + 2 * i].copy_from_slice(&new.to_be_bytes());
            }
            assert_eq!(update_words(hc, changes), one_by_one);
            assert_eq!(update_words(hc, changes), checksum(&message));
        }
    }

    #[test]
    fn fold_matches_a_plain_modulo() {
        // The fold is the sum modulo 2^16 − 1, with 0xffff (not 0) for a non-zero multiple.
        let reference = |x: u64| match x {
            0 => 0,
            x if x % 0xffff == 0 => 0xffff,
            x => (x % 0xffff) as u16,
        };
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for value in [x, x >> 17, x >> 40, x & 0xffff_0000_ffff] {
                let native = u16::from_be_bytes(Sum(value).fold().to_ne_bytes());
                assert_eq!(native, reference(value), "{value:#x}");
            }
        }
        for value in [0, 0xffff, 0x1_fffe, u64::MAX, u64::MAX - 1, 0xffff_ffff, 1 << 63] {
            let native = u16::from_be_bytes(Sum(value).fold().to_ne_bytes());
            assert_eq!(native, reference(value), "{value:#x}");
        }
    }

    #[test]
    fn incremental_update_of_an_all_zero_result_is_negative_zero() {
        // The one case where eqn. 3 and a recomputation differ (see `update`).
        let request = [0x08, 0x00, 0x00, 0x00];
        let hc = checksum(&request);
        assert_eq!(hc, 0xf7ff);
        assert_eq!(update(hc, 0x0800, 0x0000), 0x0000);
        assert_eq!(checksum(&[0, 0, 0, 0]), 0xffff);
    }
}
