//! Cursor parser: Ethernet (two VLAN tags) / IPv4 (options) | IPv6 (extension headers) /
//! TCP | UDP | ICMP | ICMPv6 -> [`PacketSummary`]. Every read is bounds-checked in full first.

use aya_ebpf::programs::XdpContext;
use ipscan_common::{
    FAMILY_V4, FAMILY_V6, PacketSummary,
    packet::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, ip_flags},
    stats,
};

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
/// VLAN tags parsed (802.1ad outer + 802.1Q inner).
const MAX_VLAN_TAGS: usize = 2;
/// IPv6 extension headers followed before giving up (counted as V6_EXT_LIMIT).
pub const MAX_V6_EXT_HEADERS: usize = 8;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_AH: u8 = 51;
const IPPROTO_DSTOPTS: u8 = 60;

type Result<T> = core::result::Result<T, u32>;

/// Returns a reference to `N` bytes at `off`, or MALFORMED when the frame is too short.
#[inline(always)]
fn bytes<const N: usize>(ctx: &XdpContext, off: usize) -> Result<&[u8; N]> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + off + N > end {
        return Err(stats::MALFORMED);
    }
    // SAFETY: the N bytes at start+off lie inside the packet, checked above; [u8; N] has
    // alignment 1.
    Ok(unsafe { &*((start + off) as *const [u8; N]) })
}

#[inline(always)]
fn be16(b: &[u8], i: usize) -> u16 {
    match (b.get(i), b.get(i + 1)) {
        (Some(h), Some(l)) => u16::from_be_bytes([*h, *l]),
        _ => 0,
    }
}

pub fn parse(ctx: &XdpContext) -> Result<PacketSummary> {
    let mut p = PacketSummary::default();
    let eth: &[u8; ETH_HLEN] = bytes(ctx, 0)?;
    let mut ethertype = be16(eth, 12);
    let mut off = ETH_HLEN;
    for _ in 0..MAX_VLAN_TAGS {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            break;
        }
        let tag: &[u8; 4] = bytes(ctx, off)?;
        ethertype = be16(tag, 2);
        off += 4;
    }
    let transport = match ethertype {
        ETH_P_IP => ipv4(ctx, off, &mut p)?,
        ETH_P_IPV6 => ipv6(ctx, off, &mut p)?,
        _ => return Err(stats::NOT_IP),
    };
    if let Some(toff) = transport {
        l4(ctx, toff, &mut p)?;
    }
    Ok(p)
}

/// Parses an IPv4 header at `off`; returns the transport offset unless this is a later fragment.
#[inline(always)]
fn ipv4(ctx: &XdpContext, off: usize, p: &mut PacketSummary) -> Result<Option<usize>> {
    let h: &[u8; 20] = bytes(ctx, off)?;
    if h[0] >> 4 != 4 {
        return Err(stats::MALFORMED);
    }
    let ihl = ((h[0] & 0x0f) as usize) * 4;
    if ihl < 20 {
        return Err(stats::MALFORMED);
    }
    // The options are not read, but they must be in the frame before the transport header.
    if ctx.data() + off + ihl > ctx.data_end() {
        return Err(stats::MALFORMED);
    }
    let total = be16(h, 2) as usize;
    if total < ihl {
        return Err(stats::MALFORMED);
    }
    let frag = be16(h, 6);
    p.family = FAMILY_V4;
    p.ttl = h[8];
    p.proto = h[9];
    p.src[..4].copy_from_slice(&h[12..16]);
    p.dst[..4].copy_from_slice(&h[16..20]);
    p.ip_payload_len = (total - ihl) as u32;
    if frag & 0x4000 != 0 {
        p.ip_flags |= ip_flags::DF;
    }
    if frag & 0x2000 != 0 {
        p.ip_flags |= ip_flags::MF | ip_flags::FRAGMENT;
    }
    if frag & 0x1fff != 0 {
        p.ip_flags |= ip_flags::FRAGMENT | ip_flags::LATER_FRAGMENT;
        return Ok(None);
    }
    Ok(Some(off + ihl))
}

/// Parses an IPv6 header and its extension-header chain; returns the transport offset unless
/// this is a later fragment.
#[inline(always)]
fn ipv6(ctx: &XdpContext, off: usize, p: &mut PacketSummary) -> Result<Option<usize>> {
    let h: &[u8; 40] = bytes(ctx, off)?;
    if h[0] >> 4 != 6 {
        return Err(stats::MALFORMED);
    }
    p.family = FAMILY_V6;
    let mut payload = be16(h, 4) as u32;
    let mut next = h[6];
    p.ttl = h[7];
    p.src.copy_from_slice(&h[8..24]);
    p.dst.copy_from_slice(&h[24..40]);
    let mut off = off + 40;
    for _ in 0..MAX_V6_EXT_HEADERS {
        let len = match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                let e: &[u8; 2] = bytes(ctx, off)?;
                next = e[0];
                (e[1] as usize + 1) * 8
            }
            IPPROTO_AH => {
                let e: &[u8; 2] = bytes(ctx, off)?;
                next = e[0];
                (e[1] as usize + 2) * 4
            }
            IPPROTO_FRAGMENT => {
                let e: &[u8; 8] = bytes(ctx, off)?;
                next = e[0];
                let fo = be16(e, 2);
                p.ip_flags |= ip_flags::FRAGMENT;
                if fo & 1 != 0 {
                    p.ip_flags |= ip_flags::MF;
                }
                if fo & 0xfff8 != 0 {
                    p.ip_flags |= ip_flags::LATER_FRAGMENT;
                }
                8
            }
            _ => {
                p.proto = next;
                p.ip_payload_len = payload;
                if p.ip_flags & ip_flags::LATER_FRAGMENT != 0 {
                    return Ok(None);
                }
                return Ok(Some(off));
            }
        };
        if payload < len as u32 {
            return Err(stats::MALFORMED);
        }
        payload -= len as u32;
        off += len;
        if p.ip_flags & ip_flags::LATER_FRAGMENT != 0 {
            p.proto = next;
            p.ip_payload_len = payload;
            return Ok(None);
        }
    }
    Err(stats::V6_EXT_LIMIT)
}

#[inline(always)]
fn l4(ctx: &XdpContext, off: usize, p: &mut PacketSummary) -> Result<()> {
    match p.proto {
        PROTO_TCP => {
            let t: &[u8; 20] = bytes(ctx, off)?;
            let doff = ((t[12] >> 4) as usize) * 4;
            if doff < 20 || ctx.data() + off + doff > ctx.data_end() {
                return Err(stats::MALFORMED);
            }
            p.sport = be16(t, 0);
            p.dport = be16(t, 2);
            p.tcp_flags = t[13];
            p.tcp_opt_len = (doff - 20) as u8;
        }
        PROTO_UDP => {
            let u: &[u8; 8] = bytes(ctx, off)?;
            p.sport = be16(u, 0);
            p.dport = be16(u, 2);
        }
        PROTO_ICMP | PROTO_ICMPV6 => {
            let i: &[u8; 4] = bytes(ctx, off)?;
            p.icmp_type = i[0];
            p.icmp_code = i[1];
        }
        _ => {}
    }
    Ok(())
}
