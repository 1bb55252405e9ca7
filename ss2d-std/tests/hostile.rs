//! Hostile and unusual inputs for the library entry points, beyond the validation tests of
//! `cross.rs`, `fused.rs`, `unfused.rs` and `layer.rs`: sizes whose products overflow, empty
//! problems whose other sizes are huge (they must finish at once and allocate nothing sized by
//! the shape alone), configuration values that overflow, and the defined results for NaN in
//! the data. Tests named `bug_*` reproduce open bugs (see the robustness report) and fail until
//! they are fixed.

use std::sync::mpsc;
use std::time::Duration;

use ss2d_std::core::{BcLayout, Error, Layout, ScanArgs, ScanShape, Walk};
use ss2d_std::cross::ScanMode;
use ss2d_std::layer::{Grid, Ss2d, Ss2dConfig};
use ss2d_std::unfused::{ss2d_scan_unfused, Ss2dScanShape, Ss2dScanWeights};
use ss2d_std::{check_cpu, CpuError, Parallelism};

/// Runs `f` on a thread and fails if it has not returned after `secs` seconds (the thread is
/// left behind; the test process ends anyway).
fn within<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: still running after {secs} s"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: panicked"),
    }
}

fn empty_weights() -> Ss2dScanWeights<'static> {
    Ss2dScanWeights {
        x_proj_weight: &[],
        dt_projs_weight: &[],
        dt_projs_bias: &[],
        a_logs: &[],
        ds: &[],
    }
}

fn shape(batch: usize, dim: usize, h: usize, w: usize) -> Ss2dScanShape {
    Ss2dScanShape {
        batch,
        dim,
        h,
        w,
        dstate: 1,
        dt_rank: 1,
        mode: ScanMode::Cross2d,
        channel_first: true,
    }
}

#[test]
fn overflowing_ss2d_sizes_are_errors() {
    for s in [
        shape(1, 1, usize::MAX, 2),
        shape(usize::MAX / 2, 3, 1, 1),
        shape(1 << 31, 1 << 31, 1, 1),
        Ss2dScanShape {
            dt_rank: usize::MAX,
            ..shape(1, 1, 1, 1)
        },
    ] {
        for fused in [false, true] {
            let mut y = [7.0f32; 4];
            let r = if fused {
                ss2d_std::fused::ss2d_scan(
                    &s,
                    &empty_weights(),
                    &[],
                    &mut y,
                    Parallelism::Sequential,
                )
            } else {
                ss2d_scan_unfused(&s, &empty_weights(), &[], &mut y, Parallelism::Sequential)
            };
            assert!(
                matches!(r, Err(Error::Overflow { .. })),
                "{s:?} (fused {fused}): {r:?}"
            );
            assert_eq!(y, [7.0; 4]);
        }
    }
}

/// `dim = 0` with a huge grid: `x` and `y` are empty, so the call has nothing to do. It must
/// return `Ok` at once, without allocating `batch * L * 4 * (R + 2N)` projection elements (the
/// sizes here make that allocation larger than the address space: a capacity-overflow panic).
#[test]
fn bug_ss2d_scan_with_no_channels_allocates_by_grid_size() {
    // L = 2^58: x_dbl would hold 4 * 3 * 2^58 elements (< isize::MAX, so validation passes).
    let s = shape(1, 0, 1 << 29, 1 << 29);
    for par in [Parallelism::Sequential, Parallelism::Threads(2)] {
        let what = format!("fused ss2d_scan, dim 0, 2^29 x 2^29 grid, {par:?}");
        let r = within(10, &what, move || {
            ss2d_std::fused::ss2d_scan(&s, &empty_weights(), &[], &mut [], par)
        });
        assert_eq!(r, Ok(()), "{what}");
        let what = format!("unfused ss2d_scan, dim 0, 2^29 x 2^29 grid, {par:?}");
        let r = within(10, &what, move || {
            ss2d_scan_unfused(&s, &empty_weights(), &[], &mut [], par)
        });
        assert_eq!(r, Ok(()), "{what}");
    }
}

/// `batch = 0` with a huge grid: the fused scan's per-item scratch is sized by `L` alone
/// (`(L + ...) * LANES` elements).
#[test]
fn bug_fused_scan_with_no_batch_sizes_scratch_by_grid() {
    let s = shape(0, 1, 1 << 29, 1 << 29);
    let w = [0.5f32; 12];
    let r = within(
        10,
        "fused ss2d_scan, batch 0, 2^29 x 2^29 grid",
        move || {
            let weights = Ss2dScanWeights {
                x_proj_weight: &w,
                dt_projs_weight: &w[..4],
                dt_projs_bias: &w[..4],
                a_logs: &w[..4],
                ds: &w[..4],
            };
            ss2d_std::fused::ss2d_scan(&s, &weights, &[], &mut [], Parallelism::Sequential)
        },
    );
    assert_eq!(r, Ok(()));
}

/// A layer forward on an empty grid (batch 0) whose `H x W` is huge: empty input and output,
/// nothing to do.
#[test]
fn bug_layer_forward_on_an_empty_batch_with_a_huge_grid() {
    let layer: Ss2d = ss2d_std::layer::init::vmamba_like(&Ss2dConfig::s1l8(8), 1).unwrap();
    let r = within(10, "layer forward on (0, 8, 2^29, 2^29)", move || {
        let grid = Grid {
            batch: 0,
            h: 1 << 29,
            w: 1 << 29,
        };
        layer.forward(&[], grid, &mut [], Parallelism::Sequential)
    });
    assert_eq!(r, Ok(()));
}

/// `d_model` so large that `4 * d_inner` overflows: an error, not an arithmetic-overflow panic
/// (the panic shows with debug assertions on, e.g. `cargo test` without `--release`).
#[test]
fn bug_config_with_huge_d_model_is_an_error_not_a_panic() {
    for (d_model, ratio) in [(1usize << 62, 1.0), (1 << 61, 2.0), (1 << 60, 4.0)] {
        let cfg = Ss2dConfig {
            ssm_ratio: ratio,
            ..Ss2dConfig::new(d_model, "v05_noz", true)
        };
        let r = std::panic::catch_unwind(|| cfg.resolve().map(|_| ()));
        match r {
            Ok(Err(_)) => {}
            Ok(Ok(())) => panic!("d_model {d_model} x {ratio} resolved"),
            Err(_) => {
                panic!("Ss2dConfig::resolve panicked for d_model {d_model}, ssm_ratio {ratio}")
            }
        }
    }
}

/// The unfused projections with a `dim` whose `4 * dim` overflows (and an empty grid, so every
/// buffer is empty): an overflow error, not an arithmetic-overflow panic (the panic shows with
/// debug assertions on).
#[test]
fn bug_projections_with_huge_dim_are_errors_not_panics() {
    let s = shape(1, usize::MAX / 2, 0, 0);
    let x_proj = std::panic::catch_unwind(|| {
        ss2d_std::unfused::x_proj(&s, &[], &[], Parallelism::Sequential).map(|_| ())
    });
    assert!(
        matches!(x_proj, Ok(Err(Error::Overflow { .. }))),
        "x_proj: {x_proj:?}"
    );
    let proj = std::panic::catch_unwind(|| {
        ss2d_std::unfused::project_x_dbl(&s, &[], &[], Parallelism::Sequential).map(|_| ())
    });
    assert!(
        matches!(proj, Ok(Err(Error::Overflow { .. }))),
        "project_x_dbl: {proj:?}"
    );
}

/// Empty problems whose other sizes are huge, at every scan entry point (the scalar reference
/// in `f32` and `f64` included), in both layouts; nothing is read or written, so each must
/// return `Ok` at once instead of visiting `batch x panels` work units:
/// - `seqlen = 0` under a `1 << 40` batch, no final state (one would have `batch x dim x
///   dstate` elements);
/// - a zero `dim` (with and without a final state, which is then empty too): the reference
///   once looped over a `1 << 40` batch of zero channels (found by the `api` fuzz target in CI);
/// - a zero `batch` (with a few channels: `A`, `B` and `C` have `dim x dstate` elements).
#[test]
fn empty_scans_with_huge_other_sizes_return_at_once_everywhere() {
    // (batch, dim, seqlen, dstate, final state requested or not)
    let cases: [(usize, usize, usize, usize, &[bool]); 3] = [
        (1 << 40, 1, 0, 1, &[false]),
        (1 << 40, 0, 1 << 40, 11, &[false, true]),
        (0, 3, 1 << 40, 11, &[false, true]),
    ];
    for (batch, dim, seqlen, dstate, states) in cases {
        for (&with_state, layout) in states
            .iter()
            .flat_map(|st| [(st, Layout::ChannelFirst), (st, Layout::ChannelLast)])
        {
            let s = ScanShape {
                batch,
                dim,
                seqlen,
                dstate,
                b: BcLayout::Constant,
                c: BcLayout::Constant,
                layout,
            };
            let what = format!("{s:?} state {with_state}");
            let r = within(10, &what, move || {
                let a = vec![-1.0f32; dim * dstate];
                let args = ScanArgs {
                    u: &[],
                    delta: &[],
                    a: &a,
                    b: &a,
                    c: &a,
                    ..ScanArgs::default()
                };
                let walk = Walk::forward(seqlen);
                let mut state: [f32; 0] = [];
                let mut state64: [f64; 0] = [];
                let mut results = vec![
                    ss2d_std::core::reference::selective_scan::<f32>(
                        &s,
                        &walk,
                        &args,
                        &mut [],
                        with_state.then_some(&mut state[..]),
                    ),
                    ss2d_std::core::reference::selective_scan::<f64>(
                        &s,
                        &walk,
                        &args,
                        &mut [],
                        with_state.then_some(&mut state64[..]),
                    ),
                    ss2d_std::core::ScanPlan::new(&s, &walk, args, 0, with_state.then_some(0))
                        .and_then(|plan| {
                            let mut scratch = vec![0.0f32; plan.scratch_len()];
                            plan.run(&mut [], with_state.then_some(&mut state[..]), &mut scratch)
                        }),
                ];
                for threads in [1usize, 2] {
                    results.push(ss2d_std::selective_scan(
                        &s,
                        &walk,
                        &args,
                        &mut [],
                        with_state.then_some(&mut state[..]),
                        Parallelism::Threads(threads),
                    ));
                }
                results
            });
            assert_eq!(r, vec![Ok(()); 5], "{what}");
        }
    }
}

/// Valid but unusual: `seqlen = 0` with a final state gives the initial state (or zeros);
/// a 1 x 1 grid through the fused and unfused SS2D scans gives the same finite result.
#[test]
fn empty_sequences_and_one_pixel_grids() {
    let s = ScanShape {
        batch: 2,
        dim: 3,
        seqlen: 0,
        dstate: 2,
        b: BcLayout::Grouped(3),
        c: BcLayout::Constant,
        layout: Layout::ChannelLast,
    };
    let a = [-1.0f32; 6];
    let init: Vec<f32> = (0..12).map(|i| i as f32 - 5.5).collect();
    for initial in [None, Some(&init[..])] {
        let args = ScanArgs {
            u: &[],
            delta: &[],
            a: &a,
            b: &[],
            c: &a,
            initial_state: initial,
            delta_softplus: true,
            ..ScanArgs::default()
        };
        let mut st = vec![f32::NAN; 12];
        ss2d_std::selective_scan(
            &s,
            &Walk::forward(0),
            &args,
            &mut [],
            Some(&mut st),
            Parallelism::Threads(2),
        )
        .unwrap();
        let want = initial.map_or(vec![0.0; 12], <[f32]>::to_vec);
        assert_eq!(st, want);
    }
    let p = Problem::new(shape(2, 5, 1, 1), 3);
    let fused = p.run(true, ScanMode::Cross2d);
    let unfused = p.run(false, ScanMode::Cross2d);
    assert!(fused.iter().all(|v| v.is_finite()));
    for (f, u) in fused.iter().zip(&unfused) {
        assert!((f - u).abs() <= 1e-5 * (1.0 + u.abs()), "{f} vs {u}");
    }
}

/// Data of a small SS2D scan problem.
struct Problem {
    shape: Ss2dScanShape,
    x: Vec<f32>,
    w: [Vec<f32>; 5],
}

impl Problem {
    fn new(shape: Ss2dScanShape, seed: u64) -> Problem {
        let mut rng = ss2d_testsupport::Lcg::new(seed);
        let mut g = |n: usize, lo: f32, hi: f32| rng.fill(n, lo, hi);
        let (d, l) = (shape.dim, shape.h * shape.w);
        let rows = shape.dt_rank + 2 * shape.dstate;
        Problem {
            x: g(shape.batch * d * l, -1.0, 1.0),
            w: [
                g(4 * rows * d, -0.5, 0.5),
                g(4 * d * shape.dt_rank, -0.5, 0.5),
                g(4 * d, -3.0, 0.0),
                g(4 * d * shape.dstate, -1.0, 1.0),
                g(4 * d, -1.0, 1.0),
            ],
            shape,
        }
    }

    fn run(&self, fused: bool, mode: ScanMode) -> Vec<f32> {
        let s = Ss2dScanShape { mode, ..self.shape };
        let weights = Ss2dScanWeights {
            x_proj_weight: &self.w[0],
            dt_projs_weight: &self.w[1],
            dt_projs_bias: &self.w[2],
            a_logs: &self.w[3],
            ds: &self.w[4],
        };
        let mut y = vec![0.0; self.x.len()];
        let par = Parallelism::Threads(2);
        if fused {
            ss2d_std::fused::ss2d_scan(&s, &weights, &self.x, &mut y, par).unwrap();
        } else {
            ss2d_scan_unfused(&s, &weights, &self.x, &mut y, par).unwrap();
        }
        y
    }
}

/// NaN at one pixel and channel of batch item 0 (channel-first). x_proj mixes the channels at
/// that pixel, so dt, B and C of every channel are NaN there, and each direction carries the
/// NaN forward along its walk. Cross2d (row-major forward and reversed, column-major forward
/// and reversed): all of item 0 is NaN. Unidi (four row-major forward scans): item 0 is NaN
/// exactly from that pixel on in row-major order; earlier pixels are bitwise unchanged. Item 1
/// is bitwise unchanged. The same for the fused and the unfused scan.
#[test]
fn nan_in_x_spreads_along_the_walks_only() {
    let (h, w, d) = (5, 7, 6);
    let mut p = Problem::new(
        Ss2dScanShape {
            dstate: 4,
            dt_rank: 2,
            ..shape(2, d, h, w)
        },
        17,
    );
    let l = h * w;
    let pix = 2 * w + 3;
    for fused in [false, true] {
        let clean_x = p.x.clone();
        let clean_cross = p.run(fused, ScanMode::Cross2d);
        let clean_unidi = p.run(fused, ScanMode::Unidi);
        p.x[2 * l + pix] = f32::NAN; // batch 0, channel 2
        let cross = p.run(fused, ScanMode::Cross2d);
        let unidi = p.run(fused, ScanMode::Unidi);
        p.x = clean_x;
        let half = d * l;
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert!(
            cross[..half].iter().all(|v| v.is_nan()),
            "cross2d (fused {fused})"
        );
        assert_eq!(bits(&cross[half..]), bits(&clean_cross[half..]));
        for ch in 0..d {
            for q in 0..l {
                let (got, was) = (unidi[ch * l + q], clean_unidi[ch * l + q]);
                if q >= pix {
                    assert!(
                        got.is_nan(),
                        "unidi (fused {fused}) ch {ch} pixel {q}: {got}"
                    );
                } else {
                    assert_eq!(got.to_bits(), was.to_bits(), "unidi ch {ch} pixel {q}");
                }
            }
        }
        assert_eq!(bits(&unidi[half..]), bits(&clean_unidi[half..]));
    }
}

#[test]
fn check_cpu_passes_on_the_machine_running_the_tests() {
    // This test binary executes code of the compiled level, so the CPU must offer it.
    assert_eq!(check_cpu(), Ok(()));
    let e = CpuError::compare(
        ss2d_std::core::SimdLevel::Avx512,
        ss2d_std::core::SimdLevel::Avx2,
    )
    .unwrap_err();
    assert!(e.to_string().contains("x86-64-v4"), "{e}");
}

/// The core fused plan for an empty problem whose grid is so large that `L * LANES` overflows
/// (`batch = 0` or `dim = 0`): `scratch_len` saturates instead of overflowing (found by the
/// `api` fuzz target), there are no work units, and a run succeeds with no scratch.
#[test]
fn fused_plan_for_an_empty_problem_with_a_huge_grid_needs_no_scratch() {
    use ss2d_std::core::fused::{CrossMode, FusedPlan, FusedShape, FusedSplit, FusedWeights};
    let w = [0.5f32; 4];
    for (batch, dim) in [(0usize, 1usize), (3, 0)] {
        let shape = FusedShape {
            batch,
            dim,
            h: usize::MAX / 2,
            w: 1,
            dstate: 1,
            dt_rank: 1,
            mode: CrossMode::Cross2d,
            layout: Layout::ChannelLast,
        };
        let d4 = 4 * dim;
        let weights = FusedWeights {
            dt_projs_weight: &w[..d4],
            dt_projs_bias: &w[..d4],
            a_logs: &w[..d4],
            ds: &w[..d4],
        };
        let plan = if batch == 0 {
            FusedPlan::new(&shape, weights, &[], &[])
        } else {
            // proj is `B * L * 4 * (R + 2N)` and cannot exist: a size error.
            let r = FusedPlan::new(&shape, weights, &[], &[]);
            assert!(
                matches!(r, Err(Error::Overflow { .. }) | Err(Error::Length { .. })),
                "{r:?}"
            );
            continue;
        }
        .unwrap();
        for split in [FusedSplit::All, FusedSplit::Pairs, FusedSplit::Dirs] {
            assert_eq!(plan.units(split), 0, "{split:?}");
        }
        // `All` holds a whole direction (`L` vectors): saturated.
        assert_eq!(plan.scratch_len(FusedSplit::All), usize::MAX);
        assert_eq!(plan.out_len(), 0);
        assert_eq!(plan.run(&mut [], &mut []), Ok(()));
    }
}
