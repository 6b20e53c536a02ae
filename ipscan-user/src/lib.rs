//! ipscan user space: loader, daemon, log formatting and the pieces the CLI is built from.

pub mod bench;
pub mod daemon;
pub mod format;
pub mod json;
pub mod kconfig;
pub mod lines;
pub mod loader;
pub mod netif;
pub mod replay;
pub mod resolve;
pub mod sink;
pub mod syslog;
pub mod testrun;
pub mod tracker;
pub mod config;
pub mod blocklist;
pub mod hostinfo;
pub mod listen;
pub mod persist;
pub mod pins;
pub mod top;
pub mod metrics;
pub mod netlink;
pub mod stats;
