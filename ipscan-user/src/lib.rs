//! ipscan user space: loader, daemon, log formatting and the pieces the CLI is built from.

pub mod bench;
pub mod blocklist;
pub mod check;
pub mod config;
pub mod daemon;
pub mod format;
pub mod hostinfo;
pub mod json;
pub mod kconfig;
pub mod lines;
pub mod listen;
pub mod loader;
pub mod metrics;
pub mod netif;
pub mod netlink;
pub mod persist;
pub mod pins;
pub mod replay;
pub mod resolve;
pub mod sink;
pub mod stats;
pub mod syslog;
pub mod testrun;
pub mod top;
pub mod tracker;
