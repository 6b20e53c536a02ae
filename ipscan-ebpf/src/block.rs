//! Blocking: the prefixes blocked by hand (BLOCK4, BLOCK6), the kernel's own auto-blocks
//! (AUTOBLOCK), the allowlist, and the drop accounting of each.

// aya-ebpf's map methods take `impl Borrow<K>`; passing keys and values by value would copy them
// onto the 512-byte BPF stack.
#![expect(clippy::needless_borrows_for_generic_args, reason = "by-value copies onto the BPF stack")]

use crate::{
    events::emit,
    maps::{
        ALLOW4, ALLOW6, ALLOWCOUNTS, AUTOBLOCK, AUTOMARKS, AUTOTAGS, BLOCK_SCRATCH, BLOCK4, BLOCK6, BLOCKCOUNTS, CPU,
        FEED4_A, FEED4_B, FEED6_A, FEED6_B, FEEDCTL, FEEDDROPS, SOURCES, arg, atomic_add, config, count, forget,
        lists_checked, now_in, now_ns,
    },
};
use aya_ebpf::maps::lpm_trie::Key;
use ipscan_common::{
    AddrKey, AutoSlot, BlockEntry, Config, DETECTIONS, DetectionConfig, EventKind, FAMILY_V4, PacketSummary, SourceKey,
    SourceState,
    block::{Pending, PendingDrops, autoblock, block4_data, counts},
    classify::{self, Detection},
    config::global_flags as g,
    event::event_flags,
    feed,
    parse::IpSender,
    stats,
};

#[inline(always)]
pub(crate) fn v4(a: &[u8; 16]) -> [u8; 4] {
    [a[0], a[1], a[2], a[3]]
}

/// The sender's address as bytes, as the LPM tries take it (its words hold the bytes in
/// memory order).
#[inline(always)]
fn src_bytes(s: &IpSender) -> [u8; 16] {
    // SAFETY: [u32; 4] and [u8; 16] have the same size, and every byte pattern is valid.
    unsafe { core::mem::transmute::<[u32; 4], [u8; 16]>(s.src) }
}

/// Whether an allowlist prefix covers the address.
#[inline(always)]
pub(crate) fn allowlisted(src: &[u8; 16], family: u8) -> bool {
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
pub(crate) fn allowlisted_near(src: &[u8; 16], family: u8) -> bool {
    let w0 = u32::from_le_bytes([src[0], src[1], src[2], src[3]]);
    ALLOWCOUNTS.get(counts::bucket(family, w0)).is_none_or(|c| *c != 0) && allowlisted(src, family)
}

/// Counts a drop against an active block entry; false when the entry has expired.
#[inline(always)]
pub(crate) fn charge(e: &BlockEntry, now: u64, bytes: u32) -> bool {
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
///
/// A global function: verified once, on its own (1: blocked).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn ipscan_blocked(cfg: *const Config, p: *const PacketSummary) -> u32 {
    match (arg(cfg), arg(p)) {
        (Some(cfg), Some(p)) => blocked(cfg, &IpSender::of(p)) as u32,
        _ => 0,
    }
}

#[inline(always)]
fn blocked(cfg: &Config, s: &IpSender) -> bool {
    !lists_checked()
        && ((cfg.has(g::AUTOBLOCKS) && autoblocked_words(&s.key_words(), s.ip_payload_len))
            || (cfg.has(g::BLOCKLIST) && near_blocklisted(s.family, s.src[0]) && ipscan_blocklisted(s) != 0))
}

/// Whether a prefix blocked by hand may cover a sender whose address starts with the word `w0`
/// (as loaded): its BLOCKCOUNTS bucket is not zero. Never false for a sender that a prefix
/// covers; a map that cannot be read says yes.
#[inline(always)]
pub(crate) fn near_blocklisted(family: u8, w0: u32) -> bool {
    BLOCKCOUNTS.get(counts::bucket(family, w0)).is_none_or(|c| *c != 0)
}

/// Whether a prefix blocked by hand (BLOCK4, BLOCK6) or by a feed covers the source and it is
/// not allowlisted; counts the drop on the entry (the feed's set). Callers ask
/// [`near_blocklisted`] first.
///
/// A global function: verified once, on its own, and its locals (the LPM keys) get their own
/// stack frame (1: blocked).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn ipscan_blocklisted(s: *const IpSender) -> u32 {
    arg(s).is_some_and(blocklisted) as u32
}

#[inline(always)]
fn blocklisted(s: &IpSender) -> bool {
    let src = src_bytes(s);
    let hit = if s.family == FAMILY_V4 {
        BLOCK4.get(Key::new(32, block4_data(v4(&src))))
    } else {
        BLOCK6.get(Key::new(128, src))
    };
    // The allowlist is consulted only on a hit: it costs nothing on ordinary traffic.
    match hit {
        Some(_) if allowlisted_near(&src, s.family) => false,
        Some(e) if charge(e, now_ns(), s.ip_payload_len) => true,
        // Not blocked by hand, or no longer: a feed may list it.
        _ => fed(&src, s.family, s.ip_payload_len),
    }
}

/// Whether a feed's prefix covers the address (in the live trie, [`feed::ctl::LIVE`]) and it is
/// not allowlisted; counts the drop (`bytes`) in the first set that lists the prefix.
#[inline(always)]
fn fed(src: &[u8; 16], family: u8, bytes: u32) -> bool {
    let b = FEEDCTL.get(feed::ctl::LIVE).is_some_and(|v| *v != 0);
    let hit = if family == FAMILY_V4 {
        let k = Key::new(32, block4_data(v4(src)));
        if b { FEED4_B.get(&k) } else { FEED4_A.get(&k) }
    } else {
        let k = Key::new(128, *src);
        if b { FEED6_B.get(&k) } else { FEED6_A.get(&k) }
    };
    let Some(e) = hit else {
        return false;
    };
    if e.sets == 0 || allowlisted_near(src, family) {
        return false;
    }
    if let Some(d) = FEEDDROPS.get_ptr_mut(e.first) {
        // SAFETY: this CPU's slot of the set, no concurrent writer on this CPU.
        unsafe {
            (*d).packets += 1;
            (*d).bytes += bytes as u64;
        }
    }
    true
}

/// The AUTOBLOCK set and tag of a key (as its words).
#[inline(always)]
pub(crate) fn autoblock_place(w: &[u32; 5]) -> autoblock::Place {
    let seed = AUTOBLOCK.get(autoblock::SEED_SLOT).map_or(0, |s| s.entry.added_ns);
    autoblock::place_words(w, seed)
}

/// Whether the kernel auto-blocked the source given as its key's words and the block is still
/// on; counts the drop (`bytes`). No allowlist lookup: the kernel never auto-blocks an
/// allowlisted source, and `ipscan allow add` removes the auto-blocks a new allow covers.
#[inline(always)]
pub(crate) fn autoblocked_words(w: &[u32; 5], bytes: u32) -> bool {
    let (word, lane) = autoblock::mark_of(w[4] as u8, w[0]);
    if !AUTOMARKS.get(word).is_none_or(|v| autoblock::marked(*v, lane)) {
        return false;
    }
    let place = autoblock_place(w);
    let ways = AUTOTAGS.get(place.set).map_or(autoblock::ALL_WAYS, |t| autoblock::tagged_ways(*t, place.tag));
    if ways == 0 {
        return false;
    }
    let first = place.set * autoblock::WAYS;
    for way in 0..autoblock::WAYS {
        if ways & autoblock::way_bit(way) != 0
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
pub(crate) fn charge_auto(index: u32, key0: u32, e: &BlockEntry, bytes: u32) -> bool {
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
pub(crate) fn store_last_drop(e: &BlockEntry, now: u64) {
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

/// Marks the AUTOMARKS bucket of an address ([`autoblock::MARKED`]).
#[inline(always)]
fn mark(key: &AddrKey) {
    let (word, lane) = autoblock::mark_of(key.family, key.words()[0]);
    if let Some(m) = AUTOMARKS.get_ptr_mut(word) {
        // SAFETY: byte `lane` (< 8) of an AUTOMARKS value.
        unsafe { core::ptr::write_volatile(m.cast::<u8>().add(lane as usize), autoblock::MARKED) };
    }
}

/// What [`autoblock::choose`] needs to know of AUTOBLOCK slot `index` for a block of `key`.
#[inline(always)]
fn way_at(index: u32, key: &AddrKey, now: u64) -> Option<autoblock::Way> {
    AUTOBLOCK.get(index).map(|s| autoblock::Way::of(s, key, now))
}

/// Puts a block into the source's set (see [`autoblock::choose`]); false on a map error.
#[inline(always)]
fn autoblock_put(key: &AddrKey, entry: &BlockEntry, now: u64) -> bool {
    let place = autoblock_place(&key.words());
    let first = place.set * autoblock::WAYS;
    let (Some(w0), Some(w1), Some(w2), Some(w3)) = (
        way_at(first, key, now),
        way_at(first + 1, key, now),
        way_at(first + 2, key, now),
        way_at(first + 3, key, now),
    ) else {
        return false;
    };
    // The four ways read first, then compared: LLVM's other orders of the same work kept more
    // of it on the stack (a loop 336 bytes, one way at a time 288, this 200).
    let choice = autoblock::choose_among([w0, w1, w2, w3]);
    // The way, forgotten: `choose` reaches it along many paths, and it indexes what follows.
    let way = forget(choice.way as u64) as u32 & (autoblock::WAYS - 1);
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
    // (`autoblock::CLEARING`) without seeing the key.
    mark(key);
    if let Some(k) = evicted {
        count(stats::AUTOBLOCK_EVICTIONS);
        forget_scan_states(&k);
    }
    true
}

/// Removes an address's SOURCES states of every detection that blocks its source.
#[inline(always)]
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

/// Blocks the source of a detection in the kernel, on the threshold packet itself: the
/// scanner's next packet is already dropped, with no user-space round trip. `kind` is the
/// [`ipscan_common::Detection`] whose threshold the packet crossed; 1: blocked.
///
/// A global function: verified once, on its own, apart from the counting that leads to it.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn ipscan_autoblock(dc: *const DetectionConfig, now: u64, kind: u32, p: *const PacketSummary) -> u32 {
    let (Some(dc), Some(p)) = (arg(dc), arg(p)) else {
        return 0;
    };
    let kind = kind as u8;
    let key = SourceKey::from_words(classify::key_words(p, kind));
    // The state the threshold packet was just counted in (for the totals of the block's event).
    let Some(state) = SOURCES.get_ptr(&key) else {
        count(stats::MAP_ERRORS);
        return 0;
    };
    // SAFETY: an LRU value, valid for the program's run.
    block_source(dc, now, kind, &key, unsafe { &*state }, p) as u32
}

#[inline(always)]
fn block_source(
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
    // Built in this CPU's scratch slot: on the stack it would add its 48 bytes to the deepest
    // call chain (entry, policy, this).
    let Some(entry) = BLOCK_SCRATCH.get_ptr_mut(0) else {
        count(stats::MAP_ERRORS);
        return false;
    };
    // SAFETY: this CPU's slot, used only here.
    let entry = unsafe { &mut *entry };
    *entry = BlockEntry {
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
    if !autoblock_put(&AddrKey::new(p.src, p.family), entry, now) {
        count(stats::MAP_ERRORS);
        return false;
    }
    count(stats::AUTOBLOCKS);
    // Under `dry_run` the entry is kept all the same (its drop counts are what a block would
    // have dropped); the event says that nothing is.
    let dry = matches!(config(), Ok(cfg) if cfg.has(g::DRY_RUN));
    emit(EventKind::Blocked, now, key, state, p, if dry { event_flags::DRY_RUN } else { event_flags::DROPPED });
    true
}
