//! The host's rejects, read where it sends them (the egress program): a reset refusing a
//! connection attempt, or an ICMP error refusing a datagram, turned back into the summary of
//! the probe it answers. Its source is the prober; what that summary counts toward is the
//! reply-confirmed counting ([`crate::Detection::Rejected`], `counting confirmed`).
//!
//! Which replies are rejects:
//! - a TCP segment with RST and ACK, no SYN or FIN, and sequence number 0: what a stack sends
//!   for a segment without ACK (a SYN, or a FIN, null or Xmas probe) to a port nobody listens
//!   on (RFC 9293 3.10.7.1), and what a firewall's `REJECT --reject-with tcp-reset` sends. A
//!   reset that aborts a connection carries the connection's sequence number instead;
//! - ICMP destination unreachable, code 3 (port), 9, 10 or 13 (prohibited), and ICMPv6
//!   destination unreachable, code 4 (port) or 1 (prohibited), quoting a TCP or UDP packet
//!   whose source is the error's destination.
//!
//! Untagged Ethernet frames; IPv6 without extension headers (the host's own replies have none).
//! Generic over [`Frame`], like the parser: the egress program and the unit tests run it alike.

use crate::{
    FAMILY_V4, FAMILY_V6, PacketSummary,
    packet::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, tcp_flags as f},
    parse::Frame,
};

const ETH_HLEN: usize = 14;
const ICMP_UNREACHABLE: u8 = 3;
const ICMPV6_UNREACHABLE: u8 = 1;

/// Fills `p` (cleared first) with the probe that the frame `f` rejects, if it is a reject.
#[inline(always)]
pub fn probe_of<F: Frame + ?Sized>(f: &F, p: &mut PacketSummary) -> bool {
    p.clear();
    let Some(t) = f.bytes::<2>(12) else {
        return false;
    };
    match u16::from_be_bytes(*t) {
        0x0800 => v4(f, p).is_some(),
        0x86dd => v6(f, p).is_some(),
        _ => false,
    }
}

/// Whether the frame is an ICMP or ICMPv6 message, read from its first 24 bytes: the only
/// rejects whose headers a socket buffer may not hold all in its linear data. A reset is built
/// whole, and a large segment, whose payload is not, is no reset.
#[inline(always)]
pub fn is_icmp<F: Frame + ?Sized>(f: &F) -> bool {
    let Some(h) = f.bytes::<24>(0) else {
        return false;
    };
    match u16::from_be_bytes([h[12], h[13]]) {
        0x0800 => h[23] == PROTO_ICMP,
        0x86dd => h[20] == PROTO_ICMPV6,
        _ => false,
    }
}

#[inline(always)]
fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

/// The ports of a reset refusing a probe (local, remote), if the TCP header at `l4` is one.
#[inline(always)]
fn reset<F: Frame + ?Sized>(f: &F, l4: usize) -> Option<(u16, u16)> {
    let t = f.bytes::<14>(l4)?;
    let flags = t[13] & (f::SYN | f::FIN | f::RST | f::ACK);
    if flags != f::RST | f::ACK || t[4..8] != [0; 4] {
        return None;
    }
    Some((be16([t[0], t[1]]), be16([t[2], t[3]])))
}

fn v4<F: Frame + ?Sized>(f: &F, p: &mut PacketSummary) -> Option<()> {
    let h = f.bytes::<20>(ETH_HLEN)?;
    let ihl = ((h[0] & 0x0f) as usize) * 4;
    // Not a first fragment (offset 0, MF clear): no transport header to trust.
    if h[0] >> 4 != 4 || ihl < 20 || h[6] & 0x3f != 0 || h[7] != 0 {
        return None;
    }
    let l4 = ETH_HLEN + ihl;
    p.family = FAMILY_V4;
    match h[9] {
        PROTO_TCP => {
            let (local, remote) = reset(f, l4)?;
            p.proto = PROTO_TCP;
            p.tcp_flags = f::SYN;
            (p.sport, p.dport) = (remote, local);
            p.src[..4].copy_from_slice(&h[16..20]);
            p.dst[..4].copy_from_slice(&h[12..16]);
            Some(())
        }
        PROTO_ICMP => {
            let icmp = f.bytes::<2>(l4)?;
            if icmp[0] != ICMP_UNREACHABLE || !matches!(icmp[1], 3 | 9 | 10 | 13) {
                return None;
            }
            let o = l4 + 8;
            let q = f.bytes::<20>(o)?;
            let qihl = ((q[0] & 0x0f) as usize) * 4;
            // The quoted probe's source is the error's destination.
            if q[0] >> 4 != 4 || qihl < 20 || q[12..16] != h[16..20] {
                return None;
            }
            let ports = f.bytes::<4>(o + qihl)?;
            quoted(p, q[9], *ports, be16([q[2], q[3]]).saturating_sub(qihl as u16))?;
            p.src[..4].copy_from_slice(&q[12..16]);
            p.dst[..4].copy_from_slice(&q[16..20]);
            Some(())
        }
        _ => None,
    }
}

fn v6<F: Frame + ?Sized>(f: &F, p: &mut PacketSummary) -> Option<()> {
    let h = f.bytes::<40>(ETH_HLEN)?;
    if h[0] >> 4 != 6 {
        return None;
    }
    let l4 = ETH_HLEN + 40;
    p.family = FAMILY_V6;
    match h[6] {
        PROTO_TCP => {
            let (local, remote) = reset(f, l4)?;
            p.proto = PROTO_TCP;
            p.tcp_flags = f::SYN;
            (p.sport, p.dport) = (remote, local);
            p.src.copy_from_slice(&h[24..40]);
            p.dst.copy_from_slice(&h[8..24]);
            Some(())
        }
        PROTO_ICMPV6 => {
            let icmp = f.bytes::<2>(l4)?;
            if icmp[0] != ICMPV6_UNREACHABLE || !matches!(icmp[1], 1 | 4) {
                return None;
            }
            let o = l4 + 8;
            let q = f.bytes::<40>(o)?;
            if q[0] >> 4 != 6 || q[8..24] != h[24..40] {
                return None;
            }
            let ports = f.bytes::<4>(o + 40)?;
            quoted(p, q[6], *ports, be16([q[4], q[5]]))?;
            p.src.copy_from_slice(&q[8..24]);
            p.dst.copy_from_slice(&q[24..40]);
            Some(())
        }
        _ => None,
    }
}

/// The transport of a quoted probe: TCP or UDP, and its ports.
#[inline(always)]
fn quoted(p: &mut PacketSummary, proto: u8, ports: [u8; 4], payload: u16) -> Option<()> {
    if proto != PROTO_TCP && proto != PROTO_UDP {
        return None;
    }
    p.proto = proto;
    p.tcp_flags = if proto == PROTO_TCP { f::SYN } else { 0 };
    p.sport = be16([ports[0], ports[1]]);
    p.dport = be16([ports[2], ports[3]]);
    p.ip_payload_len = payload as u32;
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: [u8; 4] = [198, 18, 0, 2];
    const REMOTE: [u8; 4] = [198, 18, 0, 1];

    fn eth(ethertype: u16) -> [u8; 14] {
        let mut e = [0u8; 14];
        e[12..].copy_from_slice(&ethertype.to_be_bytes());
        e
    }

    fn ip4(proto: u8, src: [u8; 4], dst: [u8; 4], payload: u16) -> [u8; 20] {
        let mut h = [0u8; 20];
        h[0] = 0x45;
        h[2..4].copy_from_slice(&(20 + payload).to_be_bytes());
        h[8] = 64;
        h[9] = proto;
        h[12..16].copy_from_slice(&src);
        h[16..20].copy_from_slice(&dst);
        h
    }

    fn tcp(sport: u16, dport: u16, seq: u32, flags: u8) -> [u8; 20] {
        let mut t = [0u8; 20];
        t[0..2].copy_from_slice(&sport.to_be_bytes());
        t[2..4].copy_from_slice(&dport.to_be_bytes());
        t[4..8].copy_from_slice(&seq.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = flags;
        t
    }

    fn probe(frame: &[u8]) -> Option<PacketSummary> {
        let mut p = PacketSummary::default();
        probe_of(frame, &mut p).then_some(p)
    }

    #[test]
    fn a_reset_refusing_a_syn_is_the_probe_turned_around() {
        let f = [&eth(0x0800)[..], &ip4(PROTO_TCP, LOCAL, REMOTE, 20), &tcp(25, 40000, 0, f::RST | f::ACK)].concat();
        let p = probe(&f).expect("a reject");
        assert_eq!((p.family, p.proto, p.sport, p.dport), (FAMILY_V4, PROTO_TCP, 40000, 25));
        assert!(!is_icmp(&f[..]), "a reset is no ICMP message");
        assert_eq!((&p.src[..4], &p.dst[..4]), (&REMOTE[..], &LOCAL[..]));
        // An abort (the connection's sequence number), a bare RST, a SYN/ACK: no reject.
        for (seq, flags) in [(7, f::RST | f::ACK), (0, f::RST), (0, f::SYN | f::ACK), (0, f::RST | f::ACK | f::FIN)] {
            let f = [&eth(0x0800)[..], &ip4(PROTO_TCP, LOCAL, REMOTE, 20), &tcp(25, 40000, seq, flags)].concat();
            assert!(probe(&f).is_none(), "seq {seq} flags {flags:#x}");
        }
    }

    #[test]
    fn a_port_unreachable_quotes_the_probe() {
        let quoted_ip = ip4(PROTO_UDP, REMOTE, LOCAL, 8 + 300);
        let udp = [0x9c, 0x40, 0x00, 0x35, 0x01, 0x34, 0, 0];
        let icmp = |code: u8| [ICMP_UNREACHABLE, code, 0, 0, 0, 0, 0, 0];
        let frame = |code, outer_dst| {
            [&eth(0x0800)[..], &ip4(PROTO_ICMP, LOCAL, outer_dst, 8 + 28), &icmp(code), &quoted_ip, &udp].concat()
        };
        let p = probe(&frame(3, REMOTE)).expect("a reject");
        assert_eq!((p.proto, p.sport, p.dport, p.ip_payload_len), (PROTO_UDP, 40000, 53, 308));
        assert_eq!((&p.src[..4], &p.dst[..4]), (&REMOTE[..], &LOCAL[..]));
        assert!(probe(&frame(13, REMOTE)).is_some());
        assert!(is_icmp(&frame(3, REMOTE)[..]));
        // Host unreachable (a router's word about another host), or an error sent elsewhere.
        assert!(probe(&frame(1, REMOTE)).is_none());
        assert!(probe(&frame(3, [198, 18, 0, 9])).is_none());
        // Truncated before the quoted ports.
        let f = frame(3, REMOTE);
        assert!(probe(&f[..f.len() - 5]).is_none());
    }

    #[test]
    fn ipv6_resets_and_port_unreachables() {
        let local: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        let remote: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let ip6 = |nh: u8, src: [u8; 16], dst: [u8; 16], len: u16| {
            let mut h = [0u8; 40];
            h[0] = 0x60;
            h[4..6].copy_from_slice(&len.to_be_bytes());
            h[6] = nh;
            h[7] = 64;
            h[8..24].copy_from_slice(&src);
            h[24..40].copy_from_slice(&dst);
            h
        };
        let f = [&eth(0x86dd)[..], &ip6(PROTO_TCP, local, remote, 20), &tcp(443, 50000, 0, f::RST | f::ACK)].concat();
        let p = probe(&f).expect("a reject");
        assert_eq!(
            (p.family, p.proto, p.sport, p.dport, p.src, p.dst),
            (FAMILY_V6, PROTO_TCP, 50000, 443, remote, local)
        );
        let udp = [0xc3, 0x50, 0x00, 0xa1, 0, 8, 0, 0];
        let icmp6 = [ICMPV6_UNREACHABLE, 4, 0, 0, 0, 0, 0, 0];
        let f =
            [&eth(0x86dd)[..], &ip6(PROTO_ICMPV6, local, remote, 56), &icmp6, &ip6(PROTO_UDP, remote, local, 8), &udp]
                .concat();
        let p = probe(&f).expect("a reject");
        assert_eq!((p.proto, p.sport, p.dport, p.ip_payload_len, p.src), (PROTO_UDP, 50000, 161, 8, remote));
        assert!(is_icmp(&f[..]));
        // Neighbour discovery, an echo reply: no reject.
        let mut other = f.clone();
        other[54] = 136;
        assert!(probe(&other).is_none());
    }
}
