//! `ipscan run` as a user meets it: clear one-line errors, mode fallback, clean detach.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use ipscan_tests::{Daemon, NetNs, TempDir, Testbed, ipscan_bin, unique_tag, write_config, xdp_attached};

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
