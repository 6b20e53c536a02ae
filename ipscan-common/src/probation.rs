//! Probation: where a source waits, in a set-associative array (PROBATION), until a second port
//! (a second packet, for floods) shows it is worth a SOURCES entry, and the admission filter that
//! tells the program which sources may have one.

use crate::window::{SourceKey, SourceState};

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
    /// of placement must take a new value, so that pins from the old one are rebuilt: 1 was
    /// the placement of the whole key by one hash, 2 the set by the address.
    pub const ON: u32 = 2;
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
    /// Sweeps: the word of the destination address its fold does not keep whole
    /// ([`crate::sweep::host_word`]), to name the first host; zero for the others.
    pub host_word: u32,
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

/// What one packet gives the window it counts in: the distinct value (the destination port of a
/// scan, the [`crate::sweep::fold`] of a sweep's destination), the other port logged with it (a
/// scan's source port, a sweep's destination port) and, for a sweep, the word of the
/// destination that names its host ([`crate::sweep::host_word`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counted {
    pub value: u16,
    pub other: u16,
    pub host_word: u32,
}

impl Counted {
    /// A scan's packet: its destination port counted, its source port logged.
    #[inline(always)]
    pub const fn ports(dport: u16, sport: u16) -> Self {
        Self { value: dport, other: sport, host_word: 0 }
    }
}

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

impl ProbeSet {
    /// Where a key lives, under the array's hash seed: the set from a hash of the address and
    /// family alone, so that the keys of one address (a SYN's port scan and SYN scan, a UDP
    /// datagram's scan and flood, a target's distributed flood and scan) share a set, and a new
    /// source's packet reads one set's first line however many detections it counts toward; the
    /// filter bit and the tag from that hash mixed with the key's last word (its detection).
    #[inline(always)]
    pub fn place(key: &SourceKey, seed: u64) -> Place {
        Self::place_words(&key.words(), seed)
    }

    /// [`ProbeSet::place`] for a key given as its [`SourceKey::words`].
    #[inline(always)]
    pub fn place_words(words: &[u32; 5], seed: u64) -> Place {
        let family = words[4] & u32::from_ne_bytes([0xff, 0, 0, 0]);
        let h = crate::block::autoblock::keyed_hash(&[words[0], words[1], words[2], words[3], family], seed);
        let mut k = (h ^ words[4] as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        k ^= k >> 29;
        Place { set: (h >> 32) as u32 & (PROBATION_SETS - 1), bit: (k >> 8) as u32 & 127, tag: k as u32 | 1 }
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
        self.choose_words(&key.words(), place.tag, now, window_ns)
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
        self.holds_words(i, &key.words(), now, window_ns)
    }

    /// [`ProbeSet::holds`] for a key given as its [`SourceKey::words`].
    #[inline(always)]
    pub fn holds_words(&self, i: usize, w: &[u32; 5], now: u64, window_ns: u64) -> bool {
        let i = i & (PROBATION_WAYS as usize - 1);
        self.tags[i] != 0
            && crate::block::same_words(&self.ways[i].key.words(), w)
            && now.saturating_sub(self.last_ns[i]) <= window_ns
    }

    /// Starts `key`'s probation in way `i` with one packet (taking the way over).
    #[inline(always)]
    pub fn start(&mut self, i: usize, key: &SourceKey, tag: u32, now: u64, counted: Counted, bytes: u32) {
        let i = i & (PROBATION_WAYS as usize - 1);
        let w = &mut self.ways[i];
        w.key = *key;
        w.dport = counted.value;
        w.sport = counted.other;
        w.host_word = counted.host_word;
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

impl SourceState {
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
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for ProbeSet {}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::classify::Detection;
    use std::{vec, vec::Vec};

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
                set.start(0, &key, tag, t, Counted::ports(dport, sport), bytes);
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
        set.start(3, &key, 1, times[0], Counted::ports(0, 0), 64);
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
        p.start(0, &a, 1, 100, Counted::ports(22, 1000), 40);
        assert!(p.holds(0, &a, 110, 10) && !p.holds(0, &a, 111, 10) && !p.holds(0, &b, 100, 10));
        p.start(0, &b, 1, 105, Counted::ports(23, 1000), 40);
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
    fn probation_ways_keep_colliding_keys_side_by_side() {
        let key = |i: u8| SourceKey::new([198, 18, 0, i, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 4, Detection::SynScan);
        let tag = |k: &SourceKey| ProbeSet::place(k, 7).tag;
        let choose = |set: &ProbeSet, k: &SourceKey, now| set.choose_words(&k.words(), tag(k), now, 10_000);
        let (window, now) = (10_000, 100_000);
        let mut set = ProbeSet::default();
        // Two keys that share a set take two ways and each finds its own again.
        for (i, k) in [key(1), key(2)].iter().enumerate() {
            assert_eq!(choose(&set, k, now), (i as u32, false));
            set.start(i, k, tag(k), now + i as u64, Counted::ports(80, 1000), 40);
        }
        assert_eq!(choose(&set, &key(1), now + 5), (0, true));
        assert_eq!(choose(&set, &key(2), now + 5), (1, true));
        // A tag alone is not the key: another key with key 1's tag is not held.
        assert_eq!(set.choose_words(&key(9).words(), tag(&key(1)), now + 5, window), (2, false));
        // A full set: a lapsed way first, a free one likewise; else one picked by clock and key.
        set.start(2, &key(3), tag(&key(3)), now - 3, Counted::ports(80, 1000), 40);
        set.start(3, &key(4), tag(&key(4)), now + 2, Counted::ports(80, 1000), 40);
        let picked: std::collections::BTreeSet<u32> = (0..64)
            .map(|t| choose(&set, &key(5), now + t))
            .map(|(w, held)| {
                assert!(!held);
                w
            })
            .collect();
        assert_eq!(picked.len(), 4, "every way can be replaced: {picked:?}");
        set.start(1, &key(2), tag(&key(2)), now - window - 1, Counted::ports(80, 1000), 40);
        assert_eq!(choose(&set, &key(5), now + 5), (1, false));
        set.clear(0);
        assert_eq!(choose(&set, &key(5), now + 5), (0, false));
        // In a full set, one source's keys of detections 0 and 1 (a SYN's port scan and SYN
        // scan, should they share a set) pick different ways at the same instant.
        set.start(0, &key(1), tag(&key(1)), now, Counted::ports(80, 1000), 40);
        set.start(1, &key(2), tag(&key(2)), now, Counted::ports(80, 1000), 40);
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
                set.start(w, key, place.tag, now, Counted::ports(dport, 1), 40);
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
        set.start(0, &key(1, Detection::SynScan), 5, 100, Counted::ports(80, 1), 40);
        set.start(2, &key(2, Detection::PingFlood), 7, 100, Counted::ports(0, 0), 64);
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
            set.start(w, &key(9), 9, 5, Counted::ports(80, 1000), 40);
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
    fn the_keys_of_one_address_share_a_set_with_their_own_tags_and_bits() {
        let seed = 0x0123_4567_89ab_cdef;
        let addr = |i: u32| [198, 18, (i >> 8) as u8, i as u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let (mut tags_apart, mut bits_apart, mut sets) = (0, 0, std::collections::BTreeSet::new());
        for i in 0..1_000 {
            let places: Vec<Place> = crate::classify::DETECTIONS
                .iter()
                .map(|d| ProbeSet::place(&SourceKey::new(addr(i), 4, *d), seed))
                .collect();
            // A new source's packet reads one set's first line whatever it counts toward.
            assert!(places.iter().all(|p| p.set == places[0].set), "{places:?}");
            sets.insert(places[0].set);
            let tags: std::collections::BTreeSet<u32> = places.iter().map(|p| p.tag).collect();
            let bits: std::collections::BTreeSet<u32> = places.iter().map(|p| p.bit).collect();
            tags_apart += (tags.len() == places.len()) as u32;
            bits_apart += bits.len() as u32;
        }
        // The addresses spread over the sets; the detections of one do not share a tag, and
        // seldom a filter bit (16 keys of 128 bits: a shared bit only costs a SOURCES lookup).
        assert!(sets.len() > 950, "{}", sets.len());
        assert_eq!(tags_apart, 1_000);
        assert!(bits_apart > 1_000 * 14, "{bits_apart}");
        // The family is part of the set's hash: an IPv4 address and the IPv6 one of the same
        // bytes go apart.
        let v4 = ProbeSet::place(&SourceKey::new(addr(1), 4, Detection::PortScan), seed).set;
        let v6 = ProbeSet::place(&SourceKey::new(addr(1), 6, Detection::PortScan), seed).set;
        assert_ne!(v4, v6);
    }
}
