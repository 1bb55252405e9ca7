//! Cross-scan / cross-merge: golden data from VMamba's own `cross_scan_fn` / `cross_merge_fn`,
//! the index table of docs/semantics.md section 4, adjointness and thread-count determinism.

use std::sync::OnceLock;

use proptest::prelude::*;
use ss2d_core::Error;
use ss2d_std::cross::{
    cross_merge, cross_merge_output_len, cross_scan, cross_scan_input_len, cross_scan_output_len,
    CrossDims, CrossOpts, ScanMode,
};
use ss2d_std::{Parallelism, ScopedThreads};
use ss2d_testsupport::{bits, check_close, golden_cases, Golden, Lcg};

fn pool(n: usize) -> &'static rayon::ThreadPool {
    static POOLS: OnceLock<Vec<rayon::ThreadPool>> = OnceLock::new();
    let pools = POOLS.get_or_init(|| {
        [1, 2, 3, 8]
            .iter()
            .map(|&n| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .unwrap()
            })
            .collect()
    });
    &pools[[1, 2, 3, 8].iter().position(|&m| m == n).unwrap()]
}

#[test]
fn golden_cross_scan_and_merge() {
    let files = golden_cases("cross_scan");
    let mut n = 0;
    for path in &files {
        let g = Golden::load(path);
        if g.meta.get("kind").map(String::as_str) != Some("cross_scan") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let dims = CrossDims {
            batch: g.meta_usize("Bsz"),
            channels: g.meta_usize("C"),
            h: g.meta_usize("H"),
            w: g.meta_usize("W"),
        };
        let opts = CrossOpts {
            mode: ScanMode::from_scans(g.meta("scans").parse().unwrap()).unwrap(),
            in_channel_first: g.meta_bool("in_channel_first"),
            out_channel_first: g.meta_bool("out_channel_first"),
            one_by_one: g.meta_bool("one_by_one"),
        };
        let (x, xs_ref, ys, y_ref) = (g.tensor("x"), g.tensor("xs"), g.tensor("ys"), g.tensor("y"));
        assert_eq!(x.len(), cross_scan_input_len(dims, opts).unwrap(), "{name}");
        for par in [
            Parallelism::Sequential,
            Parallelism::Pool(pool(3)),
            Parallelism::Threads(2),
        ] {
            let mut xs = vec![f32::NAN; cross_scan_output_len(dims, opts).unwrap()];
            cross_scan(x, dims, opts, &mut xs, par).unwrap();
            assert_eq!(bits(&xs), bits(xs_ref), "{name}: xs not bitwise equal");

            let mut y = vec![f32::NAN; cross_merge_output_len(dims, opts).unwrap()];
            cross_merge(ys, dims, opts, &mut y, par).unwrap();
            assert_eq!(y.len(), y_ref.len(), "{name}");
            // Within 1e-6 x max(1, max|ref|), then (stricter) bitwise.
            check_close(&format!("{name}: merge"), &y, y_ref, 1e-6, 1e-6)
                .unwrap_or_else(|m| panic!("{m}"));
            // Upstream's order of additions is reproduced exactly (plain IEEE f32 adds).
            assert_eq!(bits(&y), bits(y_ref), "{name}: merge not bitwise equal");
        }
        n += 1;
    }
    assert_eq!(n, 17, "expected 17 golden cross-scan cases");
}

// ---- index table (docs/semantics.md section 4), written independently of the implementation ----

/// Scan position of pixel (h, w) in direction k.
fn table_pos(mode: ScanMode, k: usize, h: usize, w: usize, hh: usize, ww: usize) -> usize {
    let l = hh * ww;
    let p = h * ww + w;
    let q = w * hh + h;
    match (mode, k) {
        (ScanMode::Cross2d, 0) => p,
        (ScanMode::Cross2d, 1) => q,
        (ScanMode::Cross2d, 2) => l - 1 - p,
        (ScanMode::Cross2d, _) => l - 1 - q,
        (ScanMode::Unidi, _) => p,
        (ScanMode::Bidi, 0 | 1) => p,
        (ScanMode::Bidi, _) => l - 1 - p,
    }
}

/// Offset of (b, k, c, s) on the sequence side.
fn seq_index(cf: bool, d: CrossDims, b: usize, k: usize, c: usize, s: usize) -> usize {
    let l = d.h * d.w;
    if cf {
        ((b * 4 + k) * d.channels + c) * l + s
    } else {
        ((b * l + s) * 4 + k) * d.channels + c
    }
}

/// Offset of (b, k, c, p) on the 2D side (k ignored unless one-by-one).
fn plane_index(cf: bool, obo: bool, d: CrossDims, b: usize, k: usize, c: usize, p: usize) -> usize {
    let l = d.h * d.w;
    match (cf, obo) {
        (true, false) => (b * d.channels + c) * l + p,
        (false, false) => (b * l + p) * d.channels + c,
        (true, true) => ((b * 4 + k) * d.channels + c) * l + p,
        (false, true) => ((b * l + p) * 4 + k) * d.channels + c,
    }
}

fn arb_case() -> impl Strategy<Value = (CrossDims, CrossOpts)> {
    (
        1usize..=3,
        1usize..=5,
        1usize..=7,
        1usize..=7,
        0i64..3,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(batch, channels, h, w, scans, icf, ocf, obo)| {
            (
                CrossDims {
                    batch,
                    channels,
                    h,
                    w,
                },
                CrossOpts {
                    mode: ScanMode::from_scans(scans).unwrap(),
                    in_channel_first: icf,
                    out_channel_first: ocf,
                    one_by_one: obo,
                },
            )
        })
}

fn data(n: usize, seed: u64) -> Vec<f32> {
    Lcg::new(seed).fill(n, -1.0, 1.0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn scan_follows_index_table((d, o) in arb_case(), seed in any::<u64>()) {
        let x = data(cross_scan_input_len(d, o).unwrap(), seed);
        let mut xs = vec![f32::NAN; cross_scan_output_len(d, o).unwrap()];
        cross_scan(&x, d, o, &mut xs, Parallelism::Sequential).unwrap();
        let mut hit = vec![0u8; xs.len()];
        for b in 0..d.batch {
            for k in 0..4 {
                for c in 0..d.channels {
                    for h in 0..d.h {
                        for w in 0..d.w {
                            let s = table_pos(o.mode, k, h, w, d.h, d.w);
                            let i = seq_index(o.out_channel_first, d, b, k, c, s);
                            let j = plane_index(o.in_channel_first, o.one_by_one, d, b, k, c, h * d.w + w);
                            prop_assert_eq!(xs[i].to_bits(), x[j].to_bits());
                            hit[i] += 1;
                        }
                    }
                }
            }
        }
        prop_assert!(hit.iter().all(|&n| n == 1), "scan output is not a permutation");
    }

    #[test]
    fn merge_follows_upstream_order((d, o) in arb_case(), seed in any::<u64>()) {
        let ys = data(cross_scan_output_len(d, o).unwrap(), seed);
        let mut y = vec![f32::NAN; cross_merge_output_len(d, o).unwrap()];
        cross_merge(&ys, d, o, &mut y, Parallelism::Sequential).unwrap();
        for b in 0..d.batch {
            for c in 0..d.channels {
                for h in 0..d.h {
                    for w in 0..d.w {
                        let p = h * d.w + w;
                        let v = |k: usize| {
                            ys[seq_index(o.out_channel_first, d, b, k, c, table_pos(o.mode, k, h, w, d.h, d.w))]
                        };
                        if o.one_by_one {
                            for k in 0..4 {
                                let i = plane_index(o.in_channel_first, true, d, b, k, c, p);
                                prop_assert_eq!(y[i].to_bits(), v(k).to_bits());
                            }
                        } else {
                            // cross2d: (ys0 + flip ys2) + T(ys1 + flip ys3); bidi: the same
                            // pairs without T; unidi: ys.sum(1) left to right.
                            let expect = match o.mode {
                                ScanMode::Unidi => ((v(0) + v(1)) + v(2)) + v(3),
                                _ => (v(0) + v(2)) + (v(1) + v(3)),
                            };
                            let i = plane_index(o.in_channel_first, false, d, b, 0, c, p);
                            prop_assert_eq!(y[i].to_bits(), expect.to_bits());
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn merge_is_adjoint_of_scan((d, o) in arb_case(), seed in any::<u64>()) {
        let x = data(cross_scan_input_len(d, o).unwrap(), seed);
        let ys = data(cross_scan_output_len(d, o).unwrap(), seed ^ 0x5555);
        let mut xs = vec![0.0; ys.len()];
        let mut y = vec![0.0; x.len()];
        cross_scan(&x, d, o, &mut xs, Parallelism::Sequential).unwrap();
        cross_merge(&ys, d, o, &mut y, Parallelism::Sequential).unwrap();
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(&u, &v)| u as f64 * v as f64).sum::<f64>();
        let lhs = dot(&xs, &ys);
        let rhs = dot(&x, &y);
        // y carries f32 rounding of sums of <= 4 terms of magnitude <= 1.
        let tol = 1e-6 * x.len() as f64 * 4.0;
        prop_assert!((lhs - rhs).abs() <= tol, "<scan x, ys> = {} != <x, merge ys> = {}", lhs, rhs);
        if o.one_by_one {
            // The one-by-one merge is the exact inverse permutation of the scan.
            let mut back = vec![0.0; x.len()];
            cross_merge(&xs, d, o, &mut back, Parallelism::Sequential).unwrap();
            prop_assert_eq!(bits(&back), bits(&x));
        }
    }

    #[test]
    fn thread_counts_agree_bitwise((d, o) in arb_case(), seed in any::<u64>(), wide in 1usize..40) {
        let d = CrossDims { channels: d.channels * wide, ..d };
        let x = data(cross_scan_input_len(d, o).unwrap(), seed);
        let ys = data(cross_scan_output_len(d, o).unwrap(), seed ^ 0xabcd);
        let run = |par: Parallelism<'_>| {
            let mut xs = vec![f32::NAN; ys.len()];
            let mut y = vec![f32::NAN; x.len()];
            cross_scan(&x, d, o, &mut xs, par).unwrap();
            cross_merge(&ys, d, o, &mut y, par).unwrap();
            (bits(&xs), bits(&y))
        };
        let base = run(Parallelism::Sequential);
        for n in [1, 2, 3, 8] {
            prop_assert_eq!(&run(Parallelism::Pool(pool(n))), &base, "{} threads", n);
            let host = ScopedThreads { threads: n, items: n / 2 };
            prop_assert_eq!(&run(Parallelism::Host(&host)), &base, "host {:?}", host);
        }
    }
}

#[test]
fn empty_sizes_are_valid() {
    for (batch, channels, h, w) in [(0, 3, 4, 5), (2, 0, 4, 5), (2, 3, 0, 5), (2, 3, 4, 0)] {
        let d = CrossDims {
            batch,
            channels,
            h,
            w,
        };
        for obo in [false, true] {
            let o = CrossOpts {
                one_by_one: obo,
                ..CrossOpts::default()
            };
            let mut out: Vec<f32> = vec![];
            cross_scan(&[], d, o, &mut out, Parallelism::Threads(2)).unwrap();
            cross_merge(&[], d, o, &mut out, Parallelism::Threads(2)).unwrap();
        }
    }
}

#[test]
fn errors_name_the_tensor_and_write_nothing() {
    let d = CrossDims {
        batch: 2,
        channels: 3,
        h: 4,
        w: 5,
    };
    let o = CrossOpts::default();
    let x = vec![1.0f32; 120];
    let mut xs = vec![9.0f32; 480];
    assert_eq!(
        cross_scan(&x, d, o, &mut xs[..479], Parallelism::Sequential),
        Err(Error::Length {
            tensor: "xs",
            expected: 480,
            actual: 479
        })
    );
    assert!(xs.iter().all(|&v| v == 9.0));
    let mut y = vec![9.0f32; 121];
    assert_eq!(
        cross_merge(&xs, d, o, &mut y, Parallelism::Sequential),
        Err(Error::Length {
            tensor: "y",
            expected: 120,
            actual: 121
        })
    );
    assert!(y.iter().all(|&v| v == 9.0));
    assert_eq!(
        cross_merge(&xs[..10], d, o, &mut y[..120], Parallelism::Sequential),
        Err(Error::Length {
            tensor: "ys",
            expected: 480,
            actual: 10
        })
    );
    let huge = CrossDims {
        batch: 1 << 20,
        channels: 1 << 20,
        h: 1 << 20,
        w: 1 << 20,
    };
    assert!(matches!(
        cross_scan(&x, huge, o, &mut xs, Parallelism::Sequential),
        Err(Error::Overflow { .. })
    ));
    assert!(ScanMode::from_scans(3).is_err());
    assert_eq!(ScanMode::from_name("bidi"), Ok(ScanMode::Bidi));
}

#[test]
fn walks_match_the_scan() {
    // The walk of direction k reproduces xs[k] from x (channel-first, one channel).
    for mode in [ScanMode::Cross2d, ScanMode::Unidi, ScanMode::Bidi] {
        for (h, w) in [(1, 1), (1, 6), (5, 1), (3, 4), (4, 4)] {
            let d = CrossDims {
                batch: 1,
                channels: 1,
                h,
                w,
            };
            let o = CrossOpts {
                mode,
                ..CrossOpts::default()
            };
            let x = data(h * w, 7);
            let mut xs = vec![0.0; 4 * h * w];
            cross_scan(&x, d, o, &mut xs, Parallelism::Sequential).unwrap();
            for k in 0..4 {
                let walk = mode.walk(h, w, k).unwrap();
                let v: Vec<f32> = walk.iter().map(|p| x[p]).collect();
                assert_eq!(bits(&v), bits(&xs[k * h * w..(k + 1) * h * w]));
            }
        }
    }
}
