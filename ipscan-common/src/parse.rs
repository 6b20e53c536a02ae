//! Cursor parser: Ethernet (two VLAN tags) / IPv4 (options) | IPv6 (extension headers) /
//! TCP | UDP | ICMP | ICMPv6 -> [`PacketSummary`].
//!
//! Generic over [`Frame`] so that the XDP program (packet pointers checked against `data_end`)
//! and the host (a byte slice: unit tests, fuzzing) run the same code. Every read asks the frame
//! for the whole header first; there is no fixed offset that ignores IP options or VLAN tags.
//! Errors are STATS slots: the caller counts them and passes the frame.

use crate::{
    FAMILY_V4, FAMILY_V6, PacketSummary,
    packet::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, anomalies, ip_flags},
    stats,
};

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
/// VLAN tags parsed (802.1ad outer + 802.1Q inner).
pub const MAX_VLAN_TAGS: usize = 2;
/// IPv6 extension headers followed before giving up (counted as V6_EXT_LIMIT).
pub const MAX_V6_EXT_HEADERS: usize = 8;
/// 16-bit words summed to verify an IPv4 header checksum (60-byte header).
const MAX_IHL_WORDS: usize = 30;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_AH: u8 = 51;
const IPPROTO_DSTOPTS: u8 = 60;

/// Parse errors are STATS slot numbers.
pub type Result<T> = core::result::Result<T, u32>;

/// Bounds-checked access to a frame's bytes.
pub trait Frame {
    /// The `N` bytes at `off`, or `None` when the frame ends first.
    fn bytes<const N: usize>(&self, off: usize) -> Option<&[u8; N]>;
    /// Frame length in bytes.
    fn len(&self) -> usize;

    /// Whether the frame has no bytes at all.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The four bytes at `off` as a little-endian u32 (the in-memory order of an address in an
    /// [`crate::AddrKey`] word). The kernel's frame reads them with one load; the BPF backend
    /// would otherwise assemble an unaligned word from four byte loads.
    #[inline(always)]
    fn word(&self, off: usize) -> Option<u32> {
        self.bytes::<4>(off).map(|b| u32::from_le_bytes(*b))
    }

    /// `off`, with what the kernel's verifier knows of it forgotten (the kernel's frame passes
    /// it through memory the verifier does not track). The parser calls it where paths that
    /// reached different offsets go on alike (after the VLAN tags, after each IPv6 extension
    /// header, before the transport header), so that the verifier walks what follows once, not
    /// once for every way of getting there. Offsets it returns are checked against
    /// [`MAX_OFFSET`] before use.
    #[inline(always)]
    fn opaque(&self, off: usize) -> usize {
        off
    }
}

/// The largest header offset the parser follows: past it, the frame is malformed (an XDP
/// frame's linear data is at most a page). One less than a power of two (a mask).
pub const MAX_OFFSET: usize = 4095;
const _: () = assert!((MAX_OFFSET + 1).is_power_of_two());

/// [`Frame::opaque`], then the bound the verifier needs to add the offset to a packet pointer.
#[inline(always)]
fn forget<F: Frame + ?Sized>(f: &F, off: usize) -> Result<usize> {
    let off = f.opaque(off);
    if off > MAX_OFFSET {
        return Err(stats::MALFORMED);
    }
    // The same value, bounded for the verifier wherever LLVM keeps it (kernel 6.1 refused the
    // parser's reads through a copy of the offset spilled before the comparison above).
    Ok(crate::flat::masked(off as u64, MAX_OFFSET as u64) as usize)
}

impl Frame for [u8] {
    #[inline(always)]
    fn bytes<const N: usize>(&self, off: usize) -> Option<&[u8; N]> {
        self.get(off..off.checked_add(N)?)?.try_into().ok()
    }

    fn len(&self) -> usize {
        <[u8]>::len(self)
    }
}

/// What to compute besides the summary.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Verify the IPv4 header checksum (`verbose`).
    pub checksum: bool,
}

#[inline(always)]
fn get<const N: usize, F: Frame + ?Sized>(f: &F, off: usize) -> Result<&[u8; N]> {
    f.bytes::<N>(off).ok_or(stats::MALFORMED)
}

#[inline(always)]
fn be16(b: &[u8], i: usize) -> u16 {
    match (b.get(i), b.get(i + 1)) {
        (Some(h), Some(l)) => u16::from_be_bytes([*h, *l]),
        _ => 0,
    }
}

/// The big-endian 16-bit field in the low half of a [`Frame::word`].
#[inline(always)]
fn swap16(w: u32) -> usize {
    ((w & 0xff) << 8 | (w >> 8) & 0xff) as usize
}

// The fast path's readers ([`ip_sender`], [`plain_tcp`]) test header fields in whole words,
// one load each in the kernel ([`Frame::word`]): the BPF backend builds a 16-bit field from two
// byte loads, a shift and an OR, and a byte swap. Four word loads take a plain TCP segment;
// the established-ACK bench row lost about 1 ns of its 6 ns over an empty program.

/// In the word at frame offset 12 (ethertype, then the IP header's first two bytes): the
/// ethertype and the IP version nibble ...
const TYPE_VERSION: u32 = 0x00f0_ffff;
/// ... of an untagged IPv4 packet ...
const V4_TYPE_VERSION: u32 = 0x0040_0008;
/// ... and of an untagged IPv6 packet.
const V6_TYPE_VERSION: u32 = 0x0060_dd86;
const _: () = assert!(V4_TYPE_VERSION & 0xffff == ETH_P_IP.swap_bytes() as u32);
const _: () = assert!(V6_TYPE_VERSION & 0xffff == ETH_P_IPV6.swap_bytes() as u32);

/// Parses one frame.
pub fn parse<F: Frame + ?Sized>(f: &F, opts: Options) -> Result<PacketSummary> {
    let mut p = PacketSummary::default();
    parse_into(f, opts, &mut p)?;
    Ok(p)
}

/// Parses one frame into `p`, which must start zeroed (the kernel keeps it in a per-CPU slot:
/// it does not fit the 512-byte BPF stack next to the rest of the program's state).
#[inline(always)]
pub fn parse_into<F: Frame + ?Sized>(f: &F, opts: Options, p: &mut PacketSummary) -> Result<()> {
    let eth: &[u8; ETH_HLEN] = get(f, 0)?;
    let mut ethertype = be16(eth, 12);
    let mut off = ETH_HLEN;
    for _ in 0..MAX_VLAN_TAGS {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            break;
        }
        let tag: &[u8; 4] = get(f, off)?;
        ethertype = be16(tag, 2);
        off += 4;
    }
    let off = forget(f, off)?;
    let transport = match ethertype {
        ETH_P_IP => ipv4(f, off, p, opts)?,
        ETH_P_IPV6 => ipv6(f, off, p)?,
        _ => return Err(stats::NOT_IP),
    };
    if let Some(toff) = transport {
        l4(f, forget(f, toff)?, p)?;
    }
    Ok(())
}

/// The fast path's view of a plain TCP segment (see [`plain_tcp`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlainTcp {
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
    /// The TCP flags byte.
    pub tcp_flags: u8,
    /// The IP payload length, as [`PacketSummary::ip_payload_len`].
    pub ip_payload_len: u32,
}

impl PlainTcp {
    /// Where the source address starts in the frame (4 bytes for IPv4, 16 for IPv6).
    pub fn src_offset(&self) -> usize {
        if self.family == FAMILY_V4 { ETH_HLEN + 12 } else { ETH_HLEN + 8 }
    }
}

/// The sender of an IP packet as the block checks need it (see [`ip_sender`]; the kernel
/// passes it to a global function, whence `repr(C)`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpSender {
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
    /// The IP payload length, as [`PacketSummary::ip_payload_len`].
    pub ip_payload_len: u32,
    /// The source address as the words of its [`crate::AddrKey`] (IPv4: one word, then zeros).
    pub src: [u32; 4],
}

impl IpSender {
    /// The sender of a parsed packet.
    #[inline(always)]
    pub fn of(p: &PacketSummary) -> Self {
        Self { family: p.family, ip_payload_len: p.ip_payload_len, src: p.src_words() }
    }

    /// Where the source address starts in the frame (4 bytes for IPv4, 16 for IPv6).
    pub fn src_offset(&self) -> usize {
        if self.family == FAMILY_V4 { ETH_HLEN + 12 } else { ETH_HLEN + 8 }
    }

    /// The words of the source's [`crate::AddrKey`] ([`crate::AddrKey::words`]).
    #[inline(always)]
    pub fn key_words(&self) -> [u32; 5] {
        [self.src[0], self.src[1], self.src[2], self.src[3], self.family as u32]
    }
}

/// Whether an IPv6 next-header value is an extension header the parser walks.
#[inline(always)]
fn v6_extension(next: u8) -> bool {
    matches!(next, IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_AH | IPPROTO_FRAGMENT)
}

/// Who sent an IP packet of any protocol, read without filling a [`PacketSummary`]: Ethernet
/// without VLAN tags, then an IPv4 header (options and fragments allowed) or an IPv6 header
/// without extension headers, the IP packet whole in the frame. For every frame this accepts
/// and [`parse`] accepts too, both read the same family, source and payload length (unit test,
/// `parse` fuzz target); the fast path drops a blocked source's packets on it before any
/// protocol is looked at.
#[inline(always)]
pub fn ip_sender<F: Frame + ?Sized>(f: &F) -> Option<IpSender> {
    let w = f.word(12)?;
    if w & TYPE_VERSION == V4_TYPE_VERSION {
        let ihl = (((w >> 16) & 0x0f) as usize) * 4;
        let total = swap16(f.word(ETH_HLEN + 2)?);
        if ihl < 20 || total < ihl || ETH_HLEN + total > f.len() {
            return None;
        }
        let src = [f.word(ETH_HLEN + 12)?, 0, 0, 0];
        Some(IpSender { family: FAMILY_V4, ip_payload_len: (total - ihl) as u32, src })
    } else if w & TYPE_VERSION == V6_TYPE_VERSION {
        // Payload length and next header.
        let l = f.word(ETH_HLEN + 4)?;
        let payload = swap16(l);
        if v6_extension((l >> 16) as u8) || ETH_HLEN + 40 + payload > f.len() {
            return None;
        }
        let at = ETH_HLEN + 8;
        let src = [f.word(at)?, f.word(at + 4)?, f.word(at + 8)?, f.word(at + 12)?];
        Some(IpSender { family: FAMILY_V6, ip_payload_len: payload as u32, src })
    } else {
        None
    }
}

/// A plain TCP segment, recognised without filling a [`PacketSummary`]: Ethernet without VLAN
/// tags, then IPv4 without options or fragmentation, or IPv6 with TCP as the first next header,
/// the IP packet whole in the frame and the TCP header whole in the IP packet. Every frame this
/// accepts, [`parse`] accepts too, as unfragmented TCP with the same flags, source and payload
/// length and no anomaly (checked by a unit test and by the `parse` fuzz target); anything else
/// is `None`, for the full parser to decide.
#[inline(always)]
pub fn plain_tcp<F: Frame + ?Sized>(f: &F) -> Option<PlainTcp> {
    let w = f.word(12)?;
    let (family, l4_off, within) = if w & (TYPE_VERSION | 0x000f_0000) == V4_TYPE_VERSION | 0x0005_0000 {
        // Version 4 and no options (IHL 5). Then neither MF nor a fragment offset (DF is
        // fine) and TCP: the bytes at 20..24 are flags/offset, offset, TTL, protocol.
        if f.word(ETH_HLEN + 6)? & 0xff00_ff3f != (PROTO_TCP as u32) << 24 {
            return None;
        }
        let total = swap16(f.word(ETH_HLEN + 2)?);
        if total < 20 || ETH_HLEN + total > f.len() {
            return None;
        }
        (FAMILY_V4, ETH_HLEN + 20, total - 20)
    } else if w & TYPE_VERSION == V6_TYPE_VERSION {
        // Payload length and next header.
        let l = f.word(ETH_HLEN + 4)?;
        let payload = swap16(l);
        if (l >> 16) as u8 != PROTO_TCP || ETH_HLEN + 40 + payload > f.len() {
            return None;
        }
        (FAMILY_V6, ETH_HLEN + 40, payload)
    } else {
        return None;
    };
    // Data offset and flags.
    let t = f.word(l4_off + 12)?;
    let doff = ((t >> 4) & 0x0f) as usize * 4;
    if doff < 20 || within < doff {
        return None;
    }
    Some(PlainTcp { family, tcp_flags: (t >> 8) as u8, ip_payload_len: within as u32 })
}

/// The STATS slot [`parse`] fails with, for the failures visible in an untagged frame's
/// Ethernet and IPv4 headers alone: a frame too short for them, not IP at all (ARP, LLDP), or a
/// broken IPv4 header (version, IHL, total length). The XDP program's fast path counts these
/// and passes them without the full parse. Whenever this is `Some(slot)`, [`parse`] fails with
/// `slot` (unit test, `parse` fuzz target); `None` decides nothing.
#[inline(always)]
pub fn rejected<F: Frame + ?Sized>(f: &F) -> Option<u32> {
    let Some(eth) = f.bytes::<ETH_HLEN>(0) else {
        return Some(stats::MALFORMED);
    };
    match be16(eth, 12) {
        ETH_P_IP => ipv4_header(f, ETH_HLEN).err(),
        ETH_P_IPV6 | ETH_P_8021Q | ETH_P_8021AD => None,
        _ => Some(stats::NOT_IP),
    }
}

/// The IPv4 header at `off` with its length and the packet's total length, or MALFORMED when
/// the header cannot be one (version, IHL, options past the frame, total below the header).
/// Shared by [`ipv4`] and [`rejected`].
#[inline(always)]
fn ipv4_header<F: Frame + ?Sized>(f: &F, off: usize) -> Result<(&[u8; 20], usize, usize)> {
    let h: &[u8; 20] = get(f, off)?;
    if h[0] >> 4 != 4 {
        return Err(stats::MALFORMED);
    }
    let ihl = ((h[0] & 0x0f) as usize) * 4;
    if ihl < 20 {
        return Err(stats::MALFORMED);
    }
    // The options are not read here, but they must be in the frame before the transport header.
    if f.len() < off + ihl {
        return Err(stats::MALFORMED);
    }
    let total = be16(h, 2) as usize;
    if total < ihl {
        return Err(stats::MALFORMED);
    }
    Ok((h, ihl, total))
}

/// Parses an IPv4 header at `off`; returns the transport offset unless this is a later fragment.
#[inline(always)]
fn ipv4<F: Frame + ?Sized>(f: &F, off: usize, p: &mut PacketSummary, opts: Options) -> Result<Option<usize>> {
    let (h, ihl, total) = ipv4_header(f, off)?;
    if off + total > f.len() {
        p.anomalies |= anomalies::SHORT;
    }
    let frag = be16(h, 6);
    p.family = FAMILY_V4;
    p.tos = h[1];
    p.ttl = h[8];
    p.proto = h[9];
    p.frag_id = be16(h, 4) as u32;
    p.src[..4].copy_from_slice(&h[12..16]);
    p.dst[..4].copy_from_slice(&h[16..20]);
    p.ip_payload_len = (total - ihl) as u32;
    if opts.checksum && !ipv4_checksum_ok(f, off, ihl) {
        p.anomalies |= anomalies::BAD_CHECKSUM;
    }
    if frag & 0x4000 != 0 {
        p.ip_flags |= ip_flags::DF;
    }
    if frag & 0x2000 != 0 {
        p.ip_flags |= ip_flags::MF | ip_flags::FRAGMENT;
    }
    p.frag_off = frag & 0x1fff;
    if p.frag_off != 0 {
        p.ip_flags |= ip_flags::FRAGMENT | ip_flags::LATER_FRAGMENT;
        return Ok(None);
    }
    Ok(Some(off + ihl))
}

/// One's-complement sum over the header, including the checksum field, must be 0xffff.
#[inline(always)]
fn ipv4_checksum_ok<F: Frame + ?Sized>(f: &F, off: usize, ihl: usize) -> bool {
    let mut sum: u32 = 0;
    for i in 0..MAX_IHL_WORDS {
        if i * 2 >= ihl {
            break;
        }
        match f.bytes::<2>(off + i * 2) {
            Some(w) => sum += u16::from_be_bytes(*w) as u32,
            None => return false,
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

/// Parses an IPv6 header and its extension-header chain; returns the transport offset unless
/// this is a later fragment.
#[inline(always)]
fn ipv6<F: Frame + ?Sized>(f: &F, off: usize, p: &mut PacketSummary) -> Result<Option<usize>> {
    let h: &[u8; 40] = get(f, off)?;
    if h[0] >> 4 != 6 {
        return Err(stats::MALFORMED);
    }
    p.family = FAMILY_V6;
    p.tos = (h[0] << 4) | (h[1] >> 4);
    let mut payload = be16(h, 4) as u32;
    if off + 40 + payload as usize > f.len() {
        p.anomalies |= anomalies::SHORT;
    }
    let mut next = h[6];
    p.ttl = h[7];
    p.src.copy_from_slice(&h[8..24]);
    p.dst.copy_from_slice(&h[24..40]);
    let mut off = off + 40;
    // One pass more than the bound: the pass after the last extension header it allows is the
    // one that finds the transport header.
    for _ in 0..MAX_V6_EXT_HEADERS + 1 {
        let len = match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                let e: &[u8; 2] = get(f, off)?;
                next = e[0];
                (e[1] as usize + 1) * 8
            }
            IPPROTO_AH => {
                let e: &[u8; 2] = get(f, off)?;
                next = e[0];
                (e[1] as usize + 2) * 4
            }
            IPPROTO_FRAGMENT => {
                let e: &[u8; 8] = get(f, off)?;
                next = e[0];
                let fo = be16(e, 2);
                p.ip_flags |= ip_flags::FRAGMENT;
                p.frag_id = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
                p.frag_off = fo >> 3;
                if fo & 1 != 0 {
                    p.ip_flags |= ip_flags::MF;
                }
                if p.frag_off != 0 {
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
        off = forget(f, off + len)?;
        if p.ip_flags & ip_flags::LATER_FRAGMENT != 0 {
            p.proto = next;
            p.ip_payload_len = payload;
            return Ok(None);
        }
    }
    Err(stats::V6_EXT_LIMIT)
}

/// True for the ICMP / ICMPv6 errors that quote the offending packet's headers.
#[inline(always)]
fn quotes_packet(p: &PacketSummary) -> bool {
    if p.proto == PROTO_ICMP { matches!(p.icmp_type, 3 | 4 | 5 | 11 | 12) } else { matches!(p.icmp_type, 1..=4) }
}

#[inline(always)]
fn l4<F: Frame + ?Sized>(f: &F, off: usize, p: &mut PacketSummary) -> Result<()> {
    // A first fragment too short for the transport header splits it: iplog's "tiny fragment"
    // evasion. Nothing to read; the fragment checks report it.
    let min = match p.proto {
        PROTO_TCP => 20,
        PROTO_UDP => 8,
        _ => 0,
    };
    if p.is_fragment() && (p.ip_payload_len as usize) < min {
        p.ip_flags |= ip_flags::TINY_FRAGMENT | ip_flags::LATER_FRAGMENT;
        return Ok(());
    }
    // The transport header must lie inside the IP packet, not in the Ethernet padding or
    // whatever else follows it in the frame (an empty UDP packet padded to 60 bytes is no
    // datagram to port 0).
    let within = p.ip_payload_len as usize;
    let need = match p.proto {
        PROTO_ICMP | PROTO_ICMPV6 => 4,
        _ => min,
    };
    if within < need {
        return Err(stats::MALFORMED);
    }
    match p.proto {
        PROTO_TCP => {
            let t: &[u8; 20] = get(f, off)?;
            let doff = ((t[12] >> 4) as usize) * 4;
            if doff < 20 || f.len() < off + doff || (!p.is_fragment() && within < doff) {
                return Err(stats::MALFORMED);
            }
            p.sport = be16(t, 0);
            p.dport = be16(t, 2);
            p.tcp_flags = t[13];
            p.tcp_window = be16(t, 14);
            p.tcp_urg_ptr = be16(t, 18);
            p.tcp_opt_len = (doff - 20) as u8;
            p.tcp_hdr_len = doff as u8;
            if p.is_fragment() && (p.ip_payload_len as usize) < doff {
                p.ip_flags |= ip_flags::TINY_FRAGMENT;
            }
            if doff >= 28
                && let Some(o) = f.bytes::<8>(off + 20)
            {
                p.tcp_opts = *o;
            } else if doff >= 24
                && let Some(o) = f.bytes::<4>(off + 20)
            {
                p.tcp_opts[..4].copy_from_slice(o);
            }
        }
        PROTO_UDP => {
            let u: &[u8; 8] = get(f, off)?;
            p.sport = be16(u, 0);
            p.dport = be16(u, 2);
            if let Some(d) = f.bytes::<4>(off + 8) {
                p.l4_data = *d;
            }
        }
        PROTO_ICMP | PROTO_ICMPV6 => {
            let i: &[u8; 8] = match f.bytes::<8>(off) {
                Some(i) => i,
                None => {
                    // Some ICMP messages are only 4 bytes long before their data.
                    let i: &[u8; 4] = get(f, off)?;
                    p.icmp_type = i[0];
                    p.icmp_code = i[1];
                    return Ok(());
                }
            };
            p.icmp_type = i[0];
            p.icmp_code = i[1];
            p.icmp_rest = [i[4], i[5], i[6], i[7]];
            if quotes_packet(p) {
                inner(f, off + 8, p);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Reads the destination, protocol and ports (or ICMP type and code) of the packet an ICMP
/// error quotes; absent parts stay zero.
#[inline(always)]
fn inner<F: Frame + ?Sized>(f: &F, off: usize, p: &mut PacketSummary) {
    let ports_at = if p.proto == PROTO_ICMP {
        let Some(h) = f.bytes::<20>(off) else { return };
        if h[0] >> 4 != 4 {
            return;
        }
        p.inner_proto = h[9];
        p.inner_dst[..4].copy_from_slice(&h[16..20]);
        off + ((h[0] & 0x0f) as usize) * 4
    } else {
        let Some(h) = f.bytes::<40>(off) else { return };
        if h[0] >> 4 != 6 {
            return;
        }
        p.inner_proto = h[6];
        p.inner_dst.copy_from_slice(&h[24..40]);
        off + 40
    };
    let Some(t) = f.bytes::<4>(ports_at) else { return };
    match p.inner_proto {
        PROTO_TCP | PROTO_UDP => {
            p.inner_sport = u16::from_be_bytes([t[0], t[1]]);
            p.inner_dport = u16::from_be_bytes([t[2], t[3]]);
        }
        PROTO_ICMP | PROTO_ICMPV6 => {
            p.inner_icmp_type = t[0];
            p.inner_icmp_code = t[1];
        }
        _ => return,
    }
    p.ip_flags |= ip_flags::INNER_PORTS;
}

/// A frame in kernel memory, as the verifier likes it: every read compares `start + off + N`
/// with `end`. The XDP program's frames and its egress program's socket buffers (built from
/// their contexts in `ipscan-ebpf`), and the benchmark's floor programs, which parse with the
/// same code.
#[cfg(target_arch = "bpf")]
pub struct KernelFrame {
    start: usize,
    end: usize,
    /// A per-CPU word the offsets pass through ([`Frame::opaque`]), or null: then offsets are
    /// kept.
    forget: *mut u64,
}

#[cfg(target_arch = "bpf")]
impl KernelFrame {
    /// The frame between the context's `data` and `data_end`, read by the caller afresh
    /// (volatile): LLVM must not reuse earlier packet pointers, or the verifier checks the slow
    /// path once for every range the fast path had proven on them (+200,000 processed
    /// instructions).
    #[inline(always)]
    pub fn new(start: usize, end: usize) -> Self {
        Self { start, end, forget: core::ptr::null_mut() }
    }

    /// The same frame, its parse's offsets passed through `forget` (a per-CPU map word the
    /// verifier does not track).
    #[inline(always)]
    pub fn forgetting(self, forget: *mut u64) -> Self {
        Self { forget, ..self }
    }
}

#[cfg(target_arch = "bpf")]
impl Frame for KernelFrame {
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
        // SAFETY: a per-CPU map word, valid for the program's run; volatile, so that LLVM
        // reads back the stored value instead of reusing the register.
        unsafe {
            core::ptr::write_volatile(self.forget, off as u64);
            core::ptr::read_volatile(self.forget) as usize
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ethernet + IPv4 (no options) + `l4`, with the IP total length set to `ip_len`.
    fn v4(proto: u8, l4: &[u8], ip_len: usize) -> [u8; 128] {
        let mut f = [0u8; 128];
        f[12..14].copy_from_slice(&ETH_P_IP.to_be_bytes());
        f[14] = 0x45;
        f[16..18].copy_from_slice(&(ip_len as u16).to_be_bytes());
        f[22] = 64;
        f[23] = proto;
        f[26..30].copy_from_slice(&[198, 18, 0, 1]);
        f[30..34].copy_from_slice(&[198, 18, 0, 2]);
        f[34..34 + l4.len()].copy_from_slice(l4);
        f
    }

    /// Ethernet + IPv6 + `n` destination-options headers (8 bytes each) + a TCP SYN to port 80.
    fn v6_chain(n: usize) -> [u8; 256] {
        let mut f = [0u8; 256];
        f[12..14].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
        f[14] = 0x60;
        f[18..20].copy_from_slice(&((n * 8 + 20) as u16).to_be_bytes());
        f[20] = if n == 0 { PROTO_TCP } else { IPPROTO_DSTOPTS };
        f[21] = 64;
        for i in 0..n {
            let at = 54 + i * 8;
            f[at] = if i + 1 == n { PROTO_TCP } else { IPPROTO_DSTOPTS };
            f[at + 2..at + 4].copy_from_slice(&[1, 4]);
        }
        let tcp = 54 + n * 8;
        f[tcp + 2..tcp + 4].copy_from_slice(&80u16.to_be_bytes());
        f[tcp + 12] = 5 << 4;
        f[tcp + 13] = 0x02;
        f
    }

    /// Every frame the fast path takes is one the full parser reads as unfragmented TCP with
    /// the same flags and no anomaly; the fast path declines the rest.
    fn agrees(f: &[u8]) {
        let Some(fast) = plain_tcp(f) else { return };
        let p = parse(f, Options::default()).expect("fast path took a frame the parser refuses");
        assert_eq!((p.family, p.proto, p.tcp_flags), (fast.family, PROTO_TCP, fast.tcp_flags));
        assert_eq!(p.ip_payload_len, fast.ip_payload_len);
        let n = if p.family == FAMILY_V4 { 4 } else { 16 };
        assert_eq!(&p.src[..n], &f[fast.src_offset()..fast.src_offset() + n]);
        assert!(p.has_transport() && !p.is_fragment(), "{p:?}");
        assert_eq!(p.anomalies, 0);
        // The block check before it reads a sender from every such frame, the same one.
        let s = ip_sender(f).expect("plain TCP without a sender for the block check");
        assert_eq!((s.family, s.ip_payload_len, s.src_offset()), (fast.family, fast.ip_payload_len, fast.src_offset()));
    }

    /// An ICMPv4 error quoting an IPv4 header from 198.18.0.2 to `to` and 8 bytes of `l4`.
    fn icmp_error(t: u8, code: u8, quoted_proto: u8, to: [u8; 4], l4: [u8; 8]) -> [u8; 128] {
        let mut m = [0u8; 36];
        m[0] = t;
        m[1] = code;
        m[8] = 0x45;
        m[17] = quoted_proto;
        m[20..24].copy_from_slice(&[198, 18, 0, 2]);
        m[24..28].copy_from_slice(&to);
        m[28..36].copy_from_slice(&l4);
        v4(PROTO_ICMP, &m, 20 + 36)
    }

    #[test]
    fn icmp_errors_carry_the_quoted_destination_ports_and_icmp_type() {
        let opts = Options::default();
        let udp = [0x9c, 0x40, 0x00, 0x35, 0, 0, 0, 0];
        let p = parse(&icmp_error(3, 1, PROTO_UDP, [198, 51, 100, 7], udp)[..], opts).expect("parsed");
        assert_eq!((p.inner_proto, p.inner_sport, p.inner_dport), (PROTO_UDP, 40000, 53));
        assert_eq!(p.inner_dst[..4], [198, 51, 100, 7]);
        assert_eq!(p.inner_dst[4..], [0; 12]);
        assert_ne!(p.ip_flags & ip_flags::INNER_PORTS, 0);
        let echo = [8, 0, 0, 0, 0, 1, 0, 1];
        let p = parse(&icmp_error(11, 0, PROTO_ICMP, [198, 51, 100, 7], echo)[..], opts).expect("parsed");
        assert_eq!((p.inner_proto, p.inner_icmp_type, p.inner_icmp_code), (PROTO_ICMP, 8, 0));
        assert_eq!((p.inner_sport, p.inner_dport), (0, 0));
        // The quoted header only: its destination, no ports.
        let f = icmp_error(3, 3, PROTO_UDP, [198, 51, 100, 7], udp);
        let p = parse(&f[..14 + 20 + 28], opts).expect("parsed");
        assert_eq!((p.inner_proto, &p.inner_dst[..4]), (PROTO_UDP, &[198, 51, 100, 7][..]));
        assert_eq!(p.ip_flags & ip_flags::INNER_PORTS, 0);
        // Not an error: nothing quoted.
        let p = parse(&icmp_error(8, 0, PROTO_UDP, [198, 51, 100, 7], udp)[..], opts).expect("parsed");
        assert_eq!((p.inner_proto, p.inner_dst), (0, [0; 16]));
    }

    #[test]
    fn rejected_frames_are_the_ones_the_parser_refuses_with_that_slot() {
        let refused = |f: &[u8], slot: u32| {
            assert_eq!(rejected(f), Some(slot), "{f:?}");
            assert_eq!(parse(f, Options::default()).err(), Some(slot));
        };
        let good = v4(PROTO_UDP, &[0x9c, 0x40, 0, 53, 0, 12, 0, 0], 32);
        assert_eq!(rejected(&good[..]), None);
        assert!(parse(&good[..], Options::default()).is_ok());
        // Too short for Ethernet or for an IPv4 header.
        refused(&good[..13], stats::MALFORMED);
        refused(&good[..33], stats::MALFORMED);
        // ARP.
        let mut arp = good;
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        refused(&arp[..60], stats::NOT_IP);
        // Version 6 in an IPv4 ethertype, IHL 4, options past the frame, total below the IHL.
        for (at, v, cut) in [(14, 0x65, 128), (14, 0x44, 128), (14, 0x4f, 40), (17, 19, 128)] {
            let mut f = good;
            f[at] = v;
            refused(&f[..cut], stats::MALFORMED);
        }
        // Left to the full parser: IPv6, VLAN tags, a short packet (an anomaly, not a failure).
        assert_eq!(rejected(&v6_chain(0)[..74]), None);
        let mut tagged = [0u8; 132];
        tagged[12..14].copy_from_slice(&ETH_P_8021Q.to_be_bytes());
        tagged[16..18].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(rejected(&tagged[..]), None);
        assert_eq!(parse(&tagged[..], Options::default()).err(), Some(stats::NOT_IP));
        assert_eq!(rejected(&good[..44]), None);
        assert!(parse(&good[..44], Options::default()).is_ok());
    }

    #[test]
    fn plain_tcp_agrees_with_the_parser() {
        let mut ack = [0u8; 20];
        ack[12] = 5 << 4;
        ack[13] = 0x10;
        let f = v4(PROTO_TCP, &ack, 100);
        assert_eq!(plain_tcp(&f[..]), Some(PlainTcp { family: FAMILY_V4, tcp_flags: 0x10, ip_payload_len: 80 }));
        agrees(&f);
        assert!(plain_tcp(&v6_chain(0)[..74]).is_some());
        agrees(&v6_chain(0)[..74]);
        // Declined: an extension header, a fragment, IP options, a cut IP packet, a TCP header
        // longer than the IP payload, UDP.
        assert_eq!(plain_tcp(&v6_chain(1)[..82]), None);
        let mut frag = f;
        frag[20] = 0x20;
        assert_eq!(plain_tcp(&frag[..]), None);
        let mut opts = f;
        opts[14] = 0x46;
        assert_eq!(plain_tcp(&opts[..]), None);
        assert_eq!(plain_tcp(&f[..110]), None);
        assert_eq!(plain_tcp(&v4(PROTO_TCP, &ack, 39)[..]), None);
        assert_eq!(plain_tcp(&v4(PROTO_UDP, &ack, 40)[..]), None);
        // Every single-byte change of the headers and every cut.
        every_change(&f, &[0u8, 1, 0x45, 0x46, 0x60, 0x86, 0xdd, 0x08, 0x50, 0xf0, 0xff], agrees);
    }

    /// Runs `check` on every change of one of the first 74 bytes of the IPv4 frame `f` and of an
    /// IPv6 TCP frame to each of `values`, and on every cut of `f` there.
    fn every_change(f: &[u8; 128], values: &[u8], check: fn(&[u8])) {
        for at in 0..74 {
            for &v in values {
                let mut g = *f;
                g[at] = v;
                check(&g);
                let mut h = v6_chain(0);
                h[at] = v;
                check(&h[..74]);
            }
            check(&f[..at]);
        }
    }

    /// Every frame the block check reads a sender from, the full parser (when it accepts the
    /// frame) reads with the same family, source and payload length.
    fn sender_agrees(f: &[u8]) {
        let Some(fast) = ip_sender(f) else { return };
        let Ok(p) = parse(f, Options::default()) else { return };
        assert_eq!((p.family, p.ip_payload_len), (fast.family, fast.ip_payload_len), "{p:?}");
        let n = if p.family == FAMILY_V4 { 4 } else { 16 };
        assert_eq!(&p.src[..n], &f[fast.src_offset()..fast.src_offset() + n]);
        let mut addr = [0u8; 16];
        addr[..n].copy_from_slice(&p.src[..n]);
        assert_eq!(fast.key_words(), crate::AddrKey::new(addr, p.family).words());
    }

    #[test]
    fn ip_sender_agrees_with_the_parser() {
        let udp = [0x9c, 0x40, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4];
        let f = v4(PROTO_UDP, &udp, 32);
        let src = [u32::from_le_bytes([198, 18, 0, 1]), 0, 0, 0];
        assert_eq!(ip_sender(&f[..]), Some(IpSender { family: FAMILY_V4, ip_payload_len: 12, src }));
        let v6 = ip_sender(&v6_chain(0)[..74]).expect("ipv6");
        assert_eq!((v6.family, v6.ip_payload_len, v6.src), (FAMILY_V6, 20, [0; 4]));
        // Taken: IPv4 options and fragments. Declined: an IPv6 extension header, a cut IP
        // packet, a header length below 20, a total length below the header, VLAN tags.
        let mut frag = f;
        frag[20] = 0x20;
        assert!(ip_sender(&frag[..]).is_some());
        assert_eq!(ip_sender(&v6_chain(1)[..82]), None);
        assert_eq!(ip_sender(&f[..45]), None);
        let mut short = f;
        short[14] = 0x44;
        assert_eq!(ip_sender(&short[..]), None);
        let mut tiny = f;
        tiny[16..18].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(ip_sender(&tiny[..]), None);
        let mut vlan = f;
        vlan[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
        assert_eq!(ip_sender(&vlan[..]), None);
        every_change(&f, &[0u8, 1, 0x20, 0x45, 0x46, 0x4f, 0x60, 0x86, 0xdd, 0x08, 0x2c, 0x3c, 0xff], sender_agrees);
    }

    #[test]
    fn extension_header_bound_is_inclusive() {
        // Found by tests/tests/malformed.rs: a chain of exactly MAX_V6_EXT_HEADERS was refused.
        let ok = v6_chain(MAX_V6_EXT_HEADERS);
        let end = 54 + MAX_V6_EXT_HEADERS * 8 + 20;
        let p = parse(&ok[..end], Options::default()).expect("the bound is allowed");
        assert_eq!((p.proto, p.dport, p.ip_payload_len), (PROTO_TCP, 80, 20));
        let over = v6_chain(MAX_V6_EXT_HEADERS + 1);
        assert_eq!(parse(&over[..end + 8], Options::default()), Err(stats::V6_EXT_LIMIT));
        assert!(parse(&v6_chain(0)[..74], Options::default()).is_ok());
    }

    #[test]
    fn transport_header_must_lie_inside_the_ip_packet() {
        // Found by tests/tests/malformed.rs: empty IP payloads padded to the 60-byte Ethernet
        // minimum were read as UDP to port 0, ICMP echo replies, ...
        let udp = [0x9c, 0x40, 0, 53, 0, 8, 0, 0];
        assert!(parse(&v4(PROTO_UDP, &udp, 28)[..60], Options::default()).is_ok());
        for (proto, l4) in [(PROTO_UDP, &udp[..]), (PROTO_ICMP, &[8, 0, 0, 0][..]), (PROTO_TCP, &[0; 20][..])] {
            assert_eq!(parse(&v4(proto, l4, 20)[..60], Options::default()), Err(stats::MALFORMED), "proto {proto}");
        }
        assert_eq!(parse(&v4(PROTO_UDP, &udp, 27)[..60], Options::default()), Err(stats::MALFORMED));
        // A TCP data offset past the IP packet's end, even though the frame has the bytes.
        let mut syn = [0u8; 20];
        syn[12] = 10 << 4;
        syn[13] = 0x02;
        assert_eq!(parse(&v4(PROTO_TCP, &syn, 40)[..94], Options::default()), Err(stats::MALFORMED));
        assert!(parse(&v4(PROTO_TCP, &syn, 60)[..94], Options::default()).is_ok());
        // A capture cut short (IP length beyond the frame) still parses, as SHORT.
        let p = parse(&v4(PROTO_UDP, &udp, 1500)[..60], Options::default()).expect("short");
        assert_eq!(p.anomalies, anomalies::SHORT);
    }
}
