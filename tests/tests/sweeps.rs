//! Sweeps (`set tcp_sweep`, `set udp_sweep`, `set ping_sweep`), end to end: real nmap sweeps of
//! twelve addresses routed through the victim (ipscan on a router's link): a SYN sweep of port
//! 22 (IPv4), a UDP sweep of port 161 (IPv6) and ping sweeps (IPv4, IPv6) are each one line naming
//! the ports, the count and the first hosts, with their JSON records and metrics; `block
//! tcp_sweep` drops the sweeper from the threshold probe on; a busy client of one host is none.
//! The hosts a line names are checked against the probes captured as they leave the scanner, in
//! the order sent (nmap does not send them in address order; on the victim's side, after XDP,
//! the SYN sweep's threshold probe is missing: it was dropped).

use std::time::Duration;

use std::net::IpAddr;

use ipscan_tests::{
    ATTACKER4, Daemon, Listener, OTHER4, TempDir, Testbed, VICTIM4, VICTIM6,
    capture::Capture,
    connects, count, http_get, json_records,
    pcap::{self, first_distinct, is_syn},
    run_in, sample, write_config,
};

const WAIT: Duration = Duration::from_secs(20);

/// nmap, one host at a time (the line's hosts are in probe order) and without waiting long for
/// answers that never come (the victim does not forward).
fn nmap(bed: &Testbed, args: &[&str]) {
    let mut all = vec!["-n", "--max-hostgroup", "1", "--max-retries", "0", "--max-rtt-timeout", "100ms"];
    all.extend_from_slice(args);
    let out = run_in(&bed.attacker, 120, "nmap", &all);
    assert!(out.status.success(), "nmap {all:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn nmap_sweeps_are_reported_with_their_hosts_and_the_syn_sweeper_is_blocked() {
    let bed = Testbed::new();
    bed.add_attacker_addr(&format!("{OTHER4}/24"));
    // The swept networks are behind the victim.
    bed.attacker.ip(&["route", "add", "198.18.1.0/24", "via", VICTIM4]);
    bed.attacker.ip(&["-6", "route", "add", "2001:db8:1::/64", "via", VICTIM6]);
    let dir = TempDir::new();
    let conf =
        write_config(&dir, "set scans_only\nset tcp_sweep\nset udp_sweep\nset ping_sweep\nblock tcp_sweep 60s\n");
    let json = dir.join("ipscan.json");
    let args =
        ["--config", conf.to_str().expect("utf8"), "--json-log", json.to_str().expect("utf8"), "--metrics", "9464"];
    let _ssh = Listener::start(&bed.victim, 2222);
    let mut d = Daemon::start(&bed.victim, &bed.victim_if, &dir, &args);

    // A busy client of one host: no sweep.
    for _ in 0..20 {
        assert!(connects(&bed.attacker, OTHER4, VICTIM4, 2222));
    }
    let cap = Capture::start(
        &bed.attacker,
        &bed.attacker_if,
        "src host 198.18.0.1 or src host 2001:db8::1",
        dir.join("sweeps.pcap"),
    );

    let hosts4: Vec<String> = (1..=12).map(|i| format!("198.18.1.{i}")).collect();
    let hosts6: Vec<String> = (1..=12).map(|i| format!("2001:db8:1::{i:x}")).collect();
    let args_with = |base: &[&'static str], hosts: &[String]| -> Vec<String> {
        base.iter().map(|s| s.to_string()).chain(hosts.iter().cloned()).collect()
    };

    // Ping sweeps, IPv4 and IPv6.
    let a = args_with(&["-sn", "-PE"], &hosts4);
    nmap(&bed, &a.iter().map(String::as_str).collect::<Vec<_>>());
    let a = args_with(&["-6", "-sn", "-PE"], &hosts6);
    nmap(&bed, &a.iter().map(String::as_str).collect::<Vec<_>>());
    // A UDP sweep of port 161, IPv6.
    let a = args_with(&["-6", "-sU", "-Pn", "-g", "40000", "-p", "161"], &hosts6);
    nmap(&bed, &a.iter().map(String::as_str).collect::<Vec<_>>());
    // A SYN sweep of port 22, IPv4.
    let a = args_with(&["-sS", "-Pn", "-g", "40000", "-p", "22"], &hosts4);
    nmap(&bed, &a.iter().map(String::as_str).collect::<Vec<_>>());

    cap.finish();

    // The first eight hosts of each sweep, in the order its probes reached the victim.
    let probes = pcap::packets(&dir.join("sweeps.pcap"));
    let swept = |proto: u8, v6: bool| -> Vec<IpAddr> {
        let of_sweep: Vec<pcap::Packet> = probes
            .iter()
            .filter(|p| {
                p.proto == proto
                    && p.dst.is_ipv6() == v6
                    && p.dst.to_string().starts_with(if v6 { "2001:db8:1::" } else { "198.18.1." })
            })
            .filter(|p| proto != 6 || is_syn(p.tcp_flags))
            .cloned()
            .collect();
        let first = first_distinct(&of_sweep, 10, |p| p.dst);
        assert_eq!(first.len(), 10, "ten hosts probed: {of_sweep:?}");
        first[..8].to_vec()
    };
    let list = |hosts: &[IpAddr]| hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(",");
    let (ping4, ping6, udp6, syn4) = (swept(1, false), swept(58, true), swept(17, true), swept(6, false));
    let want = [
        format!("ICMP: ping sweep detected of 10 hosts [{},...] from 198.18.0.1", list(&ping4)),
        format!("ICMP: ping sweep detected of 10 hosts [{},...] from 2001:db8::1", list(&ping6)),
        format!("UDP: sweep detected [port 161] of 10 hosts [{},...] from 2001:db8::1", list(&udp6)),
        format!("TCP: SYN sweep detected [port 22] of 10 hosts [{},...] from 198.18.0.1", list(&syn4)),
        "Blocked 198.18.0.1 for 60 s (SYN sweep)".to_owned(),
    ];
    let lines = d.wait_log("the sweep lines", WAIT, |l| want.iter().all(|w| l.contains(w)));
    assert_eq!(count(&lines, "sweep detected"), 4, "{}", lines.join("\n"));
    assert!(!connects(&bed.attacker, ATTACKER4, VICTIM4, 2222), "the SYN sweeper is blocked");
    assert!(connects(&bed.attacker, OTHER4, VICTIM4, 2222), "others are not");

    // The JSON records: the count, the first hosts, the ports swept.
    let records = json_records(&json, "detected");
    let names: Vec<&str> = records.iter().filter_map(|r| r["detection"].as_str()).collect();
    assert_eq!(names, ["ping sweep", "ping sweep", "sweep", "SYN sweep"], "{records:?}");
    let syn = &records[3];
    assert_eq!((syn["srcip"].as_str(), syn["hosts"].as_u64()), (Some(ATTACKER4), Some(10)));
    assert_eq!(syn["dports"], serde_json::json!([22]));
    assert_eq!(syn["dsthosts"], serde_json::json!(syn4.iter().map(|h| h.to_string()).collect::<Vec<_>>()));
    assert!(syn.get("dstip").is_none(), "a sweep has no one destination: {syn}");
    assert_eq!(records[2]["dsthosts"], serde_json::json!(udp6.iter().map(|h| h.to_string()).collect::<Vec<_>>()));

    let (_, body) = http_get(&bed.victim, 9464, "/metrics");
    for (kind, n) in [("SYN sweep", 1), ("UDP sweep", 1), ("ping sweep", 2)] {
        let series = format!("ipscan_detections_total{{iface=\"{}\",kind=\"{kind}\"}}", bed.victim_if);
        assert_eq!(sample(&body, &series), Some(n), "{series}\n{body}");
    }
    let _ = d.stop();

    // The capture replays to the same sweep lines, with the capture's clock.
    let out = std::process::Command::new(ipscan_tests::daemon::ipscan_bin())
        .env("TZ", "UTC")
        .arg("replay")
        .arg(dir.join("sweeps.pcap"))
        .arg("--config")
        .arg(&conf)
        .output()
        .expect("ipscan replay");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let replayed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("sweep detected") || l.contains("Blocked"))
        .map(|l| l.get(16..).unwrap_or_default().to_owned())
        .collect();
    assert_eq!(replayed, want, "{}", String::from_utf8_lossy(&out.stdout));
}
