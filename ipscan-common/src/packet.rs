//! The summary the parser makes of one packet: the hinge between packet bytes and decisions.

use crate::{FAMILY_V4, FAMILY_V6};

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;

/// TCP flag bits (byte 13 of the TCP header).
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    /// ECN-Echo (RFC 3168). Normal traffic, not a bogus flag.
    pub const ECE: u8 = 0x40;
    /// Congestion Window Reduced (RFC 3168). Normal traffic, not a bogus flag.
    pub const CWR: u8 = 0x80;
    /// The six classic flags; scan classification ignores ECE and CWR.
    pub const CLASSIC: u8 = 0x3f;
}

/// Bits of [`PacketSummary::ip_flags`].
pub mod ip_flags {
    /// IPv4 "don't fragment".
    pub const DF: u8 = 0x01;
    /// More fragments follow (IPv4 MF, or IPv6 fragment header M flag).
    pub const MF: u8 = 0x02;
    /// The packet is a fragment (offset != 0 or MF set, or an IPv6 fragment header).
    pub const FRAGMENT: u8 = 0x04;
    /// A non-first fragment: there is no transport header in this packet.
    pub const LATER_FRAGMENT: u8 = 0x08;
    /// The first fragment is too short to hold the whole transport header.
    pub const TINY_FRAGMENT: u8 = 0x10;
    /// The ICMP error carries an inner header whose transport header's first bytes were read:
    /// the ports (TCP, UDP), or the type and code (ICMP, ICMPv6).
    pub const INNER_PORTS: u8 = 0x20;
}

/// Bits of [`PacketSummary::anomalies`]: what `verbose` reports.
pub mod anomalies {
    /// The IP length field claims more bytes than the frame holds.
    pub const SHORT: u8 = 0x01;
    /// The IPv4 header checksum does not verify.
    pub const BAD_CHECKSUM: u8 = 0x02;
}

/// What the parser learned from one frame. Tests and replay can build it directly.
/// 8-aligned so that [`PacketSummary::clear`] can use word stores.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketSummary {
    /// Source address; IPv4 in the first 4 bytes, rest zero.
    pub src: [u8; 16],
    /// Destination address; IPv4 in the first 4 bytes, rest zero.
    pub dst: [u8; 16],
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
    /// Transport protocol (after IPv6 extension headers).
    pub proto: u8,
    /// TCP flags (byte 13), zero for other protocols.
    pub tcp_flags: u8,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// [`ip_flags`] bits.
    pub ip_flags: u8,
    /// ICMP / ICMPv6 type.
    pub icmp_type: u8,
    /// ICMP / ICMPv6 code.
    pub icmp_code: u8,
    /// Length in bytes of the TCP options (data offset * 4 - 20).
    pub tcp_opt_len: u8,
    /// TCP/UDP source port (host order), zero otherwise.
    pub sport: u16,
    /// TCP/UDP destination port (host order), zero otherwise.
    pub dport: u16,
    /// IP payload length in bytes (IP total length minus IP header(s)), as iplog counts bytes.
    pub ip_payload_len: u32,
    /// Fragment identification (IPv4 id, or the IPv6 fragment header's).
    pub frag_id: u32,
    /// Fragment offset in 8-byte units.
    pub frag_off: u16,
    /// [`anomalies`] bits.
    pub anomalies: u8,
    /// Protocol of the packet quoted in an ICMP error.
    pub inner_proto: u8,
    /// Ports of the packet quoted in an ICMP error (host order).
    pub inner_sport: u16,
    pub inner_dport: u16,
    /// Bytes 4..8 of the ICMP header (id/sequence, parameter-problem pointer, gateway).
    pub icmp_rest: [u8; 4],
    /// Length of the TCP header (data offset * 4), for tiny-fragment checks.
    pub tcp_hdr_len: u8,
    /// IPv4 type of service / IPv6 traffic class.
    pub tos: u8,
    /// TCP window (host order).
    pub tcp_window: u16,
    /// TCP urgent pointer (host order).
    pub tcp_urg_ptr: u16,
    /// The first 8 bytes of TCP options (zero-padded): nmap's OS-detection probes carry a fixed
    /// option block that no TCP stack sends.
    pub tcp_opts: [u8; 8],
    /// The first 4 bytes after the transport header (UDP data), zero-padded.
    pub l4_data: [u8; 4],
    /// Type and code of an ICMP / ICMPv6 message quoted by an ICMP error (with
    /// [`ip_flags::INNER_PORTS`]).
    pub inner_icmp_type: u8,
    pub inner_icmp_code: u8,
    pub _pad: [u8; 4],
    /// Destination address of the packet an ICMP error quotes (valid when `inner_proto` is
    /// set); IPv4 in the first 4 bytes. iplog names it when a router, not the destination
    /// itself, reports it unreachable, and as a redirect's target.
    pub inner_dst: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<PacketSummary>() == 104);

impl PacketSummary {
    /// The source address as four native-order words, read with word loads (the summary is
    /// 8-aligned and the address its first field; a `[u8; 16]` alone is read byte by byte).
    #[inline(always)]
    pub fn src_words(&self) -> [u32; 4] {
        const _: () = assert!(core::mem::offset_of!(PacketSummary, src) == 0);
        // SAFETY: the first 16 bytes of an 8-aligned struct, all initialised.
        unsafe { *(self as *const Self).cast::<[u32; 4]>() }
    }

    /// The destination address as four native-order words, read with word loads (it is the
    /// second 16 bytes of the 8-aligned summary).
    #[inline(always)]
    pub fn dst_words(&self) -> [u32; 4] {
        const _: () = assert!(core::mem::offset_of!(PacketSummary, dst) == 16);
        // SAFETY: bytes 16..32 of an 8-aligned struct, all initialised.
        unsafe { *(self as *const Self).cast::<u8>().add(16).cast::<[u32; 4]>() }
    }

    /// Zeroes every field in place with word stores that LLVM cannot merge into a `memset`
    /// call (the BPF backend would emit a byte loop for the verifier to walk).
    #[inline(always)]
    pub fn clear(&mut self) {
        crate::zero::words(self);
    }

    pub fn is_v4(&self) -> bool {
        self.family == FAMILY_V4
    }

    pub fn is_v6(&self) -> bool {
        self.family == FAMILY_V6
    }

    /// True when the packet's transport header is present (not a later fragment).
    pub fn has_transport(&self) -> bool {
        self.ip_flags & (ip_flags::LATER_FRAGMENT | ip_flags::TINY_FRAGMENT) == 0
    }

    pub fn is_fragment(&self) -> bool {
        self.ip_flags & ip_flags::FRAGMENT != 0
    }

    /// ICMP or ICMPv6 of the packet's family.
    pub fn is_icmp(&self) -> bool {
        (self.is_v4() && self.proto == PROTO_ICMP) || (self.is_v6() && self.proto == PROTO_ICMPV6)
    }

    /// UDP payload bytes (the datagram's data).
    pub fn udp_data_len(&self) -> u32 {
        self.ip_payload_len.saturating_sub(8)
    }
}
