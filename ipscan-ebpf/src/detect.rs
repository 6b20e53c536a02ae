//! Threshold detections: a source's packets counted toward a detection, from probation to
//! its SOURCES entry, the threshold packet and the auto-block it triggers.

// aya-ebpf's map methods take `impl Borrow<K>`; passing keys and values by value would copy them
// onto the 512-byte BPF stack.
#![expect(clippy::needless_borrows_for_generic_args, reason = "by-value copies onto the BPF stack")]

use crate::{
    events::{emit, emit_with},
    maps::{HOSTS_SCRATCH, PROBATION, SCRATCH, SOURCES, SWEEPHOSTS, count, forget},
};
use aya_ebpf::{bindings::BPF_NOEXIST, helpers::bpf_get_prandom_u32};
use ipscan_common::{
    DetectionConfig, EventKind, PacketSummary, Probe, ProbeSet, SourceKey, SourceState,
    classify::{self, Detection, counting},
    packet::{PROTO_TCP, PROTO_UDP},
    probation::{Counted, PROBATION_SEED_SLOT, PROBATION_WAYS, filter},
    stats,
    sweep::{self, LOGGED_HOSTS, SweepHosts},
};

pub(crate) struct Recorded {
    in_mode: bool,
    block: bool,
}

/// [`ipscan_record_one`]'s answer: the source is in the detection's mode.
pub(crate) const RECORD_IN_MODE: u64 = 1;

/// The packet crossed the threshold of a detection that blocks its source: the caller blocks
/// it ([`ipscan_autoblock`], a call of its own rather than one more frame on this one's chain).
pub(crate) const RECORD_BLOCK: u64 = 2;

/// A map error; its STATS slot is in the upper 32 bits.
pub(crate) const RECORD_ERROR: u64 = 4;

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
    counts: u32,
    p: *const PacketSummary,
) -> u64 {
    // SAFETY: null or pointers into map values valid for the program's run (the caller's
    // CONFIG and SUMMARY slots).
    let (Some(dc), Some(p)) = (unsafe { dc.as_ref() }, unsafe { p.as_ref() }) else {
        return RECORD_ERROR | (stats::MAP_ERRORS as u64) << 32;
    };
    match record_one(dc, now, kind as u8, counts, p) {
        Ok(r) => (r.in_mode as u64 * RECORD_IN_MODE) | (r.block as u64 * RECORD_BLOCK),
        Err(slot) => RECORD_ERROR | (slot as u64) << 32,
    }
}

#[inline(always)]
pub(crate) fn record_one(
    dc: &DetectionConfig,
    now: u64,
    kind: u8,
    counts: u32,
    p: &PacketSummary,
) -> Result<Recorded, u32> {
    let none = Recorded { in_mode: false, block: false };
    if !dc.enabled() {
        return Ok(none);
    }
    // The key's last word and what the packet counts are forgotten ([`forget`]) once made: the
    // verifier then goes on with one state whichever way they were made, not one per kind.
    let w = classify::key_words(p, kind);
    let key = SourceKey::from_words([w[0], w[1], w[2], w[3], forget(w[4] as u64) as u32]);
    // A sweep counts hosts where a scan counts ports ([`sweep`]); a distributed flood counts its
    // sources; a distributed scan counts ports, with its sources where a scan has its source
    // ports. Sweeps and distributed scans name their first hosts (destinations, sources).
    let hosts = counts == counting::HOSTS;
    let flood_target = kind == Detection::DistFlood as u8;
    let scan_target = kind == Detection::DistScan as u8;
    let dport = if p.proto == PROTO_TCP || p.proto == PROTO_UDP { p.dport } else { 0 };
    let counted = if hosts {
        Counted { value: sweep::fold(&p.dst_words()), other: dport, host_word: sweep::host_word(p) }
    } else if flood_target {
        Counted { value: sweep::fold(&p.src_words()), other: dport, host_word: 0 }
    } else if scan_target {
        let src = p.src_words();
        Counted { value: p.dport, other: sweep::fold(&src), host_word: sweep::varying(&src, p.family) }
    } else {
        Counted::ports(p.dport, p.sport)
    };
    let packed = forget(counted.value as u64 | (counted.other as u64) << 16 | (counted.host_word as u64) << 32);
    let counted = Counted { value: packed as u16, other: (packed >> 16) as u16, host_word: (packed >> 32) as u32 };
    let counts_ports = counts != counting::PACKETS;
    // A detection that one packet (one port, for the scans) cannot cross keeps such sources on
    // probation.
    let state = if dc.threshold > 1 {
        match tracked(dc, now, &key, counts, counted, p)? {
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
    let calmed = dc.min_distinct() != 0 && state.calmed(now, dc.window_ns, dc.threshold, counts_ports);
    if state.lapsed(now, dc.window_ns) || calmed {
        if state.in_mode() {
            emit(EventKind::Expired, now, &key, state, p, 0);
            count(stats::KERNEL_EXPIRIES);
        }
        state.reset(now);
    }
    let names = hosts || scan_target;
    let before = if hosts { state.distinct } else { state.nsports as u32 };
    let crossed = if counts_ports {
        let (value, other) = (counted.value, counted.other);
        state.record_values(now, value, other, p.ip_payload_len, dc.threshold, dc.min_distinct())
    } else {
        let (value, other) = (counted.value, counted.other);
        state.record_rate(now, value, other, p.ip_payload_len, dc.threshold, dc.window_ns, dc.min_distinct())
    };
    // A new host among the first: kept whole for the line.
    let mut named: Option<&SweepHosts> = None;
    let after = if hosts { state.distinct } else { state.nsports as u32 };
    if names && after != before && after != 0 && after as usize <= LOGGED_HOSTS {
        let addr = if hosts { p.dst_words() } else { p.src_words() };
        // Bounded where the verifier sees it: LLVM would drop a mask it can prove idle.
        let index = forget(u64::from(after - 1)) as usize & (LOGGED_HOSTS - 1);
        named = note_host(&key, state.first_ns, index, &addr);
    }
    if crossed {
        if names && named.is_none() {
            // SAFETY: LRU values are stable while referenced in this program run.
            named = SWEEPHOSTS.get_ptr_mut(&key).map(|h| unsafe { &*h });
        }
        emit_with(EventKind::Detected, now, &key, state, p, 0, named);
        count(stats::DETECTIONS);
    }
    // Per-network (smurf) and per-target (distributed flood and scan) detections have no single
    // source to block.
    let block = crossed && dc.block_ns != 0 && kind != Detection::Smurf as u8 && !flood_target && !scan_target;
    Ok(Recorded { in_mode: state.in_mode(), block })
}

/// Whether the source of `p` is in detection `kind`'s mode (1) or not (0), counting nothing:
/// under `counting confirmed` the port scans are counted from the host's rejects (on egress),
/// and an incoming probe only asks this, to leave its line out.
///
/// A global function of its own, rather than a branch of [`ipscan_record_one`]: that one's stack
/// frame is on the deepest call chain.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn ipscan_in_mode(dc: *const DetectionConfig, now: u64, kind: u32, p: *const PacketSummary) -> u32 {
    // SAFETY: null or pointers into map values valid for the program's run.
    let (Some(dc), Some(p)) = (unsafe { dc.as_ref() }, unsafe { p.as_ref() }) else {
        return 0;
    };
    if !dc.enabled() {
        return 0;
    }
    let key = SourceKey::from_words(classify::key_words(p, kind as u8));
    // SAFETY: LRU values are stable while referenced in this program run; read only.
    SOURCES.get_ptr(&key).is_some_and(|s| unsafe { (*s).in_mode() && !(*s).lapsed(now, dc.window_ns) }) as u32
}

/// Keeps the `index`th distinct host of a sweep's window (begun at `first_ns`) in SWEEPHOSTS;
/// the entry, or None if it could not be made (the line then names fewer hosts).
#[inline(always)]
fn note_host(key: &SourceKey, first_ns: u64, index: usize, host: &[u32; 4]) -> Option<&'static SweepHosts> {
    let entry = match SWEEPHOSTS.get_ptr_mut(key) {
        Some(e) => e,
        None => {
            // SAFETY: per-CPU scratch slot, used for one insert at a time and only on this CPU.
            let fresh = unsafe { &mut *HOSTS_SCRATCH.get_ptr_mut(0)? };
            fresh.first_ns = first_ns;
            fresh.known = 0;
            let _ = SWEEPHOSTS.insert(key, fresh, BPF_NOEXIST as u64);
            SWEEPHOSTS.get_ptr_mut(key)?
        }
    };
    // SAFETY: LRU values are stable while referenced in this program run; races between CPUs
    // only mix two sweeps' hosts of one source.
    let entry = unsafe { &mut *entry };
    entry.put(first_ns, index, host);
    Some(entry)
}

/// A sweep or distributed scan admitted from probation: its first host (the destination, the
/// source), rebuilt from what probation kept ([`sweep::first_host`]: the second host's words
/// and the fold `folded`), goes first in SWEEPHOSTS.
#[inline(always)]
fn note_first_host(key: &SourceKey, probe: &Probe, second: &[u32; 4], family: u8, folded: u16) {
    if let Some(first) = sweep::first_host(second, family, probe.host_word, folded) {
        let _ = note_host(key, probe.first_ns, 0, &first);
    }
}

/// The per-CPU slot a fresh SourceState is built in (256 bytes: too big for the stack).
#[inline(always)]
pub(crate) fn scratch() -> Result<&'static mut SourceState, u32> {
    let p = SCRATCH.get_ptr_mut(0).ok_or(stats::MAP_ERRORS)?;
    // SAFETY: per-CPU scratch slot, used for one insert at a time and only on this CPU.
    Ok(unsafe { &mut *p })
}

/// Inserts a fresh state for `key` and returns the map's copy. Another CPU may have inserted
/// the key meanwhile: then EEXIST, and theirs is used.
#[inline(always)]
pub(crate) fn insert_state(key: &SourceKey, fresh: &SourceState) -> Result<*mut SourceState, u32> {
    let _ = SOURCES.insert(key, fresh, BPF_NOEXIST as u64);
    SOURCES.get_ptr_mut(key).ok_or(stats::MAP_ERRORS)
}

/// The PROBATION seed, drawn on first use (a race between CPUs there only restarts the
/// probation of the first few keys), and whether the admission filter is on ([`filter`]): the
/// program turns it on when it draws the seed of an array whose state is still undecided (a new
/// one; user space decides for kept pins before attaching).
#[inline(always)]
pub(crate) fn probation_seed() -> (u64, bool) {
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
pub(crate) fn mark_admitted_in(set: &mut ProbeSet, bit: u32) {
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
pub(crate) fn mark_admitted(key: &SourceKey) {
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
pub(crate) fn tracked(
    dc: &DetectionConfig,
    now: u64,
    key: &SourceKey,
    counts: u32,
    counted: Counted,
    p: &PacketSummary,
) -> Result<Option<*mut SourceState>, u32> {
    let counts_ports = counts != counting::PACKETS;
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
        // The key's one value again: it stays on probation. So for the scans (a port) and the
        // sweeps (a host), and for a rate detection that needs several distinct values to cross
        // (the distributed flood's sources): a target that one source sends to cannot be a
        // distributed flood, and costs no SOURCES entry (its packets and bytes are carried on
        // admission, its rate window then opens at its first packet).
        if (counts_ports || dc.min_distinct() > 1) && set.ways[way].dport == counted.value {
            set.add(way, now, p.ip_payload_len);
            return Ok(None);
        }
        // A second port (a second packet, for the floods; a second host, for the sweeps):
        // admitted, with its probation counted.
        let fresh = scratch()?;
        fresh.admit(&set.ways[way], set.last_ns[way]);
        if counts == counting::HOSTS {
            note_first_host(key, &set.ways[way], &p.dst_words(), p.family, set.ways[way].dport);
        } else if key.kind == Detection::DistScan as u8 {
            note_first_host(key, &set.ways[way], &p.src_words(), p.family, set.ways[way].sport);
        }
        set.clear(way);
        mark_admitted_in(set, place.bit);
        return insert_state(key, fresh).map(Some);
    }
    set.start(way, key, place.tag, now, counted, p.ip_payload_len);
    Ok(None)
}
