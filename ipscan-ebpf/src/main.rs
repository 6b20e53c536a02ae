//! The ipscan XDP program: parse -> allow/block -> rules -> classify -> record -> verdict, with
//! one exit.
//!
//! A detector fails open: any error of the program's own is counted in STATS and the frame is
//! passed. The only drop verdicts are deliberate policy decisions (blocked source, auto-block on
//! the threshold packet, hardening options).

#![no_std]
#![no_main]
// Inline BPF assembly for the atomic add (record::atomic_add) and word loads from the packet.
#![feature(asm_experimental_arch)]

mod record;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use ipscan_common::{
    Config, classify,
    config::global_flags::{AUTOBLOCKS, BLOCKLIST},
    parse, stats,
};

/// The frame as the verifier likes it: every read compares `data + off + N` with `data_end`.
struct XdpFrame {
    start: usize,
    end: usize,
}

impl XdpFrame {
    /// The frame's bounds, read afresh from the context: volatile, so that LLVM does not reuse
    /// earlier packet pointers, and the verifier does not check the slow path once for every
    /// range the fast path had proven on them (+200,000 processed instructions).
    #[inline(always)]
    fn of(ctx: &XdpContext) -> Self {
        // SAFETY: ctx.ctx is the program's context pointer; both fields are readable.
        unsafe {
            Self {
                start: core::ptr::read_volatile(&(*ctx.ctx).data) as usize,
                end: core::ptr::read_volatile(&(*ctx.ctx).data_end) as usize,
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
}

#[xdp]
pub fn ipscan(ctx: XdpContext) -> u32 {
    record::count(stats::PACKETS);
    // PASSED is not counted: user space derives it as PACKETS - DROPPED.
    let Ok(cfg) = record::config() else {
        record::count(stats::MAP_ERRORS);
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
    let fast = XdpFrame::of(&ctx);
    if lists != 0
        && let Some(ip) = parse::ip_sender(&fast)
    {
        // AUTOBLOCK first: the flood of a source the kernel blocked is the common case, and its
        // lookup is the cheaper one. The LPM lookup of the prefixes blocked by hand (a call) is
        // made only near one of them.
        if (cfg.has(AUTOBLOCKS) && record::autoblocked_words(&ip.key_words(), ip.ip_payload_len))
            || (cfg.has(BLOCKLIST)
                && record::near_blocklisted(ip.family, ip.src[0])
                && record::blocklisted(&record::Sender::of_ip(&ip)))
        {
            record::count(stats::BLOCKED);
            record::count(stats::DROPPED);
            return xdp_action::XDP_DROP;
        }
        checked = true;
    }
    // `plain_tcp` takes only frames that `ip_sender` reads a sender from (unit test, `parse`
    // fuzz target), so a segment passed here had its source looked up in the lists.
    if let Some(t) = parse::plain_tcp(&fast)
        && classify::passes_quietly(cfg, t.tcp_flags)
    {
        return xdp_action::XDP_PASS;
    }
    // What the full parse would refuse from the Ethernet and IPv4 headers alone (ARP, a broken
    // IPv4 header) is counted as it would count it, without filling a summary.
    if let Some(slot) = parse::rejected(&fast) {
        record::count(slot);
        return xdp_action::XDP_PASS;
    }
    record::set_lists_checked(checked);
    let frame = XdpFrame::of(&ctx);
    let verdict = match try_ipscan(cfg, &frame) {
        Ok(v) => v,
        Err(slot) => {
            record::count(slot);
            xdp_action::XDP_PASS
        }
    };
    if verdict == xdp_action::XDP_DROP {
        record::count(stats::DROPPED);
    }
    verdict
}

/// Errors are STATS slots to count; the caller passes the frame.
#[inline(always)]
fn try_ipscan(cfg: &Config, frame: &XdpFrame) -> Result<u32, u32> {
    let opts = parse::Options { checksum: cfg.has(ipscan_common::config::global_flags::VERBOSE) };
    let summary = record::summary_slot()?;
    summary.clear();
    parse::parse_into(frame, opts, summary)?;
    record::process(cfg, summary)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
