//! The benchmark's packet generator: run with BPF_PROG_TEST_RUN and BPF_F_TEST_XDP_LIVE_FRAMES
//! (Linux 5.18, commit b530e9e1063e) on the attacker's veth, it returns XDP_TX so that every
//! repetition of the test frame leaves through that veth and arrives at its peer, the victim.
//!
//! With the load-time global `GEN_VARY_SOURCE` set to 4 or 6 it first rewrites the source
//! address from a per-CPU counter, so one test run floods from many sources: IPv4 frames get the
//! counter in the address's low 16 bits (the IPv4 header checksum is updated, RFC 1624), IPv6
//! frames get the CPU number and the counter in the address's low 48 bits. The frame must be
//! untagged Ethernet of that family; anything else is sent unchanged. With 5 ([`SCAN_FLOOD`]) an
//! IPv4 TCP frame becomes a SYN scan flood from 16,384 sources.

#![no_std]
#![no_main]

use aya_ebpf::{
    Global,
    bindings::xdp_action,
    helpers::bpf_get_smp_processor_id,
    macros::{map, xdp},
    maps::PerCpuArray,
    programs::XdpContext,
};
use ipscan_bench_common::{SCAN_FLOOD, SCAN_SOURCES};

/// 0: send the frame as it is; 4 or 6: rewrite the IPv4 / IPv6 source first.
#[unsafe(no_mangle)]
static GEN_VARY_SOURCE: Global<u8> = Global::new(0);

/// Per-CPU source counter.
#[map]
static GEN_COUNTER: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// This CPU's next packet number.
#[inline(always)]
fn next_packet() -> Option<u32> {
    let counter = GEN_COUNTER.get_ptr_mut(0)?;
    // SAFETY: per-CPU slot, no concurrent writer on this CPU.
    unsafe {
        *counter = (*counter).wrapping_add(1);
        Some(*counter)
    }
}

const ETH_HLEN: usize = 14;
/// Bytes of Ethernet + IPv6 header up to the end of the source address.
const V6_SRC_END: usize = ETH_HLEN + 24;
/// Bytes of Ethernet + IPv4 header up to the end of the source address.
const V4_SRC_END: usize = ETH_HLEN + 16;

#[xdp]
pub fn generator_tx(ctx: XdpContext) -> u32 {
    let vary = GEN_VARY_SOURCE.load();
    if vary == SCAN_FLOOD {
        scan_flood(&ctx);
    } else if vary != 0 {
        vary_source(&ctx, vary);
    }
    xdp_action::XDP_TX
}

/// Offset of an untagged IPv4 (IHL 5) TCP segment's destination port.
const V4_TCP_DPORT: usize = ETH_HLEN + 20 + 2;

#[inline(always)]
fn scan_flood(ctx: &XdpContext) {
    let Some(n) = next_packet() else {
        return;
    };
    let start = ctx.data();
    if start + V4_TCP_DPORT + 2 > ctx.data_end() {
        return;
    }
    // SAFETY: the frame holds the Ethernet and IPv4 headers and the TCP ports, checked above.
    let h = unsafe { &mut *(start as *mut [u8; V4_TCP_DPORT + 2]) };
    let port = 1 + ((n / SCAN_SOURCES) % 1024) as u16;
    h[V4_TCP_DPORT..].copy_from_slice(&port.to_be_bytes());
    set_v4_source_low16(h, (n % SCAN_SOURCES) as u16);
}

/// Sets the low 16 bits of the IPv4 source and updates the header checksum (RFC 1624).
#[inline(always)]
fn set_v4_source_low16<const N: usize>(h: &mut [u8; N], new: u16) {
    const { assert!(N >= V4_SRC_END) };
    let low = V4_SRC_END - 2;
    let old = u16::from_be_bytes([h[low], h[low + 1]]);
    h[low..low + 2].copy_from_slice(&new.to_be_bytes());
    // RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m').
    let csum_at = ETH_HLEN + 10;
    let hc = u16::from_be_bytes([h[csum_at], h[csum_at + 1]]);
    let mut sum = u32::from(!hc) + u32::from(!old) + u32::from(new);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    h[csum_at..csum_at + 2].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

#[inline(always)]
fn vary_source(ctx: &XdpContext, family: u8) {
    let Some(n) = next_packet() else {
        return;
    };
    let start = ctx.data();
    if family == 6 {
        if start + V6_SRC_END > ctx.data_end() {
            return;
        }
        // SAFETY: the whole Ethernet + IPv6 source range lies inside the frame, checked above.
        let h = unsafe { &mut *(start as *mut [u8; V6_SRC_END]) };
        // SAFETY: helper without arguments.
        let cpu = unsafe { bpf_get_smp_processor_id() } as u16;
        h[V6_SRC_END - 6..V6_SRC_END - 4].copy_from_slice(&cpu.to_be_bytes());
        h[V6_SRC_END - 4..].copy_from_slice(&n.to_be_bytes());
    } else if family == 4 {
        if start + V4_SRC_END > ctx.data_end() {
            return;
        }
        // SAFETY: the whole Ethernet + IPv4 header up to the source lies inside the frame.
        let h = unsafe { &mut *(start as *mut [u8; V4_SRC_END]) };
        set_v4_source_low16(h, n as u16);
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
