//! BPF arrays made with BPF_F_MMAPABLE, mapped into user space's memory.

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    ptr::NonNull,
};

use aya::maps::{Map, MapData, MapError};

#[derive(Debug, thiserror::Error)]
pub enum MmapError {
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error("map {name}: not an mmap-able array of {slots} slots")]
    Layout { name: &'static str, slots: u32 },
    #[error("map {name}: mmap: {source}")]
    Mmap {
        name: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// A BPF array made with BPF_F_MMAPABLE (AUTOBLOCK, PROBATION), mapped into memory as its
/// values of `T`: reading or editing it is a memory access, not a system call per value. The
/// mapping starts on a page, so values keep the alignment they have in the kernel.
pub struct Mapped<T> {
    base: NonNull<T>,
    entries: u32,
    bytes: usize,
}

impl<T> Mapped<T> {
    /// Maps `data`, which must be an array of `entries` values of `T` (else a layout error
    /// naming `name`), shared with the kernel, writable or read-only.
    pub fn new(data: &MapData, name: &'static str, entries: u32, writable: bool) -> Result<Self, MmapError> {
        let layout = MmapError::Layout { name, slots: entries };
        let info = data.info().map_err(|source| MmapError::Map { name, source })?;
        if info.max_entries() != entries || info.value_size() as usize != size_of::<T>() {
            return Err(layout);
        }
        // SAFETY: sysconf has no memory-safety preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let bytes = (entries as usize * size_of::<T>()).div_ceil(page) * page;
        let prot = if writable { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_READ };
        // SAFETY: a shared mapping of the map's fd; the kernel checks the size and BPF_F_MMAPABLE.
        let p = unsafe {
            libc::mmap(std::ptr::null_mut(), bytes, prot, libc::MAP_SHARED, data.fd().as_fd().as_raw_fd(), 0)
        };
        if p == libc::MAP_FAILED {
            return Err(MmapError::Mmap { name, source: std::io::Error::last_os_error() });
        }
        let base = NonNull::new(p.cast::<T>()).ok_or(layout)?;
        Ok(Self { base, entries, bytes })
    }

    /// Value `i`, inside the mapping.
    pub fn ptr(&self, i: u32) -> *mut T {
        assert!(i < self.entries, "value {i} of {}", self.entries);
        // SAFETY: i < entries, inside the mapping.
        unsafe { self.base.as_ptr().add(i as usize) }
    }

    /// A copy of value `i` (the kernel may be writing it: a torn copy is possible).
    pub fn get(&self, i: u32) -> T {
        // SAFETY: inside the mapping, aligned (page-aligned base, values of T in a row).
        unsafe { std::ptr::read_volatile(self.ptr(i)) }
    }
}

impl<T> Drop for Mapped<T> {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.bytes) };
    }
}

/// Maps the mmapable BPF array `name` ([`Mapped::new`]), or the layout error naming it.
pub fn map_array<T>(map: &Map, name: &'static str, entries: u32, writable: bool) -> Result<Mapped<T>, MmapError> {
    match map {
        Map::Array(data) => Mapped::new(data, name, entries, writable),
        _ => Err(MmapError::Layout { name, slots: entries }),
    }
}
