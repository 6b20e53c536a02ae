//! The full parse of a frame into this CPU's SUMMARY slot, with the frame's bytes read as the
//! verifier wants them.

use aya_ebpf::bindings::{__sk_buff, xdp_md};
use ipscan_common::{parse, stats};

use crate::maps;

/// The frame as the verifier likes it ([`parse::KernelFrame`]), built from a context.
pub(crate) type XdpFrame = parse::KernelFrame;

/// An XDP frame's bounds, read afresh from the context: volatile, so that LLVM does not reuse
/// earlier packet pointers.
#[inline(always)]
pub(crate) fn xdp_frame(ctx: *const xdp_md) -> XdpFrame {
    // SAFETY: ctx is the program's context pointer; both fields are readable.
    unsafe {
        XdpFrame::new(
            core::ptr::read_volatile(&(*ctx).data) as usize,
            core::ptr::read_volatile(&(*ctx).data_end) as usize,
        )
    }
}

/// The linear data of the egress program's socket buffer: its frame begins with the Ethernet
/// header, as an XDP frame does.
#[inline(always)]
pub(crate) fn skb_frame(skb: *const __sk_buff) -> XdpFrame {
    // SAFETY: skb is the program's context pointer; both fields are readable.
    unsafe {
        XdpFrame::new(
            core::ptr::read_volatile(&(*skb).data) as usize,
            core::ptr::read_volatile(&(*skb).data_end) as usize,
        )
    }
}

/// Parses the frame into this CPU's SUMMARY slot (cleared first): 0, or the STATS slot of
/// why not. `checksum`: verify the IPv4 header checksum (`verbose`).
///
/// A global function: verified once, on its own, apart from the fast path before it and the
/// policy after it, and its stack frame is not on the policy's call chain.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn ipscan_parse(ctx: *mut xdp_md, checksum: u32) -> u32 {
    let (Ok(summary), Some(forget)) = (maps::summary_slot(), maps::FORGET.get_ptr_mut(0)) else {
        return stats::MAP_ERRORS;
    };
    summary.clear();
    let frame = xdp_frame(ctx).forgetting(forget);
    match parse::parse_into(&frame, parse::Options { checksum: checksum != 0 }, summary) {
        Ok(()) => 0,
        Err(slot) => slot,
    }
}
