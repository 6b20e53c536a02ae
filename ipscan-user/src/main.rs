//! The `ipscan` command.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ipscan::{
    config::Settings,
    daemon::{self, LogTarget, RunConfig},
    loader::{self, AttachMode},
    netif,
    sink::Sink,
};

/// Kernel-accelerated network scan detector and blocker (XDP), iplog-compatible logs.
#[derive(Parser, Debug)]
#[command(name = "ipscan", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Attach to interfaces and log detections until SIGINT or SIGTERM.
    Run(RunArgs),
    /// Run a capture's frames through the XDP program on the capture's clock and log what
    /// `ipscan run` would have logged for that traffic.
    Replay(ReplayArgs),
}

#[derive(clap::Args, Debug)]
struct ReplayArgs {
    /// Capture to replay: pcap or pcapng with Ethernet frames (tcpdump -w, Wireshark, dumpcap).
    file: PathBuf,
    /// iplog.conf-style configuration file (thresholds, windows, log_dest; its logfile is not used).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Append log lines to this file instead of writing them to standard output.
    #[arg(long)]
    log_file: Option<PathBuf>,
}

fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let settings = match &args.config {
        Some(path) => Settings::load(path)?,
        None => Settings::default(),
    };
    let mut sink = match &args.log_file {
        Some(path) => Sink::file(path).with_context(|| format!("cannot open log file {}", path.display()))?,
        None => Sink::stdout(),
    };
    let stats = ipscan::replay::replay(&args.file, &settings, &mut sink)?;
    if stats.lost_events > 0 {
        eprintln!("ipscan: warning: {} events were lost (ring buffer full)", stats.lost_events);
    }
    eprintln!(
        "ipscan: replayed {} frames ({} malformed) from {}",
        stats.frames,
        stats.malformed,
        args.file.display()
    );
    Ok(())
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Interface to attach to (repeat for several). Default: the interface of the default route.
    #[arg(long = "iface", short = 'i')]
    ifaces: Vec<String>,
    /// iplog.conf-style configuration file.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Append log lines to this file (iplog format).
    #[arg(long, conflicts_with = "stdout")]
    log_file: Option<PathBuf>,
    /// Write log lines to standard output (the default when no log file is given).
    #[arg(long)]
    stdout: bool,
    /// XDP attach mode: auto tries native and falls back to skb.
    #[arg(long, value_enum, default_value_t = AttachMode::Auto)]
    xdp_mode: AttachMode,
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    // Parse and validate everything before touching the kernel: a bad line attaches nothing.
    let settings = match &args.config {
        Some(path) => Settings::load(path)?,
        None => Settings::default(),
    };
    let mut ifaces = args.ifaces;
    if ifaces.is_empty() {
        ifaces = settings.interfaces.clone();
    }
    if ifaces.is_empty() {
        let iface = netif::default_route_iface()
            .context("no --iface given and no default route to take an interface from")?;
        eprintln!("ipscan: no --iface given; using {iface}, the interface of the default route");
        ifaces.push(iface);
    }
    if !loader::has_bpf_privilege() {
        return Err(loader::privilege_error().into());
    }
    let log = match (args.log_file, args.stdout, &settings.logfile) {
        (Some(p), _, _) => LogTarget::File(p),
        (None, true, _) => LogTarget::Stdout,
        (None, false, Some(p)) if !settings.flags.stdout => LogTarget::File(p.clone()),
        _ => LogTarget::Stdout,
    };
    let cfg = RunConfig {
        ifaces,
        kernel: settings.kernel,
        log,
        mode: args.xdp_mode,
        log_dest: settings.flags.log_dest,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(daemon::run(cfg))?;
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Replay(args) => replay(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipscan: {}", loader::error_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
