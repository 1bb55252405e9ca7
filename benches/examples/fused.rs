//! Single-threaded timing of the fused SS2D scan (`ss2d_std::fused::ss2d_scan`), channel-last:
//! `cargo run --release -p ss2d-benches --example fused -- D H W N R [reps]` (`reps = 1`: one
//! call, for instruction counting under callgrind).
use ss2d_std::unfused::{Ss2dScanShape, Ss2dScanWeights};
use ss2d_std::Parallelism;

fn main() {
    let a = ss2d_benches::size_args(5, "fused D H W N R [reps]");
    let (d, h, w, n, r) = (a[0], a[1], a[2], a[3], a[4]);
    let reps: usize = std::env::args().nth(6).map_or(51, |s| s.parse().unwrap());
    let shape = Ss2dScanShape {
        batch: 1,
        dim: d,
        h,
        w,
        dstate: n,
        dt_rank: r,
        mode: Default::default(),
        channel_first: false,
    };
    let val = |i: usize, s: usize| ((i * s) % 1000) as f32 / 1000.0 - 0.5;
    let l = h * w;
    let x: Vec<f32> = (0..d * l).map(|i| val(i, 7919)).collect();
    let x_proj_weight: Vec<f32> = (0..4 * (r + 2 * n) * d)
        .map(|i| val(i, 104_729) * 0.2)
        .collect();
    let dt_projs_weight: Vec<f32> = (0..4 * d * r).map(|i| val(i, 15_485_863)).collect();
    let dt_projs_bias: Vec<f32> = (0..4 * d).map(|i| val(i, 32_452_843) - 3.0).collect();
    let a_logs: Vec<f32> = (0..4 * d * n)
        .map(|i| ((i % n) as f32 + 1.0).ln())
        .collect();
    let ds = vec![1.0f32; 4 * d];
    let wts = Ss2dScanWeights {
        x_proj_weight: &x_proj_weight,
        dt_projs_weight: &dt_projs_weight,
        dt_projs_bias: &dt_projs_bias,
        a_logs: &a_logs,
        ds: &ds,
    };
    let mut y = vec![0.0f32; d * l];
    let mut run = || {
        ss2d_std::fused::ss2d_scan(&shape, &wts, &x, &mut y, Parallelism::Sequential).unwrap();
    };
    if reps <= 1 {
        run();
        println!("one call");
        return;
    }
    let (med, best) = ss2d_benches::time_runs(reps, run);
    let el = (4 * d * l * n) as f64;
    println!(
        "fused D={d} {h}x{w} N={n} R={r} cl: median {:.1} us (best {:.1}), {:.3} G el/s",
        med * 1e6,
        best * 1e6,
        el / med / 1e9
    );
}
