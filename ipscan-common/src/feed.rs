//! Threat feeds: named sets of prefixes (`ipscan block import`), blocked like the prefixes blocked
//! by hand but kept in tries of their own, so that a set of a million prefixes can be replaced
//! at once.
//!
//! Each family has two tries, A and B. FEEDCTL's [`ctl::LIVE`] word says which one the program
//! reads; both hold the union of every set, each prefix with the bits of the sets that list it.
//! An import writes the changed prefixes into the other trie, flips the word (a packet sees the
//! old sets or the new ones, never half of a change), then makes the same change to the trie it
//! left, so that both agree again. FEEDSETS names the sets (user space only); FEEDDROPS counts
//! the drops of each set on each CPU.

/// Sets at most (a prefix's value holds one bit per set).
pub const SETS: u32 = 64;
/// Prefixes in each IPv4 trie.
pub const V4_MAX: u32 = 1 << 21;
/// Prefixes in each IPv6 trie.
pub const V6_MAX: u32 = 1 << 18;
/// Longest set name, in bytes.
pub const NAME_MAX: usize = 31;
/// Longest source (file name) kept for a set, in bytes.
pub const SOURCE_MAX: usize = 95;

/// FEEDCTL's slots.
pub mod ctl {
    /// Which trie of each family the program reads: 0 (A) or 1 (B).
    pub const LIVE: u32 = 0;
    /// Not zero while the two tries may differ (an import between its flip and its catch-up);
    /// the next import makes the other trie agree with the live one first.
    pub const UNEVEN: u32 = 1;
    /// Slots.
    pub const SLOTS: u32 = 2;
}

/// The value of a prefix in a feed trie: the sets that list it, and the first of them (its
/// drops are counted there).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeedEntry {
    /// Bit `i`: set `i` lists the prefix.
    pub sets: u64,
    /// The lowest bit of `sets`.
    pub first: u32,
    pub _pad: u32,
}

const _: () = assert!(size_of::<FeedEntry>() == 16);

impl FeedEntry {
    /// The entry of a prefix listed by `sets` (none: None, the prefix goes).
    pub fn of(sets: u64) -> Option<Self> {
        (sets != 0).then(|| Self { sets, first: sets.trailing_zeros(), _pad: 0 })
    }
}

/// One set, as FEEDSETS holds it (a slot whose name is empty is free).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeedSet {
    /// The name, NUL-padded.
    pub name: [u8; NAME_MAX + 1],
    /// IPv4 and IPv6 prefixes in the set.
    pub v4: u32,
    pub v6: u32,
    /// When it was imported, Unix nanoseconds.
    pub loaded_unix_ns: u64,
    /// CLOCK_MONOTONIC at which it lapses; zero: never.
    pub expires_ns: u64,
    /// Where it was imported from, NUL-padded (cut to fit).
    pub source: [u8; SOURCE_MAX + 1],
}

const _: () = assert!(size_of::<FeedSet>() == 152);

impl FeedSet {
    pub const EMPTY: Self =
        Self { name: [0; NAME_MAX + 1], v4: 0, v6: 0, loaded_unix_ns: 0, expires_ns: 0, source: [0; SOURCE_MAX + 1] };

    pub fn is_free(&self) -> bool {
        self.name[0] == 0
    }
}

/// One set's drops on one CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeedDrops {
    pub packets: u64,
    pub bytes: u64,
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for FeedEntry {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for FeedSet {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for FeedDrops {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_counts_its_drops_in_its_lowest_set() {
        assert_eq!(FeedEntry::of(0), None);
        assert_eq!(FeedEntry::of(0b1010).map(|e| e.first), Some(1));
        assert_eq!(FeedEntry::of(1 << 63).map(|e| e.first), Some(63));
    }
}
