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
//! * The carries can be collected first and folded back at the end: we add 32-bit words into a
//!   64-bit accumulator, which cannot overflow for any buffer shorter than 16 GiB, and fold the
//!   64-bit total down to 16 bits once ([`Sum::fold`]).
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
        // Native-order 32-bit words, widened into u64: no carry can be lost (see the module docs).
        // Two accumulators let the CPU overlap the additions of neighbouring words.
        let (chunks, tail) = data.as_chunks::<8>();
        let (mut even, mut odd) = (self.0, 0u64);
        for chunk in chunks {
            let [a, b, c, d, e, f, g, h] = *chunk;
            even += u64::from(u32::from_ne_bytes([a, b, c, d]));
            odd += u64::from(u32::from_ne_bytes([e, f, g, h]));
        }
        // The last 0..=7 bytes, as 16-bit words; an odd last byte is the high-order byte of a
        // word whose low-order byte is zero (in memory order: the byte, then a zero).
        let (words, odd_byte) = tail.as_chunks::<2>();
        for word in words {
            even += u64::from(u16::from_ne_bytes(*word));
        }
        if let [last] = odd_byte {
            odd += u64::from(u16::from_ne_bytes([*last, 0]));
        }
        Sum(even + odd)
    }

    /// Adds one 16-bit word given by its (big-endian, network-order) value.
    #[inline]
    pub const fn add_u16(self, word: u16) -> Self {
        // The accumulator holds native-order words: store the value the way it lies on the wire.
        Sum(self.0 + u16::from_ne_bytes(word.to_be_bytes()) as u64)
    }

    /// Adds a 32-bit value given by its (big-endian) value, as two 16-bit words.
    #[inline]
    pub const fn add_u32(self, value: u32) -> Self {
        self.add_u16((value >> 16) as u16).add_u16(value as u16)
    }

    /// Folds the carries back in (end-around carry) and returns the 16-bit sum as a big-endian value.
    #[inline]
    pub const fn fold(self) -> u16 {
        // Each step adds the high half to the low half. Two steps take 64 bits to at most
        // 0xffff_ffff, two more take that to at most 0xffff: no branch, whatever the input.
        let sum = (self.0 & 0xffff_ffff) + (self.0 >> 32);
        let sum = (sum & 0xffff_ffff) + (sum >> 32);
        let sum = (sum & 0xffff) + (sum >> 16);
        let sum = (sum & 0xffff) + (sum >> 16);
        // `sum` holds native-order bytes: read them back as they would lie on the wire.
        u16::from_be_bytes((sum as u16).to_ne_bytes())
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
    // One's-complement addition of three 16-bit values in a u32, then the end-around carry
    // folded in twice (the first fold can itself carry once).
    let sum = (!hc) as u32 + (!old) as u32 + new as u32;
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
        let data: Vec<u8> = (0..600u32).map(|i| (i * 151 + 7) as u8).collect();
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
    fn incremental_update_of_an_all_zero_result_is_negative_zero() {
        // The one case where eqn. 3 and a recomputation differ (see `update`).
        let request = [0x08, 0x00, 0x00, 0x00];
        let hc = checksum(&request);
        assert_eq!(hc, 0xf7ff);
        assert_eq!(update(hc, 0x0800, 0x0000), 0x0000);
        assert_eq!(checksum(&[0, 0, 0, 0]), 0xffff);
    }
}
