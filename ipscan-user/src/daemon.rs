//! `ipscan run`: attach to interfaces, read events, write log lines, sweep expiries.

use std::{
    collections::HashMap,
    path::PathBuf,
    time::Duration,
};

use aya::{
    Ebpf,
    maps::{HashMap as BpfHashMap, MapData, RingBuf},
};
use chrono::{DateTime, Local};
use ipscan_common::{Config, Event, SourceKey, SourceState, maps};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};

use crate::{
    config::Settings,
    kconfig::{KconfigError, KernelSettings},
    loader::{self, AttachMode, LoadError, LoadOptions},
    resolve::Resolver,
    sink::Sink,
    syslog::{self, Syslog, SyslogError},
    tracker::{Namer, Plain, Tracker},
};

/// Where log lines go.
#[derive(Clone, Debug)]
pub enum LogTarget {
    File(PathBuf),
    Stdout,
    /// RFC 3164 datagrams to this socket, with the config's facility and priority.
    Syslog(PathBuf),
}

/// Everything `ipscan run` needs, already validated.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub ifaces: Vec<String>,
    pub kernel: Config,
    pub log: LogTarget,
    pub mode: AttachMode,
    pub log_dest: bool,
    /// The parsed configuration: rules, promisc networks, switches and names for the kernel
    /// (through [`KernelSettings`]) and for the log (log_ip, facility, ...). `kernel` above
    /// is its CONFIG value and wins over what `settings` would give.
    pub settings: Settings,
    /// Re-read on SIGHUP; `None`: SIGHUP only reopens the log.
    pub config_path: Option<PathBuf>,
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
    #[error("writing the log: {source}")]
    Write {
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Converts kernel monotonic nanoseconds to local wall time, with an offset taken at start.
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    offset_ns: i128,
}

impl WallClock {
    pub fn now() -> Self {
        let mono = monotonic_ns() as i128;
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        Self {
            offset_ns: real - mono,
        }
    }

    /// A clock whose zero is the Unix epoch (replay uses capture timestamps directly).
    pub fn epoch() -> Self {
        Self { offset_ns: 0 }
    }

    pub fn wall(&self, kernel_ns: u64) -> DateTime<Local> {
        let t = kernel_ns as i128 + self.offset_ns;
        let secs = t.div_euclid(1_000_000_000) as i64;
        let nanos = t.rem_euclid(1_000_000_000) as u32;
        DateTime::from_timestamp(secs, nanos)
            .unwrap_or_default()
            .with_timezone(&Local)
    }
}

/// CLOCK_MONOTONIC in nanoseconds, the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One attached interface.
struct Attached {
    name: String,
    ebpf: Ebpf,
    link: Option<aya::programs::xdp::XdpLinkId>,
    sources: BpfHashMap<MapData, SourceKey, SourceState>,
    tracker: Tracker,
}

fn take_sources(ebpf: &mut Ebpf, iface: &str) -> Result<BpfHashMap<MapData, SourceKey, SourceState>, DaemonError> {
    let map = ebpf.take_map(maps::SOURCES).ok_or_else(|| DaemonError::Load {
        iface: iface.to_owned(),
        source: LoadError::MissingMap { name: maps::SOURCES },
    })?;
    BpfHashMap::try_from(map).map_err(|source| DaemonError::Map {
        iface: iface.to_owned(),
        map: maps::SOURCES,
        source,
    })
}

fn take_events(ebpf: &mut Ebpf, iface: &str) -> Result<RingBuf<MapData>, DaemonError> {
    let map = ebpf.take_map(maps::EVENTS).ok_or_else(|| DaemonError::Load {
        iface: iface.to_owned(),
        source: LoadError::MissingMap { name: maps::EVENTS },
    })?;
    RingBuf::try_from(map).map_err(|source| DaemonError::Map {
        iface: iface.to_owned(),
        map: maps::EVENTS,
        source,
    })
}

/// Reads one raw ring-buffer record as an [`Event`].
pub fn decode(bytes: &[u8]) -> Option<Event> {
    if bytes.len() < size_of::<Event>() {
        return None;
    }
    // SAFETY: Event is plain old data of this size; read_unaligned copes with any alignment.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Event>()) })
}

/// Runs until SIGINT or SIGTERM; detaches on the way out.
pub async fn run(cfg: RunConfig) -> Result<(), DaemonError> {
    let mut sink = match &cfg.log {
        LogTarget::File(path) => Sink::file(path).map_err(|source| DaemonError::LogFile {
            path: path.clone(),
            source,
        })?,
        LogTarget::Stdout => Sink::stdout(),
        LogTarget::Syslog(socket) => Sink::syslog(Syslog::open(
            socket,
            cfg.settings.facility.as_deref().unwrap_or(syslog::DEFAULT_FACILITY),
            cfg.settings.priority.as_deref().unwrap_or(syslog::DEFAULT_PRIORITY),
        )?),
    };
    let mut kernel = kernel_settings(&cfg.settings, Some(cfg.kernel))?;
    // Check every interface before touching any, so a typo attaches nothing.
    for iface in &cfg.ifaces {
        if loader::if_index(iface).is_none() {
            return Err(loader::AttachError::NoInterface { iface: iface.clone() }.into());
        }
    }

    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Event)>();
    let mut ifaces: Vec<Attached> = Vec::new();
    for (i, iface) in cfg.ifaces.iter().enumerate() {
        let mut ebpf = loader::load(&LoadOptions::default()).map_err(|source| DaemonError::Load {
            iface: iface.clone(),
            source,
        })?;
        kernel.apply(&mut ebpf).map_err(|source| DaemonError::Apply {
            iface: iface.clone(),
            source,
        })?;
        let sources = take_sources(&mut ebpf, iface)?;
        let ring = take_events(&mut ebpf, iface)?;
        let attached = loader::attach(&mut ebpf, iface, cfg.mode)?;
        match &attached.fallback {
            Some(why) => eprintln!(
                "ipscan: {iface}: native XDP not available ({why}); attached in skb mode"
            ),
            None => eprintln!("ipscan: attached to {iface} ({} mode)", attached.mode),
        }
        spawn_reader(i, iface.clone(), ring, tx.clone())?;
        ifaces.push(Attached {
            name: iface.clone(),
            ebpf,
            link: Some(attached.link),
            sources,
            tracker: Tracker::new(cfg.log_dest),
        });
    }
    drop(tx);

    let clock = WallClock::now();
    let mut sigint = signal(SignalKind::interrupt()).map_err(|source| DaemonError::Io {
        what: "installing the SIGINT handler",
        source,
    })?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(|source| DaemonError::Io {
        what: "installing the SIGTERM handler",
        source,
    })?;
    let mut sighup = signal(SignalKind::hangup()).map_err(|source| DaemonError::Io {
        what: "installing the SIGHUP handler",
        source,
    })?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut namer = namer(&cfg.settings);

    loop {
        tokio::select! {
            ev = rx.recv() => {
                let Some((i, ev)) = ev else { break };
                if let Some(a) = ifaces.get_mut(i)
                    && let Some(line) = a.tracker.on_event(&ev, &mut *namer)
                {
                    sink.line(&clock.wall(line.at_ns), &line.text)
                        .map_err(|source| DaemonError::Write { source })?;
                }
            }
            _ = tick.tick() => {
                let now = monotonic_ns();
                for a in &mut ifaces {
                    let Attached { sources, tracker, .. } = a;
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
                        sink.line(&clock.wall(line.at_ns), &line.text)
                            .map_err(|source| DaemonError::Write { source })?;
                    }
                }
            }
            _ = sighup.recv() => {
                if let Err(e) = sink.reopen() {
                    eprintln!("ipscan: reopening the log: {e}");
                }
                if let Some(path) = &cfg.config_path {
                    reload(path, &mut ifaces, &mut kernel, &mut namer);
                }
            }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
    }

    let _ = sink.finish(&Local::now());
    for a in &mut ifaces {
        if let Some(link) = a.link.take() {
            match loader::detach(&mut a.ebpf, link) {
                Ok(()) => eprintln!("ipscan: detached from {}", a.name),
                Err(e) => eprintln!("ipscan: detaching from {}: {e}", a.name),
            }
        }
    }
    Ok(())
}

/// The kernel side of `settings`; `config` (the caller's CONFIG value) replaces the computed
/// one, keeping the rule count of this computation.
fn kernel_settings(settings: &Settings, config: Option<Config>) -> Result<KernelSettings, KconfigError> {
    let mut k = KernelSettings::load(settings)?;
    if let Some(c) = config {
        k.config = Config { nrules: k.config.nrules, ..c };
    }
    Ok(k)
}

/// How sources are printed: `name (address)` with `set log_ip` unless the resolver is disabled.
fn namer(settings: &Settings) -> Box<dyn Namer> {
    if settings.flags.log_ip && !settings.flags.disable_resolver {
        Box::new(Resolver::system())
    } else {
        Box::new(Plain)
    }
}

/// SIGHUP: re-reads the configuration and rewrites CONFIG, RULES and PROMISC in every attached
/// program. SOURCES is left alone, so windows and modes carry on under the new thresholds. An
/// invalid file changes nothing: one line on stderr, and the old configuration stays.
fn reload(path: &std::path::Path, ifaces: &mut [Attached], kernel: &mut KernelSettings, namer: &mut Box<dyn Namer>) {
    let loaded = Settings::load(path)
        .map_err(|e| loader::error_chain(&e))
        .and_then(|s| kernel_settings(&s, None).map(|k| (s, k)).map_err(|e| e.to_string()));
    let (settings, next) = match loaded {
        Ok(v) => v,
        Err(e) => {
            eprintln!("ipscan: reload failed, keeping the running configuration: {e}");
            return;
        }
    };
    for a in ifaces.iter_mut() {
        if let Err(e) = next.apply(&mut a.ebpf) {
            eprintln!("ipscan: {}: reload: {}", a.name, loader::error_chain(&e));
        }
        a.tracker.log_dest = settings.flags.log_dest;
    }
    *kernel = next;
    *namer = self::namer(&settings);
    eprintln!("ipscan: reloaded {}", path.display());
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
        .map_err(|e| DaemonError::Io {
            what: "polling the event ring buffer",
            source: std::io::Error::from(e),
        })?;
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

/// Per-interface counts for the summary at exit and `ipscan stats`.
pub type Counters = HashMap<&'static str, u64>;
