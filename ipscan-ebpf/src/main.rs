//! The ipscan XDP program: parse -> allow/block -> rules -> classify -> record -> verdict, with
//! one exit.
//!
//! A detector fails open: any error of the program's own is counted in STATS and the frame is
//! passed. The only drop verdicts are deliberate policy decisions (blocked source, auto-block on
//! the threshold packet, hardening options).

#![no_std]
#![no_main]
// Inline BPF assembly for the atomic add (maps::atomic_add) and word loads from the packet.
#![feature(asm_experimental_arch)]

mod block;
mod detect;
mod egress;
mod events;
mod lines;
mod maps;
mod parse;
mod process;
mod rules;
mod verify;

use aya_ebpf::{
    bindings::{TC_ACT_OK, xdp_action},
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use ipscan_common::{
    Config,
    config::global_flags::{AUTOBLOCKS, BLOCKLIST, VERBOSE},
    stats,
};

#[xdp]
pub fn ipscan(ctx: XdpContext) -> u32 {
    if verify::test_refusal() {
        return verify::ipscan_refused();
    }
    maps::count(stats::PACKETS);
    // PASSED is not counted: user space derives it as PACKETS - DROPPED. Every drop goes
    // through `maps::drop_verdict`, which passes it instead under `dry_run`.
    let Ok(cfg) = maps::config() else {
        maps::count(stats::MAP_ERRORS);
        return xdp_action::XDP_PASS;
    };
    // The fast path. A blocked source (auto-blocked by the kernel, or under a prefix blocked by
    // hand) is dropped with its address read straight from the IP header, whatever the protocol
    // (untagged frames, IPv6 without extension headers); a plain TCP segment of an established
    // flow (no VLAN tag, IP options, extension header or fragmentation) from a source that is
    // not, when nothing is configured that could want it, is only counted. Inlined: on the
    // reference machine every BPF subprogram return goes through the SRSO return thunk (about
    // 15 ns).
    let lists = cfg.flags & (AUTOBLOCKS | BLOCKLIST);
    let mut checked = false;
    let fast = parse::xdp_frame(ctx.ctx);
    if lists != 0
        && let Some(ip) = ipscan_common::parse::ip_sender(&fast)
    {
        // AUTOBLOCK first: the flood of a source the kernel blocked is the common case, and its
        // lookup is the cheaper one. The LPM lookup of the prefixes blocked by hand (a call) is
        // made only near one of them.
        if (cfg.has(AUTOBLOCKS) && block::autoblocked_words(&ip.key_words(), ip.ip_payload_len))
            || (cfg.has(BLOCKLIST)
                && block::near_blocklisted(ip.family, ip.src[0])
                && block::ipscan_blocklisted(&ip) != 0)
        {
            maps::count(stats::BLOCKED);
            return maps::drop_verdict(cfg);
        }
        checked = true;
    }
    // `plain_tcp` takes only frames that `ip_sender` reads a sender from (unit test, `parse`
    // fuzz target), so a segment passed here had its source looked up in the lists.
    if let Some(t) = ipscan_common::parse::plain_tcp(&fast)
        && ipscan_common::config::passes_quietly(cfg, t.tcp_flags)
    {
        return xdp_action::XDP_PASS;
    }
    // What the full parse would refuse from the Ethernet and IPv4 headers alone (ARP, a broken
    // IPv4 header) is counted as it would count it, without filling a summary.
    if let Some(slot) = ipscan_common::parse::rejected(&fast) {
        maps::count(slot);
        return xdp_action::XDP_PASS;
    }
    maps::set_lists_checked(checked);
    let verdict = match try_ipscan(&ctx, cfg) {
        Ok(v) => v,
        Err(slot) => {
            maps::count(slot);
            xdp_action::XDP_PASS
        }
    };
    if verdict == xdp_action::XDP_DROP {
        return maps::drop_verdict(cfg);
    }
    verdict
}

/// The full parse, then the policy; errors are STATS slots to count (the caller passes the
/// frame).
#[inline(always)]
fn try_ipscan(ctx: &XdpContext, cfg: &Config) -> Result<u32, u32> {
    match parse::ipscan_parse(ctx.ctx, cfg.has(VERBOSE) as u32) {
        0 => {}
        slot => return Err(slot),
    }
    let summary = maps::summary_slot()?;
    let r = process::ipscan_process(cfg, summary);
    if r & process::PROCESS_ERROR != 0 {
        return Err((r >> 32) as u32);
    }
    let done = process::Processed::of(r);
    // The threshold packet of detections that block: its source is blocked in the kernel now,
    // and the packet is the first one dropped.
    if done.to_block() != 0 {
        if process::autoblock_crossed(cfg, summary, done.to_block()) {
            return Ok(xdp_action::XDP_DROP);
        }
        if done.harden_later() && process::ipscan_hardened(cfg, summary) != 0 {
            maps::count(stats::HARDENED);
            return Ok(xdp_action::XDP_DROP);
        }
    }
    Ok(done.verdict())
}

/// The egress program (attached with `counting confirmed` or the rejected probes detection on):
/// counts the host's rejects toward the sources they refuse ([`egress`]), and lets every frame
/// go.
#[classifier]
pub fn ipscan_egress(ctx: TcContext) -> i32 {
    egress::egress(&ctx);
    TC_ACT_OK
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
