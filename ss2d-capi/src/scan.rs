//! `ss2d_selective_scan`: mamba's `selective_scan_fn` over the C ABI.

use std::ffi::c_int;

use ss2d_core::{BcLayout, Layout, ScanArgs, ScanShape, Walk};

use crate::exec::{read_exec, ss2d_exec};
use crate::tensor::{
    check_disjoint, input, optional_input, optional_output, output, ss2d_const_tensor, ss2d_tensor,
    View,
};
use crate::{arg, flag, guard, ss2d_status, Fail, Res};

/// The inputs of a selective scan, under mamba's names (`selective_scan_fn(u, delta, A, B, C,
/// D, z, delta_bias, delta_softplus)`), plus an initial state. Pointers marked optional may be
/// NULL. Shapes are logical; any strides work (see `ss2d_tensor`):
///
/// | field | shape |
/// |---|---|
/// | `u`, `delta`, `z` | `(batch, dim, seqlen)`; a `(batch, seqlen, dim)` buffer is this shape with strides `(seqlen*dim, 1, dim)` and is read in place |
/// | `A` | `(dim, dstate)`, `dstate` in 1..=256 |
/// | `B`, `C` | `(dim, dstate)` constant, `(batch, dstate, seqlen)`, or `(batch, groups, dstate, seqlen)` with channel `d` in group `d / (dim / groups)` |
/// | `D`, `delta_bias` | `(dim,)` |
/// | `initial_state` | `(batch, dim, dstate)`, the state before the first step (zeros when NULL) |
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ss2d_scan_inputs {
    /// Input `(batch, dim, seqlen)`.
    pub u: *const ss2d_const_tensor,
    /// Raw dt `(batch, dim, seqlen)`, before bias and softplus.
    pub delta: *const ss2d_const_tensor,
    /// `(dim, dstate)`.
    pub A: *const ss2d_const_tensor,
    /// `(dim, dstate)`, `(batch, dstate, seqlen)` or `(batch, groups, dstate, seqlen)`.
    pub B: *const ss2d_const_tensor,
    /// Like `B` (its layout is independent of `B`'s).
    pub C: *const ss2d_const_tensor,
    /// Optional skip `(dim,)`: `out += D * u`.
    pub D: *const ss2d_const_tensor,
    /// Optional gate `(batch, dim, seqlen)`: `out *= silu(z)`.
    pub z: *const ss2d_const_tensor,
    /// Optional `(dim,)`, added to `delta` before the softplus.
    pub delta_bias: *const ss2d_const_tensor,
    /// Optional `(batch, dim, dstate)`.
    pub initial_state: *const ss2d_const_tensor,
    /// Non-zero: `dt = softplus(delta + delta_bias)` (torch's, threshold 20).
    pub delta_softplus: c_int,
}

/// Validated inputs.
struct Prep {
    u: View,
    delta: View,
    a: View,
    b: View,
    c: View,
    d: Option<View>,
    z: Option<View>,
    bias: Option<View>,
    init: Option<View>,
    softplus: bool,
    shape: ScanShape,
}

impl Prep {
    fn inputs(&self) -> Vec<&View> {
        let mut v = vec![&self.u, &self.delta, &self.a, &self.b, &self.c];
        v.extend(
            [&self.d, &self.z, &self.bias, &self.init]
                .into_iter()
                .flatten(),
        );
        v
    }
}

fn bc_layout(v: &View, bsz: usize, dim: usize, l: usize, n: usize) -> Res<BcLayout> {
    v.expect_rank(
        &[2, 3, 4],
        "(dim, dstate), (batch, dstate, seqlen) or (batch, groups, dstate, seqlen)",
    )?;
    match v.ndim {
        2 => v
            .expect(&[dim, n], "(constant: dim, dstate)")
            .map(|()| BcLayout::Constant),
        3 => v
            .expect(&[bsz, n, l], "(batch, dstate, seqlen)")
            .map(|()| BcLayout::Grouped(1)),
        _ => {
            let g = v.dims()[1];
            v.expect(&[bsz, g, n, l], "(batch, groups, dstate, seqlen)")
                .map(|()| BcLayout::Grouped(g))
        }
    }
}

/// Validates every input descriptor and their shapes.
///
/// # Safety
/// Every non-NULL pointer in `inp` points to a valid descriptor.
unsafe fn prepare(inp: &ss2d_scan_inputs) -> Res<Prep> {
    // SAFETY: the descriptors are valid or NULL by the caller's contract.
    let u = unsafe { input(inp.u, "u") }?;
    // SAFETY: the descriptor pointer is NULL or valid (the caller's contract).
    let delta = unsafe { input(inp.delta, "delta") }?;
    // SAFETY: the descriptor pointer is NULL or valid (the caller's contract).
    let a = unsafe { input(inp.A, "A") }?;
    // SAFETY: the descriptor pointer is NULL or valid (the caller's contract).
    let b = unsafe { input(inp.B, "B") }?;
    // SAFETY: the descriptor pointer is NULL or valid (the caller's contract).
    let c = unsafe { input(inp.C, "C") }?;
    // SAFETY: the descriptor pointer is NULL or valid (the caller's contract).
    let d = unsafe { optional_input(inp.D, "D") }?;
    // SAFETY: the descriptor pointer is NULL or valid (the caller's contract).
    let z = unsafe { optional_input(inp.z, "z") }?;
    // SAFETY: the descriptor pointer is NULL or valid (the caller's contract).
    let bias = unsafe { optional_input(inp.delta_bias, "delta_bias") }?;
    // SAFETY: the descriptor pointer is NULL or valid (the caller's contract).
    let init = unsafe { optional_input(inp.initial_state, "initial_state") }?;

    u.expect_rank(&[3], "(batch, dim, seqlen)")?;
    let [bsz, dim, l] = [u.dims()[0], u.dims()[1], u.dims()[2]];
    delta.expect(&[bsz, dim, l], "(like u)")?;
    a.expect_rank(&[2], "(dim, dstate)")?;
    let n = a.dims()[1];
    a.expect(&[dim, n], "(dim, dstate)")?;
    let bl = bc_layout(&b, bsz, dim, l, n)?;
    let cl = bc_layout(&c, bsz, dim, l, n)?;
    if let Some(v) = &d {
        v.expect(&[dim], "(dim,)")?;
    }
    if let Some(v) = &z {
        v.expect(&[bsz, dim, l], "(like u)")?;
    }
    if let Some(v) = &bias {
        v.expect(&[dim], "(dim,)")?;
    }
    if let Some(v) = &init {
        v.expect(&[bsz, dim, n], "(batch, dim, dstate)")?;
    }
    let shape = ScanShape {
        batch: bsz,
        dim,
        seqlen: l,
        dstate: n,
        b: bl,
        c: cl,
        layout: Layout::ChannelFirst,
    };
    shape.validate()?;
    Ok(Prep {
        u,
        delta,
        a,
        b,
        c,
        d,
        z,
        bias,
        init,
        softplus: flag(inp.delta_softplus),
        shape,
    })
}

const CF: [usize; 3] = [0, 1, 2];
const CL: [usize; 3] = [0, 2, 1];

/// Scratch (`float` elements) that `ss2d_selective_scan` needs with these inputs and this
/// `exec` (its `scratch` fields are ignored here), written to `*scratch_elems`. Pass at least
/// that many in `exec->scratch` to run without scratch allocations; the library may still
/// allocate temporaries for strided tensors that are not dense.
///
/// # Safety
/// `inputs` and `scratch_elems` are valid pointers (NULL is refused); every non-NULL tensor
/// pointer in `inputs` points to a valid descriptor; `exec` is NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn ss2d_scan_scratch_size(
    inputs: *const ss2d_scan_inputs,
    exec: *const ss2d_exec,
    scratch_elems: *mut usize,
) -> c_int {
    guard(|| {
        // SAFETY: the pointer contract of this function (doc above).
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
        let total = ss2d_std::selective_scan_scratch_len(&p.shape, ex.par())?;
        // SAFETY: non-NULL (checked); writable by the contract.
        unsafe { scratch_elems.write(total) };
        Ok(())
    })
}

/// The selective scan (mamba's `selective_scan_fn` / `selective_scan_ref` semantics):
///
/// ```text
/// dt   = delta + delta_bias;  dt = softplus(dt) if delta_softplus
/// h    = exp(dt * A) * h + dt * u * B          (h starts at initial_state or 0)
/// out  = sum_n C * h + D * u;  out *= silu(z)  (D, z optional)
/// ```
///
/// `out`: `(batch, dim, seqlen)`, any non-overlapping strides. `final_state` (optional, NULL
/// when not wanted): `(batch, dim, dstate)`, the state after the last step. The outputs must
/// not overlap each other, any input or the scratch. Channel-first `(B, D, L)` and
/// channel-last `(B, L, D)` dense tensors are used in place (the kernel runs in the layout
/// most of `u`, `delta`, `z`, `out` are dense in); other strides are gathered into (and, for
/// outputs, scattered back from) library-allocated temporaries.
///
/// Nothing is written when an error is returned, except after `SS2D_CALLBACK` or
/// `SS2D_INTERNAL` from a host `parallel_for` round, when the outputs are unspecified.
///
/// # Safety
/// `inputs` is a valid pointer; every non-NULL tensor pointer points to a valid descriptor
/// whose data is readable (inputs) or writable (outputs) at every element it addresses and is
/// not written by anyone else during the call (nor read, for outputs); `exec` is NULL or
/// valid, with its `scratch` (when non-NULL) writable for `scratch_len` floats and unused by
/// anyone else during the call; a `parallel_for` keeps its documented contract.
#[no_mangle]
pub unsafe extern "C" fn ss2d_selective_scan(
    inputs: *const ss2d_scan_inputs,
    out: *const ss2d_tensor,
    final_state: *const ss2d_tensor,
    exec: *const ss2d_exec,
) -> c_int {
    // SAFETY: the pointer contract of this function (doc above) is `run`'s.
    guard(|| unsafe { run(inputs, out, final_state, exec) })
}

/// # Safety
/// See [`ss2d_selective_scan`].
unsafe fn run(
    inputs: *const ss2d_scan_inputs,
    out: *const ss2d_tensor,
    final_state: *const ss2d_tensor,
    exec: *const ss2d_exec,
) -> Res<()> {
    // SAFETY: the contract of `ss2d_selective_scan`.
    let inp = unsafe { arg(inputs, "inputs") }?;
    // SAFETY: as above.
    let p = unsafe { prepare(inp) }?;
    let s = p.shape;
    // SAFETY: as above.
    let out_v = unsafe { output(out, "out") }?;
    out_v.expect(&[s.batch, s.dim, s.seqlen], "(batch, dim, seqlen)")?;
    // SAFETY: as above.
    let fin_v = unsafe { optional_output(final_state, "final_state") }?;
    if let Some(f) = &fin_v {
        f.expect(&[s.batch, s.dim, s.dstate], "(batch, dim, dstate)")?;
    }
    // SAFETY: as above.
    let ex = unsafe { read_exec(exec) }?;
    let mut outs = vec![&out_v];
    outs.extend(fin_v.as_ref());
    outs.extend(ex.scratch.as_ref());
    check_disjoint(&outs, &p.inputs())?;

    // The layout most of the (B, D, L) tensors are dense in.
    let score = |perm: &[usize]| {
        [Some(&p.u), Some(&p.delta), p.z.as_ref(), Some(&out_v)]
            .into_iter()
            .flatten()
            .filter(|v| v.dense_in(perm))
            .count()
    };
    let (layout, perm) = if score(&CL) > score(&CF) {
        (Layout::ChannelLast, CL)
    } else {
        (Layout::ChannelFirst, CF)
    };
    let shape = ScanShape { layout, ..s };

    // SAFETY: an input, readable and unwritten during the call (contract), validated and
    // disjoint from the outputs and the scratch (checked above).
    let u = unsafe { p.u.read(&perm, &ex) }?;
    // SAFETY: as above.
    let delta = unsafe { p.delta.read(&perm, &ex) }?;
    // SAFETY: as above.
    let z = p.z.map(|v| unsafe { v.read(&perm, &ex) }).transpose()?;
    // SAFETY: as above.
    let a = unsafe { p.a.read_rm() };
    // SAFETY: as above.
    let b = unsafe { p.b.read_rm() };
    // SAFETY: as above.
    let c = unsafe { p.c.read_rm() };
    // SAFETY: as above.
    let d = p.d.map(|v| unsafe { v.read_rm() });
    // SAFETY: as above.
    let bias = p.bias.map(|v| unsafe { v.read_rm() });
    // SAFETY: as above.
    let init = p.init.map(|v| unsafe { v.read_rm() });
    let args = ScanArgs {
        u: &u,
        delta: &delta,
        a: &a,
        b: &b,
        c: &c,
        d_skip: d.as_deref(),
        z: z.as_deref(),
        delta_bias: bias.as_deref(),
        delta_softplus: p.softplus,
        initial_state: init.as_deref(),
    };
    let walk = Walk::forward(s.seqlen);
    // SAFETY: the scratch contract of `ss2d_selective_scan`; disjoint from all tensors.
    let scratch = unsafe { ex.scratch() };
    // SAFETY: outputs are writable, exclusive (contract) and disjoint from every other
    // tensor and the scratch (checked above).
    let mut ob = unsafe { out_v.out_buf(&perm) };
    // SAFETY: as above.
    let mut fb = fin_v.map(|f| unsafe { f.out_buf(&CF) });
    let (o, f, par) = (ob.slice(), fb.as_mut().map(|b| b.slice()), ex.par());
    let r = match scratch {
        Some(sc) => ss2d_std::selective_scan_with_scratch(&shape, &walk, &args, o, f, par, sc),
        None => ss2d_std::selective_scan(&shape, &walk, &args, o, f, par),
    };
    ex.outcome(r)?;
    // SAFETY: as for `out_buf`.
    unsafe { ob.finish(&ex) }?;
    if let Some(fb) = fb {
        // SAFETY: as above.
        unsafe { fb.finish(&ex) }?;
    }
    ex.outcome(Ok::<(), Fail>(()))
}
