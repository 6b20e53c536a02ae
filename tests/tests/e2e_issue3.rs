//! End to end for issue 3: per-packet lines, UDP/ICMP/smurf/traceroute/bogus/fragment
//! detections, rules, scans_only, SIGHUP reload, log_ip and syslog, with real tools (nmap,
//! ping, traceroute, hping3) and crafted packets (scapy) sent from the attacker namespace to
//! `ipscan run` in the victim namespace.

use std::{
    os::unix::net::UnixDatagram,
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use ipscan_tests::{
    ATTACKER4, ATTACKER6, Capture, Daemon, NetNs, TempDir, Testbed, VICTIM4, VICTIM6, ipscan_bin,
    pcap::{self, Packet, first_distinct},
    run_in, sh, write_config,
};

const WAIT: Duration = Duration::from_secs(20);

/// Debian's python3-scapy is installed for the system interpreter, which may not be the
/// first `python3` on PATH.
const PY: &str = "/usr/bin/python3";

fn conf_arg(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn start(bed: &Testbed, dir: &TempDir, config: &str) -> Daemon {
    let conf = write_config(dir, config);
    Daemon::start(&bed.victim, &bed.victim_if, dir, &["--config", conf_arg(&conf)])
}

fn count(lines: &[String], needle: &str) -> usize {
    lines.iter().filter(|l| l.contains(needle)).count()
}

fn show(lines: &[String]) -> String {
    lines.join("\n")
}

/// `ssh`, or `port N`, as ipscan (and iplog) names a port.
fn svc(port: u16, proto: &str) -> String {
    ipscan::config::service_name(port, proto).unwrap_or_else(|| format!("port {port}"))
}

/// The MAC address of an interface in a namespace.
fn mac(ns: &NetNs, ifname: &str) -> String {
    let out = sh(Command::new("ip").args(["-n", &ns.name, "-o", "link", "show", ifname]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_else(|| panic!("no MAC in {text}"))
        .to_owned()
}

/// Runs a scapy script in the attacker namespace. `send4`/`send6` put packets on the wire
/// towards the victim's MAC (so spoofed sources need no routes).
fn scapy(bed: &Testbed, body: &str) {
    let script = format!(
        "from scapy.all import *\nconf.verb = 0\n\
         IF = '{ifname}'\nVM = '{vmac}'\n\
         def send4(pkts): sendp([Ether(dst=VM)/p for p in pkts], iface=IF)\n\
         def send6(pkts): sendp([Ether(dst=VM)/p for p in pkts], iface=IF)\n{body}\n",
        ifname = bed.attacker_if,
        vmac = mac(&bed.victim, &bed.victim_if),
    );
    run_in(&bed.attacker, 60, PY, &["-c", &script]);
}

/// Waits for the lines of `want`, then asserts that the log holds exactly these, in any order.
fn wait_exactly(d: &Daemon, want: &[String], why: &str) {
    let mut got = wait_all(d, want);
    got.sort();
    let mut w = want.to_vec();
    w.sort();
    assert_eq!(got, w, "{why}");
}

/// Waits until every line of `want` is logged, then a little more, and returns the log.
fn wait_all(d: &Daemon, want: &[String]) -> Vec<String> {
    d.wait_log("expected lines", WAIT, |l| want.iter().all(|w| l.contains(w)));
    // Late duplicates or strays would arrive within this.
    thread::sleep(Duration::from_millis(800));
    d.lines()
}

#[test]
fn per_packet_lines_v4_and_v6() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let d = start(&bed, &dir, "# iplog defaults: every connection attempt, datagram and ICMP message\n");
    run_in(&bed.attacker, 10, "hping3", &["-q", "-S", "-p", "22", "-s", "40000", "-k", "-c", "1", VICTIM4]);
    run_in(
        &bed.attacker,
        10,
        "hping3",
        &["-q", "--udp", "-p", "9", "-s", "40001", "-k", "-d", "300", "-c", "1", VICTIM4],
    );
    run_in(&bed.attacker, 10, "ping", &["-n", "-c", "1", VICTIM4]);
    run_in(&bed.attacker, 10, "ping", &["-6", "-n", "-c", "1", VICTIM6]);
    let client = format!(
        "import socket\ns = socket.socket(socket.AF_INET6)\ns.bind(('{ATTACKER6}', 40002))\n\
         s.connect_ex(('{VICTIM6}', 22))\n"
    );
    run_in(&bed.attacker, 10, "python3", &["-c", &client]);
    let want = vec![
        format!("TCP: {} connection attempt from {ATTACKER4}:40000", svc(22, "tcp")),
        format!("UDP: dgram to {} from {ATTACKER4}:40001 (300 data bytes)", svc(9, "udp")),
        format!("ICMP: echo from {ATTACKER4} (64 bytes)"),
        format!("ICMP: echo from {ATTACKER6} (64 bytes)"),
        format!("TCP: {} connection attempt from [{ATTACKER6}]:40002", svc(22, "tcp")),
    ];
    wait_exactly(&d, &want, "exactly these lines, once each");
}

#[test]
fn per_packet_lines_with_log_dest() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let d = start(&bed, &dir, "set log_dest true\n");
    run_in(&bed.attacker, 10, "hping3", &["-q", "-S", "-p", "22", "-s", "40000", "-k", "-c", "1", VICTIM4]);
    run_in(
        &bed.attacker,
        10,
        "hping3",
        &["-q", "--udp", "-p", "9", "-s", "40001", "-k", "-d", "10", "-c", "1", VICTIM4],
    );
    run_in(&bed.attacker, 10, "ping", &["-6", "-n", "-c", "1", VICTIM6]);
    let want = vec![
        format!("TCP: {} connection attempt to {VICTIM4} from {ATTACKER4}:40000", svc(22, "tcp")),
        format!("UDP: dgram to {VICTIM4}:{} from {ATTACKER4}:40001 (10 data bytes)", svc(9, "udp")),
        format!("ICMP: echo from {ATTACKER6} to {VICTIM6} (64 bytes)"),
    ];
    let lines = wait_all(&d, &want);
    assert_eq!(lines.len(), 3, "{}", show(&lines));
}

fn list(v: &[u16], full: bool) -> String {
    let body: Vec<String> = v.iter().map(u16::to_string).collect();
    let word = if v.len() == 1 && !full { "port" } else { "ports" };
    format!("[{word} {}{}]", body.join(","), if full { ",..." } else { "" })
}

#[test]
fn nmap_udp_scan_is_detected_once_and_expires_with_totals() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let d = start(&bed, &dir, "set scans_only true\nwindow udp_scan 3s\n");
    let cap =
        Capture::start(&bed.attacker, &bed.attacker_if, &format!("udp and src host {ATTACKER4}"), dir.join("u.pcap"));
    run_in(
        &bed.attacker,
        120,
        "nmap",
        &["-sU", "-Pn", "-n", "-r", "--max-retries", "0", "-g", "40000", "-p", "1-40", VICTIM4],
    );
    cap.finish();
    let pkts: Vec<Packet> = pcap::packets(&dir.join("u.pcap"));
    assert!(pkts.len() >= 40, "nmap sent {} probes", pkts.len());
    // The line is made when the 25th distinct port (iplog's threshold) arrives.
    let mut seen = Vec::new();
    let mut upto = Vec::new();
    for p in &pkts {
        upto.push(p.clone());
        if !seen.contains(&p.dport) {
            seen.push(p.dport);
        }
        if seen.len() == 25 {
            break;
        }
    }
    let dports = first_distinct(&upto, 10, |p| p.dport);
    let detection =
        format!("UDP: scan/flood detected {} from {ATTACKER4} {}", list(&dports, true), list(&[40000], false));
    let bytes: u64 = pkts.iter().map(|p| p.payload).sum();
    let expiry = format!(
        "UDP: scan/flood mode expired for {ATTACKER4} - received a total of {} packets ({bytes} bytes).",
        pkts.len()
    );
    let lines = d.wait_log("udp scan expiry", WAIT, |l| l.contains(&expiry));
    assert_eq!(count(&lines, &detection), 1, "want once: {detection}\n{}", show(&lines));
    assert_eq!(lines.len(), 2, "{}", show(&lines));
}

#[test]
fn ping_flood_v4_and_v6_but_not_a_slow_ping() {
    let bed = Testbed::new();
    bed.add_attacker_addr("198.18.0.3/24");
    let dir = TempDir::new();
    let d = start(&bed, &dir, "set scans_only true\nthreshold ping_flood 50\nwindow ping_flood 2s\n");
    run_in(&bed.attacker, 10, "ping", &["-n", "-q", "-c", "5", "-i", "0.2", "-I", "198.18.0.3", VICTIM4]);
    run_in(&bed.attacker, 20, "ping", &["-n", "-q", "-f", "-c", "200", VICTIM4]);
    run_in(&bed.attacker, 20, "ping", &["-6", "-n", "-q", "-f", "-c", "200", VICTIM6]);
    let want = vec![
        format!("ICMP: ping flood detected from {ATTACKER4}"),
        format!("ICMP: ping flood detected from {ATTACKER6}"),
        format!("ICMP: ping flood mode expired for {ATTACKER4} - received a total of 200 packets (12800 bytes)."),
        format!("ICMP: ping flood mode expired for {ATTACKER6} - received a total of 200 packets (12800 bytes)."),
    ];
    let lines = wait_all(&d, &want);
    assert_eq!(lines.len(), 4, "{}", show(&lines));
    assert_eq!(count(&lines, "198.18.0.3"), 0, "a slow ping is not a flood");
}

#[test]
fn traceroute_once_per_source_and_probe_kind() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let d = start(&bed, &dir, "set scans_only true\n");
    let args = ["-n", "-q", "3", "-m", "2", "-w", "1"];
    let tr = |extra: &[&str], target: &str| {
        let mut a: Vec<&str> = extra.to_vec();
        a.extend(args);
        a.push(target);
        run_in(&bed.attacker, 20, "traceroute", &a);
    };
    tr(&[], VICTIM4);
    tr(&[], VICTIM4); // within 15 s: no second line
    tr(&["-I"], VICTIM4);
    tr(&["-6"], VICTIM6);
    let want = vec![
        format!("UDP: traceroute from {ATTACKER4}"),
        format!("ICMP: traceroute from {ATTACKER4}"),
        format!("UDP: traceroute from {ATTACKER6}"),
    ];
    wait_exactly(&d, &want, "one line per source and kind");
}

/// `hping3 --udp --flood -p PORT` from the attacker for two seconds. `--flood` ignores -c:
/// timeout bounds it (hping3 ends on SIGINT with status 0 or 130).
fn udp_flood_for_2s(bed: &Testbed, port: &str) {
    let _ = bed
        .attacker
        .cmd("timeout")
        .args(["-s", "INT", "2", "hping3", "-q", "--udp", "--flood", "-p", port, VICTIM4])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run hping3");
}

#[test]
fn hping3_udp_flood_but_not_a_busy_dns_client() {
    let bed = Testbed::new();
    bed.add_attacker_addr("198.18.0.3/24");
    let dir = TempDir::new();
    let d = start(&bed, &dir, "set scans_only true\nwindow udp_flood 2s\nwindow udp_scan 2s\n");
    // 200 queries to one port over 2 s.
    let client = format!(
        "import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.bind(('198.18.0.3', 0))\nfor i in range(200):\n    s.sendto(b'q' * 30, ('{VICTIM4}', 53))\n    time.sleep(0.01)\n"
    );
    run_in(&bed.attacker, 20, "python3", &["-c", &client]);
    udp_flood_for_2s(&bed, "53");
    let det = format!("UDP: scan/flood detected [port 53] from {ATTACKER4} [ports ");
    let exp = format!("UDP: scan/flood mode expired for {ATTACKER4} - received a total of ");
    let lines = d.wait_log("udp flood expiry", WAIT, |l| count(l, &exp) == 1);
    assert_eq!(count(&lines, &det), 1, "{}", show(&lines));
    assert_eq!(count(&lines, "198.18.0.3"), 0, "a busy DNS client is neither:\n{}", show(&lines));
    assert_eq!(lines.len(), 2, "{}", show(&lines));
}

/// A UDP flood across ports crosses both UDP detections (25 distinct ports, 1,000 packets);
/// the log shows one `scan/flood` mode, as iplog's single UDP state did, while the kernel
/// counts two detections.
#[test]
fn a_udp_flood_across_ports_is_one_scan_flood_mode() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let d = start(&bed, &dir, "set scans_only true\nwindow udp_flood 2s\nwindow udp_scan 2s\n");
    // Destination ports 1, 2, 3, ... (`++1`).
    udp_flood_for_2s(&bed, "++1");
    let det = format!("UDP: scan/flood detected [ports 1,2,3,4,5,6,7,8,9,10,...] from {ATTACKER4} [ports ");
    let exp = format!("UDP: scan/flood mode expired for {ATTACKER4} - received a total of ");
    let lines = d.wait_log("the scan/flood expiry", WAIT, |l| count(l, &exp) == 1);
    // Both windows (2 s) have lapsed by now; give a second expiry line time to show up.
    thread::sleep(Duration::from_secs(3));
    let lines = d.wait_log("the log", WAIT, |l| l.len() >= lines.len());
    assert_eq!(count(&lines, &det), 1, "{}", show(&lines));
    assert_eq!(count(&lines, &exp), 1, "{}", show(&lines));
    assert_eq!(lines.len(), 2, "{}", show(&lines));
    let (ok, out, err) = ipscan_tests::cli(&["stats", "--json", "-i", &bed.victim_if]);
    assert!(ok, "ipscan stats: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v[0]["counters"]["detections"], 2, "the scan and the flood, in the kernel: {out}");
}

#[test]
fn bogus_flag_combinations_but_not_ecn() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let d = start(&bed, &dir, "set scans_only true\n");
    let hp = |flags: &[&str], dport: &str, sport: &str| {
        let mut a = vec!["-q"];
        a.extend_from_slice(flags);
        a.extend(["-p", dport, "-s", sport, "-k", "-c", "1", VICTIM4]);
        // hping3 exits 1 when nothing answers (the victim ignores SYN+RST): not a failure here.
        let status = bed
            .attacker
            .cmd("timeout")
            .args(["-s", "INT", "10", "hping3"])
            .args(&a)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run hping3");
        assert!(matches!(status.code(), Some(0 | 1)), "hping3 {a:?}: {status}");
    };
    hp(&["-S", "-F"], "80", "40000");
    hp(&["-S", "-R"], "81", "40001");
    hp(&["-A", "-X", "-Y"], "82", "40002"); // ACK with ECE and CWR: ordinary ECN traffic
    scapy(
        &bed,
        &format!(
            "send4([IP(src='{ATTACKER4}', dst='{VICTIM4}')/TCP(sport=40003, dport=83, flags='FSRPAUEC'),\n\
             IP(src='{ATTACKER4}', dst='{VICTIM4}')/TCP(sport=40004, dport=84, flags='FR'),\n\
             IP(src='{ATTACKER4}', dst='{VICTIM4}')/TCP(sport=40005, dport=85, flags='SEC')])\n\
             send6([IPv6(src='{ATTACKER6}', dst='{VICTIM6}')/TCP(sport=40006, dport=86, flags='SF')])"
        ),
    );
    let want: Vec<String> = [
        format!("{ATTACKER4}:40000 (dest port 80)"),
        format!("{ATTACKER4}:40001 (dest port 81)"),
        format!("{ATTACKER4}:40003 (dest port 83)"),
        format!("{ATTACKER4}:40004 (dest port 84)"),
        format!("[{ATTACKER6}]:40006 (dest port 86)"),
    ]
    .iter()
    .map(|t| format!("TCP: Bogus TCP flags set by {t}"))
    .collect();
    wait_exactly(&d, &want, "ECN (ports 82, 85) is not bogus");
}

/// ICMP errors name what they quote as iplog did: a router reporting another host, a redirect's
/// gateway and target, a quoted ICMP message, and a host reporting itself (scapy, through the
/// real program and daemon).
#[test]
fn icmp_errors_name_what_they_quote() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let d = start(&bed, &dir, "# iplog defaults\n");
    scapy(
        &bed,
        &format!(
            "router = '198.18.7.1'\n\
             send4([IP(src=router, dst='{VICTIM4}')/ICMP(type=3, code=1)/IP(src='{VICTIM4}', dst='198.18.9.9')/UDP(sport=40000, dport=53)])\n\
             send4([IP(src=router, dst='{VICTIM4}')/ICMP(type=5, code=1, gw='198.18.7.254')/IP(src='{VICTIM4}', dst='198.18.9.10')/TCP(sport=40001, dport=80)])\n\
             send4([IP(src='{ATTACKER4}', dst='{VICTIM4}')/ICMP(type=3, code=3)/IP(src='{VICTIM4}', dst='{ATTACKER4}')/UDP(sport=40002, dport=33434)])\n\
             send4([IP(src=router, dst='{VICTIM4}')/ICMP(type=11, code=0)/IP(src='{VICTIM4}', dst='198.18.9.9', ttl=1)/ICMP(type=8, id=7, seq=1)])\n\
             send6([IPv6(src='2001:db8:7::1', dst='{VICTIM6}')/ICMPv6DestUnreach(code=3)/IPv6(src='{VICTIM6}', dst='2001:db8:9::9')/UDP(sport=40003, dport=53)])"
        ),
    );
    let want = vec![
        "ICMP: (from 198.18.7.1) 198.18.9.9: host is unreachable to (udp: dest port 53, source port 40000)".to_owned(),
        "ICMP: (198.18.7.254) redirect 198.18.7.1 to host 198.18.9.10".to_owned(),
        format!("ICMP: {ATTACKER4}: port is unreachable to (udp: dest port 33434, source port 40002)"),
        "ICMP: 198.18.7.1 time exceeded (ICMP: ICMP_ECHO)".to_owned(),
        "ICMP: (from 2001:db8:7::1) 2001:db8:9::9: host is unreachable to (udp: dest port 53, source port 40003)"
            .to_owned(),
    ];
    wait_exactly(&d, &want, "exactly these lines, once each");
}

#[test]
fn smurf_per_network_v4_and_v6() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let d = start(&bed, &dir, "set scans_only true\nthreshold smurf 50\nwindow smurf 3s\n");
    scapy(
        &bed,
        &format!(
            "send4([IP(src='198.18.5.%d' % i, dst='{VICTIM4}')/ICMP(type=0, id=7, seq=i)/Raw(b'x' * 56) for i in range(1, 101)])\n\
             send6([IPv6(src='2001:db8:5:1::%x' % i, dst='{VICTIM6}')/ICMPv6EchoReply(id=7, seq=i, data=b'x' * 56) for i in range(1, 101)])"
        ),
    );
    let want = vec![
        "ICMP/UDP: smurf attack detected from 198.18.5.0".to_owned(),
        "ICMP/UDP: smurf attack detected from 2001:db8:5:1::".to_owned(),
        "ICMP/UDP: smurf attack mode expired for 198.18.5.0 - received a total of 100 packets (6400 bytes).".to_owned(),
        "ICMP/UDP: smurf attack mode expired for 2001:db8:5:1:: - received a total of 100 packets (6400 bytes)."
            .to_owned(),
    ];
    let lines = wait_all(&d, &want);
    assert_eq!(lines.len(), 4, "{}", show(&lines));
}

#[test]
fn fragment_attacks_v4_and_v6() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let d = start(&bed, &dir, "set scans_only true\n");
    scapy(
        &bed,
        &format!(
            "h = dict(src='{ATTACKER4}', dst='{VICTIM4}')\n\
             dup = IP(id=1000, flags='MF', frag=0, proto=17, **h)/Raw(b'a' * 16)\n\
             send4([dup, dup])\n\
             send4([IP(id=1001, flags='MF', frag=0, proto=17, **h)/Raw(b'a' * 24),\n\
                    IP(id=1001, flags='MF', frag=1, proto=17, **h)/Raw(b'b' * 16)])\n\
             send4([IP(id=1002, frag=8189, proto=17, **h)/Raw(b'c' * 100)])\n\
             send4([IP(id=1003, flags='MF', frag=0, proto=6, **h)/Raw(b'd' * 8)])\n\
             f6 = IPv6(src='{ATTACKER6}', dst='{VICTIM6}')/IPv6ExtHdrFragment(id=2000, offset=0, m=1, nh=17)/Raw(b'e' * 16)\n\
             send6([f6, f6])"
        ),
    );
    let want = vec![
        format!("Duplicate IP fragments from {ATTACKER4}"),
        format!("Overlapping IP fragments from {ATTACKER4}"),
        format!("Oversized IP fragment from {ATTACKER4}"),
        format!("Tiny IP fragment from {ATTACKER4}"),
        format!("Duplicate IP fragments from {ATTACKER6}"),
    ];
    wait_exactly(&d, &want, "exactly these lines, once each");
}

#[test]
fn ignore_rule_hides_and_does_not_count() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let d = start(&bed, &dir, "ignore tcp dport 22\nthreshold portscan 4\nwindow portscan 3s\n");
    let syn = |ports: &str| {
        format!("send4([IP(src='{ATTACKER4}', dst='{VICTIM4}')/TCP(sport=40000, dport=p, flags='S') for p in {ports}])")
    };
    scapy(&bed, &syn("[21, 22, 23, 24]"));
    let attempts: Vec<String> = [21u16, 23, 24]
        .iter()
        .map(|p| format!("TCP: {} connection attempt from {ATTACKER4}:40000", svc(*p, "tcp")))
        .collect();
    let lines = wait_all(&d, &attempts);
    assert_eq!(lines.len(), 3, "nothing for port 22, no detection at 3 counted ports:\n{}", show(&lines));
    scapy(&bed, &syn("[25]"));
    let want = vec![
        format!("TCP: port scan detected [ports 21,23,24,25] from {ATTACKER4} [port 40000]"),
        format!("TCP: port scan mode expired for {ATTACKER4} - received a total of 4 packets (80 bytes)."),
    ];
    let lines = wait_all(&d, &want);
    assert_eq!(lines.len(), 5, "the threshold packet's own line is suppressed:\n{}", show(&lines));
}

#[test]
fn scans_only_keeps_alerts() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let d = start(&bed, &dir, "set scans_only true\n");
    run_in(&bed.attacker, 10, "ping", &["-n", "-c", "2", "-i", "0.2", VICTIM4]);
    scapy(
        &bed,
        &format!(
            "send4([IP(src='{ATTACKER4}', dst='{VICTIM4}')/TCP(sport=40000, dport=21, flags='S'),\n\
             IP(src='{ATTACKER4}', dst='{VICTIM4}')/UDP(sport=40001, dport=9)/Raw(b'z'),\n\
             IP(src='{ATTACKER4}', dst='{VICTIM4}')/TCP(sport=40002, dport=80, flags='SF')])"
        ),
    );
    let want = vec![format!("TCP: Bogus TCP flags set by {ATTACKER4}:40002 (dest port 80)")];
    let lines = wait_all(&d, &want);
    assert_eq!(lines, want, "no ordinary lines under scans_only");
}

#[test]
fn sighup_reloads_thresholds_and_keeps_modes() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let base = "set scans_only true\nthreshold portscan 5\nwindow portscan 10s\nwindow null_scan 10s\n";
    let mut d = start(&bed, &dir, &format!("{base}threshold null_scan 20\n"));
    let probes = |flags: &str, sport: u16, ports: &str| {
        format!(
            "send4([IP(src='{ATTACKER4}', dst='{VICTIM4}')/TCP(sport={sport}, dport=p, flags='{flags}') for p in {ports}])\n"
        )
    };
    scapy(&bed, &format!("{}{}", probes("S", 40000, "range(1, 6)"), probes("", 40001, "range(1, 7)")));
    let port_scan = format!("TCP: port scan detected [ports 1,2,3,4,5] from {ATTACKER4} [port 40000]");
    d.wait_log("port scan", WAIT, |l| l.contains(&port_scan));
    // 6 null probes so far: under the old threshold (20), over the new one (8) after two more.
    write_config(&dir, &format!("{base}threshold null_scan 8\n"));
    d.signal(libc::SIGHUP);
    d.wait_stderr("ipscan: reloaded", WAIT);
    scapy(&bed, &format!("{}{}", probes("", 40001, "[7, 8]"), probes("S", 40000, "[6]")));
    let null_scan = format!("TCP: null scan detected [ports 1,2,3,4,5,6,7,8] from {ATTACKER4} [port 40001]");
    d.wait_log("null scan", WAIT, |l| l.contains(&null_scan));
    // A broken file changes nothing: one line on stderr, the daemon and its state carry on.
    write_config(&dir, "sett scans_only\n");
    d.signal(libc::SIGHUP);
    d.wait_stderr("reload failed", WAIT);
    let want = vec![
        port_scan,
        null_scan,
        format!("TCP: port scan mode expired for {ATTACKER4} - received a total of 6 packets (120 bytes)."),
        format!("TCP: null scan mode expired for {ATTACKER4} - received a total of 8 packets (160 bytes)."),
    ];
    let lines = wait_all(&d, &want);
    assert_eq!(lines.len(), 4, "the port scan was not detected again:\n{}", show(&lines));
    let (_, stderr) = d.stop();
    let failed: Vec<&str> = stderr.lines().filter(|l| l.contains("reload failed")).collect();
    assert_eq!(failed.len(), 1, "{stderr}");
    assert!(failed[0].contains("ipscan.conf:1: unknown keyword \"sett\""), "{stderr}");
}

#[test]
fn syslog_datagrams_with_configured_facility_and_priority() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let sock_path = dir.join("log.sock");
    let server = UnixDatagram::bind(&sock_path).expect("bind syslog socket");
    server.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    let conf = write_config(&dir, "facility local3\npriority warning\n");
    let d = Daemon::start_cmd(
        bed.victim.cmd(ipscan_bin()),
        &bed.victim_if,
        &dir,
        &["--config", conf_arg(&conf), "--syslog", "--syslog-socket", conf_arg(&sock_path)],
    );
    run_in(&bed.attacker, 10, "ping", &["-n", "-c", "1", VICTIM4]);
    let want = format!(" ipscan[{}]: ICMP: echo from {ATTACKER4} (64 bytes)", d.pid());
    let mut buf = [0u8; 1024];
    let mut got = Vec::new();
    for _ in 0..10 {
        if let Ok(n) = server.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            if got.last().is_some_and(|m| m.ends_with(&want)) {
                break;
            }
        }
    }
    let msg = got.iter().find(|m| m.ends_with(&want)).unwrap_or_else(|| panic!("no datagram {want:?}: {got:?}"));
    // local3 (19) * 8 + warning (4) = 156; then the `%b %e %H:%M:%S` stamp.
    assert!(msg.starts_with("<156>"), "{msg}");
    assert_eq!(msg.len(), "<156>".len() + 15 + want.len(), "{msg}");
    assert!(d.lines().is_empty(), "nothing goes to the log file");
}

/// `unshare -m` + a bind-mounted hosts file: the daemon's getnameinfo sees test names without
/// the host's /etc/hosts changing.
fn start_with_hosts(bed: &Testbed, dir: &TempDir, config: &str) -> Daemon {
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, format!("127.0.0.1 localhost\n{ATTACKER4} scanner.test\n{ATTACKER6} scanner6.test\n"))
        .expect("hosts");
    let conf = write_config(dir, config);
    let log = dir.join("ipscan.log");
    let mut cmd = Command::new("unshare");
    cmd.args([
        "-m",
        "--",
        "sh",
        "-c",
        "hosts=$0; ns=$1; bin=$2; shift 2; mount --bind \"$hosts\" /etc/hosts && exec nsenter --net=\"$ns\" -- \"$bin\" \"$@\"",
    ])
    .arg(&hosts)
    .arg(bed.victim.path())
    .arg(ipscan_bin());
    // start_cmd appends `run --iface IF` and then these.
    Daemon::start_cmd(cmd, &bed.victim_if, dir, &["--config", conf_arg(&conf), "--log-file", conf_arg(&log)])
}

#[test]
fn log_ip_names_sources_without_delaying_lines() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let d = start_with_hosts(&bed, &dir, "set log_ip true\n");
    let named4 = format!("ICMP: echo from scanner.test ({ATTACKER4}) (64 bytes)");
    let named6 = format!("ICMP: echo from scanner6.test ({ATTACKER6}) (64 bytes)");
    for _ in 0..20 {
        run_in(&bed.attacker, 10, "ping", &["-n", "-c", "1", VICTIM4]);
        run_in(&bed.attacker, 10, "ping", &["-6", "-n", "-c", "1", VICTIM6]);
        let l = d.lines();
        if l.contains(&named4) && l.contains(&named6) {
            break;
        }
        thread::sleep(Duration::from_millis(200));
    }
    let lines = d.lines();
    // First sight prints the bare address (the lookup runs in the background).
    assert_eq!(lines.first(), Some(&format!("ICMP: echo from {ATTACKER4} (64 bytes)")), "{}", show(&lines));
    assert!(lines.contains(&named4) && lines.contains(&named6), "{}", show(&lines));
}

#[test]
fn disable_resolver_keeps_addresses() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let mut d = start_with_hosts(&bed, &dir, "set log_ip true\nset disable_resolver true\n");
    let want = format!("ICMP: echo from {ATTACKER4} (64 bytes)");
    run_in(&bed.attacker, 10, "ping", &["-n", "-c", "1", VICTIM4]);
    d.wait_log("first echo line", WAIT, |l| l.contains(&want));
    for _ in 0..2 {
        thread::sleep(Duration::from_millis(300));
        run_in(&bed.attacker, 10, "ping", &["-n", "-c", "1", VICTIM4]);
    }
    thread::sleep(Duration::from_millis(500));
    d.stop();
    // Identical lines collapse; the count is written at exit.
    assert_eq!(d.lines(), vec![want, "last message repeated 2 times".to_owned()]);
}
