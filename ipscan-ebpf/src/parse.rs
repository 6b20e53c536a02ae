//! The full parse of a frame into this CPU's SUMMARY slot, with the frame's bytes read as the
//! verifier wants them.

use aya_ebpf::bindings::{__sk_buff, xdp_md};
use ipscan_common::{parse, stats};

use crate::maps;

/// The frame as the verifier likes it: every read compares `data + off + N` with `data_end`.
pub(crate) struct XdpFrame {
    start: usize,
    end: usize,
    /// This CPU's FORGET slot ([`parse::Frame::opaque`]), or null: then offsets are kept.
    forget: *mut u64,
}

impl XdpFrame {
    /// The frame's bounds, read afresh from the context: volatile, so that LLVM does not reuse
    /// earlier packet pointers, and the verifier does not check the slow path once for every
    /// range the fast path had proven on them (+200,000 processed instructions).
    #[inline(always)]
    pub(crate) fn of(ctx: *const xdp_md) -> Self {
        // SAFETY: ctx is the program's context pointer; both fields are readable.
        unsafe {
            Self {
                start: core::ptr::read_volatile(&(*ctx).data) as usize,
                end: core::ptr::read_volatile(&(*ctx).data_end) as usize,
                forget: core::ptr::null_mut(),
            }
        }
    }

    /// The linear data of the egress program's socket buffer: its frame begins with the
    /// Ethernet header, as an XDP frame does.
    #[inline(always)]
    pub(crate) fn of_skb(skb: *const __sk_buff) -> Self {
        // SAFETY: skb is the program's context pointer; both fields are readable.
        unsafe {
            Self {
                start: core::ptr::read_volatile(&(*skb).data) as usize,
                end: core::ptr::read_volatile(&(*skb).data_end) as usize,
                forget: core::ptr::null_mut(),
            }
        }
    }
}

impl parse::Frame for XdpFrame {
    #[inline(always)]
    fn bytes<const N: usize>(&self, off: usize) -> Option<&[u8; N]> {
        if self.start + off + N > self.end {
            return None;
        }
        // SAFETY: the N bytes at start+off lie inside the packet, checked above; [u8; N] has
        // alignment 1.
        Some(unsafe { &*((self.start + off) as *const [u8; N]) })
    }

    #[inline(always)]
    fn len(&self) -> usize {
        self.end - self.start
    }

    #[inline(always)]
    fn word(&self, off: usize) -> Option<u32> {
        if self.start + off + 4 > self.end {
            return None;
        }
        let v: u32;
        // SAFETY: the four bytes at start+off lie inside the packet, checked above; the
        // verifier allows unaligned packet loads on this architecture, and a BPF word load is
        // little-endian on bpfel, the order of `u32::from_le_bytes`.
        unsafe {
            core::arch::asm!(
                "{v} = *(u32 *)({p} + 0)",
                p = in(reg) self.start + off,
                v = lateout(reg) v,
                options(nostack, readonly),
            )
        };
        Some(v)
    }

    #[inline(always)]
    fn opaque(&self, off: usize) -> usize {
        if self.forget.is_null() {
            return off;
        }
        // SAFETY: this CPU's FORGET slot, valid for the program's run; volatile, so that LLVM
        // reads back the stored value instead of reusing the register.
        unsafe {
            core::ptr::write_volatile(self.forget, off as u64);
            core::ptr::read_volatile(self.forget) as usize
        }
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
    let frame = XdpFrame { forget, ..XdpFrame::of(ctx) };
    match parse::parse_into(&frame, parse::Options { checksum: checksum != 0 }, summary) {
        Ok(()) => 0,
        Err(slot) => slot,
    }
}
