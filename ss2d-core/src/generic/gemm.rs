//! The register-blocked matrix product at one level (see `crate::gemm`).
//!
//! `C (m x n) = A (m x k) B (k x n)`, then `+ bias` and SiLU: a tile of `R <= MR` rows of `A`
//! (broadcasts) by `C <= NV` vectors of columns of `B` (unit column stride) is accumulated in
//! registers over `k`, in passes of at most [`KC`] (so that a strip of `B` stays in L1 while
//! every row tile of `A` goes over it; a `C` stored transposed takes its full strips in one
//! pass). Every output element is the same chain of FMAs, `k`
//! ascending from 0 (stored and reloaded between passes, which is exact), whatever the tile it
//! falls in: results do not depend on the sizes or on how a caller splits a product.

use super::{
    fma, from_arr, load_at, prefetch, splat, store_at, store_cols8, to_arr, transpose, LANES, V,
};
use crate::gemm::Raw;
use core::mem::MaybeUninit;

/// Rows of `A` per register tile.
const MR: usize = if LANES == 16 { 8 } else { 6 };
/// Vectors of `B` columns per register tile: `MR x NV` accumulators, `NV` loads and a
/// broadcast fit 32 registers at 16 lanes (AVX-512) and 16 at 8 lanes (AVX2).
const NV: usize = if LANES == 16 { 3 } else { 2 };
/// Rows of `A` ahead at which a tile hints `A`'s lines (four 8-row tiles), when `A`'s
/// columns lie a page or more apart (see [`matmul`]).
const PF_ROWS: usize = 32;
/// `k` per pass over a strip of `B` (`KC x NV x LANES` floats: 24 KiB at 16 lanes).
const KC: usize = 96;

/// Loads `len <= LANES` floats from `p` into the low lanes (the rest 0).
///
/// # Safety
/// `p .. p + len` must be readable.
#[inline(always)]
unsafe fn load_part(p: *const f32, len: usize) -> V {
    // Element by element, not `copy_nonoverlapping`: a `memcpy` call in the `k` loop would
    // spill the accumulators.
    let mut a = [0.0f32; LANES];
    for (t, x) in a.iter_mut().enumerate() {
        if t < len {
            // SAFETY: `t < len`, readable by the caller's contract.
            *x = unsafe { *p.add(t) };
        }
    }
    from_arr(a)
}

/// Stores the low `len <= LANES` lanes of `v` at `p`.
///
/// # Safety
/// `p .. p + len` must be writable and not otherwise accessed meanwhile.
#[inline(always)]
unsafe fn store_part(p: *mut f32, v: V, len: usize) {
    let a = to_arr(v);
    // SAFETY: the caller guarantees `len <= LANES` writable floats at `p`.
    unsafe { core::ptr::copy_nonoverlapping(a.as_ptr(), p, len) };
}

/// Loads vector `c` of a tile row at `p` (`part`: the last vector has only `tail` columns).
///
/// # Safety
/// The columns of the vector must be readable.
#[inline(always)]
unsafe fn load_col<const C: usize>(p: *const f32, c: usize, part: bool, tail: usize) -> V {
    // SAFETY: the caller's contract; the partial vector reads only its `tail` columns.
    unsafe {
        if part && c == C - 1 {
            load_part(p.add(c * LANES), tail)
        } else {
            load_at(p.add(c * LANES))
        }
    }
}

/// Rows `k0..k1` of a strip of `B`: row `k0` at `ptr`, rows `rs` apart (the strip in place,
/// or its copy in the driver's buffer).
#[derive(Clone, Copy)]
struct Strip {
    ptr: *const f32,
    rs: usize,
}

/// One `R x C`-vector tile at rows `i0..`, columns `j0..`, over `k0..k1` (`B`'s rows from
/// `b`, full vectors); the last pass (`k1 == k`) applies the bias and SiLU and every pass
/// stores the tile into `C` (`part`: its last vector only `tail` columns). With `PF`, each step
/// of `k` also hints the line of `A` [`PF_ROWS`] rows ahead (a hint never faults, so rows past
/// the product are harmless).
///
/// # Safety
/// The tile lies inside the product `p` describes (`i0 + R <= m`, `j0 + C * LANES - (LANES -
/// tail if part) <= n`, `k0 <= k1 <= k`), whose views are in bounds (checked by
/// `crate::gemm`); `b` holds `C` full vectors for rows `k0..k1`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const R: usize, const C: usize, const S: u8, const PF: bool>(
    p: &Raw,
    b: Strip,
    (cp, crs): (*mut f32, usize),
    i0: usize,
    j0: usize,
    k0: usize,
    k1: usize,
    part: bool,
    tail: usize,
) {
    let mut acc = [[splat(0.0); C]; R];
    // SAFETY: every pointer below addresses an element inside its view (the caller's
    // contract); the running pointers of the `k` loop advance with `wrapping_add` and are
    // dereferenced only inside `k0..k1`.
    unsafe {
        if k0 > 0 {
            for (r, row) in acc.iter_mut().enumerate() {
                for (c, a) in row.iter_mut().enumerate() {
                    *a = load_col::<C>(cp.add(r * crs), c, part, tail);
                }
            }
        }
        // `S == 1`: `A`'s rows are adjacent (`ars == 1`), known at compile time.
        let ars = if S == 1 { 1 } else { p.ars };
        let acs = p.acs;
        let brs = b.rs;
        let mut ap = p.a.add(i0 * ars + k0 * acs);
        let mut bp = b.ptr;
        // Row offsets of the broadcasts, fixed through the loop (base + index addressing).
        let mut offs = [0usize; R];
        for (r, o) in offs.iter_mut().enumerate() {
            *o = r * ars;
        }
        // One step of `k`, `u` rows past the running pointers.
        macro_rules! step {
            ($u:expr) => {{
                if PF {
                    prefetch(ap.wrapping_add(PF_ROWS + $u * acs));
                }
                let bq = bp.wrapping_add($u * brs);
                let mut bv = [splat(0.0); C];
                for (c, v) in bv.iter_mut().enumerate() {
                    *v = load_at(bq.add(c * LANES));
                }
                for (row, &o) in acc.iter_mut().zip(&offs) {
                    let av = splat(*ap.add(o + $u * acs));
                    for (a, &b) in row.iter_mut().zip(&bv) {
                        *a = fma(av, b, *a);
                    }
                }
            }};
        }
        let mut kk = k0;
        if S == 1 {
            // Four steps per pointer update (the broadcasts' offsets are constants). Not for
            // other strides: the compiler then hoists the broadcasts and spills.
            while kk + 4 <= k1 {
                step!(0);
                step!(1);
                step!(2);
                step!(3);
                ap = ap.wrapping_add(4 * acs);
                bp = bp.wrapping_add(4 * brs);
                kk += 4;
            }
        }
        while kk < k1 {
            step!(0);
            ap = ap.wrapping_add(acs);
            bp = bp.wrapping_add(brs);
            kk += 1;
        }
        if k1 == p.k && (p.silu || !p.bias_row.is_null() || !p.bias_col.is_null()) {
            // The epilogue works on a copy: its loops (SiLU is long) need not be unrolled,
            // while `acc` stays in registers through the `k` loop.
            let mut out = acc;
            finish::<C>(p, &mut out, i0, j0, part, tail);
            store_tile(cp, crs, &out, part, tail);
        } else {
            // Straight from the accumulators (a copy would go through the stack).
            store_tile(cp, crs, &acc, part, tail);
        }
    }
}

/// Stores the `R x C`-vector tile `out` at `cp` (rows `crs` apart; `part`: the last vector only
/// `tail` columns). A function, not a closure: a closure here is compiled without the level's
/// target features, and its legacy SSE moves after AVX code cost a state transition per tile.
///
/// # Safety
/// As [`tile`]: the tile's columns are writable at `cp`.
#[inline(always)]
unsafe fn store_tile<const R: usize, const C: usize>(
    cp: *mut f32,
    crs: usize,
    out: &[[V; C]; R],
    part: bool,
    tail: usize,
) {
    for (r, row) in out.iter().enumerate() {
        for (c, &a) in row.iter().enumerate() {
            // SAFETY: inside the tile (the caller's contract).
            unsafe {
                let q = cp.add(r * crs + c * LANES);
                if part && c == C - 1 {
                    store_part(q, a, tail);
                } else {
                    store_at(q, a);
                }
            }
        }
    }
}

/// Floats of the driver's tile buffer for a `C` stored transposed: one `MR x NV`-vector tile,
/// rows [`NV`]` * LANES` apart.
const TB: usize = MR * NV * LANES;

/// Stores the tile of `rows` rows and `w` columns at rows `i0..`, columns `j0..` from the tile
/// buffer `tb` into `C` stored transposed (column `j` at `p.c + j * p.crs`). Full-height tiles
/// go through a register transpose (8 rows at 16 lanes: [`store_cols8`]; `MR` = 6 rows at 8
/// lanes: [`transpose`] with zero rows of padding, `MR` floats stored per column), others
/// element by element (the edge tiles of a product).
///
/// # Safety
/// The tile lies inside the product `p` describes, whose views are in bounds, `p.ct`.
#[inline(always)]
unsafe fn store_t(p: &Raw, tb: &[f32; TB], i0: usize, j0: usize, rows: usize, w: usize) {
    // SAFETY: elements `(i0 + r, j0 + t)` for `r < rows`, `t < w` lie inside `C` (caller);
    // `tb` holds `MR` rows of `NV * LANES` floats, `rows <= MR`, `w <= NV * LANES`.
    unsafe {
        let cp = p.c.add(j0 * p.crs + i0);
        for c in 0..w.div_ceil(LANES) {
            let cols = (w - c * LANES).min(LANES);
            let q = cp.add(c * LANES * p.crs);
            if MR == 8 && rows == 8 {
                let v: [V; 8] =
                    core::array::from_fn(|r| load_at(tb.as_ptr().add(r * NV * LANES + c * LANES)));
                store_cols8(&v, q, p.crs, cols);
            } else if LANES == 8 && rows == MR {
                // 8 lanes (AVX2): the `MR` (6) rows and zero rows below them through the
                // level's 8 x 8 register transpose, then the first `MR` lanes of each column
                // vector (the next tile's rows follow them).
                let mut v: [V; LANES] = core::array::from_fn(|r| {
                    if r < MR {
                        load_at(tb.as_ptr().add(r * NV * LANES + c * LANES))
                    } else {
                        splat(0.0)
                    }
                });
                transpose(&mut v);
                for (t, &col) in v.iter().enumerate().take(cols) {
                    store_part(q.add(t * p.crs), col, MR);
                }
            } else {
                for r in 0..rows {
                    for t in 0..cols {
                        *q.add(t * p.crs + r) = tb[r * NV * LANES + c * LANES + t];
                    }
                }
            }
        }
    }
}

/// Loads the tile of [`store_t`] back from `C` stored transposed into `tb`, element by
/// element (only a partial strip of a product with `k` over [`KC`] comes here, once per pass
/// after the first: a full strip of a transposed `C` runs in one pass).
///
/// # Safety
/// As [`store_t`].
#[inline(always)]
unsafe fn load_t(p: &Raw, tb: &mut [f32; TB], i0: usize, j0: usize, rows: usize, w: usize) {
    // SAFETY: as `store_t`, for reading.
    unsafe {
        let cp = p.c.add(j0 * p.crs + i0);
        for r in 0..rows {
            for t in 0..w {
                tb[r * NV * LANES + t] = *cp.add(t * p.crs + r);
            }
        }
    }
}

/// The bias and SiLU of the tile `out` at rows `i0..`, columns `j0..`.
///
/// # Safety
/// As [`tile`] (the bias covers the tile's rows or columns).
#[inline(always)]
unsafe fn finish<const C: usize>(
    p: &Raw,
    out: &mut [[V; C]],
    i0: usize,
    j0: usize,
    part: bool,
    tail: usize,
) {
    // SAFETY: the bias elements of the tile's rows or columns are in bounds (caller).
    unsafe {
        if !p.bias_row.is_null() {
            for (r, row) in out.iter_mut().enumerate() {
                let bv = splat(*p.bias_row.add(i0 + r));
                for a in row.iter_mut() {
                    *a += bv;
                }
            }
        }
        if !p.bias_col.is_null() {
            for c in 0..C {
                let bv = load_col::<C>(p.bias_col.add(j0), c, part, tail);
                for row in out.iter_mut() {
                    row[c] += bv;
                }
            }
        }
    }
    if p.silu {
        // A row's vectors breadth-first (`Vs`): independent chains issued step by step.
        for row in out.iter_mut() {
            *row = super::math::silu(super::math::Vs(*row)).0;
        }
    }
}

/// Calls the tile of `rows` rows and `vecs` vectors (`part`: the last one partial; `pf`: hint
/// `A`'s lines [`PF_ROWS`] rows ahead, full tiles of adjacent rows only).
///
/// # Safety
/// As [`tile`], for `R = rows`, `C = vecs`, `S = s`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_dyn(
    p: &Raw,
    b: Strip,
    dst: (*mut f32, usize),
    s: u8,
    pf: bool,
    rows: usize,
    vecs: usize,
    part: bool,
    i0: usize,
    j0: usize,
    k0: usize,
    k1: usize,
    tail: usize,
) {
    macro_rules! pick {
        ($($r:literal)*; $($c:literal)*) => {
            pick!(@rows [$($r)*] [$($c)*])
        };
        (@rows [$($r:literal)*] $cs:tt) => {
            match rows {
                $( $r => pick!(@cols $r $cs), )*
                _ => unreachable!(),
            }
        };
        (@cols $r:tt [$($c:literal)*]) => {
            match (vecs, s) {
                $(
                    ($c, 1) => tile::<$r, $c, 1, false>(p, b, dst, i0, j0, k0, k1, part, tail),
                    ($c, _) => tile::<$r, $c, 0, false>(p, b, dst, i0, j0, k0, k1, part, tail),
                )*
                _ => unreachable!(),
            }
        };
    }
    // SAFETY: the caller's contract; `rows <= MR` and `vecs <= NV` by the driver's choice.
    unsafe {
        // The hinting variant for full tiles only: one more instance of the kernel per level
        // (a variant of every tile shape made the fuzz build's ss2d-core compile several times
        // longer), and the edge tiles of a block are too few to matter.
        if pf && s == 1 && rows == MR && vecs == NV {
            return tile::<MR, NV, 1, true>(p, b, dst, i0, j0, k0, k1, part, tail);
        }
        // Full-height tiles outside the match over every row count: reached through it, the
        // compiler kept their accumulators on the stack (design.md, section 5).
        if rows == MR {
            return if LANES == 16 {
                pick!(@cols MR [1 2 3])
            } else {
                pick!(@cols MR [1 2])
            };
        }
        if LANES == 16 {
            pick!(1 2 3 4 5 6 7; 1 2 3)
        } else {
            pick!(1 2 3 4 5; 1 2)
        }
    }
}

/// Copies rows `k0..k1` of the strip of `vecs` vectors at column `j0` (the last one `tail`
/// wide, zero-padded) into `buf` (rows of `NV` vectors), and hints the next strip's rows into
/// the cache.
///
/// # Safety
/// The strip lies inside `B` (as for [`tile`]); `k1 - k0 <= KC`.
#[inline(always)]
unsafe fn pack(
    p: &Raw,
    buf: &mut [MaybeUninit<V>; KC * NV],
    j0: usize,
    vecs: usize,
    tail: usize,
    k0: usize,
    k1: usize,
) {
    let next = j0 + NV * LANES < p.n;
    for kk in k0..k1 {
        // SAFETY: row `kk` of the strip is in bounds (caller); `buf` has `KC * NV` vectors and
        // `kk - k0 < KC`, `c < vecs <= NV`.
        unsafe {
            let row = p.b.add(kk * p.brs + j0);
            for c in 0..vecs {
                let v = if c == vecs - 1 && tail < LANES {
                    load_part(row.add(c * LANES), tail)
                } else {
                    load_at(row.add(c * LANES))
                };
                buf[(kk - k0) * NV + c] = MaybeUninit::new(v);
            }
        }
        if next {
            // The next strip of this row: NV vectors, 4-byte floats in 64-byte lines.
            for t in 0..(NV * LANES).div_ceil(16) {
                prefetch(p.b.wrapping_add(kk * p.brs + j0 + NV * LANES + 16 * t));
            }
        }
    }
}

level_fn! {
    /// `C = A B (+ bias) (SiLU)` over the product `p` describes: strips of `NV` vectors of
    /// columns, passes of [`KC`] over `k`, row tiles of [`MR`].
    ///
    /// # Safety
    /// `p`'s views are in bounds and `C` is not otherwise accessed (checked by
    /// `crate::gemm::Product::run_at`); `m`, `n` > 0.
    #[inline(never)]
    pub(crate) unsafe fn matmul(p: &Raw) {
        // Each strip of `B` (pass of `k`) is copied into contiguous rows when several row
        // tiles read it and it is not contiguous already.
        let s = u8::from(p.ars == 1);
        let mut buf = [MaybeUninit::<V>::uninit(); KC * NV];
        // The tile buffer of a transposed `C` (zeroed: the lanes past a partial vector's
        // columns are read, never used).
        let mut tb = [0.0f32; TB];
        let mut j0 = 0;
        while j0 < p.n {
            let w = (NV * LANES).min(p.n - j0);
            let vecs = w.div_ceil(LANES);
            let tail = w - (vecs - 1) * LANES;
            let part = tail < LANES;
            // A transposed `C` takes the whole `k` in one pass, `B`'s strip read in place: a
            // pass after the first would reload every tile through `load_t`, element by
            // element. (The strip, `k` rows of `NV` vectors, streams from L2 when it is over
            // L1.) A partial strip is copied in passes of `KC`, as for a plain `C`. Measured on
            // an Intel Xeon at x86-64-v4, one thread, medians of 8 interleaved rounds: s2l5's
            // `gemm_out` (`k` = 192) 909 -> 854 us; s1l8's (`k` = 96, one pass before too, `B`
            // now in place instead of copied) 409 -> 408 us.
            let one_pass = p.ct && !part;
            let mut k0 = 0;
            loop {
                let k1 = if one_pass { p.k } else { (k0 + KC).min(p.k) };
                // Tiles read whole vectors of `B`: a partial strip is always copied.
                let b = if !one_pass && (part || (p.m > MR && p.brs != NV * LANES)) {
                    // SAFETY: the strip's rows `k0..k1` are inside `B`; `k1 - k0 <= KC`.
                    unsafe { pack(p, &mut buf, j0, vecs, tail, k0, k1) };
                    Strip { ptr: buf.as_ptr().cast(), rs: NV * LANES }
                } else {
                    Strip {
                        // Row `k0`, column `j0` of `B` (read only for `k0 < k`).
                        ptr: p.b.wrapping_add(k0 * p.brs + j0),
                        rs: p.brs,
                    }
                };
                // Adjacent rows of `A` whose columns lie a page or more apart (a channel-first
                // input read through strides): each step of `k` reads another page, a pattern
                // the prefetchers (which follow lines within a page) miss. The first strip's
                // tiles hint the lines `PF_ROWS` rows ahead; the other strips find the block
                // in cache. Measured on Emerald Rapids (one thread, s1l8 layer): gemm_in
                // 432-442 -> 413-422 us. Copying such an `A` once per block of 32 or 64 rows
                // into contiguous panels that every strip then reads (as BLIS packs `A`)
                // measured slower on an Intel Xeon at x86-64-v4 (s1l8 gemm_in 525-560 ->
                // 622-634 us, three interleaved rounds) and no faster at x86-64-v3 on Zen 3.
                let pf = s == 1 && j0 == 0 && p.acs >= 1024;
                let mut i0 = 0;
                while i0 < p.m {
                    let rows = MR.min(p.m - i0);
                    // SAFETY: the tile lies inside the product (rows, columns and `k` range
                    // chosen above), whose views the caller checked.
                    unsafe {
                        if p.ct {
                            // Through the tile buffer, transposed on the way out.
                            if k0 > 0 {
                                load_t(p, &mut tb, i0, j0, rows, w);
                            }
                            let dst = (tb.as_mut_ptr(), NV * LANES);
                            tile_dyn(p, b, dst, s, pf, rows, vecs, part, i0, j0, k0, k1, tail);
                            store_t(p, &tb, i0, j0, rows, w);
                        } else {
                            let dst = (p.c.add(i0 * p.crs + j0), p.crs);
                            tile_dyn(p, b, dst, s, pf, rows, vecs, part, i0, j0, k0, k1, tail);
                        }
                    }
                    i0 += rows;
                }
                k0 = k1;
                if k0 >= p.k {
                    break;
                }
            }
            j0 += w;
        }
    }
}
