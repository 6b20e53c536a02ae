//! The benchmark's own XDP objects, built by build.rs from bench/ebpf (ipscan-bench-ebpf). The
//! real program comes from the `ipscan` library: `cargo xtask bench` measures it against these
//! baselines in the same run.

/// Empty program returning XDP_PASS (program name `baseline_pass`).
pub static BASELINE_PASS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/baseline_pass"));
/// Empty program returning XDP_DROP (program name `baseline_drop`).
pub static BASELINE_DROP: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/baseline_drop"));
/// Live-frames packet generator returning XDP_TX (program name `generator_tx`).
pub static GENERATOR_TX: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/generator_tx"));

/// Floor programs `floor_hash`, `floor_array`, `floor_clock` and their maps `FLOOR_HASH`,
/// `FLOOR_ARRAY` (see bench/ebpf's `src/bin/floor.rs`).
pub static FLOOR: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/floor"));

/// Program `fresh_sources`: a new IPv6 source per test run, then a tail call through its
/// `NEXT` program array (see bench/ebpf's `src/bin/fresh_sources.rs`).
pub static FRESH_SOURCES: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/fresh_sources"));

/// Program names in the objects above.
pub const BASELINE_PASS_NAME: &str = "baseline_pass";
pub const BASELINE_DROP_NAME: &str = "baseline_drop";
pub const GENERATOR_TX_NAME: &str = "generator_tx";
pub const FRESH_SOURCES_NAME: &str = "fresh_sources";
/// The program array `fresh_sources` tail-calls through (slot 0).
pub const FRESH_SOURCES_NEXT: &str = "NEXT";
/// Load-time global of the generator: 0 sends the frame unchanged, 4 / 6 rewrite the IPv4 /
/// IPv6 source from a per-CPU counter before each transmission.
pub const GENERATOR_VARY_SOURCE: &str = "GEN_VARY_SOURCE";
/// The generator's scan-flood mode and its number of sources ([`ipscan_bench_common`]).
pub use ipscan_bench_common::{SCAN_FLOOD as GENERATOR_SCAN_FLOOD, SCAN_SOURCES as GENERATOR_SCAN_SOURCES};
