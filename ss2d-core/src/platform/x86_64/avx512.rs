//! x86-64-v4 (AVX-512 F/BW/CD/DQ/VL): 16 lanes in a `__m512`.

use core::arch::x86_64::*;

use crate::SimdLevel;

/// The `#[target_feature]` list of this level (`level_fn!` below repeats it literally; a test
/// checks both against the feature table in `level.rs`).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const TARGET_FEATURES: &str = "sse3,ssse3,cmpxchg16b,sse4.1,sse4.2,popcnt,fma,movbe,xsave,avx,f16c,bmi1,avx2,bmi2,lzcnt,avx512f,avx512dq,avx512cd,avx512bw,avx512vl";

/// Compiles the items for this level.
macro_rules! level_fn {
    ($($i:item)*) => {
        $(
            #[target_feature(
                enable = "sse3,ssse3,cmpxchg16b,sse4.1,sse4.2,popcnt,fma,movbe,xsave,avx,f16c,bmi1,avx2,bmi2,lzcnt,avx512f,avx512dq,avx512cd,avx512bw,avx512vl"
            )]
            $i
        )*
    };
}

/// This module's level.
pub(crate) const LEVEL: SimdLevel = SimdLevel::Avx512;
/// Lanes of [`V`].
pub(crate) const LANES: usize = 16;
/// Lowest exponent `scale` keeps: `scalef` underflows gradually (subnormals).
pub(crate) const K_MIN: f32 = -160.0;
/// `reduce` is one instruction (`vreduceps`): `exp2_kernel` needs no clamp.
pub(crate) const HAS_REDUCE: bool = true;
/// Whether [`fma`] rounds once (a true fused multiply-add).
pub(crate) const FUSED_FMA: bool = true;

/// 16 `f32` lanes.
#[derive(Clone, Copy, Debug)]
#[repr(transparent)]
pub(crate) struct V(__m512);

lane_ops!(
    V,
    _mm512_add_ps,
    _mm512_sub_ps,
    _mm512_mul_ps,
    _mm512_div_ps,
    _mm512_xor_ps,
    _mm512_set1_ps
);

/// Broadcast.
#[inline(always)]
pub(crate) fn splat(x: f32) -> V {
    // SAFETY: lane values exist only at their level (`x86_64` module docs).
    V(unsafe { _mm512_set1_ps(x) })
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
    V(unsafe { _mm512_loadu_ps(p) })
}

/// Stores `v` as `LANES` floats at `p` (no alignment needed).
///
/// # Safety
/// `p .. p + LANES` must be writable `f32`s that nothing else accesses meanwhile.
#[inline(always)]
pub(crate) unsafe fn store_at(p: *mut f32, v: V) {
    // SAFETY: writable by the caller's contract; lane values exist only at their level.
    unsafe { _mm512_storeu_ps(p, v.0) }
}

/// `a * b + c`, fused.
#[inline(always)]
pub(crate) fn fma(a: V, b: V, c: V) -> V {
    // SAFETY: lane values exist only at their level.
    V(unsafe { _mm512_fmadd_ps(a.0, b.0, c.0) })
}

/// `max(lo, x)`, returning `x` when `x` is NaN (`vmaxps` returns its second operand then).
#[inline(always)]
pub(crate) fn max_keep(lo: V, x: V) -> V {
    // SAFETY: lane values exist only at their level.
    V(unsafe { _mm512_max_ps(lo.0, x.0) })
}

/// `min(hi, x)`, returning `x` when `x` is NaN.
#[inline(always)]
pub(crate) fn min_keep(hi: V, x: V) -> V {
    // SAFETY: lane values exist only at their level.
    V(unsafe { _mm512_min_ps(hi.0, x.0) })
}

/// `|x|`.
#[inline(always)]
pub(crate) fn abs(x: V) -> V {
    // SAFETY: lane values exist only at their level.
    V(unsafe { _mm512_abs_ps(x.0) })
}

/// The square root of each lane (IEEE, correctly rounded; NaN for negative lanes).
#[inline(always)]
pub(crate) fn sqrt(x: V) -> V {
    // SAFETY: lane values exist only at their level.
    V(unsafe { _mm512_sqrt_ps(x.0) })
}

/// Rounds to the nearest integer, ties to even; NaN stays NaN.
#[inline(always)]
pub(crate) fn round_nearest(x: V) -> V {
    // SAFETY: lane values exist only at their level.
    V(unsafe { _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(x.0) })
}

/// `x - round(x)` in one instruction (`vreduceps`); `±0` for `±inf`, NaN for NaN.
#[inline(always)]
pub(crate) fn reduce(x: V) -> V {
    // SAFETY: lane values exist only at their level (AVX-512 DQ is part of it).
    V(unsafe { _mm512_reduce_ps::<0x08>(x.0) })
}

/// `p * 2^k` (`vscalefps`: overflow to inf, gradual underflow, any integral `k`).
#[inline(always)]
pub(crate) fn scale(p: V, k: V) -> V {
    // SAFETY: lane values exist only at their level.
    V(unsafe { _mm512_scalef_ps(p.0, k.0) })
}

/// `p * 2^k` for integral `k <= 0`: [`scale`] itself (one instruction at this level).
#[inline(always)]
pub(crate) fn scale_nonpos(p: V, k: V) -> V {
    scale(p, k)
}

/// The lanes of `v` in reverse order.
#[inline(always)]
pub(crate) fn reverse(v: V) -> V {
    // SAFETY: lane values exist only at their level.
    V(unsafe {
        let idx = _mm512_set_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        _mm512_permutexvar_ps(idx, v.0)
    })
}

/// The first two rounds of a transpose of the 8 rows `r`: the 4 x 4 blocks within each
/// 128-bit lane transposed, `u[j]` holding column `4 l + j` of rows 0-3 in lane `l`, `u[j + 4]`
/// the same of rows 4-7 (16 shuffles).
///
/// # Safety
/// Only at this level (AVX-512 F), as every lane operation.
#[inline(always)]
unsafe fn quads(r: &[__m512; 8]) -> [__m512; 8] {
    // SAFETY: lane values exist only at their level; register shuffles only.
    unsafe {
        let t0 = _mm512_unpacklo_ps(r[0], r[1]);
        let t1 = _mm512_unpackhi_ps(r[0], r[1]);
        let t2 = _mm512_unpacklo_ps(r[2], r[3]);
        let t3 = _mm512_unpackhi_ps(r[2], r[3]);
        let t4 = _mm512_unpacklo_ps(r[4], r[5]);
        let t5 = _mm512_unpackhi_ps(r[4], r[5]);
        let t6 = _mm512_unpacklo_ps(r[6], r[7]);
        let t7 = _mm512_unpackhi_ps(r[6], r[7]);
        [
            _mm512_shuffle_ps::<0x44>(t0, t2),
            _mm512_shuffle_ps::<0xEE>(t0, t2),
            _mm512_shuffle_ps::<0x44>(t1, t3),
            _mm512_shuffle_ps::<0xEE>(t1, t3),
            _mm512_shuffle_ps::<0x44>(t4, t6),
            _mm512_shuffle_ps::<0xEE>(t4, t6),
            _mm512_shuffle_ps::<0x44>(t5, t7),
            _mm512_shuffle_ps::<0xEE>(t5, t7),
        ]
    }
}

/// Stores the `8 x 16` block whose rows are `rows` transposed: column `c < cols` (its 8
/// values, rows 0 to 7) at `dst + c * cs`. Three rounds of register shuffles (24 in all), then
/// 256-bit stores.
///
/// # Safety
/// `dst + c * cs .. + 8` must be writable for every `c < cols`.
#[inline(always)]
pub(crate) unsafe fn store_cols8(rows: &[V; 8], dst: *mut f32, cs: usize, cols: usize) {
    // SAFETY: lane values exist only at their level; register shuffles, then stores of 8
    // floats at the addresses the caller vouches for.
    unsafe {
        // `u[j]` (rows 0-3) and `u[j + 4]` (rows 4-7): column `4 l + j` in 128-bit lane `l`.
        let u = quads(&rows.map(|v| v.0));
        // Lanes (a0 b0 a1 b1) and (a2 b2 a3 b3): columns (j, 4 + j) and (8 + j, 12 + j).
        let lo = _mm512_set_epi32(23, 22, 21, 20, 7, 6, 5, 4, 19, 18, 17, 16, 3, 2, 1, 0);
        let hi = _mm512_set_epi32(31, 30, 29, 28, 15, 14, 13, 12, 27, 26, 25, 24, 11, 10, 9, 8);
        for j in 0..4 {
            let a = _mm512_permutex2var_ps(u[j], lo, u[j + 4]);
            let b = _mm512_permutex2var_ps(u[j], hi, u[j + 4]);
            let halves = [
                (j, _mm512_castps512_ps256(a)),
                (4 + j, _mm512_extractf32x8_ps::<1>(a)),
                (8 + j, _mm512_castps512_ps256(b)),
                (12 + j, _mm512_extractf32x8_ps::<1>(b)),
            ];
            for (c, h) in halves {
                if c < cols {
                    _mm256_storeu_ps(dst.add(c * cs), h);
                }
            }
        }
    }
}

/// Transposes a 16 x 16 block in place.
#[inline(always)]
pub(crate) fn transpose(m: &mut [V; LANES]) {
    macro_rules! r {
        ($i:expr) => {
            m[$i].0
        };
    }
    // SAFETY: lane values exist only at their level; register shuffles only.
    unsafe {
        let lo = quads(&core::array::from_fn(|i| r!(i)));
        let hi = quads(&core::array::from_fn(|i| r!(8 + i)));
        let u: [__m512; 16] = core::array::from_fn(|i| if i < 8 { lo[i] } else { hi[i - 8] });
        macro_rules! out {
            ($j:literal) => {
                let x = _mm512_shuffle_f32x4::<0x88>(u[$j], u[4 + $j]);
                let y = _mm512_shuffle_f32x4::<0xDD>(u[$j], u[4 + $j]);
                let x2 = _mm512_shuffle_f32x4::<0x88>(u[8 + $j], u[12 + $j]);
                let y2 = _mm512_shuffle_f32x4::<0xDD>(u[8 + $j], u[12 + $j]);
                m[$j] = V(_mm512_shuffle_f32x4::<0x88>(x, x2));
                m[8 + $j] = V(_mm512_shuffle_f32x4::<0xDD>(x, x2));
                m[4 + $j] = V(_mm512_shuffle_f32x4::<0x88>(y, y2));
                m[12 + $j] = V(_mm512_shuffle_f32x4::<0xDD>(y, y2));
            };
        }
        out!(0);
        out!(1);
        out!(2);
        out!(3);
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
