//! The tools the tests run in a namespace (anything under `timeout`, python3 clients and
//! servers), each bounded in time so a hung tool cannot hang the run.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Output, Stdio},
};

use crate::{ns::NetNs, util::sh};

/// Runs `program args` in `ns` under `timeout -s INT SECS`, panicking on failure.
pub fn run_in(ns: &NetNs, secs: u32, program: &str, args: &[&str]) -> Output {
    sh(ns.cmd("timeout").args(["-s", "INT", &secs.to_string(), program]).args(args))
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
