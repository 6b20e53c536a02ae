//! Benchmark floors: the least that one ingredient of a per-packet decision costs, measured
//! like ipscan against the empty XDP_DROP program. Each reads the IPv4 source of an untagged
//! frame and drops the frame when the source is found:
//!
//! - `floor_hash`: one lookup in an LRU hash keyed by the 20-byte exact address (the layout of
//!   a hash-map blocklist);
//! - `floor_array`: one read of the source's slot in an array (the layout of AUTOBLOCK);
//! - `floor_clock`: no lookup, one `bpf_ktime_get_coarse_ns` helper call (drops always).
//!
//! The floors of a detection (issue 24): what a packet that counts toward one detection cannot
//! cost less than. Each parses the frame in full with ipscan's parser
//! ([`ipscan_common::parse::parse_into`], into a per-CPU summary, as ipscan does), makes the key of
//! the packet's first detection ([`classify::detections`], [`classify::key_words`]) and does the
//! least map work that detection needs, then passes the frame:
//!
//! - `floor_detect`: one lookup of that key in a SOURCES-shaped LRU hash (20-byte key, 256-byte
//!   value) and one update of the entry found (its packets and bytes), or one insert when there
//!   is none: a source already tracked;
//! - `floor_probation`: one read of the key's slot in a 65,536-slot array (keyed hash, the key
//!   compared) and one write of it: a new source, kept on probation.
//!
//! And the floor of all the detections a probe counts toward under the default configuration,
//! for a program whose detections share their state (one entry a source, one a target), which
//! ipscan's do not (an entry a detection):
//!
//! - `floor_shared`: `floor_detect`'s work on the source's key, then `floor_probation`'s on the
//!   target's: the one per-target detection on by default, the distributed flood, counts a
//!   target's sources, and a target that one source sends to stays on probation.
//!
//! For the throughput section's random-source flood, where what counts is how much memory the
//! sources' state spreads over, each of these reads the source's slot and drops the frame
//! whatever it holds:
//!
//! - `floor_flood_72`: a 72-byte slot of 65,536 (AUTOBLOCK's layout and size, 4.7 MB; most
//!   slots span two cache lines);
//! - `floor_flood_64`: a 64-byte, line-aligned slot of 65,536 (4 MB: one line per slot);
//! - `floor_flood_dense`: a 64-byte, line-aligned slot of 8,192 (512 KB: two sources of the
//!   bench's flood per line on average).

#![no_std]
#![no_main]
// aya-ebpf's map methods take `impl Borrow<K>`; passing keys and values by value would copy them
// onto the 512-byte BPF stack.
#![expect(clippy::needless_borrows_for_generic_args, reason = "by-value copies onto the BPF stack")]

use aya_ebpf::{
    bindings::{BPF_F_MMAPABLE, BPF_NOEXIST, xdp_action},
    helpers::bpf_ktime_get_coarse_ns,
    macros::{map, xdp},
    maps::{Array, LruHashMap, PerCpuArray},
    programs::XdpContext,
};
use ipscan_bench_common::floor_slot;
use ipscan_common::{
    AddrKey, BlockEntry, FAMILY_V4, PacketSummary, SourceKey, SourceState,
    block::autoblock::keyed_hash,
    classify::{self, Detection},
    parse::{self, KernelFrame},
};

#[map]
static FLOOR_HASH: LruHashMap<AddrKey, BlockEntry> = LruHashMap::with_max_entries(65_536, 0);

#[map]
static FLOOR_ARRAY: Array<BlockEntry> = Array::with_max_entries(65_536, 0);

#[map]
static FLOOD_72: Array<[u64; 9]> = Array::with_max_entries(65_536, BPF_F_MMAPABLE);

/// One 64-byte cache line per slot (mmapable arrays start on a page).
#[map]
static FLOOD_64: Array<[u64; 8]> = Array::with_max_entries(65_536, BPF_F_MMAPABLE);

#[map]
static FLOOD_DENSE: Array<[u64; 8]> = Array::with_max_entries(8_192, BPF_F_MMAPABLE);

/// Offset of the IPv4 source in an untagged frame.
const SRC: usize = 26;

#[inline(always)]
fn source(ctx: &XdpContext) -> Option<u32> {
    if ctx.data() + SRC + 4 > ctx.data_end() {
        return None;
    }
    // SAFETY: the four bytes lie inside the packet, checked above.
    Some(unsafe { core::ptr::read_unaligned((ctx.data() + SRC) as *const u32) })
}

#[xdp]
pub fn floor_hash(ctx: XdpContext) -> u32 {
    let Some(a) = source(&ctx) else { return xdp_action::XDP_PASS };
    let key = AddrKey::new((a as u128).to_le_bytes(), FAMILY_V4);
    // SAFETY: read-only use of the value.
    match unsafe { FLOOR_HASH.get(key) } {
        Some(_) => xdp_action::XDP_DROP,
        None => xdp_action::XDP_PASS,
    }
}

#[xdp]
pub fn floor_array(ctx: XdpContext) -> u32 {
    let Some(a) = source(&ctx) else { return xdp_action::XDP_PASS };
    match FLOOR_ARRAY.get(floor_slot(a)) {
        // The bench stores the address in `added_ns`.
        Some(e) if e.added_ns == a as u64 => xdp_action::XDP_DROP,
        _ => xdp_action::XDP_PASS,
    }
}

/// Drops the frame after reading one word of the source's slot: the verdict depends on the
/// word (one that no slot holds passes), so the load is not optimised away.
#[inline(always)]
fn drop_after_reading(word: Option<u64>) -> u32 {
    match word {
        Some(u64::MAX) => xdp_action::XDP_PASS,
        _ => xdp_action::XDP_DROP,
    }
}

/// Reads the word where an AUTOBLOCK slot keeps its expiry (after the key), as the
/// following two do.
#[xdp]
pub fn floor_flood_72(ctx: XdpContext) -> u32 {
    let Some(a) = source(&ctx) else { return xdp_action::XDP_PASS };
    drop_after_reading(FLOOD_72.get(floor_slot(a)).map(|s| s[3]))
}

#[xdp]
pub fn floor_flood_64(ctx: XdpContext) -> u32 {
    let Some(a) = source(&ctx) else { return xdp_action::XDP_PASS };
    drop_after_reading(FLOOD_64.get(floor_slot(a)).map(|s| s[3]))
}

#[xdp]
pub fn floor_flood_dense(ctx: XdpContext) -> u32 {
    let Some(a) = source(&ctx) else { return xdp_action::XDP_PASS };
    drop_after_reading(FLOOD_DENSE.get(floor_slot(a) % 8_192).map(|s| s[3]))
}

#[xdp]
pub fn floor_clock(_ctx: XdpContext) -> u32 {
    // SAFETY: helper without arguments.
    let t = unsafe { bpf_ktime_get_coarse_ns() };
    if t == 1 { xdp_action::XDP_PASS } else { xdp_action::XDP_DROP }
}

/// SOURCES' shape and size.
#[map]
static FLOOR_SOURCES: LruHashMap<SourceKey, SourceState> = LruHashMap::with_max_entries(65_536, 0);

/// A probation slot: the key's five words, a packet count and the clock, one line.
#[map]
static FLOOR_SLOTS: Array<[u64; 8]> = Array::with_max_entries(65_536, BPF_F_MMAPABLE);

#[map]
static FLOOR_SUMMARY: PerCpuArray<PacketSummary> = PerCpuArray::with_max_entries(1, 0);

#[map]
static FLOOR_SCRATCH: PerCpuArray<SourceState> = PerCpuArray::with_max_entries(1, 0);

#[map]
static FLOOR_FORGET: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// The frame parsed in full into this CPU's summary, and the key words of its first detection;
/// None when it counts toward none.
#[inline(always)]
fn parsed(ctx: &XdpContext) -> Option<(&'static PacketSummary, [u32; 5])> {
    let summary = FLOOR_SUMMARY.get_ptr_mut(0)?;
    let forget = FLOOR_FORGET.get_ptr_mut(0)?;
    // SAFETY: this CPU's slot, valid for the program's run.
    let summary = unsafe { &mut *summary };
    summary.clear();
    let frame = KernelFrame::new(ctx.data(), ctx.data_end()).forgetting(forget);
    parse::parse_into(&frame, parse::Options::default(), summary).ok()?;
    let set = classify::detections(summary);
    if set == 0 {
        return None;
    }
    let kind = set.trailing_zeros() as u8;
    Some((summary, classify::key_words(summary, kind)))
}

#[xdp]
pub fn floor_detect(ctx: XdpContext) -> u32 {
    let Some((p, words)) = parsed(&ctx) else { return xdp_action::XDP_PASS };
    touch_entry(&SourceKey::from_words(words), p);
    xdp_action::XDP_PASS
}

#[xdp]
pub fn floor_shared(ctx: XdpContext) -> u32 {
    let Some((p, words)) = parsed(&ctx) else { return xdp_action::XDP_PASS };
    touch_entry(&SourceKey::from_words(words), p);
    if classify::probe_proto(p) != 0 {
        touch_slot(&classify::key_words(p, Detection::DistFlood as u8), p);
    }
    xdp_action::XDP_PASS
}

#[xdp]
pub fn floor_probation(ctx: XdpContext) -> u32 {
    let Some((p, w)) = parsed(&ctx) else { return xdp_action::XDP_PASS };
    touch_slot(&w, p);
    xdp_action::XDP_PASS
}

/// One lookup of `key` in the SOURCES-shaped map and one update of the entry found, or one
/// insert when there is none.
#[inline(always)]
fn touch_entry(key: &SourceKey, p: &PacketSummary) {
    match FLOOR_SOURCES.get_ptr_mut(key) {
        Some(s) => {
            // SAFETY: LRU values are stable while referenced in this program run.
            let s = unsafe { &mut *s };
            s.packets += 1;
            s.bytes += u64::from(p.ip_payload_len);
        }
        None => {
            if let Some(fresh) = FLOOR_SCRATCH.get_ptr_mut(0) {
                // SAFETY: this CPU's slot, valid for the program's run.
                let _ = FLOOR_SOURCES.insert(key, unsafe { &*fresh }, BPF_NOEXIST as u64);
            }
        }
    }
}

/// One read of `w`'s slot in the probation-shaped array and one write of it.
#[inline(always)]
fn touch_slot(w: &[u32; 5], p: &PacketSummary) {
    let h = keyed_hash(w, 0x0123_4567_89ab_cdef);
    let Some(slot) = FLOOR_SLOTS.get_ptr_mut((h >> 32) as u32 & 0xffff) else { return };
    // SAFETY: array entry valid for the program's run.
    let slot = unsafe { &mut *slot };
    let (a, b, c) = (w[0] as u64 | (w[1] as u64) << 32, w[2] as u64 | (w[3] as u64) << 32, w[4] as u64);
    if slot[0] == a && slot[1] == b && slot[2] == c {
        slot[3] += 1;
    } else {
        *slot = [a, b, c, 1, u64::from(p.ip_payload_len), 0, 0, 0];
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
