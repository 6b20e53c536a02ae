//! Malformed traffic through the real XDP program (BPF_PROG_TEST_RUN): every truncation of
//! valid frames of every kind, bad header lengths, over-long IPv6 extension-header chains,
//! zero-length payloads, minimum- and maximum-size frames and a few thousand random frames.
//!
//! Every frame must be passed (never XDP_ABORTED), raise no detection and block nothing, and the
//! STATS counters must account for it. Which counter is decided by the host's copy of the parser
//! (`ipscan_common::parse`, the code the program runs), itself checked against an independent
//! reading of the headers by the `parse` fuzz target; the tests also state the expected slot
//! outright where the frame's shape decides it. Needs root; run with `--test-threads=1`.

use std::{
    collections::{HashMap, HashSet},
    io,
};

use ipscan_common::{
    Config, DETECTIONS, EventKind, PacketSummary, ProbeSet, SourceKey, SourceState, classify,
    config::global_flags,
    maps,
    parse::{self, MAX_V6_EXT_HEADERS, Options},
    stats,
};
use ipscan_tests::{
    Prog, XDP_ABORTED, XDP_PASS,
    frames::{DST4 as V, DST6 as V6, Frame, L4, SRC4 as A, SRC6 as A6, ext_frag, ext_opts},
};

const MS: u64 = 1_000_000;

/// STATS slots a frame's outcome is read from.
const SLOTS: [u32; 7] = [
    stats::PACKETS,
    stats::PASSED,
    stats::DROPPED,
    stats::MALFORMED,
    stats::NOT_IP,
    stats::V6_EXT_LIMIT,
    stats::MAP_ERRORS,
];

/// One modelled PROBATION way: the key, its one destination port, the clock of its last packet.
type Probation = (SourceKey, u16, u64);

/// The program under test with the bookkeeping to check each frame's accounting.
struct Harness {
    prog: Prog,
    now: u64,
    /// SOURCES keys the frames that parse must have made (what the kernel records for them).
    expected_sources: HashSet<SourceKey>,
    /// The PROBATION sets as the kernel must have them (by set index): per way the key, its
    /// one destination port and the clock of its last packet.
    probation: HashMap<u32, [Option<Probation>; 4]>,
    runs: u64,
    /// Frames per parse error slot, as the host parser predicts them.
    errors: [u64; 3],
    /// Count SOURCES around every malformed frame (a map walk each: off for the thousands of
    /// random frames, where `finish` checks every entry against the frames that parsed).
    count_sources: bool,
    /// Bytes of a frame the program sees (BPF_PROG_TEST_RUN puts the rest of a larger frame in
    /// page fragments, which a program without multi-buffer support cannot read).
    linear: usize,
    /// Per-packet events of the last frame.
    last_events: Vec<ipscan_common::Event>,
}

impl Harness {
    fn new() -> Self {
        Self::with_config(&Config::default())
    }

    /// The program under `cfg`, without the per-target detections (the distributed flood and
    /// scan): the model below follows per-source state, and a target's probation would share
    /// the sources' ways. (`kernel.rs` and `distributed.rs` test those.)
    fn with_config(cfg: &Config) -> Self {
        let mut cfg = *cfg;
        cfg.flags &= !(global_flags::DISTRIBUTED | global_flags::DIST_SCAN);
        Self {
            prog: Prog::load(&cfg),
            now: 1_000 * MS,
            expected_sources: HashSet::new(),
            probation: HashMap::new(),
            runs: 0,
            errors: [0; 3],
            count_sources: true,
            linear: usize::MAX,
            last_events: Vec::new(),
        }
    }

    fn stats(&self) -> [u64; 7] {
        SLOTS.map(|s| self.prog.stat(s))
    }

    /// Runs one frame; returns what the host parser made of it. Panics unless the program passed
    /// it, counted it in exactly the slot the parser predicts, and (when it is malformed)
    /// reported and recorded nothing.
    fn run(&mut self, what: &str, frame: &[u8]) -> parse::Result<PacketSummary> {
        // Every frame a millisecond apart: floods need far more within their windows.
        self.now += MS;
        let visible = &frame[..frame.len().min(self.linear)];
        let expect = parse::parse(visible, Options { checksum: false });
        assert!(self.prog.events().is_empty(), "events left over before {what}");
        let before = self.stats();
        let sources_before = (expect.is_err() && self.count_sources).then(|| self.prog.source_count());
        let verdict = self.prog.run_at(self.now, frame);
        assert_ne!(verdict, XDP_ABORTED, "{what}: XDP_ABORTED");
        assert_eq!(verdict, XDP_PASS, "{what}: verdict {verdict}");
        let after = self.stats();
        let delta: Vec<u64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
        let slot_delta = |slot: u32| delta[SLOTS.iter().position(|s| *s == slot).expect("slot")];
        assert_eq!((slot_delta(stats::PACKETS), slot_delta(stats::PASSED)), (1, 1), "{what}: packets/passed");
        assert_eq!((slot_delta(stats::DROPPED), slot_delta(stats::MAP_ERRORS)), (0, 0), "{what}: dropped/map errors");
        for (i, slot) in [stats::MALFORMED, stats::NOT_IP, stats::V6_EXT_LIMIT].into_iter().enumerate() {
            let want = u64::from(expect == Err(slot));
            assert_eq!(slot_delta(slot), want, "{what}: STATS slot {slot} (host parser: {expect:?})");
            self.errors[i] += want;
        }
        let events = self.prog.events();
        assert!(
            events.iter().all(|e| e.kind() == Some(EventKind::Packet)),
            "{what}: a detection-side event: {events:?}"
        );
        match &expect {
            Err(_) => {
                assert!(events.is_empty(), "{what}: a malformed frame reported {events:?}");
                if let Some(n) = sources_before {
                    assert_eq!(self.prog.source_count(), n, "{what}: a malformed frame made state");
                }
            }
            Ok(p) => self.expect_sources(p),
        }
        self.last_events = events;
        self.runs += 1;
        expect
    }

    /// The SOURCES keys the kernel records for a parsed packet (every detection is on by default).
    fn expect_sources(&mut self, p: &PacketSummary) {
        let set = classify::detections(p);
        for d in DETECTIONS {
            if set & d.bit() != 0 {
                let addr = if d.per_network() { classify::smurf_network(p) } else { p.src };
                let key = SourceKey::new(addr, p.family, d);
                // One-port (scans) and one-packet (floods) sources stay on probation (the
                // windows never lapse here: frames are a millisecond apart), in one of the
                // four ways of the key's set (ProbeSet::choose).
                let place = ProbeSet::place(&key, self.prog.probation_seed());
                let set = self.probation.entry(place.set).or_default();
                match set.iter().position(|w| w.is_some_and(|(k, _, _)| k == key)) {
                    Some(i) => {
                        let (_, port, _) = set[i].expect("held");
                        if !d.counts_ports() || port != p.dport {
                            set[i] = None;
                            self.expected_sources.insert(key);
                        } else {
                            set[i] = Some((key, port, self.now));
                        }
                    }
                    None if self.expected_sources.contains(&key) => {}
                    None => {
                        // The first free way, else the one the clock and the key pick.
                        let i = set.iter().position(Option::is_none).unwrap_or_else(|| {
                            let full = ProbeSet { tags: [1; 4], last_ns: [self.now; 4], ..Default::default() };
                            full.choose(&key, &place, self.now, u64::MAX).0 as usize
                        });
                        set[i] = Some((key, p.dport, self.now));
                    }
                }
            }
        }
    }

    /// Checks the end state: the counters add up, no detection, no block, and SOURCES holds only
    /// the sources of frames that parsed.
    fn finish(&mut self) {
        let s = self.stats();
        eprintln!(
            "{} frames: {} malformed, {} not IP, {} over the IPv6 extension-header bound",
            self.runs, self.errors[0], self.errors[1], self.errors[2]
        );
        assert_eq!(s[0], self.runs, "packets");
        assert_eq!(s[1], self.runs, "passed == packets");
        assert_eq!((s[2], s[6]), (0, 0), "dropped, map errors");
        assert_eq!([s[3], s[4], s[5]], self.errors, "malformed, not_ip, ipv6_ext_limit");
        for slot in [stats::DETECTIONS, stats::BLOCKED, stats::AUTOBLOCKS, stats::HARDENED, stats::LOST_EVENTS] {
            assert_eq!(self.prog.stat(slot), 0, "STATS slot {slot}");
        }
        assert!(self.prog.detections().is_empty());
        let tables = ipscan::kernel::tables::Tables::from_ebpf(&mut self.prog.ebpf).expect("block tables");
        assert_eq!(tables.blocks(), [], "blocked a source");
        let map = self.prog.ebpf.map(maps::SOURCES).expect("SOURCES");
        let sources: aya::maps::HashMap<_, SourceKey, SourceState> = aya::maps::HashMap::try_from(map).expect("hash");
        let actual: HashSet<SourceKey> = sources.keys().map(|k| k.expect("key")).collect();
        let stray: Vec<_> = actual.difference(&self.expected_sources).collect();
        assert!(stray.is_empty(), "SOURCES entries no parsed frame explains: {stray:?}");
        assert_eq!(actual.len(), self.expected_sources.len(), "SOURCES entries missing");
    }

    /// Runs a frame through BPF_PROG_TEST_RUN without panicking on a refused size.
    fn try_run(&mut self, frame: &[u8]) -> io::Result<u32> {
        self.prog.try_run_at(self.now, frame)
    }
}

/// A valid frame and the length the parser needs of it: shorter is MALFORMED, this or longer
/// parses.
struct Kind {
    name: &'static str,
    frame: Vec<u8>,
    needed: usize,
}

/// A TCP option block as a Linux connect() sends it (MSS, SACK-permitted, timestamps, NOP,
/// window scale): 20 bytes.
fn linux_syn_options() -> Vec<u8> {
    vec![2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]
}

/// An ICMP error (`ty`/`code`) quoting the IP packet of `inner` (an Ethernet frame): its IP header
/// and the first 8 bytes after it, as routers send them.
fn icmp_error(ty: u8, code: u8, inner: &[u8], ip_header: usize) -> Vec<u8> {
    let mut b = vec![ty, code, 0, 0, 0, 0, 0, 0];
    b.extend_from_slice(&inner[14..14 + ip_header + 8]);
    b
}

/// Every kind of valid frame the parser knows, with the length each needs.
fn kinds() -> Vec<Kind> {
    let tcp_opts = L4::Tcp { sport: 40000, dport: 22, flags: 0x02, options: linux_syn_options() };
    let plain = Frame::default();
    let data = Frame { payload: 32, ..Default::default() };
    let udp = L4::Udp { sport: 40000, dport: 53 };
    let echo4 = L4::Icmp { ty: 8, code: 0 };
    let echo6 = L4::Icmp { ty: 128, code: 0 };
    let probe4 = plain.v4(V, A, &udp);
    let probe6 = plain.v6(V6, A6, &udp);
    let unreach4 = L4::Raw { proto: 1, bytes: icmp_error(3, 3, &probe4, 20) };
    let unreach6 = L4::Raw { proto: 58, bytes: icmp_error(1, 4, &probe6, 40) };
    let ext = Frame { ext: vec![(0, ext_opts()), (43, ext_opts()), (60, ext_opts())], ..Default::default() };
    let first_frag6 =
        Frame { ext: vec![(0, ext_opts()), (44, ext_frag(0, true, 7))], payload: 16, ..Default::default() };
    let later_frag6 = Frame { ext: vec![(44, ext_frag(100, false, 7))], payload: 16, ..Default::default() };
    let ip_opts = Frame { ip_options: vec![7, 7, 4, 0, 0, 0, 0], ..Default::default() };
    let vlan = Frame { vlans: vec![100], ..Default::default() };
    let qinq = Frame { vlans: vec![100, 200], payload: 8, ..Default::default() };
    let frag4 = Frame { more_fragments: true, payload: 8, ..Default::default() };
    let later4 = Frame { frag_offset: 100, payload: 8, ..Default::default() };
    let v4 = |f: &Frame, l4: &L4| f.v4(A, V, l4);
    let v6 = |f: &Frame, l4: &L4| f.v6(A6, V6, l4);
    let k = |name, frame: Vec<u8>, needed| Kind { name, frame, needed };
    vec![
        // Ethernet 14 + IPv4 20 + TCP 20 + 20 of options.
        k("v4 TCP SYN with options", v4(&plain, &tcp_opts), 74),
        k("v4 TCP with data", v4(&data, &L4::tcp(40000, 80, 0x18)), 54),
        k("v4 TCP with IP options", v4(&ip_opts, &L4::syn(40000, 80)), 14 + 28 + 24),
        k("v4 UDP with data", v4(&data, &udp), 42),
        // ICMP needs only its first 4 bytes.
        k("v4 ICMP echo", v4(&data, &echo4), 38),
        k("v4 ICMP port unreachable", v4(&plain, &unreach4), 38),
        k("v4 first fragment", v4(&frag4, &udp), 42),
        // A later fragment has no transport header to need.
        k("v4 later fragment", v4(&later4, &udp), 34),
        k("v4 VLAN TCP", v4(&vlan, &L4::syn(40000, 80)), 18 + 20 + 24),
        k("v4 QinQ UDP", v4(&qinq, &udp), 22 + 20 + 8),
        k("v6 TCP SYN with options", v6(&plain, &tcp_opts), 14 + 40 + 40),
        k("v6 UDP with data", v6(&data, &udp), 14 + 40 + 8),
        k("v6 ICMPv6 echo", v6(&data, &echo6), 14 + 40 + 4),
        k("v6 ICMPv6 unreachable", v6(&plain, &unreach6), 14 + 40 + 4),
        k("v6 extension headers TCP", v6(&ext, &L4::syn(40000, 80)), 14 + 40 + 24 + 24),
        k("v6 hop-by-hop + first fragment UDP", v6(&first_frag6, &udp), 14 + 40 + 16 + 8),
        k("v6 later fragment", v6(&later_frag6, &udp), 14 + 40 + 8),
        k("v6 VLAN UDP", v6(&vlan, &udp), 18 + 40 + 8),
    ]
}

#[test]
fn every_truncation_of_every_kind() {
    let mut h = Harness::new();
    for kind in kinds() {
        let full = &kind.frame;
        assert!(parse::parse(&full[..], Options::default()).is_ok(), "{}: the full frame parses", kind.name);
        // BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header (EINVAL): those
        // never reach the program.
        for len in 14..=full.len() {
            let what = format!("{} cut to {len} of {}", kind.name, full.len());
            let got = h.run(&what, &full[..len]);
            if len < kind.needed {
                assert_eq!(got, Err(stats::MALFORMED), "{what}");
            } else {
                assert!(got.is_ok(), "{what}: {got:?}");
            }
        }
    }
    h.finish();
}

#[test]
fn bad_header_lengths() {
    let mut h = Harness::new();
    let syn = Frame::default().v4(A, V, &L4::syn(40000, 80));
    // IHL 0 to 4: a header shorter than 20 bytes.
    for ihl in 0..5u8 {
        let mut f = syn.clone();
        f[14] = 0x40 | ihl;
        assert_eq!(h.run(&format!("IHL {ihl}"), &f), Err(stats::MALFORMED));
    }
    // IHL 15 (60 bytes) when the frame ends first.
    let mut f = syn.clone();
    f[14] = 0x4f;
    assert_eq!(h.run("IHL 15 past the end", &f[..14 + 40]), Err(stats::MALFORMED));
    // IPv4 total length shorter than the header.
    for total in [0u16, 1, 19] {
        let mut f = syn.clone();
        f[16..18].copy_from_slice(&total.to_be_bytes());
        assert_eq!(h.run(&format!("total length {total}"), &f), Err(stats::MALFORMED));
    }
    // Wrong IP versions behind the ethertypes.
    for (name, mut f, at) in [
        ("v6 in an IPv4 ethertype", syn.clone(), 14usize),
        ("v4 in an IPv6 ethertype", Frame::default().v6(A6, V6, &L4::syn(40000, 80)), 14),
    ] {
        f[at] = if name.starts_with("v6") { 0x65 } else { 0x45 };
        assert_eq!(h.run(name, &f), Err(stats::MALFORMED));
    }
    // TCP data offsets below 5 and past the end of the frame, IPv4 and IPv6.
    let syn6 = Frame::default().v6(A6, V6, &L4::syn(40000, 80));
    for (family, frame, tcp_at) in [("v4", &syn, 34usize), ("v6", &syn6, 54)] {
        let room = frame.len() - tcp_at;
        for doff in 0..16u8 {
            let mut f = frame.clone();
            f[tcp_at + 12] = doff << 4;
            let what =
                format!("{family} TCP data offset {doff} ({} bytes, {room} in the frame)", usize::from(doff) * 4);
            let got = h.run(&what, &f);
            if doff < 5 || usize::from(doff) * 4 > room {
                assert_eq!(got, Err(stats::MALFORMED), "{what}");
            } else {
                assert!(got.is_ok(), "{what}: {got:?}");
            }
        }
    }
    // IPv6 extension-header lengths that run past the frame.
    let ext = Frame { ext: vec![(0, ext_opts())], ..Default::default() }.v6(A6, V6, &L4::syn(40000, 80));
    for len in [1u8, 8, 255] {
        let mut f = ext.clone();
        f[54 + 1] = len;
        assert_eq!(h.run(&format!("hop-by-hop length {len}"), &f), Err(stats::MALFORMED));
    }
    h.finish();
}

#[test]
fn ipv6_extension_chains_past_the_bound() {
    let mut h = Harness::new();
    let chain = |n: usize, kinds: &[u8]| {
        let ext = (0..n)
            .map(|i| {
                let code = kinds[i % kinds.len()];
                // A first fragment's header (offset 0, more to come) is followed like the others.
                (code, if code == 44 { ext_frag(0, true, 7) } else { ext_opts() })
            })
            .collect();
        Frame { ext, ..Default::default() }.v6(A6, V6, &L4::syn(40000, 80))
    };
    // The bound itself is parsed; one header more is counted and passed, not classified.
    for kinds in [&[60u8][..], &[0, 43, 60], &[60, 44]] {
        let what = format!("{MAX_V6_EXT_HEADERS} extension headers {kinds:?}");
        let p = h.run(&what, &chain(MAX_V6_EXT_HEADERS, kinds)).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!((p.proto, p.dport), (6, 80), "{what}");
        for n in [MAX_V6_EXT_HEADERS + 1, MAX_V6_EXT_HEADERS + 2, 16, 40] {
            let f = chain(n, kinds);
            let what = format!("{n} extension headers {kinds:?}");
            assert_eq!(h.run(&what, &f), Err(stats::V6_EXT_LIMIT), "{what}");
            // Cut inside the chain: the frame ends before the bound is reached.
            assert_eq!(h.run(&format!("{what}, cut"), &f[..54 + 8 * 5 + 1]), Err(stats::MALFORMED));
        }
    }
    h.finish();
}

#[test]
fn zero_length_payloads() {
    let mut h = Harness::new();
    // An IP header whose length says nothing follows, for each transport; the frame either ends
    // there or carries Ethernet padding to the 60-byte minimum, as a NIC delivers it. Neither
    // holds a transport header of the packet.
    let protos: [(&str, L4); 4] = [
        ("TCP", L4::tcp(40000, 80, 0x02)),
        ("UDP", L4::Udp { sport: 40000, dport: 53 }),
        ("ICMP", L4::Icmp { ty: 8, code: 0 }),
        ("raw 200", L4::Raw { proto: 200, bytes: Vec::new() }),
    ];
    for (name, l4) in &protos {
        let transport = !matches!(l4, L4::Raw { .. });
        let mut f4 = Frame::default().v4(A, V, l4);
        f4.truncate(34);
        f4[16..18].copy_from_slice(&20u16.to_be_bytes());
        let mut f6 = Frame::default().v6(A6, V6, l4);
        f6.truncate(54);
        f6[18..20].copy_from_slice(&0u16.to_be_bytes());
        for (family, f) in [("v4", f4), ("v6", f6)] {
            let mut padded = f.clone();
            padded.resize(60.max(f.len() + 8), 0);
            for (how, frame) in [("ending", &f), ("padded", &padded)] {
                let what = format!("{family} {name} empty payload, {how}");
                let got = h.run(&what, frame);
                if transport {
                    assert_eq!(got, Err(stats::MALFORMED), "{what}");
                } else {
                    assert!(got.is_ok(), "{what}: an unknown protocol needs no header: {got:?}");
                }
            }
        }
    }
    // A TCP data offset inside the frame but past the IP packet's end (into the padding).
    let mut f = Frame::default().v4(A, V, &L4::syn(40000, 80));
    f.resize(f.len() + 16, 0);
    f[34 + 12] = 10 << 4;
    assert_eq!(h.run("TCP data offset past the IP length, into padding", &f), Err(stats::MALFORMED));
    h.finish();
}

/// The largest frame BPF_PROG_TEST_RUN accepts for this (non-multi-buffer) XDP program.
fn largest_accepted(h: &mut Harness) -> usize {
    let ok = |h: &mut Harness, n: usize| h.try_run(&vec![0u8; n]).is_ok();
    assert!(ok(h, 1514), "a full-size Ethernet frame is refused");
    let (mut lo, mut hi) = (1514, 1 << 20);
    assert!(!ok(h, hi), "1 MiB frames accepted");
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if ok(h, mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

#[test]
fn minimum_and_maximum_size_frames() {
    let mut probe = Harness::new();
    // Below an Ethernet header the kernel refuses the run (EINVAL): nothing reaches the program.
    for n in [0usize, 1, 13] {
        let err = probe.try_run(&vec![0u8; n]).expect_err("a frame shorter than 14 bytes ran");
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{n} bytes: {err}");
    }
    // The largest size, found by bisection. The kernel puts a page minus XDP's headroom and the
    // skb tailroom in the linear buffer (4096 - 256 - 320 = 3520 bytes on x86_64) and the rest
    // in up to MAX_SKB_FRAGS page fragments (17 by default: 73152 bytes in all); a program
    // without multi-buffer support, like ipscan, sees only the linear part.
    let max = largest_accepted(&mut probe);
    let page = 4096;
    let linear = max % page;
    eprintln!("BPF_PROG_TEST_RUN takes XDP frames up to {max} bytes, {linear} of them linear");
    assert!((1514..page).contains(&linear) && max > page, "largest accepted XDP test frame: {max}");
    // The probes were zero-filled (ethertype 0): passed as not IP, each of them.
    let s = probe.stats();
    assert!(s[0] > 0 && s[0] == s[1] && s[0] == s[4], "probe frames: {s:?}");

    // With `verbose`, a frame whose IP length runs past what the program sees gets a Short line:
    // that shows where the program's view ends.
    let mut cfg = Config::default();
    cfg.flags |= ipscan_common::config::global_flags::VERBOSE;
    let mut h = Harness::with_config(&cfg);
    h.linear = linear;
    let short_lines =
        |h: &Harness| h.last_events.iter().filter(|e| e.line == ipscan_common::PacketLine::Short as u8).count();
    let udp = |len: usize| Frame { payload: len - 42, ..Default::default() }.v4(A, V, &L4::Udp { sport: 1, dport: 2 });
    let whole = udp(linear);
    assert_eq!(h.run("linear-size v4 UDP", &whole).expect("parses").anomalies, 0);
    assert_eq!(short_lines(&h), 0, "a frame of {linear} bytes is seen whole");
    let past = udp(linear + 1);
    assert_eq!(h.run("linear + 1 v4 UDP", &past).expect("parses").anomalies, ipscan_common::packet::anomalies::SHORT);
    assert_eq!(short_lines(&h), 1, "the byte past {linear} is in a fragment the program cannot see");
    // The largest frame: an IPv4 packet of 65535 bytes, then filler up to the kernel's limit.
    let mut largest = Frame::default().v4(A, V, &L4::Udp { sport: 1, dport: 2 });
    largest[16..18].copy_from_slice(&u16::MAX.to_be_bytes());
    largest.resize(max, 0xab);
    assert!(h.run("largest v4 UDP", &largest).is_ok());
    assert_eq!(short_lines(&h), 1);
    let mut noise = largest.clone();
    noise[12..14].copy_from_slice(&[0x88, 0xb5]);
    assert_eq!(h.run("largest non-IP", &noise), Err(stats::NOT_IP));
    // One byte more than the kernel takes is refused whole.
    largest.push(0);
    assert!(h.try_run(&largest).is_err(), "{} bytes accepted", largest.len());
    h.finish();

    let mut h = Harness::new();
    // 14 bytes: just an Ethernet header, of each kind.
    for (ethertype, want) in [
        (0x0800u16, Err(stats::MALFORMED)),
        (0x86dd, Err(stats::MALFORMED)),
        (0x8100, Err(stats::MALFORMED)),
        (0x88a8, Err(stats::MALFORMED)),
        (0x0806, Err(stats::NOT_IP)),
        (0x0000, Err(stats::NOT_IP)),
    ] {
        let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
        f.extend_from_slice(&ethertype.to_be_bytes());
        assert_eq!(h.run(&format!("14-byte frame, ethertype {ethertype:#06x}"), &f), want);
    }
    // Frames filling the linear buffer, of each family, whole and one byte short of their IP
    // length.
    for (name, frame) in [
        ("v4 UDP", Frame { payload: linear - 42, ..Default::default() }.v4(A, V, &L4::Udp { sport: 1, dport: 2 })),
        ("v4 TCP", Frame { payload: linear - 54, ..Default::default() }.v4(A, V, &L4::tcp(1, 2, 0x10))),
        (
            "v4 VLAN TCP",
            Frame { payload: linear - 58, vlans: vec![7], ..Default::default() }.v4(A, V, &L4::tcp(1, 2, 0x10)),
        ),
        ("v6 TCP", Frame { payload: linear - 74, ..Default::default() }.v6(A6, V6, &L4::tcp(1, 2, 0x10))),
        (
            "v6 ext UDP",
            Frame { payload: linear - 78, ext: vec![(0, ext_opts()), (60, ext_opts())], ..Default::default() }.v6(
                A6,
                V6,
                &L4::Udp { sport: 1, dport: 2 },
            ),
        ),
    ] {
        assert_eq!(frame.len(), linear, "{name}");
        let p = h.run(&format!("linear-size {name}"), &frame).expect("parses");
        assert_eq!(p.anomalies, 0, "{name}: the IP length matches the frame");
        let short = h.run(&format!("linear-size {name} minus one byte"), &frame[..linear - 1]).expect("parses");
        assert_eq!(short.anomalies, ipscan_common::packet::anomalies::SHORT, "{name}");
    }
    h.finish();
}

/// xorshift64*: a fixed seed gives the same frames on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len())]
    }
}

/// Where a valid frame's IP source address is.
fn source_bytes(f: &[u8]) -> Option<std::ops::Range<usize>> {
    let mut off = 12;
    while matches!(f.get(off..off + 2)?, [0x81, 0x00] | [0x88, 0xa8]) {
        off += 4;
    }
    let ip = off + 2;
    match f.get(off..off + 2)? {
        [0x08, 0x00] => Some(ip + 12..ip + 16),
        [0x86, 0xdd] => Some(ip + 8..ip + 24),
        _ => None,
    }
}

#[test]
fn random_frames() {
    let mut h = Harness::new();
    h.count_sources = false;
    let mut rng = Rng(0x1505_ca11_0000_0006);
    let mut parsed = 0;
    // Pure noise: mostly not IP; the ethertype is forced to IP for a third of them.
    for i in 0..1500 {
        let len = 14 + rng.below(200);
        let mut f = rng.bytes(len);
        match i % 3 {
            0 => f[12..14].copy_from_slice(&[0x08, 0x00]),
            1 => f[12..14].copy_from_slice(&[0x86, 0xdd]),
            _ => {}
        }
        parsed += u32::from(h.run(&format!("noise #{i} ({len} bytes)"), &f).is_ok());
    }
    // Valid Ethernet + IPv4 headers (random source each, IHL 5 to 15 with the options present,
    // total length matching the frame) with random bytes behind them.
    for i in 0..1500 {
        let ihl = 5 + rng.below(11);
        let body = rng.below(120);
        let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
        let total = ihl * 4 + body;
        f.push(0x40 | ihl as u8);
        f.push(0);
        f.extend_from_slice(&(total as u16).to_be_bytes());
        f.extend_from_slice(&rng.bytes(2));
        // Fragments now and then: MF, or an offset.
        f.extend_from_slice(&rng.pick(&[0u16, 0, 0, 0x4000, 0x2000, 0x0010]).to_be_bytes());
        f.push(rng.next() as u8);
        f.push(rng.pick(&[6u8, 6, 17, 17, 1, 58, 0, 47, 255]));
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&rng.bytes(8));
        f.extend_from_slice(&rng.bytes(ihl * 4 - 20 + body));
        parsed += u32::from(h.run(&format!("random IPv4 #{i}"), &f).is_ok());
    }
    // Valid Ethernet + IPv6 headers with random extension-header codes and bytes behind them.
    for i in 0..1500 {
        let body = rng.below(160);
        let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x86, 0xdd, 0x60, 0, 0, 0];
        f.extend_from_slice(&(body as u16).to_be_bytes());
        f.push(rng.pick(&[0u8, 43, 44, 51, 60, 6, 17, 58, 59, 135]));
        f.push(rng.next() as u8);
        f.extend_from_slice(&rng.bytes(32 + body));
        parsed += u32::from(h.run(&format!("random IPv6 #{i}"), &f).is_ok());
    }
    // IPv6 with random extension-header chains (0 to 12 headers of random kinds and lengths,
    // fragment headers of offset 0 or not, payload length consistent) ahead of random bytes.
    for i in 0..1000 {
        let codes: Vec<u8> = (0..rng.below(13)).map(|_| rng.pick(&[0u8, 43, 60, 60, 51, 44])).collect();
        let last = rng.pick(&[6u8, 17, 58, 59]);
        let mut exts = Vec::new();
        for (j, code) in codes.iter().enumerate() {
            let next = codes.get(j + 1).copied().unwrap_or(last);
            exts.push(next);
            match code {
                44 => {
                    exts.push(0);
                    exts.extend_from_slice(&rng.pick(&[1u16, 1, 1, 0, 8]).to_be_bytes());
                    exts.extend_from_slice(&rng.bytes(4));
                }
                51 => {
                    let len = rng.below(3);
                    exts.push(len as u8);
                    exts.extend_from_slice(&rng.bytes((len + 2) * 4 - 2));
                }
                _ => {
                    let len = rng.below(2);
                    exts.push(len as u8);
                    exts.extend_from_slice(&rng.bytes((len + 1) * 8 - 2));
                }
            }
        }
        let filler = rng.below(60);
        exts.extend_from_slice(&rng.bytes(filler));
        let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x86, 0xdd, 0x60, 0, 0, 0];
        f.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        f.push(codes.first().copied().unwrap_or(last));
        f.push(64);
        f.extend_from_slice(&rng.bytes(32));
        f.extend_from_slice(&exts);
        parsed += u32::from(h.run(&format!("random IPv6 chain #{i} {codes:?}"), &f).is_ok());
    }
    // Valid frames of every kind with random bytes written over a few of their header bytes.
    let kinds = kinds();
    for i in 0..1500 {
        let kind = &kinds[i % kinds.len()];
        let mut f = kind.frame.clone();
        // A new source each time: mutated ports must not add up to a scan from one address.
        if let Some(src) = source_bytes(&f) {
            let r = rng.bytes(src.len());
            f[src].copy_from_slice(&r);
        }
        for _ in 0..1 + rng.below(4) {
            let at = 12 + rng.below(f.len() - 12);
            f[at] = rng.next() as u8;
        }
        let cut = if rng.below(4) == 0 { 14 + rng.below(f.len() - 13) } else { f.len() };
        parsed += u32::from(h.run(&format!("mutated {} #{i}", kind.name), &f[..cut]).is_ok());
    }
    // Both outcomes must be well represented, or the frames test nothing.
    let errors: u64 = h.errors.iter().sum();
    assert!(parsed > 1000 && errors > 1000, "{parsed} parsed, {errors} errors");
    assert!(h.errors.iter().all(|n| *n > 10), "every error slot is reached: {:?}", h.errors);
    h.finish();
}
