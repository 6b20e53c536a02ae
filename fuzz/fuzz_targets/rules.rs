//! `rules`: the kernel's `log`/`ignore` rule matcher (`ipscan_common::rules::Rule::matches`).
//!
//! - Any rule on any summary: no panic, and `rules::ignored` follows iplog's "a matching log
//!   rule wins" over the same decisions.
//! - Address-only rules (as the loader builds them: `with_addresses`, IPv4 zero-padded) decide
//!   exactly as `rules::prefix_contains` says, for any prefix length.
//! - A config rule (`ipscan::config::FilterRule`) and its kernel form (`ipscan::config::kernel::rule`)
//!   decide alike on every packet the parser can produce.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::Arbitrary;
use ipscan::{
    config::kernel,
    config::{Action, AddrMatch, FilterRule, IpNet, PortMatch, Proto, TypeMatch},
};
use ipscan_common::{
    FAMILY_V4, FAMILY_V6, PacketSummary, Rule,
    packet::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP},
    rules::{self, ACTION_IGNORE, ACTION_LOG, rule_flags},
};
use libfuzzer_sys::fuzz_target;

/// Every field of a kernel rule, unconstrained (the RULES map is written by user space, but a
/// matcher must not trust it).
#[derive(Arbitrary, Debug)]
struct RawRule {
    action: u8,
    proto: u8,
    flags: u16,
    src_family: u8,
    src_prefix: u8,
    dst_family: u8,
    dst_prefix: u8,
    sport: (u16, u16),
    dport: (u16, u16),
    icmp_type4: u16,
    icmp_type6: u16,
    src: [u64; 2],
    dst: [u64; 2],
    src_mask: [u64; 2],
    dst_mask: [u64; 2],
}

impl RawRule {
    fn rule(&self) -> Rule {
        Rule {
            action: self.action,
            proto: self.proto,
            flags: self.flags,
            src_family: self.src_family,
            src_prefix: self.src_prefix,
            dst_family: self.dst_family,
            dst_prefix: self.dst_prefix,
            sport_lo: self.sport.0,
            sport_hi: self.sport.1,
            dport_lo: self.dport.0,
            dport_hi: self.dport.1,
            icmp_type4: self.icmp_type4,
            icmp_type6: self.icmp_type6,
            _pad: 0,
            src: self.src,
            dst: self.dst,
            src_mask: self.src_mask,
            dst_mask: self.dst_mask,
        }
    }
}

/// A summary as the parser makes them: family 4 or 6, IPv4 addresses zero-padded.
#[derive(Arbitrary, Debug)]
struct Packet {
    v6: bool,
    src: [u8; 16],
    dst: [u8; 16],
    /// 0..4 pick TCP, UDP, ICMP, ICMPv6; anything else is taken as the protocol number.
    proto: u8,
    sport: u16,
    dport: u16,
    icmp_type: u8,
    ip_flags: u8,
    /// Any family byte, for the no-panic checks only.
    raw_family: u8,
}

impl Packet {
    fn summary(&self) -> PacketSummary {
        let mut p = PacketSummary {
            family: if self.v6 { FAMILY_V6 } else { FAMILY_V4 },
            proto: match self.proto {
                0 => PROTO_TCP,
                1 => PROTO_UDP,
                2 => PROTO_ICMP,
                3 => PROTO_ICMPV6,
                n => n,
            },
            sport: self.sport,
            dport: self.dport,
            icmp_type: self.icmp_type,
            ip_flags: self.ip_flags,
            src: self.src,
            dst: self.dst,
            ..Default::default()
        };
        if !self.v6 {
            p.src[4..].fill(0);
            p.dst[4..].fill(0);
        }
        p
    }
}

/// One side of an address-only rule.
#[derive(Arbitrary, Debug)]
struct Side {
    v6: bool,
    addr: [u8; 16],
    prefix: u8,
    negated: bool,
}

impl Side {
    fn addr(&self) -> [u8; 16] {
        let mut a = self.addr;
        if !self.v6 {
            a[4..].fill(0);
        }
        a
    }

    fn family(&self) -> u8 {
        if self.v6 { FAMILY_V6 } else { FAMILY_V4 }
    }

    /// The side's verdict by the prefix semantics.
    fn test(side: Option<&Side>, addr: &[u8; 16], family: u8) -> bool {
        side.is_none_or(|s| rules::prefix_contains(&s.addr(), s.family(), s.prefix, addr, family) != s.negated)
    }
}

#[derive(Arbitrary, Debug)]
struct AddrRule {
    log: bool,
    proto: u8,
    src: Option<Side>,
    dst: Option<Side>,
}

impl AddrRule {
    fn rule(&self) -> Rule {
        let mut r = Rule {
            action: if self.log { ACTION_LOG } else { ACTION_IGNORE },
            proto: self.proto,
            icmp_type4: rules::NO_TYPE,
            icmp_type6: rules::NO_TYPE,
            ..Default::default()
        };
        for (side, has, neg, family, prefix) in [
            (&self.src, rule_flags::HAS_SRC, rule_flags::NEG_SRC, &mut r.src_family, &mut r.src_prefix),
            (&self.dst, rule_flags::HAS_DST, rule_flags::NEG_DST, &mut r.dst_family, &mut r.dst_prefix),
        ] {
            if let Some(s) = side {
                r.flags |= has;
                if s.negated {
                    r.flags |= neg;
                }
                *family = s.family();
                *prefix = s.prefix;
            }
        }
        let src = self.src.as_ref().map_or([0; 16], Side::addr);
        let dst = self.dst.as_ref().map_or([0; 16], Side::addr);
        r.with_addresses(&src, &dst)
    }
}

/// A config rule as the parser can make it: ports only on TCP/UDP rules, types only on ICMP.
#[derive(Arbitrary, Debug)]
struct Filter {
    log: bool,
    proto: u8,
    from: Option<Side>,
    to: Option<Side>,
    sport: Option<(u16, u16, bool)>,
    dport: Option<(u16, u16, bool)>,
    icmp_type: Option<(u8, Option<u8>, bool)>,
}

fn addr_match(s: &Side) -> AddrMatch {
    let (addr, max) = if s.v6 {
        (IpAddr::V6(Ipv6Addr::from(s.addr)), 128)
    } else {
        (IpAddr::V4(Ipv4Addr::new(s.addr[0], s.addr[1], s.addr[2], s.addr[3])), 32)
    };
    let net = IpNet::new(addr, s.prefix % (max + 1)).expect("prefix within the family's length");
    AddrMatch { net, negated: s.negated }
}

fn port_match((a, b, negated): (u16, u16, bool)) -> PortMatch {
    PortMatch { first: a.min(b), last: a.max(b), negated }
}

impl Filter {
    fn rule(&self) -> FilterRule {
        let proto = match self.proto % 3 {
            0 => Proto::Tcp,
            1 => Proto::Udp,
            _ => Proto::Icmp,
        };
        let ports = proto != Proto::Icmp;
        FilterRule {
            action: if self.log { Action::Log } else { Action::Ignore },
            proto,
            from: self.from.as_ref().map(addr_match),
            to: self.to.as_ref().map(addr_match),
            sport: self.sport.filter(|_| ports).map(port_match),
            dport: self.dport.filter(|_| ports).map(port_match),
            icmp_type: self.icmp_type.filter(|_| !ports).map(|(t4, t6, negated)| TypeMatch {
                icmp_type: t4,
                icmpv6_type: t6,
                negated,
            }),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    raw: RawRule,
    packet: Packet,
    addr_rule: AddrRule,
    filter: Filter,
}

fuzz_target!(|input: Input| {
    let p = input.packet.summary();

    // Anything goes: no panic, and `ignored` is "some ignore rule matches and no log rule does".
    let raw = input.raw.rule();
    let mut odd = p;
    odd.family = input.packet.raw_family;
    for q in [&p, &odd] {
        let hit = raw.matches(q);
        assert_eq!(rules::ignored([&raw], q), hit && raw.action != ACTION_LOG);
    }

    // Address-only rules follow the prefix semantics.
    let ar = input.addr_rule.rule();
    let proto_ok =
        ar.proto == p.proto || (ar.proto == PROTO_ICMP && (p.proto == PROTO_ICMP || p.proto == PROTO_ICMPV6));
    let want = proto_ok
        && Side::test(input.addr_rule.src.as_ref(), &p.src, p.family)
        && Side::test(input.addr_rule.dst.as_ref(), &p.dst, p.family);
    assert_eq!(ar.matches(&p), want, "address rule {ar:?} on {p:?}");
    let both = [ar, raw];
    let any_log = both.iter().any(|r| r.action == ACTION_LOG && r.matches(&p));
    let any_ignore = both.iter().any(|r| r.action != ACTION_LOG && r.matches(&p));
    assert_eq!(rules::ignored(&both, &p), any_ignore && !any_log, "a matching log rule wins");

    // The config's matcher and the kernel's form of the same rule agree.
    let fr = input.filter.rule();
    let kr = kernel::rule(&fr);
    assert_eq!(fr.matches(&p), kr.matches(&p), "config rule {fr:?} vs kernel rule {kr:?} on {p:?}");
});
