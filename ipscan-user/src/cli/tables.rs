//! `ipscan block`, `allow` and `stats`: the running daemons' pinned maps, read and changed.

use anyhow::Context as _;
use clap::Subcommand;

use super::Daemons;
use crate::{
    clock,
    config::{self, IpNet},
    kernel::{
        loader, pins,
        tables::{self, Tables},
    },
    log::format,
};

#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    /// One JSON array (one object per interface) instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    place: Daemons,
}

#[derive(clap::Args, Debug)]
pub struct BlockArgs {
    #[command(subcommand)]
    action: BlockAction,
    #[command(flatten)]
    place: Daemons,
}

#[derive(Subcommand, Debug)]
pub enum BlockAction {
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
pub struct AllowArgs {
    #[command(subcommand)]
    action: AllowAction,
    #[command(flatten)]
    place: Daemons,
}

#[derive(Subcommand, Debug)]
pub enum AllowAction {
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

/// The interfaces a table command acts on, each with its opened maps.
pub(super) fn tables(place: &Daemons) -> anyhow::Result<Vec<(String, Tables)>> {
    if !loader::has_map_privilege() {
        anyhow::bail!("reading the daemon's maps needs root or CAP_BPF");
    }
    let mut out = Vec::new();
    for iface in place.ifaces()? {
        if !place.running(&iface) {
            eprintln!("ipscan: no daemon is running on {iface}; changes apply when one starts there");
        }
        let t = Tables::open_pinned(&place.dir(&iface))?;
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
    place: &Daemons,
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

pub(super) fn block(args: BlockArgs) -> anyhow::Result<()> {
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
    let now = clock::monotonic_ns();
    match args.action {
        BlockAction::List { json } => {
            let rows = rows_of(&all, Tables::blocks);
            if json {
                let v: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|(iface, r)| {
                        serde_json::json!({
                            "iface": iface,
                            "prefix": tables::show(&r.net),
                            "auto": r.auto,
                            "reason": r.reason(),
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
                    let reason = r.reason();
                    let exp = match secs_left(r.entry.expires_ns, now) {
                        None => "never".to_owned(),
                        Some(0) => "expired".to_owned(),
                        Some(s) => format!("{s}s"),
                    };
                    println!(
                        "{:<16} {:<40} {:<12} {:>10} {:>12} {:>14}",
                        iface,
                        tables::show(&r.net),
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
                tables::set_pinned_flags(
                    &pins::iface_dir(&args.place.pin_root, iface),
                    ipscan_common::config::global_flags::BLOCKLIST,
                )?;
                match ttl {
                    Some(_) => {
                        eprintln!("ipscan: {iface}: blocked {} for {} s", tables::show(&net), ttl_ns / 1_000_000_000)
                    }
                    None => eprintln!("ipscan: {iface}: blocked {} until removed", tables::show(&net)),
                }
            }
        }
        BlockAction::Del { prefix } => {
            let net = parse_net(&prefix)?;
            let mut found = false;
            for (iface, t) in &mut all {
                let dry_run = dry_run(&args.place, iface);
                for r in t.unblock(&net) {
                    found = true;
                    eprintln!(
                        "ipscan: {iface}: {}",
                        format::unblock(dry_run, &tables::show(&r.net), r.entry.packets, r.entry.bytes)
                    );
                }
            }
            if !found {
                anyhow::bail!("{} is not blocked", tables::show(&net));
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

/// Whether the daemon on `iface` runs `dry_run` (its blocks drop nothing).
fn dry_run(place: &Daemons, iface: &str) -> bool {
    tables::pinned_flags(&pins::iface_dir(&place.pin_root, iface)) & ipscan_common::config::global_flags::DRY_RUN != 0
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

pub(super) fn allow(args: AllowArgs) -> anyhow::Result<()> {
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
                            "prefix": tables::show(&r.net),
                            "reasons": reasons(r.reason).split(',').collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                println!("{:<16} {:<40} REASONS", "IFACE", "PREFIX");
                for (iface, r) in &rows {
                    println!("{:<16} {:<40} {}", iface, tables::show(&r.net), reasons(r.reason));
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
                eprintln!("ipscan: {iface}: allowlisted {}", tables::show(&net));
                let dry_run = dry_run(&args.place, iface);
                for r in t.unblock_auto_within(&net) {
                    eprintln!(
                        "ipscan: {iface}: {}",
                        format::unblock(dry_run, &tables::show(&r.net), r.entry.packets, r.entry.bytes)
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
                    eprintln!("ipscan: {iface}: removed {} from the allowlist", tables::show(&net));
                }
            }
            if !found {
                anyhow::bail!("{} was not added with `ipscan allow add`", tables::show(&net));
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
pub(super) fn stats(args: StatsArgs) -> anyhow::Result<()> {
    if !loader::has_map_privilege() {
        anyhow::bail!("reading the daemon's maps needs root or CAP_BPF");
    }
    let mut snaps = Vec::new();
    for iface in args.place.ifaces()? {
        let snap = crate::kernel::stats::read_pinned(&args.place.dir(&iface)).with_context(|| iface.clone())?;
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
        let running = if args.place.running(iface) { "" } else { " (no daemon running)" };
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
