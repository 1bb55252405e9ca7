//! `ss2d_cross_scan` / `ss2d_cross_merge`: VMamba's `cross_scan_fn` / `cross_merge_fn`.

use std::ffi::c_int;

use ss2d_std::cross::{cross_merge, cross_scan, CrossDims, CrossOpts};

use crate::exec::{read_exec, ss2d_exec};
use crate::tensor::{check_disjoint, input, output, ss2d_const_tensor, ss2d_tensor, View};
use crate::{flag, guard, scan_mode, ss2d_status, Fail, Res};

/// Memory orders (outermost first) of the logical shapes, channel-first and channel-last.
fn perms(rank: usize, four: bool) -> ([usize; 5], [usize; 5]) {
    match (rank, four) {
        // (B, C, L) | (B, L, C)
        (3, false) => ([0, 1, 2, 0, 0], [0, 2, 1, 0, 0]),
        // (B, C, H, W) | (B, H, W, C)
        (4, false) => ([0, 1, 2, 3, 0], [0, 2, 3, 1, 0]),
        // (B, 4, C, L) | (B, L, 4, C)
        (4, true) => ([0, 1, 2, 3, 0], [0, 3, 1, 2, 0]),
        // (B, 4, C, H, W) | (B, H, W, 4, C)
        _ => ([0, 1, 2, 3, 4], [0, 3, 4, 1, 2]),
    }
}

/// The layout to run in for a tensor: channel-first unless it is dense channel-last only.
fn layout_of(v: &View, four: bool) -> (bool, Vec<usize>) {
    let (cf, cl) = perms(v.ndim, four);
    let (cf, cl) = (&cf[..v.ndim], &cl[..v.ndim]);
    if !v.dense_in(cf) && v.dense_in(cl) {
        (false, cl.to_vec())
    } else {
        (true, cf.to_vec())
    }
}

fn shape_err(msg: String) -> Fail {
    Fail::new(ss2d_status::SS2D_BAD_SHAPE, msg)
}

/// Checks a sequence-side tensor `(B, 4, C, L)` or `(B, 4, C, H, W)` against the dims.
fn check_seq(v: &View, d: &CrossDims, allow_flat: bool) -> Res<()> {
    let five = [d.batch, 4, d.channels, d.h, d.w];
    if v.ndim == 5 {
        return v.expect(&five, "(B, 4, C, H, W)");
    }
    let l =
        d.h.checked_mul(d.w)
            .ok_or_else(|| shape_err("H*W overflows".into()))?;
    if allow_flat {
        v.expect_rank(&[4, 5], "(B, 4, C, L) or (B, 4, C, H, W)")?;
        v.expect(&[d.batch, 4, d.channels, l], "(B, 4, C, L)")
    } else {
        v.expect(&five, "(B, 4, C, H, W)")
    }
}

/// Checks a 2D-side tensor against the dims: `(B, C, H, W)` or `(B, C, L)` (one-by-one:
/// `(B, 4, C, H, W)` or `(B, 4, C, L)`).
fn check_plane(v: &View, d: &CrossDims, obo: bool, allow_flat: bool) -> Res<()> {
    let l =
        d.h.checked_mul(d.w)
            .ok_or_else(|| shape_err("H*W overflows".into()))?;
    let (full, flatv, names): (Vec<usize>, Vec<usize>, [&str; 2]) = if obo {
        (
            vec![d.batch, 4, d.channels, d.h, d.w],
            vec![d.batch, 4, d.channels, l],
            ["(B, 4, C, H, W)", "(B, 4, C, L)"],
        )
    } else {
        (
            vec![d.batch, d.channels, d.h, d.w],
            vec![d.batch, d.channels, l],
            ["(B, C, H, W)", "(B, C, L)"],
        )
    };
    if allow_flat && v.ndim == flatv.len() {
        v.expect(&flatv, names[1])
    } else {
        v.expect(&full, names[0])
    }
}

/// VMamba's `cross_scan_fn(x, in_channel_first, out_channel_first, one_by_one, scans)`:
/// `xs[b, k, c, s] = x[b, c, route_k(s)]` for the four directions of `scan_mode`.
///
/// `x`: `(B, C, H, W)` (one-by-one: `(B, 4, C, H, W)`, direction `k` reads slice `k`).
/// `xs`: `(B, 4, C, L)` or `(B, 4, C, H, W)`, `L = H*W`. Channel-last buffers
/// (`(B, H, W, C)`, `(B, L, 4, C)`, ...) are these shapes with permuted strides and are used in
/// place; other strides go through temporaries. A pure permutation: exact.
///
/// # Safety
/// `x` and `xs` are valid descriptors (NULL is refused) whose data is readable (`x`) or
/// writable and exclusive (`xs`) during the call; `exec` is NULL or valid (its scratch is not
/// used); a `parallel_for` keeps its contract.
#[no_mangle]
pub unsafe extern "C" fn ss2d_cross_scan(
    x: *const ss2d_const_tensor,
    xs: *const ss2d_tensor,
    scan_mode: c_int,
    one_by_one: c_int,
    exec: *const ss2d_exec,
) -> c_int {
    // SAFETY: this function's contract is `run`'s.
    guard(|| unsafe { run(x, xs, scan_mode, one_by_one, exec, false) })
}

/// VMamba's `cross_merge_fn(ys, in_channel_first, out_channel_first, one_by_one, scans)`:
/// the sum of the four directions of `ys` mapped back to row-major order, in upstream's order
/// of additions (`y = (ys0 + flip ys2) + transpose(ys1 + flip ys3)` for cross2d).
///
/// `ys`: `(B, 4, C, H, W)` (direction `k`'s sequence in its scan order, viewed as `H x W`).
/// `y`: `(B, C, H, W)` or `(B, C, L)`; one-by-one (no sum): `(B, 4, C, H, W)` or
/// `(B, 4, C, L)`. Layout handling as in `ss2d_cross_scan`.
///
/// # Safety
/// As `ss2d_cross_scan`, with `ys` the input and `y` the output.
#[no_mangle]
pub unsafe extern "C" fn ss2d_cross_merge(
    ys: *const ss2d_const_tensor,
    y: *const ss2d_tensor,
    scan_mode: c_int,
    one_by_one: c_int,
    exec: *const ss2d_exec,
) -> c_int {
    // SAFETY: this function's contract is `run`'s.
    guard(|| unsafe { run(ys, y, scan_mode, one_by_one, exec, true) })
}

/// # Safety
/// See [`ss2d_cross_scan`].
unsafe fn run(
    inp: *const ss2d_const_tensor,
    out: *const ss2d_tensor,
    mode: c_int,
    one_by_one: c_int,
    exec: *const ss2d_exec,
    merge: bool,
) -> Res<()> {
    let mode = scan_mode(mode)?;
    let obo = flag(one_by_one);
    let (iname, oname) = if merge { ("ys", "y") } else { ("x", "xs") };
    // SAFETY: descriptors valid or NULL (contract).
    let iv = unsafe { input(inp, iname) }?;
    // SAFETY: as above.
    let ov = unsafe { output(out, oname) }?;
    // SAFETY: as above.
    let ex = unsafe { read_exec(exec) }?;
    check_disjoint(&[&ov], &[&iv])?;

    // Sizes from the tensor that has H and W.
    let dims = if merge {
        iv.expect_rank(&[5], "(B, 4, C, H, W)")?;
        let s = iv.dims();
        CrossDims {
            batch: s[0],
            channels: s[2],
            h: s[3],
            w: s[4],
        }
    } else if obo {
        iv.expect_rank(&[5], "(B, 4, C, H, W) (one_by_one)")?;
        let s = iv.dims();
        CrossDims {
            batch: s[0],
            channels: s[2],
            h: s[3],
            w: s[4],
        }
    } else {
        iv.expect_rank(&[4], "(B, C, H, W)")?;
        let s = iv.dims();
        CrossDims {
            batch: s[0],
            channels: s[1],
            h: s[2],
            w: s[3],
        }
    };
    let (plane, seq) = if merge { (&ov, &iv) } else { (&iv, &ov) };
    if merge {
        check_seq(seq, &dims, false)?;
        check_plane(plane, &dims, obo, true)?;
    } else {
        check_plane(plane, &dims, obo, false)?;
        check_seq(seq, &dims, true)?;
    }
    let (in_cf, plane_perm) = layout_of(plane, obo);
    let (out_cf, seq_perm) = layout_of(seq, true);
    let opts = CrossOpts {
        mode,
        in_channel_first: in_cf,
        out_channel_first: out_cf,
        one_by_one: obo,
    };
    let (iperm, operm) = if merge {
        (seq_perm, plane_perm)
    } else {
        (plane_perm, seq_perm)
    };
    // SAFETY: the input is readable and unwritten during the call (contract) and disjoint
    // from the output (checked).
    let data = unsafe { iv.read(&iperm, &ex) }?;
    // SAFETY: the output is writable and exclusive (contract), disjoint from the input.
    let mut ob = unsafe { ov.out_buf(&operm) };
    let r = if merge {
        cross_merge(&data, dims, opts, ob.slice(), ex.par())
    } else {
        cross_scan(&data, dims, opts, ob.slice(), ex.par())
    };
    ex.outcome(r)?;
    // SAFETY: as for `out_buf`.
    unsafe { ob.finish(&ex) }?;
    ex.outcome(Ok::<(), Fail>(()))
}
