//! The packers at one level: moving a panel's lanes between a tensor and lane-major scratch
//! (see `crate::pack` for the layout), and packing B/C rows for the kernel.

use super::vecs::{load, load_vs, store_vs, SinkLanes};
use super::{from_arr, load_at, prefetch, reverse, splat, store_at, to_arr, transpose, LANES, V};
use crate::pack::{Lanes, Run};
use crate::scan::{Sink, CHUNK};

/// Lowest position of the `b`-th full block of `LANES` steps of a non-empty run.
#[inline(always)]
fn block_lo(run: &Run, b: usize) -> usize {
    if run.rev {
        run.first + 1 - (b + 1) * LANES
    } else {
        run.first + b * LANES
    }
}

/// Prefetch distance of the run-based packers, in steps: one chunk ahead. A channel-first panel
/// streams one row per channel and tensor (`3 x LANES` or more streams at once), more than the
/// hardware prefetchers follow, so every block of `LANES` steps hints the lines that the block
/// `AHEAD` steps later will read.
const AHEAD: usize = CHUNK;

/// Hints the line that a block of `LANES` steps, `AHEAD` steps after the block at positions
/// `lo .. lo + LANES` of the row at `r`, needs beyond the lines of the block before it: the line
/// of its far end (the near end shares the previous block's line). Nothing is dereferenced.
#[inline(always)]
fn prefetch_ahead(r: *const f32, lo: usize, rev: bool) {
    prefetch(if rev {
        r.wrapping_add(lo).wrapping_sub(AHEAD)
    } else {
        r.wrapping_add(lo + AHEAD + LANES - 1)
    });
}

/// Direction of a block of `LANES` steps: +1 or -1 consecutive positions, or neither.
#[inline(always)]
fn run_dir(pos: &[usize]) -> i8 {
    let p0 = pos[0];
    if pos
        .iter()
        .enumerate()
        .all(|(k, &p)| p == p0.wrapping_add(k))
    {
        1
    } else if pos
        .iter()
        .enumerate()
        .all(|(k, &p)| p == p0.wrapping_sub(k))
    {
        -1
    } else {
        0
    }
}

/// Loads rows `j < nl` of `LANES` floats at `tp + o + j * rstride` (rows `j >= nl` are zero)
/// and transposes them: afterwards `m[k].lane(j)` is row `j`'s element `k`.
///
/// # Safety
/// `o + (nl - 1) * rstride + LANES` floats from `tp` are readable, and `nl <= LANES`.
#[inline(always)]
unsafe fn load_block(tp: *const f32, o: usize, rstride: usize, nl: usize) -> [V; LANES] {
    // Loops, not `core::array::from_fn`: a closure passed to a generic `core` function is
    // compiled without this level's target features, and its vector loads became calls.
    let mut m = [splat(0.0); LANES];
    for (j, r) in m.iter_mut().enumerate().take(nl.min(LANES)) {
        // SAFETY: row `j < nl`: inside the readable range (caller's contract).
        *r = unsafe { load_at(tp.add(o + j * rstride)) };
    }
    transpose(&mut m);
    m
}

/// Transposes `m` and writes (adds, when `ADD`) rows `j < nl` as `LANES` floats at
/// `o + j * rstride` of `out`.
///
/// # Safety
/// `o + (nl - 1) * rstride + LANES <= out.len()`, and `nl <= LANES`.
#[inline(always)]
unsafe fn store_block<const ADD: bool>(
    mut m: [V; LANES],
    out: &Sink<'_>,
    o: usize,
    rstride: usize,
    nl: usize,
) {
    transpose(&mut m);
    if nl == LANES {
        for (j, r) in m.iter().enumerate() {
            // SAFETY: row `j < nl`: in bounds by the caller's contract.
            unsafe { out.put_lanes_unchecked::<ADD>(o + j * rstride, *r) };
        }
    } else {
        for (j, r) in m.iter().enumerate().take(nl) {
            // SAFETY: as above.
            unsafe { out.put_lanes_unchecked::<ADD>(o + j * rstride, *r) };
        }
    }
}

/// The packers of a panel (`crate::pack::Lanes`) at this level (docs on the implementations).
pub(crate) trait LanesOps {
    fn gather_one(&self, t: &[f32], p: usize) -> V;
    fn block_fits(&self, lo: usize, len: usize) -> bool;
    fn gather(&self, t: &[f32], pos: &[usize], dst: &mut [V]);
    fn scatter_one<const ADD: bool>(&self, v: V, p: usize, out: &Sink<'_>);
    fn scatter<const ADD: bool>(&self, src: &[V], pos: &[usize], out: &Sink<'_>);
    fn run_fits(&self, run: &Run, len: usize) -> bool;
    fn gather_run(&self, t: &[f32], run: Run, dst: &mut [V]);
    fn scatter_run<const ADD: bool>(&self, src: &[V], run: Run, out: &Sink<'_>);
}

impl LanesOps for Lanes {
    #[inline(always)]
    fn gather_one(&self, t: &[f32], p: usize) -> V {
        let o = self.base + p * self.pstride;
        if self.lstride == 1 && self.nl == LANES {
            load(&t[o..])
        } else {
            let mut a = [0.0f32; LANES];
            for (j, x) in a.iter_mut().enumerate().take(self.nl) {
                *x = t[o + j * self.lstride];
            }
            from_arr(a)
        }
    }

    /// True when rows `j < nl` of `LANES` floats starting at position `lo` fit in `len`
    /// elements (the condition of [`load_block`] / [`store_block`] for the panel).
    #[inline(always)]
    fn block_fits(&self, lo: usize, len: usize) -> bool {
        self.nl >= 1
            && self.nl <= LANES
            && (self.nl - 1)
                .checked_mul(self.lstride)
                .and_then(|x| x.checked_add(self.base))
                .and_then(|x| x.checked_add(lo))
                .and_then(|x| x.checked_add(LANES))
                .is_some_and(|end| end <= len)
    }

    /// `dst[s]` = the panel's lanes at position `pos[s]`.
    #[inline(always)]
    fn gather(&self, t: &[f32], pos: &[usize], dst: &mut [V]) {
        let n = pos.len().min(dst.len());
        let mut s = 0;
        if self.pstride == 1 && self.lstride != 1 {
            while s + LANES <= n {
                let blk = &pos[s..s + LANES];
                let dir = run_dir(blk);
                let lo = if dir > 0 { blk[0] } else { blk[LANES - 1] };
                if dir != 0 && self.block_fits(lo, t.len()) {
                    // SAFETY: `block_fits` checked the rows' extent against `t`.
                    let m =
                        unsafe { load_block(t.as_ptr(), self.base + lo, self.lstride, self.nl) };
                    store_vs(&mut dst[s..], &m, dir < 0);
                } else {
                    for k in 0..LANES {
                        dst[s + k] = self.gather_one(t, blk[k]);
                    }
                }
                s += LANES;
            }
        }
        for k in s..n {
            dst[k] = self.gather_one(t, pos[k]);
        }
    }

    #[inline(always)]
    fn scatter_one<const ADD: bool>(&self, v: V, p: usize, out: &Sink<'_>) {
        let o = self.base + p * self.pstride;
        if self.lstride == 1 {
            out.put_lanes::<ADD>(o, v, self.nl);
        } else {
            let a = to_arr(v);
            for (j, &x) in a.iter().enumerate().take(self.nl) {
                out.put_slice::<ADD>(o + j * self.lstride, core::slice::from_ref(&x));
            }
        }
    }

    /// Writes `src[s]` to the panel's lanes at position `pos[s]` (adds onto them when `ADD`).
    #[inline(always)]
    fn scatter<const ADD: bool>(&self, src: &[V], pos: &[usize], out: &Sink<'_>) {
        let n = pos.len().min(src.len());
        let mut s = 0;
        if self.pstride == 1 && self.lstride != 1 {
            while s + LANES <= n {
                let blk = &pos[s..s + LANES];
                let dir = run_dir(blk);
                let lo = if dir > 0 { blk[0] } else { blk[LANES - 1] };
                if dir != 0 && self.block_fits(lo, out.len()) {
                    let m = load_vs(&src[s..], dir < 0);
                    // SAFETY: `block_fits` checked the rows' extent against `out`.
                    unsafe { store_block::<ADD>(m, out, self.base + lo, self.lstride, self.nl) };
                } else {
                    for k in 0..LANES {
                        self.scatter_one::<ADD>(src[s + k], blk[k], out);
                    }
                }
                s += LANES;
            }
        }
        for k in s..n {
            self.scatter_one::<ADD>(src[k], pos[k], out);
        }
    }

    /// True when every element the steps of `run` touch lies inside `0..len` (then the
    /// unchecked block paths may be used).
    #[inline(always)]
    fn run_fits(&self, run: &Run, len: usize) -> bool {
        let Some((_, hi)) = run.span() else {
            return false;
        };
        self.nl >= 1
            && self.nl <= LANES
            && hi
                .checked_mul(self.pstride)
                .and_then(|x| x.checked_add((self.nl - 1).checked_mul(self.lstride)?))
                .and_then(|x| x.checked_add(self.base))
                .is_some_and(|last| last < len)
    }

    /// `dst[s]` = the panel's lanes at step `s` of `run` (`min(run.len, dst.len())` steps): what
    /// [`Lanes::gather`] gives for the run's positions, without materializing them.
    #[inline(always)]
    fn gather_run(&self, t: &[f32], run: Run, dst: &mut [V]) {
        let run = Run {
            len: run.len.min(dst.len()),
            ..run
        };
        let n = run.len;
        let dst = &mut dst[..n];
        let fits = self.run_fits(&run, t.len());
        let tp = t.as_ptr();
        if fits && self.lstride == 1 && self.nl == LANES {
            for (s, d) in dst.iter_mut().enumerate() {
                let o = self.base + run.pos(s) * self.pstride;
                // SAFETY: `run_fits`: the highest index the run touches,
                // `base + hi * pstride + LANES - 1` (`lstride == 1`, `nl == LANES`), is inside
                // `t`, and every step's position is at most `hi`.
                *d = unsafe { load_at(tp.add(o)) };
                let a = if run.rev {
                    tp.wrapping_add(o).wrapping_sub(AHEAD * self.pstride)
                } else {
                    tp.wrapping_add(o + AHEAD * self.pstride)
                };
                prefetch(a);
                prefetch(a.wrapping_add(LANES - 1));
            }
        } else if fits && self.pstride == 1 && self.lstride != 1 {
            let nb = n / LANES;
            for (b, d) in dst.chunks_exact_mut(LANES).enumerate() {
                let lo = block_lo(&run, b);
                // SAFETY: `run_fits`: rows `j < nl` at positions `lo .. lo + LANES` (all in
                // the run's span) end at most at the run's highest index, inside `t`.
                let m = unsafe { load_block(tp, self.base + lo, self.lstride, self.nl) };
                store_vs(d, &m, run.rev);
                for j in 0..self.nl {
                    prefetch_ahead(tp.wrapping_add(self.base + j * self.lstride), lo, run.rev);
                }
            }
            let r = n - nb * LANES;
            if r > 0 {
                let s0 = nb * LANES;
                // Lowest position of the tail.
                let lo = if run.rev { run.pos(n - 1) } else { run.pos(s0) };
                let mut m = [splat(0.0); LANES];
                for (j, row) in m.iter_mut().enumerate().take(self.nl) {
                    let o = self.base + j * self.lstride + lo;
                    let mut a = [0.0f32; LANES];
                    a[..r].copy_from_slice(&t[o..o + r]);
                    *row = from_arr(a);
                }
                transpose(&mut m);
                for k in 0..r {
                    dst[s0 + k] = if run.rev { m[r - 1 - k] } else { m[k] };
                }
            }
        } else {
            for (s, d) in dst.iter_mut().enumerate() {
                *d = self.gather_one(t, run.pos(s));
            }
        }
    }

    /// Writes `src[s]` to the panel's lanes at step `s` of `run` (adds onto them when `ADD`):
    /// what [`Lanes::scatter`] does for the run's positions.
    #[inline(always)]
    fn scatter_run<const ADD: bool>(&self, src: &[V], run: Run, out: &Sink<'_>) {
        let run = Run {
            len: run.len.min(src.len()),
            ..run
        };
        let n = run.len;
        let src = &src[..n];
        let fits = self.run_fits(&run, out.len());
        if fits && self.lstride == 1 && self.nl == LANES {
            for (s, &v) in src.iter().enumerate() {
                let o = self.base + run.pos(s) * self.pstride;
                // SAFETY: `run_fits`: the highest index the run writes is inside `out`, and
                // every step's position is at most the run's highest.
                unsafe { out.put_lanes_unchecked::<ADD>(o, v) };
                let a = if run.rev {
                    out.as_ptr()
                        .wrapping_add(o)
                        .wrapping_sub(AHEAD * self.pstride)
                } else {
                    out.as_ptr().wrapping_add(o + AHEAD * self.pstride)
                };
                prefetch(a);
                prefetch(a.wrapping_add(LANES - 1));
            }
        } else if fits && self.pstride == 1 && self.lstride != 1 {
            let nb = n / LANES;
            for (b, sb) in src.chunks_exact(LANES).enumerate() {
                let lo = block_lo(&run, b);
                let m = load_vs(sb, run.rev);
                // SAFETY: `run_fits`: rows `j < nl` at positions `lo .. lo + LANES` (all in
                // the run's span) end at most at the run's highest index, inside `out`.
                unsafe { store_block::<ADD>(m, out, self.base + lo, self.lstride, self.nl) };
                for j in 0..self.nl {
                    let r = out.as_ptr().wrapping_add(self.base + j * self.lstride);
                    prefetch_ahead(r, lo, run.rev);
                }
            }
            let r = n - nb * LANES;
            if r > 0 {
                let s0 = nb * LANES;
                let lo = if run.rev { run.pos(n - 1) } else { run.pos(s0) };
                let mut m = [splat(0.0); LANES];
                for k in 0..r {
                    m[k] = if run.rev {
                        src[s0 + r - 1 - k]
                    } else {
                        src[s0 + k]
                    };
                }
                transpose(&mut m);
                for (j, row) in m.iter().enumerate().take(self.nl) {
                    out.put_slice::<ADD>(self.base + j * self.lstride + lo, &to_arr(*row)[..r]);
                }
            }
        } else {
            for (s, &v) in src.iter().enumerate() {
                self.scatter_one::<ADD>(v, run.pos(s), out);
            }
        }
    }
}

/// Packs `n` rows of a `(n, L)` block of B or C for the steps of `run` (at most `CHUNK`) into
/// the layout of [`crate::kernel::Rows`]: `dst[k * CHUNK + s] = t[row + k * rstride + pos(s)]`.
/// A copy of `n` row segments (reversed for a reversed run), by whole vectors.
#[inline(always)]
pub(crate) fn pack_rows_run(
    t: &[f32],
    row: usize,
    rstride: usize,
    n: usize,
    run: Run,
    dst: &mut [f32],
) {
    let len = run.len;
    let Some((lo, hi)) = run.span() else {
        return;
    };
    if n == 0 {
        return;
    }
    let fits = len <= CHUNK
        && n.checked_mul(CHUNK).is_some_and(|need| need <= dst.len())
        && (n - 1)
            .checked_mul(rstride)
            .and_then(|x| x.checked_add(row))
            .and_then(|x| x.checked_add(hi))
            .is_some_and(|last| last < t.len());
    if !fits {
        for k in 0..n {
            for s in 0..len {
                dst[k * CHUNK + s] = t[row + k * rstride + run.pos(s)];
            }
        }
        return;
    }
    let tp = t.as_ptr();
    let dp = dst.as_mut_ptr();
    let nv = len / LANES;
    for k in 0..n {
        let src = row + k * rstride;
        let d = k * CHUNK;
        for v in 0..nv {
            // Lowest position of the block of steps `v * LANES ..`.
            let blo = if run.rev {
                hi + 1 - (v + 1) * LANES
            } else {
                lo + v * LANES
            };
            // SAFETY: positions `blo .. blo + LANES` lie in the run's span, so the read ends at
            // most at `row + (n - 1) * rstride + hi < t.len()`; the write `d + v * LANES ..
            // + LANES` ends at most at `(k + 1) * CHUNK <= n * CHUNK <= dst.len()` (`fits`).
            unsafe {
                let x = load_at(tp.add(src + blo));
                store_at(dp.add(d + v * LANES), if run.rev { reverse(x) } else { x });
            }
            prefetch_ahead(tp.wrapping_add(src), blo, run.rev);
        }
        for s in nv * LANES..len {
            dst[d + s] = t[src + run.pos(s)];
        }
    }
}

/// [`pack_rows_run`] for arbitrary positions: `dst[k * CHUNK + s] = t[row + k * rstride +
/// pos[s]]`.
#[inline(always)]
pub(crate) fn pack_rows(
    t: &[f32],
    row: usize,
    rstride: usize,
    n: usize,
    pos: &[usize],
    dst: &mut [f32],
) {
    for k in 0..n {
        let r = &t[row + k * rstride..];
        let d = &mut dst[k * CHUNK..k * CHUNK + pos.len()];
        for (x, &p) in d.iter_mut().zip(pos) {
            *x = r[p];
        }
    }
}
