//! Slice-level kernels at one level: the blocked transpose (public `crate::transpose`) and the
//! depthwise convolution of a plane (public `crate::conv`).

use super::vecs::{load, store};
use super::{fma, load_at, splat, sqrt, to_arr, transpose as transpose_block, LANES, V};

level_fn! {
    /// Columns `c0 .. c0 + nc` of `src` (`rows x cols`) as rows of `dst`, `ld` apart
    /// (arguments validated by `crate::transpose`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn transpose_cols(
        src: &[f32],
        rows: usize,
        cols: usize,
        c0: usize,
        nc: usize,
        dst: &mut [f32],
        ld: usize,
    ) {
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
                let o = (c + i) * ld + r;
                store(&mut dst[o..], *v);
            }
            r += LANES;
        }
        for rr in r..rows {
            let s = &src[rr * cols + c0 + c..rr * cols + c0 + c + LANES];
            for (i, &x) in s.iter().enumerate() {
                dst[(c + i) * ld + rr] = x;
            }
        }
        c += LANES;
    }
    for cc in c..nc {
        for (r, d) in dst[cc * ld..cc * ld + rows].iter_mut().enumerate() {
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

level_fn! {
    /// Pixels `w0 .. w0 + out.len() / c` of output row `oh` of a channel-last depthwise
    /// convolution (arguments validated by `crate::conv::depthwise_cl_row`): per channel
    /// panel of `LANES`, up to [`PIXELS`] pixels at once (independent accumulator chains that
    /// share each tap's load), every output the taps `(i, j)` ascending as FMAs onto 0 (taps
    /// that fall outside the image skipped: adding `w * 0` would not change the value), then
    /// `+ bias`: the per-element expression of [`depthwise_plane`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn depthwise_cl_row(
        taps: &[f32],
        bias: Option<&[f32]>,
        k: usize,
        h: usize,
        w: usize,
        c: usize,
        img: &[f32],
        oh: usize,
        w0: usize,
        silu: bool,
        out: &mut [f32],
    ) {
        let g = ClRow { taps, bias, img, k, h, w, c, oh, w0, silu };
        cl_row(&g, out);
    }
}

/// The pixels `g.w0 .. g.w0 + out.len() / g.c` of output row `g.oh`, every channel panel.
///
/// Panel after panel over the whole row. The loops swapped (each pixel group runs every
/// panel before the next group, the taps reloaded per group and panel, so that a pixel's
/// lines are read from L2 once) measured: on an Intel Xeon at x86-64-v4, one thread, the
/// s1l8 layer's conv stage 145-147 against 149-162 us (six interleaved rounds, one outlier
/// left out), but the standalone conv mixed (12 interleaved rounds: 8 x 56 x 96 median of
/// medians 18.3 against 15.6 us without SiLU, 56 x 56 x 96 with SiLU 177.6 against 172.4); at
/// x86-64-v3 on Zen 3 it executes 42 instructions per output vector against 28 (callgrind)
/// and ran about 20% slower. Not taken.
#[inline(always)]
fn cl_row(g: &ClRow<'_>, out: &mut [f32]) {
    let (c, n) = (g.c, out.len() / g.c);
    let mut c0 = 0;
    while c0 < c {
        if c - c0 >= LANES {
            cl_panel::<true>(g, c0, n, out);
        } else {
            cl_panel::<false>(g, c0, n, out);
        }
        c0 += LANES;
    }
}

level_fn! {
    /// Output rows `oh .. oh + out.len() / (w * c)` (whole rows) of a channel-last depthwise
    /// convolution (arguments validated by `crate::conv::depthwise_cl_rows`): the rows of
    /// [`depthwise_cl_row`], two at a time where a 3 x 3 kernel has both rows' neighbours
    /// inside the image (at 16 lanes): each input vector loaded once serves the taps of both
    /// output rows that read it. Every output is the same expression as [`depthwise_cl_row`]'s,
    /// so the bits do not depend on how rows are paired.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn depthwise_cl_rows(
        taps: &[f32],
        bias: Option<&[f32]>,
        k: usize,
        h: usize,
        w: usize,
        c: usize,
        img: &[f32],
        oh: usize,
        silu: bool,
        out: &mut [f32],
    ) {
        let rl = w * c;
        let rows = out.len() / rl;
        let mut r = 0;
        while r < rows {
            let row = oh + r;
            let g = ClRow { taps, bias, img, k, h, w, c, oh: row, w0: 0, silu };
            // Not at 8 lanes: there the taps do not fit the 16 registers beside the two
            // rows' accumulators, and with them spilled the pairs measured no faster on
            // Zen 3 (4 x 56 x 96, hot input: 6.3 against 6.4-6.7 ns per 16 outputs).
            let pair = LANES == 16
                && k == 3
                && w >= PAIR_GROUP + 2
                && r + 1 < rows
                && row >= 1
                && row + 2 < h;
            if pair {
                let (a, b) = out[r * rl..(r + 2) * rl].split_at_mut(rl);
                let mut c0 = 0;
                while c0 < c {
                    if c - c0 >= LANES {
                        cl3_pair_panel(&g, c0, a, b);
                    } else {
                        cl_panel::<false>(&g, c0, w, a);
                        cl_panel::<false>(&ClRow { oh: row + 1, ..g }, c0, w, b);
                    }
                    c0 += LANES;
                }
                r += 2;
            } else {
                cl_row(&g, &mut out[r * rl..(r + 1) * rl]);
                r += 1;
            }
        }
    }
}

/// A full channel panel of two whole output rows `g.oh` (into `a`) and `g.oh + 1` (into `b`) of
/// a 3 x 3 kernel, both rows' neighbours inside the image and `g.w >= PAIR_GROUP + 2`: the
/// image's first and last pixel of each row through [`cl3_edge`], the inner pixels in groups
/// of [`PAIR_GROUP`] per row (the last group overlapping the one before where the count is not a
/// multiple: those pixels are computed again, to the same bits), each of the four input rows'
/// `PAIR_GROUP + 2` columns loaded once for both output rows. Per output the taps ascend (the
/// input rows ascend, and within a row the columns), as in [`cl3_inner_row`].
#[inline(always)]
fn cl3_pair_panel(g: &ClRow<'_>, c0: usize, a: &mut [f32], b: &mut [f32]) {
    const G: usize = PAIR_GROUP;
    let (c, w) = (g.c, g.w);
    let g1 = ClRow { oh: g.oh + 1, ..*g };
    let (first, last) = (1, w - 1);
    let (tv, bv) = taps3(g, c0);
    for t in [0, w - 1] {
        cl3_edge::<0, 3>(g, c0, t, &tv, bv, &mut a[t * c..]);
        cl3_edge::<0, 3>(&g1, c0, t, &tv, bv, &mut b[t * c..]);
    }
    let rs = w * c;
    // Tap (0, 0) of pixel `first` in row `oh - 1`, and everything up to the last load of the
    // last group (pixel `last - 1`'s right neighbour in row `oh + 2`).
    let lo = ((g.oh - 1) * w + first - 1) * c + c0;
    let span = &g.img[lo..lo + (last - first + 1) * c + 3 * rs + LANES];
    let p = span.as_ptr();
    let mut t = first;
    loop {
        let off = (t - first) * c;
        let mut acc0 = [splat(0.0); G];
        let mut acc1 = [splat(0.0); G];
        macro_rules! row {
            ($i:literal) => {
                row!(@cols $i; 0 1 2 3 4 5 6 7)
            };
            (@cols $i:literal; $($m:literal)*) => {$(
                // SAFETY: `off + i * rs + m * c + LANES <= (last - G - first) * c + 3 * rs
                // + (G + 1) * c + LANES = span.len()`, as `t + G <= last`, `i <= 3` and
                // `m <= G + 1`.
                let v = unsafe { load_at(p.add(off + $i * rs + $m * c)) };
                col2::<$i, $m>(&mut acc0, &mut acc1, &tv, v);
            )*};
        }
        row!(0);
        row!(1);
        row!(2);
        row!(3);
        group_out(
            acc0,
            bv,
            g.silu,
            &mut a[t * c + c0..(t + G - 1) * c + c0 + LANES],
            c,
        );
        group_out(
            acc1,
            bv,
            g.silu,
            &mut b[t * c + c0..(t + G - 1) * c + c0 + LANES],
            c,
        );
        if t + G == last {
            break;
        }
        // The next group, or the last one ending at `last` (overlapping).
        t = (t + G).min(last - G);
    }
}

/// Pixels per row of a group of [`cl3_pair_panel`] (its `row!` macro lists the `PAIR_GROUP + 2`
/// columns they read): two rows of accumulators and the nine taps stay in registers.
const PAIR_GROUP: usize = 6;

/// A pixel group's `G` outputs `acc` (`+ bias`, then SiLU when asked) stored `c` apart from the
/// start of `d` (`(G - 1) * c + LANES` long): the end of every group of [`cl3_inner_row`] and
/// [`cl3_pair_panel`].
#[inline(always)]
fn group_out<const G: usize>(
    mut acc: [V; G],
    bias: Option<V>,
    silu: bool,
    d: &mut [f32],
    c: usize,
) {
    if let Some(b) = bias {
        for x in acc.iter_mut() {
            *x += b;
        }
    }
    if silu {
        // SAFETY: this code runs only inside the level's kernels, which the dispatcher calls
        // only where the CPU has the level's features (`platform::x86_64` module docs).
        #[allow(unused_unsafe)]
        unsafe {
            silu_group(&mut acc)
        };
    }
    debug_assert_eq!(d.len(), (G - 1) * c + LANES);
    let dp = d.as_mut_ptr();
    for (q, x) in acc.iter().enumerate() {
        // SAFETY: `q * c + LANES <= (G - 1) * c + LANES = d.len()` (the callers' slices).
        unsafe { super::store_at(dp.add(q * c), *x) };
    }
}

level_fn! {
    /// SiLU over a pixel group's outputs, breadth-first (`Vs`): `G` independent chains of about
    /// 25 operations, issued step by step, instead of one whole chain after the other (a chain
    /// is longer than Zen 3's FP scheduler holds, so its pipes waited on latency). Not inlined:
    /// one instance per group size and level, not one per kernel variant (compile time).
    #[inline(never)]
    fn silu_group<const G: usize>(acc: &mut [V; G]) {
        *acc = super::math::silu(super::math::Vs(*acc)).0;
    }
}

/// Input row `I` (of the four a row pair reads), column `M` of a pixel group in
/// [`cl3_pair_panel`]: pixel `q` reads it with tap column `j = M - q` (where `0 <= j < 3`),
/// kernel row `I` for the first output row and `I - 1` for the second.
#[inline(always)]
fn col2<const I: usize, const M: usize>(
    acc0: &mut [V; PAIR_GROUP],
    acc1: &mut [V; PAIR_GROUP],
    taps: &[V; 9],
    v: V,
) {
    for q in 0..PAIR_GROUP {
        if M >= q && M - q < 3 {
            let j = M - q;
            if I < 3 {
                acc0[q] = fma(taps[I * 3 + j], v, acc0[q]);
            }
            if I >= 1 {
                acc1[q] = fma(taps[(I - 1) * 3 + j], v, acc1[q]);
            }
        }
    }
}

/// The `n` output pixels of [`depthwise_cl_row`] for the channel panel from `c0` (`FULL`:
/// `LANES` channels, else the `c - c0` left).
#[inline(always)]
fn cl_panel<const FULL: bool>(g: &ClRow<'_>, c0: usize, n: usize, out: &mut [f32]) {
    if FULL && g.k == 3 && g.w >= 3 {
        // The kernel rows whose input rows lie inside the image.
        match (g.oh >= 1, g.oh + 1 < g.h) {
            (true, true) => cl3_inner_row::<0, 3>(g, c0, n, out),
            (false, true) => cl3_inner_row::<1, 3>(g, c0, n, out),
            (true, false) => cl3_inner_row::<0, 2>(g, c0, n, out),
            (false, false) => cl3_inner_row::<1, 2>(g, c0, n, out),
        }
        return;
    }
    let mut t = 0;
    while t + PIXELS <= n {
        cl_pixels::<PIXELS, FULL>(g, c0, t, out);
        t += PIXELS;
    }
    match n - t {
        0 => {}
        1 => cl_pixels::<1, FULL>(g, c0, t, out),
        2 => cl_pixels::<2, FULL>(g, c0, t, out),
        3 => cl_pixels::<3, FULL>(g, c0, t, out),
        4 => cl_pixels::<4, FULL>(g, c0, t, out),
        5 => cl_pixels::<5, FULL>(g, c0, t, out),
        6 => cl_pixels::<6, FULL>(g, c0, t, out),
        _ => cl_pixels::<7, FULL>(g, c0, t, out),
    }
}

/// [`cl_panel`] for a full panel of a 3 x 3 kernel on an image at least 3 wide, whose kernel
/// rows `LO..HI` read input rows inside the image (`0..3` for a row with both neighbour rows;
/// the first or last row of the image drops one): the inner pixels in groups of
/// [`CL3_GROUP`] and one at a time, the image's first and last pixel through [`cl3_edge`],
/// all with the taps in registers. Same per-element expression (the taps inside the image
/// ascending, then bias).
#[inline(always)]
fn cl3_inner_row<const LO: usize, const HI: usize>(
    g: &ClRow<'_>,
    c0: usize,
    n: usize,
    out: &mut [f32],
) {
    let c = g.c;
    let (tv, bv) = taps3(g, c0);
    // Local pixels `first..last` have both horizontal neighbours inside the image.
    let first = usize::from(g.w0 == 0).min(n);
    let last = ((g.w0 + n).min(g.w - 1).saturating_sub(g.w0)).max(first);
    for t in (0..first).chain(last..n) {
        cl3_edge::<LO, HI>(g, c0, g.w0 + t, &tv, bv, &mut out[t * c..]);
    }
    if last == first {
        return;
    }
    let rs = g.w * c;
    // Tap (LO, 0) of pixel `first`, and everything up to the last load of pixel `last - 1`.
    let lo = ((g.oh + LO - 1) * g.w + g.w0 + first - 1) * c + c0;
    let span = &g.img[lo..lo + (last - 1 - first) * c + (HI - LO - 1) * rs + 2 * c + LANES];
    let p = span.as_ptr();
    // Groups of `G` pixels: per kernel row, each of the `G + 2` input columns is loaded once
    // and serves the (tap, pixel) pairs that read it, in each pixel's tap order (`j`
    // ascending within the row, rows ascending): the same FMA chain per output as below, with
    // `G` chains in flight and about half the loads.
    const G: usize = CL3_GROUP;
    let mut t = first;
    // Groups of `G`, the last one ending at `last` (overlapping the one before where the count
    // is not a multiple: those pixels are computed again, to the same bits), instead of a tail
    // of single pixels whose chains (nine FMAs, then the SiLU) run one after the other.
    let grouped = last - first >= G;
    while grouped && t < last {
        let t0 = t.min(last - G);
        let off = (t0 - first) * c;
        let mut acc = [splat(0.0); G];
        // Written out (constant rows, columns and pixels) so that the accumulators and taps
        // stay in registers.
        macro_rules! row {
            ($i:literal) => {
                if LO <= $i && $i < HI {
                    row!(@cols $i; 0 1 2 3 4 5 6 7 8 9);
                }
            };
            (@cols $i:literal; $($m:literal)*) => {$(
                // SAFETY: `off + (i - LO) * rs + m * c + LANES <= (last - 1 - first) * c +
                // (HI - LO - 1) * rs + 2 * c + LANES = span.len()`, as `off + (G - 1) * c <=
                // (last - 1 - first) * c` (`t0 + G <= last`), `LO <= i < HI` and `m <= G + 1`.
                // (`wrapping_sub`: the rows outside `LO..HI` are compiled but never run.)
                let v = unsafe { load_at(p.add(off + ($i as usize).wrapping_sub(LO) * rs + $m * c)) };
                col::<$m>(&mut acc, [tv[$i * 3], tv[$i * 3 + 1], tv[$i * 3 + 2]], v);
            )*};
        }
        row!(0);
        row!(1);
        row!(2);
        group_out(
            acc,
            bv,
            g.silu,
            &mut out[t0 * c + c0..(t0 + G - 1) * c + c0 + LANES],
            c,
        );
        t = t0 + G;
    }
    for t in t..last {
        let off = (t - first) * c;
        let mut acc = splat(0.0);
        for i in LO..HI {
            for j in 0..3 {
                // SAFETY: `off + (i - LO) * rs + j * c + LANES <= (last - 1 - first) * c +
                // (HI - LO - 1) * rs + 2 * c + LANES = span.len()` (`t < last`, `LO <= i <
                // HI`, `j <= 2`).
                acc = fma(
                    tv[i * 3 + j],
                    unsafe { load_at(p.add(off + (i - LO) * rs + j * c)) },
                    acc,
                );
            }
        }
        store(&mut out[t * c + c0..], g.finish(acc, bv));
    }
}

/// The nine taps of a 3 x 3 kernel and the bias (if any) of the full channel panel from `c0`,
/// as vectors: what every register-blocked 3 x 3 kernel keeps in registers.
#[inline(always)]
fn taps3(g: &ClRow<'_>, c0: usize) -> ([V; 9], Option<V>) {
    let mut tv = [splat(0.0); 9];
    for (t, v) in tv.iter_mut().enumerate() {
        *v = load(&g.taps[t * g.c + c0..]);
    }
    (tv, g.bias.map(|b| load(&b[c0..])))
}

/// The image's first or last pixel `ow` (`0` or `w - 1`, `w >= 3`) of output row `g.oh`, the
/// full channel panel from `c0`, stored at `out[c0..]`: kernel rows `LO..HI` (those inside
/// the image), and of each the two columns inside it, as FMAs onto 0 in tap order, then
/// `+ bias` and SiLU ([`ClRow::finish`]): the expression of [`cl_pixels`] with the taps `tv`
/// already in registers.
#[inline(always)]
fn cl3_edge<const LO: usize, const HI: usize>(
    g: &ClRow<'_>,
    c0: usize,
    ow: usize,
    tv: &[V; 9],
    bv: Option<V>,
    out: &mut [f32],
) {
    let c = g.c;
    // The first pixel reads columns 0 and 1 with taps 1 and 2; the last reads columns
    // `w - 2` and `w - 1` with taps 0 and 1.
    let (col, j0) = if ow == 0 { (0, 1) } else { (g.w - 2, 0) };
    let mut acc = splat(0.0);
    for i in LO..HI {
        let at = ((g.oh + i - 1) * g.w + col) * c + c0;
        let row = &g.img[at..at + c + LANES];
        acc = fma(tv[i * 3 + j0], load(row), acc);
        acc = fma(tv[i * 3 + j0 + 1], load(&row[c..]), acc);
    }
    store(&mut out[c0..], g.finish(acc, bv));
}

/// Pixels per group of [`cl3_inner_row`]'s inner loop (its `row!` macro lists the `CL3_GROUP + 2`
/// columns they read).
const CL3_GROUP: usize = 8;

/// Column `M` of a kernel row in [`cl3_inner_row`]'s pixel group: pixel `q` reads it with tap
/// `j = M - q` (where `0 <= j < 3`).
#[inline(always)]
fn col<const M: usize>(acc: &mut [V; CL3_GROUP], taps: [V; 3], v: V) {
    for (q, a) in acc.iter_mut().enumerate() {
        if M >= q && M - q < 3 {
            *a = fma(taps[M - q], v, *a);
        }
    }
}

/// Output pixels [`depthwise_cl_row`] computes together.
const PIXELS: usize = 8;

/// The inputs and the output row of [`depthwise_cl_row`].
struct ClRow<'a> {
    /// `(k*k, c)`.
    taps: &'a [f32],
    /// `(c,)`.
    bias: Option<&'a [f32]>,
    /// `(h, w, c)`.
    img: &'a [f32],
    k: usize,
    h: usize,
    w: usize,
    c: usize,
    oh: usize,
    w0: usize,
    /// SiLU on each output vector before it is stored.
    silu: bool,
}

impl ClRow<'_> {
    /// An output vector from its accumulated taps: `+ bias`, then SiLU when asked (the
    /// vector function of `crate::math::map`, so the bits are those of a separate pass).
    #[inline(always)]
    fn finish(&self, acc: V, bias: Option<V>) -> V {
        let r = match bias {
            Some(b) => acc + b,
            None => acc,
        };
        if self.silu {
            super::math::silu(r)
        } else {
            r
        }
    }
}

/// The lanes `c0 ..` of `s` from `at` (`LANES` of them, or the `c - c0` left, the rest 0).
#[inline(always)]
fn load_panel<const FULL: bool>(s: &[f32], at: usize, nl: usize) -> V {
    if FULL {
        load(&s[at..])
    } else {
        let mut a = [0.0f32; LANES];
        a[..nl].copy_from_slice(&s[at..at + nl]);
        super::from_arr(a)
    }
}

/// Pixels `t .. t + NP` of [`depthwise_cl_row`]'s output, channels `c0 ..` (one panel).
#[inline(always)]
// Indexed loops over the accumulators (the iterator forms kept them on the stack).
#[allow(clippy::needless_range_loop)]
fn cl_pixels<const NP: usize, const FULL: bool>(
    g: &ClRow<'_>,
    c0: usize,
    t: usize,
    out: &mut [f32],
) {
    let (k, c, img) = (g.k, g.c, g.img);
    let nl = (c - c0).min(LANES);
    let pad = k / 2;
    let mut acc = [splat(0.0); NP];
    // First output pixel's column in the image, as `ow + pad` (never negative).
    let ow0 = g.w0 + t;
    for i in 0..k {
        // Input row `oh + i - pad`, skipped outside the image.
        let Some(ih) = (g.oh + i).checked_sub(pad).filter(|&r| r < g.h) else {
            continue;
        };
        let row = ih * g.w;
        for j in 0..k {
            let tap = load_panel::<FULL>(g.taps, (i * k + j) * c + c0, nl);
            // Pixel q reads column `ow0 + q + j - pad`.
            let first = ow0 + j;
            if first >= pad && first + NP - pad <= g.w {
                let base = (row + first - pad) * c + c0;
                if FULL {
                    // One bounds check for the group's loads (`NP` pixels `c` apart).
                    let span = &img[base..base + (NP - 1) * c + LANES];
                    let p = span.as_ptr();
                    for q in 0..NP {
                        // SAFETY: `q * c + LANES <= (NP - 1) * c + LANES = span.len()`, so
                        // the `LANES` floats from `p + q * c` lie inside `span`.
                        acc[q] = fma(tap, unsafe { load_at(p.add(q * c)) }, acc[q]);
                    }
                } else {
                    for q in 0..NP {
                        acc[q] = fma(tap, load_panel::<FULL>(img, base + q * c, nl), acc[q]);
                    }
                }
            } else {
                for q in 0..NP {
                    if first + q >= pad && first + q - pad < g.w {
                        let at = (row + first + q - pad) * c + c0;
                        acc[q] = fma(tap, load_panel::<FULL>(img, at, nl), acc[q]);
                    }
                }
            }
        }
    }
    let bias = g.bias.map(|b| load_panel::<FULL>(b, c0, nl));
    for (q, a) in acc.iter().enumerate() {
        let r = g.finish(*a, bias);
        let o = (t + q) * c + c0;
        if FULL {
            store(&mut out[o..], r);
        } else {
            out[o..o + nl].copy_from_slice(&to_arr(r)[..nl]);
        }
    }
}

/// The sum of a vector's lanes, halves added pairwise (a fixed order per level).
#[inline(always)]
fn lane_sum(v: V) -> f32 {
    let mut a = to_arr(v);
    let mut n = LANES;
    while n > 1 {
        n /= 2;
        for i in 0..n {
            a[i] += a[i + n];
        }
    }
    a[0]
}

/// Lanes `0..s.len()` of a vector from `s` (shorter than a vector), the rest `fill`.
#[inline(always)]
fn load_short(s: &[f32], fill: f32) -> V {
    let mut a = [fill; LANES];
    a[..s.len()].copy_from_slice(s);
    super::from_arr(a)
}

level_fn! {
    /// LayerNorm of each `c`-value row of `y` into `out` (arguments checked by
    /// `crate::norm::layer_norm_rows`): lane sums for the mean and the variance, then
    /// `(x - mean) * rstd` and the affine.
    pub(crate) fn layer_norm_rows(
        c: usize,
        eps: f32,
        affine: Option<(&[f32], &[f32])>,
        y: &[f32],
        out: &mut [f32],
    ) {
        let full = c / LANES * LANES;
        let inv_c = 1.0 / c as f32;
        for (row, o) in y.chunks_exact(c).zip(out.chunks_exact_mut(c)) {
            let (body, tail) = row.split_at(full);
            let mut acc = splat(0.0);
            for x in body.chunks_exact(LANES) {
                acc += load(x);
            }
            if !tail.is_empty() {
                acc += load_short(tail, 0.0);
            }
            let mean = lane_sum(acc) * inv_c;
            let mv = splat(mean);
            let mut acc = splat(0.0);
            for x in body.chunks_exact(LANES) {
                let d = load(x) - mv;
                acc = fma(d, d, acc);
            }
            if !tail.is_empty() {
                // Padding lanes hold the mean: their deviation is 0.
                let d = load_short(tail, mean) - mv;
                acc = fma(d, d, acc);
            }
            let var = lane_sum(acc) * inv_c;
            // On lanes, not `libm::sqrtf`: its `sqrtss` is a legacy SSE instruction, which
            // after AVX-512 code costs a state transition (the row took 4x longer).
            let rs = splat(1.0) / sqrt(splat(var + eps));
            let mut j = 0;
            while j < c {
                let n = LANES.min(c - j);
                let x = if n == LANES { load(&row[j..]) } else { load_short(&row[j..], 0.0) };
                let mut r = (x - mv) * rs;
                if let Some((w, b)) = affine {
                    let (wv, bv) = if n == LANES {
                        (load(&w[j..]), load(&b[j..]))
                    } else {
                        (load_short(&w[j..], 0.0), load_short(&b[j..], 0.0))
                    };
                    r = fma(r, wv, bv);
                }
                if n == LANES {
                    store(&mut o[j..], r);
                } else {
                    o[j..].copy_from_slice(&to_arr(r)[..n]);
                }
                j += LANES;
            }
        }
    }
}
