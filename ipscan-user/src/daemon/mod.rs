//! `ipscan run`: attach to interfaces, read events, write log lines, sweep expiries and blocks.

// DaemonError carries aya's load errors (with the verifier log) by value; they happen once, at
// start or reload, so boxing them would buy nothing.
#![expect(clippy::result_large_err, reason = "one-off start-up errors; see above")]

pub mod metrics;
mod sets;

use std::{
    collections::{BTreeMap, HashMap},
    fs::OpenOptions,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use aya::{
    Ebpf,
    maps::{HashMap as BpfHashMap, MapData, RingBuf},
};
use chrono::Local;
use ipscan_common::{
    Detection, Event, EventKind, SourceKey, SourceState, block::allow_reason, config::global_flags, maps,
};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};

use self::metrics::MetricsError;
use crate::{
    clock::{WallClock, monotonic_ns},
    config::{
        IpNet, Settings,
        crowdsec::CrowdSec,
        kernel::{KconfigError, KernelSettings},
    },
    crowdsec::{self, CrowdSecError, lapi::Alert},
    host::{hostinfo, listen, netlink},
    kernel::{
        events::decode,
        loader::{self, AttachMode, LoadError, LoadOptions},
        persist::{self, PersistError},
        pins::{self, DaemonLock, PinError},
        stats::{self, Loss},
        tables::{self, TableError, Tables},
    },
    log::{
        format, json,
        output::Output,
        resolve::{Namer, Plain, Resolver},
        sink::Sink,
        syslog::{self, Syslog, SyslogError},
        tracker::{Line, Tracker},
    },
};

/// Where log lines go.
#[derive(Clone, Debug)]
pub enum LogTarget {
    File(PathBuf),
    Stdout,
    /// RFC 3164 datagrams to this socket, with the config's facility and priority.
    Syslog(PathBuf),
}

/// What `ipscan run` says when `dry_run` is on (at start, and when a reload turns it on).
const DRY_RUN_NOTICE: &str = "dry run: nothing is dropped; each block is logged as \"Would block ...\" and each packet it would drop counted in dry_run_passed";

/// Everything `ipscan run` needs, already validated.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub ifaces: Vec<String>,
    pub settings: Settings,
    pub config_path: Option<PathBuf>,
    pub log: LogTarget,
    pub mode: AttachMode,
    /// Root of the per-interface pin directories; None: nothing is pinned (state dies with us).
    pub pin_root: Option<PathBuf>,
    /// Where blocks are saved to survive a reboot.
    pub state_dir: PathBuf,
    /// Where the per-interface daemon locks live.
    pub lock_dir: PathBuf,
    /// Also write every line as a JSON object to this file.
    pub json_log: Option<PathBuf>,
    /// Serve Prometheus metrics on this address (`GET /metrics`).
    pub metrics: Option<SocketAddr>,
    /// How often to log lost events and left-out per-packet lines, when they grew.
    pub loss_report: Duration,
    /// Size of the event ring buffer in bytes; None: the object's (1 MiB).
    pub event_ring_bytes: Option<u32>,
    /// Where to write the kernel's verifier log if it refuses the program.
    pub verifier_log: Option<PathBuf>,
    /// Load a program the kernel refuses (tests of the refusal path).
    pub test_refusal: bool,
    /// `--dry-run`: `dry_run` on whatever the configuration file says, across reloads.
    pub dry_run: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{iface}: {source}")]
    Load {
        iface: String,
        #[source]
        source: LoadError,
    },
    #[error(transparent)]
    Attach(#[from] loader::AttachError),
    #[error(transparent)]
    CrowdSec(#[from] CrowdSecError),
    #[error(transparent)]
    Pin(#[from] PinError),
    #[error(transparent)]
    Kconfig(#[from] KconfigError),
    #[error("{iface}: {source}")]
    Apply {
        iface: String,
        #[source]
        source: KconfigError,
    },
    #[error(transparent)]
    Syslog(#[from] SyslogError),
    #[error("{iface}: {source}")]
    Table {
        iface: String,
        #[source]
        source: TableError,
    },
    #[error("{iface}: cannot read map {map}: {source}")]
    Map {
        iface: String,
        map: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("cannot open log file {path}: {source}")]
    LogFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the log: {source}")]
    Write {
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// How often (in 1 s ticks) the daemon takes away AUTOMARKS marks that no auto-block needs.
const UNMARK_EVERY_TICKS: u64 = 5;
/// CrowdSec alerts waiting for the machine thread; past this they are counted and left out.
const ALERT_QUEUE: usize = 4096;

/// How sources are printed: `name (address)` with `set log_ip` unless the resolver is disabled.
fn namer(settings: &Settings) -> Box<dyn Namer> {
    if settings.flags.log_ip && !settings.flags.disable_resolver {
        Box::new(Resolver::system())
    } else {
        Box::new(Plain)
    }
}

/// An AF_PACKET membership that keeps an interface promiscuous while it is held. The kernel
/// counts promiscuity per holder and drops ours when the socket closes, however the daemon ends.
struct Promisc(
    #[expect(dead_code, reason = "held only for its Drop: closing the socket ends the membership")]
    std::os::fd::OwnedFd,
);

fn promiscuous(iface: &str) -> std::io::Result<Promisc> {
    use std::os::fd::FromRawFd;
    let idx = loader::if_index(iface).ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor we own.
    let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let mreq = libc::packet_mreq {
        mr_ifindex: idx as i32,
        mr_type: libc::PACKET_MR_PROMISC as u16,
        mr_alen: 0,
        mr_address: [0; 8],
    };
    // SAFETY: valid fd and a packet_mreq of the size given.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            (&mreq as *const libc::packet_mreq).cast(),
            size_of::<libc::packet_mreq>() as u32,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Promisc(owned))
}

/// One attached interface.
struct Interface {
    name: String,
    ebpf: Ebpf,
    link: Option<aya::programs::xdp::XdpLinkId>,
    /// The egress program's link, while the configuration wants the host's rejects counted.
    egress: Option<aya::programs::tc::SchedClassifierLinkId>,
    /// Whether the configuration wants the egress program ([`Settings::wants_rejects`]).
    wants_egress: bool,
    sources: BpfHashMap<MapData, SourceKey, SourceState>,
    tables: Tables,
    /// The threat feed sets as last seen (logged, saved).
    sets: sets::SetWatch,
    listen: Option<BpfHashMap<MapData, u32, u8>>,
    tracker: Tracker,
    state_file: PathBuf,
    /// CONFIG flags last written to the kernel.
    written_flags: u32,
    /// Held while `promisc` networks are configured.
    _promisc: Option<Promisc>,
    _lock: DaemonLock,
    /// The interface the program is attached to; None while the interface is gone.
    ifindex: Option<u32>,
    /// Detection lines written since start, by kind (metrics).
    detections: BTreeMap<&'static str, u64>,
    /// STATS loss counters when this daemon started (the pinned array outlives daemons).
    loss_base: Loss,
    /// Loss at the last summary line.
    loss_reported: Loss,
    /// Why the last re-attach failed, so a retry that fails the same way stays quiet.
    reattach_error: Option<String>,
    /// The pinned maps, pinned again when their pins go (None without `--pin-root`).
    pins: Option<pins::Kept>,
    /// Why pinning again failed last, so a retry that fails the same way stays quiet.
    repin_error: Option<String>,
}

/// Pins again the maps whose pins were removed while the daemon runs (by hand, or a cleanup
/// of /sys/fs/bpf), saying which: without them the CLI and `ipscan top` cannot find the maps,
/// and the next daemon would start from empty ones.
fn repin(a: &mut Interface) {
    let Some(kept) = &a.pins else { return };
    match kept.repin() {
        Ok(names) => {
            if !names.is_empty() {
                eprintln!("ipscan: {}: pinned {} again (the pins were removed)", a.name, names.join(", "));
            }
            a.repin_error = None;
        }
        Err(e) => {
            let why = loader::error_chain(&e);
            if a.repin_error.as_deref() != Some(why.as_str()) {
                eprintln!("ipscan: {}: {why}", a.name);
                a.repin_error = Some(why);
            }
        }
    }
}

fn take_map<T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>>(
    ebpf: &mut Ebpf,
    iface: &str,
    name: &'static str,
) -> Result<T, DaemonError> {
    let map = ebpf
        .take_map(name)
        .ok_or_else(|| DaemonError::Load { iface: iface.to_owned(), source: LoadError::MissingMap { name } })?;
    T::try_from(map).map_err(|source| DaemonError::Map { iface: iface.to_owned(), map: name, source })
}

/// Replaces the automatic allowlist entries: configured prefixes, own addresses, default
/// gateways, nameservers. Entries added by hand (`ipscan allow add`) stay.
fn populate_allowlist(tables: &mut Tables, settings: &Settings, iface: &str) -> Result<usize, DaemonError> {
    let err = |source| DaemonError::Table { iface: iface.to_owned(), source };
    tables.flush_allows(allow_reason::AUTOMATIC);
    let mut nets: Vec<(IpNet, u32)> = settings.allow.iter().map(|n| (*n, allow_reason::CONFIGURED)).collect();
    for (addrs, reason) in [
        (hostinfo::own_addresses(), allow_reason::OWN_ADDRESS),
        (hostinfo::default_gateways(), allow_reason::GATEWAY),
        (hostinfo::nameservers(), allow_reason::NAMESERVER),
    ] {
        nets.extend(addrs.into_iter().map(|a| (IpNet::host(a), reason)));
    }
    for (net, reason) in &nets {
        tables.allow(net, *reason).map_err(err)?;
        // Auto-blocks left from before (pinned, restored) must not outlive a new allow: the
        // kernel does not consult the allowlist for auto-blocked sources.
        tables.unblock_auto_within(net);
    }
    Ok(nets.len())
}

fn setup(cfg: &RunConfig, kernel: &KernelSettings, iface: &str) -> Result<(Interface, RingBuf<MapData>), DaemonError> {
    let lock = DaemonLock::acquire(&cfg.lock_dir, iface)?;
    // A block list whose pin had an older layout is made anew, empty: its blocks come back from
    // the state file, while the lists that were kept keep theirs.
    let mut block_list_discarded = false;
    let pin_dir = match &cfg.pin_root {
        Some(root) => {
            let dir = pins::prepare(root, iface)?;
            for l in maps::PINNED_LAYOUTS {
                let name = l.name;
                if let Some(note) = pins::drop_incompatible(&dir, name, l.key_size, l.value_size, l.max_entries) {
                    eprintln!("ipscan: {iface}: {note}");
                    block_list_discarded |= [maps::BLOCK4, maps::BLOCK6, maps::AUTOBLOCK].contains(&name);
                }
            }
            Some(dir)
        }
        None => None,
    };
    // Threat feed sets come back from their saved copies only into maps made now (a reboot, a
    // new layout); kept maps are the truth, also about sets removed while no daemon ran.
    let sets_kept = pin_dir.as_ref().is_some_and(|d| d.join(maps::FEEDSETS).exists());
    let load = |source| DaemonError::Load { iface: iface.to_owned(), source };
    let mut ebpf = loader::load_with_ring(
        &LoadOptions {
            replay_clock: false,
            pin_dir: pin_dir.clone(),
            verifier_log: cfg.verifier_log.clone(),
            test_refusal: cfg.test_refusal,
        },
        cfg.event_ring_bytes,
    )
    .map_err(|e| {
        // The load took its new pins away; a directory it leaves empty goes too, so that
        // nothing reads as a daemon's state on this interface (a kept one is not empty), and
        // so does the pin root if no other interface has a directory there.
        if let Some(dir) = &pin_dir {
            let _ = std::fs::remove_dir(dir);
            if let Some(root) = dir.parent() {
                let _ = std::fs::remove_dir(root);
            }
        }
        load(e)
    })?;
    let kept = pin_dir.as_ref().map(|d| pins::Kept::open(d, &maps::PINNED)).transpose()?;
    kernel.apply(&mut ebpf).map_err(|source| DaemonError::Apply { iface: iface.to_owned(), source })?;
    let sources: BpfHashMap<MapData, SourceKey, SourceState> = take_map(&mut ebpf, iface, maps::SOURCES)?;
    let ring: RingBuf<MapData> = take_map(&mut ebpf, iface, maps::EVENTS)?;
    let listen_map = if cfg.settings.blackhole_tcp || cfg.settings.blackhole_udp {
        let mut m: BpfHashMap<MapData, u32, u8> = take_map(&mut ebpf, iface, maps::LISTEN)?;
        listen::sync(&mut m, &listen::current());
        Some(m)
    } else {
        None
    };
    let mut tables =
        Tables::from_ebpf(&mut ebpf).map_err(|source| DaemonError::Table { iface: iface.to_owned(), source })?;
    // Notes are printed once attached: a failure must stay a single line.
    let mut notes = Vec::new();
    if !kernel.tripwire_ports.is_empty() {
        let listening = listen::current();
        for key in kernel.tripwire_ports.iter().filter(|k| listening.contains(k)) {
            let proto = if key >> 16 == u32::from(ipscan_common::packet::PROTO_TCP) { "tcp" } else { "udp" };
            notes.push(format!(
                "ipscan: {iface}: tripwire {proto} {} has a listening socket: each of its clients will be reported",
                key & 0xffff
            ));
        }
    }
    let allowed = populate_allowlist(&mut tables, &cfg.settings, iface)?;
    notes.push(format!(
        "ipscan: {iface}: {allowed} allowlisted prefixes (configured, own addresses, gateways, nameservers)"
    ));
    let state_file = persist::state_file(&cfg.state_dir, iface);
    // Pinned maps that survived (a restart) are the truth; empty ones after a reboot are
    // refilled from the state file, and so are lists made anew for a new layout (then only
    // with the blocks that are not in the maps).
    let empty = tables.blocks_empty();
    if empty || block_list_discarded {
        match persist::restore(&mut tables, &state_file, monotonic_ns(), !empty) {
            Ok(r) if r.blocks + r.allows > 0 => notes.push(format!(
                "ipscan: {iface}: restored {} blocks and {} allows from {} ({} had expired){}",
                r.blocks,
                r.allows,
                state_file.display(),
                r.expired,
                if r.spilled == 0 {
                    String::new()
                } else {
                    format!(
                        "; {} auto-blocks went to the blocklist as host prefixes (their AUTOBLOCK sets were full)",
                        r.spilled
                    )
                }
            )),
            Ok(_) => {}
            Err(e) => notes.push(format!("ipscan: {iface}: not restoring blocks: {}", loader::error_chain(&e))),
        }
    }
    if let Some(dir) = &pin_dir {
        tables.lock_feeds_on(dir);
    }
    let (sets, note) = sets::SetWatch::start(&mut tables, &cfg.state_dir, iface, sets_kept, monotonic_ns());
    if let Some(note) = note {
        notes.push(format!("ipscan: {iface}: {note}"));
    }
    // Restored auto-blocks of sources that are allowlisted now do not come back.
    for a in tables.allows() {
        tables.unblock_auto_within(&a.net);
    }
    // Tell the kernel which block lists hold entries before the first packet.
    let mut config = kernel.config;
    config.flags |= tables.presence_flags();
    if config.flags != kernel.config.flags {
        loader::write_config(&mut ebpf, &config).map_err(load)?;
    }
    // `promisc NET,...`: watch other hosts of those networks, so the NIC must pass their frames.
    let promisc = if cfg.settings.promisc.is_empty() {
        None
    } else {
        match promiscuous(iface) {
            Ok(p) => {
                notes.push(format!("ipscan: {iface}: promiscuous mode on (promisc networks configured)"));
                Some(p)
            }
            Err(e) => {
                notes.push(format!("ipscan: {iface}: cannot enter promiscuous mode: {e}"));
                None
            }
        }
    };
    let attached = loader::attach(&mut ebpf, iface, cfg.mode)?;
    let wants_egress = cfg.settings.wants_rejects();
    let egress = if wants_egress {
        match loader::attach_egress(&mut ebpf, iface) {
            Ok(link) => Some(link),
            Err(e) => {
                let _ = loader::detach(&mut ebpf, attached.link);
                return Err(e.into());
            }
        }
    } else {
        None
    };
    match &attached.fallback {
        Some(why) => eprintln!("ipscan: {iface}: native XDP not available ({why}); attached in skb mode"),
        None => eprintln!("ipscan: attached to {iface} ({} mode)", attached.mode),
    }
    if egress.is_some() {
        eprintln!("ipscan: {iface}: {}", counting_note(&cfg.settings));
    }
    for n in notes {
        eprintln!("{n}");
    }
    let mut tracker = Tracker::new(cfg.settings.flags.log_dest);
    tracker.set_config(&kernel.config);
    tracker.set_escalation(&cfg.settings.escalation);
    match persist::offenders(&state_file, monotonic_ns()) {
        Ok(saved) => saved.into_iter().for_each(|(addr, r)| tracker.offenders.insert(addr, r)),
        Err(e) => eprintln!("ipscan: {iface}: not restoring repeat offenders: {}", loader::error_chain(&e)),
    }
    tracker.forget_offenders(monotonic_ns());
    // Modes the kernel kept across a restart (pinned SOURCES) still get their expiry line.
    let adopted = sources.iter().filter_map(Result::ok).filter(|(k, s)| tracker.adopt(*k, s)).count();
    if adopted > 0 {
        eprintln!("ipscan: {iface}: {adopted} active modes taken over from the pinned state");
    }
    let loss_base = match stats::stats_of(&ebpf).and_then(|m| stats::counters(&m)) {
        Ok(c) => Loss::of(&c),
        Err(e) => {
            eprintln!("ipscan: {iface}: {}", loader::error_chain(&e));
            Loss::default()
        }
    };
    Ok((
        Interface {
            name: iface.to_owned(),
            ebpf,
            link: Some(attached.link),
            egress,
            wants_egress,
            sources,
            tables,
            sets,
            listen: listen_map,
            tracker,
            state_file,
            written_flags: config.flags,
            _promisc: promisc,
            _lock: lock,
            ifindex: loader::if_index(iface),
            detections: BTreeMap::new(),
            loss_base,
            loss_reported: Loss::default(),
            reattach_error: None,
            pins: kept,
            repin_error: None,
        },
        ring,
    ))
}

/// [`Output::line`], its failure as the daemon's.
fn write_line(out: &mut Output, line: &Line) -> Result<(), DaemonError> {
    out.line(line).map_err(|source| DaemonError::Write { source })
}

/// A repeat offender's block ([`crate::offenders`]): the kernel made it for the detection's
/// block time; the line says how long it lasts, and this makes the kernel's entry say so too.
fn lengthen_repeat_block(a: &mut Interface, line: &Line) {
    let m = &line.meta;
    let (Some(src), Some(ns), Some(2..)) = (m.src, m.block_ns, m.offence) else {
        return;
    };
    if !matches!(m.event, Some(json::Event::Blocked | json::Event::WouldBlock)) {
        return;
    }
    if !a.tables.set_auto_expiry(src, line.at_ns, line.at_ns.saturating_add(ns)) {
        eprintln!(
            "ipscan: {}: the block of {src} went before it could be lengthened to {} s",
            a.name,
            ns / 1_000_000_000
        );
    }
}

/// Keeps the kernel's "look at the block lists" flags in step with the lists (the CLI sets
/// them on add; only the daemon clears them).
fn sync_flags(a: &mut Interface, kernel: &KernelSettings) {
    let mut want = kernel.config;
    want.flags |= a.tables.presence_flags();
    if want.flags != a.written_flags {
        if let Err(e) = loader::write_config(&mut a.ebpf, &want) {
            eprintln!("ipscan: {}: updating CONFIG: {}", a.name, loader::error_chain(&e));
        }
        a.written_flags = want.flags;
    }
}

/// One answer of the CrowdSec decision stream, applied to every interface's blocklist.
fn apply_decisions(
    ifaces: &mut [Interface],
    decisions: &mut crowdsec::decisions::Decisions,
    pulled: &crowdsec::Pulled,
    kernel: &KernelSettings,
    out: &mut Output,
) -> Result<(), DaemonError> {
    let now = monotonic_ns();
    let dry_run = kernel.config.has(global_flags::DRY_RUN);
    let changes = decisions.apply(&pulled.stream, pulled.startup, now);
    for a in ifaces.iter_mut() {
        let mut lines = match crowdsec::apply(&mut a.tables, &changes, now, dry_run) {
            Ok(lines) => lines,
            Err(e) => {
                eprintln!("ipscan: {}: crowdsec: {}", a.name, loader::error_chain(&e));
                Vec::new()
            }
        };
        if pulled.startup {
            lines.extend(crowdsec::reconcile(&mut a.tables, decisions, now, dry_run));
        }
        sync_flags(a, kernel);
        for line in &lines {
            write_line(out, line)?;
        }
    }
    Ok(())
}

/// A detection line as a CrowdSec alert, unless `crowdsec push` leaves its detection out or
/// its source is allowlisted here (the fleet would block it everywhere else).
fn push_alert(a: &Interface, line: &Line, cs: &CrowdSec, kernel: &KernelSettings, out: &Output) -> Option<Alert> {
    let (Some(json::Event::Detected), Some(d), Some(src)) = (line.meta.event, line.meta.detection, line.meta.src)
    else {
        return None;
    };
    if !cs.pushes(d) || a.tables.allows().iter().any(|r| r.net.contains(&src)) {
        return None;
    }
    let c = kernel.config.detection(d);
    let at = out.clock.wall(line.at_ns).to_utc().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let dry_run = kernel.config.has(global_flags::DRY_RUN);
    Some(crowdsec::alert(line, d, src, &at, u64::from(c.threshold), c.window_ns / 1_000_000_000, dry_run))
}

fn save_state(a: &Interface) {
    if let Err(e) = persist::save(&a.tables, &a.tracker.offenders, &a.state_file, monotonic_ns()) {
        let e: PersistError = e;
        eprintln!("ipscan: {}: saving blocks: {}", a.name, loader::error_chain(&e));
    }
}

/// Runs until SIGINT or SIGTERM; detaches on the way out.
pub async fn run(cfg: RunConfig) -> Result<(), DaemonError> {
    // First: a SIGINT or SIGTERM from here on, also while the program loads and attaches, ends
    // the daemon through its shutdown (state saved, detached) at the first turn of the loop.
    let mut sigint = signal(SignalKind::interrupt())
        .map_err(|source| DaemonError::Io { what: "installing the SIGINT handler", source })?;
    let mut sigterm = signal(SignalKind::terminate())
        .map_err(|source| DaemonError::Io { what: "installing the SIGTERM handler", source })?;
    let mut sighup = signal(SignalKind::hangup())
        .map_err(|source| DaemonError::Io { what: "installing the SIGHUP handler", source })?;
    let sink = match &cfg.log {
        LogTarget::File(path) => {
            Sink::file(path).map_err(|source| DaemonError::LogFile { path: path.clone(), source })?
        }
        LogTarget::Stdout => Sink::stdout(),
        LogTarget::Syslog(socket) => Sink::syslog(Syslog::open(
            socket,
            cfg.settings.facility.as_deref().unwrap_or(syslog::DEFAULT_FACILITY),
            cfg.settings.priority.as_deref().unwrap_or(syslog::DEFAULT_PRIORITY),
        )?),
    };
    let json = match &cfg.json_log {
        Some(path) => Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| DaemonError::LogFile { path: path.clone(), source })?,
        ),
        None => None,
    };
    // Check every interface before touching any, so a typo attaches nothing.
    for iface in &cfg.ifaces {
        if loader::if_index(iface).is_none() {
            return Err(loader::AttachError::NoInterface { iface: iface.clone() }.into());
        }
    }
    let mut kernel = KernelSettings::load(&cfg.settings)?;
    if kernel.config.has(global_flags::DRY_RUN) {
        eprintln!("ipscan: {DRY_RUN_NOTICE}");
    }
    // Bound before anything is attached: a taken port is a one-line error that changes nothing.
    let metrics_listener = match cfg.metrics {
        Some(addr) => Some((metrics::bind(addr).await?, addr)),
        None => None,
    };

    let cs = cfg.settings.crowdsec.clone();
    let secrets = crowdsec::Secrets::read(&cs)?;

    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Event)>();
    let mut ifaces: Vec<Interface> = Vec::new();
    for (i, iface) in cfg.ifaces.iter().enumerate() {
        let (attached, ring) = setup(&cfg, &kernel, iface)?;
        spawn_reader(i, iface.clone(), ring, tx.clone())?;
        ifaces.push(attached);
    }
    drop(tx);
    let (mut decisions, mut pulled_rx, alerts) = start_crowdsec(&cs, secrets)?;
    let (scrape_tx, mut scrape_rx) = mpsc::channel::<metrics::Request>(8);
    let metrics_on = metrics_listener.is_some();
    if let Some((listener, addr)) = metrics_listener {
        tokio::spawn(metrics::serve(listener, scrape_tx));
        eprintln!("ipscan: metrics on http://{addr}/metrics");
    }
    // Interfaces that vanish are waited for, never a reason to exit: netlink says at once, and
    // the 1 s tick looks again in case a notification was lost.
    let links = match netlink::LinkWatch::open() {
        Ok(w) => Some(w),
        Err(e) => {
            eprintln!("ipscan: {e}; looking for vanished interfaces once a second instead");
            None
        }
    };
    let mut links_ok = links.is_some();
    let loss_every = cfg.loss_report.as_secs().max(1);

    let mut out = Output { sink, json, clock: WallClock::now() };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut ticks: u64 = 0;
    let mut namer = namer(&cfg.settings);
    let bouncer_on = cs.bouncer.is_some();
    let mut alerts_dropped: u64 = 0;

    loop {
        tokio::select! {
            ev = rx.recv() => {
                let Some((i, ev)) = ev else { break };
                let Some(a) = ifaces.get_mut(i) else { continue };
                // Counted from the event: a detection folded into its twin's mode has no line.
                if ev.kind() == Some(EventKind::Detected)
                    && let Some(d) = Detection::from_u8(ev.detection)
                {
                    *a.detections.entry(d.names().label).or_default() += 1;
                }
                if let Some(line) = a.tracker.on_event(&ev, &mut *namer) {
                    lengthen_repeat_block(a, &line);
                    write_line(&mut out, &line)?;
                    if let Some(tx) = &alerts
                        && let Some(alert) = push_alert(a, &line, &cs, &kernel, &out)
                        && tx.try_send(alert).is_err()
                    {
                        alerts_dropped += 1;
                        if alerts_dropped.is_power_of_two() {
                            eprintln!("ipscan: crowdsec: {alerts_dropped} alerts left out (the LAPI is not keeping up)");
                        }
                    }
                }
            }
            _ = tick.tick() => {
                ticks += 1;
                let now = monotonic_ns();
                for a in &mut ifaces {
                    let Interface { sources, tracker, tables, sets, listen: listen_map, .. } = a;
                    let mut doomed = Vec::new();
                    let lines = tracker.sweep(
                        now,
                        &kernel.config,
                        &mut *namer,
                        |k| sources.get(k, 0).ok(),
                        |k| doomed.push(*k),
                    );
                    for k in doomed {
                        let _ = sources.remove(&k);
                    }
                    for line in lines {
                        write_line(&mut out, &line)?;
                    }
                    // Marks of buckets whose auto-blocks went (expired, lifted, given up by the
                    // kernel) are taken away every few seconds: a stale mark costs its senders
                    // the AUTOBLOCK lookup.
                    if ticks.is_multiple_of(UNMARK_EVERY_TICKS) {
                        tables.unmark_unused();
                    }
                    let dry_run = kernel.config.has(global_flags::DRY_RUN);
                    for row in tables.sweep(now) {
                        let src = row.net.addr();
                        let shown = tables::show(&row.net);
                        write_line(&mut out, &Line {
                            at_ns: now,
                            text: format::unblock(dry_run, &shown, row.entry.packets, row.entry.bytes),
                            detected: None,
                            meta: crate::log::tracker::Meta {
                                event: Some(if dry_run { json::Event::WouldUnblock } else { json::Event::Unblocked }),
                                src: Some(src),
                                packets: Some(row.entry.packets),
                                bytes: Some(row.entry.bytes),
                                detection: row.entry.detection(),
                                ..Default::default()
                            },
                        })?;
                    }
                    for text in sets.tick(tables, now) {
                        write_line(&mut out, &Line::plain(now, text))?;
                    }
                    if let Some(m) = listen_map {
                        listen::sync(m, &listen::current());
                    }
                    sync_flags(a, &kernel);
                }
                ifaces.iter_mut().for_each(repin);
                if ticks.is_multiple_of(10) {
                    for a in &mut ifaces {
                        a.tracker.forget_offenders(now);
                        save_state(a);
                    }
                }
                check_links(&mut ifaces, cfg.mode);
                if ticks.is_multiple_of(loss_every) {
                    report_loss(&mut ifaces, &mut out, false)?;
                }
            }
            req = scrape_rx.recv(), if metrics_on => {
                if let Some(reply) = req {
                    let _ = reply.send(scrape(&ifaces, bouncer_on.then(|| decisions.len() as u64)));
                }
            }
            got = next_links(links.as_ref()), if links_ok => {
                if let Err(e) = got {
                    eprintln!("ipscan: {e}; looking for vanished interfaces once a second instead");
                    links_ok = false;
                }
                check_links(&mut ifaces, cfg.mode);
            }
            Some(pulled) = pulled_rx.recv(), if bouncer_on => {
                apply_decisions(&mut ifaces, &mut decisions, &pulled, &kernel, &mut out)?;
            }
            _ = sighup.recv() => {
                if let Err(e) = out.sink.reopen() {
                    eprintln!("ipscan: reopening the log: {e}");
                }
                if let Some(path) = &cfg.config_path {
                    reload(path, cfg.dry_run, &cs, &mut ifaces, &mut kernel, &mut namer);
                }
            }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
    }

    // The sets as they are at the end: what changed since the last tick is logged and saved.
    let now = monotonic_ns();
    for a in &mut ifaces {
        for text in a.sets.tick(&mut a.tables, now) {
            write_line(&mut out, &Line::plain(now, text))?;
        }
    }
    report_loss(&mut ifaces, &mut out, true)?;
    let _ = out.sink.finish(&Local::now());
    for a in &mut ifaces {
        save_state(a);
        if let Some(link) = a.egress.take()
            && let Err(e) = loader::detach_egress(&mut a.ebpf, link)
        {
            eprintln!("ipscan: detaching the egress program from {}: {e}", a.name);
        }
        if let Some(link) = a.link.take() {
            match loader::detach(&mut a.ebpf, link) {
                Ok(()) => eprintln!("ipscan: detached from {}", a.name),
                Err(e) => eprintln!("ipscan: detaching from {}: {e}", a.name),
            }
        }
    }
    Ok(())
}

/// What the egress program is attached for: `counting confirmed`, the rejected probes, or both.
fn counting_note(settings: &Settings) -> &'static str {
    if settings.confirmed {
        "counting confirmed: the port scan and the UDP scan count the probes this host rejects (egress program attached)"
    } else {
        "the egress program is attached: rejected probes are counted from this host's resets and ICMP unreachables"
    }
}

/// Attaches or detaches the egress program as the configuration now wants it.
fn egress_as_wanted(a: &mut Interface) {
    if a.wants_egress && a.egress.is_none() && a.ifindex.is_some() {
        match loader::attach_egress(&mut a.ebpf, &a.name) {
            Ok(link) => {
                a.egress = Some(link);
                eprintln!("ipscan: {}: egress program attached", a.name);
            }
            Err(e) => eprintln!("ipscan: {}: {}", a.name, loader::error_chain(&e)),
        }
    } else if !a.wants_egress
        && let Some(link) = a.egress.take()
    {
        match loader::detach_egress(&mut a.ebpf, link) {
            Ok(()) => eprintln!("ipscan: {}: egress program detached", a.name),
            Err(e) => eprintln!("ipscan: {}: detaching the egress program: {e}", a.name),
        }
    }
}

/// SIGHUP: re-reads the configuration and rewrites CONFIG, RULES and PROMISC in every attached
/// program. SOURCES is left alone, so windows and modes carry on under the new thresholds. An
/// invalid file changes nothing: one line on stderr, and the old configuration stays.
fn reload(
    path: &Path,
    dry_run: bool,
    crowdsec: &CrowdSec,
    ifaces: &mut [Interface],
    kernel: &mut KernelSettings,
    namer: &mut Box<dyn Namer>,
) {
    let loaded = Settings::load(path)
        .map(|mut s| {
            s.flags.dry_run |= dry_run;
            s
        })
        .map_err(|e| loader::error_chain(&e))
        .and_then(|s| KernelSettings::load(&s).map(|k| (s, k)).map_err(|e| e.to_string()));
    let (settings, next) = match loaded {
        Ok(v) => v,
        Err(e) => {
            eprintln!("ipscan: reload failed, keeping the running configuration: {e}");
            return;
        }
    };
    for a in ifaces.iter_mut() {
        // The sweep rewrites CONFIG with the block-list flags on its next tick.
        a.written_flags = 0;
        if let Err(e) = next.apply(&mut a.ebpf) {
            eprintln!("ipscan: {}: reload: {}", a.name, loader::error_chain(&e));
        }
        a.tracker.log_dest = settings.flags.log_dest;
        a.tracker.set_config(&next.config);
        a.tracker.set_escalation(&settings.escalation);
        a.wants_egress = settings.wants_rejects();
        egress_as_wanted(a);
    }
    let was_dry = kernel.config.has(global_flags::DRY_RUN);
    *kernel = next;
    *namer = self::namer(&settings);
    eprintln!("ipscan: reloaded {}", path.display());
    if settings.crowdsec != *crowdsec {
        eprintln!("ipscan: the crowdsec statements take effect at the next start");
    }
    match (was_dry, kernel.config.has(global_flags::DRY_RUN)) {
        (false, true) => eprintln!("ipscan: {DRY_RUN_NOTICE}"),
        (true, false) => eprintln!("ipscan: dry run over: blocked sources are dropped"),
        _ => {}
    }
}

/// The CrowdSec threads that the configuration asks for: the bouncer's answers come on the
/// returned receiver, the machine takes alerts on the returned sender. `secrets` were read
/// before anything was attached, so that a missing file is a one-line error that changes nothing.
type CrowdSecStart =
    (crowdsec::decisions::Decisions, mpsc::Receiver<crowdsec::Pulled>, Option<std::sync::mpsc::SyncSender<Alert>>);

fn start_crowdsec(cs: &CrowdSec, secrets: crowdsec::Secrets) -> Result<CrowdSecStart, DaemonError> {
    let (tx, rx) = mpsc::channel(4);
    if let (Some(b), Some(key)) = (&cs.bouncer, secrets.key) {
        crowdsec::spawn_bouncer(b, key, secrets.tls.clone(), Duration::from_nanos(cs.poll_ns), tx)?;
        eprintln!("ipscan: crowdsec: bouncer of {}, every {} s", b.url, cs.poll_ns / 1_000_000_000);
    }
    let alerts = match (&cs.machine, secrets.password) {
        (Some(m), Some(password)) => {
            let (atx, arx) = std::sync::mpsc::sync_channel(ALERT_QUEUE);
            crowdsec::spawn_machine(m, password, secrets.tls, arx)?;
            eprintln!("ipscan: crowdsec: sending detections to {} as machine {}", m.url, m.login);
            Some(atx)
        }
        _ => None,
    };
    Ok((crowdsec::decisions::Decisions::default(), rx, alerts))
}

/// Moves ring-buffer records to the main loop as they arrive.
fn spawn_reader(
    idx: usize,
    iface: String,
    ring: RingBuf<MapData>,
    tx: mpsc::UnboundedSender<(usize, Event)>,
) -> Result<(), DaemonError> {
    // SAFETY: the ring buffer owns its fd and lives inside the AsyncFd until both drop together.
    let mut fd = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(|e| DaemonError::Io { what: "polling the event ring buffer", source: std::io::Error::from(e) })?;
    tokio::spawn(async move {
        loop {
            let mut guard = match fd.readable_mut().await {
                Ok(g) => g,
                Err(e) => {
                    eprintln!("ipscan: {iface}: event ring buffer: {e}");
                    return;
                }
            };
            let ring = guard.get_inner_mut();
            while let Some(item) = ring.next() {
                if let Some(ev) = decode(&item)
                    && tx.send((idx, ev)).is_err()
                {
                    return;
                }
            }
            guard.clear_ready();
        }
    });
    Ok(())
}

/// Waits for link notifications (never, without a socket).
async fn next_links(links: Option<&netlink::LinkWatch>) -> Result<Vec<netlink::LinkEvent>, netlink::NetlinkError> {
    match links {
        Some(w) => w.next().await,
        None => std::future::pending().await,
    }
}

/// Notices interfaces that went away or came back. A deleted interface takes its XDP link with
/// it; when an interface of that name exists again (a new ifindex) the same loaded program, with
/// the same pinned maps, is attached to it.
fn check_links(ifaces: &mut [Interface], mode: AttachMode) {
    for a in ifaces.iter_mut() {
        let now = loader::if_index(&a.name);
        if a.ifindex.is_some() && a.ifindex != now {
            if let Some(link) = a.link.take() {
                // The kernel has detached it already; this only releases the link.
                let _ = loader::detach(&mut a.ebpf, link);
            }
            if let Some(link) = a.egress.take() {
                let _ = loader::detach_egress(&mut a.ebpf, link);
            }
            a.ifindex = None;
            eprintln!("ipscan: {}: interface is gone; waiting for it", a.name);
        }
        if a.ifindex.is_none() && now.is_some() {
            match loader::attach(&mut a.ebpf, &a.name, mode) {
                Ok(at) => {
                    a.link = Some(at.link);
                    a.ifindex = loader::if_index(&a.name);
                    a.reattach_error = None;
                    eprintln!("ipscan: re-attached to {} ({} mode)", a.name, at.mode);
                    egress_as_wanted(a);
                }
                Err(e) => {
                    let why = loader::error_chain(&e);
                    if a.reattach_error.as_deref() != Some(why.as_str()) {
                        eprintln!("ipscan: {}: cannot re-attach yet: {why}", a.name);
                        a.reattach_error = Some(why);
                    }
                }
            }
        }
    }
}

/// Logs lost events and left-out per-packet lines since start: periodically when they grew,
/// and at exit when there were any. The counts are the kernel's (STATS), not estimates.
fn report_loss(ifaces: &mut [Interface], out: &mut Output, at_exit: bool) -> Result<(), DaemonError> {
    for a in ifaces.iter_mut() {
        let counters = match stats::stats_of(&a.ebpf).and_then(|m| stats::counters(&m)) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("ipscan: {}: {}", a.name, loader::error_chain(&e));
                continue;
            }
        };
        let loss = Loss::of(&counters).since(a.loss_base);
        let grew = loss != a.loss_reported;
        if (grew || at_exit) && !loss.is_zero() {
            a.loss_reported = loss;
            write_line(
                out,
                &Line {
                    at_ns: monotonic_ns(),
                    text: loss.line(&a.name),
                    detected: None,
                    meta: crate::log::tracker::Meta::default(),
                },
            )?;
        }
    }
    Ok(())
}

/// What the metrics endpoint shows, read now.
/// `crowdsec`: the prefixes CrowdSec decisions hold (with `crowdsec bouncer`).
fn scrape(ifaces: &[Interface], crowdsec: Option<u64>) -> metrics::Scrape {
    ifaces
        .iter()
        .map(|a| {
            let kernel = stats::stats_of(&a.ebpf)
                .and_then(|m| stats::snapshot(&m, &a.sources, &a.tables, stats::probation_of(&a.ebpf)?));
            let kernel = match kernel {
                Ok(k) => Some(k),
                Err(e) => {
                    eprintln!("ipscan: {}: metrics: {}", a.name, loader::error_chain(&e));
                    None
                }
            };
            let mut active: BTreeMap<&'static str, u64> = BTreeMap::new();
            for d in a.tracker.active_detections() {
                *active.entry(d.names().label).or_default() += 1;
            }
            metrics::IfaceScrape {
                iface: a.name.clone(),
                attached: a.ifindex.is_some(),
                kernel,
                detections: a.detections.clone(),
                active,
                offenders: a.tracker.offenders.len() as u64,
                offenders_forgotten: a.tracker.offenders.forgotten,
                crowdsec,
            }
        })
        .collect()
}

/// Per-interface counts for the summary at exit and `ipscan stats`.
pub type Counters = HashMap<&'static str, u64>;

/// The default pin root, lock dir and state dir as paths.
pub fn default_paths() -> (PathBuf, PathBuf, PathBuf) {
    (
        Path::new(pins::DEFAULT_PIN_ROOT).to_owned(),
        Path::new(pins::LOCK_DIR).to_owned(),
        Path::new(persist::DEFAULT_STATE_DIR).to_owned(),
    )
}
