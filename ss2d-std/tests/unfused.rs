//! The unfused SS2D scan against the intermediates (`debug.*`) of VMamba's own SS2D forward.

mod common;

use common::*;
use ss2d_core::Error;
use ss2d_std::cross::ScanMode;
use ss2d_std::unfused::{
    project, ss2d_scan_unfused, ss2d_scan_unfused_intermediates, Ss2dScanShape, Ss2dScanWeights,
};
use ss2d_std::{Parallelism, ScopedThreads};

#[test]
fn golden_intermediates() {
    let cases = cases();
    // v05_noz x4, v05 x2, v3, v051d (unidi), v052d (bidi).
    assert_eq!(cases.len(), 9, "golden ss2d cases with debug tensors");
    let mut modes = vec![];
    for case in &cases {
        let name = &case.name;
        let x = case.x_cf();
        let r = ss2d_scan_unfused_intermediates(
            &case.shape,
            &case.weights(),
            &x,
            Parallelism::Sequential,
        )
        .unwrap();
        assert_eq!(
            bits(&r.xs),
            bits(case.g.tensor("debug.us")),
            "{name}: xs != debug.us"
        );
        let errs = [
            ("dts", rel_err(&r.proj.dts, case.g.tensor("debug.dts"))),
            ("Bs", rel_err(&r.proj.bs, case.g.tensor("debug.Bs"))),
            ("Cs", rel_err(&r.proj.cs, case.g.tensor("debug.Cs"))),
            ("ys", rel_err(&r.ys, case.g.tensor("debug.ys"))),
            ("y", rel_err(&r.y, case.g.tensor("debug.y_merged"))),
        ];
        eprintln!("{name}: {errs:?}");
        for (t, e) in errs {
            assert!(e <= 1e-5, "{name}: {t} max err / max|ref| = {e:e}");
        }
        modes.push(case.shape.mode);
    }
    for m in [ScanMode::Cross2d, ScanMode::Unidi, ScanMode::Bidi] {
        assert!(modes.contains(&m), "no golden case for {m:?}");
    }
}

#[test]
fn layouts_and_threads_agree_bitwise() {
    let pools: Vec<rayon::ThreadPool> = [1, 2, 3, 8]
        .iter()
        .map(|&n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
        })
        .collect();
    for case in cases() {
        let name = &case.name;
        let s = case.shape;
        let l = s.h * s.w;
        let x = case.x_cf();
        let mut y_ref = vec![f32::NAN; x.len()];
        ss2d_scan_unfused(&s, &case.weights(), &x, &mut y_ref, Parallelism::Sequential).unwrap();
        let full =
            ss2d_scan_unfused_intermediates(&s, &case.weights(), &x, Parallelism::Sequential)
                .unwrap();
        assert_eq!(bits(&full.y), bits(&y_ref), "{name}: intermediates path");
        for pool in &pools {
            let mut y = vec![f32::NAN; x.len()];
            ss2d_scan_unfused(&s, &case.weights(), &x, &mut y, Parallelism::Pool(pool)).unwrap();
            assert_eq!(
                bits(&y),
                bits(&y_ref),
                "{name}: {} threads",
                pool.current_num_threads()
            );
            let n = pool.current_num_threads();
            let host = ScopedThreads {
                threads: n,
                items: n - 1,
            };
            let mut y = vec![f32::NAN; x.len()];
            ss2d_scan_unfused(&s, &case.weights(), &x, &mut y, Parallelism::Host(&host)).unwrap();
            assert_eq!(bits(&y), bits(&y_ref), "{name}: {host:?}");
        }
        // Channel-last input gives the transposed output, bitwise.
        let cl = Ss2dScanShape {
            channel_first: false,
            ..s
        };
        let x_cl = to_channel_last(&x, s.batch, s.dim, l);
        let mut y_cl = vec![f32::NAN; x.len()];
        ss2d_scan_unfused(
            &cl,
            &case.weights(),
            &x_cl,
            &mut y_cl,
            Parallelism::Threads(2),
        )
        .unwrap();
        assert_eq!(
            bits(&y_cl),
            bits(&to_channel_last(&y_ref, s.batch, s.dim, l)),
            "{name}: channel-last"
        );
    }
}

#[test]
fn validation_names_the_tensor_and_writes_nothing() {
    let case = cases().into_iter().next().unwrap();
    let s = case.shape;
    let x = case.x_cf();
    let mut y = vec![7.0f32; x.len()];
    let w = case.weights();
    let check = |w: Ss2dScanWeights<'_>, tensor: &str, y: &mut Vec<f32>| {
        let e = ss2d_scan_unfused(&s, &w, &x, y, Parallelism::Sequential).unwrap_err();
        assert!(
            matches!(e, Error::Length { tensor: t, .. } if t == tensor),
            "{tensor}: {e:?}"
        );
        assert!(y.iter().all(|&v| v == 7.0));
    };
    let short = |v: &[f32]| v[..v.len() - 1].to_vec();
    let xp = short(w.x_proj_weight);
    check(
        Ss2dScanWeights {
            x_proj_weight: &xp,
            ..w
        },
        "x_proj_weight",
        &mut y,
    );
    let dp = short(w.dt_projs_weight);
    check(
        Ss2dScanWeights {
            dt_projs_weight: &dp,
            ..w
        },
        "dt_projs_weight",
        &mut y,
    );
    let db = short(w.dt_projs_bias);
    check(
        Ss2dScanWeights {
            dt_projs_bias: &db,
            ..w
        },
        "dt_projs_bias",
        &mut y,
    );
    let al = short(w.a_logs);
    check(Ss2dScanWeights { a_logs: &al, ..w }, "A_logs", &mut y);
    let ds = short(w.ds);
    check(Ss2dScanWeights { ds: &ds, ..w }, "Ds", &mut y);
    let e = ss2d_scan_unfused(&s, &w, &x[1..], &mut y, Parallelism::Sequential).unwrap_err();
    assert!(matches!(e, Error::Length { tensor: "x", .. }));
    let e = ss2d_scan_unfused(&s, &w, &x, &mut y[1..], Parallelism::Sequential).unwrap_err();
    assert!(matches!(e, Error::Length { tensor: "y", .. }));
    assert!(y.iter().all(|&v| v == 7.0));
    let bad = Ss2dScanShape { dstate: 0, ..s };
    assert_eq!(
        ss2d_scan_unfused(&bad, &w, &x, &mut y, Parallelism::Sequential),
        Err(Error::Dstate { dstate: 0 })
    );
    let huge = Ss2dScanShape {
        h: usize::MAX,
        w: 2,
        ..s
    };
    assert!(matches!(
        ss2d_scan_unfused(&huge, &w, &x, &mut y, Parallelism::Sequential),
        Err(Error::Overflow { .. })
    ));
    let e = project(&s, &w, &x, Parallelism::Sequential).unwrap_err();
    assert!(matches!(e, Error::Length { tensor: "xs", .. }));
}

#[test]
fn empty_problems_are_valid() {
    let (d, n, r) = (3usize, 2usize, 1usize);
    let xp = vec![0.1f32; 4 * (r + 2 * n) * d];
    let dp = vec![0.1f32; 4 * d * r];
    let db = vec![0.0f32; 4 * d];
    let al = vec![0.0f32; 4 * d * n];
    let ds = vec![1.0f32; 4 * d];
    let w = Ss2dScanWeights {
        x_proj_weight: &xp,
        dt_projs_weight: &dp,
        dt_projs_bias: &db,
        a_logs: &al,
        ds: &ds,
    };
    for (batch, h, ww) in [(0, 4, 5), (2, 0, 5), (2, 4, 0)] {
        for mode in [ScanMode::Cross2d, ScanMode::Unidi, ScanMode::Bidi] {
            let s = Ss2dScanShape {
                batch,
                dim: d,
                h,
                w: ww,
                dstate: n,
                dt_rank: r,
                mode,
                channel_first: batch % 2 == 0,
            };
            let mut y: Vec<f32> = vec![];
            ss2d_scan_unfused(&s, &w, &[], &mut y, Parallelism::Threads(2)).unwrap();
        }
    }
    // dim = 0: all weights empty.
    let s = Ss2dScanShape {
        batch: 1,
        dim: 0,
        h: 3,
        w: 3,
        dstate: 1,
        dt_rank: 1,
        mode: ScanMode::Cross2d,
        channel_first: true,
    };
    let e: [f32; 0] = [];
    let w0 = Ss2dScanWeights {
        x_proj_weight: &e,
        dt_projs_weight: &e,
        dt_projs_bias: &e,
        a_logs: &e,
        ds: &e,
    };
    let mut y: Vec<f32> = vec![];
    ss2d_scan_unfused(&s, &w0, &[], &mut y, Parallelism::Sequential).unwrap();
}
