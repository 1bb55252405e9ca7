//! Single-threaded timing of the fused SS2D scan (`ss2d_std::fused::ss2d_scan`), channel-last:
//! `cargo run --release -p ss2d-benches --example fused -- D H W N R [reps]` (`reps = 1`: one
//! call, for instruction counting under callgrind).
use ss2d_std::Parallelism;

fn main() {
    let a = ss2d_benches::size_args(5, "fused D H W N R [reps]");
    let (d, h, w, n, r) = (a[0], a[1], a[2], a[3], a[4]);
    let reps: usize = std::env::args().nth(6).map_or(51, |s| s.parse().unwrap());
    let case = ss2d_benches::Ss2dCase::new(d, h, w, n, r, false);
    let (shape, x, wts) = (&case.shape, &case.x, case.weights());
    let l = h * w;
    let mut y = vec![0.0f32; d * l];
    let mut run = || {
        ss2d_std::fused::ss2d_scan(shape, &wts, x, &mut y, Parallelism::Sequential).unwrap();
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
