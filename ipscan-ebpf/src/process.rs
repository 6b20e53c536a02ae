//! The per-packet policy after parsing: blocked, watched, ignored, immediate lines,
//! detections, the packet's own line, hardening.

// aya-ebpf's map methods take `impl Borrow<K>`; passing keys and values by value would copy them
// onto the 512-byte BPF stack.
#![expect(clippy::needless_borrows_for_generic_args, reason = "by-value copies onto the BPF stack")]

use crate::{
    block::{ipscan_autoblock, ipscan_blocked, v4},
    detect::{RECORD_BLOCK, RECORD_ERROR, RECORD_IN_MODE, ipscan_in_mode, ipscan_record_one},
    lines::{immediate, ipscan_immediate, line},
    maps::{LISTEN, PROMISC4, PROMISC6, TRIPADDR4, TRIPADDR6, TRIPPORTS, arg, count, forget, now_ns},
    rules::ipscan_rules_ignored,
};
use aya_ebpf::{bindings::xdp_action, maps::lpm_trie::Key};
use ipscan_common::{
    Config, DETECTIONS, FAMILY_V4, PacketLine, PacketSummary,
    classify::{self, Detection},
    config::global_flags as g,
    packet::{PROTO_TCP, PROTO_UDP, tcp_flags},
    stats,
};

#[inline(always)]
pub(crate) fn watched(p: &PacketSummary) -> bool {
    if p.family == FAMILY_V4 {
        PROMISC4.get(Key::new(32, v4(&p.dst))).is_some()
    } else {
        PROMISC6.get(Key::new(128, p.dst)).is_some()
    }
}

/// Whether the packet is a probe of a tripwire: a port (TRIPPORTS) or, with `tripwire addr`, a
/// destination (TRIPADDR4/TRIPADDR6) configured as one.
#[inline(always)]
fn tripped(cfg: &Config, p: &PacketSummary) -> bool {
    if !classify::is_tripwire_probe(p) {
        return false;
    }
    let by_port = ipscan_common::config::tripports::place(p.proto, p.dport)
        .is_some_and(|(word, bit)| TRIPPORTS.get(word).is_some_and(|w| (*w >> bit) & 1 != 0));
    by_port
        || (cfg.has(g::TRIPADDR)
            && if p.family == FAMILY_V4 {
                TRIPADDR4.get(Key::new(32, v4(&p.dst))).is_some()
            } else {
                TRIPADDR6.get(Key::new(128, p.dst)).is_some()
            })
}

/// The per-packet work after parsing, but for the auto-blocks it asks for: the verdict, the
/// detections whose threshold the packet crossed and whose source the caller is to block
/// ([`Processed`]), or [`PROCESS_ERROR`] and a STATS slot to count in the upper 32 bits.
///
/// A global function: the verifier checks it once, on its own, rather than once for every
/// path through the parser that reaches it. The blocking is the caller's (the entry's), so that
/// the frames of this function and of [`ipscan_autoblock`] are never on one call chain: with
/// the entry's and the detection's, they came to 448 of the kernel's 512 bytes.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn ipscan_process(cfg: *const Config, p: *const PacketSummary) -> u64 {
    let (Some(cfg), Some(p)) = (arg(cfg), arg(p)) else {
        return PROCESS_ERROR | (stats::MAP_ERRORS as u64) << 32;
    };
    match process(cfg, p) {
        Ok(done) => done.0,
        Err(slot) => PROCESS_ERROR | (slot as u64) << 32,
    }
}

/// [`ipscan_process`]'s error bit.
pub(crate) const PROCESS_ERROR: u64 = 1 << 31;

/// What [`ipscan_process`] decided, as one word.
#[derive(Clone, Copy)]
pub(crate) struct Processed(u64);

impl Processed {
    /// The detections to block: one bit each, from this bit up.
    const BLOCK_SHIFT: u32 = 8;
    /// Hardening was left to the caller, for a packet that is not dropped by its auto-blocks.
    const HARDEN_LATER: u64 = 1 << 24;
    const _FITS: () = assert!(DETECTIONS.len() as u32 + Self::BLOCK_SHIFT <= 24);

    pub(crate) fn of(word: u64) -> Self {
        Self(word)
    }

    /// The XDP verdict so far.
    pub(crate) fn verdict(self) -> u32 {
        (self.0 & 0xff) as u32
    }

    /// The detections (bit `i`: detection `i`) whose source is to be blocked.
    pub(crate) fn to_block(self) -> u32 {
        (self.0 >> Self::BLOCK_SHIFT) as u32 & ((1 << DETECTIONS.len()) - 1)
    }

    pub(crate) fn harden_later(self) -> bool {
        self.0 & Self::HARDEN_LATER != 0
    }
}

#[inline(always)]
fn process(cfg: &Config, p: &PacketSummary) -> Result<Processed, u32> {
    let verdict = |v: u32| Processed(v as u64);
    if cfg.has(g::BLOCKLIST | g::AUTOBLOCKS) && ipscan_blocked(cfg, p) != 0 {
        count(stats::BLOCKED);
        return Ok(verdict(xdp_action::XDP_DROP));
    }
    if cfg.has(g::PROMISC) && !watched(p) {
        count(stats::NOT_WATCHED);
        return Ok(verdict(xdp_action::XDP_PASS));
    }
    if cfg.nrules != 0 && ipscan_rules_ignored(cfg.nrules) != 0 {
        count(stats::IGNORED);
        return Ok(verdict(xdp_action::XDP_PASS));
    }
    // The subprograms are called only when there is something for them to do: each call and
    // return costs (the SRSO mitigation on the reference machine).
    let anomalous = cfg.has(g::VERBOSE) && p.anomalies != 0;
    let bogus = cfg.has(g::BOGUS) && p.proto == PROTO_TCP && p.has_transport() && classify::is_bogus(p.tcp_flags);
    let traceroute = cfg.has(g::TRACEROUTE) && classify::is_traceroute(p);
    if anomalous || bogus || traceroute || p.is_fragment() {
        let what = (anomalous as u32 * immediate::ANOMALOUS)
            | (bogus as u32 * immediate::BOGUS)
            | (traceroute as u32 * immediate::TRACEROUTE);
        let _ = ipscan_immediate(cfg, p, what);
    }

    // Detections this packet counted toward whose source is in the mode: they suppress the
    // packet's ordinary line.
    let mut in_mode = false;
    let mut block = 0u64;
    let tripwire = cfg.has(g::TRIPWIRE | g::TRIPADDR) && tripped(cfg, p);
    // Forgotten: the verifier would otherwise follow the calls below once with the tripwire
    // bit known clear and once known set (twice the states of this function).
    // The sweeps and the per-target detections count the same probes, classified once. Each
    // bit only when its detection is on: a call that returns at once still costs its call and
    // return (about 30 ns a SYN, bench run 2026-12-07 17:49).
    let probe = if cfg.has(g::SWEEPS | g::DISTRIBUTED | g::DIST_SCAN) { classify::probe_proto(p) } else { 0 };
    let sweeps = (cfg.has(g::SWEEPS) as u32 * classify::sweep_of(probe))
        | ((probe != 0 && cfg.has(g::DISTRIBUTED)) as u32 * Detection::DistFlood.bit())
        | ((probe == PROTO_TCP && cfg.has(g::DIST_SCAN)) as u32 * Detection::DistScan.bit());
    let set = forget((classify::detections(p) | sweeps | (tripwire as u32 * Detection::Tripwire.bit())) as u64) as u32;
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
        // `counting confirmed`: the port scans count the host's rejects (on egress); a probe
        // only asks whether its source is in the mode.
        let peek = cfg.has(g::CONFIRMED) as u32 * (Detection::PortScan.bit() | Detection::UdpScan.bit());
        let mut record = |i: usize| -> Result<(), u32> {
            if set & (1 << i) != 0
                && let Some(dc) = cfg.detections.get(i)
            {
                if peek & (1 << i) != 0 {
                    all |= ipscan_in_mode(dc, now, i as u32, p) as u64 * RECORD_IN_MODE;
                    return Ok(());
                }
                let r = ipscan_record_one(dc, now, i as u32, Detection::counting_at(i), p);
                if r & RECORD_ERROR != 0 {
                    return Err((r >> 32) as u32);
                }
                all |= r;
                // The threshold packet of a detection that blocks: the caller blocks the source.
                block |= (r & RECORD_BLOCK != 0) as u64 * (1 << i);
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
        record(9)?;
        record(10)?;
        record(11)?;
        record(12)?;
        record(13)?;
        record(14)?;
        // Rejected probes (15) are counted on egress only ([`crate::egress`]).
        const _: () = assert!(DETECTIONS.len() == 16, "one record() call per detection counted on ingress");
        in_mode = all & RECORD_IN_MODE != 0;
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
    let hardening = cfg.has(g::DROP_SYNFIN | g::FOOL_NMAP | g::BLACKHOLE_TCP | g::BLACKHOLE_UDP);
    if block != 0 {
        // Hardening counts only packets that their auto-blocks do not drop.
        let later = if hardening { Processed::HARDEN_LATER } else { 0 };
        return Ok(Processed(xdp_action::XDP_PASS as u64 | block << Processed::BLOCK_SHIFT | later));
    }
    if hardening && ipscan_hardened(cfg, p) != 0 {
        count(stats::HARDENED);
        return Ok(verdict(xdp_action::XDP_DROP));
    }
    Ok(verdict(xdp_action::XDP_PASS))
}

/// Blocks the source of each detection in `to_block` (bit `i`: detection `i`, whose threshold
/// this packet crossed); whether any block took (the packet is then dropped).
#[inline(always)]
pub(crate) fn autoblock_crossed(cfg: &Config, p: &PacketSummary, to_block: u32) -> bool {
    let now = now_ns();
    let mut blocked = 0u32;
    for i in 0..DETECTIONS.len() {
        if to_block & (1 << i) != 0
            && let Some(dc) = cfg.detections.get(i)
        {
            blocked |= ipscan_autoblock(dc, now, i as u32, p);
        }
    }
    blocked != 0
}

/// The hardening options: drop what they cover (after detection and logging); 1: drop.
///
/// A global function: verified once, on its own.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn ipscan_hardened(cfg: *const Config, p: *const PacketSummary) -> u32 {
    match (arg(cfg), arg(p)) {
        (Some(cfg), Some(p)) => hardened(cfg, p) as u32,
        _ => 0,
    }
}

#[inline(always)]
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
