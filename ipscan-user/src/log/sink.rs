//! Where log lines go: an iplog-format file or stdout, with iplog's
//! `last message repeated N times` collapsing of identical consecutive lines.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
};

use chrono::{DateTime, Local};

use crate::{log::format::stamp, log::syslog::Syslog};

/// iplog writes a pending repeat count when an identical line comes this long after the last
/// one written.
const REPEAT_FLUSH_SECS: i64 = 60;

enum Out {
    File {
        file: File,
        path: PathBuf,
    },
    Stdout,
    /// The syslog daemon collapses repeats itself, so lines go out as they come.
    Syslog(Syslog),
}

/// A line sink with repeat collapsing.
pub struct Sink {
    out: Out,
    last: Option<String>,
    last_written: Option<DateTime<Local>>,
    repeats: u64,
}

impl Sink {
    pub fn file(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self::new(Out::File { file, path: path.to_owned() }))
    }

    pub fn stdout() -> Self {
        Self::new(Out::Stdout)
    }

    pub fn syslog(s: Syslog) -> Self {
        Self::new(Out::Syslog(s))
    }

    fn new(out: Out) -> Self {
        Self { out, last: None, last_written: None, repeats: 0 }
    }

    /// Reopens the file (after logrotate moved it).
    pub fn reopen(&mut self) -> io::Result<()> {
        if let Out::File { file, path } = &mut self.out {
            *file = OpenOptions::new().create(true).append(true).open(&*path)?;
        }
        Ok(())
    }

    fn write_raw(&mut self, at: &DateTime<Local>, text: &str) -> io::Result<()> {
        let line = format!("{} {text}\n", stamp(at));
        match &mut self.out {
            Out::File { file, .. } => {
                file.write_all(line.as_bytes())?;
                file.flush()
            }
            Out::Stdout => {
                let mut o = io::stdout().lock();
                o.write_all(line.as_bytes())?;
                o.flush()
            }
            Out::Syslog(s) => s.send(at, text),
        }
    }

    fn flush_repeats(&mut self, at: &DateTime<Local>) -> io::Result<()> {
        if self.repeats > 0 {
            let n = self.repeats;
            self.repeats = 0;
            self.write_raw(at, &format!("last message repeated {n} times"))?;
        }
        Ok(())
    }

    /// Writes one line stamped `at`, collapsing it if it repeats the previous one.
    pub fn line(&mut self, at: &DateTime<Local>, text: &str) -> io::Result<()> {
        if let Out::Syslog(s) = &self.out {
            return s.send(at, text);
        }
        if self.last.as_deref() == Some(text) {
            let stale = self.last_written.is_some_and(|w| (*at - w).num_seconds() >= REPEAT_FLUSH_SECS);
            if !stale {
                self.repeats += 1;
                return Ok(());
            }
            self.flush_repeats(at)?;
        } else {
            self.flush_repeats(at)?;
        }
        self.write_raw(at, text)?;
        self.last = Some(text.to_owned());
        self.last_written = Some(*at);
        Ok(())
    }

    /// Writes a pending repeat count (at exit).
    pub fn finish(&mut self, at: &DateTime<Local>) -> io::Result<()> {
        self.flush_repeats(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn repeats_collapse_like_iplog() {
        let dir = std::env::temp_dir().join(format!("ipscan-sink-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let mut s = Sink::file(&dir).expect("open");
        let t = |sec| Local.with_ymd_and_hms(2026, 11, 14, 18, 9, sec).single().expect("time");
        s.line(&t(0), "UDP: dgram to port 1 from 10.10.150.1:34324 (300 data bytes)").expect("w");
        s.line(&t(1), "UDP: dgram to port 1 from 10.10.150.1:34324 (300 data bytes)").expect("w");
        s.line(&t(2), "UDP: dgram to port 1 from 10.10.150.1:34324 (300 data bytes)").expect("w");
        s.line(&t(3), "TCP: other").expect("w");
        s.line(&t(4), "TCP: other").expect("w");
        s.finish(&t(5)).expect("w");
        let text = std::fs::read_to_string(&dir).expect("read");
        let _ = std::fs::remove_file(&dir);
        assert_eq!(
            text,
            "Nov 14 18:09:00 UDP: dgram to port 1 from 10.10.150.1:34324 (300 data bytes)\n\
             Nov 14 18:09:03 last message repeated 2 times\n\
             Nov 14 18:09:03 TCP: other\n\
             Nov 14 18:09:05 last message repeated 1 times\n"
        );
    }
}
