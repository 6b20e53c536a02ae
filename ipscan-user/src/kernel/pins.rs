//! Where a daemon's maps live between runs: `/sys/fs/bpf/ipscan/IFACE/`, and the lock that keeps
//! one daemon per interface.

use std::{
    ffi::CString,
    fs::{self, File, OpenOptions},
    io,
    os::{fd::AsRawFd, unix::ffi::OsStrExt},
    path::{Path, PathBuf},
};

use aya::maps::MapData;

/// Default root of the per-interface pin directories.
pub const DEFAULT_PIN_ROOT: &str = "/sys/fs/bpf/ipscan";
/// Where the per-interface daemon locks live.
pub const LOCK_DIR: &str = "/run/ipscan";
/// `statfs` magic of bpffs.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("cannot mount bpffs on {path}: {source}")]
    Mount {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("another ipscan daemon is running on {iface} (pid {pid})")]
    AlreadyRunning { iface: String, pid: String },
    #[error("cannot open the pinned map {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("cannot pin {path}: {source}")]
    Pin {
        path: PathBuf,
        #[source]
        source: aya::pin::PinError,
    },
    #[error("cannot lock {path}: {source}")]
    Lock {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no ipscan daemon is running (nothing pinned under {}); start `ipscan run` first", root.display())]
    NothingPinned { root: PathBuf },
    #[error("no ipscan daemon has run on {iface} (no {})", dir.display())]
    NotPinned { iface: String, dir: PathBuf },
}

fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: zeroed statfs is a valid out-parameter.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and out-pointer.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_type as i64 == BPF_FS_MAGIC
}

/// Makes sure the bpffs that holds `root` is mounted (at /sys/fs/bpf), mounting it if needed.
pub fn ensure_bpffs(root: &Path) -> Result<(), PinError> {
    let mount_point = root
        .ancestors()
        .find(|p| p.parent() == Some(Path::new("/sys/fs")) || *p == Path::new("/sys/fs/bpf"))
        .unwrap_or(root);
    if is_bpffs(mount_point) || is_bpffs(root) {
        return Ok(());
    }
    if mount_point != Path::new("/sys/fs/bpf") {
        // A pin root outside /sys/fs/bpf must already be on a bpffs: say so via the create error.
        return Ok(());
    }
    let target = CString::new("/sys/fs/bpf").map_err(|e| PinError::Mount {
        path: mount_point.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidInput, e),
    })?;
    let fstype = c"bpf";
    // SAFETY: NUL-terminated strings; no data argument.
    let rc = unsafe { libc::mount(fstype.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        return Err(PinError::Mount { path: mount_point.to_owned(), source: io::Error::last_os_error() });
    }
    Ok(())
}

/// The pin directory of one interface.
pub fn iface_dir(root: &Path, iface: &str) -> PathBuf {
    root.join(iface)
}

/// Creates the interface's pin directory (mounting bpffs first if needed).
pub fn prepare(root: &Path, iface: &str) -> Result<PathBuf, PinError> {
    ensure_bpffs(root)?;
    let dir = iface_dir(root, iface);
    fs::create_dir_all(&dir).map_err(|source| PinError::Create { path: dir.clone(), source })?;
    Ok(dir)
}

/// The interfaces `wanted` (every one with a pin directory under `root` when empty), each
/// checked to have its pin directory: a daemon ran there.
pub fn with_state(root: &Path, wanted: &[String]) -> Result<Vec<String>, PinError> {
    let ifaces = if wanted.is_empty() { interfaces(root) } else { wanted.to_vec() };
    if ifaces.is_empty() {
        return Err(PinError::NothingPinned { root: root.to_owned() });
    }
    for iface in &ifaces {
        let dir = iface_dir(root, iface);
        if !dir.is_dir() {
            return Err(PinError::NotPinned { iface: iface.clone(), dir });
        }
    }
    Ok(ifaces)
}

/// Interfaces with a pin directory under `root`.
pub fn interfaces(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(root)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A daemon's own handles on the maps it pinned, to pin them again when a pin goes: the CLI,
/// `ipscan top` and the next daemon find the maps only through their pins, and the CLI cannot
/// count a prefix blocked by hand without BLOCKCOUNTS's.
#[derive(Debug)]
pub struct Kept {
    dir: PathBuf,
    maps: Vec<(&'static str, MapData)>,
}

impl Kept {
    /// Opens every map of `names` through its pin in `dir`, where the loader just pinned it.
    pub fn open(dir: &Path, names: &[&'static str]) -> Result<Self, PinError> {
        let mut maps = Vec::new();
        for name in names {
            let path = dir.join(name);
            let map = MapData::from_pin(&path).map_err(|source| PinError::Open { path, source })?;
            maps.push((*name, map));
        }
        Ok(Self { dir: dir.to_owned(), maps })
    }

    /// Pins again every map whose pin is gone (the directory too, when it went); returns
    /// their names.
    pub fn repin(&self) -> Result<Vec<&'static str>, PinError> {
        let missing: Vec<_> = self.maps.iter().filter(|(name, _)| !self.dir.join(name).exists()).collect();
        if missing.is_empty() {
            return Ok(Vec::new());
        }
        fs::create_dir_all(&self.dir).map_err(|source| PinError::Create { path: self.dir.clone(), source })?;
        let mut done = Vec::new();
        for (name, map) in missing {
            let path = self.dir.join(name);
            map.pin(&path).map_err(|source| PinError::Pin { path, source })?;
            done.push(*name);
        }
        Ok(done)
    }
}

/// A pinned map whose key size, value size or number of entries differs from this build's:
/// left over from an older ipscan. Removes the pin (its contents cannot be read with this
/// layout) and says which.
pub fn drop_incompatible(dir: &Path, name: &str, key_size: u32, value_size: u32, max_entries: u32) -> Option<String> {
    let path = dir.join(name);
    let map = MapData::from_pin(&path).ok()?;
    let info = map.info().ok()?;
    let (k, v, n) = (info.key_size(), info.value_size(), info.max_entries());
    if (k, v, n) == (key_size, value_size, max_entries) {
        return None;
    }
    let _ = fs::remove_file(&path);
    Some(format!(
        "discarded pinned map {} from an older ipscan (key/value {k}/{v} bytes, {n} entries; now {key_size}/{value_size}, {max_entries})",
        path.display()
    ))
}

/// The lock that makes a daemon the only one on its interface; released when dropped.
#[derive(Debug)]
pub struct DaemonLock {
    _file: File,
    path: PathBuf,
}

impl DaemonLock {
    /// Takes the interface's lock, or says which process holds it.
    pub fn acquire(lock_dir: &Path, iface: &str) -> Result<Self, PinError> {
        fs::create_dir_all(lock_dir).map_err(|source| PinError::Create { path: lock_dir.to_owned(), source })?;
        let path = lock_dir.join(format!("{iface}.lock"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| PinError::Lock { path: path.clone(), source })?;
        // SAFETY: valid fd.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let pid = fs::read_to_string(&path).unwrap_or_default().trim().to_owned();
            return Err(PinError::AlreadyRunning {
                iface: iface.to_owned(),
                pid: if pid.is_empty() { "unknown".into() } else { pid },
            });
        }
        let _ = fs::write(&path, format!("{}\n", std::process::id()));
        Ok(Self { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Whether a daemon holds the interface's lock now.
pub fn daemon_running(lock_dir: &Path, iface: &str) -> bool {
    let path = lock_dir.join(format!("{iface}.lock"));
    let Ok(file) = File::open(&path) else {
        return false;
    };
    // A shared lock fails only while the daemon holds its exclusive one.
    // SAFETY: valid fd.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) != 0 }
}
