//! All map and ring-buffer I/O of the program, and the per-packet policy built on the pure
//! functions of ipscan-common.

// aya-ebpf's map methods take `impl Borrow<K>`; passing keys and values by value would copy them
// (a SourceState is 256 bytes) onto the 512-byte BPF stack.
#![expect(clippy::needless_borrows_for_generic_args, reason = "by-value copies onto the BPF stack")]

use aya_ebpf::{
    Global,
    bindings::{BPF_F_MMAPABLE, BPF_NOEXIST, xdp_action},
    helpers::{bpf_get_prandom_u32, bpf_jiffies64, bpf_ktime_get_coarse_ns, bpf_loop},
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf, lpm_trie::Key},
};
use ipscan_common::{
    AddrKey, AutoSlot, BlockEntry, Config, DETECTIONS, DetectionConfig, Event, EventKind, FAMILY_V4, PacketLine,
    PacketSummary, ProbeSet, Rule, SourceKey, SourceState,
    block::{Block4Data, CpuLocal, Pending, PendingDrops, block4_data, near, table},
    classify::{self, Detection},
    config::{GLOBAL_PACKET_EVENTS_PER_SEC, global_flags as g},
    event::event_flags,
    frag::{FragKey, FragState, frag_anomalies},
    maps as m,
    packet::{PROTO_TCP, PROTO_UDP, anomalies, tcp_flags},
    parse::IpSender,
    rules::{ACTION_LOG, MAX_RULES},
    stats,
    window::{PROBATION_SEED_SLOT, PROBATION_SETS, PROBATION_WAYS, filter},
};

#[map]
static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

#[map]
static SOURCES: LruHashMap<SourceKey, SourceState> = LruHashMap::with_max_entries(m::SOURCES_MAX, 0);

/// Sources on probation: one port so far (scans) or one packet (floods), one per way of a set
/// ([`ProbeSet`]). Mmapable: the array then starts on a page, so each 256-byte set's first line,
/// all that a new source's packet reads, is one cache line; and `ipscan stats` counts the
/// sources on probation through a read-only mapping.
#[map]
static PROBATION: Array<ProbeSet> = Array::with_max_entries(PROBATION_SETS + 1, BPF_F_MMAPABLE);

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(m::EVENTS_BYTES, 0);

#[map]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stats::COUNT, 0);

/// The replay clock, written by user space before each BPF_PROG_TEST_RUN.
#[map]
static CLOCK: Array<u64> = Array::with_max_entries(1, 0);

/// Blocked IPv4 prefixes (CLI, restored state). LPM tries need BPF_F_NO_PREALLOC.
#[map]
static BLOCK4: LpmTrie<Block4Data, BlockEntry> = LpmTrie::with_max_entries(m::PREFIXES_MAX, 1);

#[map]
static BLOCK6: LpmTrie<[u8; 16], BlockEntry> = LpmTrie::with_max_entries(m::PREFIXES_MAX, 1);

/// How many BLOCK4/BLOCK6 prefixes reach into each IPv4 /16 and each bucket of IPv6 /32s
/// ([`near`]): a sender whose bucket counts none is not looked up in the tries. Written by user
/// space only (atomic adds through mmap).
#[map]
static BLOCKCOUNTS: Array<u64> = Array::with_max_entries(near::SLOTS, BPF_F_MMAPABLE);

/// How many ALLOW4/ALLOW6 prefixes reach into each bucket, as BLOCKCOUNTS for the blocks: a
/// sender whose bucket counts none is not looked up in the allowlist's tries.
#[map]
static ALLOWCOUNTS: Array<u64> = Array::with_max_entries(near::SLOTS, BPF_F_MMAPABLE);

/// Sources the program blocked itself on a threshold packet: a set-associative table
/// ([`ipscan_common::block::table`]) that user space reads and edits through mmap.
#[map]
static AUTOBLOCK: Array<AutoSlot> = Array::with_max_entries(table::SLOTS, BPF_F_MMAPABLE);

/// One word per AUTOBLOCK set: its 16-bit lane `way` is the tag ([`table::Place`]) of the
/// address in that way, so a packet from an address that is not blocked is told so by one read
/// of a 128 KB array, without comparing four ways (a 4.7 MB table). Written before the way's
/// key, by the program and by user space; a stale tag of an emptied way costs one comparison.
#[map]
static AUTOTAGS: Array<u64> = Array::with_max_entries(table::SETS, BPF_F_MMAPABLE);

/// One byte per IPv4 /16 and hashed IPv6 /32, not zero while AUTOBLOCK may hold an address of
/// it ([`table::MARK_WORDS`]): most senders that are not blocked are told so by one read of a
/// 16 KB array, without the keyed hash and the tag word.
#[map]
static AUTOMARKS: Array<u64> = Array::with_max_entries(table::MARK_WORDS, BPF_F_MMAPABLE);

/// Prefixes that are never blocked (value: allow_reason bits).
#[map]
static ALLOW4: LpmTrie<[u8; 4], u32> = LpmTrie::with_max_entries(m::PREFIXES_MAX, 1);

#[map]
static ALLOW6: LpmTrie<[u8; 16], u32> = LpmTrie::with_max_entries(m::PREFIXES_MAX, 1);

/// Destinations watched in `promisc` mode.
#[map]
static PROMISC4: LpmTrie<[u8; 4], u32> = LpmTrie::with_max_entries(256, 1);

#[map]
static PROMISC6: LpmTrie<[u8; 16], u32> = LpmTrie::with_max_entries(256, 1);

/// iplog's log/ignore rules, `nrules` of them used.
#[map]
static RULES: Array<Rule> = Array::with_max_entries(MAX_RULES as u32, 0);

#[map]
static FRAGS: LruHashMap<FragKey, FragState> = LruHashMap::with_max_entries(m::FRAGS_MAX, 0);

/// Per-CPU budget of per-packet events over all sources (slot 0: window start, 1: count).
#[map]
static PKTGLOBAL: PerCpuArray<[u64; 2]> = PerCpuArray::with_max_entries(1, 0);

/// Per-source budget of per-packet events.
#[map]
static PKTRATE: LruHashMap<AddrKey, RateState> = LruHashMap::with_max_entries(m::PKTRATE_MAX, 0);

/// Listening (protocol << 16 | port) pairs, kept current by user space, for blackholing.
#[map]
static LISTEN: HashMap<u32, u8> = HashMap::with_max_entries(m::LISTEN_MAX, 0);

/// Per-CPU scratch for fresh map values too big for the 512-byte BPF stack.
#[map]
static SCRATCH: PerCpuArray<SourceState> = PerCpuArray::with_max_entries(1, 0);

#[map]
static FRAG_SCRATCH: PerCpuArray<FragState> = PerCpuArray::with_max_entries(1, 0);

/// The current packet's summary (84 bytes kept off the stack).
#[map]
static SUMMARY: PerCpuArray<PacketSummary> = PerCpuArray::with_max_entries(1, 0);

/// Non-zero: the fast path has looked the current packet's source up in the block lists that
/// have entries (AUTOBLOCK, BLOCK4/BLOCK6). Passed through map memory, not a register: the
/// verifier does not track map contents, so it checks the slow path once rather than once per
/// value.
#[map]
static CHECKED: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// Records whether the fast path looked the current packet's source up (see CHECKED).
#[inline(always)]
pub fn set_lists_checked(v: bool) {
    if let Some(c) = CHECKED.get_ptr_mut(0) {
        // SAFETY: per-CPU slot.
        unsafe { *c = v as u32 };
    }
}

#[inline(always)]
fn lists_checked() -> bool {
    CHECKED.get(0).is_some_and(|c| *c != 0)
}

/// Non-zero: read the clock from CLOCK instead of the kernel (set at load time; the verifier
/// prunes the unused branch because the global is read-only).
#[unsafe(no_mangle)]
static IPSCAN_REPLAY_CLOCK: Global<u8> = Global::new(0);

/// A source's per-packet event budget in the current second.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RateState {
    window_ns: u64,
    count: u32,
    dropped: u32,
}

const SEC: u64 = 1_000_000_000;

#[inline(always)]
pub fn count(slot: u32) {
    if let Some(c) = STATS.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *c += 1 };
    }
}

/// This CPU's state ([`CpuLocal`]): the coarse clock of the current tick, and the drops of one
/// auto-block not yet added to its entry.
#[map]
static CPU: PerCpuArray<CpuLocal> = PerCpuArray::with_max_entries(1, 0);

/// CLOCK_MONOTONIC at tick resolution (kernel 5.11): windows and expiries are seconds long,
/// and the fine clock reads the clocksource through an indirect call. User space reads
/// CLOCK_MONOTONIC, the same clock, at most a tick ahead.
#[inline(always)]
fn now_ns() -> u64 {
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
fn now_in(c: &mut CpuLocal) -> u64 {
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

/// The per-CPU slot the parser fills for this packet.
#[inline(always)]
pub fn summary_slot() -> Result<&'static mut PacketSummary, u32> {
    let p = SUMMARY.get_ptr_mut(0).ok_or(stats::MAP_ERRORS)?;
    // SAFETY: per-CPU slot; XDP runs to completion on one CPU without preemption by itself.
    Ok(unsafe { &mut *p })
}

#[inline(always)]
pub fn config() -> Result<&'static Config, u32> {
    // SAFETY: array slot 0 always exists; user space replaces it whole.
    CONFIG.get(0).ok_or(stats::MAP_ERRORS)
}

/// Adds to a counter in a map value shared by all CPUs. `core` has no 64-bit atomics for the
/// BPF target, so this is the BPF_ATOMIC | BPF_ADD instruction itself (kernel 5.12, commit
/// 5ca419f2864a; older kernels know it as BPF_XADD).
#[inline(always)]
fn atomic_add(field: &u64, v: u64) {
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

#[inline(always)]
fn v4(a: &[u8; 16]) -> [u8; 4] {
    [a[0], a[1], a[2], a[3]]
}

/// Who sent a packet, as the block lists need it.
#[repr(C)]
pub struct Sender {
    src: [u8; 16],
    /// IP payload bytes, charged to a block entry.
    bytes: u32,
    family: u8,
}

impl Sender {
    #[inline(always)]
    fn of(p: &PacketSummary) -> Self {
        Self { src: p.src, bytes: p.ip_payload_len, family: p.family }
    }

    /// The sender the fast path read from the IP header.
    #[inline(always)]
    pub fn of_ip(ip: &IpSender) -> Self {
        let mut src = [0u8; 16];
        for (i, w) in ip.src.iter().enumerate() {
            src[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
        }
        Self { src, bytes: ip.ip_payload_len, family: ip.family }
    }
}

/// Whether an allowlist prefix covers the address.
#[inline(always)]
fn allowlisted(src: &[u8; 16], family: u8) -> bool {
    if family == FAMILY_V4 {
        ALLOW4.get(Key::new(32, v4(src))).is_some()
    } else {
        ALLOW6.get(Key::new(128, *src)).is_some()
    }
}

/// [`allowlisted`], with the address's ALLOWCOUNTS bucket read first: most senders dropped by
/// a prefix blocked by hand (a flood from a blocked source) are far from every allow, and an LPM
/// lookup is a kernel call. A map that cannot be read says look. (An auto-block on its threshold
/// packet, rare, looks the allowlist up as it is: read there, the count made `ipscan_record_one`
/// slower for every packet.)
#[inline(always)]
fn allowlisted_near(src: &[u8; 16], family: u8) -> bool {
    let w0 = u32::from_le_bytes([src[0], src[1], src[2], src[3]]);
    ALLOWCOUNTS.get(near::bucket(family, w0)).is_none_or(|c| *c != 0) && allowlisted(src, family)
}

#[inline(always)]
fn watched(p: &PacketSummary) -> bool {
    if p.family == FAMILY_V4 {
        PROMISC4.get(Key::new(32, v4(&p.dst))).is_some()
    } else {
        PROMISC6.get(Key::new(128, p.dst)).is_some()
    }
}

/// Counts a drop against an active block entry; false when the entry has expired.
#[inline(always)]
fn charge(e: &BlockEntry, now: u64, bytes: u32) -> bool {
    if !e.active(now) {
        return false;
    }
    atomic_add(&e.packets, 1);
    atomic_add(&e.bytes, bytes as u64);
    store_last_drop(e, now);
    true
}

/// Whether the source is blocked now (and not allowlisted); counts the drop on the entry.
/// Each list is looked at only when the CONFIG flags say it has entries, and neither when the
/// fast path has looked already; AUTOBLOCK first, as on the fast path, so that an address in
/// both lists is charged to its auto-block whatever its frame.
// A BPF subprogram of its own: its locals get their own stack frame.
#[inline(never)]
fn blocked(cfg: &Config, s: &Sender) -> bool {
    !lists_checked()
        && ((cfg.has(g::AUTOBLOCKS) && autoblocked(s))
            || (cfg.has(g::BLOCKLIST)
                && near_blocklisted(s.family, u32::from_le_bytes([s.src[0], s.src[1], s.src[2], s.src[3]]))
                && blocklisted(s)))
}

/// Whether a prefix blocked by hand may cover a sender whose address starts with the word `w0`
/// (as loaded): its BLOCKCOUNTS bucket is not zero. Never false for a sender that a prefix
/// covers; a map that cannot be read says yes.
#[inline(always)]
pub fn near_blocklisted(family: u8, w0: u32) -> bool {
    BLOCKCOUNTS.get(near::bucket(family, w0)).is_none_or(|c| *c != 0)
}

/// Whether a prefix blocked by hand (BLOCK4, BLOCK6) covers the source and it is not
/// allowlisted; counts the drop on the entry. Callers ask [`near_blocklisted`] first.
// A BPF subprogram of its own: its locals (the LPM keys) get their own stack frame.
#[inline(never)]
pub fn blocklisted(s: &Sender) -> bool {
    let hit = if s.family == FAMILY_V4 {
        BLOCK4.get(Key::new(32, block4_data(v4(&s.src))))
    } else {
        BLOCK6.get(Key::new(128, s.src))
    };
    // The allowlist is consulted only on a hit: it costs nothing on ordinary traffic.
    hit.is_some_and(|e| !allowlisted_near(&s.src, s.family) && charge(e, now_ns(), s.bytes))
}

/// The AUTOBLOCK set and tag of a key (as its words).
#[inline(always)]
fn autoblock_place(w: &[u32; 5]) -> table::Place {
    let seed = AUTOBLOCK.get(table::SEED_SLOT).map_or(0, |s| s.entry.added_ns);
    table::place_words(w, seed)
}

/// Whether the kernel auto-blocked the source and the block is still on; counts the drop.
/// No allowlist lookup: the kernel never auto-blocks an allowlisted source, and `ipscan allow
/// add` removes the auto-blocks a new allow covers.
#[inline(always)]
pub fn autoblocked(s: &Sender) -> bool {
    autoblocked_words(&AddrKey::new(s.src, s.family).words(), s.bytes)
}

/// [`autoblocked`] for a source given as its key's words (the fast path reads them from the
/// frame), charging `bytes`.
#[inline(always)]
pub fn autoblocked_words(w: &[u32; 5], bytes: u32) -> bool {
    let (word, lane) = table::mark_of(w[4] as u8, w[0]);
    if !AUTOMARKS.get(word).is_none_or(|v| table::marked(*v, lane)) {
        return false;
    }
    let place = autoblock_place(w);
    let ways = AUTOTAGS.get(place.set).map_or(table::ALL_WAYS, |t| table::tagged_ways(*t, place.tag));
    if ways == 0 {
        return false;
    }
    let first = place.set * table::WAYS;
    for way in 0..table::WAYS {
        if ways & table::way_bit(way) != 0
            && let Some(slot) = AUTOBLOCK.get(first + way)
            && slot.holds_words(w)
        {
            return charge_auto(first + way, w[0], &slot.entry, bytes);
        }
    }
    false
}

/// [`charge`] for the auto-block in AUTOBLOCK slot `index` (`key0`: its address's first key
/// word): the drop is counted in this CPU's pending value when that is this block's, with plain
/// adds, and reaches the entry every [`PendingDrops::FLUSH_AT`] drops (see [`PendingDrops`]).
#[inline(always)]
fn charge_auto(index: u32, key0: u32, e: &BlockEntry, bytes: u32) -> bool {
    let Some(c) = CPU.get_ptr_mut(0) else {
        return charge(e, now_ns(), bytes);
    };
    // SAFETY: per-CPU slot, no concurrent writer on this CPU.
    let c = unsafe { &mut *c };
    let now = now_in(c);
    if !e.active(now) {
        return false;
    }
    // Still in its slot, even expired: user space counts its pending drops when it sweeps it.
    let owner_on = |v: &PendingDrops| {
        AUTOBLOCK
            .get(v.slot.wrapping_sub(1))
            .is_some_and(|s| !s.is_empty() && s.key0() == v.key0 && s.entry.added_ns == v.added_ns)
    };
    match c.pending.add(index, key0, e.added_ns, bytes, owner_on) {
        Pending::Kept => {}
        Pending::Flush { packets, bytes } => {
            atomic_add(&e.packets, packets);
            atomic_add(&e.bytes, bytes);
        }
        Pending::Direct => {
            atomic_add(&e.packets, 1);
            atomic_add(&e.bytes, bytes as u64);
        }
    }
    store_last_drop(e, now);
    true
}

/// The entry's last-drop time: a plain 8-byte store into the map value (LPM tries and array
/// reads only hand out shared references); a lost race only loses a timestamp.
#[inline(always)]
fn store_last_drop(e: &BlockEntry, now: u64) {
    // SAFETY: an 8-aligned field of a map value valid for the program's run.
    unsafe {
        core::arch::asm!(
            "*(u64 *)({ptr} + 0) = {val}",
            ptr = in(reg) &e.last_ns as *const u64,
            val = in(reg) now,
            options(nostack),
        )
    };
}

/// Marks the AUTOMARKS bucket of an address ([`table::MARKED`]).
// A BPF subprogram of its own: inlined, its locals would grow `autoblock_put`'s frame past the
// 512-byte limit of the deepest call chain.
#[inline(never)]
fn mark(key: &AddrKey) {
    let (word, lane) = table::mark_of(key.family, key.words()[0]);
    if let Some(m) = AUTOMARKS.get_ptr_mut(word) {
        // SAFETY: byte `lane` (< 8) of an AUTOMARKS value.
        unsafe { core::ptr::write_volatile(m.cast::<u8>().add(lane as usize), table::MARKED) };
    }
}

/// Puts a block into the source's set (see [`table::choose`]); false on a map error.
// A BPF subprogram of its own: verified with its caller's state once per call site rather than
// inlined into every detection's threshold path.
#[inline(never)]
fn autoblock_put(key: &AddrKey, entry: &BlockEntry, now: u64) -> bool {
    let place = autoblock_place(&key.words());
    let first = place.set * table::WAYS;
    let Some(choice) = table::choose(|w| AUTOBLOCK.get(first + w).map(|s| table::Way::of(s, key, now))) else {
        return false;
    };
    let way = choice.way & (table::WAYS - 1);
    let (Some(dst), Some(tags)) = (AUTOBLOCK.get_ptr_mut(first + way), AUTOTAGS.get_ptr_mut(place.set)) else {
        return false;
    };
    // The mark and the tag before the key: a reader that sees the key finds it through them.
    mark(key);
    // SAFETY: lane `way` (< 4) of the set's tag word, a value of this map.
    unsafe { core::ptr::write_volatile(tags.cast::<u16>().add(way as usize), place.tag) };
    // The set was full of blocks still on: the oldest is given up. Its source may still be
    // scanning, and in its modes it would cross no threshold again until they lapse; its scan
    // state goes with the block, so that it starts over (probation, threshold) and is blocked
    // again. User space sees the states go as evictions and logs their totals.
    // SAFETY: an array slot of this map, read before it is overwritten.
    let evicted = choice.gives_up_a_block.then(|| unsafe { (*dst).key });
    // SAFETY: an array slot of this map.
    unsafe { AutoSlot::store(dst, key, entry) };
    // The mark again after the key: user space may have been taking it away meanwhile
    // (`table::CLEARING`) without seeing the key.
    mark(key);
    if let Some(k) = evicted {
        count(stats::AUTOBLOCK_EVICTIONS);
        forget_scan_states(&k);
    }
    true
}

/// Removes an address's SOURCES states of every detection that blocks its source.
// A BPF subprogram of its own: its locals get their own stack frame.
#[inline(never)]
fn forget_scan_states(k: &AddrKey) {
    let Ok(cfg) = config() else {
        return;
    };
    for kind in 0..DETECTIONS.len() {
        if kind == Detection::Smurf as usize || cfg.detections.get(kind).is_none_or(|d| d.block_ns == 0) {
            continue;
        }
        let key = SourceKey { addr: k.addr, family: k.family, kind: kind as u8, _pad: [0; 2] };
        let _ = SOURCES.remove(&key);
    }
}

/// What the rule walk found (the bpf_loop callback's context, on the caller's stack).
#[repr(C)]
struct RuleWalk {
    /// 1: an ignore rule matched; 2: a log rule matched (wins).
    found: u64,
}

/// iplog semantics: a matching `log` rule wins over every `ignore` rule.
///
/// The walk runs under bpf_loop (kernel 5.17, commit e6f2dd0f8067): the verifier checks the
/// callback once, where an open-coded loop of MAX_RULES iterations was checked once per
/// iteration for every distinct state reaching it and blew the one-million-instruction budget.
#[inline(never)]
fn ignored(cfg: &Config) -> bool {
    let mut walk = RuleWalk { found: 0 };
    let n = if cfg.nrules > MAX_RULES as u32 { MAX_RULES as u32 } else { cfg.nrules };
    // SAFETY: the callback has the signature bpf_loop expects and only touches `walk`.
    unsafe { bpf_loop(n, rule_step as *mut core::ffi::c_void, (&mut walk as *mut RuleWalk).cast(), 0) };
    walk.found == 1
}

/// One rule: 0 continues the walk, 1 stops it.
extern "C" fn rule_step(i: u32, ctx: *mut core::ffi::c_void) -> i64 {
    // The packet is read from its per-CPU slot rather than passed in: the callback context
    // is a stack pointer, and this keeps it to one plain integer.
    let (Some(p), Some(r)) = (SUMMARY.get(0), RULES.get(i)) else {
        return 1;
    };
    if !r.matches(p) {
        return 0;
    }
    let walk = ctx.cast::<RuleWalk>();
    // SAFETY: ctx is the caller's RuleWalk for the duration of bpf_loop.
    unsafe {
        if r.action == ACTION_LOG {
            (*walk).found = 2;
            return 1;
        }
        (*walk).found = 1;
    }
    0
}

/// Takes one unit of this CPU's budget for per-packet events of all sources.
#[inline(always)]
fn global_budget(now: u64) -> bool {
    let Some(g) = PKTGLOBAL.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: per-CPU slot.
    let g = unsafe { &mut *g };
    if now.saturating_sub(g[0]) > SEC {
        g[0] = now;
        g[1] = 0;
    }
    if g[1] < GLOBAL_PACKET_EVENTS_PER_SEC as u64 {
        g[1] += 1;
        true
    } else {
        false
    }
}

/// Takes one unit of the source's per-packet event budget (after the global one, see
/// [`line`]). A source over budget gets its left-out count reported when its next second
/// begins.
// A BPF subprogram of its own: its locals get their own stack frame.
#[inline(never)]
fn budget(cfg: &Config, p: &PacketSummary, now: u64) -> bool {
    let key = AddrKey::new(p.src, p.family);
    let st = match PKTRATE.get_ptr_mut(&key) {
        Some(s) => s,
        None => {
            let fresh = RateState { window_ns: now, count: 0, dropped: 0 };
            let _ = PKTRATE.insert(&key, &fresh, BPF_NOEXIST as u64);
            match PKTRATE.get_ptr_mut(&key) {
                Some(s) => s,
                None => {
                    count(stats::MAP_ERRORS);
                    return false;
                }
            }
        }
    };
    // SAFETY: LRU value pointer valid for this run.
    let st = unsafe { &mut *st };
    if now.saturating_sub(st.window_ns) > SEC {
        if st.dropped != 0 {
            emit_packet(EventKind::RateLimited, 0, 0, now, st.dropped as u64, p);
        }
        st.window_ns = now;
        st.count = 0;
        st.dropped = 0;
    }
    if st.count < cfg.packet_events_per_sec {
        st.count += 1;
        true
    } else {
        st.dropped += 1;
        count(stats::RATE_LIMITED);
        false
    }
}

#[inline(always)]
fn line(cfg: &Config, p: &PacketSummary, now: u64, l: PacketLine, flags: u8) {
    // The global budget comes first, inlined: a flood from many sources then costs no
    // per-source state, cannot fill the ring buffer, and no subprogram call either.
    if !global_budget(now) {
        count(stats::RATE_LIMITED);
        return;
    }
    if budget(cfg, p, now) {
        emit_packet(EventKind::Packet, l as u8, flags, now, 1, p);
    }
}

/// The per-packet work after parsing; returns the verdict.
#[inline(always)]
pub fn process(cfg: &Config, p: &PacketSummary) -> Result<u32, u32> {
    if cfg.has(g::BLOCKLIST | g::AUTOBLOCKS) && blocked(cfg, &Sender::of(p)) {
        count(stats::BLOCKED);
        return Ok(xdp_action::XDP_DROP);
    }
    if cfg.has(g::PROMISC) && !watched(p) {
        count(stats::NOT_WATCHED);
        return Ok(xdp_action::XDP_PASS);
    }
    if cfg.nrules != 0 && ignored(cfg) {
        count(stats::IGNORED);
        return Ok(xdp_action::XDP_PASS);
    }
    // The subprograms are called only when there is something for them to do: each call and
    // return costs (the SRSO mitigation on the reference machine).
    let anomalous = cfg.has(g::VERBOSE) && p.anomalies != 0;
    let bogus = cfg.has(g::BOGUS) && p.proto == PROTO_TCP && p.has_transport() && classify::is_bogus(p.tcp_flags);
    let traceroute = cfg.has(g::TRACEROUTE) && classify::is_traceroute(p);
    if anomalous || bogus || traceroute || p.is_fragment() {
        immediate(cfg, p, anomalous, bogus, traceroute);
    }

    let mut verdict = xdp_action::XDP_PASS;
    // Detections this packet counted toward whose source is in the mode: they suppress the
    // packet's ordinary line.
    let mut in_mode = false;
    let set = classify::detections(p);
    // The clock is read only for packets that need it: an established flow's ACK does not.
    // A UDP traceroute probe gets its traceroute line only, as in iplog (whose UDP handler
    // returns there); TCP and ICMP probes, which iplog did not call traceroutes, keep theirs.
    let ordinary =
        if cfg.has(g::SCANS_ONLY) || (traceroute && p.proto == PROTO_UDP) { None } else { classify::ordinary_line(p) };
    let now = if set != 0 || ordinary.is_some() { now_ns() } else { 0 };
    if set != 0 {
        // One test per detection, unrolled: a loop over the detections (by a counter, which the
        // verifier can bound) ran its compare-and-branch nine times around the calls, and after
        // each call's return through the SRSO thunk its branches were mispredicted. The answers
        // are OR-ed and read once, after the calls: the verifier then follows one state through
        // the calls, not one per combination of answers.
        let mut all = 0u64;
        let mut record = |i: usize| -> Result<(), u32> {
            if set & (1 << i) != 0
                && let Some(dc) = cfg.detections.get(i)
            {
                let r = ipscan_record_one(dc, now, i as u32, Detection::counts_ports_at(i) as u32, p);
                if r & RECORD_ERROR != 0 {
                    return Err((r >> 32) as u32);
                }
                all |= r;
            }
            Ok(())
        };
        record(0)?;
        record(1)?;
        record(2)?;
        record(3)?;
        record(4)?;
        record(5)?;
        record(6)?;
        record(7)?;
        record(8)?;
        const _: () = assert!(DETECTIONS.len() == 9, "one record() call per detection");
        in_mode = all & RECORD_IN_MODE != 0;
        if all & RECORD_DROP != 0 {
            verdict = xdp_action::XDP_DROP;
        }
    }
    if !in_mode && let Some(l) = ordinary {
        let wanted = match l {
            PacketLine::TcpAttempt => cfg.has(g::LOG_TCP),
            PacketLine::UdpDgram => cfg.has(g::LOG_UDP),
            _ => cfg.has(g::LOG_ICMP),
        };
        if wanted {
            line(cfg, p, now, l, 0);
        }
    }
    if verdict != xdp_action::XDP_DROP
        && cfg.has(g::DROP_SYNFIN | g::FOOL_NMAP | g::BLACKHOLE_TCP | g::BLACKHOLE_UDP)
        && hardened(cfg, p)
    {
        count(stats::HARDENED);
        verdict = xdp_action::XDP_DROP;
    }
    Ok(verdict)
}

/// Lines reported on the packet itself: verbose anomalies, fragment attacks, bogus flags,
/// traceroute probes.
// A BPF subprogram of its own: its locals get their own stack frame.
#[inline(never)]
fn immediate(cfg: &Config, p: &PacketSummary, anomalous: bool, bogus: bool, traceroute: bool) {
    let now = now_ns();
    if anomalous {
        if p.anomalies & anomalies::SHORT != 0 {
            line(cfg, p, now, PacketLine::Short, 0);
        }
        if p.anomalies & anomalies::BAD_CHECKSUM != 0 {
            line(cfg, p, now, PacketLine::BadChecksum, 0);
        }
    }
    if p.is_fragment() {
        count(stats::FRAGMENTS);
        if cfg.has(g::FRAG) {
            fragment(cfg, p, now);
        }
    }
    if bogus {
        line(cfg, p, now, PacketLine::Bogus, 0);
    }
    if traceroute {
        line(cfg, p, now, PacketLine::Traceroute, 0);
    }
}

// A BPF subprogram of its own: its locals get their own stack frame.
#[inline(never)]
fn fragment(cfg: &Config, p: &PacketSummary, now: u64) {
    let key = FragKey::of(p);
    let st = match FRAGS.get_ptr_mut(&key) {
        Some(s) => s,
        None => {
            let Some(fresh) = FRAG_SCRATCH.get_ptr_mut(0) else {
                count(stats::MAP_ERRORS);
                return;
            };
            // SAFETY: per-CPU scratch slot, used only here and only on this CPU.
            let fresh = unsafe { &mut *fresh };
            fresh.reset(now);
            let _ = FRAGS.insert(&key, &*fresh, BPF_NOEXIST as u64);
            match FRAGS.get_ptr_mut(&key) {
                Some(s) => s,
                None => {
                    count(stats::MAP_ERRORS);
                    return;
                }
            }
        }
    };
    // SAFETY: LRU value pointer valid for this run.
    let found = unsafe { &mut *st }.add(now, p);
    if found & frag_anomalies::OVERSIZED != 0 {
        line(cfg, p, now, PacketLine::FragOversized, 0);
    }
    if found & frag_anomalies::OVERLAP != 0 {
        line(cfg, p, now, PacketLine::FragOverlap, 0);
    }
    if found & frag_anomalies::DUPLICATE != 0 {
        line(cfg, p, now, PacketLine::FragDuplicate, 0);
    }
    if found & frag_anomalies::TINY != 0 {
        line(cfg, p, now, PacketLine::FragTiny, 0);
    }
}

/// The hardening options: drop what they cover (after detection and logging).
// A BPF subprogram of its own: its locals get their own stack frame.
#[inline(never)]
fn hardened(cfg: &Config, p: &PacketSummary) -> bool {
    if !p.has_transport() {
        return false;
    }
    if cfg.has(g::DROP_SYNFIN) && p.proto == PROTO_TCP && classify::is_bogus(p.tcp_flags) {
        return true;
    }
    if cfg.has(g::FOOL_NMAP) && classify::is_os_probe(p) {
        return true;
    }
    if cfg.has(g::BLACKHOLE_TCP)
        && p.proto == PROTO_TCP
        // Only probes: anything with ACK or RST belongs to a connection (ours as a client too).
        && p.tcp_flags & (tcp_flags::ACK | tcp_flags::RST) == 0
        // SAFETY: read-only lookup.
        && unsafe { LISTEN.get(&((PROTO_TCP as u32) << 16 | p.dport as u32)) }.is_none()
    {
        return true;
    }
    // Ephemeral ports are left alone: a client socket binds there just before its answer
    // arrives, faster than the listening-socket list is refreshed.
    cfg.has(g::BLACKHOLE_UDP)
        && p.proto == PROTO_UDP
        && p.dport < cfg.ephemeral_lo
        // SAFETY: read-only lookup.
        && unsafe { LISTEN.get(&((PROTO_UDP as u32) << 16 | p.dport as u32)) }.is_none()
}

struct Recorded {
    in_mode: bool,
    drop: bool,
}

/// [`ipscan_record_one`]'s answer: the source is in the detection's mode.
const RECORD_IN_MODE: u64 = 1;
/// The packet crossed the threshold and its source is now blocked: drop it.
const RECORD_DROP: u64 = 2;
/// A map error; its STATS slot is in the upper 32 bits.
const RECORD_ERROR: u64 = 4;

/// Records a packet toward one detection (`kind`, a [`Detection`]); returns RECORD_* bits.
///
/// A global BPF function (external linkage, scalar and pointer-to-struct arguments): the
/// verifier checks it once, on its own, instead of once for every detection's call site with
/// every state of the caller that reaches it. It must be safe for any arguments: the pointers
/// may be null (checked), `kind` anything.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn ipscan_record_one(
    dc: *const DetectionConfig,
    now: u64,
    kind: u32,
    counts_ports: u32,
    p: *const PacketSummary,
) -> u64 {
    // SAFETY: null or pointers into map values valid for the program's run (the caller's
    // CONFIG and SUMMARY slots).
    let (Some(dc), Some(p)) = (unsafe { dc.as_ref() }, unsafe { p.as_ref() }) else {
        return RECORD_ERROR | (stats::MAP_ERRORS as u64) << 32;
    };
    match record_one(dc, now, kind as u8, counts_ports != 0, p) {
        Ok(r) => (r.in_mode as u64 * RECORD_IN_MODE) | (r.drop as u64 * RECORD_DROP),
        Err(slot) => RECORD_ERROR | (slot as u64) << 32,
    }
}

#[inline(always)]
fn record_one(
    dc: &DetectionConfig,
    now: u64,
    kind: u8,
    counts_ports: bool,
    p: &PacketSummary,
) -> Result<Recorded, u32> {
    let none = Recorded { in_mode: false, drop: false };
    if !dc.enabled() {
        return Ok(none);
    }
    let key = SourceKey::from_words(classify::key_words(p, kind));
    // A detection that one packet (one port, for the scans) cannot cross keeps such sources on
    // probation.
    let state = if dc.threshold > 1 {
        match tracked(dc, now, &key, counts_ports, p)? {
            Some(s) => s,
            None => return Ok(none),
        }
    } else {
        match SOURCES.get_ptr_mut(&key) {
            Some(s) => s,
            None => {
                let fresh = scratch()?;
                fresh.reset(now);
                mark_admitted(&key);
                insert_state(&key, fresh)?
            }
        }
    };
    // SAFETY: LRU values are stable while referenced in this program run.
    // XXX: two CPUs updating one source race on the counters; totals may be off by a packet.
    let state = unsafe { &mut *state };
    if state.lapsed(now, dc.window_ns) {
        if state.in_mode() {
            emit(EventKind::Expired, now, &key, state, p, 0);
            count(stats::KERNEL_EXPIRIES);
        }
        state.reset(now);
    }
    let crossed = if counts_ports {
        state.record_ports(now, p.dport, p.sport, p.ip_payload_len, dc.threshold)
    } else {
        state.record_packets(now, p.dport, p.sport, p.ip_payload_len, dc.threshold, dc.window_ns)
    };
    let mut drop = false;
    if crossed {
        emit(EventKind::Detected, now, &key, state, p, 0);
        count(stats::DETECTIONS);
        // Per-network detections (smurf) have no single source to block.
        if dc.block_ns != 0 && kind != Detection::Smurf as u8 {
            drop = autoblock(dc, now, kind, &key, state, p);
        }
    }
    Ok(Recorded { in_mode: state.in_mode(), drop })
}

/// The per-CPU slot a fresh SourceState is built in (256 bytes: too big for the stack).
#[inline(always)]
fn scratch() -> Result<&'static mut SourceState, u32> {
    let p = SCRATCH.get_ptr_mut(0).ok_or(stats::MAP_ERRORS)?;
    // SAFETY: per-CPU scratch slot, used for one insert at a time and only on this CPU.
    Ok(unsafe { &mut *p })
}

/// Inserts a fresh state for `key` and returns the map's copy. Another CPU may have inserted
/// the key meanwhile: then EEXIST, and theirs is used.
#[inline(always)]
fn insert_state(key: &SourceKey, fresh: &SourceState) -> Result<*mut SourceState, u32> {
    let _ = SOURCES.insert(key, fresh, BPF_NOEXIST as u64);
    SOURCES.get_ptr_mut(key).ok_or(stats::MAP_ERRORS)
}

/// The PROBATION seed, drawn on first use (a race between CPUs there only restarts the
/// probation of the first few keys), and whether the admission filter is on ([`filter`]): the
/// program turns it on when it draws the seed of an array whose state is still undecided (a new
/// one; user space decides for kept pins before attaching).
#[inline(always)]
fn probation_seed() -> (u64, bool) {
    let Some(s) = PROBATION.get_ptr_mut(PROBATION_SEED_SLOT) else {
        return (0, false);
    };
    // SAFETY: array entry valid for the program's run.
    let s = unsafe { &mut *s };
    if s.seed() == 0 {
        // SAFETY: helpers without arguments.
        let (a, b) = unsafe { (bpf_get_prandom_u32(), bpf_get_prandom_u32()) };
        let state = if s.filter_state() == filter::UNDECIDED { filter::ON } else { s.filter_state() };
        s.set_seed((a as u64) << 32 | b as u64 | 1, state);
    }
    (s.seed(), s.filter_state() == filter::ON)
}

/// Sets a key's admission-filter bit ([`filter`]) in its set, before the key goes into SOURCES:
/// an atomic OR (BPF_ATOMIC | BPF_OR, kernel 5.12), so that two CPUs admitting keys of one set
/// at once keep both bits.
#[inline(always)]
fn mark_admitted_in(set: &mut ProbeSet, bit: u32) {
    let (w, mask) = ProbeSet::filter_word(bit);
    // SAFETY: an 8-aligned word inside an array entry valid for the program's run.
    unsafe {
        core::arch::asm!(
            "lock *(u64 *)({ptr} + 0) |= {val}",
            ptr = in(reg) core::ptr::addr_of_mut!(set.admitted[w]),
            val = in(reg) mask,
            options(nostack),
        )
    };
}

/// [`mark_admitted_in`] for a key whose set is not at hand.
#[inline(always)]
fn mark_admitted(key: &SourceKey) {
    let (seed, _) = probation_seed();
    let place = ProbeSet::place_words(&key.words(), seed);
    if let Some(set) = PROBATION.get_ptr_mut(place.set) {
        // SAFETY: array entry valid for the program's run.
        mark_admitted_in(unsafe { &mut *set }, place.bit);
    }
}

/// The SOURCES entry of a detection's key, or None while the source is on probation (this
/// packet was counted there). See [`Probe`] and [`ProbeSet`].
///
/// Inlined into [`ipscan_record_one`], which the verifier checks once. (While the per-detection
/// work was checked once per call site, the probation search had to be a global function of its
/// own: inlined there it cost 250,000 processed instructions.)
#[inline(always)]
fn tracked(
    dc: &DetectionConfig,
    now: u64,
    key: &SourceKey,
    counts_ports: bool,
    p: &PacketSummary,
) -> Result<Option<*mut SourceState>, u32> {
    // Admission frees the way, and a probation starts only for a key SOURCES does not have, so
    // either may be looked at first. SOURCES is looked at first, but only when the key's
    // admission-filter bit is set: a source being tracked (a scanner, a flooder from its second
    // packet on) costs the set's first line and the lookup, not the set's search first; a new
    // source (every packet of a spoofed flood), or a client that sends to one port (a DNS or NTP
    // client, for the scans), searches its probation set and costs no SOURCES lookup.
    let words = key.words();
    let (seed, filtered) = probation_seed();
    let place = ProbeSet::place_words(&words, seed);
    let set = PROBATION.get_ptr_mut(place.set).ok_or(stats::MAP_ERRORS)?;
    // SAFETY: array entry valid for the program's run; races between CPUs only blur counts.
    let set = unsafe { &mut *set };
    if (!filtered || set.has_filter_bit(place.bit))
        && let Some(s) = SOURCES.get_ptr_mut(key)
    {
        return Ok(Some(s));
    }
    let (way, held) = set.choose_words(&words, place.tag, now, dc.window_ns);
    let way = way as usize & (PROBATION_WAYS as usize - 1);
    if held {
        if counts_ports && set.ways[way].dport == p.dport {
            set.add(way, now, p.ip_payload_len);
            return Ok(None);
        }
        // A second port (a second packet, for the floods): admitted, with its probation counted.
        let fresh = scratch()?;
        fresh.admit(&set.ways[way], set.last_ns[way]);
        set.clear(way);
        mark_admitted_in(set, place.bit);
        return insert_state(key, fresh).map(Some);
    }
    set.start(way, key, place.tag, now, p.dport, p.sport, p.ip_payload_len);
    Ok(None)
}

/// Blocks the source of a detection in the kernel, on the threshold packet itself: the
/// scanner's next packet is already dropped, with no user-space round trip.
// Six arguments: BPF subprograms take at most five, so this one stays inlined.
#[inline(always)]
fn autoblock(
    dc: &DetectionConfig,
    now: u64,
    kind: u8,
    key: &SourceKey,
    state: &SourceState,
    p: &PacketSummary,
) -> bool {
    if allowlisted(&p.src, p.family) {
        count(stats::ALLOWLISTED);
        emit(EventKind::Blocked, now, key, state, p, event_flags::ALLOWLISTED);
        return false;
    }
    let mut entry = BlockEntry {
        expires_ns: now.saturating_add(dc.block_ns),
        added_ns: now,
        packets: 1,
        bytes: p.ip_payload_len as u64,
        last_ns: now,
        reason: kind + 1,
        _pad: [1; 7],
    };
    // Volatile: a 7-byte zero store is a `memset` call for the BPF backend.
    ipscan_common::zero::fill(&mut entry._pad, 0);
    if !autoblock_put(&AddrKey::new(p.src, p.family), &entry, now) {
        count(stats::MAP_ERRORS);
        return false;
    }
    count(stats::AUTOBLOCKS);
    emit(EventKind::Blocked, now, key, state, p, event_flags::DROPPED);
    true
}

#[inline(always)]
fn emit(kind: EventKind, now: u64, key: &SourceKey, state: &SourceState, p: &PacketSummary, flags: u8) {
    match EVENTS.reserve::<Event>(0) {
        Some(mut entry) => {
            // SAFETY: `fill` writes every field of the reserved record.
            unsafe {
                let ev = &mut *entry.as_mut_ptr();
                ev.fill(kind, now, key, state, p);
                ev.flags = flags;
            }
            entry.submit(0);
        }
        None => count(stats::LOST_EVENTS),
    }
}

#[inline(always)]
fn emit_packet(kind: EventKind, line: u8, flags: u8, now: u64, n: u64, p: &PacketSummary) {
    match EVENTS.reserve::<Event>(0) {
        Some(mut entry) => {
            // SAFETY: `fill_packet` writes every field of the reserved record.
            unsafe { (*entry.as_mut_ptr()).fill_packet(kind, line, flags, now, n, p) };
            entry.submit(0);
        }
        None => count(stats::LOST_EVENTS),
    }
}
