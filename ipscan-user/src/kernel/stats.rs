//! Kernel counters and map occupancy of one interface: what `ipscan stats` prints and what the
//! metrics endpoint serves. Both read the same maps (the daemon its own, the CLI the pinned
//! ones), so the two always agree.

use std::{borrow::Borrow, path::Path};

use aya::maps::{Array, HashMap as BpfHashMap, Map, MapData, PerCpuArray};
use ipscan_common::{
    Config, ProbeSet, SourceKey, SourceState, maps,
    probation::{PROBATION_SETS, PROBATION_SLOTS},
    stats,
};

use crate::kernel::{
    mmap::{Mapped, map_array},
    prefixes,
    tables::{TableError, Tables},
};

/// Reading the pinned maps fails the way the block tables' reads do.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error(transparent)]
    Table(#[from] TableError),
}

/// The STATS slots that have a name, summed over CPUs, in [`stats::NAMES`] order.
pub type Counters = [u64; stats::NAMES.len()];

/// Everything the kernel knows about one interface, read at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub counters: Counters,
    /// Entries in SOURCES (one per (source, detection) being tracked) and its size.
    pub sources: u64,
    pub sources_max: u32,
    /// Sources on probation (ways of PROBATION holding a key inside its detection's window: one
    /// port so far, or one packet for the floods; every spoofed source of a flood) and how many
    /// ways there are.
    pub probation: u64,
    pub probation_max: u32,
    /// Entries in AUTOBLOCK (addresses the kernel blocked) and its size.
    pub autoblock: u64,
    pub autoblock_max: u32,
    /// Prefixes in BLOCK4 and BLOCK6 (blocked by hand or restored).
    pub manual_blocks: u64,
    /// Packets and bytes dropped by the blocks that exist now (each entry counts its own).
    pub block_packets: u64,
    pub block_bytes: u64,
    /// The threat feed sets, by name, with their prefixes and drops.
    pub sets: Vec<crate::kernel::feeds::SetRow>,
}

/// A threat feed set as JSON (`ipscan stats --json`, `ipscan block sets --json`).
pub fn set_json(r: &crate::kernel::feeds::SetRow) -> serde_json::Value {
    let now = crate::clock::monotonic_ns();
    serde_json::json!({
        "name": r.name,
        "ipv4": r.v4,
        "ipv6": r.v6,
        "dropped_packets": r.packets,
        "dropped_bytes": r.bytes,
        "expires_in_s": (r.expires_ns != 0).then(|| r.expires_ns.saturating_sub(now).div_ceil(1_000_000_000)),
        "loaded_unix": r.loaded_unix_ns / 1_000_000_000,
        "source": r.source,
    })
}

impl Snapshot {
    /// The value of a named counter.
    pub fn counter(&self, name: &str) -> Option<u64> {
        stats::NAMES.iter().position(|n| *n == name).and_then(|i| self.counters.get(i).copied())
    }

    /// The snapshot as a JSON object (`ipscan stats --json`).
    pub fn to_json(&self, iface: &str) -> serde_json::Value {
        let counters: serde_json::Map<String, serde_json::Value> =
            stats::NAMES.iter().zip(self.counters).map(|(n, v)| ((*n).to_owned(), v.into())).collect();
        serde_json::json!({
            "iface": iface,
            "counters": counters,
            "sources": { "entries": self.sources, "max": self.sources_max },
            "probation": { "entries": self.probation, "max": self.probation_max },
            "autoblock": { "entries": self.autoblock, "max": self.autoblock_max },
            "blocks": {
                "manual": self.manual_blocks,
                "auto": self.autoblock,
                "dropped_packets": self.block_packets,
                "dropped_bytes": self.block_bytes,
            },
            "sets": self.sets.iter().map(set_json).collect::<Vec<_>>(),
        })
    }
}

/// The named STATS slots, each summed over CPUs.
pub fn counters<T: Borrow<MapData>>(map: &PerCpuArray<T, u64>) -> Result<Counters, StatsError> {
    let mut out = [0u64; stats::NAMES.len()];
    for (slot, v) in (0u32..).zip(out.iter_mut()) {
        let per_cpu = map.get(&slot, 0).map_err(|source| TableError::Map { name: maps::STATS, source })?;
        *v = per_cpu.iter().sum();
    }
    stats::derive(&mut out);
    Ok(out)
}

/// Sources on probation at `now` (CLOCK_MONOTONIC, the program's clock): PROBATION mapped
/// read-only (it is mmapable) and scanned, 4 MB in memory rather than 16,384 system calls, each
/// way judged by its detection's window in the CONFIG map.
pub fn probation(probation: &Map, config: &Map, now: u64) -> Result<u64, StatsError> {
    let name = maps::PROBATION;
    let cfg: Config = Array::<_, Config>::try_from(config)
        .and_then(|a| a.get(&0, 0))
        .map_err(|source| TableError::Map { name: maps::CONFIG, source })?;
    let sets: Mapped<ProbeSet> = map_array(probation, name, PROBATION_SETS + 1, false).map_err(TableError::from)?;
    let window = |kind: u8| cfg.detections.get(kind as usize).map_or(0, |d| d.window_ns);
    // The program may be writing a set: a torn copy only miscounts a way for this reading.
    let held: u64 = (0..PROBATION_SETS).map(|i| u64::from(sets.get(i).held(now, window))).sum();
    Ok(held)
}

/// The PROBATION and CONFIG maps of a loaded program.
pub fn probation_of(ebpf: &aya::Ebpf) -> Result<(&Map, &Map), StatsError> {
    let map = |name| ebpf.map(name).ok_or(TableError::Missing { name });
    Ok((map(maps::PROBATION)?, map(maps::CONFIG)?))
}

/// Reads a whole snapshot from the maps of one interface (`probation`: PROBATION and CONFIG).
pub fn snapshot<S: Borrow<MapData>, R: Borrow<MapData>>(
    stats_map: &PerCpuArray<S, u64>,
    sources: &BpfHashMap<R, SourceKey, SourceState>,
    tables: &Tables,
    probation_maps: (&Map, &Map),
) -> Result<Snapshot, StatsError> {
    let mut snap = Snapshot {
        counters: counters(stats_map)?,
        // Entries that vanish under the iteration (LRU eviction) only end it early.
        sources: sources.keys().filter(Result::is_ok).count() as u64,
        sources_max: maps::SOURCES_MAX,
        probation: probation(probation_maps.0, probation_maps.1, crate::clock::monotonic_ns())?,
        probation_max: PROBATION_SLOTS,
        autoblock_max: maps::AUTOBLOCK_MAX,
        ..Snapshot::default()
    };
    for row in tables.blocks() {
        if row.auto {
            snap.autoblock += 1;
        } else {
            snap.manual_blocks += 1;
        }
        snap.block_packets += row.entry.packets;
        snap.block_bytes += row.entry.bytes;
    }
    snap.sets = tables.feeds().map_or_else(Vec::new, |f| f.sets());
    Ok(snap)
}

/// Reads a snapshot from a daemon's pinned maps (`ipscan stats`).
pub fn read_pinned(dir: &Path) -> Result<Snapshot, StatsError> {
    let stats_map: PerCpuArray<MapData, u64> = PerCpuArray::try_from(prefixes::pinned(dir, maps::STATS)?)
        .map_err(|source| TableError::Map { name: maps::STATS, source })?;
    let sources: BpfHashMap<MapData, SourceKey, SourceState> =
        BpfHashMap::try_from(prefixes::pinned(dir, maps::SOURCES)?)
            .map_err(|source| TableError::Map { name: maps::SOURCES, source })?;
    let tables = Tables::open_pinned(dir)?;
    let probation = prefixes::pinned(dir, maps::PROBATION)?;
    let config = prefixes::pinned(dir, maps::CONFIG)?;
    snapshot(&stats_map, &sources, &tables, (&probation, &config))
}

/// The per-CPU STATS array of a loaded program (the daemon keeps it in its `Ebpf`).
pub fn stats_of(ebpf: &aya::Ebpf) -> Result<PerCpuArray<&MapData, u64>, StatsError> {
    let map = ebpf.map(maps::STATS).ok_or(TableError::Missing { name: maps::STATS })?;
    Ok(PerCpuArray::try_from(map).map_err(|source| TableError::Map { name: maps::STATS, source })?)
}

/// Lost events and left-out per-packet lines since a baseline, for the daemon's summary line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Loss {
    pub lost_events: u64,
    pub rate_limited: u64,
}

impl Loss {
    pub fn of(c: &Counters) -> Self {
        let at = |slot: u32| c.get(slot as usize).copied().unwrap_or(0);
        Self { lost_events: at(stats::LOST_EVENTS), rate_limited: at(stats::RATE_LIMITED) }
    }

    /// Growth since `base` (a pinned STATS array outlives daemons; the summary is per daemon).
    pub fn since(self, base: Self) -> Self {
        Self {
            lost_events: self.lost_events.saturating_sub(base.lost_events),
            rate_limited: self.rate_limited.saturating_sub(base.rate_limited),
        }
    }

    pub fn is_zero(self) -> bool {
        self == Self::default()
    }

    /// `ipscan: eth0: 12 events lost (ring buffer full), 567 per-packet lines left out (rate
    /// limit) since start`.
    pub fn line(self, iface: &str) -> String {
        format!(
            "ipscan: {iface}: {} events lost (ring buffer full), {} per-packet lines left out (rate limit) since start",
            self.lost_events, self.rate_limited
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_line_and_growth() {
        let mut c = [0u64; stats::NAMES.len()];
        c[stats::LOST_EVENTS as usize] = 1234;
        c[stats::RATE_LIMITED as usize] = 600;
        let base = Loss { lost_events: 0, rate_limited: 33 };
        let l = Loss::of(&c).since(base);
        assert_eq!(
            l.line("eth0"),
            "ipscan: eth0: 1234 events lost (ring buffer full), 567 per-packet lines left out (rate limit) since start"
        );
        assert!(!l.is_zero());
        assert!(Loss::of(&c).since(Loss::of(&c)).is_zero());
    }

    #[test]
    fn json_names_every_counter() {
        let mut s = Snapshot::default();
        s.counters[stats::PACKETS as usize] = 7;
        let v = s.to_json("eth0");
        assert_eq!(v["counters"]["packets"], 7);
        assert_eq!(v["counters"].as_object().map(|o| o.len()), Some(stats::NAMES.len()));
        assert_eq!(s.counter("packets"), Some(7));
        assert_eq!(s.counter("nope"), None);
    }
}
