//! Throughput of the vector `exp2` and `softplus` at the build's lane width.
use ss2d_core::{LANES, V};
use std::time::Instant;
fn main() {
    let n = 1 << 12;
    let xs: Vec<V> = (0..n).map(|i| V::splat(-(i as f32) * 1e-3)).collect();
    let mut acc = V::splat(0.0);
    let t = Instant::now();
    let reps = 2000;
    for _ in 0..reps {
        for x in &xs {
            acc += ss2d_core::math::exp2(*x);
        }
    }
    let dt = t.elapsed().as_secs_f64();
    println!(
        "exp2: {:.2} G lane-exp/s {:?}",
        (reps * n * LANES) as f64 / dt / 1e9,
        acc.to_array()[0]
    );
    let t = Instant::now();
    for _ in 0..reps {
        for x in &xs {
            acc += ss2d_core::math::softplus(*x);
        }
    }
    let dt = t.elapsed().as_secs_f64();
    println!(
        "softplus: {:.2} G lane/s {:?}",
        (reps * n * LANES) as f64 / dt / 1e9,
        acc.to_array()[0]
    );
}
