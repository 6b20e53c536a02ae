//! Records the kernel sends to user space on the EVENTS ring buffer.

use crate::{
    packet::PacketSummary,
    sweep::{LOGGED_HOSTS, SweepHosts},
    window::{LOGGED_DPORTS, LOGGED_SPORTS, SourceKey, SourceState},
};

/// What an [`Event`] reports.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A source crossed a detection's threshold.
    Detected = 1,
    /// The kernel found a source's mode lapsed before user space swept it.
    Expired = 2,
    /// A per-packet or immediate line ([`crate::classify::PacketLine`] in `line`).
    Packet = 3,
    /// The kernel auto-blocked the source of a detection (or, with [`event_flags::ALLOWLISTED`],
    /// did not because the source is allowlisted).
    Blocked = 4,
    /// Per-packet events a source caused beyond its budget since the last report (`packets`).
    RateLimited = 5,
}

impl EventKind {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Detected),
            2 => Some(Self::Expired),
            3 => Some(Self::Packet),
            4 => Some(Self::Blocked),
            5 => Some(Self::RateLimited),
            _ => None,
        }
    }
}

/// Bits of [`Event::flags`].
pub mod event_flags {
    /// The source is allowlisted: the detection was not acted on.
    pub const ALLOWLISTED: u8 = 0x1;
    /// The packet was dropped (hardening option or block).
    pub const DROPPED: u8 = 0x2;
    /// `dry_run`: the source would have been blocked; nothing is dropped.
    pub const DRY_RUN: u8 = 0x4;
}

/// One ring-buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// [`EventKind`] discriminant.
    pub kind: u8,
    /// [`crate::Detection`] discriminant (detections, expiries, blocks).
    pub detection: u8,
    /// Entries used in `ports`.
    pub nports: u8,
    /// Entries used in `sports`.
    pub nsports: u8,
    /// [`crate::classify::PacketLine`] discriminant (packet events).
    pub line: u8,
    /// [`event_flags`] bits.
    pub flags: u8,
    /// Sweeps' detections: bit `i`, `hosts[i]` is known.
    pub hosts_known: u8,
    pub _pad: u8,
    /// Kernel clock when the event was made.
    pub ts_ns: u64,
    /// Clock at which the mode began (the threshold packet); block expiry for Blocked events.
    pub mode_since_ns: u64,
    /// Packets counted so far in the window.
    pub packets: u64,
    /// IP payload bytes counted so far in the window.
    pub bytes: u64,
    /// Clock of the window's first counted packet (detections and expiries).
    pub first_ns: u64,
    /// Rate detections: the start of the rate window, and the packets counted in it.
    pub rate_start_ns: u64,
    /// The packet that caused the event.
    pub packet: PacketSummary,
    /// The key the detection is kept under (source, or its network for per-network kinds).
    pub key: SourceKey,
    /// First distinct destination ports.
    pub ports: [u16; LOGGED_DPORTS],
    /// First distinct source ports (sweeps: the destination ports swept).
    pub sports: [u16; LOGGED_SPORTS],
    pub _pad1: [u8; 2],
    /// Distinct destination ports (sweeps: hosts) counted so far in the window.
    pub distinct: u32,
    /// Sweeps' detections: the first distinct destination hosts, as four native-order words.
    pub hosts: [[u32; 4]; LOGGED_HOSTS],
    pub rate_count: u32,
    pub _pad2: u32,
}
const _: () = assert!(core::mem::size_of::<Event>() == 8 + 48 + 104 + 20 + 20 + 10 + 2 + 4 + 16 * LOGGED_HOSTS + 8);

impl Event {
    /// Fills every field of `self` from a state snapshot (field by field, for the verifier).
    pub fn fill(&mut self, kind: EventKind, now: u64, key: &SourceKey, state: &SourceState, packet: &PacketSummary) {
        self.kind = kind as u8;
        self.detection = key.kind;
        self.nports = if state.nports > LOGGED_DPORTS as u8 { LOGGED_DPORTS as u8 } else { state.nports };
        self.nsports = if state.nsports > LOGGED_SPORTS as u8 { LOGGED_SPORTS as u8 } else { state.nsports };
        self.line = 0;
        self.flags = 0;
        self.hosts_known = 0;
        self._pad = 0;
        self.ts_ns = now;
        self.mode_since_ns = state.mode_since_ns;
        self.packets = state.packets;
        self.bytes = state.bytes;
        self.first_ns = state.first_ns;
        self.rate_start_ns = state.rate_start_ns;
        self.rate_count = state.rate_count;
        self._pad2 = 0;
        self.key = *key;
        self.packet = *packet;
        for i in 0..LOGGED_DPORTS {
            if let (Some(d), Some(s)) = (self.ports.get_mut(i), state.ports.get(i)) {
                *d = *s;
            }
        }
        for i in 0..LOGGED_SPORTS {
            if let (Some(d), Some(s)) = (self.sports.get_mut(i), state.sports.get(i)) {
                *d = *s;
            }
        }
        crate::zero::fill(&mut self._pad1, 0);
        self.distinct = state.distinct;
        crate::zero::words(&mut self.hosts);
    }

    /// Puts a sweep's first hosts in (after [`Event::fill`]), if they are of its window.
    #[inline(always)]
    pub fn put_hosts(&mut self, state: &SourceState, hosts: &SweepHosts) {
        if hosts.first_ns != state.first_ns {
            return;
        }
        self.hosts_known = hosts.known as u8;
        for i in 0..LOGGED_HOSTS {
            if let (Some(d), Some(s)) = (self.hosts.get_mut(i), hosts.hosts.get(i)) {
                crate::zero::copy_words(d, s);
            }
        }
    }

    /// Fills every field for a per-packet event (no window state).
    pub fn fill_packet(&mut self, kind: EventKind, line: u8, flags: u8, now: u64, count: u64, packet: &PacketSummary) {
        use crate::zero::put;
        // Volatile zero stores: LLVM would merge neighbouring ones into `memset` calls.
        self.kind = kind as u8;
        put(&mut self.detection, 0);
        put(&mut self.nports, 0);
        put(&mut self.nsports, 0);
        self.line = line;
        self.flags = flags;
        put(&mut self.hosts_known, 0);
        put(&mut self._pad, 0);
        self.ts_ns = now;
        put(&mut self.mode_since_ns, 0);
        self.packets = count;
        put(&mut self.bytes, 0);
        put(&mut self.first_ns, 0);
        put(&mut self.rate_start_ns, 0);
        put(&mut self.rate_count, 0);
        put(&mut self._pad2, 0);
        self.key = SourceKey { addr: packet.src, family: packet.family, kind: 0, _pad: [0; 2] };
        self.packet = *packet;
        crate::zero::fill(&mut self.ports, 0);
        crate::zero::fill(&mut self.sports, 0);
        crate::zero::fill(&mut self._pad1, 0);
        put(&mut self.distinct, 0);
        crate::zero::words(&mut self.hosts);
    }

    pub fn kind(&self) -> Option<EventKind> {
        EventKind::from_u8(self.kind)
    }

    pub fn ports(&self) -> &[u16] {
        &self.ports[..(self.nports as usize).min(LOGGED_DPORTS)]
    }

    pub fn sports(&self) -> &[u16] {
        &self.sports[..(self.nsports as usize).min(LOGGED_SPORTS)]
    }

    /// A sweep's first hosts that are known, in the order they were counted.
    pub fn hosts(&self) -> impl Iterator<Item = &[u32; 4]> + '_ {
        self.hosts.iter().enumerate().filter(|(i, _)| self.hosts_known & (1 << i) != 0).map(|(_, h)| h)
    }
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for Event {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for PacketSummary {}
