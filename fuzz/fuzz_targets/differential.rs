//! `differential`: bounded finite inputs through the kernel and through
//! `reference::selective_scan::<f64>`; they agree elementwise within `1e-4 * scale + 1e-6` (per
//! output tensor), outputs are finite, and every work split gives bitwise the same result as the
//! whole run. `scale` is the largest magnitude of the terms the outputs are sums of: the f64
//! reference run on the absolute values (`|u|`, `|B|`, `|C|`, `|D|`, `|z|`, `|h0|`, the same
//! `dt` and `A`) bounds every `sum |term|` elementwise (`silu(|z|) >= |silu(z)|`). Relative to
//! `max|ref|` alone, a tiny problem whose few outputs all cancel (e.g. one output of -0.08 from
//! terms near 100) fails on f32 rounding alone: about 3 in 100,000 one-position scans did.
//!
//! Domain (the model's, with margins):
//! - shapes: batch 1..=2, dim 1..=40, seqlen 0..=160, dstate 1..=16 (sometimes up to 64), B/C
//!   constant or grouped by any divisor of dim, both layouts; walks forward, reverse or one of
//!   the four cross directions over any factorization of seqlen;
//! - `u` in [-s, s] with s in {1, 8, 64}; `B`, `C` in [-3, 3]; `D` in [-2, 2]; `z` in [-10, 10];
//!   initial state in [-3, 3];
//! - `A = -exp(a)`, a in [-4, 4] (A in [-54.6, -0.018]);
//! - softplus on: `delta` in [-8, 4], `delta_bias` in [-2, 2] (dt from 3e-5 to 6); softplus
//!   off: `delta` in [1e-4, 2] (already a step size).
//!
//! The fused 2D scan (`ss2d_core::fused`) is checked the same way against four reference scans
//! (one per direction, dt from the low-rank projection computed in f64) merged in f64:
//! batch 1..=2, dim 1..=40, h, w in 1..=12, dstate 1..=16, dt_rank 1..=8; `x` in [-2, 2],
//! projections in [-1, 1], `dt_projs_bias` in [-4, 1], `A_logs` in [-3, 3], `Ds` in [-2, 2].
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ss2d_core::fused::{combine, CrossMode, FusedPlan, FusedShape, FusedSplit, FusedWeights};
use ss2d_core::{reference, BcLayout, Layout, ScanArgs, ScanPlan, ScanShape, Walk};
use ss2d_fuzz::Lcg;

const REL: f64 = 1e-4;
const ABS: f64 = 1e-6;

#[derive(Arbitrary, Debug)]
struct ScanIn {
    batch: u8,
    dim: u8,
    seqlen: u8,
    dstate: u8,
    big_state: bool,
    b_groups: u8,
    c_groups: u8,
    channel_last: bool,
    walk: u8,
    walk_h: u8,
    flags: u8,
    u_scale: u8,
    seed: u64,
    split: u8,
}

#[derive(Arbitrary, Debug)]
struct FusedIn {
    batch: u8,
    dim: u8,
    h: u8,
    w: u8,
    dstate: u8,
    dt_rank: u8,
    mode: u8,
    channel_last: bool,
    seed: u64,
    count: u8,
}

#[derive(Arbitrary, Debug)]
enum Case {
    Scan(ScanIn),
    Fused(FusedIn),
}

fn divisors(n: usize) -> Vec<usize> {
    (1..=n).filter(|d| n.is_multiple_of(*d)).collect()
}

/// `|got - want| <= REL * scale + ABS` elementwise, `got` finite; `scale` is the largest of
/// `|want|` and `mag` (the magnitudes of the terms, module docs).
fn check(what: &str, got: &[f32], want: &[f64], mag: &[f64], ctx: &dyn std::fmt::Debug) {
    assert_eq!(got.len(), want.len());
    let max = want.iter().chain(mag).fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(max.is_finite(), "{what}: reference not finite for {ctx:?}");
    let tol = REL * max + ABS;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.is_finite(),
            "{what}[{i}] = {g} not finite (ref {w}) for {ctx:?}"
        );
        let e = (g as f64 - w).abs();
        assert!(
            e <= tol,
            "{what}[{i}]: kernel {g:e}, reference {w:e}, |diff| {e:e} > {tol:e} \
             (scale {max:e}) for {ctx:?}"
        );
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn scan(c: ScanIn) {
    let batch = 1 + c.batch as usize % 2;
    let dim = 1 + c.dim as usize % 40;
    let seqlen = c.seqlen as usize % 161;
    let dstate = if c.big_state {
        1 + c.dstate as usize % 64
    } else {
        1 + c.dstate as usize % 16
    };
    let divs = divisors(dim);
    let bc = |g: u8| {
        if g.is_multiple_of(3) {
            BcLayout::Constant
        } else {
            BcLayout::Grouped(divs[g as usize % divs.len()])
        }
    };
    let shape = ScanShape {
        batch,
        dim,
        seqlen,
        dstate,
        b: bc(c.b_groups),
        c: bc(c.c_groups),
        layout: if c.channel_last {
            Layout::ChannelLast
        } else {
            Layout::ChannelFirst
        },
    };
    let walk = match c.walk % 3 {
        0 => Walk::forward(seqlen),
        1 => Walk::reverse(seqlen),
        _ => {
            let ds = divisors(seqlen.max(1));
            let h = ds[c.walk_h as usize % ds.len()];
            let w = seqlen / h;
            Walk::cross(h, w, (c.walk / 3) as usize % 4).expect("small grid")
        }
    };
    let flag = |b: u8| c.flags & (1 << b) != 0;
    let softplus = !flag(5);
    let mut g = Lcg::from_state(c.seed);
    let bdl = batch * dim * seqlen;
    let bdn = batch * dim * dstate;
    let us = [1.0f32, 8.0, 64.0][c.u_scale as usize % 3];
    let mut v =
        |n: usize, lo: f32, hi: f32| -> Vec<f32> { (0..n).map(|_| g.uniform(lo, hi)).collect() };
    let u = v(bdl, -us, us);
    let delta = if softplus {
        v(bdl, -8.0, 4.0)
    } else {
        v(bdl, 1e-4, 2.0)
    };
    let a: Vec<f32> = v(dim * dstate, -4.0, 4.0)
        .into_iter()
        .map(|x| -x.exp())
        .collect();
    let bc_len = |l: BcLayout| match l {
        BcLayout::Constant => dim * dstate,
        BcLayout::Grouped(gr) => batch * gr * dstate * seqlen,
    };
    let bb = v(bc_len(shape.b), -3.0, 3.0);
    let cc = v(bc_len(shape.c), -3.0, 3.0);
    let d = v(dim, -2.0, 2.0);
    let z = v(bdl, -10.0, 10.0);
    let bias = v(dim, -2.0, 2.0);
    let init = v(bdn, -3.0, 3.0);
    let args = ScanArgs {
        u: &u,
        delta: &delta,
        a: &a,
        b: &bb,
        c: &cc,
        d_skip: flag(0).then_some(&d[..]),
        z: flag(1).then_some(&z[..]),
        delta_bias: (flag(2) && softplus).then_some(&bias[..]),
        delta_softplus: softplus,
        initial_state: flag(3).then_some(&init[..]),
    };
    let ctx = (&shape, &walk, c.flags, c.seed);

    let mut want = vec![0.0f64; bdl];
    let mut want_st = vec![0.0f64; bdn];
    reference::selective_scan::<f64>(&shape, &walk, &args, &mut want, Some(&mut want_st))
        .expect("valid reference call");
    // The magnitudes of the terms (module docs): the same scan on absolute values.
    let abs = |v: &[f32]| -> Vec<f32> { v.iter().map(|x| x.abs()).collect() };
    let (ua, ba, ca, da, za, ia) = (abs(&u), abs(&bb), abs(&cc), abs(&d), abs(&z), abs(&init));
    let args_abs = ScanArgs {
        u: &ua,
        b: &ba,
        c: &ca,
        d_skip: args.d_skip.map(|_| &da[..]),
        z: args.z.map(|_| &za[..]),
        initial_state: args.initial_state.map(|_| &ia[..]),
        ..args
    };
    let mut mag = vec![0.0f64; bdl];
    let mut mag_st = vec![0.0f64; bdn];
    reference::selective_scan::<f64>(&shape, &walk, &args_abs, &mut mag, Some(&mut mag_st))
        .expect("valid reference call");

    // Every SIMD level the CPU runs, chosen by the input.
    let plan = ScanPlan::new(&shape, &walk, args, bdl, Some(bdn))
        .expect("valid plan")
        .with_level(pick_level(c.seed as usize))
        .expect("available level");
    // Dirty scratch: NaN everywhere before the call.
    let mut scratch = vec![f32::NAN; plan.scratch_len()];
    let mut out = vec![0.0f32; bdl];
    let mut st = vec![0.0f32; bdn];
    plan.run(&mut out, Some(&mut st), &mut scratch)
        .expect("valid run");
    check("out", &out, &want, &mag, &ctx);
    check("final_state", &st, &want_st, &mag_st, &ctx);

    // Any split: bitwise the same.
    let mut out2 = vec![f32::NAN; bdl];
    let mut st2 = vec![f32::NAN; bdn];
    {
        let mut items = plan
            .split(&mut out2, Some(&mut st2), 1 + c.split as usize)
            .expect("split");
        for it in items.items() {
            scratch.fill(f32::NAN);
            it.run(&mut scratch).expect("item");
        }
    }
    assert_eq!(bits(&out), bits(&out2), "split out differs for {ctx:?}");
    assert_eq!(bits(&st), bits(&st2), "split state differs for {ctx:?}");
}

fn fused(c: FusedIn) {
    let batch = 1 + c.batch as usize % 2;
    let dim = 1 + c.dim as usize % 40;
    let (h, w) = (1 + c.h as usize % 12, 1 + c.w as usize % 12);
    let l = h * w;
    let n = 1 + c.dstate as usize % 16;
    let r = 1 + c.dt_rank as usize % 8;
    let cdim = r + 2 * n;
    let mode = [CrossMode::Cross2d, CrossMode::Unidi, CrossMode::Bidi][c.mode as usize % 3];
    let layout = if c.channel_last {
        Layout::ChannelLast
    } else {
        Layout::ChannelFirst
    };
    let s = FusedShape {
        batch,
        dim,
        h,
        w,
        dstate: n,
        dt_rank: r,
        mode,
        layout,
    };
    let mut g = Lcg::from_state(c.seed);
    let mut v =
        |k: usize, lo: f32, hi: f32| -> Vec<f32> { (0..k).map(|_| g.uniform(lo, hi)).collect() };
    let x = v(batch * dim * l, -2.0, 2.0);
    let proj = v(batch * l * 4 * cdim, -1.0, 1.0);
    let wdt = v(4 * dim * r, -1.0, 1.0);
    let bias = v(4 * dim, -4.0, 1.0);
    let alogs = v(4 * dim * n, -3.0, 3.0);
    let ds = v(4 * dim, -2.0, 2.0);
    let weights = FusedWeights {
        dt_projs_weight: &wdt,
        dt_projs_bias: &bias,
        a_logs: &alogs,
        ds: &ds,
    };
    let ctx = (&s, c.seed);
    let plan = FusedPlan::new(&s, weights, &x, &proj)
        .expect("valid fused plan")
        .with_level(pick_level(c.seed as usize))
        .expect("available level");

    // Reference: per direction, a 1D reference scan over the walk with dt from the low-rank
    // projection (f64, rounded to the f32 the reference takes), B/C as (B, 1, N, L) in
    // position order, then (y0 + y2) + (y1 + y3) in f64.
    let bdl = batch * dim * l;
    let mut ys = vec![vec![0.0f64; bdl]; 4];
    // The same four scans on absolute values (x, B, C, Ds; dt and A unchanged): the term
    // magnitudes (module docs).
    let mut ys_abs = vec![vec![0.0f64; bdl]; 4];
    let xa: Vec<f32> = x.iter().map(|v| v.abs()).collect();
    let dsa: Vec<f32> = ds.iter().map(|v| v.abs()).collect();
    let a: Vec<f32> = alogs.iter().map(|&x| -(x as f64).exp() as f32).collect();
    for (k, (yk, yk_abs)) in ys.iter_mut().zip(ys_abs.iter_mut()).enumerate() {
        let walk = mode.walk(h, w, k).expect("walk");
        let mut delta = vec![0.0f32; bdl];
        let mut bk = vec![0.0f32; batch * n * l];
        let mut ck = vec![0.0f32; batch * n * l];
        for b in 0..batch {
            for p in 0..l {
                let row = &proj[((b * l + p) * 4 + k) * cdim..][..cdim];
                for i in 0..n {
                    bk[(b * n + i) * l + p] = row[r + i];
                    ck[(b * n + i) * l + p] = row[r + n + i];
                }
                for d in 0..dim {
                    let dt: f64 = (0..r)
                        .map(|j| wdt[(k * dim + d) * r + j] as f64 * row[j] as f64)
                        .sum();
                    let at = match layout {
                        Layout::ChannelFirst => (b * dim + d) * l + p,
                        Layout::ChannelLast => (b * l + p) * dim + d,
                    };
                    delta[at] = dt as f32;
                }
            }
        }
        let shape = ScanShape {
            batch,
            dim,
            seqlen: l,
            dstate: n,
            b: BcLayout::Grouped(1),
            c: BcLayout::Grouped(1),
            layout,
        };
        let args = ScanArgs {
            u: &x,
            delta: &delta,
            a: &a[k * dim * n..(k + 1) * dim * n],
            b: &bk,
            c: &ck,
            d_skip: Some(&ds[k * dim..(k + 1) * dim]),
            z: None,
            delta_bias: Some(&bias[k * dim..(k + 1) * dim]),
            delta_softplus: true,
            initial_state: None,
        };
        reference::selective_scan::<f64>(&shape, &walk, &args, yk, None).expect("reference");
        let (bka, cka): (Vec<f32>, Vec<f32>) = (
            bk.iter().map(|v| v.abs()).collect(),
            ck.iter().map(|v| v.abs()).collect(),
        );
        let args_abs = ScanArgs {
            u: &xa,
            b: &bka,
            c: &cka,
            d_skip: Some(&dsa[k * dim..(k + 1) * dim]),
            ..args
        };
        reference::selective_scan::<f64>(&shape, &walk, &args_abs, yk_abs, None)
            .expect("reference");
    }
    let mag: Vec<f64> = (0..bdl)
        .map(|i| (ys_abs[0][i] + ys_abs[2][i]) + (ys_abs[1][i] + ys_abs[3][i]))
        .collect();
    let want: Vec<f64> = (0..bdl)
        .map(|i| (ys[0][i] + ys[2][i]) + (ys[1][i] + ys[3][i]))
        .collect();

    let mut out = vec![f32::NAN; plan.out_len()];
    let mut scratch = vec![f32::NAN; plan.scratch_len(FusedSplit::All)];
    plan.run(&mut out, &mut scratch).expect("fused run");
    check("fused y", &out, &want, &mag, &ctx);

    // Every split and item count: bitwise the same.
    for split in [FusedSplit::All, FusedSplit::Pairs, FusedSplit::Dirs] {
        let mut store: Vec<Vec<f32>> = (0..split.buffers())
            .map(|_| vec![f32::NAN; plan.out_len()])
            .collect();
        let mut bufs: Vec<&mut [f32]> = store.iter_mut().map(|b| b.as_mut_slice()).collect();
        let mut scratch = vec![f32::NAN; plan.scratch_len(split)];
        {
            let mut items = plan
                .split(&mut bufs, split, 1 + c.count as usize)
                .expect("split");
            for it in items.items() {
                scratch.fill(f32::NAN);
                it.run(&mut scratch).expect("item");
            }
        }
        let len = bufs[0].len();
        combine(split, &mut bufs, 0..len);
        assert_eq!(bits(bufs[0]), bits(&out), "{split:?} differs for {ctx:?}");
    }
}

/// The `k`-th (modulo) SIMD level this CPU runs.
fn pick_level(k: usize) -> ss2d_core::SimdLevel {
    let levels: Vec<ss2d_core::SimdLevel> = ss2d_core::SimdLevel::available().collect();
    levels[k % levels.len()]
}

fuzz_target!(|case: Case| {
    if std::env::var_os("SS2D_FUZZ_DEBUG").is_some() {
        eprintln!("{case:#?}");
    }
    match case {
        Case::Scan(c) => scan(c),
        Case::Fused(c) => fused(c),
    }
});
