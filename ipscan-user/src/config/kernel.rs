//! From `iplog.conf` [`Settings`] to what the XDP program reads: the CONFIG value (thresholds,
//! switches), the RULES array and the PROMISC4/PROMISC6 prefix tries; and writing them into a
//! loaded program, at start and on SIGHUP. SOURCES (detection state) is never touched here, so a
//! reload keeps every window and mode.

use std::{collections::HashSet, net::IpAddr};

use aya::{
    Ebpf,
    maps::{Array, LpmTrie, MapError, lpm_trie::Key},
};
use ipscan_common::{
    Config, DETECTIONS, Detection, FAMILY_V4, FAMILY_V6, Rule,
    config::{global_flags as g, tripports},
    maps,
    packet::{PROTO_ICMP, PROTO_TCP, PROTO_UDP},
    rules::{ACTION_IGNORE, ACTION_LOG, MAX_RULES, NO_TYPE, rule_flags},
};

use crate::{
    config::{Action, AddrMatch, FilterRule, IpNet, PortMatch, Proto, Settings},
    host::{hostinfo, listen},
};

/// Entries of each PROMISC trie (the map's size in the eBPF object).
pub const PROMISC_MAX: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum KconfigError {
    #[error("too many log/ignore rules: {count} (with ignore_dns nameservers); the kernel holds at most {max}")]
    TooManyRules { count: usize, max: usize },
    #[error("too many promisc networks: {count}; the kernel holds at most {max}")]
    TooManyPromisc { count: usize, max: usize },
    #[error("too many tripwire networks: {count}; the kernel holds at most {max}")]
    TooManyTripwires { count: usize, max: usize },
    #[error("the eBPF object has no map named {name}")]
    MissingMap { name: &'static str },
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
}

/// Everything the kernel side gets from the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelSettings {
    /// The CONFIG value; `nrules` counts `rules`.
    pub config: Config,
    /// RULES entries in file order, `ignore_dns` rules last.
    pub rules: Vec<Rule>,
    /// `promisc` networks, IPv4 (address bytes, prefix length).
    pub promisc4: Vec<([u8; 4], u8)>,
    /// `promisc` networks, IPv6.
    pub promisc6: Vec<([u8; 16], u8)>,
    /// `tripwire tcp|udp` ports as TRIPWIRE keys (protocol << 16 | port).
    pub tripwire_ports: Vec<u32>,
    /// `tripwire addr` prefixes, IPv4 and IPv6.
    pub tripaddr4: Vec<([u8; 4], u8)>,
    pub tripaddr6: Vec<([u8; 16], u8)>,
}

/// The `set` switches the kernel reads; every other bit of the kernel flags (the hardening
/// options) is left as the settings' kernel config has it.
const MANAGED: u32 = g::LOG_TCP
    | g::LOG_UDP
    | g::LOG_ICMP
    | g::BOGUS
    | g::TRACEROUTE
    | g::FRAG
    | g::VERBOSE
    | g::SCANS_ONLY
    | g::PROMISC
    | g::TRIPWIRE
    | g::TRIPADDR
    | g::SWEEPS
    | g::DISTRIBUTED
    | g::DIST_SCAN
    | g::CONFIRMED
    | g::REJECTS;

impl KernelSettings {
    /// Converts settings; `nameservers` are the addresses `ignore_dns` ignores (see
    /// [`nameservers`]), used only when the setting is on.
    pub fn from_settings(s: &Settings, nameservers: &[IpAddr]) -> Result<Self, KconfigError> {
        let f = &s.flags;
        let mut config = s.kernel;
        let mut flags = config.flags & !MANAGED;
        for (on, bit) in [
            (f.tcp, g::LOG_TCP),
            (f.udp, g::LOG_UDP),
            (f.icmp, g::LOG_ICMP),
            (f.bogus, g::BOGUS),
            (f.traceroute, g::TRACEROUTE),
            (f.frag, g::FRAG),
            (f.verbose, g::VERBOSE),
            (f.scans_only, g::SCANS_ONLY),
            (!s.promisc.is_empty(), g::PROMISC),
            (!s.tripwire.tcp.is_empty() || !s.tripwire.udp.is_empty(), g::TRIPWIRE),
            (!s.tripwire.addrs.is_empty(), g::TRIPADDR),
            (DETECTIONS.iter().any(|d| d.counts_hosts() && config.detection(*d).enabled()), g::SWEEPS),
            (config.detection(Detection::DistFlood).enabled(), g::DISTRIBUTED),
            (config.detection(Detection::DistScan).enabled(), g::DIST_SCAN),
            (s.confirmed, g::CONFIRMED),
            (s.wants_rejects(), g::REJECTS),
        ] {
            if on {
                flags |= bit;
            }
        }
        config.flags = flags;

        let mut rules: Vec<Rule> = s.rules.iter().map(rule).collect();
        if f.ignore_dns {
            // Deduplicated: resolv.conf may list a server twice.
            let mut seen = HashSet::new();
            rules.extend(nameservers.iter().filter(|a| seen.insert(**a)).map(|a| dns_rule(*a)));
        }
        if rules.len() > MAX_RULES {
            return Err(KconfigError::TooManyRules { count: rules.len(), max: MAX_RULES });
        }
        config.nrules = rules.len() as u32;

        let (promisc4, promisc6) = by_family(&s.promisc);
        for count in [promisc4.len(), promisc6.len()] {
            if count > PROMISC_MAX {
                return Err(KconfigError::TooManyPromisc { count, max: PROMISC_MAX });
            }
        }
        let mut tripwire_ports: Vec<u32> = (s.tripwire.tcp.iter().map(|p| (PROTO_TCP as u32) << 16 | *p as u32))
            .chain(s.tripwire.udp.iter().map(|p| (PROTO_UDP as u32) << 16 | *p as u32))
            .collect();
        tripwire_ports.sort_unstable();
        tripwire_ports.dedup();
        let (tripaddr4, tripaddr6) = by_family(&s.tripwire.addrs);
        for count in [tripaddr4.len(), tripaddr6.len()] {
            let max = maps::TRIPADDR_MAX as usize;
            if count > max {
                return Err(KconfigError::TooManyTripwires { count, max });
            }
        }
        Ok(Self { config, rules, promisc4, promisc6, tripwire_ports, tripaddr4, tripaddr6 })
    }

    /// The kernel side of `settings` as `ipscan run` and `ipscan replay` write it: CONFIG
    /// (thresholds, windows, block times, iplog's switches, the hardening options), RULES and
    /// PROMISC, with the nameservers of `/etc/resolv.conf` for `ignore_dns` (read only when it
    /// is on; an unreadable file means no nameservers) and this host's ephemeral ports.
    pub fn load(s: &Settings) -> Result<Self, KconfigError> {
        let ns = if s.flags.ignore_dns { hostinfo::nameservers() } else { Vec::new() };
        let mut k = Self::from_settings(s, &ns)?;
        let mut set = |flag: u32, on: bool| {
            if on {
                k.config.flags |= flag;
            } else {
                k.config.flags &= !flag;
            }
        };
        set(g::DROP_SYNFIN, s.flags.drop_synfin);
        set(g::DRY_RUN, s.flags.dry_run);
        set(g::FOOL_NMAP, s.flags.fool_nmap);
        set(g::BLACKHOLE_TCP, s.blackhole_tcp);
        set(g::BLACKHOLE_UDP, s.blackhole_udp);
        // A policy that auto-blocks makes the kernel look at AUTOBLOCK from the start; entries
        // left from before (restart, restore) set it too, at setup and on every sweep.
        let auto = k.config.detections.iter().any(|d| d.block_ns != 0);
        set(g::AUTOBLOCKS, auto);
        k.config.ephemeral_lo = listen::ephemeral_low();
        Ok(k)
    }

    /// Writes RULES, PROMISC4/6, the tripwires and CONFIG into a loaded program. Order matters
    /// for a reload under traffic: the rules and prefixes are complete before CONFIG says how many
    /// rules to walk and whether to consult the prefixes; new prefixes go in before stale ones go
    /// out.
    pub fn apply(&self, ebpf: &mut Ebpf) -> Result<(), KconfigError> {
        {
            let mut arr: Array<_, Rule> = Array::try_from(map(ebpf, maps::RULES)?)
                .map_err(|source| KconfigError::Map { name: maps::RULES, source })?;
            for i in 0..MAX_RULES {
                let r = self.rules.get(i).copied().unwrap_or_default();
                arr.set(i as u32, r, 0).map_err(|source| KconfigError::Map { name: maps::RULES, source })?;
            }
        }
        let p4: Vec<Key<[u8; 4]>> = self.promisc4.iter().map(|(a, p)| Key::new(u32::from(*p), *a)).collect();
        replace_prefixes(map(ebpf, maps::PROMISC4)?, maps::PROMISC4, &p4)?;
        let p6: Vec<Key<[u8; 16]>> = self.promisc6.iter().map(|(a, p)| Key::new(u32::from(*p), *a)).collect();
        replace_prefixes(map(ebpf, maps::PROMISC6)?, maps::PROMISC6, &p6)?;
        let t4: Vec<Key<[u8; 4]>> = self.tripaddr4.iter().map(|(a, p)| Key::new(u32::from(*p), *a)).collect();
        replace_prefixes(map(ebpf, maps::TRIPADDR4)?, maps::TRIPADDR4, &t4)?;
        let t6: Vec<Key<[u8; 16]>> = self.tripaddr6.iter().map(|(a, p)| Key::new(u32::from(*p), *a)).collect();
        replace_prefixes(map(ebpf, maps::TRIPADDR6)?, maps::TRIPADDR6, &t6)?;
        {
            let err = |source| KconfigError::Map { name: maps::TRIPPORTS, source };
            let mut words: Array<_, u64> = Array::try_from(map(ebpf, maps::TRIPPORTS)?).map_err(err)?;
            let mut want = vec![0u64; tripports::WORDS as usize];
            for key in &self.tripwire_ports {
                if let Some((word, bit)) = tripports::place((key >> 16) as u8, *key as u16) {
                    want[word as usize] |= 1 << bit;
                }
            }
            // Only the words that differ: a reload writes what changed.
            for (i, w) in want.iter().enumerate() {
                if words.get(&(i as u32), 0).map_err(err)? != *w {
                    words.set(i as u32, *w, 0).map_err(err)?;
                }
            }
        }
        let mut arr: Array<_, Config> = Array::try_from(map(ebpf, maps::CONFIG)?)
            .map_err(|source| KconfigError::Map { name: maps::CONFIG, source })?;
        arr.set(0, self.config, 0).map_err(|source| KconfigError::Map { name: maps::CONFIG, source })
    }
}

/// IPv4 and IPv6 prefixes as (address bytes, prefix length).
type ByFamily = (Vec<([u8; 4], u8)>, Vec<([u8; 16], u8)>);

/// Prefixes split by family.
fn by_family(nets: &[IpNet]) -> ByFamily {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for net in nets {
        match net.addr() {
            IpAddr::V4(a) => v4.push((a.octets(), net.prefix())),
            IpAddr::V6(a) => v6.push((a.octets(), net.prefix())),
        }
    }
    (v4, v6)
}

fn map<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut aya::maps::Map, KconfigError> {
    ebpf.map_mut(name).ok_or(KconfigError::MissingMap { name })
}

/// Makes an LPM trie hold exactly `want`: inserts first, then removes what is no longer wanted.
fn replace_prefixes<K: aya::Pod + PartialEq>(
    m: &mut aya::maps::Map,
    name: &'static str,
    want: &[Key<K>],
) -> Result<(), KconfigError> {
    let err = |source| KconfigError::Map { name, source };
    let mut trie: LpmTrie<_, K, u32> = LpmTrie::try_from(m).map_err(err)?;
    for k in want {
        trie.insert(k, 1, 0).map_err(err)?;
    }
    let same = |a: &Key<K>, b: &Key<K>| a.prefix_len() == b.prefix_len() && a.data() == b.data();
    let stale: Vec<Key<K>> = trie.keys().filter_map(Result::ok).filter(|k| !want.iter().any(|w| same(w, k))).collect();
    for k in stale {
        trie.remove(&k).map_err(err)?;
    }
    Ok(())
}

/// `ignore udp from NS sport 53`.
fn dns_rule(ns: IpAddr) -> Rule {
    let (bytes, family, prefix) = addr_bytes(&IpNet::host(ns));
    Rule {
        action: ACTION_IGNORE,
        proto: PROTO_UDP,
        flags: rule_flags::HAS_SRC | rule_flags::HAS_SPORT,
        src_family: family,
        src_prefix: prefix,
        sport_lo: 53,
        sport_hi: 53,
        icmp_type4: NO_TYPE,
        icmp_type6: NO_TYPE,
        ..Default::default()
    }
    .with_addresses(&bytes, &[0; 16])
}

fn addr_bytes(net: &IpNet) -> ([u8; 16], u8, u8) {
    let mut b = [0u8; 16];
    match net.addr() {
        IpAddr::V4(a) => {
            b[..4].copy_from_slice(&a.octets());
            (b, FAMILY_V4, net.prefix())
        }
        IpAddr::V6(a) => (a.octets(), FAMILY_V6, net.prefix()),
    }
}

/// One config rule in the kernel's form.
pub fn rule(r: &FilterRule) -> Rule {
    let mut k = Rule {
        action: match r.action {
            Action::Log => ACTION_LOG,
            Action::Ignore => ACTION_IGNORE,
        },
        proto: match r.proto {
            Proto::Tcp => PROTO_TCP,
            Proto::Udp => PROTO_UDP,
            Proto::Icmp => PROTO_ICMP,
        },
        icmp_type4: NO_TYPE,
        icmp_type6: NO_TYPE,
        ..Default::default()
    };
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    let addr = |m: &AddrMatch, has: u16, neg: u16, flags: &mut u16| {
        *flags |= has;
        if m.negated {
            *flags |= neg;
        }
        addr_bytes(&m.net)
    };
    if let Some(m) = &r.from {
        let (b, fam, pre) = addr(m, rule_flags::HAS_SRC, rule_flags::NEG_SRC, &mut k.flags);
        (src, k.src_family, k.src_prefix) = (b, fam, pre);
    }
    if let Some(m) = &r.to {
        let (b, fam, pre) = addr(m, rule_flags::HAS_DST, rule_flags::NEG_DST, &mut k.flags);
        (dst, k.dst_family, k.dst_prefix) = (b, fam, pre);
    }
    let ports = |m: &PortMatch, has: u16, neg: u16, flags: &mut u16| {
        *flags |= has;
        if m.negated {
            *flags |= neg;
        }
        (m.first, m.last)
    };
    if let Some(m) = &r.sport {
        (k.sport_lo, k.sport_hi) = ports(m, rule_flags::HAS_SPORT, rule_flags::NEG_SPORT, &mut k.flags);
    }
    if let Some(m) = &r.dport {
        (k.dport_lo, k.dport_hi) = ports(m, rule_flags::HAS_DPORT, rule_flags::NEG_DPORT, &mut k.flags);
    }
    if let Some(t) = &r.icmp_type {
        k.flags |= rule_flags::HAS_TYPE;
        if t.negated {
            k.flags |= rule_flags::NEG_TYPE;
        }
        k.icmp_type4 = u16::from(t.icmp_type);
        k.icmp_type6 = t.icmpv6_type.map_or(NO_TYPE, u16::from);
    }
    k.with_addresses(&src, &dst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    use ipscan_common::{Detection, PacketSummary, packet::PROTO_ICMPV6, rules};

    fn settings(text: &str) -> Settings {
        Settings::parse(text, Path::new("t.conf")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn ks(text: &str) -> KernelSettings {
        KernelSettings::from_settings(&settings(text), &[]).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn default_flags_are_iplogs() {
        let k = ks("");
        // iplog's, and ipscan's distributed flood.
        let want = g::LOG_TCP | g::LOG_UDP | g::LOG_ICMP | g::BOGUS | g::TRACEROUTE | g::FRAG | g::DISTRIBUTED;
        assert_eq!(k.config.flags, want);
        assert_eq!(ks("set distributed_flood false").config.flags, want & !g::DISTRIBUTED);
        let scan_only = "set distributed_flood false\nset distributed_scan";
        assert_eq!(ks(scan_only).config.flags, want & !g::DISTRIBUTED | g::DIST_SCAN);
        assert_eq!(ks("set tcp_sweep").config.flags, want | g::SWEEPS);
        // The host's rejects: counted for `counting confirmed` and for the rejected probes.
        assert_eq!(ks("counting confirmed").config.flags, want | g::CONFIRMED | g::REJECTS);
        assert_eq!(ks("set rejected").config.flags, want | g::REJECTS);
        assert_eq!(k.config.nrules, 0);
        assert!(k.rules.is_empty() && k.promisc4.is_empty() && k.promisc6.is_empty());
    }

    #[test]
    fn set_switches_map_to_kernel_flags() {
        let cases: &[(&str, u32, bool)] = &[
            ("set tcp false", g::LOG_TCP, false),
            ("set udp false", g::LOG_UDP, false),
            ("set icmp false", g::LOG_ICMP, false),
            ("set bogus false", g::BOGUS, false),
            ("set traceroute false", g::TRACEROUTE, false),
            ("set frag false", g::FRAG, false),
            ("set verbose", g::VERBOSE, true),
            ("set scans_only", g::SCANS_ONLY, true),
            ("promisc 198.18.0.0/15", g::PROMISC, true),
        ];
        for (text, bit, on) in cases {
            let k = ks(text);
            assert_eq!(k.config.flags & bit != 0, *on, "{text}");
            // Only that bit moved.
            assert_eq!(k.config.flags ^ ks("").config.flags, *bit, "{text}");
        }
    }

    #[test]
    fn hardening_bits_pass_through() {
        let mut s = settings("set verbose");
        s.kernel.flags |= g::DROP_SYNFIN | g::FOOL_NMAP;
        let k = KernelSettings::from_settings(&s, &[]).expect("ok");
        assert!(k.config.has(g::DROP_SYNFIN) && k.config.has(g::FOOL_NMAP) && k.config.has(g::VERBOSE));
    }

    #[test]
    fn thresholds_and_packet_rate_carry_over() {
        let k = ks("threshold udp_scan 7\nwindow udp_flood 2s\npacket_rate 5\nset udp_scan false");
        assert_eq!(k.config.detection(Detection::UdpScan).threshold, 7);
        assert_eq!(k.config.detection(Detection::UdpFlood).window_ns, 2_000_000_000);
        assert_eq!(k.config.packet_events_per_sec, 5);
        assert!(!k.config.detection(Detection::UdpScan).enabled());
        assert!(!k.config.detection(Detection::UdpFlood).enabled(), "udp_scan is scan/flood");
    }

    #[test]
    fn packet_rate_and_udp_flood_keywords_reject_bad_input() {
        for (text, msg) in [
            ("packet_rate 0", "t.conf:1: invalid packet_rate \"0\": expected a positive integer (lines per second)"),
            ("packet_rate -3", "t.conf:1: invalid packet_rate \"-3\": expected a positive integer (lines per second)"),
            ("packet_rate", "t.conf:1: missing lines per second after \"packet_rate\""),
            ("packet_rate 5 6", "t.conf:1: too many values for \"packet_rate\": unexpected \"6\""),
            ("set udp_flood", "t.conf:1: unknown set keyword \"udp_flood\""),
        ] {
            let e = Settings::parse(text, Path::new("t.conf")).expect_err(text);
            assert_eq!(e.to_string(), msg);
        }
    }

    #[test]
    fn promisc_prefixes_split_by_family() {
        let k = ks("promisc 198.18.0.0/15, 10.1.2.3, 2001:db8::/32");
        assert_eq!(k.promisc4, vec![([198, 18, 0, 0], 15), ([10, 1, 2, 3], 32)]);
        assert_eq!(k.promisc6.len(), 1);
        assert_eq!(k.promisc6[0].1, 32);
    }

    #[test]
    fn tripwires_become_port_keys_and_prefixes_and_turn_the_lookup_on() {
        assert_eq!(ks("").config.flags & g::TRIPWIRE, 0, "off without tripwires");
        let k = ks(
            "tripwire tcp 23, 445\ntripwire udp 161\ntripwire tcp 23\ntripwire addr 198.18.0.250, 2001:db8::250/128",
        );
        assert_eq!(k.config.flags & g::TRIPWIRE, g::TRIPWIRE);
        assert_eq!(k.tripwire_ports, vec![6 << 16 | 23, 6 << 16 | 445, 17 << 16 | 161], "sorted, each once");
        assert_eq!(k.tripaddr4, vec![([198, 18, 0, 250], 32)]);
        assert_eq!(k.tripaddr6.len(), 1);
        assert_eq!(k.config.flags & g::TRIPADDR, g::TRIPADDR);
        assert_eq!(ks("tripwire udp 161").config.flags & (g::TRIPWIRE | g::TRIPADDR), g::TRIPWIRE);
        let many: String = (0..257).map(|i| format!("tripwire addr 10.0.{}.{}\n", i / 256, i % 256)).collect();
        let err = KernelSettings::from_settings(&settings(&many), &[]).expect_err("too many");
        assert_eq!(err.to_string(), "too many tripwire networks: 257; the kernel holds at most 256");
    }

    #[test]
    fn too_many_rules_names_the_count() {
        let text: String = (0..65).map(|i| format!("ignore tcp dport {}\n", 1000 + i)).collect();
        let err = KernelSettings::from_settings(&settings(&text), &[]).expect_err("65 rules");
        assert_eq!(
            err.to_string(),
            "too many log/ignore rules: 65 (with ignore_dns nameservers); the kernel holds at most 64"
        );
        let text: String = (0..64).map(|i| format!("ignore tcp dport {}\n", 1000 + i)).collect();
        assert_eq!(ks(&text).config.nrules, 64);
        // ignore_dns rules count too.
        let ns: Vec<IpAddr> = vec!["10.0.0.53".parse().expect("ip")];
        let s = settings(&format!("set ignore_dns\n{text}"));
        assert!(KernelSettings::from_settings(&s, &ns).is_err());
    }

    #[test]
    fn ignore_dns_adds_one_rule_per_nameserver() {
        let ns = hostinfo::parse_nameservers(
            "# comment\nnameserver 10.0.0.53\nnameserver 2001:db8::53\nnameserver fe80::1%eth0\n\
             nameserver 10.0.0.53\nsearch example.org\n; nameserver 1.1.1.1\nnameserver bogus\n",
        );
        assert_eq!(ns.len(), 4);
        let k = KernelSettings::from_settings(&settings("set ignore_dns"), &ns).expect("ok");
        assert_eq!(k.rules.len(), 3, "deduplicated");
        assert_eq!(k.config.nrules, 3);
        let mut p =
            PacketSummary { family: FAMILY_V4, proto: PROTO_UDP, sport: 53, dport: 40000, ..Default::default() };
        p.src[..4].copy_from_slice(&[10, 0, 0, 53]);
        assert!(rules::ignored(&k.rules, &p));
        p.sport = 54;
        assert!(!rules::ignored(&k.rules, &p), "only answers from port 53");
        p.sport = 53;
        p.src[3] = 54;
        assert!(!rules::ignored(&k.rules, &p), "only the nameservers");
        // Off: no rules even with nameservers known.
        assert!(KernelSettings::from_settings(&settings(""), &ns).expect("ok").rules.is_empty());
    }

    /// Packets that exercise every matcher: both families, all three protocols, ports at range
    /// edges, later fragments.
    fn packets() -> Vec<PacketSummary> {
        let mut out = Vec::new();
        let v4s: [[u8; 4]; 4] = [[10, 1, 2, 3], [10, 2, 0, 1], [192, 168, 1, 9], [198, 18, 0, 1]];
        let v6s = ["2001:db8::1", "2001:db8:1::5", "fe80::1"];
        let ports = [0u16, 22, 53, 79, 80, 81, 139, 1000, 2000, 2001, 65535];
        for proto in [PROTO_TCP, PROTO_UDP, PROTO_ICMP] {
            for (i, s4) in v4s.iter().enumerate() {
                for (j, port) in ports.iter().enumerate() {
                    let mut p = PacketSummary { family: FAMILY_V4, proto, ..Default::default() };
                    p.src[..4].copy_from_slice(s4);
                    p.dst[..4].copy_from_slice(&v4s[(i + 1) % v4s.len()]);
                    p.dport = *port;
                    p.sport = ports[(j + 3) % ports.len()];
                    p.icmp_type = [0u8, 3, 8, 11, 13][j % 5];
                    out.push(p);
                    let mut frag = p;
                    frag.ip_flags =
                        ipscan_common::packet::ip_flags::FRAGMENT | ipscan_common::packet::ip_flags::LATER_FRAGMENT;
                    out.push(frag);
                }
            }
            for (i, s6) in v6s.iter().enumerate() {
                for (j, port) in ports.iter().enumerate() {
                    let parse = |s: &str| s.parse::<std::net::Ipv6Addr>().expect("v6").octets();
                    let p = PacketSummary {
                        family: FAMILY_V6,
                        proto: if proto == PROTO_ICMP { PROTO_ICMPV6 } else { proto },
                        src: parse(s6),
                        dst: parse(v6s[(i + 1) % v6s.len()]),
                        dport: *port,
                        sport: ports[(j + 5) % ports.len()],
                        icmp_type: [128u8, 129, 1, 3][j % 4],
                        ..Default::default()
                    };
                    out.push(p);
                }
            }
        }
        // Crafted (found by the `rules` fuzz target): IPv4-mapped addresses in IPv6 packets,
        // which no IPv4 network contains, and ICMP of the other family's protocol number, whose
        // type is read in the packet family's table.
        let mapped = |s: &str| s.parse::<std::net::Ipv6Addr>().expect("v6").octets();
        for (proto, icmp_type) in [(PROTO_TCP, 0u8), (PROTO_UDP, 0), (PROTO_ICMP, 8), (PROTO_ICMP, 0), (PROTO_ICMP, 3)]
        {
            out.push(PacketSummary {
                family: FAMILY_V6,
                proto,
                icmp_type,
                src: mapped("::ffff:10.1.2.3"),
                dst: mapped("::ffff:10.2.0.1"),
                sport: 53,
                dport: 80,
                ..Default::default()
            });
        }
        for icmp_type in [128u8, 129, 1] {
            let mut p = PacketSummary { family: FAMILY_V4, proto: PROTO_ICMPV6, icmp_type, ..Default::default() };
            p.src[..4].copy_from_slice(&[10, 1, 2, 3]);
            p.dst[..4].copy_from_slice(&[10, 2, 0, 1]);
            out.push(p);
        }
        out
    }

    /// The kernel's rule form must decide exactly as the config's matcher does.
    #[test]
    fn kernel_rules_agree_with_config_rules() {
        let texts = [
            "ignore tcp dport 80",
            "ignore tcp dport !22",
            "ignore udp sport 53 from 10.1.0.0/16",
            "ignore udp from !10.1.0.0/255.255.0.0 dport 1000:2000",
            "ignore tcp to 10.2.0.1 sport :80",
            "ignore icmp type echo",
            "ignore icmp type !echo-reply from 2001:db8::/32",
            "ignore icmp type 3",
            "ignore icmp type timestamp",
            "ignore tcp from 2001:db8::/48 dport 2001:",
            "ignore udp to !fe80::/10",
            "ignore tcp dport 1:65535\nlog tcp dport 80",
            "ignore udp from 10/8\nlog udp from 10.1.2.3 dport 53:81",
            "ignore icmp from 192.168.1.0/24\nlog icmp type unreach",
            "ignore tcp from 198.18.0.1 dport 139",
        ];
        let pkts = packets();
        for text in texts {
            let s = settings(text);
            let k = KernelSettings::from_settings(&s, &[]).expect("ok");
            assert_eq!(k.rules.len(), s.rules.len());
            let mut ignored = 0;
            for p in &pkts {
                let want = s.ignores(p);
                assert_eq!(rules::ignored(&k.rules, p), want, "{text}: {p:?}");
                ignored += usize::from(want);
            }
            assert!(ignored > 0, "{text} should ignore some test packet");
        }
    }
}
