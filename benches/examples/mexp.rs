//! Throughput of the vector `exp2`, `exp`, `softplus` and `silu` (`ss2d_core::math::map`) at
//! every SIMD level this CPU runs: the best of 6000 timed calls (`ss2d_benches::time_runs`) on
//! 4096 elements (in L1), each on a fresh copy of the input, less the best time of the copy
//! alone (a `memcpy` of that size costs more than the function on some machines, so it is
//! measured and taken out, and with it the timer's own cost).
use ss2d_core::math::{map_at, MathFn};
use ss2d_core::SimdLevel;
use std::hint::black_box;

/// The best time of one call of `f`.
fn best(f: impl FnMut()) -> f64 {
    ss2d_benches::time_runs(6000, f).1
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
