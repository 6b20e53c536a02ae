//! All map and ring-buffer I/O of the program.

use aya_ebpf::{
    Global,
    bindings::BPF_NOEXIST,
    helpers::bpf_ktime_get_ns,
    macros::map,
    maps::{Array, LruHashMap, PerCpuArray, RingBuf},
};
use ipscan_common::{
    Config, DETECTIONS, Detection, DetectionConfig, Event, EventKind, PacketSummary, SourceKey, SourceState,
    classify, maps as m, stats,
};

#[map]
static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

#[map]
static SOURCES: LruHashMap<SourceKey, SourceState> = LruHashMap::with_max_entries(m::SOURCES_MAX, 0);

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(m::EVENTS_BYTES, 0);

#[map]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stats::COUNT, 0);

/// The replay clock, written by user space before each BPF_PROG_TEST_RUN.
#[map]
static CLOCK: Array<u64> = Array::with_max_entries(1, 0);

/// Per-CPU scratch for a fresh SourceState: 256 bytes do not fit the 512-byte BPF stack
/// alongside the parser's frame.
#[map]
static SCRATCH: PerCpuArray<SourceState> = PerCpuArray::with_max_entries(1, 0);

/// Non-zero: read the clock from CLOCK instead of the kernel (set at load time; the verifier
/// prunes the unused branch because the global is read-only).
#[unsafe(no_mangle)]
static IPSCAN_REPLAY_CLOCK: Global<u8> = Global::new(0);

#[inline(always)]
pub fn count(slot: u32) {
    if let Some(c) = STATS.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *c += 1 };
    }
}

#[inline(always)]
fn now_ns() -> u64 {
    if IPSCAN_REPLAY_CLOCK.load() != 0 {
        CLOCK.get(0).copied().unwrap_or(0)
    } else {
        // SAFETY: helper without arguments.
        unsafe { bpf_ktime_get_ns() }
    }
}

pub fn record(p: &PacketSummary) -> Result<(), u32> {
    if !p.has_transport() {
        count(stats::FRAGMENTS);
    }
    let set = classify::detections(p);
    if set == 0 {
        return Ok(());
    }
    let cfg = CONFIG.get_ptr(0).ok_or(stats::MAP_ERRORS)?;
    // SAFETY: array slot 0 always exists; user space replaces it whole.
    let cfg = unsafe { &*cfg };
    let now = now_ns();
    // Iterate by a counter, not over an array of Detection: an index loaded from memory is
    // unbounded to the verifier, a loop counter is not.
    for i in 0..DETECTIONS.len() {
        if set & (1 << i) == 0 {
            continue;
        }
        if let (Some(dc), Some(d)) = (cfg.detections.get(i), Detection::from_u8(i as u8)) {
            record_one(dc, now, i as u8, d.counts_ports(), p)?;
        }
    }
    Ok(())
}

#[inline(always)]
fn record_one(dc: &DetectionConfig, now: u64, kind: u8, counts_ports: bool, p: &PacketSummary) -> Result<(), u32> {
    if !dc.enabled() {
        return Ok(());
    }
    let key = SourceKey {
        addr: p.src,
        family: p.family,
        kind,
        _pad: [0; 2],
    };
    let state = match SOURCES.get_ptr_mut(&key) {
        Some(s) => s,
        None => {
            let fresh = SCRATCH.get_ptr_mut(0).ok_or(stats::MAP_ERRORS)?;
            // SAFETY: per-CPU scratch slot, used only here and only on this CPU.
            let fresh = unsafe { &mut *fresh };
            fresh.reset(now);
            // Another CPU may have inserted the key meanwhile: then EEXIST, and we use theirs.
            let _ = SOURCES.insert(&key, &*fresh, BPF_NOEXIST as u64);
            SOURCES.get_ptr_mut(&key).ok_or(stats::MAP_ERRORS)?
        }
    };
    // SAFETY: LRU values are stable while referenced in this program run.
    // XXX: two CPUs updating one source race on the counters; totals may be off by a packet.
    let state = unsafe { &mut *state };
    if state.lapsed(now, dc.window_ns) {
        if state.in_mode() {
            emit(EventKind::Expired, now, &key, state, p);
            count(stats::KERNEL_EXPIRIES);
        }
        state.reset(now);
    }
    let crossed = if counts_ports {
        state.record_ports(now, p.dport, p.sport, p.ip_payload_len, dc.threshold)
    } else {
        state.record_packets(now, p.ip_payload_len, dc.threshold)
    };
    if crossed {
        emit(EventKind::Detected, now, &key, state, p);
        count(stats::DETECTIONS);
    }
    Ok(())
}

#[inline(always)]
fn emit(kind: EventKind, now: u64, key: &SourceKey, state: &SourceState, p: &PacketSummary) {
    match EVENTS.reserve::<Event>(0) {
        Some(mut entry) => {
            // SAFETY: `fill` writes every field of the reserved record.
            unsafe { (*entry.as_mut_ptr()).fill(kind, now, key, state, p) };
            entry.submit(0);
        }
        None => count(stats::LOST_EVENTS),
    }
}
