//! x86-64-v3 (AVX2 + FMA): 8 lanes in a `__m256`.

use core::arch::x86_64::*;

use crate::SimdLevel;

/// The `#[target_feature]` list of this level (`level_fn!` below repeats it literally; a test
/// checks both against the feature table in `level.rs`).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const TARGET_FEATURES: &str =
    "sse3,ssse3,cmpxchg16b,sse4.1,sse4.2,popcnt,fma,movbe,xsave,avx,f16c,bmi1,avx2,bmi2,lzcnt";

/// Compiles the items for this level.
macro_rules! level_fn {
    ($($i:item)*) => {
        $(
            #[target_feature(
                enable = "sse3,ssse3,cmpxchg16b,sse4.1,sse4.2,popcnt,fma,movbe,xsave,avx,f16c,bmi1,avx2,bmi2,lzcnt"
            )]
            $i
        )*
    };
}

/// This module's level.
pub(crate) const LEVEL: SimdLevel = SimdLevel::Avx2;
/// Lanes of [`V`].
pub(crate) const LANES: usize = 8;
/// Lowest exponent `scale` keeps (the bit path flushes below 2^-126).
pub(crate) const K_MIN: f32 = -127.0;
/// `exp2_kernel` goes through the clamped `exp2`.
pub(crate) const HAS_REDUCE: bool = false;
/// Whether [`fma`] rounds once (a true fused multiply-add).
pub(crate) const FUSED_FMA: bool = true;

/// 8 `f32` lanes.
#[derive(Clone, Copy, Debug)]
#[repr(transparent)]
pub(crate) struct V(__m256);

lane_ops!(
    V,
    _mm256_add_ps,
    _mm256_sub_ps,
    _mm256_mul_ps,
    _mm256_div_ps,
    _mm256_xor_ps,
    _mm256_set1_ps
);

/// Broadcast.
#[inline(always)]
pub(crate) fn splat(x: f32) -> V {
    // SAFETY: lane values exist only at their level (`x86_64` module docs).
    V(unsafe { _mm256_set1_ps(x) })
}

/// From an array of lanes.
#[inline(always)]
pub(crate) fn from_arr(a: [f32; LANES]) -> V {
    // SAFETY: `a` holds `LANES` floats.
    unsafe { load_at(a.as_ptr()) }
}

/// To an array of lanes.
#[inline(always)]
pub(crate) fn to_arr(v: V) -> [f32; LANES] {
    let mut a = [0.0f32; LANES];
    // SAFETY: `a` holds `LANES` writable floats.
    unsafe { store_at(a.as_mut_ptr(), v) };
    a
}

/// Loads `LANES` floats from `p` (no alignment needed).
///
/// # Safety
/// `p .. p + LANES` must be readable `f32`s.
#[inline(always)]
pub(crate) unsafe fn load_at(p: *const f32) -> V {
    // SAFETY: readable by the caller's contract; lane values exist only at their level.
    V(unsafe { _mm256_loadu_ps(p) })
}

/// Stores `v` as `LANES` floats at `p` (no alignment needed).
///
/// # Safety
/// `p .. p + LANES` must be writable `f32`s that nothing else accesses meanwhile.
#[inline(always)]
pub(crate) unsafe fn store_at(p: *mut f32, v: V) {
    // SAFETY: writable by the caller's contract; lane values exist only at their level.
    unsafe { _mm256_storeu_ps(p, v.0) }
}

/// `a * b + c`, fused.
#[inline(always)]
pub(crate) fn fma(a: V, b: V, c: V) -> V {
    // SAFETY: lane values exist only at their level (FMA is part of it).
    V(unsafe { _mm256_fmadd_ps(a.0, b.0, c.0) })
}

/// `max(lo, x)`, returning `x` when `x` is NaN (`maxps` returns its second operand then).
#[inline(always)]
pub(crate) fn max_keep(lo: V, x: V) -> V {
    // SAFETY: lane values exist only at their level.
    V(unsafe { _mm256_max_ps(lo.0, x.0) })
}

/// `min(hi, x)`, returning `x` when `x` is NaN.
#[inline(always)]
pub(crate) fn min_keep(hi: V, x: V) -> V {
    // SAFETY: lane values exist only at their level.
    V(unsafe { _mm256_min_ps(hi.0, x.0) })
}

/// `|x|`.
#[inline(always)]
pub(crate) fn abs(x: V) -> V {
    // SAFETY: lane values exist only at their level.
    V(unsafe { _mm256_andnot_ps(_mm256_set1_ps(-0.0), x.0) })
}

/// The square root of each lane (IEEE, correctly rounded; NaN for negative lanes).
#[inline(always)]
pub(crate) fn sqrt(x: V) -> V {
    // SAFETY: lane values exist only at their level.
    V(unsafe { _mm256_sqrt_ps(x.0) })
}

/// Rounds to the nearest integer, ties to even; NaN stays NaN.
#[inline(always)]
pub(crate) fn round_nearest(x: V) -> V {
    // SAFETY: lane values exist only at their level.
    V(unsafe { _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(x.0) })
}

/// `x - round(x)` (not used at this level: [`HAS_REDUCE`] is false).
#[inline(always)]
pub(crate) fn reduce(x: V) -> V {
    x - round_nearest(x)
}

/// `p * 2^k` for integral `k` in `[K_MIN, 128]` (`128` gives inf), through the exponent bits.
#[inline(always)]
pub(crate) fn scale(p: V, k: V) -> V {
    let k1 = min_keep(splat(127.0), k);
    scale_nonpos(p, k1) * ((k - k1) + splat(1.0))
}

/// `p * 2^k` through the exponent bits, for integral `k` in `[K_MIN, 127]`; named for its
/// callers outside [`scale`], whose `k` is never positive (where [`scale`]'s factor
/// `(k - min(127, k)) + 1` is exactly 1: the same bits, four operations fewer).
#[inline(always)]
pub(crate) fn scale_nonpos(p: V, k: V) -> V {
    // SAFETY: lane values exist only at their level.
    let pow = V(unsafe {
        let ki = _mm256_cvttps_epi32(k.0);
        _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
            ki,
            _mm256_set1_epi32(127),
        )))
    });
    p * pow
}

/// The lanes of `v` in reverse order.
#[inline(always)]
pub(crate) fn reverse(v: V) -> V {
    // SAFETY: lane values exist only at their level.
    V(unsafe { _mm256_permutevar8x32_ps(v.0, _mm256_set_epi32(0, 1, 2, 3, 4, 5, 6, 7)) })
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

/// Transposes an 8 x 8 block in place.
#[inline(always)]
pub(crate) fn transpose(m: &mut [V; LANES]) {
    // SAFETY: lane values exist only at their level; register shuffles only.
    unsafe {
        let t0 = _mm256_unpacklo_ps(m[0].0, m[1].0);
        let t1 = _mm256_unpackhi_ps(m[0].0, m[1].0);
        let t2 = _mm256_unpacklo_ps(m[2].0, m[3].0);
        let t3 = _mm256_unpackhi_ps(m[2].0, m[3].0);
        let t4 = _mm256_unpacklo_ps(m[4].0, m[5].0);
        let t5 = _mm256_unpackhi_ps(m[4].0, m[5].0);
        let t6 = _mm256_unpacklo_ps(m[6].0, m[7].0);
        let t7 = _mm256_unpackhi_ps(m[6].0, m[7].0);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        m[0] = V(_mm256_permute2f128_ps::<0x20>(u0, u4));
        m[1] = V(_mm256_permute2f128_ps::<0x20>(u1, u5));
        m[2] = V(_mm256_permute2f128_ps::<0x20>(u2, u6));
        m[3] = V(_mm256_permute2f128_ps::<0x20>(u3, u7));
        m[4] = V(_mm256_permute2f128_ps::<0x31>(u0, u4));
        m[5] = V(_mm256_permute2f128_ps::<0x31>(u1, u5));
        m[6] = V(_mm256_permute2f128_ps::<0x31>(u2, u6));
        m[7] = V(_mm256_permute2f128_ps::<0x31>(u3, u7));
    }
}

/// Hints that the line holding `p` will be read soon (into L2); any address is fine.
#[inline(always)]
pub(crate) fn prefetch(p: *const f32) {
    // SAFETY: `prefetcht1` never faults and changes no memory, whatever the address.
    unsafe { _mm_prefetch::<_MM_HINT_T1>(p.cast::<i8>()) }
}

#[allow(clippy::duplicate_mod)]
#[path = "../../generic/mod.rs"]
pub(crate) mod g;
