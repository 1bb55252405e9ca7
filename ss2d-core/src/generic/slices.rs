//! Slice-level kernels at one level: the blocked transpose (public `crate::transpose`) and the
//! depthwise convolution of a plane (public `crate::conv`).

use super::vecs::{load, store};
use super::{fma, splat, to_arr, transpose as transpose_block, LANES, V};

level_fn! {
    /// Columns `c0 .. c0 + dst.len() / rows` of `src` (`rows x cols`) as rows of `dst`
    /// (arguments validated by `crate::transpose::transpose`).
    pub(crate) fn transpose_cols(src: &[f32], rows: usize, cols: usize, c0: usize, dst: &mut [f32]) {
        let nc = dst.len() / rows;
    let mut c = 0;
    while c + LANES <= nc {
        let mut r = 0;
        while r + LANES <= rows {
            let mut m = [splat(0.0); LANES];
            for (i, v) in m.iter_mut().enumerate() {
                *v = load(&src[(r + i) * cols + c0 + c..]);
            }
            transpose_block(&mut m);
            for (i, v) in m.iter().enumerate() {
                let o = (c + i) * rows + r;
                store(&mut dst[o..], *v);
            }
            r += LANES;
        }
        for rr in r..rows {
            let s = &src[rr * cols + c0 + c..rr * cols + c0 + c + LANES];
            for (i, &x) in s.iter().enumerate() {
                dst[(c + i) * rows + rr] = x;
            }
        }
        c += LANES;
    }
    for cc in c..nc {
        for (r, d) in dst[cc * rows..(cc + 1) * rows].iter_mut().enumerate() {
            *d = src[r * cols + c0 + cc];
        }
    }
    }
}

level_fn! {
    /// One channel plane of a depthwise convolution (arguments validated by
    /// `crate::conv::depthwise_plane`): the plane is copied into a zero-bordered buffer
    /// (`k / 2` on every side, plus slack), so every tap of every output vector is one
    /// unaligned load with no edge cases, and a row's last partial vector is computed whole
    /// and stored in part.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn depthwise_plane(
        wk: &[f32],
        bias: Option<f32>,
        k: usize,
        h: usize,
        w: usize,
        inp: &[f32],
        out: &mut [f32],
        buf: &mut [f32],
    ) {
        let p = k / 2;
        let pw = w + 2 * p;
        let buf = &mut buf[..(h + 2 * p) * pw + LANES];
        buf.fill(0.0);
        for (y, row) in inp.chunks_exact(w).take(h).enumerate() {
            let o = (y + p) * pw + p;
            buf[o..o + w].copy_from_slice(row);
        }
        let bias = bias.map(splat);
        let nv = w.div_ceil(LANES);
        for (oh, orow) in out.chunks_exact_mut(w).take(h).enumerate() {
            let mut v = 0;
            while v < nv {
                // Up to `GROUP` vectors of the row at once: independent accumulator chains
                // (one chain of k*k FMAs per vector is latency-bound), each with the same
                // per-element expression as one vector alone.
                match nv - v {
                    1 => conv_vectors::<1>(wk, bias, k, pw, oh, v, orow, buf),
                    2 => conv_vectors::<2>(wk, bias, k, pw, oh, v, orow, buf),
                    3 => conv_vectors::<3>(wk, bias, k, pw, oh, v, orow, buf),
                    _ => conv_vectors::<GROUP>(wk, bias, k, pw, oh, v, orow, buf),
                }
                v += GROUP;
            }
        }
    }
}

/// Output vectors computed together by [`depthwise_plane`].
const GROUP: usize = 4;

/// Vectors `v .. v + NB` of output row `oh` (`orow`) of [`depthwise_plane`]: for each, the
/// taps `(i, j)` ascending as FMAs onto 0, then `+ bias`; a row's last partial vector is
/// computed whole and stored in part.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn conv_vectors<const NB: usize>(
    wk: &[f32],
    bias: Option<V>,
    k: usize,
    pw: usize,
    oh: usize,
    v: usize,
    orow: &mut [f32],
    buf: &[f32],
) {
    let mut acc = [splat(0.0); NB];
    for i in 0..k {
        let row = (oh + i) * pw + v * LANES;
        for j in 0..k {
            let wv = splat(wk[i * k + j]);
            for (t, a) in acc.iter_mut().enumerate() {
                *a = fma(wv, load(&buf[row + j + t * LANES..]), *a);
            }
        }
    }
    for (t, a) in acc.iter().enumerate() {
        let mut r = *a;
        if let Some(b) = bias {
            r += b;
        }
        let lo = (v + t) * LANES;
        let hi = (lo + LANES).min(orow.len());
        let o = &mut orow[lo..hi];
        if o.len() == LANES {
            store(o, r);
        } else {
            o.copy_from_slice(&to_arr(r)[..o.len()]);
        }
    }
}
