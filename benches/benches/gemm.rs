//! Single-threaded `ss2d_core::gemm` on the layer's product shapes, called as the layer calls
//! it (blocks of 256 rows of `A`): VMamba stage-1 `in_proj` and `out_proj` (d_model 96,
//! d_inner 96 and 192, 56x56 positions), with `A`'s rows contiguous (`cl`: `out_proj`, a
//! channel-last input) or read through strides from a channel-first input (`cf`), and a width
//! that is not a multiple of the register tile (128: VMamba-B's stage 1); and `out_proj` stored
//! transposed into a channel-first output (`product_transposed`). Throughput is in
//! flops (`2 M K N` per product); compare with the FMA peak that `ss2d bench` prints.
//!
//! `cargo bench -p ss2d-benches --bench gemm`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ss2d_benches::blocked_product;
use std::hint::black_box;

/// Rows of `A` per call (the layer's channel-last block).
const BLOCK: usize = 256;

/// (M, K, N, channel-first A).
const SHAPES: [(usize, usize, usize, bool); 5] = [
    (3136, 96, 96, true),
    (3136, 96, 96, false),
    (3136, 192, 96, false),
    (3136, 96, 384, false),
    (3136, 128, 128, false),
];

fn gemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm");
    for (m, k, n, cf) in SHAPES {
        let val = |i: usize, s: usize| ((i * s) % 1000) as f32 / 1000.0 - 0.5;
        let x: Vec<f32> = (0..m * k).map(|i| val(i, 7919)).collect();
        let w: Vec<f32> = (0..k * n).map(|i| val(i, 104_729)).collect();
        let mut out = vec![0.0f32; m * n];
        // What is timed must be right: a few elements against an f64 dot product.
        blocked_product(m, k, n, BLOCK, cf, &x, &w, &mut out);
        for (i, j) in [(0, 0), (m / 2, n / 3), (m - 1, n - 1)] {
            let a = |q: usize| if cf { x[q * m + i] } else { x[i * k + q] };
            let want: f64 = (0..k).map(|q| a(q) as f64 * w[q * n + j] as f64).sum();
            let got = out[i * n + j] as f64;
            assert!(
                (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                "gemm {m}x{k}x{n} at ({i}, {j}): {got} vs {want}"
            );
        }
        let id = format!("M{m}_K{k}_N{n}_{}", if cf { "cf" } else { "cl" });
        group.throughput(Throughput::Elements((2 * m * k * n) as u64));
        group.bench_function(BenchmarkId::new("product", &id), |bench| {
            bench.iter(|| {
                blocked_product(m, k, n, BLOCK, cf, black_box(&x), black_box(&w), &mut out);
                black_box(&mut out);
            })
        });
    }
    // `out_proj` into a channel-first output (`Product::run_transposed`, as the layer calls
    // it: blocks of 1024 positions, `C (N, M)` with column stride M).
    let (m, k, n, block) = (3136, 96, 96, 1024);
    let val = |i: usize, s: usize| ((i * s) % 1000) as f32 / 1000.0 - 0.5;
    let x: Vec<f32> = (0..m * k).map(|i| val(i, 7919)).collect();
    let w: Vec<f32> = (0..k * n).map(|i| val(i, 104_729)).collect();
    let mut out = vec![0.0f32; m * n];
    let run = |x: &[f32], w: &[f32], out: &mut [f32]| {
        ss2d_benches::blocked_product_t(m, k, n, block, false, x, w, out)
    };
    run(&x, &w, &mut out);
    for (i, j) in [(0, 0), (m / 2, n / 3), (m - 1, n - 1)] {
        let want: f64 = (0..k)
            .map(|q| x[i * k + q] as f64 * w[q * n + j] as f64)
            .sum();
        let got = out[j * m + i] as f64;
        assert!(
            (got - want).abs() <= 1e-5 * want.abs().max(1.0),
            "gemm transposed at ({i}, {j}): {got} vs {want}"
        );
    }
    group.throughput(Throughput::Elements((2 * m * k * n) as u64));
    let id = format!("M{m}_K{k}_N{n}_cl");
    group.bench_function(BenchmarkId::new("product_transposed", &id), |bench| {
        bench.iter(|| {
            run(black_box(&x), black_box(&w), &mut out);
            black_box(&mut out);
        })
    });
    group.finish();
}

criterion_group!(benches, gemm);
criterion_main!(benches);
