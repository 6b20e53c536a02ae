//! CrowdSec, the fleet: ipscan as a **bouncer** (`crowdsec bouncer`: the Local API's decisions
//! go into the kernel's blocklist and come out when they are deleted) and as a **machine**
//! (`crowdsec machine`: its detections go to the LAPI as alerts, so that the LAPI's profiles
//! decide and every bouncer of the fleet, ipscan or not, applies the decision).
//!
//! The HTTP calls run in two threads of their own ([`spawn_bouncer`], [`spawn_machine`]); the
//! daemon's loop owns the maps and applies what the bouncer thread read ([`apply`]). A LAPI that
//! is down costs a line on stderr and a retry every poll; the blocks already made stay.

pub mod decisions;
pub mod lapi;

use std::{
    io,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{Arc, mpsc as std_mpsc},
    thread,
    time::Duration,
};

use ipscan_common::{BlockEntry, Detection};
use tokio::sync::mpsc;

use self::{
    decisions::{Change, Decisions},
    lapi::{Alert, Lapi, Stream},
};
use crate::{
    config::{
        IpNet,
        crowdsec::{Bouncer, CrowdSec, Machine},
    },
    kernel::tables::{self, Tables},
    log::{
        format, json,
        tracker::{Line, Meta},
    },
};

/// At most this many per-decision lines per answer; more make one summary line (a fleet's
/// first answer can hold tens of thousands).
const LINES_PER_ANSWER: usize = 20;
/// Alerts sent in one call.
const ALERTS_PER_CALL: usize = 100;
/// A machine that could not send waits this long before it tries again.
const RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum CrowdSecError {
    #[error("crowdsec: cannot read the {what} file {path}: {source}")]
    Secret {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("crowdsec: the {what} file {path} is empty")]
    EmptySecret { what: &'static str, path: PathBuf },
    #[error("crowdsec: cannot use the CA certificate file {path}: {reason}")]
    CaCert { path: PathBuf, reason: String },
    #[error("crowdsec: cannot start the {what} thread: {source}")]
    Thread {
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

/// A secret kept in a file: its first line, without surrounding blanks.
pub fn read_secret(path: &Path, what: &'static str) -> Result<String, CrowdSecError> {
    let text = std::fs::read_to_string(path).map_err(|source| CrowdSecError::Secret {
        what,
        path: path.to_owned(),
        source,
    })?;
    let secret = text.lines().next().unwrap_or_default().trim().to_owned();
    if secret.is_empty() {
        return Err(CrowdSecError::EmptySecret { what, path: path.to_owned() });
    }
    Ok(secret)
}

/// What the threads need to reach the LAPI: the bouncer's key, the machine's password and
/// the TLS of `crowdsec ca_cert`, all read when the daemon starts.
#[derive(Default)]
pub struct Secrets {
    pub key: Option<String>,
    pub password: Option<String>,
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Secrets {
    pub fn read(cs: &CrowdSec) -> Result<Self, CrowdSecError> {
        let key = cs.bouncer.as_ref().map(|b| read_secret(&b.key_file, "bouncer key")).transpose()?;
        let password = cs.machine.as_ref().map(|m| read_secret(&m.password_file, "machine password")).transpose()?;
        let tls = cs
            .ca_cert
            .as_ref()
            .map(|path| lapi::tls_trusting(path).map_err(|reason| CrowdSecError::CaCert { path: path.clone(), reason }))
            .transpose()?;
        Ok(Self { key, password, tls })
    }
}

/// One answer of the decision stream, for the daemon's loop.
#[derive(Debug)]
pub struct Pulled {
    pub stream: Stream,
    /// The first answer: every decision in force.
    pub startup: bool,
}

/// Starts the thread that reads the decision stream every `poll` and hands each answer to the
/// daemon's loop; it ends when the loop is gone.
pub fn spawn_bouncer(
    b: &Bouncer,
    key: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    poll: Duration,
    tx: mpsc::Sender<Pulled>,
) -> Result<(), CrowdSecError> {
    let lapi = Lapi::new(&b.url, tls);
    let spawned = thread::Builder::new().name("crowdsec-bouncer".into()).spawn(move || {
        let mut startup = true;
        let mut failing: Option<String> = None;
        loop {
            match lapi.stream(&key, startup) {
                Ok(stream) => {
                    if failing.take().is_some() {
                        eprintln!("ipscan: crowdsec: reading decisions from {} again", lapi.url());
                    }
                    if tx.blocking_send(Pulled { stream, startup }).is_err() {
                        return;
                    }
                    startup = false;
                }
                Err(e) => {
                    let text = e.to_string();
                    if failing.as_ref() != Some(&text) {
                        eprintln!(
                            "ipscan: crowdsec: cannot read decisions: {text}; trying again every {} s",
                            poll.as_secs()
                        );
                        failing = Some(text);
                    }
                }
            }
            thread::sleep(poll);
            if tx.is_closed() {
                return;
            }
        }
    });
    spawned.map(|_| ()).map_err(|source| CrowdSecError::Thread { what: "bouncer", source })
}

/// Starts the thread that sends the daemon's alerts to the LAPI, in batches, logging in again
/// when its token has expired. Alerts that cannot be sent are kept and sent again.
pub fn spawn_machine(
    m: &Machine,
    password: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    rx: std_mpsc::Receiver<Alert>,
) -> Result<(), CrowdSecError> {
    let lapi = Lapi::new(&m.url, tls);
    let login = m.login.clone();
    let spawned = thread::Builder::new().name("crowdsec-machine".into()).spawn(move || {
        let scenarios: Vec<String> = ipscan_common::DETECTIONS.iter().map(|d| scenario(*d)).collect();
        let mut token: Option<String> = None;
        let mut failing: Option<String> = None;
        let mut batch: Vec<Alert> = Vec::new();
        loop {
            if batch.is_empty() {
                match rx.recv() {
                    Ok(a) => batch.push(a),
                    Err(_) => return,
                }
            }
            while batch.len() < ALERTS_PER_CALL
                && let Ok(a) = rx.try_recv()
            {
                batch.push(a);
            }
            let sent = (|| {
                let t = match &token {
                    Some(t) => t.clone(),
                    None => token.insert(lapi.login(&login, &password, &scenarios)?).clone(),
                };
                lapi.alerts(&t, &batch)
            })();
            match sent {
                Ok(()) => {
                    if failing.take().is_some() {
                        eprintln!("ipscan: crowdsec: sending alerts to {} again", lapi.url());
                    }
                    batch.clear();
                }
                Err(e) => {
                    if e.unauthorized() && token.take().is_some() {
                        continue; // the token expired: log in again at once
                    }
                    let text = e.to_string();
                    if failing.as_ref() != Some(&text) {
                        eprintln!(
                            "ipscan: crowdsec: cannot send {} alerts: {text}; trying again every {} s",
                            batch.len(),
                            RETRY.as_secs()
                        );
                        failing = Some(text);
                    }
                    thread::sleep(RETRY);
                }
            }
        }
    });
    spawned.map(|_| ()).map_err(|source| CrowdSecError::Thread { what: "machine", source })
}

/// The scenario name of a detection's alerts: `ipscan/syn_scan`.
pub fn scenario(d: Detection) -> String {
    format!("ipscan/{}", d.names().keyword)
}

/// The alert for a detection line: its text as the message, the source, the packets counted,
/// the detection's threshold and window as the bucket's capacity and leak speed.
pub fn alert(line: &Line, d: Detection, src: IpAddr, at: &str, threshold: u64, window_s: u64, dry_run: bool) -> Alert {
    let ip = src.to_string();
    Alert {
        scenario: scenario(d),
        scenario_hash: String::new(),
        scenario_version: env!("CARGO_PKG_VERSION").into(),
        message: line.text.clone(),
        events_count: line.meta.packets.unwrap_or(threshold).max(1),
        start_at: at.into(),
        stop_at: at.into(),
        capacity: threshold,
        leakspeed: format!("{window_s}s"),
        simulated: dry_run,
        remediation: true,
        events: vec![lapi::Event {
            timestamp: at.into(),
            meta: vec![
                lapi::Meta { key: "source_ip".into(), value: ip.clone() },
                lapi::Meta { key: "service".into(), value: "ipscan".into() },
            ],
        }],
        source: lapi::Source { scope: "Ip".into(), value: ip.clone(), ip },
    }
}

/// Makes one interface's blocklist follow `changes`, at kernel time `now`; returns the lines to
/// write. Blocks made by hand are never changed or lifted; the blocks of decisions are
/// entries of reason [`BlockEntry::CROWDSEC`], which keep their drop counts when a decision
/// changes their end.
pub fn apply(
    tables: &mut Tables,
    changes: &[Change],
    now: u64,
    dry_run: bool,
) -> Result<Vec<Line>, tables::TableError> {
    let mut lines = Vec::new();
    let (mut blocked, mut lifted) = (0usize, 0usize);
    for change in changes {
        match change {
            Change::Block { net, until_ns, scenario } => {
                let entry = match tables.listed(net) {
                    Some(e) if e.reason != BlockEntry::CROWDSEC => continue,
                    Some(e) => BlockEntry { expires_ns: *until_ns, ..e },
                    None => BlockEntry {
                        expires_ns: *until_ns,
                        added_ns: now,
                        reason: BlockEntry::CROWDSEC,
                        ..BlockEntry::default()
                    },
                };
                tables.block(net, entry)?;
                blocked += 1;
                let secs = until_ns.saturating_sub(now) / 1_000_000_000;
                lines.push(block_line(net, secs, scenario, now, dry_run));
            }
            Change::Unblock { net } => {
                if let Some(row) = lift(tables, net) {
                    lifted += 1;
                    lines.push(unblock_line(&row.net, row.entry, now, dry_run));
                }
            }
        }
    }
    if lines.len() > LINES_PER_ANSWER {
        let text = format!("ipscan: crowdsec: {blocked} decisions blocked, {lifted} lifted");
        lines = vec![Line::plain(now, text)];
    }
    Ok(lines)
}

/// After the first answer: lifts the blocks of decisions that no longer exist (kept by the
/// pinned maps or the state file from an earlier run).
pub fn reconcile(tables: &mut Tables, decisions: &Decisions, now: u64, dry_run: bool) -> Vec<Line> {
    let stale: Vec<IpNet> = tables
        .manual_blocks()
        .into_iter()
        .filter(|r| r.entry.reason == BlockEntry::CROWDSEC && !decisions.holds(&r.net))
        .map(|r| r.net)
        .collect();
    let changes: Vec<Change> = stale.into_iter().map(|net| Change::Unblock { net }).collect();
    apply(tables, &changes, now, dry_run).unwrap_or_default()
}

fn lift(tables: &mut Tables, net: &IpNet) -> Option<tables::BlockRow> {
    tables.listed(net).filter(|e| e.reason == BlockEntry::CROWDSEC)?;
    tables.unlist(net)
}

fn block_line(net: &IpNet, secs: u64, scenario: &str, now: u64, dry_run: bool) -> Line {
    let shown = tables::show(net);
    let why = format!("crowdsec: {scenario}");
    let (event, text) = if dry_run {
        (json::Event::WouldBlock, format::would_block_for(&shown, secs, &why))
    } else {
        (json::Event::Blocked, format::blocked_for(&shown, secs, &why))
    };
    let meta = Meta {
        event: Some(event),
        src: Some(net.addr()),
        block_ns: Some(secs.saturating_mul(1_000_000_000)),
        ..Meta::default()
    };
    Line { at_ns: now, text, detected: None, meta }
}

fn unblock_line(net: &IpNet, e: BlockEntry, now: u64, dry_run: bool) -> Line {
    let shown = tables::show(net);
    let meta = Meta {
        event: Some(if dry_run { json::Event::WouldUnblock } else { json::Event::Unblocked }),
        src: Some(net.addr()),
        packets: Some(e.packets),
        bytes: Some(e.bytes),
        ..Meta::default()
    };
    Line { at_ns: now, text: format::unblock(dry_run, &shown, e.packets, e.bytes), detected: None, meta }
}
