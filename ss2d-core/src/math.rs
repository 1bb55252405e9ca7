//! Vector `exp`, `softplus` and `silu` on [`V`] lanes, with their error bounds.
//!
//! `exp2(x) = 2^k * p(f)`, `k = round(x)`, `f = x - k` in `[-0.5, 0.5]`, and
//! `p(f) = 1 + f * q(f)` with `q` a degree-4 minimax polynomial (Lawson-fitted for *relative*
//! error). Because of that form, `exp2(0) = 1` exactly and the relative error near 0 shrinks
//! with `|f|`: in trained models `dA = exp(dt * A)` sits close to 1 and a constant relative bias
//! per step would compound over the ~`1/(1 - dA)` steps of memory. Measured (tests in this module,
//! against f64): relative error <= 2.5e-7 for `exp2` over `[-126, 127]`, <= 4e-7 for `exp`; results
//! below 2^-126 flush to 0 (absolute error < 1.2e-38); overflow gives `+inf`; NaN propagates.
//!
//! `softplus(x) = max(x, 0) + log1p(exp(-|x|))`, `log1p(t) = t * r(t)` on `t` in `[0, 1]` with `r` a
//! degree-7 minimax polynomial: relative error <= 1e-6 over the whole line (the torch threshold at
//! 20 is not needed: above it the correction is below half an ulp). `silu(z) = z / (1 + exp(-z))`,
//! relative error <= 1e-6.
#![allow(clippy::excessive_precision)] // coefficients carry every digit of their f32 fit

#[cfg(not(target_feature = "avx512f"))]
use crate::simd::I;
use crate::simd::{fma, round_nearest, splat, V};

const LOG2E: f32 = core::f32::consts::LOG2_E;

// 2^f = 1 + f*(C1 + f*(C2 + f*(C3 + f*(C4 + f*C5)))) on [-0.5, 0.5].
const E1: f32 = 0.693_147_003_650_665_3;
const E2: f32 = 0.240_222_424_268_722_53;
const E3: f32 = 0.055_507_335_811_853_41;
const E4: f32 = 0.009_671_512_991_189_957;
const E5: f32 = 0.001_326_472_731_307_149;

// log1p(t) = t*(L1 + t*(L2 + ... + t*L8)) on [0, 1].
const L1: f32 = 0.999_999_821_186_065_7;
const L2: f32 = -0.499_974_042_177_200_3;
const L3: f32 = 0.332_754_790_782_928_47;
const L4: f32 = -0.244_954_600_930_213_93;
const L5: f32 = 0.177_452_355_623_245_24;
const L6: f32 = -0.107_681_632_041_931_15;
const L7: f32 = 0.044_089_574_366_807_94;
const L8: f32 = -0.008_539_192_378_520_966;

/// Lowest exponent kept: with AVX-512 `scalef` underflows gradually (subnormals), the bit path
/// of other levels flushes results below 2^-126 to zero.
#[cfg(target_feature = "avx512f")]
const K_MIN: f32 = -160.0;
#[cfg(not(target_feature = "avx512f"))]
const K_MIN: f32 = -127.0;

/// `2^f` for `f` in `[-0.5, 0.5]`, in the form `1 + f * q(f)`.
#[inline(always)]
fn exp2_reduced(f: V) -> V {
    let q = fma(f, splat(E5), splat(E4));
    let q = fma(f, q, splat(E3));
    let q = fma(f, q, splat(E2));
    let q = fma(f, q, splat(E1));
    fma(f, q, splat(1.0))
}

/// `2^x` on lanes (module docs for the bound).
#[inline(always)]
pub fn exp2(x: V) -> V {
    // Clamp keeping NaN: x86 max/min return the second operand when either is NaN.
    let x = splat(128.0).fast_min(splat(K_MIN).fast_max(x));
    let k = round_nearest(x);
    scale(exp2_reduced(x - k), k)
}

/// `2^x` for the kernel's `dt * A2`, for every `x`: `-inf -> 0`, `+inf -> inf`, NaN -> NaN.
///
/// With AVX-512 (F + DQ) this is `scalef(p(f), x - f)`, `f = reduce(x)`: `vreducepx` returns
/// `x - round(x)` (and `±0` for `±inf`) and `scalef` handles overflow and gradual underflow, so
/// no clamp is needed in the innermost loop. Other levels use the clamped [`exp2`].
#[inline(always)]
pub(crate) fn exp2_kernel(x: V) -> V {
    #[cfg(all(target_feature = "avx512f", target_feature = "avx512dq"))]
    {
        use core::arch::x86_64::{__m512, _mm512_reduce_ps};
        let xm: __m512 = x.into();
        // SAFETY: compiled only with avx512f and avx512dq enabled for the whole build, so the
        // instruction exists on every CPU this runs on; it only computes on registers.
        let f: V = unsafe { _mm512_reduce_ps::<0x08>(xm) }.into();
        // `x - f` is `round(x)` exactly (`f = x - round(x)` is exact), and for `±inf` (`f = 0`)
        // it is `±inf` again: one subtraction instead of a second rounding instruction.
        scale(exp2_reduced(f), x - f)
    }
    #[cfg(not(all(target_feature = "avx512f", target_feature = "avx512dq")))]
    {
        exp2(x)
    }
}

/// `p * 2^k` for integral `k` in `[K_MIN, 128]` (`128` gives inf).
#[inline(always)]
fn scale(p: V, k: V) -> V {
    #[cfg(target_feature = "avx512f")]
    {
        use core::arch::x86_64::{__m512, _mm512_scalef_ps};
        let (pm, km): (__m512, __m512) = (p.into(), k.into());
        // SAFETY: this block is compiled only with avx512f enabled for the whole build
        // (`cfg(target_feature = "avx512f")`), so the instruction exists on every CPU it runs on.
        unsafe { _mm512_scalef_ps(pm, km) }.into()
    }
    #[cfg(not(target_feature = "avx512f"))]
    {
        // k = -127 gives the bit pattern 0, so results below 2^-126 flush to 0. k = 128 is
        // applied as 2^127 * 2 so that p < 1 still gives a finite result.
        let k1 = splat(127.0).fast_min(k);
        let ki: I = k1.fast_trunc_int();
        let bits = (ki + I::splat(127)) << 23;
        p * bytemuck::cast::<I, V>(bits) * ((k - k1) + splat(1.0))
    }
}

const LN2_HI: f32 = 0.693_145_751_953_125;
const LN2_LO: f32 = 1.428_606_765_330_187e-6;

/// `e^x` on lanes, with Cody-Waite reduction (`x - k ln2` in two parts) so the relative error
/// does not grow with `|x|`.
#[inline(always)]
pub fn exp(x: V) -> V {
    let lo = K_MIN * core::f32::consts::LN_2;
    let x = splat(128.0 * core::f32::consts::LN_2).fast_min(splat(lo).fast_max(x));
    let k = round_nearest(x * splat(LOG2E));
    let r = fma(k, splat(-LN2_HI), x);
    let r = fma(k, splat(-LN2_LO), r);
    scale(exp2_reduced(r * splat(LOG2E)), k)
}

/// `log1p(t)` for `t` in `[0, 1]`.
#[inline(always)]
fn log1p_unit(t: V) -> V {
    // Estrin's scheme: two more operations than Horner's, half the dependency chain (the
    // softplus is latency-bound in the driver's packing loop).
    let t2 = t * t;
    let t4 = t2 * t2;
    let p12 = fma(t, splat(L2), splat(L1));
    let p34 = fma(t, splat(L4), splat(L3));
    let p56 = fma(t, splat(L6), splat(L5));
    let p78 = fma(t, splat(L8), splat(L7));
    let q0 = fma(t2, p34, p12);
    let q1 = fma(t2, p78, p56);
    t * fma(t4, q1, q0)
}

/// [`exp`] for `x <= 0` (or NaN), without the upper clamp.
#[inline(always)]
fn exp_nonpos(x: V) -> V {
    let x = splat(K_MIN * core::f32::consts::LN_2).fast_max(x);
    let k = round_nearest(x * splat(LOG2E));
    let r = fma(k, splat(-LN2_HI), x);
    let r = fma(k, splat(-LN2_LO), r);
    scale(exp2_reduced(r * splat(LOG2E)), k)
}

/// `softplus(x) = ln(1 + e^x)` on lanes.
#[inline(always)]
pub fn softplus(x: V) -> V {
    softplus_finish(x, softplus_exp(x))
}

/// The first half of [`softplus`]: `e^-|x|`. Split so that a loop can overlap the two halves
/// of consecutive elements (each half alone is a long dependency chain).
#[inline(always)]
pub(crate) fn softplus_exp(x: V) -> V {
    exp_nonpos(-x.abs())
}

/// The second half of [`softplus`], from `t = softplus_exp(x)`.
#[inline(always)]
pub(crate) fn softplus_finish(x: V, t: V) -> V {
    splat(0.0).fast_max(x) + log1p_unit(t)
}

/// `silu(z) = z * sigmoid(z)` on lanes.
#[inline(always)]
pub fn silu(z: V) -> V {
    z / (splat(1.0) + exp(-z))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::LANES;

    fn lanes(f: impl Fn(V) -> V, x: f32) -> f32 {
        f(splat(x)).to_array()[0]
    }

    /// Walks a range densely plus the given special points, returns max relative error.
    fn max_rel(f: impl Fn(V) -> V, r: impl Fn(f64) -> f64, lo: f32, hi: f32, floor: f64) -> f64 {
        let mut worst = 0.0f64;
        let n = 200_000;
        let mut check = |x: f32| {
            let got = lanes(&f, x) as f64;
            let want = r(x as f64);
            if want.abs() < floor {
                return;
            }
            let e = ((got - want) / want).abs();
            if e > worst {
                worst = e;
            }
        };
        for i in 0..=n {
            check(lo + (hi - lo) * (i as f32 / n as f32));
        }
        // Near zero on a log scale, both signs.
        let mut t = 1e-30f32;
        while t < 1.0 {
            if -t >= lo && -t <= hi {
                check(-t);
            }
            if t >= lo && t <= hi {
                check(t);
            }
            t *= 1.37;
        }
        worst
    }

    #[test]
    fn exp2_bound_and_exact_one() {
        assert_eq!(lanes(exp2, 0.0), 1.0);
        assert_eq!(lanes(exp, 0.0), 1.0);
        assert_eq!(lanes(exp, -0.0), 1.0);
        let e = max_rel(exp2, |x| x.exp2(), -126.0, 127.0, 0.0);
        assert!(e <= 2.5e-7, "exp2 rel err {e}");
    }

    #[test]
    fn exp_bound_over_model_range() {
        let e = max_rel(exp, |x| x.exp(), -87.0, 88.0, 0.0);
        assert!(e <= 4e-7, "exp rel err {e}");
        // The relative error shrinks near 0 (dA close to 1 in trained models).
        for x in [-1e-3f32, -1e-4, -1e-5, -3e-7] {
            let got = lanes(exp, x) as f64;
            let e = (got - (x as f64).exp()).abs();
            assert!(e <= 1.2e-7, "exp({x}) err {e}");
        }
    }

    #[test]
    fn exp2_kernel_every_input() {
        let k = |x: f32| exp2_kernel(splat(x)).to_array()[0];
        assert_eq!(k(0.0), 1.0);
        assert_eq!(k(f32::NEG_INFINITY), 0.0);
        assert_eq!(k(f32::INFINITY), f32::INFINITY);
        assert_eq!(k(-1e30), 0.0);
        assert_eq!(k(1e30), f32::INFINITY);
        assert!(k(f32::NAN).is_nan());
        let big = 2f64.powf(127.99f32 as f64);
        assert!((k(127.99) as f64 - big).abs() / big < 3e-7);
        let e = max_rel(exp2_kernel, |x| x.exp2(), -126.0, 127.9, 0.0);
        assert!(e <= 2.5e-7, "exp2_kernel rel err {e}");
    }

    #[test]
    fn exp_extremes() {
        assert_eq!(lanes(exp, -1e4), 0.0);
        assert_eq!(lanes(exp, f32::NEG_INFINITY), 0.0);
        assert_eq!(lanes(exp, -200.0), 0.0);
        assert_eq!(lanes(exp, 100.0), f32::INFINITY);
        assert_eq!(lanes(exp, f32::INFINITY), f32::INFINITY);
        assert!(lanes(exp, f32::NAN).is_nan());
        assert!(lanes(exp2, f32::NAN).is_nan());
        // Lanes are independent.
        let mut a = [0.0f32; LANES];
        for (i, v) in a.iter_mut().enumerate() {
            *v = -(i as f32) * 0.75;
        }
        let got = exp(V::new(a)).to_array();
        for i in 0..LANES {
            assert!((got[i] as f64 - (a[i] as f64).exp()).abs() <= 4e-7);
        }
    }

    fn softplus64(x: f64) -> f64 {
        x.max(0.0) + (-x.abs()).exp().ln_1p()
    }

    #[test]
    fn softplus_bound() {
        let e = max_rel(softplus, softplus64, -87.0, 1e4, 0.0);
        assert!(e <= 1e-6, "softplus rel err {e}");
        let e = max_rel(softplus, softplus64, -30.0, 30.0, 0.0);
        assert!(e <= 1e-6, "softplus rel err {e}");
        assert_eq!(lanes(softplus, 1e4), 1e4);
        assert_eq!(lanes(softplus, f32::INFINITY), f32::INFINITY);
        assert_eq!(lanes(softplus, f32::NEG_INFINITY), 0.0);
        assert_eq!(lanes(softplus, -1e4), 0.0);
        assert!(lanes(softplus, f32::NAN).is_nan());
    }

    #[test]
    fn silu_bound() {
        let silu64 = |z: f64| z / (1.0 + (-z).exp());
        let e = max_rel(silu, silu64, -80.0, 80.0, 1e-30);
        assert!(e <= 1e-6, "silu rel err {e}");
        assert_eq!(lanes(silu, 0.0), 0.0);
        assert_eq!(lanes(silu, 1e4), 1e4);
        assert_eq!(lanes(silu, -1e4), -0.0);
        assert!(lanes(silu, f32::NAN).is_nan());
    }
}
