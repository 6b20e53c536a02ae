//! Running ipscan in production, end to end: no silent loss, metrics and `ipscan stats` equal to
//! the kernel's counters, `kill -9` and restart during a flood, an interface deleted and made
//! again, least privilege (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON only), and the systemd unit.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use ipscan_common::maps;
use ipscan_tests::{
    ATTACKER4, ATTACKER6, Daemon, Listener, NetNs, OTHER4, TempDir, Testbed, VICTIM4, VICTIM6, cli, connects,
    ipscan_bin, run_in, unique_tag, write_config,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn nmap_syn(bed: &Testbed) {
    run_in(
        &bed.attacker,
        120,
        "nmap",
        &["-sS", "-Pn", "-n", "-r", "-g", "40000", "--max-retries", "0", "-p", "1-40", VICTIM4],
    );
}

fn count(lines: &[String], needle: &str) -> usize {
    lines.iter().filter(|l| l.contains(needle)).count()
}

/// A bounded hping3 flood in the background, stopped (SIGINT) by `timeout` or on drop.
struct Flood {
    child: Child,
}

impl Flood {
    fn start(ns: &NetNs, secs: u32, args: &[&str]) -> Self {
        let child = ns
            .cmd("timeout")
            .args(["-s", "INT", &secs.to_string(), "hping3", "--flood", "-q"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("hping3: {e}"));
        Self { child }
    }

    /// Waits until the flood's own timeout ends it.
    fn wait(mut self) {
        let _ = self.child.wait();
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) on our child (timeout forwards SIGINT to hping3).
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
    }
}

/// `ipscan stats --json -i IFACE` (extra args: where the pins are), the interface's object.
fn stats_json(iface: &str, extra: &[&str]) -> Value {
    let mut args = vec!["stats", "--json", "-i", iface];
    args.extend_from_slice(extra);
    let (ok, out, err) = cli(&args);
    assert!(ok, "ipscan stats: {err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{out}");
    v[0].clone()
}

fn counter(stats: &Value, name: &str) -> u64 {
    stats["counters"][name].as_u64().unwrap_or_else(|| panic!("no counter {name} in {stats}"))
}

/// GET http://127.0.0.1:PORT/PATH from inside `ns`; returns (status, body).
fn http_get(ns: &NetNs, port: u16, path: &str) -> (u16, String) {
    let code = format!(
        "import urllib.request, urllib.error, sys\n\
try:\n    r = urllib.request.urlopen('http://127.0.0.1:{port}{path}', timeout=10)\n    print(r.status); sys.stdout.write(r.read().decode())\n\
except urllib.error.HTTPError as e:\n    print(e.code); sys.stdout.write(e.read().decode())\n"
    );
    let out = ns
        .cmd("timeout")
        .args(["-s", "KILL", "20", "python3", "-c", &code])
        .output()
        .unwrap_or_else(|e| panic!("python3: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (status, body) = text
        .split_once('\n')
        .unwrap_or_else(|| panic!("no HTTP answer: {text} {}", String::from_utf8_lossy(&out.stderr)));
    (status.trim().parse().unwrap_or_else(|_| panic!("status {status}")), body.to_owned())
}

/// The value of one sample (`name{labels}` exactly as exposed) in a Prometheus text body.
fn sample(body: &str, series: &str) -> Option<u64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map(|v| v.trim().parse().unwrap_or_else(|_| panic!("value of {series}: {v}")))
}

fn xdp_programs(ns: &NetNs, iface: &str) -> usize {
    let out = ns.cmd("ip").args(["-d", "link", "show", "dev", iface]).output().expect("ip link");
    String::from_utf8_lossy(&out.stdout).matches("prog/xdp").count()
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
    // Per-packet lines on (no scans_only), one per source per second.
    let conf = write_config(&dir, "packet_rate 1\n");
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
    assert_eq!(now["probation"]["max"].as_u64(), Some(u64::from(ipscan_common::window::PROBATION_SLOTS)));
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
        u64::from(ipscan_common::window::PROBATION_SLOTS)
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

#[test]
fn kill_9_during_a_flood_then_restart_reuses_the_pinned_state() {
    let bed = Testbed::new();
    bed.add_attacker_addr(&format!("{OTHER4}/24"));
    let dir = TempDir::new();
    let i = bed.victim_if.clone();
    let conf = write_config(&dir, "set scans_only\nblock syn_scan 60s\n");
    let args = ["--config", conf.to_str().expect("utf8")];
    let _srv = Listener::start(&bed.victim, 8080);
    let mut d = Daemon::start(&bed.victim, &i, &dir, &args);
    assert!(cli(&["block", "add", OTHER4, "--ttl", "1h", "-i", &i]).0);
    assert!(!connects(&bed.attacker, OTHER4, VICTIM4, 8080));

    // A flood to one port (a busy client, not a scan) while the daemon dies.
    let flood = Flood::start(&bed.attacker, 60, &["-S", "-p", "8080", "-i", "u100", VICTIM4]);
    thread::sleep(Duration::from_secs(1));
    d.signal(libc::SIGKILL);
    let (status, _) = d.stop_after_exit();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL));
    drop(d);
    // The XDP link is a file descriptor of the daemon: it died with it, so the interface runs
    // unprotected until the restart. The maps are pinned and stay.
    assert_eq!(xdp_programs(&bed.victim, &i), 0, "a killed daemon's link is gone");
    let killed = stats_json(&i, &[]);
    assert!(counter(&killed, "packets") > 0);

    let d = Daemon::start(&bed.victim, &i, &dir, &args);
    assert_eq!(xdp_programs(&bed.victim, &i), 1, "exactly one program after the restart");
    // The same STATS array counts on from where the killed daemon's program stopped.
    let deadline = Instant::now() + WAIT;
    while counter(&stats_json(&i, &[]), "packets") <= counter(&killed, "packets") {
        assert!(Instant::now() < deadline, "the flood is not counted after the restart");
        thread::sleep(Duration::from_millis(200));
    }
    // The block made before the kill still holds, during the flood.
    assert!(!connects(&bed.attacker, OTHER4, VICTIM4, 8080), "block kept across kill -9");
    drop(flood);

    // Detection and blocking go on.
    assert!(connects(&bed.attacker, ATTACKER4, VICTIM4, 8080));
    nmap_syn(&bed);
    let lines = d.wait_log("the block line", WAIT, |l| l.iter().any(|x| x.starts_with("Blocked 198.18.0.1")));
    assert_eq!(count(&lines, "TCP: SYN scan detected"), 1, "{}", lines.join("\n"));
    assert_eq!(count(&lines, "Blocked 198.18.0.1 for 60 s (SYN scan)"), 1, "{}", lines.join("\n"));
    assert!(!connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "new scanner blocked");
    let (_, json, _) = cli(&["block", "list", "--json", "-i", &i]);
    let v: Value = serde_json::from_str(&json).expect("json");
    let prefixes: Vec<&str> = v.as_array().expect("array").iter().filter_map(|r| r["prefix"].as_str()).collect();
    assert_eq!(prefixes, [OTHER4, ATTACKER4], "{json}");
}

#[test]
fn a_deleted_and_recreated_interface_is_reattached() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let i = bed.victim_if.clone();
    let conf = write_config(&dir, "set scans_only\nwindow syn_scan 2s\nwindow portscan 2s\n");
    let mut d = Daemon::start(&bed.victim, &i, &dir, &["--config", conf.to_str().expect("utf8"), "--metrics", "9464"]);
    nmap_syn(&bed);
    d.wait_log("the first expiry", WAIT, |l| count(l, "SYN scan mode expired") == 1);

    bed.delete_link();
    d.wait_stderr(&format!("ipscan: {i}: interface is gone; waiting for it"), WAIT);
    let (_, body) = http_get(&bed.victim, 9464, "/metrics");
    assert_eq!(sample(&body, &format!("ipscan_attached{{iface=\"{i}\"}}")), Some(0), "{body}");
    // It waits; it does not exit.
    thread::sleep(Duration::from_secs(2));
    d.wait_stderr("waiting for it", Duration::from_secs(1));

    bed.recreate_link();
    d.wait_stderr(&format!("ipscan: re-attached to {i} (native mode)"), WAIT);
    assert_eq!(xdp_programs(&bed.victim, &i), 1);
    nmap_syn(&bed);
    let lines = d.wait_log("the second detection", WAIT, |l| count(l, "TCP: SYN scan detected") == 2);
    assert_eq!(
        count(&lines, "TCP: SYN scan detected [ports 1,2,3,4,5,6,7,8,9,10,...] from 198.18.0.1 [port 40000]"),
        2
    );
    let (_, body) = http_get(&bed.victim, 9464, "/metrics");
    assert_eq!(sample(&body, &format!("ipscan_attached{{iface=\"{i}\"}}")), Some(1), "{body}");
    assert_eq!(
        sample(&body, &format!("ipscan_detections_total{{iface=\"{i}\",kind=\"SYN scan\"}}")),
        Some(2),
        "{body}"
    );
    let (status, stderr) = d.stop();
    assert!(status.success(), "{stderr}");
    assert_eq!(stderr.matches("interface is gone").count(), 1, "{stderr}");
    assert!(stderr.contains(&format!("detached from {i}")), "{stderr}");
    assert_eq!(xdp_programs(&bed.victim, &i), 0);
}

/// A directory on bpffs owned by `uid`, removed (with its pins) on drop.
struct BpfDir(PathBuf);

impl BpfDir {
    fn new(uid: u32) -> Self {
        let p = PathBuf::from(format!("/sys/fs/bpf/ipscan-test-{}", unique_tag()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        chown(&p, uid);
        Self(p)
    }
}

impl Drop for BpfDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn chown(p: &Path, uid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(uid)).unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
}

/// Capability bits: CAP_NET_ADMIN 12, CAP_PERFMON 38, CAP_BPF 39.
const THREE_CAPS: u64 = (1 << 12) | (1 << 38) | (1 << 39);

/// A command in `ns` as nobody with only CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON.
fn as_nobody(ns: &NetNs) -> Command {
    let mut c = ns.cmd("setpriv");
    c.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all,+bpf,+net_admin,+perfmon",
        "--ambient-caps=+bpf,+net_admin,+perfmon",
        "--bounding-set=-all,+bpf,+net_admin,+perfmon",
    ])
    .arg(ipscan_bin());
    c
}

fn status_field(pid: u32, field: &str) -> String {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    text.lines()
        .find_map(|l| l.strip_prefix(field).map(|v| v.trim().to_owned()))
        .unwrap_or_else(|| panic!("no {field}"))
}

#[test]
fn runs_as_nobody_with_only_bpf_net_admin_and_perfmon() {
    const NOBODY: u32 = 65534;
    let bed = Testbed::new();
    let dir = TempDir::new();
    fs::set_permissions(&dir.path, fs::Permissions::from_mode(0o755)).expect("chmod");
    chown(&dir.path, NOBODY);
    let pins = BpfDir::new(NOBODY);
    let lock = dir.join("lock");
    let i = bed.victim_if.clone();
    let conf = write_config(&dir, "set scans_only\nblock syn_scan 60s\n");
    let log = dir.join("ipscan.log");
    let place = ["--pin-root", pins.0.to_str().expect("utf8"), "--lock-dir", lock.to_str().expect("utf8")];
    let mut args =
        vec!["--config", conf.to_str().expect("utf8"), "--log-file", log.to_str().expect("utf8"), "--metrics", "9464"];
    args.extend_from_slice(&place);
    let _srv = Listener::start(&bed.victim, 8080);
    let mut d = Daemon::start_cmd(as_nobody(&bed.victim), &i, &dir, &args);

    // Really unprivileged: uid nobody, exactly the three capabilities.
    let pid = d.pid();
    assert_eq!(status_field(pid, "Uid:").split_whitespace().next(), Some("65534"));
    let eff = u64::from_str_radix(&status_field(pid, "CapEff:"), 16).expect("hex");
    assert_eq!(eff, THREE_CAPS, "CapEff {eff:x}");
    assert_eq!(xdp_programs(&bed.victim, &i), 1);

    // Detection, blocking, metrics and the CLI all work that way.
    nmap_syn(&bed);
    let lines = d.wait_log("the block line", WAIT, |l| l.iter().any(|x| x.starts_with("Blocked 198.18.0.1")));
    assert_eq!(count(&lines, "TCP: SYN scan detected"), 1, "{}", lines.join("\n"));
    assert!(!connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "scanner blocked");
    let (status, body) = http_get(&bed.victim, 9464, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        sample(&body, &format!("ipscan_detections_total{{iface=\"{i}\",kind=\"SYN scan\"}}")),
        Some(1),
        "{body}"
    );
    let out = as_nobody(&bed.victim).args(["stats", "--json", "-i", &i]).args(place).output().expect("stats");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v[0]["blocks"]["auto"], 1, "{v}");
    assert_eq!(v[0]["counters"]["autoblocks"], 1, "{v}");
    let out = as_nobody(&bed.victim).args(["block", "add", OTHER4, "-i", &i]).args(place).output().expect("block");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let (status, stderr) = d.stop();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains(&format!("detached from {i}")), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    let state = dir.join("state");
    assert!(fs::read_dir(&state).map(|r| r.count()).unwrap_or(0) > 0, "blocks saved in {}", state.display());
    assert_eq!(xdp_programs(&bed.victim, &i), 0);

    // A pin root the user cannot write is one clear line.
    let theirs = BpfDir::new(0);
    let out = as_nobody(&bed.victim)
        .args([
            "run",
            "--iface",
            &i,
            "--stdout",
            "--pin-root",
            theirs.0.to_str().expect("utf8"),
            "--lock-dir",
            lock.to_str().expect("utf8"),
        ])
        .args(["--state-dir", state.to_str().expect("utf8")])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(
        err.trim(),
        format!("ipscan: cannot create {}/{i}: Permission denied (os error 13)", theirs.0.display())
    );
    assert_eq!(xdp_programs(&bed.victim, &i), 0);

    // Without CAP_PERFMON the verifier would refuse the program: said up front, in one line.
    let out = bed
        .victim
        .cmd("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all,+bpf,+net_admin"])
        .args(["--ambient-caps=+bpf,+net_admin", "--bounding-set=-all,+bpf,+net_admin"])
        .arg(ipscan_bin())
        .args(["run", "--iface", &i, "--stdout"])
        .args(place)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "ipscan: ipscan needs root, or CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON"
    );
    assert_eq!(xdp_programs(&bed.victim, &i), 0);
}

#[test]
fn the_systemd_unit_verifies_and_keeps_the_sandbox() {
    let unit_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/systemd/ipscan.service");
    let unit = fs::read_to_string(&unit_path).expect("unit");
    let settings: Vec<(&str, &str)> = unit
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .collect();
    let get = |k: &str| -> Vec<&str> { settings.iter().filter(|(key, _)| *key == k).map(|(_, v)| *v).collect() };
    let one = |k: &str| -> &str {
        let v = get(k);
        assert_eq!(v.len(), 1, "{k}: {v:?}");
        v[0]
    };
    let words = |k: &str| -> Vec<&str> {
        let mut w: Vec<&str> = one(k).split_whitespace().collect();
        w.sort_unstable();
        w
    };
    assert_eq!(words("CapabilityBoundingSet"), ["CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON"]);
    assert_eq!(words("AmbientCapabilities"), ["CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON"]);
    assert_eq!(one("User"), "ipscan");
    assert_eq!(one("DynamicUser"), "no");
    assert_eq!(one("NoNewPrivileges"), "yes");
    assert_eq!(one("ProtectSystem"), "strict");
    assert_eq!(one("ProtectHome"), "yes");
    assert_eq!(one("PrivateTmp"), "yes");
    assert_eq!(one("StateDirectory"), "ipscan");
    assert_eq!(one("RuntimeDirectory"), "ipscan");
    assert_eq!(words("RestrictAddressFamilies"), ["AF_INET", "AF_INET6", "AF_NETLINK", "AF_UNIX"]);
    assert_eq!(words("SystemCallFilter"), ["@system-service", "bpf"]);
    assert_eq!(one("ExecReload"), "/bin/kill -HUP $MAINPID");
    for dir in ["/var/lib/ipscan", "/run/ipscan", "/sys/fs/bpf/ipscan", "/var/log/ipscan"] {
        assert!(one("ReadWritePaths").split_whitespace().any(|p| p == dir), "{dir} writable");
    }
    // ExecStart uses the same directories (and options that exist).
    let exec = one("ExecStart");
    for want in ["/var/lib/ipscan", "/sys/fs/bpf/ipscan", "/var/log/ipscan/"] {
        assert!(exec.contains(want), "{exec}");
    }
    let help = Command::new(ipscan_bin()).args(["run", "--help"]).output().expect("help");
    let help = String::from_utf8_lossy(&help.stdout);
    for opt in exec.split_whitespace().filter(|w| w.starts_with("--")) {
        assert!(help.contains(opt), "ExecStart option {opt} unknown to `ipscan run`");
    }

    // systemd's own check, with ExecStart pointing at the binary under test.
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        eprintln!("systemd-analyze not installed; parsed checks only");
        return;
    }
    let dir = TempDir::new();
    let copy = dir.join("ipscan.service");
    let bin = ipscan_bin().canonicalize().expect("binary");
    fs::write(&copy, unit.replace("/usr/sbin/ipscan", bin.to_str().expect("utf8"))).expect("write");
    let out = Command::new("systemd-analyze").arg("verify").arg(&copy).output().expect("verify");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "systemd-analyze verify: {err}");
    let out =
        Command::new("systemd-analyze").args(["security", "--offline=yes"]).arg(&copy).output().expect("security");
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for ipscan.service: ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level: {text}"));
    assert!(score <= 3.0, "exposure {score}: {text}");
}

/// Creates a BPF map with `bpf(BPF_MAP_CREATE)` and pins it at `path` (what an older ipscan
/// left behind); the pin keeps it after the descriptor is closed.
fn pin_map(path: &Path, map_type: u32, key: u32, value: u32, entries: u32) {
    pin_map_flags(path, map_type, key, value, entries, 0);
}

/// [`pin_map`] with map flags (an LPM trie needs BPF_F_NO_PREALLOC).
fn pin_map_flags(path: &Path, map_type: u32, key: u32, value: u32, entries: u32, flags: u32) {
    // union bpf_attr, BPF_MAP_CREATE: map_type, key_size, value_size, max_entries, map_flags.
    let mut attr = [0u64; 16];
    attr[0] = u64::from(map_type) | u64::from(key) << 32;
    attr[1] = u64::from(value) | u64::from(entries) << 32;
    attr[2] = u64::from(flags);
    // SAFETY: a zeroed bpf_attr with the MAP_CREATE fields set, of the size passed.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, 0, attr.as_mut_ptr(), size_of_val(&attr)) };
    assert!(fd >= 0, "BPF_MAP_CREATE: {}", std::io::Error::last_os_error());
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // BPF_OBJ_PIN: pathname, bpf_fd.
    let mut pin = [0u64; 16];
    pin[0] = c.as_ptr() as u64;
    pin[1] = fd as u64;
    // SAFETY: as above; the path outlives the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, 6, pin.as_mut_ptr(), size_of_val(&pin)) };
    assert_eq!(r, 0, "BPF_OBJ_PIN {}: {}", path.display(), std::io::Error::last_os_error());
    // SAFETY: our descriptor, closed once.
    unsafe { libc::close(fd as i32) };
}

/// Pins left by an older ipscan with other layouts (an LRU hash AUTOBLOCK, a PROBATION array of
/// 56-byte probes) are discarded with a note naming each, and the new maps work: a scanner is
/// detected and blocked.
#[test]
fn pins_of_an_older_layout_are_discarded_with_a_note() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let i = bed.victim_if.clone();
    let pins = Path::new("/sys/fs/bpf/ipscan").join(&i);
    fs::create_dir_all(&pins).expect("pin directory");
    const BPF_MAP_TYPE_ARRAY: u32 = 2;
    const BPF_MAP_TYPE_LRU_HASH: u32 = 9;
    pin_map(&pins.join("AUTOBLOCK"), BPF_MAP_TYPE_LRU_HASH, 20, 48, 65_536);
    pin_map(&pins.join("PROBATION"), BPF_MAP_TYPE_ARRAY, 4, 56, 65_537);
    let conf = write_config(&dir, "set scans_only\nblock syn_scan 60s\n");
    let mut d = Daemon::start(&bed.victim, &i, &dir, &["--config", conf.to_str().expect("utf8")]);
    let p = pins.display();
    d.wait_stderr(
        &format!("discarded pinned map {p}/AUTOBLOCK from an older ipscan (key/value 20/48 bytes, 65536 entries; now 4/72, 65537)"),
        WAIT,
    );
    d.wait_stderr(
        &format!("discarded pinned map {p}/PROBATION from an older ipscan (key/value 4/56 bytes, 65537 entries; now 4/256, 16385)"),
        WAIT,
    );
    let _srv = Listener::start(&bed.victim, 8080);
    nmap_syn(&bed);
    let lines = d.wait_log("the block line", WAIT, |l| l.iter().any(|x| x.starts_with("Blocked 198.18.0.1")));
    assert_eq!(count(&lines, "Blocked 198.18.0.1 for 60 s (SYN scan)"), 1, "{}", lines.join("\n"));
    assert!(!connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "the scanner is blocked");
    // A restart of this build keeps every pin: no note, the block still holds.
    let (status, _) = d.stop();
    assert!(status.success());
    drop(d);
    let d = Daemon::start(&bed.victim, &i, &dir, &["--config", conf.to_str().expect("utf8")]);
    let err = fs::read_to_string(&d.stderr).expect("stderr");
    assert!(!err.contains("discarded"), "{err}");
    assert!(!connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "block kept across the restart");
}

/// A block list whose pin has an older layout (BLOCK4 with 4-byte addresses, before its keys
/// grew to keep the values 8-aligned) is made anew, and its blocks come back from the state
/// file, while a list that was kept (BLOCK6) keeps its own blocks, not doubled.
#[test]
fn a_block_list_of_an_older_layout_comes_back_from_the_state_file() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let i = bed.victim_if.clone();
    let _srv = Listener::start(&bed.victim, 8080);
    let mut d = Daemon::start(&bed.victim, &i, &dir, &[]);
    assert!(cli(&["block", "add", ATTACKER4, "--ttl", "1h", "-i", &i]).0);
    assert!(cli(&["block", "add", "2001:db8:77::/48", "-i", &i]).0);
    assert!(!connects(&bed.attacker, ATTACKER4, VICTIM4, 8080));
    let (status, _) = d.stop();
    assert!(status.success());
    drop(d);

    // An older ipscan's BLOCK4: an LPM trie keyed by a prefix length and a 4-byte address.
    const BPF_MAP_TYPE_LPM_TRIE: u32 = 11;
    const BPF_F_NO_PREALLOC: u32 = 1;
    let pins = Path::new("/sys/fs/bpf/ipscan").join(&i);
    fs::remove_file(pins.join("BLOCK4")).expect("BLOCK4 pin");
    pin_map_flags(&pins.join("BLOCK4"), BPF_MAP_TYPE_LPM_TRIE, 8, 48, 65_536, BPF_F_NO_PREALLOC);
    let mut d = Daemon::start(&bed.victim, &i, &dir, &[]);
    d.wait_stderr(
        &format!(
            "discarded pinned map {}/BLOCK4 from an older ipscan (key/value 8/48 bytes, 65536 entries; now 12/48, 65536)",
            pins.display()
        ),
        WAIT,
    );
    d.wait_stderr("restored 1 blocks and 0 allows", WAIT);
    assert!(!connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "the IPv4 block is back");
    let (ok, json, err) = cli(&["block", "list", "--json", "-i", &i]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&json).expect("json");
    let mut prefixes: Vec<&str> = v.as_array().expect("rows").iter().filter_map(|r| r["prefix"].as_str()).collect();
    prefixes.sort_unstable();
    assert_eq!(prefixes, ["198.18.0.1", "2001:db8:77::/48"], "{json}");
    let left = v.as_array().expect("rows").iter().find(|r| r["prefix"] == "198.18.0.1").expect("row")["expires_in_s"]
        .as_u64()
        .expect("ttl");
    assert!((3000..=3600).contains(&left), "the time it had left: {left}");
}

/// Prefixes blocked by hand that BLOCKCOUNTS never counted (kept from an ipscan before it, or
/// added by the CLI to such pins while no daemon ran) are counted when the daemon starts, so the
/// program looks their senders up: the blocks hold, IPv4 and IPv6, and lifting one lets its
/// sender through without taking another block's count with it.
#[test]
fn prefixes_kept_without_their_counts_are_counted_at_start() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let i = bed.victim_if.clone();
    let _srv = Listener::start(&bed.victim, 8080);
    let mut d = Daemon::start(&bed.victim, &i, &dir, &[]);
    assert!(cli(&["block", "add", "198.18.0.0/24", "-i", &i]).0);
    assert!(!connects(&bed.attacker, ATTACKER4, VICTIM4, 8080));
    assert!(connects(&bed.attacker, ATTACKER6, VICTIM6, 8080), "IPv6 not blocked yet");
    let (status, _) = d.stop();
    assert!(status.success());
    drop(d);

    // An ipscan before BLOCKCOUNTS: no pin. The CLI still edits the lists (without counts).
    let pins = Path::new("/sys/fs/bpf/ipscan").join(&i);
    fs::remove_file(pins.join("BLOCKCOUNTS")).expect("BLOCKCOUNTS pin");
    let (ok, _, err) = cli(&["block", "add", "2001:db8::/64", "-i", &i]);
    assert!(ok, "{err}");
    let mut d = Daemon::start(&bed.victim, &i, &dir, &[]);
    assert!(pins.join("BLOCKCOUNTS").exists(), "pinned anew");
    assert!(!connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "the kept IPv4 prefix is counted");
    assert!(!connects(&bed.attacker, ATTACKER6, VICTIM6, 8080), "the IPv6 prefix the CLI added is counted");

    // Lifting the IPv6 block lets its sender through and leaves the IPv4 block as it was; a
    // block added with the daemon running is counted on the spot.
    assert!(cli(&["block", "del", "2001:db8::/64", "-i", &i]).0);
    assert!(connects(&bed.attacker, ATTACKER6, VICTIM6, 8080), "unblocked");
    assert!(!connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "still blocked");
    assert!(cli(&["block", "add", ATTACKER6, "-i", &i]).0);
    assert!(!connects(&bed.attacker, ATTACKER6, VICTIM6, 8080), "blocked again");
    assert!(cli(&["block", "del", "198.18.0.0/24", "-i", &i]).0);
    assert!(connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "the IPv4 block lifted");

    let (status, err) = d.stop();
    assert!(status.success());
    assert!(!err.contains("restored"), "counted, not restored from the state file: {err}");
    drop(d);

    // A daemon running without the pin (an ipscan before BLOCKCOUNTS, which holds the lock as
    // this test does; this build's daemon pins it again within a second): the CLI could not
    // count a new prefix, which the running program would then not see, so it refuses the
    // block and changes nothing.
    fs::remove_file(pins.join("BLOCKCOUNTS")).expect("BLOCKCOUNTS pin");
    let lock = fs::File::open(Path::new("/run/ipscan").join(format!("{i}.lock"))).expect("lock file");
    // SAFETY: valid fd; the lock goes with the file.
    assert_eq!(unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) }, 0);
    let (ok, out, err) = cli(&["block", "add", "198.18.0.0/24", "-i", &i]);
    assert!(!ok, "refused: {out}");
    assert_eq!(
        err.trim(),
        format!(
            "ipscan: {i}: the running daemon's BLOCKCOUNTS map is not pinned (no {}): a block added now \
             would not take effect; restart `ipscan run` on {i} first",
            pins.join("BLOCKCOUNTS").display()
        )
    );
    let (_, list, _) = cli(&["block", "list", "-i", &i]);
    assert!(!list.contains("198.18.0.0/24"), "nothing added: {list}");
    drop(lock);
    let (ok, _, err) = cli(&["block", "add", "198.18.0.0/24", "-i", &i]);
    assert!(ok && err.contains("no daemon is running"), "accepted once no daemon runs: {err}");
}

/// Allows kept without ALLOWCOUNTS (from an ipscan before it) are counted when the daemon
/// starts, so that an address allowed inside a prefix blocked by hand still passes; the CLI
/// refuses an allow that a running daemon's program would not see.
#[test]
fn allows_kept_without_their_counts_are_counted_at_start() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let i = bed.victim_if.clone();
    let _srv = Listener::start(&bed.victim, 8080);
    // A sender in a /16 of its own: the victim's own addresses, which the daemon allowlists,
    // count in 198.18.0.0/16's bucket, and would have it looked up whatever the pass did.
    const SENDER: &str = "198.19.0.1";
    bed.add_attacker_addr(&format!("{SENDER}/32"));
    bed.victim.ip(&["route", "add", &format!("{SENDER}/32"), "dev", &i]);
    let mut d = Daemon::start(&bed.victim, &i, &dir, &[]);
    assert!(cli(&["block", "add", "198.19.0.0/16", "-i", &i]).0);
    assert!(!connects(&bed.attacker, SENDER, VICTIM4, 8080), "blocked");
    assert!(cli(&["allow", "add", SENDER, "-i", &i]).0);
    assert!(connects(&bed.attacker, SENDER, VICTIM4, 8080), "allowed inside the blocked prefix");
    let (status, _) = d.stop();
    assert!(status.success());
    drop(d);

    let pins = Path::new("/sys/fs/bpf/ipscan").join(&i);
    fs::remove_file(pins.join("ALLOWCOUNTS")).expect("ALLOWCOUNTS pin");
    let mut d = Daemon::start(&bed.victim, &i, &dir, &[]);
    assert!(pins.join("ALLOWCOUNTS").exists(), "pinned anew");
    assert!(connects(&bed.attacker, SENDER, VICTIM4, 8080), "the kept allow is counted");
    assert!(cli(&["allow", "del", SENDER, "-i", &i]).0);
    assert!(!connects(&bed.attacker, SENDER, VICTIM4, 8080), "blocked once the allow went");
    let (status, _) = d.stop();
    assert!(status.success());
    drop(d);

    // A daemon running without the pin (holding the lock as this test does).
    fs::remove_file(pins.join("ALLOWCOUNTS")).expect("ALLOWCOUNTS pin");
    let lock = fs::File::open(Path::new("/run/ipscan").join(format!("{i}.lock"))).expect("lock file");
    // SAFETY: valid fd; the lock goes with the file.
    assert_eq!(unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) }, 0);
    let (ok, _, err) = cli(&["allow", "add", SENDER, "-i", &i]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        format!(
            "ipscan: {i}: the running daemon's ALLOWCOUNTS map is not pinned (no {}): an allow added now \
             would not take effect; restart `ipscan run` on {i} first",
            pins.join("ALLOWCOUNTS").display()
        )
    );
    let (_, list, _) = cli(&["allow", "list", "-i", &i]);
    assert!(!list.contains(SENDER), "nothing added: {list}");
}

/// Pins removed while the daemon runs (by hand, or a cleanup of /sys/fs/bpf) are pinned again
/// within a second, to the same maps: the CLI finds the blocks and edits them, and a restart
/// keeps them.
#[test]
fn pins_removed_under_a_running_daemon_are_pinned_again() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let i = bed.victim_if.clone();
    let _srv = Listener::start(&bed.victim, 8080);
    let mut d = Daemon::start(&bed.victim, &i, &dir, &[]);
    assert!(cli(&["block", "add", ATTACKER4, "-i", &i]).0);
    assert!(!connects(&bed.attacker, ATTACKER4, VICTIM4, 8080));

    // The daemon may pin some again while the directory is being removed (then it is not
    // empty): removed again until it is gone.
    let pins = Path::new("/sys/fs/bpf/ipscan").join(&i);
    while pins.exists() {
        let _ = fs::remove_dir_all(&pins);
    }
    d.wait_stderr(" again (the pins were removed)", WAIT);
    let deadline = Instant::now() + WAIT;
    while !maps::PINNED.iter().all(|name| pins.join(name).exists()) {
        assert!(Instant::now() < deadline, "not every map was pinned again");
        thread::sleep(Duration::from_millis(100));
    }
    let (ok, list, err) = cli(&["block", "list", "-i", &i]);
    assert!(ok, "{err}");
    assert!(list.contains(ATTACKER4), "the same maps: {list}");

    // One pin: pinned again alone; a block added afterwards is counted and takes effect.
    fs::remove_file(pins.join("BLOCKCOUNTS")).expect("BLOCKCOUNTS pin");
    d.wait_stderr(&format!("ipscan: {i}: pinned BLOCKCOUNTS again (the pins were removed)"), WAIT);
    let (ok, _, err) = cli(&["block", "add", ATTACKER6, "-i", &i]);
    assert!(ok, "{err}");
    assert!(!connects(&bed.attacker, ATTACKER6, VICTIM6, 8080), "blocked");
    assert!(cli(&["block", "del", ATTACKER4, "-i", &i]).0);
    assert!(connects(&bed.attacker, ATTACKER4, VICTIM4, 8080), "lifted");

    let (status, _) = d.stop();
    assert!(status.success());
    drop(d);
    let mut d = Daemon::start(&bed.victim, &i, &dir, &[]);
    assert!(!connects(&bed.attacker, ATTACKER6, VICTIM6, 8080), "kept across a restart");
    let (status, err) = d.stop();
    assert!(status.success());
    assert!(!err.contains("restored"), "kept in the pins, not restored from the state file: {err}");
}
