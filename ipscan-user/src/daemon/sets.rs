//! The daemon's side of threat feeds: it lifts sets whose `--ttl` lapsed, logs every set that
//! comes, changes or goes (the CLI imports them on the pinned maps), and keeps a copy of each
//! set in the state directory (`STATE_DIR/IFACE.sets/NAME`), put back after a reboot.

use std::{
    collections::BTreeMap,
    fs, io,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use crate::{
    config::feedlist,
    kernel::{
        feeds::{NewSet, SetRow, valid_name},
        tables::Tables,
    },
    log::format,
};

/// What the daemon last saw of a set.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    loaded_unix_ns: u64,
    v4: u32,
    v6: u32,
    expires_ns: u64,
    source: String,
}

impl Seen {
    fn of(r: &SetRow) -> Self {
        Self {
            loaded_unix_ns: r.loaded_unix_ns,
            v4: r.v4,
            v6: r.v6,
            expires_ns: r.expires_ns,
            source: r.source.clone(),
        }
    }
}

/// The sets of one interface as the daemon last saw them, and where it saves them.
pub struct SetWatch {
    seen: BTreeMap<String, Seen>,
    dir: PathBuf,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The directory of an interface's saved sets.
pub fn sets_dir(state_dir: &Path, iface: &str) -> PathBuf {
    state_dir.join(format!("{iface}.sets"))
}

impl SetWatch {
    /// The watch of an interface's sets, its saved copies made to agree with the maps: put back
    /// into maps made anew (`kept`: the maps were pinned before; after a reboot they are not),
    /// else the copies of sets no longer in the maps removed (removed while no daemon ran). A
    /// set whose copy is not of its last import is saved (and logged) at the first tick. Returns
    /// a note of what came back.
    pub fn start(
        tables: &mut Tables,
        state_dir: &Path,
        iface: &str,
        kept: bool,
        now_ns: u64,
    ) -> (Self, Option<String>) {
        let mut w = Self { seen: BTreeMap::new(), dir: sets_dir(state_dir, iface) };
        let note = if kept { None } else { w.restore(tables, now_ns) };
        let rows = tables.feeds().map_or_else(Vec::new, |f| f.sets());
        for path in w.copies() {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            match rows.iter().find(|r| r.name == name) {
                Some(r) if saved_stamp(&path) == Some(r.loaded_unix_ns) => {
                    w.seen.insert(r.name.clone(), Seen::of(r));
                }
                Some(_) => {}
                None => {
                    let _ = fs::remove_file(&path);
                }
            }
        }
        (w, note)
    }

    /// The saved copies (files named as a set may be).
    fn copies(&self) -> Vec<PathBuf> {
        let Ok(files) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<PathBuf> = files
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(valid_name))
            .collect();
        out.sort();
        out
    }

    /// Puts the saved sets back into empty maps, each with the time it had left.
    fn restore(&mut self, tables: &mut Tables, now_ns: u64) -> Option<String> {
        if tables.feeds().is_none_or(|f| !f.sets().is_empty()) {
            return None;
        }
        let (mut sets, mut prefixes, mut lapsed, mut bad) = (0, 0, 0, Vec::new());
        for path in self.copies() {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            match restore_one(tables, &path, &name, now_ns) {
                Ok(Some(n)) => {
                    sets += 1;
                    prefixes += n;
                }
                Ok(None) => {
                    lapsed += 1;
                    let _ = fs::remove_file(&path);
                }
                Err(e) => bad.push(e),
            }
        }
        let mut note = (sets + lapsed > 0).then(|| {
            format!(
                "restored {sets} threat feed sets ({prefixes} prefixes) from {} ({lapsed} had expired)",
                self.dir.display()
            )
        });
        if !bad.is_empty() {
            let why = format!("not restoring: {}", bad.join("; "));
            note = Some(note.map_or(why.clone(), |n| format!("{n}; {why}")));
        }
        note
    }

    /// Lifts the lapsed sets, then compares the sets with what it saw last: the lines to log,
    /// each new or changed set saved, each gone one's file removed.
    pub fn tick(&mut self, tables: &mut Tables, now_ns: u64) -> Vec<String> {
        let mut lines = Vec::new();
        let mut expired = Vec::new();
        match tables.feeds_mut() {
            Ok((feeds, counts)) => match feeds.expire(counts, now_ns) {
                Ok(rows) => {
                    for r in rows {
                        lines.push(format::set_gone(&r.name, true, r.packets, r.bytes));
                        expired.push(r.name);
                    }
                }
                Err(e) => lines.push(format!("ipscan: lifting lapsed threat feed sets: {e}")),
            },
            Err(_) => return lines,
        }
        let Some(feeds) = tables.feeds() else {
            return lines;
        };
        let rows = feeds.sets();
        for r in &rows {
            let now = Seen::of(r);
            if self.seen.get(&r.name) != Some(&now) {
                lines.push(format::set_loaded(&r.name, r.v4, r.v6, &r.source));
                if let Err(e) = self.save(feeds, r) {
                    lines.push(format!("ipscan: cannot save set {} to {}: {e}", r.name, self.dir.display()));
                }
                self.seen.insert(r.name.clone(), now);
            }
        }
        let gone: Vec<String> = self.seen.keys().filter(|n| !rows.iter().any(|r| &r.name == *n)).cloned().collect();
        for name in gone {
            self.seen.remove(&name);
            let _ = fs::remove_file(self.dir.join(&name));
            if !expired.contains(&name) {
                // Its drops went with it (the CLI printed them).
                lines.push(format!("Set {name} removed."));
            }
        }
        lines
    }

    /// Writes one set as a plain list with its metadata in comments (atomically).
    fn save(&self, feeds: &crate::kernel::feeds::Feeds, r: &SetRow) -> io::Result<()> {
        let nets = feeds.prefixes(&r.name).map_err(io::Error::other)?;
        fs::create_dir_all(&self.dir)?;
        let mut text =
            format!("# ipscan set {}\n# source: {}\n# loaded_unix_ns: {}\n", r.name, r.source, r.loaded_unix_ns);
        if r.expires_ns != 0 {
            let left = r.expires_ns.saturating_sub(crate::clock::monotonic_ns()).div_ceil(1_000_000_000);
            text.push_str(&format!("# expires_unix: {}\n", unix_now() + left));
        }
        for n in nets {
            text.push_str(&n.to_string());
            text.push('\n');
        }
        let path = self.dir.join(&r.name);
        let tmp = self.dir.join(format!(".{}.tmp", r.name));
        fs::write(&tmp, text)?;
        fs::rename(tmp, path)
    }
}

/// The `loaded_unix_ns` a saved copy was made of (its third line).
fn saved_stamp(path: &Path) -> Option<u64> {
    use std::io::BufRead;
    let file = io::BufReader::new(fs::File::open(path).ok()?);
    file.lines().take(4).map_while(Result::ok).find_map(|l| l.strip_prefix("# loaded_unix_ns: ")?.parse().ok())
}

/// Imports one saved set; Some(prefixes), or None when it had lapsed.
fn restore_one(tables: &mut Tables, path: &Path, name: &str, now_ns: u64) -> Result<Option<usize>, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let header = |key: &str| {
        text.lines()
            .take_while(|l| l.starts_with('#'))
            .find_map(|l| l.strip_prefix("# ")?.strip_prefix(key)?.strip_prefix(": ").map(str::to_owned))
    };
    let expires_ns = match header("expires_unix").and_then(|t| t.parse::<u64>().ok()) {
        None => 0,
        Some(t) if t <= unix_now() => return Ok(None),
        Some(t) => now_ns + (t - unix_now()) * 1_000_000_000,
    };
    let nets = feedlist::parse(&text, &path.display().to_string()).map_err(|e| e.to_string())?;
    let source = header("source").unwrap_or_default();
    let loaded_unix_ns = header("loaded_unix_ns").and_then(|t| t.parse().ok()).unwrap_or(0);
    let (feeds, counts) = tables.feeds_mut().map_err(|e| e.to_string())?;
    feeds
        .import(counts, &NewSet { name, nets: &nets, expires_ns, source: &source, loaded_unix_ns })
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Some(nets.len()))
}
