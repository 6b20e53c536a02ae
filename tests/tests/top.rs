//! `ipscan top` in a real terminal (tmux: send-keys, capture-pane) against a running daemon
//! while nmap scans it, and its one-line errors without one.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use ipscan_tests::{
    Capture, Daemon, TempDir, Testbed, VICTIM4, cli, ipscan_bin, nmap_syn, pcap, require_root, unique_tag, write_config,
};

const WAIT: Duration = Duration::from_secs(20);

/// A tmux server of our own (private socket, no user config) running one command in a 160x50
/// session; killed, and its socket removed, on drop.
struct Tmux {
    socket: PathBuf,
    session: String,
}

impl Tmux {
    fn start(command: &str) -> Self {
        let tag = unique_tag();
        let t =
            Self { socket: std::env::temp_dir().join(format!("ipscan-top-{tag}.tmux")), session: format!("top{tag}") };
        let out = t
            .tmux()
            .args(["new-session", "-d", "-s", &t.session, "-x", "160", "-y", "50", command])
            .output()
            .expect("tmux");
        assert!(out.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&out.stderr));
        t
    }

    fn tmux(&self) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(&self.socket).args(["-f", "/dev/null"]);
        c
    }

    fn alive(&self) -> bool {
        self.tmux().args(["has-session", "-t", &self.session]).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    }

    fn screen(&self) -> String {
        let out = self.tmux().args(["capture-pane", "-p", "-t", &self.session]).output().expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &str) {
        let ok = self.tmux().args(["send-keys", "-t", &self.session, keys]).status().expect("tmux send-keys");
        assert!(ok.success(), "tmux send-keys {keys}");
    }

    /// Waits until the screen satisfies `pred`; returns it. Panics with the last screen.
    fn wait_screen(&self, what: &str, mut pred: impl FnMut(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            assert!(self.alive(), "ipscan top ended while waiting for {what}; last screen:\n{s}");
            assert!(Instant::now() < deadline, "timed out waiting for {what}; screen:\n{s}");
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// The pid of `ipscan top`: the child of the pane's shell.
    fn top_pid(&self) -> u32 {
        let out = self
            .tmux()
            .args(["display-message", "-p", "-t", &self.session, "#{pane_pid}"])
            .output()
            .expect("tmux display-message");
        let shell = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let children = fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).unwrap_or_default();
        children
            .split_whitespace()
            .find_map(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no child of the pane's shell {shell}"))
    }

    /// Waits for the session to end (its command exited).
    fn wait_end(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while self.alive() {
            assert!(Instant::now() < deadline, "ipscan top still running after {within:?}:\n{}", self.screen());
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux().arg("kill-server").stderr(Stdio::null()).status();
        let _ = fs::remove_file(&self.socket);
    }
}

/// A background process killed on drop.
struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The cells of a table row on screen: borders trimmed, split on the two-space column gaps.
fn cells(line: &str) -> Vec<String> {
    line.trim_matches(|c: char| c == '│' || c.is_whitespace())
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Rows of the table whose title starts with `title` (up to its bottom border).
fn table_rows(screen: &str, title: &str) -> Vec<Vec<String>> {
    screen
        .lines()
        .skip_while(|l| !l.contains(title))
        .skip(2) // title border, column header
        .take_while(|l| !l.trim_start().starts_with('└'))
        .map(cells)
        .filter(|c| !c.is_empty())
        .collect()
}

/// A rate cell as a number (`-` before the second refresh: none).
fn number(cell: Option<&String>) -> Option<f64> {
    cell.and_then(|c| c.parse().ok())
}

/// `45s` or `1m00s` as seconds.
fn seconds(text: &str) -> u64 {
    let parse = || -> Option<u64> {
        let body = text.strip_suffix('s')?;
        match body.split_once('m') {
            Some((m, s)) => Some(m.parse::<u64>().ok()? * 60 + s.parse::<u64>().ok()?),
            None => body.parse().ok(),
        }
    };
    parse().unwrap_or_else(|| panic!("not a duration: {text:?}"))
}

fn row_of<'a>(rows: &'a [Vec<String>], source: &str) -> Option<&'a Vec<String>> {
    rows.iter().find(|r| r.first().is_some_and(|c| c == source))
}

/// The number after `name ` in the header line starting with `prefix`.
fn header_value(screen: &str, prefix: &str, name: &str) -> f64 {
    let line =
        screen.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix:?} line:\n{screen}"));
    let after = line.split(&format!(" {name} ")).nth(1).unwrap_or_else(|| panic!("no {name} in {line:?}"));
    let word = after.split_whitespace().next().unwrap_or_default();
    word.parse().unwrap_or_else(|_| panic!("{name} is {word:?} in {line:?}"))
}

/// The attacker pinging the victim five times a second (at most 40 s), so a drop rate is live.
fn knocking(bed: &Testbed) -> Background {
    Background(
        bed.attacker
            .cmd("ping")
            .args(["-q", "-i", "0.2", "-c", "200", VICTIM4])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ping"),
    )
}

fn top_command(iface: &str, status: &Path) -> String {
    format!("{} top -i {iface}; echo $? > {}", ipscan_bin().display(), status.display())
}

#[test]
fn top_shows_the_scanner_in_mode_and_blocked_with_rates_and_quits() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    // Windows long enough for the mode to still be live when the screen is read: the block stops
    // the count at the threshold packet, so the window runs from there.
    let conf = write_config(&dir, "window syn_scan 60s\nwindow portscan 60s\nset scans_only\nblock syn_scan 60s\n");
    let mut d = Daemon::start(&bed.victim, &bed.victim_if, &dir, &["--config", conf.to_str().expect("utf8")]);

    // Not in a terminal: a plain error before the screen is touched.
    let (ok, _, err) = cli(&["top", "-i", &bed.victim_if]);
    assert!(!ok);
    assert_eq!(err, "ipscan: ipscan top needs a terminal (standard output is not one)\n");

    let status = dir.join("top.status");
    let tmux = Tmux::start(&top_command(&bed.victim_if, &status));
    let running = format!("{} (daemon running)", bed.victim_if);
    tmux.wait_screen("the header", |s| s.contains(&running) && s.contains("Sources in a scan or flood mode: 0"));

    let sent = Capture::start(&bed.attacker, &bed.attacker_if, "tcp and src host 198.18.0.1", dir.join("sent.pcap"));
    nmap_syn(&bed);
    sent.finish();
    // What the kernel counted for the SYN scan: the probes up to the threshold packet (port 10),
    // which is counted and then dropped with the rest.
    let counted: Vec<pcap::Packet> = pcap::packets(&dir.join("sent.pcap"))
        .into_iter()
        .filter(|p| p.proto == 6 && p.tcp_flags & 0x17 == 0x02 && p.dport <= 10)
        .collect();
    assert_eq!(counted.len(), 10, "nmap's first ten probes");
    let counted_bytes: u64 = counted.iter().map(|p| p.payload).sum();

    // The blocked scanner keeps knocking (five pings a second), so its drop rate is live.
    let _ping = knocking(&bed);

    // The refresh that first sees the scan shows its packet rate; once the block has stopped
    // the count the rate is zero, while the pings keep the drop rate up.
    let mut scan_rate_seen = 0.0f64;
    let screen = tmux.wait_screen("the scanner in both tables, counted no more but dropped now", |s| {
        let modes = table_rows(s, "Sources in a scan or flood mode");
        let blocks = table_rows(s, "Blocked:");
        let scan_rate = row_of(&modes, "198.18.0.1").and_then(|r| number(r.get(6)));
        scan_rate_seen = scan_rate_seen.max(scan_rate.unwrap_or(0.0));
        let drop_rate = row_of(&blocks, "198.18.0.1").and_then(|r| number(r.get(5)));
        scan_rate == Some(0.0) && drop_rate.is_some_and(|x| x > 0.0)
    });
    assert!(scan_rate_seen > 0.0, "the scan's packet rate was never shown");

    let modes = table_rows(&screen, "Sources in a scan or flood mode");
    assert_eq!(modes.len(), 1, "only the SYN scan is live (the block stopped the port scan count):\n{screen}");
    let m = &modes[0];
    assert_eq!(m.len(), 8, "{m:?}");
    assert_eq!(
        m[..6],
        [
            "198.18.0.1".to_owned(),
            bed.victim_if.clone(),
            "SYN scan".to_owned(),
            "1,2,3,4,5,6,7,8,9,10".to_owned(),
            "10".to_owned(),
            counted_bytes.to_string()
        ],
        "{screen}"
    );
    let in_mode = seconds(&m[7]);
    assert!(in_mode < 60, "{screen}");

    let blocks = table_rows(&screen, "Blocked:");
    assert_eq!(blocks.len(), 1, "{screen}");
    let b = &blocks[0];
    assert_eq!(b.len(), 7, "{b:?}");
    assert_eq!(b[..3], ["198.18.0.1".to_owned(), bed.victim_if.clone(), "SYN scan".to_owned()], "{screen}");
    let dropped: u64 = b[3].parse().expect("dropped");
    assert!(dropped >= 31, "nmap's 31 probes from port 10 on and pings were dropped, shown {dropped}:\n{screen}");
    let left = seconds(&b[6]);
    assert!((1..=60).contains(&left), "{screen}");

    // The pings are dropped as blocked now; the threshold probe was dropped by the detection
    // itself (counted on the entry and as dropped, not as blocked).
    assert!(header_value(&screen, "packets/s", "blocked") > 0.0, "{screen}");
    assert!(header_value(&screen, "packets/s", "dropped") >= header_value(&screen, "packets/s", "blocked"), "{screen}");
    assert!(header_value(&screen, "totals", "packets") >= 40.0, "{screen}");
    assert!(header_value(&screen, "totals", "dropped") >= dropped as f64, "{screen}");
    assert!(header_value(&screen, "totals", "blocked") >= dropped as f64 - 1.0, "{screen}");
    assert!(header_value(&screen, "totals", "auto-blocks") >= 1.0, "{screen}");
    assert!(header_value(&screen, "totals", "probation") >= 0.0, "{screen}");

    tmux.keys("q");
    tmux.wait_end(Duration::from_secs(5));
    assert_eq!(fs::read_to_string(&status).expect("exit status").trim(), "0", "ipscan top's exit status");

    // A daemon that stops shows as such; Ctrl-C quits cleanly as well.
    let status2 = dir.join("top2.status");
    let tmux2 = Tmux::start(&top_command(&bed.victim_if, &status2));
    tmux2.wait_screen("the header", |s| s.contains(&running));
    d.stop();
    tmux2.wait_screen("the stopped daemon", |s| s.contains(&format!("{} (no daemon)", bed.victim_if)));
    tmux2.keys("C-c");
    tmux2.wait_end(Duration::from_secs(5));
    assert_eq!(fs::read_to_string(&status2).expect("exit status").trim(), "0");

    // A terminal that goes away (the tmux server killed) ends it too, instead of leaving it
    // spinning on a hung-up terminal.
    let tmux3 = Tmux::start(&top_command(&bed.victim_if, &dir.join("top3.status")));
    tmux3.wait_screen("the header", |s| s.contains("ipscan top - "));
    let pid = tmux3.top_pid();
    drop(tmux3);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let state = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for init.
        if state.split_whitespace().nth(2).is_none_or(|s| s == "Z") {
            break;
        }
        assert!(Instant::now() < deadline, "ipscan top ({pid}) still running after its terminal hung up: {state}");
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn top_shows_each_threat_feed_set_with_its_drop_rate() {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let conf = write_config(&dir, "set scans_only\n");
    let _d = Daemon::start(&bed.victim, &bed.victim_if, &dir, &["--config", conf.to_str().expect("utf8")]);
    let list = dir.join("drop.txt");
    fs::write(&list, "198.18.0.1/32 ; SBL1\n203.0.113.0/24 ; SBL2\n").expect("write");
    let (ok, _, err) = cli(&["block", "import", list.to_str().expect("utf8"), "--ttl", "1h", "-i", &bed.victim_if]);
    assert!(ok, "{err}");
    let _ping = knocking(&bed);
    let status = dir.join("top.status");
    let tmux = Tmux::start(&top_command(&bed.victim_if, &status));
    let screen = tmux.wait_screen("the set with its drop rate", |s| {
        let blocks = table_rows(s, "Blocked:");
        row_of(&blocks, "set drop (2 prefixes)").and_then(|r| number(r.get(5))).is_some_and(|x| x > 0.0)
    });
    let blocks = table_rows(&screen, "Blocked:");
    let row = row_of(&blocks, "set drop (2 prefixes)").expect("row");
    assert_eq!(row[1..3], [bed.victim_if.clone(), "feed".to_owned()], "{screen}");
    assert!(row[3].parse::<u64>().expect("packets") >= 1, "{screen}");
    assert!((3500..=3600).contains(&seconds(&row[6])), "{screen}");
    tmux.keys("q");
    tmux.wait_end(Duration::from_secs(5));
}

#[test]
fn without_a_daemon_or_privileges_top_is_one_clear_line() {
    require_root();
    let dir = TempDir::new();
    let root = dir.join("pins");
    fs::create_dir_all(&root).expect("mkdir");
    let root_s = root.to_str().expect("utf8");

    let (ok, out, err) = cli(&["top", "--pin-root", root_s]);
    assert!(!ok);
    assert_eq!(out, "");
    assert_eq!(
        err,
        format!("ipscan: no ipscan daemon is running (nothing pinned under {root_s}); start `ipscan run` first\n")
    );

    let (ok, _, err) = cli(&["top", "-i", "nosuch0", "--pin-root", root_s]);
    assert!(!ok);
    assert_eq!(err, format!("ipscan: no ipscan daemon has run on nosuch0 (no {root_s}/nosuch0)\n"));

    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"])
        .arg(ipscan_bin())
        .arg("top")
        .stdin(Stdio::null())
        .output()
        .expect("setpriv");
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "ipscan: reading the daemon's maps needs root or CAP_BPF\n");
}
