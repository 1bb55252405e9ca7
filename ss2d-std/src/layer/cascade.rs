//! `cascade2d` (`v052dc`), following upstream `forward_corev2` with `scan_mode="cascade2d"`
//! exactly (docs/semantics.md section 3.3), channel-first `(B, D, H, W)`:
//!
//! ```text
//! x     = layer_norm(x over channels, no affine, eps 1e-5)
//! y_row = rowcol(x, directions 0 and 1, along W)      sequences (b, h): B*H of length W
//! y_row = layer_norm(y_row, no affine)
//! y     = rowcol(y_row, directions 2 and 3, along H)  sequences (b, w): B*W of length H
//!
//! rowcol: xs = [seq, flip(seq)] per sequence (2 directions), x_dbl = x_proj (2 param sets),
//!         dts = dt_proj(x_dbl[:R]), B/C = x_dbl[R:R+N], x_dbl[R+N:] (G = 2 groups),
//!         ys = selective_scan(xs, dts, A, B, C, D, delta_bias, softplus)
//!         out[t] = ys[0][t] + ys[1][t]        <- the reverse output is NOT flipped back:
//!                                                position t gets the reverse scan's step t,
//!                                                which was computed at position len-1-t
//! ```

use ss2d_core::{BcLayout, Error, Layout, ScanArgs, ScanShape, Walk};

use super::LN_EPS;
use crate::unfused::{Ss2dScanShape, Ss2dScanWeights};
use crate::Parallelism;

/// LayerNorm over channels without affine, channel-first `(B, C, L)`.
fn layer_norm_cf(x: &[f32], b: usize, c: usize, l: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    for bb in 0..b {
        let xb = &x[bb * c * l..(bb + 1) * c * l];
        let ob = &mut out[bb * c * l..(bb + 1) * c * l];
        let mut mean = vec![0.0f32; l];
        for row in xb.chunks_exact(l) {
            mean.iter_mut().zip(row).for_each(|(m, &v)| *m += v);
        }
        mean.iter_mut().for_each(|m| *m /= c as f32);
        let mut var = vec![0.0f32; l];
        for row in xb.chunks_exact(l) {
            for ((s, &v), &m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (v - m) * (v - m);
            }
        }
        let rstd: Vec<f32> = var
            .iter()
            .map(|&v| 1.0 / (v / c as f32 + LN_EPS).sqrt())
            .collect();
        for (orow, row) in ob.chunks_exact_mut(l).zip(xb.chunks_exact(l)) {
            for (p, (o, &v)) in orow.iter_mut().zip(row).enumerate() {
                *o = (v - mean[p]) * rstd[p];
            }
        }
    }
    out
}

/// Sizes of one pass.
#[derive(Clone, Copy)]
struct Pass {
    b: usize,
    d: usize,
    h: usize,
    w: usize,
    n: usize,
    r: usize,
    /// First direction (0 for the row pass, 2 for the column pass).
    k0: usize,
    /// Along W (rows) or along H (columns).
    width: bool,
}

impl Pass {
    /// (number of sequences, sequence length).
    fn seqs(&self) -> (usize, usize) {
        if self.width {
            (self.b * self.h, self.w)
        } else {
            (self.b * self.w, self.h)
        }
    }

    /// Index into `(B, D, H, W)` of channel `c` at step `t` of sequence `s`.
    fn at(&self, s: usize, c: usize, t: usize) -> usize {
        let (h, w, d) = (self.h, self.w, self.d);
        if self.width {
            let (bb, hh) = (s / h, s % h);
            ((bb * d + c) * h + hh) * w + t
        } else {
            let (bb, ww) = (s / w, s % w);
            ((bb * d + c) * h + t) * w + ww
        }
    }
}

/// One `scan_rowcol` pass: `x (B, D, H, W)` -> `(B, D, H, W)`.
fn rowcol(
    p: Pass,
    wt: &Ss2dScanWeights<'_>,
    x: &[f32],
    naive: bool,
    par: Parallelism<'_>,
) -> Result<Vec<f32>, Error> {
    let (ns, len) = p.seqs();
    let (d, n, r) = (p.d, p.n, p.r);
    let pr = r + 2 * n;
    // xs (ns, 2, D, len): direction 0 forward, direction 1 flipped.
    let mut xs = vec![0.0f32; ns * 2 * d * len];
    for s in 0..ns {
        for c in 0..d {
            for t in 0..len {
                let v = x[p.at(s, c, t)];
                xs[((s * 2) * d + c) * len + t] = v;
                xs[((s * 2 + 1) * d + c) * len + (len - 1 - t)] = v;
            }
        }
    }
    // x_dbl (ns, 2, R+2N, len), then dts (ns, 2, D, len), Bs and Cs (ns, 2, N, len).
    let mut dts = vec![0.0f32; ns * 2 * d * len];
    let mut bs = vec![0.0f32; ns * 2 * n * len];
    let mut cs = vec![0.0f32; ns * 2 * n * len];
    let mut dbl = vec![0.0f32; pr * len];
    for s in 0..ns {
        for j in 0..2 {
            let k = p.k0 + j;
            let xsj = &xs[(s * 2 + j) * d * len..(s * 2 + j + 1) * d * len];
            dbl.fill(0.0);
            for (q, out) in dbl.chunks_exact_mut(len).enumerate() {
                let wrow = &wt.x_proj_weight[(k * pr + q) * d..(k * pr + q + 1) * d];
                for (c, &wv) in wrow.iter().enumerate() {
                    let xr = &xsj[c * len..(c + 1) * len];
                    out.iter_mut().zip(xr).for_each(|(o, &v)| *o += wv * v);
                }
            }
            let dj = &mut dts[(s * 2 + j) * d * len..(s * 2 + j + 1) * d * len];
            for (c, out) in dj.chunks_exact_mut(len).enumerate() {
                let wrow = &wt.dt_projs_weight[(k * d + c) * r..(k * d + c + 1) * r];
                for (q, &wv) in wrow.iter().enumerate() {
                    let xr = &dbl[q * len..(q + 1) * len];
                    out.iter_mut().zip(xr).for_each(|(o, &v)| *o += wv * v);
                }
            }
            let o = (s * 2 + j) * n * len;
            bs[o..o + n * len].copy_from_slice(&dbl[r * len..(r + n) * len]);
            cs[o..o + n * len].copy_from_slice(&dbl[(r + n) * len..(r + 2 * n) * len]);
        }
    }
    let rows = p.k0 * d..(p.k0 + 2) * d;
    let a: Vec<f32> = wt.a_logs[rows.start * n..rows.end * n]
        .iter()
        .map(|&v| -v.exp())
        .collect();
    let shape = ScanShape {
        batch: ns,
        dim: 2 * d,
        seqlen: len,
        dstate: n,
        b: BcLayout::Grouped(2),
        c: BcLayout::Grouped(2),
        layout: Layout::ChannelFirst,
    };
    let args = ScanArgs {
        u: &xs,
        delta: &dts,
        a: &a,
        b: &bs,
        c: &cs,
        d_skip: Some(&wt.ds[rows.clone()]),
        z: None,
        delta_bias: Some(&wt.dt_projs_bias[rows]),
        delta_softplus: true,
        initial_state: None,
    };
    let mut ys = vec![0.0f32; xs.len()];
    let walk = Walk::forward(len);
    if naive {
        ss2d_core::reference::selective_scan::<f32>(&shape, &walk, &args, &mut ys, None)?;
    } else {
        crate::selective_scan(&shape, &walk, &args, &mut ys, None, par)?;
    }
    // Sum the two directions in scan order (the reverse one stays reversed, as upstream).
    let mut out = vec![0.0f32; x.len()];
    for s in 0..ns {
        for c in 0..d {
            for t in 0..len {
                out[p.at(s, c, t)] =
                    ys[((s * 2) * d + c) * len + t] + ys[((s * 2 + 1) * d + c) * len + t];
            }
        }
    }
    Ok(out)
}

/// The cascade2d scan, `x` and `y` channel-first `(B, D, H, W)`.
pub(super) fn cascade2d(
    shape: &Ss2dScanShape,
    weights: &Ss2dScanWeights<'_>,
    x: &[f32],
    y: &mut [f32],
    naive: bool,
    par: Parallelism<'_>,
) -> Result<(), Error> {
    let sizes = shape.validate(weights)?;
    if !shape.channel_first {
        return Err(Error::Unsupported {
            what: "cascade2d with channel-last data (it fails upstream)",
        });
    }
    for (tensor, len) in [("x", x.len()), ("y", y.len())] {
        if len != sizes.x_len {
            return Err(Error::Length {
                tensor,
                expected: sizes.x_len,
                actual: len,
            });
        }
    }
    let (b, d, l) = (shape.batch, shape.dim, sizes.seqlen);
    if x.is_empty() {
        return Ok(());
    }
    let mut p = Pass {
        b,
        d,
        h: shape.h,
        w: shape.w,
        n: shape.dstate,
        r: shape.dt_rank,
        k0: 0,
        width: true,
    };
    let xn = layer_norm_cf(x, b, d, l);
    let y_row = rowcol(p, weights, &xn, naive, par)?;
    let y_row = layer_norm_cf(&y_row, b, d, l);
    p.k0 = 2;
    p.width = false;
    let out = rowcol(p, weights, &y_row, naive, par)?;
    y.copy_from_slice(&out);
    Ok(())
}
