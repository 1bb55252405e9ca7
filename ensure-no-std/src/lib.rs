//! `#![no_std]` proof for `ss2d-core`: a staticlib with its own `#[panic_handler]` that links
//! ss2d-core and calls its scans. If anything in ss2d-core's dependency graph links `std`, the
//! build fails with `error[E0152]: found duplicate lang item `panic_impl``. `.ci/no_std.sh`
//! builds it (and checks that the `leak-std` feature, which links std on purpose, fails).
#![no_std]
#![forbid(unsafe_op_in_unsafe_fn)]

#[cfg(feature = "leak-std")]
extern crate std;

use core::panic::PanicInfo;

use ss2d_core::fused::{CrossMode, FusedPlan, FusedShape, FusedWeights};
use ss2d_core::{reference, BcLayout, Layout, ScanArgs, ScanShape, SimdLevel, Walk};

#[panic_handler]
fn panic(_: &PanicInfo<'_>) -> ! {
    loop {}
}

/// Runs a tiny 1D scan (kernel and reference) and a tiny fused 2D scan on stack buffers.
/// Returns 0 when all succeed and the kernel matches the reference, a non-zero code otherwise.
#[no_mangle]
pub extern "C" fn ss2d_no_std_smoke() -> i32 {
    const D: usize = 3;
    const L: usize = 4;
    const N: usize = 2;
    let shape = ScanShape {
        batch: 1,
        dim: D,
        seqlen: L,
        dstate: N,
        b: BcLayout::Constant,
        c: BcLayout::Constant,
        layout: Layout::ChannelFirst,
    };
    let u = [0.5f32; D * L];
    let delta = [0.1f32; D * L];
    let a = [-1.0f32; D * N];
    let bc = [1.0f32; D * N];
    let args = ScanArgs {
        u: &u,
        delta: &delta,
        a: &a,
        b: &bc,
        c: &bc,
        delta_softplus: true,
        ..ScanArgs::default()
    };
    let mut out = [0.0f32; D * L];
    let mut want = [0.0f32; D * L];
    let mut scratch = [0.0f32; 4096];
    let walk = Walk::forward(L);
    let Ok(v) = shape.validate() else { return 1 };
    if ss2d_core::scratch_len(&v) > scratch.len() {
        return 2;
    }
    if ss2d_core::selective_scan(&shape, &walk, &args, &mut out, None, &mut scratch).is_err() {
        return 3;
    }
    if reference::selective_scan::<f32>(&shape, &walk, &args, &mut want, None).is_err() {
        return 4;
    }
    for (o, w) in out.iter().zip(&want) {
        let close = (o - w).abs() <= 1e-5 * (1.0 + w.abs());
        if !close {
            return 5;
        }
    }

    // The fused 2D scan on a 2x2 grid.
    let fs = FusedShape {
        batch: 1,
        dim: D,
        h: 2,
        w: 2,
        dstate: N,
        dt_rank: 1,
        mode: CrossMode::Cross2d,
        layout: Layout::ChannelFirst,
    };
    let x = [0.25f32; D * 4];
    let proj = [0.5f32; 4 * 4 * (1 + 2 * N)];
    let w1 = [0.1f32; 4 * D];
    let weights = FusedWeights {
        dt_projs_weight: &w1,
        dt_projs_bias: &w1,
        a_logs: &w1,
        ds: &w1,
    };
    let Ok(plan) = FusedPlan::new(&fs, weights, &x, &proj) else {
        return 6;
    };
    let mut y = [0.0f32; D * 4];
    let split = ss2d_core::fused::FusedSplit::All;
    if plan.scratch_len(split) > scratch.len() || plan.run(&mut y, &mut scratch).is_err() {
        return 7;
    }
    if y.iter().any(|v| !v.is_finite()) {
        return 8;
    }
    // The level is a compile-time constant; any value is fine here.
    let _ = SimdLevel::compiled();
    0
}
