//! The cost of one call on the library pool: `cargo run --release -p ss2d-benches --example
//! pool -- [threads]` times an empty call of `threads` items (default 2) after idle gaps of 0
//! to 1000 us (median and 90th percentile of 200 calls each).
use ss2d_std::Parallelism;
use std::time::Instant;

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .map_or(2, |s| s.parse().expect("threads: a number"));
    let par = Parallelism::Threads(threads);
    for gap_us in [0u128, 20, 100, 1000] {
        let mut v = Vec::with_capacity(200);
        for _ in 0..200 {
            let idle = Instant::now();
            while idle.elapsed().as_micros() < gap_us {
                std::hint::spin_loop();
            }
            let t0 = Instant::now();
            par.for_each((0..threads).collect(), |i: usize| {
                std::hint::black_box(i);
            });
            v.push(t0.elapsed().as_secs_f64() * 1e6);
        }
        v.sort_by(f64::total_cmp);
        println!(
            "{} threads, gap {gap_us} us: empty call median {:.1} us, p90 {:.1} us",
            par.threads(),
            v[100],
            v[180]
        );
    }
}
