//! The egress program: the host's rejects (resets and ICMP unreachables refusing a probe,
//! [`ipscan_common::reject`]) counted toward the prober. It never changes what the host sends:
//! every frame leaves with TC_ACT_OK.
//!
//! It shares the XDP program's maps: its CONFIG, SOURCES, PROBATION and AUTOBLOCK, and its
//! per-CPU SUMMARY and SCRATCH slots. Sharing the slots is safe because the two never run
//! nested on one CPU: XDP runs in the receive softirq, the egress program with bottom halves
//! disabled, and a reset sent from the receive path goes out after the XDP program returned.

use aya_ebpf::programs::TcContext;
use ipscan_common::{
    Config, Detection, classify::counting, config::global_flags as g, packet::PROTO_TCP, parse::Frame as _, reject,
    stats,
};

use crate::{
    detect::{RECORD_BLOCK, RECORD_ERROR, ipscan_record_one},
    maps::{self, count, now_ns},
    parse::{XdpFrame, skb_frame},
    process::autoblock_crossed,
    rules::ipscan_rules_ignored,
};

/// Most bytes a reject's headers take: Ethernet, an IPv4 header with options, the ICMP header,
/// the quoted IPv4 header with options and its ports.
const REJECT_HEADERS: u32 = 14 + 60 + 8 + 60 + 4;

/// Counts the frame if it is a reject and the configuration wants rejects; errors are counted.
#[inline(always)]
pub(crate) fn egress(ctx: &TcContext) {
    let Ok(cfg) = maps::config() else {
        count(stats::MAP_ERRORS);
        return;
    };
    if !cfg.has(g::REJECTS) {
        return;
    }
    // A reset is built whole. An ICMP error whose quoted headers are not all in the linear data
    // has them pulled in first; other frames never are (a large segment's payload stays where
    // it is).
    let frame = skb_frame(ctx.skb.skb);
    let want = ctx.len().min(REJECT_HEADERS) as usize;
    let frame = if frame.len() < want && reject::is_icmp(&frame) {
        if ctx.pull_data(want as u32).is_err() {
            return;
        }
        skb_frame(ctx.skb.skb)
    } else {
        frame
    };
    if let Err(slot) = record(cfg, &frame) {
        count(slot);
    }
}

#[inline(always)]
fn record(cfg: &Config, frame: &XdpFrame) -> Result<(), u32> {
    let p = maps::summary_slot()?;
    if !reject::probe_of(frame, p) {
        return Ok(());
    }
    // iplog's rules name the prober as they name any source.
    if cfg.nrules != 0 && ipscan_rules_ignored(cfg.nrules) != 0 {
        count(stats::IGNORED);
        return Ok(());
    }
    count(stats::REJECTS);
    let now = now_ns();
    let mut block = 0u32;
    let mut record = |kind: Detection| -> Result<(), u32> {
        let Some(dc) = cfg.detections.get(kind as usize) else {
            return Ok(());
        };
        let r = ipscan_record_one(dc, now, kind as u32, counting::PORTS, p);
        if r & RECORD_ERROR != 0 {
            return Err((r >> 32) as u32);
        }
        block |= (r & RECORD_BLOCK != 0) as u32 * kind.bit();
        Ok(())
    };
    if cfg.has(g::CONFIRMED) {
        record(if p.proto == PROTO_TCP { Detection::PortScan } else { Detection::UdpScan })?;
    }
    record(Detection::Rejected)?;
    if block != 0 {
        autoblock_crossed(cfg, p, block);
    }
    Ok(())
}
