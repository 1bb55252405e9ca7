//! Throughput of the vector `exp2`, `exp`, `softplus` and `silu` at every SIMD level this CPU runs.
use ss2d_core::math::{map_at, MathFn};
use ss2d_core::SimdLevel;
use std::hint::black_box;
use std::time::Instant;

fn main() {
    let n = 1 << 14;
    let xs: Vec<f32> = (0..n).map(|i| -(i as f32) * 1e-3).collect();
    let reps = 2000;
    for level in SimdLevel::available() {
        for (name, f) in [
            ("exp2", MathFn::Exp2),
            ("exp", MathFn::Exp),
            ("softplus", MathFn::Softplus),
            ("silu", MathFn::Silu),
        ] {
            let mut buf = xs.clone();
            let t = Instant::now();
            for _ in 0..reps {
                buf.copy_from_slice(&xs);
                map_at(level, f, black_box(&mut buf)).expect("available level");
            }
            let dt = t.elapsed().as_secs_f64();
            println!(
                "{level:>10} {name:>9}: {:.2} G elements/s (incl. a copy) {}",
                (reps * n) as f64 / dt / 1e9,
                black_box(buf[n / 2])
            );
        }
    }
}
