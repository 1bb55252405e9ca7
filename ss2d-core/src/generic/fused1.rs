//! The fused scan at `d_state = 1` on channel-last data (VMamba v2/v3), a group of up to
//! `MAX_GROUP` channel panels per work unit (`FusedPlan::with_group`).
//!
//! A unit walks each direction once for all its panels: the walk's positions, the projection
//! row (dt_low, B, C) and its broadcasts are shared, and the panels' recurrences are independent
//! chains that overlap. Per chunk of `CHUNK` steps, two passes:
//!
//! 1. per step: `dt_proj` (R FMAs per panel, one broadcast per rank for all panels), the bias,
//!    the first half of the softplus, and the input lanes;
//! 2. per step: the second half of the softplus, `exp2(dt * A2)`, the recurrence, `D * u`, and
//!    the output lanes (stored, or added onto the buffer).
//!
//! Every lane runs exactly the operations of the general kernel (`fused::run_dir` with
//! `kernel::block::<1>`) in the same order, so the results are the same bits whatever the group.

use super::math::{exp2_nonpos, softplus_exp, softplus_finish, Vs};
use super::vecs::{load, split_scratch, SinkLanes};
use super::{fma, from_arr, prefetch, splat, LANES, V};
use crate::fused::{grouped_head, FusedPlan, FusedSplit};
use crate::scan::{share, vectors_len, Sink, CHUNK};

level_fn! {
    /// Runs the units `units` of a split of `plan` (grouped kernel: `d_state = 1`,
    /// channel-last).
    pub(crate) fn run_units(
        plan: &FusedPlan<'_>,
        split: FusedSplit,
        sinks: &[Option<Sink<'_>>; 4],
        units: core::ops::Range<usize>,
        scratch: &mut [f32],
    ) {
    let per = split.per_panel();
    let groups = plan.groups();
    for u in units {
        let (bg, part) = (u / per, u % per);
        let (b, grp) = (bg / groups, bg % groups);
        // Panels spread evenly over the groups (sizes differ by at most one, none exceeds
        // `plan.group`), so that units of a split cost about the same.
        let p0 = share(grp, plan.panels, groups);
        let np = share(grp + 1, plan.panels, groups) - p0;
        match np {
            0 => {}
            1 => unit::<1>(plan, split, part, sinks, b, p0, scratch),
            2 => unit::<2>(plan, split, part, sinks, b, p0, scratch),
            3 => unit::<3>(plan, split, part, sinks, b, p0, scratch),
            4 => unit::<4>(plan, split, part, sinks, b, p0, scratch),
            5 => unit::<5>(plan, split, part, sinks, b, p0, scratch),
            _ => unit::<6>(plan, split, part, sinks, b, p0, scratch),
        }
    }
    }
}

/// Fewest input elements (`L x D`, 1 MiB) for which column walks hint their lines ahead: with
/// smaller inputs the lines are in L2 already and the hints only cost issue slots (D192 28x28
/// and D384 14x14, one thread on the dev VM: 2-5% slower with them).
const HINT_MIN: usize = 1 << 18;

/// Where the lanes of a group's first panel sit in an output buffer: position `p` at
/// `base + p * pstride`, panel `j` of the group `j * LANES` further.
#[derive(Clone, Copy)]
struct Dst {
    base: usize,
    pstride: usize,
}

level_fn! {
/// Unit `part` of `split` for the `P` panels from `p0` of batch item `b`.
#[allow(clippy::too_many_arguments)]
fn unit<const P: usize>(
    plan: &FusedPlan<'_>,
    split: FusedSplit,
    part: usize,
    sinks: &[Option<Sink<'_>>; 4],
    b: usize,
    p0: usize,
    scratch: &mut [f32],
) {
    let (dim, l) = (plan.s.dim, plan.l);
    let at = Dst {
        base: b * l * dim + p0 * LANES,
        pstride: dim,
    };
    let sink = |i: usize| sinks[i].as_ref();
    match split {
        FusedSplit::All => {
            let Some(out) = sink(0) else { return };
            all::<P>(plan, b, p0, out, at, scratch);
        }
        FusedSplit::Pairs => {
            // Pair 0: directions 0 then 2; pair 1: directions 1 then 3.
            let Some(out) = sink(part) else { return };
            dir::<P, false>(plan, b, p0, part, out, at, None, scratch);
            dir::<P, true>(plan, b, p0, part + 2, out, at, None, scratch);
        }
        FusedSplit::Dirs => {
            // Buffer order: [y0, y1, y2, y3] so `combine` forms (y0 + y2) + (y1 + y3).
            let Some(out) = sink(part) else { return };
            dir::<P, false>(plan, b, p0, part, out, at, None, scratch);
        }
    }
}
}

level_fn! {
/// All four directions of the group into `out`: `(y0 + y2) + (y1 + y3)`, with `y1 + y3`
/// staged in a unit-local `(L, P * LANES)` buffer at the end of the scratch.
fn all<const P: usize>(
    plan: &FusedPlan<'_>,
    b: usize,
    p0: usize,
    out: &Sink<'_>,
    at: Dst,
    scratch: &mut [f32],
) {
    let l = plan.l;
    let head = vectors_len(grouped_head(P, plan.s.dt_rank));
    let (work, rest) = scratch.split_at_mut(head.min(scratch.len()));
    let (tmpv, _) = split_scratch(rest, l * P);
    if tmpv.len() < l * P {
        return;
    }
    dir::<P, false>(plan, b, p0, 0, out, at, None, work);
    dir::<P, true>(plan, b, p0, 2, out, at, None, work);
    {
        let tmp: &mut [f32] = bytemuck::cast_slice_mut(&mut tmpv[..]);
        let local = Sink::new(tmp);
        let local_at = Dst {
            base: 0,
            pstride: P * LANES,
        };
        dir::<P, false>(plan, b, p0, 1, &local, local_at, None, work);
    }
    // y3 onto y1 and the pair onto `out` in the same pass: `out + (y1 + y3)`, the operations
    // of adding y3 into the buffer and the buffer onto `out` in two passes.
    dir::<P, true>(plan, b, p0, 3, out, at, Some(&tmpv[..]), work);
}
}

/// Lanes in use of each of the `P` panels from `p0` (`LANES`, except in the last panel of a
/// `dim` that is not a multiple of `LANES`).
#[inline(always)]
fn lanes_in_use<const P: usize>(dim: usize, p0: usize) -> [usize; P] {
    let mut nl = [0usize; P];
    for (j, n) in nl.iter_mut().enumerate() {
        *n = dim.saturating_sub((p0 + j) * LANES).min(LANES);
    }
    nl
}

level_fn! {
/// Direction `k` of the `P` panels from `p0` of batch item `b` into `out` at `at` (stored, or
/// added onto it when `ADD`). With `pair`, a `(L, P)` buffer of partial outputs, position `p`'s
/// output `y` goes out as `pair[p] + y` (and `ADD` adds that onto `out`).
#[allow(clippy::too_many_arguments)]
fn dir<const P: usize, const ADD: bool>(
    plan: &FusedPlan<'_>,
    b: usize,
    p0: usize,
    k: usize,
    out: &Sink<'_>,
    at: Dst,
    pair: Option<&[V]>,
    scratch: &mut [f32],
) {
    let s = &plan.s;
    let (r, l, c, dim) = (s.dt_rank, plan.l, plan.c, s.dim);
    let Some(walk) = s.mode.walk(s.h, s.w, k) else {
        return;
    };
    let need = grouped_head(P, r);
    let (vecs, _) = split_scratch(scratch, need);
    if vecs.len() < need {
        return;
    }
    // dt_proj weights rank-major (`wdt[i * P + j]`: rank i of panel j), then per step and panel
    // the pre-activation, the softplus's first half and the input.
    let (wdt, vecs) = vecs.split_at_mut(P * r);
    let (xs, vecs) = vecs.split_at_mut(P * CHUNK);
    let (es, us) = vecs.split_at_mut(P * CHUNK);
    let nl = lanes_in_use::<P>(dim, p0);
    let zero = splat(0.0);
    let (mut a2, mut bias, mut dskip, mut h) = ([zero; P], [zero; P], [zero; P], [zero; P]);
    for j in 0..P {
        let ch = k * dim + (p0 + j) * LANES; // scanned channel of the panel's lane 0
        let per_chan = |t: &[f32], stride: usize, off: usize| -> [f32; LANES] {
            let mut a = [0.0f32; LANES];
            for (q, x) in a.iter_mut().enumerate().take(nl[j]) {
                *x = t[(ch + q) * stride + off];
            }
            a
        };
        // A2 = -exp(A_logs) * log2(e)
        let mut a = per_chan(plan.wts.a_logs, 1, 0);
        for x in a.iter_mut().take(nl[j]) {
            *x = -libm::expf(*x) * core::f32::consts::LOG2_E;
        }
        a2[j] = from_arr(a);
        for i in 0..r {
            wdt[i * P + j] = from_arr(per_chan(plan.wts.dt_projs_weight, r, i));
        }
        dskip[j] = from_arr(per_chan(plan.wts.ds, 1, 0));
        bias[j] = from_arr(per_chan(plan.wts.dt_projs_bias, 1, 0));
    }
    let full = nl[P - 1] == LANES;
    // Every store of this direction in bounds (full panels, the last position's lanes inside
    // `out`): then the stores skip their per-step checks.
    let unchecked = full
        && l.checked_sub(1)
            .and_then(|x| x.checked_mul(at.pstride))
            .and_then(|x| x.checked_add(at.base))
            .and_then(|x| x.checked_add(P * LANES))
            .is_some_and(|end| end <= out.len());
    let xbase = b * l * dim + p0 * LANES;
    // proj row of (b, p, k): ((b*L + p)*4 + k)*C = prow + p * pstride.
    let prow = (b * l * 4 + k) * c;
    let pstride = 4 * c;
    // Steps per chunk: the three per-step arrays (`3 * P * steps` vectors) stay within 24 KiB
    // at 16 lanes, inside L1 beside the rest.
    let steps = if P <= 2 {
        CHUNK
    } else if P <= 4 {
        CHUNK / 2
    } else {
        CHUNK / 4
    };
    // A walk across rows (a column walk of a channel-last grid) jumps a whole image row per
    // step, past the prefetchers' reach (they follow lines within a page): the lines of the
    // next chunk's positions are hinted a chunk ahead instead (input, output, the pair
    // buffer and the projection row), when the input is too large to stay in a core's L2
    // ([`HINT_MIN`]). Emerald Rapids, one thread, s1l8 layer: scan stage 1.158-1.172 ms
    // without, 1.119-1.166 ms over 16 runs of four hinting builds; hinting the row walks too
    // gained nothing more.
    let hint = walk.inner.1.unsigned_abs() > 1 && l * dim >= HINT_MIN;
    let (xp, op) = (plan.x.as_ptr(), out.as_mut_ptr().cast_const());
    let pp = pair.map_or(core::ptr::null(), |v| v.as_ptr().cast::<f32>());
    let mut cur = [0usize; CHUNK];
    let mut nxt = [0usize; CHUNK];
    walk.positions(0, &mut cur[..l.min(steps)]);
    let mut s0 = 0;
    while s0 < l {
        let len = (l - s0).min(steps);
        let nlen = (l - s0 - len).min(steps);
        walk.positions(s0 + len, &mut nxt[..nlen]);
        let pos = &cur[..len];
        let steps = pos
            .iter()
            .zip(xs.chunks_exact_mut(P))
            .zip(es.chunks_exact_mut(P))
            .zip(us.chunks_exact_mut(P));
        for (i, (((&p, xs), es), us)) in steps.enumerate() {
            if hint && i < nlen {
                let q = nxt[i];
                for j in 0..P {
                    prefetch(xp.wrapping_add(xbase + q * dim + j * LANES));
                    prefetch(op.wrapping_add(at.base + q * at.pstride + j * LANES));
                    if !pp.is_null() {
                        prefetch(pp.wrapping_add((q * P + j) * LANES));
                    }
                }
                prefetch(plan.proj.as_ptr().wrapping_add(prow + q * pstride));
            }
            let (Ok(xs), Ok(es), Ok(us)) = (
                <&mut [V; P]>::try_from(xs),
                <&mut [V; P]>::try_from(es),
                <&mut [V; P]>::try_from(us),
            ) else {
                return;
            };
            let row = &plan.proj[prow + p * pstride..][..r];
            let mut acc = [zero; P];
            for (w, &pv) in wdt.chunks_exact(P).zip(row) {
                let bp = splat(pv);
                for j in 0..P {
                    acc[j] = fma(w[j], bp, acc[j]);
                }
            }
            let xo = xbase + p * dim;
            // Breadth-first over the panels (`Vs`): P independent chains side by side.
            let x = Vs(acc) + Vs(bias);
            *xs = x.0;
            *es = softplus_exp(x).0;
            for j in 0..P {
                us[j] = if full || j + 1 < P {
                    load(&plan.x[xo + j * LANES..])
                } else {
                    let mut a = [0.0f32; LANES];
                    for (q, v) in a.iter_mut().enumerate().take(nl[j]) {
                        *v = plan.x[xo + j * LANES + q];
                    }
                    from_arr(a)
                };
            }
        }
        let steps = pos
            .iter()
            .zip(xs.chunks_exact(P))
            .zip(es.chunks_exact(P))
            .zip(us.chunks_exact(P));
        for (((&p, xs), es), us) in steps {
            let (Ok(xs), Ok(es), Ok(us)) = (
                <&[V; P]>::try_from(xs),
                <&[V; P]>::try_from(es),
                <&[V; P]>::try_from(us),
            ) else {
                return;
            };
            let bc = &plan.proj[prow + p * pstride + r..][..2];
            let (bv, cv) = (splat(bc[0]), splat(bc[1]));
            let o = at.base + p * at.pstride;
            // A `match`, not `Option::map`: the closure of a `map` inside this
            // `#[target_feature]` function was not inlined (a call per step, every live vector
            // spilled around it).
            #[allow(clippy::manual_map)]
            let pair = match pair {
                Some(v) => Some(&v[p * P..p * P + P]),
                None => None,
            };
            let t = softplus_finish(Vs(*xs), Vs(*es));
            let dtu = t * Vs(*us);
            // `t >= 0` and `a2 <= 0`: the product is never positive.
            let da = exp2_nonpos(t * Vs(a2));
            for j in 0..P {
                let u = us[j];
                h[j] = fma(da.0[j], h[j], dtu.0[j] * bv);
                let y = fma(h[j], cv, dskip[j] * u);
                let y = match pair {
                    Some(v) => v[j] + y,
                    None => y,
                };
                if unchecked {
                    // SAFETY: `o + j * LANES + LANES <= at.base + (l - 1) * at.pstride + P * LANES
                    // <= out.len()` (checked above, `p < l`, `j < P`); this unit owns these
                    // elements of `out` (`Sink` docs).
                    unsafe { out.put_lanes_unchecked::<ADD>(o + j * LANES, y) };
                } else {
                    out.put_lanes::<ADD>(o + j * LANES, y, nl[j]);
                }
            }
        }
        s0 += len;
        core::mem::swap(&mut cur, &mut nxt);
    }
}
}
