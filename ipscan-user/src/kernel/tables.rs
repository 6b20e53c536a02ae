//! The blocklist and allowlist maps, for the daemon (its own loaded maps) and the CLI (the
//! daemon's pinned maps).

use std::{
    net::IpAddr,
    path::Path,
    sync::atomic::{AtomicU8, AtomicU64, Ordering},
};

use aya::{
    Ebpf,
    maps::{Array, LpmTrie, Map, MapData, MapError, PerCpuArray},
};
use ipscan_common::{
    AddrKey, AutoSlot, BlockEntry, Config, FAMILY_V4, FAMILY_V6,
    block::{Block4Data, CpuLocal, PendingDrops, autoblock, counts},
    config::global_flags,
    maps,
};

pub use crate::kernel::prefixes::{Counts, TableError};
use crate::{
    config::IpNet,
    kernel::{
        feeds::{FeedError, Feeds},
        mmap::{Mapped, map_array},
        prefixes::{
            addr_key, block4_key, block4_net, conv, conv_ref, count_up, failed_with, net4, net6, owned_array, pinned,
            pinned_if_there, take, v4_key, v6_key,
        },
    },
    log::format,
};

/// One blocklist row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockRow {
    pub net: IpNet,
    pub entry: BlockEntry,
    /// Made by the kernel's auto-block (AUTOBLOCK), not by hand.
    pub auto: bool,
}

impl BlockRow {
    /// Why it is blocked: the detection's log name, `crowdsec` or `manual`.
    pub fn reason(&self) -> &'static str {
        match self.entry.detection() {
            Some(d) => d.names().log_name,
            None if self.entry.reason == BlockEntry::CROWDSEC => "crowdsec",
            None => "manual",
        }
    }
}

/// Where [`Tables::block_auto`] put a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placed {
    /// In AUTOBLOCK, found by the fast path.
    Auto,
    /// In BLOCK4 or BLOCK6, as a host prefix (its AUTOBLOCK set was full).
    Blocklist,
}

/// One allowlist row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowRow {
    pub net: IpNet,
    pub reason: u32,
}

/// AUTOBLOCK, the kernel's set-associative table of auto-blocked addresses
/// ([`ipscan_common::block::autoblock`]), mapped into memory: listing its 65,537 slots is a memory
/// scan, not a system call per slot. Slots are written with the same word-wise stores as the
/// kernel's ([`AutoSlot::store`], [`AutoSlot::clear`]).
pub struct AutoTable {
    slots: Mapped<AutoSlot>,
    /// AUTOTAGS: the tag of each way's address, one word per set.
    tags: Mapped<u64>,
    /// AUTOMARKS: the buckets of the ways' addresses ([`autoblock::MARK_WORDS`]); None for the
    /// pins of a running ipscan from before them (its program does not read them).
    marks: Option<(Mapped<u64>, MapData)>,
    /// Keep the maps' file descriptors open while they are mapped.
    _maps: [MapData; 2],
}

/// Writes lane `i % WAYS` of AUTOTAGS word `i / WAYS`: the tag of AUTOBLOCK slot `i`.
fn write_tag(tags: &Mapped<u64>, i: u32, tag: u16) {
    let way = (i % autoblock::WAYS) as usize;
    // SAFETY: 16-bit lane `way` (< 4) of the set's tag word, inside the mapping.
    unsafe { std::ptr::write_volatile(tags.ptr(i / autoblock::WAYS).cast::<u16>().add(way), tag) };
}

/// The [`counts`] bucket of an address, from its key.
fn bucket_of(key: &AddrKey) -> u32 {
    counts::bucket(key.family, key.words()[0])
}

/// The AUTOMARKS byte of bucket `b` ([`autoblock::mark_of`]: byte `b % 8` of value `b / 8`).
fn mark_byte(marks: &Mapped<u64>, b: u32) -> &AtomicU8 {
    // SAFETY: byte `b % 8` of a value inside the mapping (`ptr` checks `b / 8`); every
    // user-space access to the marks is atomic, the program's are single-byte loads and stores.
    unsafe { AtomicU8::from_ptr(marks.ptr(b / 8).cast::<u8>().add((b % 8) as usize)) }
}

/// Gives every AUTOBLOCK way that holds an address its tag in AUTOTAGS and its bucket's mark in
/// AUTOMARKS (those of empty ways are left as they are), and returns how many it tagged: for a
/// table kept from an ipscan before AUTOTAGS or AUTOMARKS, or kept while they were made anew.
/// The loader runs it before the program is attached.
pub fn tag_kept_blocks(ebpf: &Ebpf) -> Result<usize, TableError> {
    let map = |name| ebpf.map(name).ok_or(TableError::Missing { name });
    let slots: Mapped<AutoSlot> = map_array(map(maps::AUTOBLOCK)?, maps::AUTOBLOCK, autoblock::SLOTS, false)?;
    let tags: Mapped<u64> = map_array(map(maps::AUTOTAGS)?, maps::AUTOTAGS, autoblock::SETS, true)?;
    let marks: Mapped<u64> = map_array(map(maps::AUTOMARKS)?, maps::AUTOMARKS, autoblock::MARK_WORDS, true)?;
    let seed = slots.get(autoblock::SEED_SLOT).entry.added_ns;
    let mut n = 0;
    for i in 0..autoblock::SEED_SLOT {
        let s = slots.get(i);
        if !s.is_empty() {
            mark_byte(&marks, bucket_of(&s.key)).store(autoblock::MARKED, Ordering::SeqCst);
            write_tag(&tags, i, autoblock::place_words(&s.key.words(), seed).tag);
            n += 1;
        }
    }
    Ok(n)
}

impl AutoTable {
    fn new(map: Map, tags: Map, marks: Option<Map>) -> Result<Self, TableError> {
        let (slots, a) = owned_array(map, maps::AUTOBLOCK, autoblock::SLOTS)?;
        let (tag_words, b) = owned_array(tags, maps::AUTOTAGS, autoblock::SETS)?;
        let marks = marks.map(|m| owned_array(m, maps::AUTOMARKS, autoblock::MARK_WORDS)).transpose()?;
        let mut t = Self { slots, tags: tag_words, marks, _maps: [a, b] };
        t.seed_if_empty();
        Ok(t)
    }

    fn ptr(&self, i: u32) -> *mut AutoSlot {
        self.slots.ptr(i)
    }

    /// A copy of slot `i` (the kernel may be writing it: a torn copy is possible and harmless).
    fn slot(&self, i: u32) -> AutoSlot {
        self.slots.get(i)
    }

    fn seed(&self) -> u64 {
        self.slot(autoblock::SEED_SLOT).entry.added_ns
    }

    /// Chooses the hash seed, at random, while no slot is in use (a fresh map: a table that
    /// holds blocks keeps the seed they were placed with).
    fn seed_if_empty(&mut self) {
        if self.seed() != 0 || self.iter().next().is_some() {
            return;
        }
        let seed = crate::clock::random_seed();
        // SAFETY: the seed slot's added_ns field, inside the mapping.
        unsafe { std::ptr::write_volatile(&raw mut (*self.ptr(autoblock::SEED_SLOT)).entry.added_ns, seed) };
    }

    fn first(&self, key: &AddrKey) -> u32 {
        autoblock::set_of(key, self.seed()) * autoblock::WAYS
    }

    /// Puts a block into the set of `key`, where the kernel would (see [`autoblock::choose`]),
    /// unless the set is full of other addresses' blocks that are still on: then nothing is
    /// written and the answer is false (the caller keeps the block elsewhere; giving one up
    /// here would lose a block that user space cannot see go, and leave its source in its
    /// scan modes, which the kernel forgets only for the blocks it gives up itself).
    pub fn insert(&mut self, key: &AddrKey, entry: &BlockEntry, now: u64) -> bool {
        let place = autoblock::place_words(&key.words(), self.seed());
        let first = place.set * autoblock::WAYS;
        match autoblock::choose(|w| Some(autoblock::Way::of(&self.slot(first + w), key, now))) {
            Some(c) if !c.gives_up_a_block => {
                // The mark and the tag before the key, and the mark again after it, as the
                // kernel writes them.
                self.mark(key);
                write_tag(&self.tags, first + c.way, place.tag);
                // SAFETY: a slot inside the mapping.
                unsafe { AutoSlot::store(self.ptr(first + c.way), key, entry) };
                self.mark(key);
                true
            }
            _ => false,
        }
    }

    fn mark(&self, key: &AddrKey) {
        if let Some((marks, _)) = &self.marks {
            mark_byte(marks, bucket_of(key)).store(autoblock::MARKED, Ordering::SeqCst);
        }
    }

    /// Takes away the AUTOMARKS marks of buckets that no way holds an address of, and returns
    /// how many. Never a mark that a held block needs: a mark goes to [`autoblock::CLEARING`] (still
    /// marked for the program) only when a pass over the table found no address of its bucket,
    /// and to zero only when a second pass, after that, found none either and no writer marked
    /// it again meanwhile (writers store [`autoblock::MARKED`] before and after a way's key, so a
    /// block written after the second pass read its way marks its bucket itself). Reads the
    /// table twice (4.7 MB): the daemon runs it every few seconds.
    pub fn unmark_unused(&self) -> usize {
        let Some((marks, _)) = &self.marks else {
            return 0;
        };
        let held = |t: &Self| {
            let mut b = vec![false; counts::SLOTS as usize];
            for (_, s) in t.iter() {
                b[bucket_of(&s.key) as usize] = true;
            }
            b
        };
        let byte = |i: usize| mark_byte(marks, i as u32);
        let first = held(self);
        // (A mark already clearing was left so by a daemon that stopped between the passes; one
        // daemon runs per interface, so nothing else is taking it away now.)
        let clearing: Vec<usize> = (0..first.len())
            .filter(|&i| {
                !first[i]
                    && match byte(i).compare_exchange(
                        autoblock::MARKED,
                        autoblock::CLEARING,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    ) {
                        Ok(_) => true,
                        Err(now) => now == autoblock::CLEARING,
                    }
            })
            .collect();
        let second = held(self);
        let mut cleared = 0;
        for i in clearing {
            let to = if second[i] { autoblock::MARKED } else { 0 };
            if byte(i).compare_exchange(autoblock::CLEARING, to, Ordering::SeqCst, Ordering::SeqCst).is_ok() && to == 0
            {
                cleared += 1;
            }
        }
        cleared
    }

    /// The slot that holds the block of `key`.
    pub fn find(&self, key: &AddrKey) -> Option<u32> {
        let first = self.first(key);
        (first..first + autoblock::WAYS).find(|i| self.slot(*i).holds(key))
    }

    /// Moves the expiry of the block of `key` that the kernel made at `added_ns` to `expires_ns`,
    /// unless that block is gone, replaced or already made to stop (a compare-and-swap of the
    /// expiry read with the slot: a block put into the slot meanwhile has another expiry).
    /// Returns whether it did.
    fn set_expiry(&mut self, key: &AddrKey, added_ns: u64, expires_ns: u64) -> bool {
        let Some(i) = self.find(key) else {
            return false;
        };
        let s = self.slot(i);
        // An expiry at or before the block's start is one user space set to lift it.
        if s.entry.added_ns != added_ns || s.entry.expires_ns <= added_ns {
            return false;
        }
        // SAFETY: the 8-aligned expiry of a slot inside the mapping; the kernel stores it whole.
        let e = unsafe { AtomicU64::from_ptr(&raw mut (*self.ptr(i)).entry.expires_ns) };
        e.compare_exchange(s.entry.expires_ns, expires_ns, Ordering::SeqCst, Ordering::SeqCst).is_ok()
            && self.slot(i).holds(key)
    }

    /// Makes the block in slot `i` stop blocking (expired since the clock's first nanosecond):
    /// the kernel then neither drops for it nor counts drops for it.
    fn expire(&mut self, i: u32) {
        // SAFETY: the expiry field of a slot inside the mapping; an 8-byte aligned store.
        unsafe { std::ptr::write_volatile(&raw mut (*self.ptr(i)).entry.expires_ns, 1) };
    }

    /// Empties slot `i`.
    fn clear(&mut self, i: u32) {
        // SAFETY: a slot inside the mapping.
        unsafe { AutoSlot::clear(self.ptr(i)) };
    }

    /// Every block in the table, with its slot.
    pub fn iter(&self) -> impl Iterator<Item = (u32, AutoSlot)> + '_ {
        (0..autoblock::SEED_SLOT).map(|i| (i, self.slot(i))).filter(|(_, s)| !s.is_empty())
    }
}

/// Inserts a prefix blocked by hand with `insert(flags)`, keeping BLOCKCOUNTS never too low: a
/// prefix already in the list is replaced in place (BPF_EXIST), its count standing; a new one is
/// counted first and inserted only if still new (BPF_NOEXIST), else the count is taken back and
/// it is tried again. `counts` is None only for the pins of an ipscan before BLOCKCOUNTS.
fn counted_insert(
    counts: Option<&Counts>,
    net: &IpNet,
    mut insert: impl FnMut(u64) -> Result<(), MapError>,
) -> Result<(), MapError> {
    const BPF_NOEXIST: u64 = 1;
    const BPF_EXIST: u64 = 2;
    let Some(counts) = counts else {
        return insert(0);
    };
    let mut last = None;
    for _ in 0..4 {
        match insert(BPF_EXIST) {
            Err(e) if failed_with(&e, libc::ENOENT) => {}
            done => return done,
        }
        counts.up(net);
        match insert(BPF_NOEXIST) {
            Ok(()) => return Ok(()),
            Err(e) => {
                counts.down(net);
                if !failed_with(&e, libc::EEXIST) {
                    return Err(e);
                }
                last = Some(e);
            }
        }
    }
    // Four races lost in a row with other writers of the same prefix.
    Err(last.unwrap_or(MapError::KeyNotFound))
}

/// Counts the prefixes of an ALLOW4 and ALLOW6 kept from an ipscan before ALLOWCOUNTS in their
/// buckets, and returns how many; as [`count_kept_prefixes`] for the blocks.
pub fn count_kept_allows(ebpf: &Ebpf) -> Result<usize, TableError> {
    let map = |name| ebpf.map(name).ok_or(TableError::Missing { name });
    let allow4: LpmTrie<&MapData, [u8; 4], u32> = conv_ref(map(maps::ALLOW4)?, maps::ALLOW4)?;
    let allow6: LpmTrie<&MapData, [u8; 16], u32> = conv_ref(map(maps::ALLOW6)?, maps::ALLOW6)?;
    let nets = allow4
        .keys()
        .filter_map(|k| k.ok().and_then(|k| net4(&k)))
        .chain(allow6.keys().filter_map(|k| k.ok().and_then(|k| net6(&k))));
    count_into(map(maps::ALLOWCOUNTS)?, maps::ALLOWCOUNTS, nets.collect())
}

/// Counts `nets` in their buckets of the count map `counts` (named `name`); how many.
fn count_into(counts: &Map, name: &'static str, nets: Vec<IpNet>) -> Result<usize, TableError> {
    let words: Mapped<u64> = map_array(counts, name, counts::SLOTS, true)?;
    for net in &nets {
        count_up(&words, net);
    }
    Ok(nets.len())
}

/// Counts the prefixes of a BLOCK4 and BLOCK6 (and the feed tries) kept from an ipscan before BLOCKCOUNTS (or kept
/// while BLOCKCOUNTS was made anew) in their buckets, and returns how many. The loader runs it,
/// before the program is attached, only for a BLOCKCOUNTS it made anew: counted again, the
/// prefixes would be counted twice (harmless, but never undone).
pub fn count_kept_prefixes(ebpf: &Ebpf) -> Result<usize, TableError> {
    let map = |name| ebpf.map(name).ok_or(TableError::Missing { name });
    let block4: LpmTrie<&MapData, Block4Data, BlockEntry> = conv_ref(map(maps::BLOCK4)?, maps::BLOCK4)?;
    let block6: LpmTrie<&MapData, [u8; 16], BlockEntry> = conv_ref(map(maps::BLOCK6)?, maps::BLOCK6)?;
    let mut nets: Vec<IpNet> = block4
        .keys()
        .filter_map(|k| k.ok().and_then(|k| block4_net(&k)))
        .chain(block6.keys().filter_map(|k| k.ok().and_then(|k| net6(&k))))
        .collect();
    // The feeds' prefixes, each once whatever its tries.
    let mut fed = std::collections::HashSet::new();
    for name in [maps::FEED4_A, maps::FEED4_B] {
        let t: LpmTrie<&MapData, Block4Data, ipscan_common::feed::FeedEntry> = conv_ref(map(name)?, name)?;
        fed.extend(t.keys().filter_map(|k| k.ok().and_then(|k| block4_net(&k))));
    }
    for name in [maps::FEED6_A, maps::FEED6_B] {
        let t: LpmTrie<&MapData, [u8; 16], ipscan_common::feed::FeedEntry> = conv_ref(map(name)?, name)?;
        fed.extend(t.keys().filter_map(|k| k.ok().and_then(|k| net6(&k))));
    }
    nets.extend(fed);
    count_into(map(maps::BLOCKCOUNTS)?, maps::BLOCKCOUNTS, nets)
}

/// The maps of blocking.
pub struct Tables {
    block4: LpmTrie<MapData, Block4Data, BlockEntry>,
    block6: LpmTrie<MapData, [u8; 16], BlockEntry>,
    /// None for the pins of a running ipscan from before BLOCKCOUNTS (its program does not
    /// read it).
    counts: Option<Counts>,
    auto: AutoTable,
    /// The program's per-CPU state, for the drops not yet added to AUTOBLOCK entries
    /// ([`PendingDrops`]).
    cpu: PerCpuArray<MapData, CpuLocal>,
    allow4: LpmTrie<MapData, [u8; 4], u32>,
    allow6: LpmTrie<MapData, [u8; 16], u32>,
    /// None for the pins of a running ipscan from before ALLOWCOUNTS.
    allow_counts: Option<Counts>,
    /// The threat feeds; None for the pins of a running ipscan from before them.
    feeds: Option<Feeds>,
}

/// An auto-block's entry with the drops the CPUs hold for it added ([`PendingDrops`]).
fn with_pending(pending: &[PendingDrops], slot: u32, s: &AutoSlot) -> BlockEntry {
    let (packets, bytes) = PendingDrops::pending_for(pending, slot, s.key0(), s.entry.added_ns);
    BlockEntry { packets: s.entry.packets + packets, bytes: s.entry.bytes + bytes, ..s.entry }
}

/// The exact-address key of a host prefix (/32, /128), for AUTOBLOCK.
fn host_key(net: &IpNet) -> Option<AddrKey> {
    let host = if net.addr().is_ipv4() { 32 } else { 128 };
    (net.prefix() == host).then(|| addr_key(net.addr()))
}

fn host_net(k: &AddrKey) -> Option<IpNet> {
    let a = format::addr(&k.addr, k.family);
    Some(IpNet::host(a))
}

impl Tables {
    /// Takes the maps out of a loaded program (the daemon).
    pub fn from_ebpf(ebpf: &mut Ebpf) -> Result<Self, TableError> {
        Ok(Self {
            block4: conv(take(ebpf, maps::BLOCK4)?, maps::BLOCK4)?,
            block6: conv(take(ebpf, maps::BLOCK6)?, maps::BLOCK6)?,
            counts: Some(Counts::new(take(ebpf, maps::BLOCKCOUNTS)?, maps::BLOCKCOUNTS)?),
            auto: AutoTable::new(
                take(ebpf, maps::AUTOBLOCK)?,
                take(ebpf, maps::AUTOTAGS)?,
                Some(take(ebpf, maps::AUTOMARKS)?),
            )?,
            cpu: conv(take(ebpf, maps::CPU)?, maps::CPU)?,
            allow4: conv(take(ebpf, maps::ALLOW4)?, maps::ALLOW4)?,
            allow6: conv(take(ebpf, maps::ALLOW6)?, maps::ALLOW6)?,
            allow_counts: Some(Counts::new(take(ebpf, maps::ALLOWCOUNTS)?, maps::ALLOWCOUNTS)?),
            feeds: Some(Feeds::new(|name| take(ebpf, name), None)?),
        })
    }

    /// Makes feed changes take the lock of the pin directory `dir` (the daemon's, which the
    /// CLI also writes through).
    pub fn lock_feeds_on(&mut self, dir: &Path) {
        if let Some(f) = &mut self.feeds {
            f.lock_on(dir);
        }
    }

    /// Opens a daemon's pinned maps (the CLI).
    pub fn open_pinned(dir: &Path) -> Result<Self, TableError> {
        Ok(Self {
            block4: conv(pinned(dir, maps::BLOCK4)?, maps::BLOCK4)?,
            block6: conv(pinned(dir, maps::BLOCK6)?, maps::BLOCK6)?,
            counts: pinned_if_there(dir, maps::BLOCKCOUNTS)?.map(|m| Counts::new(m, maps::BLOCKCOUNTS)).transpose()?,
            auto: AutoTable::new(
                pinned(dir, maps::AUTOBLOCK)?,
                pinned(dir, maps::AUTOTAGS)?,
                pinned_if_there(dir, maps::AUTOMARKS)?,
            )?,
            cpu: conv(pinned(dir, maps::CPU)?, maps::CPU)?,
            allow4: conv(pinned(dir, maps::ALLOW4)?, maps::ALLOW4)?,
            allow6: conv(pinned(dir, maps::ALLOW6)?, maps::ALLOW6)?,
            allow_counts: pinned_if_there(dir, maps::ALLOWCOUNTS)?
                .map(|m| Counts::new(m, maps::ALLOWCOUNTS))
                .transpose()?,
            feeds: Feeds::open_pinned(dir)?,
        })
    }

    /// The threat feeds (None: the running program predates them).
    pub fn feeds(&self) -> Option<&Feeds> {
        self.feeds.as_ref()
    }

    /// The threat feeds, to change, with BLOCKCOUNTS; an error when the running program
    /// predates them.
    pub fn feeds_mut(&mut self) -> Result<(&mut Feeds, Option<&Counts>), FeedError> {
        match &mut self.feeds {
            Some(f) => Ok((f, self.counts.as_ref())),
            None => Err(FeedError::Unsupported),
        }
    }

    /// Blocks a prefix until `now + ttl_ns` (zero: forever). Replaces an entry of the same prefix.
    pub fn block(&mut self, net: &IpNet, entry: BlockEntry) -> Result<(), TableError> {
        let counts = self.counts.as_ref();
        if let Some(k) = block4_key(net) {
            counted_insert(counts, net, |flags| self.block4.insert(&k, entry, flags))
                .map_err(|source| TableError::Map { name: maps::BLOCK4, source })
        } else if let Some(k) = v6_key(net) {
            counted_insert(counts, net, |flags| self.block6.insert(&k, entry, flags))
                .map_err(|source| TableError::Map { name: maps::BLOCK6, source })
        } else {
            Ok(())
        }
    }

    /// Puts an exact address into AUTOBLOCK (restoring a kernel-made block). When its set there
    /// is full of blocks still on (a restore into a table with a new hash seed can bring five
    /// to one set), the block goes into the blocklist as a host prefix instead, with its expiry,
    /// counts and reason: nothing restored is given up. Returns where it went.
    pub fn block_auto(&mut self, net: &IpNet, entry: BlockEntry) -> Result<Placed, TableError> {
        match host_key(net) {
            Some(k) if self.auto.insert(&k, &entry, crate::clock::monotonic_ns()) => Ok(Placed::Auto),
            _ => self.block(net, entry).map(|()| Placed::Blocklist),
        }
    }

    /// Lengthens (or shortens) the kernel's auto-block of `addr` made at kernel time
    /// `added_ns`, to end at `expires_ns` (a repeat offender's block). False when that block
    /// is no longer in AUTOBLOCK as it was made.
    pub fn set_auto_expiry(&mut self, addr: IpAddr, added_ns: u64, expires_ns: u64) -> bool {
        self.auto.set_expiry(&addr_key(addr), added_ns, expires_ns)
    }

    /// Removes a prefix from the blocklist (and, for a single address, its auto-block).
    /// Returns the entries removed.
    pub fn unblock(&mut self, net: &IpNet) -> Vec<BlockRow> {
        let mut out: Vec<BlockRow> = self.unlist(net).into_iter().collect();
        if let Some(k) = host_key(net)
            && let Some(i) = self.auto.find(&k)
        {
            out.push(BlockRow { net: *net, entry: self.take_auto(i), auto: true });
        }
        out
    }

    /// The blocklist's (BLOCK4, BLOCK6) entry for exactly this prefix, if any.
    pub fn listed(&self, net: &IpNet) -> Option<BlockEntry> {
        if let Some(k) = block4_key(net) {
            self.block4.get(&k, 0).ok()
        } else {
            v6_key(net).and_then(|k| self.block6.get(&k, 0).ok())
        }
    }

    /// Removes exactly this prefix from the blocklist (BLOCK4, BLOCK6), leaving an auto-block
    /// of the same address alone. Returns the entry removed.
    pub fn unlist(&mut self, net: &IpNet) -> Option<BlockRow> {
        let entry = self.listed(net)?;
        self.delist(net).then_some(BlockRow { net: *net, entry, auto: false })
    }

    /// Deletes this prefix's BLOCK4 or BLOCK6 entry and takes it out of BLOCKCOUNTS; false when
    /// there was none to delete.
    fn delist(&mut self, net: &IpNet) -> bool {
        let removed = if let Some(k) = block4_key(net) {
            self.block4.remove(&k).is_ok()
        } else {
            v6_key(net).is_some_and(|k| self.block6.remove(&k).is_ok())
        };
        if removed {
            self.uncount(net);
        }
        removed
    }

    /// Takes a prefix that was removed from BLOCK4 or BLOCK6 out of BLOCKCOUNTS.
    fn uncount(&self, net: &IpNet) {
        if let Some(c) = &self.counts {
            c.down(net);
        }
    }

    /// Takes away the AUTOMARKS marks no auto-block needs ([`AutoTable::unmark_unused`]).
    pub fn unmark_unused(&self) -> usize {
        self.auto.unmark_unused()
    }

    /// Whether the AUTOMARKS bucket of `addr` is marked (None without AUTOMARKS).
    pub fn marked(&self, addr: IpAddr) -> Option<bool> {
        let (marks, _) = self.auto.marks.as_ref()?;
        Some(mark_byte(marks, bucket_of(&addr_key(addr))).load(Ordering::SeqCst) != 0)
    }

    /// BLOCKCOUNTS, when the program has it ([`Counts`]).
    pub fn counts(&self) -> Option<&Counts> {
        self.counts.as_ref()
    }

    /// ALLOWCOUNTS, when the program has it ([`Counts`]).
    pub fn allow_counts(&self) -> Option<&Counts> {
        self.allow_counts.as_ref()
    }

    /// Takes the auto-block out of slot `i`, with every drop counted. Its entry first stops
    /// blocking, so no CPU adds drops to it or to its pending value any more (a drop under way
    /// finishes within microseconds); then the entry and the CPUs' pending drops are read until
    /// two readings of the pending drops around the entry's agree; then the slot is emptied
    /// (after which a CPU may drop the pending value). Returns the entry as it was, with the
    /// drops.
    fn take_auto(&mut self, i: u32) -> BlockEntry {
        let expires_ns = self.auto.slot(i).entry.expires_ns;
        self.auto.expire(i);
        let entry = self.settled(i);
        self.auto.clear(i);
        BlockEntry { expires_ns, ..entry }
    }

    /// Slot `i`'s entry with its pending drops, read when they hold still: the pending values
    /// of its block read before and after the entry are the same (a CPU that added its pending
    /// drops to the entry in between would count them twice or not at all). Bounded: after 64
    /// tries, the last reading, short by at most [`PendingDrops::FLUSH_AT`] drops per CPU.
    fn settled(&self, i: u32) -> BlockEntry {
        let mut last = None;
        for _ in 0..64 {
            let before = self.pending();
            let s = self.auto.slot(i);
            let after = self.pending();
            let ours = |v: &PendingDrops| v.is_for(i, s.key0(), s.entry.added_ns);
            let entry = with_pending(&after, i, &s);
            if before.len() == after.len() && before.iter().zip(&after).all(|(b, a)| b == a || !(ours(b) || ours(a))) {
                return entry;
            }
            last = Some(entry);
        }
        last.unwrap_or_default()
    }

    /// Every CPU's drops not yet added to their AUTOBLOCK entries (none when the map cannot
    /// be read: the counts shown are then short by at most [`PendingDrops::FLUSH_AT`] per CPU).
    fn pending(&self) -> Vec<PendingDrops> {
        self.cpu.get(&0, 0).map(|v| v.iter().map(|c| c.pending).collect()).unwrap_or_default()
    }

    /// Every blocklist entry, manual prefixes first, then auto-blocks.
    pub fn blocks(&self) -> Vec<BlockRow> {
        let mut out = self.manual_blocks();
        // The slots first, then the pending drops: a CPU that adds its pending drops to an
        // entry in between makes the listing short by them for now, never counts them twice.
        let slots: Vec<(u32, AutoSlot)> = self.auto.iter().collect();
        let pending = self.pending();
        for (i, s) in slots {
            if let Some(net) = host_net(&s.key) {
                out.push(BlockRow { net, entry: with_pending(&pending, i, &s), auto: true });
            }
        }
        out
    }

    /// The BLOCK4 and BLOCK6 entries.
    pub fn manual_blocks(&self) -> Vec<BlockRow> {
        let mut out = Vec::new();
        for (k, e) in self.block4.iter().filter_map(Result::ok) {
            if let Some(net) = block4_net(&k) {
                out.push(BlockRow { net, entry: e, auto: false });
            }
        }
        for (k, e) in self.block6.iter().filter_map(Result::ok) {
            if let Some(net) = net6(&k) {
                out.push(BlockRow { net, entry: e, auto: false });
            }
        }
        out
    }

    /// Removes every blocklist entry; returns what was removed.
    pub fn flush_blocks(&mut self) -> Vec<BlockRow> {
        // A host can be listed twice (a prefix of its own and an auto-block): one unblock takes both.
        let mut seen = std::collections::HashSet::new();
        let nets: Vec<IpNet> = self.blocks().iter().map(|r| r.net).filter(|n| seen.insert(*n)).collect();
        nets.iter().flat_map(|n| self.unblock(n)).collect()
    }

    /// Removes the entries that have expired at `now`; returns them.
    pub fn sweep(&mut self, now: u64) -> Vec<BlockRow> {
        let mut expired: Vec<BlockRow> = self.manual_blocks().into_iter().filter(|r| !r.entry.active(now)).collect();
        for r in &expired {
            self.delist(&r.net);
        }
        let auto: Vec<(u32, AutoSlot)> = self.auto.iter().filter(|(_, s)| !s.entry.active(now)).collect();
        for (i, s) in auto {
            if let Some(net) = host_net(&s.key) {
                expired.push(BlockRow { net, entry: self.take_auto(i), auto: true });
            }
        }
        expired
    }

    /// Adds `reason` bits to a prefix's allowlist entry (a new prefix is counted in
    /// ALLOWCOUNTS first, see [`counted_insert`]).
    pub fn allow(&mut self, net: &IpNet, reason: u32) -> Result<(), TableError> {
        let counts = self.allow_counts.as_ref();
        if let Some(k) = v4_key(net) {
            let map = &mut self.allow4;
            counted_insert(counts, net, |flags| {
                let old = map.get(&k, 0).unwrap_or(0);
                map.insert(&k, old | reason, flags)
            })
            .map_err(|source| TableError::Map { name: maps::ALLOW4, source })
        } else if let Some(k) = v6_key(net) {
            let map = &mut self.allow6;
            counted_insert(counts, net, |flags| {
                let old = map.get(&k, 0).unwrap_or(0);
                map.insert(&k, old | reason, flags)
            })
            .map_err(|source| TableError::Map { name: maps::ALLOW6, source })
        } else {
            Ok(())
        }
    }

    /// Removes the kernel's auto-blocks of addresses inside `net` (a new allow must win at
    /// once: the kernel does not consult the allowlist for auto-blocked sources). Returns them.
    pub fn unblock_auto_within(&mut self, net: &IpNet) -> Vec<BlockRow> {
        let inside: Vec<(u32, IpNet)> = self
            .auto
            .iter()
            .filter_map(|(i, s)| host_net(&s.key).map(|n| (i, n)))
            .filter(|(_, n)| net.contains(&n.addr()))
            .collect();
        inside.into_iter().map(|(i, n)| BlockRow { net: n, entry: self.take_auto(i), auto: true }).collect()
    }

    /// Every allowlist entry.
    pub fn allows(&self) -> Vec<AllowRow> {
        let mut out = Vec::new();
        for (k, reason) in self.allow4.iter().filter_map(Result::ok) {
            if let Some(net) = net4(&k) {
                out.push(AllowRow { net, reason });
            }
        }
        for (k, reason) in self.allow6.iter().filter_map(Result::ok) {
            if let Some(net) = net6(&k) {
                out.push(AllowRow { net, reason });
            }
        }
        out
    }

    /// Clears `reasons` from a prefix's entry, deleting it when no reason is left. Returns
    /// whether the prefix had one of those reasons.
    pub fn disallow(&mut self, net: &IpNet, reasons: u32) -> bool {
        let removed = |r: Result<(), MapError>| r.is_ok();
        if let Some(k) = v4_key(net)
            && let Ok(old) = self.allow4.get(&k, 0)
        {
            let left = old & !reasons;
            if left == 0 {
                if removed(self.allow4.remove(&k)) {
                    self.uncount_allow(net);
                }
            } else {
                let _ = self.allow4.insert(&k, left, 0);
            }
            return old & reasons != 0;
        }
        if let Some(k) = v6_key(net)
            && let Ok(old) = self.allow6.get(&k, 0)
        {
            let left = old & !reasons;
            if left == 0 {
                if removed(self.allow6.remove(&k)) {
                    self.uncount_allow(net);
                }
            } else {
                let _ = self.allow6.insert(&k, left, 0);
            }
            return old & reasons != 0;
        }
        false
    }

    /// Takes a prefix that was removed from ALLOW4 or ALLOW6 out of ALLOWCOUNTS.
    fn uncount_allow(&self, net: &IpNet) {
        if let Some(c) = &self.allow_counts {
            c.down(net);
        }
    }

    /// Clears `reasons` from every entry; returns how many entries had one.
    pub fn flush_allows(&mut self, reasons: u32) -> usize {
        let rows = self.allows();
        rows.iter().filter(|r| self.disallow(&r.net, reasons)).count()
    }

    /// Whether any block entry exists (a fresh map after a reboot has none).
    pub fn blocks_empty(&self) -> bool {
        self.blocks().is_empty()
    }

    /// The AUTOBLOCK set an address's auto-block goes to ([`autoblock::set_of`] with the table's
    /// seed).
    pub fn auto_set(&self, addr: IpAddr) -> u32 {
        autoblock::set_of(&addr_key(addr), self.auto.seed())
    }

    /// Which lists hold entries: the CONFIG flags that make the kernel look at them.
    pub fn presence_flags(&self) -> u32 {
        let manual = self.block4.keys().next().is_some()
            || self.block6.keys().next().is_some()
            || self.feeds.as_ref().is_some_and(Feeds::any);
        let auto = self.auto.iter().next().is_some();
        (if manual { global_flags::BLOCKLIST } else { 0 }) | (if auto { global_flags::AUTOBLOCKS } else { 0 })
    }
}

/// Sets `flags` in a daemon's pinned CONFIG (the CLI after adding a block), so the kernel starts
/// looking at the list at once rather than at the daemon's next sweep.
pub fn set_pinned_flags(dir: &Path, flags: u32) -> Result<(), TableError> {
    let mut arr: Array<MapData, Config> = conv(pinned(dir, maps::CONFIG)?, maps::CONFIG)?;
    let mut cfg = arr.get(&0, 0).map_err(|source| TableError::Map { name: maps::CONFIG, source })?;
    cfg.flags |= flags;
    arr.set(0, cfg, 0).map_err(|source| TableError::Map { name: maps::CONFIG, source })
}

/// A daemon's pinned CONFIG flags (0 if unreadable): whether it runs `dry_run`, for the lines
/// the CLI prints.
pub fn pinned_flags(dir: &Path) -> u32 {
    pinned(dir, maps::CONFIG)
        .and_then(|m| conv::<Array<MapData, Config>>(m, maps::CONFIG))
        .and_then(|arr| arr.get(&0, 0).map_err(|source| TableError::Map { name: maps::CONFIG, source }))
        .map_or(0, |cfg| cfg.flags)
}

/// The family byte of an address.
pub fn family(a: &IpAddr) -> u8 {
    if a.is_ipv4() { FAMILY_V4 } else { FAMILY_V6 }
}

/// A prefix as printed in lines and lists: the bare address for a single host.
pub fn show(net: &IpNet) -> String {
    let host = matches!((net.addr(), net.prefix()), (IpAddr::V4(_), 32) | (IpAddr::V6(_), 128));
    if host { net.addr().to_string() } else { net.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_show_as_bare_addresses() {
        assert_eq!(show(&"198.18.0.1".parse().expect("host")), "198.18.0.1");
        assert_eq!(show(&"198.18.0.0/24".parse().expect("net")), "198.18.0.0/24");
    }
}
