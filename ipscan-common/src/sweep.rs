//! Sweeps: one source probing many destination hosts ([`crate::Detection::TcpSweep`],
//! [`crate::Detection::UdpSweep`], [`crate::Detection::PingSweep`]).
//!
//! A sweep is counted by the machinery of the scans, with the destination host where a scan has
//! its destination port: the distinct value of a sweep is a 16-bit [`fold`] of the destination
//! address, and what a scan keeps as its source ports a sweep keeps as its destination ports (the
//! ports swept). The fold is exact for hosts that differ in their last 16 bits only (a sweep of
//! a /16 of IPv4 or of a /112 of IPv6); hosts further apart may share a fold, and then count once
//! (the count is a lower bound, as it is for ports past the exact list).
//!
//! The first [`LOGGED_HOSTS`] distinct hosts of a window are kept whole in SWEEPHOSTS
//! ([`SweepHosts`]) for the detection line. The first host of all is seen on probation, where a
//! way has room for its fold and one 32-bit word of the address ([`host_word`]); the address is
//! rebuilt from that word and the second host's other words, and kept only if its fold checks
//! ([`first_host`]).

use crate::{FAMILY_V4, PacketSummary};

/// Destination hosts a sweep's detection line names.
pub const LOGGED_HOSTS: usize = 8;

/// The 16-bit fold of an address given as its four native-order words: every bit of the address
/// counts, and addresses that differ only in their last 16 bits fold apart.
#[inline(always)]
pub fn fold(w: &[u32; 4]) -> u16 {
    let x = w[0] ^ w[1] ^ w[2] ^ w[3];
    (x ^ (x >> 16)) as u16
}

/// Which of the address's four words probation keeps whole: the one a sweep changes (IPv4's
/// only word, IPv6's last).
#[inline(always)]
pub fn varying_word(family: u8) -> usize {
    if family == FAMILY_V4 { 0 } else { 3 }
}

/// The word of a packet's destination that probation keeps ([`varying_word`]).
#[inline(always)]
pub fn host_word(p: &PacketSummary) -> u32 {
    varying(&p.dst_words(), p.family)
}

/// The word of an address that probation keeps ([`varying_word`]).
#[inline(always)]
pub fn varying(w: &[u32; 4], family: u8) -> u32 {
    if family == FAMILY_V4 { w[0] } else { w[3] }
}

/// The first host of a sweep admitted from probation: the second host's words with the kept
/// word put back, if that address folds to the fold probation counted; None when the two hosts
/// differ in another word too (IPv6 hosts in different /96s), so no host is named wrongly.
#[inline(always)]
pub fn first_host(second: &[u32; 4], family: u8, word: u32, folded: u16) -> Option<[u32; 4]> {
    let mut w = *second;
    if family == FAMILY_V4 {
        w[0] = word;
    } else {
        w[3] = word;
    }
    (fold(&w) == folded).then_some(w)
}

/// SWEEPHOSTS value: the first distinct hosts of a sweep's window, by the order of their count.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepHosts {
    /// The window these hosts belong to (its [`crate::SourceState::first_ns`]).
    pub first_ns: u64,
    /// Bit `i`: `hosts[i]` is known (the first host may not be, see [`first_host`]).
    pub known: u32,
    pub _pad: u32,
    /// Addresses as four native-order words (IPv4 in the first).
    pub hosts: [[u32; 4]; LOGGED_HOSTS],
}
const _: () = assert!(core::mem::size_of::<SweepHosts>() == 16 + 16 * LOGGED_HOSTS);
const _: () = assert!(LOGGED_HOSTS.is_power_of_two(), "indexes are masked with LOGGED_HOSTS - 1");

impl SweepHosts {
    /// Puts the `index`th distinct host of the window that began at `first_ns`; a host of a
    /// newer window first forgets the older one's.
    #[inline(always)]
    pub fn put(&mut self, first_ns: u64, index: usize, host: &[u32; 4]) {
        if self.first_ns != first_ns {
            self.first_ns = first_ns;
            self.known = 0;
        }
        if let Some(slot) = self.hosts.get_mut(index) {
            crate::zero::copy_words(slot, host);
            self.known |= 1 << index;
        }
    }
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for SweepHosts {}

#[cfg(test)]
mod tests {
    use super::*;

    fn words4(a: [u8; 4]) -> [u32; 4] {
        [u32::from_ne_bytes(a), 0, 0, 0]
    }

    #[test]
    fn fold_is_exact_within_a_slash_16() {
        let mut seen = [false; 65536];
        for i in 0..=65535u32 {
            let f = fold(&words4([198, 18, (i >> 8) as u8, i as u8])) as usize;
            assert!(!seen[f], "{i}");
            seen[f] = true;
        }
    }

    #[test]
    fn first_host_is_rebuilt_only_when_its_fold_checks() {
        let a = words4([198, 18, 1, 7]);
        let b = words4([198, 18, 1, 9]);
        assert_eq!(first_host(&b, FAMILY_V4, a[0], fold(&a)), Some(a));
        let v6 = |last: u32, mid: u32| [0x20010db8u32.to_be(), mid, 0, last];
        let (x, y) = (v6(0x0100_0000, 0), v6(0x0200_0000, 0));
        assert_eq!(first_host(&y, crate::FAMILY_V6, x[3], fold(&x)), Some(x));
        let far = v6(0x0100_0000, 5);
        assert_eq!(first_host(&y, crate::FAMILY_V6, far[3], fold(&far)), None, "another /96");
    }

    #[test]
    fn hosts_of_a_new_window_replace_the_old() {
        let mut h = SweepHosts::default();
        h.put(10, 0, &words4([1, 1, 1, 1]));
        h.put(10, 1, &words4([1, 1, 1, 2]));
        assert_eq!(h.known, 0b11);
        h.put(20, 0, &words4([2, 2, 2, 2]));
        assert_eq!((h.known, h.first_ns, h.hosts[0]), (0b1, 20, words4([2, 2, 2, 2])));
        h.put(20, LOGGED_HOSTS, &words4([3, 3, 3, 3]));
        assert_eq!(h.known, 0b1, "past the list");
    }
}
