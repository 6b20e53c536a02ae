//! `ipscan run` as a user meets it: clear one-line errors, mode fallback, clean detach on SIGINT
//! and SIGTERM, SIGHUP reload, promiscuous mode while running, an interface deleted and made
//! again, least privilege (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON only), and the systemd unit.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use ipscan_tests::{
    ATTACKER4, Daemon, Listener, NetNs, OTHER4, TempDir, Testbed, VICTIM4, connects, count, http_get, ipscan_bin,
    nmap_syn, sample, scapy, show, unique_tag, write_config, xdp_attached, xdp_programs,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn run_fails(cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().expect("run ipscan");
    assert!(!out.status.success(), "expected failure: {cmd:?}");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.trim_end().lines().count(), 1, "one line, got: {err}");
    err.trim_end().to_owned()
}

#[test]
fn missing_interface_is_one_clear_line() {
    ipscan_tests::require_root();
    let err = run_fails(Command::new(ipscan_bin()).args(["run", "--iface", "nosuch0", "--stdout"]));
    assert_eq!(err, "ipscan: interface \"nosuch0\" does not exist");
}

#[test]
fn a_bad_config_line_names_file_and_line_and_attaches_nothing() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let conf = write_config(&dir, "set portscan true\n\nthreshold syn_scan abc\n");
    let err = run_fails(bed.victim.cmd(ipscan_bin()).args(["run", "--iface", &bed.victim_if, "--config"]).arg(&conf));
    assert_eq!(
        err,
        format!("ipscan: {}:3: invalid threshold \"abc\" for syn_scan: expected a positive integer", conf.display())
    );
    assert!(!xdp_attached(&bed.victim, &bed.victim_if));
}

#[test]
fn a_refused_program_is_one_line_within_seconds_keeps_the_log_and_leaves_nothing_pinned() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let log = dir.join("verifier.log");
    let root = Path::new(ipscan::kernel::pins::DEFAULT_PIN_ROOT);
    let root_was_there = root.exists();
    let start = Instant::now();
    let err = run_fails(
        bed.victim
            .cmd(ipscan_bin())
            .args(["run", "--iface", &bed.victim_if, "--stdout", "--test-refusal", "--verifier-log"])
            .arg(&log)
            .arg("--state-dir")
            .arg(dir.join("state")),
    );
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
    let kernel = String::from_utf8_lossy(&ipscan_tests::sh(Command::new("uname").arg("-r")).stdout).trim().to_owned();
    let head = format!(
        "ipscan: {}: Linux {kernel} refused the XDP program: invalid func unknown#32767 (after ",
        bed.victim_if
    );
    assert!(err.starts_with(&head), "{err}");
    let tail = format!(
        " processed instructions); ipscan needs Linux 5.12 or later and is tested on 6.1, 6.12 and 6.18; the \
         verifier's log is in {}",
        log.display()
    );
    assert!(err.ends_with(&tail), "{err}");
    let text = std::fs::read_to_string(&log).expect("verifier log");
    assert!(text.contains("invalid func unknown#32767") && text.contains("processed "), "{text}");
    assert!(!xdp_attached(&bed.victim, &bed.victim_if));
    let pins = Path::new(ipscan::kernel::pins::DEFAULT_PIN_ROOT).join(&bed.victim_if);
    assert!(!pins.exists(), "{} left behind", pins.display());
    assert!(root_was_there || !root.exists(), "the pin root {} left behind", root.display());
    // And the CLI does not take the failed start for a daemon.
    let out = bed.victim.cmd(ipscan_bin()).args(["block", "list", "--iface", &bed.victim_if]).output().expect("cli");
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        format!("ipscan: no ipscan daemon has run on {} (no {})", bed.victim_if, pins.display())
    );
}

#[test]
fn without_privileges_is_one_clear_line() {
    ipscan_tests::require_root();
    let err = run_fails(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"])
            .arg(ipscan_bin())
            .args(["run", "--iface", "lo", "--stdout"]),
    );
    assert_eq!(err, "ipscan: ipscan needs root, or CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON");
}

#[test]
fn sigint_detaches_and_native_mode_is_used_on_veth() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let mut d = Daemon::start(&bed.victim, &bed.victim_if, &dir, &["--xdp-mode", "native"]);
    assert!(xdp_attached(&bed.victim, &bed.victim_if));
    let (status, stderr) = d.stop();
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains(&format!("attached to {} (native mode)", bed.victim_if)), "{stderr}");
    assert!(stderr.contains(&format!("detached from {}", bed.victim_if)), "{stderr}");
    assert!(!xdp_attached(&bed.victim, &bed.victim_if), "program left attached after SIGINT");

    // SIGTERM too.
    let mut d = Daemon::start(&bed.victim, &bed.victim_if, &dir, &[]);
    d.signal(libc::SIGTERM);
    d.wait_stderr("detached from", std::time::Duration::from_secs(10));
    let (status, _) = d.stop_after_exit();
    assert!(status.success());
    assert!(!xdp_attached(&bed.victim, &bed.victim_if));
}

/// A SIGINT that comes the moment the daemon says it attached (as from a supervisor that stops
/// what it just started) still goes through the shutdown: detached, state saved, exit 0.
#[test]
fn sigint_right_after_attaching_still_shuts_down_cleanly() {
    use std::io::{BufRead as _, BufReader};
    let bed = Testbed::new();
    let dir = TempDir::new();
    let state = dir.join("state");
    let mut child = bed
        .victim
        .cmd(ipscan_bin())
        .args(["run", "--iface", &bed.victim_if, "--stdout", "--state-dir"])
        .arg(&state)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ipscan");
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut text = String::new();
    while err.read_line(&mut text).expect("stderr") > 0 {
        if text.contains("attached to") || text.contains("attached in") {
            // SAFETY: plain kill(2) on our child.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            break;
        }
    }
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut err, &mut rest);
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status}: {text}{rest}");
    assert!(rest.contains(&format!("detached from {}", bed.victim_if)), "{text}{rest}");
    assert!(state.join(format!("{}.json", bed.victim_if)).exists(), "no state saved: {text}{rest}");
    assert!(!xdp_attached(&bed.victim, &bed.victim_if));
}

#[test]
fn auto_mode_falls_back_to_skb_and_says_so() {
    ipscan_tests::require_root();
    let ns = NetNs::new(format!("ipst-{}-d", unique_tag()));
    // A bridge device has no native XDP support (the name is only a name).
    ns.ip(&["link", "add", "dummy0", "type", "bridge"]);
    ns.ip(&["link", "set", "dummy0", "up"]);
    // The daemon pins its maps under the interface's name, which is not unique here: start
    // without a previous run's pins and leave none behind.
    struct Pins(std::path::PathBuf);
    impl Drop for Pins {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let pins = Pins(std::path::Path::new("/sys/fs/bpf/ipscan/dummy0").to_owned());
    let _ = std::fs::remove_dir_all(&pins.0);
    let dir = TempDir::new();
    let mut d = Daemon::start(&ns, "dummy0", &dir, &[]);
    assert!(xdp_attached(&ns, "dummy0"));
    let (status, stderr) = d.stop();
    assert!(status.success());
    let line = stderr.lines().find(|l| l.contains("native XDP not available")).unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.starts_with("ipscan: dummy0: native XDP not available ("), "{line}");
    assert!(line.ends_with("); attached in skb mode"), "{line}");
    // An explicit native request on such a device is an error, not a silent fallback.
    let err = run_fails(ns.cmd(ipscan_bin()).args(["run", "--iface", "dummy0", "--xdp-mode", "native", "--stdout"]));
    assert!(err.starts_with("ipscan: cannot attach XDP to dummy0 in native mode: "), "{err}");
}

#[test]
fn promisc_networks_make_the_interface_promiscuous_while_running() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let conf = write_config(&dir, "promisc 198.18.0.0/24\n");
    // A packet socket's membership counts in the device's promiscuity (`ip -d`), not in the
    // PROMISC flag an administrator sets.
    let promisc = |bed: &Testbed| {
        let out = bed.victim.cmd("ip").args(["-d", "link", "show", "dev", &bed.victim_if]).output().expect("ip");
        String::from_utf8_lossy(&out.stdout).contains("promiscuity 1")
    };
    assert!(!promisc(&bed));
    let mut d = Daemon::start(&bed.victim, &bed.victim_if, &dir, &["--config", conf.to_str().expect("utf8")]);
    assert!(promisc(&bed), "promiscuous while the daemon runs");
    let (status, stderr) = d.stop();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("promiscuous mode on"), "{stderr}");
    assert!(!promisc(&bed), "and not after it stopped");
}

#[test]
fn sighup_reloads_thresholds_and_keeps_modes() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let base = "set scans_only true\nthreshold portscan 5\nwindow portscan 10s\nwindow null_scan 10s\n";
    let mut d = Daemon::with_config(&bed, &dir, &format!("{base}threshold null_scan 20\n"));
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
    let lines = d.wait_all(&want);
    assert_eq!(lines.len(), 4, "the port scan was not detected again:\n{}", show(&lines));
    let (_, stderr) = d.stop();
    let failed: Vec<&str> = stderr.lines().filter(|l| l.contains("reload failed")).collect();
    assert_eq!(failed.len(), 1, "{stderr}");
    assert!(failed[0].contains("ipscan.conf:1: unknown keyword \"sett\""), "{stderr}");
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
