//! Running `ipscan run` in a namespace and reading what it says: its log (waiting for lines),
//! its stderr, `ipscan stats`, its Prometheus metrics; the CLI and the config file.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    log::log_lines,
    ns::{NetNs, Testbed},
    util::TempDir,
};

/// How long [`Daemon::wait_all`] waits for its lines.
const WAIT_LINES: Duration = Duration::from_secs(20);

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

/// Writes a config file and returns its path.
pub fn write_config(dir: &TempDir, text: &str) -> PathBuf {
    let p = dir.join("ipscan.conf");
    fs::write(&p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    p
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

    /// Starts `ipscan run --config DIR/ipscan.conf` (with `config` written there) on the
    /// testbed's victim side and waits until it has attached.
    pub fn with_config(bed: &Testbed, dir: &TempDir, config: &str) -> Self {
        let conf = write_config(dir, config);
        Self::start(&bed.victim, &bed.victim_if, dir, &["--config", conf.to_str().expect("utf-8 temp path")])
    }

    /// Waits until every line of `want` is logged, then a little more, and returns the log.
    pub fn wait_all(&self, want: &[String]) -> Vec<String> {
        self.wait_log("expected lines", WAIT_LINES, |l| want.iter().all(|w| l.contains(w)));
        // Late duplicates or strays would arrive within this.
        thread::sleep(Duration::from_millis(800));
        self.lines()
    }

    /// Waits for the lines of `want`, then asserts that the log holds exactly these, in any order.
    pub fn wait_exactly(&self, want: &[String], why: &str) {
        let mut got = self.wait_all(want);
        got.sort();
        let mut w = want.to_vec();
        w.sort();
        assert_eq!(got, w, "{why}");
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

/// `ipscan stats --json -i IFACE` (extra args: where the pins are), the interface's object.
pub fn stats_json(iface: &str, extra: &[&str]) -> Value {
    let mut args = vec!["stats", "--json", "-i", iface];
    args.extend_from_slice(extra);
    let (ok, out, err) = cli(&args);
    assert!(ok, "ipscan stats: {err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{out}");
    v[0].clone()
}

/// One kernel counter of a [`stats_json`] object.
pub fn counter(stats: &Value, name: &str) -> u64 {
    stats["counters"][name].as_u64().unwrap_or_else(|| panic!("no counter {name} in {stats}"))
}

/// GET http://127.0.0.1:PORT/PATH from inside `ns`; returns (status, body).
pub fn http_get(ns: &NetNs, port: u16, path: &str) -> (u16, String) {
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
pub fn sample(body: &str, series: &str) -> Option<u64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map(|v| v.trim().parse().unwrap_or_else(|_| panic!("value of {series}: {v}")))
}
