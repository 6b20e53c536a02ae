//! Per-source window state and the decision "threshold crossed now".
//!
//! The kernel keeps one [`SourceState`] per (source, detection) in an LRU hash and calls these
//! methods on the map value; the host unit-tests them. Loops have constant bounds and every index
//! is checked, so the verifier accepts the same code.

use crate::classify::Detection;

/// Distinct destination ports tracked exactly, in arrival order (the first ten are logged).
pub const EXACT_PORTS: usize = 28;
/// Destination ports shown in a detection line.
pub const LOGGED_DPORTS: usize = 10;
/// Source ports shown in a detection line.
pub const LOGGED_SPORTS: usize = 5;
/// Words of the hashed port bitmap that counts distinct ports past [`EXACT_PORTS`].
pub const BITMAP_WORDS: usize = 16;
const BITMAP_BITS: u32 = (BITMAP_WORDS * 64) as u32;

/// Key of the SOURCES map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SourceKey {
    /// Source address (or its /24 or /64 for per-network detections); IPv4 in the first 4 bytes.
    pub addr: [u8; 16],
    pub family: u8,
    /// [`Detection`] discriminant.
    pub kind: u8,
    pub _pad: [u8; 2],
}
const _: () = assert!(core::mem::size_of::<SourceKey>() == 20);

impl SourceKey {
    pub fn new(addr: [u8; 16], family: u8, kind: Detection) -> Self {
        Self {
            addr,
            family,
            kind: kind as u8,
            _pad: [0; 2],
        }
    }

    pub fn detection(&self) -> Option<Detection> {
        Detection::from_u8(self.kind)
    }
}

/// Window state of one (source, detection).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceState {
    /// Clock of the first counted packet of this window.
    pub first_ns: u64,
    /// Clock of the last counted packet: the window lapses `window_ns` after it.
    pub last_ns: u64,
    /// Clock at which the threshold was crossed; zero when not in the mode.
    pub mode_since_ns: u64,
    /// Packets counted in this window.
    pub packets: u64,
    /// IP payload bytes counted in this window.
    pub bytes: u64,
    /// Hashed bitmap of every destination port seen.
    pub bitmap: [u64; BITMAP_WORDS],
    /// Distinct destination ports (exact up to [`EXACT_PORTS`], then estimated from the bitmap).
    pub distinct: u32,
    /// Entries used in `ports`.
    pub nports: u8,
    /// Entries used in `sports`.
    pub nsports: u8,
    pub _pad0: [u8; 2],
    /// Distinct destination ports in arrival order.
    pub ports: [u16; EXACT_PORTS],
    /// Distinct source ports in arrival order.
    pub sports: [u16; LOGGED_SPORTS],
    pub _pad1: [u8; 2],
    /// Floods: packets in the current rate window.
    pub rate_count: u32,
    /// Floods: clock at which the current rate window began.
    pub rate_start_ns: u64,
}
const _: () = assert!(core::mem::size_of::<SourceState>() == 256);

impl SourceState {
    /// A fresh window opened by a packet at `now`.
    pub const fn new(now: u64) -> Self {
        Self {
            first_ns: now,
            last_ns: now,
            mode_since_ns: 0,
            packets: 0,
            bytes: 0,
            bitmap: [0; BITMAP_WORDS],
            distinct: 0,
            nports: 0,
            nsports: 0,
            _pad0: [0; 2],
            ports: [0; EXACT_PORTS],
            sports: [0; LOGGED_SPORTS],
            _pad1: [0; 2],
            rate_count: 0,
            rate_start_ns: now,
        }
    }

    /// Whether the inactivity window has run out at `now`.
    pub fn lapsed(&self, now: u64, window_ns: u64) -> bool {
        now.saturating_sub(self.last_ns) > window_ns
    }

    pub fn in_mode(&self) -> bool {
        self.mode_since_ns != 0
    }

    /// Clears the state in place for a new window starting at `now` (field by field: the BPF
    /// backend cannot emit a 256-byte memset).
    pub fn reset(&mut self, now: u64) {
        self.first_ns = now;
        self.last_ns = now;
        self.mode_since_ns = 0;
        self.packets = 0;
        self.bytes = 0;
        crate::zero::words(&mut self.bitmap);
        self.distinct = 0;
        self.nports = 0;
        self.nsports = 0;
        self.rate_count = 0;
        self.rate_start_ns = now;
    }

    /// Remembers a destination port; returns whether it was new.
    fn note_dport(&mut self, port: u16) -> bool {
        let bit = port_hash(port) % BITMAP_BITS;
        let mask = 1u64 << (bit % 64);
        let in_bitmap = match self.bitmap.get_mut((bit / 64) as usize) {
            Some(w) => {
                let seen = *w & mask != 0;
                *w |= mask;
                seen
            }
            None => return false,
        };
        let n = self.nports as usize;
        if n < EXACT_PORTS {
            for i in 0..EXACT_PORTS {
                if i >= n {
                    break;
                }
                if self.ports.get(i) == Some(&port) {
                    return false;
                }
            }
            if let Some(slot) = self.ports.get_mut(n) {
                *slot = port;
                self.nports += 1;
            }
            self.distinct += 1;
            return true;
        }
        // Past the exact list a bitmap collision can hide a new port: the count is a lower
        // bound, which only matters for thresholds above EXACT_PORTS.
        if !in_bitmap {
            self.distinct += 1;
        }
        !in_bitmap
    }

    fn note_sport(&mut self, port: u16) {
        let n = self.nsports as usize;
        if n >= LOGGED_SPORTS {
            return;
        }
        for i in 0..LOGGED_SPORTS {
            if i >= n {
                break;
            }
            if self.sports.get(i) == Some(&port) {
                return;
            }
        }
        if let Some(slot) = self.sports.get_mut(n) {
            *slot = port;
            self.nsports += 1;
        }
    }

    /// Counts one packet of a port-counting detection. Returns true exactly once per mode: on
    /// the packet whose distinct destination port reaches `threshold`.
    pub fn record_ports(&mut self, now: u64, dport: u16, sport: u16, bytes: u32, threshold: u32) -> bool {
        self.last_ns = now;
        self.packets += 1;
        self.bytes += bytes as u64;
        self.note_dport(dport);
        self.note_sport(sport);
        if self.mode_since_ns == 0 && self.distinct >= threshold {
            // A zero clock would read as "not in mode"; replay clocks may start at zero.
            self.mode_since_ns = if now == 0 { 1 } else { now };
            return true;
        }
        false
    }

    /// Counts one packet of a rate detection (floods): true once, when `threshold` packets have
    /// arrived within one rate window of `window_ns` (fixed windows from the first packet).
    /// A steady trickle (a monitoring ping once a second) never adds up across windows, unlike
    /// iplog's sliding count.
    pub fn record_packets(&mut self, now: u64, dport: u16, sport: u16, bytes: u32, threshold: u32, window_ns: u64) -> bool {
        self.last_ns = now;
        self.packets += 1;
        self.bytes += bytes as u64;
        self.note_dport(dport);
        self.note_sport(sport);
        if now.saturating_sub(self.rate_start_ns) > window_ns {
            self.rate_start_ns = now;
            self.rate_count = 0;
        }
        self.rate_count += 1;
        if self.mode_since_ns == 0 && self.rate_count >= threshold {
            self.mode_since_ns = if now == 0 { 1 } else { now };
            return true;
        }
        false
    }

    /// Destination ports to log, in arrival order.
    pub fn logged_dports(&self) -> &[u16] {
        let n = (self.nports as usize).min(LOGGED_DPORTS);
        &self.ports[..n]
    }
}

/// Multiplicative hash spreading ports over the bitmap (Knuth's constant).
fn port_hash(port: u16) -> u32 {
    (port as u32).wrapping_mul(2_654_435_761) >> 16
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for SourceKey {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for SourceState {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crosses_once_on_the_threshold_distinct_port() {
        let mut s = SourceState::new(100);
        for (i, port) in (1..=9u16).enumerate() {
            assert!(!s.record_ports(100 + i as u64, port, 40000, 24, 10));
        }
        assert!(s.record_ports(200, 10, 40000, 24, 10));
        assert_eq!(s.mode_since_ns, 200);
        assert!(!s.record_ports(201, 11, 40000, 24, 10));
        assert_eq!(s.packets, 11);
        assert_eq!(s.bytes, 11 * 24);
        assert_eq!(s.logged_dports(), &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(s.nsports, 1);
    }

    #[test]
    fn one_busy_port_never_crosses() {
        let mut s = SourceState::new(0);
        for i in 0..10_000u64 {
            assert!(!s.record_ports(i, 443, (30000 + i) as u16, 40, 15));
        }
        assert_eq!(s.distinct, 1);
        assert_eq!(s.packets, 10_000);
        // Source ports: the first five distinct.
        assert_eq!(&s.sports, &[30000, 30001, 30002, 30003, 30004]);
    }

    #[test]
    fn repeated_ports_do_not_count() {
        let mut s = SourceState::new(0);
        for _ in 0..5 {
            for p in [22u16, 80, 443] {
                s.record_ports(1, p, 1, 0, 100);
            }
        }
        assert_eq!(s.distinct, 3);
        assert_eq!(s.logged_dports(), &[22, 80, 443]);
    }

    #[test]
    fn counts_past_the_exact_list() {
        let mut s = SourceState::new(0);
        for p in 1..=1000u16 {
            s.record_ports(1, p, 1, 0, u32::MAX);
        }
        assert_eq!(s.nports as usize, EXACT_PORTS);
        // A lower bound: exact for the first 32, then limited by bitmap collisions.
        assert!(s.distinct >= 500 && s.distinct <= 1000, "{}", s.distinct);
        assert_eq!(s.ports[EXACT_PORTS - 1], EXACT_PORTS as u16);
    }

    #[test]
    fn window_lapses_and_resets() {
        let mut s = SourceState::new(0);
        s.record_ports(10, 1, 1, 5, 1);
        assert!(s.in_mode());
        assert!(!s.lapsed(10 + 50, 50));
        assert!(s.lapsed(10 + 51, 50));
        s.reset(61);
        assert!(!s.in_mode());
        assert_eq!((s.packets, s.bytes, s.distinct, s.nports, s.nsports), (0, 0, 0, 0, 0));
        assert!(s.bitmap.iter().all(|w| *w == 0));
        assert!(!s.record_ports(62, 1, 1, 5, 2));
    }

    #[test]
    fn zero_clock_still_enters_mode() {
        let mut s = SourceState::new(0);
        assert!(s.record_packets(0, 0, 0, 64, 1, 10));
        assert!(s.in_mode());
    }

    #[test]
    fn rate_detection() {
        let mut s = SourceState::new(0);
        for i in 0..69u64 {
            assert!(!s.record_packets(i, 0, 0, 64, 70, 1000));
        }
        assert!(s.record_packets(69, 0, 0, 64, 70, 1000));
        assert!(!s.record_packets(70, 0, 0, 64, 70, 1000));
        assert_eq!(s.packets, 71);
    }

    #[test]
    fn a_slow_steady_rate_never_floods() {
        // One echo request a second for ten minutes against 70 in 60 s.
        let sec = 1_000_000_000u64;
        let mut s = SourceState::new(0);
        for i in 0..600u64 {
            assert!(!s.record_packets(i * sec, 0, 0, 64, 70, 60 * sec), "packet {i}");
        }
        assert_eq!(s.packets, 600);
    }
}
