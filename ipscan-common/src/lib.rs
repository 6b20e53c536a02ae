//! Data layouts and pure decision logic shared by the XDP program and user space.
//!
//! Everything here is `no_std`, allocation-free and side-effect-free, so the kernel can run it
//! on map values and the host can unit-test it. Every type that crosses the kernel boundary is
//! `#[repr(C)]`, `Copy`, and has no implicit padding (each struct has a size assertion).

#![no_std]
// Inline BPF assembly for the jump-free comparisons (`flat`).
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

pub mod block;
pub mod classify;
pub mod config;
pub mod event;
pub mod feed;
pub mod flat;
pub mod frag;
pub mod packet;
pub mod parse;
pub mod probation;
pub mod reject;
pub mod rules;
pub mod sweep;
pub mod verify;
pub mod window;
pub mod zero;

pub use block::{AddrKey, AutoSlot, BlockEntry};
pub use classify::{DETECTIONS, Detection, PacketLine};
pub use config::{Config, DetectionConfig};
pub use event::{Event, EventKind};
pub use packet::PacketSummary;
pub use probation::{Probe, ProbeSet};
pub use rules::Rule;
pub use window::{SourceKey, SourceState};

/// Names of the maps in the object file; user space looks them up by these names.
pub mod maps {
    pub const CONFIG: &str = "CONFIG";
    pub const SOURCES: &str = "SOURCES";
    pub const EVENTS: &str = "EVENTS";
    pub const STATS: &str = "STATS";
    pub const CLOCK: &str = "CLOCK";
    pub const BLOCK4: &str = "BLOCK4";
    pub const BLOCK6: &str = "BLOCK6";
    pub const AUTOBLOCK: &str = "AUTOBLOCK";
    pub const ALLOW4: &str = "ALLOW4";
    pub const ALLOW6: &str = "ALLOW6";
    pub const RULES: &str = "RULES";
    pub const FRAGS: &str = "FRAGS";
    pub const PKTRATE: &str = "PKTRATE";
    pub const LISTEN: &str = "LISTEN";
    pub const PROMISC4: &str = "PROMISC4";
    pub const PROMISC6: &str = "PROMISC6";
    pub const PROBATION: &str = "PROBATION";
    pub const CPU: &str = "CPU";
    pub const AUTOTAGS: &str = "AUTOTAGS";
    pub const BLOCKCOUNTS: &str = "BLOCKCOUNTS";
    pub const AUTOMARKS: &str = "AUTOMARKS";
    pub const ALLOWCOUNTS: &str = "ALLOWCOUNTS";
    pub const TRIPPORTS: &str = "TRIPPORTS";
    pub const TRIPADDR4: &str = "TRIPADDR4";
    pub const TRIPADDR6: &str = "TRIPADDR6";
    pub const FEED4_A: &str = "FEED4_A";
    pub const FEED4_B: &str = "FEED4_B";
    pub const FEED6_A: &str = "FEED6_A";
    pub const FEED6_B: &str = "FEED6_B";
    pub const FEEDCTL: &str = "FEEDCTL";
    pub const FEEDSETS: &str = "FEEDSETS";
    pub const FEEDDROPS: &str = "FEEDDROPS";
    pub const SWEEPHOSTS: &str = "SWEEPHOSTS";
    /// A map's layout as the kernel holds it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Layout {
        pub name: &'static str,
        pub key_size: u32,
        pub value_size: u32,
        pub max_entries: u32,
    }

    const fn layout<K, V>(name: &'static str, max_entries: u32) -> Layout {
        Layout { name, key_size: size_of::<K>() as u32, value_size: size_of::<V>() as u32, max_entries }
    }

    /// The maps pinned per interface under the daemon's pin directory, so that blocks, allows,
    /// detection state and counters survive a restart and the CLI can reach them, with their
    /// layouts: the one table the loader checks pins against (a pin left by an ipscan whose
    /// layout differs is dropped) and a unit test checks the object against.
    /// (CPU holds drops not yet added to their AUTOBLOCK entries, AUTOTAGS the tags of its
    /// ways, AUTOMARKS the buckets of its addresses: all go with AUTOBLOCK. BLOCKCOUNTS goes
    /// with BLOCK4 and BLOCK6, ALLOWCOUNTS with ALLOW4 and ALLOW6; the FEED maps go together;
    /// SWEEPHOSTS goes with SOURCES, so that a sweep in progress keeps its first hosts.)
    pub const PINNED_LAYOUTS: [Layout; 22] = {
        use crate::{
            AutoSlot, BlockEntry, Config, ProbeSet, SourceKey, SourceState,
            block::{Block4Data, CpuLocal, autoblock, counts},
            feed::{self, FeedDrops, FeedEntry, FeedSet},
            probation::PROBATION_SETS,
            sweep::SweepHosts,
        };
        /// An LPM trie's key: a 4-byte prefix length, then the data.
        #[repr(C)]
        struct Lpm<D>(u32, D);
        [
            layout::<u32, Config>(CONFIG, 1),
            layout::<SourceKey, SourceState>(SOURCES, SOURCES_MAX),
            // The sets and the seed slot.
            layout::<u32, ProbeSet>(PROBATION, PROBATION_SETS + 1),
            layout::<u32, u64>(STATS, crate::stats::COUNT),
            layout::<Lpm<Block4Data>, BlockEntry>(BLOCK4, PREFIXES_MAX),
            layout::<Lpm<[u8; 16]>, BlockEntry>(BLOCK6, PREFIXES_MAX),
            layout::<u32, u64>(BLOCKCOUNTS, counts::SLOTS),
            layout::<u32, AutoSlot>(AUTOBLOCK, autoblock::SLOTS),
            layout::<u32, u64>(AUTOTAGS, autoblock::SETS),
            layout::<u32, u64>(AUTOMARKS, autoblock::MARK_WORDS),
            layout::<u32, CpuLocal>(CPU, 1),
            layout::<Lpm<[u8; 4]>, u32>(ALLOW4, PREFIXES_MAX),
            layout::<Lpm<[u8; 16]>, u32>(ALLOW6, PREFIXES_MAX),
            layout::<u32, u64>(ALLOWCOUNTS, counts::SLOTS),
            layout::<Lpm<Block4Data>, FeedEntry>(FEED4_A, feed::V4_MAX),
            layout::<Lpm<Block4Data>, FeedEntry>(FEED4_B, feed::V4_MAX),
            layout::<Lpm<[u8; 16]>, FeedEntry>(FEED6_A, feed::V6_MAX),
            layout::<Lpm<[u8; 16]>, FeedEntry>(FEED6_B, feed::V6_MAX),
            layout::<u32, u64>(FEEDCTL, feed::ctl::SLOTS),
            layout::<u32, FeedSet>(FEEDSETS, feed::SETS),
            layout::<u32, FeedDrops>(FEEDDROPS, feed::SETS),
            layout::<SourceKey, SweepHosts>(SWEEPHOSTS, SWEEPHOSTS_MAX),
        ]
    };

    /// The names of [`PINNED_LAYOUTS`].
    pub const PINNED: [&str; PINNED_LAYOUTS.len()] = {
        let mut names = [""; PINNED_LAYOUTS.len()];
        let mut i = 0;
        while i < names.len() {
            names[i] = PINNED_LAYOUTS[i].name;
            i += 1;
        }
        names
    };
    /// Prefixes in each of BLOCK4/BLOCK6/ALLOW4/ALLOW6.
    pub const PREFIXES_MAX: u32 = 65_536;
    /// Exact addresses the kernel can auto-block at once ([`crate::block::table`]: a full set
    /// gives up its oldest block).
    pub const AUTOBLOCK_MAX: u32 = 65_536;
    /// Fragment trains tracked at once.
    pub const FRAGS_MAX: u32 = 16_384;
    /// Sources whose per-packet event budget is tracked.
    pub const PKTRATE_MAX: u32 = 65_536;
    /// Listening (protocol, port) pairs for blackholing.
    pub const LISTEN_MAX: u32 = 4_096;
    /// Tripwire prefixes of each family.
    pub const TRIPADDR_MAX: u32 = 256;
    /// Sweeps whose first hosts are kept (SWEEPHOSTS, an LRU hash beside SOURCES).
    pub const SWEEPHOSTS_MAX: u32 = 16_384;
    /// Size of the SOURCES LRU hash: one entry per (source, detection) being tracked.
    pub const SOURCES_MAX: u32 = 65_536;
    /// Ring buffer size in bytes (a power of two, a multiple of the page size).
    pub const EVENTS_BYTES: u32 = 1 << 20;
}

/// Name of the XDP program in the object file.
pub const PROGRAM_NAME: &str = "ipscan";
/// Name of the egress program (a TC classifier) in the object file.
pub const EGRESS_PROGRAM_NAME: &str = "ipscan_egress";

/// Load-time global that switches the program's clock to the CLOCK map (replay and tests).
pub const GLOBAL_REPLAY_CLOCK: &str = "IPSCAN_REPLAY_CLOCK";

/// Load-time global that makes the kernel refuse the program (tests of the refusal path).
pub const GLOBAL_TEST_REFUSAL: &str = "IPSCAN_TEST_REFUSAL";

/// Address families as stored in keys and events.
pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;

/// Indices into the per-CPU STATS array. User space sums them over CPUs.
pub mod stats {
    /// Frames seen by the program.
    pub const PACKETS: u32 = 0;
    /// Frames passed. Not counted by the kernel (one per-CPU update less per packet): every
    /// frame is passed or dropped, so readers fill it in as PACKETS - DROPPED ([`derive`]).
    pub const PASSED: u32 = 1;
    /// Frames dropped.
    pub const DROPPED: u32 = 2;
    /// Frames that could not be parsed (truncated or malformed), passed untouched.
    pub const MALFORMED: u32 = 3;
    /// Frames that are not IP (ARP, LLDP, ...), passed untouched.
    pub const NOT_IP: u32 = 4;
    /// Map lookups or updates that failed; the frame was passed.
    pub const MAP_ERRORS: u32 = 5;
    /// Events that could not be reserved on the ring buffer.
    pub const LOST_EVENTS: u32 = 6;
    /// Detection events emitted (threshold crossings).
    pub const DETECTIONS: u32 = 7;
    /// Mode expiries noticed by the kernel before user space swept them.
    pub const KERNEL_EXPIRIES: u32 = 8;
    /// IPv6 frames whose extension-header chain was longer than the parser's bound.
    pub const V6_EXT_LIMIT: u32 = 9;
    /// IP fragments that are not first fragments (no transport header to classify).
    pub const FRAGMENTS: u32 = 10;
    /// Frames dropped because their source is blocked (manual or automatic).
    pub const BLOCKED: u32 = 11;
    /// Frames dropped by a hardening option (drop_synfin, blackhole, fool_nmap).
    pub const HARDENED: u32 = 12;
    /// Per-packet events left out by the per-source rate limit.
    pub const RATE_LIMITED: u32 = 13;
    /// Frames skipped by an `ignore` rule.
    pub const IGNORED: u32 = 14;
    /// Sources auto-blocked by the kernel.
    pub const AUTOBLOCKS: u32 = 15;
    /// Detections from allowlisted sources that were not blocked.
    pub const ALLOWLISTED: u32 = 16;
    /// Frames whose destination is outside the `promisc` networks.
    pub const NOT_WATCHED: u32 = 17;
    /// Auto-blocks still on that a full AUTOBLOCK set gave up for a newer one (the source's
    /// scan state was reset with it, so that it is detected and blocked again).
    pub const AUTOBLOCK_EVICTIONS: u32 = 18;
    /// Frames a verdict would have dropped, passed because of `dry_run` (DROPPED does not count
    /// them; BLOCKED and HARDENED do).
    pub const DRY_RUN_PASSED: u32 = 19;
    /// Rejects the host sent (resets, ICMP unreachables refusing a probe) that the egress
    /// program counted toward a source ([`crate::reject`]). Not frames received: PACKETS
    /// does not count them.
    pub const REJECTS: u32 = 20;
    /// Number of slots; keep last.
    pub const COUNT: u32 = 24;

    /// Human names for the slots, indexed by slot; used by `ipscan stats` and metrics.
    pub const NAMES: [&str; 21] = [
        "packets",
        "passed",
        "dropped",
        "malformed",
        "not_ip",
        "map_errors",
        "lost_events",
        "detections",
        "kernel_expiries",
        "ipv6_ext_limit",
        "fragments",
        "blocked",
        "hardened",
        "rate_limited",
        "ignored",
        "autoblocks",
        "allowlisted",
        "not_watched",
        "autoblock_evictions",
        "dry_run_passed",
        "rejects",
    ];

    /// Fills in the slots the kernel does not count, in counters read slot by slot and summed
    /// over CPUs (indexed by slot number).
    pub fn derive(counters: &mut [u64]) {
        let (packets, dropped) = match (counters.get(PACKETS as usize), counters.get(DROPPED as usize)) {
            (Some(p), Some(d)) => (*p, *d),
            _ => return,
        };
        if let Some(passed) = counters.get_mut(PASSED as usize) {
            // A reader may see a frame's PACKETS before its DROPPED: never below zero.
            *passed = packets.saturating_sub(dropped);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::stats;

    #[test]
    fn passed_is_derived_from_packets_and_dropped() {
        let mut c = [0u64; stats::COUNT as usize];
        c[stats::PACKETS as usize] = 10;
        c[stats::DROPPED as usize] = 3;
        c[stats::PASSED as usize] = 99;
        stats::derive(&mut c);
        assert_eq!(c[stats::PASSED as usize], 7);
        // A frame's DROPPED seen before its PACKETS (per-CPU reads are not atomic together).
        c[stats::DROPPED as usize] = 11;
        stats::derive(&mut c);
        assert_eq!(c[stats::PASSED as usize], 0);
        stats::derive(&mut []);
    }
}
