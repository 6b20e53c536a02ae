//! `parse`: the XDP program's parser (`ipscan_common::parse`, the same code the kernel runs
//! through its `Frame` impl) on arbitrary bytes, checked against an independent reading of the
//! headers; then every pure function the kernel applies to a summary: classification, the
//! per-source window state and the fragment checks.
//!
//! Seeds: every frame of `tests/data/*.pcap` (real nmap, ping and traceroute captures), written
//! to `fuzz/corpus/parse/` by `cargo xtask fuzz`, with VLAN-tagged, IPv6-extension-header and
//! ICMP-error variants made from them.

#![no_main]

use ipscan_common::{
    Config, FAMILY_V4, FAMILY_V6, PacketSummary,
    classify::{self, DETECTIONS, Detection},
    frag::{FRAG_RANGES, FRAG_TIMEOUT_NS, FragState, MAX_REASSEMBLED, frag_anomalies},
    packet::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, anomalies, ip_flags},
    parse::{self, MAX_VLAN_TAGS, Options},
    stats,
    window::{EXACT_PORTS, LOGGED_DPORTS, LOGGED_SPORTS, SourceState},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let with = parse::parse(data, Options { checksum: true });
    let without = parse::parse(data, Options { checksum: false });
    match (&with, &without) {
        (Ok(a), Ok(b)) => {
            let mut a = *a;
            a.anomalies &= !anomalies::BAD_CHECKSUM;
            assert_eq!(&a, b, "the checksum option changed more than BAD_CHECKSUM");
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("the checksum option changed the outcome: {with:?} vs {without:?}"),
    }
    // The XDP program's fast path takes only what the full parser reads as plain TCP.
    if let Some(fast) = parse::plain_tcp(data) {
        let p = without.as_ref().expect("the fast path took a frame the parser refuses");
        assert_eq!((p.family, p.proto, p.tcp_flags), (fast.family, PROTO_TCP, fast.tcp_flags));
        assert_eq!(p.ip_payload_len, fast.ip_payload_len);
        let n = if p.family == FAMILY_V4 { 4 } else { 16 };
        assert_eq!(&p.src[..n], &data[fast.src_offset()..fast.src_offset() + n]);
        assert!(p.has_transport() && !p.is_fragment() && p.anomalies == 0, "{p:?}");
        // The block check before it reads a sender from every such frame, the same one: a
        // source in a block list never passes as plain TCP.
        let s = parse::ip_sender(data).expect("plain TCP without a sender for the block check");
        assert_eq!((s.family, s.ip_payload_len, s.src_offset()), (fast.family, fast.ip_payload_len, fast.src_offset()));
        if ipscan_common::config::passes_quietly(&Config::default(), fast.tcp_flags) {
            assert_eq!(classify::detections(p), 0);
            assert_eq!(classify::ordinary_line(p), None);
            assert!(!classify::is_bogus(p.tcp_flags) && !classify::is_traceroute(p));
        }
    }
    // What the fast path refuses, the parser refuses with the same STATS slot.
    if let Some(slot) = parse::rejected(data) {
        assert_eq!(without.as_ref().err(), Some(&slot), "the fast path refused a frame the parser reads otherwise");
    }
    // The fast path's block check reads the sender the parser reads.
    if let (Some(fast), Ok(p)) = (parse::ip_sender(data), without.as_ref()) {
        assert_eq!((p.family, p.ip_payload_len), (fast.family, fast.ip_payload_len));
        let n = if p.family == FAMILY_V4 { 4 } else { 16 };
        assert_eq!(&p.src[..n], &data[fast.src_offset()..fast.src_offset() + n]);
        let mut addr = [0u8; 16];
        addr[..n].copy_from_slice(&p.src[..n]);
        assert_eq!(fast.key_words(), ipscan_common::AddrKey::new(addr, p.family).words());
    }
    let l3 = reference_l3(data);
    match with {
        Err(slot) => {
            assert!(
                matches!(slot, stats::MALFORMED | stats::NOT_IP | stats::V6_EXT_LIMIT),
                "error {slot} is not a parse error slot"
            );
            assert_eq!(slot == stats::NOT_IP, l3 == L3::Other, "NOT_IP exactly for complete non-IP headers");
            if slot == stats::V6_EXT_LIMIT {
                assert!(matches!(l3, L3::V6(_)));
            }
        }
        Ok(p) => {
            check_summary(data, l3, &p);
            classification(&p);
            windows(&p);
            fragments(&p);
        }
    }
});

/// Where the IP header starts, read independently of the parser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum L3 {
    /// The Ethernet header or a VLAN tag is cut short.
    Short,
    /// Not IPv4 or IPv6 (after at most two VLAN tags).
    Other,
    V4(usize),
    V6(usize),
}

fn be16(d: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([d[i], d[i + 1]])
}

fn reference_l3(d: &[u8]) -> L3 {
    if d.len() < 14 {
        return L3::Short;
    }
    let mut ethertype = be16(d, 12);
    let mut off = 14;
    for _ in 0..MAX_VLAN_TAGS {
        if ethertype != 0x8100 && ethertype != 0x88a8 {
            break;
        }
        if d.len() < off + 4 {
            return L3::Short;
        }
        ethertype = be16(d, off + 2);
        off += 4;
    }
    match ethertype {
        0x0800 => L3::V4(off),
        0x86dd => L3::V6(off),
        _ => L3::Other,
    }
}

/// One's-complement sum of the IPv4 header, folded.
fn header_sum(h: &[u8]) -> u32 {
    let mut sum: u32 = h.chunks(2).map(|w| u32::from(be16(w, 0))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum
}

fn has(p: &PacketSummary, bit: u8) -> bool {
    p.ip_flags & bit != 0
}

fn check_summary(d: &[u8], l3: L3, p: &PacketSummary) {
    assert_eq!(p._pad, [0; 4]);
    assert_eq!(p.anomalies & !(anomalies::SHORT | anomalies::BAD_CHECKSUM), 0);
    // Where the transport header is (when the packet has one).
    let toff = match l3 {
        L3::V4(off) => {
            assert_eq!(p.family, FAMILY_V4);
            let h = &d[off..off + 20];
            assert_eq!(h[0] >> 4, 4);
            let ihl = usize::from(h[0] & 0x0f) * 4;
            let total = usize::from(be16(h, 2));
            assert!(ihl >= 20 && d.len() >= off + ihl && total >= ihl, "accepted a bad IPv4 header");
            assert_eq!(p.ip_payload_len as usize, total - ihl, "IPv4 payload = total length - IHL");
            assert_eq!(p.anomalies & anomalies::SHORT != 0, off + total > d.len());
            assert_eq!(p.anomalies & anomalies::BAD_CHECKSUM != 0, header_sum(&d[off..off + ihl]) != 0xffff);
            assert_eq!((p.tos, p.ttl, p.proto), (h[1], h[8], h[9]));
            assert_eq!((&p.src[..4], &p.dst[..4]), (&h[12..16], &h[16..20]));
            assert_eq!((&p.src[4..], &p.dst[4..]), (&[0u8; 12][..], &[0u8; 12][..]), "IPv4 addresses are zero-padded");
            let frag = be16(h, 6);
            assert_eq!(p.frag_id, u32::from(be16(h, 4)));
            assert_eq!(p.frag_off, frag & 0x1fff);
            assert_eq!(has(p, ip_flags::DF), frag & 0x4000 != 0);
            assert_eq!(has(p, ip_flags::MF), frag & 0x2000 != 0);
            assert_eq!(has(p, ip_flags::FRAGMENT), frag & 0x3fff != 0, "IPv4 fragment = MF or an offset");
            off + ihl
        }
        L3::V6(off) => {
            assert_eq!(p.family, FAMILY_V6);
            let h = &d[off..off + 40];
            assert_eq!(h[0] >> 4, 6);
            let payload = usize::from(be16(h, 4));
            assert!(p.ip_payload_len as usize <= payload, "payload after extension headers exceeds the IPv6 length");
            assert_eq!(p.anomalies & anomalies::SHORT != 0, off + 40 + payload > d.len());
            assert_eq!(p.anomalies & anomalies::BAD_CHECKSUM, 0, "IPv6 has no header checksum");
            assert_eq!(p.ip_flags & ip_flags::DF, 0, "IPv6 has no DF bit");
            assert_eq!(p.ttl, h[7]);
            assert_eq!((&p.src[..], &p.dst[..]), (&h[8..24], &h[24..40]));
            // Each extension header's length comes off the payload length.
            off + 40 + (payload - p.ip_payload_len as usize)
        }
        L3::Short | L3::Other => panic!("parsed a frame without a complete IP ethertype: {l3:?} {p:?}"),
    };

    // Fragment flags.
    if has(p, ip_flags::LATER_FRAGMENT) || has(p, ip_flags::TINY_FRAGMENT) || has(p, ip_flags::MF) {
        assert!(p.is_fragment(), "fragment bits without FRAGMENT: {:#x}", p.ip_flags);
    }
    if p.frag_off != 0 {
        assert!(has(p, ip_flags::LATER_FRAGMENT), "an offset means a later fragment");
    }
    if has(p, ip_flags::LATER_FRAGMENT) && p.frag_off == 0 {
        assert!(has(p, ip_flags::TINY_FRAGMENT), "a first fragment is 'later' only when tiny");
    }

    // Transport fields: zero where the packet has no such header.
    let is_icmp = p.proto == PROTO_ICMP || p.proto == PROTO_ICMPV6;
    let later = has(p, ip_flags::LATER_FRAGMENT);
    if later || (p.proto != PROTO_TCP && p.proto != PROTO_UDP) {
        assert_eq!((p.sport, p.dport, p.l4_data), (0, 0, [0; 4]), "ports without a TCP/UDP header");
    }
    if later || p.proto != PROTO_TCP {
        assert_eq!(
            (p.tcp_flags, p.tcp_hdr_len, p.tcp_opt_len, p.tcp_window, p.tcp_urg_ptr, p.tcp_opts),
            (0, 0, 0, 0, 0, [0; 8]),
            "TCP fields without a TCP header"
        );
    }
    if later || !is_icmp {
        assert_eq!((p.icmp_type, p.icmp_code, p.icmp_rest), (0, 0, [0; 4]), "ICMP fields without ICMP");
        assert_eq!((p.inner_proto, p.inner_sport, p.inner_dport), (0, 0, 0));
        assert_eq!((p.inner_icmp_type, p.inner_icmp_code, p.inner_dst), (0, 0, [0; 16]));
        assert!(!has(p, ip_flags::INNER_PORTS));
    }
    let inner_ports = (p.inner_sport, p.inner_dport);
    let inner_icmp = (p.inner_icmp_type, p.inner_icmp_code);
    match p.inner_proto {
        _ if !has(p, ip_flags::INNER_PORTS) => assert_eq!((inner_ports, inner_icmp), ((0, 0), (0, 0))),
        PROTO_TCP | PROTO_UDP => assert_eq!(inner_icmp, (0, 0)),
        PROTO_ICMP | PROTO_ICMPV6 => assert_eq!(inner_ports, (0, 0)),
        other => panic!("quoted ports of protocol {other}"),
    }
    if later {
        return;
    }
    match p.proto {
        PROTO_TCP if !has(p, ip_flags::TINY_FRAGMENT) || p.tcp_hdr_len != 0 => {
            let doff = usize::from(p.tcp_hdr_len);
            assert!(doff >= 20 && doff % 4 == 0, "TCP data offset {doff}");
            assert_eq!(usize::from(p.tcp_opt_len), doff - 20);
            assert!(d.len() >= toff + doff, "TCP header past the end of the frame");
            assert_eq!((p.sport, p.dport), (be16(d, toff), be16(d, toff + 2)));
            assert_eq!(p.tcp_flags, d[toff + 13]);
            // Inside the IP packet, not in padding after it; only a tiny fragment splits it.
            let within = p.ip_payload_len as usize;
            assert!(within >= 20, "TCP header past the IP packet's end");
            assert!(within >= doff || has(p, ip_flags::TINY_FRAGMENT), "TCP options past the IP packet's end");
        }
        PROTO_UDP if !has(p, ip_flags::TINY_FRAGMENT) => {
            assert!(p.ip_payload_len >= 8, "UDP header past the IP packet's end");
            assert!(d.len() >= toff + 8, "UDP header past the end of the frame");
            assert_eq!((p.sport, p.dport), (be16(d, toff), be16(d, toff + 2)));
        }
        PROTO_ICMP | PROTO_ICMPV6 => {
            assert!(p.ip_payload_len >= 4, "ICMP header past the IP packet's end");
            assert!(d.len() >= toff + 4, "ICMP header past the end of the frame");
            assert_eq!((p.icmp_type, p.icmp_code), (d[toff], d[toff + 1]));
        }
        _ => {}
    }
}

/// What the kernel decides from a summary: sets within bounds, and nothing counted for a packet
/// without a transport header.
fn classification(p: &PacketSummary) {
    let all = (1u32 << DETECTIONS.len()) - 1;
    let set = classify::detections(p);
    assert_eq!(set & !all, 0, "unknown detection bits {set:#x}");
    if set != 0 {
        assert!(p.has_transport(), "a packet without a transport header counted toward {set:#x}");
    }
    if p.proto == PROTO_TCP {
        assert_eq!(set, classify::tcp_detections(p));
    }
    assert_eq!(set & Detection::PortScan.bit() != 0, classify::is_connection_attempt(p));
    if set & Detection::SynScan.bit() != 0 {
        assert!(set & Detection::PortScan.bit() != 0, "a raw SYN is a connection attempt too");
    }
    let scans = Detection::PortScan.bit()
        | Detection::SynScan.bit()
        | Detection::FinScan.bit()
        | Detection::NullScan.bit()
        | Detection::XmasScan.bit();
    if set & scans != 0 {
        assert_eq!(p.proto, PROTO_TCP);
    }
    if let Some(line) = classify::ordinary_line(p) {
        assert!(p.has_transport());
        assert!(!line.is_alert());
        assert!(classify::suppressing_detection(line).is_some());
        assert_eq!(classify::PacketLine::from_u8(line as u8), Some(line));
    }
    if classify::is_os_probe(p) || classify::is_smurf(p) {
        assert!(p.has_transport());
    }
    if classify::is_traceroute(p) {
        assert_eq!(p.ttl, 1);
        assert!(!classify::is_group_destination(p));
    }
    let _ = classify::is_bogus(p.tcp_flags);
    let net = classify::smurf_network(p);
    let keep = if p.family == FAMILY_V4 { 3 } else { 8 };
    assert_eq!(&net[..keep], &p.src[..keep]);
    assert!(net[keep..].iter().all(|b| *b == 0), "smurf network keeps only /24 or /64");
}

/// The per-source window state the kernel keeps for each detection the packet counts toward,
/// driven past a threshold taken from the packet: counters only grow, the threshold is crossed
/// exactly once.
fn windows(p: &PacketSummary) {
    let cfg = Config::default();
    let threshold = u32::from(p.ttl % 40) + 1;
    let t0 = u64::from(p.frag_id) * 1_000;
    for d in DETECTIONS {
        if classify::detections(p) & d.bit() == 0 {
            continue;
        }
        let window = cfg.detection(d).window_ns;
        let mut s = SourceState::new(t0);
        let mut crossings = 0;
        let n = threshold + 3;
        for i in 0..n {
            let prev = s;
            let crossed = if d.counts_ports() {
                // A new destination port each time: the distinct count is exact up to EXACT_PORTS.
                let dport = p.dport.wrapping_add(i as u16);
                let c = s.record_ports(t0 + u64::from(i), dport, p.sport, p.ip_payload_len, threshold);
                assert!(s.distinct >= prev.distinct && s.distinct <= prev.distinct + 1);
                if (i as usize) < EXACT_PORTS {
                    assert_eq!(s.distinct, i + 1, "distinct ports below EXACT_PORTS are exact");
                    assert_eq!(c, i + 1 == threshold, "the threshold port crosses, and only it");
                }
                c
            } else {
                let c = s.record_packets(t0 + u64::from(i), p.dport, p.sport, p.ip_payload_len, threshold, window);
                assert_eq!(c, i + 1 == threshold, "a flood crosses on its threshold packet");
                c
            };
            if crossed {
                assert!(!prev.in_mode(), "crossed twice in one mode");
                crossings += 1;
            }
            assert!(s.in_mode() || !prev.in_mode(), "left the mode without a reset");
            assert_eq!(s.packets, prev.packets + 1);
            assert_eq!(s.bytes, prev.bytes + u64::from(p.ip_payload_len));
            assert!(s.last_ns >= prev.last_ns);
            assert!(usize::from(s.nports) <= EXACT_PORTS && usize::from(s.nsports) <= LOGGED_SPORTS);
            assert!(s.logged_dports().len() <= LOGGED_DPORTS);
        }
        // Past EXACT_PORTS the count is a lower bound (hashed bitmap): it may not get there.
        if d.counts_ports() && threshold as usize > EXACT_PORTS {
            assert!(crossings <= 1);
        } else {
            assert_eq!(crossings, 1, "{d:?} threshold {threshold}");
        }
        assert_eq!(s.nsports, 1, "one source port");
        assert!(!s.lapsed(s.last_ns + window, window));
        assert!(s.lapsed(s.last_ns + window + 1, window));
        s.reset(s.last_ns + window + 1);
        assert!(!s.in_mode());
        assert_eq!((s.packets, s.bytes, s.distinct, s.nports, s.nsports), (0, 0, 0, 0, 0));
    }
}

/// The fragment checks on the packet's train: a repeat is a duplicate, each anomaly is reported
/// once, a full range table stays bounded, the timeout starts a new train.
fn fragments(p: &PacketSummary) {
    use frag_anomalies::*;
    if !p.is_fragment() {
        return;
    }
    let now = 1_000;
    let mut s = FragState::default();
    s.reset(now);
    let first = s.add(now, p);
    assert_eq!(first & (DUPLICATE | OVERLAP), 0, "the first fragment of a train overlaps nothing");
    let end = u32::from(p.frag_off) * 8 + p.ip_payload_len;
    assert_eq!(first & OVERSIZED != 0, end > MAX_REASSEMBLED);
    assert_eq!(first & TINY != 0, has(p, ip_flags::TINY_FRAGMENT));
    assert_eq!(s.add(now, p), DUPLICATE, "a repeated fragment is a duplicate");
    assert_eq!(s.add(now, p), 0, "each anomaly is reported once per train");
    for k in 0..(FRAG_RANGES as u16 + 4) {
        let mut q = *p;
        q.frag_off = p.frag_off.wrapping_add(k * 200) & 0x1fff;
        let before = s.reported;
        let new = s.add(now, &q);
        assert_eq!(new & before, 0, "reported again");
        assert!(usize::from(s.n) <= FRAG_RANGES);
    }
    let mut fresh = FragState::default();
    fresh.reset(now);
    let expected = fresh.add(now, p);
    assert_eq!(s.add(now + FRAG_TIMEOUT_NS + 1, p), expected, "a train is forgotten after the timeout");
}
