//! The fused 4-direction SS2D scan at one level: the work of a unit (a panel's directions);
//! the plan, validation, splits and merge order are in `crate::fused`.

use super::kernel::{self, Bc};
use super::math::{softplus_exp, softplus_finish};
use super::pack::LanesOps;
use super::vecs::split_scratch;
use super::{fma, from_arr, splat, LANES, V};
use crate::fused::{FusedPlan, FusedSplit};
use crate::pack::Lanes;
use crate::scan::{vectors_len, Sink, CHUNK};

level_fn! {
    /// Runs the units `units` of a split of `plan` (its level is this module's).
    pub(crate) fn run_units(
        plan: &FusedPlan<'_>,
        split: FusedSplit,
        sinks: &[Option<Sink<'_>>; 4],
        units: core::ops::Range<usize>,
        scratch: &mut [f32],
    ) {
    debug_assert_eq!(plan.level(), super::LEVEL);
    let per = split.per_panel();
    if plan.grouped_kernel() {
        super::fused1::run_units(plan, split, sinks, units, scratch);
        return;
    }
    let panels = plan.panels;
    for u in units {
        let (bp, part) = (u / per, u % per);
        let (b, panel) = (bp / panels, bp % panels);
        let sink = |i: usize| sinks[i].as_ref();
        match split {
            FusedSplit::All => {
                let Some(out) = sink(0) else { continue };
                run_all(plan, b, panel, out, scratch);
            }
            FusedSplit::Pairs => {
                let Some(out) = sink(part) else { continue };
                // Pair 0: directions 0 then 2; pair 1: directions 1 then 3.
                let at = lanes(plan, b, panel);
                run_dir(plan, b, panel, part, out, at, false, scratch);
                run_dir(plan, b, panel, part + 2, out, at, true, scratch);
            }
            FusedSplit::Dirs => {
                // Buffer order: [y0, y1, y2, y3] so `combine` forms (y0 + y2) + (y1 + y3).
                let Some(out) = sink(part) else { continue };
                let at = lanes(plan, b, panel);
                run_dir(plan, b, panel, part, out, at, false, scratch);
            }
        }
    }
    }
}

/// Where panel `panel` of batch item `b` sits in `x` and in the outputs.
#[inline(always)]
fn lanes(plan: &FusedPlan<'_>, b: usize, panel: usize) -> Lanes {
    let s = &plan.s;
    let d0 = panel * LANES;
    Lanes::panel(s.layout, b, d0, (s.dim - d0).min(LANES), s.dim, plan.l)
}

level_fn! {
/// Direction `k` of batch item `b`, panel `panel`, into `out` at `dst` (stored, or added
/// when `add`).
#[allow(clippy::too_many_arguments)]
fn run_dir(
    plan: &FusedPlan<'_>,
    b: usize,
    panel: usize,
    k: usize,
    out: &Sink<'_>,
    dst: Lanes,
    add: bool,
    scratch: &mut [f32],
) {
    let s = &plan.s;
    let (n, r, l, c) = (s.dstate, s.dt_rank, plan.l, plan.c);
    let d0 = panel * LANES;
    let nl = (s.dim - d0).min(LANES);
    let Some(walk) = s.mode.walk(s.h, s.w, k) else {
        return;
    };
    let (vecs, _) = split_scratch(scratch, 2 * n + r + 4 * CHUNK);
    let (h, vecs) = vecs.split_at_mut(n);
    let (a2, vecs) = vecs.split_at_mut(n);
    let (wdt, vecs) = vecs.split_at_mut(r);
    let (dt, vecs) = vecs.split_at_mut(CHUNK);
    let (dtu, vecs) = vecs.split_at_mut(CHUNK);
    let (y, up) = vecs.split_at_mut(CHUNK);
    let ch = k * s.dim + d0; // scanned channel of lane 0
    let per_chan = |t: &[f32], stride: usize, off: usize, f: fn(f32) -> f32| -> V {
        let mut a = [0.0f32; LANES];
        for (j, x) in a.iter_mut().enumerate().take(nl) {
            *x = f(t[(ch + j) * stride + off]);
        }
        from_arr(a)
    };
    let id = |x: f32| x;
    for i in 0..n {
        // A2 = -exp(A_logs) * log2(e)
        a2[i] = per_chan(plan.wts.a_logs, n, i, |x| {
            -libm::expf(x) * core::f32::consts::LOG2_E
        });
        h[i] = splat(0.0);
    }
    for (i, wv) in wdt.iter_mut().enumerate() {
        *wv = per_chan(plan.wts.dt_projs_weight, r, i, id);
    }
    let dskip = per_chan(plan.wts.ds, 1, 0, id);
    let bias = per_chan(plan.wts.dt_projs_bias, 1, 0, id);
    let lanes = lanes(plan, b, panel);
    // proj row of (b, p, k): ((b*L + p)*4 + k)*C.
    let prow = (b * l * 4 + k) * c;
    let pstride = 4 * c;
    let mut pos = [0usize; CHUNK];
    let mut s0 = 0;
    while s0 < l {
        let len = (l - s0).min(CHUNK);
        let pos = &mut pos[..len];
        walk.positions(s0, pos);
        let (dt, dtu, y, up) = (
            &mut dt[..len],
            &mut dtu[..len],
            &mut y[..len],
            &mut up[..len],
        );
        lanes.gather(plan.x, pos, up);
        // dt = softplus(dt_proj + bias) in two passes, as the 1D scan's `prep`: each half
        // of the softplus (and the projection before it) is a long dependency chain, and
        // one loop over all of it holds more in flight than the scheduler does. The
        // arithmetic (and so every bit) is that of `softplus(acc + bias)` in one pass.
        for (i, &p) in pos.iter().enumerate() {
            let row = &plan.proj[prow + p * pstride..prow + p * pstride + r];
            let mut acc = splat(0.0);
            for (wv, &pv) in wdt.iter().zip(row) {
                acc = fma(*wv, splat(pv), acc);
            }
            let x = acc + bias;
            dt[i] = x;
            dtu[i] = softplus_exp(x);
        }
        for i in 0..len {
            let t = softplus_finish(dt[i], dtu[i]);
            dtu[i] = t * up[i];
            dt[i] = t;
            y[i] = dskip * up[i];
        }
        let bsrc = Walked {
            p: plan.proj,
            base: prow + r,
            stride: pstride,
            pos,
        };
        let csrc = Walked {
            base: prow + r + n,
            ..bsrc
        };
        kernel::chunk(h, a2, bsrc, csrc, dt, dtu, y);
        if add {
            dst.scatter::<true>(y, pos, out)
        } else {
            dst.scatter::<false>(y, pos, out)
        }
        s0 += len;
    }
}
}

/// Varying B/C read straight from `proj` along the walk: value `(s, n)` at
/// `p[base + pos[s] * stride + n]`.
#[derive(Clone, Copy)]
struct Walked<'a> {
    p: &'a [f32],
    base: usize,
    stride: usize,
    pos: &'a [usize],
}

impl Bc for Walked<'_> {
    type Row<'r>
        = &'r [f32]
    where
        Self: 'r;
    #[inline(always)]
    fn row(&self, s: usize, n0: usize, nb: usize) -> &[f32] {
        let o = self.base + self.pos[s] * self.stride + n0;
        &self.p[o..o + nb]
    }
    #[inline(always)]
    fn at(row: &[f32], i: usize) -> V {
        splat(row[i])
    }
}

level_fn! {
/// All four directions of one panel into `out`: `(y0 + y2) + (y1 + y3)`, with `y1 + y3`
/// staged in a panel-local `(L, LANES)` buffer at the end of the scratch.
fn run_all(plan: &FusedPlan<'_>, b: usize, panel: usize, out: &Sink<'_>, scratch: &mut [f32]) {
    let n = plan.s.dstate;
    let l = plan.l;
    let head = vectors_len(2 * n + plan.s.dt_rank + 4 * CHUNK);
    let (work, rest) = scratch.split_at_mut(head.min(scratch.len()));
    let (tmpv, _) = split_scratch(rest, l);
    if tmpv.len() < l {
        return;
    }
    let at = lanes(plan, b, panel);
    // y0 -> out, + y2 -> out.
    run_dir(plan, b, panel, 0, out, at, false, work);
    run_dir(plan, b, panel, 2, out, at, true, work);
    // y1 + y3 into the local buffer (position p at p * LANES).
    let local_at = Lanes {
        base: 0,
        pstride: LANES,
        lstride: 1,
        nl: at.nl,
    };
    {
        let tmp: &mut [f32] = bytemuck::cast_slice_mut(&mut tmpv[..]);
        let local = Sink::new(tmp);
        run_dir(plan, b, panel, 1, &local, local_at, false, work);
        run_dir(plan, b, panel, 3, &local, local_at, true, work);
    }
    // out += local, position by position.
    let mut pos = [0usize; CHUNK];
    let mut p0 = 0;
    while p0 < l {
        let len = (l - p0).min(CHUNK);
        for (i, p) in pos[..len].iter_mut().enumerate() {
            *p = p0 + i;
        }
        at.scatter::<true>(&tmpv[p0..p0 + len], &pos[..len], out);
        p0 += len;
    }
}
}
