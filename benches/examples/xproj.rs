//! Single-threaded timing of the fused scan's x_proj (`ss2d_std::fused::project_grid`):
//! `cargo run --release -p ss2d-benches --example xproj -- D H W N R [cf|cl] [reps]`.
use ss2d_std::Parallelism;

fn main() {
    let a = ss2d_benches::size_args(5, "xproj D H W N R [cf|cl] [reps]");
    let (d, h, w, n, r) = (a[0], a[1], a[2], a[3], a[4]);
    let cf = std::env::args().nth(6).as_deref() != Some("cl");
    let reps: usize = std::env::args().nth(7).map_or(101, |s| s.parse().unwrap());
    let case = ss2d_benches::Ss2dCase::new(d, h, w, n, r, cf);
    let c4 = 4 * (r + 2 * n);
    let wt = case.weights().x_proj_weight;
    let run = || {
        let p = ss2d_std::fused::project_grid(&case.shape, wt, &case.x, Parallelism::Sequential)
            .unwrap();
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
