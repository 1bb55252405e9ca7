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
//! Within a block of at least 4 states the sum runs in two chains (even `n` onto `y[s]`, odd
//! `n` from 0) that are added at the end of the block: a fixed order, half the latency.
//! The loop over `n` is unrolled by hand (a macro) so the `NB <= 16` states and `A2` values
//! stay in registers: a rolled loop spills them and runs several times slower.

use core::marker::PhantomData;

use super::math::exp2_kernel;
#[cfg(not(feature = "compact"))]
use super::math::Vs;
#[cfg(not(feature = "compact"))]
use super::LEVEL;
use super::{fma, splat, V};
use crate::scan::CHUNK;
#[cfg(not(feature = "compact"))]
use crate::SimdLevel;

/// Where the kernel reads `B(s, n)` or `C(s, n)` from.
pub(crate) trait Bc: Copy {
    /// Values for states `n0 .. n0 + nb` at step `s`.
    type Row<'r>: Copy
    where
        Self: 'r;
    fn row(&self, s: usize, n0: usize, nb: usize) -> Self::Row<'_>;
    fn at(row: Self::Row<'_>, i: usize) -> V;
}

/// Varying B/C, packed per step: value `(s, n)` at `p[s * stride + n]`, broadcast to all lanes
/// (every lane of a panel belongs to the same group).
/// (Step-major; the 1D driver now packs per state, see [`Rows`]. Kept for other drivers.)
#[allow(dead_code)]
#[derive(Clone, Copy)]
pub(crate) struct Packed<'a> {
    pub p: &'a [f32],
    pub stride: usize,
}

impl Bc for Packed<'_> {
    type Row<'r>
        = &'r [f32]
    where
        Self: 'r;
    #[inline(always)]
    fn row(&self, s: usize, n0: usize, nb: usize) -> &[f32] {
        let o = s * self.stride + n0;
        &self.p[o..o + nb]
    }
    #[inline(always)]
    fn at(row: &[f32], i: usize) -> V {
        splat(row[i])
    }
}

/// Varying B/C, packed per state: value `(s, n)` at `p[n * CHUNK + s]` for `s < CHUNK`, broadcast
/// to all lanes. A step's values sit at constant offsets (`n * CHUNK`) from one pointer, so the
/// broadcasts fold into the arithmetic as memory operands, and packing is a copy of the rows of
/// a `(N, L)` tensor (no transpose).
#[derive(Clone, Copy)]
pub(crate) struct Rows<'a> {
    pub p: &'a [f32],
}

/// The values of one step in [`Rows`]: `nb` states, `CHUNK` floats apart from `p`.
#[derive(Clone, Copy)]
pub(crate) struct RowsAt<'r> {
    p: *const f32,
    nb: usize,
    _m: PhantomData<&'r [f32]>,
}

impl Bc for Rows<'_> {
    type Row<'r>
        = RowsAt<'r>
    where
        Self: 'r;
    #[inline(always)]
    fn row(&self, s: usize, n0: usize, nb: usize) -> RowsAt<'_> {
        // Indices `(n0 + i) * CHUNK + s` for `i < nb` must lie in `p`.
        assert!(s < CHUNK && n0 + nb <= self.p.len() / CHUNK);
        RowsAt {
            p: self.p[n0 * CHUNK + s..].as_ptr(),
            nb,
            _m: PhantomData,
        }
    }
    #[inline(always)]
    fn at(row: RowsAt<'_>, i: usize) -> V {
        assert!(i < row.nb);
        // SAFETY: `row` checked `s < CHUNK` and `(n0 + nb) * CHUNK <= p.len()`, so for
        // `i < nb` the index `(n0 + i) * CHUNK + s` is inside `p` (which `'r` keeps borrowed).
        splat(unsafe { *row.p.add(i * CHUNK) })
    }
}

/// Constant B/C: one vector per state (a value per channel), the same at every step.
#[derive(Clone, Copy)]
pub(crate) struct PerLane<'a> {
    pub v: &'a [V],
}

impl Bc for PerLane<'_> {
    type Row<'r>
        = &'r [V]
    where
        Self: 'r;
    #[inline(always)]
    fn row(&self, _s: usize, n0: usize, nb: usize) -> &[V] {
        &self.v[n0..n0 + nb]
    }
    #[inline(always)]
    fn at(row: &[V], i: usize) -> V {
        row[i]
    }
}

/// Largest state block kept in registers.
pub(crate) const MAX_BLOCK: usize = 16;

/// States whose `dA = exp2(dt * A2)` [`block`] computes together, breadth-first (1: one state
/// after the other). Without AVX-512 `exp2` is a chain of about 17 dependent operations (with
/// its clamps: no one-instruction `reduce`). Written one state after the other, the kernel
/// ran at about 1.75 instructions per cycle on Zen 3 with its FP pipes half idle: the waiting
/// operations of a few chains appear to fill the FP scheduler before the next state's
/// independent ones are dispatched (halving the register block, so nothing spills, changed
/// nothing). Four states breadth-first issue four independent operations at each step of the
/// chain: the same operations on each lane, so the same bits, and the same instruction count
/// (Zen 3, N = 16: about 12% less time at x86-64-v3, about 14% at the SSE2 baseline). Eight
/// spill (16 vector registers). AVX-512 (32 registers, a shorter `exp2`) keeps 1: four
/// states breadth-first measured no different there (Intel Xeon, x86-64-v4, B1 D768 L3136
/// G4, three interleaved rounds: medians 14.4 / 8.75 / 10.2 ms with 1, 14.2 / 9.0 / 9.6 ms
/// with 4).
/// NEON and targets without vector lanes keep 1: not measured there.
#[cfg(not(feature = "compact"))]
const GROUP: usize =
    if cfg!(target_arch = "x86_64") && matches!(LEVEL, SimdLevel::Avx2 | SimdLevel::Baseline) {
        4
    } else {
        1
    };

/// Calls `$m!(i)` for i in 0..16.
#[cfg(not(feature = "compact"))]
macro_rules! unroll16 {
    ($m:ident) => {
        $m!(0);
        $m!(1);
        $m!(2);
        $m!(3);
        $m!(4);
        $m!(5);
        $m!(6);
        $m!(7);
        $m!(8);
        $m!(9);
        $m!(10);
        $m!(11);
        $m!(12);
        $m!(13);
        $m!(14);
        $m!(15);
    };
}

#[cfg(not(feature = "compact"))]
level_fn! {
/// One block of `NB` states `n0 .. n0 + NB` over `dt.len()` steps.
///
/// Not inlined: each block size gets its own function, so the register allocator sees one
/// loop at a time (inlined into one `chunk`, the small blocks reloaded pointers from the stack).
#[inline(never)]
#[allow(clippy::too_many_arguments)]
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
    let zero = splat(0.0);
    let mut hs = [zero; MAX_BLOCK];
    let mut a = [zero; MAX_BLOCK];
    let hb = &h[n0..n0 + NB];
    let ab = &a2[n0..n0 + NB];
    macro_rules! init {
        ($i:literal) => {
            if $i < NB {
                hs[$i] = hb[$i];
                a[$i] = ab[$i];
            }
        };
    }
    unroll16!(init);
    let steps = dt.len().min(dtu.len()).min(y.len());
    for s in 0..steps {
        let t = dt[s];
        let x = dtu[s];
        // The sum over the block's states in two chains (even states onto `y[s]`, odd states
        // from 0), added at the end: half the latency of one chain of `NB` FMAs. A fixed order,
        // so results still do not depend on lanes, splits or threads.
        let mut acc = y[s];
        let mut acc1 = zero;
        let br = b.row(s, n0, NB);
        let cr = c.row(s, n0, NB);
        // State `$i`'s update from its `dA`.
        macro_rules! update {
            ($i:expr, $da:expr) => {
                hs[$i] = fma($da, hs[$i], x * B::at(br, $i));
                if NB >= 4 && $i % 2 == 1 {
                    acc1 = if $i == 1 {
                        hs[$i] * C::at(cr, $i)
                    } else {
                        fma(hs[$i], C::at(cr, $i), acc1)
                    };
                } else {
                    acc = fma(hs[$i], C::at(cr, $i), acc);
                }
            };
        }
        macro_rules! state {
            ($i:expr) => {
                if $i < NB {
                    update!($i, exp2_kernel(t * a[$i]));
                }
            };
        }
        if GROUP == 1 {
            unroll16!(state);
        } else {
            // Four states' `dA` breadth-first (the same operations per lane), then their
            // updates in order; a last partial group state by state.
            macro_rules! quad {
                ($i:literal) => {
                    if $i + 3 < NB {
                        let ta = [t * a[$i], t * a[$i + 1], t * a[$i + 2], t * a[$i + 3]];
                        let d = exp2_kernel(Vs(ta)).0;
                        update!($i, d[0]);
                        update!($i + 1, d[1]);
                        update!($i + 2, d[2]);
                        update!($i + 3, d[3]);
                    } else {
                        state!($i);
                        state!($i + 1);
                        state!($i + 2);
                    }
                };
            }
            quad!(0);
            quad!(4);
            quad!(8);
            quad!(12);
        }
        y[s] = if NB >= 4 { acc + acc1 } else { acc };
    }
    let hb = &mut h[n0..n0 + NB];
    macro_rules! fini {
        ($i:literal) => {
            if $i < NB {
                hb[$i] = hs[$i];
            }
        };
    }
    unroll16!(fini);
}
}

#[cfg(feature = "compact")]
level_fn! {
/// `block` with the states in a loop (the `compact` feature): `nb` states `n0 .. n0 + nb`,
/// read from and written back to `h` at every step instead of kept in registers, in the same
/// order of operations as `block::<nb>` (even states onto `y[s]`, odd states in a second chain
/// from 0 when `nb >= 4`, added at the end), so the results are bitwise the same.
/// One function per B/C access type instead of sixteen.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn block_rolled<B: Bc, C: Bc>(
    h: &mut [V],
    a2: &[V],
    n0: usize,
    nb: usize,
    b: B,
    c: C,
    dt: &[V],
    dtu: &[V],
    y: &mut [V],
) {
    let zero = splat(0.0);
    let hb = &mut h[n0..n0 + nb];
    let ab = &a2[n0..n0 + nb];
    let two = nb >= 4;
    let steps = dt.len().min(dtu.len()).min(y.len());
    for s in 0..steps {
        let t = dt[s];
        let x = dtu[s];
        let mut acc = y[s];
        let mut acc1 = zero;
        let br = b.row(s, n0, nb);
        let cr = c.row(s, n0, nb);
        for (i, (hi, &ai)) in hb.iter_mut().zip(ab).enumerate() {
            let da = exp2_kernel(t * ai);
            let v = fma(da, *hi, x * B::at(br, i));
            *hi = v;
            if two && i % 2 == 1 {
                acc1 = if i == 1 {
                    v * C::at(cr, i)
                } else {
                    fma(v, C::at(cr, i), acc1)
                };
            } else {
                acc = fma(v, C::at(cr, i), acc);
            }
        }
        y[s] = if two { acc + acc1 } else { acc };
    }
}
}

/// B or C as either of the 1D driver's access types, chosen at run time (the `compact`
/// feature: one kernel instance instead of one per B/C combination).
#[cfg(feature = "compact")]
#[derive(Clone, Copy)]
pub(crate) enum AnyBc<'a> {
    Rows(Rows<'a>),
    PerLane(PerLane<'a>),
}

/// A step's values of [`AnyBc`].
#[cfg(feature = "compact")]
#[derive(Clone, Copy)]
pub(crate) enum AnyRow<'r> {
    Rows(RowsAt<'r>),
    PerLane(&'r [V]),
}

#[cfg(feature = "compact")]
impl Bc for AnyBc<'_> {
    type Row<'r>
        = AnyRow<'r>
    where
        Self: 'r;
    #[inline(always)]
    fn row(&self, s: usize, n0: usize, nb: usize) -> AnyRow<'_> {
        match self {
            AnyBc::Rows(r) => AnyRow::Rows(r.row(s, n0, nb)),
            AnyBc::PerLane(p) => AnyRow::PerLane(p.row(s, n0, nb)),
        }
    }
    #[inline(always)]
    fn at(row: AnyRow<'_>, i: usize) -> V {
        match row {
            AnyRow::Rows(r) => Rows::at(r, i),
            AnyRow::PerLane(p) => PerLane::at(p, i),
        }
    }
}

/// The size of the next block of states when `rest` states are left: 16 ([`MAX_BLOCK`]), 8, 4
/// or all of `rest` below 4, the largest that fits. So `N = 13` runs as blocks of 8, 4 and 1.
///
/// Only these six sizes have a kernel of their own (`block::<NB>`, per B/C access type and per
/// SIMD level). With every size from 1 to 16, `block` made up 72% of this crate's LLVM IR and
/// most of its compile time (release builds, the test build, the fuzz build and the Cortex-M
/// firmware each compile it). A state count between the sizes runs in two or three passes
/// over the chunk instead of one: each pass reloads `dt`, `dt * u` and `y` at every step (four
/// memory operations against about 20 vector operations per state and step). The block sizes
/// also fix the order of the sum over `n` (two chains per block, see the module docs), so
/// they are part of the results' bits; the `compact` kernel takes the same blocks.
#[inline(always)]
pub(crate) fn block_size(rest: usize) -> usize {
    match rest {
        MAX_BLOCK.. => MAX_BLOCK,
        8.. => 8,
        4.. => 4,
        _ => rest,
    }
}

level_fn! {
/// Runs all `h.len()` states over the chunk, in blocks of [`block_size`] states, block after
/// block (the sum over `n` stays in order `0..N`).
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
        let nb = block_size(n - n0);
        #[cfg(feature = "compact")]
        block_rolled(h, a2, n0, nb, b, c, dt, dtu, y);
        #[cfg(not(feature = "compact"))]
        macro_rules! go {
            ($($k:literal)*) => {
                match nb {
                    $($k => block::<$k, B, C>(h, a2, n0, b, c, dt, dtu, y),)*
                    _ => {}
                }
            };
        }
        #[cfg(not(feature = "compact"))]
        go!(1 2 3 4 8 16);
        n0 += nb;
    }
}
}
