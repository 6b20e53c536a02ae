//! ipscan user space, by stage: the command line (`cli`), the configuration (`config`), the
//! kernel's side of things (`kernel`: loading, pins, maps), the daemon (`daemon`), the log
//! lines it writes (`log`), the history of repeat offenders (`offenders`), the CrowdSec Local
//! API (`crowdsec`), facts about the host (`host`), and `replay` of captures.

pub mod cli;
pub mod clock;
pub mod config;
pub mod crowdsec;
pub mod daemon;
pub mod host;
pub mod kernel;
pub mod log;
pub mod offenders;
pub mod replay;
