//! Threat feeds (`ipscan block import`), end to end on a running daemon: Spamhaus DROP and
//! FireHOL lists, IPv4 and IPv6, dropped in the kernel and counted per set (`block sets`,
//! `stats`, metrics); a set replaced whole, lifted by its `--ttl` or by `del --set`; the
//! allowlist wins; a bad line changes nothing; sets kept across a restart and put back after a
//! reboot.

use std::{
    fs,
    io::Write,
    process::{Command, Stdio},
    time::Duration,
};

use ipscan_tests::{
    ATTACKER4, ATTACKER6, Daemon, Listener, OTHER4, TempDir, Testbed, VICTIM4, VICTIM6, cli, connects, http_get,
    ipscan_bin, sample, stats_json, write_config,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

/// `ipscan block sets --json -i IFACE`.
fn sets(i: &str) -> Value {
    let (ok, out, err) = cli(&["block", "sets", "--json", "-i", i]);
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The prefixes of a set, as `block list --set NAME` prints them.
fn prefixes(i: &str, set: &str) -> Vec<String> {
    let (ok, out, err) = cli(&["block", "list", "--set", set, "--json", "-i", i]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    v.as_array().expect("array").iter().map(|r| r["prefix"].as_str().expect("prefix").to_owned()).collect()
}

/// `ipscan block import ARGS`: its one stderr line, which must say it worked.
fn import(args: &[&str]) -> String {
    let mut all = vec!["block", "import"];
    all.extend_from_slice(args);
    let (ok, _, err) = cli(&all);
    assert!(ok, "ipscan {all:?}: {err}");
    err.trim().to_owned()
}

/// The import line without its time (`... in 0.00 s`).
fn untimed(line: &str) -> &str {
    line.rsplit_once(" in ").map_or(line, |(head, _)| head)
}

#[test]
fn feeds_drop_in_the_kernel_per_set_and_are_replaced_whole() {
    let bed = Testbed::new();
    bed.add_attacker_addr(&format!("{OTHER4}/24"));
    let dir = TempDir::new();
    let conf = write_config(&dir, "set scans_only\n");
    let _srv = Listener::start(&bed.victim, 8080);
    let args = ["--config", conf.to_str().expect("utf8"), "--metrics", "9464"];
    let d = Daemon::start(&bed.victim, &bed.victim_if, &dir, &args);
    let i = bed.victim_if.as_str();
    assert!(connects(&bed.attacker, OTHER4, VICTIM4, 8080));
    assert!(connects(&bed.attacker, ATTACKER6, VICTIM6, 8080));

    // Spamhaus DROP, as downloaded: the scanner's address among other networks.
    let drop = dir.join("drop.txt");
    fs::write(
        &drop,
        "; Spamhaus DROP List 2026/12/07 - (c) 2026 The Spamhaus Project SLU\n\
         ; Last-Modified: Mon, 07 Dec 2026 10:00:00 GMT\n\
         198.18.0.3/32 ; SBL000001\n203.0.113.0/24 ; SBL000002\n192.0.2.0/25 ; SBL000003\n",
    )
    .expect("write");
    let drop_path = drop.to_str().expect("utf8");
    let line = import(&[drop_path, "-i", i]);
    assert_eq!(untimed(&line), format!("ipscan: {i}: set drop: 3 prefixes (3 IPv4, 0 IPv6): 3 added, 0 removed"));
    assert!(!connects(&bed.attacker, OTHER4, VICTIM4, 8080), "dropped by the feed");
    assert!(connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "others unaffected");

    // FireHOL's netset form, IPv6, under a name of its own.
    let netset = dir.join("firehol_level1.netset");
    fs::write(&netset, "#\n# firehol_level1\n#\n# Maintainer      : FireHOL\n#\n2001:db8::1\n2001:db8:ffff::/48\n")
        .expect("write");
    let line = import(&[netset.to_str().expect("utf8"), "-i", i]);
    assert_eq!(
        untimed(&line),
        format!("ipscan: {i}: set firehol_level1: 2 prefixes (0 IPv4, 2 IPv6): 2 added, 0 removed")
    );
    assert!(!connects(&bed.attacker, ATTACKER6, VICTIM6, 8080), "dropped by the IPv6 feed");
    d.wait_all(&[
        format!("Set drop loaded: 3 prefixes (3 IPv4, 0 IPv6) from {drop_path}"),
        format!("Set firehol_level1 loaded: 2 prefixes (0 IPv4, 2 IPv6) from {}", netset.display()),
    ]);

    // Counted per set: `block sets`, `stats`, metrics.
    let v = sets(i);
    assert_eq!(v.as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!((v[0]["name"].as_str(), v[0]["ipv4"].as_u64()), (Some("drop"), Some(3)), "{v}");
    assert_eq!((v[1]["name"].as_str(), v[1]["ipv6"].as_u64()), (Some("firehol_level1"), Some(2)), "{v}");
    let dropped = v[0]["dropped_packets"].as_u64().expect("packets");
    assert!(dropped >= 1, "the refused SYNs were counted: {v}");
    assert!(v[1]["dropped_packets"].as_u64().expect("packets") >= 1, "{v}");
    let s = stats_json(i, &[]);
    assert_eq!(s["sets"][0]["name"], "drop", "{s}");
    assert!(s["sets"][0]["dropped_packets"].as_u64().expect("packets") >= dropped, "{s}");
    let (_, body) = http_get(&bed.victim, 9464, "/metrics");
    let series = |name: &str| format!("{name}{{iface=\"{i}\",set=\"drop\"}}");
    assert_eq!(sample(&body, &format!("ipscan_set_prefixes{{iface=\"{i}\",set=\"drop\",family=\"ipv4\"}}")), Some(3));
    assert!(sample(&body, &series("ipscan_set_dropped_packets_total")).is_some_and(|n| n >= dropped), "{body}");
    assert_eq!(prefixes(i, "drop"), ["192.0.2.0/25", "198.18.0.3", "203.0.113.0/24"]);

    // A new edition of the list replaces the set whole.
    fs::write(&drop, "; Spamhaus DROP\n203.0.113.0/24 ; SBL000002\n198.51.100.0/24 ; SBL000004\n").expect("write");
    let line = import(&[drop_path, "-i", i]);
    assert_eq!(untimed(&line), format!("ipscan: {i}: set drop: 2 prefixes (2 IPv4, 0 IPv6): 1 added, 2 removed"));
    assert!(connects(&bed.attacker, OTHER4, VICTIM4, 8080), "no longer listed");
    assert_eq!(prefixes(i, "drop"), ["198.51.100.0/24", "203.0.113.0/24"]);

    // A bad line: FILE:LINE, and nothing changes.
    let bad = dir.join("bad.txt");
    fs::write(&bad, "198.18.0.3\n# fine\n198.18.0.999/32\n").expect("write");
    let (ok, _, err) = cli(&["block", "import", bad.to_str().expect("utf8"), "--set", "drop", "-i", i]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        format!(
            "ipscan: {}:3: invalid address \"198.18.0.999/32\": expected an IPv4 or IPv6 address (host names are not \
             resolved)",
            bad.display()
        )
    );
    assert_eq!(prefixes(i, "drop"), ["198.51.100.0/24", "203.0.113.0/24"]);
    assert!(connects(&bed.attacker, OTHER4, VICTIM4, 8080));
    let (ok, _, err) = cli(&["block", "import", "-", "-i", i]);
    assert!(!ok);
    assert_eq!(err.trim(), "ipscan: reading standard input needs --set NAME");

    // Standard input, with a time to live; the allowlist wins over it.
    let mut child = Command::new(ipscan_bin())
        .args(["block", "import", "-", "--set", "short", "--ttl", "3s", "-i", i])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ipscan");
    child.stdin.take().expect("stdin").write_all(format!("{ATTACKER4}\n{OTHER4}\n").as_bytes()).expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "dropped by the set from stdin");
    assert!(cli(&["allow", "add", ATTACKER4, "-i", i]).0);
    assert!(connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "the allowlist wins");
    assert!(cli(&["allow", "del", ATTACKER4, "-i", i]).0);
    d.wait_log("the set's expiry", WAIT, |l| l.iter().any(|x| x.starts_with("Set short expired - dropped ")));
    assert!(connects(&bed.attacker, OTHER4, VICTIM4, 8080), "lifted at its ttl");
    assert!(connects(&bed.attacker, ATTACKER4, VICTIM4, 8080));

    // A set removed by name.
    let (ok, _, err) = cli(&["block", "del", "--set", "firehol_level1", "-i", i]);
    assert!(ok, "{err}");
    assert!(
        err.trim().starts_with(&format!("ipscan: {i}: removed set firehol_level1 (2 prefixes) - dropped ")),
        "{err}"
    );
    assert!(connects(&bed.attacker, ATTACKER6, VICTIM6, 8080), "set removed");
    d.wait_all(&["Set firehol_level1 removed.".to_owned()]);
    let (ok, _, err) = cli(&["block", "del", "--set", "firehol_level1", "-i", i]);
    assert!(!ok);
    assert_eq!(err.trim(), format!("ipscan: {i}: no set named \"firehol_level1\""));
    let v = sets(i);
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
}

#[test]
fn sets_are_kept_across_a_restart_and_put_back_after_a_reboot() {
    let bed = Testbed::new();
    bed.add_attacker_addr(&format!("{OTHER4}/24"));
    let dir = TempDir::new();
    let conf = write_config(&dir, "set scans_only\n");
    let _srv = Listener::start(&bed.victim, 8080);
    let args = ["--config", conf.to_str().expect("utf8")];
    let i = bed.victim_if.as_str();
    let mut d = Daemon::start(&bed.victim, i, &dir, &args);
    let list = dir.join("edrop.txt");
    fs::write(&list, "198.18.0.3/32 ; SBL9\n2001:db8::1/128 ; SBL10\n").expect("write");
    import(&[list.to_str().expect("utf8"), "--ttl", "1h", "-i", i]);
    assert!(!connects(&bed.attacker, OTHER4, VICTIM4, 8080));

    // A restart keeps the pinned tries: nothing to load, nothing logged again.
    let (status, _) = d.stop();
    assert!(status.success());
    drop(d);
    let mut d = Daemon::start(&bed.victim, i, &dir, &args);
    assert!(!connects(&bed.attacker, OTHER4, VICTIM4, 8080), "kept across a restart");
    let (status, _) = d.stop();
    assert!(status.success());
    let loaded = d.lines().iter().filter(|l| l.starts_with("Set edrop loaded")).count();
    assert_eq!(loaded, 1, "logged once, when imported: {:?}", d.lines());
    drop(d);

    // A reboot empties bpffs: the set comes back from the state directory, with its time left.
    let reboot = || fs::remove_dir_all(std::path::Path::new("/sys/fs/bpf/ipscan").join(i)).expect("unpin");
    reboot();
    let mut d = Daemon::start(&bed.victim, i, &dir, &args);
    d.wait_stderr("restored 1 threat feed sets (2 prefixes)", Duration::from_secs(5));
    assert!(!connects(&bed.attacker, OTHER4, VICTIM4, 8080), "restored after a reboot");
    assert!(!connects(&bed.attacker, ATTACKER6, VICTIM6, 8080), "IPv6 too");
    let v = sets(i);
    let left = v[0]["expires_in_s"].as_u64().expect("ttl");
    assert!((3500..=3600).contains(&left), "{v}");
    assert_eq!(v[0]["source"], list.to_str().expect("utf8"), "{v}");
    let (status, _) = d.stop();
    assert!(status.success());
    drop(d);

    // Changed while no daemon runs: a set removed stays removed, one imported is saved when the
    // daemon starts, and only it comes back after the next reboot.
    let (ok, _, err) = cli(&["block", "del", "--set", "edrop", "-i", i]);
    assert!(ok, "{err}");
    let late = dir.join("late.txt");
    fs::write(&late, "2001:db8::1\n").expect("write");
    import(&[late.to_str().expect("utf8"), "-i", i]);
    let mut d = Daemon::start(&bed.victim, i, &dir, &args);
    d.wait_all(&[format!("Set late loaded: 1 prefixes (0 IPv4, 1 IPv6) from {}", late.display())]);
    assert!(connects(&bed.attacker, OTHER4, VICTIM4, 8080), "edrop stays removed");
    let (status, _) = d.stop();
    assert!(status.success());
    drop(d);
    reboot();
    let mut d = Daemon::start(&bed.victim, i, &dir, &args);
    d.wait_stderr("restored 1 threat feed sets (1 prefixes)", Duration::from_secs(5));
    assert!(connects(&bed.attacker, OTHER4, VICTIM4, 8080), "the removed set did not come back");
    assert!(!connects(&bed.attacker, ATTACKER6, VICTIM6, 8080), "the late set did");
    let _ = d.stop();
}
