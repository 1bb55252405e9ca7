//! One or more calls of the unfused SS2D scan (`ss2d_std::unfused::ss2d_scan_unfused`),
//! channel-first, single-threaded: `cargo run --release -p ss2d-benches --example unfused -- D
//! H W N R [reps]` (`reps = 1`: one call, for callgrind).
use ss2d_std::Parallelism;

fn main() {
    let a = ss2d_benches::size_args(5, "unfused D H W N R [reps]");
    let (d, h, w, n, r) = (a[0], a[1], a[2], a[3], a[4]);
    let reps: usize = std::env::args().nth(6).map_or(21, |s| s.parse().unwrap());
    let case = ss2d_benches::Ss2dCase::new(d, h, w, n, r, true);
    let (shape, x, wts) = (&case.shape, &case.x, case.weights());
    let l = h * w;
    let mut y = vec![0.0f32; d * l];
    let mut run = || {
        ss2d_std::unfused::ss2d_scan_unfused(shape, &wts, x, &mut y, Parallelism::Sequential)
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
