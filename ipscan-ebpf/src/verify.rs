//! Harness programs for `ipscan check`: each one makes the kernel verify one global function on
//! its own, so that the verifier's cost of every function can be read off the kernel's own
//! statistics.
//!
//! A harness calls its function, then [`ipscan_verify_stop`], which every verifier refuses.
//! Global functions are verified one after another in the order of their place in the program
//! (after the entry on kernels 6.6 and later, before it on older ones) and the stop function
//! comes last, so a harness's load fails only after its function was verified, and the log's
//! statistics line (`processed N insns ... total_states M`, `verification time T usec`) counts
//! the harness's few instructions, the function, and the stop. The product never loads these
//! programs.

use aya_ebpf::{Global, bindings::xdp_action, macros::xdp, programs::XdpContext};

use crate::{block, detect, lines, maps, parse, process, rules};

/// A call of helper [`ipscan_common::verify::STOP_HELPER`], which no kernel has: every
/// verifier refuses it, with words no other refusal has (`invalid func unknown#32767`).
#[inline(always)]
fn refuse() -> u64 {
    let v: u64;
    // SAFETY: never runs: the verifier refuses it.
    unsafe {
        core::arch::asm!(
            "call {id}",
            id = const ipscan_common::verify::STOP_HELPER,
            lateout("r0") v,
            lateout("r1") _, lateout("r2") _, lateout("r3") _, lateout("r4") _, lateout("r5") _,
            options(nostack),
        )
    };
    v
}

/// The stop every harness calls last: refused by every verifier.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn ipscan_verify_stop() -> u64 {
    refuse()
}

/// Non-zero: the entry calls [`ipscan_refused`] and the kernel refuses the program, for tests
/// of what user space does then. Read-only and set at load time: at zero the call is code the
/// verifier knows to be dead, and [`ipscan_refused`] (verified on its own by kernels before
/// 6.6 even so) is a plain return.
#[unsafe(no_mangle)]
static IPSCAN_TEST_REFUSAL: Global<u8> = Global::new(0);

/// Whether the program is loaded to be refused ([`IPSCAN_TEST_REFUSAL`]).
#[inline(always)]
pub(crate) fn test_refusal() -> bool {
    IPSCAN_TEST_REFUSAL.load() != 0
}

/// Refused by the verifier when [`IPSCAN_TEST_REFUSAL`] is set, like the stop.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn ipscan_refused() -> u32 {
    if test_refusal() {
        return refuse() as u32;
    }
    0
}

/// The stop alone: what a harness adds to the function it calls.
#[xdp]
pub fn ipscan_verify_nothing(_ctx: XdpContext) -> u32 {
    ipscan_verify_stop() as u32
}

/// A harness: an XDP program that calls one global function with arguments from the CONFIG
/// and SUMMARY slots (any arguments do: a global function is verified for all of them), then
/// the stop.
macro_rules! harness {
    ($(#[$doc:meta])* $name:ident, |$cfg:ident, $p:ident| $call:expr) => {
        $(#[$doc])*
        #[xdp]
        pub fn $name(_ctx: XdpContext) -> u32 {
            let (Ok($cfg), Ok($p)) = (maps::config(), maps::summary_slot()) else {
                return xdp_action::XDP_PASS;
            };
            let r = $call;
            ipscan_verify_stop();
            r as u32
        }
    };
}

/// [`parse::ipscan_parse`] on its own (it takes the context).
#[xdp]
pub fn ipscan_verify_parse(ctx: XdpContext) -> u32 {
    let r = parse::ipscan_parse(ctx.ctx, 1);
    ipscan_verify_stop();
    r
}

harness!(ipscan_verify_process, |cfg, p| process::ipscan_process(cfg, p));
harness!(ipscan_verify_blocked, |cfg, p| block::ipscan_blocked(cfg, p));
harness!(ipscan_verify_blocklisted, |_cfg, p| block::ipscan_blocklisted(&ipscan_common::parse::IpSender::of(p)));
harness!(ipscan_verify_rules_ignored, |cfg, _p| rules::ipscan_rules_ignored(cfg.nrules));
harness!(ipscan_verify_immediate, |cfg, p| lines::ipscan_immediate(cfg, p, u32::MAX));
harness!(ipscan_verify_budget, |cfg, p| lines::ipscan_budget(cfg, p, 0));
harness!(ipscan_verify_record_one, |cfg, p| detect::ipscan_record_one(&cfg.detections[0], 0, 0, 0, p));
harness!(ipscan_verify_in_mode, |cfg, p| detect::ipscan_in_mode(&cfg.detections[0], 0, 0, p));
harness!(ipscan_verify_autoblock, |cfg, p| block::ipscan_autoblock(&cfg.detections[0], 0, 0, p));
harness!(ipscan_verify_hardened, |cfg, p| process::ipscan_hardened(cfg, p));
harness!(ipscan_verify_refused, |_cfg, _p| ipscan_refused());
