//! `ipscan run`: the daemon's options, checked before anything is attached.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::{
    config::{Settings, kernel::KernelSettings},
    daemon::{self, LogTarget, RunConfig},
    host::netif,
    kernel::{
        loader::{self, AttachMode},
        persist, pins,
    },
    log::syslog,
};

#[derive(clap::Args, Debug)]
pub struct RunArgs {
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
    /// Also write every log line as a JSON object (one per line) to this file, for Wazuh.
    #[arg(long)]
    json_log: Option<PathBuf>,
    /// Root of the per-interface pinned maps (blocks, allows, detection state, counters).
    #[arg(long, default_value = pins::DEFAULT_PIN_ROOT)]
    pin_root: PathBuf,
    /// Pin nothing: state and blocks die with the daemon.
    #[arg(long)]
    no_pin: bool,
    /// Where blocks are saved to survive a reboot.
    #[arg(long, default_value = persist::DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// Directory of the per-interface lock files (one daemon per interface).
    #[arg(long, default_value = pins::LOCK_DIR, hide = true)]
    lock_dir: PathBuf,
    /// Serve Prometheus metrics on GET /metrics at ADDR:PORT; a bare PORT listens on loopback
    /// (127.0.0.1:PORT). Default: off.
    #[arg(long, value_name = "ADDR:PORT", value_parser = parse_metrics)]
    metrics: Option<std::net::SocketAddr>,
    /// Seconds between the log lines that count lost events and left-out per-packet lines
    /// (written only when they grew, and at exit).
    #[arg(long, default_value_t = 60, hide = true)]
    loss_report_secs: u64,
    /// Size of the event ring buffer in bytes (a power of two, at least 4096). For tests that
    /// force ring-buffer loss; the default is the object's 1 MiB.
    #[arg(long, value_parser = parse_ring_bytes, hide = true)]
    event_ring_bytes: Option<u32>,
    /// If the kernel refuses the XDP program, write its verifier log (the path to the refusal,
    /// instruction by instruction) to this file, for a bug report.
    #[arg(long, value_name = "FILE")]
    verifier_log: Option<PathBuf>,
    /// Drop nothing: log each block as `Would block ...` and count the packets it would drop
    /// (`dry_run_passed`), as `set dry_run` does; holds across reloads.
    #[arg(long)]
    dry_run: bool,
    /// Load a program that the kernel refuses, to test what a refusal does.
    #[arg(long, hide = true)]
    test_refusal: bool,
}

fn parse_metrics(text: &str) -> Result<std::net::SocketAddr, String> {
    crate::daemon::metrics::parse_addr(text).map_err(|e| e.to_string())
}

fn parse_ring_bytes(text: &str) -> Result<u32, String> {
    text.parse::<u32>()
        .ok()
        .filter(|n| loader::valid_ring_bytes(*n))
        .ok_or_else(|| format!("expected a power of two of at least {} bytes", loader::MIN_RING_BYTES))
}

pub(super) fn run(args: RunArgs) -> anyhow::Result<()> {
    // Parse and validate everything before touching the kernel: a bad line attaches nothing.
    let mut settings = match &args.config {
        Some(path) => Settings::load(path)?,
        None => Settings::default(),
    };
    settings.flags.dry_run |= args.dry_run;
    let mut ifaces = args.ifaces;
    if ifaces.is_empty() {
        ifaces = settings.interfaces.clone();
    }
    if ifaces.is_empty() {
        let iface =
            netif::default_route_iface().context("no --iface given and no default route to take an interface from")?;
        eprintln!("ipscan: no --iface given; using {iface}, the interface of the default route");
        ifaces.push(iface);
    }
    if !loader::has_bpf_privilege() {
        return Err(loader::privilege_error().into());
    }
    if let Some(warning) = loader::raise_memlock() {
        eprintln!("ipscan: {warning}");
    }
    // Rules, promisc networks and ignore_dns are checked here too, before anything is attached.
    KernelSettings::load(&settings).context("configuration")?;
    let log = match (args.log_file, args.stdout, &settings.logfile) {
        _ if args.syslog => LogTarget::Syslog(args.syslog_socket),
        (Some(p), _, _) => LogTarget::File(p),
        (None, true, _) => LogTarget::Stdout,
        (None, false, Some(p)) if !settings.flags.stdout => LogTarget::File(p.clone()),
        _ => LogTarget::Stdout,
    };
    let cfg = RunConfig {
        ifaces,
        settings,
        config_path: args.config,
        log,
        mode: args.xdp_mode,
        pin_root: (!args.no_pin).then_some(args.pin_root),
        state_dir: args.state_dir,
        lock_dir: args.lock_dir,
        json_log: args.json_log,
        metrics: args.metrics,
        loss_report: std::time::Duration::from_secs(args.loss_report_secs),
        event_ring_bytes: args.event_ring_bytes,
        verifier_log: args.verifier_log,
        test_refusal: args.test_refusal,
        dry_run: args.dry_run,
    };
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")?;
    rt.block_on(daemon::run(cfg))?;
    Ok(())
}
