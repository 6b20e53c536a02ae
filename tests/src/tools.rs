//! The real tools the tests drive from the attacker namespace (nmap, hping3, scapy, python3
//! clients and servers), each bounded in time so a hung tool cannot hang the run.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Output, Stdio},
};

use crate::{
    ns::{NetNs, Testbed, VICTIM4, mac_of},
    util::sh,
};

/// Debian's python3-scapy is installed for the system interpreter, which may not be the
/// first `python3` on PATH.
const PY: &str = "/usr/bin/python3";

/// Runs `program args` in `ns` under `timeout -s INT SECS`, panicking on failure.
pub fn run_in(ns: &NetNs, secs: u32, program: &str, args: &[&str]) -> Output {
    sh(ns.cmd("timeout").args(["-s", "INT", &secs.to_string(), program]).args(args))
}

/// The SYN scan most tests use: `nmap -sS` of ports 1-40 of the victim, in order, from source
/// port 40000, each port probed once.
pub fn nmap_syn(bed: &Testbed) {
    run_in(
        &bed.attacker,
        120,
        "nmap",
        &["-sS", "-Pn", "-n", "-r", "-g", "40000", "--max-retries", "0", "-p", "1-40", VICTIM4],
    );
}

/// Runs a scapy script in the attacker namespace. `send4`/`send6` put packets on the wire
/// towards the victim's MAC (so spoofed sources need no routes).
pub fn scapy(bed: &Testbed, body: &str) {
    let script = format!(
        "from scapy.all import *\nconf.verb = 0\n\
         IF = '{ifname}'\nVM = '{vmac}'\n\
         def send4(pkts): sendp([Ether(dst=VM)/p for p in pkts], iface=IF)\n\
         def send6(pkts): sendp([Ether(dst=VM)/p for p in pkts], iface=IF)\n{body}\n",
        ifname = bed.attacker_if,
        vmac = mac_of(&bed.victim, &bed.victim_if),
    );
    run_in(&bed.attacker, 60, PY, &["-c", &script]);
}

/// A bounded hping3 flood in the background, stopped (SIGINT) by `timeout` or on drop.
pub struct Flood {
    child: Child,
}

impl Flood {
    /// `hping3 --flood -q ARGS` in `ns` for `secs` seconds (`--flood` ignores `-c`: `timeout`
    /// bounds it).
    pub fn start(ns: &NetNs, secs: u32, args: &[&str]) -> Self {
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

    /// Waits until the flood's own timeout ends it (hping3 ends on SIGINT with status 0 or 130).
    pub fn wait(mut self) {
        let _ = self.child.wait();
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        // Only a flood still running: once waited for, its pid may be another process's.
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: plain kill(2) on our child (timeout forwards SIGINT to hping3).
            unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
            let _ = self.child.wait();
        }
    }
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
