//! The fused SS2D scan: golden `debug.y_merged`, equality with the unfused composition, and
//! bitwise determinism over thread counts (which also changes how directions are split).

mod common;

use common::*;
use proptest::prelude::*;
use ss2d_core::Error;
use ss2d_std::cross::ScanMode;
use ss2d_std::fused::{ss2d_scan, ss2d_scan_scratch_len, ss2d_scan_with_scratch};
use ss2d_std::unfused::{ss2d_scan_unfused, Ss2dScanShape, Ss2dScanWeights};
use ss2d_std::{Parallelism, ScopedThreads};
use ss2d_testsupport::Lcg;

#[test]
fn golden_y_merged() {
    let cases = cases();
    assert!(cases.len() >= 9);
    for case in &cases {
        let x = case.x_cf();
        let want = case.g.tensor("debug.y_merged");
        let mut y = vec![f32::NAN; x.len()];
        ss2d_scan(
            &case.shape,
            &case.weights(),
            &x,
            &mut y,
            Parallelism::Sequential,
        )
        .unwrap();
        let e = rel_err(&y, want);
        assert!(e <= 1e-5, "{}: fused vs debug.y_merged {e}", case.name);
        // Channel-last gives the same numbers, transposed.
        let (b, d, l) = (
            case.shape.batch,
            case.shape.dim,
            case.shape.h * case.shape.w,
        );
        let mut cl = case.shape;
        cl.channel_first = false;
        let mut ycl = vec![0.0; x.len()];
        ss2d_scan(
            &cl,
            &case.weights(),
            &to_channel_last(&x, b, d, l),
            &mut ycl,
            Parallelism::Sequential,
        )
        .unwrap();
        let e = rel_err(&ycl, &to_channel_last(want, b, d, l));
        assert!(
            e <= 1e-5,
            "{}: channel-last fused vs debug.y_merged {e}",
            case.name
        );
    }
}

struct Problem {
    shape: Ss2dScanShape,
    x: Vec<f32>,
    xw: Vec<f32>,
    dw: Vec<f32>,
    db: Vec<f32>,
    al: Vec<f32>,
    ds: Vec<f32>,
}

impl Problem {
    fn new(shape: Ss2dScanShape, seed: u64) -> Problem {
        let mut g = Lcg::new(seed);
        let (d, n, r) = (shape.dim, shape.dstate, shape.dt_rank);
        let l = shape.h * shape.w;
        Problem {
            x: g.fill(shape.batch * d * l, -1.0, 1.0),
            xw: g.fill(4 * (r + 2 * n) * d, -0.5, 0.5),
            dw: g.fill(4 * d * r, -0.5, 0.5),
            db: g.fill(4 * d, -4.0, -2.0),
            al: g.fill(4 * d * n, -1.0, 2.0),
            ds: g.fill(4 * d, 0.5, 1.5),
            shape,
        }
    }
    fn weights(&self) -> Ss2dScanWeights<'_> {
        Ss2dScanWeights {
            x_proj_weight: &self.xw,
            dt_projs_weight: &self.dw,
            dt_projs_bias: &self.db,
            a_logs: &self.al,
            ds: &self.ds,
        }
    }
    fn fused(&self, par: Parallelism<'_>) -> Vec<f32> {
        let mut y = vec![f32::NAN; self.x.len()];
        ss2d_scan(&self.shape, &self.weights(), &self.x, &mut y, par).unwrap();
        y
    }
}

fn shape_strategy() -> impl Strategy<Value = Ss2dScanShape> {
    (
        1usize..=2,
        1usize..=40,
        1usize..=9,
        1usize..=9,
        1usize..=6,
        1usize..=4,
        0u8..3,
        any::<bool>(),
    )
        .prop_map(
            |(batch, dim, h, w, dstate, dt_rank, m, channel_first)| Ss2dScanShape {
                batch,
                dim,
                h,
                w,
                dstate,
                dt_rank,
                mode: [ScanMode::Cross2d, ScanMode::Unidi, ScanMode::Bidi][m as usize],
                channel_first,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn fused_equals_unfused(shape in shape_strategy(), seed in any::<u64>()) {
        let p = Problem::new(shape, seed);
        let y = p.fused(Parallelism::Sequential);
        let mut want = vec![0.0; p.x.len()];
        ss2d_scan_unfused(&p.shape, &p.weights(), &p.x, &mut want, Parallelism::Sequential).unwrap();
        let e = rel_err(&y, &want);
        prop_assert!(e <= 1e-5, "fused vs unfused {e} for {shape:?}");
    }

    #[test]
    fn fused_is_bitwise_identical_for_any_thread_count(shape in shape_strategy(), seed in any::<u64>()) {
        let p = Problem::new(shape, seed);
        let one = bits(&p.fused(Parallelism::Sequential));
        for t in [2usize, 3, 8] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
            prop_assert_eq!(&bits(&p.fused(Parallelism::Pool(&pool))), &one, "{} threads", t);
            prop_assert_eq!(&bits(&p.fused(Parallelism::Threads(t))), &one, "library pool {}", t);
        }
    }

    /// Every executor, with and without the caller's scratch (sized by the query; one element
    /// less is refused before anything is written).
    #[test]
    fn fused_is_bitwise_identical_for_any_executor(shape in shape_strategy(), seed in any::<u64>()) {
        let p = Problem::new(shape, seed);
        let one = bits(&p.fused(Parallelism::Sequential));
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let hosts = [
            ScopedThreads { threads: 1, items: 0 },
            ScopedThreads { threads: 3, items: 0 },
            ScopedThreads { threads: 4, items: 7 },
            ScopedThreads { threads: 2, items: 1 },
        ];
        let mut execs = vec![
            Parallelism::Sequential,
            Parallelism::Threads(2),
            Parallelism::Threads(5),
            Parallelism::Pool(&pool),
        ];
        execs.extend(hosts.iter().map(|h| Parallelism::Host(h)));
        for par in execs {
            prop_assert_eq!(&bits(&p.fused(par)), &one, "{:?}", par);
            let need = ss2d_scan_scratch_len(&p.shape, par).unwrap();
            let mut scratch = vec![f32::NAN; need];
            let mut y = vec![f32::NAN; p.x.len()];
            ss2d_scan_with_scratch(&p.shape, &p.weights(), &p.x, &mut y, par, &mut scratch).unwrap();
            prop_assert_eq!(&bits(&y), &one, "{:?} with scratch", par);
            if need > 0 {
                let mut y = vec![3.0f32; p.x.len()];
                let r = ss2d_scan_with_scratch(
                    &p.shape, &p.weights(), &p.x, &mut y, par, &mut scratch[..need - 1],
                );
                prop_assert_eq!(r, Err(Error::Scratch { needed: need, actual: need - 1 }));
                prop_assert!(y.iter().all(|&v| v == 3.0));
            }
        }
    }
}

/// B=1, D=5 on a 3 x 4 grid, N=2, R=1, channel-first.
fn small_shape() -> Ss2dScanShape {
    Ss2dScanShape {
        batch: 1,
        dim: 5,
        h: 3,
        w: 4,
        dstate: 2,
        dt_rank: 1,
        mode: ScanMode::Cross2d,
        channel_first: true,
    }
}

#[test]
fn validation_names_the_buffer_and_writes_nothing() {
    let shape = small_shape();
    let p = Problem::new(shape, 1);
    let mut y = vec![7.0f32; p.x.len()];
    let err = ss2d_scan(
        &shape,
        &p.weights(),
        &p.x[1..],
        &mut y,
        Parallelism::Sequential,
    );
    assert_eq!(
        err,
        Err(Error::Length {
            tensor: "x",
            expected: 60,
            actual: 59
        })
    );
    let mut short = vec![7.0f32; 59];
    let err = ss2d_scan(
        &shape,
        &p.weights(),
        &p.x,
        &mut short,
        Parallelism::Sequential,
    );
    assert!(matches!(err, Err(Error::Length { tensor: "y", .. })));
    let mut w = p.weights();
    w.ds = &p.ds[1..];
    assert!(matches!(
        ss2d_scan(&shape, &w, &p.x, &mut y, Parallelism::Sequential),
        Err(Error::Length { .. })
    ));
    assert!(y.iter().all(|&v| v == 7.0));
}

/// `project_grid` (public) checks the weight's length before it transposes it, as
/// `unfused::x_proj` does, and projects within rounding of the f64 product.
#[test]
fn project_grid_checks_the_weight_and_matches_x_proj() {
    let shape = small_shape();
    let c4 = 4 * (1 + 2 * 2);
    let mut rng = Lcg::new(17);
    let x: Vec<f32> = (0..5 * 12).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let w: Vec<f32> = (0..c4 * 5).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let e = ss2d_std::fused::project_grid(&shape, &w[1..], &x, Parallelism::Sequential);
    assert_eq!(
        e.unwrap_err(),
        Error::Length {
            tensor: "x_proj_weight",
            expected: c4 * 5,
            actual: c4 * 5 - 1
        }
    );
    let p = ss2d_std::fused::project_grid(&shape, &w, &x, Parallelism::Sequential).unwrap();
    // proj[l, k*C + c] = sum_d W[k*C + c, d] x[d, l], in f64.
    let mut compared = 0;
    for l in 0..12 {
        for j in 0..c4 {
            let want: f64 = (0..5)
                .map(|d| w[j * 5 + d] as f64 * x[d * 12 + l] as f64)
                .sum();
            let got = p[l * c4 + j] as f64;
            assert!((got - want).abs() <= 1e-5, "l {l} j {j}: {got} vs {want}");
            compared += 1;
        }
    }
    assert_eq!(compared, 12 * c4);
}
