//! TCP scans end to end: the daemon attached in a victim namespace, real nmap scans from an
//! attacker namespace (`-sS` over IPv4 and IPv6, `-sT`, `-sF`, `-sN`, `-sX`), exact iplog lines
//! checked against a tcpdump capture of what was sent; a busy client raises nothing.

use std::{process::Stdio, time::Duration};

use ipscan_tests::{
    ATTACKER4, ATTACKER6, Capture, Daemon, TempDir, Testbed, VICTIM4, VICTIM6, count,
    pcap::{self, Packet, is_syn},
    run_in, write_config,
};

/// Short windows so expiry lines come within seconds.
const CONFIG: &str = "\
# test configuration: iplog's thresholds, 3 s windows
# only detections: per-packet lines (connection attempts) are checked in output.rs
set scans_only true
window portscan 3s
window syn_scan 3s
window fin_scan 3s
window null_scan 3s
window xmas_scan 3s
";
const WAIT: Duration = Duration::from_secs(15);

fn expired(label: &str, src: &str, pkts: &[Packet]) -> String {
    let bytes: u64 = pkts.iter().map(|p| p.payload).sum();
    format!("{label} mode expired for {src} - received a total of {} packets ({bytes} bytes).", pkts.len())
}

struct Scan<'a> {
    nmap: &'a [&'a str],
    target: &'a str,
    src: &'a str,
    /// (label, threshold) of every detection the scan must raise.
    expect: &'a [(&'a str, usize)],
    /// A literal line to find, as a check of the format itself.
    literal: Option<&'a str>,
    /// Keep only packets with these TCP flags (after masking ECN) for the totals.
    flags: fn(u8) -> bool,
}

fn scan(s: &Scan<'_>) {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let conf = write_config(&dir, CONFIG);
    let d = Daemon::start(&bed.victim, &bed.victim_if, &dir, &["--config", conf.to_str().expect("utf8")]);
    let cap =
        Capture::start(&bed.attacker, &bed.attacker_if, &format!("tcp and src host {}", s.src), dir.join("scan.pcap"));
    let mut args: Vec<&str> = s.nmap.to_vec();
    args.extend(["-Pn", "-n", "-r", "--max-retries", "0", "-p", "1-40", s.target]);
    run_in(&bed.attacker, 120, "nmap", &args);
    cap.finish();
    let pkts: Vec<Packet> =
        pcap::packets(&dir.join("scan.pcap")).into_iter().filter(|p| (s.flags)(p.tcp_flags & 0x3f)).collect();
    assert!(pkts.len() >= 40, "nmap sent {} probes", pkts.len());

    let want_detect: Vec<String> =
        s.expect.iter().map(|(label, t)| pcap::expected_detection(label, s.src, &pkts, *t)).collect();
    let want_expire: Vec<String> = s.expect.iter().map(|(label, _)| expired(label, s.src, &pkts)).collect();
    let lines = d.wait_log("detections and expiries", WAIT, |l| want_expire.iter().all(|w| l.contains(w)));
    for w in want_detect.iter() {
        assert_eq!(count(&lines, w), 1, "want once: {w}\nlog:\n{}", lines.join("\n"));
    }
    if let Some(lit) = s.literal {
        assert!(lines.iter().any(|l| l == lit), "want {lit}\nlog:\n{}", lines.join("\n"));
    }
    // Nothing else was detected, and every detection expired exactly once.
    assert_eq!(count(&lines, " detected "), s.expect.len(), "log:\n{}", lines.join("\n"));
    for w in &want_expire {
        assert_eq!(count(&lines, w), 1, "log:\n{}", lines.join("\n"));
    }
    assert_eq!(lines.len(), 2 * s.expect.len(), "log:\n{}", lines.join("\n"));
}

#[test]
fn nmap_syn_scan_ipv4() {
    scan(&Scan {
        nmap: &["-sS", "-g", "40000"],
        target: VICTIM4,
        src: ATTACKER4,
        expect: &[("TCP: SYN scan", 10), ("TCP: port scan", 15)],
        literal: Some("TCP: SYN scan detected [ports 1,2,3,4,5,6,7,8,9,10,...] from 198.18.0.1 [port 40000]"),
        flags: is_syn,
    });
}

#[test]
fn nmap_syn_scan_ipv6() {
    scan(&Scan {
        nmap: &["-6", "-sS", "-g", "40000"],
        target: VICTIM6,
        src: ATTACKER6,
        expect: &[("TCP: SYN scan", 10), ("TCP: port scan", 15)],
        literal: Some("TCP: SYN scan detected [ports 1,2,3,4,5,6,7,8,9,10,...] from 2001:db8::1 [port 40000]"),
        flags: is_syn,
    });
}

#[test]
fn nmap_connect_scan_is_a_port_scan_not_a_syn_scan() {
    scan(&Scan {
        // One connect() at a time keeps the wire order equal to the port order.
        nmap: &["-sT", "--max-parallelism", "1"],
        target: VICTIM4,
        src: ATTACKER4,
        expect: &[("TCP: port scan", 15)],
        literal: None,
        flags: is_syn,
    });
}

#[test]
fn nmap_fin_scan() {
    scan(&Scan {
        nmap: &["-sF", "-g", "40000"],
        target: VICTIM4,
        src: ATTACKER4,
        expect: &[("TCP: FIN scan", 10)],
        literal: Some("TCP: FIN scan detected [ports 1,2,3,4,5,6,7,8,9,10,...] from 198.18.0.1 [port 40000]"),
        flags: |f| f == 0x01,
    });
}

#[test]
fn nmap_null_scan() {
    scan(&Scan {
        nmap: &["-sN", "-g", "40000"],
        target: VICTIM4,
        src: ATTACKER4,
        expect: &[("TCP: null scan", 10)],
        literal: Some("TCP: null scan detected [ports 1,2,3,4,5,6,7,8,9,10,...] from 198.18.0.1 [port 40000]"),
        flags: |f| f == 0,
    });
}

#[test]
fn nmap_xmas_scan() {
    scan(&Scan {
        nmap: &["-sX", "-g", "40000"],
        target: VICTIM4,
        src: ATTACKER4,
        expect: &[("TCP: Xmas scan", 10)],
        literal: Some("TCP: Xmas scan detected [ports 1,2,3,4,5,6,7,8,9,10,...] from 198.18.0.1 [port 40000]"),
        flags: |f| f == 0x29,
    });
}

/// A client making 50 connections to one open port is not a scanner; a real scan from the same
/// address right after is still caught (so the silence was not a dead daemon).
#[test]
fn busy_client_fifty_connections_to_one_port_is_not_a_scan() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let conf = write_config(&dir, CONFIG);
    let d = Daemon::start(&bed.victim, &bed.victim_if, &dir, &["--config", conf.to_str().expect("utf8")]);
    let server = "import socket\n\
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
s.bind(('0.0.0.0', 8080)); s.listen(64)\n\
print('ready', flush=True)\n\
for _ in range(50):\n    c, _ = s.accept(); c.recv(16); c.sendall(b'ok'); c.close()\n";
    let mut srv = bed
        .victim
        .cmd("timeout")
        .args(["-s", "INT", "60", "python3", "-c", server])
        .stdout(Stdio::piped())
        .spawn()
        .expect("server");
    let mut out = std::io::BufReader::new(srv.stdout.take().expect("stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).expect("ready line");
    assert_eq!(line.trim(), "ready");
    let client = format!(
        "import socket\n\
ok = 0\n\
for _ in range(50):\n    c = socket.create_connection(('{VICTIM4}', 8080), timeout=5); c.sendall(b'hi'); ok += c.recv(2) == b'ok'; c.close()\n\
print(ok)\n"
    );
    let o = run_in(&bed.attacker, 60, "python3", &["-c", &client]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "50", "all 50 connections served");
    assert!(srv.wait().expect("server exit").success());
    // Longer than the 3 s window: any mode would have been logged and expired by now.
    std::thread::sleep(Duration::from_secs(5));
    let lines = d.lines();
    assert!(lines.is_empty(), "no alert for a busy client:\n{}", lines.join("\n"));

    run_in(
        &bed.attacker,
        60,
        "nmap",
        &["-sS", "-Pn", "-n", "-r", "-g", "40000", "--max-retries", "0", "-p", "1-20", VICTIM4],
    );
    d.wait_log("the real scan after the busy client", WAIT, |l| {
        l.iter().any(|x| x.starts_with("TCP: SYN scan detected [ports 1,2,3,4,5,6,7,8,9,10,...] from 198.18.0.1"))
    });
}
