//! Syslog output: RFC 3164 messages on the local syslog socket, as glibc's syslog(3) sends
//! them (`<PRI>Mmm dd hh:mm:ss TAG[PID]: MESSAGE`, no host name), without pulling in a crate.

use std::{
    io,
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
};

use chrono::{DateTime, Local};

use crate::log::format::stamp;

/// The local syslog socket.
pub const DEFAULT_SOCKET: &str = "/dev/log";
/// iplog's defaults.
pub const DEFAULT_FACILITY: &str = "daemon";
pub const DEFAULT_PRIORITY: &str = "notice";
/// The tag before each message.
pub const TAG: &str = "ipscan";

#[derive(Debug, thiserror::Error)]
pub enum SyslogError {
    #[error("unknown syslog facility {name:?}")]
    Facility { name: String },
    #[error("unknown syslog priority {name:?}")]
    Priority { name: String },
    #[error("cannot reach the syslog socket {}: {source}", path.display())]
    Socket {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Facility codes of syslog(3) (`LOG_DAEMON` is 3).
pub fn facility_code(name: &str) -> Option<u8> {
    Some(match name {
        "kern" => 0,
        "user" => 1,
        "mail" => 2,
        "daemon" => 3,
        "auth" => 4,
        "syslog" => 5,
        "lpr" => 6,
        "news" => 7,
        "uucp" => 8,
        "cron" => 9,
        "authpriv" => 10,
        "ftp" => 11,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => return None,
    })
}

/// Severity codes (`LOG_NOTICE` is 5).
pub fn priority_code(name: &str) -> Option<u8> {
    Some(match name {
        "emerg" => 0,
        "alert" => 1,
        "crit" => 2,
        "err" => 3,
        "warning" => 4,
        "notice" => 5,
        "info" => 6,
        "debug" => 7,
        _ => return None,
    })
}

/// A syslog writer.
#[derive(Debug)]
pub struct Syslog {
    sock: UnixDatagram,
    path: PathBuf,
    pri: u8,
    pid: u32,
}

impl Syslog {
    /// Checks that the socket accepts datagrams now, so a missing syslog daemon is an error at
    /// start rather than silently lost lines. `facility` and `priority` are canonical names
    /// (as the config parser stores them).
    pub fn open(path: &Path, facility: &str, priority: &str) -> Result<Self, SyslogError> {
        let f = facility_code(facility).ok_or_else(|| SyslogError::Facility { name: facility.to_owned() })?;
        let p = priority_code(priority).ok_or_else(|| SyslogError::Priority { name: priority.to_owned() })?;
        let socket_err = |source| SyslogError::Socket { path: path.to_owned(), source };
        // A throw-away connect proves someone listens there now.
        UnixDatagram::unbound().and_then(|probe| probe.connect(path)).map_err(socket_err)?;
        // The writer stays unconnected and sends by path each time: a restarted syslog
        // daemon's new socket is picked up without reconnect logic.
        let sock = UnixDatagram::unbound().map_err(socket_err)?;
        Ok(Self { sock, path: path.to_owned(), pri: f * 8 + p, pid: std::process::id() })
    }

    /// The datagram for one line.
    pub fn message(&self, at: &DateTime<Local>, text: &str) -> String {
        format!("<{}>{} {TAG}[{}]: {text}", self.pri, stamp(at), self.pid)
    }

    pub fn send(&self, at: &DateTime<Local>, text: &str) -> io::Result<()> {
        self.sock.send_to(self.message(at, text).as_bytes(), &self.path).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn rfc3164_datagrams() {
        let dir = std::env::temp_dir().join(format!("ipscan-syslog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("log");
        let server = UnixDatagram::bind(&path).expect("bind");
        let s = Syslog::open(&path, "daemon", "notice").expect("open");
        let at = Local.with_ymd_and_hms(2026, 11, 4, 8, 1, 2).single().expect("time");
        s.send(&at, "TCP: ssh connection attempt from 10.10.150.1:51251").expect("send");
        let mut buf = [0u8; 512];
        let n = server.recv(&mut buf).expect("recv");
        assert_eq!(
            std::str::from_utf8(&buf[..n]).expect("utf8"),
            format!(
                "<29>Nov  4 08:01:02 ipscan[{}]: TCP: ssh connection attempt from 10.10.150.1:51251",
                std::process::id()
            )
        );
        let l = Syslog::open(&path, "local7", "err").expect("open");
        assert!(l.message(&at, "x").starts_with("<187>"));
        assert!(matches!(Syslog::open(&path, "daemon", "loud"), Err(SyslogError::Priority { .. })));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(matches!(Syslog::open(&path, "daemon", "notice"), Err(SyslogError::Socket { .. })));
    }
}
