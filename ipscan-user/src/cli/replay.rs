//! `ipscan replay`: a capture through the XDP program, on the capture's clock.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::{config::Settings, log::sink::Sink};

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// Capture to replay: pcap or pcapng with Ethernet frames (tcpdump -w, Wireshark, dumpcap).
    file: PathBuf,
    /// iplog.conf-style configuration file (thresholds, windows, log_dest; its logfile is not used).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Append log lines to this file instead of writing them to standard output.
    #[arg(long)]
    log_file: Option<PathBuf>,
}

pub(super) fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let settings = match &args.config {
        Some(path) => Settings::load(path)?,
        None => Settings::default(),
    };
    let mut sink = match &args.log_file {
        Some(path) => Sink::file(path).with_context(|| format!("cannot open log file {}", path.display()))?,
        None => Sink::stdout(),
    };
    let stats = crate::replay::replay(&args.file, &settings, &mut sink)?;
    if stats.lost_events > 0 {
        eprintln!("ipscan: warning: {} events were lost (ring buffer full)", stats.lost_events);
    }
    eprintln!("ipscan: replayed {} frames ({} malformed) from {}", stats.frames, stats.malformed, args.file.display());
    Ok(())
}
