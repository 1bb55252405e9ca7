//! Numerics at the edges of the domain (docs/design.md section 6): softplus arguments up to 1e4,
//! `dt * A` down to -1e4 and beyond, `A = 0`, huge and subnormal values. Outputs are finite
//! wherever the math is finite and agree with the f64 reference; NaN is never invented from
//! finite inputs; infinities in any input give the same class (finite / NaN / +-inf) per
//! element as the f32 reference; a dirty scratch (NaN, infinities, signalling NaN, random
//! bits) never changes the fused scan's result.
//!
//! NaN propagation and lane isolation per input, infinite `delta`, the model-domain extremes
//! and NaN-prefilled 1D scratch are in `special_values.rs` and `prop_scan.rs`; not repeated here.
#![forbid(unsafe_code)]

use ss2d_conformance::{lcg, Lcg, Problem, Spec};
use ss2d_core::fused::{combine, CrossMode, FusedPlan, FusedShape, FusedSplit, FusedWeights};
use ss2d_core::{BcLayout, Layout, MAX_LANES as LANES};

/// Kernel vs f64 reference, `max|err| <= TOL x max|ref|` (the measured error is ~5e-7).
const TOL: f64 = 1e-5;

/// Elementwise `|got - want| <= rel * max|want| + abs`, `got` finite; returns the worst
/// `|got - want| / max|want|`.
fn check_finite_close(what: &str, got: &[f32], want: &[f64], rel: f64, abs: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let max = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(max.is_finite(), "{what}: the f64 reference is not finite");
    let tol = rel * max + abs;
    let mut worst = 0.0f64;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.is_finite(),
            "{what}: index {i}: kernel {g:e}, reference {w:e}"
        );
        let e = (g as f64 - w).abs();
        assert!(
            e <= tol,
            "{what}: index {i}: kernel {g:e}, reference {w:e}, |diff| {e:e} > {tol:e}"
        );
        if max > 0.0 {
            worst = worst.max(e / max);
        }
    }
    worst
}

/// Runs the kernel and the f64 reference and checks `out` and the final state.
fn kernel_matches_reference(what: &str, p: &Problem, rel: f64, abs: f64) -> f64 {
    let (out, st) = p.run();
    let (rout, rst) = p.reference::<f64>();
    let mut worst = check_finite_close(&format!("{what}: out"), &out, &rout, rel, abs);
    if let (Some(s), Some(r)) = (st, rst) {
        worst = worst.max(check_finite_close(
            &format!("{what}: final state"),
            &s,
            &r,
            rel,
            abs,
        ));
    }
    worst
}

/// One channel per combination: channel `d` gets `delta[.., d, ..] = deltas[d]` (raw, before
/// softplus) and `A[d, ..] = a[d]`; everything else small and smooth.
fn per_channel(deltas: &[f32], a_vals: &[f32], softplus: bool, layout: Layout) -> Problem {
    assert_eq!(deltas.len(), a_vals.len());
    let dim = deltas.len();
    let mut p = Spec {
        b: BcLayout::Grouped(1),
        c: BcLayout::Constant,
        layout,
        softplus,
        has_bias: false,
        seed: 7,
        ..Spec::full(2, dim, 70, 4)
    }
    .build();
    let s = p.shape;
    for b in 0..s.batch {
        for (d, &dl) in deltas.iter().enumerate() {
            for l in 0..s.seqlen {
                let i = match layout {
                    Layout::ChannelFirst => (b * dim + d) * s.seqlen + l,
                    Layout::ChannelLast => (b * s.seqlen + l) * dim + d,
                };
                p.delta[i] = dl;
            }
        }
    }
    for (row, &a) in p.a.chunks_mut(s.dstate).zip(a_vals) {
        row.fill(a);
    }
    p
}

/// Softplus arguments up to 1e4 (dt = delta past the torch threshold 20) and down to -1e4
/// (dt underflows to 0), each with `A` from -1e4 to -1e-4: `dt * A` spans 0 to -1e8. Every
/// output is finite and within `TOL` x max|ref| of the f64 reference.
#[test]
fn softplus_up_to_1e4_and_decay_down_to_minus_1e4_stay_finite() {
    let raw = [
        1e4f32, 9999.5, 1e3, 88.8, 20.001, 20.0, 19.999, 1.0, 0.0, -20.0, -88.0, -104.0, -1e3, -1e4,
    ];
    let a_set = [-1e4f32, -1.0, -1e-4];
    let mut deltas = Vec::new();
    let mut a_vals = Vec::new();
    for &dl in &raw {
        for &a in &a_set {
            deltas.push(dl);
            a_vals.push(a);
        }
    }
    let mut worst = 0.0f64;
    for layout in [Layout::ChannelFirst, Layout::ChannelLast] {
        let p = per_channel(&deltas, &a_vals, true, layout);
        worst = worst.max(kernel_matches_reference(
            &format!("softplus edges ({layout:?})"),
            &p,
            TOL,
            0.0,
        ));
    }
    // dt * A exactly -1e4 from both sides: dt = 1 (softplus off) with A = -1e4, and
    // dt = 1e4 with A = -1.
    let p = per_channel(
        &[1.0, 1e4, 1e4],
        &[-1e4, -1.0, 0.0],
        false,
        Layout::ChannelFirst,
    );
    worst = worst.max(kernel_matches_reference("dt*A = -1e4", &p, TOL, 0.0));
    eprintln!("worst |kernel - f64 reference| / max|ref| at the dt/A edges: {worst:.3e}");
}

/// `A = 0` (and `-0.0`): `dA = 1` exactly, no decay; the state is a plain running sum over 300
/// steps (several chunks). Matches the f64 reference; with `dt` up to 1e4 too.
#[test]
fn a_zero_accumulates_without_decay() {
    for softplus in [false, true] {
        let deltas: Vec<f32> = [0.5f32, 1e-3, 1e4, 3.0, 0.5, 1e-3, 1e4, 3.0]
            .iter()
            .map(|&dt| {
                if softplus && dt < 20.0 {
                    softplus_inv(dt)
                } else {
                    dt
                }
            })
            .collect();
        let a_vals = [0.0f32, 0.0, 0.0, 0.0, -0.0, -0.0, -0.0, -0.0];
        let p = per_channel(&deltas, &a_vals, softplus, Layout::ChannelFirst);
        kernel_matches_reference(&format!("A = 0, softplus {softplus}"), &p, TOL, 0.0);
        // A longer sequence (300 steps) through the chunk boundaries.
        let mut q = Spec {
            has_bias: false,
            softplus,
            seed: 11,
            ..Spec::full(1, LANES + 3, 300, 3)
        }
        .build();
        q.a.iter_mut().for_each(|a| *a = 0.0);
        kernel_matches_reference(
            &format!("A = 0, L = 300, softplus {softplus}"),
            &q,
            TOL,
            0.0,
        );
    }
}

/// `softplus^-1(y) = ln(e^y - 1)` in f64, rounded to f32.
fn softplus_inv(y: f32) -> f32 {
    ss2d_conformance::softplus_inv(y as f64) as f32
}

/// Huge magnitudes whose exact results stay inside the f32 range: `u` near 1e38 through the
/// skip connection, `dt * u * B` near 1e36, an initial state of 1e38 carried by `A = 0`.
/// Outputs are finite (no spurious overflow to inf or NaN) and within `TOL` x max|ref|.
#[test]
fn huge_values_stay_finite_where_the_math_is_finite() {
    let base = Spec {
        has_bias: false,
        has_z: false,
        softplus: false,
        seed: 21,
        ..Spec::full(1, LANES + 1, 40, 2)
    }
    .build();
    // (a) u ~ 1e38 through D = 2 with B = C = 0: out = 2u, |out| up to 2e38.
    let mut p = base.clone();
    let mut g = lcg(5);
    p.u = p.u.iter().map(|_| g.uniform(-1.0, 1.0) * 1e38).collect();
    p.d_skip = Some(vec![2.0; p.shape.dim]);
    p.b.iter_mut().for_each(|v| *v = 0.0);
    p.c.iter_mut().for_each(|v| *v = 0.0);
    p.initial_state = None;
    kernel_matches_reference("u ~ 1e38 through D", &p, TOL, 0.0);
    // (b) u ~ 1e18 and B ~ 1e18 (dt*u*B ~ 1e36), C ~ 1e-18 (out ~ 1e18), fast decay.
    let mut p = base.clone();
    p.u.iter_mut().for_each(|v| *v *= 1e18);
    p.b.iter_mut().for_each(|v| *v *= 1e18);
    p.c.iter_mut().for_each(|v| *v *= 1e-18);
    p.a.iter_mut().for_each(|v| *v = -2.0);
    p.d_skip = None;
    p.initial_state = None;
    p.delta.iter_mut().for_each(|v| *v = 0.5);
    kernel_matches_reference("dt*u*B ~ 1e36", &p, TOL, 0.0);
    // (c) initial state 1e38 carried unchanged by A = 0 (dA = 1), tiny inputs, C = 1.
    let mut p = base.clone();
    p.a.iter_mut().for_each(|v| *v = 0.0);
    p.initial_state = Some(vec![1e38; p.state_len()]);
    p.c.iter_mut().for_each(|v| *v = 0.5);
    p.u.iter_mut().for_each(|v| *v *= 1e-3);
    p.d_skip = None;
    kernel_matches_reference("state 1e38, A = 0", &p, TOL, 0.0);
}

/// Subnormal inputs (u, delta without softplus, A, B, C, D, z, initial state, delta_bias) give
/// finite outputs within `TOL x max|ref| + f32::MIN_POSITIVE` of the f64 reference (f32
/// products of subnormals flush toward zero where f64 keeps them; nothing becomes NaN or inf).
#[test]
fn subnormals_stay_finite_and_close() {
    let sub = f32::MIN_POSITIVE / 4.0; // 2.9e-39
    let tiny = 1e-44f32; // a few ulps above zero
    for softplus in [false, true] {
        for (name, which) in [
            ("u", 0),
            ("delta", 1),
            ("A", 2),
            ("B and C", 3),
            ("D, z and state", 4),
            ("everything", 5),
        ] {
            let mut p = Spec {
                softplus,
                has_bias: softplus,
                seed: 31 + which,
                ..Spec::full(2, LANES + 2, 70, 3)
            }
            .build();
            let mut g = lcg(which);
            let mut s = |v: &mut f32| *v = if g.below(2) == 0 { sub } else { -tiny } * v.signum();
            if which == 0 || which == 5 {
                p.u.iter_mut().for_each(&mut s);
            }
            if (which == 1 || which == 5) && !softplus {
                p.delta.iter_mut().for_each(|v| *v = sub);
            }
            if which == 1 && softplus {
                p.delta_bias
                    .as_mut()
                    .unwrap()
                    .iter_mut()
                    .for_each(|v| *v = sub);
            }
            if which == 2 || which == 5 {
                p.a.iter_mut().for_each(|v| *v = -sub);
            }
            if which == 3 || which == 5 {
                p.b.iter_mut().for_each(&mut s);
                p.c.iter_mut().for_each(&mut s);
            }
            if which == 4 || which == 5 {
                p.d_skip.as_mut().unwrap().iter_mut().for_each(&mut s);
                p.z.as_mut().unwrap().iter_mut().for_each(&mut s);
                p.initial_state
                    .as_mut()
                    .unwrap()
                    .iter_mut()
                    .for_each(&mut s);
            }
            kernel_matches_reference(
                &format!("subnormal {name}, softplus {softplus}"),
                &p,
                TOL,
                f32::MIN_POSITIVE as f64,
            );
        }
    }
}

/// A sweep of finite inputs far outside the model's usual ranges but inside the documented
/// domain (softplus argument in [-1e4, 1e4], `A` in [-1e4, 0], `|u|, |B|, |C|` up to 1e3, `|z|`
/// up to 100, `dt >= 0` without softplus): never a NaN or infinity, always within
/// `TOL` x max|ref| of the f64 reference.
#[test]
fn nan_is_never_invented_from_finite_inputs() {
    let mut worst = 0.0f64;
    for seed in 0..24u64 {
        let softplus = seed % 2 == 0;
        let layout = if seed % 3 == 0 {
            Layout::ChannelLast
        } else {
            Layout::ChannelFirst
        };
        let mut p = Spec {
            softplus,
            has_bias: softplus,
            layout,
            b: if seed % 4 == 0 {
                BcLayout::Constant
            } else {
                BcLayout::Grouped(2)
            },
            seed: 100 + seed,
            ..Spec::full(2, 2 * LANES + 2, 97, 1 + (seed as usize % 5) * 4)
        }
        .build();
        let mut g = lcg(seed);
        // Log-uniform magnitudes with random signs.
        let lu = |g: &mut Lcg, lo: f32, hi: f32| -> f32 {
            let m = g.uniform(lo.ln(), hi.ln()).exp();
            if g.below(2) == 0 {
                m
            } else {
                -m
            }
        };
        for v in p.delta.iter_mut() {
            *v = if softplus {
                lu(&mut g, 1e-3, 1e4)
            } else {
                lu(&mut g, 1e-6, 1e4).abs()
            };
        }
        if let Some(b) = p.delta_bias.as_mut() {
            b.iter_mut().for_each(|v| *v = g.uniform(-2.0, 2.0));
        }
        for v in p.a.iter_mut() {
            *v = -lu(&mut g, 1e-6, 1e4).abs();
        }
        for t in [&mut p.u, &mut p.b, &mut p.c] {
            for v in t.iter_mut() {
                *v = lu(&mut g, 1e-3, 1e3);
            }
        }
        for v in p.z.as_mut().unwrap().iter_mut() {
            *v = g.uniform(-100.0, 100.0);
        }
        worst = worst.max(kernel_matches_reference(
            &format!("sweep seed {seed}"),
            &p,
            TOL,
            0.0,
        ));
    }
    eprintln!("worst |kernel - f64 reference| / max|ref| over the sweep: {worst:.3e}");
}

/// Classes: 0 finite, 1 NaN, 2 +inf, 3 -inf.
fn class(x: f32) -> u8 {
    if x.is_nan() {
        1
    } else if x == f32::INFINITY {
        2
    } else if x == f32::NEG_INFINITY {
        3
    } else {
        0
    }
}

/// An infinity in `u`, `B`, `C`, `D`, `z` (either sign), the initial state or `A = +inf`:
/// every output element has the same class (finite / NaN / +inf / -inf) as the f32 reference's,
/// and at least one element is not finite.
#[test]
fn infinities_in_any_input_match_the_reference_class() {
    let base = Spec {
        b: BcLayout::Grouped(1),
        c: BcLayout::Grouped(2),
        seed: 77,
        ..Spec::full(1, 2 * LANES, 40, 3)
    }
    .build();
    let s = base.shape;
    let (d, l, n) = (LANES + 1, 17, s.dstate);
    let at = d * s.seqlen + l;
    type Poke = fn(&mut Problem, usize, usize, usize, f32);
    let pokes: [(&str, Poke); 7] = [
        ("u", |p, at, _, _, v| p.u[at] = v),
        ("z", |p, at, _, _, v| p.z.as_mut().unwrap()[at] = v),
        ("B", |p, _, _, _, v| p.b[17] = v),
        ("C", |p, _, _, _, v| p.c[40 + 17] = v),
        ("D", |p, _, d, _, v| p.d_skip.as_mut().unwrap()[d] = v),
        ("initial_state", |p, _, d, n, v| {
            p.initial_state.as_mut().unwrap()[d * n] = v
        }),
        ("A", |p, _, d, n, v| {
            if v > 0.0 {
                p.a[d * n] = v
            }
        }),
    ];
    for (name, poke) in pokes {
        for v in [f32::INFINITY, f32::NEG_INFINITY] {
            let mut p = base.clone();
            poke(&mut p, at, d, n, v);
            let (out, _) = p.run();
            let (rout, _) = p.reference::<f32>();
            let mut nonfinite = 0;
            for (i, (&g, &r)) in out.iter().zip(&rout).enumerate() {
                assert_eq!(
                    class(g),
                    class(r),
                    "{v} in {name}: index {i}: kernel {g:e}, f32 reference {r:e}"
                );
                nonfinite += usize::from(!r.is_finite());
            }
            let skipped = name == "A" && v < 0.0;
            assert!(
                skipped || nonfinite > 0,
                "{v} in {name}: nothing propagated"
            );
        }
    }
}

/// A fused 2D problem with model-like values.
struct Fused {
    shape: FusedShape,
    x: Vec<f32>,
    proj: Vec<f32>,
    wdt: Vec<f32>,
    bias: Vec<f32>,
    alogs: Vec<f32>,
    ds: Vec<f32>,
}

impl Fused {
    fn new(shape: FusedShape, seed: u64) -> Fused {
        // SS2D_ISA first: a plan made before another test applies it would run at another level.
        ss2d_conformance::level();
        let mut g = lcg(seed);
        let (b, d, l) = (shape.batch, shape.dim, shape.h * shape.w);
        let c = shape.dt_rank + 2 * shape.dstate;
        Fused {
            x: g.fill(b * d * l, -2.0, 2.0),
            proj: g.fill(b * l * 4 * c, -1.0, 1.0),
            wdt: g.fill(4 * d * shape.dt_rank, -1.0, 1.0),
            bias: g.fill(4 * d, -4.0, 1.0),
            alogs: g.fill(4 * d * shape.dstate, -1.0, 2.5),
            ds: g.fill(4 * d, -1.0, 1.0),
            shape,
        }
    }

    fn plan(&self) -> FusedPlan<'_> {
        let w = FusedWeights {
            dt_projs_weight: &self.wdt,
            dt_projs_bias: &self.bias,
            a_logs: &self.alogs,
            ds: &self.ds,
        };
        FusedPlan::new(&self.shape, w, &self.x, &self.proj).expect("valid fused problem")
    }

    /// Runs `split` in `count` items with scratch and output buffers prefilled by `fill`
    /// (scratch at element offset `off`); returns the combined output.
    fn run(
        &self,
        split: FusedSplit,
        count: usize,
        fill: &dyn Fn(usize) -> f32,
        off: usize,
    ) -> Vec<f32> {
        self.run_plan(self.plan(), split, count, fill, off)
    }

    /// [`Fused::run`] with a given plan (of this problem).
    fn run_plan(
        &self,
        plan: FusedPlan<'_>,
        split: FusedSplit,
        count: usize,
        fill: &dyn Fn(usize) -> f32,
        off: usize,
    ) -> Vec<f32> {
        let need = plan.scratch_len(split);
        let mut buf: Vec<f32> = (0..need + off).map(fill).collect();
        let scratch = &mut buf[off..];
        let mut store: Vec<Vec<f32>> = (0..split.buffers())
            .map(|k| (0..plan.out_len()).map(|i| fill(i + k)).collect())
            .collect();
        let mut bufs: Vec<&mut [f32]> = store.iter_mut().map(|b| b.as_mut_slice()).collect();
        {
            let mut items = plan.split(&mut bufs, split, count).expect("split");
            for item in items.items() {
                item.run(scratch).expect("item");
            }
        }
        let n = bufs[0].len();
        combine(split, &mut bufs, 0..n);
        store.swap_remove(0)
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// `(B, L, D)` <-> `(B, D, L)`: element `(b, i, j)` of a `(B, rows, cols)` tensor to `(b, j, i)`.
fn swap_last_two(v: &[f32], batch: usize, rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![f32::NAN; v.len()];
    for b in 0..batch {
        for i in 0..rows {
            for j in 0..cols {
                out[(b * cols + j) * rows + i] = v[(b * rows + i) * cols + j];
            }
        }
    }
    out
}

/// The grouped `d_state = 1` kernel (channel-last, several channel panels per unit): the same
/// bits for every group, split and item count, and the same bits as the general kernel (which
/// runs channel-first data) on the transposed problem. Covers partial last panels and groups
/// that do not divide the panel count.
#[test]
fn grouped_n1_kernel_is_bitwise_the_general_kernel() {
    let cases = [
        (1, 3, 4, 1, CrossMode::Cross2d),
        (LANES - 1, 5, 7, 2, CrossMode::Cross2d),
        (LANES + 3, 4, 9, 6, CrossMode::Bidi),
        (2 * LANES, 6, 5, 3, CrossMode::Cross2d),
        (3 * LANES + 5, 3, 11, 6, CrossMode::Unidi),
        (5 * LANES, 7, 6, 4, CrossMode::Cross2d),
        (6 * LANES - 3, 4, 5, 6, CrossMode::Cross2d),
    ];
    let mut compared = 0;
    for (i, (dim, h, w, r, mode)) in cases.into_iter().enumerate() {
        let shape = FusedShape {
            batch: 2,
            dim,
            h,
            w,
            dstate: 1,
            dt_rank: r,
            mode,
            layout: Layout::ChannelLast,
        };
        let f = Fused::new(shape, 1300 + i as u64);
        let panels = dim.div_ceil(f.plan().level().lanes());
        let want = f.run_plan(f.plan().with_group(1), FusedSplit::All, 1, &|_| 0.0, 0);
        assert!(want.iter().all(|v| v.is_finite()), "{shape:?}");
        for g in 1..=ss2d_core::fused::MAX_GROUP + 1 {
            let plan = f.plan().with_group(g);
            assert_eq!(plan.group(), g.min(ss2d_core::fused::MAX_GROUP).min(panels));
            for split in [FusedSplit::All, FusedSplit::Pairs, FusedSplit::Dirs] {
                for count in [1, 2, 5] {
                    let got = f.run_plan(plan, split, count, &|_| f32::NAN, 3);
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "{shape:?}: group {g}, {split:?} x {count}"
                    );
                    compared += 1;
                }
            }
        }
        // The general kernel on the channel-first problem.
        let l = h * w;
        let cf = Fused {
            shape: FusedShape {
                layout: Layout::ChannelFirst,
                ..shape
            },
            x: swap_last_two(&f.x, 2, l, dim),
            proj: f.proj.clone(),
            wdt: f.wdt.clone(),
            bias: f.bias.clone(),
            alogs: f.alogs.clone(),
            ds: f.ds.clone(),
        };
        assert_eq!(
            cf.plan().with_group(4).group(),
            1,
            "channel-first runs ungrouped"
        );
        let got = swap_last_two(&cf.run(FusedSplit::All, 1, &|_| 0.0, 0), 2, dim, l);
        assert_eq!(
            bits(&got),
            bits(&want),
            "{shape:?}: general kernel (channel-first)"
        );
    }
    assert!(compared > 0);
}

/// A buffer painter: element index to value.
type Fill = Box<dyn Fn(usize) -> f32>;

/// The fused scan with its scratch (and split output buffers) prefilled with NaN, infinities,
/// a signalling NaN, huge values or random bit patterns, at every misalignment within a vector:
/// bitwise the result of a zero-filled run, for every split and item count.
#[test]
fn dirty_scratch_never_changes_the_fused_result() {
    for (i, (dim, h, w, n, r, mode, layout)) in [
        (
            LANES + 3,
            5,
            7,
            4,
            2,
            CrossMode::Cross2d,
            Layout::ChannelFirst,
        ),
        (2 * LANES, 9, 8, 1, 1, CrossMode::Bidi, Layout::ChannelLast),
        (3, 1, 1, 16, 3, CrossMode::Unidi, Layout::ChannelFirst),
        (
            LANES - 1,
            11,
            13,
            2,
            1,
            CrossMode::Cross2d,
            Layout::ChannelLast,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let shape = FusedShape {
            batch: 2,
            dim,
            h,
            w,
            dstate: n,
            dt_rank: r,
            mode,
            layout,
        };
        let f = Fused::new(shape, 900 + i as u64);
        let clean = f.run(FusedSplit::All, 1, &|_| 0.0, 0);
        assert!(clean.iter().all(|v| v.is_finite()), "{shape:?}: clean run");
        let snan = f32::from_bits(0x7f80_0001);
        let fills: [(&str, Fill); 6] = [
            ("NaN", Box::new(|_| f32::NAN)),
            ("+inf", Box::new(|_| f32::INFINITY)),
            ("-inf", Box::new(|_| f32::NEG_INFINITY)),
            ("sNaN", Box::new(move |_| snan)),
            ("huge", Box::new(|_| -3e38)),
            (
                "random bits",
                Box::new(|k| f32::from_bits((k as u32).wrapping_mul(2_654_435_761))),
            ),
        ];
        for (j, (name, fill)) in fills.iter().enumerate() {
            for split in [FusedSplit::All, FusedSplit::Pairs, FusedSplit::Dirs] {
                for count in [1, 3] {
                    let off = (j * 5 + count) % 16;
                    let got = f.run(split, count, fill.as_ref(), off);
                    assert_eq!(
                        bits(&got),
                        bits(&clean),
                        "{shape:?}: scratch {name}, {split:?} x {count}, offset {off}"
                    );
                }
            }
        }
    }
}

/// The accuracy actually reached at the level this test binary was built for (the numbers of
/// the "Errors and numerics" table in ss2d-core's crate docs; `.ci/run` runs every level):
/// the worst `max|kernel - want| / max|want|` over every golden selective-scan case (`out`
/// and `last_state`, through the `ss2d scan` loading path), over 72 random model-domain
/// problems against the f64 reference (both layouts, every walk, grouped and constant B/C,
/// N in {1, 4, 16}, L up to 2100), and over every golden SS2D layer (`output`, fast backend).
/// Each must stay within the 1e-5 contract.
#[test]
fn tolerance_per_isa_level_report() {
    use ss2d_cli::io::TensorFile;
    use ss2d_conformance::{golden_cases, rel_err, WalkKind};
    // NaN-propagating (an unmatched NaN or infinity is an infinite error).
    let ratio = |got: &[f32], want: &[f32]| -> f64 { rel_err(got, want) };
    // Golden selective scans.
    let mut golden = 0.0f64;
    for path in golden_cases("selective_scan") {
        let f = TensorFile::open(&path).unwrap();
        let opts = ss2d_cli::scan::ScanOptions {
            backend: ss2d_cli::scan::Backend::Kernel { threads: 1 },
            delta_softplus: None,
            return_last_state: None,
        };
        let r = ss2d_cli::scan::scan_file(&f, &opts).unwrap();
        golden = golden.max(ratio(&r.out, f.tensor("out").unwrap().data()));
        if let (Some(st), Ok(want)) = (&r.last_state, f.tensor("last_state")) {
            golden = golden.max(ratio(st, want.data()));
        }
    }
    // Random model-domain problems against the f64 reference.
    let mut random = 0.0f64;
    for seed in 0..72u64 {
        let n = [1, 4, 16][seed as usize % 3];
        let (l, walk) = match seed % 4 {
            0 => (97, WalkKind::Forward),
            1 => (64, WalkKind::Reverse),
            2 => (
                35,
                WalkKind::Cross {
                    h: 5,
                    w: 7,
                    k: (seed as usize / 4) % 4,
                },
            ),
            _ => (if seed % 8 == 3 { 2100 } else { 300 }, WalkKind::Forward),
        };
        let p = Spec {
            layout: if seed % 5 < 2 {
                Layout::ChannelLast
            } else {
                Layout::ChannelFirst
            },
            b: if seed % 3 == 0 {
                BcLayout::Constant
            } else {
                BcLayout::Grouped(2)
            },
            c: BcLayout::Grouped(if seed % 2 == 0 { 1 } else { 2 }),
            walk,
            has_z: seed % 2 == 0,
            has_bias: seed % 3 != 1,
            seed: 4000 + seed,
            ..Spec::full(2, 2 * LANES + 2, l, n)
        }
        .build();
        let (out, st) = p.run();
        let (rout, rst) = p.reference::<f64>();
        let r = |got: &[f32], want: &[f64]| -> f64 { rel_err(got, want) };
        random = random.max(r(&out, &rout));
        random = random.max(r(&st.unwrap(), &rst.unwrap()));
    }
    // Golden SS2D layers.
    let mut layer = 0.0f64;
    for path in golden_cases("ss2d") {
        let f = TensorFile::open(&path).unwrap();
        let opts = ss2d_cli::layer::LayerOptions {
            threads: 2,
            ..Default::default()
        };
        let r = ss2d_cli::layer::run_layer(&f, &f, &opts).unwrap();
        layer = layer.max(ratio(&r.output, f.tensor("output").unwrap().data()));
    }
    eprintln!(
        "TOLERANCE {}: golden selective scan {golden:.2e}, random vs f64 reference {random:.2e}, \
         golden SS2D layer {layer:.2e} (max|err| / max|ref|)",
        ss2d_core::SimdLevel::current().name()
    );
    assert!(golden <= 1e-5 && random <= 1e-5 && layer <= 1e-5);
}
