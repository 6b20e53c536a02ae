//! Repeat offenders: which sources were blocked before, and how long their next block lasts
//! under `block DETECTION TIME escalate Nx` ([`Escalation`]).
//!
//! The kernel blocks a source on its threshold packet for the detection's block time; the
//! daemon, reading the block's event, counts the offence here and lengthens that same block
//! (the AUTOBLOCK entry's expiry) when it is a repeat: the source is dropped from the first
//! packet either way, and only the length of the block is decided in user space. The history
//! is saved with the blocks ([`crate::kernel::persist`]), so it survives restarts and reboots.

use std::{collections::HashMap, net::IpAddr};

use crate::config::Escalation;

/// At most this many sources are remembered; past it, the earliest-ending eighth is forgotten
/// (counted in [`Offenders::forgotten`]). 2^18 records are about 20 MB.
pub const MAX_RECORDS: usize = 1 << 18;

/// What is remembered of one source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// Offences in a row, each within the memory window of the block before.
    pub offences: u32,
    /// Kernel clock (ns) at which its last block ends; negative: before this boot.
    pub until_ns: i64,
}

/// A block as decided: how long, and which offence it is (None: no escalation configured for
/// the detection, so the line does not number it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ban {
    pub ns: u64,
    pub offence: Option<u32>,
}

/// The offence history of one interface's sources.
#[derive(Debug, Default)]
pub struct Offenders {
    records: HashMap<IpAddr, Record>,
    /// Records dropped because the table was full.
    pub forgotten: u64,
}

fn signed(ns: u64) -> i64 {
    i64::try_from(ns).unwrap_or(i64::MAX)
}

impl Offenders {
    /// Records a block of `src` at kernel time `now` by a detection whose block time is `base_ns`,
    /// and returns how long it lasts. `memory_ns` is how long a source is remembered after its
    /// block ends when the detection has no escalation of its own (the longest `within` of the
    /// configuration), so offences of every detection count.
    pub fn offend(
        &mut self,
        src: IpAddr,
        now: u64,
        base_ns: u64,
        escalation: Option<&Escalation>,
        memory_ns: u64,
    ) -> Ban {
        let within = escalation.map_or(memory_ns, |e| e.within_ns);
        let now = signed(now);
        let offences = match self.records.get(&src) {
            Some(r) if now <= r.until_ns.saturating_add(signed(within)) => r.offences.saturating_add(1),
            _ => 1,
        };
        let ns = escalation.map_or(base_ns, |e| e.block_ns(base_ns, offences));
        if self.records.len() >= MAX_RECORDS && !self.records.contains_key(&src) {
            self.make_room(now, memory_ns);
        }
        self.records.insert(src, Record { offences, until_ns: now.saturating_add(signed(ns)) });
        Ban { ns, offence: escalation.map(|_| offences) }
    }

    /// Forgets the sources whose memory window (`memory_ns` after their block ends) is over at
    /// `now`.
    pub fn prune(&mut self, now: u64, memory_ns: u64) {
        self.retain_remembered(signed(now), memory_ns);
    }

    fn retain_remembered(&mut self, now: i64, memory_ns: u64) {
        self.records.retain(|_, r| now <= r.until_ns.saturating_add(signed(memory_ns)));
    }

    fn make_room(&mut self, now: i64, memory_ns: u64) {
        self.retain_remembered(now, memory_ns);
        if self.records.len() < MAX_RECORDS {
            return;
        }
        let mut ends: Vec<i64> = self.records.values().map(|r| r.until_ns).collect();
        let cut = (ends.len() / 8).max(1);
        let (_, at, _) = ends.select_nth_unstable(cut - 1);
        let at = *at;
        let before = self.records.len();
        self.records.retain(|_, r| r.until_ns > at);
        self.forgotten += (before - self.records.len()) as u64;
    }

    pub fn get(&self, src: &IpAddr) -> Option<&Record> {
        self.records.get(src)
    }

    /// Puts back a saved record (over any record of the same source).
    pub fn insert(&mut self, src: IpAddr, r: Record) {
        if self.records.len() < MAX_RECORDS || self.records.contains_key(&src) {
            self.records.insert(src, r);
        } else {
            self.forgotten += 1;
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&IpAddr, &Record)> {
        self.records.iter()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// How long a source is remembered after its block ends when its detection has no escalation:
/// the longest `within` of the configuration (0 without any escalation: offences are then
/// numbered nowhere, and records go as their blocks end).
pub fn memory_ns(escalation: &[Option<Escalation>]) -> u64 {
    escalation.iter().flatten().map(|e| e.within_ns).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    const H: u64 = 3_600 * S;

    fn esc(factor_milli: u32, max_ns: u64, within_ns: u64) -> Escalation {
        Escalation { factor_milli, max_ns, within_ns }
    }

    #[test]
    fn each_offence_within_the_window_multiplies_the_block_up_to_max() {
        let e = esc(4000, 30 * 24 * H, 7 * 24 * H);
        let a: IpAddr = "198.18.0.1".parse().expect("addr");
        let mut o = Offenders::default();
        let mut now = 10 * S;
        let mut got = Vec::new();
        for _ in 0..6 {
            let ban = o.offend(a, now, H, Some(&e), e.within_ns);
            got.push((ban.offence, ban.ns / H));
            // The next offence a day after this block ends.
            now += ban.ns + 24 * H;
        }
        assert_eq!(got, [(Some(1), 1), (Some(2), 4), (Some(3), 16), (Some(4), 64), (Some(5), 256), (Some(6), 720)]);
    }

    #[test]
    fn an_offence_after_the_window_starts_over() {
        let e = esc(2000, 24 * H, 2 * H);
        let a: IpAddr = "2001:db8::1".parse().expect("addr");
        let mut o = Offenders::default();
        assert_eq!(o.offend(a, 0, H, Some(&e), e.within_ns), Ban { ns: H, offence: Some(1) });
        // Ends at 1 h; remembered until 3 h.
        assert_eq!(o.offend(a, 3 * H, H, Some(&e), e.within_ns), Ban { ns: 2 * H, offence: Some(2) });
        // Ends at 5 h; 7 h + 1 ns is past the window.
        assert_eq!(o.offend(a, 7 * H + 1, H, Some(&e), e.within_ns), Ban { ns: H, offence: Some(1) });
    }

    #[test]
    fn offences_of_other_detections_count_and_plain_blocks_are_not_numbered() {
        let e = esc(3000, 24 * H, 24 * H);
        let a: IpAddr = "198.18.0.1".parse().expect("addr");
        let mut o = Offenders::default();
        // A detection without escalation: its own block time, no number, but remembered.
        assert_eq!(o.offend(a, 0, 60 * S, None, e.within_ns), Ban { ns: 60 * S, offence: None });
        assert_eq!(o.offend(a, 2 * H, H, Some(&e), e.within_ns), Ban { ns: 3 * H, offence: Some(2) });
        o.prune(2 * H + 3 * H + 24 * H, e.within_ns);
        assert_eq!(o.len(), 1);
        o.prune(2 * H + 3 * H + 24 * H + 1, e.within_ns);
        assert!(o.is_empty());
    }

    #[test]
    fn records_from_before_this_boot_still_count() {
        let e = esc(2000, 24 * H, 24 * H);
        let a: IpAddr = "198.18.0.1".parse().expect("addr");
        let mut o = Offenders::default();
        // A block that ended 10 h before this boot's clock started.
        o.insert(a, Record { offences: 2, until_ns: -(10 * H as i64) });
        assert_eq!(o.offend(a, 5 * S, H, Some(&e), e.within_ns), Ban { ns: 4 * H, offence: Some(3) });
        o.insert(a, Record { offences: 2, until_ns: -(25 * H as i64) });
        assert_eq!(o.offend(a, 5 * S, H, Some(&e), e.within_ns), Ban { ns: H, offence: Some(1) });
    }

    #[test]
    fn a_full_table_forgets_the_earliest_ending_eighth() {
        let mut o = Offenders::default();
        for i in 0..MAX_RECORDS as u32 {
            o.insert(IpAddr::from(i.to_be_bytes()), Record { offences: 1, until_ns: i64::from(i) });
        }
        let a: IpAddr = "198.18.0.1".parse().expect("addr");
        o.offend(a, 0, H, None, H);
        assert_eq!(o.forgotten, (MAX_RECORDS / 8) as u64);
        assert_eq!(o.len(), MAX_RECORDS - MAX_RECORDS / 8 + 1);
        assert!(o.get(&IpAddr::from(0u32.to_be_bytes())).is_none());
        assert!(o.get(&IpAddr::from((MAX_RECORDS as u32 - 1).to_be_bytes())).is_some());
    }
}
