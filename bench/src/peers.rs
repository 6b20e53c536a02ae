//! `cargo xtask bench --peers`: ipscan against the tools users compare it with, on the same
//! traffic in the same run (issue 24, "Peers, side by side").
//!
//! 1. One `nmap -sS` scan of an idle victim, seen at once by ipscan (XDP on the victim's veth)
//!    and by psad (Debian's package, fed by an iptables `LOG` rule through the kernel log, the
//!    way its documentation says): time from the first probe to each tool's report, psad at its
//!    default check interval (5 s) and at `-I 1`.
//! 2. The same scan during a bounded random-source SYN flood (hping3), each tool on its own
//!    testbed so the machine's CPU time can be set against a flood with no tool at all: CPU per
//!    million flood packets (processes, and the whole machine above the no-tool flood), lines
//!    written, whether and how late the scan was reported. A libpcap capture (tcpdump writing to
//!    /dev/null, the architecture of iplog) takes the same flood: CPU and packets it dropped.
//! 3. ipscan's own detection latency: the threshold packet of many small scans sent from a raw
//!    socket (its send time recorded) to the detection line's arrival in the log (inotify).
//!
//! Traffic stays between the namespaces of a [`Testbed`]: 198.18.0.0/15 addresses, no default
//! route, every sender bounded in packets or time. hping3's `--rand-source` cannot be kept to a
//! range: the flood's sources are random IPv4 addresses, delivered only over the veth (the
//! victim's answers have no route). Global sysctls (`net.netfilter.nf_log_all_netns`, which lets
//! `LOG` rules of other namespaces write to the kernel log, and `kernel.bpf_stats_enabled`) are
//! set only around the phases that need them and put back on drop.

use std::{
    fs,
    io::Read,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant, SystemTime},
};

use ipscan_tests::{ATTACKER4, Capture, Daemon, Flood, NetNs, TempDir, Testbed, VICTIM4, ns::mac_of, run_in, sh};
use serde_json::{Value, json};

use crate::bench::{self, Row, Target, median};

const IDLE: &str = "peers: one nmap -sS scan of an idle victim (psad and ipscan see the same probes)";
const FLOOD: &str = "peers: random-source SYN flood (hping3) with the same scan during it";
const LATENCY: &str = "ipscan detection latency (threshold packet sent -> line in the log)";

/// psad's files: Debian's package puts the program and its configuration here.
const PSAD: &str = "/usr/sbin/psad";
const PSAD_CONF: &str = "/etc/psad/psad.conf";

/// How much work a run does.
#[derive(Clone, Debug)]
struct Options {
    /// The ports nmap scans (`-p`).
    ports: &'static str,
    /// Idle scans per psad check interval.
    idle_rounds: usize,
    /// The flood's length (hping3 under `timeout`).
    flood_secs: u32,
    /// How long a tool may take to report the scan after the flood ends (psad catches up on
    /// its backlog only at its own pace).
    report_wait: Duration,
    /// Small scans for the latency percentiles, and the pause between them.
    latency_scans: usize,
    latency_gap: Duration,
}

impl Options {
    fn full() -> Self {
        Self {
            ports: "1-1000",
            idle_rounds: 3,
            flood_secs: 10,
            report_wait: Duration::from_secs(90),
            latency_scans: 100,
            latency_gap: Duration::from_millis(50),
        }
    }

    /// Every row, in about a minute; the numbers mean nothing.
    fn smoke() -> Self {
        Self {
            ports: "1-100",
            idle_rounds: 1,
            flood_secs: 1,
            report_wait: Duration::from_secs(15),
            latency_scans: 5,
            latency_gap: Duration::from_millis(50),
        }
    }

    fn json(&self) -> Value {
        json!({
            "nmap_ports": self.ports,
            "idle_rounds": self.idle_rounds,
            "flood_secs": self.flood_secs,
            "report_wait_secs": self.report_wait.as_secs(),
            "latency_scans": self.latency_scans,
            "latency_gap_ms": self.latency_gap.as_millis(),
        })
    }
}

/// Runs the three parts, prints the table and writes the JSON (bench.rs's document, with these
/// options).
pub fn run(smoke: bool, json_path: &Path) -> Value {
    ipscan_tests::require_root();
    // psad daemonizes; as the subreaper this process can reap it after killing it.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
    let o = if smoke { Options::smoke() } else { Options::full() };
    let machine = bench::machine();
    let mut rows = Vec::new();
    match psad_missing() {
        Some(why) => rows.push(missing_row(IDLE, &why)),
        None => idle_scan(&o, &mut rows),
    }
    eprintln!("bench: peers under a flood");
    flood(&o, psad_missing().is_none(), &mut rows);
    eprintln!("bench: ipscan detection latency");
    latency(&o, &mut rows);
    print!("{}", bench::table(&machine, &rows));
    let mut doc = bench::to_json(&machine, &bench::Options::full(), smoke, &rows);
    doc["options"] = o.json();
    if let Some(m) = doc.as_object_mut() {
        m.remove("test_run_timing");
    }
    if let Some(dir) = json_path.parent() {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    }
    let text = serde_json::to_string_pretty(&doc).unwrap_or_else(|e| panic!("JSON: {e}"));
    fs::write(json_path, text).unwrap_or_else(|e| panic!("write {}: {e}", json_path.display()));
    println!("\nwrote {}", json_path.display());
    doc
}

/// Why psad cannot run here, if it cannot (`cargo xtask setup` does not install it).
fn psad_missing() -> Option<String> {
    [PSAD, PSAD_CONF, "/usr/sbin/iptables"]
        .iter()
        .find(|p| !Path::new(p).exists())
        .map(|p| format!("{p} missing: `apt-get install psad` (pulls iptables, rsyslog, exim, Perl)"))
}

fn missing_row(section: &'static str, why: &str) -> Row {
    Row::unmeasured("peers_psad_missing", section, "psad".into(), why)
}

// ---------------------------------------------------------------------------------------------
// Measuring from outside: clocks, /proc, counters

/// Wall-clock time in seconds since the epoch: the clock tcpdump, psad's mail script and the
/// raw-socket sender stamp with, so their times compare directly.
fn now_unix() -> f64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// A process's CPU time in seconds: user and system, its own and its reaped children's (psad
/// runs its mail command and iptables as children).
fn proc_cpu(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which may hold spaces: state is field 3, utime field 14.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest.split_whitespace().skip(11).take(4).filter_map(|v| v.parse().ok()).collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    f.iter().sum::<f64>() / hz.max(1.0)
}

/// One `kB` field of /proc/PID/status (`VmRSS:`, `VmHWM:`), in bytes; 0 once the process is gone.
fn proc_status_bytes(pid: u32, field: &str) -> u64 {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// CPU seconds the whole machine spent busy (user, nice, system, irq, softirq of /proc/stat):
/// the only place the kernel's own share of a tool (logging, copying to a capture, softirq
/// work) shows, set against a flood with no tool.
fn machine_busy() -> f64 {
    let s = fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> =
        s.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // SAFETY: as in proc_cpu.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    [0, 1, 2, 5, 6].iter().filter_map(|&i| f.get(i)).sum::<f64>() / hz.max(1.0)
}

/// Packets received by an interface in a namespace (`ip -s -j link`; /sys is the host's).
fn rx_packets(ns: &NetNs, iface: &str) -> u64 {
    let out = sh(ns.cmd("ip").args(["-s", "-j", "link", "show", "dev", iface]));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("ip -j link: {e}"));
    v[0]["stats64"]["rx"]["packets"].as_u64().unwrap_or_else(|| panic!("no rx packets in {v}"))
}

/// A global sysctl set for one phase and put back on drop, also when the phase panics.
struct Sysctl {
    path: PathBuf,
    old: String,
}

impl Sysctl {
    fn set(key: &str, value: &str) -> Self {
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        let old = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        fs::write(&path, value).unwrap_or_else(|e| panic!("{} = {value}: {e}", path.display()));
        Self { path, old: old.trim().to_owned() }
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        if let Err(e) = fs::write(&self.path, &self.old) {
            eprintln!("bench: could not restore {} to {}: {e}", self.path.display(), self.old);
        }
    }
}

/// `SIGINT`, then `SIGKILL` after 5 s, then the exit status reaped: for the tools started here.
fn stop_child(child: &mut Child) {
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

// ---------------------------------------------------------------------------------------------
// Lines as they arrive

/// A log line and when it was seen appended (wall clock, seconds).
type Stamped = (f64, String);

/// Watches a file with inotify from a thread and stamps each appended line as it lands, keeping
/// the lines that contain `keep` and counting all: polling the file would add its period to
/// every latency.
struct LineWatch {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<(Vec<Stamped>, u64)>,
}

impl LineWatch {
    /// Starts watching `path` (which must exist) for at most `limit`.
    fn start(path: &Path, keep: &'static str, limit: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (path, stop2) = (path.to_owned(), stop.clone());
        let thread = thread::spawn(move || watch(&path, keep, &stop2, Instant::now() + limit));
        Self { stop, thread }
    }

    /// Stops watching; returns the kept lines and the count of all lines.
    fn finish(self) -> (Vec<Stamped>, u64) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap_or_else(|_| panic!("line watcher panicked"))
    }
}

/// The watcher thread: waits on inotify (50 ms at a time, to see `stop`) and reads what was
/// appended whenever the file changes, until `stop` or `deadline`.
fn watch(path: &Path, keep: &str, stop: &AtomicBool, deadline: Instant) -> (Vec<Stamped>, u64) {
    // SAFETY: inotify_init1 takes flags only; the fd is owned below.
    let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    assert!(raw >= 0, "inotify_init1: {}", std::io::Error::last_os_error());
    // SAFETY: raw is a fresh descriptor nobody else owns.
    let ino = unsafe { OwnedFd::from_raw_fd(raw) };
    let cpath = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path without NUL");
    // SAFETY: valid fd and NUL-terminated path.
    let wd = unsafe { libc::inotify_add_watch(ino.as_raw_fd(), cpath.as_ptr(), libc::IN_MODIFY) };
    assert!(wd >= 0, "inotify_add_watch {}: {}", path.display(), std::io::Error::last_os_error());
    let mut file = fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = Lines { keep, kept: Vec::new(), count: 0, partial: Vec::new() };
    let mut buf = vec![0u8; 4096];
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        let mut pfd = libc::pollfd { fd: ino.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, 50) };
        let at = now_unix();
        if ready > 0 {
            // Drain the events; what matters is that the file grew.
            // SAFETY: reading into our own buffer of its length.
            while unsafe { libc::read(ino.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
            lines.take(&mut file, at);
        }
    }
    // Lines written after the last event was read.
    lines.take(&mut file, now_unix());
    (lines.kept, lines.count)
}

/// What a [`watch`] has read: the kept lines, the count of all, an unfinished last line.
struct Lines<'a> {
    keep: &'a str,
    kept: Vec<Stamped>,
    count: u64,
    partial: Vec<u8>,
}

impl Lines<'_> {
    /// Reads what was appended to `file` and stamps its complete lines with `at`.
    fn take(&mut self, file: &mut fs::File, at: f64) {
        let _ = file.read_to_end(&mut self.partial);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            self.count += 1;
            let line = String::from_utf8_lossy(&line);
            if line.contains(self.keep) {
                self.kept.push((at, line.trim_end().to_owned()));
            }
        }
    }
}

/// The first line of `lines` that says ipscan saw `src` SYN-scanning, and when it landed.
fn ipscan_detection(lines: &[Stamped], src: &str) -> Option<f64> {
    let from = format!(" from {src} ");
    lines.iter().find(|(_, l)| l.contains("SYN scan detected") && l.contains(&from)).map(|(t, _)| *t)
}

// ---------------------------------------------------------------------------------------------
// psad

/// psad as its documentation sets it up, in the victim namespace: an iptables `LOG` rule, the
/// kernel log streamed to a syslog-format file (no syslog daemon runs here: `dmesg -W -k`
/// through awk, which adds the stamp and host name), and psad reading that file with its own
/// directories under `dir`. Its mail command is a script that records each alert's arrival.
struct Psad {
    feeder: [Child; 2],
    pid: u32,
    kern_log: PathBuf,
    alerts: PathBuf,
}

impl Psad {
    /// Starts it all with psad's check interval `interval` (seconds); returns once psad reads.
    fn start(bed: &Testbed, dir: &TempDir, interval: u32) -> Self {
        sh(bed.victim.cmd("iptables").args(["-A", "INPUT", "-j", "LOG"]));
        let kern_log = dir.join("kern.log");
        let feeder = Self::feeder(&kern_log);
        let alerts = dir.join("alerts");
        let conf = Self::write_config(dir, &kern_log, &alerts);
        // The daemon it forks keeps the standard streams: none of them may be a pipe waited on.
        let status = bed
            .victim
            .cmd(PSAD)
            .arg("-c")
            .arg(&conf)
            .args(["-I", &interval.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("psad: {e}"));
        assert!(status.success(), "psad exited with {status}");
        let pid = Self::wait_ready(dir);
        Self { feeder, pid, kern_log, alerts }
    }

    /// `dmesg -W -k` (new kernel messages, line-buffered by stdbuf) into awk, whose interactive
    /// mode reads and writes a line at a time: psad sees each message as a syslog daemon would
    /// have written it.
    fn feeder(out: &Path) -> [Child; 2] {
        let mut dmesg = Command::new("stdbuf")
            .args(["-oL", "dmesg", "-W", "-k"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("dmesg: {e}"));
        let file = fs::File::create(out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
        let awk = Command::new("awk")
            .args(["-W", "interactive", r#"{ print strftime("%b %e %H:%M:%S") " victim kernel: " $0 }"#])
            .stdin(dmesg.stdout.take().expect("dmesg stdout"))
            .stdout(file)
            .spawn()
            .unwrap_or_else(|e| panic!("awk: {e}"));
        [dmesg, awk]
    }

    /// psad.conf from Debian's, changed only where this setup needs it: the log file instead
    /// of journalctl, no whois or DNS lookups, no syslog alerts (no syslog daemon), the mail
    /// command, and state, pid and fifo directories of its own.
    fn write_config(dir: &TempDir, kern_log: &Path, alerts: &Path) -> PathBuf {
        let mail = dir.join("mail.sh");
        let script = format!("#!/bin/sh\necho \"$(date +%s.%N) $*\" >> {}\ncat > /dev/null\n", alerts.display());
        fs::write(&mail, script).unwrap_or_else(|e| panic!("{}: {e}", mail.display()));
        sh(Command::new("chmod").arg("+x").arg(&mail));
        let mut conf = fs::read_to_string(PSAD_CONF).unwrap_or_else(|e| panic!("{PSAD_CONF}: {e}"));
        let sub = |d: &str| {
            let p = dir.join(d);
            fs::create_dir_all(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            p.display().to_string()
        };
        let keys = [
            ("HOSTNAME", "victim".to_owned()),
            ("ENABLE_SYSLOG_FILE", "Y".into()),
            ("IPT_SYSLOG_FILE", kern_log.display().to_string()),
            ("AUTO_DETECT_JOURNALCTL", "N".into()),
            ("ENABLE_WHOIS_LOOKUPS", "N".into()),
            ("ENABLE_DNS_LOOKUPS", "N".into()),
            ("ALERTING_METHODS", "nosyslog".into()),
            ("ENABLE_PSADWATCHD", "N".into()),
            ("PSAD_DIR", sub("log")),
            ("PSAD_RUN_DIR", sub("run")),
            ("PSAD_FIFO_DIR", sub("lib")),
            ("mailCmd", mail.display().to_string()),
            ("sendmailCmd", mail.display().to_string()),
        ];
        for (key, value) in keys {
            conf = set_key(&conf, key, &value);
        }
        let path = dir.join("psad.conf");
        fs::write(&path, conf).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        path
    }

    /// Waits for psad's pid file and its packet counters (written just before its main loop,
    /// whose first pass seeks to the end of the log), then a second for that pass.
    fn wait_ready(dir: &TempDir) -> u32 {
        let (pid_file, counters) = (dir.join("run/psad.pid"), dir.join("log/packet_ctr"));
        let deadline = Instant::now() + Duration::from_secs(30);
        let pid = loop {
            let pid = fs::read_to_string(&pid_file).ok().and_then(|s| s.trim().parse::<u32>().ok());
            if let Some(pid) = pid.filter(|_| counters.exists()) {
                break pid;
            }
            assert!(Instant::now() < deadline, "psad did not start (no {})", pid_file.display());
            thread::sleep(Duration::from_millis(100));
        };
        thread::sleep(Duration::from_secs(1));
        pid
    }

    /// When psad mailed its first alert about `src`, if it has.
    fn alert_for(&self, src: &str) -> Option<f64> {
        let text = fs::read_to_string(&self.alerts).unwrap_or_default();
        let subject = format!("src: {src} ");
        text.lines()
            .filter(|l| l.contains("[psad-alert]") && l.contains(&subject))
            .find_map(|l| l.split_whitespace().next().and_then(|t| t.parse().ok()))
    }

    /// Waits up to `limit` for that alert.
    fn wait_alert(&self, src: &str, limit: Duration) -> Option<f64> {
        let deadline = Instant::now() + limit;
        loop {
            let t = self.alert_for(src);
            if t.is_some() || Instant::now() >= deadline {
                return t;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// CPU seconds of psad and of the feeder (dmesg and awk), so far.
    fn cpu(&self) -> (f64, f64) {
        (proc_cpu(self.pid), self.feeder.iter().map(|c| proc_cpu(c.id())).sum())
    }

    /// Lines the feeder wrote, i.e. kernel messages psad was given.
    fn lines_fed(&self) -> u64 {
        fs::read(&self.kern_log).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count() as u64)
    }
}

impl Drop for Psad {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the psad daemon started above, then reaping it (this process is
        // its subreaper); waitpid fails harmlessly if it was reparented elsewhere.
        unsafe {
            libc::kill(self.pid as i32, libc::SIGTERM);
            libc::waitpid(self.pid as i32, std::ptr::null_mut(), 0);
        }
        for c in &mut self.feeder {
            stop_child(c);
        }
    }
}

/// `conf` with `key`'s value replaced (psad.conf lines are `KEY  value;`).
fn set_key(conf: &str, key: &str, value: &str) -> String {
    let line = format!("{key}    {value};");
    let mut found = false;
    let mut out: Vec<String> = conf
        .lines()
        .map(|l| {
            if l.split_whitespace().next() == Some(key) {
                found = true;
                line.clone()
            } else {
                l.to_owned()
            }
        })
        .collect();
    if !found {
        out.push(line);
    }
    out.join("\n") + "\n"
}

/// Packets the `LOG` rule (the victim's first INPUT rule) logged.
fn logged_packets(ns: &NetNs) -> u64 {
    let out = sh(ns.cmd("iptables").args(["-L", "INPUT", "-v", "-x", "-n"]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| l.contains("LOG"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no LOG rule counter in {text}"))
}

// ---------------------------------------------------------------------------------------------
// 1. One scan, idle

/// The scan both tools see: `nmap -sS` of `ports` from the attacker, each port once, bounded.
fn nmap_scan(bed: &Testbed, ports: &str) {
    run_in(&bed.attacker, 120, "nmap", &["-sS", "-Pn", "-n", "--max-retries", "0", "-p", ports, VICTIM4]);
}

/// The timestamp of a capture's first packet (classic pcap, either byte order), or None.
fn first_packet_time(path: &Path) -> Option<f64> {
    let d = fs::read(path).ok()?;
    let le = matches!(d.get(..4)?, [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1]);
    let nano = matches!(d.get(..4)?, [0x4d, 0x3c, 0xb2, 0xa1] | [0xa1, 0xb2, 0x3c, 0x4d]);
    let word = |at: usize| -> Option<f64> {
        let b: [u8; 4] = d.get(at..at + 4)?.try_into().ok()?;
        Some(f64::from(if le { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) }))
    };
    Some(word(24)? + word(28)? / if nano { 1e9 } else { 1e6 })
}

/// One idle round: a testbed with ipscan and psad (check interval `interval`) watching the same
/// victim, one scan; returns (psad's latency, ipscan's latency, lines psad was fed, packets the
/// LOG rule logged). Latencies are in seconds from the first probe's capture timestamp.
fn idle_round(o: &Options, interval: u32) -> (Option<f64>, Option<f64>, u64, u64) {
    let bed = Testbed::new();
    let dir = TempDir::new();
    let daemon = Daemon::start(&bed.victim, &bed.victim_if, &dir, &[]);
    let watch = LineWatch::start(&daemon.log, "scan detected", Duration::from_secs(60));
    let psad = Psad::start(&bed, &dir, interval);
    let filter = format!("src host {ATTACKER4} and tcp[tcpflags] == tcp-syn");
    let cap = Capture::start_args(&bed.victim, &bed.victim_if, &filter, dir.join("first.pcap"), &["-c", "1"]);
    nmap_scan(&bed, o.ports);
    let alert = psad.wait_alert(ATTACKER4, Duration::from_secs(u64::from(interval) * 3 + 10));
    let (lines, _) = watch.finish();
    let pcap = cap.file.clone();
    cap.finish();
    let first = first_packet_time(&pcap).unwrap_or_else(|| panic!("no first probe in {}", pcap.display()));
    let seen = ipscan_detection(&lines, ATTACKER4);
    (alert.map(|t| t - first), seen.map(|t| t - first), psad.lines_fed(), logged_packets(&bed.victim))
}

fn idle_scan(o: &Options, rows: &mut Vec<Row>) {
    let _log_all = Sysctl::set("net.netfilter.nf_log_all_netns", "1");
    let mut ipscan_all = Vec::new();
    for interval in [5, 1] {
        eprintln!("bench: psad -I {interval} and ipscan, idle scans");
        let rounds: Vec<_> = (0..o.idle_rounds).map(|_| idle_round(o, interval)).collect();
        let psad: Vec<f64> = rounds.iter().filter_map(|r| r.0).collect();
        let ipscan: Vec<f64> = rounds.iter().filter_map(|r| r.1).collect();
        ipscan_all.extend(&ipscan);
        let missed = rounds.len() - psad.len();
        rows.push(Row {
            id: format!("peers_idle_psad_i{interval}_ms"),
            section: IDLE,
            what: format!("psad -I {interval}: first probe to its alert"),
            value: ms_median(&psad),
            unit: "ms",
            baseline: ms_median(&ipscan).map(|v| (v, "ipscan, same scans")),
            target: Target::Info,
            paired: None,
            to_floor: None,
            note: format!("{}; {missed} scans not reported", spread(&psad, "s")),
            detail: json!({"psad_s": psad, "ipscan_s": ipscan}),
        });
        if interval == 5 {
            let (fed, logged): (Vec<f64>, Vec<f64>) = rounds.iter().map(|r| (r.2 as f64, r.3 as f64)).unzip();
            rows.push(Row {
                id: "peers_idle_psad_lines_fed".into(),
                section: IDLE,
                what: format!("psad: kernel log lines it got for the scan of ports {}", o.ports),
                value: Some(median(&mut fed.clone())),
                unit: "lines",
                baseline: Some((median(&mut logged.clone()), "packets LOG logged")),
                target: Target::Info,
                paired: None,
                to_floor: None,
                note: "the kernel's log ring drops messages when a burst outruns its reader".into(),
                detail: json!({"fed": fed, "logged": logged}),
            });
        }
    }
    rows.push(Row {
        id: "peers_idle_ipscan_ms".into(),
        section: IDLE,
        what: "ipscan: first probe to `SYN scan detected` written".into(),
        value: ms_median(&ipscan_all),
        unit: "ms",
        baseline: None,
        target: Target::Info,
        paired: None,
        to_floor: None,
        note: spread(&ipscan_all, "s"),
        detail: json!({"ipscan_s": ipscan_all}),
    });
}

/// The median of seconds, in milliseconds; None for no samples.
fn ms_median(secs: &[f64]) -> Option<f64> {
    (!secs.is_empty()).then(|| median(&mut secs.to_vec()) * 1e3)
}

/// "median of N, range A-B UNIT" for a row's note.
fn spread(v: &[f64], unit: &str) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if v.is_empty() { "no samples".into() } else { format!("median of {}, range {lo:.3}-{hi:.3} {unit}", v.len()) }
}

// ---------------------------------------------------------------------------------------------
// 2. Under a flood

/// What watches the victim during a flood.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Tool {
    /// Nothing: the machine's cost of the flood itself.
    Nothing,
    Psad(u32),
    Ipscan,
    /// `tcpdump -w /dev/null` on the victim's interface.
    Tcpdump,
}

impl Tool {
    fn name(self) -> String {
        match self {
            Tool::Nothing => "no tool".into(),
            Tool::Psad(i) => format!("psad -I {i}"),
            Tool::Ipscan => "ipscan".into(),
            Tool::Tcpdump => "tcpdump -w /dev/null".into(),
        }
    }

    /// The tool's part of row ids.
    fn key(self) -> String {
        match self {
            Tool::Nothing => "none".into(),
            Tool::Psad(i) => format!("psad_i{i}"),
            Tool::Ipscan => "ipscan".into(),
            Tool::Tcpdump => "tcpdump".into(),
        }
    }
}

/// One tool's flood: counters over the flood window and after.
#[derive(Debug, Default)]
struct FloodRun {
    /// Packets the victim's interface received during the flood.
    rx: u64,
    /// The flood's wall time, and the machine's busy CPU seconds in it.
    secs: f64,
    busy: f64,
    /// The tool's process CPU seconds from its start to the scan's report (or the wait's end).
    proc_cpu: f64,
    /// The kernel's share attributed to the tool by itself (ipscan's XDP program run time).
    kernel_cpu: f64,
    /// Seconds from the scan's start to the tool's report; None: not reported in time.
    reported: Option<f64>,
    /// Lines the tool wrote (ipscan) or was fed (psad).
    lines: u64,
    detail: Value,
}

/// Counts an XDP program's run time, with `kernel.bpf_stats_enabled` on while it lives.
struct XdpStats {
    id: u64,
    _stats: Sysctl,
}

impl XdpStats {
    fn on(bed: &Testbed) -> Self {
        let out = sh(bed.victim.cmd("ip").args(["-d", "-j", "link", "show", "dev", &bed.victim_if]));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("ip -j link: {e}"));
        let id = v[0]["xdp"]["prog"]["id"].as_u64().unwrap_or_else(|| panic!("no XDP program in {v}"));
        Self { id, _stats: Sysctl::set("kernel.bpf_stats_enabled", "1") }
    }

    /// (run time in seconds, runs) so far.
    fn read(&self) -> (f64, u64) {
        let out = sh(Command::new("bpftool").args(["-j", "prog", "show", "id", &self.id.to_string()]));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("bpftool: {e}"));
        (v["run_time_ns"].as_u64().unwrap_or(0) as f64 / 1e9, v["run_cnt"].as_u64().unwrap_or(0))
    }
}

/// tcpdump writing to /dev/null, its stderr kept for the totals it prints on SIGINT.
struct Tcpdump {
    child: Child,
    stderr: PathBuf,
}

impl Tcpdump {
    fn start(bed: &Testbed, dir: &TempDir) -> Self {
        let stderr = dir.join("tcpdump.stderr");
        let err = fs::File::create(&stderr).unwrap_or_else(|e| panic!("{}: {e}", stderr.display()));
        let child = bed
            .victim
            .cmd("tcpdump")
            .args(["-Z", "root", "-n", "-i", &bed.victim_if, "-w", "/dev/null"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("tcpdump: {e}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !fs::read_to_string(&stderr).unwrap_or_default().contains("listening on") {
            assert!(Instant::now() < deadline, "tcpdump did not start listening");
            thread::sleep(Duration::from_millis(50));
        }
        Self { child, stderr }
    }

    /// Stops it (SIGINT) and returns its CPU seconds and (captured, received by filter, dropped
    /// by kernel) from its closing lines.
    fn stop(mut self) -> (f64, [u64; 3]) {
        let cpu = proc_cpu(self.child.id());
        stop_child(&mut self.child);
        let text = fs::read_to_string(&self.stderr).unwrap_or_default();
        let count = |what: &str| {
            text.lines()
                .find(|l| l.contains(what))
                .and_then(|l| l.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no {what:?} in tcpdump's output: {text}"))
        };
        (cpu, [count("captured"), count("received by filter"), count("dropped by kernel")])
    }
}

/// The flood every tool gets: hping3 random-source SYNs to port 80 for `secs` seconds.
fn start_flood(bed: &Testbed, secs: u32) -> Flood {
    Flood::start(&bed.attacker, secs, &["-S", "-p", "80", "--rand-source", VICTIM4])
}

/// A tool watching the victim during a flood, running.
enum Running {
    Nothing,
    Psad(Psad),
    Ipscan { daemon: Daemon, watch: LineWatch, xdp: XdpStats },
    Tcpdump(Tcpdump),
}

impl Running {
    fn start(tool: Tool, bed: &Testbed, dir: &TempDir, o: &Options) -> Self {
        match tool {
            Tool::Nothing => Running::Nothing,
            Tool::Psad(i) => Running::Psad(Psad::start(bed, dir, i)),
            Tool::Ipscan => {
                let daemon = Daemon::start(&bed.victim, &bed.victim_if, dir, &[]);
                let watch = LineWatch::start(&daemon.log, "scan detected", o.report_wait * 3);
                Running::Ipscan { daemon, watch, xdp: XdpStats::on(bed) }
            }
            Tool::Tcpdump => Running::Tcpdump(Tcpdump::start(bed, dir)),
        }
    }

    /// The tool's process CPU seconds so far (psad: with its feeder).
    fn cpu(&self) -> f64 {
        match self {
            Running::Nothing => 0.0,
            Running::Psad(p) => {
                let (psad, feeder) = p.cpu();
                psad + feeder
            }
            Running::Ipscan { daemon, .. } => proc_cpu(daemon.pid()),
            Running::Tcpdump(t) => proc_cpu(t.child.id()),
        }
    }

    /// The XDP program's (run time in seconds, runs) so far; zero for the tools without one.
    fn xdp(&self) -> (f64, u64) {
        match self {
            Running::Ipscan { xdp, .. } => xdp.read(),
            _ => (0.0, 0),
        }
    }

    /// Waits for the tool's report of the scan started at `scan_at` and fills in what it did:
    /// `run.proc_cpu` from `cpu0` on, the report, the lines, the tool's own figures.
    fn finish(self, bed: &Testbed, o: &Options, scan_at: f64, cpu0: f64, run: &mut FloodRun) {
        match self {
            Running::Nothing => {}
            Running::Psad(p) => {
                run.reported = p.wait_alert(ATTACKER4, o.report_wait).map(|t| t - scan_at);
                run.lines = p.lines_fed();
                let (psad_cpu, feeder_cpu) = p.cpu();
                run.proc_cpu = psad_cpu + feeder_cpu - cpu0;
                run.detail = json!({
                    "psad_cpu_s": psad_cpu, "feeder_cpu_s": feeder_cpu, "logged": logged_packets(&bed.victim),
                    "psad_vm_hwm": proc_status_bytes(p.pid, "VmHWM:"), "psad_vm_rss": proc_status_bytes(p.pid, "VmRSS:"),
                });
            }
            Running::Ipscan { daemon, watch, .. } => {
                // The watcher stamps the line; this only bounds how long it may take to come.
                let from = format!(" from {ATTACKER4} ");
                daemon.wait_log_quiet(o.report_wait, |l| l.contains("SYN scan detected") && l.contains(&from));
                let (lines, count) = watch.finish();
                run.reported = ipscan_detection(&lines, ATTACKER4).map(|t| t - scan_at);
                run.lines = count;
                run.proc_cpu = proc_cpu(daemon.pid()) - cpu0;
                run.detail["daemon_vm_rss"] = proc_status_bytes(daemon.pid(), "VmRSS:").into();
            }
            Running::Tcpdump(t) => {
                let (cpu, [captured, received, dropped]) = t.stop();
                run.proc_cpu = cpu - cpu0;
                run.detail =
                    json!({"captured": captured, "received_by_filter": received, "dropped_by_kernel": dropped});
            }
        }
    }
}

/// Floods a fresh testbed watched by `tool` and runs the scan a third of the way in. The
/// machine's busy time and the packets received are counted over the flood only; the tool's
/// CPU until its report (psad works through its backlog after the flood) or the wait's end.
fn flood_run(o: &Options, tool: Tool) -> FloodRun {
    eprintln!("bench: flood, {}", tool.name());
    let bed = Testbed::new();
    let dir = TempDir::new();
    let _log_all = matches!(tool, Tool::Psad(_)).then(|| Sysctl::set("net.netfilter.nf_log_all_netns", "1"));
    let running = Running::start(tool, &bed, &dir, o);
    let (cpu0, xdp0) = (running.cpu(), running.xdp());
    let (rx0, busy0, t0) = (rx_packets(&bed.victim, &bed.victim_if), machine_busy(), Instant::now());
    let flood = start_flood(&bed, o.flood_secs);
    thread::sleep(Duration::from_secs_f64(f64::from(o.flood_secs) / 3.0));
    let scan_at = now_unix();
    nmap_scan(&bed, o.ports);
    flood.wait();
    let (secs, busy) = (t0.elapsed().as_secs_f64(), machine_busy() - busy0);
    let rx = rx_packets(&bed.victim, &bed.victim_if) - rx0;
    let xdp1 = running.xdp();
    let mut run = FloodRun {
        rx,
        secs,
        busy,
        kernel_cpu: xdp1.0 - xdp0.0,
        detail: json!({"xdp_runs": xdp1.1 - xdp0.1}),
        ..FloodRun::default()
    };
    running.finish(&bed, o, scan_at, cpu0, &mut run);
    run
}

/// CPU seconds per million packets.
fn per_mpkt(secs: f64, packets: u64) -> f64 {
    secs / (packets.max(1) as f64 / 1e6)
}

/// The machine's busy time per million packets above the no-tool flood's: the tool's whole
/// cost, kernel included, if nothing else ran (other work on the machine shows up here too).
fn machine_above(run: &FloodRun, nothing: &FloodRun) -> f64 {
    per_mpkt(run.busy, run.rx) - per_mpkt(nothing.busy, nothing.rx)
}

fn flood(o: &Options, with_psad: bool, rows: &mut Vec<Row>) {
    let mut tools = vec![Tool::Nothing, Tool::Ipscan, Tool::Tcpdump];
    if with_psad {
        tools.extend([Tool::Psad(5), Tool::Psad(1)]);
    }
    let runs: Vec<(Tool, FloodRun)> = tools.iter().map(|&t| (t, flood_run(o, t))).collect();
    let get = |t: Tool| &runs.iter().find(|(x, _)| *x == t).expect("every tool ran").1;
    let (nothing, ipscan) = (get(Tool::Nothing), get(Tool::Ipscan));
    let ipscan_cpu = per_mpkt(ipscan.proc_cpu + ipscan.kernel_cpu, ipscan.rx) * 1e3;
    let ipscan_machine = machine_above(ipscan, nothing) * 1e3;
    let flood_note =
        |r: &FloodRun| format!("{} packets received in {:.1} s ({:.0} pps)", r.rx, r.secs, r.rx as f64 / r.secs);
    rows.push(flood_row(
        "peers_flood_rx_nothing",
        "flood packets the victim received, no tool".into(),
        Some(nothing.rx as f64),
        "packets",
        None,
        flood_note(nothing),
        json!({"busy_s": nothing.busy, "secs": nothing.secs}),
    ));
    rows.push(flood_row(
        "peers_flood_cpu_ipscan",
        "ipscan CPU per million flood packets (daemon + XDP run time)".into(),
        Some(ipscan_cpu),
        "ms",
        None,
        format!("daemon {:.3} s, XDP {:.3} s; {}", ipscan.proc_cpu, ipscan.kernel_cpu, flood_note(ipscan)),
        ipscan.detail.clone(),
    ));
    for &tool in &tools[2..] {
        peer_flood_rows(tool, get(tool), nothing, ipscan_cpu, rows);
    }
    for &tool in &tools[1..] {
        let run = get(tool);
        let base = (tool != Tool::Ipscan).then_some((ipscan_machine, "ipscan"));
        rows.push(flood_row(
            &format!("peers_flood_machine_{}", tool.key()),
            format!("machine CPU per million packets above the bare flood: {}", tool.name()),
            Some(machine_above(run, nothing) * 1e3),
            "ms",
            base,
            format!("busy {:.2} s vs {:.2} s bare; {}", run.busy, nothing.busy, flood_note(run)),
            Value::Null,
        ));
    }
    for &tool in tools.iter().filter(|t| matches!(t, Tool::Ipscan | Tool::Psad(_))) {
        reported_rows(tool, get(tool), o, rows);
    }
}

/// A row of the flood section.
fn flood_row(
    id: &str,
    what: String,
    value: Option<f64>,
    unit: &'static str,
    baseline: Option<(f64, &'static str)>,
    note: String,
    detail: Value,
) -> Row {
    Row {
        id: id.into(),
        section: FLOOD,
        what,
        value,
        unit,
        baseline,
        target: Target::Info,
        paired: None,
        to_floor: None,
        note,
        detail,
    }
}

/// psad's or tcpdump's process CPU against ipscan's, and what each loses or keeps.
fn peer_flood_rows(tool: Tool, run: &FloodRun, nothing: &FloodRun, ipscan_cpu: f64, rows: &mut Vec<Row>) {
    let what = match tool {
        Tool::Psad(_) => "process CPU per million flood packets (psad + dmesg/awk feeder)",
        _ => "process CPU per million flood packets",
    };
    rows.push(flood_row(
        &format!("peers_flood_cpu_{}", tool.key()),
        format!("{}: {what}", tool.name()),
        Some(per_mpkt(run.proc_cpu, run.rx) * 1e3),
        "ms",
        Some((ipscan_cpu, "ipscan")),
        format!("{:.2} s in all; {} packets received ({} bare)", run.proc_cpu, run.rx, nothing.rx),
        run.detail.clone(),
    ));
    match tool {
        Tool::Tcpdump => rows.push(flood_row(
            "peers_flood_tcpdump_dropped",
            "tcpdump: packets dropped by the kernel (its own count)".into(),
            run.detail["dropped_by_kernel"].as_f64(),
            "packets",
            run.detail["received_by_filter"].as_f64().map(|r| (r, "received by filter")),
            "tcpdump's closing lines on SIGINT".into(),
            Value::Null,
        )),
        _ => rows.push(flood_row(
            &format!("peers_flood_rss_{}", tool.key()),
            format!("{}: peak memory (VmHWM)", tool.name()),
            run.detail["psad_vm_hwm"].as_f64(),
            "bytes",
            None,
            format!("VmRSS at the end {:.0} MB", run.detail["psad_vm_rss"].as_f64().unwrap_or(0.0) / 1e6),
            Value::Null,
        )),
    }
}

/// When the scan run during the flood was reported, and the lines written (ipscan) or fed
/// (psad) meanwhile.
fn reported_rows(tool: Tool, run: &FloodRun, o: &Options, rows: &mut Vec<Row>) {
    let lines_what = match tool {
        Tool::Ipscan => "lines ipscan wrote",
        _ => "kernel log lines psad was fed (LOG logged the baseline)",
    };
    rows.push(flood_row(
        &format!("peers_flood_reported_{}", tool.key()),
        format!("{}: scan start to its report, during the flood", tool.name()),
        run.reported,
        "s",
        None,
        match run.reported {
            Some(_) => format!("nmap -sS -p {} started a third of the way into the flood", o.ports),
            None => format!("not reported within {} s of the flood's end", o.report_wait.as_secs()),
        },
        Value::Null,
    ));
    rows.push(flood_row(
        &format!("peers_flood_lines_{}", tool.key()),
        format!("{}: {lines_what}", tool.name()),
        Some(run.lines as f64),
        "lines",
        run.detail["logged"].as_f64().map(|l| (l, "packets LOG logged")),
        "until the report or the end of the wait".into(),
        Value::Null,
    ));
}

// ---------------------------------------------------------------------------------------------
// 3. ipscan's detection latency

/// Sends `n` small SYN scans from 198.18.0.100 onwards, ten ports each from a raw socket (frames
/// built by scapy beforehand), and prints each scan's source and the wall time just before its
/// tenth probe, the one that crosses the default SYN-scan threshold.
const SENDER: &str = r#"
import socket, sys, time
from scapy.all import Ether, IP, TCP, raw
iface, vmac, dst, n, gap = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
scans = [(f"198.18.0.{100 + i}", [raw(Ether(dst=vmac) / IP(src=f"198.18.0.{100 + i}", dst=dst)
          / TCP(sport=40000, dport=p, flags="S")) for p in range(1, 11)]) for i in range(n)]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
for src, frames in scans:
    for f in frames[:-1]:
        s.send(f)
    t = time.time()
    s.send(frames[-1])
    print(src, repr(t), flush=True)
    time.sleep(gap)
"#;

fn latency(o: &Options, rows: &mut Vec<Row>) {
    assert!(o.latency_scans <= 100, "sources 198.18.0.100-199 only");
    let bed = Testbed::new();
    for i in 0..o.latency_scans {
        bed.add_attacker_addr(&format!("198.18.0.{}/24", 100 + i));
    }
    let dir = TempDir::new();
    let daemon = Daemon::start(&bed.victim, &bed.victim_if, &dir, &[]);
    let watch = LineWatch::start(&daemon.log, "scan detected", Duration::from_secs(120));
    let vmac = mac_of(&bed.victim, &bed.victim_if);
    let (n, gap) = (o.latency_scans.to_string(), o.latency_gap.as_secs_f64().to_string());
    let out =
        run_in(&bed.attacker, 120, "/usr/bin/python3", &["-c", SENDER, &bed.attacker_if, &vmac, VICTIM4, &n, &gap]);
    let last = format!("198.18.0.{}", 100 + o.latency_scans - 1);
    daemon.wait_log_quiet(Duration::from_secs(10), |l| {
        l.contains("SYN scan detected") && l.contains(&format!(" from {last} "))
    });
    let (lines, _) = watch.finish();
    let sent = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut us: Vec<f64> = sent
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(src, t)| Some((ipscan_detection(&lines, src)? - t.parse::<f64>().ok()?) * 1e6))
        .collect();
    let missed = o.latency_scans - us.len();
    us.sort_by(f64::total_cmp);
    for (p, name) in [(50, "p50"), (99, "p99")] {
        rows.push(Row {
            id: format!("peers_latency_{name}"),
            section: LATENCY,
            what: format!("ipscan, {name}: threshold SYN sent to `SYN scan detected` in the log"),
            value: percentile(&us, p),
            unit: "µs",
            baseline: None,
            target: Target::Info,
            paired: None,
            to_floor: None,
            note: format!(
                "{} scans of 10 ports from distinct sources, {missed} not seen; inotify on the log",
                us.len()
            ),
            detail: if p == 50 { json!({"samples_us": us}) } else { Value::Null },
        });
    }
}

/// The nearest-rank percentile of sorted samples; None for none.
fn percentile(sorted: &[f64], p: usize) -> Option<f64> {
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}
