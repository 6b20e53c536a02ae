//! Per-packet log lines (connection attempts, datagrams, echoes, fragments, bogus flags,
//! traceroutes) and their per-source and global budgets.

// aya-ebpf's map methods take `impl Borrow<K>`; passing keys and values by value would copy them
// onto the 512-byte BPF stack.
#![expect(clippy::needless_borrows_for_generic_args, reason = "by-value copies onto the BPF stack")]

use crate::{
    events::emit_packet,
    maps::{FRAG_SCRATCH, FRAGS, PKTGLOBAL, PKTRATE, RateState, arg, count, now_ns},
};
use aya_ebpf::bindings::BPF_NOEXIST;
use ipscan_common::{
    AddrKey, Config, EventKind, PacketLine, PacketSummary,
    config::{GLOBAL_PACKET_EVENTS_PER_SEC, global_flags as g},
    frag::{FragKey, frag_anomalies},
    packet::anomalies,
    stats,
};

pub(crate) const SEC: u64 = 1_000_000_000;

/// Takes one unit of this CPU's budget for per-packet events of all sources.
#[inline(always)]
pub(crate) fn global_budget(now: u64) -> bool {
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
///
/// A global function: verified once, on its own (1: within the budget).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn ipscan_budget(cfg: *const Config, p: *const PacketSummary, now: u64) -> u32 {
    match (arg(cfg), arg(p)) {
        (Some(cfg), Some(p)) => budget(cfg, p, now) as u32,
        _ => 0,
    }
}

#[inline(always)]
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
pub(crate) fn line(cfg: &Config, p: &PacketSummary, now: u64, l: PacketLine, flags: u8) {
    // The global budget comes first, inlined: a flood from many sources then costs no
    // per-source state, cannot fill the ring buffer, and no subprogram call either.
    if !global_budget(now) {
        count(stats::RATE_LIMITED);
        return;
    }
    if ipscan_budget(cfg, p, now) != 0 {
        emit_packet(EventKind::Packet, l as u8, flags, now, 1, p);
    }
}

/// [`ipscan_immediate`]'s `what` bits.
pub(crate) mod immediate {
    /// Verbose anomalies (short packet, bad checksum).
    pub(crate) const ANOMALOUS: u32 = 1;
    /// Bogus TCP flags.
    pub(crate) const BOGUS: u32 = 2;
    /// A traceroute probe.
    pub(crate) const TRACEROUTE: u32 = 4;
}

/// Lines reported on the packet itself: verbose anomalies, fragment attacks, bogus flags,
/// traceroute probes (`what`: [`immediate`] bits; fragments are told by the packet).
///
/// A global function: verified once, on its own. It returns 0: the kernel takes only global
/// functions that return a scalar.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn ipscan_immediate(cfg: *const Config, p: *const PacketSummary, what: u32) -> u32 {
    let (Some(cfg), Some(p)) = (arg(cfg), arg(p)) else {
        return 0;
    };
    let now = now_ns();
    if what & immediate::ANOMALOUS != 0 {
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
    if what & immediate::BOGUS != 0 {
        line(cfg, p, now, PacketLine::Bogus, 0);
    }
    if what & immediate::TRACEROUTE != 0 {
        line(cfg, p, now, PacketLine::Traceroute, 0);
    }
    0
}

/// Fragment attacks: the fragment counted in its datagram's FRAGS entry, and a line for each
/// anomaly it shows.
#[inline(always)]
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
