//! VMamba's cross-scan and cross-merge (`csm_triton.py`, docs/semantics.md section 4).
//!
//! Over an `H x W` grid with row-major position `p = h*W + w` and column-major position
//! `q = w*H + h` (`L = H*W`), [`cross_scan`] builds four sequences of length `L` per batch item
//! and channel:
//!
//! | k | [`ScanMode::Cross2d`] | [`ScanMode::Unidi`] | [`ScanMode::Bidi`] |
//! |---|---|---|---|
//! | 0 | `xs[0][p] = x[p]` | `xs[k][p] = x[p]` | `xs[0][p] = x[p]` |
//! | 1 | `xs[1][q] = x[p]` | (all four) | `xs[1][p] = x[p]` |
//! | 2 | `xs[2][L-1-p] = x[p]` | | `xs[2][L-1-p] = x[p]` |
//! | 3 | `xs[3][L-1-q] = x[p]` | | `xs[3][L-1-p] = x[p]` |
//!
//! and [`cross_merge`] is its adjoint: it maps every direction back to row-major order and sums
//! the four, in upstream's order of additions:
//!
//! - cross2d: `y[p] = (ys0[p] + ys2[L-1-p]) + (ys1[q] + ys3[L-1-q])`
//!   (upstream: `a = ys[:,0:2] + flip(ys[:,2:4])`, `y = a0 + colmajor_to_rowmajor(a1)`);
//! - unidi: `y[p] = ((ys0[p] + ys1[p]) + ys2[p]) + ys3[p]` (`ys.sum(1)`);
//! - bidi: `y[p] = (ys0[p] + ys2[L-1-p]) + (ys1[p] + ys3[L-1-p])`
//!   (upstream: `a = ys[:,0:2] + flip(ys[:,2:4])`, `y = a.sum(1)`).
//!
//! Layouts ([`CrossOpts`]): `in_channel_first` is the layout of the 2D side (scan input `x`,
//! merge output `y`): `(B, C, H, W)` or `(B, H, W, C)`; `out_channel_first` the layout of the
//! sequence side (scan output `xs`, merge input `ys`): `(B, 4, C, L)` or `(B, L, 4, C)`. With
//! `one_by_one` the 2D side has four slices, `(B, 4, C, H, W)` or `(B, H, W, 4, C)`: direction
//! `k` transforms only slice `k`, and the merge maps each direction back without summing.
//!
//! The scan is a pure permutation (bitwise exact); the merge adds in the fixed order above. Work
//! is split over disjoint parts of the output and every element is computed by the same
//! expression, so results are bitwise identical for every [`Parallelism`].

use ss2d_core::{Error, Walk};

use crate::Parallelism;

/// Which four sequences the cross-scan builds (VMamba's `scans` argument): the scan-mode
/// enum of `ss2d-core`, its one definition.
pub use ss2d_core::fused::CrossMode as ScanMode;

/// Sizes of a cross-scan / cross-merge: `x` is `(batch, channels, h, w)` (or channel-last).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct CrossDims {
    /// Batch size.
    pub batch: usize,
    /// Channels `C` (for SS2D: `d_inner`).
    pub channels: usize,
    /// Grid height `H`.
    pub h: usize,
    /// Grid width `W`.
    pub w: usize,
}

/// Mode and layouts of a cross-scan / cross-merge (VMamba's `cross_scan_fn` flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CrossOpts {
    /// Which four sequences ([`ScanMode`]).
    pub mode: ScanMode,
    /// Layout of the 2D side (scan input, merge output): `(B, C, H, W)` when true,
    /// `(B, H, W, C)` when false.
    pub in_channel_first: bool,
    /// Layout of the sequence side (scan output, merge input): `(B, 4, C, L)` when true,
    /// `(B, L, 4, C)` when false.
    pub out_channel_first: bool,
    /// The 2D side has four slices (`(B, 4, C, H, W)` / `(B, H, W, 4, C)`), one per direction;
    /// the merge does not sum them.
    pub one_by_one: bool,
}

impl Default for CrossOpts {
    /// Cross2d, channel-first on both sides, not one-by-one (what SS2D v2 uses).
    fn default() -> Self {
        CrossOpts {
            mode: ScanMode::Cross2d,
            in_channel_first: true,
            out_channel_first: true,
            one_by_one: false,
        }
    }
}

/// Validated sizes.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    batch: usize,
    c: usize,
    h: usize,
    w: usize,
    l: usize,
    /// Elements of the 2D side (`B*C*L`, or `B*4*C*L` one-by-one).
    plane: usize,
    /// Elements of the sequence side (`B*4*C*L`).
    seq: usize,
}

fn mul(what: &'static str, a: usize, b: usize) -> Result<usize, Error> {
    a.checked_mul(b).ok_or(Error::Overflow { what })
}

fn check_len(tensor: &'static str, expected: usize, actual: usize) -> Result<(), Error> {
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

impl CrossDims {
    /// Sequence length `L = h * w`.
    pub fn seqlen(&self) -> Result<usize, Error> {
        mul("h*w", self.h, self.w)
    }

    fn sizes(&self, one_by_one: bool) -> Result<Sizes, Error> {
        let l = self.seqlen()?;
        let cl = mul("channels*h*w", self.channels, l)?;
        let bcl = mul("batch*channels*h*w", self.batch, cl)?;
        let seq = mul("batch*4*channels*h*w", bcl, 4)?;
        if isize::try_from(seq).is_err() {
            return Err(Error::Overflow {
                what: "tensor size",
            });
        }
        Ok(Sizes {
            batch: self.batch,
            c: self.channels,
            h: self.h,
            w: self.w,
            l,
            plane: if one_by_one { seq } else { bcl },
            seq,
        })
    }
}

/// Elements of the cross-scan input `x` (the 2D side): `B*C*H*W`, or `B*4*C*H*W` one-by-one.
pub fn cross_scan_input_len(dims: CrossDims, opts: CrossOpts) -> Result<usize, Error> {
    Ok(dims.sizes(opts.one_by_one)?.plane)
}

/// Elements of the sequence side (`xs` of the scan, `ys` of the merge): `B*4*C*H*W`.
pub fn cross_scan_output_len(dims: CrossDims, opts: CrossOpts) -> Result<usize, Error> {
    Ok(dims.sizes(opts.one_by_one)?.seq)
}

/// Elements of the cross-merge output `y`: `B*C*H*W`, or `B*4*C*H*W` one-by-one.
pub fn cross_merge_output_len(dims: CrossDims, opts: CrossOpts) -> Result<usize, Error> {
    Ok(dims.sizes(opts.one_by_one)?.plane)
}

/// Element offsets: `b*b + k*k + c*c + pos*p`.
#[derive(Clone, Copy, Debug)]
struct Strides {
    b: usize,
    k: usize,
    c: usize,
    p: usize,
}

/// Strides of a four-slice tensor: `(B, 4, C, L)` channel-first or `(B, L, 4, C)`.
fn strides4(channel_first: bool, c: usize, l: usize) -> Strides {
    if channel_first {
        Strides {
            b: 4 * c * l,
            k: c * l,
            c: l,
            p: 1,
        }
    } else {
        Strides {
            b: 4 * c * l,
            k: c,
            c: 1,
            p: 4 * c,
        }
    }
}

/// Strides of a plane: `(B, C, L)` channel-first or `(B, L, C)`; `k` is 0 (no slices).
fn strides1(channel_first: bool, c: usize, l: usize) -> Strides {
    if channel_first {
        Strides {
            b: c * l,
            k: 0,
            c: l,
            p: 1,
        }
    } else {
        Strides {
            b: c * l,
            k: 0,
            c: 1,
            p: c,
        }
    }
}

/// A two-level position map with signed strides: step `t = i*inner.0 + j` maps to
/// `start + i*outer.1 + j*inner.1`. Built only for validated sizes (no overflow).
#[derive(Clone, Copy, Debug)]
struct Map {
    start: isize,
    outer: (usize, isize),
    inner: (usize, isize),
}

impl Map {
    fn of(w: Walk) -> Map {
        Map {
            start: w.start as isize,
            outer: w.outer,
            inner: w.inner,
        }
    }

    /// Position at step `t`.
    #[inline]
    fn at(&self, t: usize) -> isize {
        let (i, j) = (t / self.inner.0, t % self.inner.0);
        self.start + i as isize * self.outer.1 + j as isize * self.inner.1
    }
}

/// Forward route of direction `k`: scan step `s` -> pixel `p` (`xs[k][s] = x[p]`).
fn route(mode: ScanMode, s: &Sizes, k: usize) -> Map {
    // Sizes are validated (every product fits isize), so the walk exists.
    Map::of(mode.walk(s.h, s.w, k).unwrap_or(Walk::forward(0)))
}

/// Inverse route of direction `k`: pixel `p` (row-major) -> scan step `s` holding it. All four
/// are `(H, W)`-shaped, so a merge walks them in lockstep.
fn inverse(mode: ScanMode, s: &Sizes, k: usize) -> Map {
    let (h, w) = (s.h, s.w as isize);
    let hh = s.h as isize;
    let last = s.l as isize - 1;
    let kk = match mode {
        ScanMode::Cross2d => k,
        ScanMode::Unidi => 0,
        ScanMode::Bidi => 2 * (k / 2),
    };
    match kk {
        // p -> p
        0 => Map {
            start: 0,
            outer: (h, w),
            inner: (s.w, 1),
        },
        // p = h*W + w -> q = w*H + h
        1 => Map {
            start: 0,
            outer: (h, 1),
            inner: (s.w, hh),
        },
        // p -> L-1-p
        2 => Map {
            start: last,
            outer: (h, -w),
            inner: (s.w, -1),
        },
        // p -> L-1-q
        _ => Map {
            start: last,
            outer: (h, -1),
            inner: (s.w, -hh),
        },
    }
}

/// Target elements per chunk of work.
const CHUNK_ELEMS: usize = 16 * 1024;
/// At least this many chunks (when there are that many rows), so threads balance.
const MIN_CHUNKS: usize = 32;

/// Rows of `row_len` elements per chunk for `rows` rows.
pub(crate) fn rows_per_chunk(rows: usize, row_len: usize) -> usize {
    (CHUNK_ELEMS / row_len.max(1))
        .min(rows.div_ceil(MIN_CHUNKS))
        .max(1)
}

/// Runs `f(first_row, chunk)` over chunks of `rows_per_chunk` rows of `row_len` elements of
/// `out` (the last chunk may be shorter), on `par`'s threads. `out.len()` must be a multiple of
/// `row_len`, and `row_len` non-zero.
pub(crate) fn for_each_rows<F>(
    par: Parallelism<'_>,
    out: &mut [f32],
    row_len: usize,
    rows_per_chunk: usize,
    f: F,
) where
    F: Fn(usize, &mut [f32]) + Sync + Send,
{
    par.for_each_chunk(out, row_len * rows_per_chunk, |i, c| {
        f(i * rows_per_chunk, c)
    });
}

#[inline]
fn at(t: &[f32], i: isize) -> f32 {
    t[i as usize]
}

/// Channels handled together when the input is channel-last (one cache line of `f32`).
const CHANNEL_GROUP: usize = 16;

/// Splits `nrows` rows starting at row `r0` (row `r` = `(outer, ch)` with
/// `outer = r / c`, `ch = r % c`) into runs of up to `group` consecutive channels of one
/// `outer` index: calls `f(first row offset in the chunk, outer, first channel, run length)`.
fn channel_runs(
    r0: usize,
    nrows: usize,
    c: usize,
    group: usize,
    mut f: impl FnMut(usize, usize, usize, usize),
) {
    let mut i = 0;
    while i < nrows {
        let r = r0 + i;
        let (outer, ch) = (r / c, r % c);
        let g = group.min(c - ch).min(nrows - i);
        f(i, outer, ch, g);
        i += g;
    }
}

/// The scan on validated sizes: `out[b,k,c,s] = x[b,(k),c,route_k(s)]`.
///
/// (Grouping channels or reordering loops for mixed layouts measured slower here than these
/// plain loops, unlike in the merge.)
fn scan_impl(s: &Sizes, opts: &CrossOpts, x: &[f32], out: &mut [f32], par: Parallelism<'_>) {
    let si = if opts.one_by_one {
        strides4(opts.in_channel_first, s.c, s.l)
    } else {
        strides1(opts.in_channel_first, s.c, s.l)
    };
    let routes: [Map; 4] = core::array::from_fn(|k| route(opts.mode, s, k));
    let (c, l) = (s.c, s.l);
    let sp = si.p as isize;
    if opts.out_channel_first {
        // Rows (b, k, c) of L contiguous outputs.
        let rows = s.batch * 4 * c;
        let rpc = rows_per_chunk(rows, l);
        for_each_rows(par, out, l, rpc, |r0, chunk| {
            for (i, row) in chunk.chunks_mut(l).enumerate() {
                let r = r0 + i;
                let (b, k, ch) = (r / (4 * c), (r / c) % 4, r % c);
                let base = (b * si.b + k * si.k + ch * si.c) as isize;
                let m = &routes[k];
                let step = m.inner.1 * sp;
                let n = m.inner.0;
                for (o, seg) in row.chunks_mut(n).enumerate() {
                    let a = base + (m.start + o as isize * m.outer.1) * sp;
                    if step == 1 {
                        let a = a as usize;
                        seg.copy_from_slice(&x[a..a + n]);
                    } else if step == -1 {
                        let a = a as usize;
                        for (y, v) in seg.iter_mut().zip(x[a + 1 - n..=a].iter().rev()) {
                            *y = *v;
                        }
                    } else {
                        for (j, y) in seg.iter_mut().enumerate() {
                            *y = at(x, a + j as isize * step);
                        }
                    }
                }
            }
        });
    } else {
        // Pixels (b, s): blocks of 4*C contiguous outputs (k, c).
        let rows = s.batch * l;
        let rl = 4 * c;
        let rpc = rows_per_chunk(rows, rl);
        for_each_rows(par, out, rl, rpc, |r0, chunk| {
            for (i, px) in chunk.chunks_mut(rl).enumerate() {
                let r = r0 + i;
                let (b, t) = (r / l, r % l);
                for (k, blk) in px.chunks_mut(c).enumerate() {
                    let a = b * si.b + k * si.k + routes[k].at(t) as usize * si.p;
                    if si.c == 1 {
                        blk.copy_from_slice(&x[a..a + c]);
                    } else {
                        for (ch, y) in blk.iter_mut().enumerate() {
                            *y = x[a + ch * si.c];
                        }
                    }
                }
            }
        });
    }
}

/// The merge on validated sizes.
fn merge_impl(s: &Sizes, opts: &CrossOpts, ys: &[f32], out: &mut [f32], par: Parallelism<'_>) {
    let si = strides4(opts.out_channel_first, s.c, s.l);
    let inv: [Map; 4] = core::array::from_fn(|k| inverse(opts.mode, s, k));
    let (c, l, w) = (s.c, s.l, s.w);
    // Output slices: four one-by-one (no sum), else one.
    let j_count = if opts.one_by_one { 4 } else { 1 };
    let sp = si.p as isize;
    let unidi = opts.mode == ScanMode::Unidi;
    // Output (b, j, ch) at one pixel, from the offsets `idx[k] + off` of the four directions'
    // elements that hold that pixel.
    let value = move |idx: &[isize; 4], off: isize, j: usize| -> f32 {
        let v = |k: usize| at(ys, idx[k] + off);
        if j_count == 4 {
            v(j)
        } else if unidi {
            ((v(0) + v(1)) + v(2)) + v(3)
        } else {
            (v(0) + v(2)) + (v(1) + v(3))
        }
    };
    if opts.in_channel_first && opts.out_channel_first && j_count == 1 && !unidi {
        // SS2D's case (cross2d or bidi, channel-first both sides), upstream's way: per (b, c),
        // a1 = ys1 + flip(ys3) in scan order (contiguous), then
        // y = (ys0 + flip(ys2)) + a1 mapped back to row-major (a transpose for cross2d).
        // Same additions in the same order as the general path.
        let transposed = opts.mode == ScanMode::Cross2d;
        let h = s.h;
        let rows = s.batch * c;
        let rpc = rows_per_chunk(rows, l);
        for_each_rows(par, out, l, rpc, |r0, chunk| {
            let mut a1 = vec![0.0f32; l];
            for (i, row) in chunk.chunks_mut(l).enumerate() {
                let (b, ch) = ((r0 + i) / c, (r0 + i) % c);
                let plane = |k: usize| {
                    let o = b * si.b + k * si.k + ch * si.c;
                    &ys[o..o + l]
                };
                let (y0, y1, y2, y3) = (plane(0), plane(1), plane(2), plane(3));
                for (a, (&u, &v)) in a1.iter_mut().zip(y1.iter().zip(y3.iter().rev())) {
                    *a = u + v;
                }
                if transposed {
                    for (hh, seg) in row.chunks_mut(w).enumerate() {
                        let p0 = hh * w;
                        let fwd = y0[p0..p0 + w].iter();
                        let rev = y2[l - p0 - w..l - p0].iter().rev();
                        for (ww, (o, (&u, &v))) in seg.iter_mut().zip(fwd.zip(rev)).enumerate() {
                            *o = (u + v) + a1[ww * h + hh];
                        }
                    }
                } else {
                    let a0 = y0.iter().zip(y2.iter().rev());
                    for (o, ((&u, &v), &a)) in row.iter_mut().zip(a0.zip(&a1)) {
                        *o = (u + v) + a;
                    }
                }
            }
        });
        return;
    }
    if opts.in_channel_first {
        // Rows (b, j, c) of L contiguous outputs; the four inverse maps share the (H, W) shape.
        // Channel-last input: runs of channels per position.
        let group = if si.c == 1 { CHANNEL_GROUP } else { 1 };
        let rows = s.batch * j_count * c;
        let rpc = rows_per_chunk(rows, l).next_multiple_of(group);
        let steps: [isize; 4] = core::array::from_fn(|k| inv[k].inner.1 * sp);
        let sc = si.c as isize;
        for_each_rows(par, out, l, rpc, |r0, chunk| {
            channel_runs(r0, chunk.len() / l, c, group, |i, bj, ch, g| {
                let (b, j) = (bj / j_count, bj % j_count);
                let rows = &mut chunk[i * l..(i + g) * l];
                let first = |o: usize| -> [isize; 4] {
                    core::array::from_fn(|k| {
                        (b * si.b + k * si.k + ch * si.c) as isize
                            + (inv[k].start + o as isize * inv[k].outer.1) * sp
                    })
                };
                if g == 1 {
                    for (o, seg) in rows.chunks_mut(w).enumerate() {
                        let mut idx = first(o);
                        for y in seg.iter_mut() {
                            *y = value(&idx, 0, j);
                            for k in 0..4 {
                                idx[k] += steps[k];
                            }
                        }
                    }
                    return;
                }
                let mut t = 0;
                for o in 0..l / w {
                    let mut idx = first(o);
                    for _ in 0..w {
                        for ci in 0..g {
                            rows[ci * l + t] = value(&idx, ci as isize * sc, j);
                        }
                        for k in 0..4 {
                            idx[k] += steps[k];
                        }
                        t += 1;
                    }
                }
            });
        });
    } else {
        // Pixels (b, p): blocks of J*C contiguous outputs (j, c).
        let rows = s.batch * l;
        let rl = j_count * c;
        let rpc = rows_per_chunk(rows, rl);
        let sc = si.c as isize;
        for_each_rows(par, out, rl, rpc, |r0, chunk| {
            let np = chunk.len() / rl;
            // Offsets of ys[b, k, 0, inverse_k(p)] for every pixel of the chunk.
            let src: Vec<[isize; 4]> = (r0..r0 + np)
                .map(|r| {
                    let (b, t) = (r / l, r % l);
                    core::array::from_fn(|k| (b * si.b + k * si.k) as isize + inv[k].at(t) * sp)
                })
                .collect();
            if si.c == 1 {
                for (px, idx) in chunk.chunks_mut(rl).zip(&src) {
                    for (j, blk) in px.chunks_mut(c).enumerate() {
                        for (ch, y) in blk.iter_mut().enumerate() {
                            *y = value(idx, ch as isize, j);
                        }
                    }
                }
            } else {
                // Channel-first input: channel outer, pixels inner (reads along positions).
                for j in 0..j_count {
                    for ch in 0..c {
                        let off = ch as isize * sc;
                        for (i, idx) in src.iter().enumerate() {
                            chunk[i * rl + j * c + ch] = value(idx, off, j);
                        }
                    }
                }
            }
        });
    }
}

/// VMamba's `cross_scan_fn(x, in_channel_first, out_channel_first, one_by_one, scans)`.
///
/// `x`: `(B, C, H, W)` / `(B, H, W, C)` per `opts.in_channel_first` (one-by-one:
/// `(B, 4, C, H, W)` / `(B, H, W, 4, C)`); `out` (`xs`): `(B, 4, C, L)` / `(B, L, 4, C)` per
/// `opts.out_channel_first`. A pure permutation: bitwise exact for every [`Parallelism`].
///
/// Errors: [`Error::Overflow`] when a size product overflows, [`Error::Length`] naming `x` or
/// `xs` when a buffer has the wrong length. Nothing is written on error. Zero sizes are a valid
/// empty problem.
pub fn cross_scan(
    x: &[f32],
    dims: CrossDims,
    opts: CrossOpts,
    out: &mut [f32],
    par: Parallelism<'_>,
) -> Result<(), Error> {
    let s = dims.sizes(opts.one_by_one)?;
    check_len("x", s.plane, x.len())?;
    check_len("xs", s.seq, out.len())?;
    if s.seq == 0 {
        return Ok(());
    }
    scan_impl(&s, &opts, x, out, par);
    Ok(())
}

/// VMamba's `cross_merge_fn(ys, in_channel_first, out_channel_first, one_by_one, scans)`.
///
/// `ys`: `(B, 4, C, H, W)` / `(B, H, W, 4, C)` per `opts.out_channel_first` (direction `k`'s
/// sequence in its scan order, viewed as `H x W`); `out` (`y`): `(B, C, L)` / `(B, L, C)` per
/// `opts.in_channel_first`, the sum of the four directions mapped back to row-major order in
/// upstream's order of additions (module docs). One-by-one: `(B, 4, C, L)` / `(B, L, 4, C)`,
/// each direction mapped back, not summed.
///
/// Errors: [`Error::Overflow`], [`Error::Length`] naming `ys` or `y`. Nothing is written on
/// error. Zero sizes are a valid empty problem.
pub fn cross_merge(
    ys: &[f32],
    dims: CrossDims,
    opts: CrossOpts,
    out: &mut [f32],
    par: Parallelism<'_>,
) -> Result<(), Error> {
    let s = dims.sizes(opts.one_by_one)?;
    check_len("ys", s.seq, ys.len())?;
    check_len("y", s.plane, out.len())?;
    if s.seq == 0 {
        return Ok(());
    }
    merge_impl(&s, &opts, ys, out, par);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_routes_invert_forward_routes() {
        for mode in [ScanMode::Cross2d, ScanMode::Unidi, ScanMode::Bidi] {
            for (h, w) in [(1, 1), (1, 4), (3, 1), (2, 3), (5, 7), (4, 4)] {
                let s = CrossDims {
                    batch: 1,
                    channels: 1,
                    h,
                    w,
                }
                .sizes(false)
                .unwrap();
                for k in 0..4 {
                    let f = route(mode, &s, k);
                    let g = inverse(mode, &s, k);
                    for t in 0..h * w {
                        let p = f.at(t);
                        assert_eq!(g.at(p as usize), t as isize, "{mode:?} {h}x{w} k={k}");
                    }
                }
            }
        }
    }

    #[test]
    fn rejects_bad_lengths_and_overflow() {
        let dims = CrossDims {
            batch: 1,
            channels: 2,
            h: 2,
            w: 3,
        };
        let opts = CrossOpts::default();
        let x = vec![1.0; 12];
        let mut out = vec![7.0; 48];
        assert_eq!(
            cross_scan(&x[..11], dims, opts, &mut out, Parallelism::Sequential),
            Err(Error::Length {
                tensor: "x",
                expected: 12,
                actual: 11
            })
        );
        assert!(out.iter().all(|&v| v == 7.0));
        let big = CrossDims {
            batch: 1,
            channels: 1,
            h: usize::MAX,
            w: 2,
        };
        assert!(matches!(
            cross_merge(&x, big, opts, &mut out, Parallelism::Sequential),
            Err(Error::Overflow { .. })
        ));
    }
}
