//! Comparisons as 0/1 words, without jumps.
//!
//! BPF has no set-on-condition instruction: LLVM turns every comparison it makes into a bool
//! with a conditional jump, and the verifier walks each side of each jump as a path of its own.
//! A rule match of a dozen comparisons made that way was hundreds of paths for each rule (72,000
//! processed instructions for the rule walk on 6.18). These functions give the same answers
//! with arithmetic the verifier walks once: on the BPF target as inline assembly, which LLVM
//! cannot turn back into a comparison; elsewhere as the same formula in Rust, which the unit
//! tests check against the comparison it stands for.

/// 1 when `x` is not zero, else 0: the sign bit of `x | -x`.
#[inline(always)]
pub fn nonzero(x: u64) -> u64 {
    #[cfg(target_arch = "bpf")]
    {
        let r: u64;
        // SAFETY: arithmetic on registers only.
        unsafe {
            core::arch::asm!(
                "{r} = {x}",
                "{r} = -{r}",
                "{r} |= {x}",
                "{r} >>= 63",
                x = in(reg) x,
                r = out(reg) r,
                options(pure, nomem, nostack),
            )
        };
        r
    }
    #[cfg(not(target_arch = "bpf"))]
    {
        (x | x.wrapping_neg()) >> 63
    }
}

/// `x & mask`, computed even where LLVM can prove that it is `x`. The verifier bounds the
/// result by `mask`, in the register that holds it and in any copy LLVM spills from it;
/// a comparison bounds only the register compared (and, before kernel 6.x, not a copy spilled
/// before it).
#[inline(always)]
pub fn masked(x: u64, mask: u64) -> u64 {
    #[cfg(target_arch = "bpf")]
    {
        let r: u64;
        // SAFETY: arithmetic on registers only.
        unsafe {
            core::arch::asm!(
                "{r} = {x}",
                "{r} &= {m}",
                x = in(reg) x,
                m = in(reg) mask,
                r = out(reg) r,
                options(pure, nomem, nostack),
            )
        };
        r
    }
    #[cfg(not(target_arch = "bpf"))]
    {
        x & mask
    }
}

/// 1 when `a == b`, else 0.
#[inline(always)]
pub fn eq(a: u64, b: u64) -> u64 {
    nonzero(a ^ b) ^ 1
}

/// 1 when `a < b`, else 0: the borrow out of `a - b`, the sign bit of
/// `(!a & b) | ((!a | b) & (a - b))` (Hacker's Delight, 2-12).
#[inline(always)]
pub fn lt(a: u64, b: u64) -> u64 {
    #[cfg(target_arch = "bpf")]
    {
        let r: u64;
        // SAFETY: arithmetic on registers only.
        unsafe {
            core::arch::asm!(
                "{n} = {a}",
                "{n} ^= -1",
                "{r} = {n}",
                "{r} &= {b}",
                "{n} |= {b}",
                "{d} = {a}",
                "{d} -= {b}",
                "{n} &= {d}",
                "{r} |= {n}",
                "{r} >>= 63",
                a = in(reg) a,
                b = in(reg) b,
                n = out(reg) _,
                d = out(reg) _,
                r = out(reg) r,
                options(pure, nomem, nostack),
            )
        };
        r
    }
    #[cfg(not(target_arch = "bpf"))]
    {
        ((!a & b) | ((!a | b) & a.wrapping_sub(b))) >> 63
    }
}

/// 1 when `a <= b`, else 0.
#[inline(always)]
pub fn le(a: u64, b: u64) -> u64 {
    lt(b, a) ^ 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const EDGES: [u64; 13] =
        [0, 1, 2, 3, 0x7f, 0xffff, 0xfffe, 1 << 32, (1 << 63) - 1, 1 << 62, 1 << 63, u64::MAX - 1, u64::MAX];

    #[test]
    fn nonzero_is_the_comparison() {
        for x in EDGES {
            assert_eq!(nonzero(x), u64::from(x != 0), "{x:#x}");
        }
    }

    #[test]
    fn eq_lt_le_are_the_comparisons() {
        for a in EDGES {
            for b in EDGES {
                assert_eq!(eq(a, b), u64::from(a == b), "{a:#x} == {b:#x}");
                assert_eq!(lt(a, b), u64::from(a < b), "{a:#x} < {b:#x}");
                assert_eq!(le(a, b), u64::from(a <= b), "{a:#x} <= {b:#x}");
            }
        }
    }
}
