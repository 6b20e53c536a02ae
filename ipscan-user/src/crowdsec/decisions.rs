//! What the blocklist holds for the LAPI's decisions. A prefix may have several decisions
//! (two scenarios, a manual ban on top of an alert's); it is blocked while any is in force,
//! until the latest ends, and lifted when the last is deleted. Deletions come again in later
//! polls, and decisions this daemon cannot hold (`captcha`, a `Country` scope) are counted
//! and left out.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    net::IpAddr,
};

use super::lapi::{Decision, Stream, go_duration_ns};
use crate::config::IpNet;

/// A change to make to the blocklist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Block `net` until kernel time `until_ns` (a new block, or a new end of one).
    Block { net: IpNet, until_ns: u64, scenario: String },
    /// Its last decision was deleted.
    Unblock { net: IpNet },
}

#[derive(Clone, Debug)]
struct Held {
    until_ns: u64,
    scenario: String,
}

#[derive(Debug, Default)]
pub struct Decisions {
    by_net: HashMap<IpNet, BTreeMap<i64, Held>>,
    /// Decisions left out: not a ban, or a scope other than `Ip` and `Range`, or a value that
    /// is not an address or prefix.
    pub ignored: u64,
}

/// A decision's prefix, if a blocklist can hold it.
pub fn net_of(d: &Decision) -> Option<IpNet> {
    match d.scope.to_ascii_lowercase().as_str() {
        "ip" => d.value.parse::<IpAddr>().ok().map(IpNet::host),
        "range" => {
            let (addr, prefix) = d.value.split_once('/')?;
            IpNet::new(addr.parse().ok()?, prefix.parse().ok()?)
        }
        _ => None,
    }
}

impl Decisions {
    /// Takes one stream answer, read at kernel time `now`; returns one change per prefix whose
    /// block begins, changes its end, or ends. `startup`: the answer holds every decision in
    /// force, so what is held and not in it is gone.
    pub fn apply(&mut self, s: &Stream, startup: bool, now: u64) -> Vec<Change> {
        let before: HashMap<IpNet, u64> = self.by_net.iter().filter_map(|(n, h)| Some((*n, latest(h)?.0))).collect();
        let mut touched = HashSet::new();
        if startup {
            touched.extend(self.by_net.keys().copied());
            self.by_net.clear();
        }
        for d in &s.deleted {
            if let Some(net) = net_of(d)
                && let Some(held) = self.by_net.get_mut(&net)
                && held.remove(&d.id).is_some()
            {
                touched.insert(net);
            }
        }
        for d in &s.new {
            let Some(net) = net_of(d).filter(|_| d.kind.eq_ignore_ascii_case("ban")) else {
                self.ignored += 1;
                continue;
            };
            let Some(left) = go_duration_ns(&d.duration).filter(|ns| *ns > 0) else {
                continue;
            };
            let until_ns = now.saturating_add(left.unsigned_abs());
            self.by_net.entry(net).or_default().insert(d.id, Held { until_ns, scenario: d.scenario.clone() });
            touched.insert(net);
        }
        for held in self.by_net.values_mut() {
            held.retain(|_, h| h.until_ns > now);
        }
        self.by_net.retain(|_, h| !h.is_empty());
        let mut touched: Vec<IpNet> = touched.into_iter().collect();
        touched.sort_by_key(|n| (n.addr(), n.prefix()));
        let mut changes = Vec::new();
        for net in touched {
            match (self.by_net.get(&net).and_then(latest), before.get(&net)) {
                (Some((until_ns, _)), Some(was)) if until_ns == *was => {}
                (Some((until_ns, scenario)), _) => {
                    changes.push(Change::Block { net, until_ns, scenario: scenario.to_owned() })
                }
                (None, Some(_)) => changes.push(Change::Unblock { net }),
                (None, None) => {}
            }
        }
        changes
    }

    /// Whether a decision in force holds this prefix.
    pub fn holds(&self, net: &IpNet) -> bool {
        self.by_net.contains_key(net)
    }

    pub fn len(&self) -> usize {
        self.by_net.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_net.is_empty()
    }
}

/// The latest end among a prefix's decisions, and its scenario.
fn latest(held: &BTreeMap<i64, Held>) -> Option<(u64, &str)> {
    held.values().max_by_key(|h| h.until_ns).map(|h| (h.until_ns, h.scenario.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(id: i64, duration: &str, scope: &str, value: &str) -> Decision {
        Decision {
            id,
            duration: duration.into(),
            origin: "cscli".into(),
            scenario: format!("s{id}"),
            scope: scope.into(),
            kind: "ban".into(),
            value: value.into(),
        }
    }

    fn net(s: &str) -> IpNet {
        s.parse().expect("net")
    }

    const S: u64 = 1_000_000_000;

    #[test]
    fn blocks_follow_the_decisions() {
        let mut ds = Decisions::default();
        let now = 100 * S;
        let first = Stream {
            new: vec![
                d(1, "1h", "Ip", "198.18.0.7"),
                d(2, "30m", "Range", "198.18.5.9/24"),
                d(3, "2h", "Ip", "2001:db8::7"),
            ],
            deleted: vec![],
        };
        assert_eq!(
            ds.apply(&first, true, now),
            [
                Change::Block { net: net("198.18.0.7/32"), until_ns: now + 3600 * S, scenario: "s1".into() },
                Change::Block { net: net("198.18.5.0/24"), until_ns: now + 1800 * S, scenario: "s2".into() },
                Change::Block { net: net("2001:db8::7/128"), until_ns: now + 7200 * S, scenario: "s3".into() },
            ]
        );
        // A second, longer decision on the same address lengthens its block; deleting it goes
        // back to the first one's end; deleting that lifts the block, once.
        let longer = Stream { new: vec![d(4, "4h", "Ip", "198.18.0.7")], deleted: vec![] };
        assert_eq!(
            ds.apply(&longer, false, now),
            [Change::Block { net: net("198.18.0.7/32"), until_ns: now + 4 * 3600 * S, scenario: "s4".into() }]
        );
        let del4 = Stream { new: vec![], deleted: vec![d(4, "-1ms", "Ip", "198.18.0.7")] };
        assert_eq!(
            ds.apply(&del4, false, now),
            [Change::Block { net: net("198.18.0.7/32"), until_ns: now + 3600 * S, scenario: "s1".into() }]
        );
        let del1 =
            Stream { new: vec![], deleted: vec![d(1, "-1ms", "Ip", "198.18.0.7"), d(4, "-1ms", "Ip", "198.18.0.7")] };
        assert_eq!(ds.apply(&del1, false, now), [Change::Unblock { net: net("198.18.0.7/32") }]);
        assert_eq!(ds.apply(&del1, false, now), [], "a deletion seen again changes nothing");
        assert!(!ds.holds(&net("198.18.0.7/32")) && ds.holds(&net("198.18.5.0/24")));

        // Left out: other remediations, other scopes, values that are not addresses.
        let mut captcha = d(5, "1h", "Ip", "198.18.0.8");
        captcha.kind = "captcha".into();
        let odd =
            Stream { new: vec![captcha, d(6, "1h", "Country", "FR"), d(7, "1h", "Ip", "not-an-ip")], deleted: vec![] };
        assert_eq!(ds.apply(&odd, false, now), []);
        assert_eq!(ds.ignored, 3);

        // A startup answer is the whole truth: what it lacks is lifted.
        let again = Stream { new: vec![d(3, "1h59m", "Ip", "2001:db8::7")], deleted: vec![] };
        assert_eq!(
            ds.apply(&again, true, now),
            [
                Change::Unblock { net: net("198.18.5.0/24") },
                Change::Block { net: net("2001:db8::7/128"), until_ns: now + 7140 * S, scenario: "s3".into() },
            ]
        );
        assert_eq!(ds.len(), 1);
    }
}
