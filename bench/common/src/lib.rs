//! Values shared by the benchmark's XDP programs (`bench/ebpf`: `generator_tx`, `floor`) and the
//! benchmark that loads them (`ipscan-bench`). Not part of ipscan: nothing in the product uses
//! them.

#![no_std]

/// `GEN_VARY_SOURCE` value for a random-source SYN scan flood from [`SCAN_SOURCES`] IPv4
/// sources: packet n comes from source n mod SCAN_SOURCES (the address's low 14 bits) and
/// goes to TCP port 1 + n / SCAN_SOURCES (mod 1024), so every source probes ever new ports.
pub const SCAN_FLOOD: u8 = 5;
/// Sources of the scan flood.
pub const SCAN_SOURCES: u32 = 1 << 14;

/// The `floor_array` program's slot of an IPv4 source (read as a little-endian u32).
#[inline(always)]
pub fn floor_slot(a: u32) -> u32 {
    (a.wrapping_mul(0x9e37_79b1) >> 16) & 0xffff
}
