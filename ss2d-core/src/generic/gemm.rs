//! The register-blocked matrix product at one level (see `crate::gemm`).
//!
//! `C (m x n) = A (m x k) B (k x n)`, then `+ bias` and SiLU: a tile of `R <= MR` rows of `A`
//! (broadcasts) by `C <= NV` vectors of columns of `B` (unit column stride) is accumulated in
//! registers over `k`, in passes of at most [`KC`] (so that a strip of `B` stays in L1 while
//! every row tile of `A` goes over it). Every output element is the same chain of FMAs, `k`
//! ascending from 0 (stored and reloaded between passes, which is exact), whatever the tile it
//! falls in: results do not depend on the sizes or on how a caller splits a product.

use super::{fma, from_arr, load_at, splat, store_at, to_arr, LANES, V};
use crate::gemm::Raw;

/// Rows of `A` per register tile.
const MR: usize = 6;
/// Vectors of `B` columns per register tile: `MR x NV` accumulators, `NV` loads and a
/// broadcast fit 32 registers at 16 lanes (AVX-512) and 16 at 8 lanes (AVX2).
const NV: usize = if LANES == 16 { 4 } else { 2 };
/// `k` per pass over a strip of `B` (`KC x NV x LANES` floats: 32 KiB at 16 lanes).
const KC: usize = 128;

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

/// Loads vector `c` of a tile row at `p` (`P`: the last vector has only `tail` columns).
///
/// # Safety
/// The columns of the vector must be readable.
#[inline(always)]
unsafe fn load_col<const C: usize, const P: bool>(p: *const f32, c: usize, tail: usize) -> V {
    // SAFETY: the caller's contract; the partial vector reads only its `tail` columns.
    unsafe {
        if P && c == C - 1 {
            load_part(p.add(c * LANES), tail)
        } else {
            load_at(p.add(c * LANES))
        }
    }
}

/// One `R x C`-vector tile at rows `i0..`, columns `j0..`, over `k0..k1`; the last pass
/// (`k1 == k`) applies the bias and SiLU and every pass stores the tile into `C`.
///
/// # Safety
/// The tile lies inside the product `p` describes (`i0 + R <= m`, `j0 + C * LANES - (LANES -
/// tail if P) <= n`, `k0 <= k1 <= k`), whose views are in bounds (checked by `crate::gemm`).
#[inline(always)]
unsafe fn tile<const R: usize, const C: usize, const P: bool>(
    p: &Raw,
    i0: usize,
    j0: usize,
    k0: usize,
    k1: usize,
    tail: usize,
) {
    let mut acc = [[splat(0.0); C]; R];
    // SAFETY: every pointer below addresses an element inside its view (the caller's
    // contract); the running pointers of the `k` loop advance with `wrapping_add` and are
    // dereferenced only inside `k0..k1`.
    unsafe {
        let cp = p.c.add(i0 * p.crs + j0);
        if k0 > 0 {
            for (r, row) in acc.iter_mut().enumerate() {
                for (c, a) in row.iter_mut().enumerate() {
                    *a = load_col::<C, P>(cp.add(r * p.crs), c, tail);
                }
            }
        }
        let mut ap = p.a.add(i0 * p.ars + k0 * p.acs);
        let mut bp = p.b.add(k0 * p.brs + j0);
        for _ in k0..k1 {
            let mut bv = [splat(0.0); C];
            for (c, v) in bv.iter_mut().enumerate() {
                *v = load_col::<C, P>(bp, c, tail);
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let av = splat(*ap.add(r * p.ars));
                for (a, &b) in row.iter_mut().zip(&bv) {
                    *a = fma(av, b, *a);
                }
            }
            ap = ap.wrapping_add(p.acs);
            bp = bp.wrapping_add(p.brs);
        }
        // The epilogue and the stores work on a copy: its loops (SiLU is long) need not be
        // unrolled, while `acc` stays in registers through the `k` loop.
        let mut out = acc;
        if k1 == p.k {
            finish::<C, P>(p, &mut out, i0, j0, tail);
        }
        for (r, row) in out.iter().enumerate() {
            for (c, &a) in row.iter().enumerate() {
                let q = cp.add(r * p.crs + c * LANES);
                if P && c == C - 1 {
                    store_part(q, a, tail);
                } else {
                    store_at(q, a);
                }
            }
        }
    }
}

/// The bias and SiLU of the tile `out` at rows `i0..`, columns `j0..`.
///
/// # Safety
/// As [`tile`] (the bias covers the tile's rows or columns).
#[inline(always)]
unsafe fn finish<const C: usize, const P: bool>(
    p: &Raw,
    out: &mut [[V; C]],
    i0: usize,
    j0: usize,
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
                let bv = load_col::<C, P>(p.bias_col.add(j0), c, tail);
                for row in out.iter_mut() {
                    row[c] += bv;
                }
            }
        }
    }
    if p.silu {
        for row in out.iter_mut() {
            for a in row.iter_mut() {
                *a = super::math::silu(*a);
            }
        }
    }
}

/// Calls the tile of `rows` rows and `vecs` vectors (`part`: the last one partial).
///
/// # Safety
/// As [`tile`], for `R = rows`, `C = vecs`, `P = part`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_dyn(
    p: &Raw,
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
        (@cols $r:literal [$($c:literal)*]) => {
            match (vecs, part) {
                $(
                    ($c, false) => tile::<$r, $c, false>(p, i0, j0, k0, k1, tail),
                    ($c, true) => tile::<$r, $c, true>(p, i0, j0, k0, k1, tail),
                )*
                _ => unreachable!(),
            }
        };
    }
    // SAFETY: the caller's contract; `rows <= MR` and `vecs <= NV` by the driver's choice.
    unsafe { pick!(1 2 3 4 5 6; 1 2 3 4) }
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
        let mut j0 = 0;
        while j0 < p.n {
            let w = (NV * LANES).min(p.n - j0);
            let vecs = w.div_ceil(LANES);
            let tail = w - (vecs - 1) * LANES;
            let part = tail < LANES;
            let mut k0 = 0;
            loop {
                let k1 = (k0 + KC).min(p.k);
                let mut i0 = 0;
                while i0 < p.m {
                    let rows = MR.min(p.m - i0);
                    // SAFETY: the tile lies inside the product (rows, columns and `k` range
                    // chosen above), whose views the caller checked.
                    unsafe { tile_dyn(p, rows, vecs, part, i0, j0, k0, k1, tail) };
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
