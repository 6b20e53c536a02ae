//! The `ipscan` command.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ipscan::{
    daemon::{self, LogTarget, RunConfig},
    loader::{self, AttachMode},
    netif,
};
use ipscan_common::Config;

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
    let kernel = Config::default();
    if let Some(path) = &args.config {
        anyhow::bail!("{}: configuration files are not supported yet", path.display());
    }
    let mut ifaces = args.ifaces;
    if ifaces.is_empty() {
        let iface = netif::default_route_iface()
            .context("no --iface given and no default route to take an interface from")?;
        eprintln!("ipscan: no --iface given; using {iface}, the interface of the default route");
        ifaces.push(iface);
    }
    if !loader::has_bpf_privilege() {
        return Err(loader::privilege_error().into());
    }
    let log = match args.log_file {
        Some(p) => LogTarget::File(p),
        None => LogTarget::Stdout,
    };
    let cfg = RunConfig {
        ifaces,
        kernel,
        log,
        mode: args.xdp_mode,
        log_dest: false,
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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipscan: {}", loader::error_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
