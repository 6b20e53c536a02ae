//! The clocks: the kernel's monotonic one (its events are stamped on it) and the wall clock the
//! log lines show; random seeds for the kernel's hashed tables.

use chrono::{DateTime, Local};

/// Converts kernel monotonic nanoseconds to local wall time, with an offset taken at start.
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    offset_ns: i128,
}

impl WallClock {
    pub fn now() -> Self {
        let mono = monotonic_ns() as i128;
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        Self { offset_ns: real - mono }
    }

    /// A clock whose zero is the Unix epoch (replay uses capture timestamps directly).
    pub fn epoch() -> Self {
        Self { offset_ns: 0 }
    }

    pub fn wall(&self, kernel_ns: u64) -> DateTime<Local> {
        let t = kernel_ns as i128 + self.offset_ns;
        let secs = t.div_euclid(1_000_000_000) as i64;
        let nanos = t.rem_euclid(1_000_000_000) as u32;
        DateTime::from_timestamp(secs, nanos).unwrap_or_default().with_timezone(&Local)
    }
}

/// CLOCK_MONOTONIC in nanoseconds, the clock of `bpf_ktime_get_coarse_ns` (which is at most a tick behind).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A non-zero hash seed for the kernel's set-associative tables (AUTOBLOCK, PROBATION): 64
/// random bits from getrandom(2), or the clock if that fails.
pub fn random_seed() -> u64 {
    let mut seed = 0u64;
    // SAFETY: writes at most 8 bytes into `seed`.
    let n = unsafe { libc::getrandom((&raw mut seed).cast(), 8, 0) };
    if n != 8 {
        seed = monotonic_ns();
    }
    seed | 1
}
