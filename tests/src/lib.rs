//! Shared harness for ipscan's root-only integration tests: network namespaces joined by a veth,
//! the daemon run inside one of them, real tools run in the other, and frame builders for
//! BPF_PROG_TEST_RUN.
//!
//! Every helper panics with a message instead of returning errors (STYLE rule 11), and every
//! namespace is removed on drop so a crashed run leaves nothing that breaks the next.

pub mod frames;
pub mod pcap;

use std::{
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Panics unless running as root: these tests load BPF programs and make namespaces.
pub fn require_root() {
    // SAFETY: no arguments.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "integration tests need root (BPF, network namespaces); run them through `cargo xtask test`"
    );
}

/// Runs a command, panics with its output if it fails.
pub fn sh(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ip(args: &[&str]) {
    sh(Command::new("ip").args(args));
}

/// A unique short tag for names (interface names are limited to 15 bytes).
pub fn unique_tag() -> String {
    format!("{}{}", std::process::id() % 100_000, NEXT.fetch_add(1, Ordering::SeqCst))
}

/// A network namespace removed on drop.
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    pub fn new(name: String) -> Self {
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    pub fn ip(&self, args: &[&str]) {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        ip(&full);
    }

    /// A command that runs inside this namespace. `nsenter --net` keeps the host's /sys and
    /// bpffs visible, unlike `ip netns exec`.
    pub fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path())).arg("--").arg(program);
        c
    }

    pub fn sysctl(&self, key: &str, value: &str) {
        sh(self.cmd("sysctl").args(["-q", "-w", &format!("{key}={value}")]));
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// Addresses of the two ends (documentation ranges only, no default route).
pub const ATTACKER4: &str = "198.18.0.1";
pub const VICTIM4: &str = "198.18.0.2";
pub const OTHER4: &str = "198.18.0.3";
pub const ATTACKER6: &str = "2001:db8::1";
pub const VICTIM6: &str = "2001:db8::2";
pub const OTHER6: &str = "2001:db8::3";

/// Two namespaces, attacker and victim, joined by a veth pair.
pub struct Testbed {
    pub attacker: NetNs,
    pub victim: NetNs,
    /// The victim's interface, where ipscan attaches.
    pub victim_if: String,
    pub attacker_if: String,
}

impl Testbed {
    pub fn new() -> Self {
        require_root();
        let tag = unique_tag();
        let attacker = NetNs::new(format!("ipst-{tag}-a"));
        let victim = NetNs::new(format!("ipst-{tag}-v"));
        let attacker_if = format!("ia{tag}");
        let victim_if = format!("iv{tag}");
        for ns in [&attacker, &victim] {
            // Fast nmap UDP and ICMP answers: no ICMP rate limit inside the test namespaces.
            ns.sysctl("net.ipv4.icmp_ratelimit", "0");
            ns.sysctl("net.ipv6.icmp.ratelimit", "0");
        }
        let bed = Self { attacker, victim, victim_if, attacker_if };
        bed.make_link();
        bed
    }

    /// Creates the veth pair with its addresses and waits until both ends answer.
    fn make_link(&self) {
        ip(&[
            "link",
            "add",
            &self.attacker_if,
            "netns",
            &self.attacker.name,
            "type",
            "veth",
            "peer",
            "name",
            &self.victim_if,
            "netns",
            &self.victim.name,
        ]);
        for (ns, ifname, a4, a6) in [
            (&self.attacker, &self.attacker_if, ATTACKER4, ATTACKER6),
            (&self.victim, &self.victim_if, VICTIM4, VICTIM6),
        ] {
            ns.ip(&["addr", "add", &format!("{a4}/24"), "dev", ifname]);
            ns.ip(&["addr", "add", &format!("{a6}/64"), "dev", ifname, "nodad"]);
            ns.ip(&["link", "set", ifname, "up"]);
        }
        self.wait_link();
    }

    /// Deletes the veth pair (both ends go; any XDP program on them is detached by the kernel).
    pub fn delete_link(&self) {
        self.victim.ip(&["link", "del", &self.victim_if]);
    }

    /// Makes the veth pair again after [`Testbed::delete_link`]: same names, same namespaces,
    /// same addresses, new interface indexes.
    pub fn recreate_link(&self) {
        self.make_link();
    }

    /// Adds a second address to the attacker side (another source for "others still work").
    pub fn add_attacker_addr(&self, cidr: &str) {
        self.attacker.ip(&["addr", "add", cidr, "dev", &self.attacker_if, "nodad"]);
    }

    fn wait_link(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let ok4 = self
                .attacker
                .cmd("ping")
                .args(["-c1", "-W1", VICTIM4])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            let ok6 = self
                .attacker
                .cmd("ping")
                .args(["-6", "-c1", "-W1", VICTIM6])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok4 && ok6 {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!("veth between {} and {} never came up", self.attacker.name, self.victim.name);
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        // The daemon's pinned maps and lock outlive it by design; a test's do not.
        let _ = fs::remove_dir_all(Path::new("/sys/fs/bpf/ipscan").join(&self.victim_if));
        let _ = fs::remove_file(Path::new("/run/ipscan").join(format!("{}.lock", self.victim_if)));
    }
}

impl Default for Testbed {
    fn default() -> Self {
        Self::new()
    }
}

/// Path of the `ipscan` binary under test (built by `cargo xtask test`).
pub fn ipscan_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("IPSCAN_BIN") {
        let p = PathBuf::from(p);
        // Test binaries run in the package directory; a relative path means the workspace's.
        return if p.is_relative() { Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p) } else { p };
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/ipscan");
    assert!(p.exists(), "{} not built: run `cargo build -p ipscan-user` or `cargo xtask test`", p.display());
    p
}

/// A scratch directory removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!("ipscan-test-{}", unique_tag()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        Self { path }
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A running `ipscan run`, stopped with SIGINT on drop.
pub struct Daemon {
    child: Option<Child>,
    pub log: PathBuf,
    pub stderr: PathBuf,
}

impl Daemon {
    /// Starts `ipscan run --iface IF --log-file LOG [extra...]` in `ns` and waits until it has
    /// attached.
    pub fn start(ns: &NetNs, iface: &str, dir: &TempDir, extra: &[&str]) -> Self {
        let log = dir.join("ipscan.log");
        let mut args = vec!["--log-file", log.to_str().expect("utf-8 temp path")];
        args.extend_from_slice(extra);
        Self::start_cmd(ns.cmd(ipscan_bin()), iface, dir, &args)
    }

    /// Starts `PROGRAM run --iface IF [args...]` from a prepared command (a wrapper such as
    /// `unshare`, or an output other than the log file) and waits until it has attached.
    /// `log` is still `DIR/ipscan.log`, used if `args` point there.
    pub fn start_cmd(cmd: Command, iface: &str, dir: &TempDir, args: &[&str]) -> Self {
        let log = dir.join("ipscan.log");
        let stderr = dir.join("ipscan.stderr");
        let err_file = fs::File::create(&stderr).unwrap_or_else(|e| panic!("{e}"));
        // Each test keeps its saved state to itself unless it says otherwise.
        let state = dir.join("state");
        let mut cmd = cmd;
        cmd.args(["run", "--iface", iface]);
        if !args.contains(&"--state-dir") {
            cmd.arg("--state-dir").arg(&state);
        }
        let child = cmd
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start ipscan: {e}"));
        let mut d = Self { child: Some(child), log, stderr };
        d.wait_stderr("attached", Duration::from_secs(20));
        d
    }

    /// Waits for a line containing `needle` on the daemon's stderr; panics on exit or timeout.
    pub fn wait_stderr(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let text = fs::read_to_string(&self.stderr).unwrap_or_default();
            if text.contains(needle) {
                return;
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("ipscan exited ({status}) before {needle:?}: {text}");
            }
            assert!(Instant::now() < deadline, "timed out waiting for {needle:?} from ipscan: {text}");
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Log lines without their timestamp prefix (`Nov 14 18:09:08 `), each stamp checked.
    pub fn lines(&self) -> Vec<String> {
        log_lines(&self.log)
    }

    /// Waits until `pred` holds for the log lines; returns them. Panics after `timeout`.
    pub fn wait_log(&self, what: &str, timeout: Duration, pred: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let lines = self.lines();
            if pred(&lines) {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; log so far:\n{}\nstderr:\n{}",
                lines.join("\n"),
                fs::read_to_string(&self.stderr).unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits up to `timeout` for log lines matching `pred`; returns how many match (0 when none
    /// came in time). For callers that report rather than assert, like the benchmark.
    pub fn wait_log_quiet(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let n = self.lines().iter().filter(|l| pred(l)).count();
            if n > 0 || Instant::now() >= deadline {
                return n;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: plain kill(2) on our child.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Waits for a daemon that was told to exit by other means; returns its status and stderr.
    pub fn stop_after_exit(&mut self) -> (std::process::ExitStatus, String) {
        let mut child = self.child.take().expect("daemon already stopped");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return (status, fs::read_to_string(&self.stderr).unwrap_or_default());
            }
            assert!(Instant::now() < deadline, "ipscan did not exit");
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops with SIGINT and returns the exit status and stderr.
    pub fn stop(&mut self) -> (std::process::ExitStatus, String) {
        let mut child = self.child.take().expect("daemon already stopped");
        // SAFETY: plain kill(2) on our child.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return (status, fs::read_to_string(&self.stderr).unwrap_or_default());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let status = child.wait().expect("wait");
                panic!("ipscan ignored SIGINT for 10 s ({status})");
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: plain kill(2) on our child.
            unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Reads an iplog-format log: checks each line's `%b %e %H:%M:%S ` stamp and strips it.
pub fn log_lines(path: &Path) -> Vec<String> {
    let Ok(f) = fs::File::open(path) else {
        return Vec::new();
    };
    BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .map(|l| {
            assert!(l.len() > 16 && is_stamp(&l[..16]), "bad timestamp in log line {l:?}");
            l[16..].to_owned()
        })
        .collect()
}

fn is_stamp(s: &str) -> bool {
    let b = s.as_bytes();
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    MONTHS.contains(&&s[..3])
        && b[3] == b' '
        && (b[4] == b' ' || b[4].is_ascii_digit())
        && b[5].is_ascii_digit()
        && b[6] == b' '
        && b[7..9].iter().all(u8::is_ascii_digit)
        && b[9] == b':'
        && b[10..12].iter().all(u8::is_ascii_digit)
        && b[12] == b':'
        && b[13..15].iter().all(u8::is_ascii_digit)
        && b[15] == b' '
}

/// A tcpdump capture running in a namespace, stopped on [`Capture::finish`] or drop.
pub struct Capture {
    child: Option<Child>,
    pub file: PathBuf,
}

impl Capture {
    /// Captures packets matching `filter` on `iface` into `file`; returns once tcpdump listens.
    pub fn start(ns: &NetNs, iface: &str, filter: &str, file: PathBuf) -> Self {
        Self::start_args(ns, iface, filter, file, &[])
    }

    /// [`Capture::start`] with extra tcpdump options (`-Q in`, `-s 128`: later ones win).
    pub fn start_args(ns: &NetNs, iface: &str, filter: &str, file: PathBuf, extra: &[&str]) -> Self {
        let mut child = ns
            .cmd("tcpdump")
            .args(["-Z", "root", "--immediate-mode", "-i", iface, "-n", "-U", "-s", "256"])
            .args(extra)
            .arg("-w")
            .arg(&file)
            .arg(filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start tcpdump: {e}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let mut reader = BufReader::new(stderr);
        let mut line = String::new();
        // tcpdump says "listening on IFACE" once its socket is open.
        loop {
            line.clear();
            let n = reader.read_line(&mut line).unwrap_or(0);
            assert!(n > 0, "tcpdump exited before listening");
            if line.contains("listening on") {
                break;
            }
        }
        // Drain the rest so tcpdump never blocks on a full pipe.
        thread::spawn(move || {
            let mut sink = String::new();
            while reader.read_line(&mut sink).unwrap_or(0) > 0 {
                sink.clear();
            }
        });
        Self { child: Some(child), file }
    }

    /// Stops tcpdump and returns (packets, IP payload bytes) of what it captured.
    pub fn finish(mut self) -> pcap::Totals {
        if let Some(mut c) = self.child.take() {
            thread::sleep(Duration::from_millis(300));
            // SAFETY: plain kill(2) on our child.
            unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
            let _ = c.wait();
        }
        pcap::totals(&self.file)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `program args` in `ns` under `timeout -s INT SECS`, panicking on failure.
pub fn run_in(ns: &NetNs, secs: u32, program: &str, args: &[&str]) -> Output {
    sh(ns.cmd("timeout").args(["-s", "INT", &secs.to_string(), program]).args(args))
}

/// Runs `ipscan ARGS` (the CLI) in the host namespace; returns (success, stdout, stderr).
pub fn cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(ipscan_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run ipscan {args:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Tries a TCP connection from `src` to `dst:port` inside `ns` (python3); true when it opens.
pub fn connects(ns: &NetNs, src: &str, dst: &str, port: u16) -> bool {
    let code = format!(
        "import socket,sys\n\
s = socket.socket(socket.AF_INET6 if ':' in '{dst}' else socket.AF_INET)\n\
s.settimeout(2)\n\
s.bind(('{src}', 0))\n\
try:\n    s.connect(('{dst}', {port})); print('open')\n\
except Exception as e:\n    print('fail', e)\n"
    );
    let out = ns
        .cmd("timeout")
        .args(["-s", "KILL", "10", "python3", "-c", &code])
        .output()
        .unwrap_or_else(|e| panic!("python3: {e}"));
    String::from_utf8_lossy(&out.stdout).starts_with("open")
}

/// A TCP listener in `ns` on `port` that accepts (and closes) connections until dropped.
pub struct Listener {
    child: Child,
}

impl Listener {
    pub fn start(ns: &NetNs, port: u16) -> Self {
        let code = format!(
            "import socket\n\
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\n\
s.bind(('::', {port})); s.listen(128)\n\
print('ready', flush=True)\n\
while True:\n    c, _ = s.accept(); c.close()\n"
        );
        let mut cmd = ns.cmd("python3");
        cmd.args(["-c", &code]).stdout(Stdio::piped()).stderr(Stdio::null());
        // nsenter execs python3 in place; the parent-death signal survives the exec, so the
        // listener dies with the test even when the test itself is killed.
        // SAFETY: prctl is async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("listener: {e}"));
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        let _ = out.read_line(&mut line);
        assert_eq!(line.trim(), "ready", "listener did not start");
        Self { child }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a config file and returns its path.
pub fn write_config(dir: &TempDir, text: &str) -> PathBuf {
    let p = dir.join("ipscan.conf");
    fs::write(&p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    p
}

/// The real XDP program loaded (not attached) with the replay clock, for BPF_PROG_TEST_RUN.
pub struct Prog {
    pub ebpf: aya::Ebpf,
}

impl Prog {
    pub fn load(cfg: &ipscan_common::Config) -> Self {
        require_root();
        let opts = ipscan::kernel::loader::LoadOptions { replay_clock: true, ..Default::default() };
        let mut ebpf = ipscan::kernel::loader::load(&opts).unwrap_or_else(|e| panic!("load: {e}"));
        ipscan::kernel::loader::write_config(&mut ebpf, cfg).unwrap_or_else(|e| panic!("config: {e}"));
        Self { ebpf }
    }

    /// Runs one frame at clock `now_ns`; returns the XDP verdict or the test run's error
    /// (frames the kernel refuses to run, such as ones shorter than an Ethernet header).
    pub fn try_run_at(&mut self, now_ns: u64, frame: &[u8]) -> std::io::Result<u32> {
        ipscan::kernel::loader::set_clock(&mut self.ebpf, now_ns).unwrap_or_else(|e| panic!("clock: {e}"));
        let prog: &aya::programs::Xdp =
            self.ebpf.program(ipscan_common::PROGRAM_NAME).expect("program").try_into().expect("xdp");
        let fd = prog.fd().expect("loaded");
        ipscan::kernel::testrun::run(fd, frame, 1).map(|r| r.verdict)
    }

    /// Runs one frame at clock `now_ns`; returns the XDP verdict.
    pub fn run_at(&mut self, now_ns: u64, frame: &[u8]) -> u32 {
        self.try_run_at(now_ns, frame).unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN: {e}"))
    }

    /// Drains the ring buffer.
    pub fn events(&mut self) -> Vec<ipscan_common::Event> {
        let map = self.ebpf.map_mut(ipscan_common::maps::EVENTS).expect("EVENTS");
        let mut ring = aya::maps::RingBuf::try_from(map).expect("ring");
        let mut out = Vec::new();
        while let Some(item) = ring.next() {
            out.push(ipscan::kernel::events::decode(&item).expect("event size"));
        }
        out
    }

    /// Drains the ring buffer and keeps detection-side events (detected, expired, blocked).
    pub fn detections(&mut self) -> Vec<ipscan_common::Event> {
        use ipscan_common::EventKind::*;
        self.events().into_iter().filter(|e| matches!(e.kind(), Some(Detected | Expired | Blocked))).collect()
    }

    /// Writes a map of the loaded program (tests poke BLOCK4, ALLOW4, RULES, LISTEN, ...).
    pub fn map_mut(&mut self, name: &str) -> &mut aya::maps::Map {
        self.ebpf.map_mut(name).unwrap_or_else(|| panic!("no map {name}"))
    }

    /// A STATS counter summed over CPUs (PASSED derived as user space does).
    pub fn stat(&self, slot: u32) -> u64 {
        let map = self.ebpf.map(ipscan_common::maps::STATS).expect("STATS");
        let arr: aya::maps::PerCpuArray<_, u64> = aya::maps::PerCpuArray::try_from(map).expect("percpu");
        let mut all: Vec<u64> =
            (0..ipscan_common::stats::COUNT).map(|s| arr.get(&s, 0).expect("slot").iter().sum()).collect();
        ipscan_common::stats::derive(&mut all);
        all[slot as usize]
    }

    /// The SOURCES entry of (source, detection), if any.
    pub fn source(&self, key: &ipscan_common::SourceKey) -> Option<ipscan_common::SourceState> {
        let map = self.ebpf.map(ipscan_common::maps::SOURCES).expect("SOURCES");
        let m: aya::maps::HashMap<_, ipscan_common::SourceKey, ipscan_common::SourceState> =
            aya::maps::HashMap::try_from(map).expect("hash");
        m.get(key, 0).ok()
    }

    /// The probation of (source, detection), if a way of its set holds that key (at any time).
    pub fn probe(&self, key: &ipscan_common::SourceKey) -> Option<Probation> {
        use ipscan_common::{ProbeSet, window::PROBATION_WAYS};
        let map = self.ebpf.map(ipscan_common::maps::PROBATION).expect("PROBATION");
        let a: aya::maps::Array<_, ProbeSet> = aya::maps::Array::try_from(map).expect("array");
        let place = ProbeSet::place(key, self.probation_seed());
        let set = a.get(&place.set, 0).expect("set");
        (0..PROBATION_WAYS as usize).find(|i| set.tags[*i] == place.tag && set.holds(*i, key, set.last_ns[*i], 0)).map(
            |i| {
                let w = &set.ways[i];
                Probation {
                    packets: w.packets,
                    bytes: w.bytes,
                    dport: w.dport,
                    sport: w.sport,
                    first_ns: w.first_ns,
                    last_ns: set.last_ns[i],
                }
            },
        )
    }

    /// The PROBATION hash seed (zero until the program first needed it).
    pub fn probation_seed(&self) -> u64 {
        let map = self.ebpf.map(ipscan_common::maps::PROBATION).expect("PROBATION");
        let a: aya::maps::Array<_, ipscan_common::ProbeSet> = aya::maps::Array::try_from(map).expect("array");
        a.get(&ipscan_common::window::PROBATION_SEED_SLOT, 0).expect("seed entry").seed()
    }

    /// Number of SOURCES entries.
    pub fn source_count(&self) -> usize {
        let map = self.ebpf.map(ipscan_common::maps::SOURCES).expect("SOURCES");
        let m: aya::maps::HashMap<_, ipscan_common::SourceKey, ipscan_common::SourceState> =
            aya::maps::HashMap::try_from(map).expect("hash");
        m.keys().count()
    }
}

/// What a PROBATION way holds for one key ([`Prog::probe`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probation {
    pub packets: u32,
    pub bytes: u64,
    pub dport: u16,
    pub sport: u16,
    pub first_ns: u64,
    pub last_ns: u64,
}

/// XDP verdicts.
pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;

/// Key of an IPv4 source for a detection.
pub fn key4(a: std::net::Ipv4Addr, d: ipscan_common::Detection) -> ipscan_common::SourceKey {
    let mut addr = [0u8; 16];
    addr[..4].copy_from_slice(&a.octets());
    ipscan_common::SourceKey::new(addr, ipscan_common::FAMILY_V4, d)
}

/// Key of an IPv6 source for a detection.
pub fn key6(a: std::net::Ipv6Addr, d: ipscan_common::Detection) -> ipscan_common::SourceKey {
    ipscan_common::SourceKey::new(a.octets(), ipscan_common::FAMILY_V6, d)
}
