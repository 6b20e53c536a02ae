//! The `ipscan` command.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ipscan::{
    blocklist::{self, Tables},
    config::{self, IpNet, Settings},
    daemon::{self, LogTarget, OpsOptions, RunConfig},
    format,
    kconfig::KernelSettings,
    loader::{self, AttachMode},
    netif, persist, pins,
    sink::Sink,
    syslog,
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
    /// Show or change the blocklist of running daemons (pinned maps).
    Block(BlockArgs),
    /// Show or change the allowlist of running daemons (pinned maps).
    Allow(AllowArgs),
    /// Live view of sources in a scan or flood mode, blocks and packet rates, from the running
    /// daemons' pinned maps; q, Esc or Ctrl-C quits.
    Top(TopArgs),
    /// Show the kernel's counters and map occupancy of running daemons (pinned maps).
    Stats(StatsArgs),
    /// Check that this kernel accepts the XDP program (loaded, not attached), and show what
    /// verifying it costs, function by function; fails when refused or above the budget.
    Check(CheckArgs),
}

#[derive(clap::Args, Debug)]
struct CheckArgs {
    /// Fail when the whole program takes the verifier more processed instructions than this.
    #[arg(long, default_value_t = ipscan::check::DEFAULT_BUDGET)]
    budget: u64,
    /// Fail when a function the kernel verifies on its own takes it more than this.
    #[arg(long, default_value_t = ipscan::check::DEFAULT_FUNCTION_BUDGET)]
    function_budget: u64,
    /// Print the report as one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Write the kernel's whole verifier logs (every instruction walked, program by program) to
    /// this file, for a bug report. Verification is then much slower.
    #[arg(long, value_name = "FILE")]
    verifier_log: Option<PathBuf>,
}

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    if !loader::has_bpf_privilege() {
        return Err(loader::privilege_error().into());
    }
    let _ = loader::raise_memlock();
    let (report, logs) = ipscan::check::check(args.budget, args.function_budget, args.verifier_log.is_some())?;
    if let Some(path) = &args.verifier_log {
        let text: String = logs.iter().map(|(name, log)| format!("==> {name}\n{log}\n")).collect();
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", ipscan::check::render(&report));
    }
    Ok(if report.within_budget() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

#[derive(clap::Args, Debug)]
struct TopArgs {
    /// Interface whose daemon to watch (repeat for several). Default: every interface that has
    /// pinned ipscan state.
    #[arg(long = "iface", short = 'i')]
    ifaces: Vec<String>,
    /// Root of the daemons' pinned maps.
    #[arg(long, default_value = pins::DEFAULT_PIN_ROOT)]
    pin_root: PathBuf,
    /// Directory of the daemons' lock files.
    #[arg(long, default_value = pins::LOCK_DIR, hide = true)]
    lock_dir: PathBuf,
    /// Seconds between refreshes (fractions allowed, 0.1 to 3600).
    #[arg(long, default_value = "1", value_parser = ipscan::top::parse_interval)]
    interval: std::time::Duration,
}

fn top(args: TopArgs) -> anyhow::Result<()> {
    if !loader::has_bpf_privilege() {
        anyhow::bail!("reading the daemon's maps needs root or CAP_BPF");
    }
    let place = ipscan::top::Place { pin_root: args.pin_root, lock_dir: args.lock_dir, ifaces: args.ifaces };
    ipscan::top::run(&place, args.interval)?;
    Ok(())
}

#[derive(clap::Args, Debug)]
struct StatsArgs {
    /// One JSON array (one object per interface) instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    place: Where,
}

/// Where the daemons' state is, for the table commands.
#[derive(clap::Args, Debug)]
struct Where {
    /// Interface whose daemon to act on (repeat for several). Default: every interface that has
    /// pinned ipscan state.
    #[arg(long = "iface", short = 'i', global = true)]
    ifaces: Vec<String>,
    /// Root of the daemons' pinned maps.
    #[arg(long, global = true, default_value = pins::DEFAULT_PIN_ROOT)]
    pin_root: PathBuf,
    /// Directory of the daemons' lock files.
    #[arg(long, global = true, default_value = pins::LOCK_DIR, hide = true)]
    lock_dir: PathBuf,
}

#[derive(clap::Args, Debug)]
struct BlockArgs {
    #[command(subcommand)]
    action: BlockAction,
    #[command(flatten)]
    place: Where,
}

#[derive(Subcommand, Debug)]
enum BlockAction {
    /// List blocked prefixes and addresses with their drop counts and time left.
    List {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Block an address or prefix (ADDR or ADDR/LEN, IPv4 or IPv6).
    Add {
        /// Address or prefix to block.
        prefix: String,
        /// How long, e.g. 90s, 10m, 1h; default: until removed.
        #[arg(long)]
        ttl: Option<String>,
    },
    /// Remove a blocked address or prefix (also a kernel auto-block of that address).
    Del {
        /// Address or prefix to unblock, as it was added.
        prefix: String,
    },
    /// Remove every block.
    Flush,
}

#[derive(clap::Args, Debug)]
struct AllowArgs {
    #[command(subcommand)]
    action: AllowAction,
    #[command(flatten)]
    place: Where,
}

#[derive(Subcommand, Debug)]
enum AllowAction {
    /// List allowlisted prefixes and why each is there.
    List {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Allowlist an address or prefix: never blocked, even by the kernel's auto-block.
    Add {
        /// Address or prefix to allow.
        prefix: String,
    },
    /// Remove an address or prefix added with `allow add`.
    Del {
        /// Address or prefix, as it was added.
        prefix: String,
    },
    /// Remove every entry added with `allow add` (the daemon's own entries stay).
    Flush,
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
    eprintln!("ipscan: replayed {} frames ({} malformed) from {}", stats.frames, stats.malformed, args.file.display());
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
    /// Load a program that the kernel refuses, to test what a refusal does.
    #[arg(long, hide = true)]
    test_refusal: bool,
}

fn parse_metrics(text: &str) -> Result<std::net::SocketAddr, String> {
    ipscan::metrics::parse_addr(text).map_err(|e| e.to_string())
}

fn parse_ring_bytes(text: &str) -> Result<u32, String> {
    text.parse::<u32>()
        .ok()
        .filter(|n| loader::valid_ring_bytes(*n))
        .ok_or_else(|| format!("expected a power of two of at least {} bytes", loader::MIN_RING_BYTES))
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
        ops: OpsOptions {
            metrics: args.metrics,
            loss_report: std::time::Duration::from_secs(args.loss_report_secs),
            event_ring_bytes: args.event_ring_bytes,
        },
        verifier_log: args.verifier_log,
        test_refusal: args.test_refusal,
    };
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")?;
    rt.block_on(daemon::run(cfg))?;
    Ok(())
}

/// The interfaces a table command acts on, each with its opened maps.
fn tables(place: &Where) -> anyhow::Result<Vec<(String, Tables)>> {
    if !loader::has_map_privilege() {
        anyhow::bail!("reading the daemon's maps needs root or CAP_BPF");
    }
    let ifaces = if place.ifaces.is_empty() { pins::interfaces(&place.pin_root) } else { place.ifaces.clone() };
    if ifaces.is_empty() {
        anyhow::bail!(
            "no ipscan daemon is running (nothing pinned under {}); start `ipscan run` first",
            place.pin_root.display()
        );
    }
    let mut out = Vec::new();
    for iface in ifaces {
        let dir = pins::iface_dir(&place.pin_root, &iface);
        if !dir.is_dir() {
            anyhow::bail!("no ipscan daemon has run on {iface} (no {})", dir.display());
        }
        if !pins::daemon_running(&place.lock_dir, &iface) {
            eprintln!("ipscan: no daemon is running on {iface}; changes apply when one starts there");
        }
        let t = Tables::open_pinned(&dir)?;
        out.push((iface, t));
    }
    Ok(out)
}

/// An address or prefix argument; the error names the text and what is wrong with it.
fn parse_net(text: &str) -> anyhow::Result<IpNet> {
    Ok(text.parse::<IpNet>()?)
}

/// The rows of every interface's table, each with its interface, for `block list` and
/// `allow list`.
fn rows_of<R>(all: &[(String, Tables)], rows: impl Fn(&Tables) -> Vec<R>) -> Vec<(String, R)> {
    all.iter().flat_map(|(iface, t)| rows(t).into_iter().map(move |r| (iface.clone(), r))).collect()
}

fn secs_left(expires_ns: u64, now: u64) -> Option<u64> {
    (expires_ns != 0).then(|| expires_ns.saturating_sub(now).div_ceil(1_000_000_000))
}

/// A `--ttl` in nanoseconds (none: zero, forever).
fn ttl_ns(ttl: Option<&str>) -> anyhow::Result<u64> {
    match ttl {
        None => Ok(0),
        Some(t) => config::parse_duration_ns(t)
            .ok_or_else(|| anyhow::anyhow!("invalid --ttl \"{t}\": expected a duration such as 90s, 10m or 1h")),
    }
}

/// Refuses an addition (`what`: "a block") on an interface whose daemon runs without the
/// pinned count map `map` (`counted` says whether the tables have it): the running program
/// would not look the new entry up until the daemon restarts and its loader counts it.
fn refuse_uncounted(
    all: &[(String, Tables)],
    place: &Where,
    map: &str,
    what: &str,
    counted: impl Fn(&Tables) -> bool,
) -> anyhow::Result<()> {
    for (iface, t) in all {
        if !counted(t) && pins::daemon_running(&place.lock_dir, iface) {
            anyhow::bail!(
                "{iface}: the running daemon's {map} map is not pinned (no {}): {what} added now would \
                 not take effect; restart `ipscan run` on {iface} first",
                pins::iface_dir(&place.pin_root, iface).join(map).display()
            );
        }
    }
    Ok(())
}

fn block(args: BlockArgs) -> anyhow::Result<()> {
    // The arguments are checked before the maps are opened: a typo is reported as one, whether
    // or not a daemon runs.
    match &args.action {
        BlockAction::Add { prefix, ttl } => {
            parse_net(prefix)?;
            ttl_ns(ttl.as_deref())?;
        }
        BlockAction::Del { prefix } => {
            parse_net(prefix)?;
        }
        BlockAction::List { .. } | BlockAction::Flush => {}
    }
    let mut all = tables(&args.place)?;
    let now = daemon::monotonic_ns();
    match args.action {
        BlockAction::List { json } => {
            let rows = rows_of(&all, Tables::blocks);
            if json {
                let v: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|(iface, r)| {
                        serde_json::json!({
                            "iface": iface,
                            "prefix": blocklist::show(&r.net),
                            "auto": r.auto,
                            "reason": r.entry.detection().map(|d| format::detection_name(d).1).unwrap_or("manual"),
                            "expires_in_s": secs_left(r.entry.expires_ns, now),
                            "active": r.entry.active(now),
                            "packets": r.entry.packets,
                            "bytes": r.entry.bytes,
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                println!(
                    "{:<16} {:<40} {:<12} {:>10} {:>12} {:>14}",
                    "IFACE", "PREFIX", "REASON", "EXPIRES", "PACKETS", "BYTES"
                );
                for (iface, r) in &rows {
                    let reason = r.entry.detection().map(|d| format::detection_name(d).1).unwrap_or("manual");
                    let exp = match secs_left(r.entry.expires_ns, now) {
                        None => "never".to_owned(),
                        Some(0) => "expired".to_owned(),
                        Some(s) => format!("{s}s"),
                    };
                    println!(
                        "{:<16} {:<40} {:<12} {:>10} {:>12} {:>14}",
                        iface,
                        blocklist::show(&r.net),
                        reason,
                        exp,
                        r.entry.packets,
                        r.entry.bytes
                    );
                }
            }
        }
        BlockAction::Add { prefix, ttl } => {
            let net = parse_net(&prefix)?;
            let ttl_ns = ttl_ns(ttl.as_deref())?;
            // A running program reads a prefix's BLOCKCOUNTS bucket before looking the prefix
            // up: a prefix added without its count would not block until the daemon restarts
            // (its loader counts the kept prefixes when it makes BLOCKCOUNTS anew).
            refuse_uncounted(&all, &args.place, ipscan_common::maps::BLOCKCOUNTS, "a block", |t| t.counts().is_some())?;
            for (iface, t) in &mut all {
                t.block(&net, ipscan_common::BlockEntry::manual(now, ttl_ns))?;
                // The kernel skips the block lists while its CONFIG says they are empty.
                blocklist::set_pinned_flags(
                    &pins::iface_dir(&args.place.pin_root, iface),
                    ipscan_common::config::global_flags::BLOCKLIST,
                )?;
                match ttl {
                    Some(_) => {
                        eprintln!("ipscan: {iface}: blocked {} for {} s", blocklist::show(&net), ttl_ns / 1_000_000_000)
                    }
                    None => eprintln!("ipscan: {iface}: blocked {} until removed", blocklist::show(&net)),
                }
            }
        }
        BlockAction::Del { prefix } => {
            let net = parse_net(&prefix)?;
            let mut found = false;
            for (iface, t) in &mut all {
                for r in t.unblock(&net) {
                    found = true;
                    eprintln!(
                        "ipscan: {iface}: {}",
                        format::unblocked(&blocklist::show(&r.net), r.entry.packets, r.entry.bytes)
                    );
                }
            }
            if !found {
                anyhow::bail!("{} is not blocked", blocklist::show(&net));
            }
        }
        BlockAction::Flush => {
            for (iface, t) in &mut all {
                let n = t.flush_blocks().len();
                eprintln!("ipscan: {iface}: removed {n} blocks");
            }
        }
    }
    Ok(())
}

fn reasons(bits: u32) -> String {
    use ipscan_common::block::allow_reason as r;
    let names = [
        (r::CONFIGURED, "configured"),
        (r::OWN_ADDRESS, "own-address"),
        (r::GATEWAY, "gateway"),
        (r::NAMESERVER, "nameserver"),
        (r::MANUAL, "manual"),
    ];
    names.iter().filter(|(b, _)| bits & b != 0).map(|(_, n)| *n).collect::<Vec<_>>().join(",")
}

fn allow(args: AllowArgs) -> anyhow::Result<()> {
    use ipscan_common::block::allow_reason;
    if let AllowAction::Add { prefix } | AllowAction::Del { prefix } = &args.action {
        parse_net(prefix)?;
    }
    let mut all = tables(&args.place)?;
    match args.action {
        AllowAction::List { json } => {
            let rows = rows_of(&all, Tables::allows);
            if json {
                let v: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|(iface, r)| {
                        serde_json::json!({
                            "iface": iface,
                            "prefix": blocklist::show(&r.net),
                            "reasons": reasons(r.reason).split(',').collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                println!("{:<16} {:<40} REASONS", "IFACE", "PREFIX");
                for (iface, r) in &rows {
                    println!("{:<16} {:<40} {}", iface, blocklist::show(&r.net), reasons(r.reason));
                }
            }
        }
        AllowAction::Add { prefix } => {
            let net = parse_net(&prefix)?;
            // As for `block add`: the running program reads the bucket's ALLOWCOUNTS count
            // before it looks the allowlist up.
            refuse_uncounted(&all, &args.place, ipscan_common::maps::ALLOWCOUNTS, "an allow", |t| {
                t.allow_counts().is_some()
            })?;
            for (iface, t) in &mut all {
                t.allow(&net, allow_reason::MANUAL)?;
                eprintln!("ipscan: {iface}: allowlisted {}", blocklist::show(&net));
                for r in t.unblock_auto_within(&net) {
                    eprintln!(
                        "ipscan: {iface}: {}",
                        format::unblocked(&blocklist::show(&r.net), r.entry.packets, r.entry.bytes)
                    );
                }
            }
        }
        AllowAction::Del { prefix } => {
            let net = parse_net(&prefix)?;
            let mut found = false;
            for (iface, t) in &mut all {
                if t.disallow(&net, allow_reason::MANUAL) {
                    found = true;
                    eprintln!("ipscan: {iface}: removed {} from the allowlist", blocklist::show(&net));
                }
            }
            if !found {
                anyhow::bail!("{} was not added with `ipscan allow add`", blocklist::show(&net));
            }
        }
        AllowAction::Flush => {
            for (iface, t) in &mut all {
                let n = t.flush_allows(allow_reason::MANUAL);
                eprintln!("ipscan: {iface}: removed {n} allowlist entries");
            }
        }
    }
    Ok(())
}

/// `ipscan stats`: the pinned STATS, SOURCES and block maps, read directly (no daemon involved).
fn stats(args: StatsArgs) -> anyhow::Result<()> {
    if !loader::has_map_privilege() {
        anyhow::bail!("reading the daemon's maps needs root or CAP_BPF");
    }
    let ifaces =
        if args.place.ifaces.is_empty() { pins::interfaces(&args.place.pin_root) } else { args.place.ifaces.clone() };
    if ifaces.is_empty() {
        anyhow::bail!(
            "no ipscan daemon is running (nothing pinned under {}); start `ipscan run` first",
            args.place.pin_root.display()
        );
    }
    let mut snaps = Vec::new();
    for iface in ifaces {
        let dir = pins::iface_dir(&args.place.pin_root, &iface);
        if !dir.is_dir() {
            anyhow::bail!("no ipscan daemon has run on {iface} (no {})", dir.display());
        }
        let snap = ipscan::stats::read_pinned(&dir).with_context(|| iface.clone())?;
        snaps.push((iface, snap));
    }
    if args.json {
        let v: Vec<serde_json::Value> = snaps.iter().map(|(i, s)| s.to_json(i)).collect();
        println!("{}", serde_json::Value::Array(v));
        return Ok(());
    }
    for (n, (iface, s)) in snaps.iter().enumerate() {
        if n > 0 {
            println!();
        }
        let running = if pins::daemon_running(&args.place.lock_dir, iface) { "" } else { " (no daemon running)" };
        println!("{iface}{running}");
        for (name, v) in ipscan_common::stats::NAMES.iter().zip(s.counters) {
            println!("  {name:<18} {v:>14}");
        }
        println!("  {:<18} {:>14} of {}", "sources", s.sources, s.sources_max);
        println!("  {:<18} {:>14} of {}", "probation", s.probation, s.probation_max);
        println!("  {:<18} {:>14} of {}", "autoblock", s.autoblock, s.autoblock_max);
        println!("  {:<18} {:>14}", "manual_blocks", s.manual_blocks);
        println!("  {:<18} {:>14} ({} bytes)", "block_drops", s.block_packets, s.block_bytes);
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args).map(|()| ExitCode::SUCCESS),
        Command::Replay(args) => replay(args).map(|()| ExitCode::SUCCESS),
        Command::Block(args) => block(args).map(|()| ExitCode::SUCCESS),
        Command::Allow(args) => allow(args).map(|()| ExitCode::SUCCESS),
        Command::Top(args) => top(args).map(|()| ExitCode::SUCCESS),
        Command::Stats(args) => stats(args).map(|()| ExitCode::SUCCESS),
        Command::Check(args) => check(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ipscan: {}", loader::error_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
