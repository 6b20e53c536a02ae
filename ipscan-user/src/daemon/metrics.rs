//! `ipscan run --metrics ADDR:PORT`: Prometheus text exposition on `GET /metrics`.
//!
//! The HTTP side is a minimal HTTP/1.1 responder (one request per connection, then close): a
//! scraper needs nothing more, and a framework would be most of the binary. Each scrape asks the
//! daemon's main loop for a fresh [`Scrape`] over a channel, so the numbers are read from the
//! kernel at scrape time by the task that owns the maps.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

use ipscan_common::stats;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::{mpsc, oneshot},
};

use crate::kernel::stats::Snapshot;

/// Address of `--metrics PORT` (only a port given): loopback, so the endpoint is never exposed
/// by accident.
pub const DEFAULT_ADDR: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// Largest request head read; scrapers send a few hundred bytes.
const MAX_HEAD: usize = 8192;
/// A client that sends nothing for this long is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("invalid --metrics \"{text}\": expected PORT, ADDR:PORT or [ADDR6]:PORT")]
    Addr { text: String },
    #[error("cannot listen on {addr} for metrics: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// `9464` -> 127.0.0.1:9464; `0.0.0.0:9464`, `[::1]:9464` as written.
pub fn parse_addr(text: &str) -> Result<SocketAddr, MetricsError> {
    let bad = || MetricsError::Addr { text: text.to_owned() };
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(DEFAULT_ADDR), port));
    }
    text.parse::<SocketAddr>().map_err(|_| bad())
}

/// What the daemon knows about one interface at scrape time.
#[derive(Clone, Debug, Default)]
pub struct IfaceScrape {
    pub iface: String,
    /// The program is attached (false while the interface is gone).
    pub attached: bool,
    /// None when the kernel's maps could not be read (the error is on stderr).
    pub kernel: Option<Snapshot>,
    /// Detection lines written since the daemon started, by kind.
    pub detections: BTreeMap<&'static str, u64>,
    /// Sources in a mode now, by kind.
    pub active: BTreeMap<&'static str, u64>,
    /// Sources in the repeat-offender history now, and those forgotten because it was full.
    pub offenders: u64,
    pub offenders_forgotten: u64,
    /// Prefixes blocked for CrowdSec decisions (None without `crowdsec bouncer`).
    pub crowdsec: Option<u64>,
}

/// One scrape: every interface of the daemon.
pub type Scrape = Vec<IfaceScrape>;

/// A request for a scrape, answered by the daemon's main loop.
pub type Request = oneshot::Sender<Scrape>;

/// Help text of each STATS slot's metric.
fn counter_help(name: &str) -> &'static str {
    match name {
        "packets" => "Frames seen by the XDP program.",
        "passed" => "Frames passed.",
        "dropped" => "Frames dropped.",
        "malformed" => "Frames that could not be parsed, passed untouched.",
        "not_ip" => "Frames that are not IP, passed untouched.",
        "map_errors" => "Failed map lookups or updates (the frame was passed).",
        "lost_events" => "Events lost because the ring buffer was full.",
        "detections" => "Threshold crossings reported by the kernel.",
        "kernel_expiries" => "Mode expiries noticed by the kernel before user space swept them.",
        "ipv6_ext_limit" => "IPv6 frames whose extension-header chain exceeded the parser's bound.",
        "fragments" => "Non-first IP fragments.",
        "blocked" => "Frames from blocked sources (dropped, or passed under dry_run).",
        "hardened" => "Frames a hardening option drops (passed under dry_run).",
        "rate_limited" => "Per-packet events left out by the per-source rate limit.",
        "ignored" => "Frames skipped by an ignore rule.",
        "autoblocks" => "Sources auto-blocked by the kernel.",
        "allowlisted" => "Detections from allowlisted sources that were not blocked.",
        "not_watched" => "Frames whose destination is outside the promisc networks.",
        "autoblock_evictions" => {
            "Auto-blocks given up by a full AUTOBLOCK set for newer ones (the source is detected anew)."
        }
        "dry_run_passed" => "Frames a block or hardening option would have dropped, passed because of dry_run.",
        _ => "Kernel counter.",
    }
}

/// Escapes a label value (backslash, quote, newline).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", esc(v))).collect();
        let _ = writeln!(self.out, "{name}{{{}}} {value}", labels.join(","));
    }
}

/// The Prometheus text exposition (format 0.0.4) of a scrape.
pub fn render(scrape: &[IfaceScrape]) -> String {
    let mut out = String::new();
    let mut f = Family { out: &mut out };
    let kernel = || scrape.iter().filter_map(|s| s.kernel.as_ref().map(|k| (s.iface.as_str(), k)));

    f.head("ipscan_attached", "gauge", "1 when the XDP program is attached to the interface.");
    for s in scrape {
        f.sample("ipscan_attached", &[("iface", &s.iface)], u64::from(s.attached));
    }

    f.head("ipscan_verdicts_total", "counter", "Frames by XDP verdict.");
    for (iface, k) in kernel() {
        for (verdict, slot) in [("pass", stats::PASSED), ("drop", stats::DROPPED)] {
            let v = k.counters.get(slot as usize).copied().unwrap_or(0);
            f.sample("ipscan_verdicts_total", &[("iface", iface), ("verdict", verdict)], v);
        }
    }

    // Every STATS slot by its name, so nothing the kernel counts is missing here.
    for (i, name) in stats::NAMES.iter().enumerate() {
        let metric = format!("ipscan_kernel_{name}_total");
        f.head(&metric, "counter", counter_help(name));
        for (iface, k) in kernel() {
            f.sample(&metric, &[("iface", iface)], k.counters.get(i).copied().unwrap_or(0));
        }
    }

    f.head("ipscan_detections_total", "counter", "Detection lines written since the daemon started, by kind.");
    for s in scrape {
        for (kind, n) in &s.detections {
            f.sample("ipscan_detections_total", &[("iface", &s.iface), ("kind", kind)], *n);
        }
    }

    f.head("ipscan_active_modes", "gauge", "Sources in a detection mode now, by kind.");
    for s in scrape {
        for (kind, n) in &s.active {
            f.sample("ipscan_active_modes", &[("iface", &s.iface), ("kind", kind)], *n);
        }
    }

    f.head("ipscan_blocklist_entries", "gauge", "Blocked prefixes (manual) and addresses (auto).");
    for (iface, k) in kernel() {
        f.sample("ipscan_blocklist_entries", &[("iface", iface), ("type", "manual")], k.manual_blocks);
        f.sample("ipscan_blocklist_entries", &[("iface", iface), ("type", "auto")], k.autoblock);
    }
    f.head(
        "ipscan_blocklist_dropped_packets",
        "gauge",
        "Packets dropped by the blocks that exist now (falls when a block expires).",
    );
    for (iface, k) in kernel() {
        f.sample("ipscan_blocklist_dropped_packets", &[("iface", iface)], k.block_packets);
    }
    f.head("ipscan_blocklist_dropped_bytes", "gauge", "IP payload bytes dropped by the blocks that exist now.");
    for (iface, k) in kernel() {
        f.sample("ipscan_blocklist_dropped_bytes", &[("iface", iface)], k.block_bytes);
    }

    if kernel().any(|(_, k)| !k.sets.is_empty()) {
        f.head("ipscan_set_prefixes", "gauge", "Prefixes in each threat feed set (ipscan block import), by family.");
        for (iface, k) in kernel() {
            for r in &k.sets {
                f.sample("ipscan_set_prefixes", &[("iface", iface), ("set", &r.name), ("family", "ipv4")], r.v4 as u64);
                f.sample("ipscan_set_prefixes", &[("iface", iface), ("set", &r.name), ("family", "ipv6")], r.v6 as u64);
            }
        }
        f.head(
            "ipscan_set_dropped_packets_total",
            "counter",
            "Frames dropped because a threat feed set lists their source.",
        );
        for (iface, k) in kernel() {
            for r in &k.sets {
                f.sample("ipscan_set_dropped_packets_total", &[("iface", iface), ("set", &r.name)], r.packets);
            }
        }
        f.head("ipscan_set_dropped_bytes_total", "counter", "IP payload bytes of the frames each set dropped.");
        for (iface, k) in kernel() {
            for r in &k.sets {
                f.sample("ipscan_set_dropped_bytes_total", &[("iface", iface), ("set", &r.name)], r.bytes);
            }
        }
    }

    f.head("ipscan_repeat_offenders", "gauge", "Sources remembered as blocked before (block ... escalate).");
    for s in scrape {
        f.sample("ipscan_repeat_offenders", &[("iface", &s.iface)], s.offenders);
    }
    f.head(
        "ipscan_repeat_offenders_forgotten_total",
        "counter",
        "Sources dropped from the repeat-offender history because it was full.",
    );
    for s in scrape {
        f.sample("ipscan_repeat_offenders_forgotten_total", &[("iface", &s.iface)], s.offenders_forgotten);
    }

    if scrape.iter().any(|s| s.crowdsec.is_some()) {
        f.head("ipscan_crowdsec_decisions", "gauge", "Prefixes blocked for CrowdSec decisions (crowdsec bouncer).");
        for s in scrape {
            if let Some(n) = s.crowdsec {
                f.sample("ipscan_crowdsec_decisions", &[("iface", &s.iface)], n);
            }
        }
    }

    f.head(
        "ipscan_map_entries",
        "gauge",
        "Entries in the bounded maps (LRU: the oldest go first when full; PROBATION: sources on probation).",
    );
    for (iface, k) in kernel() {
        f.sample("ipscan_map_entries", &[("iface", iface), ("map", "SOURCES")], k.sources);
        f.sample("ipscan_map_entries", &[("iface", iface), ("map", "PROBATION")], k.probation);
        f.sample("ipscan_map_entries", &[("iface", iface), ("map", "AUTOBLOCK")], k.autoblock);
    }
    f.head("ipscan_map_max_entries", "gauge", "Size of the bounded maps.");
    for (iface, k) in kernel() {
        f.sample("ipscan_map_max_entries", &[("iface", iface), ("map", "SOURCES")], u64::from(k.sources_max));
        f.sample("ipscan_map_max_entries", &[("iface", iface), ("map", "PROBATION")], u64::from(k.probation_max));
        f.sample("ipscan_map_max_entries", &[("iface", iface), ("map", "AUTOBLOCK")], u64::from(k.autoblock_max));
    }
    out
}

/// Binds the endpoint (before anything is attached, so a taken port is a one-line error).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, MetricsError> {
    TcpListener::bind(addr).await.map_err(|source| MetricsError::Bind { addr, source })
}

/// Serves scrapes until the daemon's main loop goes away.
pub async fn serve(listener: TcpListener, requests: mpsc::Sender<Request>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends pass; do not spin on them.
                eprintln!("ipscan: metrics: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if requests.is_closed() {
            return;
        }
        let requests = requests.clone();
        tokio::spawn(async move {
            let _ = answer(stream, requests).await;
        });
    }
}

/// The request line of a request head: method and path.
fn request_line(head: &[u8]) -> Option<(&str, &str)> {
    let text = std::str::from_utf8(head).ok()?;
    let mut parts = text.lines().next()?.split(' ');
    let method = parts.next()?;
    let target = parts.next()?;
    let version = parts.next()?;
    version.starts_with("HTTP/1.").then_some((method, target))
}

async fn answer(mut stream: TcpStream, requests: mpsc::Sender<Request>) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let complete = tokio::time::timeout(READ_TIMEOUT, async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
            let n = stream.read(&mut buf).await?;
            if n == 0 || head.len() + n > MAX_HEAD {
                return Ok::<bool, std::io::Error>(false);
            }
            head.extend_from_slice(buf.get(..n).unwrap_or_default());
        }
        Ok(true)
    })
    .await;
    if !matches!(complete, Ok(Ok(true))) {
        return respond(&mut stream, "400 Bad Request", "text/plain", "bad request\n", false).await;
    }
    let (status, body) = match request_line(&head) {
        None => ("400 Bad Request", "bad request\n".to_owned()),
        Some((method, _)) if method != "GET" && method != "HEAD" => ("405 Method Not Allowed", "only GET\n".to_owned()),
        Some((method, target)) if target == "/metrics" || target.starts_with("/metrics?") => {
            let (tx, rx) = oneshot::channel();
            let scrape = match requests.send(tx).await {
                Ok(()) => rx.await.ok(),
                Err(_) => None,
            };
            match scrape {
                Some(s) => {
                    let body = render(&s);
                    let ctype = "text/plain; version=0.0.4; charset=utf-8";
                    return respond(&mut stream, "200 OK", ctype, &body, method == "HEAD").await;
                }
                None => ("503 Service Unavailable", "ipscan is shutting down\n".to_owned()),
            }
        }
        Some(_) => ("404 Not Found", "ipscan serves /metrics only\n".to_owned()),
    };
    respond(&mut stream, status, "text/plain; charset=utf-8", &body, false).await
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    ctype: &str,
    body: &str,
    head_only: bool,
) -> std::io::Result<()> {
    let mut msg = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status.starts_with("405") {
        msg.push_str("Allow: GET, HEAD\r\n");
    }
    msg.push_str("\r\n");
    if !head_only {
        msg.push_str(body);
    }
    stream.write_all(msg.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(parse_addr("9464").ok(), "127.0.0.1:9464".parse().ok());
        assert_eq!(parse_addr("0.0.0.0:9464").ok(), "0.0.0.0:9464".parse().ok());
        assert_eq!(parse_addr("[::1]:9464").ok(), "[::1]:9464".parse().ok());
        let e = parse_addr("localhost").err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("invalid --metrics \"localhost\": expected PORT, ADDR:PORT or [ADDR6]:PORT"));
        assert!(parse_addr("1.2.3.4").is_err());
        assert!(parse_addr("70000").is_err());
    }

    #[test]
    fn request_lines() {
        assert_eq!(request_line(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Some(("GET", "/metrics")));
        assert_eq!(request_line(b"GET /metrics HTTP/1.0\n\n"), Some(("GET", "/metrics")));
        assert_eq!(request_line(b"GET /metrics\r\n\r\n"), None);
        assert_eq!(request_line(b"\xff\xfe"), None);
    }

    #[test]
    fn exposition() {
        let mut k = Snapshot::default();
        k.counters[stats::PACKETS as usize] = 100;
        k.counters[stats::PASSED as usize] = 90;
        k.counters[stats::DROPPED as usize] = 10;
        k.autoblock = 1;
        k.sources = 3;
        k.sources_max = 65536;
        k.probation = 7;
        k.probation_max = 65536;
        let s = IfaceScrape {
            iface: "eth0".into(),
            attached: true,
            kernel: Some(k),
            detections: BTreeMap::from([("SYN scan", 1)]),
            active: BTreeMap::from([("SYN scan", 1)]),
            offenders: 2,
            offenders_forgotten: 0,
            crowdsec: Some(3),
        };
        let text = render(&[s]);
        for want in [
            "ipscan_attached{iface=\"eth0\"} 1",
            "ipscan_verdicts_total{iface=\"eth0\",verdict=\"pass\"} 90",
            "ipscan_verdicts_total{iface=\"eth0\",verdict=\"drop\"} 10",
            "ipscan_kernel_packets_total{iface=\"eth0\"} 100",
            "ipscan_kernel_lost_events_total{iface=\"eth0\"} 0",
            "ipscan_detections_total{iface=\"eth0\",kind=\"SYN scan\"} 1",
            "ipscan_active_modes{iface=\"eth0\",kind=\"SYN scan\"} 1",
            "ipscan_blocklist_entries{iface=\"eth0\",type=\"auto\"} 1",
            "ipscan_repeat_offenders{iface=\"eth0\"} 2",
            "ipscan_repeat_offenders_forgotten_total{iface=\"eth0\"} 0",
            "ipscan_crowdsec_decisions{iface=\"eth0\"} 3",
            "ipscan_map_entries{iface=\"eth0\",map=\"SOURCES\"} 3",
            "ipscan_map_max_entries{iface=\"eth0\",map=\"SOURCES\"} 65536",
            "ipscan_map_entries{iface=\"eth0\",map=\"PROBATION\"} 7",
            "ipscan_map_max_entries{iface=\"eth0\",map=\"PROBATION\"} 65536",
            "# TYPE ipscan_kernel_rate_limited_total counter",
        ] {
            assert!(text.lines().any(|l| l == want), "missing {want}:\n{text}");
        }
        // Every family is announced once.
        let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        let mut names: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
        names.dedup();
        assert_eq!(types, names.len());
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
