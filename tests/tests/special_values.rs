//! Special values: NaN and infinity propagate exactly where the reference's do and never leak
//! into other channels of a SIMD panel; extreme but valid model-domain inputs stay finite and
//! accurate; the vector `exp` near the float32 overflow threshold.
#![forbid(unsafe_code)]

use ss2d_conformance::{check_close, lcg, Problem, Spec};
use ss2d_core::math::{map, MathFn};
use ss2d_core::{reference, BcLayout, Layout, ScanArgs, ScanShape, Walk, MAX_LANES as LANES};

/// Kernel vs f64 reference, `max|err| <= TOL x max|ref|` (the measured error is ~5e-7).
const TOL: f64 = 1e-5;

/// Index of `(b, d, l)` in a `u`-shaped tensor.
fn idx(s: &ScanShape, b: usize, d: usize, l: usize) -> usize {
    match s.layout {
        Layout::ChannelFirst => (b * s.dim + d) * s.seqlen + l,
        Layout::ChannelLast => (b * s.seqlen + l) * s.dim + d,
    }
}

fn base(layout: Layout) -> Problem {
    Spec {
        b: BcLayout::Grouped(1),
        c: BcLayout::Grouped(3),
        layout,
        seed: 99,
        ..Spec::full(2, 3 * LANES, 100, 5)
    }
    .build()
}

/// Every element of the kernel's output is NaN exactly where the f64 reference's is, and
/// otherwise bitwise equal to the clean run.
fn check_nan_pattern(what: &str, clean: &[f32], got: &[f32], reference: &[f64]) -> usize {
    let mut nans = 0;
    for (i, ((&g, &c), &r)) in got.iter().zip(clean).zip(reference).enumerate() {
        if r.is_nan() {
            assert!(g.is_nan(), "{what}: index {i}: reference NaN, kernel {g:e}");
            nans += 1;
        } else {
            assert_eq!(
                g.to_bits(),
                c.to_bits(),
                "{what}: index {i}: kernel {g:e} differs from the clean run {c:e} (reference {r:e})"
            );
        }
    }
    nans
}

#[test]
fn nan_propagates_like_the_reference_and_stays_in_its_lane() {
    for layout in [Layout::ChannelFirst, Layout::ChannelLast] {
        let p = base(layout);
        let s = p.shape;
        let (clean, clean_st) = p.run();
        let clean_st = clean_st.expect("state");
        let (n, l) = (s.dstate, s.seqlen);
        let d = LANES + 2; // lane 2 of the second panel
        let g3 = d / (s.dim / 3); // its C group
        type Poke = Box<dyn Fn(&mut Problem)>;
        let pokes: Vec<(&str, Poke)> = vec![
            ("u", Box::new(move |p| p.u[idx(&s, 1, d, 40)] = f32::NAN)),
            (
                "delta",
                Box::new(move |p| p.delta[idx(&s, 1, d, 40)] = f32::NAN),
            ),
            (
                "z",
                Box::new(move |p| p.z.as_mut().expect("z")[idx(&s, 1, d, 40)] = f32::NAN),
            ),
            ("A", Box::new(move |p| p.a[d * n + 3] = f32::NAN)),
            (
                "D",
                Box::new(move |p| p.d_skip.as_mut().expect("D")[d] = f32::NAN),
            ),
            (
                "delta_bias",
                Box::new(move |p| p.delta_bias.as_mut().expect("bias")[d] = f32::NAN),
            ),
            (
                "initial_state",
                Box::new(move |p| {
                    p.initial_state.as_mut().expect("init")[(s.dim + d) * n + 4] = f32::NAN
                }),
            ),
            // B (one group): every channel of batch 0 from step 40 on.
            ("B", Box::new(move |p| p.b[(2 * l) + 40] = f32::NAN)),
            // C (group g3 of batch 1, state 1, step 70): that group's channels at step 70.
            (
                "C",
                Box::new(move |p| p.c[((3 + g3) * n + 1) * l + 70] = f32::NAN),
            ),
        ];
        for (name, poke) in pokes {
            let mut q = p.clone();
            poke(&mut q);
            let (out, st) = q.run();
            let (rout, rst) = q.reference::<f64>();
            let what = format!("NaN in {name} ({layout:?})");
            let nans = check_nan_pattern(&what, &clean, &out, &rout);
            assert!(nans > 0, "{what}: the reference has no NaN output");
            check_nan_pattern(
                &format!("{what} final state"),
                &clean_st,
                &st.expect("state"),
                &rst.expect("state"),
            );
        }
    }
}

/// Classes: 0 finite, 1 NaN, 2 +inf, 3 -inf.
fn class(x: f64) -> u8 {
    if x.is_nan() {
        1
    } else if x == f64::INFINITY {
        2
    } else if x == f64::NEG_INFINITY {
        3
    } else {
        0
    }
}

#[test]
fn infinite_delta_matches_the_reference() {
    for layout in [Layout::ChannelFirst, Layout::ChannelLast] {
        let p = base(layout);
        let s = p.shape;
        for (val, pos) in [(f32::INFINITY, 30), (f32::NEG_INFINITY, 31)] {
            let mut q = p.clone();
            let bias = q.delta_bias.as_ref().expect("bias")[5];
            q.delta[idx(&s, 0, 5, pos)] = val;
            // -inf in the bias of channel 7 (softplus -> dt = 0: every step is skipped).
            q.delta_bias.as_mut().expect("bias")[7] = f32::NEG_INFINITY;
            let (out, st) = q.run();
            let st = st.expect("state");
            let (rout, rst) = q.reference::<f32>();
            let (r64, _) = q.reference::<f64>();
            let what = format!("delta {val} ({layout:?}), bias {bias}");
            let scale = r64
                .iter()
                .filter(|v| v.is_finite())
                .fold(0.0f64, |m, v| m.max(v.abs()));
            for (i, ((&g, &r), &r64)) in out.iter().zip(&rout).zip(&r64).enumerate() {
                assert_eq!(
                    class(g as f64),
                    class(r as f64),
                    "{what}: index {i}: kernel {g:e}, f32 reference {r:e}"
                );
                if class(r as f64) == 0 {
                    // Finite results stay accurate (relative to the output's finite scale).
                    assert!(
                        (g as f64 - r64).abs() <= TOL * scale,
                        "{what}: index {i}: kernel {g:e}, reference {r64:e}"
                    );
                }
            }
            for (i, (&g, &r)) in st.iter().zip(rst.as_ref().expect("state")).enumerate() {
                assert_eq!(class(g as f64), class(r as f64), "{what}: state {i}");
            }
            // Channel 7 never moves: its final state is its initial state.
            let n = s.dstate;
            for b in 0..s.batch {
                let range = (b * s.dim + 7) * n..(b * s.dim + 8) * n;
                assert_eq!(
                    st[range.clone()],
                    q.initial_state.as_ref().expect("init")[range],
                    "{what}: dt = 0 must keep the state"
                );
            }
            if val == f32::INFINITY {
                let i = idx(&s, 0, 5, pos);
                assert!(
                    !out[i].is_finite(),
                    "{what}: dt = inf gives a finite output"
                );
            }
        }
    }
}

/// Extreme but valid inputs (softplus on): `delta + bias` in [-60, 60] (past the torch
/// threshold 20 and down to dt ~ 1e-26), `|A|` up to e^6 (dt * A down to ~ -24000: dA
/// underflows to 0), large `u`, `B`, `C`, `D`, initial state, and `z` in [-90, 90] (silu's
/// exp near overflow). Everything stays finite and within `TOL` x max|ref| of the f64 reference.
#[test]
fn model_domain_extremes_stay_finite_and_accurate() {
    let mut worst = 0.0f64;
    for (seed, layout) in [(1u64, Layout::ChannelFirst), (2, Layout::ChannelLast)] {
        let mut p = Spec {
            b: BcLayout::Grouped(2),
            c: BcLayout::Constant,
            layout,
            seed,
            ..Spec::full(2, 2 * LANES + 6, 150, 16)
        }
        .build();
        let mut g = lcg(seed + 10);
        let bdl = p.out_len();
        p.delta = g.fill(bdl, -50.0, 50.0);
        p.delta_bias = Some(g.fill(p.shape.dim, -10.0, 10.0));
        p.a = (0..p.a.len())
            .map(|_| -(g.uniform(-5.0, 6.0) as f64).exp() as f32)
            .collect();
        p.u = g.fill(bdl, -10.0, 10.0);
        p.b = g.fill(p.b.len(), -10.0, 10.0);
        p.c = g.fill(p.c.len(), -10.0, 10.0);
        p.d_skip = Some(g.fill(p.shape.dim, -10.0, 10.0));
        p.z = Some(g.fill(bdl, -90.0, 90.0));
        p.initial_state = Some(g.fill(p.state_len(), -100.0, 100.0));
        let (out, st) = p.run();
        assert!(out.iter().all(|v| v.is_finite()), "non-finite output");
        let (rout, rst) = p.reference::<f64>();
        let r =
            check_close("extremes out", &out, &rout, TOL, 0.0).unwrap_or_else(|m| panic!("{m}"));
        let rs = check_close(
            "extremes final state",
            &st.expect("state"),
            &rst.expect("state"),
            TOL,
            0.0,
        )
        .unwrap_or_else(|m| panic!("{m}"));
        worst = worst.max(r).max(rs);
    }
    println!("model-domain extremes: worst err/max|ref| {worst:.3e}");
}

/// `f` of `x` through the vector path (a whole vector of `x`).
fn lane0(f: MathFn, x: f32) -> f64 {
    ss2d_conformance::level();
    let mut a = [x; LANES];
    map(f, &mut a);
    a[0] as f64
}

/// `exp2(x)` for `x` in `[127.5, 128)` (and `exp(x)` for `x` in `[88.38, 88.72]`) is a finite
/// float32 (up to 3.4e38), not an overflow. The documented behavior is "overflow gives +inf";
/// these arguments do not overflow.
#[test]
fn exp_is_finite_up_to_the_overflow_threshold() {
    let mut bad = Vec::new();
    for x in [127.0f32, 127.49, 127.5, 127.6, 127.9, 127.99] {
        let got = lane0(MathFn::Exp2, x);
        let want = (x as f64).exp2();
        if (got - want).abs() > 2.5e-7 * want || got.is_nan() {
            bad.push(format!("exp2({x}) = {got:e}, want {want:e}"));
        }
    }
    for x in [88.0f32, 88.37, 88.4, 88.5, 88.7, 88.72] {
        let got = lane0(MathFn::Exp, x);
        let want = (x as f64).exp();
        if (got - want).abs() > 4e-7 * want || got.is_nan() {
            bad.push(format!("exp({x}) = {got:e}, want {want:e}"));
        }
    }
    // True overflow.
    assert_eq!(lane0(MathFn::Exp2, 128.0), f64::INFINITY);
    assert_eq!(lane0(MathFn::Exp, 88.73), f64::INFINITY);
    assert!(
        bad.is_empty(),
        "{} (SIMD level {:?}):\n{}",
        "vector exp overflows below the float32 threshold",
        ss2d_core::SimdLevel::current(),
        bad.join("\n")
    );
}

/// The minimized scan consequence of the `exp` window above: without softplus a negative step
/// gives `dt * A = 88.5` and `dA = e^88.5 = 2.7e38` (finite in float32). With a zero initial
/// state the reference gives `h = dA * 0 + dt * u * B = -88.5`; an infinite `dA` makes
/// `inf * 0 = NaN` instead.
#[test]
fn scan_with_da_near_float_max_is_finite() {
    let shape = ScanShape {
        batch: 1,
        dim: 1,
        seqlen: 1,
        dstate: 1,
        b: BcLayout::Constant,
        c: BcLayout::Constant,
        layout: Layout::ChannelFirst,
    };
    let args = ScanArgs {
        u: &[1.0],
        delta: &[-88.5],
        a: &[-1.0],
        b: &[1.0],
        c: &[1.0],
        ..ScanArgs::default()
    };
    let walk = Walk::forward(1);
    let mut r32 = [0.0f32];
    reference::selective_scan(&shape, &walk, &args, &mut r32, None).expect("reference");
    assert_eq!(r32[0], -88.5);
    let mut out = [0.0f32];
    let need = ss2d_core::scratch_len(&shape.validate().expect("shape"));
    let mut scratch = vec![0.0; need];
    ss2d_conformance::level();
    ss2d_core::selective_scan(&shape, &walk, &args, &mut out, None, &mut scratch).expect("run");
    assert_eq!(
        out[0],
        -88.5,
        "kernel at SIMD level {:?}",
        ss2d_core::SimdLevel::current()
    );
}

/// `A = -inf` (an infinite `A_log`) makes `dA = exp(dt * A) = 0` for every `dt > 0`: each step
/// forgets the state, `h = dt * u * B`. Minimized: one channel, N = 1, two steps, softplus
/// `dt = softplus(-40) = 4.2e-18`, initial state 5, `u = B = C = 1`; the reference gives
/// `out = [4.2e-18, 4.2e-18]`. A kernel that clamps `A * log2(e)` to a finite bound (so that
/// `dt * A2` stays finite) keeps `dA ~ 1` for tiny `dt` and carries the initial state instead.
#[test]
fn infinite_a_forgets_the_state_like_the_reference() {
    let shape = ScanShape {
        batch: 1,
        dim: 1,
        seqlen: 2,
        dstate: 1,
        b: BcLayout::Constant,
        c: BcLayout::Constant,
        layout: Layout::ChannelFirst,
    };
    let args = ScanArgs {
        u: &[1.0, 1.0],
        delta: &[-40.0, -40.0],
        a: &[f32::NEG_INFINITY],
        b: &[1.0],
        c: &[1.0],
        delta_softplus: true,
        initial_state: Some(&[5.0]),
        ..ScanArgs::default()
    };
    let walk = Walk::forward(2);
    let mut want = [0.0f64; 2];
    reference::selective_scan(&shape, &walk, &args, &mut want, None).expect("reference");
    let mut out = [0.0f32; 2];
    let need = ss2d_core::scratch_len(&shape.validate().expect("shape"));
    let mut scratch = vec![0.0; need];
    ss2d_conformance::level();
    ss2d_core::selective_scan(&shape, &walk, &args, &mut out, None, &mut scratch).expect("run");
    check_close("A = -inf", &out, &want, TOL, 0.0).unwrap_or_else(|m| panic!("{m}"));
}
