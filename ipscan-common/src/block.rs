//! Blocklist, auto-block and allowlist entries.

use crate::{FAMILY_V4, Detection};

/// Value of BLOCK4, BLOCK6 and AUTOBLOCK entries.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockEntry {
    /// Kernel clock after which the entry no longer blocks; zero: never expires.
    pub expires_ns: u64,
    /// Kernel clock when the entry was made.
    pub added_ns: u64,
    /// Packets dropped because of this entry.
    pub packets: u64,
    /// IP payload bytes dropped because of this entry.
    pub bytes: u64,
    /// Kernel clock of the last dropped packet.
    pub last_ns: u64,
    /// 0: added by hand (CLI, restore); otherwise 1 + the [`Detection`] that triggered it.
    pub reason: u8,
    pub _pad: [u8; 7],
}
const _: () = assert!(core::mem::size_of::<BlockEntry>() == 48);

impl BlockEntry {
    pub fn manual(now: u64, ttl_ns: u64) -> Self {
        Self {
            expires_ns: if ttl_ns == 0 { 0 } else { now.saturating_add(ttl_ns) },
            added_ns: now,
            ..Default::default()
        }
    }

    /// Whether the entry still blocks at `now`.
    pub fn active(&self, now: u64) -> bool {
        self.expires_ns == 0 || now < self.expires_ns
    }

    pub fn detection(&self) -> Option<Detection> {
        self.reason.checked_sub(1).and_then(Detection::from_u8)
    }
}

/// Key of the AUTOBLOCK hash (exact addresses).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AddrKey {
    pub addr: [u8; 16],
    pub family: u8,
    pub _pad: [u8; 3],
}
const _: () = assert!(core::mem::size_of::<AddrKey>() == 20);

impl AddrKey {
    pub fn new(addr: [u8; 16], family: u8) -> Self {
        let mut k = Self {
            addr,
            family,
            _pad: [1; 3],
        };
        // Volatile: a 3-byte zero store is a `memset` call for the BPF backend (a subprogram
        // call and a byte loop per key built).
        crate::zero::fill(&mut k._pad, 0);
        k
    }

    pub fn v4(a: [u8; 4]) -> Self {
        let mut addr = [0u8; 16];
        addr[..4].copy_from_slice(&a);
        Self::new(addr, FAMILY_V4)
    }
}

/// Bits of an allowlist entry's value: why the prefix is allowed (for `ipscan allow list`).
pub mod allow_reason {
    /// Added by the configuration or the CLI.
    pub const CONFIGURED: u32 = 1;
    /// One of the host's own addresses.
    pub const OWN_ADDRESS: u32 = 2;
    /// A default gateway.
    pub const GATEWAY: u32 = 4;
    /// A nameserver from /etc/resolv.conf.
    pub const NAMESERVER: u32 = 8;
    /// Added with `ipscan allow add` (kept across restarts).
    pub const MANUAL: u32 = 16;
    /// The ones the daemon works out at start and replaces on every start.
    pub const AUTOMATIC: u32 = CONFIGURED | OWN_ADDRESS | GATEWAY | NAMESERVER;
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for BlockEntry {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for AddrKey {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry() {
        let e = BlockEntry::manual(100, 50);
        assert!(e.active(149));
        assert!(!e.active(150));
        let forever = BlockEntry::manual(100, 0);
        assert!(forever.active(u64::MAX));
        let auto = BlockEntry { reason: 1 + Detection::SynScan as u8, ..forever };
        assert_eq!(auto.detection(), Some(Detection::SynScan));
        assert_eq!(forever.detection(), None);
    }
}
