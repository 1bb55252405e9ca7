//! The unfused SS2D scan: upstream's composition, step by step (docs/semantics.md section 3.1,
//! steps 6-11). The reference path for the fused scan and the baseline of the benches.
//!
//! From `x` (after the depthwise conv and SiLU), `(B, D, H, W)` or `(B, H, W, D)`:
//!
//! ```text
//! xs    = cross_scan(x)                                   (B, 4, D, L)
//! x_dbl = einsum('kcd,bkdl->bkcl', x_proj_weight, xs)     (B, 4, R+2N, L)
//! dts_r, Bs, Cs = split(x_dbl, [R, N, N])                 (B, 4, R|N|N, L)
//! dts   = einsum('kdr,bkrl->bkdl', dt_projs_weight, dts_r) (B, 4, D, L), no bias here
//! ys    = selective_scan(u = xs, delta = dts, A = -exp(A_logs), B = Bs, C = Cs (G = 4),
//!                        D = Ds, delta_bias = dt_projs_bias, softplus)   over (B, 4D, L)
//! y     = cross_merge(ys)                                 (B, D, L) or (B, L, D)
//! ```
//!
//! Every step materializes its tensor (allocation is fine here); the projections are plain
//! loops with contiguous inner loops over positions. Each output element is a fixed-order sum
//! (over the reduced index, ascending), so results are bitwise identical for every
//! [`Parallelism`].

use ss2d_core::{BcLayout, Error, Layout, ScanArgs, ScanShape, Walk, MAX_DSTATE};

use crate::cross::{cross_merge, cross_scan, for_each_rows, CrossDims, CrossOpts, ScanMode};
use crate::Parallelism;

/// Directions of the cross-scan (VMamba's `k_group`).
pub const K: usize = 4;

/// The scan parameters of one SS2D module, under VMamba's state_dict names (docs/semantics.md
/// section 5). Row-major `f32`.
#[derive(Clone, Copy, Debug)]
pub struct Ss2dScanWeights<'a> {
    /// `x_proj_weight`: `(4, R + 2N, D)`, rows `[dt (R) | B (N) | C (N)]`.
    pub x_proj_weight: &'a [f32],
    /// `dt_projs_weight`: `(4, D, R)`.
    pub dt_projs_weight: &'a [f32],
    /// `dt_projs_bias`: `(4, D)` (the scan's `delta_bias`, flattened k-major).
    pub dt_projs_bias: &'a [f32],
    /// `A_logs`: `(4D, N)`; `A = -exp(A_logs)`.
    pub a_logs: &'a [f32],
    /// `Ds`: `(4D,)`, the skip connection.
    pub ds: &'a [f32],
}

/// Sizes, mode and layout of an SS2D scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ss2dScanShape {
    /// Batch size.
    pub batch: usize,
    /// Channels `D` (`d_inner`).
    pub dim: usize,
    /// Grid height `H`.
    pub h: usize,
    /// Grid width `W`.
    pub w: usize,
    /// State size `N` (`d_state`), `1..=256`.
    pub dstate: usize,
    /// Rank `R` of the dt projection (`dt_rank`, resolved).
    pub dt_rank: usize,
    /// Cross-scan mode.
    pub mode: ScanMode,
    /// Layout of `x` and `y`: `(B, D, H, W)` when true, `(B, H, W, D)` when false.
    pub channel_first: bool,
}

/// Sizes derived by [`Ss2dScanShape::validate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ss2dSizes {
    /// `L = H * W`.
    pub seqlen: usize,
    /// Rows of `x_proj_weight` per direction: `R + 2N`.
    pub proj_rows: usize,
    /// Elements of `x` and `y`: `B * D * L`.
    pub x_len: usize,
    /// Elements of `xs`, `dts`, `ys`: `B * 4 * D * L`.
    pub seq_len: usize,
    /// Elements of `x_dbl`: `B * 4 * (R + 2N) * L`.
    pub x_dbl_len: usize,
    /// Elements of `Bs` and `Cs`: `B * 4 * N * L`.
    pub bc_len: usize,
}

pub(crate) fn mul(what: &'static str, a: usize, b: usize) -> Result<usize, Error> {
    a.checked_mul(b).ok_or(Error::Overflow { what })
}

pub(crate) fn check_len(tensor: &'static str, expected: usize, actual: usize) -> Result<(), Error> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::Length {
            tensor,
            expected,
            actual,
        })
    }
}

impl Ss2dScanShape {
    /// Checks the sizes (`dstate` in `1..=256`, every product representable) and the length
    /// of every weight, naming the offending tensor ([`Error::Length`], [`Error::Dstate`],
    /// [`Error::Overflow`]). Zero `batch`, `dim`, `h`, `w` or `dt_rank` are valid.
    pub fn validate(&self, weights: &Ss2dScanWeights<'_>) -> Result<Ss2dSizes, Error> {
        let sizes = self.sizes()?;
        let kd = mul("4*dim", K, self.dim)?;
        check_len(
            "x_proj_weight",
            mul("x_proj_weight size", kd, sizes.proj_rows)?,
            weights.x_proj_weight.len(),
        )?;
        check_len(
            "dt_projs_weight",
            mul("dt_projs_weight size", kd, self.dt_rank)?,
            weights.dt_projs_weight.len(),
        )?;
        check_len("dt_projs_bias", kd, weights.dt_projs_bias.len())?;
        check_len(
            "A_logs",
            mul("A_logs size", kd, self.dstate)?,
            weights.a_logs.len(),
        )?;
        check_len("Ds", kd, weights.ds.len())?;
        Ok(sizes)
    }

    /// The derived sizes, without looking at weights.
    pub fn sizes(&self) -> Result<Ss2dSizes, Error> {
        if self.dstate == 0 || self.dstate > MAX_DSTATE {
            return Err(Error::Dstate {
                dstate: self.dstate,
            });
        }
        let seqlen = mul("h*w", self.h, self.w)?;
        let proj_rows = self
            .dt_rank
            .checked_add(mul("2*dstate", 2, self.dstate)?)
            .ok_or(Error::Overflow {
                what: "dt_rank + 2*dstate",
            })?;
        let bl = mul("batch*h*w", self.batch, seqlen)?;
        let x_len = mul("batch*dim*h*w", bl, self.dim)?;
        let seq_len = mul("batch*4*dim*h*w", x_len, K)?;
        let x_dbl_len = mul(
            "batch*4*(dt_rank+2*dstate)*h*w",
            mul("batch*4*(dt_rank+2*dstate)*h*w", bl, K)?,
            proj_rows,
        )?;
        let bc_len = mul(
            "batch*4*dstate*h*w",
            mul("batch*4*dstate*h*w", bl, K)?,
            self.dstate,
        )?;
        for n in [seq_len, x_dbl_len] {
            if isize::try_from(n).is_err() {
                return Err(Error::Overflow {
                    what: "tensor size",
                });
            }
        }
        Ok(Ss2dSizes {
            seqlen,
            proj_rows,
            x_len,
            seq_len,
            x_dbl_len,
            bc_len,
        })
    }

    /// The cross-scan sizes (`channels = dim`).
    pub fn cross_dims(&self) -> CrossDims {
        CrossDims {
            batch: self.batch,
            channels: self.dim,
            h: self.h,
            w: self.w,
        }
    }

    /// The cross-scan options SS2D uses: this mode, `x`/`y` in this layout, sequences
    /// channel-first `(B, 4, D, L)`.
    pub fn cross_opts(&self) -> CrossOpts {
        CrossOpts {
            mode: self.mode,
            in_channel_first: self.channel_first,
            out_channel_first: true,
            one_by_one: false,
        }
    }
}

/// Batched small matrix product over the four directions:
/// `out[blk, m, l] = sum_{j < kd} w[blk % 4, m, j] * inp[blk * in_block + (in_row0 + j) * len + l]`
/// for `blk` in `0..blocks` (`blk = b * 4 + k`), `out` of `(blocks, m, len)`. Each element sums
/// `j` ascending from `0.0`, whatever the chunking.
#[allow(clippy::too_many_arguments)]
fn small_matmul(
    w: &[f32],
    m: usize,
    kd: usize,
    inp: &[f32],
    in_block: usize,
    in_row0: usize,
    len: usize,
    out: &mut [f32],
    par: Parallelism<'_>,
) {
    let rows = out.len() / len.max(1);
    if rows == 0 || len == 0 {
        return;
    }
    let blocks = rows / m;
    // Whole blocks per chunk when there are enough of them for the threads; else split blocks.
    let want = 2 * par.threads();
    let rpc = if blocks >= want {
        m
    } else {
        m.div_ceil(want.div_ceil(blocks.max(1))).max(1)
    };
    for_each_rows(par, out, len, rpc, |r0, chunk| {
        let nrows = chunk.len() / len;
        let mut r = r0;
        while r < r0 + nrows {
            // A run of rows of one block.
            let blk = r / m;
            let m0 = r % m;
            let m1 = m.min(m0 + (r0 + nrows - r));
            let wk = &w[(blk % K) * m * kd..(blk % K + 1) * m * kd];
            let ibase = blk * in_block + in_row0 * len;
            let orows = &mut chunk[(r - r0) * len..(r - r0 + m1 - m0) * len];
            matmul_run(wk, m0, m1, kd, &inp[ibase..ibase + kd * len], len, orows);
            r += m1 - m0;
        }
    });
}

/// Rows `m0..m1` of `wk (m, kd) @ inp (kd, len)` into `orows` (`(m1 - m0, len)`), on
/// `ss2d_core::gemm` (the register-blocked kernel of the current SIMD level): every element is
/// one fixed FMA chain over `j` ascending from `0.0`, whatever the split. (The hand-written
/// block loop this replaces relied on the compiler vectorizing it at the x86-64 baseline and
/// lost that on an unrelated change: 2.6x the instructions.)
fn matmul_run(
    wk: &[f32],
    m0: usize,
    m1: usize,
    kd: usize,
    inp: &[f32],
    len: usize,
    orows: &mut [f32],
) {
    let p = ss2d_core::gemm::Product {
        m: m1 - m0,
        k: kd,
        n: len,
        a: &wk[m0 * kd..m1 * kd],
        a_strides: (kd, 1),
        b: inp,
        b_row_stride: len,
        bias: ss2d_core::gemm::Bias::None,
        silu: false,
    };
    if kd == 0 {
        orows.fill(0.0);
    } else if let Err(e) = p.run(orows, len) {
        unreachable!("unfused product with inconsistent views: {e}");
    }
}

/// Step 7: `x_dbl[b,k,c,l] = sum_d x_proj_weight[k,c,d] * xs[b,k,d,l]`, `(B, 4, R+2N, L)`.
/// `xs` is the cross-scanned input `(B, 4, D, L)`.
pub fn x_proj(
    shape: &Ss2dScanShape,
    x_proj_weight: &[f32],
    xs: &[f32],
    par: Parallelism<'_>,
) -> Result<Vec<f32>, Error> {
    let s = shape.sizes()?;
    check_len(
        "x_proj_weight",
        mul(
            "x_proj_weight size",
            mul("x_proj_weight size", K, shape.dim)?,
            s.proj_rows,
        )?,
        x_proj_weight.len(),
    )?;
    check_len("xs", s.seq_len, xs.len())?;
    // `dim * L` divides `seq_len`, which did not overflow.
    let block = mul("dim*h*w", shape.dim, s.seqlen)?;
    let mut out = vec![0.0f32; s.x_dbl_len];
    small_matmul(
        x_proj_weight,
        s.proj_rows,
        shape.dim,
        xs,
        block,
        0,
        s.seqlen,
        &mut out,
        par,
    );
    Ok(out)
}

/// The projected scan inputs (steps 7-8).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Projection {
    /// `dts` `(B, 4, D, L)`: dt after `dt_projs_weight`, before bias and softplus
    /// (golden `debug.dts`, viewed `(B, 4D, L)`).
    pub dts: Vec<f32>,
    /// `Bs` `(B, 4, N, L)` (golden `debug.Bs`).
    pub bs: Vec<f32>,
    /// `Cs` `(B, 4, N, L)` (golden `debug.Cs`).
    pub cs: Vec<f32>,
}

/// Steps 7-8 from `x_dbl` (see [`x_proj`]): splits it into `dts_r | Bs | Cs` and applies
/// `dt_projs_weight` (no bias).
pub fn project_x_dbl(
    shape: &Ss2dScanShape,
    dt_projs_weight: &[f32],
    x_dbl: &[f32],
    par: Parallelism<'_>,
) -> Result<Projection, Error> {
    let s = shape.sizes()?;
    let (r, n, l, d) = (shape.dt_rank, shape.dstate, s.seqlen, shape.dim);
    check_len(
        "dt_projs_weight",
        mul(
            "dt_projs_weight size",
            mul("dt_projs_weight size", K, d)?,
            r,
        )?,
        dt_projs_weight.len(),
    )?;
    check_len("x_dbl", s.x_dbl_len, x_dbl.len())?;
    let block = mul("(dt_rank+2*dstate)*h*w", s.proj_rows, l)?;
    let mut dts = vec![0.0f32; s.seq_len];
    small_matmul(dt_projs_weight, d, r, x_dbl, block, 0, l, &mut dts, par);
    let mut bs = vec![0.0f32; s.bc_len];
    let mut cs = vec![0.0f32; s.bc_len];
    let nl = n * l;
    if nl > 0 {
        for (blk, (bo, co)) in bs.chunks_mut(nl).zip(cs.chunks_mut(nl)).enumerate() {
            let base = blk * block + r * l;
            bo.copy_from_slice(&x_dbl[base..base + nl]);
            co.copy_from_slice(&x_dbl[base + nl..base + 2 * nl]);
        }
    }
    Ok(Projection { dts, bs, cs })
}

/// Steps 7-8: [`x_proj`] then [`project_x_dbl`].
pub fn project(
    shape: &Ss2dScanShape,
    weights: &Ss2dScanWeights<'_>,
    xs: &[f32],
    par: Parallelism<'_>,
) -> Result<Projection, Error> {
    shape.validate(weights)?;
    let x_dbl = x_proj(shape, weights.x_proj_weight, xs, par)?;
    project_x_dbl(shape, weights.dt_projs_weight, &x_dbl, par)
}

/// `A = -exp(A_logs)`, as upstream (`-torch.exp(A_logs.float())`).
pub fn a_from_logs(a_logs: &[f32]) -> Vec<f32> {
    a_logs.iter().map(|&v| -v.exp()).collect()
}

/// Steps 9-10: the selective scan over `(B, 4D, L)` (`u = xs`, `delta = dts`,
/// `A = -exp(A_logs)`, `B`/`C` grouped by direction, `D = Ds`, `delta_bias = dt_projs_bias`,
/// softplus on, no `z`). Returns `ys` `(B, 4, D, L)`, each direction in its own scan order
/// (golden `debug.ys`).
pub fn scan_directions(
    shape: &Ss2dScanShape,
    weights: &Ss2dScanWeights<'_>,
    xs: &[f32],
    proj: &Projection,
    par: Parallelism<'_>,
) -> Result<Vec<f32>, Error> {
    let s = shape.validate(weights)?;
    check_len("xs", s.seq_len, xs.len())?;
    check_len("dts", s.seq_len, proj.dts.len())?;
    check_len("Bs", s.bc_len, proj.bs.len())?;
    check_len("Cs", s.bc_len, proj.cs.len())?;
    let a = a_from_logs(weights.a_logs);
    let scan_shape = ScanShape {
        batch: shape.batch,
        dim: K * shape.dim,
        seqlen: s.seqlen,
        dstate: shape.dstate,
        b: BcLayout::Grouped(K),
        c: BcLayout::Grouped(K),
        layout: Layout::ChannelFirst,
    };
    let args = ScanArgs {
        u: xs,
        delta: &proj.dts,
        a: &a,
        b: &proj.bs,
        c: &proj.cs,
        d_skip: Some(weights.ds),
        z: None,
        delta_bias: Some(weights.dt_projs_bias),
        delta_softplus: true,
        initial_state: None,
    };
    let mut ys = vec![0.0f32; s.seq_len];
    crate::selective_scan(
        &scan_shape,
        &Walk::forward(s.seqlen),
        &args,
        &mut ys,
        None,
        par,
    )?;
    Ok(ys)
}

/// Every intermediate tensor of the unfused scan (for tests and debugging; names as the
/// golden `debug.*` tensors).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ss2dIntermediates {
    /// `xs` `(B, 4, D, L)`: the cross-scanned input (`debug.us`, viewed `(B, 4D, L)`).
    pub xs: Vec<f32>,
    /// `dts`, `Bs`, `Cs` (`debug.dts`, `debug.Bs`, `debug.Cs`).
    pub proj: Projection,
    /// `ys` `(B, 4, D, L)`: scan outputs in scan order, `D*u` included (`debug.ys`).
    pub ys: Vec<f32>,
    /// `y`: the merged output, `(B, D, L)` channel-first or `(B, L, D)` channel-last
    /// (`debug.y_merged` is the channel-first form).
    pub y: Vec<f32>,
}

/// The whole unfused scan, returning every intermediate. `x`: `(B, D, H, W)` or
/// `(B, H, W, D)` per `shape.channel_first`.
pub fn ss2d_scan_unfused_intermediates(
    shape: &Ss2dScanShape,
    weights: &Ss2dScanWeights<'_>,
    x: &[f32],
    par: Parallelism<'_>,
) -> Result<Ss2dIntermediates, Error> {
    let s = shape.validate(weights)?;
    check_len("x", s.x_len, x.len())?;
    let mut xs = vec![0.0f32; s.seq_len];
    cross_scan(x, shape.cross_dims(), shape.cross_opts(), &mut xs, par)?;
    let proj = project(shape, weights, &xs, par)?;
    let ys = scan_directions(shape, weights, &xs, &proj, par)?;
    let mut y = vec![0.0f32; s.x_len];
    cross_merge(&ys, shape.cross_dims(), shape.cross_opts(), &mut y, par)?;
    Ok(Ss2dIntermediates { xs, proj, ys, y })
}

/// The unfused SS2D scan (docs/semantics.md section 3.1, steps 6-11): `x` (after conv + SiLU),
/// `(B, D, H, W)` or `(B, H, W, D)` per `shape.channel_first`, into `y_out` of the same
/// layout: `cross_scan -> x_proj -> dt_proj -> selective scan (B, 4D, L) -> cross_merge`.
///
/// Errors: everything [`Ss2dScanShape::validate`] reports, and [`Error::Length`] naming `x` or
/// `y` for wrong buffer lengths. Nothing is written on error.
pub fn ss2d_scan_unfused(
    shape: &Ss2dScanShape,
    weights: &Ss2dScanWeights<'_>,
    x: &[f32],
    y_out: &mut [f32],
    par: Parallelism<'_>,
) -> Result<(), Error> {
    let s = shape.validate(weights)?;
    check_len("x", s.x_len, x.len())?;
    check_len("y", s.x_len, y_out.len())?;
    if s.x_len == 0 {
        // Nothing to read or write; the intermediates sized by the other dimensions would be
        // dead work (and may not fit in memory).
        return Ok(());
    }
    let mut xs = vec![0.0f32; s.seq_len];
    cross_scan(x, shape.cross_dims(), shape.cross_opts(), &mut xs, par)?;
    let proj = project(shape, weights, &xs, par)?;
    let ys = scan_directions(shape, weights, &xs, &proj, par)?;
    drop(proj);
    cross_merge(&ys, shape.cross_dims(), shape.cross_opts(), y_out, par)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Naive triple loop.
    /// The f64 product and, per element, the sum of the terms' magnitudes (the error scale).
    fn naive(
        w: &[f32],
        m: usize,
        kd: usize,
        inp: &[f32],
        blocks: usize,
        len: usize,
    ) -> Vec<(f64, f64)> {
        let mut out = vec![(0.0, 0.0); blocks * m * len];
        for blk in 0..blocks {
            for mi in 0..m {
                for l in 0..len {
                    let (mut acc, mut mag) = (0.0f64, 0.0f64);
                    for j in 0..kd {
                        let t = w[((blk % K) * m + mi) * kd + j] as f64
                            * inp[(blk * kd + j) * len + l] as f64;
                        acc += t;
                        mag += t.abs();
                    }
                    out[(blk * m + mi) * len + l] = (acc, mag);
                }
            }
        }
        out
    }

    #[test]
    fn small_matmul_matches_naive_and_is_the_same_on_every_executor() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let mut compared = 0;
        for (m, kd, len, blocks) in [
            (3, 16, 35, 8),
            (38, 192, 200, 4),
            (48, 2, 1100, 4),
            (1, 1, 1, 4),
            (5, 0, 7, 4),
        ] {
            let w: Vec<f32> = (0..K * m * kd)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
                .collect();
            let inp: Vec<f32> = (0..blocks * kd * len)
                .map(|i| ((i * 53 % 97) as f32 - 48.0) / 48.0)
                .collect();
            let expect = naive(&w, m, kd, &inp, blocks, len);
            let mut first: Option<Vec<u32>> = None;
            for par in [Parallelism::Sequential, Parallelism::Pool(&pool)] {
                let mut out = vec![f32::NAN; blocks * m * len];
                small_matmul(&w, m, kd, &inp, kd * len, 0, len, &mut out, par);
                for (i, (&g, &(want, mag))) in out.iter().zip(&expect).enumerate() {
                    let err = (g as f64 - want).abs();
                    // NaN fails the comparison.
                    assert!(
                        err <= 1e-6 * mag + 1e-30,
                        "m={m} kd={kd} len={len} [{i}]: {g} vs {want}"
                    );
                    compared += 1;
                }
                let bits: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
                match &first {
                    None => first = Some(bits),
                    Some(f) => assert!(*f == bits, "m={m} kd={kd} len={len}: executors differ"),
                }
            }
        }
        assert!(compared > 0);
    }
}
