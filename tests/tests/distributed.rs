//! Distributed floods, end to end: datagrams to port 53 and SYNs to port 80 of the victim, each
//! from 2,000 random sources of 198.19.0.0/16 (scapy, the way `hping3 --flood --rand-source`
//! floods), are one `distributed flood` line per target and protocol, with the ports hit, about
//! how many sources and the rate; from that line on, the flood's per-packet lines are left out;
//! the mode ends with its totals; nothing is blocked; the JSON record has the target and no
//! source.

use std::time::Duration;

use ipscan_tests::{
    Capture, Daemon, TempDir, Testbed, count, http_get, json_records, run_in, sample, tools::scapy, write_config,
};

const WAIT: Duration = Duration::from_secs(30);

/// 2,000 packets to the victim, from 198.19.R.R (R random), `layer` after the IP header.
fn flood(bed: &Testbed, layer: &str) {
    scapy(
        bed,
        &format!(
            "import random\nrandom.seed(7)\n\
             send4([IP(src='198.19.%d.%d' % (random.randrange(256), random.randrange(1, 255)), dst='198.18.0.2')/{layer} \
             for _ in range(2000)])"
        ),
    );
}

#[test]
fn a_flood_from_many_sources_is_one_line_per_target_and_its_packets_are_left_out() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let conf =
        write_config(&dir, "threshold distributed_flood 300\nwindow distributed_flood 3s\nblock udp_flood 60s\n");
    let json = dir.join("ipscan.json");
    let args =
        ["--config", conf.to_str().expect("utf8"), "--json-log", json.to_str().expect("utf8"), "--metrics", "9464"];
    let mut d = Daemon::start(&bed.victim, &bed.victim_if, &dir, &args);
    let cap = Capture::start(&bed.attacker, &bed.attacker_if, "dst host 198.18.0.2", dir.join("flood.pcap"));

    flood(&bed, "UDP(sport=40000, dport=53)/Raw(b'x' * 20)");
    flood(&bed, "TCP(sport=40000, dport=80, flags='S')");
    cap.finish();
    let lines = d
        .wait_log("the two floods' expiries", WAIT, |l| count(l, "distributed flood mode expired for 198.18.0.2") == 2);
    let text = lines.join("\n");
    let find = |prefix: &str| -> String {
        let matching: Vec<&String> = lines.iter().filter(|l| l.starts_with(prefix)).collect();
        assert_eq!(matching.len(), 1, "one `{prefix}` line:\n{text}");
        matching[0].clone()
    };
    let udp = find("UDP: distributed flood detected to 198.18.0.2 [port 53] from about ");
    let tcp = find("TCP: distributed flood detected to 198.18.0.2 [port 80] from about ");
    for line in [&udp, &tcp] {
        // `... from about N sources (R packets/s)`: 300 packets from about 300 sources.
        let words: Vec<&str> = line.split_whitespace().collect();
        let sources: u64 = words[words.len() - 4].parse().expect("sources");
        assert!((250..=350).contains(&sources), "{line}");
        assert!(line.ends_with(" packets/s)"), "{line}");
    }
    // Every datagram and SYN counted, 2000 each.
    let udp_end = find(
        "UDP: distributed flood mode expired for 198.18.0.2 - received a total of 2000 packets (56000 bytes) from about ",
    );
    let tcp_end = find(
        "TCP: distributed flood mode expired for 198.18.0.2 - received a total of 2000 packets (40000 bytes) from about ",
    );
    for line in [&udp_end, &tcp_end] {
        assert!(line.ends_with(" sources."), "{line}");
    }
    // Per-packet lines only before the threshold packet of each flood: at most 299 each.
    let dgrams = count(&lines, "UDP: dgram to domain from 198.19.");
    let attempts = count(&lines, "TCP: http connection attempt from 198.19.");
    assert!(dgrams > 0 && dgrams < 300, "{dgrams} datagram lines:\n{text}");
    assert!(attempts > 0 && attempts < 300, "{attempts} connection attempt lines");
    assert_eq!(count(&lines, "Blocked"), 0, "{text}");

    let records: Vec<serde_json::Value> =
        json_records(&json, "detected").into_iter().filter(|v| v["detection"] == "distributed flood").collect();
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(
        (records[0]["dstip"].as_str(), records[0]["dports"].clone()),
        (Some("198.18.0.2"), serde_json::json!([53]))
    );
    assert!(records[0].get("srcip").is_none(), "no source: {}", records[0]);
    // The UDP flood first, then the SYN flood.
    assert_eq!((records[0]["proto"].as_str(), records[1]["proto"].as_str()), (Some("UDP"), Some("TCP")));
    assert!(records[0]["sources"].as_u64().is_some_and(|n| (250..=350).contains(&n)), "{}", records[0]);
    assert!(records[0]["rate"].as_u64().is_some_and(|r| r > 0), "{}", records[0]);

    let (_, body) = http_get(&bed.victim, 9464, "/metrics");
    let series = format!("ipscan_detections_total{{iface=\"{}\",kind=\"distributed flood\"}}", bed.victim_if);
    assert_eq!(sample(&body, &series), Some(2), "{body}");
    let _ = d.stop();

    // The capture replays to the same lines; the rates are the capture's.
    let out = std::process::Command::new(ipscan_tests::daemon::ipscan_bin())
        .arg("replay")
        .arg(dir.join("flood.pcap"))
        .arg("--config")
        .arg(&conf)
        .output()
        .expect("ipscan replay");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let replayed = String::from_utf8_lossy(&out.stdout);
    let without_rate = |l: &str| l.split(" (").next().unwrap_or_default().to_owned();
    let mut floods: Vec<String> = replayed
        .lines()
        .filter(|l| l.contains("distributed flood"))
        .map(|l| without_rate(l.get(16..).unwrap_or_default()))
        .collect();
    // Sorted: an expiry may come before or after the next flood's line, by less than a second.
    floods.sort();
    let mut live = [udp.as_str(), udp_end.as_str(), tcp.as_str(), tcp_end.as_str()].map(without_rate);
    live.sort();
    assert_eq!(floods, live, "{replayed}");
}

/// A decoy scan (real nmap `-D`: every probe from three decoys and from the scanner) and a
/// distributed one (scapy: five sources, three ports each) are each one line to the target,
/// naming the sources; neither blocks, though the decoys' own port scans are reported as such.
#[test]
fn decoy_and_distributed_scans_are_told_apart_and_name_their_sources() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let conf = write_config(&dir, "set scans_only\nset distributed_scan\n");
    let mut d = Daemon::start(&bed.victim, &bed.victim_if, &dir, &["--config", conf.to_str().expect("utf8")]);

    let decoys = "198.19.5.5,198.19.6.6,198.19.7.7,ME";
    let out = run_in(
        &bed.attacker,
        120,
        "nmap",
        &["-sS", "-Pn", "-n", "-r", "--max-retries", "0", "-D", decoys, "-p", "1-20", "198.18.0.2"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let decoy = "TCP: decoy scan detected to 198.18.0.2 [ports 1,2,3,4,5,6,7,8,9,10,...] from 4 sources \
                 [198.19.5.5,198.19.6.6,198.19.7.7,198.18.0.1]";
    let lines = d.wait_log("the decoy scan", WAIT, |l| l.iter().any(|x| x == decoy));
    for s in ["198.19.5.5", "198.19.6.6", "198.19.7.7", "198.18.0.1"] {
        assert_eq!(
            count(&lines, &format!("TCP: port scan detected [ports 1,2,3,4,5,6,7,8,9,10,...] from {s} ")),
            1,
            "{s}"
        );
    }

    // Five sources, three ports each, to the victim's IPv6 address (another target): a
    // distributed scan.
    scapy(
        &bed,
        "send6([IPv6(src='2001:db8:9::%d' % (i + 1), dst='2001:db8::2')/TCP(sport=40000, dport=100 + 3 * i + j, flags='S') \
         for i in range(5) for j in range(1, 4)])",
    );
    let spread = "TCP: distributed scan detected to 2001:db8::2 [ports 101,102,103,104,105,106,107,108,109,110,...] \
                  from 5 or more sources [2001:db8:9::1,2001:db8:9::2,2001:db8:9::3,2001:db8:9::4,2001:db8:9::5,...]";
    let lines = d.wait_log("the distributed scan", WAIT, |l| l.iter().any(|x| x == spread));
    assert_eq!(count(&lines, "Blocked"), 0, "{}", lines.join("\n"));
    let _ = d.stop();
}
