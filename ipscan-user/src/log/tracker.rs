//! Tracked modes in user space: turns kernel events into log lines and sweeps lapsed modes.
//!
//! The kernel reports when a source enters a mode; this table holds only those sources, and a
//! sweep once a second looks each one up to see whether its window has lapsed. Sweeps cost is
//! proportional to active attacks, not to tracked sources. Both the live daemon and replay use
//! it, with their own clocks.
//!
//! iplog had one `UDP: scan/flood` mode per source; ipscan counts UDP twice, by distinct ports
//! (`udp_scan`) and by rate (`udp_flood`), and both print as `scan/flood`. A source in both
//! modes gets one mode in the log: the detection that comes second while the first is still
//! on is folded into it (no detection line, no expiry line). Each is still a detection of its
//! own in the metrics and the kernel's counters.

use std::{collections::HashMap, net::IpAddr};

use ipscan_common::{
    Config, Detection, Event, EventKind, SourceKey, SourceState,
    classify::{self, DETECTION_SLOTS},
    event::event_flags,
    window::{LOGGED_DPORTS, LOGGED_SPORTS},
};

use crate::{
    config::Escalation,
    log::{
        format::{self, Detected},
        json,
        lines::PacketLines,
        resolve::Namer,
    },
    offenders::{self, Offenders},
};

/// A mode being tracked: which interface it was seen on and its last known totals.
#[derive(Clone, Debug)]
struct Tracked {
    since_ns: u64,
    /// Last counted packet as last known (the kernel's may be later): the window cannot lapse
    /// before `last_ns + window`.
    last_ns: u64,
    packets: u64,
    bytes: u64,
    /// Destination as printed with log_dest; None for modes adopted after a restart.
    dest: Option<String>,
    /// Folded into its twin's mode, which the log shows (see the module docs): ends unlogged.
    folded: bool,
    /// Counted from the host's rejects (rejected probes; the port scans under `counting
    /// confirmed` when the mode began): its end counts rejects, not bytes.
    rejects: bool,
}

/// The detection that prints under the same name as `d` (iplog's one `UDP: scan/flood`).
fn twin(d: Detection) -> Option<Detection> {
    match d {
        Detection::UdpScan => Some(Detection::UdpFlood),
        Detection::UdpFlood => Some(Detection::UdpScan),
        _ => None,
    }
}

/// One log line to write, stamped with the kernel clock of the moment it describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub at_ns: u64,
    pub text: String,
    /// The detection a line reports, if it is a detection (for callers with per-detection policy).
    pub detected: Option<(Detection, SourceKey)>,
    /// The line's facts as fields, for the JSON output.
    pub meta: Meta,
}

impl Line {
    /// A line with no JSON counterpart and no detection (a note of the daemon's).
    pub fn plain(at_ns: u64, text: String) -> Self {
        Self { at_ns, text, detected: None, meta: Meta::default() }
    }
}

/// Structured facts of a line (the JSON output's fields besides the message).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// None: a line with no JSON counterpart.
    pub event: Option<json::Event>,
    pub detection: Option<Detection>,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub dports: Vec<u16>,
    pub sports: Vec<u16>,
    pub packets: Option<u64>,
    pub bytes: Option<u64>,
    /// A block's length (blocked and would-block lines).
    pub block_ns: Option<u64>,
    /// A block's offence number, under `block ... escalate`.
    pub offence: Option<u32>,
    /// Distributed floods: about how many sources.
    pub sources: Option<u64>,
    /// Distributed floods: packets a second when the threshold was crossed.
    pub rate: Option<u64>,
    /// Distributed scans: whether each source probed each port.
    pub decoy: Option<bool>,
    /// Distributed scans: the first sources.
    pub srchosts: Vec<IpAddr>,
    /// Sweeps: the distinct hosts counted.
    pub hosts: Option<u32>,
    /// Sweeps: the first of those hosts.
    pub dsthosts: Vec<IpAddr>,
    /// The protocol, for detections kept per protocol (rejected probes, the per-target ones):
    /// `TCP`, `UDP`, `ICMP`.
    pub proto: Option<&'static str>,
}

/// Per-interface active-mode table.
#[derive(Default)]
pub struct Tracker {
    active: HashMap<SourceKey, Tracked>,
    pub log_dest: bool,
    /// Stamp sweep expiries at the instant the window lapsed (`last packet + window`) instead of
    /// the sweep's `now`. Replay sets it: its sweeps run on the capture clock, and the lapse
    /// instant is what iplog logs. The daemon keeps the sweep time (at most 1 s later), which is
    /// when it actually noticed.
    pub stamp_at_lapse: bool,
    /// Auto-block time of each detection (from the config), for `Blocked H for N s` lines.
    pub block_ns: [u64; DETECTION_SLOTS],
    /// How each detection's block grows for repeat offenders (`block ... escalate`).
    pub escalation: [Option<Escalation>; DETECTION_SLOTS],
    /// Who was blocked before: sets the length of each block under `escalation`.
    pub offenders: Offenders,
    /// Per-packet line state (traceroute quiet periods).
    packets: PacketLines,
    /// `counting confirmed`: the port scan and the UDP scan count the host's rejects.
    confirmed: bool,
}

impl Tracker {
    pub fn new(log_dest: bool) -> Self {
        Self {
            active: HashMap::new(),
            log_dest,
            stamp_at_lapse: false,
            block_ns: [0; DETECTION_SLOTS],
            escalation: [None; DETECTION_SLOTS],
            offenders: Offenders::default(),
            packets: PacketLines::default(),
            confirmed: false,
        }
    }

    /// Takes the escalation of repeat offenders' blocks (`block ... escalate`).
    pub fn set_escalation(&mut self, escalation: &[Option<Escalation>; DETECTION_SLOTS]) {
        self.escalation = *escalation;
    }

    /// Forgets the offenders whose memory window is over at `now_ns`.
    pub fn forget_offenders(&mut self, now_ns: u64) {
        self.offenders.prune(now_ns, offenders::memory_ns(&self.escalation));
    }

    /// Takes the auto-block times of a config (for the `Blocked H for N s` lines).
    pub fn set_config(&mut self, cfg: &Config) {
        for (slot, d) in self.block_ns.iter_mut().zip(cfg.detections.iter()) {
            *slot = d.block_ns;
        }
        self.confirmed = cfg.has(ipscan_common::config::global_flags::CONFIRMED);
    }

    /// Whether a mode of `key` beginning now is counted from the host's rejects.
    fn counts_rejects(&self, key: &SourceKey) -> bool {
        match key.detection() {
            Some(Detection::Rejected) => true,
            Some(Detection::PortScan | Detection::UdpScan) => self.confirmed,
            _ => false,
        }
    }

    /// Takes over a mode the kernel still holds from before a restart, so its expiry is logged
    /// with the true totals. Returns whether it was new to the table.
    pub fn adopt(&mut self, key: SourceKey, state: &SourceState) -> bool {
        if !state.in_mode() || self.active.contains_key(&key) {
            return false;
        }
        let folded = self.twin_shown(&key);
        let rejects = self.counts_rejects(&key);
        self.active.insert(
            key,
            Tracked {
                since_ns: state.mode_since_ns,
                last_ns: state.last_ns,
                packets: state.packets,
                bytes: state.bytes,
                dest: None,
                folded,
                rejects,
            },
        );
        true
    }

    /// Whether the log shows a mode of `key`'s twin detection for the same source.
    fn twin_shown(&self, key: &SourceKey) -> bool {
        let Some(t) = key.detection().and_then(twin) else {
            return false;
        };
        let k = SourceKey { kind: t as u8, ..*key };
        self.active.get(&k).is_some_and(|a| !a.folded)
    }

    /// Number of sources currently in a mode.
    pub fn active(&self) -> usize {
        self.active.len()
    }

    /// Sources in a mode now, per detection.
    pub fn active_detections(&self) -> impl Iterator<Item = Detection> + '_ {
        self.active.keys().filter_map(SourceKey::detection)
    }

    /// The earliest instant at which a sweep can find a lapsed mode, if any mode is active.
    ///
    /// A lower bound: the kernel may have counted packets since the tracker last looked, which
    /// only moves the real lapse later. Replay sweeps when its clock passes this, so every
    /// expiry is found before the next frame is counted.
    pub fn next_lapse(&self, cfg: &Config) -> Option<u64> {
        self.active
            .iter()
            .filter_map(|(k, a)| Some(a.last_ns.saturating_add(cfg.detection(k.detection()?).window_ns)))
            .min()
    }

    /// Handles one ring-buffer event.
    pub fn on_event(&mut self, ev: &Event, namer: &mut dyn Namer) -> Option<Line> {
        if matches!(ev.kind()?, EventKind::Packet | EventKind::RateLimited) {
            let text = self.packets.on_event(ev, namer, self.log_dest)?;
            let p = &ev.packet;
            let meta = Meta {
                event: (ev.kind() == Some(EventKind::Packet)).then_some(json::Event::Packet),
                src: Some(format::addr(&p.src, p.family)),
                dst: Some(format::addr(&p.dst, p.family)),
                dports: if p.dport != 0 { vec![p.dport] } else { Vec::new() },
                sports: if p.sport != 0 { vec![p.sport] } else { Vec::new() },
                ..Meta::default()
            };
            return Some(Line { at_ns: ev.ts_ns, text, detected: None, meta });
        }
        let detection = Detection::from_u8(ev.detection)?;
        let source = source_name(&ev.key, detection, namer);
        let dest_s = format::addr(&ev.packet.dst, ev.packet.family).to_string();
        match ev.kind()? {
            EventKind::Detected => {
                let folded = self.twin_shown(&ev.key);
                // A sweep has many destinations: none of them is its `to`.
                let sweep = detection.counts_hosts();
                let rejects = self.counts_rejects(&ev.key);
                self.active.insert(
                    ev.key,
                    Tracked {
                        since_ns: ev.mode_since_ns,
                        // The threshold packet is the last one counted so far.
                        last_ns: ev.ts_ns,
                        packets: ev.packets,
                        bytes: ev.bytes,
                        dest: (!sweep).then(|| dest_s.clone()),
                        folded,
                        rejects,
                    },
                );
                if folded {
                    return None;
                }
                if detection == Detection::DistScan {
                    return Some(spread_scan_line(ev, detection));
                }
                if detection.per_target() {
                    return Some(flood_line(ev, detection));
                }
                let dest = (self.log_dest && !sweep).then_some(dest_s.as_str());
                let hosts: Vec<IpAddr> = ev.hosts().map(|w| format::addr_words(w, ev.packet.family)).collect();
                // A sweep's other ports are the ports it swept; its source ports are not kept.
                let (dports, dports_full, sports, sports_full) = if sweep {
                    let swept = if detection == Detection::PingSweep { &[][..] } else { ev.sports() };
                    (swept, ev.nsports as usize >= LOGGED_SPORTS, &[][..], false)
                } else {
                    (ev.ports(), ev.nports as usize >= LOGGED_DPORTS, ev.sports(), ev.nsports as usize >= LOGGED_SPORTS)
                };
                let text = format::detected_as(
                    classify::line_proto(&ev.key),
                    &Detected {
                        detection,
                        source: &source,
                        dest,
                        dports,
                        dports_full,
                        sports,
                        sports_full,
                        hosts: sweep.then_some((ev.distinct, hosts.as_slice())),
                    },
                );
                let meta = Meta {
                    dst: (!sweep).then(|| format::addr(&ev.packet.dst, ev.packet.family)),
                    dports: dports.to_vec(),
                    sports: sports.to_vec(),
                    hosts: sweep.then_some(ev.distinct),
                    dsthosts: hosts,
                    ..Meta::default()
                };
                Some(detected_line(ev, detection, text, key_meta(&ev.key, detection, meta)))
            }
            EventKind::Expired => {
                // Only the kernel's report of a mode we still track; the sweep may have logged it.
                let a = self.active.get(&ev.key)?;
                if a.since_ns != ev.mode_since_ns {
                    return None;
                }
                let a = self.active.remove(&ev.key)?;
                if a.folded {
                    return None;
                }
                let dest = if self.log_dest { a.dest.as_deref() } else { None };
                Some(Line {
                    at_ns: ev.ts_ns,
                    text: expired_text(
                        &ev.key,
                        detection,
                        &source,
                        dest,
                        (ev.packets, ev.bytes, Some(ev.distinct)),
                        a.rejects,
                    ),
                    detected: None,
                    meta: Meta {
                        event: Some(json::Event::Expired),
                        detection: Some(detection),
                        packets: Some(ev.packets),
                        bytes: Some(ev.bytes),
                        ..expired_meta(&ev.key, detection)
                    },
                })
            }
            EventKind::Blocked => {
                let src = format::addr(&ev.packet.src, ev.packet.family);
                let who = namer.name(src);
                let meta = Meta { detection: Some(detection), src: Some(src), ..Meta::default() };
                if ev.flags & event_flags::ALLOWLISTED != 0 {
                    return Some(Line {
                        at_ns: ev.ts_ns,
                        text: format::not_blocked(&who, detection),
                        detected: None,
                        meta: Meta { event: Some(json::Event::NotBlocked), ..meta },
                    });
                }
                let base = self.block_ns.get(detection as usize).copied().unwrap_or(0);
                let escalation = self.escalation.get(detection as usize).copied().flatten();
                let memory = offenders::memory_ns(&self.escalation);
                let ban = self.offenders.offend(src, ev.ts_ns, base, escalation.as_ref(), memory);
                let secs = ban.ns / 1_000_000_000;
                let (event, text) = if ev.flags & event_flags::DRY_RUN != 0 {
                    (json::Event::WouldBlock, format::would_block(&who, secs, detection, ban.offence))
                } else {
                    (json::Event::Blocked, format::blocked(&who, secs, detection, ban.offence))
                };
                Some(Line {
                    at_ns: ev.ts_ns,
                    text,
                    detected: None,
                    meta: Meta { event: Some(event), block_ns: Some(ban.ns), offence: ban.offence, ..meta },
                })
            }
            _ => None,
        }
    }

    /// Logs and clears every mode whose window has lapsed at `now_ns`. `lookup` reads the
    /// kernel's state for a key; `delete` removes it so the next packet opens a new window.
    pub fn sweep(
        &mut self,
        now_ns: u64,
        cfg: &Config,
        namer: &mut dyn Namer,
        mut lookup: impl FnMut(&SourceKey) -> Option<SourceState>,
        mut delete: impl FnMut(&SourceKey),
    ) -> Vec<Line> {
        let mut out = Vec::new();
        let mut done = Vec::new();
        for (key, a) in &mut self.active {
            let Some(detection) = key.detection() else {
                done.push(*key);
                continue;
            };
            let window = cfg.detection(detection).window_ns;
            let (packets, bytes, last_ns, distinct) = match lookup(key) {
                // The kernel reset this window and will report the expiry itself.
                Some(s) if s.mode_since_ns != a.since_ns => continue,
                Some(s) => (s.packets, s.bytes, s.last_ns, Some(s.distinct)),
                // Evicted from the LRU map: report what we last knew.
                None => (a.packets, a.bytes, 0, None),
            };
            a.packets = packets;
            a.bytes = bytes;
            if last_ns != 0 {
                a.last_ns = last_ns;
            }
            if last_ns != 0 && now_ns.saturating_sub(last_ns) <= window {
                continue;
            }
            let at_ns = if self.stamp_at_lapse {
                // Evicted entries (last_ns 0) lapsed no later than now, as far as we know.
                a.last_ns.saturating_add(window).min(now_ns)
            } else {
                now_ns
            };
            // XXX: a packet arriving between the lookup and the delete is lost from the totals.
            delete(key);
            done.push(*key);
            if a.folded {
                continue;
            }
            let source = source_name(key, detection, namer);
            let dest = if self.log_dest { a.dest.as_deref() } else { None };
            out.push((
                (at_ns, key.kind, key.family, key.addr),
                Line {
                    at_ns,
                    text: expired_text(key, detection, &source, dest, (packets, bytes, distinct), a.rejects),
                    detected: None,
                    meta: Meta {
                        event: Some(json::Event::Expired),
                        detection: Some(detection),
                        packets: Some(packets),
                        bytes: Some(bytes),
                        ..expired_meta(key, detection)
                    },
                },
            ));
        }
        for k in done {
            self.active.remove(&k);
        }
        // Hash-map order differs between runs; time, then detection, then source makes the log
        // the same every time (replay's output is compared byte for byte).
        out.sort_by_key(|(order, _)| *order);
        out.into_iter().map(|(_, line)| line).collect()
    }
}

/// The addresses of an expiry's record: the key's address is the source, except for a
/// detection kept per target (a distributed flood), whose key is the target: that is `dst`, and
/// there is no source (nothing for an active response to block).
fn expired_meta(key: &SourceKey, detection: Detection) -> Meta {
    key_meta(key, detection, Meta::default())
}

/// `meta` with the key's address where it belongs: the source, or for a per-target detection
/// the target as `dst`, and no source.
fn key_meta(key: &SourceKey, detection: Detection, meta: Meta) -> Meta {
    let addr = Some(format::addr(&key.addr, key.family));
    let proto = detection.keyed_by_proto().then(|| classify::key_proto(key));
    let meta = Meta { proto, ..meta };
    if detection.per_target() { Meta { src: None, dst: addr, ..meta } } else { Meta { src: addr, ..meta } }
}

/// An expiry line: iplog's, a distributed flood's, which names its target and sources, or one
/// counted from the host's rejects.
fn expired_text(
    key: &SourceKey,
    detection: Detection,
    source: &str,
    dest: Option<&str>,
    (packets, bytes, distinct): (u64, u64, Option<u32>),
    rejects: bool,
) -> String {
    if detection == Detection::DistScan {
        format::spread_scan_expired(source, packets, bytes)
    } else if rejects {
        format::rejected_expired(classify::line_proto(key), detection.names().log_name, source, dest, packets)
    } else if detection.per_target() {
        format::flood_expired(classify::key_proto(key), source, packets, bytes, distinct)
    } else {
        format::expired(detection, source, dest, packets, bytes)
    }
}

/// A distributed flood's detection line: the target, the ports hit, about how many sources and
/// the rate of the window that crossed the threshold.
fn flood_line(ev: &Event, detection: Detection) -> Line {
    let target_s = format::addr(&ev.key.addr, ev.key.family).to_string();
    let proto = classify::key_proto(&ev.key);
    let ports = if proto == "ICMP" { &[][..] } else { ev.sports() };
    let secs = ev.ts_ns.saturating_sub(ev.rate_start_ns).max(1) as f64 / 1e9;
    let rate = (f64::from(ev.rate_count) / secs).round() as u64;
    let text = format::flood_detected(&format::Flood {
        proto,
        target: &target_s,
        ports,
        ports_full: ev.nsports as usize >= LOGGED_SPORTS,
        distinct: ev.distinct,
        rate,
    });
    let meta = Meta { sources: format::sources_estimate(ev.distinct), rate: Some(rate), ..Meta::default() };
    detected_line(ev, detection, text, key_meta(&ev.key, detection, Meta { dports: ports.to_vec(), ..meta }))
}

/// A detection's line: `meta`'s addresses, ports and detection-specific fields, with the event,
/// the detection and the window's totals.
fn detected_line(ev: &Event, detection: Detection, text: String, meta: Meta) -> Line {
    Line {
        at_ns: ev.ts_ns,
        text,
        detected: Some((detection, ev.key)),
        meta: Meta {
            event: Some(json::Event::Detected),
            detection: Some(detection),
            packets: Some(ev.packets),
            bytes: Some(ev.bytes),
            ..meta
        },
    }
}

/// A distributed or decoy scan's detection line: the target, the first ports, how many sources
/// (five or more past the kernel's list) and the first of them.
fn spread_scan_line(ev: &Event, detection: Detection) -> Line {
    let target_s = format::addr(&ev.key.addr, ev.key.family).to_string();
    let named: Vec<IpAddr> = ev.hosts().map(|w| format::addr_words(w, ev.packet.family)).collect();
    let decoy = format::is_decoy(ev.packets, ev.distinct, ev.nsports);
    let text = format::spread_scan_detected(&format::SpreadScan {
        target: &target_s,
        ports: ev.ports(),
        ports_full: ev.nports as usize >= LOGGED_DPORTS,
        sources: ev.nsports,
        named: &named,
        decoy,
    });
    let meta = Meta {
        dports: ev.ports().to_vec(),
        sources: Some(u64::from(ev.nsports)),
        decoy: Some(decoy),
        srchosts: named,
        ..Meta::default()
    };
    detected_line(ev, detection, text, key_meta(&ev.key, detection, meta))
}

/// How a detection's key is printed: per-network detections (smurf) print the network
/// (`201.223.41.0`, `2001:db8:1:2::`), which has no name to look up.
fn source_name(key: &SourceKey, detection: Detection, namer: &mut dyn Namer) -> String {
    let addr = format::addr(&key.addr, key.family);
    // A network, or a target of ours: no name to look up.
    if detection.per_network() || detection.per_target() { addr.to_string() } else { namer.name(addr) }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use ipscan_common::Event;

    /// An all-zero event (every field is plain data).
    pub fn blank_event() -> Event {
        // SAFETY: Event is repr(C) plain old data; all-zero is a valid value of every field.
        unsafe { std::mem::zeroed() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::resolve::Plain;
    use ipscan_common::{FAMILY_V4, PacketSummary};

    fn key() -> SourceKey {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[198, 18, 0, 1]);
        SourceKey::new(a, FAMILY_V4, Detection::SynScan)
    }

    fn detected_event(state: &SourceState) -> Event {
        let mut p = PacketSummary { family: FAMILY_V4, ..Default::default() };
        p.src[..4].copy_from_slice(&[198, 18, 0, 1]);
        p.dst[..4].copy_from_slice(&[198, 18, 0, 2]);
        let mut ev = Event::default();
        ev.fill(EventKind::Detected, state.last_ns, &key(), state, &p);
        ev
    }

    #[test]
    fn detection_then_sweep_expiry() {
        let cfg = Config::default();
        let mut s = SourceState::new(1_000);
        for port in 1..=10u16 {
            s.record_ports(1_000 + port as u64, port, 40000, 24, 10);
        }
        let mut t = Tracker::new(false);
        let line = t.on_event(&detected_event(&s), &mut Plain).expect("line");
        assert_eq!(line.text, "TCP: SYN scan detected [ports 1,2,3,4,5,6,7,8,9,10,...] from 198.18.0.1 [port 40000]");
        assert_eq!(t.active(), 1);
        s.record_ports(2_000, 11, 40000, 24, 10);
        // Not lapsed yet: nothing.
        let mut deleted = 0;
        let out = t.sweep(2_000 + 50_000_000_000, &cfg, &mut Plain, |_| Some(s), |_| deleted += 1);
        assert!(out.is_empty());
        let out = t.sweep(2_001 + 50_000_000_000, &cfg, &mut Plain, |_| Some(s), |_| deleted += 1);
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].text,
            "TCP: SYN scan mode expired for 198.18.0.1 - received a total of 11 packets (264 bytes)."
        );
        assert_eq!(deleted, 1);
        assert_eq!(t.active(), 0);
    }

    #[test]
    fn replay_stamps_at_the_lapse_and_knows_the_next_one() {
        let cfg = Config::default();
        let window = cfg.detection(Detection::SynScan).window_ns;
        let mut s = SourceState::new(1_000);
        for port in 1..=10u16 {
            s.record_ports(1_000 + port as u64, port, 40000, 24, 10);
        }
        let mut t = Tracker::new(false);
        t.stamp_at_lapse = true;
        assert_eq!(t.next_lapse(&cfg), None);
        t.on_event(&detected_event(&s), &mut Plain).expect("line");
        // Known from the detection event: the threshold packet at 1_010.
        assert_eq!(t.next_lapse(&cfg), Some(1_010 + window));
        s.record_ports(5_000, 11, 40000, 24, 10);
        // A sweep before the lapse learns the later last packet.
        assert!(t.sweep(5_000, &cfg, &mut Plain, |_| Some(s), |_| {}).is_empty());
        assert_eq!(t.next_lapse(&cfg), Some(5_000 + window));
        // Swept long after the lapse: stamped at the lapse, not at the sweep.
        let out = t.sweep(5_000 + 3 * window, &cfg, &mut Plain, |_| Some(s), |_| {});
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].at_ns, 5_000 + window);
        assert_eq!(t.next_lapse(&cfg), None);
    }

    #[test]
    fn sweep_lines_are_in_time_then_detection_order() {
        let cfg = Config::default();
        let mut t = Tracker::new(false);
        t.stamp_at_lapse = true;
        let mut states = HashMap::new();
        // Eight sources, two detections each, lapsing at different instants.
        for i in 0..8u8 {
            for d in [Detection::SynScan, Detection::PortScan] {
                let mut s = SourceState::new(100);
                s.record_ports(100 + u64::from(i % 3), 1, 1, 10, 1);
                let mut p = PacketSummary { family: FAMILY_V4, ..Default::default() };
                p.src[..4].copy_from_slice(&[198, 18, 1, i]);
                let mut a = [0u8; 16];
                a[..4].copy_from_slice(&[198, 18, 1, i]);
                let key = SourceKey::new(a, FAMILY_V4, d);
                let mut ev = detected_event(&s);
                ev.fill(EventKind::Detected, s.last_ns, &key, &s, &p);
                t.on_event(&ev, &mut Plain).expect("detected");
                states.insert(key, s);
            }
        }
        let out = t.sweep(u64::MAX, &cfg, &mut Plain, |k| states.get(k).copied(), |_| {});
        assert_eq!(out.len(), 16);
        let order: Vec<(u64, &str)> = out.iter().map(|l| (l.at_ns, &l.text[5..9])).collect();
        let mut sorted = order.clone();
        sorted.sort_by_key(|(at, _)| *at);
        assert_eq!(order, sorted, "time order");
        // Same instant: port scan (discriminant 0) before SYN scan (1), then by address.
        assert_eq!(
            out[0].text,
            "TCP: port scan mode expired for 198.18.1.0 - received a total of 1 packets (10 bytes)."
        );
        assert_eq!(
            out[1].text,
            "TCP: port scan mode expired for 198.18.1.3 - received a total of 1 packets (10 bytes)."
        );
    }

    #[test]
    fn smurf_prints_the_network_and_udp_flood_its_ports() {
        let mut s = SourceState::new(5);
        s.record_packets(5, 0, 0, 64, 1, 1_000_000_000);
        let net6 = [0x20, 0x01, 0x0d, 0xb8, 0, 5, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut ev = detected_event(&s);
        ev.detection = Detection::Smurf as u8;
        ev.key = SourceKey::new(net6, ipscan_common::FAMILY_V6, Detection::Smurf);
        let mut t = Tracker::new(false);
        // A namer that would rename every address: per-network keys are not looked up.
        struct Loud;
        impl Namer for Loud {
            fn name(&mut self, addr: std::net::IpAddr) -> String {
                format!("host ({addr})")
            }
        }
        let line = t.on_event(&ev, &mut Loud).expect("line");
        assert_eq!(line.text, "ICMP/UDP: smurf attack detected from 2001:db8:5:1::");
        let mut u = SourceState::new(5);
        u.record_packets(5, 53, 40000, 30, 1, 1_000_000_000);
        let mut ev = detected_event(&u);
        ev.detection = Detection::UdpFlood as u8;
        ev.key.kind = Detection::UdpFlood as u8;
        let line = t.on_event(&ev, &mut Loud).expect("line");
        assert_eq!(line.text, "UDP: scan/flood detected [port 53] from host (198.18.0.1) [port 40000]");
    }

    #[test]
    fn udp_scan_and_flood_of_one_source_are_one_mode_in_the_log() {
        let cfg = Config::default();
        let detected_by = |d: Detection, ports: u16| {
            let mut s = SourceState::new(5);
            for port in 1..=ports {
                s.record_ports(5 + u64::from(port), port, 40000, 30, 1);
            }
            let mut ev = detected_event(&s);
            ev.detection = d as u8;
            ev.key.kind = d as u8;
            (ev, s)
        };
        let (scan, scan_state) = detected_by(Detection::UdpScan, 25);
        let (flood, flood_state) = detected_by(Detection::UdpFlood, 30);
        let mut t = Tracker::new(false);
        let line = t.on_event(&scan, &mut Plain).expect("the first is logged");
        assert!(
            line.text.starts_with("UDP: scan/flood detected [ports 1,2,3,4,5,6,7,8,9,10,...] from 198.18.0.1"),
            "{}",
            line.text
        );
        assert!(t.on_event(&flood, &mut Plain).is_none(), "the twin is folded into it");
        assert_eq!(t.active(), 2);
        // The folded mode ends without a line, by the kernel's report or by a sweep; the shown
        // one with its own.
        let mut gone = flood;
        gone.kind = EventKind::Expired as u8;
        assert!(t.on_event(&gone, &mut Plain).is_none());
        let mut deleted = Vec::new();
        let out = t.sweep(u64::MAX, &cfg, &mut Plain, |_| Some(scan_state), |k| deleted.push(k.kind));
        let texts: Vec<&str> = out.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            texts,
            ["UDP: scan/flood mode expired for 198.18.0.1 - received a total of 25 packets (750 bytes)."]
        );
        assert_eq!(deleted, [Detection::UdpScan as u8], "the kernel's state of the swept mode");
        assert_eq!(t.active(), 0);
        // In the other order, after a restart (adopted), and swept together: one line again.
        let mut t = Tracker::new(false);
        assert!(t.on_event(&flood, &mut Plain).is_some());
        assert!(t.on_event(&scan, &mut Plain).is_none());
        let out = t.sweep(
            u64::MAX,
            &cfg,
            &mut Plain,
            |k| Some(if k.kind == flood.key.kind { flood_state } else { scan_state }),
            |_| {},
        );
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].text.contains("a total of 30 packets"), "the flood's, shown first: {}", out[0].text);
        let mut t = Tracker::new(false);
        assert!(t.adopt(scan.key, &scan_state) && t.adopt(flood.key, &flood_state));
        assert_eq!(t.sweep(u64::MAX, &cfg, &mut Plain, |_| Some(scan_state), |_| {}).len(), 1);
        // Another source's twin, or another detection of this source, is not folded.
        let mut t = Tracker::new(false);
        assert!(t.on_event(&scan, &mut Plain).is_some());
        let mut other = flood;
        other.key.addr[3] = 7;
        assert!(t.on_event(&other, &mut Plain).is_some());
        let (syn, _) = detected_by(Detection::SynScan, 10);
        assert!(t.on_event(&syn, &mut Plain).is_some());
    }

    #[test]
    fn adopted_modes_expire_with_the_kernels_totals() {
        let cfg = Config::default();
        let mut s = SourceState::new(1_000);
        for port in 1..=12u16 {
            s.record_ports(1_000 + port as u64, port, 40000, 24, 10);
        }
        let mut t = Tracker::new(true);
        assert!(t.adopt(key(), &s));
        assert!(!t.adopt(key(), &s), "adopted once");
        assert!(!t.adopt(key(), &SourceState::new(5)), "not in a mode");
        let out = t.sweep(u64::MAX, &cfg, &mut Plain, |_| Some(s), |_| {});
        // log_dest is on, but an adopted mode has no destination to show.
        assert_eq!(
            out[0].text,
            "TCP: SYN scan mode expired for 198.18.0.1 - received a total of 12 packets (288 bytes)."
        );
    }

    #[test]
    fn distributed_flood_records_name_the_target_as_dst_and_no_source() {
        let cfg = Config::default();
        // 20 forged sources (the counted values) flooding 198.18.0.2 port 53 over UDP.
        let mut s = SourceState::new(1_000);
        for i in 0..40u16 {
            s.record_rate(1_000 + u64::from(i), 1000 + i % 20, 53, 28, 40, 1_000_000_000, 20);
        }
        assert_ne!(s.mode_since_ns, 0, "in flood mode");
        let mut p = PacketSummary { family: FAMILY_V4, ..Default::default() };
        p.src[..4].copy_from_slice(&[203, 0, 113, 9]);
        p.dst[..4].copy_from_slice(&[198, 18, 0, 2]);
        let mut target = [0u8; 16];
        target[..4].copy_from_slice(&[198, 18, 0, 2]);
        let key = SourceKey {
            _pad: [ipscan_common::packet::PROTO_UDP, 0],
            ..SourceKey::new(target, FAMILY_V4, Detection::DistFlood)
        };
        let mut ev = Event::default();
        ev.fill(EventKind::Detected, s.last_ns, &key, &s, &p);
        let want_dst: IpAddr = "198.18.0.2".parse().expect("target");
        let mut t = Tracker::new(true);
        let line = t.on_event(&ev, &mut Plain).expect("detected");
        assert!(
            line.text.starts_with("UDP: distributed flood detected to 198.18.0.2 [port 53] from 20 sources ("),
            "{}",
            line.text
        );
        assert_eq!((line.meta.src, line.meta.dst), (None, Some(want_dst)));
        // The kernel's expiry report.
        let mut gone = ev;
        gone.kind = EventKind::Expired as u8;
        let line = t.on_event(&gone, &mut Plain).expect("expired");
        assert_eq!(
            line.text,
            "UDP: distributed flood mode expired for 198.18.0.2 - received a total of 40 packets (1120 bytes) from 20 sources."
        );
        assert_eq!(line.meta.event, Some(json::Event::Expired));
        assert_eq!((line.meta.src, line.meta.dst), (None, Some(want_dst)));
        // The sweep's, with the kernel's state and after it was evicted.
        for state in [Some(s), None] {
            let mut t = Tracker::new(false);
            t.on_event(&ev, &mut Plain).expect("detected");
            let out = t.sweep(u64::MAX, &cfg, &mut Plain, |_| state, |_| {});
            assert_eq!(out.len(), 1);
            assert!(
                out[0].text.starts_with("UDP: distributed flood mode expired for 198.18.0.2 - "),
                "{}",
                out[0].text
            );
            assert_eq!((out[0].meta.src, out[0].meta.dst), (None, Some(want_dst)), "{state:?}");
        }
        // A detection kept per source still names its source, and no destination, in its expiry.
        let mut syn = SourceState::new(5);
        syn.record_ports(5, 1, 1, 10, 1);
        let mut t = Tracker::new(true);
        t.on_event(&detected_event(&syn), &mut Plain).expect("detected");
        let out = t.sweep(u64::MAX, &cfg, &mut Plain, |_| Some(syn), |_| {});
        assert_eq!((out[0].meta.src, out[0].meta.dst), (Some("198.18.0.1".parse().expect("src")), None));
    }

    #[test]
    fn kernel_expiry_is_logged_once() {
        let mut s = SourceState::new(5);
        s.record_ports(5, 1, 1, 10, 1);
        let mut t = Tracker::new(true);
        t.on_event(&detected_event(&s), &mut Plain).expect("detected");
        let mut ev = detected_event(&s);
        ev.kind = EventKind::Expired as u8;
        let line = t.on_event(&ev, &mut Plain).expect("expired");
        assert_eq!(
            line.text,
            "TCP: SYN scan mode to 198.18.0.2 expired for 198.18.0.1 - received a total of 1 packets (10 bytes)."
        );
        assert!(t.on_event(&ev, &mut Plain).is_none());
    }
}
