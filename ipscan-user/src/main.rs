//! The `ipscan` command.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ipscan::{
    config::Settings,
    kconfig::KernelSettings,
    syslog,
    daemon::{self, LogTarget, RunConfig},
    loader::{self, AttachMode},
    netif,
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
    #[arg(long, conflicts_with_all = ["stdout", "syslog"])]
    log_file: Option<PathBuf>,
    /// Send log lines to syslog (facility and priority from the config, default daemon.notice).
    #[arg(long, conflicts_with = "stdout")]
    syslog: bool,
    /// The syslog daemon's socket (for chroots and tests).
    #[arg(long, default_value = syslog::DEFAULT_SOCKET, requires = "syslog")]
    syslog_socket: PathBuf,
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
    // Rules, promisc networks and ignore_dns are checked here too, before anything is attached.
    let kernel = KernelSettings::load(&settings).context("configuration")?.config;
    let log = match (args.log_file, args.stdout, &settings.logfile) {
        _ if args.syslog => LogTarget::Syslog(args.syslog_socket),
        (Some(p), _, _) => LogTarget::File(p),
        (None, true, _) => LogTarget::Stdout,
        (None, false, Some(p)) if !settings.flags.stdout => LogTarget::File(p.clone()),
        _ => LogTarget::Stdout,
    };
    let cfg = RunConfig {
        ifaces,
        kernel,
        log,
        mode: args.xdp_mode,
        log_dest: settings.flags.log_dest,
        settings,
        config_path: args.config,
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
