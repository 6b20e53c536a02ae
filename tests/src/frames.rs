//! Hand-built frames for BPF_PROG_TEST_RUN: Ethernet (+VLAN) / IPv4 (+options) | IPv6 (+extension
//! headers) / TCP | UDP | ICMP | ICMPv6. Checksums are left zero: XDP sees frames before any
//! checksum validation, and ipscan does not check them. Only frames that go on to a kernel's IP
//! stack (the benchmark's live frames) need the IPv4 header checksum: [`Frame::ipv4_checksum`].

use std::net::{Ipv4Addr, Ipv6Addr};

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;

/// The testbed's attacker and victim addresses ([`crate::ATTACKER4`], [`crate::VICTIM4`],
/// [`crate::ATTACKER6`], [`crate::VICTIM6`]) as addresses, for frames.
pub const SRC4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const DST4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const SRC6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
pub const DST6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

/// Transport layer to put in a frame.
#[derive(Clone, Debug)]
pub enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
        /// Raw option bytes (padded to a multiple of 4 by the builder).
        options: Vec<u8>,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    Icmp {
        ty: u8,
        code: u8,
    },
    Raw {
        proto: u8,
        bytes: Vec<u8>,
    },
}

impl L4 {
    pub fn syn(sport: u16, dport: u16) -> Self {
        // nmap -sS's probe carries a single MSS option.
        L4::Tcp { sport, dport, flags: 0x02, options: vec![2, 4, 0x05, 0xb4] }
    }

    pub fn tcp(sport: u16, dport: u16, flags: u8) -> Self {
        L4::Tcp { sport, dport, flags, options: Vec::new() }
    }

    /// The reset a host sends for a SYN to a closed port: RST and ACK, sequence number 0.
    pub fn reset(sport: u16, dport: u16) -> Self {
        let mut t = Vec::new();
        t.extend_from_slice(&sport.to_be_bytes());
        t.extend_from_slice(&dport.to_be_bytes());
        t.extend_from_slice(&0u32.to_be_bytes());
        t.extend_from_slice(&1u32.to_be_bytes());
        t.extend_from_slice(&[5 << 4, 0x14, 0, 0, 0, 0, 0, 0]);
        L4::Raw { proto: 6, bytes: t }
    }

    /// The ICMP port unreachable that `local` sends for a UDP datagram from `remote:sport` to
    /// its port `dport`, quoting the datagram's IPv4 and UDP headers.
    pub fn port_unreachable4(local: Ipv4Addr, remote: Ipv4Addr, sport: u16, dport: u16) -> Self {
        let mut b = vec![3, 3, 0, 0, 0, 0, 0, 0];
        let mut ip = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0];
        ip.extend_from_slice(&remote.octets());
        ip.extend_from_slice(&local.octets());
        b.extend_from_slice(&ip);
        b.extend_from_slice(&sport.to_be_bytes());
        b.extend_from_slice(&dport.to_be_bytes());
        b.extend_from_slice(&[0, 8, 0, 0]);
        L4::Raw { proto: 1, bytes: b }
    }

    fn proto(&self, v6: bool) -> u8 {
        match self {
            L4::Tcp { .. } => 6,
            L4::Udp { .. } => 17,
            L4::Icmp { .. } => {
                if v6 {
                    58
                } else {
                    1
                }
            }
            L4::Raw { proto, .. } => *proto,
        }
    }

    fn bytes(&self, payload: usize) -> Vec<u8> {
        let mut b = match self {
            L4::Tcp { sport, dport, flags, options } => {
                let mut opts = options.clone();
                while !opts.len().is_multiple_of(4) {
                    opts.push(1); // NOP
                }
                let doff = (20 + opts.len()) / 4;
                let mut t = Vec::new();
                t.extend_from_slice(&sport.to_be_bytes());
                t.extend_from_slice(&dport.to_be_bytes());
                t.extend_from_slice(&1u32.to_be_bytes());
                t.extend_from_slice(&0u32.to_be_bytes());
                t.push((doff as u8) << 4);
                t.push(*flags);
                t.extend_from_slice(&1024u16.to_be_bytes());
                t.extend_from_slice(&[0, 0, 0, 0]);
                t.extend_from_slice(&opts);
                t
            }
            L4::Udp { sport, dport } => {
                let mut u = Vec::new();
                u.extend_from_slice(&sport.to_be_bytes());
                u.extend_from_slice(&dport.to_be_bytes());
                u.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
                u.extend_from_slice(&[0, 0]);
                u
            }
            L4::Icmp { ty, code } => vec![*ty, *code, 0, 0, 0, 1, 0, 1],
            L4::Raw { bytes, .. } => bytes.clone(),
        };
        b.extend(std::iter::repeat_n(0xabu8, payload));
        b
    }
}

/// A frame under construction.
#[derive(Clone, Debug)]
pub struct Frame {
    pub vlans: Vec<u16>,
    pub payload: usize,
    pub ttl: u8,
    pub df: bool,
    /// IPv4 option bytes (padded to a multiple of 4).
    pub ip_options: Vec<u8>,
    /// IPv4 fragment offset in 8-byte units, and the MF flag.
    pub frag_offset: u16,
    pub more_fragments: bool,
    /// IPv6 extension headers as (next-header code, body bytes); the builder links them.
    pub ext: Vec<(u8, Vec<u8>)>,
    /// Fill in the IPv4 header checksum (else zero).
    pub ipv4_checksum: bool,
}

impl Default for Frame {
    fn default() -> Self {
        Self {
            vlans: Vec::new(),
            payload: 0,
            ttl: 64,
            df: false,
            ip_options: Vec::new(),
            frag_offset: 0,
            more_fragments: false,
            ext: Vec::new(),
            ipv4_checksum: false,
        }
    }
}

fn eth(vlans: &[u16], ethertype: u16) -> Vec<u8> {
    let mut e = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    for (i, vid) in vlans.iter().enumerate() {
        let tpid: u16 = if i == 0 && vlans.len() == 2 { 0x88a8 } else { 0x8100 };
        e.extend_from_slice(&tpid.to_be_bytes());
        e.extend_from_slice(&vid.to_be_bytes());
    }
    e.extend_from_slice(&ethertype.to_be_bytes());
    e
}

impl Frame {
    pub fn v4(&self, src: Ipv4Addr, dst: Ipv4Addr, l4: &L4) -> Vec<u8> {
        let mut opts = self.ip_options.clone();
        while !opts.len().is_multiple_of(4) {
            opts.push(0);
        }
        let body = l4.bytes(self.payload);
        let ihl = 20 + opts.len();
        let mut f = eth(&self.vlans, ETH_P_IP);
        let ip = f.len();
        f.push(0x40 | (ihl / 4) as u8);
        f.push(0);
        f.extend_from_slice(&((ihl + body.len()) as u16).to_be_bytes());
        f.extend_from_slice(&0x1234u16.to_be_bytes());
        let mut frag = self.frag_offset & 0x1fff;
        if self.df {
            frag |= 0x4000;
        }
        if self.more_fragments {
            frag |= 0x2000;
        }
        f.extend_from_slice(&frag.to_be_bytes());
        f.push(self.ttl);
        f.push(l4.proto(false));
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&dst.octets());
        f.extend_from_slice(&opts);
        if self.ipv4_checksum {
            let sum = checksum(&f[ip..]);
            f[ip + 10..ip + 12].copy_from_slice(&sum.to_be_bytes());
        }
        f.extend_from_slice(&body);
        f
    }

    pub fn v6(&self, src: Ipv6Addr, dst: Ipv6Addr, l4: &L4) -> Vec<u8> {
        let body = l4.bytes(self.payload);
        let mut exts = Vec::new();
        let codes: Vec<u8> = self.ext.iter().map(|(c, _)| *c).collect();
        for (i, (_, b)) in self.ext.iter().enumerate() {
            let next = codes.get(i + 1).copied().unwrap_or(l4.proto(true));
            let mut h = vec![next];
            h.extend_from_slice(b);
            exts.extend_from_slice(&h);
        }
        let first = codes.first().copied().unwrap_or(l4.proto(true));
        let mut f = eth(&self.vlans, ETH_P_IPV6);
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&((exts.len() + body.len()) as u16).to_be_bytes());
        f.push(first);
        f.push(self.ttl);
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&dst.octets());
        f.extend_from_slice(&exts);
        f.extend_from_slice(&body);
        f
    }
}

/// The Internet checksum (RFC 1071) of `bytes`, an even number of them.
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv6 hop-by-hop / destination-options style extension body (after the next-header byte):
/// hdr-ext-len 0 plus 6 bytes of PadN, 8 bytes in all.
pub fn ext_opts() -> Vec<u8> {
    vec![0, 1, 4, 0, 0, 0, 0]
}

/// An IPv6 fragment header body (after the next-header byte).
pub fn ext_frag(offset_units: u16, more: bool, id: u32) -> Vec<u8> {
    let fo = (offset_units << 3) | u16::from(more);
    let mut b = vec![0];
    b.extend_from_slice(&fo.to_be_bytes());
    b.extend_from_slice(&id.to_be_bytes());
    b
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn ipv4_checksum_sums_the_header_to_all_ones() {
        let src = Ipv4Addr::new(198, 18, 0, 1);
        let dst = Ipv4Addr::new(198, 18, 0, 2);
        for (vlans, ip_options) in [(vec![], vec![]), (vec![100], vec![7, 7, 4, 0, 0, 0, 0])] {
            let ip = 14 + 4 * vlans.len();
            let f = Frame { vlans, ip_options, df: true, ipv4_checksum: true, ..Default::default() };
            let bytes = f.v4(src, dst, &L4::tcp(40000, 443, 0x10));
            let ihl = usize::from(bytes[ip] & 0x0f) * 4;
            assert_ne!(bytes[ip + 10..ip + 12], [0, 0]);
            assert_eq!(checksum(&bytes[ip..ip + ihl]), 0, "{bytes:02x?}");
        }
        let zero = Frame::default().v4(src, dst, &L4::syn(1, 80));
        assert_eq!(zero[14 + 10..14 + 12], [0, 0]);
    }
}
