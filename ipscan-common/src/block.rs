//! Blocklist, auto-block and allowlist entries.

use crate::{Detection, FAMILY_V4};

/// Value of BLOCK4, BLOCK6 and AUTOBLOCK entries.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockEntry {
    /// Kernel clock after which the entry no longer blocks; zero: never expires.
    pub expires_ns: u64,
    /// Kernel clock when the entry was made.
    pub added_ns: u64,
    /// Packets dropped because of this entry.
    pub packets: u64,
    /// IP payload bytes dropped because of this entry.
    pub bytes: u64,
    /// Kernel clock of the last dropped packet.
    pub last_ns: u64,
    /// 0: added by hand (CLI, restore); [`BlockEntry::CROWDSEC`]: a CrowdSec decision;
    /// otherwise 1 + the [`Detection`] that triggered it.
    pub reason: u8,
    pub _pad: [u8; 7],
}
const _: () = assert!(core::mem::size_of::<BlockEntry>() == 48);

impl BlockEntry {
    /// [`BlockEntry::reason`] of a block made for a CrowdSec decision (`crowdsec bouncer`).
    pub const CROWDSEC: u8 = 0xc5;

    pub fn manual(now: u64, ttl_ns: u64) -> Self {
        Self {
            expires_ns: if ttl_ns == 0 { 0 } else { now.saturating_add(ttl_ns) },
            added_ns: now,
            ..Default::default()
        }
    }

    /// Whether the entry still blocks at `now`.
    pub fn active(&self, now: u64) -> bool {
        self.expires_ns == 0 || now < self.expires_ns
    }

    pub fn detection(&self) -> Option<Detection> {
        self.reason.checked_sub(1).and_then(Detection::from_u8)
    }
}

/// The data of a BLOCK4 key: the IPv4 address, then four zero bytes (prefix lengths stay at
/// most 32). The kernel's LPM trie keeps a value right after its key's data in a node that
/// starts 8-aligned; after 4 bytes of data a [`BlockEntry`] sat 4 bytes off an 8-byte boundary,
/// and the program's locked 8-byte adds to its drop counters straddled a cache line for about
/// one node in two: a split lock, which locks the memory bus and in a virtual machine traps to
/// the hypervisor (77 us per dropped packet measured, against 45-50 ns). With 8 bytes of data
/// the value is 8-aligned, as BLOCK6's (16 bytes of data) always was.
pub type Block4Data = [u8; 8];

// The data sizes of BLOCK4 and BLOCK6 keys keep their values 8-aligned.
const _: () = assert!(size_of::<Block4Data>().is_multiple_of(8) && size_of::<[u8; 16]>().is_multiple_of(8));

/// [`Block4Data`] of an IPv4 address.
#[inline(always)]
pub fn block4_data(a: [u8; 4]) -> Block4Data {
    [a[0], a[1], a[2], a[3], 0, 0, 0, 0]
}

/// An exact address (AUTOBLOCK slots, PKTRATE keys). 4-aligned so that the program reads and
/// compares it in 32-bit words (the BPF backend assembles an unaligned word from four byte
/// loads).
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AddrKey {
    pub addr: [u8; 16],
    pub family: u8,
    pub _pad: [u8; 3],
}
const _: () = assert!(core::mem::size_of::<AddrKey>() == 20);

impl AddrKey {
    pub fn new(addr: [u8; 16], family: u8) -> Self {
        let mut k = Self { addr, family, _pad: [1; 3] };
        // Volatile: a 3-byte zero store is a `memset` call for the BPF backend (a subprogram
        // call and a byte loop per key built).
        crate::zero::fill(&mut k._pad, 0);
        k
    }

    pub fn v4(a: [u8; 4]) -> Self {
        let mut addr = [0u8; 16];
        addr[..4].copy_from_slice(&a);
        Self::new(addr, FAMILY_V4)
    }

    /// The key as five 32-bit words (four of address, then the family), for hashing and
    /// comparing without a `memcmp` call in the BPF backend: word loads of the 4-aligned key
    /// (built from its bytes, each word is four loads and three shifts the kernel's stack then
    /// spills).
    #[inline(always)]
    pub fn words(&self) -> [u32; 5] {
        const _: () = assert!(align_of::<AddrKey>() >= 4 && core::mem::offset_of!(AddrKey, family) == 16);
        // SAFETY: the key is 20 bytes, 4-aligned, all initialised (its padding is a field).
        let w = unsafe { &*(self as *const Self).cast::<[u32; 5]>() };
        // The family alone: the padding of a key made elsewhere need not be zero.
        [w[0], w[1], w[2], w[3], self.family as u32]
    }
}

/// Whether two keys given as five words are equal, compared without branches or a `memcmp`
/// call in the BPF backend (AUTOBLOCK slots, PROBATION probes).
#[inline(always)]
pub(crate) fn same_words(a: &[u32; 5], b: &[u32; 5]) -> bool {
    (a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4]) == 0
}

/// One way of the AUTOBLOCK table: an exact address and its block. Empty while `key.family` is
/// zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AutoSlot {
    pub key: AddrKey,
    pub _pad: [u8; 4],
    pub entry: BlockEntry,
}
const _: () = assert!(core::mem::size_of::<AutoSlot>() == 72);

impl AutoSlot {
    pub fn is_empty(&self) -> bool {
        self.key.family == 0
    }

    /// Whether the slot holds `key` (word by word: no `memcmp` call in the BPF backend).
    #[inline(always)]
    pub fn holds(&self, key: &AddrKey) -> bool {
        self.holds_words(&key.words())
    }

    /// [`AutoSlot::holds`] for a key given as its [`AddrKey::words`].
    #[inline(always)]
    pub fn holds_words(&self, b: &[u32; 5]) -> bool {
        // SAFETY: the key is the slot's first 24 bytes, 8-aligned with the slot, all initialised
        // (its padding is fields): read as u32 words, not byte by byte.
        let a = unsafe { &*(self as *const Self).cast::<[u32; 6]>() };
        same_words(&[a[0], a[1], a[2], a[3], self.key.family as u32], b) && b[4] != 0
    }

    /// The first of the key's [`AddrKey::words`], read as one word.
    #[inline(always)]
    pub fn key0(&self) -> u32 {
        // SAFETY: as in holds_words.
        unsafe { (*(self as *const Self).cast::<[u32; 6]>())[0] }
    }

    /// Writes a block into a slot that other CPUs (and user space, through mmap) may be reading:
    /// the entry first, then the key, in word-sized volatile stores (no `memcpy` call, no
    /// merged stores), so a reader that sees the key sees its entry.
    ///
    /// # Safety
    /// `dst` points to a writable, 8-aligned AutoSlot (an array map value or its mmap).
    #[inline(always)]
    pub unsafe fn store(dst: *mut AutoSlot, key: &AddrKey, entry: &BlockEntry) {
        // SAFETY: per the contract; BlockEntry is 6 u64 words, the key 5 u32 words + padding.
        unsafe {
            let e = (&raw mut (*dst).entry).cast::<u64>();
            let src = (entry as *const BlockEntry).cast::<u64>();
            for i in 0..6 {
                core::ptr::write_volatile(e.add(i), core::ptr::read_unaligned(src.add(i)));
            }
            let k = dst.cast::<u32>();
            core::ptr::write_volatile(k.add(5), 0);
            for (i, w) in key.words().into_iter().enumerate() {
                core::ptr::write_volatile(k.add(i), w);
            }
        }
    }

    /// Empties a slot: the key first, so no reader matches it while the entry is cleared.
    ///
    /// # Safety
    /// As for [`AutoSlot::store`].
    pub unsafe fn clear(dst: *mut AutoSlot) {
        // SAFETY: per the contract.
        unsafe {
            let k = dst.cast::<u32>();
            core::ptr::write_volatile(k.add(4), 0);
            for i in 0..4 {
                core::ptr::write_volatile(k.add(i), 0);
            }
            let e = (&raw mut (*dst).entry).cast::<u64>();
            for i in 0..6 {
                core::ptr::write_volatile(e.add(i), 0);
            }
        }
    }
}

/// One CPU's drops of one auto-block, counted with plain adds and not yet added to the block's
/// AUTOBLOCK entry (part of the program's per-CPU [`CpuLocal`] value).
///
/// The entry's counts are shared by every CPU, so a drop adds to them with atomic adds. On the
/// wire those were half of a blocked source's drop (perf, a one-source flood on the veth: the
/// instructions after the two `lock add`s took 48% of the program's samples; the atomics wait
/// for the driver's stores before them to drain). A flood from one blocked source is the
/// common case, so each CPU counts the drops of one block here and adds them to the entry every
/// [`PendingDrops::FLUSH_AT`] drops; drops of other blocks meanwhile go to their entries
/// directly. User space adds what is pending for an entry whenever it reads one
/// ([`PendingDrops::pending_for`]), so the counts it shows and saves stay exact; a value whose
/// block is gone is dropped by the CPU's next drop of another block.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PendingDrops {
    /// AUTOBLOCK slot + 1; zero: for no block.
    pub slot: u32,
    /// The blocked address's first key word ([`AddrKey::words`]): with `added_ns`, tells a
    /// later block in the same slot apart.
    pub key0: u32,
    /// The block's `added_ns`.
    pub added_ns: u64,
    pub packets: u64,
    pub bytes: u64,
}
const _: () = assert!(core::mem::size_of::<PendingDrops>() == 32);

/// What [`PendingDrops::add`] did with a drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pending {
    /// Counted in the CPU's pending value.
    Kept,
    /// Counted; these totals (the drop included) are to be added to the entry now.
    Flush { packets: u64, bytes: u64 },
    /// The pending value is another block's, still on: add this drop to its entry directly.
    Direct,
}

impl PendingDrops {
    /// Drops a CPU keeps before adding them to the entry.
    pub const FLUSH_AT: u64 = 32;

    /// Whether the value counts drops of the block in `slot` with this first key word and
    /// `added_ns`.
    #[inline(always)]
    pub fn is_for(&self, slot: u32, key0: u32, added_ns: u64) -> bool {
        self.slot == slot.wrapping_add(1) && self.key0 == key0 && self.added_ns == added_ns
    }

    /// Counts one drop of `bytes` of the block in `slot`. `owner_on` tells whether the block
    /// the value counts for is still in its slot (expired or not: user space counts its pending
    /// drops when it sweeps it); it is asked only when the value holds another block's drops.
    /// If that block is gone, its drops are forgotten (user space added them when it removed
    /// the block) and the value starts over for this one.
    #[inline(always)]
    pub fn add(
        &mut self,
        slot: u32,
        key0: u32,
        added_ns: u64,
        bytes: u32,
        owner_on: impl FnOnce(&Self) -> bool,
    ) -> Pending {
        if !self.is_for(slot, key0, added_ns) {
            if self.packets != 0 && owner_on(self) {
                return Pending::Direct;
            }
            self.slot = slot.wrapping_add(1);
            self.key0 = key0;
            self.added_ns = added_ns;
            // Volatile: LLVM merges the two zero stores into a `memset` call, a global function
            // of its own for the verifier.
            crate::zero::put(&mut self.packets, 0);
            crate::zero::put(&mut self.bytes, 0);
        }
        self.packets += 1;
        self.bytes += bytes as u64;
        if self.packets < Self::FLUSH_AT {
            return Pending::Kept;
        }
        let out = Pending::Flush { packets: self.packets, bytes: self.bytes };
        crate::zero::put(&mut self.packets, 0);
        crate::zero::put(&mut self.bytes, 0);
        out
    }

    /// The (packets, bytes) that the CPUs' values hold for the block in `slot`.
    pub fn pending_for<'a>(
        values: impl IntoIterator<Item = &'a Self>,
        slot: u32,
        key0: u32,
        added_ns: u64,
    ) -> (u64, u64) {
        values
            .into_iter()
            .filter(|v| v.is_for(slot, key0, added_ns))
            .fold((0, 0), |(p, b), v| (p + v.packets, b + v.bytes))
    }
}

/// The program's per-CPU state (the CPU map's one value per CPU): the coarse clock read once per
/// tick, and the drops pending for one auto-block. One value, so that a drop looks both up at
/// once: the charge needs the clock anyway.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuLocal {
    /// jiffies when the clock below was read.
    pub tick_jiffies: u64,
    /// CLOCK_MONOTONIC_COARSE then.
    pub tick_ns: u64,
    pub pending: PendingDrops,
}

/// AUTOBLOCK is a set-associative table in a BPF array, not a hash map: finding an address is
/// a hash computed in the program and at most [`WAYS`] array reads, which the verifier inlines,
/// where a hash-map lookup is a kernel call (about 50 ns on the reference machine, more than
/// the whole budget of a blocked source's drop). Slot `set * WAYS + way`; the slot after the
/// last set, [`SEED_SLOT`], holds the hash seed in `entry.added_ns`, chosen at random by user
/// space while the table is empty, so that spoofed sources cannot aim at one set.
pub mod autoblock {
    use super::{AddrKey, AutoSlot};

    pub const WAYS: u32 = 4;
    pub const SETS: u32 = crate::maps::AUTOBLOCK_MAX / WAYS;
    pub const SEED_SLOT: u32 = SETS * WAYS;
    /// max_entries of the AUTOBLOCK array.
    pub const SLOTS: u32 = SEED_SLOT + 1;
    const _: () = assert!(SETS.is_power_of_two());

    /// The set of `key`: a multiply-xorshift hash of its words, keyed by `seed`.
    #[inline(always)]
    pub fn set_of(key: &AddrKey, seed: u64) -> u32 {
        set_of_words(&key.words(), seed)
    }

    /// [`set_of`] for a key given as its [`AddrKey::words`].
    #[inline(always)]
    pub fn set_of_words(w: &[u32; 5], seed: u64) -> u32 {
        keyed_set(w, seed, SETS)
    }

    /// The set, of `sets` (a power of two), of a key given as five words: a multiply-xorshift
    /// hash keyed by `seed`. Shared by AUTOBLOCK and PROBATION (`ProbeSet::place_words`).
    #[inline(always)]
    pub fn keyed_set(w: &[u32; 5], seed: u64, sets: u32) -> u32 {
        (keyed_hash(w, seed) >> 32) as u32 & (sets - 1)
    }

    /// Where a key goes in AUTOBLOCK: its set, and its tag in that set's AUTOTAGS word.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Place {
        pub set: u32,
        /// Sixteen other bits of the key's hash, never zero (zero: no key in the way).
        pub tag: u16,
    }

    /// [`Place`] of a key given as its [`AddrKey::words`]: the set is [`set_of_words`]'s.
    #[inline(always)]
    pub fn place_words(w: &[u32; 5], seed: u64) -> Place {
        let h = keyed_hash(w, seed);
        Place { set: (h >> 32) as u32 & (SETS - 1), tag: (h >> 8) as u16 | 1 }
    }

    /// The top bit of lane `way` (16 bits) of a set's tag word ([`tagged_ways`]).
    #[inline(always)]
    pub const fn way_bit(way: u32) -> u64 {
        0x8000 << (16 * way)
    }

    /// AUTOMARKS: one byte per [`crate::block::counts`] bucket (an IPv4 /16, a hashed IPv6 /32),
    /// eight to a value, not zero while a way may hold an address of the bucket, so that the
    /// program neither hashes nor reads the tags for a sender in an unmarked bucket. Marks may
    /// stay after their blocks went (one lookup more), never be missing while a block is held:
    /// every writer of a way (the program, a restore) stores [`MARKED`] before the way's tag and
    /// key and again after them; only user space takes marks away, through [`CLEARING`] (see
    /// `blocklist::AutoTable::unmark_unused`).
    pub const MARK_WORDS: u32 = crate::block::counts::SLOTS / 8;
    /// A bucket some way may hold an address of.
    pub const MARKED: u8 = 1;
    /// A mark user space is taking away; the program reads it as marked.
    pub const CLEARING: u8 = 2;

    /// The AUTOMARKS value and byte lane of a sender's bucket, from the first word of its
    /// address as loaded.
    #[inline(always)]
    pub fn mark_of(family: u8, w0: u32) -> (u32, u32) {
        let b = crate::block::counts::bucket(family, w0);
        (b / 8, b % 8)
    }

    /// Whether lane `lane` of an AUTOMARKS value (little-endian bytes) is not zero.
    #[inline(always)]
    pub fn marked(value: u64, lane: u32) -> bool {
        (value >> (8 * lane)) & 0xff != 0
    }

    /// Every [`way_bit`]: the ways to compare when the tag word cannot be read.
    pub const ALL_WAYS: u64 = 0x8000_8000_8000_8000;

    /// The ways of a set whose tag (16-bit lane `way` of its AUTOTAGS word `tags`) is `tag`, as
    /// [`way_bit`]s: every such way, perhaps with others (a lane above a matching one can come
    /// out set), never fewer; zero, the common answer for an address that is not blocked, says
    /// that no way holds it without reading one. Branch-free: the zero-lane test of the word
    /// `tags ^ tag x 4`.
    #[inline(always)]
    pub fn tagged_ways(tags: u64, tag: u16) -> u64 {
        const ONES: u64 = 0x0001_0001_0001_0001;
        let x = tags ^ (tag as u64).wrapping_mul(ONES);
        x.wrapping_sub(ONES) & !x & ALL_WAYS
    }

    /// The 64-bit multiply-xorshift hash behind [`keyed_set`], whose set takes its upper half;
    /// bits of its lower half are free for other uses (`ProbeSet::place_words`: filter bit, tag).
    #[inline(always)]
    pub fn keyed_hash(w: &[u32; 5], seed: u64) -> u64 {
        let mut h = seed ^ 0x243f_6a88_85a3_08d3;
        for v in [w[0] as u64 | (w[1] as u64) << 32, w[2] as u64 | (w[3] as u64) << 32, w[4] as u64] {
            h = (h ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            h ^= h >> 29;
        }
        h
    }

    /// What the choice of a way needs to know about one slot of a set: its place in
    /// [`choose`]'s order, as one word (the lowest is taken). Above bit 61, the class: 0 for
    /// the slot that holds the address being blocked, 1 for an empty slot, 2 for a block that
    /// has expired (user space has not swept it yet), 3 for a block still on; below, for
    /// classes 2 and 3, when the block was added (the oldest goes first).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Way {
        rank: u64,
    }

    /// Where [`Way`]'s class starts.
    const CLASS_SHIFT: u32 = 61;

    impl Way {
        /// Computed without a jump ([`crate::flat`]): the kernel places a block through four of
        /// these, and each jump would be paths for the verifier to walk.
        #[inline(always)]
        pub fn of(slot: &AutoSlot, key: &AddrKey, now: u64) -> Self {
            use crate::flat::{eq, lt, nonzero};
            let b = key.words();
            // SAFETY: as in `AutoSlot::holds_words`.
            let a = unsafe { &*(slot as *const AutoSlot).cast::<[u32; 6]>() };
            let differ =
                (a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (slot.key.family as u32 ^ b[4]);
            let same = (nonzero(differ as u64) ^ 1) & nonzero(b[4] as u64);
            let empty = eq(slot.key.family as u64, 0);
            let e = &slot.entry;
            let active = eq(e.expires_ns, 0) | lt(now, e.expires_ns);
            let class = (same ^ 1) * (1 + (empty ^ 1) * (1 + active));
            let age = e.added_ns & ((1 << CLASS_SHIFT) - 1);
            Self { rank: (class << CLASS_SHIFT) | (age * (class >> 1)) }
        }
    }

    /// Where a new block goes ([`choose`]).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Choice {
        pub way: u32,
        /// Taking the way gives up another address's block that is still on.
        pub gives_up_a_block: bool,
    }

    /// The way a new block of an address goes to: the one that already holds the address, else
    /// an empty one, else one whose block has expired (user space has not swept it yet), else
    /// the oldest block of the set (as an LRU map evicts when full); the first of equals.
    /// `way(i)` describes way `i`; `None` there (a slot that cannot be read) chooses nothing.
    /// The kernel and user space both place blocks with it; it keeps only the best rank so far
    /// (the kernel's stack is tight on that call chain), chosen without a jump.
    #[inline(always)]
    pub fn choose(mut way: impl FnMut(u32) -> Option<Way>) -> Option<Choice> {
        let mut pick = Pick::new(way(0)?);
        for i in 1..WAYS {
            pick.offer(i, way(i)?);
        }
        Some(pick.choice())
    }

    /// [`choose`] among the set's ways described beforehand.
    #[inline(always)]
    pub fn choose_among(ways: [Way; WAYS as usize]) -> Choice {
        let mut pick = Pick::new(ways[0]);
        for (i, w) in ways.iter().enumerate().skip(1) {
            pick.offer(i as u32, *w);
        }
        pick.choice()
    }

    /// [`choose`] one way at a time, in way order (the kernel offers the ways without a
    /// closure, which LLVM made a subprogram: one more frame on the deepest call chain).
    #[derive(Clone, Copy, Debug)]
    pub struct Pick {
        best: u64,
        rank: u64,
    }

    impl Pick {
        /// Way 0 taken.
        #[inline(always)]
        pub fn new(way0: Way) -> Self {
            Self { best: 0, rank: way0.rank }
        }

        /// Way `i` taken if it ranks strictly lower than the best so far.
        #[inline(always)]
        pub fn offer(&mut self, i: u32, w: Way) {
            let take = crate::flat::lt(w.rank, self.rank).wrapping_neg();
            self.rank ^= (w.rank ^ self.rank) & take;
            self.best ^= (i as u64 ^ self.best) & take;
        }

        #[inline(always)]
        pub fn choice(&self) -> Choice {
            Choice { way: self.best as u32, gives_up_a_block: self.rank >> CLASS_SHIFT == 3 }
        }
    }
}

/// Where the prefixes blocked by hand (BLOCK4, BLOCK6) and by feeds ([`crate::feed`]) lie,
/// coarsely: BLOCKCOUNTS holds for each IPv4 /16, and for each bucket of IPv6 /32s, how many of
/// those prefixes reach into it (a feed prefix once, whatever its sets and tries), so the
/// program makes its LPM lookup (a kernel call) only for a sender in a bucket whose count is not
/// zero. A count may be too high for a while (harmless: one lookup more), never too low: user
/// space adds to every bucket of a prefix before it inserts the prefix and takes away only after
/// it removed it, with atomic adds on the mmapped array (the daemon and the CLI write it; the
/// program only reads it).
pub mod counts {
    use crate::FAMILY_V4;

    /// IPv4 buckets: one per /16, indexed by the address's first two bytes read as a
    /// little-endian u16 (the low half of the first word the program loads).
    pub const V4_BUCKETS: u32 = 1 << 16;
    /// IPv6 buckets, after the IPv4 ones: a hash of the /32.
    pub const V6_BUCKETS: u32 = 1 << 16;
    /// Values of BLOCKCOUNTS.
    pub const SLOTS: u32 = V4_BUCKETS + V6_BUCKETS;

    /// The bucket of a sender, from the first word of its address as the program loads it
    /// (little-endian: `u32::from_le_bytes(addr[0..4])`).
    #[inline(always)]
    pub fn bucket(family: u8, w0: u32) -> u32 {
        if family == FAMILY_V4 { w0 & (V4_BUCKETS - 1) } else { V4_BUCKETS + (w0.wrapping_mul(0x9e37_79b1) >> 16) }
    }

    /// The buckets a prefix (address bytes, masked or not, and length) reaches into: one for an
    /// IPv4 prefix of /16 or longer and an IPv6 prefix of /32 or longer; every /16 of a shorter
    /// IPv4 prefix (up to 65,536); every IPv6 bucket for a shorter IPv6 prefix (rare: so the
    /// program reads one count per packet).
    pub fn buckets_of(family: u8, addr: &[u8; 16], len: u8) -> impl Iterator<Item = u32> + use<> {
        let v4 = family == FAMILY_V4;
        let w0 = u32::from_le_bytes([addr[0], addr[1], addr[2], addr[3]]);
        let one = (if v4 { len >= 16 } else { len >= 32 }).then(|| bucket(family, w0));
        let (first, n) = if v4 && len < 16 {
            // The /16s in a row, by their first 16 bits in network order.
            let base = u16::from_be_bytes([addr[0], addr[1]]) as u32 & !((1u32 << (16 - len)) - 1);
            (base, 1u32 << (16 - len))
        } else {
            (0, 0)
        };
        let every6 = if !v4 && len < 32 { V4_BUCKETS..SLOTS } else { 0..0 };
        // Bytes (a0, a1) in network order are bucket a0 | a1 << 8.
        one.into_iter().chain((first..first + n).map(|hi| (hi as u16).swap_bytes() as u32)).chain(every6)
    }
}

/// Bits of an allowlist entry's value: why the prefix is allowed (for `ipscan allow list`).
pub mod allow_reason {
    /// Added by the configuration or the CLI.
    pub const CONFIGURED: u32 = 1;
    /// One of the host's own addresses.
    pub const OWN_ADDRESS: u32 = 2;
    /// A default gateway.
    pub const GATEWAY: u32 = 4;
    /// A nameserver from /etc/resolv.conf.
    pub const NAMESERVER: u32 = 8;
    /// Added with `ipscan allow add` (kept across restarts).
    pub const MANUAL: u32 = 16;
    /// The ones the daemon works out at start and replaces on every start.
    pub const AUTOMATIC: u32 = CONFIGURED | OWN_ADDRESS | GATEWAY | NAMESERVER;
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for BlockEntry {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for AddrKey {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for AutoSlot {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for CpuLocal {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_ways_never_miss_a_way_with_the_tag() {
        use autoblock::*;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut extra = 0;
        for _ in 0..200_000 {
            let r = next();
            // Tags drawn from a few values, so that ways often share one.
            let lanes: [u16; 4] = core::array::from_fn(|i| [0, 1, 3, 0x8001, 0xffff][(r >> (8 * i)) as usize % 5]);
            let tags = lanes.iter().rev().fold(0u64, |t, l| t << 16 | *l as u64);
            let tag = [1, 3, 0x8001, 0xffff][(r >> 40) as usize % 4];
            let got = tagged_ways(tags, tag);
            assert_eq!(got & !ALL_WAYS, 0);
            for way in 0..WAYS {
                if lanes[way as usize] == tag {
                    assert_ne!(got & way_bit(way), 0, "way {way} of {tags:#018x} has tag {tag:#06x}");
                } else if got & way_bit(way) != 0 {
                    extra += 1;
                }
            }
            if !lanes.contains(&tag) {
                // A false positive needs a matching lane below it.
                assert_eq!(got, 0, "{tags:#018x} has no {tag:#06x}");
            }
        }
        assert!(extra < 20_000, "{extra} ways named without their tag");
        // Tags are never zero, and the set is set_of_words's.
        for i in 0..10_000u32 {
            let w = [i.wrapping_mul(0x9e37_79b9), i, 0, 7, 1];
            let p = place_words(&w, 42);
            assert_ne!(p.tag, 0);
            assert_eq!(p.set, set_of_words(&w, 42));
        }
    }

    #[test]
    fn every_address_of_a_prefix_is_in_one_of_its_buckets() {
        extern crate std;
        use counts::*;
        use std::{collections::BTreeSet, vec::Vec};
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let bucket_of = |family: u8, a: &[u8; 16]| bucket(family, u32::from_le_bytes([a[0], a[1], a[2], a[3]]));
        let within = |a: &[u8; 16], base: &[u8; 16], len: u8| {
            (0..len as usize).all(|i| (a[i / 8] ^ base[i / 8]) & (0x80 >> (i % 8)) == 0)
        };
        for round in 0..10_000 {
            let family = if round % 2 == 0 { crate::FAMILY_V4 } else { crate::FAMILY_V6 };
            let max = if family == crate::FAMILY_V4 { 32 } else { 128 };
            // Prefixes that fan out (IPv4 shorter than /16, IPv6 shorter than /32: up to 65,536
            // buckets each) in one round of 20 of their family.
            let fans = if family == crate::FAMILY_V4 { 16 } else { 32 };
            let len = match (next() % (max + 1)) as u8 {
                l if l < fans && round % 40 > 1 => l + fans,
                l => l,
            };
            let base: [u8; 16] = core::array::from_fn(|i| (next() >> (i % 8 * 8)) as u8);
            let mut base = base;
            if family == crate::FAMILY_V4 {
                base[4..].fill(0);
            }
            let mut buckets: Vec<u32> = buckets_of(family, &base, len).collect();
            buckets.sort_unstable();
            assert!(buckets.windows(2).all(|w| w[0] < w[1]), "each bucket once");
            assert!(buckets.iter().all(|b| *b < SLOTS), "{buckets:?}");
            let expected = match (family == crate::FAMILY_V4, len) {
                (true, l) if l < 16 => 1 << (16 - l),
                (false, l) if l < 32 => V6_BUCKETS as usize,
                _ => 1,
            };
            assert_eq!(buckets.len(), expected, "family {family} /{len}");
            // Addresses inside the prefix: the base with random bits after the prefix.
            for _ in 0..8 {
                let r: [u8; 16] = core::array::from_fn(|i| (next() >> (i % 8 * 8)) as u8);
                let mut a = base;
                for i in len as usize..max as usize {
                    let bit = 0x80 >> (i % 8);
                    a[i / 8] = (a[i / 8] & !bit) | (r[i / 8] & bit);
                }
                assert!(within(&a, &base, len));
                let b = bucket_of(family, &a);
                assert!(buckets.binary_search(&b).is_ok(), "{a:?} in bucket {b}, /{len} of {base:?} in {buckets:?}");
            }
        }
        // Fixed points: the bucket of 198.18.x.x, both /16s of a /15, a /0 in every bucket.
        let v4 = |a: [u8; 4]| {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a);
            b
        };
        let b198_18 = u16::from_le_bytes([198, 18]) as u32;
        assert_eq!(buckets_of(crate::FAMILY_V4, &v4([198, 18, 7, 0]), 24).collect::<Vec<_>>(), [b198_18]);
        assert_eq!(
            buckets_of(crate::FAMILY_V4, &v4([198, 18, 0, 0]), 15).collect::<Vec<_>>(),
            [b198_18, u16::from_le_bytes([198, 19]) as u32]
        );
        let all: BTreeSet<u32> = buckets_of(crate::FAMILY_V4, &v4([0; 4]), 0).collect();
        assert_eq!(all.len(), V4_BUCKETS as usize);
        let wide: Vec<u32> =
            buckets_of(crate::FAMILY_V6, &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 16).collect();
        assert_eq!(wide, (V4_BUCKETS..SLOTS).collect::<Vec<_>>(), "an IPv6 /16 in every IPv6 bucket");
        // IPv6 buckets spread: 4,096 different /32s (2001+N:db8::/32) fill nearly as many.
        let spread: BTreeSet<u32> =
            (0..4096u32).map(|i| bucket(crate::FAMILY_V6, 0x2001_0db8u32.wrapping_add(i << 16).swap_bytes())).collect();
        assert!(spread.len() > 3_900 && spread.iter().all(|b| (V4_BUCKETS..SLOTS).contains(b)), "{}", spread.len());
    }

    #[test]
    fn pending_drops_add_up_to_the_exact_totals() {
        // One CPU's value; the "entries" get what Flush and Direct hand over.
        let mut v = PendingDrops::default();
        let (mut entry, mut other) = ((0u64, 0u64), (0u64, 0u64));
        let mut flushes = 0;
        for i in 0..100u64 {
            match v.add(7, 0xc612_0042, 5, 40, |_| unreachable!("the value is this block's")) {
                Pending::Kept => {}
                Pending::Flush { packets, bytes } => {
                    assert_eq!(packets, PendingDrops::FLUSH_AT, "flushed at {i}");
                    entry = (entry.0 + packets, entry.1 + bytes);
                    flushes += 1;
                }
                Pending::Direct => panic!("the value's own block went direct"),
            }
            // Another block's drops while this one's are pending go straight to its entry.
            if i % 10 == 0 && v.packets != 0 {
                assert_eq!(v.add(9, 1, 5, 60, |o| o.is_for(7, 0xc612_0042, 5)), Pending::Direct);
                other = (other.0 + 1, other.1 + 60);
            }
        }
        assert_eq!(flushes, 3);
        let (p, b) = PendingDrops::pending_for([&v, &PendingDrops::default()], 7, 0xc612_0042, 5);
        assert_eq!((entry.0 + p, entry.1 + b), (100, 4000), "flushed + pending = every drop");
        assert_eq!(other, (10, 600));
        assert_eq!(PendingDrops::pending_for([&v], 7, 0xc612_0042, 6), (0, 0), "a later block in the slot");
        assert_eq!(PendingDrops::pending_for([&v], 7, 0xc612_0043, 5), (0, 0), "another address in the slot");
        assert_eq!(PendingDrops::pending_for([&v], 8, 0xc612_0042, 5), (0, 0), "another slot");
    }

    #[test]
    fn a_pending_value_whose_block_is_gone_starts_over() {
        let mut v = PendingDrops::default();
        assert_eq!(v.add(3, 1, 10, 100, |_| unreachable!("nothing pending yet")), Pending::Kept);
        // The block in slot 3 was removed (or its slot reused): another block's drop takes the value.
        assert_eq!(v.add(4, 2, 11, 50, |_| false), Pending::Kept);
        assert_eq!((v.slot, v.key0, v.added_ns, v.packets, v.bytes), (5, 2, 11, 1, 50));
        // The default value is for no block, slot 0 included.
        assert!(!PendingDrops::default().is_for(0, 0, 0));
        assert!(v.is_for(4, 2, 11));
    }

    #[test]
    fn expiry() {
        let e = BlockEntry::manual(100, 50);
        assert!(e.active(149));
        assert!(!e.active(150));
        let forever = BlockEntry::manual(100, 0);
        assert!(forever.active(u64::MAX));
        let auto = BlockEntry { reason: 1 + Detection::SynScan as u8, ..forever };
        assert_eq!(auto.detection(), Some(Detection::SynScan));
        assert_eq!(forever.detection(), None);
    }

    fn slot(a: u8, added_ns: u64, expires_ns: u64) -> AutoSlot {
        AutoSlot {
            key: AddrKey::v4([198, 18, 0, a]),
            entry: BlockEntry { added_ns, expires_ns, ..Default::default() },
            ..Default::default()
        }
    }

    #[test]
    fn way_choice() {
        use autoblock::Way;
        let key = AddrKey::v4([198, 18, 0, 9]);
        let now = 1_000;
        let ways = |s: [AutoSlot; 4]| s.map(|s| Way::of(&s, &key, now));
        let choice = |w: [Way; 4]| autoblock::choose(|i| w.get(i as usize).copied()).expect("a way");
        let choose = |w: &[Way; 4]| choice(*w).way;
        // The address's own way wins over an empty one.
        let own = [AutoSlot::default(), slot(1, 5, 0), slot(9, 7, 0), AutoSlot::default()];
        assert_eq!(choose(&ways(own)), 2);
        // Else the first empty way.
        let full_but_one = [slot(1, 5, 0), slot(2, 6, 0), AutoSlot::default(), AutoSlot::default()];
        assert_eq!(choose(&ways(full_but_one)), 2);
        // Else an expired block, the oldest of them.
        let expired = [slot(1, 5, 0), slot(2, 60, 900), slot(3, 50, 999), slot(4, 1, 0)];
        assert_eq!(choose(&ways(expired)), 2);
        // Else the oldest block.
        let live = [slot(1, 5, 0), slot(2, 3, 2_000), slot(3, 50, 0), slot(4, 4, 0)];
        assert_eq!(choose(&ways(live)), 1);
        // Only that last choice gives a block up; a slot that cannot be read chooses nothing.
        assert!(choice(ways(live)).gives_up_a_block);
        assert!(![own, full_but_one, expired].iter().any(|s| choice(ways(*s)).gives_up_a_block));
        assert_eq!(autoblock::choose(|i| (i < 3).then(|| ways(live)[i as usize])), None);
        // The seed slot's layout: empty to the listing.
        assert!(AutoSlot::default().is_empty());
        assert!(!AutoSlot::default().holds(&AddrKey::default()), "an empty slot holds nothing");
    }

    #[test]
    fn store_and_clear() {
        let key = AddrKey::new([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7], crate::FAMILY_V6);
        let entry =
            BlockEntry { expires_ns: 1, added_ns: 2, packets: 3, bytes: 4, last_ns: 5, reason: 6, _pad: [0; 7] };
        let mut slot = slot(1, 9, 9);
        slot._pad = [1; 4];
        // SAFETY: a local, aligned slot.
        unsafe { AutoSlot::store(&mut slot, &key, &entry) };
        assert_eq!(slot, AutoSlot { key, _pad: [0; 4], entry });
        assert!(slot.holds(&key) && !slot.holds(&AddrKey::v4([198, 18, 0, 1])));
        // SAFETY: as above.
        unsafe { AutoSlot::clear(&mut slot) };
        assert_eq!(slot, AutoSlot::default());
    }

    #[test]
    fn sets_spread_and_depend_on_the_seed() {
        use autoblock::{SETS, set_of};
        let mut hits = [0u32; 64];
        let mut moved = 0;
        for i in 0..65_536u32 {
            let b = i.to_be_bytes();
            let key = AddrKey::v4([198, 18, b[2], b[3]]);
            let set = set_of(&key, 1);
            assert!(set < SETS);
            hits[(set % 64) as usize] += 1;
            moved += u32::from(set != set_of(&key, 2));
            let v6 = AddrKey::new([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, b[2], b[3]], crate::FAMILY_V6);
            assert!(set_of(&v6, 1) < SETS);
        }
        // 1,024 per bucket on average: a consecutive range of addresses spreads evenly.
        assert!(hits.iter().all(|&h| (900..1_150).contains(&h)), "{hits:?}");
        assert!(moved > 65_000, "another seed moves almost every address: {moved}");
        assert_eq!(AddrKey::v4([1, 2, 3, 4]).words(), [u32::from_le_bytes([1, 2, 3, 4]), 0, 0, 0, 4]);
    }
}
