//! Vector `exp`, `softplus` and `silu` on a level's lanes (bounds and method in the public
//! `crate::math` docs).
#![allow(clippy::excessive_precision)] // coefficients carry every digit of their f32 fit

use super::{FUSED_FMA, HAS_REDUCE, K_MIN, LANES, V};
use crate::math::MathFn;
use core::ops::{Add, Div, Mul, Neg, Sub};

/// The lane arithmetic the functions below are written over: one vector ([`V`]), or `P`
/// independent vectors ([`Vs`]).
///
/// With `Vs`, every step of a function is issued for all `P` vectors before the next step: `P`
/// independent operations side by side in program order instead of `P` long dependency chains
/// one after the other. Each lane runs the same operations in the same order either way, so the
/// results are the same bits. On cores whose FP scheduler holds fewer operations than one chain
/// (Zen 3 at 8 lanes: about 35 operations per panel and step in the fused `d_state = 1` scan),
/// the chains one after the other leave the pipes waiting on latency.
pub(crate) trait Arith:
    Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    fn splat(x: f32) -> Self;
    fn fma(a: Self, b: Self, c: Self) -> Self;
    fn max_keep(lo: Self, x: Self) -> Self;
    fn min_keep(hi: Self, x: Self) -> Self;
    fn abs(x: Self) -> Self;
    fn round_nearest(x: Self) -> Self;
    fn reduce(x: Self) -> Self;
    fn scale(p: Self, k: Self) -> Self;
    fn scale_nonpos(p: Self, k: Self) -> Self;
}

impl Arith for V {
    #[inline(always)]
    fn splat(x: f32) -> V {
        super::splat(x)
    }
    #[inline(always)]
    fn fma(a: V, b: V, c: V) -> V {
        super::fma(a, b, c)
    }
    #[inline(always)]
    fn max_keep(lo: V, x: V) -> V {
        super::max_keep(lo, x)
    }
    #[inline(always)]
    fn min_keep(hi: V, x: V) -> V {
        super::min_keep(hi, x)
    }
    #[inline(always)]
    fn abs(x: V) -> V {
        super::abs(x)
    }
    #[inline(always)]
    fn round_nearest(x: V) -> V {
        super::round_nearest(x)
    }
    #[inline(always)]
    fn reduce(x: V) -> V {
        super::reduce(x)
    }
    #[inline(always)]
    fn scale(p: V, k: V) -> V {
        super::scale(p, k)
    }
    #[inline(always)]
    fn scale_nonpos(p: V, k: V) -> V {
        super::scale_nonpos(p, k)
    }
}

/// `P` independent vectors, operated on breadth-first ([`Arith`]).
#[derive(Clone, Copy)]
pub(crate) struct Vs<const P: usize>(pub(crate) [V; P]);

// The operations of `Vs` are plain loops, not closures (`array::from_fn`, `map`): a closure
// inside a `#[target_feature]` function does not get the level's features, so the lane
// operations inside it were not inlined (a call per operation, every live vector spilled).
macro_rules! vs_op {
    ($tr:ident, $f:ident, $op:tt) => {
        impl<const P: usize> $tr for Vs<P> {
            type Output = Self;
            #[inline(always)]
            fn $f(self, o: Self) -> Self {
                let mut r = self.0;
                for j in 0..P {
                    r[j] = self.0[j] $op o.0[j];
                }
                Vs(r)
            }
        }
    };
}
vs_op!(Add, add, +);
vs_op!(Sub, sub, -);
vs_op!(Mul, mul, *);
vs_op!(Div, div, /);

impl<const P: usize> Neg for Vs<P> {
    type Output = Self;
    #[inline(always)]
    fn neg(self) -> Self {
        let mut r = self.0;
        for v in r.iter_mut() {
            *v = -*v;
        }
        Vs(r)
    }
}

/// `Vs`'s [`Arith`] method `$f` of one or two vectors through the level's function `$g`.
macro_rules! vs_fn {
    ($f:ident($x:ident) $g:ident) => {
        #[inline(always)]
        fn $f($x: Self) -> Self {
            let mut r = $x.0;
            for v in r.iter_mut() {
                *v = super::$g(*v);
            }
            Vs(r)
        }
    };
    ($f:ident($a:ident, $b:ident) $g:ident) => {
        #[inline(always)]
        fn $f($a: Self, $b: Self) -> Self {
            let mut r = $b.0;
            for j in 0..P {
                r[j] = super::$g($a.0[j], $b.0[j]);
            }
            Vs(r)
        }
    };
}

impl<const P: usize> Arith for Vs<P> {
    #[inline(always)]
    fn splat(x: f32) -> Self {
        Vs([super::splat(x); P])
    }
    #[inline(always)]
    fn fma(a: Self, b: Self, c: Self) -> Self {
        let mut r = c.0;
        for (j, v) in r.iter_mut().enumerate() {
            *v = super::fma(a.0[j], b.0[j], *v);
        }
        Vs(r)
    }
    vs_fn!(max_keep(lo, x) max_keep);
    vs_fn!(min_keep(hi, x) min_keep);
    vs_fn!(abs(x) abs);
    vs_fn!(round_nearest(x) round_nearest);
    vs_fn!(reduce(x) reduce);
    vs_fn!(scale(p, k) scale);
    vs_fn!(scale_nonpos(p, k) scale_nonpos);
}

#[inline(always)]
fn splat<T: Arith>(x: f32) -> T {
    T::splat(x)
}
#[inline(always)]
fn fma<T: Arith>(a: T, b: T, c: T) -> T {
    T::fma(a, b, c)
}
#[inline(always)]
fn max_keep<T: Arith>(lo: T, x: T) -> T {
    T::max_keep(lo, x)
}
#[inline(always)]
fn min_keep<T: Arith>(hi: T, x: T) -> T {
    T::min_keep(hi, x)
}
#[inline(always)]
fn abs<T: Arith>(x: T) -> T {
    T::abs(x)
}
#[inline(always)]
fn round_nearest<T: Arith>(x: T) -> T {
    T::round_nearest(x)
}
#[inline(always)]
fn reduce<T: Arith>(x: T) -> T {
    T::reduce(x)
}
#[inline(always)]
fn scale<T: Arith>(p: T, k: T) -> T {
    T::scale(p, k)
}
#[inline(always)]
fn scale_nonpos<T: Arith>(p: T, k: T) -> T {
    T::scale_nonpos(p, k)
}

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

/// `2^f` for `f` in `[-0.5, 0.5]`, in the form `1 + f * q(f)`.
#[inline(always)]
fn exp2_reduced<T: Arith>(f: T) -> T {
    let q = fma(f, splat(E5), splat(E4));
    let q = fma(f, q, splat(E3));
    let q = fma(f, q, splat(E2));
    let q = fma(f, q, splat(E1));
    fma(f, q, splat(1.0))
}

/// `2^x` on lanes (module docs for the bound).
#[inline(always)]
pub(crate) fn exp2<T: Arith>(x: T) -> T {
    // Clamp keeping NaN (`max_keep`/`min_keep` return `x` when it is NaN, at every level).
    let x = min_keep(splat(128.0), max_keep(splat(K_MIN), x));
    let k = round_nearest(x);
    scale(exp2_reduced(x - k), k)
}

/// `2^x` for the kernel's `dt * A2`, for every `x`: `-inf -> 0`, `+inf -> inf`, NaN -> NaN.
///
/// Where the level has a one-instruction `reduce` (AVX-512 DQ: `vreduceps` returns
/// `x - round(x)`, and `±0` for `±inf`) and a `scale` that handles overflow and gradual underflow
/// (`vscalefps`), no clamp is needed in the innermost loop. Other levels use the clamped [`exp2`].
#[inline(always)]
pub(crate) fn exp2_kernel<T: Arith>(x: T) -> T {
    if HAS_REDUCE {
        let f = reduce(x);
        // `x - f` is `round(x)` exactly (`f = x - round(x)` is exact), and for `±inf` (`f = 0`)
        // it is `±inf` again: one subtraction instead of a second rounding instruction.
        scale(exp2_reduced(f), x - f)
    } else {
        exp2(x)
    }
}

/// [`exp2_kernel`] for `x <= 0` (or NaN), e.g. `dt * A2` with `dt = softplus(..) >= 0` and
/// `A2 = -exp(A_log) log2(e) <= 0`: the same bits, without the upper clamp and the overflow
/// handling of `scale` (five operations fewer where `reduce` is not one instruction). For
/// `x > 0` the result is wrong.
#[inline(always)]
pub(crate) fn exp2_nonpos<T: Arith>(x: T) -> T {
    if HAS_REDUCE {
        exp2_kernel(x)
    } else {
        // `exp2`'s clamps, of which only the lower one can act here.
        let x = max_keep(splat(K_MIN), x);
        let k = round_nearest(x);
        scale_nonpos(exp2_reduced(x - k), k)
    }
}

const LN2_HI: f32 = 0.693_145_751_953_125;
const LN2_LO: f32 = 1.428_606_765_330_187e-6;

/// `round(x * c)` for `|x * c| < 2^22` (ties to even): the rounding done by adding
/// [`ROUND_MAGIC`] inside the multiply-add and subtracting it again, two single-uop operations
/// instead of a multiply and a rounding instruction (`vrndscaleps` takes two uops). With an
/// `fma` that rounds twice it is exactly `round_nearest(x * c)`; a fused one rounds the exact
/// product, which can differ from that by one in a near-tie (in `exp` the reduced argument
/// then exceeds `0.5` by at most an ulp, inside the polynomial's fitted accuracy).
#[inline(always)]
fn round_product<T: Arith>(x: T, c: f32) -> T {
    fma(x, splat(c), splat(ROUND_MAGIC)) - splat(ROUND_MAGIC)
}

/// `e^x` on lanes, with Cody-Waite reduction (`x - k ln2` in two parts) so the relative error
/// does not grow with `|x|`.
#[inline(always)]
pub(crate) fn exp<T: Arith>(x: T) -> T {
    let lo = K_MIN * core::f32::consts::LN_2;
    let x = min_keep(
        splat(128.0 * core::f32::consts::LN_2),
        max_keep(splat(lo), x),
    );
    let k = round_product(x, LOG2E);
    let r = fma(k, splat(-LN2_HI), x);
    let r = fma(k, splat(-LN2_LO), r);
    scale(exp2_reduced(r * splat(LOG2E)), k)
}

/// `log1p(t)` for `t` in `[0, 1]`.
#[inline(always)]
fn log1p_unit<T: Arith>(t: T) -> T {
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
fn exp_nonpos<T: Arith>(x: T) -> T {
    let x = max_keep(splat(K_MIN * core::f32::consts::LN_2), x);
    let k = round_product(x, LOG2E);
    let r = fma(k, splat(-LN2_HI), x);
    let r = fma(k, splat(-LN2_LO), r);
    // `k <= 0`: the bits of `scale`.
    scale_nonpos(exp2_reduced(r * splat(LOG2E)), k)
}

/// `softplus(x) = ln(1 + e^x)` on lanes.
#[inline(always)]
pub(crate) fn softplus<T: Arith>(x: T) -> T {
    softplus_finish(x, softplus_exp(x))
}

/// The first half of [`softplus`]: `e^-|x|`. Split so that a loop can overlap the two halves
/// of consecutive elements (each half alone is a long dependency chain).
#[inline(always)]
pub(crate) fn softplus_exp<T: Arith>(x: T) -> T {
    exp_nonpos(-abs(x))
}

/// The second half of [`softplus`], from `t = softplus_exp(x)`.
#[inline(always)]
pub(crate) fn softplus_finish<T: Arith>(x: T, t: T) -> T {
    max_keep(splat(0.0), x) + log1p_unit(t)
}

/// `-log2(e)` as the f32 nearest to it plus the rest (`SILU_C + SILU_C_LO` is `-log2(e)` to
/// about 2^-50).
const SILU_C: f32 = -LOG2E;
const SILU_C_LO: f32 = -1.925_963_033_500_011e-8;
/// `1.5 * 2^23`: `(x + ROUND_MAGIC) - ROUND_MAGIC` is `x` rounded to an integer (ties to even)
/// for `|x| < 2^22`.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// `silu(z) = z / (1 + e^-z)` on lanes.
///
/// `e^-z = 2^t` with `t = -z log2(e)` reduced in base 2 directly: `k = round(z * SILU_C)` and
/// `f = z * SILU_C - k + z * SILU_C_LO`, the first difference exact up to one rounding (fused)
/// and the second term carrying the constant's rest, so `f` is good to ~2^-25 absolute for
/// every clamped `z`. Before that, `z` is clamped where `e^-z` is 0 or inf in f32 anyway: with
/// `vscalefps` (any `k`) to `|z| <= 150`, else to the exponents `scale` takes.
/// One operation fewer than [`exp`]'s natural-log reduction, no negation, and the rounding
/// inside an FMA ([`round_product`]): 12 single-uop operations plus `vscalefps` and the division
/// on AVX-512, instead of 14 plus `vrndscaleps`. Levels whose [`fma`] rounds twice (x86-64
/// without FMA) keep the `exp` form: the fused difference is what makes the reduction exact.
#[inline(always)]
pub(crate) fn silu<T: Arith>(z: T) -> T {
    if !FUSED_FMA {
        return z / (splat::<T>(1.0) + exp(-z));
    }
    // The division stays. A form without it at AVX-512 (`t = e^-|z|`, `1 / (1 + t)` from
    // `vrcp14ps` and a Newton step, `t` times that for negative `z` through a masked multiply)
    // passed the bounds below but measured slower on an Intel Xeon (three interleaved rounds,
    // one thread: s1l8's conv stage 194-196 -> 209-222 us), and at AVX2 on Zen 3
    // (`vrcpps`) the conv with SiLU took 1.7x as long: the division is not this chain's limit.
    // Two compares, not AVX-512's one-instruction `vrangeps`: in this chain that measured
    // 4-5x slower on Sapphire Rapids (22-24 ns against 4.7-5 ns per vector).
    let (lo, hi) = if HAS_REDUCE {
        (-150.0, 150.0)
    } else {
        // k = 128 gives inf (z -> -inf: the quotient is -0), k >= K_MIN stays in range.
        (
            -128.0 * core::f32::consts::LN_2,
            -K_MIN * core::f32::consts::LN_2,
        )
    };
    let zc = min_keep(splat(hi), max_keep(splat(lo), z));
    // |zc * SILU_C| < 2^8.
    let k = round_product(zc, SILU_C);
    let f = fma(zc, splat(SILU_C), -k);
    let f = fma(zc, splat(SILU_C_LO), f);
    z / (splat::<T>(1.0) + scale(exp2_reduced(f), k))
}

/// `f` at one vector or several breadth-first ([`Vs`]). A plain function, not a closure: a
/// closure inside a `#[target_feature]` function does not get the level's features.
#[inline(always)]
fn apply<T: Arith>(f: MathFn, v: T) -> T {
    match f {
        MathFn::Exp => exp(v),
        MathFn::Exp2 => exp2(v),
        MathFn::Exp2Kernel => exp2_kernel(v),
        MathFn::Softplus => softplus(v),
        MathFn::Silu => silu(v),
    }
}

/// Vectors [`map_slice`] takes breadth-first ([`Vs`]).
const MAP_VECS: usize = 4;

level_fn! {
    /// Applies `f` to every element of `x` in place: [`MAP_VECS`] vectors at a time,
    /// breadth-first (independent chains issued step by step: one vector's chain is longer
    /// than an FP scheduler holds, so vector after vector waited on latency), then whole
    /// vectors, then the tail through a zero-padded vector. Elementwise: the same bits
    /// whatever the grouping.
    pub(crate) fn map_slice(f: MathFn, x: &mut [f32]) {
        let mut groups = x.chunks_exact_mut(MAP_VECS * LANES);
        for c in &mut groups {
            let mut vs = Vs([splat(0.0); MAP_VECS]);
            for (v, s) in vs.0.iter_mut().zip(c.chunks_exact(LANES)) {
                *v = super::vecs::load(s);
            }
            let r = apply(f, vs);
            for (s, v) in c.chunks_exact_mut(LANES).zip(r.0) {
                super::vecs::store(s, v);
            }
        }
        let mut chunks = groups.into_remainder().chunks_exact_mut(LANES);
        for c in &mut chunks {
            let v = super::vecs::load(c);
            super::vecs::store(c, apply(f, v));
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let mut a = [0.0f32; LANES];
            a[..rest.len()].copy_from_slice(rest);
            let r = super::to_arr(apply(f, super::from_arr(a)));
            rest.copy_from_slice(&r[..rest.len()]);
        }
    }
}
