//! `ipscan block`, `allow` and `stats`: the running daemons' pinned maps, read and changed.

use anyhow::Context as _;
use clap::Subcommand;

use super::Daemons;
use crate::{
    clock,
    config::{self, IpNet, feedlist},
    kernel::{
        feeds::{self, NewSet},
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
    /// List blocked prefixes and addresses with their drop counts and time left (with --set, the
    /// prefixes of that threat feed set).
    List {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
        /// List the prefixes of this set (see `import`).
        #[arg(long, value_name = "NAME")]
        set: Option<String>,
    },
    /// Block an address or prefix (ADDR or ADDR/LEN, IPv4 or IPv6).
    Add {
        /// Address or prefix to block.
        prefix: String,
        /// How long, e.g. 90s, 10m, 1h; default: until removed.
        #[arg(long)]
        ttl: Option<String>,
    },
    /// Remove a blocked address or prefix (also a kernel auto-block of that address), or a
    /// whole threat feed set (--set).
    Del {
        /// Address or prefix to unblock, as it was added.
        #[arg(required_unless_present = "set", conflicts_with = "set")]
        prefix: Option<String>,
        /// Remove this set with all its prefixes.
        #[arg(long, value_name = "NAME")]
        set: Option<String>,
    },
    /// Remove every block (threat feed sets stay: `del --set NAME`).
    Flush,
    /// Load a threat feed into a named set, replacing the set whole (a packet sees the old set
    /// or the new one, never half): plain lists, Spamhaus DROP/EDROP (text or JSON), FireHOL
    /// .netset; IPv4 and IPv6.
    Import {
        /// The list, or - for standard input.
        file: String,
        /// The set's name (default: the file's name without its extension).
        #[arg(long, value_name = "NAME")]
        set: Option<String>,
        /// Lift the set this long after the import unless imported again (90s, 10m, 1h, 1d).
        #[arg(long)]
        ttl: Option<String>,
    },
    /// List the threat feed sets with their prefixes and drops.
    Sets {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
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
        BlockAction::Del { prefix: Some(prefix), .. } => {
            parse_net(prefix)?;
        }
        BlockAction::Import { file, set, ttl } => {
            let list = read_list(file, set.as_deref())?;
            let ttl = ttl_ns(ttl.as_deref())?;
            return import(&args.place, &list, ttl);
        }
        BlockAction::Sets { json } => return sets(&args.place, *json),
        BlockAction::List { set: Some(name), json } => return list_set(&args.place, name, *json),
        BlockAction::Del { prefix: None, .. } | BlockAction::List { .. } | BlockAction::Flush => {}
    }
    let mut all = tables(&args.place)?;
    let now = clock::monotonic_ns();
    match args.action {
        BlockAction::List { json, .. } => {
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
        BlockAction::Del { set: Some(name), .. } => {
            for (iface, t) in &mut all {
                let (feeds, counts) = t.feeds_mut().with_context(|| iface.clone())?;
                let r = feeds.remove(counts, &name).with_context(|| iface.clone())?;
                eprintln!(
                    "ipscan: {iface}: removed set {name} ({} prefixes) - dropped {} packets ({} bytes)",
                    r.v4 + r.v6,
                    r.packets,
                    r.bytes
                );
            }
        }
        BlockAction::Del { prefix, .. } => {
            let net = parse_net(prefix.as_deref().unwrap_or_default())?;
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
        BlockAction::Import { .. } | BlockAction::Sets { .. } => {}
    }
    Ok(())
}

/// A threat feed read and checked, ready to import.
struct List {
    name: String,
    nets: Vec<IpNet>,
    /// The file as given, or `-`.
    source: String,
}

/// Reads and checks a list (`-`: standard input): every line before anything changes.
fn read_list(file: &str, set: Option<&str>) -> anyhow::Result<List> {
    let name = match set {
        Some(n) => n.to_owned(),
        None if file == "-" => anyhow::bail!("reading standard input needs --set NAME"),
        None => std::path::Path::new(file).file_stem().and_then(|s| s.to_str()).map(str::to_owned).unwrap_or_default(),
    };
    if !feeds::valid_name(&name) {
        anyhow::bail!(
            "invalid set name \"{name}\": 1 to 31 letters, digits, '-', '_' or '.'{}",
            if set.is_none() { " (name it with --set NAME)" } else { "" }
        );
    }
    let text = if file == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading standard input")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))?
    };
    let nets = feedlist::parse(&text, file)?;
    let source = if file == "-" {
        "-".to_owned()
    } else {
        std::fs::canonicalize(file).map_or_else(|_| file.to_owned(), |p| p.display().to_string())
    };
    Ok(List { name, nets, source })
}

/// `block import`: the set replaced whole on every interface.
fn import(place: &Daemons, list: &List, ttl_ns: u64) -> anyhow::Result<()> {
    let mut all = tables(place)?;
    refuse_uncounted(&all, place, ipscan_common::maps::BLOCKCOUNTS, "a set", |t| t.counts().is_some())?;
    let unix_ns = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    for (iface, t) in &mut all {
        let started = std::time::Instant::now();
        let expires_ns = if ttl_ns == 0 { 0 } else { clock::monotonic_ns() + ttl_ns };
        let (f, counts) = t.feeds_mut().with_context(|| iface.clone())?;
        let set =
            NewSet { name: &list.name, nets: &list.nets, expires_ns, source: &list.source, loaded_unix_ns: unix_ns };
        let c = f.import(counts, &set).with_context(|| iface.clone())?;
        if c.v4 + c.v6 > 0 {
            tables::set_pinned_flags(
                &pins::iface_dir(&place.pin_root, iface),
                ipscan_common::config::global_flags::BLOCKLIST,
            )?;
        }
        let ttl = if ttl_ns == 0 { String::new() } else { format!(" for {} s", ttl_ns / 1_000_000_000) };
        eprintln!(
            "ipscan: {iface}: set {}: {} prefixes ({} IPv4, {} IPv6){ttl}: {} added, {} removed in {:.2} s",
            list.name,
            c.v4 + c.v6,
            c.v4,
            c.v6,
            c.added,
            c.removed,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// `block sets`.
fn sets(place: &Daemons, json: bool) -> anyhow::Result<()> {
    let all = tables(place)?;
    let rows = rows_of(&all, |t| t.feeds().map_or_else(Vec::new, |f| f.sets()));
    if json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(iface, r)| {
                let mut j = crate::kernel::stats::set_json(r);
                j["iface"] = iface.as_str().into();
                j
            })
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return Ok(());
    }
    let now = clock::monotonic_ns();
    println!(
        "{:<16} {:<24} {:>9} {:>9} {:>10} {:>12} {:>14}  SOURCE",
        "IFACE", "SET", "IPV4", "IPV6", "EXPIRES", "PACKETS", "BYTES"
    );
    for (iface, r) in &rows {
        let exp = match secs_left(r.expires_ns, now) {
            None => "never".to_owned(),
            Some(s) => format!("{s}s"),
        };
        println!(
            "{:<16} {:<24} {:>9} {:>9} {:>10} {:>12} {:>14}  {}",
            iface, r.name, r.v4, r.v6, exp, r.packets, r.bytes, r.source
        );
    }
    Ok(())
}

/// `block list --set NAME`: its prefixes, one a line (JSON: one array of objects).
fn list_set(place: &Daemons, name: &str, json: bool) -> anyhow::Result<()> {
    let all = tables(place)?;
    let mut rows = Vec::new();
    for (iface, t) in &all {
        let f = t.feeds().ok_or(feeds::FeedError::Unsupported).with_context(|| iface.clone())?;
        for n in f.prefixes(name).with_context(|| iface.clone())? {
            rows.push((iface.clone(), n));
        }
    }
    if json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(iface, n)| serde_json::json!({ "iface": iface, "set": name, "prefix": tables::show(n) }))
            .collect();
        println!("{}", serde_json::Value::Array(v));
    } else {
        println!("{:<16} PREFIX", "IFACE");
        for (iface, n) in &rows {
            println!("{:<16} {}", iface, tables::show(n));
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
        for r in &s.sets {
            println!(
                "  {:<18} {:>14} prefixes, dropped {} packets ({} bytes)",
                format!("set {}", r.name),
                r.v4 + r.v6,
                r.packets,
                r.bytes
            );
        }
    }
    Ok(())
}
