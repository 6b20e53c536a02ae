//! Fragment attack checks over a bounded per-train state: oversized reassembly, overlapping and
//! duplicate fragments, tiny first fragments.

use crate::{PacketSummary, packet::ip_flags};

/// Fragment ranges remembered per train; more are checked against these but not stored.
pub const FRAG_RANGES: usize = 8;
/// A train's state is forgotten this long after its first fragment (the reassembly timeout
/// of Linux and RFC 791's upper bound; iplog's expired after about a second by mistake).
pub const FRAG_TIMEOUT_NS: u64 = 60_000_000_000;
/// Largest reassembled IP packet.
pub const MAX_REASSEMBLED: u32 = 65_535;

/// Bits of what a fragment revealed (also the "already reported" set of a train).
pub mod frag_anomalies {
    pub const OVERSIZED: u8 = 1;
    pub const OVERLAP: u8 = 2;
    pub const DUPLICATE: u8 = 4;
    pub const TINY: u8 = 8;
}

/// Key of the FRAGS map: one fragment train.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FragKey {
    pub src: [u8; 16],
    pub id: u32,
    pub family: u8,
    pub proto: u8,
    pub _pad: [u8; 2],
}
const _: () = assert!(core::mem::size_of::<FragKey>() == 24);

impl FragKey {
    pub fn of(p: &PacketSummary) -> Self {
        Self { src: p.src, id: p.frag_id, family: p.family, proto: p.proto, _pad: [0; 2] }
    }
}

/// Byte ranges seen of one train.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragState {
    pub first_ns: u64,
    /// `[start, end)` byte ranges of the fragments seen.
    pub ranges: [[u32; 2]; FRAG_RANGES],
    pub n: u8,
    /// Anomalies already reported for this train (each is reported once).
    pub reported: u8,
    pub _pad: [u8; 6],
}
const _: () = assert!(core::mem::size_of::<FragState>() == 8 + 64 + 8);

impl FragState {
    pub fn reset(&mut self, now: u64) {
        self.first_ns = now;
        self.n = 0;
        self.reported = 0;
    }

    /// Records a fragment; returns the anomalies it reveals that were not reported before.
    pub fn add(&mut self, now: u64, p: &PacketSummary) -> u8 {
        use frag_anomalies::*;
        if now.saturating_sub(self.first_ns) > FRAG_TIMEOUT_NS {
            self.reset(now);
        }
        let start = p.frag_off as u32 * 8;
        let end = start + p.ip_payload_len;
        let mut found = 0;
        if end > MAX_REASSEMBLED {
            found |= OVERSIZED;
        }
        if p.ip_flags & ip_flags::TINY_FRAGMENT != 0 {
            found |= TINY;
        }
        let n = self.n as usize;
        for i in 0..FRAG_RANGES {
            if i >= n {
                break;
            }
            if let Some([s, e]) = self.ranges.get(i).copied() {
                if s == start && e == end {
                    found |= DUPLICATE;
                } else if start < e && s < end {
                    found |= OVERLAP;
                }
            }
        }
        if found & DUPLICATE == 0
            && let Some(slot) = self.ranges.get_mut(n)
        {
            *slot = [start, end];
            self.n += 1;
        }
        let new = found & !self.reported;
        self.reported |= found;
        new
    }
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for FragKey {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for FragState {}

#[cfg(test)]
mod tests {
    use super::{frag_anomalies::*, *};

    fn frag(off_units: u16, len: u32) -> PacketSummary {
        PacketSummary { frag_off: off_units, ip_payload_len: len, ip_flags: ip_flags::FRAGMENT, ..Default::default() }
    }

    #[test]
    fn clean_train() {
        let mut s = FragState::default();
        assert_eq!(s.add(1, &frag(0, 1480)), 0);
        assert_eq!(s.add(1, &frag(185, 1480)), 0);
        assert_eq!(s.add(1, &frag(370, 100)), 0);
    }

    #[test]
    fn duplicate_overlap_oversized_reported_once() {
        let mut s = FragState::default();
        s.add(1, &frag(0, 80));
        assert_eq!(s.add(1, &frag(0, 80)), DUPLICATE);
        assert_eq!(s.add(1, &frag(0, 80)), 0, "reported once per train");
        assert_eq!(s.add(1, &frag(5, 80)), OVERLAP, "teardrop-style overlap");
        assert_eq!(s.add(1, &frag(8189, 100)), OVERSIZED, "ping of death");
    }

    #[test]
    fn tiny_first_fragment() {
        let mut s = FragState::default();
        let mut p = frag(0, 8);
        p.ip_flags |= ip_flags::TINY_FRAGMENT;
        assert_eq!(s.add(1, &p), TINY);
    }

    #[test]
    fn state_expires_after_the_reassembly_timeout() {
        let mut s = FragState::default();
        s.add(1, &frag(0, 80));
        assert_eq!(s.add(1 + FRAG_TIMEOUT_NS + 1, &frag(0, 80)), 0, "a new train after 60 s");
        assert_eq!(s.add(2 + FRAG_TIMEOUT_NS, &frag(0, 80)), DUPLICATE);
    }
}
