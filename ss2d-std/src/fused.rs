//! The fused SS2D scan: the same result as [`crate::unfused::ss2d_scan_unfused`]
//! (cross_scan -> x_proj -> dt_proj -> selective scan -> cross_merge) without any `(B, 4, D, L)`
//! tensor.
//!
//! 1. `proj = x_proj(x)` on the unpermuted grid, `(B, L, 4, R + 2N)`: one GEMM per block of
//!    positions (blocks of fixed size, so the result does not depend on the thread count).
//! 2. `ss2d_core::fused`: per (batch, channel panel, direction) the kernel walks the direction
//!    over `x` itself, computes dt from the low-rank projection in registers, scans, and writes
//!    its output at the unpermuted positions; directions merge in the fixed order
//!    `(y0 + y2) + (y1 + y3)` (upstream's cross2d order).
//! 3. When batch x panels gives too few work items for the threads, directions are split over
//!    items (pairs, then single directions) into partial buffers combined in that same order, so
//!    the output is bitwise identical for every thread count.

use rayon::prelude::*;
use ss2d_core::fused::{combine, CrossMode, FusedPlan, FusedShape, FusedSplit, FusedWeights};
use ss2d_core::{Error, Layout};

use crate::cross::ScanMode;
use crate::pool::Buf;
use crate::unfused::{Ss2dScanShape, Ss2dScanWeights};
use crate::Parallelism;

/// Positions per projection GEMM block (fixed: the blocking must not depend on threads).
const PROJ_BLOCK: usize = 256;

/// Elements per block of the final combine pass.
const COMBINE_BLOCK: usize = 1 << 14;

fn gemm_err(_: ss2d_gemm::Error) -> Error {
    Error::Unsupported {
        what: "x_proj matrix product refused its arguments",
    }
}

/// The x_proj projection on the unpermuted grid: `proj[b, l, k*C + c] = sum_d W[k, c, d] x[b, d, l]`,
/// `(B, L, 4 * C)` row-major with `C = R + 2N`.
pub fn project_grid(
    shape: &Ss2dScanShape,
    x_proj_weight: &[f32],
    x: &[f32],
    par: Parallelism<'_>,
) -> Result<Vec<f32>, Error> {
    let (bsz, d) = (shape.batch, shape.dim);
    let l = shape.h * shape.w;
    let c4 = 4 * (shape.dt_rank + 2 * shape.dstate);
    // A reused buffer (stale contents): every element is written below.
    let mut proj = crate::pool::take(bsz * l * c4);
    if proj.is_empty() || d == 0 {
        proj.fill(0.0);
        return Ok(proj);
    }
    // W^T as a (D x 4C) view of the (4C x D) row-major weight.
    let wt = ss2d_gemm::MatRef::row_major(x_proj_weight, c4, d).t();
    let blocks_per_b = l.div_ceil(PROJ_BLOCK);
    let run = |i: usize, dst: &mut [f32]| -> Result<(), Error> {
        let (b, blk) = (i / blocks_per_b, i % blocks_per_b);
        let l0 = blk * PROJ_BLOCK;
        let rows = dst.len() / c4;
        // x rows l0.. of batch b as an (rows x D) view.
        let (off, rs, cs) = if shape.channel_first {
            (b * d * l + l0, 1, l)
        } else {
            (b * l * d + l0 * d, d, 1)
        };
        let xv = ss2d_gemm::MatRef {
            data: &x[off..],
            rows,
            cols: d,
            row_stride: rs,
            col_stride: cs,
        };
        let dv = ss2d_gemm::MatMut::row_major(dst, rows, c4);
        ss2d_gemm::matmul(dv, xv, wt).map_err(gemm_err)
    };
    // Blocks never straddle batch items: chunk per batch item, then per PROJ_BLOCK rows.
    let chunks: Vec<&mut [f32]> = proj
        .chunks_mut(l * c4)
        .flat_map(|pb| pb.chunks_mut(PROJ_BLOCK * c4))
        .collect();
    if par.is_sequential() {
        for (i, ch) in chunks.into_iter().enumerate() {
            run(i, ch)?;
        }
        Ok(())
    } else {
        par.install(|| {
            chunks
                .into_par_iter()
                .enumerate()
                .try_for_each(|(i, ch)| run(i, ch))
        })
    }
    .map(|()| proj)
}

fn core_mode(m: ScanMode) -> CrossMode {
    match m {
        ScanMode::Cross2d => CrossMode::Cross2d,
        ScanMode::Unidi => CrossMode::Unidi,
        ScanMode::Bidi => CrossMode::Bidi,
    }
}

/// `(B, D, L)` -> `(B, L, D)` (or back with `d` and `l` swapped): per batch item the blocked
/// register transpose of [`ss2d_core::transpose::transpose`], in parts of whole columns so
/// that a batch of one still spreads over the threads.
fn transpose_bdl(
    src: &[f32],
    dst: &mut [f32],
    d: usize,
    l: usize,
    par: Parallelism<'_>,
) -> Result<(), Error> {
    let per = d * l;
    if per == 0 {
        return Ok(());
    }
    let batch = dst.len() / per;
    let one = |bi: usize, c0: usize, part: &mut [f32]| {
        ss2d_core::transpose::transpose(&src[bi * per..(bi + 1) * per], d, l, c0, part)
    };
    if par.is_sequential() {
        for (bi, ch) in dst.chunks_mut(per).enumerate() {
            one(bi, 0, ch)?;
        }
        return Ok(());
    }
    // Parts of at least 64 columns (a few tens of KiB), about four per thread overall.
    let parts_per_item = (4 * par.threads()).div_ceil(batch.max(1)).max(1);
    let cols = l
        .div_ceil(parts_per_item)
        .max(64)
        .next_multiple_of(ss2d_core::MAX_LANES)
        .min(l);
    par.install(|| {
        dst.par_chunks_mut(per)
            .enumerate()
            .try_for_each(|(bi, item)| {
                item.par_chunks_mut(cols * d)
                    .enumerate()
                    .try_for_each(|(k, part)| one(bi, k * cols, part))
            })
    })
}

/// The fused SS2D scan (module docs). Same contract as
/// [`crate::unfused::ss2d_scan_unfused`]: `x` after conv + SiLU in the layout of
/// `shape.channel_first`, `y_out` the merged output in the same layout. Nothing is written on
/// error.
///
/// Channel-first data is transposed to channel-last once on the way in and once on the way
/// out: the column-major directions would otherwise read and write with a stride of `W`
/// elements per lane, which costs far more than the two transposes.
pub fn ss2d_scan(
    shape: &Ss2dScanShape,
    weights: &Ss2dScanWeights<'_>,
    x: &[f32],
    y_out: &mut [f32],
    par: Parallelism<'_>,
) -> Result<(), Error> {
    let sizes = shape.validate(weights)?;
    if x.len() != sizes.x_len {
        return Err(Error::Length {
            tensor: "x",
            expected: sizes.x_len,
            actual: x.len(),
        });
    }
    if y_out.len() != sizes.x_len {
        return Err(Error::Length {
            tensor: "y",
            expected: sizes.x_len,
            actual: y_out.len(),
        });
    }
    if sizes.x_len == 0 {
        // No batch, channels or positions: nothing to read or write (and no scratch sized by
        // the other dimensions is allocated).
        return Ok(());
    }
    if !shape.channel_first {
        return ss2d_scan_layout(shape, weights, x, y_out, par);
    }
    let (d, l) = (shape.dim, shape.h * shape.w);
    // Reused buffers (stale contents): the transpose writes all of `xt`, the scan all of `yt`.
    let mut xt = Buf::new(x.len());
    transpose_bdl(x, &mut xt, d, l, par)?;
    let mut yt = Buf::new(x.len());
    let cl = Ss2dScanShape {
        channel_first: false,
        ..*shape
    };
    ss2d_scan_layout(&cl, weights, &xt, &mut yt, par)?;
    transpose_bdl(&yt, y_out, l, d, par)
}

/// [`ss2d_scan`] in the layout the shape names, without the channel-first transposes.
fn ss2d_scan_layout(
    shape: &Ss2dScanShape,
    weights: &Ss2dScanWeights<'_>,
    x: &[f32],
    y_out: &mut [f32],
    par: Parallelism<'_>,
) -> Result<(), Error> {
    let sizes = shape.validate(weights)?;
    if x.len() != sizes.x_len {
        return Err(Error::Length {
            tensor: "x",
            expected: sizes.x_len,
            actual: x.len(),
        });
    }
    if y_out.len() != sizes.x_len {
        return Err(Error::Length {
            tensor: "y",
            expected: sizes.x_len,
            actual: y_out.len(),
        });
    }
    let proj = project_grid(shape, weights.x_proj_weight, x, par)?;
    let fshape = FusedShape {
        batch: shape.batch,
        dim: shape.dim,
        h: shape.h,
        w: shape.w,
        dstate: shape.dstate,
        dt_rank: shape.dt_rank,
        mode: core_mode(shape.mode),
        layout: if shape.channel_first {
            Layout::ChannelFirst
        } else {
            Layout::ChannelLast
        },
    };
    let fw = FusedWeights {
        dt_projs_weight: weights.dt_projs_weight,
        dt_projs_bias: weights.dt_projs_bias,
        a_logs: weights.a_logs,
        ds: weights.ds,
    };
    // `proj` goes back to the pool when the scan is done.
    let proj = Buf::from_vec(proj);
    let plan = FusedPlan::new(&fshape, fw, x, &proj)?;
    let threads = par.threads();
    let split = if par.is_sequential() || plan.units(FusedSplit::All) >= 2 * threads {
        FusedSplit::All
    } else if plan.units(FusedSplit::Pairs) >= 2 * threads {
        FusedSplit::Pairs
    } else {
        FusedSplit::Dirs
    };
    let n = plan.out_len();
    // Split buffers' prior contents are ignored by the plan: reused buffers.
    let mut extra: Vec<Buf> = (1..split.buffers()).map(|_| Buf::new(n)).collect();
    let mut bufs: Vec<&mut [f32]> = Vec::with_capacity(4);
    bufs.push(y_out);
    bufs.extend(extra.iter_mut().map(|v| &mut v[..]));
    let scratch_len = plan.scratch_len(split);
    {
        let count = if par.is_sequential() {
            1
        } else {
            plan.units(split)
        };
        let mut items = plan.split(&mut bufs, split, count)?;
        let items: Vec<_> = items.items().collect();
        if par.is_sequential() {
            // Scratch contents never matter (ss2d-core docs): a reused buffer.
            let mut scratch = Buf::new(scratch_len);
            for item in items {
                item.run(&mut scratch)?;
            }
        } else {
            par.install(|| {
                items
                    .into_par_iter()
                    .try_for_each_init(|| Buf::new(scratch_len), |scratch, item| item.run(scratch))
            })?;
        }
    }
    if split != FusedSplit::All {
        let blocks = n.div_ceil(COMBINE_BLOCK);
        // Each block touches a disjoint range of every buffer: split them all by blocks.
        let mut per_block: Vec<Vec<&mut [f32]>> = (0..blocks).map(|_| Vec::new()).collect();
        for buf in bufs.iter_mut() {
            for (i, ch) in buf.chunks_mut(COMBINE_BLOCK).enumerate() {
                per_block[i].push(ch);
            }
        }
        par.install(|| {
            per_block.into_par_iter().for_each(|mut b| {
                let len = b.first().map_or(0, |s| s.len());
                combine(split, &mut b, 0..len);
            })
        });
    }
    Ok(())
}
