//! Vector `exp`, `softplus` and `silu` on every SIMD level's lanes, with their error bounds.
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
//! 20 is not needed: above it the correction is below half an ulp). `silu(z) = z / (1 + e^-z)`
//! with `e^-z = 2^(-z log2 e)` reduced in base 2 directly (`k = round(-z log2 e)`, the rest by
//! fused multiply-adds against a two-part constant; levels without a fused multiply-add use
//! `exp`), relative error <= 1e-6 (measured 2.3e-7 at 16 and 8 lanes).

use crate::{Error, SimdLevel};

/// A function of this module, applied elementwise by [`map`] / [`map_at`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MathFn {
    /// `e^x`.
    Exp,
    /// `2^x`.
    Exp2,
    /// The scan kernel's `2^x` (the form used for `exp(dt * A)` in the recurrence).
    Exp2Kernel,
    /// `ln(1 + e^x)`.
    Softplus,
    /// `x * sigmoid(x)`.
    Silu,
}

/// Applies `f` to every element of `x` in place, on the lanes of [`SimdLevel::current`].
pub fn map(f: MathFn, x: &mut [f32]) {
    crate::platform::dispatch!(SimdLevel::current(), math::map_slice(f, x))
}

/// [`map`] at a given level; [`Error::Unsupported`] when the CPU lacks it (nothing written).
pub fn map_at(level: SimdLevel, f: MathFn, x: &mut [f32]) -> Result<(), Error> {
    level.check()?;
    crate::platform::dispatch!(level, math::map_slice(f, x));
    Ok(())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    /// Every level this CPU runs (at least one).
    fn levels() -> Vec<SimdLevel> {
        let l: Vec<SimdLevel> = SimdLevel::available().collect();
        assert!(!l.is_empty());
        l
    }

    fn one(level: SimdLevel, f: MathFn, x: f32) -> f32 {
        let mut a = [x; 3];
        map_at(level, f, &mut a).unwrap();
        a[0]
    }

    /// Walks a range densely plus points near 0 on a log scale (both signs), through
    /// [`map_at`] in one call; returns the max relative error.
    fn max_rel(
        level: SimdLevel,
        f: MathFn,
        r: impl Fn(f64) -> f64,
        lo: f32,
        hi: f32,
        floor: f64,
    ) -> f64 {
        let n = 200_000;
        let mut xs: Vec<f32> = (0..=n)
            .map(|i| lo + (hi - lo) * (i as f32 / n as f32))
            .collect();
        let mut t = 1e-30f32;
        while t < 1.0 {
            for x in [-t, t] {
                if x >= lo && x <= hi {
                    xs.push(x);
                }
            }
            t *= 1.37;
        }
        let mut got = xs.clone();
        map_at(level, f, &mut got).unwrap();
        let mut worst = 0.0f64;
        for (&x, &g) in xs.iter().zip(&got) {
            let want = r(x as f64);
            if want.abs() < floor {
                continue;
            }
            let e = ((g as f64 - want) / want).abs();
            // A wrong NaN result counts as an infinite error.
            let e = if e.is_nan() { f64::INFINITY } else { e };
            worst = worst.max(e);
        }
        worst
    }

    #[test]
    fn exp2_bound_and_exact_one() {
        for l in levels() {
            assert_eq!(one(l, MathFn::Exp2, 0.0), 1.0);
            assert_eq!(one(l, MathFn::Exp, 0.0), 1.0);
            assert_eq!(one(l, MathFn::Exp, -0.0), 1.0);
            let e = max_rel(l, MathFn::Exp2, |x| x.exp2(), -126.0, 127.0, 0.0);
            assert!(e <= 2.5e-7, "{l}: exp2 rel err {e}");
        }
    }

    #[test]
    fn exp_bound_over_model_range() {
        for l in levels() {
            let e = max_rel(l, MathFn::Exp, |x| x.exp(), -87.0, 88.0, 0.0);
            assert!(e <= 4e-7, "{l}: exp rel err {e}");
            // The relative error shrinks near 0 (dA close to 1 in trained models).
            for x in [-1e-3f32, -1e-4, -1e-5, -3e-7] {
                let got = one(l, MathFn::Exp, x) as f64;
                let e = (got - (x as f64).exp()).abs();
                assert!(e <= 1.2e-7, "{l}: exp({x}) err {e}");
            }
        }
    }

    #[test]
    fn exp2_kernel_every_input() {
        for l in levels() {
            let k = |x: f32| one(l, MathFn::Exp2Kernel, x);
            assert_eq!(k(0.0), 1.0);
            assert_eq!(k(f32::NEG_INFINITY), 0.0);
            assert_eq!(k(f32::INFINITY), f32::INFINITY);
            assert_eq!(k(-1e30), 0.0);
            assert_eq!(k(1e30), f32::INFINITY);
            assert!(k(f32::NAN).is_nan());
            let big = 2f64.powf(127.99f32 as f64);
            assert!((k(127.99) as f64 - big).abs() / big < 3e-7);
            let e = max_rel(l, MathFn::Exp2Kernel, |x| x.exp2(), -126.0, 127.9, 0.0);
            assert!(e <= 2.5e-7, "{l}: exp2_kernel rel err {e}");
        }
    }

    #[test]
    fn exp_extremes() {
        for l in levels() {
            let e = |x: f32| one(l, MathFn::Exp, x);
            assert_eq!(e(-1e4), 0.0);
            assert_eq!(e(f32::NEG_INFINITY), 0.0);
            assert_eq!(e(-200.0), 0.0);
            assert_eq!(e(100.0), f32::INFINITY);
            assert_eq!(e(f32::INFINITY), f32::INFINITY);
            assert!(e(f32::NAN).is_nan());
            assert!(one(l, MathFn::Exp2, f32::NAN).is_nan());
            // Lanes are independent, NaN stays in its lane, and the tail (not a whole vector)
            // gets the same values.
            let mut a: Vec<f32> = (0..37).map(|i| -(i as f32) * 0.75).collect();
            a[5] = f32::NAN;
            let want: Vec<f32> = a.clone();
            map_at(l, MathFn::Exp, &mut a).unwrap();
            for (i, (&g, &x)) in a.iter().zip(&want).enumerate() {
                if i == 5 {
                    assert!(g.is_nan());
                } else {
                    assert!((g as f64 - (x as f64).exp()).abs() <= 4e-7, "{l} {i}");
                }
            }
        }
    }

    fn softplus64(x: f64) -> f64 {
        x.max(0.0) + (-x.abs()).exp().ln_1p()
    }

    #[test]
    fn softplus_bound() {
        for l in levels() {
            let e = max_rel(l, MathFn::Softplus, softplus64, -87.0, 1e4, 0.0);
            assert!(e <= 1e-6, "{l}: softplus rel err {e}");
            let e = max_rel(l, MathFn::Softplus, softplus64, -30.0, 30.0, 0.0);
            assert!(e <= 1e-6, "{l}: softplus rel err {e}");
            let s = |x: f32| one(l, MathFn::Softplus, x);
            assert_eq!(s(1e4), 1e4);
            assert_eq!(s(f32::INFINITY), f32::INFINITY);
            assert_eq!(s(f32::NEG_INFINITY), 0.0);
            assert_eq!(s(-1e4), 0.0);
            assert!(s(f32::NAN).is_nan());
        }
    }

    #[test]
    fn silu_bound() {
        for l in levels() {
            let silu64 = |z: f64| z / (1.0 + (-z).exp());
            let e = max_rel(l, MathFn::Silu, silu64, -80.0, 80.0, 1e-30);
            assert!(e <= 1e-6, "{l}: silu rel err {e}");
            let s = |x: f32| one(l, MathFn::Silu, x);
            assert_eq!(s(0.0), 0.0);
            assert_eq!(s(1e4), 1e4);
            assert_eq!(s(-1e4), -0.0);
            assert!(s(f32::NAN).is_nan());
            // Far outside the reduction's range (the clamp keeps it exact): e^-z is 0 or inf.
            assert_eq!(s(1e30), 1e30);
            assert_eq!(s(f32::INFINITY), f32::INFINITY);
            let n = s(-1e30);
            assert!(n == 0.0 && n.is_sign_negative(), "{l}: silu(-1e30) = {n}");
            assert_eq!(s(-200.0), 0.0);
        }
    }

    #[test]
    fn unavailable_level_is_refused() {
        for &l in SimdLevel::all() {
            let mut a = [1.0f32; 4];
            let r = map_at(l, MathFn::Exp, &mut a);
            assert_eq!(r.is_ok(), l.is_available(), "{l}");
            if r.is_err() {
                assert_eq!(a, [1.0; 4]);
            }
        }
    }

    /// Every element gets the same bits wherever it sits in the slice: in a breadth-first
    /// group of vectors, a single vector or the zero-padded tail (every length up to past two
    /// groups of the widest level, against each element mapped alone), for every function.
    #[test]
    fn map_bits_do_not_depend_on_the_position() {
        let xs: Vec<f32> = (0..150).map(|i| (i as f32 - 70.0) * 0.37).collect();
        let fs = [
            MathFn::Exp,
            MathFn::Exp2,
            MathFn::Exp2Kernel,
            MathFn::Softplus,
            MathFn::Silu,
        ];
        for l in levels() {
            for f in fs {
                let alone: Vec<u32> = xs
                    .iter()
                    .map(|&x| {
                        let mut a = [x];
                        map_at(l, f, &mut a).unwrap();
                        a[0].to_bits()
                    })
                    .collect();
                for n in 0..=xs.len() {
                    let mut a = xs[..n].to_vec();
                    map_at(l, f, &mut a).unwrap();
                    let got: Vec<u32> = a.iter().map(|v| v.to_bits()).collect();
                    assert_eq!(got, alone[..n], "{l} {f:?} length {n}");
                }
            }
        }
    }
}
