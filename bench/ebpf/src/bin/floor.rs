//! Benchmark floors: the least that one ingredient of a per-packet decision costs, measured
//! like ipscan against the empty XDP_DROP program. Each reads the IPv4 source of an untagged
//! frame and drops the frame when the source is found:
//!
//! - `floor_hash`: one lookup in an LRU hash keyed by the 20-byte exact address (the layout of
//!   a hash-map blocklist);
//! - `floor_array`: one read of the source's slot in an array (the layout of AUTOBLOCK);
//! - `floor_clock`: no lookup, one `bpf_ktime_get_coarse_ns` helper call (drops always).
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

use aya_ebpf::{
    bindings::{BPF_F_MMAPABLE, xdp_action},
    helpers::bpf_ktime_get_coarse_ns,
    macros::{map, xdp},
    maps::{Array, LruHashMap},
    programs::XdpContext,
};
use ipscan_bench_common::floor_slot;
use ipscan_common::{AddrKey, BlockEntry, FAMILY_V4};

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

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
