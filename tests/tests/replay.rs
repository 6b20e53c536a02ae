//! `ipscan replay` on captures of real tools (tests/data): the exact log, checked against golden
//! files that were verified by hand and against what the capture itself holds; the same output
//! on every run; one-line errors for files that cannot be replayed.
//!
//! The captures are what the victim received (tcpdump `-Q in` on the victim's veth, snaplen
//! 128), recorded by `record_captures` below (ignored: it overwrites tests/data).

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use ipscan_tests::{
    ATTACKER4, ATTACKER6, Capture, TempDir, Testbed, VICTIM4, VICTIM6, ipscan_bin,
    pcap::{self, is_syn},
    require_root, run_in,
};

/// Short windows, as in the end-to-end tests; the same file is used to record and replay.
const CONFIG: &str = "\
# 3 s windows for every detection: expiries come 3 s after the last probe
window portscan 3s
window syn_scan 3s
window fin_scan 3s
window null_scan 3s
window xmas_scan 3s
window udp_scan 3s
window ping_flood 3s
window smurf 3s
";

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join(name)
}

/// Runs `ipscan replay FILE --config CONFIG [extra]` with TZ=UTC.
fn replay(file: &Path, extra: &[&str]) -> Output {
    let dir = TempDir::new();
    let conf = dir.join("ipscan.conf");
    fs::write(&conf, CONFIG).unwrap_or_else(|e| panic!("write config: {e}"));
    let out = Command::new(ipscan_bin())
        .env("TZ", "UTC")
        .arg("replay")
        .arg(file)
        .arg("--config")
        .arg(&conf)
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ipscan: {e}"));
    drop(dir);
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Packet records in a capture, as tcpdump counts them (independent of ipscan's parser).
fn tcpdump_count(file: &Path) -> usize {
    let out = Command::new("tcpdump")
        .args(["-n", "-r"])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run tcpdump: {e}"));
    assert!(out.status.success(), "tcpdump -r {}: {}", file.display(), text(&out.stderr));
    text(&out.stdout).lines().count()
}

/// Replays `name`.pcap and returns its stdout after checking the exit status, the summary
/// line, and that a second run prints the same bytes.
fn replay_ok(file: &Path) -> String {
    require_root();
    let first = replay(file, &[]);
    assert!(first.status.success(), "replay failed: {}", text(&first.stderr));
    let frames = tcpdump_count(file);
    assert_eq!(
        text(&first.stderr),
        format!("ipscan: replayed {frames} frames (0 malformed) from {}\n", file.display())
    );
    let second = replay(file, &[]);
    assert!(second.status.success(), "second replay failed: {}", text(&second.stderr));
    assert_eq!(first.stdout, second.stdout, "replay is not deterministic");
    text(&first.stdout)
}

/// The output for a capture equals its golden file, and each expiry's totals equal what the
/// capture holds for the source and the flags the detection counts.
/// (label, which TCP flags the detection counts) of each expected expiry.
type Expiry<'a> = (&'a str, fn(u8) -> bool);

fn golden(name: &str, src: &str, expiries: &[Expiry<'_>]) {
    let file = data(&format!("{name}.pcap"));
    let out = replay_ok(&file);
    let want =
        fs::read_to_string(data(&format!("{name}.expected"))).unwrap_or_else(|e| panic!("read {name}.expected: {e}"));
    assert_eq!(out, want, "replay of {name}.pcap differs from {name}.expected");
    // Cross-check the golden file against the capture itself, so a wrong golden cannot pass.
    let pkts = pcap::packets(&file);
    for (label, counts) in expiries {
        let mine: Vec<_> =
            pkts.iter().filter(|p| p.src.to_string() == src && p.proto == 6 && counts(p.tcp_flags & 0x3f)).collect();
        let bytes: u64 = mine.iter().map(|p| p.payload).sum();
        let line =
            format!("{label} mode expired for {src} - received a total of {} packets ({bytes} bytes).", mine.len());
        assert!(out.lines().any(|l| l.ends_with(&line)), "want a line ending {line:?} in:\n{out}");
    }
    // One detection and one expiry each; per-packet lines only for connection attempts, each to a
    // distinct port below the SYN scan's threshold (the detection suppresses the rest).
    let (attempts, alerts): (Vec<&str>, Vec<&str>) = out.lines().partition(|l| l.contains(" connection attempt from "));
    assert_eq!(alerts.len(), 2 * expiries.len(), "one detection and one expiry each:\n{out}");
    assert!(attempts.len() < 15, "attempt lines stop at the threshold:\n{out}");
}

#[test]
fn nmap_syn_scan_ipv4() {
    golden("nmap-sS-v4", ATTACKER4, &[("TCP: SYN scan", is_syn), ("TCP: port scan", is_syn)]);
}

#[test]
fn nmap_syn_scan_ipv6() {
    golden("nmap-sS-v6", ATTACKER6, &[("TCP: SYN scan", is_syn), ("TCP: port scan", is_syn)]);
}

#[test]
fn nmap_connect_scan() {
    golden("nmap-sT-v4", ATTACKER4, &[("TCP: port scan", is_syn)]);
}

#[test]
fn nmap_fin_scan() {
    golden("nmap-sF-v4", ATTACKER4, &[("TCP: FIN scan", |f| f == 0x01)]);
}

#[test]
fn nmap_null_scan() {
    golden("nmap-sN-v4", ATTACKER4, &[("TCP: null scan", |f| f == 0)]);
}

#[test]
fn nmap_xmas_scan() {
    golden("nmap-sX-v4", ATTACKER4, &[("TCP: Xmas scan", |f| f == 0x29)]);
}

/// UDP scan, ping flood and traceroute captures give their golden output; the totals of each
/// expiry are cross-checked against the capture.
#[test]
fn udp_and_icmp_captures_replay() {
    for (name, expiry) in [
        ("nmap-sU-v4", "UDP: scan/flood mode expired for 198.18.0.1 - received a total of"),
        ("ping-flood-v4", "ICMP: ping flood mode expired for 198.18.0.1 - received a total of"),
        ("traceroute-v4", ""),
    ] {
        let file = data(&format!("{name}.pcap"));
        let out = replay_ok(&file);
        let want = fs::read_to_string(data(&format!("{name}.expected"))).expect("golden");
        assert_eq!(out, want, "replay of {name}.pcap differs from {name}.expected");
        if expiry.is_empty() {
            continue;
        }
        let pkts: Vec<_> = pcap::packets(&file)
            .into_iter()
            .filter(|p| p.src.to_string() == ATTACKER4 && (p.proto == 17 || (p.proto == 1 && p.dport == 0)))
            .collect();
        let bytes: u64 = pkts.iter().map(|p| p.payload).sum();
        let line = format!("{expiry} {} packets ({bytes} bytes).", pkts.len());
        assert!(out.lines().any(|l| l.ends_with(&line)), "want {line}\n{out}");
    }
    // The traceroute is reported once per source per 15 s, however many probes arrive with TTL 1.
    let tr = replay_ok(&data("traceroute-v4.pcap"));
    assert_eq!(tr.lines().filter(|l| l.ends_with("UDP: traceroute from 198.18.0.1")).count(), 1);
}

/// Records the captures in tests/data (run by hand: `cargo test -p ipscan-tests --test replay
/// -- --ignored record_captures`), then check and update the .expected files by hand.
#[test]
#[ignore = "overwrites tests/data; run by hand to re-record"]
fn record_captures() {
    let nmap = |extra: &[&'static str], target: &'static str| {
        let mut v: Vec<&'static str> = extra.to_vec();
        v.extend(["-r", "-p", "1-40", "--max-retries", "0", "-Pn", "-n", target]);
        ("nmap", v)
    };
    let runs: Vec<(&str, (&str, Vec<&str>))> = vec![
        ("nmap-sS-v4", nmap(&["-sS", "-g", "40000"], VICTIM4)),
        ("nmap-sS-v6", nmap(&["-6", "-sS", "-g", "40000"], VICTIM6)),
        // One connect() at a time keeps the wire order equal to the port order.
        ("nmap-sT-v4", nmap(&["-sT", "--max-parallelism", "1"], VICTIM4)),
        ("nmap-sF-v4", nmap(&["-sF", "-g", "40000"], VICTIM4)),
        ("nmap-sN-v4", nmap(&["-sN", "-g", "40000"], VICTIM4)),
        ("nmap-sX-v4", nmap(&["-sX", "-g", "40000"], VICTIM4)),
        ("nmap-sU-v4", nmap(&["-sU", "-g", "40000"], VICTIM4)),
        ("ping-flood-v4", ("ping", vec!["-n", "-q", "-c", "100", "-i", "0.002", VICTIM4])),
        ("traceroute-v4", ("traceroute", vec!["-n", VICTIM4])),
    ];
    for (name, (program, args)) in runs {
        let bed = Testbed::new();
        let dir = TempDir::new();
        let file = dir.join("cap.pcap");
        // What the victim receives, headers only: the program never reads past them.
        let cap = Capture::start_args(&bed.victim, &bed.victim_if, "", file.clone(), &["-Q", "in", "-s", "128"]);
        run_in(&bed.attacker, 120, program, &args);
        cap.finish();
        fs::copy(&file, data(&format!("{name}.pcap"))).unwrap_or_else(|e| panic!("copy {name}: {e}"));
    }
}

/// One classic pcap record.
struct Record {
    ts_ns: u64,
    orig_len: u32,
    data: Vec<u8>,
}

/// The records of a little-endian microsecond pcap, as tcpdump writes on this host.
fn pcap_records(file: &Path) -> Vec<Record> {
    let b = fs::read(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    assert_eq!(&b[..4], &0xa1b2_c3d4u32.to_le_bytes(), "{}: not a LE microsecond pcap", file.display());
    let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= b.len() {
        let incl = u32_at(off + 8) as usize;
        out.push(Record {
            ts_ns: u64::from(u32_at(off)) * 1_000_000_000 + u64::from(u32_at(off + 4)) * 1_000,
            orig_len: u32_at(off + 12),
            data: b[off + 16..off + 16 + incl].to_vec(),
        });
        off += 16 + incl;
    }
    out
}

/// A classic pcap with nanosecond timestamps and the given link type.
fn write_pcap_ns(records: &[Record], linktype: u32) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(0xa1b2_3c4du32.to_le_bytes());
    out.extend(2u16.to_le_bytes());
    out.extend(4u16.to_le_bytes());
    out.extend([0u8; 8]);
    out.extend(128u32.to_le_bytes());
    out.extend(linktype.to_le_bytes());
    for r in records {
        out.extend(((r.ts_ns / 1_000_000_000) as u32).to_le_bytes());
        out.extend(((r.ts_ns % 1_000_000_000) as u32).to_le_bytes());
        out.extend((r.data.len() as u32).to_le_bytes());
        out.extend(r.orig_len.to_le_bytes());
        out.extend(&r.data);
    }
    out
}

fn pad4(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
}

fn pcapng_block(out: &mut Vec<u8>, kind: u32, mut body: Vec<u8>) {
    pad4(&mut body);
    let len = (12 + body.len()) as u32;
    out.extend(kind.to_le_bytes());
    out.extend(len.to_le_bytes());
    out.extend(body);
    out.extend(len.to_le_bytes());
}

/// A pcapng interface: link type, `if_tsresol` and `if_tsoffset` (None: the defaults).
struct NgIface {
    linktype: u16,
    tsresol: Option<u8>,
    tsoffset_s: Option<i64>,
}

impl NgIface {
    /// Timestamp units since the epoch less the offset, as the file stores them.
    fn raw(&self, ts_ns: u64) -> u64 {
        let ns = ts_ns as i128 - i128::from(self.tsoffset_s.unwrap_or(0)) * 1_000_000_000;
        let exp = i32::from(self.tsresol.unwrap_or(6));
        if exp <= 9 { (ns / 10i128.pow((9 - exp) as u32)) as u64 } else { (ns * 10i128.pow((exp - 9) as u32)) as u64 }
    }
}

/// A little-endian pcapng with `ifaces`; record `i` goes out on interface `pick(i)`.
fn write_pcapng(records: &[Record], ifaces: &[NgIface], pick: impl Fn(usize) -> usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut shb = Vec::new();
    shb.extend(0x1a2b_3c4du32.to_le_bytes());
    shb.extend(1u16.to_le_bytes());
    shb.extend(0u16.to_le_bytes());
    shb.extend((-1i64).to_le_bytes());
    pcapng_block(&mut out, 0x0a0d_0d0a, shb);
    for i in ifaces {
        let mut idb = Vec::new();
        idb.extend(i.linktype.to_le_bytes());
        idb.extend(0u16.to_le_bytes());
        idb.extend(128u32.to_le_bytes());
        if let Some(r) = i.tsresol {
            idb.extend(9u16.to_le_bytes());
            idb.extend(1u16.to_le_bytes());
            idb.extend([r, 0, 0, 0]);
        }
        if let Some(o) = i.tsoffset_s {
            idb.extend(14u16.to_le_bytes());
            idb.extend(8u16.to_le_bytes());
            idb.extend(o.to_le_bytes());
        }
        idb.extend([0u8; 4]);
        pcapng_block(&mut out, 1, idb);
    }
    for (n, r) in records.iter().enumerate() {
        let id = pick(n);
        let raw = ifaces[id].raw(r.ts_ns);
        let mut epb = Vec::new();
        epb.extend((id as u32).to_le_bytes());
        epb.extend(((raw >> 32) as u32).to_le_bytes());
        epb.extend((raw as u32).to_le_bytes());
        epb.extend((r.data.len() as u32).to_le_bytes());
        epb.extend(r.orig_len.to_le_bytes());
        epb.extend(&r.data);
        pcapng_block(&mut out, 6, epb);
    }
    out
}

/// Replay fails with the one-line error `want` and returns what it logged before failing.
fn expect_error(file: &Path, want: &str) -> String {
    let out = replay(file, &[]);
    assert!(!out.status.success(), "replay of {} should fail", file.display());
    assert_eq!(text(&out.stderr), format!("ipscan: {}: {want}\n", file.display()));
    text(&out.stdout)
}

/// The same frames in a pcapng spread over two Ethernet interfaces with different timestamp
/// units and offsets, and in a nanosecond pcap, give the same log as the original capture.
#[test]
fn pcapng_and_nanosecond_pcap_give_the_same_log() {
    require_root();
    let src = data("nmap-sS-v4.pcap");
    let want = fs::read_to_string(data("nmap-sS-v4.expected")).expect("golden");
    let records = pcap_records(&src);
    let dir = TempDir::new();
    let ng = dir.join("two-ifaces.pcapng");
    let ifaces = [
        NgIface { linktype: 1, tsresol: None, tsoffset_s: None },
        NgIface { linktype: 1, tsresol: Some(9), tsoffset_s: Some(1_000_000_000) },
    ];
    fs::write(&ng, write_pcapng(&records, &ifaces, |i| i % 2)).expect("write pcapng");
    let ns = dir.join("nanosecond.pcap");
    fs::write(&ns, write_pcap_ns(&records, 1)).expect("write pcap");
    for file in [&ng, &ns] {
        let out = replay(file, &[]);
        assert!(out.status.success(), "{}: {}", file.display(), text(&out.stderr));
        assert_eq!(text(&out.stdout), want, "{}", file.display());
        assert_eq!(
            text(&out.stderr),
            format!("ipscan: replayed {} frames (0 malformed) from {}\n", records.len(), file.display())
        );
    }
}

#[test]
fn log_file_gets_the_same_lines() {
    require_root();
    let dir = TempDir::new();
    let log = dir.join("replay.log");
    let out = replay(&data("nmap-sF-v4.pcap"), &["--log-file", log.to_str().expect("utf8")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let want = fs::read_to_string(data("nmap-sF-v4.expected")).expect("golden");
    assert_eq!(fs::read_to_string(&log).expect("log"), want);
}

/// Frames the program cannot parse are counted in the summary and change nothing else.
#[test]
fn malformed_frames_are_counted() {
    require_root();
    let mut records = pcap_records(&data("nmap-sS-v4.pcap"));
    let t = records[5].ts_ns;
    // Too short to run at all, and an IPv4 header with IHL 4.
    let short = Record { ts_ns: t, orig_len: 10, data: vec![0; 10] };
    let mut bad_ihl = records[5].data.clone();
    bad_ihl[14] = 0x44;
    let bad_ihl = Record { ts_ns: t, orig_len: bad_ihl.len() as u32, data: bad_ihl };
    records.insert(6, short);
    records.insert(7, bad_ihl);
    let dir = TempDir::new();
    let file = dir.join("malformed.pcap");
    fs::write(&file, write_pcap_ns(&records, 1)).expect("write");
    let out = replay(&file, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), fs::read_to_string(data("nmap-sS-v4.expected")).expect("golden"));
    assert_eq!(
        text(&out.stderr),
        format!("ipscan: replayed {} frames (2 malformed) from {}\n", records.len(), file.display())
    );
}

#[test]
fn files_that_cannot_be_replayed_are_one_line_errors() {
    require_root();
    let dir = TempDir::new();
    let nothing = |file: &Path, want: &str| {
        let logged = expect_error(file, want);
        assert!(logged.is_empty(), "{}: logged {logged}", file.display());
    };
    nothing(&dir.join("missing.pcap"), "No such file or directory (os error 2)");

    let text_file = dir.join("notes.txt");
    fs::write(&text_file, "not a capture at all\n").expect("write");
    nothing(&text_file, "not a pcap or pcapng capture");
    let empty = dir.join("empty.pcap");
    fs::write(&empty, "").expect("write");
    nothing(&empty, "not a pcap or pcapng capture");

    let full = fs::read(data("nmap-sS-v4.pcap")).expect("read");
    let cut = dir.join("cut.pcap");
    fs::write(&cut, &full[..full.len() - 7]).expect("write");
    let frames = tcpdump_count(&data("nmap-sS-v4.pcap"));
    // Lines are written as frames go through: what came before the cut is logged (the two
    // detections), but no expiry, since the capture never ended cleanly.
    let logged = expect_error(&cut, &format!("truncated capture (after {} frames)", frames - 1));
    let golden = fs::read_to_string(data("nmap-sS-v4.expected")).expect("golden");
    let before_cut: String =
        golden.lines().filter(|l| !l.contains(" mode expired ")).map(|l| format!("{l}\n")).collect();
    assert_eq!(logged, before_cut);
    let header_only = dir.join("header.pcap");
    fs::write(&header_only, &full[..10]).expect("write");
    nothing(&header_only, "truncated capture (after 0 frames)");

    // Raw IP (LINKTYPE_RAW, 101) in a classic pcap; Linux cooked capture (113) on the second
    // interface of a pcapng.
    let records = pcap_records(&data("nmap-sS-v4.pcap"));
    let raw = dir.join("raw-ip.pcap");
    fs::write(&raw, write_pcap_ns(&records, 101)).expect("write");
    nothing(&raw, "unsupported link type 101");
    let sll = dir.join("sll.pcapng");
    let ifaces = [
        NgIface { linktype: 1, tsresol: None, tsoffset_s: None },
        NgIface { linktype: 113, tsresol: None, tsoffset_s: None },
    ];
    fs::write(&sll, write_pcapng(&records[..3], &ifaces, |i| i.min(1))).expect("write");
    let out = replay(&sll, &[]);
    assert!(!out.status.success());
    assert_eq!(text(&out.stderr), format!("ipscan: {}: unsupported link type 113\n", sll.display()));
}

/// Three scans from one source in one capture, each starting after the previous one's window
/// lapsed: expiries are stamped at the lapse instant (last probe + 3 s), not when the next
/// frame or the end of the capture noticed them, and lines come out in time order even when a
/// lapse falls after the next scan's detection (FIN lapses at :14.598, Xmas crosses at :14.273).
#[test]
fn consecutive_scans_expire_at_the_lapse_instant() {
    require_root();
    let mut records = Vec::new();
    for name in ["nmap-sS-v4", "nmap-sF-v4", "nmap-sX-v4"] {
        records.extend(pcap_records(&data(&format!("{name}.pcap"))));
    }
    let dir = TempDir::new();
    let file = dir.join("three-scans.pcap");
    fs::write(&file, write_pcap_ns(&records, 1)).expect("write");
    let out = replay(&file, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let want = fs::read_to_string(data("three-scans-v4.expected")).expect("golden");
    assert_eq!(text(&out.stdout), want);
}

/// The daemon watching a real scan and a replay of the capture taken on the same interface at
/// the same time write the same lines (stamps aside: the daemon notices a lapse up to a second
/// after replay's exact instant).
#[test]
fn replay_matches_the_live_daemon() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let conf = ipscan_tests::write_config(&dir, CONFIG);
    let conf = conf.to_str().expect("utf8");
    let d = ipscan_tests::Daemon::start(&bed.victim, &bed.victim_if, &dir, &["--config", conf]);
    let file = dir.join("live.pcap");
    let cap = Capture::start_args(&bed.victim, &bed.victim_if, "", file.clone(), &["-Q", "in", "-s", "128"]);
    run_in(
        &bed.attacker,
        120,
        "nmap",
        &["-sS", "-g", "40000", "-r", "-p", "1-40", "--max-retries", "0", "-Pn", "-n", VICTIM4],
    );
    let live = d.wait_log("both expiries", std::time::Duration::from_secs(15), |l| {
        l.iter().filter(|x| x.contains(" mode expired ")).count() == 2
    });
    cap.finish();
    let out = replay(&file, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let replayed: Vec<String> = text(&out.stdout).lines().map(|l| l[16..].to_owned()).collect();
    assert_eq!(replayed, live, "replay differs from the live log");
    // Nine connection-attempt lines (ports 1-9), then the two detections suppress the rest,
    // then the two expiries.
    assert_eq!(live.len(), 13, "{live:?}");
    assert_eq!(live.iter().filter(|l| l.contains(" connection attempt from ")).count(), 9, "{live:?}");
}

/// A tripwire replays as it runs live: nmap's one probe of port 23 in the SYN scan capture is
/// the tripwire's detection, and its mode ends a window after it with that one probe's totals.
#[test]
fn a_tripwire_port_in_a_capture_replays_as_a_detection() {
    require_root();
    let dir = TempDir::new();
    let conf = dir.join("ipscan.conf");
    fs::write(&conf, "set scans_only\ntripwire tcp 23\nwindow tripwire 3s\nset syn_scan false\nset portscan false\n")
        .expect("config");
    let out = Command::new(ipscan_bin())
        .env("TZ", "UTC")
        .arg("replay")
        .arg(data("nmap-sS-v4.pcap"))
        .arg("--config")
        .arg(&conf)
        .output()
        .expect("ipscan replay");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let probe = pcap::packets(&data("nmap-sS-v4.pcap"))
        .into_iter()
        .find(|p| p.proto == 6 && p.dport == 23)
        .expect("nmap probed port 23");
    assert_eq!(
        text(&out.stdout),
        format!(
            "Nov 27 21:31:05 IP: tripwire detected [port 23] from 198.18.0.1 [port 40000]\n\
             Nov 27 21:31:08 IP: tripwire mode expired for 198.18.0.1 - received a total of 1 packets ({} bytes).\n",
            probe.payload
        )
    );
}

/// A capture of both directions replays the host's rejects through the egress program when
/// `--local` names the host: six SYNs refused by six resets, and a datagram refused by a port
/// unreachable, are the rejected probes' detection and expiry; without `--local` the resets
/// are taken as received, counted toward nothing, and a warning says so.
#[test]
fn the_host_s_rejects_replay_through_the_egress_program_with_local() {
    use ipscan_tests::frames::{DST4 as V, Frame, L4, SRC4 as A};
    require_root();
    let t0 = 1_800_000_000 * 1_000_000_000u64;
    let mut records = Vec::new();
    let mut push = |ts_ns: u64, data: Vec<u8>| records.push(Record { ts_ns, orig_len: data.len() as u32, data });
    for (i, port) in (1..=6u16).enumerate() {
        let at = t0 + i as u64 * 100_000_000;
        push(at, Frame::default().v4(A, V, &L4::syn(40000, port)));
        push(at + 50_000, Frame::default().v4(V, A, &L4::reset(port, 40000)));
    }
    push(t0 + 1_000_000_000, Frame::default().v4(A, V, &L4::Udp { sport: 40000, dport: 161 }));
    push(t0 + 1_000_050_000, Frame::default().v4(V, A, &L4::port_unreachable4(V, A, 40000, 161)));
    let dir = TempDir::new();
    let file = dir.join("rejects.pcap");
    fs::write(&file, write_pcap_ns(&records, 1)).expect("write pcap");
    let conf = dir.join("ipscan.conf");
    fs::write(&conf, "set scans_only\nset rejected\nwindow rejected 3s\nset syn_scan false\nset portscan false\n")
        .expect("config");
    let run = |extra: &[&str]| {
        let out = Command::new(ipscan_bin())
            .env("TZ", "UTC")
            .arg("replay")
            .arg(&file)
            .arg("--config")
            .arg(&conf)
            .args(extra)
            .output()
            .expect("ipscan replay");
        assert!(out.status.success(), "{}", text(&out.stderr));
        (text(&out.stdout), text(&out.stderr))
    };
    let (out, err) = run(&["--local", "198.18.0.2,2001:db8::2"]);
    assert_eq!(
        out,
        "Jan 15 08:00:00 TCP: rejected probes detected [ports 1,2,3,4,5] from 198.18.0.1 [port 40000]\n\
         Jan 15 08:00:03 TCP: rejected probes mode expired for 198.18.0.1 - 6 probes rejected.\n"
    );
    assert_eq!(err, format!("ipscan: replayed 14 frames (0 malformed, 7 sent by this host) from {}\n", file.display()));
    let (out, err) = run(&[]);
    assert_eq!(out, "");
    assert!(
        err.starts_with("ipscan: warning: the configuration counts the host's rejects") && err.contains("14 frames"),
        "{err}"
    );
}
