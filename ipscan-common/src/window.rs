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

/// Ways per set: a key may sit in any of the four ways of its set.
pub const PROBATION_WAYS: u32 = 4;
/// Sets of the PROBATION array (a power of two); the array has one entry more, for the hash
/// seed ([`PROBATION_SEED_SLOT`]).
pub const PROBATION_SETS: u32 = 16_384;
/// Ways of all sets: how many sources can be on probation at once.
pub const PROBATION_SLOTS: u32 = PROBATION_SETS * PROBATION_WAYS;
/// The entry after the sets: the hash seed ([`ProbeSet::seed`], zero until the program draws
/// it) and the state of the admission filter ([`ProbeSet::filter_state`], see [`filter`]).
pub const PROBATION_SEED_SLOT: u32 = PROBATION_SETS;

/// The admission filter: each set's two `admitted` words are 128 bits, and a key that is admitted
/// to SOURCES from its set (or put there directly, for a threshold of one) sets its bit
/// ([`ProbeSet::place_words`]) first. A key that has no probation in its set and a clear bit
/// skips the SOURCES lookup: the key cannot be there. Bits are never cleared (a key that leaves
/// SOURCES only costs the lookup it would have cost anyway).
///
/// The filter holds only while every SOURCES entry was put there by a program that set its
/// bit in this PROBATION array, under the same placement; the seed entry's
/// [`ProbeSet::filter_state`] says whether it does.
pub mod filter {
    /// Not decided: the seed is not drawn yet. The program, drawing it, turns the filter on.
    /// A PROBATION pin from before the filter (seed drawn, state still zero) reads as off.
    pub const UNDECIDED: u32 = 0;
    /// On: every SOURCES key has its bit under this build's placement ([`super::ProbeSet::place_words`]).
    /// Any other value is off: the program looks in SOURCES for every key without probation,
    /// and the loader rebuilds the bits before attaching (`loader::admission_filter`). A change
    /// of placement must take a new value, so that pins from the old one are rebuilt.
    pub const ON: u32 = 1;
}
const _: () = assert!(PROBATION_SETS.is_power_of_two());

/// A source on probation for one detection: so far it has sent packets to one destination port
/// only (scans), or one packet (floods), which no threshold above one can cross. Such sources are
/// the common case (every client of a server, every source of a spoofed flood), and keeping them
/// here, in a fixed array entry chosen by a hash of the key, spares the SOURCES LRU an insert and
/// an eviction per source. A source is admitted to SOURCES with its second distinct port (its
/// second packet, for the floods), with the packets, bytes, port and first time of its
/// probation, so its totals and port list are the same as if it had been tracked from its first
/// packet. A key hashes (with a seed the program draws at random) to a set of four ways
/// ([`ProbeSet`]), and sits in whichever of them it took: up to four sources whose keys collide
/// keep their probation side by side, where a single slot per key let two interleaved scanners
/// displace each other at every probe and never be detected. A new key takes a free or lapsed
/// way of its set, else a random one (a flood cannot fill the ways and push real sources back
/// into the LRU); the key it displaces starts its probation again with its next packet.
///
/// One way's record; whether it is in use, and the clock of its last packet, are in the set's
/// first cache line ([`ProbeSet`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Probe {
    pub key: SourceKey,
    /// The one destination port seen.
    pub dport: u16,
    /// The first source port seen.
    pub sport: u16,
    /// Packets counted.
    pub packets: u32,
    pub _pad: u32,
    /// IP payload bytes counted.
    pub bytes: u64,
    pub first_ns: u64,
}
const _: () = assert!(core::mem::size_of::<Probe>() == 48);

/// One set of PROBATION: what a packet of a new source reads, the ways' tags and last times and
/// the set's admission-filter bits, is in its first 64 bytes, one cache line (the array is
/// mmapable, so it starts on a page, and a set is 256 bytes); a way's record is read only when
/// its tag is the key's. Under a flood of new sources the search costs one line where four
/// 56-byte probes read side by side cost four or five.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeSet {
    /// Per way: the tag ([`Place::tag`], never zero) of the key it holds; zero: the way is free.
    pub tags: [u32; PROBATION_WAYS as usize],
    /// Per way: the clock of its last packet.
    pub last_ns: [u64; PROBATION_WAYS as usize],
    /// The set's 128 admission-filter bits ([`filter`]).
    pub admitted: [u64; 2],
    pub ways: [Probe; PROBATION_WAYS as usize],
}
const _: () = assert!(core::mem::size_of::<ProbeSet>() == 256);
const _: () = assert!(core::mem::offset_of!(ProbeSet, ways) == 64);

/// Where a key's probation lives ([`ProbeSet::place_words`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    /// The set's index in PROBATION.
    pub set: u32,
    /// Its admission-filter bit, 0 to 127.
    pub bit: u32,
    /// What the set's `tags` hold for the key: never zero.
    pub tag: u32,
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

impl ProbeSet {
    /// Where a key lives, under the array's hash seed, from one hash of the key: the set from
    /// its upper half, the filter bit and the tag from its lower half.
    #[inline(always)]
    pub fn place(key: &SourceKey, seed: u64) -> Place {
        Self::place_words(&key_words(key), seed)
    }

    /// [`ProbeSet::place`] for a key given as its [`SourceKey::words`].
    #[inline(always)]
    pub fn place_words(words: &[u32; 5], seed: u64) -> Place {
        let h = crate::block::table::keyed_hash(words, seed);
        Place { set: (h >> 32) as u32 & (PROBATION_SETS - 1), bit: (h >> 8) as u32 & 127, tag: h as u32 | 1 }
    }

    /// The word of `admitted` that holds filter bit `bit` (0 to 127), and the bit's mask there.
    #[inline(always)]
    pub const fn filter_word(bit: u32) -> (usize, u64) {
        ((bit >> 6) as usize & 1, 1 << (bit & 63))
    }

    /// Whether filter bit `bit` is set.
    #[inline(always)]
    pub fn has_filter_bit(&self, bit: u32) -> bool {
        let (w, mask) = Self::filter_word(bit);
        self.admitted[w] & mask != 0
    }

    /// Sets filter bit `bit` (user space; the program ORs atomically).
    pub fn set_filter_bit(&mut self, bit: u32) {
        let (w, mask) = Self::filter_word(bit);
        self.admitted[w] |= mask;
    }

    /// The seed entry's hash seed: zero until drawn.
    #[inline(always)]
    pub fn seed(&self) -> u64 {
        self.last_ns[0]
    }

    /// The seed entry's admission-filter state ([`filter`]).
    #[inline(always)]
    pub fn filter_state(&self) -> u32 {
        self.tags[0]
    }

    /// Makes this the seed entry of `seed` with filter state `state`.
    #[inline(always)]
    pub fn set_seed(&mut self, seed: u64, state: u32) {
        self.last_ns[0] = seed;
        self.tags[0] = state;
    }

    /// Which way a key's packet goes to: `(way, true)` when that way holds the key's probation
    /// (within the window), else `(way, false)` for the way to start it in: the first free or
    /// lapsed one, else one picked by the clock and the key (random replacement: a full set is
    /// one under a flood, where every way is as likely to be a spoofed source's as any other).
    /// Only the set's first line is read, and a way's record when its tag is the key's. Early
    /// returns only: the verifier checks a chain of them, where a running minimum would
    /// multiply its paths.
    #[inline(always)]
    pub fn choose(&self, key: &SourceKey, place: &Place, now: u64, window_ns: u64) -> (u32, bool) {
        self.choose_words(&key_words(key), place.tag, now, window_ns)
    }

    /// [`ProbeSet::choose`] for a key given as its [`SourceKey::words`] and its tag.
    #[inline(always)]
    pub fn choose_words(&self, key: &[u32; 5], tag: u32, now: u64, window_ns: u64) -> (u32, bool) {
        for i in 0..PROBATION_WAYS as usize {
            if self.tags[i] == tag && self.holds_words(i, key, now, window_ns) {
                return (i as u32, true);
            }
        }
        for i in 0..PROBATION_WAYS as usize {
            if self.tags[i] == 0 || now.saturating_sub(self.last_ns[i]) > window_ns {
                return (i as u32, false);
            }
        }
        // The detection is part of the pick: a SYN starts two probations (port scan, SYN scan)
        // at one instant, and when both keys hash to one full set they must not take the same
        // way from each other at every packet.
        (((now as u32) ^ key[0] ^ (key[4] >> 8)) & (PROBATION_WAYS - 1), false)
    }

    /// Whether way `i` holds `key`'s probation, still inside its window at `now`.
    pub fn holds(&self, i: usize, key: &SourceKey, now: u64, window_ns: u64) -> bool {
        self.holds_words(i, &key_words(key), now, window_ns)
    }

    /// [`ProbeSet::holds`] for a key given as its [`SourceKey::words`].
    #[inline(always)]
    pub fn holds_words(&self, i: usize, w: &[u32; 5], now: u64, window_ns: u64) -> bool {
        let i = i & (PROBATION_WAYS as usize - 1);
        self.tags[i] != 0
            && crate::block::same_words(&key_words(&self.ways[i].key), w)
            && now.saturating_sub(self.last_ns[i]) <= window_ns
    }

    /// Starts `key`'s probation in way `i` with one packet (taking the way over).
    #[expect(
        clippy::too_many_arguments,
        reason = "fields written straight into the map value, no record on the BPF stack"
    )]
    #[inline(always)]
    pub fn start(&mut self, i: usize, key: &SourceKey, tag: u32, now: u64, dport: u16, sport: u16, bytes: u32) {
        let i = i & (PROBATION_WAYS as usize - 1);
        let w = &mut self.ways[i];
        w.key = *key;
        w.dport = dport;
        w.sport = sport;
        w.packets = 1;
        w.bytes = bytes as u64;
        w.first_ns = now;
        self.tags[i] = tag;
        self.last_ns[i] = now;
    }

    /// One more packet to the same port, in way `i`.
    #[inline(always)]
    pub fn add(&mut self, i: usize, now: u64, bytes: u32) {
        let i = i & (PROBATION_WAYS as usize - 1);
        let w = &mut self.ways[i];
        w.packets = w.packets.saturating_add(1);
        w.bytes += bytes as u64;
        self.last_ns[i] = now;
    }

    /// Ways that hold a probation still inside its window at `now` (`window_ns` of the key's
    /// detection, by its discriminant): what `ipscan stats` counts as sources on probation. A
    /// lapsed way is free for the next key, though the program leaves its tag until then.
    pub fn held(&self, now: u64, window_ns: impl Fn(u8) -> u64) -> u32 {
        (0..PROBATION_WAYS as usize)
            .filter(|i| self.tags[*i] != 0 && now.saturating_sub(self.last_ns[*i]) <= window_ns(self.ways[*i].key.kind))
            .count() as u32
    }

    /// Frees way `i` (its source was admitted).
    #[inline(always)]
    pub fn clear(&mut self, i: usize) {
        self.tags[i & (PROBATION_WAYS as usize - 1)] = 0;
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

    /// The state of a source leaving probation: a window opened by its first packet, with the
    /// packets, bytes and ports of its probation already counted (below any threshold above 1).
    pub fn admit(&mut self, p: &Probe, last_ns: u64) {
        self.reset(p.first_ns);
        self.last_ns = last_ns;
        self.packets = p.packets as u64;
        self.bytes = p.bytes;
        self.rate_count = p.packets;
        self.note_dport(p.dport);
        self.note_sport(p.sport);
    }

    /// Remembers a destination port; returns whether it was new.
    ///
    /// Every port seen in the window has its bit in the bitmap, so a clear bit means a new port
    /// without looking at the list (the common case for a scanner). A set bit means a repeat or a
    /// hash collision: the exact list, searched newest first (retransmissions repeat a recent
    /// port), tells them apart while it has room.
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
            if in_bitmap && listed(&self.ports, n, port) {
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

    fn note_sport(&mut self, port: u16) {
        let n = self.nsports as usize;
        if n >= LOGGED_SPORTS || listed(&self.sports, n, port) {
            return;
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
    pub fn record_packets(
        &mut self,
        now: u64,
        dport: u16,
        sport: u16,
        bytes: u32,
        threshold: u32,
        window_ns: u64,
    ) -> bool {
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

/// Whether `port` is among the first `n` entries of `list`: every entry compared, at a constant
/// index, with no jump ([`flat`]). A loop that stopped at `n` became, in LLVM's hands, a pointer
/// walked by a counter whose bound kernel 6.1's verifier could not see ("invalid access to map
/// value, off=256"); the whole list is a few dozen instructions.
#[inline(always)]
fn listed<const N: usize>(list: &[u16; N], n: usize, port: u16) -> bool {
    const { assert!(N < 64) };
    // Bit i: entry i is in use.
    let used = (1u64 << (n & 63)).wrapping_sub(1);
    let mut found = 0;
    for (i, p) in list.iter().enumerate() {
        found |= flat::eq(*p as u64, port as u64) & (used >> i);
    }
    found & 1 != 0
}

/// Multiplicative hash spreading ports over the bitmap (Knuth's constant).
fn port_hash(port: u16) -> u32 {
    (port as u32).wrapping_mul(2_654_435_761) >> 16
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for SourceKey {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for SourceState {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for ProbeSet {}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::{vec, vec::Vec};

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
    fn probation_then_admission_equals_tracking_from_the_first_packet() {
        let key = SourceKey::new([198, 18, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 4, Detection::SynScan);
        let window = 50_000_000_000;
        let (threshold, sport) = (3, 40000);
        // Three packets to port 22 (a retransmission, another source port), then 80, 443, 8080.
        let trace = [
            (10, 22, sport, 40),
            (20, 22, sport + 1, 40),
            (25, 22, sport, 44),
            (30, 80, sport, 40),
            (40, 443, sport, 40),
            (50, 8080, sport, 40),
        ];
        let mut direct = SourceState::new(10);
        let mut crossed_direct = vec![];
        for (t, dport, sport, bytes) in trace {
            crossed_direct.push(direct.record_ports(t, dport, sport, bytes, threshold));
        }
        let mut set = ProbeSet::default();
        let tag = ProbeSet::place(&key, 7).tag;
        let mut state: Option<SourceState> = None;
        let mut crossed = vec![];
        for (t, dport, sport, bytes) in trace {
            if let Some(s) = state.as_mut() {
                crossed.push(s.record_ports(t, dport, sport, bytes, threshold));
            } else if !set.holds(0, &key, t, window) {
                set.start(0, &key, tag, t, dport, sport, bytes);
                crossed.push(false);
            } else if set.ways[0].dport == dport {
                set.add(0, t, bytes);
                crossed.push(false);
            } else {
                let mut s = SourceState::new(0);
                s.admit(&set.ways[0], set.last_ns[0]);
                set.clear(0);
                crossed.push(s.record_ports(t, dport, sport, bytes, threshold));
                state = Some(s);
            }
        }
        assert_eq!(crossed, crossed_direct);
        let s = state.expect("admitted");
        assert_eq!(
            (s.first_ns, s.last_ns, s.packets, s.bytes, s.distinct),
            (direct.first_ns, direct.last_ns, direct.packets, direct.bytes, direct.distinct)
        );
        assert_eq!((s.ports, s.nports, s.mode_since_ns), (direct.ports, direct.nports, direct.mode_since_ns));
        // The one difference: a source port seen only on a repeat during probation is not listed.
        assert_eq!(&s.sports[..s.nsports as usize], &[sport]);
        assert_eq!(&direct.sports[..direct.nsports as usize], &[sport, sport + 1]);
        assert!(!set.holds(0, &key, 60, window), "cleared on admission");
    }

    /// The floods: admitted on the second packet, with the same rate window and totals as a
    /// state opened by the first.
    #[test]
    fn flood_probation_then_admission_equals_tracking_from_the_first_packet() {
        let key = SourceKey::new([198, 18, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 4, Detection::PingFlood);
        let (threshold, window) = (5, 1_000);
        let times = [100u64, 300, 500, 700, 900, 1_200, 1_250, 1_300, 1_350, 1_400];
        let mut direct = SourceState::new(times[0]);
        let crossed_direct: Vec<bool> =
            times.iter().map(|t| direct.record_packets(*t, 0, 0, 64, threshold, window)).collect();
        let mut set = ProbeSet::default();
        set.start(3, &key, 1, times[0], 0, 0, 64);
        assert!(set.holds(3, &key, times[1], window));
        let mut s = SourceState::new(0);
        s.admit(&set.ways[3], set.last_ns[3]);
        let mut crossed = vec![false];
        crossed.extend(times[1..].iter().map(|t| s.record_packets(*t, 0, 0, 64, threshold, window)));
        assert_eq!(crossed, crossed_direct);
        assert_eq!(s, direct);
    }

    #[test]
    fn probation_way_holds_one_key_within_its_window() {
        let a = SourceKey::new([198, 18, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 4, Detection::SynScan);
        let b = SourceKey { kind: Detection::PortScan as u8, ..a };
        let mut p = ProbeSet::default();
        assert!(!p.holds(0, &a, 0, 10), "an empty way holds nothing, not even the zero key");
        assert!(!p.holds(0, &SourceKey::default(), 0, 10));
        p.start(0, &a, 1, 100, 22, 1000, 40);
        assert!(p.holds(0, &a, 110, 10) && !p.holds(0, &a, 111, 10) && !p.holds(0, &b, 100, 10));
        p.start(0, &b, 1, 105, 23, 1000, 40);
        assert!(p.holds(0, &b, 105, 10) && !p.holds(0, &a, 105, 10), "taken over");
        p.clear(0);
        assert!(!p.holds(0, &b, 105, 10), "freed");
        // Sets spread: 4,096 consecutive IPv4 sources fall into most of 4,096 distinct sets,
        // and another seed moves them.
        let mut used = std::collections::BTreeSet::new();
        let mut moved = 0;
        for i in 0..4096u32 {
            let mut addr = [0u8; 16];
            addr[..4].copy_from_slice(&(0xc612_0000 + i).to_be_bytes());
            let key = SourceKey::new(addr, 4, Detection::SynScan);
            let place = ProbeSet::place(&key, 7);
            assert!(place.set < PROBATION_SETS && place.tag != 0 && place.bit < 128);
            used.insert(place.set);
            moved += u32::from(place.set != ProbeSet::place(&key, 8 << 32).set);
        }
        assert!(used.len() > 3_000, "{} distinct sets", used.len());
        assert!(moved > 4_000, "{moved} moved by another seed");
    }

    #[test]
    fn key_words_round_trip() {
        let k = SourceKey::new([0x20, 1, 0xd, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 6, Detection::UdpFlood);
        assert_eq!(SourceKey::from_words(k.words()), k);
    }

    #[test]
    fn probation_ways_keep_colliding_keys_side_by_side() {
        let key = |i: u8| SourceKey::new([198, 18, 0, i, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 4, Detection::SynScan);
        let tag = |k: &SourceKey| ProbeSet::place(k, 7).tag;
        let choose = |set: &ProbeSet, k: &SourceKey, now| set.choose_words(&k.words(), tag(k), now, 10_000);
        let (window, now) = (10_000, 100_000);
        let mut set = ProbeSet::default();
        // Two keys that share a set take two ways and each finds its own again.
        for (i, k) in [key(1), key(2)].iter().enumerate() {
            assert_eq!(choose(&set, k, now), (i as u32, false));
            set.start(i, k, tag(k), now + i as u64, 80, 1000, 40);
        }
        assert_eq!(choose(&set, &key(1), now + 5), (0, true));
        assert_eq!(choose(&set, &key(2), now + 5), (1, true));
        // A tag alone is not the key: another key with key 1's tag is not held.
        assert_eq!(set.choose_words(&key(9).words(), tag(&key(1)), now + 5, window), (2, false));
        // A full set: a lapsed way first, a free one likewise; else one picked by clock and key.
        set.start(2, &key(3), tag(&key(3)), now - 3, 80, 1000, 40);
        set.start(3, &key(4), tag(&key(4)), now + 2, 80, 1000, 40);
        let picked: std::collections::BTreeSet<u32> = (0..64)
            .map(|t| choose(&set, &key(5), now + t))
            .map(|(w, held)| {
                assert!(!held);
                w
            })
            .collect();
        assert_eq!(picked.len(), 4, "every way can be replaced: {picked:?}");
        set.start(1, &key(2), tag(&key(2)), now - window - 1, 80, 1000, 40);
        assert_eq!(choose(&set, &key(5), now + 5), (1, false));
        set.clear(0);
        assert_eq!(choose(&set, &key(5), now + 5), (0, false));
        // In a full set, one source's keys of detections 0 and 1 (a SYN's port scan and SYN
        // scan, should they share a set) pick different ways at the same instant.
        set.start(0, &key(1), tag(&key(1)), now, 80, 1000, 40);
        set.start(1, &key(2), tag(&key(2)), now, 80, 1000, 40);
        let kind = |d| SourceKey::new(key(6).addr, 4, d);
        for t in 0..16 {
            let a = choose(&set, &kind(Detection::PortScan), now + t);
            let b = choose(&set, &kind(Detection::SynScan), now + t);
            assert!(!a.1 && !b.1);
            assert_ne!(a.0, b.0, "at {t}");
        }
    }

    /// Random traffic from a few keys through one set, as the program runs it (hold: count or
    /// admit; else start), with windows lapsing now and then: a key is held by one way at most,
    /// a held way's record is the key's own, and a free way holds nothing.
    #[test]
    fn a_set_holds_each_key_once_under_random_traffic() {
        let keys: Vec<SourceKey> = (0..7u8)
            .map(|i| {
                let d = if i % 2 == 0 { Detection::PortScan } else { Detection::SynScan };
                SourceKey::new([198, 18, 0, i / 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 4, d)
            })
            .collect();
        let window = 1_000;
        let mut set = ProbeSet::default();
        let (mut rng, mut now) = (0x9e37_79b9_7f4a_7c15u64, 10_000u64);
        let (mut admitted, mut counted, mut started) = (0, 0, 0);
        for _ in 0..100_000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let key = &keys[(rng % keys.len() as u64) as usize];
            now += (rng >> 8) % 300;
            let dport = ((rng >> 20) % 3) as u16;
            let place = ProbeSet::place(key, 7);
            let (way, held) = set.choose(key, &place, now, window);
            let w = way as usize;
            if held {
                assert_eq!((set.tags[w], set.ways[w].key), (place.tag, *key));
                if set.ways[w].dport == dport {
                    let before = set.ways[w].packets;
                    set.add(w, now, 40);
                    assert_eq!(set.ways[w].packets, before + 1);
                    counted += 1;
                } else {
                    set.clear(w);
                    admitted += 1;
                }
            } else {
                set.start(w, key, place.tag, now, dport, 1, 40);
                started += 1;
            }
            for k in &keys {
                let holding = (0..4).filter(|i| set.holds(*i, k, now, window)).count();
                assert!(holding <= 1, "{k:?} held by {holding} ways");
            }
            for i in 0..4 {
                if set.tags[i] == 0 {
                    assert!(keys.iter().all(|k| !set.holds(i, k, now, window)));
                }
            }
        }
        assert!(admitted > 1_000 && counted > 1_000 && started > 1_000, "{admitted} {counted} {started}");
    }

    #[test]
    fn held_ways_are_the_ones_inside_their_detections_window() {
        let key = |i: u8, d| SourceKey::new([198, 18, 0, i, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 4, d);
        let window = |kind: u8| if kind == Detection::PingFlood as u8 { 60 } else { 10 };
        let mut set = ProbeSet::default();
        assert_eq!(set.held(0, window), 0);
        set.start(0, &key(1, Detection::SynScan), 5, 100, 80, 1, 40);
        set.start(2, &key(2, Detection::PingFlood), 7, 100, 0, 0, 64);
        assert_eq!(set.held(110, window), 2);
        assert_eq!(set.held(111, window), 1, "the scan's window lapsed, the flood's not");
        assert_eq!(set.held(161, window), 0);
        set.clear(2);
        assert_eq!(set.held(100, window), 1, "an admitted key's way is free");
    }

    #[test]
    fn admission_filter_bits_spread_and_survive_probation_changes() {
        let seed = 0x0123_4567_89ab_cdef;
        let key = |i: u32| {
            SourceKey::new(
                [198, 18, (i >> 8) as u8, i as u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                4,
                Detection::SynScan,
            )
        };
        // Keys of one set: their bits are spread, not tied to the set.
        let first = ProbeSet::place(&key(0), seed).set;
        let same_set: Vec<u32> = (0..65_536).filter(|i| ProbeSet::place(&key(*i), seed).set == first).collect();
        assert!(same_set.len() >= 2, "{}", same_set.len());
        let bits: std::collections::BTreeSet<u32> = (0..20_000).map(|i| ProbeSet::place(&key(i), seed).bit).collect();
        assert_eq!(bits.len(), 128, "every bit of a set is used");
        let in_set: std::collections::BTreeSet<u32> =
            same_set.iter().map(|i| ProbeSet::place(&key(*i), seed).bit).collect();
        assert!(in_set.len() > 1 || same_set.len() < 3, "{same_set:?} {in_set:?}");
        // Tags of one set's keys differ (a shared tag only costs a read of the way's key).
        let tags: std::collections::BTreeSet<u32> =
            same_set.iter().map(|i| ProbeSet::place(&key(*i), seed).tag).collect();
        assert_eq!(tags.len(), same_set.len());
        // A bit is found in its word, and only its own.
        let mut set = ProbeSet::default();
        let b = ProbeSet::place(&key(7), seed).bit;
        assert!(!set.has_filter_bit(b));
        set.set_filter_bit(b);
        assert!(set.has_filter_bit(b));
        assert_eq!((0..128).filter(|x| set.has_filter_bit(*x)).count(), 1);
        // Probation coming and going in the set keeps the bits.
        for w in 0..4 {
            set.start(w, &key(9), 9, 5, 80, 1000, 40);
            set.add(w, 6, 40);
            set.clear(w);
        }
        assert!(set.has_filter_bit(b));
        // The seed entry's fields are its own.
        set.set_seed(42, filter::ON);
        assert_eq!((set.seed(), set.filter_state()), (42, filter::ON));
        // Another seed, another bit (for most keys).
        let moved = (0..64)
            .filter(|i| ProbeSet::place(&key(*i), seed).bit != ProbeSet::place(&key(*i), seed ^ 1 << 40).bit)
            .count();
        assert!(moved > 48, "{moved}");
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
