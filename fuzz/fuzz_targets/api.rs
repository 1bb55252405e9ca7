//! `api`: arbitrary shapes, layouts, flags, walks and buffer lengths into every public entry
//! point of `ss2d-core` and `ss2d-std`. Each call returns `Ok` or a typed error and never panics;
//! on error no output element is written, on success every output element is (sentinel checks,
//! see `ss2d_fuzz`). Scratch is painted with NaN before each call.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ss2d_core::fused::{combine, CrossMode, FusedPlan, FusedShape, FusedSplit, FusedWeights};
use ss2d_core::{reference, BcLayout, Layout, ScanArgs, ScanPlan, ScanShape, Walk};
use ss2d_fuzz::{
    assert_untouched, assert_written, prod, sentinels, Fill, Len, Size, Stride, LIMIT, WORK,
};
use ss2d_std::cross::{cross_merge, cross_scan, CrossDims, CrossOpts, ScanMode};
use ss2d_std::layer::{
    Backend, DtRank, ForwardOptions, Grid, Intermediates, Ss2d, Ss2dConfig, Ss2dWeights, StageTimes,
};
use ss2d_std::unfused::{self, Ss2dScanShape, Ss2dScanWeights};
use ss2d_std::Parallelism;

#[derive(Arbitrary, Debug, Clone, Copy)]
enum BcIn {
    Constant,
    Grouped(Size),
}

impl BcIn {
    fn get(self) -> BcLayout {
        match self {
            BcIn::Constant => BcLayout::Constant,
            BcIn::Grouped(g) => BcLayout::Grouped(g.get()),
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct ShapeIn {
    batch: Size,
    dim: Size,
    seqlen: Size,
    dstate: Size,
    b: BcIn,
    c: BcIn,
    channel_last: bool,
}

impl ShapeIn {
    fn get(self) -> ScanShape {
        ScanShape {
            batch: self.batch.get(),
            dim: self.dim.get(),
            seqlen: self.seqlen.get(),
            dstate: self.dstate.get(),
            b: self.b.get(),
            c: self.c.get(),
            layout: if self.channel_last {
                Layout::ChannelLast
            } else {
                Layout::ChannelFirst
            },
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum WalkIn {
    Forward,
    Reverse,
    /// `Walk::cross(h, L / h, k)`.
    Cross(u8, Size),
    /// `Walk::forward` / `reverse` of another length.
    Other(bool, Size),
    Raw {
        start: Size,
        outer: (Size, Stride),
        inner: (Size, Stride),
    },
}

impl WalkIn {
    fn get(self, seqlen: usize) -> Walk {
        match self {
            WalkIn::Forward => Walk::forward(seqlen),
            WalkIn::Reverse => Walk::reverse(seqlen),
            WalkIn::Cross(k, h) => {
                let h = h.get();
                let w = seqlen.checked_div(h).unwrap_or(0);
                Walk::cross(h, w, k as usize % 5).unwrap_or(Walk::forward(seqlen))
            }
            WalkIn::Other(rev, n) => {
                if rev {
                    Walk::reverse(n.get())
                } else {
                    Walk::forward(n.get())
                }
            }
            WalkIn::Raw {
                start,
                outer,
                inner,
            } => Walk {
                start: start.get(),
                outer: (outer.0.get(), outer.1.get()),
                inner: (inner.0.get(), inner.1.get()),
            },
        }
    }
}

/// Which optional tensors are given (bit flags) and the buffer lengths of all of them.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct ScanBufs {
    flags: u8,
    u: Len,
    delta: Len,
    a: Len,
    b: Len,
    c: Len,
    d: Len,
    z: Len,
    bias: Len,
    init: Len,
    out: Len,
    state: Len,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum CoreMode {
    /// `ss2d_core::selective_scan`.
    Run(Len),
    /// `ScanPlan::new` + `run`, with possibly different output lengths at run time.
    PlanRun(Len, Len, Len),
    /// `ScanPlan::split(count)` + every item with its own scratch.
    Split(Size, Len),
    /// `reference::selective_scan::<f32>`.
    Ref32,
    /// `reference::selective_scan::<f64>`.
    Ref64,
    /// `ss2d_std::selective_scan` on `threads % 4` threads.
    Std(u8),
}

#[derive(Arbitrary, Debug)]
struct ScanCase {
    shape: ShapeIn,
    walk: WalkIn,
    bufs: ScanBufs,
    fill: Fill,
    mode: CoreMode,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum FusedMode {
    Run(Len, Len),
    /// Split with `split % 3`, buffer count `(n % 5)`, buffer length, count, scratch length.
    Split(u8, u8, Len, Size, Len),
}

#[derive(Arbitrary, Debug)]
struct FusedCase {
    batch: Size,
    dim: Size,
    h: Size,
    w: Size,
    dstate: Size,
    dt_rank: Size,
    mode: u8,
    channel_last: bool,
    lens: [Len; 6],
    fill: Fill,
    run: FusedMode,
}

#[derive(Arbitrary, Debug)]
struct CrossCase {
    batch: Size,
    channels: Size,
    h: Size,
    w: Size,
    mode: u8,
    in_cf: bool,
    out_cf: bool,
    one_by_one: bool,
    merge: bool,
    inp: Len,
    out: Len,
    threads: u8,
    fill: Fill,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Ss2dOp {
    Fused,
    Unfused,
    Intermediates,
    XProj,
    ProjectXDbl,
}

#[derive(Arbitrary, Debug)]
struct Ss2dCase {
    batch: Size,
    dim: Size,
    h: Size,
    w: Size,
    dstate: Size,
    dt_rank: Size,
    mode: u8,
    channel_first: bool,
    /// x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds, x, y.
    lens: [Len; 7],
    threads: u8,
    op: Ss2dOp,
    fill: Fill,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Ratio {
    One,
    Two,
    Half,
    Bits(u64),
    F32(f32),
}

#[derive(Arbitrary, Debug)]
enum FwdType {
    Known(u8),
    Any(String),
}

const FORWARD_TYPES: [&str; 24] = [
    "v05_noz",
    "v05",
    "v3",
    "v0",
    "v0seq",
    "v01",
    "v02",
    "v03",
    "v04",
    "v051d",
    "v052d",
    "v052dc",
    "v051d_noz",
    "v052d_noz",
    "v052dc_noz",
    "v2",
    "v2_noz",
    "v05_noz_softmax",
    "v05_ondwconv3",
    "v05_onsigmoid",
    "v05_onnone",
    "v31d",
    "v32d",
    "xv1a",
];

#[derive(Arbitrary, Debug)]
struct LayerCase {
    d_model: Size,
    d_state: Size,
    ratio: Ratio,
    dt_rank: Option<Size>,
    d_conv: Size,
    conv_bias: bool,
    forward: FwdType,
    channel_first: bool,
    /// Presence of the optional tensors (bits 0..6) and absence of named tensors (bits 6..19).
    present: u32,
    /// One length per weight of `Ss2dWeights` (13), then input and output.
    lens: [Len; 15],
    /// Load through `from_map` (shapes from the config, one perturbed) instead of
    /// `from_weights`.
    by_name: Option<(u8, u8, Size)>,
    batch: Size,
    h: Size,
    w: Size,
    backend: u8,
    threads: u8,
    fill: Fill,
}

#[derive(Arbitrary, Debug)]
enum Case {
    Scan(ScanCase),
    Fused(FusedCase),
    Cross(CrossCase),
    Ss2d(Ss2dCase),
    Layer(LayerCase),
}

fn par(threads: u8) -> Parallelism<'static> {
    match threads % 4 {
        0 => Parallelism::Sequential,
        n => Parallelism::Threads(n as usize),
    }
}

fn scan_case(c: ScanCase) {
    let shape = c.shape.get();
    let walk = c.walk.get(shape.seqlen);
    let (bsz, dim, l, n) = (shape.batch, shape.dim, shape.seqlen, shape.dstate);
    let bdl = prod(&[bsz, dim, l]);
    let dn = prod(&[dim, n]);
    let bdn = prod(&[bsz, dim, n]);
    let bc = |lay: BcLayout| match lay {
        BcLayout::Constant => dn,
        BcLayout::Grouped(g) => prod(&[bsz, g, n, l]),
    };
    let b = &c.bufs;
    let f = c.fill;
    let has = |bit: u8| b.flags & (1 << bit) != 0;
    let u = f.buf(1, b.u.resolve(bdl));
    let delta = f.buf(2, b.delta.resolve(bdl));
    let a: Vec<f32> = f
        .buf(3, b.a.resolve(dn))
        .iter()
        .map(|v| -v.abs() * 4.0)
        .collect();
    let bb = f.buf(4, b.b.resolve(bc(shape.b)));
    let cc = f.buf(5, b.c.resolve(bc(shape.c)));
    let d = f.buf(6, b.d.resolve(Some(dim)));
    let z = f.buf(7, b.z.resolve(bdl));
    let bias = f.buf(8, b.bias.resolve(Some(dim)));
    let init = f.buf(9, b.init.resolve(bdn));
    let args = ScanArgs {
        u: &u,
        delta: &delta,
        a: &a,
        b: &bb,
        c: &cc,
        d_skip: has(0).then_some(&d[..]),
        z: has(1).then_some(&z[..]),
        delta_bias: has(2).then_some(&bias[..]),
        delta_softplus: has(3),
        initial_state: has(4).then_some(&init[..]),
    };
    let want_state = has(5);
    let mut out = sentinels(b.out.resolve(bdl));
    let mut state = sentinels(b.state.resolve(bdn));
    // Work the call does when it succeeds: bounded (the buffers are, so this only skips
    // valid-but-slow calls). Empty problems with huge unit counts stay in on purpose.
    let work = bdl.and_then(|x| x.checked_mul(n)).unwrap_or(usize::MAX);
    let slow = work > WORK && u.len() == bdl.unwrap_or(usize::MAX);
    if slow {
        return;
    }
    let state_len = state.len();
    let r = match c.mode {
        CoreMode::Run(sl) => {
            let need = shape.validate().map(|v| ss2d_core::scratch_len(&v)).ok();
            let mut scratch = vec![f32::NAN; sl.resolve(need)];
            ss2d_core::selective_scan(
                &shape,
                &walk,
                &args,
                &mut out,
                want_state.then_some(&mut state[..]),
                &mut scratch,
            )
        }
        CoreMode::PlanRun(ol, stl, sl) => {
            let plan = ScanPlan::new(
                &shape,
                &walk,
                args,
                out.len(),
                want_state.then_some(state_len),
            );
            match plan {
                Err(e) => Err(e),
                Ok(plan) => {
                    let _ = (plan.shape(), plan.units());
                    let mut scratch = vec![f32::NAN; sl.resolve(Some(plan.scratch_len()))];
                    // Possibly different buffers at run time: must be re-checked.
                    let mut out2 = sentinels(ol.resolve(Some(out.len())));
                    let mut st2 = sentinels(stl.resolve(Some(state_len)));
                    let st2r = want_state.then_some(&mut st2[..]);
                    let r = plan.run(&mut out2, st2r, &mut scratch);
                    if r.is_err() {
                        assert_untouched("plan.run out", &out2);
                        assert_untouched("plan.run final_state", &st2);
                    } else {
                        assert_written("plan.run out", &out2);
                        if want_state {
                            assert_written("plan.run final_state", &st2);
                        }
                    }
                    return;
                }
            }
        }
        CoreMode::Split(count, sl) => {
            let plan = ScanPlan::new(
                &shape,
                &walk,
                args,
                out.len(),
                want_state.then_some(state_len),
            );
            match plan {
                Err(e) => Err(e),
                Ok(plan) => {
                    let need = plan.scratch_len();
                    let mut scratch = vec![f32::NAN; sl.resolve(Some(need))];
                    let mut items = plan
                        .split(&mut out, want_state.then_some(&mut state[..]), count.get())
                        .expect("split with the planned buffers");
                    let _ = items.count();
                    let mut res = Ok(());
                    for it in items.items() {
                        res = res.and(it.run(&mut scratch));
                    }
                    // A second pass yields nothing.
                    assert_eq!(items.items().count(), 0);
                    if res.is_ok() {
                        assert_written("split out", &out);
                        if want_state {
                            assert_written("split final_state", &state);
                        }
                    } else {
                        // Only a scratch error is possible here, and then every item failed
                        // before writing.
                        assert!(scratch.len() < need);
                        assert_untouched("split out", &out);
                    }
                    return;
                }
            }
        }
        CoreMode::Ref32 => reference::selective_scan::<f32>(
            &shape,
            &walk,
            &args,
            &mut out,
            want_state.then_some(&mut state[..]),
        ),
        CoreMode::Ref64 => {
            let mut o64 = vec![f64::from_bits(0x7ff8_0000_dead_beef); out.len()];
            let mut s64 = vec![f64::from_bits(0x7ff8_0000_dead_beef); state_len];
            let r = reference::selective_scan::<f64>(
                &shape,
                &walk,
                &args,
                &mut o64,
                want_state.then_some(&mut s64[..]),
            );
            let marked = |v: &[f64]| v.iter().any(|x| x.to_bits() == 0x7ff8_0000_dead_beef);
            if r.is_err() {
                assert!(o64.iter().all(|x| x.to_bits() == 0x7ff8_0000_dead_beef));
            } else {
                assert!(!marked(&o64), "reference f64 left out unwritten");
                assert!(!want_state || !marked(&s64));
            }
            return;
        }
        CoreMode::Std(t) => ss2d_std::selective_scan(
            &shape,
            &walk,
            &args,
            &mut out,
            want_state.then_some(&mut state[..]),
            par(t),
        ),
    };
    if r.is_err() {
        assert_untouched("out", &out);
        assert_untouched("final_state", &state);
    } else {
        assert_written("out", &out);
        if want_state {
            assert_written("final_state", &state);
        }
    }
}

fn fused_case(c: FusedCase) {
    let mode = match c.mode % 3 {
        0 => CrossMode::Cross2d,
        1 => CrossMode::Unidi,
        _ => CrossMode::Bidi,
    };
    let s = FusedShape {
        batch: c.batch.get(),
        dim: c.dim.get(),
        h: c.h.get(),
        w: c.w.get(),
        dstate: c.dstate.get(),
        dt_rank: c.dt_rank.get(),
        mode,
        layout: if c.channel_last {
            Layout::ChannelLast
        } else {
            Layout::ChannelFirst
        },
    };
    let l = prod(&[s.h, s.w]);
    let bdl = l.and_then(|l| prod(&[s.batch, s.dim, l]));
    let cc = s
        .dstate
        .checked_mul(2)
        .and_then(|x| x.checked_add(s.dt_rank));
    let plen = l.and_then(|l| cc.and_then(|cc| prod(&[s.batch, l, 4, cc])));
    let d4 = s.dim.checked_mul(4);
    let f = c.fill;
    let wdt = f.buf(
        1,
        c.lens[0].resolve(d4.and_then(|d| d.checked_mul(s.dt_rank))),
    );
    let bias = f.buf(2, c.lens[1].resolve(d4));
    let alogs = f.buf(
        3,
        c.lens[2].resolve(d4.and_then(|d| d.checked_mul(s.dstate))),
    );
    let ds = f.buf(4, c.lens[3].resolve(d4));
    let x = f.buf(5, c.lens[4].resolve(bdl));
    let proj = f.buf(6, c.lens[5].resolve(plen));
    let work = prod(&[bdl.unwrap_or(usize::MAX), 4, cc.unwrap_or(usize::MAX)]);
    if work.is_none_or(|w| w > WORK) && x.len() == bdl.unwrap_or(usize::MAX) {
        return;
    }
    let weights = FusedWeights {
        dt_projs_weight: &wdt,
        dt_projs_bias: &bias,
        a_logs: &alogs,
        ds: &ds,
    };
    let Ok(plan) = FusedPlan::new(&s, weights, &x, &proj) else {
        return;
    };
    let out_len = plan.out_len();
    match c.run {
        FusedMode::Run(ol, sl) => {
            let mut out = sentinels(ol.resolve(Some(out_len)));
            let need = plan.scratch_len(FusedSplit::All);
            let mut scratch = vec![f32::NAN; sl.resolve(Some(need))];
            match plan.run(&mut out, &mut scratch) {
                Ok(()) => assert_written("fused out", &out),
                Err(_) => assert_untouched("fused out", &out),
            }
        }
        FusedMode::Split(sp, nb, bl, count, sl) => {
            let split = [FusedSplit::All, FusedSplit::Pairs, FusedSplit::Dirs][sp as usize % 3];
            let _ = plan.units(split);
            let need = plan.scratch_len(split);
            let mut scratch = vec![f32::NAN; sl.resolve(Some(need))];
            let nbufs = if nb % 2 == 0 {
                split.buffers()
            } else {
                nb as usize % 5
            };
            let mut store: Vec<Vec<f32>> = (0..nbufs)
                .map(|_| sentinels(bl.resolve(Some(out_len))))
                .collect();
            let mut bufs: Vec<&mut [f32]> = store.iter_mut().map(|v| v.as_mut_slice()).collect();
            let ok = match plan.split(&mut bufs, split, count.get()) {
                Err(_) => false,
                Ok(mut items) => {
                    let _ = items.count();
                    let mut ok = true;
                    for it in items.items() {
                        ok &= it.run(&mut scratch).is_ok();
                    }
                    ok
                }
            };
            if ok {
                let n = bufs[0].len();
                combine(split, &mut bufs, 0..n);
                assert_written("fused split out", bufs[0]);
            } else {
                for b in &bufs {
                    assert_untouched("fused split buffer", b);
                }
            }
        }
    }
}

fn cross_case(c: CrossCase) {
    let dims = CrossDims {
        batch: c.batch.get(),
        channels: c.channels.get(),
        h: c.h.get(),
        w: c.w.get(),
    };
    let mode = match c.mode % 3 {
        0 => ScanMode::Cross2d,
        1 => ScanMode::Unidi,
        _ => ScanMode::Bidi,
    };
    let opts = CrossOpts {
        mode,
        in_channel_first: c.in_cf,
        out_channel_first: c.out_cf,
        one_by_one: c.one_by_one,
    };
    let plane = ss2d_std::cross::cross_scan_input_len(dims, opts).ok();
    let seq = ss2d_std::cross::cross_scan_output_len(dims, opts).ok();
    let merged = ss2d_std::cross::cross_merge_output_len(dims, opts).ok();
    let (inp, outl) = if c.merge { (seq, merged) } else { (plane, seq) };
    let x = c.fill.buf(1, c.inp.resolve(inp));
    let mut out = sentinels(c.out.resolve(outl));
    let r = if c.merge {
        cross_merge(&x, dims, opts, &mut out, par(c.threads))
    } else {
        cross_scan(&x, dims, opts, &mut out, par(c.threads))
    };
    match r {
        Ok(()) => assert_written("cross out", &out),
        Err(_) => assert_untouched("cross out", &out),
    }
    // The walks of the modes: `None` or in bounds.
    for k in 0..5 {
        if let (Some(w), Ok(l)) = (mode.walk(dims.h, dims.w, k), dims.seqlen()) {
            assert!(
                w.validate(l).is_ok(),
                "{mode:?} walk {k} of {}x{}",
                dims.h,
                dims.w
            );
        }
    }
}

fn ss2d_case(c: Ss2dCase) {
    let mode = match c.mode % 3 {
        0 => ScanMode::Cross2d,
        1 => ScanMode::Unidi,
        _ => ScanMode::Bidi,
    };
    let shape = Ss2dScanShape {
        batch: c.batch.get(),
        dim: c.dim.get(),
        h: c.h.get(),
        w: c.w.get(),
        dstate: c.dstate.get(),
        dt_rank: c.dt_rank.get(),
        mode,
        channel_first: c.channel_first,
    };
    let d4 = shape.dim.checked_mul(4);
    let rows = shape
        .dstate
        .checked_mul(2)
        .and_then(|x| x.checked_add(shape.dt_rank));
    let l = prod(&[shape.h, shape.w]);
    let xl = l.and_then(|l| prod(&[shape.batch, shape.dim, l]));
    let f = c.fill;
    let xw = f.buf(1, c.lens[0].resolve(d4.and_then(|d| rows?.checked_mul(d))));
    let dtw = f.buf(
        2,
        c.lens[1].resolve(d4.and_then(|d| d.checked_mul(shape.dt_rank))),
    );
    let bias = f.buf(3, c.lens[2].resolve(d4));
    let alogs = f.buf(
        4,
        c.lens[3].resolve(d4.and_then(|d| d.checked_mul(shape.dstate))),
    );
    let ds = f.buf(5, c.lens[4].resolve(d4));
    // Work of a successful call: projections and scan over B*L*4*D*(R + 3N).
    let work = xl.and_then(|x| prod(&[x, 4, rows?.checked_add(shape.dstate)?]));
    let weights = Ss2dScanWeights {
        x_proj_weight: &xw,
        dt_projs_weight: &dtw,
        dt_projs_bias: &bias,
        a_logs: &alogs,
        ds: &ds,
    };
    let p = par(c.threads);
    // The intermediates and projections return vectors sized by the shape (`x_dbl` is
    // `B * 4 * (R + 2N) * L` even with `dim = 0`): a result too large for memory aborts by
    // design, so such shapes are skipped for those ops only.
    let xdbl = l.and_then(|l| prod(&[shape.batch, l, 4, rows?]));
    let returns_vecs = matches!(
        c.op,
        Ss2dOp::Intermediates | Ss2dOp::XProj | Ss2dOp::ProjectXDbl
    );
    if returns_vecs && xdbl.is_none_or(|v| v > LIMIT) && shape.sizes().is_ok() {
        return;
    }
    match c.op {
        Ss2dOp::Fused | Ss2dOp::Unfused | Ss2dOp::Intermediates => {
            let x = f.buf(6, c.lens[5].resolve(xl));
            if work.is_none_or(|w| w > WORK) && Some(x.len()) == xl {
                return;
            }
            let mut y = sentinels(c.lens[6].resolve(xl));
            let r = match c.op {
                Ss2dOp::Fused => ss2d_std::fused::ss2d_scan(&shape, &weights, &x, &mut y, p),
                Ss2dOp::Unfused => unfused::ss2d_scan_unfused(&shape, &weights, &x, &mut y, p),
                _ => {
                    let _ = unfused::ss2d_scan_unfused_intermediates(&shape, &weights, &x, p);
                    return;
                }
            };
            match r {
                Ok(()) => assert_written("ss2d y", &y),
                Err(_) => assert_untouched("ss2d y", &y),
            }
        }
        Ss2dOp::XProj => {
            let seq = xl.and_then(|x| x.checked_mul(4));
            let xs = f.buf(6, c.lens[5].resolve(seq));
            if work.is_none_or(|w| w > WORK) && Some(xs.len()) == seq {
                return;
            }
            let _ = unfused::x_proj(&shape, &xw, &xs, p);
        }
        Ss2dOp::ProjectXDbl => {
            let xdbl = l.and_then(|l| prod(&[shape.batch, 4, rows?, l]));
            let xd = f.buf(6, c.lens[5].resolve(xdbl));
            if work.is_none_or(|w| w > WORK) && Some(xd.len()) == xdbl {
                return;
            }
            let _ = unfused::project_x_dbl(&shape, &dtw, &xd, p);
        }
    }
}

fn layer_case(c: LayerCase) {
    let ssm_ratio = match c.ratio {
        Ratio::One => 1.0,
        Ratio::Two => 2.0,
        Ratio::Half => 0.5,
        Ratio::Bits(b) => f64::from_bits(b),
        Ratio::F32(v) => v as f64,
    };
    let forward_type = match &c.forward {
        FwdType::Known(i) => FORWARD_TYPES[*i as usize % FORWARD_TYPES.len()].to_string(),
        FwdType::Any(s) => s.clone(),
    };
    let config = Ss2dConfig {
        d_model: c.d_model.get(),
        d_state: c.d_state.get(),
        ssm_ratio,
        dt_rank: c.dt_rank.map_or(DtRank::Auto, |s| DtRank::Fixed(s.get())),
        d_conv: c.d_conv.get(),
        conv_bias: c.conv_bias,
        forward_type,
        channel_first: c.channel_first,
    };
    let Ok(dims) = config.resolve() else {
        return;
    };
    let (dm, di, n, r, k) = (
        dims.d_model,
        dims.d_inner,
        dims.d_state,
        dims.dt_rank,
        dims.d_conv,
    );
    let dp = dims.d_proj();
    let has = |bit: u32| c.present & (1 << bit) != 0;
    let rows = r.checked_add(2 * n);
    // Expected shapes of the 13 weights (as `Ss2d::from_tensors` wants them).
    let shapes: [Vec<usize>; 13] = [
        vec![dp, dm],
        vec![dp],
        vec![di, 1, k, k],
        vec![di],
        vec![4, rows.unwrap_or(usize::MAX), di],
        vec![4, di, r],
        vec![4, di],
        vec![di.saturating_mul(4), n],
        vec![di.saturating_mul(4)],
        vec![di],
        vec![di],
        vec![dm, di],
        vec![dm],
    ];
    let f = c.fill;
    let data: Vec<Vec<f32>> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| f.buf(i as u64, c.lens[i].resolve(prod(s))))
        .collect();
    let opt = |i: usize, bit: u32| has(bit).then(|| data[i].clone());
    let layer = match c.by_name {
        None => {
            let weights = Ss2dWeights {
                in_proj_weight: data[0].clone(),
                in_proj_bias: opt(1, 0),
                conv2d_weight: opt(2, 1),
                conv2d_bias: opt(3, 2),
                x_proj_weight: data[4].clone(),
                dt_projs_weight: data[5].clone(),
                dt_projs_bias: data[6].clone(),
                a_logs: data[7].clone(),
                ds: data[8].clone(),
                out_norm_weight: opt(9, 3),
                out_norm_bias: opt(10, 4),
                out_proj_weight: data[11].clone(),
                out_proj_bias: opt(12, 5),
            };
            Ss2d::from_weights(dims.clone(), weights)
        }
        Some((which, axis, value)) => {
            let mut map = std::collections::HashMap::new();
            for (i, name) in ss2d_cli::layer::TENSOR_NAMES.iter().enumerate() {
                if has(6 + i as u32) {
                    continue; // absent
                }
                let mut shape = shapes[i].clone();
                if which as usize % 13 == i && !shape.is_empty() {
                    let ax = axis as usize % shape.len();
                    shape[ax] = value.get();
                }
                map.insert(format!("p.{name}"), (shape, data[i].clone()));
            }
            Ss2d::from_map(&config, "p.", &map)
        }
    };
    let Ok(layer) = layer else {
        return;
    };
    let _ = layer.param_count();
    let grid = Grid {
        batch: c.batch.get(),
        h: c.h.get(),
        w: c.w.get(),
    };
    let io = grid.elements(dm).ok();
    let input = f.buf(20, c.lens[13].resolve(io));
    // Work: B*L*(in_proj + conv + x_proj + scan + out_proj), bounded.
    let per_pos = dp.saturating_mul(dm).saturating_add(
        di.saturating_mul(
            k.saturating_mul(k)
                .saturating_add(
                    rows.unwrap_or(usize::MAX)
                        .saturating_add(2 * n)
                        .saturating_mul(4),
                )
                .saturating_add(dm),
        ),
    );
    let work = prod(&[grid.batch, grid.h, grid.w]).map(|p| p.saturating_mul(per_pos));
    if work.is_none_or(|w| w > WORK) && Some(input.len()) == io {
        return;
    }
    let _ = dims.grid_of(&dims.io_shape(grid));
    let mut output = sentinels(c.lens[14].resolve(io));
    let backend = [Backend::Fast, Backend::Unfused, Backend::Reference][c.backend as usize % 3];
    let mut times = StageTimes::default();
    let mut debug = Intermediates::default();
    let r = layer.forward_with(
        &input,
        grid,
        &mut output,
        ForwardOptions {
            backend,
            par: par(c.threads),
            times: (c.backend & 4 != 0).then_some(&mut times),
            debug: (c.backend & 8 != 0).then_some(&mut debug),
        },
    );
    match r {
        Ok(()) => assert_written("layer output", &output),
        Err(_) => assert_untouched("layer output", &output),
    }
}

fuzz_target!(|case: Case| {
    if std::env::var_os("SS2D_FUZZ_DEBUG").is_some() {
        eprintln!("{case:#?}");
    }
    match case {
        Case::Scan(c) => scan_case(c),
        Case::Fused(c) => fused_case(c),
        Case::Cross(c) => cross_case(c),
        Case::Ss2d(c) => ss2d_case(c),
        Case::Layer(c) => layer_case(c),
    }
    let _ = LIMIT;
});
