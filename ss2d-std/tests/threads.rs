//! The library pool is bounded: one pool per process, never more threads than the largest
//! request (capped at `max_threads()`), no growth with the number of distinct thread counts.
//! Alone in its test binary, so that no other test's threads are counted.
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use ss2d_core::{BcLayout, Layout, ScanArgs, ScanShape, Walk};
use ss2d_std::{library_pool_threads, max_threads, selective_scan, Parallelism};

/// Threads of this process.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .count()
}

/// Waits (up to 5 s) for the thread count to fall to `limit`: a replaced pool's threads exit
/// asynchronously after the calls on it returned. Returns the last count.
fn settle(limit: usize) -> usize {
    let start = Instant::now();
    loop {
        let n = threads();
        if n <= limit || start.elapsed() > Duration::from_secs(5) {
            return n;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn one_bounded_pool_whatever_the_thread_counts() {
    let (b, d, l, n) = (2usize, 64usize, 200usize, 8usize);
    let v = |len: usize, s: f32| -> Vec<f32> {
        (0..len)
            .map(|i| ((i as f32 * 0.37 + s).sin()) * 0.5)
            .collect()
    };
    let (u, delta) = (v(b * d * l, 0.1), v(b * d * l, 0.2));
    let a: Vec<f32> = v(d * n, 0.3).iter().map(|x| -1.0 - x.abs()).collect();
    let (bm, cm) = (v(b * n * l, 0.4), v(b * n * l, 0.5));
    let shape = ScanShape {
        batch: b,
        dim: d,
        seqlen: l,
        dstate: n,
        b: BcLayout::Grouped(1),
        c: BcLayout::Grouped(1),
        layout: Layout::ChannelFirst,
    };
    let args = ScanArgs {
        u: &u,
        delta: &delta,
        a: &a,
        b: &bm,
        c: &cm,
        d_skip: None,
        z: None,
        delta_bias: None,
        delta_softplus: true,
        initial_state: None,
    };
    let walk = Walk::forward(l);
    let run = |par: Parallelism<'_>| {
        let mut out = vec![f32::NAN; b * d * l];
        selective_scan(&shape, &walk, &args, &mut out, None, par).unwrap();
        out.iter().map(|x| x.to_bits()).collect::<Vec<u32>>()
    };
    let want = run(Parallelism::Sequential);
    let base = threads();
    assert_eq!(library_pool_threads(), 0, "no pool before the first call");
    let cap = max_threads();
    let (mut peak, mut largest) = (base, 0);
    for round in 0..2 {
        for t in 2..=32usize {
            assert_eq!(run(Parallelism::Threads(t)), want, "{t} threads");
            peak = peak.max(threads());
            largest = largest.max(t.min(cap));
            assert_eq!(
                library_pool_threads(),
                largest,
                "after a call with {t} threads"
            );
        }
        let limit = base + 32.min(cap);
        let now = settle(limit);
        println!(
            "round {round}: {base} threads before, {now} after calls with 2..=32 threads \
             (peak {peak}), cap {cap}, pool {}",
            library_pool_threads()
        );
        assert!(now <= limit, "{now} threads > {limit}");
        assert_eq!(library_pool_threads(), 32.min(cap));
    }
    // A huge request is clamped to the cap: no pool larger than max_threads().
    assert_eq!(run(Parallelism::Threads(100_000)), want);
    assert_eq!(Parallelism::Threads(100_000).threads(), cap);
    assert_eq!(library_pool_threads(), cap.min(100_000));
    let now = settle(base + cap);
    println!("after a request for 100000 threads: {now} threads (cap {cap})");
    assert!(now <= base + cap, "{now} threads > {base} + {cap}");
}
