//! The layer's non-scan stages: the products (`gemm` in fixed position blocks), the depthwise
//! conv, SiLU, the out-norm with GELU and gate, each with a `naive` twin for the reference
//! backend.
//!
//! Layouts: channel-first activations are `(B, C, L)`, channel-last `(B*L, C)`. The fast
//! path keeps its activations channel-last whatever the module layout (`in_proj` reads a
//! channel-first input through strides, [`linear_from_tiles`] stores `out_proj`'s
//! result transposed into place), except under the cascade scan, which takes channel-first data only. On that
//! channel-first fast path the products' outputs (`in_proj`'s x and z) and the out-norm's
//! output are *tiled*: per batch item, position blocks `j` of [`GEMM_BLOCK`] positions (the
//! last one shorter), each stored `(C, nb_j)` contiguously, so every thread owns a contiguous
//! tile that a product writes as a plain row-major matrix and `out_proj` reads as one. The
//! conv gathers its planes from x's tiles and the gate reads z's tiles in place, so only
//! `out_proj`'s result is copied back into the module layout ([`untile_into`]).
//!
//! Every pass is one parallel dispatch over fixed items (about 50 or more per 56 x 56 image
//! for the products, the conv and the norm), with the elementwise tails (bias, SiLU) run by
//! the item that produced the data: a dispatch costs a few microseconds of wake-up and join,
//! a pass over the activations as much again in memory traffic.

use ss2d_core::gemm::{Bias, Product};
use ss2d_core::math::{self, MathFn};

use super::OutNorm;
use crate::pool::Buf;
use crate::Parallelism;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Positions per channel-first product block (and per tile of the tiled layout). A constant,
/// so that the tiles do not depend on the thread count. 64 positions cost nothing against 256
/// or one call over all 3136 positions of a stage-1 layer (measured with the `gemm` crate:
/// `(96 x 96) @ (96 x 64)` blocks: 355 us against 365 and 370 us per image, best of 60, one
/// thread; 48 costs 5%, 32 13%; `ss2d_core::gemm` reads 64 positions as four 16-lane
/// vectors), and give 49 blocks per 56 x 56 image to share: three or more per thread at 16
/// threads.
pub const GEMM_BLOCK: usize = 64;

/// Positions (rows) per channel-last product block. Each block's product streams the whole
/// (transposed) weight, so blocks stay larger: with the `gemm` crate, against one call over
/// 3136 rows, 256 rows cost 6-10%, 64 rows 40% (`(rows x 96) @ (96 x 192)` and
/// `(rows x 192) @ (192 x 96)`, measured); not re-measured on `ss2d_core::gemm`.
pub const GEMM_BLOCK_CL: usize = 256;

/// Elements of `A` (the out-norm's channel-last rows) per product block of a channel-first
/// module's `out_proj` (one thread per image): `OUT_BLOCK_ELEMS / d_inner` positions (384
/// KiB, inside L2 while the product's column strips go over it), multiplied straight into
/// their columns of the image's channel rows (`Product::run_transposed`: the register tiles
/// transposed before they are stored). Measured on Emerald Rapids, s1l8 `gemm_out`, one
/// thread, three interleaved rounds: 429-437 us against 480-504 us for the block multiplied
/// into a buffer and transposed from there (`ss2d_core::transpose::transpose_strided`).
/// Splitting an image's channel rows over 2 threads instead (each item reading all positions)
/// measured slower than a whole-size intermediate (s1l8 287 -> 320 us, before the transposed
/// store), so several threads per image keep that.
const OUT_BLOCK_ELEMS: usize = 96 * 1024;

/// Positions per channel-last product block for a product of `rows` positions on `par`:
/// [`GEMM_BLOCK_CL`] on one thread; on several, about two blocks per thread (multiples of 8
/// positions, 32 to [`GEMM_BLOCK_CL`]), so that a small grid still spreads over the threads
/// (at 14 x 14 positions, 256-position blocks leave `out_proj` one block: one thread) and a
/// large one over many (3136 positions in 256-position blocks are 13 blocks for 16 threads).
/// The result does not depend on the blocking: every output of `ss2d_core::gemm` is one
/// fixed FMA chain whatever the product's sizes, and the tails are elementwise.
fn cl_block(rows: usize, par: Parallelism<'_>) -> usize {
    par.block_rows(rows, 2, 8, 32, GEMM_BLOCK_CL)
}

/// Elements per chunk of elementwise passes.
const ELEMWISE_CHUNK: usize = 16 * 1024;

/// Position blocks of a sequence of `l`: `(l0, nb)`.
fn blocks(l: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..l.div_ceil(GEMM_BLOCK)).map(move |j| {
        let l0 = j * GEMM_BLOCK;
        (l0, GEMM_BLOCK.min(l - l0))
    })
}

/// `W (o, i)` transposed to `(i, o)` (the channel-last products' `B`).
pub(super) fn transpose(w: &[f32], o: usize, i: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; w.len()];
    for r in 0..o {
        for k in 0..i {
            t[k * o + r] = w[r * i + k];
        }
    }
    t
}

/// `c (m, n) = a (m, k) @ b (k, n)` on `ss2d_core::gemm` (`a`'s row and column strides `a_s`,
/// row strides `b_rs`, `c_rs`; unit column strides for `b` and `c`). Every output element is
/// one fixed chain of FMAs (`k` ascending), whatever the blocking, so the result does not depend on the split. The views are built from
/// validated sizes, so it cannot fail.
#[allow(clippy::too_many_arguments)]
fn mm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    a_s: (usize, usize),
    b: &[f32],
    b_rs: usize,
    c: &mut [f32],
    c_rs: usize,
) {
    let p = Product {
        m,
        k,
        n,
        a,
        a_strides: a_s,
        b,
        b_row_stride: b_rs,
        bias: Bias::None,
        silu: false,
    };
    if let Err(e) = p.run(c, c_rs) {
        unreachable!("layer product with inconsistent views: {e}");
    }
}

// ------------------------------------------------------------------------------------------
// Products

/// Output rows (channel rows of `l` positions) per item of the passes that copy tiles back
/// into place: about [`ROW_ITEM`] elements, at least one row. Fixed sizes, so the same copies
/// run whatever the thread count; one row of a 56 x 56 image per item gives 96 items per
/// image at `d_model 96`.
const ROW_ITEM: usize = 2048;

/// What an item of a product does to its block right after the product, while the block is
/// in cache: add a per-channel bias, then apply SiLU. Both are elementwise, so the bits are
/// those of separate passes over the whole buffer.
#[derive(Clone, Copy, Default)]
pub(super) struct Tail<'a> {
    /// `(C,)`, added to every position of channel `c`.
    pub bias: Option<&'a [f32]>,
    /// SiLU after the bias.
    pub silu: bool,
}

impl Tail<'_> {
    /// On a channel-first tile `(C, nb)`.
    fn tile(&self, t: &mut [f32], nb: usize) {
        if let Some(bias) = self.bias {
            for (row, &bv) in t.chunks_exact_mut(nb.max(1)).zip(bias) {
                row.iter_mut().for_each(|x| *x += bv);
            }
        }
        if self.silu {
            silu_slice(t);
        }
    }

    /// On channel-last rows `(n, C)`.
    fn rows(&self, v: &mut [f32]) {
        if let Some(bias) = self.bias {
            for px in v.chunks_exact_mut(bias.len().max(1)) {
                px.iter_mut().zip(bias).for_each(|(x, bv)| *x += bv);
            }
        }
        if self.silu {
            silu_slice(v);
        }
    }

    /// The reference form on a module-layout buffer: plain bias adds, scalar SiLU.
    fn naive(&self, cf: bool, l: usize, v: &mut [f32]) {
        if let Some(bias) = self.bias {
            let c = bias.len().max(1);
            if cf {
                for (row, x) in v.chunks_exact_mut(l.max(1)).enumerate() {
                    x.iter_mut().for_each(|x| *x += bias[row % c]);
                }
            } else {
                self.rows(v);
            }
        }
        if self.silu {
            v.iter_mut().for_each(|x| *x = silu_scalar(*x));
        }
    }
}

/// One product of a layer stage: `out = W (o, i) @ x` per position, then `tail`.
pub(super) struct Proj<'a, 'o> {
    /// `(o, i)` row-major.
    pub w: &'a [f32],
    /// `w` transposed, `(i, o)` row-major (the channel-last product's `B`).
    pub wt: &'a [f32],
    /// `(B, o, L)` (tiled on the channel-first fast path, module docs) or `(B*L, o)`.
    pub out: &'o mut [f32],
    /// Bias and activation.
    pub tail: Tail<'a>,
}

/// A block of one of the products of [`linear`]: `(product, batch item, first position,
/// output block)`; channel-last blocks count positions over the whole batch (batch item 0).
type Block<'o> = (usize, usize, usize, &'o mut [f32]);

/// Products of `o` outputs sharing the input `x` (channel-first `(B, i, L)`, channel-last
/// `(B*L, i)`), each followed by its tail, in one parallel pass over the position blocks of
/// all of them. The fast path writes channel-first outputs tiled (module docs; see
/// [`untile_into`]) and channel-last ones plainly; the reference path (`naive`) writes the
/// module layout. Every block is one `gemm` call over [`GEMM_BLOCK`] (channel-first) or
/// [`cl_block`] (channel-last) positions; the bits do not depend on the blocking.
/// With `x_cf` (fast path, channel-last outputs only), `x` is channel-first `(B, i, L)`: the
/// products read it through strides (blocks then stay within a batch item).
#[allow(clippy::too_many_arguments)]
pub(super) fn linear(
    naive: bool,
    cf: bool,
    x_cf: bool,
    o: usize,
    i: usize,
    x: &[f32],
    b: usize,
    l: usize,
    projs: Vec<Proj<'_, '_>>,
    par: Parallelism<'_>,
) {
    if o == 0 || l == 0 || b == 0 {
        return;
    }
    if naive {
        for p in projs {
            for bb in 0..b {
                let xb = &x[bb * i * l..(bb + 1) * i * l];
                let ob = &mut p.out[bb * o * l..(bb + 1) * o * l];
                if cf {
                    naive_product(p.w, o, i, xb, l, 1, l, ob, 1, l);
                } else {
                    naive_product(p.w, o, i, xb, 1, i, l, ob, o, 1);
                }
            }
            p.tail.naive(cf, l, p.out);
        }
        return;
    }
    let mut tails = Vec::with_capacity(projs.len());
    let mut items: Vec<Block<'_>> = Vec::new();
    // Channel-last blocks (positions per block).
    let blk = cl_block(b * l, par);
    for (k, p) in projs.into_iter().enumerate() {
        tails.push((p.w, p.wt, p.tail));
        if cf {
            items.extend(
                split_tiles(p.out, b, l, o)
                    .into_iter()
                    .map(|(bb, l0, t)| (k, bb, l0, t)),
            );
        } else if x_cf {
            for (bb, ob) in p.out.chunks_mut(l * o).enumerate() {
                let rows = ob.chunks_mut(blk * o).enumerate();
                items.extend(rows.map(|(j, c)| (k, bb, j * blk, c)));
            }
        } else {
            let rows = p.out.chunks_mut(blk * o).enumerate();
            items.extend(rows.map(|(j, c)| (k, 0, j * blk, c)));
        }
    }
    par.for_each(items, |(k, bb, l0, t)| {
        let (w, wt, tail) = tails[k];
        let nb = t.len() / o;
        if cf {
            let rhs = &x[bb * i * l + l0..(bb + 1) * i * l];
            mm(o, i, nb, w, (i, 1), rhs, l, t, nb);
            tail.tile(t, nb);
        } else {
            // Channel-last blocks count positions over the whole batch (`bb = 0`).
            rows_product(x_cf, x, i, l, bb, l0, wt, o, t, tail);
        }
    });
}

/// Positions `p0 .. p0 + out.len() / o` of batch item `bb` of `x` times `W^T (i, o)` into the
/// channel-last rows `out`, then `tail`: `x` is channel-first `(B, i, l)` read through strides
/// (`x_cf`) or channel-last `(B*l, i)`.
#[allow(clippy::too_many_arguments)]
fn rows_product(
    x_cf: bool,
    x: &[f32],
    i: usize,
    l: usize,
    bb: usize,
    p0: usize,
    wt: &[f32],
    o: usize,
    out: &mut [f32],
    tail: Tail<'_>,
) {
    let nb = out.len() / o;
    if x_cf {
        // Rows are positions `p0..` of batch item `bb`, columns channels `l` apart.
        mm(
            nb,
            i,
            o,
            &x[bb * i * l + p0..(bb + 1) * i * l],
            (1, l),
            wt,
            o,
            out,
            o,
        );
    } else {
        let r0 = bb * l + p0;
        mm(nb, i, o, &x[r0 * i..(r0 + nb) * i], (i, 1), wt, o, out, o);
    }
    tail.rows(out);
}

/// Copies the tiled channel-first `tiles` (`c` channels) into place in `out (B, c, L)`, then
/// applies `tail`, in parallel items of whole rows (about [`ROW_ITEM`] elements each).
#[allow(clippy::too_many_arguments)]
pub(super) fn untile_into(
    tiles: &[f32],
    c: usize,
    b: usize,
    l: usize,
    out: &mut [f32],
    tail: Tail<'_>,
    par: Parallelism<'_>,
) {
    if c == 0 || l == 0 || b == 0 {
        return;
    }
    let rows_per = (ROW_ITEM / l).max(1);
    par.for_each_chunk(&mut out[..b * c * l], l * rows_per, |ci, chunk| {
        for (k, row) in chunk.chunks_exact_mut(l).enumerate() {
            let gr = ci * rows_per + k;
            let (bb, r) = (gr / c, gr % c);
            for (j, (l0, nb)) in blocks(l).enumerate() {
                let t = &tiles[tile_offset(c, l, bb, j)..][..c * nb];
                row[l0..l0 + nb].copy_from_slice(&t[r * nb..(r + 1) * nb]);
            }
            if let Some(bias) = tail.bias {
                let bv = bias[r];
                row.iter_mut().for_each(|x| *x += bv);
            }
            if tail.silu {
                silu_slice(row);
            }
        }
    });
}

/// Output rows per item of [`transpose_batches`]: whole vectors of channels for the blocked
/// transpose.
const TRANSPOSE_ROWS: usize = 16;

/// Each batch item of `src (B, rows, cols)` transposed into `dst (B, cols, rows)`, in parallel
/// items of [`TRANSPOSE_ROWS`] output rows (within a batch item), on `ss2d_core::transpose`.
fn transpose_batches(
    src: &[f32],
    b: usize,
    rows: usize,
    cols: usize,
    dst: &mut [f32],
    par: Parallelism<'_>,
) {
    let n = rows * cols;
    if n == 0 {
        return;
    }
    let mut items = Vec::new();
    for (bb, ob) in dst[..b * n].chunks_mut(n).enumerate() {
        let chunks = ob.chunks_mut(TRANSPOSE_ROWS * rows).enumerate();
        items.extend(chunks.map(|(j, c)| (bb, j * TRANSPOSE_ROWS, c)));
    }
    par.for_each(items, |(bb, c0, d)| {
        let s = &src[bb * n..(bb + 1) * n];
        if let Err(e) = ss2d_core::transpose::transpose(s, rows, cols, c0, d) {
            unreachable!("layer transpose with inconsistent views: {e}");
        }
    });
}

/// Naive product, one output row at a time (`k` ascending from 0).
/// `out[r, p] = sum_k w[r, k] * inp(k, p)` with `inp(k, p) = x[k * ks + p * ps]`.
#[allow(clippy::too_many_arguments)]
fn naive_product(
    w: &[f32],
    o: usize,
    i: usize,
    x: &[f32],
    ks: usize,
    ps: usize,
    np: usize,
    out: &mut [f32],
    os: usize,
    rs: usize,
) {
    for r in 0..o {
        for p in 0..np {
            let mut acc = 0.0f32;
            for k in 0..i {
                acc += w[r * i + k] * x[k * ks + p * ps];
            }
            out[r * rs + p * os] = acc;
        }
    }
}

/// Offset of tile `j` of batch item `bb` (tiles of `c` channels, see the module docs).
fn tile_offset(c: usize, l: usize, bb: usize, j: usize) -> usize {
    bb * c * l + j * GEMM_BLOCK * c
}

/// `out_proj` from the out-norm's output (tiled channel-first or plain channel-last, as
/// [`norm_gate`] writes it; `cf` is its layout) into `out` in the module layout (`out_cf`),
/// `+ bias`. The channel-first fast path computes tiles into a whole-size buffer from the pool
/// and copies them into place; channel-last rows for a channel-first module are multiplied
/// straight into place, stored transposed (one thread per image), or into a whole-size
/// buffer and transposed (several).
#[allow(clippy::too_many_arguments)]
pub(super) fn linear_from_tiles(
    naive: bool,
    cf: bool,
    out_cf: bool,
    w: &[f32],
    wt: &[f32],
    o: usize,
    i: usize,
    y: &[f32],
    b: usize,
    l: usize,
    out: &mut [f32],
    bias: Option<&[f32]>,
    par: Parallelism<'_>,
) {
    let tail = Tail { bias, silu: false };
    if !cf && out_cf && !naive {
        // Channel-last activations, channel-first module.
        if o == 0 || l == 0 || b == 0 {
            return;
        }
        // Positions per block: whole register tiles (multiples of 16), at least 16.
        let nb_max = (OUT_BLOCK_ELEMS / i.max(1) / 16 * 16).max(16).min(l);
        if par.threads() <= b {
            // An item per image: each block of positions is multiplied (`+ bias`) straight
            // into its columns of the image's channel rows, the register tiles transposed
            // before they are stored (`Product::run_transposed`): no intermediate buffer.
            let images = out[..b * o * l].chunks_mut(o * l).enumerate().collect();
            par.for_each(images, |(bb, ob)| {
                // The first block is shortened so that the later blocks (and their 8-row
                // register tiles) start on a cache line of the image's channel rows: a tile's
                // 8-float stores then never straddle two lines (where `l` keeps the rows at the
                // same offset in a line). The values do not depend on the blocks.
                let a = ob.as_ptr() as usize / 4 % 16;
                let first = nb_max.checked_sub(a).filter(|&f| f > 0).unwrap_or(nb_max);
                let mut l0 = 0;
                while l0 < l {
                    let nb = if l0 == 0 { first } else { nb_max }.min(l - l0);
                    let r0 = bb * l + l0;
                    let p = Product {
                        m: nb,
                        k: i,
                        n: o,
                        a: &y[r0 * i..(r0 + nb) * i],
                        a_strides: (i, 1),
                        b: wt,
                        b_row_stride: o,
                        bias: bias.map_or(Bias::None, Bias::Col),
                        silu: false,
                    };
                    if let Err(e) = p.run_transposed(&mut ob[l0..], l) {
                        unreachable!("layer product with inconsistent views: {e}");
                    }
                    l0 += nb;
                }
            });
            return;
        }
        // Several threads per image: the channel-last product (`+ bias`) into `scratch`,
        // then transposed into place in items of whole channel rows.
        let mut scratch = crate::pool::take(b * l * o);
        let p = Proj {
            w,
            wt,
            out: &mut scratch,
            tail,
        };
        linear(false, false, false, o, i, y, b, l, vec![p], par);
        transpose_batches(&scratch, b, l, o, out, par);
        crate::pool::give(scratch);
        return;
    }
    if !cf {
        let p = Proj { w, wt, out, tail };
        return linear(naive, cf, false, o, i, y, b, l, vec![p], par);
    }
    if o == 0 || l == 0 || b == 0 {
        return;
    }
    if naive {
        for bb in 0..b {
            let ob = &mut out[bb * o * l..(bb + 1) * o * l];
            for (j, (l0, nb)) in blocks(l).enumerate() {
                let t = &y[tile_offset(i, l, bb, j)..][..i * nb];
                naive_product(w, o, i, t, nb, 1, nb, &mut ob[l0..], 1, l);
            }
        }
        tail.naive(cf, l, out);
        return;
    }
    let mut scratch = crate::pool::take(b * o * l);
    par.for_each(split_tiles(&mut scratch, b, l, o), |(bb, l0, t)| {
        let (j, nb) = (l0 / GEMM_BLOCK, t.len() / o);
        let rhs = &y[tile_offset(i, l, bb, j)..][..i * nb];
        mm(o, i, nb, w, (i, 1), rhs, nb, t, nb);
    });
    untile_into(&scratch, o, b, l, out, tail, par);
    crate::pool::give(scratch);
}

// ------------------------------------------------------------------------------------------
// Elementwise

/// SiLU on lanes over a slice (`ss2d_core::math`, at the current SIMD level); the tail is
/// padded into one vector so every element goes through the same vector function.
fn silu_slice(v: &mut [f32]) {
    math::map(MathFn::Silu, v);
}

/// Scalar SiLU (reference).
fn silu_scalar(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// SiLU in place.
pub(super) fn silu_inplace(naive: bool, v: &mut [f32], par: Parallelism<'_>) {
    if naive {
        v.iter_mut().for_each(|x| *x = silu_scalar(*x));
    } else {
        par.for_each_chunk(v, ELEMWISE_CHUNK, |_, c| silu_slice(c));
    }
}

/// Exact GELU (`nn.GELU()`, approximate='none'): `x/2 * (1 + erf(x / sqrt 2))`.
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * core::f32::consts::FRAC_1_SQRT_2))
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

// ------------------------------------------------------------------------------------------
// Depthwise conv

/// A depthwise `k x k` conv over `channels` planes of `h x w`, zero padding `(k-1)/2`.
pub(super) struct ConvArgs<'a> {
    /// Kernel size (odd, > 1).
    pub k: usize,
    /// `(C, 1, k, k)`.
    pub weight: &'a [f32],
    /// The weight transposed to `(k*k, C)` (channel-last).
    pub taps: &'a [f32],
    /// `(C,)`.
    pub bias: Option<&'a [f32]>,
    /// `C`.
    pub channels: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
}

/// One channel-first plane: `out = sum over taps (i, j) ascending of w * in[shifted]`, then
/// `+ bias`, a vector of outputs of a row at a time (`ss2d_core::conv::depthwise_plane`, at
/// the current SIMD level, over a zero-bordered copy of the plane).
fn conv_plane(a: &ConvArgs<'_>, c: usize, inp: &[f32], out: &mut [f32]) {
    let (k, h, w) = (a.k, a.h, a.w);
    let mut buf = Buf::new(ss2d_core::conv::depthwise_plane_scratch(k, h, w));
    let wk = &a.weight[c * k * k..(c + 1) * k * k];
    let bias = a.bias.map(|b| b[c]);
    // The layer validated the shapes (weights k x k per channel, planes h x w).
    ss2d_core::conv::depthwise_plane(
        wk,
        bias,
        k,
        h,
        w,
        &inp[..h * w],
        &mut out[..h * w],
        &mut buf,
    )
    .expect("conv shapes validated by the layer");
}

/// Output pixels of an image row per item of the channel-last conv: a fixed size (the same
/// items whatever the thread count); a 56-wide row is two items.
const CONV_PIXELS: usize = 32;

/// Pixels `w0..w0 + out.len() / C` of channel-last image row `oh` (`C` outputs per pixel):
/// `ss2d_core::conv::depthwise_cl_row` at the current SIMD level, the per-element expression
/// of [`conv_plane`] (taps ascending, then bias), so both layouts give the same bits. With
/// `silu`, SiLU runs on each output vector before its store (the bits of [`silu_slice`]).
fn conv_row(a: &ConvArgs<'_>, oh: usize, w0: usize, img: &[f32], silu: bool, out: &mut [f32]) {
    // The layer validated the shapes (taps k*k x C, images h x w x C, rows inside).
    let (taps, bias, c) = (a.taps, a.bias, a.channels);
    ss2d_core::conv::depthwise_cl_row(taps, bias, a.k, a.h, a.w, c, img, oh, w0, silu, out)
        .expect("conv shapes validated by the layer");
}

/// Whole channel-last image rows `oh..` (`out.len() / (W * C)` of them) with SiLU:
/// `ss2d_core::conv::depthwise_cl_rows`, the bits of [`conv_row`] on each row.
fn conv_rows(a: &ConvArgs<'_>, oh: usize, img: &[f32], out: &mut [f32]) {
    // The layer validated the shapes (taps k*k x C, images h x w x C, rows inside).
    let (taps, bias, c) = (a.taps, a.bias, a.channels);
    ss2d_core::conv::depthwise_cl_rows(taps, bias, a.k, a.h, a.w, c, img, oh, true, out)
        .expect("conv shapes validated by the layer");
}

/// The depthwise conv (+ bias), then SiLU when `silu`: channel-first `(B, C, H, W)` or
/// channel-last `(B, H, W, C)` into `out` in the same layout. `x` is in the module layout, or
/// tiled channel-first (module docs) when `tiled`, as the fast [`linear`] writes it: each plane
/// is gathered from its tiles into a per-thread buffer. One item per plane (channel-first) or
/// per [`CONV_PIXELS`] pixels of an image row (channel-last); the activation runs on the item's
/// outputs while they are in cache.
#[allow(clippy::too_many_arguments)]
pub(super) fn dwconv(
    naive: bool,
    cf: bool,
    a: &ConvArgs<'_>,
    x: &[f32],
    tiled: bool,
    b: usize,
    out: &mut [f32],
    silu: bool,
    par: Parallelism<'_>,
) {
    let (h, w, c) = (a.h, a.w, a.channels);
    let hw = h * w;
    if hw == 0 || c == 0 || b == 0 {
        return;
    }
    if naive {
        naive_conv(cf, a, x, b, out);
        if silu {
            out.iter_mut().for_each(|x| *x = silu_scalar(*x));
        }
        return;
    }
    let act = |o: &mut [f32]| {
        if silu {
            silu_slice(o);
        }
    };
    if cf {
        par.for_each_chunk(&mut out[..b * c * hw], hw, |plane, o| {
            let (bb, ch) = (plane / c, plane % c);
            if tiled {
                let mut inp = Buf::new(hw);
                for (j, (l0, nb)) in blocks(hw).enumerate() {
                    let t = &x[tile_offset(c, hw, bb, j) + ch * nb..][..nb];
                    inp[l0..l0 + nb].copy_from_slice(t);
                }
                conv_plane(a, ch, &inp, o);
            } else {
                conv_plane(a, ch, &x[plane * hw..(plane + 1) * hw], o);
            }
            act(o);
        });
    } else {
        let parts = w.div_ceil(CONV_PIXELS);
        let mut items = Vec::with_capacity(b * h * parts);
        for (row, r) in out[..b * hw * c].chunks_mut(w * c).enumerate() {
            let chunks = r.chunks_mut(CONV_PIXELS * c).enumerate();
            items.extend(chunks.map(|(p, o)| (row, p * CONV_PIXELS, o)));
        }
        par.for_each(items, |(row, w0, o)| {
            let (bb, oh) = (row / h, row % h);
            conv_row(a, oh, w0, &x[bb * hw * c..(bb + 1) * hw * c], silu, o);
        });
    }
}

/// Wall-time shares of a fused pass: nanoseconds its items spent in each part.
#[derive(Default)]
pub(super) struct PartTimes {
    /// In the products.
    pub gemm: AtomicU64,
    /// In the conv.
    pub conv: AtomicU64,
}

impl PartTimes {
    fn add(slot: &AtomicU64, since: Instant) {
        let ns = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        slot.fetch_add(ns, Ordering::Relaxed);
    }

    /// `wall` split in proportion to the parts' times: `(gemm, conv)`.
    pub fn split(&self, wall: Duration) -> (Duration, Duration) {
        let (g, c) = (
            self.gemm.load(Ordering::Relaxed) as f64,
            self.conv.load(Ordering::Relaxed) as f64,
        );
        if g + c > 0.0 {
            let gw = wall.mul_f64(g / (g + c));
            (gw, wall.saturating_sub(gw))
        } else {
            (wall, Duration::ZERO)
        }
    }
}

/// `in_proj`'s x product (`+ bias`) into `x` and the channel-last depthwise conv of `x` (`+
/// bias`, SiLU) into `xc`, in one parallel pass over bands of image rows (channel-last
/// activations; `x_cf`: the input is channel-first and read through strides): a band item
/// computes its positions in blocks of [`GEMM_BLOCK_CL`] and convolves each of its rows as soon
/// as the rows it reads are done, so the conv reads `x` while it is in cache instead of in a
/// second pass over the whole buffer. `z` (z's product, `(B*L, C)` like `x`) is computed block
/// by block right after x's, while the block of the input is in cache: the input is read from
/// memory once for both products. Rows whose kernel reaches into a neighbouring band are
/// convolved after the pass, from the finished `x`. Every element is the expression of
/// [`linear`] then [`dwconv`] (the same product per position, the same conv per pixel), so the
/// bits do not depend on the bands; one band per image on one thread.
#[allow(clippy::too_many_arguments)]
pub(super) fn linear_conv_cl(
    x_cf: bool,
    dm: usize,
    input: &[f32],
    wt: &[f32],
    bias: Option<&[f32]>,
    a: &ConvArgs<'_>,
    b: usize,
    x: &mut [f32],
    xc: &mut [f32],
    mut z: Option<Proj<'_, '_>>,
    times: &PartTimes,
    par: Parallelism<'_>,
) {
    let (h, w, c) = (a.h, a.w, a.channels);
    let hw = h * w;
    if hw == 0 || c == 0 || b == 0 {
        return;
    }
    let tail = Tail { bias, silu: false };
    let pad = a.k / 2;
    // Bands per image: enough for every thread to have one.
    let bands = par.threads().div_ceil(b).clamp(1, h);
    let rpb = h.div_ceil(bands);
    // Rows convolved inside their band `r0..r1`: every row the kernel reads is in the band, or
    // outside the image.
    let inside = |r0: usize, r1: usize| {
        let lo = if r0 == 0 { 0 } else { r0 + pad };
        let hi = if r1 == h { h } else { r1.saturating_sub(pad) };
        lo..hi.max(lo)
    };
    let mut items = Vec::new();
    let zt = z.as_ref().map(|p| (p.wt, p.tail));
    // z's bands (none without z): the same positions as x's.
    let mut zs = z.as_mut().map(|p| {
        let images = p.out[..b * hw * c].chunks_mut(hw * c);
        images.flat_map(|zi| zi.chunks_mut(rpb * w * c))
    });
    let xs = x[..b * hw * c].chunks_mut(hw * c);
    let cs = xc[..b * hw * c].chunks_mut(hw * c);
    for (bb, (xb, cb)) in xs.zip(cs).enumerate() {
        let bands = xb.chunks_mut(rpb * w * c).zip(cb.chunks_mut(rpb * w * c));
        for (j, (xt, ct)) in bands.enumerate() {
            let zb = zs.as_mut().and_then(|it| it.next());
            items.push((bb, j * rpb, xt, ct, zb));
        }
    }
    par.for_each(items, |(bb, r0, xt, ct, mut zb)| {
        let r1 = r0 + xt.len() / (w * c);
        let band = ConvArgs { h: r1 - r0, ..*a };
        let (p_start, np) = (r0 * w, (r1 - r0) * w);
        let mut next = r0; // next row to convolve (or to leave for later)
        let mut done = 0; // positions of the band computed
        while done < np {
            let nb = GEMM_BLOCK_CL.min(np - done);
            let t0 = Instant::now();
            let out = &mut xt[done * c..(done + nb) * c];
            rows_product(x_cf, input, dm, hw, bb, p_start + done, wt, c, out, tail);
            if let (Some((zwt, ztail)), Some(zb)) = (zt, zb.as_deref_mut()) {
                let zo = &mut zb[done * c..(done + nb) * c];
                rows_product(x_cf, input, dm, hw, bb, p_start + done, zwt, c, zo, ztail);
            }
            PartTimes::add(&times.gemm, t0);
            done += nb;
            // Rows of the image complete so far.
            let rows_done = r0 + done / w;
            let t0 = Instant::now();
            // The rows ready now: those inside the band are one range, convolved in one call
            // (the kernel pairs rows that share input rows).
            let ready = next;
            while next < r1 && ((next + pad).min(h - 1) < rows_done || done == np) {
                next += 1;
            }
            let own = inside(r0, r1);
            let (f0, f1) = (ready.max(own.start), next.min(own.end));
            if f0 < f1 {
                let o = &mut ct[(f0 - r0) * w * c..(f1 - r0) * w * c];
                conv_rows(&band, f0 - r0, xt, o);
            }
            PartTimes::add(&times.conv, t0);
        }
    });
    // The rows left: those whose kernel reaches into another band.
    let t0 = Instant::now();
    let mut rest = Vec::new();
    for (row, o) in xc[..b * hw * c].chunks_mut(w * c).enumerate() {
        let (bb, r) = (row / h, row % h);
        let r0 = r / rpb * rpb;
        if !inside(r0, (r0 + rpb).min(h)).contains(&r) {
            rest.push((bb, r, o));
        }
    }
    par.for_each(rest, |(bb, r, o)| {
        conv_row(a, r, 0, &x[bb * hw * c..(bb + 1) * hw * c], true, o);
    });
    PartTimes::add(&times.conv, t0);
}

/// The reference conv: one output element at a time.
fn naive_conv(cf: bool, a: &ConvArgs<'_>, x: &[f32], b: usize, out: &mut [f32]) {
    let (k, h, w, c) = (a.k, a.h, a.w, a.channels);
    let pad = (k / 2) as isize;
    let idx = |bb: usize, ch: usize, y: usize, xx: usize| {
        if cf {
            ((bb * c + ch) * h + y) * w + xx
        } else {
            ((bb * h + y) * w + xx) * c + ch
        }
    };
    for bb in 0..b {
        for ch in 0..c {
            for y in 0..h {
                for xx in 0..w {
                    let mut acc = 0.0f32;
                    for i in 0..k {
                        for j in 0..k {
                            let (iy, ix) = (
                                y as isize + i as isize - pad,
                                xx as isize + j as isize - pad,
                            );
                            if iy >= 0 && iy < h as isize && ix >= 0 && ix < w as isize {
                                acc += a.weight[(ch * k + i) * k + j]
                                    * x[idx(bb, ch, iy as usize, ix as usize)];
                            }
                        }
                    }
                    if let Some(bias) = a.bias {
                        acc += bias[ch];
                    }
                    out[idx(bb, ch, y, xx)] = acc;
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Out-norm, GELU, gate

/// The out-norm stage: which norm, its affine parameters, `_oact`.
#[derive(Clone, Copy)]
pub(super) struct NormArgs<'a> {
    /// The out-norm.
    pub kind: OutNorm,
    /// LayerNorm weight (`None`: no affine).
    pub weight: Option<&'a [f32]>,
    /// LayerNorm bias.
    pub bias: Option<&'a [f32]>,
    /// GELU after the norm.
    pub gelu: bool,
    /// Channels.
    pub channels: usize,
}

/// Sum of a row with eight interleaved partial sums (vectorizable, fixed order).
fn row_sum(v: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += f(x);
        }
    }
    for (a, &x) in acc.iter_mut().zip(chunks.remainder()) {
        *a += f(x);
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
}

/// Per-(batch, channel) softmax statistics over positions: `(max, sum exp(x - max))`.
fn softmax_stats(cf: bool, y: &[f32], b: usize, l: usize, c: usize) -> Vec<(f32, f32)> {
    let mut st = vec![(f32::NEG_INFINITY, 0.0f32); b * c];
    for bb in 0..b {
        let s = &mut st[bb * c..(bb + 1) * c];
        if cf {
            for (ch, e) in s.iter_mut().enumerate() {
                let row = &y[(bb * c + ch) * l..(bb * c + ch + 1) * l];
                let m = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
                let sum = row.iter().fold(0.0f32, |a, &x| a + (x - m).exp());
                *e = (m, sum);
            }
        } else {
            let img = &y[bb * l * c..(bb + 1) * l * c];
            for px in img.chunks_exact(c) {
                for (e, &x) in s.iter_mut().zip(px) {
                    e.0 = e.0.max(x);
                }
            }
            for px in img.chunks_exact(c) {
                for (e, &x) in s.iter_mut().zip(px) {
                    e.1 += (x - e.0).exp();
                }
            }
        }
    }
    st
}

/// Applies the norm's elementwise tail to one value of channel `ch`.
#[inline]
fn finish(a: &NormArgs<'_>, ch: usize, normalized: f32, z: Option<f32>) -> f32 {
    let mut v = normalized;
    if let (Some(wt), Some(bs)) = (a.weight, a.bias) {
        v = v * wt[ch] + bs[ch];
    }
    if a.gelu {
        v = gelu(v);
    }
    match z {
        Some(z) => v * z,
        None => v,
    }
}

/// One channel-first tile: positions `l0..l0+nb` of batch item `bb` into `tile (C, nb)`.
#[allow(clippy::too_many_arguments)]
fn norm_tile_cf(
    a: &NormArgs<'_>,
    y: &[f32],
    z: Option<&[f32]>,
    stats: &[(f32, f32)],
    bb: usize,
    l: usize,
    l0: usize,
    tile: &mut [f32],
) {
    let c = a.channels;
    let nb = tile.len() / c.max(1);
    let row = |ch: usize| &y[(bb * c + ch) * l + l0..][..nb];
    // z is tiled like the output.
    let z = z.map(|z| &z[tile_offset(c, l, bb, l0 / GEMM_BLOCK)..][..c * nb]);
    let zrow = |ch: usize| z.map(|z| &z[ch * nb..(ch + 1) * nb]);
    match a.kind {
        OutNorm::LayerNorm => {
            // Per position: sums over the channels in order, vectorized across positions.
            let (mut mean, mut var) = ([0.0f32; GEMM_BLOCK], [0.0f32; GEMM_BLOCK]);
            let (mean, var) = (&mut mean[..nb], &mut var[..nb]);
            for ch in 0..c {
                mean.iter_mut().zip(row(ch)).for_each(|(m, &x)| *m += x);
            }
            let inv_c = c as f32;
            mean.iter_mut().for_each(|m| *m /= inv_c);
            for ch in 0..c {
                for ((v, &x), &m) in var.iter_mut().zip(row(ch)).zip(&*mean) {
                    let d = x - m;
                    *v += d * d;
                }
            }
            // var becomes rstd.
            var.iter_mut()
                .for_each(|v| *v = 1.0 / (*v / inv_c + super::LN_EPS).sqrt());
            let rstd = &*var;
            for ch in 0..c {
                let out = &mut tile[ch * nb..(ch + 1) * nb];
                let (wt, bs) = match (a.weight, a.bias) {
                    (Some(w), Some(b)) => (w[ch], b[ch]),
                    _ => (1.0, 0.0),
                };
                let stats = mean.iter().zip(rstd);
                if a.weight.is_some() {
                    for ((o, &x), (&m, &r)) in out.iter_mut().zip(row(ch)).zip(stats) {
                        *o = (x - m) * r * wt + bs;
                    }
                } else {
                    for ((o, &x), (&m, &r)) in out.iter_mut().zip(row(ch)).zip(stats) {
                        *o = (x - m) * r;
                    }
                }
                if a.gelu {
                    out.iter_mut().for_each(|o| *o = gelu(*o));
                }
                if let Some(zr) = zrow(ch) {
                    out.iter_mut().zip(zr).for_each(|(o, &zv)| *o *= zv);
                }
            }
        }
        kind => {
            for ch in 0..c {
                let out = &mut tile[ch * nb..(ch + 1) * nb];
                let zr = zrow(ch);
                for (p, (o, &x)) in out.iter_mut().zip(row(ch)).enumerate() {
                    let n = match kind {
                        OutNorm::Sigmoid => sigmoid(x),
                        OutNorm::Softmax => {
                            let (m, s) = stats[bb * c + ch];
                            (x - m).exp() / s
                        }
                        _ => x,
                    };
                    *o = finish(&NormArgs { weight: None, ..*a }, ch, n, zr.map(|z| z[p]));
                }
            }
        }
    }
}

/// One channel-last position row (`C` values) into `out`.
fn norm_row_cl(a: &NormArgs<'_>, y: &[f32], z: Option<&[f32]>, st: &[(f32, f32)], out: &mut [f32]) {
    let c = a.channels as f32;
    match a.kind {
        OutNorm::LayerNorm => {
            let mean = row_sum(y, |x| x) / c;
            let var = row_sum(y, |x| (x - mean) * (x - mean)) / c;
            let rstd = 1.0 / (var + super::LN_EPS).sqrt();
            // [`finish`]'s steps as whole-row passes (each vectorizes; the per-element
            // operations and their order are the same).
            out.iter_mut()
                .zip(y)
                .for_each(|(o, &x)| *o = (x - mean) * rstd);
            if let (Some(wt), Some(bs)) = (a.weight, a.bias) {
                for ((o, &w), &b) in out.iter_mut().zip(wt).zip(bs) {
                    *o = *o * w + b;
                }
            }
            if a.gelu {
                out.iter_mut().for_each(|o| *o = gelu(*o));
            }
            if let Some(z) = z {
                out.iter_mut().zip(z).for_each(|(o, &zv)| *o *= zv);
            }
        }
        kind => {
            for (ch, (o, &x)) in out.iter_mut().zip(y).enumerate() {
                let n = match kind {
                    OutNorm::Sigmoid => sigmoid(x),
                    OutNorm::Softmax => (x - st[ch].0).exp() / st[ch].1,
                    _ => x,
                };
                *o = finish(a, ch, n, z.map(|z| z[ch]));
            }
        }
    }
}

/// Splits the tiled channel-first buffer into its tiles: `(batch, block, l0, tile)`.
fn split_tiles(out: &mut [f32], b: usize, l: usize, c: usize) -> Vec<(usize, usize, &mut [f32])> {
    let mut v = Vec::new();
    let mut rest = out;
    for bb in 0..b {
        for (l0, nb) in blocks(l) {
            let (t, r) = rest.split_at_mut(c * nb);
            v.push((bb, l0, t));
            rest = r;
        }
    }
    v
}

/// Positions per item of the channel-last out-norm (a fixed size: the same rows whatever the
/// thread count; 98 items for a 56 x 56 image).
const NORM_ROWS: usize = 32;

/// The out-norm stage: norm, optional GELU, optional gate by `z` (already activated, in the
/// layout [`linear`] writes it: tiled on the channel-first fast path), into `out` (every
/// element written): the tiled channel-first buffer, or the channel-last `(B*L, C)` buffer.
#[allow(clippy::too_many_arguments)]
pub(super) fn norm_gate(
    naive: bool,
    cf: bool,
    a: &NormArgs<'_>,
    y: &[f32],
    z: Option<&[f32]>,
    b: usize,
    l: usize,
    out: &mut [f32],
    par: Parallelism<'_>,
) {
    let c = a.channels;
    if y.is_empty() {
        return;
    }
    let stats = if a.kind == OutNorm::Softmax {
        softmax_stats(cf, y, b, l, c)
    } else {
        Vec::new()
    };
    if naive {
        naive_norm(cf, a, y, z, &stats, b, l, out);
        return;
    }
    if cf {
        let tiles = split_tiles(out, b, l, c);
        par.for_each(tiles, |(bb, l0, t)| {
            norm_tile_cf(a, y, z, &stats, bb, l, l0, t)
        });
    } else {
        par.for_each_chunk(out, NORM_ROWS * c, |j, chunk| {
            let r0 = j * NORM_ROWS;
            if a.kind == OutNorm::LayerNorm {
                // The norm and its affine on lanes (ss2d-core, the current SIMD level), then
                // GELU and the gate as whole-chunk passes.
                let yr = &y[r0 * c..r0 * c + chunk.len()];
                let affine = a.weight.zip(a.bias);
                if let Err(e) =
                    ss2d_core::norm::layer_norm_rows(c, super::LN_EPS, affine, yr, chunk)
                {
                    unreachable!("out-norm shapes validated by the layer: {e}");
                }
                if a.gelu {
                    chunk.iter_mut().for_each(|o| *o = gelu(*o));
                }
                if let Some(z) = z {
                    let zr = &z[r0 * c..r0 * c + chunk.len()];
                    chunk.iter_mut().zip(zr).for_each(|(o, &zv)| *o *= zv);
                }
                return;
            }
            for (k, orow) in chunk.chunks_exact_mut(c).enumerate() {
                let r = r0 + k;
                let st = if stats.is_empty() {
                    &[][..]
                } else {
                    &stats[(r / l) * c..(r / l + 1) * c]
                };
                norm_row_cl(
                    a,
                    &y[r * c..(r + 1) * c],
                    z.map(|z| &z[r * c..(r + 1) * c]),
                    st,
                    orow,
                );
            }
        });
    }
}

/// The reference out-norm: per position, plain sequential sums.
#[allow(clippy::too_many_arguments)]
fn naive_norm(
    cf: bool,
    a: &NormArgs<'_>,
    y: &[f32],
    z: Option<&[f32]>,
    stats: &[(f32, f32)],
    b: usize,
    l: usize,
    out: &mut [f32],
) {
    let c = a.channels;
    let at = |bb: usize, ch: usize, p: usize| {
        if cf {
            (bb * c + ch) * l + p
        } else {
            (bb * l + p) * c + ch
        }
    };
    let dst = |bb: usize, ch: usize, p: usize| {
        if cf {
            let j = p / GEMM_BLOCK;
            let nb = GEMM_BLOCK.min(l - j * GEMM_BLOCK);
            tile_offset(c, l, bb, j) + ch * nb + (p - j * GEMM_BLOCK)
        } else {
            (bb * l + p) * c + ch
        }
    };
    for bb in 0..b {
        for p in 0..l {
            let (mut mean, mut var) = (0.0f32, 0.0f32);
            if a.kind == OutNorm::LayerNorm {
                for ch in 0..c {
                    mean += y[at(bb, ch, p)];
                }
                mean /= c as f32;
                for ch in 0..c {
                    let d = y[at(bb, ch, p)] - mean;
                    var += d * d;
                }
                var /= c as f32;
            }
            for ch in 0..c {
                let x = y[at(bb, ch, p)];
                let n = match a.kind {
                    OutNorm::LayerNorm => (x - mean) / (var + super::LN_EPS).sqrt(),
                    OutNorm::Sigmoid => sigmoid(x),
                    OutNorm::Softmax => {
                        let (m, s) = stats[bb * c + ch];
                        (x - m).exp() / s
                    }
                    OutNorm::Identity => x,
                };
                out[dst(bb, ch, p)] = finish(a, ch, n, z.map(|z| z[at(bb, ch, p)]));
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Layout helpers (intermediates)

/// The channel-first `(B, C, L)` form of a module-layout buffer.
pub(super) fn to_channel_first(cf: bool, v: &[f32], b: usize, l: usize, c: usize) -> Vec<f32> {
    if cf {
        return v.to_vec();
    }
    let mut out = vec![0.0f32; v.len()];
    for bb in 0..b {
        for p in 0..l {
            for ch in 0..c {
                out[(bb * c + ch) * l + p] = v[(bb * l + p) * c + ch];
            }
        }
    }
    out
}

/// `in_proj`'s output in the module layout from its x and z halves.
pub(super) fn concat_channels(
    cf: bool,
    x: &[f32],
    z: &[f32],
    b: usize,
    l: usize,
    c: usize,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(2 * x.len());
    if cf {
        for bb in 0..b {
            out.extend_from_slice(&x[bb * c * l..(bb + 1) * c * l]);
            out.extend_from_slice(&z[bb * c * l..(bb + 1) * c * l]);
        }
    } else {
        for r in 0..b * l {
            out.extend_from_slice(&x[r * c..(r + 1) * c]);
            out.extend_from_slice(&z[r * c..(r + 1) * c]);
        }
    }
    out
}

/// The module-layout form of [`norm_gate`]'s output.
pub(super) fn untile(cf: bool, t: &[f32], b: usize, l: usize, c: usize) -> Vec<f32> {
    if !cf {
        return t.to_vec();
    }
    let mut out = vec![0.0f32; t.len()];
    for bb in 0..b {
        for (j, (l0, nb)) in blocks(l).enumerate() {
            let tile = &t[tile_offset(c, l, bb, j)..][..c * nb];
            for ch in 0..c {
                out[(bb * c + ch) * l + l0..][..nb].copy_from_slice(&tile[ch * nb..(ch + 1) * nb]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Parallelism::{Sequential, Threads};

    fn fill(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    #[test]
    fn conv_fast_matches_naive_both_layouts() {
        // w = 70: channel-last rows of three items (CONV_PIXELS), the last one short.
        for (b, c, h, w, k) in [(2, 5, 6, 9, 3), (2, 5, 6, 9, 5), (1, 3, 4, 70, 3)] {
            let weight = fill(c * k * k, 3);
            let mut taps = vec![0.0; c * k * k];
            for ch in 0..c {
                for t in 0..k * k {
                    taps[t * c + ch] = weight[ch * k * k + t];
                }
            }
            let bias = fill(c, 4);
            let a = ConvArgs {
                k,
                weight: &weight,
                taps: &taps,
                bias: Some(&bias),
                channels: c,
                h,
                w,
            };
            for cf in [true, false] {
                let x = fill(b * c * h * w, 5);
                let mut f = vec![0.0; x.len()];
                let mut n = vec![0.0; x.len()];
                dwconv(false, cf, &a, &x, false, b, &mut f, false, Sequential);
                dwconv(true, cf, &a, &x, false, b, &mut n, false, Sequential);
                for (p, q) in f.iter().zip(&n) {
                    assert!((p - q).abs() < 1e-5, "{p} {q}");
                }
                // The fused SiLU gives the bits of a separate pass, threaded or not.
                silu_inplace(false, &mut f, Sequential);
                let mut g = vec![f32::NAN; x.len()];
                dwconv(false, cf, &a, &x, false, b, &mut g, true, Threads(2));
                assert_eq!(bits(&g), bits(&f));
            }
        }
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// The channel-first conv reads a tiled input (several tiles per plane, the last one
    /// short) to the same bits as the plain layout.
    #[test]
    fn conv_from_tiles_matches_plain() {
        let (b, c, h, w, k) = (2, 3, 23, 25, 3);
        let (l, weight, bias) = (h * w, fill(c * k * k, 8), fill(c, 9));
        assert!(l > 2 * GEMM_BLOCK && l % GEMM_BLOCK != 0);
        let a = ConvArgs {
            k,
            weight: &weight,
            taps: &[],
            bias: Some(&bias),
            channels: c,
            h,
            w,
        };
        let x = fill(b * c * l, 10);
        let mut tiles = vec![f32::NAN; x.len()];
        for (bb, l0, t) in split_tiles(&mut tiles, b, l, c) {
            let nb = t.len() / c;
            for ch in 0..c {
                let src = &x[(bb * c + ch) * l + l0..][..nb];
                t[ch * nb..(ch + 1) * nb].copy_from_slice(src);
            }
        }
        assert_eq!(bits(&untile(true, &tiles, b, l, c)), bits(&x));
        let mut want = vec![f32::NAN; x.len()];
        dwconv(false, true, &a, &x, false, b, &mut want, true, Sequential);
        for par in [Sequential, Threads(2), Threads(3)] {
            let mut got = vec![f32::NAN; x.len()];
            dwconv(false, true, &a, &tiles, true, b, &mut got, true, par);
            assert_eq!(bits(&got), bits(&want), "{par:?}");
            let mut back = vec![f32::NAN; x.len()];
            let tail = Tail {
                bias: Some(&bias),
                silu: true,
            };
            untile_into(&tiles, c, b, l, &mut back, tail, par);
            let mut direct = x.clone();
            for (row, r) in direct.chunks_exact_mut(l).enumerate() {
                r.iter_mut().for_each(|v| *v += bias[row % c]);
            }
            silu_inplace(false, &mut direct, Sequential);
            assert_eq!(bits(&back), bits(&direct), "{par:?}");
        }
    }

    /// The fixed items of one 56 x 56 image (batch 1, a stage-1 layer: 96 or 192 channels)
    /// give 16 threads about three or more each in every pass, so that threads that start
    /// late or run slow are made up for by the others; the channel-last products are the
    /// exception (blocks of fewer rows repack the weight per call).
    #[test]
    fn batch_one_items_spread_over_sixteen_threads() {
        let (h, w, l) = (56usize, 56usize, 56 * 56);
        let per_thread = |items: usize| items as f64 / 16.0;
        // Channel-first products, out-norm tiles.
        assert_eq!(blocks(l).count(), 49);
        assert!(per_thread(blocks(l).count()) >= 3.0);
        // Channel-first conv: one plane per item; copy-back: rows of whole channels.
        assert_eq!((ROW_ITEM / l).max(1), 1);
        assert!(per_thread(96) >= 4.0);
        // Channel-last conv and out-norm.
        assert_eq!(h * w.div_ceil(CONV_PIXELS), 112);
        assert_eq!(l.div_ceil(NORM_ROWS), 98);
        // Channel-last products: about two blocks per thread (x and z in one pass: 62 items,
        // out_proj alone 31); 13 blocks of 256 positions on one thread.
        let sixteen = Parallelism::Threads(16);
        if sixteen.threads() == 16 {
            assert_eq!(l.div_ceil(cl_block(l, sixteen)), 31);
        }
        assert_eq!(l.div_ceil(cl_block(l, Parallelism::Sequential)), 13);
        // A 14 x 14 grid still gives two threads two blocks each.
        let two = Parallelism::Threads(2);
        if two.threads() == 2 {
            assert_eq!(196usize.div_ceil(cl_block(196, two)), 4);
        }
    }

    #[test]
    fn silu_tail_matches_body() {
        let x = fill(3 * ss2d_core::MAX_LANES + 5, 7);
        let mut a = x.clone();
        silu_slice(&mut a);
        for (i, &v) in x.iter().enumerate() {
            let mut one = [v];
            silu_slice(&mut one);
            assert_eq!(one[0].to_bits(), a[i].to_bits());
            assert!((a[i] - silu_scalar(v)).abs() <= 1e-6 * (1.0 + v.abs()));
        }
    }
}
