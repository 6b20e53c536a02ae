//! What a packet counts toward and which per-packet line it gets. Pure functions over
//! [`PacketSummary`].

use crate::{
    FAMILY_V4,
    packet::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, PacketSummary, tcp_flags as f},
};

/// A thresholded detection. The discriminant indexes `Config::detections` (crate::config) and is the
/// `kind` byte in keys and events.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Detection {
    /// SYN without ACK to many distinct ports (iplog's "port scan").
    PortScan = 0,
    /// Half-open SYN probes from raw sockets (iplog's "SYN scan").
    SynScan = 1,
    /// Bare FIN probes.
    FinScan = 2,
    /// Probes with no flags.
    NullScan = 3,
    /// FIN/URG/PSH combinations.
    XmasScan = 4,
    /// UDP to many distinct ports.
    UdpScan = 5,
    /// ICMP / ICMPv6 echo requests at a high rate.
    PingFlood = 6,
    /// Echo replies or UDP from echo/chargen, per reflector network (/24 or /64).
    Smurf = 7,
    /// UDP at a high packet rate, whatever the ports.
    UdpFlood = 8,
    /// A probe (TCP SYN, UDP, ICMP echo request) to a port or address configured as a tripwire
    /// (`tripwire tcp|udp PORTS`, `tripwire addr NETS`): no service is there, so whoever probes
    /// it is scanning. Threshold 1 by default.
    Tripwire = 9,
    /// TCP SYNs without ACK from one source to many distinct destination hosts (a port sweep:
    /// `nmap -sS -p 22 198.18.1.0/24`). Counts hosts, not ports; off by default.
    TcpSweep = 10,
    /// UDP datagrams from one source to many distinct destination hosts. Off by default.
    UdpSweep = 11,
    /// ICMP / ICMPv6 echo requests from one source to many distinct hosts (a ping sweep,
    /// `nmap -sn`). Off by default.
    PingSweep = 12,
    /// A flood from many sources at one destination host (`hping3 --flood --rand-source`):
    /// TCP SYNs, UDP datagrams or echo requests, counted per (destination, protocol) at a rate,
    /// with at least [`DISTRIBUTED_MIN_SOURCES`] distinct sources. Never blocks (the sources are
    /// forged); while on, the per-packet lines of packets to that destination are left out.
    DistFlood = 13,
    /// TCP SYN probes from several sources to many ports of one destination host, counted per
    /// destination: a distributed scan (many sources, few ports each) or a decoy scan (`nmap
    /// -D`: every source probes the same ports), told apart in the line by probes per port.
    /// Needs [`DISTRIBUTED_MIN_SCANNERS`] sources; never blocks (decoys are forged).
    DistScan = 14,
    /// TCP and UDP probes the host rejected (a reset, an ICMP port unreachable or
    /// administratively prohibited) to many distinct ports, counted per source and protocol by
    /// the egress program ([`crate::reject`]) from what the host sends back: a scan of closed
    /// ports, seen at a lower threshold than the port scans. Off by default; needs the egress
    /// program (`counting confirmed` attaches it too).
    Rejected = 15,
}

/// Distinct sources a distributed scan needs besides its ports.
pub const DISTRIBUTED_MIN_SCANNERS: u32 = 3;

/// Distinct sources a distributed flood needs besides its rate: fewer are the per-source
/// floods' business.
pub const DISTRIBUTED_MIN_SOURCES: u32 = 32;

/// Number of detection slots in the config (room for more without changing the layout).
pub const DETECTION_SLOTS: usize = 16;

/// Every detection, in discriminant order.
pub const DETECTIONS: [Detection; 16] = [
    Detection::PortScan,
    Detection::SynScan,
    Detection::FinScan,
    Detection::NullScan,
    Detection::XmasScan,
    Detection::UdpScan,
    Detection::PingFlood,
    Detection::Smurf,
    Detection::UdpFlood,
    Detection::Tripwire,
    Detection::TcpSweep,
    Detection::UdpSweep,
    Detection::PingSweep,
    Detection::DistFlood,
    Detection::DistScan,
    Detection::Rejected,
];

impl Detection {
    /// Fallible conversion from the byte stored in maps and events.
    pub fn from_u8(v: u8) -> Option<Self> {
        DETECTIONS.get(v as usize).copied()
    }

    /// Bit of this detection in a [`DetectionSet`].
    pub const fn bit(self) -> u32 {
        1 << self as u32
    }

    /// Whether a detection counts distinct destination ports (scans) or packets (floods).
    pub const fn counts_ports(self) -> bool {
        Self::counts_ports_at(self as usize)
    }

    /// Same as [`Detection::counts_ports`], by discriminant (for the kernel's counter loop).
    pub const fn counts_ports_at(i: usize) -> bool {
        !matches!(i, 6..=8 | 13)
    }

    /// Whether the detection is kept per destination host (and protocol) rather than per
    /// source: its key's address is the target, and it never blocks.
    pub const fn per_target(self) -> bool {
        Self::per_target_at(self as usize)
    }

    /// Same as [`Detection::per_target`], by discriminant.
    pub const fn per_target_at(i: usize) -> bool {
        matches!(i, 13 | 14)
    }

    /// Whether the detection's key holds the probes' protocol (in its first pad byte,
    /// [`key_words`]): the per-target detections and rejected probes are kept per protocol.
    pub const fn keyed_by_proto(self) -> bool {
        self.per_target() || matches!(self, Detection::Rejected)
    }

    /// Whether a detection's source may be blocked: not per network (smurf's reflectors) nor
    /// per target (a distributed flood's sources are forged).
    pub const fn blocks(self) -> bool {
        !self.per_network() && !self.per_target()
    }

    /// Whether the detection is a sweep: its distinct values are destination hosts (a fold of
    /// the address, [`crate::sweep::fold`]), and its source ports are the destination ports.
    pub const fn counts_hosts(self) -> bool {
        Self::counts_hosts_at(self as usize)
    }

    /// Same as [`Detection::counts_hosts`], by discriminant.
    pub const fn counts_hosts_at(i: usize) -> bool {
        matches!(i, 10..=12)
    }

    /// What [`Detection::counts_ports_at`] and [`Detection::counts_hosts_at`] say, as one
    /// [`counting`] value (the kernel's record call takes it as an argument).
    pub const fn counting_at(i: usize) -> u32 {
        if Self::counts_hosts_at(i) {
            counting::HOSTS
        } else if Self::counts_ports_at(i) {
            counting::PORTS
        } else {
            counting::PACKETS
        }
    }

    /// Whether the detection is kept per reflector network rather than per source address.
    pub const fn per_network(self) -> bool {
        matches!(self, Detection::Smurf)
    }

    /// What user space calls the detection: the one table of its names.
    pub const fn names(self) -> Names {
        const fn n(
            keyword: &'static str,
            proto: &'static str,
            log_name: &'static str,
            label: &'static str,
            switch: bool,
        ) -> Names {
            Names { keyword, proto, log_name, label, switch }
        }
        match self {
            Detection::PortScan => n("portscan", "TCP", "port scan", "port scan", true),
            Detection::SynScan => n("syn_scan", "TCP", "SYN scan", "SYN scan", true),
            Detection::FinScan => n("fin_scan", "TCP", "FIN scan", "FIN scan", true),
            Detection::NullScan => n("null_scan", "TCP", "null scan", "null scan", true),
            Detection::XmasScan => n("xmas_scan", "TCP", "Xmas scan", "Xmas scan", true),
            Detection::UdpScan => n("udp_scan", "UDP", "scan/flood", "UDP scan", true),
            Detection::PingFlood => n("ping_flood", "ICMP", "ping flood", "ping flood", true),
            Detection::Smurf => n("smurf", "ICMP/UDP", "smurf attack", "smurf attack", true),
            // iplog's "scan/flood" counted packets only: ipscan's rate detection has its own
            // threshold and window, and `set udp_scan` switches both.
            Detection::UdpFlood => n("udp_flood", "UDP", "scan/flood", "UDP flood", false),
            // Not in iplog; on only where `tripwire` lines configure ports or addresses.
            Detection::Tripwire => n("tripwire", "IP", "tripwire", "tripwire", false),
            // Not in iplog; off unless switched on (a host that sees only its own traffic
            // cannot see a sweep, and each would cost its probes a record call).
            Detection::TcpSweep => n("tcp_sweep", "TCP", "SYN sweep", "SYN sweep", true),
            Detection::UdpSweep => n("udp_sweep", "UDP", "sweep", "UDP sweep", true),
            Detection::PingSweep => n("ping_sweep", "ICMP", "ping sweep", "ping sweep", true),
            // Not in iplog. Its lines take their protocol from the key ([`key_proto`]).
            Detection::DistFlood => n("distributed_flood", "IP", "distributed flood", "distributed flood", true),
            // Not in iplog. `decoy scan` in a line whose sources each probed every port.
            Detection::DistScan => n("distributed_scan", "TCP", "distributed scan", "distributed scan", true),
            // Not in iplog. Its lines take their protocol from the key ([`key_proto`]).
            Detection::Rejected => n("rejected", "TCP", "rejected probes", "rejected probes", true),
        }
    }

    /// The detection a configuration keyword names (case-insensitive).
    pub fn by_keyword(keyword: &str) -> Option<Self> {
        DETECTIONS.iter().copied().find(|d| d.names().keyword.eq_ignore_ascii_case(keyword))
    }
}

/// The names of a [`Detection`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Names {
    /// Its keyword in the configuration (`set`, `threshold`, `window`, `block`).
    pub keyword: &'static str,
    /// The protocol prefix of its log lines (`TCP: SYN scan detected ...`).
    pub proto: &'static str,
    /// Its name in log lines, as iplog prints it; the JSON records' `detection` too.
    pub log_name: &'static str,
    /// Its label in metrics: the log name, but UDP scan and flood apart.
    pub label: &'static str,
    /// Whether `set KEYWORD` switches it (UDP flood goes with `set udp_scan`).
    pub switch: bool,
}

/// What a detection counts toward its threshold ([`Detection::counting_at`]).
pub mod counting {
    /// Packets within the rate window (floods).
    pub const PACKETS: u32 = 0;
    /// Distinct destination ports (scans).
    pub const PORTS: u32 = 1;
    /// Distinct destination hosts (sweeps).
    pub const HOSTS: u32 = 2;
}

/// The sweeps (bits of [`Detection::TcpSweep`], [`Detection::UdpSweep`] and
/// [`Detection::PingSweep`]).
pub const SWEEPS: DetectionSet = Detection::TcpSweep.bit() | Detection::UdpSweep.bit() | Detection::PingSweep.bit();

/// A set of detections as a bit mask of [`Detection::bit`].
pub type DetectionSet = u32;

/// Largest TCP option block that a raw-socket scanner sends with its SYN. nmap's `-sS` probe
/// carries a single MSS option (4 bytes); hping3 and scapy send none. Every mainstream stack's
/// `connect()` SYN carries at least MSS and SACK-permitted, padded to 8 bytes or more (Linux 20,
/// Windows 12, macOS 24), so a SYN with 4 option bytes or fewer was not made by a socket.
pub const RAW_SYN_MAX_OPTIONS: u8 = 4;

/// True when a SYN looks hand-made rather than sent by a TCP stack's `connect()`.
///
/// iplog used "DF clear" for this, which misses IPv6 (no DF bit) and raw probes that set DF, and
/// fires on stacks that disable path-MTU discovery. The option-length test works for both
/// families; it is documented in the README's design notes.
/// XXX: a scanner that pads its SYN with a realistic option block evades this (not the port scan).
pub fn is_raw_syn(p: &PacketSummary) -> bool {
    p.tcp_opt_len <= RAW_SYN_MAX_OPTIONS
}

/// The Xmas family: FIN, URG and PSH combinations without SYN, ACK or RST (iplog's set).
pub fn is_xmas(flags: u8) -> bool {
    const FUP: u8 = f::FIN | f::URG | f::PSH;
    let fl = flags & f::CLASSIC;
    fl != 0 && fl & !FUP == 0 && fl != f::FIN
}

/// RFC-impossible flag combinations: SYN with FIN or RST, FIN with RST, or every classic flag.
/// ECE and CWR (ECN) are ordinary traffic and never make a packet bogus (iplog's defect).
pub fn is_bogus(flags: u8) -> bool {
    let fl = flags & f::CLASSIC;
    // Any two of SYN, FIN and RST contradict each other.
    let set = (fl & f::SYN != 0) as u8 + (fl & f::FIN != 0) as u8 + (fl & f::RST != 0) as u8;
    set >= 2 || fl == f::CLASSIC
}

/// A connection attempt: SYN without ACK (also what the port scan counts).
pub fn is_connection_attempt(p: &PacketSummary) -> bool {
    p.proto == PROTO_TCP && p.has_transport() && p.tcp_flags & (f::SYN | f::ACK | f::RST | f::FIN) == f::SYN
}

/// True for multicast or broadcast destinations (IPv4 class D/E, limited broadcast, ff00::/8).
pub fn is_group_destination(p: &PacketSummary) -> bool {
    if p.family == FAMILY_V4 { p.dst[0] >= 224 || p.dst[..4] == [255, 255, 255, 255] } else { p.dst[0] == 0xff }
}

/// A traceroute probe: arrives with TTL / hop limit 1 at a unicast address. UDP (classic
/// traceroute), ICMP echo (`traceroute -I`, Windows' tracert) and TCP SYN (`traceroute -T`).
/// Link-local protocols that send TTL 1 (LLMNR, SSDP, MLD) go to group addresses and do not count.
pub fn is_traceroute(p: &PacketSummary) -> bool {
    if p.ttl != 1 || is_group_destination(p) || !p.has_transport() {
        return false;
    }
    match p.proto {
        PROTO_UDP => true,
        PROTO_TCP => is_connection_attempt(p),
        _ => is_echo_request(p),
    }
}

/// ICMP echo request (type 8) or ICMPv6 echo request (128).
pub fn is_echo_request(p: &PacketSummary) -> bool {
    (p.proto == PROTO_ICMP && p.icmp_type == 8) || (p.proto == PROTO_ICMPV6 && p.icmp_type == 128)
}

/// ICMP echo reply (0) or ICMPv6 echo reply (129).
pub fn is_echo_reply(p: &PacketSummary) -> bool {
    (p.proto == PROTO_ICMP && p.icmp_type == 0) || (p.proto == PROTO_ICMPV6 && p.icmp_type == 129)
}

/// UDP echo (7) and chargen (19): the ports UDP smurf/fraggle reflectors answer from.
pub fn is_smurf(p: &PacketSummary) -> bool {
    if !p.has_transport() {
        return false;
    }
    is_echo_reply(p) || (p.proto == PROTO_UDP && (p.sport == 7 || p.sport == 19))
}

/// The reflector network a smurf packet is counted under: the source's /24 (IPv4) or /64
/// (IPv6), masked on bytes so the result does not depend on byte order (iplog's defect). The
/// address of its SOURCES key ([`key_words`], where the mask is).
pub fn smurf_network(p: &PacketSummary) -> [u8; 16] {
    crate::SourceKey::from_words(key_words(p, Detection::Smurf as u8)).addr
}

/// The SOURCES key of a packet toward detection `kind` (a [`Detection`] discriminant), as its
/// [`crate::SourceKey::words`]: the source, or for a per-network detection (smurf) the source's
/// /24 or /64, its other bytes zero (each mask keeps whole bytes in memory order, whatever the
/// host's byte order). Read from the summary's [`PacketSummary::src_words`]: the program builds
/// the key from four word loads, where bytes cost a load and a store each.
#[inline(always)]
pub fn key_words(p: &PacketSummary, kind: u8) -> [u32; 5] {
    if Detection::per_target_at(kind as usize) {
        // The target and the probe's protocol.
        let d = p.dst_words();
        return [d[0], d[1], d[2], d[3], u32::from_ne_bytes([p.family, kind, probe_proto(p), 0])];
    }
    let w = p.src_words();
    // Rejected probes are kept per source and protocol (TCP, UDP).
    let proto = if kind == Detection::Rejected as u8 { p.proto } else { 0 };
    let tail = u32::from_ne_bytes([p.family, kind, proto, 0]);
    if kind != Detection::Smurf as u8 {
        [w[0], w[1], w[2], w[3], tail]
    } else if p.family == FAMILY_V4 {
        [w[0] & u32::from_ne_bytes([0xff, 0xff, 0xff, 0]), 0, 0, 0, tail]
    } else {
        [w[0], w[1], 0, 0, tail]
    }
}

/// nmap's OS-detection probes, recognised by marks no TCP stack or ping tool sends:
/// T2-T7 carry the option block WScale, NOP, MSS 265; the ECN probe sets an urgent pointer
/// (0xF7F5) without URG on a SYN with ECE and CWR; IE is an echo request with a non-zero code;
/// U1 is a UDP datagram of 300 'C' bytes.
pub fn is_os_probe(p: &PacketSummary) -> bool {
    if !p.has_transport() {
        return false;
    }
    match p.proto {
        PROTO_TCP => {
            let o = &p.tcp_opts;
            let t2_t7 = o[0] == 3 && o[1] == 3 && o[3] == 1 && o[4] == 2 && o[5] == 4 && o[6] == 1 && o[7] == 9;
            let ecn = p.tcp_flags & (f::SYN | f::ECE | f::CWR) == (f::SYN | f::ECE | f::CWR)
                && p.tcp_flags & f::URG == 0
                && p.tcp_urg_ptr != 0;
            t2_t7 || ecn
        }
        PROTO_UDP => p.udp_data_len() == 300 && p.l4_data == *b"CCCC",
        _ => is_echo_request(p) && p.icmp_code != 0,
    }
}

/// TCP detections a packet counts toward. ECE and CWR are ignored: they are ECN, not probes.
pub fn tcp_detections(p: &PacketSummary) -> DetectionSet {
    if p.proto != PROTO_TCP || !p.has_transport() {
        return 0;
    }
    let fl = p.tcp_flags & f::CLASSIC;
    let mut set = 0;
    if fl & (f::SYN | f::ACK | f::RST | f::FIN) == f::SYN {
        set |= Detection::PortScan.bit();
        if is_raw_syn(p) {
            set |= Detection::SynScan.bit();
        }
    } else if fl == 0 {
        set |= Detection::NullScan.bit();
    } else if fl == f::FIN {
        set |= Detection::FinScan.bit();
    } else if is_xmas(fl) {
        set |= Detection::XmasScan.bit();
    }
    set
}

/// All detections a packet counts toward.
pub fn detections(p: &PacketSummary) -> DetectionSet {
    if !p.has_transport() {
        return 0;
    }
    match p.proto {
        PROTO_TCP => tcp_detections(p),
        PROTO_UDP if is_smurf(p) => Detection::Smurf.bit(),
        PROTO_UDP if is_traceroute(p) => 0,
        PROTO_UDP => Detection::UdpScan.bit() | Detection::UdpFlood.bit(),
        PROTO_ICMP | PROTO_ICMPV6 if is_echo_request(p) && !is_traceroute(p) => Detection::PingFlood.bit(),
        PROTO_ICMP | PROTO_ICMPV6 if is_smurf(p) => Detection::Smurf.bit(),
        _ => 0,
    }
}

/// The sweep a packet counts toward: a TCP SYN without ACK, a UDP datagram (not a smurf reply
/// nor a traceroute probe), an ICMP/ICMPv6 echo request, to a unicast destination (a host
/// talking to many multicast groups is no sweep).
pub fn sweep_detections(p: &PacketSummary) -> DetectionSet {
    sweep_of(probe_proto(p))
}

/// The sweep of a probe of protocol `probe` ([`probe_proto`]).
#[inline(always)]
pub fn sweep_of(probe: u8) -> DetectionSet {
    match probe {
        PROTO_TCP => Detection::TcpSweep.bit(),
        PROTO_UDP => Detection::UdpSweep.bit(),
        PROTO_ICMP => Detection::PingSweep.bit(),
        _ => 0,
    }
}

/// The protocol of a probe a sweep or a distributed flood counts ([`sweep_detections`]):
/// [`PROTO_TCP`], [`PROTO_UDP`], [`PROTO_ICMP`] for echo requests of either family, or 0.
#[inline(always)]
pub fn probe_proto(p: &PacketSummary) -> u8 {
    if !p.has_transport() || is_group_destination(p) || is_traceroute(p) {
        return 0;
    }
    match p.proto {
        PROTO_TCP if is_connection_attempt(p) => PROTO_TCP,
        PROTO_UDP if !is_smurf(p) => PROTO_UDP,
        PROTO_ICMP | PROTO_ICMPV6 if is_echo_request(p) => PROTO_ICMP,
        _ => 0,
    }
}

/// The protocol prefix of a key's lines: from the key for a detection kept per protocol
/// ([`Detection::keyed_by_proto`]), else the detection's own ([`Names::proto`]).
pub fn line_proto(key: &crate::SourceKey) -> &'static str {
    match key.detection() {
        Some(d) if d.keyed_by_proto() => key_proto(key),
        Some(d) => d.names().proto,
        None => "IP",
    }
}

/// The protocol prefix of the lines of a detection whose key holds the protocol (a per-target
/// detection, rejected probes): `TCP`, `UDP`, `ICMP`.
pub fn key_proto(key: &crate::SourceKey) -> &'static str {
    match key._pad[0] {
        PROTO_TCP => "TCP",
        PROTO_UDP => "UDP",
        _ => "ICMP",
    }
}

/// A probe a tripwire counts: a TCP SYN without ACK, a UDP datagram (not a traceroute probe) or
/// an ICMP/ICMPv6 echo request. (The port or address is the kernel's lookup.)
pub fn is_tripwire_probe(p: &PacketSummary) -> bool {
    if !p.has_transport() || is_traceroute(p) {
        return false;
    }
    match p.proto {
        PROTO_TCP => is_connection_attempt(p),
        PROTO_UDP => true,
        _ => is_echo_request(p),
    }
}

/// The reason of a per-packet ring-buffer event (an iplog per-packet or immediate line).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketLine {
    /// `TCP: ssh connection attempt from H:P`
    TcpAttempt = 1,
    /// `UDP: dgram to port 1 from H:P (300 data bytes)`
    UdpDgram = 2,
    /// `ICMP: echo from H (64 bytes)` and the other ICMP lines.
    Icmp = 3,
    /// `TCP: Bogus TCP flags set by H:SPORT (dest port DPORT)`
    Bogus = 4,
    /// `UDP: traceroute from H` (also ICMP and TCP probes).
    Traceroute = 5,
    /// `Oversized IP fragment from H`
    FragOversized = 6,
    /// `Overlapping IP fragments from H`
    FragOverlap = 7,
    /// `Duplicate IP fragments from H`
    FragDuplicate = 8,
    /// `Tiny IP fragment from H` (the first fragment splits the transport header)
    FragTiny = 9,
    /// `Short IP packet from H` (verbose)
    Short = 10,
    /// `IP packet with invalid checksum from H` (verbose)
    BadChecksum = 11,
    /// A probe dropped by a hardening option (blackhole, fool_nmap, drop_synfin); not logged
    /// as a line, counted.
    Hardened = 12,
}

impl PacketLine {
    pub fn from_u8(v: u8) -> Option<Self> {
        use PacketLine::*;
        Some(match v {
            1 => TcpAttempt,
            2 => UdpDgram,
            3 => Icmp,
            4 => Bogus,
            5 => Traceroute,
            6 => FragOversized,
            7 => FragOverlap,
            8 => FragDuplicate,
            9 => FragTiny,
            10 => Short,
            11 => BadChecksum,
            12 => Hardened,
            _ => return None,
        })
    }

    /// Lines that report an attack (not ordinary traffic): never subject to `scans_only`.
    pub fn is_alert(self) -> bool {
        !matches!(self, PacketLine::TcpAttempt | PacketLine::UdpDgram | PacketLine::Icmp)
    }
}

/// The ordinary per-packet line of a packet, if it gets one: iplog logs every TCP connection
/// attempt, UDP datagram and ICMP message.
pub fn ordinary_line(p: &PacketSummary) -> Option<PacketLine> {
    if !p.has_transport() {
        return None;
    }
    match p.proto {
        PROTO_TCP if is_connection_attempt(p) => Some(PacketLine::TcpAttempt),
        PROTO_UDP => Some(PacketLine::UdpDgram),
        PROTO_ICMP | PROTO_ICMPV6 if p.is_icmp() => {
            // ICMPv6 neighbour discovery and MLD are the link's housekeeping, not traffic worth a line.
            if p.proto == PROTO_ICMPV6 && (130..=143).contains(&p.icmp_type) { None } else { Some(PacketLine::Icmp) }
        }
        _ => None,
    }
}

/// The detection whose mode suppresses a packet's ordinary line (iplog: per-packet lines of a
/// kind are suppressed while the source is in that kind's mode).
pub fn suppressing_detection(line: PacketLine) -> Option<Detection> {
    match line {
        PacketLine::TcpAttempt => Some(Detection::PortScan),
        PacketLine::UdpDgram => Some(Detection::UdpScan),
        PacketLine::Icmp => Some(Detection::PingFlood),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FAMILY_V6, packet::ip_flags};

    #[test]
    fn key_words_are_the_keys_words() {
        use crate::SourceKey;
        let v4 = PacketSummary {
            src: [198, 51, 100, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            dst: [198, 18, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            family: crate::FAMILY_V4,
            proto: PROTO_UDP,
            ttl: 64,
            ..Default::default()
        };
        let v6 = PacketSummary {
            src: [0x20, 1, 0xd, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
            dst: [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            family: FAMILY_V6,
            proto: PROTO_UDP,
            ttl: 64,
            ..Default::default()
        };
        let v4_net = [198, 51, 100, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let v6_net = [0x20, 1, 0xd, 0xb8, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0];
        for (p, net) in [(v4, v4_net), (v6, v6_net)] {
            for kind in 0..DETECTIONS.len() as u8 {
                let target = Detection::per_target_at(kind as usize);
                let addr = if kind == Detection::Smurf as u8 {
                    net
                } else if target {
                    p.dst
                } else {
                    p.src
                };
                // A distributed flood's key is its target's, with the probe's protocol.
                // Rejected probes' key holds the protocol too.
                let proto = if target || kind == Detection::Rejected as u8 { PROTO_UDP } else { 0 };
                let key = SourceKey { addr, family: p.family, kind, _pad: [proto, 0] };
                assert_eq!(key_words(&p, kind), key.words(), "family {} kind {kind}", p.family);
                assert_eq!(SourceKey::from_words(key_words(&p, kind)), key);
            }
        }
    }

    fn tcp(flags: u8, opt_len: u8) -> PacketSummary {
        PacketSummary {
            family: crate::FAMILY_V4,
            proto: PROTO_TCP,
            tcp_flags: flags,
            tcp_opt_len: opt_len,
            ttl: 64,
            ..Default::default()
        }
    }

    fn udp(sport: u16, dport: u16) -> PacketSummary {
        PacketSummary { family: crate::FAMILY_V4, proto: PROTO_UDP, sport, dport, ttl: 64, ..Default::default() }
    }

    fn icmp(family: u8, ty: u8, code: u8) -> PacketSummary {
        PacketSummary {
            family,
            proto: if family == FAMILY_V4 { PROTO_ICMP } else { PROTO_ICMPV6 },
            icmp_type: ty,
            icmp_code: code,
            ttl: 64,
            ..Default::default()
        }
    }

    #[test]
    fn connect_syn_is_port_scan_only() {
        assert_eq!(tcp_detections(&tcp(f::SYN, 20)), Detection::PortScan.bit());
        assert_eq!(tcp_detections(&tcp(f::SYN, 12)), Detection::PortScan.bit());
    }

    #[test]
    fn raw_syn_is_port_and_syn_scan() {
        let both = Detection::PortScan.bit() | Detection::SynScan.bit();
        assert_eq!(tcp_detections(&tcp(f::SYN, 4)), both);
        assert_eq!(tcp_detections(&tcp(f::SYN, 0)), both);
        // ECN-setup SYN (SYN+ECE+CWR) from a stack is still a connection attempt.
        assert_eq!(tcp_detections(&tcp(f::SYN | f::ECE | f::CWR, 20)), Detection::PortScan.bit());
    }

    #[test]
    fn syn_ack_and_established_count_nothing() {
        assert_eq!(tcp_detections(&tcp(f::SYN | f::ACK, 4)), 0);
        assert_eq!(tcp_detections(&tcp(f::ACK, 12)), 0);
        assert_eq!(tcp_detections(&tcp(f::ACK | f::PSH, 12)), 0);
        assert_eq!(tcp_detections(&tcp(f::RST, 0)), 0);
        assert_eq!(tcp_detections(&tcp(f::FIN | f::ACK, 12)), 0);
    }

    #[test]
    fn stealth_scans() {
        assert_eq!(tcp_detections(&tcp(0, 0)), Detection::NullScan.bit());
        // ECN bits alone are still a null probe: scan classification ignores them.
        assert_eq!(tcp_detections(&tcp(f::ECE | f::CWR, 0)), Detection::NullScan.bit());
        assert_eq!(tcp_detections(&tcp(f::FIN, 0)), Detection::FinScan.bit());
        for x in [f::FIN | f::URG | f::PSH, f::URG, f::PSH, f::FIN | f::URG, f::FIN | f::PSH, f::URG | f::PSH] {
            assert_eq!(tcp_detections(&tcp(x, 0)), Detection::XmasScan.bit(), "flags {x:#x}");
        }
        assert_eq!(tcp_detections(&tcp(f::SYN | f::FIN, 0)), 0);
    }

    #[test]
    fn bogus_flags_are_rfc_impossible_combinations_not_ecn() {
        for b in [f::SYN | f::FIN, f::SYN | f::RST, f::FIN | f::RST, f::CLASSIC, f::SYN | f::FIN | f::ACK] {
            assert!(is_bogus(b), "{b:#x}");
        }
        for ok in [
            f::SYN,
            f::SYN | f::ECE | f::CWR,
            f::ACK | f::ECE,
            f::ACK | f::CWR | f::PSH,
            f::FIN | f::ACK,
            f::RST | f::ACK,
            f::FIN | f::URG | f::PSH,
            0,
        ] {
            assert!(!is_bogus(ok), "{ok:#x}");
        }
    }

    #[test]
    fn udp_classification() {
        let both = Detection::UdpScan.bit() | Detection::UdpFlood.bit();
        assert_eq!(detections(&udp(40000, 53)), both);
        assert_eq!(detections(&udp(7, 40000)), Detection::Smurf.bit());
        assert_eq!(detections(&udp(19, 40000)), Detection::Smurf.bit());
        let mut tr = udp(40000, 33434);
        tr.ttl = 1;
        assert!(is_traceroute(&tr));
        assert_eq!(detections(&tr), 0);
        // TTL 1 to a multicast group (LLMNR, SSDP) is not a traceroute.
        tr.dst[..4].copy_from_slice(&[224, 0, 0, 252]);
        assert!(!is_traceroute(&tr));
        let mut tr6 = udp(40000, 33434);
        tr6.family = FAMILY_V6;
        tr6.ttl = 1;
        tr6.dst[0] = 0xff;
        assert!(!is_traceroute(&tr6));
        tr6.dst[0] = 0x20;
        assert!(is_traceroute(&tr6));
    }

    #[test]
    fn icmp_classification() {
        assert_eq!(detections(&icmp(crate::FAMILY_V4, 8, 0)), Detection::PingFlood.bit());
        assert_eq!(detections(&icmp(FAMILY_V6, 128, 0)), Detection::PingFlood.bit());
        assert_eq!(detections(&icmp(crate::FAMILY_V4, 0, 0)), Detection::Smurf.bit());
        assert_eq!(detections(&icmp(FAMILY_V6, 129, 0)), Detection::Smurf.bit());
        assert_eq!(detections(&icmp(crate::FAMILY_V4, 3, 3)), 0);
        let mut tr = icmp(crate::FAMILY_V4, 8, 0);
        tr.ttl = 1;
        assert!(is_traceroute(&tr));
        assert_eq!(detections(&tr), 0);
        assert_eq!(ordinary_line(&icmp(FAMILY_V6, 135, 0)), None, "neighbour solicitation");
        assert_eq!(ordinary_line(&icmp(FAMILY_V6, 128, 0)), Some(PacketLine::Icmp));
    }

    #[test]
    fn sweeps_count_probes_to_unicast_hosts() {
        let syn = tcp(f::SYN, 22);
        assert_eq!(sweep_detections(&syn), Detection::TcpSweep.bit());
        assert_eq!(sweep_detections(&tcp(f::SYN | f::ACK, 22)), 0);
        assert_eq!(sweep_detections(&udp(40000, 161)), Detection::UdpSweep.bit());
        assert_eq!(sweep_detections(&udp(7, 40000)), 0, "a smurf reply");
        assert_eq!(sweep_detections(&icmp(FAMILY_V6, 128, 0)), Detection::PingSweep.bit());
        assert_eq!(sweep_detections(&icmp(crate::FAMILY_V4, 0, 0)), 0, "an echo reply");
        let mut mdns = udp(5353, 5353);
        mdns.dst[..4].copy_from_slice(&[224, 0, 0, 251]);
        assert_eq!(sweep_detections(&mdns), 0, "a multicast group");
        let mut tr = udp(40000, 33434);
        tr.ttl = 1;
        assert_eq!(sweep_detections(&tr), 0, "a traceroute probe");
        for (i, d) in DETECTIONS.iter().enumerate() {
            assert_eq!(d.counts_hosts(), SWEEPS & d.bit() != 0);
            let want = if d.counts_hosts() {
                counting::HOSTS
            } else if d.counts_ports() {
                counting::PORTS
            } else {
                counting::PACKETS
            };
            assert_eq!(Detection::counting_at(i), want, "{d:?}");
        }
    }

    #[test]
    fn smurf_network_masks_bytes_on_any_host() {
        let mut p = icmp(crate::FAMILY_V4, 0, 0);
        p.src[..4].copy_from_slice(&[201, 223, 41, 77]);
        let n = smurf_network(&p);
        assert_eq!(&n[..4], &[201, 223, 41, 0]);
        assert!(n[4..].iter().all(|b| *b == 0));
        let mut p6 = icmp(FAMILY_V6, 129, 0);
        p6.src = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 9, 9, 9, 9, 9, 9, 9, 9];
        assert_eq!(smurf_network(&p6), [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn nmap_os_probes() {
        let mut t2 = tcp(0, 20);
        t2.tcp_opts = [3, 3, 10, 1, 2, 4, 1, 9];
        assert!(is_os_probe(&t2));
        // A Linux SYN (MSS 1460 first) is not.
        let mut syn = tcp(f::SYN, 20);
        syn.tcp_opts = [2, 4, 5, 0xb4, 4, 2, 8, 10];
        assert!(!is_os_probe(&syn));
        let mut ecn = tcp(f::SYN | f::ECE | f::CWR, 12);
        ecn.tcp_urg_ptr = 0xf7f5;
        assert!(is_os_probe(&ecn));
        ecn.tcp_urg_ptr = 0;
        assert!(!is_os_probe(&ecn), "ordinary ECN setup");
        let mut u1 = udp(40000, 33000);
        u1.ip_payload_len = 308;
        u1.l4_data = *b"CCCC";
        assert!(is_os_probe(&u1));
        u1.l4_data = *b"abcd";
        assert!(!is_os_probe(&u1));
        assert!(is_os_probe(&icmp(crate::FAMILY_V4, 8, 9)));
        assert!(!is_os_probe(&icmp(crate::FAMILY_V4, 8, 0)));
    }

    #[test]
    fn later_fragments_and_other_protocols_count_nothing() {
        let mut p = tcp(f::SYN, 0);
        p.ip_flags = ip_flags::FRAGMENT | ip_flags::LATER_FRAGMENT;
        assert_eq!(detections(&p), 0);
        assert_eq!(ordinary_line(&p), None);
        let mut t = tcp(f::SYN, 0);
        t.ip_flags = ip_flags::FRAGMENT | ip_flags::TINY_FRAGMENT;
        assert_eq!(detections(&t), 0);
    }

    #[test]
    fn detection_round_trip() {
        for (i, d) in DETECTIONS.iter().enumerate() {
            assert_eq!(Detection::from_u8(*d as u8), Some(*d));
            assert_eq!(d.counts_ports(), Detection::counts_ports_at(i));
        }
        assert_eq!(Detection::from_u8(DETECTIONS.len() as u8), None);
        assert_eq!(Detection::from_u8(255), None);
        for v in 1..=12u8 {
            assert_eq!(PacketLine::from_u8(v).map(|l| l as u8), Some(v));
        }
        assert_eq!(PacketLine::from_u8(0), None);
    }
}
