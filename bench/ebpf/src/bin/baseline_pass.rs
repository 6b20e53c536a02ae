//! Benchmark baseline: the empty XDP program that passes every frame. `cargo xtask bench`
//! reports ipscan's per-packet cost and throughput as ratios against this program, measured in
//! the same run and in the same way.

#![no_std]
#![no_main]

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

#[xdp]
pub fn baseline_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
