//! What the daemon writes, end to end: per-packet lines (TCP, UDP, ICMP, ICMP errors naming what
//! they quote; with and without `log_dest`), what `ignore` rules and `scans_only` leave out, names
//! for addresses (`log_ip`, `disable_resolver`), syslog datagrams, the JSON event log that Wazuh
//! reads, loss reports (ring buffer full, rate limit), and the Prometheus metrics and `ipscan
//! stats` against the kernel's own counters.

use std::{
    os::unix::net::UnixDatagram,
    process::Command,
    thread,
    time::{Duration, Instant},
};

use ipscan_tests::{
    ATTACKER4, ATTACKER6, Daemon, Flood, Listener, TempDir, Testbed, VICTIM4, VICTIM6, cli, connects, count, counter,
    http_get, ipscan_bin, nmap_syn, run_in, sample, scapy, show, stats_json, write_config, xdp_programs,
};

const WAIT: Duration = Duration::from_secs(20);

fn conf_arg(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// `ssh`, or `port N`, as ipscan (and iplog) names a port.
fn svc(port: u16, proto: &str) -> String {
    ipscan::config::service_name(port, proto).unwrap_or_else(|| format!("port {port}"))
}

#[test]
fn per_packet_lines_v4_and_v6() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let d = Daemon::with_config(&bed, &dir, "# iplog defaults: every connection attempt, datagram and ICMP message\n");
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
    d.wait_exactly(&want, "exactly these lines, once each");
}

#[test]
fn per_packet_lines_with_log_dest() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let d = Daemon::with_config(&bed, &dir, "set log_dest true\n");
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
    let lines = d.wait_all(&want);
    assert_eq!(lines.len(), 3, "{}", show(&lines));
}

/// ICMP errors name what they quote as iplog did: a router reporting another host, a redirect's
/// gateway and target, a quoted ICMP message, and a host reporting itself (scapy, through the
/// real program and daemon).
#[test]
fn icmp_errors_name_what_they_quote() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let d = Daemon::with_config(&bed, &dir, "# iplog defaults\n");
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
    d.wait_exactly(&want, "exactly these lines, once each");
}

#[test]
fn ignore_rule_hides_and_does_not_count() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let d = Daemon::with_config(&bed, &dir, "ignore tcp dport 22\nthreshold portscan 4\nwindow portscan 3s\n");
    let syn = |ports: &str| {
        format!("send4([IP(src='{ATTACKER4}', dst='{VICTIM4}')/TCP(sport=40000, dport=p, flags='S') for p in {ports}])")
    };
    scapy(&bed, &syn("[21, 22, 23, 24]"));
    let attempts: Vec<String> = [21u16, 23, 24]
        .iter()
        .map(|p| format!("TCP: {} connection attempt from {ATTACKER4}:40000", svc(*p, "tcp")))
        .collect();
    let lines = d.wait_all(&attempts);
    assert_eq!(lines.len(), 3, "nothing for port 22, no detection at 3 counted ports:\n{}", show(&lines));
    scapy(&bed, &syn("[25]"));
    let want = vec![
        format!("TCP: port scan detected [ports 21,23,24,25] from {ATTACKER4} [port 40000]"),
        format!("TCP: port scan mode expired for {ATTACKER4} - received a total of 4 packets (80 bytes)."),
    ];
    let lines = d.wait_all(&want);
    assert_eq!(lines.len(), 5, "the threshold packet's own line is suppressed:\n{}", show(&lines));
}

#[test]
fn scans_only_keeps_alerts() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let d = Daemon::with_config(&bed, &dir, "set scans_only true\n");
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
    let lines = d.wait_all(&want);
    assert_eq!(lines, want, "no ordinary lines under scans_only");
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

#[test]
fn json_log_carries_srcip_for_wazuh() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let conf = write_config(&dir, "window syn_scan 3s\nwindow portscan 3s\nblock syn_scan 2s\nset scans_only\n");
    let json = dir.join("events.json");
    let d = Daemon::start(
        &bed.victim,
        &bed.victim_if,
        &dir,
        &["--config", conf.to_str().expect("utf8"), "--json-log", json.to_str().expect("utf8")],
    );
    nmap_syn(&bed);
    let lines = d.wait_log("unblock and expiry", Duration::from_secs(15), |l| {
        l.iter().any(|x| x.starts_with("Unblocked")) && l.iter().any(|x| x.contains(" mode expired "))
    });
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&json)
        .expect("json log")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    // One record per log line, same message, same order.
    let messages: Vec<&str> = records.iter().map(|r| r["message"].as_str().expect("message")).collect();
    assert_eq!(messages, lines.iter().map(String::as_str).collect::<Vec<_>>());
    let det = &records[0];
    assert_eq!(det["event"], "detected");
    assert_eq!(det["program"], "ipscan");
    assert_eq!(det["srcip"], "198.18.0.1");
    assert_eq!(det["dstip"], "198.18.0.2");
    assert_eq!(det["detection"], "SYN scan");
    assert_eq!(det["dports"], serde_json::json!([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
    assert_eq!(det["sports"], serde_json::json!([40000]));
    let events: Vec<&str> = records.iter().map(|r| r["event"].as_str().expect("event")).collect();
    assert!(events.contains(&"blocked") && events.contains(&"unblocked") && events.contains(&"expired"), "{events:?}");
    assert!(records.iter().all(|r| r["srcip"] == "198.18.0.1"));
}

/// The last loss summary line in the log, if any.
fn last_loss_line(lines: &[String]) -> Option<String> {
    lines.iter().rev().find(|l| l.contains("events lost (ring buffer full)")).cloned()
}

#[test]
fn ring_buffer_loss_and_rate_limited_lines_are_counted_and_reported() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let i = bed.victim_if.clone();
    // Per-packet lines on (no scans_only), one per source per second. The distributed flood is
    // off: it would leave the random-source flood's lines out after its threshold, and this test
    // is about losing them (`distributed.rs` tests it).
    let conf = write_config(&dir, "packet_rate 1\nset distributed_flood false\n");
    let mut d = Daemon::start(
        &bed.victim,
        &i,
        &dir,
        &[
            "--config",
            conf.to_str().expect("utf8"),
            "--event-ring-bytes",
            "4096",
            "--loss-report-secs",
            "1",
            "--metrics",
            "9464",
        ],
    );
    // Ring-buffer loss: every SYN from a new random source has a fresh budget, so each one is an
    // event, far more than a one-page ring holds between two reads.
    Flood::start(&bed.attacker, 3, &["-S", "-p", "80", "--rand-source", VICTIM4]).wait();
    // Rate limit: one source, one line a second, the rest left out.
    Flood::start(&bed.attacker, 2, &["-S", "-p", "81", VICTIM4]).wait();

    // The periodic line catches up with the kernel's counters once the floods are over.
    let deadline = Instant::now() + WAIT;
    let (kernel, line) = loop {
        let s = stats_json(&i, &[]);
        let want = format!(
            "ipscan: {i}: {} events lost (ring buffer full), {} per-packet lines left out (rate limit) since start",
            counter(&s, "lost_events"),
            counter(&s, "rate_limited")
        );
        let got = last_loss_line(&d.lines());
        if got.as_deref() == Some(want.as_str()) {
            break (s, want);
        }
        assert!(Instant::now() < deadline, "loss line never matched the kernel: want {want:?}, got {got:?}");
        thread::sleep(Duration::from_millis(500));
    };
    let lost = counter(&kernel, "lost_events");
    let limited = counter(&kernel, "rate_limited");
    assert!(lost > 0, "the flood never overflowed a one-page ring: {kernel}");
    assert!(limited > 0, "nothing was rate limited: {kernel}");

    // The metrics say the same.
    let (status, body) = http_get(&bed.victim, 9464, "/metrics");
    assert_eq!(status, 200);
    let now = stats_json(&i, &[]);
    assert_eq!(counter(&now, "lost_events"), lost, "traffic after the floods");
    assert_eq!(sample(&body, &format!("ipscan_kernel_lost_events_total{{iface=\"{i}\"}}")), Some(lost), "{body}");
    assert_eq!(sample(&body, &format!("ipscan_kernel_rate_limited_total{{iface=\"{i}\"}}")), Some(limited), "{body}");
    // The spoofed sources wait on probation (one SYN each, inside the 50 s windows), none in
    // SOURCES; the metrics and `ipscan stats` count the same.
    let on_probation = now["probation"]["entries"].as_u64().expect("probation entries");
    assert!(on_probation > 1_000, "{now}");
    assert_eq!(now["probation"]["max"].as_u64(), Some(u64::from(ipscan_common::probation::PROBATION_SLOTS)));
    assert_eq!(now["sources"]["entries"].as_u64(), Some(0), "{now}");
    assert_eq!(sample(&body, &format!("ipscan_map_entries{{iface=\"{i}\",map=\"PROBATION\"}}")), Some(on_probation));

    // And the last word at exit.
    let (status, stderr) = d.stop();
    assert!(status.success(), "{stderr}");
    let lines = d.lines();
    let at_exit = last_loss_line(&lines).expect("a loss line at exit");
    assert_eq!(at_exit, line);
    assert!(count(&lines, "events lost (ring buffer full)") >= 2, "periodic and at exit");
}

#[test]
fn metrics_and_stats_equal_the_kernels_counters() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let i = bed.victim_if.clone();
    let conf = write_config(&dir, "set scans_only\nblock syn_scan 60s\n");
    let _srv = Listener::start(&bed.victim, 8080);
    let mut d = Daemon::start(&bed.victim, &i, &dir, &["--config", conf.to_str().expect("utf8"), "--metrics", "9464"]);
    d.wait_stderr("metrics on http://127.0.0.1:9464/metrics", WAIT);
    nmap_syn(&bed);
    let lines = d.wait_log("the block line", WAIT, |l| l.iter().any(|x| x.starts_with("Blocked 198.18.0.1")));
    assert!(!connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "scanner blocked");

    let before = stats_json(&i, &[]);
    let (status, body) = http_get(&bed.victim, 9464, "/metrics");
    let after = stats_json(&i, &[]);
    assert_eq!(status, 200);
    let series = |name: &str, labels: &str| {
        let s = if labels.is_empty() {
            format!("{name}{{iface=\"{i}\"}}")
        } else {
            format!("{name}{{iface=\"{i}\",{labels}}}")
        };
        sample(&body, &s).unwrap_or_else(|| panic!("no {s} in:\n{body}"))
    };
    // Every kernel counter, exactly (a stray neighbour-discovery frame between the two reads
    // may move `packets` and `passed`: the scrape then lies between them).
    for name in ipscan_common::stats::NAMES {
        let (lo, hi) = (counter(&before, name), counter(&after, name));
        let v = series(&format!("ipscan_kernel_{name}_total"), "");
        assert!((lo..=hi).contains(&v), "{name}: metrics {v}, kernel {lo}..{hi}");
    }
    assert!(counter(&before, "blocked") > 0 && counter(&before, "autoblocks") == 1, "{before}");
    assert_eq!(series("ipscan_verdicts_total", "verdict=\"drop\""), counter(&after, "dropped"));
    let passed = series("ipscan_verdicts_total", "verdict=\"pass\"");
    assert!((counter(&before, "passed")..=counter(&after, "passed")).contains(&passed));
    // Detections by kind: one detection line per kind logged, one active mode.
    let detected = |kind: &str| count(&lines, &format!("TCP: {kind} detected"));
    assert_eq!(detected("SYN scan"), 1, "{}", lines.join("\n"));
    assert_eq!(series("ipscan_detections_total", "kind=\"SYN scan\""), 1);
    assert_eq!(series("ipscan_active_modes", "kind=\"SYN scan\""), 1);
    let kinds_total: u64 = body
        .lines()
        .filter(|l| l.starts_with("ipscan_detections_total{"))
        .map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<u64>().ok()).expect("value"))
        .sum();
    assert_eq!(kinds_total as usize, count(&lines, " detected "), "every detection line counted once");
    // Blocklist and map occupancy.
    assert_eq!(series("ipscan_blocklist_entries", "type=\"auto\""), 1);
    assert_eq!(series("ipscan_blocklist_entries", "type=\"manual\""), 0);
    assert_eq!(after["blocks"]["auto"], 1);
    let drops = series("ipscan_blocklist_dropped_packets", "");
    assert_eq!(Some(drops), after["blocks"]["dropped_packets"].as_u64());
    // The block's own count includes the threshold probe, dropped on the way in.
    assert!(drops > 0 && drops >= counter(&after, "blocked"), "{drops} {after}");
    assert_eq!(Some(series("ipscan_map_entries", "map=\"SOURCES\"")), after["sources"]["entries"].as_u64());
    assert!(after["sources"]["entries"].as_u64() >= Some(1));
    assert_eq!(series("ipscan_map_max_entries", "map=\"SOURCES\""), u64::from(ipscan_common::maps::SOURCES_MAX));
    assert_eq!(series("ipscan_map_entries", "map=\"AUTOBLOCK\""), 1);
    assert_eq!(Some(series("ipscan_map_entries", "map=\"PROBATION\"")), after["probation"]["entries"].as_u64());
    assert_eq!(
        series("ipscan_map_max_entries", "map=\"PROBATION\""),
        u64::from(ipscan_common::probation::PROBATION_SLOTS)
    );
    assert_eq!(series("ipscan_attached", ""), 1);
    // Only /metrics is served.
    assert_eq!(http_get(&bed.victim, 9464, "/").0, 404);
    // The table form of `ipscan stats`.
    let (ok, out, err) = cli(&["stats", "-i", &i]);
    assert!(ok, "{err}");
    assert!(out.starts_with(&format!("{i}\n")), "{out}");
    let row = out.lines().find(|l| l.trim_start().starts_with("autoblocks ")).unwrap_or_else(|| panic!("{out}"));
    assert!(row.trim_end().ends_with(" 1"), "{row}");
    let row = out.lines().find(|l| l.trim_start().starts_with("probation ")).unwrap_or_else(|| panic!("{out}"));
    assert!(row.trim_end().ends_with(" of 65536"), "{row}");
    // A port that is taken is one line and attaches nothing.
    let out = bed
        .victim
        .cmd(ipscan_bin())
        .args(["run", "--iface", "lo", "--stdout", "--metrics", "9464", "--state-dir"])
        .arg(dir.join("state-lo"))
        .output()
        .expect("second daemon");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim(), "ipscan: cannot listen on 127.0.0.1:9464 for metrics: Address already in use (os error 98)");
    assert_eq!(xdp_programs(&bed.victim, "lo"), 0);
}
