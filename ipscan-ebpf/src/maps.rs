//! The program's maps, and the per-CPU state and counters every stage uses: STATS, the
//! clock, the CONFIG and SUMMARY slots.

use aya_ebpf::{
    Global,
    bindings::{BPF_F_MMAPABLE, xdp_action},
    helpers::{bpf_jiffies64, bpf_ktime_get_coarse_ns},
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};
use ipscan_common::{
    AddrKey, AutoSlot, BlockEntry, Config, PacketSummary, ProbeSet, Rule, SourceKey, SourceState,
    block::{Block4Data, CpuLocal, autoblock, counts},
    config::global_flags,
    feed::{self, FeedDrops, FeedEntry},
    frag::{FragKey, FragState},
    maps as m,
    probation::PROBATION_SETS,
    rules::MAX_RULES,
    stats,
    sweep::SweepHosts,
};

#[map]
pub(crate) static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

#[map]
pub(crate) static SOURCES: LruHashMap<SourceKey, SourceState> = LruHashMap::with_max_entries(m::SOURCES_MAX, 0);

/// Sources on probation: one port so far (scans) or one packet (floods), one per way of a set
/// ([`ProbeSet`]). Mmapable: the array then starts on a page, so each 256-byte set's first line,
/// all that a new source's packet reads, is one cache line; and `ipscan stats` counts the
/// sources on probation through a read-only mapping.
#[map]
pub(crate) static PROBATION: Array<ProbeSet> = Array::with_max_entries(PROBATION_SETS + 1, BPF_F_MMAPABLE);

#[map]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(m::EVENTS_BYTES, 0);

#[map]
pub(crate) static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stats::COUNT, 0);

/// The replay clock, written by user space before each BPF_PROG_TEST_RUN.
#[map]
pub(crate) static CLOCK: Array<u64> = Array::with_max_entries(1, 0);

/// Blocked IPv4 prefixes (CLI, restored state). LPM tries need BPF_F_NO_PREALLOC.
#[map]
pub(crate) static BLOCK4: LpmTrie<Block4Data, BlockEntry> = LpmTrie::with_max_entries(m::PREFIXES_MAX, 1);

#[map]
pub(crate) static BLOCK6: LpmTrie<[u8; 16], BlockEntry> = LpmTrie::with_max_entries(m::PREFIXES_MAX, 1);

/// Threat feeds ([`ipscan_common::feed`]): two tries per family, FEEDCTL's live word says which
/// one is read; user space writes them all.
#[map]
pub(crate) static FEED4_A: LpmTrie<Block4Data, FeedEntry> = LpmTrie::with_max_entries(feed::V4_MAX, 1);

#[map]
pub(crate) static FEED4_B: LpmTrie<Block4Data, FeedEntry> = LpmTrie::with_max_entries(feed::V4_MAX, 1);

#[map]
pub(crate) static FEED6_A: LpmTrie<[u8; 16], FeedEntry> = LpmTrie::with_max_entries(feed::V6_MAX, 1);

#[map]
pub(crate) static FEED6_B: LpmTrie<[u8; 16], FeedEntry> = LpmTrie::with_max_entries(feed::V6_MAX, 1);

#[map]
pub(crate) static FEEDCTL: Array<u64> = Array::with_max_entries(feed::ctl::SLOTS, 0);

/// The sets' names and sizes: user space's alone, here so that the loader makes and pins it.
#[map]
pub(crate) static FEEDSETS: Array<feed::FeedSet> = Array::with_max_entries(feed::SETS, 0);

/// Each set's drops, per CPU.
#[map]
pub(crate) static FEEDDROPS: PerCpuArray<FeedDrops> = PerCpuArray::with_max_entries(feed::SETS, 0);

/// How many BLOCK4/BLOCK6 and feed prefixes reach into each IPv4 /16 and each bucket of IPv6 /32s
/// ([`counts`]): a sender whose bucket counts none is not looked up in the tries. Written by user
/// space only (atomic adds through mmap).
#[map]
pub(crate) static BLOCKCOUNTS: Array<u64> = Array::with_max_entries(counts::SLOTS, BPF_F_MMAPABLE);

/// How many ALLOW4/ALLOW6 prefixes reach into each bucket, as BLOCKCOUNTS for the blocks: a
/// sender whose bucket counts none is not looked up in the allowlist's tries.
#[map]
pub(crate) static ALLOWCOUNTS: Array<u64> = Array::with_max_entries(counts::SLOTS, BPF_F_MMAPABLE);

/// Sources the program blocked itself on a threshold packet: a set-associative table
/// ([`ipscan_common::block::autoblock`]) that user space reads and edits through mmap.
#[map]
pub(crate) static AUTOBLOCK: Array<AutoSlot> = Array::with_max_entries(autoblock::SLOTS, BPF_F_MMAPABLE);

/// One word per AUTOBLOCK set: its 16-bit lane `way` is the tag ([`autoblock::Place`]) of the
/// address in that way, so a packet from an address that is not blocked is told so by one read
/// of a 128 KB array, without comparing four ways (a 4.7 MB table). Written before the way's
/// key, by the program and by user space; a stale tag of an emptied way costs one comparison.
#[map]
pub(crate) static AUTOTAGS: Array<u64> = Array::with_max_entries(autoblock::SETS, BPF_F_MMAPABLE);

/// One byte per IPv4 /16 and hashed IPv6 /32, not zero while AUTOBLOCK may hold an address of
/// it ([`autoblock::MARK_WORDS`]): most senders that are not blocked are told so by one read of a
/// 16 KB array, without the keyed hash and the tag word.
#[map]
pub(crate) static AUTOMARKS: Array<u64> = Array::with_max_entries(autoblock::MARK_WORDS, BPF_F_MMAPABLE);

/// Prefixes that are never blocked (value: allow_reason bits).
#[map]
pub(crate) static ALLOW4: LpmTrie<[u8; 4], u32> = LpmTrie::with_max_entries(m::PREFIXES_MAX, 1);

#[map]
pub(crate) static ALLOW6: LpmTrie<[u8; 16], u32> = LpmTrie::with_max_entries(m::PREFIXES_MAX, 1);

/// Destinations watched in `promisc` mode.
#[map]
pub(crate) static PROMISC4: LpmTrie<[u8; 4], u32> = LpmTrie::with_max_entries(256, 1);

#[map]
pub(crate) static PROMISC6: LpmTrie<[u8; 16], u32> = LpmTrie::with_max_entries(256, 1);

/// iplog's log/ignore rules, `nrules` of them used.
#[map]
pub(crate) static RULES: Array<Rule> = Array::with_max_entries(MAX_RULES as u32, 0);

#[map]
pub(crate) static FRAGS: LruHashMap<FragKey, FragState> = LruHashMap::with_max_entries(m::FRAGS_MAX, 0);

/// Per-CPU budget of per-packet events over all sources (slot 0: window start, 1: count).
#[map]
pub(crate) static PKTGLOBAL: PerCpuArray<[u64; 2]> = PerCpuArray::with_max_entries(1, 0);

/// Per-source budget of per-packet events.
#[map]
pub(crate) static PKTRATE: LruHashMap<AddrKey, RateState> = LruHashMap::with_max_entries(m::PKTRATE_MAX, 0);

/// Listening (protocol << 16 | port) pairs, kept current by user space, for blackholing.
#[map]
pub(crate) static LISTEN: HashMap<u32, u8> = HashMap::with_max_entries(m::LISTEN_MAX, 0);

/// Tripwire ports (`tripwire tcp|udp PORTS`), a bit each ([`ipscan_common::config::tripports`]):
/// one array read, which the verifier inlines, where a hash lookup is a call.
#[map]
pub(crate) static TRIPPORTS: Array<u64> = Array::with_max_entries(ipscan_common::config::tripports::WORDS, 0);

/// Tripwire addresses and prefixes (`tripwire addr NETS`).
#[map]
pub(crate) static TRIPADDR4: LpmTrie<[u8; 4], u32> = LpmTrie::with_max_entries(m::TRIPADDR_MAX, 1);

#[map]
pub(crate) static TRIPADDR6: LpmTrie<[u8; 16], u32> = LpmTrie::with_max_entries(m::TRIPADDR_MAX, 1);

/// Sweeps' first hosts, per (source, sweep) in SOURCES ([`ipscan_common::sweep`]).
#[map]
pub(crate) static SWEEPHOSTS: LruHashMap<SourceKey, SweepHosts> = LruHashMap::with_max_entries(m::SWEEPHOSTS_MAX, 0);

/// Per-CPU scratch for a fresh SWEEPHOSTS value.
#[map]
pub(crate) static HOSTS_SCRATCH: PerCpuArray<SweepHosts> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU scratch for fresh map values too big for the 512-byte BPF stack.
#[map]
pub(crate) static SCRATCH: PerCpuArray<SourceState> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU scratch for the block entry an auto-block is built in.
#[map]
pub(crate) static BLOCK_SCRATCH: PerCpuArray<BlockEntry> = PerCpuArray::with_max_entries(1, 0);

#[map]
pub(crate) static FRAG_SCRATCH: PerCpuArray<FragState> = PerCpuArray::with_max_entries(1, 0);

/// The current packet's summary (84 bytes kept off the stack).
#[map]
pub(crate) static SUMMARY: PerCpuArray<PacketSummary> = PerCpuArray::with_max_entries(1, 0);

/// Non-zero: the fast path has looked the current packet's source up in the block lists that
/// have entries (AUTOBLOCK, BLOCK4/BLOCK6). Passed through map memory, not a register: the
/// verifier does not track map contents, so it checks the slow path once rather than once per
/// value.
#[map]
pub(crate) static CHECKED: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// One word the parser's offsets pass through ([`ipscan_common::parse::Frame::opaque`]): the
/// verifier does not track map contents, so it forgets what it knew of an offset there.
#[map]
pub(crate) static FORGET: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// `v`, with what the verifier knows of it forgotten: passed through this CPU's FORGET slot,
/// memory the verifier does not track. For a value that the paths before it reach in several
/// ways and that what follows needs bounded (an index): the paths then go on as one. (0 if the
/// slot cannot be read, which does not happen.)
#[inline(always)]
pub(crate) fn forget(v: u64) -> u64 {
    match FORGET.get_ptr_mut(0) {
        // SAFETY: this CPU's slot, valid for the program's run; volatile, so that LLVM reads
        // back the stored value instead of reusing the register.
        Some(slot) => unsafe {
            core::ptr::write_volatile(slot, v);
            core::ptr::read_volatile(slot)
        },
        None => 0,
    }
}

/// Records whether the fast path looked the current packet's source up (see CHECKED).
#[inline(always)]
pub(crate) fn set_lists_checked(v: bool) {
    if let Some(c) = CHECKED.get_ptr_mut(0) {
        // SAFETY: per-CPU slot.
        unsafe { *c = v as u32 };
    }
}

#[inline(always)]
pub(crate) fn lists_checked() -> bool {
    CHECKED.get(0).is_some_and(|c| *c != 0)
}

/// Non-zero: read the clock from CLOCK instead of the kernel (set at load time; the verifier
/// prunes the unused branch because the global is read-only).
#[unsafe(no_mangle)]
pub(crate) static IPSCAN_REPLAY_CLOCK: Global<u8> = Global::new(0);

/// A source's per-packet event budget in the current second.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct RateState {
    pub(crate) window_ns: u64,
    pub(crate) count: u32,
    pub(crate) dropped: u32,
}

#[inline(always)]
pub(crate) fn count(slot: u32) {
    if let Some(c) = STATS.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *c += 1 };
    }
}

/// The verdict for a frame the policy drops: XDP_DROP, counted in DROPPED; under `dry_run`,
/// XDP_PASS, counted in DRY_RUN_PASSED.
#[inline(always)]
pub(crate) fn drop_verdict(cfg: &Config) -> u32 {
    if cfg.has(global_flags::DRY_RUN) {
        count(stats::DRY_RUN_PASSED);
        return xdp_action::XDP_PASS;
    }
    count(stats::DROPPED);
    xdp_action::XDP_DROP
}

/// This CPU's state ([`CpuLocal`]): the coarse clock of the current tick, and the drops of one
/// auto-block not yet added to its entry.
#[map]
pub(crate) static CPU: PerCpuArray<CpuLocal> = PerCpuArray::with_max_entries(1, 0);

/// CLOCK_MONOTONIC at tick resolution (kernel 5.11): windows and expiries are seconds long,
/// and the fine clock reads the clocksource through an indirect call. User space reads
/// CLOCK_MONOTONIC, the same clock, at most a tick ahead.
#[inline(always)]
pub(crate) fn now_ns() -> u64 {
    match CPU.get_ptr_mut(0) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        Some(c) => now_in(unsafe { &mut *c }),
        None if IPSCAN_REPLAY_CLOCK.load() != 0 => CLOCK.get(0).copied().unwrap_or(0),
        // SAFETY: helper without arguments.
        None => unsafe { bpf_ktime_get_coarse_ns() },
    }
}

/// [`now_ns`] with this CPU's state at hand. The coarse clock only moves on a tick, so it is
/// read once per tick per CPU and kept there: the verifier turns `bpf_jiffies64` into a plain
/// load (kernel 5.5, JIT), where the helper call costs about 20 ns on the reference machine
/// (two returns through the SRSO thunk).
#[inline(always)]
pub(crate) fn now_in(c: &mut CpuLocal) -> u64 {
    if IPSCAN_REPLAY_CLOCK.load() != 0 {
        return CLOCK.get(0).copied().unwrap_or(0);
    }
    // SAFETY: helper without arguments.
    let j = unsafe { bpf_jiffies64() };
    if c.tick_jiffies != j || c.tick_ns == 0 {
        c.tick_jiffies = j;
        // SAFETY: helper without arguments.
        c.tick_ns = unsafe { bpf_ktime_get_coarse_ns() };
    }
    c.tick_ns
}

/// The referent of a global function's pointer argument: the verifier lets a caller pass null
/// for any of them, so each is checked (and a null one makes the function do nothing).
#[inline(always)]
pub(crate) fn arg<'a, T>(p: *const T) -> Option<&'a T> {
    // SAFETY: null or, from every caller in this program, a pointer into a map value or the
    // caller's stack, valid for the call.
    unsafe { p.as_ref() }
}

/// The per-CPU slot the parser fills for this packet.
#[inline(always)]
pub(crate) fn summary_slot() -> Result<&'static mut PacketSummary, u32> {
    let p = SUMMARY.get_ptr_mut(0).ok_or(stats::MAP_ERRORS)?;
    // SAFETY: per-CPU slot; XDP runs to completion on one CPU without preemption by itself.
    Ok(unsafe { &mut *p })
}

#[inline(always)]
pub(crate) fn config() -> Result<&'static Config, u32> {
    // SAFETY: array slot 0 always exists; user space replaces it whole.
    CONFIG.get(0).ok_or(stats::MAP_ERRORS)
}

/// Adds to a counter in a map value shared by all CPUs. `core` has no 64-bit atomics for the
/// BPF target, so this is the BPF_ATOMIC | BPF_ADD instruction itself (kernel 5.12, commit
/// 5ca419f2864a; older kernels know it as BPF_XADD).
#[inline(always)]
pub(crate) fn atomic_add(field: &u64, v: u64) {
    // SAFETY: the field lives in a map value for the program's run; every writer uses atomics.
    unsafe {
        core::arch::asm!(
            "lock *(u64 *)({ptr} + 0) += {val}",
            ptr = in(reg) field as *const u64,
            val = in(reg) v,
            options(nostack),
        )
    };
}
