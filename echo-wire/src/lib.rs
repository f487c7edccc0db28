//! echo-wire: the wire format and the reply policy of an ICMP echo responder.
//!
//! Small typed views over packet bytes (Ethernet, VLAN, IPv4, IPv6, ICMP echo), the Internet
//! checksum with its incremental update (RFC 1071, RFC 1624), and [`respond::Responder`], which turns
//! an echo request frame into its echo reply in place. Nothing here does I/O, allocates or uses
//! `unsafe`: the crate is `no_std`, has no dependencies, and is what the fuzz targets and the
//! microbenchmarks link.
//!
//! Each view wraps a buffer `T: AsRef<[u8]>` without copying it: getters work on any such buffer,
//! setters need `T: AsMut<[u8]>` as well. The byte offsets of a header's fields are named constants
//! in a private `mod field`, next to the diagram of the header.
//!
//! The contract of every view is written once, on its `new_checked`: that constructor checks the
//! buffer length (and, for IP, the length fields against it) a single time, and after it no
//! accessor panics. Accessors that depend on a length field (an IP payload) clamp to the buffer,
//! so even a setter that later writes a nonsensical length cannot make a getter panic.
//!
//! The views know the wire format only. What a responder *does* with a packet, which packets it
//! answers and how, is the business of [`respond`].
//!
//! They cover the handful of fields an echo responder reads or writes; they are not a general
//! packet library (the tests use `etherparse` as an independent oracle for that).

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod respond;
pub mod trace;

/// Why a view refused a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the fixed part of the header.
    Truncated,
    /// A length field of the header contradicts itself or claims more bytes than the buffer has.
    Length,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Error::Truncated => "buffer shorter than the header",
            Error::Length => "header length fields inconsistent with the buffer",
        })
    }
}

impl core::error::Error for Error {}

/// A field of a header: its byte range from the start of the header.
type Field = core::ops::Range<usize>;

/// Reads a fixed-size field from a buffer already checked to hold it.
#[inline]
fn read<const N: usize>(buffer: &[u8], field: Field) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&buffer[field]);
    out
}

/// Reads a big-endian 16-bit field from a buffer already checked to hold it.
#[inline]
fn read_u16(buffer: &[u8], field: Field) -> u16 {
    u16::from_be_bytes(read(buffer, field))
}

/// Writes a big-endian 16-bit field into a buffer already checked to hold it.
#[inline]
fn write_u16(buffer: &mut [u8], field: Field, value: u16) {
    buffer[field].copy_from_slice(&value.to_be_bytes());
}

#[cfg(test)]
pub(crate) mod fixtures;
