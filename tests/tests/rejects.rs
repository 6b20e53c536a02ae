//! The host's rejects, end to end (the egress program beside the XDP program): real nmap scans
//! of closed ports are `rejected probes` (TCP from the resets, UDP from the port unreachables,
//! 5 ports), blocked in the kernel from the fifth reject on while others still connect, with
//! their JSON records and metrics, and a two-direction capture of the victim replays to the same
//! lines with `--local`; under `counting confirmed` a busy client of twenty open ports is no
//! port scan (it is one under plain counting), and a connect scan of closed ports is.

use std::{net::IpAddr, path::Path, process::Command, time::Duration};

use ipscan_tests::{
    ATTACKER4, ATTACKER6, Capture, Daemon, Listener, OTHER4, TempDir, Testbed, VICTIM4, VICTIM6, connects, counter,
    http_get, ipscan_bin, json_records,
    pcap::{self, Packet, is_syn},
    run_in, sample, show, stats_json, write_config,
};

const WAIT: Duration = Duration::from_secs(20);

/// TCP flags of the victim's resets refusing a SYN: RST and ACK.
const RST_ACK: u8 = 0x14;

fn nmap(bed: &Testbed, args: &[&str]) {
    let out = run_in(&bed.attacker, 60, "nmap", args);
    assert!(out.status.success(), "nmap {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The lines of `ipscan replay FILE --config CONF [extra]` (TZ=UTC), stamps stripped.
fn replay(file: &Path, conf: &Path, extra: &[&str]) -> Vec<String> {
    let out = Command::new(ipscan_bin())
        .env("TZ", "UTC")
        .arg("replay")
        .arg(file)
        .arg("--config")
        .arg(conf)
        .args(extra)
        .output()
        .expect("ipscan replay");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    stdout.lines().map(|l| l.get(16..).unwrap_or_default().to_owned()).collect()
}

/// Asserts that `lines` are `want`, each source's lines in order (`want`'s lines of a source
/// are those naming it); lines of different sources may interleave differently.
fn assert_per_source(lines: &[String], want: &[String], sources: &[&str]) {
    let of = |l: &[String], who: &str| -> Vec<String> { l.iter().filter(|x| x.contains(who)).cloned().collect() };
    for who in sources {
        assert_eq!(of(lines, who), of(want, who), "the lines of {who}:\n{}", show(lines));
    }
    let mut sorted = lines.to_vec();
    sorted.sort();
    let mut w = want.to_vec();
    w.sort();
    assert_eq!(sorted, w, "{}", show(lines));
}

/// `set rejected` and `block rejected`: nmap's SYN scan of closed ports (IPv4) and its UDP scan
/// (IPv6) are each a `rejected probes` line at the fifth refused port and a block from there on
/// (the SYN scan's tenth SYN never reaches the host: no SYN scan line); the blocked scanner no
/// longer connects, another source does; the JSON records and the metric; the victim's capture
/// replays to the same lines with `--local`.
#[test]
fn nmap_scans_of_closed_ports_are_rejected_probes_blocked_and_replayed() {
    let bed = Testbed::new();
    bed.add_attacker_addr(&format!("{OTHER4}/24"));
    let dir = TempDir::new();
    let conf = write_config(&dir, "set scans_only\nset rejected\nwindow rejected 3s\nblock rejected 60s\n");
    let json = dir.join("ipscan.json");
    let args =
        ["--config", conf.to_str().expect("utf8"), "--json-log", json.to_str().expect("utf8"), "--metrics", "9464"];
    let _srv = Listener::start(&bed.victim, 8080);
    let mut d = Daemon::start(&bed.victim, &bed.victim_if, &dir, &args);
    d.wait_stderr("rejected probes are counted from this host's resets and ICMP unreachables", WAIT);
    assert!(connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "the scanner connects before its scan");
    assert!(connects(&bed.attacker, ATTACKER6, VICTIM6, 8080), "also over IPv6");

    // Both directions on the victim: what passed XDP, and the victim's resets and unreachables.
    let pcap_file = dir.join("victim.pcap");
    let cap = Capture::start(&bed.victim, &bed.victim_if, "host 198.18.0.1 or host 2001:db8::1", pcap_file.clone());
    nmap(&bed, &["-sS", "-n", "-Pn", "-r", "--max-retries", "0", "-g", "40000", "-p", "1-20", VICTIM4]);
    nmap(&bed, &["-6", "-sU", "-n", "-Pn", "-r", "--max-retries", "0", "-g", "40000", "-p", "1-10", VICTIM6]);
    cap.finish();

    let pkts = pcap::packets(&pcap_file);
    let victim4: IpAddr = VICTIM4.parse().expect("addr");
    let attacker4: IpAddr = ATTACKER4.parse().expect("addr");
    let attacker6: IpAddr = ATTACKER6.parse().expect("addr");
    let syns: Vec<u16> =
        pkts.iter().filter(|p| p.src == attacker4 && p.proto == 6 && is_syn(p.tcp_flags)).map(|p| p.dport).collect();
    let resets: Vec<u16> = pkts
        .iter()
        .filter(|p| p.src == victim4 && p.dst == attacker4 && p.proto == 6 && p.tcp_flags & 0x3f == RST_ACK)
        .map(|p| p.sport)
        .collect();
    let dgrams: Vec<u16> = pkts.iter().filter(|p| p.src == attacker6 && p.proto == 17).map(|p| p.dport).collect();
    // The fifth reset blocks: the SYNs already on their way are refused too, no later one
    // reaches the host (nor its tenth, which would have been a SYN scan).
    assert!((5..10).contains(&syns.len()), "SYNs that reached the victim: {syns:?}");
    assert_eq!(syns, (1..=syns.len() as u16).collect::<Vec<_>>(), "SYNs that reached the victim");
    assert_eq!(resets, syns, "every SYN that reached the victim was refused, in order");
    assert!((5..10).contains(&dgrams.len()), "datagrams that reached the victim: {dgrams:?}");
    assert_eq!(dgrams, (1..=dgrams.len() as u16).collect::<Vec<_>>(), "datagrams that reached the victim");

    let want = vec![
        "TCP: rejected probes detected [ports 1,2,3,4,5] from 198.18.0.1 [port 40000]".to_owned(),
        "Blocked 198.18.0.1 for 60 s (rejected probes)".to_owned(),
        "UDP: rejected probes detected [ports 1,2,3,4,5] from 2001:db8::1 [port 40000]".to_owned(),
        "Blocked 2001:db8::1 for 60 s (rejected probes)".to_owned(),
        format!("TCP: rejected probes mode expired for 198.18.0.1 - {} probes rejected.", resets.len()),
        format!("UDP: rejected probes mode expired for 2001:db8::1 - {} probes rejected.", dgrams.len()),
    ];
    let lines = d.wait_all(&want);
    assert_per_source(&lines, &want, &[ATTACKER4, ATTACKER6]);

    assert!(!connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "the TCP scanner is blocked");
    assert!(!connects(&bed.attacker, ATTACKER6, VICTIM6, 8080), "the UDP scanner is blocked");
    assert!(connects(&bed.attacker, OTHER4, VICTIM4, 8080), "another source still connects");

    // The records of each event, cut down to `keys`.
    let records = |event: &str, keys: &[&str]| -> Vec<serde_json::Value> {
        json_records(&json, event)
            .iter()
            .map(|r| keys.iter().map(|k| ((*k).to_owned(), r[*k].clone())).collect::<serde_json::Map<_, _>>().into())
            .collect()
    };
    use serde_json::json;
    assert_eq!(
        records("detected", &["detection", "proto", "srcip", "dports", "sports", "message"]),
        [
            json!({"detection": "rejected probes", "proto": "TCP", "srcip": ATTACKER4, "dports": [1, 2, 3, 4, 5],
                   "sports": [40000], "message": want[0]}),
            json!({"detection": "rejected probes", "proto": "UDP", "srcip": ATTACKER6, "dports": [1, 2, 3, 4, 5],
                   "sports": [40000], "message": want[2]}),
        ]
    );
    assert_eq!(
        records("blocked", &["detection", "srcip", "block_secs", "message"]),
        [
            json!({"detection": "rejected probes", "srcip": ATTACKER4, "block_secs": 60, "message": want[1]}),
            json!({"detection": "rejected probes", "srcip": ATTACKER6, "block_secs": 60, "message": want[3]}),
        ]
    );
    // Two expiries may come in one pass of the daemon's sweep, in either order.
    let mut expired = records("expired", &["detection", "proto", "srcip", "packets", "message"]);
    expired.sort_by_key(|r| r["srcip"].to_string());
    assert_eq!(
        expired,
        [
            json!({"detection": "rejected probes", "proto": "TCP", "srcip": ATTACKER4, "packets": resets.len(),
                   "message": want[4]}),
            json!({"detection": "rejected probes", "proto": "UDP", "srcip": ATTACKER6, "packets": dgrams.len(),
                   "message": want[5]}),
        ]
    );

    let (_, body) = http_get(&bed.victim, 9464, "/metrics");
    let series = format!("ipscan_detections_total{{iface=\"{}\",kind=\"rejected probes\"}}", bed.victim_if);
    assert_eq!(sample(&body, &series), Some(2), "{series}\n{body}");
    // Every reset and port unreachable the victim sent, counted on egress.
    let stats = stats_json(&bed.victim_if, &[]);
    assert_eq!(counter(&stats, "rejects"), (resets.len() + dgrams.len()) as u64, "{stats}");
    let _ = d.stop();

    // The victim's capture, its own frames through the egress program: the same lines.
    let replayed = replay(&pcap_file, &conf, &["--local", "198.18.0.2,2001:db8::2"]);
    assert_per_source(&replayed, &want, &[ATTACKER4, ATTACKER6]);
    // Without --local, the resets and unreachables are taken as received: nothing.
    let replayed = replay(&pcap_file, &conf, &[]);
    assert_eq!(replayed, Vec::<String>::new(), "without --local");
}

/// `counting confirmed` at start, then `counting plain` by a reload, on one daemon. A busy client
/// of twenty open ports (each connected to twice) is nothing under confirmed counting (no port
/// refused it); nmap's connect scan of closed ports 3000-3030 from the same source is one port
/// scan line, its ports and source ports those of the first fifteen resets the victim sent, and
/// nmap's UDP scan of 30 closed ports (IPv6) is `scan/flood` from the port unreachables. After
/// the reload (the egress program detached), the same busy client is a port scan, every SYN
/// counted.
#[test]
fn counting_confirmed_tells_a_busy_client_from_a_connect_scan() {
    let bed = Testbed::new();
    let open: Vec<u16> = (5001..=5020).collect();
    let _srv: Vec<Listener> = open.iter().map(|&p| Listener::start(&bed.victim, p)).collect();
    let client = || {
        for _ in 0..2 {
            for &port in &open {
                assert!(connects(&bed.attacker, ATTACKER4, VICTIM4, port), "port {port} is open");
            }
        }
    };
    let dir = TempDir::new();
    let windows = "set scans_only\nwindow portscan 3s\nwindow udp_scan 3s\n";
    let conf = write_config(&dir, &format!("{windows}counting confirmed\n"));
    let mut d = Daemon::start(&bed.victim, &bed.victim_if, &dir, &["--config", conf.to_str().expect("utf8")]);
    d.wait_stderr(
        "counting confirmed: the port scan and the UDP scan count the probes this host rejects (egress program attached)",
        WAIT,
    );

    client();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(d.lines(), Vec::<String>::new(), "a busy client of open ports is no port scan");

    let file = dir.join("confirmed.pcap");
    let cap = Capture::start(&bed.victim, &bed.victim_if, "host 198.18.0.1 or host 2001:db8::1", file.clone());
    nmap(&bed, &["-sT", "-n", "-Pn", "-r", "--max-retries", "0", "-p", "3000-3030", VICTIM4]);
    nmap(&bed, &["-6", "-sU", "-n", "-Pn", "-r", "--max-retries", "0", "-g", "40000", "-p", "1-30", VICTIM6]);
    cap.finish();
    let pkts = pcap::packets(&file);
    let victim4: IpAddr = VICTIM4.parse().expect("addr");
    let attacker6: IpAddr = ATTACKER6.parse().expect("addr");
    // The resets turned back into the probes they refuse: nmap's source port, the port probed.
    let refused: Vec<Packet> = pkts
        .iter()
        .filter(|p| p.src == victim4 && p.proto == 6 && p.tcp_flags & 0x3f == RST_ACK)
        .map(|p| Packet { src: p.dst, dst: p.src, sport: p.dport, dport: p.sport, ..p.clone() })
        .collect();
    let mut probed: Vec<u16> = refused.iter().map(|p| p.dport).collect();
    probed.sort_unstable();
    assert_eq!(probed, (3000..=3030).collect::<Vec<_>>(), "one reset for each closed port");
    let dgrams: Vec<&Packet> = pkts.iter().filter(|p| p.src == attacker6 && p.proto == 17).collect();
    assert_eq!(dgrams.iter().map(|p| p.dport).collect::<Vec<_>>(), (1..=30).collect::<Vec<_>>(), "{dgrams:?}");
    // The expiries count the rejects (a reset does not say how long its probe was).
    let want = vec![
        pcap::expected_detection("TCP: port scan", ATTACKER4, &refused, 15),
        "UDP: scan/flood detected [ports 1,2,3,4,5,6,7,8,9,10,...] from 2001:db8::1 [port 40000]".to_owned(),
        "TCP: port scan mode expired for 198.18.0.1 - 31 probes rejected.".to_owned(),
        "UDP: scan/flood mode expired for 2001:db8::1 - 30 probes rejected.".to_owned(),
    ];
    let lines = d.wait_all(&want);
    assert_per_source(&lines, &want, &[ATTACKER4, ATTACKER6]);

    // Plain counting again: the egress program goes, and the busy client is a port scan.
    write_config(&dir, windows);
    d.signal(libc::SIGHUP);
    d.wait_stderr("egress program detached", WAIT);
    d.wait_stderr("reloaded", WAIT);
    let file = dir.join("plain.pcap");
    let cap = Capture::start(&bed.victim, &bed.victim_if, "tcp and src host 198.18.0.1", file.clone());
    client();
    cap.finish();
    let syns: Vec<Packet> = pcap::packets(&file).into_iter().filter(|p| is_syn(p.tcp_flags)).collect();
    assert_eq!(syns.len(), 2 * open.len(), "{syns:?}");
    let bytes: u64 = syns.iter().map(|p| p.payload).sum();
    let plain = vec![
        pcap::expected_detection("TCP: port scan", ATTACKER4, &syns, 15),
        format!("TCP: port scan mode expired for 198.18.0.1 - received a total of 40 packets ({bytes} bytes)."),
    ];
    let lines = d.wait_all(&[want.clone(), plain.clone()].concat());
    assert_per_source(&lines[..want.len()], &want, &[ATTACKER4, ATTACKER6]);
    assert_eq!(lines[want.len()..], plain[..], "{}", show(&lines));
    let _ = d.stop();
}
