//! Zeroing that the BPF backend keeps as plain stores.
//!
//! LLVM turns a run of zero stores into a `memset` call; for the BPF target that becomes
//! compiler_builtins' byte loop, which the verifier walks byte by byte (it pushed the program
//! past the one-million-instruction limit). Volatile word stores cannot be merged.

/// Zeroes `*v` with 8-byte volatile stores. `T` must be a multiple of 8 bytes in size, 8-aligned
/// at the given address (checked at compile time for the size), and valid when all-zero.
#[inline(always)]
pub fn words<T>(v: &mut T) {
    const { assert!(size_of::<T>().is_multiple_of(8)) };
    let p = (v as *mut T).cast::<u64>();
    let n = size_of::<T>() / 8;
    for i in 0..n {
        // SAFETY: i < n words lie inside *v; the callers' types are plain integers and arrays,
        // valid when zero, and at least 4-aligned in maps (BPF allows unaligned-to-8 stores on
        // map values and the host has no alignment trap for u64 either).
        unsafe { core::ptr::write_volatile(p.add(i), 0) };
    }
}

/// Sets every element of a small array with volatile stores.
#[inline(always)]
pub fn fill<T: Copy, const N: usize>(a: &mut [T; N], v: T) {
    let p = a.as_mut_ptr();
    for i in 0..N {
        // SAFETY: i < N.
        unsafe { core::ptr::write_volatile(p.add(i), v) };
    }
}

/// Copies `src` into `dst` with 4-byte volatile stores: LLVM would turn a copy loop into a
/// `memmove` call, for the BPF target a subprogram with a byte loop.
#[inline(always)]
pub fn copy_words<const N: usize>(dst: &mut [u32; N], src: &[u32; N]) {
    let d = dst.as_mut_ptr();
    for (i, v) in src.iter().enumerate() {
        // SAFETY: i < N.
        unsafe { core::ptr::write_volatile(d.add(i), *v) };
    }
}

/// Stores `v` with a volatile store: a run of zero stores to small neighbouring fields would
/// otherwise become a `memset` call.
#[inline(always)]
pub fn put<T: Copy>(dst: &mut T, v: T) {
    // SAFETY: dst is a valid, aligned, exclusive reference.
    unsafe { core::ptr::write_volatile(dst, v) };
}

#[cfg(test)]
mod tests {
    #[test]
    fn zeroes_everything() {
        let mut a = [0xffu64; 5];
        super::words(&mut a);
        assert_eq!(a, [0; 5]);
        let mut b = [7u16; 3];
        super::fill(&mut b, 0);
        assert_eq!(b, [0; 3]);
        let mut c = 9u8;
        super::put(&mut c, 0);
        assert_eq!(c, 0);
    }
}
