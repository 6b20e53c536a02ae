//! Records the kernel sends to user space on the EVENTS ring buffer.

use crate::{
    packet::PacketSummary,
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
}

impl EventKind {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Detected),
            2 => Some(Self::Expired),
            _ => None,
        }
    }
}

/// One ring-buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// [`EventKind`] discriminant.
    pub kind: u8,
    /// [`crate::Detection`] discriminant.
    pub detection: u8,
    /// Entries used in `ports`.
    pub nports: u8,
    /// Entries used in `sports`.
    pub nsports: u8,
    pub _pad: [u8; 4],
    /// Kernel clock when the event was made.
    pub ts_ns: u64,
    /// Clock at which the mode began (the threshold packet).
    pub mode_since_ns: u64,
    /// Packets counted so far in the window.
    pub packets: u64,
    /// IP payload bytes counted so far in the window.
    pub bytes: u64,
    /// The key the detection is kept under (source, or its network for per-network kinds).
    pub key: SourceKey,
    /// The packet that caused the event.
    pub packet: PacketSummary,
    /// First distinct destination ports.
    pub ports: [u16; LOGGED_DPORTS],
    /// First distinct source ports.
    pub sports: [u16; LOGGED_SPORTS],
    pub _pad1: [u8; 2],
}
const _: () = assert!(core::mem::size_of::<Event>() == 8 + 32 + 20 + 48 + 20 + 10 + 2 + 4);

impl Event {
    /// Fills every field of `self` from a state snapshot (field by field, for the verifier).
    pub fn fill(&mut self, kind: EventKind, now: u64, key: &SourceKey, state: &SourceState, packet: &PacketSummary) {
        self.kind = kind as u8;
        self.detection = key.kind;
        self.nports = state.nports.min(LOGGED_DPORTS as u8);
        self.nsports = state.nsports.min(LOGGED_SPORTS as u8);
        self._pad = [0; 4];
        self.ts_ns = now;
        self.mode_since_ns = state.mode_since_ns;
        self.packets = state.packets;
        self.bytes = state.bytes;
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
        self._pad1 = [0; 2];
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
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for Event {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for PacketSummary {}
