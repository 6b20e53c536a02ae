//! tcpdump captures in a namespace: what was sent or received, read back with [`crate::pcap`].

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Stdio},
    thread,
    time::Duration,
};

use crate::{ns::NetNs, pcap};

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
