//! Blocks, hand-made allows and repeat offenders saved to the state directory, so they survive
//! a reboot (pinned maps already survive a daemon restart). Expiry is saved as wall-clock time
//! and restored as the time left.

use std::{
    collections::HashSet,
    fs, io,
    net::IpAddr,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use ipscan_common::{BlockEntry, block::allow_reason};
use serde::{Deserialize, Serialize};

use crate::{
    config::IpNet,
    kernel::tables::{Placed, TableError, Tables},
    offenders::{Offenders, Record},
};

/// Default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/ipscan";
const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not an ipscan state file: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Table(#[from] TableError),
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct SavedBlock {
    net: String,
    auto: bool,
    reason: u8,
    /// Unix seconds; absent: never expires.
    expires_unix: Option<u64>,
    packets: u64,
    bytes: u64,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct SavedAllow {
    net: String,
}

/// A repeat offender ([`crate::offenders`]).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct SavedOffender {
    addr: IpAddr,
    offences: u32,
    /// Unix seconds at which its last block ends (or ended).
    until_unix: i64,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Saved {
    version: u32,
    saved_unix: u64,
    blocks: Vec<SavedBlock>,
    allows: Vec<SavedAllow>,
    /// Absent in files from before repeat offenders were remembered.
    #[serde(default)]
    offenders: Vec<SavedOffender>,
}

/// The state file of an interface.
pub fn state_file(dir: &Path, iface: &str) -> PathBuf {
    dir.join(format!("{iface}.json"))
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Writes the blocks, manual allows and repeat offenders (atomically: a crash leaves the old
/// file).
pub fn save(tables: &Tables, offenders: &Offenders, path: &Path, now_mono: u64) -> Result<(), PersistError> {
    let now_unix = unix_now();
    let offenders = offenders
        .iter()
        .map(|(addr, r)| SavedOffender {
            addr: *addr,
            offences: r.offences,
            until_unix: now_unix as i64 + r.until_ns.saturating_sub(now_mono as i64).div_euclid(1_000_000_000),
        })
        .collect();
    let blocks = tables
        .blocks()
        .into_iter()
        .filter(|r| r.entry.active(now_mono))
        .map(|r| SavedBlock {
            net: r.net.to_string(),
            auto: r.auto,
            reason: r.entry.reason,
            expires_unix: (r.entry.expires_ns != 0)
                .then(|| now_unix + r.entry.expires_ns.saturating_sub(now_mono).div_ceil(1_000_000_000)),
            packets: r.entry.packets,
            bytes: r.entry.bytes,
        })
        .collect();
    let allows = tables
        .allows()
        .into_iter()
        .filter(|a| a.reason & allow_reason::MANUAL != 0)
        .map(|a| SavedAllow { net: a.net.to_string() })
        .collect();
    let saved = Saved { version: VERSION, saved_unix: now_unix, blocks, allows, offenders };
    let write = |source| PersistError::Write { path: path.to_owned(), source };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(write)?;
    }
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(&saved).map_err(|e| write(io::Error::other(e)))?;
    fs::write(&tmp, text).map_err(write)?;
    fs::rename(&tmp, path).map_err(write)
}

/// The repeat offenders of a state file, on the kernel clock (`now_mono` now); none when
/// there is no file.
pub fn offenders(path: &Path, now_mono: u64) -> Result<Vec<(IpAddr, Record)>, PersistError> {
    let Some(saved) = read(path)? else {
        return Ok(Vec::new());
    };
    let now_unix = unix_now() as i64;
    let now_mono = now_mono as i64;
    Ok(saved
        .offenders
        .into_iter()
        .map(|o| {
            let until_ns = now_mono.saturating_add(o.until_unix.saturating_sub(now_unix).saturating_mul(1_000_000_000));
            (o.addr, Record { offences: o.offences, until_ns })
        })
        .collect())
}

fn read(path: &Path) -> Result<Option<Saved>, PersistError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(PersistError::Read { path: path.to_owned(), source }),
    };
    serde_json::from_str(&text).map(Some).map_err(|source| PersistError::Parse { path: path.to_owned(), source })
}

/// What [`restore`] put back.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Restored {
    pub blocks: usize,
    /// Auto-blocks that went into the blocklist as host prefixes: their AUTOBLOCK set was
    /// full ([`Tables::block_auto`]).
    pub spilled: usize,
    pub expired: usize,
    pub allows: usize,
}

/// Puts saved blocks (with the time they have left) and manual allows back into the maps;
/// with `only_missing`, only the blocks that the maps do not list (the same prefix in the same
/// list, by hand or by the kernel): for lists made anew next to kept ones.
pub fn restore(tables: &mut Tables, path: &Path, now_mono: u64, only_missing: bool) -> Result<Restored, PersistError> {
    let Some(saved) = read(path)? else {
        return Ok(Restored::default());
    };
    let now_unix = unix_now();
    let mut r = Restored::default();
    let present: HashSet<(IpNet, bool)> =
        if only_missing { tables.blocks().into_iter().map(|b| (b.net, b.auto)).collect() } else { HashSet::new() };
    for b in saved.blocks {
        let Ok(net) = b.net.parse::<IpNet>() else { continue };
        if present.contains(&(net, b.auto)) {
            continue;
        }
        let expires_ns = match b.expires_unix {
            None => 0,
            Some(t) if t <= now_unix => {
                r.expired += 1;
                continue;
            }
            Some(t) => now_mono + (t - now_unix) * 1_000_000_000,
        };
        let entry = BlockEntry {
            expires_ns,
            added_ns: now_mono,
            packets: b.packets,
            bytes: b.bytes,
            last_ns: 0,
            reason: b.reason,
            _pad: [0; 7],
        };
        if b.auto {
            if tables.block_auto(&net, entry)? == Placed::Blocklist {
                r.spilled += 1;
            }
        } else {
            tables.block(&net, entry)?;
        }
        r.blocks += 1;
    }
    for a in saved.allows {
        if let Ok(net) = a.net.parse::<IpNet>() {
            tables.allow(&net, allow_reason::MANUAL)?;
            r.allows += 1;
        }
    }
    Ok(r)
}
