//! Single-threaded timing of `ss2d_core::gemm` on the layer's product shapes:
//! `cargo run --release -p ss2d-benches --example gemm -- M K N BLOCK [cl|cf] [reps]`
//! (`M` rows in blocks of `BLOCK` rows, one call each, as the layer's items; `cl`: `A` rows
//! adjacent in memory, `cf`: `A` read through strides from a channel-first `(K, M)` input).
//! Prints the median GFLOP/s (`2 M K N` per run).
fn main() {
    let a = ss2d_benches::size_args(4, "gemm M K N BLOCK [cl|cf|ct|cth] [reps]");
    let (m, k, n, block) = (a[0], a[1], a[2], a[3]);
    let mode = std::env::args().nth(5).unwrap_or_default();
    let cf = mode == "cf";
    let reps: usize = std::env::args().nth(6).map_or(51, |s| s.parse().unwrap());
    let x: Vec<f32> = (0..m * k)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let w: Vec<f32> = (0..k * n)
        .map(|i| ((i * 104_729) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let mut c = vec![0.0f32; m * n];
    // `ct`: channel-last `A`, `C` stored transposed into an image of `m` positions (as the
    // layer's `out_proj` into a channel-first output); `cth`: the same, every block into the
    // same `block`-position output (kept in cache), to separate the output's memory traffic.
    let ct = mode.starts_with("ct");
    let hot = mode == "cth";
    let run = || {
        if ct {
            ss2d_benches::blocked_product_t(m, k, n, block, hot, &x, &w, &mut c)
        } else {
            ss2d_benches::blocked_product(m, k, n, block, cf, &x, &w, &mut c)
        }
    };
    let (med, best) = ss2d_benches::time_runs(reps, run);
    let flop = 2.0 * (m * k * n) as f64;
    println!(
        "M={m} K={k} N={n} block {block} {}: median {:.1} us, {:.1} GFLOP/s (best {:.1}) ({})",
        if cf || ct { &mode } else { "cl" },
        med * 1e6,
        flop / med / 1e9,
        flop / best / 1e9,
        ss2d_core::SimdLevel::current()
    );
}
