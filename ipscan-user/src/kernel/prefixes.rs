//! What the tables of prefixes share: their keys (masked addresses, BLOCK4's 8-byte data), the
//! bucket counts a prefix is counted in before the kernel may see it ([`Counts`]), and opening
//! the maps that hold them, from a loaded program or a daemon's pins. The block and allow tables
//! ([`super::tables`]) and the threat feeds ([`super::feeds`]) are built on it.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use aya::{
    Ebpf,
    maps::{Map, MapData, MapError, lpm_trie::Key},
};
use ipscan_common::{
    AddrKey, FAMILY_V6,
    block::{Block4Data, block4_data, counts},
};

use crate::{
    config::IpNet,
    kernel::mmap::{Mapped, MmapError, map_array},
};

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("no map {name} in the eBPF object")]
    Missing { name: &'static str },
    #[error("cannot open {path}: {source}")]
    Pin {
        path: PathBuf,
        #[source]
        source: MapError,
    },
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error(transparent)]
    Mmap(#[from] MmapError),
}

/// [`map_array`] of an array taken from its program or pin, writable, with the map kept open
/// while it is mapped.
pub(crate) fn owned_array<T>(map: Map, name: &'static str, entries: u32) -> Result<(Mapped<T>, MapData), TableError> {
    let words = map_array(&map, name, entries, true)?;
    let Map::Array(data) = map else { unreachable!("checked by map_array") };
    Ok((words, data))
}

/// BLOCKCOUNTS or ALLOWCOUNTS ([`counts`]), mapped: how many prefixes blocked by hand, or
/// allowlisted, reach into each bucket. Kept never too low ([`counts`]): a bucket is counted up
/// before its prefix goes into its list and down only after it came out, with atomic
/// read-modify-writes, as the daemon and the CLI may edit the lists at once.
pub struct Counts {
    words: Mapped<u64>,
    /// Keeps the map's file descriptor open while it is mapped.
    _map: MapData,
}

impl Counts {
    pub(crate) fn new(map: Map, name: &'static str) -> Result<Self, TableError> {
        let (words, data) = owned_array(map, name, counts::SLOTS)?;
        Ok(Self { words, _map: data })
    }

    /// Counts `net` in each of its buckets (before it is inserted).
    pub(crate) fn up(&self, net: &IpNet) {
        count_up(&self.words, net);
    }

    /// Takes `net` out of each of its buckets (after it was removed). A count of zero stays
    /// zero: a prefix that BLOCKCOUNTS never counted (see [`count_kept_prefixes`]) may be
    /// removed, and must not take another prefix's count with it by wrapping.
    pub(crate) fn down(&self, net: &IpNet) {
        for i in net_buckets(net) {
            let _ = count_word(&self.words, i).fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| c.checked_sub(1));
        }
    }

    /// The count of bucket `i` ([`counts::bucket`]).
    pub fn get(&self, i: u32) -> u64 {
        count_word(&self.words, i).load(Ordering::SeqCst)
    }
}

/// BLOCKCOUNTS value `i`, for atomic access.
pub(crate) fn count_word(words: &Mapped<u64>, i: u32) -> &AtomicU64 {
    // SAFETY: an 8-aligned u64 inside the mapping (page-aligned base), shared with other
    // processes that also only touch it atomically; the kernel only reads it.
    unsafe { AtomicU64::from_ptr(words.ptr(i)) }
}

/// Counts `net` in each of its BLOCKCOUNTS buckets.
pub(crate) fn count_up(words: &Mapped<u64>, net: &IpNet) {
    for i in net_buckets(net) {
        count_word(words, i).fetch_add(1, Ordering::SeqCst);
    }
}

/// The BLOCKCOUNTS buckets a prefix reaches into ([`counts::buckets_of`]).
pub(crate) fn net_buckets(net: &IpNet) -> impl Iterator<Item = u32> + use<> {
    let k = addr_key(net.addr());
    counts::buckets_of(k.family, &k.addr, net.prefix())
}

/// Whether a map call failed with `errno`.
pub(crate) fn failed_with(e: &MapError, errno: i32) -> bool {
    matches!(e, MapError::SyscallError(aya::sys::SyscallError { io_error, .. }) if io_error.raw_os_error() == Some(errno))
}

pub(crate) fn conv_ref<'a, T: TryFrom<&'a Map, Error = MapError>>(
    m: &'a Map,
    name: &'static str,
) -> Result<T, TableError> {
    T::try_from(m).map_err(|source| TableError::Map { name, source })
}

pub(crate) fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<Map, TableError> {
    ebpf.take_map(name).ok_or(TableError::Missing { name })
}

/// Opens one of a daemon's pinned maps.
pub(crate) fn pinned(dir: &Path, name: &'static str) -> Result<Map, TableError> {
    let path = dir.join(name);
    let data = MapData::from_pin(&path).map_err(|source| TableError::Pin { path: path.clone(), source })?;
    Map::from_map_data(data).map_err(|source| TableError::Pin { path, source })
}

/// [`pinned`], or None when the daemon's ipscan predates the map (no pin).
pub(crate) fn pinned_if_there(dir: &Path, name: &'static str) -> Result<Option<Map>, TableError> {
    dir.join(name).exists().then(|| pinned(dir, name)).transpose()
}

pub(crate) fn conv<T: TryFrom<Map, Error = MapError>>(m: Map, name: &'static str) -> Result<T, TableError> {
    T::try_from(m).map_err(|source| TableError::Map { name, source })
}

/// `addr` masked to `prefix` bits, as the LPM key the entry is stored under.
pub(crate) fn masked<const N: usize>(bytes: [u8; N], prefix: u8) -> [u8; N] {
    let mut out = [0u8; N];
    let mut left = prefix as usize;
    for (o, b) in out.iter_mut().zip(bytes) {
        let take = left.min(8);
        *o = if take == 0 { 0 } else { b & (0xffu8 << (8 - take)) };
        left -= take;
    }
    out
}

pub(crate) fn v4_key(net: &IpNet) -> Option<Key<[u8; 4]>> {
    match net.addr() {
        IpAddr::V4(a) => Some(Key::new(net.prefix() as u32, masked(a.octets(), net.prefix()))),
        IpAddr::V6(_) => None,
    }
}

pub(crate) fn v6_key(net: &IpNet) -> Option<Key<[u8; 16]>> {
    match net.addr() {
        IpAddr::V6(a) => Some(Key::new(net.prefix() as u32, masked(a.octets(), net.prefix()))),
        IpAddr::V4(_) => None,
    }
}

/// The exact-address key of an address.
pub(crate) fn addr_key(addr: IpAddr) -> AddrKey {
    match addr {
        IpAddr::V4(a) => AddrKey::v4(a.octets()),
        IpAddr::V6(a) => AddrKey::new(a.octets(), FAMILY_V6),
    }
}

/// The BLOCK4 key of an IPv4 prefix ([`Block4Data`]).
pub(crate) fn block4_key(net: &IpNet) -> Option<Key<Block4Data>> {
    v4_key(net).map(|k| {
        let d = k.data();
        Key::new(k.prefix_len(), block4_data(d))
    })
}

pub(crate) fn block4_net(k: &Key<Block4Data>) -> Option<IpNet> {
    let d = k.data();
    IpNet::new(IpAddr::from([d[0], d[1], d[2], d[3]]), k.prefix_len() as u8)
}

pub(crate) fn net4(k: &Key<[u8; 4]>) -> Option<IpNet> {
    IpNet::new(IpAddr::from(k.data()), k.prefix_len() as u8)
}

pub(crate) fn net6(k: &Key<[u8; 16]>) -> Option<IpNet> {
    IpNet::new(IpAddr::from(k.data()), k.prefix_len() as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_masked_to_the_prefix() {
        assert_eq!(masked([198, 18, 7, 9], 24), [198, 18, 7, 0]);
        assert_eq!(masked([198, 19, 7, 9], 15), [198, 18, 0, 0]);
        assert_eq!(masked([1, 2, 3, 4], 0), [0, 0, 0, 0]);
        let n: IpNet = "2001:db8::1/32".parse().expect("net");
        assert_eq!(v6_key(&n).map(|k| k.data()), Some([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    }
}
