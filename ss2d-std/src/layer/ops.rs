//! The layer's non-scan stages: the products (`ss2d_core::gemm`), the depthwise
//! conv, SiLU, the out-norm with GELU and gate, each with a `naive` twin for the reference
//! backend.
//!
//! Layouts: channel-first activations are `(B, C, L)`, channel-last `(B*L, C)`. The out-norm's
//! channel-first output is *tiled*: per batch item, position blocks `j` of [`GEMM_BLOCK`]
//! positions (the last one shorter), each stored `(C, nb_j)` contiguously, so every thread owns
//! a contiguous tile and `out_proj` reads each tile as a plain row-major matrix.

use ss2d_core::gemm::{Bias, Product};
use ss2d_core::math::{self, MathFn};

use super::OutNorm;
use crate::Parallelism;

/// Positions per tile of the out-norm's channel-first output: one strip of columns of the
/// product kernel at 16 lanes (4 vectors), so that `out_proj` reads each tile in place as
/// contiguous rows (measured: ~10% faster than 256-position tiles it has to copy). A constant,
/// so that the tiled buffer's layout does not depend on the thread count.
pub const GEMM_BLOCK: usize = 64;

/// Positions per item of the channel-last products and out-norm (13 items for the 3136
/// positions of a stage-1 layer). Products are bitwise the same for any split.
const ROW_BLOCK: usize = 256;

/// Elements per chunk of elementwise passes.
const ELEMWISE_CHUNK: usize = 16 * 1024;

/// Position blocks of a sequence of `l`: `(l0, nb)`.
fn blocks(l: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..l.div_ceil(GEMM_BLOCK)).map(move |j| {
        let l0 = j * GEMM_BLOCK;
        (l0, GEMM_BLOCK.min(l - l0))
    })
}

// ------------------------------------------------------------------------------------------
// Products

/// Rows of the product kernel's register tiles: channel-first items hold multiples of it.
const ROW_TILE: usize = 6;

/// A projection `out = W x + bias`: the weight in both forms, its bias.
#[derive(Clone, Copy)]
pub(super) struct Linear<'a> {
    /// `W (o, i)`, the module's layout (the reference products).
    pub w: &'a [f32],
    /// `W^T (i, o)` ([`transpose`]), what the fast products read.
    pub wt: &'a [f32],
    /// Output channels.
    pub o: usize,
    /// Input channels.
    pub i: usize,
    /// `(o,)`.
    pub bias: Option<&'a [f32]>,
}

/// `W (o, i)` transposed to `(i, o)`.
pub(super) fn transpose(w: &[f32], o: usize, i: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; w.len()];
    for r in 0..o {
        for k in 0..i {
            t[k * o + r] = w[r * i + k];
        }
    }
    t
}

/// One product of views built from validated sizes (so it cannot fail).
fn product(p: Product<'_>, c: &mut [f32], c_row_stride: usize) {
    if let Err(e) = p.run(c, c_row_stride) {
        unreachable!("layer product with inconsistent views: {e}");
    }
}

/// The channel-first product: `out[b] (o, l) = W (o, i) @ rhs`, split into items of output
/// channels of one batch item; `rhs(b, p, c)` runs `p` (rows `r0..` of `W`, `B` still to
/// fill in) for batch item `b` into `c` (`(rows, l)`, row stride `l`).
///
/// The split follows the thread count (each item rereads the whole input, so one item per
/// batch item when sequential: measured ~10% faster than items of 48 channels, and about one
/// per thread otherwise); the result
/// does not depend on it, since every output element is the same chain of FMAs in
/// `ss2d_core::gemm` whatever the split (bitwise, tested there).
fn linear_cf_rows<F>(
    lin: &Linear<'_>,
    silu: bool,
    b: usize,
    l: usize,
    out: &mut [f32],
    par: Parallelism<'_>,
    rhs: F,
) where
    F: Fn(usize, Product<'_>, &mut [f32]) + Sync,
{
    let o = lin.o;
    let tiles = o.div_ceil(ROW_TILE);
    // One item per thread (each item rereads the input, so no more than that).
    let per_b = par.threads().div_ceil(b).clamp(1, tiles);
    let chunk = tiles.div_ceil(per_b) * ROW_TILE;
    let mut items = Vec::new();
    let mut rest = out;
    for bb in 0..b {
        for r0 in (0..o).step_by(chunk) {
            let rows = chunk.min(o - r0);
            let (c, r) = rest.split_at_mut(rows * l);
            items.push((bb, r0, c));
            rest = r;
        }
    }
    par.for_each(items, |(bb, r0, c)| {
        let rows = c.len() / l;
        let p = Product {
            m: rows,
            k: lin.i,
            n: l,
            a: &lin.wt[r0..],
            a_strides: (1, o),
            b: &[],
            b_row_stride: l,
            bias: lin
                .bias
                .map_or(Bias::None, |v| Bias::Row(&v[r0..r0 + rows])),
            silu,
        };
        rhs(bb, p, c);
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

/// The reference path's bias and SiLU after a naive product.
fn naive_finish(lin: &Linear<'_>, silu: bool, cf: bool, b: usize, l: usize, out: &mut [f32]) {
    if let Some(bias) = lin.bias {
        add_channel_bias(cf, bias, b, l, out, Parallelism::Sequential);
    }
    if silu {
        silu_inplace(true, out, Parallelism::Sequential);
    }
}

/// `out = W x + bias` per position, then SiLU when `silu`: channel-first `x (B, i, L) -> out
/// (B, o, L)`, channel-last `x (B*L, i) -> out (B*L, o)`.
#[allow(clippy::too_many_arguments)]
pub(super) fn linear(
    naive: bool,
    cf: bool,
    lin: &Linear<'_>,
    silu: bool,
    x: &[f32],
    b: usize,
    l: usize,
    out: &mut [f32],
    par: Parallelism<'_>,
) {
    let (o, i) = (lin.o, lin.i);
    if o == 0 || out.is_empty() {
        return;
    }
    if naive {
        for bb in 0..b {
            let xb = &x[bb * i * l..(bb + 1) * i * l];
            let ob = &mut out[bb * o * l..(bb + 1) * o * l];
            if cf {
                naive_product(lin.w, o, i, xb, l, 1, l, ob, 1, l);
            } else {
                naive_product(lin.w, o, i, xb, 1, i, l, ob, o, 1);
            }
        }
        naive_finish(lin, silu, cf, b, l, out);
    } else if cf {
        linear_cf_rows(lin, silu, b, l, out, par, |bb, p, c| {
            let b = &x[bb * i * l..(bb + 1) * i * l];
            product(Product { b, ..p }, c, l);
        });
    } else {
        // Items of ROW_BLOCK positions (rows of `out`).
        par.for_each_chunk(out, ROW_BLOCK * o, |j, c| {
            let nb = c.len() / o;
            let r0 = j * ROW_BLOCK;
            let p = Product {
                m: nb,
                k: i,
                n: o,
                a: &x[r0 * i..(r0 + nb) * i],
                a_strides: (i, 1),
                b: lin.wt,
                b_row_stride: o,
                bias: lin.bias.map_or(Bias::None, Bias::Col),
                silu,
            };
            product(p, c, o);
        });
    }
}

/// Offset of tile `j` of batch item `bb` (tiles of `c` channels, see the module docs).
fn tile_offset(c: usize, l: usize, bb: usize, j: usize) -> usize {
    bb * c * l + j * GEMM_BLOCK * c
}

/// `out_proj` (+ bias) from the out-norm's output: tiled channel-first or plain channel-last.
#[allow(clippy::too_many_arguments)]
pub(super) fn linear_from_tiles(
    naive: bool,
    cf: bool,
    lin: &Linear<'_>,
    y: &[f32],
    b: usize,
    l: usize,
    out: &mut [f32],
    par: Parallelism<'_>,
) {
    if !cf {
        return linear(naive, cf, lin, false, y, b, l, out, par);
    }
    let (o, i) = (lin.o, lin.i);
    if o == 0 || out.is_empty() {
        return;
    }
    if naive {
        for bb in 0..b {
            let ob = &mut out[bb * o * l..(bb + 1) * o * l];
            for (j, (l0, nb)) in blocks(l).enumerate() {
                let t = &y[tile_offset(i, l, bb, j)..][..i * nb];
                naive_product(lin.w, o, i, t, nb, 1, nb, &mut ob[l0..], 1, l);
            }
        }
        naive_finish(lin, false, cf, b, l, out);
        return;
    }
    linear_cf_rows(lin, false, b, l, out, par, |bb, p, c| {
        for (j, (l0, nb)) in blocks(l).enumerate() {
            let t = &y[tile_offset(i, l, bb, j)..][..i * nb];
            let p = Product {
                n: nb,
                b: t,
                b_row_stride: nb,
                ..p
            };
            product(p, &mut c[l0..], l);
        }
    });
}

/// Adds `bias[c]` to every position of channel `c`.
pub(super) fn add_channel_bias(
    cf: bool,
    bias: &[f32],
    b: usize,
    l: usize,
    v: &mut [f32],
    par: Parallelism<'_>,
) {
    let c = bias.len();
    if cf {
        par.for_each_chunk(v, l.max(1), |row, r| {
            let bv = bias[row % c];
            r.iter_mut().for_each(|x| *x += bv);
        });
    } else {
        let _ = b;
        par.for_each_chunk(v, c.max(1), |_, r| {
            r.iter_mut().zip(bias).for_each(|(x, bv)| *x += bv);
        });
    }
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

/// The output range `[lo, hi)` of positions `o` along a line of `n` with `0 <= o + s < n`.
fn shifted(n: usize, s: isize) -> (usize, usize) {
    let lo = (-s).max(0) as usize;
    let hi = (n as isize - s).clamp(0, n as isize) as usize;
    (lo.min(hi), hi)
}

/// One channel-first plane: `out = sum over taps (i, j) ascending of w * in[shifted]`, then
/// `+ bias`, a vector of outputs of a row at a time (`ss2d_core::conv::depthwise_plane`, at
/// the current SIMD level, over a zero-bordered copy of the plane).
fn conv_plane(a: &ConvArgs<'_>, c: usize, inp: &[f32], out: &mut [f32]) {
    let (k, h, w) = (a.k, a.h, a.w);
    let mut buf = vec![0.0f32; ss2d_core::conv::depthwise_plane_scratch(k, h, w)];
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

/// One channel-last image row `oh` of batch item `bb` (`w * C` outputs): same per-element
/// expression as [`conv_plane`] (taps ascending, then bias), channels in the inner loop.
fn conv_row(a: &ConvArgs<'_>, oh: usize, img: &[f32], out: &mut [f32]) {
    let (k, h, w, c) = (a.k, a.h, a.w, a.channels);
    let pad = (k / 2) as isize;
    out.fill(0.0);
    for i in 0..k {
        let ih = oh as isize + i as isize - pad;
        if ih < 0 || ih >= h as isize {
            continue;
        }
        let irow = &img[ih as usize * w * c..(ih as usize + 1) * w * c];
        for j in 0..k {
            let s = j as isize - pad;
            let (lo, hi) = shifted(w, s);
            let tap = &a.taps[(i * k + j) * c..(i * k + j + 1) * c];
            for ow in lo..hi {
                let iw = (ow as isize + s) as usize;
                let src = &irow[iw * c..(iw + 1) * c];
                let dst = &mut out[ow * c..(ow + 1) * c];
                for ((o, &v), &t) in dst.iter_mut().zip(src).zip(tap) {
                    *o += t * v;
                }
            }
        }
    }
    if let Some(bias) = a.bias {
        for px in out.chunks_exact_mut(c) {
            px.iter_mut().zip(bias).for_each(|(o, bv)| *o += bv);
        }
    }
}

/// The depthwise conv (+ bias), before SiLU: channel-first `(B, C, H, W)` or channel-last
/// `(B, H, W, C)`, in place of the module layout.
pub(super) fn dwconv(
    naive: bool,
    cf: bool,
    a: &ConvArgs<'_>,
    x: &[f32],
    b: usize,
    out: &mut [f32],
    par: Parallelism<'_>,
) {
    let (h, w, c) = (a.h, a.w, a.channels);
    let hw = h * w;
    if hw == 0 || c == 0 || b == 0 {
        return;
    }
    if naive {
        return naive_conv(cf, a, x, b, out);
    }
    if cf {
        par.for_each_chunk(out, hw, |plane, o| {
            conv_plane(a, plane % c, &x[plane * hw..(plane + 1) * hw], o);
        });
    } else {
        par.for_each_chunk(out, w * c, |row, o| {
            let (bb, oh) = (row / h, row % h);
            conv_row(a, oh, &x[bb * hw * c..(bb + 1) * hw * c], o);
        });
    }
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
    let zrow = |ch: usize| z.map(|z| &z[(bb * c + ch) * l + l0..][..nb]);
    match a.kind {
        OutNorm::LayerNorm => {
            let mut mean = vec![0.0f32; nb];
            for ch in 0..c {
                mean.iter_mut().zip(row(ch)).for_each(|(m, &x)| *m += x);
            }
            let inv_c = c as f32;
            mean.iter_mut().for_each(|m| *m /= inv_c);
            let mut var = vec![0.0f32; nb];
            for ch in 0..c {
                for ((v, &x), &m) in var.iter_mut().zip(row(ch)).zip(&mean) {
                    let d = x - m;
                    *v += d * d;
                }
            }
            let rstd: Vec<f32> = var
                .iter()
                .map(|&v| 1.0 / (v / inv_c + super::LN_EPS).sqrt())
                .collect();
            for ch in 0..c {
                let out = &mut tile[ch * nb..(ch + 1) * nb];
                let (wt, bs) = match (a.weight, a.bias) {
                    (Some(w), Some(b)) => (w[ch], b[ch]),
                    _ => (1.0, 0.0),
                };
                let affine = a.weight.is_some();
                for (p, (o, &x)) in out.iter_mut().zip(row(ch)).enumerate() {
                    let n = (x - mean[p]) * rstd[p];
                    *o = if affine { n * wt + bs } else { n };
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
            for (ch, (o, &x)) in out.iter_mut().zip(y).enumerate() {
                *o = finish(a, ch, (x - mean) * rstd, z.map(|z| z[ch]));
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

/// The out-norm stage: norm, optional GELU, optional gate by `z` (already activated), into
/// `out` (every element written): the tiled channel-first buffer, or the channel-last
/// `(B*L, C)` buffer.
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
        par.for_each_chunk(out, ROW_BLOCK * c, |j, chunk| {
            let r0 = j * ROW_BLOCK;
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
    use crate::testutil::fill;

    #[test]
    fn conv_fast_matches_naive_both_layouts() {
        let (b, c, h, w, k) = (2, 5, 6, 9, 3);
        for k in [k, 5, 1 + 2] {
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
                dwconv(false, cf, &a, &x, b, &mut f, Parallelism::Sequential);
                dwconv(true, cf, &a, &x, b, &mut n, Parallelism::Sequential);
                for (p, q) in f.iter().zip(&n) {
                    assert!((p - q).abs() < 1e-5, "{p} {q}");
                }
            }
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
