//! The reference SS2D scan: the unfused composition with `ss2d_core`'s scalar reference
//! selective scan in place of the kernel.

use ss2d_core::{BcLayout, Error, Layout, ScanArgs, ScanShape, Walk};

use crate::cross::{cross_merge, cross_scan};
use crate::unfused::{a_from_logs, project, Ss2dScanShape, Ss2dScanWeights};
use crate::Parallelism;

/// `cross_scan -> x_proj -> dt_proj -> reference selective scan (B, 4D, L) -> cross_merge`,
/// single-threaded.
pub(super) fn scan(
    shape: &Ss2dScanShape,
    weights: &Ss2dScanWeights<'_>,
    x: &[f32],
    y: &mut [f32],
) -> Result<(), Error> {
    let s = shape.validate(weights)?;
    let seq = Parallelism::Sequential;
    let mut xs = vec![0.0f32; s.seq_len];
    cross_scan(x, shape.cross_dims(), shape.cross_opts(), &mut xs, seq)?;
    let proj = project(shape, weights, &xs, seq)?;
    let a = a_from_logs(weights.a_logs);
    let scan_shape = ScanShape {
        batch: shape.batch,
        dim: 4 * shape.dim,
        seqlen: s.seqlen,
        dstate: shape.dstate,
        b: BcLayout::Grouped(4),
        c: BcLayout::Grouped(4),
        layout: Layout::ChannelFirst,
    };
    let args = ScanArgs {
        u: &xs,
        delta: &proj.dts,
        a: &a,
        b: &proj.bs,
        c: &proj.cs,
        d_skip: Some(weights.ds),
        z: None,
        delta_bias: Some(weights.dt_projs_bias),
        delta_softplus: true,
        initial_state: None,
    };
    let mut ys = vec![0.0f32; s.seq_len];
    ss2d_core::reference::selective_scan::<f32>(
        &scan_shape,
        &Walk::forward(s.seqlen),
        &args,
        &mut ys,
        None,
    )?;
    cross_merge(&ys, shape.cross_dims(), shape.cross_opts(), y, seq)
}
