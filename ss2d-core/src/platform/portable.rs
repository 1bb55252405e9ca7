//! The portable level: `wide`'s 8-lane `f32x8`, whose instructions are chosen at compile time
//! (SSE2 on the x86-64 baseline, NEON on aarch64, plain scalar code on targets without vector
//! lanes such as Cortex-M). Its lane operations also serve the NEON level (`aarch64.rs`).

use crate::SimdLevel;

/// One register of lanes.
pub(crate) type V = wide::f32x8;
/// Integer twin of [`V`] (the exponent-bit path of `scale`).
type I = wide::i32x8;
/// Lanes of [`V`].
pub(crate) const LANES: usize = 8;
/// Lowest exponent `scale` keeps: the bit path flushes results below 2^-126 to zero.
pub(crate) const K_MIN: f32 = -127.0;
/// `reduce` is not a single instruction here: `exp2_kernel` goes through the clamped `exp2`.
pub(crate) const HAS_REDUCE: bool = false;
/// Whether [`fma`] rounds once (a true fused multiply-add).
pub(crate) const FUSED_FMA: bool = cfg!(target_arch = "aarch64");

/// This module's level.
#[cfg_attr(target_arch = "aarch64", allow(dead_code))]
pub(crate) const LEVEL: SimdLevel = SimdLevel::Baseline;

/// Broadcast.
#[inline(always)]
pub(crate) fn splat(x: f32) -> V {
    V::splat(x)
}

/// From an array of lanes.
#[inline(always)]
pub(crate) fn from_arr(a: [f32; LANES]) -> V {
    V::new(a)
}

/// To an array of lanes.
#[inline(always)]
pub(crate) fn to_arr(v: V) -> [f32; LANES] {
    v.to_array()
}

/// Loads `LANES` floats from `p` (no alignment needed).
///
/// # Safety
/// `p .. p + LANES` must be readable `f32`s.
#[inline(always)]
pub(crate) unsafe fn load_at(p: *const f32) -> V {
    // SAFETY: the caller guarantees `LANES` readable floats; `V` is plain data of exactly that
    // size and `read_unaligned` has no alignment requirement.
    unsafe { p.cast::<V>().read_unaligned() }
}

/// Stores `v` as `LANES` floats at `p` (no alignment needed).
///
/// # Safety
/// `p .. p + LANES` must be writable `f32`s that nothing else accesses meanwhile.
#[inline(always)]
pub(crate) unsafe fn store_at(p: *mut f32, v: V) {
    // SAFETY: as for `load_at`, for writes.
    unsafe { p.cast::<V>().write_unaligned(v) }
}

/// `a * b + c`, fused where the target has FMA compiled in (NEON, x86 builds with `fma`).
#[inline(always)]
pub(crate) fn fma(a: V, b: V, c: V) -> V {
    a.mul_add(b, c)
}

/// `max(lo, x)`, returning `x` when `x` is NaN (by comparison, not by the target's `max`,
/// whose NaN rule differs between x86 and NEON).
#[inline(always)]
pub(crate) fn max_keep(lo: V, x: V) -> V {
    x.simd_lt(lo).select(lo, x)
}

/// `min(hi, x)`, returning `x` when `x` is NaN.
#[inline(always)]
pub(crate) fn min_keep(hi: V, x: V) -> V {
    x.simd_gt(hi).select(hi, x)
}

/// `|x|`.
#[inline(always)]
pub(crate) fn abs(x: V) -> V {
    x.abs()
}

/// The square root of each lane (IEEE, correctly rounded; NaN for negative lanes).
#[inline(always)]
pub(crate) fn sqrt(x: V) -> V {
    x.sqrt()
}

/// Rounds to the nearest integer (ties to even) for `|x| < 2^22`; NaN stays NaN.
#[inline(always)]
pub(crate) fn round_nearest(x: V) -> V {
    const M: f32 = 12_582_912.0; // 1.5 * 2^23
    (x + splat(M)) - splat(M)
}

/// `x - round(x)` (only used where [`HAS_REDUCE`]).
#[inline(always)]
pub(crate) fn reduce(x: V) -> V {
    x - round_nearest(x)
}

/// `p * 2^k` for integral `k` in `[K_MIN, 128]` (`128` gives inf).
#[inline(always)]
pub(crate) fn scale(p: V, k: V) -> V {
    // k = -127 gives the bit pattern 0, so results below 2^-126 flush to 0. k = 128 is applied
    // as 2^127 * 2 so that p < 1 still gives a finite result.
    let k1 = min_keep(splat(127.0), k);
    scale_nonpos(p, k1) * ((k - k1) + splat(1.0))
}

/// `p * 2^k` through the exponent bits, for integral `k` in `[K_MIN, 127]`; named for its
/// callers outside [`scale`], whose `k` is never positive (where [`scale`]'s factor is exactly
/// 1: the same bits, three operations fewer).
#[inline(always)]
pub(crate) fn scale_nonpos(p: V, k: V) -> V {
    let ki: I = k.fast_trunc_int();
    p * bytemuck::cast::<I, V>((ki + I::splat(127)) << 23)
}

/// The lanes of `v` in reverse order.
#[inline(always)]
pub(crate) fn reverse(v: V) -> V {
    let mut a = v.to_array();
    a.reverse();
    V::new(a)
}

/// Stores the `8 x LANES` block whose rows are `rows` transposed: column `c < cols` (its 8
/// values, rows 0 to 7) at `dst + c * cs`.
///
/// # Safety
/// `dst + c * cs .. + 8` must be writable for every `c < cols`.
#[inline(always)]
pub(crate) unsafe fn store_cols8(rows: &[V; 8], dst: *mut f32, cs: usize, cols: usize) {
    for (r, &v) in rows.iter().enumerate() {
        for (c, &x) in to_arr(v).iter().enumerate().take(cols) {
            // SAFETY: `c < cols` and `r < 8`: writable by the caller's contract.
            unsafe { *dst.add(c * cs + r) = x };
        }
    }
}

/// Transposes a `LANES x LANES` block in place.
#[inline(always)]
pub(crate) fn transpose(m: &mut [V; LANES]) {
    *m = V::transpose(*m);
}

/// Hints that the line holding `p` will be read soon (into L2); any address is fine.
#[inline(always)]
pub(crate) fn prefetch(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht1` (SSE, part of the x86-64 baseline) never faults and changes no
    // memory, whatever the address.
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
        _mm_prefetch::<_MM_HINT_T1>(p.cast::<i8>())
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// No target features beyond the build's: the items are left as they are.
#[cfg(not(target_arch = "aarch64"))]
macro_rules! level_fn {
    ($($i:item)*) => { $($i)* };
}

#[cfg(not(target_arch = "aarch64"))]
#[allow(clippy::duplicate_mod)]
#[path = "../generic/mod.rs"]
pub(crate) mod g;
