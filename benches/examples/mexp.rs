//! Throughput of the vector `exp2`, `exp`, `softplus` and `silu` (`ss2d_core::math::map`) at
//! every SIMD level this CPU runs: the best of 300 trials of 20 calls on 4096 elements (in L1),
//! each call on a fresh copy of the input, less the best time of the copy alone (a `memcpy` of
//! that size costs more than the function on some machines, so it is measured and taken out).
use ss2d_core::math::{map_at, MathFn};
use ss2d_core::SimdLevel;
use std::hint::black_box;
use std::time::Instant;

/// The best per-call time of `f` over 300 trials of 20 calls.
fn best(mut f: impl FnMut()) -> f64 {
    let mut b = f64::MAX;
    for _ in 0..300 {
        let t = Instant::now();
        for _ in 0..20 {
            f();
        }
        b = b.min(t.elapsed().as_secs_f64() / 20.0);
    }
    b
}

fn main() {
    let n = 1 << 12;
    // 2 down to about -14: no overflow, no subnormal results.
    let xs: Vec<f32> = (0..n).map(|i| -(i as f32) * 4e-3 + 2.0).collect();
    let mut buf = xs.clone();
    for level in SimdLevel::available() {
        let copy = best(|| {
            buf.copy_from_slice(&xs);
            black_box(&mut buf);
        });
        for (name, f) in [
            ("exp2", MathFn::Exp2),
            ("exp", MathFn::Exp),
            ("softplus", MathFn::Softplus),
            ("silu", MathFn::Silu),
        ] {
            let t = best(|| {
                buf.copy_from_slice(&xs);
                map_at(level, f, black_box(&mut buf)).expect("available level");
            });
            let per = (t - copy).max(0.0) / n as f64;
            println!(
                "{level:>10} {name:>9}: {:.2} G elements/s, {:.2} ns per 8 (the copy alone: {:.2} ns per 8)",
                1e-9 / per,
                per * 8e9,
                copy / n as f64 * 8e9
            );
        }
    }
}
