//! Which detections a packet counts toward. Pure functions over [`PacketSummary`].

use crate::packet::{tcp_flags as f, PacketSummary, PROTO_TCP};

/// A thresholded detection. The discriminant indexes [`crate::Config::detections`] and is the
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
    /// Unsolicited echo replies or UDP from echo/chargen, per reflector network.
    Smurf = 7,
}

/// Number of detection slots in the config (room for more without changing the layout).
pub const DETECTION_SLOTS: usize = 16;

/// Every detection, in discriminant order.
pub const DETECTIONS: [Detection; 8] = [
    Detection::PortScan,
    Detection::SynScan,
    Detection::FinScan,
    Detection::NullScan,
    Detection::XmasScan,
    Detection::UdpScan,
    Detection::PingFlood,
    Detection::Smurf,
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

    /// Whether detection counts distinct destination ports (scans) or packets (floods).
    pub const fn counts_ports(self) -> bool {
        !matches!(self, Detection::PingFlood | Detection::Smurf)
    }
}

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
    tcp_detections(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{PROTO_UDP, ip_flags};

    fn tcp(flags: u8, opt_len: u8) -> PacketSummary {
        PacketSummary {
            family: crate::FAMILY_V4,
            proto: PROTO_TCP,
            tcp_flags: flags,
            tcp_opt_len: opt_len,
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
        for x in [
            f::FIN | f::URG | f::PSH,
            f::URG,
            f::PSH,
            f::FIN | f::URG,
            f::FIN | f::PSH,
            f::URG | f::PSH,
        ] {
            assert_eq!(tcp_detections(&tcp(x, 0)), Detection::XmasScan.bit(), "flags {x:#x}");
        }
        assert_eq!(tcp_detections(&tcp(f::SYN | f::FIN, 0)), 0);
    }

    #[test]
    fn later_fragments_and_other_protocols_count_nothing() {
        let mut p = tcp(f::SYN, 0);
        p.ip_flags = ip_flags::FRAGMENT | ip_flags::LATER_FRAGMENT;
        assert_eq!(tcp_detections(&p), 0);
        let mut u = tcp(f::SYN, 0);
        u.proto = PROTO_UDP;
        assert_eq!(tcp_detections(&u), 0);
    }

    #[test]
    fn detection_round_trip() {
        for d in DETECTIONS {
            assert_eq!(Detection::from_u8(d as u8), Some(d));
        }
        assert_eq!(Detection::from_u8(8), None);
        assert_eq!(Detection::from_u8(255), None);
    }
}
