//! Records for user space on the EVENTS ring buffer; a full ring counts a lost event.

use crate::maps::{EVENTS, count};
use ipscan_common::{Event, EventKind, PacketSummary, SourceKey, SourceState, stats, sweep::SweepHosts};

#[inline(always)]
pub(crate) fn emit(kind: EventKind, now: u64, key: &SourceKey, state: &SourceState, p: &PacketSummary, flags: u8) {
    emit_with(kind, now, key, state, p, flags, None)
}

/// [`emit`], with a sweep's first hosts.
#[inline(always)]
pub(crate) fn emit_with(
    kind: EventKind,
    now: u64,
    key: &SourceKey,
    state: &SourceState,
    p: &PacketSummary,
    flags: u8,
    hosts: Option<&SweepHosts>,
) {
    match EVENTS.reserve::<Event>(0) {
        Some(mut entry) => {
            // SAFETY: `fill` writes every field of the reserved record.
            unsafe {
                let ev = &mut *entry.as_mut_ptr();
                ev.fill(kind, now, key, state, p);
                ev.flags = flags;
                if let Some(h) = hosts {
                    ev.put_hosts(state, h);
                }
            }
            entry.submit(0);
        }
        None => count(stats::LOST_EVENTS),
    }
}

#[inline(always)]
pub(crate) fn emit_packet(kind: EventKind, line: u8, flags: u8, now: u64, n: u64, p: &PacketSummary) {
    match EVENTS.reserve::<Event>(0) {
        Some(mut entry) => {
            // SAFETY: `fill_packet` writes every field of the reserved record.
            unsafe { (*entry.as_mut_ptr()).fill_packet(kind, line, flags, now, n, p) };
            entry.submit(0);
        }
        None => count(stats::LOST_EVENTS),
    }
}
