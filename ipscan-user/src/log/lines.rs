//! iplog's per-packet and immediate lines (connection attempts, datagrams, ICMP messages, bogus
//! flags, traceroutes, fragment attacks, verbose anomalies), byte-compatible with iplog 2.2.3
//! where the kernel tells us what iplog printed.
//!
//! Deliberate differences from iplog, each because iplog was wrong or the data is not carried:
//! - destination unreachable names the real code (iplog always said "port is unreachable");
//! - a timestamp reply is logged as a reply (iplog logged it as a request), without the time;
//! - a quoted ICMP message of a type iplog had no name for reads `ICMP: type N`, and ICMPv6
//!   (which iplog did not know) `ipv6-icmp: type N, code C`;
//! - IPv6 sources with a port print as `[2001:db8::1]:80`;
//! - traceroute lines are kept per source and probe protocol (iplog remembered only the last
//!   source), one per 15 s;
//! - ICMP and TCP traceroute probes get `ICMP: traceroute ...` and `TCP: traceroute ...`.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr},
};

use ipscan_common::{
    Event, EventKind, FAMILY_V4, PacketLine, PacketSummary,
    packet::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, ip_flags},
};

use crate::{log::format, log::resolve::Namer};

/// iplog logged one traceroute line per source per this many seconds.
pub const TRACEROUTE_QUIET_NS: u64 = 15_000_000_000;

/// Sources remembered for traceroute deduplication before old ones are pruned.
const TRACEROUTE_REMEMBERED: usize = 4096;

/// The service name of a port (`ssh`), or `None`; injected so tests do not depend on the
/// host's `/etc/services`.
pub type Services<'a> = &'a dyn Fn(u16, &str) -> Option<String>;

/// The system services database, as iplog's `getservbyport`.
pub fn system_services(port: u16, proto: &str) -> Option<String> {
    crate::config::service_name(port, proto)
}

/// Per-interface state of the per-packet lines: the traceroute quiet period per source and
/// probe protocol (a UDP traceroute does not hide a following ICMP one).
#[derive(Debug, Default)]
pub struct PacketLines {
    traceroute: HashMap<(IpAddr, u8), u64>,
}

impl PacketLines {
    /// The line for a Packet or RateLimited event, if it gets one now.
    pub fn on_event(&mut self, ev: &Event, namer: &mut dyn Namer, log_dest: bool) -> Option<String> {
        let p = &ev.packet;
        let src_addr = format::addr(&p.src, p.family);
        match ev.kind()? {
            EventKind::RateLimited => {
                let src = namer.name(src_addr);
                Some(rate_limited(&src, ev.packets))
            }
            EventKind::Packet => {
                let line = PacketLine::from_u8(ev.line)?;
                if line == PacketLine::Traceroute && !self.traceroute_due((src_addr, p.proto), ev.ts_ns) {
                    return None;
                }
                let src = namer.name(src_addr);
                let dst = log_dest.then(|| namer.name(format::addr(&p.dst, p.family)));
                let icmp = if line == PacketLine::Icmp { IcmpNames::of(p, namer) } else { IcmpNames::default() };
                packet_line(line, p, &src, dst.as_deref(), &icmp, &system_services)
            }
            _ => None,
        }
    }

    fn traceroute_due(&mut self, src: (IpAddr, u8), now_ns: u64) -> bool {
        if let Some(last) = self.traceroute.get(&src)
            && now_ns.saturating_sub(*last) < TRACEROUTE_QUIET_NS
        {
            return false;
        }
        if self.traceroute.len() >= TRACEROUTE_REMEMBERED {
            self.traceroute.retain(|_, t| now_ns.saturating_sub(*t) < TRACEROUTE_QUIET_NS);
        }
        self.traceroute.insert(src, now_ns);
        true
    }
}

/// `ipscan: left out 120 per-packet lines from H (rate limit)`: ipscan's own line, not iplog's.
pub fn rate_limited(src: &str, n: u64) -> String {
    format!("ipscan: left out {n} per-packet lines from {src} (rate limit)")
}

/// `H:P`, or `[H]:P` when the host is a bare IPv6 address.
pub fn host_port(host: &str, port: impl std::fmt::Display) -> String {
    if host.parse::<std::net::Ipv6Addr>().is_ok() { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// `ssh`, or `port 22` when the services database has no name (iplog's `serv_lookup`).
pub fn service(port: u16, proto: &str, services: Services<'_>) -> String {
    services(port, proto).unwrap_or_else(|| format!("port {port}"))
}

/// Printed forms of the other addresses an ICMP message carries, named as iplog named them.
#[derive(Debug, Default)]
pub struct IcmpNames {
    /// The destination of the packet an ICMP error quotes, where the line shows it: a
    /// redirect's target, or the host that a router (not the host itself) reports unreachable.
    pub inner_dst: Option<String>,
    /// An IPv4 redirect's gateway.
    pub gateway: Option<String>,
}

impl IcmpNames {
    /// The names an ICMP line of `p` needs (none for other packets), from the same namer as
    /// its source (`log_ip`): only those the line prints, so that no other address is looked up.
    pub fn of(p: &PacketSummary, namer: &mut dyn Namer) -> Self {
        let v4 = p.family == FAMILY_V4 && p.proto == PROTO_ICMP;
        let v4_redirect = v4 && p.icmp_type == 5;
        let unreachable = (v4 && p.icmp_type == 3) || (p.proto == PROTO_ICMPV6 && p.icmp_type == 1);
        let shown = v4_redirect || (unreachable && p.inner_dst != p.src);
        Self {
            inner_dst: (p.inner_proto != 0 && shown).then(|| namer.name(format::addr(&p.inner_dst, p.family))),
            gateway: v4_redirect.then(|| namer.name(IpAddr::V4(Ipv4Addr::from(p.icmp_rest)))),
        }
    }
}

/// ` to D` when log_dest is on.
fn to(dst: Option<&str>) -> String {
    dst.map(|d| format!(" to {d}")).unwrap_or_default()
}

/// One per-packet line. `src` and `dst` are printed forms (addresses, or names with log_ip);
/// `dst` is `Some` when log_dest is on; `icmp` has the printed forms of an ICMP message's other
/// addresses. `None` for lines that are counted, not logged.
pub fn packet_line(
    line: PacketLine,
    p: &PacketSummary,
    src: &str,
    dst: Option<&str>,
    icmp: &IcmpNames,
    services: Services<'_>,
) -> Option<String> {
    Some(match line {
        PacketLine::TcpAttempt => format!(
            "TCP: {} connection attempt{} from {}",
            service(p.dport, "tcp", services),
            to(dst),
            host_port(src, p.sport)
        ),
        PacketLine::UdpDgram => {
            let svc = service(p.dport, "udp", services);
            let target = match dst {
                Some(d) => host_port(d, svc),
                None => svc,
            };
            format!("UDP: dgram to {target} from {} ({} data bytes)", host_port(src, p.sport), p.udp_data_len())
        }
        PacketLine::Icmp => icmp_line(p, src, dst, icmp),
        PacketLine::Bogus => {
            let dest = match dst {
                Some(d) => format!("dest {}", host_port(d, p.dport)),
                None => format!("dest port {}", p.dport),
            };
            format!("TCP: Bogus TCP flags set by {} ({dest})", host_port(src, p.sport))
        }
        PacketLine::Traceroute => {
            let proto = match p.proto {
                PROTO_TCP => "TCP",
                PROTO_UDP => "UDP",
                _ => "ICMP",
            };
            // iplog put the destination last here: "UDP: traceroute from H to D".
            format!("{proto}: traceroute from {src}{}", to(dst))
        }
        PacketLine::FragOversized => format!("Oversized IP fragment{} from {src}", to(dst)),
        PacketLine::FragOverlap => format!("Overlapping IP fragments{} from {src}", to(dst)),
        PacketLine::FragDuplicate => format!("Duplicate IP fragments{} from {src}", to(dst)),
        PacketLine::FragTiny => format!("Tiny IP fragment{} from {src}", to(dst)),
        PacketLine::Short => format!("Short IP packet{} from {src}", to(dst)),
        PacketLine::BadChecksum => format!("IP packet with invalid checksum{} from {src}", to(dst)),
        PacketLine::Hardened => return None,
    })
}

/// iplog's texts for destination-unreachable codes 0-15 (`icmp_unreach`).
const UNREACH4: [&str; 16] = [
    "network is unreachable",
    "host is unreachable",
    "protocol is unreachable",
    "port is unreachable",
    "fragmentation needed, IP_DF set",
    "source route failed",
    "network is unreachable(?)",
    "host is unreachable(?)",
    "host is isolated from source",
    "network is unreachable because of admin prohibited filter",
    "host is unreachable because of admin prohibited filter",
    "network is unreachable because tos is prohibited",
    "host is unreachable because tos is prohibited",
    "packet filtered",
    "precedence violation",
    "precedence cutoff",
];

/// ICMPv6 destination-unreachable codes (RFC 4443, 4.1), in iplog's wording where the meaning
/// is the same so that the same decoders match.
const UNREACH6: [&str; 7] = [
    "network is unreachable",
    "host is unreachable because of admin prohibited filter",
    "beyond scope of source address",
    "host is unreachable",
    "port is unreachable",
    "source address failed ingress/egress policy",
    "reject route to destination",
];

/// iplog's names of ICMP types without a special format (`icmp_codes`).
fn icmp4_name(t: u8) -> Option<&'static str> {
    Some(match t {
        0 => "echo reply",
        3 => "destination unreachable",
        4 => "source quench",
        5 => "redirect message",
        8 => "echo",
        9 => "path of router advertisement",
        10 => "router solicitation",
        11 => "time exceeded",
        12 => "parameter problem",
        13 => "timestamp request",
        14 => "timestamp reply",
        15 => "info request",
        16 => "info reply",
        17 => "address mask request",
        18 => "address mask reply",
        _ => return None,
    })
}

fn icmp6_name(t: u8) -> Option<&'static str> {
    Some(match t {
        1 => "destination unreachable",
        2 => "packet too big",
        3 => "time exceeded",
        4 => "parameter problem",
        128 => "echo",
        129 => "echo reply",
        133 => "router solicitation",
        134 => "router advertisement",
        135 => "neighbor solicitation",
        136 => "neighbor advertisement",
        137 => "redirect message",
        _ => return None,
    })
}

/// iplog's names of quoted ICMP types 0-18 (`icmp_types`).
const QUOTED_ICMP4: [&str; 19] = [
    "ICMP_ECHO_REPLY",
    "1",
    "2",
    "ICMP_DEST_UNREACHABLE",
    "ICMP_SOURCE_QUENCH",
    "ICMP_REDIRECT",
    "6",
    "7",
    "ICMP_ECHO",
    "ICMP_ROUTER_ADVERT",
    "ICMP_ROUTER_SOLICIT",
    "ICMP_TIME_EXCEEDED",
    "ICMP_PARAMETER_PROBLEM",
    "ICMP_TIMESTAMP",
    "ICMP_TIMESTAMP_REPLY",
    "ICMP_INFO_REQUEST",
    "ICMP_INFO_REPLY",
    "ICMP_ADDRESS_REQUEST",
    "ICMP_ADDRESS_REPLY",
];

/// What an ICMP error quotes, as iplog's `print_data`: `udp: dest port 33434, source port
/// 40000`, `ICMP: ICMP_ECHO`, `ICMP: ICMP_DEST_UNREACHABLE code 3`; the quoted protocol alone
/// when the rest was not in the frame.
fn quoted(p: &PacketSummary) -> String {
    let known = p.ip_flags & ip_flags::INNER_PORTS != 0;
    let (t, code) = (p.inner_icmp_type, p.inner_icmp_code);
    let name = match p.inner_proto {
        PROTO_TCP => "tcp".to_owned(),
        PROTO_UDP => "udp".to_owned(),
        PROTO_ICMP if known => {
            return match QUOTED_ICMP4.get(t as usize) {
                Some(name) if t == 3 || t == 5 => format!("ICMP: {name} code {code}"),
                Some(name) => format!("ICMP: {name}"),
                None => format!("ICMP: type {t}"),
            };
        }
        PROTO_ICMPV6 if known => return format!("ipv6-icmp: type {t}, code {code}"),
        PROTO_ICMP => "icmp".to_owned(),
        PROTO_ICMPV6 => "ipv6-icmp".to_owned(),
        0 => return "no quoted header".to_owned(),
        n => format!("proto {n}"),
    };
    if known { format!("{name}: dest port {}, source port {}", p.inner_dport, p.inner_sport) } else { name }
}

fn be32(b: [u8; 4]) -> u32 {
    u32::from_be_bytes(b)
}

/// `30 sec` or `30 min, 0 sec`, as iplog printed router advertisement lifetimes.
fn lifetime(secs: u16) -> String {
    if secs < 60 { format!("{secs} sec") } else { format!("{} min, {} sec", secs / 60, secs % 60) }
}

fn icmp_line(p: &PacketSummary, src: &str, dst: Option<&str>, names: &IcmpNames) -> String {
    let v4 = p.family == FAMILY_V4;
    let (t, code) = (p.icmp_type, p.icmp_code);
    let bytes = p.ip_payload_len;
    // Echo and echo reply carry the destination before the byte count.
    let echo = |name: &str| match dst {
        Some(d) => format!("ICMP: {name} from {src} to {d} ({bytes} bytes)"),
        None => format!("ICMP: {name} from {src} ({bytes} bytes)"),
    };
    // The default form: "ICMP: NAME from H", "ICMP: NAME to D from H".
    let plain = |name: &str, tail: &str| format!("ICMP: {name}{} from {src}{tail}", to(dst));
    // A router that reports someone else unreachable: "(from ROUTER) DEST" (see IcmpNames).
    let reporter = match &names.inner_dst {
        Some(inner) => format!("(from {src}) {inner}"),
        None => src.to_owned(),
    };
    let unreach = |texts: &[&str]| match texts.get(code as usize) {
        Some(text) => match dst {
            Some(d) => format!("ICMP: {reporter}: {text} to {d} ({})", quoted(p)),
            None => format!("ICMP: {reporter}: {text} to ({})", quoted(p)),
        },
        None => match dst {
            Some(d) => format!("ICMP: undefined destination unreachable code ({code}) from {src} to {d}"),
            None => format!("ICMP: undefined destination unreachable code ({code}) from {src}"),
        },
    };
    let exceeded = || match dst {
        Some(d) => format!("ICMP: {src} time exceeded to {d} ({})", quoted(p)),
        None => format!("ICMP: {src} time exceeded ({})", quoted(p)),
    };
    let undefined = || format!("ICMP: undefined ICMP type {t}{} from {src}", to(dst));
    if v4 {
        match t {
            0 | 8 => echo(icmp4_name(t).unwrap_or("echo")),
            3 => unreach(&UNREACH4),
            11 => exceeded(),
            5 => {
                // iplog's `icmp_redir`: (GATEWAY) redirect SOURCE to network|host TARGET.
                const FORMS: [(&str, &str); 4] = [
                    ("redirect", "network"),
                    ("redirect", "host"),
                    ("redirect-tos", "network"),
                    ("redirect-tos", "host"),
                ];
                match FORMS.get(code as usize) {
                    Some((verb, kind)) => {
                        let gw = names.gateway.clone().unwrap_or_else(|| Ipv4Addr::from(p.icmp_rest).to_string());
                        let target = names.inner_dst.as_deref().unwrap_or("(no quoted header)");
                        format!("ICMP: ({gw}) {verb} {src} to {kind} {target}")
                    }
                    None => format!("ICMP: undefined redirect code {code}{} from {src}", to(dst)),
                }
            }
            12 => plain("parameter problem", &format!(" (ptr {})", p.icmp_rest[0])),
            9 => plain(
                "path of router advertisement",
                &format!(" (lifetime {})", lifetime(u16::from_be_bytes([p.icmp_rest[2], p.icmp_rest[3]]))),
            ),
            _ => match icmp4_name(t) {
                Some(name) => plain(name, ""),
                None => undefined(),
            },
        }
    } else {
        match t {
            128 | 129 => echo(icmp6_name(t).unwrap_or("echo")),
            1 => unreach(&UNREACH6),
            3 => exceeded(),
            2 => plain("packet too big", &format!(" (mtu {})", be32(p.icmp_rest))),
            4 => plain("parameter problem", &format!(" (ptr {})", be32(p.icmp_rest))),
            _ => match icmp6_name(t) {
                Some(name) => plain(name, ""),
                None => undefined(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipscan_common::FAMILY_V6;

    fn svc(port: u16, proto: &str) -> Option<String> {
        match (port, proto) {
            (22, "tcp") => Some("ssh".into()),
            (53, _) => Some("domain".into()),
            (443, "tcp") => Some("https".into()),
            _ => None,
        }
    }

    fn v4(proto: u8) -> PacketSummary {
        let mut p = PacketSummary { family: FAMILY_V4, proto, ttl: 64, ..Default::default() };
        p.src[..4].copy_from_slice(&[10, 10, 150, 1]);
        p.dst[..4].copy_from_slice(&[10, 10, 150, 2]);
        p
    }

    fn v6(proto: u8) -> PacketSummary {
        let parse = |s: &str| s.parse::<std::net::Ipv6Addr>().expect("v6").octets();
        PacketSummary {
            family: FAMILY_V6,
            proto,
            ttl: 64,
            src: parse("2001:db8::1"),
            dst: parse("2001:db8::2"),
            ..Default::default()
        }
    }

    const S4: &str = "10.10.150.1";
    const D4: &str = "10.10.150.2";
    const S6: &str = "2001:db8::1";
    const D6: &str = "2001:db8::2";

    fn line(l: PacketLine, p: &PacketSummary, src: &str, dst: Option<&str>) -> String {
        let names = IcmpNames::of(p, &mut crate::log::resolve::Plain);
        packet_line(l, p, src, dst, &names, &svc).expect("a line")
    }

    #[test]
    fn tcp_connection_attempts() {
        let mut p = v4(PROTO_TCP);
        p.sport = 51251;
        p.dport = 22;
        assert_eq!(line(PacketLine::TcpAttempt, &p, S4, None), "TCP: ssh connection attempt from 10.10.150.1:51251");
        p.dport = 1723;
        p.sport = 51241;
        assert_eq!(
            line(PacketLine::TcpAttempt, &p, S4, None),
            "TCP: port 1723 connection attempt from 10.10.150.1:51241"
        );
        assert_eq!(
            line(PacketLine::TcpAttempt, &p, S4, Some(D4)),
            "TCP: port 1723 connection attempt to 10.10.150.2 from 10.10.150.1:51241"
        );
        let mut q = v6(PROTO_TCP);
        q.sport = 40000;
        q.dport = 443;
        assert_eq!(
            line(PacketLine::TcpAttempt, &q, S6, None),
            "TCP: https connection attempt from [2001:db8::1]:40000"
        );
        assert_eq!(
            line(PacketLine::TcpAttempt, &q, S6, Some(D6)),
            "TCP: https connection attempt to 2001:db8::2 from [2001:db8::1]:40000"
        );
        // A resolved name keeps iplog's form.
        assert_eq!(
            line(PacketLine::TcpAttempt, &q, "host.example.org (2001:db8::1)", None),
            "TCP: https connection attempt from host.example.org (2001:db8::1):40000"
        );
    }

    #[test]
    fn udp_datagrams() {
        let mut p = v4(PROTO_UDP);
        p.sport = 34324;
        p.dport = 1;
        p.ip_payload_len = 308;
        assert_eq!(
            line(PacketLine::UdpDgram, &p, S4, None),
            "UDP: dgram to port 1 from 10.10.150.1:34324 (300 data bytes)"
        );
        assert_eq!(
            line(PacketLine::UdpDgram, &p, S4, Some(D4)),
            "UDP: dgram to 10.10.150.2:port 1 from 10.10.150.1:34324 (300 data bytes)"
        );
        p.dport = 53;
        p.ip_payload_len = 8;
        assert_eq!(
            line(PacketLine::UdpDgram, &p, S4, None),
            "UDP: dgram to domain from 10.10.150.1:34324 (0 data bytes)"
        );
        let mut q = v6(PROTO_UDP);
        q.sport = 5353;
        q.dport = 53;
        q.ip_payload_len = 40;
        assert_eq!(
            line(PacketLine::UdpDgram, &q, S6, Some(D6)),
            "UDP: dgram to [2001:db8::2]:domain from [2001:db8::1]:5353 (32 data bytes)"
        );
    }

    #[test]
    fn bogus_flags() {
        let mut p = v4(PROTO_TCP);
        p.sport = 1234;
        p.dport = 80;
        assert_eq!(
            line(PacketLine::Bogus, &p, S4, None),
            "TCP: Bogus TCP flags set by 10.10.150.1:1234 (dest port 80)"
        );
        assert_eq!(
            line(PacketLine::Bogus, &p, S4, Some(D4)),
            "TCP: Bogus TCP flags set by 10.10.150.1:1234 (dest 10.10.150.2:80)"
        );
        let mut q = v6(PROTO_TCP);
        q.sport = 1234;
        q.dport = 80;
        assert_eq!(
            line(PacketLine::Bogus, &q, S6, Some(D6)),
            "TCP: Bogus TCP flags set by [2001:db8::1]:1234 (dest [2001:db8::2]:80)"
        );
    }

    #[test]
    fn traceroutes_fragments_and_verbose() {
        let cases = [
            (
                PacketLine::Traceroute,
                v4(PROTO_UDP),
                "UDP: traceroute from 10.10.150.1",
                "UDP: traceroute from 10.10.150.1 to 10.10.150.2",
            ),
            (
                PacketLine::Traceroute,
                v4(PROTO_ICMP),
                "ICMP: traceroute from 10.10.150.1",
                "ICMP: traceroute from 10.10.150.1 to 10.10.150.2",
            ),
            (
                PacketLine::Traceroute,
                v4(PROTO_TCP),
                "TCP: traceroute from 10.10.150.1",
                "TCP: traceroute from 10.10.150.1 to 10.10.150.2",
            ),
            (
                PacketLine::FragOversized,
                v4(PROTO_UDP),
                "Oversized IP fragment from 10.10.150.1",
                "Oversized IP fragment to 10.10.150.2 from 10.10.150.1",
            ),
            (
                PacketLine::FragOverlap,
                v4(PROTO_UDP),
                "Overlapping IP fragments from 10.10.150.1",
                "Overlapping IP fragments to 10.10.150.2 from 10.10.150.1",
            ),
            (
                PacketLine::FragDuplicate,
                v4(PROTO_UDP),
                "Duplicate IP fragments from 10.10.150.1",
                "Duplicate IP fragments to 10.10.150.2 from 10.10.150.1",
            ),
            (
                PacketLine::FragTiny,
                v4(PROTO_TCP),
                "Tiny IP fragment from 10.10.150.1",
                "Tiny IP fragment to 10.10.150.2 from 10.10.150.1",
            ),
            (
                PacketLine::Short,
                v4(PROTO_TCP),
                "Short IP packet from 10.10.150.1",
                "Short IP packet to 10.10.150.2 from 10.10.150.1",
            ),
            (
                PacketLine::BadChecksum,
                v4(PROTO_TCP),
                "IP packet with invalid checksum from 10.10.150.1",
                "IP packet with invalid checksum to 10.10.150.2 from 10.10.150.1",
            ),
        ];
        for (l, p, plain, dest) in cases {
            assert_eq!(line(l, &p, S4, None), plain);
            assert_eq!(line(l, &p, S4, Some(D4)), dest);
        }
        assert_eq!(line(PacketLine::Traceroute, &v6(PROTO_UDP), S6, None), "UDP: traceroute from 2001:db8::1");
        assert_eq!(
            line(PacketLine::FragOverlap, &v6(PROTO_UDP), S6, Some(D6)),
            "Overlapping IP fragments to 2001:db8::2 from 2001:db8::1"
        );
        assert_eq!(packet_line(PacketLine::Hardened, &v4(PROTO_TCP), S4, None, &IcmpNames::default(), &svc), None);
    }

    fn icmp4(t: u8, code: u8) -> PacketSummary {
        PacketSummary { icmp_type: t, icmp_code: code, ip_payload_len: 64, ..v4(PROTO_ICMP) }
    }

    fn icmp6(t: u8, code: u8) -> PacketSummary {
        PacketSummary { icmp_type: t, icmp_code: code, ip_payload_len: 64, ..v6(PROTO_ICMPV6) }
    }

    /// `p` quoting a packet to `p`'s own source (the destination reports itself).
    fn quoting(mut p: PacketSummary, proto: u8, sport: u16, dport: u16) -> PacketSummary {
        p.inner_proto = proto;
        p.inner_sport = sport;
        p.inner_dport = dport;
        p.inner_dst = p.src;
        p.ip_flags |= ip_flags::INNER_PORTS;
        p
    }

    /// `p` quoting an ICMP message of type `t` to `p`'s own source.
    fn quoting_icmp(mut p: PacketSummary, t: u8, code: u8) -> PacketSummary {
        p.inner_proto = if p.family == FAMILY_V4 { PROTO_ICMP } else { PROTO_ICMPV6 };
        p.inner_icmp_type = t;
        p.inner_icmp_code = code;
        p.inner_dst = p.src;
        p.ip_flags |= ip_flags::INNER_PORTS;
        p
    }

    #[test]
    fn icmp_errors_name_what_they_quote_as_iplog() {
        let l = |p: &PacketSummary| line(PacketLine::Icmp, p, S4, None);
        // A router (10.10.150.1) reports another host unreachable: "(from R) D".
        let mut u = quoting(icmp4(3, 1), PROTO_UDP, 40000, 53);
        u.inner_dst[..4].copy_from_slice(&[198, 51, 100, 7]);
        assert_eq!(
            l(&u),
            "ICMP: (from 10.10.150.1) 198.51.100.7: host is unreachable to (udp: dest port 53, source port 40000)"
        );
        assert_eq!(
            line(PacketLine::Icmp, &u, S4, Some(D4)),
            "ICMP: (from 10.10.150.1) 198.51.100.7: host is unreachable to 10.10.150.2 (udp: dest port 53, source port 40000)"
        );
        // Quoted ICMP messages by iplog's type names, with the code for the two errors.
        assert_eq!(l(&quoting_icmp(icmp4(3, 3), 8, 0)), "ICMP: 10.10.150.1: port is unreachable to (ICMP: ICMP_ECHO)");
        assert_eq!(
            l(&quoting_icmp(icmp4(3, 2), 3, 3)),
            "ICMP: 10.10.150.1: protocol is unreachable to (ICMP: ICMP_DEST_UNREACHABLE code 3)"
        );
        assert_eq!(l(&quoting_icmp(icmp4(11, 0), 8, 0)), "ICMP: 10.10.150.1 time exceeded (ICMP: ICMP_ECHO)");
        assert_eq!(l(&quoting_icmp(icmp4(3, 3), 42, 0)), "ICMP: 10.10.150.1: port is unreachable to (ICMP: type 42)");
        let te6 = quoting_icmp(icmp6(3, 0), 128, 0);
        assert_eq!(
            line(PacketLine::Icmp, &te6, S6, None),
            "ICMP: 2001:db8::1 time exceeded (ipv6-icmp: type 128, code 0)"
        );
        let mut u6 = quoting(icmp6(1, 3), PROTO_TCP, 1, 2);
        u6.inner_dst = "2001:db8::99".parse::<std::net::Ipv6Addr>().expect("v6").octets();
        assert_eq!(
            line(PacketLine::Icmp, &u6, S6, None),
            "ICMP: (from 2001:db8::1) 2001:db8::99: host is unreachable to (tcp: dest port 2, source port 1)"
        );
        // Names come from the namer, as iplog's host_lookup.
        struct Names;
        impl crate::log::resolve::Namer for Names {
            fn name(&mut self, addr: IpAddr) -> String {
                format!("name-of-{addr}")
            }
        }
        let names = IcmpNames::of(&u, &mut Names);
        assert_eq!(names.inner_dst.as_deref(), Some("name-of-198.51.100.7"));
        assert_eq!(names.gateway, None);
        // Addresses a line does not print are not looked up.
        for p in [quoting(icmp4(3, 3), PROTO_UDP, 1, 2), quoting(icmp4(11, 0), PROTO_UDP, 1, 2)] {
            assert_eq!(IcmpNames::of(&p, &mut Names).inner_dst, None);
        }
    }

    #[test]
    fn icmp_v4_every_type() {
        let l = |p: &PacketSummary| line(PacketLine::Icmp, p, S4, None);
        let ld = |p: &PacketSummary| line(PacketLine::Icmp, p, S4, Some(D4));
        assert_eq!(l(&icmp4(8, 0)), "ICMP: echo from 10.10.150.1 (64 bytes)");
        assert_eq!(ld(&icmp4(8, 0)), "ICMP: echo from 10.10.150.1 to 10.10.150.2 (64 bytes)");
        assert_eq!(l(&icmp4(0, 0)), "ICMP: echo reply from 10.10.150.1 (64 bytes)");
        let u = quoting(icmp4(3, 3), PROTO_UDP, 40000, 33434);
        assert_eq!(l(&u), "ICMP: 10.10.150.1: port is unreachable to (udp: dest port 33434, source port 40000)");
        assert_eq!(
            ld(&u),
            "ICMP: 10.10.150.1: port is unreachable to 10.10.150.2 (udp: dest port 33434, source port 40000)"
        );
        for (code, text) in UNREACH4.iter().enumerate() {
            let p = quoting(icmp4(3, code as u8), PROTO_TCP, 1, 2);
            assert_eq!(l(&p), format!("ICMP: 10.10.150.1: {text} to (tcp: dest port 2, source port 1)"));
        }
        assert_eq!(l(&icmp4(3, 1)), "ICMP: 10.10.150.1: host is unreachable to (no quoted header)");
        assert_eq!(l(&icmp4(3, 16)), "ICMP: undefined destination unreachable code (16) from 10.10.150.1");
        assert_eq!(
            ld(&icmp4(3, 16)),
            "ICMP: undefined destination unreachable code (16) from 10.10.150.1 to 10.10.150.2"
        );
        let mut icmp_inner = icmp4(3, 2);
        icmp_inner.inner_proto = PROTO_ICMP;
        icmp_inner.inner_dst = icmp_inner.src;
        assert_eq!(l(&icmp_inner), "ICMP: 10.10.150.1: protocol is unreachable to (icmp)", "type not in the frame");
        let te = quoting(icmp4(11, 0), PROTO_UDP, 40000, 33435);
        assert_eq!(l(&te), "ICMP: 10.10.150.1 time exceeded (udp: dest port 33435, source port 40000)");
        assert_eq!(ld(&te), "ICMP: 10.10.150.1 time exceeded to 10.10.150.2 (udp: dest port 33435, source port 40000)");
        // A redirect: iplog's "(GATEWAY) redirect SOURCE to network|host TARGET".
        let mut r = quoting(icmp4(5, 1), PROTO_UDP, 1, 2);
        r.icmp_rest = [10, 10, 150, 254];
        r.inner_dst[..4].copy_from_slice(&[198, 51, 100, 7]);
        assert_eq!(l(&r), "ICMP: (10.10.150.254) redirect 10.10.150.1 to host 198.51.100.7");
        assert_eq!(
            ld(&r),
            "ICMP: (10.10.150.254) redirect 10.10.150.1 to host 198.51.100.7",
            "no destination in iplog's form"
        );
        r.icmp_code = 0;
        assert_eq!(l(&r), "ICMP: (10.10.150.254) redirect 10.10.150.1 to network 198.51.100.7");
        r.icmp_code = 2;
        assert_eq!(l(&r), "ICMP: (10.10.150.254) redirect-tos 10.10.150.1 to network 198.51.100.7");
        r.icmp_code = 3;
        assert_eq!(l(&r), "ICMP: (10.10.150.254) redirect-tos 10.10.150.1 to host 198.51.100.7");
        let mut bare = icmp4(5, 1);
        bare.icmp_rest = [10, 10, 150, 254];
        assert_eq!(l(&bare), "ICMP: (10.10.150.254) redirect 10.10.150.1 to host (no quoted header)");
        r.icmp_code = 9;
        assert_eq!(l(&r), "ICMP: undefined redirect code 9 from 10.10.150.1");
        assert_eq!(l(&icmp4(13, 0)), "ICMP: timestamp request from 10.10.150.1");
        assert_eq!(ld(&icmp4(13, 0)), "ICMP: timestamp request to 10.10.150.2 from 10.10.150.1");
        assert_eq!(l(&icmp4(14, 0)), "ICMP: timestamp reply from 10.10.150.1", "not a request (iplog's defect)");
        assert_eq!(l(&icmp4(17, 0)), "ICMP: address mask request from 10.10.150.1");
        assert_eq!(l(&icmp4(18, 0)), "ICMP: address mask reply from 10.10.150.1");
        let mut pp = icmp4(12, 0);
        pp.icmp_rest = [20, 0, 0, 0];
        assert_eq!(l(&pp), "ICMP: parameter problem from 10.10.150.1 (ptr 20)");
        assert_eq!(ld(&pp), "ICMP: parameter problem to 10.10.150.2 from 10.10.150.1 (ptr 20)");
        assert_eq!(l(&icmp4(4, 0)), "ICMP: source quench from 10.10.150.1");
        assert_eq!(l(&icmp4(10, 0)), "ICMP: router solicitation from 10.10.150.1");
        assert_eq!(l(&icmp4(15, 0)), "ICMP: info request from 10.10.150.1");
        assert_eq!(l(&icmp4(16, 0)), "ICMP: info reply from 10.10.150.1");
        let mut ra = icmp4(9, 0);
        ra.icmp_rest = [1, 2, 0x07, 0x08];
        assert_eq!(l(&ra), "ICMP: path of router advertisement from 10.10.150.1 (lifetime 30 min, 0 sec)");
        ra.icmp_rest = [1, 2, 0, 45];
        assert_eq!(l(&ra), "ICMP: path of router advertisement from 10.10.150.1 (lifetime 45 sec)");
        for t in [1u8, 2, 6, 7, 19, 42, 255] {
            assert_eq!(l(&icmp4(t, 0)), format!("ICMP: undefined ICMP type {t} from 10.10.150.1"));
        }
        assert_eq!(ld(&icmp4(42, 0)), "ICMP: undefined ICMP type 42 to 10.10.150.2 from 10.10.150.1");
    }

    #[test]
    fn icmp_v6_every_type() {
        let l = |p: &PacketSummary| line(PacketLine::Icmp, p, S6, None);
        let ld = |p: &PacketSummary| line(PacketLine::Icmp, p, S6, Some(D6));
        assert_eq!(l(&icmp6(128, 0)), "ICMP: echo from 2001:db8::1 (64 bytes)");
        assert_eq!(ld(&icmp6(128, 0)), "ICMP: echo from 2001:db8::1 to 2001:db8::2 (64 bytes)");
        assert_eq!(l(&icmp6(129, 0)), "ICMP: echo reply from 2001:db8::1 (64 bytes)");
        let u = quoting(icmp6(1, 4), PROTO_UDP, 40000, 33434);
        assert_eq!(l(&u), "ICMP: 2001:db8::1: port is unreachable to (udp: dest port 33434, source port 40000)");
        for (code, text) in UNREACH6.iter().enumerate() {
            let p = quoting(icmp6(1, code as u8), PROTO_TCP, 1, 2);
            assert_eq!(l(&p), format!("ICMP: 2001:db8::1: {text} to (tcp: dest port 2, source port 1)"));
        }
        assert_eq!(l(&icmp6(1, 7)), "ICMP: undefined destination unreachable code (7) from 2001:db8::1");
        let mut big = icmp6(2, 0);
        big.icmp_rest = [0, 0, 0x05, 0xdc];
        assert_eq!(l(&big), "ICMP: packet too big from 2001:db8::1 (mtu 1500)");
        let te = quoting(icmp6(3, 0), PROTO_UDP, 40000, 33434);
        assert_eq!(l(&te), "ICMP: 2001:db8::1 time exceeded (udp: dest port 33434, source port 40000)");
        let mut pp = icmp6(4, 1);
        pp.icmp_rest = [0, 0, 0, 40];
        assert_eq!(ld(&pp), "ICMP: parameter problem to 2001:db8::2 from 2001:db8::1 (ptr 40)");
        assert_eq!(l(&icmp6(137, 0)), "ICMP: redirect message from 2001:db8::1");
        for t in [0u8, 5, 100, 127, 130, 200] {
            assert_eq!(l(&icmp6(t, 0)), format!("ICMP: undefined ICMP type {t} from 2001:db8::1"));
        }
    }

    fn event(kind: EventKind, line: PacketLine, p: &PacketSummary, ts_ns: u64) -> Event {
        let mut ev = crate::log::tracker::tests_support::blank_event();
        ev.fill_packet(kind, line as u8, 0, ts_ns, 7, p);
        ev
    }

    #[test]
    fn traceroute_once_per_source_per_15s() {
        let mut pl = PacketLines::default();
        let mut namer = crate::log::resolve::Plain;
        let p = v4(PROTO_UDP);
        let mut other = v4(PROTO_UDP);
        other.src[3] = 9;
        let sec = 1_000_000_000;
        let got = |pl: &mut PacketLines, p: &PacketSummary, t: u64, namer: &mut crate::log::resolve::Plain| {
            pl.on_event(&event(EventKind::Packet, PacketLine::Traceroute, p, t), namer, false)
        };
        assert_eq!(got(&mut pl, &p, 100 * sec, &mut namer).as_deref(), Some("UDP: traceroute from 10.10.150.1"));
        assert_eq!(got(&mut pl, &p, 101 * sec, &mut namer), None);
        assert_eq!(got(&mut pl, &other, 101 * sec, &mut namer).as_deref(), Some("UDP: traceroute from 10.10.150.9"));
        assert_eq!(got(&mut pl, &p, 114 * sec, &mut namer), None);
        assert!(got(&mut pl, &p, 115 * sec, &mut namer).is_some());
        let icmp = PacketSummary { icmp_type: 8, ..v4(PROTO_ICMP) };
        assert_eq!(got(&mut pl, &icmp, 115 * sec, &mut namer).as_deref(), Some("ICMP: traceroute from 10.10.150.1"));
        // Other lines are not deduplicated here (the sink collapses repeats).
        let e = event(EventKind::Packet, PacketLine::FragOverlap, &p, 116 * sec);
        assert!(pl.on_event(&e, &mut namer, false).is_some());
        assert!(pl.on_event(&e, &mut namer, false).is_some());
    }

    #[test]
    fn rate_limited_line() {
        let mut pl = PacketLines::default();
        let ev = event(EventKind::RateLimited, PacketLine::TcpAttempt, &v6(PROTO_TCP), 5);
        assert_eq!(
            pl.on_event(&ev, &mut crate::log::resolve::Plain, true).as_deref(),
            Some("ipscan: left out 7 per-packet lines from 2001:db8::1 (rate limit)")
        );
    }
}
