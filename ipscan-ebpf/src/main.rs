//! The ipscan XDP program: parse -> classify -> record, with one exit.
//!
//! A detector fails open: any error of the program's own is counted in STATS and the frame is
//! passed. The only drop verdicts are deliberate policy decisions.

#![no_std]
#![no_main]

mod parse;
mod record;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use ipscan_common::stats;

#[xdp]
pub fn ipscan(ctx: XdpContext) -> u32 {
    record::count(stats::PACKETS);
    let verdict = match try_ipscan(&ctx) {
        Ok(v) => v,
        Err(slot) => {
            record::count(slot);
            xdp_action::XDP_PASS
        }
    };
    record::count(if verdict == xdp_action::XDP_DROP {
        stats::DROPPED
    } else {
        stats::PASSED
    });
    verdict
}

/// Errors are STATS slots to count; the caller passes the frame.
fn try_ipscan(ctx: &XdpContext) -> Result<u32, u32> {
    let summary = parse::parse(ctx)?;
    record::record(&summary)?;
    Ok(xdp_action::XDP_PASS)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
