//! Active response in the kernel, end to end: auto-block on the threshold packet (captures on both
//! sides: no scanner packet reaches the victim after it), expiry with exact totals, the allowlist
//! (also against spoofed scans), and the block/allow CLI on a running daemon and without one.
//! (Blocks kept across restarts and reboots: restarts_and_pins.rs.)

use std::{thread, time::Duration};

use ipscan_tests::{
    ATTACKER4, Capture, Daemon, Listener, OTHER4, TempDir, Testbed, VICTIM4, cli, connects, count, counter, http_get,
    nmap_syn,
    pcap::{self, syn_probes},
    sample, scapy, stats_json, write_config,
};

const WAIT: Duration = Duration::from_secs(15);

fn config(extra: &str) -> String {
    format!("window syn_scan 3s\nwindow portscan 3s\nset scans_only\n{extra}")
}

#[test]
fn scanner_is_blocked_on_the_threshold_packet_and_others_still_connect() {
    let bed = Testbed::new();
    bed.add_attacker_addr(&format!("{OTHER4}/24"));
    let dir = TempDir::new();
    let conf = write_config(&dir, &config("block syn_scan 60s\n"));
    let _srv = Listener::start(&bed.victim, 8080);
    let d = Daemon::start(&bed.victim, &bed.victim_if, &dir, &["--config", conf.to_str().expect("utf8")]);
    assert!(connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "the scanner can connect before its scan");

    let sent = Capture::start(&bed.attacker, &bed.attacker_if, "tcp and src host 198.18.0.1", dir.join("sent.pcap"));
    let got = Capture::start(&bed.victim, &bed.victim_if, "tcp and src host 198.18.0.1", dir.join("got.pcap"));
    nmap_syn(&bed);
    sent.finish();
    got.finish();
    let sent = syn_probes(&dir.join("sent.pcap"));
    let got = syn_probes(&dir.join("got.pcap"));
    assert!(sent.len() >= 40, "nmap sent {}", sent.len());
    // The tenth distinct port crosses the threshold: that packet and every later one are
    // dropped in the kernel, with no user-space round trip.
    let ports: Vec<u16> = got.iter().map(|p| p.dport).collect();
    assert_eq!(ports, (1..=9).collect::<Vec<_>>(), "probes that reached the victim");
    let after_threshold = got.iter().filter(|p| p.dport >= 10).count();
    assert_eq!(after_threshold, 0, "scanner packets that reached the victim after the threshold packet");

    let lines = d.wait_log("block line", WAIT, |l| l.iter().any(|x| x.starts_with("Blocked ")));
    assert_eq!(
        lines[..2],
        [
            "TCP: SYN scan detected [ports 1,2,3,4,5,6,7,8,9,10,...] from 198.18.0.1 [port 40000]".to_owned(),
            "Blocked 198.18.0.1 for 60 s (SYN scan)".to_owned()
        ]
    );
    assert!(!connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "the blocked scanner cannot connect");
    assert!(connects(&bed.attacker, OTHER4, VICTIM4, 8080), "another source still connects");

    let (ok, out, err) = cli(&["block", "list", "--json", "-i", &bed.victim_if]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let rows = v.as_array().expect("array");
    assert_eq!(rows.len(), 1, "{out}");
    assert_eq!(rows[0]["prefix"], "198.18.0.1");
    assert_eq!(rows[0]["auto"], true);
    assert_eq!(rows[0]["reason"], "SYN scan");
    // Every dropped probe is counted on the entry, plus the connection attempt's SYNs.
    let dropped = rows[0]["packets"].as_u64().expect("packets");
    assert!(dropped > (sent.len() - 9) as u64, "{dropped} <= {}", sent.len() - 9);

    // The daemon takes away AUTOBLOCK marks of buckets without blocks every 5 s; two of its
    // passes later the block's own mark is still there, and lifting the block lets it through.
    thread::sleep(Duration::from_secs(11));
    assert!(!connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "still blocked after the daemon's unmark passes");
    assert!(cli(&["block", "del", ATTACKER4, "-i", &bed.victim_if]).0);
    assert!(connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "the lifted block lets it through");
}

#[test]
fn block_expires_and_unblock_reports_what_was_dropped() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let conf = write_config(&dir, &config("block syn_scan 2s\n"));
    let _srv = Listener::start(&bed.victim, 8080);
    let d = Daemon::start(&bed.victim, &bed.victim_if, &dir, &["--config", conf.to_str().expect("utf8")]);
    let sent = Capture::start(&bed.attacker, &bed.attacker_if, "tcp and src host 198.18.0.1", dir.join("sent.pcap"));
    nmap_syn(&bed);
    sent.finish();
    let all = pcap::packets(&dir.join("sent.pcap"));
    // Everything the scanner sent from the threshold probe on was dropped.
    let first_dropped = all.iter().position(|p| p.dport == 10).expect("probe to port 10");
    let dropped = &all[first_dropped..];
    let bytes: u64 = dropped.iter().map(|p| p.payload).sum();
    let want = format!("Unblocked 198.18.0.1 - dropped {} packets ({bytes} bytes).", dropped.len());
    let lines = d.wait_log("the unblock line", WAIT, |l| l.iter().any(|x| x.starts_with("Unblocked")));
    assert_eq!(count(&lines, &want), 1, "want {want}\n{}", lines.join("\n"));
    assert_eq!(count(&lines, "Blocked 198.18.0.1 for 2 s (SYN scan)"), 1);
    assert!(connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "unblocked again");
    let (ok, out, _) = cli(&["block", "list", "--json", "-i", &bed.victim_if]);
    assert!(ok);
    assert_eq!(out.trim(), "[]");
}

/// `block syn_scan 4s escalate 4x max 2m`: a source blocked again while it is remembered is
/// blocked for longer each time, the kernel's entry lasting what the line says, and the count
/// survives a restart (the state file): 4 s, then 16 s, then 64 s, with the JSON records.
#[test]
fn repeat_offenders_are_blocked_longer_each_time_also_after_a_restart() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let conf = write_config(&dir, &config("block syn_scan 4s escalate 4x max 2m\n"));
    let json = dir.join("ipscan.json");
    let args =
        ["--config", conf.to_str().expect("utf8"), "--json-log", json.to_str().expect("utf8"), "--metrics", "9464"];
    let left = || {
        let (ok, out, err) = cli(&["block", "list", "--json", "-i", &bed.victim_if]);
        assert!(ok, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!((v[0]["prefix"].as_str(), v.as_array().map(Vec::len)), (Some(ATTACKER4), Some(1)), "{out}");
        v[0]["expires_in_s"].as_u64().expect("expires")
    };
    let _srv = Listener::start(&bed.victim, 8080);
    let mut d = Daemon::start(&bed.victim, &bed.victim_if, &dir, &args);
    nmap_syn(&bed);
    let first = "Blocked 198.18.0.1 for 4 s (SYN scan, offence 1)";
    d.wait_log("the first block", WAIT, |l| l.iter().any(|x| x == first));
    // It ends as configured, and the scanner connects again.
    d.wait_log("the first unblock", WAIT, |l| l.iter().any(|x| x.starts_with("Unblocked 198.18.0.1")));
    assert!(connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "unblocked after 4 s");

    nmap_syn(&bed);
    let second = "Blocked 198.18.0.1 for 16 s (SYN scan, offence 2)";
    d.wait_log("the second block", WAIT, |l| l.iter().any(|x| x == second));
    let secs = left();
    assert!((12..=16).contains(&secs), "the kernel's entry lasts the 16 s of the line: {secs} s left");
    thread::sleep(Duration::from_secs(5));
    assert!(!connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "still blocked after the first block's 4 s");

    // A restart keeps the count; lift the block by hand to offend again sooner.
    let (status, _) = d.stop();
    assert!(status.success());
    let d = Daemon::start(&bed.victim, &bed.victim_if, &dir, &args);
    assert!(cli(&["block", "del", ATTACKER4, "-i", &bed.victim_if]).0);
    nmap_syn(&bed);
    let third = "Blocked 198.18.0.1 for 64 s (SYN scan, offence 3)";
    let lines = d.wait_log("the third block", WAIT, |l| l.iter().any(|x| x == third));
    assert_eq!(count(&lines, third), 1, "{}", lines.join("\n"));
    let secs = left();
    assert!((60..=64).contains(&secs), "{secs} s left of 64");
    let (_, body) = http_get(&bed.victim, 9464, "/metrics");
    let series = format!("ipscan_repeat_offenders{{iface=\"{}\"}}", bed.victim_if);
    assert_eq!(sample(&body, &series), Some(1), "{body}");

    let records: Vec<serde_json::Value> = std::fs::read_to_string(&json)
        .expect("json log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .filter(|v: &serde_json::Value| v["event"] == "blocked")
        .collect();
    let got: Vec<(Option<u64>, Option<u64>)> =
        records.iter().map(|v| (v["block_secs"].as_u64(), v["offence"].as_u64())).collect();
    assert_eq!(got, [(Some(4), Some(1)), (Some(16), Some(2)), (Some(64), Some(3))]);
}

/// `--dry-run`, for a first week on a production host: the scan is detected and its block logged
/// as `Would block`, but every probe reaches the victim and the scanner still connects, also
/// after a reload; what the block would have dropped is counted on its entry and in
/// `dry_run_passed`, nothing in `dropped`, and lifting it says what it would have dropped.
#[test]
fn dry_run_logs_the_block_and_drops_nothing() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let conf = write_config(&dir, &config("block syn_scan 60s\n"));
    let _srv = Listener::start(&bed.victim, 8080);
    let mut d =
        Daemon::start(&bed.victim, &bed.victim_if, &dir, &["--config", conf.to_str().expect("utf8"), "--dry-run"]);
    d.wait_stderr("dry run: nothing is dropped", WAIT);
    let sent = Capture::start(&bed.attacker, &bed.attacker_if, "tcp and src host 198.18.0.1", dir.join("sent.pcap"));
    let got = Capture::start(&bed.victim, &bed.victim_if, "tcp and src host 198.18.0.1", dir.join("got.pcap"));
    nmap_syn(&bed);
    sent.finish();
    got.finish();
    let sent: Vec<u16> = syn_probes(&dir.join("sent.pcap")).iter().map(|p| p.dport).collect();
    let got: Vec<u16> = syn_probes(&dir.join("got.pcap")).iter().map(|p| p.dport).collect();
    assert!(sent.len() >= 40, "nmap sent {}", sent.len());
    assert_eq!(got, sent, "every probe reaches the victim");

    let lines = d.wait_log("the would-block line", WAIT, |l| l.iter().any(|x| x.starts_with("Would block ")));
    assert_eq!(
        lines[..2],
        [
            "TCP: SYN scan detected [ports 1,2,3,4,5,6,7,8,9,10,...] from 198.18.0.1 [port 40000]".to_owned(),
            "Would block 198.18.0.1 for 60 s (SYN scan)".to_owned()
        ]
    );
    assert!(!lines.iter().any(|l| l.starts_with("Blocked")), "{}", lines.join("\n"));
    assert!(connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "the scanner still connects");
    d.signal(libc::SIGHUP);
    d.wait_stderr("reloaded", WAIT);
    assert!(connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "still a dry run after a reload");

    let (ok, out, err) = cli(&["block", "list", "--json", "-i", &bed.victim_if]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{out}");
    assert_eq!((&v[0]["prefix"], &v[0]["auto"]), (&"198.18.0.1".into(), &true.into()), "{out}");
    let (ok, _, err) = cli(&["block", "del", ATTACKER4, "-i", &bed.victim_if]);
    assert!(ok, "{err}");
    let prefix = format!("ipscan: {}: Would unblock 198.18.0.1 - would have dropped ", bed.victim_if);
    let would: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no would-unblock line: {err}"));
    // The threshold probe and every later one, and the two connections' packets.
    assert!(would > (sent.len() - 9) as u64, "{would} <= {}", sent.len() - 9);
    let stats = stats_json(&bed.victim_if, &[]);
    assert_eq!((counter(&stats, "dry_run_passed"), counter(&stats, "dropped")), (would, 0), "{stats}");
}

#[test]
fn allowlisted_sources_are_logged_not_blocked_even_when_spoofed() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let conf = write_config(&dir, &config("block syn_scan 60s\nallow 198.18.0.1\n"));
    let _srv = Listener::start(&bed.victim, 8080);
    let d = Daemon::start(&bed.victim, &bed.victim_if, &dir, &["--config", conf.to_str().expect("utf8")]);
    // A configured allow.
    nmap_syn(&bed);
    d.wait_log("not blocked (configured)", WAIT, |l| {
        l.iter().any(|x| x == "Not blocked 198.18.0.1: allowlisted (SYN scan)")
    });
    assert!(connects(&bed.attacker, ATTACKER4, VICTIM4, 8080));
    // A scan spoofed from one of the victim's own addresses: logged, and the victim does not cut
    // itself off. (nmap treats -S equal to the target as a local scan, so use a second address.)
    bed.victim.ip(&["addr", "add", "198.18.0.9/32", "dev", &bed.victim_if]);
    // The allowlist of own addresses is taken at start: restart to pick the new one up.
    drop(d);
    let d = Daemon::start(&bed.victim, &bed.victim_if, &dir, &["--config", conf.to_str().expect("utf8")]);
    // nmap will not route with a foreign -S: craft the probes (nmap's: SYN with one MSS option).
    scapy(
        &bed,
        &format!(
            "send4([IP(src='198.18.0.9', dst='{VICTIM4}')/TCP(sport=40001, dport=p, flags='S', options=[('MSS', 1460)]) for p in range(100, 141)])"
        ),
    );
    let lines = d.wait_log("the spoofed scan", WAIT, |l| {
        l.iter().any(|x| x == "Not blocked 198.18.0.9: allowlisted (SYN scan)")
    });
    assert_eq!(
        count(
            &lines,
            "TCP: SYN scan detected [ports 100,101,102,103,104,105,106,107,108,109,...] from 198.18.0.9 [port 40001]"
        ),
        1,
        "{}",
        lines.join("\n")
    );
    assert_eq!(count(&lines, "Blocked "), 0, "{}", lines.join("\n"));
    let (ok, out, _) = cli(&["block", "list", "--json", "-i", &bed.victim_if]);
    assert!(ok);
    assert_eq!(out.trim(), "[]");
    let (ok, out, _) = cli(&["allow", "list", "-i", &bed.victim_if]);
    assert!(ok);
    assert!(out.lines().any(|l| l.contains("198.18.0.1") && l.contains("configured")), "{out}");
    assert!(out.lines().any(|l| l.contains("198.18.0.9") && l.contains("own-address")), "{out}");
}

#[test]
fn cli_edits_the_running_daemons_lists() {
    let bed = Testbed::new();
    bed.add_attacker_addr(&format!("{OTHER4}/24"));
    let dir = TempDir::new();
    let conf = write_config(&dir, &config("block syn_scan 60s\n"));
    let _srv = Listener::start(&bed.victim, 8080);
    let _d = Daemon::start(&bed.victim, &bed.victim_if, &dir, &["--config", conf.to_str().expect("utf8")]);
    let i = bed.victim_if.as_str();
    assert!(connects(&bed.attacker, OTHER4, VICTIM4, 8080));

    let (ok, _, err) = cli(&["block", "add", OTHER4, "--ttl", "1h", "-i", i]);
    assert!(ok, "{err}");
    assert_eq!(err.trim(), format!("ipscan: {i}: blocked 198.18.0.3 for 3600 s"));
    assert!(!connects(&bed.attacker, OTHER4, VICTIM4, 8080), "blocked by the CLI");
    assert!(connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "others unaffected");
    let (ok, out, _) = cli(&["block", "list", "-i", i]);
    assert!(ok);
    let row = out.lines().find(|l| l.contains("198.18.0.3")).unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains("manual"), "{row}");
    let (_, json, _) = cli(&["block", "list", "--json", "-i", i]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert!(v[0]["packets"].as_u64().expect("packets") >= 1, "the refused SYN was counted: {json}");
    assert!((3590..=3600).contains(&v[0]["expires_in_s"].as_u64().expect("ttl")), "{json}");

    let (ok, _, err) = cli(&["block", "del", OTHER4, "-i", i]);
    assert!(ok, "{err}");
    assert!(err.contains("Unblocked 198.18.0.3 - dropped"), "{err}");
    assert!(connects(&bed.attacker, OTHER4, VICTIM4, 8080), "unblocked by the CLI");
    let (ok, _, err) = cli(&["block", "del", OTHER4, "-i", i]);
    assert!(!ok);
    assert_eq!(err.trim(), "ipscan: 198.18.0.3 is not blocked");

    for net in ["198.18.0.3", "2001:db8:99::/48", "198.18.0.128/25"] {
        assert!(cli(&["block", "add", net, "-i", i]).0);
    }
    let (_, json, _) = cli(&["block", "list", "--json", "-i", i]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&json).expect("json").as_array().map(Vec::len), Some(3));
    let (ok, _, err) = cli(&["block", "flush", "-i", i]);
    assert!(ok);
    assert_eq!(err.trim(), format!("ipscan: {i}: removed 3 blocks"));
    assert!(connects(&bed.attacker, OTHER4, VICTIM4, 8080));

    // The allowlist from the CLI wins over the kernel's auto-block.
    let (ok, _, err) = cli(&["allow", "add", ATTACKER4, "-i", i]);
    assert!(ok, "{err}");
    nmap_syn(&bed);
    assert!(connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "allowlisted scanner not blocked");
    let (ok, _, _) = cli(&["allow", "del", ATTACKER4, "-i", i]);
    assert!(ok);
    let (ok, _, err) = cli(&["allow", "del", ATTACKER4, "-i", i]);
    assert!(!ok && err.contains("was not added"), "{err}");

    // Bad input: one line, nothing changed.
    let (ok, _, err) = cli(&["block", "add", "198.18.0.300", "-i", i]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "ipscan: invalid address \"198.18.0.300\": expected an IPv4 or IPv6 address (host names are not resolved)"
    );
    assert_eq!(err.trim().lines().count(), 1);
    let (ok, _, err) = cli(&["block", "add", OTHER4, "--ttl", "soon", "-i", i]);
    assert!(!ok);
    assert_eq!(err.trim(), "ipscan: invalid --ttl \"soon\": expected a duration such as 90s, 10m or 1h");
    let (_, json, _) = cli(&["block", "list", "--json", "-i", i]);
    assert_eq!(json.trim(), "[]");
}

#[test]
fn cli_without_a_daemon_says_so() {
    ipscan_tests::require_root();
    let dir = TempDir::new();
    let root = dir.join("no-pins");
    let (ok, _, err) = cli(&["block", "list", "--pin-root", root.to_str().expect("utf8")]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        format!(
            "ipscan: no ipscan daemon is running (nothing pinned under {}); start `ipscan run` first",
            root.display()
        )
    );
    // A bad argument is reported as such first, daemon or not.
    let root = root.to_str().expect("utf8");
    for (args, want) in [
        (
            &["block", "add", "198.18.0.1/33", "--pin-root", root][..],
            "ipscan: invalid mask \"198.18.0.1/33\": prefix length must be 0 to 32",
        ),
        (
            &["block", "add", "198.18.0.1", "--ttl", "5x", "--pin-root", root],
            "ipscan: invalid --ttl \"5x\": expected a duration such as 90s, 10m or 1h",
        ),
        (
            &["block", "del", "2001:db8::/129", "--pin-root", root],
            "ipscan: invalid mask \"2001:db8::/129\": prefix length must be 0 to 128",
        ),
        (
            &["allow", "add", "198.18.0.x", "--pin-root", root],
            "ipscan: invalid address \"198.18.0.x\": expected an IPv4 or IPv6 address (host names are not resolved)",
        ),
    ] {
        let (ok, _, err) = cli(args);
        assert!(!ok);
        assert_eq!(err.trim(), want, "{args:?}");
    }
}
