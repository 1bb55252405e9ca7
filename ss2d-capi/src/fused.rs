//! `ss2d_fused_scan`: VMamba's SS2D scan (cross-scan, x_proj, dt_proj, selective scan,
//! cross-merge) fused, over the C ABI.

use std::ffi::c_int;

use ss2d_std::unfused::{Ss2dScanShape, Ss2dScanWeights};

use crate::exec::{read_exec, ss2d_exec};
use crate::tensor::{check_disjoint, input, output, ss2d_const_tensor, ss2d_tensor, View};
use crate::{arg, guard, scan_mode, ss2d_status, Fail, Res};

/// The inputs of the fused SS2D scan, under VMamba's state_dict names (`D` = `d_inner`,
/// `N` = `d_state`, `R` = `dt_rank`, `L = H*W`). Shapes are logical; any strides work.
///
/// | field | shape |
/// |---|---|
/// | `x` | `(B, D, H, W)`: the conv + SiLU output; a channel-last `(B, H, W, D)` buffer is this shape with strides `(H*W*D, 1, W*D, D)` and is read in place (other layouts are transposed to it) |
/// | `x_proj_weight` | `(4, R + 2N, D)`, rows `[dt (R) \| B (N) \| C (N)]` |
/// | `dt_projs_weight` | `(4, D, R)` |
/// | `dt_projs_bias` | `(4, D)` |
/// | `A_logs` | `(4*D, N)`, `A = -exp(A_logs)` |
/// | `Ds` | `(4*D,)` |
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ss2d_fused_inputs {
    /// `(B, D, H, W)`.
    pub x: *const ss2d_const_tensor,
    /// `(4, R + 2N, D)`.
    pub x_proj_weight: *const ss2d_const_tensor,
    /// `(4, D, R)`.
    pub dt_projs_weight: *const ss2d_const_tensor,
    /// `(4, D)`.
    pub dt_projs_bias: *const ss2d_const_tensor,
    /// `(4*D, N)`.
    pub A_logs: *const ss2d_const_tensor,
    /// `(4*D,)`.
    pub Ds: *const ss2d_const_tensor,
    /// An `ss2d_scan_mode` (0 cross2d, 1 unidi, 2 bidi).
    pub scan_mode: c_int,
}

struct Prep {
    x: View,
    xw: View,
    dtw: View,
    dtb: View,
    a_logs: View,
    ds: View,
    shape: Ss2dScanShape,
}

impl Prep {
    fn inputs(&self) -> Vec<&View> {
        vec![
            &self.x,
            &self.xw,
            &self.dtw,
            &self.dtb,
            &self.a_logs,
            &self.ds,
        ]
    }
}

/// # Safety
/// Every non-NULL pointer in `inp` points to a valid descriptor.
unsafe fn prepare(inp: &ss2d_fused_inputs) -> Res<Prep> {
    // SAFETY: descriptors valid or NULL by the caller's contract.
    let x = unsafe { input(inp.x, "x") }?;
    // SAFETY: the descriptor pointer is NULL or valid (the caller's contract).
    let xw = unsafe { input(inp.x_proj_weight, "x_proj_weight") }?;
    // SAFETY: the descriptor pointer is NULL or valid (the caller's contract).
    let dtw = unsafe { input(inp.dt_projs_weight, "dt_projs_weight") }?;
    // SAFETY: the descriptor pointer is NULL or valid (the caller's contract).
    let dtb = unsafe { input(inp.dt_projs_bias, "dt_projs_bias") }?;
    // SAFETY: the descriptor pointer is NULL or valid (the caller's contract).
    let a_logs = unsafe { input(inp.A_logs, "A_logs") }?;
    // SAFETY: the descriptor pointer is NULL or valid (the caller's contract).
    let ds = unsafe { input(inp.Ds, "Ds") }?;
    let mode = scan_mode(inp.scan_mode)?;

    x.expect_rank(&[4], "(B, D, H, W)")?;
    let [bsz, d, h, w] = [x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]];
    let d4 = d
        .checked_mul(4)
        .ok_or_else(|| Fail::new(ss2d_status::SS2D_BAD_SHAPE, "4*D overflows"))?;
    a_logs.expect_rank(&[2], "(4*D, N)")?;
    let n = a_logs.dims()[1];
    a_logs.expect(&[d4, n], "(4*D, N)")?;
    dtw.expect_rank(&[3], "(4, D, R)")?;
    let r = dtw.dims()[2];
    dtw.expect(&[4, d, r], "(4, D, R)")?;
    let rows = n
        .checked_mul(2)
        .and_then(|n2| n2.checked_add(r))
        .ok_or_else(|| Fail::new(ss2d_status::SS2D_BAD_SHAPE, "R + 2N overflows"))?;
    xw.expect(&[4, rows, d], "(4, R + 2N, D)")?;
    dtb.expect(&[4, d], "(4, D)")?;
    ds.expect(&[d4], "(4*D,)")?;
    let shape = Ss2dScanShape {
        batch: bsz,
        dim: d,
        h,
        w,
        dstate: n,
        dt_rank: r,
        mode,
        channel_first: true,
    };
    shape.sizes()?;
    Ok(Prep {
        x,
        xw,
        dtw,
        dtb,
        a_logs,
        ds,
        shape,
    })
}

const CL: [usize; 4] = [0, 2, 3, 1];

/// The shape the kernel runs in: channel-last (the call gathers other layouts into it).
fn kernel_shape(p: &Prep) -> Ss2dScanShape {
    Ss2dScanShape {
        channel_first: false,
        ..p.shape
    }
}

/// Scratch (`float` elements) that `ss2d_fused_scan` needs with these inputs and this `exec`
/// (its `scratch` fields are ignored here), written to `*scratch_elems`: the x_proj output on
/// the grid, the partial buffers of a direction split, and per-item kernel scratch. With at
/// least that many in `exec->scratch` the call allocates nothing but temporaries for strided
/// tensors that are not dense.
///
/// # Safety
/// `inputs` and `scratch_elems` are valid pointers (NULL is refused); every non-NULL tensor
/// pointer in `inputs` points to a valid descriptor; `exec` is NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn ss2d_fused_scan_scratch_size(
    inputs: *const ss2d_fused_inputs,
    exec: *const ss2d_exec,
    scratch_elems: *mut usize,
) -> c_int {
    guard(|| {
        // SAFETY: the pointer contract of this function.
        let inp = unsafe { arg(inputs, "inputs") }?;
        if scratch_elems.is_null() {
            return Err(Fail::new(
                ss2d_status::SS2D_NULL_POINTER,
                "`scratch_elems` is NULL",
            ));
        }
        // SAFETY: as above.
        let p = unsafe { prepare(inp) }?;
        // SAFETY: as above.
        let ex = unsafe { read_exec(exec) }?;
        let total = ss2d_std::fused::ss2d_scan_scratch_len(&kernel_shape(&p), ex.par())?;
        // SAFETY: non-NULL (checked), writable by the contract.
        unsafe { scratch_elems.write(total) };
        Ok(())
    })
}

/// The fused SS2D scan: for every direction `k` of the cross-scan, the selective scan of `x`
/// along direction `k` with `dt = softplus(dt_projs_weight[k] @ x_proj_weight[k, :R] @ x +
/// dt_projs_bias[k])`, `B`/`C` = `x_proj_weight[k, R:R+N]` / `[k, R+N:]` `@ x`,
/// `A = -exp(A_logs)`, `D = Ds`, all four merged back to row-major order:
/// `y = cross_merge(selective_scan(cross_scan(x), ...))` of VMamba's `forward_corev2`, without
/// the `(B, 4, D, L)` intermediates.
///
/// `y`: `(B, D, H, W)`, any non-overlapping strides, must not overlap the inputs or the
/// scratch. The kernel runs channel-last: dense `(B, H, W, D)` buffers (passed as
/// `(B, D, H, W)` views with strides `(H*W*D, 1, W*D, D)`) are used in place; any other
/// layout, channel-first included, is transposed into (and `y` out of) library-allocated
/// temporaries, on the call's threads. That is faster than scanning channel-first data in
/// place, whose column-major directions read with a stride of `W` per lane. Runs in up to
/// three `parallel_for` rounds (projection blocks, scan items, partial-buffer combine), plus
/// the transposes' parts. Nothing is written on error (except after `SS2D_CALLBACK` /
/// `SS2D_INTERNAL` in a host round).
///
/// # Safety
/// As `ss2d_selective_scan`: valid descriptors whose data is readable (inputs) or writable
/// and exclusive (output) for the call; `exec` NULL or valid, its scratch writable and
/// exclusive; a `parallel_for` keeps its contract.
#[no_mangle]
pub unsafe extern "C" fn ss2d_fused_scan(
    inputs: *const ss2d_fused_inputs,
    y: *const ss2d_tensor,
    exec: *const ss2d_exec,
) -> c_int {
    // SAFETY: the contract of this function is `run`'s.
    guard(|| unsafe { run(inputs, y, exec) })
}

/// # Safety
/// See [`ss2d_fused_scan`].
unsafe fn run(
    inputs: *const ss2d_fused_inputs,
    y: *const ss2d_tensor,
    exec: *const ss2d_exec,
) -> Res<()> {
    // SAFETY: the contract of `ss2d_fused_scan`.
    let inp = unsafe { arg(inputs, "inputs") }?;
    // SAFETY: as above.
    let p = unsafe { prepare(inp) }?;
    // SAFETY: as above.
    let y_v = unsafe { output(y, "y") }?;
    let s0 = p.shape;
    y_v.expect(&[s0.batch, s0.dim, s0.h, s0.w], "(B, D, H, W), like x")?;
    // SAFETY: as above.
    let ex = unsafe { read_exec(exec) }?;
    let mut outs = vec![&y_v];
    outs.extend(ex.scratch.as_ref());
    check_disjoint(&outs, &p.inputs())?;

    // The kernel runs channel-last: its column-major directions then load whole panels
    // instead of reading with a stride of W per lane, which costs more than transposing a
    // channel-first x in and y out (measured in ss2d-std, which does the same).
    let perm: &[usize] = &CL;
    let s = kernel_shape(&p);

    // SAFETY: an input, readable and unwritten during the call (contract), validated and
    // disjoint from the outputs and the scratch (checked above).
    let x = unsafe { p.x.read(perm, &ex) }?;
    // SAFETY: as above.
    let xw = unsafe { p.xw.read_rm() };
    // SAFETY: as above.
    let dtw = unsafe { p.dtw.read_rm() };
    // SAFETY: as above.
    let dtb = unsafe { p.dtb.read_rm() };
    // SAFETY: as above.
    let a_logs = unsafe { p.a_logs.read_rm() };
    // SAFETY: as above.
    let ds = unsafe { p.ds.read_rm() };
    let wts = Ss2dScanWeights {
        x_proj_weight: &xw,
        dt_projs_weight: &dtw,
        dt_projs_bias: &dtb,
        a_logs: &a_logs,
        ds: &ds,
    };
    // SAFETY: the scratch contract; disjoint from every tensor (checked).
    let scratch = unsafe { ex.scratch() };
    // SAFETY: the output is writable, exclusive (contract) and disjoint from the inputs and
    // the scratch (checked).
    let mut yb = unsafe { y_v.out_buf(perm) };
    let (y, par) = (yb.slice(), ex.par());
    let r = match scratch {
        Some(sc) => ss2d_std::fused::ss2d_scan_with_scratch(&s, &wts, &x, y, par, sc),
        None => ss2d_std::fused::ss2d_scan(&s, &wts, &x, y, par),
    };
    ex.outcome(r)?;
    // SAFETY: as for `out_buf`.
    unsafe { yb.finish(&ex) }?;
    ex.outcome(Ok::<(), Fail>(()))
}
