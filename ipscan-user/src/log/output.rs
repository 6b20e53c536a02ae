//! Where the daemon's lines go: the text sink (file, standard output or syslog) and, beside
//! it, the JSON records.

use std::io::{self, Write as _};

use crate::{
    clock::WallClock,
    log::{json, sink::Sink, tracker::Line},
};

/// Text and JSON outputs.
pub struct Output {
    pub sink: Sink,
    pub json: Option<std::fs::File>,
    pub clock: WallClock,
}

impl Output {
    /// Writes a line, stamped with its wall time, and its JSON record when it has one.
    pub fn line(&mut self, line: &Line) -> io::Result<()> {
        let at = self.clock.wall(line.at_ns);
        self.sink.line(&at, &line.text)?;
        if let (Some(f), Some(event)) = (&mut self.json, line.meta.event)
            && (line.meta.src.is_some() || line.meta.dst.is_some())
        {
            let m = &line.meta;
            let rec = json::JsonRecord {
                detection: m.detection.map(|d| d.names().log_name.to_owned()),
                dstip: m.dst,
                dports: m.dports.clone(),
                sports: m.sports.clone(),
                packets: m.packets,
                bytes: m.bytes,
                block_secs: m.block_ns.map(|ns| ns / 1_000_000_000),
                offence: m.offence,
                sources: m.sources,
                rate: m.rate,
                decoy: m.decoy,
                srchosts: m.srchosts.clone(),
                hosts: m.hosts,
                dsthosts: m.dsthosts.clone(),
                proto: m.proto,
                ..json::JsonRecord::new(at.fixed_offset(), event, m.src, line.text.clone())
            };
            writeln!(f, "{}", json::to_line(&rec))?;
        }
        Ok(())
    }
}
