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
//!    the output is bitwise identical for every thread count. At `d_state = 1` a unit takes a
//!    group of channel panels ([`FusedPlan::with_group`]): the largest group that still gives
//!    every thread two units.

use ss2d_core::fused::{combine, FusedPlan, FusedShape, FusedSplit, FusedWeights};
use ss2d_core::gemm::{Bias, Product};
use ss2d_core::{Error, Layout};

use crate::pool::Buf;
use crate::unfused::{Ss2dScanShape, Ss2dScanWeights};
use crate::Parallelism;

/// Positions per projection GEMM block on one thread, and the most on several.
const PROJ_BLOCK: usize = 256;

/// Positions per projection GEMM block on `par`: [`PROJ_BLOCK`] on one thread; on several,
/// about eight blocks per thread (multiples of 16 positions, 64 to [`PROJ_BLOCK`]), so that
/// the threads' shares of the blocks differ little (at 28 x 28 positions, 256-position blocks
/// split 512 : 272 over two threads). The result does not depend on the blocking: every
/// output of `ss2d_core::gemm` is one fixed FMA chain whatever the product's sizes.
fn proj_block(positions: usize, par: Parallelism<'_>) -> usize {
    par.block_rows(positions, 8, 16, 64, PROJ_BLOCK)
}

/// Elements per block of the final combine pass.
const COMBINE_BLOCK: usize = 1 << 14;

/// The x_proj projection on the unpermuted grid: `proj[b, l, k*C + c] = sum_d W[k, c, d] x[b, d, l]`,
/// `(B, L, 4 * C)` row-major with `C = R + 2N`.
pub fn project_grid(
    shape: &Ss2dScanShape,
    x_proj_weight: &[f32],
    x: &[f32],
    par: Parallelism<'_>,
) -> Result<Vec<f32>, Error> {
    let c4 = 4 * (shape.dt_rank + 2 * shape.dstate);
    // The caller's own buffer (the scan itself projects into its pooled scratch).
    let mut proj = vec![0.0f32; shape.batch * shape.h * shape.w * c4];
    project_into(shape, x_proj_weight, x, &mut proj, par)?;
    Ok(proj)
}

/// [`project_grid`] into `proj` (`B*L*4C` elements, every one written).
fn project_into(
    shape: &Ss2dScanShape,
    x_proj_weight: &[f32],
    x: &[f32],
    proj: &mut [f32],
    par: Parallelism<'_>,
) -> Result<(), Error> {
    let (d, l) = (shape.dim, shape.h * shape.w);
    let c4 = 4 * (shape.dt_rank + 2 * shape.dstate);
    // The weight's length as `unfused::x_proj` checks it (the product below reads `W^T`).
    let wlen = crate::unfused::mul("x_proj_weight size", c4, d)?;
    crate::unfused::check_len("x_proj_weight", wlen, x_proj_weight.len())?;
    if proj.is_empty() || d == 0 {
        proj.fill(0.0);
        return Ok(());
    }
    // W^T, (D x 4C) row-major: the product's `B` (rows of lanes), from the (4C x D) weight.
    let mut wt = crate::pool::take(d * c4);
    ss2d_core::transpose::transpose(x_proj_weight, c4, d, 0, &mut wt)?;
    let block = proj_block(shape.batch * l, par);
    let blocks_per_b = l.div_ceil(block);
    let run = |i: usize, dst: &mut [f32]| -> Result<(), Error> {
        let (b, blk) = (i / blocks_per_b, i % blocks_per_b);
        let l0 = blk * block;
        let rows = dst.len() / c4;
        // x rows l0.. of batch b as an (rows x D) view.
        let (off, strides) = if shape.channel_first {
            (b * d * l + l0, (1, l))
        } else {
            (b * l * d + l0 * d, (d, 1))
        };
        Product {
            m: rows,
            k: d,
            n: c4,
            a: &x[off..],
            a_strides: strides,
            b: &wt,
            b_row_stride: c4,
            bias: Bias::None,
            silu: false,
        }
        .run(dst, c4)
    };
    // Blocks never straddle batch items: chunk per batch item, then per `block` rows.
    let chunks: Vec<(usize, &mut [f32])> = proj
        .chunks_mut(l * c4)
        .flat_map(|pb| pb.chunks_mut(block * c4))
        .enumerate()
        .collect();
    let r = par.try_for_each(chunks, |(i, ch)| run(i, ch));
    crate::pool::give(wt);
    r
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
    let parts: Vec<(usize, usize, &mut [f32])> = dst
        .chunks_mut(per)
        .enumerate()
        .flat_map(|(bi, item)| {
            item.chunks_mut(cols * d)
                .enumerate()
                .map(move |(k, part)| (bi, k * cols, part))
        })
        .collect();
    par.try_for_each(parts, |(bi, c0, part)| one(bi, c0, part))
}

/// The fused SS2D scan (module docs). Same contract as
/// [`crate::unfused::ss2d_scan_unfused`]: `x` after conv + SiLU in the layout of
/// `shape.channel_first`, `y_out` the merged output in the same layout. Nothing is written on
/// error. Temporaries come from the per-thread buffer pool.
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
    scan_any_layout(shape, weights, x, y_out, par, None)
}

/// Scratch elements [`ss2d_scan_with_scratch`] needs for `shape` on `par`: the projection on
/// the grid, the partial buffers of a direction split, and one kernel scratch slot per item
/// that may run at once.
pub fn ss2d_scan_scratch_len(shape: &Ss2dScanShape, par: Parallelism<'_>) -> Result<usize, Error> {
    shape.sizes()?;
    // Sizing reads only the weights' lengths: stand-ins of the right lengths.
    let len = |a: usize, b: usize| {
        a.checked_mul(b).ok_or(Error::Overflow {
            what: "weight size",
        })
    };
    let d4 = len(4, shape.dim)?;
    let w = |n: usize| vec![0.0f32; n];
    let (dtw, dtb, al, ds) = (
        w(len(d4, shape.dt_rank)?),
        w(d4),
        w(len(d4, shape.dstate)?),
        w(d4),
    );
    let fw = FusedWeights {
        dt_projs_weight: &dtw,
        dt_projs_bias: &dtb,
        a_logs: &al,
        ds: &ds,
    };
    Ok(sizing(shape, fw, par)?.total)
}

/// [`ss2d_scan`] with the caller's scratch (at least [`ss2d_scan_scratch_len`] elements,
/// contents unspecified on entry and exit): [`Error::Scratch`] when it is shorter, before
/// anything is written. The scan then allocates nothing except, for channel-first data, the
/// two transposed copies (from the per-thread buffer pool).
pub fn ss2d_scan_with_scratch(
    shape: &Ss2dScanShape,
    weights: &Ss2dScanWeights<'_>,
    x: &[f32],
    y_out: &mut [f32],
    par: Parallelism<'_>,
    scratch: &mut [f32],
) -> Result<(), Error> {
    scan_any_layout(shape, weights, x, y_out, par, Some(scratch))
}

fn scan_any_layout(
    shape: &Ss2dScanShape,
    weights: &Ss2dScanWeights<'_>,
    x: &[f32],
    y_out: &mut [f32],
    par: Parallelism<'_>,
    arena: Option<&mut [f32]>,
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
    if let Some(a) = &arena {
        let needed = sizing(shape, fused_weights(weights), par)?.total;
        if a.len() < needed {
            return Err(Error::Scratch {
                needed,
                actual: a.len(),
            });
        }
    }
    if !shape.channel_first {
        return ss2d_scan_layout(shape, weights, x, y_out, par, arena);
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
    ss2d_scan_layout(&cl, weights, &xt, &mut yt, par, arena)?;
    transpose_bdl(&yt, y_out, l, d, par)
}

fn fused_weights<'a>(w: &Ss2dScanWeights<'a>) -> FusedWeights<'a> {
    FusedWeights {
        dt_projs_weight: w.dt_projs_weight,
        dt_projs_bias: w.dt_projs_bias,
        a_logs: w.a_logs,
        ds: w.ds,
    }
}

fn fused_shape(s: &Ss2dScanShape) -> FusedShape {
    FusedShape {
        batch: s.batch,
        dim: s.dim,
        h: s.h,
        w: s.w,
        dstate: s.dstate,
        dt_rank: s.dt_rank,
        mode: s.mode,
        layout: if s.channel_first {
            Layout::ChannelFirst
        } else {
            Layout::ChannelLast
        },
    }
}

/// How a fused call is cut and how much scratch it takes.
struct Sizing {
    split: FusedSplit,
    /// Channel panels per unit ([`FusedPlan::with_group`]).
    group: usize,
    count: usize,
    per: usize,
    proj_len: usize,
    out_len: usize,
    total: usize,
}

/// The cut of a fused scan of `s` on `par`: the panel group and the direction split (the
/// largest group, then the coarsest split, that gives every thread two units: all four
/// directions per unit, else pairs, else single directions), the item count and the scratch.
/// Depends on the shape, the weights' lengths and the executor only (no data); the result bits
/// depend on none of it.
fn sizing(s: &Ss2dScanShape, fw: FusedWeights<'_>, par: Parallelism<'_>) -> Result<Sizing, Error> {
    let overflow = || Error::Overflow {
        what: "scratch size",
    };
    let sz = s.sizes()?;
    let c4 = 4 * sz.proj_rows;
    let proj_len = (s.batch * sz.seqlen).checked_mul(c4).ok_or_else(overflow)?;
    let out_len = sz.x_len;
    // The kernel always runs on channel-last data (channel-first data is transposed first).
    let fs = FusedShape {
        layout: Layout::ChannelLast,
        ..fused_shape(s)
    };
    // Per-item scratch depends on L, N, R and the group only: a plan over no batch sizes it.
    let per = FusedPlan::new(&FusedShape { batch: 0, ..fs }, fw, &[], &[])?;
    let width = par.threads();
    let splits = [FusedSplit::All, FusedSplit::Pairs, FusedSplit::Dirs];
    let (mut split, mut group, mut units) = (FusedSplit::Dirs, 1, 0);
    if out_len != 0 {
        // Units per batch item: those of a 1x1 grid (a plan over D values and one projection
        // row).
        let (x1, p1) = (Buf::new(s.dim), Buf::new(c4));
        let one = FusedPlan::new(
            &FusedShape {
                batch: 1,
                h: 1,
                w: 1,
                ..fs
            },
            fw,
            &x1,
            &p1,
        )?;
        units = one
            .with_group(1)
            .units(FusedSplit::Dirs)
            .saturating_mul(s.batch);
        'pick: for g in [ss2d_core::fused::MAX_GROUP, 3, 2, 1] {
            let plan = one.with_group(g);
            for sp in splits {
                let u = plan.units(sp).saturating_mul(s.batch);
                if par.is_sequential() || u >= 2 * width {
                    (split, group, units) = (sp, plan.group(), u);
                    break 'pick;
                }
            }
        }
    }
    let count = par.items_for(units);
    let per = per.with_group(group).scratch_len(split);
    let total = par
        .scratch_slots(count)
        .checked_mul(per)
        .and_then(|t| t.checked_add(proj_len))
        .and_then(|t| t.checked_add((split.buffers() - 1).checked_mul(out_len)?))
        .ok_or_else(overflow)?;
    Ok(Sizing {
        split,
        group,
        count,
        per,
        proj_len,
        out_len,
        total,
    })
}

/// [`ss2d_scan`] in the layout the shape names, without the channel-first transposes; `x` and
/// `y_out` checked, not empty.
fn ss2d_scan_layout(
    shape: &Ss2dScanShape,
    weights: &Ss2dScanWeights<'_>,
    x: &[f32],
    y_out: &mut [f32],
    par: Parallelism<'_>,
    arena: Option<&mut [f32]>,
) -> Result<(), Error> {
    let fw = fused_weights(weights);
    let sz = sizing(shape, fw, par)?;
    let nextra = sz.split.buffers() - 1;
    // The projection, the split's partial buffers and the items' scratch: carved from the
    // caller's scratch, or reused buffers (stale contents: the plan ignores them).
    let mut own = Vec::new();
    let (proj, extra, slots) = match arena {
        Some(a) => {
            let (proj, rest) = a.split_at_mut(sz.proj_len);
            let (extra, slots) = rest.split_at_mut(nextra * sz.out_len);
            (
                proj,
                extra.chunks_mut(sz.out_len).collect::<Vec<_>>(),
                Some(slots),
            )
        }
        None => {
            own.push(Buf::new(sz.proj_len));
            own.extend((0..nextra).map(|_| Buf::new(sz.out_len)));
            let mut it = own.iter_mut().map(|b| &mut b[..]);
            let proj = it.next().unwrap_or_default();
            (proj, it.collect(), None)
        }
    };
    project_into(shape, weights.x_proj_weight, x, proj, par)?;
    let plan = FusedPlan::new(&fused_shape(shape), fw, x, proj)?.with_group(sz.group);
    let mut bufs: Vec<&mut [f32]> = Vec::with_capacity(4);
    bufs.push(y_out);
    bufs.extend(extra);
    {
        let mut items = plan.split(&mut bufs, sz.split, sz.count)?;
        let items: Vec<_> = items.items().collect();
        par.try_for_each_scratch(items, sz.per, slots, |item, s| item.run(s))?;
    }
    if sz.split != FusedSplit::All {
        let blocks = sz.out_len.div_ceil(COMBINE_BLOCK);
        // Each block touches a disjoint range of every buffer: split them all by blocks.
        let mut per_block: Vec<Vec<&mut [f32]>> = (0..blocks).map(|_| Vec::new()).collect();
        for buf in bufs.iter_mut() {
            for (i, ch) in buf.chunks_mut(COMBINE_BLOCK).enumerate() {
                per_block[i].push(ch);
            }
        }
        let split = sz.split;
        par.for_each(per_block, |mut b| {
            let len = b.first().map_or(0, |s| s.len());
            combine(split, &mut b, 0..len);
        });
    }
    Ok(())
}
