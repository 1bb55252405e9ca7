//! One or more calls of the unfused SS2D scan (`ss2d_std::unfused::ss2d_scan_unfused`),
//! channel-first, single-threaded: `cargo run --release -p ss2d-benches --example unfused -- D
//! H W N R [reps]` (`reps = 1`: one call, for callgrind).
use ss2d_std::unfused::{Ss2dScanShape, Ss2dScanWeights};
use ss2d_std::Parallelism;

fn main() {
    let a = ss2d_benches::size_args(5, "unfused D H W N R [reps]");
    let (d, h, w, n, r) = (a[0], a[1], a[2], a[3], a[4]);
    let reps: usize = std::env::args().nth(6).map_or(21, |s| s.parse().unwrap());
    let shape = Ss2dScanShape {
        batch: 1,
        dim: d,
        h,
        w,
        dstate: n,
        dt_rank: r,
        mode: Default::default(),
        channel_first: true,
    };
    let val = |i: usize, s: usize| ((i * s) % 1000) as f32 / 1000.0 - 0.5;
    let l = h * w;
    let x: Vec<f32> = (0..d * l).map(|i| val(i, 7919)).collect();
    let xw: Vec<f32> = (0..4 * (r + 2 * n) * d)
        .map(|i| val(i, 104_729) * 0.2)
        .collect();
    let dw: Vec<f32> = (0..4 * d * r).map(|i| val(i, 15_485_863)).collect();
    let db: Vec<f32> = (0..4 * d).map(|i| val(i, 32_452_843) - 3.0).collect();
    let al: Vec<f32> = (0..4 * d * n)
        .map(|i| ((i % n) as f32 + 1.0).ln())
        .collect();
    let ds = vec![1.0f32; 4 * d];
    let wts = Ss2dScanWeights {
        x_proj_weight: &xw,
        dt_projs_weight: &dw,
        dt_projs_bias: &db,
        a_logs: &al,
        ds: &ds,
    };
    let mut y = vec![0.0f32; d * l];
    let mut run = || {
        ss2d_std::unfused::ss2d_scan_unfused(&shape, &wts, &x, &mut y, Parallelism::Sequential)
            .unwrap();
    };
    if reps <= 1 {
        run();
        return;
    }
    let (med, _) = ss2d_benches::time_runs(reps, run);
    println!(
        "unfused D={d} {h}x{w} N={n} R={r} cf: median {:.1} us",
        med * 1e6
    );
}
