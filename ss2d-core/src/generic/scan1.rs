//! The 1D selective scan with one state (`N = 1`, VMamba's released models) on channel-first
//! data along a forward or reversed walk: time in the lanes, no transposes.
//!
//! A channel's row is contiguous in time, so `LANES` consecutive steps are one vector load.
//! With one state the recurrence `h[s] = dA[s] * h[s-1] + dtBu[s]` is first-order, and each
//! vector solves its `LANES` steps by a log-step inclusive prefix (Hillis-Steele) of the
//! associative combine `(a1, b1), (a2, b2) -> (a1 * a2, a2 * b1 + b2)`, then applies the carry
//! from the previous vector (`h = A * h_prev + B`) and passes its last lane on:
//!
//! ```text
//! for k in 1, 2, 4, ... < LANES:      // lanes below k combine with the identity (1, 0)
//!     b = a * shift_up(b, k) + b
//!     a = a * shift_up(a, k)
//! h = a * h_prev + b;  y = C * h + D * u;  h_prev = h[LANES - 1]
//! ```
//!
//! The order of operations differs from the state-in-lanes kernel (`kernel.rs`), within the
//! documented tolerance of the reference; it depends only on the level and the sequence
//! length (vectors start at step 0 of the walk), never on threads or splits: each channel is
//! computed whole by the unit that owns it.

use super::math::{exp2_kernel, silu, softplus_exp, softplus_finish};
use super::vecs::{load, split_scratch, SinkLanes};
use super::{bcast_last, fma, from_arr, reverse, shift_up, splat, to_arr, FAST_SHIFT, LANES, V};
use crate::scan::{linear_walk, ScanPlan, Sink, CHUNK};
use crate::shape::{BcLayout, Layout};

/// True when this path runs the plan: one state, channel-first, a forward or reversed walk,
/// at a level where it measured faster than the transposing path (`FAST_SHIFT`: AVX-512).
#[inline(always)]
pub(crate) fn applies(plan: &ScanPlan<'_>) -> bool {
    let s = &plan.v.shape;
    FAST_SHIFT
        && s.dstate == 1
        && s.layout == Layout::ChannelFirst
        && linear_walk(&plan.walk).is_some()
}

/// The steps of one vector in walk order: steps `s0 .. s0 + n` of the row at `row` (position
/// `first + s` or `first - s`), zeros past `n`.
#[inline(always)]
fn load_steps(t: &[f32], row: usize, first: usize, rev: bool, s0: usize, n: usize) -> V {
    if n == LANES {
        if rev {
            reverse(load(&t[row + first + 1 - s0 - LANES..]))
        } else {
            load(&t[row + first + s0..])
        }
    } else {
        let mut a = [0.0f32; LANES];
        for (k, x) in a.iter_mut().enumerate().take(n) {
            *x = t[if rev {
                row + first - s0 - k
            } else {
                row + first + s0 + k
            }];
        }
        from_arr(a)
    }
}

/// Writes the first `n` lanes of `v` to the steps `s0 ..` of the row at `row` (as
/// [`load_steps`] reads them).
#[inline(always)]
fn store_steps(out: &Sink<'_>, v: V, row: usize, first: usize, rev: bool, s0: usize, n: usize) {
    if n == LANES {
        if rev {
            out.put_lanes::<false>(row + first + 1 - s0 - LANES, reverse(v), LANES);
        } else {
            out.put_lanes::<false>(row + first + s0, v, LANES);
        }
    } else {
        let a = to_arr(v);
        for (k, x) in a.iter().enumerate().take(n) {
            let p = if rev {
                row + first - s0 - k
            } else {
                row + first + s0 + k
            };
            out.put_slice::<false>(p, core::slice::from_ref(x));
        }
    }
}

/// The inclusive prefix of the lanes' `(a, x)` pairs under `(a1, x1), (a2, x2) -> (a1 * a2,
/// a2 * x1 + x2)`, in `log2(LANES)` steps (written out, so every shift has a constant width).
#[inline(always)]
fn prefix(mut a: V, mut x: V) -> (V, V) {
    let (zero, one) = (splat(0.0), splat(1.0));
    macro_rules! step {
        ($k:literal) => {
            if $k < LANES {
                x = fma(a, shift_up(x, $k, zero), x);
                a = a * shift_up(a, $k, one);
            }
        };
    }
    step!(1);
    step!(2);
    step!(4);
    step!(8);
    (a, x)
}

/// Vectors per block: the block's two buffers (`2 * CHUNK` vectors, 8 KiB with 16 lanes) and
/// its rows stay in L1 between the passes.
const BLOCK: usize = CHUNK;

level_fn! {
/// One unit (batch item `unit / panels`, panel `unit % panels`) of a plan that [`applies`],
/// one channel after the other, in blocks of [`BLOCK`] vectors and three passes each (as the
/// state-in-lanes path, so that each loop's dependency chains overlap across iterations):
/// the first half of the softplus; its second half, `dA` and `dt * u * B`; the prefix, the
/// carry and the output.
#[inline(never)]
pub(crate) fn run_unit(
    plan: &ScanPlan<'_>,
    unit: usize,
    out: &Sink<'_>,
    state: Option<&Sink<'_>>,
    scratch: &mut [f32],
) {
    let s = &plan.v.shape;
    let args = &plan.args;
    let l = s.seqlen;
    let (b, panel) = (unit / plan.v.panels, unit % plan.v.panels);
    let (d0, nl) = plan.v.panel_channels(panel);
    let rev = linear_walk(&plan.walk) == Some(true);
    let first = plan.walk.start;
    let zero = splat(0.0);
    let (bufs, _) = split_scratch(scratch, 2 * BLOCK);
    let (ba, bx) = bufs.split_at_mut(BLOCK);
    // Row of a grouped B/C (N = 1): (b * G + group) * L; a constant one: the channel's value.
    let bc = |t: &[f32], layout: BcLayout, d: usize| -> (Option<usize>, f32) {
        match layout {
            BcLayout::Grouped(g) => (Some((b * g + d / (s.dim / g)) * l), 0.0),
            BcLayout::Constant => (None, t[d]),
        }
    };
    for d in d0..d0 + nl {
        let row = (b * s.dim + d) * l;
        let a2 = splat(args.a[d] * core::f32::consts::LOG2_E);
        let bias = splat(match args.delta_bias {
            Some(t) => t[d],
            None => 0.0,
        });
        let dskip = args.d_skip.map(|t| t[d]);
        let (brow, bval) = bc(args.b, s.b, d);
        let (crow, cval) = bc(args.c, s.c, d);
        let (bval, cval) = (splat(bval), splat(cval));
        let mut h = splat(match args.initial_state {
            Some(st) => st[b * s.dim + d],
            None => 0.0,
        });
        let mut blk0 = 0;
        while blk0 < l {
            let steps = (l - blk0).min(BLOCK * LANES);
            let nv = steps.div_ceil(LANES);
            let (ba, bx) = (&mut ba[..nv], &mut bx[..nv]);
            let n_of = |i: usize| (steps - i * LANES).min(LANES);
            // Pass 1: dt before the softplus, and the softplus's exponential.
            for i in 0..nv {
                let x = load_steps(args.delta, row, first, rev, blk0 + i * LANES, n_of(i)) + bias;
                ba[i] = x;
                if args.delta_softplus {
                    bx[i] = softplus_exp(x);
                }
            }
            // Pass 2: dA and dt * u * B.
            for i in 0..nv {
                let (s0, n) = (blk0 + i * LANES, n_of(i));
                let dt = if args.delta_softplus {
                    softplus_finish(ba[i], bx[i])
                } else {
                    ba[i]
                };
                let u = load_steps(args.u, row, first, rev, s0, n);
                let bv = match brow {
                    Some(r) => load_steps(args.b, r, first, rev, s0, n),
                    None => bval,
                };
                ba[i] = exp2_kernel(dt * a2);
                bx[i] = dt * u * bv;
            }
            // Pass 3: the prefix in each vector, the carry, y = C * h + D * u, the gate.
            for i in 0..nv {
                let (s0, n) = (blk0 + i * LANES, n_of(i));
                let (a, x) = prefix(ba[i], bx[i]);
                let hv = fma(a, h, x);
                let cv = match crow {
                    Some(r) => load_steps(args.c, r, first, rev, s0, n),
                    None => cval,
                };
                let y0 = match dskip {
                    Some(dd) => splat(dd) * load_steps(args.u, row, first, rev, s0, n),
                    None => zero,
                };
                let mut y = fma(hv, cv, y0);
                if let Some(z) = args.z {
                    y = y * silu(load_steps(z, row, first, rev, s0, n));
                }
                store_steps(out, y, row, first, rev, s0, n);
                h = if n == LANES {
                    bcast_last(hv)
                } else {
                    splat(to_arr(hv)[n - 1])
                };
            }
            blk0 += steps;
        }
        if let Some(st) = state {
            st.put(b * s.dim + d, &to_arr(h)[..1]);
        }
    }
}
}
