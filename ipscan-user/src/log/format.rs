//! iplog-format log lines. Byte-compatible with iplog 2.2.3 where ipscan keeps a feature.

use std::{
    fmt::Write as _,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use chrono::{DateTime, Local};
use ipscan_common::{
    Detection, FAMILY_V4,
    window::{LOGGED_DPORTS, LOGGED_SPORTS},
};

/// The address in a key or summary as an `IpAddr` (IPv6 prints in RFC 5952 compressed form).
pub fn addr(bytes: &[u8; 16], family: u8) -> IpAddr {
    if family == FAMILY_V4 {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*bytes))
    }
}

/// iplog's syslog-style stamp, `%b %e %H:%M:%S` (`Nov 14 18:09:08`, `Nov  4 08:01:02`).
pub fn stamp(t: &DateTime<Local>) -> String {
    t.format("%b %e %H:%M:%S").to_string()
}

/// An address given as four native-order words (IPv4 in the first), as events carry hosts.
pub fn addr_words(w: &[u32; 4], family: u8) -> IpAddr {
    let mut b = [0u8; 16];
    for (i, x) in w.iter().enumerate() {
        b[4 * i..4 * i + 4].copy_from_slice(&x.to_ne_bytes());
    }
    addr(&b, family)
}

/// `[ports a,b,c]`, `[port a]`, or `[ports a,...,j,...]` once `cap` entries fill the list.
pub fn port_list(ports: &[u16], cap: usize, full: bool) -> String {
    let mut s = String::from(if ports.len() == 1 && !full { "[port " } else { "[ports " });
    for (i, p) in ports.iter().take(cap).enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{p}");
    }
    if full {
        s.push_str(",...");
    }
    s.push(']');
    s
}

/// What a detection line needs.
#[derive(Clone, Debug)]
pub struct Detected<'a> {
    pub detection: Detection,
    /// The source as printed (address, or `name (address)` with log_ip).
    pub source: &'a str,
    /// Destination as printed when `log_dest` is on.
    pub dest: Option<&'a str>,
    pub dports: &'a [u16],
    /// Whether the destination-port list reached its capacity (more ports were seen).
    pub dports_full: bool,
    pub sports: &'a [u16],
    pub sports_full: bool,
    /// Sweeps: the distinct hosts counted, and the first of them (fewer when not all are known).
    pub hosts: Option<(u32, &'a [IpAddr])>,
}

/// `TCP: SYN scan detected [ports 21,1] from 10.10.150.1 [ports 34333,34335,...]`
pub fn detected(d: &Detected<'_>) -> String {
    detected_as(d.detection.names().proto, d)
}

/// [`detected`] with the protocol prefix given: a detection kept per protocol (rejected
/// probes) takes it from its key. `TCP: rejected probes detected [ports 1,...] from H [port P]`
pub fn detected_as(proto: &str, d: &Detected<'_>) -> String {
    let name = d.detection.names().log_name;
    let mut s = format!("{proto}: {name} detected");
    if let Some((count, hosts)) = d.hosts {
        // `TCP: SYN sweep detected [port 22] of 10 hosts [198.18.1.1,...] from 198.18.0.1`:
        // the ports swept (none for pings), how many hosts and the first of them.
        if !d.dports.is_empty() {
            let _ = write!(s, " {}", port_list(d.dports, LOGGED_SPORTS, d.dports_full));
        }
        let _ = write!(s, " of {count} hosts [");
        for (i, h) in hosts.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(s, "{h}");
        }
        if (hosts.len() as u32) < count {
            s.push_str(if hosts.is_empty() { "..." } else { ",..." });
        }
        let _ = write!(s, "] from {}", d.source);
        return s;
    }
    if let Some(dest) = d.dest {
        let _ = write!(s, " to {dest}");
    }
    // iplog's UDP "scan/flood" line always lists ports, so the rate detection does too.
    if d.detection.counts_ports() || d.detection == Detection::UdpFlood {
        let _ = write!(
            s,
            " {} from {} {}",
            port_list(d.dports, LOGGED_DPORTS, d.dports_full),
            d.source,
            port_list(d.sports, LOGGED_SPORTS, d.sports_full)
        );
    } else {
        let _ = write!(s, " from {}", d.source);
    }
    s
}

/// `TCP: port scan mode expired for 10.10.150.1 - received a total of 1678 packets (47092 bytes).`
pub fn expired(detection: Detection, source: &str, dest: Option<&str>, packets: u64, bytes: u64) -> String {
    let (proto, name) = (detection.names().proto, detection.names().log_name);
    let to = dest.map(|d| format!(" to {d}")).unwrap_or_default();
    format!("{proto}: {name} mode{to} expired for {source} - received a total of {packets} packets ({bytes} bytes).")
}

/// `TCP: rejected probes mode expired for 198.18.0.1 - 12 probes rejected.`: the end of a mode
/// counted from the host's rejects (the rejected probes, the port scans under `counting
/// confirmed`): how many, not bytes received (a reset does not tell how long its probe was).
pub fn rejected_expired(proto: &str, name: &str, source: &str, dest: Option<&str>, rejects: u64) -> String {
    let to = dest.map(|d| format!(" to {d}")).unwrap_or_default();
    format!("{proto}: {name} mode{to} expired for {source} - {rejects} probes rejected.")
}

/// About how many distinct sources a distributed flood's count stands for: exact up to the
/// state's exact list (`EXACT_PORTS` values), then linear counting on its 1024-bit bitmap (past
/// the list the count is the number of bits set); `None` when the bitmap is too full to tell
/// (over about 5,000).
pub fn sources_estimate(distinct: u32) -> Option<u64> {
    const BITS: f64 = (ipscan_common::window::BITMAP_WORDS * 64) as f64;
    if distinct as usize <= ipscan_common::window::EXACT_PORTS {
        return Some(distinct as u64);
    }
    let set = f64::from(distinct);
    if set >= BITS - 4.0 {
        return None;
    }
    let n = -BITS * (1.0 - set / BITS).ln();
    // Two significant digits: the estimate is no better.
    let scale = 10f64.powi((n.log10().floor() as i32 - 1).max(0));
    Some(((n / scale).round() * scale) as u64)
}

/// `about 1200 sources`, `over 5000 sources`.
fn sources_text(distinct: u32) -> String {
    match sources_estimate(distinct) {
        Some(n) if n as usize <= ipscan_common::window::EXACT_PORTS => format!("{n} sources"),
        Some(n) => format!("about {n} sources"),
        None => "over 5000 sources".to_owned(),
    }
}

/// What a distributed flood's detection line needs.
#[derive(Clone, Debug)]
pub struct Flood<'a> {
    /// `TCP`, `UDP` or `ICMP`.
    pub proto: &'a str,
    pub target: &'a str,
    /// The ports hit (none for ICMP), and whether there were more.
    pub ports: &'a [u16],
    pub ports_full: bool,
    /// The kernel's distinct count of sources ([`sources_estimate`]).
    pub distinct: u32,
    /// Packets a second in the rate window that crossed the threshold.
    pub rate: u64,
}

/// `UDP: distributed flood detected to 198.18.0.2 [port 53] from about 1200 sources (48000
/// packets/s)`
pub fn flood_detected(f: &Flood<'_>) -> String {
    let mut s = format!("{}: distributed flood detected to {}", f.proto, f.target);
    if !f.ports.is_empty() {
        let _ = write!(s, " {}", port_list(f.ports, LOGGED_SPORTS, f.ports_full));
    }
    let _ = write!(s, " from {} ({} packets/s)", sources_text(f.distinct), f.rate);
    s
}

/// `UDP: distributed flood mode expired for 198.18.0.2 - received a total of 30000 packets
/// (960000 bytes) from about 1200 sources.` (no sources when the state was gone).
pub fn flood_expired(proto: &str, target: &str, packets: u64, bytes: u64, distinct: Option<u32>) -> String {
    let from = distinct.map(|d| format!(" from {}", sources_text(d))).unwrap_or_default();
    format!(
        "{proto}: distributed flood mode expired for {target} - received a total of {packets} packets ({bytes} bytes){from}."
    )
}

/// `TCP: distributed scan mode expired for 198.18.0.2 - received a total of 57 packets (1368
/// bytes).` (decoy scans too: the mode is the detection's).
pub fn spread_scan_expired(target: &str, packets: u64, bytes: u64) -> String {
    format!("TCP: distributed scan mode expired for {target} - received a total of {packets} packets ({bytes} bytes).")
}

/// What a distributed or decoy scan's detection line needs.
#[derive(Clone, Debug)]
pub struct SpreadScan<'a> {
    pub target: &'a str,
    /// The first ports probed, and whether there were more.
    pub ports: &'a [u16],
    pub ports_full: bool,
    /// Distinct sources told apart (the kernel tells up to five apart: five means five or more).
    pub sources: u8,
    /// The first sources, as far as they are known.
    pub named: &'a [IpAddr],
    /// Probes per port: each source probed each port (a decoy scan), or the ports were shared.
    pub decoy: bool,
}

/// Whether a distributed scan's sources each probed every port (nmap -D: one probe a port from
/// each decoy and from the scanner) rather than sharing the ports out: probes per distinct port
/// at least three quarters of the sources.
pub fn is_decoy(packets: u64, ports: u32, sources: u8) -> bool {
    ports != 0 && packets * 4 >= u64::from(ports) * 3 * u64::from(sources)
}

/// `TCP: decoy scan detected to 198.18.0.2 [ports 1,2,...] from 4 sources [198.18.0.1,...]`,
/// `TCP: distributed scan detected to ... from 5 or more sources [...,...]`.
pub fn spread_scan_detected(d: &SpreadScan<'_>) -> String {
    let name = if d.decoy { "decoy scan" } else { "distributed scan" };
    let many = d.sources as usize >= LOGGED_SPORTS;
    let count = if many { format!("{} or more", d.sources) } else { d.sources.to_string() };
    let list = d.named.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
    let more =
        if many || d.named.len() < d.sources as usize { if list.is_empty() { "..." } else { ",..." } } else { "" };
    format!(
        "TCP: {name} detected to {} {} from {count} sources [{list}{more}]",
        d.target,
        port_list(d.ports, LOGGED_DPORTS, d.ports_full)
    )
}

/// `Blocked 198.18.0.1 for 3600 s (SYN scan)`; with an escalating block time
/// (`block ... escalate`), the offence: `Blocked 198.18.0.1 for 14400 s (SYN scan, offence 2)`.
pub fn blocked(source: &str, secs: u64, detection: Detection, offence: Option<u32>) -> String {
    blocked_for(source, secs, &why(detection, offence))
}

/// The parenthesis of a block line: the detection, and the offence when numbered.
fn why(detection: Detection, offence: Option<u32>) -> String {
    match offence {
        Some(n) => format!("{}, offence {n}", detection.names().log_name),
        None => detection.names().log_name.to_owned(),
    }
}

/// `Not blocked 198.18.0.1: allowlisted (SYN scan)`
pub fn not_blocked(source: &str, detection: Detection) -> String {
    format!("Not blocked {source}: allowlisted ({})", detection.names().log_name)
}

/// `Unblocked 198.18.0.1 - dropped 12 packets (480 bytes).`
pub fn unblocked(source: &str, packets: u64, bytes: u64) -> String {
    format!("Unblocked {source} - dropped {packets} packets ({bytes} bytes).")
}

/// `dry_run`: `Would block 198.18.0.1 for 3600 s (SYN scan)`, and as [`blocked`] with the offence.
pub fn would_block(source: &str, secs: u64, detection: Detection, offence: Option<u32>) -> String {
    would_block_for(source, secs, &why(detection, offence))
}

/// A block for another reason than a detection: `Blocked 198.18.0.0/24 for 14399 s (crowdsec:
/// ipscan/syn_scan)`.
pub fn blocked_for(source: &str, secs: u64, why: &str) -> String {
    format!("Blocked {source} for {secs} s ({why})")
}

/// `dry_run`: as [`blocked_for`].
pub fn would_block_for(source: &str, secs: u64, why: &str) -> String {
    format!("Would block {source} for {secs} s ({why})")
}

/// `dry_run`: `Would unblock 198.18.0.1 - would have dropped 12 packets (480 bytes).`
pub fn would_unblock(source: &str, packets: u64, bytes: u64) -> String {
    format!("Would unblock {source} - would have dropped {packets} packets ({bytes} bytes).")
}

/// The end of a block ([`unblocked`]), or under `dry_run` of a would-be one ([`would_unblock`]).
pub fn unblock(dry_run: bool, source: &str, packets: u64, bytes: u64) -> String {
    if dry_run { would_unblock(source, packets, bytes) } else { unblocked(source, packets, bytes) }
}

/// A threat feed's set, new or replaced: `Set drop loaded: 1234 prefixes (1200 IPv4, 34 IPv6)
/// from /etc/ipscan/drop.txt`.
pub fn set_loaded(name: &str, v4: u32, v6: u32, source: &str) -> String {
    let from = if source.is_empty() { String::new() } else { format!(" from {source}") };
    format!("Set {name} loaded: {} prefixes ({v4} IPv4, {v6} IPv6){from}", v4 + v6)
}

/// A set gone (`expired`: its `--ttl` lapsed; else removed): `Set drop expired - dropped 31
/// packets (744 bytes).`
pub fn set_gone(name: &str, expired: bool, packets: u64, bytes: u64) -> String {
    let how = if expired { "expired" } else { "removed" };
    format!("Set {name} {how} - dropped {packets} packets ({bytes} bytes).")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn seed_lines() {
        let syn = Detected {
            detection: Detection::SynScan,
            source: "10.10.150.1",
            dest: None,
            dports: &[21, 1],
            dports_full: false,
            sports: &[34333, 34335, 34325, 34326, 34327],
            sports_full: true,
            hosts: None,
        };
        assert_eq!(
            detected(&syn),
            "TCP: SYN scan detected [ports 21,1] from 10.10.150.1 [ports 34333,34335,34325,34326,34327,...]"
        );
        let fin = Detected {
            detection: Detection::FinScan,
            source: "10.10.150.1",
            dest: None,
            dports: &[3389, 1723, 256, 113, 22, 389, 554, 443, 21, 23],
            dports_full: true,
            sports: &[57876],
            sports_full: false,
            hosts: None,
        };
        assert_eq!(
            detected(&fin),
            "TCP: FIN scan detected [ports 3389,1723,256,113,22,389,554,443,21,23,...] from 10.10.150.1 [port 57876]"
        );
        assert_eq!(
            expired(Detection::PortScan, "10.10.150.1", None, 1678, 47092),
            "TCP: port scan mode expired for 10.10.150.1 - received a total of 1678 packets (47092 bytes)."
        );
        let ping = Detected {
            detection: Detection::PingFlood,
            source: "10.10.150.1",
            dest: None,
            dports: &[],
            dports_full: false,
            sports: &[],
            sports_full: false,
            hosts: None,
        };
        assert_eq!(detected(&ping), "ICMP: ping flood detected from 10.10.150.1");
    }

    #[test]
    fn sweep_lines_name_the_ports_the_count_and_the_first_hosts() {
        let hosts: Vec<IpAddr> = (1..=8).map(|i| IpAddr::V4(Ipv4Addr::new(198, 18, 1, i))).collect();
        let sweep = |detection, dports: &'static [u16], count, hosts| Detected {
            detection,
            source: "198.18.0.1",
            dest: Some("ignored"),
            dports,
            dports_full: false,
            sports: &[],
            sports_full: false,
            hosts: Some((count, hosts)),
        };
        assert_eq!(
            detected(&sweep(Detection::TcpSweep, &[22], 10, &hosts)),
            "TCP: SYN sweep detected [port 22] of 10 hosts \
             [198.18.1.1,198.18.1.2,198.18.1.3,198.18.1.4,198.18.1.5,198.18.1.6,198.18.1.7,198.18.1.8,...] \
             from 198.18.0.1"
        );
        assert_eq!(
            detected(&sweep(Detection::UdpSweep, &[161, 162], 3, &hosts[..3])),
            "UDP: sweep detected [ports 161,162] of 3 hosts [198.18.1.1,198.18.1.2,198.18.1.3] from 198.18.0.1"
        );
        assert_eq!(
            detected(&sweep(Detection::PingSweep, &[], 3, &hosts[1..3])),
            "ICMP: ping sweep detected of 3 hosts [198.18.1.2,198.18.1.3,...] from 198.18.0.1"
        );
        let w = [u32::from_ne_bytes([0x20, 0x01, 0x0d, 0xb8]), 0, 0, u32::from_ne_bytes([0, 0, 1, 7])];
        assert_eq!(addr_words(&w, ipscan_common::FAMILY_V6).to_string(), "2001:db8::107");
        let v4 = [u32::from_ne_bytes([198, 18, 1, 7]), 0, 0, 0];
        assert_eq!(addr_words(&v4, FAMILY_V4).to_string(), "198.18.1.7");
    }

    #[test]
    fn distributed_flood_lines() {
        let f =
            Flood { proto: "UDP", target: "198.18.0.2", ports: &[53], ports_full: false, distinct: 300, rate: 48000 };
        assert_eq!(
            flood_detected(&f),
            "UDP: distributed flood detected to 198.18.0.2 [port 53] from about 360 sources (48000 packets/s)"
        );
        let icmp = Flood { proto: "ICMP", ports: &[], distinct: 1023, ..f };
        assert_eq!(
            flood_detected(&icmp),
            "ICMP: distributed flood detected to 198.18.0.2 from over 5000 sources (48000 packets/s)"
        );
        assert_eq!(
            flood_expired("TCP", "2001:db8::2", 9, 360, Some(20)),
            "TCP: distributed flood mode expired for 2001:db8::2 - received a total of 9 packets (360 bytes) from 20 sources."
        );
        assert_eq!(
            flood_expired("TCP", "198.18.0.2", 9, 360, None),
            "TCP: distributed flood mode expired for 198.18.0.2 - received a total of 9 packets (360 bytes)."
        );
        // Linear counting: 512 of 1024 bits set stand for 1024 ln 2 = 710 sources.
        assert_eq!(sources_estimate(512), Some(710));
        assert_eq!(sources_estimate(28), Some(28));
        assert_eq!(sources_estimate(1021), None);
    }

    #[test]
    fn distributed_and_decoy_scan_lines() {
        let a: Vec<IpAddr> = ["198.18.0.1", "198.51.100.7", "203.0.113.9", "198.19.5.5"]
            .iter()
            .map(|s| s.parse().expect("addr"))
            .collect();
        let ports: Vec<u16> = (1..=10).collect();
        let decoy = SpreadScan {
            target: "198.18.0.2",
            ports: &ports,
            ports_full: true,
            sources: 4,
            named: &a,
            decoy: is_decoy(57, 15, 4),
        };
        assert_eq!(
            spread_scan_detected(&decoy),
            "TCP: decoy scan detected to 198.18.0.2 [ports 1,2,3,4,5,6,7,8,9,10,...] from 4 sources \
             [198.18.0.1,198.51.100.7,203.0.113.9,198.19.5.5]"
        );
        let spread = SpreadScan { sources: 5, named: &a[1..], decoy: is_decoy(15, 15, 5), ..decoy };
        assert_eq!(
            spread_scan_detected(&spread),
            "TCP: distributed scan detected to 198.18.0.2 [ports 1,2,3,4,5,6,7,8,9,10,...] from 5 or more sources \
             [198.51.100.7,203.0.113.9,198.19.5.5,...]"
        );
        // Retransmissions of a shared-out scan are not decoys: two probes a port from five sources.
        assert!(!is_decoy(30, 15, 5) && is_decoy(45, 15, 4) && !is_decoy(44, 15, 4));
        assert_eq!(
            spread_scan_expired("2001:db8::2", 57, 1368),
            "TCP: distributed scan mode expired for 2001:db8::2 - received a total of 57 packets (1368 bytes)."
        );
    }

    #[test]
    fn log_dest_and_ipv6() {
        let a = addr(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 6);
        assert_eq!(a.to_string(), "2001:db8::1");
        let x = Detected {
            detection: Detection::XmasScan,
            source: "2001:db8::1",
            dest: Some("2001:db8::2"),
            dports: &[80],
            dports_full: false,
            sports: &[1, 2],
            sports_full: false,
            hosts: None,
        };
        assert_eq!(detected(&x), "TCP: Xmas scan detected to 2001:db8::2 [port 80] from 2001:db8::1 [ports 1,2]");
        assert_eq!(
            expired(Detection::NullScan, "a", Some("b"), 1, 2),
            "TCP: null scan mode to b expired for a - received a total of 1 packets (2 bytes)."
        );
    }

    #[test]
    fn block_lines() {
        assert_eq!(blocked("198.18.0.1", 3600, Detection::SynScan, None), "Blocked 198.18.0.1 for 3600 s (SYN scan)");
        assert_eq!(
            blocked("2001:db8::1", 14400, Detection::UdpScan, Some(2)),
            "Blocked 2001:db8::1 for 14400 s (scan/flood, offence 2)"
        );
        assert_eq!(not_blocked("2001:db8::1", Detection::PortScan), "Not blocked 2001:db8::1: allowlisted (port scan)");
        assert_eq!(unblocked("198.18.0.0/24", 12, 480), "Unblocked 198.18.0.0/24 - dropped 12 packets (480 bytes).");
        assert_eq!(
            would_block("198.18.0.1", 3600, Detection::SynScan, None),
            "Would block 198.18.0.1 for 3600 s (SYN scan)"
        );
        assert_eq!(
            would_block("198.18.0.1", 57600, Detection::SynScan, Some(3)),
            "Would block 198.18.0.1 for 57600 s (SYN scan, offence 3)"
        );
        assert_eq!(
            would_unblock("198.18.0.1", 12, 480),
            "Would unblock 198.18.0.1 - would have dropped 12 packets (480 bytes)."
        );
    }

    #[test]
    fn stamp_pads_day_with_space() {
        let t = Local.with_ymd_and_hms(2026, 11, 4, 8, 1, 2).single().expect("valid time");
        assert_eq!(stamp(&t), "Nov  4 08:01:02");
    }
}
