//! iplog's `log` / `ignore` rules in the form the kernel evaluates before any detection.

use crate::{
    FAMILY_V4, FAMILY_V6, PacketSummary, flat,
    packet::{PROTO_ICMP, PROTO_ICMPV6, ip_flags},
};

/// Rules the RULES map holds (the kernel's loop bound).
pub const MAX_RULES: usize = 64;

pub const ACTION_IGNORE: u8 = 1;
pub const ACTION_LOG: u8 = 2;

/// Bits of [`Rule::flags`].
pub mod rule_flags {
    pub const HAS_SRC: u16 = 1 << 0;
    pub const NEG_SRC: u16 = 1 << 1;
    pub const HAS_DST: u16 = 1 << 2;
    pub const NEG_DST: u16 = 1 << 3;
    pub const HAS_SPORT: u16 = 1 << 4;
    pub const NEG_SPORT: u16 = 1 << 5;
    pub const HAS_DPORT: u16 = 1 << 6;
    pub const NEG_DPORT: u16 = 1 << 7;
    pub const HAS_TYPE: u16 = 1 << 8;
    pub const NEG_TYPE: u16 = 1 << 9;
}

/// No ICMP type of this family matches (a type that exists only in the other family).
pub const NO_TYPE: u16 = 0xffff;

/// One rule. `proto` ICMP matches ICMP and ICMPv6.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    /// [`ACTION_IGNORE`] or [`ACTION_LOG`].
    pub action: u8,
    /// 6, 17 or 1.
    pub proto: u8,
    /// [`rule_flags`] bits.
    pub flags: u16,
    pub src_family: u8,
    pub src_prefix: u8,
    pub dst_family: u8,
    pub dst_prefix: u8,
    pub sport_lo: u16,
    pub sport_hi: u16,
    pub dport_lo: u16,
    pub dport_hi: u16,
    /// ICMP type for IPv4 packets, or [`NO_TYPE`].
    pub icmp_type4: u16,
    /// ICMPv6 type for IPv6 packets, or [`NO_TYPE`].
    pub icmp_type6: u16,
    pub _pad: u32,
    /// Addresses and prefix masks as native-endian words, as [`PacketSummary`] holds them
    /// (made by [`Rule::finish`]): matching is straight-line code for the verifier, which walks
    /// it once per possible rule.
    pub src: [u64; 2],
    pub dst: [u64; 2],
    pub src_mask: [u64; 2],
    pub dst_mask: [u64; 2],
}
const _: () = assert!(core::mem::size_of::<Rule>() == 88);

/// Whether `addr` of `family` lies in `net/prefix` of `net_family`.
pub fn prefix_contains(net: &[u8; 16], net_family: u8, prefix: u8, addr: &[u8; 16], family: u8) -> bool {
    if net_family != family {
        return false;
    }
    let max = if family == FAMILY_V6 { 128 } else { 32 };
    let prefix = if prefix > max { max } else { prefix } as usize;
    let full = prefix / 8;
    for i in 0..16 {
        if i >= full {
            break;
        }
        if net[i] != addr[i] {
            return false;
        }
    }
    let rem = prefix % 8;
    if rem != 0 && full < 16 {
        let mask = 0xffu8 << (8 - rem);
        if net[full] & mask != addr[full] & mask {
            return false;
        }
    }
    true
}

/// The byte mask of a prefix length.
pub fn prefix_mask(prefix: u8) -> [u8; 16] {
    let mut m = [0u8; 16];
    let mut left = prefix as u32;
    for b in m.iter_mut() {
        let take = if left >= 8 { 8 } else { left };
        *b = if take == 0 { 0 } else { 0xffu8 << (8 - take) };
        left -= take;
    }
    m
}

/// An address as two native-endian words.
pub fn words(a: &[u8; 16]) -> [u64; 2] {
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    lo.copy_from_slice(&a[..8]);
    hi.copy_from_slice(&a[8..]);
    [u64::from_ne_bytes(lo), u64::from_ne_bytes(hi)]
}

/// 1 when `(a ^ b) & mask` is zero over both words, else 0.
#[inline(always)]
fn masked_eq(a: &[u64; 2], b: &[u8; 16], mask: &[u64; 2]) -> u64 {
    // SAFETY: [u8; 16] and [u64; 2] have the same size; read_unaligned copes with alignment.
    let b: [u64; 2] = unsafe { core::ptr::read_unaligned(b.as_ptr().cast()) };
    flat::nonzero(((a[0] ^ b[0]) & mask[0]) | ((a[1] ^ b[1]) & mask[1])) ^ 1
}

impl Rule {
    /// A rule whose source and destination are `src/src_prefix` and `dst/dst_prefix`
    /// (families and the other fields set by the caller); fills the word forms and masks.
    pub fn with_addresses(mut self, src: &[u8; 16], dst: &[u8; 16]) -> Self {
        self.src = words(src);
        self.dst = words(dst);
        self.src_mask = words(&prefix_mask(self.src_prefix));
        self.dst_mask = words(&prefix_mask(self.dst_prefix));
        self
    }

    /// Whether the rule matches the packet. Parts absent from the packet (ports of a later
    /// fragment) never match a rule that tests them.
    #[inline(always)]
    pub fn matches(&self, p: &PacketSummary) -> bool {
        self.match_word(p) != 0
    }

    /// [`Rule::matches`] as a 0/1 word, computed without a jump ([`flat`]): the kernel's rule
    /// walk is then one path per rule for the verifier.
    ///
    /// Each test's hit goes to the odd bit of its [`rule_flags`] pair, next to its NEG bit; a
    /// test fails when its HAS bit (the even one) is set and hit and NEG agree.
    #[inline(always)]
    pub fn match_word(&self, p: &PacketSummary) -> u64 {
        use flat::{eq, le, nonzero};
        use rule_flags::*;
        const HAS: u64 = (HAS_SRC | HAS_DST | HAS_SPORT | HAS_DPORT | HAS_TYPE) as u64;
        const TRANSPORT: u64 = (HAS_SPORT | HAS_DPORT | HAS_TYPE) as u64;
        const _: () = assert!(HAS == 0x155 && NEG_SRC == HAS_SRC << 1 && NEG_TYPE == HAS_TYPE << 1);
        let f = self.flags as u64;
        let proto = p.proto as u64;
        let is_icmp = eq(proto, PROTO_ICMP as u64) | eq(proto, PROTO_ICMPV6 as u64);
        let proto_ok = eq(self.proto as u64, proto) | (eq(self.proto as u64, PROTO_ICMP as u64) & is_icmp);
        let family = p.family as u64;
        let src_hit = eq(self.src_family as u64, family) & masked_eq(&self.src, &p.src, &self.src_mask);
        let dst_hit = eq(self.dst_family as u64, family) & masked_eq(&self.dst, &p.dst, &self.dst_mask);
        let (sport, dport) = (p.sport as u64, p.dport as u64);
        let sport_hit = le(self.sport_lo as u64, sport) & le(sport, self.sport_hi as u64);
        let dport_hit = le(self.dport_lo as u64, dport) & le(dport, self.dport_hi as u64);
        // The family's wanted type, chosen without a jump: v4 is 1 for IPv4, 0 otherwise.
        let v4 = eq(family, FAMILY_V4 as u64);
        let want = (self.icmp_type4 as u64 & v4.wrapping_neg()) | (self.icmp_type6 as u64 & (v4 ^ 1).wrapping_neg());
        let type_hit = (eq(want, NO_TYPE as u64) ^ 1) & eq(want, p.icmp_type as u64);
        let hits = (src_hit << 1) | (dst_hit << 3) | (sport_hit << 5) | (dport_hit << 7) | (type_hit << 9);
        let failed = nonzero(f & HAS & !((f ^ hits) >> 1));
        // Ports and types are absent from a later fragment: a rule that tests them fails.
        let later_fragment = nonzero((p.ip_flags & (ip_flags::LATER_FRAGMENT | ip_flags::TINY_FRAGMENT)) as u64);
        let no_transport = nonzero(f & TRANSPORT) & later_fragment;
        proto_ok & ((failed | no_transport) ^ 1)
    }
}

/// iplog semantics: a matching `log` rule wins over every `ignore` rule; otherwise a matching
/// `ignore` rule skips the packet before any detection.
pub fn ignored<'a>(rules: impl IntoIterator<Item = &'a Rule>, p: &PacketSummary) -> bool {
    let mut ignore = false;
    for r in rules {
        if r.matches(p) {
            if r.action == ACTION_LOG {
                return false;
            }
            ignore = true;
        }
    }
    ignore
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for Rule {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{PROTO_TCP, PROTO_UDP, ip_flags};

    fn pkt(proto: u8, src: [u8; 4], dport: u16) -> PacketSummary {
        let mut p = PacketSummary { family: FAMILY_V4, proto, dport, sport: 5000, ..Default::default() };
        p.src[..4].copy_from_slice(&src);
        p.dst[..4].copy_from_slice(&[198, 18, 0, 2]);
        p
    }

    /// The rule's meaning, test by test, with the comparisons as Rust writes them.
    fn reference(r: &Rule, p: &PacketSummary) -> bool {
        use rule_flags::*;
        let f = r.flags;
        let is_icmp = p.proto == PROTO_ICMP || p.proto == PROTO_ICMPV6;
        let proto_ok = r.proto == p.proto || (r.proto == PROTO_ICMP && is_icmp);
        let test = |has: u16, neg: u16, hit: bool| f & has == 0 || hit != (f & neg != 0);
        let in_net = |net: &[u64; 2], mask: &[u64; 2], a: &[u8; 16]| {
            let w = words(a);
            (net[0] ^ w[0]) & mask[0] == 0 && (net[1] ^ w[1]) & mask[1] == 0
        };
        let src_hit = r.src_family == p.family && in_net(&r.src, &r.src_mask, &p.src);
        let dst_hit = r.dst_family == p.family && in_net(&r.dst, &r.dst_mask, &p.dst);
        let transport_ok = f & (HAS_SPORT | HAS_DPORT | HAS_TYPE) == 0 || p.has_transport();
        let want = if p.family == FAMILY_V4 { r.icmp_type4 } else { r.icmp_type6 };
        proto_ok
            && transport_ok
            && test(HAS_SRC, NEG_SRC, src_hit)
            && test(HAS_DST, NEG_DST, dst_hit)
            && test(HAS_SPORT, NEG_SPORT, (r.sport_lo..=r.sport_hi).contains(&p.sport))
            && test(HAS_DPORT, NEG_DPORT, (r.dport_lo..=r.dport_hi).contains(&p.dport))
            && test(HAS_TYPE, NEG_TYPE, want != NO_TYPE && want == p.icmp_type as u16)
    }

    #[test]
    fn the_jump_free_match_is_the_reference() {
        let mut net = [0u8; 16];
        net[..4].copy_from_slice(&[198, 18, 0, 0]);
        let base = Rule {
            action: ACTION_IGNORE,
            src_family: FAMILY_V4,
            src_prefix: 16,
            dst_family: FAMILY_V4,
            dst_prefix: 24,
            sport_lo: 1000,
            sport_hi: 2000,
            dport_lo: 22,
            dport_hi: 22,
            icmp_type4: 8,
            icmp_type6: NO_TYPE,
            ..Default::default()
        }
        .with_addresses(&net, &net);
        for proto in [PROTO_TCP, PROTO_UDP, PROTO_ICMP, PROTO_ICMPV6, 47] {
            for (src, dport, sport, icmp_type) in
                [([198, 18, 3, 4], 22, 1500, 8), ([10, 0, 0, 1], 23, 999, 0), ([198, 18, 0, 9], 0, 2000, 3)]
            {
                for later in [false, true] {
                    for family in [FAMILY_V4, crate::FAMILY_V6] {
                        let mut p = pkt(proto, src, dport);
                        p.family = family;
                        p.sport = sport;
                        p.icmp_type = icmp_type;
                        if later {
                            p.ip_flags = ip_flags::FRAGMENT | ip_flags::LATER_FRAGMENT;
                        }
                        for flags in 0..1u16 << 10 {
                            for rule_proto in [PROTO_TCP, PROTO_UDP, PROTO_ICMP, 0] {
                                let r = Rule { flags, proto: rule_proto, ..base };
                                assert_eq!(
                                    r.matches(&p),
                                    reference(&r, &p),
                                    "flags {flags:#x} rule {r:?} packet {p:?}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    fn dport_rule(action: u8, proto: u8, lo: u16, hi: u16, neg: bool) -> Rule {
        let mut flags = rule_flags::HAS_DPORT;
        if neg {
            flags |= rule_flags::NEG_DPORT;
        }
        Rule { action, proto, flags, dport_lo: lo, dport_hi: hi, ..Default::default() }
    }

    #[test]
    fn ports_ranges_and_negation() {
        let r = dport_rule(ACTION_IGNORE, PROTO_TCP, 80, 80, false);
        assert!(r.matches(&pkt(PROTO_TCP, [1, 2, 3, 4], 80)));
        assert!(!r.matches(&pkt(PROTO_TCP, [1, 2, 3, 4], 81)));
        assert!(!r.matches(&pkt(PROTO_UDP, [1, 2, 3, 4], 80)));
        let n = dport_rule(ACTION_IGNORE, PROTO_TCP, 22, 22, true);
        assert!(n.matches(&pkt(PROTO_TCP, [1, 2, 3, 4], 80)), "iplog's broken negation works here");
        assert!(!n.matches(&pkt(PROTO_TCP, [1, 2, 3, 4], 22)));
        let range = dport_rule(ACTION_IGNORE, PROTO_UDP, 1000, 2000, false);
        assert!(range.matches(&pkt(PROTO_UDP, [1, 2, 3, 4], 1500)));
        // A later fragment has no ports: a port rule never matches it.
        let mut frag = pkt(PROTO_TCP, [1, 2, 3, 4], 0);
        frag.ip_flags = ip_flags::FRAGMENT | ip_flags::LATER_FRAGMENT;
        assert!(!n.matches(&frag));
    }

    #[test]
    fn addresses_and_log_wins() {
        let mut src = [0u8; 16];
        src[..4].copy_from_slice(&[10, 1, 0, 0]);
        let ign = Rule {
            action: ACTION_IGNORE,
            proto: PROTO_UDP,
            flags: rule_flags::HAS_SRC,
            src_family: FAMILY_V4,
            src_prefix: 16,
            ..Default::default()
        }
        .with_addresses(&src, &[0; 16]);
        assert!(ign.matches(&pkt(PROTO_UDP, [10, 1, 200, 3], 53)));
        assert!(!ign.matches(&pkt(PROTO_UDP, [10, 2, 0, 3], 53)));
        let log = dport_rule(ACTION_LOG, PROTO_UDP, 53, 53, false);
        assert!(ignored([&ign], &pkt(PROTO_UDP, [10, 1, 0, 1], 53)));
        assert!(!ignored([&ign, &log], &pkt(PROTO_UDP, [10, 1, 0, 1], 53)));
        assert!(!ignored([&log, &ign], &pkt(PROTO_UDP, [10, 1, 0, 1], 53)), "order does not matter");
        assert!(ignored([&log, &ign], &pkt(PROTO_UDP, [10, 1, 0, 1], 54)));
    }

    #[test]
    fn masks_agree_with_prefix_contains() {
        let net = [0x20, 0x01, 0x0d, 0xb8, 0xaa, 0x55, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        for prefix in 0..=128u8 {
            let m = prefix_mask(prefix);
            let _ = &m;
            for flip in 0..128usize {
                let mut a = net;
                a[flip / 8] ^= 0x80 >> (flip % 8);
                assert_eq!(
                    masked_eq(&words(&net), &a, &words(&m)),
                    u64::from(prefix_contains(&net, FAMILY_V6, prefix, &a, FAMILY_V6)),
                    "prefix {prefix} flip {flip}"
                );
            }
        }
    }

    #[test]
    fn prefixes() {
        let mut net = [0u8; 16];
        net[..4].copy_from_slice(&[198, 18, 0, 0]);
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[198, 19, 255, 1]);
        assert!(prefix_contains(&net, FAMILY_V4, 15, &a, FAMILY_V4));
        assert!(!prefix_contains(&net, FAMILY_V4, 16, &a, FAMILY_V4));
        assert!(!prefix_contains(&net, FAMILY_V4, 15, &a, FAMILY_V6));
        assert!(prefix_contains(&net, FAMILY_V4, 0, &a, FAMILY_V4));
        let n6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut a6 = n6;
        a6[15] = 7;
        assert!(prefix_contains(&n6, FAMILY_V6, 32, &a6, FAMILY_V6));
        assert!(prefix_contains(&n6, FAMILY_V6, 127, &n6, FAMILY_V6));
        assert!(!prefix_contains(&n6, FAMILY_V6, 128, &a6, FAMILY_V6));
    }

    #[test]
    fn icmp_types_per_family() {
        let r = Rule {
            action: ACTION_IGNORE,
            proto: PROTO_ICMP,
            flags: rule_flags::HAS_TYPE,
            icmp_type4: 8,
            icmp_type6: 128,
            ..Default::default()
        };
        let mut p = PacketSummary { family: FAMILY_V4, proto: PROTO_ICMP, icmp_type: 8, ..Default::default() };
        assert!(r.matches(&p));
        p.icmp_type = 0;
        assert!(!r.matches(&p));
        let p6 = PacketSummary { family: FAMILY_V6, proto: PROTO_ICMPV6, icmp_type: 128, ..Default::default() };
        assert!(r.matches(&p6));
    }
}
