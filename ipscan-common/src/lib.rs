//! Data layouts and pure decision logic shared by the XDP program and user space.
//!
//! Everything here is `no_std`, allocation-free and side-effect-free, so the kernel can run it
//! on map values and the host can unit-test it. Every type that crosses the kernel boundary is
//! `#[repr(C)]`, `Copy`, and has no implicit padding (each struct has a size assertion).

#![no_std]

pub mod classify;
pub mod config;
pub mod event;
pub mod packet;
pub mod window;

pub use classify::{Detection, DETECTIONS};
pub use config::{Config, DetectionConfig};
pub use event::{Event, EventKind};
pub use packet::PacketSummary;
pub use window::{SourceKey, SourceState};

/// Names of the maps in the object file; user space looks them up by these names.
pub mod maps {
    pub const CONFIG: &str = "CONFIG";
    pub const SOURCES: &str = "SOURCES";
    pub const EVENTS: &str = "EVENTS";
    pub const STATS: &str = "STATS";
    pub const CLOCK: &str = "CLOCK";
    /// Size of the SOURCES LRU hash: one entry per (source, detection) being tracked.
    pub const SOURCES_MAX: u32 = 65_536;
    /// Ring buffer size in bytes (a power of two, a multiple of the page size).
    pub const EVENTS_BYTES: u32 = 1 << 20;
}

/// Name of the XDP program in the object file.
pub const PROGRAM_NAME: &str = "ipscan";

/// Load-time global that switches the program's clock to the CLOCK map (replay and tests).
pub const GLOBAL_REPLAY_CLOCK: &str = "IPSCAN_REPLAY_CLOCK";

/// Address families as stored in keys and events.
pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;

/// Indices into the per-CPU STATS array. User space sums them over CPUs.
pub mod stats {
    /// Frames seen by the program.
    pub const PACKETS: u32 = 0;
    /// Frames passed.
    pub const PASSED: u32 = 1;
    /// Frames dropped.
    pub const DROPPED: u32 = 2;
    /// Frames that could not be parsed (truncated or malformed), passed untouched.
    pub const MALFORMED: u32 = 3;
    /// Frames that are not IP (ARP, LLDP, ...), passed untouched.
    pub const NOT_IP: u32 = 4;
    /// Map lookups or updates that failed; the frame was passed.
    pub const MAP_ERRORS: u32 = 5;
    /// Events that could not be reserved on the ring buffer.
    pub const LOST_EVENTS: u32 = 6;
    /// Detection events emitted (threshold crossings).
    pub const DETECTIONS: u32 = 7;
    /// Mode expiries noticed by the kernel before user space swept them.
    pub const KERNEL_EXPIRIES: u32 = 8;
    /// IPv6 frames whose extension-header chain was longer than the parser's bound.
    pub const V6_EXT_LIMIT: u32 = 9;
    /// IP fragments that are not first fragments (no transport header to classify).
    pub const FRAGMENTS: u32 = 10;
    /// Number of slots; keep last.
    pub const COUNT: u32 = 16;

    /// Human names for the slots, indexed by slot; used by `ipscan stats` and metrics.
    pub const NAMES: [&str; 11] = [
        "packets",
        "passed",
        "dropped",
        "malformed",
        "not_ip",
        "map_errors",
        "lost_events",
        "detections",
        "kernel_expiries",
        "ipv6_ext_limit",
        "fragments",
    ];
}
