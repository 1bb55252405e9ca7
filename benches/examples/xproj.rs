//! Single-threaded timing of the fused scan's x_proj (`ss2d_std::fused::project_grid`):
//! `cargo run --release -p ss2d-benches --example xproj -- D H W N R [cf|cl] [reps]`.
use ss2d_std::unfused::Ss2dScanShape;
use ss2d_std::Parallelism;

fn main() {
    let a = ss2d_benches::size_args(5, "xproj D H W N R [cf|cl] [reps]");
    let (d, h, w, n, r) = (a[0], a[1], a[2], a[3], a[4]);
    let cf = std::env::args().nth(6).as_deref() != Some("cl");
    let reps: usize = std::env::args().nth(7).map_or(101, |s| s.parse().unwrap());
    let shape = Ss2dScanShape {
        batch: 1,
        dim: d,
        h,
        w,
        dstate: n,
        dt_rank: r,
        mode: Default::default(),
        channel_first: cf,
    };
    let c4 = 4 * (r + 2 * n);
    let x: Vec<f32> = (0..d * h * w)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let wt: Vec<f32> = (0..c4 * d)
        .map(|i| ((i * 104_729) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let run = || {
        let p = ss2d_std::fused::project_grid(&shape, &wt, &x, Parallelism::Sequential).unwrap();
        std::hint::black_box(&p);
    };
    let (med, _) = ss2d_benches::time_runs(reps, run);
    let flop = 2.0 * (h * w * d * c4) as f64;
    println!(
        "x_proj D={d} {h}x{w} 4C={c4} {}: median {:.1} us, {:.1} GFLOP/s",
        if cf { "cf" } else { "cl" },
        med * 1e6,
        flop / med / 1e9
    );
}
