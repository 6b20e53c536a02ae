//! A new source on every run, for the per-packet row "SYN from a new source": BPF_PROG_TEST_RUN
//! repeats one frame, so this program changes the frame's IPv6 source (its last word, +1 per
//! run; the test run keeps the frame between repeats) and tail-calls the program in slot 0 of
//! `NEXT`: ipscan, or the empty XDP_PASS program for the baseline, so that both carry the same
//! rewrite and tail call. A million repeats are a million sources, each seen once, with the
//! measured program's code and maps as warm as under a real flood of new sources.

#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::ProgramArray,
    programs::XdpContext,
};

#[map]
static NEXT: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// Offset of the last word of the IPv6 source in an untagged frame (14 + 8 + 12).
const SRC_LOW: usize = 34;

#[xdp]
pub fn fresh_sources(ctx: XdpContext) -> u32 {
    if ctx.data() + SRC_LOW + 4 <= ctx.data_end() {
        let p = (ctx.data() + SRC_LOW) as *mut u32;
        // SAFETY: the four bytes lie inside the packet, checked above.
        unsafe { p.write_unaligned(u32::from_be(p.read_unaligned()).wrapping_add(1).to_be()) };
    }
    // SAFETY: a tail call to an XDP program on the same context; on failure it returns here.
    unsafe { NEXT.tail_call(&ctx, 0) };
    // Only a failed tail call gets here: the bench expects XDP_PASS, so this shows.
    xdp_action::XDP_ABORTED
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
