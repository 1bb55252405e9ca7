//! The 1D selective scan at one level: packing, preparation, kernel and unpacking of a work
//! unit (the driver, validation and work items are in `crate::scan`).

#[cfg(feature = "compact")]
use super::kernel::AnyBc;
use super::kernel::{self, PerLane, Rows};
use super::math::{silu, softplus_exp, softplus_finish};
use super::pack::{pack_rows, pack_rows_run, LanesOps};
use super::vecs::split_scratch;
use super::{from_arr, splat, to_arr, LANES, V};
use crate::pack::{Lanes, Run};
use crate::scan::{linear_walk, ScanPlan, Sink, CHUNK};
use crate::shape::BcLayout;

level_fn! {
    /// Runs the units `units` of `plan` (its level is this module's).
    pub(crate) fn run_units(
        plan: &ScanPlan<'_>,
        units: core::ops::Range<usize>,
        out: &Sink<'_>,
        state: Option<&Sink<'_>>,
        scratch: &mut [f32],
    ) {
        debug_assert_eq!(plan.level(), super::LEVEL);
        for u in units {
            run_unit(plan, u, out, state, scratch);
        }
    }
}

level_fn! {
/// One unit: batch item `unit / panels`, panel `unit % panels`.
fn run_unit(
        plan: &ScanPlan<'_>,
        unit: usize,
        out: &Sink<'_>,
        state: Option<&Sink<'_>>,
        scratch: &mut [f32],
    ) {
    let s = &plan.v.shape;
    let n = s.dstate;
    let l = s.seqlen;
    let (b, panel) = (unit / plan.v.panels, unit % plan.v.panels);
    let (d0, nl) = plan.v.panel_channels(panel);
    let (vecs, rest) = split_scratch(scratch, 4 * n + 4 * CHUNK);
    let (h, vecs) = vecs.split_at_mut(n);
    let (a2, vecs) = vecs.split_at_mut(n);
    let (bconst, vecs) = vecs.split_at_mut(n);
    let (cconst, vecs) = vecs.split_at_mut(n);
    let (dt, vecs) = vecs.split_at_mut(CHUNK);
    let (dtu, vecs) = vecs.split_at_mut(CHUNK);
    let (y, up) = vecs.split_at_mut(CHUNK);
    let bcp = &mut rest[..2 * (CHUNK * n + LANES)];

    // Per-channel vectors: lane j of `t[(d0 + j) * stride + k]`, zero past the panel.
    let per_chan = |t: &[f32], stride: usize, k: usize| -> V {
        let mut a = [0.0f32; LANES];
        for (j, x) in a.iter_mut().enumerate().take(nl) {
            *x = t[(d0 + j) * stride + k];
        }
        from_arr(a)
    };
    let log2e = splat(core::f32::consts::LOG2_E);
    for k in 0..n {
        a2[k] = per_chan(plan.args.a, n, k) * log2e;
        if s.b == BcLayout::Constant {
            bconst[k] = per_chan(plan.args.b, n, k);
        }
        if s.c == BcLayout::Constant {
            cconst[k] = per_chan(plan.args.c, n, k);
        }
        h[k] = match plan.args.initial_state {
            Some(st) => per_chan(&st[b * s.dim * n..], n, k),
            None => splat(0.0),
        };
    }
    let dskip = plan.args.d_skip.map(|t| per_chan(t, 1, 0));
    let bias = plan
        .args
        .delta_bias
        .map_or(splat(0.0), |t| per_chan(t, 1, 0));

    let lanes = Lanes::panel(s.layout, b, d0, nl, s.dim, l);
    // Row offset of group data for B/C varying: ((b*G + g)*N + k)*L + p.
    let bc_row = |layout: BcLayout| -> usize {
        match layout {
            BcLayout::Grouped(g) => (b * g + d0 / (s.dim / g)) * n * l,
            BcLayout::Constant => 0,
        }
    };
    let (brow, crow) = (bc_row(s.b), bc_row(s.c));

    #[cfg(not(feature = "compact"))]
    let lin = linear_walk(&plan.walk);
    // With `compact`, every walk takes the positions path: the same values, moved by one copy
    // of the packers instead of two.
    // (`linear_walk` picks the path in default builds only.)
    #[cfg(feature = "compact")]
    let lin: Option<bool> = {
        let _ = linear_walk;
        None
    };
    let mut pos = [0usize; CHUNK];
    // A channel-first run's first chunk is shortened so that every later chunk's blocks of
    // `LANES` positions start on a cache line of the output (and of `u` and `delta`, when their
    // rows sit at the same offsets, as the allocations of one size usually do): a block that
    // straddles two lines costs each row two line accesses. Chunk boundaries do not change
    // the values (the state is carried exactly), only where the blocks fall.
    let lead = match lin {
        Some(rev) if lanes.pstride == 1 => {
            aligned_lead(out.as_ptr() as usize, lanes.base, plan.walk.start, rev)
        }
        _ => CHUNK,
    };
    let mut s0 = 0;
    while s0 < l {
        let len = (l - s0).min(if s0 == 0 { lead } else { CHUNK });
        let (dt, dtu, y, up) = (
            &mut dt[..len],
            &mut dtu[..len],
            &mut y[..len],
            &mut up[..len],
        );
        let (bp, cp) = bcp.split_at_mut(CHUNK * n + LANES);
        // Pack: raw u and delta, the B/C rows -> (step, n).
        let run = lin.map(|rev| Run {
            first: if rev {
                plan.walk.start - s0
            } else {
                plan.walk.start + s0
            },
            rev,
            len,
        });
        let pos = &mut pos[..len];
        match run {
            Some(run) => {
                lanes.gather_run(plan.args.u, run, up);
                lanes.gather_run(plan.args.delta, run, dt);
                if let BcLayout::Grouped(_) = s.b {
                    pack_rows_run(plan.args.b, brow, l, n, run, bp);
                }
                if let BcLayout::Grouped(_) = s.c {
                    pack_rows_run(plan.args.c, crow, l, n, run, cp);
                }
            }
            None => {
                plan.walk.positions(s0, pos);
                #[cfg(not(feature = "compact"))]
                lanes.gather(plan.args.u, pos, up);
                #[cfg(not(feature = "compact"))]
                lanes.gather(plan.args.delta, pos, dt);
                #[cfg(feature = "compact")]
                gather(&lanes, plan.args.u, pos, up);
                #[cfg(feature = "compact")]
                gather(&lanes, plan.args.delta, pos, dt);
                if let BcLayout::Grouped(_) = s.b {
                    pack_rows(plan.args.b, brow, l, n, pos, bp);
                }
                if let BcLayout::Grouped(_) = s.c {
                    pack_rows(plan.args.c, crow, l, n, pos, cp);
                }
            }
        }
        // dt = softplus(delta + bias), dtu = dt * u, y = D * u.
        #[cfg(not(feature = "compact"))]
        match (plan.args.delta_softplus, dskip) {
            (true, Some(d)) => prep::<true, true>(bias, d, up, dt, dtu, y),
            (true, None) => prep::<true, false>(bias, splat(0.0), up, dt, dtu, y),
            (false, Some(d)) => prep::<false, true>(bias, d, up, dt, dtu, y),
            (false, None) => prep::<false, false>(bias, splat(0.0), up, dt, dtu, y),
        }
        #[cfg(feature = "compact")]
        prep_compact(
            plan.args.delta_softplus,
            dskip.is_some(),
            bias,
            dskip.unwrap_or(splat(0.0)),
            up,
            dt,
            dtu,
            y,
        );
        // Kernel.
        let bpk = Rows { p: bp };
        let cpk = Rows { p: cp };
        let bpl = PerLane { v: bconst };
        let cpl = PerLane { v: cconst };
        // With `compact`: one kernel instance, B/C access chosen at run time.
        #[cfg(feature = "compact")]
        {
            let bk = match s.b {
                BcLayout::Grouped(_) => AnyBc::Rows(bpk),
                BcLayout::Constant => AnyBc::PerLane(bpl),
            };
            let ck = match s.c {
                BcLayout::Grouped(_) => AnyBc::Rows(cpk),
                BcLayout::Constant => AnyBc::PerLane(cpl),
            };
            kernel::chunk(h, a2, bk, ck, dt, dtu, y);
        }
        #[cfg(not(feature = "compact"))]
        match (s.b, s.c) {
            (BcLayout::Grouped(_), BcLayout::Grouped(_)) => {
                kernel::chunk(h, a2, bpk, cpk, dt, dtu, y)
            }
            (BcLayout::Grouped(_), BcLayout::Constant) => {
                kernel::chunk(h, a2, bpk, cpl, dt, dtu, y)
            }
            (BcLayout::Constant, BcLayout::Grouped(_)) => {
                kernel::chunk(h, a2, bpl, cpk, dt, dtu, y)
            }
            (BcLayout::Constant, BcLayout::Constant) => {
                kernel::chunk(h, a2, bpl, cpl, dt, dtu, y)
            }
        }
        // Unpack: out = y * silu(z).
        if let Some(z) = plan.args.z {
            match run {
                Some(run) => lanes.gather_run(z, run, up),
                #[cfg(not(feature = "compact"))]
                None => lanes.gather(z, pos, up),
                #[cfg(feature = "compact")]
                None => gather(&lanes, z, pos, up),
            }
            #[cfg(not(feature = "compact"))]
            for (yi, &zi) in y.iter_mut().zip(up.iter()) {
                *yi *= silu(zi);
            }
            #[cfg(feature = "compact")]
            gate(y, up);
        }
        match run {
            Some(run) => lanes.scatter_run::<false>(y, run, out),
            #[cfg(not(feature = "compact"))]
            None => lanes.scatter::<false>(y, pos, out),
            #[cfg(feature = "compact")]
            None => scatter(&lanes, y, pos, out),
        }
        s0 += len;
    }
    if let Some(st) = state {
        for (k, hk) in h.iter().enumerate() {
            let a = to_arr(*hk);
            for (j, &x) in a[..nl].iter().enumerate() {
                st.put((b * s.dim + d0 + j) * n + k, core::slice::from_ref(&x));
            }
        }
    }
}
}

/// Floats per cache line (64 bytes).
const LINE: usize = 16;

/// Steps of a channel-first run's first chunk (at most [`CHUNK`]) after which the run's
/// positions reach the start of a cache line of the buffer at `addr` (element `base + p` for
/// position `p`): for a forward run from `start`, `start + lead` is on a line; for a reversed
/// one, `start - lead + 1`, so that the next chunk's blocks (lowest position first) start on
/// lines. `addr` is a slice's start, so a multiple of 4.
#[inline(always)]
fn aligned_lead(addr: usize, base: usize, start: usize, rev: bool) -> usize {
    const _: () = assert!(CHUNK.is_multiple_of(LINE) && CHUNK >= LINE);
    let a = (addr / 4 % LINE + base % LINE + start % LINE) % LINE;
    if rev {
        // `(a - lead + 1) % LINE == 0`.
        match (a + 1) % LINE {
            0 => CHUNK,
            r => CHUNK - LINE + r,
        }
    } else {
        // `(a + lead) % LINE == 0`.
        CHUNK - a
    }
}

/// The body of `prep` with the flags `$sp` (softplus) and `$ds` (D skip): constants there,
/// run-time values in `prep_compact`.
macro_rules! prep_body {
    ($sp:expr, $ds:expr, $bias:ident, $d:ident, $up:ident, $dt:ident, $dtu:ident, $y:ident) => {{
        let n = $up.len().min($dt.len()).min($dtu.len()).min($y.len());
        if n == 0 {
            return;
        }
        let (up, dt, dtu, y) = (&$up[..n], &mut $dt[..n], &mut $dtu[..n], &mut $y[..n]);
        // Two passes when the softplus is on: each half of it is a long dependency chain (~50
        // cycles for ~15 operations), and a single loop over both would need more operations in
        // flight than the out-of-order scheduler holds. The exponential goes through `dtu`.
        if $sp {
            for i in 0..n {
                let x = dt[i] + $bias;
                dt[i] = x;
                dtu[i] = softplus_exp(x);
            }
        }
        for i in 0..n {
            let t = if $sp {
                softplus_finish(dt[i], dtu[i])
            } else {
                dt[i] + $bias
            };
            dtu[i] = t * up[i];
            dt[i] = t;
            y[i] = if $ds { $d * up[i] } else { splat(0.0) };
        }
    }};
}

/// The per-step inputs of the kernel from raw `u` (in `up`) and `delta` (in `dt`):
/// `dt = softplus(delta + bias)`, `dtu = dt * u`, `y = D * u` (or 0).
#[cfg(not(feature = "compact"))]
#[inline(always)]
fn prep<const SP: bool, const DS: bool>(
    bias: V,
    d: V,
    up: &[V],
    dt: &mut [V],
    dtu: &mut [V],
    y: &mut [V],
) {
    prep_body!(SP, DS, bias, d, up, dt, dtu, y)
}

#[cfg(feature = "compact")]
level_fn! {
    /// `prep` as one out-of-line copy for every flag combination (the `compact` feature).
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn prep_compact(
        sp: bool,
        ds: bool,
        bias: V,
        d: V,
        up: &[V],
        dt: &mut [V],
        dtu: &mut [V],
        y: &mut [V],
    ) {
        prep_body!(sp, ds, bias, d, up, dt, dtu, y)
    }
}

#[cfg(feature = "compact")]
level_fn! {
    /// `dst[s]` = the panel's lanes at position `pos[s]`: one out-of-line copy of
    /// [`LanesOps::gather`] (the `compact` feature).
    #[inline(never)]
    fn gather(lanes: &Lanes, t: &[f32], pos: &[usize], dst: &mut [V]) {
        lanes.gather(t, pos, dst);
    }
}

#[cfg(feature = "compact")]
level_fn! {
    /// Writes `src[s]` to the panel's lanes at position `pos[s]`: one out-of-line copy of
    /// [`LanesOps::scatter`] (the `compact` feature).
    #[inline(never)]
    fn scatter(lanes: &Lanes, src: &[V], pos: &[usize], out: &Sink<'_>) {
        lanes.scatter::<false>(src, pos, out);
    }
}

#[cfg(feature = "compact")]
level_fn! {
    /// The gate `y *= silu(z)` out of line (the `compact` feature).
    #[inline(never)]
    fn gate(y: &mut [V], z: &[V]) {
        for (yi, &zi) in y.iter_mut().zip(z.iter()) {
            *yi *= silu(zi);
        }
    }
}
