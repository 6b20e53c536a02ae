//! The output stage: events become iplog-format lines (`tracker` for detections, `lines` for
//! per-packet lines, `format` for the text), JSON records, and go to a file, standard output or
//! syslog (`sink`, `syslog`, `output`), with sources named by `resolve`.

pub mod format;
pub mod json;
pub mod lines;
pub mod output;
pub mod resolve;
pub mod sink;
pub mod syslog;
pub mod tracker;
