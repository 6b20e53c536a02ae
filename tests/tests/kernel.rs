//! The real XDP program under BPF_PROG_TEST_RUN with hand-built frames: verdicts, map contents,
//! ring-buffer events and error counters. Needs root; run with `--test-threads=1`.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipscan::{
    config::IpNet,
    kernel::loader,
    kernel::tables::{BlockRow, Placed, Tables},
};
use ipscan_common::{
    BlockEntry, Config, Detection, EventKind, FAMILY_V4, FAMILY_V6, PacketLine, ProbeSet, SourceKey,
    block::PendingDrops, config::global_flags, stats,
};
use ipscan_tests::{
    Prog, XDP_DROP, XDP_PASS,
    frames::{DST4 as V, DST6 as V6, Frame, L4, SRC4 as A, SRC6 as A6, ext_frag, ext_opts},
    key4, key6,
};

const SEC: u64 = 1_000_000_000;

/// Source addresses to search for ones that share a table set with another: 2001:db8::/32
/// holds as many as any search needs (198.18.0.0/15 holds eight per set on average).
fn candidates6() -> impl Iterator<Item = Ipv6Addr> {
    (1..u32::MAX).map(|i| Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, (i >> 16) as u16, i as u16))
}

/// The default configuration without the per-target detections (a distributed flood's or scan's
/// target takes a probation way and a SOURCES entry of its own): for the per-source counts.
fn per_source() -> Config {
    let mut cfg = Config::default();
    cfg.flags &= !(global_flags::DISTRIBUTED | global_flags::DIST_SCAN);
    cfg
}

/// The default configuration, with SYN scanners blocked in the kernel for `block_ns`.
fn blocking_syn_scanners(block_ns: u64) -> Config {
    let mut cfg = Config::default();
    cfg.detection_mut(Detection::SynScan).block_ns = block_ns;
    cfg.flags |= global_flags::AUTOBLOCKS;
    cfg
}

fn syn4(dport: u16) -> Vec<u8> {
    Frame::default().v4(A, V, &L4::syn(40000, dport))
}

#[test]
fn syn_scan_crosses_threshold_once_with_ports_and_totals() {
    let mut p = Prog::load(&Config::default());
    for port in 1..=9u16 {
        assert_eq!(p.run_at(SEC + port as u64, &syn4(port)), XDP_PASS);
    }
    assert!(p.detections().is_empty(), "no event before the 10th distinct port");
    assert_eq!(p.run_at(2 * SEC, &syn4(10)), XDP_PASS);
    let evs = p.detections();
    assert_eq!(evs.len(), 1, "{evs:?}");
    let ev = evs[0];
    assert_eq!(ev.kind(), Some(EventKind::Detected));
    assert_eq!(ev.detection, Detection::SynScan as u8);
    assert_eq!(ev.ports(), &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert_eq!(ev.sports(), &[40000]);
    assert_eq!(ev.packets, 10);
    // 24 bytes of TCP (20 + MSS option) per probe.
    assert_eq!(ev.bytes, 10 * 24);
    assert_eq!(ev.key, key4(A, Detection::SynScan));
    assert_eq!(ev.mode_since_ns, 2 * SEC);
    // Past the threshold: counted, no second event.
    for port in 11..=20u16 {
        p.run_at(3 * SEC, &syn4(port));
    }
    let evs = p.detections();
    // The port scan (threshold 15) crosses now; the SYN scan does not report again.
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(evs[0].detection, Detection::PortScan as u8);
    assert_eq!(evs[0].packets, 15);
    let s = p.source(&key4(A, Detection::SynScan)).expect("state");
    assert_eq!((s.packets, s.bytes, s.distinct), (20, 20 * 24, 20));
    assert_eq!(p.stat(stats::DETECTIONS), 2);
    assert_eq!(p.stat(stats::PACKETS), 20);
    assert_eq!(p.stat(stats::PASSED), 20);
    assert_eq!(p.stat(stats::MALFORMED), 0);
}

#[test]
fn busy_client_to_one_port_is_never_a_scan() {
    let mut p = Prog::load(&Config::default());
    for i in 0..200u16 {
        // connect()-style SYN: MSS, SACK-permitted, timestamps, window scale (20 bytes).
        let opts = vec![2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7];
        let f = Frame { df: true, ..Default::default() }.v4(
            A,
            V,
            &L4::Tcp { sport: 30000 + i, dport: 443, flags: 0x02, options: opts },
        );
        assert_eq!(p.run_at(SEC, &f), XDP_PASS);
    }
    assert!(p.detections().is_empty());
    // One port: the client stays on probation, counted, without a SOURCES entry.
    assert_eq!(p.source_count(), 0);
    let probe = p.probe(&key4(A, Detection::PortScan)).expect("counted as connection attempts");
    assert_eq!((probe.packets, probe.dport, probe.sport), (200, 443, 30000));
    assert!(p.probe(&key4(A, Detection::SynScan)).is_none(), "socket SYNs are not raw probes");
}

#[test]
fn one_port_sources_stay_on_probation_until_their_second_port() {
    let mut p = Prog::load(&Config::default());
    // Five probes to one port (a scanner's first port and its retransmissions).
    for i in 0..5u64 {
        p.run_at(SEC + i * SEC, &syn4(22));
    }
    assert_eq!(p.source_count(), 0, "no SOURCES entry for a one-port source");
    let probe = p.probe(&key4(A, Detection::SynScan)).expect("on probation");
    assert_eq!((probe.packets, probe.bytes, probe.first_ns, probe.last_ns), (5, 5 * 24, SEC, 5 * SEC));
    // The second port admits it, with its probation counted as if tracked from the start.
    p.run_at(6 * SEC, &syn4(80));
    let s = p.source(&key4(A, Detection::SynScan)).expect("admitted");
    assert_eq!((s.packets, s.bytes, s.distinct, s.first_ns, s.last_ns), (6, 6 * 24, 2, SEC, 6 * SEC));
    assert_eq!((&s.ports[..2], s.nports), (&[22, 80][..], 2));
    assert!(p.probe(&key4(A, Detection::SynScan)).is_none(), "the slot is freed");
    assert!(p.source(&key4(A, Detection::PortScan)).is_some(), "the port scan admits it too");
    // Eight more ports cross the SYN scan threshold (10) on the tenth distinct port.
    for port in 100..108u16 {
        p.run_at(7 * SEC, &syn4(port));
    }
    let evs = p.detections();
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!((evs[0].detection, evs[0].packets), (Detection::SynScan as u8, 14));
    assert_eq!(evs[0].ports(), &[22, 80, 100, 101, 102, 103, 104, 105, 106, 107]);
    // A probation lapses with the detection's window: the next packet starts a new one.
    p.run_at(7 * SEC, &Frame::default().v4(Ipv4Addr::new(198, 18, 0, 7), V, &L4::syn(40000, 22)));
    let k7 = key4(Ipv4Addr::new(198, 18, 0, 7), Detection::SynScan);
    p.run_at(7 * SEC + 51 * SEC, &Frame::default().v4(Ipv4Addr::new(198, 18, 0, 7), V, &L4::syn(40000, 23)));
    let probe = p.probe(&k7).expect("a new probation");
    assert_eq!((probe.packets, probe.dport, probe.first_ns), (1, 23, 58 * SEC));
    assert!(p.source(&k7).is_none());
}

#[test]
fn floods_admit_a_source_on_its_second_packet() {
    let mut p = Prog::load(&per_source());
    let echo = |src: Ipv4Addr| Frame::default().v4(src, V, &L4::Icmp { ty: 8, code: 0 });
    // One echo request from each of 500 sources: all on probation.
    for i in 0..500u32 {
        p.run_at(SEC, &echo(Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 0, 0)) + i)));
    }
    assert_eq!(p.source_count(), 0);
    // A second one from A admits it, with both counted and the rate window from the first.
    p.run_at(SEC, &echo(A));
    assert!(p.source(&key4(A, Detection::PingFlood)).is_none());
    p.run_at(2 * SEC, &echo(A));
    let s = p.source(&key4(A, Detection::PingFlood)).expect("admitted");
    assert_eq!((s.packets, s.first_ns, s.rate_start_ns, s.rate_count), (2, SEC, SEC, 2));
    // The flood threshold (70 within 60 s) crosses on the 70th echo, as without probation.
    for i in 0..67u64 {
        p.run_at(3 * SEC + i, &echo(A));
    }
    assert!(p.detections().is_empty());
    p.run_at(4 * SEC, &echo(A));
    let evs = p.detections();
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!((evs[0].detection, evs[0].packets), (Detection::PingFlood as u8, 70));
}

/// What `ipscan stats` and the metrics report as sources on probation: ways holding a key inside
/// its detection's window, read from the mapped PROBATION.
#[test]
fn sources_on_probation_are_counted_until_their_window_lapses() {
    let mut p = Prog::load(&per_source());
    let nth = |base: [u8; 4], i: u32| Ipv4Addr::from(u32::from(Ipv4Addr::from(base)) + i);
    let echo = |src: Ipv4Addr| Frame::default().v4(src, V, &L4::Icmp { ty: 8, code: 0 });
    // 300 one-SYN sources (port scan and SYN scan: 50 s windows), 100 one-echo sources (ping
    // flood: 60 s). 700 keys in 16,384 sets of four: a set overflowing is a 1-in-50,000 chance.
    for i in 0..300 {
        p.run_at(SEC, &Frame::default().v4(nth([198, 19, 0, 0], i), V, &L4::syn(40000, 80)));
    }
    for i in 0..100 {
        p.run_at(SEC, &echo(nth([198, 19, 8, 0], i)));
    }
    let held = |p: &Prog, now: u64| {
        let (probation, config) = ipscan::kernel::stats::probation_of(&p.ebpf).expect("maps");
        ipscan::kernel::stats::probation(probation, config, now).expect("read PROBATION")
    };
    assert_eq!(held(&p, SEC), 700);
    assert_eq!(held(&p, 51 * SEC), 700, "50 s after: still inside every window");
    assert_eq!(held(&p, 52 * SEC), 100, "the scans' windows lapsed, the ping flood's not");
    assert_eq!(held(&p, 62 * SEC), 0);
    // A second echo from one source admits it: one fewer on probation, one in SOURCES.
    p.run_at(2 * SEC, &echo(nth([198, 19, 8, 0], 7)));
    assert_eq!(held(&p, 2 * SEC), 699);
    assert_eq!(p.source_count(), 1);
}

#[test]
fn a_spoofed_one_packet_flood_leaves_sources_alone() {
    let mut p = Prog::load(&Config::default());
    for i in 0..2_000u32 {
        let src = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 0, 0)) + i);
        p.run_at(SEC, &Frame::default().v4(src, V, &L4::syn(1024 + i as u16, 80)));
    }
    assert_eq!(p.source_count(), 0, "one SYN per source never reaches the LRU");
    // Their target does, for the distributed flood (below its threshold); the distributed scan
    // of one port stays on probation.
    assert_eq!(p.target_count(), 1);
    assert_eq!(p.stat(stats::PACKETS), 2_000);
    assert_eq!(p.stat(stats::MAP_ERRORS), 0);
}

#[test]
fn stealth_scans_by_flags() {
    let mut p = Prog::load(&Config::default());
    let cases = [
        (0x01u8, Detection::FinScan),
        (0x00, Detection::NullScan),
        (0x29, Detection::XmasScan),
        // ECN bits are ignored: this is still a null probe.
        (0xc0, Detection::NullScan),
    ];
    for (i, (flags, det)) in cases.iter().enumerate() {
        let src = Ipv4Addr::new(198, 18, 1, i as u8 + 1);
        for port in 1..=10u16 {
            p.run_at(SEC, &Frame::default().v4(src, V, &L4::tcp(50000, port, *flags)));
        }
        let evs = p.detections();
        assert_eq!(evs.len(), 1, "flags {flags:#x}: {evs:?}");
        assert_eq!(evs[0].detection, *det as u8, "flags {flags:#x}");
        assert_eq!(evs[0].key, key4(src, *det));
    }
    // SYN+ACK, RST, ACK: answers and established traffic count toward nothing.
    for flags in [0x12u8, 0x04, 0x10, 0x18] {
        for port in 1..=20u16 {
            p.run_at(SEC, &Frame::default().v4(Ipv4Addr::new(198, 18, 2, 1), V, &L4::tcp(1, port, flags)));
        }
    }
    assert!(p.detections().is_empty());
}

#[test]
fn window_lapses_and_kernel_reports_expiry_it_notices() {
    let mut p = Prog::load(&Config::default());
    let window = Config::default().detection(Detection::SynScan).window_ns;
    for port in 1..=9u16 {
        p.run_at(SEC, &syn4(port));
    }
    // The window lapses before the tenth port: the count starts over, no detection.
    p.run_at(SEC + window + 1, &syn4(10));
    assert!(p.detections().is_empty());
    let s = p.source(&key4(A, Detection::SynScan)).expect("state");
    assert_eq!((s.packets, s.distinct, s.first_ns), (1, 1, SEC + window + 1));

    // Enter the mode, then come back after the window: the kernel reports the expiry with the
    // totals of the old window before counting the new packet.
    let t0 = 1000 * SEC;
    for port in 100..110u16 {
        p.run_at(t0, &syn4(port));
    }
    let evs = p.detections();
    assert!(evs.iter().any(|e| e.kind() == Some(EventKind::Detected)));
    p.run_at(t0 + window + 1, &syn4(200));
    let evs = p.detections();
    let exp: Vec<_> = evs.iter().filter(|e| e.kind() == Some(EventKind::Expired)).collect();
    // Only the SYN scan was in a mode (10 ports are below the port scan's 15).
    assert_eq!(exp.len(), 1, "{evs:?}");
    let syn = exp[0];
    assert_eq!(syn.detection, Detection::SynScan as u8);
    assert_eq!((syn.packets, syn.bytes, syn.mode_since_ns), (10, 240, t0));
    assert_eq!(p.stat(stats::KERNEL_EXPIRIES), 1);
}

#[test]
fn vlan_tags_and_ip_options_are_parsed() {
    let mut p = Prog::load(&Config::default());
    let variants = [
        Frame { vlans: vec![100], ..Default::default() },
        Frame { vlans: vec![100, 200], ..Default::default() },
        // Record-route style option block: 8 bytes of options, IHL 7.
        Frame { ip_options: vec![7, 7, 4, 0, 0, 0, 0], ..Default::default() },
    ];
    for (i, f) in variants.iter().enumerate() {
        let src = Ipv4Addr::new(198, 18, 3, i as u8 + 1);
        for port in 1..=10u16 {
            assert_eq!(p.run_at(SEC, &f.v4(src, V, &L4::syn(1234, port))), XDP_PASS);
        }
        let evs = p.detections();
        assert_eq!(evs.len(), 1, "variant {i}: {evs:?}");
        assert_eq!(evs[0].ports(), &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "variant {i}");
        assert_eq!(evs[0].sports(), &[1234], "variant {i}");
        assert_eq!(evs[0].packet.family, FAMILY_V4);
    }
    assert_eq!(p.stat(stats::MALFORMED), 0);
}

#[test]
fn ipv6_with_extension_headers() {
    let mut p = Prog::load(&Config::default());
    let f = Frame { ext: vec![(0, ext_opts()), (60, ext_opts())], ..Default::default() };
    for port in 1..=10u16 {
        assert_eq!(p.run_at(SEC, &f.v6(A6, V6, &L4::syn(40000, port))), XDP_PASS);
    }
    let evs = p.detections();
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(evs[0].key, key6(A6, Detection::SynScan));
    assert_eq!(evs[0].ports(), &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    // Payload bytes exclude the extension headers: 24 bytes of TCP each.
    assert_eq!(evs[0].bytes, 240);

    // A chain longer than the parser's bound is counted and passed, not classified.
    let long = Frame { ext: (0..9).map(|_| (60u8, ext_opts())).collect(), ..Default::default() };
    let before = p.source_count();
    assert_eq!(p.run_at(SEC, &long.v6(A6, V6, &L4::syn(40000, 999))), XDP_PASS);
    assert_eq!(p.stat(stats::V6_EXT_LIMIT), 1);
    assert_eq!(p.source_count(), before);
}

#[test]
fn later_fragments_have_no_transport_header() {
    let mut p = Prog::load(&Config::default());
    for port in 1..=20u16 {
        let f = Frame { frag_offset: 100, ..Default::default() };
        assert_eq!(p.run_at(SEC, &f.v4(A, V, &L4::syn(1, port))), XDP_PASS);
        let f6 = Frame { ext: vec![(44, ext_frag(100, false, 7))], ..Default::default() };
        assert_eq!(p.run_at(SEC, &f6.v6(A6, V6, &L4::syn(1, port))), XDP_PASS);
    }
    assert!(p.detections().is_empty());
    assert_eq!(p.source_count(), 0);
    assert_eq!(p.stat(stats::FRAGMENTS), 40);
}

#[test]
fn truncated_and_malformed_frames_pass_and_count() {
    let mut p = Prog::load(&Config::default());
    let good4 = syn4(80);
    let good6 = Frame { ext: vec![(0, ext_opts())], ..Default::default() }.v6(A6, V6, &L4::syn(1, 80));
    let vlan4 = Frame { vlans: vec![1, 2], ..Default::default() }.v4(A, V, &L4::syn(1, 80));
    let mut runs = 0;
    for good in [&good4, &good6, &vlan4] {
        // Every truncation short of the full frame. BPF_PROG_TEST_RUN refuses frames shorter
        // than an Ethernet header (EINVAL), so those cannot reach the program at all.
        for len in 14..good.len() {
            assert_eq!(p.run_at(SEC, &good[..len]), XDP_PASS, "truncated to {len}");
            runs += 1;
        }
    }
    // IHL below 5.
    let mut bad = syn4(80);
    bad[14] = 0x44;
    assert_eq!(p.run_at(SEC, &bad), XDP_PASS);
    // IPv4 total length shorter than the header.
    let mut bad = syn4(80);
    bad[16..18].copy_from_slice(&10u16.to_be_bytes());
    assert_eq!(p.run_at(SEC, &bad), XDP_PASS);
    // TCP data offset past the end of the frame.
    let mut bad = syn4(80);
    bad[14 + 20 + 12] = 0xf0;
    assert_eq!(p.run_at(SEC, &bad), XDP_PASS);
    // TCP data offset below 5.
    let mut bad = syn4(80);
    bad[14 + 20 + 12] = 0x30;
    assert_eq!(p.run_at(SEC, &bad), XDP_PASS);
    // Wrong IP version in an IPv4 ethertype.
    let mut bad = syn4(80);
    bad[14] = 0x65;
    assert_eq!(p.run_at(SEC, &bad), XDP_PASS);
    let malformed = 5;
    assert!(p.detections().is_empty(), "malformed frames never detect");
    assert_eq!(p.source_count(), 0, "malformed frames never create state");
    assert_eq!(p.stat(stats::PASSED), runs + malformed);
    assert_eq!(p.stat(stats::DROPPED), 0);
    assert!(p.stat(stats::MALFORMED) + p.stat(stats::NOT_IP) == runs + malformed);
    assert!(p.stat(stats::MALFORMED) >= malformed);
}

/// AUTOBLOCK is a set-associative table that the kernel and user space both write: a block the
/// kernel makes is listed by user space, one user space restores is enforced by the kernel, for
/// every protocol of the source; a full set gives up its oldest block to the kernel's next one,
/// while a block user space restores into a full set goes to the blocklist instead.
#[test]
fn autoblocks_are_shared_with_user_space_and_a_full_set_gives_up_its_oldest() {
    // Blocks long enough to be on under user space's clock too (CLOCK_MONOTONIC, where the
    // program runs on the test's clock), since user space ranks a set's ways by it.
    const LONG: u64 = 1_000_000_000 * SEC;
    let mut p = Prog::load(&blocking_syn_scanners(LONG));
    // A fresh table: opening it picks the hash seed.
    let mut t = Tables::from_ebpf(&mut p.ebpf).expect("block tables");
    let verdicts: Vec<u32> = (1..=10u16).map(|port| p.run_at(SEC, &syn4(port))).collect();
    assert_eq!(verdicts[9], XDP_DROP, "the threshold packet is dropped: {verdicts:?}");
    let rows = t.blocks();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].net, rows[0].auto), (IpNet::host(A.into()), true));
    assert_eq!(rows[0].entry.detection(), Some(Detection::SynScan));
    assert_eq!((rows[0].entry.added_ns, rows[0].entry.expires_ns), (SEC, SEC + LONG));
    assert_eq!((rows[0].entry.packets, rows[0].entry.bytes), (1, 24));

    // Every protocol from the source is dropped and charged to the entry.
    let udp =
        |src: Ipv4Addr| Frame { payload: 12, ..Default::default() }.v4(src, V, &L4::Udp { sport: 5000, dport: 53 });
    let echo = Frame { payload: 56, ..Default::default() }.v4(A, V, &L4::Icmp { ty: 8, code: 0 });
    assert_eq!(p.run_at(2 * SEC, &udp(A)), XDP_DROP);
    assert_eq!(p.run_at(2 * SEC, &echo), XDP_DROP);
    let e = t.blocks()[0].entry;
    assert_eq!((e.packets, e.bytes, e.last_ns), (3, 24 + 20 + 64, 2 * SEC));

    // Four more addresses of the same set (IPv6: the families share the table), blocked from
    // user space (as a restore does).
    let set = t.auto_set(A.into());
    let same: Vec<Ipv6Addr> = candidates6().filter(|b| t.auto_set((*b).into()) == set).take(6).collect();
    let udp6 =
        |src: Ipv6Addr| Frame { payload: 12, ..Default::default() }.v6(src, V6, &L4::Udp { sport: 5000, dport: 53 });
    for (i, b) in same.iter().take(3).enumerate() {
        let entry =
            BlockEntry { added_ns: 3 * SEC + i as u64, reason: 1 + Detection::UdpScan as u8, ..Default::default() };
        t.block_auto(&IpNet::host((*b).into()), entry).expect("restore");
        assert_eq!(p.run_at(4 * SEC, &udp6(*b)), XDP_DROP, "{b} restored by user space");
    }
    assert_eq!(p.run_at(4 * SEC, &udp(A)), XDP_DROP, "the set holds four blocks");
    // A fifth restored block would give up one of them (the kernel's block of A, the oldest):
    // it goes to the blocklist as a host prefix, with its expiry and reason, and the daemon
    // turns the blocklist's lookup on (its presence flag).
    let entry = BlockEntry {
        added_ns: 5 * SEC,
        expires_ns: 90 * SEC,
        reason: 1 + Detection::UdpScan as u8,
        ..Default::default()
    };
    assert_eq!(t.block_auto(&IpNet::host(same[3].into()), entry).expect("restore"), Placed::Blocklist);
    let mut cfg = blocking_syn_scanners(LONG);
    cfg.flags |= t.presence_flags();
    loader::write_config(&mut p.ebpf, &cfg).expect("config");
    assert_eq!(p.run_at(6 * SEC, &udp(A)), XDP_DROP, "no restored block gave way: {:?}", t.blocks());
    assert_eq!(p.run_at(6 * SEC, &udp6(same[3])), XDP_DROP, "the fifth is blocked from the blocklist");
    let rows = t.blocks();
    let fifth: Vec<&BlockRow> = rows.iter().filter(|r| r.net == IpNet::host(same[3].into())).collect();
    assert_eq!(fifth.len(), 1, "{rows:?}");
    assert!(!fifth[0].auto);
    assert_eq!(
        (fifth[0].entry.expires_ns, fifth[0].entry.detection(), fifth[0].entry.packets),
        (90 * SEC, Some(Detection::UdpScan), 1)
    );
    let mut listed: Vec<IpNet> = rows.iter().filter(|r| r.auto).map(|r| r.net).collect();
    listed.sort_by_key(|n| n.addr());
    let mut want: Vec<IpNet> = same[..3].iter().map(|b| IpNet::host((*b).into())).collect();
    want.push(IpNet::host(A.into()));
    want.sort_by_key(|n| n.addr());
    assert_eq!(listed, want);

    // Unblocking from user space lets the source through at once.
    let gone = t.unblock(&IpNet::host(same[0].into()));
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].entry.packets, 1, "its one dropped datagram");
    assert_eq!(p.run_at(7 * SEC, &udp6(same[0])), XDP_PASS);

    // The kernel's own blocks: the first fills the way left empty, the next evicts the oldest.
    let syn6 = |src: Ipv6Addr, port: u16| Frame::default().v6(src, V6, &L4::syn(40000, port));
    for (b, at) in [(same[4], 8 * SEC), (same[5], 9 * SEC)] {
        let verdicts: Vec<u32> = (1..=10u16).map(|port| p.run_at(at, &syn6(b, port))).collect();
        assert_eq!(verdicts[9], XDP_DROP, "{b}: {verdicts:?}");
    }
    assert_eq!(p.run_at(10 * SEC, &udp(A)), XDP_PASS, "the oldest block gave way: {:?}", t.blocks());
    let mut listed: Vec<IpNet> = t.blocks().iter().filter(|r| r.auto).map(|r| r.net).collect();
    listed.sort_by_key(|n| n.addr());
    let want: Vec<IpNet> = [same[1], same[2], same[4], same[5]].iter().map(|b| IpNet::host((*b).into())).collect();
    assert_eq!(listed, want);
    assert_eq!(p.stat(stats::BLOCKED), 8);
}

/// `dry_run`: every verdict that would drop passes and is counted in DRY_RUN_PASSED, never in
/// DROPPED: the threshold packet of an auto-block (whose entry is made all the same, counting
/// what it would drop, and whose event says dry run), the blocked source's later packets on the
/// fast path and the slow one, a prefix blocked by hand, and a hardening option. Turning it off
/// drops them again.
#[test]
fn dry_run_passes_what_would_be_dropped_and_counts_it() {
    let mut cfg = blocking_syn_scanners(600 * SEC);
    cfg.flags |= global_flags::DRY_RUN | global_flags::DROP_SYNFIN;
    let mut p = Prog::load(&cfg);
    let mut t = Tables::from_ebpf(&mut p.ebpf).expect("block tables");
    let verdicts: Vec<u32> = (1..=10u16).map(|port| p.run_at(SEC, &syn4(port))).collect();
    assert_eq!(verdicts, [XDP_PASS; 10], "the threshold packet passes");
    let blocked: Vec<_> = p.events().into_iter().filter(|e| e.kind() == Some(EventKind::Blocked)).collect();
    assert_eq!(blocked.len(), 1, "{blocked:?}");
    assert_eq!(blocked[0].flags, ipscan_common::event::event_flags::DRY_RUN);
    let rows = t.blocks();
    assert_eq!((rows.len(), rows[0].net, rows[0].auto), (1, IpNet::host(A.into()), true), "{rows:?}");

    // The would-be blocked source's later packets: the fast path, and a tagged frame (slow path).
    let ack = |f: Frame| Frame { payload: 100, ..f }.v4(A, V, &L4::tcp(40000, 443, 0x10));
    assert_eq!(p.run_at(2 * SEC, &ack(Frame::default())), XDP_PASS);
    assert_eq!(p.run_at(2 * SEC, &ack(Frame { vlans: vec![100], ..Default::default() })), XDP_PASS);
    let e = t.blocks()[0].entry;
    assert_eq!((e.packets, e.bytes), (3, 24 + 120 + 120), "what the block would have dropped");

    // A prefix blocked by hand, and a hardening option (SYN+FIN from another source).
    t.block(&"198.19.0.0/16".parse().expect("net"), BlockEntry::default()).expect("block");
    cfg.flags |= t.presence_flags();
    loader::write_config(&mut p.ebpf, &cfg).expect("config");
    let other = Ipv4Addr::new(198, 19, 0, 1);
    assert_eq!(p.run_at(3 * SEC, &Frame::default().v4(other, V, &L4::tcp(40000, 443, 0x10))), XDP_PASS);
    let synfin = Frame::default().v4(Ipv4Addr::new(198, 18, 0, 50), V, &L4::tcp(40000, 80, 0x03));
    assert_eq!(p.run_at(3 * SEC, &synfin), XDP_PASS);
    assert_eq!(
        [stats::DRY_RUN_PASSED, stats::DROPPED, stats::BLOCKED, stats::HARDENED, stats::AUTOBLOCKS].map(|s| p.stat(s)),
        [5, 0, 3, 1, 1]
    );
    assert_eq!(p.stat(stats::PASSED), p.stat(stats::PACKETS));

    // Off again: the same packets are dropped.
    cfg.flags &= !global_flags::DRY_RUN;
    loader::write_config(&mut p.ebpf, &cfg).expect("config");
    assert_eq!(p.run_at(4 * SEC, &ack(Frame::default())), XDP_DROP);
    assert_eq!(p.run_at(4 * SEC, &synfin), XDP_DROP);
    assert_eq!((p.stat(stats::DRY_RUN_PASSED), p.stat(stats::DROPPED)), (5, 2));
}

/// Prefixes blocked by hand (BLOCK4/BLOCK6: `ipscan block add`, the OSSEC active response) are
/// looked up on the fast path: a blocked source's packets of any protocol are dropped there and
/// charged to the entry once, an allowlisted address inside a blocked prefix and every other
/// source pass, and a frame the fast path reads no sender from (a VLAN tag) is blocked by the
/// slow path as before. A source in both lists is charged to its auto-block.
#[test]
fn prefixes_blocked_by_hand_are_dropped_on_the_fast_path() {
    let mut p = Prog::load(&blocking_syn_scanners(600 * SEC));
    let mut t = Tables::from_ebpf(&mut p.ebpf).expect("block tables");
    let net4: IpNet = "198.18.0.0/24".parse().expect("net");
    let net6: IpNet = "2001:db8::/64".parse().expect("net");
    for net in [net4, net6] {
        t.block(&net, BlockEntry::default()).expect("block");
    }
    let spared = Ipv4Addr::new(198, 18, 0, 77);
    t.allow(&IpNet::host(spared.into()), ipscan_common::block::allow_reason::CONFIGURED).expect("allow");
    let mut cfg = Config::default();
    cfg.flags |= t.presence_flags();
    assert_eq!(cfg.flags & global_flags::BLOCKLIST, global_flags::BLOCKLIST);
    loader::write_config(&mut p.ebpf, &cfg).expect("config");

    let ack = |f: Frame, src: Ipv4Addr| Frame { payload: 100, ..f }.v4(src, V, &L4::tcp(40000, 443, 0x10));
    let udp = Frame { payload: 12, ..Default::default() }.v4(A, V, &L4::Udp { sport: 5000, dport: 53 });
    assert_eq!(p.run_at(SEC, &ack(Frame::default(), A)), XDP_DROP, "established TCP from a blocked prefix");
    assert_eq!(p.run_at(SEC, &udp), XDP_DROP, "UDP from it");
    assert_eq!(p.run_at(SEC, &Frame::default().v6(A6, V6, &L4::tcp(40000, 443, 0x10))), XDP_DROP, "IPv6");
    let tagged = ack(Frame { vlans: vec![100], ..Default::default() }, A);
    assert_eq!(p.run_at(SEC, &tagged), XDP_DROP, "a tagged frame, through the slow path");
    assert_eq!(p.run_at(SEC, &ack(Frame::default(), spared)), XDP_PASS, "allowlisted inside the prefix");
    assert_eq!(p.run_at(SEC, &ack(Frame::default(), Ipv4Addr::new(198, 19, 0, 1))), XDP_PASS, "outside");
    assert_eq!((p.stat(stats::BLOCKED), p.stat(stats::DROPPED), p.stat(stats::PACKETS)), (4, 4, 6));
    let entry = |t: &Tables, net: IpNet| {
        let rows = t.blocks();
        let row = rows.iter().find(|r| r.net == net).unwrap_or_else(|| panic!("{net} not listed: {rows:?}"));
        (row.entry.packets, row.entry.bytes, row.entry.last_ns)
    };
    assert_eq!(entry(&t, net4), (3, 120 + 20 + 120, SEC), "each drop charged once");
    assert_eq!(entry(&t, net6), (1, 20, SEC));

    // An address of the prefix auto-blocked too (as a restore puts it back): its drops are
    // charged to the auto-block, looked at first, and to nothing else.
    let both = Ipv4Addr::new(198, 18, 0, 9);
    let auto = BlockEntry { added_ns: SEC, expires_ns: 600 * SEC, ..Default::default() };
    assert_eq!(t.block_auto(&IpNet::host(both.into()), auto).expect("auto-block"), Placed::Auto);
    cfg.flags |= t.presence_flags();
    loader::write_config(&mut p.ebpf, &cfg).expect("config");
    assert_eq!(p.run_at(2 * SEC, &ack(Frame::default(), both)), XDP_DROP);
    // The slow path looks in the same order.
    assert_eq!(p.run_at(3 * SEC, &ack(Frame { vlans: vec![100], ..Default::default() }, both)), XDP_DROP);
    assert_eq!(entry(&t, IpNet::host(both.into())), (2, 240, 3 * SEC));
    assert_eq!(entry(&t, net4), (3, 260, SEC), "not charged twice");
    assert_eq!(p.stat(stats::BLOCKED), 6);
}

/// Tripwires: one probe (TCP SYN, UDP datagram, ICMP echo request) to a tripwire port or address
/// is a detection, and with `block tripwire` its source is dropped from that packet on; other
/// ports, other addresses, and packets of established flows to a tripwire port are nothing.
#[test]
fn one_probe_to_a_tripwire_is_a_detection_and_blocks() {
    use ipscan::config::{Settings, kernel::KernelSettings};
    let text = "tripwire tcp 23\ntripwire udp 161\ntripwire addr 198.18.0.250, 2001:db8::250\nblock tripwire 60s\n";
    let settings = Settings::parse(text, std::path::Path::new("t.conf")).expect("config");
    let mut k = KernelSettings::from_settings(&settings, &[]).expect("kernel settings");
    k.config.flags |= global_flags::AUTOBLOCKS;
    let mut p = Prog::load(&k.config);
    k.apply(&mut p.ebpf).expect("apply");
    let trap4 = Ipv4Addr::new(198, 18, 0, 250);
    let trap6: Ipv6Addr = "2001:db8::250".parse().expect("v6");
    let b = Ipv4Addr::new(198, 18, 0, 7);

    // Nothing for what is not a tripwire, nor for an established flow's segment to one.
    assert_eq!(p.run_at(SEC, &Frame::default().v4(b, V, &L4::syn(40000, 80))), XDP_PASS);
    assert_eq!(p.run_at(SEC, &Frame::default().v4(b, V, &L4::tcp(40000, 23, 0x10))), XDP_PASS);
    assert_eq!(p.run_at(SEC, &Frame::default().v4(b, V, &L4::Udp { sport: 5000, dport: 162 })), XDP_PASS);
    assert!(p.detections().is_empty());

    // A SYN to the tripwire port: detected and blocked on that packet, the next one dropped too.
    assert_eq!(p.run_at(2 * SEC, &Frame::default().v4(A, V, &L4::syn(40000, 23))), XDP_DROP);
    assert_eq!(p.run_at(2 * SEC, &Frame::default().v4(A, V, &L4::tcp(40001, 443, 0x10))), XDP_DROP, "blocked");
    let ev = p.detections();
    let kinds: Vec<(Option<EventKind>, u8)> = ev.iter().map(|e| (e.kind(), e.detection)).collect();
    let t = Detection::Tripwire as u8;
    assert_eq!(kinds, [(Some(EventKind::Detected), t), (Some(EventKind::Blocked), t)]);
    assert_eq!(ev[0].ports[..ev[0].nports as usize], [23]);

    // A ping to a tripwire address (IPv4, IPv6) and a UDP datagram to a tripwire port.
    let c = Ipv4Addr::new(198, 18, 0, 8);
    assert_eq!(p.run_at(3 * SEC, &Frame::default().v4(c, trap4, &L4::Icmp { ty: 8, code: 0 })), XDP_DROP);
    assert_eq!(p.run_at(3 * SEC, &Frame::default().v6(A6, trap6, &L4::Icmp { ty: 128, code: 0 })), XDP_DROP);
    let d = Ipv4Addr::new(198, 18, 0, 9);
    assert_eq!(p.run_at(3 * SEC, &Frame::default().v4(d, V, &L4::Udp { sport: 5000, dport: 161 })), XDP_DROP);
    let detected = p.detections().iter().filter(|e| e.kind() == Some(EventKind::Detected)).count();
    assert_eq!(detected, 3);
    assert_eq!(p.stat(stats::AUTOBLOCKS), 4);
}

/// Threat feed sets: a listed source is dropped on the fast path, IPv4 and IPv6, and counted for
/// the first set that lists its prefix; the allowlist wins; each import flips the trie the program
/// reads, so the verdicts after the second and third imports show that the trie left behind by the
/// one before had been caught up (a prefix of an earlier set still dropped, a removed set's
/// prefix no longer).
#[test]
fn feed_sets_drop_from_the_live_trie_and_each_import_catches_the_other_up() {
    use ipscan::kernel::feeds::NewSet;
    let mut p = Prog::load(&Config::default());
    let mut t = Tables::from_ebpf(&mut p.ebpf).expect("block tables");
    let nets = |list: &[&str]| list.iter().map(|n| n.parse::<IpNet>().expect("net")).collect::<Vec<_>>();
    let import = |t: &mut Tables, name: &str, list: &[IpNet]| {
        let (f, counts) = t.feeds_mut().expect("feeds");
        let set = NewSet { name, nets: list, expires_ns: 0, source: "test", loaded_unix_ns: 1 };
        f.import(counts, &set).expect("import")
    };
    let c = import(&mut t, "first", &nets(&["198.18.0.0/24", "2001:db8::/64"]));
    assert_eq!((c.added, c.removed, c.v4, c.v6), (2, 0, 1, 1));
    let mut cfg = Config::default();
    cfg.flags |= t.presence_flags();
    assert_eq!(cfg.flags & global_flags::BLOCKLIST, global_flags::BLOCKLIST, "a set turns the lookups on");
    loader::write_config(&mut p.ebpf, &cfg).expect("config");

    let ack = |src: Ipv4Addr| Frame { payload: 100, ..Default::default() }.v4(src, V, &L4::tcp(40000, 443, 0x10));
    let other = Ipv4Addr::new(198, 19, 7, 7);
    assert_eq!(p.run_at(SEC, &ack(A)), XDP_DROP, "listed by the first set");
    assert_eq!(p.run_at(SEC, &Frame::default().v6(A6, V6, &L4::tcp(40000, 443, 0x10))), XDP_DROP, "IPv6");
    assert_eq!(p.run_at(SEC, &ack(other)), XDP_PASS, "not listed yet");

    // The second import goes into the trie the first one left: it must hold the first set too.
    let c = import(&mut t, "second", &nets(&["198.18.0.0/24", "198.19.0.0/16"]));
    assert_eq!((c.added, c.removed, c.v4, c.v6), (2, 0, 2, 0));
    assert_eq!(p.run_at(2 * SEC, &ack(A)), XDP_DROP, "still listed, now by both sets");
    assert_eq!(p.run_at(2 * SEC, &ack(other)), XDP_DROP, "listed by the second set");
    let spared = Ipv4Addr::new(198, 19, 7, 8);
    t.allow(&IpNet::host(spared.into()), ipscan_common::block::allow_reason::CONFIGURED).expect("allow");
    assert_eq!(p.run_at(2 * SEC, &ack(spared)), XDP_PASS, "the allowlist wins");
    let drops = |t: &Tables| {
        t.feeds().expect("feeds").sets().iter().map(|s| (s.name.clone(), s.packets, s.bytes)).collect::<Vec<_>>()
    };
    assert_eq!(
        drops(&t),
        [("first".to_owned(), 3, 120 + 20 + 120), ("second".to_owned(), 1, 120)],
        "a prefix in both sets counts for the first"
    );

    // The first set removed: its own prefix goes, the shared one stays for the second set, in
    // the trie read now (the one the second import caught up).
    let gone = t.feeds_mut().map(|(f, c)| f.remove(c, "first")).expect("feeds").expect("remove");
    assert_eq!((gone.v4, gone.v6, gone.packets), (1, 1, 3));
    assert_eq!(p.run_at(3 * SEC, &Frame::default().v6(A6, V6, &L4::tcp(40000, 443, 0x10))), XDP_PASS);
    assert_eq!(p.run_at(3 * SEC, &ack(A)), XDP_DROP, "the second set lists it");
    assert_eq!(drops(&t), [("second".to_owned(), 2, 240)]);
    // Replaced by an empty list, the last set leaves nothing to look up.
    let c = import(&mut t, "second", &[]);
    assert_eq!((c.added, c.removed), (0, 2));
    assert_eq!(p.run_at(4 * SEC, &ack(A)), XDP_PASS);
    assert_eq!(t.presence_flags() & global_flags::BLOCKLIST, 0, "no set holds a prefix");
    let counts = t.counts().expect("BLOCKCOUNTS");
    let bucket = ipscan_common::block::counts::bucket(FAMILY_V4, u32::from_le_bytes(A.octets()));
    assert_eq!(counts.get(bucket), 0, "counted down when the prefixes left both tries");
}

/// BLOCKCOUNTS counts each prefix blocked by hand in the buckets it reaches into (an IPv4 /16,
/// every /16 of a shorter prefix, a hashed IPv6 /32, or the one count of shorter IPv6 prefixes);
/// replacing a prefix does not count it twice, unblocking and the expiry sweep count it down; and
/// the program looks a sender up in BLOCK4/BLOCK6 only when its bucket counts one.
#[test]
fn prefixes_blocked_by_hand_are_counted_in_their_buckets() {
    use ipscan_common::block::counts;
    let mut p = Prog::load(&Config { flags: global_flags::BLOCKLIST, ..Config::default() });
    let ack4 = |src: Ipv4Addr| Frame { payload: 100, ..Default::default() }.v4(src, V, &L4::tcp(40000, 443, 0x10));
    let ack6 = |src: Ipv6Addr| Frame::default().v6(src, V6, &L4::tcp(40000, 443, 0x10));

    // The program trusts the counts: a prefix put into BLOCK4 past BLOCKCOUNTS (as kept from an
    // ipscan before it) is not looked up until the loader's pass counts it.
    {
        let mut raw: aya::maps::LpmTrie<_, ipscan_common::block::Block4Data, BlockEntry> =
            aya::maps::LpmTrie::try_from(p.map_mut(ipscan_common::maps::BLOCK4)).expect("trie");
        let key = aya::maps::lpm_trie::Key::new(24, ipscan_common::block::block4_data([198, 18, 7, 0]));
        raw.insert(&key, BlockEntry::default(), 0).expect("insert");
    }
    let src = Ipv4Addr::new(198, 18, 7, 1);
    assert_eq!(p.run_at(SEC, &ack4(src)), XDP_PASS, "its bucket counts none: not looked up");
    assert_eq!(ipscan::kernel::tables::count_kept_prefixes(&p.ebpf).expect("count"), 1);
    assert_eq!(p.run_at(SEC, &ack4(src)), XDP_DROP, "counted by the loader's pass");

    let mut t = Tables::from_ebpf(&mut p.ebpf).expect("block tables");
    assert_eq!(t.unblock(&"198.18.7.0/24".parse().expect("net")).len(), 1);
    let net = |s: &str| -> IpNet { s.parse().expect("net") };
    for n in ["198.18.0.0/15", "198.18.5.0/24", "2001:db8:1::/48", "2001::/16"] {
        t.block(&net(n), BlockEntry::default()).expect("block");
    }
    let b18 = counts::bucket(FAMILY_V4, u32::from_le_bytes([198, 18, 0, 0]));
    let b19 = counts::bucket(FAMILY_V4, u32::from_le_bytes([198, 19, 0, 0]));
    let b6 = counts::bucket(FAMILY_V6, u32::from_le_bytes([0x20, 0x01, 0x0d, 0xb8]));
    // An IPv6 bucket that only the /16 reaches into (2001:ffff::/32).
    let wide = counts::bucket(FAMILY_V6, u32::from_le_bytes([0x20, 0x01, 0xff, 0xff]));
    assert_ne!(wide, b6);
    let counts = |t: &Tables| {
        let c = t.counts().expect("BLOCKCOUNTS");
        (c.get(b18), c.get(b19), c.get(b6), c.get(wide))
    };
    assert_eq!(counts(&t), (2, 1, 2, 1), "the IPv6 /16 in every IPv6 bucket");
    // The same prefix again (a new expiry, as the OSSEC active response re-adds): replaced.
    t.block(&net("198.18.5.0/24"), BlockEntry::manual(0, 600 * SEC)).expect("block");
    assert_eq!(counts(&t), (2, 1, 2, 1), "replaced, not counted again");
    let rows = t.blocks();
    assert_eq!(rows.iter().filter(|r| r.net == net("198.18.5.0/24")).count(), 1, "{rows:?}");

    assert_eq!(p.run_at(SEC, &ack4(Ipv4Addr::new(198, 19, 3, 4))), XDP_DROP, "the /15's other /16");
    assert_eq!(p.run_at(SEC, &ack4(Ipv4Addr::new(198, 18, 5, 9))), XDP_DROP);
    assert_eq!(p.run_at(SEC, &ack4(Ipv4Addr::new(198, 20, 0, 1))), XDP_PASS, "outside");
    assert_eq!(p.run_at(SEC, &ack6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 5))), XDP_DROP);
    assert_eq!(p.run_at(SEC, &ack6(Ipv6Addr::new(0x2001, 0xffff, 0, 0, 0, 0, 0, 1))), XDP_DROP, "under the /16");
    assert_eq!(p.run_at(SEC, &ack6(Ipv6Addr::new(0x2002, 0xdb8, 0, 0, 0, 0, 0, 1))), XDP_PASS, "outside");

    // Unblocking counts down: 198.19/16 counts nothing, and its senders pass.
    assert_eq!(t.unblock(&net("198.18.0.0/15")).len(), 1);
    assert_eq!(t.unblock(&net("2001::/16")).len(), 1);
    assert_eq!(counts(&t), (1, 0, 1, 0));
    assert_eq!(p.run_at(2 * SEC, &ack4(Ipv4Addr::new(198, 19, 3, 4))), XDP_PASS);
    assert_eq!(p.run_at(2 * SEC, &ack4(Ipv4Addr::new(198, 18, 5, 9))), XDP_DROP, "the /24 stays");
    // The expiry sweep counts down what it removes (the /24 was given 600 s).
    assert!(t.sweep(601 * SEC).iter().any(|r| r.net == net("198.18.5.0/24")));
    assert_eq!(counts(&t), (0, 0, 1, 0));
    assert_eq!(t.unblock(&net("2001:db8:1::/48")).len(), 1);
    assert_eq!(counts(&t), (0, 0, 0, 0));
    assert_eq!(p.stat(stats::MAP_ERRORS), 0);
}

/// ALLOWCOUNTS does for the allowlist what BLOCKCOUNTS does for the blocks: an allowlisted
/// address inside a prefix blocked by hand passes, the allowlist is looked up only in buckets
/// that count an allow (an allow put past the counts, as kept from an ipscan before them, is
/// not honoured until the loader's pass counts it), and an allow that goes is counted down.
#[test]
fn allows_are_counted_in_their_buckets() {
    use ipscan_common::block::{allow_reason, counts};
    let mut p = Prog::load(&Config { flags: global_flags::BLOCKLIST, ..Config::default() });
    let ack4 = |src: Ipv4Addr| Frame { payload: 100, ..Default::default() }.v4(src, V, &L4::tcp(40000, 443, 0x10));
    let ack6 = |src: Ipv6Addr| Frame::default().v6(src, V6, &L4::tcp(40000, 443, 0x10));
    let net = |s: &str| -> IpNet { s.parse().expect("net") };
    let gw = Ipv4Addr::new(198, 18, 7, 1);
    // A block and an allow inside it, both put past their counts; the block counted.
    {
        let mut raw: aya::maps::LpmTrie<_, ipscan_common::block::Block4Data, BlockEntry> =
            aya::maps::LpmTrie::try_from(p.map_mut(ipscan_common::maps::BLOCK4)).expect("trie");
        let key = aya::maps::lpm_trie::Key::new(16, ipscan_common::block::block4_data([198, 18, 0, 0]));
        raw.insert(&key, BlockEntry::default(), 0).expect("insert");
        let mut raw: aya::maps::LpmTrie<_, [u8; 4], u32> =
            aya::maps::LpmTrie::try_from(p.map_mut(ipscan_common::maps::ALLOW4)).expect("trie");
        raw.insert(&aya::maps::lpm_trie::Key::new(32, gw.octets()), allow_reason::GATEWAY, 0).expect("insert");
    }
    assert_eq!(ipscan::kernel::tables::count_kept_prefixes(&p.ebpf).expect("count"), 1);
    assert_eq!(p.run_at(SEC, &ack4(gw)), XDP_DROP, "its bucket counts no allow: not looked up");
    assert_eq!(ipscan::kernel::tables::count_kept_allows(&p.ebpf).expect("count"), 1);
    assert_eq!(p.run_at(SEC, &ack4(gw)), XDP_PASS, "counted by the loader's pass");
    assert_eq!(p.run_at(SEC, &ack4(Ipv4Addr::new(198, 18, 7, 2))), XDP_DROP, "its neighbour is not allowed");
    let mut t = Tables::from_ebpf(&mut p.ebpf).expect("block tables");
    t.block(&net("2001:db8::/32"), BlockEntry::default()).expect("block");

    let b18 = counts::bucket(FAMILY_V4, u32::from_le_bytes([198, 18, 0, 0]));
    let b6 = counts::bucket(FAMILY_V6, u32::from_le_bytes([0x20, 0x01, 0x0d, 0xb8]));
    let counts = |t: &Tables| {
        let c = t.allow_counts().expect("ALLOWCOUNTS");
        (c.get(b18), c.get(b6))
    };
    assert_eq!(counts(&t), (1, 0));
    let host6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7);
    t.allow(&net("2001:db8::7/128"), allow_reason::MANUAL).expect("allow");
    t.allow(&net("2001:db8::7/128"), allow_reason::NAMESERVER).expect("allow");
    assert_eq!(counts(&t), (1, 1), "a second reason is not a second allow");
    assert_eq!(p.run_at(SEC, &ack6(host6)), XDP_PASS);
    assert_eq!(p.run_at(SEC, &ack6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 8))), XDP_DROP);

    // One reason taken away: still allowed and counted; the last: gone and counted down.
    assert!(t.disallow(&net("2001:db8::7/128"), allow_reason::MANUAL));
    assert_eq!(counts(&t), (1, 1));
    assert_eq!(p.run_at(2 * SEC, &ack6(host6)), XDP_PASS);
    assert!(t.disallow(&net("2001:db8::7/128"), allow_reason::NAMESERVER));
    assert_eq!(counts(&t), (1, 0));
    assert_eq!(p.run_at(2 * SEC, &ack6(host6)), XDP_DROP);
    assert_eq!(t.flush_allows(allow_reason::GATEWAY), 1);
    assert_eq!(counts(&t), (0, 0));
    assert_eq!(p.run_at(2 * SEC, &ack4(gw)), XDP_DROP);
    assert_eq!(p.stat(stats::MAP_ERRORS), 0);
}

/// AUTOTAGS tells the fast path which ways of a set to compare: an AUTOBLOCK kept while its
/// tags were made anew (a removed pin, an ipscan from before the tags) has every block tagged
/// by the loader before the program is attached, and its sources are dropped again.
#[test]
fn autoblocks_kept_without_their_tags_are_tagged_by_the_loader() {
    let mut p = Prog::load(&blocking_syn_scanners(600 * SEC));
    let verdicts: Vec<u32> = (1..=10u16).map(|port| p.run_at(SEC, &syn4(port))).collect();
    assert_eq!(verdicts[9], XDP_DROP, "{verdicts:?}");
    let udp = Frame { payload: 12, ..Default::default() }.v4(A, V, &L4::Udp { sport: 5000, dport: 53 });
    assert_eq!(p.run_at(2 * SEC, &udp), XDP_DROP, "tagged by the program that blocked it");

    // AUTOTAGS made anew: the fast path compares no way of the set, and the source gets through.
    let clear_tags = |p: &mut Prog| {
        let mut a: aya::maps::Array<_, u64> =
            aya::maps::Array::try_from(p.map_mut(ipscan_common::maps::AUTOTAGS)).expect("array");
        for i in 0..ipscan_common::block::autoblock::SETS {
            a.set(i, 0, 0).expect("write tags");
        }
    };
    clear_tags(&mut p);
    assert_eq!(p.run_at(3 * SEC, &udp), XDP_PASS, "no tag, no comparison");

    // The loader's pass (run before attaching) tags every way that holds an address.
    assert_eq!(ipscan::kernel::tables::tag_kept_blocks(&p.ebpf).expect("tags"), 1);
    assert_eq!(p.run_at(4 * SEC, &udp), XDP_DROP, "found through its tag again");
    assert_eq!(p.stat(stats::BLOCKED), 2);
    assert_eq!(p.stat(stats::MAP_ERRORS), 0);
}

/// AUTOMARKS spares most senders that are not blocked the AUTOBLOCK lookup: the kernel marks
/// the bucket (IPv4 /16) of a source it blocks, a restore marks its block's, the program trusts
/// the marks (a block whose mark is gone is not found, until the loader's pass marks it again),
/// and user space takes a mark away only when no block of its bucket is left.
#[test]
fn autoblock_marks_go_with_their_blocks() {
    let mut p = Prog::load(&blocking_syn_scanners(600 * SEC));
    let verdicts: Vec<u32> = (1..=10u16).map(|port| p.run_at(SEC, &syn4(port))).collect();
    assert_eq!(verdicts[9], XDP_DROP, "{verdicts:?}");
    let udp =
        |src: Ipv4Addr| Frame { payload: 12, ..Default::default() }.v4(src, V, &L4::Udp { sport: 5000, dport: 53 });
    assert_eq!(p.run_at(2 * SEC, &udp(A)), XDP_DROP);

    // Marks taken away behind the program's back: the blocked source gets through.
    let (word, lane) = ipscan_common::block::autoblock::mark_of(FAMILY_V4, u32::from_le_bytes(A.octets()));
    let other = Ipv4Addr::new(198, 20, 0, 1);
    {
        let mut marks: aya::maps::Array<_, u64> =
            aya::maps::Array::try_from(p.map_mut(ipscan_common::maps::AUTOMARKS)).expect("array");
        assert_eq!(marks.get(&word, 0).expect("read") >> (8 * lane) & 0xff, 1, "marked by the kernel");
        marks.set(word, 0, 0).expect("write marks");
        // A mark left clearing by a daemon that stopped between its two passes.
        let (w, l) = ipscan_common::block::autoblock::mark_of(FAMILY_V4, u32::from_le_bytes(other.octets()));
        assert_ne!(w, word);
        marks.set(w, 2u64 << (8 * l), 0).expect("write marks");
    }
    assert_eq!(p.run_at(3 * SEC, &udp(A)), XDP_PASS, "no mark, no lookup");
    assert_eq!(ipscan::kernel::tables::tag_kept_blocks(&p.ebpf).expect("tags"), 1);
    assert_eq!(p.run_at(3 * SEC, &udp(A)), XDP_DROP, "marked again by the loader's pass");

    let mut t = Tables::from_ebpf(&mut p.ebpf).expect("block tables");
    let b = Ipv4Addr::new(198, 19, 0, 5);
    assert_eq!((t.marked(b.into()), t.marked(other.into())), (Some(false), Some(true)));
    let entry = BlockEntry { added_ns: 3 * SEC, expires_ns: 600 * SEC, ..Default::default() };
    assert_eq!(t.block_auto(&IpNet::host(b.into()), entry).expect("restore"), Placed::Auto);
    assert_eq!(t.marked(b.into()), Some(true), "a restore marks");
    assert_eq!(p.run_at(4 * SEC, &udp(b)), XDP_DROP);
    assert_eq!(t.unmark_unused(), 1, "the mark left clearing goes; both blocks' buckets stay marked");
    assert_eq!((t.marked(other.into()), t.marked(b.into()), t.marked(A.into())), (Some(false), Some(true), Some(true)));

    // Lifted, a block leaves its mark until user space takes it away; A's stays.
    assert_eq!(t.unblock(&IpNet::host(b.into())).len(), 1);
    assert_eq!(t.marked(b.into()), Some(true));
    assert_eq!(t.unmark_unused(), 1);
    assert_eq!((t.marked(b.into()), t.marked(A.into())), (Some(false), Some(true)));
    assert_eq!(p.run_at(5 * SEC, &udp(b)), XDP_PASS);
    assert_eq!(p.run_at(5 * SEC, &udp(A)), XDP_DROP);
    assert_eq!(t.unblock(&IpNet::host(A.into())).len(), 1);
    assert_eq!(t.unmark_unused(), 1);
    assert_eq!(t.marked(A.into()), Some(false));
    assert_eq!(p.run_at(6 * SEC, &udp(A)), XDP_PASS);
    assert_eq!(p.stat(stats::MAP_ERRORS), 0);
}

/// A blocked source's drops are counted on their CPU and reach the block's entry in batches
/// ([`PendingDrops`]); what user space lists, and hands over when the block goes, is every drop
/// however many are still pending, another block's drops meanwhile are counted on its own
/// entry, and a later block of the address starts from its own drops.
#[test]
fn blocked_drops_are_counted_exactly_while_some_are_pending() {
    let mut p = Prog::load(&blocking_syn_scanners(600 * SEC));
    let mut t = Tables::from_ebpf(&mut p.ebpf).expect("block tables");
    let verdicts: Vec<u32> = (1..=10u16).map(|port| p.run_at(SEC, &syn4(port))).collect();
    assert_eq!(verdicts[9], XDP_DROP, "{verdicts:?}");
    let udp =
        |src: Ipv4Addr| Frame { payload: 12, ..Default::default() }.v4(src, V, &L4::Udp { sport: 5000, dport: 53 });
    let listed = |t: &Tables, src: Ipv4Addr| {
        let rows = t.blocks();
        let row = rows
            .iter()
            .find(|r| r.net == IpNet::host(src.into()))
            .unwrap_or_else(|| panic!("{src} not listed: {rows:?}"));
        (row.entry.packets, row.entry.bytes)
    };
    // 40 drops: one batch reaches the entry, 8 are still pending on this CPU.
    let n = PendingDrops::FLUSH_AT + 8;
    for _ in 0..n {
        assert_eq!(p.run_at(2 * SEC, &udp(A)), XDP_DROP);
    }
    assert_eq!(listed(&t, A), (1 + n, 24 + 20 * n), "the threshold SYN and every datagram");
    // Another blocked address while A's drops are pending: counted on its own entry.
    let b = Ipv4Addr::new(198, 18, 0, 7);
    let entry = BlockEntry { added_ns: 3 * SEC, expires_ns: 600 * SEC, ..Default::default() };
    assert_eq!(t.block_auto(&IpNet::host(b.into()), entry).expect("block"), Placed::Auto);
    for _ in 0..5 {
        assert_eq!(p.run_at(3 * SEC, &udp(b)), XDP_DROP);
    }
    assert_eq!(listed(&t, b), (5, 100));
    assert_eq!(listed(&t, A), (1 + n, 24 + 20 * n));
    // The block goes: user space gets every drop, pending ones included.
    let gone = t.unblock(&IpNet::host(A.into()));
    assert_eq!(gone.len(), 1);
    assert_eq!((gone[0].entry.packets, gone[0].entry.bytes), (1 + n, 24 + 20 * n));
    assert_eq!(p.run_at(4 * SEC, &udp(A)), XDP_PASS);
    // A new block of A (its old slot is free again): A's old pending drops are not its.
    let entry = BlockEntry { added_ns: 5 * SEC, expires_ns: 600 * SEC, ..Default::default() };
    assert_eq!(t.block_auto(&IpNet::host(A.into()), entry).expect("block"), Placed::Auto);
    assert_eq!(listed(&t, A), (0, 0), "the old block's pending drops are still on the CPU");
    for _ in 0..3 {
        assert_eq!(p.run_at(6 * SEC, &udp(A)), XDP_DROP);
    }
    assert_eq!(listed(&t, A), (3, 60));
    assert_eq!(listed(&t, b), (5, 100));
    // Both expire with A's 3 drops still pending; a drop of a third block before user space
    // sweeps them does not take A's pending drops away: the sweep hands over all of them.
    let c = Ipv4Addr::new(198, 18, 0, 8);
    let entry = BlockEntry { added_ns: 7 * SEC, ..Default::default() };
    assert_eq!(t.block_auto(&IpNet::host(c.into()), entry).expect("block"), Placed::Auto);
    assert_eq!(p.run_at(700 * SEC, &udp(A)), XDP_PASS, "A's block has expired");
    assert_eq!(p.run_at(700 * SEC, &udp(c)), XDP_DROP);
    let mut swept: Vec<(IpNet, u64, u64)> =
        t.sweep(700 * SEC).iter().map(|r| (r.net, r.entry.packets, r.entry.bytes)).collect();
    swept.sort_by_key(|r| r.0.addr());
    assert_eq!(swept, vec![(IpNet::host(A.into()), 3, 60), (IpNet::host(b.into()), 5, 100)]);
    assert_eq!(listed(&t, c), (1, 20));
    assert_eq!(p.stat(stats::BLOCKED), n + 5 + 3 + 1);
}

/// A scanner whose block a full AUTOBLOCK set gave up is not left free in its mode: its scan
/// state goes with the block, so that it is detected and blocked again on its tenth new port
/// (before, it crossed no threshold again until its mode lapsed, and scanned on unblocked).
#[test]
fn a_scanner_whose_block_was_given_up_is_detected_and_blocked_again() {
    let mut p = Prog::load(&blocking_syn_scanners(600 * SEC));
    let t = Tables::from_ebpf(&mut p.ebpf).expect("block tables");
    // Four IPv6 scanners of A's set (the families share the table).
    let set = t.auto_set(A.into());
    let others: Vec<Ipv6Addr> = candidates6().filter(|b| t.auto_set((*b).into()) == set).take(4).collect();
    let syn = |src: Ipv4Addr, port: u16| Frame::default().v4(src, V, &L4::syn(40000, port));
    let syn6 = |src: Ipv6Addr, port: u16| Frame::default().v6(src, V6, &L4::syn(40000, port));
    // A, then the four others, each blocked on its tenth port.
    let verdicts: Vec<u32> = (1..=10u16).map(|port| p.run_at(SEC, &syn(A, port))).collect();
    assert_eq!(verdicts[9], XDP_DROP, "{verdicts:?}");
    for (i, src) in others.iter().enumerate() {
        let at = (2 + i as u64) * SEC;
        let verdicts: Vec<u32> = (1..=10u16).map(|port| p.run_at(at, &syn6(*src, port))).collect();
        assert_eq!(verdicts[9], XDP_DROP, "{src}: {verdicts:?}");
    }
    assert_eq!(p.stat(stats::AUTOBLOCK_EVICTIONS), 1, "the fifth block gave up A's: {:?}", t.blocks());
    assert!(!t.blocks().iter().any(|r| r.net == IpNet::host(A.into())));
    assert_eq!(p.source(&key4(A, Detection::SynScan)), None, "A's SYN scan state went with its block");
    p.detections();

    // A scans on: it is on probation again, crosses the threshold on its tenth new port and is
    // dropped from there on (its new block gives up the now oldest, the first of the others).
    let verdicts: Vec<u32> = (11..=21u16).map(|port| p.run_at(10 * SEC, &syn(A, port))).collect();
    assert_eq!(verdicts[..9], [XDP_PASS; 9], "{verdicts:?}");
    assert_eq!(verdicts[9..], [XDP_DROP; 2], "{verdicts:?}");
    let kinds: Vec<(EventKind, u8)> = p
        .detections()
        .iter()
        .filter(|e| e.key.addr[..4] == A.octets())
        .filter_map(|e| Some((e.kind()?, e.detection)))
        .collect();
    // The port scan (no block policy) kept its state: its fifteenth port is A's fifth new one.
    assert_eq!(
        kinds,
        [
            (EventKind::Detected, Detection::PortScan as u8),
            (EventKind::Detected, Detection::SynScan as u8),
            (EventKind::Blocked, Detection::SynScan as u8)
        ]
    );
    assert!(t.blocks().iter().any(|r| r.net == IpNet::host(A.into())), "A blocked again");
    assert_eq!(p.stat(stats::AUTOBLOCK_EVICTIONS), 2);
    let first = SourceKey::new(others[0].octets(), FAMILY_V6, Detection::SynScan);
    assert_eq!(p.source(&first), None, "the first of the others gave way to A");
}

/// A UDP probe with TTL 1 gets its traceroute line only (iplog's UDP handler returned there);
/// a TCP probe, which iplog did not call a traceroute, keeps its connection-attempt line.
#[test]
fn a_udp_traceroute_probe_gets_no_datagram_line() {
    let mut p = Prog::load(&Config::default());
    let mut lines = |f: &[u8]| -> Vec<PacketLine> {
        p.run_at(SEC, f);
        p.events()
            .iter()
            .filter(|e| e.kind() == Some(EventKind::Packet))
            .filter_map(|e| PacketLine::from_u8(e.line))
            .collect()
    };
    let udp =
        |ttl: u8| Frame { ttl, payload: 32, ..Default::default() }.v4(A, V, &L4::Udp { sport: 40000, dport: 33434 });
    assert_eq!(lines(&udp(1)), [PacketLine::Traceroute]);
    assert_eq!(lines(&udp(2)), [PacketLine::UdpDgram], "a second hop's probe is an ordinary datagram here");
    let syn = Frame { ttl: 1, ..Default::default() }.v4(A, V, &L4::syn(40001, 80));
    assert_eq!(lines(&syn), [PacketLine::Traceroute, PacketLine::TcpAttempt]);
}

/// Two scanners whose probation keys share a set, probing in lockstep, are both detected on
/// their tenth port: each keeps its own slot of the set (with one slot per key they displaced
/// each other at every probe and were never detected).
#[test]
fn colliding_scanners_in_lockstep_are_both_detected() {
    let mut p = Prog::load(&Config::default());
    // The program draws the probation seed with its first tracked packet.
    let other = Ipv4Addr::new(198, 18, 9, 9);
    p.run_at(SEC, &Frame::default().v4(other, V, &L4::syn(40000, 7)));
    let seed = p.probation_seed();
    assert_ne!(seed, 0);
    // IPv6 scanners (see candidates6).
    let set = |a: Ipv6Addr| ProbeSet::place(&key6(a, Detection::SynScan), seed).set;
    let b = candidates6().find(|b| *b != A6 && set(*b) == set(A6)).expect("a colliding source");
    for port in 1..=10u16 {
        for src in [A6, b] {
            p.run_at(2 * SEC + u64::from(port), &Frame::default().v6(src, V6, &L4::syn(40000, port)));
        }
    }
    let mut found: Vec<(Ipv6Addr, u8)> =
        p.detections().iter().map(|e| (Ipv6Addr::from(e.key.addr), e.detection)).collect();
    found.sort();
    assert_eq!(found, [(A6, Detection::SynScan as u8), (b, Detection::SynScan as u8)]);
}

/// Empties PROBATION (every set and the seed slot), as a restart that kept the SOURCES pin but
/// made PROBATION anew leaves it.
fn new_probation(p: &mut Prog) {
    use ipscan_common::probation::PROBATION_SETS;
    let mut a: aya::maps::Array<_, ProbeSet> =
        aya::maps::Array::try_from(p.map_mut(ipscan_common::maps::PROBATION)).expect("array");
    for i in 0..=PROBATION_SETS {
        a.set(i, ProbeSet::default(), 0).expect("write set");
    }
}

/// Flood detections go through the admission filter too: a flooder is found in SOURCES through
/// its bit, a new source costs no SOURCES lookup, and the loader's rebuild covers flood keys.
#[test]
fn a_flooder_kept_without_its_probation_array_is_found_through_the_rebuild() {
    let k = key4(A, Detection::PingFlood);
    let echo = Frame::default().v4(A, V, &L4::Icmp { ty: 8, code: 0 });
    let packets = |p: &Prog| p.source(&k).expect("in SOURCES").packets;
    let mut p = Prog::load(&per_source());
    for _ in 0..3 {
        p.run_at(SEC, &echo);
    }
    assert_eq!(packets(&p), 3, "admitted on its second packet and counted there");

    // PROBATION made anew: the flooder's bit is clear under the new seed, so its next echo
    // is taken for a new source's and counted on probation, SOURCES not looked at.
    new_probation(&mut p);
    p.run_at(2 * SEC, &echo);
    assert_eq!(packets(&p), 3, "the filter is on: a clear bit skips SOURCES, for floods too");
    assert_eq!(p.probe(&k).map(|pr| pr.packets), Some(1), "counted on probation instead");

    // After the loader's rebuild the flooder is found in SOURCES again, and the count goes on.
    new_probation(&mut p);
    assert_eq!(ipscan::kernel::loader::admission_filter(&mut p.ebpf).expect("rebuild"), p.source_count());
    p.run_at(3 * SEC, &echo);
    assert_eq!(packets(&p), 4, "found in SOURCES again");
    assert!(p.probe(&k).is_none(), "nothing on probation");
    assert_eq!(p.stat(stats::MAP_ERRORS), 0);
}

#[test]
fn sources_kept_without_their_probation_array_are_still_found() {
    use ipscan_common::probation::{PROBATION_SEED_SLOT, filter};
    let k = key4(A, Detection::SynScan);
    let packets = |p: &Prog| p.source(&k).expect("in SOURCES").packets;
    let mut p = Prog::load(&per_source());
    for port in [22, 80, 443] {
        p.run_at(SEC, &syn4(port));
    }
    assert_eq!(packets(&p), 3, "admitted on its second port and counted there");
    // A new port of a source that has no probation: found through its admission-filter bit.
    p.run_at(SEC, &syn4(444));
    assert_eq!(packets(&p), 4);

    // PROBATION made anew under a kept SOURCES: the program draws a new seed, under which the
    // scanner's bit is clear, so it takes the scanner for a new source and counts its next port
    // on probation. This is what the loader's rebuild is for.
    new_probation(&mut p);
    p.run_at(2 * SEC, &syn4(1000));
    assert_eq!(packets(&p), 4, "the filter is on: a clear bit skips SOURCES");
    assert_eq!(p.probe(&k).map(|pr| pr.dport), Some(1000), "counted on probation instead");

    // The loader's rebuild (run before attaching) gives every SOURCES key its bit.
    new_probation(&mut p);
    let marked = ipscan::kernel::loader::admission_filter(&mut p.ebpf).expect("rebuild");
    assert_eq!(marked, p.source_count(), "one bit per SOURCES key");
    assert_ne!(p.probation_seed(), 0, "the loader drew the seed");
    p.run_at(3 * SEC, &syn4(1001));
    assert_eq!(packets(&p), 5, "found in SOURCES again");
    let s = p.source(&k).expect("state");
    assert_eq!(s.distinct, 5, "22, 80, 443, 444, 1001 (1000 went to probation before the rebuild)");

    // A PROBATION array from before the filter (seed drawn, filter undecided): the rebuild
    // keeps its seed, marks the keys and turns the filter on; an on filter is left alone.
    new_probation(&mut p);
    {
        let mut a: aya::maps::Array<_, ProbeSet> =
            aya::maps::Array::try_from(p.map_mut(ipscan_common::maps::PROBATION)).expect("array");
        let mut seed = ProbeSet::default();
        seed.set_seed(0x1234_5679, filter::UNDECIDED);
        a.set(PROBATION_SEED_SLOT, seed, 0).expect("seed");
    }
    assert_eq!(ipscan::kernel::loader::admission_filter(&mut p.ebpf).expect("rebuild"), p.source_count());
    assert_eq!(p.probation_seed(), 0x1234_5679, "the seed is kept");
    assert_eq!(ipscan::kernel::loader::admission_filter(&mut p.ebpf).expect("again"), 0, "already on");
    p.run_at(4 * SEC, &syn4(1002));
    assert_eq!(packets(&p), 6);
    let seed_slot = {
        let a: aya::maps::Array<_, ProbeSet> =
            aya::maps::Array::try_from(p.ebpf.map(ipscan_common::maps::PROBATION).expect("map")).expect("array");
        a.get(&PROBATION_SEED_SLOT, 0).expect("seed entry")
    };
    assert_eq!(seed_slot.filter_state(), filter::ON);
}

/// Sweeps (`set tcp_sweep`, `udp_sweep`, `ping_sweep`): one source's probes to many hosts count
/// distinct hosts; the threshold packet's event names the ports swept, the count and the first
/// hosts, the first of them rebuilt from what probation kept. Off by default; a flood of new
/// sources that each probe one host stays on probation.
#[test]
fn sweeps_count_hosts_and_name_the_first_of_them() {
    use ipscan::config::{Settings, kernel::KernelSettings};
    let load = |text: &str| {
        let settings = Settings::parse(text, std::path::Path::new("t.conf")).expect("config");
        let k = KernelSettings::from_settings(&settings, &[]).expect("kernel settings");
        let mut p = Prog::load(&k.config);
        k.apply(&mut p.ebpf).expect("apply");
        p
    };
    let host4 = |i: u8| Ipv4Addr::new(198, 18, 1, i);
    let host6 = |i: u16| Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, i);
    let words = |ip: std::net::IpAddr| {
        let b: [u8; 16] = match ip {
            std::net::IpAddr::V4(a) => {
                let mut b = [0; 16];
                b[..4].copy_from_slice(&a.octets());
                b
            }
            std::net::IpAddr::V6(a) => a.octets(),
        };
        core::array::from_fn::<u32, 4, _>(|i| u32::from_ne_bytes(b[4 * i..4 * i + 4].try_into().expect("4")))
    };

    // Off by default: ten hosts probed, nothing.
    let mut off = load("");
    for i in 1..=12 {
        off.run_at(SEC, &Frame::default().v4(A, host4(i), &L4::syn(40000, 22)));
    }
    assert!(off.detections().iter().all(|e| !Detection::from_u8(e.detection).expect("kind").counts_hosts()));

    let mut p = load("set tcp_sweep\nset udp_sweep\nset ping_sweep\nthreshold udp_sweep 3\n");
    // Ten SYNs to port 22 of ten hosts (the second one twice: one host): the tenth host crosses.
    for i in 1..=10u8 {
        for _ in 0..if i == 2 { 2 } else { 1 } {
            assert_eq!(p.run_at(SEC + i as u64, &Frame::default().v4(A, host4(i), &L4::syn(40000, 22))), XDP_PASS);
        }
        let sweeps: Vec<_> = p.detections().into_iter().filter(|e| e.detection == Detection::TcpSweep as u8).collect();
        assert_eq!(sweeps.len(), (i == 10) as usize, "host {i}");
        if let Some(ev) = sweeps.first() {
            assert_eq!((ev.distinct, ev.packets), (10, 11));
            assert_eq!(ev.sports(), [22], "the port swept");
            let hosts: Vec<[u32; 4]> = ev.hosts().copied().collect();
            let want: Vec<[u32; 4]> = (1..=8).map(|i| words(host4(i).into())).collect();
            assert_eq!(hosts, want, "the first eight hosts, the first rebuilt from probation");
        }
    }
    // UDP to two ports of three IPv6 hosts in one /96.
    for (i, port) in [(1u16, 161u16), (2, 162), (3, 161)] {
        p.run_at(2 * SEC, &Frame::default().v6(A6, host6(i), &L4::Udp { sport: 5000, dport: port }));
    }
    let ev = p.detections().into_iter().find(|e| e.detection == Detection::UdpSweep as u8).expect("UDP sweep");
    assert_eq!((ev.distinct, ev.sports()), (3, &[161, 162][..]));
    assert_eq!(ev.hosts().copied().collect::<Vec<_>>(), (1..=3).map(|i| words(host6(i).into())).collect::<Vec<_>>());

    // IPv6 echo requests to hosts in different /96s: the first host cannot be rebuilt, and is
    // left out rather than named wrongly.
    let far = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 9, 0, 1);
    let src = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x77);
    p.run_at(3 * SEC, &Frame::default().v6(src, far, &L4::Icmp { ty: 128, code: 0 }));
    for i in 2..=10 {
        p.run_at(3 * SEC, &Frame::default().v6(src, host6(i), &L4::Icmp { ty: 128, code: 0 }));
    }
    let ev = p.detections().into_iter().find(|e| e.detection == Detection::PingSweep as u8).expect("ping sweep");
    assert_eq!(ev.distinct, 10);
    assert_eq!(ev.hosts().copied().collect::<Vec<_>>(), (2..=8).map(|i| words(host6(i).into())).collect::<Vec<_>>());

    // IPv4 echo requests (nmap -sn): the first host rebuilt too.
    let pinger = Ipv4Addr::new(198, 18, 0, 66);
    for i in 1..=10 {
        for _ in 0..2 {
            p.run_at(5 * SEC, &Frame::default().v4(pinger, host4(i), &L4::Icmp { ty: 8, code: 0 }));
        }
    }
    let ev = p.detections().into_iter().find(|e| e.detection == Detection::PingSweep as u8).expect("ping sweep");
    assert_eq!(ev.hosts().copied().collect::<Vec<_>>(), (1..=8).map(|i| words(host4(i).into())).collect::<Vec<_>>());

    // 2,000 new sources, one probe each: no SOURCES entry for any of them.
    let before = p.source_count();
    for i in 0..2000u32 {
        let s = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 0, 0)) + i);
        p.run_at(4 * SEC, &Frame::default().v4(s, host4((i % 200) as u8 + 1), &L4::syn(40000, 22)));
    }
    assert_eq!(p.source_count(), before, "one host each: all on probation");
    assert_eq!(p.stat(stats::MAP_ERRORS), 0);
}

/// A distributed flood: UDP datagrams to one port of the victim from many sources cross the
/// rate threshold once 32 sources have been seen, keyed by the target and protocol; from then on
/// the per-packet lines of packets to the target are left out; one source alone at the same rate
/// is no distributed flood; the mode ends with the first full window below the rate, though a
/// trickle keeps coming.
#[test]
fn a_distributed_flood_is_one_detection_per_target_and_silences_its_packets() {
    use ipscan::config::{Settings, kernel::KernelSettings};
    let text = "set udp_scan false\nthreshold distributed_flood 200\nwindow distributed_flood 5s\n";
    let settings = Settings::parse(text, std::path::Path::new("t.conf")).expect("config");
    let k = KernelSettings::from_settings(&settings, &[]).expect("kernel settings");
    let mut p = Prog::load(&k.config);
    k.apply(&mut p.ebpf).expect("apply");
    let udp = |src: Ipv4Addr| Frame::default().v4(src, V, &L4::Udp { sport: 4000, dport: 53 });

    // One source, 300 datagrams within a second: no distributed flood.
    for i in 0..300u64 {
        p.run_at(SEC + i * 1000, &udp(A));
    }
    assert!(p.detections().iter().all(|e| e.detection != Detection::DistFlood as u8));

    // 250 sources, one datagram each, 2 ms apart (after the lone source's window lapsed).
    let t0 = 10 * SEC;
    let src = |i: u32| Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 0, 0)) + i);
    let mut lines_before = 0;
    let mut lines_after = 0;
    let mut detected = Vec::new();
    for i in 0..250u32 {
        p.run_at(t0 + u64::from(i) * 2_000_000, &udp(src(i)));
        for e in p.events() {
            match e.kind() {
                Some(EventKind::Packet) if detected.is_empty() => lines_before += 1,
                Some(EventKind::Packet) => lines_after += 1,
                Some(EventKind::Detected) if e.detection == Detection::DistFlood as u8 => detected.push((i, e)),
                _ => {}
            }
        }
    }
    assert_eq!(detected.len(), 1, "one detection");
    let (at, ev) = &detected[0];
    assert_eq!(*at, 199, "the 200th datagram crosses");
    assert_eq!(
        (ev.key.addr[..4].to_vec(), ev.key._pad[0], ev.rate_count, ev.sports()),
        (V.octets().to_vec(), 17, 200, &[53][..]),
        "keyed by the target and protocol, the port hit"
    );
    // Sources past the exact list are bits of a 1024-bit bitmap: the estimate is within 10%.
    let est = ipscan::log::format::sources_estimate(ev.distinct).expect("an estimate");
    assert!((180..=220).contains(&est), "200 sources counted as {} bits, about {est}", ev.distinct);
    assert_eq!(ev.ts_ns - ev.rate_start_ns, 199 * 2_000_000, "the rate window");
    assert!(lines_before >= 100, "per-packet lines before: {lines_before}");
    assert_eq!(lines_after, 0, "none after");

    // A trickle, one datagram a second, never lapses the window but ends the mode.
    let mut expired = None;
    for s in 1..=14u64 {
        p.run_at(t0 + s * SEC, &udp(src(1000 + s as u32)));
        if let Some(e) = p.events().into_iter().find(|e| e.kind() == Some(EventKind::Expired)) {
            expired = Some((s, e));
            break;
        }
    }
    let (s, e) = expired.expect("the mode ended");
    // The flood's window ran to t0 + 5 s; the next (t0 + 6 s to 11 s) had six datagrams.
    assert_eq!((s, e.detection), (12, Detection::DistFlood as u8), "the first packet after a calm window");
    assert_eq!(e.packets, 250 + 11);
}

/// A target that one source sends to cannot be a distributed flood (it needs several sources):
/// it stays on probation, whatever the packets, and costs no SOURCES entry; the second source
/// admits it with the first source's packets and bytes counted.
#[test]
fn a_target_of_one_source_stays_on_probation_for_the_distributed_flood() {
    let mut p = Prog::load(&Config::default());
    let udp = |src: Ipv4Addr| Frame::default().v4(src, V, &L4::Udp { sport: 4000, dport: 53 });
    let mut target = key4(V, Detection::DistFlood);
    target._pad[0] = 17;
    for i in 0..100u64 {
        p.run_at(SEC + i * 1000, &udp(A));
    }
    assert_eq!(p.target_count(), 0, "no SOURCES entry for a target of one source");
    let held = p.probe(&target).expect("on probation");
    assert_eq!((held.packets, held.bytes, held.first_ns), (100, 100 * 8, SEC), "8 bytes each: a UDP header");
    let other = Ipv4Addr::new(198, 19, 7, 7);
    p.run_at(2 * SEC, &udp(other));
    let s = p.source(&target).expect("admitted by a second source");
    assert_eq!((s.packets, s.bytes, s.first_ns, s.distinct), (101, 101 * 8, SEC, 2));
    assert!(p.probe(&target).is_none(), "its way freed");
}

/// Distributed and decoy scans: SYNs from several sources to 15 ports of one host are one
/// detection kept per target, naming the sources (the first rebuilt from probation); a decoy
/// scan probes every port from every source (probes per port = sources), a distributed one
/// each port once; one source alone is no distributed scan; none of them blocks.
#[test]
fn several_sources_scanning_one_host_are_one_distributed_scan() {
    let mut cfg = Config::default();
    // Off by default; a block is refused by the configuration, and ignored by the kernel.
    cfg.detection_mut(Detection::DistScan).flags |= ipscan_common::config::detection_flags::ENABLED;
    cfg.detection_mut(Detection::DistScan).block_ns = 60 * SEC;
    cfg.flags |= global_flags::AUTOBLOCKS | global_flags::DIST_SCAN;
    let mut p = Prog::load(&cfg);
    let syn = |src: Ipv4Addr, dst: Ipv4Addr, port: u16| Frame::default().v4(src, dst, &L4::syn(40000, port));
    let words = |a: Ipv4Addr| [u32::from_ne_bytes(a.octets()), 0, 0, 0];
    let scans = |p: &mut Prog| -> Vec<ipscan_common::Event> {
        p.detections().into_iter().filter(|e| e.detection == Detection::DistScan as u8).collect()
    };

    // A decoy scan: four sources, every port from each, port by port (nmap -D).
    let sources = [A, Ipv4Addr::new(198, 51, 100, 7), Ipv4Addr::new(203, 0, 113, 9), Ipv4Addr::new(198, 19, 5, 5)];
    for port in 1..=15u16 {
        for s in sources {
            assert_eq!(p.run_at(SEC + u64::from(port), &syn(s, V, port)), XDP_PASS, "never dropped");
        }
    }
    let ev = scans(&mut p);
    assert_eq!(ev.len(), 1, "one detection");
    assert_eq!((ev[0].distinct, ev[0].nsports, ev[0].packets), (15, 4, 14 * 4 + 1));
    assert_eq!(ev[0].key.addr[..4], V.octets(), "kept per target");
    assert_eq!(ev[0].hosts().copied().collect::<Vec<_>>(), sources.map(words), "the sources, in order");

    // A distributed scan: five sources, three ports each, each port once.
    let target = Ipv4Addr::new(198, 18, 0, 20);
    for i in 0..5u16 {
        let s = Ipv4Addr::new(198, 19, 7, i as u8 + 1);
        for port in 1..=3 {
            p.run_at(2 * SEC, &syn(s, target, 100 + i * 3 + port));
        }
    }
    let ev = scans(&mut p);
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].distinct, ev[0].nsports, ev[0].packets), (15, 5, 15));

    // One source, 30 ports: its own port scan, no distributed scan.
    let lone = Ipv4Addr::new(198, 18, 0, 21);
    for port in 1..=30 {
        p.run_at(3 * SEC, &syn(A, lone, port));
    }
    assert!(scans(&mut p).is_empty());
    assert_eq!(p.stat(stats::AUTOBLOCKS), 0);
    assert_eq!(p.stat(stats::MAP_ERRORS), 0);
}

/// The reset or port unreachable the host sends, turned back into the probe it refuses: counted
/// toward rejected probes (per source and protocol), and with `counting confirmed` toward the
/// port scan and the UDP scan in place of the incoming probes, which then only ask whether
/// their source is in the mode.
#[test]
fn rejects_the_host_sends_count_toward_the_sources_they_refuse() {
    use ipscan_common::config::detection_flags::ENABLED;
    use ipscan_tests::TC_ACT_OK;
    let b = Ipv4Addr::new(198, 18, 0, 3);
    let mut cfg = per_source();
    cfg.detection_mut(Detection::Rejected).flags |= ENABLED;
    cfg.detection_mut(Detection::Rejected).block_ns = 60 * SEC;
    cfg.flags |= global_flags::REJECTS | global_flags::AUTOBLOCKS;
    let mut p = Prog::load(&cfg);
    for (i, port) in [21u16, 22, 23, 25, 80].into_iter().enumerate() {
        // The victim's reset to the attacker's SYN, sent from V to A.
        assert_eq!(p.egress_at(SEC + i as u64, &Frame::default().v4(V, A, &L4::reset(port, 40000))), TC_ACT_OK);
        // A datagram's port unreachable, to B.
        let unreachable = L4::port_unreachable4(V, b, 50000, 100 + port);
        assert_eq!(p.egress_at(SEC + i as u64, &Frame::default().v4(V, b, &unreachable)), TC_ACT_OK);
    }
    assert_eq!(p.stat(stats::REJECTS), 10);
    let events = p.detections();
    let detected: Vec<_> = events.iter().filter(|e| e.kind() == Some(EventKind::Detected)).collect();
    assert_eq!(detected.len(), 2, "{events:?}");
    let (mut tcp, mut udp) = (key4(A, Detection::Rejected), key4(b, Detection::Rejected));
    (tcp._pad[0], udp._pad[0]) = (6, 17);
    assert_eq!(
        (detected[0].key, detected[0].ports(), detected[0].sports()),
        (tcp, &[21, 22, 23, 25, 80][..], &[40000][..])
    );
    assert_eq!(
        (detected[1].key, detected[1].ports(), detected[1].sports()),
        (udp, &[121, 122, 123, 125, 180][..], &[50000][..])
    );
    // Blocked on the threshold reject: the next probe is dropped on ingress.
    assert_eq!(events.iter().filter(|e| e.kind() == Some(EventKind::Blocked)).count(), 2);
    assert_eq!(p.run_at(10 * SEC, &syn4(443)), XDP_DROP);
    // An abort's reset carries the connection's sequence number: no reject.
    let mut abort = Frame::default().v4(V, A, &L4::reset(443, 40001));
    abort[14 + 20 + 7] = 1;
    p.egress_at(11 * SEC, &abort);
    assert_eq!(p.stat(stats::REJECTS), 10);

    // Without a detection or `counting confirmed` that wants them, rejects are not looked at.
    let mut p = Prog::load(&per_source());
    p.egress_at(SEC, &Frame::default().v4(V, A, &L4::reset(21, 40000)));
    assert_eq!((p.stat(stats::REJECTS), p.source_count()), (0, 0));

    // `counting confirmed`: probes answered by a service never count; rejected ones do.
    let mut cfg = per_source();
    cfg.flags |= global_flags::CONFIRMED | global_flags::REJECTS;
    let mut p = Prog::load(&cfg);
    let connect = |port: u16| {
        // A connect() SYN (20 option bytes): no SYN scan probe.
        let opts = vec![2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7];
        Frame::default().v4(A, V, &L4::Tcp { sport: 40000, dport: port, flags: 0x02, options: opts })
    };
    for port in 1..=40u16 {
        assert_eq!(p.run_at(SEC, &connect(port)), XDP_PASS);
    }
    assert!(p.detections().is_empty(), "40 ports answered are no port scan under counting confirmed");
    assert!(p.probe(&key4(A, Detection::PortScan)).is_none() && p.source(&key4(A, Detection::PortScan)).is_none());
    let _ = p.events();
    for port in 1..=15u16 {
        p.egress_at(2 * SEC, &Frame::default().v4(V, A, &L4::reset(1000 + port, 40000)));
    }
    let detected = p.detections();
    assert_eq!(detected.len(), 1, "{detected:?}");
    assert_eq!(detected[0].key, key4(A, Detection::PortScan));
    assert_eq!(detected[0].ports(), &[1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009, 1010][..]);
    // In the mode: the source's next connection attempt gets no line of its own.
    assert_eq!(p.run_at(3 * SEC, &connect(2000)), XDP_PASS);
    assert!(!p.events().iter().any(|e| e.kind() == Some(EventKind::Packet)), "in the mode: no line");
    // Another source's attempt still gets its line.
    let other = Frame::default().v4(b, V, &L4::tcp(40000, 2000, 0x02));
    p.run_at(3 * SEC, &other);
    assert!(p.events().iter().any(|e| e.kind() == Some(EventKind::Packet)));
    // UDP: port unreachables count toward the UDP scan (25 ports).
    for port in 1..=25u16 {
        p.egress_at(4 * SEC, &Frame::default().v4(V, b, &L4::port_unreachable4(V, b, 50000, port)));
    }
    let detected = p.detections();
    assert_eq!(detected.iter().map(|e| e.key).collect::<Vec<_>>(), [key4(b, Detection::UdpScan)]);
}
