//! Tripwires (`tripwire tcp|udp PORTS`, `tripwire addr NETS`), end to end: one real nmap probe to
//! a tripwire port, or a ping to a tripwire address, is a detection with its line, JSON record
//! and metric, and with `block tripwire` its source is dropped from that probe on; a busy client
//! of an open port is never reported; a tripwire on a listening port is warned of.

use std::time::Duration;

use ipscan_tests::{
    ATTACKER4, ATTACKER6, Daemon, Listener, OTHER4, TempDir, Testbed, VICTIM4, VICTIM6, connects, count, http_get,
    json_records, ns::mac_of, run_in, sample, write_config,
};

const WAIT: Duration = Duration::from_secs(15);

#[test]
fn one_probe_to_a_tripwire_port_or_address_is_reported_and_blocked() {
    let bed = Testbed::new();
    bed.add_attacker_addr(&format!("{OTHER4}/24"));
    let dir = TempDir::new();
    let conf = write_config(
        &dir,
        "set scans_only\ntripwire tcp 23,8080\ntripwire udp 161\ntripwire addr 198.18.0.250, 2001:db8::250\n\
         block tripwire 60s\n",
    );
    let json = dir.join("ipscan.json");
    let args =
        ["--config", conf.to_str().expect("utf8"), "--json-log", json.to_str().expect("utf8"), "--metrics", "9464"];
    // 8080 has a listener: the daemon says what that tripwire means.
    let _srv = Listener::start(&bed.victim, 8080);
    let _ssh = Listener::start(&bed.victim, 2222);
    let mut d = Daemon::start(&bed.victim, &bed.victim_if, &dir, &args);
    d.wait_stderr(
        &format!("{}: tripwire tcp 8080 has a listening socket: each of its clients will be reported", bed.victim_if),
        Duration::from_secs(5),
    );

    // A busy client of an open port that is no tripwire: nothing.
    for _ in 0..20 {
        assert!(connects(&bed.attacker, ATTACKER4, VICTIM4, 2222));
    }

    // One nmap probe to port 23.
    run_in(&bed.attacker, 60, "nmap", &["-sS", "-Pn", "-n", "-g", "40000", "--max-retries", "0", "-p", "23", VICTIM4]);
    let want = "IP: tripwire detected [port 23] from 198.18.0.1 [port 40000]";
    let lines = d.wait_log("the tripwire line", WAIT, |l| l.iter().any(|x| x == want));
    assert!(lines.iter().any(|x| x == "Blocked 198.18.0.1 for 60 s (tripwire)"), "{}", lines.join("\n"));
    assert!(!connects(&bed.attacker, ATTACKER4, VICTIM4, 2222), "blocked from the probe on");
    assert!(connects(&bed.attacker, OTHER4, VICTIM4, 2222), "others unaffected");

    // A ping to a tripwire address (the attacker's neighbour entries send it to the victim's
    // link, where no host answers), IPv4 and IPv6.
    let mac = mac_of(&bed.victim, &bed.victim_if);
    for (addr, family) in [("198.18.0.250", "-4"), ("2001:db8::250", "-6")] {
        bed.attacker.ip(&[
            family,
            "neigh",
            "replace",
            addr,
            "lladdr",
            &mac,
            "dev",
            &bed.attacker_if,
            "nud",
            "permanent",
        ]);
    }
    // No one answers: ping's status says so, and is not the test's business.
    for args in [
        ["-4", "-c", "1", "-W", "1", "-I", OTHER4, "198.18.0.250"],
        ["-6", "-c", "1", "-W", "1", "-I", ATTACKER6, "2001:db8::250"],
    ] {
        let _ = bed.attacker.cmd("timeout").args(["-s", "KILL", "10", "ping"]).args(args).output().expect("ping");
    }
    let lines = d.wait_log("the address tripwires", WAIT, |l| {
        l.iter().any(|x| x == "Blocked 198.18.0.3 for 60 s (tripwire)")
            && l.iter().any(|x| x == "Blocked 2001:db8::1 for 60 s (tripwire)")
    });
    assert_eq!(count(&lines, "IP: tripwire detected [port 0] from 198.18.0.3 [port 0]"), 1, "{}", lines.join("\n"));
    assert!(!connects(&bed.attacker, ATTACKER6, VICTIM6, 2222), "the IPv6 pinger is blocked");
    assert_eq!(count(&lines, "IP: tripwire detected"), 3, "{}", lines.join("\n"));

    // The JSON records and the metric.
    let records = json_records(&json, "detected");
    assert_eq!(records.len(), 3, "{records:?}");
    assert_eq!((records[0]["detection"].as_str(), records[0]["srcip"].as_str()), (Some("tripwire"), Some(ATTACKER4)));
    assert_eq!(records[0]["dports"], serde_json::json!([23]));
    let (_, body) = http_get(&bed.victim, 9464, "/metrics");
    let series = format!("ipscan_detections_total{{iface=\"{}\",kind=\"tripwire\"}}", bed.victim_if);
    assert_eq!(sample(&body, &series), Some(3), "{body}");
    let _ = d.stop();
}
