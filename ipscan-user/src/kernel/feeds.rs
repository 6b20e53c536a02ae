//! Threat feeds in the kernel ([`ipscan_common::feed`]): named sets of prefixes, imported and
//! replaced whole, read by the daemon's sweep and the CLI on the same maps.
//!
//! Every change goes through [`Feeds::change_set`]: the prefixes whose sets change are written
//! into the spare trie of each family, FEEDCTL's live word is flipped, and the same change is
//! made to the trie that was live, so both agree again. Writers take an exclusive `flock` on
//! the interface's pin directory for the whole change.

use std::{
    collections::{HashMap, HashSet},
    fs::File,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
};

use aya::maps::{Array, LpmTrie, Map, MapData, MapError, PerCpuArray, PerCpuValues};
use ipscan_common::{
    block::Block4Data,
    feed::{self, FeedDrops, FeedEntry, FeedSet, ctl},
    maps,
};

use crate::{
    config::IpNet,
    kernel::prefixes::{Counts, TableError, block4_key, block4_net, conv, failed_with, net6, pinned, v6_key},
};

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("invalid set name \"{0}\": 1 to 31 letters, digits, '-', '_' or '.'")]
    BadName(String),
    #[error("no set named \"{0}\"")]
    NoSuchSet(String),
    #[error("{max} sets already: remove one first (`ipscan block del --set NAME`)")]
    TooManySets { max: u32 },
    #[error("the running daemon's ipscan has no threat feeds; restart `ipscan run` with this one")]
    Unsupported,
    #[error("{what} would hold {count} prefixes, more than its {max}")]
    TooManyPrefixes { what: &'static str, count: usize, max: u32 },
    #[error("cannot lock {path}: {source}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A set, as `ipscan block sets`, `stats` and the metrics show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetRow {
    pub name: String,
    pub v4: u32,
    pub v6: u32,
    pub loaded_unix_ns: u64,
    /// CLOCK_MONOTONIC at which it lapses; zero: never.
    pub expires_ns: u64,
    pub source: String,
    /// Packets and bytes its prefixes dropped.
    pub packets: u64,
    pub bytes: u64,
}

/// What an import or a removal changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changed {
    /// Prefixes the set gained and lost.
    pub added: usize,
    pub removed: usize,
    /// The set's prefixes now.
    pub v4: u32,
    pub v6: u32,
}

/// A set as it is to be: its name, prefixes and where they came from.
pub struct NewSet<'a> {
    pub name: &'a str,
    pub nets: &'a [IpNet],
    /// CLOCK_MONOTONIC at which it lapses; zero: never.
    pub expires_ns: u64,
    pub source: &'a str,
    pub loaded_unix_ns: u64,
}

/// The feed maps of one program.
pub struct Feeds {
    v4: [LpmTrie<MapData, Block4Data, FeedEntry>; 2],
    v6: [LpmTrie<MapData, [u8; 16], FeedEntry>; 2],
    ctl: Array<MapData, u64>,
    sets: Array<MapData, FeedSet>,
    drops: PerCpuArray<MapData, FeedDrops>,
    /// The pin directory writers lock (None: the daemon's own maps, unpinned).
    lock_dir: Option<PathBuf>,
}

/// An exclusive `flock` on a directory, held until dropped.
struct DirLock {
    _file: File,
}

impl DirLock {
    fn take(dir: &Path) -> Result<Self, FeedError> {
        let lock_err = |source| FeedError::Lock { path: dir.to_owned(), source };
        let f = File::open(dir).map_err(lock_err)?;
        // SAFETY: a valid open file descriptor.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(lock_err(std::io::Error::last_os_error()));
        }
        Ok(Self { _file: f })
    }
}

fn map_err(name: &'static str) -> impl Fn(MapError) -> TableError {
    move |source| TableError::Map { name, source }
}

/// Whether `name` may name a set.
pub fn valid_name(name: &str) -> bool {
    (1..=feed::NAME_MAX).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

fn text<const N: usize>(bytes: &[u8; N]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(N);
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// `s` NUL-padded into N bytes, cut (at a character) to leave at least one NUL.
fn padded<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let mut end = s.len().min(N - 1);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out[..end].copy_from_slice(&s.as_bytes()[..end]);
    out
}

/// The prefixes of one trie, with their entries.
type Entries = HashMap<IpNet, FeedEntry>;

impl Feeds {
    /// The feed maps of a loaded program, each got with `take` (the daemon's own maps; writers
    /// lock `lock_dir`, its pin directory, when it has one).
    pub fn new(
        mut take: impl FnMut(&'static str) -> Result<Map, TableError>,
        lock_dir: Option<PathBuf>,
    ) -> Result<Self, TableError> {
        Ok(Self {
            v4: [conv(take(maps::FEED4_A)?, maps::FEED4_A)?, conv(take(maps::FEED4_B)?, maps::FEED4_B)?],
            v6: [conv(take(maps::FEED6_A)?, maps::FEED6_A)?, conv(take(maps::FEED6_B)?, maps::FEED6_B)?],
            ctl: conv(take(maps::FEEDCTL)?, maps::FEEDCTL)?,
            sets: conv(take(maps::FEEDSETS)?, maps::FEEDSETS)?,
            drops: conv(take(maps::FEEDDROPS)?, maps::FEEDDROPS)?,
            lock_dir,
        })
    }

    /// A daemon's pinned feed maps (the CLI); None when its ipscan predates feeds.
    pub(crate) fn open_pinned(dir: &Path) -> Result<Option<Self>, TableError> {
        if !dir.join(maps::FEEDSETS).exists() {
            return Ok(None);
        }
        Self::new(|name| pinned(dir, name), Some(dir.to_owned())).map(Some)
    }

    /// Makes writers lock the pin directory `dir`.
    pub fn lock_on(&mut self, dir: &Path) {
        self.lock_dir = Some(dir.to_owned());
    }

    fn lock(&self) -> Result<Option<DirLock>, FeedError> {
        self.lock_dir.as_deref().map(DirLock::take).transpose()
    }

    fn ctl_word(&self, slot: u32) -> Result<u64, TableError> {
        self.ctl.get(&slot, 0).map_err(map_err(maps::FEEDCTL))
    }

    fn set_ctl(&mut self, slot: u32, v: u64) -> Result<(), TableError> {
        self.ctl.set(slot, v, 0).map_err(map_err(maps::FEEDCTL))
    }

    /// The trie the program reads: 0 (A) or 1 (B).
    fn live(&self) -> Result<usize, TableError> {
        Ok((self.ctl_word(ctl::LIVE)? != 0) as usize)
    }

    /// Every prefix of trie `t` (0, 1) of both families, with its entry.
    fn entries(&self, t: usize) -> Result<Entries, TableError> {
        self.entries_of(t, [true, true])
    }

    /// Every prefix of trie `t` of the families asked for ([IPv4, IPv6]), with its entry. (A
    /// walk costs about 3 us a prefix, in the kernel: one family's is skipped when it can be.)
    fn entries_of(&self, t: usize, families: [bool; 2]) -> Result<Entries, TableError> {
        let mut out = HashMap::new();
        if families[0] {
            for kv in self.v4[t].iter() {
                let (k, v) = kv.map_err(map_err(maps::FEED4_A))?;
                out.extend(block4_net(&k).map(|net| (net, v)));
            }
        }
        if families[1] {
            for kv in self.v6[t].iter() {
                let (k, v) = kv.map_err(map_err(maps::FEED6_A))?;
                out.extend(net6(&k).map(|net| (net, v)));
            }
        }
        Ok(out)
    }

    /// Writes one prefix's entry into trie `t` (None: removes it; a prefix already gone is
    /// not an error).
    fn put(&mut self, t: usize, net: &IpNet, entry: Option<FeedEntry>) -> Result<(), TableError> {
        match (block4_key(net), v6_key(net), entry) {
            (Some(k), _, Some(e)) => self.v4[t].insert(&k, e, 0).map_err(map_err(maps::FEED4_A)),
            (Some(k), _, None) => gone_is_fine(self.v4[t].remove(&k)).map_err(map_err(maps::FEED4_A)),
            (None, Some(k), Some(e)) => self.v6[t].insert(&k, e, 0).map_err(map_err(maps::FEED6_A)),
            (None, Some(k), None) => gone_is_fine(self.v6[t].remove(&k)).map_err(map_err(maps::FEED6_A)),
            _ => Ok(()),
        }
    }

    /// Writes `changes` into trie `t`, removals first (so a full trie makes room).
    fn apply(&mut self, t: usize, changes: &[(IpNet, Option<FeedEntry>)]) -> Result<(), TableError> {
        for (net, e) in changes.iter().filter(|(_, e)| e.is_none()) {
            self.put(t, net, *e)?;
        }
        for (net, e) in changes.iter().filter(|(_, e)| e.is_some()) {
            self.put(t, net, *e)?;
        }
        Ok(())
    }

    /// Makes the spare trie agree with the live one (after an import that stopped between its
    /// flip and its catch-up).
    fn even_up(&mut self, live: usize) -> Result<(), TableError> {
        let want = self.entries(live)?;
        let have = self.entries(1 - live)?;
        let mut changes: Vec<(IpNet, Option<FeedEntry>)> =
            have.keys().filter(|n| !want.contains_key(n)).map(|n| (*n, None)).collect();
        changes.extend(want.iter().filter(|(n, e)| have.get(n) != Some(e)).map(|(n, e)| (*n, Some(*e))));
        self.apply(1 - live, &changes)?;
        self.set_ctl(ctl::UNEVEN, 0)
    }

    fn set_at(&self, slot: u32) -> Result<FeedSet, TableError> {
        self.sets.get(&slot, 0).map_err(map_err(maps::FEEDSETS))
    }

    /// The slot of the set named `name`.
    fn find(&self, name: &str) -> Result<Option<u32>, TableError> {
        for slot in 0..feed::SETS {
            let s = self.set_at(slot)?;
            if !s.is_free() && text(&s.name) == name {
                return Ok(Some(slot));
            }
        }
        Ok(None)
    }

    fn drops_of(&self, slot: u32) -> (u64, u64) {
        self.drops.get(&slot, 0).map_or((0, 0), |v| v.iter().fold((0, 0), |(p, b), d| (p + d.packets, b + d.bytes)))
    }

    fn zero_drops(&mut self, slot: u32) -> Result<(), TableError> {
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| TableError::Map {
            name: maps::FEEDDROPS,
            source: MapError::SyscallError(aya::sys::SyscallError { call: "nr_cpus", io_error: e }),
        })?;
        let zero = PerCpuValues::try_from(vec![FeedDrops::default(); cpus]).map_err(|e| TableError::Map {
            name: maps::FEEDDROPS,
            source: MapError::SyscallError(aya::sys::SyscallError { call: "percpu", io_error: e }),
        })?;
        self.drops.set(slot, zero, 0).map_err(map_err(maps::FEEDDROPS))
    }

    fn row(&self, slot: u32, s: &FeedSet) -> SetRow {
        let (packets, bytes) = self.drops_of(slot);
        SetRow {
            name: text(&s.name),
            v4: s.v4,
            v6: s.v6,
            loaded_unix_ns: s.loaded_unix_ns,
            expires_ns: s.expires_ns,
            source: text(&s.source),
            packets,
            bytes,
        }
    }

    /// The sets, by name.
    pub fn sets(&self) -> Vec<SetRow> {
        let mut out: Vec<SetRow> = (0..feed::SETS)
            .filter_map(|slot| self.set_at(slot).ok().filter(|s| !s.is_free()).map(|s| self.row(slot, &s)))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Whether any set holds a prefix (the kernel then looks senders up in the feed tries).
    pub fn any(&self) -> bool {
        (0..feed::SETS).any(|slot| self.set_at(slot).is_ok_and(|s| !s.is_free() && s.v4 + s.v6 > 0))
    }

    /// The prefixes of the set `name`, as the program reads them.
    pub fn prefixes(&self, name: &str) -> Result<Vec<IpNet>, FeedError> {
        let slot = self.find(name)?.ok_or_else(|| FeedError::NoSuchSet(name.to_owned()))?;
        let bit = 1u64 << slot;
        let mut out: Vec<IpNet> =
            self.entries(self.live()?)?.into_iter().filter(|(_, e)| e.sets & bit != 0).map(|(n, _)| n).collect();
        out.sort_by_key(|n| (n.addr().is_ipv6(), n.addr(), n.prefix()));
        Ok(out)
    }

    /// Makes the set `set.name` hold exactly `set.nets` (a new set, or one replaced whole);
    /// `counts`: BLOCKCOUNTS, counted up before a prefix goes in and down after it left both
    /// tries. A packet sees the set as it was or as it is now, never between. On an error the
    /// live trie is as it was.
    pub fn import(&mut self, counts: Option<&Counts>, set: &NewSet) -> Result<Changed, FeedError> {
        if !valid_name(set.name) {
            return Err(FeedError::BadName(set.name.to_owned()));
        }
        let _lock = self.lock()?;
        let slot = match self.find(set.name)? {
            Some(slot) => slot,
            None => {
                let free = (0..feed::SETS).find(|s| self.set_at(*s).is_ok_and(|s| s.is_free()));
                let slot = free.ok_or(FeedError::TooManySets { max: feed::SETS })?;
                self.zero_drops(slot)?;
                slot
            }
        };
        let row = FeedSet {
            name: padded(set.name),
            v4: set.nets.iter().filter(|n| n.addr().is_ipv4()).count() as u32,
            v6: set.nets.iter().filter(|n| n.addr().is_ipv6()).count() as u32,
            loaded_unix_ns: set.loaded_unix_ns,
            expires_ns: set.expires_ns,
            source: padded(set.source),
        };
        self.change_set(counts, slot, set.nets, Some(&row))
    }

    /// Removes the set `name` with its prefixes; returns it as it was.
    pub fn remove(&mut self, counts: Option<&Counts>, name: &str) -> Result<SetRow, FeedError> {
        let _lock = self.lock()?;
        let slot = self.find(name)?.ok_or_else(|| FeedError::NoSuchSet(name.to_owned()))?;
        self.remove_slot(counts, slot)
    }

    fn remove_slot(&mut self, counts: Option<&Counts>, slot: u32) -> Result<SetRow, FeedError> {
        let row = self.row(slot, &self.set_at(slot)?);
        self.change_set(counts, slot, &[], None)?;
        self.sets.set(slot, FeedSet::EMPTY, 0).map_err(map_err(maps::FEEDSETS))?;
        Ok(row)
    }

    /// Removes the sets that lapsed at `now` (CLOCK_MONOTONIC); returns them.
    pub fn expire(&mut self, counts: Option<&Counts>, now: u64) -> Result<Vec<SetRow>, FeedError> {
        let lapsed = |f: &Self| -> Vec<u32> {
            (0..feed::SETS)
                .filter(|s| f.set_at(*s).is_ok_and(|s| !s.is_free() && s.expires_ns != 0 && s.expires_ns <= now))
                .collect()
        };
        if lapsed(self).is_empty() {
            return Ok(Vec::new());
        }
        let _lock = self.lock()?;
        // Again under the lock: an import may have renewed one meanwhile.
        lapsed(self).into_iter().map(|slot| self.remove_slot(counts, slot)).collect()
    }

    /// Makes set `slot` hold exactly `nets` in both tries (see the module); `row`: its FEEDSETS
    /// row, written before the flip (None: left as it is). Holds the lock.
    fn change_set(
        &mut self,
        counts: Option<&Counts>,
        slot: u32,
        nets: &[IpNet],
        row: Option<&FeedSet>,
    ) -> Result<Changed, FeedError> {
        let mut live = self.live()?;
        if self.ctl_word(ctl::UNEVEN)? != 0 {
            self.even_up(live)?;
        }
        let bit = 1u64 << slot;
        // Only the families the set has or will have prefixes in can change (its FEEDSETS row
        // counts what the live trie holds of it).
        let before = self.set_at(slot)?;
        let has = |v4: bool| nets.iter().any(|n| n.addr().is_ipv4() == v4);
        let families = [before.v4 > 0 || has(true), before.v6 > 0 || has(false)];
        let now: Entries = self.entries_of(live, families)?;
        let wanted: HashSet<&IpNet> = nets.iter().collect();
        let mut changes: Vec<(IpNet, Option<FeedEntry>)> = Vec::new();
        let mut fresh = Vec::new();
        for (net, e) in &now {
            if e.sets & bit != 0 && !wanted.contains(net) {
                changes.push((*net, FeedEntry::of(e.sets & !bit)));
            }
        }
        let removed = changes.len();
        for net in nets {
            let sets = now.get(net).map_or(0, |e| e.sets);
            if sets & bit == 0 {
                changes.push((*net, FeedEntry::of(sets | bit)));
                if sets == 0 {
                    fresh.push(*net);
                }
            }
        }
        let gone: Vec<IpNet> = changes.iter().filter(|(_, e)| e.is_none()).map(|(n, _)| *n).collect();
        let total = |v4: bool| {
            now.keys().filter(|n| n.addr().is_ipv4() == v4).count()
                + fresh.iter().filter(|n| n.addr().is_ipv4() == v4).count()
                - gone.iter().filter(|n| n.addr().is_ipv4() == v4).count()
        };
        let checks = [(true, "the IPv4 feed trie", feed::V4_MAX), (false, "the IPv6 feed trie", feed::V6_MAX)];
        for (i, (v4, what, max)) in checks.into_iter().enumerate() {
            if families[i] && total(v4) > max as usize {
                return Err(FeedError::TooManyPrefixes { what, count: total(v4), max });
            }
        }
        if let Some(c) = counts {
            for n in &fresh {
                c.up(n);
            }
        }
        if let Some(r) = row {
            self.sets.set(slot, *r, 0).map_err(map_err(maps::FEEDSETS))?;
        }
        self.set_ctl(ctl::UNEVEN, 1)?;
        if let Err(e) = self.apply(1 - live, &changes) {
            // The live trie is untouched; the spare one goes back to it, and the set's row to
            // what the live trie holds.
            let _ = self.even_up(live);
            let _ = self.sets.set(slot, before, 0);
            if let Some(c) = counts {
                for n in &fresh {
                    c.down(n);
                }
            }
            return Err(e.into());
        }
        self.set_ctl(ctl::LIVE, (1 - live) as u64)?;
        live = 1 - live;
        self.apply(1 - live, &changes)?;
        self.set_ctl(ctl::UNEVEN, 0)?;
        if let Some(c) = counts {
            for n in &gone {
                c.down(n);
            }
        }
        let count = |v4: bool| nets.iter().filter(|n| n.addr().is_ipv4() == v4).count() as u32;
        Ok(Changed { added: changes.len() - removed, removed, v4: count(true), v6: count(false) })
    }

    /// Every prefix in either trie (each once): BLOCKCOUNTS made anew counts them.
    pub fn all_prefixes(&self) -> Result<Vec<IpNet>, TableError> {
        let mut all = self.entries(0)?;
        all.extend(self.entries(1)?);
        Ok(all.into_keys().collect())
    }
}

/// A removal of a key that is not there (any more) is no failure.
fn gone_is_fine(r: Result<(), MapError>) -> Result<(), MapError> {
    match r {
        Err(MapError::KeyNotFound) => Ok(()),
        Err(e) if failed_with(&e, libc::ENOENT) => Ok(()),
        r => r,
    }
}
