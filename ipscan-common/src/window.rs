//! Per-source window state and the decision "threshold crossed now".
//!
//! The kernel keeps one [`SourceState`] per (source, detection) in an LRU hash and calls these
//! methods on the map value; the host unit-tests them. Loops have constant bounds and every index
//! is checked, so the verifier accepts the same code.

use crate::{classify::Detection, flat};

/// Distinct destination ports tracked exactly, in arrival order (the first ten are logged).
pub const EXACT_PORTS: usize = 28;
/// Destination ports shown in a detection line.
pub const LOGGED_DPORTS: usize = 10;
/// Source ports shown in a detection line.
pub const LOGGED_SPORTS: usize = 5;
/// Words of the hashed port bitmap that counts distinct ports past [`EXACT_PORTS`].
pub const BITMAP_WORDS: usize = 16;
const BITMAP_BITS: u32 = (BITMAP_WORDS * 64) as u32;

/// Key of the SOURCES map. 4-aligned, so that the program builds, hashes and compares it as
/// five words ([`SourceKey::words`]).
#[repr(C, align(4))]
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
        Self { addr, family, kind: kind as u8, _pad: [0; 2] }
    }

    pub fn detection(&self) -> Option<Detection> {
        Detection::from_u8(self.kind)
    }
}

impl SourceKey {
    /// The key as five words ([`SourceKey::from_words`] inverts it).
    #[inline(always)]
    pub fn words(&self) -> [u32; 5] {
        key_words(self)
    }

    /// The key whose [`SourceKey::words`] are `w`, written as five word stores (the key is
    /// 4-aligned and has no padding bytes); assembled field by field from bytes, the BPF backend
    /// stored it a byte at a time.
    #[inline(always)]
    pub fn from_words(w: [u32; 5]) -> Self {
        const _: () = assert!(size_of::<SourceKey>() == size_of::<[u32; 5]>() && align_of::<SourceKey>() >= 4);
        let mut k = core::mem::MaybeUninit::<Self>::uninit();
        // SAFETY: the key is 20 bytes of plain u8 fields, 4-aligned: five words fill every byte,
        // and `words` reads the same bytes back in native order.
        unsafe {
            k.as_mut_ptr().cast::<[u32; 5]>().write(w);
            k.assume_init()
        }
    }
}

/// The key as five words (compared and hashed word by word: the BPF backend has no `memcmp`),
/// read as words: the key is 4-aligned, and its fifth word holds family, kind and padding in
/// memory order.
#[inline(always)]
fn key_words(k: &SourceKey) -> [u32; 5] {
    // SAFETY: 20 initialised bytes, 4-aligned (see `SourceKey::from_words`).
    unsafe { *(k as *const SourceKey).cast::<[u32; 5]>() }
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
// `listed` reads the port lists four entries a word.
const _: () = assert!(core::mem::align_of::<SourceState>() == 8);
const _: () = assert!(core::mem::offset_of!(SourceState, ports) % 8 == 0);
const _: () = assert!(core::mem::offset_of!(SourceState, sports) % 8 == 0);

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

    /// A per-target detection's window ends though packets keep coming (a busy server's
    /// clients): a distributed flood's mode with its first full rate window below the
    /// threshold; a distributed scan's count `window_ns` after its first packet (fixed windows:
    /// the ports of a busy server's clients never add up over hours).
    pub fn calmed(&self, now: u64, window_ns: u64, threshold: u32, counts_ports: bool) -> bool {
        if counts_ports {
            now.saturating_sub(self.first_ns) > window_ns
        } else {
            self.in_mode() && now.saturating_sub(self.rate_start_ns) > window_ns && self.rate_count < threshold
        }
    }

    pub fn in_mode(&self) -> bool {
        self.mode_since_ns != 0
    }

    /// Clears the state in place for a new window starting at `now` (field by field: the BPF
    /// backend cannot emit a 256-byte memset).
    pub fn reset(&mut self, now: u64) {
        use crate::zero::put;
        // Volatile stores: LLVM merges runs of zero stores into `memset` calls, which the BPF
        // backend makes subprogram calls with a byte loop.
        self.first_ns = now;
        self.last_ns = now;
        put(&mut self.mode_since_ns, 0);
        put(&mut self.packets, 0);
        put(&mut self.bytes, 0);
        crate::zero::words(&mut self.bitmap);
        put(&mut self.distinct, 0);
        put(&mut self.nports, 0);
        put(&mut self.nsports, 0);
        put(&mut self.rate_count, 0);
        self.rate_start_ns = now;
    }

    /// Remembers a destination port; returns whether it was new.
    ///
    /// Every port seen in the window has its bit in the bitmap, so a clear bit means a new port
    /// without looking at the list (the common case for a scanner). A set bit means a repeat or a
    /// hash collision: the exact list, searched newest first (retransmissions repeat a recent
    /// port), tells them apart while it has room.
    #[inline(always)]
    pub(crate) fn note_dport(&mut self, port: u16) -> bool {
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
        // Masked first, as in `note_sport` (it never exceeds EXACT_PORTS).
        const _: () = assert!(EXACT_PORTS < 32);
        let n = (self.nports & 31) as usize;
        if n < EXACT_PORTS {
            // The newest entry first: a flood's one port, a retransmitted probe.
            // SAFETY: `ports` starts 8-aligned (asserted below the struct).
            if in_bitmap && (newest_is(&self.ports, n, port) || unsafe { listed(&self.ports, n, port) }) {
                return false;
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

    #[inline(always)]
    pub(crate) fn note_sport(&mut self, port: u16) {
        // Masked first (it never exceeds LOGGED_SPORTS): a bound the verifier sees on the index
        // itself. Linux 6.1's lost the test below when LLVM indexed with another copy of `n`.
        const _: () = assert!(LOGGED_SPORTS < 8);
        let n = (self.nsports & 7) as usize;
        // SAFETY: `sports` starts 8-aligned (asserted below the struct).
        if n >= LOGGED_SPORTS || newest_is(&self.sports, n, port) || unsafe { listed(&self.sports, n, port) } {
            return;
        }
        if let Some(slot) = self.sports.get_mut(n) {
            *slot = port;
            self.nsports += 1;
        }
    }

    /// Enters the mode at `now` if `crossed` and not in it yet: true exactly then.
    #[inline(always)]
    fn enter_mode(&mut self, now: u64, crossed: bool) -> bool {
        if self.mode_since_ns != 0 || !crossed {
            return false;
        }
        // A zero clock would read as "not in mode"; replay clocks may start at zero.
        self.mode_since_ns = if now == 0 { 1 } else { now };
        true
    }

    /// Counts one packet into the window: its time, size, value and other value.
    #[inline(always)]
    fn count(&mut self, now: u64, value: u16, other: u16, bytes: u32) {
        self.last_ns = now;
        self.packets += 1;
        self.bytes += bytes as u64;
        self.note_dport(value);
        self.note_sport(other);
    }

    /// Counts one packet of a port-counting detection. Returns true exactly once per mode: on
    /// the packet whose distinct destination port reaches `threshold`.
    pub fn record_ports(&mut self, now: u64, dport: u16, sport: u16, bytes: u32, threshold: u32) -> bool {
        self.record_values(now, dport, sport, bytes, threshold, 0)
    }

    /// [`SourceState::record_ports`], crossing only once `min_others` distinct other values (a
    /// distributed scan's sources, [`crate::Detection::DistScan`]; at most [`LOGGED_SPORTS`]
    /// are told apart) have been counted too.
    #[inline(always)]
    pub fn record_values(
        &mut self,
        now: u64,
        value: u16,
        other: u16,
        bytes: u32,
        threshold: u32,
        min_others: u32,
    ) -> bool {
        self.count(now, value, other, bytes);
        self.enter_mode(now, self.distinct >= threshold && self.nsports as u32 >= min_others)
    }

    /// Counts one packet of a rate detection (floods): true once, when `threshold` packets have
    /// arrived within one rate window of `window_ns` (fixed windows from the first packet).
    /// A steady trickle (a monitoring ping once a second) never adds up across windows, unlike
    /// iplog's sliding count.
    pub fn record_packets(
        &mut self,
        now: u64,
        dport: u16,
        sport: u16,
        bytes: u32,
        threshold: u32,
        window_ns: u64,
    ) -> bool {
        self.record_rate(now, dport, sport, bytes, threshold, window_ns, 0)
    }

    /// [`SourceState::record_packets`], crossing only once `min_distinct` distinct values (a
    /// distributed flood's sources: [`crate::Detection::DistFlood`]) have been counted too.
    #[expect(clippy::too_many_arguments, reason = "inlined into the kernel's record call; no record on the BPF stack")]
    #[inline(always)]
    pub fn record_rate(
        &mut self,
        now: u64,
        value: u16,
        other: u16,
        bytes: u32,
        threshold: u32,
        window_ns: u64,
        min_distinct: u32,
    ) -> bool {
        self.count(now, value, other, bytes);
        if now.saturating_sub(self.rate_start_ns) > window_ns {
            self.rate_start_ns = now;
            self.rate_count = 0;
        }
        self.rate_count += 1;
        self.enter_mode(now, self.rate_count >= threshold && self.distinct >= min_distinct)
    }

    /// Destination ports to log, in arrival order.
    pub fn logged_dports(&self) -> &[u16] {
        let n = (self.nports as usize).min(LOGGED_DPORTS);
        &self.ports[..n]
    }

    /// The first distinct source ports (a sweep's: the destination ports it swept).
    pub fn logged_sports(&self) -> &[u16] {
        let n = (self.nsports as usize).min(LOGGED_SPORTS);
        &self.sports[..n]
    }
}

/// Whether `port` is among the first `n` entries of `list`, with no jump ([`flat`]): four
/// entries at a time, each word of four compared at once (SWAR), the tail entry by entry. A
/// loop that stopped at `n` became, in LLVM's hands, a pointer walked by a counter whose bound
/// kernel 6.1's verifier could not see ("invalid access to map value, off=256"); one comparison
/// per entry cost a SYN in scan mode about 100 ns (perf, 2026-12-07: the repeated port of a
/// scanner in the mode searches the 28-entry list of each of its two scans).
///
/// # Safety
///
/// `list` starts 8-aligned: its words of four entries are read as `u64`s.
#[inline(always)]
unsafe fn listed<const N: usize>(list: &[u16; N], n: usize, port: u16) -> bool {
    const { assert!(N < 64) };
    // Bit i: entry i is in use.
    let used = (1u64 << (n & 63)).wrapping_sub(1);
    let wanted = port as u64 * 0x0001_0001_0001_0001;
    let mut found = 0u64;
    for j in 0..N / 4 {
        // SAFETY: entries 4j..4j+4 lie inside `list`, whose start is 8-aligned (the caller's
        // promise), so this word is too.
        let word = unsafe { core::ptr::read(list.as_ptr().add(4 * j).cast::<u64>()) };
        found |= zero_lanes(word ^ wanted) << (4 * j);
    }
    for (i, p) in list.iter().enumerate().skip(N / 4 * 4) {
        found |= flat::eq(*p as u64, port as u64) << i;
    }
    found & used != 0
}

/// Whether entry `n - 1` of `list` (the newest of `n`) is `port`: most packets of a source in a
/// detection's mode repeat the last port it counted, and this spares them [`listed`].
#[inline(always)]
fn newest_is<const N: usize>(list: &[u16; N], n: usize, port: u16) -> bool {
    list.get(n.wrapping_sub(1) & 63).is_some_and(|p| *p == port)
}

/// Bit k set for each 16-bit lane k of `x` that is zero (Hacker's Delight 6-1, exact: no lane
/// borrows from another), gathered into the low four bits by one multiply.
#[inline(always)]
fn zero_lanes(x: u64) -> u64 {
    const LOW: u64 = 0x7fff_7fff_7fff_7fff;
    // Each lane's high bit: set when the lane is zero.
    let z = !(((x & LOW) + LOW) | x | LOW);
    // The high bits, moved to bits 0, 16, 32 and 48, then to bits 48 to 51: the multiplier's
    // other products land below bit 48, on distinct bits (no carry).
    const GATHER: u64 = 1 << 48 | 1 << 33 | 1 << 18 | 1 << 3;
    ((z >> 15).wrapping_mul(GATHER) >> 48) & 0xf
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
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn listed_finds_exactly_the_entries_in_use() {
        // Aligned as in SourceState.
        #[repr(C, align(8))]
        struct Aligned<const N: usize>([u16; N]);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            // Few distinct values, so that hits, misses, zeros and 0xffff all come up.
            let pick = |r: u64| [0u16, 1, 0x7fff, 0x8000, 0xffff, 0x8001, 443, 53][(r % 8) as usize];
            let mut ports = Aligned([0u16; EXACT_PORTS]);
            for p in ports.0.iter_mut() {
                *p = pick(next());
            }
            let mut sports = Aligned([0u16; LOGGED_SPORTS]);
            for p in sports.0.iter_mut() {
                *p = pick(next());
            }
            let port = pick(next());
            let n = (next() % (EXACT_PORTS as u64 + 1)) as usize;
            let m = (next() % (LOGGED_SPORTS as u64 + 1)) as usize;
            // SAFETY: both lists are 8-aligned.
            unsafe {
                assert_eq!(listed(&ports.0, n, port), ports.0[..n].contains(&port), "{:?} {n} {port}", ports.0);
                assert_eq!(listed(&sports.0, m, port), sports.0[..m].contains(&port), "{:?} {m} {port}", sports.0);
            }
        }
    }

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

    /// The exact list and the distinct count agree with a plain model (every port searched in
    /// the list, the bitmap only past it), also for ports whose bitmap bits collide.
    #[test]
    fn bitmap_first_lookup_matches_the_list_model() {
        // Ports sharing one bitmap bit, and ordinary ones.
        let colliding: Vec<u16> = (0..=u16::MAX).filter(|p| port_hash(*p) % BITMAP_BITS == 7).take(12).collect();
        assert!(colliding.len() >= 4);
        let mut seq: Vec<u16> = Vec::new();
        let mut x = 12345u32;
        for _ in 0..400 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let r = (x >> 16) as usize;
            seq.push(match r % 3 {
                0 => colliding[r % colliding.len()],
                1 => (r % 40) as u16,
                _ => seq.last().copied().unwrap_or(1),
            });
        }
        let mut s = SourceState::new(0);
        let (mut list, mut bits, mut distinct) = (Vec::<u16>::new(), [0u64; BITMAP_WORDS], 0u32);
        for (i, port) in seq.iter().enumerate() {
            let bit = port_hash(*port) % BITMAP_BITS;
            let seen = bits[(bit / 64) as usize] & (1 << (bit % 64)) != 0;
            bits[(bit / 64) as usize] |= 1 << (bit % 64);
            let new = if list.len() < EXACT_PORTS {
                let new = !list.contains(port);
                if new {
                    list.push(*port);
                }
                new
            } else {
                !seen
            };
            distinct += new as u32;
            assert_eq!(s.note_dport(*port), new, "port {port} at {i}");
            assert_eq!((s.distinct, &s.ports[..s.nports as usize]), (distinct, &list[..]));
        }
    }

    /// A source tracked through probation ends with the very state of one tracked from its
    /// first packet: same totals, times, ports, crossing.
    #[test]
    fn key_words_round_trip() {
        let k = SourceKey::new([0x20, 1, 0xd, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 6, Detection::UdpFlood);
        assert_eq!(SourceKey::from_words(k.words()), k);
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
