//! `ipscan top`: a live view of what the kernel sees now, read from the daemons' pinned maps
//! (no round trip through the daemon).
//!
//! [`Reading::take`] reads the maps of every interface shown; [`view`] turns the previous and
//! the current snapshot into rows of text (pure: rates are deltas between the two, so it is
//! unit-tested without a kernel); [`run`] is the thin terminal loop around them.

use std::{
    collections::HashMap,
    io::{self, IsTerminal as _},
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use aya::maps::{Array, HashMap as BpfHashMap, Map, MapData, MapError, PerCpuArray};
use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ipscan_common::{Config, Detection, FAMILY_V4, SourceKey, SourceState, maps, stats, window::LOGGED_SPORTS};
use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    style::{Modifier, Style},
    text::Line,
    widgets::{Block, Cell, Paragraph, Row, Table},
};

use super::Daemons;
use crate::{
    clock::monotonic_ns,
    kernel::{
        feeds::SetRow,
        loader, pins,
        tables::{self, BlockRow, TableError, Tables},
    },
    log::format,
};

const NS_PER_SEC: u64 = 1_000_000_000;

/// Default time between two refreshes.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// Bounds of `--interval`: faster than 0.1 s only burns CPU on map walks, slower than an hour is
/// not a live view.
const INTERVAL_MIN_SECS: f64 = 0.1;
const INTERVAL_MAX_SECS: f64 = 3600.0;
/// How often the loop looks at the quit flag while it waits for a key.
const POLL_SLICE: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum TopError {
    #[error(transparent)]
    Pins(#[from] pins::PinError),
    #[error("cannot open {}: {source}", path.display())]
    Pin {
        path: PathBuf,
        #[source]
        source: MapError,
    },
    #[error("{iface}: map {name}: {source}")]
    Map {
        iface: String,
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error("{iface}: {source}")]
    Table {
        iface: String,
        /// Boxed: a map error with its path is large, and this error is returned on every refresh.
        #[source]
        source: Box<TableError>,
    },
    #[error("ipscan top needs a terminal (standard output is not one)")]
    NotATerminal,
    #[error("terminal: {source}")]
    Terminal {
        #[source]
        source: io::Error,
    },
}

/// `ipscan top`'s options.
#[derive(clap::Args, Debug)]
pub struct TopArgs {
    #[command(flatten)]
    daemons: Daemons,
    /// Seconds between refreshes (fractions allowed, 0.1 to 3600).
    #[arg(long, default_value = "1", value_parser = parse_interval)]
    interval: Duration,
}

/// `ipscan top`.
pub(super) fn command(args: TopArgs) -> anyhow::Result<()> {
    if !loader::has_bpf_privilege() {
        anyhow::bail!("reading the daemon's maps needs root or CAP_BPF");
    }
    run(&args.daemons, args.interval)?;
    Ok(())
}

/// `--interval`: seconds between refreshes, fractions allowed.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .trim_end_matches('s')
        .parse()
        .map_err(|_| format!("expected seconds, e.g. 1 or 0.5, not \"{text}\""))?;
    if !(INTERVAL_MIN_SECS..=INTERVAL_MAX_SECS).contains(&secs) {
        return Err(format!("must be between {INTERVAL_MIN_SECS} and {INTERVAL_MAX_SECS} seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A source in a scan or flood mode whose window has not lapsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActiveSource {
    pub key: SourceKey,
    pub state: SourceState,
}

/// What a SOURCES entry had counted, for rates: a new window (another `first_ns`) starts over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Count {
    first_ns: u64,
    packets: u64,
}

/// One interface's maps at one instant.
#[derive(Clone, Debug)]
pub struct IfaceReading {
    pub iface: String,
    /// Whether a daemon holds the interface's lock.
    pub running: bool,
    /// STATS slots summed over CPUs, indexed by `ipscan_common::stats` slot.
    pub stats: Vec<u64>,
    /// Sources in a mode, in map order.
    pub active: Vec<ActiveSource>,
    /// Blocklist and auto-block entries.
    pub blocks: Vec<BlockRow>,
    /// The threat feed sets, each one row of the block table.
    pub sets: Vec<SetRow>,
    /// Every SOURCES entry's window start and packets (rates of sources that just entered a mode).
    counts: HashMap<SourceKey, Count>,
    /// Sources on probation ([`crate::kernel::stats::probation`]): one port or packet so far.
    pub probation: u64,
}

impl IfaceReading {
    /// Builds the snapshot from map contents read at `now` (kernel clock): keeps the sources in
    /// a mode whose window, from `config`, has not lapsed. The daemon's sweep deletes lapsed
    /// ones within a second; until then they are history, not "now".
    pub fn from_parts(
        iface: String,
        running: bool,
        stats: Vec<u64>,
        config: &Config,
        sources: impl IntoIterator<Item = (SourceKey, SourceState)>,
        blocks: Vec<BlockRow>,
        now: u64,
    ) -> Self {
        let mut active = Vec::new();
        let mut counts = HashMap::new();
        for (key, state) in sources {
            counts.insert(key, Count { first_ns: state.first_ns, packets: state.packets });
            let Some(d) = key.detection() else { continue };
            if state.in_mode() && !state.lapsed(now, config.detection(d).window_ns) {
                active.push(ActiveSource { key, state });
            }
        }
        Self { iface, running, stats, active, blocks, sets: Vec::new(), counts, probation: 0 }
    }

    fn stat(&self, slot: u32) -> u64 {
        self.stats.get(slot as usize).copied().unwrap_or(0)
    }
}

/// Every shown interface's maps at one instant.
#[derive(Clone, Debug)]
pub struct Reading {
    /// Kernel clock (CLOCK_MONOTONIC) when the read began.
    pub at_ns: u64,
    pub ifaces: Vec<IfaceReading>,
}

fn open_pinned(dir: &Path, name: &'static str) -> Result<Map, TopError> {
    let path = dir.join(name);
    let data = MapData::from_pin(&path).map_err(|source| TopError::Pin { path: path.clone(), source })?;
    Map::from_map_data(data).map_err(|source| TopError::Pin { path, source })
}

fn read_iface(place: &Daemons, iface: &str, now: u64) -> Result<IfaceReading, TopError> {
    let dir = place.dir(iface);
    let map_err = |name| move |source| TopError::Map { iface: iface.to_owned(), name, source };
    let config: Array<MapData, Config> =
        Array::try_from(open_pinned(&dir, maps::CONFIG)?).map_err(map_err(maps::CONFIG))?;
    let config = config.get(&0, 0).map_err(map_err(maps::CONFIG))?;
    let stats_map: PerCpuArray<MapData, u64> =
        PerCpuArray::try_from(open_pinned(&dir, maps::STATS)?).map_err(map_err(maps::STATS))?;
    let table_err = |source| TopError::Table { iface: iface.to_owned(), source: Box::new(source) };
    let stats = crate::kernel::stats::counters(&stats_map)
        .map_err(|crate::kernel::stats::StatsError::Table(e)| table_err(e))?
        .to_vec();
    let sources: BpfHashMap<MapData, SourceKey, SourceState> =
        BpfHashMap::try_from(open_pinned(&dir, maps::SOURCES)?).map_err(map_err(maps::SOURCES))?;
    // Entries deleted by the daemon's sweep during the walk come back as errors: skip them.
    let entries = sources.iter().filter_map(Result::ok);
    let tables = Tables::open_pinned(&dir).map_err(table_err)?;
    let probation =
        crate::kernel::stats::probation(&open_pinned(&dir, maps::PROBATION)?, &open_pinned(&dir, maps::CONFIG)?, now)
            .map_err(|crate::kernel::stats::StatsError::Table(e)| table_err(e))?;
    let mut snap =
        IfaceReading::from_parts(iface.to_owned(), place.running(iface), stats, &config, entries, tables.blocks(), now);
    snap.probation = probation;
    snap.sets = tables.feeds().map_or_else(Vec::new, |f| f.sets());
    Ok(snap)
}

impl Reading {
    /// Reads the pinned maps of `ifaces` now. The maps are opened afresh each time, so a daemon
    /// that starts or restarts meanwhile is picked up.
    pub fn take(place: &Daemons, ifaces: &[String]) -> Result<Self, TopError> {
        let at_ns = monotonic_ns();
        let ifaces = ifaces.iter().map(|iface| read_iface(place, iface, at_ns)).collect::<Result<_, _>>()?;
        Ok(Self { at_ns, ifaces })
    }

    fn iface(&self, name: &str) -> Option<&IfaceReading> {
        self.ifaces.iter().find(|i| i.iface == name)
    }
}

/// Columns of the table of sources in a mode.
pub const MODE_COLUMNS: [&str; 8] =
    ["SOURCE", "IFACE", "DETECTION", "FIRST PORTS", "PACKETS", "BYTES", "PKTS/S", "IN MODE"];
/// Columns of the table of blocks.
pub const BLOCK_COLUMNS: [&str; 7] = ["BLOCKED", "IFACE", "REASON", "DROPPED", "BYTES", "DROPS/S", "TIME LEFT"];
/// Columns printed right-aligned (numbers), same order as the tables' columns.
const MODE_RIGHT: [bool; 8] = [false, false, false, false, true, true, true, true];
const BLOCK_RIGHT: [bool; 7] = [false, false, false, true, true, true, true];

/// The screen's text: header lines and the rows of both tables, sorted by rate.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct View {
    pub header: Vec<String>,
    pub modes: Vec<[String; 8]>,
    pub blocks: Vec<[String; 7]>,
}

/// `12.0`, or `-` when there is no earlier snapshot to take a rate from.
fn rate_text(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".to_owned(), |r| format!("{r:.1}"))
}

/// `45s`, `3m05s`, `2h07m`, `3d04h`.
pub fn duration_text(ns: u64) -> String {
    let s = ns / NS_PER_SEC;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A block's time left: `never`, `expired` (until the daemon's sweep removes it), or a duration
/// rounded up, as `ipscan block list` rounds it.
pub fn time_left(expires_ns: u64, now: u64) -> String {
    if expires_ns == 0 {
        return "never".to_owned();
    }
    match expires_ns.saturating_sub(now) {
        0 => "expired".to_owned(),
        left => duration_text(left.div_ceil(NS_PER_SEC) * NS_PER_SEC),
    }
}

/// The detection column: its name, with the protocol where the key holds it (`rejected probes
/// (UDP)`).
fn detection_text(key: &SourceKey, d: Detection) -> String {
    if d == Detection::Rejected {
        return format!("{} ({})", d.names().log_name, ipscan_common::classify::key_proto(key));
    }
    d.names().log_name.to_owned()
}

/// The source column: the address, or the reflector network for per-network detections.
fn source_text(key: &SourceKey, d: Detection) -> String {
    let a = format::addr(&key.addr, key.family);
    if d.per_target() {
        // A distributed flood is kept per target: the sources are many.
        return format!("* -> {a} ({})", ipscan_common::classify::key_proto(key));
    }
    if d.per_network() {
        let len = if key.family == FAMILY_V4 { 24 } else { 64 };
        format!("{a}/{len}")
    } else {
        a.to_string()
    }
}

/// The first logged destination ports, `,...` when more were seen; `-` for detections that do
/// not log ports (as their detection lines do not). A sweep's: the ports it swept and how many
/// hosts, `22 on 10 hosts` (`10 hosts` for a ping sweep).
fn ports_text(s: &SourceState, key: &SourceKey, d: Detection) -> String {
    if d == Detection::DistScan {
        // The first ports probed, then how many sources: `1,2,3,...from 4 sources`.
        let ports = s.logged_dports().iter().map(u16::to_string).collect::<Vec<_>>().join(",");
        let more = if s.distinct as usize > s.logged_dports().len() { ",..." } else { "" };
        let many = if s.nsports as usize >= LOGGED_SPORTS { " or more" } else { "" };
        return format!("{ports}{more} from {}{many} sources", s.nsports);
    }
    if d.per_target() {
        // The ports hit, then about how many sources: `53 from about 360 sources`.
        let ports = if ipscan_common::classify::key_proto(key) == "ICMP" { &[][..] } else { s.logged_sports() };
        let sources = match format::sources_estimate(s.distinct) {
            Some(n) => format!("about {n} sources"),
            None => "over 5000 sources".to_owned(),
        };
        if ports.is_empty() {
            return sources;
        }
        return format!("{} from {sources}", ports.iter().map(u16::to_string).collect::<Vec<_>>().join(","));
    }
    if d.counts_hosts() {
        let swept = if d == Detection::PingSweep { &[][..] } else { s.logged_sports() };
        let hosts = format!("{} host{}", s.distinct, if s.distinct == 1 { "" } else { "s" });
        if swept.is_empty() {
            return hosts;
        }
        let more = if s.nsports as usize >= LOGGED_SPORTS { ",..." } else { "" };
        return format!("{}{more} on {hosts}", swept.iter().map(u16::to_string).collect::<Vec<_>>().join(","));
    }
    if !(d.counts_ports() || d == Detection::UdpFlood) {
        return "-".to_owned();
    }
    let ports = s.logged_dports();
    if ports.is_empty() {
        return "-".to_owned();
    }
    let mut text = ports.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
    if s.distinct as usize > ports.len() {
        text.push_str(",...");
    }
    text
}

/// Per-second rate of a counter that went from `before` to `after` in `secs`.
fn per_sec(before: u64, after: u64, secs: f64) -> f64 {
    after.saturating_sub(before) as f64 / secs
}

/// The rows on screen for `cur`, with rates over the time since `prev` (none on the first
/// refresh). `refresh` is only printed.
pub fn view(prev: Option<&Reading>, cur: &Reading, refresh: Duration) -> View {
    let now = cur.at_ns;
    // Rates need a previous sample some time ago.
    let prev = prev.filter(|p| cur.at_ns > p.at_ns);
    let secs = prev.map(|p| (cur.at_ns - p.at_ns) as f64 / NS_PER_SEC as f64);

    let mut header = Vec::new();
    let places: Vec<String> = cur
        .ifaces
        .iter()
        .map(|i| format!("{} ({})", i.iface, if i.running { "daemon running" } else { "no daemon" }))
        .collect();
    header.push(format!("ipscan top - {}   refresh {}s   q: quit", places.join(", "), refresh.as_secs_f64()));
    let verdicts = [
        ("passed", stats::PASSED),
        ("dropped", stats::DROPPED),
        ("blocked", stats::BLOCKED),
        ("malformed", stats::MALFORMED),
    ];
    let total = |snap: &Reading, slot: u32| -> u64 { snap.ifaces.iter().map(|i| i.stat(slot)).sum() };
    // An interface missing from the previous snapshot has no rate yet; count it from zero.
    let before = |slot: u32| -> u64 {
        prev.map_or(0, |p| cur.ifaces.iter().map(|i| p.iface(&i.iface).map_or(i.stat(slot), |pi| pi.stat(slot))).sum())
    };
    let mut rates = String::from("packets/s");
    for (name, slot) in verdicts {
        let r = secs.map(|s| per_sec(before(slot), total(cur, slot), s));
        rates.push_str(&format!("   {name} {}", rate_text(r)));
    }
    header.push(rates);
    let mut totals = String::from("totals   ");
    for (name, slot) in [("packets", stats::PACKETS)]
        .into_iter()
        .chain(verdicts)
        .chain([("detections", stats::DETECTIONS), ("auto-blocks", stats::AUTOBLOCKS)])
    {
        totals.push_str(&format!("   {name} {}", total(cur, slot)));
    }
    totals.push_str(&format!("   on probation {}", cur.ifaces.iter().map(|i| i.probation).sum::<u64>()));
    // Under dry_run nothing is dropped: what would have been is counted apart.
    let would = total(cur, stats::DRY_RUN_PASSED);
    if would != 0 {
        totals.push_str(&format!("   dry run: would have dropped {would}"));
    }
    header.push(totals);

    let mut modes: Vec<(f64, u64, [String; 8])> = Vec::new();
    for i in &cur.ifaces {
        let before = prev.and_then(|p| p.iface(&i.iface));
        for a in &i.active {
            let Some(d) = a.key.detection() else { continue };
            let s = &a.state;
            // No earlier count for this window: the entry or its window began after the last
            // read, so all of its packets are new.
            let rate = secs.map(|secs| {
                let old = before
                    .and_then(|b| b.counts.get(&a.key))
                    .filter(|c| c.first_ns == s.first_ns)
                    .map_or(0, |c| c.packets);
                per_sec(old, s.packets, secs)
            });
            modes.push((
                rate.unwrap_or(0.0),
                s.packets,
                [
                    source_text(&a.key, d),
                    i.iface.clone(),
                    detection_text(&a.key, d),
                    ports_text(s, &a.key, d),
                    s.packets.to_string(),
                    s.bytes.to_string(),
                    rate_text(rate),
                    duration_text(now.saturating_sub(s.mode_since_ns)),
                ],
            ));
        }
    }

    let mut blocks: Vec<(f64, u64, [String; 7])> = Vec::new();
    for i in &cur.ifaces {
        let before = prev.and_then(|p| p.iface(&i.iface));
        for b in &i.blocks {
            let e = &b.entry;
            let rate = secs.map(|secs| {
                let old = before
                    .and_then(|p| p.blocks.iter().find(|o| o.net == b.net && o.auto == b.auto))
                    .filter(|o| o.entry.added_ns == e.added_ns)
                    .map_or(0, |o| o.entry.packets);
                per_sec(old, e.packets, secs)
            });
            let reason = e.detection().map_or("manual", |d| d.names().log_name);
            blocks.push((
                rate.unwrap_or(0.0),
                e.packets,
                [
                    tables::show(&b.net),
                    i.iface.clone(),
                    reason.to_owned(),
                    e.packets.to_string(),
                    e.bytes.to_string(),
                    rate_text(rate),
                    time_left(e.expires_ns, now),
                ],
            ));
        }
    }
    for i in &cur.ifaces {
        let before = prev.and_then(|p| p.iface(&i.iface));
        for set in &i.sets {
            let rate = secs.map(|secs| {
                let old = before
                    .and_then(|p| p.sets.iter().find(|o| o.name == set.name && o.loaded_unix_ns == set.loaded_unix_ns))
                    .map_or(0, |o| o.packets);
                per_sec(old, set.packets, secs)
            });
            blocks.push((
                rate.unwrap_or(0.0),
                set.packets,
                [
                    format!("set {} ({} prefixes)", set.name, set.v4 + set.v6),
                    i.iface.clone(),
                    "feed".to_owned(),
                    set.packets.to_string(),
                    set.bytes.to_string(),
                    rate_text(rate),
                    time_left(set.expires_ns, now),
                ],
            ));
        }
    }
    // Busiest first; ties (the first refresh, idle sources) by packets, then by text.
    modes.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)).then_with(|| a.2.cmp(&b.2)));
    blocks.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)).then_with(|| a.2.cmp(&b.2)));
    View { header, modes: modes.into_iter().map(|m| m.2).collect(), blocks: blocks.into_iter().map(|b| b.2).collect() }
}

/// A table sized to its contents (header included), numbers right-aligned.
fn table<'a, const N: usize>(
    title: String,
    columns: [&'a str; N],
    right: [bool; N],
    rows: &'a [[String; N]],
) -> Table<'a> {
    let widths: Vec<Constraint> = (0..N)
        .map(|c| {
            let w = rows.iter().map(|r| r[c].chars().count()).chain([columns[c].len()]).max().unwrap_or(0);
            Constraint::Length(w as u16)
        })
        .collect();
    let cell = move |c: usize, text: &'a str| {
        let line = Line::from(text);
        Cell::from(if right[c] { line.right_aligned() } else { line })
    };
    let head =
        Row::new(columns.iter().enumerate().map(|(c, t)| cell(c, t))).style(Style::new().add_modifier(Modifier::BOLD));
    let body = rows.iter().map(|r| Row::new(r.iter().enumerate().map(|(c, t)| cell(c, t.as_str()))));
    Table::new(body, widths).header(head).column_spacing(2).block(Block::bordered().title(title))
}

/// Draws `view` (and a line about the last failed refresh) on `frame`.
pub fn draw(frame: &mut Frame<'_>, view: &View, error: Option<&str>) {
    let mut head: Vec<Line<'_>> = view.header.iter().map(|h| Line::from(h.as_str())).collect();
    if let Some(e) = error {
        head.push(Line::from(format!("refresh failed: {e}")).style(Style::new().add_modifier(Modifier::REVERSED)));
    }
    // The mode table gets room for its rows (borders and column header take 3 lines) and the
    // block table the rest; when both are too long for the screen they share it half and half.
    let area: Rect = frame.area();
    let [top, rest] = Layout::vertical([Constraint::Length(head.len() as u16), Constraint::Fill(1)]).areas(area);
    let want = view.modes.len() as u16 + 3;
    let [modes, blocks] = Layout::vertical([Constraint::Max(want.max(4)), Constraint::Fill(1)]).areas(rest);
    let [modes, blocks] = if modes.height > rest.height / 2 && view.blocks.len() as u16 + 3 > blocks.height {
        Layout::vertical([Constraint::Percentage(50), Constraint::Fill(1)]).areas(rest)
    } else {
        [modes, blocks]
    };
    frame.render_widget(Paragraph::new(head), top);
    let shown = |n: usize, area: Rect| {
        let fit = area.height.saturating_sub(3) as usize;
        if n > fit { format!(" ({fit} of {n} shown)") } else { String::new() }
    };
    frame.render_widget(
        table(
            format!(" Sources in a scan or flood mode: {}{} ", view.modes.len(), shown(view.modes.len(), modes)),
            MODE_COLUMNS,
            MODE_RIGHT,
            &view.modes,
        ),
        modes,
    );
    frame.render_widget(
        table(
            format!(" Blocked: {}{} ", view.blocks.len(), shown(view.blocks.len(), blocks)),
            BLOCK_COLUMNS,
            BLOCK_RIGHT,
            &view.blocks,
        ),
        blocks,
    );
}

/// Set by SIGTERM: the loop restores the terminal and exits. SIGHUP (the terminal went away)
/// keeps its default action: there is nothing left to restore.
static QUIT: AtomicBool = AtomicBool::new(false);

extern "C" fn on_quit_signal(_: libc::c_int) {
    QUIT.store(true, Ordering::SeqCst);
}

fn catch_quit_signal() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe { libc::signal(libc::SIGTERM, on_quit_signal as *const () as libc::sighandler_t) };
}

/// The terminal crossterm reads keys from (standard input if it is one, else /dev/tty), watched
/// with poll(2) before crossterm reads it. crossterm 0.29 spins forever on a terminal that has
/// hung up (its read loop retries a read that returns 0), so a hang-up must never reach it.
enum Tty {
    Stdin,
    Dev(std::fs::File),
}

impl Tty {
    fn open() -> Result<Self, TopError> {
        if io::stdin().is_terminal() {
            return Ok(Self::Stdin);
        }
        std::fs::File::open("/dev/tty").map(Self::Dev).map_err(|source| TopError::Terminal { source })
    }

    fn fd(&self) -> libc::c_int {
        use std::os::fd::AsRawFd as _;
        match self {
            Self::Stdin => libc::STDIN_FILENO,
            Self::Dev(f) => f.as_raw_fd(),
        }
    }

    /// Waits up to `timeout` for input: `Ok(true)` when there is some, `Err` when the terminal
    /// is gone.
    fn readable(&self, timeout: Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd { fd: self.fd(), events: libc::POLLIN, revents: 0 };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted { Ok(false) } else { Err(e) };
        }
        if pfd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "the terminal hung up"));
        }
        Ok(pfd.revents & libc::POLLIN != 0)
    }
}

/// Whether a key quits: q, Esc, Ctrl-C (raw mode turns Ctrl-C into a key, not SIGINT).
pub fn is_quit_key(code: KeyCode, mods: KeyModifiers) -> bool {
    matches!(code, KeyCode::Char('q') | KeyCode::Char('Q') | KeyCode::Esc)
        || (code == KeyCode::Char('c') && mods.contains(KeyModifiers::CONTROL))
}

/// Restores the terminal when the loop ends, however it ends (ratatui's panic hook covers panics).
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Waits up to `timeout` for a quit key or SIGTERM; true to quit. Other keys return early so the
/// screen is redrawn (a resize is picked up by the next draw).
fn wait(tty: &Tty, timeout: Duration) -> Result<bool, TopError> {
    let term = |source| TopError::Terminal { source };
    let deadline = Instant::now() + timeout;
    loop {
        if QUIT.load(Ordering::SeqCst) {
            return Ok(true);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        if !tty.readable(left.min(POLL_SLICE)).map_err(term)? {
            continue;
        }
        // XXX: a hang-up between the check above and crossterm's read still spins in crossterm;
        // SIGHUP, left at its default action, ends the process then.
        let mut redraw = false;
        while event::poll(Duration::ZERO).map_err(term)? {
            match event::read().map_err(term)? {
                Event::Key(k) if k.kind != KeyEventKind::Release => {
                    if is_quit_key(k.code, k.modifiers) {
                        return Ok(true);
                    }
                    redraw = true;
                }
                Event::Resize(..) => redraw = true,
                _ => {}
            }
        }
        if redraw {
            return Ok(false);
        }
    }
}

/// `ipscan top`: reads the maps once (so a missing daemon or map is a plain error before the
/// screen changes), then redraws every `interval` until a quit key or SIGTERM.
pub fn run(place: &Daemons, interval: Duration) -> Result<(), TopError> {
    let ifaces = place.ifaces()?;
    let mut cur = Reading::take(place, &ifaces)?;
    if !io::stdout().is_terminal() {
        return Err(TopError::NotATerminal);
    }
    let tty = Tty::open()?;
    catch_quit_signal();
    let mut terminal = ratatui::try_init().map_err(|source| TopError::Terminal { source })?;
    let _restore = Restore;
    let mut prev: Option<Reading> = None;
    let mut error: Option<String> = None;
    let mut next = Instant::now() + interval;
    loop {
        let v = view(prev.as_ref(), &cur, interval);
        terminal.draw(|f| draw(f, &v, error.as_deref())).map_err(|source| TopError::Terminal { source })?;
        if wait(&tty, next.saturating_duration_since(Instant::now()))? {
            return Ok(());
        }
        if Instant::now() >= next {
            next += interval;
            // A refresh that fails (a daemon tearing its pins down) keeps the last picture and
            // says why; the next one may work again.
            match Reading::take(place, &ifaces) {
                Ok(s) => {
                    prev = Some(std::mem::replace(&mut cur, s));
                    error = None;
                }
                Err(e) => error = Some(crate::kernel::loader::error_chain(&e)),
            }
            // After a stall (a suspended terminal) do not try to catch up on missed refreshes.
            if next < Instant::now() {
                next = Instant::now() + interval;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IpNet;
    use ipscan_common::{BlockEntry, FAMILY_V6};
    use ratatui::{Terminal, backend::TestBackend};

    const S: u64 = NS_PER_SEC;

    fn key4(a: [u8; 4], d: Detection) -> SourceKey {
        let mut addr = [0u8; 16];
        addr[..4].copy_from_slice(&a);
        SourceKey::new(addr, FAMILY_V4, d)
    }

    /// A source that crossed `threshold` distinct ports 1.. at `since`, last packet at `last`.
    fn scanning(first: u64, since: u64, last: u64, ports: u16, threshold: u32) -> SourceState {
        let mut s = SourceState::new(first);
        for p in 1..=ports {
            let at = if u32::from(p) < threshold {
                first
            } else if u32::from(p) == threshold {
                since
            } else {
                last
            };
            s.record_ports(at, p, 40000, 24, threshold);
        }
        s
    }

    fn stats_with(values: &[(u32, u64)]) -> Vec<u64> {
        let mut v = vec![0; stats::NAMES.len()];
        for (slot, n) in values {
            v[*slot as usize] = *n;
        }
        v
    }

    fn config() -> Config {
        let mut c = Config::default();
        c.detection_mut(Detection::SynScan).window_ns = 30 * S;
        c
    }

    fn snap(at: u64, sources: Vec<(SourceKey, SourceState)>, blocks: Vec<BlockRow>, stats: Vec<u64>) -> Reading {
        Reading {
            at_ns: at,
            ifaces: vec![IfaceReading::from_parts("veth0".into(), true, stats, &config(), sources, blocks, at)],
        }
    }

    fn auto_block(addr: &str, packets: u64, added: u64, expires: u64) -> BlockRow {
        BlockRow {
            net: IpNet::host(addr.parse().expect("addr")),
            entry: BlockEntry {
                expires_ns: expires,
                added_ns: added,
                packets,
                bytes: packets * 40,
                last_ns: added,
                reason: 1 + Detection::SynScan as u8,
                _pad: [0; 7],
            },
            auto: true,
        }
    }

    #[test]
    fn only_sources_in_a_live_mode_are_shown() {
        let k = key4([198, 18, 0, 1], Detection::SynScan);
        let quiet = key4([198, 18, 0, 2], Detection::SynScan);
        let lapsed = key4([198, 18, 0, 3], Detection::SynScan);
        let sources = vec![
            (k, scanning(100 * S, 101 * S, 102 * S, 12, 10)),
            (quiet, scanning(100 * S, 101 * S, 102 * S, 5, 10)),
            // Last packet 31 s before the read: the 30 s window has lapsed.
            (lapsed, scanning(90 * S, 95 * S, 99 * S, 12, 10)),
        ];
        let cur = snap(130 * S, sources, vec![], stats_with(&[]));
        let v = view(None, &cur, DEFAULT_INTERVAL);
        assert_eq!(v.modes.len(), 1, "{:?}", v.modes);
        assert_eq!(
            v.modes[0],
            ["198.18.0.1", "veth0", "SYN scan", "1,2,3,4,5,6,7,8,9,10,...", "12", "288", "-", "29s"].map(String::from)
        );
    }

    #[test]
    fn rates_are_deltas_per_key_and_a_new_window_counts_from_zero() {
        let a = key4([198, 18, 0, 1], Detection::SynScan);
        let b = key4([198, 18, 0, 2], Detection::SynScan);
        let c = key4([198, 18, 0, 3], Detection::SynScan);
        let mut a1 = scanning(100 * S, 101 * S, 102 * S, 10, 10);
        let b1 = scanning(100 * S, 101 * S, 102 * S, 10, 10);
        let before = snap(103 * S, vec![(a, a1), (b, b1)], vec![], stats_with(&[]));
        // a: 40 more packets; b: a new window (other first_ns) with 12; c: new since the last read.
        for p in 11..=50 {
            a1.record_ports(104 * S, p, 40000, 24, 10);
        }
        let b2 = scanning(103 * S + 1, 104 * S, 104 * S, 12, 10);
        let c2 = scanning(103 * S + 5, 104 * S, 104 * S, 20, 10);
        let after = snap(105 * S, vec![(a, a1), (b, b2), (c, c2)], vec![], stats_with(&[]));
        let v = view(Some(&before), &after, DEFAULT_INTERVAL);
        let rates: Vec<(&str, &str)> = v.modes.iter().map(|r| (r[0].as_str(), r[6].as_str())).collect();
        // Two seconds between the reads; sorted by rate.
        assert_eq!(rates, [("198.18.0.1", "20.0"), ("198.18.0.3", "10.0"), ("198.18.0.2", "6.0")]);
    }

    #[test]
    fn sweeps_show_the_ports_swept_and_how_many_hosts() {
        let sweep = |d: Detection, hosts: u16, ports: &[u16]| {
            let mut s = SourceState::new(S);
            for h in 1..=hosts {
                for p in ports {
                    s.record_ports(S, h, *p, 40, 10);
                }
            }
            (key4([198, 18, 0, 1], d), s)
        };
        let cur = snap(
            2 * S,
            vec![sweep(Detection::TcpSweep, 12, &[22]), sweep(Detection::PingSweep, 10, &[0])],
            vec![],
            stats_with(&[]),
        );
        let v = view(None, &cur, DEFAULT_INTERVAL);
        let mut rows: Vec<[&str; 2]> = v.modes.iter().map(|r| [&*r[2], &*r[3]]).collect();
        rows.sort();
        assert_eq!(rows, [["SYN sweep", "22 on 12 hosts"], ["ping sweep", "10 hosts"]]);
    }

    #[test]
    fn a_distributed_flood_shows_its_target_ports_and_sources() {
        let mut target = key4([198, 18, 0, 2], Detection::DistFlood);
        target._pad[0] = ipscan_common::packet::PROTO_UDP;
        let mut s = SourceState::new(S);
        for src in 0..40u16 {
            s.record_rate(S, src, 53, 40, 10, 5 * S, 32);
        }
        let cur = snap(2 * S, vec![(target, s)], vec![], stats_with(&[]));
        let v = view(None, &cur, DEFAULT_INTERVAL);
        let rows: Vec<[&str; 3]> = v.modes.iter().map(|r| [&*r[0], &*r[2], &*r[3]]).collect();
        assert_eq!(rows, [["* -> 198.18.0.2 (UDP)", "distributed flood", "53 from about 41 sources"]]);

        let mut target = key4([198, 18, 0, 2], Detection::DistScan);
        target._pad[0] = ipscan_common::packet::PROTO_TCP;
        let mut s = SourceState::new(S);
        for port in 1..=15u16 {
            for src in 0..4u16 {
                s.record_values(S, port, 1000 + src, 24, 15, 3);
            }
        }
        let cur = snap(2 * S, vec![(target, s)], vec![], stats_with(&[]));
        let v = view(None, &cur, DEFAULT_INTERVAL);
        let rows: Vec<[&str; 3]> = v.modes.iter().map(|r| [&*r[0], &*r[2], &*r[3]]).collect();
        assert_eq!(rows, [["* -> 198.18.0.2 (TCP)", "distributed scan", "1,2,3,4,5,6,7,8,9,10,... from 4 sources"]]);
    }

    #[test]
    fn rejected_probes_show_their_protocol_and_the_ports_rejected() {
        let mut key = key4([198, 18, 0, 1], Detection::Rejected);
        key._pad[0] = ipscan_common::packet::PROTO_UDP;
        let mut s = SourceState::new(S);
        for port in [7u16, 9, 13, 19, 37] {
            s.record_ports(S, port, 40000, 8, 5);
        }
        let cur = snap(2 * S, vec![(key, s)], vec![], stats_with(&[]));
        let v = view(None, &cur, DEFAULT_INTERVAL);
        let rows: Vec<[&str; 3]> = v.modes.iter().map(|r| [&*r[0], &*r[2], &*r[3]]).collect();
        assert_eq!(rows, [["198.18.0.1", "rejected probes (UDP)", "7,9,13,19,37"]]);
    }

    #[test]
    fn smurf_shows_the_network_and_no_ports_and_ipv6_prints_compressed() {
        let mut net = [0u8; 16];
        net[..3].copy_from_slice(&[203, 0, 113]);
        let smurf = SourceKey::new(net, FAMILY_V4, Detection::Smurf);
        let mut s = SourceState::new(S);
        for i in 0..100 {
            s.record_packets(S + i, 7, 7, 64, 90, 30 * S);
        }
        let mut v6 = [0u8; 16];
        v6[..2].copy_from_slice(&[0x20, 0x01]);
        v6[2..4].copy_from_slice(&[0x0d, 0xb8]);
        v6[15] = 1;
        let v6key = SourceKey::new(v6, FAMILY_V6, Detection::SynScan);
        let cur = snap(2 * S, vec![(smurf, s), (v6key, scanning(S, S, S, 10, 10))], vec![], stats_with(&[]));
        let v = view(None, &cur, DEFAULT_INTERVAL);
        let rows: Vec<[&str; 4]> = v.modes.iter().map(|r| [&*r[0], &*r[2], &*r[3], &*r[4]]).collect();
        assert_eq!(
            rows,
            [["203.0.113.0/24", "smurf attack", "-", "100"], ["2001:db8::1", "SYN scan", "1,2,3,4,5,6,7,8,9,10", "10"]]
        );
    }

    #[test]
    fn blocks_show_reason_drop_rate_and_time_left() {
        let manual =
            BlockRow { net: "198.51.100.0/24".parse().expect("net"), entry: BlockEntry::manual(S, 0), auto: false };
        let before = snap(
            10 * S,
            vec![],
            vec![auto_block("198.18.0.1", 30, 5 * S, 65 * S), manual.clone()],
            stats_with(&[(stats::PACKETS, 100), (stats::PASSED, 70), (stats::DROPPED, 30), (stats::BLOCKED, 30)]),
        );
        let after = snap(
            11 * S,
            vec![],
            vec![
                auto_block("198.18.0.1", 35, 5 * S, 65 * S),
                manual,
                // Added since the last read, already past its expiry (the sweep is due).
                auto_block("198.18.0.7", 3, 10 * S + 1, 11 * S),
            ],
            stats_with(&[
                (stats::PACKETS, 120),
                (stats::PASSED, 82),
                (stats::DROPPED, 38),
                (stats::BLOCKED, 38),
                (stats::MALFORMED, 2),
                (stats::AUTOBLOCKS, 2),
            ]),
        );
        let mut after = after;
        after.ifaces[0].probation = 5;
        let v = view(Some(&before), &after, DEFAULT_INTERVAL);
        assert_eq!(
            v.blocks,
            [
                ["198.18.0.1", "veth0", "SYN scan", "35", "1400", "5.0", "54s"].map(String::from),
                ["198.18.0.7", "veth0", "SYN scan", "3", "120", "3.0", "expired"].map(String::from),
                ["198.51.100.0/24", "veth0", "manual", "0", "0", "0.0", "never"].map(String::from),
            ]
        );
        assert_eq!(v.header[0], "ipscan top - veth0 (daemon running)   refresh 1s   q: quit");
        assert_eq!(v.header[1], "packets/s   passed 12.0   dropped 8.0   blocked 8.0   malformed 2.0");
        assert_eq!(
            v.header[2],
            "totals      packets 120   passed 82   dropped 38   blocked 38   malformed 2   detections 0   auto-blocks 2   on probation 5"
        );
        // The first refresh has totals but no rates yet.
        let first = view(None, &after, Duration::from_millis(500));
        assert_eq!(first.header[1], "packets/s   passed -   dropped -   blocked -   malformed -");
        assert!(first.header[0].ends_with("refresh 0.5s   q: quit"));
    }

    #[test]
    fn dry_run_totals_say_what_would_have_been_dropped() {
        let stats =
            stats_with(&[(stats::PACKETS, 50), (stats::PASSED, 50), (stats::BLOCKED, 7), (stats::DRY_RUN_PASSED, 7)]);
        let v = view(None, &snap(S, vec![], vec![], stats), DEFAULT_INTERVAL);
        assert_eq!(
            v.header[2],
            "totals      packets 50   passed 50   dropped 0   blocked 7   malformed 0   detections 0   auto-blocks 0   on probation 0   dry run: would have dropped 7"
        );
    }

    #[test]
    fn durations_and_intervals() {
        assert_eq!(duration_text(0), "0s");
        assert_eq!(duration_text(59 * S + S / 2), "59s");
        assert_eq!(duration_text(185 * S), "3m05s");
        assert_eq!(duration_text(2 * 3600 * S + 7 * 60 * S), "2h07m");
        assert_eq!(duration_text(3 * 86_400 * S + 4 * 3600 * S), "3d04h");
        assert_eq!(time_left(0, 5), "never");
        assert_eq!(time_left(10 * S, 10 * S), "expired");
        assert_eq!(time_left(10 * S, 9 * S + 1), "1s");
        assert_eq!(parse_interval("1"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_interval("0.5s"), Ok(Duration::from_millis(500)));
        assert!(parse_interval("0").is_err());
        assert!(parse_interval("soon").is_err());
    }

    #[test]
    fn quit_keys() {
        assert!(is_quit_key(KeyCode::Char('q'), KeyModifiers::NONE));
        assert!(is_quit_key(KeyCode::Esc, KeyModifiers::NONE));
        assert!(is_quit_key(KeyCode::Char('c'), KeyModifiers::CONTROL));
        assert!(!is_quit_key(KeyCode::Char('c'), KeyModifiers::NONE));
        assert!(!is_quit_key(KeyCode::Down, KeyModifiers::NONE));
    }

    #[test]
    fn place_without_pins_is_the_block_list_error() {
        let root = std::env::temp_dir().join(format!("ipscan-top-unit-{}", std::process::id()));
        let place = Daemons { pin_root: root.clone(), lock_dir: root.clone(), ifaces: vec![] };
        let e = place.ifaces().expect_err("nothing pinned");
        assert_eq!(
            e.to_string(),
            format!("no ipscan daemon is running (nothing pinned under {}); start `ipscan run` first", root.display())
        );
        let named = Daemons { ifaces: vec!["eth9".into()], ..place };
        assert!(
            named.ifaces().expect_err("not pinned").to_string().starts_with("no ipscan daemon has run on eth9 (no ")
        );
    }

    #[test]
    fn draws_both_tables_on_a_terminal() {
        let k = key4([198, 18, 0, 1], Detection::SynScan);
        let cur = snap(
            120 * S,
            vec![(k, scanning(100 * S, 101 * S, 102 * S, 10, 10))],
            vec![auto_block("198.18.0.1", 30, 101 * S, 161 * S)],
            stats_with(&[(stats::PACKETS, 7)]),
        );
        let v = view(None, &cur, DEFAULT_INTERVAL);
        let mut term = Terminal::new(TestBackend::new(160, 20)).expect("test backend");
        term.draw(|f| draw(f, &v, Some("cannot open x"))).expect("draw");
        let buf = term.backend().buffer();
        let lines: Vec<String> = (0..buf.area.height)
            .map(|y| (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect::<String>())
            .collect();
        let screen = lines.join("\n");
        assert!(screen.contains("Sources in a scan or flood mode: 1"), "{screen}");
        assert!(screen.contains("Blocked: 1"), "{screen}");
        assert!(screen.contains("refresh failed: cannot open x"), "{screen}");
        let mode = lines.iter().find(|l| l.contains("1,2,3,4,5,6,7,8,9,10")).expect("mode row");
        assert!(mode.contains("198.18.0.1") && mode.contains("SYN scan") && mode.contains("19s"), "{mode}");
        let block = lines.iter().find(|l| l.contains("41s")).expect("block row");
        assert!(block.contains("198.18.0.1") && block.contains("SYN scan"), "{block}");
    }

    #[test]
    fn long_tables_share_a_short_screen_and_say_so() {
        let sources = (1..=20u8).map(|i| (key4([198, 18, 1, i], Detection::SynScan), scanning(S, S, S, 10, 10)));
        let blocks = (1..=20u8).map(|i| auto_block(&format!("198.18.2.{i}"), 1, S, 0)).collect();
        let v = view(None, &snap(2 * S, sources.collect(), blocks, stats_with(&[])), DEFAULT_INTERVAL);
        // 3 header lines, 20 lines for the tables: 10 each, 7 rows each.
        let mut term = Terminal::new(TestBackend::new(160, 23)).expect("test backend");
        term.draw(|f| draw(f, &v, None)).expect("draw");
        let buf = term.backend().buffer();
        let screen: String = (0..buf.area.height)
            .map(|y| (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect::<String>() + "\n")
            .collect();
        assert!(screen.contains("Sources in a scan or flood mode: 20 (7 of 20 shown)"), "{screen}");
        assert!(screen.contains("Blocked: 20 (7 of 20 shown)"), "{screen}");
    }
}
