//! Single-threaded selective scan at the two shapes (channel-first, bias + softplus + D,
//! grouped B/C), kernel and scalar reference. Throughput is in state updates: one element is
//! one `(b, d, l, n)`, i.e. `B * D * L * N` per scan.
//!
//! `cargo bench -p ss2d-benches --bench scan` (build with the target's `RUSTFLAGS`, e.g.
//! `-C target-cpu=native`, to measure its widest kernel).

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use ss2d_benches::ScanInputs;
use ss2d_core::{reference, scratch_len, selective_scan, Walk};
use ss2d_testsupport::check_close;
use std::hint::black_box;
use std::time::Duration;

/// (batch, dim, seqlen, dstate, groups): VMamba stage-1 sizes with N = 16 (v0) and N = 1 (v2).
const SHAPES: [(usize, usize, usize, usize, usize); 2] =
    [(1, 768, 3136, 16, 4), (1, 384, 3136, 1, 4)];

fn scan(c: &mut Criterion) {
    for (b, d, l, n, g) in SHAPES {
        let inp = ScanInputs::new(b, d, l, n, g);
        let v = inp.shape.validate().expect("shape");
        let args = inp.args();
        let walk = Walk::forward(l);
        let mut scratch = vec![0.0f32; scratch_len(&v)];
        let mut out = vec![0.0f32; b * d * l];
        let id = format!("B{b}_D{d}_L{l}_N{n}_G{g}");
        let elements = (b * d * l * n) as u64;

        // What is timed must be right: the kernel against the f64 reference, once, before any
        // timing (the same 1e-5 x max|ref| bound as the conformance tests).
        selective_scan(&inp.shape, &walk, &args, &mut out, None, &mut scratch).expect("scan");
        let mut want = vec![0.0f64; b * d * l];
        reference::selective_scan::<f64>(&inp.shape, &walk, &args, &mut want, None)
            .expect("reference");
        check_close(&id, &out, &want, 1e-5, 0.0).unwrap_or_else(|m| panic!("{m}"));

        let mut group = c.benchmark_group("selective_scan");
        group.throughput(Throughput::Elements(elements));
        group.bench_function(BenchmarkId::new("kernel", &id), |bench| {
            bench.iter(|| {
                selective_scan(
                    black_box(&inp.shape),
                    &walk,
                    black_box(&args),
                    &mut out,
                    None,
                    &mut scratch,
                )
                .expect("scan");
                black_box(&mut out);
            })
        });
        // The scalar reference takes ~0.1-1 s per scan: few flat samples.
        group.sample_size(10);
        group.sampling_mode(SamplingMode::Flat);
        group.measurement_time(Duration::from_secs(5));
        group.bench_function(BenchmarkId::new("reference", &id), |bench| {
            bench.iter(|| {
                reference::selective_scan::<f32>(
                    black_box(&inp.shape),
                    &walk,
                    black_box(&args),
                    &mut out,
                    None,
                )
                .expect("reference");
                black_box(&mut out);
            })
        });
        group.finish();
    }
}

criterion_group!(benches, scan);
criterion_main!(benches);
