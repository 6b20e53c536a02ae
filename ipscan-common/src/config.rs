//! The CONFIG map value: thresholds, windows, block policy and switches, written by user space.

use crate::classify::{DETECTION_SLOTS, Detection};

/// Bits of [`DetectionConfig::flags`].
pub mod detection_flags {
    /// The detection runs.
    pub const ENABLED: u32 = 0x1;
}

/// Bits of [`Config::flags`]: iplog's `set` switches that the kernel needs, and ipscan's
/// hardening options.
pub mod global_flags {
    /// Per-packet lines for TCP connection attempts (`set tcp`).
    pub const LOG_TCP: u32 = 1 << 0;
    /// Per-packet lines for UDP datagrams (`set udp`).
    pub const LOG_UDP: u32 = 1 << 1;
    /// Per-packet lines for ICMP messages (`set icmp`).
    pub const LOG_ICMP: u32 = 1 << 2;
    /// Report bogus TCP flag combinations (`set bogus`).
    pub const BOGUS: u32 = 1 << 3;
    /// Report traceroute probes (`set traceroute`).
    pub const TRACEROUTE: u32 = 1 << 4;
    /// Fragment attack checks (`set frag`).
    pub const FRAG: u32 = 1 << 5;
    /// Short packets and bad IPv4 header checksums (`set verbose`).
    pub const VERBOSE: u32 = 1 << 6;
    /// Drop RFC-impossible TCP flag combinations after reporting them.
    pub const DROP_SYNFIN: u32 = 1 << 7;
    /// Drop nmap's OS-detection probes.
    pub const FOOL_NMAP: u32 = 1 << 8;
    /// Drop TCP probes to ports without a listening socket.
    pub const BLACKHOLE_TCP: u32 = 1 << 9;
    /// Drop UDP datagrams to unbound ports below the ephemeral range.
    pub const BLACKHOLE_UDP: u32 = 1 << 10;
    /// No ordinary per-packet lines at all (`set scans_only`).
    pub const SCANS_ONLY: u32 = 1 << 11;
    /// Watch only destinations in the PROMISC prefix list (`promisc NET,...`).
    pub const PROMISC: u32 = 1 << 12;
    /// BLOCK4 or BLOCK6 or a feed trie ([`crate::feed`]) holds an entry: look sources up there.
    /// Set by whoever adds one (CLI, restore) and kept true by the daemon's sweep; without it
    /// ordinary traffic skips the LPM lookups (about 40 ns each on the reference machine).
    pub const BLOCKLIST: u32 = 1 << 13;
    /// AUTOBLOCK holds an entry or some detection auto-blocks: look sources up there.
    pub const AUTOBLOCKS: u32 = 1 << 14;
    /// Drop nothing: a packet a verdict would drop is passed and counted
    /// ([`crate::stats::DRY_RUN_PASSED`]), and an auto-block's event says so.
    pub const DRY_RUN: u32 = 1 << 15;
    /// `tripwire tcp|udp` lines configured ports (TRIPPORTS, [`crate::config::tripports`]):
    /// probes are looked up there ([`crate::Detection::Tripwire`]).
    pub const TRIPWIRE: u32 = 1 << 16;
    /// `tripwire addr` lines configured addresses (TRIPADDR4/TRIPADDR6): probes are looked up
    /// there too.
    pub const TRIPADDR: u32 = 1 << 17;
    /// A sweep detection is on ([`crate::classify::SWEEPS`]): probes are counted toward them.
    /// Without it the program does not even classify packets as sweeps.
    pub const SWEEPS: u32 = 1 << 18;
    /// The distributed flood is on ([`crate::Detection::DistFlood`]).
    pub const DISTRIBUTED: u32 = 1 << 19;
    /// The distributed scan is on ([`crate::Detection::DistScan`]): SYNs are counted toward it.
    pub const DIST_SCAN: u32 = 1 << 20;
    /// `counting confirmed`: the port scan and the UDP scan count the probes the host rejected,
    /// recorded by the egress program from its resets and ICMP unreachables; an incoming probe
    /// only asks whether its source is in the mode.
    pub const CONFIRMED: u32 = 1 << 21;
    /// The egress program records the host's rejects: `counting confirmed`, or the rejected
    /// probes detection ([`crate::Detection::Rejected`]) is on. Without it the egress program
    /// (if attached) passes everything at once.
    pub const REJECTS: u32 = 1 << 22;
}

/// TRIPPORTS: one bit per TCP port, then one per UDP port, 64 to a word.
pub mod tripports {
    use crate::packet::{PROTO_TCP, PROTO_UDP};

    /// Words per protocol.
    pub const WORDS_PER_PROTO: u32 = 65_536 / 64;
    /// Words in all.
    pub const WORDS: u32 = 2 * WORDS_PER_PROTO;

    /// The word and bit of a (protocol, port); None for other protocols.
    #[inline(always)]
    pub fn place(proto: u8, port: u16) -> Option<(u32, u32)> {
        let first = match proto {
            PROTO_TCP => 0,
            PROTO_UDP => WORDS_PER_PROTO,
            _ => return None,
        };
        Some((first + (port as u32 >> 6), port as u32 & 63))
    }
}

/// Per-packet events all sources together may cause per second on one CPU: the per-source
/// budget alone would let a flood from many (spoofed) sources fill the ring buffer.
pub const GLOBAL_PACKET_EVENTS_PER_SEC: u32 = 2_000;

/// Threshold, window and block policy of one detection.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DetectionConfig {
    /// Distinct destination ports (scans) or packets (floods) that trigger the detection.
    pub threshold: u32,
    /// [`detection_flags`] bits.
    pub flags: u32,
    /// Scans: inactivity window. Floods: the rate window (threshold packets within it) and the
    /// inactivity after which the mode expires. Nanoseconds.
    pub window_ns: u64,
    /// Auto-block the source for this long when it crosses the threshold; zero: never block.
    pub block_ns: u64,
}
const _: () = assert!(core::mem::size_of::<DetectionConfig>() == 24);

impl DetectionConfig {
    pub const fn new(threshold: u32, window_secs: u64) -> Self {
        Self { threshold, flags: detection_flags::ENABLED, window_ns: window_secs * 1_000_000_000, block_ns: 0 }
    }

    /// The same, crossing only once `n` distinct values have been counted too (stored in the
    /// upper half of `flags`, [`DetectionConfig::min_distinct`]).
    pub const fn with_min_distinct(self, n: u16) -> Self {
        Self { flags: (self.flags & 0xffff) | (n as u32) << 16, ..self }
    }

    /// Distinct values (a distributed flood's sources) a rate detection needs besides its rate.
    #[inline(always)]
    pub const fn min_distinct(&self) -> u32 {
        self.flags >> 16
    }

    /// The same, switched off (a `set NAME true` switches it on).
    pub const fn off(self) -> Self {
        Self { flags: self.flags & !detection_flags::ENABLED, ..self }
    }

    pub const fn disabled() -> Self {
        Self { threshold: u32::MAX, flags: 0, window_ns: 0, block_ns: 0 }
    }

    pub fn enabled(&self) -> bool {
        self.flags & detection_flags::ENABLED != 0
    }
}

/// Per-packet events a source may cause per second before the kernel starts counting them as
/// left out instead of reporting them.
pub const DEFAULT_PACKET_EVENTS_PER_SEC: u32 = 20;

/// The single CONFIG map slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub detections: [DetectionConfig; DETECTION_SLOTS],
    /// [`global_flags`] bits.
    pub flags: u32,
    /// Per-source budget of per-packet events per second.
    pub packet_events_per_sec: u32,
    /// Entries used in the RULES map.
    pub nrules: u32,
    /// Lowest port of the host's ephemeral range: UDP blackholing leaves ports from here up
    /// alone, because client sockets bind there just before their answers arrive.
    pub ephemeral_lo: u16,
    pub _pad: u16,
}
const _: () = assert!(core::mem::size_of::<Config>() == 16 * 24 + 16);

impl Config {
    pub fn detection(&self, d: Detection) -> &DetectionConfig {
        // DETECTION_SLOTS > every discriminant, checked by a test.
        &self.detections[d as usize]
    }

    pub fn detection_mut(&mut self, d: Detection) -> &mut DetectionConfig {
        &mut self.detections[d as usize]
    }

    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }
}

impl Default for Config {
    /// iplog 2.2.3's thresholds and windows; iplog's default `set` switches.
    fn default() -> Self {
        let mut detections = [DetectionConfig::disabled(); DETECTION_SLOTS];
        detections[Detection::PortScan as usize] = DetectionConfig::new(15, 50);
        detections[Detection::SynScan as usize] = DetectionConfig::new(10, 50);
        detections[Detection::FinScan as usize] = DetectionConfig::new(10, 50);
        detections[Detection::NullScan as usize] = DetectionConfig::new(10, 50);
        detections[Detection::XmasScan as usize] = DetectionConfig::new(10, 50);
        detections[Detection::UdpScan as usize] = DetectionConfig::new(25, 50);
        detections[Detection::PingFlood as usize] = DetectionConfig::new(70, 60);
        detections[Detection::Smurf as usize] = DetectionConfig::new(90, 30);
        // Not in iplog (its UDP "scan/flood" counted packets): 1000 datagrams within 5 s.
        detections[Detection::UdpFlood as usize] = DetectionConfig::new(1000, 5);
        // Not in iplog: one probe is enough; the mode lasts a minute after the last one.
        detections[Detection::Tripwire as usize] = DetectionConfig::new(1, 60);
        // Not in iplog: off until switched on; then 10 hosts with no minute between probes.
        for sweep in [Detection::TcpSweep, Detection::UdpSweep, Detection::PingSweep] {
            detections[sweep as usize] = DetectionConfig::new(10, 60).off();
        }
        // Not in iplog: 5000 probes to one host within 5 s (1000 a second), from at least
        // DISTRIBUTED_MIN_SOURCES sources.
        detections[Detection::DistFlood as usize] =
            DetectionConfig::new(5000, 5).with_min_distinct(crate::classify::DISTRIBUTED_MIN_SOURCES as u16);
        // Not in iplog: 15 ports of one host from at least 3 sources within a minute. Off until
        // switched on: it costs every SYN a record call (about 100 ns, bench run 2026-12-07 17:20).
        detections[Detection::DistScan as usize] =
            DetectionConfig::new(15, 60).with_min_distinct(crate::classify::DISTRIBUTED_MIN_SCANNERS as u16).off();
        // Not in iplog: 5 rejected ports within a minute, a third of the port scan's 15. Off
        // until switched on: it needs the egress program.
        detections[Detection::Rejected as usize] = DetectionConfig::new(5, 60).off();
        use global_flags::*;
        Self {
            detections,
            flags: LOG_TCP | LOG_UDP | LOG_ICMP | BOGUS | TRACEROUTE | FRAG | DISTRIBUTED,
            packet_events_per_sec: DEFAULT_PACKET_EVENTS_PER_SEC,
            nrules: 0,
            ephemeral_lo: 32768,
            _pad: 0,
        }
    }
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for Config {}

/// Switches under which a plain TCP segment may still need more than counting: `promisc`'s
/// destination list, `verbose`'s anomaly lines and `fool_nmap`'s probe drops (nmap's T4 is an
/// ACK). Rules also count (`nrules`). The block lists (AUTOBLOCK, BLOCK4/BLOCK6) are the
/// caller's: the XDP program looks the source up in them on the fast path first, from the frame.
const FAST_PATH_OFF: u32 = global_flags::PROMISC | global_flags::VERBOSE | global_flags::FOOL_NMAP;

/// Whether a plain TCP segment ([`crate::parse::plain_tcp`]: unfragmented, no anomaly) from an
/// unblocked source with
/// these flags needs nothing but counting under `cfg`: it counts toward no detection, has no
/// line of its own, is not bogus, no traceroute probe, and no hardening option drops it (the
/// blackholes leave ACK and RST alone). The XDP program passes such packets (the established
/// flows that are most traffic) without filling a summary.
#[inline(always)]
pub fn passes_quietly(cfg: &Config, tcp_flags: u8) -> bool {
    use crate::packet::tcp_flags as f;
    cfg.flags & FAST_PATH_OFF == 0
        && cfg.nrules == 0
        && tcp_flags & (f::ACK | f::RST) != 0
        && !crate::classify::is_bogus(tcp_flags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        FAMILY_V4, FAMILY_V6, PacketSummary,
        classify::{DETECTIONS, detections, is_bogus, is_traceroute, ordinary_line},
        packet::{PROTO_TCP, tcp_flags as f},
    };
    use global_flags as g;

    fn tcp(flags: u8, opt_len: u8) -> PacketSummary {
        PacketSummary {
            family: FAMILY_V4,
            proto: PROTO_TCP,
            tcp_flags: flags,
            tcp_opt_len: opt_len,
            ttl: 64,
            ..Default::default()
        }
    }

    #[test]
    fn quiet_packets_need_nothing_but_counting() {
        let cfg = Config::default();
        let mut quiet = 0;
        for flags in 0..=255u8 {
            for family in [FAMILY_V4, FAMILY_V6] {
                for (ttl, opt_len, opts) in [(64, 0, [0; 8]), (1, 0, [0; 8]), (1, 20, [3, 3, 10, 1, 2, 4, 1, 9])] {
                    let p = PacketSummary {
                        family,
                        ttl,
                        tcp_opt_len: opt_len,
                        tcp_opts: opts,
                        tcp_urg_ptr: 1,
                        ..tcp(flags, opt_len)
                    };
                    if !passes_quietly(&cfg, flags) {
                        continue;
                    }
                    quiet += 1;
                    assert_eq!(detections(&p), 0, "{flags:#x}");
                    assert_eq!(ordinary_line(&p), None, "{flags:#x}");
                    assert!(!is_bogus(flags) && !is_traceroute(&p), "{flags:#x}");
                    // The blackholes' probe test (kernel `hardened`): ACK or RST exempts.
                    assert_ne!(flags & (f::ACK | f::RST), 0);
                }
            }
        }
        // ACK, SYN+ACK, FIN+ACK, PSH+ACK, RST, RST+ACK... (with any ECE/CWR/URG/PSH bits).
        assert!(quiet > 0 && passes_quietly(&cfg, f::ACK) && passes_quietly(&cfg, f::SYN | f::ACK));
        assert!(!passes_quietly(&cfg, f::SYN) && !passes_quietly(&cfg, f::FIN) && !passes_quietly(&cfg, 0));
        assert!(!passes_quietly(&cfg, f::SYN | f::RST | f::ACK));
        for off in [g::PROMISC, g::VERBOSE, g::FOOL_NMAP] {
            let c = Config { flags: cfg.flags | off, ..cfg };
            assert!(!passes_quietly(&c, f::ACK), "{off:#x}");
        }
        // The block lists are looked at before (the XDP program's fast path).
        for on in [g::BLOCKLIST, g::AUTOBLOCKS] {
            assert!(passes_quietly(&Config { flags: cfg.flags | on, ..cfg }, f::ACK), "{on:#x}");
        }
        assert!(!passes_quietly(&Config { nrules: 1, ..cfg }, f::ACK));
    }

    #[test]
    fn tripwire_ports_have_a_bit_each_per_protocol() {
        use crate::packet::{PROTO_ICMP, PROTO_TCP, PROTO_UDP};
        assert_eq!(tripports::place(PROTO_TCP, 0), Some((0, 0)));
        assert_eq!(tripports::place(PROTO_TCP, 23), Some((0, 23)));
        assert_eq!(tripports::place(PROTO_TCP, 65535), Some((1023, 63)));
        assert_eq!(tripports::place(PROTO_UDP, 161), Some((1024 + 2, 33)));
        assert_eq!(tripports::place(PROTO_UDP, 65535), Some((tripports::WORDS - 1, 63)));
        assert_eq!(tripports::place(PROTO_ICMP, 8), None);
    }

    #[test]
    fn defaults_are_iplogs() {
        let c = Config::default();
        assert_eq!(c.detection(Detection::PortScan).threshold, 15);
        assert_eq!(c.detection(Detection::SynScan).window_ns, 50_000_000_000);
        assert_eq!(c.detection(Detection::UdpScan).threshold, 25);
        assert_eq!(c.detection(Detection::PingFlood).window_ns, 60_000_000_000);
        assert_eq!(c.detection(Detection::Smurf).threshold, 90);
        assert!(DETECTIONS.iter().all(|d| (*d as usize) < DETECTION_SLOTS));
        assert!(DETECTIONS.iter().all(|d| c.detection(*d).block_ns == 0), "no blocking by default");
    }
}
