//! `ipscan replay`: a capture through the XDP program, on the capture's clock.

use std::{net::IpAddr, path::PathBuf};

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
    /// The capturing host's addresses (comma-separated): frames sent from them are the host's
    /// own and go through the egress program, so that its resets and ICMP unreachables count
    /// as they did live (`counting confirmed`, `set rejected`). Without it every frame is taken
    /// as received.
    #[arg(long, value_delimiter = ',', value_name = "ADDR[,ADDR]")]
    local: Vec<IpAddr>,
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
    if settings.wants_rejects() && args.local.is_empty() {
        eprintln!(
            "ipscan: warning: the configuration counts the host's rejects (counting confirmed or set rejected), but \
             without --local every frame is taken as received and none as the host's"
        );
    }
    let stats = crate::replay::replay(&args.file, &settings, &args.local, &mut sink)?;
    if stats.lost_events > 0 {
        eprintln!("ipscan: warning: {} events were lost (ring buffer full)", stats.lost_events);
    }
    let sent = if args.local.is_empty() { String::new() } else { format!(", {} sent by this host", stats.sent) };
    eprintln!(
        "ipscan: replayed {} frames ({} malformed{sent}) from {}",
        stats.frames,
        stats.malformed,
        args.file.display()
    );
    Ok(())
}
