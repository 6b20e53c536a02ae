//! UDP and ICMP detections end to end, with real tools (nmap -sU, ping -f, traceroute, hping3)
//! and crafted packets (scapy) sent from the attacker namespace to `ipscan run` in the victim
//! namespace: UDP scans and floods (but not a busy DNS client), ping floods (but not a slow
//! ping), smurf attacks per network, traceroutes once per source and probe kind.

use std::{thread, time::Duration};

use ipscan_tests::{
    ATTACKER4, ATTACKER6, Capture, Daemon, Flood, TempDir, Testbed, VICTIM4, VICTIM6, count,
    pcap::{self, Packet, first_distinct},
    port_list, run_in, scapy, show,
};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn nmap_udp_scan_is_detected_once_and_expires_with_totals() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let d = Daemon::with_config(&bed, &dir, "set scans_only true\nwindow udp_scan 3s\n");
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
    let detection = format!(
        "UDP: scan/flood detected {} from {ATTACKER4} {}",
        port_list(&dports, true),
        port_list(&[40000], false)
    );
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
fn hping3_udp_flood_but_not_a_busy_dns_client() {
    let bed = Testbed::new();
    bed.add_attacker_addr("198.18.0.3/24");
    let dir = TempDir::new();
    let d = Daemon::with_config(&bed, &dir, "set scans_only true\nwindow udp_flood 2s\nwindow udp_scan 2s\n");
    // 200 queries to one port over 2 s.
    let client = format!(
        "import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.bind(('198.18.0.3', 0))\nfor i in range(200):\n    s.sendto(b'q' * 30, ('{VICTIM4}', 53))\n    time.sleep(0.01)\n"
    );
    run_in(&bed.attacker, 20, "python3", &["-c", &client]);
    Flood::start(&bed.attacker, 2, &["--udp", "-p", "53", VICTIM4]).wait();
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
    let d = Daemon::with_config(&bed, &dir, "set scans_only true\nwindow udp_flood 2s\nwindow udp_scan 2s\n");
    // Destination ports 1, 2, 3, ... (`++1`).
    Flood::start(&bed.attacker, 2, &["--udp", "-p", "++1", VICTIM4]).wait();
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
fn ping_flood_v4_and_v6_but_not_a_slow_ping() {
    let bed = Testbed::new();
    bed.add_attacker_addr("198.18.0.3/24");
    let dir = TempDir::new();
    let d = Daemon::with_config(&bed, &dir, "set scans_only true\nthreshold ping_flood 50\nwindow ping_flood 2s\n");
    run_in(&bed.attacker, 10, "ping", &["-n", "-q", "-c", "5", "-i", "0.2", "-I", "198.18.0.3", VICTIM4]);
    run_in(&bed.attacker, 20, "ping", &["-n", "-q", "-f", "-c", "200", VICTIM4]);
    run_in(&bed.attacker, 20, "ping", &["-6", "-n", "-q", "-f", "-c", "200", VICTIM6]);
    let want = vec![
        format!("ICMP: ping flood detected from {ATTACKER4}"),
        format!("ICMP: ping flood detected from {ATTACKER6}"),
        format!("ICMP: ping flood mode expired for {ATTACKER4} - received a total of 200 packets (12800 bytes)."),
        format!("ICMP: ping flood mode expired for {ATTACKER6} - received a total of 200 packets (12800 bytes)."),
    ];
    let lines = d.wait_all(&want);
    assert_eq!(lines.len(), 4, "{}", show(&lines));
    assert_eq!(count(&lines, "198.18.0.3"), 0, "a slow ping is not a flood");
}

#[test]
fn smurf_per_network_v4_and_v6() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let d = Daemon::with_config(&bed, &dir, "set scans_only true\nthreshold smurf 50\nwindow smurf 3s\n");
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
    let lines = d.wait_all(&want);
    assert_eq!(lines.len(), 4, "{}", show(&lines));
}

#[test]
fn traceroute_once_per_source_and_probe_kind() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let d = Daemon::with_config(&bed, &dir, "set scans_only true\n");
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
    d.wait_exactly(&want, "one line per source and kind");
}
