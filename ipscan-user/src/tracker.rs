//! Active modes in user space: turns kernel events into log lines and sweeps lapsed modes.
//!
//! The kernel reports when a source enters a mode; this table holds only those sources, and a
//! sweep once a second looks each one up to see whether its window has lapsed. Sweeps cost is
//! proportional to active attacks, not to tracked sources. Both the live daemon and replay use
//! it, with their own clocks.

use std::collections::HashMap;

use ipscan_common::{
    Config, Detection, Event, EventKind, SourceKey, SourceState,
    window::{LOGGED_DPORTS, LOGGED_SPORTS},
};

use crate::{
    format::{self, Detected},
    lines::PacketLines,
};

/// A mode being tracked: which interface it was seen on and its last known totals.
#[derive(Clone, Debug)]
struct Active {
    since_ns: u64,
    packets: u64,
    bytes: u64,
    dest: String,
}

/// One log line to write, stamped with the kernel clock of the moment it describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub at_ns: u64,
    pub text: String,
    /// The detection a line reports, if it is a detection (for callers with per-detection policy).
    pub detected: Option<(Detection, SourceKey)>,
}

/// How sources are printed.
pub trait Namer {
    fn name(&mut self, addr: std::net::IpAddr) -> String;
}

/// Prints bare addresses.
pub struct Plain;
impl Namer for Plain {
    fn name(&mut self, addr: std::net::IpAddr) -> String {
        addr.to_string()
    }
}

/// Per-interface active-mode table.
#[derive(Default)]
pub struct Tracker {
    active: HashMap<SourceKey, Active>,
    pub log_dest: bool,
    /// Per-packet line state (traceroute quiet periods).
    packets: PacketLines,
}

impl Tracker {
    pub fn new(log_dest: bool) -> Self {
        Self {
            active: HashMap::new(),
            log_dest,
            packets: PacketLines::default(),
        }
    }

    /// Number of sources currently in a mode.
    pub fn active(&self) -> usize {
        self.active.len()
    }

    /// Handles one ring-buffer event.
    pub fn on_event(&mut self, ev: &Event, namer: &mut dyn Namer) -> Option<Line> {
        if matches!(ev.kind()?, EventKind::Packet | EventKind::RateLimited) {
            let text = self.packets.on_event(ev, namer, self.log_dest)?;
            return Some(Line { at_ns: ev.ts_ns, text, detected: None });
        }
        let detection = Detection::from_u8(ev.detection)?;
        let source = source_name(&ev.key, detection, namer);
        let dest_s = format::addr(&ev.packet.dst, ev.packet.family).to_string();
        match ev.kind()? {
            EventKind::Detected => {
                let dest = self.log_dest.then_some(dest_s.as_str());
                let text = format::detected(&Detected {
                    detection,
                    source: &source,
                    dest,
                    dports: ev.ports(),
                    dports_full: ev.nports as usize >= LOGGED_DPORTS,
                    sports: ev.sports(),
                    sports_full: ev.nsports as usize >= LOGGED_SPORTS,
                });
                self.active.insert(
                    ev.key,
                    Active {
                        since_ns: ev.mode_since_ns,
                        packets: ev.packets,
                        bytes: ev.bytes,
                        dest: dest_s,
                    },
                );
                Some(Line {
                    at_ns: ev.ts_ns,
                    text,
                    detected: Some((detection, ev.key)),
                })
            }
            EventKind::Expired => {
                // Only the kernel's report of a mode we still track; the sweep may have logged it.
                let a = self.active.get(&ev.key)?;
                if a.since_ns != ev.mode_since_ns {
                    return None;
                }
                let a = self.active.remove(&ev.key)?;
                let dest = self.log_dest.then_some(a.dest.as_str());
                Some(Line {
                    at_ns: ev.ts_ns,
                    text: format::expired(detection, &source, dest, ev.packets, ev.bytes),
                    detected: None,
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
            let (packets, bytes, last_ns) = match lookup(key) {
                // The kernel reset this window and will report the expiry itself.
                Some(s) if s.mode_since_ns != a.since_ns => continue,
                Some(s) => (s.packets, s.bytes, s.last_ns),
                // Evicted from the LRU map: report what we last knew.
                None => (a.packets, a.bytes, 0),
            };
            a.packets = packets;
            a.bytes = bytes;
            if last_ns != 0 && now_ns.saturating_sub(last_ns) <= window {
                continue;
            }
            // XXX: a packet arriving between the lookup and the delete is lost from the totals.
            delete(key);
            let source = source_name(key, detection, namer);
            let dest = self.log_dest.then_some(a.dest.as_str());
            out.push(Line {
                at_ns: now_ns,
                text: format::expired(detection, &source, dest, packets, bytes),
                detected: None,
            });
            done.push(*key);
        }
        for k in done {
            self.active.remove(&k);
        }
        out
    }
}

/// How a detection's key is printed: per-network detections (smurf) print the network
/// (`201.223.41.0`, `2001:db8:1:2::`), which has no name to look up.
fn source_name(key: &SourceKey, detection: Detection, namer: &mut dyn Namer) -> String {
    let addr = format::addr(&key.addr, key.family);
    if detection.per_network() { addr.to_string() } else { namer.name(addr) }
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
        let mut ev = super::tests_support::blank_event();
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
        assert_eq!(
            line.text,
            "TCP: SYN scan detected [ports 1,2,3,4,5,6,7,8,9,10,...] from 198.18.0.1 [port 40000]"
        );
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
