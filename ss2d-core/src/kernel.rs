//! The micro-kernel: the recurrence for one panel of `LANES` channels over one chunk of steps,
//! on packed inputs. Everything layout- or walk-specific happens in the packers around it
//! (`scan.rs` for 1D data, `cross.rs` for the fused 2D scan), so both share this code.
//!
//! ```text
//! for s in 0..steps:                         // sequential: carries the state
//!     for n in n0..n0+NB:                    // fixed order, states in registers
//!         dA   = exp2(dt[s] * A2[n])         // A2 = A * log2(e)
//!         h[n] = dA * h[n] + dtu[s] * B(s, n)
//!         y[s] = y[s] + C(s, n) * h[n]
//! ```
//! `y[s]` arrives holding `D * u` (or 0) and leaves holding the full output before the gate.

use crate::math::exp2;
use crate::simd::{fma, splat, V};

/// Where the kernel reads `B(s, n)` or `C(s, n)` from.
pub(crate) trait Bc: Copy {
    fn get(&self, s: usize, n: usize) -> V;
}

/// Varying B/C, packed per step: value `(s, n)` at `p[s * stride + n]`, broadcast to all lanes
/// (every lane of a panel belongs to the same group).
#[derive(Clone, Copy)]
pub(crate) struct Packed<'a> {
    pub p: &'a [f32],
    pub stride: usize,
}

impl Bc for Packed<'_> {
    #[inline(always)]
    fn get(&self, s: usize, n: usize) -> V {
        splat(self.p[s * self.stride + n])
    }
}

/// Constant B/C: one vector per state (a value per channel), the same at every step.
#[derive(Clone, Copy)]
pub(crate) struct PerLane<'a> {
    pub v: &'a [V],
}

impl Bc for PerLane<'_> {
    #[inline(always)]
    fn get(&self, _s: usize, n: usize) -> V {
        self.v[n]
    }
}

/// One block of `NB` states `n0 .. n0 + NB` over `dt.len()` steps.
#[inline(always)]
fn block<const NB: usize, B: Bc, C: Bc>(
    h: &mut [V],
    a2: &[V],
    n0: usize,
    b: B,
    c: C,
    dt: &[V],
    dtu: &[V],
    y: &mut [V],
) {
    let mut hs: [V; NB] = core::array::from_fn(|i| h[n0 + i]);
    let a: [V; NB] = core::array::from_fn(|i| a2[n0 + i]);
    let steps = dt.len().min(dtu.len()).min(y.len());
    for s in 0..steps {
        let t = dt[s];
        let x = dtu[s];
        let mut acc = y[s];
        for i in 0..NB {
            let da = exp2(t * a[i]);
            hs[i] = fma(da, hs[i], x * b.get(s, n0 + i));
            acc = fma(hs[i], c.get(s, n0 + i), acc);
        }
        y[s] = acc;
    }
    h[n0..n0 + NB].copy_from_slice(&hs);
}

/// Largest state block kept in registers.
pub(crate) const MAX_BLOCK: usize = 16;

/// Runs all `h.len()` states over the chunk, in blocks of at most [`MAX_BLOCK`] states, block
/// after block (the sum over `n` stays in order `0..N`).
#[inline(never)]
pub(crate) fn chunk<B: Bc, C: Bc>(
    h: &mut [V],
    a2: &[V],
    b: B,
    c: C,
    dt: &[V],
    dtu: &[V],
    y: &mut [V],
) {
    let n = h.len();
    let mut n0 = 0;
    while n0 < n {
        let nb = (n - n0).min(MAX_BLOCK);
        macro_rules! go {
            ($($k:literal)*) => {
                match nb {
                    $($k => block::<$k, B, C>(h, a2, n0, b, c, dt, dtu, y),)*
                    _ => unreachable!(),
                }
            };
        }
        go!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
        n0 += nb;
    }
}
