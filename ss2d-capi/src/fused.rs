//! `ss2d_fused_scan`: VMamba's SS2D scan (cross-scan, x_proj, dt_proj, selective scan,
//! cross-merge) fused, over the C ABI.

use std::ffi::c_int;

use ss2d_core::fused::{combine, CrossMode, FusedPlan, FusedShape, FusedSplit, FusedWeights};
use ss2d_core::Layout;
use ss2d_std::cross::ScanMode;
use ss2d_std::unfused::Ss2dScanShape;

use crate::exec::{read_exec, ss2d_exec, Exec};
use crate::tensor::{check_disjoint, groups, input, output, ss2d_const_tensor, ss2d_tensor, View};
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

/// Positions per projection block: the same blocking as `ss2d_std::fused::project_grid`, so
/// the results are bitwise those of `ss2d_std::fused::ss2d_scan` (tested).
const PROJ_BLOCK: usize = 256;

/// Elements per block of the combine pass.
const COMBINE_BLOCK: usize = 1 << 14;

fn core_mode(m: ScanMode) -> CrossMode {
    match m {
        ScanMode::Cross2d => CrossMode::Cross2d,
        ScanMode::Unidi => CrossMode::Unidi,
        ScanMode::Bidi => CrossMode::Bidi,
    }
}

fn fused_shape(s: &Ss2dScanShape) -> FusedShape {
    FusedShape {
        batch: s.batch,
        dim: s.dim,
        h: s.h,
        w: s.w,
        dstate: s.dstate,
        dt_rank: s.dt_rank,
        mode: core_mode(s.mode),
        layout: if s.channel_first {
            Layout::ChannelFirst
        } else {
            Layout::ChannelLast
        },
    }
}

/// How a fused call is cut and how much scratch it needs.
struct Sizing {
    split: FusedSplit,
    count: usize,
    per: usize,
    proj_len: usize,
    out_len: usize,
    total: usize,
}

fn overflow() -> Fail {
    Fail::new(ss2d_status::SS2D_BAD_SHAPE, "scratch size overflows size_t")
}

fn sizing(s: &Ss2dScanShape, ex: &Exec) -> Res<Sizing> {
    let sz = s.sizes()?;
    let c4 = 4 * sz.proj_rows;
    let proj_len = sz
        .x_len
        .checked_div(s.dim.max(1))
        .and_then(|bl| bl.checked_mul(c4))
        .ok_or_else(overflow)?;
    let out_len = sz.x_len;
    // Per-item scratch does not depend on the batch: ask a batch-0 plan.
    let (d4, r, n) = (4 * s.dim, s.dt_rank, s.dstate);
    let (w1, w2, w3, w4) = (
        vec![0.0f32; d4 * r],
        vec![0.0f32; d4],
        vec![0.0f32; d4 * n],
        vec![0.0f32; d4],
    );
    let fw = FusedWeights {
        dt_projs_weight: &w1,
        dt_projs_bias: &w2,
        a_logs: &w3,
        ds: &w4,
    };
    let plan0 = FusedPlan::new(
        &FusedShape {
            batch: 0,
            ..fused_shape(s)
        },
        fw,
        &[],
        &[],
    )?;
    let lanes = plan0.level().lanes();
    let units = |sp: FusedSplit| s.batch * s.dim.div_ceil(lanes) * sp.buffers();
    let width = ex.width();
    let split = if ex.is_seq() || units(FusedSplit::All) >= 2 * width {
        FusedSplit::All
    } else if units(FusedSplit::Pairs) >= 2 * width {
        FusedSplit::Pairs
    } else {
        FusedSplit::Dirs
    };
    let count = ex.items_for(units(split));
    let per = plan0.scratch_len(split);
    let total = (|| {
        ex.slots(count)
            .checked_mul(per)?
            .checked_add(proj_len)?
            .checked_add((split.buffers() - 1).checked_mul(out_len)?)
    })()
    .ok_or_else(overflow)?;
    Ok(Sizing {
        split,
        count,
        per,
        proj_len,
        out_len,
        total,
    })
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
        let mut ex = unsafe { read_exec(exec) }?;
        ex.scratch = None;
        let total = sizing(&p.shape, &ex)?.total;
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
    let s = Ss2dScanShape {
        channel_first: false,
        ..s0
    };
    let sz = sizing(&s, &ex)?;
    if sz.out_len == 0 {
        return Ok(());
    }

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

    // SAFETY: the scratch contract; disjoint from every tensor (checked).
    let mut scratch = unsafe { ex.scratch(sz.total) }?;
    let (proj, rest) = scratch.slice().split_at_mut(sz.proj_len);
    let (extra, item_scratch) = rest.split_at_mut((sz.split.buffers() - 1) * sz.out_len);

    // Round 1: proj = x_proj(x) on the unpermuted grid, (B, L, 4C), in fixed blocks.
    let (d, l) = (s.dim, s.h * s.w);
    let c4 = sz.proj_len / (s.batch * l);
    let wt = ss2d_gemm::MatRef::row_major(&xw, c4, d).t();
    let blocks_per_b = l.div_ceil(PROJ_BLOCK);
    let blocks: Vec<(usize, &mut [f32])> = proj
        .chunks_mut(l * c4)
        .flat_map(|pb| pb.chunks_mut(PROJ_BLOCK * c4))
        .enumerate()
        .collect();
    let nblocks = blocks.len();
    let x_ref: &[f32] = &x;
    let project = |i: usize, dst: &mut [f32]| -> Res<()> {
        let (b, blk) = (i / blocks_per_b, i % blocks_per_b);
        let l0 = blk * PROJ_BLOCK;
        let rows = dst.len() / c4;
        let (off, rs, cs) = if s.channel_first {
            (b * d * l + l0, 1, l)
        } else {
            (b * l * d + l0 * d, d, 1)
        };
        let xv = ss2d_gemm::MatRef {
            data: &x_ref[off..],
            rows,
            cols: d,
            row_stride: rs,
            col_stride: cs,
        };
        let dv = ss2d_gemm::MatMut::row_major(dst, rows, c4);
        ss2d_gemm::matmul(dv, xv, wt).map_err(|e| {
            Fail::new(
                ss2d_status::SS2D_INTERNAL,
                format!("x_proj product refused its views: {e}"),
            )
        })
    };
    ex.run_items(
        groups(blocks, ex.items_for(nblocks)),
        &mut [],
        0,
        &|g: Vec<(usize, &mut [f32])>, _| {
            for (i, dst) in g {
                project(i, dst)?;
            }
            Ok(())
        },
    )?;

    // Round 2: the fused scan items.
    let fw = FusedWeights {
        dt_projs_weight: &dtw,
        dt_projs_bias: &dtb,
        a_logs: &a_logs,
        ds: &ds,
    };
    let fshape = fused_shape(&s);
    let plan = FusedPlan::new(&fshape, fw, &x, proj)?;
    // SAFETY: the output is writable, exclusive (contract) and disjoint from the inputs and
    // the scratch (checked).
    let mut yb = unsafe { y_v.out_buf(perm) };
    {
        let mut bufs: Vec<&mut [f32]> = Vec::with_capacity(4);
        bufs.push(yb.slice());
        bufs.extend(extra.chunks_mut(sz.out_len));
        {
            let mut items = plan.split(&mut bufs, sz.split, sz.count)?;
            let items: Vec<_> = items.items().collect();
            ex.run_items(items, item_scratch, sz.per, &|it, sc| {
                it.run(sc).map_err(Fail::from)
            })?;
        }
        // Round 3: merge the partial buffers in the fixed order.
        if sz.split != FusedSplit::All {
            let nb = sz.out_len.div_ceil(COMBINE_BLOCK);
            let mut per_block: Vec<Vec<&mut [f32]>> = (0..nb).map(|_| Vec::new()).collect();
            for buf in bufs.iter_mut() {
                for (i, ch) in buf.chunks_mut(COMBINE_BLOCK).enumerate() {
                    per_block[i].push(ch);
                }
            }
            let split = sz.split;
            ex.run_items(
                groups(per_block, ex.items_for(nb)),
                &mut [],
                0,
                &|g: Vec<Vec<&mut [f32]>>, _| {
                    for mut b in g {
                        let len = b.first().map_or(0, |c| c.len());
                        combine(split, &mut b, 0..len);
                    }
                    Ok(())
                },
            )?;
        }
    }
    // SAFETY: as for `out_buf`.
    unsafe { yb.finish(&ex) }?;
    Ok(())
}
