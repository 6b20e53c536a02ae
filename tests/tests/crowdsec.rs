//! ipscan and CrowdSec: two daemons on two hosts (two testbeds) share one real LAPI (Debian's
//! crowdsec 1.4.6). A scanner caught on host A becomes an alert from A's machine, the LAPI's
//! profile bans it, and host B's bouncer drops it within its poll interval; a decision deleted
//! with `cscli decisions delete` is lifted on both; decisions made by hand (an IPv6 address,
//! a range) are applied too, and a daemon that starts again lifts what was deleted meanwhile.

use std::time::Duration;

use ipscan_tests::{
    ATTACKER4, ATTACKER6, Daemon, Listener, TempDir, Testbed, VICTIM4, VICTIM6, cli, connects, count, crowdsec::Lapi,
    http_get, nmap_syn, sample, write_config,
};

const WAIT: Duration = Duration::from_secs(15);

/// The blocklist of a daemon's interface: (prefix, reason) pairs.
fn listed(bed: &Testbed) -> Vec<(String, String)> {
    let (ok, out, err) = cli(&["block", "list", "--json", "-i", &bed.victim_if]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    v.as_array()
        .expect("array")
        .iter()
        .map(|r| (r["prefix"].as_str().unwrap_or("").to_owned(), r["reason"].as_str().unwrap_or("").to_owned()))
        .collect()
}

/// The time of the first JSON record of this event.
fn first_time(path: &std::path::Path, event: &str) -> chrono::DateTime<chrono::FixedOffset> {
    let text = std::fs::read_to_string(path).expect("json log");
    let v: serde_json::Value = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
        .find(|v| v["event"] == event)
        .unwrap_or_else(|| panic!("no {event} record in {}:\n{text}", path.display()));
    chrono::DateTime::parse_from_rfc3339(v["timestamp"].as_str().expect("timestamp")).expect("RFC 3339")
}

#[test]
fn a_scanner_caught_on_one_host_is_dropped_on_the_other_and_lifted_on_both() {
    let mut lapi = Lapi::start();
    let (a, b) = (Testbed::new(), Testbed::new());
    let (url_a, url_b) = (lapi.link(&a), lapi.link(&b));
    let (dir_a, dir_b) = (TempDir::new(), TempDir::new());
    let key_a = lapi.bouncer("ipscan-a", &dir_a);
    let key_b = lapi.bouncer("ipscan-b", &dir_b);
    let password_a = lapi.machine("host-a", &dir_a);
    let conf_a = write_config(
        &dir_a,
        &format!(
            "set scans_only\nwindow syn_scan 3s\nwindow portscan 3s\ncrowdsec poll 1s\n\
             crowdsec bouncer {url_a} {}\ncrowdsec machine {url_a} host-a {}\n",
            key_a.display(),
            password_a.display()
        ),
    );
    let conf_b = write_config(
        &dir_b,
        &format!("set scans_only\ncrowdsec poll 1s\ncrowdsec bouncer {url_b} {}\n", key_b.display()),
    );
    let (json_a, json_b) = (dir_a.join("ipscan.json"), dir_b.join("ipscan.json"));
    let args_b =
        ["--config", conf_b.to_str().expect("utf8"), "--json-log", json_b.to_str().expect("utf8"), "--metrics", "9464"];
    let (_la, _lb) = (Listener::start(&a.victim, 8080), Listener::start(&b.victim, 8080));
    let args_a = ["--config", conf_a.to_str().expect("utf8"), "--json-log", json_a.to_str().expect("utf8")];
    let da = Daemon::start(&a.victim, &a.victim_if, &dir_a, &args_a);
    let mut db = Daemon::start(&b.victim, &b.victim_if, &dir_b, &args_b);
    assert!(connects(&b.attacker, ATTACKER4, VICTIM4, 8080), "B is reachable before the scan on A");

    // Caught on A: an alert, the LAPI's ban, on A and on B within the 1 s poll.
    nmap_syn(&a);
    da.wait_log("the scan on A", WAIT, |l| count(l, "TCP: SYN scan detected") == 1);
    let banned = "Blocked 198.18.0.1 for 1439";
    for (d, host) in [(&db, "B"), (&da, "A")] {
        let lines = d.wait_log(&format!("the ban on {host}"), WAIT, |l| l.iter().any(|x| x.starts_with(banned)));
        let line = lines.iter().find(|x| x.starts_with(banned)).expect("found");
        assert!(line.ends_with(" s (crowdsec: ipscan/syn_scan)"), "{line}");
    }
    assert_eq!(listed(&b), [(ATTACKER4.to_owned(), "crowdsec".to_owned())]);
    // Within the 1 s poll, give or take the LAPI's answer: from A's detection to B's block.
    let detected = first_time(&json_a, "detected");
    let blocked = first_time(&json_b, "blocked");
    let took = (blocked - detected).num_milliseconds();
    eprintln!("B blocked the scanner {took} ms after A's detection");
    assert!((0..=2500).contains(&took), "B blocked {took} ms after A's detection");
    assert!(!connects(&b.attacker, ATTACKER4, VICTIM4, 8080), "B drops the scanner caught on A");
    let decisions = lapi.cscli(&["decisions", "list", "-a", "-o", "json"]);
    assert!(decisions.contains("\"scenario\": \"ipscan/syn_scan\"") && decisions.contains("198.18.0.1"), "{decisions}");

    // Deleted in the LAPI: lifted on both, with what it dropped.
    lapi.cscli(&["decisions", "delete", "--ip", ATTACKER4]);
    for (d, host) in [(&db, "B"), (&da, "A")] {
        d.wait_log(&format!("the lift on {host}"), WAIT, |l| {
            l.iter().any(|x| x.starts_with("Unblocked 198.18.0.1 - dropped "))
        });
    }
    assert_eq!(listed(&b), []);
    assert!(connects(&b.attacker, ATTACKER4, VICTIM4, 8080), "lifted on B");
    assert!(connects(&a.attacker, ATTACKER4, VICTIM4, 8080), "lifted on A");

    // Decisions made by hand: an IPv6 address and a range.
    lapi.cscli(&["decisions", "add", "--ip", ATTACKER6, "--duration", "1h"]);
    lapi.cscli(&["decisions", "add", "--range", "198.18.0.0/30", "--duration", "30m"]);
    db.wait_log("the hand-made bans on B", WAIT, |l| {
        l.iter().any(|x| x.starts_with("Blocked 2001:db8::1 for 35"))
            && l.iter().any(|x| x.starts_with("Blocked 198.18.0.0/30 for 17"))
    });
    assert!(!connects(&b.attacker, ATTACKER6, VICTIM6, 8080), "the IPv6 ban");
    let (_, body) = http_get(&b.victim, 9464, "/metrics");
    let series = format!("ipscan_crowdsec_decisions{{iface=\"{}\"}}", b.victim_if);
    assert_eq!(sample(&body, &series), Some(2), "{body}");
    assert!(!connects(&b.attacker, ATTACKER4, VICTIM4, 8080), "the range");

    // Deleted while B is stopped: its pinned blocklist still has them; the first answer after
    // the start is the whole truth, and lifts them.
    let (status, _) = db.stop();
    assert!(status.success());
    lapi.cscli(&["decisions", "delete", "--ip", ATTACKER6]);
    let db = Daemon::start(&b.victim, &b.victim_if, &dir_b, &args_b);
    let lines = db.wait_log("the lift after the start", WAIT, |l| {
        l.iter().any(|x| x.starts_with("Unblocked 2001:db8::1 - dropped "))
    });
    assert!(!lines.iter().any(|x| x.starts_with("Unblocked 198.18.0.0/30")), "{}", lines.join("\n"));
    assert!(connects(&b.attacker, ATTACKER6, VICTIM6, 8080), "IPv6 lifted on B");
    assert!(!connects(&b.attacker, ATTACKER4, VICTIM4, 8080), "the range still holds");
    assert_eq!(listed(&b), [("198.18.0.0/30".to_owned(), "crowdsec".to_owned())]);
}

/// A LAPI over HTTPS with a certificate of the site's own CA: the bouncer that trusts that CA
/// (`crowdsec ca_cert`) applies its decisions; one that trusts only the Mozilla roots says why
/// it cannot read them, and blocks nothing.
#[test]
fn a_lapi_over_tls_is_trusted_through_its_ca() {
    let mut lapi = Lapi::start_tls();
    let (a, b) = (Testbed::new(), Testbed::new());
    let (url_a, url_b) = (lapi.link(&a), lapi.link(&b));
    assert!(url_a.starts_with("https://"), "{url_a}");
    let (dir_a, dir_b) = (TempDir::new(), TempDir::new());
    let key_a = lapi.bouncer("ipscan-a", &dir_a);
    let key_b = lapi.bouncer("ipscan-b", &dir_b);
    let conf_a = write_config(
        &dir_a,
        &format!(
            "crowdsec poll 1s\ncrowdsec bouncer {url_a} {}\ncrowdsec ca_cert {}\n",
            key_a.display(),
            lapi.ca().display()
        ),
    );
    let conf_b = write_config(&dir_b, &format!("crowdsec poll 1s\ncrowdsec bouncer {url_b} {}\n", key_b.display()));
    let _l = Listener::start(&a.victim, 8080);
    let da = Daemon::start(&a.victim, &a.victim_if, &dir_a, &["--config", conf_a.to_str().expect("utf8")]);
    let mut db = Daemon::start(&b.victim, &b.victim_if, &dir_b, &["--config", conf_b.to_str().expect("utf8")]);

    lapi.cscli(&["decisions", "add", "--ip", ATTACKER4, "--duration", "1h"]);
    da.wait_log("the ban over TLS", WAIT, |l| l.iter().any(|x| x.starts_with("Blocked 198.18.0.1 for 35")));
    assert!(!connects(&a.attacker, ATTACKER4, VICTIM4, 8080), "blocked on A");
    db.wait_stderr("ipscan: crowdsec: cannot read decisions: ", WAIT);
    let (_, stderr) = db.stop();
    let why = stderr.lines().find(|l| l.contains("cannot read decisions")).expect("the line");
    assert!(why.contains("UnknownIssuer") && why.contains(&url_b), "{why}");
    assert_eq!(listed(&b), [], "B reads no decision it cannot trust");
}
