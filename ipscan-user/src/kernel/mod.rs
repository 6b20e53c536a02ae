//! The kernel's side: loading and checking the XDP program, its pinned maps and what they
//! hold (block and allow tables, counters, saved state), and test runs of the program.

pub mod check;
pub mod events;
pub mod feeds;
pub mod loader;
pub mod mmap;
pub mod persist;
pub mod pins;
pub mod prefixes;
pub mod stats;
pub mod tables;
pub mod testrun;
pub mod verifier;
